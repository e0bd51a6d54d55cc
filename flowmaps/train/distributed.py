"""Data parallelism with torch.distributed, launched by torchrun.

torch.func transforms do not see through DistributedDataParallel, and calling ``model.module``
silently skips its gradient hooks. flowmaps therefore keeps the plain module on every rank and
averages gradients explicitly after backward (one flat all-reduce), which is exact and works
with every JVP backend. The diagonal/off-diagonal split is made per rank on its local batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_gradients(module: nn.Module, info: DistInfo) -> None:
    """Average every parameter's gradient over ranks (a missing gradient counts as zero)."""
    if not info.enabled:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def all_agree(flag: bool, info: DistInfo, device: torch.device | str = "cpu") -> bool:
    """True only when ``flag`` holds on every rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def max_over_ranks(value: float, info: DistInfo, device: torch.device | str = "cpu") -> float:
    """The largest ``value`` over the ranks."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def broadcast_float(value: float, info: DistInfo, device: torch.device | str = "cpu") -> float:
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group; the barrier first keeps a fast rank from closing its connections
    while another still uses them (gloo can abort the slower process otherwise)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_now(code: int) -> None:
    """End a torchrun worker after its process group is destroyed, skipping interpreter teardown.

    At interpreter exit, c10d/gloo threads of a finished process group can still be joinable and
    abort the process ("terminate called without an active exception", SIGABRT), which turns a
    finished run into a failure. Everything is written and flushed before this is called.
    """
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
