"""What a tuning will cost, for ``kdzoo tune --dry-run``: studies, trials, epochs under the pruner, final runs, time.

Reads only the recipe, the run store and ``OUT/tune/trials.csv`` (no Optuna), so it runs anywhere.
Times come from the speed of finished runs of the same models in the store (``eta.py``); trials are
counted at the epochs the pruner is expected to leave them (``expected_epochs``), a rough figure.
"""
from __future__ import annotations

import random
import textwrap
from pathlib import Path

from ...engine.terminal import width
from ..execution.eta import duration, measured_speeds, speed_key
from ..execution.store import RunStore
from ..plan import STUDENT_ROLE, TEACHER_ROLE, Plan, estimate, expand
from ..recipe.types import PrunerSettings, Recipe
from . import files
from .report import read_trials
from .studies import LOSS, make_studies


def expected_epochs(epochs: int, pruner: PrunerSettings | None, trials: int = 20, reps: int = 2000) -> float:
    """Epochs an average trial of a ``trials``-trial study trains: all of them without a pruner. With one,
    simulated (seeded, so always the same figure): trials of random quality whose ranks never change
    between epochs, each kept at a look while among the best ``1/reduction_factor`` of the trials that
    reached it (the best one while fewer than ``reduction_factor`` did), as successive halving does.
    Early trials face few rivals and go on more often. Hyperband is counted as one such bracket."""
    if pruner is None:
        return float(epochs)
    looks, look = [], pruner.min_epochs
    while look < epochs:
        looks.append(look)
        look *= pruner.reduction_factor
    rng, total = random.Random(0), 0
    for _ in range(reps):
        reached: list[list[float]] = [[] for _ in looks]
        for _ in range(trials):
            quality, trained = rng.random(), epochs
            for seen, at in zip(reached, looks):
                seen.append(quality)
                keep = max(len(seen) // pruner.reduction_factor, 1)
                if sorted(seen, reverse=True).index(quality) >= keep:
                    trained = at
                    break
            total += trained
    return total / (reps * trials)


def _fit(text: str) -> str:
    """One entry as lines as wide as the terminal allows (engine.terminal.width), continuations indented."""
    indent = " " * (len(text) - len(text.lstrip()) + 4)
    return "\n".join(textwrap.wrap(text, width(), subsequent_indent=indent, break_on_hyphens=False,
                                   break_long_words=True))


def describe(recipe: Recipe, out: Path, workers: int, device: str = "auto") -> list[str]:
    tune = recipe.tune
    assert tune is not None
    plan = expand(recipe, out, device=device)
    studies = make_studies(recipe, plan)
    store = RunStore(out)
    trials = read_trials(files.folder(out))
    ended = trials[trials.state.isin(["COMPLETE", "PRUNED", "FAIL"])] if len(trials) else trials
    lines = [_fit(f"{recipe.name}: tuning plan ({recipe.path} -> {store.root})")]
    total = len(studies) * tune.trials
    spec = studies[0].template if studies else None
    epochs = spec.train.epochs if spec else 0
    images = estimate(spec)[0] if spec else None
    per_epoch = f"{images // max(epochs, 1)} training images" if images else "training images"
    lines.append(_fit(f"search: {len(studies)} studies x {tune.trials} trials = {total} trials ({len(ended)} "
                      f"ended); a trial: {per_epoch} x {epochs} epochs"))
    lines.append(_fit(f"  validation: {tune.val_size:g} of the student's training images (tuning seed "
                      f"{tune.seed}); objective: {tune.objective} after the last epoch; test split unread"))
    lines.append(_fit("  every method searches: " + "; ".join(f"{k} {p.describe()}" for k, p in tune.search.items())))
    sampler = f"{tune.sampler} (seed {tune.sampler_seed}" + (
        f", {tune.startup_trials} random trials first)" if tune.startup_trials is not None else ")")
    exp = expected_epochs(epochs, tune.pruner, tune.trials)
    pruner = "no pruner" if tune.pruner is None else (
        f"{tune.pruner.name} (first look at epoch {tune.pruner.min_epochs}, keeps 1/{tune.pruner.reduction_factor})")
    lines.append(_fit(f"  sampler {sampler}; {pruner}: about {exp:.1f} of {epochs} epochs a trial"))
    lines.append("  study (trials ended/budget): loss hyperparameters it searches")
    for s in studies:
        done = int((ended.study == s.name).sum()) if len(ended) else 0
        own = [f"{k[len(LOSS):]} {p.describe()}" for k, p in s.space.items() if k.startswith(LOSS)] or ["-"]
        lines.append(_fit(f"    {s.name} ({done}/{tune.trials}): {'; '.join(own)}"))
    defaults = [h for h in plan.hashes(STUDENT_ROLE) if h not in plan.hashes(TEACHER_ROLE)]
    rows = sum(len(s.rows) for s in studies)
    lines.append(_fit(f"final runs: {len(defaults)} of the recipe (kdzoo bench's; "
                      f"{sum(store.is_done(h) for h in defaults)} done) + up to {rows * len(recipe.seeds)} tuned "
                      f"({rows} rows x seeds {', '.join(map(str, recipe.seeds))})"))
    lines += _time(store, plan, studies, trials, exp / max(epochs, 1), workers, recipe)
    return lines


def _time(store: RunStore, plan, studies, trials, fraction: float, workers: int, recipe: Recipe) -> list[str]:
    """Training time left at the measured speed of the same models (images/s, evaluation not counted)."""
    speeds = measured_speeds(store)
    seconds, unknown = 0.0, 0
    tune = recipe.tune
    for s in studies:
        done = int(((trials.study == s.name) & trials.state.isin(["COMPLETE", "PRUNED", "FAIL"])).sum()) \
            if len(trials) else 0
        images, speed = estimate(s.template)[0], speeds.get(speed_key(s.template))
        if images is None or speed is None:
            unknown += tune.trials - done
        else:
            seconds += (tune.trials - done) * images * fraction / speed
    left = [plan.specs[h] for h in plan.hashes() if not store.is_done(h)]
    tuned = files.read_json(files.folder(store.root) / files.PLAN)
    if isinstance(tuned, dict):
        tuned_plan = Plan.from_dict(tuned)
        left += [tuned_plan.specs[h] for h in tuned_plan.hashes() if not store.is_done(h)]
    else:   # not chosen yet: the tuned finals train as long as the defaults' (same images, epochs, models)
        left += [plan.specs[h] for h in plan.hashes(STUDENT_ROLE)]
    for spec in left:
        images, speed = estimate(spec)[0], speeds.get(speed_key(spec))
        if images is None or speed is None:
            unknown += 1
        else:
            seconds += images / speed
    if not seconds:
        return [_fit("estimated time: no finished run of these models in the store yet to measure speed on")]
    text = f"estimated training time left: {duration(seconds)} in one process"
    if workers > 1:
        text += f", about {duration(seconds / workers)} with {workers} workers"
    out = [_fit(text)]
    if unknown:
        out.append(_fit(f"  (plus {unknown} runs or trials of models with no measured speed)"))
    return out


__all__ = ["describe", "expected_epochs"]
