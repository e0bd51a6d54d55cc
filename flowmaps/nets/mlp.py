"""The paper's checkerboard MLP (section 3.2)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MLP(nn.Module):
    """Input [a, b, x / sigma] -> Dense(width)+GELU, then ``depth`` x [Dense(width)+GELU], Dense(D);
    output times sigma. The paper's checker network is width 512, depth 4 (five Dense-512 layers).

    x: [B, D]; a, b: [B] (the flow map's time inputs, (s, t) for the paper's MLP).
    ``learned_weight`` adds a small head w(s, t) -> [B] (the paper's checker leaves it unused).
    ``time_features`` K > 0 appends sin(pi k a), cos(pi k a) and the same of b for k = 1..K to the
    raw times (Fourier features: sharper dependence on the times for the same width).
    ``x_features`` L > 0 appends sin(2^l x / sigma), cos(2^l x / sigma) for l = 0..L-1 to the input
    (positional encoding of the point, Tancik et al. 2020: a plain MLP is biased towards smooth
    functions; these let it draw sharp density edges, such as the checkerboard's, in few steps).
    """

    def __init__(self, dim: int = 2, width: int = 512, depth: int = 4, sigma: float = 1.0, learned_weight: bool = False,
                 time_features: int = 0, x_features: int = 0):
        super().__init__()
        self.time_features, self.x_features = int(time_features), int(x_features)
        self.register_buffer("freqs", math.pi * torch.arange(1, self.time_features + 1, dtype=torch.float32), persistent=False)
        self.register_buffer("x_freqs", 2.0 ** torch.arange(self.x_features, dtype=torch.float32), persistent=False)
        inputs = dim * (1 + 2 * self.x_features) + 2 + 4 * self.time_features
        layers: list[nn.Module] = [nn.Linear(inputs, width), nn.GELU()]
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.GELU()]
        layers.append(nn.Linear(width, dim))
        self.body = nn.Sequential(*layers)
        self.sigma = float(sigma)
        self.weight_head = (
            nn.Sequential(nn.Linear(2, 128), nn.GELU(), nn.Linear(128, 1)) if learned_weight else None
        )

    def time_inputs(self, a: Tensor, b: Tensor) -> Tensor:
        """[B, 2 + 4K]: the raw times and their Fourier features."""
        ab = torch.stack([a, b], dim=1)
        if not self.time_features:
            return ab
        angles = (ab[:, :, None] * self.freqs.to(ab.dtype)).flatten(1)
        return torch.cat([ab, torch.sin(angles), torch.cos(angles)], dim=1)

    def point_inputs(self, x: Tensor) -> Tensor:
        """[B, D (1 + 2L)]: x / sigma and its Fourier features."""
        z = x / self.sigma
        if not self.x_features:
            return z
        angles = (z[:, :, None] * self.x_freqs.to(z.dtype)).flatten(1)
        return torch.cat([z, torch.sin(angles), torch.cos(angles)], dim=1)

    def forward(self, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        h = torch.cat([self.time_inputs(a, b).to(x.dtype), self.point_inputs(x)], dim=1)
        return self.body(h) * self.sigma

    def log_weight(self, s: Tensor, t: Tensor) -> Tensor | None:
        """Learned log loss weight w_{s,t}: [B], or None without the head."""
        if self.weight_head is None:
            return None
        return self.weight_head(torch.stack([s, t], dim=1)).squeeze(1)
