"""Image data sets from local files, cached once as memory-mapped uint8 arrays.

Every data set yields images in [-1, 1] as float tensors [B, C, H, W] with integer labels.
Nothing is downloaded: each loader reads the standard published files from a local path and,
when they are missing, says which files it expects where and where they are published.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError, MissingDataError

FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class ImageData:
    """uint8 images [N, C, H, W] (possibly memory-mapped) and int64 labels [N]; ``index`` (optional)
    selects a subset of them without copying (see :meth:`subset`)."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    index: np.ndarray | None = None

    def __len__(self) -> int:
        return self.images.shape[0] if self.index is None else len(self.index)

    def subset(self, index: np.ndarray) -> ImageData:
        """The images at ``index`` (positions in this set), memory-mapped arrays left on disk."""
        index = np.asarray(index, dtype=np.int64)
        return ImageData(self.images, self.labels, self.num_classes, index if self.index is None else self.index[index])

    def all_labels(self) -> np.ndarray:
        """Labels [len(self)] (int64)."""
        return np.asarray(self.labels if self.index is None else self.labels[self.index], dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def batch(self, index: np.ndarray | Tensor, flip: bool = False, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Images [B, C, H, W] scaled to [-1, 1] (float32) and labels [B] for ``index``.

        ``flip``: random horizontal flips (off by default, as the paper).
        """
        idx = np.sort(np.asarray(index)) if isinstance(index, np.ndarray) else np.asarray(index)
        if self.index is not None:
            idx = self.index[idx]
        x = torch.from_numpy(np.ascontiguousarray(self.images[idx])).float().div_(127.5).sub_(1.0)
        y = torch.from_numpy(np.asarray(self.labels[idx], dtype=np.int64))
        if flip:
            mask = torch.rand(x.shape[0], generator=generator) < 0.5
            x[mask] = x[mask].flip(-1)
        return x, y


# -- readers of the published formats ------------------------------------------------------------
def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (MNIST / Fashion-MNIST), gzipped or not."""
    with _open(Path(path)) as f:
        zero, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype_code != 0x08:
            raise DataError(f"{path}: not an unsigned-byte idx file")
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: expected {int(np.prod(dims))} values, found {data.size} (truncated file?)")
    return data.reshape(dims)


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def load_idx_dataset(root: str | Path, name: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST-format images [N, 1, 28, 28] uint8 and labels [N] from ``root``."""
    root = Path(root)
    prefix = "train" if split == "train" else "t10k"
    img, lab = _find(root, f"{prefix}-images-idx3-ubyte"), _find(root, f"{prefix}-labels-idx1-ubyte")
    if img is None or lab is None:
        where = {
            "mnist": "http://yann.lecun.com/exdb/mnist/ (or any mirror)",
            "fashion-mnist": f"Debian's package dataset-fashion-mnist (installs to {FASHION_MNIST_DEBIAN}) "
            "or https://github.com/zalandoresearch/fashion-mnist",
        }[name]
        raise MissingDataError(
            f"{name}: expected {prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz] in "
            f"{str(root)!r}; they are published at {where}. Set data.path to their folder."
        )
    images, labels = read_idx(img), read_idx(lab)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels in {root}")
    return images[:, None], labels.astype(np.int64)


def load_cifar10(root: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from the python pickle batches: images [N, 3, 32, 32] uint8, labels [N]."""
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise MissingDataError(
            f"cifar10: expected {', '.join(names)} in {str(root)!r} (missing {', '.join(missing)}); they are the "
            "'CIFAR-10 python version' at https://www.cs.toronto.edu/~kriz/cifar.html. Set data.path to that folder."
        )
    xs, ys = [], []
    for n in names:
        with open(root / n, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[b"labels"], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def list_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursively), sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _eight_bit(im):  # PIL.Image -> PIL.Image
    """``im`` in an 8-bit mode: 16-bit and 32-bit grey scaled to 0-255 (PIL's own conversion clips
    them, so a 16-bit picture came out white), transparency composited over white."""
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or (im.mode == "I" and a.max() > 255) else 255.0
        if im.mode == "F":
            top = max(float(a.max()), 1.0) if a.max() > 1.0 else 1.0
        return Image.fromarray(np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return im


def read_image(path: str | Path, resolution: int, channels: int = 3, crop: int | None = None) -> np.ndarray:
    """One image file as uint8 [C, H, W] (C = 1 or 3): a center crop to ``crop`` x ``crop``, else
    the largest centered square, then an area (box-filter, antialiased) resize to ``resolution``.
    Any mode PIL reads: grey, palette, RGB, RGBA (over white), 16-bit grey (scaled to 8 bits)."""
    from PIL import Image

    with Image.open(path) as im:
        im = _eight_bit(im).convert("RGB" if channels == 3 else "L")
        w, h = im.size
        side = crop if crop is not None else min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BOX)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def load_image_folder(
    root: str | Path,
    resolution: int,
    crop: int | None = None,
    channels: int = 3,
    labels_from_subfolders: bool = True,
    name: str = "folder",
    published: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Any folder of images: optional center crop to ``crop`` x ``crop``, else the largest centered
    square, then an area (box-filter, antialiased) resize to ``resolution``. Labels are the index of
    the first-level subfolder (sorted) when ``labels_from_subfolders``, else 0."""
    from PIL import Image

    root = Path(root)
    files = list_images(root) if root.is_dir() else []
    if not files:
        hint = f"; they are published at {published}" if published else ""
        raise MissingDataError(f"{name}: no image files ({', '.join(IMAGE_SUFFIXES)}) under {str(root)!r}{hint}. Set data.path.")
    classes = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
    class_index = {c: i for i, c in enumerate(classes)}
    out = np.empty((len(files), channels, resolution, resolution), dtype=np.uint8)
    labels = np.zeros(len(files), dtype=np.int64)
    keep = np.ones(len(files), dtype=bool)
    for i, f in enumerate(files):
        try:
            out[i] = read_image(f, resolution, channels, crop)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            # a truncated download, a file that only looks like an image, a corrupt header...
            warnings.warn(f"{name}: skipping unreadable image {str(f)!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                          UnreadableImageWarning, stacklevel=2)
            keep[i] = False
            continue
        parts = f.relative_to(root).parts
        if labels_from_subfolders and len(parts) > 1:
            labels[i] = class_index[parts[0]]
    if not keep.any():
        raise MissingDataError(f"{name}: none of the {len(files)} image files under {str(root)!r} could be read; "
                               f"check that they are complete images")
    return out[keep], labels[keep]


class UnreadableImageWarning(UserWarning):
    """An image file in a folder could not be decoded and was skipped."""


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1,797 images, shipped inside scikit-learn): [N, 1, 8, 8] uint8."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return images, d.target.astype(np.int64)


# -- the cache ------------------------------------------------------------------------------------
def atomic_save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to the .npy file ``path`` atomically (a synced temporary file, then a rename)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def cached(key: str, cache_dir: str | Path, build: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Build the uint8 arrays once and keep them as .npy files; later loads are memory-mapped."""
    cache_dir = Path(cache_dir)
    img_path, lab_path = cache_dir / f"{key}.images.npy", cache_dir / f"{key}.labels.npy"
    if img_path.is_file() and lab_path.is_file():
        return np.load(img_path, mmap_mode="r"), np.load(lab_path)
    images, labels = build()
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_save(lab_path, labels)  # labels first: images present implies a complete pair
    atomic_save(img_path, np.ascontiguousarray(images))
    return np.load(img_path, mmap_mode="r"), np.load(lab_path)


def default_cache_dir() -> Path:
    return Path(os.environ.get("FLOWMAPS_CACHE", Path.home() / ".cache" / "flowmaps"))


IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "celeba64", "afhq64", "folder")


def load_images(
    name: str,
    path: str | None = None,
    split: str = "train",
    resolution: int | None = None,
    cache_dir: str | Path | None = None,
) -> ImageData:
    """Load an image data set by name (see :data:`IMAGE_DATASETS`), caching it as uint8 .npy."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    if name == "digits":
        images, labels = load_digits()
        return ImageData(images, labels, 10)
    if name == "fashion-mnist" and path is None:
        path = FASHION_MNIST_DEBIAN
    if path is None:
        raise MissingDataError(f"data set {name!r} needs data.path: the folder holding its files")
    src = Path(path).expanduser().resolve()
    tag = hashlib.sha1(str(src).encode()).hexdigest()[:8]
    builders: dict[str, tuple[Callable[[], tuple[np.ndarray, np.ndarray]], int, str]] = {
        "mnist": (lambda: load_idx_dataset(src, "mnist", split), 10, ""),
        "fashion-mnist": (lambda: load_idx_dataset(src, "fashion-mnist", split), 10, ""),
        "cifar10": (lambda: load_cifar10(src, split), 10, ""),
        "celeba64": (
            lambda: load_image_folder(src, 64, crop=140, labels_from_subfolders=False, name="celeba64",
                                      published="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (img_align_celeba)"),
            0, "",
        ),
        "afhq64": (
            lambda: load_image_folder(src, 64, name="afhq64", published="https://github.com/clovaai/stargan-v2 (AFHQ v2, 512x512)"),
            0, "",
        ),
        "folder": (lambda: load_image_folder(src, resolution or 64, name="folder"), 0, ""),
    }
    if name not in builders:
        raise DataError(f"unknown image data set {name!r}; choose one of {list(IMAGE_DATASETS)}")
    build, num_classes, _ = builders[name]
    res = f"-{resolution}" if name == "folder" else ""
    images, labels = cached(f"{name}{res}-{split}-{tag}", cache_dir, build)
    if name in ("folder", "afhq64") and labels.size:
        num_classes = int(labels.max()) + 1 if labels.max() > 0 else 0
    return ImageData(images, labels, num_classes)
