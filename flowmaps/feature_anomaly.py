"""Anomaly scores for a folder of pictures, from flow maps in a pretrained network's feature space.

    flowmaps train --task anomaly --data good_pictures/ --minutes 3 --out inspect
    flowmaps score --run inspect --input new_pictures/ --out scores.csv   # + scores-heatmaps.png

Pixels from scratch cannot learn what a defect is in minutes on a CPU (a flow map on 32 x 32
pixels scored chance, AUROC 0.52, benchmarks/README.md); features of an ImageNet network can.
So each picture goes through EfficientNet-Lite0 (:mod:`flowmaps.metrics.features`) once, and two
flow maps are trained on what comes out:

- **global**: the pooled features [1392] of each picture, for a picture that is wholly unlike the
  normal ones (another object, another class);
- **local**: the features of each position [152] on the stride-8 grid, less the normal pictures'
  mean at that position (PaDiM's centring), one map for all positions; for a defect in one place
  (a scratch, a blot), and the heat map that shows where. A picture's local score is the mean of
  its :data:`TOP_POSITIONS` highest positions'.

Each map starts from the closed-form part: its inputs are whitened by the normal features'
Ledoit-Wolf-shrunk Gaussian (:class:`flowmaps.metrics.outliers.ShrunkGaussian`), so a map that
learned nothing scores as the Mahalanobis distance does and training adds what is not Gaussian.
A map's score is its denoising error (:mod:`flowmaps.anomaly`, ``denoise``; :data:`SCORE_SETTINGS`:
the global map's at strengths 0.1-0.3 with 4 draws, the local map's at 0.2 with one).

A fifth of the normal pictures (at least 4) is held out and never trained on: their scores
calibrate the two parts, as z-scores of the log-score, and the picture's score is the mean of
the two z-scores (the mean scored above the larger of the two on Fashion-MNIST and on textures,
benchmarks/README.md); a picture above every held-out picture's score is flagged. The
baselines of :mod:`flowmaps.metrics.outliers`, pooled and per position, are fitted on the same
features and scored beside it, always.

Time convention of the maps: t = 0 is noise, t = 1 is data.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from . import pipeline
from .anomaly import ScoreSettings, anomaly_scores
from .data.images import IMAGE_SUFFIXES, UnreadableImageWarning, list_images, read_image
from .errors import DataError, InputError, RunError, UsageError
from .metrics.features import EXTRACTOR, PictureFeatures, feature_size
from .metrics.outliers import BASELINES, LOCAL_BASELINES, PATCH_BANK, ShrunkGaussian, auroc, nearest_distance
from .run import Run, load_run
from .run_folder import RunFolder
from .train.checkpoint import write_text_atomic

MIN_PICTURES = 20
CALIBRATION_SHARE = 0.2
MIN_CALIBRATION = 4
LOCAL_VECTORS = 40_000
"""The most per-position feature vectors the local map trains on (a seeded subsample)."""
SCORE_SETTINGS = {"global": ScoreSettings(strengths=[0.1, 0.2, 0.3], draws=4),
                  "local": ScoreSettings(strengths=[0.2], draws=1)}
"""Each map's denoising score: the local map scores every position of every picture, so once."""
MAP_SETTINGS = {"global": ["net.width=512", "net.depth=3", "net.gaussian_base=true"],
                "local": ["net.width=256", "net.depth=3"]}
"""Each map's network: an MLP on whitened features, kept in their one scale (``data.scaling=global``:
per-coordinate scaling would undo the Gaussian's shrinkage); the global map starts at the
Gaussian's flow map; the local one is small, as it scores H/8 x W/8 positions per picture."""
PARTS = ("global", "local")
BUDGET_SHARES = {"global": 0.25, "local": 0.75}
"""The maps' shares of the training time: the global map starts at its Gaussian and gained
little from more steps; the local map learns the patches' many modes (gravel: stones in every
shade) and gained from more."""
NORMAL_FOLDERS = ("good", "normal", "ok")
"""Subfolder names :func:`folder_truth` reads as normal pictures (MVTec AD's test/good, ...)."""
HEATMAP_COUNT = 5
TOP_POSITIONS = 5
"""A picture's local score is the mean of its 5 highest positions' (a robust maximum: it scored
above the maximum on gravel and grass with pasted defects, benchmarks/README.md)."""


