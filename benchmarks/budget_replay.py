"""Replay measured runs' speed traces through the budget's re-planning, for several rate windows.

A budgeted run re-plans its length while it trains (:mod:`flowmaps.train.budget`): it divides
the time left by the step time measured over a trailing window of steps. Which window? A short
one follows a real change of speed quickly and is fooled by a passing slow minute; a long one
the reverse. This script takes the speed traces of real runs (``results/budget_traces.json``:
each run's logged steps per second per window of steps, the budget, the probe's seconds and
the first plan) and replays them: the machine's speed is taken as a function of wall time
from the trace, and the package's own :class:`Replanner` (with a clock that follows the trace,
the runs' :class:`LRSchedule` and curriculum) runs at its usual steps with each window. It prints the
share of the budget each replay ends at, beside what the run itself measured.

    python benchmarks/budget_replay.py
    python benchmarks/budget_replay.py --windows 5 10 --traces results/budget_traces.json

Approximations: the trace's speed is per logged window (50 steps), the flow-matching-only steps
of a curriculum are taken at the speed logged then, and logging and checkpoint pauses are in
the trace's rates.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from flowmaps.losses.curriculum import curriculum_stage
from flowmaps.schedule import LRSchedule
from flowmaps.train.budget import BUDGET_TARGET, REPLANS_PER_RUN, Replanner


def replay(run: dict, window: int) -> float:
    """The share of the budget a replay of ``run``'s speed trace ends at with a rate window of
    ``window`` re-plan intervals (large: the whole run so far)."""
    spans, t, prev = [], run["probe_seconds"], 0
    for step, rate in run["trace"]:
        dt = (step - prev) / rate
        spans.append((t + dt, rate))
        t, prev = t + dt, step

    def speed(at: float) -> float:
        return next((r for end, r in spans if at < end), spans[-1][1])

    budget, total = 60.0 * run["minutes"], run["planned_steps"]
    fm, ramp = run["curriculum_fm"], run["curriculum_ramp"]
    now = run["probe_seconds"]
    replanner = Replanner(deadline=BUDGET_TARGET * budget, every=max(total // REPLANS_PER_RUN, 1),
                          clock=lambda: now, window=window)
    lr_of = lambda n, k: LRSchedule("wsd", 1.0, n, 0.02, 0.3)(k)  # noqa: E731  (the runs' schedule)
    k = 0
    while k < total:
        if not replanner.timing and not curriculum_stage(k, total, fm, ramp).diagonal_only:
            replanner.start_timing(k)
        now += 1.0 / speed(now)
        k += 1
        if k % replanner.every == 0 and k < total:  # as the trainer does after each step
            lr, stage = lr_of(total, k), curriculum_stage(k, total, fm, ramp)
            total, _ = replanner.next_length(
                k, total, lambda n, k=k, lr=lr, stage=stage: lr_of(n, k) == lr and curriculum_stage(k, n, fm, ramp) == stage)
    return now / budget


def main() -> None:
    here = Path(__file__).parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", default=str(here / "results" / "budget_traces.json"))
    ap.add_argument("--windows", type=int, nargs="+", default=[3, 5, 10, 20, 10**6])
    args = ap.parse_args()
    data = json.loads(Path(args.traces).read_text())
    print(f"traces: {args.traces} ({data['machine']}, {data['date']})")
    head = " | ".join("all" if w >= 10**6 else f"window {w}" for w in args.windows)
    print(f"| run | measured | {head} |\n|---|---|" + "---|" * len(args.windows))
    results: dict[int, list[float]] = {w: [] for w in args.windows}
    for run in data["runs"].values():
        row = []
        for w in args.windows:
            results[w].append(replay(run, w))
            row.append(f"{100 * results[w][-1]:.1f}%")
        print(f"| {run['what']} | {100 * run['measured_used']:.1f}% | " + " | ".join(row) + " |")
    print("| mean / worst distance from 100% | | " + " | ".join(
        f"{100 * statistics.mean(v):.1f}% / {100 * max(abs(x - 1) for x in v):.1f}" for v in results.values()) + " |")


if __name__ == "__main__":
    main()
