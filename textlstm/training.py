"""Training plumbing shared by every task: optimizers, schedules, callbacks."""

import csv
import gc
import logging
import math
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from textlstm.checkpoints import TrainingCheckpoint
from textlstm.runs import atomic_path

logger = logging.getLogger(__name__)


def cpu_description():
    """The CPU as benchmarks and speed choices record it: model name, family/model, vector extensions, cores."""
    fields, flags = {}, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores"
    vector = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "no AVX2")
    return (f"{fields.get('model name', 'unknown CPU')} (family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}, {vector}), {os.cpu_count()} logical cores")


def xla_is_measured(setting, sampled_softmax=0, mode="stream"):
    """Whether `jit_compile=setting` leaves XLA to a measurement on this machine (`choose_jit_compile`).

    "true"/"false" force it. "auto" measures it only where it can help: on a
    CPU, with the full softmax (XLA has no kernel for TF's candidate
    sampler), on the fixed-shape windows of stream mode (in sentence mode
    every bucket shape would compile again); on a GPU it stays off (the fused
    cuDNN kernel, which XLA cannot compile, is faster).
    """
    on_cpu = not tf.config.list_physical_devices("GPU")
    return setting == "auto" and on_cpu and mode == "stream" and not sampled_softmax


def choose_jit_compile(setting, build_compiled_model, data, steps=5, **measure):
    """XLA on or off for a training run: forced by `setting`, or timed here when `xla_is_measured`.

    Whether XLA speeds a training step up depends on the CPU, not only on
    the model: for 2x200 LSTMs it measured 1.7x faster on one Intel machine
    (BENCHMARKS.md) and 1.7x slower on an AMD EPYC (the measurement quoted in
    issue 11), so it is never fixed from one machine's numbers. "auto" times
    `steps` training steps (after a warm-up that traces and compiles) of two
    throwaway models, without and with XLA, on the run's own data, and keeps
    the faster. A recipe records the choice in the run directory
    (`RunDirectory.remember`), so a resumed run does not change it.

    Args:
        setting: "auto", "true" or "false".
        build_compiled_model: function of `jit_compile` (bool) returning a
            fresh compiled model (the run's model stays untouched).
        data: the training dataset.
        steps: steps run per variant (all but the first are timed).
        **measure: `xla_is_measured`'s keyword arguments.

    Returns:
        A dict: `chosen` (bool), `setting`, `cpu`, and when measured
        `ms_per_step` of each variant.
    """
    if setting not in ("auto", "true", "false"):
        raise ValueError(f"`setting` must be 'auto', 'true' or 'false', received {setting!r}.")
    if steps < 2:
        raise ValueError(f"`steps` must be at least 2 (the first step is not timed), received {steps!r}.")
    choice = {"setting": setting, "cpu": cpu_description()}
    if setting != "auto" or not xla_is_measured(setting, **measure):
        return {**choice, "chosen": setting == "true"}
    milliseconds = {}
    for jit_compile in (False, True):
        model = build_compiled_model(jit_compile)
        model.fit(data.take(2), epochs=1, verbose=0)  # trace and compile
        timer = StepTimer()
        model.fit(data.take(steps), epochs=1, verbose=0, callbacks=[timer])
        milliseconds["xla" if jit_compile else "no_xla"] = (timer.end - timer.start) / (steps - 1) * 1000
        del model
        gc.collect()  # the throwaway models' reference cycles: free them before training
    chosen = milliseconds["xla"] < milliseconds["no_xla"]
    logger.info("jit_compile=auto: %.1f ms/step with XLA, %.1f without, on %s: training %s XLA",
                milliseconds["xla"], milliseconds["no_xla"], choice["cpu"], "with" if chosen else "without")
    return {**choice, "chosen": chosen, "ms_per_step": milliseconds}


class StepTimer(keras.callbacks.Callback):
    """`end - start`: from the end of a `fit`'s first step (tracing, warm-up) to the end of its last, so
    steps only, not `fit`'s setup or teardown; divide by the steps minus one."""

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])  # waits for the step to finish
        if batch == 0:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def _with_l2_penalty(optimizer_class):
    """`optimizer_class` whose update adds `l2 * w` to each gradient: the classic L2 penalty
    (what torch's `weight_decay` does), as opposed to Keras's decoupled `weight_decay`."""

    class WithL2Penalty(optimizer_class):
        def __init__(self, l2, **kwargs):
            super().__init__(**kwargs)
            self.l2 = l2

        def update_step(self, gradient, variable, learning_rate):
            if len(variable.shape) > 1:  # kernels and embeddings, never biases
                gradient = gradient + self.l2 * variable
            return super().update_step(gradient, variable, learning_rate)

    WithL2Penalty.__name__ = f"{optimizer_class.__name__}WithL2Penalty"
    return WithL2Penalty


