import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from textlstm.config import LanguageModelConfig, SentimentConfig, AgreementConfig, load_config
from textlstm.models import LSTMBackbone
from textlstm.models.recurrent import (
    LSTM,
    cudnn_report,
    describe_cudnn_report,
    kernel_path,
    layer_cudnn_problems,
    padding_problems,
)
from textlstm.recipes.run_steps import build_backbone

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "textlstm" / "configs"
# On a GPU Keras runs cuDNN and the hoisted kernel never does: the tests that need it run on CPUs only.
on_the_hoisted_kernel = pytest.mark.skipif(kernel_path() != "hoisted", reason="the hoisted kernel runs on CPUs only")


def pair(units=6, **kwargs):
    """Our LSTM and keras's, with the same weights."""
    ours = LSTM(units, return_sequences=True, return_state=True, **kwargs)
    reference = keras.layers.LSTM(units, return_sequences=True, return_state=True, **kwargs)
    return ours, reference


def run(layer, x, mask, initial_state, mode="eager"):
    """Outputs, and the gradients of a loss on them with respect to the weights, x and the initial state:
    in training, eagerly, traced (`tf.function`) or compiled with XLA."""
    x = tf.constant(x)
    initial_state = None if initial_state is None else [tf.constant(s) for s in initial_state]

    def outputs_and_gradients():
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([x] + (initial_state or []))
            outputs = layer(x, mask=mask, initial_state=initial_state, training=True)
            outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
            loss = tf.reduce_sum(outputs[0] * np.arange(outputs[0].shape[-1]))
            if len(outputs) == 3:  # every step's h, the last h and the last c
                loss += tf.reduce_sum(outputs[1] ** 2) + tf.reduce_sum(outputs[2])
        return outputs, tape.gradient(loss, layer.trainable_variables + [x] + (initial_state or []))

    if mode != "eager":
        outputs_and_gradients = tf.function(outputs_and_gradients, jit_compile=mode == "xla")
    outputs, gradients = outputs_and_gradients()
    return [np.asarray(o) for o in outputs], [np.asarray(g) for g in gradients]


@on_the_hoisted_kernel
@pytest.mark.parametrize("go_backwards, mode", [(False, "eager"), (True, "eager"), (False, "graph"), (True, "xla")])
def test_hoisted_kernel_equals_keras_outputs_states_and_gradients(go_backwards, mode):
    """The written-out gradient (hoisted_recurrence) equals TF's autodiff of Keras's loop: weights, x, h0, c0."""
    rng = np.random.RandomState(0)
    ours, reference = pair(go_backwards=go_backwards)
    x = rng.randn(3, 7, 5).astype("float32")
    state = [rng.randn(3, 6).astype("float32"), rng.randn(3, 6).astype("float32")]
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights([w * 3 for w in ours.get_weights()])  # larger weights: saturating gates too
    ours.set_weights(reference.get_weights())
    assert ours.uses_hoisted_kernel(7)
    (outputs, gradients), (expected, expected_gradients) = (run(ours, x, None, state, mode),
                                                            run(reference, x, None, state, mode))
    assert len(gradients) == 6  # kernel, recurrent kernel, bias, x, h0, c0
    for got, want in zip(outputs + gradients, expected + expected_gradients):
        np.testing.assert_allclose(got, want, atol=2e-5)


@on_the_hoisted_kernel
def test_hoisted_kernel_gradient_of_the_last_output_alone():
    """return_sequences=False: the gradient reaches the weights through the last h only (the others get zeros)."""
    rng = np.random.RandomState(4)
    ours, reference = LSTM(6), keras.layers.LSTM(6)
    x = rng.randn(3, 7, 5).astype("float32")
    ours.build(x.shape)
    assert ours.uses_hoisted_kernel(7)
    reference.build(x.shape)
    reference.set_weights(ours.get_weights())
    for got, want in zip(*(sum(run(layer, x, None, None, "graph"), []) for layer in (ours, reference))):
        np.testing.assert_allclose(got, want, atol=2e-5)


@on_the_hoisted_kernel
def test_other_activations_run_keras_loop():
    """The written-out gradient knows tanh and sigmoid only: other activations take Keras's loop."""
    rng = np.random.RandomState(3)
    ours, reference = pair(activation="relu", recurrent_activation="hard_sigmoid")
    x = rng.randn(2, 4, 5).astype("float32")
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(ours.get_weights())
    assert not ours.uses_hoisted_kernel(4) and LSTM(6).uses_hoisted_kernel(4)
    for got, want in zip(*(sum(run(layer, x, None, None), []) for layer in (ours, reference))):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_masked_inputs_run_keras_loop_with_keras_results():
    rng = np.random.RandomState(2)
    ours, reference = pair()
    x = rng.randn(3, 7, 5).astype("float32")
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5], bool)
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(ours.get_weights())
    assert not ours.uses_hoisted_kernel(7, masked=True)
    for got, want in zip(*(run(layer, x, mask, None)[0] for layer in (ours, reference))):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_unknown_or_long_lengths_run_keras_loop():
    rng = np.random.RandomState(1)
    ours, reference = pair()
    x = rng.randn(2, 140, 4).astype("float32")  # > MAX_UNROLLED_STEPS
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(ours.get_weights())
    assert not ours.uses_hoisted_kernel(140) and not ours.uses_hoisted_kernel(None)
    np.testing.assert_allclose(ours(x)[0], reference(x)[0], atol=1e-5)
    unknown_length = tf.function(lambda x: ours(x)[0], input_signature=[tf.TensorSpec((2, None, 4))])
    np.testing.assert_allclose(unknown_length(x[:, :9]), reference(x[:, :9])[0], atol=1e-5)


