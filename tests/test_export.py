"""SavedModel and TFLite export: signatures, TF Serving's loader, clients, bad requests."""

import base64
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.export import VerificationError, export_generators, load
from tfi2i.export import serving
from tfi2i.export.savedmodel import keras_reference, verify_savedmodel
from tfi2i.export.tflite import export_tflite, load_sample_images
from tfi2i.nets import define_G, size_divisor

# saved_model_cli ships with TensorFlow: the script beside this interpreter, or its module
# when TensorFlow comes from another environment.
SAVED_MODEL_CLI = [os.path.join(os.path.dirname(sys.executable), "saved_model_cli")]
if not os.path.isfile(SAVED_MODEL_CLI[0]):
    SAVED_MODEL_CLI = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
CONFIG = {"method": "pix2pix", "netG": "unet_32", "ngf": 8, "crop_size": 64, "input_nc": 3,
          "output_nc": 3, "direction": "AtoB"}


def tiny_G(netG="unet_32", norm="batch"):
    """A small generator whose outputs span [-1, 1] (the default init gives ~0: too easy)."""
    return define_G(netG, 3, 3, ngf=8, norm=norm, use_dropout=True, init_type="kaiming")


def smooth_images(count, height, width, channels=3, seed=0):
    """uint8 images that look more like photos than noise does."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 5, 7, channels)).astype(np.float32)
    return np.clip(tf.image.resize(coarse, (height, width), "bicubic").numpy(), 0, 255).astype(
        np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(generator, export base dir, report) of a pix2pix-like U-Net exported once."""
    keras.utils.set_random_seed(1)
    G = tiny_G()
    base = tmp_path_factory.mktemp("export") / "facades"
    report = export_generators({"AtoB": G}, size_divisor("unet_32"), CONFIG, base)
    return G, base, report


def test_layout_config_and_variables_stored_once(exported):
    G, base, report = exported
    assert sorted(os.listdir(base)) == ["1"]  # no temporary folder left behind
    version_dir = base / "1"
    assert (version_dir / "saved_model.pb").is_file()
    config = json.loads((version_dir / "config.json").read_text())
    assert config["netG"] == "unet_32" and config["export"]["size_divisor"] == 32
    assert config["export"]["generators"] == {"AtoB": {
        "uint8": "serving_default", "bytes": "translate_bytes", "float": "translate_float"}}
    # Each variable once: ExportArchive would store them twice (2x).
    assert report["variables_bytes"] < 1.05 * report["keras_weights_bytes"] + 20_000
    assert max(report["max_abs_diff"].values()) <= 1


def test_versions_increase_and_existing_version_is_refused(exported, tmp_path):
    G, base, _ = exported
    other = tmp_path / "m"
    shutil.copytree(base, other)
    report = export_generators({"AtoB": G}, 32, CONFIG, other, verify=False)
    assert report["version"] == 2 and (other / "2" / "saved_model.pb").is_file()
    with pytest.raises(UserError, match="already exists"):
        export_generators({"AtoB": G}, 32, CONFIG, other, version=2, verify=False)


def test_verification_fails_loudly_on_a_mismatch(exported):
    _, base, _ = exported
    with pytest.raises(VerificationError, match="differs from the Keras generator"):
        verify_savedmodel(str(base / "1"), {"AtoB": tiny_G()}, 32)


def test_failed_verification_publishes_no_version(exported, tmp_path, monkeypatch):
    from tfi2i.export import savedmodel
    from tfi2i.export.translator import find_savedmodel

    G, base, _ = exported
    other = tmp_path / "m"
    shutil.copytree(base, other)  # version 1, as TF Serving would be serving it
    # A SavedModel that does not reproduce the generator, as the real check sees it:
    # the Keras reference it compares against is off by 0.01.
    reference = savedmodel.keras_reference
    monkeypatch.setattr(savedmodel, "keras_reference", lambda *args: reference(*args) + 0.01)
    with pytest.raises(VerificationError, match="not published"):
        export_generators({"AtoB": G}, 32, CONFIG, other)
    # No version 2: what TF Serving and tfi2i.load pick up is still version 1. The
    # failed export stays in a hidden temporary folder for inspection.
    assert sorted(n for n in os.listdir(other) if not n.startswith(".")) == ["1"]
    assert find_savedmodel(other) == str(other / "1")
    monkeypatch.setattr(savedmodel, "keras_reference", reference)
    assert export_generators({"AtoB": G}, 32, CONFIG, other, verify=False)["version"] == 2


