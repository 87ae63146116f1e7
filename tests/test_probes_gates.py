"""Gates recomputed from the weights equal the fused layers; inspect, interventions and the pictures."""

import keras
import numpy as np
import pytest

from textlstm.models import AgreementClassifier, LanguageModel, LSTMBackbone, SentimentClassifier
from textlstm.preprocessors import ClassifierPreprocessor, LanguageModelPreprocessor
from textlstm.probes.gates import GATES, Intervention, inspect, plot_gate_heatmap, plot_unit_traces, save_trace, unroll
from textlstm.tokenizers import WordTokenizer

IDS = np.array([[3, 4, 5, 9, 2, 7], [6, 7, 8, 0, 0, 0], [8, 0, 0, 0, 0, 0]], "int32")  # right padded
MASK = IDS != 0


def randomized(cell_type, bidirectional, seed=0):
    """A 2-layer backbone with large random weights, so every gate matters."""
    backbone = LSTMBackbone(30, 8, 6, num_layers=2, cell_type=cell_type, bidirectional=bidirectional,
                            require_cudnn=cell_type != "peephole_lstm")
    backbone(IDS)
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    return backbone


def random_state(backbone, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=(len(IDS), backbone.hidden_dim)).astype("float32")
             for _ in range(backbone.states_per_layer)] for _ in range(backbone.num_layers)]


