"""Data kinds: everything flowmaps does differently for points, the checkerboard, sets with a
known flow map, arrays, sequences and images, in one class each.

A kind says which metrics score it by default and which one compares weights quickly
(:mod:`flowmaps.metrics.registry`), what samples are compared with, how samples are saved as
pictures (evaluation grids, ``flowmaps sample`` / ``edit`` / ``decode`` PNGs), how real data are
shown in the report, how the audit sees items, whether training ends with an audit, and which
network autoconfig gives it. :func:`data_kind` picks the kind of a run from its config and item
shape; adding a kind is one class here (and in :data:`KINDS`) plus its tests.

Time convention as everywhere: samples are the map's outputs at t = 1 (data).
"""
from __future__ import annotations

import io
import math
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

from .config import Config
from .data.arrays import DecodedView, Normalization
from .data.toy2d import gaussian_problem, gmm_problem
from .errors import ConfigError, InputError
from .external import load_decoder
from .inputs import save_png_grid
from .metrics.fid import sha1_of
from .metrics.registry import METRICS
from .recipes import dit_net, points_mlp, unet_net
from .run_folder import RunFolder

PLOTTED_POINTS = 20000
"""Points kept per (solver, N) for the evaluation's scatter plots."""
PLOTTED_ITEMS = 10
"""Images or arrays kept per (solver, N) for the evaluation's picture rows."""


class DataKind(ABC):
    """The behaviour of one kind of data, for a run's ``cfg`` and item ``shape`` (``normalization``:
    array data's per-channel normalisation, undone before scoring)."""

    tags: ClassVar[tuple[str, ...]]
    """What metrics' ``kinds`` are matched against (:meth:`flowmaps.metrics.registry.Metric.serves`)."""
    quick_steps: ClassVar[tuple[int, ...]] = (1,)
    """The step counts EMA selection averages its quick metric over."""
    audit_vectors: ClassVar[bool] = True
    """The audit compares items in the model's coordinates (else in a feature network's)."""
    row_items: ClassVar[int | None] = 16
    """Items a row of an inputs-over-results picture shows (None: all, as a scatter plot does)."""

    def __init__(self, cfg: Config, shape: tuple[int, ...], normalization: Normalization | None = None) -> None:
        self.cfg, self.shape, self.normalization = cfg, tuple(shape), normalization

    @classmethod
    @abstractmethod
    def claims(cls, cfg: Config, shape: tuple[int, ...]) -> bool:
        """Whether a run on ``cfg.data`` with items of ``shape`` is of this kind."""

    @abstractmethod
    def default_metrics(self) -> list[str]:
        """The metrics of ``eval.metrics: [auto]``, in the order of the results table."""

    def quick_metric(self) -> tuple[str, int]:
        """(metric, samples) EMA selection compares weights on: the first quick default metric,
        else the sliced W2 distance in pixel space."""
        for name in self.default_metrics():
            m = METRICS[name]
            if m.quick:
                return name, min(self.cfg.eval.num_samples, m.quick_samples)
        return "pixel_sliced_w2", min(self.cfg.eval.num_samples, METRICS["pixel_sliced_w2"].quick_samples)

    @property
    def plotted(self) -> int:
        """Samples kept per (solver, N) for the evaluation's pictures."""
        return PLOTTED_POINTS if len(self.shape) == 1 else PLOTTED_ITEMS

    def scored(self, x: Tensor) -> Tensor:
        """Samples [n, ...] from the model's scale to the scale metrics score them in."""
        return x

    def reference(self, source: Any, n: int) -> Tensor | None:
        """What evaluation compares samples with, in the scored scale (None: the metrics draw
        their own, as image metrics do)."""
        return None

    def quick_reference(self, source: Any, n: int, seed: int) -> Tensor:
        """What EMA selection compares ``n`` samples with, in the model's scale."""
        return source.reference(max(n, 512), seed)

    def exact_map(self, sigma: float) -> Callable[[Tensor], Tensor] | None:
        """The exact flow map from noise (scaled by sigma) [n, D] to data, where it is known."""
        return None

    def decoder_view(self, source: Any) -> Callable[[str], Any] | None:
        """A factory of the view image metrics see the samples through (array data), or None."""
        return None

    def save_grids(self, rows: dict[str, dict[int, Tensor]], folder: RunFolder, tag: str,
                   reference: Tensor | None) -> None:
        """The evaluation's pictures: ``rows`` maps a solver to {N: samples} (the same noise at
        every N) in the scored scale; written as ``folder.samples(tag, ...)`` (none by default)."""
        return None

    def draw(self, rows: dict[str, Tensor], out: Path, steps: int = 1, square: bool = True) -> None:
        """One PNG of labelled rows of samples or inputs [k, ...] in the data's scale (``steps``:
        the N they were drawn with; ``square``: a single row of images wraps into a square grid)."""
        raise InputError(f"cannot draw items of shape {list(self.shape)} as a PNG; use a .npy output")

    def real_data_png(self, source: Any) -> bytes | None:
        """A picture of real training data for the report, or None."""
        return None

    def audited_after_training(self, source: Any) -> bool:
        """Whether an audit is cheap enough to end training (given held-out data)."""
        return True

    @abstractmethod
    def network(self, cpu: bool) -> tuple[dict[str, Any], str]:
        """(the ``net`` config autoconfig picks for this data on a CPU or a GPU, why)."""


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _image_row_png(x: Tensor) -> bytes:
    """Items [k, C, H, W] in [-1, 1] as a grid of 16 a row, titled "real data"."""
    import matplotlib.pyplot as plt

    from .plots import image_grid

    grid = image_grid(x, 16).numpy()
    fig, ax = plt.subplots(figsize=(12, 1.8))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray" if grid.shape[-1] == 1 else None)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("real data")
    fig.tight_layout()
    return _figure_png(fig)


