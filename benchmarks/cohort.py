"""Five methods as one cohort vs five sequential runs (CPU), and the cohort's peak memory.

    python benchmarks/cohort.py [--reps 3] [--configs fmnist,cifar-r56-r20]

A cohort trains the students of several methods (same architecture, seed and
data) in lockstep, with one data pipeline and one teacher forward per batch;
a sequential sweep trains them one after the other, each run a cohort of one.
Both give bit-identical students (checked here: final weights and test top-1).

The teacher cache is OFF for the headline ratio, so the teacher forward is
really shared per batch (as with augmentation, where responses cannot be
cached); the ratio with the cache ON (one teacher pass over the training set
per run, reused every epoch) is reported too.

Timing: the two variants alternate, ``--reps`` times, in one process with one
torch thread; the speed-up is the median of per-repetition ratios of process
CPU time (sequential / cohort; wall time is recorded too).

Memory: a cohort of 5 and a single run are each trained in a fresh
subprocess; the peak resident memory during ``fit()`` (VmHWM, reset just
before training) is reported, with the increase over the memory held just
before training.

Configurations:
  fmnist         fmnist_teacher (70k params, recorded foundation teacher when present)
                 -> fmnist_cnn_tiny (1.4k), real Fashion-MNIST (2,048 train / 400 test images:
                 the 6:1 train/test ratio of the full dataset), batch 128, 2 epochs (headline)
  cifar-r56-r20  resnet56 -> resnet20 (a CIFAR-100 pair of the CRD/DKD tables), synthetic
                 32x32 images, batch 32, 4 steps
  cifar-r32x4-r8x4  resnet32x4 -> resnet8x4, synthetic 32x32, batch 16, 3 steps (slow on CPU)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, environment, median, rss_mib, timed_cpu, write_result  # noqa: E402

import kdzoo  # noqa: E402
from kdzoo.data.base import TensorSplit  # noqa: E402
from kdzoo.data.loader import TensorLoader  # noqa: E402
from kdzoo.engine import Member, Trainer, TrainConfig  # noqa: E402
from kdzoo.losses.base import has_preparation  # noqa: E402
from kdzoo.teachers import Teacher  # noqa: E402

NAME = "cohort"
PREFERRED = ["ce", "kd", "dkd", "dist", "rld", "kd+ls", "mcld", "mse", "dkd+ls", "rld+ls"]
FMNIST_TEACHER = REPO / "results" / "train_fashion_mnist" / "runs" / "teacher" / "model.pt"

CONFIGS = {
    "fmnist": dict(teacher="fmnist_teacher", student="fmnist_cnn_tiny", data="fashion-mnist", n_train=2048,
                   n_test=400, batch=128, epochs=2, steps=None, classes=10),
    "cifar-r56-r20": dict(teacher="resnet56", student="resnet20", data="synthetic-cifar", n_train=128,
                          n_test=64, batch=32, epochs=1, steps=4, classes=100),
    "cifar-r32x4-r8x4": dict(teacher="resnet32x4", student="resnet8x4", data="synthetic-cifar", n_train=48,
                             n_test=32, batch=16, epochs=1, steps=3, classes=100),
}


def pick_methods(n: int = 5) -> list[str]:
    """``n`` registered methods that can share a cohort (no preparation stage), canonical ones first."""
    names = kdzoo.list_losses()
    ordered = [m for m in PREFERRED if m in names] + [m for m in names if m not in PREFERRED]
    out = []
    for m in ordered:
        loss = kdzoo.build_loss(m)
        if not has_preparation(loss):
            out.append(m)
        if len(out) == n:
            break
    return out


def load_data(cfg: dict) -> tuple[TensorSplit, TensorSplit, tuple, tuple, str]:
    if cfg["data"] == "fashion-mnist":
        try:
            b = kdzoo.data.build_dataset("fashion-mnist")
            return (b.train.subset(torch.arange(cfg["n_train"])), b.test.subset(torch.arange(cfg["n_test"])),
                    tuple(b.mean), tuple(b.std), "Fashion-MNIST (real)")
        except kdzoo.KdzooError:
            shape, note = (1, 28, 28), "synthetic 28x28 (Fashion-MNIST not found)"
    else:
        shape, note = (3, 32, 32), "synthetic 32x32 (CIFAR-shaped)"
    g = torch.Generator().manual_seed(0)

    def split(n):
        return TensorSplit(torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8),
                           torch.randint(0, cfg["classes"], (n,), generator=g))
    return split(cfg["n_train"]), split(cfg["n_test"]), (0.5,), (0.25,), note


def load_teacher(cfg: dict, in_channels: int) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(1)
    model = kdzoo.build_model(cfg["teacher"], num_classes=cfg["classes"], in_channels=in_channels)
    if cfg["teacher"] == "fmnist_teacher" and FMNIST_TEACHER.is_file():
        state = torch.load(FMNIST_TEACHER, map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, dict) else state
        model.load_state_dict(state)
        return model.eval(), f"trained ({FMNIST_TEACHER.relative_to(REPO)})"
    return model.eval(), "randomly initialized (timing only)"


class Setup:
    def __init__(self, cfg: dict, methods: list[str]) -> None:
        self.cfg, self.methods = cfg, methods
        self.train, self.test, self.mean, self.std, self.data_note = load_data(cfg)
        self.teacher_model, self.teacher_note = load_teacher(cfg, self.train.images.shape[1])

    def member(self, method: str) -> Member:
        torch.manual_seed(0)  # same initial weights for every method, as the bench runner does
        student = kdzoo.build_model(self.cfg["student"], num_classes=self.cfg["classes"],
                                    in_channels=self.train.images.shape[1])
        return Member(method, student, kdzoo.build_loss(method), seed=0)

    def trainer(self, members: list[Member], cache: bool) -> Trainer:
        c = self.cfg
        config = TrainConfig(epochs=c["epochs"], batch_size=c["batch"], lr=0.05, device="cpu", amp="off",
                             cache_teacher=cache, seed=0, cpu_threads=torch.get_num_threads())
        train = TensorLoader(self.train, c["batch"], mean=self.mean, std=self.std, shuffle=True, seed=0,
                             max_batches=c["steps"])
        test = {"test": TensorLoader(self.test, 500, mean=self.mean, std=self.std)}
        return Trainer(members, train, test, Teacher(self.teacher_model), config, progress=False,
                       log=lambda _msg: None)

    def sequential(self, cache: bool) -> list[Member]:
        out = []
        for m in self.methods:
            member = self.member(m)
            self.trainer([member], cache).fit()
            out.append(member)
        return out

    def cohort(self, cache: bool) -> list[Member]:
        members = [self.member(m) for m in self.methods]
        self.trainer(members, cache).fit()
        return members


def compare(seq: list[Member], coh: list[Member]) -> list[dict]:
    rows = []
    for a, b in zip(seq, coh):
        same = all(torch.equal(x, y) for x, y in zip(a.student.state_dict().values(), b.student.state_dict().values()))
        rows.append({"method": a.name, "status": [a.result.status, b.result.status],
                     "sequential_top1": a.result.top1, "cohort_top1": b.result.top1, "identical_weights": same})
    return rows


def measure_speed(setup: Setup, reps: int, cache: bool) -> dict:
    setup.cohort(cache)  # warm-up
    wall = {"sequential": [], "cohort": []}
    cpu = {"sequential": [], "cohort": []}
    order = ["sequential", "cohort"]
    for r in range(reps):
        for k in (order if r % 2 == 0 else order[::-1]):
            w, c = timed_cpu(lambda: setup.sequential(cache) if k == "sequential" else setup.cohort(cache))
            wall[k].append(w)
            cpu[k].append(c)
    speedup = median([s / c for s, c in zip(cpu["sequential"], cpu["cohort"])])
    wall_speedup = median([s / c for s, c in zip(wall["sequential"], wall["cohort"])])
    return {"speedup": speedup, "wall_speedup": wall_speedup, "cpu_seconds": cpu, "wall_seconds": wall}


# ------------------------------------------------------------------ memory (subprocess)


class PeakRSS:
    """Peak resident memory (MiB) between start() and stop(): VmHWM after resetting it, else polling."""

    def __init__(self) -> None:
        self.peak, self._stop, self._thread = 0.0, threading.Event(), None

    @staticmethod
    def _hwm() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def start(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.reset_ok = True
        except OSError:
            self.reset_ok = False
        self.peak = rss_mib()

        def poll():
            while not self._stop.is_set():
                self.peak = max(self.peak, rss_mib())
                time.sleep(0.002)
        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self._hwm()) if self.reset_ok else self.peak


def memory_child(config: str, kind: str, methods: list[str]) -> None:
    torch.set_num_threads(1)
    setup = Setup(CONFIGS[config], methods if kind == "cohort" else methods[:1])
    members = [setup.member(m) for m in setup.methods]
    trainer = setup.trainer(members, cache=False)
    # one-time costs that are not training memory: the first optimizer imports torch._dynamo
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    import gc
    gc.collect()
    before = rss_mib()
    meter = PeakRSS()
    meter.start()
    trainer.fit()
    peak = meter.stop()
    print(json.dumps({"kind": kind, "members": len(members), "rss_before_fit_mib": before, "peak_rss_mib": peak,
                      "peak_increase_mib": peak - before, "hwm_reset": meter.reset_ok}))


def measure_memory(config: str, methods: list[str]) -> dict:
    out = {}
    for kind in ("single", "cohort"):
        proc = subprocess.run([sys.executable, __file__, "--memory-child", kind, "--configs", config,
                               "--methods", ",".join(methods)], capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child failed: {proc.stderr[-2000:]}")
        out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["peak_ratio"] = out["cohort"]["peak_rss_mib"] / out["single"]["peak_rss_mib"]
    inc_single = max(out["single"]["peak_increase_mib"], 1e-9)
    out["increase_ratio"] = out["cohort"]["peak_increase_mib"] / inc_single
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--configs", default="fmnist,cifar-r56-r20")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default=None, help="comma-separated (default: 5 registered methods)")
    ap.add_argument("--json-name", default=NAME, help="results/perf/<this>.json (default: %(default)s)")
    ap.add_argument("--memory-child", choices=["single", "cohort"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    methods = args.methods.split(",") if args.methods else pick_methods(5)
    configs = args.configs.split(",")
    if args.memory_child:
        memory_child(configs[0], args.memory_child, methods)
        return
    torch.set_num_threads(args.threads)
    env = environment()
    print(f"methods: {', '.join(methods)}")
    results = []
    for name in configs:
        cfg = CONFIGS[name]
        setup = Setup(cfg, methods)
        seq, coh = setup.sequential(False), setup.cohort(False)
        rows = compare(seq, coh)
        print(f"\n{name}: {cfg['teacher']} -> {cfg['student']}, {setup.data_note}, teacher {setup.teacher_note}, "
              f"batch {cfg['batch']}, {cfg['epochs']} epoch(s)" + (f" of {cfg['steps']} steps" if cfg["steps"] else ""))
        print(f"  {'method':8s} {'sequential top1':>16s} {'cohort top1':>12s}  identical weights")
        for r in rows:
            print(f"  {r['method']:8s} {r['sequential_top1']:16.2f} {r['cohort_top1']:12.2f}  {r['identical_weights']}")
        off = measure_speed(setup, args.reps, cache=False)
        on = measure_speed(setup, args.reps, cache=True)
        print(f"  cohort speed-up, teacher cache off: {off['speedup']:.2f}x  (wall {off['wall_speedup']:.2f}x)")
        print(f"  cohort speed-up, teacher cache on:  {on['speedup']:.2f}x  (wall {on['wall_speedup']:.2f}x)")
        mem = measure_memory(name, methods)
        print(f"  peak RSS: cohort of {len(methods)} {mem['cohort']['peak_rss_mib']:.0f} MiB vs one run "
              f"{mem['single']['peak_rss_mib']:.0f} MiB ({mem['peak_ratio']:.2f}x); increase during fit "
              f"{mem['cohort']['peak_increase_mib']:.1f} vs {mem['single']['peak_increase_mib']:.1f} MiB")
        results.append({"config": name, **{k: v for k, v in cfg.items()}, "data_note": setup.data_note,
                        "teacher_note": setup.teacher_note, "methods": methods, "accuracy": rows,
                        "all_identical": all(r["identical_weights"] for r in rows),
                        "cache_off": off, "cache_on": on, "memory": mem})
    head = results[0]
    ratio = head["cache_off"]["speedup"]
    path = write_result(args.json_name, {"ratio": ratio, "target": ">= 1.6", "met": ratio >= 1.6,
                               "ratio_definition": f"sequential / cohort process CPU time, {len(methods)} methods, "
                                                   f"teacher cache off, config {head['config']}",
                               "configs": results}, env)
    print(f"\nwrote {path.relative_to(REPO)}")
    print(f"{NAME} ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
