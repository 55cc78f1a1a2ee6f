"""The pruner of a tuning trial, run in the process that trains it (``trainer.Trainer(on_epoch=...)``).

After each epoch but the last, the trial's validation top-1 is reported to its study's journal, then
Optuna's pruner (successive halving or Hyperband, epochs as the resource) decides whether it goes on.

The pruner does not read or write its state in the journal. Optuna's successive halving records "this
trial passed rung k" as it decides; a process killed between that record and the trial's checkpoint
would, on resuming, find the record and decide the epoch differently. Instead, the pruner's state is
rebuilt in memory for every trial: the study's ended trials, in trial order, report their epochs one by
one to an in-memory study with the same pruner (stopping where it stops them), then the running trial's
epochs so far. So a decision depends only on reported values, and a rerun or a resumed trial gets the same
one. The only thing a trial writes while it trains is its own per-epoch value (idempotent); its decision to
stop is saved in its run's checkpoint (status ``pruned``), which the trainer keeps on resuming.
"""
from __future__ import annotations

from typing import Any, Callable

from ..recipe.types import PrunerSettings
from .search import require_optuna, storage


def make_pruner(settings: PrunerSettings | dict[str, Any] | None, epochs: int) -> Any:
    optuna = require_optuna()
    if settings is None:
        return None
    s = settings if isinstance(settings, PrunerSettings) else PrunerSettings(**settings)
    if s.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=s.min_epochs, max_resource=epochs,
                                              reduction_factor=s.reduction_factor)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=s.min_epochs, reduction_factor=s.reduction_factor,
                                                  min_early_stopping_rate=0)


class Replay:
    """The pruner's view of one study, rebuilt from the reported values of its ended trials."""

    def __init__(self, study_name: str, past: list[Any], pruner: Any) -> None:
        optuna = require_optuna()
        states = optuna.trial.TrialState
        self.sim = optuna.create_study(study_name=study_name, direction="maximize", pruner=pruner,
                                       sampler=optuna.samplers.RandomSampler(seed=0))
        for t in sorted(past, key=lambda t: t.number):
            live = self.sim.ask()
            for step, value in sorted(t.intermediate_values.items()):
                live.report(value, step)
                if live.should_prune():
                    break
            if t.state == states.COMPLETE:
                self.sim.tell(live, t.value)
            else:
                self.sim.tell(live, state=states.PRUNED if t.state == states.PRUNED else states.FAIL)
        self.current = self.sim.ask()
        self.stopped = False
        self.step = 0

    def decide(self, values: dict[int, float], epoch: int) -> bool:
        """Report the current trial's epochs up to ``epoch`` (those not yet reported here); True: stop it."""
        for step in range(self.step + 1, epoch + 1):
            self.step = step
            if step in values and not self.stopped:
                self.current.report(values[step], step)
                self.stopped = self.current.should_prune()
        return self.stopped


def epoch_hook(info: dict[str, Any]) -> Callable[[int, dict[str, Any]], bool]:
    """The trainer's ``on_epoch`` for a trial: ``info`` holds the study's journal, name, the trial number,
    the pruner settings and the run's epochs (the payload's ``trial``)."""
    st = storage(info["journal"])
    study_id = st.get_study_id_from_name(info["study"])
    trial_id = st.get_trial_id_from_study_id_trial_number(study_id, int(info["number"]))
    pruner = make_pruner(info.get("pruner"), int(info["epochs"]))
    replay: list[Replay] = []   # built at the first epoch: its study's earlier trials have all ended by then

    def hook(member: Any, record: dict[str, Any]) -> bool:
        epoch, value = int(record["epoch"]), float(record.get("val_top1", float("nan")))
        reported = st.get_trial(trial_id).intermediate_values
        if epoch not in reported and value == value:
            st.set_trial_intermediate_value(trial_id, epoch, value)
            reported = {**reported, epoch: value}
        if pruner is None:
            return False
        if not replay:
            past = [t for t in st.get_all_trials(study_id, deepcopy=False) if t.number < int(info["number"])]
            replay.append(Replay(info["study"], past, pruner))
        return replay[0].decide(reported, epoch)

    return hook


__all__ = ["Replay", "epoch_hook", "make_pruner"]
