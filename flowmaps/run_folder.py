"""A run folder's layout: every file name of a trained run, in one place.

    RUN/config.yaml          the resolved configuration (a budget's step count and re-plans in it)
    RUN/run.json             facts about the run: sigma, data shape, classes, budget, recoveries, ...
    RUN/autoconfig.json      what ``--data`` chose, and why
    RUN/train.lock           held while a process trains into the folder (:mod:`flowmaps.train.lock`)
    RUN/metrics.jsonl        one line per logged window of training steps
    RUN/eval_history.jsonl   the periodic evaluations (``train.eval_every``)
    RUN/checkpoints/         step-NNNNNNNN/ (model, EMAs, training state, manifest.json of sizes
                             and hashes written last), atomic and verified
    RUN/ema_snapshots/       snapshots of the power EMAs, for post-hoc EMA
    RUN/ema/                 post-hoc EMA weights written by ``flowmaps ema``
    RUN/eval.json            the evaluation
    RUN/samples-TAG[-NAME].png  sample grids (``final`` after training, ``step-NNNNNNNN`` during it)
    RUN/training.png         the training curves
    RUN/audit.json, RUN/audit-marginals.png   the audit (``flowmaps audit``)
    RUN/audit-nearest.png    image runs: samples above their nearest training pictures
    RUN/report.html          the report (``flowmaps report``)
    RUN/tensorboard/         TensorBoard events (``train.tensorboard``)
    RUN/table.csv, RUN/table-dtypes.json   a DataFrame given to ``flowmaps.TableModel.fit``, and its dtypes

A patch-code run (``flowmaps train --code patch``) keeps its code in RUN/code/ (codes.npy,
decoder.pt2, code.safetensors; :mod:`flowmaps.picture_codes`).

An anomaly run on pictures (``flowmaps train --task anomaly``) is a folder of two runs and what
ties them together:

    RUN/anomaly.json         the feature network, the split, the calibration on held-out pictures
    RUN/anomaly.safetensors  the shrunk Gaussians the maps start from, the normal pictures' features
    RUN/features/            the whitened features the two maps train on (.npy)
    RUN/global/, RUN/local/  the flow maps of the pooled and the per-position features (run folders)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, build_config, load_yaml
from .train.checkpoint import write_text_atomic


@dataclass(frozen=True)
class RunFolder:
    """The files of the run in ``path`` (which need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def lock(self) -> Path:
        return self.path / "train.lock"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def table_data(self) -> Path:
        return self.path / "table.csv"

    @property
    def table_dtypes(self) -> Path:
        return self.path / "table-dtypes.json"

    @property
    def meta(self) -> Path:
        return self.path / "run.json"

    @property
    def autoconfig(self) -> Path:
        return self.path / "autoconfig.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def eval_history(self) -> Path:
        return self.path / "eval_history.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def ema_snapshots(self) -> Path:
        return self.path / "ema_snapshots"

    @property
    def posthoc_ema(self) -> Path:
        return self.path / "ema"

    @property
    def evaluation(self) -> Path:
        return self.path / "eval.json"

    @property
    def training_plot(self) -> Path:
        return self.path / "training.png"

    @property
    def audit(self) -> Path:
        return self.path / "audit.json"

    @property
    def audit_marginals(self) -> Path:
        return self.path / "audit-marginals.png"

    @property
    def audit_nearest(self) -> Path:
        return self.path / "audit-nearest.png"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def anomaly(self) -> Path:
        return self.path / "anomaly.json"

    @property
    def anomaly_arrays(self) -> Path:
        return self.path / "anomaly.safetensors"

    @property
    def features(self) -> Path:
        return self.path / "features"

    @property
    def code(self) -> Path:
        """A patch-code run's code (:mod:`flowmaps.picture_codes`)."""
        return self.path / "code"

    @property
    def code_decoder(self) -> Path:
        return self.path / "code" / "decoder.pt2"

    def feature_run(self, part: str) -> Path:
        """The run folder of the flow map on the ``global`` (pooled) or ``local`` features."""
        return self.path / part

    def samples(self, tag: str, name: str | None = None) -> Path:
        """The sample grid of evaluation ``tag`` (and of solver ``name`` for image data)."""
        return self.path / (f"samples-{tag}-{name}.png" if name else f"samples-{tag}.png")

    def sample_grids(self, tag: str) -> list[Path]:
        """The sample grids evaluation ``tag`` wrote, sorted."""
        return sorted(self.path.glob(f"samples-{tag}*.png"))

    def is_run(self) -> bool:
        """Whether the folder holds a run (its config and run.json)."""
        return self.config.is_file() and self.meta.is_file()

    def read_config(self) -> Config:
        """The run's configuration as config.yaml holds it (keys added since it was written take
        their defaults)."""
        return build_config(load_yaml(self.config))

    def read_meta(self) -> dict[str, Any]:
        return json.loads(self.meta.read_text())

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_text_atomic(self.meta, json.dumps(meta, indent=2))

    def update_meta(self, **fields: Any) -> None:
        """Replace ``fields`` in run.json (atomically), keeping the rest."""
        self.write_meta({**self.read_meta(), **fields})

    def read_jsonl(self, path: Path) -> list[dict[str, Any]]:
        """The records of a JSON-lines file of the run (none when it does not exist)."""
        if not path.is_file():
            return []
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        records = []
        for i, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except ValueError:
                if i < len(lines) - 1:
                    raise
                # the last line cut short by a process killed while writing it: not a record
        return records
