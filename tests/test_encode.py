"""Encoding and decoding (flowmaps.encode) against the exact Gaussian flow map."""
import pytest
import torch

from flowmaps.encode import NotInvertibleError, check_invertible, code_nll, decode, encode, slerp


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_decode_encode_is_the_identity(exact_fm, gaussian, steps):
    x = gaussian.sample_data(256, torch.Generator().manual_seed(1))
    z = encode(exact_fm, x, steps, gaussian.sigma)
    assert torch.allclose(decode(exact_fm, z, steps, gaussian.sigma), x, atol=1e-9)


def test_codes_of_data_are_standard_normal(exact_fm, gaussian):
    z = encode(exact_fm, gaussian.sample_data(20000, torch.Generator().manual_seed(2)), 1, gaussian.sigma)
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=z.dtype), atol=0.03)
    assert torch.allclose(z.std(0), torch.ones(3, dtype=z.dtype), atol=0.03)
    far = gaussian.mean + 6 * gaussian.var.sqrt()
    assert float(code_nll(encode(exact_fm, far[None], 1, gaussian.sigma))) > float(code_nll(z).max()) - 5


def test_forward_only_runs_are_refused():
    with pytest.raises(NotInvertibleError, match="loss.full_square=true"):
        check_invertible(False)
    check_invertible(True)


def test_slerp_ends_and_norm():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(4, 2, 5, generator=g), torch.randn(4, 2, 5, generator=g)
    b = b / b.flatten(1).norm(dim=1)[:, None, None] * a.flatten(1).norm(dim=1)[:, None, None]
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid.flatten(1).norm(dim=1), a.flatten(1).norm(dim=1), rtol=1e-4)
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-5)  # parallel codes: no division by zero
