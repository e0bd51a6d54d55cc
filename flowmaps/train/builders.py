"""Build the data source, network and flow map a configuration describes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import Config
from ..data.source import DataSource, build_source
from ..errors import ConfigError
from ..flow_map import FlowMap
from ..interpolants import resolve_sigma
from ..nets.dit import DiT, DiTConfig, token_layout
from ..nets.edm2 import EDM2Config, EDM2UNet
from ..nets.gaussian_base import GaussianBase
from ..nets.mlp import MLP
from ..nets.mp import force_normalize


@dataclass(frozen=True)
class NetworkFamily:
    """What training does differently for a family of networks (``net.kind``); the trainer
    asks this instead of branching on the kind.

    autocast: bfloat16 runs under ``torch.autocast`` (the EDM2 UNet casts inside itself, through
    its ``compute_dtype``). cpu_bf16: ``precision: auto`` picks bfloat16 on a CPU with native
    bfloat16 kernels (:meth:`precision`). after_step: run on the network after each optimizer
    step (EDM2's forced weight normalisation), or None.
    """

    autocast: bool
    cpu_bf16: bool
    after_step: Callable[[nn.Module], None] | None = None

    def precision(self, device: torch.device) -> str:
        """What ``precision: auto`` means on ``device``: ``bf16`` where the device multiplies
        bfloat16 matrices fast and the network gains from it, else ``fp32``.

        CUDA: bf16 when the GPU supports it (Ampere and newer). CPU: bf16 for the MLP and the DiT
        when oneDNN has native bfloat16 kernels (AVX512-BF16 or AMX; measured 1.5x faster steps
        with the same quality, see benchmarks/README.md); the EDM2 UNet stays fp32 on a CPU, where
        its bfloat16 step measured only 5 to 25% faster (under load), not a clear gain.
        """
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        if device.type == "cpu" and self.cpu_bf16:
            try:
                return "bf16" if bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) else "fp32"
            except (AttributeError, RuntimeError):
                return "fp32"
        return "fp32"


NETWORK_FAMILIES: dict[str, NetworkFamily] = {
    "mlp": NetworkFamily(autocast=True, cpu_bf16=True),
    "dit": NetworkFamily(autocast=True, cpu_bf16=True),
    "edm2": NetworkFamily(autocast=False, cpu_bf16=False, after_step=force_normalize),
}


def build_data(cfg: Config, split: str = "train") -> DataSource:
    """The run's training data (``split="train"``: data.classes of the set less data.holdout) or
    its held-out items (``"heldout"``: every class)."""
    d = cfg.data
    return build_source(d.name, d.path, d.cache, d.resolution, d.flip, d.label_column, d.holdout, d.classes, split, d.columns,
                        d.scaling)


def resolve_run_sigma(cfg: Config, source: DataSource) -> float:
    """sigma as a number; 'adaptive' is the scalar std of 100k reference points (paper, 2-D)."""
    if cfg.sigma == "adaptive":
        return resolve_sigma("adaptive", source.reference(100_000, cfg.seed))
    return resolve_sigma(cfg.sigma)


def build_flow_map(cfg: Config, shape: tuple[int, ...], num_classes: int, sigma: float) -> FlowMap:
    """The network of ``cfg.net`` wrapped as a flow map (MLP: inputs (s, t); EDM2: (s, t - s))."""
    n = cfg.net
    guided = cfg.loss.guidance_max > 0
    if n.kind == "mlp":
        if len(shape) != 1:
            raise ConfigError(f"net.kind=mlp needs flat data [N, D], but {cfg.data.name} has shape {list(shape)}; use net.kind=edm2")
        net = MLP(dim=shape[0], width=n.width, depth=n.depth, sigma=sigma, learned_weight=n.learned_weight,
                  time_features=n.time_features, x_features=n.x_features, activation=n.activation,
                  num_classes=num_classes if cfg.data.conditional else 0, guidance=guided)
        return _based(FlowMap(net, time_input=n.time_input), cfg, shape, sigma)  # type: ignore[arg-type]
    if n.kind == "dit":
        return _based(FlowMap(DiT(dit_config(cfg, shape, num_classes, sigma)), time_input="s_dt"), cfg, shape, sigma)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"net.kind=edm2 needs square images [C, H, H], but {cfg.data.name} has shape {list(shape)}")
    levels = len(n.channel_mult)
    if shape[1] % (2 ** (levels - 1)):
        raise ConfigError(f"net.channel_mult has {levels} levels, too many for {shape[1]}x{shape[1]} images")
    ecfg = EDM2Config(
        img_resolution=shape[1], img_channels=shape[0], model_channels=n.model_channels, channel_mult=list(n.channel_mult),
        num_blocks=n.num_blocks, attn_resolutions=list(n.attn_resolutions), dropout=n.dropout,
        num_classes=num_classes if cfg.data.conditional else 0, guidance=guided, sigma_data=sigma,
        channels_per_head=n.channels_per_head, learned_weight=n.learned_weight,
    )
    dtype = torch.bfloat16 if cfg.train.precision == "bf16" else None
    return _based(FlowMap(EDM2UNet(ecfg, compute_dtype=dtype), time_input="s_dt"), cfg, shape, sigma)


def _based(fm: FlowMap, cfg: Config, shape: tuple[int, ...], sigma: float) -> FlowMap:
    """``fm`` with its network on the Gaussian base (``net.gaussian_base``), else as it is; the
    trainer fits the Gaussian to the training data (:func:`fit_gaussian_base`)."""
    if not cfg.net.gaussian_base:
        return fm
    return FlowMap(GaussianBase(fm.net, sigma, shape, fm.time_input), time_input=fm.time_input)  # type: ignore[arg-type]


GAUSSIAN_FIT_ITEMS = 4096


def fit_gaussian_base(fm: FlowMap, source: DataSource, seed: int) -> bool:
    """Fit the Gaussian of a Gaussian-base network to up to :data:`GAUSSIAN_FIT_ITEMS` training
    items (the model's scale); returns whether ``fm`` has one."""
    if not isinstance(fm.net, GaussianBase):
        return False
    fm.net.fit(source.reference(GAUSSIAN_FIT_ITEMS, seed).to(fm.net.mean.device))
    return True


def dit_config(cfg: Config, shape: tuple[int, ...], num_classes: int, sigma: float) -> DiTConfig:
    """The :class:`DiTConfig` of ``cfg.net`` for data of ``shape`` ([C, H, W] or [L, C])."""
    n = cfg.net
    extra = dict(num_classes=num_classes if cfg.data.conditional else 0, guidance=cfg.loss.guidance_max > 0,
                 qk_norm=n.qk_norm, sigma_data=sigma, learned_weight=n.learned_weight)
    try:
        if n.dit_size:
            return DiTConfig.named(n.dit_size, shape, **extra)
        dc = DiTConfig(input_shape=tuple(shape), patch_size=n.patch_size, hidden=n.width, depth=n.depth, heads=n.heads,
                       **extra)  # type: ignore[arg-type]
        token_layout(dc)
        return dc
    except ValueError as e:
        raise ConfigError(f"net (dit): {e}") from None


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
