"""The paper's checkerboard MLP (section 3.2)."""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module] | functools.partial] = {
    "gelu": nn.GELU, "silu": nn.SiLU, "gelu_tanh": functools.partial(nn.GELU, approximate="tanh"),
}


class MLP(nn.Module):
    """Input [a, b, x / sigma] -> Dense(width)+act, then ``depth`` x [Dense(width)+act], Dense(D);
    output times sigma. The paper's checker network is width 512, depth 4 (five Dense-512 layers),
    with GELU. ``activation``: ``gelu`` (the paper's), ``silu`` (the same shape of curve; the same
    quality and step time on the checkerboard, see benchmarks/README.md) or ``gelu_tanh``.

    x: [B, D]; a, b: [B] (the flow map's time inputs, (s, t) for the paper's MLP).
    ``learned_weight`` adds a small head w(s, t) -> [B] (the paper's checker leaves it unused).
    ``time_features`` K > 0 appends sin(pi k a), cos(pi k a) and the same of b for k = 1..K to the
    raw times (Fourier features: sharper dependence on the times for the same width).
    ``x_features`` L > 0 appends sin(2^l x / sigma), cos(2^l x / sigma) for l = 0..L-1 to the input
    (positional encoding of the point, Tancik et al. 2020: a plain MLP is biased towards smooth
    functions; these let it draw sharp density edges, such as the checkerboard's, in few steps).
    ``num_classes`` K > 0 makes it class-conditional: a learned embedding of y in 0..K (K the null
    label), zero at initialisation, is added to the first layer's output. ``guidance`` appends the
    guidance scale alpha [B] as one more input (App. F.5; alpha defaults to 1, the plain
    conditional map).
    """

    def __init__(self, dim: int = 2, width: int = 512, depth: int = 4, sigma: float = 1.0, learned_weight: bool = False,
                 time_features: int = 0, x_features: int = 0, activation: str = "gelu", num_classes: int = 0,
                 guidance: bool = False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown MLP activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.time_features, self.x_features = int(time_features), int(x_features)
        self.register_buffer("freqs", math.pi * torch.arange(1, self.time_features + 1, dtype=torch.float32), persistent=False)
        self.register_buffer("x_freqs", 2.0 ** torch.arange(self.x_features, dtype=torch.float32), persistent=False)
        self.num_classes, self.guidance = int(num_classes), bool(guidance)
        if self.guidance and not self.num_classes:
            raise ValueError("a guided MLP (guidance=True) needs num_classes > 0")
        inputs = dim * (1 + 2 * self.x_features) + 2 + 4 * self.time_features + int(self.guidance)
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = [nn.Linear(inputs, width), act()]
        for _ in range(depth):
            layers += [nn.Linear(width, width), act()]
        layers.append(nn.Linear(width, dim))
        self.body = nn.Sequential(*layers)
        self.sigma = float(sigma)
        self.label_embedding = nn.Embedding(self.num_classes + 1, width) if self.num_classes else None
        if self.label_embedding is not None:
            nn.init.zeros_(self.label_embedding.weight)
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

    def forward(self, x: Tensor, a: Tensor, b: Tensor, y: Tensor | None = None, alpha: Tensor | None = None) -> Tensor:
        """v [B, D] from x [B, D], times a, b [B], labels y [B] (int64) and guidance scales alpha [B]."""
        parts = [self.time_inputs(a, b).to(x.dtype), self.point_inputs(x)]
        if self.guidance:
            parts.append((torch.ones_like(a) if alpha is None else alpha).to(x.dtype)[:, None])
        h = torch.cat(parts, dim=1)
        if self.label_embedding is None:
            return self.body(h) * self.sigma
        if y is None:
            raise ValueError("this network is class-conditional: pass labels y (the null label K for unconditional)")
        h = self.body[0](h)
        h = h + self.label_embedding(y).to(h.dtype)
        return self.body[1:](h) * self.sigma

    def log_weight(self, s: Tensor, t: Tensor) -> Tensor | None:
        """Learned log loss weight w_{s,t}: [B], or None without the head."""
        if self.weight_head is None:
            return None
        return self.weight_head(torch.stack([s, t], dim=1)).squeeze(1)
