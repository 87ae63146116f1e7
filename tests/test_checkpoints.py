import collections
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from textlstm import checkpoints
from textlstm.checkpoints import NonFiniteLossError, TrainingCheckpoint, count_batches, resumable_fit


def _model(seed=7):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _data():
    rng = np.random.RandomState(0)
    x, y = rng.rand(40, 6).astype("float32"), rng.randint(0, 2, size=40)
    # Reshuffled each epoch from a fixed seed: what resuming needs of a dataset.
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(40, seed=3, reshuffle_each_iteration=True).batch(4)


class _CrashAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            raise RuntimeError("simulated crash")


def _train(directory, epochs=3, every_steps=4, crash_at=None):
    model = _model()
    checkpoint = TrainingCheckpoint(directory, every_steps=every_steps)
    checkpoint.restore(model, count_batches(_data()))
    extra = [_CrashAtStep(crash_at)] if crash_at else []
    history = keras.callbacks.History()
    resumable_fit(model, _data, checkpoint, epochs, [*extra, history], verbose=0)
    return model, checkpoint, history


# 10 steps an epoch, a checkpoint every 4: resumed from steps 4 (epoch 1), 10 (its end), 12 and 16 (epoch 2).
@pytest.mark.parametrize("crash_at", [6, 11, 13, 20])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, crash_at):
    reference, _, reference_history = _train(str(tmp_path / "uninterrupted"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(str(tmp_path / "crashed"), crash_at=crash_at)
    resumed, checkpoint, history = _train(str(tmp_path / "crashed"))
    assert checkpoint.position.global_step == 30
    for expected, actual in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=0)
    # The optimizer state, dropout seeds and the epoch's metric totals came back too: the last epoch's
    # training accuracy (a running mean over the epoch) is the uninterrupted run's.
    assert history.history["accuracy"][-1] == pytest.approx(reference_history.history["accuracy"][-1], abs=1e-6)


def test_two_checkpoints_are_kept_and_written_whole(tmp_path):
    _, checkpoint, _ = _train(str(tmp_path), epochs=2, every_steps=3)
    assert checkpoint.checkpoints() == ["step-00000020", "step-00000018"]
    newest = tmp_path / "step-00000020"
    assert sorted(os.listdir(newest)) == ["model.weights.h5", "position.json", "state.npz"]
    assert json.loads((newest / "position.json").read_text()) == {
        "epoch": 2, "step_in_epoch": 0, "global_step": 20, "stopped": False, "steps_per_epoch": 10,
        "learning_rate": None}


def test_an_unreadable_checkpoint_falls_back_to_the_one_before(tmp_path, caplog):
    _train(str(tmp_path), epochs=2, every_steps=3)
    (tmp_path / "step-00000020" / "model.weights.h5").write_bytes(b"cut short")
    os.makedirs(tmp_path / ".step-00000021.tmp-x")  # a write killed half way: never read
    checkpoint = TrainingCheckpoint(str(tmp_path), every_steps=3)
    position = checkpoint.restore(_model(), count_batches(_data()))
    assert (position.epoch, position.step_in_epoch, position.global_step) == (1, 8, 18)
    assert "step-00000020" in caplog.text and "trying the one before it" in caplog.text


def test_changed_data_or_no_readable_checkpoint_is_refused(tmp_path):
    _train(str(tmp_path), epochs=1, every_steps=0)
    with pytest.raises(ValueError, match=r"taken with 10 batches per epoch, but the training data now has 5"):
        TrainingCheckpoint(str(tmp_path)).restore(_model(), 5)
    (tmp_path / "step-00000010" / "position.json").write_text("{")
    with pytest.raises(RuntimeError, match="no readable checkpoint in .*step-00000010"):
        TrainingCheckpoint(str(tmp_path)).restore(_model(), 10)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model = _model()
    checkpoint = TrainingCheckpoint(str(tmp_path), every_steps=5)
    checkpoint.restore(model, count_batches(_data()))

    class Poison(keras.callbacks.Callback):  # a weight turns NaN after step 6, as a diverging update does
        def on_train_batch_end(self, batch, logs=None):
            if checkpoint.position.global_step == 5:  # the checkpoint callback, last, counts step 6 after this
                self.model.layers[-1].bias.assign([np.nan, 0.0])

    with pytest.raises(NonFiniteLossError, match=r"at step 7 \(epoch 1, step 7 of it\).*step-00000005, is kept.*"
                                                 r"lower learning_rate"):
        resumable_fit(model, _data, checkpoint, 2, [Poison()], verbose=0)
    assert checkpoint.checkpoints() == ["step-00000005"]
    with pytest.raises(NonFiniteLossError, match=r"a weight became NaN or infinite at step 7 \(epoch 1, step 7"):
        checkpoint.save()  # nor does a save once a weight is broken
    with np.load(tmp_path / "step-00000005" / "state.npz") as state:
        assert all(np.isfinite(state[key]).all() for key in state.files)


def test_too_little_disk_space_is_refused_before_training(tmp_path, monkeypatch):
    model = _model()
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OSError, match=r"0.0 MB free, but training needs .* MB more for its checkpoints"):
        TrainingCheckpoint(str(tmp_path)).restore(model, 10)
    assert checkpoints.checkpoint_bytes(model) > 1000


def test_a_restore_truncates_the_csv_log_to_the_checkpoints_epochs(tmp_path):
    history = tmp_path / "history.csv"
    _train(str(tmp_path / "backup"), epochs=1, every_steps=0)
    history.write_text("epoch,loss\n0,1.0\n1,0.5\n")  # epoch 2 was logged, then the run died before its checkpoint
    TrainingCheckpoint(str(tmp_path / "backup"), history_path=str(history)).restore(_model(), 10)
    assert history.read_text() == "epoch,loss\n0,1.0\n"
