"""Tokenizers as Keras layers: SentencePiece (unigram, BPE) and word level.

Both subclass `keras_hub.tokenizers.Tokenizer`, so they run eagerly, inside
`tf.data` and inside an exported graph, are saved with the model that holds
them (their vocabulary goes to the `.keras` file's assets), and share one id
convention that every model in textlstm relies on
(`textlstm.special_tokens`: 0 `<pad>`, 1 `<unk>`, 2 `<s>`, 3 `</s>`).

Example:
>>> from textlstm.tokenizers import WordTokenizer
>>> tokenizer = WordTokenizer.from_texts(["the cat sat", "the dog sat"])
>>> tokenizer.tokenize(["the cat ran"]).to_list()
[[5, 6, 1]]
>>> tokenizer.detokenize([[5, 6, 1]]).numpy().tolist()
[b'the cat <unk>']
"""

import collections
import io
import json
import logging
import os
import re

import keras
import keras_hub
import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text

from textlstm.runs import write_json
from textlstm.special_tokens import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, SPECIAL_TOKENS, UNK, UNK_ID

logger = logging.getLogger(__name__)

VOCABULARY_FILENAME = "vocabulary.txt"
_ASCII_SPACES = (b" ", b"\t", b"\n", b"\v", b"\f", b"\r")  # what tf.strings.split splits on (no tensor at import: tf.distribute configures the runtime first)
_ASCII_SPACE_RUNS = re.compile("[ \t\n\v\f\r]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def words_of(text, lowercase=False):
    """The words `WordTokenizer.tokenize` sees in `text`, in Python: split on ASCII whitespace only and
    lowercased in ASCII only, as `tf.strings.split` and `tf.strings.lower` do (Python's `str.split` and
    `str.lower` are Unicode-wide: a vocabulary counted with them would miss words the graph looks up).

    >>> words_of("Caf\u00c9 au\u3000LAIT", lowercase=True) == ["caf\u00c9", "au\u3000lait"]
    True
    """
    if lowercase:
        text = text.translate(_ASCII_LOWER)
    return [word for word in _ASCII_SPACE_RUNS.split(text) if word]


@keras.saving.register_keras_serializable(package="textlstm")
class SentencePieceTokenizer(keras_hub.tokenizers.SentencePieceTokenizer):
    """A SentencePiece tokenizer with textlstm's fixed special ids.

    Args:
        proto: bytes of a serialized SentencePiece model, or a path to one.
            Its pad/unk/bos/eos ids must be 0/1/2/3 (what
            `train_sentencepiece` produces).

    Tokenization runs TF Text's SentencePiece op (see `_run`), eager or in a
    graph alike: `tokenize` always returns a `tf.RaggedTensor` and
    `detokenize` a string `tf.Tensor`, as `WordTokenizer` does; keras-hub's
    layer keeps the proto, the vocabulary and the saving.

    Example:
    >>> tokenizer = train_sentencepiece(["a b c", "a b"] * 50, vocabulary_size=12)
    >>> tokenizer.detokenize(tokenizer.tokenize(["a b"])).numpy().tolist()
    [b'a b']
    """

    def __init__(self, proto=None, **kwargs):
        kwargs.setdefault("_allow_python_workflow", False)
        super().__init__(proto=proto, **kwargs)

    def _run(self, method, inputs):
        """Runs TF Text's op `method` ("tokenize", ...) over this model, always inside a graph.

        The op's model resource is owned by its kernel, not ref-counted (TF
        Text b/318839908): an eager op's handle dangles once Keras tracks a
        new model around the tokenizer, or another eager op of the kind is
        freed. So the op is only ever made inside the graph that runs it: the
        caller's (`tf.function`, `tf.data`, an export; the proto is then a
        constant of that graph) or, for eager calls, a `tf.function` of this
        layer's own, kept out of Keras's and TF's tracking.
        """
        self._check_vocabulary()

        def run(tensor):
            return getattr(tf_text.SentencepieceTokenizer(model=self.proto, out_type=tf.int32), method)(tensor)

        if not tf.executing_eagerly():
            return run(inputs)
        functions = self._eager_functions.functions
        rank = inputs.shape.rank  # TF Text needs a static rank: one function (and trace) per rank
        if isinstance(inputs, tf.RaggedTensor):
            spec = tf.RaggedTensorSpec([None] * rank, inputs.dtype, ragged_rank=inputs.ragged_rank)
        else:
            spec = tf.TensorSpec([None] * rank, inputs.dtype)
        if (method, spec) not in functions:
            functions[method, spec] = tf.function(run, input_signature=[spec], autograph=False)
        return functions[method, spec](inputs)

    def tokenize(self, inputs):
        """Strings `(batch,)` -> ragged int32 ids `(batch, None)`."""
        return self._run("tokenize", tf.convert_to_tensor(inputs, tf.string))

    def tokenize_with_offsets(self, inputs):
        """Strings `(batch,)` -> ragged ids, start and end byte offsets of each piece, each `(batch, None)`.

        The same pieces as `tokenize`; offsets index the input before
        normalization, so a piece's text is `input[start:end]` (a piece with
        SentencePiece's "▁" starts on the space before its word).
        """
        return self._run("tokenize_with_offsets", tf.convert_to_tensor(inputs, tf.string))

    def detokenize(self, inputs):
        """Ids `(batch, None)` (ragged, or padded with 0) -> strings `(batch,)`."""
        ids = inputs if isinstance(inputs, tf.RaggedTensor) else tf.convert_to_tensor(inputs)
        if isinstance(ids, tf.Tensor) and ids.shape.rank == 2:
            ids = tf.RaggedTensor.from_tensor(ids, padding=PAD_ID)
        return self._run("detokenize", tf.cast(ids, tf.int32))

    def id_to_token(self, id):
        """The piece of `id` (from the vocabulary list, no TF op)."""
        self._check_vocabulary()
        if not 0 <= id < self.vocabulary_size():
            raise ValueError(f"`id` must be in [0, {self.vocabulary_size() - 1}], received {id!r}.")
        return self._pieces[id]

    def token_to_id(self, token):
        """The id of piece `token`; `<unk>`'s id for a piece not in the vocabulary."""
        self._check_vocabulary()
        return self._piece_ids.get(token, UNK_ID)

    def set_proto(self, proto):
        super().set_proto(proto)
        self._eager_functions = _EagerFunctions()
        self._pieces = None if self.proto is None else self.get_vocabulary()
        self._piece_ids = None if self.proto is None else {piece: i for i, piece in enumerate(self._pieces)}
        if self.proto is not None:
            self._check_special_ids()

    def _check_special_ids(self):
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            found = self._pieces[expected_id]
            if found != token:
                raise ValueError(
                    f"`proto`: SentencePiece model has {found!r} at id {expected_id}, "
                    f"textlstm needs {token!r}. Train it with textlstm.tokenizers.train_sentencepiece."
                )

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID


class _EagerFunctions:
    """A SentencePieceTokenizer's eager `tf.function`s: a plain object, so no tracking saves or copies them."""

    def __init__(self):
        self.functions = {}


def train_sentencepiece(
    texts=None,
    files=None,
    vocabulary_size=8000,
    model_type="unigram",
    character_coverage=1.0,
    max_sentences=0,
    lowercase=False,
):
    """Trains a SentencePiece model and returns it as a tokenizer layer.

    Args:
        texts: an iterable of strings to train on.
        files: UTF-8 text files to train on, instead of `texts`.
        vocabulary_size: int, the most pieces, special tokens included
            (fewer when the text has fewer; `hard_vocab_limit=False`).
        model_type: "unigram" (Kudo 2018) or "bpe" (Sennrich et al. 2016).
        character_coverage: float, share of characters covered; 1.0 suits
            small alphabets such as English.
        max_sentences: int, sample at most this many sentences; 0 = all.
        lowercase: bool, case-fold text (SentencePiece's "nmt_nfkc_cf"
            normalization, applied in training and tokenization alike).

    Returns:
        A `SentencePieceTokenizer` with pad/unk/bos/eos at ids 0/1/2/3.
    """
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"`model_type` must be 'unigram' or 'bpe', received {model_type!r}.")
    if vocabulary_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"`vocabulary_size` must exceed 4, received {vocabulary_size!r}.")
    if (texts is None) == (not files):
        raise ValueError(
            f"train_sentencepiece needs exactly one of `texts` or `files`, received "
            f"texts={'None' if texts is None else type(texts).__name__}, files={files!r}."
        )
    for path in files or []:
        if not os.path.exists(path):
            raise FileNotFoundError(f"tokenizer training file not found: {path}")
    model = io.BytesIO()
    options = dict(
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type=model_type,
        character_coverage=character_coverage,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        pad_piece=PAD, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
        unk_surface=UNK,  # unknown pieces detokenize to "<unk>", as in the word tokenizer (not " ⁇ ")
        input_sentence_size=max_sentences,
        normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
        shuffle_input_sentence=True,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    if files:
        options["input"] = ",".join(files)
    else:
        options["sentence_iterator"] = iter(t for t in texts if t.strip())
    logger.info("training a %s SentencePiece model of %d pieces", model_type, vocabulary_size)
    spm.SentencePieceTrainer.train(**options)
    return SentencePieceTokenizer(proto=model.getvalue())


def _control_ids_to_unk(ids):
    control = tf.logical_or(tf.equal(ids, PAD_ID), tf.logical_or(tf.equal(ids, BOS_ID), tf.equal(ids, EOS_ID)))
    return tf.where(control, tf.constant(UNK_ID, ids.dtype), ids)


@keras.saving.register_keras_serializable(package="textlstm")
class WordTokenizer(keras_hub.tokenizers.Tokenizer):
    """Whitespace word tokenizer over a fixed vocabulary, for corpora like PTB.

    Runs in-graph: `tf.strings.split` then a Keras `StringLookup`; unknown
    words map to `<unk>` (id 1), so a corpus's own `<unk>` stays `<unk>`,
    and so do literal `<pad>`, `<s>` and `</s>` words: the control ids come
    only from the preprocessor.

    Args:
        vocabulary: list of tokens, or a path to a file with one token a
            line; the first four must be `<pad>`, `<unk>`, `<s>`, `</s>`.
        lowercase: bool, lowercase text before lookup.

    Example:
    >>> tokenizer = WordTokenizer(["<pad>", "<unk>", "<s>", "</s>", "hello"])
    >>> tokenizer.tokenize(["hello world"]).to_list()
    [[4, 1]]
    """

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, vocabulary=None, lowercase=False, **kwargs):
        super().__init__(**kwargs)
        self.file_assets = [VOCABULARY_FILENAME]
        self.lowercase = lowercase
        self.set_vocabulary(vocabulary)

    @classmethod
    def from_texts(cls, texts, vocabulary_size=0, min_count=1, lowercase=False):
        """Builds the vocabulary from token counts over `texts`.

        Args:
            texts: iterable of whitespace-tokenized strings.
            vocabulary_size: int, maximum size including the four special
                tokens; 0 keeps every word seen at least `min_count` times.
            min_count: int, words seen fewer times map to `<unk>`.

        Words are ordered by decreasing count (ties alphabetically), which
        the log-uniform sampler of sampled softmax assumes.
        """
        if vocabulary_size and vocabulary_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"`vocabulary_size` must exceed 4 or be 0, received {vocabulary_size!r}.")
        if min_count < 1:
            raise ValueError(f"`min_count` must be at least 1, received {min_count!r}.")
        counts = collections.Counter()
        for text in texts:
            counts.update(words_of(text, lowercase))
        for token in SPECIAL_TOKENS:
            counts.pop(token, None)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if vocabulary_size:
            words = words[: vocabulary_size - len(SPECIAL_TOKENS)]
        return cls(list(SPECIAL_TOKENS) + words, lowercase=lowercase)

    def set_vocabulary(self, vocabulary):
        if vocabulary is None:
            self.vocabulary = None
            self._lookup = None
            return
        if isinstance(vocabulary, str):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n") for line in f]
        vocabulary = list(vocabulary)
        if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"`vocabulary` must start with {SPECIAL_TOKENS}, received {tuple(vocabulary[:4])}."
            )
        if len(set(vocabulary)) != len(vocabulary):
            repeated = [t for t, c in collections.Counter(vocabulary).items() if c > 1][:5]
            raise ValueError(f"`vocabulary` has repeated tokens: {repeated}.")
        self.vocabulary = vocabulary
        self._token_to_id = {t: i for i, t in enumerate(vocabulary)}
        self._lookup = keras.layers.StringLookup(
            vocabulary=vocabulary[2:], mask_token=PAD, oov_token=UNK, num_oov_indices=1,
        )
        self._vocabulary_tensor = tf.constant(vocabulary)

    def _check_vocabulary(self):
        if self.vocabulary is None:
            raise ValueError("WordTokenizer has no vocabulary (vocabulary=None); pass `vocabulary` or use from_texts().")

    def get_vocabulary(self):
        self._check_vocabulary()
        return list(self.vocabulary)

    def vocabulary_size(self):
        self._check_vocabulary()
        return len(self.vocabulary)

    def id_to_token(self, id):
        self._check_vocabulary()
        if not 0 <= id < len(self.vocabulary):
            raise ValueError(f"`id` must be in [0, {len(self.vocabulary) - 1}], received {id!r}.")
        return self.vocabulary[id]

    def token_to_id(self, token):
        self._check_vocabulary()
        return self._token_to_id.get(token, UNK_ID)

    def tokenize(self, inputs):
        """Strings `(batch,)` -> ragged int32 ids `(batch, None)`; a scalar gives `(None,)`."""
        self._check_vocabulary()
        inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
        if self.lowercase:
            inputs = tf.strings.lower(inputs)
        words = tf.strings.split(inputs)  # (batch, None) ragged, or (None,) for a scalar
        ids = tf.cast(self._lookup(words), "int32")
        # A literal "<pad>", "<s>" or "</s>" in a text is an unknown word, never a control id: as <pad> it
        # would be masked away, as <s> or </s> it would fake a text boundary.
        return tf.ragged.map_flat_values(_control_ids_to_unk, ids) if isinstance(ids, tf.RaggedTensor) \
            else _control_ids_to_unk(ids)

    def tokenize_with_offsets(self, inputs):
        """Strings `(batch,)` -> ragged ids, start and end byte offsets of each word, each `(batch, None)`.

        Core TF ops only (an export of a word model needs no TF Text op):
        a word starts at a non-space byte after a space (or at 0) and ends
        before a space (or at the end), the ASCII whitespace that
        `tf.strings.split` splits on in `tokenize`. Lowercasing is
        ASCII-only, so it moves no offset.

            bytes     "  the cat"      is_space 1 1 0 0 0 1 0 0 0
            starts    2, 6             ends     5, 9
        """
        self._check_vocabulary()
        inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
        ids = self.tokenize(inputs)  # ragged (batch, None)
        characters = tf.strings.bytes_split(inputs)  # ragged (batch, bytes)
        is_space = tf.ragged.map_flat_values(
            lambda c: tf.reduce_any(tf.equal(tf.expand_dims(c, -1), tf.constant(_ASCII_SPACES)), axis=-1), characters)
        padded = tf.pad(tf.cast(is_space.to_tensor(True), "int8"), [[0, 0], [1, 1]], constant_values=1)
        padded = tf.cast(padded, tf.bool)  # (batch, bytes + 2): a space before and after each text
        word = tf.logical_not(padded)
        begins = tf.logical_and(word[:, 1:-1], padded[:, :-2])  # (batch, bytes): a word starts here
        finishes = tf.logical_and(word[:, 1:-1], padded[:, 2:])  # a word's last byte
        positions = tf.range(tf.shape(begins, out_type=tf.int64)[1])
        starts = tf.ragged.boolean_mask(tf.broadcast_to(positions, tf.shape(begins, out_type=tf.int64)), begins)
        ends = tf.ragged.boolean_mask(tf.broadcast_to(positions + 1, tf.shape(begins, out_type=tf.int64)), finishes)
        return ids, starts, ends

    def detokenize(self, inputs):
        """Ids `(batch, None)` (ragged or padded with 0) -> strings `(batch,)`."""
        self._check_vocabulary()
        ids = inputs if isinstance(inputs, tf.RaggedTensor) else tf.convert_to_tensor(inputs)
        if isinstance(ids, tf.Tensor) and ids.shape.rank == 2:
            ids = tf.RaggedTensor.from_tensor(ids, padding=PAD_ID)
        tokens = tf.gather(self._vocabulary_tensor, tf.cast(ids, "int32"))
        return tf.strings.reduce_join(tokens, axis=-1, separator=" ")

    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, VOCABULARY_FILENAME), "w", encoding="utf-8") as f:
            f.write("\n".join(self.vocabulary) + "\n")

    def load_assets(self, dir_path):
        self.set_vocabulary(os.path.join(dir_path, VOCABULARY_FILENAME))

    def get_config(self):
        config = super().get_config()
        # The vocabulary is saved as an asset file, not in the JSON config.
        config.update({"vocabulary": None, "lowercase": self.lowercase})
        return config


