"""One writer per directory (``slimdeploy.dirlock``): a second writer is refused at once, naming
the holder; the lock file a killed writer left is taken over with a notice; a process enters
its own lock again (``slimdeploy run`` and its stages).

The holders here are real slimdeploy processes. Each is stopped (SIGSTOP) as soon as its lock
file names it, so the second writer surely meets a held lock, however slow the machine is."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli_here
from slimdeploy import dirlock, fsutil
from slimdeploy.dirlock import LOCK_FILE, DirectoryLock, writer_directory
from slimdeploy.errors import UserError

# Shortest real benchmark: one runtime, one batch, one worker, a few calls.
FAST_BENCH = ("--runtime", "onnxruntime", "--batch", "1", "--min-iters", "10", "--min-time", "0.05", "--warmup", "2",
              "--instances", "1", "--processes", "1")
# The refusal, as docs/errors.md is to list it (rows proposed with this test).
REFUSED = re.compile(r"slimdeploy (?P<command>\w+): error: (?P<dir>.+) is being written by pid (?P<pid>\d+) "
                     r"\((?P<holder>.+), since \d\d:\d\d:\d\d\); wait for it or choose another --out")
HOLDER_SCRIPT = ("import sys; from slimdeploy.dirlock import DirectoryLock\n"
                 "with DirectoryLock(sys.argv[1], stage='export', command='slimdeploy export somewhere'):\n"
                 "    print('held', flush=True); sys.stdin.read()\n")


@pytest.fixture(scope="module")
def exported_run(tiny_run, tmp_path_factory) -> Path:
    """tiny_run with its dense model exported to ONNX: what a bench reads. Copy it to write."""
    run_dir = tmp_path_factory.mktemp("locked") / "run"
    shutil.copytree(tiny_run, run_dir)
    result = run_cli_here("export", str(run_dir), "--target", "onnx", "--quiet")
    assert result.returncode == 0, result.stderr
    return run_dir


def start(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "slimdeploy", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def lock_holder(directory: Path) -> dict | None:
    # Reading another process's lock file is safe: this process holds no lock on it.
    try:
        return json.loads((directory / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None


def wait_until_locked(process: subprocess.Popen, directory: Path, timeout: float = 300) -> dict:
    """The lock file's content once it names ``process`` (which must still be running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = lock_holder(directory)
        if holder and holder.get("pid") == process.pid:
            return holder
        if process.poll() is not None:
            pytest.fail(f"the holder ended before its lock was seen: {process.communicate()}")
        time.sleep(0.02)
    pytest.fail(f"{directory / LOCK_FILE} never named pid {process.pid}")


def stopped(pid: int) -> bool:
    # /proc/PID/stat: "pid (name) STATE ..."; T is stopped.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@contextlib.contextmanager
def paused_holder(process: subprocess.Popen, directory: Path):
    """``process`` stopped while it holds ``directory``'s lock; continued afterwards (and, should a
    check fail, ended). A watchdog continues it after two minutes, so a writer that waited for
    the lock instead of refusing would make the test fail, not hang; yields that watchdog's flag."""
    wait_until_locked(process, directory)
    os.kill(process.pid, signal.SIGSTOP)
    while not stopped(process.pid):
        time.sleep(0.01)
    assert lock_holder(directory)["pid"] == process.pid  # stopped while holding it, not after releasing
    released = threading.Event()

    def watchdog():
        released.set()
        os.kill(process.pid, signal.SIGCONT)

    timer = threading.Timer(120, watchdog)
    timer.start()
    try:
        yield released
    except BaseException:
        process.kill()
        raise
    finally:
        timer.cancel()
        os.kill(process.pid, signal.SIGCONT)


