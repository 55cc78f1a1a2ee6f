"""Benchmark runner, one folder per job:

- ``recipe/``: read and check a recipe file into dataclasses;
- ``plan.py``: expand a recipe into the runs to train (``RunSpec``s, ``spec.py``) and units;
- ``execution/``: train them (run store, locks, local and Slurm launchers, the executor);
- ``report/``: leaderboards, learning curves and ``kdzoo compare`` from the run store;
- ``runner.py``: ``run_bench``, the whole sweep through the four; ``tune/``: ``kdzoo tune``.

From Python::

    from kdzoo.bench import load_recipe, run_bench
    report = run_bench(load_recipe("recipes/quickstart.yaml"), "runs/quickstart")
    report.outputs["markdown"]   # leaderboard.md; also "csv", "summary", "plot"
"""
from .execution.run import environment, execute, execute_cohort
from .plan import Plan, expand
from .recipe.parse import load_recipe
from .recipe.types import Recipe
from .runner import SweepReport, run_bench
from .spec import RunSpec

__all__ = ["Plan", "Recipe", "RunSpec", "SweepReport", "environment", "execute", "execute_cohort", "expand",
           "load_recipe", "run_bench"]
