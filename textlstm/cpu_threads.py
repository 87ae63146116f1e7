"""TensorFlow's CPU thread pools for a training process: TensorFlow's default, or one thread per op.

TensorFlow runs each op on its intra-op pool and independent ops side by
side on its inter-op pool; by default both have a thread per core. A
bidirectional LSTM's step holds two independent recurrences, each a chain
of small ops. With one thread per op ("parallel_ops") each direction keeps
a core to itself, and no op pays for splitting a small matmul across
threads; a unidirectional stack is one chain, whose ops each lose a core.
Which is faster depends on the CPU and the shapes (BENCHMARKS.md, "CPU
threads"), so "auto" times both on this machine, in child processes
(TensorFlow fixes its pools when its runtime starts), and switches to one
thread per op where that is at least 5% faster:

    training process                        child process, one per setting
    ────────────────                        ──────────────────────────────
    choose_cpu_threads("auto", backbone) ─► textlstm.cpu_threads.main
      (before any TensorFlow op)               set pools, build the classifier,
                                               time `steps` training steps ─► ms/step
    apply_cpu_threads(the choice) ◄──────────────────────────────────────────┘
"""

import argparse
import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from textlstm.config import CPU_THREADS
from textlstm.models import LSTMBackbone, TextClassifier
from textlstm.training import StepTimer, cpu_description

logger = logging.getLogger(__name__)

# "auto" leaves TensorFlow's pools unless one thread per op is at least this much faster: the two settings are
# timed once each, in two processes, and near parity the faster of the two is noise.
SWITCH_MARGIN = 0.05
CHILD_TIMEOUT_SECONDS = 600


def usable_cores():
    """The cores this process may run on (its CPU affinity, as TensorFlow counts them), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def thread_counts(setting):
    """`(inter_op, intra_op)` threads of a setting; 0 leaves TensorFlow's default (a thread per core).

    Args:
        setting: "tensorflow" or "parallel_ops".
    """
    if setting == "tensorflow":
        return 0, 0
    if setting == "parallel_ops":
        return usable_cores(), 1
    raise ValueError(f"`setting` must be 'tensorflow' or 'parallel_ops', received {setting!r}.")


def current_thread_counts():
    """`(inter_op, intra_op)` as this process's TensorFlow is set (0: its default)."""
    return (tf.config.threading.get_inter_op_parallelism_threads(),
            tf.config.threading.get_intra_op_parallelism_threads())


def pools_can_change():
    """Whether TensorFlow's thread pools can still be set in this process (its runtime has not started)."""
    inter_op, _ = current_thread_counts()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op + 1)
    except RuntimeError:
        return False
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    return True


def apply_cpu_threads(setting):
    """Sets TensorFlow's pools for `setting`: True where they are (or already were) so; False, with a warning,
    where its runtime already runs in this process with other pools."""
    if current_thread_counts() == thread_counts(setting):
        return True
    if not pools_can_change():
        logger.warning("cpu_threads: %s pools not applied: TensorFlow already runs in this process (a notebook, a "
                       "test session, a second run) and its thread pools stay as they are.", setting)
        return False
    inter_op, intra_op = thread_counts(setting)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    return True


def threads_are_measured(bidirectional):
    """Whether "auto" times the pools: for a bidirectional backbone, on a CPU of 2+ usable cores.

    A unidirectional stack has no independent recurrences to run side by
    side, and on a GPU the fused cuDNN kernel does the work: there "auto"
    keeps TensorFlow's default without timing anything.
    """
    on_cpu = not tf.config.list_physical_devices("GPU")  # lists devices without starting the runtime
    return bidirectional and on_cpu and usable_cores() >= 2


def time_in_child(setting, backbone_arguments, batch_size, time_steps, steps):
    """Milliseconds per training step of a classifier on the backbone, in a fresh process with `setting`."""
    # `-c`, not `-m`: the package's __init__ imports this module, which runpy would warn of.
    command = [sys.executable, "-c", "import sys; from textlstm.cpu_threads import main; main(sys.argv[1:])",
               "--setting", setting, "--backbone",
               json.dumps(backbone_arguments), "--batch-size", str(batch_size), "--time-steps", str(time_steps),
               "--steps", str(steps)]
    failure = (f"cpu_threads=auto: timing the {setting} pools in a child process (textlstm.cpu_threads.main "
               f"--setting {setting} ...) failed")
    advice = "set cpu_threads=tensorflow or cpu_threads=parallel_ops to train without timing"
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{failure}: no answer in {CHILD_TIMEOUT_SECONDS} s; {advice}.") from error
    if result.returncode:
        how = (f"killed by signal {-result.returncode} (out of memory?)" if result.returncode < 0
               else f"exit code {result.returncode}")
        raise RuntimeError(f"{failure} with {how}; {advice}. Its stderr ends: {result.stderr[-1500:]}")
    try:
        return float(json.loads(result.stdout.strip().splitlines()[-1])["ms_per_step"])
    except (IndexError, ValueError, KeyError, TypeError) as error:
        raise RuntimeError(f"{failure}: it printed no timing ({result.stdout[-300:]!r}); {advice}.") from error