def test_saved_model_cli_show_lists_the_signatures(exported):
    _, base, _ = exported
    out = subprocess.run([*SAVED_MODEL_CLI, "show", "--all", "--dir", str(base / "1")],
                         capture_output=True, text=True, check=True).stdout
    for key, dtype in [("serving_default", "DT_UINT8"), ("translate_bytes", "DT_STRING"),
                       ("translate_float", "DT_FLOAT")]:
        block = out.split(f"signature_def['{key}']")[1].split("signature_def[")[0]
        assert dtype in block and "tensorflow/serving/predict" in block


@pytest.mark.parametrize("key", ["serving_default", "translate_float", "translate_bytes"])
def test_saved_model_cli_run_executes_every_signature(exported, tmp_path, key):
    G, base, _ = exported
    images = smooth_images(2, 37, 45)  # not multiples of 32: padded and cropped inside
    name, inputs = {
        "serving_default": ("images", images),
        "translate_float": ("images", images / np.float32(127.5) - 1),
        "translate_bytes": ("image_bytes", np.array([tf.io.encode_png(i).numpy() for i in images],
                                                    object)),
    }[key]
    np.save(tmp_path / "x.npy", inputs, allow_pickle=True)
    subprocess.run([*SAVED_MODEL_CLI, "run", "--dir", str(base / "1"), "--tag_set", "serve",
                    "--signature_def", key, "--inputs", f"{name}={tmp_path}/x.npy",
                    "--outdir", str(tmp_path / "out")], capture_output=True, check=True)
    outputs = np.load(tmp_path / "out" / f"{name}.npy", allow_pickle=True)
    expected = keras_reference(G, images, 32)
    if key == "translate_float":
        assert np.abs(outputs - expected).max() < 1e-4
        return
    if key == "translate_bytes":
        outputs = np.stack([tf.io.decode_png(png).numpy() for png in outputs])
    assert outputs.shape == images.shape and outputs.dtype == np.uint8
    assert np.abs(outputs - (expected + 1) * 127.5).max() <= 0.501  # rounding only


def test_in_process_signatures_match_keras_at_odd_sizes(exported):
    G, base, _ = exported
    loaded = tf.saved_model.load(str(base / "1"))
    images = smooth_images(3, 50, 70, seed=3)
    expected = keras_reference(G, images, 32)
    floats = loaded.signatures["translate_float"](images=images / 127.5 - 1.0)["images"]
    assert np.abs(floats.numpy() - expected).max() < 1e-4
    # translate_bytes takes a batch of mixed sizes and formats.
    small = smooth_images(1, 20, 33, seed=4)[0]
    encoded = [tf.io.encode_jpeg(images[0], quality=100).numpy(), tf.io.encode_png(small).numpy()]
    pngs = loaded.signatures["translate_bytes"](image_bytes=encoded)["image_bytes"].numpy()
    decoded = [tf.io.decode_png(p).numpy() for p in pngs]
    assert decoded[0].shape == (50, 70, 3) and decoded[1].shape == (20, 33, 3)
    expected_small = (keras_reference(G, small[None], 32)[0] + 1) * 127.5
    assert np.abs(decoded[1] - expected_small).max() <= 0.5 + 1e-3


BAD_REQUESTS = [
    ("serving_default", np.zeros([37, 45, 3], np.uint8), "expected a batch of images"),
    ("serving_default", np.zeros([1, 37, 45, 4], np.uint8), "must have 3 channels"),
    ("serving_default", np.zeros([0, 37, 45, 3], np.uint8), "empty batch"),
    ("serving_default", np.zeros([1, 0, 45, 3], np.uint8), "at least 1x1"),
    ("translate_float", np.zeros([2], np.float32), "expected a batch of images"),
    ("translate_bytes", np.array([b"GIF89a not ours"], object), "not a JPEG or PNG"),
    ("translate_bytes", np.array([], object), "empty batch"),
    ("translate_bytes", np.array([[b"x"]], object), "expected a vector"),
]


