"""Export: SavedModels that stock TF Serving loads, raw strings in, tokenization inside the graph.

Layout, the one TF Serving loads (`--model_base_path=saved_models/NAME`):

    saved_models/
    └── NAME/
        ├── 1/   saved_model.pb, variables/, assets/, assets.extra/
        └── 2/   a newer version; Serving picks the highest number

A version is written under a temporary name beside the others
(`NAME/.tmp-...`, which Serving ignores: not a number), fsynced, and renamed
into place once complete, so a polling server (or a machine back from a
power cut) never sees half a version; an
existing version is never overwritten. A reloaded export needs only
TensorFlow and TF Text's op libraries (for the SentencePiece ops): no
textlstm, no Keras. Beside the graph, `assets.extra/` holds TF Serving's
warmup requests, the `saved_model_cli show --all` listing, the op audit
(`textlstm.serving.audit_ops`) and textlstm's metadata; `BASE/models.config`
lists every exported model for TF Serving's `--model_config_file`.

Signatures, by task (text inputs are `texts`, `tf.string [None]`; the
`ids` signatures take `token_ids`, int32 `[None, None]`, the text's tokens
without start or end token, right padded, and `lengths`, int32 `[None]`):

- language model: `serving_default` = `score`: `token_ids`, `log_probs`
  (nats, padded), `tokens` (the scored tokens, aligned with `log_probs`),
  `lengths`, `starts`, `ends` (byte spans), `sentence_log_prob`,
  `mean_surprisal` (bits), `truncated`; `next_token`: the top `top_k` next
  tokens after each prefix (`top_ids`, `top_tokens`, `top_probabilities`,
  `truncated`); `ids`: the scores without spans.
- classifiers (and `ClassifierEnsemble`s of them, one graph holding every
  member): `serving_default` and `ids`: `probabilities`, `label_id`,
  `label`, `truncated` (and `plural_probability` for the agreement
  classifier).

Every input gets an answer: bytes that are not UTF-8 are replaced by
U+FFFD; empty and blank texts are read like any other (a language model
scores just `</s>` for them); texts over `max_text_bytes` are cut, and a
classifier reads at most its preprocessor's `sequence_length` tokens, as in
training; `truncated` says when either happened.
"""

import errno
import importlib.metadata
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import keras
import tensorflow as tf

from textlstm import serving
from textlstm.models import AgreementClassifier, ClassifierEnsemble, LanguageModel, TextClassifier
from textlstm.runs import fsync, fsync_tree, write_json
from textlstm.tokenizers import BOS_ID, PAD_ID, WordTokenizer

logger = logging.getLogger(__name__)

TEXTS = tf.TensorSpec([None], tf.string, name="texts")
IDS = [tf.TensorSpec([None, None], tf.int32, name="token_ids"), tf.TensorSpec([None], tf.int32, name="lengths")]
SCORER_METADATA = os.path.join("assets.extra", "textlstm_scorer.json")
EXPORT_METADATA = os.path.join("assets.extra", "textlstm_export.json")
SIGNATURE_LISTING = os.path.join("assets.extra", "saved_model_cli.txt")
OP_AUDIT = os.path.join("assets.extra", "op_audit.json")
NEVER_PREDICTED = [PAD_ID, BOS_ID]  # what LanguageModel.generate never samples either
MAX_TEXT_BYTES = 20_000  # longer texts are cut (and flagged `truncated`): one text cannot exhaust the server


