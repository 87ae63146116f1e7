import json
import os

import numpy as np
import pytest

from textlstm.reports import (
    classification_metrics,
    classification_report_markdown,
    elapsed_minutes,
    markdown_table,
    plot_curves,
    write_classification_report,
)

LABEL_NAMES = ["negative", "neutral", "positive"]
# Confusion matrix (rows true, columns predicted): [[2, 1, 0], [0, 2, 1], [0, 0, 4]].
LABELS = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
PREDICTIONS = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]


def one_hot_probabilities(predictions, num_classes, confidence=0.8):
    probabilities = np.full((len(predictions), num_classes), (1 - confidence) / (num_classes - 1))
    probabilities[np.arange(len(predictions)), predictions] = confidence
    return probabilities


def three_class_metrics(**overrides):
    arguments = dict(labels=LABELS, predictions=PREDICTIONS, probabilities=one_hot_probabilities(PREDICTIONS, 3),
                     texts=[f"example {index}" for index in range(len(LABELS))], label_names=LABEL_NAMES)
    arguments.update(overrides)
    return classification_metrics(**arguments)


def test_plot_curves_writes_a_png(tmp_path):
    history = [{"epoch": 0, "perplexity": 300.0, "val_perplexity": 250.0},
               {"epoch": 1, "perplexity": 200.0, "val_perplexity": 180.0}]
    path = tmp_path / "curves.png"
    plot_curves(history, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000


def test_plot_curves_adds_a_minutes_panel_where_epochs_are_timed(tmp_path):
    history = [{"epoch": 0, "epoch_seconds": 90.0, "perplexity": 300.0, "val_perplexity": 250.0},
               {"epoch": 1, "epoch_seconds": 150.0, "perplexity": 200.0, "val_perplexity": 180.0}]
    assert elapsed_minutes(history) == pytest.approx([1.5, 4.0])
    assert elapsed_minutes([{"epoch": 0, "val_perplexity": 250.0}] + history) is None
    timed, untimed = tmp_path / "timed.png", tmp_path / "untimed.png"
    plot_curves(history, str(timed))
    plot_curves([{key: row[key] for key in ("epoch", "perplexity", "val_perplexity")} for row in history],
                str(untimed))
    widths = [int.from_bytes(path.read_bytes()[16:20], "big") for path in (untimed, timed)]  # IHDR width
    assert widths == [600, 1200]  # one 6-inch panel at 100 dpi, or two
    assert elapsed_minutes([]) is None


def test_markdown_table():
    table = markdown_table([{"model": "small", "ppl": 112.346}], ["model", "ppl"])
    assert table.splitlines() == ["| model | ppl |", "|---|---|", "| small | 112.35 |"]


def test_classification_metrics_hand_computed_three_classes():
    metrics = three_class_metrics()
    assert metrics["num_examples"] == 10
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [0, 0, 4]]
    # negative: TP 2, FP 0, FN 1; neutral: TP 2, FP 1, FN 1; positive: TP 4, FP 1, FN 0.
    expected = {"negative": (1.0, 2 / 3, 0.8, 3), "neutral": (2 / 3, 2 / 3, 2 / 3, 3),
                "positive": (0.8, 1.0, 8 / 9, 4)}
    for name, (precision, recall, f1, support) in expected.items():
        scores = metrics["per_class"][name]
        assert scores["precision"] == pytest.approx(precision)
        assert scores["recall"] == pytest.approx(recall)
        assert scores["f1"] == pytest.approx(f1)
        assert scores["support"] == support
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 8 / 9) / 3)  # 106/135
    assert metrics["majority_class"] == "positive"
    assert metrics["majority_class_accuracy"] == pytest.approx(0.4)


def test_accuracy_interval_is_the_wilson_score_interval():
    labels = [1] * 100
    predictions = [1] * 80 + [0] * 20
    metrics = classification_metrics(labels, predictions, one_hot_probabilities(predictions, 2),
                                     ["text"] * 100, ["negative", "positive"])
    assert metrics["accuracy"] == pytest.approx(0.8)
    # Hand-computed, z = 1.96: center 0.7889, half-width 0.0777.
    assert metrics["accuracy_interval"] == pytest.approx([0.7112, 0.8666], abs=2e-4)
    perfect = classification_metrics([0, 1] * 5, [0, 1] * 5, one_hot_probabilities([0, 1] * 5, 2),
                                     ["text"] * 10, ["negative", "positive"])
    # All correct: the interval is [n / (n + z^2), 1], not the degenerate [1, 1].
    assert perfect["accuracy_interval"] == pytest.approx([10 / (10 + 1.959964 ** 2), 1.0])


