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

logger = logging.getLogger(__name__)

TEXT_SIGNATURE = [tf.TensorSpec([None], tf.string, name="texts")]


class TextScorer(keras.Model):
    """A LanguageModel behind its tokenizer: raw strings in, per-token log-probs out.

    `call(texts)` returns `token_ids (batch, time)` (the model's start
    token first, right padded with 0), `log_probs (batch, time - 1)` in nats and `lengths
    (batch,)`, exactly what `LanguageModel.score_strings` computes. It is an
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


def export_scorer(language_model, export_dir):
    """Writes a SavedModel whose `serve` signature scores raw strings.

    `export_dir` must not exist yet: an export never overwrites another.
    """
    if os.path.exists(export_dir):
        raise FileExistsError(f"`export_dir` {export_dir} exists; exports are never overwritten.")
    TextScorer(language_model).export(
        export_dir, format="tf_saved_model", input_signature=TEXT_SIGNATURE, verbose=False
    )
    # TF Text's SentencePiece op owns its resource through an eager kernel,
    # not a ref-counted resource, and saving a SavedModel discards it (Google
    # bug b/318839908, cited in tensorflow_text's sentencepiece_tokenizer.py):
    # give the caller's model a fresh one, and retrace what captured the old one.
    if hasattr(language_model.tokenizer, "proto"):
        language_model.tokenizer.set_proto(language_model.tokenizer.proto)
        language_model.reset_compiled_functions()
    logger.info("exported a raw-text scorer to %s", export_dir)
    return export_dir
