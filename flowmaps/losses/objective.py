"""The full training objective: diagonal flow matching + one off-diagonal (distillation) term.

L = L_b (eq 12, on a fraction eta of the batch) + L_D (LSD, ESD, PSD, ... on the rest), each
per-sample term weighted by the learned w_{s,t} (eq 19). Each sample runs only the branch it
belongs to (no computing both branches for the whole batch and masking).
Time convention: t = 0 is noise, t = 1 is data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from ..coupling import COUPLINGS, couple
from ..flow_map import FlowMap, dropout_disabled, has_active_dropout
from ..guidance import GUIDANCE_SAMPLINGS, class_count, drop_labels, guided_fm_correction, sample_guidance, takes_guidance
from ..interpolants import Interpolant, LinearInterpolant, sample_base
from ..jvp import MAP_JVP_BACKENDS, JVPBackend
from .consistency import consistency_residual
from .curriculum import FULL, CurriculumStage, curriculum_stage
from .diagonal import flow_matching_residual
from .eulerian import EULERIAN_STOPGRADS, EulerianStopGrad, emd_residual, esd_residual, meanflow_residual
from .guided import guided_esd_residual, guided_lsd_residual, guided_psd_residual
from .lagrangian import Velocity, lmd_residual, lsd_residual, lsd_semigradient_residual
from .progressive import MapFn, pfmm_residual, psd_residual, shortcut_residual
from .times import TIME_SAMPLINGS, sample_diagonal, sample_dyadic, sample_off_diagonal
from .weighting import adaptive_weighted_loss, squared_norm, weighted_loss


@dataclass(frozen=True)
class MethodSpec:
    """What a method needs: ``student_form`` residuals are v_{s,t}(I_s) - sg(target) and take a
    precomputed student, so their student forward can share one network call with the diagonal;
    ``teacher`` is None, "velocity" or "map" (a frozen pretrained model)."""

    name: str
    summary: str
    student_form: bool = False
    teacher: str | None = None


METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec("fm", "flow matching on the diagonal only (eq 12); sample with an ODE solver"),
        MethodSpec("lsd", "Lagrangian self-distillation (eq 13), gradient through the JVP in t"),
        MethodSpec("lsd-semigrad", "LSD, memory-saving semigradient of App. F.4", student_form=True),
        MethodSpec("esd", "Eulerian self-distillation (eq 14); esd_stopgrad picks the variant"),
        MethodSpec("psd-u", "progressive self-distillation (eq 22), gamma ~ U[0,1]", student_form=True),
        MethodSpec("psd-m", "progressive self-distillation (eq 22), gamma = 1/2", student_form=True),
        MethodSpec("meanflow", "MeanFlow (eq 42): Eulerian semigradient, conditional velocity", student_form=True),
        MethodSpec("shortcut", "shortcut models (eq 43): PSD-M on a dyadic grid", student_form=True),
        MethodSpec("ct", "discrete consistency training (eqs 40-41), step ct_delta", student_form=True),
        MethodSpec("lmd", "Lagrangian map distillation (eq 27) from a frozen velocity", teacher="velocity"),
        MethodSpec("emd", "Eulerian map distillation (eq 29) from a frozen velocity", teacher="velocity"),
        MethodSpec("pfmm", "progressive flow map matching (eq 30) from a frozen map", student_form=True, teacher="map"),
    ]
}


GUIDED_METHODS: tuple[str, ...] = ("lsd", "esd", "psd-u", "psd-m")
"""Methods with a guided form (eqs 100-102)."""


@dataclass
class Teacher:
    """A frozen pretrained model for LMD / EMD / PFMM: a velocity b(x, t) and/or a map X(x, s, t).

    ``num_classes`` > 0: a class-conditional teacher, called with the student's labels (its null
    label K for an unconditional student); ``guided``: it also takes the guidance scale alpha."""

    velocity: Velocity | None = None
    map: MapFn | None = None
    num_classes: int = 0
    guided: bool = False

    @classmethod
    def from_flow_map(cls, fm: FlowMap) -> Teacher:
        """Freeze a trained flow map: its diagonal is the velocity, X the map."""
        fm = fm.eval().requires_grad_(False)
        return cls(velocity=fm.velocity, map=fm.X, num_classes=class_count(fm), guided=takes_guidance(fm))

    def conditioning(self, cond: dict[str, Tensor], x: Tensor) -> dict[str, Tensor]:
        """The teacher's keyword inputs for a batch x [B, ...] with the student's ``cond``."""
        if not self.num_classes:
            return {}
        y = cond.get("y")
        out = {"y": torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device) if y is None else y}
        if self.guided:
            out["alpha"] = cond.get("alpha", torch.ones(x.shape[0], device=x.device))
        return out

    def velocity_for(self, cond: dict[str, Tensor]) -> Velocity:
        """b(x, t) with the student's conditioning bound."""
        assert self.velocity is not None
        return lambda x, t: self.velocity(x, t, **self.conditioning(cond, x))  # type: ignore[misc]

    def map_for(self, cond: dict[str, Tensor]) -> MapFn:
        """X(x, s, t) with the student's conditioning bound."""
        assert self.map is not None
        return lambda x, s, t: self.map(x, s, t, **self.conditioning(cond, x))  # type: ignore[misc]


