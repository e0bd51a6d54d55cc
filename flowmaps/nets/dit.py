"""A diffusion transformer (DiT, Peebles & Xie 2023) as a flow-map network f(x, s, t - s).

Inputs: images [B, C, H, W] cut into p x p patches, or sequences [B, L, C] cut into groups of p
positions; each patch becomes a token, with a fixed sine-cosine position embedding. Every block is
adaLN-Zero conditioned on c = emb(s) + emb(t - s) [+ emb(alpha)] [+ label embedding]: the times
are embedded as the EDM2 network embeds them (sine-cosine features of the raw times in [0, 1],
:func:`flowmaps.nets.mp.positional_embedding`), each followed by DiT's two-layer MLP.

Differences from DiT, all for flow maps:
- a second time embedding (t - s beside s): the network is a two-time map, not a velocity;
- QK-normalisation (RMS norm of queries and keys per head, with a learned gain): users of MeanFlow
  ports report divergence without it;
- the explicit attention of :func:`flowmaps.nets.attention.attention` (no fused kernel), which
  every JVP backend differentiates, with backpropagation through the JVP, in float32 and bfloat16;
- layer norms written out (:class:`LayerNorm`): backpropagating through a JVP of PyTorch's
  ``F.layer_norm`` gives wrong gradients (pytorch#196700);
- v = sigma_data * net(x / sigma_data) with a zero-initialised output layer, so the map
  X_{s,t} = x + (t - s) v starts as the identity;
- an optional learned loss weight w_{s,t} (paper eq 19) and the guidance scale alpha (App. F.5);
- explicit tangents: every module's ``forward_jvp`` returns its output and its tangent from plain
  operations (:mod:`flowmaps.nets.tangents`), the flow map's ``explicit`` JVP backend; ``forward``
  is the same pass without tangents.

``two_times=False, qk_norm=False, learn_sigma=True`` builds DiT's own layout (one time, 2C output
channels): with it the parameter counts of DiT-S/2, B/2, L/2 and XL/2 on 32 x 32 x 4 latents with
1,000 classes are the published 33M, 130M, 458M and 675M (``tests/nets/test_dit.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .attention import attention_jvp
from .mp import positional_embedding, positional_embedding_jvp
from .tangents import Tangent, add_tangents, gelu_tanh_jvp, linear_jvp, scale_tangent, silu_jvp

DIT_SIZES: dict[str, tuple[int, int, int]] = {"S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "XL": (1152, 28, 16)}
"""DiT size name -> (hidden width, depth, heads)."""


@dataclass
class DiTConfig:
    """Architecture options. ``input_shape``: [C, H, W] (images) or [L, C] (sequences)."""

    input_shape: tuple[int, ...] = (4, 32, 32)
    patch_size: int = 2
    hidden: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: float = 4.0
    num_classes: int = 0
    guidance: bool = False
    qk_norm: bool = True
    two_times: bool = True
    learn_sigma: bool = False
    sigma_data: float = 0.5
    learned_weight: bool = False
    frequency_channels: int = 256

    @classmethod
    def named(cls, name: str, input_shape: tuple[int, ...], **kw: object) -> DiTConfig:
        """A DiT size by name in DiT's convention, e.g. ``"S/2"`` (size S, patch 2) or ``"B/4"``."""
        size, _, patch = name.partition("/")
        if size not in DIT_SIZES or not patch.isdigit():
            raise ValueError(f"unknown DiT size {name!r}; use one of {', '.join(DIT_SIZES)} with a patch size, e.g. S/2")
        hidden, depth, heads = DIT_SIZES[size]
        return cls(input_shape=tuple(input_shape), patch_size=int(patch), hidden=hidden, depth=depth, heads=heads, **kw)  # type: ignore[arg-type]


