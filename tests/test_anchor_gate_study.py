"""benchmarks/anchor_gate.py backs the line of lower_bound_rate="auto" in docs/benchmarks.md: its columns must
read what the estimate reads, and its purity above chance must tell separated classes from mixed ones."""

from __future__ import annotations

import sys

import numpy as np

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import anchor_gate  # noqa: E402
import quality  # noqa: E402


def _blobs(spread: float, seed: int = 3, dim: int = 128) -> quality.BenchData:
    """Four classes, a quarter of each class's labels moved to the next class. In 128 dimensions: in 16, a
    linear probe's predictions are alike among neighbours even on features with no class in them (0.21-0.25
    above chance, docs/benchmarks.md), because neighbours are close there relative to the spread."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, 1200)
    x = rng.normal(size=(4, dim))[truth] * spread + rng.normal(size=(1200, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    given = np.where(rng.random(1200) < 0.25, (truth + 1) % 4, truth)
    names = ["a", "b", "c", "d"]
    return quality.BenchData("blobs", x.astype(np.float32), given, truth, names, None, None, np.arange(1200), "")


def test_the_study_reads_separated_classes_far_above_chance_and_mixed_ones_near_it(tmp_path) -> None:
    rows = {}
    for spread in (1.0, 0.0):
        data = _blobs(spread)
        rows[spread] = anchor_gate.study(data, anchor_gate.cached_probabilities(data, tmp_path / str(spread), 0))
    separated, mixed = rows[1.0], rows[0.0]
    assert separated["purity_above_chance"] > 0.8 and abs(mixed["purity_above_chance"]) < 0.1
    assert 0.04 < separated["chance_purity"] < 0.1  # four classes: about 1/16
    for row in rows.values():  # the columns are the estimate's own readings
        assert row["default"]["rate"] in (row["isolated"]["rate"], row["anchors"]["rate"])
        assert row["true_rate"] > 0.2
    table = anchor_gate.to_markdown(list(rows.values()))
    assert table.count("\n| blobs (") == 2