def version_numbers(model_dir):
    """The integer versions present under `model_dir` (a name's folder), ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name))


def next_version_dir(base_dir, name):
    """`base_dir/name/N`, N one more than the highest existing integer version."""
    model_dir = os.path.join(base_dir, name)
    return os.path.join(model_dir, str(max(version_numbers(model_dir), default=0) + 1))


def prepare_texts(texts, max_text_bytes):
    """What every text signature reads: bad UTF-8 replaced by U+FFFD, cut to `max_text_bytes` bytes.

    Returns the texts and, per text, whether it was cut (a cut through a
    character leaves a U+FFFD at the end).
    """
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
    truncated = tf.strings.length(texts) > max_text_bytes  # (batch,)
    texts = tf.strings.substr(texts, 0, max_text_bytes)  # bytes
    return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace"), truncated


def _vocabulary_lookup(tokenizer):
    """ids -> token strings, as a graph constant."""
    vocabulary = tf.constant(tokenizer.get_vocabulary())
    return lambda ids: tf.gather(vocabulary, ids)


def _language_model_signatures(lm, top_k, max_text_bytes):
    tokens_of = _vocabulary_lookup(lm.tokenizer)

    def scores(token_ids, log_probs, lengths):
        """Sentence scores, and the scored tokens aligned with `log_probs` ("" on padding)."""
        mask = tf.sequence_mask(lengths, tf.shape(log_probs)[1])  # (batch, time - 1)
        total = tf.reduce_sum(tf.where(mask, log_probs, 0.0), axis=1)  # (batch,)
        mean_surprisal = -total / tf.maximum(tf.cast(lengths, log_probs.dtype), 1.0) / math.log(2)
        tokens = tf.where(mask, tokens_of(token_ids[:, 1:]), "")  # (batch, time - 1)
        return {"sentence_log_prob": total, "mean_surprisal": mean_surprisal, "tokens": tokens}

    @tf.function(input_signature=[TEXTS])
    def score(texts):
        texts, truncated = prepare_texts(texts, max_text_bytes)
        outputs = lm.score_strings(texts)
        return {**outputs, **scores(outputs["token_ids"], outputs["log_probs"], outputs["lengths"]),
                "truncated": truncated}

    @tf.function(input_signature=IDS)
    def score_ids(token_ids, lengths):
        ragged = tf.RaggedTensor.from_tensor(token_ids, lengths=lengths)  # (batch, None); lengths clipped to width
        lengths = tf.cast(ragged.row_lengths(), tf.int32) + 1  # the tokens and </s> are scored
        ids = lm.preprocessor.frame(ragged, add_end_token=True).to_tensor(PAD_ID)  # (batch, time): start, tokens, </s>
        log_probs = lm.token_log_probs(ids)  # (batch, time - 1)
        return {"token_ids": ids, "log_probs": log_probs, "lengths": lengths, **scores(ids, log_probs, lengths)}

    @tf.function(input_signature=[TEXTS])
    def next_token(texts):
        texts, truncated = prepare_texts(texts, max_text_bytes)
        ids = lm.preprocessor.tokenize(texts, add_end_token=False)  # ragged (batch, None), start token first
        last = tf.cast(ids.row_lengths() - 1, tf.int32)  # (batch,)
        logits = lm(ids.to_tensor(PAD_ID), training=False)  # (batch, time, vocabulary)
        logits = tf.gather(logits, last, axis=1, batch_dims=1)  # (batch, vocabulary)
        never = tf.one_hot(NEVER_PREDICTED, lm.backbone.vocabulary_size, on_value=-1e9)  # as in generate()
        probabilities = tf.nn.softmax(logits + tf.reduce_sum(never, axis=0))
        top = tf.math.top_k(probabilities, k=top_k)
        return {"top_ids": top.indices, "top_tokens": tokens_of(top.indices), "top_probabilities": top.values,
                "truncated": truncated}

    return {"serving_default": score, "score": score, "next_token": next_token, "ids": score_ids}


def _classifier_signatures(classifier, max_text_bytes):
    label_names = tf.constant(classifier.label_names)
    first = classifier.members[0] if isinstance(classifier, ClassifierEnsemble) else classifier  # members: one class
    plural = classifier.label_names.index("plural") if isinstance(first, AgreementClassifier) else None
    preprocessor = classifier.preprocessor
    max_tokens = preprocessor.sequence_length

    def outputs(ragged, truncated):
        """Class outputs of a text's token ids (no start or end token), framed by the preprocessor as in training."""
        if max_tokens is not None:
            truncated = truncated | (ragged.row_lengths() > max_tokens)
        ids = preprocessor.frame(ragged).to_tensor(PAD_ID)  # (batch, time): start, tokens cut to max_tokens[, </s>]
        probabilities = classifier(ids, training=False)  # (batch, classes)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        result = {"probabilities": probabilities, "label_id": label_id, "label": tf.gather(label_names, label_id),
                  "truncated": truncated}
        if plural is not None:
            result["plural_probability"] = probabilities[:, plural]
        return result

    @tf.function(input_signature=[TEXTS])
    def classify(texts):
        texts, truncated = prepare_texts(texts, max_text_bytes)
        return outputs(tf.cast(preprocessor.tokenizer.tokenize(texts), tf.int32), truncated)

    @tf.function(input_signature=IDS)
    def classify_ids(token_ids, lengths):
        ragged = tf.RaggedTensor.from_tensor(token_ids, lengths=lengths)
        return outputs(ragged, tf.zeros([tf.shape(token_ids)[0]], tf.bool))

    return {"serving_default": classify, "ids": classify_ids}


