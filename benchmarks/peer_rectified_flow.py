"""flowmaps against a peer in the same run: rectified-flow-pytorch's LsdFlow and MeanFlow.

Same checkerboard, same network (flowmaps' MLP, width 256, depth 4), same batch (2048), same
seed and the same wall-clock budget per trainer on this machine, scored by the appendix G.1 KL at
N = 1, 2, 4 with the same 64,000 noise draws.

    bash benchmarks/setup_peer.sh
    .venv/bin/python benchmarks/peer_rectified_flow.py --seconds 120

flowmaps runs as a user runs it: the ``checker-cpu`` preset with ``train.minutes`` set to the
budget, so it measures its own step time, fits its schedule (warm-up, constant, decay to zero)
to the budget, trains in bfloat16 where the CPU supports it, and evaluates with the EMA its
evaluation picks (raw, power EMAs and post-hoc reconstructions). The peers run their own
defaults with the optimizer the earlier comparison used (RAdam, lr 2e-3, clip 10) and a 0.999
EMA of their weights (flowmaps' EMA class applied to their modules, since they keep none): the
peer's LsdFlow evaluates both the diagonal and the off-diagonal branch on the whole batch and
masks (diag_prob 0.75, times clamped to [1e-3, 1 - 1e-3]); its MeanFlow samples times
logit-normally, mixes 50% flow matching and uses an adaptive loss weight. Multi-step MeanFlow
samples are drawn with the learned average velocity, z <- z - dt u(z, t, dt), which is the flow
map; the peer's own slow_sample uses dt = 0 (an Euler ODE step), which is not.
``--old-recipe`` also trains flowmaps with the paper's recipe in the peers' loop.
"""
from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig, sample_map
from flowmaps.data import checkerboard
from flowmaps.metrics import checker_kl, checker_kl_floor
from flowmaps.nets import MLP
from flowmaps.train.ema import EMA

STEPS = [1, 2, 4]
EMA_DECAY = 0.999