def _points_network(dim: int) -> tuple[dict[str, Any], str]:
    """The MLP for items of ``dim`` coordinates (points, flat arrays), and why."""
    return points_mlp(dim), f"{dim}-dimensional items: the points MLP"


class Points(DataKind):
    """Points [D]: a table's rows or a named low-dimensional set, scored by sample distances
    against reference draws in the data's coordinates."""

    tags = ("points",)
    quick_steps = (1, 4)
    row_items = None

    @classmethod
    def claims(cls, cfg: Config, shape: tuple[int, ...]) -> bool:
        return len(shape) == 1

    def default_metrics(self) -> list[str]:
        return ["w2", "sliced_w2", "energy"]

    def reference(self, source: Any, n: int) -> Tensor | None:
        return None if source is None else source.reference(min(n, 100_000), self.cfg.seed + 1)

    def quick_reference(self, source: Any, n: int, seed: int) -> Tensor:
        return source.reference(min(n * 2, 100_000), seed)

    def limit(self, reference: Tensor | None) -> float | None:
        """The half-width of 2-D plots: 1.1 x the reference's extent (None: automatic)."""
        return float(reference.abs().max()) * 1.1 if reference is not None else None

    def save_grids(self, rows: dict[str, dict[int, Tensor]], folder: RunFolder, tag: str,
                   reference: Tensor | None) -> None:
        if self.shape == (2,):
            from .plots import plot_2d_grid

            plot_2d_grid(rows, folder.samples(tag), lim=self.limit(reference))

    def draw(self, rows: dict[str, Tensor], out: Path, steps: int = 1, square: bool = True) -> None:
        if self.shape != (2,):
            return super().draw(rows, out, steps)
        from .plots import plot_2d_grid

        plot_2d_grid({k: {steps: v} for k, v in rows.items()}, out, lim=self.limit(None))

    def real_data_png(self, source: Any) -> bytes | None:
        if self.shape != (2,):
            return None
        import matplotlib.pyplot as plt

        x = source.reference(20000, self.cfg.seed + 5)
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
        ax.scatter(x[:, 0], x[:, 1], s=0.3, alpha=0.4, color="k", rasterized=True)
        lim = self.limit(x)
        ax.set_xlim(-lim, lim)  # type: ignore[arg-type]
        ax.set_ylim(-lim, lim)  # type: ignore[arg-type]
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("real data")
        fig.tight_layout()
        return _figure_png(fig)

    def network(self, cpu: bool) -> tuple[dict[str, Any], str]:
        return _points_network(self.shape[0])


class Checker(Points):
    """The paper's checkerboard: a 2-D density known in closed form, so samples are scored by
    their KL divergence to it (and plotted on its square)."""

    tags = ("checker", "points")

    @classmethod
    def claims(cls, cfg: Config, shape: tuple[int, ...]) -> bool:
        return cfg.data.name == "checker"

    def default_metrics(self) -> list[str]:
        return ["kl", "sliced_w2"]

    def limit(self, reference: Tensor | None) -> float | None:
        return 1.2