def test_bad_requests_fail_with_a_message_and_the_server_goes_on(exported):
    G, base, _ = exported
    truncated_png = tf.io.encode_png(smooth_images(1, 8, 8)[0]).numpy()[:30]
    good = smooth_images(1, 32, 32)
    # TF Serving's loader: a session over the SavedModel's graph.
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(base / "1"))

        def call(key, value):
            signature = meta_graph.signature_def[key]
            (tensor_in,) = signature.inputs.values()
            (tensor_out,) = signature.outputs.values()
            return session.run(tensor_out.name, {tensor_in.name: value})

        for key, value, message in BAD_REQUESTS:
            with pytest.raises(tf.errors.InvalidArgumentError, match=message):
                call(key, value)
        # A truncated PNG passes the magic-number check; the decoder refuses it.
        with pytest.raises(tf.errors.InvalidArgumentError, match="PNG"):
            call("translate_bytes", np.array([truncated_png], object))
        # The same session still serves good requests.
        assert call("serving_default", good).shape == (1, 32, 32, 3)


def test_two_generators_export_named_signatures(tmp_path):
    keras.utils.set_random_seed(2)
    G_AB, G_BA = tiny_G("unet_32", "instance"), tiny_G("unet_32", "instance")
    # A BtoA run: its own direction is the default, though config.json sorts AtoB first.
    report = export_generators({"BtoA": G_BA, "AtoB": G_AB}, 32,
                               {**CONFIG, "method": "cycle_gan"}, tmp_path / "m")
    assert set(report["signatures"]) == {
        "serving_default", "translate_bytes", "translate_float", "AtoB", "BtoA",
        "translate_bytes_AtoB", "translate_bytes_BtoA", "translate_float_AtoB",
        "translate_float_BtoA"}
    loaded = tf.saved_model.load(report["path"])
    images = smooth_images(1, 30, 42)
    expected = {name: keras_reference(G, images, 32) for name, G in [("AtoB", G_AB),
                                                                     ("BtoA", G_BA)]}
    # The two generators differ by far more than the tolerances: a swap would show.
    assert np.abs(expected["AtoB"] - expected["BtoA"]).mean() > 0.1
    translator = load(tmp_path / "m")  # both directions share one translator
    assert translator.directions == ["BtoA", "AtoB"]
    for name in ("AtoB", "BtoA"):
        out = loaded.signatures[f"translate_float_{name}"](images=images / 127.5 - 1.0)["images"]
        assert np.abs(out.numpy() - expected[name]).max() < 1e-4, name
        grey = (expected[name] + 1) * 127.5
        uint8 = loaded.signatures[name](images=images)["images"].numpy()
        assert np.abs(uint8 - grey).max() <= 0.501, name  # rounding only
        png = loaded.signatures[f"translate_bytes_{name}"](
            image_bytes=[tf.io.encode_png(images[0]).numpy()])["image_bytes"].numpy()[0]
        assert np.abs(tf.io.decode_png(png).numpy() - grey[0]).max() <= 0.501, name
        assert np.abs(translator.translate(images[0], name) - grey[0]).max() <= 0.501, name
    default = loaded.signatures["serving_default"](images=images)["images"].numpy()
    assert np.array_equal(default, loaded.signatures["BtoA"](images=images)["images"].numpy())
    assert np.array_equal(translator.translate(images[0]),
                          translator.translate(images[0], "BtoA"))


# -- clients ------------------------------------------------------------------

def fake_rest_predict(loaded, body):
    """What TF Serving's REST predict does with a JSON body (row format), in process."""
    body = json.loads(body)
    key = body.get("signature_name", "serving_default")
    signature = loaded.signatures[key]
    (name, spec), = signature.structured_input_signature[1].items()
    rows = [base64.b64decode(row["b64"]) if isinstance(row, dict) else row
            for row in body["instances"]]
    value = np.array(rows, object) if spec.dtype == tf.string else np.array(
        rows, spec.dtype.as_numpy_dtype)
    try:
        (out_name, out), = signature(**{name: tf.constant(value)}).items()
    except tf.errors.InvalidArgumentError as e:
        return json.dumps({"error": e.message})
    # Outputs named *_bytes come back base64-encoded.
    predictions = ([{"b64": base64.b64encode(v).decode()} for v in out.numpy()]
                   if out_name.endswith("_bytes") else out.numpy().tolist())
    return json.dumps({"predictions": predictions})


