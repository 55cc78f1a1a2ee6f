"""The deprivatization stage of MEKD (Ma et al., CVPR 2024, arXiv 2205.10490): a DCGAN generator
trained on the student side's unlabeled images, weighted by the teacher's confidence on what it
generates, so the student can later learn from generated images and never send its own.

Settings (declared by the loss, kdzoo/losses/mekd.py, which documents the method): ``hard`` (the
teacher answers with its top-1 only: every confidence is 1), ``gen_alpha``, ``gen_steps``,
``gen_batch_size``, ``gen_lr``, ``gen_width``, ``disc_width``, ``grid_per_class``, ``gen_bn_eps``,
``gen_fresh_z``. The product is the trained generator (eval mode, frozen); the artifact a grid of
samples per teacher label, ``samples.png``. Caching, the query budget and the run folder are the
engine's (kdzoo/engine/prepare.py).
"""
from __future__ import annotations

import io
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.utils import save_image

from ..errors import ConfigError
from ..registry import register_stage
from .dcgan import Discriminator, Generator, dcgan_init

# settings the loss may leave out (added after generators were cached), with the values they then take
OPTIONAL = {"gen_bn_eps": 1e-5, "gen_fresh_z": False}


def _setting(settings: dict[str, Any], name: str) -> Any:
    return settings.get(name, OPTIONAL.get(name))


class ModelInput:
    """[-1, 1] generator images -> the normalized inputs the teacher (and student) expect."""

    def __init__(self, bundle: Any, channels: int, device: torch.device) -> None:
        self.mean, self.std = [torch.tensor(list(v) * (channels // len(v)), device=device).view(1, channels, 1, 1)
                               for v in (bundle.mean, bundle.std)]

    def __call__(self, img: Tensor) -> Tensor:
        return ((img + 1) / 2 - self.mean) / self.std


def student_images(ctx: Any) -> Tensor:
    """The student side's images (uint8, in memory): what the GAN learns from."""
    images = getattr(ctx.bundle.train, "images", None)
    if ctx.teacher is None or images is None:
        raise ConfigError(f"{ctx.name}: needs a teacher and an in-memory student-side training split (TensorSplit)")
    return images


@register_stage("deprivatize")
class Deprivatize:
    """A generator G: R^C -> image and a discriminator D, trained against each other on the student-side
    images; G's loss adds gen_alpha * L_IM, the teacher's confidence on G(z) times -log D(G(z))."""

    def build(self, settings: dict[str, Any], ctx: Any) -> nn.Module:
        b = ctx.bundle
        return Generator(b.num_classes, student_images(ctx).shape[1], b.image_size, settings["gen_width"],
                         _setting(settings, "gen_bn_eps")).to(ctx.device)

    def queries_needed(self, settings: dict[str, Any], ctx: Any) -> int:
        return settings["gen_steps"] * settings["gen_batch_size"] + self._grid_size(settings, ctx)

    @staticmethod
    def _grid_size(settings: dict[str, Any], ctx: Any) -> int:
        return 4 * settings["grid_per_class"] * ctx.bundle.num_classes

    def train(self, gen: nn.Module, settings: dict[str, Any], ctx: Any) -> tuple[int, dict[str, bytes]]:
        images, teacher, n0 = student_images(ctx), ctx.teacher, ctx.teacher.queries
        to_input = ModelInput(ctx.bundle, images.shape[1], ctx.device)
        self._gan(gen, settings, ctx, images, to_input)
        tiles = self._grid(gen, settings, ctx, to_input)
        png = io.BytesIO()
        save_image(tiles, png, nrow=settings["grid_per_class"], padding=2, format="png")
        return teacher.queries - n0, {"samples.png": png.getvalue()}

    @staticmethod
    def _gan(gen: nn.Module, settings: dict[str, Any], ctx: Any, images: Tensor, to_input: ModelInput) -> None:
        dev, teacher, bs, latent = ctx.device, ctx.teacher, settings["gen_batch_size"], gen.fc.in_features
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(ctx.seed)
            disc = Discriminator(images.shape[1], ctx.bundle.image_size, settings["disc_width"],
                                 _setting(settings, "gen_bn_eps")).to(dev)
            gen.apply(dcgan_init), disc.apply(dcgan_init)
            gen.train().requires_grad_(True)
            opt_g = torch.optim.Adam(gen.parameters(), lr=settings["gen_lr"], betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(disc.parameters(), lr=settings["gen_lr"], betas=(0.5, 0.999))
            real_all = images.to(dev)
            ones, zeros = torch.ones(bs, device=dev), torch.zeros(bs, device=dev)
            for _ in range(settings["gen_steps"]):
                real = real_all[torch.randint(0, len(real_all), (bs,), device=dev)].float() / 127.5 - 1
                fake = gen(torch.randn(bs, latent, device=dev))
                d_loss = (F.binary_cross_entropy_with_logits(disc(real), ones)
                          + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
                opt_d.zero_grad(set_to_none=True), d_loss.backward(), opt_d.step()
                if _setting(settings, "gen_fresh_z"):  # the authors' DCGAN: the G step draws its own batch
                    fake = gen(torch.randn(bs, latent, device=dev))
                t = teacher(to_input(fake.detach()))
                conf = torch.ones_like(t[:, 0]) if settings["hard"] else torch.softmax(t, 1).amax(1)
                d_fake = disc(fake)
                im = -(conf * torch.log(torch.sigmoid(d_fake) + 1e-5)).mean()
                g_loss = F.binary_cross_entropy_with_logits(d_fake, ones) + settings["gen_alpha"] * im
                opt_g.zero_grad(set_to_none=True), g_loss.backward(), opt_g.step()
        gen.eval().requires_grad_(False)

    @staticmethod
    @torch.no_grad()
    def _grid(gen: nn.Module, settings: dict[str, Any], ctx: Any, to_input: ModelInput) -> Tensor:
        """Tiles in [0, 1] for torchvision's grid, one row per teacher label of samples G(z), most confident
        first (``grid_per_class`` columns, black where G gave fewer), at twice their size. G takes no class
        input, so rows come from asking the teacher (counted) about 4 x k x classes samples."""
        k, classes = settings["grid_per_class"], ctx.bundle.num_classes
        g = torch.Generator(device=ctx.device).manual_seed(ctx.seed + 12345)
        imgs = gen(torch.randn(4 * k * classes, gen.fc.in_features, generator=g, device=g.device))
        conf, label = torch.softmax(ctx.teacher(to_input(imgs)), 1).max(1)
        shown = imgs[:, :3] if imgs.shape[1] >= 3 else imgs[:, :1]
        tiles, order = torch.zeros(classes * k, *shown.shape[1:]), conf.argsort(descending=True).tolist()
        for cls in range(classes):
            picks = [i for i in order if label[i] == cls][:k]
            for j, i in enumerate(picks):
                tiles[cls * k + j] = (shown[i].cpu() + 1) / 2
        return F.interpolate(tiles, scale_factor=2, mode="nearest")
