"""flowmaps edit / encode / decode / score on tiny trained runs."""
import csv

import numpy as np
import pytest

from flowmaps.cli import main

TINY = ["--set", "net.width=32", "--set", "net.depth=2", "--set", "train.steps=12", "--set", "train.batch_size=64",
        "--set", "train.progress=false", "--set", "train.ckpt_every=6", "--no-eval"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    assert main(["train", "--preset", "gaussian", "--out", str(root / "fwd"), *TINY]) == 0
    assert main(["train", "--preset", "gaussian", "--out", str(root / "full"), *TINY,
                 "--set", "loss.full_square=true"]) == 0
    assert main(["train", "--preset", "gaussian", "--out", str(root / "trig"), *TINY,
                 "--set", "loss.full_square=true", "--set", "interpolant=trig"]) == 0
    x = np.random.default_rng(0).standard_normal((20, 2)).astype(np.float32)
    np.save(root / "x.npy", x)
    return root


def test_edit_npy_and_png(runs, tmp_path, capsys):
    assert main(["edit", "--run", str(runs / "fwd"), "--input", str(runs / "x.npy"), "--strength", "0.5", "--steps", "2",
                 "--out", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (20, 2) and np.isfinite(y).all()
    assert "edited (strength 0.5, N = 2)" in capsys.readouterr().out
    assert main(["edit", "--run", str(runs / "fwd"), "--input", str(runs / "x.npy"), "--noise-level", "0.3", "--mean",
                 "--steps", "1", "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 1000
    np.save(tmp_path / "mask.npy", np.array([1.0, 0.0], dtype=np.float32))
    assert main(["edit", "--run", str(runs / "fwd"), "--input", str(runs / "x.npy"), "--mask", str(tmp_path / "mask.npy"),
                 "--steps", "2", "--out", str(tmp_path / "i.npy")]) == 0
    filled = np.load(tmp_path / "i.npy")
    assert np.array_equal(filled[:, 0], np.load(runs / "x.npy")[:, 0])


def test_encode_decode_round_trip_and_interpolation(runs, tmp_path):
    codes, back = tmp_path / "z.npy", tmp_path / "b.npy"
    assert main(["encode", "--run", str(runs / "full"), "--input", str(runs / "x.npy"), "--steps", "2", "--out", str(codes)]) == 0
    assert main(["decode", "--run", str(runs / "full"), "--input", str(codes), "--steps", "2", "--out", str(back)]) == 0
    assert np.load(codes).shape == np.load(back).shape == (20, 2)
    assert main(["decode", "--run", str(runs / "full"), "--input", str(codes), "--steps", "1", "--interpolate", "5",
                 "--out", str(tmp_path / "path.npy")]) == 0
    assert np.load(tmp_path / "path.npy").shape == (5, 2)


def test_a_trig_run_encodes_and_scores_by_its_code(runs, tmp_path):
    """Codes do not depend on the interpolant (its ends are the same); edit and the restoration
    scores do, and are refused (test_bad_input_is_one_line_with_status_2)."""
    assert main(["encode", "--run", str(runs / "trig"), "--input", str(runs / "x.npy"), "--steps", "2",
                 "--out", str(tmp_path / "z.npy")]) == 0
    assert main(["score", "--run", str(runs / "trig"), "--input", str(runs / "x.npy"), "--kind", "code", "--steps", "2",
                 "--out", str(tmp_path / "s.csv")]) == 0
    assert len(list(csv.DictReader((tmp_path / "s.csv").read_text().splitlines()))) == 20


def test_score_writes_one_row_per_input(runs, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["score", "--run", str(runs / "fwd"), "--input", str(runs / "x.npy"), "--draws", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 20 and all(np.isfinite(float(r["score"])) for r in rows)
    assert "6 network calls each" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["encode", "--run", "{fwd}", "--input", "{x}", "--steps", "1", "--out", "{tmp}/z.npy"], "loss.full_square=true"),
    (["edit", "--run", "{fwd}", "--input", "{x}", "--strength", "1.5", "--steps", "1", "--out", "{tmp}/y.npy"],
     "strength must lie in (0, 1]"),
    (["edit", "--run", "{fwd}", "--input", "{x}", "--steps", "1", "--out", "{tmp}/y.npy"], "give --strength"),
    (["edit", "--run", "{fwd}", "--input", "{bad}", "--strength", "0.5", "--steps", "1", "--out", "{tmp}/y.npy"],
     "this run needs [N, 2]"),
    (["edit", "--run", "{fwd}", "--input", "{tmp}/none.npy", "--strength", "0.5", "--steps", "1", "--out", "{tmp}/y.npy"],
     "does not exist"),
    (["score", "--run", "{fwd}", "--input", "{x}", "--out", "{tmp}/s.txt"], "use .csv"),
    (["score", "--run", "{fwd}", "--input", "{x}", "--kind", "code", "--out", "{tmp}/s.csv"], "loss.full_square=true"),
    (["edit", "--run", "{fwd}", "--input", "{x}", "--strength", "0.5", "--steps", "1", "--class", "1", "--out",
      "{tmp}/y.npy"], "--class needs a class-conditional run"),
    (["edit", "--run", "{fwd}", "--input", "{x}", "--strength", "0.5", "--steps", "1", "--device", "nonsense", "--out",
      "{tmp}/y.npy"], "is not available here"),
    (["decode", "--run", "{fwd}", "--input", "{x}", "--steps", "1", "--out", "{tmp}/y.npy"], "loss.full_square=true"),
    (["edit", "--run", "{trig}", "--input", "{x}", "--strength", "0.5", "--steps", "1", "--out", "{tmp}/y.npy"],
     "flowmaps edit uses the linear interpolant's formulas and this run was trained with interpolant=trig"),
    (["score", "--run", "{trig}", "--input", "{x}", "--out", "{tmp}/y.csv"],
     "flowmaps score --kind denoise uses the linear interpolant's formulas"),
])
def test_bad_input_is_one_line_with_status_2(runs, tmp_path, capsys, argv, message):
    np.save(tmp_path / "bad.npy", np.zeros((4, 3), dtype=np.float32))
    subs = {"fwd": str(runs / "fwd"), "trig": str(runs / "trig"), "x": str(runs / "x.npy"), "bad": str(tmp_path / "bad.npy"), "tmp": str(tmp_path)}
    assert main([a.format(**subs) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "y.npy").exists() and not (tmp_path / "z.npy").exists() and not (tmp_path / "y.csv").exists()


def test_image_run_reads_and_writes_folders(tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "digits"
    assert main(["train", "--preset", "digits-cpu", "--out", str(run), "--set", "train.steps=2", "--set", "train.progress=false",
                 "--set", "train.batch_size=16", "--no-eval"]) == 0
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(src / "a" / f"{i}.png")
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[:, :4] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    assert main(["edit", "--run", str(run), "--input", str(src), "--mask", str(tmp_path / "mask.png"), "--steps", "2",
                 "--out", str(out)]) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == ["a/0.png", "a/1.png", "a/2.png"]
    with Image.open(out / "a" / "0.png") as a, Image.open(src / "a" / "0.png") as b:
        restored, original = np.asarray(a), np.asarray(b.resize((8, 8), Image.BOX))
    assert np.abs(restored[:, :4].astype(int) - original[:, :4]).max() <= 1  # the known half is kept
    assert main(["score", "--run", str(run), "--input", str(src), "--draws", "1", "--out", str(tmp_path / "s.csv")]) == 0
    assert [r["name"] for r in csv.DictReader((tmp_path / "s.csv").read_text().splitlines())] == ["a/0.png", "a/1.png", "a/2.png"]


def test_a_mask_file_of_the_wrong_shape_is_named_as_the_mask(runs, tmp_path, capsys):
    (tmp_path / "m.csv").write_text("a,b,c\n1,0,1\n0,1,1\n")
    assert main(["edit", "--run", str(runs / "fwd"), "--input", str(runs / "x.npy"), "--mask", str(tmp_path / "m.csv"),
                 "--steps", "1", "--out", str(tmp_path / "y.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"flowmaps: error: --mask {str(tmp_path / 'm.csv')!r}") and len(err.strip().splitlines()) == 1
