"""benchmarks/anchor_reading.py backs a study in docs/benchmarks.md (the rate the anchors imply): its record
says what the opt-in anchor headline would read."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from labelaudit.estimate import anchor_extrapolated_rate

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import anchor_reading  # noqa: E402


@pytest.mark.parametrize("lower_bound", [True, False])
def test_the_record_heads_only_a_lower_bound_with_the_extrapolated_anchors(lower_bound: bool) -> None:
    rng = np.random.default_rng(5)
    n, k = 3000, 6
    true = rng.integers(0, k, n)
    given = np.where(rng.random(n) < 0.3, (true + 1) % k, true)  # class-pair noise
    probs = np.full((n, k), 0.01)
    probs[np.arange(n), true] += rng.uniform(0.45, 0.6, n)
    probs /= probs.sum(axis=1, keepdims=True)
    low = SimpleNamespace(rate=0.02, upper=0.4, is_lower_bound=lower_bound)  # an estimate that missed the noise

    record = anchor_reading.readings(probs, given, low)  # type: ignore[arg-type]
    assert record["extrapolated"] == round(anchor_extrapolated_rate(given, probs, (0.25, 0.5)), 4)
    truth = float((given != true).mean())
    assert abs(record["anchors_0.1"] - truth) < 0.04 and abs(record["extrapolated"] - truth) < 0.04
    assert record["with_anchor_headline"] == (record["extrapolated"] if lower_bound else 0.02)