def make_optimizer(name, learning_rate, clipnorm, weight_decay=0.0, weight_decay_type="decoupled", weight_averaging=0.0):
    """Adam or SGD with global-norm gradient clipping (Pascanu et al. 2013), optional weight decay and averaging.

    Args:
        name: "adam" or "sgd".
        learning_rate: float or a `keras.optimizers.schedules.LearningRateSchedule`.
        clipnorm: float, global gradient-norm clip; 0 = off.
        weight_decay: float; 0 = off.
        weight_decay_type: "decoupled" (SGDW / AdamW, Loshchilov & Hutter
            2019: w -= lr * wd * w beside the update, Keras's `weight_decay`)
            or "l2" (an L2 penalty: wd * w added to the gradient). Biases
            are never decayed.
        weight_averaging: float in [0, 1), the momentum of an exponential
            moving average of the weights that the optimizer keeps (Keras's
            `use_ema`; Polyak & Juditsky 1992); 0 = off. A recipe has the
            average replace the weights at each epoch end
            (`average_weights_each_epoch`).

    Example:
    >>> make_optimizer("adam", 1e-3, 1.0, weight_decay=0.01).weight_decay
    0.01
    """
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    if name not in optimizers:
        raise ValueError(f"`optimizer` must be 'adam' or 'sgd', received {name!r}.")
    if weight_decay_type not in ("decoupled", "l2"):
        raise ValueError(f"`weight_decay_type` must be 'decoupled' or 'l2', received {weight_decay_type!r}.")
    if not 0 <= weight_averaging < 1:
        raise ValueError(f"`weight_averaging` must be in [0, 1), received {weight_averaging!r}.")
    kwargs = dict(learning_rate=learning_rate)
    if weight_averaging:
        kwargs.update(use_ema=True, ema_momentum=weight_averaging)
    if clipnorm:
        kwargs["global_clipnorm"] = clipnorm
    if weight_decay and weight_decay_type == "l2":
        return _with_l2_penalty(optimizers[name])(l2=weight_decay, **kwargs)
    optimizer = optimizers[name](weight_decay=weight_decay or None, **kwargs)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def average_weights_each_epoch(optimizer, steps_per_epoch):
    """Has an optimizer made with `weight_averaging` write its average into the weights at each epoch's last step.

    So validation, the best weights, the epoch-end training checkpoints and
    the saved model all hold the average, and the next epoch trains on from
    it (a mid-epoch checkpoint holds the step's weights, and the average as
    optimizer state). The step count is the optimizer's own, restored with a
    checkpoint, so a continued or resumed run averages at the same steps.
    Optimizers without averaging, and each group's optimizer of a
    `MultiOptimizer` (ULMFiT's discriminative rates), are handled alike; loss
    scaling, which skips steps, is refused.
    """
    def groups(optimizer):  # a MultiOptimizer's optimizers (one per layer group), or the optimizer itself
        return optimizer.optimizers if isinstance(optimizer, keras.optimizers.MultiOptimizer) else [optimizer]

    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        if any(each.use_ema for each in groups(optimizer.inner_optimizer)):  # a skipped step would shift epoch ends
            raise ValueError("`optimizer`: weight averaging cannot run under loss scaling (mixed_float16), "
                             "which skips steps; use float32 or mixed_bfloat16.")
        return
    if not optimizer.built:
        raise ValueError("`optimizer` must be built (a MultiOptimizer finds its groups' optimizers then); "
                         "call it after the checkpoint's restore, which builds it.")
    for each in groups(optimizer):
        if each.use_ema:
            each.ema_overwrite_frequency = steps_per_epoch


