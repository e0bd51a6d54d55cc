"""Networks f(x, a, b) for :class:`flowmaps.FlowMap`: the paper's checker MLP and EDM2 flow-map UNet,
and a diffusion transformer (DiT) for images and sequences."""
from .attention import attention
from .dit import DiT, DiTConfig
from .edm2 import PRESETS as EDM2_PRESETS
from .edm2 import EDM2Config, EDM2UNet
from .mlp import MLP

__all__ = ["MLP", "EDM2Config", "EDM2UNet", "EDM2_PRESETS", "DiT", "DiTConfig", "attention"]
