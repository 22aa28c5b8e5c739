"""Every export target by name. Adding a target is one module here (defining ``TARGET``) and one line in
BUILTIN; every other module asks this registry (``names`` is the order artifacts are built and listed in).

Plug-ins from outside the package, as for runtimes: ``SLIMDEPLOY_EXPORT_PLUGINS`` names modules, each
calling ``register(target)`` when imported, listed after the built-in targets. A backend that brings a
runtime and a target can be one module named in both variables.
"""

from __future__ import annotations

import importlib

from slimdeploy.export.target import Target
from slimdeploy.runtimes.registry import import_plugin_modules

PLUGINS_ENV = "SLIMDEPLOY_EXPORT_PLUGINS"

BUILTIN = (
    "slimdeploy.export.onnx",
    "slimdeploy.export.openvino",
    "slimdeploy.export.tensorrt",
    "slimdeploy.export.litert",
)

TARGETS: dict[str, Target] = {}

# export.json files older than the targets listed the Keras model itself, run by TensorFlow.
LEGACY = {"keras": ("Keras", "tensorflow")}


def register(target: Target) -> Target:
    """Add (or replace) a target; its position is the order of first registration."""
    TARGETS[target.name] = target
    return target


def _load_plugins() -> None:
    import_plugin_modules(PLUGINS_ENV)


def names() -> tuple[str, ...]:
    _load_plugins()
    return tuple(TARGETS)


def get_target(name: str) -> Target:
    _load_plugins()
    return TARGETS[name]


def _known(name: str | None) -> Target | None:
    _load_plugins()
    return TARGETS.get(name) if name is not None else None


def display_name(name: str | None) -> str:
    """For people: "OpenVINO IR"; an unknown name is shown as it is."""
    known = _known(name)
    if known is not None:
        return known.display_name or known.name
    return LEGACY[name][0] if name in LEGACY else str(name)


def verifying_runtime(name: str | None) -> str | None:
    """The runtime a target's artifacts are verified in (None: an unknown target)."""
    known = _known(name)
    if known is not None:
        return known.runtime
    return LEGACY[name][1] if name in LEGACY else None


for _module in BUILTIN:
    register(importlib.import_module(_module).TARGET)
_load_plugins()
