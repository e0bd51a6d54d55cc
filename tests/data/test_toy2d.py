import numpy as np
import pytest
import torch

from flowmaps.data.source import ArraySource, SamplerSource, build_source
from flowmaps.data.toy2d import TOY, checkerboard, checkerboard_density, load_points


@pytest.mark.parametrize("name", sorted(TOY))
def test_shapes_and_determinism(name):
    a = TOY[name](500, torch.Generator().manual_seed(1))
    b = TOY[name](500, torch.Generator().manual_seed(1))
    assert a.shape == (500, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, TOY[name](500, torch.Generator().manual_seed(2)))


def test_checkerboard_is_the_papers():
    x = checkerboard(100_000, torch.Generator().manual_seed(0))
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert bool((checkerboard_density(x) == 0.5).all())  # every sample on a filled cell
    cell = torch.floor((x + 1) / 0.5).long()
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16).reshape(4, 4)
    filled = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
    for i in range(4):
        for j in range(4):
            if (i, j) in filled:
                assert abs(int(counts[i, j]) - 12_500) < 600
            else:
                assert int(counts[i, j]) == 0
    assert abs(float(checkerboard_density(torch.tensor([[-0.9, -0.9]]))) - 0.5) < 1e-12  # cell (0, 0) is filled


def test_points_from_npy_and_csv(tmp_path):
    pts = np.random.default_rng(0).standard_normal((100, 3))
    np.save(tmp_path / "p.npy", pts)
    np.savetxt(tmp_path / "p.csv", pts, delimiter=",", header="a,b,c", comments="")
    for f in ("p.npy", "p.csv"):
        x, _ = load_points(tmp_path / f)
        assert x.shape == (100, 3) and torch.allclose(x, torch.tensor(pts, dtype=torch.float32), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_points(tmp_path / "missing.npy")
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        load_points(tmp_path / "bad.npy")
    src = build_source("points", str(tmp_path / "p.npy"))
    assert isinstance(src, ArraySource) and src.shape == (3,)


def test_array_source_epochs_and_shards(tmp_path):
    np.save(tmp_path / "p.npy", np.arange(40, dtype=np.float32).reshape(20, 2))
    src = build_source("points", str(tmp_path / "p.npy"))
    seen = np.concatenate([src.indices(0, step, 5) for step in range(4)])
    assert sorted(seen.tolist()) == list(range(20))  # one epoch visits each point once
    a, _ = src.batch(0, 3, 0, 2, 4)
    b, _ = src.batch(0, 3, 1, 2, 4)
    whole = src.points[torch.from_numpy(src.indices(0, 3, 8))]
    assert torch.equal(torch.cat([a, b]), whole)  # shards split the global batch
    assert torch.equal(src.batch(0, 3, 0, 2, 4)[0], a)  # a pure function of (seed, step, shard)


def test_sampler_source_shards_differ():
    src = SamplerSource("checker", checkerboard)
    a, _ = src.batch(0, 0, 0, 2, 16)
    b, _ = src.batch(0, 0, 1, 2, 16)
    assert not torch.equal(a, b) and torch.equal(a, src.batch(0, 0, 0, 2, 16)[0])


def test_labelled_sets_and_a_label_column(tmp_path):
    from flowmaps.data.source import SamplerSource

    src = build_source("gmm")
    assert isinstance(src, SamplerSource) and src.num_classes == 3
    x, y = src.batch(0, 0, 0, 1, 4000)
    assert x.shape == (4000, 2) and set(y.tolist()) == {0, 1, 2}
    # each label sits on its own component of the mixture
    means = torch.stack([x[y == k].mean(0) for k in range(3)])
    assert torch.allclose(means, torch.tensor([[-1.0, -0.5], [1.0, -0.5], [0.0, 1.0]]), atol=0.05)
    assert torch.equal(TOY["gmm"](64, torch.Generator().manual_seed(3)), build_source("gmm").sampler(64, torch.Generator().manual_seed(3))[0])
    assert build_source("checker").num_classes == 0
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.standard_normal((50, 2)), rng.integers(0, 4, (50, 1))], axis=1)
    np.save(tmp_path / "l.npy", pts)
    lab = build_source("points", str(tmp_path / "l.npy"), label_column=-1)
    assert lab.shape == (2,) and lab.num_classes == int(pts[:, 2].max()) + 1
    xb, yb = lab.batch(0, 0, 0, 1, 10)
    assert xb.shape == (10, 2) and yb.dtype == torch.long
    points, labels = load_points(tmp_path / "l.npy", 2)
    assert torch.equal(labels, torch.as_tensor(pts[:, 2].astype(np.int64))) and points.shape == (50, 2)
    pts[0, 2] = 0.5
    np.save(tmp_path / "bad.npy", pts)
    with pytest.raises(ValueError, match="integer class labels"):
        load_points(tmp_path / "bad.npy", -1)
    with pytest.raises(ValueError, match="outside"):
        load_points(tmp_path / "l.npy", 5)
