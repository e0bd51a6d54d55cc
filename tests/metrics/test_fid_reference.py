"""FID's reference: training images, decoded training arrays (a latent run through data.decoder),
an .npz of statistics or a folder of images; with a stand-in feature network (the real Inception
weights are an optional extra)."""
import json
import warnings

import numpy as np
import pytest
import torch

from flowmaps.cli import main
from flowmaps.metrics.fid import feature_stats, feature_stats_of_chunks

SHORT = ["--set", "train.steps=4", "--set", "train.progress=false", "--set", "train.ckpt_every=2",
         "--set", "train.batch_size=16", "--set", "net.width=32", "--set", "net.depth=1", "--set", "eval.num_samples=64",
         "--set", "eval.steps=[1]", "--set", "train.log_every=2"]


class PooledFeatures(torch.nn.Module):
    """Stands in for Inception: 4 x 4 average-pooled pixels (48-d features)."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


class Decoder(torch.nn.Module):
    def forward(self, z):
        return torch.tanh(torch.nn.functional.pixel_shuffle(z, 2))[:, :3]  # [B, 12, 4, 4] -> [B, 3, 8, 8]


def test_streamed_statistics_equal_the_whole_set():
    f = np.random.default_rng(0).standard_normal((500, 7)) @ np.random.default_rng(1).standard_normal((7, 7))
    mu, cov = feature_stats(f)
    mu2, cov2, n = feature_stats_of_chunks([f[:123], f[123:400], f[400:]])
    assert n == 500 and np.allclose(mu, mu2) and np.allclose(cov, cov2)
    with pytest.raises(ValueError, match="two feature rows"):
        feature_stats_of_chunks([f[:1]])


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("latents")
    rng = np.random.default_rng(0)
    np.save(root / "lat.npy", (rng.standard_normal((120, 12, 4, 4)) * 0.5 + 0.2).astype(np.float32))
    batch = torch.export.Dim("batch", min=1)
    prog = torch.export.export(Decoder(), (torch.zeros(2, 12, 4, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(prog, str(root / "decoder.pt2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(PooledFeatures()).save(str(root / "features.pt"))
    run = root / "run"
    assert main(["train", "--data", str(root / "lat.npy"), "--out", str(run), *SHORT, "--no-eval",
                 "--set", f"data.decoder={root / 'decoder.pt2'}", "--set", f"eval.inception={root / 'features.pt'}",
                 "--set", f"data.cache={root / 'cache'}"]) == 0
    return root


def _fid(run, capsys, *extra):
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--metric", "fid", "--metric", "fd_array", *extra]) == 0
    result = json.loads((run / "eval.json").read_text())
    return result["metrics"]["map"]["1"]["fid"], result["provenance"]["fid_reference_stats"]


def test_a_latent_run_gets_fid_through_its_decoder(latent_run, capsys):
    fid, ref = _fid(latent_run / "run", capsys)
    assert np.isfinite(fid) and fid > 0
    assert "fid-ref-array-" in ref  # decoded training arrays, cached beside the data cache
    d = np.load(ref)
    assert int(d["n"]) == 120 and d["mu"].shape == (48,)
    # the cached statistics are those of the decoded training arrays
    from flowmaps.data.arrays import ArrayFiles

    real = torch.tanh(torch.nn.functional.pixel_shuffle(torch.from_numpy(np.load(latent_run / "lat.npy")), 2))[:, :3]
    feats = torch.nn.functional.adaptive_avg_pool2d(torch.round((real + 1) * 127.5) / 255.0 * 1.9921875 - 1, 4).flatten(1)
    assert ArrayFiles(latent_run / "lat.npy").shape == (12, 4, 4)
    mu, _ = feature_stats(feats.double().numpy())
    assert np.allclose(d["mu"], mu, atol=0.02)  # bilinear 8 -> 299 -> pooled 4 x 4 keeps block means


def test_fid_reference_as_statistics_or_a_folder(latent_run, capsys, tmp_path):
    fid, ref = _fid(latent_run / "run", capsys)
    d = np.load(ref)
    np.savez(tmp_path / "stats.npz", mu=d["mu"], sigma=d["sigma"])
    fid_npz, ref_npz = _fid(latent_run / "run", capsys, "--set", f"eval.fid_reference={tmp_path / 'stats.npz'}")
    assert ref_npz == str(tmp_path / "stats.npz") and fid_npz == pytest.approx(fid)
    from PIL import Image

    folder = tmp_path / "real"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(np.full((8, 8, 3), 40 * (i % 5), dtype=np.uint8)).save(folder / f"{i}.png")
    fid_folder, ref_folder = _fid(latent_run / "run", capsys, "--set", f"eval.fid_reference={folder}")
    assert ref_folder != ref and fid_folder != pytest.approx(fid)
    assert int(np.load(ref_folder)["n"]) == 40


@pytest.mark.parametrize("setting, message", [
    ("eval.fid_reference=/nonexistent/stats.npz", "does not exist"),
    ("eval.fid_reference=BAD_NPZ", "must hold arrays mu"),
    ("data.decoder=null", "fid on array data needs data.decoder"),
    ("net.width=64", "model is fixed"),
])
def test_bad_fid_settings_get_one_line(latent_run, capsys, tmp_path, setting, message):
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    setting = setting.replace("BAD_NPZ", str(tmp_path / "bad.npz"))
    capsys.readouterr()
    assert main(["eval", "--run", str(latent_run / "run"), "--metric", "fid", "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
