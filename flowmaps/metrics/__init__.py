"""Metrics: the checkerboard KL, sample distances, map errors, Frechet distances."""
from .distances import energy_distance, map_mse, sliced_wasserstein2, wasserstein2
from .kl import checker_kl, checker_kl_floor

__all__ = ["checker_kl", "checker_kl_floor", "energy_distance", "map_mse", "sliced_wasserstein2", "wasserstein2"]
