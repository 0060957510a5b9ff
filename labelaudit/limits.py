"""The one rule for label-quality limits, shared by `audit --fail-above` and `gate`.

Kept free of heavy imports (pandas, torch) so the CLI can check a limit before it loads anything.
"""

from __future__ import annotations

from .errors import LabelAuditError

# Rates are ratios of small integers; without a slack, 0.1 + 0.05 > 0.15 would fail a run that sits exactly
# on its limit. Limits are inclusive: a value equal to the limit passes.
EPSILON = 1e-9


def exceeds(value: float, limit: float) -> bool:
    """True when ``value`` is above the inclusive ``limit`` (equal, up to float noise, passes)."""
    return value > limit + EPSILON


def check_rate(option: str, value: float | None) -> float | None:
    """``value`` unchanged when it is a rate in [0, 1] (or None); otherwise a LabelAuditError naming ``option``.

    A limit of 5 meant as 5 % can never be exceeded by a rate, so a CI check written that way would always
    pass: it is refused, with the rate the user probably meant.
    """
    if value is None or 0.0 <= value <= 1.0:
        return value
    hint = f" (did you mean {value / 100:g} for {value:g} %?)" if 1.0 < value <= 100.0 else ""
    raise LabelAuditError(f"{option} is a rate between 0 and 1, e.g. 0.05 for 5 %; got {value:g}{hint}")
