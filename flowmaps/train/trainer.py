"""The training loop: from a configuration to a trained flow map (choosing its weights and
evaluating it is :mod:`flowmaps.pipeline`'s).

RAdam with a schedule that knows where training ends (:mod:`flowmaps.schedule`), a step
count from a wall-clock budget, gradient clipping, fixed and power-function EMAs with snapshots
for post-hoc reconstruction, the network family's after-step work (EDM2's forced weight
normalisation), bfloat16 where the device runs it fast, atomic and verified checkpoints with exact
resume, a NaN/Inf guard, JSONL metrics, a progress bar and a hook for periodic evaluation; data
parallel under torchrun with explicit gradient averaging (see :mod:`flowmaps.train.distributed`).
A run folder has one writer (:mod:`.lock`); a full disk ends training in one line with the resume
command, and a stop signal after a checkpoint of the current step (:mod:`.stop`).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..config import Config, dump_yaml
from ..data.source import stream_generator
from ..diagnostics import loss_by_time_bin
from ..errors import ConfigError, DiskFullError, Interrupted, RunError, RunLocked, TrainingDiverged
from ..flow_map import FlowMap
from ..losses.curriculum import FULL, CurriculumStage
from ..run import Run, weights_for
from ..run_folder import RunFolder
from ..schedule import LRSchedule
from . import distributed as D
from .budget import (
    BUDGET_TARGET,
    REPLANS_PER_RUN,
    Replanner,
    planned_snapshot_steps,
    total_at,
)
from .builders import NETWORK_FAMILIES, count_parameters, fit_gaussian_base
from .checkpoint import (
    append_line,
    clear_stale_temporaries,
    disk_full,
    free_bytes,
    is_no_space,
    latest_checkpoint,
    load_checkpoint,
    megabytes,
    newest_intact_checkpoint,
    save_checkpoint,
    write_text_atomic,
)
from .compiled import (
    BUDGET_SHARE,
    MIN_STEPS,
    compilable,
    compile_key,
    compile_pays,
    compiled_loss,
    count_ops,
    eager_loss,
    predict_compile,
    remember,
    remembered,
)
from .ema import EMA
from .init import init_from_run
from .lock import acquire_run_lock, release_run_lock
from .parts import TrainingParts, build_parts
from .snapshots import write_snapshot
from .stop import StopSignals, signal_name


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is available; use train.device=cpu")
    return torch.device(name)


SPIKE_WINDOW = 100
"""Accepted steps whose gradient norms the spike guard keeps."""


def is_spike(grad_norm: float, history: list[float], factor: float, min_history: int = 20) -> bool:
    """Whether a step's (pre-clip) gradient norm exceeds ``factor`` times the median of the recent
    accepted steps' (``factor`` 0: never). Self-distillation can blow up in one step when the map
    sends a rare input far from the data, where the network's own diagonal, the teacher, is
    untrained: one sample's residual then outweighs the batch by many orders of magnitude.
    Skipping that update keeps the weights where they were."""
    if factor <= 0 or len(history) < min_history:
        return False
    return grad_norm > factor * statistics.median(history)


def schedule_of(cfg: Config, total: int | None = None) -> LRSchedule:
    """The learning-rate schedule of ``cfg.train`` over ``total`` steps (default ``train.steps``)."""
    t = cfg.train
    return LRSchedule(t.schedule, t.lr, t.steps if total is None else total, t.warmup, t.decay, t.lr_decay_steps)


def run_length_at(step: int, cfg: Config) -> int:
    """The run length in force at 0-based ``step``: ``train.steps``, or an earlier length for the
    steps a budgeted run took before it re-planned (``train.step_plan``, :mod:`flowmaps.train.budget`)."""
    return total_at(step, cfg.train.steps, cfg.train.step_plan)


def lr_at(step: int, cfg: Config) -> float:
    """The learning rate of step ``step`` (0-based) under ``cfg``'s schedule."""
    return schedule_of(cfg, run_length_at(step, cfg))(step)


