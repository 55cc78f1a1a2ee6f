"""MEKD's deprivatization stage: train (or reuse from the cache) the generator that emulates the
teacher's mapping, write its samples next to the run, and feed the student generated batches.

The loss itself (its math and defaults) is in mekd.py; this module holds the GAN training, the
cache, the sample grid and the generated-data loader it needs (Ma et al., CVPR 2024, arXiv 2205.10490).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import AccessError, ConfigError
from ._dcgan import Discriminator, Generator, dcgan_init, write_png

if TYPE_CHECKING:  # only for annotations: mekd.py imports this module
    from .mekd import MEKD

GEN_SETTINGS = ("gen_alpha", "gen_steps", "gen_batch_size", "gen_lr", "gen_width", "disc_width", "grid_per_class")


class GeneratedLoader:
    """The student's data: (G(z) normalized for the models, dummy labels, index), fresh z per step, seeded."""
    deterministic = False

    def __init__(self, loss: "MEKD", batch_size: int, steps: int, seed: int, channels_last: bool) -> None:
        self.loss, self.bs, self.steps, self.seed, self.epoch, self.cl = loss, batch_size, steps, seed, 1, channels_last
        self.num_samples = steps * batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        dev, bs = self.loss._norm[0].device, self.bs
        g = torch.Generator(device=dev).manual_seed((self.seed * 1_000_003 + self.epoch * 7919 + 1) % 2 ** 63)
        for b in range(self.steps):
            with torch.no_grad():
                x = self.loss.to_model_input(self.loss.generator(torch.randn(bs, self.loss._latent, generator=g,
                                                                             device=dev)))
            x = x.contiguous(memory_format=torch.channels_last) if self.cl else x
            yield x, torch.zeros(bs, dtype=torch.long, device=dev), torch.arange(b * bs, (b + 1) * bs, device=dev)


