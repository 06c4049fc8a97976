"""Check tfi2i.nets.bicycle against torch versions of the BicycleGAN reference nets.

Two phases, because torch is not a tfi2i dependency and the torch venv has no TensorFlow:

    # 1. with a Python that has torch (see scripts/make_torch_fixtures.py for the venv):
    /work/torchvenv/bin/python scripts/bicycle_torch_reference.py dump /tmp/bicycle_ref
    # 2. with tfi2i's venv:
    python scripts/bicycle_torch_reference.py check /tmp/bicycle_ref

`dump` builds the reference modules below (G_Unet_add_all, G_Unet_add_input, E_ResNet,
E_NLayers, D_NLayersMulti: structure written after junyanz/BicycleGAN models/networks.py,
module for module, in-place activations included), records the parameter counts of the
full-size default configuration (and a few more), and for small configurations random
weights (every parameter and batch-norm statistic non-trivial), inputs and outputs, with
the weights keyed by our Keras layer names. `check` builds the same nets with
`tfi2i.nets.bicycle`, loads those weights and prints one JSON line per net with both
parameter counts and the largest output difference; it exits 1 on any mismatch.
"""

import json
import os
import sys

import numpy as np

# -- phase 1: the torch reference ---------------------------------------------------------------


def torch_reference():
    """The reference modules (a namespace), built lazily so `check` needs no torch."""
    import functools

    import torch
    from torch import nn

    def get_norm_layer(norm):
        if norm == "batch":
            return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
        if norm == "instance":
            return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
        return None

    def get_nl(nl):
        if nl == "relu":
            return functools.partial(nn.ReLU, inplace=True)
        if nl == "lrelu":
            return functools.partial(nn.LeakyReLU, negative_slope=0.2, inplace=True)
        return functools.partial(nn.ELU, inplace=True)

    def upsample_layer(inplanes, outplanes, upsample):
        if upsample == "basic":
            return [nn.ConvTranspose2d(inplanes, outplanes, kernel_size=4, stride=2, padding=1)]
        return [nn.Upsample(scale_factor=2, mode="bilinear"), nn.ReflectionPad2d(1),
                nn.Conv2d(inplanes, outplanes, kernel_size=3, stride=1, padding=0)]

    class UnetBlock(nn.Module):
        def __init__(self, input_nc, outer_nc, inner_nc, submodule=None, outermost=False,
                     innermost=False, norm_layer=None, nl_layer=None, use_dropout=False,
                     upsample="basic"):
            super().__init__()
            self.outermost = outermost
            downconv = [nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1)]
            downrelu = nn.LeakyReLU(0.2, True)
            downnorm = norm_layer(inner_nc) if norm_layer is not None else None
            uprelu = nl_layer()
            upnorm = norm_layer(outer_nc) if norm_layer is not None else None
            if outermost:
                model = downconv + [submodule] + [uprelu] + upsample_layer(
                    inner_nc * 2, outer_nc, upsample) + [nn.Tanh()]
            elif innermost:
                up = [uprelu] + upsample_layer(inner_nc, outer_nc, upsample)
                if upnorm is not None:
                    up += [upnorm]
                model = [downrelu] + downconv + up
            else:
                down = [downrelu] + downconv + ([downnorm] if downnorm is not None else [])
                up = [uprelu] + upsample_layer(inner_nc * 2, outer_nc, upsample)
                if upnorm is not None:
                    up += [upnorm]
                model = down + [submodule] + up + ([nn.Dropout(0.5)] if use_dropout else [])
            self.model = nn.Sequential(*model)

        def forward(self, x):
            if self.outermost:
                return self.model(x)
            return torch.cat([self.model(x), x], 1)

    class G_Unet_add_input(nn.Module):
        def __init__(self, input_nc, output_nc, nz, num_downs, ngf=64, norm_layer=None,
                     nl_layer=None, use_dropout=False, upsample="basic"):
            super().__init__()
            self.nz = nz
            kw = dict(norm_layer=norm_layer, nl_layer=nl_layer, upsample=upsample)
            block = UnetBlock(ngf * 8, ngf * 8, ngf * 8, innermost=True, **kw)
            for _ in range(num_downs - 5):
                block = UnetBlock(ngf * 8, ngf * 8, ngf * 8, block, use_dropout=use_dropout, **kw)
            block = UnetBlock(ngf * 4, ngf * 4, ngf * 8, block, **kw)
            block = UnetBlock(ngf * 2, ngf * 2, ngf * 4, block, **kw)
            block = UnetBlock(ngf, ngf, ngf * 2, block, **kw)
            self.model = UnetBlock(input_nc + nz, output_nc, ngf, block, outermost=True, **kw)

        def forward(self, x, z):
            z_img = z.view(z.size(0), z.size(1), 1, 1).expand(z.size(0), z.size(1), x.size(2),
                                                               x.size(3))
            return self.model(torch.cat([x, z_img], 1))

    class UnetBlock_with_z(nn.Module):
        def __init__(self, input_nc, outer_nc, inner_nc, nz=0, submodule=None, outermost=False,
                     innermost=False, norm_layer=None, nl_layer=None, use_dropout=False,
                     upsample="basic"):
            super().__init__()
            self.outermost, self.innermost, self.nz = outermost, innermost, nz
            downconv = [nn.Conv2d(input_nc + nz, inner_nc, kernel_size=4, stride=2, padding=1)]
            downrelu = nn.LeakyReLU(0.2, True)
            uprelu = nl_layer()
            if outermost:
                down = downconv
                up = [uprelu] + upsample_layer(inner_nc * 2, outer_nc, upsample) + [nn.Tanh()]
            elif innermost:
                down = [downrelu] + downconv
                up = [uprelu] + upsample_layer(inner_nc, outer_nc, upsample)
                if norm_layer is not None:
                    up += [norm_layer(outer_nc)]
            else:
                down = [downrelu] + downconv
                if norm_layer is not None:
                    down += [norm_layer(inner_nc)]
                up = [uprelu] + upsample_layer(inner_nc * 2, outer_nc, upsample)
                if norm_layer is not None:
                    up += [norm_layer(outer_nc)]
                if use_dropout:
                    up += [nn.Dropout(0.5)]
            self.down = nn.Sequential(*down)
            self.submodule = submodule
            self.up = nn.Sequential(*up)

        def forward(self, x, z):
            z_img = z.view(z.size(0), z.size(1), 1, 1).expand(z.size(0), z.size(1), x.size(2),
                                                               x.size(3))
            x_and_z = torch.cat([x, z_img], 1)
            if self.outermost:
                return self.up(self.submodule(self.down(x_and_z), z))
            if self.innermost:
                return torch.cat([self.up(self.down(x_and_z)), x], 1)
            return torch.cat([self.up(self.submodule(self.down(x_and_z), z)), x], 1)

    class G_Unet_add_all(nn.Module):
        def __init__(self, input_nc, output_nc, nz, num_downs, ngf=64, norm_layer=None,
                     nl_layer=None, use_dropout=False, upsample="basic"):
            super().__init__()
            kw = dict(norm_layer=norm_layer, nl_layer=nl_layer, upsample=upsample)
            block = UnetBlock_with_z(ngf * 8, ngf * 8, ngf * 8, nz, None, innermost=True, **kw)
            block = UnetBlock_with_z(ngf * 8, ngf * 8, ngf * 8, nz, block,
                                     use_dropout=use_dropout, **kw)
            for _ in range(num_downs - 6):
                block = UnetBlock_with_z(ngf * 8, ngf * 8, ngf * 8, nz, block,
                                         use_dropout=use_dropout, **kw)
            block = UnetBlock_with_z(ngf * 4, ngf * 4, ngf * 8, nz, block, **kw)
            block = UnetBlock_with_z(ngf * 2, ngf * 2, ngf * 4, nz, block, **kw)
            block = UnetBlock_with_z(ngf, ngf, ngf * 2, nz, block, **kw)
            self.model = UnetBlock_with_z(input_nc, output_nc, ngf, nz, block, outermost=True,
                                          **kw)

        def forward(self, x, z):
            return self.model(x, z)

    def conv3x3(cin, cout):
        return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, outplanes, norm_layer=None, nl_layer=None):
            super().__init__()
            layers = [norm_layer(inplanes)] if norm_layer is not None else []
            layers += [nl_layer(), conv3x3(inplanes, inplanes)]
            if norm_layer is not None:
                layers += [norm_layer(inplanes)]
            layers += [nl_layer(), nn.Sequential(conv3x3(inplanes, outplanes),
                                                 nn.AvgPool2d(kernel_size=2, stride=2))]
            self.conv = nn.Sequential(*layers)
            self.shortcut = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=2),
                                          nn.Conv2d(inplanes, outplanes, kernel_size=1))

        def forward(self, x):
            return self.conv(x) + self.shortcut(x)

    class E_ResNet(nn.Module):
        def __init__(self, input_nc=3, output_nc=1, ndf=64, n_blocks=4, norm_layer=None,
                     nl_layer=None, vaeLike=False):
            super().__init__()
            self.vaeLike = vaeLike
            layers = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1, bias=True)]
            for n in range(1, n_blocks):
                input_ndf, output_ndf = ndf * min(4, n), ndf * min(4, n + 1)
                layers += [BasicBlock(input_ndf, output_ndf, norm_layer, nl_layer)]
            layers += [nl_layer(), nn.AvgPool2d(8)]
            self.fc = nn.Sequential(nn.Linear(output_ndf, output_nc))
            if vaeLike:
                self.fcVar = nn.Sequential(nn.Linear(output_ndf, output_nc))
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            flat = self.conv(x).view(x.size(0), -1)
            if self.vaeLike:
                return self.fc(flat), self.fcVar(flat)
            return self.fc(flat)

    class E_NLayers(nn.Module):
        def __init__(self, input_nc, output_nc=1, ndf=64, n_layers=3, norm_layer=None,
                     nl_layer=None, vaeLike=False):
            super().__init__()
            self.vaeLike = vaeLike
            seq = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1), nl_layer()]
            nf_mult = 1
            for n in range(1, n_layers):
                nf_mult_prev, nf_mult = nf_mult, min(2**n, 4)
                seq += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=4, stride=2,
                                  padding=1)]
                if norm_layer is not None:
                    seq += [norm_layer(ndf * nf_mult)]
                seq += [nl_layer()]
            seq += [nn.AvgPool2d(8)]
            self.conv = nn.Sequential(*seq)
            self.fc = nn.Sequential(nn.Linear(ndf * nf_mult, output_nc))
            if vaeLike:
                self.fcVar = nn.Sequential(nn.Linear(ndf * nf_mult, output_nc))

        def forward(self, x):
            flat = self.conv(x).view(x.size(0), -1)
            if self.vaeLike:
                return self.fc(flat), self.fcVar(flat)
            return self.fc(flat)

    class D_NLayersMulti(nn.Module):
        def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d, num_D=1):
            super().__init__()
            self.num_D = num_D
            if num_D == 1:
                self.model = nn.Sequential(*self.get_layers(input_nc, ndf, n_layers, norm_layer))
            else:
                self.add_module("model_0", nn.Sequential(
                    *self.get_layers(input_nc, ndf, n_layers, norm_layer)))
                self.down = nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
                for i in range(1, num_D):
                    ndf_i = int(round(ndf / (2**i)))
                    self.add_module("model_%d" % i, nn.Sequential(
                        *self.get_layers(input_nc, ndf_i, n_layers, norm_layer)))

        def get_layers(self, input_nc, ndf, n_layers, norm_layer):
            seq = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
                   nn.LeakyReLU(0.2, True)]
            nf_mult = 1
            for n in range(1, n_layers):
                nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
                seq += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=4, stride=2,
                                  padding=1), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
            nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
            seq += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=4, stride=1,
                              padding=1), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
            seq += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=4, stride=1, padding=1)]
            return seq

        def forward(self, x):
            if self.num_D == 1:
                return self.model(x)
            result, down = [], x
            for i in range(self.num_D):
                result.append(getattr(self, "model_%d" % i)(down))
                if i != self.num_D - 1:
                    down = self.down(down)
            return result

    def define_G(cfg):
        cls = G_Unet_add_all if cfg["where_add"] == "all" else G_Unet_add_input
        return cls(cfg["input_nc"], cfg["output_nc"], cfg["nz"], cfg["num_downs"], cfg["ngf"],
                   norm_layer=get_norm_layer(cfg["norm"]), nl_layer=get_nl(cfg["nl"]),
                   use_dropout=cfg["use_dropout"], upsample=cfg["upsample"])

    def define_E(cfg):
        cls = E_ResNet if cfg["kind"] == "resnet" else E_NLayers
        return cls(cfg["input_nc"], cfg["nz"], cfg["nef"], cfg["depth"],
                   norm_layer=get_norm_layer(cfg["norm"]), nl_layer=get_nl("lrelu"),
                   vaeLike=cfg["vae_like"])

    def define_D(cfg):
        return D_NLayersMulti(cfg["input_nc"], cfg["ndf"], cfg["n_layers"],
                              norm_layer=get_norm_layer(cfg["norm"]), num_D=cfg["num_D"])

    return dict(torch=torch, nn=nn, G=define_G, E=define_E, D=define_D,
                UnetBlock=UnetBlock, UnetBlock_with_z=UnetBlock_with_z)


