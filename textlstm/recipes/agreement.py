"""The number-agreement recipe (Linzen, Dupoux & Goldberg 2016): config in, run directory out.

    config ──► NumberItems of train / valid / test (UD CoNLL-U, textlstm.data.number_agreement)
           ──► tokenizer (trained on the train prefixes, or a pretrained LM's)
           ──► ClassifierPreprocessor: [start] prefix, no end token
           ──► bucketed (ids, label id) batches
           ──► unidirectional LSTMBackbone + AgreementClassifier
               (optionally initialised from an LM run: its embedding and LSTMs)
           ──► fit ──► run_dir/
               config.json  progress.json  tokenizer/  model.keras  metrics.json
               history.csv  curves.png  logs/  report.{md,json,png}  report_items.jsonl

The report is the one the language-model probe writes
(`textlstm.probes.number_prediction`): accuracy overall and by attractor
count, so a supervised classifier and an LM are compared on the same items.
"""

import collections
import dataclasses
import importlib.metadata
import logging

import keras
import numpy as np

from textlstm import training
from textlstm.cpu_threads import describe_cpu_threads
from textlstm.data import labeled_dataset, read_number_items
from textlstm.models import AgreementClassifier, transfer_language_model
from textlstm.models.agreement import LABEL_NAMES
from textlstm.models.recurrent import describe_cudnn_report
from textlstm.preprocessors import ClassifierPreprocessor
from textlstm.probes.number_prediction import (
    ATTRACTOR_BUCKETS,
    summarize_number_predictions,
    write_number_prediction_report,
)
from textlstm.recipes.language_model import load_language_model
from textlstm.recipes.run_steps import (
    build_backbone,
    check_cudnn,
    check_pretrained,
    fit_classifier,
    load_run_model,
    prepare_tokenizer,
    pretrained_tokenizer,
    set_cpu_threads,
)
from textlstm.runs import RunDirectory
from textlstm.tokenizers import BOS, UNK_ID, WordTokenizer

logger = logging.getLogger(__name__)

LABEL_IDS = {name: index for index, name in enumerate(LABEL_NAMES)}


def read_items(config):
    """The train (at most `max_train_lines` items), validation and test `NumberItem`s of a config.

    Raises:
        ValueError: a file yields no item, naming it.
    """
    splits = []
    for path in (config.train_file, config.valid_file, config.test_file):
        items = read_number_items(path, config.encoding)
        if path == config.train_file and config.max_train_lines:
            items = items[: config.max_train_lines]
        if not items:
            raise ValueError(f"{path}: no number-agreement items (present-tense verbs with a 3rd-person "
                             f"subject before them); is it a UD treebank with XPOS and features?")
        splits.append(items)
    return tuple(splits)


def build_agreement_classifier(config, tokenizer, start_token):
    """The unidirectional LSTMBackbone + AgreementClassifier a config describes.

    The preprocessor keeps every prefix word (`sequence_length=None`): the
    words nearest the verb are the ones truncation would drop.
    """
    backbone = build_backbone(config, tokenizer.vocabulary_size())
    preprocessor = ClassifierPreprocessor(tokenizer, start_token=start_token, add_end_token=False,
                                          sequence_length=None)
    return AgreementClassifier(backbone, preprocessor=preprocessor, dropout=config.dropout)


def language_model_tokenizer(config, language_model):
    """The tokenizer a classifier initialised from `language_model` reads with: the LM's ids for the same words.

    With `config.lowercase`, a word LM's vocabulary is looked up after case
    folding: an LM of a lowercased corpus (PTB) would otherwise see every
    capitalised word of cased text (EWT's "It", "They" opening a sentence)
    as `<unk>`.

    Raises:
        ValueError: `lowercase=true` and the LM's tokenizer is not a
            `WordTokenizer` (a SentencePiece model folds case, or not, as
            it was trained).
    """
    tokenizer = language_model.tokenizer
    if not config.lowercase or getattr(tokenizer, "lowercase", False):
        return tokenizer
    if not isinstance(tokenizer, WordTokenizer):
        raise ValueError(f"field `lowercase` must be false with pretrained_lm={config.pretrained_lm!r}, whose "
                         f"{type(tokenizer).__name__} cannot fold case before its lookup; received lowercase=true.")
    return WordTokenizer(tokenizer.get_vocabulary(), lowercase=True)


