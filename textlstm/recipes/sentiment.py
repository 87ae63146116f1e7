"""The sentiment recipe: config in, run directory out.

    config ──► LabeledExamples (sst2_glue | sst2_kim2014 | sst5_kim2014 | mr)
           ──► tokenizer (trained, or a pretrained LM's) ──► ClassifierPreprocessor
           ──► bucketed (ids, label[, class weight]) batches
           ──► bidirectional LSTMBackbone + SentimentClassifier
               (optionally initialised from LM runs: ULMFiT, Howard & Ruder 2018)
           ──► fit ──► run_dir/
               config.json  progress.json  tokenizer/  model.keras  metrics.json
               history.csv  curves.png  logs/  report.{md,json,png}

`cross_validation_folds=K` (MR has no test split) trains K runs in
`run_dir/fold_1 ... fold_K`, each testing on its fold, and reports their mean.
`ensemble_size=K` trains K runs in `run_dir/member_1 ... member_K` with seeds
`seed ... seed+K-1`, and `run_dir/model.keras` is their `ClassifierEnsemble`.
"""

import dataclasses
import logging
import os

import keras
import numpy as np

from textlstm import training
from textlstm.config import SentimentConfig, read_json_object
from textlstm.cpu_threads import describe_cpu_threads
from textlstm.data import (
    SENTIMENT_DATASETS,
    LabeledExamples,
    cross_validation_folds,
    held_out_sentences,
    labeled_dataset,
    read_label_prefixed,
    read_sentiment_dataset,
    read_tsv_labeled,
)
from textlstm.data.sequences import inverse_frequency_weights
from textlstm.models import ClassifierEnsemble, SentimentClassifier, transfer_language_model
from textlstm.models.classifier import classifier_layer_groups
from textlstm.models.recurrent import describe_cudnn_report
from textlstm.preprocessors import ClassifierPreprocessor
from textlstm.recipes.language_model import load_language_model
from textlstm.recipes.run_steps import (
    build_backbone,
    check_cudnn,
    check_pretrained,
    fit_classifier,
    load_run_model,
    prepare_tokenizer,
    pretrained_tokenizer,
    save_model,
    set_cpu_threads,
)
from textlstm.reports import classification_metrics, write_classification_report
from textlstm.runs import RunDirectory, read_run_config, write_json
from textlstm.tokenizers import BOS, UNK_ID, load_tokenizer

logger = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.1  # of the training part, in cross-validation folds (no dev set there)
VALIDATION_DRAW_SEED = 0  # `validation_sentences`: one draw for every training seed, as a dataset's dev split is one


def read_splits(config):
    """Train, validation and test `LabeledExamples` of a dataset that has splits.

    With `validation_sentences=N` (sst2_glue), train and dev are pooled and
    N whole sentences, with the phrases found only inside them, validate
    (`held_out_sentences`); the draw is the same for every seed, so runs of
    several seeds, and an ensemble's members, validate on one set.
    `max_train_lines` then limits the training rows left.
    """
    train, dev, test = (read_sentiment_dataset(config.dataset, split, config.data_dir,
                                               max_lines=0 if config.validation_sentences or split != "train"
                                               else config.max_train_lines)
                        for split in ("train", "dev", "test"))
    if config.validation_sentences:
        pooled = LabeledExamples(train.texts + dev.texts, train.labels + dev.labels, f"{train.source} + {dev.source}")
        try:
            train, dev = held_out_sentences(pooled, config.validation_sentences, seed=VALIDATION_DRAW_SEED)
        except ValueError as error:
            raise ValueError(f"`validation_sentences` is too large for {config.dataset}, received "
                             f"{config.validation_sentences}: {error}") from error
        train.source = f"{pooled.source} less {len(dev)} held-out sentences and the phrases only they contain"
        dev.source = f"{len(dev)} whole sentences held out of {pooled.source}"
        if config.max_train_lines:
            train = train.subset(range(min(config.max_train_lines, len(train))))
    return train, dev, test


