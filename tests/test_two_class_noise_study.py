"""benchmarks/two_class_noise.py backs the one-way-noise figures in docs/method.md: its one-way sets must read
near 0 by default and near the truth with ``confused_sources="confusion"``, and its two-class symmetric sets
must read the truth without a lower-bound warning."""

from __future__ import annotations

import sys

import numpy as np

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import two_class_noise  # noqa: E402


def test_one_way_noise_reads_low_by_default_and_near_the_truth_with_the_option() -> None:
    row = two_class_noise.run_case("one-way", 2, "one-way", 0.06, 2.0, seed=0)
    truth = row["true_rate"]
    assert row["default"]["estimate"] < truth / 5 and row["default"]["lower_bound_said"]
    assert abs(row["confused_sources=confusion"]["estimate"] - truth) < 0.02
    assert "one-way" in two_class_noise.to_markdown([row])


def test_two_class_symmetric_noise_is_read_without_a_lower_bound_warning() -> None:
    x, given, truth = two_class_noise.draw(2, "sym", 0.06, 2.0, seed=0)
    assert 0.05 < np.mean(given != truth) < 0.07 and set(np.unique(given)) == {0, 1}
    row = two_class_noise.run_case("symmetric", 2, "sym", 0.06, 2.0, seed=0)
    low, high = row["default"]["interval"]
    assert low <= row["true_rate"] <= high and not row["default"]["lower_bound_said"]
    assert row["default"]["f1"] > 0.95  # the classes are separable: the flags are the wrong labels