@keras.saving.register_keras_serializable(package="textlstm")
class SlantedTriangular(keras.optimizers.schedules.LearningRateSchedule):
    """Slanted triangular learning rates (Howard & Ruder 2018, ULMFiT eq. 3).

    A short linear warm-up over `cut_fraction` of the steps to `maximum`,
    then a long linear decay to `maximum / ratio`. A pure function of the
    step, so a resumed run continues it exactly.

    Example:
    >>> schedule = SlantedTriangular(0.01, total_steps=100)
    >>> [round(float(schedule(step)), 5) for step in (0, 10, 100)]
    [0.00031, 0.01, 0.00031]
    """

    def __init__(self, maximum, total_steps, cut_fraction=0.1, ratio=32.0):
        self.maximum = maximum
        self.total_steps = total_steps
        self.cut_fraction = cut_fraction
        self.ratio = ratio

    def __call__(self, step):
        step = tf.cast(step, "float32")
        cut = max(1.0, self.total_steps * self.cut_fraction)
        rising = step / cut
        falling = 1.0 - (step - cut) / max(1.0, self.total_steps - cut)
        p = tf.clip_by_value(tf.where(step < cut, rising, falling), 0.0, 1.0)
        return self.maximum * (1.0 + p * (self.ratio - 1.0)) / self.ratio

    def get_config(self):
        return {"maximum": self.maximum, "total_steps": self.total_steps,
                "cut_fraction": self.cut_fraction, "ratio": self.ratio}


@keras.saving.register_keras_serializable(package="textlstm")
class GroupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A layer group's rate: `base` (a float or schedule), 0 before `start_step` (gradual unfreezing).

    Example:
    >>> schedule = GroupSchedule(0.5, start_step=10)
    >>> float(schedule(9)), float(schedule(10))
    (0.0, 0.5)
    """

    def __init__(self, base, start_step=0):
        self.base = base
        self.start_step = start_step

    def __call__(self, step):
        rate = self.base(step) if callable(self.base) else tf.constant(self.base, "float32")
        return tf.where(tf.cast(step, "float32") >= self.start_step, rate, 0.0)

    def get_config(self):
        base = keras.saving.serialize_keras_object(self.base) if callable(self.base) else self.base
        return {"base": base, "start_step": self.start_step}

    @classmethod
    def from_config(cls, config):
        base = config["base"]
        return cls(keras.saving.deserialize_keras_object(base) if isinstance(base, dict) else base,
                   config["start_step"])


class TimeBudget(keras.callbacks.Callback):
    """Stops training before an epoch that would not end within `minutes`.

    After each epoch it compares the time left with the longest epoch so
    far, so a run never starts an epoch it cannot finish in the budget.
    With `run_dir`, the epochs of earlier attempts of the same run (its CSV
    log's `epoch_seconds`) count too: a resumed or continued run keeps one
    budget. `epochs`: the run's total (default: `fit`'s). `stopped` says
    whether it stopped the run.
    """

    def __init__(self, minutes, run_dir=None, epochs=None):
        super().__init__()
        self.minutes = minutes
        self.run_dir = run_dir
        self.epochs = epochs  # the run's; `fit`'s own count is shorter in a resumed partial epoch
        self.start = None
        self.stopped = False

    def on_train_begin(self, logs=None):
        if self.start is not None:  # a second `fit` of the same attempt (textlstm.checkpoints.resumable_fit)
            return
        seconds = [row.get("epoch_seconds", 0.0) for row in read_history(self.run_dir)] if self.run_dir else []
        self.start = time.monotonic() - sum(seconds)
        self.last = time.monotonic()
        self.longest = max(seconds, default=0.0)

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        self.last = now
        last_epoch = epoch + 1 >= (self.epochs or self.params.get("epochs", float("inf")))
        if not last_epoch and now - self.start + self.longest > self.minutes * 60:
            logger.info("time budget: %.1f of %.1f min used, another epoch would not fit; stopping after epoch %d",
                        (now - self.start) / 60, self.minutes, epoch + 1)
            self.model.stop_training = True
            self.stopped = True


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the lowest `monitor` in `path`, written atomically.

    The best value so far comes from the run's CSV log when training
    (re)starts, so a resumed run replaces the file only with a better epoch.
    """

    def __init__(self, path, run_dir, monitor="val_loss"):
        super().__init__()
        self.path = path
        self.run_dir = run_dir
        self.monitor = monitor

    def on_train_begin(self, logs=None):
        self.best = min(finite_values(read_history(self.run_dir), self.monitor), default=math.inf)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = value
            with atomic_path(self.path) as tmp_path:
                self.model.save_weights(tmp_path)


class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping (mode "min"), whose best value and patience count start from the run's CSV log."""

    def __init__(self, run_dir, **kwargs):
        super().__init__(mode="min", **kwargs)
        self.run_dir = run_dir

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        values = finite_values(read_history(self.run_dir), self.monitor)
        if values:
            best = int(np.argmin(values))  # the first of equal values: only a strict improvement counts
            self.best, self.wait = values[best], len(values) - 1 - best


class ResumedReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras's ReduceLROnPlateau (mode "min") whose counters replay the run's CSV log, as its `on_epoch_end`
    would have moved them (the reduced rate itself is part of the optimizer state a checkpoint restores)."""

    def __init__(self, run_dir, **kwargs):
        super().__init__(mode="min", **kwargs)
        self.run_dir = run_dir

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.monitor_op is None:
            self._set_monitor_op()  # mode "min": less, min_delta negated, as Keras sets it at its first epoch end
        for value in finite_values(read_history(self.run_dir), self.monitor):
            if self.in_cooldown():
                self.cooldown_counter -= 1
                self.wait = 0
            if self._is_improvement(value, self.best):
                self.best, self.wait = value, 0
            elif not self.in_cooldown():
                self.wait += 1
                if self.wait >= self.patience:  # the rate was cut (min_lr is 0): a cooldown starts
                    self.cooldown_counter, self.wait = self.cooldown, 0


def finite_values(history, monitor):
    """`monitor`'s finite values in a CSV log, in epoch order (a NaN epoch is no comparison point)."""
    return [row[monitor] for row in history if monitor in row and math.isfinite(row[monitor])]


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
                       early_stopping_patience=3, time_budget_minutes=0.0, checkpoint_every_steps=0, epochs=None):
    """The callbacks every textlstm run gets, all writing into `run_dir`; train with them through
    `textlstm.checkpoints.resumable_fit`, which needs the `TrainingCheckpoint` (the last of them).

    - `TrainingCheckpoint` (`run_dir/backup`, kept after training): re-running
      the same command after a crash, even a SIGKILL, resumes exactly from
      the last checkpoint (every `checkpoint_every_steps` steps and each epoch
      end), and a finished run can be continued with more epochs; a NaN loss
      stops training.
    - `BestWeights` (`run_dir/checkpoints/best.weights.h5`): best weights by
      `monitor`; `restore_best` in the recipes loads them at the end.
    - The learning-rate schedule: "epoch_decay" (LearningRateScheduler),
      "plateau" (ReduceLROnPlateau on `monitor`) or "none" (the optimizer
      holds its own schedule); EarlyStopping on `monitor`.
    - TensorBoard (`run_dir/logs`) and a CSV log (`run_dir/history.csv`,
      one row per finished epoch; a resume truncates it to the epochs its
      checkpoint had finished).

    Every callback that keeps counts across epochs (best value, patience,
    time used) reads them from the CSV log when training starts. `epochs`:
    the run's total, for the time budget.
    """
    callbacks = [
        EpochTimer(),
        BestWeights(os.path.join(run_dir, "checkpoints", "best.weights.h5"), run_dir, monitor=monitor),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv"), append=True),
    ]
    if lr_schedule == "epoch_decay":
        callbacks.append(keras.callbacks.LearningRateScheduler(
            epoch_decay(learning_rate, lr_decay_factor, lr_decay_start_epoch)))
    elif lr_schedule == "plateau":
        callbacks.append(ResumedReduceLROnPlateau(run_dir, monitor=monitor, factor=lr_decay_factor,
                                                  patience=lr_decay_patience, min_delta=1e-3))
    elif lr_schedule != "none":
        raise ValueError(f"`lr_schedule` must be 'epoch_decay', 'plateau' or 'none', received {lr_schedule!r}.")
    if early_stopping_patience:
        callbacks.append(ResumedEarlyStopping(run_dir, monitor=monitor, patience=early_stopping_patience))
    if time_budget_minutes:
        callbacks.append(TimeBudget(time_budget_minutes, run_dir, epochs=epochs))
    callbacks.append(TrainingCheckpoint(os.path.join(run_dir, "backup"), every_steps=checkpoint_every_steps,
                                        history_path=os.path.join(run_dir, "history.csv"),
                                        learning_rate=learning_rate))
    return callbacks


def stop_reason(callbacks, epochs_done, epochs):
    """Why `fit` ended: "epochs" (all of them ran), "time_budget", "early_stopping" or "stopped"."""
    if epochs_done >= epochs:
        return "epochs"
    for callback in callbacks:
        if isinstance(callback, TimeBudget) and callback.stopped:
            return "time_budget"
        if isinstance(callback, keras.callbacks.EarlyStopping) and callback.stopped_epoch > 0:
            return "early_stopping"
    return "stopped"


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

