"""Padded, bucketed sequences: the layout of sentence-mode LMs and classifiers."""

import numpy as np
import pytest

from textlstm.data.sequences import bucketed_batches, inverse_frequency_weights, labeled_dataset
from textlstm.preprocessors import ClassifierPreprocessor
from textlstm.tokenizers import PAD_ID, WordTokenizer


def test_buckets_group_similar_lengths_and_pad_right():
    lengths = [3, 40, 4, 41, 5, 42]
    sequences = [np.arange(1, n + 1, dtype="int32") for n in lengths]
    batches = list(bucketed_batches(sequences, batch_size=3, labels=list(range(6))).as_numpy_iterator())
    assert sorted(ids.shape[1] for ids, _ in batches) == [5, 42]  # short ones together, long ones together
    for ids, labels in batches:
        for row, label in zip(ids, labels):
            n = lengths[label]
            assert row[:n].tolist() == list(range(1, n + 1)) and (row[n:] == PAD_ID).all()


def test_class_weights_follow_inverse_frequency():
    labels = [0, 0, 0, 1]
    weights = inverse_frequency_weights(labels, num_classes=3)
    assert weights == pytest.approx([4 / 9, 4 / 3, 1.0])  # n / (classes * count); class 2 is absent
    tokenizer = WordTokenizer.from_texts(["good", "bad"])
    dataset = labeled_dataset(ClassifierPreprocessor(tokenizer), ["good", "good", "good", "bad"], labels,
                              batch_size=4, class_weights=weights)
    (ids, batch_labels, batch_weights), = dataset.as_numpy_iterator()
    by_label = dict(zip(batch_labels.tolist(), batch_weights.tolist()))
    assert sorted(batch_labels.tolist()) == [0, 0, 0, 1]
    assert by_label == pytest.approx({0: 4 / 9, 1: 4 / 3})
    assert int(dataset.cardinality()) == 1
