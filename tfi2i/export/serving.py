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
images, `translate_float*` float32 in [-1, 1], the others uint8. A multimodal
model's `translate_code*` signatures also take `codes` (float32 [N or 1,
latent_dim]), its `translate_style*` ones `style_images` (a batch [N or 1, h, w,
C] of the target domain), and `style_code*` takes `style_images` alone and
returns their `codes`:

    body = rest_request(images, "translate_code", codes=np.random.randn(1, 8))
    body = rest_request(images, "translate_style", style_images=reference[None])
"""

import base64

import numpy as np

# Input and output names of each kind of signature. The `_bytes` suffix makes
# TF Serving's REST API encode those values as {"b64": ...}.
TENSOR_NAMES = {"uint8": "images", "bytes": "image_bytes", "float": "images"}
# A signature name is its kind's prefix, alone (the default generator) or + "_<direction>";
# longer prefixes first.
_PREFIXES = (("translate_float_code", "code_float"), ("translate_float_style", "style_float"),
             ("translate_code", "code_uint8"), ("translate_style", "style_uint8"),
             ("style_code", "style_code"), ("translate_bytes", "bytes"),
             ("translate_float", "float"))
# The inputs besides the images of the multimodal kinds, and the outputs of every kind.
EXTRA_INPUTS = {"code_uint8": "codes", "code_float": "codes", "style_uint8": "style_images",
                "style_float": "style_images"}
OUTPUT_NAMES = {**TENSOR_NAMES, "code_uint8": "images", "code_float": "images",
                "style_uint8": "images", "style_float": "images", "style_code": "codes"}


class ServingError(RuntimeError):
    """TF Serving answered with an error (a bad request, or an unknown model)."""


def signature_kind(signature_name):
    """What the signature of this name takes and returns: "bytes", "float", "uint8", or a
    multimodal kind ("code_uint8", "code_float", "style_uint8", "style_float",
    "style_code")."""
    for prefix, kind in _PREFIXES:
        if signature_name == prefix or signature_name.startswith(prefix + "_"):
            return kind
    return "uint8"


def _image_dtype(kind):
    return np.float32 if kind.endswith("float") or kind == "style_code" else np.uint8


def _request_inputs(inputs, kind, codes, style_images):
    """{input name: value} of a request (a list of bytes or arrays)."""
    extra = EXTRA_INPUTS.get(kind)
    given = {"codes": codes, "style_images": style_images}
    for name, value in given.items():
        if value is not None and name != extra:
            raise TypeError(f"{name} go to the translate_code* / translate_style* signatures "
                            f"of a multimodal model, not to a {kind} one.")
    if kind == "style_code":
        return {"style_images": _batch(inputs, "style_code")}
    request = {TENSOR_NAMES.get(kind, "images"): _batch(inputs, kind)}
    if extra == "codes":
        if codes is None:
            raise TypeError("A translate_code* signature needs codes [N or 1, latent_dim].")
        request["codes"] = np.atleast_2d(np.asarray(codes, np.float32))
    elif extra == "style_images":
        if style_images is None:
            raise TypeError("A translate_style* signature needs style_images.")
        request["style_images"] = _batch(style_images, kind)
    return request


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
    dtype = _image_dtype(kind)
    array = np.asarray(inputs)
    if array.ndim == 3:
        array = array[None]
    return array.astype(dtype, copy=False)


def rest_request(inputs, signature_name="serving_default", codes=None, style_images=None):
    """The JSON body (a dict) of a REST predict request.

    Row ("instances") format for one input; columnar ("inputs") format for the multimodal
    signatures with two, whose second may hold one entry for the whole batch.

    Args:
        inputs: for `translate_bytes*`, encoded images (bytes or a list of
            bytes); otherwise images [H, W, C], a batch [N, H, W, C] or a list
            of same-size images (uint8, or float32 in [-1, 1] for
            `translate_float*`); for `style_code*`, style images (float32).
        signature_name: the signature to call.
        codes: for `translate_code*`, [N or 1, latent_dim] (or one code [latent_dim]).
        style_images: for `translate_style*`, style images [N or 1, h, w, C] as `inputs`.
    """
    kind = signature_kind(signature_name)
    request = _request_inputs(inputs, kind, codes, style_images)
    if kind == "bytes":
        instances = [{"b64": base64.b64encode(item).decode("ascii")}
                     for item in request["image_bytes"]]
        return {"signature_name": signature_name, "instances": instances}
    if len(request) == 1:
        (batch,) = request.values()
        return {"signature_name": signature_name, "instances": batch.tolist()}
    return {"signature_name": signature_name,
            "inputs": {name: value.tolist() for name, value in request.items()}}


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
    # Row requests are answered with "predictions", columnar ones with "outputs".
    predictions = body.get("predictions", body.get("outputs"))
    if predictions is None:
        raise ServingError(f"Not a predict response: keys {sorted(body)}.")
    kind = signature_kind(signature_name)
    if kind == "bytes":
        return [base64.b64decode(item["b64"]) for item in predictions]
    return np.asarray(predictions, _image_dtype(kind) if kind != "style_code" else np.float32)


def _serving_apis():
    try:
        from tensorflow_serving.apis import predict_pb2
    except ImportError as e:
        raise ImportError("The gRPC client needs tensorflow-serving-api: "
                          "pip install 'tfi2i[serving]' (or tensorflow-serving-api).") from e
    return predict_pb2


def predict_request(inputs, model_name, signature_name="serving_default", version=None,
                    codes=None, style_images=None):
    """A gRPC `PredictRequest` for `PredictionService.Predict`.

    Args:
        inputs: as for `rest_request`.
        model_name: the served model's name (TF Serving's --model_name).
        signature_name: the signature to call.
        version: a model version; default the latest.
        codes, style_images: as for `rest_request`.
    """
    import tensorflow as tf

    predict_pb2 = _serving_apis()
    kind = signature_kind(signature_name)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in _request_inputs(inputs, kind, codes, style_images).items():
        if kind == "bytes":
            value = np.array(value, dtype=object)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def parse_predict_response(response, signature_name="serving_default"):
    """The outputs of a gRPC `PredictResponse`, as `parse_rest_response` returns them."""
    import tensorflow as tf

    kind = signature_kind(signature_name)
    outputs = tf.make_ndarray(response.outputs[OUTPUT_NAMES[kind]])
    return list(outputs) if kind == "bytes" else outputs