def test_rest_requests_and_responses_round_trip(exported):
    G, base, _ = exported
    loaded = tf.saved_model.load(str(base / "1"))
    images = smooth_images(2, 40, 36, seed=5)
    expected = keras_reference(G, images, 32)

    body = json.dumps(serving.rest_request(images))
    outputs = serving.parse_rest_response(json.loads(fake_rest_predict(loaded, body)))
    assert outputs.dtype == np.uint8 and np.abs(outputs - (expected + 1) * 127.5).max() <= 0.501

    body = json.dumps(serving.rest_request(images / 127.5 - 1.0, "translate_float"))
    outputs = serving.parse_rest_response(json.loads(fake_rest_predict(loaded, body)),
                                          "translate_float")
    assert outputs.dtype == np.float32 and np.abs(outputs - expected).max() < 1e-4

    jpeg = tf.io.encode_jpeg(images[0], quality=95).numpy()
    body = json.dumps(serving.rest_request([jpeg], "translate_bytes"))
    (png,) = serving.parse_rest_response(json.loads(fake_rest_predict(loaded, body)),
                                         "translate_bytes")
    assert tf.io.decode_png(png).shape == (40, 36, 3)


def test_rest_errors_and_mixed_sizes(exported):
    _, base, _ = exported
    loaded = tf.saved_model.load(str(base / "1"))
    body = json.dumps(serving.rest_request([b"not an image"], "translate_bytes"))
    with pytest.raises(serving.ServingError, match="not a JPEG or PNG"):
        serving.parse_rest_response(json.loads(fake_rest_predict(loaded, body)),
                                    "translate_bytes")
    with pytest.raises(ValueError, match="translate_bytes"):
        serving.rest_request([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)])


def test_grpc_client_against_the_savedmodel(exported, tmp_path):
    """export/grpc_client.py against a PredictionService that runs the SavedModel in process."""
    pytest.importorskip("tensorflow_serving.apis", reason="tensorflow-serving-api not installed "
                        "(pip install 'tfi2i[serving]')")
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    G, base, _ = exported
    loaded = tf.saved_model.load(str(base / "1"))

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
            arguments = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            try:
                outputs = signature(**arguments)
            except tf.errors.InvalidArgumentError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
            response = predict_pb2.PredictResponse()
            for k, v in outputs.items():
                response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        images = [smooth_images(1, 40, 36, seed=6)[0], smooth_images(1, 21, 50, seed=7)[0]]
        paths = []
        for i, image in enumerate(images):
            paths.append(str(tmp_path / f"in{i}.png"))
            tf.io.write_file(paths[-1], tf.io.encode_png(image))
        client = [sys.executable, os.path.join(os.path.dirname(__file__), "..", "export",
                                                "grpc_client.py"),
                  f"--server=127.0.0.1:{port}", "--model=facades", f"--output={tmp_path}/out"]
        subprocess.run([*client, *paths], check=True, capture_output=True)
        for i, image in enumerate(images):
            output = tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / f"in{i}.png")))
            expected = (keras_reference(G, image[None], 32)[0] + 1) * 127.5
            assert np.abs(output.numpy() - expected).max() <= 0.501
        # A bad request: the signature's message reaches the client; the server goes on.
        (tmp_path / "bad.png").write_bytes(b"not an image")
        result = subprocess.run([*client, str(tmp_path / "bad.png")], capture_output=True,
                                text=True)
        assert result.returncode != 0 and "INVALID_ARGUMENT" in result.stderr
        assert "not a JPEG or PNG" in result.stderr
        subprocess.run([*client, paths[0]], check=True, capture_output=True)
    finally:
        server.stop(None)


# -- TFLite -------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory):
    """A folder of real-looking images: facades label maps when present, else made here."""
    folder = tmp_path_factory.mktemp("samples")
    source = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "facades",
                          "train")
    from PIL import Image
    if os.path.isdir(source):
        for name in sorted(os.listdir(source))[:12]:
            with Image.open(os.path.join(source, name)) as image:
                image.crop((256, 0, 512, 256)).resize((64, 64)).save(folder / f"{name}.png")
    else:
        for i, image in enumerate(smooth_images(12, 64, 64, seed=10)):
            Image.fromarray(image).save(folder / f"{i}.png")
    return folder


