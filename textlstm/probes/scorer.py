"""The scorer interface: what every probe asks of a language model, and nothing else.

A scorer turns texts into per-token log-probabilities, surprisals, tokens
and each token's character span in the text. Two implementations give the
same numbers (to 1e-5): `KerasScorer` over a textlstm `LanguageModel` (or
its run directory) and `SavedModelScorer` over an export loaded with only
`tensorflow` and `tensorflow_text`. Both run the model's own graph,
`LanguageModel.score_strings`: tokenization, the start token and the whole
LSTM run in one batched TensorFlow call per batch; Python only reads the
arrays it returns.

    texts ──prepare──► prepared texts ──score_strings (in graph)──► ids, log-probs, byte spans
                                                                         │
                              TokenScores(tokens, log_probs, surprisals, spans)  ◄──┘

Scoring protocol, the same in both (and written into every probe report by
`protocol()`): each text is scored alone, from a zero LSTM state, after the
preprocessor's start token (`</s>` for a stream-trained model, `<s>` for a
sentence-trained one: the token every training line followed); `</s>` closes
the text and is scored unless `end_token=False`.

Text preparation: a word-level LM knows only its vocabulary's spelling
(PTB: lowercase, no punctuation, numbers as `N`, "does n't"), so raw probe
text is first brought to it (`prepare="ptb"`; see `prepare_ptb`). A
SentencePiece LM reads raw text (`prepare="none"`). `prepare="auto"` picks
by tokenizer. Probes prepare each piece of text (a region, a prefix, a
word) separately, so spans stay in prepared-text coordinates.

Example:
>>> from textlstm.models import LanguageModel, LSTMBackbone
>>> from textlstm.preprocessors import LanguageModelPreprocessor
>>> from textlstm.tokenizers import WordTokenizer
>>> tokenizer = WordTokenizer.from_texts(["the cat sat on the mat"])
>>> lm = LanguageModel(LSTMBackbone(tokenizer.vocabulary_size(), 8, 8, num_layers=1),
...                    preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
>>> scores = KerasScorer(lm).score(["The cat sat."])[0]
>>> scores.text, scores.tokens, scores.spans
('the cat sat', ['the', 'cat', 'sat', '</s>'], [(0, 3), (4, 7), (8, 11), (11, 11)])
"""

import abc
import dataclasses
import importlib.metadata
import json
import logging
import math
import os
import re

import numpy as np
import tensorflow as tf

from textlstm.export import SCORER_METADATA, scorer_metadata
from textlstm.runs import run_description

logger = logging.getLogger(__name__)

STATE_INITIALISATION = "zero LSTM state for every text (no carried context, no warm-up sentence)"
PREPARATIONS = ("auto", "ptb", "none")


@dataclasses.dataclass
class TokenScores:
    """Per-token scores of one (prepared) text.

    `log_probs[i]` is ln p(tokens[i] | start token, tokens[:i]) in nats,
    `surprisals[i]` the same in bits (-log2 p, SyntaxGym's unit), and
    `spans[i]` the (start, end) character offsets of the token in `text`
    (end exclusive; `</s>` sits at (len(text), len(text))). A SentencePiece
    piece with "▁" starts on the space before its word.
    """

    text: str
    tokens: list
    token_ids: list
    log_probs: list
    surprisals: list
    spans: list

    @property
    def total_log_prob(self):
        return float(sum(self.log_probs))


