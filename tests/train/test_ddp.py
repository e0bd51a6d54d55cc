"""Two CPU processes (gloo) stay in lockstep and match one process with the same global batch.

DDP here averages gradients explicitly (torch.func and DistributedDataParallel do not mix); each
rank splits its local batch diagonal : off-diagonal exactly, as one process does per
accumulation micro-batch, so the single-process reference uses train.accum_steps = 2.
"""
import os
import subprocess
import sys
from pathlib import Path

import torch

from flowmaps.train.trainer import Trainer

from .ddp_worker import config


def test_two_ranks_match_single_process(tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if "Error" in line or "error" in line]
    assert proc.returncode == 0, "\n".join(errors[:20]) + "\n---\n" + proc.stderr[:3000]
    ranks = torch.load(tmp_path / "ddp" / "ranks.pt")
    assert torch.equal(ranks[0], ranks[1])  # weights identical across ranks

    single = Trainer(config(2), tmp_path / "single")
    single.fit()
    flat = torch.cat([p.detach().flatten() for p in single.fm.parameters()])
    assert torch.allclose(flat, ranks[0], rtol=1e-5, atol=1e-6)
    moved = (flat - torch.cat([p.detach().flatten() for p in Trainer(config(2), tmp_path / "init").fm.parameters()]))
    assert moved.abs().max() > 1e-3  # training did change the weights
