"""Every loss of the paper, one function per equation, and the combined :class:`Objective`."""
from .consistency import consistency_residual
from .diagonal import flow_matching_residual
from .eulerian import emd_residual, esd_residual, eulerian_residual, meanflow_residual
from .guided import guided_esd_residual, guided_lsd_residual, guided_psd_residual, guided_tangent_residual
from .lagrangian import lagrangian_residual, lmd_residual, lsd_residual, lsd_semigradient_residual
from .objective import METHODS, LossOutput, MethodSpec, Objective, ObjectiveConfig, Teacher, split_batch
from .progressive import intermediate_time, pfmm_residual, psd_residual, psd_target, shortcut_residual
from .times import sample_diagonal, sample_dyadic, sample_off_diagonal
from .weighting import squared_norm, weighted_loss

__all__ = [
    "METHODS", "LossOutput", "MethodSpec", "Objective", "ObjectiveConfig", "Teacher", "split_batch",
    "consistency_residual", "flow_matching_residual", "eulerian_residual", "emd_residual", "esd_residual",
    "meanflow_residual", "lagrangian_residual", "lmd_residual", "lsd_residual", "lsd_semigradient_residual",
    "intermediate_time", "pfmm_residual", "psd_residual", "psd_target", "shortcut_residual",
    "guided_esd_residual", "guided_lsd_residual", "guided_psd_residual", "guided_tangent_residual",
    "sample_diagonal", "sample_dyadic", "sample_off_diagonal", "squared_norm", "weighted_loss",
]
