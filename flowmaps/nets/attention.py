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
    k, v = k.to(q.dtype), v.to(q.dtype)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    w = softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1)
    return torch.matmul(w, v)
