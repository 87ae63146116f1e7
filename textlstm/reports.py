"""Reports: training-curve PNGs, Markdown tables and classifier evaluation reports."""

import json
import math
import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from textlstm.runs import atomic_path, write_text  # noqa: E402


def elapsed_minutes(history):
    """Minutes from the start of training to the end of each epoch (its validation included), from the
    history's `epoch_seconds`; None for an empty history or where a row lacks them (a log written before
    they were recorded)."""
    seconds = [row.get("epoch_seconds") for row in history]
    if not seconds or any(value is None for value in seconds):
        return None
    return [float(total) / 60 for total in np.cumsum(seconds)]


def plot_curves(history, path, metric="perplexity", title=None, train_label="train"):
    """Plots train and validation `metric` per epoch from a CSV-log history to a PNG, and, where the history
    has `epoch_seconds`, the same against minutes of training in a second panel (time to quality).

    Args:
        history: list of dicts with `epoch`, `metric` and `val_<metric>` keys
            (and `epoch_seconds`, as `training.EpochTimer` logs them).
        path: where the PNG goes.
        train_label: legend of the training curve (say when it is not
            comparable to validation, e.g. a sampled-softmax loss).
    """
    minutes = elapsed_minutes(history)
    axes_x = [("epoch", [row["epoch"] + 1 for row in history])]
    if minutes is not None:
        axes_x.append(("minutes of training (validation included)", minutes))
    figure, axes = plt.subplots(1, len(axes_x), figsize=(6 * len(axes_x), 4), squeeze=False)
    for axis, (x_label, x_values) in zip(axes[0], axes_x):
        for key, label in ((metric, train_label), (f"val_{metric}", "validation")):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                axis.plot(x_values, values, marker="o", label=label)
        axis.set_xlabel(x_label)
        axis.set_ylabel(metric)
        axis.set_yscale("log")
        axis.set_title(title or metric)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def markdown_table(rows, columns):
    """Rows (dicts) -> a Markdown table with the given columns."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.2f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_WILSON_Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def classification_metrics(labels, predictions, probabilities, texts, label_names, lengths=None,
                           length_buckets=(10, 20, 30), num_wrong=10):
    """Evaluation metrics of a text classifier, as a JSON-serializable dict.

    Precision is undefined (None) for a class never predicted, recall for a
    class never present. F1 is 2·TP / (2·TP + FP + FN): 0 for a class present
    but never predicted (or predicted but never present), None for a class
    neither present nor predicted, which macro-F1 then leaves out.

    Args:
        labels: true class ids, one per example, in `[0, len(label_names))`.
        predictions: predicted class ids, same length and range.
        probabilities: array of shape `(num_examples, len(label_names))`, the
            model's class probabilities, each in [0, 1].
        texts: the example texts (str, or UTF-8 bytes as TFDS yields them).
        label_names: one distinct name per class, in class-id order.
        lengths: optional token count per example; by default the
            whitespace-separated word count of each text.
        length_buckets: strictly increasing positive upper bounds of the
            length buckets; (10, 20, 30) gives "1-10", "11-20", "21-30" and
            "31+". Empty texts (length 0) count in the first bucket.
        num_wrong: how many of the most confidently wrong examples to keep.

    Returns:
        A dict with `num_examples`, `label_names`, `accuracy`,
        `accuracy_interval` (95% Wilson score interval, [low, high]),
        `macro_f1`, `majority_class`, `majority_class_accuracy` (the score of
        always predicting the most frequent true label), `per_class` (label
        name -> precision, recall, f1, support), `confusion_matrix` (rows:
        true label, columns: predicted label), `length_unit` ("token" when
        `lengths` is given, else "word"),
        `accuracy_by_length` (list of bucket, count, accuracy; empty buckets
        left out) and `most_confidently_wrong` (list of text, true_label,
        predicted_label, probability, by that probability descending).

    Raises:
        ValueError: if the arguments disagree in length, a class id is out of
            range, `probabilities` has the wrong shape or values outside
            [0, 1], `label_names` has fewer than two or repeated names,
            `lengths` is negative, `length_buckets` is not strictly increasing
            and positive, or `num_wrong` is negative.

    Example:
        >>> metrics = classification_metrics(
        ...     labels=[0, 1, 1], predictions=[0, 1, 0],
        ...     probabilities=[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]],
        ...     texts=["a dull film", "a joy", "not bad at all"],
        ...     label_names=["negative", "positive"])
        >>> round(metrics["accuracy"], 3), metrics["confusion_matrix"]
        (0.667, [[1, 0], [1, 1]])
        >>> metrics["most_confidently_wrong"][0]["text"]
        'not bad at all'
    """
    label_names = [str(name) for name in label_names]
    if len(label_names) < 2 or len(set(label_names)) != len(label_names):
        raise ValueError(f"label_names must hold at least two distinct names, got {label_names!r}")
    num_classes = len(label_names)
    labels = _class_ids(labels, "labels", num_classes)
    num_examples = len(labels)
    if num_examples == 0:
        raise ValueError("labels must hold at least one example, got an empty sequence")
    predictions = _class_ids(predictions, "predictions", num_classes)
    _check_length(predictions, "predictions", num_examples)
    try:
        probabilities = np.asarray(probabilities, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"probabilities must be a numeric (examples, label_names) array, got {error}") from error
    if probabilities.shape != (num_examples, num_classes):
        raise ValueError(f"probabilities must have shape ({num_examples}, {num_classes}) "
                         f"(examples, label_names), got shape {probabilities.shape}")
    out_of_range = ~((probabilities >= 0) & (probabilities <= 1))  # also catches NaN
    if out_of_range.any():
        raise ValueError(f"probabilities must lie in [0, 1], got {probabilities[out_of_range][:5].tolist()}")
    texts = [text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text) for text in texts]
    _check_length(texts, "texts", num_examples)
    if lengths is None:
        length_unit = "word"
        lengths = np.array([len(text.split()) for text in texts], dtype=np.int64)
    else:
        length_unit = "token"
        lengths = np.asarray(lengths)
        _check_length(lengths, "lengths", num_examples)
        if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths must be a 1-D sequence of integers, got shape {lengths.shape} "
                             f"and dtype {lengths.dtype}")
        if (lengths < 0).any():
            raise ValueError(f"lengths must be non-negative, got {lengths[lengths < 0][:5].tolist()}")
    boundaries = list(length_buckets)
    if (not boundaries or any(not isinstance(bound, (int, np.integer)) or bound < 1 for bound in boundaries)
            or any(lower >= upper for lower, upper in zip(boundaries, boundaries[1:]))):
        raise ValueError(f"length_buckets must be strictly increasing positive integers, got {length_buckets!r}")
    if not isinstance(num_wrong, (int, np.integer)) or num_wrong < 0:
        raise ValueError(f"num_wrong must be a non-negative integer, got {num_wrong!r}")

    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    true_positives = np.diag(confusion)
    predicted_counts = confusion.sum(axis=0)
    supports = confusion.sum(axis=1)
    per_class = {}
    for index, name in enumerate(label_names):
        true_positive = int(true_positives[index])
        false_positive = int(predicted_counts[index]) - true_positive
        false_negative = int(supports[index]) - true_positive
        per_class[name] = {
            "precision": _ratio(true_positive, true_positive + false_positive),
            "recall": _ratio(true_positive, true_positive + false_negative),
            "f1": _ratio(2 * true_positive, 2 * true_positive + false_positive + false_negative),
            "support": int(supports[index]),
        }
    defined_f1 = [scores["f1"] for scores in per_class.values() if scores["f1"] is not None]

    correct = labels == predictions
    num_correct = int(correct.sum())
    majority_index = int(np.argmax(supports))

    bucket_of_example = np.searchsorted(boundaries, lengths, side="left")
    lower_bounds = [1] + [bound + 1 for bound in boundaries]
    bucket_names = [f"{lower}-{upper}" for lower, upper in zip(lower_bounds, boundaries)] + [f"{lower_bounds[-1]}+"]
    accuracy_by_length = []
    for bucket, name in enumerate(bucket_names):
        in_bucket = bucket_of_example == bucket
        count = int(in_bucket.sum())
        if count:
            accuracy_by_length.append({"bucket": name, "count": count, "accuracy": float(correct[in_bucket].mean())})

    wrong_indices = np.flatnonzero(~correct)
    wrong_probabilities = probabilities[wrong_indices, predictions[wrong_indices]]
    most_wrong = wrong_indices[np.argsort(-wrong_probabilities, kind="stable")][:num_wrong]
    most_confidently_wrong = [{
        "text": texts[index],
        "true_label": label_names[labels[index]],
        "predicted_label": label_names[predictions[index]],
        "probability": float(probabilities[index, predictions[index]]),
    } for index in most_wrong]

    return {
        "num_examples": num_examples,
        "label_names": label_names,
        "accuracy": num_correct / num_examples,
        "accuracy_interval": list(_wilson_interval(num_correct, num_examples)),
        "macro_f1": float(np.mean(defined_f1)),
        "majority_class": label_names[majority_index],
        "majority_class_accuracy": int(supports[majority_index]) / num_examples,
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "length_unit": length_unit,
        "accuracy_by_length": accuracy_by_length,
        "most_confidently_wrong": most_confidently_wrong,
    }


def _class_ids(values, name, num_classes):
    """`values` as a 1-D integer array of class ids in [0, num_classes), else ValueError naming `name`."""
    ids = np.asarray(values)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D sequence of integer class ids, "
                         f"got shape {ids.shape} and dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    out_of_range = (ids < 0) | (ids >= num_classes)
    if out_of_range.any():
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}] ({num_classes} label_names), "
                         f"got {ids[out_of_range][:5].tolist()}")
    return ids


def _check_length(values, name, num_examples):
    if len(values) != num_examples:
        raise ValueError(f"{name} must have one entry per example ({num_examples}, as labels), got {len(values)}")


def _ratio(numerator, denominator):
    """numerator / denominator, or None when the denominator is 0 (undefined)."""
    return numerator / denominator if denominator else None


def _wilson_interval(successes, trials, z=_WILSON_Z_95):
    """Wilson score interval (low, high) of a binomial proportion."""
    proportion = successes / trials
    denominator = 1 + z * z / trials
    center = (proportion + z * z / (2 * trials)) / denominator
    half_width = z / denominator * math.sqrt(proportion * (1 - proportion) / trials + z * z / (4 * trials * trials))
    return max(0.0, center - half_width), min(1.0, center + half_width)


def escape_cell(text):
    """Text safe inside a Markdown table cell: `|` escaped, line breaks flattened."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _format_score(value):
    return "n/a" if value is None else f"{value:.3f}"


