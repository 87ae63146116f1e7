"""tf.data pipelines for language modeling: BPTT streams and padded sentences.

Two layouts, one contract: each element is `(x, y, sample_weight)` with
`x`, `y` int32 `(batch, time)` and `y[:, t]` the token after `x[:, t]`;
`sample_weight` is 0 on padding, so padded positions never count.
"""

import bisect
import collections
import logging
import math

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from textlstm.tokenizers import BOS_ID, EOS_ID, PAD_ID

logger = logging.getLogger(__name__)


def encode_lines(tokenizer, lines, add_bos=False, add_eos=True, batch_size=4096):
    """Tokenizes `lines` in batches; returns a list of int32 numpy arrays.

    `<s>`/`</s>` are added per line as asked. Lines are tokenized by the
    tokenizer's own TF ops (the ops an exported model runs), `batch_size`
    lines at a time; eagerly, as tracing them would cost more than it saves.
    """
    encoded = []
    starts = range(0, len(lines), batch_size)
    for start in tqdm(starts, desc="tokenizing", unit="batch", disable=None if len(starts) > 4 else True):
        ragged = tokenizer.tokenize(tf.constant(lines[start : start + batch_size]))
        for ids in ragged.numpy():
            ids = list(ids)
            encoded.append(
                np.asarray(([BOS_ID] if add_bos else []) + ids + ([EOS_ID] if add_eos else []), "int32")
            )
    return encoded


def batchify(token_ids, batch_size):
    """Lays a token stream out as `batch_size` parallel streams.

    The stream is trimmed to a multiple of `batch_size` (fewer than
    `batch_size` tokens are lost) and cut into equal contiguous columns, as
    in Zaremba et al. (2014) and pytorch/examples word_language_model:

        stream: a b c d e f g h i j k l m n o p q r s t u v w x   (batch_size=4)

        ┌ a b c d e f ┐   row 0 continues in row 0 of the next window,
        │ g h i j k l │   so the LSTM state at the end of one window is
        │ m n o p q r │   the right initial state for the next one
        └ s t u v w x ┘   (truncated backpropagation through time).

    Returns:
        int32 array `(batch_size, len(stream) // batch_size)`.

    Example:
    >>> batchify(list(range(10)), 3).tolist()
    [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    """
    token_ids = np.asarray(token_ids, dtype="int32")
    columns = len(token_ids) // batch_size
    if columns < 2:
        raise ValueError(
            f"`token_ids` has {len(token_ids)} tokens, too few for batch_size={batch_size}."
        )
    return token_ids[: columns * batch_size].reshape(batch_size, columns)


def stream_windows(token_ids, batch_size, sequence_length, keep_last=False):
    """Cuts the batchified stream into BPTT windows.

    With `sequence_length=2` the array above gives, window by window,

        x: [a b] [c d] [e]     y: [b c] [d e] [f]
           [g h] [i j] [k]        [h i] [j k] [l]    ...

    The last, shorter window is dropped for training (static shapes) or,
    with `keep_last=True` (evaluation, so every token is scored), right
    padded with `<pad>` and given sample weight 0 there.

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)`, each
        `(batch_size, sequence_length)`, in stream order (never shuffle it:
        the state carried from window to window depends on that order).
    """
    data = batchify(token_ids, batch_size)  # (batch, columns)
    inputs, targets = data[:, :-1], data[:, 1:]  # (batch, columns - 1) each
    total = inputs.shape[1]
    full, rest = divmod(total, sequence_length)
    if keep_last and rest:
        pad = sequence_length - rest
        inputs = np.pad(inputs, ((0, 0), (0, pad)), constant_values=PAD_ID)
        targets = np.pad(targets, ((0, 0), (0, pad)), constant_values=PAD_ID)
        full += 1
    weights = np.zeros_like(inputs, dtype="float32")
    weights[:, :total] = 1.0
    num = full * sequence_length

    def windows(array):  # (batch, num) -> (windows, batch, sequence_length)
        return array[:, :num].reshape(batch_size, full, sequence_length).transpose(1, 0, 2)

    if full == 0:
        raise ValueError(
            f"stream of {total} steps per row is shorter than sequence_length={sequence_length}."
        )
    return tf.data.Dataset.from_tensor_slices(
        (windows(inputs), windows(targets), windows(weights))
    )


def non_empty(lines, source):
    """The lines with text in them; a ValueError naming `source` if none has."""
    kept = [line for line in lines if line.strip()]
    if not kept:
        raise ValueError(f"{source}: no non-empty lines to model (received {len(lines)} lines).")
    return kept


def lm_stream_dataset(tokenizer, lines, batch_size, sequence_length, keep_last=False, source="lines"):
    """Lines -> one token stream (each line ending in `</s>`) -> BPTT windows.

    Blank lines are skipped; `source` (e.g. the file) names the data in errors.
    """
    stream = np.concatenate(encode_lines(tokenizer, non_empty(lines, source), add_bos=False, add_eos=True))
    logger.info("%s: stream of %d tokens in %d streams", source, len(stream), batch_size)
    try:
        return stream_windows(stream, batch_size, sequence_length, keep_last=keep_last)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def lm_sentence_dataset(tokenizer, lines, batch_size, max_length=200, shuffle=False, seed=None, source="lines"):
    """One line a sequence, `<s> ... </s>`, right padded and bucketed by length.

    Blank lines are skipped, so no sequence is empty; lines longer than
    `max_length` tokens are cut. Bucketing keeps padding small; padding is
    always on the right (cuDNN's requirement), with sample weight 0.
    `source` (e.g. the file) names the data in errors.
    """
    lines = non_empty(lines, source)
    sequences = [ids[:max_length + 1] for ids in encode_lines(tokenizer, lines, add_bos=True)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(sequences), output_signature=tf.TensorSpec([None], tf.int32)
    )
    if shuffle:
        dataset = dataset.shuffle(len(sequences), seed=seed, reshuffle_each_iteration=True)
    boundaries = [b for b in (8, 16, 24, 32, 48, 64, 96, 128) if b < max_length]
    dataset = dataset.bucket_by_sequence_length(
        lambda ids: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=PAD_ID,
    )
    # Each bucket ends with one partial batch; declaring the count gives Keras
    # a progress-bar total (and no "ran out of data" warning).
    bucket_sizes = collections.Counter(bisect.bisect_right(boundaries, len(ids)) for ids in sequences)
    num_batches = sum(math.ceil(n / batch_size) for n in bucket_sizes.values())
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))

    def split(ids):  # (batch, time + 1) -> x, y (batch, time), weight
        x, y = ids[:, :-1], ids[:, 1:]
        return x, y, tf.cast(tf.not_equal(y, PAD_ID), "float32")

    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
