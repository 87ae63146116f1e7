"""TF Serving extras: the REST and gRPC client against a local SavedModel, warmup records, op audit, config."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as text
from tensorflow_serving.apis import predict_pb2

from textlstm import serving
from textlstm.export import export_model
from textlstm.models import LSTMBackbone, SentimentClassifier
from textlstm.preprocessors import ClassifierPreprocessor

TEXTS = ["a gorgeous , witty film", "dull", "", "   "]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, word_tokenizer):
    keras.utils.set_random_seed(0)
    classifier = SentimentClassifier(LSTMBackbone(word_tokenizer.vocabulary_size(), 16, 8, num_layers=1,
                                                  bidirectional=True),
                                     num_classes=2, label_names=["negative", "positive"],
                                     preprocessor=ClassifierPreprocessor(word_tokenizer, sequence_length=20))
    base_dir = tmp_path_factory.mktemp("saved_models")
    version_dir = export_model(classifier, str(base_dir), "sentiment")
    return classifier, base_dir, version_dir, tf.saved_model.load(version_dir)


def tensor(name, values):
    return tf.constant(values, tf.string if name == "texts" else tf.int32)


def rest_server(loaded, body):
    """What TF Serving's REST handler does with a predict body, over the loaded SavedModel."""
    columnar = "inputs" in body
    inputs = body["inputs"] if columnar else {name: [row[name] for row in body["instances"]]
                                              for name in body["instances"][0]}
    outputs = loaded.signatures[body["signature_name"]](**{k: tensor(k, v) for k, v in inputs.items()})
    outputs = {name: serving.to_jsonable(value.numpy()) for name, value in outputs.items()}
    if columnar:
        return json.dumps({"outputs": outputs})
    rows = len(next(iter(outputs.values())))
    return json.dumps({"predictions": [{name: value[row] for name, value in outputs.items()} for row in range(rows)]})


