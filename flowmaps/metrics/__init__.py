"""Metrics: the checkerboard KL, sample distances, map errors, Frechet distances."""
from .distances import array_frechet_distance, energy_distance, map_mse, sliced_wasserstein2, wasserstein2
from .kl import checker_kl, checker_kl_floor


class MetricUnavailable(RuntimeError):
    """An optional metric that cannot run here (weights or data missing); the message says how to get it."""


__all__ = ["MetricUnavailable", "array_frechet_distance", "checker_kl", "checker_kl_floor", "energy_distance", "map_mse", "sliced_wasserstein2", "wasserstein2"]
