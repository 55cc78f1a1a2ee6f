"""Exceptions that the CLI turns into one-line messages (exit code 2), and the warning for repaired run folders."""
from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable


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


class StorageError(KdzooError, OSError):
    """The disk failed a read or write (full, quota, I/O error); the message names the file.

    Transient: nothing about the run was wrong, so it is left unfinished and the next call retries it."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class RecoveryWarning(UserWarning):
    """Something in a run folder was truncated or corrupt and is being redone."""


class PluginWarning(UserWarning):
    """An installed plugin could not be loaded and is skipped."""


def _one_line(message: Any, category: type) -> str:
    text = " ".join(str(message).split())
    return f"kdzoo: {category.__name__}: {text}"


def one_line_warnings(layout: Callable[[str], str] | None = None) -> None:
    """Show kdzoo's own warnings as one line each (``kdzoo: RecoveryWarning: ...``), without the source
    location and code line Python adds: they report the user's files, not kdzoo's code. ``layout``: how that
    line is laid out on stderr (the command line and its worker processes pass engine.terminal.problem_text:
    wrapped on a terminal, unbroken in a pipe or a log)."""
    import warnings

    if getattr(warnings.formatwarning, "_kdzoo", None) is not None:
        return
    plain = warnings.formatwarning

    def formatwarning(message: Any, category: type, filename: str, lineno: int, line: str | None = None) -> str:
        if issubclass(category, (RecoveryWarning, PluginWarning)):
            text = _one_line(message, category)
            return (layout(text) if layout is not None else text) + "\n"
        return plain(message, category, filename, lineno, line)

    formatwarning._kdzoo = plain  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return " did you mean 'x'?" for the closest choice, or "" when none is close."""
    choices = list(choices)
    lower = {str(c).lower(): c for c in choices}   # case does not count: 'ResNet50' finds 'resnet50'
    matches = difflib.get_close_matches(str(name).lower(), list(lower), n=1, cutoff=0.5)
    return f"; did you mean '{lower[matches[0]]}'?" if matches else ""


def reject_unknown(keys: Iterable[str], known: Iterable[str], what: str) -> None:
    """Raise ConfigError for the first key not in ``known``: "unknown WHAT 'key'; did you mean ...?"."""
    known = list(known)
    for key in keys:
        if key not in known:
            raise ConfigError(f"unknown {what} '{key}'{did_you_mean(key, known)}")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 1}} -> {"train.epochs": 1}, so differences can be named one setting at a time."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 4) -> str:
    """"epochs 1 -> 2, lr 0.1 -> 0.05" for the settings whose values differ ("" when none do)."""
    a, b = flatten(old), flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k, "(unset)") != b.get(k, "(unset)")]
    parts = [f"{k.removeprefix('train.')} {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in keys[:limit]]
    return ", ".join(parts) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
