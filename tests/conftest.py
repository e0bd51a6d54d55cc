import pytest
import torch

from flowmaps import FlowMap
from flowmaps.exact import ExactGaussianNet, GaussianProblem


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def gaussian() -> GaussianProblem:
    """An anisotropic 3-D Gaussian with a non-zero mean, in float64."""
    return GaussianProblem(
        mean=torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64),
        var=torch.tensor([0.25, 2.0, 0.04], dtype=torch.float64),
        sigma=0.8,
    )


@pytest.fixture
def exact_fm(gaussian) -> FlowMap:
    return FlowMap(ExactGaussianNet(gaussian), time_input="s_t")


@pytest.fixture
def perturbed_fm(gaussian) -> FlowMap:
    return FlowMap(ExactGaussianNet(gaussian, perturb=0.05), time_input="s_t")