def obtain_generator(loss: "MEKD", ctx: Any) -> dict[str, Any]:
    """Train MEKD's generator or reuse a cached one, install it in ``loss``, and leave its samples and
    record next to the run; return that record (``info``)."""
    teacher, bundle, dev = ctx.teacher, ctx.bundle, ctx.device
    images = getattr(bundle.train, "images", None)
    if teacher is None or images is None:
        raise ConfigError("mekd needs a teacher and an in-memory student-side training split (TensorSplit)")
    data = hashlib.sha256(str(tuple(images.shape)).encode() + images.contiguous().numpy().tobytes()).hexdigest()
    key = {"teacher": teacher.digest(), "data": data[:16], "access": teacher.access, "hard": loss.hard,
           "seed": ctx.seed, "mean": list(bundle.mean), "std": list(bundle.std),
           **{k: getattr(loss, k) for k in GEN_SETTINGS}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(ctx.cache_dir) / "mekd"
    gen = Generator(bundle.num_classes, images.shape[1], bundle.image_size, loss.gen_width).to(dev)
    loss.set_generator(gen, bundle.mean, bundle.std)
    start = time.perf_counter()
    if (cache / f"{digest}.pt").is_file():
        state = torch.load(cache / f"{digest}.pt", map_location=dev, weights_only=True)
        gen.load_state_dict(state["generator"])
        info = {**state["info"], "trained": False}
    else:
        cache.mkdir(parents=True, exist_ok=True)
        queries = deprivatize(loss, gen, teacher, images, ctx)
        grid, grid_queries = sample_grid(loss, teacher, bundle.num_classes, ctx.seed)
        queries += grid_queries
        write_png(cache / f"{digest}.png", grid)
        info = {"key": key, "hash": digest, "queries": queries, "seconds": time.perf_counter() - start}
        tmp = cache / f"{digest}.pt.{os.getpid()}.tmp"
        torch.save({"generator": gen.state_dict(), "info": info}, tmp)
        os.replace(tmp, cache / f"{digest}.pt")
        info = {**info, "trained": True}
    if ctx.run_dir is not None:  # next to the run: what the generator learned, and what it cost
        run = Path(ctx.run_dir)
        run.mkdir(parents=True, exist_ok=True)
        if (cache / f"{digest}.png").is_file():
            (run / "mekd_samples.png").write_bytes((cache / f"{digest}.png").read_bytes())
        (run / "mekd_generator.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    if ctx.progress:
        print(f"mekd: generator {digest} {'trained' if info['trained'] else 'reused from cache'} "
              f"({info['queries']} teacher queries spent on it)")
    return info


def deprivatize(loss: "MEKD", gen: Generator, teacher: Any, images: Tensor, ctx: Any) -> int:
    """Train the generator against a discriminator on the student-side images (stage 1); return the queries."""
    need, left = loss.gen_steps * loss.gen_batch_size, teacher.remaining
    if left is not None and need + loss.grid_per_class * 4 * ctx.bundle.num_classes > left:
        raise AccessError(f"mekd: training the generator needs about {need} teacher queries, "
                          f"{left} are left in the budget; lower gen_steps/gen_batch_size or raise the budget")
    dev, n0 = ctx.device, teacher.queries
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(ctx.seed)
        disc = Discriminator(images.shape[1], ctx.bundle.image_size, loss.disc_width).to(dev)
        gen.apply(dcgan_init), disc.apply(dcgan_init)
        gen.train().requires_grad_(True)
        opt_g = torch.optim.Adam(gen.parameters(), lr=loss.gen_lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(disc.parameters(), lr=loss.gen_lr, betas=(0.5, 0.999))
        real_all, bs = images.to(dev), loss.gen_batch_size
        ones, zeros = torch.ones(bs, device=dev), torch.zeros(bs, device=dev)
        for _ in range(loss.gen_steps):
            real = real_all[torch.randint(0, len(real_all), (bs,), device=dev)].float() / 127.5 - 1
            fake = gen(torch.randn(bs, loss._latent, device=dev))
            d_loss = (F.binary_cross_entropy_with_logits(disc(real), ones)
                      + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
            opt_d.zero_grad(set_to_none=True), d_loss.backward(), opt_d.step()
            t = teacher(loss.to_model_input(fake.detach()))
            conf = torch.ones_like(t[:, 0]) if loss.hard else torch.softmax(t, 1).amax(1)
            d_fake = disc(fake)
            im = -(conf * torch.log(torch.sigmoid(d_fake) + 1e-5)).mean()
            g_loss = F.binary_cross_entropy_with_logits(d_fake, ones) + loss.gen_alpha * im
            opt_g.zero_grad(set_to_none=True), g_loss.backward(), opt_g.step()
    gen.eval().requires_grad_(False)
    return teacher.queries - n0


@torch.no_grad()
def sample_grid(loss: "MEKD", teacher: Any, classes: int, seed: int) -> tuple[Tensor, int]:
    """Rows = teacher labels of samples G(z), most confident first (``grid_per_class`` columns); and the queries."""
    k = loss.grid_per_class
    g = torch.Generator(device=loss._norm[0].device).manual_seed(seed + 12345)
    imgs = loss.generator(torch.randn(4 * k * classes, loss._latent, generator=g, device=g.device))
    n0 = teacher.queries
    t = teacher(loss.to_model_input(imgs))
    queries = teacher.queries - n0
    conf, label = torch.softmax(t, 1).max(1)
    c, h, w = imgs.shape[1:]
    grid, order = torch.zeros(classes * (h + 2), k * (w + 2), c), conf.argsort(descending=True).tolist()
    for cls in range(classes):
        picks = [i for i in order if label[i] == cls][:k]
        for j, i in enumerate(picks):
            grid[cls * (h + 2) + 1:cls * (h + 2) + 1 + h, j * (w + 2) + 1:j * (w + 2) + 1 + w] = \
                (imgs[i].permute(1, 2, 0).cpu() + 1) / 2
    grid = (grid[:, :, :3] if c >= 3 else grid[:, :, 0]).mul(255).round().clamp(0, 255).to(torch.uint8)
    return grid.repeat_interleave(2, 0).repeat_interleave(2, 1), queries