def item_batches(preprocessor, items, batch_size, shuffle=False, seed=None):
    """Bucketed `(ids (batch, time), label ids (batch,))` batches of items' prefixes; 0 = singular, 1 = plural."""
    return labeled_dataset(preprocessor, [item.prefix for item in items], [LABEL_IDS[item.label] for item in items],
                           batch_size, shuffle=shuffle, seed=seed)


def train_agreement(config):
    """Trains and evaluates an `AgreementClassifier` as `config` (an `AgreementConfig`) says.

    The items and a pretrained LM are read and checked before the run
    directory is touched. With `pretrained_lm`, the classifier takes the
    LM's vocabulary and start token (of the tokenizer fields only
    `lowercase` is used, see `language_model_tokenizer`) and is initialised
    from its embedding and LSTMs.

    Returns:
        The metrics dict, also written to `run_dir/metrics.json`.
    """
    cpu_threads = set_cpu_threads(config)  # first: TensorFlow's pools are set before its runtime starts
    language_model, transfer_tokenizer = None, None
    if config.pretrained_lm:
        language_model = load_language_model(config.pretrained_lm)
        check_pretrained(config, "pretrained_lm", language_model)
        transfer_tokenizer = language_model_tokenizer(config, language_model)
    train, valid, test = read_items(config)
    run = RunDirectory.open(config)
    run.record("cpu_threads", cpu_threads)

    keras.utils.set_random_seed(config.seed)
    if language_model is not None:
        tokenizer = pretrained_tokenizer(run, transfer_tokenizer)
        start_token = language_model.preprocessor.start_token
    else:
        tokenizer = prepare_tokenizer(run, config, [item.prefix for item in train])
        start_token = BOS
    classifier = build_agreement_classifier(config, tokenizer, start_token)
    transfer = None
    if language_model is not None:
        transfer = transfer_language_model(classifier, language_model)
        logger.info("initialised from %s: %s", config.pretrained_lm, transfer)

    preprocessor = classifier.preprocessor

    def train_data():  # a fresh dataset per `fit`: each starts the same seeded sequence of shuffles
        return item_batches(preprocessor, train, config.batch_size, shuffle=True, seed=config.seed)

    valid_data = item_batches(preprocessor, valid, config.batch_size)
    classifier.compile(training.make_optimizer(config.optimizer, config.learning_rate, config.clipnorm,
                                               config.weight_decay, config.weight_decay_type,
                                               config.weight_averaging))
    cudnn = check_cudnn(classifier, valid_data)
    fit_seconds, history = fit_classifier(classifier, run, config, train_data, valid_data,
                                          title=f"number prediction classifier, {run.path}")
    protocol = training_protocol(config, classifier, train, valid, test, history, transfer, cudnn, cpu_threads)
    result = evaluate_agreement(classifier, test, run.path, title=f"Number prediction: {config.test_file}",
                                protocol=protocol)
    labels = collections.Counter(item.label for item in test)
    train_seconds = [row["train_seconds"] for row in history if "train_seconds" in row]
    metrics = {
        "test_file": config.test_file,
        "test_accuracy": result["overall"]["accuracy"],
        "test_accuracy_interval": list(result["overall"]["interval"]),  # as metrics.json holds it
        # None where the test file has no item of that many attractors.
        "test_accuracy_by_attractors": {bucket: row["accuracy"]
                                        for bucket, row in zip(ATTRACTOR_BUCKETS, result["by_attractors"])},
        "test_items_by_attractors": {bucket: row["num_items"]
                                     for bucket, row in zip(ATTRACTOR_BUCKETS, result["by_attractors"])},
        "majority_class": labels.most_common(1)[0][0],
        "majority_class_accuracy": labels.most_common(1)[0][1] / len(test),
        # The restored weights are the epoch with the lowest validation loss: its accuracy.
        "valid_accuracy": min(history, key=lambda row: row["val_loss"])["val_accuracy"] if history else None,
        "test_items": len(test),
        "valid_items": len(valid),
        "train_items": len(train),
        "epochs": len(history),
        "stopped_by": run.progress["stopped_by"],
        "fit_seconds": fit_seconds,
        "train_seconds": sum(train_seconds),
        "parameters": classifier.count_params(),
        "start_token": start_token,
        "transfer": transfer,
        "cudnn": cudnn,
        "cpu_threads": cpu_threads,
    }
    run.finish(metrics)
    logger.info("%s: test accuracy %.4f (majority class %.4f), by attractors %s", run.path,
                metrics["test_accuracy"], metrics["majority_class_accuracy"], metrics["test_accuracy_by_attractors"])
    return metrics


