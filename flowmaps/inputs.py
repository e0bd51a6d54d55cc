"""Read a user's inputs for ``edit``, ``encode``, ``decode`` and ``score``, and write results.

Inputs are tensors [B, *shape] in the run's data scale (images in [-1, 1]):
- a ``.npy`` array [B, *shape] or one item [*shape] (float in the data's scale, or uint8 images
  0..255), the format ``flowmaps sample --out x.npy`` writes;
- a ``.csv`` of points [B, D] (runs on points);
- an image file or a folder of them (image runs): each resized like the training images.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import Tensor

from .data.columns import TableTransform
from .data.images import IMAGE_SUFFIXES, atomic_save, list_images, read_image
from .data.tables import TABLE_SUFFIXES, read_table
from .data.toy2d import load_points
from .errors import InputError
from .train.checkpoint import write_text_atomic


def _need(shape: tuple[int, ...]) -> str:
    return f"[N, {', '.join(map(str, shape))}]"


def read_inputs(path: str | Path, shape: tuple[int, ...], flag: str = "--input",
                table: TableTransform | None = None) -> tuple[Tensor, list[str]]:
    """(inputs [B, *shape] float32, one name per input) from ``path`` for a run with data ``shape``;
    errors name the command-line ``flag`` that gave the path. A table run (``table``, its
    columns) reads a table file by its column names instead: its view [B, C] float64, NaN for an
    empty cell (:meth:`flowmaps.data.columns.TableTransform.parse`)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{flag} {str(p)!r} does not exist")
    if table is not None and (p.suffix.lower() in TABLE_SUFFIXES or p.suffix.lower() == ".npy" and table.plain):
        raw = read_table(p, min_rows=1, what=flag)
        if p.suffix.lower() == ".npy":  # the numbers 'sample --out x.npy' writes: the columns in order
            if len(raw.names) != len(table.columns):
                raise InputError(f"{flag} {str(p)!r} has {len(raw.names)} columns; this run's table has {len(table.columns)}")
            raw.names = table.names
        return table.parse(raw), [str(i) for i in range(len(raw))]
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        if len(shape) != 3:
            raise InputError(f"{flag} {str(p)!r} holds images, but this run's data are {_need(shape)}: give a .npy or .csv")
        files = list_images(p) if p.is_dir() else [p]
        if not files:
            raise InputError(f"{flag} {str(p)!r}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        arr = np.stack([read_image(f, shape[1], shape[0]) for f in files])
        names = [str(f.relative_to(p)) if p.is_dir() else f.name for f in files]
        return torch.from_numpy(arr).float().div_(127.5).sub_(1.0), names
    if p.suffix == ".npy":
        arr = np.load(p)
        if arr.dtype == np.uint8 and len(shape) == 3:
            arr = arr.astype(np.float32) / 127.5 - 1.0
    elif p.suffix == ".csv":
        arr = load_points(p, training=False)[0].numpy()
    else:
        raise InputError(f"{flag} {str(p)!r}: use a .npy or .csv file, an image file or a folder of images")
    if tuple(arr.shape) == shape:
        arr = arr[None]
    if tuple(arr.shape[1:]) != shape:
        raise InputError(f"{flag} {str(p)!r} has shape {list(arr.shape)}; this run needs {_need(shape)}")
    if not np.isfinite(arr).all():
        raise InputError(f"{flag} {str(p)!r} contains NaN or Inf values")
    return torch.as_tensor(np.asarray(arr, dtype=np.float32)), [str(i) for i in range(arr.shape[0])]


def save_npy(x: Tensor | np.ndarray, out: Path) -> None:
    """Write an array atomically (:func:`flowmaps.data.images.atomic_save`)."""
    atomic_save(out, x.numpy() if isinstance(x, Tensor) else x)


def write_csv(out: Path, header: list[str], rows: Iterable[list[Any]]) -> None:
    """A CSV of ``header`` and ``rows`` (``\\n`` line ends), written atomically."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    write_text_atomic(out, buf.getvalue())


def save_csv(x: Tensor, out: Path, names: list[str], labels: Tensor | None = None,
             table: TableTransform | None = None, seed: int = 0) -> None:
    """Rows x [B, D] as a CSV with a header (``names``, then ``label`` when ``labels`` [B] are
    given), written atomically; whole numbers without a decimal point. A table run's view
    (``table``, its columns) is written cell by cell in the input's own format: its levels as
    text, its dates, empty cells, fresh identifiers (seeded by ``seed``)."""
    if table is not None:
        rows = table.rows(x, seed)
        write_csv(out, [*table.names, *(["label"] if labels is not None else [])],
                  ([*r, int(labels[i])] if labels is not None else r for i, r in enumerate(rows)))
        return

    def cells(i: int, row: list[float]) -> list[Any]:
        text = [f"{v:.0f}" if v == round(v) and abs(v) < 1e15 else f"{v:.7g}" for v in row]
        return [*text, int(labels[i])] if labels is not None else text

    write_csv(out, [*names, "label"] if labels is not None else names,
              (cells(i, row) for i, row in enumerate(x.double().numpy().tolist())))


def save_png_grid(x: Tensor, out: Path, nrow: int) -> None:
    """Images [B, C, H, W] in [-1, 1] as one grid PNG, ``nrow`` per row, small images enlarged
    (nearest) to about 512 pixels."""
    import matplotlib.pyplot as plt

    from .plots import image_grid

    grid = image_grid(x, nrow)
    scale = max(1, 512 // max(grid.shape[:2]))
    grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1).numpy()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}.png")
    plt.imsave(tmp, grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray")
    os.replace(tmp, out)


def save_image_folder(x: Tensor, out: Path, names: list[str]) -> None:
    """Images [B, C, H, W] in [-1, 1] as one PNG each under ``out``, named after the inputs."""
    from PIL import Image

    arr = x.detach().cpu().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).numpy()
    for img, name in zip(arr, names):
        path = out / Path(name).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.png")
        Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(tmp)
        os.replace(tmp, path)