def classification_report_markdown(metrics, title):
    """A Markdown evaluation report of a classifier.

    Args:
        metrics: the dict `classification_metrics` returns (or its JSON).
        title: the report's level-1 heading.

    Returns:
        Markdown: a summary table (accuracy with its 95% Wilson interval,
        macro-F1, majority-class baseline, number of examples), a per-class
        table, the confusion matrix, accuracy by length and the most
        confidently wrong examples; with a `protocol` dict in `metrics`
        (how the model was trained and scored), a table of it.
    """
    label_names = metrics["label_names"]
    low, high = metrics["accuracy_interval"]
    summary = [
        {"metric": "accuracy", "value": f"{metrics['accuracy']:.3f} (95% CI {low:.3f}–{high:.3f}, Wilson)"},
        {"metric": "macro-F1", "value": _format_score(metrics["macro_f1"])},
        {"metric": f"majority-class baseline (always {escape_cell(metrics['majority_class'])})",
         "value": _format_score(metrics["majority_class_accuracy"])},
        {"metric": "examples", "value": metrics["num_examples"]},
    ]
    per_class = [{"label": escape_cell(name), **{key: _format_score(scores[key])
                                                  for key in ("precision", "recall", "f1")},
                  "support": scores["support"]}
                 for name, scores in metrics["per_class"].items()]
    corner = "true \\ predicted"
    escaped_names = [escape_cell(name) for name in label_names]
    confusion = [{corner: true_name, **dict(zip(escaped_names, row))}
                 for true_name, row in zip(escaped_names, metrics["confusion_matrix"])]
    by_length = [{**bucket, "accuracy": _format_score(bucket["accuracy"])} for bucket in metrics["accuracy_by_length"]]
    wrong = [{"rank": rank, "probability": _format_score(example["probability"]),
              "true": escape_cell(example["true_label"]), "predicted": escape_cell(example["predicted_label"]),
              "text": escape_cell(example["text"])}
             for rank, example in enumerate(metrics["most_confidently_wrong"], start=1)]
    sections = [
        f"# {title}",
        "## Summary\n\n" + markdown_table(summary, ["metric", "value"]),
        "## Per class\n\n" + markdown_table(per_class, ["label", "precision", "recall", "f1", "support"]),
        "## Confusion matrix\n\nRows: true label; columns: predicted label.\n\n"
        + markdown_table(confusion, [corner, *escaped_names]),
        f"## Accuracy by length ({metrics['length_unit']}s)\n\n"
        + markdown_table(by_length, ["bucket", "count", "accuracy"]),
        "## Most confidently wrong\n\nProbability: what the model gave its (wrong) prediction.\n\n"
        + (markdown_table(wrong, ["rank", "probability", "true", "predicted", "text"])
           if wrong else "No misclassified examples."),
    ]
    if metrics.get("protocol"):  # how the numbers were obtained, as a reader of a results table needs it
        sections.insert(2, "## Protocol\n\n" + protocol_markdown(metrics["protocol"]))
    return "\n\n".join(sections) + "\n"


