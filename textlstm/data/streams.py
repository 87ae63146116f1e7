"""Token streams for truncated backpropagation through time (BPTT).

The language-model layout of Zaremba et al. (2014): the corpus as one token
stream, laid out as B parallel streams and cut into windows. Each element is
`(x, y, sample_weight)` with `x`, `y` int32 `(batch, sequence_length)` and
`y[:, t]` the token after `x[:, t]`; `sample_weight` is 0 on padding.
"""

import logging

import numpy as np
import tensorflow as tf

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


def token_stream(preprocessor, lines, source="lines"):
    """Lines -> one int32 token stream in which every line follows `</s>`:

        </s> a b c </s> d e </s> f g h i </s> ...

    Each line is `preprocessor`'s ids without their start token, so the
    stream opens with one `</s>`: the first line, like every other, is
    predicted from `</s>`, the start token a stream-mode preprocessor puts
    before the texts it scores. Blank lines are skipped; `source` (e.g. the
    file) names the data in errors.
    """
    if preprocessor.start_token_id != EOS_ID or not preprocessor.add_end_token:
        raise ValueError(
            f"`preprocessor` must open texts with '</s>' and close them with '</s>' for a stream, received "
            f"start_token={preprocessor.start_token!r}, add_end_token={preprocessor.add_end_token!r}."
        )
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
