"""The paper's EDM2 flow-map UNet (section 3.2): EDM2 config G conditioned on (s, t - s).

v_{s,t}(x) = sigma_data * UNet(x / sigma_data; s, t - s) with sigma_data = 0.5, so the flow map
X_{s,t}(x) = x + (t - s) v is the identity at initialisation (zero output gain).
Shapes: x [B, C, H, W]; s, dt [B] raw times in [0, 1]; optional class labels y [B] (int64, the
value ``num_classes`` is the null label for guidance) and, with ``guidance``, the guidance scale
alpha [B] (App. F.5), embedded like the times (default 1: the plain conditional map).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import attention_jvp
from .mp import (
    MP_SILU_GAIN,
    MPConv,
    force_normalize,
    mp_cat_jvp,
    mp_sum,
    mp_sum_jvp,
    normalize_jvp,
    positional_embedding,
    positional_embedding_jvp,
    shared_weights,
)
from .tangents import Tangent, add_tangents, scale_tangent, silu_jvp


@dataclass
class EDM2Config:
    """Architecture options; the defaults are the paper's CIFAR-10 network."""

    img_resolution: int = 32
    img_channels: int = 3
    model_channels: int = 128
    channel_mult: list[int] = field(default_factory=lambda: [2, 2, 2])
    num_blocks: int = 4
    attn_resolutions: list[int] = field(default_factory=lambda: [16])
    dropout: float = 0.13
    num_classes: int = 0
    guidance: bool = False
    sigma_data: float = 0.5
    channels_per_head: int = 64
    res_balance: float = 0.3
    attn_balance: float = 0.3
    clip_act: float = 256.0
    logvar_channels: int = 128
    learned_weight: bool = True


PRESETS: dict[str, EDM2Config] = {
    "cifar10": EDM2Config(),
    "64x64": EDM2Config(
        img_resolution=64, channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[16, 8], dropout=0.0
    ),
}


def _resample(x: Tensor, mode: str) -> Tensor:
    if mode == "down":  # [1, 1] box filter, stride 2
        return F.avg_pool2d(x, 2)
    if mode == "up":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return x


def _resample_jvp(x: Tensor, dx: Tangent, mode: str) -> tuple[Tensor, Tangent]:
    return _resample(x, mode), None if dx is None else _resample(dx, mode)


class Block(nn.Module):
    """EDM2 residual block: pixel norm (encoder), FiLM modulation with a zero-initialised gain,
    dropout, magnitude-preserving residual sum, optional cosine self-attention."""

    def __init__(self, cin: int, cout: int, cemb: int, flavor: str, resample: str = "keep", attn: bool = False,
                 cfg: EDM2Config | None = None) -> None:
        super().__init__()
        cfg = cfg or EDM2Config()
        self.flavor, self.resample, self.cout = flavor, resample, cout
        self.heads = cout // cfg.channels_per_head if attn else 0
        self.res_balance, self.attn_balance, self.clip_act = cfg.res_balance, cfg.attn_balance, cfg.clip_act
        self.emb_gain = nn.Parameter(torch.zeros([]))
        self.conv_res0 = MPConv(cout if flavor == "enc" else cin, cout, (3, 3))
        self.emb_linear = MPConv(cemb, cout)
        self.conv_res1 = MPConv(cout, cout, (3, 3))
        self.conv_skip = MPConv(cin, cout, (1, 1)) if cin != cout else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.attn_qkv = MPConv(cout, cout * 3, (1, 1)) if self.heads else None
        self.attn_proj = MPConv(cout, cout, (1, 1)) if self.heads else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.forward_jvp(x, None, emb, None)[0]

    def forward_jvp(self, x: Tensor, dx: Tangent, emb: Tensor, demb: Tangent) -> tuple[Tensor, Tangent]:
        """The block on x [B, C, H, W] and emb [B, cemb], with the tangents dx, demb beside (``None``:
        zero, and the primal path is exactly :meth:`forward`'s)."""
        x, dx = _resample_jvp(x, dx, self.resample)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x, dx = self.conv_skip.forward_jvp(x, dx)
            x, dx = normalize_jvp(x, dx, dim=[1])  # pixel norm
        # mp_silu(h) = silu(h) / 0.596 feeds a (linear) convolution here, so its scale is folded
        # into the convolution's weight gain: one activation-sized op less per use.
        y, dy = self.conv_res0.forward_jvp(*silu_jvp(x, dx), gain=MP_SILU_GAIN)
        c, dc = self.emb_linear.forward_jvp(emb, demb, gain=self.emb_gain)
        c = (c + 1)[:, :, None, None].to(y.dtype)
        dc = None if dc is None else dc[:, :, None, None].to(y.dtype)
        y, dy = silu_jvp(y * c, add_tangents(scale_tangent(dy, c), scale_tangent(dc, y)))
        if dy is not None and self.dropout.training and self.dropout.p > 0:  # one mask for both
            mask = self.dropout(torch.ones_like(y))
            y, dy = y * mask, dy * mask
        else:
            y = self.dropout(y)
        y, dy = self.conv_res1.forward_jvp(y, dy, gain=MP_SILU_GAIN)
        if self.flavor == "dec" and self.conv_skip is not None:
            x, dx = self.conv_skip.forward_jvp(x, dx)
        x, dx = mp_sum_jvp(x, dx, y, dy, self.res_balance)
        if self.heads:
            B, C, H, W = x.shape
            qkv, dqkv = self.attn_qkv.forward_jvp(x, dx)
            qkv, dqkv = normalize_jvp(qkv.reshape(B, self.heads, -1, 3, H * W),
                                      None if dqkv is None else dqkv.reshape(B, self.heads, -1, 3, H * W), dim=[2])
            q, k, v = (u.transpose(-1, -2) for u in qkv.unbind(3))  # cosine attention: unit-norm per head
            dq, dk, dv = (None, None, None) if dqkv is None else (u.transpose(-1, -2) for u in dqkv.unbind(3))
            y, dy = attention_jvp(q, dq, k, dk, v, dv)
            y, dy = self.attn_proj.forward_jvp(y.transpose(-1, -2).reshape(B, C, H, W),
                                               None if dy is None else dy.transpose(-1, -2).reshape(B, C, H, W))
            x, dx = mp_sum_jvp(x, dx, y, dy, self.attn_balance)
        if self.clip_act:
            if dx is not None:  # clamp's derivative: 1 inside [-clip, clip], 0 outside
                dx = dx * ((x >= -self.clip_act) & (x <= self.clip_act)).to(dx.dtype)
            x = torch.clamp(x, -self.clip_act, self.clip_act)
        return x, dx


