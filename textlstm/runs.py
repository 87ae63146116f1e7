"""The run directory of every task: create, resume, continue, finish, reload.

    run_dir/
        config.json      the resolved run config (written first)
        progress.json    which steps finished: fit (epochs done, why it stopped)
        tokenizer/       ...task files: written by the recipe
        backup/          training checkpoints (textlstm.checkpoints): resume at any step
        metrics.json     written last: the run is finished

Rules, whatever the task:

- Every file is written to a temporary name and renamed (`atomic_path`), so a
  crash never leaves half a file.
- Re-running a directory with a config that differs in a field that shapes
  the model, tokenizer or data refuses, naming the fields. Fields declared
  `continuable` (epochs, time budget, verbosity) may change: the run then
  continues from its backup (weights, optimizer, epoch and schedule).
- A crash before `metrics.json` is written is resumed: training restarts
  from its last checkpoint (`textlstm.checkpoints`: at any step, exactly),
  or is skipped when `fit` had finished, and the steps after it run again.
- One process at a time: `open` takes an exclusive lock (`flock` on
  `.<name>.lock` beside the directory, held until the process exits, a
  SIGKILL included, or until the run finishes), so a second training of the
  same directory stops with an error naming the process that holds it instead
  of interleaving checkpoints.
- `overwrite=true` moves the old directory aside (`<run_dir>.replaced`) and
  deletes it only once the new run has finished; until then it can be
  moved back by hand.

Example:
>>> import tempfile, os
>>> from textlstm.config import LanguageModelConfig
>>> config = LanguageModelConfig(run_dir=os.path.join(tempfile.mkdtemp(), "run"))
>>> run = RunDirectory.open(config)
>>> run.fit_needed
True
>>> run.finish_fit(epochs_done=5, stopped_by="epochs")
>>> run.finish({"accuracy": 0.9})
>>> RunDirectory.open(config)
Traceback (most recent call last):
...
FileExistsError: run_dir ... holds a finished run; raise epochs or time_budget_minutes to continue it, or pass overwrite=true.
"""

import contextlib
import fcntl
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile

from textlstm.config import changed_fields, config_to_dict, load_config, read_json_object

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.json"
FINISHED_MARKER = "metrics.json"
REPLACED_SUFFIX = ".replaced"
try:
    VERSION = importlib.metadata.version("textlstm")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    VERSION = "0+unknown"


def release(version):
    """The (major, minor) of a version string: runs are read by the textlstm releases that share it."""
    parts = version.split("+")[0].split(".")
    return tuple(int(part) if part.isdigit() else part for part in (parts + ["0"])[:2])


def recorded_progress(run_dir):
    """The `progress.json` of a run directory, or {} where it has none; read before the run is opened."""
    path = os.path.join(run_dir, PROGRESS_FILE)
    return read_json_object(path, "run progress") if os.path.exists(path) else {}


