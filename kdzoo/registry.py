"""Name -> factory registries for losses, models, datasets and preparation stages.

Every entry registers itself when its module is imported. A registry imports
its built-in package (``kdzoo.losses``, ``kdzoo.models``, ``kdzoo.data``,
``kdzoo.stages``, named below by string, so no lower layer imports an upper
one) and the Python entry-point groups ``kdzoo.losses``, ``kdzoo.models``,
``kdzoo.datasets`` and ``kdzoo.stages`` on its first lookup (``names``, ``in``,
``entry``, ``build``): looking a name up never depends on who imported what
before. A preparation stage (``kdzoo.stages``) is what a loss declares it needs
before student training (``DistillLoss.preparation``); the engine finds it here
by name.
"""
from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass, field
import sys
from importlib import metadata
from typing import Any, Callable

from .errors import ConfigError, PluginWarning, did_you_mean
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
    def __init__(self, kind: str, entry_point_group: str | None = None, fixed: tuple[str, ...] = (),
                 builtins: str | None = None) -> None:
        self.kind = kind
        self.group = entry_point_group
        self.builtins = builtins  # the package whose import registers the built-in entries
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False
        self.broken: dict[str, str] = {}   # entry point name -> why it could not be loaded
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
        """Import the group's entry points once. One that fails (an exception, or ``sys.exit``) is reported
        in one line (a ``PluginWarning``) and skipped: kdzoo works on without what it would have registered,
        and a name only it could provide is refused with a note naming it (``broken_note``)."""
        if self.builtins is not None and self.builtins not in sys.modules:
            importlib.import_module(self.builtins)
        if self._plugins_loaded or self.group is None:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self.group):
            try:
                ep.load()
            except (Exception, SystemExit) as exc:   # a plugin must never end kdzoo, silently or not
                if isinstance(exc, SystemExit):
                    why = f"it called sys.exit({exc.code!r})"
                else:
                    first = (str(exc).strip().splitlines() or [""])[0]
                    why = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
                self.broken[ep.name] = f"plugin entry point '{ep.name}' ({ep.value}) of group '{self.group}' " \
                                       f"failed to import ({why})"
                warnings.warn(f"{self.broken[ep.name]}; skipped", PluginWarning, stacklevel=2)

    def broken_note(self, name: str = "") -> str:
        """"; plugin entry point ... failed to import (...)" for an unknown ``name``, when a plugin failed."""
        if not self.broken:
            return ""
        if name in self.broken:   # the entry point is named like what it registers: say so exactly
            return f"; '{name}' would come from {self.broken[name]}"
        return "; " + "; ".join(f"{msg}, which may provide it" for msg in self.broken.values())

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
                              f"(known: {', '.join(sorted(self._entries)) or 'none'}){self.broken_note(name)}")
        return self._entries[name]

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name``, matched without regard to case when it is not registered as
        given (``MobileNetV2`` -> ``mobilenetv2``); an unknown name is the ConfigError of ``entry``."""
        self.load_plugins()
        if name not in self._entries:
            same = [n for n in self._entries if n.lower() == str(name).lower()]
            if len(same) == 1:
                return same[0]
        return self.entry(name).name

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

    def space_defaults(self, name: str) -> dict[str, Any]:
        """The value each searched hyperparameter takes when unset: the entry's default, or, where that is
        None (resolved by the factory, e.g. sdd's warm-up from its base), the built object's attribute."""
        space = self.search_space(name)
        defaults = self.entry(name).hyperparameters()
        if any(defaults[k] is None for k in space):
            built = self.build(name)
            return {k: getattr(built, k) if defaults[k] is None else defaults[k] for k in space}
        return {k: defaults[k] for k in space}

    def build(self, name: str, **kwargs: Any) -> Any:
        entry = self.entry(name)
        self.check_kwargs(name, kwargs)
        return entry.factory(**{**entry.defaults, **kwargs})


LOSSES = Registry("loss", "kdzoo.losses", builtins="kdzoo.losses")
MODELS = Registry("model", "kdzoo.models", fixed=("num_classes", "in_channels", "image_size"), builtins="kdzoo.models")
DATASETS = Registry("dataset", "kdzoo.datasets", builtins="kdzoo.data")
STAGES = Registry("preparation stage", "kdzoo.stages", builtins="kdzoo.stages")


def register_loss(name: str, obj: Callable | None = None, **kw: Any):
    return LOSSES.register(name, obj, **kw)


def register_model(name: str, obj: Callable | None = None, **kw: Any):
    return MODELS.register(name, obj, **kw)


def register_dataset(name: str, obj: Callable | None = None, **kw: Any):
    return DATASETS.register(name, obj, **kw)


def register_stage(name: str, obj: Callable | None = None, **kw: Any):
    return STAGES.register(name, obj, **kw)
