"""benchmarks/tune_settings.py on a small Gaussian set, so the harness behind the docs' tune-row figures cannot
rot: every setting gets a row, the probabilities are cached, and a cache whose labels differ is not reused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import quality  # noqa: E402
import tune_settings  # noqa: E402


def test_every_setting_is_evaluated_and_the_probabilities_are_cached(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 600)
    x = rng.normal(size=(3, 16))[truth] * 2 + rng.normal(size=(600, 16))
    given = np.where(rng.random(600) < 0.1, (truth + 1) % 3, truth)
    data = quality.features_only("gauss", x.astype(np.float32), given, truth, ["a", "b", "c"], "Gaussian")
    probs = tune_settings.cached_estimate_inputs(data, tmp_path, seed=0)
    assert probs.shape == (600, 3) and (tmp_path / "gauss.npz").is_file()
    assert np.array_equal(tune_settings.cached_estimate_inputs(data, tmp_path, seed=0), probs)  # read back
    row = tune_settings.evaluate(data, probs)
    assert set(tune_settings.SETTINGS) <= set(row) and row["true_rate"] == round(float(np.mean(given != truth)), 4)
    assert all(0.0 <= row[label]["estimate"] <= 1.0 for label in tune_settings.SETTINGS)
    table = tune_settings.to_markdown([row])
    assert table.count("| gauss (") == 1 and all(label in table for label in tune_settings.SETTINGS)
    # other labels under the same name: recomputed, not read back
    other = quality.features_only("gauss", x.astype(np.float32), truth, truth, ["a", "b", "c"], "Gaussian")
    assert not np.array_equal(tune_settings.cached_estimate_inputs(other, tmp_path, seed=0), probs)
