"""The language-model recipe: config in, run directory out.

    config ──► tokenizer (train or reuse) ──► tf.data (streams | sentences)
           ──► LSTMBackbone + LanguageModel ──► fit (callbacks) ──► run_dir/
               config.json  tokenizer/  model.keras  metrics.json
               history.csv  curves.png  logs/ (TensorBoard)  samples.txt
"""

import logging
import math
import os
import shutil
import time

import keras

from textlstm import training
from textlstm.config import save_config
from textlstm.data import encode_lines, lm_sentence_dataset, lm_stream_dataset, read_lines, tfds_lines
from textlstm.data.language_modeling import non_empty
from textlstm.models import LanguageModel, LSTMBackbone
from textlstm.reports import plot_curves
from textlstm.tokenizers import load_tokenizer, save_tokenizer, train_tokenizer

logger = logging.getLogger(__name__)

FINISHED_MARKER = "metrics.json"


def prepare_run_dir(config):
    """Creates `config.run_dir`; refuses to touch a finished run unless `overwrite`."""
    run_dir = config.run_dir
    if os.path.exists(os.path.join(run_dir, FINISHED_MARKER)):
        if not config.overwrite:
            raise FileExistsError(
                f"run_dir {run_dir} holds a finished run ({FINISHED_MARKER}); "
                f"pass overwrite=true or choose another run_dir."
            )
        logger.info("overwriting the finished run in %s", run_dir)
        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    return run_dir


def corpus_sources(config):
    """Names of the train, validation and test data, as errors and logs give them."""
    if config.tfds_name:
        return tuple(f"TFDS {config.tfds_name}:{split.strip()}" for split in config.tfds_splits.split(","))
    return config.train_file, config.valid_file, config.test_file


def read_corpus(config):
    """The train, validation and test lines of a run: its text files, or `config.tfds_name`."""
    sizes = (config.max_train_lines, config.max_eval_lines, config.max_eval_lines)
    if config.tfds_name:
        return tuple(
            tfds_lines(config.tfds_name, split.strip(), data_dir=config.tfds_data_dir,
                       manual_dir=config.tfds_manual_dir or None, text_key=config.tfds_text_key, max_lines=size)
            for split, size in zip(config.tfds_splits.split(","), sizes)
        )
    return tuple(read_lines(path, config.encoding, max_lines=size) for path, size in zip(corpus_sources(config), sizes))


def make_datasets(config, tokenizer, lines, source):
    """The training dataset in the layout `config.mode` names."""
    if config.mode == "stream":
        return lm_stream_dataset(tokenizer, lines, config.batch_size, config.sequence_length, source=source)
    return lm_sentence_dataset(tokenizer, lines, config.batch_size, shuffle=True, seed=config.seed, source=source)


def make_eval_dataset(config, tokenizer, lines, source):
    """An evaluation dataset: every token scored, in the layout `config.mode` names."""
    if config.mode == "stream":
        return lm_stream_dataset(tokenizer, lines, config.eval_batch_size, config.sequence_length, keep_last=True,
                                 source=source)
    return lm_sentence_dataset(tokenizer, lines, config.eval_batch_size, source=source)


def build_language_model(config, tokenizer):
    """The LSTMBackbone + LanguageModel a config describes."""
    backbone = LSTMBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        embedding_dim=config.embedding_dim,
        hidden_dim=config.hidden_dim,
        num_layers=config.num_layers,
        cell_type=config.cell_type,
        dropout=config.dropout,
    )
    return LanguageModel(backbone, tokenizer=tokenizer, tie_weights=config.tie_weights)


def count_tokens(dataset):
    return int(sum(float(w.numpy().sum()) for _, _, w in dataset))


def word_perplexity(loss, tokenizer, lines):
    """Per-word perplexity from a per-token loss, so subword and word models compare.

    exp(loss * tokens / words), with whitespace words and each line's `</s>`
    counted once on both sides (Mielke 2019, "Can you compare perplexity
    across different segmentations?"). Equals exp(loss) for a word tokenizer.
    """
    lines = non_empty(lines, "word_perplexity")  # the lines the datasets scored
    tokens = sum(len(ids) for ids in encode_lines(tokenizer, lines))
    words = sum(len(line.split()) + 1 for line in lines)
    return math.exp(loss * tokens / words)


