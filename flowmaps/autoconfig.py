"""``flowmaps train --data PATH``: a configuration chosen from the data, the device and the budget.

Every choice is a config key, so ``--set`` overrides any of them; :func:`auto_config` returns
the keys with a one-line reason each, printed as a table before training and saved with the run
(``autoconfig.json``). The defaults behind these choices were measured in
``benchmarks/recipe_study.py`` (see benchmarks/README.md).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import recipes
from .config import Config
from .data.arrays import ARRAY_SUFFIXES, ArrayFiles
from .data.columns import detect_columns
from .data.images import IMAGE_DATASETS, IMAGE_SUFFIXES, list_images
from .data.tables import TABLE_SUFFIXES, read_table
from .data.toy2d import TOY
from .errors import ConfigError, MissingDataError
from .kinds import Images, kind_for_data
from .recipes import RESOLUTIONS, Choice, as_layer

NAMED_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32),
                "celeba64": (3, 64, 64), "afhq64": (3, 64, 64)}


@dataclass
class DeviceInfo:
    """What training will run on: ``kind`` (cpu or cuda), processes and bfloat16 support."""

    kind: str
    processes: int = 1

    @classmethod
    def detect(cls, device: str = "auto", processes: int = 1) -> DeviceInfo:
        kind = "cuda" if (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda") else "cpu"
        return cls(kind, max(processes, 1))


def _array_item_shape(path: Path) -> tuple[int, ...] | None:
    """The item shape of a .npy / .safetensors file or folder of them, None for anything else."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    if not any(f.suffix in ARRAY_SUFFIXES for f in files):
        return None
    if path.is_file() and path.suffix == ".npy":
        import numpy as np

        return tuple(np.load(path, mmap_mode="r").shape[1:])
    return tuple(ArrayFiles(path, statistics=False).shape)


def detect_data(data: str) -> tuple[str, str | None]:
    """(data.name, data.path) for ``--data``: a named set, a .npy/.csv point cloud [N, D], arrays of
    any other shape (.npy / .safetensors files or a folder of them) or an image folder."""
    if data in TOY or data in IMAGE_DATASETS and data != "folder" and not Path(data).exists():
        return data, None
    p = Path(data)
    if p.is_file():
        if p.suffix.lower() == ".safetensors" or (p.suffix.lower() == ".npy" and len(_array_item_shape(p) or ()) >= 2):
            return "array", str(p)
        if p.suffix.lower() == ".npy" or p.suffix.lower() in TABLE_SUFFIXES:
            return "points", str(p)
        raise ConfigError(f"--data {data!r}: a file must be a table (.csv, .tsv, .parquet) or a .npy point cloud [N, D], "
                          f"or .npy / .safetensors arrays [N, ...]; for images give their folder")
    if p.is_dir():
        return ("array" if _array_item_shape(p) is not None else "folder"), str(p)
    names = ", ".join(sorted(TOY) + [n for n in IMAGE_DATASETS if n != "folder"])
    raise ConfigError(f"--data {data!r} does not exist; give a .npy/.csv file, a folder of images, or one of {names}")


def cpu_resolution_cap(minutes: float | None) -> int:
    """The largest resolution a CPU budget can train to something recognisable: an LSD step of the
    CPU UNet at batch 64 took 7.4 s at 64x64 on 2 cores (29 steps in 5 minutes), so short budgets
    train smaller images (16x16 below 15 minutes, 32x32 below an hour)."""
    if minutes is None or minutes >= 60:
        return 64
    return 32 if minutes >= 15 else 16