# -- the configurations -----------------------------------------------------------------------

G_DEFAULT = dict(input_nc=3, output_nc=3, nz=8, ngf=64, num_downs=8, norm="instance", nl="relu",
                 use_dropout=False, where_add="all", upsample="basic")
E_DEFAULT = dict(input_nc=3, nz=8, nef=64, kind="resnet", depth=5, norm="instance", vae_like=True)
D_DEFAULT = dict(input_nc=3, ndf=64, n_layers=3, num_D=2, norm="instance")

COUNT_CONFIGS = [
    ("G unet_256 add_all (reference default)", "G", G_DEFAULT),
    ("G unet_256 add_input", "G", dict(G_DEFAULT, where_add="input")),
    ("G unet_128 add_all bilinear", "G", dict(G_DEFAULT, num_downs=7, upsample="bilinear")),
    ("G unet_256 add_all batch", "G", dict(G_DEFAULT, norm="batch")),
    ("E resnet_256 (reference default)", "E", E_DEFAULT),
    ("E resnet_128", "E", dict(E_DEFAULT, depth=4)),
    ("E conv_256", "E", dict(E_DEFAULT, kind="conv", depth=5)),
    ("E resnet_256 batch", "E", dict(E_DEFAULT, norm="batch")),
    ("D basic_256_multi num_D 2 (reference default)", "D", D_DEFAULT),
    ("D basic_128_multi num_D 2 batch", "D", dict(D_DEFAULT, n_layers=2, norm="batch")),
    ("D basic_256_multi num_D 1", "D", dict(D_DEFAULT, num_D=1)),
]

