"""Runtimes by name. Adding a runtime is one new module here and one line in BUILTIN.

A runtime module (``runtimes/<name>.py``) is the only place that knows its runtime: it
defines ``PLUGIN``, a ``RuntimePlugin`` with its names, artifact suffixes, availability,
``Session`` class, option fields, and what it allows (reshape, crosscheck, profile). Every
other module asks this registry.

Runtime modules import their library only when a session is opened, so listing
runtimes (and ``--help``) never loads TensorFlow, and a missing library is reported as
unavailable with its reason.

Plug-ins from outside the package: ``SLIMDEPLOY_RUNTIME_PLUGINS`` names modules
(comma-separated, importable from ``sys.path``), each calling ``register(plugin)`` when
imported. They are imported when this registry is first imported and on each later use
(for a name added since), in every process that uses it (bench workers inherit the
environment), and are listed after the built-in runtimes.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from slimdeploy.runtimes.session import Availability, RuntimePlugin, Session

PLUGINS_ENV = "SLIMDEPLOY_RUNTIME_PLUGINS"

# The order is the sort order of tables and reports.
BUILTIN = (
    "slimdeploy.runtimes.tensorflow",
    "slimdeploy.runtimes.onnxruntime",
    # OpenVINO reads ONNX too; an IR is preferred when both exist.
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
    known = _known(name)
    return known.display_name if known else name


def short_name(name: str) -> str:
    """For narrow columns: "ORT"; an unknown name is shown as it is."""
    known = _known(name)
    return known.short_name if known else name


def sort_key(name: str) -> int:
    """Registry position; unknown runtimes sort last."""
    _load_plugins()
    order = list(RUNTIMES)
    return order.index(name) if name in RUNTIMES else len(order)


def accepts_reshape(name: str) -> bool:
    known = _known(name)
    return bool(known and known.accepts_reshape)


def can_crosscheck(name: str) -> bool:
    known = _known(name)
    return bool(known and known.can_crosscheck)


def runtime_options(name: str, settings) -> dict:
    """The settings that distinguish a cell of this runtime (part of the cell id)."""
    known = _known(name)
    return known.options(settings) if known else {}


def names() -> tuple[str, ...]:
    """Every registered runtime, in registry (sort) order."""
    _load_plugins()
    return tuple(RUNTIMES)


def builtin_names() -> tuple[str, ...]:
    """The runtimes slimdeploy itself defines, in order: what the bench tries by default (a
    plug-in is benched when asked for by name)."""
    return tuple(importlib.import_module(module).PLUGIN.name for module in BUILTIN)


for _module in BUILTIN:
    register(importlib.import_module(_module).PLUGIN)
# Also here, for callers that read RUNTIMES directly; the functions above load any named later.
_load_plugins()
