"""A git revision of this repository checked out beside it, for benchmarks that compare the
working tree with an earlier revision (``train_step_speed.py``, ``same_results.py``)."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def add_worktree(rev: str) -> Path:
    """Check ``rev`` out into a new temporary folder (a detached git worktree); returns it."""
    path = Path(tempfile.mkdtemp(prefix="flowmaps-baseline-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)
    return path


def remove_worktree(path: Path) -> None:
    """Remove a worktree made by :func:`add_worktree` (never the repository itself)."""
    if path.resolve() != ROOT:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
