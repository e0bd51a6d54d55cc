"""train.compile: the network part of a step as one graph, with no graph break and no
recompilation, for each network and method. Capture is Dynamo's and the backward AOTAutograd's
whatever the code generator, so most cases trace with the ``aot_eager`` backend (seconds);
one MLP case compiles with Inductor, the backend training uses."""
import json

import pytest
import torch
import torch._dynamo
import yaml
from torch._dynamo.utils import counters

from flowmaps.config import ConfigError, preset
from flowmaps.losses.curriculum import FULL, CurriculumStage
from flowmaps.train import compiled as compiled_mod
from flowmaps.train import trainer as trainer_mod
from flowmaps.train.trainer import Trainer

from ..helpers import small_config


def _mlp(method="lsd", **over):
    return small_config("gaussian", method, {"kind": "mlp", "width": 32, "depth": 2},
                        {"steps": 12, "batch_size": 64, "progress": False, "log_every": 4, "ckpt_every": 100,
                         "ema_snapshots": 0}, **over)


def _digits(name, method, net, **over):
    return small_config(name, method, {**preset(name)["net"], **net},
                        {"steps": 12, "minutes": None, "batch_size": 16, "progress": False, "log_every": 4,
                         "ckpt_every": 100, "ema_snapshots": 0}, **over)


UNET = {"model_channels": 8, "channels_per_head": 8, "channel_mult": [1], "attn_resolutions": []}
DIT = {"width": 32, "depth": 1, "heads": 2}


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    Trainer(_mlp("fm", train={"steps": 5}), out).fit()
    return str(out)


def _traced(trainer: Trainer, stages) -> list[float]:
    """Losses of one step per stage after switching to a compiled (aot_eager) step; resets Dynamo."""
    torch._dynamo.reset()
    counters.clear()
    trainer.set_compiled(True, backend="aot_eager")
    return [trainer.train_step(stage)["loss"] for stage in stages]


def _assert_one_graph_per_stage(n_stages: int) -> None:
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == n_stages


CASES = [
    ("mlp", m, {}) for m in ("fm", "lsd", "lsd-semigrad", "esd", "psd-u", "psd-m", "meanflow", "shortcut", "ct")
] + [("mlp", "esd", {"loss": {"esd_stopgrad": v}}) for v in ("convex", "none", "semigradient")] + [
    ("mlp", "lsd", {"loss": {"coupling": "minibatch_ot", "coupling_chunk": 16}}),
    ("edm2", "lsd", {}), ("dit", "lsd", {}), ("dit", "psd-m", {}),
]
"""Every method on the MLP; the UNet (about 25 s of tracing) and the DiT on the JVP-heavy LSD and
a JVP-free PSD, the networks' own code being what differs between them."""


@pytest.mark.parametrize("kind,method,over", CASES, ids=[f"{k}-{m}-{i}" for i, (k, m, _) in enumerate(CASES)])
def test_each_network_and_method_is_one_graph_per_stage(tmp_path, kind, method, over):
    if kind == "mlp":
        cfg = _mlp(method, **over)
    else:
        cfg = _digits("digits-cpu" if kind == "edm2" else "digits-dit-cpu", method, UNET if kind == "edm2" else DIT, **over)
    tr = Trainer(cfg, tmp_path / "run")
    stages = [FULL, FULL, CurriculumStage(max_gap=0.3), CurriculumStage(diagonal_only=True), FULL]
    if method == "fm":
        stages = [FULL, FULL]  # flow matching has one stage
    losses = _traced(tr, stages)
    _assert_one_graph_per_stage(1 if method == "fm" else 2)
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.parametrize("method", ["lmd", "emd", "pfmm"])
def test_distillation_from_a_trained_run_is_one_graph(tmp_path, teacher_run, method):
    tr = Trainer(_mlp(method, teacher={"run": teacher_run}), tmp_path / "run")
    _traced(tr, [FULL, FULL, FULL])
    _assert_one_graph_per_stage(1)


@pytest.mark.parametrize("method", ["lsd"])
def test_guided_maps_are_one_graph(tmp_path, method):
    """The guided form (eq 100) and the guided flow-matching target, on the DiT."""
    cfg = _digits("digits-cond-cpu", method, {"kind": "dit", **DIT})
    tr = Trainer(cfg, tmp_path / "run")
    _traced(tr, [FULL, FULL, FULL])
    _assert_one_graph_per_stage(1)


def test_a_compiled_step_takes_the_eager_steps_values(tmp_path):
    """The same draws through the eager and the compiled (aot_eager) loss: the same loss and
    gradients, so a compiled run trains the same model."""
    tr = Trainer(_mlp("lsd"), tmp_path / "run")
    x1, _ = tr.source.batch(0, 0, 0, 1, 64)
    draws = tr.objective.draw(x1, {}, torch.Generator().manual_seed(0))
    grads = []
    for compiled in (False, True):
        torch._dynamo.reset()
        tr.set_compiled(compiled, backend="aot_eager")
        tr.opt.zero_grad(set_to_none=True)
        out = tr._loss(draws)
        out.loss.backward()
        grads.append((out.loss.detach(), [p.grad.clone() for p in tr.fm.parameters()]))
    (l0, g0), (l1, g1) = grads
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_a_whole_run_with_a_curriculum_compiles_once_per_stage_with_inductor(tmp_path):
    """train.compile=on: the real backend, a run through its curriculum's three stages (flow
    matching only, the growing jump, the full objective): two graphs, no recompilation, and the
    run's choice recorded."""
    torch._dynamo.reset()
    counters.clear()
    cfg = _mlp("lsd", loss={"curriculum_fm": 0.25, "curriculum_ramp": 0.25}, train={"compile": "on", "steps": 12})
    tr = Trainer(cfg, tmp_path / "run")
    tr.fit()
    _assert_one_graph_per_stage(2)
    assert counters["stats"]["unique_graphs"] == 2 and tr.compiled


