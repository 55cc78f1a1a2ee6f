"""Forward+backward time of every registered loss, relative to one student training step (CPU).

    python benchmarks/losses.py [--reps 5] [--threads 1]

For each loss in ``kdzoo.list_losses()`` (built with its defaults) this times
``sum(loss(s, t, y, x=..., index=...).values()).backward()`` on random logits
of shape (N, C), and divides by the time of one training step of the student
that produces such logits: resnet8x4 (the CIFAR zoo's, 1.2M parameters) on a
batch of N 32x32 images with C classes — forward, cross-entropy, backward,
fused SGD step. That is the cheapest realistic step at each size, so the
fraction is an upper bound for larger students and images.

Sizes: (N=64, C=100) (CIFAR-100 setting) and (N=512, C=1000) (ImageNet-sized
logits). Losses with a preparation stage (``preparation``, e.g. mekd's generator
training) are timed on forward+backward when that works without preparation,
else on forward only, else skipped, and marked so.

Timing: the step and every loss are measured in each repetition (process CPU
time, one torch thread); fractions are medians over repetitions.
Target: every loss <= 10% of the step. The final line's ratio is the largest
fraction over losses and sizes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_time, environment, median, write_result  # noqa: E402

import kdzoo  # noqa: E402
from kdzoo.losses.base import has_preparation  # noqa: E402

NAME = "losses"
SIZES = [(64, 100), (512, 1000)]
STUDENT = "resnet8x4"


class StepBench:
    def __init__(self, n: int, c: int) -> None:
        torch.manual_seed(0)
        self.model = kdzoo.build_model(STUDENT, num_classes=c)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, fused=True)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 32, 32, generator=g)
        self.y = torch.randint(0, c, (n,), generator=g)

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.x), self.y).backward()
        self.opt.step()


class LossBench:
    def __init__(self, name: str, n: int, c: int) -> None:
        self.name = name
        self.loss = kdzoo.build_loss(name)
        self.prepared = has_preparation(self.loss)
        g = torch.Generator().manual_seed(1)
        self.s = (3 * torch.randn(n, c, generator=g)).requires_grad_(True)
        self.t = 3 * torch.randn(n, c, generator=g)
        self.y = torch.randint(0, c, (n,), generator=g)
        self.extra = {"x": torch.randn(n, 3, 32, 32, generator=g), "index": torch.arange(n)}
        self.mode = "forward+backward"
        try:
            self.fwd_bwd()
        except Exception as exc:  # noqa: BLE001 - a loss that cannot run unprepared is reported, not fatal
            if not self.prepared:
                raise
            try:
                self.fwd()
                self.mode = f"forward only ({type(exc).__name__} without its preparation)"
            except Exception as exc2:  # noqa: BLE001
                self.mode = f"skipped: needs its preparation stage ({type(exc2).__name__}: {str(exc2)[:80]})"

    def fwd(self) -> None:
        with torch.no_grad():
            self.loss(self.s, self.t, self.y, epoch=1, **self.extra)

    def fwd_bwd(self) -> None:
        self.s.grad = None
        terms = self.loss(self.s, self.t, self.y, epoch=1, **self.extra)
        total = None
        for v in terms.values():
            total = v if total is None else total + v
        total.backward()

    @property
    def runnable(self) -> bool:
        return not self.mode.startswith("skipped")

    def __call__(self) -> None:
        (self.fwd_bwd if self.mode == "forward+backward" else self.fwd)()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = environment()
    names = kdzoo.list_losses()
    results = {}
    worst = 0.0
    for n, c in SIZES:
        step = StepBench(n, c)
        benches = [LossBench(name, n, c) for name in names]
        step_s, loss_s = [], {b.name: [] for b in benches if b.runnable}
        for _ in range(args.reps):
            step_s.append(cpu_time(step, min_seconds=0.0, max_iters=1))  # one step is long enough to time
            for b in benches:
                if b.runnable:
                    loss_s[b.name].append(cpu_time(b))
        step_med = median(step_s)
        rows = []
        for b in benches:
            row = {"loss": b.name, "mode": b.mode, "has_prepare": b.prepared}
            if b.runnable:
                frac = median([t / s for t, s in zip(loss_s[b.name], step_s)])
                row.update({"ms": 1e3 * median(loss_s[b.name]), "fraction_of_step": frac,
                            "ms_samples": [1e3 * t for t in loss_s[b.name]]})
                worst = max(worst, frac)
            rows.append(row)
        results[f"N={n},C={c}"] = {"N": n, "C": c, "step_ms": 1e3 * step_med,
                                   "step_ms_samples": [1e3 * t for t in step_s], "losses": rows}
        print(f"\nN={n}, C={c}: student step ({STUDENT}, 32x32, fwd+bwd+SGD) {1e3 * step_med:.1f} ms")
        print(f"  {'loss':10s} {'ms':>9s} {'% of step':>10s}  mode")
        for r in rows:
            if "ms" in r:
                print(f"  {r['loss']:10s} {r['ms']:9.3f} {100 * r['fraction_of_step']:9.2f}%  {r['mode']}")
            else:
                print(f"  {r['loss']:10s} {'-':>9s} {'-':>10s}  {r['mode']}")
    path = write_result(NAME, {"ratio": worst, "target": "<= 0.10 (every loss <= 10% of the step)",
                               "met": worst <= 0.10, "student_for_step": f"{STUDENT} at 32x32, fused SGD",
                               "ratio_definition": "largest (loss fwd+bwd CPU time / student step CPU time) over "
                                                   "losses and sizes, medians over repetitions",
                               "sizes": results}, env)
    print(f"\nwrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    print(f"{NAME} ratio={worst:.4f}")


if __name__ == "__main__":
    main()
