"""benchmarks/clusterability.py backs a negative result in docs/benchmarks.md (HOC and the nugget read the
nearly clean text sets far too high): on data that meets their assumption they must read the truth."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from .conftest import ROOT, synthetic_embeddings

sys.path.insert(0, str(ROOT / "benchmarks"))
import clusterability  # noqa: E402
import quality  # noqa: E402


@pytest.mark.parametrize("noise_rate", [0.0, 0.2])
def test_hoc_and_the_nugget_read_symmetric_noise_on_well_clustered_classes(noise_rate: float) -> None:
    x, given, true, _ = synthetic_embeddings(n=1500, k=3, dim=16, noise_rate=noise_rate, spread=0.2, seed=4)
    data = quality.BenchData("blobs", x, given, true, ["a", "b", "c"], None, None, np.arange(len(x)), "synthetic")
    result = clusterability.study(data, "all")
    truth = result["true_error_rate"]
    assert result["gold_2nn_purity"] > 0.99  # the assumption holds here
    assert result["predicted_2nn_purity"] > 0.99  # and the probe's predictions show it without the truth
    assert abs(result["hoc_estimate"] - truth) < 0.03, result
    assert abs(result["nugget_estimate"] - truth) < 0.05, result


def test_the_nugget_inverts_the_disagreement_of_two_noisy_labels() -> None:
    for classes in (2, 5, 20):
        for rate in (0.0, 0.05, 0.3):
            disagreement = 1 - (1 - rate) ** 2 - rate**2 / (classes - 1)
            assert clusterability.nugget_error_rate(disagreement, classes) == pytest.approx(rate, abs=1e-9)
