"""Optuna underneath ``kdzoo tune``: each study's storage, its sampler, asking for a trial and telling its outcome.

**Storage.** One Optuna ``JournalStorage`` file per study, ``OUT/tune/studies/<study>.journal``: an
append-only log of operations, under a lock file that is created with a symlink, which works on the NFS-
or Lustre-shared folders Slurm jobs use (SQLite's ``fcntl`` locking is unreliable there, and its
writers queue on one database). Workers on one machine and jobs on a cluster write the same files. One file
per study keeps each read short: a worker replays only its own study's log, never the whole sweep's.

**Determinism.** Trials of one study run one after another (workers take different studies), so when a
trial is asked for, every earlier trial of its study has ended. Its suggestion is drawn by a sampler created
afresh for it and seeded from (sampler seed, study, trial number, parameter): it depends on nothing but
those and the ended trials, so a rerun, or a run resumed after ``kill -9``, asks for the same values in the
same order. A trial that was running when its process died is re-attached (asked again, which returns
the values it already has; its run resumes from its checkpoint), never failed and replaced.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...space import Choice, Float, Int
from ..recipe.types import TuneSettings
from .studies import Study

JOURNALS = "studies"
FINGERPRINT = "kdzoo:settings"     # study user attribute: what the study was made with
RUN, STATUS = "kdzoo:run", "kdzoo:status"


def require_optuna() -> Any:
    try:
        import optuna  # optional dependency (the 'tune' extra): only kdzoo tune needs it
    except ImportError:
        raise ConfigError("kdzoo tune needs optuna: pip install 'optuna>=3.6' (or 'kdzoo[tune]')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage(path: str | Path) -> Any:
    optuna = require_optuna()
    try:
        from optuna.storages.journal import JournalFileBackend as backend   # optuna >= 4.0
    except ImportError:
        from optuna.storages import JournalFileStorage as backend            # optuna 3.x: the same file format
    return optuna.storages.JournalStorage(backend(str(path)))


def journal_path(folder: Path, study: Study) -> Path:
    return Path(folder) / JOURNALS / f"{study.file}.journal"


def derived_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little")


def make_sampler(settings: TuneSettings) -> Any:
    """A sampler whose every draw is made by a fresh Optuna sampler (TPE or random) seeded from the sampler
    seed, the study, the trial number and, for draws of one parameter, its name (see the module docstring)."""
    optuna = require_optuna()

    def inner(study: Any, number: int, name: str = "") -> Any:
        seed = derived_seed(settings.sampler_seed, study.study_name, number, name)
        if settings.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        extra = {} if settings.startup_trials is None else {"n_startup_trials": settings.startup_trials}
        return optuna.samplers.TPESampler(seed=seed, **extra)

    class Reseeded(optuna.samplers.BaseSampler):
        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return inner(study, trial.number).infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return inner(study, trial.number).sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            return inner(study, trial.number, name).sample_independent(study, trial, name, dist)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            inner(study, trial.number).after_trial(study, trial, state, values)

    return Reseeded()


def fingerprint(study: Study, settings: TuneSettings) -> str:
    """What a study's trials depend on besides their number: a rerun must find the same (``trials`` may grow)."""
    return json.dumps({"space": {k: repr(p) for k, p in study.space.items()}, "start": study.start,
                       "template": study.template.config_hash(), "sampler": settings.sampler,
                       "sampler_seed": settings.sampler_seed, "startup_trials": settings.startup_trials,
                       "pruner": repr(settings.pruner), "start_from_defaults": settings.start_from_defaults},
                      sort_keys=True, default=str)


class Handle:
    """A study opened on its journal: the Optuna study, its storage and its id there."""

    def __init__(self, study: Any, store: Any) -> None:
        self.study, self.storage = study, store
        self.study_id = store.get_study_id_from_name(study.study_name)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)


def open_study(folder: Path, study: Study, settings: TuneSettings) -> Handle:
    """The study's Optuna study (created on first use, trial 0 queued with the recipe's values)."""
    optuna = require_optuna()
    path = journal_path(folder, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = storage(path)
    if any(x.study_name == study.name for x in store.get_all_studies()):   # loaded without writing a line
        s = optuna.load_study(study_name=study.name, storage=store, sampler=make_sampler(settings))
    else:
        s = optuna.create_study(study_name=study.name, storage=store, direction="maximize",
                                sampler=make_sampler(settings))
    mine = fingerprint(study, settings)
    made = s.user_attrs.get(FINGERPRINT)
    if made is None:
        s.set_user_attr(FINGERPRINT, mine)
    elif made != mine:
        raise ConfigError(f"{path} holds study '{study.name}' searched with other settings (search space, "
                          f"sampler, pruner or the method's recipe entry changed); use another --out, or "
                          f"delete that file to search again")
    if settings.start_from_defaults and not s.get_trials(deepcopy=False):
        s.enqueue_trial(study.start)
    return Handle(s, store)


def ended(h: Handle) -> int:
    return sum(t.state.is_finished() for t in h.study.get_trials(deepcopy=False))


def suggest(trial: Any, name: str, p: Any) -> Any:
    if isinstance(p, Float):
        return trial.suggest_float(name, float(p.low), float(p.high), log=p.log)
    if isinstance(p, Int):
        return trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
    if isinstance(p, Choice):
        return trial.suggest_categorical(name, list(p.values))
    raise ConfigError(f"not a search-space entry (kdzoo.space Float, Int or Choice): {p!r}")


def next_trial(h: Handle, study: Study, budget: int) -> tuple[int, dict[str, Any]] | None:
    """(trial number, values) of the study's next trial: the one left running by an earlier process, else a
    new one while fewer than ``budget`` have ended; None when the study is done."""
    optuna = require_optuna()
    running = [t for t in h.study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    if running:   # re-attached: asking again returns the values it already has
        trial = optuna.trial.Trial(h.study, h.trial_id(running[0].number))
    elif ended(h) >= budget:
        return None
    else:
        trial = h.study.ask()
    with warnings.catch_warnings():   # trial 0 holds the recipe's values even where they lie outside the range
        warnings.filterwarnings("ignore", message="Fixed parameter")
        params = {name: suggest(trial, name, p) for name, p in study.space.items()}
    return trial.number, params


def tell(h: Handle, number: int, status: str, value: float, epochs: list[tuple[int, float]], run: str) -> None:
    """Record a trial's outcome: its per-epoch validation top-1 (kept when already reported), then
    finished -> its value, pruned -> pruned, diverged -> ``value`` (chance), anything else -> failed."""
    optuna = require_optuna()
    st, trial_id = h.storage, h.trial_id(number)
    frozen = st.get_trial(trial_id)
    if frozen.state.is_finished():
        return
    for epoch, v in epochs:
        if epoch not in frozen.intermediate_values and v == v:
            st.set_trial_intermediate_value(trial_id, epoch, v)
    st.set_trial_user_attr(trial_id, RUN, run)
    st.set_trial_user_attr(trial_id, STATUS, status)
    states = optuna.trial.TrialState
    if status in ("finished", "diverged") and value == value:
        h.study.tell(number, value)
    elif status == "pruned":
        h.study.tell(number, state=states.PRUNED)
    else:
        h.study.tell(number, state=states.FAIL)


__all__ = ["Handle", "JOURNALS", "RUN", "STATUS", "ended", "journal_path", "make_sampler", "next_trial",
           "open_study", "require_optuna", "storage", "suggest", "tell"]
