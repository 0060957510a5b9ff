"""Scorers on synthetic embeddings where the wrong labels are known. Floors are deliberately below what the
methods reach (see benchmarks/) so the tests fail on a real regression, not on noise."""

from __future__ import annotations

import numpy as np
import pytest

from labelaudit.consensus import combine
from labelaudit.errors import LabelAuditError
from labelaudit.scorers import ScoreContext, ScorerResult, get_scorer, parse_methods
from labelaudit.scorers._cleanlab import stratified_folds

from .conftest import synthetic_embeddings


def _context(noise_rate: float, n: int = 1500, seed: int = 0) -> tuple[ScoreContext, np.ndarray]:
    x, given, true, centres = synthetic_embeddings(n=n, noise_rate=noise_rate, seed=seed)
    context = ScoreContext(
        embeddings=x,
        labels=given,
        class_names=[f"class {i}" for i in range(5)],
        class_embeddings=centres,
    )
    return context, given != true


def _precision_recall(flags: np.ndarray, wrong: np.ndarray) -> tuple[float, float]:
    tp = (flags & wrong).sum()
    return tp / max(flags.sum(), 1), tp / max(wrong.sum(), 1)


@pytest.mark.parametrize("method", ["deft", "confident", "zeroshot"])
def test_method_recovers_known_wrong_labels(method: str) -> None:
    context, wrong = _context(noise_rate=0.15)
    result = get_scorer(method).score(context)
    precision, recall = _precision_recall(result.is_issue, wrong)
    assert precision >= 0.85, precision
    assert recall >= 0.80, recall
    assert result.quality.min() >= 0 and result.quality.max() <= 1
    assert result.quality[wrong].mean() < result.quality[~wrong].mean()
    assert result.pred_probs is not None
    np.testing.assert_allclose(result.pred_probs.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("method", ["deft", "confident", "zeroshot"])
def test_clean_dataset_comes_back_nearly_clean(method: str) -> None:
    context, _ = _context(noise_rate=0.0)
    result = get_scorer(method).score(context)
    assert result.is_issue.mean() <= 0.02


def test_consensus_beats_or_matches_each_method_and_estimates_the_error_rate() -> None:
    context, wrong = _context(noise_rate=0.2, seed=3)
    results = {m: get_scorer(m).score(context) for m in ("deft", "confident", "zeroshot")}
    consensus = combine(results, context.labels)
    precision, recall = _precision_recall(consensus.is_issue, wrong)
    assert precision >= 0.9 and recall >= 0.85
    assert abs(consensus.estimated_error_rate - wrong.mean()) <= 0.03
    # the most suspect ranks are mostly truly wrong
    top = np.argsort(consensus.score)[: int(wrong.sum() // 2)]
    assert wrong[top].mean() >= 0.95


def test_scorers_are_deterministic_for_a_seed() -> None:
    context, _ = _context(noise_rate=0.1, n=300)
    for method in ("deft", "confident"):
        a = get_scorer(method).score(context)
        b = get_scorer(method).score(context)
        np.testing.assert_array_equal(a.quality, b.quality)


def test_stratified_folds_spread_even_tiny_classes() -> None:
    labels = np.array([0] * 10 + [1] * 2 + [2])
    folds = stratified_folds(labels, 5, seed=0)
    assert set(folds[labels == 0]) == set(range(5))
    assert len(set(folds[labels == 1])) == 2


def test_confident_handles_a_class_missing_from_a_training_fold() -> None:
    context, _ = _context(noise_rate=0.0, n=200)
    labels = context.labels.copy()
    labels[0] = 5  # a sixth class with a single sample
    context.labels = labels
    context.class_names = context.class_names + ["lonely"]
    result = get_scorer("confident").score(context)
    assert result.pred_probs.shape == (200, 6)


def test_parse_methods_rejects_unknown_names() -> None:
    assert parse_methods("deft, confident") == ["deft", "confident"]
    with pytest.raises(LabelAuditError, match="unknown method"):
        parse_methods("deft,magic")


def test_an_unsure_method_moves_the_consensus_less_than_a_sure_one() -> None:
    """The consensus score is the given label's mean probability: a confident method that doubts sample 0
    outweighs a flat, unsure one that slightly doubts sample 1. A mean of ranks gives the two an equal say
    and puts sample 1 first."""
    from labelaudit.consensus import rank_normalise
    from labelaudit.scorers import ScorerResult

    labels = np.array([0, 0, 1])

    def result(p_given: list[float]) -> ScorerResult:
        probs = np.zeros((3, 2))
        probs[np.arange(3), labels] = p_given
        probs[np.arange(3), 1 - labels] = 1.0 - np.array(p_given)
        return ScorerResult(
            quality=np.array(p_given), is_issue=np.array(p_given) < 0.5, suggested=probs.argmax(1), pred_probs=probs
        )

    sure = result([0.05, 0.90, 0.95])
    unsure = result([0.60, 0.45, 0.50])
    consensus = combine({"sure": sure, "unsure": unsure}, labels)
    np.testing.assert_allclose(consensus.score, [0.325, 0.675, 0.725])
    assert np.argmin(consensus.score) == 0
    # a method without probabilities: every method gets an equal say through its ranks
    no_probs = ScorerResult(quality=unsure.quality, is_issue=unsure.is_issue, suggested=unsure.suggested)
    by_ranks = combine({"sure": sure, "unsure": no_probs}, labels)
    np.testing.assert_allclose(by_ranks.score, (rank_normalise(sure.quality) + rank_normalise(unsure.quality)) / 2)
    assert np.argmin(by_ranks.score) == 1


def _flags(is_issue: list[bool]) -> ScorerResult:
    """A method's result that only flags: no probabilities, every quality alike."""
    n = len(is_issue)
    return ScorerResult(quality=np.full(n, 0.5), is_issue=np.array(is_issue), suggested=np.zeros(n, dtype=np.int64))


def test_without_the_estimate_a_strict_majority_of_the_methods_flags() -> None:
    """The rule before the estimate (ScoringSpec(estimate=None)): half the methods is no majority."""
    labels = np.zeros(3, dtype=np.int64)
    two = combine({"a": _flags([True, True, False]), "b": _flags([True, False, False])}, labels)
    assert two.is_issue.tolist() == [True, False, False] and two.estimated_error_rate == pytest.approx(1 / 3)
    three = {"a": _flags([True, True, False]), "b": _flags([True, False, True]), "c": _flags([False, True, False])}
    assert combine(three, labels).is_issue.tolist() == [True, True, False]


def test_average_ranks_are_scipys_to_the_bit_with_ties() -> None:
    from scipy.stats import rankdata

    from labelaudit.consensus import average_ranks

    values = np.array([0.3, 0.1, 0.3, 0.2, 0.1, 0.3, 0.9])
    assert average_ranks(values).tolist() == rankdata(values, method="average").tolist()
