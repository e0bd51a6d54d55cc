"""The patch code (flowmaps.data.patch_code): exact at full size, orthonormal, a projection when
truncated, the energy it says it keeps, and each scaling."""
import numpy as np
import pytest
import torch

from flowmaps.data.patch_code import dct_basis, dct_matrix, fit_patch_code
from flowmaps.errors import DataError


def _pictures(n=40, c=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = torch.stack([xx, yy, xx * yy][:c])
    return (0.6 * base[None] * torch.rand(n, c, 1, 1, generator=g) + 0.2 * torch.randn(n, c, size, size, generator=g)).clamp(-1, 1)


@pytest.mark.parametrize("kind", ["pca", "dct"])
@pytest.mark.parametrize("scaling", ["coefficient", "none"])
def test_full_code_is_exact(kind, scaling):
    x = _pictures()
    code = fit_patch_code(x, patch=4, kind=kind, scaling=scaling, size=48)
    z = code.encode(x)
    assert z.shape == (40, 48, 4, 4) and code.energy == pytest.approx(1.0)
    torch.testing.assert_close(code.decode(z), x, atol=2e-5, rtol=0)
    torch.testing.assert_close(code.basis @ code.basis.T, torch.eye(48), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["pca", "dct"])
def test_truncated_code_projects_and_keeps_its_energy(kind):
    x = _pictures(c=1)
    code = fit_patch_code(x, patch=4, energy=0.9, kind=kind)
    assert code.energy >= 0.9 and code.size < 16
    once = code.decode(code.encode(x))
    torch.testing.assert_close(code.decode(code.encode(once)), once, atol=2e-5, rtol=0)  # a projection
    patches = torch.nn.functional.pixel_unshuffle(x, 4)
    kept = 1 - (torch.nn.functional.pixel_unshuffle(once, 4) - patches).pow(2).sum() / (
        patches - patches.mean((0, 2, 3), keepdim=True)).pow(2).sum()
    assert float(kept) == pytest.approx(code.energy, abs=1e-3)


def test_pca_keeps_at_least_the_dct_energy_and_scaling_gives_unit_channels():
    x = _pictures()
    pca, dct = fit_patch_code(x, 4, kind="pca", size=6), fit_patch_code(x, 4, kind="dct", size=6)
    assert pca.energy >= dct.energy - 1e-9
    z = pca.encode(x)
    std = z.transpose(0, 1).reshape(6, -1).std(1)
    torch.testing.assert_close(std, torch.ones(6), atol=0.02, rtol=0)


def test_dct_basis_is_orthonormal_and_decoder_scripts(tmp_path):
    m = dct_matrix(4)
    np.testing.assert_allclose(m @ m.T, np.eye(4), atol=1e-12)
    b = dct_basis(2, 3)
    np.testing.assert_allclose(b @ b.T, np.eye(12), atol=1e-12)
    code = fit_patch_code(_pictures(), 4, size=10)
    scripted = torch.jit.script(code.decoder())
    z = code.encode(_pictures(4, seed=1))
    torch.testing.assert_close(scripted(z), code.decode(z))


def test_bad_settings_are_refused():
    with pytest.raises(DataError, match="do not split into 3 x 3"):
        fit_patch_code(_pictures(), patch=3)
    with pytest.raises(DataError, match="unknown patch code"):
        fit_patch_code(_pictures(), kind="haar")


def test_a_whole_picture_code_is_the_pictures_pca_and_decodes_flat_codes():
    """Patch = the picture (fewer patches than dimensions: the SVD path): the code spans the
    training pictures, so every one of them decodes back exactly, and the decoder takes flat
    codes [B, K] as the run stores them."""
    x = _pictures(n=30, size=16)
    code = fit_patch_code(x, patch=16, energy=1.0, kind="pca")
    assert code.size <= 30 and code.energy == pytest.approx(1.0)
    z = code.encode(x)
    assert z.shape == (30, code.size, 1, 1)
    torch.testing.assert_close(code.decode(z), x, atol=5e-5, rtol=0)
    torch.testing.assert_close(code.basis @ code.basis.T, torch.eye(code.size), atol=1e-5, rtol=0)
    dec = code.decoder()
    torch.testing.assert_close(dec(z.flatten(1)), dec(z), atol=0, rtol=0)
    variances = z.flatten(1).var(0)
    torch.testing.assert_close(variances, torch.ones_like(variances), atol=1e-4, rtol=0)  # coefficient scaling
