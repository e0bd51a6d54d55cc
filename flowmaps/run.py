"""Load a trained run folder (config, sigma, latest checkpoint) for sampling and evaluation."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import Config, build_config, load_yaml
from .flow_map import FlowMap
from .train.builders import build_flow_map
from .train.checkpoint import latest_checkpoint, load_checkpoint
from .train.ema import EMA


class RunError(FileNotFoundError):
    """A run folder is missing or incomplete."""


@dataclass
class Run:
    path: Path
    cfg: Config
    fm: FlowMap
    sigma: float
    shape: tuple[int, ...]
    num_classes: int
    step: int
    ema: float


def load_run(path: str | Path, ema: float | None = None, device: torch.device | str = "cpu",
             checkpoint: str | Path | None = None) -> Run:
    """The flow map of run ``path`` with EMA ``ema`` weights (None: the config's eval.ema; 0: raw)."""
    root = Path(path)
    if not (root / "config.yaml").is_file() or not (root / "run.json").is_file():
        raise RunError(f"{str(root)!r} is not a flowmaps run folder (no config.yaml / run.json); train one with 'flowmaps train'")
    cfg = build_config(load_yaml(root / "config.yaml"))
    meta = json.loads((root / "run.json").read_text())
    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(root / "checkpoints")
    if ckpt is None or not (ckpt / "state.pt").is_file():
        raise RunError(f"run {str(root)!r} has no complete checkpoint yet")
    shape = tuple(meta["shape"])
    fm = build_flow_map(cfg, shape, meta["num_classes"], meta["sigma"])
    model, ema_flat, state = load_checkpoint(ckpt)
    decay = cfg.eval.ema if ema is None else float(ema)
    if decay:
        holder = EMA(fm, cfg.train.ema)
        if decay not in holder.decays:
            raise RunError(f"EMA decay {decay} was not tracked in {str(root)!r}; tracked: {holder.decays} (or 0 for raw weights)")
        holder.load_flat(ema_flat)
        fm.load_state_dict(holder.state(decay))
    else:
        fm.load_state_dict(model)
    fm = fm.to(device).eval().requires_grad_(False)
    return Run(root, cfg, fm, float(meta["sigma"]), shape, int(meta["num_classes"]), int(state["step"]), decay)
