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

from .attention import attention
from .mp import MP_SILU_GAIN, MPConv, force_normalize, mp_cat, mp_silu, mp_sum, normalize, positional_embedding, shared_weights


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
        x = _resample(x, self.resample)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=[1])  # pixel norm
        # mp_silu(h) = silu(h) / 0.596 feeds a (linear) convolution here, so its scale is folded
        # into the convolution's weight gain: one activation-sized op less per use.
        y = self.conv_res0(F.silu(x), gain=MP_SILU_GAIN)
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = F.silu(y * c[:, :, None, None].to(y.dtype))
        y = self.conv_res1(self.dropout(y), gain=MP_SILU_GAIN)
        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, self.res_balance)
        if self.heads:
            B, C, H, W = x.shape
            qkv = self.attn_qkv(x).reshape(B, self.heads, -1, 3, H * W)
            q, k, v = normalize(qkv, dim=[2]).unbind(3)  # cosine attention: unit-norm per head
            y = attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
            y = self.attn_proj(y.transpose(-1, -2).reshape(B, C, H, W))
            x = mp_sum(x, y, self.attn_balance)
        if self.clip_act:
            x = torch.clamp(x, -self.clip_act, self.clip_act)
        return x


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
        emb = mp_sum(self.emb_s(positional_embedding(s, self.cnoise)), self.emb_dt(positional_embedding(dt, self.cnoise)))
        if self.emb_alpha is not None:
            a = torch.ones_like(s) if alpha is None else alpha
            emb = mp_sum(emb, self.emb_alpha(positional_embedding(a, self.cnoise)), t=0.25)
        if self.emb_label is not None:
            if y is None:
                raise ValueError("this network is class-conditional: pass labels y")
            onehot = F.one_hot(y, self.cfg.num_classes + 1)[:, : self.cfg.num_classes].to(emb.dtype)
            emb = mp_sum(emb, self.emb_label(onehot * math.sqrt(self.cfg.num_classes)))
        return mp_silu(emb)

    def forward(self, x: Tensor, s: Tensor, dt: Tensor, y: Tensor | None = None, alpha: Tensor | None = None) -> Tensor:
        sd = self.cfg.sigma_data
        out_dtype = x.dtype
        emb = self.embedding(s, dt, y, alpha)
        h = x / sd
        h = torch.cat([h, torch.ones_like(h[:, :1])], dim=1)
        if self.compute_dtype is not None:
            h, emb = h.to(self.compute_dtype), emb.to(self.compute_dtype)
        skips = []
        for name, block in self.enc.items():
            h = block(h) if name.endswith("_conv") else block(h, emb)
            skips.append(h)
        for name, block in self.dec.items():
            if "block" in name:
                h = mp_cat(h, skips.pop())
            h = block(h, emb)
        h = self.out_conv(h, gain=self.out_gain)
        return (sd * h).to(out_dtype)

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
