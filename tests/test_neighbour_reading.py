"""The neighbours' reading (HOC): what it reads where its assumption holds, and where it refuses to read."""

from __future__ import annotations

import numpy as np
import pytest

from labelaudit.neighbour_reading import hoc_error_rate, predicted_purity, read_neighbours


def clustered(n: int, k: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples in runs of three of one true class, each run's members one another's two neighbours; labels
    flipped to another class at ``noise``. Returns pairs, labels, truth and one-hot predictions of the truth."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(rng.integers(0, k, n // 3), 3)
    start = np.arange(len(truth)) // 3 * 3
    pairs = np.stack(
        [start + (np.arange(len(truth)) - start + 1) % 3, start + (np.arange(len(truth)) - start + 2) % 3], 1
    )
    flipped = rng.random(len(truth)) < noise
    labels = np.where(flipped, (truth + rng.integers(1, k, len(truth))) % k, truth)
    return pairs, labels, truth, np.eye(k)[truth]


@pytest.mark.parametrize("noise", [0.05, 0.2])
def test_hoc_reads_the_noise_rate_where_neighbours_share_the_true_class(noise: float) -> None:
    pairs, labels, truth, _ = clustered(6000, 3, noise)
    rate = hoc_error_rate(labels, labels[pairs[:, 0]], labels[pairs[:, 1]], 3)
    assert rate == pytest.approx(float(np.mean(labels != truth)), abs=0.02)


def test_predicted_purity_counts_a_sample_without_two_neighbours_as_impure() -> None:
    predicted = np.array([0, 0, 0, 1])
    pairs = np.array([[1, 2], [0, 2], [0, -1], [0, 1]])
    assert predicted_purity(predicted, pairs) == pytest.approx(0.5)  # rows 0 and 1; row 2 lacks one, row 3 differs


def test_the_reading_counts_only_on_pure_enough_data_with_enough_samples_per_cell() -> None:
    pairs, labels, truth, probs = clustered(3000, 3, 0.1)
    predicted = np.argmax(probs, axis=1)
    read = read_neighbours(predicted, labels, pairs, 3, min_purity=0.8, min_triples_per_cell=10, max_classes=50)
    assert read.counts and read.purity == pytest.approx(1.0) and read.rate is not None
    rng = np.random.default_rng(1)
    shuffled = rng.permutation(len(labels))  # neighbours of any class: the assumption fails
    impure = read_neighbours(predicted, labels, shuffled[pairs], 3, 0.8, 10, 50)
    assert not impure.counts and impure.rate is None and impure.purity < 0.5
    assert not read_neighbours(predicted, labels, pairs, 3, 0.8, 200, 50).counts  # 3,000 < 200 x 3^3 samples
    assert not read_neighbours(predicted, labels, pairs, 3, 0.8, 10, 2).counts  # more classes than allowed
    assert not read_neighbours(predicted, labels, pairs, 3, None, 10, 50).counts  # switched off
