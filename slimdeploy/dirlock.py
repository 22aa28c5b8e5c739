"""One writer per directory: the advisory lock every stage holds while it writes (``with
DirectoryLock(run_dir, stage="export"):``), so that no writer removes another's live temporaries.

A second writer gets a one-line ``UserError`` at once, naming the holder (pid, command, start time,
written into ``DIR/.slimdeploy.lock``). The lock is a POSIX record lock (``fcntl.lockf``): the kernel
drops it when its holder dies, and unlike ``flock`` a child forked by a library does not inherit it.
A lock file a killed writer left is taken over, with a notice once the new writer has succeeded.

Within a process each directory is locked once (a per-process registry): ``slimdeploy run``'s stages
enter its lock again, only from the thread that took it. The file is never opened twice in one
process: closing any descriptor of it would drop the lock. Without ``fcntl`` (Windows) nothing is
locked, but everything else works the same.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from slimdeploy import fsutil
from slimdeploy.errors import UserError
from slimdeploy.rundir import RunDir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

LOCK_FILE = ".slimdeploy.lock"
DEFAULT_HINT = "wait for it or choose another --out"
# A refused writer waits this long for the holder's details: the holder writes them just after locking.
HOLDER_WAIT_SECONDS = 1.0
ATTEMPTS = 20  # opening and locking start again when a releasing holder removed the file in between
COMMAND_CHARS = 200

_held: dict[str, "_Held"] = {}
_registry = threading.Lock()


@dataclass
class _Held:
    fd: int | None
    lock_file: Path
    created: list[Path] = field(default_factory=list)  # directories the lock made, outermost first
    depth: int = 1
    notice: str | None = None  # a stale lock taken over, told once the writer has succeeded
    thread: int = field(default_factory=threading.get_ident)
    holder: dict | None = None  # the details written into the lock file, for that refusal


class DirectoryLock:
    """Hold ``directory``'s lock for the block. ``directory`` is made if missing (``create``: the stage's own
    maker; default ``fsutil.make_output_dir``), and on release the lock file and the directories it made
    are removed if nothing else was written there. ``hint`` ends the message a second writer gets;
    ``command``: what the holder is, for that message (default: this process's command line)."""

    def __init__(self, directory, *, stage: str | None = None, command: str | None = None, hint: str = DEFAULT_HINT,
                 create: Callable[[Path], object] | None = None):
        self.directory = Path(directory)
        self.stage, self.hint = stage, hint
        self.command = command or process_command()
        self.create = create
        self._key: str | None = None
        self._details: dict | None = None

    @classmethod
    def when(cls, wanted: bool, directory, **options):
        return cls(directory, **options) if wanted else contextlib.nullcontext()

    def __enter__(self) -> "DirectoryLock":
        key = _key(self.directory)
        with _registry:
            held = _held.get(key)
            if held is not None and held.thread != threading.get_ident():
                raise UserError(busy_message(self.directory, held.holder, self.hint))
            if held is not None:  # this thread holds it already (a stage inside `slimdeploy run`)
                held.depth += 1
            else:
                _held[key] = self._acquire()
        self._key = key
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        with _registry:
            held = _held[self._key]
            held.depth -= 1
            if held.depth:
                return
            del _held[self._key]
        _release(held)
        # Told only after the work succeeded: a failure's one-line error stays the only line.
        if held.notice and exc_type is None:
            sys.stderr.write(held.notice + "\n")

    def _acquire(self) -> _Held:
        created = _make_directory(self.directory, self.create)
        try:
            fd, notice = self._lock() if fcntl is not None else (None, None)
        except BaseException:
            _remove_empty(created)
            raise
        return _Held(fd, self.directory / LOCK_FILE, created, notice=notice, holder=self._holder_details())

    def _lock(self) -> tuple[int, str | None]:
        """The locked descriptor, and the notice when a killed writer's lock file was taken over."""
        path = self.directory / LOCK_FILE
        for _ in range(ATTEMPTS):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except FileNotFoundError:  # a holder releasing removed the directory it had made
                _make_directory(self.directory, self.create)
                continue
            except OSError as exc:
                raise UserError(f"output directory {self.directory} is not writable: {exc.strerror or exc}") from exc
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder_waiting(fd) if exc.errno in (errno.EACCES, errno.EAGAIN) else None
                os.close(fd)
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise UserError(f"cannot lock {path}: {exc.strerror or exc}") from exc
                raise UserError(busy_message(self.directory, holder, self.hint)) from None
            if _same_file(fd, path):
                return fd, self._take_over(fd)
            os.close(fd)  # locked a file its holder had just removed: lock the one there now
        raise UserError(f"cannot lock {path}: it keeps being replaced")

    def _take_over(self, fd: int) -> str | None:
        left = _parse(os.pread(fd, 4096, 0))
        notice = None
        if left is not None and left.get("pid") != os.getpid():
            notice = (f"notice: took over a stale lock of pid {left.get('pid')} ({_shown(left)}) on {self.directory}: "
                      "that process ended without releasing it")
        data = (json.dumps(self._holder_details()) + "\n").encode("utf-8")
        # The details only serve the message; a full disk must not stop a writer that holds the lock.
        with contextlib.suppress(OSError):
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        return notice

    def _holder_details(self) -> dict:
        if self._details is None:
            self._details = {"pid": os.getpid(), "command": self.command, "stage": self.stage,
                             "host": socket.gethostname(),
                             "started": datetime.now().astimezone().isoformat(timespec="seconds")}
        return self._details


def holds(directory) -> bool:
    """Whether this process holds the lock of ``directory`` or of a directory above it."""
    with _registry:
        held = list(_held)
    return any(_inside(Path(directory), Path(key)) for key in held)


def remove_stale_temporaries(directory: str | os.PathLike) -> None:
    """Delete leftovers of interrupted writes; only the lock's holder may (a live writer's look the same)."""
    directory = Path(directory)
    if not holds(directory):
        raise RuntimeError(f"remove_stale_temporaries({directory}) without holding its DirectoryLock: "
                           "it could delete another writer's temporaries")
    if not directory.is_dir():
        return
    for leftover in directory.glob(f".*{fsutil.TMP_MARK}*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def writer_directory(out_dir, run_dir=None) -> Path:
    """The directory whose lock guards writing ``out_dir``: the run directory (``run_dir``, else the nearest
    enclosing one) when ``out_dir`` lies in it, since a run's stages read what the others write; else
    ``out_dir``."""
    out_dir = Path(out_dir)
    if run_dir is not None and _inside(out_dir, Path(run_dir)):
        return Path(run_dir)
    enclosing = enclosing_run_directory(out_dir)
    return enclosing if enclosing is not None else out_dir


def enclosing_run_directory(directory) -> Path | None:
    """The nearest of ``directory`` and those above it holding ``run.json`` or ``dense/``, or None (relative
    to the working directory when it lies there and ``directory`` is relative)."""
    absolute = Path(os.path.abspath(directory))
    for probe in (absolute, *absolute.parents):
        run = RunDir(probe)
        if run.run_record.is_file() or run.dense.path.is_dir():
            try:
                return probe.relative_to(Path.cwd()) if not Path(directory).is_absolute() else probe
            except ValueError:
                return probe
    return None


def _inside(path: Path, root: Path) -> bool:
    inside, top = _key(path), _key(root)
    return inside == top or inside.startswith(top.rstrip(os.sep) + os.sep)


def contents(directory) -> list[Path]:
    """``directory``'s entries without its lock file: what was written there, not who writes."""
    return [entry for entry in Path(directory).iterdir() if entry.name != LOCK_FILE]


def clear(directory) -> None:
    """Remove everything in ``directory`` but the lock this process holds on it (``--force``)."""
    if not holds(directory):
        raise RuntimeError(f"dirlock.clear({directory}) without holding its lock")
    for entry in contents(directory):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def busy_message(directory: Path, holder: dict | None, hint: str = DEFAULT_HINT) -> str:
    if holder is None:
        return f"{directory} is being written by another process (it holds {directory / LOCK_FILE}); {hint}"
    return f"{directory} is being written by pid {holder.get('pid')} ({_shown(holder)}); {hint}"


def process_command() -> str:
    argv = list(sys.argv) or ["python"]
    head = Path(argv[0])
    if head.name == "slimdeploy" or (head.name == "__main__.py" and head.parent.name == "slimdeploy"):
        name = "slimdeploy"
    else:
        name = head.name or "python"
    text = " ".join(shlex.quote(arg) for arg in [name, *argv[1:]])
    text = " ".join(text.split())  # one line, whatever the arguments hold
    return text if len(text) <= COMMAND_CHARS else text[:COMMAND_CHARS - 1] + "…"


def _shown(holder: dict) -> str:
    """``slimdeploy export runs/x, since 14:03:12`` (the date too when it was another day)."""
    command = str(holder.get("command") or "unknown command")
    if holder.get("stage") and not command.startswith("slimdeploy "):
        command = f"{holder['stage']} from {command}"
    try:
        started = datetime.fromisoformat(str(holder.get("started")))
    except ValueError:
        return command
    same_day = started.date() == datetime.now(started.tzinfo).date()
    return f"{command}, since {started.strftime('%H:%M:%S' if same_day else '%Y-%m-%d %H:%M:%S')}"


def _holder_waiting(fd: int) -> dict | None:
    """The holder's details, read through ``fd``; they may still be on their way."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        holder = _parse(os.pread(fd, 4096, 0))
        if holder is not None or time.monotonic() > deadline:
            return holder
        time.sleep(0.02)


def _parse(data: bytes) -> dict | None:
    try:
        holder = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        there = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _key(directory: Path) -> str:
    return os.path.realpath(os.path.abspath(directory))


def _make_directory(directory: Path, create) -> list[Path]:
    """Make ``directory`` with ``create``; the directories made, outermost first."""
    missing, probe = [], directory
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    (create or fsutil.make_output_dir)(directory)
    return [path for path in reversed(missing) if path.is_dir()]


def _remove_empty(created: list[Path]) -> None:
    for path in reversed(created):  # innermost first; stops being possible at the first non-empty one
        try:
            path.rmdir()
        except OSError:
            return


def _release(held: _Held) -> None:
    if held.fd is not None:
        # Removed while still locked, so no one can lock this file after us (``_same_file``).
        if _same_file(held.fd, held.lock_file):
            with contextlib.suppress(OSError):
                held.lock_file.unlink()
        os.close(held.fd)
    _remove_empty(held.created)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_held.clear)  # a forked child holds no POSIX lock of its parent's
