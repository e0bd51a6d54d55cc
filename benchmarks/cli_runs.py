"""Train the way a user does, through ``flowmaps train``, and read what the run wrote. Shared by
the benchmark scripts that measure the CLI's defaults (``known_maps.py``, ``warm_start.py``)."""
from __future__ import annotations

import json
from pathlib import Path

from flowmaps.cli import main as cli


def train_via_cli(out: Path, *args: str) -> tuple[dict, dict]:
    """Run ``flowmaps train --out OUT ARGS --set train.progress=false``; exit on a non-zero status.
    Returns the run's eval.json ({} when trained with --no-eval) and run.json."""
    code = cli(["train", *args, "--out", str(out), "--set", "train.progress=false"])
    if code != 0:
        raise SystemExit(f"training {out.name} failed with status {code}")
    result = json.loads((out / "eval.json").read_text()) if (out / "eval.json").is_file() else {}
    return result, json.loads((out / "run.json").read_text())
