"""The peephole LSTM cell: its equations, its place in the backbone, saving and reloading."""

import logging

import keras
import numpy as np
import pytest

from textlstm.models import LanguageModel, LSTMBackbone
from textlstm.models.cells import PeepholeLSTMCell
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.tokenizers import WordTokenizer


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_one_step_follows_gers_and_schmidhuber():
    cell = PeepholeLSTMCell(3)
    cell.build((None, 2))
    rng = np.random.default_rng(0)
    for weight in cell.weights:
        weight.assign(rng.normal(0, 0.7, weight.shape).astype("float32"))
    x, h, c = (rng.normal(size=(4, n)).astype("float32") for n in (2, 3, 3))
    out, (new_h, new_c) = cell(x, [h, c])
    kernel, recurrent, bias, p_i, p_f, p_o = (w.numpy() for w in cell.weights)
    z = x @ kernel + h @ recurrent + bias
    i = sigmoid(z[:, 0:3] + p_i * c)
    f = sigmoid(z[:, 3:6] + p_f * c)
    expected_c = f * c + i * np.tanh(z[:, 6:9])
    o = sigmoid(z[:, 9:12] + p_o * expected_c)  # the output gate sees the new cell state
    np.testing.assert_allclose(new_c, expected_c, atol=1e-6)
    np.testing.assert_allclose(out, o * np.tanh(expected_c), atol=1e-6)
    np.testing.assert_array_equal(out, new_h)


def test_zero_peepholes_compute_a_plain_lstm():
    inputs = np.random.default_rng(1).normal(size=(2, 5, 4)).astype("float32")
    plain = keras.layers.LSTM(3, return_sequences=True)
    peephole = keras.layers.RNN(PeepholeLSTMCell(3, peephole_initializer="zeros"), return_sequences=True)
    plain(inputs), peephole(inputs)
    peephole.set_weights(plain.get_weights() + [np.zeros(3, "float32")] * 3)
    np.testing.assert_allclose(peephole(inputs), plain(inputs), atol=1e-6)


def test_backbone_allows_it_only_without_cudnn_and_logs(caplog):
    with pytest.raises(ValueError, match=r"`cell_type='peephole_lstm'` is not cuDNN-eligible"):
        LSTMBackbone(20, 4, 4, num_layers=1, cell_type="peephole_lstm")
    with caplog.at_level(logging.WARNING):
        backbone = LSTMBackbone(20, 4, 4, num_layers=2, cell_type="peephole_lstm", require_cudnn=False)
    assert "peephole_lstm" in caplog.text and not backbone.cudnn_eligible
    assert all(isinstance(layer.cell, PeepholeLSTMCell) for layer in backbone.recurrent_layers)


def test_peephole_language_model_trains_saves_and_reloads(tmp_path):
    texts = ["the cat sat on the mat", "the cats sat on the mats", "a dog ran"] * 10
    tokenizer = WordTokenizer.from_texts(texts)
    keras.utils.set_random_seed(0)
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), 8, 8, num_layers=2, cell_type="peephole_lstm",
                            require_cudnn=False)
    lm = LanguageModel(backbone, preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "sentence"))
    ids = lm.preprocessor(texts).numpy()
    peephole = backbone.recurrent_layers[0].cell.input_peephole
    before = peephole.numpy().copy()
    lm.compile(optimizer=keras.optimizers.Adam(0.01))
    history = lm.fit(ids[:, :-1], ids[:, 1:], epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.abs(peephole.numpy() - before).max() > 0  # the peepholes are trained
    lm.save(tmp_path / "lm.keras")
    reloaded = keras.saving.load_model(tmp_path / "lm.keras", safe_mode=True)
    assert reloaded.backbone.cell_type == "peephole_lstm"
    np.testing.assert_allclose(reloaded.backbone.recurrent_layers[1].cell.output_peephole.numpy(),
                               backbone.recurrent_layers[1].cell.output_peephole.numpy())
    np.testing.assert_allclose(reloaded(ids), lm(ids), atol=1e-6)