def unknown_rate(preprocessor, items):
    """The share of the items' prefix tokens that are `<unk>` (0.0 when no prefix has a token)."""
    ids = np.concatenate(preprocessor.encode_lines([item.prefix for item in items], add_start_token=False))
    return float(np.mean(ids == UNK_ID)) if ids.size else 0.0


def training_protocol(config, classifier, train, valid, test, history, transfer, cudnn, cpu_threads):
    """What a reader of the accuracy needs to know of how it was obtained."""
    preprocessor = classifier.preprocessor
    train_labels = collections.Counter(item.label for item in train)
    if config.pretrained_lm:
        folded = isinstance(preprocessor.tokenizer, WordTokenizer) and preprocessor.tokenizer.lowercase
        tokenizer = "the LM run's" + (", case folded before lookup" if folded else "")
    else:
        tokenizer = f"{config.tokenizer} (lowercase={config.lowercase}, min_count={config.min_count})"
    return {
        "train data": f"{config.train_file} ({len(train)} items: {train_labels['singular']} singular, "
                      f"{train_labels['plural']} plural)",
        "model": f"AgreementClassifier: unidirectional {config.cell_type} {config.num_layers}x{config.hidden_dim}, "
                 f"embedding {config.embedding_dim}, last layer's final state, dropout {config.dropout}",
        "tokenizer": f"{tokenizer}: {preprocessor.tokenizer.vocabulary_size()} ids; <unk> rate of the prefixes: "
                     f"train {unknown_rate(preprocessor, train):.2%}, test {unknown_rate(preprocessor, test):.2%}",
        "input": f"'{preprocessor.start_token}' + every word of the prefix, no '</s>': the prediction reads the "
                 f"state after the last prefix word; right padded, zero initial state",
        "initialisation": f"from {config.pretrained_lm}: {transfer}" if transfer else "random (from scratch)",
        "training": f"{config.optimizer} lr {config.learning_rate}, clipnorm {config.clipnorm}, batch "
                    f"{config.batch_size}, {len(history)} epochs (at most {config.epochs}, early stopping "
                    f"patience {config.early_stopping_patience}); weights of the lowest validation loss on "
                    f"{config.valid_file} ({len(valid)} items)",
        "recurrent kernel": describe_cudnn_report(cudnn),
        "CPU threads": describe_cpu_threads(cpu_threads),
        "prediction": "argmax of p(singular), p(plural); correct when it is the verb's number",
        "textlstm_version": importlib.metadata.version("textlstm"),
    }


def evaluate_agreement(classifier, items, directory, stem="report", title="Number prediction", protocol=None):
    """Predicts the number of each item's verb; writes `stem.{json,md,png}` and `stem_items.jsonl` into `directory`.

    Args:
        classifier: an `AgreementClassifier` with a preprocessor.
        items: list of `NumberItem`.
        directory: str, where the report goes.
        stem: str, the report files' name.
        title: str, the Markdown report's title.
        protocol: optional dict, how the classifier was trained and scored.

    Returns:
        The dict `summarize_number_predictions` returns; each item record
        adds `predicted` (a label), `probability` (the predicted label's)
        and `correct`.
    """
    predictions = classifier.predict([item.prefix for item in items])
    records = [
        {**dataclasses.asdict(item), "predicted": predicted, "probability": float(probabilities[label_id]),
         "correct": predicted == item.label}
        for item, predicted, label_id, probabilities in zip(items, predictions.labels, predictions.label_ids,
                                                             predictions.probabilities)
    ]
    result = summarize_number_predictions(records, protocol or {})
    write_number_prediction_report(result, directory, stem=stem, title=title)
    return result


def load_agreement_classifier(run_dir):
    """The `model.keras` of an agreement run (safe_mode: no Lambda, no pickle)."""
    return load_run_model(run_dir, "agreement")
