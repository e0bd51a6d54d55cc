"""The names of weight averages, as configs, checkpoints and run folders spell them
(:mod:`flowmaps.train.ema` keeps the averages themselves):

- ``"0.999"``: a fixed decay;
- ``"sigma_rel=0.05"``: an EDM2 power-function EMA of that relative standard deviation;
- ``"raw"`` (or 0): the trained weights themselves.

Below the configuration layer, so that validating a config needs nothing from training.
"""
from __future__ import annotations

import numpy as np

RAW = "raw"


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The exponent gamma of the power profile p(tau) ~ tau^gamma whose relative std is sigma_rel.

    Solves sigma_rel^2 = (gamma + 1) / ((gamma + 2)^2 (gamma + 3)) for its largest root; valid for
    0 < sigma_rel < about 0.28 (the flattest profile, gamma near 0, has the largest spread).
    """
    if not 0 < sigma_rel < 0.28:
        raise ValueError(f"sigma_rel must lie in (0, 0.28), got {sigma_rel}")
    s2 = sigma_rel**2
    # s2 (g^3 + 7 g^2 + 16 g + 12) - g - 1 = 0
    roots = np.roots([s2, 7 * s2, 16 * s2 - 1, 12 * s2 - 1])
    real = roots[np.abs(roots.imag) < 1e-9].real
    return float(real.max())


def ema_name(spec: float | str) -> str:
    """Canonical name of an EMA spec: 0 / "raw" -> "raw", 0.999 -> "0.999",
    "sigma_rel=0.05" -> "sigma_rel=0.05" (its number normalised)."""
    if isinstance(spec, str):
        text = spec.strip()
        if text in (RAW, "0", "0.0"):
            return RAW
        if text.startswith("sigma_rel="):
            try:
                value = float(text.split("=", 1)[1])
            except ValueError:
                raise ValueError(f"bad EMA name {spec!r}; expected e.g. sigma_rel=0.05") from None
            return f"sigma_rel={value!r}"
        try:
            spec = float(text)
        except ValueError:
            raise ValueError(f"bad EMA name {spec!r}; use raw, a decay like 0.999 or sigma_rel=0.05") from None
    if spec == 0:
        return RAW
    if not 0 < spec < 1:
        raise ValueError(f"an EMA decay must lie in [0, 1), got {spec}")
    return repr(float(spec))


def power_name(sigma_rel: float) -> str:
    return f"sigma_rel={float(sigma_rel)!r}"


def parse_power(name: str) -> float | None:
    """sigma_rel of a power-EMA name, None for a fixed decay or raw."""
    return float(name.split("=", 1)[1]) if name.startswith("sigma_rel=") else None
