"""Recipes: the numbers of the named presets and of ``flowmaps train --data``'s choices, each once.

A fragment is a list of :class:`Choice` (a dotted config key, its value and why). The same
fragments serve two uses. ``--data`` (:mod:`flowmaps.autoconfig`) prints each choice with its
reason. The CPU presets are fragments turned into a config layer (:func:`as_layer`) plus the
keys of their own. So ``checker-cpu`` is the 2-D points recipe on a CPU, and ``digits-cpu`` the
image recipe. The paper's presets are spelled out as Table 2 gives them; their UNets are
:data:`flowmaps.nets.edm2.PRESETS`. The values were measured (``benchmarks/recipe_study.py``
and benchmarks/README.md); the reasons say how.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Iterable

from .nets.edm2 import PRESETS as EDM2_PRESETS


@dataclass
class Choice:
    """One automatic setting: a dotted config key, its value and why."""

    key: str
    value: Any
    why: str


def nested(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``[("train.lr", 1e-3), ...]`` -> ``{"train": {"lr": 1e-3}, ...}``: dotted keys as a config layer."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def as_layer(choices: list[Choice]) -> dict[str, Any]:
    """The choices as a config layer (nested dict) for :func:`flowmaps.config.build_config`."""
    return nested((c.key, copy.deepcopy(c.value)) for c in choices)


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Config layers merged key by key, later ones winning (nested dicts merge, others replace)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# -- fragments -------------------------------------------------------------------------------------
def self_distillation() -> list[Choice]:
    """The method, schedule, weight averages and precision of every recipe made for a budget."""
    return [
        Choice("method", "lsd", "Lagrangian self-distillation: the paper's best at few steps"),
        Choice("train.schedule", "wsd", "warm-up, constant, linear decay to zero: beat cosine and inverse-sqrt"),
        Choice("train.ema_sigma_rel", [0.05, 0.1], "power EMAs that fit any run length; evaluation picks the best"),
        Choice("train.ema_snapshots", 16, "snapshots for post-hoc EMA reconstruction ('flowmaps ema')"),
        Choice("eval.ema", "auto", "best of raw, tracked and reconstructed EMAs on a quick metric"),
        Choice("train.precision", "auto", "bfloat16 where the device runs it fast"),
    ]


def coupling(name: str) -> Choice:
    """Minibatch OT, except on the sets scored against the independent coupling's exact map."""
    if name in ("gaussian", "gmm"):
        return Choice("loss.coupling", "independent", "the exact map this set is scored against is the independent "
                                                      "coupling's (the paper's)")
    return Choice("loss.coupling", "minibatch_ot", "straighter paths: the main job's KL at N = 1 / 4 went from "
                                                   "0.26 / 0.19 to 0.16 / 0.10")


