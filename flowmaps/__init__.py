"""flowmaps: flow maps (consistency models) trained by self-distillation.

Implements Boffi, Albergo & Vanden-Eijnden, "How to build a consistency model: Learning flow
maps via self-distillation" (arXiv 2505.18825). Time convention: t = 0 is noise, t = 1 is data.

Using a trained map on real inputs: :mod:`flowmaps.edit` (restoration, editing, inpainting),
:mod:`flowmaps.encode` (data <-> noise) and :mod:`flowmaps.anomaly` (anomaly scores); auditing a
trained run against held-out data: :mod:`flowmaps.audit`. Tables as they come (text, dates, empty
cells) in a DataFrame or a file: :class:`flowmaps.TableModel` (fit, sample, impute, audit).
"""
from .anomaly import ScoreSettings, anomaly_scores
from .coupling import couple, minibatch_ot_coupling
from .diagnostics import TimeBins, loss_by_time_bin, semigroup_defect, tangent_residual
from .flow_map import FlowMap, dropout_disabled
from .guidance import class_condition, drop_labels, guided_velocity, sample_guidance
from .interpolants import (
    Interpolant,
    InterpolantSample,
    LinearInterpolant,
    TrigInterpolant,
    get_interpolant,
    resolve_sigma,
    sample_base,
)
from .jvp import JVPCheck, check_jvp, jvp, math_attention
from .losses import METHODS, LossOutput, Objective, ObjectiveConfig, Teacher
from .sampling import sample, sample_map, sample_ode, uniform_grid
from .table_model import TableModel

__version__ = "0.1.0"

__all__ = [
    "FlowMap", "dropout_disabled", "Interpolant", "InterpolantSample", "LinearInterpolant", "TrigInterpolant",
    "get_interpolant", "resolve_sigma", "sample_base", "JVPCheck", "check_jvp", "jvp", "math_attention",
    "METHODS", "LossOutput", "Objective", "ObjectiveConfig", "Teacher", "sample", "sample_map", "sample_ode",
    "uniform_grid", "TimeBins", "loss_by_time_bin", "semigroup_defect", "tangent_residual", "__version__",
    "couple", "minibatch_ot_coupling", "class_condition", "drop_labels", "guided_velocity", "sample_guidance",
    "ScoreSettings", "anomaly_scores", "TableModel",
]
