"""Snapshots of the power-function EMAs, and post-hoc EMA reconstruction from them.

During training, ``train.ema_snapshots`` snapshots of every tracked power EMA are written at
evenly spaced steps into ``RUN/ema_snapshots/step-NNNNNNNN.safetensors`` (atomically). After
training, the weights of a power EMA with *any* sigma_rel, at the last snapshot's step, are a
least-squares combination of the snapshots (Karras et al. 2024, "Analyzing and improving the
training dynamics of diffusion models", section 3.2): no retraining needed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

from ..averages import parse_power
from .checkpoint import removed_on_failure, tensors_bytes, write_file
from .ema import posthoc_coefficients

SNAPSHOT_RE = re.compile(r"^step-(\d{8})\.safetensors$")


def snapshot_steps(total_steps: int, count: int) -> set[int]:
    """The steps (1-based counts of updates) at which ``count`` snapshots are taken over a run."""
    if count <= 0:
        return set()
    return {max(1, round(total_steps * i / count)) for i in range(1, count + 1)}


def write_snapshot(root: Path, step: int, power: dict[str, dict[str, Tensor]]) -> Path:
    """Save the power EMAs ``{name: state}`` at ``step`` (temporary file, fsync, rename)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}.safetensors"
    tmp = root / f".step-{step:08d}.tmp-{os.getpid()}"
    flat = {f"{n}/{k}": v for n, s in power.items() for k, v in s.items()}
    with removed_on_failure(tmp, final, root.parent):
        write_file(tmp, tensors_bytes(flat, {"step": str(step)}))
    os.replace(tmp, final)
    return final


def list_snapshots(root: Path) -> list[tuple[int, Path]]:
    """(step, file) of every complete snapshot under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := SNAPSHOT_RE.match(p.name))]
    return sorted(found)


def reconstruct_emas(root: Path, sigma_rels: list[float], step: int | None = None) -> list[tuple[dict[str, Tensor], dict]]:
    """Weights of the power EMAs ``sigma_rels`` at ``step`` (default: the last snapshot's) from
    the snapshots under ``root``, reading each snapshot tensor once for all of them. Returns one
    (state dict, info with the coefficients used) per sigma_rel."""
    snaps = [(st, p) for st, p in list_snapshots(root) if step is None or st <= step]
    if not snaps:
        raise FileNotFoundError(f"no EMA snapshots under {str(root)!r}; train with train.ema_snapshots > 0 "
                                f"and train.ema_sigma_rel set")
    target = step if step is not None else snaps[-1][0]
    entries: list[tuple[int, float, Path, str]] = []
    for st, p in snaps:
        with safe_open(str(p), framework="pt") as f:
            names = sorted({k.split("/", 1)[0] for k in f.keys()})
        entries += [(st, sr, p, n) for n in names if (sr := parse_power(n)) is not None]
    profiles = [(st, sr) for st, sr, _, _ in entries]
    coefs = [posthoc_coefficients(profiles, target, sr) for sr in sigma_rels]
    outs: list[dict[str, Tensor]] = [{} for _ in sigma_rels]
    dtypes: dict[str, torch.dtype] = {}
    for i, (_, _, p, n) in enumerate(entries):
        with safe_open(str(p), framework="pt") as f:
            for k in f.keys():
                if not k.startswith(n + "/"):
                    continue
                key = k[len(n) + 1:]
                v = f.get_tensor(k)
                for out, coef in zip(outs, coefs):
                    if not v.is_floating_point():
                        out[key] = v
                        continue
                    dtypes[key] = v.dtype
                    term = v.double() * float(coef[i])
                    out[key] = term if key not in out else out[key] + term
    results = []
    for sr, out, coef in zip(sigma_rels, outs, coefs):
        state = {k: v.to(dtypes[k]) if k in dtypes else v for k, v in out.items()}
        info = {"sigma_rel": sr, "step": target, "snapshots": len(snaps), "coefficients": [float(c) for c in coef]}
        results.append((state, info))
    return results


def reconstruct_ema(root: Path, sigma_rel: float, step: int | None = None) -> tuple[dict[str, Tensor], dict]:
    """Weights of the power EMA ``sigma_rel`` (see :func:`reconstruct_emas`)."""
    return reconstruct_emas(root, [sigma_rel], step)[0]
