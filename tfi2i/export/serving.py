"""Clients of an exported model under TF Serving: building requests, parsing responses.

REST (no extra dependency):

    body = rest_request(images)                         # serving_default, uint8
    body = rest_request([jpeg_bytes], "translate_bytes")  # any sizes, as {"b64": ...}
    # POST json.dumps(body) to http://HOST:8501/v1/models/NAME:predict
    outputs = parse_rest_response(json.loads(reply), "translate_bytes")

gRPC (needs tensorflow-serving-api: `pip install tfi2i[serving]`):

    request = predict_request(images, "facades")
    response = stub.Predict(request, timeout)
    outputs = parse_predict_response(response, "serving_default")

Which kind of data a signature takes follows from its name (see
`tfi2i.export.savedmodel`): `translate_bytes*` takes and returns encoded
images, `translate_float*` float32 in [-1, 1], the others uint8.
"""

import base64

import numpy as np

# Input and output names of each kind of signature. The `_bytes` suffix makes
# TF Serving's REST API encode those values as {"b64": ...}.
TENSOR_NAMES = {"uint8": "images", "bytes": "image_bytes", "float": "images"}


class ServingError(RuntimeError):
    """TF Serving answered with an error (a bad request, or an unknown model)."""


def signature_kind(signature_name):
    """"bytes", "float" or "uint8": what the signature of this name takes and returns."""
    if signature_name.startswith("translate_bytes"):
        return "bytes"
    if signature_name.startswith("translate_float"):
        return "float"
    return "uint8"


def _batch(inputs, kind):
    """The request's batch: a list of bytes, or one array [N, H, W, C]."""
    if kind == "bytes":
        items = [inputs] if isinstance(inputs, bytes) else list(inputs)
        if not all(isinstance(item, bytes) for item in items):
            raise TypeError("translate_bytes takes encoded images (bytes), e.g. a JPEG file's "
                            "contents.")
        return items
    if isinstance(inputs, (list, tuple)):
        shapes = {np.shape(image) for image in inputs}
        if len(shapes) > 1:
            raise ValueError(f"Images of different sizes {sorted(shapes)} cannot share one "
                             f"batch tensor; send them encoded to translate_bytes instead.")
    dtype = np.uint8 if kind == "uint8" else np.float32
    array = np.asarray(inputs)
    if array.ndim == 3:
        array = array[None]
    return array.astype(dtype, copy=False)


def rest_request(inputs, signature_name="serving_default"):
    """The JSON body (a dict) of a REST predict request, in row ("instances") format.

    Args:
        inputs: for `translate_bytes*`, encoded images (bytes or a list of
            bytes); otherwise images [H, W, C], a batch [N, H, W, C] or a list
            of same-size images (uint8, or float32 in [-1, 1] for
            `translate_float*`).
        signature_name: the signature to call.
    """
    kind = signature_kind(signature_name)
    batch = _batch(inputs, kind)
    if kind == "bytes":
        instances = [{"b64": base64.b64encode(item).decode("ascii")} for item in batch]
    else:
        instances = batch.tolist()
    return {"signature_name": signature_name, "instances": instances}


def parse_rest_response(body, signature_name="serving_default"):
    """The outputs of a REST predict response (a parsed JSON dict).

    Returns:
        A list of PNG bytes for `translate_bytes*`; otherwise an array
        [N, H, W, C] (uint8, or float32 for `translate_float*`).

    Raises:
        ServingError: the response is an error, with the server's message.
    """
    if "error" in body:
        raise ServingError(body["error"])
    if "predictions" not in body:
        raise ServingError(f"Not a predict response: keys {sorted(body)}.")
    predictions = body["predictions"]
    kind = signature_kind(signature_name)
    if kind == "bytes":
        return [base64.b64decode(item["b64"]) for item in predictions]
    return np.asarray(predictions, np.uint8 if kind == "uint8" else np.float32)


def _serving_apis():
    try:
        from tensorflow_serving.apis import predict_pb2
    except ImportError as e:
        raise ImportError("The gRPC client needs tensorflow-serving-api: "
                          "pip install 'tfi2i[serving]' (or tensorflow-serving-api).") from e
    return predict_pb2


def predict_request(inputs, model_name, signature_name="serving_default", version=None):
    """A gRPC `PredictRequest` for `PredictionService.Predict`.

    Args:
        inputs: as for `rest_request`.
        model_name: the served model's name (TF Serving's --model_name).
        signature_name: the signature to call.
        version: a model version; default the latest.
    """
    import tensorflow as tf

    predict_pb2 = _serving_apis()
    kind = signature_kind(signature_name)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    batch = _batch(inputs, kind)
    if kind == "bytes":
        batch = np.array(batch, dtype=object)
    request.inputs[TENSOR_NAMES[kind]].CopyFrom(tf.make_tensor_proto(batch))
    return request


def parse_predict_response(response, signature_name="serving_default"):
    """The outputs of a gRPC `PredictResponse`, as `parse_rest_response` returns them."""
    import tensorflow as tf

    kind = signature_kind(signature_name)
    outputs = tf.make_ndarray(response.outputs[TENSOR_NAMES[kind]])
    return list(outputs) if kind == "bytes" else outputs
