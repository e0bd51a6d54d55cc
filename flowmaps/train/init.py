"""Start a flow map from a trained run (App. F.2): ``train.init=RUN``.

``RUN`` may also be a velocity exported from outside flowmaps (:mod:`flowmaps.external`) whose
module holds exactly this network's parameters (the same architecture, trained as a flow): it is
loaded as a flow-matching run would be.

Any flowmaps run whose network has the same kind, time inputs and parameter shapes can start a
new run, for example a ``method=fm`` run (a flow trained by flow matching alone) that then
learns its flow map by self-distillation. The diagonal v_{t,t} is kept as it was trained.

From a flow-matching run, the map starts as one Euler step of the learned velocity,
X_{s,t}(x) = x + (t - s) b_s(x), exactly where the network lets us make it so: for the MLP
without Fourier time features, the first layer's weights on the second time input are folded
into the first (inputs (s, t): net(x, s, t) = net_fm(x, s, s)) or zeroed (inputs (s, t - s):
net(x, s, t - s) = net_fm(x, s, 0)). The EDM2 UNet normalises its embedding weights, so its
off-diagonal starts from the network's own continuation in t - s; its diagonal is still exact.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..errors import ConfigError
from ..external import load_module
from ..flow_map import FlowMap
from ..run import load_run


def _mismatched(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]) -> list[str]:
    """Keys of ``dst`` that ``src`` lacks or holds with another shape."""
    return [k for k in dst if k not in src or src[k].shape != dst[k].shape]


def start_map_from_velocity(fm: FlowMap) -> bool:
    """Make v_{s,t}(x) = v_{s,s}(x) for every t, where the network can (its ``start_as_velocity``
    method: the MLP without Fourier time features); returns whether it could (False leaves ``fm``
    unchanged)."""
    start = getattr(fm.net, "start_as_velocity", None)
    return bool(start is not None and start(fm.time_input))


def init_from_run(fm: FlowMap, cfg: Config, path: str | Path, ema: float | str | None = None,
                  device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load run ``path``'s weights (EMA ``ema``; None: the weights its evaluation chose) into
    ``fm``; from a flow-matching run, start the map as an Euler step (module doc). Returns what
    was done, for run.json. Raises :class:`ConfigError` in one line when the networks differ."""
    if Path(path).is_file():
        return _init_from_file(fm, path, device)
    run = load_run(path, ema=ema, device=device)
    if run.cfg.net.kind != cfg.net.kind or run.fm.time_input != fm.time_input:
        raise ConfigError(f"train.init: {str(path)!r} has a {run.cfg.net.kind} network with time inputs "
                          f"{run.fm.time_input}, this run a {cfg.net.kind} with {fm.time_input}; use the same net settings")
    src, dst = run.fm.state_dict(), fm.state_dict()
    bad = _mismatched(src, dst)
    if bad:
        k = bad[0]
        have = list(src[k].shape) if k in src else "none"
        raise ConfigError(f"train.init: {str(path)!r} does not fit this network ({len(bad)} tensors differ, first "
                          f"{k}: {have} against {list(dst[k].shape)}); use the same net.* settings and data shape")
    fm.load_state_dict({k: src[k] for k in dst})
    euler = run.cfg.method == "fm" and start_map_from_velocity(fm)
    start = ("identity + (t - s) b_s: the map is one Euler step of the run's velocity" if euler else
             "the run's network as trained" + (" (its diagonal is the velocity; the off-diagonal its continuation)"
                                                if run.cfg.method == "fm" else ""))
    return {"run": str(path), "ema": run.ema, "method": run.cfg.method, "step": run.step, "map_start": start}


def _init_from_file(fm: FlowMap, path: str | Path, device: torch.device | str) -> dict[str, Any]:
    src = {k.removeprefix("net."): v for k, v in load_module(path, device).state_dict().items()}
    dst = fm.net.state_dict()
    bad = _mismatched(src, dst)
    if bad:
        raise ConfigError(f"train.init: the module in {str(path)!r} does not hold this network's parameters "
                          f"({len(bad)} of {len(dst)} missing or of another shape, first {bad[0]}); a velocity file can "
                          f"initialise only the same architecture (it can still be a teacher: teacher.velocity)")
    fm.net.load_state_dict({k: src[k] for k in dst})
    euler = start_map_from_velocity(fm)
    start = ("identity + (t - s) b_s: the map is one Euler step of the file's velocity" if euler
             else "the file's network as trained (its diagonal is the velocity)")
    return {"run": str(path), "ema": None, "method": "external velocity", "step": None, "map_start": start}
