"""The fault suite (issue 32): the accidents of real use, each asserting its outcome.

Concurrent starts, a full disk at each kind of write (a kernel ENOSPC from /dev/full where the
platform has it, else an injected writer that raises ENOSPC at the n-th write), a truncated and a
bit-flipped file in the newest checkpoint, a stop signal at random steps (the resumed run equals
the uninterrupted one bit for bit), a second signal, Ctrl-C during evaluation.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from flowmaps import cli
from flowmaps.config import build_config, preset
from flowmaps.errors import DiskFullError, Interrupted, RunError, RunLocked
from flowmaps.run import load_run
from flowmaps.train import checkpoint as ckpt_mod
from flowmaps.train import snapshots as snap_mod
from flowmaps.train import trainer as trainer_mod
from flowmaps.train.checkpoint import list_checkpoints, verify_checkpoint
from flowmaps.train.lock import acquire_run_lock, holds_run_lock, release_run_lock
from flowmaps.train.stop import StopSignals
from flowmaps.train.trainer import Trainer

FLOWMAPS = [sys.executable, "-m", "flowmaps.cli"]


def _cfg(**train):
    base = preset("gaussian")
    base["net"] = {"kind": "mlp", "width": 32, "depth": 2}
    base["train"].update({"batch_size": 64, "progress": False, "log_every": 5, "ckpt_every": 10,
                          "ema_snapshots": 4, **train})
    return build_config(base)


def _same_weights(a: Trainer, b: Trainer) -> None:
    for (k, x), y in zip(a.fm.state_dict().items(), b.fm.state_dict().values()):
        assert torch.equal(x, y), k
    for d in a.ema.names:
        for k, x in a.ema.state(d).items():
            assert torch.equal(x, b.ema.state(d)[k]), k


def _no_temporaries(run: Path) -> None:
    for sub in ("checkpoints", "ema_snapshots"):
        d = run / sub
        if d.is_dir():
            assert not [p.name for p in d.iterdir() if p.name.startswith(".")], sub
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted 30-step run every interrupted one is compared with."""
    tr = Trainer(_cfg(steps=30), tmp_path_factory.mktemp("straight") / "run")
    tr.fit()
    return tr


# -- one writer per run folder -----------------------------------------------------------------

