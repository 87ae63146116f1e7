"""Steps every recipe takes in its run directory: the tokenizer, a pretrained LM, the saved model."""

import functools
import logging
import os
import time
import zipfile

import keras

from textlstm import training
from textlstm.checkpoints import TrainingCheckpoint, count_batches, resumable_fit
from textlstm.cpu_threads import choose_cpu_threads
from textlstm.export import export_model
from textlstm.models import AgreementClassifier, ClassifierEnsemble, LanguageModel, LSTMBackbone, SentimentClassifier
from textlstm.models.task import Task
from textlstm.models.recurrent import cudnn_report, describe_cudnn_report
from textlstm.reports import plot_curves
from textlstm.runs import atomic_path, check_run, recorded_progress, run_description
from textlstm.tokenizers import load_tokenizer, save_tokenizer, train_tokenizer

logger = logging.getLogger(__name__)


def prepare_tokenizer(run, config, train_texts):
    """The run's tokenizer: reloaded from `run_dir/tokenizer` when resuming, else trained on `train_texts` and saved."""
    tokenizer_dir = run.file("tokenizer")
    if os.path.exists(os.path.join(tokenizer_dir, "config.json")):
        return load_tokenizer(tokenizer_dir)  # resuming: keep the ids the backup was trained on
    tokenizer = train_tokenizer(config.tokenizer, train_texts, config.vocabulary_size, config.min_count,
                                lowercase=config.lowercase)
    save_tokenizer(tokenizer, tokenizer_dir)
    logger.info("tokenizer: %s, %d tokens", config.tokenizer, tokenizer.vocabulary_size())
    return tokenizer


def check_pretrained(config, field, language_model):
    """Raises a ValueError when `config` cannot take the weights of `language_model`, the LM run its `field` names.

    Called before the run directory is touched: the message names the
    differing field, the config's value and the LM's.
    """
    for name in ("embedding_dim", "hidden_dim", "cell_type"):
        if getattr(language_model.backbone, name) != getattr(config, name):
            raise ValueError(
                f"field `{name}` must equal the {field}'s ({getattr(config, field)}) to take its weights: "
                f"received {getattr(config, name)!r}, the LM has {getattr(language_model.backbone, name)!r}."
            )


def pretrained_tokenizer(run, tokenizer, source=None):
    """`tokenizer` (a pretrained LM's, or one with its vocabulary), saved into the run.

    On a resumed run, the saved one is returned after checking that its
    vocabulary is still `tokenizer`'s. `source` names where `tokenizer`
    comes from in that error (default: the config's `pretrained_lm`).
    """
    tokenizer_dir = run.file("tokenizer")
    if os.path.exists(os.path.join(tokenizer_dir, "config.json")):
        saved = load_tokenizer(tokenizer_dir)
        if saved.get_vocabulary() != tokenizer.get_vocabulary():
            source = source or f"pretrained_lm's ({run.config.pretrained_lm})"
            raise ValueError(f"run_dir {run.path} was trained with another tokenizer than {source} has now; "
                             f"was that run replaced?")
        return saved
    save_tokenizer(tokenizer, tokenizer_dir)
    return tokenizer


def check_cudnn(model, data, masked=True):
    """`cudnn_report` of a task's backbone and of the first batch of `data` (unshuffled: validation data
    goes through the same preprocessor and padding as training data), logged; a warning if ineligible.
    `masked`: whether training batches reach the backbone with a mask (all but stream-mode LMs)."""
    sample_ids = next(iter(data))[0]
    report = cudnn_report(model, sample_ids, masked=masked)
    (logger.info if report["eligible"] else logger.warning)("%s", describe_cudnn_report(report))
    return report


