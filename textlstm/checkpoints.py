"""Training checkpoints that resume exactly, from any step.

Keras's `BackupAndRestore` resumes at epoch boundaries, writes its files in
place, and holds neither the data position, nor the random-seed states, nor
the LSTM state carried between BPTT windows. A `TrainingCheckpoint` holds all
of them, so a run killed at any step (SIGKILL included) and run again ends
with the weights of an uninterrupted run with the same seed.

    run_dir/backup/
        step-00000120/        the newest checkpoint
            model.weights.h5  weights and optimizer state (its step count drives the schedules)
            state.npz         seed states, the epoch's metric totals and the carried LSTM state (the last two
                              restored only within an epoch: a new epoch starts them afresh)
            position.json     epoch, step in the epoch, global step: written last
        step-00000100/        the one before it, kept until a newer one is complete

Each checkpoint is written into a temporary folder (`.step-00000120.tmp-*`),
every file fsynced, then renamed: a folder without `position.json`, or a
temporary one, is never read. A checkpoint that cannot be read anyway (a
disk error, a file cut short) is skipped, with a warning, for the one before
it.

The data position: `resumable_fit` trains on the dataset repeated, skipping
the batches already trained. Skipped batches are read and preprocessed again
but never reach the model; the input pipeline runs > 100x faster than
training (BENCHMARKS.md), so a resume costs under 1% of the time already
trained. This needs a function that builds a training dataset yielding the
same batches in the same order each time (textlstm's do: streams are
unshuffled, sentences are shuffled with a fixed seed).

Example:
>>> import tempfile
>>> import numpy as np
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> def data():
...     return tf.data.Dataset.from_tensor_slices((np.ones((8, 4)), np.zeros((8, 1)))).batch(2)
>>> checkpoint = TrainingCheckpoint(tempfile.mkdtemp(), every_steps=3)
>>> position = checkpoint.restore(model, count_batches(data()))
>>> resumable_fit(model, data, checkpoint, epochs=2, verbose=0)
>>> checkpoint.checkpoints()  # steps 6 and 8: the end of epoch 2 and the one before it
['step-00000008', 'step-00000006']
"""

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import zipfile

import keras
import numpy as np
import tensorflow as tf

from textlstm.runs import fsync, write_text

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step-"
UNREADABLE = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)  # a damaged checkpoint
WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.npz"
POSITION_FILE = "position.json"


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss (or weight); the last good checkpoint is kept."""


@dataclasses.dataclass
class Position:
    """Where training stands: `epoch` epochs finished, then `step_in_epoch` steps of the next; `stopped`: a
    callback (early stopping, the time budget) ended training at that epoch end."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    stopped: bool = False


def count_batches(dataset):
    """Batches per epoch of a finite dataset: its cardinality, or counted by reading it once."""
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError("`dataset` must be finite (one epoch), received a dataset of infinite cardinality.")
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def default_training_state(model):
    """The state `model` needs beside its weights and optimizer to resume exactly, as a dict of variable lists:

    - "run": the random-seed states of the layers (dropout masks, sampled
      negatives), which `save_weights` leaves out;
    - "epoch": state that starts afresh each epoch, needed to resume within
      one: the metric totals of the epoch so far.

    A model adds its own by defining `training_state_variables()` (the
    language model adds the LSTM state it carries between windows).
    """
    weights = {id(weight) for weight in model.weights}
    return {"run": [v for v in model.variables if id(v) not in weights], "epoch": list(model.metrics_variables)}


def training_state(model):
    method = getattr(model, "training_state_variables", None)
    return method() if method else default_training_state(model)


