"""Translate images with a tfi2i model served by TF Serving, over gRPC.

    pip install 'tfi2i[serving]'      # tensorflow-serving-api
    python export/grpc_client.py --server=localhost:8500 --model=facades \
        --output=out/ label1.png label2.jpg

Images are sent encoded to the `translate_bytes` signature (any sizes, mixed
in one request); the translated PNGs are written to --output under the
inputs' names. `--signature=translate_bytes_BtoA` picks another direction.
"""

import argparse
import os
import sys

from tfi2i.export import serving


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+", help="JPEG or PNG files to translate.")
    parser.add_argument("--server", default="localhost:8500", help="TF Serving's gRPC address.")
    parser.add_argument("--model", required=True, help="The served model's --model_name.")
    parser.add_argument("--signature", default="translate_bytes",
                        help="A translate_bytes* signature.")
    parser.add_argument("--version", type=int, default=None, help="Model version (latest).")
    parser.add_argument("--output", default=".", help="Folder for the translated PNGs.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds per request.")
    args = parser.parse_args()
    if serving.signature_kind(args.signature) != "bytes":
        parser.error("this client sends encoded images: use a translate_bytes* signature.")

    try:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc
    except ImportError:
        sys.exit("This client needs tensorflow-serving-api: pip install 'tfi2i[serving]'.")

    encoded = []
    for path in args.images:
        with open(path, "rb") as f:
            encoded.append(f.read())
    request = serving.predict_request(encoded, args.model, args.signature, args.version)
    with grpc.insecure_channel(args.server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, args.timeout)
        except grpc.RpcError as e:
            # Bad requests come back as INVALID_ARGUMENT with the signature's message.
            sys.exit(f"{args.server}: {e.code().name}: {e.details()}")
    os.makedirs(args.output, exist_ok=True)
    for path, png in zip(args.images, serving.parse_predict_response(response, args.signature)):
        target = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
        with open(target, "wb") as f:
            f.write(png)
        print(target)


if __name__ == "__main__":
    main()
