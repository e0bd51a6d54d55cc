"""``train.compile``: the network part of a training step as one compiled graph.

Compiled (``torch.compile(fullgraph=True)``): :meth:`flowmaps.losses.objective.Objective.evaluate`,
that is the flow map's forward with its explicit tangents (the JVP), the teacher calls under
stop-gradient and the loss, with bfloat16 autocast inside; AOTAutograd compiles its backward
with it, so ``loss.backward()`` runs the compiled backward. One graph per curriculum stage
(the flow-matching-only stage has another batch split), and none after: the shapes are static
(every step draws the same batch size) and nothing that changes from step to step (the
learning rate, the step counter, the curriculum's largest jump) enters the graph.

Outside the graph by design, each for its reason:
- the random draws (:meth:`~flowmaps.losses.objective.Objective.draw`): a ``torch.Generator``,
  which makes the draws reproducible per step and per rank, cannot enter a Dynamo graph;
- the minibatch-OT assignment: scipy's linear-sum assignment on the host;
- the one host read of the logged figures and the spike guard, which decide on the host;
- the gradient all-reduce under DDP, the clipping, RAdam, the EMAs and EDM2's weight
  normalisation: foreach updates over the parameters, which measured a few percent of the step
  here (benchmarks/README.md, "One compiled step").

The networks take their tangents from their explicit tangent passes under compile
(``loss.jvp_backend: auto``); forward-mode AD (``torch.func``) cannot run inside a compiled
graph, so ``on`` with another JVP backend is refused.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..flow_map import FlowMap
from ..losses.objective import Draws, LossOutput, Objective
from .checkpoint import write_text_atomic

LossFn = Callable[[Draws], LossOutput]


def compilable(jvp_backend: str) -> bool:
    """Whether a step with this ``loss.jvp_backend`` can be compiled: only the networks' explicit
    tangent passes run inside a graph (forward-mode AD cannot)."""
    return jvp_backend in ("auto", "explicit")


def eager_loss(objective: Objective, fm: FlowMap, autocast: Callable[[], contextlib.AbstractContextManager]) -> LossFn:
    """The loss of drawn inputs, run op by op."""

    def loss(draws: Draws) -> LossOutput:
        with autocast():
            return objective.evaluate(fm, draws)

    return loss


def compiled_loss(objective: Objective, fm: FlowMap, autocast: Callable[[], contextlib.AbstractContextManager],
                  backend: str = "inductor") -> LossFn:
    """:func:`eager_loss` as one compiled graph (compiled at its first call, per stage);
    ``backend``: Dynamo's code generator (tests trace with ``aot_eager``)."""
    graph = torch.compile(eager_loss(objective, fm, autocast), fullgraph=True, dynamic=False, backend=backend)

    def loss(draws: Draws) -> LossOutput:
        with warnings.catch_warnings():  # Inductor's first compile touches torch.jit's deprecated helpers: noise here
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\..*")
            return graph(draws)

    return loss


# -- train.compile=auto: what a compile will cost, predicted before paying it ---------------------
SECONDS_PER_OP = 0.03
"""Cold compile seconds per ATen operation of one eager step (Dynamo, AOTAutograd and Inductor's
C++ code generation on this project's 2-core CPU: 0.019 to 0.028 s across the MLP, the DiT and the
EDM2 UNet, benchmarks/README.md "One compiled step"), rounded up: ``auto``'s estimate before a
configuration's first compile."""

WARM_SHARE = 0.25
"""A compile whose graph Inductor's on-disk cache already holds takes about this share of the
first, cold one (measured 0.14 to 0.24 here): the estimate for a configuration's second compile,
until that has been measured too."""

BUDGET_SHARE = 0.05
"""With no measured speed-up for a configuration yet, ``auto`` compiles only when the predicted
compile time is at most this share of the time left, so that a compile that does not pay costs
at most this much of the run."""

MIN_STEPS = 200
"""A run of fixed length shorter than this stays eager without a probe (``auto``): a compile
takes seconds even from the cache, more than 5% of a run this short unless its steps take over
half a second, where the network is large enough that a cold compile takes minutes."""


def predict_compile(memory: dict[str, float] | None, ops: Callable[[], int], graphs: int) -> tuple[float, str]:
    """(seconds, from what) a compile of ``graphs`` graphs will take: the last compile from the
    cache, else a share of the first compile, else the operation count ``ops()`` of one step."""
    if memory and memory.get("warm") is not None:
        return memory["warm"], "this configuration's last compile, from the cache"
    if memory and memory.get("cold") is not None:
        return WARM_SHARE * memory["cold"], (f"a quarter of this configuration's first compile ({memory['cold']:.0f} s), "
                                             "its graph being in the cache now")
    n = ops()
    return n * SECONDS_PER_OP * graphs, f"{n} operations per step"


def compile_pays(predicted_s: float, left_s: float, speedup: float | None) -> bool:
    """Whether to compile with ``left_s`` seconds left: with a speed-up measured before, when
    the steps it saves outweigh the compile with a 20% margin; without, when the compile costs
    at most :data:`BUDGET_SHARE` of the time left."""
    if speedup is None:
        return predicted_s <= BUDGET_SHARE * left_s
    return predicted_s <= 0.8 * (1.0 - 1.0 / speedup) * left_s


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        self.ops += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], Any]) -> int:
    """ATen operations that ``fn()`` dispatches (forward and backward), the size of what a
    compile of it traces."""
    with _Count() as counter:
        fn()
    return counter.ops


def compile_key(parts: dict[str, Any]) -> str:
    """A configuration's key in the remembered compile times: what decides the compiled graph
    (the network, the method and loss, the batch, the precision, the device) and the torch version."""
    text = json.dumps({**parts, "torch": torch.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _memory_file() -> Path:
    """Beside Inductor's own on-disk cache (``TORCHINDUCTOR_CACHE_DIR``), which makes a second
    compile of the same graph fast: the two live and go together."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / "flowmaps_compile_seconds.json"


def remembered(key: str) -> dict[str, float] | None:
    """What this machine measured for configuration ``key``: ``cold`` (its first compile, s),
    ``warm`` (its last compile from the cache, s) and ``speedup`` (eager step time over compiled,
    at the last compile), or None."""
    try:
        entry = json.loads(_memory_file().read_text())[key]
        return {k: float(v) for k, v in entry.items() if k in ("cold", "warm", "speedup")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remember(key: str, seconds: float, speedup: float) -> None:
    """Record a compile of configuration ``key``: the first as ``cold``, any later one (its graph
    was cached by the first) as ``warm``, and the measured speed-up. Best effort: a read-only or
    full cache folder only loses the memory."""
    path = _memory_file()
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
        known = known if isinstance(known, dict) else {}
        entry = known.get(key) if isinstance(known.get(key), dict) else {}
        entry["warm" if "cold" in entry else "cold"] = round(float(seconds), 2)
        entry["speedup"] = round(float(speedup), 3)
        known[key] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(known, indent=1))
    except (OSError, ValueError):
        pass