def checkpoint_bytes(model):
    """Bytes one checkpoint of `model` takes: its weights and optimizer variables."""
    variables = list(model.weights) + list(model.optimizer.variables if model.optimizer else [])
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves everything a run needs to resume exactly, every `every_steps` steps and at each epoch end.

    It also stops training with `NonFiniteLossError` when the loss turns NaN
    or infinite, before any checkpoint holds the broken weights: the message
    names the step and the checkpoint a resumed run (e.g. with a lower
    `learning_rate`) starts from.

    Call `restore(model, steps_per_epoch)` before training (`resumable_fit`
    does), and put this callback after every callback that writes epoch
    results (the CSV log): what it saved is what happened.

    Args:
        directory: the checkpoints' folder (`run_dir/backup`).
        every_steps: int, steps between checkpoints within an epoch; 0 =
            epoch ends only.
        keep: int, complete checkpoints kept (the newest first).
        history_path: the run's CSV log (one row per epoch); `restore`
            truncates it to the epochs the restored checkpoint had finished,
            and a fresh start removes it; each checkpoint fsyncs it first.
        learning_rate: float, the run's configured rate, recorded in each
            checkpoint: when it differs at `restore` (a run resumed with a
            lower rate after a NaN loss), the optimizer's plain rate
            variables take the new value instead of the checkpoint's.
    """

    def __init__(self, directory, every_steps=0, keep=2, history_path=None, learning_rate=None):
        super().__init__()
        if every_steps < 0:
            raise ValueError(f"`every_steps` must not be negative, received {every_steps!r}.")
        if keep < 1:
            raise ValueError(f"`keep` must be at least 1, received {keep!r}.")
        self.directory = directory
        self.every_steps = every_steps
        self.keep = keep
        self.history_path = history_path
        self.learning_rate = learning_rate
        self.position = Position()
        self.steps_per_epoch = None
        self._pending = None  # the restored state arrays, assigned when the first epoch begins

    def checkpoints(self):
        """Names of the complete checkpoints, newest first."""
        if not os.path.isdir(self.directory):
            return []
        names = [name for name in os.listdir(self.directory) if name.startswith(CHECKPOINT_PREFIX)
                 and os.path.exists(os.path.join(self.directory, name, POSITION_FILE))]
        return sorted(names, reverse=True)  # zero-padded step numbers

    def restore(self, model, steps_per_epoch, step=None):
        """Loads the newest readable checkpoint into `model`; returns its `Position` (zero when there is none).

        Weights and optimizer state are loaded now; seed states, and within
        an epoch its metric totals and carried state, when training's first
        epoch begins (after `fit` has reset them).

        `step` (several workers, `textlstm.distributed`): the newest step
        every worker has; this worker's newer checkpoints are deleted, as
        training goes on from `step`.

        Raises:
            ValueError: the checkpoint was taken with another number of
                batches per epoch (the training data changed).
            RuntimeError: checkpoints exist but none can be read.
            OSError: the disk lacks room for the checkpoints training will write.
        """
        self.set_model(model)
        self.steps_per_epoch = steps_per_epoch
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its variables are loaded, and counted below
        self._check_free_space(model)
        problems = []
        names = self.checkpoints()
        if step is not None:
            for name in [name for name in names if checkpoint_step(name) > step]:
                logger.warning("removing checkpoint %s: not every worker reached it", os.path.join(self.directory, name))
                _remove(os.path.join(self.directory, name))
            names = [name for name in names if checkpoint_step(name) <= step]
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                position, saved = self._read_position(path)
            except UNREADABLE as error:
                self._set_aside(path, error, problems)
                continue
            if saved["steps_per_epoch"] != steps_per_epoch:
                raise ValueError(
                    f"checkpoint {path} was taken with {saved['steps_per_epoch']} batches per epoch, but the "
                    f"training data now has {steps_per_epoch}: the data changed, so it cannot resume. Restore "
                    f"the data, or train in a new run_dir.")
            rates = [v for v in model.optimizer.variables if v.path.endswith("learning_rate")] if model.optimizer \
                else []
            configured = [keras.ops.convert_to_numpy(rate) for rate in rates]
            try:
                self._load(model, path)
            except UNREADABLE as error:
                self._set_aside(path, error, problems)
                continue
            if self.learning_rate is not None and saved.get("learning_rate") not in (None, self.learning_rate):
                logger.info("learning_rate %s, not the checkpoint's %s", self.learning_rate, saved["learning_rate"])
                for rate, value in zip(rates, configured):  # schedules are rebuilt from the config anyway
                    rate.assign(value)
            if problems:
                logger.warning("resuming from the older checkpoint %s (newer ones unreadable: %s)", path,
                               "; ".join(problems))
            logger.info("resuming from %s: %d epochs and %d steps done (step %d)", path, position.epoch,
                        position.step_in_epoch, position.global_step)
            self.position = position
            self._truncate_history(position.epoch)
            return position
        if problems:
            raise RuntimeError(f"no readable checkpoint in {self.directory} ({'; '.join(problems)}); move that "
                               f"folder away to train from the start.")
        self._truncate_history(0)
        self.position = Position()
        return self.position

    def _read_position(self, path):
        with open(os.path.join(path, POSITION_FILE), encoding="utf-8") as f:
            saved = json.load(f)
        position = Position(saved["epoch"], saved["step_in_epoch"], saved["global_step"], saved.get("stopped", False))
        return position, saved

    def _set_aside(self, path, error, problems):
        """Renames an unreadable checkpoint to `.unreadable-NAME` (kept for inspection, never read or counted)."""
        name = os.path.basename(path)
        problems.append(f"{name}: {error}")
        logger.warning("checkpoint %s cannot be read (%s); set aside as .unreadable-%s, trying the one before it",
                       path, error, name)
        os.replace(path, os.path.join(self.directory, f".unreadable-{name}"))

    def _load(self, model, path):
        model.load_weights(os.path.join(path, WEIGHTS_FILE))
        with np.load(os.path.join(path, STATE_FILE), allow_pickle=False) as archive:
            self._pending = {key: archive[key] for key in archive.files}

    def _truncate_history(self, epochs):
        """Keeps the CSV log's first `epochs` rows: an epoch logged after the restored checkpoint runs again."""
        if not self.history_path or not os.path.exists(self.history_path):
            return
        if not epochs:
            os.remove(self.history_path)
            return
        with open(self.history_path, encoding="utf-8") as f:
            lines = f.readlines()
        if len(lines) > epochs + 1:  # the header, then one row per epoch
            write_text("".join(lines[: epochs + 1]), self.history_path)

    def _check_free_space(self, model):
        size = checkpoint_bytes(model)
        needed = (self.keep + 1 - len(self.checkpoints()[: self.keep])) * size  # to hold keep + 1 at a time
        os.makedirs(self.directory, exist_ok=True)
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            raise OSError(
                f"{self.directory}: {free / 1e6:.1f} MB free, but training needs {needed / 1e6:.1f} MB more for "
                f"its checkpoints ({size / 1e6:.1f} MB each, {self.keep + 1} at a time); free some space or "
                f"choose another run_dir.")

    def on_epoch_begin(self, epoch, logs=None):
        if self._pending is None:
            return
        state = training_state(self.model)
        groups = ["run"] + (["epoch"] if self.position.step_in_epoch else [])  # else a new epoch starts afresh
        for group in groups:
            for index, variable in enumerate(state[group]):
                key = f"{group}_{index}"
                if key not in self._pending or self._pending[key].shape != tuple(variable.shape):
                    raise ValueError(f"checkpoint state {key} does not match the model's {variable.path} "
                                     f"{tuple(variable.shape)}: was the model changed?")
                variable.assign(self._pending[key])
        self._pending = None

    def on_train_batch_end(self, batch, logs=None):
        self.position.step_in_epoch += 1
        self.position.global_step += 1
        self._check_loss(logs)
        within_epoch = self.position.step_in_epoch < (self.steps_per_epoch or float("inf"))
        if self.every_steps and within_epoch and self.position.global_step % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self._check_loss(logs)
        self.position.epoch = epoch + 1
        self.position.step_in_epoch = 0
        self.position.stopped = bool(self.model.stop_training)  # the callbacks before this one have decided
        self.save()

    def _check_loss(self, logs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(f"the training loss became {float(loss)}")

    def _check_weights(self):
        if not all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in self.model.trainable_weights):
            self._stop("a weight became NaN or infinite")

    def _stop(self, what):
        newest = self.checkpoints()
        kept = (f"the last good checkpoint, {os.path.join(self.directory, newest[0])}, is kept" if newest
                else "no checkpoint was written before it")
        raise NonFiniteLossError(
            f"{what} at step {self.position.global_step} (epoch {self.position.epoch + 1}, step "
            f"{self.position.step_in_epoch} of it); training stopped and {kept}. Run the same command again "
            f"with a lower learning_rate (or a smaller clipnorm) to resume from it.")

    def save(self):
        """Writes a checkpoint of the current step (temporary folder, fsync, rename) and prunes old ones."""
        self._check_weights()
        state = training_state(self.model)
        arrays = {f"{group}_{index}": keras.ops.convert_to_numpy(variable)
                  for group in ("run", "epoch") for index, variable in enumerate(state[group])}
        position = {**dataclasses.asdict(self.position), "steps_per_epoch": self.steps_per_epoch,
                    "learning_rate": self.learning_rate}
        if self.history_path and os.path.exists(self.history_path):
            fsync(self.history_path)  # the log on disk is never behind the checkpoint
        name = f"{CHECKPOINT_PREFIX}{self.position.global_step:08d}"
        final = os.path.join(self.directory, name)
        os.makedirs(self.directory, exist_ok=True)
        temporary = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.directory)
        try:
            self._write(temporary, arrays, position, final)
        except OSError as error:  # e.g. the disk filled up: the checkpoints already written stay as they were
            raise OSError(f"{self.directory}: writing checkpoint {name} failed ({error}); the checkpoints "
                          f"before it are intact. Free some space and run the same command again.") from error
        finally:
            if os.path.exists(temporary):
                shutil.rmtree(temporary)
        self._prune()

    def _write(self, temporary, arrays, position, final):
        """The checkpoint's files into `temporary`, fsynced, then the folder renamed to `final`."""
        self.model.save_weights(os.path.join(temporary, WEIGHTS_FILE))
        np.savez(os.path.join(temporary, STATE_FILE), **arrays)
        with open(os.path.join(temporary, POSITION_FILE), "w", encoding="utf-8") as f:
            json.dump(position, f)  # last: a folder with it is complete
        for file_name in os.listdir(temporary):
            fsync(os.path.join(temporary, file_name))
        fsync(temporary)
        if os.path.exists(final):  # this step's checkpoint from an attempt that fell back past it
            _remove(final)
        os.rename(temporary, final)
        fsync(self.directory)

    def _prune(self):
        """Removes checkpoints beyond the `keep` newest, and temporary folders of interrupted writes."""
        for name in self.checkpoints()[self.keep:]:
            _remove(os.path.join(self.directory, name))
        for name in os.listdir(self.directory):
            if name.startswith(f".{CHECKPOINT_PREFIX}"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)


