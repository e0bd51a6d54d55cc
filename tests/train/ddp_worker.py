"""Run by tests/train/test_ddp.py under torchrun: train, then gather every rank's weights."""
import os
import signal
import sys

import torch
import torch.distributed as dist

from flowmaps.config import build_config, preset
from flowmaps.errors import Interrupted
from flowmaps.train.distributed import exit_now, shutdown
from flowmaps.train.trainer import Trainer


def config(accum_steps: int):
    base = preset("gaussian")
    base["net"] = {"kind": "mlp", "width": 32, "depth": 2}
    base["train"].update({"steps": 8, "batch_size": 64, "accum_steps": accum_steps, "progress": False,
                          "log_every": 4, "ckpt_every": 8})
    return build_config(base)


def budgeted(out: str) -> Trainer:
    """A 3-second budget on a fake clock that only rank 0's steps slow down (after step 60):
    rank 0 decides every re-plan and both ranks must take the same steps."""
    base = preset("gaussian")
    base["net"] = {"kind": "mlp", "width": 32, "depth": 2}
    base["loss"] = {"curriculum_fm": 0.1, "curriculum_ramp": 0.1}
    base["train"].update({"minutes": 0.05, "batch_size": 64, "progress": False, "log_every": 10, "ckpt_every": 1000})
    tr = Trainer(build_config(base), out)
    now = [0.0]
    tr.clock = lambda: now[0]
    tr._time_steps = lambda stage, warm, seconds: [0.01] * 6
    real = tr.train_step

    def step(stage=None):
        now[0] += 0.02 if dist.get_rank() == 0 and tr.step >= 60 else 0.01
        return real(stage)

    tr.train_step = step
    tr.fit()
    return tr


def signalled(out: str) -> Trainer:
    """Only rank 1 gets SIGTERM, after its third step: both ranks must stop at that step."""
    tr = Trainer(config(1), out)
    real = tr.train_step

    def step(stage=None):
        rec = real(stage)
        if dist.get_rank() == 1 and tr.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return rec

    tr.train_step = step
    try:
        tr.fit()
    except Interrupted:
        pass
    return tr


if __name__ == "__main__":
    out = sys.argv[1]
    if sys.argv[2:] == ["budget"]:
        tr = budgeted(out)
    elif sys.argv[2:] == ["signal"]:
        tr = signalled(out)
    else:
        tr = Trainer(config(1), out)
        tr.fit()
    flat = torch.cat([p.detach().flatten() for p in tr.fm.parameters()] + [torch.tensor([float(tr.step)])])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        torch.save(torch.stack(gathered), f"{out}/ranks.pt")
    shutdown(tr.dist)
    exit_now(0)  # as the CLI does under torchrun: no gloo thread teardown at interpreter exit
