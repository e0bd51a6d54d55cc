"""The one-command path on a folder of images, and its HTML report checked in a real browser."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from flowmaps.cli import main
from flowmaps.report import build_report


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("report")
    imgs = root / "pngs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):  # coloured squares on a grey background, 20 x 20 (trained at 16 x 16)
        a = np.full((20, 20, 3), 128, np.uint8)
        x, y = rng.integers(0, 12, 2)
        a[y:y + 8, x:x + 8] = rng.integers(0, 256, 3)
        Image.fromarray(a).save(imgs / f"{i:02d}.png")
    (imgs / "broken.png").write_bytes((imgs / "00.png").read_bytes()[:50])  # one truncated file
    out = root / "run"
    argv = ["train", "--data", str(imgs), "--minutes", "0.05", "--out", str(out),
            "--set", "data.cache=" + str(root / "cache"), "--set", "train.progress=false",
            "--set", "eval.num_samples=64", "--set", "eval.steps=[1,2]", "--set", "eval.metrics=[kid]",
            "--set", "net.model_channels=16"]
    with pytest.warns(UserWarning, match="broken.png"):
        assert main(argv) == 0
    return out


def test_one_command_from_an_image_folder(image_run):
    auto = {c["key"]: c["value"] for c in json.loads((image_run / "autoconfig.json").read_text())}
    assert auto["data.resolution"] == 16 and auto["net"]["kind"] == "edm2"
    meta = json.loads((image_run / "run.json").read_text())
    assert meta["budget"]["steps"] >= 10 and meta["ema_selected"]
    result = json.loads((image_run / "eval.json").read_text())
    assert set(result["metrics"]["map"]) == {"1", "2"}
    assert result["provenance"]["ema"] == meta["ema_selected"]
    assert (image_run / "report.html").is_file()


def test_report_is_self_contained(image_run):
    text = build_report(image_run)
    assert "<img" in text and "http://" not in text and "https://" not in text
    for section in ("Summary", "Metrics", "Samples", "Training", "Resolved configuration", "Provenance",
                    "Automatic choices", "budget"):
        assert section in text, section


def test_optional_metric_is_skipped_not_fatal(tmp_path, image_run, capsys):
    # a missing Inception file: the evaluation names what it skipped and still succeeds
    cfgfile = image_run / "config.yaml"
    text = cfgfile.read_text()
    cfgfile.write_text(text.replace("inception: null", f"inception: {tmp_path / 'missing.pt'}"))
    try:
        assert main(["eval", "--run", str(image_run), "--steps", "1", "--num", "16", "--metric", "fid"]) == 0
        out = capsys.readouterr().out
        assert "skipped fid" in out and "missing.pt" in out
        assert "fid" in json.loads((image_run / "eval.json").read_text())["skipped_metrics"]
    finally:
        cfgfile.write_text(text)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium); .ci/run installs it")
def test_report_renders_in_a_real_browser(image_run, tmp_path):
    page = (image_run / "report.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r'data-images="(\d+)" data-images-loaded="(\d+)"', dom.stdout)
    assert m, "the page's load script did not run:\n" + dom.stderr[-2000:]
    total, loaded = int(m.group(1)), int(m.group(2))
    assert total >= 3 and loaded == total
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1200,1800", f"--screenshot={shot}", page],
                   capture_output=True, timeout=120)
    from PIL import Image

    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"))
    assert pixels.shape == (1800, 1200) and pixels.std() > 10  # something was drawn, not a blank page


def test_the_report_says_which_way_is_better_from_the_metric_registry():
    from flowmaps.report import _better_text

    assert _better_text(["kl", "sliced_w2"]) == "Lower is better for every metric."
    assert _better_text(["fd_classifier", "class_accuracy"]) == \
        "Lower is better for every metric but class_accuracy, where higher is better."
