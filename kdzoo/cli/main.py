"""Command line: ``kdzoo train | list | bench | leaderboard | compare | tune``.

Errors a user can fix (bad names, settings, missing data or checkpoints) print
one line to stderr and exit with status 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from rich.console import Console
from rich.table import Table

from .. import __version__, list_datasets, list_losses, list_models, loss_info
from ..data import build_dataset
from ..engine import TrainConfig, distributed, runfolder
from ..engine.checkpoint import atomic_write_json
from ..engine.progress import Progress
from ..errors import ConfigError, KdzooError
from ..registry import DATASETS, MODELS
from .bench import add_commands as add_bench_commands
from .tune import add_commands as add_tune_commands

EXIT_USAGE = 2
LIST_WIDTH = 100   # kdzoo list fits this many columns unless --wide
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _kv(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got '{text}'")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


# ---------------------------------------------------------------------- train
def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a teacher, a student alone, or distil a student from a teacher",
                       description="Train one model. Without --teacher-ckpt the student trains alone (use this to "
                                   "train a teacher); with it, the student is distilled with --method.")
    p.add_argument("--dataset", default="fashion-mnist", help="dataset name (kdzoo list datasets)")
    p.add_argument("--student", "--model", dest="student", required=True, help="model to train (kdzoo list models)")
    p.add_argument("--method", default=None, help="loss name (kdzoo list losses); default kd with a teacher, else ce")
    p.add_argument("--set", dest="loss_kwargs", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="loss hyperparameter, e.g. --set temperature=2 (repeatable)")
    p.add_argument("--teacher", default=None, help="teacher model name (default: read from the checkpoint's run)")
    p.add_argument("--teacher-ckpt", default=None, help="teacher weights (kdzoo model.pt or {'model': state_dict})")
    p.add_argument("--access", default="logits",
                   help="teacher access: features (white-box: logits + feature maps) | logits | probs | topk:K | label")
    p.add_argument("--teacher-budget", type=int, default=None, help="max images the teacher may be queried on")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--optimizer", default="sgd",
                   help="sgd | adamw | dot (separate momenta for the task and distillation gradients)")
    p.add_argument("--dot-delta", type=float, default=0.075,
                   help="optimizer dot: task momentum 0.9 - delta, distillation momentum 0.9 + delta")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="cosine", help="cosine | step | constant")
    p.add_argument("--milestones", type=int, nargs="*", default=[], help="epochs where a step schedule decays")
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap batches per epoch (quick runs)")
    p.add_argument("--amp", default="auto", help="auto | off | bf16 | fp16 (GPU only)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the student")
    p.add_argument("--ema-decay", type=float, default=0.0,
                   help="keep a moving average of the weights with this decay (e.g. 0.999); it is what is "
                        "evaluated and saved (default 0: off)")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="torch threads when training on a CPU (default 1; the count changes the numbers)")
    p.add_argument("--augment", action="store_true", help="random crop + horizontal flip")
    p.add_argument("--val-size", type=float, default=0.0, help="validation images (count, or fraction if < 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", default=None, help="run folder (default runs/<dataset>-<student>-<method>-s<seed>)")
    p.add_argument("--data-root", default=None, help="folder holding datasets (also $KDZOO_DATA)")
    p.add_argument("--download", action="store_true", help="download the dataset if missing (needs internet)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar; one log line per epoch")
    p.set_defaults(func=_cmd_train)


def _teacher_name_from_ckpt(ckpt: str) -> str | None:
    cfg = runfolder.read_config(Path(ckpt).parent)
    return cfg.get("student") if cfg else None


def _cmd_train(args: argparse.Namespace) -> int:
    # imported here, not at the top: kdzoo.bench loads pandas, about 0.9 s of start-up (python -X importtime),
    # which `kdzoo list` and `--help` do not need
    from ..bench.run import RunSpec, execute

    DATASETS.entry(args.dataset)
    teacher = args.teacher
    if args.teacher_ckpt:
        if not Path(args.teacher_ckpt).is_file():
            raise KdzooError(f"teacher checkpoint not found: {args.teacher_ckpt}")
        teacher = teacher or _teacher_name_from_ckpt(args.teacher_ckpt)
        if teacher is None:
            raise ConfigError("cannot tell the teacher's architecture from its checkpoint; pass --teacher NAME")
    elif args.teacher:
        raise ConfigError("--teacher needs --teacher-ckpt PATH (train the teacher first with kdzoo train)")
    if not teacher and (args.access != "logits" or args.teacher_budget is not None):
        raise ConfigError("--access and --teacher-budget need a teacher (--teacher-ckpt PATH)")
    if args.teacher_budget is not None and args.teacher_budget < 1:
        raise ConfigError(f"--teacher-budget must be a positive number of images, got {args.teacher_budget}")
    method = args.method or ("kd" if teacher else "ce")
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                      weight_decay=args.weight_decay, schedule=args.schedule, milestones=args.milestones,
                      warmup_epochs=args.warmup_epochs, steps_per_epoch=args.steps_per_epoch, amp=args.amp,
                      channels_last=args.channels_last, compile=args.compile, seed=args.seed, device=args.device,
                      cpu_threads=args.cpu_threads, ema_decay=args.ema_decay, dot_delta=args.dot_delta)
    spec = RunSpec(dataset=args.dataset, student=args.student, method=method, loss_kwargs=dict(args.loss_kwargs),
                   teacher=teacher, teacher_ckpt=args.teacher_ckpt, access=args.access,
                   teacher_budget=args.teacher_budget, seed=args.seed, train=cfg, val_size=args.val_size,
                   augment=args.augment)
    if args.download:
        build_dataset(args.dataset, data_root=args.data_root, download=True)
    out = Path(args.out or f"runs/{args.dataset}-{args.student}-{method}-s{args.seed}")
    try:  # under torchrun (several processes) only rank 0 writes and prints; see engine/distributed.py
        # --no-progress: no bars, but still one line per epoch, so a log of the run stays useful
        record = execute(spec, out, data_root=args.data_root, progress=Progress(enabled=not args.no_progress,
                                                                                 lines=True))
        main_process = distributed.is_main()
    finally:
        distributed.shutdown()
    if not main_process:
        return 0 if record["status"] == runfolder.FINISHED else 1
    line = (f"{record['status']}: {args.student} {method} top1={record['top1']:.2f} (best {record['best_top1']:.2f} "
            f"@ epoch {record['best_epoch']})")
    if teacher:
        line += f", teacher top1={record['teacher_top1']:.2f}, teacher queries={record['teacher_queries']}"
    print(line)
    print(f"run folder: {out} (weights: {out / runfolder.MODEL})")
    return 0 if record["status"] == runfolder.FINISHED else 1


# ----------------------------------------------------------------------- list
def _add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="list registered losses, models or datasets")
    p.add_argument("what", choices=["losses", "models", "datasets"])
    p.add_argument("--wide", action="store_true", help="every column (paper titles, sources) at full width")
    p.set_defaults(func=_cmd_list)


def _cmd_list(args: argparse.Namespace) -> int:
    table = Table(title=f"kdzoo {args.what}")
    width = max(Console().width, 160) if args.wide else LIST_WIDTH
    if args.what == "losses":
        columns = ("name", "paper", "year", "requires", "defaults", "source") if args.wide else \
            ("name", "year", "requires", "defaults")
        for col in columns:
            table.add_column(col, overflow="fold", no_wrap=col != "defaults" and not args.wide)
        for name in list_losses():
            info = loss_info(name)
            cells = {"name": name, "requires": " + ".join([info["requires"], *info["needs"]]), "source": info["source"],
                     "paper": info["paper"] + (f" (arXiv {info['arxiv']})" if info["arxiv"] else ""),
                     "year": f"{info['year']} {info['venue']}".strip() if info["year"] else info["venue"],
                     "defaults": ", ".join(f"{k}={v}" for k, v in info["defaults"].items())}
            table.add_row(*(cells[c] for c in columns))
        if not args.wide:
            table.caption = "papers and sources: kdzoo list losses --wide; one loss: loss_info(NAME)"
    else:
        # listing through the API first imports the built-in models or datasets
        registry = MODELS if args.what == "models" else DATASETS
        (list_models if args.what == "models" else list_datasets)()
        table.add_column("name")
        table.add_column("description", overflow="fold")
        for name in registry.names():
            doc = (registry.entry(name).factory.__doc__ or "").strip().splitlines()
            table.add_row(name, doc[0] if doc else "")
        if args.what == "models":
            table.caption = "also timm:NAME and tv:NAME (torchvision), built without downloading weights"
    Console(width=width).print(table)
    return 0


# ------------------------------------------------------------------- transfer
def _add_transfer(sub: Any) -> None:
    p = sub.add_parser("transfer", help="linear-probe a frozen student's features on another dataset",
                       description="Transfer evaluation (as in MCLD): freeze a trained student, extract its "
                                   "penultimate features on DATASET's train and test splits, fit a logistic-"
                                   "regression probe on the train features and report its test top-1. Images are "
                                   "converted to the student's input format (grey<->RGB, bilinear resize, the "
                                   "student's normalization).")
    p.add_argument("run", metavar="RUN_DIR", help="kdzoo run folder (model.pt + config.json), or a weights file "
                                                  "with --student and --source-dataset")
    p.add_argument("--dataset", required=True, help="target dataset (kdzoo list datasets)")
    p.add_argument("--data-root", default=None, help="folder holding datasets (also $KDZOO_DATA)")
    p.add_argument("--epochs", type=int, default=100, help="L-BFGS iterations, or SGD passes (default 100)")
    p.add_argument("--val-size", type=float, default=0.0,
                   help="hold out this many train images (fraction if < 1) to pick the probe's weight decay")
    p.add_argument("--weight-decay", type=float, nargs="+", default=None,
                   help="probe L2 penalty; several values are searched on --val-size (default 1e-4, or a grid "
                        "1e-6..1e-2 with --val-size)")
    p.add_argument("--solver", default="lbfgs", help="lbfgs (full batch) | sgd")
    p.add_argument("--student", default=None, help="model name (needed with a weights file)")
    p.add_argument("--source-dataset", default=None, help="dataset the student was trained on (weights file)")
    p.add_argument("--batch-size", type=int, default=256, help="feature-extraction batch size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", default=None, help="result JSON (default RUN_DIR/transfer-DATASET.json for a run folder)")
    p.set_defaults(func=_cmd_transfer)


def _cmd_transfer(args: argparse.Namespace) -> int:
    from ..apps.transfer import load_student, transfer_evaluate  # lazy like kdzoo.bench (see _cmd_train)

    DATASETS.entry(args.dataset)
    model, fmt, info = load_student(args.run, student=args.student, source_dataset=args.source_dataset,
                                    data_root=args.data_root)
    target = build_dataset(args.dataset, data_root=args.data_root)
    res = transfer_evaluate(model, fmt, target, val_size=args.val_size, weight_decays=args.weight_decay,
                            solver=args.solver, epochs=args.epochs, seed=args.seed, device=args.device,
                            batch_size=args.batch_size)
    record = {**info, "target_dataset": args.dataset, "solver": args.solver, "epochs": args.epochs,
              "seed": args.seed, **res.to_dict()}
    out = Path(args.out) if args.out else (Path(args.run) / runfolder.transfer_file(args.dataset)
                                           if Path(args.run).is_dir() else None)
    if out is not None:
        atomic_write_json(out, record)
    print(f"transfer {info['student']} ({info['source_dataset']} -> {args.dataset}): linear probe top1="
          f"{res.top1:.2f} (train {res.train_top1:.2f}, weight decay {res.weight_decay:g}, "
          f"{res.num_features} features, {res.train_images}/{res.test_images} train/test images)")
    if out is not None:
        print(f"result: {out}")
    return 0


# ---------------------------------------------------------------------- main
COMMANDS: list[Callable[[Any], None]] = [_add_train, _add_list, _add_transfer]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kdzoo", description="kdzoo: logit knowledge distillation, comparable and easy to use.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"kdzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    add_bench_commands(sub)
    add_tune_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except KdzooError as exc:
        if debug:
            raise
        print(f"kdzoo: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # unwritable output folder, full disk, unreadable file: one line, like a KdzooError
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"kdzoo: error: {exc.strerror or str(exc).splitlines()[0]}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kdzoo: interrupted; finished epochs are saved and the next run resumes from them", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
