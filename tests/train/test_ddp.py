"""Two CPU processes (gloo) stay in lockstep and match one process with the same global batch.

DDP here averages gradients explicitly (torch.func and DistributedDataParallel do not mix); each
rank splits its local batch diagonal : off-diagonal exactly, as one process does per
accumulation micro-batch, so the single-process reference uses train.accum_steps = 2.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from flowmaps.train.trainer import Trainer

from .ddp_worker import config


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(out: Path, *args: str) -> torch.Tensor:
    """Run ddp_worker.py on 2 ranks; every rank's weights (and final step, last), stacked.
    Deterministic by construction: an explicit free loopback port for the rendezvous, gloo on
    the loopback interface, and one thread everywhere (the single-process reference too), so
    the floating-point sums run in the same order in every process and on every machine."""
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "PYTHONPATH": str(Path(__file__).parents[2])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", str(worker), str(out), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if "Error" in line or "error" in line]
    assert proc.returncode == 0, "\n".join(errors[:20]) + "\n---\n" + proc.stderr[-4000:]
    return torch.load(out / "ranks.pt")


def test_two_ranks_match_single_process(tmp_path):
    ranks = _two_ranks(tmp_path / "ddp")[:, :-1]
    assert torch.equal(ranks[0], ranks[1])  # weights identical across ranks

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = Trainer(config(2), tmp_path / "single")
        single.fit()
    finally:
        torch.set_num_threads(threads)
    flat = torch.cat([p.detach().flatten() for p in single.fm.parameters()])
    assert torch.allclose(flat, ranks[0], rtol=1e-5, atol=1e-6)
    moved = (flat - torch.cat([p.detach().flatten() for p in Trainer(config(2), tmp_path / "init").fm.parameters()]))
    assert moved.abs().max() > 1e-3  # training did change the weights


def test_two_ranks_re_plan_a_budget_together(tmp_path):
    """Only rank 0's clock slows down; its re-plans reach rank 1, so both take the same steps."""
    import json

    ranks = _two_ranks(tmp_path / "ddp", "budget")
    assert torch.equal(ranks[0], ranks[1])
    budget = json.loads((tmp_path / "ddp" / "run.json").read_text())["budget"]
    assert budget["replans"] and int(ranks[0, -1]) == budget["steps"] < budget["planned_steps"]


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """SIGTERM reaches rank 1 only: both ranks stop after the same step, and rank 0 writes that
    step's checkpoint, whole."""
    from flowmaps.train.checkpoint import list_checkpoints, verify_checkpoint

    ranks = _two_ranks(tmp_path / "ddp", "signal")
    assert torch.equal(ranks[0], ranks[1]) and int(ranks[0, -1]) == 3
    newest = list_checkpoints(tmp_path / "ddp" / "checkpoints")[-1]
    assert newest.name == "step-00000003" and verify_checkpoint(newest) is None
