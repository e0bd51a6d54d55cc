"""The training loop: one command from a configuration to a trained, evaluated flow map.

RAdam with the EDM2 inverse-sqrt schedule, gradient clipping, several EMAs, forced weight
normalisation for EDM2 networks, optional bfloat16, atomic checkpoints with exact resume,
a NaN/Inf guard, JSONL metrics, a progress bar and periodic evaluation; data parallel under
torchrun with explicit gradient averaging (see :mod:`flowmaps.train.distributed`).
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import Config, ConfigError, dump_yaml
from ..data.source import stream_generator
from ..diagnostics import loss_by_time_bin
from ..flow_map import FlowMap
from ..interpolants import get_interpolant
from ..losses.objective import Objective, Teacher
from ..nets.mp import force_normalize
from . import distributed as D
from .builders import build_data, build_flow_map, count_parameters, resolve_run_sigma
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .ema import EMA


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite steps."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is available; use train.device=cpu")
    return torch.device(name)


def lr_at(step: int, cfg: Config) -> float:
    """EDM2 inverse-sqrt decay: lr0 / sqrt(max(step / lr_decay_steps, 1))."""
    return cfg.train.lr / math.sqrt(max(step / max(cfg.train.lr_decay_steps, 1), 1.0))


class Trainer:
    """Train ``cfg`` into ``out_dir`` (``resume``: continue from its latest checkpoint)."""

    def __init__(self, cfg: Config, out_dir: str | Path, resume: bool = False) -> None:
        self.cfg, self.out = cfg, Path(out_dir)
        self.device = pick_device(cfg.train.device)
        self.dist = D.init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        shards = self.dist.world_size * cfg.train.accum_steps
        if cfg.train.batch_size % shards:
            raise ConfigError(f"train.batch_size={cfg.train.batch_size} is not divisible by devices x accum_steps = {shards}")
        self.per_shard = cfg.train.batch_size // shards
        ckpt = latest_checkpoint(self.out / "checkpoints")
        if resume and ckpt is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {self.out / 'checkpoints'}")
        if not resume and ckpt is not None:
            raise FileExistsError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")

        torch.manual_seed(cfg.seed)
        self.source = build_data(cfg)
        self.sigma = resolve_run_sigma(cfg, self.source)
        self.fm: FlowMap = build_flow_map(cfg, self.source.shape, self.source.num_classes, self.sigma).to(self.device)
        self.objective = Objective(cfg.objective_config(), self.sigma, get_interpolant(cfg.interpolant), self._teacher())
        self.opt = torch.optim.RAdam(self.fm.parameters(), lr=cfg.train.lr, betas=(0.9, 0.999), eps=1e-8)
        self.ema = EMA(self.fm, cfg.train.ema)
        self.step = 0
        self.bad_steps = 0
        if resume:
            self._restore(ckpt)  # type: ignore[arg-type]
        elif self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(dump_yaml(cfg))
            (self.out / "run.json").write_text(json.dumps({"sigma": self.sigma, "shape": list(self.source.shape),
                                                            "num_classes": self.source.num_classes,
                                                            "parameters": count_parameters(self.fm)}, indent=2))
        D.barrier(self.dist)

    # -- setup helpers -----------------------------------------------------------------------------
    def _teacher(self) -> Teacher | None:
        if not self.cfg.teacher.run:
            return None
        from ..run import load_run

        run = load_run(self.cfg.teacher.run, ema=self.cfg.teacher.ema, device=self.device)
        return Teacher.from_flow_map(run.fm)

    def _restore(self, path: Path) -> None:
        model, ema, state = load_checkpoint(path)
        self.fm.load_state_dict(model)
        self.ema.load_flat(ema)
        self.opt.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.bad_steps = int(state.get("bad_steps", 0))
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def checkpoint(self) -> Path | None:
        if not self.dist.is_main:
            return None
        state = {
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "bad_steps": self.bad_steps,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "sigma": self.sigma,
        }
        return save_checkpoint(self.out / "checkpoints", self.step, self.fm.state_dict(), self.ema.flat(), state,
                               self.cfg.train.keep_ckpts)

    # -- one step ----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.train.precision == "bf16" and self.cfg.net.kind == "mlp":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self) -> dict[str, Any]:
        """One optimizer step over the global batch; returns its log record."""
        cfg, step = self.cfg, self.step
        for group in self.opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        self.opt.zero_grad(set_to_none=True)
        accum = cfg.train.accum_steps
        totals = {"loss": 0.0, "diagonal": 0.0, "off_diagonal": 0.0, "diag_sq": 0.0, "off_sq": 0.0}
        bins: dict[str, list[Tensor]] = {"t": [], "diag": [], "gap": [], "off": []}
        finite = True
        for micro in range(accum):
            shard = self.dist.rank * accum + micro
            x1, y = self.source.batch(cfg.seed, step, shard, self.dist.world_size * accum, self.per_shard)
            x1, y = x1.to(self.device), y.to(self.device)
            cond = {"y": y} if cfg.data.conditional else {}
            gen = stream_generator(cfg.seed, step, shard, 0)
            if self.device.type != "cpu":
                gen = torch.Generator(device=self.device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
            with self._autocast():
                out = self.objective(self.fm, x1, cond, gen)
            loss = out.loss.float()
            loss_value = float(loss.detach())
            finite = finite and math.isfinite(loss_value)
            (loss / accum).backward()
            totals["loss"] += loss_value / accum
            totals["diagonal"] += float(out.diagonal) / accum
            totals["off_diagonal"] += float(out.off_diagonal) / accum
            totals["diag_sq"] += float(out.diag_sq.mean()) / accum if out.diag_sq.numel() else float("nan")
            totals["off_sq"] += float(out.off_sq.mean()) / accum if out.off_sq.numel() else float("nan")
            bins["t"].append(out.t_diag.float().cpu())
            bins["diag"].append(out.diag_sq.float().cpu())
            bins["gap"].append((out.t_off - out.s_off).abs().float().cpu())
            bins["off"].append(out.off_sq.float().cpu())
        D.all_reduce_gradients(self.fm, self.dist)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.fm.parameters(), cfg.train.grad_clip)
        finite = D.all_agree(finite and bool(torch.isfinite(grad_norm)), self.dist, self.device)
        record: dict[str, Any] = {"step": step + 1, "lr": lr_at(step, cfg), "grad_norm": float(grad_norm), **totals}
        if finite:
            self.opt.step()
            if cfg.net.kind == "edm2":
                force_normalize(self.fm)
            self.ema.update(self.fm)
            self.bad_steps = 0
        else:
            self.opt.zero_grad(set_to_none=True)
            self.bad_steps += 1
            record["skipped"] = True
            if self.bad_steps >= cfg.train.max_bad_steps:
                raise TrainingDiverged(
                    f"{self.bad_steps} consecutive steps gave a non-finite loss or gradient at step {step + 1}; "
                    f"lower train.lr (now {cfg.train.lr}) or train.grad_clip, or try precision=fp32. "
                    f"The last good checkpoint is in {self.out / 'checkpoints'}"
                )
        self.step += 1
        record["_bins"] = {k: torch.cat(v) for k, v in bins.items()}
        return record

    # -- the loop ----------------------------------------------------------------------------------
    def _write_log(self, records: list[dict[str, Any]], steps_per_s: float) -> dict[str, Any]:
        last = records[-1]
        keys = ("loss", "diagonal", "off_diagonal", "diag_sq", "off_sq", "grad_norm")
        mean = {k: sum(r[k] for r in records) / len(records) for k in keys}
        t = torch.cat([r["_bins"]["t"] for r in records])
        d = torch.cat([r["_bins"]["diag"] for r in records])
        g = torch.cat([r["_bins"]["gap"] for r in records])
        o = torch.cat([r["_bins"]["off"] for r in records])
        entry = {
            "step": last["step"], "lr": last["lr"], **mean, "steps_per_s": steps_per_s,
            "skipped": sum(1 for r in records if r.get("skipped")),
            "diag_by_t": loss_by_time_bin(d, t, 10).as_dict() if t.numel() else {},
            "off_by_gap": loss_by_time_bin(o, g, 10).as_dict() if g.numel() else {},
        }
        entry = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in entry.items()}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        if self.writer is not None:
            for k in ("loss", "diagonal", "off_diagonal", "diag_sq", "off_sq", "grad_norm", "lr", "steps_per_s"):
                if entry[k] is not None:
                    self.writer.add_scalar(f"train/{k}", entry[k], entry["step"])
        return entry

    def fit(self) -> Path:
        """Train to ``train.steps``; returns the run folder."""
        cfg = self.cfg
        main = self.dist.is_main
        self.writer = None
        if main and cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.tensorboard=true needs the tensorboard package: pip install 'flowmaps[tensorboard]'") from None
            self.writer = SummaryWriter(str(self.out / "tensorboard"))
        bar = None
        if main and cfg.train.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.steps, initial=self.step, desc=f"{cfg.method} {cfg.data.name}", unit="step",
                       dynamic_ncols=True)
        window: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        try:
            while self.step < cfg.train.steps:
                record = self.train_step()
                window.append(record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", off=f"{record['off_diagonal']:.4f}")
                if main and (self.step % cfg.train.log_every == 0 or self.step == cfg.train.steps):
                    rate = len(window) / max(time.perf_counter() - t0, 1e-9)
                    self._write_log(window, rate)
                    window, t0 = [], time.perf_counter()
                if self.step % cfg.train.ckpt_every == 0 or self.step == cfg.train.steps:
                    self.checkpoint()
                if cfg.train.eval_every and self.step % cfg.train.eval_every == 0 and main:
                    self._periodic_eval()
        finally:
            if bar is not None:
                bar.close()
            if self.writer is not None:
                self.writer.close()
        D.barrier(self.dist)
        return self.out

    def _periodic_eval(self) -> None:
        from ..evaluate import evaluate_flow_map

        fm = self.ema_flow_map(self.cfg.eval.ema)
        result = evaluate_flow_map(fm, self.cfg, self.source, self.sigma, self.out, tag=f"step-{self.step:08d}",
                                   quick=True)
        with open(self.out / "eval_history.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, **result}) + "\n")

    def ema_flow_map(self, decay: float) -> FlowMap:
        """A copy of the flow map carrying EMA ``decay`` weights (0: the raw weights)."""
        import copy

        fm = copy.deepcopy(self.fm).eval()
        if decay:
            fm.load_state_dict(self.ema.state(decay))
        return fm