class EDM2UNet(nn.Module):
    """The flow-map UNet f(x, s, t - s): use with ``FlowMap(net, time_input="s_dt")``.

    Parameter counts: 54,673,314 for the CIFAR-10 config, 124,264,485 for the 64x64 one.
    ``compute_dtype`` (e.g. torch.bfloat16) runs the body in that dtype (weights cast at use,
    parameters kept in float32, output cast back), as the paper's 64x64 runs, JVPs included.
    """

    def __init__(self, cfg: EDM2Config | None = None, compute_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        cfg = cfg or EDM2Config()
        self.cfg, self.compute_dtype = cfg, compute_dtype
        cblock = [cfg.model_channels * m for m in cfg.channel_mult]
        self.cnoise, cemb = cblock[0], max(cblock)
        self.out_gain = nn.Parameter(torch.zeros([]))
        self.emb_s = MPConv(self.cnoise, cemb)
        self.emb_dt = MPConv(self.cnoise, cemb)
        self.emb_label = MPConv(cfg.num_classes, cemb) if cfg.num_classes else None
        if cfg.guidance and not cfg.num_classes:
            raise ValueError("a guided EDM2 UNet (guidance=True) needs num_classes > 0")
        self.guidance, self.num_classes = cfg.guidance, cfg.num_classes
        self.emb_alpha = MPConv(self.cnoise, cemb) if cfg.guidance else None
        self.logvar_linear = MPConv(cfg.logvar_channels, 1) if cfg.learned_weight else None

        self.enc = nn.ModuleDict()
        cout = cfg.img_channels + 1
        for level, channels in enumerate(cblock):
            res = cfg.img_resolution >> level
            if level == 0:
                cin, cout = cout, channels
                self.enc[f"{res}x{res}_conv"] = MPConv(cin, cout, (3, 3))
            else:
                self.enc[f"{res}x{res}_down"] = Block(cout, cout, cemb, "enc", "down", cfg=cfg)
            for i in range(cfg.num_blocks):
                cin, cout = cout, channels
                self.enc[f"{res}x{res}_block{i}"] = Block(cin, cout, cemb, "enc", attn=res in cfg.attn_resolutions, cfg=cfg)
        self.dec = nn.ModuleDict()
        skips = [b.out_channels if isinstance(b, MPConv) else b.cout for b in self.enc.values()]
        for level, channels in reversed(list(enumerate(cblock))):
            res = cfg.img_resolution >> level
            if level == len(cblock) - 1:
                self.dec[f"{res}x{res}_in0"] = Block(cout, cout, cemb, "dec", attn=True, cfg=cfg)
                self.dec[f"{res}x{res}_in1"] = Block(cout, cout, cemb, "dec", cfg=cfg)
            else:
                self.dec[f"{res}x{res}_up"] = Block(cout, cout, cemb, "dec", "up", cfg=cfg)
            for i in range(cfg.num_blocks + 1):
                cin, cout = cout + skips.pop(), channels
                self.dec[f"{res}x{res}_block{i}"] = Block(cin, cout, cemb, "dec", attn=res in cfg.attn_resolutions, cfg=cfg)
        self.out_conv = MPConv(cout, cfg.img_channels, (3, 3))

    def embedding(self, s: Tensor, dt: Tensor, y: Tensor | None, alpha: Tensor | None = None) -> Tensor:
        """mp_silu(mp_sum(emb(s), emb(t - s)) [+ guidance scale] [+ label]): [B, cemb]."""
        return self.embedding_jvp(s, dt, None, None, y, alpha)[0]

    def embedding_jvp(self, s: Tensor, dt: Tensor, ds: Tangent, ddt: Tangent, y: Tensor | None,
                      alpha: Tensor | None = None) -> tuple[Tensor, Tangent]:
        """:meth:`embedding` and its tangent along (ds, ddt) [B]; labels and the guidance scale carry none."""
        e_s, de_s = self.emb_s.forward_jvp(*positional_embedding_jvp(s, ds, self.cnoise))
        e_dt, de_dt = self.emb_dt.forward_jvp(*positional_embedding_jvp(dt, ddt, self.cnoise))
        emb, demb = mp_sum_jvp(e_s, de_s, e_dt, de_dt)
        if self.emb_alpha is not None:
            a = torch.ones_like(s) if alpha is None else alpha
            emb, demb = mp_sum_jvp(emb, demb, self.emb_alpha(positional_embedding(a, self.cnoise)), None, t=0.25)
        if self.emb_label is not None:
            if y is None:
                raise ValueError("this network is class-conditional: pass labels y")
            onehot = F.one_hot(y, self.cfg.num_classes + 1)[:, : self.cfg.num_classes].to(emb.dtype)
            emb, demb = mp_sum_jvp(emb, demb, self.emb_label(onehot * math.sqrt(self.cfg.num_classes)), None)
        emb, demb = silu_jvp(emb, demb)  # mp_silu
        return emb * MP_SILU_GAIN, scale_tangent(demb, MP_SILU_GAIN)

    def forward(self, x: Tensor, s: Tensor, dt: Tensor, y: Tensor | None = None, alpha: Tensor | None = None) -> Tensor:
        return self.forward_jvp(x, s, dt, None, None, None, y, alpha)[0]

    def forward_jvp(self, x: Tensor, s: Tensor, dt: Tensor, dx: Tangent, ds: Tangent, ddt: Tangent,
                    y: Tensor | None = None, alpha: Tensor | None = None) -> tuple[Tensor, Tangent]:
        """(v [B, C, H, W], dv): the output and its derivative along dx [B, C, H, W], ds, ddt [B]
        (``None``: zero; LSD's tangent in t enters at the embedding, so the input convolution carries
        none). The flow map's ``explicit`` JVP backend; with no tangent it is :meth:`forward`."""
        sd = self.cfg.sigma_data
        out_dtype = x.dtype
        emb, demb = self.embedding_jvp(s, dt, ds, ddt, y, alpha)
        h = x / sd
        h = torch.cat([h, torch.ones_like(h[:, :1])], dim=1)
        dh = None if dx is None else torch.cat([dx / sd, torch.zeros_like(dx[:, :1])], dim=1)
        if self.compute_dtype is not None:
            h, emb = h.to(self.compute_dtype), emb.to(self.compute_dtype)
            dh = None if dh is None else dh.to(self.compute_dtype)
            demb = None if demb is None else demb.to(self.compute_dtype)
        skips = []
        for name, block in self.enc.items():
            h, dh = block.forward_jvp(h, dh) if name.endswith("_conv") else block.forward_jvp(h, dh, emb, demb)
            skips.append((h, dh))
        for name, block in self.dec.items():
            if "block" in name:
                h, dh = mp_cat_jvp(h, dh, *skips.pop())
            h, dh = block.forward_jvp(h, dh, emb, demb)
        h, dh = self.out_conv.forward_jvp(h, dh, gain=self.out_gain)
        return (sd * h).to(out_dtype), None if dh is None else (sd * dh).to(out_dtype)

    def log_weight(self, s: Tensor, t: Tensor) -> Tensor | None:
        """Learned loss weight w_{s,t} [B] from positional embeddings of raw s and t (eq 19)."""
        if self.logvar_linear is None:
            return None
        c = self.cfg.logvar_channels
        emb = mp_sum(positional_embedding(s, c), positional_embedding(t, c))
        return self.logvar_linear(emb).squeeze(1)

    def shared_weights(self):
        """Normalise each weight once per block (see :func:`flowmaps.nets.mp.shared_weights`)."""
        return shared_weights(self)

    def force_normalize(self) -> None:
        """EDM2 forced weight normalisation; call after every optimizer step."""
        force_normalize(self)
