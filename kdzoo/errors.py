"""Exceptions that the CLI turns into one-line messages (exit code 2), and the warning for repaired run folders."""
from __future__ import annotations

import difflib
from typing import Iterable


class KdzooError(Exception):
    """Base of every error kdzoo reports to a user as one line."""


class ConfigError(KdzooError, ValueError):
    """A name, hyperparameter, recipe entry or flag that kdzoo cannot accept."""


class DataNotFoundError(KdzooError, FileNotFoundError):
    """Dataset files are not where kdzoo looked for them."""


class CheckpointError(KdzooError):
    """A checkpoint is missing, unreadable or does not fit the model."""


class AccessError(KdzooError):
    """A loss needs more teacher access than given, or a query budget ran out."""


class RecoveryWarning(UserWarning):
    """Something in a run folder was truncated or corrupt and is being redone."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return " did you mean 'x'?" for the closest choice, or "" when none is close."""
    matches = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{matches[0]}'?" if matches else ""


def reject_unknown(keys: Iterable[str], known: Iterable[str], what: str) -> None:
    """Raise ConfigError for the first key not in ``known``: "unknown WHAT 'key'; did you mean ...?"."""
    known = list(known)
    for key in keys:
        if key not in known:
            raise ConfigError(f"unknown {what} '{key}'{did_you_mean(key, known)}")