def plot_classification_report(metrics, path, title=None):
    """Plots the confusion matrix and accuracy by length of a classifier to one PNG.

    Left: the confusion matrix as a heatmap coloured by row-normalized
    fraction (each true label's row sums to 1) with the raw counts in the
    cells. Right: accuracy per length bucket as bars annotated with their
    example counts, against the overall accuracy and the majority baseline.

    Args:
        metrics: the dict `classification_metrics` returns (or its JSON).
        path: where the PNG goes.
        title: the figure's title; none when not given.
    """
    label_names = metrics["label_names"]
    confusion = np.asarray(metrics["confusion_matrix"], dtype=float)
    row_fractions = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    figure, (matrix_axis, length_axis) = plt.subplots(1, 2, figsize=(12, 5.5), layout="constrained")

    image = matrix_axis.imshow(row_fractions, cmap="Blues", vmin=0, vmax=1)
    for true_index, predicted_index in np.ndindex(confusion.shape):
        matrix_axis.text(predicted_index, true_index, str(int(confusion[true_index, predicted_index])),
                         ha="center", va="center",
                         color="white" if row_fractions[true_index, predicted_index] > 0.5 else "black")
    ticks = range(len(label_names))
    matrix_axis.set_xticks(ticks, label_names, rotation=30, ha="right")
    matrix_axis.set_yticks(ticks, label_names)
    matrix_axis.set_xlabel("predicted label")
    matrix_axis.set_ylabel("true label")
    matrix_axis.set_title("confusion matrix (counts)")
    figure.colorbar(image, ax=matrix_axis, label="fraction of the true label's row")

    buckets = metrics["accuracy_by_length"]
    positions = range(len(buckets))
    bars = length_axis.bar(positions, [bucket["accuracy"] for bucket in buckets], color="tab:blue")
    length_axis.bar_label(bars, labels=[f"n={bucket['count']}" for bucket in buckets], padding=2)
    length_axis.axhline(metrics["accuracy"], color="black", linestyle="--", label="overall accuracy")
    length_axis.axhline(metrics["majority_class_accuracy"], color="tab:red", linestyle=":",
                        label="majority-class baseline")
    length_axis.set_xticks(positions, [bucket["bucket"] for bucket in buckets])
    length_axis.set_ylim(0, 1.3)  # headroom for the counts and the legend
    length_axis.set_yticks(np.linspace(0, 1, 6))
    length_axis.set_xlabel(f"length ({metrics['length_unit']}s)")
    length_axis.set_ylabel("accuracy")
    length_axis.set_title("accuracy by length")
    length_axis.legend(loc="upper center", ncols=2)
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_classification_report(metrics, directory, stem="report", title="Classification report"):
    """Writes `<stem>.md`, `<stem>.json` and `<stem>.png` of a classifier's metrics.

    Each file is written under a temporary name in `directory` and then
    renamed into place, so a reader never sees a half-written report.

    Args:
        metrics: the dict `classification_metrics` returns.
        directory: the folder for the three files; created when missing.
        stem: the files' name without extension.
        title: the title of the Markdown report and of the figure.

    Returns:
        The paths of the Markdown, JSON and PNG files, in that order.
    """
    markdown_path, json_path, png_path = (os.path.join(directory, stem + extension)
                                          for extension in (".md", ".json", ".png"))
    write_text(classification_report_markdown(metrics, title), markdown_path)
    write_text(json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=False) + "\n", json_path)
    with atomic_path(png_path) as temporary_path:
        plot_classification_report(metrics, temporary_path, title)
    return markdown_path, json_path, png_path


