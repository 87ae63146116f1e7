"""TensorFlow's CPU thread pools: the settings, the timing in child processes, the choice a run records."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from textlstm.config import SentimentConfig
from textlstm.cpu_threads import (
    apply_cpu_threads,
    choose_cpu_threads,
    describe_cpu_threads,
    pools_can_change,
    thread_counts,
    time_in_child,
    usable_cores,
)
from textlstm.recipes.run_steps import set_cpu_threads
from textlstm.training import cpu_description

TINY_BIDIRECTIONAL = {"vocabulary_size": 60, "embedding_dim": 8, "hidden_dim": 8, "num_layers": 1,
                      "bidirectional": True}


def test_thread_counts_of_each_setting():
    assert thread_counts("tensorflow") == (0, 0)  # TensorFlow's default: a thread per core in each pool
    assert thread_counts("parallel_ops") == (usable_cores(), 1)
    assert 1 <= usable_cores() <= os.cpu_count()
    with pytest.raises(ValueError, match=r"`setting` must be 'tensorflow' or 'parallel_ops', received 'auto'"):
        thread_counts("auto")


def test_pools_stay_as_they_are_once_tensorflow_runs(caplog):
    # The session's TensorFlow already runs (conftest), as in a notebook: nothing is changed, nothing is timed.
    assert not pools_can_change()
    assert apply_cpu_threads("tensorflow") is True  # what the pools are: nothing to change, nothing to warn of
    assert apply_cpu_threads("parallel_ops") is False
    assert "cpu_threads: parallel_ops pools not applied" in caplog.text
    assert tf.config.threading.get_intra_op_parallelism_threads() == 0
    choice = choose_cpu_threads("auto", TINY_BIDIRECTIONAL, batch_size=4, time_steps=6)
    assert (choice["chosen"], choice["applied"]) == ("tensorflow", True) and "ms_per_step" not in choice
    assert "not timed: TensorFlow already ran in this process" in describe_cpu_threads(choice)
    forced = choose_cpu_threads("parallel_ops", TINY_BIDIRECTIONAL, batch_size=4, time_steps=6)
    assert describe_cpu_threads(forced).endswith("not applied: TensorFlow already ran in this process")
    with pytest.raises(ValueError, match=r"`setting` must be one of \['auto', 'tensorflow', 'parallel_ops'\], "
                                         r"received 'fast'"):
        choose_cpu_threads("fast", TINY_BIDIRECTIONAL, batch_size=4, time_steps=6)


def test_a_run_keeps_a_choice_made_for_its_setting_on_this_cpu(tmp_path):
    recorded = {"setting": "auto", "chosen": "parallel_ops", "cpu": cpu_description(), "applied": True,
                "ms_per_step": {"tensorflow": 9.0, "parallel_ops": 7.0}}
    config = SentimentConfig(run_dir=str(tmp_path))
    (tmp_path / "progress.json").write_text(json.dumps({"cpu_threads": recorded}))
    kept = set_cpu_threads(config, bidirectional=True, time_steps=8)  # a resumed run, read from progress.json
    assert (kept["chosen"], kept["ms_per_step"]) == ("parallel_ops", recorded["ms_per_step"])
    # Not kept: a replaced run, another setting, another CPU, a choice that never applied, one never timed (made
    # where TensorFlow already ran, e.g. in a notebook).
    replaced = set_cpu_threads(SentimentConfig(run_dir=str(tmp_path), overwrite=True), bidirectional=True,
                               time_steps=8)
    assert replaced["chosen"] == "tensorflow" and "ms_per_step" not in replaced
    assert choose_cpu_threads("tensorflow", TINY_BIDIRECTIONAL, 4, 6, remembered=recorded)["chosen"] == "tensorflow"
    untimed = {key: value for key, value in recorded.items() if key != "ms_per_step"}
    for stale in ({**recorded, "cpu": "another CPU"}, {**recorded, "applied": False},
                  {**untimed, "reason": "TensorFlow already ran in this process: its pools stay"}):
        assert choose_cpu_threads("auto", TINY_BIDIRECTIONAL, 4, 6, remembered=stale)["chosen"] == "tensorflow"


def test_a_fresh_process_applies_one_thread_per_op():
    code = ("from textlstm.cpu_threads import apply_cpu_threads, pools_can_change; import tensorflow as tf; "
            "assert apply_cpu_threads('parallel_ops'); tf.constant(1.0) + 1.0; assert not pools_can_change(); "
            "print(tf.config.threading.get_inter_op_parallelism_threads(), "
            "tf.config.threading.get_intra_op_parallelism_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(usable_cores()), "1"]


def test_a_failing_timing_names_the_setting_and_how_to_skip_it():
    with pytest.raises(RuntimeError, match=r"(?s)cpu_threads=auto: timing the tensorflow pools in a child process "
                                           r"\(textlstm.cpu_threads.main --setting tensorflow \.\.\.\) failed "
                                           r"with exit code 1; set cpu_threads=tensorflow or cpu_threads="
                                           r"parallel_ops to train without timing\. Its stderr ends: .*"
                                           r"vocabulary_size"):
        time_in_child("tensorflow", {**TINY_BIDIRECTIONAL, "vocabulary_size": -1}, 4, 6, steps=2)


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")) or usable_cores() < 2,
                    reason="auto times the pools only on a CPU of 2+ cores")
def test_auto_times_both_settings_and_the_run_records_the_choice(tmp_path, shared_data):
    # The shipped default, from the command line in a fresh process, as a user runs it.
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "textlstm", "train", "classifier", f"data_dir={shared_data}",
               f"run_dir={run_dir}", "max_train_lines=300", "vocabulary_size=2000", "embedding_dim=8",
               "hidden_dim=8", "max_length=16", "epochs=1", "verbose=0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    choice = json.loads((run_dir / "metrics.json").read_text())["cpu_threads"]
    assert choice["setting"] == "auto" and choice["applied"] is True
    timed = choice["ms_per_step"]
    assert set(timed) == {"tensorflow", "parallel_ops"} and all(value > 0 for value in timed.values())
    switch = timed["parallel_ops"] < 0.95 * timed["tensorflow"]  # one thread per op only if 5% faster
    assert choice["chosen"] == ("parallel_ops" if switch else "tensorflow")
    assert json.loads((run_dir / "progress.json").read_text())["cpu_threads"] == choice
    assert f"CPU threads | {describe_cpu_threads(choice)}" in (run_dir / "report.md").read_text()
    assert f"CPU threads: {describe_cpu_threads(choice)}" in result.stderr  # logged
