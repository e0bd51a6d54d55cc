"""A graceful stop: Ctrl-C, a scheduler's SIGTERM (SLURM, Kubernetes) or SLURM's SIGUSR1 warning
finish the current step, write a checkpoint and end training with a resume command.

While training runs, :class:`StopSignals` replaces the handlers of :data:`STOP_SIGNALS` with one
that only records the signal; the trainer looks at it after each step (every rank agreeing, under
DDP), so the checkpoint it writes is of a whole step, and the run continued with ``--resume`` is
bit for bit the uninterrupted one. A second signal while the first is being served stops at once
(``KeyboardInterrupt``). Outside the main thread no handler can be set and nothing changes.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGUSR1")) if s is not None)


class StopSignals:
    """Context manager: ``received`` is the first stop signal's number since entry (None: none)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # the second: at once
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