SMALL = dict(ngf=4, nz=3)
PARITY_CONFIGS = [
    ("g_all_basic", "G", dict(G_DEFAULT, num_downs=6, **SMALL), (2, 64, 64)),
    ("g_all_bilinear_batch_elu", "G",
     dict(G_DEFAULT, num_downs=6, upsample="bilinear", norm="batch", nl="elu", **SMALL),
     (2, 64, 64)),
    ("g_input_basic_lrelu", "G", dict(G_DEFAULT, num_downs=6, where_add="input", nl="lrelu",
                                      **SMALL), (2, 64, 128)),
    ("g_input_bilinear_none", "G", dict(G_DEFAULT, num_downs=6, where_add="input",
                                        upsample="bilinear", norm="none", **SMALL), (1, 64, 64)),
    # E at the reference's size (its AvgPool2d(8) needs an 8x8 last map).
    ("e_resnet128", "E", dict(E_DEFAULT, nef=4, nz=3, depth=4), (2, 128, 128)),
    ("e_resnet128_none", "E", dict(E_DEFAULT, nef=4, nz=3, depth=4, norm="none"), (2, 128, 128)),
    ("e_resnet128_batch", "E", dict(E_DEFAULT, nef=4, nz=3, depth=4, norm="batch"),
     (2, 128, 128)),
    ("e_conv128_mu", "E", dict(E_DEFAULT, nef=4, nz=3, kind="conv", depth=4, vae_like=False),
     (2, 128, 128)),
    ("d_multi3", "D", dict(D_DEFAULT, ndf=8, num_D=3), (2, 128, 96)),
    ("d_multi2_odd_batch", "D", dict(D_DEFAULT, ndf=6, norm="batch"), (2, 70, 54)),
]