def native_resolution(folder: str | Path, limit: int = 200) -> tuple[int, float, int]:
    """(resolution, median shorter side, images read): the largest of 8..256 not above the median
    shorter side of (up to ``limit``) readable images of ``folder``."""
    from PIL import Image

    files = list_images(Path(folder))
    sides = []
    for f in files[:limit]:
        try:
            with Image.open(f) as im:
                sides.append(min(im.size))
        except (OSError, ValueError, SyntaxError):
            continue
    if not sides:
        raise MissingDataError(f"no readable image files ({', '.join(IMAGE_SUFFIXES)}) under {str(folder)!r}")
    median = statistics.median(sides)
    return max([r for r in RESOLUTIONS if r <= median] or [RESOLUTIONS[0]]), median, len(sides)


def detect_resolution(folder: str | Path, device: DeviceInfo, limit: int = 200,
                      minutes: float | None = None) -> tuple[int, str]:
    """The training resolution for a folder of images without a measurement: the images' own
    (:func:`native_resolution`), at most 128 on a GPU and, on a CPU, what the budget can train
    (:func:`cpu_resolution_cap`). A measured choice (:func:`choose_cpu_image_recipe`) replaces
    the CPU cap when ``flowmaps train --data`` times the candidates."""
    native, median, count = native_resolution(folder, limit)
    cap = cpu_resolution_cap(minutes) if device.kind == "cpu" else 128
    res = min(native, cap)
    why = f"median shorter side {median:g} px of {count} images"
    if native > cap:
        budget = f" for a {minutes:g}-minute budget" if device.kind == "cpu" and minutes is not None else ""
        why += f", capped at {cap} on a {device.kind.upper()}{budget} (--set data.resolution=R to choose)"
    return res, why


MIN_CPU_IMAGE_STEPS = 2000
"""The steps a CPU image run is given before a larger resolution, UNet or batch: digits-cpu's
2,200 steps draw digits; on 400 pictures of discs, 8 minutes of the small UNet (3,190 steps)
drew discs where 541 steps of the larger one drew noise (benchmarks/README.md)."""

CPU_IMAGE_LADDER: tuple[tuple[int, int], ...] = ((16, 32), (16, 64), (32, 64), (32, 128))
"""(UNet model channels, batch) candidates for a CPU image run, cheapest first."""

MIN_TIMED_BUDGET_S = 60.0
"""Below this budget no candidate is timed: 2,000 steps in under a minute would need steps under
30 ms, which no CPU UNet candidate takes, so the cheapest is taken as it is (and the timing's
seconds would be a large share of so short a budget)."""

StepTimer = Callable[[dict[str, Any], tuple[int, ...], float], float]
"""Seconds of one training step of a config layer for items of a shape and a noise scale
(:func:`flowmaps.step_timing.step_seconds`)."""


@dataclass(frozen=True)
class ImageRecipe:
    """A measured CPU image choice: resolution, UNet channels, batch, and what was measured."""

    resolution: int
    channels: int
    batch: int
    step_seconds: float
    why: str


def choose_cpu_image_recipe(resolutions: list[int], budget_s: float,
                            seconds: Callable[[int, int, int], float]) -> ImageRecipe:
    """The largest resolution of ``resolutions`` (ascending) whose cheapest candidate still fits
    :data:`MIN_CPU_IMAGE_STEPS` steps in ``budget_s``, then the largest UNet and batch of
    :data:`CPU_IMAGE_LADDER` that does at that resolution; the cheapest of the smallest
    resolution when nothing fits. ``seconds(resolution, channels, batch)`` times one step;
    candidates are timed only as far as the choice needs."""
    def fits(sec: float) -> bool:
        return budget_s / sec >= MIN_CPU_IMAGE_STEPS

    cheap = CPU_IMAGE_LADDER[0]
    res, sec = resolutions[0], seconds(resolutions[0], *cheap)
    for r in resolutions[1:]:
        if not fits(sec):
            break
        s_r = seconds(r, *cheap)
        if not fits(s_r):
            break
        res, sec = r, s_r
    channels, batch = cheap
    if fits(sec):
        for c, b in CPU_IMAGE_LADDER[1:]:
            s_cb = seconds(res, c, b)
            if not fits(s_cb):
                break
            channels, batch, sec = c, b, s_cb
    steps = int(budget_s / sec)
    rule = (f"the largest that fits {MIN_CPU_IMAGE_STEPS:,} steps" if fits(sec)
            else f"the cheapest: fewer than {MIN_CPU_IMAGE_STEPS:,} steps fit")
    why = f"measured here: {sec * 1000:.0f} ms a step, about {steps:,} steps in the budget ({rule})"
    return ImageRecipe(res, channels, batch, sec, why)


