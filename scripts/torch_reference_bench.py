"""The PyTorch reference's training step, timed: the baseline `benchmark.py --compare_torch` beats.

Run with a Python that has torch (torch is not a tfi2i dependency; see
scripts/make_torch_fixtures.py for the venv):

    /work/torchvenv/bin/python scripts/torch_reference_bench.py --method=pix2pix \
        --image_size=256 --batch_size=1 --steps=10

`scripts/benchmark.py --compare_torch` runs it for you with the same options and prints both
step times and their ratio. The nets are the reference's (junyanz/pytorch-CycleGAN-and-pix2pix
models/networks.py): the generators of make_torch_fixtures.py and `NLayerDiscriminator` below,
with the reference's init (normal 0.02). The step is the reference's `optimize_parameters`,
loss for loss:

- pix2pix: G forward; D update on cat(A, G(A).detach()) and cat(A, B) (mean of the two,
  vanilla GAN = BCE with logits unless --gan_mode=lsgan); then G update with D frozen, GAN +
  lambda_L1 * L1.
- cyclegan: four G forwards (G_A(A), G_B(G_A(A)), G_B(B), G_A(G_B(B))); G update with both Ds
  frozen: GAN (lsgan) + cycle (lambda_A, lambda_B) + identity (lambda_identity); then each D on
  its real images and a 50-image pool's fakes.

Adam 2e-4, betas (0.5, 0.999) as the reference's defaults. Inputs are random tensors held in
memory, as in benchmark.py, so both numbers are the model's step alone. torch keeps its default
thread count (the machine's cores). Prints one JSON line with the keys of benchmark.py's line
plus `params`, so that the two can be checked to be the same architecture.
"""

import argparse
import json
import random
import resource
import statistics
import time

import torch
from torch import nn

from make_torch_fixtures import _uses_bias, build, get_norm_layer


class NLayerDiscriminator(nn.Module):
    """The reference's PatchGAN discriminator (networks.NLayerDiscriminator), module for module."""

    def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d):
        super().__init__()
        use_bias = _uses_bias(norm_layer)
        kw, padw = 4, 1
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
                    nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2,
                                   padding=padw, bias=use_bias),
                         norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1,
                               padding=padw, bias=use_bias),
                     norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x):
        return self.model(x)


def init_weights(net, gain=0.02):
    """The reference's init_weights(init_type='normal')."""
    def init(m):
        name = m.__class__.__name__
        if hasattr(m, "weight") and ("Conv" in name or "Linear" in name):
            nn.init.normal_(m.weight.data, 0.0, gain)
            if m.bias is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif "BatchNorm2d" in name:
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.constant_(m.bias.data, 0.0)
    net.apply(init)
    return net


def define_G(args):
    return init_weights(build(dict(netG=args.netG, norm=args.norm, ngf=args.ngf,
                                   use_dropout=args.use_dropout, input_nc=args.input_nc,
                                   output_nc=args.output_nc)))


def define_D(input_nc, args):
    if args.netD == "basic":
        n_layers = 3
    elif args.netD == "n_layers":
        n_layers = args.n_layers_D
    else:
        raise SystemExit(f"torch_reference_bench: netD {args.netD!r} is not in this reference "
                         "(basic or n_layers)")
    return init_weights(NLayerDiscriminator(input_nc, args.ndf, n_layers,
                                            get_norm_layer(args.norm)))


class GANLoss(nn.Module):
    """The reference's GANLoss for 'vanilla' and 'lsgan'."""

    def __init__(self, gan_mode):
        super().__init__()
        if gan_mode == "vanilla":
            self.loss = nn.BCEWithLogitsLoss()
        elif gan_mode == "lsgan":
            self.loss = nn.MSELoss()
        else:
            raise SystemExit(f"torch_reference_bench: gan_mode {gan_mode!r} is not timed here")

    def forward(self, prediction, target_is_real):
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        return self.loss(prediction, target)


def set_requires_grad(nets, flag):
    for net in nets:
        for p in net.parameters():
            p.requires_grad = flag


class ImagePool:
    """The reference's ImagePool: past fakes, each query half new, half from the buffer."""

    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, images):
        out = []
        for image in images:
            image = image.detach()[None]
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def adam(params, args):
    return torch.optim.Adam(params, lr=args.lr, betas=(args.beta1, 0.999))


