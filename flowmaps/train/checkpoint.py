"""Atomic checkpoints: safetensors for weights and EMAs, a torch file for the rest.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN`` written under a temporary name, synced,
then renamed into place, so a crash never leaves a half-written checkpoint under a real name.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

CKPT_RE = re.compile(r"^step-(\d{8})$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_tensors(tensors: dict[str, Tensor], path: Path) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def save_checkpoint(root: Path, step: int, model: dict[str, Tensor], ema: dict[str, Tensor], state: dict[str, Any], keep: int) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically and keep only the newest ``keep``."""
    for name, t in list(model.items()) + list(ema.items()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise FloatingPointError(f"refusing to checkpoint step {step}: {name} holds NaN or Inf")
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    _save_tensors(model, tmp / "model.safetensors")
    _save_tensors(ema, tmp / "ema.safetensors")
    torch.save(state, tmp / "state.pt")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


TMP_RE = re.compile(r"^\.step-\d{8}\.tmp-(\d+)$")
"""The temporary name of a checkpoint folder or snapshot file being written by process PID."""


def _alive(pid: int) -> bool:
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
        if _alive(pid):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old file
    or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
    """(model state, flat EMA state, training state) of a checkpoint folder."""
    model = load_file(str(path / "model.safetensors"))
    ema = load_file(str(path / "ema.safetensors"))
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    return model, ema, state