def _hold_lock_in_another_process(run: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from flowmaps.train.lock import acquire_run_lock; "
        f"acquire_run_lock({str(run)!r}); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    holder = _hold_lock_in_another_process(run)
    try:
        with pytest.raises(RunLocked, match=f"process {holder.pid} on .*kill {holder.pid}"):
            Trainer(_cfg(steps=10), run)
        assert not (run / "config.yaml").exists()  # the refused start wrote nothing
        rc = cli.main(["train", "--preset", "gaussian", "--out", str(run), "--set", "train.steps=10", "--no-eval"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and f"being trained by process {holder.pid}" in err[0]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert (run / "train.lock").is_file()  # SIGKILL left the file; the kernel dropped the lock
    tr = Trainer(_cfg(steps=10), run)
    assert f"left by process {holder.pid}" in capsys.readouterr().err
    tr.fit()
    assert not (run / "train.lock").exists() and not holds_run_lock(run)


def test_the_lock_is_counted_within_a_process_and_read_only_commands_work_while_a_run_trains(tmp_path, straight):
    run = tmp_path / "r"
    acquire_run_lock(run)
    acquire_run_lock(run)
    release_run_lock(run)
    assert (run / "train.lock").is_file()
    release_run_lock(run)
    assert not run.exists()  # taking the lock made the folder; nothing else was written: gone again
    holder = _hold_lock_in_another_process(straight.out)
    try:
        assert load_run(straight.out).step == 30  # sample / eval / report read while training holds the lock
        info = subprocess.run([*FLOWMAPS, "info", "--run", str(straight.out)], capture_output=True, text=True)
        assert info.returncode == 0 and f"held by process {holder.pid}" in info.stdout
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    (straight.out / "train.lock").unlink()


def test_without_flock_the_file_is_the_lock(tmp_path, monkeypatch, capsys):
    """Windows has no flock: an exclusively created file, taken over when its holder is gone."""
    import socket

    from flowmaps.train import lock

    monkeypatch.setattr(lock, "fcntl", None)
    run = tmp_path / "w"
    run.mkdir()
    live = {"host": socket.gethostname(), "pid": os.getppid(), "started": 0}
    (run / "train.lock").write_text(json.dumps(live))
    with pytest.raises(RunLocked, match=f"process {os.getppid()}"):
        acquire_run_lock(run)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / "train.lock").write_text(json.dumps({**live, "pid": int(dead.stdout)}))
    acquire_run_lock(run)
    assert "left by process" in capsys.readouterr().err
    assert json.loads((run / "train.lock").read_text())["pid"] == os.getpid()
    release_run_lock(run)
    assert not (run / "train.lock").exists()


def test_two_starts_into_one_folder_at_once_train_once(tmp_path):
    """A double click: two identical commands started together; one trains, the other is refused
    in one line, and the run's metrics are one run's."""
    run = tmp_path / "twice"
    cmd = [*FLOWMAPS, "train", "--preset", "gaussian", "--out", str(run), "--no-eval", "--set", "train.steps=40",
           "--set", "train.progress=false", "--set", "net.width=32", "--set", "net.depth=2", "--set", "train.batch_size=64"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    refused = [err for p, (_, err) in zip(procs, outs) if p.returncode != 0]
    assert codes == [0, 2], outs
    assert len(refused[0].strip().splitlines()) == 1
    assert "being trained by process" in refused[0] or "already holds a run" in refused[0]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 40
    assert verify_checkpoint(list_checkpoints(run / "checkpoints")[-1]) is None


# -- a full disk ---------------------------------------------------------------------------------

def _enospc_at(n: int, monkeypatch) -> list:
    """Make the n-th binary write of the run (checkpoint files and snapshots, in order) fail with
    ENOSPC; returns the list of files written, for the test to read."""
    written: list = []
    real = ckpt_mod.write_file

    def write(path, data):
        written.append(Path(path).name)
        if len(written) == n:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(ckpt_mod, "write_file", write)
    monkeypatch.setattr(snap_mod, "write_file", write)
    return written


# A 30-step run with ckpt_every 10 and snapshots at 8, 15, 22, 30 writes, in order: the snapshot
# at 8, step-10's model, ema, state, manifest, the snapshot at 15, step-20's four files, ...
WRITES = {"snapshot": 6, "model": 7, "ema": 8, "state": 9, "manifest": 10}


@pytest.mark.parametrize("kind", list(WRITES))
def test_a_full_disk_at_each_kind_of_write_ends_in_one_line_and_loses_nothing(kind, tmp_path, monkeypatch, straight):
    run = tmp_path / "full"
    written = _enospc_at(WRITES[kind], monkeypatch)
    tr = Trainer(_cfg(steps=30), run)
    with pytest.raises(DiskFullError) as e:
        tr.fit()
    msg = str(e.value)
    assert written[-1] in msg or kind == "snapshot"
    assert "\n" not in msg and "MB free" in msg and "step-00000010" in msg
    assert f"flowmaps train --resume --out {run}" in msg
    _no_temporaries(run)
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-00000010"]
    assert verify_checkpoint(run / "checkpoints" / "step-00000010") is None
    assert not holds_run_lock(run)
    monkeypatch.undo()  # space freed: the resumed run ends where the uninterrupted one does
    resumed = Trainer(_cfg(steps=30), run, resume=True)
    resumed.fit()
    _same_weights(straight, resumed)


def test_a_full_disk_before_the_first_checkpoint_says_to_start_again(tmp_path, monkeypatch):
    _enospc_at(2, monkeypatch)  # step-10's model file
    with pytest.raises(DiskFullError, match="no checkpoint was written yet"):
        Trainer(_cfg(steps=30), tmp_path / "r").fit()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this platform")
def test_a_real_enospc_on_the_metrics_log(tmp_path, straight):
    """The kernel's own ENOSPC (/dev/full) on the metrics log: one line, the checkpoint kept."""
    run = tmp_path / "m"
    tr = Trainer(_cfg(steps=30, log_every=12), run)
    (run / "metrics.jsonl").symlink_to("/dev/full")
    with pytest.raises(DiskFullError, match=r"metrics.jsonl .*step-00000010.*--resume"):
        tr.fit()
    (run / "metrics.jsonl").unlink()
    resumed = Trainer(_cfg(steps=30, log_every=12), run, resume=True)
    resumed.fit()
    _same_weights(straight, resumed)


def test_a_disk_that_cannot_hold_the_run_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trainer_mod, "free_bytes", lambda path: 1_000_000)
    with pytest.raises(DiskFullError, match=r"will write about .* MB .* 1.0 MB is free .*train.keep_ckpts"):
        Trainer(_cfg(steps=30), tmp_path / "small").fit()
    assert not list_checkpoints(tmp_path / "small" / "checkpoints")
    tr = Trainer(_cfg(steps=30), tmp_path / "tight")
    monkeypatch.setattr(trainer_mod, "free_bytes", lambda path: int(1.5 * tr.space_needed()))
    tr.fit()
    assert "tight" in capsys.readouterr().err


# -- damaged checkpoints -------------------------------------------------------------------------

def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how,name", [("truncated", "ema.safetensors"), ("bit-flipped", "model.safetensors"),
                                      ("bit-flipped", "state.pt")])