class KnownMap(Points):
    """A Gaussian or a Gaussian mixture (unconditional): the exact flow map is known (affine, or an
    accurate ODE solve of the closed-form velocity), so samples are scored against it."""

    tags = ("known_map", "points")

    @classmethod
    def claims(cls, cfg: Config, shape: tuple[int, ...]) -> bool:
        return cfg.data.name in ("gaussian", "gmm") and not cfg.data.conditional

    def default_metrics(self) -> list[str]:
        return ["map_mse", "w2", "sliced_w2", "energy"]

    def exact_map(self, sigma: float) -> Callable[[Tensor], Tensor] | None:
        gaussian = self.cfg.data.name == "gaussian"
        prob: Any = gaussian_problem(sigma) if gaussian else gmm_problem(sigma)
        prob64 = (type(prob)(prob.mean.double(), prob.var.double(), sigma) if gaussian else
                  type(prob)(prob.weights.double(), prob.means.double(), prob.vars.double(), sigma))

        def exact(x0: Tensor) -> Tensor:
            x = x0.double()
            z, o = torch.zeros(x.shape[0], dtype=torch.float64), torch.ones(x.shape[0], dtype=torch.float64)
            return prob64.X(x, z, o)

        return exact


class Arrays(DataKind):
    """Arrays from files (latents [C, H, W], flat vectors; sequences [L, C] are :class:`Sequences`):
    scored in their own scale (the model sees them normalised per channel), as images through
    ``data.decoder`` when one is given."""

    tags = ("arrays",)

    @classmethod
    def claims(cls, cfg: Config, shape: tuple[int, ...]) -> bool:
        return cfg.data.name == "array"

    def default_metrics(self) -> list[str]:
        return ["fd_array", "sliced_w2_array"]

    def scored(self, x: Tensor) -> Tensor:
        return x if self.normalization is None else self.normalization.invert(x)

    def reference(self, source: Any, n: int) -> Tensor | None:
        if source is None or self.normalization is None:
            return None
        return self.normalization.invert(source.reference(min(n, 20_000), self.cfg.seed + 1))

    def decoder_view(self, source: Any) -> Callable[[str], Any] | None:
        def view(metric: str) -> Any:
            cfg = self.cfg
            if not cfg.data.decoder:
                raise ConfigError(f"metric {metric} on array data needs data.decoder: a TorchScript or torch.export "
                                  "file mapping arrays to images in [-1, 1]; or use fd_array / sliced_w2_array")
            device = "cuda" if torch.cuda.is_available() else "cpu"
            decode = load_decoder(cfg.data.decoder, self.shape, device)
            return DecodedView(source, decode, f"decoder {sha1_of(Path(cfg.data.decoder))}", min(cfg.eval.batch_size, 128))

        return view

    def save_grids(self, rows: dict[str, dict[int, Tensor]], folder: RunFolder, tag: str,
                   reference: Tensor | None) -> None:
        for solver, per_n in rows.items():
            try:
                self.draw({f"N = {k}": v[:6] for k, v in per_n.items()}, folder.samples(tag, _file_part(solver)))
            except InputError:  # image-shaped arrays without a decoder: no picture
                pass

    def draw(self, rows: dict[str, Tensor], out: Path, steps: int = 1, square: bool = True) -> None:
        """Through ``data.decoder`` into an image grid (16 items a row at most)."""
        if not self.cfg.data.decoder:
            raise InputError(f"cannot draw arrays of shape {list(self.shape)} without a decoder: set data.decoder "
                             "(arrays -> images) or write a .npy")
        decode = load_decoder(self.cfg.data.decoder, self.shape)
        images = torch.cat([decode(v[:16]) for v in rows.values()])
        first = next(iter(rows.values()))
        save_png_grid(images, out, min(16, first.shape[0]) if len(rows) > 1 else int(math.ceil(math.sqrt(images.shape[0]))))

    def real_data_png(self, source: Any) -> bytes | None:
        """Arrays of image shape [C, H, W] through ``data.decoder``, or as they are (normalised)
        when they have 1 or 3 channels; else none."""
        if len(self.shape) != 3:
            return None
        x = source.reference(32, self.cfg.seed + 5)
        if self.cfg.data.decoder:
            norm = getattr(source, "normalization", None)
            x = load_decoder(self.cfg.data.decoder, self.shape)(norm.invert(x) if norm is not None else x)
        elif self.shape[0] not in (1, 3):
            return None
        return _image_row_png(x)

    def network(self, cpu: bool) -> tuple[dict[str, Any], str]:
        return _points_network(self.shape[0]) if len(self.shape) == 1 else dit_net(self.shape, cpu)


