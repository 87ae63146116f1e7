import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from textlstm import training
from textlstm.checkpoints import count_batches, resumable_fit


def test_epoch_decay_schedule():
    schedule = training.epoch_decay(1.0, 0.5, start_epoch=3)  # 1-based start, Keras epochs are 0-based
    assert [schedule(e) for e in range(5)] == [1.0, 1.0, 0.5, 0.25, 0.125]


def test_jit_compile_is_forced_or_measured_on_this_machine():
    from textlstm.data import stream_windows
    from textlstm.models import LanguageModel, LSTMBackbone

    built = []

    def build(jit_compile):
        built.append(jit_compile)
        lm = LanguageModel(LSTMBackbone(40, embedding_dim=8, hidden_dim=8, num_layers=1))
        lm.compile(keras.optimizers.SGD(1.0), carry_state=True, jit_compile=jit_compile)
        return lm

    data = stream_windows(np.random.RandomState(0).randint(4, 40, size=800), batch_size=4, sequence_length=10)
    assert training.choose_jit_compile("true", build, data)["chosen"] is True and not built
    assert training.choose_jit_compile("false", build, data)["chosen"] is False and not built
    assert training.choose_jit_compile("auto", build, data, sampled_softmax=64) == {
        "setting": "auto", "cpu": training.cpu_description(), "chosen": False}  # XLA cannot compile the sampler
    assert training.choose_jit_compile("auto", build, data, mode="sentence")["chosen"] is False and not built
    choice = training.choose_jit_compile("auto", build, data, steps=3)
    assert built == [False, True]
    assert choice["chosen"] == (choice["ms_per_step"]["xla"] < choice["ms_per_step"]["no_xla"])
    assert "logical cores" in choice["cpu"]
    with pytest.raises(ValueError, match="`setting` must be 'auto', 'true' or 'false', received True"):
        training.choose_jit_compile(True, build, data)


def test_optimizer_clips_by_default():
    optimizer = training.make_optimizer("adam", 1e-3, clipnorm=1.0)
    assert optimizer.global_clipnorm == 1.0
    with pytest.raises(ValueError, match="received 'adagrad'"):
        training.make_optimizer("adagrad", 1e-3, 1.0)


def _tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    return model


def test_time_budget_stops_training():
    x, y = np.zeros((8, 4)), np.zeros((8, 1))
    history = _tiny_model().fit(x, y, epochs=50, verbose=0, callbacks=[training.TimeBudget(minutes=0.0001)])
    assert len(history.history["loss"]) == 1


class _Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated crash")


def _fit(run_dir, model, epochs, extra=(), lr_schedule="epoch_decay"):
    x, y = np.random.RandomState(0).rand(16, 4), np.zeros((16, 1))

    def data():
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

    *callbacks, checkpoint = training.standard_callbacks(run_dir, learning_rate=0.01, early_stopping_patience=2,
                                                         lr_schedule=lr_schedule, lr_decay_patience=0)
    checkpoint.restore(model, count_batches(data()))
    resumable_fit(model, data, checkpoint, epochs, [*callbacks, *extra], validation_data=data(), verbose=0)
    return callbacks


@pytest.mark.parametrize("lr_schedule", ["epoch_decay", "plateau"])
def test_standard_callbacks_resume_after_a_crash(tmp_path, lr_schedule):
    run_dir = str(tmp_path)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(run_dir, _tiny_model(), epochs=4, extra=[_Crash()], lr_schedule=lr_schedule)
    first_attempt = training.read_history(run_dir)
    assert [row["epoch"] for row in first_attempt] == [0, 1]  # the crash came after epoch 2's row was logged
    callbacks = _fit(run_dir, _tiny_model(), epochs=4, lr_schedule=lr_schedule)
    history = training.read_history(run_dir)
    # Epoch 2's checkpoint was never written (the crash came first): it ran again, and its row was replaced.
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    assert history[0] == first_attempt[0]
    assert all("train_seconds" in row for row in history)
    stopping, = [c for c in callbacks if isinstance(c, training.ResumedEarlyStopping)]
    values = [row["val_loss"] for row in history]
    assert stopping.best == min(values)  # counted across both attempts: the second fit replayed the first's log
    assert os.path.exists(os.path.join(run_dir, "checkpoints", "best.weights.h5"))
    assert os.listdir(os.path.join(run_dir, "logs"))


