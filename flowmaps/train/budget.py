"""A wall-clock budget that is used in full: the run's length at each step, and its re-plans.

``train.minutes`` becomes ``train.steps`` before step 0, from the time of a few throwaway steps
(:meth:`flowmaps.train.trainer.Trainer.plan_budget`). A machine's speed moves while a run
trains, so a count fixed from the first seconds misses the budget by as much as the speed
moved (77% to 123% of it were measured, see benchmarks/README.md). A budgeted run therefore
**re-plans**: at regular steps it divides the time left by the time a step has taken lately
(over the last quarter of the first plan's steps, and never over the cheaper
flow-matching-only steps of a curriculum) and moves its end there, but only by what changes nothing at the current step: the learning rate
and the curriculum stage of the step about to be taken are the same under the old and the new
length. On ``wsd`` that is the constant phase (after the warm-up and the curriculum, before the
decay, which then runs in full over the new length); ``cosine`` depends on the length at every
step and is never re-planned; ``constant`` and ``inverse_sqrt`` are re-planned after their
warm-up and curriculum.

Every re-plan is written to ``train.step_plan`` as ``[until_step, steps]``: the 0-based steps
before ``until_step`` ran with a run length of ``steps``. Everything that depends on the length
(the learning rate, the curriculum, the snapshot steps) asks :func:`total_at`, so a rerun of
the saved config, or a resume from any checkpoint, takes exactly the steps the original took.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .snapshots import snapshot_steps

REPLANS_PER_RUN = 40
"""A budgeted run considers a re-plan every 1/40 of its first planned steps."""

RATE_WINDOW = 10
"""The step time is measured over the last 10 re-plan intervals (a quarter of the first plan):
of 3, 5, 10, 20 and all, the one that replayed five measured runs' speed traces closest to
their budgets (benchmarks/README.md, "Budget accuracy")."""

REPLAN_MIN_CHANGE = 0.01
"""A re-plan that would move the end by less than 1% of the length is not made."""

BUDGET_TARGET = 0.985
"""The share of the budget a re-plan aims to end the training at (the last checkpoint and log
line, written at the end, take the rest)."""


def total_at(step: int, steps: int, plan: Sequence[Sequence[int]]) -> int:
    """The run length in force at 0-based ``step``: the ``steps`` of the first ``[until, steps]``
    entry of ``plan`` with ``step < until``, else the final ``steps``."""
    for until, total in plan:
        if step < until:
            return int(total)
    return steps


def planned_snapshot_steps(steps: int, plan: Sequence[Sequence[int]], count: int) -> set[int]:
    """The update counts at which snapshots are written over a (re-planned) run: those of
    :func:`flowmaps.train.snapshots.snapshot_steps` for the length in force when each update
    was taken."""
    chosen: set[int] = set()
    start: float = 0
    for until, total in [*plan, (math.inf, steps)]:
        chosen |= {c for c in snapshot_steps(int(total), count) if start <= c - 1 < until}
        start = until
    return chosen


def nearest_unchanged_length(total: int, desired: int, unchanged: Callable[[int], bool]) -> int:
    """The length nearest ``desired``, between ``total`` and it, for which ``unchanged(length)``
    holds (the current step's learning rate and curriculum stage are as under ``total``).
    Bisection: the lengths that leave a step unchanged form an interval around ``total``."""
    if unchanged(desired):
        return desired
    good, bad = total, desired
    while abs(bad - good) > 1:
        mid = (good + bad) // 2
        if unchanged(mid):
            good = mid
        else:
            bad = mid
    return good


@dataclass
class Replanner:
    """When and where a budgeted run moves its end.

    deadline: the :func:`time.perf_counter` time training should end at; every: consider a
    re-plan every this many steps (the same steps on every rank); cap: ``train.max_steps``;
    window: the step time is measured over this many intervals of ``every`` steps.
    """

    deadline: float
    every: int
    cap: int | None = None
    clock: Callable[[], float] = time.perf_counter
    window: int = RATE_WINDOW
    marks: list[tuple[float, int]] = field(default_factory=list)

    @property
    def timing(self) -> bool:
        """Whether the step time is being measured (the first full-cost step was taken)."""
        return bool(self.marks)

    def start_timing(self, step: int) -> None:
        """Time from here: ``step`` is the first full-cost step (called before it is taken)."""
        if not self.marks:
            self.marks.append((self.clock(), step))

    def restart_timing(self) -> None:
        """Forget the timing (after a recovery went back to an earlier step)."""
        self.marks.clear()

    def step_seconds(self, step: int) -> float | None:
        """Seconds a step has taken over the last ``window`` intervals of ``every`` steps
        (all timed steps while there are fewer), or None while fewer than ``every`` (and 10)
        steps were timed. Each call at a new step becomes a mark for later ones."""
        span = max(self.every, 10)
        if not self.marks or step - self.marks[0][1] < span:
            return None
        now = self.clock()
        # the oldest mark inside the window, else the newest one at least `span` steps back
        recent = [m for m in self.marks if span <= step - m[1] <= self.window * self.every]
        since, start = recent[0] if recent else max((m for m in self.marks if step - m[1] >= span), key=lambda m: m[1])
        if step > self.marks[-1][1]:
            self.marks.append((now, step))
        return (now - since) / (step - start)

    def desired_length(self, step: int) -> tuple[int, float] | None:
        """The length that ends training at the deadline at the measured rate, with that rate
        (seconds a step), or None when nothing has been timed yet."""
        rate = self.step_seconds(step)
        if rate is None:
            return None
        length = step + max(int((self.deadline - self.clock()) / rate), 1)
        if self.cap is not None:
            length = min(length, self.cap)
        return length, rate

    def next_length(self, step: int, total: int, unchanged: Callable[[int], bool]) -> tuple[int, float]:
        """The run length to continue with at ``step`` (``total`` when nothing is to change), and
        the measured seconds a step (0 when not measured): the desired length, moved no further
        than ``unchanged(length)`` allows (the step's learning rate and curriculum stage stay
        as they are), and kept at ``total`` for a change under :data:`REPLAN_MIN_CHANGE`."""
        wanted = self.desired_length(step)
        if wanted is None:
            return total, 0.0
        new = nearest_unchanged_length(total, wanted[0], unchanged)
        return (total if abs(new - total) < max(1.0, REPLAN_MIN_CHANGE * total) else new), wanted[1]


def budget_summary(budget: dict[str, Any]) -> str:
    """One line on a budget (run.json's ``budget``): the steps planned from it, how they were
    measured and re-planned, and how much of it the run took; for ``flowmaps train`` and the report."""
    cap = "; capped by train.max_steps" if "capped_by_max_steps" in budget else ""
    replans = budget.get("replans") or []
    moved = (f"; re-planned {len(replans)} time(s) from {budget['planned_steps']:,} steps as the speed moved"
             if replans else "")
    used = (f"; probe and training took {budget['seconds']:.0f} s, {100 * budget['used']:.0f}% of the budget"
            if "used" in budget else "")
    return (f"{budget['minutes']:g}-minute budget -> {budget['steps']:,} steps "
            f"({budget['measured_step_seconds'] * 1000:.1f} ms a step, measured before training{cap}{moved}){used}")