def pix2pix(args):
    net_g = define_G(args)
    net_d = define_D(args.input_nc + args.output_nc, args)
    criterion, l1 = GANLoss(args.gan_mode), nn.L1Loss()
    opt_g, opt_d = adam(net_g.parameters(), args), adam(net_d.parameters(), args)

    def step(real_a, real_b):
        fake_b = net_g(real_a)
        set_requires_grad([net_d], True)
        opt_d.zero_grad()
        loss_d_fake = criterion(net_d(torch.cat((real_a, fake_b), 1).detach()), False)
        loss_d_real = criterion(net_d(torch.cat((real_a, real_b), 1)), True)
        ((loss_d_fake + loss_d_real) * 0.5).backward()
        opt_d.step()
        set_requires_grad([net_d], False)
        opt_g.zero_grad()
        loss_g = (criterion(net_d(torch.cat((real_a, fake_b), 1)), True)
                  + l1(fake_b, real_b) * args.lambda_L1)
        loss_g.backward()
        opt_g.step()

    return [net_g, net_d], step


def cyclegan(args):
    g_a, g_b = define_G(args), define_G(args)
    d_a, d_b = define_D(args.output_nc, args), define_D(args.input_nc, args)
    criterion, l1 = GANLoss(args.gan_mode), nn.L1Loss()
    opt_g = adam(list(g_a.parameters()) + list(g_b.parameters()), args)
    opt_d = adam(list(d_a.parameters()) + list(d_b.parameters()), args)
    pool_a, pool_b = ImagePool(args.pool_size), ImagePool(args.pool_size)

    def backward_d(net_d, real, fake):
        loss = (criterion(net_d(real), True) + criterion(net_d(fake.detach()), False)) * 0.5
        loss.backward()

    def step(real_a, real_b):
        fake_b = g_a(real_a)
        rec_a = g_b(fake_b)
        fake_a = g_b(real_b)
        rec_b = g_a(fake_a)
        set_requires_grad([d_a, d_b], False)
        opt_g.zero_grad()
        loss = (criterion(d_a(fake_b), True) + criterion(d_b(fake_a), True)
                + l1(rec_a, real_a) * args.lambda_A + l1(rec_b, real_b) * args.lambda_B)
        if args.lambda_identity > 0:
            loss = (loss + l1(g_a(real_b), real_b) * args.lambda_B * args.lambda_identity
                    + l1(g_b(real_a), real_a) * args.lambda_A * args.lambda_identity)
        loss.backward()
        opt_g.step()
        set_requires_grad([d_a, d_b], True)
        opt_d.zero_grad()
        backward_d(d_a, real_b, pool_b.query(fake_b))
        backward_d(d_b, real_a, pool_a.query(fake_a))
        opt_d.step()

    return [g_a, g_b, d_a, d_b], step


METHODS = {"pix2pix": pix2pix, "cyclegan": cyclegan}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="pix2pix", choices=sorted(METHODS))
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads; 0 keeps torch's default")
    parser.add_argument("--netG", default=None)
    parser.add_argument("--netD", default="basic")
    parser.add_argument("--n_layers_D", type=int, default=3)
    parser.add_argument("--norm", default=None)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--use_dropout", default=None, choices=["true", "false"])
    parser.add_argument("--gan_mode", default=None)
    parser.add_argument("--input_nc", type=int, default=3)
    parser.add_argument("--output_nc", type=int, default=3)
    parser.add_argument("--lambda_L1", type=float, default=100.0)
    parser.add_argument("--lambda_A", type=float, default=10.0)
    parser.add_argument("--lambda_B", type=float, default=10.0)
    parser.add_argument("--lambda_identity", type=float, default=0.5)
    parser.add_argument("--pool_size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--beta1", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # The reference's per-model defaults (pix2pix_model.py / cycle_gan_model.py).
    paired = args.method == "pix2pix"
    args.netG = args.netG or ("unet_256" if paired else "resnet_9blocks")
    args.norm = args.norm or ("batch" if paired else "instance")
    args.gan_mode = args.gan_mode or ("vanilla" if paired else "lsgan")
    args.use_dropout = (paired if args.use_dropout is None else args.use_dropout == "true")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    nets, step = METHODS[args.method](args)
    for net in nets:
        net.train()
    shape = (args.batch_size, args.input_nc, args.image_size, args.image_size)
    real_a = torch.rand(shape) * 2 - 1
    real_b = torch.rand((args.batch_size, args.output_nc) + shape[2:]) * 2 - 1
    for _ in range(args.warmup):
        step(real_a, real_b)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step(real_a, real_b)
        times.append(time.perf_counter() - start)

    total = sum(times)
    print(json.dumps({
        "framework": "torch", "torch": torch.__version__, "method": args.method,
        "image_size": args.image_size, "batch_size": args.batch_size,
        "steps_per_sec": round(len(times) / total, 4),
        "images_per_sec": round(len(times) * args.batch_size / total, 4),
        "step_time_median_s": round(statistics.median(times), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for net in nets for p in net.parameters()),
        "netG": args.netG, "netD": args.netD, "norm": args.norm, "steps": args.steps,
    }))


if __name__ == "__main__":
    main()
