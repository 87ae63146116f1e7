"""TF Serving: warmup records, a model config, an op audit of exports, and a small REST / gRPC client.

TF Serving runs a SavedModel from C++: every op in its graphs must be
registered in the server binary, which links core TensorFlow and TF Text's
op library (`@org_tensorflow_text//tensorflow_text:ops_lib`). `audit_ops`
lists an export's op types (graph and function library) and sorts them into
core TensorFlow, TF Text (with the op library that registers each) and
unknown, and flags TF Text ops newer than the TF Text that stock Serving
images embed.

The client builds what the server takes and reads what it answers, for the
signatures `textlstm.export` writes:

- REST (`POST /v1/models/NAME[/versions/N]:predict`): `rest_request` makes the
  row format `{"signature_name": ..., "instances": [...]}` or the columnar
  `{"signature_name": ..., "inputs": {...}}`; `parse_rest_response` reads
  `{"predictions": ...}` or `{"outputs": ...}` back into arrays by output name.
- gRPC (`PredictionService/Predict`): `predict_request` makes a
  `PredictRequest` (tensorflow-serving-api protos); `parse_predict_response`
  reads a `PredictResponse`.

Example:
>>> rest_request({"texts": ["a fine film", "dull"]}, "serving_default")
{'signature_name': 'serving_default', 'instances': [{'texts': 'a fine film'}, {'texts': 'dull'}]}
"""

import base64
import glob
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from textlstm.runs import write_text

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many
# TF Serving builds TF Text from source (`org_tensorflow_text` in tensorflow_serving/workspace.bzl) and links
# its `ops_lib`: releases 2.12.0 to 2.19.1 embed TF Text 2.12.1, release 2.20.0 embeds TF Text 2.20.0.
SERVING_TF_TEXT = "2.12.1"

# The TF Text ops of the installed TF Text (2.21.1) that TF Text 2.12.1 lacks: op -> (the first TF Text
# release with it, the oldest TF Serving release that has it). Checked against the op names in the 2.12.1,
# 2.13.0 and later wheels' op libraries and TF Text's `ops_lib` build target (`trimmer_ops_cc` and
# `utf8_binarize_op_cc` join it in v2.13.0); tensorflow/serving#2267 is the RoundRobinTrim report.
NEWER_TF_TEXT_OPS = {
    "TFText>RoundRobinGenerateMasks": ("2.13.0", "2.20.0"),
    "TFText>RoundRobinTrim": ("2.13.0", "2.20.0"),
    "TFText>Utf8Binarize": ("2.13.0", "2.20.0"),
}


# Requests and responses ------------------------------------------------------------


def _rows(inputs):
    """The batch size of `inputs` (a dict of equal-length sequences), checked."""
    sizes = {name: len(values) for name, values in inputs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"`inputs` must hold one batch: every input the same length, received {sizes}.")
    return next(iter(sizes.values()))


def _json_string(value):
    """A string for JSON: bytes that are UTF-8 as text, other bytes as TF Serving's `{"b64": ...}`."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode("ascii")}


def _as_array(values):
    """`np.asarray`, keeping a mix of str and non-ASCII bytes as an object array."""
    try:
        return np.asarray(values)
    except UnicodeDecodeError:
        return np.asarray(values, dtype=object)


def to_jsonable(values):
    """An array as nested lists for JSON; strings as text, or `{"b64": ...}` where they are not UTF-8."""
    values = _as_array(values)
    if values.dtype.kind in "SO" and values.size:
        return np.vectorize(_json_string, otypes=[object])(values).tolist()
    return values.tolist()


def _array(values):
    """A JSON value (nested lists) as a numpy array, `{"b64": ...}` strings as bytes."""
    return _as_array(_from_json(values))


def _from_json(value):
    """The inverse of `_json_string` over nested lists: `{"b64": ...}` back to bytes."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def rest_request(inputs, signature_name="serving_default", columnar=False):
    """The JSON body of a TF Serving REST predict request.

    Args:
        inputs: dict input name -> list (one entry per example), e.g.
            `{"texts": [...]}` or `{"token_ids": [[...]], "lengths": [...]}`.
        signature_name: the signature to call.
        columnar: False for the row format (`instances`), True for the columnar one (`inputs`).
    """
    rows = _rows(inputs)
    inputs = {name: to_jsonable(values) for name, values in inputs.items()}
    if columnar:
        return {"signature_name": signature_name, "inputs": inputs}
    return {"signature_name": signature_name,
            "instances": [{name: values[row] for name, values in inputs.items()} for row in range(rows)]}


def parse_rest_response(body):
    """A REST predict response (dict or JSON text) -> dict output name -> numpy array (str; bytes if not UTF-8)."""
    body = json.loads(body) if isinstance(body, (str, bytes)) else body
    if "error" in body:
        raise ValueError(f"TF Serving answered with an error: {body['error']}")
    if "outputs" in body:
        outputs = body["outputs"]
        if not isinstance(outputs, dict):
            return {"output": _array(outputs)}
        return {name: _array(value) for name, value in outputs.items()}
    if "predictions" not in body:
        raise ValueError(f"`body` must hold `predictions`, `outputs` or `error`, received keys {sorted(body)}.")
    predictions = body["predictions"]
    if predictions and isinstance(predictions[0], dict):
        return {name: _array([row[name] for row in predictions]) for name in predictions[0]}
    return {"output": _array(predictions)}


