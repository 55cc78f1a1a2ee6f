"""``kdzoo report OUT``: the self-contained report.html of a bench output folder (also written at the end of
``kdzoo bench`` and ``kdzoo leaderboard``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..engine.terminal import say
from ..errors import KdzooError


def add_command(sub: Any) -> None:
    p = sub.add_parser("report", help="write OUT/report.html: leaderboards, curves, runs and provenance in one "
                                      "page that works offline",
                       description="Write one self-contained HTML page (no network needed to open it) from the "
                                   "files of a kdzoo bench output folder: the leaderboard of every pair as "
                                   "sortable, filterable tables, the comparison with the committed reference, "
                                   "learning curves with a switch per method, the black-box queries plot when "
                                   "present, a tuned recipe's figures, every run, and the provenance.")
    p.add_argument("out", metavar="OUT", help="a kdzoo bench output folder (e.g. results/quickstart)")
    p.add_argument("--reference", default="auto",
                   help="bench folder or leaderboard.csv to compare with (default: results/<recipe name> when "
                        "it exists and is not OUT; 'none': no comparison)")
    p.add_argument("--output", default=None, help="file to write (default OUT/report.html)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report   # lazy: pandas and Bokeh are not needed by other commands

    reference = None if str(args.reference).lower() == "none" else args.reference
    path = write_report(args.out, reference=reference, path=args.output)
    say(f"wrote {path} ({_size(path)}; opens offline)")
    return 0


def report_after(out: Path) -> None:
    """The report at the end of a sweep or a rebuild; a problem with it is one line, never a failed command."""
    from ..report import write_report

    try:
        path = write_report(out)
    except (KdzooError, OSError) as exc:
        say(f"  no report.html: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", problem=True)
        return
    except Exception as exc:  # noqa: BLE001 - the sweep's results are written; the report is a view of them
        say(f"  no report.html ({type(exc).__name__}); see 'kdzoo --debug report {out}'", problem=True)
        return
    say(f"  {path}")


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


__all__ = ["add_command", "report_after"]