@dataclass
class LossConfig:
    """The loss options, the ``loss:`` section of a run's config (:class:`ObjectiveConfig` adds
    the method and the label dropout, which live elsewhere in the config).

    eta: fraction of the batch on the diagonal (paper 0.75); floor(eta B) samples, at least one
        of each kind when 0 < eta < 1. Forced to 1 for method "fm".
    full_square: sample (s, t) on [0,1]^2 instead of s <= t (maps that also jump backwards).
    weighting: "auto" (learned when the network has a ``log_weight`` head, else none),
        "learned", "constant" (w = constant_weight, the paper's checker uses 1.0), "adaptive"
        (MeanFlow's sg(1 / (|r|^2 + adaptive_eps)^adaptive_power) |r|^2) or "none".
    time_sampling: "uniform" (the paper), "logit_normal" (sigmoid(time_mu + time_std z)), for
        the diagonal t and both off-diagonal times (sorted), or "uniform_gap" (the diagonal t
        uniform, the off-diagonal jump t - s uniform: large jumps as often as small ones).
    reduction: "batch" (the authors' code: (sum_diag + sum_off) / B = eta mean_diag +
        (1 - eta) mean_off) or "sum_of_means" (Algorithm 1: mean_diag + mean_off).
    jvp_backend: "auto" ("explicit" for a network with its own tangent pass: the MLP, the EDM2 UNet
        and the DiT; else torch.func with gradient, forward_ad without), "explicit", "func",
        "forward_ad" or "fd".
    esd_stopgrad: "full" (paper), "convex", "none" or "semigradient".
    ct_delta: step of discrete consistency training.
    shortcut_max_steps: finest dyadic grid of shortcut models (a power of two).
    pfmm_gamma: "uniform" or "midpoint".
    curriculum_fm, curriculum_ramp: the App. F.2 curriculum as fractions of the run: flow matching
        only for the first ``curriculum_fm``, then the largest jump t - s grows linearly to 1 over
        the next ``curriculum_ramp`` (see :mod:`flowmaps.losses.curriculum`). Off (0, 0) by default.
    guidance_max, guidance_sampling: a guided flow map (App. F.5, :mod:`flowmaps.losses.guided`):
        each off-diagonal sample draws its scale alpha in [0, guidance_max]
        (:func:`flowmaps.guidance.sample_guidance`); half of the diagonal runs at alpha = 1 (flow
        matching), the other half draws alpha and regresses on the guided target
        (:func:`flowmaps.guidance.guided_fm_correction`). 0: no guidance.
        Methods lsd, esd, psd-u and psd-m; needs labels and label_dropout > 0.
    coupling, coupling_chunk: how noise is paired with data (:mod:`flowmaps.coupling`):
        ``independent`` (the paper) or ``minibatch_ot`` (exact assignment within chunks).
    """

    eta: float = 0.75
    full_square: bool = False
    weighting: Literal["auto", "learned", "constant", "adaptive", "none"] = "auto"
    constant_weight: float = 1.0
    adaptive_power: float = 1.0
    adaptive_eps: float = 1e-3
    time_sampling: Literal["uniform", "logit_normal", "uniform_gap"] = "uniform"
    time_mu: float = 0.0
    time_std: float = 1.0
    reduction: Literal["batch", "sum_of_means"] = "batch"
    jvp_backend: JVPBackend = "auto"
    esd_stopgrad: EulerianStopGrad = "full"
    ct_delta: float = 1.0 / 64
    shortcut_max_steps: int = 128
    pfmm_gamma: Literal["uniform", "midpoint"] = "uniform"
    curriculum_fm: float = 0.0
    curriculum_ramp: float = 0.0
    guidance_max: float = 0.0
    guidance_sampling: Literal["uniform", "log_uniform"] = "uniform"
    coupling: Literal["independent", "minibatch_ot"] = "independent"
    coupling_chunk: int = 64


