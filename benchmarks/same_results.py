"""Does a change of structure change any result? Train the same short, fixed-step runs and run
the same commands at a baseline revision and at this working tree, then compare what they wrote
byte for byte.

    python benchmarks/same_results.py --baseline dda0f80

Runs (each with a fixed step count, so the two trees train the same steps): the main job's preset
on the checkerboard, the Gaussian preset (its exact map), digits-cpu (the project classifier),
a folder of arrays [16, 4] and a 30-column table through ``--data`` (autoconfig), and the
class-conditional moons. Commands on them: ``sample`` (.npy, .csv, each kind's PNG), ``edit``,
``decode``, ``eval --ema auto``, ``audit``, ``score`` and two commands that must fail. Compared:
eval.json, config.yaml, audit.json, autoconfig.json, the sample pictures, every command's output
file and its printed lines (with the two trees' paths made equal; training logs and the report
hold step times and are not compared). About 5 minutes per tree on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from worktrees import ROOT, add_worktree, remove_worktree

RUNS: dict[str, list[str]] = {
    "checker": ["--preset", "checker-cpu", "--set", "train.steps=300", "--set", "eval.num_samples=20000"],
    "gauss": ["--preset", "gaussian", "--set", "net.width=32", "--set", "net.depth=2", "--set", "train.steps=40",
              "--set", "train.batch_size=64", "--set", "eval.num_samples=2000"],
    "digits": ["--preset", "digits-cpu", "--set", "train.steps=30", "--set", "eval.num_samples=200",
               "--set", "eval.steps=[1,2]", "--set", "data.cache={data}/cache"],
    "arrays": ["--data", "{data}/arrays.npy", "--set", "train.steps=30", "--set", "eval.num_samples=500"],
    "table": ["--data", "{data}/table.csv", "--set", "train.steps=50"],
    "moons": ["--data", "moons", "--set", "data.conditional=true", "--set", "train.steps=50",
              "--set", "eval.num_samples=3000"],
}
"""flowmaps train arguments of each run ({data}: the shared input folder)."""

COMMANDS: dict[str, list[str]] = {
    "sample_checker_png": ["sample", "--run", "{runs}/checker", "--steps", "2", "--num", "500", "--out", "{out}/checker.png"],
    "sample_checker_npy": ["sample", "--run", "{runs}/checker", "--steps", "2", "--num", "50", "--out", "{out}/checker.npy"],
    "sample_digits_png": ["sample", "--run", "{runs}/digits", "--steps", "1", "--num", "10", "--out", "{out}/digits.png"],
    "sample_arrays_png": ["sample", "--run", "{runs}/arrays", "--steps", "1", "--num", "8", "--out", "{out}/arrays.png"],
    "sample_moons_png": ["sample", "--run", "{runs}/moons", "--steps", "1", "--num", "300", "--class", "all",
                         "--out", "{out}/moons.png"],
    "sample_table_csv": ["sample", "--run", "{runs}/table", "--steps", "1", "--num", "20", "--out", "{out}/table.csv"],
    "sample_table_png": ["sample", "--run", "{runs}/table", "--steps", "1", "--num", "20", "--out", "{out}/table.png"],
    "edit_digits_png": ["edit", "--run", "{runs}/digits", "--input", "{data}/digits_in.npy", "--strength", "0.5",
                        "--steps", "1", "--out", "{out}/digits_edit.png"],
    "edit_checker_png": ["edit", "--run", "{runs}/checker", "--input", "{out}/checker.npy", "--strength", "0.5",
                         "--steps", "1", "--out", "{out}/checker_edit.png"],
    "decode_arrays_bad": ["decode", "--run", "{runs}/arrays", "--input", "{out}/checker.npy", "--steps", "1",
                          "--out", "{out}/arrays_decoded.png"],
    "eval_checker_auto": ["eval", "--run", "{runs}/checker", "--steps", "1,2", "--ema", "auto", "--num", "5000"],
    "audit_table": ["audit", "--run", "{runs}/table", "--steps", "1", "--num", "100"],
    "score_gauss": ["score", "--run", "{runs}/gauss", "--input", "{out}/checker.npy", "--out", "{out}/scores.csv"],
}
"""flowmaps commands on the trained runs ({runs}, {out}: this tree's folders; {data}: the inputs)."""

RUN_FILES = ("eval.json", "config.yaml", "audit.json", "autoconfig.json")


def make_inputs(data: Path) -> None:
    """The arrays, the table and the edit inputs the runs read (seeded)."""
    rng = np.random.default_rng(0)
    data.mkdir(parents=True, exist_ok=True)
    np.save(data / "arrays.npy", rng.standard_normal((50, 16, 4)).astype(np.float32))
    mix = rng.standard_normal((200, 30)) @ rng.standard_normal((30, 30)) * 0.3
    header = ",".join(f"c{j}" for j in range(30))
    np.savetxt(data / "table.csv", mix, delimiter=",", header=header, comments="")
    np.save(data / "digits_in.npy", rng.uniform(-1, 1, (4, 1, 8, 8)).astype(np.float32))


def run_tree(src: Path, root: Path, data: Path) -> dict[str, int]:
    """Train every run and run every command with the flowmaps of ``src``; returns exit codes."""
    runs, out = root / "runs", root / "out"
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    codes = {}

    def flowmaps(name: str, args: list[str], log: Path) -> None:
        args = [a.format(data=data, runs=runs, out=out) for a in args]
        with open(log, "w") as f:
            codes[name] = subprocess.run([sys.executable, "-m", "flowmaps.cli", *args], env=env, cwd=str(src),
                                         stdout=f, stderr=subprocess.STDOUT).returncode

    for name, args in RUNS.items():
        flowmaps(name, ["train", "--out", str(runs / name), "--set", "train.progress=false", *args], root / f"{name}.train.log")
    for name, args in COMMANDS.items():
        flowmaps(name, args, out / f"{name}.log")
    return codes


def compare(a: Path, b: Path) -> list[tuple[str, str]]:
    """(file, 'same' / 'DIFFERENT' / 'only in one') for every compared output."""
    rows = []
    for name in RUNS:
        for f in sorted({*RUN_FILES, *(p.name for t in (a, b) for p in (t / "runs" / name).glob("samples-*.png"))}):
            pa, pb = a / "runs" / name / f, b / "runs" / name / f
            if pa.exists() or pb.exists():
                rows.append((f"runs/{name}/{f}", _same(pa, pb, a, b)))
    for f in sorted({p.name for t in (a, b) for p in (t / "out").iterdir()}):
        rows.append((f"out/{f}", _same(a / "out" / f, b / "out" / f, a, b)))
    return rows


def _same(pa: Path, pb: Path, a: Path, b: Path) -> str:
    if not (pa.exists() and pb.exists()):
        return "only in one"
    x, y = pa.read_bytes(), pb.read_bytes()
    if pa.suffix in (".log", ".json", ".yaml"):  # each tree's own folder names appear in them
        x = re.sub(rb"/[^\s\"']*?/(baseline|this-tree)/", b"/TREE/", x)
        y = re.sub(rb"/[^\s\"']*?/(baseline|this-tree)/", b"/TREE/", y)
    return "same" if x == y else "DIFFERENT"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="HEAD", help="the git revision to compare this working tree with")
    ap.add_argument("--out", help="keep the outputs here (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    keep = Path(args.out) if args.out else None
    work = keep or Path(tempfile.mkdtemp(prefix="flowmaps-same-"))
    make_inputs(work / "data")
    base = add_worktree(args.baseline)
    try:
        codes = {label: run_tree(src, work / label, work / "data")
                 for label, src in (("baseline", base), ("this-tree", ROOT))}
    finally:
        remove_worktree(base)
    print(f"command: python {' '.join(sys.argv)}; baseline {args.baseline} against the working tree\n")
    print("| output | baseline exit | this tree exit | bytes |")
    print("|---|---|---|---|")
    for name in [*RUNS, *COMMANDS]:
        if codes["baseline"][name] != codes["this-tree"][name]:
            print(f"| {name} (exit status) | {codes['baseline'][name]} | {codes['this-tree'][name]} | |")
    rows = compare(work / "baseline", work / "this-tree")
    for f, verdict in rows:
        print(f"| {f} | | | {verdict} |")
    differ = [f for f, v in rows if v != "same"]
    print(f"\n{len(rows) - len(differ)} of {len(rows)} outputs identical" + (f"; differ: {', '.join(differ)}" if differ else ""))
    if keep is None:
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
