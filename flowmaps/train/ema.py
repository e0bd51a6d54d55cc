"""Exponential moving averages of the weights, several decays at once."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """ema_d <- d ema_d + (1 - d) theta after every step, for each decay d (no warm-up, as the paper)."""

    def __init__(self, module: nn.Module, decays: list[float]) -> None:
        self.decays = [float(d) for d in decays]
        self.shadow: dict[float, dict[str, Tensor]] = {
            d: {k: v.detach().clone() for k, v in module.state_dict().items()} for d in self.decays
        }

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        state = module.state_dict()
        for d, shadow in self.shadow.items():
            for k, v in state.items():
                if v.is_floating_point():
                    shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    shadow[k].copy_(v)

    def state(self, decay: float) -> dict[str, Tensor]:
        if decay not in self.shadow:
            raise KeyError(f"EMA decay {decay} is not tracked; tracked: {self.decays}")
        return self.shadow[decay]

    def flat(self) -> dict[str, Tensor]:
        """All averages in one flat dict, keys 'DECAY/param' (for safetensors)."""
        return {f"{d!r}/{k}": v for d, s in self.shadow.items() for k, v in s.items()}

    def load_flat(self, flat: dict[str, Tensor]) -> None:
        for d, s in self.shadow.items():
            for k in s:
                s[k].copy_(flat[f"{d!r}/{k}"])