TABLE_HOLDOUT = 0.2
"""The share of a point file's rows held out for the audit (files of at least MIN_ROWS_FOR_HOLDOUT rows)."""
MIN_ROWS_FOR_HOLDOUT = 50
MIN_TABLE_STEPS = 150
"""A point file trains on at most max(MIN_TABLE_STEPS, its training rows) batches of 2,048 rows
(steps of a smaller batch count in proportion): past that, samples drew nearer to training rows
than new rows are (96, 320 and 400 rows measured, benchmarks/README.md)."""


def _table_choices(path: str, batch: int) -> tuple[list[Choice], int]:
    """A point file: each column handled by its detected type, a held-out share, the step cap and
    the evaluation's samples; and the width of its rows in the model's scale."""
    raw = read_table(path)
    table, rows = detect_columns(raw), len(raw)
    holdout = TABLE_HOLDOUT if rows >= MIN_ROWS_FOR_HOLDOUT else 0.0
    n_held = int(round(holdout * rows))
    kinds = table.describe()
    cap = max(MIN_TABLE_STEPS, rows - n_held) * recipes.POINTS_BATCH // batch
    samples = min(20000, max(2000, 10 * rows))
    return [
        Choice("data.columns", "auto", f"each column handled by its type; detected: {kinds}"),
        Choice("data.holdout", holdout, f"{n_held} of {rows} rows held out for 'flowmaps audit'" if holdout else
               f"{rows} rows: too few to hold any out (at least {MIN_ROWS_FOR_HOLDOUT})"),
        Choice("train.max_steps", cap, f"at most one batch of {recipes.POINTS_BATCH:,} per training row (at least "
                                       f"{MIN_TABLE_STEPS}), in steps of {batch:,}: more memorised the rows of small tables"),
        Choice("eval.num_samples", samples, "scored against the table's own rows: ten samples per row (2,000 to 20,000)"),
    ], table.width


