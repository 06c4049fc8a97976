"""Make the torch fixtures of tests/test_import.py: small reference generators and their outputs.

Run once with a Python that has torch (not the project's venv; torch is not a tfi2i
dependency, and CI runs the tests from the committed fixtures alone):

    python3 -m venv /work/torchvenv
    /work/torchvenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /work/torchvenv/bin/pip install numpy pillow
    /work/torchvenv/bin/python scripts/make_torch_fixtures.py \
        --image ../shared/data/facades/test/1.jpg --out tests/data/torch

`ResnetGenerator`, `ResnetBlock`, `UnetGenerator` and `UnetSkipConnectionBlock` below follow
the structure of the reference (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py)
module for module, so that `state_dict()` has the reference's key names exactly
(`model.1.weight`, `model.10.conv_block.5.weight`, `model.model.1.model.3.model.1.weight`,
...), and so that the reference's in-place activations (the U-Net's skip connections carry
the LeakyReLU'd input) are part of what the outputs record. `norm_layer` is the reference's
`get_norm_layer`: BatchNorm2d(affine=True, track_running_stats=True), or
InstanceNorm2d(affine=False, track_running_stats=False), with conv biases only before an
instance norm.

Written to --out (all small: ngf 2, one 64x64 image):

    input.npy                 uint8 [64, 64, 3]: a crop of --image, the nets' input
    resnet.npy, unet.npy      float32 [64, 64, 3]: the torch outputs (eval mode, in [-1, 1])
    resnet_zip.pth            resnet_6blocks, ngf 2, instance norm: torch >= 1.6 zip format
    resnet_legacy.pth         the same weights in the legacy format, with the instance-norm
                              running_mean/running_var/num_batches_tracked keys that
                              checkpoints of torch < 0.4 carry (the reference's loader
                              patches them away: "patch InstanceNorm checkpoints prior to 0.4")
    unet_zip.pth              unet_64, ngf 2, batch norm, dropout: zip format, with every key
                              prefixed `module.` as a DataParallel save would be
    unet_legacy.pth           the same weights in the legacy format, plain keys
    fixtures.json             the options of each net, for the tests

The weights are random (not the reference's init, which would leave biases at zero, batch
norm at its identity statistics and outputs near zero): every parameter and running statistic
matters to the outputs, so a mapping that swaps or drops one fails the parity test.
"""

import argparse
import functools
import json
import os
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image
from torch import nn


# -- the reference generators (structure and key names as in models/networks.py) ------------

def get_norm_layer(norm_type):
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    raise ValueError(norm_type)


def _uses_bias(norm_layer):
    if isinstance(norm_layer, functools.partial):
        return norm_layer.func == nn.InstanceNorm2d
    return norm_layer == nn.InstanceNorm2d


class ResnetBlock(nn.Module):
    def __init__(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        super().__init__()
        assert padding_type == "reflect"
        conv_block = [nn.ReflectionPad2d(1),
                      nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
                      norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            conv_block += [nn.Dropout(0.5)]
        conv_block += [nn.ReflectionPad2d(1),
                       nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
                       norm_layer(dim)]
        self.conv_block = nn.Sequential(*conv_block)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, norm_layer=nn.BatchNorm2d,
                 use_dropout=False, n_blocks=6, padding_type="reflect"):
        super().__init__()
        use_bias = _uses_bias(norm_layer)
        model = [nn.ReflectionPad2d(3),
                 nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
                 norm_layer(ngf), nn.ReLU(True)]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1,
                                bias=use_bias),
                      norm_layer(ngf * mult * 2), nn.ReLU(True)]
        mult = 2 ** n_downsampling
        for i in range(n_blocks):
            model += [ResnetBlock(ngf * mult, padding_type=padding_type, norm_layer=norm_layer,
                                  use_dropout=use_dropout, use_bias=use_bias)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3,
                                         stride=2, padding=1, output_padding=1, bias=use_bias),
                      norm_layer(int(ngf * mult / 2)), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3)]
        model += [nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
        model += [nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False,
                 innermost=False, norm_layer=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        use_bias = _uses_bias(norm_layer)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1,
                             bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                        padding=1)
            model = [downconv] + [submodule] + [uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1,
                                        bias=use_bias)
            model = [downrelu, downconv] + [uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                        padding=1, bias=use_bias)
            model = [downrelu, downconv, downnorm] + [submodule] + [uprelu, upconv, upnorm]
            if use_dropout:
                model += [nn.Dropout(0.5)]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d,
                 use_dropout=False):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, input_nc=None, submodule=None,
                                        norm_layer=norm_layer, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, input_nc=None, submodule=block,
                                            norm_layer=norm_layer, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, input_nc=None, submodule=block,
                                        norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, input_nc=None, submodule=block,
                                        norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, input_nc=None, submodule=block,
                                        norm_layer=norm_layer)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True, norm_layer=norm_layer)

    def forward(self, x):
        return self.model(x)