def train_language_model(config):
    """Trains, evaluates and saves a language model; returns the metrics dict.

    Re-running the same config after a crash resumes from the last epoch
    (BackupAndRestore in `run_dir/backup`).
    """
    run_dir = prepare_run_dir(config)
    save_config(config, os.path.join(run_dir, "config.json"))
    keras.utils.set_random_seed(config.seed)

    train_lines, valid_lines, test_lines = read_corpus(config)

    tokenizer_dir = os.path.join(run_dir, "tokenizer")
    if os.path.exists(os.path.join(tokenizer_dir, "config.json")):
        tokenizer = load_tokenizer(tokenizer_dir)  # resuming: keep the ids the backup was trained on
    else:
        tokenizer = train_tokenizer(config.tokenizer, train_lines, config.vocabulary_size, config.min_count)
        save_tokenizer(tokenizer, tokenizer_dir)
    logger.info("tokenizer: %s, %d tokens", config.tokenizer, tokenizer.vocabulary_size())

    train_source, valid_source, test_source = corpus_sources(config)
    train_data = make_datasets(config, tokenizer, train_lines, train_source)
    valid_data = make_eval_dataset(config, tokenizer, valid_lines, valid_source)
    test_data = make_eval_dataset(config, tokenizer, test_lines, test_source)
    train_tokens = count_tokens(train_data)

    lm = build_language_model(config, tokenizer)
    lm.compile(
        optimizer=training.make_optimizer(config.optimizer, config.learning_rate, config.clipnorm),
        carry_state=config.mode == "stream",
        sampled_softmax=config.sampled_softmax,
        jit_compile=training.resolve_jit_compile(
            config.jit_compile, config.sampled_softmax, config.hidden_dim, config.mode),
    )
    callbacks = training.standard_callbacks(
        run_dir,
        config.learning_rate,
        lr_schedule=config.lr_schedule,
        lr_decay_factor=config.lr_decay_factor,
        lr_decay_start_epoch=config.lr_decay_start_epoch,
        lr_decay_patience=config.lr_decay_patience,
        early_stopping_patience=config.early_stopping_patience,
        time_budget_minutes=config.time_budget_minutes,
    )
    start = time.monotonic()
    lm.fit(train_data, validation_data=valid_data, epochs=config.epochs, callbacks=callbacks, verbose=config.verbose)
    fit_seconds = time.monotonic() - start
    training.restore_best(lm, run_dir)

    valid = lm.evaluate(valid_data, return_dict=True, verbose=0)
    test = lm.evaluate(test_data, return_dict=True, verbose=0)
    lm.save(os.path.join(run_dir, "model.keras"))

    history = training.read_history(run_dir)
    if history:
        # With sampled softmax the training "perplexity" is exp(sampled loss): lower than the true one.
        train_label = f"train (sampled softmax, {config.sampled_softmax})" if config.sampled_softmax else "train"
        plot_curves(history, os.path.join(run_dir, "curves.png"), title=f"{config.tokenizer} LM, {run_dir}",
                    train_label=train_label)
    train_seconds = [row["train_seconds"] for row in history if "train_seconds" in row]
    samples = lm.generate([""] * config.num_samples, max_length=config.sample_length,
                          sampler="top_p", seed=config.seed)
    with open(os.path.join(run_dir, "samples.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(samples) + "\n")

    metrics = {
        "valid_perplexity": valid["perplexity"],
        "test_perplexity": test["perplexity"],
        "valid_word_perplexity": word_perplexity(valid["loss"], tokenizer, valid_lines),
        "test_word_perplexity": word_perplexity(test["loss"], tokenizer, test_lines),
        "valid_tokens": count_tokens(valid_data),
        "test_tokens": count_tokens(test_data),
        "train_tokens_per_epoch": train_tokens,
        "epochs": len(history),
        "fit_seconds": fit_seconds,
        "seconds_per_epoch": sum(train_seconds) / len(train_seconds) if train_seconds else None,
        "train_tokens_per_second": train_tokens * len(train_seconds) / sum(train_seconds) if train_seconds else None,
        "parameters": lm.count_params(),
        "samples": samples,
    }
    training.write_json(metrics, os.path.join(run_dir, FINISHED_MARKER))
    logger.info("valid perplexity %.2f, test perplexity %.2f", valid["perplexity"], test["perplexity"])
    return metrics


def load_language_model(run_dir):
    """The `model.keras` of a run directory (safe_mode: no Lambda, no pickle)."""
    path = os.path.join(run_dir, "model.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model in {run_dir} (missing {path}); train one with `textlstm train lm`.")
    return keras.saving.load_model(path, safe_mode=True)


def evaluate_language_model(lm, path, encoding="utf-8", mode="stream", batch_size=10, sequence_length=35, verbose=0):
    """Perplexity of `lm` on a text file; returns a dict with perplexity and tokens.

    `verbose=1` shows a Keras progress bar (on stdout).
    """
    lines = read_lines(path, encoding)
    if mode == "stream":
        data = lm_stream_dataset(lm.tokenizer, lines, batch_size, sequence_length, keep_last=True, source=path)
    else:
        data = lm_sentence_dataset(lm.tokenizer, lines, batch_size, source=path)
    lm.compile(carry_state=mode == "stream")
    result = lm.evaluate(data, return_dict=True, verbose=verbose)
    return {"file": path, "perplexity": result["perplexity"], "loss": result["loss"], "tokens": count_tokens(data),
            "word_perplexity": word_perplexity(result["loss"], lm.tokenizer, lines)}
