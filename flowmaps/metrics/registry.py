"""Every metric in one registry: its name, the data kinds it serves, how it scores samples, the
score of a perfect sampler on the same estimator (its floor), and whether it is quick enough to
compare weights (EMA selection).

Evaluation (:mod:`flowmaps.evaluate`), EMA selection (:mod:`flowmaps.ema_selection`) and the
report read metrics only through :data:`METRICS`. A data kind (:mod:`flowmaps.kinds`) names its
default metrics and the tags a metric's ``kinds`` are matched against. Provenance (weights
checksums, where a reference came from) comes back with each :class:`Score`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import Tensor

from ..errors import ConfigError
from .distances import array_frechet_distance, energy_distance, map_mse, sliced_wasserstein2, wasserstein2
from .images import class_accuracy, image_metric
from .kl import checker_kl, checker_kl_floor


@dataclass(frozen=True)
class Score:
    """values: {name: value} (a metric may give more than one, e.g. map_mse and map_rel_err);
    provenance: facts about how they were computed; details: anything per item or per class
    (class_accuracy's per-class accuracies)."""

    values: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)
    details: Any = None


@dataclass
class Scoring:
    """What metrics compare samples with, for one evaluation.

    cfg: the run's config (caches, Inception weights, FID reference); source: its training data
    (None when unavailable); reference: reference items [m, ...] in the scale samples are scored
    in (points and arrays); exact: the exact map's outputs [n, D] for the same noise (map_mse);
    labels: the classes asked for [n] (class-conditional runs); fresh: n -> exact data drawn
    afresh in the scored scale (for floors); decoder_view: array data's view through
    ``data.decoder`` (:class:`flowmaps.data.arrays.DecodedView`), built on first use from the
    name of the metric that needs it."""

    cfg: Any
    source: Any = None
    reference: Tensor | None = None
    exact: Tensor | None = None
    labels: Tensor | None = None
    fresh: Callable[[int], Tensor] | None = None
    decoder_view: Callable[[str], Any] | None = None
    _view: Any = field(default=None, repr=False)
    _fresh: dict[int, Tensor] = field(default_factory=dict, repr=False)

    def images(self, x: Tensor, metric: str) -> tuple[Tensor, Any]:
        """(samples x as images [n, C, H, W] in [-1, 1], the source their reference comes from)."""
        if self.decoder_view is None:
            return x, self.source
        if self._view is None:
            self._view = self.decoder_view(metric)
        return self._view.images(x), self._view

    def fresh_data(self, n: int) -> Tensor | None:
        """n exact data items drawn afresh (one draw per n, shared by the floors)."""
        if self.fresh is None:
            return None
        if n not in self._fresh:
            self._fresh[n] = self.fresh(n)
        return self._fresh[n]


@dataclass(frozen=True)
class Metric:
    """name; kinds: the data-kind tags it serves (:mod:`flowmaps.kinds`); needs: what the data must
    be, for the one-line error on any other; score: (samples [n, ...] in the scored scale,
    scoring) -> :class:`Score`; floor: (scoring, n) -> a perfect sampler's score, or None;
    quick_samples: samples it needs to compare weights (0: too slow for that); needs_reference:
    whether it reads ``Scoring.reference``; higher_is_better: False for every distance.
    EMA selection takes the lowest score, so a quick metric is lower-is-better."""

    name: str
    kinds: tuple[str, ...]
    needs: str
    score: Callable[[Tensor, Scoring], Score]
    floor: Callable[[Scoring, int], float | None] | None = None
    quick_samples: int = 0
    needs_reference: bool = False
    higher_is_better: bool = False

    def serves(self, tags: tuple[str, ...]) -> bool:
        return bool(set(self.kinds) & set(tags))

    @property
    def quick(self) -> bool:
        return self.quick_samples > 0


def _kl(x: Tensor, s: Scoring) -> Score:
    return Score({"kl": checker_kl(x)})


def _map_mse(x: Tensor, s: Scoring) -> Score:
    if s.exact is None:
        raise ConfigError("metric map_mse needs the exact map: an unconditional run on data.name gaussian or gmm")
    mse = map_mse(x, s.exact)
    # relative to the data's scale: sqrt(E|X - X*|^2 / E|x1 - E x1|^2)
    return Score({"map_mse": mse, "map_rel_err": (mse / float(s.exact.double().var(0).sum())) ** 0.5})


