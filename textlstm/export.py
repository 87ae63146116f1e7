"""Export: SavedModels that take raw strings, with tokenization inside the graph.

Layout, the one TF Serving loads (`--model_base_path=saved_models/NAME`):

    saved_models/
    └── NAME/
        ├── 1/   saved_model.pb, variables/, assets/
        └── 2/   a newer version; Serving picks the highest number

A reloaded export needs only `tensorflow` and `tensorflow_text` (for the
SentencePiece op): no textlstm, no Keras.
"""

import logging
import os
import re

import keras
import tensorflow as tf

from textlstm.runs import write_json
from textlstm.tokenizers import WordTokenizer

logger = logging.getLogger(__name__)

TEXT_SIGNATURE = [tf.TensorSpec([None], tf.string, name="texts")]
SCORER_METADATA = os.path.join("assets.extra", "textlstm_scorer.json")


class TextScorer(keras.Model):
    """A LanguageModel behind its tokenizer: raw strings in, per-token log-probs out.

    `call(texts)` returns `token_ids (batch, time)` (the model's start
    token first, right padded with 0), `log_probs (batch, time - 1)` in nats, `lengths
    (batch,)` and the scored tokens' byte spans `starts`, `ends (batch, time - 1)`:
    exactly what `LanguageModel.score_strings` computes. It is an
    export wrapper, never saved as `.keras`.
    """

    def __init__(self, language_model, **kwargs):
        super().__init__(**kwargs)
        if language_model.tokenizer is None:
            raise ValueError("`language_model` has tokenizer=None; raw strings cannot be scored.")
        self.language_model = language_model
        self.built = True

    def call(self, texts):
        return self.language_model.score_strings(texts)


def next_version_dir(base_dir, name):
    """`base_dir/name/N`, N one more than the highest existing integer version."""
    model_dir = os.path.join(base_dir, name)
    versions = [int(d) for d in os.listdir(model_dir) if re.fullmatch(r"\d+", d)] if os.path.isdir(model_dir) else []
    return os.path.join(model_dir, str(max(versions, default=0) + 1))


def export_scorer(language_model, export_dir, description=None):
    """Writes a SavedModel whose `serve` signature scores raw strings.

    Beside the graph, `assets.extra/textlstm_scorer.json` (a folder TF
    Serving ignores) holds what `textlstm.probes.SavedModelScorer` needs: the
    vocabulary, the start token, and `description` (e.g. the run directory
    and its test perplexity) for probe reports.

    `export_dir` must not exist yet: an export never overwrites another.
    """
    if os.path.exists(export_dir):
        raise FileExistsError(f"`export_dir` {export_dir} exists; exports are never overwritten.")
    TextScorer(language_model).export(
        export_dir, format="tf_saved_model", input_signature=TEXT_SIGNATURE, verbose=False
    )
    os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)
    write_json(scorer_metadata(language_model, description), os.path.join(export_dir, SCORER_METADATA))
    logger.info("exported a raw-text scorer to %s", export_dir)
    return export_dir


def scorer_metadata(language_model, description=None):
    """What a scorer needs beside the graph: the vocabulary and the tokenizer's conventions."""
    tokenizer = language_model.tokenizer
    return {
        "tokenizer": "word" if isinstance(tokenizer, WordTokenizer) else "sentencepiece",
        "lowercase": isinstance(tokenizer, WordTokenizer) and tokenizer.lowercase,
        "start_token": language_model.preprocessor.start_token,
        "vocabulary": tokenizer.get_vocabulary(),
        "description": dict(description or {}),
    }
