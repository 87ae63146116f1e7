import json
import logging
import os
import subprocess
import sys

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
    ({"word_dropout": -0.1}, r"`word_dropout` must be in \[0, 1\), received -0.1"),
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
    backbone = small(dropout=0.3, word_dropout=0.1, cell_type="gru")
    config = backbone.get_config()
    restored = LSTMBackbone.from_config(config)
    assert restored.get_config() == config
    for key in ("vocabulary_size", "embedding_dim", "hidden_dim", "num_layers", "cell_type", "dropout", "word_dropout"):
        assert config[key] == getattr(backbone, key)


def test_word_dropout_drops_every_occurrence_of_a_word_and_only_in_training():
    keras.utils.set_random_seed(0)
    backbone = LSTMBackbone(1000, embedding_dim=4, hidden_dim=4, num_layers=1, word_dropout=0.4)
    rng = np.random.RandomState(0)
    ids = np.stack([rng.permutation(np.arange(4, 1000, dtype="int32")) for _ in range(3)])  # (3, 996): each
    ids = np.concatenate([ids, ids[:, ::-1]], axis=1)  # (3, 1992): every word twice a row, at shuffled places
    plain = np.asarray(backbone.embed(ids))
    np.testing.assert_array_equal(np.asarray(backbone.embed(ids, training=False)), plain)
    dropped = []
    for _ in range(2):
        embedded = np.asarray(backbone.embed(ids, training=True))  # (3, 1992, 4)
        zero = np.all(embedded == 0, axis=-1)  # (3, 1992)
        dropped_ids = [set(row_ids[row_zero]) for row_ids, row_zero in zip(ids, zero)]
        assert dropped_ids[0] == dropped_ids[1] == dropped_ids[2]  # a word is dropped everywhere in the batch
        assert not dropped_ids[0] & set(ids[0][~zero[0]])  # ... or nowhere
        np.testing.assert_allclose(embedded[~zero], plain[~zero] / 0.6, rtol=1e-6)  # kept words are rescaled
        assert 0.33 < len(dropped_ids[0]) / 996 < 0.47  # about 40% of the words
        dropped.append(dropped_ids[0])
    assert dropped[0] != dropped[1]  # a new draw each batch
    window = ids[:, :20]  # a short window: the stack's eager loop over 1,992 steps took half a minute
    assert not np.allclose(backbone(window, training=True), backbone(window))  # the stack runs on dropped words


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


def test_backbone_computes_the_same_without_tensorflow_under_keras_torch_backend(tmp_path):
    """The backbone (and its cuDNN report) runs where only JAX or PyTorch is, as on this project's GPU machine."""
    pytest.importorskip("torch")  # the `benchmark` extra
    backbone = small(bidirectional=True, dropout=0.3)
    ids = np.array([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]], "int32")  # row 0 right padded
    expected = {"padded": np.asarray(backbone(ids)), "unpadded": np.asarray(backbone(ids[1:], padded=False))}
    np.savez(tmp_path / "weights.npz", *backbone.get_weights())
    (tmp_path / "config.json").write_text(json.dumps(backbone.get_config()))
    script = f"""
import json, sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
import numpy as np
from textlstm.models import LSTMBackbone
backbone = LSTMBackbone.from_config(json.load(open({str(tmp_path / "config.json")!r})))
ids = np.array({ids.tolist()}, "int32")
backbone(ids)
weights = np.load({str(tmp_path / "weights.npz")!r})
backbone.set_weights([weights[f"arr_{{i}}"] for i in range(len(weights.files))])
from keras import ops
from textlstm.models.recurrent import cudnn_report
report = cudnn_report(backbone, ids, masked=True)
assert report["eligible"] and report["kernel"] == "keras loop", report  # a CPU under torch: Keras's loop
np.savez({str(tmp_path / "outputs.npz")!r}, padded=ops.convert_to_numpy(backbone(ids)),
         unpadded=ops.convert_to_numpy(backbone(ids[1:], padded=False)))
"""
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "KERAS_BACKEND": "torch"}, check=True,
                   cwd=tmp_path, timeout=300)
    outputs = np.load(tmp_path / "outputs.npz")
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, atol=1e-5, err_msg=name)
