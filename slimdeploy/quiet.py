"""TensorFlow's start-up chatter, silenced in one place.

TensorFlow 2.21 prints "oneDNN custom operations are on..." through absl before its
logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not silence it. The file
descriptor is muted only for the import; Python errors still surface afterwards.

Stages that run TensorFlow call ``import_tensorflow()`` at their entry, after their input
was checked: a command that never needs TensorFlow (``--help``, ``run --print-config``,
``report``) never pays its import. Processes that start TensorFlow elsewhere (bench
workers) get the log level from ``quiet_environment``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import MutableMapping

# TensorFlow's C++ log level: 3 keeps only fatal messages (a user's own setting wins).
TF_LOG_LEVEL = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def quiet_environment(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set TensorFlow's C++ log level in ``env`` (this process's environment by default)
    unless already set; returns ``env``. Must happen before TensorFlow is imported."""
    env = os.environ if env is None else env
    for key, value in TF_LOG_LEVEL.items():
        env.setdefault(key, value)
    return env


@contextlib.contextmanager
def native_stderr_muted():
    """File descriptor 2 points to /dev/null inside (what C++ code prints there is dropped);
    Python's exceptions, which carry the libraries' error messages, still surface."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> None:
    """Import TensorFlow (once) with its start-up lines kept off stderr."""
    if "tensorflow" in sys.modules:
        return
    quiet_environment()
    with native_stderr_muted():
        import tensorflow
    # Retracing notices are advice for TF developers; each pruning round builds new
    # models, so they would fill the user's terminal.
    tensorflow.get_logger().setLevel("ERROR")


@contextlib.contextmanager
def openvino_telemetry_off():
    """Around ``openvino.convert_model``: its converter sends usage telemetry from a forked
    process on every call. Offline, that child can hang in getaddrinfo while holding the
    parent's stdout and stderr, so whoever reads the output to its end (a CI log, a test, a
    pipe) waits for ever after slimdeploy has exited (seen in a resumed `slimdeploy run`). The
    converter turns telemetry off in CI (``disable_in_ci``: ``CI=true``, read when each call
    starts); users of slimdeploy never opted in to it either."""
    saved = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = saved