_PTB_TOKEN = re.compile(r"\w+(?=n't\b)|n't\b|'\w+|\d+(?:[.,]\d+)+|\w+(?:-\w+)*|[^\w\s]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def prepare_ptb(text, vocabulary, lowercase=True):
    """Raw English -> the spelling of a PTB-style word vocabulary (Mikolov et al. 2010 preprocessing).

    Splits off punctuation and clitics as the Penn Treebank does ("doesn't"
    -> "does n't", "dog's" -> "dog 's"), lowercases (when `lowercase`),
    writes a number the vocabulary lacks as "N" when "N" is in it, and drops
    punctuation the vocabulary lacks (PTB has none), so "The dogs bark." is
    scored as "the dogs bark".

    Args:
        text: str, raw text.
        vocabulary: a set of the word tokenizer's tokens.
        lowercase: bool, case-fold first.
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'")  # curly apostrophes, as in "doesn’t"
    words = []
    for word in _PTB_TOKEN.findall(text.lower() if lowercase else text):
        if word in vocabulary:
            words.append(word)
        elif _NUMBER.fullmatch(word):
            words.append("N" if "N" in vocabulary else word)
        elif re.fullmatch(r"[^\w\s]+", word) is None:
            words.append(word)
    return " ".join(words)


class Scorer(abc.ABC):
    """The interface probes use. Subclasses implement `_score_batch` and set the metadata.

    Args:
        vocabulary: list of token strings, by id.
        tokenizer_kind: "word" or "sentencepiece".
        lowercase: bool, whether the tokenizer case-folds (word tokenizers).
        start_token: the token every text is scored after.
        prepare: "auto", "ptb" or "none" (see the module docstring).
        description: dict of facts for `protocol()` (model path, test perplexity, ...).
    """

    implementation = None

    def __init__(self, vocabulary, tokenizer_kind, lowercase, start_token, prepare="auto", description=None):
        if prepare not in PREPARATIONS:
            raise ValueError(f"`prepare` must be one of {PREPARATIONS}, received {prepare!r}.")
        self.vocabulary = list(vocabulary)
        self.tokenizer_kind = tokenizer_kind
        self.start_token = start_token
        self.description = dict(description or {})
        if prepare == "auto":
            prepare = "ptb" if tokenizer_kind == "word" else "none"
        self.preparation = prepare
        self._vocabulary_set = frozenset(self.vocabulary)
        # A word vocabulary almost without capitals (PTB's only one is "N") is matched case-folded,
        # as is a lowercasing tokenizer.
        capitalized = sum(w != w.lower() for w in self.vocabulary[4:])
        self._lowercase = lowercase or capitalized <= 0.01 * len(self.vocabulary)

    def prepare(self, text):
        """`text` in the spelling the model was trained on (identity for `prepare="none"`)."""
        if self.preparation == "ptb":
            return prepare_ptb(text, self._vocabulary_set, self._lowercase)
        return text

    def protocol(self):
        """How this scorer scores, for reports: numbers without it are not comparable."""
        preparation = {
            "ptb": "PTB spelling: clitics and punctuation split, " + ("lowercased, " if self._lowercase else "")
                   + "punctuation outside the vocabulary dropped, unknown numbers as N",
            "none": "raw text (the tokenizer's own normalization only)",
        }[self.preparation]
        return {
            "implementation": self.implementation,
            "tokenizer": self.tokenizer_kind,
            "vocabulary_size": len(self.vocabulary),
            "start_token": self.start_token,
            "state_initialisation": STATE_INITIALISATION,
            "text_preparation": preparation,
            "textlstm_version": importlib.metadata.version("textlstm"),
            **self.description,
        }

    @abc.abstractmethod
    def _score_batch(self, texts):
        """A list of strings -> the dict of numpy arrays `LanguageModel.score_strings` returns."""

    def score(self, texts, end_token=True, prepare=True, batch_size=256):
        """Per-token scores of each text.

        Args:
            texts: list of str.
            end_token: bool, include the closing `</s>` (its log-prob does
                not change the others: the model reads left to right).
            prepare: bool, apply `self.prepare` first (probes that prepare
                pieces themselves pass False). `TokenScores.text` is the prepared text.
            batch_size: texts per graph call; texts are sorted by length
                first, so little of each batch is padding.

        Returns:
            A list of `TokenScores`, in the order of `texts`.
        """
        if isinstance(texts, str):
            raise ValueError(f"`texts` must be a list of strings, received the string {texts!r}.")
        if batch_size <= 0:
            raise ValueError(f"`batch_size` must be positive, received {batch_size!r}.")
        texts = [self.prepare(t) for t in texts] if prepare else list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            outputs = self._score_batch([texts[i] for i in indices])
            for row, index in enumerate(indices):
                results[index] = self._token_scores(texts[index], outputs, row, end_token)
        return results

    def _token_scores(self, text, outputs, row, end_token):
        length = int(outputs["lengths"][row]) - (0 if end_token else 1)
        ids = outputs["token_ids"][row, 1 : length + 1].tolist()
        log_probs = outputs["log_probs"][row, :length].astype(float).tolist()
        starts, ends = outputs["starts"][row, :length], outputs["ends"][row, :length]
        if not text.isascii():  # byte offsets -> character offsets
            char_of_byte = np.zeros(len(text.encode("utf-8")) + 1, "int64")
            position = 0
            for index, character in enumerate(text):
                char_of_byte[position : position + len(character.encode("utf-8"))] = index
                position += len(character.encode("utf-8"))
            char_of_byte[position] = len(text)
            starts, ends = char_of_byte[starts], char_of_byte[ends]
        return TokenScores(
            text=text,
            tokens=[self.vocabulary[i] for i in ids],
            token_ids=ids,
            log_probs=log_probs,
            surprisals=[-lp / math.log(2) for lp in log_probs],
            spans=list(zip(starts.tolist(), ends.tolist())),
        )

    def score_continuations(self, prefixes, words, batch_size=256):
        """Scores each word after its prefix: `prefix + " " + word`, one batched call.

        Args:
            prefixes: list of str (each prepared with `self.prepare`).
            words: list of str, one per prefix (prepared too).

        Returns:
            A list of (log_prob, token_ids) per word: the summed log-prob (nats)
            and the ids of the tokens starting after the prefix (several for
            a word SentencePiece splits into pieces). A word the preparation
            empties (e.g. punctuation a word vocabulary lacks) has no tokens
            and log_prob None: it was not scored.
        """
        if len(prefixes) != len(words):
            raise ValueError(f"`words` must have one word per prefix: {len(prefixes)} prefixes, "
                             f"received {len(words)} words.")
        texts, word_starts = [], []
        for prefix, word in zip(prefixes, words):
            prefix, word = self.prepare(prefix), self.prepare(word)
            texts.append(f"{prefix} {word}" if prefix else word)
            word_starts.append(len(prefix) + 1 if prefix else 0)
        results = []
        for word_start, scored in zip(word_starts, self.score(texts, end_token=False, prepare=False,
                                                              batch_size=batch_size)):
            after = [i for i, (start, end) in enumerate(scored.spans)
                     if _first_visible(scored.text, start, end) >= word_start]
            log_prob = float(sum(scored.log_probs[i] for i in after)) if after else None
            results.append((log_prob, [scored.token_ids[i] for i in after]))
        return results

    def candidate_log_probs(self, prefixes, candidates, batch_size=256):
        """ln p(candidate | prefix) for each prefix and each of its candidate words.

        A candidate of several tokens (SentencePiece pieces) gets the sum of
        their log-probs (see `score_continuations`).

        Args:
            prefixes: list of str.
            candidates: list (one per prefix) of lists of str.

        Returns:
            A list of lists of floats (nats; None for a word the preparation
            empties), shaped like `candidates`.
        """
        if len(prefixes) != len(candidates):
            raise ValueError(f"`candidates` must have one list per prefix: {len(prefixes)} prefixes, "
                             f"received {len(candidates)} lists.")
        flat = self.score_continuations([p for p, words in zip(prefixes, candidates) for _ in words],
                                        [w for words in candidates for w in words], batch_size)
        results, position = [], 0
        for words in candidates:
            results.append([log_prob for log_prob, _ in flat[position : position + len(words)]])
            position += len(words)
        return results


def _first_visible(text, start, end):
    """The offset of the first non-space character in text[start:end] (end if none)."""
    while start < end and text[start].isspace():
        start += 1
    return start


class KerasScorer(Scorer):
    """A scorer over a textlstm `LanguageModel` (with its preprocessor).

    Args:
        language_model: a `LanguageModel` with a preprocessor.
        prepare: "auto", "ptb" or "none".
        description: dict of facts for `protocol()`; `from_run_dir` fills
            the run directory and its test perplexity.
    """

    implementation = "keras"

    def __init__(self, language_model, prepare="auto", description=None):
        if language_model.preprocessor is None:
            raise ValueError("`language_model` has preprocessor=None; a scorer needs the model's preprocessor.")
        metadata = scorer_metadata(language_model)
        super().__init__(metadata["vocabulary"], metadata["tokenizer"], metadata["lowercase"],
                         metadata["start_token"], prepare, description)
        self.language_model = language_model
        self._function = None

    @classmethod
    def from_run_dir(cls, run_dir, prepare="auto"):
        """The scorer of a `textlstm train lm` run directory (its `model.keras` and `metrics.json`)."""
        from textlstm.recipes.run_steps import load_run_model  # the recipes import the probes

        return cls(load_run_model(run_dir, "lm"), prepare, run_description(run_dir))

    def tracing_count(self):
        """How many times the scoring graph was traced (1 after the first batch; more would be retracing)."""
        return 0 if self._function is None else self._function.experimental_get_tracing_count()

    def _score_batch(self, texts):
        if self._function is None:  # traced once: tokenization and the LSTM in one graph
            self._function = tf.function(self.language_model.score_strings,
                                         input_signature=[tf.TensorSpec([None], tf.string)])
        return {k: v.numpy() for k, v in self._function(tf.constant(texts)).items()}


class SavedModelScorer(Scorer):
    """A scorer over a language model's SavedModel written by `textlstm export` (needs only TF and TF Text).

    Reads the tokenizer's vocabulary and conventions from the export's
    `assets.extra/textlstm_scorer.json` and calls its `serving_default` signature.

    Args:
        export_dir: a versioned export directory (`saved_models/NAME/VERSION`).
        prepare: "auto", "ptb" or "none".
    """

    implementation = "saved_model"

    def __init__(self, export_dir, prepare="auto"):
        import tensorflow_text  # noqa: F401  (registers the SentencePiece op the graph holds)

        metadata_path = os.path.join(export_dir, SCORER_METADATA)
        if not os.path.exists(os.path.join(export_dir, "saved_model.pb")):
            raise FileNotFoundError(f"no SavedModel in {export_dir} (missing saved_model.pb); "
                                    f"write one with `textlstm export RUN --name NAME`.")
        if not os.path.exists(metadata_path):
            raise FileNotFoundError(f"{metadata_path} is missing: the export predates scorer metadata; "
                                    f"export the language model run again with `textlstm export RUN --name NAME`.")
        with open(metadata_path, encoding="utf-8") as f:
            metadata = json.load(f)
        description = dict(metadata.get("description", {}), model=os.path.abspath(export_dir))
        super().__init__(metadata["vocabulary"], metadata["tokenizer"], metadata["lowercase"],
                         metadata["start_token"], prepare, description)
        self._signature = tf.saved_model.load(export_dir).signatures["serving_default"]

    def _score_batch(self, texts):
        return {k: v.numpy() for k, v in self._signature(texts=tf.constant(texts)).items()}


def load_scorer(run_dir=None, saved_model=None, prepare="auto"):
    """A `KerasScorer` for a run directory or a `SavedModelScorer` for an export: exactly one of the two."""
    if (run_dir is None) == (saved_model is None):
        raise ValueError(f"give exactly one of `run_dir` or `saved_model`, received run_dir={run_dir!r}, "
                         f"saved_model={saved_model!r}.")
    if run_dir is not None:
        return KerasScorer.from_run_dir(run_dir, prepare)
    return SavedModelScorer(saved_model, prepare)
