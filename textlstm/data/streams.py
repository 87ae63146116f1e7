"""Token streams for truncated backpropagation through time (BPTT).

The language-model layout of Zaremba et al. (2014): the corpus as one token
stream, laid out as B parallel streams and cut into windows. Each element is
`(x, y, sample_weight)` with `x`, `y` int32 `(batch, sequence_length)` and
`y[:, t]` the token after `x[:, t]`; `sample_weight` is 0 on padding.
"""

import logging
import os

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from textlstm.data.readers import check_exists, decode_line
from textlstm.tokenizers import EOS_ID, PAD_ID

logger = logging.getLogger(__name__)


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


def check_stream_preprocessor(preprocessor):
    """Raises unless `preprocessor` frames texts as a stream has them: `</s>` first and last."""
    if preprocessor.start_token_id != EOS_ID or not preprocessor.add_end_token:
        raise ValueError(
            f"`preprocessor` must open texts with '</s>' and close them with '</s>' for a stream, received "
            f"start_token={preprocessor.start_token!r}, add_end_token={preprocessor.add_end_token!r}."
        )


def token_stream(preprocessor, lines, source="lines"):
    """Lines -> one int32 token stream in which every line follows `</s>`:

        </s> a b c </s> d e </s> f g h i </s> ...

    Each line is `preprocessor`'s ids without their start token, so the
    stream opens with one `</s>`: the first line, like every other, is
    predicted from `</s>`, the start token a stream-mode preprocessor puts
    before the texts it scores. Blank lines are skipped; `source` (e.g. the
    file) names the data in errors.
    """
    check_stream_preprocessor(preprocessor)
    encoded = preprocessor.encode_lines(non_empty(lines, source), add_start_token=False)
    return np.concatenate([[EOS_ID], *encoded]).astype("int32")