def top_mean(heat: np.ndarray, k: int = TOP_POSITIONS) -> np.ndarray:
    """The mean of the k largest values of each picture's map [B, H, W] -> [B]."""
    flat = heat.reshape(heat.shape[0], -1)
    k = min(k, flat.shape[1])
    return np.sort(flat, axis=1)[:, -k:].mean(1)
DEFAULT_MINUTES = 3.0


@dataclass
class Pictures:
    """uint8 pictures [N, 3, S, S] at the feature network's size S, and their paths."""

    images: np.ndarray
    paths: list[Path]
    root: Path

    @property
    def names(self) -> list[str]:
        return [str(p.relative_to(self.root)) if self.root.is_dir() else p.name for p in self.paths]


def read_pictures(path: str | Path, size: int | None = None, minimum: int = 1) -> Pictures:
    """Every picture under ``path`` (a folder, searched recursively, or one file), as uint8 RGB
    [N, 3, S, S]: the largest centred square, resized with an area filter to S, the feature
    network's size for the pictures' median side (:func:`feature_size`) unless ``size`` is
    given. Grey, RGBA, palette and 16-bit pictures are converted (:func:`read_image`); pictures
    of different sizes are cropped and resized alike, with a note. One-line errors: nothing to
    read, fewer than ``minimum`` pictures."""
    from PIL import Image

    root = Path(path)
    if root.is_file():
        files = [root] if root.suffix.lower() in IMAGE_SUFFIXES else []
    else:
        files = list_images(root) if root.is_dir() else []
    if not files:
        if not root.exists():
            raise InputError(f"{str(root)!r} does not exist: give a folder of pictures ({', '.join(IMAGE_SUFFIXES)})")
        raise InputError(f"no pictures ({', '.join(IMAGE_SUFFIXES)}) under {str(root)!r}")
    sizes, keep = [], []
    for f in files:
        try:
            with Image.open(f) as im:
                sizes.append(im.size)
            keep.append(f)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            warnings.warn(f"skipping unreadable picture {str(f)!r} ({type(e).__name__})", UnreadableImageWarning, stacklevel=2)
    if len(keep) < minimum:
        raise DataError(f"{str(root)!r} holds {len(keep)} readable pictures; an anomaly model needs at least {minimum} "
                        f"normal ones (a few hundred work best)")
    side = int(np.median([min(w, h) for w, h in sizes]))
    size = size or feature_size(side)
    if len(set(sizes)) > 1:
        print(f"flowmaps: the pictures have {len(set(sizes))} different sizes; each is cropped to its largest centred "
              f"square and resized to {size} x {size}")
    images = np.stack([read_image(f, size, channels=3) for f in keep])
    return Pictures(images, keep, root)


def folder_truth(pictures: Pictures) -> np.ndarray | None:
    """Which pictures are anomalous [N] (bool) when the input folder says so: first-level
    subfolders, one of them named as in :data:`NORMAL_FOLDERS` (MVTec AD's ``test/good``); else
    None."""
    if not pictures.root.is_dir():
        return None
    parts = [p.relative_to(pictures.root).parts for p in pictures.paths]
    groups = {q[0].lower() for q in parts if len(q) > 1}
    normal = [g for g in groups if g in NORMAL_FOLDERS]
    if len(groups) < 2 or len(normal) != 1 or any(len(q) == 1 for q in parts):
        return None
    return np.array([q[0].lower() != normal[0] for q in parts])


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, calibration) indices of n normal pictures: a seeded fifth (at least 4) held out."""
    perm = np.random.default_rng(seed).permutation(n)
    k = max(MIN_CALIBRATION, int(round(CALIBRATION_SHARE * n)))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _positions(local: np.ndarray) -> np.ndarray:
    """Per-position vectors [B * H * W, C] of local features [B, C, H, W]."""
    b, c, h, w = local.shape
    return np.ascontiguousarray(local.transpose(0, 2, 3, 1).reshape(b * h * w, c), dtype=np.float32)


def _train_map(data: Path, out: Path, minutes: float, seed: int, extra: list[str]) -> None:
    """A flow map on the rows of ``data`` (.npy [n, d], whitened) for ``minutes``, quietly."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        setup = pipeline.configure(data=str(data), minutes=minutes, overrides=["data.name=array", "data.scaling=global", f"seed={seed}",
                                                                                 *extra])
        pipeline.start_training(setup, out).fit()