def checkpoint_step(name):
    """The global step of a checkpoint folder's name (`step-00000120` -> 120)."""
    return int(name[len(CHECKPOINT_PREFIX):])


def _remove(path):
    """Deletes a checkpoint folder: renamed first, so a crash mid-delete leaves no half checkpoint behind."""
    doomed = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-deleting")
    os.replace(path, doomed)
    shutil.rmtree(doomed)


def resumable_fit(model, train_data, checkpoint, epochs, callbacks=(), **fit_kwargs):
    """`model.fit` for `epochs` epochs of `train_data()`, from where `checkpoint.restore` left it.

        batches:  epoch 0         epoch 1         epoch 2
                  b0 b1 b2 b3 │ b0 b1 b2 b3 │ b0 b1 b2 b3      train_data().repeat()
                  ─────────────────────▲ restored: 1 epoch + 2 steps
                  skipped (read, never trained)│ fit 1: the rest of epoch 1 │ fit 2: epochs 2..

    Within an epoch, the rest of it is one `fit` of the remaining steps and
    the epochs after it another, so Keras's epoch numbers, the epoch
    callbacks and the data stay aligned. `checkpoint` is added as the last
    callback.

    Args:
        model: a compiled Keras model.
        train_data: a function returning a fresh `tf.data.Dataset` of one
            epoch, which yields the same batches in the same order every time
            it is built. A fresh one per `fit`: a dataset shuffled with
            `reshuffle_each_iteration` keeps its shuffle state in the object,
            so a second pipeline over the same object would start at a later
            epoch's order.
        checkpoint: a `TrainingCheckpoint` whose `restore` ran.
        epochs: int, the epochs the run trains in all.
        callbacks: the other callbacks.
        **fit_kwargs: passed to `fit` (validation_data, verbose, ...).
    """
    if checkpoint.steps_per_epoch is None:
        raise TypeError("`checkpoint`: call `checkpoint.restore(model, steps_per_epoch)` before `resumable_fit`.")
    steps = checkpoint.steps_per_epoch
    position = checkpoint.position
    callbacks = [*callbacks, checkpoint]
    epoch = position.epoch
    if position.step_in_epoch and epoch < epochs:
        data = train_data().repeat().skip(position.global_step)
        model.fit(data, steps_per_epoch=steps - position.step_in_epoch, initial_epoch=epoch, epochs=epoch + 1,
                  callbacks=callbacks, **fit_kwargs)
        epoch += 1
        if model.stop_training:  # early stopping or the time budget, at the end of that epoch
            return
    if epoch < epochs:
        data = train_data().repeat().skip(epoch * steps)
        model.fit(data, steps_per_epoch=steps, initial_epoch=epoch, epochs=epochs, callbacks=callbacks,
                  **fit_kwargs)