# (mean, max) abs diff allowed for the quantized variants against Keras, on an image
# of another size than the export checked them on, through load(). Measured on these
# saturated random-init nets (harder on quantization than a trained one; see
# test_learning.py for those): unet_32 float16 1.7e-4 / 1.6e-3, dynamic 4.6e-3 / 0.046;
# resnet_6blocks float16 4.4e-4 / 5.3e-3, dynamic 0.024 / 0.20. The limits are about
# twice those, below the export's own check where it matters (TOLERANCES: float16
# max 0.05, mean 5e-3; dynamic mean 0.05 and no max).
QUANTIZED_LIMITS = {
    "unet_32": {"float16": (4e-4, 4e-3), "dynamic": (0.01, 0.1)},
    "resnet_6blocks": {"float16": (1e-3, 0.012), "dynamic": (0.045, 0.4)},
}


@pytest.mark.parametrize("netG,norm", [("unet_32", "batch"), ("resnet_6blocks", "instance")])
def test_tflite_variants_match_keras_at_any_size(tmp_path, sample_folder, netG, norm):
    keras.utils.set_random_seed(3)
    G = tiny_G(netG, norm)
    divisor = size_divisor(netG)
    samples = {"AtoB": load_sample_images(sample_folder, 64, 3, 12)}
    info = export_tflite({"AtoB": G}, divisor, CONFIG, tmp_path,
                         quantize=["none", "float16", "dynamic", "int8"], sample_images=samples)
    files = info["files"]
    assert set(files) == {"AtoB_float32.tflite", "AtoB_float16.tflite", "AtoB_dynamic.tflite",
                          "AtoB_int8.tflite"}
    sizes = {f: entry["bytes"] for f, entry in files.items()}
    assert sizes["AtoB_float16.tflite"] < 0.6 * sizes["AtoB_float32.tflite"]
    assert sizes["AtoB_int8.tflite"] < 0.4 * sizes["AtoB_float32.tflite"]
    assert files["AtoB_float32.tflite"]["max_abs_diff"] < 1e-3
    assert files["AtoB_float16.tflite"]["mean_abs_diff"] < 5e-3
    assert files["AtoB_int8.tflite"]["mean_abs_diff"] < 0.1
    # Input size is dynamic: another size (and reflect padding done outside) through load().
    translator = load(tmp_path / "tflite" / "AtoB_float32.tflite")
    image = smooth_images(1, 40, 72, seed=7)
    expected = keras_reference(G, image, divisor)
    assert np.abs(translator.translate(image / 127.5 - 1.0) - expected).max() < 1e-3
    for quantize, (mean_limit, max_limit) in QUANTIZED_LIMITS[netG].items():
        translator = load(tmp_path / "tflite" / f"AtoB_{quantize}.tflite")
        diff = np.abs(translator.translate(image / 127.5 - 1.0) - expected)
        print(f"{netG} {quantize}: mean abs diff {diff.mean():.3g}, max {diff.max():.3g}")
        assert diff.mean() < mean_limit and diff.max() < max_limit, (
            quantize, float(diff.mean()), float(diff.max()))


def test_failed_tflite_verification_keeps_the_verified_file(tmp_path, monkeypatch):
    from tfi2i.export import tflite

    keras.utils.set_random_seed(4)
    G1, G2 = tiny_G(), tiny_G()
    export_tflite({"AtoB": G1}, 32, CONFIG, tmp_path, quantize=["none"])
    folder = tmp_path / "tflite"
    published, listing = (folder / "AtoB_float32.tflite").read_bytes(), sorted(os.listdir(folder))
    # G2's file fails its check (a limit nothing meets): it must not replace G1's, which
    # config.json describes as verified and load() would serve.
    monkeypatch.setitem(tflite.TOLERANCES, "none", {"max_abs_diff": -1.0})
    with pytest.raises(VerificationError, match="differs from the Keras generator"):
        export_tflite({"AtoB": G2}, 32, CONFIG, tmp_path, quantize=["none"])
    assert (folder / "AtoB_float32.tflite").read_bytes() == published
    assert sorted(os.listdir(folder)) == listing  # and no temporary file left behind
    image = smooth_images(1, 32, 32, seed=8) / np.float32(127.5) - 1
    np.testing.assert_allclose(load(folder / "AtoB_float32.tflite").translate(image),
                               keras_reference(G1, image, 32), atol=1e-3)


def test_int8_needs_sample_images(tmp_path):
    with pytest.raises(UserError, match="--sample_images"):
        export_tflite({"AtoB": tiny_G()}, 32, CONFIG, tmp_path, quantize=["int8"])