def sincos_embedding(positions: np.ndarray, dim: int) -> np.ndarray:
    """[n, dim] sine-cosine features of positions [n] (DiT's fixed position embedding, 1-D)."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.outer(positions.astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def position_table(grid: tuple[int, ...], dim: int) -> Tensor:
    """[tokens, dim] fixed position embedding of a 1-D or 2-D token grid (2-D: half the channels
    for each axis, as DiT)."""
    if len(grid) == 1:
        return torch.from_numpy(sincos_embedding(np.arange(grid[0]), dim)).float()
    h, w = grid
    gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    emb = np.concatenate([sincos_embedding(gy.reshape(-1), dim // 2), sincos_embedding(gx.reshape(-1), dim // 2)], axis=1)
    return torch.from_numpy(emb).float()


def token_layout(cfg: DiTConfig) -> tuple[tuple[int, ...], int, int]:
    """(token grid, data channels, values per token) of ``cfg``; ValueError for a shape the patch
    size does not divide, a width the heads do not divide, or data that are not [C, H, W] / [L, C]."""
    shape, p = tuple(cfg.input_shape), cfg.patch_size
    if cfg.hidden % cfg.heads or (cfg.hidden // cfg.heads) % 2:
        raise ValueError(f"the width {cfg.hidden} must split into {cfg.heads} heads of even size")
    if p < 1:
        raise ValueError(f"the patch size must be positive, got {p}")
    if len(shape) == 3:
        c, h, w = shape
        if h % p or w % p:
            raise ValueError(f"patch size {p} does not divide the {h} x {w} images")
        return (h // p, w // p), c, c * p * p
    if len(shape) == 2:
        length, c = shape
        if length % p:
            raise ValueError(f"patch size {p} does not divide sequences of length {length}")
        return (length // p,), c, c * p
    raise ValueError(f"DiT takes images [C, H, W] or sequences [L, C], not shape {list(shape)}")


class TimeEmbedder(nn.Module):
    """Raw time tau [B] in [0, 1] -> [B, hidden]: sine-cosine features, then Linear, SiLU, Linear."""

    def __init__(self, hidden: int, channels: int = 256) -> None:
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, tau: Tensor) -> Tensor:
        return self.forward_jvp(tau, None)[0]

    def forward_jvp(self, tau: Tensor, dtau: Tangent) -> tuple[Tensor, Tangent]:
        e, de = positional_embedding_jvp(tau, dtau, self.channels)
        dtype = self.mlp[0].weight.dtype
        h, dh = linear_jvp(e.to(dtype), None if de is None else de.to(dtype), self.mlp[0].weight, self.mlp[0].bias)
        h, dh = silu_jvp(h, dh)
        return linear_jvp(h, dh, self.mlp[2].weight, self.mlp[2].bias)


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + eps) over the last dimension, no affine (DiT's), in float32 at least.

    Written out because backpropagating through a JVP of ``F.layer_norm`` gives wrong gradients
    (torch 2.13, pytorch#196700: its second-order forward derivative is wrong; measured here as a
    relative gradient error of about 1e-4 in ``tests/nets/test_dit.py``)."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_jvp(x, None)[0]

    def forward_jvp(self, x: Tensor, dx: Tangent) -> tuple[Tensor, Tangent]:
        """y = h r with h = x - mean x, r = (mean h^2 + eps)^-1/2; dy = dh r - y r^2 mean(h dh)."""
        h = x if x.dtype == torch.float64 else x.float()
        h = h - h.mean(-1, keepdim=True)
        r = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        y = h * r
        if dx is None:
            return y.to(x.dtype), None
        dh = dx.to(h.dtype)
        dh = dh - dh.mean(-1, keepdim=True)
        return y.to(x.dtype), (dh * r - y * (r * r * (h * dh).mean(-1, keepdim=True))).to(x.dtype)


class RMSNorm(nn.Module):
    """x / rms(x) * gain over the last dimension, in float32 at least (written out, as LayerNorm)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_jvp(x, None)[0]

    def forward_jvp(self, x: Tensor, dx: Tangent) -> tuple[Tensor, Tangent]:
        """y = x r g with r = (mean x^2 + eps)^-1/2; dy = (dx r - x r^3 mean(x dx)) g."""
        h = x if x.dtype == torch.float64 else x.float()
        r = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        gain = self.gain.to(h.dtype)
        y = (h * r * gain).to(x.dtype)
        if dx is None:
            return y, None
        dh = dx.to(h.dtype)
        return y, ((dh * r - h * (r * r * r * (h * dh).mean(-1, keepdim=True))) * gain).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with optional QK-normalisation: [B, N, D] -> [B, N, D]."""

    def __init__(self, dim: int, heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads  # token_layout checked that the width splits into the heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = RMSNorm(dim // heads) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(dim // heads) if qk_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_jvp(x, None)[0]

    def forward_jvp(self, x: Tensor, dx: Tangent) -> tuple[Tensor, Tangent]:
        b, n, d = x.shape
        split = lambda u: u.reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # noqa: E731
        qkv, dqkv = linear_jvp(x, dx, self.qkv.weight, self.qkv.bias)
        q, k, v = split(qkv)
        dq, dk, dv = (None, None, None) if dqkv is None else split(dqkv)
        if isinstance(self.q_norm, RMSNorm):
            (q, dq), (k, dk) = self.q_norm.forward_jvp(q, dq), self.k_norm.forward_jvp(k, dk)
        y, dy = attention_jvp(q, dq, k, dk, v, dv)
        merge = lambda u: None if u is None else u.transpose(1, 2).reshape(b, n, d)  # noqa: E731
        return linear_jvp(merge(y), merge(dy), self.proj.weight, self.proj.bias)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x (1 + scale) + shift, per sample: x [B, N, D], shift and scale [B, D]."""
    return x * (1 + scale[:, None]) + shift[:, None]