def test_unmasked_stream_call_equals_masked_call_on_unpadded_windows():
    """padded=False (hoisted kernel) and padded=True (a mask: Keras's loop) agree on windows without padding."""
    backbone = LSTMBackbone(40, embedding_dim=6, hidden_dim=5, num_layers=2)
    ids = np.random.RandomState(0).randint(1, 40, size=(3, 8)).astype("int32")
    masked, masked_states = backbone(ids, return_state=True)
    unmasked, unmasked_states = backbone(ids, return_state=True, padded=False)
    np.testing.assert_allclose(masked, unmasked, atol=1e-6)
    np.testing.assert_allclose(masked_states[-1][1], unmasked_states[-1][1], atol=1e-6)
    # The last evaluation window of a stream (keep_last) is padded at its end in every row: unmasked, the
    # real positions, whose targets are the only ones weighed, still get exactly the masked outputs.
    tail = ids.copy()
    tail[:, 5:] = 0
    state = [[np.random.RandomState(i).randn(3, 5).astype("float32") for i in range(2)] for _ in range(2)]
    np.testing.assert_allclose(backbone(tail, initial_state=state)[:, :5],
                               backbone(tail, initial_state=state, padded=False)[:, :5], atol=1e-6)


def test_config_round_trip_and_bad_cpu_kernel():
    layer = LSTM(3, cpu_kernel="keras")
    assert LSTM.from_config(layer.get_config()).cpu_kernel == "keras"
    with pytest.raises(ValueError, match="`cpu_kernel` must be one of .* received 'fast'"):
        LSTM(3, cpu_kernel="fast")
    assert kernel_path() == ("cudnn" if tf.config.list_logical_devices("GPU") else "hoisted")


def shipped_configs():
    classes = {"agreement": AgreementConfig, "sst": SentimentConfig, "mr": SentimentConfig}
    for path in sorted(CONFIGS.glob("*.json")):
        config_class = next((c for prefix, c in classes.items() if path.name.startswith(prefix)), LanguageModelConfig)
        yield path, config_class


@pytest.mark.parametrize("path,config_class", list(shipped_configs()), ids=lambda value: getattr(value, "name", ""))
def test_every_shipped_config_is_cudnn_eligible(path, config_class):
    config = load_config(config_class, str(path))
    bidirectional = config_class is not LanguageModelConfig
    report = cudnn_report(build_backbone(config, 50, bidirectional=bidirectional),
                          sample_ids=np.array([[1, 5, 6, 2, 0]], "int32"))
    assert report["eligible"], describe_cudnn_report(report)
    assert len(report["layers"]) == config.num_layers * (2 if bidirectional else 1)
    assert json.loads(json.dumps(report)) == report


@pytest.mark.parametrize("setting,expected", [
    (dict(activation="relu"), "activation='relu' (cuDNN needs 'tanh')"),
    (dict(recurrent_activation="hard_sigmoid"), "recurrent_activation='hard_sigmoid'"),
    (dict(recurrent_dropout=0.1), "recurrent_dropout=0.1"),
    (dict(unroll=True), "unroll=True"),
    (dict(use_bias=False), "use_bias=False"),
    (dict(cell_type="peephole_lstm"), "cell PeepholeLSTMCell has no cuDNN kernel"),
])
def test_each_ineligible_setting_is_reported(setting, expected):
    backbone = LSTMBackbone(30, embedding_dim=4, hidden_dim=4, num_layers=2, bidirectional=True,
                            require_cudnn=False, **setting)
    report = cudnn_report(backbone)
    assert not report["eligible"] and not backbone.cudnn_eligible
    assert all(any(expected in problem for problem in entry["problems"]) for entry in report["layers"])
    assert len(report["layers"]) == 4 and expected in describe_cudnn_report(report)


def test_use_cudnn_false_and_gru_reset_after_are_reported():
    assert layer_cudnn_problems(keras.layers.GRU(4, reset_after=False, use_cudnn=False)) == [
        "reset_after=False (cuDNN needs True)", "use_cudnn=False"]
    assert layer_cudnn_problems(keras.layers.GRU(4)) == []


def test_padding_problems_name_left_padded_and_empty_rows():
    ids = np.array([[3, 4, 0], [0, 3, 4], [0, 0, 0], [5, 6, 7]], "int32")
    assert padding_problems(ids) == ["row 1 is not right padded (padding before a real token)",
                                     "row 2 is fully padded (no real token)"]
    report = cudnn_report(LSTMBackbone(30, embedding_dim=4, hidden_dim=4, num_layers=1), sample_ids=ids)
    assert not report["eligible"] and len(report["data_problems"]) == 2
    assert padding_problems(ids[[0, 3]]) == []
