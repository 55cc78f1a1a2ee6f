"""Preparation stages: work a loss declares it needs once before student training.

A loss declares a stage by name with ``DistillLoss.preparation`` (kdzoo.losses.base.Preparation);
the engine (kdzoo/engine/prepare.py) looks the stage up in ``kdzoo.registry.STAGES``, so it never
names a method, and owns everything around it: the cache (a product is made once per teacher,
student-side data, seed and settings, then reused), the query budget, the record and artifacts in
the run folder. A stage only makes its product. It is a class registered with ``register_stage``
whose instances have

    build(settings, ctx) -> nn.Module            the product, untrained, on ctx.device
    queries_needed(settings, ctx) -> int         teacher queries ``train`` will spend
    train(product, settings, ctx) -> (int, dict) train it in place; return the queries spent and
                                                 artifacts {file name: bytes} kept beside the run

``ctx`` is the engine's PrepareContext (teacher, bundle, device, seed, ...). Built-in stages:
``deprivatize`` (MEKD's generator, deprivatize.py).
"""
from __future__ import annotations

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
