"""Ctrl-C and SIGTERM end the command even when a library swallows them.

The signal handler raises ``KeyboardInterrupt`` in whatever Python code runs at that moment.
When that code was called from C++ (pybind11 module initialisation, OpenVINO's frontends),
the library may turn it into its own error: ``ImportError: initialization failed`` or a
``RuntimeError`` with no trace of the interrupt. A broad ``except Exception`` that records
a library failure as a failed artifact or cell would then carry on as if nothing happened.
So the handler also remembers that an interrupt arrived, and those guards call
``reraise_if_interrupted`` first.

Some calls must not be interrupted at all: OpenVINO's ``convert_model`` sends telemetry
through a thread pool whose lock a ``KeyboardInterrupt`` can leave held, and its error path
then waits on that lock for ever. ``deferred()`` holds the interrupt until such a call
returns; a second one does not wait.
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
    """Treat each of ``signals`` like Ctrl-C, remembering that it arrived."""
    for signum in signals:
        signal.signal(signum, _on_signal)


def received() -> bool:
    """Whether an interrupt arrived in this process."""
    return _received


def reraise_if_interrupted(exc: BaseException) -> None:
    """Raise ``KeyboardInterrupt`` (from ``exc``) when an interrupt arrived: ``exc`` is then
    what a library made of it, not a failure of the work."""
    if _received:
        raise KeyboardInterrupt from exc


@contextlib.contextmanager
def deferred():
    """Hold Ctrl-C / SIGTERM until the block ends, then raise ``KeyboardInterrupt``."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending:
            _pending = False
            raise KeyboardInterrupt
