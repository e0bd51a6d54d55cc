"""What a run trains, built from its config: the data source, the noise scale, the flow map and
the objective with its teacher. The trainer takes these (:class:`flowmaps.train.trainer.Trainer`'s
``parts``), so a caller may build them another way."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import Config
from ..data.source import DataSource
from ..errors import ConfigError
from ..external import load_velocity
from ..flow_map import FlowMap
from ..interpolants import get_interpolant
from ..losses.objective import Objective, Teacher
from ..run import load_run
from .builders import build_data, build_flow_map, resolve_run_sigma


@dataclass
class TrainingParts:
    """source: the training data; sigma: the noise scale (``adaptive`` resolved); fm: the flow map,
    on the training device; objective: the loss of ``cfg.method`` with its teacher, if any."""

    source: DataSource
    sigma: float
    fm: FlowMap
    objective: Objective


def build_teacher(cfg: Config, source: DataSource, device: torch.device) -> Teacher | None:
    """The frozen teacher of a distillation method: a velocity saved elsewhere
    (``teacher.velocity``) or a trained run (``teacher.run``); None for self-distillation."""
    if cfg.teacher.velocity:
        teacher = Teacher(velocity=load_velocity(cfg.teacher.velocity, source.shape, device))
        where = cfg.teacher.velocity
    elif cfg.teacher.run:
        teacher = Teacher.from_flow_map(load_run(cfg.teacher.run, ema=cfg.teacher.ema, device=device).fm)
        where = cfg.teacher.run
    else:
        return None
    if cfg.data.conditional and teacher.num_classes != source.num_classes:
        raise ConfigError(f"a class-conditional student needs a teacher trained on the same {source.num_classes} "
                          f"classes (data.conditional=true); {where!r} has {teacher.num_classes}")
    return teacher


def build_parts(cfg: Config, device: torch.device) -> TrainingParts:
    """The parts of ``cfg`` on ``device``. The network's initial weights come from the global
    generator: seed it first (the trainer seeds ``cfg.seed``)."""
    source = build_data(cfg)
    sigma = resolve_run_sigma(cfg, source)
    if cfg.data.conditional and not source.num_classes:
        raise ConfigError(f"data.conditional=true needs class labels, and {cfg.data.name} has none (labelled: digits, "
                          "mnist, fashion-mnist, cifar10, afhq64, a folder of class subfolders, gmm, 8gaussians, "
                          "moons, points with data.label_column)")
    fm = build_flow_map(cfg, source.shape, source.num_classes, sigma).to(device)
    num_classes = source.num_classes if cfg.data.conditional else 0
    objective = Objective(cfg.objective_config(), sigma, get_interpolant(cfg.interpolant),
                          build_teacher(cfg, source, device), num_classes)
    return TrainingParts(source, sigma, fm, objective)