@dataclass
class ObjectiveConfig(LossConfig):
    """Options of :class:`Objective`: the loss options (:class:`LossConfig`), and

    method: a key of :data:`METHODS`.
    label_dropout: probability that a sample's label ``y`` becomes the null label (class-conditional
        training; the unconditional velocity is learned from the dropped ones).
    """

    method: str = "lsd"
    label_dropout: float = 0.0

    def validate(self) -> None:
        """Raise ValueError with the valid choices for any bad field."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {sorted(METHODS)}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if self.eta == 1.0 and self.method != "fm":
            raise ValueError(f"eta = 1 leaves no off-diagonal samples for method {self.method!r}; use method 'fm'")
        choices = {
            "weighting": ("auto", "learned", "constant", "adaptive", "none"),
            "time_sampling": TIME_SAMPLINGS,
            "reduction": ("batch", "sum_of_means"),
            "jvp_backend": ("auto", *MAP_JVP_BACKENDS),
            "esd_stopgrad": EULERIAN_STOPGRADS,
            "pfmm_gamma": ("uniform", "midpoint"),
            "guidance_sampling": GUIDANCE_SAMPLINGS,
            "coupling": COUPLINGS,
        }
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ValueError(f"unknown {key} {getattr(self, key)!r}; choose one of {list(valid)}")
        if not self.time_std > 0:
            raise ValueError(f"time_std must be positive, got {self.time_std}")
        if not self.adaptive_power >= 0 or not self.adaptive_eps > 0:
            raise ValueError(f"adaptive weighting needs adaptive_power >= 0 and adaptive_eps > 0, got "
                             f"{self.adaptive_power}, {self.adaptive_eps}")
        if not self.ct_delta > 0:
            raise ValueError(f"ct_delta must be positive, got {self.ct_delta}")
        curriculum_stage(0, 1, self.curriculum_fm, self.curriculum_ramp)  # raises on bad fractions
        if self.curriculum_ramp > 0 and (self.time_sampling == "logit_normal" or self.method == "shortcut"):
            raise ValueError("the jump curriculum (curriculum_ramp > 0) needs uniform or uniform_gap time sampling "
                             "and a method other than shortcut")
        if self.coupling == "minibatch_ot" and self.coupling_chunk < 2:
            raise ValueError(f"coupling_chunk must be at least 2 for minibatch_ot, got {self.coupling_chunk}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if not self.guidance_max >= 0:
            raise ValueError(f"guidance_max must be >= 0, got {self.guidance_max}")
        if self.guidance_max > 0 and self.method not in GUIDED_METHODS:
            raise ValueError(f"a guided flow map (guidance_max > 0) trains with {', '.join(GUIDED_METHODS)}, "
                             f"not {self.method!r}")
        if self.guidance_max > 0 and self.label_dropout <= 0:
            raise ValueError("a guided flow map needs label_dropout > 0: the unconditional velocity is learned "
                             "from the dropped labels")
        levels = math.log2(self.shortcut_max_steps) if self.shortcut_max_steps > 0 else -1
        if levels < 1 or levels != int(levels):
            raise ValueError(f"shortcut_max_steps must be a power of two >= 2, got {self.shortcut_max_steps}")


@dataclass
class LossOutput:
    """What one objective evaluation returns.

    loss: the scalar to backpropagate. diagonal / off_diagonal: mean weighted per-sample loss of
    each branch (detached; nan when the branch is empty). diag_sq [M_d], off_sq [M_o]: unweighted
    |r|^2 per sample (detached), at times t_diag [M_d] and (s_off, t_off) [M_o].
    """

    loss: Tensor
    diagonal: Tensor
    off_diagonal: Tensor
    diag_sq: Tensor
    off_sq: Tensor
    t_diag: Tensor
    s_off: Tensor
    t_off: Tensor


def split_batch(batch_size: int, eta: float) -> tuple[int, int]:
    """(M_d, M_o): floor(eta B) diagonal samples, the rest off-diagonal; each >= 1 when 0 < eta < 1."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    n_d = int(math.floor(eta * batch_size))
    if 0 < eta < 1:
        if batch_size < 2:
            raise ValueError(f"a batch of {batch_size} cannot hold both diagonal and off-diagonal samples")
        n_d = min(max(n_d, 1), batch_size - 1)
    return n_d, batch_size - n_d


