"""A training killed with SIGKILL at a random step resumes exactly: real CLI processes, as a user runs them.

Each test starts the same `textlstm train` command twice at once: one runs
uninterrupted, the other is killed at a random step (after its checkpoint at
or past that step) and run again to the end. Both must end with the same
weights (max abs diff <= 1e-6) and the same test metric.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from textlstm.checkpoints import CHECKPOINT_PREFIX, POSITION_FILE


def _command(task, run_dir, settings):
    return [sys.executable, "-m", "textlstm", "train", task, f"run_dir={run_dir}", *settings]


def _newest_step(run_dir):
    backup = os.path.join(run_dir, "backup")
    steps = [0]
    for name in os.listdir(backup) if os.path.isdir(backup) else []:
        path = os.path.join(backup, name, POSITION_FILE)
        if name.startswith(CHECKPOINT_PREFIX) and os.path.exists(path):
            steps.append(int(name[len(CHECKPOINT_PREFIX):]))
    return max(steps)


def _kill_resume_and_compare(tmp_path, task, settings, total_steps, kill_range=None):
    """`kill_range`: the (first, last) step to kill after; default the 10%-60% of `total_steps`."""
    seed = int(os.environ.get("TEXTLSTM_KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    kill_after = rng.randint(*(kill_range or (total_steps // 10, total_steps * 6 // 10)))
    where = f"kill after step {kill_after} (TEXTLSTM_KILL_SEED={seed} repeats it)"
    reference_dir, killed_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def start(run_dir, log):  # stderr to a file: a pipe nobody reads could fill and stall the child
        return subprocess.Popen(_command(task, run_dir, settings), env=env, stderr=open(tmp_path / log, "w"))

    reference = start(reference_dir, "reference.log")
    killed = start(killed_dir, "killed.log")
    deadline = time.monotonic() + 300
    while _newest_step(killed_dir) < kill_after and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.05))  # land anywhere: mid-step, mid-checkpoint, mid-validation
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL, f"the run finished before the {where}"
    assert not os.path.exists(killed_dir / "metrics.json")
    resumed = subprocess.run(_command(task, killed_dir, settings), env=env, stderr=subprocess.PIPE, text=True,
                             timeout=600)
    assert resumed.returncode == 0, (where, resumed.stderr[-3000:])
    assert "resuming from" in resumed.stderr, where
    assert reference.wait(timeout=600) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    from textlstm.recipes.run_steps import load_run_model

    expected = load_run_model(str(reference_dir)).get_weights()
    actual = load_run_model(str(killed_dir)).get_weights()
    assert len(expected) == len(actual)
    worst = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))
    assert worst <= 1e-6, f"{where}: max abs weight difference {worst}"
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (reference_dir, killed_dir)]
    return metrics, where


def test_a_language_model_killed_at_a_random_step_resumes_exactly(tmp_path, ptb_dir):
    # Stream mode with the carried state, sampled softmax and dropout: the default LM path, tiny.
    settings = [f"train_file={ptb_dir / 'ptb.train.txt'}", f"valid_file={ptb_dir / 'ptb.valid.txt'}",
                f"test_file={ptb_dir / 'ptb.test.txt'}", "max_train_lines=200", "max_eval_lines=40",
                "embedding_dim=16", "hidden_dim=16", "batch_size=8", "eval_batch_size=8", "sequence_length=10",
                "sampled_softmax=64", "dropout=0.2", "epochs=2", "lr_decay_start_epoch=2", "checkpoint_every_steps=7",
                "num_samples=0", "verbose=0", "jit_compile=false"]
    (reference, resumed), where = _kill_resume_and_compare(tmp_path, "lm", settings, total_steps=2 * 53)
    assert resumed["test_perplexity"] == pytest.approx(reference["test_perplexity"], abs=1e-4), where
    assert resumed["epochs"] == reference["epochs"] == 2


def test_a_classifier_killed_at_a_random_step_resumes_exactly(tmp_path, shared_data):
    # Shuffled, bucketed batches, dropout and Adam: the sentiment recipe's path, tiny; with the moving average of
    # the weights, which a mid-epoch checkpoint must hold beside the step's own weights. (Resuming without an
    # average is the language-model test's path above.) Kills land in either epoch (checkpoints every 5 of 19
    # steps an epoch); only a resume from the first epoch's end, where the weights are the average, could miss a
    # lost average. One thread per op (`cpu_threads=parallel_ops`, set in each fresh process), so the
    # non-default pools are resumed exactly too.
    settings = [f"data_dir={shared_data}", "max_train_lines=600", "vocabulary_size=3000", "embedding_dim=16",
                "hidden_dim=8", "batch_size=32", "epochs=2", "checkpoint_every_steps=5", "verbose=0",
                "weight_averaging=0.9", "cpu_threads=parallel_ops"]
    (reference, resumed), where = _kill_resume_and_compare(tmp_path, "classifier", settings, total_steps=2 * 19,
                                                           kill_range=(3, 30))
    assert resumed["test_accuracy"] == reference["test_accuracy"], where
    assert [run["cpu_threads"]["chosen"] for run in (reference, resumed)] == ["parallel_ops"] * 2
    assert resumed["cpu_threads"]["applied"] is True
