"""Benchmark runner: run specs, recipes, sweeps, the run store, launchers and leaderboards.

From Python::

    from kdzoo.bench import load_recipe, run_bench
    report = run_bench(load_recipe("recipes/quickstart.yaml"), "results/quickstart")
    report.outputs["markdown"]   # leaderboard.md; also "csv", "summary", "plot"
"""
from .recipe import load_recipe
from .recipe_types import Recipe
from .run import RunSpec, environment, execute, execute_cohort
from .runner import SweepReport, run_bench
from .sweep import Plan, expand

__all__ = ["Plan", "Recipe", "RunSpec", "SweepReport", "environment", "execute", "execute_cohort", "expand",
           "load_recipe", "run_bench"]
