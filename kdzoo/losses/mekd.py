"""mekd: Ma, Xiang, Wang, Wu & Li, "Aligning Logits Generatively for Principled Black-Box Knowledge
Distillation" (MEKD, mapping-emulation KD), CVPR 2024, arXiv 2205.10490.

Black-box setting: the teacher answers probabilities ("soft", access probs/topk/logits) or its top-1
only ("hard", access label); the student side holds unlabeled images. Two stages:

1. Deprivatization (a preparation stage): a DCGAN generator G: R^C -> image (z ~ N(0, I), C = classes) and a
   discriminator D train on the student-side images scaled to [-1, 1]. D: BCE real vs fake. G:
   non-saturating BCE + gen_alpha * L_IM, L_IM = -mean_i y_i log(D(G(z_i)) + 1e-5), y_i the teacher's
   max probability on G(z_i) (1 when hard). Adam(gen_lr, betas (0.5, 0.999)), batch gen_batch_size.
   G: linear -> width x ceil(H/4) x ceil(W/4) -> BN -> up x2, conv3x3 width, BN, LeakyReLU 0.2 -> up x2,
   conv3x3 width/2, BN, LeakyReLU -> conv3x3 to the image channels -> tanh, centre-cropped to H x W
   (sizes not divisible by 4). D: four stride-2 conv3x3 blocks (16, 32, 64, 128 for disc_width 16) with
   LeakyReLU, Dropout2d 0.25, BN (not on the first) -> linear -> sigmoid. DCGAN init N(0, 0.02).
   G is cached in ``cache_dir/deprivatize/<hash>.pt``, hash of (teacher weights digest, student-side data
   digest, access, response, seed, generator settings), and reused; the queries it cost are recorded.
   A PNG of samples per class (torchvision's ``save_image``) goes to ``run_dir/prepared-samples.png``: G
   takes no class input (it is not class-conditional), so rows come from drawing z ~ N(0, I), asking
   the teacher (counted) and grouping by its label, most confident first; a short row shows a class G
   rarely produces.
2. Distillation (G frozen, eval mode): the student trains on generated batches only (``use_prepared``
   replaces the train loader; steps per epoch = config.steps_per_epoch or ``steps_per_epoch``), the
   trainer queries the teacher on them as usual, and
       loss = w_img * mean|G(s/tau) - G(t/tau)| + w_kl * T * KL(softmax_T(t) || softmax_T(s))
   (``distance="l2"``: mean squared difference), gradients flowing through G into s. No labels.

Defaults: tau = T = 5, w_img = w_kl = 1, gen_alpha 0.5, gen_lr 2e-4, gen_batch_size 64, gen_width 128,
gen_steps 15000 (about the authors' 200 DCGAN epochs over a 10% split). Teacher response t fed to G and
to the KL term, as the authors' code feeds it: the raw logits when the access level gives logits
(access logits), log-probabilities otherwise (probs, topk: the KL term is the same; G sees them shifted
by a per-row constant), or the 0/1 one-hot of the top-1 (hard; ``response`` "auto" picks hard for
access label). Deviations: images the teacher sees are de-scaled from [-1, 1] and normalized with the
dataset's mean/std; BCE is computed from D's logits (same value, stabler); one query batch per GAN step
(D then G on the same fake batch); PyTorch's BatchNorm eps 1e-5 everywhere.

The authors' DCGAN exactly, as options (off by default; absent from run hashes and cache keys when off):
``gen_bn_eps=0.8`` gives G's 2nd and 3rd and D's BatchNorms eps 0.8 (their ``BatchNorm2d(c, 0.8)``);
``gen_fresh_z=True`` draws a new z for the G step instead of reusing the D step's fake batch (two
generator batches per GAN step, the teacher still queried once, on the G step's). Why off: on
Fashion-MNIST (fmnist_teacher -> fmnist_mlp, seed 0, 10% split, access probs, gen_width 32, 3,000
generator steps) the authors' variant gave 69.8 / 72.2% top-1 against kdzoo's 72.4 / 74.3% (student
5 x 50 / 10 x 200 steps): it is not the better generator here (issue 14).

Speed: G is frozen during distillation, so ``forward`` and the generated batches run a copy with the
BatchNorms folded into the convolutions, in channels_last (_frozen_gen.py; equal outputs up to float
rounding), rebuilt whenever the generator's weights change.

Generator baselines (``gen-kd-soft``, ``gen-ce-hard``): the same class with the image term off, so
they train on exactly MEKD's generator and noise stream (same settings, same seed: the same cached
generator and the same batches) and differ from MEKD only in the distillation loss:
``gen-kd-soft`` is kdzoo's ``kd`` (T = 4, 0.1 CE on the teacher's top-1 + 0.9 T^2 KL: here w_kl 3.6,
since this class scales its KL by T) with the teacher's probabilities, ``gen-ce-hard`` is CE on the
teacher's top-1 labels (as ``ce`` with pseudo-labels). No private image reaches the teacher.

Student phase (``pool``): 0 (default, the authors') queries the teacher on fresh G(z) every step;
``pool: N`` generates N images once (the first N of the per-step stream), has the teacher label them
once (N queries, needs ``train.cache_teacher``) and trains on them for every epoch, in batches as a
real-image student with N images would (steps per epoch ceil(N / batch), or ``train.steps_per_epoch``).
A query budget (``teacher_budget``) smaller than N plus the generator's queries is refused before
anything runs.

Hard responses (``hard_target``): ``softened`` (default, the authors' code) feeds the 0/1 one-hot as
logits to G and to the KL term, whose target softmax(onehot / T) is then nearly uniform (0.12 vs 0.098
for ten classes at T = 5); ``onehot`` reads the hard response as the probability vector it stands for,
all mass on the top-1 class, so the KL term's target is the one-hot itself (the term becomes
T * CE(s / T, top-1)); G still receives onehot / tau.

Options added after runs were hashed (w_ce, pool, hard_target, gen_bn_eps, gen_fresh_z) stay out of
run hashes and the generator's cache key at their defaults. The loss keeps the math and declares its
preparation stage (``deprivatize``, kdzoo/stages/deprivatize.py: GAN training and the sample grid;
the engine, kdzoo/engine/prepare.py, runs it, caches the generator and writes the run folder); the
student's loaders are in _generated.py. Method notes: docs/methods.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import register_loss
from ..space import Float
from ._frozen_gen import FrozenGenerator, weights_version
from ._generated import GeneratedLoader, PooledLoader
from .base import DistillLoss, Preparation, check_logits, kl_with_temperature

# the generator's settings (with the teacher, the data, the response and the seed: its cache key)
GEN_SETTINGS = ("gen_alpha", "gen_steps", "gen_batch_size", "gen_lr", "gen_width", "disc_width", "grid_per_class")
GEN_WHEN_SET = ("gen_bn_eps", "gen_fresh_z")      # in the key only when set (generators cached before them)


@register_loss("mekd")
class MEKD(DistillLoss):
    requires = "label"
    paper = "Ma et al., CVPR 2024, Aligning Logits Generatively for Principled Black-Box Knowledge Distillation"
    year, venue = 2024, "CVPR"
    arxiv = "2205.10490"
    # options added after runs were hashed: at these values they stay out of run hashes and cache keys
    hashed_when_set = {"gen_bn_eps": 1e-5, "gen_fresh_z": False, "w_ce": 0.0, "pool": 0, "hard_target": "softened"}

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"tau": Float(1.0, 10.0, log=True),
                    "temperature": Float(1.0, 10.0, log=True),
                    "w_img": Float(0.1, 10.0, log=True),
                    "w_kl": Float(0.1, 10.0, log=True)}

    def __init__(self, tau: float = 5.0, temperature: float = 5.0, w_img: float = 1.0, w_kl: float = 1.0,
                 distance: str = "l1", gen_alpha: float = 0.5, response: str = "auto", gen_steps: int = 15000,
                 gen_batch_size: int = 64, gen_lr: float = 2e-4, gen_width: int = 128, disc_width: int = 16,
                 steps_per_epoch: int = 500, grid_per_class: int = 8, gen_bn_eps: float = 1e-5,
                 gen_fresh_z: bool = False, w_ce: float = 0.0, pool: int = 0, hard_target: str = "softened") -> None:
        super().__init__()
        if distance not in ("l1", "l2") or response not in ("auto", "soft", "hard"):
            raise ConfigError(f"mekd: distance must be 'l1' or 'l2' and response 'auto', 'soft' or 'hard' "
                              f"(got {distance!r}, {response!r})")
        if tau <= 0 or temperature <= 0 or min(gen_steps, gen_batch_size, gen_width, steps_per_epoch) < 1:
            raise ConfigError("mekd: tau, temperature, gen_steps, gen_batch_size, gen_width, steps_per_epoch "
                              "must be > 0")
        if not gen_bn_eps > 0 or not isinstance(gen_fresh_z, bool):
            raise ConfigError(f"mekd: gen_bn_eps must be > 0 (the authors' DCGAN: 0.8) and gen_fresh_z true or "
                              f"false (got {gen_bn_eps!r}, {gen_fresh_z!r})")
        if min(w_img, w_kl, w_ce) < 0 or not max(w_img, w_kl, w_ce) > 0:
            raise ConfigError(f"mekd: the weights w_img, w_kl, w_ce must be >= 0, one of them > 0 "
                              f"(got {w_img}, {w_kl}, {w_ce})")
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0 or hard_target not in ("softened", "onehot"):
            raise ConfigError(f"mekd: pool must be a whole number >= 0 (0: fresh images every step) and "
                              f"hard_target 'softened' or 'onehot' (got {pool!r}, {hard_target!r})")
        self.tau, self.temperature, self.w_img, self.w_kl, self.distance = tau, temperature, w_img, w_kl, distance
        self.gen_alpha, self.response, self.gen_steps, self.gen_batch_size = gen_alpha, response, gen_steps, \
            gen_batch_size
        self.gen_lr, self.gen_width, self.disc_width = gen_lr, gen_width, disc_width
        self.steps_per_epoch, self.grid_per_class = steps_per_epoch, grid_per_class
        self.gen_bn_eps, self.gen_fresh_z = gen_bn_eps, gen_fresh_z
        self.w_ce, self.pool, self.hard_target = w_ce, pool, hard_target
        # soft responses need the teacher's probabilities; hard (or auto, which follows the access) its label
        self.requires = "probs" if response == "soft" else "label"
        self.hard = response == "hard"
        self.info: dict = {}
        self._norm, self._latent = None, 0
        self._fast: FrozenGenerator | None = None
        self._fast_version: tuple[int, ...] | None = None
        object.__setattr__(self, "generator", None)  # frozen and not a submodule: not trained, not checkpointed

    def set_generator(self, generator: nn.Module, mean=(0.5,), std=(0.5,)) -> None:
        """Use a trained generator (frozen, eval mode); mean/std: the models' input normalization."""
        object.__setattr__(self, "generator", generator.eval().requires_grad_(False))
        dev, c = next(generator.parameters()).device, generator.body[-2].out_channels
        m, s = [torch.tensor(list(v) * (c // len(v)), device=dev).view(1, c, 1, 1) for v in (mean, std)]
        self._norm, self._latent = (m, s), generator.fc.in_features

    def generate(self, z: Tensor) -> Tensor:
        """G(z) through the folded copy of the frozen generator (rebuilt when G's weights changed)."""
        version = weights_version(self.generator)
        if self._fast is None or version is None or version != self._fast_version:
            self._fast, self._fast_version = FrozenGenerator(self.generator.eval()), version
        return self._fast(z)

    def to_model_input(self, img: Tensor) -> Tensor:
        """[-1, 1] generator images -> the normalized inputs teacher and student expect."""
        return ((img + 1) / 2 - self._norm[0]) / self._norm[1]

    def _hard_for(self, level: str | None) -> bool:
        return self.response == "hard" or (self.response == "auto" and level == "label")

    def preparation(self, ctx) -> Preparation:
        """Stage 1: the generator, identified by the response and its settings; a pool's labels are paid up front."""
        if self.pool and not ctx.config.cache_teacher:
            raise ConfigError(f"{ctx.name or 'mekd'}: pool labels its images once, which needs train.cache_teacher "
                              f"true")
        settings = {"hard": self._hard_for(ctx.teacher.level if ctx.teacher is not None else None),
                    **{k: getattr(self, k) for k in GEN_SETTINGS},
                    **{k: getattr(self, k) for k in GEN_WHEN_SET if getattr(self, k) != self.hashed_when_set[k]}}
        return Preparation("deprivatize", settings, student_queries=self.pool)

    def use_prepared(self, generator: nn.Module, ctx) -> None:
        """Stage 2's data: the student trains on G(z) only, fresh every step or from a labelled pool."""
        self.hard = self._hard_for(ctx.teacher.level if ctx.teacher is not None else None)
        self.set_generator(generator, ctx.bundle.mean, ctx.bundle.std)
        self.info = dict(ctx.record or {})
        cfg = ctx.config
        if self.pool:
            ctx.train_loader = PooledLoader(self, self.pool, cfg.batch_size, ctx.seed, cfg.channels_last,
                                            cfg.steps_per_epoch)
        else:
            ctx.train_loader = GeneratedLoader(self, cfg.batch_size, cfg.steps_per_epoch or self.steps_per_epoch,
                                               ctx.seed, cfg.channels_last)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor | None = None,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, None)
        label = t.argmax(1)
        if self.hard:
            t = F.one_hot(label, t.shape[1]).float()
        terms: dict[str, Tensor] = {}
        if self.w_img:
            if self.generator is None:
                raise ConfigError("mekd: no generator yet; its preparation stage trains one (or call set_generator)")
            with torch.no_grad():
                img_t = self.generate(t / self.tau)
            diff = self.generate(s / self.tau) - img_t
            terms["img"] = self.w_img * (diff.abs().mean() if self.distance == "l1" else diff.pow(2).mean())
        if self.w_kl:
            if self.hard and self.hard_target == "onehot":  # KL(onehot || softmax(s / T)) = CE(s / T, top-1)
                kl = F.cross_entropy(s / self.temperature, label)
            else:
                kl = kl_with_temperature(t, s, self.temperature)
            terms["kl"] = self.w_kl * self.temperature * kl
        if self.w_ce:
            terms["ce"] = self.w_ce * F.cross_entropy(s, label)
        return terms


# The generator baselines: MEKD's generator and data, direct alignment instead of the image term.
# gen-kd-soft is kd's loss (T 4, 0.1 CE + 0.9 T^2 KL; this class weighs its KL by T, so w_kl = 0.9 * 4).
# Their spaces leave the image term off (tuning it on would make them mekd); gen-ce-hard has none: its
# one term's weight only rescales the learning rate, which every study searches (as for ce).
register_loss("gen-kd-soft", MEKD, defaults={"w_img": 0.0, "temperature": 4.0, "w_kl": 3.6, "w_ce": 0.1,
                                             "response": "soft"},
              space={"temperature": Float(1.0, 10.0, log=True), "w_kl": Float(0.1, 10.0, log=True),
                     "w_ce": Float(0.1, 1.0, log=True)})
register_loss("gen-ce-hard", MEKD, defaults={"w_img": 0.0, "w_kl": 0.0, "w_ce": 1.0, "response": "hard"}, space={})