def test_a_damaged_newest_checkpoint_is_passed_over(how, name, tmp_path, capsys, straight):
    run = tmp_path / "d"
    Trainer(_cfg(steps=20), run).fit()
    newest = run / "checkpoints" / "step-00000020"
    _damage(newest / name, how)
    why = verify_checkpoint(newest)
    assert why is not None and name in why
    info = subprocess.run([*FLOWMAPS, "info", "--run", str(run)], capture_output=True, text=True)
    assert info.returncode == 0 and "step-00000020" in info.stdout and "DAMAGED" in info.stdout
    assert "step-00000010" in info.stdout and "intact" in info.stdout
    capsys.readouterr()
    assert load_run(run).step == 10  # sample / eval take the newest intact one, with a note
    assert "step-00000020 is damaged" in capsys.readouterr().err
    with pytest.raises(RunError, match="damaged"):
        ckpt_mod.load_checkpoint(newest)
    resumed = Trainer(_cfg(steps=30), run, resume=True)
    assert resumed.step == 10 and "passing over it" in capsys.readouterr().err
    resumed.fit()
    _same_weights(straight, resumed)


def test_every_checkpoint_damaged_is_one_line(tmp_path):
    run = tmp_path / "all"
    Trainer(_cfg(steps=10), run).fit()
    _damage(run / "checkpoints" / "step-00000010" / "model.safetensors", "truncated")
    with pytest.raises(RunError, match="no intact checkpoint"):
        Trainer(_cfg(steps=20), run, resume=True)
    with pytest.raises(RunError, match="every checkpoint .* is damaged"):
        load_run(run)


# -- a graceful stop -----------------------------------------------------------------------------

def _signal_at(tr: Trainer, step: int, signum: int, monkeypatch) -> None:
    real = tr.train_step

    def step_then_signal(stage=None):
        rec = real(stage)
        if tr.step == step:
            os.kill(os.getpid(), signum)
        return rec

    monkeypatch.setattr(tr, "train_step", step_then_signal)


@pytest.mark.parametrize("signum,at", [(signal.SIGTERM, int(s)) for s in torch.randint(1, 30, (2,),
                                       generator=torch.Generator().manual_seed(32))]
                         + [(signal.SIGINT, 10), (signal.SIGUSR1, 23)])
def test_a_stop_signal_checkpoints_the_step_and_the_resumed_run_is_bit_exact(signum, at, tmp_path, monkeypatch, straight):
    run = tmp_path / "s"
    tr = Trainer(_cfg(steps=30), run)
    _signal_at(tr, at, signum, monkeypatch)
    with pytest.raises(Interrupted) as e:
        tr.fit()
    assert e.value.signum == signum and 128 + e.value.signum in (130, 143, 138)
    assert f"after step {at} of 30" in str(e.value) and f"flowmaps train --resume --out {run}" in str(e.value)
    assert list_checkpoints(run / "checkpoints")[-1].name == f"step-{at:08d}"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or signum != signal.SIGTERM  # handlers put back
    _no_temporaries(run)
    monkeypatch.undo()
    resumed = Trainer(_cfg(steps=30), run, resume=True)
    resumed.fit()
    _same_weights(straight, resumed)


def test_a_second_signal_stops_at_once():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)


def test_sigterm_to_the_command_exits_143_with_the_resume_command(tmp_path):
    run = tmp_path / "cli"
    proc = subprocess.Popen([*FLOWMAPS, "train", "--preset", "gaussian", "--out", str(run), "--no-eval",
                             "--set", "train.steps=1000000", "--set", "train.progress=false", "--set", "train.log_every=5",
                             "--set", "net.width=32", "--set", "net.depth=2", "--set", "train.batch_size=64"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 90
    while not (metrics.is_file() and metrics.stat().st_size) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert "stopped by SIGTERM after step" in last and f"resume with: flowmaps train --resume --out {run}" in last
    step = int(last.split("after step ")[1].split()[0])
    assert list_checkpoints(run / "checkpoints")[-1].name == f"step-{step:08d}"
    assert verify_checkpoint(list_checkpoints(run / "checkpoints")[-1]) is None
    assert not (run / "train.lock").exists()


def test_ctrl_c_during_evaluation_keeps_the_trained_run(tmp_path, monkeypatch, capsys):
    def interrupted(trainer):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.pipeline, "finish", interrupted)
    run = tmp_path / "e"
    rc = cli.main(["train", "--preset", "gaussian", "--out", str(run), "--set", "train.steps=10", "--set", "net.width=32",
                   "--set", "net.depth=2", "--set", "train.batch_size=64", "--set", "train.progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and "interrupted while evaluating" in err[-1] and f"flowmaps eval --run {run}" in err[-1]
    assert verify_checkpoint(list_checkpoints(run / "checkpoints")[-1]) is None
    assert not (run / "train.lock").exists()
    _no_temporaries(run)


def test_a_full_disk_while_evaluating_is_one_line(tmp_path, monkeypatch, capsys):
    def full(trainer):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "e" / "eval.json"))

    monkeypatch.setattr(cli.pipeline, "finish", full)
    rc = cli.main(["train", "--preset", "gaussian", "--out", str(tmp_path / "e"), "--set", "train.steps=10",
                   "--set", "net.width=32", "--set", "net.depth=2", "--set", "train.batch_size=64",
                   "--set", "train.progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "no space left on the disk writing" in err[-1] and "eval.json" in err[-1]
