"""mekd: Ma, Xiang, Wang, Wu & Li, "Aligning Logits Generatively for Principled Black-Box Knowledge
Distillation" (MEKD, mapping-emulation KD), CVPR 2024, arXiv 2205.10490.

Black-box setting: the teacher answers probabilities ("soft", access probs/topk/logits) or its top-1
only ("hard", access label); the student side holds unlabeled images. Two stages:

1. Deprivatization (``prepare``): a DCGAN generator G: R^C -> image (z ~ N(0, I), C = classes) and a
   discriminator D train on the student-side images scaled to [-1, 1]. D: BCE real vs fake. G:
   non-saturating BCE + gen_alpha * L_IM, L_IM = -mean_i y_i log(D(G(z_i)) + 1e-5), y_i the teacher's
   max probability on G(z_i) (1 when hard). Adam(gen_lr, betas (0.5, 0.999)), batch gen_batch_size.
   G: linear -> width x ceil(H/4) x ceil(W/4) -> BN -> up x2, conv3x3 width, BN, LeakyReLU 0.2 -> up x2,
   conv3x3 width/2, BN, LeakyReLU -> conv3x3 to the image channels -> tanh, centre-cropped to H x W
   (sizes not divisible by 4). D: four stride-2 conv3x3 blocks (16, 32, 64, 128 for disc_width 16) with
   LeakyReLU, Dropout2d 0.25, BN (not on the first) -> linear -> sigmoid. DCGAN init N(0, 0.02).
   G is cached in ``cache_dir/mekd/<hash>.pt``, hash of (teacher weights digest, student-side data
   digest, access, response, seed, generator settings), and reused; the queries it cost are recorded.
   A PNG of samples per class (torchvision's ``save_image``) goes to ``run_dir/mekd_samples.png``: G
   takes no class input (it is not class-conditional), so rows come from drawing z ~ N(0, I), asking
   the teacher (counted) and grouping by its label, most confident first; a short row shows a class G
   rarely produces.
2. Distillation (G frozen, eval mode): the student trains on generated batches only (``prepare``
   replaces the train loader; steps per epoch = config.steps_per_epoch or ``steps_per_epoch``), the
   trainer queries the teacher on them as usual, and
       loss = w_img * mean|G(s/tau) - G(t/tau)| + w_kl * T * KL(softmax_T(t) || softmax_T(s))
   (``distance="l2"``: mean squared difference), gradients flowing through G into s. No labels.

Defaults: tau = T = 5, w_img = w_kl = 1, gen_alpha 0.5, gen_lr 2e-4, gen_batch_size 64, gen_width 128,
gen_steps 15000 (about the authors' 200 DCGAN epochs over a 10% split). Teacher response t, as the
authors' code feeds it: logits (access logits), log-probabilities (probs, topk: the KL term is the
same; G sees them shifted by a per-row constant), or the 0/1 one-hot of the top-1 (hard; ``response``
"auto" picks hard for access label). Deviations: images the teacher sees are de-scaled from [-1, 1]
and normalized with the dataset's mean/std; BCE is computed from D's logits (same value, stabler);
one query batch per GAN step (D then G on the same fake batch).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.utils import save_image

from ..engine.checkpoint import atomic_write_bytes
from ..engine.runfolder import RunFolderMismatch, differences
from ..errors import AccessError, ConfigError
from ..registry import register_loss
from ._dcgan import Discriminator, Generator, dcgan_init
from .base import DistillLoss, check_logits, kl_with_temperature


class _GeneratedLoader:
    """The student's data: (G(z) normalized for the models, dummy labels, index), fresh z per step, seeded."""
    deterministic = False

    def __init__(self, loss: "MEKD", batch_size: int, steps: int, seed: int, channels_last: bool) -> None:
        self.loss, self.bs, self.steps, self.seed, self.epoch, self.cl = loss, batch_size, steps, seed, 1, channels_last
        self.num_samples = steps * batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        dev, bs = self.loss._norm[0].device, self.bs
        g = torch.Generator(device=dev).manual_seed((self.seed * 1_000_003 + self.epoch * 7919 + 1) % 2 ** 63)
        for b in range(self.steps):
            with torch.no_grad():
                x = self.loss.to_model_input(self.loss.generator(torch.randn(bs, self.loss._latent, generator=g,
                                                                             device=dev)))
            x = x.contiguous(memory_format=torch.channels_last) if self.cl else x
            yield x, torch.zeros(bs, dtype=torch.long, device=dev), torch.arange(b * bs, (b + 1) * bs, device=dev)


GEN_SETTINGS = ("gen_alpha", "gen_steps", "gen_batch_size", "gen_lr", "gen_width", "disc_width", "grid_per_class")