def _distance(name: str, fn: Callable[[Tensor, Tensor], float]) -> tuple[Callable[[Tensor, Scoring], Score],
                                                                         Callable[[Scoring, int], float | None]]:
    """(score, floor) of a distance to ``Scoring.reference``."""
    def score(x: Tensor, s: Scoring) -> Score:
        if s.reference is None:
            raise ConfigError(f"metric {name} needs the training data as a reference: check data.path")
        return Score({name: fn(x, s.reference)})

    def floor(s: Scoring, n: int) -> float | None:
        fresh = s.fresh_data(n)
        return None if fresh is None or s.reference is None else fn(fresh, s.reference)

    return score, floor


def _image(name: str) -> Callable[[Tensor, Scoring], Score]:
    def score(x: Tensor, s: Scoring) -> Score:
        images, source = s.images(x, name)
        values, facts = image_metric(name, images, s.cfg, source)
        return Score(values, facts)

    return score


def _fd_classifier_floor(s: Scoring, n: int) -> float | None:
    """Real images (a random half of the set at most) against the whole set."""
    src = s.source
    if src is None or not getattr(src, "num_classes", 0):
        return None
    real = src.reference(min(n, getattr(src, "size", 2 * n) // 2), s.cfg.seed + 11)
    return image_metric("fd_classifier", real, s.cfg, src)[0]["fd_classifier"]


def _class_accuracy(x: Tensor, s: Scoring) -> Score:
    if s.labels is None:
        raise ConfigError("metric class_accuracy needs a class-conditional run (data.conditional=true)")
    mean, per_class, facts = class_accuracy(x, s.labels, s.cfg, s.source)
    return Score({"class_accuracy": mean}, facts, per_class)


def _pixel_sliced_w2(x: Tensor, s: Scoring) -> Score:
    if s.reference is None:
        raise ConfigError("metric pixel_sliced_w2 needs the training data as a reference: check data.path")
    return Score({"pixel_sliced_w2": sliced_wasserstein2(x.flatten(1), s.reference.flatten(1))})


_w2, _w2_floor = _distance("w2", wasserstein2)
_sw2, _sw2_floor = _distance("sliced_w2", sliced_wasserstein2)
_energy, _energy_floor = _distance("energy", energy_distance)
_fd_array, _fd_array_floor = _distance("fd_array", array_frechet_distance)
_sw2_array, _sw2_array_floor = _distance("sliced_w2_array", sliced_wasserstein2)
_POINTS = "low-dimensional data"
_ARRAYS = "array data (data.name=array)"
_IMAGES = "images (or array data with data.decoder)"

METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("kl", ("checker",), "the checkerboard (data.name=checker)", _kl,
           lambda s, n: checker_kl_floor(n, repeats=3)[0], quick_samples=64000),
    Metric("map_mse", ("known_map",), "an unconditional run on data.name gaussian or gmm", _map_mse, quick_samples=64000),
    Metric("w2", ("points",), _POINTS, _w2, _w2_floor, 64000, True),
    Metric("sliced_w2", ("points",), _POINTS, _sw2, _sw2_floor, 64000, True),
    Metric("energy", ("points",), _POINTS, _energy, _energy_floor, 64000, True),
    Metric("fd_array", ("arrays",), _ARRAYS, _fd_array, _fd_array_floor, needs_reference=True),
    Metric("sliced_w2_array", ("arrays",), _ARRAYS, _sw2_array, _sw2_array_floor, needs_reference=True),
    Metric("fid", ("images", "arrays"), _IMAGES, _image("fid")),
    Metric("kid", ("images", "arrays"), _IMAGES, _image("kid")),
    Metric("fd_classifier", ("images",), "a labelled image set (digits, mnist, fashion-mnist, cifar10)",
           _image("fd_classifier"), _fd_classifier_floor, quick_samples=1000),
    Metric("class_accuracy", ("images",), "a labelled image set, class-conditional", _class_accuracy,
           higher_is_better=True),
    Metric("pixel_sliced_w2", ("images", "arrays"), "images or arrays", _pixel_sliced_w2, quick_samples=256,
           needs_reference=True),
)}
"""Every metric by name. Points are scored in the data's coordinates (a table's standardised
columns), arrays in their own scale; fid and kid see array data through ``data.decoder``."""


def metric_for(name: str, tags: tuple[str, ...], data: str) -> Metric:
    """The registry entry ``name``, checked against a data kind's ``tags``; a one-line error for
    an unknown metric or one that does not serve ``data``."""
    m = METRICS.get(name)
    if m is None:
        served = [k for k, v in METRICS.items() if v.serves(tags)]
        raise ConfigError(f"unknown metric {name!r} for {data}; choose from {', '.join(served)}")
    if not m.serves(tags):
        raise ConfigError(f"metric {name} needs {m.needs}, not {data}")
    return m
