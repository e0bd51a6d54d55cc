import numpy as np
import torch

from flowmaps.data.images import load_images
from flowmaps.metrics.classifier import classifier_frechet_distance, load_or_train_classifier


def test_digits_classifier_distance(tmp_path):
    d = load_images("digits")
    images, labels = d.batch(np.arange(len(d)))
    model, acc = load_or_train_classifier("digits", tmp_path, images, labels, 10)
    assert acc > 0.9
    again, acc2 = load_or_train_classifier("digits", tmp_path, images, labels, 10)  # cached
    assert acc2 == acc
    g = torch.Generator().manual_seed(0)
    half = images[torch.randperm(len(images), generator=g)[:900]]
    noise = torch.rand(900, 1, 8, 8, generator=g) * 2 - 1
    ones = labels == 1
    only_ones = images[ones]
    real = classifier_frechet_distance(model, half, images)
    collapsed = classifier_frechet_distance(model, only_ones, images)
    garbage = classifier_frechet_distance(model, noise, images)
    assert real < collapsed < garbage or real < garbage and real < collapsed