def fit_unless_done(model, run, train_data, valid_data, epochs, callbacks, verbose, trainer=None):
    """Trains `model` in `run` from its last checkpoint (`textlstm.checkpoints`: exactly, at any step),
    unless an earlier attempt finished training; records how it ended.

    `train_data` is a function returning a fresh training dataset (see
    `resumable_fit`); `callbacks` come from `training.standard_callbacks`
    (the last is the run's `TrainingCheckpoint`); `trainer`, a
    `textlstm.distributed.DistributedTrainer` to train on several replicas
    (None: `resumable_fit`). Returns the seconds spent (0 when training had
    finished before).

    Raises:
        RuntimeError: the run recorded finished epochs but has no
            checkpoint to continue them from (a run of an earlier textlstm,
            or a deleted `backup/`): training again would overwrite its best
            weights.
    """
    if not run.fit_needed and trainer is None:
        logger.info("training had finished in an earlier attempt (%s); finishing the steps after it",
                    run.describe())
        return 0.0
    # Several workers all restore (its collectives need each of them), even one whose own run had finished
    # training: its checkpoint is at the end, so it trains no more steps.
    *others, checkpoint = callbacks
    if not isinstance(checkpoint, TrainingCheckpoint):
        raise TypeError(f"`callbacks` must end with the run's TrainingCheckpoint (training.standard_callbacks), "
                        f"received {type(checkpoint).__name__} last.")
    start = time.monotonic()
    steps_per_epoch = count_batches(train_data())
    position = trainer.restore(checkpoint, steps_per_epoch) if trainer else checkpoint.restore(model, steps_per_epoch)
    training.average_weights_each_epoch(model.optimizer, steps_per_epoch)  # with `weight_averaging` only
    resumed_stopped = position.stopped  # `position` moves on as training runs
    missing = position.global_step == 0 and bool(run.progress.get("epochs_done", 0))
    if trainer is not None:
        missing = trainer.any_says(missing)  # every worker stops, none waits for the others
    if missing:
        raise RuntimeError(
            f"run_dir {run.path} records {run.progress['epochs_done']} trained epochs but holds no training "
            f"checkpoint in {checkpoint.directory} (a run of an earlier textlstm, or a deleted backup/), so it "
            f"cannot continue; pass overwrite=true to train it again from the start.")
    skipped = not run.fit_needed or (resumed_stopped and not run.continued_fields)
    if trainer is not None:
        skipped = trainer.chief_says(skipped)  # the workers train together or not at all
    if skipped:
        # Early stopping or the time budget ended training, and the attempt was killed before recording it.
        logger.info("training had stopped early at the last checkpoint; finishing the steps after it")
    else:
        # shuffle=False: a dataset orders itself (streams must not be shuffled; sequences reshuffle per epoch).
        fit = trainer.fit if trainer else functools.partial(resumable_fit, model)
        fit(train_data, checkpoint, epochs, others, validation_data=valid_data, verbose=verbose, shuffle=False)
    epochs_done = checkpoint.position.epoch
    if run.fit_needed:
        run.finish_fit(epochs_done, "stopped" if skipped else training.stop_reason(callbacks, epochs_done, epochs))
    return time.monotonic() - start


def fit_classifier(classifier, run, config, train_data, valid_data, title):
    """Trains a compiled classifier in `run` (resumable), keeps its best weights, saves and plots it.

    `train_data`: a function returning a fresh training dataset (`resumable_fit`).

    The optimizer holds any learning-rate schedule; early stopping and the
    time budget come from `config`. The weights of the epoch with the lowest
    validation loss are restored before `model.keras` is written.

    Returns:
        (seconds spent in `fit`, the per-epoch history).
    """
    callbacks = training.standard_callbacks(
        run.path, config.learning_rate, lr_schedule="none",
        early_stopping_patience=config.early_stopping_patience, time_budget_minutes=config.time_budget_minutes,
        checkpoint_every_steps=config.checkpoint_every_steps, epochs=config.epochs,
    )
    fit_seconds = fit_unless_done(classifier, run, train_data, valid_data, config.epochs, callbacks, config.verbose)
    training.restore_best(classifier, run.path)
    save_model(classifier, run)
    return fit_seconds, plot_history(run, metric="loss", title=title)


def plot_history(run, **kwargs):
    """`curves.png` of the run's `history.csv` (see `plot_curves` for `kwargs`); returns the history."""
    history = training.read_history(run.path)
    if history:
        with atomic_path(run.file("curves.png")) as tmp_path:
            plot_curves(history, tmp_path, **kwargs)
    return history