def choose_cpu_threads(setting, backbone_arguments, batch_size, time_steps, steps=6, remembered=None):
    """The pools for a training run, forced by `setting` or timed here; applied unless TensorFlow already runs.

    Call it before the process runs any TensorFlow op. "auto" (where
    `threads_are_measured`) times `steps` training steps of a two-class
    `TextClassifier` on the run's backbone, on batches of `batch_size` x
    `time_steps` random ids (the run's longest batches; bucketed training
    batches are mostly shorter), in one child process per setting, and keeps
    one thread per op only if it is `SWITCH_MARGIN` faster. A resumed run
    passes the choice its run directory recorded as `remembered`: an "auto"
    choice timed and applied on the same CPU is kept.

    Args:
        setting: "auto", "tensorflow" or "parallel_ops".
        backbone_arguments: the run's `LSTMBackbone` arguments (its config).
        batch_size: the run's training batch size.
        time_steps: tokens per row of the timed batches.
        steps: steps timed per setting, after two untimed ones.
        remembered: a dict an earlier `choose_cpu_threads` of this run
            returned, or None.

    Returns:
        A dict: `setting`, `chosen` ("tensorflow" or "parallel_ops"),
        `applied` (False where TensorFlow already ran in this process with
        other pools), `cpu`; `ms_per_step` of each setting when timed, and
        `reason` when "auto" did not time.
    """
    if setting not in CPU_THREADS:
        raise ValueError(f"`setting` must be one of {list(CPU_THREADS)}, received {setting!r}.")
    choice = {"setting": setting, "cpu": cpu_description()}
    timed_before = (setting == "auto" and remembered and remembered.get("setting") == "auto"
                    and remembered.get("cpu") == choice["cpu"] and remembered.get("applied")
                    and "ms_per_step" in remembered)
    if timed_before:
        choice.update(chosen=remembered["chosen"], ms_per_step=remembered["ms_per_step"])
    elif setting != "auto":
        choice["chosen"] = setting
    elif not threads_are_measured(bool(backbone_arguments.get("bidirectional"))):
        choice.update(chosen="tensorflow", reason="no independent recurrences to run side by side, or a GPU")
    elif not pools_can_change():  # the pools this process already runs with
        running = [name for name in ("tensorflow", "parallel_ops") if thread_counts(name) == current_thread_counts()]
        choice.update(chosen=(running or ["tensorflow"])[0],
                      reason="TensorFlow already ran in this process: its pools stay")
    else:
        milliseconds = {name: time_in_child(name, backbone_arguments, batch_size, time_steps, steps)
                        for name in ("tensorflow", "parallel_ops")}
        faster = milliseconds["parallel_ops"] < (1 - SWITCH_MARGIN) * milliseconds["tensorflow"]
        choice.update(chosen="parallel_ops" if faster else "tensorflow", ms_per_step=milliseconds)
    choice["applied"] = apply_cpu_threads(choice["chosen"])
    logger.info("CPU threads: %s, on %s", describe_cpu_threads(choice), choice["cpu"])
    return choice


def describe_cpu_threads(choice):
    """One line for a run's report: the setting, what was chosen and why."""
    details = [f"cpu_threads={choice['setting']}"]
    if "ms_per_step" in choice:
        timed = choice["ms_per_step"]
        details.append(f"timed: {timed['tensorflow']:.0f} ms/step with TensorFlow's pools, "
                       f"{timed['parallel_ops']:.0f} with one thread per op")
    if "reason" in choice:
        details.append(f"not timed: {choice['reason']}")
    line = f"{choice['chosen']} ({'; '.join(details)})"
    return line if choice["applied"] else line + ", not applied: TensorFlow already ran in this process"


def main(argv=None):
    """The child process of `time_in_child`: prints `{"ms_per_step": ...}` as its last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=("tensorflow", "parallel_ops"), required=True)
    parser.add_argument("--backbone", required=True, help="LSTMBackbone arguments, as JSON")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--time-steps", type=int, required=True)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    if not apply_cpu_threads(args.setting):
        raise RuntimeError(f"the {args.setting} pools could not be set: TensorFlow started before the timing")
    keras.utils.set_random_seed(0)
    backbone = LSTMBackbone.from_config(json.loads(args.backbone))
    classifier = TextClassifier(backbone, num_classes=2)
    classifier.compile(keras.optimizers.Adam(1e-3, global_clipnorm=5.0))
    random = np.random.RandomState(0)
    ids = random.randint(4, backbone.vocabulary_size, (args.batch_size, args.time_steps)).astype("int32")
    labels = random.randint(0, 2, (args.batch_size,)).astype("int32")
    data = tf.data.Dataset.from_tensors((ids, labels)).repeat()
    classifier.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace
    timer = StepTimer()
    classifier.fit(data, steps_per_epoch=args.steps + 1, epochs=1, verbose=0, callbacks=[timer])
    print(json.dumps({"ms_per_step": (timer.end - timer.start) / args.steps * 1000}))


if __name__ == "__main__":
    main()
