"""Minibatch optimal-transport coupling of noise and data."""
import itertools

import pytest
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.coupling import couple, minibatch_ot_coupling
from flowmaps.nets import MLP


def test_each_chunk_is_an_optimal_permutation():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(12, 2, generator=g), torch.rand(12, 2, generator=g)
    y0 = minibatch_ot_coupling(x0, x1, chunk=4)
    for i in range(0, 12, 4):
        a, b = x0[i : i + 4], x1[i : i + 4]
        # the same noise points, re-paired only inside the chunk
        assert sorted(map(tuple, y0[i : i + 4].tolist())) == sorted(map(tuple, a.tolist()))
        best = min(sum(float((a[p[k]] - b[k]).square().sum()) for k in range(4)) for p in itertools.permutations(range(4)))
        assert abs(float((y0[i : i + 4] - b).square().sum()) - best) < 1e-5


def test_coupling_shortens_pairs_and_keeps_image_shapes():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(256, 1, 4, 4, generator=g), torch.rand(256, 1, 4, 4, generator=g)
    y0 = couple(x0, x1, "minibatch_ot", 64)
    assert y0.shape == x0.shape
    assert (y0 - x1).square().sum() < 0.8 * (x0 - x1).square().sum()
    assert couple(x0, x1, "independent") is x0
    with pytest.raises(ValueError, match="coupling"):
        couple(x0, x1, "sinkhorn")


def test_objective_with_ot_coupling_trains():
    torch.manual_seed(0)
    fm = FlowMap(MLP(dim=2, width=32, depth=2))
    obj = Objective(ObjectiveConfig(method="lsd", coupling="minibatch_ot", coupling_chunk=16), sigma=1.0)
    out = obj(fm, torch.rand(64, 2), generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in fm.parameters())
    with pytest.raises(ValueError, match="coupling_chunk"):
        ObjectiveConfig(method="lsd", coupling="minibatch_ot", coupling_chunk=1).validate()


def test_a_ragged_last_chunk_is_paired_on_its_own():
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(10, 2, generator=g), torch.rand(10, 2, generator=g)
    y0 = minibatch_ot_coupling(x0, x1, chunk=4)
    for i, n in ((0, 4), (4, 4), (8, 2)):
        a, b = x0[i : i + n], x1[i : i + n]
        assert sorted(map(tuple, y0[i : i + n].tolist())) == sorted(map(tuple, a.tolist()))
        best = min(sum(float((a[p[k]] - b[k]).square().sum()) for k in range(n)) for p in itertools.permutations(range(n)))
        assert abs(float((y0[i : i + n] - b).square().sum()) - best) < 1e-5
    assert torch.equal(minibatch_ot_coupling(x0[:3], x1[:3], chunk=4)[:3].sort(0).values, x0[:3].sort(0).values)
