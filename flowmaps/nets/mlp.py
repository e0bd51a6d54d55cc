"""The paper's checkerboard MLP (section 3.2)."""
from __future__ import annotations

from torch import Tensor, nn
import torch


class MLP(nn.Module):
    """Input [a, b, x / sigma] -> Dense(width)+GELU, then ``depth`` x [Dense(width)+GELU], Dense(D);
    output times sigma. The paper's checker network is width 512, depth 4 (five Dense-512 layers).

    x: [B, D]; a, b: [B] (the flow map's time inputs, (s, t) for the paper's MLP).
    ``learned_weight`` adds a small head w(s, t) -> [B] (the paper's checker leaves it unused).
    """

    def __init__(self, dim: int = 2, width: int = 512, depth: int = 4, sigma: float = 1.0, learned_weight: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(dim + 2, width), nn.GELU()]
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.GELU()]
        layers.append(nn.Linear(width, dim))
        self.body = nn.Sequential(*layers)
        self.sigma = float(sigma)
        self.weight_head = (
            nn.Sequential(nn.Linear(2, 128), nn.GELU(), nn.Linear(128, 1)) if learned_weight else None
        )

    def forward(self, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        h = torch.cat([a[:, None].to(x.dtype), b[:, None].to(x.dtype), x / self.sigma], dim=1)
        return self.body(h) * self.sigma

    def log_weight(self, s: Tensor, t: Tensor) -> Tensor | None:
        """Learned log loss weight w_{s,t}: [B], or None without the head."""
        if self.weight_head is None:
            return None
        return self.weight_head(torch.stack([s, t], dim=1)).squeeze(1)
