"""Command line: ``kdzoo train | list | bench | leaderboard | compare | report | tune``.

Errors a user can fix (bad names, settings, missing data or checkpoints) print
one line to stderr and exit with status 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from .. import __version__, list_losses, loss_info
from ..data import build_dataset
from ..engine import TrainConfig, distributed, runfolder
from ..engine.checkpoint import atomic_write_json
from ..engine.progress import Progress
from ..engine.terminal import print_table, problem_text, say
from ..errors import ConfigError, KdzooError, StorageError, one_line_warnings
from ..registry import DATASETS, LOSSES, MODELS
from ..teachers import LEVELS
from .bench import add_commands as add_bench_commands
from .options import HelpFormatter, add_dataclass_options, dataclass_values
from .report import add_command as add_report_command
from .spaces import print_spaces
from .tune import add_commands as add_tune_commands

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) and exits 2; help shows every default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

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
    p.add_argument("--student", "--model", dest="student", required=True,
                   help="model to train (kdzoo list models; any case: MobileNetV2 is mobilenetv2)")
    p.add_argument("--method", default=None, help="loss name (kdzoo list losses); default kd with a teacher, else ce")
    p.add_argument("--set", dest="loss_kwargs", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="loss hyperparameter, e.g. --set temperature=2 (repeatable)")
    p.add_argument("--teacher", default=None, help="teacher model name (default: read from the checkpoint's run)")
    p.add_argument("--teacher-ckpt", default=None, help=f"teacher weights (kdzoo {runfolder.MODEL} or {{'model': state_dict}})")
    p.add_argument("--access", default="logits",
                   help=f"teacher access: {LEVELS[0]} (white-box: logits + feature maps) | {' | '.join(LEVELS[1:])}")
    p.add_argument("--teacher-budget", type=int, default=None, help="max images the teacher may be queried on")
    p.add_argument("--augment", action="store_true", help="random crop + horizontal flip")
    p.add_argument("--val-size", type=float, default=0.0, help="validation images (count, or fraction if < 1)")
    p.add_argument("--out", default=None, help="run folder (default runs/<dataset>-<student>-<method>-s<seed>)")
    p.add_argument("--data-root", default=None, help="folder holding datasets (also $KDZOO_DATA)")
    p.add_argument("--download", action="store_true", help="download the dataset if missing (needs internet)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar; one log line per epoch")
    # the training settings of a recipe's train: block, derived from TrainConfig (defaults and help written there)
    add_dataclass_options(p.add_argument_group("training (a recipe's train: block)"), TrainConfig)
    p.set_defaults(func=_cmd_train)


def _teacher_name_from_ckpt(ckpt: str) -> str | None:
    cfg = runfolder.read_config(Path(ckpt).parent)
    return cfg.get("student") if cfg else None


def _cmd_train(args: argparse.Namespace) -> int:
    # imported here, not at the top: kdzoo.bench loads pandas, about 0.9 s of start-up (python -X importtime),
    # which `kdzoo list` and `--help` do not need
    from ..bench.execution.run import execute
    from ..bench.spec import RunSpec

    # everything a user may have mistyped is checked before anything is written (a typo leaves no folder)
    args.dataset = DATASETS.canonical(args.dataset)
    student = args.student if ":" in args.student else MODELS.canonical(args.student)
    teacher = args.teacher if not args.teacher or ":" in args.teacher else MODELS.canonical(args.teacher)
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
    LOSSES.check_kwargs(method, dict(args.loss_kwargs))
    cfg = TrainConfig(**dataclass_values(args, TrainConfig))
    spec = RunSpec(dataset=args.dataset, student=student, method=method, loss_kwargs=dict(args.loss_kwargs),
                   teacher=teacher, teacher_ckpt=args.teacher_ckpt, access=args.access,
                   teacher_budget=args.teacher_budget, seed=cfg.seed, train=cfg, val_size=args.val_size,
                   augment=args.augment)
    out = Path(args.out or f"runs/{args.dataset}-{student}-{method}-s{cfg.seed}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the run (it is created if missing)")
    if args.download:
        build_dataset(args.dataset, data_root=args.data_root, download=True)
    try:  # under torchrun (several processes) only rank 0 writes and prints; see engine/distributed.py
        # --no-progress: no bars, but still one line per epoch, so a log of the run stays useful
        record = execute(spec, out, data_root=args.data_root, progress=Progress(enabled=not args.no_progress,
                                                                                 lines=True))
        main_process = distributed.is_main()
    finally:
        distributed.shutdown()
    if not main_process:
        return 0 if record["status"] == runfolder.FINISHED else 1
    line = (f"{record['status']}: {student} {method} top1={record['top1']:.2f} (best {record['best_top1']:.2f} "
            f"@ epoch {record['best_epoch']})")
    if teacher:
        line += f", teacher top1={record['teacher_top1']:.2f}, teacher queries={record['teacher_queries']}"
    say(line)
    say(f"run folder: {out} (weights: {out / runfolder.MODEL})")
    return 0 if record["status"] == runfolder.FINISHED else 1


# ----------------------------------------------------------------------- list
def _add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="list registered losses, models or datasets")
    p.add_argument("what", choices=["losses", "models", "datasets"])
    p.add_argument("--wide", action="store_true", help="losses: also the papers and where each loss comes from")
    p.add_argument("--space", action="store_true", help="losses only: the ranges kdzoo tune searches")
    p.set_defaults(func=_cmd_list)


BAD_SPACE = "search space refused"   # a loss's mark in `kdzoo list losses`, and the line under the table


def _cmd_list(args: argparse.Namespace) -> int:
    if args.space:
        if args.what != "losses":
            raise ConfigError(f"--space lists the search spaces of losses, not of {args.what}")
        print_spaces()
        return 0
    if args.what == "losses":
        columns = ["name", "paper", "year", "requires", "defaults", "source"] if args.wide else \
            ["name", "year", "requires", "defaults"]
        rows, problems = [], []
        for name in list_losses():
            info = loss_info(name)
            cells = {"name": name, "requires": " + ".join([info["requires"], *info["needs"]]), "source": info["source"],
                     "paper": info["paper"] + (f" (arXiv {info['arxiv']})" if info["arxiv"] else ""),
                     "year": f"{info['year']} {info['venue']}".strip() if info["year"] else info["venue"],
                     "defaults": ", ".join(f"{k}={v}" for k, v in info["defaults"].items())}
            if info["space_error"]:   # listed all the same; tuning it (and --space) refuses it
                cells["defaults"] += f"{'; ' if cells['defaults'] else ''}{BAD_SPACE}"
                problems.append(info["space_error"])
            rows.append([cells[c] for c in columns])
        caption = ("each method's formula, defaults and sources: docs/methods.md"
                   + ("" if args.wide else "; papers and sources here: kdzoo list losses --wide"))
    else:
        registry = MODELS if args.what == "models" else DATASETS
        columns, rows, problems = ["name", "description"], [], []
        for name in registry.names():
            doc = (registry.entry(name).factory.__doc__ or "").strip().splitlines()
            rows.append([name, doc[0] if doc else ""])
        caption = "also timm:NAME and tv:NAME (torchvision), built without downloading weights" \
            if args.what == "models" else ""
    print_table(columns, rows, title=f"kdzoo {args.what}", caption=caption)
    for problem in problems:
        say(f"{BAD_SPACE}: {problem}", problem=True)
    return 0


# ------------------------------------------------------------------- transfer
def _add_transfer(sub: Any) -> None:
    p = sub.add_parser("transfer", help="linear-probe a frozen student's features on another dataset",
                       description="Transfer evaluation (as in MCLD): freeze a trained student, extract its "
                                   "penultimate features on DATASET's train and test splits, fit a logistic-"
                                   "regression probe on the train features and report its test top-1. Images are "
                                   "converted to the student's input format (grey<->RGB, bilinear resize, the "
                                   "student's normalization).")
    p.add_argument("run", metavar="RUN_DIR", help=f"kdzoo run folder ({runfolder.MODEL} + {runfolder.CONFIG}), or a weights file "
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
    say(f"transfer {info['student']} ({info['source_dataset']} -> {args.dataset}): linear probe top1="
          f"{res.top1:.2f} (train {res.train_top1:.2f}, weight decay {res.weight_decay:g}, "
          f"{res.num_features} features, {res.train_images}/{res.test_images} train/test images)")
    if out is not None:
        say(f"result: {out}")
    return 0


# ---------------------------------------------------------------------- main
COMMANDS: list[Callable[[Any], None]] = [_add_train, _add_list, _add_transfer]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kdzoo", description="kdzoo: logit knowledge distillation, comparable and easy to use.",
                     epilog="Each command: kdzoo COMMAND --help. Documentation, in the kdzoo source tree: README.md "
                            "(start here), recipes/README.md (benchmark recipes), docs/methods.md (every loss: "
                            "formula, defaults, sources), docs/design.md (how kdzoo is built).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"kdzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    add_bench_commands(sub)
    add_report_command(sub)
    add_tune_commands(sub)
    return parser


def _error(message: str) -> None:
    """One line on stderr; on a terminal it wraps between words (a log or a script gets it unbroken)."""
    say(f"kdzoo: error: {message}", stderr=True, problem=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    one_line_warnings(problem_text)
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except StorageError as exc:   # the disk, not the input: what is done stays, the same command resumes
        if debug:
            raise
        _error(f"{exc}; finished work is kept: once the disk has room (or works again), run the same command to "
               f"resume")
        return EXIT_FAILED
    except KdzooError as exc:
        if debug:
            raise
        _error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return EXIT_USAGE
    except OSError as exc:  # unwritable output folder, full disk, unreadable file: one line, like a KdzooError
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        _error(f"{exc.strerror or str(exc).splitlines()[0]}{where}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("kdzoo: interrupted; finished epochs are saved and the same command resumes", stderr=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