def keras_weights(kind, net):
    """{our Keras layer name: [arrays in Keras' order]} from a torch reference net."""
    nn = sys.modules["torch.nn"]

    def conv(m):
        # Conv2d (out, in, kh, kw) and ConvTranspose2d (in, out, kh, kw) both to Keras'
        # (kh, kw, in, out) / (kh, kw, out, in): the same transpose.
        return [m.weight.detach().numpy().transpose(2, 3, 1, 0), m.bias.detach().numpy()]

    def bn(m):
        return [t.detach().numpy() for t in (m.weight, m.bias, m.running_mean, m.running_var)]

    def linear(m):
        return [m.weight.detach().numpy().T, m.bias.detach().numpy()]

    def is_conv(m):
        return isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))

    out = {}
    if kind == "G":
        block, level = net.model, 1
        while block is not None:
            children = (list(block.down) + [block.submodule] + list(block.up)
                        if hasattr(block, "down") else list(block.model))
            seen_down = seen_up = False
            nxt = None
            for m in children:
                if m is None:
                    continue
                if m.__class__.__name__.startswith("UnetBlock"):
                    nxt = m
                elif is_conv(m):
                    name = f"down{level}_conv" if not seen_down else f"up{level}_conv"
                    out[name] = conv(m)
                    seen_up, seen_down = seen_down, True
                elif isinstance(m, nn.BatchNorm2d):
                    out[f"up{level}_norm" if seen_up else f"down{level}_norm"] = bn(m)
            block, level = nxt, level + 1
    elif kind == "E":
        out["conv1"] = conv(net.conv[0])
        blocks = [m for m in net.conv if m.__class__.__name__ == "BasicBlock"]
        if blocks:
            for n, b in enumerate(blocks, 1):
                convs = [m for m in b.conv.modules() if is_conv(m)]
                norms = [m for m in b.conv.modules() if isinstance(m, nn.BatchNorm2d)]
                out[f"block{n}_conv1"], out[f"block{n}_conv2"] = conv(convs[0]), conv(convs[1])
                for i, m in enumerate(norms, 1):
                    out[f"block{n}_norm{i}"] = bn(m)
                out[f"block{n}_shortcut_conv"] = conv(b.shortcut[1])
        else:
            convs = [m for m in net.conv if is_conv(m)]
            for i, m in enumerate(convs[1:], 2):
                out[f"conv{i}"] = conv(m)
            norms = [m for m in net.conv if isinstance(m, nn.BatchNorm2d)]
            for i, m in enumerate(norms, 2):
                out[f"norm{i}"] = bn(m)
        out["mu"] = linear(net.fc[0])
        if net.vaeLike:
            out["logvar"] = linear(net.fcVar[0])
    else:
        scales = [net.model] if net.num_D == 1 else [
            getattr(net, f"model_{i}") for i in range(net.num_D)]
        for i, seq in enumerate(scales):
            convs = [m for m in seq if is_conv(m)]
            for j, m in enumerate(convs[:-1], 1):
                out[f"scale{i}_conv{j}"] = conv(m)
            out[f"scale{i}_logits"] = conv(convs[-1])
            for j, m in enumerate([m for m in seq if isinstance(m, nn.BatchNorm2d)], 2):
                out[f"scale{i}_norm{j}"] = bn(m)
    return out