def load_peer(module: str):
    spec = importlib.util.find_spec("rectified_flow_pytorch")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("rectified-flow-pytorch is not installed: run bash benchmarks/setup_peer.sh")
    path = Path(list(spec.submodule_search_locations)[0]) / f"{module}.py"
    mod_spec = importlib.util.spec_from_file_location(f"peer_{module}", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def train_for(seconds: float, loss_fn, module: torch.nn.Module, seed: int) -> tuple[int, float]:
    """Train ``module`` for ``seconds``; afterwards its weights are the 0.999 EMA."""
    torch.manual_seed(seed)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.RAdam(params, lr=2e-3)
    ema = EMA(module, [EMA_DECAY])
    g = torch.Generator().manual_seed(seed)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        loss = loss_fn(checkerboard(2048, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        ema.update(module)
        steps += 1
    rate = steps / (time.perf_counter() - t0)
    module.load_state_dict(ema.state(EMA_DECAY))
    return steps, rate


def train_flowmaps(method: str, seconds: float, seed: int, noise: torch.Tensor) -> tuple[list[float], int, float]:
    """flowmaps' own Trainer with the checker-cpu preset (MLP 256 x 4, batch 2,048) and a budget of
    ``seconds``; scored with the weights its evaluation picks."""
    import tempfile

    from flowmaps.config import build_config, preset
    from flowmaps.ema_selection import choose_weights
    from flowmaps.train.trainer import Trainer

    cfg = build_config(preset("checker-cpu"), {"method": method, "seed": seed,
                                                "train": {"minutes": seconds / 60.0, "progress": False, "ckpt_every": 10**9}})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer = Trainer(cfg, Path(tmp) / "run")
        trainer.fit()
        elapsed = time.perf_counter() - t0
        name, _ = choose_weights(trainer.fm, trainer.ema.flat(), cfg, trainer.source, trainer.sigma,
                                 trainer.source.shape, Path(tmp) / "run")
        fm = trainer.ema_flow_map(name)
    kls = [checker_kl(sample_map(fm, noise, n)) for n in STEPS]
    return kls, trainer.step, trainer.step / elapsed


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--old-recipe", action="store_true", help="also train flowmaps with the paper's recipe (before issue 8)")
    args = ap.parse_args(argv)
    lsd_flow, mean_flow = load_peer("lsd_flow"), load_peer("mean_flow")
    sigma = float(checkerboard(100_000, torch.Generator().manual_seed(0)).std())
    noise = sigma * torch.randn(64000, 2, generator=torch.Generator().manual_seed(12345))
    results = {}

    def mlp():
        torch.manual_seed(args.seed)
        return MLP(dim=2, width=256, depth=4, sigma=sigma)

    # ours, as a user runs it: the checker-cpu defaults with a wall-clock budget (flowmaps measures
    # its step time, fits the schedule to the budget and picks the EMA), on the same network
    for method in ("lsd", "meanflow"):
        kls, steps, rate = train_flowmaps(method, args.seconds, args.seed, noise)
        results[f"flowmaps {method} (defaults)"] = (kls, steps, rate)
        print(f"flowmaps {method}: {steps} steps", file=sys.stderr, flush=True)
    if args.old_recipe:
        for method in ("lsd", "meanflow"):
            fm = FlowMap(mlp())
            obj = Objective(ObjectiveConfig(method=method, weighting="constant"), sigma)
            gen = torch.Generator().manual_seed(args.seed + 1)
            steps, rate = train_for(args.seconds, lambda x, obj=obj, fm=fm, gen=gen: obj(fm, x, generator=gen).loss, fm, args.seed)
            kls = [checker_kl(sample_map(fm.eval(), noise, n)) for n in STEPS]
            results[f"flowmaps {method} (paper recipe, EMA {EMA_DECAY})"] = (kls, steps, rate)

    # the peer's LsdFlow: model(x, s, t), t = 0 noise, the same convention as ours
    net = mlp()
    peer = lsd_flow.LsdFlow(net, data_shape=(2,), noise_std_dev=sigma)
    steps, rate = train_for(args.seconds, lambda x: peer(x), peer, args.seed)
    with torch.no_grad():
        kls = [checker_kl(peer.slow_sample(steps=n, batch_size=noise.shape[0], noise=noise)) for n in STEPS]
    results["rectified-flow-pytorch LsdFlow"] = (kls, steps, rate)
    print(f"peer LsdFlow: {steps} steps", file=sys.stderr, flush=True)

    # the peer's MeanFlow: model(z, t, dt) with t = 1 noise
    net = mlp()
    peer_mf = mean_flow.MeanFlow(net, data_shape=(2,), noise_std_dev=sigma)
    steps, rate = train_for(args.seconds, lambda x: peer_mf(x), peer_mf, args.seed)

    @torch.no_grad()
    def mf_map(z, n):
        for k in range(n):
            t = torch.full((z.shape[0],), 1.0 - k / n)
            z = z - (1.0 / n) * net(z, t, torch.full_like(t, 1.0 / n))
        return z

    kls = [checker_kl(mf_map(noise, n)) for n in STEPS]
    results["rectified-flow-pytorch MeanFlow"] = (kls, steps, rate)

    floor, _ = checker_kl_floor(64000)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"budget {args.seconds:.0f} s of training each; peers with EMA {EMA_DECAY} weights, flowmaps with the "
          f"EMA its evaluation picks; command: python benchmarks/peer_rectified_flow.py "
          f"{' '.join(argv or sys.argv[1:])}\n")
    print("| trainer | KL N=1 | KL N=2 | KL N=4 | steps | steps/s |")
    print("|---|---|---|---|---|---|")
    for name, (kls, steps, rate) in results.items():
        print(f"| {name} | " + " | ".join(f"{k:.3f}" for k in kls) + f" | {steps} | {rate:.1f} |")
    print(f"| perfect sampler (floor) | {floor:.3f} | {floor:.3f} | {floor:.3f} | | |")


if __name__ == "__main__":
    main()
