"""The neighbours' reading (HOC): what it reads where its assumption holds, and where it refuses to read."""

from __future__ import annotations

import numpy as np
import pytest

from labelaudit.neighbour_reading import hoc_error_rate, neighbour_pairs, predicted_purity, read_neighbours


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


def test_predicted_purity_reads_only_the_samples_with_two_neighbours() -> None:
    predicted = np.array([0, 0, 0, 1])
    pairs = np.array([[1, 2], [0, 2], [0, -1], [0, 1]])
    # rows 0, 1 and 3 are read (row 2 lacks a neighbour), and row 3's neighbours are another class
    assert predicted_purity(predicted, pairs) == pytest.approx(2 / 3)
    assert predicted_purity(predicted, np.full((4, 2), -1)) == 0.0
    read = read_neighbours(predicted, np.array([0, 0, 0, 1]), pairs, 2, 0.5, 1, 50)
    assert read.samples_read == 3 and read.to_details()["samples_read"] == 3


def graph_similarities(indices: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """The cosines a neighbour graph holds for ``indices`` (-inf where none was found), from unit rows as the
    embed stage makes them."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cosines = np.einsum("nkd,nd->nk", unit[np.clip(indices, 0, None)], unit[: len(indices)])
    return np.where(indices >= 0, cosines, -np.inf)


def test_the_neighbours_read_are_the_nearest_that_are_not_copies() -> None:
    u, v, w = np.eye(3)
    embeddings = np.stack([u, 3 * u, v, u, w])  # row 1 is a copy of row 0 at another length, row 3 an exact one
    indices = np.array([[1, 2, 3, 4], [0, 3, 2, -1], [3, 0, -1, -1]])
    similarities = graph_similarities(indices, embeddings)
    np.testing.assert_array_equal(neighbour_pairs(indices, similarities, 0.95), [[2, 4], [2, -1], [3, 0]])
    np.testing.assert_array_equal(neighbour_pairs(indices, similarities, None), [[1, 2], [0, 3], [3, 0]])
    np.testing.assert_array_equal(
        neighbour_pairs(indices[:, :1], similarities[:, :1], 0.95), [[-1, -1], [-1, -1], [3, -1]]
    )


def copied(n: int, k: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``clustered``'s runs of three, each sample with a copy that carries its label (and so its mistake): a
    sample's graph is its copy, then its run's two other members and a copy of one. Returns the graph, the
    embeddings (a copy's vector is its sample's, any two samples' far apart), labels and truth."""
    pairs, labels, truth, _ = clustered(n, k, noise, seed)
    m = len(labels)
    twin = np.concatenate([np.arange(m) + m, np.arange(m)])  # sample i's copy is i + m, and back
    own = np.arange(2 * m) % m
    others = pairs[own]  # a copy's run is its original's run
    indices = np.stack([twin, others[:, 0], others[:, 1], others[:, 0] + m], axis=1)
    vectors = np.random.default_rng(seed).normal(size=(m, 64))
    return indices, vectors[own], np.concatenate([labels, labels]), np.concatenate([truth, truth])


def test_copies_that_share_a_mistake_are_not_read_as_witnesses() -> None:
    indices, embeddings, labels, truth = copied(6000, 3, 0.2)
    similarities = graph_similarities(indices, embeddings)
    wrong = float(np.mean(labels != truth))
    predicted = truth  # the classes are clean clusters: every run and its copies are predicted its true class

    def reading(copy_similarity: float | None) -> float:
        pairs = neighbour_pairs(indices, similarities, copy_similarity)
        read = read_neighbours(predicted, labels, pairs, 3, 0.8, 10, 50)
        assert read.counts and read.rate is not None
        assert read.samples_read == len(labels)  # every sample has two neighbours that are not its copy
        return read.rate

    # A copy agrees with the sample's label, right or wrong: read as a witness, it hides the mistakes.
    assert reading(None) < wrong - 0.05
    assert reading(0.95) == pytest.approx(wrong, abs=0.02)


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