def signatures(model, top_k=10, max_text_bytes=MAX_TEXT_BYTES):
    """The serving signatures of a textlstm task model, by name (see the module docstring)."""
    if getattr(model, "preprocessor", None) is None:
        raise ValueError(f"`model` has no preprocessor; an export takes raw strings. Received {type(model).__name__}.")
    if not isinstance(max_text_bytes, int) or max_text_bytes <= 0:
        raise ValueError(f"`max_text_bytes` must be a positive int, received {max_text_bytes!r}.")
    if isinstance(model, LanguageModel):
        largest = model.backbone.vocabulary_size - len(NEVER_PREDICTED)
        if not isinstance(top_k, int) or not 0 < top_k <= largest:
            raise ValueError(f"`top_k` must be an int in [1, {largest}], received {top_k!r}.")
        return _language_model_signatures(model, top_k, max_text_bytes)
    if isinstance(model, (TextClassifier, ClassifierEnsemble)):
        return _classifier_signatures(model, max_text_bytes)
    raise ValueError(f"`model` must be a LanguageModel, a TextClassifier or a ClassifierEnsemble, received "
                     f"{type(model).__name__}.")


def export_model(model, base_dir, name, description=None, top_k=10, version=None, max_text_bytes=MAX_TEXT_BYTES):
    """Writes `model` as a version of `base_dir/name` and returns that version's directory.

    The version is written to a temporary directory beside the others and
    renamed into place when complete; `model` is not changed.

    Args:
        model: a `LanguageModel`, `SentimentClassifier`, `AgreementClassifier` (any `TextClassifier`), or a
            `ClassifierEnsemble` of them.
        base_dir: the folder of model names (TF Serving's base paths), e.g. "saved_models".
        name: the model's name, a folder of `base_dir`.
        description: dict of facts kept in `assets.extra/` (the run, its metrics).
        top_k: next tokens a language model's `next_token` signature returns.
        version: a positive int, or None for the next free number.
        max_text_bytes: longer texts are cut to this many bytes (UTF-8) and flagged `truncated`.

    Raises:
        FileExistsError: `version` exists already (versions are never overwritten).
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or "") or name == "models.config":
        raise ValueError(f"`name` must be letters, digits, '.', '_' or '-' (not 'models.config'), received {name!r}.")
    if version is not None and (not isinstance(version, int) or version <= 0):
        raise ValueError(f"`version` must be a positive int or None, received {version!r}.")
    if version is not None and os.path.exists(os.path.join(base_dir, name, str(version))):
        raise FileExistsError(f"{os.path.join(base_dir, name, str(version))} exists; versions are never overwritten.")
    endpoints = signatures(model, top_k, max_text_bytes)
    model_dir = os.path.join(base_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=".tmp-", dir=model_dir)
    try:
        export_dir = os.path.join(temporary, "export")
        archive = keras.export.ExportArchive()
        archive.track(model)  # its variables, and the tokenizer's tables and SentencePiece model
        for endpoint, function in endpoints.items():
            archive.add_endpoint(endpoint, function)
        archive.write_out(export_dir, verbose=False)
        write_json(_metadata(model, description, endpoints), os.path.join(export_dir, EXPORT_METADATA))
        if isinstance(model, LanguageModel):
            write_json(scorer_metadata(model, description), os.path.join(export_dir, SCORER_METADATA))
        serving.write_warmup_requests(export_dir, name, warmup_requests(model, endpoints))
        listing = _start_signature_listing(export_dir)  # runs beside the audit: two processes, two cores
        audit = serving.audit_ops(export_dir)
        write_json(audit, os.path.join(export_dir, OP_AUDIT))
        _finish_signature_listing(listing, export_dir)
        if not audit["servable"]:
            logger.warning("%s: ops TF Serving with TF Text %s lacks: unknown %s, newer TF Text %s", name,
                           serving.SERVING_TF_TEXT, audit["unknown"], audit["newer_than_serving"])
        fsync_tree(export_dir)  # every byte on disk before the version appears
        version_dir = _move_into_place(export_dir, base_dir, name, version)
        fsync(model_dir)  # and the rename that made it appear
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    serving.write_models_config(base_dir)
    logger.info("exported %s to %s (signatures: %s)", type(model).__name__, version_dir, ", ".join(endpoints))
    return version_dir


def _move_into_place(export_dir, base_dir, name, version):
    """Renames the finished export to `name/version` (the next free number when None), never onto another version.

    The rename is atomic: a polling server sees no version or the whole one.
    If another export takes the number first, the rename fails (the target
    is not empty) and the next number is tried.
    """
    while True:
        version_dir = os.path.join(base_dir, name, str(version)) if version else next_version_dir(base_dir, name)
        try:
            os.rename(export_dir, version_dir)
            return version_dir
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if version:
                raise FileExistsError(f"{version_dir} exists; versions are never overwritten.") from None


WARMUP_TEXTS = ["", "a short text", "The keys to the cabinet are on the table, said the manager."]


def warmup_requests(model, endpoints):
    """One request per signature, on `WARMUP_TEXTS` (or their ids), for TF Serving's warmup file."""
    ids = model.preprocessor.tokenizer.tokenize(tf.constant(WARMUP_TEXTS))  # ragged (3, None)
    id_inputs = {"token_ids": ids.to_tensor(PAD_ID).numpy().tolist(), "lengths": ids.row_lengths().numpy().tolist()}
    return [(name, id_inputs if name == "ids" else {"texts": WARMUP_TEXTS}) for name in endpoints]


def _start_signature_listing(export_dir):
    """Starts `saved_model_cli show --all` on the export (see `_finish_signature_listing`)."""
    beside_python = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    program = beside_python if os.path.exists(beside_python) else shutil.which("saved_model_cli")
    if program is None:
        raise FileNotFoundError("`saved_model_cli` (installed with tensorflow) is neither beside the Python "
                                f"interpreter ({beside_python}) nor on PATH.")
    return subprocess.Popen([program, "show", "--dir", export_dir, "--all"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish_signature_listing(process, export_dir):
    """Keeps the listing as `assets.extra/saved_model_cli.txt`."""
    stdout, stderr = process.communicate(timeout=300)
    if process.returncode != 0:
        raise RuntimeError(f"`{' '.join(process.args)}` failed: {stderr[-2000:]}")
    with open(os.path.join(export_dir, SIGNATURE_LISTING), "w", encoding="utf-8") as f:
        f.write(stdout)


def _metadata(model, description, endpoints):
    return {"task": type(model).__name__, "signatures": sorted(endpoints),
            "textlstm_version": importlib.metadata.version("textlstm"), "description": dict(description or {})}


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
