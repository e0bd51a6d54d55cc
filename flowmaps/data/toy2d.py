"""2-D (and low-dimensional) data sets. Every sampler returns float32 points [n, D].
The sets made of components also have labelled forms (:data:`LABELLED_TOY`): (points, the
index of each point's component [n]) for class-conditional training.

The checkerboard is the paper's exactly: uniform on the 8 cells (i + j even) of a 4 x 4 grid
over [-1, 1]^2. "gaussian" and "gmm" have closed-form velocities (:mod:`flowmaps.exact`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from ..exact import ClassMixtureProblem, GaussianMixtureProblem, GaussianProblem
from .tables import check_class_labels, label_column_index, read_csv_table

Sampler2D = Callable[[int, torch.Generator], Tensor]


def checkerboard(n: int, generator: torch.Generator | None = None) -> Tensor:
    """The paper's checkerboard: cells (i, j) of a 4 x 4 grid on [0,1]^2 with i + j even, mapped to [-1,1]^2."""
    cells = torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], dtype=torch.float32)
    k = torch.randint(0, 8, (n,), generator=generator)
    u = torch.rand(n, 2, generator=generator)
    return ((cells[k] + u) / 4.0) * 2.0 - 1.0


def checkerboard_density(x: Tensor) -> Tensor:
    """The analytic checkerboard density at points x [n, 2]: 0.5 on the filled cells, 0 elsewhere."""
    cell = torch.floor((x + 1.0) / 0.5)
    inside = ((x >= -1) & (x <= 1)).all(dim=1)
    filled = (cell.sum(dim=1) % 2 == 0) & inside
    return filled.to(x.dtype) * 0.5


def labelled_eight_gaussians(n: int, generator: torch.Generator | None = None, radius: float = 2.0,
                             std: float = 0.1) -> tuple[Tensor, Tensor]:
    """(points [n, 2], the index of each point's Gaussian [n] in 0..7)."""
    k = torch.randint(0, 8, (n,), generator=generator)
    angles = k.float() * (2 * math.pi / 8)
    centers = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return centers + std * torch.randn(n, 2, generator=generator), k


def eight_gaussians(n: int, generator: torch.Generator | None = None, radius: float = 2.0, std: float = 0.1) -> Tensor:
    return labelled_eight_gaussians(n, generator, radius, std)[0]


def labelled_two_moons(n: int, generator: torch.Generator | None = None, noise: float = 0.05) -> tuple[Tensor, Tensor]:
    """(points [n, 2], which moon [n] in 0..1)."""
    which = torch.randint(0, 2, (n,), generator=generator)
    theta = torch.rand(n, generator=generator) * math.pi
    x = torch.where(which == 0, torch.cos(theta), 1 - torch.cos(theta))
    y = torch.where(which == 0, torch.sin(theta), 0.5 - torch.sin(theta))
    pts = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.5
    return pts + noise * torch.randn(n, 2, generator=generator), which


def two_moons(n: int, generator: torch.Generator | None = None, noise: float = 0.05) -> Tensor:
    return labelled_two_moons(n, generator, noise)[0]


def spirals(n: int, generator: torch.Generator | None = None, noise: float = 0.05) -> Tensor:
    r = torch.sqrt(torch.rand(n, generator=generator)) * 3 * math.pi
    arm = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
    pts = torch.stack([-torch.cos(r) * r, torch.sin(r) * r], dim=1) * arm[:, None] / (3 * math.pi)
    return pts * 1.5 + noise * torch.randn(n, 2, generator=generator)


def pinwheel(n: int, generator: torch.Generator | None = None, arms: int = 5) -> Tensor:
    radial_std, tangential_std, rate = 0.3, 0.1, 0.25
    k = torch.randint(0, arms, (n,), generator=generator)
    feats = torch.randn(n, 2, generator=generator) * torch.tensor([radial_std, tangential_std])
    feats[:, 0] += 1.0
    angle = k.float() * (2 * math.pi / arms) + rate * torch.exp(feats[:, 0])
    rot = torch.stack([torch.cos(angle), -torch.sin(angle), torch.sin(angle), torch.cos(angle)], dim=1).reshape(n, 2, 2)
    return torch.einsum("nij,nj->ni", rot, feats)


def gaussian_problem(sigma: float = 1.0) -> GaussianProblem:
    """An anisotropic 2-D Gaussian with a known affine flow map."""
    return GaussianProblem(torch.tensor([1.0, -0.5]), torch.tensor([0.5, 0.05]), sigma)


