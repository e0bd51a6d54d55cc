"""Load a trained run folder (config, sigma, latest checkpoint) for sampling and evaluation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .averages import RAW, ema_name, parse_power
from .config import Config, check_eval_ema
from .data.arrays import Normalization
from .data.columns import TableTransform
from .errors import RunError
from .flow_map import FlowMap
from .run_folder import RunFolder
from .train.builders import build_flow_map
from .train.checkpoint import latest_checkpoint, load_checkpoint, newest_intact_checkpoint
from .train.ema import flat_names, unflatten
from .train.snapshots import reconstruct_ema


@dataclass
class Run:
    """A trained run: its folder, config, flow map (with the chosen weights), sigma, data shape,
    number of classes, training step and the name of the weights loaded (``raw``, ``0.999`` or
    ``sigma_rel=0.05``); array data's per-channel ``normalization`` or a table's per-column
    transform ``columns``, undone on every output; the processes it was trained on (``devices``)."""

    path: Path
    cfg: Config
    fm: FlowMap
    sigma: float
    shape: tuple[int, ...]
    num_classes: int
    step: int
    ema: str
    normalization: Normalization | None = None
    columns: TableTransform | None = None
    devices: int = 1

    @property
    def folder(self) -> RunFolder:
        """The run's files (:class:`flowmaps.run_folder.RunFolder`)."""
        return RunFolder(self.path)

    @property
    def column_names(self) -> list[str]:
        """The names of a point run's columns [D]: a table's header, else ``column 0``, ..."""
        return self.columns.names if self.columns is not None else [f"column {j}" for j in range(self.shape[0])]

    def to_data(self, x: Tensor) -> Tensor:
        """Model outputs [B, ...] -> the data's scale (array data are normalised per channel, a
        table's columns each by its own transform)."""
        if self.columns is not None:
            return self.columns.invert(x)
        return x if self.normalization is None else self.normalization.invert(x)

    def from_data(self, x: Tensor) -> Tensor:
        """Inputs [B, ...] in the data's scale -> the model's."""
        if self.columns is not None:
            return self.columns.apply(x)
        return x if self.normalization is None else self.normalization.apply(x)


def weights_for(name: float | str, raw: dict[str, Tensor], ema_flat: dict[str, Tensor], run_dir: Path | None) -> dict[str, Tensor]:
    """The state dict of EMA ``name``: the raw weights, a tracked average from ``ema_flat``, or a
    power EMA reconstructed from the run's snapshots."""
    key = ema_name(name)
    if key == RAW:
        return raw
    if key in flat_names(ema_flat):
        return unflatten(ema_flat, key)
    sigma_rel = parse_power(key)
    tracked = ", ".join(flat_names(ema_flat)) or "none"
    if sigma_rel is None or run_dir is None:
        raise RunError(f"EMA {key} was not tracked; tracked: {tracked} (or raw)")
    folder = RunFolder(run_dir)
    exported = folder.posthoc_ema / f"{key}.safetensors"
    if exported.is_file():  # written by 'flowmaps ema'
        from safetensors.torch import load_file

        return {**raw, **load_file(str(exported))}
    snap_dir = folder.ema_snapshots
    if not snap_dir.is_dir():
        raise RunError(f"EMA {key} was not tracked and {str(run_dir)!r} has no EMA snapshots to reconstruct it; tracked: {tracked}")
    state, _ = reconstruct_ema(snap_dir, sigma_rel)
    return {**raw, **state}


def selected_ema(root: Path, cfg: Config) -> str:
    """The weights a run is sampled with by default: eval.ema, or for ``auto`` the choice its
    evaluation recorded in run.json (raw weights when it has not been evaluated yet)."""
    if cfg.eval.ema != "auto":
        return ema_name(cfg.eval.ema)
    return RunFolder(root).read_meta().get("ema_selected", RAW)


def load_run(path: str | Path, ema: float | str | None = None, device: torch.device | str = "cpu",
             checkpoint: str | Path | None = None) -> Run:
    """The flow map of run ``path`` with the weights of EMA ``ema`` (None: the run's default, see
    :func:`selected_ema`; 0 or "raw": the raw weights; "sigma_rel=X": tracked or reconstructed)."""
    folder = RunFolder(path)
    root = folder.path
    if not folder.is_run():
        raise RunError(f"{str(root)!r} is not a flowmaps run folder (no config.yaml / run.json); train one with 'flowmaps train'")
    cfg = folder.read_config()
    meta = folder.read_meta()
    ckpt = Path(checkpoint) if checkpoint else newest_intact_checkpoint(folder.checkpoints)
    if ckpt is None or not (ckpt / "state.pt").is_file():
        if checkpoint is None and latest_checkpoint(folder.checkpoints) is not None:
            raise RunError(f"every checkpoint of run {str(root)!r} is damaged ('flowmaps info --run {root}' lists them)")
        raise RunError(f"run {str(root)!r} has no complete checkpoint yet")
    shape = tuple(meta["shape"])
    fm = build_flow_map(cfg, shape, meta["num_classes"], meta["sigma"])
    model, ema_flat, state = load_checkpoint(ckpt)
    if ema is None or ema == "auto":
        name = selected_ema(root, cfg)
    else:
        name = check_eval_ema(cfg, ema, "--ema")
    fm.load_state_dict(weights_for(name, model, ema_flat, root))
    fm = fm.to(device).eval().requires_grad_(False)
    norm = Normalization.from_dict(meta["normalization"]) if "normalization" in meta else None
    columns = TableTransform.from_dict(meta["columns"]) if "columns" in meta else None
    return Run(root, cfg, fm, float(meta["sigma"]), shape, int(meta["num_classes"]), int(state["step"]), name, norm, columns,
               int(meta.get("world_size", 1)))
