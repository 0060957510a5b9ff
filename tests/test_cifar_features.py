"""Smoke test of the offline CIFAR-10N image features (benchmarks/cifar10n_features.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import cifar10n_features as cf  # noqa: E402


def test_features_are_finite_unit_rows_of_the_documented_dimension() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)
    images[0] = 0  # a flat black image: no gradients, zero saturation
    images[1] = 255
    raw = cf.raw_features(images)
    # HOG: 7x7 blocks of 2x2 cells x 9 bins; HSV: 5 regions x 8*4*4 bins; thumbnail: 8x8x3
    assert raw.shape == (40, 7 * 7 * 4 * cf.ORIENTATIONS + 5 * 128 + 8 * 8 * 3)
    features = cf.image_features(images, dim=16)
    assert features.shape == (40, 16)
    assert features.dtype == np.float32
    assert np.isfinite(features).all()
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_default_dimension_is_documented() -> None:
    assert cf.DIM == 384
    assert "to ``DIM`` dimensions" in (cf.__doc__ or "")