def check_run(run_dir, task=None):
    """Refuses a run directory of another task, or written by a textlstm release that reads runs differently.

    `progress.json` records the task (`lm`, `classifier`, `agreement`) and
    the textlstm version of a run; runs from before it recorded them pass.

    Raises:
        ValueError: naming the run's task or version and what was expected.
    """
    progress = recorded_progress(run_dir)
    saved_task = progress.get("task")
    if task and saved_task and saved_task != task:
        raise ValueError(f"{run_dir} holds a `{saved_task}` run (made by `textlstm train {saved_task}`), not a "
                         f"`{task}` run; give the run_dir of a `textlstm train {task}` run.")
    saved_version = progress.get("textlstm_version")
    known = saved_version and "+unknown" not in saved_version + VERSION  # a source tree never installed
    if known and release(saved_version) != release(VERSION):
        raise ValueError(f"{run_dir} was written by textlstm {saved_version}; this is textlstm {VERSION}, which "
                         f"reads runs of release {'.'.join(map(str, release(VERSION)))} only. Use textlstm "
                         f"{saved_version} for it, or train it again (overwrite=true).")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` (its name ends with `path`'s, so suffix checks such as Keras's
    `.weights.h5` pass); if the block succeeds, the file is fsynced and renamed to `path`, and the rename
    fsynced: a crash, even a power cut, leaves the old file or the new one, never half of one."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{name}", dir=directory)
    os.close(handle)
    try:
        yield tmp_path
        fsync(tmp_path)
        os.replace(tmp_path, path)
        fsync(directory)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def fsync(path):
    """Flushes a file, or a folder's entries (a rename in it), to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(path):
    """Flushes every file and folder under `path` (and `path`) to disk, before the tree is renamed into place."""
    for folder, _, files in os.walk(path, topdown=False):
        for name in files:
            fsync(os.path.join(folder, name))
        fsync(folder)


_HELD_LOCKS = {}  # real path of a run directory -> the descriptor holding its lock, for this process's life


def lock_run(path):
    """Takes the exclusive lock of run directory `path` until `unlock_run` or the process ends; returns whether
    this call took it (False: this process held it already, or no lock could be taken).

    The lock is an `flock` on `.<name>.lock` beside the directory, so it
    survives `overwrite=true` moving the directory aside; the kernel drops it
    when the process ends, however it ends. The file keeps the holder's pid.
    Where no lock can be taken (a parent folder this user cannot write, a
    file system without `flock`), a warning says so and the run goes on unguarded.

    Raises:
        RuntimeError: another process holds the lock.
    """
    real_path = os.path.realpath(path.rstrip(os.sep) or os.sep)
    if real_path in _HELD_LOCKS:
        return False
    parent = os.path.dirname(real_path)
    lock_path = os.path.join(parent, f".{os.path.basename(real_path)}.lock")
    descriptor = None
    try:
        os.makedirs(parent, exist_ok=True)
        descriptor = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
    except BlockingIOError:
        try:
            holder = os.read(descriptor, 32).decode("ascii", "replace").strip() or "unknown"
        finally:
            os.close(descriptor)
        raise RuntimeError(f"run_dir {path} is in use by another process (pid {holder}, lock {lock_path}); "
                           f"wait for it to finish, or choose another run_dir.") from None
    except OSError as error:
        if descriptor is not None:
            os.close(descriptor)
        logger.warning("run_dir %s: cannot lock %s (%s); nothing stops a second process from training it at the "
                       "same time", path, lock_path, error)
        return False
    _HELD_LOCKS[real_path] = descriptor
    return True


def unlock_run(path):
    """Releases this process's lock of run directory `path` (a no-op when it holds none)."""
    descriptor = _HELD_LOCKS.pop(os.path.realpath(path.rstrip(os.sep) or os.sep), None)
    if descriptor is not None:
        os.close(descriptor)  # closing the last descriptor releases the flock


def write_json(data, path):
    """Writes JSON atomically: a crash never leaves a half-written file."""
    with atomic_path(path) as tmp_path, open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def write_text(text, path):
    with atomic_path(path) as tmp_path, open(tmp_path, "w", encoding="utf-8") as f:
        f.write(text)


class RunDirectory:
    """One run's directory; `open` decides whether it is new, resumed, continued or replaced.

    Attributes:
        path: the directory.
        config: the run's config (saved as `config.json`).
        continued_fields: the continuable fields this attempt changes
            (e.g. `learning_rate` after a NaN loss).
        progress: dict read from `progress.json` (`fit_finished`,
            `epochs_done`, `stopped_by`, `finished`, and `replacing`: the
            old directory an `overwrite` moved aside).
    """

    def __init__(self, path, config):
        self.path = path
        self.config = config
        self.progress = self._read_progress()
        self.continued_fields = []  # continuable fields this attempt changes (set by `open`)

    @classmethod
    def open(cls, config, finished_ok=False):
        """Opens `config.run_dir` for a run; call it after the config is validated and the data read.

        Raises:
            RuntimeError: another process has the directory open (`lock_run`).
            ValueError: the directory holds a run whose config differs in a
                field that shapes the model, tokenizer or data.
            FileExistsError: it holds a finished run and nothing asks for
                more training (unless `finished_ok`: the finished run is
                returned as it is, e.g. a fold of a cross-validation).
        """
        locked_now = lock_run(config.run_dir)
        try:
            run = cls._open(config, finished_ok)
        except BaseException:  # refused: the directory is free again for whoever fixes the config
            if locked_now:
                unlock_run(config.run_dir)
            raise
        if run.finished and locked_now:  # a finished run returned as it is (`finished_ok`) writes nothing
            unlock_run(config.run_dir)
        return run

    @classmethod
    def _open(cls, config, finished_ok):
        path = config.run_dir
        saved_path = os.path.join(path, CONFIG_FILE)
        if not os.path.exists(saved_path):
            holds_run = os.path.exists(os.path.join(path, PROGRESS_FILE))
            if os.path.isdir(path) and os.listdir(path) and config.overwrite:
                if not holds_run:  # never move aside, let alone delete, a folder that is not a run
                    raise FileExistsError(
                        f"run_dir {path}: overwrite=true, but it holds no run (no {CONFIG_FILE} or "
                        f"{PROGRESS_FILE}); choose another run_dir.")
                return cls._replace(config)
            os.makedirs(path, exist_ok=True)
            _save_config(config, saved_path)
            return cls(path, config)._stamped()
        if config.overwrite:  # replacing is allowed whatever the old run was
            return cls._replace(config)
        check_run(path, config.task)
        saved = read_json_object(saved_path, "run config")
        differing = changed_fields(saved, config, continuable=False)
        if differing:
            details = ", ".join(f"{name}: {saved.get(name)!r} -> {getattr(config, name)!r}" for name in differing)
            raise ValueError(
                f"run_dir {path} holds a run with another config ({details}); these change the model, "
                f"tokenizer or data. Choose another run_dir, or pass overwrite=true to replace it."
            )
        more = changed_fields(saved, config, continuable=True)
        asks_more = config.epochs > saved.get("epochs", 0) or (
            config.time_budget_minutes > saved.get("time_budget_minutes", 0.0))
        run = cls(path, config)
        run.continued_fields = more
        if run.finished and not asks_more:
            if finished_ok:
                return run
            raise FileExistsError(
                f"run_dir {path} holds a finished run; raise epochs or time_budget_minutes to continue it, "
                f"or pass overwrite=true."
            )
        if more:
            logger.info("run_dir %s: continuing with %s", path,
                        ", ".join(f"{name}={getattr(config, name)!r}" for name in more))
        _save_config(config, saved_path)
        if asks_more:
            run.progress.update(fit_finished=False, finished=False)
            write_json(run.progress, run.file(PROGRESS_FILE))
        logger.info("run_dir %s: resuming (%s)", path, run.describe())
        return run

    @classmethod
    def _replace(cls, config):
        """Moves the old directory aside; `finish` deletes it once the new run is done."""
        path = config.run_dir
        replaced = path.rstrip(os.sep) + REPLACED_SUFFIX
        if os.path.exists(replaced) and os.path.exists(path):
            # An earlier overwrite did not finish: `replaced` still holds the run it was replacing.
            if cls(path, config).finished:
                shutil.rmtree(replaced)  # stale: the run in `path` finished after it
            else:
                logger.warning("overwrite=true: %s holds an unfinished replacement attempt; removing it and "
                               "keeping %s until this run finishes", path, replaced)
                shutil.rmtree(path)
        if os.path.exists(path):
            os.replace(path, replaced)
        logger.info("overwrite=true: moved the old run %s aside to %s until the new one finishes", path, replaced)
        os.makedirs(path)
        _save_config(config, os.path.join(path, CONFIG_FILE))
        run = cls(path, config)
        run.progress["replacing"] = replaced  # `finish` removes it, whichever attempt finishes
        return run._stamped()

    def _stamped(self):
        """Records the task and textlstm version of a new run in `progress.json` (`check_run` reads them)."""
        self.progress.update(task=self.config.task, textlstm_version=VERSION)
        write_json(self.progress, self.file(PROGRESS_FILE))
        return self

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    def _read_progress(self):
        path = self.file(PROGRESS_FILE)
        if os.path.exists(path):
            return read_json_object(path, "run progress")
        # A run from before progress.json existed: finished if it has metrics.json.
        finished = os.path.exists(self.file(FINISHED_MARKER))
        return {"fit_finished": finished, "finished": finished, "epochs_done": 0, "stopped_by": None}

    def describe(self):
        if self.progress.get("fit_finished"):
            return f"training finished after {self.progress['epochs_done']} epochs ({self.progress['stopped_by']})"
        return f"{self.progress.get('epochs_done', 0)} epochs recorded"

    @property
    def fit_needed(self):
        """False when training finished in an earlier attempt and nothing asks for more."""
        return not self.progress.get("fit_finished", False)

    def remember(self, key, compute):
        """`progress[key]`, computed by `compute()` and recorded the first time: a choice made once per run
        (e.g. XLA on or off), which a resumed or continued attempt keeps."""
        if key not in self.progress:
            self.progress[key] = compute()
            write_json(self.progress, self.file(PROGRESS_FILE))
        return self.progress[key]

    def record(self, key, value):
        """Records `progress[key] = value` (e.g. the CPU threads this attempt trains with)."""
        self.progress[key] = value
        write_json(self.progress, self.file(PROGRESS_FILE))

    def finish_fit(self, epochs_done, stopped_by):
        """Records that training finished: `stopped_by` is "epochs", "time_budget" or "early_stopping"."""
        self.progress.update(fit_finished=True, epochs_done=epochs_done, stopped_by=stopped_by)
        write_json(self.progress, self.file(PROGRESS_FILE))

    def finish(self, metrics):
        """Writes `metrics.json` (the run is finished) and deletes a run this one replaced."""
        write_json(metrics, self.file(FINISHED_MARKER))
        replaced = self.progress.pop("replacing", None)
        self.progress["finished"] = True
        write_json(self.progress, self.file(PROGRESS_FILE))
        if replaced and os.path.exists(replaced):
            shutil.rmtree(replaced)
            logger.info("removed the replaced run %s", replaced)
        unlock_run(self.path)  # another process may continue it now (a notebook keeps running after a run)

    def read_metrics(self):
        return read_json_object(self.file(FINISHED_MARKER), "run metrics")

    @property
    def finished(self):
        """True once `finish` ran and no continuation has reopened the run."""
        return self.progress.get("finished", False)


def _save_config(config, path):
    # `overwrite` is an instruction to this invocation, never part of the run: a later
    # `--run-dir` continuation must not replace the run it continues.
    write_json({**config_to_dict(config), "overwrite": False}, path)


def read_run_config(config_class, run_dir):
    """The config a run directory was trained with."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no run in {run_dir} (missing {path}).")
    return load_config(config_class, path)


def run_description(run_dir):
    """The facts of a run directory that reports and exports carry: its path and its test metric, if finished."""
    description = {"model": os.path.abspath(run_dir)}
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.exists(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            metrics = json.load(f)
        description.update({key: metrics[key] for key in ("test_perplexity", "test_accuracy") if key in metrics})
    return description
