"""Training plumbing shared by every task: optimizers, callbacks, run directories."""

import csv
import json
import logging
import os
import time

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


XLA_MAX_HIDDEN_DIM = 256  # measured faster at 200, slower at 650 (BENCHMARKS.md); between: untested


def resolve_jit_compile(setting, sampled_softmax=0, hidden_dim=200, mode="stream"):
    """"true"/"false" force XLA; "auto" turns it on only where it measured faster.

    On CPU, for full-softmax training on fixed-shape BPTT windows, XLA
    measured 1.7x faster with 2x200 LSTMs and 1.75x slower with 2x650
    (BENCHMARKS.md), so "auto" turns it on up to `XLA_MAX_HIDDEN_DIM`.
    It stays off with sampled softmax (XLA has no kernel for TF's candidate
    sampler), in sentence mode (every bucket shape would compile again) and
    on a GPU (the fused cuDNN kernel, which XLA cannot compile, is faster).
    """
    if setting in ("true", "false"):
        return setting == "true"
    on_cpu = not tf.config.list_physical_devices("GPU")
    return on_cpu and mode == "stream" and not sampled_softmax and hidden_dim <= XLA_MAX_HIDDEN_DIM


def make_optimizer(name, learning_rate, clipnorm):
    """Adam or SGD with global-norm gradient clipping (Pascanu et al. 2013)."""
    clip = dict(global_clipnorm=clipnorm) if clipnorm else {}
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, **clip)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, **clip)
    raise ValueError(f"`optimizer` must be 'adam' or 'sgd', received {name!r}.")


class TimeBudget(keras.callbacks.Callback):
    """Stops training before an epoch that would not end within `minutes`.

    After each epoch it compares the time left with the longest epoch so
    far, so a run never starts an epoch it cannot finish in the budget.
    """

    def __init__(self, minutes):
        super().__init__()
        self.minutes = minutes

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        self.last = self.start
        self.longest = 0.0

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        self.last = now
        last_epoch = epoch + 1 >= self.params.get("epochs", float("inf"))
        if not last_epoch and now - self.start + self.longest > self.minutes * 60:
            logger.info("time budget: %.1f of %.1f min used, another epoch would not fit; stopping after epoch %d",
                        (now - self.start) / 60, self.minutes, epoch + 1)
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Adds `train_seconds` (training only) and `epoch_seconds` (with validation) to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.monotonic()
        self.train_end = None

    def on_test_begin(self, logs=None):
        if getattr(self, "start", None) is not None and self.train_end is None:
            self.train_end = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        if logs is not None:
            logs["train_seconds"] = (self.train_end or now) - self.start
            logs["epoch_seconds"] = now - self.start


def epoch_decay(learning_rate, factor, start_epoch):
    """lr for 0-based `epoch`: constant, then x `factor` per epoch from 1-based `start_epoch`."""
    return lambda epoch: learning_rate * factor ** max(0, epoch + 2 - start_epoch)


def standard_callbacks(run_dir, learning_rate, monitor="val_loss", lr_schedule="epoch_decay",
                       lr_decay_factor=0.5, lr_decay_start_epoch=4, lr_decay_patience=0,
                       early_stopping_patience=3, time_budget_minutes=0.0):
    """The callbacks every textlstm run gets, all writing into `run_dir`.

    - BackupAndRestore (`run_dir/backup`): re-running the same command after
      a crash resumes from the last finished epoch.
    - ModelCheckpoint (`run_dir/checkpoints/best.weights.h5`): best weights
      by `monitor`; `restore_best` in the recipes loads them at the end.
    - The learning-rate schedule: "epoch_decay" (LearningRateScheduler) or
      "plateau" (ReduceLROnPlateau on `monitor`); EarlyStopping on `monitor`.
    - TensorBoard (`run_dir/logs`) and a CSV log (`run_dir/history.csv`).

    Resuming (a backup exists), the CSV log is continued and the best
    checkpoint is only replaced by a better epoch; starting afresh, a CSV
    log left by an earlier attempt is removed so no epoch is listed twice.
    """
    backup_dir = os.path.join(run_dir, "backup")
    history_path = os.path.join(run_dir, "history.csv")
    resuming = os.path.isdir(backup_dir)
    if not resuming and os.path.exists(history_path):
        os.remove(history_path)
    best_so_far = [row[monitor] for row in read_history(run_dir) if monitor in row]
    callbacks = [
        EpochTimer(),
        keras.callbacks.BackupAndRestore(backup_dir),
        keras.callbacks.ModelCheckpoint(
            os.path.join(run_dir, "checkpoints", "best.weights.h5"),
            monitor=monitor, save_best_only=True, save_weights_only=True,
            initial_value_threshold=min(best_so_far) if best_so_far else None,
        ),
        keras.callbacks.LearningRateScheduler(epoch_decay(learning_rate, lr_decay_factor, lr_decay_start_epoch))
        if lr_schedule == "epoch_decay" else
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=lr_decay_factor,
                                          patience=lr_decay_patience, min_delta=1e-3),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")),
        keras.callbacks.CSVLogger(history_path, append=True),
    ]
    if early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=early_stopping_patience))
    if time_budget_minutes:
        callbacks.append(TimeBudget(time_budget_minutes))
    return callbacks


def restore_best(model, run_dir):
    """Loads the best checkpoint of `run_dir` into `model`, if there is one."""
    path = os.path.join(run_dir, "checkpoints", "best.weights.h5")
    if os.path.exists(path):
        model.load_weights(path)
        logger.info("restored best weights from %s", path)


def read_history(run_dir):
    """The CSV log of `run_dir` as a list of dicts of floats."""
    path = os.path.join(run_dir, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def write_json(data, path):
    """Writes JSON atomically: a crash never leaves a half-written file."""
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp_path, path)
