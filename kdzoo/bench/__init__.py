"""Benchmark runner: run specs, recipes, sweeps, the run store, launchers and leaderboards."""
from .run import RunSpec, environment, execute, execute_cohort

__all__ = ["RunSpec", "environment", "execute", "execute_cohort"]