def test_accuracy_by_length_buckets():
    texts = ["one two", "one two three", "a b c d e", "a b c d e f", "a b c d e f g h i j k l", ""]
    labels = [0, 1, 0, 1, 0, 1]
    predictions = [0, 0, 0, 1, 1, 1]
    metrics = classification_metrics(labels, predictions, one_hot_probabilities(predictions, 2), texts,
                                     ["negative", "positive"], length_buckets=(3, 6))
    # Word counts 2, 3, 5, 6, 12, 0: the empty text counts in the first bucket.
    assert metrics["length_unit"] == "word"
    assert metrics["accuracy_by_length"] == [
        {"bucket": "1-3", "count": 3, "accuracy": pytest.approx(2 / 3)},
        {"bucket": "4-6", "count": 2, "accuracy": 1.0},
        {"bucket": "7+", "count": 1, "accuracy": 0.0},
    ]
    by_tokens = classification_metrics(labels, predictions, one_hot_probabilities(predictions, 2), texts,
                                       ["negative", "positive"], lengths=[25, 25, 25, 40, 40, 40])
    # Explicit token lengths win over word counts; the empty buckets 1-10 and 11-20 are left out.
    assert by_tokens["length_unit"] == "token"
    assert by_tokens["accuracy_by_length"] == [
        {"bucket": "21-30", "count": 3, "accuracy": pytest.approx(2 / 3)},
        {"bucket": "31+", "count": 3, "accuracy": pytest.approx(2 / 3)},
    ]


def test_most_confidently_wrong_sorted_by_probability_of_the_wrong_prediction():
    labels = [0, 0, 1, 1, 0, 1]
    predictions = [1, 1, 0, 0, 0, 1]
    probabilities = [[0.4, 0.6], [0.05, 0.95], [0.7, 0.3], [0.99, 0.01], [0.999, 0.001], [0.0, 1.0]]
    texts = ["meh", "not | great", "fine", "so bad it is good", "awful", "lovely"]
    metrics = classification_metrics(labels, predictions, probabilities, texts, ["negative", "positive"],
                                     num_wrong=3)
    wrong = metrics["most_confidently_wrong"]
    assert [example["text"] for example in wrong] == ["so bad it is good", "not | great", "fine"]
    assert [example["probability"] for example in wrong] == [0.99, 0.95, 0.7]
    assert wrong[0]["true_label"] == "positive" and wrong[0]["predicted_label"] == "negative"
    assert "not \\| great" in classification_report_markdown(metrics, "SST-2")


def test_class_never_predicted_has_f1_zero_and_absent_class_is_left_out():
    labels = [0, 1, 2, 2]
    predictions = [0, 2, 2, 2]
    names = ["negative", "neutral", "positive", "mixed"]
    metrics = classification_metrics(labels, predictions, one_hot_probabilities(predictions, 4), ["t"] * 4, names)
    neutral = metrics["per_class"]["neutral"]
    assert neutral == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["per_class"]["mixed"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    # positive: TP 2, FP 1, FN 0 -> F1 0.8; the mean is over negative, neutral, positive only.
    assert metrics["macro_f1"] == pytest.approx((1.0 + 0.0 + 0.8) / 3)


@pytest.mark.parametrize("overrides, pattern", [
    ({"predictions": [0, 1, 2]}, r"predictions.*\(10, as labels\), got 3"),
    ({"labels": [0, 0, 0, 1, 1, 1, 2, 2, 2, 7]}, r"labels must lie in \[0, 2\].*got \[7\]"),
    ({"predictions": [-1] + PREDICTIONS[1:]}, r"predictions must lie.*got \[-1\]"),
    ({"probabilities": np.zeros((10, 2))}, r"probabilities must have shape \(10, 3\).*got shape \(10, 2\)"),
    ({"probabilities": np.full((10, 3), 1.5)}, r"probabilities must lie in \[0, 1\], got \[1.5"),
    ({"texts": ["a"] * 9}, r"texts.*got 9"),
    ({"lengths": [3] * 9 + [-1]}, r"lengths must be non-negative.*-1"),
    ({"label_names": ["a", "a", "b"]}, r"label_names.*\['a', 'a', 'b'\]"),
    ({"length_buckets": (20, 10)}, r"length_buckets.*\(20, 10\)"),
])
def test_classification_metrics_rejects_bad_input(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        three_class_metrics(**overrides)


def test_classification_report_markdown_tables():
    markdown = classification_report_markdown(three_class_metrics(), "SST-5 dev")
    lines = markdown.splitlines()
    assert lines[0] == "# SST-5 dev"
    assert "| accuracy | 0.800 (95% CI 0.490–0.943, Wilson) |" in lines
    assert "| macro-F1 | 0.785 |" in lines
    assert "| majority-class baseline (always positive) | 0.400 |" in lines
    assert "| negative | 1.000 | 0.667 | 0.800 | 3 |" in lines
    assert "| true \\ predicted | negative | neutral | positive |" in lines
    assert "| neutral | 0 | 2 | 1 |" in lines


def test_write_classification_report_writes_three_files(tmp_path):
    metrics = three_class_metrics(texts=[f"a | b {index}" for index in range(10)])
    paths = write_classification_report(metrics, str(tmp_path / "eval"), stem="sst", title="SST test")
    assert [os.path.basename(path) for path in paths] == ["sst.md", "sst.json", "sst.png"]
    assert sorted(os.listdir(tmp_path / "eval")) == ["sst.json", "sst.md", "sst.png"]  # no temporary files left
    markdown_path, json_path, png_path = paths
    with open(json_path, encoding="utf-8") as file:
        assert json.load(file) == metrics
    with open(markdown_path, encoding="utf-8") as file:
        assert file.read() == classification_report_markdown(metrics, "SST test")
    with open(png_path, "rb") as file:
        png = file.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
