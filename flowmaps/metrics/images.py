"""Image metrics for evaluation (dispatch by name)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ..config import ConfigError

IMAGE_METRICS: tuple[str, ...] = ()


def image_metric(name: str, samples: Tensor, cfg: Any, source: Any) -> dict[str, float]:
    """Score image samples [n, C, H, W] in [-1, 1] by metric ``name``."""
    raise ConfigError(f"unknown metric {name!r} for {cfg.data.name}; choose from kl, map_mse, w2, sliced_w2, energy"
                      + (", " + ", ".join(IMAGE_METRICS) if IMAGE_METRICS else ""))
