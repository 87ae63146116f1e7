"""The run directory, as every recipe uses it: resume, refuse, replace, continue, atomic writes."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from textlstm.cli import main
from textlstm.config import LanguageModelConfig, config_from_dict
from textlstm.recipes import language_model as recipe
from textlstm.runs import RunDirectory, atomic_path, lock_run

TINY = {
    "max_train_lines": 300, "max_eval_lines": 60, "embedding_dim": 16, "hidden_dim": 16, "num_layers": 1,
    "batch_size": 8, "eval_batch_size": 8, "sequence_length": 10, "sampled_softmax": 0, "epochs": 2,
    "lr_decay_start_epoch": 2, "early_stopping_patience": 0, "num_samples": 1, "verbose": 0, "jit_compile": "false",
}


@pytest.fixture
def tiny_config(tmp_path, ptb_dir):
    def make(**values):
        return config_from_dict(LanguageModelConfig, {
            "train_file": str(ptb_dir / "ptb.train.txt"), "valid_file": str(ptb_dir / "ptb.valid.txt"),
            "test_file": str(ptb_dir / "ptb.test.txt"), "run_dir": str(tmp_path / "run"), **TINY, **values})
    return make


@pytest.fixture
def fit_calls(monkeypatch):
    """Counts LanguageModel.fit calls, and the epochs each trained."""
    calls = []
    original = recipe.LanguageModel.fit

    def counting_fit(self, *args, **kwargs):
        history = original(self, *args, **kwargs)
        calls.append(len(history.history.get("loss", [])))
        return history

    monkeypatch.setattr(recipe.LanguageModel, "fit", counting_fit)
    return calls


def test_a_crash_after_fit_is_finished_without_retraining(tiny_config, fit_calls, monkeypatch):
    config = tiny_config()
    real_word_perplexity = recipe.word_perplexity

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash in the final evaluation")

    monkeypatch.setattr(recipe, "word_perplexity", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        recipe.train_language_model(config)
    best = os.path.join(config.run_dir, "checkpoints", "best.weights.h5")
    best_bytes = open(best, "rb").read()
    assert not os.path.exists(os.path.join(config.run_dir, "metrics.json"))
    assert fit_calls == [2]

    monkeypatch.setattr(recipe, "word_perplexity", real_word_perplexity)
    metrics = recipe.train_language_model(config)
    assert fit_calls == [2]  # the re-run did not call fit again
    assert open(best, "rb").read() == best_bytes  # nor replaced the best checkpoint
    assert metrics["epochs"] == 2 and metrics["stopped_by"] == "epochs"
    assert json.loads(open(os.path.join(config.run_dir, "metrics.json")).read())["test_perplexity"] > 1


def test_overwrite_keeps_the_old_run_until_the_new_one_succeeds(tiny_config, tmp_path):
    config = tiny_config(epochs=1)
    recipe.train_language_model(config)
    model_bytes = open(os.path.join(config.run_dir, "model.keras"), "rb").read()

    missing = tiny_config(epochs=1, overwrite=True, train_file=str(tmp_path / "missing.txt"))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        recipe.train_language_model(missing)  # the new run cannot read its data: nothing was touched
    assert open(os.path.join(config.run_dir, "model.keras"), "rb").read() == model_bytes
    assert main(["train", "lm", "--run-dir", config.run_dir, "overwrite=true", "hidden_dim=0"]) == 2  # bad config
    assert open(os.path.join(config.run_dir, "model.keras"), "rb").read() == model_bytes
    assert sorted(os.listdir(tmp_path)) == [".run.lock", "run"]  # the lock stays beside the run it guards

    replacing = tiny_config(epochs=1, overwrite=True, hidden_dim=8, embedding_dim=8)
    recipe.train_language_model(replacing)
    assert sorted(os.listdir(tmp_path)) == [".run.lock", "run"]  # the replaced run was removed once the new one finished
    assert json.loads(open(os.path.join(config.run_dir, "config.json")).read())["hidden_dim"] == 8


def test_a_changed_config_is_refused_naming_the_fields(tiny_config):
    config = tiny_config(epochs=1)
    recipe.train_language_model(config)
    with pytest.raises(ValueError, match=r"another config \(embedding_dim: 16 -> 32, hidden_dim: 16 -> 32\)"):
        recipe.train_language_model(tiny_config(epochs=1, hidden_dim=32, embedding_dim=32))
    with pytest.raises(ValueError, match=r"tokenizer: 'word' -> 'bpe'"):
        RunDirectory.open(tiny_config(epochs=1, tokenizer="bpe"))
    with pytest.raises(FileExistsError, match="holds a finished run; raise epochs"):
        recipe.train_language_model(config)
    saved = json.loads(open(os.path.join(config.run_dir, "config.json")).read())
    assert saved["hidden_dim"] == 16 and saved["tokenizer"] == "word"  # the refusals rewrote nothing


def test_a_finished_run_continues_with_more_epochs(tiny_config, fit_calls):
    recipe.train_language_model(tiny_config(epochs=1))
    metrics = recipe.train_language_model(tiny_config(epochs=3))
    assert fit_calls == [1, 2]  # epochs 2 and 3 only: weights, optimizer and epoch came from the backup
    assert metrics["epochs"] == 3
    rows = [line.split(",")[0] for line in open(os.path.join(tiny_config().run_dir, "history.csv"))][1:]
    assert rows == ["0", "1", "2"]


def test_a_time_budget_stop_continues_with_a_larger_budget(tiny_config, fit_calls):
    first = recipe.train_language_model(tiny_config(epochs=4, time_budget_minutes=0.0001))
    assert first["stopped_by"] == "time_budget" and first["epochs"] == 1
    with pytest.raises(FileExistsError, match="finished run"):
        recipe.train_language_model(tiny_config(epochs=4, time_budget_minutes=0.0001))
    second = recipe.train_language_model(tiny_config(epochs=4, time_budget_minutes=60))
    assert second["epochs"] == 4 and second["stopped_by"] == "epochs"
    assert fit_calls == [1, 3]


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]


def test_an_interrupted_overwrite_keeps_the_last_finished_run(tmp_path):
    config = LanguageModelConfig(run_dir=str(tmp_path / "run"))
    first = RunDirectory.open(config)
    (tmp_path / "run" / "model.keras").write_text("first")
    first.finish({"test_perplexity": 100.0})
    config.overwrite = True
    RunDirectory.open(config)  # a replacement that crashes before it finishes
    (tmp_path / "run" / "model.keras").write_text("partial")
    second = RunDirectory.open(config)  # the next overwrite drops the partial attempt, keeps the finished run
    assert (tmp_path / "run.replaced" / "model.keras").read_text() == "first"
    assert not (tmp_path / "run" / "model.keras").exists()
    second.finish({"test_perplexity": 90.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]


def test_a_replacement_that_crashes_in_fit_leaves_the_old_run_aside(tiny_config, monkeypatch):
    config = tiny_config(epochs=1)
    recipe.train_language_model(config)
    old_model = open(os.path.join(config.run_dir, "model.keras"), "rb").read()

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash in fit")

    monkeypatch.setattr(recipe.LanguageModel, "fit", crash)
    replacing = tiny_config(epochs=1, overwrite=True, hidden_dim=8, embedding_dim=8)
    with pytest.raises(RuntimeError, match="simulated crash in fit"):
        recipe.train_language_model(replacing)
    assert open(config.run_dir + ".replaced/model.keras", "rb").read() == old_model
    monkeypatch.undo()
    recipe.train_language_model(dataclasses.replace(replacing, overwrite=False))  # resumes the replacement
    assert not os.path.exists(config.run_dir + ".replaced")  # removed once the replacement finished


def test_overwrite_never_moves_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=true, but it holds no run"):
        RunDirectory.open(LanguageModelConfig(run_dir=str(tmp_path / "runs"), overwrite=True))
    assert (tmp_path / "runs" / "notes.txt").read_text() == "mine"


def test_a_run_of_another_task_or_release_is_refused(tmp_path):
    config = LanguageModelConfig(run_dir=str(tmp_path / "run"))
    RunDirectory.open(config)
    progress_path = tmp_path / "run" / "progress.json"
    progress = json.loads(progress_path.read_text())
    assert progress["task"] == "lm" and progress["textlstm_version"]
    progress_path.write_text(json.dumps({**progress, "textlstm_version": "99.0.0"}))
    with pytest.raises(ValueError, match=r"written by textlstm 99\.0\.0; this is textlstm .*overwrite=true"):
        RunDirectory.open(config)
    progress_path.write_text(json.dumps({**progress, "task": "classifier"}))
    with pytest.raises(ValueError, match=r"holds a `classifier` run .*not a `lm` run"):
        RunDirectory.open(config)
    replaced = RunDirectory.open(dataclasses.replace(config, overwrite=True))  # replacing it is allowed
    assert replaced.progress["task"] == "lm"


def test_a_run_directory_in_use_by_another_process_is_refused(tmp_path):
    """Two trainings of one run_dir would interleave checkpoints: the second stops, naming the holder's pid."""
    config = LanguageModelConfig(run_dir=str(tmp_path / "run"))
    holder = subprocess.Popen(  # another process taking the lock as `lock_run` does (no TensorFlow import: fast)
        [sys.executable, "-c", "import fcntl, os, sys; d = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR); "
         "fcntl.flock(d, fcntl.LOCK_EX); os.write(d, b'%d' % os.getpid()); print('locked', flush=True); "
         "sys.stdin.read()", str(tmp_path / ".run.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match=rf"run_dir .*run is in use by another process \(pid {holder.pid}, "):
            RunDirectory.open(config)
        assert not os.path.exists(config.run_dir)  # refused before anything was written
    finally:
        holder.communicate("")  # the holder exits: the kernel drops its lock
    run = RunDirectory.open(config)
    assert run.fit_needed and RunDirectory.open(config).fit_needed  # this process may reopen its own run
    lock_run(config.run_dir)
    assert (tmp_path / ".run.lock").read_text().strip() == str(os.getpid())
    run.finish({})  # ... and lets go of it when the run is finished
    holder = subprocess.run([sys.executable, "-c", "import fcntl, os, sys; d = os.open(sys.argv[1], os.O_RDWR); "
                             "fcntl.flock(d, fcntl.LOCK_EX | fcntl.LOCK_NB)", str(tmp_path / ".run.lock")])
    assert holder.returncode == 0


def test_no_pickle_anywhere_and_models_load_in_safe_mode():
    """Artifacts never run code when loaded: no pickle in textlstm, every `.keras` load in safe mode."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/textlstm"
    for folder, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                source = open(os.path.join(folder, name), encoding="utf-8").read()
                assert "import pickle" not in source and "pickle.load" not in source, name
                assert "allow_pickle=True" not in source, name
                for call in source.split("load_model(")[1:]:
                    assert "safe_mode=True" in call.split(")")[0], name