def _split_cond(cond: dict[str, Tensor], n_d: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    return {k: v[:n_d] for k, v in cond.items()}, {k: v[n_d:] for k, v in cond.items()}


@dataclass
class OffDiagonalBatch:
    """The off-diagonal sub-batch: x0, x1, x_s = I_s, dx_s = dI_s/ds: [M_o, ...]; s, t: [M_o].
    ``gamma`` [M_o] holds U[0,1] draws for PSD-U / PFMM; ``d`` holds shortcut step sizes when
    that method drew the times."""

    x0: Tensor
    x1: Tensor
    x_s: Tensor
    dx_s: Tensor
    s: Tensor
    t: Tensor
    gamma: Tensor
    d: Tensor | None = None


@dataclass
class Draws:
    """Every random draw of one objective evaluation (:meth:`Objective.draw`), made before the
    network runs so that the rest can be one compiled graph (a ``torch.Generator`` cannot enter
    one). x1, x0: the data batch and its paired noise [B, ...]; t_d: the diagonal times [M_d]
    (the first M_d rows); off: the off-diagonal sub-batch (the other rows) or None; cond: the
    conditioning with dropped labels and guidance scales [B]."""

    x1: Tensor
    x0: Tensor
    t_d: Tensor
    off: OffDiagonalBatch | None
    cond: dict[str, Tensor]


class Objective:
    """Self-distillation objective (and its teacher-distillation and special-case relatives).

    Args:
        config: :class:`ObjectiveConfig`.
        sigma: base noise scale, x0 = sigma N(0, I).
        interpolant: defaults to the linear one.
        teacher: a :class:`Teacher`, required by lmd / emd (velocity) and pfmm (map).
        num_classes: K for class-conditional training (labels ``cond["y"]`` in 0..K-1; K is the
            null label of label dropout and guidance).
    Call with the flow map, a data batch x1 [B, ...], optional conditioning tensors [B, ...]
    (e.g. class labels), a generator and the curriculum stage (:meth:`stage`; default: the full
    objective); returns a :class:`LossOutput`.
    """

    def __init__(
        self,
        config: ObjectiveConfig,
        sigma: float,
        interpolant: Interpolant | None = None,
        teacher: Teacher | None = None,
        num_classes: int = 0,
    ) -> None:
        config.validate()
        if (config.label_dropout > 0 or config.guidance_max > 0) and num_classes < 1:
            raise ValueError("label dropout and guidance need class labels: train on a labelled data set with "
                             "data.conditional=true")
        self.num_classes = int(num_classes)
        self.config = config
        self.spec = METHODS[config.method]
        self.sigma = float(sigma)
        self.interpolant = interpolant or LinearInterpolant()
        self.teacher = teacher
        need = self.spec.teacher
        if need is not None and (teacher is None or getattr(teacher, need) is None):
            raise ValueError(f"method {config.method!r} needs a frozen teacher {need}: set teacher.run to a trained run")
        self.eta = 1.0 if config.method == "fm" else config.eta

    def log_weights(self, fm: FlowMap, s: Tensor, t: Tensor) -> Tensor | None:
        """w_{s,t} [B] per the weighting option, or None for unweighted |r|^2."""
        mode = self.config.weighting
        if mode in ("none", "adaptive"):
            return None
        if mode == "constant":
            return torch.full_like(s, self.config.constant_weight)
        w = fm.log_weight(s, t)
        if w is None and mode == "learned":
            raise ValueError("weighting='learned' needs a network with a log_weight(s, t) head; use 'auto' or 'none'")
        return w

    def stage(self, step: int, total_steps: int) -> CurriculumStage:
        """The curriculum stage at 0-based ``step`` of a ``total_steps`` run."""
        return curriculum_stage(step, total_steps, self.config.curriculum_fm, self.config.curriculum_ramp)

    def __call__(
        self,
        fm: FlowMap,
        x1: Tensor,
        cond: dict[str, Tensor] | None = None,
        generator: torch.Generator | None = None,
        stage: CurriculumStage = FULL,
    ) -> LossOutput:
        return self.evaluate(fm, self.draw(x1, cond, generator, stage))

    def draw(
        self, x1: Tensor, cond: dict[str, Tensor] | None = None, generator: torch.Generator | None = None,
        stage: CurriculumStage = FULL,
    ) -> Draws:
        """Every random draw of one evaluation for a data batch x1 [B, ...]: the noise and its
        pairing, the times, gamma, the dropped labels and the guidance scales, in a fixed order."""
        cond = cond or {}
        B = x1.shape[0]
        n_d, n_o = (B, 0) if stage.diagonal_only else split_batch(B, self.eta)
        dev, dt = x1.device, x1.dtype
        x0 = couple(sample_base(x1, self.sigma, generator), x1, self.config.coupling, self.config.coupling_chunk)
        c = self.config
        t_d = sample_diagonal(n_d, generator, dev, dt, c.time_sampling, c.time_mu, c.time_std)
        off = self._off_batch(x0[n_d:], x1[n_d:], generator, stage.max_gap) if n_o else None
        return Draws(x1, x0, t_d, off, self._condition(cond, n_d, n_o, generator, dev, dt))

    def evaluate(self, fm: FlowMap, draws: Draws) -> LossOutput:
        """The loss of ``fm`` on drawn inputs (:meth:`draw`): no random draw and no host read, so
        it can run as one compiled graph (``train.compile``)."""
        with fm.shared_weights():
            return self._evaluate(fm, draws)

    def _evaluate(self, fm: FlowMap, draws: Draws) -> LossOutput:
        x1, x0, t_d, off, cond = draws.x1, draws.x0, draws.t_d, draws.off, draws.cond
        B, n_d = x1.shape[0], t_d.shape[0]
        n_o = B - n_d
        c = self.config
        diag = self.interpolant.sample(x0[:n_d], x1[:n_d], t_d)
        cond_d, cond_o = _split_cond(cond, n_d)
        target_d = diag.dx_t
        if "alpha" in cond_d and n_d:
            target_d = target_d + guided_fm_correction(fm, diag.x_t, t_d, cond_d["y"], cond_d["alpha"], self.num_classes)

        student_v = None
        if off is not None and self.spec.student_form and not has_active_dropout(fm) and n_d:
            # One network call carries the diagonal and the off-diagonal student (both with gradient).
            v = fm.v(torch.cat([diag.x_t, off.x_s]), torch.cat([t_d, off.s]), torch.cat([t_d, off.t]), **cond)
            r_d, student_v = v[:n_d] - target_d, v[n_d:]
        else:
            r_d = flow_matching_residual(fm, diag.x_t, t_d, target_d, **cond_d)
        if off is not None:
            with dropout_disabled(fm):
                r_o = self.off_diagonal_residual(fm, off, student_v, **cond_o)
        else:
            r_o = x1.new_zeros((0, *x1.shape[1:]))

        sq_d, sq_o = squared_norm(r_d), squared_norm(r_o)
        s_o = off.s if off is not None else x1.new_zeros(0)
        t_o = off.t if off is not None else x1.new_zeros(0)
        if c.weighting == "adaptive":
            l_d = adaptive_weighted_loss(sq_d, c.adaptive_power, c.adaptive_eps)
            l_o = adaptive_weighted_loss(sq_o, c.adaptive_power, c.adaptive_eps)
        else:
            l_d = weighted_loss(sq_d, self.log_weights(fm, t_d, t_d) if n_d else None)
            l_o = weighted_loss(sq_o, self.log_weights(fm, s_o, t_o) if n_o else None)
        if self.config.reduction == "batch":
            loss = (l_d.sum() + l_o.sum()) / B
        else:
            loss = (l_d.mean() if n_d else 0.0) + (l_o.mean() if n_o else 0.0)
        nan = x1.new_tensor(float("nan"))
        return LossOutput(
            loss=loss,
            diagonal=l_d.detach().mean() if n_d else nan,
            off_diagonal=l_o.detach().mean() if n_o else nan,
            diag_sq=sq_d.detach(),
            off_sq=sq_o.detach(),
            t_diag=t_d,
            s_off=s_o,
            t_off=t_o,
        )

    def _condition(self, cond: dict[str, Tensor], n_d: int, n_o: int, generator: torch.Generator | None,
                   dev: torch.device, dt: torch.dtype) -> dict[str, Tensor]:
        """Label dropout on ``cond["y"]``, and the guidance scales: 1 on the first half of the
        diagonal (plain flow matching), drawn for the rest of the batch."""
        c = self.config
        if "y" not in cond or not (c.label_dropout > 0 or c.guidance_max > 0):
            return cond
        cond = {**cond, "y": drop_labels(cond["y"], c.label_dropout, self.num_classes, generator)}
        if c.guidance_max > 0:
            n_plain = n_d - n_d // 2
            drawn = sample_guidance(n_d + n_o - n_plain, c.guidance_max, c.guidance_sampling, generator, dev, dt)
            cond["alpha"] = torch.cat([torch.ones(n_plain, device=dev, dtype=dt), drawn])
        return cond

    # -- off-diagonal branch --------------------------------------------------------------------
    def _off_batch(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None, max_gap: float = 1.0) -> OffDiagonalBatch:
        n, dev, dt = x0.shape[0], x0.device, x0.dtype
        d = None
        if self.config.method == "shortcut":
            s, d = sample_dyadic(n, self.config.shortcut_max_steps, generator, dev, dt)
            t = s + 2 * d
        else:
            c = self.config
            s, t = sample_off_diagonal(n, c.full_square, generator, dev, dt, c.time_sampling, c.time_mu, c.time_std, max_gap)
        path = self.interpolant.sample(x0, x1, s)
        gamma = torch.rand(n, generator=generator, device=dev, dtype=dt)
        return OffDiagonalBatch(x0, x1, path.x_t, path.dx_t, s, t, gamma, d)

    def off_diagonal_residual(
        self, fm: FlowMap, ob: OffDiagonalBatch, student_v: Tensor | None = None, **cond: Any
    ) -> Tensor:
        """The per-sample distillation residual of the configured method, [M_o, ...] (the guided
        form, eqs 100-102, when ``cond`` holds the guidance scales ``alpha``)."""
        if "alpha" in cond:
            return _GUIDED[self.config.method](self, fm, ob, student_v, cond)
        return _OFF_DIAGONAL[self.config.method](self, fm, ob, student_v, cond)

    def _gamma(self, ob: OffDiagonalBatch, uniform: bool) -> Tensor | float:
        return ob.gamma if uniform else 0.5

    def _ct(self, fm: FlowMap, ob: OffDiagonalBatch, student_v: Tensor | None, cond: dict[str, Any]) -> Tensor:
        gap = ob.t - ob.s
        delta = torch.sign(gap) * torch.clamp(gap.abs(), max=self.config.ct_delta).clamp_min(1e-4)
        delta = torch.where(gap == 0, torch.full_like(gap, 1e-4), delta)
        x_next = self.interpolant.position(ob.x0, ob.x1, ob.s + delta)
        return consistency_residual(fm, ob.x_s, x_next, ob.s, ob.t, delta, student_v, **cond)


Residual = Callable[[Objective, FlowMap, OffDiagonalBatch, "Tensor | None", dict], Tensor]
_OFF_DIAGONAL: dict[str, Residual] = {
    "lsd": lambda o, fm, b, sv, c: lsd_residual(fm, b.x_s, b.s, b.t, o.config.jvp_backend, **c),
    "lsd-semigrad": lambda o, fm, b, sv, c: lsd_semigradient_residual(
        fm, b.x_s, b.s, b.t, o.config.jvp_backend, sv, **c
    ),
    "esd": lambda o, fm, b, sv, c: esd_residual(
        fm, b.x_s, b.s, b.t, o.config.esd_stopgrad, o.config.jvp_backend, sv, **c
    ),
    "psd-u": lambda o, fm, b, sv, c: psd_residual(fm, b.x_s, b.s, b.t, o._gamma(b, True), sv, **c),
    "psd-m": lambda o, fm, b, sv, c: psd_residual(fm, b.x_s, b.s, b.t, 0.5, sv, **c),
    "meanflow": lambda o, fm, b, sv, c: meanflow_residual(fm, b.x_s, b.s, b.t, b.dx_s, o.config.jvp_backend, sv, **c),
    "shortcut": lambda o, fm, b, sv, c: shortcut_residual(fm, b.x_s, b.s, b.d, sv, **c),
    "ct": lambda o, fm, b, sv, c: o._ct(fm, b, sv, c),
    "lmd": lambda o, fm, b, sv, c: lmd_residual(fm, o.teacher.velocity_for(c), b.x_s, b.s, b.t, o.config.jvp_backend, **c),
    "emd": lambda o, fm, b, sv, c: emd_residual(fm, o.teacher.velocity_for(c), b.x_s, b.s, b.t, o.config.jvp_backend, **c),
    "pfmm": lambda o, fm, b, sv, c: pfmm_residual(
        fm, o.teacher.map_for(c), b.x_s, b.s, b.t, o._gamma(b, o.config.pfmm_gamma == "uniform"), sv, **c
    ),
}

_GUIDED: dict[str, Residual] = {
    "lsd": lambda o, fm, b, sv, c: guided_lsd_residual(
        fm, b.x_s, b.s, b.t, c["y"], c["alpha"], o.num_classes, o.config.jvp_backend
    ),
    "esd": lambda o, fm, b, sv, c: guided_esd_residual(
        fm, b.x_s, b.s, b.t, c["y"], c["alpha"], o.num_classes, o.config.esd_stopgrad, o.config.jvp_backend, sv
    ),
    "psd-u": lambda o, fm, b, sv, c: guided_psd_residual(
        fm, b.x_s, b.s, b.t, c["y"], c["alpha"], o.num_classes, o._gamma(b, True), sv
    ),
    "psd-m": lambda o, fm, b, sv, c: guided_psd_residual(
        fm, b.x_s, b.s, b.t, c["y"], c["alpha"], o.num_classes, 0.5, sv
    ),
}