def points_mlp(dim: int) -> dict[str, Any]:
    """The MLP for points (or flat arrays) of ``dim`` coordinates: 256 x 4 up to 8, wider above."""
    return {"kind": "mlp", "width": 256 if dim <= 8 else min(1024, 256 * (1 + dim // 16)), "depth": 4,
            "activation": "silu"}


RESOLUTIONS = (8, 16, 32, 64, 128, 256)
"""Image resolutions a UNet is sized for (autoconfig picks one of them for a folder of images)."""


def dit_patch(shape: tuple[int, ...], max_tokens: int) -> int:
    """The patch size that divides the item's grid and leaves the token count ([C, H, W]:
    (H / p)(W / p); [L, C]: L / p) nearest to ``max_tokens`` by ratio, the smaller count on a tie:
    8 for 32 x 32 and 16 tokens, 7 for 28 x 28 (16 tokens), 2 for 14 x 14 (49 tokens rather than
    patch 7's 4, which measured far worse: benchmarks/README.md)."""
    grid = _token_axes(shape)
    fits = [p for p in range(1, min(grid) + 1) if all(g % p == 0 for g in grid)]
    return min(fits, key=lambda p: (abs(math.log(dit_tokens(shape, p) / max_tokens)), dit_tokens(shape, p)))


def _token_axes(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes a DiT cuts into patches: (H, W) of [C, H, W], (L,) of [L, C]."""
    return shape[1:] if len(shape) == 3 else shape[:1]


def dit_tokens(shape: tuple[int, ...], patch: int) -> int:
    """Tokens of an item of ``shape`` ([C, H, W] or [L, C]) cut into patches of ``patch``."""
    return math.prod(g // patch for g in _token_axes(shape))


def dit_net(shape: tuple[int, ...], cpu: bool) -> tuple[dict[str, Any], str]:
    """(the DiT for array items of ``shape``, [C, H, W] or [L, C], why): patches that leave about
    16 tokens on a CPU (small enough for minutes), 256 with DiT-S's width and depth on a GPU."""
    max_tokens = 16 if cpu else 256
    patch = dit_patch(shape, max_tokens)
    net = {"kind": "dit", "width": 128 if cpu else 384, "depth": 6 if cpu else 12, "heads": 4 if cpu else 6,
           "patch_size": patch, "learned_weight": True}
    what = "images or latents [C, H, W]" if len(shape) == 3 else "sequences [L, C]"
    why = f"{what} of shape {list(shape)}: a DiT with patch {patch} ({dit_tokens(shape, patch)} tokens, the nearest to " \
          f"{max_tokens}), " + ("small enough for minutes on a CPU" if cpu else "DiT-S's width and depth")
    return net, why


def unet_net(res: int, cpu: bool, channels: int = 32) -> tuple[dict[str, Any], str]:
    """(the EDM2 UNet for ``res`` x ``res`` images, why); a size not in :data:`RESOLUTIONS`, like
    MNIST's 28, gets two levels; ``channels``: the CPU UNet's model channels (a GPU's are set by ``res``)."""
    res_net = res if res in RESOLUTIONS else max([r for r in RESOLUTIONS if r <= res] or [8])
    levels = {8: [1, 2], 16: [1, 2], 32: [1, 2, 2], 64: [1, 2, 2, 2], 128: [1, 2, 2, 2, 2], 256: [1, 1, 2, 2, 2, 2]}[res_net]
    attn = [r for r in (16, 8, 4) if r <= res_net // 2][:1] if cpu else [r for r in (16, 8) if r <= res_net // 2]
    if res not in RESOLUTIONS:  # 28x28 (MNIST) halves to 14 and 7: two levels
        levels, attn = [1, 2], [res // 2]
    if cpu:
        net = {"kind": "edm2", "model_channels": channels, "channel_mult": levels, "num_blocks": 1,
               "attn_resolutions": attn, "channels_per_head": 32, "dropout": 0.0, "learned_weight": True}
        return net, f"a small EDM2 flow-map UNet for {res}x{res} that trains in minutes on a CPU"
    net = {"kind": "edm2", "model_channels": 64 if res <= 32 else 96, "channel_mult": levels, "num_blocks": 2,
           "attn_resolutions": attn, "channels_per_head": 64, "dropout": 0.0, "learned_weight": True}
    return net, f"an EDM2 flow-map UNet sized for {res}x{res} on a GPU"


POINTS_BATCH = 2048
"""The CPU batch of 2-D sets (beat 1,024 and 4,096 at an equal budget)."""
TABLE_BATCH = 512
"""The CPU batch of a user's table: 512 beat 2,048 on the 3,000-row Wage table at 2 minutes
(more steps in the budget; benchmarks/README.md)."""


def points_batch(name: str, cpu: bool) -> int:
    """The batch of one step (per GPU) for points: ``name`` ``points`` is a user's table."""
    return (TABLE_BATCH if name == "points" else POINTS_BATCH) if cpu else 8192


def points(name: str, dim: int, cpu: bool, processes: int = 1, net: dict[str, Any] | None = None) -> list[Choice]:
    """Points [N, dim] (``name``: a 2-D set, or ``points`` for a user's file): the MLP (``net``,
    default :func:`points_mlp`), its loss and optimiser (the main job's recipe, measured at a few
    CPU minutes)."""
    net = net or points_mlp(dim)
    table = name == "points"
    batch = points_batch(name, cpu)
    return [
        Choice("net.kind", net["kind"], f"{dim}-dimensional points"),
        Choice("net.width", net["width"], "256 fits 2-D sets in minutes; wider for more dimensions"),
        Choice("net.depth", net["depth"], "the paper's checkerboard depth"),
        Choice("net.activation", net["activation"], "measured as good as GELU at the same step time; the recipe was "
                                                    "tuned with it"),
        coupling(name),
        Choice("sigma", "adaptive", "noise scale = the data's standard deviation (the paper, 2-D)" if name != "points" else
               "noise scale = the standardised data's standard deviation"),
        Choice("loss.eta", 0.75, "the paper's split; 0.5 measured no better at N = 1 and worse at N >= 4"),
        Choice("loss.weighting", "none", "plain squared residuals"),
        Choice("train.batch_size", batch if cpu else batch * processes,
               ("a table: beat 2,048 at an equal CPU budget (more steps)" if table else
                "beat 1,024 and 4,096 at an equal CPU budget") if cpu else "per GPU step"),
        Choice("train.lr", 4e-3, "RAdam; 1e-3, 2e-3 and 8e-3 measured worse at this budget"),
        Choice("train.betas", [0.9, 0.95], "beta2 0.95 learns faster in a short run than 0.999 or 0.99"),
        Choice("loss.curriculum_fm", 0.15, "App. F.2: flow matching alone for the first 15% (cheaper steps)"),
        Choice("loss.curriculum_ramp", 0.15, "then jumps grow to the full triangle over 15%"),
        Choice("train.grad_clip", 10.0, "the paper's clip for the MLP"),
        *([] if name == "points" else [Choice("eval.num_samples", 64000 if name == "checker" else 20000,
                                              "samples per evaluation")]),
    ]


def unet_like_schedule(cpu: bool, clip_why: str) -> list[Choice]:
    """The curriculum, clipping, checkpoints and evaluated step counts of image and array data."""
    return [
        Choice("loss.curriculum_fm", 0.15, "App. F.2: flow matching alone for the first 15% (cheaper steps)"),
        Choice("loss.curriculum_ramp", 0.15, "then jumps grow to the full triangle over 15%"),
        Choice("train.grad_clip", 1.0, clip_why),
        Choice("train.ckpt_every", 500, "checkpoints"),
        Choice("eval.steps", [1, 2, 4] if cpu else [1, 2, 4, 8], "step counts to evaluate"),
    ]


def images(cpu: bool, batch: int, measured: bool = False) -> list[Choice]:
    """Images with an EDM2 UNet (the network itself is chosen by :mod:`flowmaps.autoconfig`):
    loss, optimiser, schedule and evaluation; ``measured``: the batch was chosen by timing."""
    return [
        Choice("sigma", 0.5, "images scaled to [-1, 1]: the EDM2 data std"),
        Choice("loss.eta", 0.75, "the paper's split for images"),
        Choice("loss.weighting", "auto", "the learned loss weight w_{s,t} of the UNet's head (eq 19)"),
        Choice("train.batch_size", batch, ("measured with the UNet" if measured else "fits the budget on a CPU")
               if cpu else "per GPU step"),
        Choice("train.lr", 5e-3, "RAdam with clip 1 (EDM2-style UNet)"),
        Choice("train.betas", [0.9, 0.99], "beta2 0.99 (EDM2's): digits at N = 1 went from 55 to 44 with it and the curriculum"),
        *unet_like_schedule(cpu, "the paper's clip for images"),
        Choice("eval.num_samples", 300 if cpu else 10000,
               "samples per N: Inception features cost about 0.1 s an image on a CPU (FID on few samples is biased upward)"
               if cpu else "samples per N (FID on few samples is biased upward)"),
        Choice("eval.batch_size", 250, "sampling batch"),
    ]


def transformer_optimiser() -> list[Choice]:
    """RAdam for the DiT."""
    return [
        Choice("train.lr", 1e-3, "RAdam; transformers train at a smaller rate than the EDM2 UNet's 5e-3"),
        Choice("train.betas", [0.9, 0.99], "as for images"),
    ]


def arrays(cpu: bool) -> list[Choice]:
    """Arrays of any shape (the network, a DiT or the points MLP, is chosen by autoconfig)."""
    return [
        Choice("sigma", 1.0, "arrays are normalised per channel to mean 0 and std 1"),
        Choice("loss.eta", 0.75, "the paper's split"),
        Choice("loss.weighting", "auto", "the learned loss weight w_{s,t} (eq 19)"),
        Choice("train.batch_size", 128 if cpu else 256, "fits the budget on a CPU" if cpu else "per GPU step"),
        *transformer_optimiser(),
        *unet_like_schedule(cpu, "as for images"),
        Choice("eval.num_samples", 2000 if cpu else 10000, "samples per N for the array distances"),
    ]


# -- presets ---------------------------------------------------------------------------------------
def _paper_unet(name: str) -> dict[str, Any]:
    """The ``net`` section of the paper's UNet ``name`` (:data:`flowmaps.nets.edm2.PRESETS`)."""
    arch = EDM2_PRESETS[name]
    keys = ("model_channels", "channel_mult", "num_blocks", "attn_resolutions", "dropout", "learned_weight")
    return {"kind": "edm2", **{k: copy.deepcopy(getattr(arch, k)) for k in keys}}


_EDM2_CIFAR = _paper_unet("cifar10")
_EDM2_64 = _paper_unet("64x64")
_PAPER_SCHEDULE = {"schedule": "inverse_sqrt", "warmup": 0.0, "lr_decay_steps": 35000, "ema_sigma_rel": [], "ema_snapshots": 0,
                   "skip_spikes": 0.0, "recover": 0}
_PAPER_IMAGES = {"lr": 1e-2, "grad_clip": 1.0, "ema": [0.999, 0.9999], "ckpt_every": 5000, **_PAPER_SCHEDULE}
_DIGITS_UNET = {"kind": "edm2", "model_channels": 32, "channel_mult": [1, 2], "num_blocks": 1,
                "attn_resolutions": [4], "channels_per_head": 32, "dropout": 0.0, "learned_weight": True}
_DIGITS_EVAL = {"ema": "auto", "num_samples": 1797, "batch_size": 512, "steps": [1, 2, 4, 8, 16]}
"""The digits presets score all 1,797 digits at every N (the image fragment's CPU evaluation is
sized for Inception features, which the digits' own classifier does not need)."""


def _digits(steps_or_minutes: dict[str, Any], net: dict[str, Any], optimiser: list[Choice],
            extra: dict[str, Any]) -> dict[str, Any]:
    """A digits preset: the image recipe on a CPU (with ``optimiser`` in place of the UNet's for
    another network) in float32 unless ``extra`` says otherwise."""
    base = as_layer([*self_distillation(), *images(cpu=True, batch=128), *optimiser])
    return merged(base, {"sigma": 0.5, "data": {"name": "digits"}, "net": net,
                         "train": {"precision": "fp32", "log_every": 100, **steps_or_minutes},
                         "eval": _DIGITS_EVAL}, extra)


PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "checker": ("the paper's checkerboard (Table 2): MLP 512 x 4, batch 100k, 150k steps, lr 1e-3, clip 10, EMA 0.999", {
        "method": "lsd", "sigma": "adaptive", "data": {"name": "checker"},
        "net": {"kind": "mlp", "width": 512, "depth": 4},
        "loss": {"eta": 0.75, "weighting": "constant", "constant_weight": 1.0},
        "train": {"steps": 150000, "batch_size": 100000, "lr": 1e-3, "grad_clip": 10.0,
                  "ema": [0.999], "ckpt_every": 5000, **_PAPER_SCHEDULE},
        "eval": {"ema": 0.999, "num_samples": 64000},
    }),
    "cifar10": ("the paper's CIFAR-10 (Table 2): EDM2 UNet 54.7M, batch 512, 400k steps, lr 1e-2, clip 1, EMA 0.9999", {
        "method": "lsd", "sigma": 0.5, "data": {"name": "cifar10"}, "net": _EDM2_CIFAR,
        "train": {"steps": 400000, "batch_size": 512, **_PAPER_IMAGES},
        "eval": {"ema": 0.9999, "num_samples": 50000, "metrics": ["fid"], "batch_size": 500},
    }),
    "celeba64": ("the paper's CelebA-64 (Table 2): EDM2 UNet 124M in bf16, batch 256, 800k steps, lr 1e-2", {
        "method": "lsd", "sigma": 0.5, "data": {"name": "celeba64"}, "net": _EDM2_64,
        "train": {"steps": 800000, "batch_size": 256, "precision": "bf16", **_PAPER_IMAGES},
        "eval": {"ema": 0.9999, "num_samples": 50000, "metrics": ["fid"], "batch_size": 250},
    }),
    "afhq64": ("the paper's AFHQ-64 (Table 2): EDM2 UNet 124M in bf16, batch 256, 800k steps, lr 1e-2", {
        "method": "lsd", "sigma": 0.5, "data": {"name": "afhq64"}, "net": _EDM2_64,
        "train": {"steps": 800000, "batch_size": 256, "precision": "bf16", **_PAPER_IMAGES},
        "eval": {"ema": 0.9999, "num_samples": 50000, "metrics": ["fid"], "batch_size": 250},
    }),
    "checker-cpu": ("the main job: LSD on the checkerboard, the recipe measured for a few minutes on 2 CPU cores", merged(
        as_layer([*self_distillation(), *points("checker", 2, cpu=True)]),
        {"data": {"name": "checker"}, "train": {"steps": 8000, "ckpt_every": 1000, "log_every": 100}},
    )),
    "digits-cpu": ("LSD on scikit-learn's 8x8 digits with a small EDM2 UNet (about 12 minutes on 2 CPU cores)", _digits(
        {"steps": 2200}, _DIGITS_UNET, [], {},
    )),
    "digits-dit-cpu": ("LSD on the 8x8 digits with a small DiT (4 x 4 tokens of 2 x 2 pixels, QK-norm), a 9-minute "
                       "training budget (its 6-minute run took 6.6 minutes with evaluation on 2 CPU cores)", _digits(
        {"minutes": 9.0, "precision": "auto"},
        {"kind": "dit", "width": 128, "depth": 6, "heads": 4, "patch_size": 2, "learned_weight": True},
        transformer_optimiser(), {},
    )),
    "digits-cond-cpu": ("class-conditional, guided LSD on the 8x8 digits (App. F.5): sample a class with a guidance "
                        "scale in one step (about 14 minutes on 2 CPU cores, evaluation at four guidance scales included)",
                        _digits({"steps": 2000}, _DIGITS_UNET, [], {
                            "data": {"conditional": True, "label_dropout": 0.1}, "loss": {"guidance_max": 4.0},
                            "eval": {"num_samples": 1800, "guidance": [1.5, 2.0, 3.0]}})),
    "gaussian": ("LSD on a 2-D anisotropic Gaussian with a known flow map (seconds on a CPU)", merged(
        as_layer(self_distillation()),
        {"sigma": 1.0, "data": {"name": "gaussian"}, "net": {"kind": "mlp", "width": 64, "depth": 2},
         "loss": {"weighting": "none"},
         "train": {"steps": 1500, "batch_size": 512, "lr": 2e-3, "grad_clip": 10.0, "precision": "fp32",
                   "ckpt_every": 500, "log_every": 100},
         "eval": {"num_samples": 20000}},
    )),
}
