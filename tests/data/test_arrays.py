"""Array data (flowmaps.data.arrays): files, memory mapping, labels, per-channel normalisation."""
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from flowmaps.data.arrays import ArrayFiles, Normalization, channel_axis
from flowmaps.data.source import build_source


def _sequences(n=200, length=16, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 10.0])[:channels]
    return (rng.standard_normal((n, length, channels)) * scale + np.array([5.0, -3.0])[:channels]).astype(np.float32)


def test_npy_is_memory_mapped_and_normalised_per_channel(tmp_path):
    x = _sequences()
    np.save(tmp_path / "a.npy", x)
    files = ArrayFiles(tmp_path / "a.npy")
    assert isinstance(files.parts[0], np.memmap) and len(files) == 200 and files.shape == (16, 2)
    norm = files.normalization
    assert norm.axis == channel_axis((16, 2)) == 1
    assert np.allclose(norm.mean, x.reshape(-1, 2).mean(0), atol=1e-4) and np.allclose(norm.std, x.reshape(-1, 2).std(0), rtol=1e-4)
    b, y = files.batch(np.array([7, 3, 150]))
    assert b.shape == (3, 16, 2) and torch.equal(y, torch.zeros(3, dtype=torch.long))
    assert torch.allclose(norm.invert(b), torch.from_numpy(x[[7, 3, 150]]), atol=1e-5)  # order kept
    z = norm.apply(torch.from_numpy(x))
    assert torch.allclose(z.mean((0, 1)), torch.zeros(2), atol=1e-4) and torch.allclose(z.std((0, 1)), torch.ones(2), atol=1e-2)
    assert Normalization.from_dict(norm.as_dict()) == norm


def test_images_normalise_along_axis_0_and_labels_beside_the_file(tmp_path):
    x = np.random.default_rng(1).standard_normal((50, 3, 4, 4)).astype(np.float32) * np.array([1, 2, 3])[:, None, None]
    np.save(tmp_path / "lat.npy", x)
    np.save(tmp_path / "lat.labels.npy", np.arange(50) % 5)
    src = build_source("array", str(tmp_path / "lat.npy"), holdout=0.2, classes=[1, 2])
    assert src.num_classes == 5 and src.normalization.axis == 0 and len(src.normalization.mean) == 3
    _, y = src.batch(0, 0, 0, 1, 8)
    assert set(y.tolist()) <= {1, 2}
    assert build_source("array", str(tmp_path / "lat.npy"), holdout=0.2, split="heldout").size == 10


def test_safetensors_and_folders(tmp_path):
    x = _sequences(30)
    save_file({"data": x, "labels": np.arange(30, dtype=np.int64) % 3}, str(tmp_path / "s.safetensors"))
    files = ArrayFiles(tmp_path / "s.safetensors")
    assert files.num_classes == 3 and np.allclose(files.raw(np.array([4, 2])), x[[4, 2]])
    folder = tmp_path / "parts"
    folder.mkdir()
    np.save(folder / "a.npy", x[:10])
    np.save(folder / "b.npy", x[10:])
    both = ArrayFiles(folder)
    assert len(both) == 30 and np.allclose(both.raw(np.array([12, 9, 29])), x[[12, 9, 29]])


def test_bad_arrays(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .npy or .safetensors arrays"):
        ArrayFiles(tmp_path / "missing")
    folder = tmp_path / "mixed"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((4, 3, 2), np.float32))
    np.save(folder / "b.npy", np.zeros((4, 5, 2), np.float32))
    with pytest.raises(ValueError, match="same item shape"):
        ArrayFiles(folder)
    bad = np.zeros((4, 3, 2), np.float32)
    bad[1, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        ArrayFiles(tmp_path / "nan.npy")
    save_file({"a": np.zeros((2, 2), np.float32), "b": np.zeros((2, 2), np.float32)}, str(tmp_path / "two.safetensors"))
    with pytest.raises(ValueError, match="name the data tensor 'data'"):
        ArrayFiles(tmp_path / "two.safetensors")
