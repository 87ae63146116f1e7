"""The language-model recipe: config in, run directory out.

    config ──► tokenizer (train or reuse) ──► preprocessor (start token of the mode)
           ──► tf.data (streams | sentences) ──► LSTMBackbone + LanguageModel
           ──► fit (callbacks) ──► run_dir/
               config.json  progress.json  tokenizer/  model.keras  metrics.json
               history.csv  curves.png  logs/ (TensorBoard)  samples.txt
"""

import dataclasses
import logging
import math

import keras
import tensorflow as tf

from textlstm import distributed, training
from textlstm.config import LanguageModelConfig
from textlstm.data import file_stream_dataset, read_lines, sentence_dataset, stream_dataset, tfds_lines
from textlstm.data.streams import non_empty, stream_boundaries
from textlstm.models import LanguageModel
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.recipes.run_steps import (
    build_backbone,
    check_cudnn,
    fit_unless_done,
    load_run_model,
    plot_history,
    prepare_tokenizer,
    save_model,
    set_cpu_threads,
)
from textlstm.runs import RunDirectory, read_run_config, write_text
from textlstm.tokenizers import WordTokenizer

logger = logging.getLogger(__name__)


def corpus_sources(config):
    """Names of the train, validation and test data, as errors and logs give them."""
    if config.tfds_name:
        return tuple(f"TFDS {config.tfds_name}:{split.strip()}" for split in config.tfds_splits.split(","))
    return config.train_file, config.valid_file, config.test_file


def read_corpus(config):
    """The train, validation and test lines of a run: its text files, or `config.tfds_name`.

    With `reverse_lines`, each line's whitespace words come in reverse order
    (the backward LM of ULMFiT; with a word tokenizer its tokens are exactly
    the forward LM's, reversed).
    """
    sizes = (config.max_train_lines, config.max_eval_lines, config.max_eval_lines)
    if config.tfds_name:
        corpus = tuple(
            tfds_lines(config.tfds_name, split.strip(), data_dir=config.tfds_data_dir,
                       manual_dir=config.tfds_manual_dir or None, text_key=config.tfds_text_key, max_lines=size)
            for split, size in zip(config.tfds_splits.split(","), sizes)
        )
    else:
        corpus = tuple(read_lines(path, config.encoding, max_lines=size)
                       for path, size in zip(corpus_sources(config), sizes))
    if config.reverse_lines:
        corpus = tuple([" ".join(reversed(line.split())) for line in lines] for lines in corpus)
    return corpus


def make_train_dataset(config, preprocessor, lines, source, boundaries=None):
    """The training dataset in the layout `config.mode` names; with `stream_from_file`, read from
    `train_file` as training consumes it, in the streams `boundaries` (`stream_boundaries`) lays out."""
    if config.stream_from_file:
        return file_stream_dataset(preprocessor, config.train_file, config.batch_size, config.sequence_length,
                                   encoding=config.encoding, boundaries=boundaries)
    if config.mode == "stream":
        return stream_dataset(preprocessor, lines, config.batch_size, config.sequence_length, source=source)
    return sentence_dataset(preprocessor, lines, config.batch_size, shuffle=True, seed=config.seed, source=source)


def make_eval_dataset(preprocessor, lines, mode, batch_size, sequence_length, source):
    """An evaluation dataset: every token scored, in the layout `mode` names."""
    if mode == "stream":
        return stream_dataset(preprocessor, lines, batch_size, sequence_length, keep_last=True, source=source)
    return sentence_dataset(preprocessor, lines, batch_size, source=source)


def build_language_model(config, tokenizer):
    """The LSTMBackbone + LanguageModel a config describes, with the preprocessor of its mode."""
    backbone = build_backbone(config, tokenizer.vocabulary_size())
    preprocessor = LanguageModelPreprocessor.for_mode(tokenizer, config.mode)
    return LanguageModel(backbone, preprocessor=preprocessor, tie_weights=config.tie_weights)


def compile_language_model(model, config, jit_compile):
    """`model.compile` with the optimizer, carried state and softmax `config` asks for; returns `model`."""
    model.compile(
        optimizer=training.make_optimizer(config.optimizer, config.learning_rate, config.clipnorm,
                                          config.weight_decay, config.weight_decay_type, config.weight_averaging),
        carry_state=config.mode == "stream", sampled_softmax=config.sampled_softmax, jit_compile=jit_compile)
    return model


def count_tokens(dataset):
    return int(sum(float(w.numpy().sum()) for _, _, w in dataset))


def word_perplexity(loss, preprocessor, lines):
    """Per-word perplexity from a per-token loss, so subword and word models compare.

    exp(loss * tokens / words), with whitespace words and each line's `</s>`
    counted once on both sides (Mielke 2019, "Can you compare perplexity
    across different segmentations?"). Equals exp(loss) for a word tokenizer.
    """
    lines = non_empty(lines, "word_perplexity")  # the lines the datasets scored
    tokens = sum(len(ids) for ids in preprocessor.encode_lines(lines, add_start_token=False))
    words = sum(len(line.split()) + 1 for line in lines)
    return math.exp(loss * tokens / words)


