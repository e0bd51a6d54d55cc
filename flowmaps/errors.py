"""The errors flowmaps reports to a user in one line: the command line catches exactly these.

Every error a user causes and can fix (a configuration, a data file, an input, a run folder, a
missing data set, a metric that cannot run here, a run that cannot do what was asked, a
training run that diverged) is a :class:`FlowmapsError` whose message is one line naming the
fix. Each also derives from the built-in exception it replaced, so ``except ValueError`` or
``except FileNotFoundError`` in a user's code keeps working. Anything else is a bug and keeps
its traceback.

This module imports nothing from flowmaps: every layer may raise these.
"""
from __future__ import annotations


class FlowmapsError(Exception):
    """An error the user can fix; its message is one line and names the fix."""


class ConfigError(FlowmapsError, ValueError):
    """A bad configuration key or value."""


class DataError(FlowmapsError, ValueError):
    """Training data that cannot be used as given (a malformed file, NaN values, a constant
    column, classes or a hold-out that do not fit the data set)."""


class InputError(FlowmapsError, ValueError):
    """An input that does not fit the run (its shape, a strength, a noise level, a mask)."""


class UsageError(FlowmapsError):
    """A command-line usage error (a flag that does not fit the run or the other flags)."""


class RunError(FlowmapsError, FileNotFoundError):
    """A run folder that is missing or incomplete, or lacks what a command needs."""


class MissingDataError(FlowmapsError, FileNotFoundError):
    """A data set's files are not where the configuration says."""


class MetricUnavailable(FlowmapsError, RuntimeError):
    """An optional metric that cannot run here (weights or data missing); says how to get it."""


class NotInvertibleError(FlowmapsError, ValueError):
    """The run's map was trained only forward (s <= t), so it cannot jump from data to noise."""


class InterpolantError(FlowmapsError, ValueError):
    """A run trained with an interpolant whose formulas an operation does not implement."""


class TrainingDiverged(FlowmapsError, RuntimeError):
    """Too many consecutive non-finite or spiking steps (after the recoveries allowed)."""


class DiskFullError(FlowmapsError, OSError):
    """A write that failed, or would fail, for lack of disk space; names the file, the free
    space and how to go on."""


class RunLocked(FlowmapsError, FileExistsError):
    """A run folder another process is training into."""


class Interrupted(FlowmapsError):
    """Training stopped by a signal (Ctrl-C, a scheduler's SIGTERM or SIGUSR1) after writing a
    checkpoint; ``signum`` gives the exit status 128 + signum."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
