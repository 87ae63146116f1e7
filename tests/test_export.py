"""Exports of every task: versioned directories, every signature reloaded the way TF Serving runs it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from textlstm.export import export_model, next_version_dir, prepare_texts, signatures
from textlstm.models import AgreementClassifier, LanguageModel, LSTMBackbone, SentimentClassifier
from textlstm.preprocessors import ClassifierPreprocessor, LanguageModelPreprocessor
from textlstm.probes import KerasScorer
from textlstm.tokenizers import BOS_ID, PAD_ID, train_sentencepiece

# Runs in a fresh process where keras, textlstm and the tensorflow_text Python package cannot be imported:
# TensorFlow plus TF Text's op libraries, loaded as TF Serving links them (`tensorflow_text:ops_lib`; the
# Python package itself imports tf.keras). Calls every signature through TF2 (`tf.saved_model.load`) and
# through the TF1 session loader (`tf.compat.v1.saved_model.loader.load` + `Session.run` on the
# SignatureDef's tensor names), which is how the C++ model server runs a SavedModel.
SERVE = """
import glob, importlib.util, json, os, sys
ops_dir = os.path.join(importlib.util.find_spec("tensorflow_text").submodule_search_locations[0], "python", "ops")
for blocked in ("keras", "textlstm", "keras_hub", "tensorflow_text"):
    sys.modules[blocked] = None  # importing them now fails
import numpy as np
import tensorflow as tf
for library in sorted(glob.glob(os.path.join(ops_dir, "_*.so"))):
    tf.load_op_library(library)  # registers TF Text's kernels, the SentencePiece ones among them

path, requests = sys.argv[1], json.loads(sys.argv[2])

def as_input(name, value):
    return tf.constant(value, tf.string if name == "texts" else tf.int32)

def plain(value):
    value = np.asarray(value)
    if value.dtype.kind in "SO":  # strings come back as bytes
        return np.vectorize(lambda v: v.decode("utf-8"), otypes=[object])(value).tolist() if value.size else []
    return value.tolist()

loaded = tf.saved_model.load(path)
eager = {name: {key: plain(v.numpy()) for key, v in loaded.signatures[name](
    **{k: as_input(k, v) for k, v in inputs.items()}).items()} for name, inputs in requests.items()}

session_results = {}
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    for name, inputs in requests.items():
        signature = meta_graph.signature_def[name]
        feed = {signature.inputs[k].name: np.asarray(v, object if k == "texts" else np.int32)
                for k, v in inputs.items()}
        keys = sorted(signature.outputs)
        values = session.run([signature.outputs[k].name for k in keys], feed_dict=feed)
        session_results[name] = {k: plain(v) for k, v in zip(keys, values)}
print(json.dumps({"eager": eager, "session": session_results,
                  "signatures": sorted(loaded.signatures.keys())}))