def timed_cli_here(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """``run_cli_here`` and the seconds it took."""
    started = time.monotonic()
    result = run_cli_here(*args, cwd=cwd)
    return result, time.monotonic() - started


def refused_cli_here(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """``run_cli_here`` tried twice while refused: the second try and its seconds (the first pays this
    process's imports, TensorFlow among them, which the work timed afterwards no longer pays)."""
    first, _ = timed_cli_here(*args, cwd=cwd)
    assert first.returncode == 2, first.stderr
    return timed_cli_here(*args, cwd=cwd)


def assert_refused(result, command: str, directory: Path, holder: subprocess.Popen, released: threading.Event) -> None:
    assert not released.is_set(), "the second writer waited for the first instead of being refused"
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    match = REFUSED.fullmatch(lines[0])
    assert match, lines[0]
    assert match["command"] == command and match["dir"] == str(directory) and int(match["pid"]) == holder.pid
    assert match["holder"].startswith(f"slimdeploy {command} {directory}"), lines[0]


def assert_refused_at_once(refused_seconds: float, args: tuple, cwd: Path) -> None:
    """Refused before the work, not after it: in well under the time the same command takes to do
    its work once the directory is free (both measured here, so on any machine's speed)."""
    done, work_seconds = timed_cli_here(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert refused_seconds < work_seconds / 2, (refused_seconds, work_seconds)


def assert_nothing_left(directory: Path) -> None:
    assert not (directory / LOCK_FILE).exists()
    assert not [p for p in directory.rglob("*") if fsutil.TMP_MARK in p.name]


def test_a_lock_is_refused_to_another_process_entered_again_by_its_own_and_taken_over_when_left(tmp_path, capsys):
    directory = tmp_path / "made" / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(directory)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UserError) as refused:
            with DirectoryLock(directory, stage="bench"):
                pass
        assert re.fullmatch(rf"{re.escape(str(directory))} is being written by pid {holder.pid} \(slimdeploy export "
                            r"somewhere, since \d\d:\d\d:\d\d\); wait for it or choose another --out", str(refused.value))
    finally:
        holder.kill()  # SIGKILL: its lock file stays behind, naming it
        holder.communicate()
    assert lock_holder(directory)["pid"] == holder.pid
    (directory / ".x.tmp-1").write_text("a killed writer's temporary")
    capsys.readouterr()
    with DirectoryLock(directory, stage="bench"):
        with DirectoryLock(directory.parent / ".." / "made" / "out", stage="run"):  # entered again, spelt otherwise
            dirlock.remove_stale_temporaries(directory)  # allowed under the lock only
        assert dirlock.contents(directory) == []
    assert not (directory / LOCK_FILE).exists()
    # Told once the work succeeded; a failing writer's error stays its only line.
    assert f"took over a stale lock of pid {holder.pid} (slimdeploy export somewhere, since " in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="without holding its DirectoryLock"):
        dirlock.remove_stale_temporaries(directory)
    # A lock on a directory it made leaves nothing when nothing was written there.
    with DirectoryLock(tmp_path / "new" / "dir"):
        assert (tmp_path / "new" / "dir" / LOCK_FILE).is_file()
    assert not (tmp_path / "new").exists()


def test_an_output_inside_a_run_directory_is_guarded_by_the_runs_lock(tiny_run, tmp_path, monkeypatch):
    # `export runs/x` locks runs/x; `export m.keras --out runs/x/exports` writes the same files.
    run_dir = tmp_path / "runs" / "x"
    (run_dir / "dense").mkdir(parents=True)
    model = tmp_path / "m.keras"
    shutil.copy(tiny_run / "dense" / "model.keras", model)
    recorded = tmp_path / "recorded"  # a run known by its run.json alone (before train made dense/)
    recorded.mkdir()
    (recorded / "run.json").write_text("{}")
    assert writer_directory(run_dir / "exports") == run_dir
    assert writer_directory(run_dir / "exports" / "m") == run_dir
    assert writer_directory(run_dir) == run_dir
    assert writer_directory(recorded / "report") == recorded
    assert writer_directory(tmp_path / "elsewhere" / "exports") == tmp_path / "elsewhere" / "exports"
    monkeypatch.chdir(tmp_path)
    assert writer_directory(Path("runs/x/exports")) == Path("runs/x")  # spelt as given
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(run_dir)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        result, seconds = refused_cli_here("export", str(model), "--target", "onnx", "--out", str(run_dir / "exports"),
                                           "--quiet", cwd=tmp_path)
        # bench locks before it reads its sources (seconds of hashing and checks for a large
        # model): told "busy" first, even by a source it would refuse.
        (tmp_path / "garbage.onnx").write_bytes(b"not a model")
        bench, bench_seconds = refused_cli_here("bench", str(tmp_path / "garbage.onnx"), "--out",
                                                str(run_dir / "elsewhere.json"), "--quiet", cwd=tmp_path)
    finally:
        holder.communicate("")  # its stdin closed: it releases the lock and ends
    assert result.returncode == 2, result.stderr
    assert f"{run_dir} is being written by pid {holder.pid} (slimdeploy export somewhere, since " in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert bench.returncode == 2, bench.stderr
    assert re.fullmatch(rf"slimdeploy bench: error: {re.escape(str(run_dir))} is being written by pid {holder.pid} "
                        r"\(slimdeploy export somewhere, since \d\d:\d\d:\d\d\); wait for it or choose another --out\n",
                        bench.stderr), bench.stderr
    assert not (run_dir / "exports").exists()
    assert not (run_dir / LOCK_FILE).exists()  # the holder released it; the refused export left nothing
    # At once: refused in well under the time the export takes once the directory is free (both
    # measured here, so on any machine); the bench above was refused before reading its source.
    done, export_seconds = timed_cli_here("export", str(model), "--target", "onnx", "--out", str(run_dir / "exports"),
                                            "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert seconds < export_seconds / 2, (seconds, export_seconds)


def test_another_thread_of_the_holding_process_is_refused(tmp_path):
    refused = []

    def second_writer():
        try:
            with DirectoryLock(tmp_path, stage="export"):
                pass
        except UserError as exc:
            refused.append(str(exc))

    with DirectoryLock(tmp_path, stage="bench", command="slimdeploy bench here"):
        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join()
        assert (tmp_path / LOCK_FILE).exists()  # the refusal left the holder's lock alone
    assert len(refused) == 1
    assert re.fullmatch(rf"{re.escape(str(tmp_path))} is being written by pid {os.getpid()} \(slimdeploy bench here, "
                        r"since \d\d:\d\d:\d\d\); wait for it or choose another --out", refused[0]), refused[0]
    assert not (tmp_path / LOCK_FILE).exists()


@pytest.mark.slow
def test_two_exports_into_one_run_one_is_refused_at_once(exported_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run, run_dir)
    args = ("export", str(run_dir), "--target", "onnx", "--verify-limit", "200", "--force", "--quiet")
    first = start(*args, cwd=tmp_path)
    with paused_holder(first, run_dir) as released:
        # --force as well: without the lock, this export would remove the first one's staging directory.
        second, seconds = refused_cli_here(*args, cwd=tmp_path)
        assert_refused(second, "export", run_dir, first, released)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    manifest = json.loads((run_dir / "exports" / "export.json").read_text())
    [artifact] = manifest["artifacts"]
    assert artifact["valid"] and artifact["target"] == "onnx"
    for name in artifact["files"]:
        assert fsutil.file_sha256(run_dir / "exports" / name) == artifact["file_sha256"][name]
    assert_nothing_left(run_dir)
    assert_refused_at_once(seconds, args, tmp_path)
    assert_nothing_left(run_dir)


def assert_bench_intact(run_dir: Path) -> None:
    """The finished bench's bench.json is valid and complete, and nothing of the lock is left."""
    from slimdeploy.bench.results import validate

    results = json.loads((run_dir / "bench.json").read_text())
    validate(results)
    assert results["complete"] and [c["status"] for c in results["cells"]] == ["ok"]
    assert_nothing_left(run_dir)


@pytest.mark.slow
def test_two_benches_into_one_run_one_is_refused_at_once(exported_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run, run_dir)
    args = ("bench", str(run_dir), *FAST_BENCH, "--quiet")
    first = start(*args, cwd=tmp_path)
    with paused_holder(first, run_dir) as released:
        second, seconds = refused_cli_here(*args, cwd=tmp_path)
        assert_refused(second, "bench", run_dir, first, released)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert_bench_intact(run_dir)
    assert_refused_at_once(seconds, (*args, "--force"), tmp_path)
    assert_bench_intact(run_dir)


@pytest.mark.slow
def test_a_killed_benchs_lock_is_taken_over_with_a_notice(exported_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run, run_dir)
    args = ("bench", str(run_dir), *FAST_BENCH, "--quiet")
    killed = start(*args, cwd=tmp_path)
    wait_until_locked(killed, run_dir)
    killed.kill()
    killed.communicate()
    assert lock_holder(run_dir)["pid"] == killed.pid  # left behind, naming a process that is gone
    result = run_cli_here(*args, "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "stale lock" in line]
    assert len(notices) == 1, result.stderr
    assert re.fullmatch(rf"notice: took over a stale lock of pid {killed.pid} \(slimdeploy bench {re.escape(str(run_dir))} "
                        rf".+, since \d\d:\d\d:\d\d\) on {re.escape(str(run_dir))}: that process ended without "
                        "releasing it", notices[0]), notices[0]
    assert_bench_intact(run_dir)

