"""The benchmark harnesses, and synthetic data in the shape they take, for their smoke tests."""

from __future__ import annotations

import sys

import numpy as np

from .conftest import ROOT, synthetic_embeddings

# The harnesses are scripts in benchmarks/, not a package: their smoke tests import them from there.
sys.path.insert(0, str(ROOT / "benchmarks"))
import quality  # noqa: E402
import seeds  # noqa: E402

__all__ = ["quality", "seeds", "synthetic_bench_data"]


def synthetic_bench_data(n: int, noise_rate: float, seed: int) -> tuple[quality.BenchData, np.ndarray, np.ndarray]:
    """Three overlapping classes of 16-dimensional embeddings: the harness's data, the given and the true labels."""
    x, given, true, centres = synthetic_embeddings(n=n, k=3, dim=16, noise_rate=noise_rate, seed=seed)
    data = quality.BenchData(
        name="synthetic",
        embeddings=x,
        given=given,
        gold=true,
        class_names=["a", "b", "c"],
        class_embeddings=centres,
        soft_prompt=None,
        ids=np.arange(n),
        note="synthetic",
    )
    return data, given, true
