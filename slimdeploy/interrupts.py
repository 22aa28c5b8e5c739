"""Ctrl-C and SIGTERM end the command even when a library swallows them.

A ``KeyboardInterrupt`` raised in Python called from C++ (pybind11 initialisation, OpenVINO's
frontends) may come back as the library's own error, which a broad ``except Exception`` would record
as a failed artifact or cell: the handler remembers the interrupt, and such guards call
``reraise_if_interrupted``. ``deferred()`` holds it until a call that must not be interrupted returns
(OpenVINO's ``convert_model``, whose telemetry lock an interrupt can leave held for ever).
"""

from __future__ import annotations

import contextlib
import signal

_received = False
_deferring = 0
_pending = False


def _on_signal(signum, frame):
    global _received, _pending
    _received = True
    if _deferring and not _pending:
        _pending = True
        return
    raise KeyboardInterrupt


def install(signals=(signal.SIGINT, signal.SIGTERM)) -> None:
    for signum in signals:
        signal.signal(signum, _on_signal)


def received() -> bool:
    return _received


def reraise_if_interrupted(exc: BaseException) -> None:
    """Raise ``KeyboardInterrupt`` (from ``exc``, what a library made of it) when an interrupt arrived."""
    if _received:
        raise KeyboardInterrupt from exc


@contextlib.contextmanager
def deferred():
    """Hold Ctrl-C / SIGTERM until the block ends, then raise ``KeyboardInterrupt``; a second one does not wait."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending:
            _pending = False
            raise KeyboardInterrupt
