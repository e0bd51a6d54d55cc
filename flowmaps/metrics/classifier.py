"""A Frechet distance in the features of a small classifier that flowmaps trains itself.

For small images (scikit-learn's 8x8 digits, 28x28 MNIST-like sets) Inception features mean
little. This metric is reported as ``fd_classifier`` and is **not** FID: its numbers are only
comparable with other ``fd_classifier`` numbers on the same data set and classifier seed.
The classifier is trained once per data set (deterministically on the CPU) and cached.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fid import feature_stats, frechet_distance


class FeatureClassifier(nn.Module):
    """conv 32 -> conv 64 (stride 2) -> conv 128 (stride 2) -> mean pool: 128-d features; linear head."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.GELU(),
        )
        self.head = nn.Linear(128, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def train_classifier(images: Tensor, labels: Tensor, num_classes: int, steps: int = 600, seed: int = 0) -> tuple[FeatureClassifier, float]:
    """Train on (images [n, C, H, W] in [-1, 1], labels [n]); returns the model and its held-out accuracy."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(images.shape[0], generator=g)
    n_val = max(images.shape[0] // 10, 1)
    val, train = perm[:n_val], perm[n_val:]
    torch.manual_seed(seed)
    model = FeatureClassifier(images.shape[1], num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        idx = train[torch.randint(0, train.numel(), (128,), generator=g)]
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(images[val]).argmax(1) == labels[val]).float().mean())
    return model, acc


def load_or_train_classifier(key: str, cache_dir: Path, images: Tensor, labels: Tensor, num_classes: int) -> tuple[FeatureClassifier, float]:
    from safetensors.torch import load_file, save_file

    path = cache_dir / f"classifier-{key}.safetensors"
    if path.is_file():
        model = FeatureClassifier(images.shape[1], num_classes)
        state = load_file(str(path))
        acc = float(state.pop("_accuracy"))
        model.load_state_dict(state)
        return model.eval(), acc
    model, acc = train_classifier(images, labels, num_classes)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({**{k: v.contiguous() for k, v in model.state_dict().items()}, "_accuracy": torch.tensor(acc)}, str(tmp))
    tmp.replace(path)
    return model, acc


@torch.no_grad()
def classifier_features(model: FeatureClassifier, images: Tensor, batch_size: int = 1000) -> np.ndarray:
    return np.concatenate([model.features(images[i : i + batch_size].float()).double().numpy()
                           for i in range(0, images.shape[0], batch_size)])


def classifier_frechet_distance(model: FeatureClassifier, samples: Tensor, reference: Tensor) -> float:
    """Frechet distance between classifier features of samples and reference images (both in [-1, 1])."""
    mu1, s1 = feature_stats(classifier_features(model, samples.clamp(-1, 1)))
    mu2, s2 = feature_stats(classifier_features(model, reference))
    return frechet_distance(mu1, s1, mu2, s2)