def dump(directory):
    ref = torch_reference()
    torch, nn = ref["torch"], ref["nn"]
    torch.manual_seed(0)
    os.makedirs(directory, exist_ok=True)
    counts = []
    for label, kind, cfg in COUNT_CONFIGS:
        net = ref[kind](cfg)
        # Trainable parameters only (batch-norm running statistics are buffers).
        counts.append(dict(label=label, kind=kind, cfg=cfg,
                           torch=sum(p.numel() for p in net.parameters())))
    parity = []
    rng = np.random.default_rng(0)
    for label, kind, cfg, (batch, h, w) in PARITY_CONFIGS:
        net = ref[kind](cfg)
        with torch.no_grad():
            # Smaller weights without a norm, or activations grow with depth until float32
            # rounding (not the nets) dominates the comparison.
            std = 0.2 if cfg["norm"] != "none" else 0.05
            for p in net.parameters():
                p.copy_(torch.randn_like(p) * std)
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.2)
                    m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
        net.eval()
        nc = cfg["input_nc"]
        x = rng.uniform(-1, 1, (batch, h, w, nc)).astype("float32")
        arrays = {"x": x}
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            if kind == "G":
                z = rng.normal(size=(batch, cfg["nz"])).astype("float32")
                arrays["z"] = z
                y = net(xt, torch.from_numpy(z))
            else:
                y = net(xt)
        ys = list(y) if isinstance(y, (list, tuple)) else [y]
        for i, t in enumerate(ys):
            t = t.numpy()
            arrays[f"y{i}"] = t.transpose(0, 2, 3, 1) if t.ndim == 4 else t
        for name, values in keras_weights(kind, net).items():
            for i, v in enumerate(values):
                arrays[f"w:{name}:{i}"] = v
        np.savez(os.path.join(directory, f"{label}.npz"), **arrays)
        parity.append(dict(label=label, kind=kind, cfg=cfg, outputs=len(ys)))
    with open(os.path.join(directory, "reference.json"), "w") as f:
        json.dump(dict(counts=counts, parity=parity), f, indent=1)
    print(f"wrote {len(counts)} counts and {len(parity)} parity cases to {directory}")


