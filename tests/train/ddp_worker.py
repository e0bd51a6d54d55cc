"""Run by tests/train/test_ddp.py under torchrun: train, then gather every rank's weights."""
import sys

import torch
import torch.distributed as dist

from flowmaps.config import build_config, preset
from flowmaps.train.distributed import exit_now, shutdown
from flowmaps.train.trainer import Trainer


def config(accum_steps: int):
    base = preset("gaussian")
    base["net"] = {"kind": "mlp", "width": 32, "depth": 2}
    base["train"].update({"steps": 8, "batch_size": 64, "accum_steps": accum_steps, "progress": False,
                          "log_every": 4, "ckpt_every": 8})
    return build_config(base)


if __name__ == "__main__":
    out = sys.argv[1]
    tr = Trainer(config(1), out)
    tr.fit()
    flat = torch.cat([p.detach().flatten() for p in tr.fm.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        torch.save(torch.stack(gathered), f"{out}/ranks.pt")
    shutdown(tr.dist)
    exit_now(0)  # as the CLI does under torchrun: no gloo thread teardown at interpreter exit
