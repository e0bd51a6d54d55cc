"""Metrics: the checkerboard KL, sample distances, map errors, Frechet distances."""
from ..errors import MetricUnavailable
from .distances import array_frechet_distance, energy_distance, map_mse, sliced_wasserstein2, wasserstein2
from .kl import checker_kl, checker_kl_floor

__all__ = ["MetricUnavailable", "array_frechet_distance", "checker_kl", "checker_kl_floor", "energy_distance", "map_mse", "sliced_wasserstein2", "wasserstein2"]