def predict_request(model_name, inputs, signature_name="serving_default", version=None):
    """A gRPC `PredictRequest` for `inputs` (see `rest_request`): strings as tf.string, integers as int32."""
    _rows(inputs)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, values in inputs.items():
        try:
            array = np.asarray(values, dtype=object if name == "texts" else np.int32)
        except ValueError:
            raise ValueError(f"`inputs[{name!r}]` must be a rectangular array (pad token ids to one length), "
                             f"received {values!r}.") from None
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=tf.string if name == "texts" else tf.int32))
    return request


def parse_predict_response(response):
    """A gRPC `PredictResponse` -> dict output name -> numpy array (str; bytes if not UTF-8)."""
    outputs = {}
    for name, proto in response.outputs.items():
        array = tf.make_ndarray(proto)
        outputs[name] = _array(to_jsonable(array)) if array.dtype.kind in "SO" else array
    return outputs


# Files beside an export ------------------------------------------------------------


def write_warmup_requests(export_dir, model_name, requests):
    """Writes TF Serving's warmup file: one `PredictionLog` per (signature name, inputs), at most 1,000.

    Args:
        export_dir: a version directory (`NAME/VERSION`); the file goes to its `assets.extra/`.
        requests: list of (signature_name, inputs dict) pairs.
    """
    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(f"`requests` must hold at most {MAX_WARMUP_RECORDS} requests, received {len(requests)}.")
    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
                request=predict_request(model_name, inputs, signature_name)))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir):
    """The `PredictionLog` records of an export's warmup file."""
    records = []
    for record in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)):
        records.append(prediction_log_pb2.PredictionLog.FromString(record.numpy()))
    return records


def models_config(base_dir):
    """TF Serving's `--model_config_file` text for every model folder under `base_dir` (as the server sees them).

    The paths are those inside the container of the README's `docker run`, where `base_dir` is mounted at
    `/models`.
    """
    names = sorted(name for name in os.listdir(base_dir) if glob.glob(os.path.join(base_dir, name, "[0-9]*")))
    entries = "".join(f"  config {{\n    name: \"{name}\"\n    base_path: \"/models/{name}\"\n"
                      f"    model_platform: \"tensorflow\"\n  }}\n" for name in names)
    return f"model_config_list {{\n{entries}}}\n"


# Op audit ------------------------------------------------------------------------------


# Runs in a fresh process: core TensorFlow first, then TF Text's op libraries one by one, as the server binary
# links them. Whether an op is registered (by TF Text's libraries too) has no public API: `tf.raw_ops` lists
# core ops only, so this reads TensorFlow's `op_def_registry` module.
_REGISTRY_SCRIPT = """
import glob, json, os, sys
import tensorflow as tf
from tensorflow.python.framework import op_def_registry
ops, ops_dir = json.loads(sys.argv[1]), sys.argv[2]
core = [op for op in ops if op_def_registry.get(op) is not None]
tf_text = {}
for path in sorted(glob.glob(os.path.join(ops_dir, "_*.so"))):
    tf.load_op_library(path)
    for op in ops:
        if op not in core and op not in tf_text and op_def_registry.get(op) is not None:
            tf_text[op] = os.path.basename(path)
print(json.dumps({"core": core, "tf_text": tf_text}))
"""


def _registrations(ops):
    """Which of `ops` core TensorFlow registers, and which TF Text op library registers each of the others."""
    ops_dir = os.path.join(importlib.util.find_spec("tensorflow_text").submodule_search_locations[0], "python", "ops")
    result = subprocess.run([sys.executable, "-c", _REGISTRY_SCRIPT, json.dumps(sorted(ops)), ops_dir],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"the op registry check failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def export_op_types(export_dir):
    """Every op type in an export's graphs, function library included."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    ops, functions = set(), set()
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return ops - functions  # a node may call a library function by its name


def audit_ops(export_dir):
    """Sorts an export's op types by who registers them, as TF Serving's binary must.

    Returns:
        A dict: `core` (sorted op names of core TensorFlow), `tf_text` (op ->
        its TF Text library), `unknown` (registered by neither: the server
        would refuse the model), `newer_than_serving` (TF Text ops that TF
        Text 2.12.1, embedded in TF Serving 2.12 to 2.19, lacks: op ->
        {"tf_text": the TF Text release that added it, "oldest_serving":
        the oldest Serving release with it}) and `servable` (no unknown op
        and no TF Text op newer than 2.12.1). Core ops are checked against
        the TensorFlow installed here: a Serving image built on an older
        TensorFlow may lack newer core ops (`DisableCopyOnRead`, for
        instance), so serve with an image at least as new as the
        TensorFlow that wrote the export.
    """
    ops = export_op_types(export_dir)
    registered = _registrations(ops)
    core, tf_text = sorted(registered["core"]), dict(sorted(registered["tf_text"].items()))
    unknown = sorted(ops - set(core) - set(tf_text))
    newer = {op: {"tf_text": NEWER_TF_TEXT_OPS[op][0], "oldest_serving": NEWER_TF_TEXT_OPS[op][1]}
             for op in tf_text if op in NEWER_TF_TEXT_OPS}
    return {"core": core, "tf_text": tf_text, "unknown": unknown, "newer_than_serving": newer,
            "servable": not unknown and not newer}


def write_models_config(base_dir):
    """Writes `base_dir/models.config` (see `models_config`) atomically, readable by all; returns its path."""
    path = os.path.join(base_dir, "models.config")
    write_text(models_config(base_dir), path)
    os.chmod(path, 0o644)  # the server may run as another user
    return path
