"""Preprocessors: the one place text becomes model ids, for every task.

A preprocessor is a Keras layer holding a tokenizer and the conventions a
model was trained with (start token, end token, truncation, right padding),
as keras-hub splits Tokenizer / Preprocessor / Task. Training data, scoring,
generation and export all get their ids from it, so a model sees at scoring
exactly what it saw in training.

The start token depends on how a language model was trained:

    stream mode (truncated BPTT)     ... w w </s> | w w w </s> | w w </s> ...
                                     every line follows `</s>`: start = "</s>"
                                     (pytorch/examples word_language_model
                                     scores a sentence after the previous `</s>`)
    sentence mode                    <s> w w w </s>      start = "<s>"

Example:
>>> from textlstm.tokenizers import WordTokenizer
>>> tokenizer = WordTokenizer.from_texts(["the cat sat"])
>>> preprocessor = LanguageModelPreprocessor(tokenizer, start_token="</s>")
>>> preprocessor(["the cat", "sat"]).numpy().tolist()
[[3, 6, 4, 3], [3, 5, 3, 0]]
"""

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from textlstm.tokenizers import BOS, BOS_ID, EOS, EOS_ID, PAD_ID

START_TOKENS = {BOS: BOS_ID, EOS: EOS_ID}


class Preprocessor(keras.layers.Layer):
    """Strings -> `[start] tokens [</s>]` ids, right padded with 0.

    Args:
        tokenizer: a textlstm tokenizer layer (`WordTokenizer`,
            `SentencePieceTokenizer`).
        start_token: "<s>" or "</s>", the token every sequence opens with.
        add_end_token: bool, close every sequence with `</s>`.
        sequence_length: int or None; keep at most this many tokens of the
            text (start and end tokens come on top). None keeps all.
    """

    def __init__(self, tokenizer=None, start_token=BOS, add_end_token=True, sequence_length=None, **kwargs):
        super().__init__(**kwargs)
        if start_token not in START_TOKENS:
            raise ValueError(f"`start_token` must be one of {sorted(START_TOKENS)}, received {start_token!r}.")
        if sequence_length is not None and (not isinstance(sequence_length, int) or sequence_length <= 0):
            raise ValueError(f"`sequence_length` must be a positive int or None, received {sequence_length!r}.")
        self.tokenizer = tokenizer
        self.start_token = start_token
        self.add_end_token = add_end_token
        self.sequence_length = sequence_length
        self.built = True

    @property
    def start_token_id(self):
        return START_TOKENS[self.start_token]

    def tokenize(self, texts, add_end_token=None):
        """Strings `(batch,)` -> ragged int32 ids `(batch, None)` with start (and end) tokens."""
        return self.frame(self.tokenizer.tokenize(texts), add_end_token)

    def frame(self, ids, add_end_token=None):
        """A text's token ids, ragged `(batch, None)`, as the model reads them: cut to
        `sequence_length`, the start token first, `</s>` last if `add_end_token`."""
        add_end_token = self.add_end_token if add_end_token is None else add_end_token
        ids = tf.cast(ids, "int32")
        if self.sequence_length is not None:
            ids = ids[:, : self.sequence_length]
        parts = [tf.fill([ids.nrows(), 1], self.start_token_id), ids]
        if add_end_token:
            parts.append(tf.fill([ids.nrows(), 1], EOS_ID))
        return tf.concat(parts, axis=1)

    def tokenize_with_offsets(self, texts, add_end_token=None):
        """As `tokenize`, plus each token's start and end byte offset in its text, all ragged `(batch, None)`.

        The start token sits at (0, 0) and the end token at (n, n), n the text's length in bytes.
        """
        add_end_token = self.add_end_token if add_end_token is None else add_end_token
        texts = tf.convert_to_tensor(texts, tf.string)
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(texts)  # ragged (batch, None) each
        ids, starts, ends = tf.cast(ids, "int32"), tf.cast(starts, "int64"), tf.cast(ends, "int64")
        if self.sequence_length is not None:
            ids, starts, ends = (t[:, : self.sequence_length] for t in (ids, starts, ends))
        rows = ids.nrows()
        text_ends = tf.expand_dims(tf.strings.length(texts, unit="BYTE"), 1)  # (batch, 1)
        ids_parts = [tf.fill([rows, 1], self.start_token_id), ids]
        starts_parts = [tf.zeros([rows, 1], "int64"), starts]
        ends_parts = [tf.zeros([rows, 1], "int64"), ends]
        if add_end_token:
            ids_parts.append(tf.fill([rows, 1], EOS_ID))
            starts_parts.append(tf.cast(text_ends, "int64"))
            ends_parts.append(tf.cast(text_ends, "int64"))
        return tuple(tf.concat(parts, axis=1) for parts in (ids_parts, starts_parts, ends_parts))

    def __call__(self, texts, **kwargs):
        if isinstance(texts, (list, tuple)):  # Keras layers take tensors: a Python list of str becomes one
            texts = tf.constant(texts, tf.string)
        return super().__call__(texts, **kwargs)

    def call(self, texts):
        """Strings `(batch,)` -> ids `(batch, time)`, right padded with 0."""
        return self.tokenize(texts).to_tensor(PAD_ID)

    def encode_lines(self, lines, batch_size=4096, add_start_token=True):
        """Tokenizes a Python list of lines in batches; returns a list of int32 numpy arrays.

        Eager, with the tokenizer's own TF ops (the ops an exported model
        runs); tracing them would cost more than it saves. `tqdm` shows
        progress on long inputs.
        """
        encoded = []
        starts = range(0, len(lines), batch_size)
        for start in tqdm(starts, desc="tokenizing", unit="batch", disable=None if len(starts) > 4 else True):
            ragged = self.tokenize(tf.constant(lines[start : start + batch_size]))
            for ids in ragged.numpy():
                encoded.append(np.asarray(ids if add_start_token else ids[1:], "int32"))
        return encoded

    def get_config(self):
        config = super().get_config()
        config.update({
            "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
            "start_token": self.start_token,
            "add_end_token": self.add_end_token,
            "sequence_length": self.sequence_length,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("tokenizer") is not None:
            config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="textlstm")
class LanguageModelPreprocessor(Preprocessor):
    """Ids for a language model: `[start] tokens </s>`; see the module docstring for the start token.

    `start_token` follows the training layout: "</s>" for stream mode, "<s>"
    for sentence mode (`for_mode`).
    """

    @classmethod
    def for_mode(cls, tokenizer, mode):
        """The preprocessor matching a training layout, "stream" or "sentence"."""
        if mode not in ("stream", "sentence"):
            raise ValueError(f"`mode` must be 'stream' or 'sentence', received {mode!r}.")
        return cls(tokenizer, start_token=EOS if mode == "stream" else BOS)

    def prompt(self, texts):
        """Prompts for generation: ragged `[start] tokens` `(batch, None)`, no end token."""
        return self.tokenize(texts, add_end_token=False)


@keras.saving.register_keras_serializable(package="textlstm")
class ClassifierPreprocessor(Preprocessor):
    """Ids for a sequence classifier: `[start] tokens </s>`, at most `sequence_length` tokens of text.

    A classifier initialised from a language model (ULMFiT) takes that
    model's `start_token`, so its transferred layers see sequences open as
    they did in language-model training.
    """

    def __init__(self, tokenizer=None, start_token=BOS, add_end_token=True, sequence_length=128, **kwargs):
        super().__init__(tokenizer, start_token=start_token, add_end_token=add_end_token,
                         sequence_length=sequence_length, **kwargs)