def check_sampled_softmax(config, train_lines):
    """Refuses `sampled_softmax` not below the vocabulary a word tokenizer will learn from `train_lines` (which
    can be smaller than `vocabulary_size` asks), before the run directory is touched. A SentencePiece
    vocabulary is known only once trained; the model's `compile` refuses that case."""
    if not config.sampled_softmax or config.tokenizer != "word":
        return
    learned = WordTokenizer.from_texts(train_lines, config.vocabulary_size, config.min_count,
                                       lowercase=config.lowercase).vocabulary_size()
    if config.sampled_softmax >= learned:
        raise ValueError(
            f"field `sampled_softmax` must be below the vocabulary the word tokenizer learns from "
            f"{corpus_sources(config)[0]}: {learned} tokens (vocabulary_size={config.vocabulary_size} asks for more "
            f"than the corpus has), received {config.sampled_softmax}.")


def train_language_model(config):
    """Trains, evaluates and saves a language model; returns the metrics dict.

    Re-running the same config after a crash resumes (see `textlstm.runs`):
    from the last finished epoch, or, when training had finished, with the
    steps after it. More epochs or a larger time budget continue a finished
    run.
    """
    cpu_threads = set_cpu_threads(config)  # first: TensorFlow's pools are set before its runtime starts
    # Several replicas: the strategy next (before any TensorFlow work), each worker index > 0 in its own run_dir.
    strategy, worker, workers = {"multi_worker": distributed.make_strategy,
                                 "mirrored": distributed.make_mirrored_strategy,
                                 "none": lambda: (None, 0, 1)}[config.strategy]()
    if strategy:
        distributed.check_batch_size(config.batch_size, strategy)  # refuses a batch the replicas cannot share
        config = dataclasses.replace(config, run_dir=distributed.worker_run_dir(config.run_dir, worker))
    train_lines, valid_lines, test_lines = read_corpus(config)  # before the run dir is touched
    boundaries = (stream_boundaries([config.train_file], config.batch_size, config.encoding)
                  if config.stream_from_file else None)  # reads (and checks) the whole file once
    check_sampled_softmax(config, train_lines)
    # A worker's run finishes before the chief's (which evaluates and saves): a worker opens a finished run too, and
    # restores with the others, which train only if the chief's run needs it (fit_unless_done).
    run = RunDirectory.open(config, finished_ok=worker > 0)
    if not run.finished:  # a worker's finished run is only read
        run.record("cpu_threads", cpu_threads)
    keras.utils.set_random_seed(config.seed)

    tokenizer = prepare_tokenizer(run, config, train_lines)
    trainer = None
    if strategy:
        if workers > 1:  # the processes each learned a tokenizer
            distributed.check_same_vocabulary(strategy, tokenizer)
        with strategy.scope():  # weights and optimizer state mirrored on every replica
            lm = build_language_model(config, tokenizer)
            compile_language_model(lm, config, jit_compile=False)
        trainer = distributed.DistributedTrainer(lm, strategy, worker, workers)
    else:
        lm = build_language_model(config, tokenizer)
    train_source, valid_source, test_source = corpus_sources(config)

    def train_data():  # a fresh dataset per `fit` (textlstm.checkpoints.resumable_fit)
        data = make_train_dataset(config, lm.preprocessor, train_lines, train_source, boundaries)
        if config.stream_from_file:  # every window is full: the epoch's length, from the counting pass below
            window_count = train_tokens // (config.batch_size * config.sequence_length)
            data = data.apply(tf.data.experimental.assert_cardinality(window_count))
        return data

    valid_data = make_eval_dataset(lm.preprocessor, valid_lines, config.mode, config.eval_batch_size,
                                   config.sequence_length, valid_source)
    test_data = make_eval_dataset(lm.preprocessor, test_lines, config.mode, config.eval_batch_size,
                                  config.sequence_length, test_source)
    # From a file: one counting pass, which also sets the epoch length.
    train_tokens = count_tokens(make_train_dataset(config, lm.preprocessor, train_lines, train_source, boundaries))
    cudnn = check_cudnn(lm, valid_data, masked=config.mode != "stream")

    def choose_jit_compile():
        return training.choose_jit_compile(
            config.jit_compile,
            lambda jit: compile_language_model(build_language_model(config, tokenizer), config, jit),
            train_data(), sampled_softmax=config.sampled_softmax, mode=config.mode)

    # Chosen once per run (a resumed attempt keeps it); a run with nothing left to train measures nothing.
    if strategy:
        xla = {"chosen": False, "reason": f"strategy={config.strategy} trains without XLA"}
    else:
        xla = run.remember("jit_compile", choose_jit_compile) if run.fit_needed else {"chosen": False}
        compile_language_model(lm, config, xla["chosen"])
    callbacks = training.standard_callbacks(
        run.path,
        config.learning_rate,
        lr_schedule=config.lr_schedule,
        lr_decay_factor=config.lr_decay_factor,
        lr_decay_start_epoch=config.lr_decay_start_epoch,
        lr_decay_patience=config.lr_decay_patience,
        early_stopping_patience=config.early_stopping_patience,
        time_budget_minutes=config.time_budget_minutes,
        checkpoint_every_steps=config.checkpoint_every_steps,
        epochs=config.epochs,
    )
    fit_seconds = fit_unless_done(lm, run, train_data, valid_data, config.epochs, callbacks, config.verbose,
                                  trainer=trainer)
    training.restore_best(lm, run.path)
    if strategy:
        if worker:  # the chief evaluates and saves; this worker's run_dir keeps its checkpoints and log
            metrics = {"worker": worker, "workers": workers, "fit_seconds": fit_seconds}
            run.finish(metrics)
            return metrics
        lm = distributed.plain_copy(  # the rest, as on one machine
            lm, lambda: compile_language_model(build_language_model(config, tokenizer), config, jit_compile=False))

    valid = lm.evaluate(valid_data, return_dict=True, verbose=0)
    test = lm.evaluate(test_data, return_dict=True, verbose=0)
    save_model(lm, run)

    # With sampled softmax the training "perplexity" is exp(sampled loss): lower than the true one.
    train_label = f"train (sampled softmax, {config.sampled_softmax})" if config.sampled_softmax else "train"
    history = plot_history(run, title=f"{config.tokenizer} LM, {run.path}", train_label=train_label)
    train_seconds = [row["train_seconds"] for row in history if "train_seconds" in row]
    samples = lm.generate([""] * config.num_samples, max_length=config.sample_length,
                          sampler="top_p", seed=config.seed) if config.num_samples else []
    write_text("\n".join(samples) + "\n", run.file("samples.txt"))

    metrics = {
        "valid_perplexity": valid["perplexity"],
        "test_perplexity": test["perplexity"],
        "valid_word_perplexity": word_perplexity(valid["loss"], lm.preprocessor, valid_lines),
        "test_word_perplexity": word_perplexity(test["loss"], lm.preprocessor, test_lines),
        "valid_tokens": count_tokens(valid_data),
        "test_tokens": count_tokens(test_data),
        "train_tokens_per_epoch": train_tokens,
        "epochs": len(history),
        "stopped_by": run.progress["stopped_by"],
        "fit_seconds": fit_seconds,
        "seconds_per_epoch": sum(train_seconds) / len(train_seconds) if train_seconds else None,
        "train_tokens_per_second": train_tokens * len(train_seconds) / sum(train_seconds) if train_seconds else None,
        "parameters": lm.count_params(),
        "start_token": lm.preprocessor.start_token,
        "cudnn": cudnn,
        "jit_compile": run.progress.get("jit_compile", xla),
        "cpu_threads": cpu_threads,
        "workers": workers,
        "replicas": strategy.num_replicas_in_sync if strategy else 1,
        "samples": samples,
    }
    run.finish(metrics)
    logger.info("valid perplexity %.2f, test perplexity %.2f", valid["perplexity"], test["perplexity"])
    return metrics


