"""flowmaps train --data on array files: a DiT, normalisation stored with the run and undone on
every output, array metrics, and a decoder hook for pictures."""
import json

import numpy as np
import pytest
import torch

from flowmaps.cli import main

SHORT = ["--set", "train.steps=6", "--set", "train.progress=false", "--set", "train.ckpt_every=3",
         "--set", "train.batch_size=32", "--set", "net.width=32", "--set", "net.depth=1", "--set", "eval.num_samples=200",
         "--set", "eval.steps=[1,2]", "--set", "train.log_every=3"]


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    root = tmp_path_factory.mktemp("arrays")
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 32)[None, :, None]
    x = np.sin(2 * np.pi * (rng.uniform(1, 3, (300, 1, 2)) * t + rng.uniform(0, 1, (300, 1, 2)))) * np.array([2.0, 0.5]) + \
        np.array([10.0, -1.0])
    np.save(root / "seq.npy", x.astype(np.float32))
    assert main(["train", "--data", str(root / "seq.npy"), "--out", str(root / "run"), *SHORT]) == 0
    return root


def test_array_run_uses_a_dit_and_stores_its_statistics(sequences):
    meta = json.loads((sequences / "run" / "run.json").read_text())
    assert meta["shape"] == [32, 2] and meta["normalization"]["axis"] == 1
    assert np.allclose(meta["normalization"]["mean"], [10.0, -1.0], atol=0.2)
    auto = json.loads((sequences / "run" / "autoconfig.json").read_text())
    assert any(c["key"] == "net" and c["value"]["kind"] == "dit" for c in auto)
    result = json.loads((sequences / "run" / "eval.json").read_text())
    assert {"fd_array", "sliced_w2_array"} <= set(result["metrics"]["map"]["1"])
    floor = result["reference"]["perfect sampler (exact data)"]
    assert floor["fd_array"] < result["metrics"]["map"]["1"]["fd_array"]  # six steps are far from the data
    assert (sequences / "run" / "samples-final-map.png").is_file()


def test_samples_come_back_in_the_data_scale(sequences, tmp_path):
    assert main(["sample", "--run", str(sequences / "run"), "--steps", "1", "--num", "500", "--out", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (500, 32, 2)
    assert abs(x[..., 0].mean() - 10.0) < 0.5 and abs(x[..., 1].mean() + 1.0) < 0.5  # not the model's scale (mean 0)
    assert main(["sample", "--run", str(sequences / "run"), "--steps", "1", "--out", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").stat().st_size > 1000
    assert main(["edit", "--run", str(sequences / "run"), "--input", str(sequences / "seq.npy"), "--strength", "0.01",
                 "--steps", "1", "--out", str(tmp_path / "e.npy")]) == 0
    edited, original = np.load(tmp_path / "e.npy"), np.load(sequences / "seq.npy")
    assert np.abs(edited - original).mean() < 0.1 * np.abs(original).mean()  # data scale in, data scale out


def test_latents_with_a_decoder(tmp_path, capsys):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "lat.npy", rng.standard_normal((100, 4, 4, 4)).astype(np.float32))

    class Decoder(torch.nn.Module):
        def forward(self, z):
            return torch.tanh(torch.nn.functional.pixel_shuffle(z, 2)[:, :1])  # [B, 4, 4, 4] -> [B, 1, 8, 8]

    batch = torch.export.Dim("batch", min=1)
    prog = torch.export.export(Decoder(), (torch.zeros(2, 4, 4, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(prog, str(tmp_path / "decoder.pt2"))
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "lat.npy"), "--out", str(out), *SHORT,
                 "--set", f"data.decoder={tmp_path / 'decoder.pt2'}"]) == 0
    assert main(["sample", "--run", str(out), "--steps", "1", "--num", "9", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 500
    none = tmp_path / "run2"
    assert main(["train", "--data", str(tmp_path / "lat.npy"), "--out", str(none), *SHORT, "--no-eval"]) == 0
    capsys.readouterr()
    assert main(["sample", "--run", str(none), "--steps", "1", "--out", str(tmp_path / "h.png")]) == 2
    assert "set data.decoder" in capsys.readouterr().err


def test_an_array_run_with_held_out_items_ends_with_an_audit(sequences, tmp_path, capsys):
    run = tmp_path / "held"
    assert main(["train", "--data", str(sequences / "seq.npy"), "--out", str(run), *SHORT, "--set", "data.holdout=0.2"]) == 0
    assert "audit at N = 1 against 60 held-out items" in capsys.readouterr().out
    result = json.loads((run / "eval.json").read_text())
    audit = json.loads((run / "audit.json").read_text())
    assert result["audit"] == audit and "normalised per channel" in audit["features"]
    assert audit["counts"]["held-out"] == 60 and "gaussian" in audit["figures"]["1"][0]["references"]
    assert "Audit against held-out data" in (run / "report.html").read_text()
    assert main(["audit", "--run", str(run), "--steps", "2", "--num", "50"]) == 0  # eval.json and the report follow
    assert list(json.loads((run / "eval.json").read_text())["audit"]["figures"]) == ["2"]
    assert "report.html" in capsys.readouterr().out
