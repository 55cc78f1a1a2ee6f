"""What a recipe may bring in from outside: ``${VAR}`` expansion and plugin imports (files or modules)."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_vars(text: str) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$VAR``; raise KeyError(VAR) for an unset one without default."""
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        value = os.environ.get(name)
        if value:  # like the shell's ":-", an empty variable takes the default
            return value
        if m.group(1) and m.group(2) is not None:
            return m.group(2)
        if value is not None:
            return value
        raise KeyError(name)
    return os.path.expanduser(_VAR.sub(sub, text))


def import_plugin(ref: str) -> None:
    """Import a plugin: an absolute ``.py`` path (once per file) or a module name."""
    if ref.endswith(".py"):
        path = Path(ref)
        name = f"kdzoo_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_" \
               f"{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    else:
        importlib.import_module(ref)


def import_plugins(refs: list[str]) -> None:
    for ref in refs:
        import_plugin(ref)


__all__ = ["expand_vars", "import_plugin", "import_plugins"]