def auto_config(data: str, minutes: float | None = None, device: str = "auto", processes: int = 1,
                resolution: int | None = None, step_timer: StepTimer | None = None) -> list[Choice]:
    """The automatic choices for ``--data`` on this device and budget (see the module doc).

    ``step_timer`` (:func:`flowmaps.step_timing.step_seconds`): on a CPU, image data get the
    resolution, UNet width and batch that :func:`choose_cpu_image_recipe` measures to fit the
    budget, and the timing's seconds are taken off ``train.minutes``; None keeps the fixed rule
    (:func:`cpu_resolution_cap`, 32 channels, batch 128 or 64)."""
    dev = DeviceInfo.detect(device, processes)
    name, path = detect_data(data)
    choices = [Choice("data.name", name, "detected from --data"), ]
    if path:
        choices.append(Choice("data.path", path, "--data"))
    budget = minutes if minutes is not None else (5.0 if dev.kind == "cpu" else 30.0)
    choices.append(Choice("train.minutes", budget, "--minutes" if minutes is not None else
                          f"default budget on a {dev.kind.upper()}; the step count is measured from it"))
    common = recipes.self_distillation()
    cpu = dev.kind == "cpu"
    if name == "array":
        net, why = kind_for_data(name, _array_item_shape(Path(path)) or ()).network(cpu)  # type: ignore[arg-type]
        return [*choices, Choice("net", net, why), *recipes.arrays(cpu), *common]
    image = name in IMAGE_DATASETS
    if not image:
        batch = recipes.points_batch(name, cpu)
        table, dim = _table_choices(path, batch) if name == "points" else ([], 2)  # type: ignore[arg-type]
        net, _ = kind_for_data(name, (dim,)).network(cpu)
        choices += [*table, *recipes.points(name, dim, cpu, dev.processes, net)]
        return choices + common
    native = None
    if name == "folder":
        if resolution is not None:
            res, res_why = resolution, "--set data.resolution"
        elif cpu and step_timer is not None:
            native, median, count = native_resolution(path)  # type: ignore[arg-type]
            res, res_why = native, f"median shorter side {median:g} px of {count} images"
        else:
            res, res_why = detect_resolution(path, dev, minutes=budget)  # type: ignore[arg-type]
    else:
        res, res_why = NAMED_SHAPES[name][1], ""
    if not (cpu and step_timer is not None):
        image = _image_choices(res, dev, 32, (128 if res <= 16 else 64) if cpu else 128 * dev.processes)
    else:
        resolutions = [res] if native is None else [r for r in RESOLUTIONS if 16 <= r <= min(native, 64)] or [native]
        if budget * 60.0 < MIN_TIMED_BUDGET_S:
            channels, batch = CPU_IMAGE_LADDER[0]
            res = resolutions[0]
            image = _image_choices(res, dev, channels, batch, f"a budget under {MIN_TIMED_BUDGET_S:g} s fits fewer "
                                   f"than {MIN_CPU_IMAGE_STEPS:,} steps of any candidate: the cheapest, untimed")
            res_why += "; the smallest candidate for so short a budget" if native is not None else ""
        else:
            channels_in = NAMED_SHAPES[name][0] if name in NAMED_SHAPES else 3
            fixed = [*choices, *common]

            def seconds(r: int, c: int, b: int) -> float:
                return step_timer(as_layer(fixed + _image_choices(r, dev, c, b)), (channels_in, r, r), 0.5)

            t0 = time.perf_counter()
            pick = choose_cpu_image_recipe(resolutions, budget * 60.0, seconds)
            spent = time.perf_counter() - t0
            image = _image_choices(pick.resolution, dev, pick.channels, pick.batch, pick.why)
            if native is not None:
                res = pick.resolution
                res_why += f"; {pick.resolution} measured to fit the budget (--set data.resolution=R to choose)"
            choices = [c for c in choices if c.key != "train.minutes"]
            choices.append(Choice("train.minutes", round(budget - spent / 60.0, 3),
                                  f"the budget less the {spent:.1f} s spent timing candidate steps"))
    if name == "folder":
        choices.append(Choice("data.resolution", res, res_why))
    return choices + image + common


def _image_choices(res: int, dev: DeviceInfo, channels: int, batch: int, measured: str | None = None) -> list[Choice]:
    """The network, loss and optimiser choices for ``res`` x ``res`` images (``channels``: the CPU
    UNet's model channels; ``measured``: why, when the UNet and batch were chosen by timing)."""
    net, why = Images(Config(), (3, res, res)).network(dev.kind == "cpu", channels)
    return [Choice("net", net, f"{why}: {measured}" if measured else why),
            *recipes.images(dev.kind == "cpu", batch, measured is not None)]


def format_choices(choices: list[Choice], overridden: set[str]) -> str:
    """One short table: key, value, why (``--set`` marks a value the user overrode)."""
    def over(key: str) -> bool:
        return any(k == key or k.startswith(key + ".") for k in overridden)

    rows = [(c.key, _short(c.value), "overridden by --set" if over(c.key) else c.why) for c in choices]
    w0 = max(len(r[0]) for r in rows)
    w1 = min(max(len(r[1]) for r in rows), 48)
    return "\n".join(f"  {k:<{w0}}  {v:<{w1}}  {why}" for k, v, why in rows)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        keys = ("kind", "model_channels", "channel_mult", "num_blocks", "attn_resolutions")
        return " ".join(f"{k}={value[k]}" for k in keys if k in value)
    return str(value)