def grpc_server(loaded, request):
    """What TF Serving's Predict handler does with a PredictRequest, over the loaded SavedModel."""
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    outputs = loaded.signatures[request.model_spec.signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
    response = predict_pb2.PredictResponse()
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
    return response


def test_rest_and_grpc_requests_round_trip_through_the_saved_model(exported):
    classifier, _, _, loaded = exported
    expected = classifier.predict(TEXTS)
    for columnar in (False, True):
        body = serving.rest_request({"texts": TEXTS}, columnar=columnar)
        assert json.loads(json.dumps(body)) == body  # plain JSON
        outputs = serving.parse_rest_response(rest_server(loaded, body))
        np.testing.assert_allclose(outputs["probabilities"], expected.probabilities, atol=1e-5)
        assert outputs["label"].tolist() == expected.labels
    request = serving.predict_request("sentiment", {"texts": TEXTS}, version=1)
    assert request.model_spec.name == "sentiment" and request.model_spec.version.value == 1
    outputs = serving.parse_predict_response(grpc_server(loaded, request))
    np.testing.assert_allclose(outputs["probabilities"], expected.probabilities, atol=1e-5)
    assert outputs["label"].tolist() == expected.labels and outputs["label_id"].dtype == np.int32
    ids = classifier.preprocessor.tokenizer.tokenize(tf.constant(TEXTS))
    by_ids = {"token_ids": ids.to_tensor().numpy().tolist(), "lengths": ids.row_lengths().numpy().tolist()}
    outputs = serving.parse_predict_response(grpc_server(loaded, serving.predict_request("sentiment", by_ids, "ids")))
    np.testing.assert_allclose(outputs["probabilities"], expected.probabilities, atol=1e-5)
    with pytest.raises(ValueError, match=r"every input the same length, received \{'token_ids': 4, 'lengths': 3\}"):
        serving.rest_request({"token_ids": by_ids["token_ids"], "lengths": by_ids["lengths"][:3]})
    with pytest.raises(ValueError, match="TF Serving answered with an error: Servable not found"):
        serving.parse_rest_response('{"error": "Servable not found"}')
    with pytest.raises(ValueError, match=r"`inputs\['token_ids'\]` must be a rectangular array"):
        serving.predict_request("sentiment", {"token_ids": [[1, 2], [3]], "lengths": [2, 1]}, "ids")


def test_rest_bodies_follow_tf_servings_json_format():
    # Bytes that are not UTF-8 travel as {"b64": ...}, as TF Serving's REST API reads binary strings.
    body = serving.rest_request({"texts": [b"caf\xe9", "naïve"]}, "score", columnar=True)
    assert body == {"signature_name": "score", "inputs": {"texts": [{"b64": "Y2Fm6Q=="}, "naïve"]}}
    # Answers as TF Serving writes them (row format: one object per example; columnar: one list per output).
    rows = serving.parse_rest_response({"predictions": [{"label": "positive", "probabilities": [0.1, 0.9]},
                                                        {"label": {"b64": "/w=="}, "probabilities": [0.8, 0.2]}]})
    assert rows["label"].tolist() == ["positive", b"\xff"] and rows["probabilities"].shape == (2, 2)
    columns = serving.parse_rest_response('{"outputs": {"label_id": [1, 0], "lengths": [3, 5]}}')
    assert columns["label_id"].tolist() == [1, 0] and columns["lengths"].tolist() == [3, 5]
    with pytest.raises(ValueError, match=r"must hold `predictions`, `outputs` or `error`, received keys \['result'\]"):
        serving.parse_rest_response({"result": []})


def test_serving_bad_input_gets_an_answer_not_an_error(exported):
    classifier, _, _, loaded = exported
    texts = tf.constant([b"caf\xe9 au lait", b"", b"   ", b"film " * 5000, "naïve".encode()])  # not UTF-8, empty, long
    outputs = loaded.signatures["serving_default"](texts=texts)
    probabilities = outputs["probabilities"].numpy()
    assert probabilities.shape == (5, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert outputs["truncated"].numpy().tolist() == [False, False, False, True, False]  # over 20 tokens
    # The bad byte becomes U+FFFD; the long text is cut to the preprocessor's 20 tokens, as in training.
    np.testing.assert_allclose(probabilities[0], classifier.predict(["caf\ufffd au lait"]).probabilities[0], atol=1e-5)
    np.testing.assert_allclose(probabilities[3], classifier.predict(["film " * 20]).probabilities[0], atol=1e-5)


def test_warmup_records_parse_as_prediction_logs_and_replay(exported):
    _, _, version_dir, loaded = exported
    records = serving.read_warmup_requests(version_dir)
    assert [r.predict_log.request.model_spec.signature_name for r in records] == ["serving_default", "ids"]
    for record in records:
        request = record.predict_log.request
        assert request.model_spec.name == "sentiment"
        outputs = serving.parse_predict_response(grpc_server(loaded, request))
        assert outputs["probabilities"].shape == (3, 2)
    assert tf.make_ndarray(records[0].predict_log.request.inputs["texts"]).tolist()[1] == b"a short text"


def test_op_audit_and_serving_files(exported, tmp_path):
    _, base_dir, version_dir, _ = exported
    extra = pathlib.Path(version_dir) / "assets.extra"
    audit = json.loads((extra / "op_audit.json").read_text())
    assert audit["servable"] and audit["tf_text"] == {} and audit["unknown"] == []  # a word model: core TF only
    assert {"StatefulPartitionedCall", "UnicodeTranscode"} <= set(audit["core"])
    listing = (extra / "saved_model_cli.txt").read_text()
    assert "signature_def['serving_default']" in listing and "signature_def['ids']" in listing
    config = (base_dir / "models.config").read_text()
    assert 'name: "sentiment"' in config and 'base_path: "/models/sentiment"' in config
    assert (base_dir / "models.config").stat().st_mode & 0o777 == 0o644  # a server under another user reads it
    (tmp_path / "two" / "lm" / "1").mkdir(parents=True)
    (tmp_path / "two" / "sst2" / "4").mkdir(parents=True)
    (tmp_path / "two" / "not_a_model").mkdir()
    assert serving.models_config(str(tmp_path / "two")).count("config {") == 2

    class Trimmer(tf.Module):  # an op TF Serving up to 2.19 does not have (tensorflow/serving#2267)
        @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
        def trim(self, ids):
            return text.RoundRobinTrimmer(max_seq_length=3).trim([ids, ids])[0].flat_values

    tf.saved_model.save(Trimmer(), str(tmp_path / "trimmer"))
    audit = serving.audit_ops(str(tmp_path / "trimmer"))
    assert audit["tf_text"] == {"TFText>RoundRobinTrim": "_trimmer_ops.so"} and not audit["servable"]
    assert audit["newer_than_serving"] == {"TFText>RoundRobinTrim": {"tf_text": "2.13.0", "oldest_serving": "2.20.0"}}
