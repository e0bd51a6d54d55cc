"""Networks f(x, a, b) for :class:`flowmaps.FlowMap`."""
from .mlp import MLP

__all__ = ["MLP"]