class AnomalyModel:
    """A trained anomaly run (module docstring) in the folder ``path``."""

    def __init__(self, path: str | Path, info: dict | None = None) -> None:
        """``info``: anomaly.json's content, for a run still calibrating (it is written last)."""
        self.folder = RunFolder(Path(path))
        if (info is None and not self.folder.anomaly.is_file()) or not self.folder.anomaly_arrays.is_file():
            raise RunError(f"{str(path)!r} is not a finished anomaly run (no {self.folder.anomaly.name}); "
                           "train one with 'flowmaps train --task anomaly --data FOLDER'")
        self.info = info if info is not None else json.loads(self.folder.anomaly.read_text())
        arrays = load_file(str(self.folder.anomaly_arrays))
        self.gaussians = {p: ShrunkGaussian.from_arrays({"mean": arrays[f"{p}.mean"], "root_inv": arrays[f"{p}.root_inv"]})
                          for p in PARTS}
        self.position_mean = arrays["local.position_mean"]  # [C, H, W]
        self.normal_pooled = arrays["normal.pooled"]  # [n, 1392], the pictures the maps trained on
        self.patch_bank = arrays["normal.patches"]  # [PATCH_BANK, 152], centred position features
        self._runs: dict[str, Run] = {}
        self._extractor: PictureFeatures | None = None

    @property
    def size(self) -> int:
        return int(self.info["size"])

    def run(self, part: str) -> Run:
        if part not in self._runs:
            self._runs[part] = load_run(self.folder.feature_run(part))
        return self._runs[part]

    def extractor(self) -> PictureFeatures:
        if self._extractor is None:
            self._extractor = PictureFeatures.load()
            if self._extractor.checksum != self.info["checksum"]:
                raise RunError(f"{self.folder.path}: trained with {EXTRACTOR} weights {self.info['checksum']}, "
                               f"installed {self._extractor.checksum}; reinstall flowmaps[features] at the trained version")
        return self._extractor

    # -- scores ---------------------------------------------------------------------------------
    def _map_scores(self, part: str, whitened: np.ndarray, seed: int) -> np.ndarray:
        run = self.run(part)
        x = run.from_data(torch.from_numpy(whitened))
        return anomaly_scores(run.fm, x, run.sigma, SCORE_SETTINGS[part], batch_size=4096, seed=seed).double().numpy()

    def raw_scores(self, pooled: np.ndarray, local: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(global [B], local [B] (:func:`top_mean` of the positions'), heat maps [B, H, W]) of the
        features of B pictures: the two maps' denoising errors, uncalibrated."""
        g = self._map_scores("global", self.gaussians["global"].whiten(pooled), seed)
        b, _, h, w = local.shape
        centred = _positions(local.astype(np.float32) - self.position_mean[None])
        heat = self._map_scores("local", self.gaussians["local"].whiten(centred), seed).reshape(b, h, w)
        return g, top_mean(heat), heat

    def combine(self, g: np.ndarray, loc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(score, global z, local z) [B]: each part's log-score as a z-score of the held-out
        normal pictures', and their mean."""
        cal = self.info["calibration"]
        zg = (np.log(g) - cal["global"]["mean"]) / cal["global"]["std"]
        zl = (np.log(loc) - cal["local"]["mean"]) / cal["local"]["std"]
        return (zg + zl) / 2, zg, zl

    def baselines(self, pooled: np.ndarray, local: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
        """Every baseline's score [B] of B pictures' features (:mod:`flowmaps.metrics.outliers`),
        fitted on the pictures the maps trained on."""
        out = {name: np.asarray(fit(self.normal_pooled.astype(np.float64), seed)(pooled.astype(np.float64)))
               for name, fit in BASELINES.items()}
        b, _, h, w = local.shape
        centred = _positions(local.astype(np.float32) - self.position_mean[None])
        out["gaussian-local"] = top_mean(self.gaussians["local"].mahalanobis(centred).reshape(b, h, w))
        out["knn-local"] = top_mean(nearest_distance(centred, self.patch_bank).reshape(b, h, w))
        return out

    def score(self, images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
        """Scores of uint8 pictures [B, C, S, S] (S: :attr:`size`): ``score`` [B] (larger = less
        like the normal pictures), ``flagged`` [B] (above every held-out normal picture),
        ``global``/``local`` [B] (z-scores), ``heat`` [B, H, W] (the local map's score per
        position) and each baseline's score [B] (on the pooled features)."""
        pooled, local = self.extractor()(images, self.size)
        g, loc, heat = self.raw_scores(pooled, local, seed)
        score, zg, zl = self.combine(g, loc)
        out = {"score": score, "flagged": score > self.info["threshold"], "global": zg, "local": zl, "heat": heat}
        return {**out, **self.baselines(pooled, local, seed)}


def train_anomaly(data: str | Path, out: str | Path, minutes: float | None = None, seed: int = 0,
                  log: Callable[[str], None] = print) -> AnomalyModel:
    """Train an anomaly model on the normal pictures in the folder ``data`` within ``minutes``
    (reading and feature extraction included) and return it from the run folder ``out`` (new).
    Everything is checked, the extra, the folder and the pictures, before anything is written."""
    start = time.monotonic()
    _check_new(out, minutes)
    extractor = PictureFeatures.load()
    pictures = read_pictures(data, minimum=MIN_PICTURES)
    return fit_anomaly(pictures, out, minutes, seed, log, start, extractor=extractor)


def _check_new(out: str | Path, minutes: float | None) -> None:
    if minutes is not None and not minutes > 0:
        raise UsageError(f"--minutes must be positive, got {minutes}")
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(p != RunFolder(path).lock for p in path.iterdir())):
        raise UsageError(f"--out {str(path)!r} exists and is not an empty folder; choose a new folder")


def fit_anomaly(pictures: Pictures, out: str | Path, minutes: float | None = None, seed: int = 0,
                log: Callable[[str], None] = print, start: float | None = None, size: int | None = None,
                extractor: PictureFeatures | None = None) -> AnomalyModel:
    """:func:`train_anomaly` on pictures already read (uint8 [N, C, H, W] of any square size:
    the network sees them at ``size``, default :func:`feature_size` of their side); ``start``:
    the monotonic time the budget counts from (default now); ``extractor``: the feature network
    if already loaded."""
    start = time.monotonic() if start is None else start
    _check_new(out, minutes)
    budget = 60.0 * (DEFAULT_MINUTES if minutes is None else minutes)
    folder = RunFolder(Path(out))
    extractor = extractor or PictureFeatures.load()
    n, side = len(pictures.images), pictures.images.shape[-1]
    if n < MIN_PICTURES:
        raise DataError(f"{n} pictures; an anomaly model needs at least {MIN_PICTURES} normal ones (a few hundred work best)")
    size = size or (side if side in (112, 224) else feature_size(side))
    fit, cal = _split(n, seed)
    log(f"flowmaps: {n} normal pictures from {str(pictures.root)!r}: {len(fit)} to train on, {len(cal)} held out to "
        f"calibrate; {EXTRACTOR} features at {size} x {size}")
    pooled, local = extractor(pictures.images, size)
    gauss = ShrunkGaussian.fit(pooled[fit])
    position_mean = local[fit].astype(np.float32).mean(0)
    vectors = _positions(local[fit].astype(np.float32) - position_mean[None])
    pick = np.random.default_rng(seed).permutation(len(vectors))[:LOCAL_VECTORS]
    local_gauss = ShrunkGaussian.fit(vectors[pick])
    folder.features.mkdir(parents=True, exist_ok=True)
    paths = {"global": folder.features / "global.npy", "local": folder.features / "local.npy"}
    np.save(paths["global"], gauss.whiten(pooled[fit]))
    np.save(paths["local"], local_gauss.whiten(vectors[pick]))
    extraction = time.monotonic() - start
    log(f"flowmaps: features took {extraction:.0f} s; training the global and the local map in what is left")
    for i, part in enumerate(PARTS):
        # what is left, less a reserve for scoring the held-out pictures (a fifth of the
        # features' time) and 5 s per map still to train for its start and final checkpoint,
        # shared by those maps (BUDGET_SHARES): the second map gets what the first left
        left = budget - (time.monotonic() - start) - 0.2 * extraction - 5.0 * (len(PARTS) - i)
        share = BUDGET_SHARES[part] / sum(BUDGET_SHARES[q] for q in PARTS[i:])
        _train_map(paths[part], folder.feature_run(part), max(left * share, 6.0) / 60.0, seed, MAP_SETTINGS[part])
    arrays = {"global.mean": gauss.mean, "global.root_inv": gauss.root_inv, "local.mean": local_gauss.mean,
              "local.root_inv": local_gauss.root_inv, "local.position_mean": position_mean,
              "normal.pooled": pooled[fit].astype(np.float32),
              "normal.patches": vectors[np.random.default_rng(seed + 1).permutation(len(vectors))[:PATCH_BANK]]}
    tmp = folder.anomaly_arrays.with_name(folder.anomaly_arrays.name + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    tmp.replace(folder.anomaly_arrays)
    info = {"extractor": EXTRACTOR, "checksum": extractor.checksum, "size": size, "data": str(pictures.root),
            "pictures": n, "train": [pictures.names[i] for i in fit], "calibration_pictures": [pictures.names[i] for i in cal],
            "seed": seed, "minutes": budget / 60.0}
    # the calibration scores the held-out pictures with the maps; anomaly.json, written last,
    # marks a finished run
    model = AnomalyModel(folder.path, info)
    g, loc, _ = model.raw_scores(pooled[cal], local[cal], seed)
    info["calibration"] = {p: {"mean": float(np.log(v).mean()), "std": float(max(np.log(v).std(), 1e-6))}
                           for p, v in (("global", g), ("local", loc))}
    score, _, _ = model.combine(g, loc)
    info["threshold"] = float(score.max())
    info["calibration_scores"] = [float(s) for s in score]
    info["seconds"] = round(time.monotonic() - start, 1)
    write_text_atomic(folder.anomaly, json.dumps(info, indent=2))
    log(f"flowmaps: trained in {info['seconds']:.0f} s; a picture scoring above {info['threshold']:.2f} (the largest "
        f"of the {len(cal)} held-out normal pictures) is flagged")
    return AnomalyModel(folder.path)


def heatmap_figure(pictures: Pictures, result: dict[str, np.ndarray], out: Path, count: int = HEATMAP_COUNT) -> list[int]:
    """A PNG of the ``count`` highest-scoring pictures, each above its heat map overlaid (the
    local map's score per position, upsampled); returns their indices, highest first."""
    from .plots import plt, save_figure  # plots sets the Agg backend before pyplot loads

    order = [int(i) for i in np.argsort(-result["score"], kind="stable")[:count]]
    heat = result["heat"]
    lo, hi = np.percentile(np.log(heat), [50, 99.9])
    fig, axes = plt.subplots(2, len(order), figsize=(2.4 * len(order), 5.0), squeeze=False)
    names = pictures.names
    for col, i in enumerate(order):
        img = pictures.images[i].transpose(1, 2, 0)
        h = torch.from_numpy(np.log(heat[i]))[None, None].float()
        up = torch.nn.functional.interpolate(h, size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
        axes[0, col].imshow(img)
        axes[0, col].set_title(f"{names[i][-22:]}\nscore {result['score'][i]:.2f}", fontsize=8)
        axes[1, col].imshow(img)
        axes[1, col].imshow(up, cmap="jet", alpha=0.45, vmin=lo, vmax=hi)
        axes[1, col].set_title("where (local map)", fontsize=8)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out, dpi=90)
    return order


def score_summary(result: dict[str, np.ndarray], anomalous: np.ndarray) -> dict[str, float]:
    """AUROC of the run's score, its two parts and every baseline, for known ``anomalous`` [N]."""
    if anomalous.all() or not anomalous.any():
        return {}
    names = ["score", "global", "local", *BASELINES, *LOCAL_BASELINES]
    return {k: auroc(result[k], anomalous) for k in names if not np.isnan(result[k]).any() and math.isfinite(float(result[k].sum()))}
