"""benchmarks/unsupervised_weights.py backs a study in docs/benchmarks.md (weighing the methods without
labels): its SUMMA weights must rank methods that err independently by how well they rank."""

from __future__ import annotations

import sys

import numpy as np

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import unsupervised_weights  # noqa: E402


def independent_dump(strengths: tuple[float, ...], n: int = 4000, k: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """A quality.py dump whose methods see the truth independently, each with its own signal strength."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k, n)
    given = np.where(rng.random(n) < 0.2, (gold + 1) % k, gold)
    dump: dict[str, np.ndarray] = {"given": given, "gold": gold, "rows": np.ones(n, dtype=bool)}
    for method, strength in zip(unsupervised_weights.METHODS, strengths, strict=True):
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), gold] += strength
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        dump[f"{method}|probs"] = probs
    for name in unsupervised_weights.PEERS.values():
        dump[f"{name}|quality"] = rng.random(n)
    return dump


def test_summa_weights_order_independent_methods_by_their_strength() -> None:
    record = unsupervised_weights.study(independent_dump((2.0, 1.0, 0.0, 3.0)))
    weights = record["weights"]
    deft, confident, zeroshot, knn = (weights[m] for m in unsupervised_weights.METHODS)
    assert knn > deft > confident > zeroshot  # zero-shot here knows nothing
    assert zeroshot < 0.05 and abs(sum(weights.values()) - 1.0) < 0.01  # rounded to 3 places
    # weighing out the method that knows nothing ranks better than the equal mean
    assert record["auroc_summa_mean"] > record["auroc_mean"]
    assert 0.45 < record["auroc_peer_datalab"] < 0.55  # the random peer scores


def test_the_rank_one_fit_recovers_the_off_diagonal_structure() -> None:
    vector = np.array([0.5, 0.3, 0.1, 0.4])
    covariance = np.outer(vector, vector) + np.diag([0.3, 0.1, 0.5, 0.2])  # own variances off the rank-one part
    weights = unsupervised_weights.rank_one_weights(covariance)
    np.testing.assert_allclose(weights, vector / vector.sum(), atol=1e-6)


def test_zeroshot_lift_is_the_disagreement_on_the_suspects_over_all_rows() -> None:
    given = np.zeros(100, dtype=int)
    zeroshot = np.tile([0.9, 0.1], (100, 1))
    zeroshot[:10] = [0.1, 0.9]  # zero-shot disagrees on the first 10 rows only
    learned_quality = np.linspace(0.0, 1.0, 100)  # the first rows are the learned methods' suspects
    assert unsupervised_weights.zeroshot_lift(given, learned_quality, zeroshot, 0.05) == 10.0
