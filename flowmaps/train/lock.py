"""One writer per run folder: the training lock ``RUN/train.lock``.

Training takes the lock before it writes anything into the run folder and gives it back when it
ends; a second ``flowmaps train`` into the same folder (a double click, a script run twice) is
refused in one line naming the holder, while ``sample``, ``eval``, ``report`` and ``audit`` (which
only read checkpoints, each written atomically) go on working. The lock is an advisory
``flock`` on the file, so the kernel drops it when its process dies, however it dies; the file
then still names the dead holder, and the next start takes it over with a note. The file holds
the holder's host, process id, start time and command, as JSON. Where there is no ``flock``
(Windows), the file itself is the lock, created exclusively, and a file whose holder no longer
runs on this host is taken over.

Within one process the lock is counted: the command line takes it around the whole command and
the trainer around training, and the file goes when the last holder lets go (or at exit).
"""
from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import RunLocked
from ..run_folder import RunFolder
from .checkpoint import process_alive

try:
    import fcntl
except ImportError:  # Windows: an exclusively created file stands in for the flock (see _acquire_by_file)
    fcntl = None  # type: ignore[assignment]

_held: dict[Path, list] = {}
"""Run folders this process holds: path -> [open file descriptor, hold count, folders the lock made]."""


def _holder(text: str) -> dict:
    try:
        info = json.loads(text)
        return info if isinstance(info, dict) else {}
    except ValueError:
        return {}


def _describe(info: dict) -> str:
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"])) if "started" in info else "?"
    return f"process {info.get('pid', '?')} on {info.get('host', '?')} (since {since})"


def acquire_run_lock(run_dir: str | Path) -> None:
    """Take the training lock of ``run_dir`` (created if missing), or raise
    :class:`~flowmaps.errors.RunLocked` naming the process that holds it."""
    run = Path(run_dir).absolute()
    if run in _held:
        _held[run][1] += 1
        return
    created = [p for p in (run, *run.parents) if not p.exists()]  # made here, removed again if left empty
    run.mkdir(parents=True, exist_ok=True)
    path = RunFolder(run).lock
    if fcntl is None:
        _held[run] = [_acquire_by_file(run_dir, path), 1, created]
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _holder(os.read(fd, 4096).decode(errors="replace"))
            os.close(fd)
            raise RunLocked(f"{run_dir} is being trained by {_describe(info)}; wait for it to end or stop it"
                            f"{' (kill ' + str(info['pid']) + ')' if 'pid' in info else ''}, or train into another --out") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder let go (and removed the file) between our open and our lock: again
            break
        os.close(fd)
    old = _holder(os.read(fd, 4096).decode(errors="replace"))
    if old:
        print(f"flowmaps: taking over the training lock of {run_dir} left by {_describe(old)}, which no longer holds it",
              file=sys.stderr)
    info = _info()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(info).encode())
    os.fsync(fd)
    _held[run] = [fd, 1, created]


def _info() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
            "command": " ".join(["flowmaps", *sys.argv[1:]]) if sys.argv else ""}


def _acquire_by_file(run_dir: str | Path, path: Path) -> int:
    """Where there is no ``flock``: the lock is the file itself, created exclusively; a file whose
    holder (on this host) no longer runs is taken over with a note."""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            info = _holder(path.read_text(errors="replace")) if path.exists() else {}
            gone = info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) and not process_alive(info["pid"])
            if not gone:
                raise RunLocked(f"{run_dir} is being trained by {_describe(info)}; wait for it to end or stop it, or "
                                f"train into another --out (or delete {path} if no process trains there)") from None
            print(f"flowmaps: taking over the training lock of {run_dir} left by {_describe(info)}, which no longer runs",
                  file=sys.stderr)
            path.unlink(missing_ok=True)
            continue
        os.write(fd, json.dumps(_info()).encode())
        os.fsync(fd)
        return fd
    raise RunLocked(f"{run_dir}: could not take its training lock {path}; another start is taking it")


def release_run_lock(run_dir: str | Path) -> None:
    """Let go of one hold on ``run_dir``'s lock; the last removes the file (and the folder, when
    taking the lock created it and nothing else was written there)."""
    run = Path(run_dir).absolute()
    entry = _held.get(run)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[run]
    fd, _, created = entry
    if fcntl is None:  # the file is the lock (and an open file cannot be removed on Windows)
        os.close(fd)
        RunFolder(run).lock.unlink(missing_ok=True)
    else:
        RunFolder(run).lock.unlink(missing_ok=True)  # before the lock goes: a waiter re-checks the file's identity
        os.close(fd)
    for folder in created:  # the run folder first, then the parents made for it
        try:
            folder.rmdir()  # only if empty
        except OSError:
            break


def lock_status(run_dir: str | Path) -> str:
    """In words: who trains into ``run_dir`` now (for ``flowmaps info --run``)."""
    path = RunFolder(run_dir).lock
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "free (no process trains into it)"
    try:
        info = _holder(os.read(fd, 4096).decode(errors="replace"))
        if fcntl is None:
            return f"held by {_describe(info)}"
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f"held by {_describe(info)}"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return f"free (a lock file left by {_describe(info)}, no longer running)"
    finally:
        os.close(fd)


def holds_run_lock(run_dir: str | Path) -> bool:
    return Path(run_dir).absolute() in _held


@atexit.register
def _release_all() -> None:
    for run in list(_held):
        _held[run][1] = 1
        release_run_lock(run)