def backbone_arguments(config, vocabulary_size, bidirectional=False):
    """The `LSTMBackbone` arguments a run config describes (every task's architecture fields)."""
    return dict(
        vocabulary_size=vocabulary_size,
        embedding_dim=config.embedding_dim,
        hidden_dim=config.hidden_dim,
        num_layers=config.num_layers,
        cell_type=config.cell_type,
        bidirectional=bidirectional,
        dropout=config.dropout,
        word_dropout=config.word_dropout,
        kernel_initializer=config.kernel_initializer,
        recurrent_initializer=config.recurrent_initializer,
        require_cudnn=config.cell_type != "peephole_lstm",  # choosing the peephole cell is choosing the slow kernel
        dtype=config.precision,
    )


def build_backbone(config, vocabulary_size, bidirectional=False):
    """The `LSTMBackbone` a run config describes."""
    return LSTMBackbone(**backbone_arguments(config, vocabulary_size, bidirectional))


def set_cpu_threads(config, bidirectional=False, time_steps=None):
    """TensorFlow's CPU thread pools as `config.cpu_threads` says: a recipe's first step, before any TensorFlow op.

    "auto" times both settings on a backbone of the config's architecture
    and configured `vocabulary_size`, on batches of `batch_size` x
    `time_steps` (`textlstm.cpu_threads.choose_cpu_threads`). A run
    directory that recorded a choice for the same setting keeps it, so a
    resumed attempt trains as the first did. Record the returned dict in
    the run once it is open (`RunDirectory.record`).
    """
    remembered = None if config.overwrite else recorded_progress(config.run_dir).get("cpu_threads")
    arguments = backbone_arguments(config, config.vocabulary_size, bidirectional)
    return choose_cpu_threads(config.cpu_threads, arguments, config.batch_size, time_steps, remembered=remembered)


def save_model(model, run, name="model.keras"):
    """`run_dir/name`, written under a temporary name and renamed."""
    with atomic_path(run.file(name)) as tmp_path:
        model.save(tmp_path)


TASK_MODELS = {"lm": (LanguageModel,), "classifier": (SentimentClassifier, ClassifierEnsemble),
               "agreement": (AgreementClassifier,)}


def load_run_model(run_dir, task=None, hint=""):
    """The `model.keras` of a run directory (safe_mode: no Lambda, no pickle), after `check_run`.

    Args:
        run_dir: the run directory.
        task: "lm", "classifier" or "agreement": the task the caller needs
            (a classifier run's model may be a `ClassifierEnsemble`); None
            takes any, ensembles included.
        hint: added to the message of a missing model.

    Raises:
        FileNotFoundError: naming the missing file, `hint` and the command that trains one.
        ValueError: a run of another task or textlstm release, or a file that is not a Keras model.
    """
    train_command = f"textlstm train {task or 'lm|classifier|agreement'}"
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory not found: {run_dir}; train one with `{train_command}`.")
    check_run(run_dir, task)
    path = os.path.join(run_dir, "model.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model in {run_dir} (missing {path}){hint}; train one with `{train_command}`.")
    if not zipfile.is_zipfile(path):  # a .keras file is a zip archive; a cut-off one has no central directory
        raise ValueError(f"{path} is not a Keras model file (not a complete zip archive: truncated or "
                         f"overwritten?); train it again with `{train_command}`.")
    model = keras.saving.load_model(path, safe_mode=True)
    expected = TASK_MODELS.get(task, (Task, ClassifierEnsemble))
    if not isinstance(model, expected):
        names = " or ".join(model_class.__name__ for model_class in expected)
        raise ValueError(f"{path} holds a {type(model).__name__}, not a textlstm {names}; give the "
                         f"run_dir of a `{train_command}` run.")
    return model


def export_run(run_dir, name, base_dir="saved_models", top_k=10, version=None):
    """Exports a run's model (any task) as a version of `base_dir/name` (the next free one by default).

    The export's `assets.extra/` keeps the run directory and its test
    metric (perplexity or accuracy), which probe reports quote. Returns the
    version's directory.
    """
    model = load_run_model(run_dir)
    return export_model(model, base_dir, name, description=run_description(run_dir), top_k=top_k, version=version)
