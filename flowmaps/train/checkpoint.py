"""Atomic, verified checkpoints: safetensors for weights and EMAs, a torch file for the rest.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN`` written under a temporary name, synced,
then renamed into place, so a crash never leaves a half-written checkpoint under a real name. Its
``manifest.json``, written last, records the size and SHA-256 of every other file:
:func:`verify_checkpoint` reads it back, and :func:`newest_intact_checkpoint` passes over a
damaged checkpoint (a copy cut short, a bad disk) to the newest one that is whole.

Every binary file of a run reaches the disk through :func:`write_file` and every text file through
:func:`write_text_atomic` or :func:`append_line`, so a full disk surfaces as one ``OSError`` with
``errno.ENOSPC`` that :func:`disk_full` turns into a one-line :class:`~flowmaps.errors.DiskFullError`
(the file, the free space, the last good checkpoint and the resume command), with no partial file
left behind.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from ..errors import DiskFullError, RunError

CKPT_RE = re.compile(r"^step-(\d{8})$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


MANIFEST = "manifest.json"
"""The file of a checkpoint that lists the others with their sizes and hashes; written last."""
CHECKPOINT_FILES = ("model.safetensors", "ema.safetensors", "state.pt")


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, flushed and synced: the one way a run's binary files reach the
    disk (a full disk raises ``OSError(ENOSPC)`` here; the fault tests replace this function)."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:  # a failed write() names no file: this one does
        raise OSError(e.errno, e.strerror, str(path)) from None


def tensors_bytes(tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file's bytes of ``tensors`` (moved to the CPU, made contiguous)."""
    return safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata)


def object_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def is_no_space(error: BaseException) -> bool:
    """Whether ``error`` says the disk (or the user's quota) is full."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: Path) -> int:
    """Free bytes on the file system of ``path`` (its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def megabytes(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def disk_full(path: Path, run_dir: Path) -> DiskFullError:
    """The one-line error of a write to ``path`` that failed for lack of space, for run ``run_dir``."""
    last = newest_intact_checkpoint(Path(run_dir) / "checkpoints", quiet=True)  # RunFolder's layout (it sits above)
    kept = f"the last good checkpoint is {last.name}" if last is not None else "no checkpoint was written yet"
    resume = (f"free some space, then resume with: flowmaps train --resume --out {run_dir}" if last is not None
              else f"free some space, then start again with --out {run_dir} removed")
    return DiskFullError(f"no space left on the disk writing {path} ({megabytes(free_bytes(path))} free); "
                         f"nothing partial was kept and {kept}; {resume}")


@contextlib.contextmanager
def removed_on_failure(tmp: Path, final: Path, run_dir: Path) -> Iterator[None]:
    """Around writing ``tmp`` (a file, or a folder of files), to be renamed to ``final`` after: a
    failed write removes it, and a full disk becomes :func:`disk_full`'s one line, naming the file
    as it would have been called."""
    try:
        yield
    except OSError as e:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if not is_no_space(e):
            raise
        failed = Path(e.filename) if e.filename else tmp
        shown = final / failed.relative_to(tmp) if failed != tmp and failed.is_relative_to(tmp) else final
        raise disk_full(shown, run_dir) from None


def save_checkpoint(root: Path, step: int, model: dict[str, Tensor], ema: dict[str, Tensor], state: dict[str, Any], keep: int) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically, manifest last, and keep only the newest
    ``keep``. A failed write (a full disk) removes the temporary folder and leaves every earlier
    checkpoint as it was; a full disk raises :class:`~flowmaps.errors.DiskFullError`."""
    for name, t in list(model.items()) + list(ema.items()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise FloatingPointError(f"refusing to checkpoint step {step}: {name} holds NaN or Inf")
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    with removed_on_failure(tmp, final, root.parent):
        tmp.mkdir()
        files = dict(zip(CHECKPOINT_FILES, (tensors_bytes(model), tensors_bytes(ema), object_bytes(state))))
        for name, data in files.items():
            write_file(tmp / name, data)
        manifest = {"step": step, "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                                            for name, data in files.items()}}
        write_file(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
        _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def verify_checkpoint(path: Path) -> str | None:
    """None when checkpoint folder ``path`` is whole (every file of its manifest there, of its
    size and hash), else what is wrong, in a few words. A checkpoint written before manifests
    existed is taken as whole when its files are there."""
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.is_file():
        missing = [f for f in CHECKPOINT_FILES if not (path / f).is_file()]
        return f"{missing[0]} is missing" if missing else None
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return f"{MANIFEST} is unreadable"
    for name, want in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        size = f.stat().st_size
        if size != want["bytes"]:
            return f"{name} holds {size:,} bytes, {want['bytes']:,} written"
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != want["sha256"]:
            return f"{name} does not match its hash (changed on disk)"
    return None


def newest_intact_checkpoint(root: Path, quiet: bool = False) -> Path | None:
    """The newest checkpoint under ``root`` that :func:`verify_checkpoint` finds whole; each newer,
    damaged one is named on stderr in one line (unless ``quiet``)."""
    for ckpt in reversed(list_checkpoints(root)):
        why = verify_checkpoint(ckpt)
        if why is None:
            return ckpt
        if not quiet:
            print(f"flowmaps: checkpoint {ckpt} is damaged ({why}); passing over it", file=sys.stderr)
    return None


TMP_RE = re.compile(r"^\.step-\d{8}\.tmp-(\d+)$")
"""The temporary name of a checkpoint folder or snapshot file being written by process PID."""


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this host; this process's own id counts as gone (a
    temporary or a lock file under it was not made by this run of it)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_stale_temporaries(root: Path) -> list[Path]:
    """Remove the temporary checkpoint folders / snapshot files (``.step-NNNNNNNN.tmp-PID``) that
    a killed process left under ``root``; a temporary of a process still running is kept."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        m = TMP_RE.match(p.name)
        if not m:
            continue
        pid = int(m.group(1))
        if process_alive(pid):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old file
    or the new one, never half of it; a failed write (a full disk) leaves the old file and no
    temporary."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(path)) from None


def append_line(path: Path, line: str) -> None:
    """Append one line to a JSON-lines file; a failed write (a full disk) cuts the file back to
    where it was, so it never ends in half a record."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line.rstrip("\n") + "\n")
    except OSError as e:
        if path.is_file():
            with contextlib.suppress(OSError):
                os.truncate(path, size)
        raise OSError(e.errno, e.strerror, str(path)) from None


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and CKPT_RE.match(p.name) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Any]]:
    """(model state, flat EMA state, training state) of a checkpoint folder; a damaged one (see
    :func:`verify_checkpoint`) is refused in one line."""
    why = verify_checkpoint(path)
    if why is not None:
        raise RunError(f"checkpoint {path} is damaged ({why}); use an intact one ('flowmaps info --run RUN' lists them)")
    model = load_file(str(path / "model.safetensors"))
    ema = load_file(str(path / "ema.safetensors"))
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    return model, ema, state