def load_language_model(run_dir):
    """The `model.keras` of a run directory (safe_mode: no Lambda, no pickle)."""
    return load_run_model(run_dir, "lm")


def evaluate_language_model(lm, path, encoding="utf-8", mode="stream", batch_size=10, sequence_length=35, verbose=0):
    """Perplexity of `lm` on a text file; returns a dict with perplexity and tokens.

    The ids come from `lm.preprocessor`; `mode` picks the layout. `verbose=1`
    shows a Keras progress bar (on stdout).
    """
    lines = read_lines(path, encoding)
    data = make_eval_dataset(lm.preprocessor, lines, mode, batch_size, sequence_length, path)
    lm.compile(carry_state=mode == "stream")
    result = lm.evaluate(data, return_dict=True, verbose=verbose)
    return {"file": path, "perplexity": result["perplexity"], "loss": result["loss"], "tokens": count_tokens(data),
            "word_perplexity": word_perplexity(result["loss"], lm.preprocessor, lines)}


def evaluate_run(run_dir, path, encoding=None, mode=None, batch_size=None, sequence_length=None, verbose=0):
    """`evaluate_language_model` with unset options taken from the run's config, so numbers match its metrics."""
    config = read_run_config(LanguageModelConfig, run_dir)
    return evaluate_language_model(
        load_language_model(run_dir), path, encoding=encoding or config.encoding, mode=mode or config.mode,
        batch_size=batch_size or config.eval_batch_size, sequence_length=sequence_length or config.sequence_length,
        verbose=verbose)