def test_a_fresh_start_does_not_repeat_an_earlier_attempts_history(tmp_path):
    run_dir = str(tmp_path)
    for _ in range(2):  # the second finds the checkpoint at epoch 2 of 2: it trains nothing more
        _fit(run_dir, _tiny_model(), epochs=2)
    assert [row["epoch"] for row in training.read_history(run_dir)] == [0, 1]


@pytest.mark.parametrize("weight_decay_type, expected_kernel_factor", [("l2", 1 - 0.1 * 0.5), ("decoupled", 1 - 0.1 * 0.5)])
def test_weight_decay_shrinks_kernels_but_never_biases(weight_decay_type, expected_kernel_factor):
    layer = keras.layers.Dense(3, bias_initializer="ones")
    layer.build((None, 4))
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    optimizer = training.make_optimizer("sgd", 0.1, clipnorm=0, weight_decay=0.5, weight_decay_type=weight_decay_type)
    optimizer.apply([np.zeros_like(kernel), np.zeros_like(bias)], [layer.kernel, layer.bias])  # zero gradients
    np.testing.assert_allclose(layer.kernel.numpy(), kernel * expected_kernel_factor, rtol=1e-6)
    np.testing.assert_array_equal(layer.bias.numpy(), bias)


def test_the_l2_penalty_differs_from_decoupled_decay_under_adam():
    """Adam normalises the L2 gradient term away, decoupled decay is not (Loshchilov & Hutter 2019)."""
    results = {}
    for kind in ("l2", "decoupled"):
        variable = keras.Variable(np.full((2, 2), 2.0, "float32"))
        optimizer = training.make_optimizer("adam", 0.01, clipnorm=0, weight_decay=0.1, weight_decay_type=kind)
        optimizer.apply([np.zeros((2, 2), "float32")], [variable])
        results[kind] = float(variable.numpy()[0, 0])
    assert results["decoupled"] == pytest.approx(2.0 * (1 - 0.01 * 0.1), rel=1e-6)
    assert results["l2"] == pytest.approx(2.0 - 0.01, rel=1e-3)  # one Adam step of size lr on the penalty


def test_weight_averaging_validates_the_average_of_the_epochs_steps():
    """With `weight_averaging`, the weights validated at an epoch end are the moving average of the weights after
    each of its steps (a twin without averaging gives those), mid-epoch weights are the steps' own, and the next
    epoch trains on from the average."""
    x, y = np.random.RandomState(0).rand(16, 4), np.random.RandomState(1).rand(16, 1)
    seen = {}

    class Record(keras.callbacks.Callback):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def on_train_batch_end(self, batch, logs=None):
            seen.setdefault(self.name, []).append(self.model.get_weights()[0].copy())

        def on_test_begin(self, logs=None):  # validation reads these
            seen.setdefault(f"{self.name} validated", []).append(self.model.get_weights()[0].copy())

    for name, averaging in (("plain", 0.0), ("averaged", 0.5)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(training.make_optimizer("sgd", 0.5, clipnorm=0, weight_averaging=averaging), "mse")
        model.optimizer.build(model.trainable_variables)
        training.average_weights_each_epoch(model.optimizer, steps_per_epoch=4)
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, validation_data=(x, y), verbose=0,
                  callbacks=[Record(name)])
    steps = seen["plain"][:4]  # epoch 1's weights after each step, as trained without averaging
    average = steps[0]  # Keras starts the average at the first step's weights
    for weights in steps[1:]:
        average = 0.5 * average + 0.5 * weights
    np.testing.assert_allclose(seen["averaged validated"][0], average, rtol=1e-6)
    np.testing.assert_allclose(seen["averaged"][:3], steps[:3], rtol=1e-6)  # mid-epoch: not averaged
    assert not np.allclose(seen["averaged validated"][0], steps[3])
    assert not np.allclose(seen["averaged"][4], seen["plain"][4])  # epoch 2 starts from the average
    with pytest.raises(ValueError, match=r"`weight_averaging` must be in \[0, 1\), received 1.0"):
        training.make_optimizer("sgd", 0.5, clipnorm=0, weight_averaging=1.0)
    scaled = keras.optimizers.LossScaleOptimizer(training.make_optimizer("sgd", 0.5, clipnorm=0, weight_averaging=0.5))
    with pytest.raises(ValueError, match="weight averaging cannot run under loss scaling"):
        training.average_weights_each_epoch(scaled, steps_per_epoch=4)