def gmm_problem(sigma: float = 1.0) -> GaussianMixtureProblem:
    """A 3-component 2-D Gaussian mixture with a closed-form velocity."""
    return GaussianMixtureProblem(
        torch.tensor([0.3, 0.3, 0.4]),
        torch.tensor([[-1.0, -0.5], [1.0, -0.5], [0.0, 1.0]]),
        torch.tensor([[0.05, 0.05], [0.05, 0.1], [0.1, 0.02]]),
        sigma,
    )


def two_class_problem(sigma: float = 1.0) -> ClassMixtureProblem:
    """Two classes, one 2-D Gaussian each, overlapping a little: closed-form conditional,
    unconditional and guided velocities (the guided-map test problem, App. F.5)."""
    mixture = GaussianMixtureProblem(
        torch.tensor([0.5, 0.5]), torch.tensor([[-0.75, -0.25], [0.75, 0.25]]), torch.tensor([[0.1, 0.1], [0.1, 0.05]]), sigma)
    return ClassMixtureProblem(mixture, torch.arange(2))


def labelled_gmm(n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(points [n, 2], the component of each [n] in 0..2) from :func:`gmm_problem`: the class
    mixture of :class:`flowmaps.exact.ClassMixtureProblem` with one class per component."""
    x, y = ClassMixtureProblem(gmm_problem(), torch.arange(3)).sample_data(n, generator)
    return x.float(), y


def load_points(path: str | Path, label_column: int | None = None,
                training: bool = True) -> tuple[Tensor, Tensor | None]:
    """A user point cloud from .npy or .csv: (points [N, D], labels [N] or None); see :func:`load_table`."""
    return load_table(path, label_column, training)[:2]


def load_table(path: str | Path, label_column: int | None = None,
               training: bool = True) -> tuple[Tensor, Tensor | None, list[str]]:
    """A user point cloud from .npy or .csv (comma-separated, optional header): (points [N, D],
    labels [N] or None, column names [D]: the CSV header's, else ``column 0``, ...).
    ``label_column`` (e.g. -1 for the last) holds integer class labels 0..K-1; it is taken out of
    the points. ``training``: refuse a constant CSV column (not for inputs)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data.path {str(p)!r} does not exist: give a .npy or .csv file of shape [N, D]")
    names: list[str] | None = None
    if p.suffix == ".npy":
        arr = np.load(p)
    elif p.suffix == ".csv":
        arr, names = read_csv_table(p, refuse_constant=training)
    else:
        raise DataError(f"data.path {str(p)!r}: expected a .npy or .csv file")
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise DataError(f"data.path {str(p)!r} holds shape {arr.shape}; expected [N, D] with N >= 2")
    if not np.isfinite(arr).all():
        raise DataError(f"data.path {str(p)!r} contains NaN or Inf values")
    names = names or [f"column {j}" for j in range(arr.shape[1])]
    if label_column is None:
        return torch.as_tensor(arr, dtype=torch.float32), None, names
    j = label_column_index(label_column, arr.shape[1], repr(str(p)))
    labels = arr[:, j]
    check_class_labels(labels, label_column, repr(str(p)))
    points = np.delete(arr, j, axis=1)
    return torch.as_tensor(points, dtype=torch.float32), torch.as_tensor(labels.astype(np.int64)), names[:j] + names[j + 1:]


TOY: dict[str, Sampler2D] = {
    "checker": checkerboard,
    "8gaussians": eight_gaussians,
    "moons": two_moons,
    "spirals": spirals,
    "pinwheel": pinwheel,
    "gaussian": lambda n, g=None: gaussian_problem().sample_data(n, g).float(),
    "gmm": lambda n, g=None: gmm_problem().sample_data(n, g).float(),
    "twoclass": lambda n, g=None: labelled_two_class(n, g)[0],
}

LabelledSampler = Callable[[int, torch.Generator], "tuple[Tensor, Tensor]"]
def labelled_two_class(n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(points [n, 2], class [n] in 0..1) from :func:`two_class_problem`."""
    x, y = two_class_problem().sample_data(n, generator)
    return x.float(), y


LABELLED_TOY: dict[str, tuple[int, LabelledSampler]] = {
    "twoclass": (2, labelled_two_class),
    "8gaussians": (8, labelled_eight_gaussians),
    "moons": (2, labelled_two_moons),
    "gmm": (3, labelled_gmm),
}
"""Name -> (number of classes, sampler of (points, labels)) for the sets with natural classes."""
