"""Runtimes by name. Adding a runtime is one new module here (defining ``PLUGIN``, a ``RuntimePlugin``)
and one line in BUILTIN; every other module asks this registry. Runtime modules import their library
only when a session is opened, so a missing library is reported as unavailable, never a crash.

Plug-ins from outside the package: ``SLIMDEPLOY_RUNTIME_PLUGINS`` names modules (comma-separated,
importable from ``sys.path``), each calling ``register(plugin)`` when imported; they are imported on
first and each later use (bench workers inherit the variable) and listed after the built-in runtimes.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from slimdeploy import environment
from slimdeploy.runtimes.session import Availability, RuntimePlugin, Session

PLUGINS_ENV = "SLIMDEPLOY_RUNTIME_PLUGINS"

# The order is the sort order of tables and reports.
BUILTIN = (
    "slimdeploy.runtimes.tensorflow",
    "slimdeploy.runtimes.onnxruntime",
    "slimdeploy.runtimes.openvino",
    "slimdeploy.runtimes.tensorrt",
    "slimdeploy.runtimes.litert",
)

RUNTIMES: dict[str, RuntimePlugin] = {}


def register(plugin: RuntimePlugin) -> RuntimePlugin:
    """Add (or replace) a runtime; its position is the order of first registration."""
    RUNTIMES[plugin.name] = plugin
    return plugin


def import_plugin_modules(variable: str) -> None:
    """Import the modules the environment variable names (comma-separated; each registers itself
    once): the runtime and the export registries' plug-ins alike."""
    for module in filter(None, (m.strip() for m in os.environ.get(variable, "").split(","))):
        importlib.import_module(module)


def _load_plugins() -> None:
    import_plugin_modules(PLUGINS_ENV)


def plugin(name: str) -> RuntimePlugin:
    _load_plugins()
    return RUNTIMES[name]


def _known(name: str) -> RuntimePlugin | None:
    _load_plugins()
    return RUNTIMES.get(name)


def runtime_module(name: str):
    return importlib.import_module(plugin(name).module)


def availability(name: str) -> Availability:
    return plugin(name).availability()


def all_availability(names=None) -> dict[str, dict]:
    _load_plugins()
    return {name: availability(name).to_dict() for name in (names or RUNTIMES)}


def open_session(name: str, artifact: str | Path, batch: int, threads: int, options: dict | None = None,
                 mode: str = "latency") -> Session:
    return plugin(name).open(artifact, batch, threads, options, mode)


def pick_artifact(name: str, paths) -> Path | None:
    """The artifact this runtime prefers among a model's files (None: it runs none of them)."""
    by_suffix = {Path(p).suffix: Path(p) for p in paths}
    for suffix in plugin(name).suffixes:
        if suffix in by_suffix:
            return by_suffix[suffix]
    return None


def display_name(name: str) -> str:
    """For people: "ONNX Runtime"; an unknown name is shown as it is."""
    return getattr(_known(name), "display_name", name)


def short_name(name: str) -> str:
    """For narrow columns: "ORT"; an unknown name is shown as it is."""
    return getattr(_known(name), "short_name", name)


def sort_key(name: str) -> int:
    """Registry position; unknown runtimes sort last."""
    _load_plugins()
    order = list(RUNTIMES)
    return order.index(name) if name in RUNTIMES else len(order)


def accepts_reshape(name: str) -> bool:
    return getattr(_known(name), "accepts_reshape", False)


def can_crosscheck(name: str) -> bool:
    return getattr(_known(name), "can_crosscheck", False)


def runtime_options(name: str, settings) -> dict:
    """The settings that distinguish a cell of this runtime (part of the cell id)."""
    known = _known(name)
    return known.options(settings) if known else {}


def names() -> tuple[str, ...]:
    _load_plugins()
    return tuple(RUNTIMES)


def builtin_names() -> tuple[str, ...]:
    """The runtimes slimdeploy itself defines: what the bench tries by default (a plug-in when named)."""
    return tuple(importlib.import_module(module).PLUGIN.name for module in BUILTIN)


def describe_environment(runtimes=None) -> dict:
    """``environment.describe()`` with ``devices``: the runtimes' own facts about their device, for
    ``runtimes`` (the ones a result measured; None: every registered one)."""
    _load_plugins()
    plugins = [RUNTIMES[name] for name in (RUNTIMES if runtimes is None else runtimes) if name in RUNTIMES]
    facts = {p.name: p.device() for p in plugins if p.device is not None}
    return {**environment.describe(), "devices": {name: f for name, f in facts.items() if f is not None}}


for _module in BUILTIN:
    register(importlib.import_module(_module).PLUGIN)
_load_plugins()  # also here, for callers that read RUNTIMES directly; the functions above load any named later


def device_name(devices: dict) -> str | None:
    """The device as the first runtime that names it does (bench.json ``environment.devices``)."""
    for name, facts in (devices or {}).items():
        known = _known(name)
        if known is not None and known.device_name is not None and isinstance(facts, dict):
            found = known.device_name(facts)
            if found:
                return found
    return None