@register_loss("mekd")
class MEKD(DistillLoss):
    requires = "label"
    paper = "Ma et al., CVPR 2024, Aligning Logits Generatively for Principled Black-Box Knowledge Distillation"
    year, venue = 2024, "CVPR"
    arxiv = "2205.10490"

    def __init__(self, tau: float = 5.0, temperature: float = 5.0, w_img: float = 1.0, w_kl: float = 1.0,
                 distance: str = "l1", gen_alpha: float = 0.5, response: str = "auto", gen_steps: int = 15000,
                 gen_batch_size: int = 64, gen_lr: float = 2e-4, gen_width: int = 128, disc_width: int = 16,
                 steps_per_epoch: int = 500, grid_per_class: int = 8) -> None:
        super().__init__()
        if distance not in ("l1", "l2") or response not in ("auto", "soft", "hard"):
            raise ConfigError(f"mekd: distance must be 'l1' or 'l2' and response 'auto', 'soft' or 'hard' "
                              f"(got {distance!r}, {response!r})")
        if tau <= 0 or temperature <= 0 or min(gen_steps, gen_batch_size, gen_width, steps_per_epoch) < 1:
            raise ConfigError("mekd: tau, temperature, gen_steps, gen_batch_size, gen_width, steps_per_epoch "
                              "must be > 0")
        self.tau, self.temperature, self.w_img, self.w_kl, self.distance = tau, temperature, w_img, w_kl, distance
        self.gen_alpha, self.response, self.gen_steps, self.gen_batch_size = gen_alpha, response, gen_steps, \
            gen_batch_size
        self.gen_lr, self.gen_width, self.disc_width = gen_lr, gen_width, disc_width
        self.steps_per_epoch, self.grid_per_class = steps_per_epoch, grid_per_class
        self.hard = response == "hard"
        self.info: dict = {}
        self._norm, self._latent, self.grid_queries = None, 0, 0
        object.__setattr__(self, "generator", None)  # frozen and not a submodule: not trained, not checkpointed

    def set_generator(self, generator: nn.Module, mean=(0.5,), std=(0.5,)) -> None:
        """Use a trained generator (frozen, eval mode); mean/std: the models' input normalization."""
        object.__setattr__(self, "generator", generator.eval().requires_grad_(False))
        dev, c = next(generator.parameters()).device, generator.body[-2].out_channels
        m, s = [torch.tensor(list(v) * (c // len(v)), device=dev).view(1, c, 1, 1) for v in (mean, std)]
        self._norm, self._latent = (m, s), generator.fc.in_features

    def to_model_input(self, img: Tensor) -> Tensor:
        """[-1, 1] generator images -> the normalized inputs teacher and student expect."""
        return ((img + 1) / 2 - self._norm[0]) / self._norm[1]

    def prepare(self, ctx) -> None:
        teacher, bundle, dev = ctx.teacher, ctx.bundle, ctx.device
        images = getattr(bundle.train, "images", None)
        if teacher is None or images is None:
            raise ConfigError("mekd needs a teacher and an in-memory student-side training split (TensorSplit)")
        self.hard = self.response == "hard" or (self.response == "auto" and teacher.level == "label")
        data = hashlib.sha256(str(tuple(images.shape)).encode() + images.contiguous().numpy().tobytes()).hexdigest()
        key = {"teacher": teacher.digest(), "data": data[:16], "access": teacher.access, "hard": self.hard,
               "seed": ctx.seed, "mean": list(bundle.mean), "std": list(bundle.std),
               **{k: getattr(self, k) for k in GEN_SETTINGS}}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        cache = Path(ctx.cache_dir) / "mekd"
        gen = Generator(bundle.num_classes, images.shape[1], bundle.image_size, self.gen_width).to(dev)
        self.set_generator(gen, bundle.mean, bundle.std)
        start = time.perf_counter()
        if (cache / f"{digest}.pt").is_file():
            state = torch.load(cache / f"{digest}.pt", map_location=dev, weights_only=True)
            made_with = state.get("info", {}).get("key")
            if made_with != key:  # a shortened hash's collision, or a hand-placed file: never use another's G
                raise RunFolderMismatch(f"mekd: cached generator {cache / digest}.pt was trained with other "
                                        f"settings ({differences(made_with or {}, key)}); delete it to train a "
                                        f"new one")
            gen.load_state_dict(state["generator"])
            self.info = {**state["info"], "trained": False}
        else:
            cache.mkdir(parents=True, exist_ok=True)
            queries = self._deprivatize(gen, teacher, images, ctx)
            tiles, queries = self._grid(teacher, bundle.num_classes, ctx.seed), queries + self.grid_queries
            png = io.BytesIO()
            save_image(tiles, png, nrow=self.grid_per_class, padding=2, format="png")
            atomic_write_bytes(cache / f"{digest}.png", png.getvalue())
            self.info = {"key": key, "hash": digest, "queries": queries, "seconds": time.perf_counter() - start}
            tmp = cache / f"{digest}.pt.{os.getpid()}.tmp"
            torch.save({"generator": gen.state_dict(), "info": self.info}, tmp)
            os.replace(tmp, cache / f"{digest}.pt")
            self.info = {**self.info, "trained": True}
        if ctx.run_dir is not None:  # next to the run: what the generator learned, and what it cost
            run = Path(ctx.run_dir)
            run.mkdir(parents=True, exist_ok=True)
            if (cache / f"{digest}.png").is_file():
                (run / "mekd_samples.png").write_bytes((cache / f"{digest}.png").read_bytes())
            (run / "mekd_generator.json").write_text(json.dumps(self.info, indent=1, sort_keys=True))
        if ctx.progress:
            print(f"mekd: generator {digest} {'trained' if self.info['trained'] else 'reused from cache'} "
                  f"({self.info['queries']} teacher queries spent on it)")
        ctx.queries = int(self.info["queries"])
        steps = ctx.config.steps_per_epoch or self.steps_per_epoch
        ctx.train_loader = _GeneratedLoader(self, ctx.config.batch_size, steps, ctx.seed, ctx.config.channels_last)

    def _deprivatize(self, gen: Generator, teacher, images: Tensor, ctx) -> int:
        need, left = self.gen_steps * self.gen_batch_size, teacher.remaining
        if left is not None and need + self.grid_per_class * 4 * ctx.bundle.num_classes > left:
            raise AccessError(f"mekd: training the generator needs about {need} teacher queries, "
                              f"{left} are left in the budget; lower gen_steps/gen_batch_size or raise the budget")
        dev, n0 = ctx.device, teacher.queries
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(ctx.seed)
            disc = Discriminator(images.shape[1], ctx.bundle.image_size, self.disc_width).to(dev)
            gen.apply(dcgan_init), disc.apply(dcgan_init)
            gen.train().requires_grad_(True)
            opt_g = torch.optim.Adam(gen.parameters(), lr=self.gen_lr, betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(disc.parameters(), lr=self.gen_lr, betas=(0.5, 0.999))
            real_all, bs = images.to(dev), self.gen_batch_size
            ones, zeros = torch.ones(bs, device=dev), torch.zeros(bs, device=dev)
            for _ in range(self.gen_steps):
                real = real_all[torch.randint(0, len(real_all), (bs,), device=dev)].float() / 127.5 - 1
                fake = gen(torch.randn(bs, self._latent, device=dev))
                d_loss = (F.binary_cross_entropy_with_logits(disc(real), ones)
                          + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
                opt_d.zero_grad(set_to_none=True), d_loss.backward(), opt_d.step()
                t = teacher(self.to_model_input(fake.detach()))
                conf = torch.ones_like(t[:, 0]) if self.hard else torch.softmax(t, 1).amax(1)
                d_fake = disc(fake)
                im = -(conf * torch.log(torch.sigmoid(d_fake) + 1e-5)).mean()
                g_loss = F.binary_cross_entropy_with_logits(d_fake, ones) + self.gen_alpha * im
                opt_g.zero_grad(set_to_none=True), g_loss.backward(), opt_g.step()
        gen.eval().requires_grad_(False)
        return teacher.queries - n0

    @torch.no_grad()
    def _grid(self, teacher, classes: int, seed: int) -> Tensor:
        """Tiles in [0, 1], one row per teacher label of samples G(z), most confident first
        (``grid_per_class`` columns, black where G gave fewer), shown at twice their size."""
        k = self.grid_per_class
        g = torch.Generator(device=self._norm[0].device).manual_seed(seed + 12345)
        imgs = self.generator(torch.randn(4 * k * classes, self._latent, generator=g, device=g.device))
        n0 = teacher.queries
        t = teacher(self.to_model_input(imgs))
        self.grid_queries = teacher.queries - n0
        conf, label = torch.softmax(t, 1).max(1)
        shown = imgs[:, :3] if imgs.shape[1] >= 3 else imgs[:, :1]
        tiles, order = torch.zeros(classes * k, *shown.shape[1:]), conf.argsort(descending=True).tolist()
        for cls in range(classes):
            picks = [i for i in order if label[i] == cls][:k]
            for j, i in enumerate(picks):
                tiles[cls * k + j] = (shown[i].cpu() + 1) / 2
        return F.interpolate(tiles, scale_factor=2, mode="nearest")

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor | None = None,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        if self.generator is None:
            raise ConfigError("mekd: no generator yet; prepare() trains one (or call set_generator)")
        s, t = check_logits(student_logits, teacher_logits, None)
        if self.hard:
            t = F.one_hot(t.argmax(1), t.shape[1]).float()
        with torch.no_grad():
            img_t = self.generator(t / self.tau)
        diff = self.generator(s / self.tau) - img_t
        img = diff.abs().mean() if self.distance == "l1" else diff.pow(2).mean()
        kl = kl_with_temperature(t, s, self.temperature)
        return {"img": self.w_img * img, "kl": self.w_kl * self.temperature * kl}