def load_pretrained(config):
    """The forward and backward LMs a config names (None where it names none), checked against it.

    Runs before the run directory is touched: a mismatch names the fields.
    """
    forward = load_language_model(config.pretrained_lm) if config.pretrained_lm else None
    backward = load_language_model(config.pretrained_backward_lm) if config.pretrained_backward_lm else None
    for field, lm in (("pretrained_lm", forward), ("pretrained_backward_lm", backward)):
        if lm is not None:
            check_pretrained(config, field, lm)
    if forward is not None and backward is not None:
        if forward.preprocessor.start_token != backward.preprocessor.start_token:
            raise ValueError(
                f"`pretrained_backward_lm` starts texts with {backward.preprocessor.start_token!r} but "
                f"`pretrained_lm` with {forward.preprocessor.start_token!r}; train both in the same mode."
            )
        if forward.tokenizer.get_vocabulary() != backward.tokenizer.get_vocabulary():
            raise ValueError("`pretrained_backward_lm` has another vocabulary than `pretrained_lm`; train both "
                             "with the same tokenizer.")
    return forward, backward


def build_classifier(config, tokenizer, start_token):
    """The bidirectional LSTMBackbone + SentimentClassifier a config describes."""
    info = SENTIMENT_DATASETS[config.dataset]
    backbone = build_backbone(config, tokenizer.vocabulary_size(), bidirectional=True)
    preprocessor = ClassifierPreprocessor(tokenizer, start_token=start_token, sequence_length=config.max_length)
    return SentimentClassifier(backbone, num_classes=info.num_classes, preprocessor=preprocessor,
                               pooling=config.pooling, dropout=config.dropout, label_names=list(info.label_names))


def make_optimizer(config, classifier, steps_per_epoch):
    """One optimizer, or with discriminative rates / gradual unfreezing one per layer group (ULMFiT).

    Groups run bottom to top: embedding, each recurrent layer, the head.
    Group g's rate is the base rate / `discriminative_lr_factor`^(groups-1-g)
    (Howard & Ruder 2018 use 2.6); with `gradual_unfreezing` group g starts
    training at epoch groups-1-g (the head first). Frozen groups have rate
    0 (so no weight decay either); Adam's moments still see their gradients.
    """
    def base(factor):  # the rate, or slanted triangular schedule, of `factor` x the configured rate
        if config.lr_schedule == "slanted_triangular":
            return training.SlantedTriangular(config.learning_rate * factor, steps_per_epoch * config.epochs)
        return config.learning_rate * factor

    if config.discriminative_lr_factor == 1.0 and not config.gradual_unfreezing:
        return training.make_optimizer(config.optimizer, base(1.0), config.clipnorm, config.weight_decay,
                                       config.weight_decay_type, config.weight_averaging)
    groups = classifier_layer_groups(classifier)
    optimizers = []
    for depth, _ in enumerate(reversed(groups)):  # depth 0 = the head
        start_step = depth * steps_per_epoch if config.gradual_unfreezing else 0
        schedule = training.GroupSchedule(base(1.0 / config.discriminative_lr_factor ** depth), start_step)
        optimizers.append(training.make_optimizer(config.optimizer, schedule, config.clipnorm,
                                                  config.weight_decay, config.weight_decay_type,
                                                  config.weight_averaging))
    optimizers.reverse()  # bottom to top, as the groups
    group_of = {variable.path: index for index, group in enumerate(groups) for variable in group}
    return keras.optimizers.MultiOptimizer(lambda variable: optimizers[group_of[variable.path]])