def bootstrap_interval(outcomes, num_samples=1000, seed=0, level=0.95):
    """Percentile bootstrap interval (low, high) of the mean of 0/1 outcomes (Efron & Tibshirani 1993).

    Resampling n outcomes with replacement makes the count of successes
    Binomial(n, mean): drawn directly, which is the same distribution.
    None for no outcomes.
    """
    outcomes = np.asarray(outcomes, dtype=float)
    if outcomes.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = rng.binomial(outcomes.size, outcomes.mean(), size=num_samples) / outcomes.size
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def protocol_markdown(protocol):
    """A `protocol` dict as a two-column Markdown table."""
    rows = [{"setting": escape_cell(str(key)), "value": escape_cell(str(value))} for key, value in protocol.items()]
    return markdown_table(rows, ["setting", "value"])


def accuracy_rows_markdown(rows, name_column):
    """Markdown of accuracy rows (dicts with `name`, `accuracy`, `interval`, `num_items`, `num_scored`, ...)."""
    table = [{
        name_column: escape_cell(row["name"]),
        "accuracy": _format_score(row["accuracy"]),
        "95% interval": "n/a" if row["interval"] is None else f"{row['interval'][0]:.3f}-{row['interval'][1]:.3f}",
        "items": row["num_items"],
        "scored": row["num_scored"],
        "coverage": _format_score(row["coverage"]),
        **{key: row[key] for key in row.get("extra_columns", [])},
    } for row in rows]
    columns = [name_column, "accuracy", "95% interval", "items", "scored", "coverage"]
    columns += rows[0].get("extra_columns", []) if rows else []
    return markdown_table(table, columns)


