"""Padded sequences: one text a row, right padded, bucketed by length.

The layout of sentence-mode language models and of classifiers. Padding is
always on the right (id 0; cuDNN's requirement) and masked by the backbone;
bucketing by length keeps it small.
"""

import bisect
import collections
import math

import numpy as np
import tensorflow as tf

from textlstm.data.streams import non_empty
from textlstm.tokenizers import PAD_ID

BUCKET_BOUNDARIES = (8, 16, 24, 32, 48, 64, 96, 128)


def bucketed_batches(sequences, batch_size, labels=None, weights=None, shuffle=False, seed=None):
    """Id sequences (and optional per-sequence labels, weights) -> right-padded batches bucketed by length.

    Args:
        sequences: list of int32 numpy arrays, one per text.
        batch_size: int, sequences per batch (each bucket ends with a
            partial batch).
        labels: optional list of ints, one per sequence.
        weights: optional list of floats, one per sequence (class weights).
        shuffle: bool, reshuffle every epoch.
        seed: int, makes the shuffling repeatable.

    Returns:
        A `tf.data.Dataset` of padded ids `(batch, time)`, or `(ids, labels)`,
        or `(ids, labels, weights)`, with its number of batches declared (a
        Keras progress-bar total).

    Example:
    >>> import numpy as np
    >>> batches = bucketed_batches([np.array([5, 6, 7]), np.array([8])], batch_size=2, labels=[1, 0])
    >>> [(ids.tolist(), y.tolist()) for ids, y in batches.as_numpy_iterator()]
    [([[5, 6, 7], [8, 0, 0]], [1, 0])]
    """
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be positive, received {batch_size!r}.")
    longest = max(len(ids) for ids in sequences)
    boundaries = [b for b in BUCKET_BOUNDARIES if b < longest]
    signature = [tf.TensorSpec([None], tf.int32)]
    columns = [sequences]
    for extra, dtype in ((labels, tf.int32), (weights, tf.float32)):
        if extra is not None:
            if len(extra) != len(sequences):
                raise ValueError(f"labels/weights: {len(extra)} values for {len(sequences)} sequences.")
            signature.append(tf.TensorSpec([], dtype))
            columns.append(extra)
    rows = list(zip(*columns))
    dataset = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=tuple(signature))
    if shuffle:
        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.bucket_by_sequence_length(
        lambda ids, *rest: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=tuple(tf.constant(PAD_ID if i == 0 else 0, spec.dtype) for i, spec in enumerate(signature)),
    )
    # Each bucket ends with one partial batch; declaring the count gives Keras
    # a progress-bar total (and no "ran out of data" warning).
    bucket_sizes = collections.Counter(bisect.bisect_right(boundaries, len(ids)) for ids in sequences)
    num_batches = sum(math.ceil(n / batch_size) for n in bucket_sizes.values())
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    if len(signature) == 1:
        dataset = dataset.map(lambda ids: ids)  # a 1-tuple -> the ids themselves
    return dataset


def sentence_dataset(preprocessor, lines, batch_size, max_length=200, shuffle=False, seed=None, source="lines"):
    """Language-model sentences: one line a row, `[start] ... </s>` from `preprocessor`, as `(x, y, sample_weight)`.

    Blank lines are skipped, so no sequence is empty; lines longer than
    `max_length` tokens are cut. `sample_weight` is 0 on padding. `source`
    (e.g. the file) names the data in errors.
    """
    sequences = [ids[: max_length + 1] for ids in preprocessor.encode_lines(non_empty(lines, source))]

    def split(ids):  # (batch, time + 1) -> x, y (batch, time), weight
        x, y = ids[:, :-1], ids[:, 1:]
        return x, y, tf.cast(tf.not_equal(y, PAD_ID), "float32")

    dataset = bucketed_batches(sequences, batch_size, shuffle=shuffle, seed=seed)
    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def labeled_dataset(preprocessor, texts, labels, batch_size, class_weights=None, shuffle=False, seed=None):
    """Classifier batches: `(ids, labels)` or, with `class_weights` (a list, one per class), `(ids, labels, weights)`."""
    sequences = preprocessor.encode_lines(list(texts))
    weights = None if class_weights is None else [float(class_weights[label]) for label in labels]
    dataset = bucketed_batches(sequences, batch_size, labels=list(labels), weights=weights, shuffle=shuffle, seed=seed)
    return dataset.prefetch(tf.data.AUTOTUNE)


def inverse_frequency_weights(labels, num_classes):
    """Class weights n / (num_classes * count), as sklearn's "balanced"; 1.0 for an absent class."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    return [len(labels) / (num_classes * c) if c else 1.0 for c in counts]
