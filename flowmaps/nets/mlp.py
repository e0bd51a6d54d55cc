"""The paper's checkerboard MLP (section 3.2)."""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from .tangents import Tangent, cat_jvp, gelu_jvp, gelu_tanh_jvp, linear_jvp, scale_tangent, silu_jvp, sin_cos_jvp

ACTIVATIONS: dict[str, type[nn.Module] | functools.partial] = {
    "gelu": nn.GELU, "silu": nn.SiLU, "gelu_tanh": functools.partial(nn.GELU, approximate="tanh"),
}
ACTIVATION_JVPS = {"gelu": gelu_jvp, "silu": silu_jvp, "gelu_tanh": gelu_tanh_jvp}


def _with_fourier_jvp(z: Tensor, dz: Tangent, freqs: Tensor) -> tuple[Tensor, Tangent]:
    """[z, sin(z f), cos(z f)] for z [B, n] and frequencies f [K] (flattened per input), and its tangent."""
    freqs = freqs.to(z.dtype)
    sin, cos, dsin, dcos = sin_cos_jvp((z[:, :, None] * freqs).flatten(1),
                                       None if dz is None else (dz[:, :, None] * freqs).flatten(1))
    return cat_jvp([(z, dz), (sin, dsin), (cos, dcos)], 1)


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

    :meth:`forward_jvp` returns the output and its tangent along (dx, da, db) from one pass of
    ordinary operations (:mod:`flowmaps.nets.tangents`): the flow map's ``explicit`` JVP backend.
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
        self.activation = activation
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

    def forward_jvp(self, x: Tensor, a: Tensor, b: Tensor, dx: Tangent, da: Tangent, db: Tangent,
                    y: Tensor | None = None, alpha: Tensor | None = None) -> tuple[Tensor, Tangent]:
        """(v [B, D], dv [B, D]): the output and its derivative along the tangents dx [B, D], da, db [B]
        (``None``: a zero tangent; all ``None`` gives dv ``None``). Labels and guidance scales carry
        no tangent. The same function as :meth:`forward` (which stays TorchScript-able), with the
        tangent rules of :mod:`flowmaps.nets.tangents` beside each operation."""
        t_in = self._time_inputs_jvp(a, b, da, db)
        parts = [(t_in[0].to(x.dtype), None if t_in[1] is None else t_in[1].to(x.dtype)), self._point_inputs_jvp(x, dx)]
        if self.guidance:
            parts.append(((torch.ones_like(a) if alpha is None else alpha).to(x.dtype)[:, None], None))
        h, dh = cat_jvp(parts, 1)
        if self.label_embedding is not None and y is None:
            raise ValueError("this network is class-conditional: pass labels y (the null label K for unconditional)")
        act = ACTIVATION_JVPS[self.activation]
        linears = [m for m in self.body if isinstance(m, nn.Linear)]
        for i, layer in enumerate(linears):
            h, dh = linear_jvp(h, dh, layer.weight, layer.bias)
            if i == 0 and self.label_embedding is not None:
                h = h + self.label_embedding(y).to(h.dtype)
            if i < len(linears) - 1:
                h, dh = act(h, dh)
        return h * self.sigma, scale_tangent(dh, self.sigma)

    def _time_inputs_jvp(self, a: Tensor, b: Tensor, da: Tangent, db: Tangent) -> tuple[Tensor, Tangent]:
        """:meth:`time_inputs` and its tangent."""
        ab = torch.stack([a, b], dim=1)
        dab = None if da is None and db is None else torch.stack(
            [torch.zeros_like(a) if da is None else da, torch.zeros_like(b) if db is None else db], dim=1)
        return (ab, dab) if not self.time_features else _with_fourier_jvp(ab, dab, self.freqs)

    def _point_inputs_jvp(self, x: Tensor, dx: Tangent) -> tuple[Tensor, Tangent]:
        """:meth:`point_inputs` and its tangent."""
        z, dz = x / self.sigma, scale_tangent(dx, 1 / self.sigma)
        return (z, dz) if not self.x_features else _with_fourier_jvp(z, dz, self.x_freqs)

    def start_as_velocity(self, time_input: str) -> bool:
        """Make the network's map ignore its second time input, so v_{s,t}(x) = v_{s,s}(x) for
        every t (a flow map started from a flow-matching velocity, App. F.2): the first layer's
        weights on it are folded into the first time input (inputs (s, t)) or zeroed (inputs
        (s, t - s)). Impossible with Fourier time features (returns False, nothing changed)."""
        if self.time_features:
            return False
        first = self.body[0]
        with torch.no_grad():  # inputs [a, b, x]: a = s, b = t (s_t) or t - s (s_dt)
            if time_input == "s_t":
                first.weight[:, 0] += first.weight[:, 1]
            first.weight[:, 1] = 0.0
        return True

    def log_weight(self, s: Tensor, t: Tensor) -> Tensor | None:
        """Learned log loss weight w_{s,t}: [B], or None without the head."""
        if self.weight_head is None:
            return None
        return self.weight_head(torch.stack([s, t], dim=1)).squeeze(1)
