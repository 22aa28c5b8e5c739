"""Libraries' chatter, silenced in one place. TensorFlow prints some through absl before its logging is
initialised: stages import it with ``import_tensorflow()`` only when they need it, and processes that
start it elsewhere (bench workers) get the log level from ``quiet_environment``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import MutableMapping

# TensorFlow's C++ log level: 3 keeps only fatal messages (a user's own setting wins).
TF_LOG_LEVEL = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def quiet_environment(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set TensorFlow's C++ log level in ``env`` (default: this process's) unless set; before it is imported."""
    env = os.environ if env is None else env
    for key, value in TF_LOG_LEVEL.items():
        env.setdefault(key, value)
    return env


@contextlib.contextmanager
def native_stderr_muted():
    """File descriptor 2 points to /dev/null inside (C++ prints are dropped; Python's exceptions surface)."""
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
    if "tensorflow" in sys.modules:
        return
    quiet_environment()
    with native_stderr_muted():
        import tensorflow  # lazy: heavy
    # Retracing notices (each pruning round builds new models) would fill the user's terminal.
    tensorflow.get_logger().setLevel("ERROR")


class _Collect(logging.Handler):
    def __init__(self, records: list):
        super().__init__(logging.DEBUG)
        self.emit = records.append


@contextlib.contextmanager
def silenced(*names: str, records: list | None = None):
    """Python's stdout and stderr swallowed and the ``names`` loggers at ERROR level inside; with ``records``,
    their records are collected there (and yielded) instead of handled."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger.level, logger.propagate, logger.handlers[:]) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
        if records is not None:
            logger.handlers, logger.propagate = [_Collect(records)], False
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield records
    finally:
        for logger, (level, propagate, handlers) in zip(loggers, saved):
            logger.setLevel(level)  # setLevel, not assignment: it clears the loggers' level caches
            logger.handlers, logger.propagate = handlers, propagate


@contextlib.contextmanager
def openvino_telemetry_off():
    """Around ``openvino.convert_model``, whose telemetry child can hang offline holding the parent's stdout
    and stderr (a reader then waits for ever): the converter sends none when ``CI=true``."""
    saved = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = saved