def fit_and_evaluate(config, run, train, valid, test, pretrained, cpu_threads, shared_tokenizer=None):
    """Trains one classifier in `run` and evaluates it on `test`; returns the metrics dict.

    `pretrained` is `load_pretrained(config)`: with a forward LM, the
    classifier takes its tokenizer and start token (the tokenizer fields of
    the config are not used) and is initialised from it. Else
    `shared_tokenizer` (an earlier ensemble member's), when given, is used
    instead of training one. `cpu_threads` is the process's `set_cpu_threads`.
    """
    run.record("cpu_threads", cpu_threads)
    keras.utils.set_random_seed(config.seed)
    forward_lm, backward_lm = pretrained
    if forward_lm is not None:
        tokenizer = pretrained_tokenizer(run, forward_lm.tokenizer)
        start_token = forward_lm.preprocessor.start_token
    elif shared_tokenizer is not None:
        tokenizer = pretrained_tokenizer(run, shared_tokenizer, source="member_1/tokenizer")
        start_token = BOS
    else:
        tokenizer = prepare_tokenizer(run, config, train.texts)
        start_token = BOS
    classifier = build_classifier(config, tokenizer, start_token)
    transfer = None
    if forward_lm is not None:
        transfer = transfer_language_model(classifier, forward_lm, backward_lm)
        logger.info("initialised from %s: %s", config.pretrained_lm, transfer)

    info = SENTIMENT_DATASETS[config.dataset]
    class_weights = inverse_frequency_weights(train.labels, info.num_classes) if config.class_weights else None
    preprocessor = classifier.preprocessor

    def train_data():  # a fresh dataset per `fit`: each starts the same seeded sequence of shuffles
        return labeled_dataset(preprocessor, train.texts, train.labels, config.batch_size,
                               class_weights=class_weights, shuffle=True, seed=config.seed)

    valid_data = labeled_dataset(preprocessor, valid.texts, valid.labels, config.batch_size)
    steps_per_epoch = int(train_data().cardinality())
    classifier.compile(make_optimizer(config, classifier, steps_per_epoch))
    cudnn = check_cudnn(classifier, valid_data)

    fit_seconds, history = fit_classifier(classifier, run, config, train_data, valid_data,
                                          title=f"{config.dataset} classifier, {run.path}")
    report = evaluate_examples(classifier, test, run.path, title=f"{config.dataset} {test.source}",
                               protocol=training_protocol(config, classifier, train, valid, history, transfer, cudnn,
                                                          cpu_threads))
    train_seconds = [row["train_seconds"] for row in history if "train_seconds" in row]
    metrics = {
        "dataset": config.dataset,
        "test_file": test.source,
        "test_accuracy": report["accuracy"],
        "test_accuracy_interval": report["accuracy_interval"],
        "test_macro_f1": report["macro_f1"],
        "majority_class_accuracy": report["majority_class_accuracy"],
        # The restored weights are the epoch with the lowest validation loss: its accuracy.
        "valid_accuracy": min(history, key=lambda row: row["val_loss"])["val_accuracy"] if history else None,
        "test_examples": len(test),
        "train_examples": len(train),
        "validation_examples": len(valid),
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
    logger.info("%s: test accuracy %.4f, macro-F1 %.4f", run.path, report["accuracy"], report["macro_f1"])
    return metrics


def training_protocol(config, classifier, train, valid, history, transfer, cudnn, cpu_threads):
    """What a reader of the accuracy needs to know of how it was obtained."""
    ids = np.concatenate(classifier.preprocessor.encode_lines(train.texts[:5000]))
    return {
        "train data": f"{train.source} ({len(train)} examples)",
        "validation data": f"{valid.source} ({len(valid)} examples)",
        "model": f"bidirectional {config.cell_type} {config.num_layers}x{config.hidden_dim}, embedding "
                 f"{config.embedding_dim}, pooling {config.pooling}, dropout {config.dropout}",
        "tokenizer": f"{'the LM run' if config.pretrained_lm else config.tokenizer}: "
                     f"{classifier.preprocessor.tokenizer.vocabulary_size()} ids; <unk> rate on train "
                     f"{float(np.mean(ids == UNK_ID)):.2%}",
        "input": f"'{classifier.preprocessor.start_token}' + at most {config.max_length} tokens + '</s>', "
                 f"right padded, zero initial state",
        "initialisation": f"from {config.pretrained_lm}: {transfer}" if transfer else "random (from scratch)",
        "training": f"{config.optimizer} lr {config.learning_rate} ({config.lr_schedule}), batch {config.batch_size}, "
                    f"{len(history)} epochs; weights of the lowest validation loss",
        "recurrent kernel": describe_cudnn_report(cudnn),
        "CPU threads": describe_cpu_threads(cpu_threads),
        "prediction": "argmax of the softmax; accuracy interval: Wilson 95%",
    }


def evaluate_examples(classifier, examples, directory, stem="report", title=None, protocol=None):
    """Predicts `examples`, writes `stem.{md,json,png}` into `directory`; returns the metrics dict.

    `protocol` (a dict: how the model was trained and scored) goes into the report.
    """
    predictions = classifier.predict(examples.texts)
    lengths = [len(ids) - 2 for ids in classifier.preprocessor.encode_lines(examples.texts)]  # without start/end
    metrics = classification_metrics(
        labels=examples.labels, predictions=predictions.label_ids, probabilities=predictions.probabilities,
        texts=examples.texts, label_names=classifier.label_names, lengths=lengths,
    )
    if protocol:
        metrics["protocol"] = protocol
    write_classification_report(metrics, directory, stem=stem, title=title or examples.source)
    return metrics


def cross_validate(config, pretrained, cpu_threads):
    """K-fold cross-validation (Kim 2014 on MR): fold k trains on the rest and tests on fold k.

    Each fold is a run directory of its own (`fold_k/`, resumed and continued
    like any run); the parent holds the mean and a report of the pooled
    predictions, each example predicted by the fold model that never saw it.
    """
    examples = read_sentiment_dataset(config.dataset, "all", config.data_dir, max_lines=config.max_train_lines)
    run = RunDirectory.open(config)
    run.record("cpu_threads", cpu_threads)  # where a re-run reads it back (set_cpu_threads)
    folds = cross_validation_folds(len(examples), config.cross_validation_folds, seed=config.seed,
                                   labels=examples.labels)
    results, tested = [], []
    for index, (train_indices, test_indices) in enumerate(folds, start=1):
        shuffled = np.random.default_rng(config.seed + index).permutation(train_indices)
        held = max(1, int(len(shuffled) * VALIDATION_FRACTION))
        fold_config = dataclasses.replace(config, run_dir=run.file(f"fold_{index}"))
        test = examples.subset(test_indices)
        tested.append((fold_config.run_dir, test))
        fold_run = RunDirectory.open(fold_config, finished_ok=True)
        if fold_run.finished:
            results.append(fold_run.read_metrics())
            continue
        logger.info("fold %d of %d: %d train, %d validation, %d test", index, len(folds),
                    len(shuffled) - held, held, len(test_indices))
        results.append(fit_and_evaluate(fold_config, fold_run, examples.subset(shuffled[held:]),
                                        examples.subset(shuffled[:held]), test, pretrained, cpu_threads))
    report = pooled_report(tested, run.path, f"{config.dataset}, {len(folds)}-fold cross-validation")
    accuracies = [result["test_accuracy"] for result in results]
    metrics = {
        "dataset": config.dataset,
        "cross_validation_folds": len(folds),
        "test_accuracy": float(np.mean(accuracies)),
        "test_accuracy_std": float(np.std(accuracies)),
        "fold_accuracies": accuracies,
        "test_macro_f1": float(np.mean([result["test_macro_f1"] for result in results])),
        "pooled_accuracy": report["accuracy"],
        "pooled_accuracy_interval": report["accuracy_interval"],
        "train_seconds": sum(result["train_seconds"] for result in results),
        "cpu_threads": cpu_threads,
    }
    run.finish(metrics)
    return metrics


def train_ensemble(config, pretrained, cpu_threads):
    """`ensemble_size` members, each a run of its own, then their `ClassifierEnsemble` tested in `config.run_dir`.

    Member k (`run_dir/member_k/`) is the run `config` describes with seed
    `seed + k - 1` and `time_budget_minutes / ensemble_size` of training
    (the budget stays the whole run's); members after the first take member
    1's tokenizer. Each resumes and continues like any run, so a re-run
    after a crash trains only the members (and epochs) still missing.
    """
    train, valid, test = read_splits(config)
    run = RunDirectory.open(config)
    run.record("cpu_threads", cpu_threads)  # where a re-run reads it back (set_cpu_threads)
    results = []
    for index in range(1, config.ensemble_size + 1):
        member_config = dataclasses.replace(
            config, run_dir=run.file(f"member_{index}"), seed=config.seed + index - 1, ensemble_size=1,
            time_budget_minutes=config.time_budget_minutes / config.ensemble_size, overwrite=False)
        member_run = RunDirectory.open(member_config, finished_ok=True)
        if member_run.finished:
            results.append(member_run.read_metrics())
            continue
        logger.info("ensemble member %d of %d (seed %d)", index, config.ensemble_size, member_config.seed)
        shared_tokenizer = None if index == 1 else load_tokenizer(run.file("member_1", "tokenizer"))
        results.append(fit_and_evaluate(member_config, member_run, train, valid, test, pretrained, cpu_threads,
                                        shared_tokenizer))
    ensemble = ClassifierEnsemble([load_classifier(run.file(f"member_{index}"))
                                   for index in range(1, config.ensemble_size + 1)])
    save_model(ensemble, run)
    seeds = f"{config.seed}-{config.seed + config.ensemble_size - 1}"
    budget = (f"at most {config.time_budget_minutes / config.ensemble_size:.1f} minutes of training each"
              if config.time_budget_minutes else "no time budget")
    member_accuracies = ", ".join(f"{result['test_accuracy']:.4f} ({result['stopped_by']})" for result in results)
    member_protocol = read_json_object(run.file("member_1", "report.json"), "member report").get("protocol", {})
    protocol = {
        **{key: value for key, value in member_protocol.items() if key != "prediction"},
        "ensemble": f"{config.ensemble_size} members (member_1 ... member_{config.ensemble_size}/, seeds {seeds}, "
                    f"{budget}), each trained as member_1's lines above say; member test accuracies (what "
                    f"stopped each) {member_accuracies}",
        "prediction": "argmax of the members' mean softmax; accuracy interval: Wilson 95%",
    }
    report = evaluate_examples(ensemble, test, run.path, title=f"{config.dataset} {test.source}, ensemble",
                               protocol=protocol)
    metrics = {
        "dataset": config.dataset,
        "test_file": test.source,
        "ensemble_size": config.ensemble_size,
        "test_accuracy": report["accuracy"],
        "test_accuracy_interval": report["accuracy_interval"],
        "test_macro_f1": report["macro_f1"],
        "majority_class_accuracy": report["majority_class_accuracy"],
        "member_test_accuracies": [result["test_accuracy"] for result in results],
        "member_stopped_by": [result["stopped_by"] for result in results],
        "test_examples": len(test),
        "train_examples": len(train),
        "validation_examples": len(valid),
        "epochs": [result["epochs"] for result in results],
        "train_seconds": sum(result["train_seconds"] for result in results),
        "cpu_threads": cpu_threads,
    }
    run.finish(metrics)
    logger.info("%s: ensemble test accuracy %.4f (members %s)", run.path, report["accuracy"],
                metrics["member_test_accuracies"])
    return metrics


def pooled_report(tested, directory, title):
    """One report over every fold's test examples, each predicted by its own fold's model."""
    texts, labels, label_ids, probabilities, lengths = [], [], [], [], []
    for fold_dir, test in tested:
        classifier = load_classifier(fold_dir)
        predictions = classifier.predict(test.texts)
        texts += test.texts
        labels += test.labels
        label_ids.append(predictions.label_ids)
        probabilities.append(predictions.probabilities)
        lengths += [len(ids) - 2 for ids in classifier.preprocessor.encode_lines(test.texts)]
    metrics = classification_metrics(labels=labels, predictions=np.concatenate(label_ids),
                                     probabilities=np.concatenate(probabilities), texts=texts,
                                     label_names=classifier.label_names, lengths=lengths)
    write_classification_report(metrics, directory, title=title)
    return metrics


def train_sentiment(config):
    """Trains and evaluates a sentiment classifier as `config` says; returns the metrics dict.

    Data and pretrained LMs are read and checked before the run directory
    is touched; TensorFlow's thread pools are chosen before either (with
    `cpu_threads=auto` about 25 s of timing), as they must be set before
    TensorFlow starts.
    """
    cpu_threads = set_cpu_threads(config, bidirectional=True, time_steps=config.max_length + 2)  # + <s>, </s>
    pretrained = load_pretrained(config)
    if config.cross_validation_folds:
        return cross_validate(config, pretrained, cpu_threads)
    if config.ensemble_size > 1:
        return train_ensemble(config, pretrained, cpu_threads)
    train, valid, test = read_splits(config)
    run = RunDirectory.open(config)
    return fit_and_evaluate(config, run, train, valid, test, pretrained, cpu_threads)


def load_classifier(run_dir):
    """The `model.keras` of a classifier run (safe_mode: no Lambda, no pickle).

    A `SentimentClassifier`, or the `ClassifierEnsemble` of an `ensemble_size` > 1 run.
    """
    fold = os.path.join(run_dir, "fold_1", "model.keras")
    hint = f" (a cross-validation run: its models are in {run_dir}/fold_K/)" if os.path.exists(fold) else ""
    return load_run_model(run_dir, "classifier", hint)


def read_labeled_file(path, num_classes, encoding="utf-8"):
    """A labeled file in either format the datasets use: TSV with a header (`.tsv`), else `<label> <text>` lines."""
    if path.endswith(".tsv"):
        return read_tsv_labeled(path, encoding=encoding, num_classes=num_classes)
    return read_label_prefixed(path, encoding=encoding, num_classes=num_classes)


def evaluate_classifier_run(run_dir, path, encoding=None, output_dir=None):
    """Evaluates a classifier run on a labeled file; writes a report; returns the metrics dict.

    The report goes to `output_dir` (default `run_dir/evaluations/<file name>/`).
    """
    config = read_run_config(SentimentConfig, run_dir)
    classifier = load_classifier(run_dir)
    examples = read_labeled_file(path, len(classifier.label_names), encoding or config.encoding)
    output_dir = output_dir or os.path.join(run_dir, "evaluations", os.path.basename(path))
    metrics = evaluate_examples(classifier, examples, output_dir)
    write_json({"file": path, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]},
               os.path.join(output_dir, "summary.json"))
    return metrics


def accuracy_summary(metrics):
    """One line for people: accuracy with its interval (or fold spread), macro-F1."""
    if "fold_accuracies" in metrics:
        return (f"{metrics['cross_validation_folds']}-fold accuracy {metrics['test_accuracy']:.4f} "
                f"(std {metrics['test_accuracy_std']:.4f}), macro-F1 {metrics['test_macro_f1']:.4f}")
    low, high = metrics["test_accuracy_interval"]
    return (f"test accuracy {metrics['test_accuracy']:.4f} (95% CI {low:.4f}-{high:.4f}, "
            f"{metrics['test_examples']} examples), macro-F1 {metrics['test_macro_f1']:.4f}, "
            f"majority class {metrics['majority_class_accuracy']:.4f}")