def train_tokenizer(kind, texts, vocabulary_size, min_count=1, lowercase=False):
    """Trains the tokenizer a run config names: "word", "unigram" or "bpe"."""
    if kind == "word":
        return WordTokenizer.from_texts(texts, vocabulary_size=vocabulary_size, min_count=min_count,
                                        lowercase=lowercase)
    if kind in ("unigram", "bpe"):
        return train_sentencepiece(texts=texts, vocabulary_size=vocabulary_size, model_type=kind,
                                   lowercase=lowercase)
    raise ValueError(f"`kind` must be 'word', 'unigram' or 'bpe', received {kind!r}.")


def save_tokenizer(tokenizer, directory):
    """Writes the vocabulary asset of `tokenizer`, then its `config.json` (written last, under a
    temporary name and renamed: a directory with `config.json` holds a whole tokenizer)."""
    os.makedirs(directory, exist_ok=True)
    tokenizer.save_assets(directory)
    write_json(keras.saving.serialize_keras_object(tokenizer), os.path.join(directory, "config.json"))


def load_tokenizer(directory):
    """Reloads a tokenizer written by `save_tokenizer`."""
    path = os.path.join(directory, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no tokenizer in {directory} (missing {path}).")
    with open(path, encoding="utf-8") as f:
        tokenizer = keras.saving.deserialize_keras_object(json.load(f))
    tokenizer.load_assets(directory)
    return tokenizer