# -- phase 2: tfi2i -----------------------------------------------------------------------------


def build_keras(kind, cfg):
    from tfi2i.nets import bicycle

    if kind == "G":
        return bicycle.unet_with_z(
            input_nc=cfg["input_nc"], output_nc=cfg["output_nc"], nz=cfg["nz"],
            num_downs=cfg["num_downs"], ngf=cfg["ngf"], norm=cfg["norm"], nl=cfg["nl"],
            use_dropout=cfg["use_dropout"], where_add=cfg["where_add"],
            upsample=cfg["upsample"])
    if kind == "E":
        build = bicycle.resnet_encoder if cfg["kind"] == "resnet" else bicycle.nlayers_encoder
        return build(cfg["input_nc"], cfg["nz"], cfg["nef"], cfg["depth"], norm=cfg["norm"],
                     vae_like=cfg["vae_like"])
    return bicycle.multiscale_patchgan(cfg["input_nc"], cfg["ndf"], cfg["n_layers"],
                                       cfg["num_D"], norm=cfg["norm"])


def check(directory):
    import keras

    with open(os.path.join(directory, "reference.json")) as f:
        reference = json.load(f)
    ok = True
    for case in reference["counts"]:
        net = build_keras(case["kind"], case["cfg"])
        ours = sum(int(np.prod(w.shape)) for w in net.trainable_weights)
        ok &= ours == case["torch"]
        print(json.dumps(dict(check="params", label=case["label"], torch=case["torch"],
                              tfi2i=ours, equal=ours == case["torch"])))
        keras.backend.clear_session()
    for case in reference["parity"]:
        arrays = np.load(os.path.join(directory, f"{case['label']}.npz"))
        net = build_keras(case["kind"], case["cfg"])
        weights = {}
        for key in arrays.files:
            if key.startswith("w:"):
                _, name, i = key.split(":")
                weights.setdefault(name, {})[int(i)] = arrays[key]
        with_weights = {layer.name for layer in net.layers if layer.weights}
        missing = with_weights ^ set(weights)
        if missing:
            raise SystemExit(f"{case['label']}: layers without a match: {sorted(missing)}")
        for name, values in weights.items():
            net.get_layer(name).set_weights([values[i] for i in sorted(values)])
        inputs = [arrays["x"], arrays["z"]] if case["kind"] == "G" else arrays["x"]
        ys = net(inputs, training=False)
        ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
        diff = max(float(np.abs(np.asarray(y) - arrays[f"y{i}"]).max())
                   for i, y in enumerate(ys))
        shapes_ok = len(ys) == case["outputs"] and all(
            tuple(y.shape) == arrays[f"y{i}"].shape for i, y in enumerate(ys))
        scale = max(float(np.abs(arrays[f"y{i}"]).max()) for i in range(case["outputs"]))
        good = shapes_ok and diff <= 1e-4 * max(1.0, scale)
        ok &= good
        print(json.dumps(dict(check="outputs", label=case["label"], max_abs_diff=diff,
                              max_abs_output=scale, shapes=[list(y.shape) for y in ys],
                              equal=good)))
        keras.backend.clear_session()
    return ok


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("dump", "check"):
        raise SystemExit("usage: bicycle_torch_reference.py dump|check DIR")
    if sys.argv[1] == "dump":
        dump(sys.argv[2])
    else:
        sys.exit(0 if check(sys.argv[2]) else 1)