def plot_accuracy_bars(rows, path, title, chance=0.5, references=None):
    """Horizontal bars of accuracy with 95% intervals, one per row; optional reference points.

    Args:
        rows: dicts with `name`, `accuracy` (None = nothing scored) and `interval`.
        path: where the PNG goes.
        title: the figure's title.
        chance: where to draw the chance line (None = none).
        references: optional {name: accuracy} from the literature, drawn as markers.
    """
    names = [row["name"] for row in rows]
    values = [row["accuracy"] if row["accuracy"] is not None else 0.0 for row in rows]
    low = [v - (row["interval"][0] if row["interval"] else v) for v, row in zip(values, rows)]
    high = [(row["interval"][1] if row["interval"] else v) - v for v, row in zip(values, rows)]
    figure, axis = plt.subplots(figsize=(8, 1.5 + 0.28 * len(rows)), layout="constrained")
    positions = np.arange(len(rows))
    axis.barh(positions, values, xerr=[low, high], color="tab:blue", ecolor="black", capsize=2, label="this model")
    if references:
        points = [(i, references[name]) for i, name in enumerate(names) if name in references]
        if points:
            axis.scatter([p[1] for p in points], [p[0] for p in points], color="tab:red", marker="D", zorder=3,
                         label="reference")
    for position, row in zip(positions, rows):
        if row["accuracy"] is None:  # nothing scored: say so rather than draw a 0
            axis.text(0.01, position, "n/a (nothing scored)", va="center", fontsize=8)
    if chance is not None:
        axis.axvline(chance, color="gray", linestyle=":", label="chance")
    axis.set_yticks(positions, names, fontsize=7 if len(rows) > 30 else 9)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("accuracy (95% bootstrap interval)")
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize=8)
    figure.savefig(path, dpi=100)
    plt.close(figure)
