import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from flowmaps.data.images import MissingDataError, load_images, read_idx


def _write_idx(path, array, gz):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("name,gz", [("mnist", False), ("fashion-mnist", True)])
def test_idx_datasets(tmp_path, name, gz):
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", imgs, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    data = load_images(name, str(tmp_path), cache_dir=tmp_path / "cache")
    assert len(data) == 30 and data.shape == (1, 28, 28) and data.num_classes == 10
    x, y = data.batch(np.arange(30))
    assert x.shape == (30, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert torch.allclose(x[3, 0], torch.tensor(imgs[3], dtype=torch.float32) / 127.5 - 1)
    assert torch.equal(y, torch.tensor(labels))
    assert isinstance(load_images(name, str(tmp_path), cache_dir=tmp_path / "cache").images, np.memmap)  # cached


def test_idx_rejects_truncated(tmp_path):
    _write_idx(tmp_path / "f", np.zeros((3, 4, 4)), False)
    raw = (tmp_path / "f").read_bytes()
    (tmp_path / "f").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "f")


def test_cifar10_pickles(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = []
    for i in range(1, 6):
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        batches.append(data)
        with open(root / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": data, b"labels": list(range(4))}, f)
    d = load_images("cifar10", str(tmp_path), cache_dir=tmp_path / "c")
    assert len(d) == 20 and d.shape == (3, 32, 32)
    assert np.array_equal(d.images[4], batches[1][0].reshape(3, 32, 32))


def test_folder_celeba_crop_and_afhq_resize(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "afhq" / cls).mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (512, 512), (200 if cls == "cat" else 10, 0, 0)).save(tmp_path / "afhq" / cls / f"{k}.png")
    afhq = load_images("afhq64", str(tmp_path / "afhq"), cache_dir=tmp_path / "c")
    assert afhq.shape == (3, 64, 64) and len(afhq) == 4 and afhq.labels.tolist() == [0, 0, 1, 1]
    assert afhq.images[0, 0, 0, 0] == 200 and afhq.images[3, 0, 0, 0] == 10
    # CelebA: 178 x 218 with a white 140 x 140 centre on black: the crop keeps only white
    (tmp_path / "celeba").mkdir()
    im = Image.new("RGB", (178, 218), (0, 0, 0))
    im.paste((255, 255, 255), ((178 - 140) // 2, (218 - 140) // 2, (178 - 140) // 2 + 140, (218 - 140) // 2 + 140))
    im.save(tmp_path / "celeba" / "000001.png")
    celeba = load_images("celeba64", str(tmp_path / "celeba"), cache_dir=tmp_path / "c")
    assert celeba.shape == (3, 64, 64) and int(celeba.images.min()) == 255


def test_digits_are_offline_and_scaled():
    d = load_images("digits")
    assert len(d) == 1797 and d.shape == (1, 8, 8) and d.num_classes == 10
    x, y = d.batch(np.arange(100))
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0 and int(y.max()) == 9


def test_missing_files_say_what_and_where(tmp_path):
    with pytest.raises(MissingDataError, match=r"train-images-idx3-ubyte.*yann.lecun"):
        load_images("mnist", str(tmp_path))
    with pytest.raises(MissingDataError, match=r"data_batch_1.*cs.toronto.edu"):
        load_images("cifar10", str(tmp_path))
    with pytest.raises(MissingDataError, match="no image files"):
        load_images("folder", str(tmp_path))
    with pytest.raises(ValueError, match="choose one of"):
        load_images("imagenet", str(tmp_path))


def test_flips_are_off_by_default(tmp_path):
    d = load_images("digits")
    x, _ = d.batch(np.arange(10))
    xf, _ = d.batch(np.arange(10), flip=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, d.batch(np.arange(10))[0])
    flipped = [not torch.equal(a, b) for a, b in zip(x, xf)]
    assert any(flipped) and all(torch.equal(b, a.flip(-1)) for a, b, f in zip(x, xf, flipped) if f)


def _png_folder(root, n, size=12, mode="RGB"):
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).convert(mode).save(root / f"img{i:02d}.png")


def test_unreadable_images_are_skipped_with_a_warning_naming_them(tmp_path):
    from flowmaps.data.images import UnreadableImageWarning

    _png_folder(tmp_path / "imgs", 5)
    good = (tmp_path / "imgs" / "img00.png").read_bytes()
    (tmp_path / "imgs" / "truncated.png").write_bytes(good[: len(good) // 2])  # an interrupted download
    (tmp_path / "imgs" / "fake.jpg").write_bytes(b"<html>not an image</html>")
    with pytest.warns(UnreadableImageWarning) as caught:
        data = load_images("folder", str(tmp_path / "imgs"), resolution=8, cache_dir=tmp_path / "cache")
    named = " ".join(str(w.message) for w in caught)
    assert "truncated.png" in named and "fake.jpg" in named
    assert len(data) == 5 and data.shape == (3, 8, 8)


def test_a_folder_with_nothing_readable_fails_in_one_line(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.warns(UserWarning), pytest.raises(MissingDataError, match="could be read") as e:
        load_images("folder", str(tmp_path / "bad"), resolution=8, cache_dir=tmp_path / "cache")
    assert "\n" not in str(e.value)