@pytest.mark.parametrize("cell_type", ["lstm", "gru", "peephole_lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("carried", [False, True])
def test_recomputed_outputs_and_final_states_equal_the_fused_layers(cell_type, bidirectional, carried):
    backbone = randomized(cell_type, bidirectional)
    state = random_state(backbone) if carried else None
    sequence, final_states = backbone(IDS, initial_state=state, return_state=True)
    unrolled = unroll(backbone, IDS, initial_state=state)
    difference = np.abs(np.asarray(sequence) - unrolled.outputs)[MASK]  # real tokens of a padded batch
    assert difference.max() < 1e-5
    for fused, ours in zip(final_states, unrolled.final_states):
        assert len(fused) == len(ours) == backbone.states_per_layer
        for a, b in zip(fused, ours):
            assert np.abs(np.asarray(a) - b).max() < 1e-5
    gates = unrolled.layers[1]["backward" if bidirectional else "forward"]
    assert set(gates) == set(GATES[cell_type])
    assert np.all(gates["h"][~MASK] == 0)  # padding records nothing


@pytest.mark.parametrize("cell_type", ["lstm", "peephole_lstm"])
def test_cell_state_at_every_position_equals_the_fused_final_state_of_that_prefix(cell_type):
    backbone = randomized(cell_type, bidirectional=False)
    state = random_state(backbone)
    unrolled = unroll(backbone, IDS, initial_state=state)
    for t in range(IDS.shape[1]):
        prefix = np.where(np.arange(IDS.shape[1]) <= t, IDS, 0)  # the tokens up to t, the rest padding
        _, final_states = backbone(prefix, initial_state=state, return_state=True)
        for layer in range(backbone.num_layers):
            rows = MASK[:, t]
            fused_h, fused_c = (np.asarray(s) for s in final_states[layer])
            np.testing.assert_allclose(unrolled.layers[layer]["forward"]["c"][rows, t], fused_c[rows], atol=1e-5)
            np.testing.assert_allclose(unrolled.layers[layer]["forward"]["h"][rows, t], fused_h[rows], atol=1e-5)


def test_gates_obey_the_lstm_equations():
    gates = unroll(randomized("lstm", False), IDS).layers[0]["forward"]
    for name in "ifo":
        assert np.all((gates[name] >= 0) & (gates[name] <= 1))
    previous_c = np.concatenate([np.zeros_like(gates["c"][:, :1]), gates["c"][:, :-1]], axis=1)
    np.testing.assert_allclose(gates["c"][MASK], (gates["f"] * previous_c + gates["i"] * gates["g"])[MASK], atol=1e-6)
    np.testing.assert_allclose(gates["h"][MASK], (gates["o"] * np.tanh(gates["c"]))[MASK], atol=1e-6)


def test_gru_reset_before_convention():
    layer = keras.layers.GRU(4, return_sequences=True, reset_after=False)
    backbone = LSTMBackbone(30, 8, 4, num_layers=1, cell_type="gru")
    backbone(IDS)
    inputs = backbone.token_embedding(IDS)
    layer(inputs)
    backbone.recurrent_layers[0] = keras.layers.GRU(4, return_sequences=True, return_state=True, reset_after=False)
    backbone.recurrent_layers[0].build(inputs.shape)
    backbone.recurrent_layers[0].set_weights(layer.get_weights())
    ours = unroll(backbone, IDS).outputs
    np.testing.assert_allclose(ours[MASK], np.asarray(layer(inputs, mask=MASK))[MASK], atol=1e-5)


def test_interventions():
    backbone = randomized("lstm", False)
    plain = unroll(backbone, IDS)
    nothing = unroll(backbone, IDS, interventions=[Intervention(0, [], h=0.0)])
    np.testing.assert_array_equal(nothing.outputs, plain.outputs)  # ablating zero units changes nothing
    same = unroll(backbone, IDS, interventions=[Intervention(1, [2, 3], h=plain.layers[1]["forward"]["h"][:, :, [2, 3]],
                                                             c=plain.layers[1]["forward"]["c"][:, :, [2, 3]])])
    np.testing.assert_allclose(same.outputs, plain.outputs, atol=1e-6)  # patching a unit into itself
    ablated = unroll(backbone, IDS, interventions=[Intervention(0, [1], h=0.0)])
    assert np.all(ablated.layers[0]["forward"]["h"][:, :, 1] == 0)
    assert np.abs(ablated.outputs - plain.outputs)[MASK].max() > 1e-3  # and it reaches the top layer
    only_late = unroll(backbone, IDS, interventions=[Intervention(0, [1], h=5.0, positions=np.arange(6) >= 2)])
    np.testing.assert_array_equal(only_late.outputs[:, :2], plain.outputs[:, :2])  # earlier steps untouched
    with pytest.raises(ValueError, match=r"`Intervention.units` must be in \[0, 6\), received \[6\]"):
        unroll(backbone, IDS, interventions=[Intervention(0, [6], h=0.0)])
    with pytest.raises(ValueError, match="GRU has no cell state"):
        unroll(randomized("gru", False), IDS, interventions=[Intervention(0, [0], c=0.0)])


def test_inspect_every_task(tmp_path):
    tokenizer = WordTokenizer.from_texts(["the cat was here", "the cats were here"])
    lm = LanguageModel(LSTMBackbone(tokenizer.vocabulary_size(), 8, 8, num_layers=2),
                       preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
    sentiment = SentimentClassifier(LSTMBackbone(tokenizer.vocabulary_size(), 8, 8, num_layers=1, bidirectional=True),
                                    num_classes=2, preprocessor=ClassifierPreprocessor(tokenizer))
    agreement = AgreementClassifier(LSTMBackbone(tokenizer.vocabulary_size(), 8, 8, num_layers=1, cell_type="gru"),
                                    preprocessor=ClassifierPreprocessor(tokenizer, add_end_token=False))
    texts = ["the cat was here", "the cats"]
    traces = inspect(lm, texts)
    assert [t.tokens for t in traces] == [["</s>", "the", "cat", "was", "here", "</s>"], ["</s>", "the", "cats", "</s>"]]
    assert traces[1].gate("c", layer=1).shape == (4, 8)
    # The padded batch and a batch of one give the same numbers.
    np.testing.assert_allclose(inspect(lm, texts[1:])[0].gate("h", 1), traces[1].gate("h", 1), atol=1e-6)
    fused = lm.backbone(lm.preprocessor(texts[:1]))
    np.testing.assert_allclose(traces[0].gate("h", 1), np.asarray(fused)[0], atol=1e-5)
    bidirectional = inspect(sentiment, texts)[0]
    assert set(bidirectional.layers[0]) == {"forward", "backward"}
    assert set(inspect(agreement, texts)[0].layers[0]["forward"]) == {"z", "r", "n", "h"}
    with pytest.raises(ValueError, match=r"`direction` must be one of \['forward'\], received 'backward'"):
        traces[0].gate("c", 0, "backward")

    save_trace(traces[0], tmp_path / "trace.npz")
    arrays = np.load(tmp_path / "trace.npz")
    assert list(arrays["tokens"]) == traces[0].tokens and arrays["layer1/forward/f"].shape == (6, 8)
    plot_gate_heatmap(bidirectional, tmp_path / "heatmap.png", layer=0, direction="backward")
    plot_unit_traces(inspect(lm, ["the cat was", "the cats were"]), [(1, 0), (0, 3)], tmp_path / "traces.png")
    assert (tmp_path / "heatmap.png").stat().st_size > 1000 and (tmp_path / "traces.png").stat().st_size > 1000