def modulate_jvp(x: Tensor, dx: Tangent, shift: Tensor, dshift: Tangent, scale: Tensor,
                 dscale: Tangent) -> tuple[Tensor, Tangent]:
    """:func:`modulate` and its tangent dx (1 + scale) + x dscale + dshift."""
    tangent = add_tangents(scale_tangent(dx, 1 + scale[:, None]),
                           None if dscale is None else x * dscale[:, None],
                           None if dshift is None else dshift[:, None].expand_as(x))
    return modulate(x, shift, scale), tangent


def _gated_jvp(x: Tensor, dx: Tangent, gate: Tensor, dgate: Tangent, y: Tensor, dy: Tangent) -> tuple[Tensor, Tangent]:
    """x + gate y (gate [B, D] per sample) and its tangent."""
    g = gate[:, None]
    return x + g * y, add_tangents(dx, None if dgate is None else dgate[:, None] * y, scale_tangent(dy, g))


def _chunks(u: Tensor, du: Tangent, n: int) -> list[tuple[Tensor, Tangent]]:
    parts = u.chunk(n, dim=1)
    return list(zip(parts, [None] * n if du is None else du.chunk(n, dim=1)))


class DiTBlock(nn.Module):
    """Attention and MLP, each behind an adaLN-Zero modulation (zero-initialised gates)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qk_norm: bool) -> None:
        super().__init__()
        self.norm1 = LayerNorm()
        self.attn = Attention(dim, heads, qk_norm)
        self.norm2 = LayerNorm()
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.forward_jvp(x, None, c, None)[0]

    def forward_jvp(self, x: Tensor, dx: Tangent, c: Tensor, dc: Tangent) -> tuple[Tensor, Tangent]:
        ada = linear_jvp(*silu_jvp(c, dc), self.ada[1].weight, self.ada[1].bias)
        (shift_a, dshift_a), (scale_a, dscale_a), (gate_a, dgate_a), (shift_m, dshift_m), (scale_m, dscale_m), \
            (gate_m, dgate_m) = _chunks(*ada, 6)
        h, dh = modulate_jvp(*self.norm1.forward_jvp(x, dx), shift_a, dshift_a, scale_a, dscale_a)
        x, dx = _gated_jvp(x, dx, gate_a, dgate_a, *self.attn.forward_jvp(h, dh))
        h, dh = modulate_jvp(*self.norm2.forward_jvp(x, dx), shift_m, dshift_m, scale_m, dscale_m)
        h, dh = linear_jvp(h, dh, self.mlp[0].weight, self.mlp[0].bias)
        h, dh = linear_jvp(*gelu_tanh_jvp(h, dh), self.mlp[2].weight, self.mlp[2].bias)
        return _gated_jvp(x, dx, gate_m, dgate_m, h, dh)


class DiT(nn.Module):
    """The flow-map DiT f(x, s, t - s): use with ``FlowMap(net, time_input="s_dt")``.

    x: [B, C, H, W] or [B, L, C] as ``cfg.input_shape``; s, dt: [B] raw times; y: [B] labels
    (0..K-1, K the null label) when ``num_classes`` > 0; alpha: [B] guidance scales when ``guidance``.
    """

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        grid, self.channels, patch_dim = token_layout(cfg)
        self.image = len(cfg.input_shape) == 3
        self.num_classes, self.guidance = cfg.num_classes, cfg.guidance
        if cfg.guidance and not cfg.num_classes:
            raise ValueError("a guided DiT (guidance=True) needs num_classes > 0")
        out_dim = patch_dim * (2 if cfg.learn_sigma else 1)
        self.embed = nn.Linear(patch_dim, d)
        self.register_buffer("pos", position_table(grid, d), persistent=False)
        self.emb_s = TimeEmbedder(d, cfg.frequency_channels)
        self.emb_dt = TimeEmbedder(d, cfg.frequency_channels) if cfg.two_times else None
        self.emb_alpha = TimeEmbedder(d, cfg.frequency_channels) if cfg.guidance else None
        self.emb_label = nn.Embedding(cfg.num_classes + 1, d) if cfg.num_classes else None
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.heads, cfg.mlp_ratio, cfg.qk_norm) for _ in range(cfg.depth))
        self.final_norm = LayerNorm()
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.out = nn.Linear(d, out_dim)
        self.weight_head = nn.Linear(2 * 128, 1) if cfg.learned_weight else None
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's initialisation: Xavier-uniform linears, normal(0.02) time MLPs and labels, and
        zero adaLN modulations and output (the map starts as the identity)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for emb in (self.emb_s, self.emb_dt, self.emb_alpha):
            if emb is not None:
                nn.init.normal_(emb.mlp[0].weight, std=0.02)
                nn.init.normal_(emb.mlp[2].weight, std=0.02)
        if self.emb_label is not None:
            nn.init.normal_(self.emb_label.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.ada[1].weight)
            nn.init.zeros_(block.ada[1].bias)
        for layer in (self.final_ada[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.weight_head is not None:
            nn.init.zeros_(self.weight_head.weight)
            nn.init.zeros_(self.weight_head.bias)

    # -- tokens -------------------------------------------------------------------------------------
    def patchify(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, HW / p^2, C p^2] or [B, L, C] -> [B, L / p, C p]."""
        p = self.cfg.patch_size
        if self.image:
            b, c, h, w = x.shape
            return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)
        b, length, c = x.shape
        return x.reshape(b, length // p, p * c)

    def unpatchify(self, tokens: Tensor) -> Tensor:
        """The inverse of :meth:`patchify` (first C channels when ``learn_sigma``)."""
        p, shape = self.cfg.patch_size, tuple(self.cfg.input_shape)
        b = tokens.shape[0]
        if self.image:
            c, h, w = shape
            x = tokens[..., : c * p * p].reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
            return x.reshape(b, c, h, w)
        length, c = shape
        return tokens[..., : p * c].reshape(b, length, c)

    # -- conditioning -------------------------------------------------------------------------------
    def conditioning(self, s: Tensor, dt: Tensor, y: Tensor | None, alpha: Tensor | None) -> Tensor:
        """c = emb(s) + emb(t - s) [+ emb(alpha)] [+ label embedding]: [B, hidden]."""
        return self.conditioning_jvp(s, dt, None, None, y, alpha)[0]

    def conditioning_jvp(self, s: Tensor, dt: Tensor, ds: Tangent, ddt: Tangent, y: Tensor | None,
                         alpha: Tensor | None) -> tuple[Tensor, Tangent]:
        """:meth:`conditioning` and its tangent along (ds, ddt); labels and alpha carry none."""
        c, dc = self.emb_s.forward_jvp(s, ds)
        if self.emb_dt is not None:
            e, de = self.emb_dt.forward_jvp(dt, ddt)
            c, dc = c + e, add_tangents(dc, de)
        if self.emb_alpha is not None:
            c = c + self.emb_alpha(torch.ones_like(s) if alpha is None else alpha)
        if self.emb_label is not None:
            if y is None:
                raise ValueError("this network is class-conditional: pass labels y (the null label K for unconditional)")
            c = c + self.emb_label(y).to(c.dtype)
        return c, dc

    def forward(self, x: Tensor, s: Tensor, dt: Tensor, y: Tensor | None = None, alpha: Tensor | None = None) -> Tensor:
        return self.forward_jvp(x, s, dt, None, None, None, y, alpha)[0]

    def forward_jvp(self, x: Tensor, s: Tensor, dt: Tensor, dx: Tangent, ds: Tangent, ddt: Tangent,
                    y: Tensor | None = None, alpha: Tensor | None = None) -> tuple[Tensor, Tangent]:
        """(v, dv), shaped like x: the output and its derivative along dx, ds, ddt [B] (``None``: zero)."""
        sd = self.cfg.sigma_data
        c, dc = self.conditioning_jvp(s, dt, ds, ddt, y, alpha)
        h, dh = linear_jvp(self.patchify(x / sd), None if dx is None else self.patchify(dx / sd),
                           self.embed.weight, self.embed.bias)
        h = h + self.pos.to(x.dtype)
        for block in self.blocks:
            h, dh = block.forward_jvp(h, dh, c, dc)
        (shift, dshift), (scale, dscale) = _chunks(*linear_jvp(*silu_jvp(c, dc), self.final_ada[1].weight,
                                                                self.final_ada[1].bias), 2)
        h, dh = modulate_jvp(*self.final_norm.forward_jvp(h, dh), shift, dshift, scale, dscale)
        h, dh = linear_jvp(h, dh, self.out.weight, self.out.bias)
        return (sd * self.unpatchify(h)).to(x.dtype), None if dh is None else (sd * self.unpatchify(dh)).to(x.dtype)

    def log_weight(self, s: Tensor, t: Tensor) -> Tensor | None:
        """Learned loss weight w_{s,t} [B] from sine-cosine features of raw s and t (eq 19)."""
        if self.weight_head is None:
            return None
        emb = torch.cat([positional_embedding(s, 128), positional_embedding(t, 128)], dim=1)
        return self.weight_head(emb.to(self.weight_head.weight.dtype)).squeeze(1)


def dit_parameter_count(cfg: DiTConfig) -> int:
    """Parameters of the DiT ``cfg`` builds, counted on the meta device (no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in DiT(cfg).parameters())


__all__ = ["DIT_SIZES", "DiT", "DiTConfig", "dit_parameter_count"]
