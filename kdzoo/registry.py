"""Name -> factory registries for losses, models, datasets and preparation stages.

Built-ins register themselves on import; third-party packages add entries
through the Python entry-point groups ``kdzoo.losses``, ``kdzoo.models``,
``kdzoo.datasets`` and ``kdzoo.stages`` (each entry point names a module or
object; loading it is enough, since registration happens at import time).
A preparation stage (``kdzoo.stages``) is what a loss declares it needs before
student training (``DistillLoss.preparation``); the engine finds it here by name.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

from .errors import ConfigError, did_you_mean
from .space import check_space


@dataclass
class Entry:
    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)  # overrides of the factory's own defaults
    source: str = "kdzoo"
    space: dict[str, Any] | None = None  # this entry's search space; None: the factory's ``search_space``

    def hyperparameters(self) -> dict[str, Any]:
        """Every keyword the factory accepts, with the default this entry uses."""
        params = {}
        for p in inspect.signature(self.factory).parameters.values():
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self":
                params[p.name] = p.default if p.default is not inspect.Parameter.empty else None
        params.update(self.defaults)
        return params


class Registry:
    def __init__(self, kind: str, entry_point_group: str | None = None, fixed: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False
        # keywords a factory gets from kdzoo itself (e.g. num_classes), not from the user
        self._fixed = fixed

    def register(self, name: str, obj: Callable | None = None, *, defaults: dict | None = None,
                 space: dict | None = None, overwrite: bool = False):
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``.

        ``space``: the entry's search space (kdzoo.space), for a variant whose defaults call for other ranges
        than the factory's own ``search_space``."""
        def add(factory: Callable) -> Callable:
            if name in self._entries and not overwrite:
                old = self._entries[name]
                if old.factory is factory and old.defaults == (defaults or {}):
                    return factory  # the same module imported twice
                raise ConfigError(f"{self.kind} '{name}' is already registered by {old.source}; "
                                  f"pick another name or pass overwrite=True")
            module = getattr(factory, "__module__", "") or ""
            source = "kdzoo" if module.startswith("kdzoo.") else module
            self._entries[name] = Entry(name, factory, dict(defaults or {}), source,
                                        dict(space) if space is not None else None)
            return factory
        return add(obj) if obj is not None else add

    def load_plugins(self) -> None:
        if self._plugins_loaded or self.group is None:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self.group):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not take kdzoo down silently
                self._plugins_loaded = False  # so every later lookup reports it too, not only the first
                raise ConfigError(f"plugin entry point '{ep.name}' ({ep.value}) of group "
                                  f"'{self.group}' failed to import: {exc}") from exc

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self.load_plugins()
        return name in self._entries

    def entry(self, name: str) -> Entry:
        self.load_plugins()
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)} "
                              f"(known: {', '.join(sorted(self._entries)) or 'none'})")
        return self._entries[name]

    def check_kwargs(self, name: str, kwargs: dict[str, Any]) -> None:
        """Raise ConfigError for keywords the factory does not take."""
        entry = self.entry(name)
        self._check_types(name, entry, kwargs)
        sig = inspect.signature(entry.factory)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return
        known = [k for k in entry.hyperparameters() if k not in self._fixed]
        for key in kwargs:
            if key not in entry.hyperparameters():
                raise ConfigError(f"{self.kind} '{name}' has no hyperparameter '{key}'"
                                  f"{did_you_mean(key, known)} (it takes: {', '.join(known) or 'none'})")

    def _check_types(self, name: str, entry: Entry, kwargs: dict[str, Any]) -> None:
        """A value whose default is a number, flag or string must be one too (``temperature=abc`` is refused)."""
        defaults = entry.hyperparameters()
        for key, value in kwargs.items():
            default = defaults.get(key)
            if key in self._fixed or default is None:
                continue
            if isinstance(default, bool):
                ok, kind = isinstance(value, bool), "true or false"
            elif isinstance(default, (int, float)):
                ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
            elif isinstance(default, str):
                ok, kind = isinstance(value, str), "a string"
            else:
                continue
            if not ok:
                raise ConfigError(f"{self.kind} '{name}': {key} must be {kind}, got {value!r}")

    def search_space(self, name: str) -> dict[str, Any]:
        """The entry's search space, checked (ConfigError, one line, for a bad declaration); {} when none."""
        entry = self.entry(name)
        space = entry.space if entry.space is not None else dict(getattr(entry.factory, "search_space", {}) or {})
        params = {k: v for k, v in entry.hyperparameters().items() if k not in self._fixed}
        check_space(f"{self.kind} '{name}'", space, params, lambda overrides: self.build(name, **overrides))
        return space

    def build(self, name: str, **kwargs: Any) -> Any:
        entry = self.entry(name)
        self.check_kwargs(name, kwargs)
        return entry.factory(**{**entry.defaults, **kwargs})


LOSSES = Registry("loss", "kdzoo.losses")
MODELS = Registry("model", "kdzoo.models", fixed=("num_classes", "in_channels", "image_size"))
DATASETS = Registry("dataset", "kdzoo.datasets")
STAGES = Registry("preparation stage", "kdzoo.stages")


def register_loss(name: str, obj: Callable | None = None, **kw: Any):
    return LOSSES.register(name, obj, **kw)


def register_model(name: str, obj: Callable | None = None, **kw: Any):
    return MODELS.register(name, obj, **kw)


def register_dataset(name: str, obj: Callable | None = None, **kw: Any):
    return DATASETS.register(name, obj, **kw)


def register_stage(name: str, obj: Callable | None = None, **kw: Any):
    return STAGES.register(name, obj, **kw)