class Sequences(Arrays):
    """Arrays of sequences [L, C] (time series, signals): drawn as line plots, one panel per item
    and a line per channel (through ``data.decoder`` instead, when one is given)."""

    @classmethod
    def claims(cls, cfg: Config, shape: tuple[int, ...]) -> bool:
        return cfg.data.name == "array" and len(shape) == 2

    def draw(self, rows: dict[str, Tensor], out: Path, steps: int = 1, square: bool = True) -> None:
        if self.cfg.data.decoder:
            return super().draw(rows, out, steps, square)
        from .plots import plot_sequences

        tmp = out.with_name(out.name + f".tmp{os.getpid()}.png")
        plot_sequences(rows, tmp)
        os.replace(tmp, out)


class Images(DataKind):
    """Images [C, H, W] in [-1, 1]: scored by FID (Inception) or, on the labelled sets the project
    classifier knows, by its Frechet distance (and class accuracy for a class-conditional run)."""

    tags = ("images",)
    audit_vectors = False
    LABELLED = ("digits", "mnist", "fashion-mnist")
    """The sets fd_classifier scores by default (a classifier trains on them in seconds)."""

    @classmethod
    def claims(cls, cfg: Config, shape: tuple[int, ...]) -> bool:
        return len(shape) == 3

    def default_metrics(self) -> list[str]:
        if self.cfg.data.name in self.LABELLED:
            return ["fd_classifier", "class_accuracy"] if self.cfg.data.conditional else ["fd_classifier"]
        return ["fid"]

    def save_grids(self, rows: dict[str, dict[int, Tensor]], folder: RunFolder, tag: str,
                   reference: Tensor | None) -> None:
        from .plots import plot_image_rows

        for solver, per_n in rows.items():
            plot_image_rows({f"N = {k}": v for k, v in per_n.items()}, folder.samples(tag, _file_part(solver)))

    def draw(self, rows: dict[str, Tensor], out: Path, steps: int = 1, square: bool = True) -> None:
        first = next(iter(rows.values()))
        nrow = int(math.ceil(math.sqrt(first.shape[0]))) if len(rows) == 1 and square else first.shape[0]
        save_png_grid(torch.cat(list(rows.values())), out, nrow)

    def real_data_png(self, source: Any) -> bytes | None:
        return _image_row_png(source.reference(32, self.cfg.seed + 5))

    def audited_after_training(self, source: Any) -> bool:
        """Labelled sets only: the project classifier's features; Inception on a CPU takes minutes
        (``flowmaps audit`` does it on request)."""
        return bool(getattr(source, "num_classes", 0))

    def network(self, cpu: bool, channels: int = 32) -> tuple[dict[str, Any], str]:
        return unet_net(self.shape[1], cpu, channels)


def _file_part(row: str) -> str:
    """A results-table row name (``map, guidance 2``) as part of a file name (``map-guidance2``)."""
    return row.replace(", guidance ", "-guidance")


KINDS: tuple[type[DataKind], ...] = (Checker, KnownMap, Sequences, Arrays, Points, Images)
"""Every kind, the most specific first: a run is of the first that claims it."""


def data_kind(cfg: Config, shape: tuple[int, ...], normalization: Normalization | None = None) -> DataKind:
    """The kind of a run on ``cfg.data`` with items of ``shape``."""
    for kind in KINDS:
        if kind.claims(cfg, tuple(shape)):
            return kind(cfg, tuple(shape), normalization)
    raise InputError(f"flowmaps has no data kind for items of shape {list(shape)} ({cfg.data.name}): "
                     "give points [N, D], images [N, C, H, W] or arrays (data.name=array)")


def kind_for_data(name: str, shape: tuple[int, ...]) -> DataKind:
    """The kind of ``data.name`` ``name`` with items of ``shape``, before a run's config exists
    (autoconfig: which network to pick)."""
    cfg = Config()
    cfg.data.name = name
    return data_kind(cfg, shape)