"""


def serve(path, requests):
    result = subprocess.run([sys.executable, "-c", SERVE, str(path), json.dumps(requests)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for name in requests:  # the session loader and tf.saved_model.load agree
        for key, value in served["eager"][name].items():
            expected, got = np.asarray(value), np.asarray(served["session"][name][key])
            if expected.dtype.kind in "fc":
                np.testing.assert_allclose(got, expected, atol=1e-6)
            else:
                assert got.tolist() == expected.tolist(), (name, key)
    return served


@pytest.fixture(scope="module")
def models(ptb_lines, word_tokenizer):
    """Tiny untrained models of every task, on a word vocabulary and a SentencePiece one."""
    pieces = train_sentencepiece(ptb_lines, vocabulary_size=300)
    keras.utils.set_random_seed(0)
    return {
        "lm_word": LanguageModel(LSTMBackbone(word_tokenizer.vocabulary_size(), 16, 16, num_layers=2),
                                 preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream")),
        "lm_pieces": LanguageModel(LSTMBackbone(pieces.vocabulary_size(), 16, 16, num_layers=1),
                                   preprocessor=LanguageModelPreprocessor.for_mode(pieces, "sentence")),
        "sentiment": SentimentClassifier(
            LSTMBackbone(pieces.vocabulary_size(), 16, 8, num_layers=1, bidirectional=True), num_classes=2,
            label_names=["negative", "positive"], preprocessor=ClassifierPreprocessor(pieces, sequence_length=12)),
        "agreement": AgreementClassifier(
            LSTMBackbone(word_tokenizer.vocabulary_size(), 16, 8, num_layers=1),
            preprocessor=ClassifierPreprocessor(word_tokenizer, add_end_token=False, sequence_length=None)),
    }


TEXTS = ["the company said it would", "mr. <unk> is chairman of the board", "", "   "]


def padded(rows):
    width = max(len(row) for row in rows)
    return [row + [0] * (width - len(row)) for row in rows], [len(row) for row in rows]


@pytest.mark.parametrize("name", ["lm_word", "lm_pieces"])
def test_language_model_signatures_served_as_tf_serving_runs_them(models, name, tmp_path, request):
    if name == "lm_word":  # the op audit and signature listing: checked on the SentencePiece export
        request.getfixturevalue("export_without_extras")
    lm = models[name]
    weights = [w.numpy().copy() for w in lm.weights]
    version_dir = export_model(lm, str(tmp_path), name, top_k=5)
    assert version_dir == os.path.join(str(tmp_path), name, "1")
    assert all(np.array_equal(w.numpy(), before) for w, before in zip(lm.weights, weights))  # model unchanged
    scores = KerasScorer(lm, prepare="none").score(TEXTS)
    token_rows = [s.token_ids[:-1] for s in scores]  # the texts' tokens, without </s>
    ids, lengths = padded(token_rows)
    served = serve(version_dir, {"serving_default": {"texts": TEXTS}, "score": {"texts": TEXTS},
                                 "next_token": {"texts": TEXTS}, "ids": {"token_ids": ids, "lengths": lengths}})
    assert served["signatures"] == ["ids", "next_token", "score", "serving_default"]
    if name == "lm_pieces":  # SentencePiece needs TF Text's ops, all in the TF Text that TF Serving embeds
        audit = json.loads(open(os.path.join(version_dir, "assets.extra", "op_audit.json")).read())
        assert audit["servable"] and audit["unknown"] == []
        assert set(audit["tf_text"]) == {"SentencepieceOp", "SentencepieceTokenizeOp",
                                         "SentencepieceTokenizeWithOffsetsOp"}
        assert set(audit["tf_text"].values()) == {"_sentencepiece_tokenizer.so"}
    score, by_ids = served["eager"]["serving_default"], served["eager"]["ids"]
    assert score == served["eager"]["score"]
    for row, expected in enumerate(scores):
        n = score["lengths"][row]
        assert n == by_ids["lengths"][row] == len(expected.log_probs)
        np.testing.assert_allclose(score["log_probs"][row][:n], expected.log_probs, atol=1e-5)
        np.testing.assert_allclose(by_ids["log_probs"][row][:n], expected.log_probs, atol=1e-5)
        assert score["tokens"][row][:n] == by_ids["tokens"][row][:n] == expected.tokens  # aligned with log_probs
        assert score["sentence_log_prob"][row] == pytest.approx(expected.total_log_prob, abs=1e-4)
        assert score["mean_surprisal"][row] == pytest.approx(np.mean(expected.surprisals), abs=1e-4)
    # next_token: the model's own distribution after each prefix, <pad> and the start token never proposed.
    prefix_ids = lm.preprocessor.tokenize(TEXTS, add_end_token=False).to_tensor().numpy()
    logits = lm(prefix_ids).numpy()
    top = served["eager"]["next_token"]
    for row in range(len(TEXTS)):
        last = int((prefix_ids[row] != 0).sum()) - 1
        row_logits = logits[row, last].copy()
        row_logits[[PAD_ID, BOS_ID]] = -np.inf  # a stream model's start token </s> may come next
        probabilities = np.exp(row_logits - row_logits.max())
        probabilities /= probabilities.sum()
        assert top["top_ids"][row] == np.argsort(-probabilities)[:5].tolist()
        np.testing.assert_allclose(top["top_probabilities"][row], np.sort(probabilities)[::-1][:5], atol=1e-5)
        assert top["top_tokens"][row] == [lm.tokenizer.get_vocabulary()[i] for i in top["top_ids"][row]]


@pytest.mark.parametrize("name", ["sentiment", "agreement"])
def test_classifier_signatures_served_as_tf_serving_runs_them(models, name, tmp_path, export_without_extras):
    classifier = models[name]
    version_dir = export_model(classifier, str(tmp_path), name)
    predictions = classifier.predict(TEXTS)
    token_rows = [list(row) for row in classifier.preprocessor.tokenizer.tokenize(TEXTS).numpy()]
    ids, lengths = padded([[int(i) for i in row] for row in token_rows])
    served = serve(version_dir, {"serving_default": {"texts": TEXTS}, "ids": {"token_ids": ids, "lengths": lengths}})
    assert served["signatures"] == ["ids", "serving_default"]
    for signature in ("serving_default", "ids"):
        outputs = served["eager"][signature]
        np.testing.assert_allclose(outputs["probabilities"], predictions.probabilities, atol=1e-5)
        assert outputs["label"] == predictions.labels and outputs["label_id"] == predictions.label_ids.tolist()
        if name == "agreement":
            np.testing.assert_allclose(outputs["plural_probability"], predictions.probabilities[:, 1], atol=1e-5)


def test_versions_count_up_never_overwrite_and_a_failed_export_leaves_nothing(models, tmp_path, monkeypatch,
                                                                              export_without_extras):
    classifier = models["agreement"]
    assert next_version_dir(str(tmp_path), "agreement").endswith(os.path.join("agreement", "1"))
    first = export_model(classifier, str(tmp_path), "agreement")
    (tmp_path / "agreement" / "7").mkdir()  # a version someone else wrote
    assert export_model(classifier, str(tmp_path), "agreement").endswith(os.path.join("agreement", "8"))
    assert os.path.exists(os.path.join(first, "saved_model.pb"))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    assert export_model(classifier, str(tmp_path), "agreement", version=3).endswith(os.path.join("agreement", "3"))
    with pytest.raises(FileExistsError, match=r"agreement/3 exists; versions are never overwritten"):
        export_model(classifier, str(tmp_path), "agreement", version=3)
    monkeypatch.setattr("textlstm.export.write_json", crash)  # after the graph is written, before the rename
    with pytest.raises(OSError, match="disk full"):
        export_model(classifier, str(tmp_path), "agreement")
    assert sorted(os.listdir(tmp_path / "agreement")) == ["1", "3", "7", "8"]  # no half version, no temporary folder
    with pytest.raises(ValueError, match=r"`name` must be letters, digits.*received '../x'"):
        export_model(classifier, str(tmp_path), "../x")
    with pytest.raises(ValueError, match=r"`top_k` must be an int in \[1, 298\], received 0"):
        signatures(models["lm_pieces"], top_k=0)
    with pytest.raises(ValueError, match=r"`version` must be a positive int or None, received 0"):
        export_model(classifier, str(tmp_path), "agreement", version=0)


def test_texts_are_made_valid_and_cut_to_a_byte_budget():
    texts = tf.constant([b"caf\xe9", "naïve".encode(), "abcé".encode(), b"", b"abcd"])
    texts, truncated = prepare_texts(texts, max_text_bytes=4)
    # A bad byte becomes U+FFFD; so does a character the cut goes through.
    assert [t.decode() for t in texts.numpy()] == ["caf\ufffd", "naï", "abc\ufffd", "", "abcd"]
    assert truncated.numpy().tolist() == [True, True, True, False, False]


def test_export_after_training_with_carried_state(tmp_path, ptb_lines, word_tokenizer, export_without_extras):
    """fit/evaluate create the carried-state variables; the export must neither save nor trip on them."""
    from textlstm.data import stream_dataset

    keras.utils.set_random_seed(0)
    lm = LanguageModel(LSTMBackbone(word_tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16, num_layers=1),
                       preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream"))
    lm.compile("sgd", carry_state=True)
    data = stream_dataset(lm.preprocessor, ptb_lines[:200], batch_size=4, sequence_length=10)
    lm.fit(data, epochs=1, verbose=0)
    lm.evaluate(data, verbose=0)
    export_dir = export_model(lm, str(tmp_path), "lm")

    texts = ["the company said it would", "shares rose"]
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["serving_default"](texts=tf.constant(texts))
    for row, scores in enumerate(KerasScorer(lm, prepare="none").score(texts)):  # the model still scores after it
        n = int(served["lengths"][row])
        np.testing.assert_allclose(served["log_probs"][row][:n].numpy(), scores.log_probs, rtol=1e-5, atol=1e-6)
    graph = (tmp_path / "lm" / "1" / "saved_model.pb").read_bytes()
    assert b"RegexSplit" not in graph and b"Sentencepiece" not in graph  # a word model: core TF ops only
    # `lengths` beyond the ids given are cut to them; the answer says what was scored.
    by_ids = loaded.signatures["ids"](token_ids=tf.constant([[5, 6], [7, 0]]), lengths=tf.constant([9, 1]))
    assert by_ids["lengths"].numpy().tolist() == [3, 2]  # the tokens and </s>
    assert by_ids["tokens"].numpy()[1].tolist()[1:] == [b"</s>", b""]
