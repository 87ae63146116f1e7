"""Training on two workers (`strategy=multi_worker`, TF_CONFIG on 127.0.0.1) and on two devices of one process
(`strategy=mirrored`): real CLI processes, as a user starts them."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types

import h5py
import numpy as np
import pytest

from textlstm.config import LanguageModelConfig, config_from_dict
from textlstm.distributed import check_batch_size, cluster_from_environment, worker_rows
from textlstm.recipes.language_model import train_language_model
from textlstm.recipes.run_steps import load_run_model


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start_workers(run_dir, settings, logs):
    """The same `textlstm train lm` command on two workers; each worker's stderr to a file."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "TF_CONFIG": tf_config, "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, "-m", "textlstm", "train", "lm", f"run_dir={run_dir}", "strategy=multi_worker",
                   *settings]
        processes.append(subprocess.Popen(command, env=env, stderr=open(logs / f"worker-{index}.log", "a")))
    return processes


def _newest_step(run_dir):
    backup = os.path.join(run_dir, "backup")
    names = [n for n in os.listdir(backup) if n.startswith("step-")] if os.path.isdir(backup) else []
    return max([int(n[len("step-"):]) for n in names if os.path.exists(os.path.join(backup, n, "position.json"))],
               default=0)


def _weights_and_optimizer(path):
    """Every array in a `.weights.h5` file, by its path in the file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


def test_two_workers_train_as_one_and_resume_after_a_kill(tmp_path, ptb_dir):
    """Two workers (each half the streams) match one worker on the whole batch, and a SIGKILL of both inside
    the second epoch resumes from their checkpoints: sampled softmax, carried state, Adam, clipnorm."""
    values = {"train_file": str(ptb_dir / "ptb.train.txt"), "valid_file": str(ptb_dir / "ptb.valid.txt"),
              "test_file": str(ptb_dir / "ptb.test.txt"), "max_train_lines": 200, "max_eval_lines": 40,
              "embedding_dim": 16, "hidden_dim": 16, "num_layers": 1, "batch_size": 8, "eval_batch_size": 8,
              "sequence_length": 10, "sampled_softmax": 64, "dropout": 0.0, "epochs": 2, "lr_decay_start_epoch": 2,
              "optimizer": "adam", "learning_rate": 0.01,  # slot variables: made under the strategy, restored
              "checkpoint_every_steps": 5, "time_budget_minutes": 0.0, "num_samples": 0, "verbose": 0,
              "jit_compile": "false"}
    settings = [f"{name}={value}" for name, value in values.items()]
    run_dir = tmp_path / "two_workers"
    workers = _start_workers(run_dir, settings, tmp_path)

    # Meanwhile, the reference: one worker, the same global batch of 8 streams.
    single = train_language_model(config_from_dict(LanguageModelConfig, {**values, "run_dir": str(tmp_path / "one")}))
    steps_per_epoch = single["train_tokens_per_epoch"] // (8 * 10)

    deadline = time.monotonic() + 300
    while _newest_step(run_dir) < steps_per_epoch + 5 and workers[0].poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
    assert [worker.wait(timeout=60) for worker in workers] == [-signal.SIGKILL] * 2, "finished before the kill"
    assert not (run_dir / "metrics.json").exists()

    workers = _start_workers(run_dir, settings, tmp_path)
    assert [worker.wait(timeout=600) for worker in workers] == [0, 0], (tmp_path / "worker-1.log").read_text()[-3000:]
    logs = [(tmp_path / f"worker-{index}.log").read_text() for index in range(2)]
    assert all("resuming from" in log for log in logs)

    # The two workers end with the same weights and optimizer state: the newest checkpoint of each.
    chief, other = (_weights_and_optimizer(os.path.join(path, "backup", max(os.listdir(os.path.join(path, "backup"))),
                                                        "model.weights.h5"))
                    for path in (run_dir, f"{run_dir}.worker-1"))
    assert chief.keys() == other.keys() and all(np.array_equal(chief[k], other[k]) for k in chief)

    # ... which are those of one worker training on the whole batch (summation order aside).
    expected = load_run_model(str(tmp_path / "one")).get_weights()
    actual = load_run_model(str(run_dir)).get_weights()
    worst = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))
    assert worst <= 1e-4, f"max abs weight difference to one worker: {worst}"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["workers"] == 2 and metrics["epochs"] == 2
    assert metrics["test_perplexity"] == pytest.approx(single["test_perplexity"], rel=1e-4)


def test_tf_config_and_batch_errors_name_the_problem(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the environment variable TF_CONFIG"):
        cluster_from_environment()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON like"):
        cluster_from_environment()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 2}}))
    with pytest.raises(ValueError, match=r"task index must be an int in \[0, 2\), received 2"):
        cluster_from_environment()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"], "ps": ["c:3"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match=r"cluster of workers only .*\['ps', 'worker'\]"):
        cluster_from_environment()
    assert worker_rows(20, 1, 2) == (10, 20)
    with pytest.raises(ValueError, match="`batch_size` must be a multiple of the 3 workers .*received 20"):
        worker_rows(20, 0, 3)
    with pytest.raises(ValueError, match="strategy=multi_worker` needs mode=stream"):
        config_from_dict(LanguageModelConfig, {"strategy": "multi_worker", "mode": "sentence"})
    with pytest.raises(ValueError, match="strategy=mirrored` needs mode=stream.*weight_averaging=0.9"):
        config_from_dict(LanguageModelConfig, {"strategy": "mirrored", "weight_averaging": 0.9})
    with pytest.raises(ValueError, match="`batch_size` must be a multiple of the 3 replicas .*received 20"):
        check_batch_size(20, types.SimpleNamespace(num_replicas_in_sync=3))


MIRRORED = """import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]  # two logical CPUs: the devices of a MirroredStrategy
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from textlstm.cli import main
sys.exit(main(["train", "lm", *sys.argv[1:]]))
"""


def test_mirrored_on_two_devices_trains_as_one_and_resumes_after_a_kill(tmp_path, ptb_dir):
    """`strategy=mirrored` on two devices of one process (logical CPUs here, GPUs on a GPU machine) matches one
    device on the whole batch, and a SIGKILL inside the second epoch resumes from the checkpoint, which holds
    every stream's carried state: sampled softmax, carried state, Adam, clipnorm."""
    values = {"train_file": str(ptb_dir / "ptb.train.txt"), "valid_file": str(ptb_dir / "ptb.valid.txt"),
              "test_file": str(ptb_dir / "ptb.test.txt"), "max_train_lines": 200, "max_eval_lines": 40,
              "embedding_dim": 16, "hidden_dim": 16, "num_layers": 2, "batch_size": 8, "eval_batch_size": 8,
              "sequence_length": 10, "sampled_softmax": 64, "dropout": 0.0, "epochs": 2, "lr_decay_start_epoch": 2,
              "optimizer": "adam", "learning_rate": 0.01, "checkpoint_every_steps": 5, "time_budget_minutes": 0.0,
              "num_samples": 0, "verbose": 0, "jit_compile": "false"}
    # The reference first: one device, the same global batch of 8 streams.
    single = train_language_model(config_from_dict(LanguageModelConfig, {**values, "run_dir": str(tmp_path / "one")}))
    steps_per_epoch = single["train_tokens_per_epoch"] // (8 * 10)
    assert steps_per_epoch > 10

    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    run_dir = tmp_path / "mirrored"
    command = [sys.executable, str(script), *[f"{name}={value}" for name, value in values.items()],
               f"run_dir={run_dir}", "strategy=mirrored"]
    log = tmp_path / "mirrored.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, env=env, stderr=open(log, "a"))
    deadline = time.monotonic() + 300
    while _newest_step(run_dir) < steps_per_epoch + 5 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "finished before the kill"
    assert not (run_dir / "metrics.json").exists()

    assert subprocess.run(command, env=env, stderr=open(log, "a"), timeout=600).returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "mirrored training: 2 replica(s)" in text
    resumed = re.search(r"resuming from \S+: 1 epochs and (\d+) steps done", text)
    assert resumed and 0 < int(resumed.group(1)) < steps_per_epoch, "not resumed inside the second epoch"

    expected = load_run_model(str(tmp_path / "one")).get_weights()
    actual = load_run_model(str(run_dir)).get_weights()
    worst = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))
    assert worst <= 1e-4, f"max abs weight difference to one device: {worst}"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["workers"] == 1 and metrics["epochs"] == 2
    assert metrics["test_perplexity"] == pytest.approx(single["test_perplexity"], rel=1e-4)