# -- fixtures --------------------------------------------------------------------------------

FIXTURES = {
    "resnet": dict(netG="resnet_6blocks", norm="instance", ngf=2, use_dropout=False,
                   input_nc=3, output_nc=3),
    "unet": dict(netG="unet_64", norm="batch", ngf=2, use_dropout=True, input_nc=3,
                 output_nc=3),
}


def build(options):
    norm_layer = get_norm_layer(options["norm"])
    if options["netG"].startswith("resnet"):
        blocks = int(options["netG"].split("_")[1][0])
        return ResnetGenerator(options["input_nc"], options["output_nc"], options["ngf"],
                               norm_layer, options["use_dropout"], n_blocks=blocks)
    num_downs = {"unet_64": 6, "unet_32": 5, "unet_128": 7, "unet_256": 8}[options["netG"]]
    return UnetGenerator(options["input_nc"], options["output_nc"], num_downs, options["ngf"],
                         norm_layer, options["use_dropout"])


def randomize(net, generator):
    """Random weights, biases and batch-norm statistics at scales that keep tanh unsaturated."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                weight = module.weight
                # Fan-in of the output: Conv2d (O, I, k, k); ConvTranspose2d (I, O, k, k)
                # spreads each input over k*k/stride^2 outputs.
                fan_in = (weight.shape[1] * weight.shape[2] * weight.shape[3]
                          if isinstance(module, nn.Conv2d)
                          else weight.shape[0] * weight.shape[2] * weight.shape[3] / 4)
                weight.copy_(torch.randn(weight.shape, generator=generator) / fan_in ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(1 + 0.2 * torch.randn(n, generator=generator))
                module.bias.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.3 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.num_batches_tracked.fill_(1234)


def with_instance_norm_stats(net, state, generator):
    """`state` plus the instance-norm buffers an old torch wrote (and the reference ignores).

    torch < 0.4's InstanceNorm2d kept running_mean/running_var buffers although it normalised
    with each image's statistics; 0.4.1 added num_batches_tracked. Checkpoints saved then
    carry these keys, which the reference's `__patch_instance_norm_state_dict` deletes before
    loading. Random values: if a converter used them, its outputs would be wrong.
    """
    out = OrderedDict()
    out.update(state)
    for name, module in net.named_modules():
        if not isinstance(module, nn.InstanceNorm2d):
            continue
        c = module.num_features
        out[f"{name}.running_mean"] = 0.5 * torch.randn(c, generator=generator)
        out[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=generator)
        out[f"{name}.num_batches_tracked"] = torch.tensor(4321)
    return out


def load_crop(path, size):
    """A centred square crop of `path`, resized to size x size, uint8 HWC RGB."""
    image = Image.open(path).convert("RGB")
    # Facades AB files are photo | label side by side: take the photo (left half).
    width, height = image.size
    if width == 2 * height:
        image = image.crop((0, 0, height, height))
    side = min(image.size)
    left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size),
                                                                    Image.BICUBIC)
    return np.asarray(image, np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", required=True, help="an image (e.g. a facades AB file)")
    parser.add_argument("--out", default="tests/data/torch")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)

    image = load_crop(args.image, args.size)
    np.save(os.path.join(args.out, "input.npy"), image)
    x = torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]

    info = {"torch": torch.__version__, "image": os.path.basename(args.image),
            "size": args.size, "nets": FIXTURES}
    for name, options in FIXTURES.items():
        net = build(options)
        randomize(net, generator)
        net.eval()
        with torch.no_grad():
            y = net(x.clone())[0].permute(1, 2, 0).numpy().astype(np.float32)
        np.save(os.path.join(args.out, f"{name}.npy"), y)
        print(f"{name}: {sum(p.numel() for p in net.parameters())} parameters, output "
              f"min {y.min():.3f} max {y.max():.3f} std {y.std():.3f}")

        state = net.state_dict()
        if name == "resnet":
            zip_state = state
            legacy_state = with_instance_norm_stats(net, state, generator)
        else:
            zip_state = OrderedDict((f"module.{k}", v) for k, v in state.items())
            legacy_state = state
        torch.save(zip_state, os.path.join(args.out, f"{name}_zip.pth"))
        torch.save(legacy_state, os.path.join(args.out, f"{name}_legacy.pth"),
                   _use_new_zipfile_serialization=False)

    with open(os.path.join(args.out, "fixtures.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print(f"wrote {args.out}: {total / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