class Trainer:
    """Train ``cfg`` into ``out_dir`` (``resume``: continue from its latest checkpoint).

    The config given is left as it is: the trainer works on its own copy, ``self.cfg``, where it
    resolves ``train.precision`` (``auto``), turns ``train.minutes`` into ``train.steps`` and
    records re-plans (``train.step_plan``); that copy is what config.yaml holds, so a rerun or a
    resume of the saved config is exact. ``periodic_eval`` (set by :mod:`flowmaps.pipeline`) is
    called every ``train.eval_every`` steps. ``parts`` (the data source, sigma, flow map and
    objective) are built from the config unless given (:mod:`flowmaps.train.parts`)."""

    def __init__(self, cfg: Config, out_dir: str | Path, resume: bool = False, parts: TrainingParts | None = None) -> None:
        cfg = copy.deepcopy(cfg)
        self.cfg, self.out = cfg, Path(out_dir)
        self.periodic_eval: Callable[[Trainer], None] | None = None
        self.device = pick_device(cfg.train.device)
        self.dist = D.init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        shards = self.dist.world_size * cfg.train.accum_steps
        if cfg.train.batch_size % shards:
            raise ConfigError(f"train.batch_size={cfg.train.batch_size} is not divisible by devices x accum_steps = {shards}")
        self.per_shard = cfg.train.batch_size // shards
        self.folder = RunFolder(self.out)
        self._lock_run()
        try:
            self._setup(cfg, resume, parts)
        except BaseException:
            self.release()
            raise

    def _lock_run(self) -> None:
        """Take the run folder's training lock (rank 0 holds it for every rank; :mod:`.lock`)."""
        refused: RunLocked | None = None
        if self.dist.is_main:
            try:
                acquire_run_lock(self.out)
            except RunLocked as e:
                refused = e
        if not D.all_agree(refused is None, self.dist, self.device):
            raise refused or RunLocked(f"{self.out} is being trained by another process")
        self._locked = self.dist.is_main

    def release(self) -> None:
        """Give back the run folder's training lock (when training ends; idempotent)."""
        if getattr(self, "_locked", False):
            self._locked = False
            release_run_lock(self.out)

    def _setup(self, cfg: Config, resume: bool, parts: TrainingParts | None) -> None:
        ckpt = newest_intact_checkpoint(self.folder.checkpoints) if resume else latest_checkpoint(self.folder.checkpoints)
        if resume and ckpt is None:
            if latest_checkpoint(self.folder.checkpoints) is None:
                raise RunError(f"--resume: no checkpoint under {self.folder.checkpoints}")
            raise RunError(f"--resume: no intact checkpoint under {self.folder.checkpoints}: every one is damaged "
                           f"(see 'flowmaps info --run {self.out}')")
        if not resume and ckpt is not None:
            raise FileExistsError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")

        self.family = NETWORK_FAMILIES[cfg.net.kind]
        if cfg.train.precision == "auto":
            cfg.train.precision = self.family.precision(self.device)
        self.compiled = False
        self.compile_info: dict[str, Any] | None = None  # what train.compile=auto measured and chose
        if self.dist.is_main:
            clear_stale_temporaries(self.folder.checkpoints)
            clear_stale_temporaries(self.folder.ema_snapshots)
        torch.manual_seed(cfg.seed)
        parts = parts if parts is not None else build_parts(cfg, self.device)
        self.source, self.sigma, self.objective = parts.source, parts.sigma, parts.objective
        self.fm: FlowMap = parts.fm.to(self.device)
        self.opt = torch.optim.RAdam(self.fm.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas), eps=1e-8)
        self.step = 0
        self.bad_steps = 0
        self.grad_history: list[float] = []  # gradient norms of the last accepted steps (spike guard)
        self.lr_scale = 1.0  # halved by each recovery from a divergence
        self._start: dict[str, Any] | None = None  # the step-0 state, for a recovery before the first checkpoint
        self.recoveries: list[dict[str, Any]] = []
        self.budget: dict[str, Any] | None = None
        self.clock: Callable[[], float] = time.perf_counter  # the wall clock a budget is kept by
        self.init: dict[str, Any] | None = None
        if cfg.train.init and not resume:  # before the EMAs copy the weights
            self.init = init_from_run(self.fm, cfg, cfg.train.init, cfg.train.init_ema, self.device)
        if not resume and not self.init:
            fit_gaussian_base(self.fm, self.source, cfg.seed)
        self.ema = EMA(self.fm, cfg.train.ema, cfg.train.ema_sigma_rel, cfg.train.ema_warmup)
        self.set_compiled(cfg.train.compile == "on")
        if resume:
            self._restore(ckpt)  # type: ignore[arg-type]
        elif self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_run_files()
        D.barrier(self.dist)

    def _write_run_files(self) -> None:
        self._write_config()
        meta = {"sigma": self.sigma, "shape": list(self.source.shape), "num_classes": self.source.num_classes,
                "parameters": count_parameters(self.fm), "device": str(self.device),
                "world_size": self.dist.world_size, "precision": self.cfg.train.precision,
                "command": ["flowmaps" if Path(sys.argv[0]).name in ("flowmaps", "cli.py") else sys.argv[0], *sys.argv[1:]]}
        if getattr(self.source, "normalization", None) is not None:
            meta["normalization"] = self.source.normalization.as_dict()  # array data: undone on every output
        if getattr(self.source, "columns", None) is not None:
            meta["columns"] = self.source.columns.as_dict()  # a table's per-column transform: undone on every output
        if self.budget is not None:
            meta["budget"] = self.budget
        if self.compile_info is not None:
            meta["compile"] = self.compile_info
        if self.init is not None:
            meta["init"] = self.init
        self.folder.write_meta(meta)

    def _write_config(self) -> None:
        """config.yaml: the run's configuration as it stands (a budget's step count and re-plans in it)."""
        write_text_atomic(self.folder.config, dump_yaml(self.cfg))

    # -- the training state: one list, for checkpoints, resume, the budget probe and restarts -----
    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on: ``model`` and ``ema`` (flat tensor dicts), and the
        optimizer, step, spike-guard, recovery and random-generator state. Live references:
        :meth:`snapshot` copies it."""
        return {
            "model": self.fm.state_dict(),
            "ema": self.ema.flat(),
            "ema_count": self.ema.count,
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "bad_steps": self.bad_steps,
            "grad_history": list(self.grad_history),
            "lr_scale": self.lr_scale,
            "recoveries": list(self.recoveries),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "sigma": self.sigma,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict` (or a checkpoint's, whose older files may lack the
        guard and recovery entries)."""
        self.fm.load_state_dict(state["model"])
        self.ema.load_flat(state["ema"], state.get("ema_count", state["step"]))
        self.opt.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.bad_steps = int(state.get("bad_steps", 0))
        self.grad_history = [float(g) for g in state.get("grad_history", [])]
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.recoveries = list(state.get("recoveries", []))
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def snapshot(self) -> dict[str, Any]:
        """A copy of :meth:`state_dict` on the CPU, to go back to later."""
        def copy_of(v: Any) -> Any:
            if isinstance(v, Tensor):
                return v.detach().to("cpu", copy=True)
            if isinstance(v, dict):
                return {k: copy_of(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return type(v)(copy_of(x) for x in v)
            return copy.deepcopy(v)

        return copy_of(self.state_dict())

    def _restore(self, path: Path) -> None:
        model, ema, state = load_checkpoint(path)
        self.load_state_dict({**state, "model": model, "ema": ema})

    def checkpoint(self) -> Path | None:
        if not self.dist.is_main:
            return None
        state = self.state_dict()
        model, ema = state.pop("model"), state.pop("ema")
        return save_checkpoint(self.folder.checkpoints, self.step, model, ema, state, self.cfg.train.keep_ckpts)

    # -- one step ----------------------------------------------------------------------------------
    def set_compiled(self, on: bool, backend: str = "inductor") -> None:
        """Run the network part of each step compiled (:mod:`.compiled`; ``backend``: Dynamo's
        code generator) or op by op."""
        if on and not compilable(self.cfg.loss.jvp_backend):
            raise ConfigError(f"train.compile=on needs the networks' explicit tangents (loss.jvp_backend auto or explicit, "
                              f"not {self.cfg.loss.jvp_backend!r}): forward-mode AD cannot run inside a compiled graph")
        self.compiled = on
        self._loss = (compiled_loss(self.objective, self.fm, self._autocast, backend) if on
                      else eager_loss(self.objective, self.fm, self._autocast))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.train.precision == "bf16" and self.family.autocast:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, stage: CurriculumStage | None = None) -> dict[str, Any]:
        """One optimizer step over the global batch; returns its log record. ``stage``: the
        curriculum stage (default: the one this step's position in the run gives)."""
        cfg, step = self.cfg, self.step
        stage = stage or self.objective.stage(step, run_length_at(step, cfg))
        lr = lr_at(step, cfg) * self.lr_scale  # a pure function of the step, the run's length(s) and its recoveries
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        accum = cfg.train.accum_steps
        # the logged figures stay on the device; the host reads them once, with the gradient norm
        sums = torch.zeros(5, device=self.device)
        bins: dict[str, list[Tensor]] = {"t": [], "diag": [], "gap": [], "off": []}
        for micro in range(accum):
            shard = self.dist.rank * accum + micro
            x1, y = self.source.batch(cfg.seed, step, shard, self.dist.world_size * accum, self.per_shard)
            x1, y = x1.to(self.device), y.to(self.device)
            cond = {"y": y} if cfg.data.conditional else {}
            gen = stream_generator(cfg.seed, step, shard, 0)
            if self.device.type != "cpu":
                gen = torch.Generator(device=self.device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
            out = self._loss(self.objective.draw(x1, cond, gen, stage))
            loss = out.loss.float()
            (loss / accum).backward()
            sums += torch.stack([loss.detach(), out.diagonal.float(), out.off_diagonal.float(),
                                 out.diag_sq.float().mean(), out.off_sq.float().mean()]) / accum
            bins["t"].append(out.t_diag.float())
            bins["diag"].append(out.diag_sq.float())
            bins["gap"].append((out.t_off - out.s_off).abs().float())
            bins["off"].append(out.off_sq.float())
        D.all_reduce_gradients(self.fm, self.dist)
        grad_norm_t = torch.nn.utils.clip_grad_norm_(self.fm.parameters(), cfg.train.grad_clip)
        *values, grad_norm = torch.cat([sums, grad_norm_t.detach().float().reshape(1)]).tolist()  # the step's one host read
        totals = dict(zip(("loss", "diagonal", "off_diagonal", "diag_sq", "off_sq"), values))
        finite = D.all_agree(math.isfinite(totals["loss"]) and math.isfinite(grad_norm), self.dist, self.device)
        record: dict[str, Any] = {"step": step + 1, "lr": lr, "grad_norm": grad_norm, **totals}
        spike = finite and is_spike(grad_norm, self.grad_history, cfg.train.skip_spikes)
        if finite and not spike:
            self.opt.step()
            if self.family.after_step is not None:
                self.family.after_step(self.fm)
            self.ema.update(self.fm)
            self.bad_steps = 0
            self.grad_history = (self.grad_history + [grad_norm])[-SPIKE_WINDOW:]
        else:
            self.opt.zero_grad(set_to_none=True)
            self.bad_steps += 1
            record["skipped"] = True
            if spike:
                record["spike"] = True
            if self.bad_steps >= cfg.train.max_bad_steps:
                raise TrainingDiverged(
                    f"{self.bad_steps} consecutive steps were skipped (a non-finite loss or gradient, or a gradient norm "
                    f"over {cfg.train.skip_spikes:g}x the recent median) at step {step + 1}; lower train.lr (now "
                    f"{cfg.train.lr}), or try precision=fp32; the last good checkpoint is in {self.folder.checkpoints}"
                )
        self.step += 1
        record["_bins"] = {k: torch.cat(v) for k, v in bins.items()}
        return record

    # -- a wall-clock budget -----------------------------------------------------------------------
    def plan_budget(self, probe_seconds: float | None = None) -> int:
        """Turn ``train.minutes`` into ``train.steps``: time a few throwaway steps, put every
        weight, optimizer and RNG state back as it was, then fix the step count so that the run
        fits the budget, and save it in config.yaml (the budget itself is kept in run.json), so a
        rerun or ``--resume`` of the saved config is exact. Returns the step count."""
        cfg = self.cfg
        budget_s = float(cfg.train.minutes) * 60.0  # type: ignore[arg-type]
        probe_s = probe_seconds if probe_seconds is not None else min(max(0.03 * budget_s, 2.0), 15.0)
        t_start = time.perf_counter()
        saved = self.snapshot()
        before = cfg.train.steps, cfg.train.schedule, cfg.train.warmup
        # the probe's steps run at the full learning rate: a warm-up over an unknown length gave
        # rates near 1e-11, whose updates to zero-initialised layers filled the optimizer state
        # and the tangents with subnormal floats, which x86 cores handle in microcode: EDM2 UNet
        # steps were timed 4x too slow and a 3-minute run planned at a quarter of its length
        cfg.train.steps, cfg.train.schedule, cfg.train.warmup = 10**9, "constant", 0.0
        stages = self._probe_stages()
        warm = 3  # the first steps pay one-off costs (allocations, kernel selection)
        try:
            step_s, probe_steps = self._probe_steps(stages, warm, probe_s)
            if cfg.train.compile == "auto":
                step_s, more = self._auto_compile(stages, step_s, 0.97 * budget_s - (time.perf_counter() - t_start), probe_s)
                probe_steps += more
        finally:
            cfg.train.steps, cfg.train.schedule, cfg.train.warmup = before
        self.load_state_dict(saved)
        spent = time.perf_counter() - t_start
        # 3% of the budget is kept for logging and checkpoints
        steps = max(int((0.97 * budget_s - spent) / step_s), 10)
        cap = cfg.train.max_steps
        capped = cap is not None and cap < steps
        steps = cap if capped else steps  # type: ignore[assignment]
        cfg.train.steps = steps
        cfg.train.minutes = None
        self.budget = {"minutes": budget_s / 60.0, "probe_seconds": round(spent, 3), "probe_steps": probe_steps,
                       "measured_step_seconds": step_s, "planned_steps": steps, "steps": steps}
        if capped:
            self.budget["capped_by_max_steps"] = cap
        if self.dist.is_main:
            self._write_run_files()
        return steps

    def _probe_stages(self) -> list[tuple[CurriculumStage, float]]:
        """The kinds of step a run takes, with their shares of its steps: flow-matching-only
        curriculum steps are cheaper and have a graph of their own, so both are probed."""
        fm_fraction = self.cfg.loss.curriculum_fm
        return [(FULL, 1.0 - fm_fraction)] + ([(CurriculumStage(diagonal_only=True), fm_fraction)] if fm_fraction else [])

    def _probe_steps(self, stages: list[tuple[CurriculumStage, float]], warm: int, seconds: float) -> tuple[float, int]:
        """(the mean step time over the run's kinds of step, rank 0's on every rank; the steps
        taken), from ``seconds`` of throwaway steps after ``warm`` untimed ones per stage."""
        step_s, steps = 0.0, 0
        for stage, share in stages:
            durations = self._time_steps(stage, warm, seconds / len(stages))
            steps += warm + len(durations)
            settled = durations[len(durations) // 2:]  # the second half: steady state
            step_s += share * sum(settled) / len(settled)
        return D.broadcast_float(step_s, self.dist, self.device), steps

    def _auto_compile(self, stages: list[tuple[CurriculumStage, float]], eager_s: float, left_s: float,
                      probe_s: float, rough: bool = False) -> tuple[float, int]:
        """``train.compile: auto``, decided by measurement inside a probe whose state is thrown
        away: predict the compile's seconds (:func:`~.compiled.predict_compile`: from what this
        machine measured for the configuration before, else from the step's operation count),
        compile only when it pays within the ``left_s`` seconds the run has left
        (:func:`~.compiled.compile_pays`), then time the compiled steps and keep them only when
        they are faster than the eager steps (``eager_s``,
        measured again first when ``rough``). The choice becomes ``train.compile`` (on or off, so
        a resume takes the same steps) and its figures ``run.json``'s ``compile``. Returns (the
        chosen step time, the probe's steps)."""
        if not compilable(self.cfg.loss.jvp_backend):
            self._decided_compile(False, {"why": f"not compiled: loss.jvp_backend={self.cfg.loss.jvp_backend} runs "
                                                 "forward-mode AD, which a compiled graph cannot hold"})
            return eager_s, 0
        key = compile_key({"net": self.cfg.net, "method": self.cfg.method, "loss": self.cfg.loss, "device": self.device.type,
                           "batch": self.per_shard, "precision": self.cfg.train.precision, "shape": self.source.shape,
                           "classes": self.source.num_classes})
        memory = remembered(key)
        counted: list[int] = []

        def ops() -> int:
            counted.append(count_ops(lambda: self.train_step(stages[0][0])))
            return counted[-1]

        predicted, source = predict_compile(memory, ops, len(stages))
        predicted = D.broadcast_float(predicted, self.dist, self.device)
        speedup = memory.get("speedup") if memory else None
        steps = len(counted)
        prediction = {"predicted_compile_seconds": round(predicted, 1), "predicted_from": source}
        if not compile_pays(predicted, left_s, speedup):
            share = (f"{BUDGET_SHARE:.0%} of" if speedup is None
                     else f"what a {speedup:.2f}x faster step (measured before) saves in")
            why = f"not compiled: compiling would take about {predicted:.0f} s ({source}), over {share} the {left_s:.0f} s left"
            self._decided_compile(False, {**prediction, "eager_step_seconds": round(eager_s, 5), "why": why})
            return eager_s, steps
        if rough:
            eager_s, more = self._probe_steps(stages, 1, probe_s)
            steps += more
        prediction["eager_step_seconds"] = round(eager_s, 5)
        self.set_compiled(True)
        t0 = time.perf_counter()
        saved = self.snapshot()
        try:
            for stage, _ in stages:
                self.train_step(stage)  # the first compiled step of each stage compiles its graph
        except Exception as e:  # noqa: BLE001 -- auto falls back to the eager step whatever stopped the compile
            self.load_state_dict(saved)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            self._decided_compile(False, {**prediction, "why": f"not compiled: the compile failed ({type(e).__name__}: {first})"})
            return eager_s, steps
        self._sync()
        compile_s = D.broadcast_float(max(time.perf_counter() - t0 - eager_s * len(stages), 0.0), self.dist, self.device)
        compiled_s, more = self._probe_steps(stages, 1, probe_s)
        remember(key, compile_s, eager_s / compiled_s)
        keep = compiled_s < 0.97 * eager_s
        why = (f"{'compiled' if keep else 'not compiled'}: a compiled step takes {1e3 * compiled_s:.1f} ms against "
               f"{1e3 * eager_s:.1f} ms op by op (compiling took {compile_s:.0f} s)")
        self._decided_compile(keep, {**prediction, "compile_seconds": round(compile_s, 1),
                                     "compiled_step_seconds": round(compiled_s, 5), "why": why})
        return (compiled_s if keep else eager_s), steps + len(stages) + more

    def _decided_compile(self, on: bool, info: dict[str, Any]) -> None:
        self.set_compiled(on)
        self.cfg.train.compile = "on" if on else "off"
        self.compile_info = {"choice": self.cfg.train.compile, **info}
        if self.dist.is_main:
            print(f"flowmaps: train.compile=auto: {info['why']}", file=sys.stderr)

    def plan_compile(self) -> None:
        """``train.compile: auto`` on a run of fixed length: :meth:`_auto_compile` against the
        whole run, from throwaway steps (a budgeted run decides in its budget probe instead). A
        run of fewer than :data:`~.compiled.MIN_STEPS` steps stays eager without a probe."""
        left = self.cfg.train.steps - self.step
        if left < MIN_STEPS:
            return
        saved = self.snapshot()
        stages = self._probe_stages()
        self.train_step(stages[0][0])  # the first step pays one-off costs
        t0 = time.perf_counter()
        self.train_step(stages[0][0])
        self._sync()
        rough = D.broadcast_float(time.perf_counter() - t0, self.dist, self.device)
        self._auto_compile(stages, rough, rough * left, 2.0, rough=True)
        self.load_state_dict(saved)
        if self.dist.is_main:
            self._write_run_files()

    def _time_steps(self, stage: CurriculumStage, warm: int, seconds: float) -> list[float]:
        """Durations of probe steps at ``stage`` after ``warm`` untimed ones: at least 6, for at
        least ``seconds`` (every rank agrees when to stop)."""
        for _ in range(warm):
            self.train_step(stage)
        self._sync()
        durations: list[float] = []
        t_probe = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            self.train_step(stage)
            self._sync()
            durations.append(time.perf_counter() - t0)
            if D.all_agree(len(durations) >= 6 and time.perf_counter() - t_probe >= seconds, self.dist, self.device):
                return durations

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # -- the loop ----------------------------------------------------------------------------------
    def _write_log(self, records: list[dict[str, Any]], steps_per_s: float) -> dict[str, Any]:
        last = records[-1]
        keys = ("loss", "diagonal", "off_diagonal", "diag_sq", "off_sq", "grad_norm")
        mean = {k: sum(r[k] for r in records) / len(records) for k in keys}
        t, d, g, o = (torch.cat([r["_bins"][k] for r in records]).cpu() for k in ("t", "diag", "gap", "off"))
        entry = {
            "step": last["step"], "lr": last["lr"], **mean, "steps_per_s": steps_per_s,
            "skipped": sum(1 for r in records if r.get("skipped")),
            "diag_by_t": loss_by_time_bin(d, t, 10).as_dict() if t.numel() else {},
            "off_by_gap": loss_by_time_bin(o, g, 10).as_dict() if g.numel() else {},
        }
        entry = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in entry.items()}
        append_line(self.folder.metrics, json.dumps(entry))
        if self.writer is not None:
            for k in ("loss", "diagonal", "off_diagonal", "diag_sq", "off_sq", "grad_norm", "lr", "steps_per_s"):
                if entry[k] is not None:
                    self.writer.add_scalar(f"train/{k}", entry[k], entry["step"])
        return entry

    def fit(self) -> Path:
        """Train to ``train.steps``; returns the run folder. A stop signal (:mod:`.stop`) ends it
        early with a checkpoint and :class:`~flowmaps.errors.Interrupted`; a full disk with
        :class:`~flowmaps.errors.DiskFullError`. Either way the training lock is given back."""
        try:
            with StopSignals() as self.stop:
                return self._fit()
        except OSError as e:
            if is_no_space(e) and not isinstance(e, DiskFullError):
                raise disk_full(Path(e.filename) if e.filename else self.out, self.out) from None
            raise
        finally:
            self.release()

    def check_disk_space(self) -> None:
        """Before training: refuse in one line when the run folder's disk clearly cannot hold what
        the run will write (:meth:`space_needed`), and warn when it is tight (under twice that)."""
        need, free = self.space_needed(), free_bytes(self.out)
        fix = ("free space, or write fewer files (train.keep_ckpts, now " f"{self.cfg.train.keep_ckpts}; "
               f"train.ema_snapshots, now {self.cfg.train.ema_snapshots}), or train into another --out")
        if free < need:
            raise DiskFullError(f"this run will write about {megabytes(need)} into {self.out} but only {megabytes(free)} "
                                f"is free there; {fix}")
        if free < 2 * need:
            print(f"flowmaps: warning: this run will write about {megabytes(need)} into {self.out} and {megabytes(free)} "
                  f"is free there: tight", file=sys.stderr)

    def space_needed(self) -> int:
        """Bytes the rest of the run will write, about: ``keep_ckpts`` + 1 checkpoints (a new one is
        written before the oldest goes; the model, its EMAs and the optimizer's two moments), the
        EMA snapshots still to come, and 16 MB for logs, evaluation samples and the report."""
        def size(tensors: Any) -> int:
            return sum(t.numel() * t.element_size() for t in tensors)

        params = size(p.detach() for p in self.fm.parameters())
        ckpt = size(self.fm.state_dict().values()) + size(self.ema.flat().values()) + 2 * params
        snap = size(t for s in self.ema.power_states().values() for t in s.values())
        snaps = len([k for k in self._snapshot_steps() if k > self.step])
        return (self.cfg.train.keep_ckpts + 1) * ckpt + snaps * snap + 16 * 2**20

    def _snapshot_steps(self) -> set[int]:
        """The steps the EMA snapshots are written at (none without power EMAs)."""
        t = self.cfg.train
        return planned_snapshot_steps(t.steps, t.step_plan, t.ema_snapshots) if self.ema.gammas else set()

    def _stop_requested(self) -> int | None:
        """The stop signal any rank received (every rank agrees), or None."""
        got = self.stop.received or 0
        if self.dist.enabled:
            got = int(D.max_over_ranks(float(got), self.dist, self.device))
        return got or None

    def _interrupt(self, signum: int, checkpointed: bool) -> None:
        """Stop for ``signum``: the checkpoint of this step (unless just written), then
        :class:`~flowmaps.errors.Interrupted` with the resume command."""
        if not checkpointed:
            self.checkpoint()
        D.barrier(self.dist)  # rank 0's checkpoint is whole before any rank says so
        ckpt = latest_checkpoint(self.folder.checkpoints)
        raise Interrupted(f"stopped by {signal_name(signum)} after step {self.step} of {self.cfg.train.steps}; "
                          f"checkpoint {ckpt} written; resume with: flowmaps train --resume --out {self.out}", signum)

    def _fit(self) -> Path:
        cfg = self.cfg
        if cfg.train.eval_every and self.periodic_eval is None:
            raise ConfigError("train.eval_every needs an evaluation hook: start the run with "
                              "flowmaps.pipeline.start_training (as 'flowmaps train' does), or set trainer.periodic_eval")
        main = self.dist.is_main
        t_fit = self.clock()
        replanner = None
        if cfg.train.compile == "auto" and cfg.train.minutes is None and self.step == 0:
            self.plan_compile()
        if cfg.train.minutes is not None and self.step == 0:
            self.plan_budget()
            replanner = Replanner(deadline=t_fit + BUDGET_TARGET * 60.0 * self.budget["minutes"],  # type: ignore[index]
                                  every=max(cfg.train.steps // REPLANS_PER_RUN, 1), cap=cfg.train.max_steps,
                                  clock=self.clock)

        snaps = self._snapshot_steps()
        if main:
            self.check_disk_space()
        self.writer = None
        if main and cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.tensorboard=true needs the tensorboard package: pip install 'flowmaps[tensorboard]'") from None
            self.writer = SummaryWriter(str(self.folder.tensorboard))
        bar = None
        if main and cfg.train.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.steps, initial=self.step, desc=f"{cfg.method} {cfg.data.name}", unit="step",
                       dynamic_ncols=True)
        # a divergence before the first checkpoint restarts from here (see recover)
        self._start = self.snapshot() if self.step == 0 and cfg.train.recover > 0 else None
        window: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        try:
            while self.step < cfg.train.steps:
                if (replanner is not None and not replanner.timing
                        and not self.objective.stage(self.step, run_length_at(self.step, cfg)).diagonal_only):
                    replanner.start_timing(self.step)  # flow-matching-only steps are cheaper: not timed
                try:
                    record = self.train_step()
                except TrainingDiverged as e:
                    self.recover(e)
                    window, t0 = [], time.perf_counter()
                    if replanner is not None:
                        replanner.restart_timing()
                    continue
                window.append(record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", off=f"{record['off_diagonal']:.4f}")
                if self.step % cfg.train.log_every == 0 or self.step == cfg.train.steps:
                    if main:
                        self._write_log(window, len(window) / max(time.perf_counter() - t0, 1e-9))
                    window, t0 = [], time.perf_counter()
                if main and self.step in snaps:
                    write_snapshot(self.folder.ema_snapshots, self.step, self.ema.power_states())
                checkpointed = self.step % cfg.train.ckpt_every == 0 or self.step == cfg.train.steps
                if checkpointed:
                    self.checkpoint()
                signum = self._stop_requested()
                if signum is not None:
                    if main and window:
                        self._write_log(window, len(window) / max(time.perf_counter() - t0, 1e-9))
                    self._interrupt(signum, checkpointed)
                if cfg.train.eval_every and self.step % cfg.train.eval_every == 0 and main and self.periodic_eval:
                    self.periodic_eval(self)
                if (replanner is not None and self.step % replanner.every == 0 and self.step < cfg.train.steps
                        and self._replan(replanner)):
                    snaps = self._snapshot_steps()
                    if bar is not None:
                        bar.total = cfg.train.steps
                        bar.refresh()
        finally:
            if bar is not None:
                bar.close()
            if self.writer is not None:
                self.writer.close()
        if self.budget is not None and "used" not in self.budget:  # how much of the budget the run took
            spent = self.clock() - t_fit
            self.budget.update(seconds=round(spent, 2), used=round(spent / (60.0 * self.budget["minutes"]), 3))
            if main:
                self.folder.update_meta(budget=self.budget)
        D.barrier(self.dist)
        return self.out

    def _replan(self, replanner: Replanner) -> bool:
        """Move the run's end so that training ends at the budget's deadline at the step time
        measured so far, where that changes nothing at this step (:mod:`flowmaps.train.budget`);
        rank 0 decides. Records the re-plan in config.yaml (``train.step_plan``) and run.json.
        Returns whether the length changed."""
        cfg, step, total = self.cfg, self.step, self.cfg.train.steps
        plan = cfg.train.step_plan
        new, rate = total, 0.0
        if not plan or step > plan[-1][0]:  # none behind a recovery
            lr, stage = schedule_of(cfg, total)(step), self.objective.stage(step, total)
            new, rate = replanner.next_length(
                step, total, lambda n: schedule_of(cfg, n)(step) == lr and self.objective.stage(step, n) == stage)
        new = int(D.broadcast_float(float(new), self.dist, self.device))
        if new == total:
            return False
        plan.append([step, total])
        cfg.train.steps = new
        assert self.budget is not None
        self.budget["steps"] = new
        self.budget.setdefault("replans", []).append({"at_step": step, "steps": new, "step_seconds": round(rate, 5)})
        if self.dist.is_main:
            self._write_config()
            self.folder.update_meta(budget=self.budget)
        return True

    def recover(self, error: TrainingDiverged) -> None:
        """Go back to the last checkpoint (or to the start, before the first one) and continue
        with the learning rate halved, at most ``train.recover`` times in a run; re-raise
        ``error`` when none is left. The batches are a pure function of the step, so the replay
        sees the same data: only the smaller steps change the path. The recovery is reported
        (stderr, run.json) and checkpointed, so a resumed run keeps its learning rate."""
        ckpt = newest_intact_checkpoint(self.folder.checkpoints)
        if len(self.recoveries) >= self.cfg.train.recover or (ckpt is None and self._start is None):
            if self.recoveries:
                raise TrainingDiverged(f"{error} (after {len(self.recoveries)} restart(s) with the learning rate "
                                       f"halved)") from None
            raise error
        diverged_at = self.step + 1
        kept = self.recoveries, self.lr_scale  # the state gone back to predates them: a second divergence
        if ckpt is None:                         # before the next checkpoint halves again and counts
            self.load_state_dict(self._start)  # type: ignore[arg-type]
        else:
            self._restore(ckpt)
        self.recoveries, self.lr_scale = kept
        self.lr_scale *= 0.5
        self.recoveries.append({"diverged_at": diverged_at, "restarted_from": self.step, "lr_scale": self.lr_scale})
        if self.dist.is_main:
            where = f"the step-{self.step} checkpoint" if ckpt is not None else "the start (no checkpoint yet)"
            print(f"flowmaps: training diverged at step {diverged_at}; restarting from {where} with "
                  f"the learning rate halved (recovery {len(self.recoveries)} of {self.cfg.train.recover})", file=sys.stderr)
            self.folder.update_meta(recoveries=self.recoveries)

    def ema_flow_map(self, name: float | str) -> FlowMap:
        """A copy of the flow map carrying the weights of EMA ``name`` (0 or "raw": the raw
        weights; an untracked sigma_rel is reconstructed from the snapshots)."""
        fm = copy.deepcopy(self.fm).eval()
        fm.load_state_dict(weights_for(name, self.fm.state_dict(), self.ema.flat(), self.out))
        return fm

    def as_run(self, ema: float | str) -> Run:
        """The run as trained so far, carrying the weights of EMA ``ema`` (what evaluation, EMA
        selection and the audit take, as they take a run loaded from its folder)."""
        return Run(self.out, self.cfg, self.ema_flow_map(ema), self.sigma, tuple(self.source.shape),
                   self.source.num_classes, self.step, str(ema), getattr(self.source, "normalization", None),
                   getattr(self.source, "columns", None), self.dist.world_size)