def stream_dataset(preprocessor, lines, batch_size, sequence_length, keep_last=False, source="lines"):
    """Lines -> `token_stream` -> BPTT windows of `(x, y, sample_weight)`; see `stream_windows`."""
    stream = token_stream(preprocessor, lines, source)
    logger.info("%s: stream of %d tokens in %d streams", source, len(stream), batch_size)
    try:
        return stream_windows(stream, batch_size, sequence_length, keep_last=keep_last)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def stream_boundaries(paths, batch_size, encoding="utf-8"):
    """One pass over `paths` (never held in memory): where each of `batch_size` streams starts and ends.

    The concatenated files are cut at line boundaries into `batch_size`
    parts of about equal bytes, so the streams hold about equal tokens.
    Every line is decoded here, so a bad byte is reported (file, line,
    column) before training starts.

    Returns:
        A list (one per stream) of `(path, start byte, end byte)` segments.
    """
    if len(set(paths)) != len(paths):
        raise ValueError(f"`paths` lists a file more than once: {paths}.")
    sizes = []
    for path in paths:
        check_exists(path)
        sizes.append(os.path.getsize(path))
    total = sum(sizes)
    targets = [total * (i + 1) // batch_size for i in range(batch_size - 1)]  # cut points, in bytes
    cuts, offset, non_empty_lines = [], 0, 0
    for path, size in zip(paths, sizes):
        position = 0
        with open(path, "rb") as file:
            for line_number, raw in enumerate(tqdm(file, desc=f"scanning {os.path.basename(path)}", unit=" lines",
                                                   disable=None if size > 50_000_000 else True), start=1):
                non_empty_lines += bool(decode_line(raw, encoding, path, line_number).strip())
                position += len(raw)
                while targets and offset + position >= targets[0]:
                    cuts.append((path, position))
                    targets.pop(0)
        offset += size
    if non_empty_lines < batch_size:
        raise ValueError(f"{', '.join(paths)}: {non_empty_lines} non-empty lines, too few for "
                         f"batch_size={batch_size}.")
    streams = []
    for (first_path, start), (last_path, end) in zip([(paths[0], 0)] + cuts, cuts + [(paths[-1], sizes[-1])]):
        first, last = paths.index(first_path), paths.index(last_path)
        segments = [(paths[i], start if i == first else 0, end if i == last else sizes[i]) for i in range(first, last + 1)]
        streams.append([segment for segment in segments if segment[2] > segment[1]])
    if not all(streams):  # a line longer than total / batch_size bytes holds several cut points
        raise ValueError(f"{', '.join(paths)}: {total} bytes cannot be cut at line ends into batch_size="
                         f"{batch_size} streams (a line is longer than a stream's share); lower batch_size.")
    return streams


def _segment_line_batches(segments, encoding, size=256):
    """The non-empty lines of one stream's byte segments, read lazily, `size` at a time (a generator for
    tf.data: one Python call per batch, not per line)."""
    batch = []
    for path, start, end in segments:
        with open(path, "rb") as file:
            file.seek(start)
            while file.tell() < end:
                line = file.readline().decode(encoding).strip()
                if line:
                    batch.append(line)
                if len(batch) == size:
                    yield batch
                    batch = []
    if batch:
        yield batch


def file_stream_dataset(preprocessor, paths, batch_size, sequence_length, encoding="utf-8", boundaries=None):
    """Training windows read from text files as training consumes them: corpora larger than memory.

    The same layout as `stream_dataset` (every line follows `</s>`;
    `batch_size` parallel streams for truncated BPTT; windows of
    `(x, y, sample_weight)`), but the corpus is never held in memory nor
    put in the graph as a constant: `stream_boundaries` cuts the files into
    `batch_size` byte ranges in one pass, and each stream is then read
    256 lines at a time, tokenized in the graph (`preprocessor`, as every
    other path) and cut into windows; a round robin takes one window of
    each stream for each batch:

        file ──► bytes [0, n/B) ──► lines ──► ids ──► </s> a b </s> c ... ──► windows of T+1 ─┐
             ──► bytes [n/B, 2n/B) ──► ...                                                  ├─► round robin: (B, T+1)
             ──► ...                                                                         ┘   x = [:, :-1], y = [:, 1:]

    Each stream opens with `</s>`; windows overlap by one token, so every
    token but a stream's first is a target once. The streams are of about
    equal bytes, not equal tokens: an epoch ends with the shortest stream,
    and the tail of the others is not trained on (1% of PTB's tokens,
    BENCHMARKS.md; more where tokens per byte vary along the file).

    Args:
        preprocessor: a stream-mode `LanguageModelPreprocessor` (`</s>` first and last).
        paths: str or list of str, the text files, read in order.
        batch_size: int, parallel streams.
        sequence_length: int, BPTT window.
        encoding: str, of the files.
        boundaries: `stream_boundaries(paths, batch_size, encoding)` if
            already computed (e.g. to check the files before a run starts).

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)`, each `(batch_size, sequence_length)`.
    """
    check_stream_preprocessor(preprocessor)
    paths = [paths] if isinstance(paths, str) else list(paths)

    boundaries = boundaries or stream_boundaries(paths, batch_size, encoding)
    if len(boundaries) != batch_size:
        raise ValueError(f"`boundaries` has {len(boundaries)} streams, but batch_size={batch_size}.")

    def cut(leftover, chunk):  # the tokens not yet in a window + a chunk -> (rest, windows (count, T + 1))
        tokens = tf.concat([leftover, chunk], axis=0)
        count = (tf.size(tokens) - 1) // sequence_length
        windows = tf.signal.frame(tokens[: count * sequence_length + 1], sequence_length + 1, sequence_length)
        return tokens[count * sequence_length :], windows  # the last token opens the next window too

    def stream(index):  # one stream's windows, tagged with its index; traced once for all streams
        lines = tf.data.Dataset.from_generator(
            lambda i: _segment_line_batches(boundaries[int(i)], encoding), args=(index,),
            output_signature=tf.TensorSpec((None,), tf.string))
        chunks = lines.map(lambda texts: preprocessor.tokenize(texts)[:, 1:].flat_values)  # (tokens,), no </s> start
        windows = chunks.scan(tf.constant([EOS_ID], "int32"), cut).unbatch()  # (T + 1,) each
        return windows.map(lambda window: (index, window))

    # Round robin over the streams, one window each: a batch's row i is stream i's next window, until
    # the shortest stream ends (then the order breaks, and the epoch ends).
    windows = tf.data.Dataset.range(batch_size).interleave(
        stream, cycle_length=batch_size, block_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = windows.batch(batch_size, drop_remainder=True).take_while(
        lambda index, _: tf.reduce_all(tf.equal(index, tf.range(batch_size, dtype=index.dtype))))
    return batches.map(lambda _, w: (w[:, :-1], w[:, 1:], tf.ones(tf.shape(w[:, 1:]), "float32"))).prefetch(2)