def test_compile_needs_the_explicit_tangents(tmp_path):
    with pytest.raises(ConfigError, match="train.compile=on needs the networks' explicit tangents"):
        Trainer(_mlp("lsd", loss={"jvp_backend": "func"}, train={"compile": "on"}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_auto_does_not_compile_when_the_compile_would_cost_more_than_its_share(tmp_path, capsys):
    """A 3-second budget cannot pay for a compile: auto measures, says why, stays eager, and the
    choice is saved so that a resume takes the same steps."""
    tr = Trainer(_mlp("lsd", train={"compile": "auto", "minutes": 0.05}), tmp_path / "run")
    tr.fit()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["compile"]["choice"] == "off" and not tr.compiled
    assert "not compiled: compiling would take about" in meta["compile"]["why"]
    assert "train.compile=auto: not compiled" in capsys.readouterr().err
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["compile"] == "off"


@pytest.mark.parametrize("budgeted", [True, False])
def test_auto_measures_a_compiled_step_and_remembers_the_compile(tmp_path, monkeypatch, budgeted):
    """With a compile predicted cheap, auto compiles inside the (throwaway) probe, times the
    compiled steps against the eager ones, keeps the faster, records both in run.json, and
    remembers the compile's seconds: the next run of the same configuration predicts from them."""
    monkeypatch.setattr(compiled_mod, "_memory_file", lambda: tmp_path / "cache" / "seconds.json")
    monkeypatch.setattr(compiled_mod, "SECONDS_PER_OP", 1e-9)
    monkeypatch.setattr(trainer_mod, "compiled_loss",
                        lambda objective, fm, autocast, backend: compiled_mod.compiled_loss(objective, fm, autocast, "aot_eager"))
    train = {"compile": "auto", "minutes": 0.05} if budgeted else {"compile": "auto", "steps": 10000, "max_steps": None}
    for i in range(2):
        torch._dynamo.reset()
        tr = Trainer(_mlp("lsd", train=train), tmp_path / f"run{i}")
        if budgeted:
            tr.fit()
        else:
            tr.plan_compile()
        info = json.loads((tmp_path / f"run{i}" / "run.json").read_text())["compile"]
        assert info["choice"] in ("on", "off") and tr.compiled == (info["choice"] == "on")
        if i == 0:
            assert info["predicted_from"].endswith("operations per step")
            assert info["compile_seconds"] >= 0 and info["compiled_step_seconds"] > 0 and info["eager_step_seconds"] > 0
            assert info["choice"] == ("on" if info["compiled_step_seconds"] < 0.97 * info["eager_step_seconds"] else "off")
            first = info["compile_seconds"]
        else:  # predicted from the first run's compile, whose graph the cache now holds
            assert info["predicted_from"].startswith("a quarter of this configuration's first compile")
            assert info["predicted_compile_seconds"] == pytest.approx(0.25 * first, abs=0.06)
    memory = json.loads((tmp_path / "cache" / "seconds.json").read_text())
    (entry,) = memory.values()
    assert entry["cold"] == pytest.approx(first, abs=0.06) and entry["speedup"] > 0


def test_what_auto_predicts_and_when_a_compile_pays():
    """The first compile is predicted from the step's operations, a second from a quarter of the
    first (its graph in the cache), later ones from the last; with a measured speed-up the
    compile pays when the steps it saves outweigh it, without one when it is within 5%."""
    calls = []

    def ops():
        calls.append(1)
        return 1000

    assert compiled_mod.predict_compile(None, ops, 2)[0] == pytest.approx(1000 * compiled_mod.SECONDS_PER_OP * 2)
    assert compiled_mod.predict_compile({"cold": 200.0, "speedup": 1.5}, ops, 1)[0] == pytest.approx(50.0)
    assert compiled_mod.predict_compile({"cold": 200.0, "warm": 26.0}, ops, 1)[0] == 26.0
    assert len(calls) == 1  # counted only when nothing was measured
    assert compiled_mod.compile_pays(9.0, 180.0, None) and not compiled_mod.compile_pays(10.0, 180.0, None)
    # the image step measured 1.5x faster compiled: 26 s from the cache pays in 3 minutes, 192 s cold does not
    assert compiled_mod.compile_pays(26.0, 180.0, 1.5) and not compiled_mod.compile_pays(192.0, 180.0, 1.5)
    assert not compiled_mod.compile_pays(1.0, 1e6, 0.98)  # slower compiled: never again
