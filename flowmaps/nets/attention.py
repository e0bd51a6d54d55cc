"""Attention that works under every JVP backend, with gradients through the JVP, in any dtype.

Two PyTorch gaps are avoided here:
- fused scaled-dot-product-attention kernels have no forward-mode derivative (pytorch#154226);
- torch.softmax's forward-mode rule writes in place into a tensor that backward needs, so
  backpropagating through a ``torch.autograd.forward_ad`` JVP of it fails (pytorch#162350).
The softmax below is written with exp / sum, and q, k, v are cast to one dtype, which also keeps
a bfloat16-autocast LSD step from mixing dtypes between the JVP and its backward.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def softmax(z: Tensor, dim: int = -1) -> Tensor:
    """exp(z - max) / sum exp(z - max) along ``dim``; the max is a constant shift (detached)."""
    e = torch.exp(z - z.detach().amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def attention(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale) v over the last two dims: q [..., Lq, d], k, v [..., Lk, d] -> [..., Lq, d].

    Computed in the dtype of q (k and v are cast to it). ``scale`` defaults to 1 / sqrt(d).
    """
    return attention_jvp(q, None, k, None, v, None, scale)[0]


def attention_jvp(q: Tensor, dq: Tensor | None, k: Tensor, dk: Tensor | None, v: Tensor, dv: Tensor | None,
                  scale: float | None = None) -> tuple[Tensor, Tensor | None]:
    """:func:`attention` and its tangent along (dq, dk, dv) (``None``: zero), from plain operations:
    with S = q k^T scale, P = softmax(S): dS = (dq k^T + q dk^T) scale, dP = P (dS - rowsum(P dS)),
    d out = dP v + P dv."""
    k, v = k.to(q.dtype), v.to(q.dtype)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    p = softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1)
    out = torch.matmul(p, v)
    d_out = None
    if dq is not None or dk is not None:
        ds = None
        if dq is not None:
            ds = torch.matmul(dq.to(q.dtype), k.transpose(-1, -2))
        if dk is not None:
            term = torch.matmul(q, dk.to(q.dtype).transpose(-1, -2))
            ds = term if ds is None else ds + term
        pds = p * (ds * scale)
        dp = pds - p * pds.sum(dim=-1, keepdim=True)
        d_out = torch.matmul(dp, v)
    if dv is not None:
        term = torch.matmul(p, dv.to(q.dtype))
        d_out = term if d_out is None else d_out + term
    return out, d_out
