import logging

import keras
import numpy as np
import pytest
from keras.src.backend.tensorflow.rnn import _do_gru_arguments_support_cudnn, _do_lstm_arguments_support_cudnn

from textlstm.models import LSTMBackbone


def small(**kwargs):
    args = dict(vocabulary_size=30, embedding_dim=8, hidden_dim=12, num_layers=2)
    args.update(kwargs)
    return LSTMBackbone(**args)


def test_shapes_and_states():
    backbone = small()
    sequence, states = backbone(np.ones((3, 5), "int32"), return_state=True)
    assert tuple(sequence.shape) == (3, 5, 12)
    assert len(states) == 2 and all(len(s) == 2 for s in states)  # (h, c) per layer
    gru = small(cell_type="gru", bidirectional=True)
    sequence, states = gru(np.ones((3, 5), "int32"), return_state=True)
    assert tuple(sequence.shape) == (3, 5, 24) and all(len(s) == 2 for s in states)  # h forward, h backward


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_defaults_are_cudnn_eligible(cell_type):
    backbone = small(cell_type=cell_type)
    assert backbone.cudnn_eligible
    for layer in backbone.recurrent_layers:
        assert layer.recurrent_dropout == 0 and not layer.unroll and layer.use_bias
        # Keras's own check of the arguments its TF backend hands to cuDNN (the GPU check aside).
        args = dict(activation=layer.cell.activation, recurrent_activation=layer.cell.recurrent_activation,
                    unroll=layer.unroll, use_bias=layer.use_bias)
        if cell_type == "lstm":
            assert _do_lstm_arguments_support_cudnn(**args)
        else:
            assert _do_gru_arguments_support_cudnn(reset_after=layer.cell.reset_after, **args)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in backbone._flatten_layers())


def test_ineligible_setting_needs_explicit_opt_in(caplog):
    with pytest.raises(ValueError, match=r"`recurrent_dropout=0.2` is not cuDNN-eligible"):
        small(recurrent_dropout=0.2)
    with caplog.at_level(logging.WARNING):
        backbone = small(activation="relu", require_cudnn=False)
    assert not backbone.cudnn_eligible
    assert "cuDNN-ineligible" in caplog.text and "relu" in caplog.text


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden_dim": 0}, r"`hidden_dim` must be a positive int, received 0"),
    ({"cell_type": "rnn"}, r"`cell_type` must be one of \('lstm', 'gru', 'peephole_lstm'\), received 'rnn'"),
    ({"dropout": 1.0}, r"`dropout` must be in \[0, 1\), received 1.0"),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small(**kwargs)


def test_right_padding_is_masked():
    backbone = small()
    ids = np.array([[5, 6, 7, 0, 0]], "int32")
    padded, padded_states = backbone(ids, return_state=True)
    _, states = backbone(ids[:, :3], return_state=True)
    for layer_padded, layer_unpadded in zip(padded_states, states):  # states stop at the last real token
        for a, b in zip(layer_padded, layer_unpadded):
            np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(padded[:, 3:], np.repeat(padded[:, 2:3], 2, axis=1))  # masked steps repeat the last output


def test_get_config_round_trip():
    backbone = small(dropout=0.3, cell_type="gru")
    config = backbone.get_config()
    restored = LSTMBackbone.from_config(config)
    assert restored.get_config() == config
    for key in ("vocabulary_size", "embedding_dim", "hidden_dim", "num_layers", "cell_type", "dropout"):
        assert config[key] == getattr(backbone, key)


@pytest.mark.parametrize("name, bound", [("uniform", 0.1), ("glorot_uniform", None), ("he_uniform", None)])
def test_kernel_initializers_are_applied(name, bound):
    keras.utils.set_random_seed(0)
    backbone = LSTMBackbone(30, embedding_dim=16, hidden_dim=16, num_layers=1, kernel_initializer=name,
                            recurrent_initializer="uniform")
    backbone(np.ones((1, 3), "int32"))
    kernel, recurrent_kernel, _ = backbone.recurrent_layers[0].get_weights()  # (16, 64), (16, 64), (64,)
    limits = {"glorot_uniform": (6 / (16 + 64)) ** 0.5, "he_uniform": (6 / 16) ** 0.5}
    assert abs(kernel).max() <= (bound or limits[name]) and abs(kernel).max() > 0.5 * (bound or limits[name])
    assert abs(recurrent_kernel).max() <= 0.1
    assert backbone.get_config()["kernel_initializer"] == name
    with pytest.raises(ValueError, match=r"`recurrent_initializer` must be one of .*received 'zeros'"):
        LSTMBackbone(30, recurrent_initializer="zeros")
