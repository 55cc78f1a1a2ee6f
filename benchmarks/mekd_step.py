"""Cost of one MEKD distillation step against one KD step, and where MEKD's time goes (CPU).

    python benchmarks/mekd_step.py [--reps 7] [--batch 128] [--gen-width 32] [--tag after]

Setting of ``recipes/b2kd_fashion_mnist.yaml``: fmnist_teacher -> fmnist_mlp (25k parameters),
28x28 grey images, batch 128, access ``probs``, MEKD generator width 32 (random weights: the cost
does not depend on what G learned). One torch thread, process CPU time (the machine is shared).

A KD step: teacher query, student forward, ``kd`` loss, backward, SGD step, on a batch of images.
A MEKD step: the batch is G(z) (the generated-data loader), then the same, with ``mekd``'s loss
(G(s/tau) with its backward into s, G(t/tau) without). Parts timed on their own:

- ``data``: the loader's G(z) -> model inputs;
- ``teacher``: one counted query;
- ``student``: student forward + backward + SGD step through a plain KD loss;
- ``mekd_loss``: mekd's forward + backward on fixed logits (the generator's share of the step).

Each repetition times every part and both steps (median over repetitions); the final line is
the ratio MEKD step / KD step. Where mekd folds its generator (``MEKD.generate``), the MEKD parts
are also timed with the plain generator module (``*_plain``: the code before the speed-up),
interleaved in each repetition; the speed-up is the median of per-repetition ratios. With ``--tag``
the result is merged into results/perf/mekd_step.json under that tag.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, cpu_time, environment, median  # noqa: E402

import kdzoo  # noqa: E402
from kdzoo.losses._generated import GeneratedLoader  # noqa: E402
from kdzoo.stages.dcgan import Generator  # noqa: E402
from kdzoo.teachers import Teacher  # noqa: E402

NAME = "mekd_step"


def per_call(fn, min_seconds: float = 0.3) -> float:
    """Process CPU seconds per call of ``fn``, repeating it for at least ``min_seconds``."""
    return cpu_time(fn, min_seconds, max_iters=10 ** 9)


def _code_origin() -> str:
    """Which kdzoo ran, without this machine's paths (results/ holds none): this repository's, or another copy."""
    here = Path(kdzoo.__file__).resolve().parent
    ours = Path(__file__).resolve().parents[1] / "kdzoo"
    return "the repository's own kdzoo/ at the commit above" if here == ours else "a kdzoo outside this repository (see note)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--gen-width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="", help="store the result under this tag in results/perf/mekd_step.json")
    ap.add_argument("--note", default="", help="what code was measured (stored with the tag)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bs, classes = args.batch, 10
    teacher = Teacher(kdzoo.build_model("fmnist_teacher", num_classes=classes), access="probs")
    student = kdzoo.build_model("fmnist_mlp", num_classes=classes)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    kd = kdzoo.build_loss("kd")
    mekd = kdzoo.build_loss("mekd", gen_width=args.gen_width)
    mekd.set_generator(Generator(classes, 1, (28, 28), args.gen_width), (0.2860,), (0.3530,))
    real = torch.randn(bs, 1, 28, 28)
    loader = GeneratedLoader(mekd, bs, 10 ** 9, seed=0, channels_last=False)
    stream = iter(loader)
    s_fixed, t_fixed = torch.randn(bs, classes) * 3, torch.log_softmax(torch.randn(bs, classes) * 3, 1)

    def train_step(x, loss):
        t = teacher(x)
        s = student(x)
        total = sum(loss(s, t, torch.zeros(bs, dtype=torch.long)).values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    def loss_only():
        s = s_fixed.clone().requires_grad_(True)
        sum(mekd(s, t_fixed, None).values()).backward()

    parts = {
        "kd_step": lambda: train_step(real, kd),
        "mekd_step": lambda: train_step(next(stream)[0], mekd),
        "data": lambda: next(stream),
        "teacher": lambda: teacher(real),
        "student": lambda: _student_only(student, opt, real, kd, t_fixed),
        "mekd_loss": loss_only,
    }
    if hasattr(mekd, "generate"):  # this kdzoo folds G: time the plain G too, interleaved, as "before"
        for k in ("mekd_step", "data", "mekd_loss"):
            parts[f"{k}_plain"] = _with_plain_generator(mekd, parts[k])
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(args.reps):
        for k, fn in parts.items():
            times[k].append(per_call(fn))
    med = {k: median(v) for k, v in times.items()}
    ratio = med["mekd_step"] / med["kd_step"]
    lines = [f"batch {bs}, fmnist_teacher -> fmnist_mlp, mekd gen_width {args.gen_width}, "
             f"{args.threads} thread(s), median of {args.reps} (process CPU ms per call)"]
    lines += [f"  {k:16s} {1000 * v:8.2f} ms" for k, v in med.items()]
    lines.append(f"MEKD step / KD step: {ratio:.2f}")
    per_rep = {}
    if "mekd_step_plain" in times:
        per_rep = {"plain_over_kd": median([p / k for p, k in zip(times["mekd_step_plain"], times["kd_step"])]),
                   "fast_over_kd": median([f / k for f, k in zip(times["mekd_step"], times["kd_step"])]),
                   "step_speedup": median([p / f for p, f in zip(times["mekd_step_plain"], times["mekd_step"])])}
        lines.append(f"interleaved, median of per-repetition ratios: MEKD step / KD step "
                     f"{per_rep['plain_over_kd']:.2f} with the plain generator (before), "
                     f"{per_rep['fast_over_kd']:.2f} folded (after); MEKD step {per_rep['step_speedup']:.2f}x faster")
    print("\n".join(lines))
    if args.tag:
        path = OUT / f"{NAME}.json"
        old = json.loads(path.read_text()) if path.is_file() else {"benchmark": NAME, "runs": {}}
        old["runs"][args.tag] = {"environment": environment(), "median_ms": {k: 1000 * v for k, v in med.items()},
                                 "raw_s": times, "ratio_mekd_over_kd": ratio, "interleaved": per_rep, "report": lines,
                                 "kdzoo_code": _code_origin(), "note": args.note}
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(old, indent=2) + "\n")
        (OUT / f"{NAME}.txt").write_text("\n\n".join(
            f"[{tag}] commit {r['environment']['commit']}, {r['environment']['date']}, {r['environment']['device']}\n"
            f"command: {r['environment']['command']}\ncode: {r['note']}\n" + "\n".join(r["report"])
            for tag, r in old["runs"].items()) + "\n")


def _with_plain_generator(mekd, fn):
    """``fn`` with mekd running its generator module itself, as before the folded copy existed."""
    def run():
        object.__setattr__(mekd, "generate", mekd.generator)   # instance attribute shadows the method
        try:
            fn()
        finally:
            object.__delattr__(mekd, "generate")
    return run


def _student_only(student, opt, x, loss, t) -> None:
    s = student(x)
    total = sum(loss(s, t, torch.zeros(len(x), dtype=torch.long)).values())
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()


if __name__ == "__main__":
    main()
