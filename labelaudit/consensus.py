"""Combine the scorers into one ranking, one flag and one estimated label-error rate.

- consensus score: the probability of the given label under the mean of the methods' out-of-sample
  probabilities (low = suspect), the table the suggested label also comes from. A method whose probabilities
  are flat (unsure) moves it less than a confident one. Where a method gives no probabilities, the mean over
  methods of each sample's rank-normalised label-quality score instead (0 = the most suspect sample of every
  method, 1 = the least), which gives every method an equal say. On the benchmark's tune rows the mean
  probability ranked wrong labels better than the mean rank (AUROC) on CIFAR-10N aggre/random1/worst
  (0.821/0.833/0.811 vs 0.811/0.813/0.803), imdb_test_cleanlab (0.901 vs 0.874), 20news_test_cleanlab (0.933 vs
  0.914) and 21 of 27 synthetic-noise rows; about the same on wrench_sms/youtube and the 20news slice; worse on
  wrench_trec (0.503 vs 0.534), where no method beats a coin flip.
- estimated error rate and flag cut (``follow_estimate``): the calibrated estimate of
  ``labelaudit.estimate`` says how many labels are wrong; the flags are that many samples, taken in the
  consensus ranking's order. Before the estimate is applied (or with it switched off) the flag is a
  strict majority vote of the methods and the rate is the flagged share.
- suggested label: argmax of the mean of the methods' predicted probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .chunked import row_blocks, rows_float32
from .scorers import ScorerResult


@dataclass
class Consensus:
    score: np.ndarray
    is_issue: np.ndarray
    suggested: np.ndarray
    suggested_prob: np.ndarray
    pred_probs: np.ndarray | None
    estimated_error_rate: float
    error_probability: np.ndarray | None = None  # calibrated P(label is wrong) per sample, once estimated
    # How ``score`` was made: the mean probability of the given label ("probability") or the mean of the
    # methods' rank-normalised label qualities ("rank"), where a method gave no probabilities.
    score_kind: str = "probability"


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank: ``scipy.stats.rankdata(values, "average")`` computed the way
    scipy does, to the bit, without importing scipy.stats (seconds of a cached re-run)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and np.isnan(values).any():  # scipy's NaN policy, left to scipy
        from scipy.stats import rankdata

        return np.asarray(rankdata(values, method="average"), dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.cumsum(starts)
    bounds = np.r_[np.flatnonzero(starts), len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = 0.5 * (bounds[dense] + bounds[dense - 1] + 1)
    return ranks


def rank_normalise(quality: np.ndarray) -> np.ndarray:
    if len(quality) < 2:
        return np.ones_like(quality, dtype=np.float64)
    return (average_ranks(quality) - 1.0) / (len(quality) - 1.0)


class ProbabilityMean:
    """Running mean of the methods' (N, K) probability tables in one float32 array, so a scorer's table
    can be dropped as soon as it is added: holding all four at 1M x 1000 would take 16 GB."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, probs: np.ndarray) -> None:
        if self.total is None:
            self.total = np.array(probs, dtype=np.float32)
        else:
            self.total += probs
        self.count += 1

    def mean(self) -> np.ndarray | None:
        if self.total is None:
            return None
        if self.count > 1:
            self.total /= self.count
            self.count = 1
        return self.total


class PredictedClasses:
    """The classes (argmax) of the mean of ``expected`` methods' (N, K) tables, gathered as ProbabilityMean is,
    but once the last table is in only the N class indices are kept; with one method (the estimate's purity
    reads the probe alone) no (N, K) table is held at all: at 1M samples x 100 classes that is 400 MB less.
    The argmax is taken on float32 values, as ProbabilityMean keeps them, so the classes are the same."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.running = ProbabilityMean()
        self.classes: np.ndarray | None = None

    def add(self, probs: np.ndarray) -> None:
        if self.classes is not None:
            raise ValueError(f"PredictedClasses expected {self.expected} tables and got another")
        if self.expected <= 1 and self.running.total is None:
            self.classes = _argmax_float32(probs)
            return
        self.running.add(probs)
        if self.running.count >= self.expected:
            self.classes = self.predicted()
            self.running = ProbabilityMean()

    def predicted(self) -> np.ndarray | None:
        """The predicted class per sample, or None where no table came (no method it reads ran)."""
        if self.classes is not None:
            return self.classes
        total = self.running.total  # fewer tables came than expected: the mean of those that did
        return None if total is None else np.argmax(total, axis=1)


def _argmax_float32(probs: np.ndarray) -> np.ndarray:
    """The argmax per row on float32 values, a block of rows at a time: no (N, K) float32 copy of the table."""
    out = np.empty(len(probs), dtype=np.int64)
    for block in row_blocks(len(probs)):
        out[block] = np.argmax(rows_float32(probs, block), axis=1)
    return out


def combine(results: dict[str, ScorerResult], labels: np.ndarray, mean_probs: np.ndarray | None = None) -> Consensus:
    """``mean_probs``: the mean of the methods' probabilities when the caller folded them in already
    (``ProbabilityMean``) and dropped them from ``results``; else it is computed here."""
    if not results:
        raise ValueError("combine() needs at least one scorer result")
    votes = np.sum([r.is_issue for r in results.values()], axis=0)
    is_issue = votes * 2 > len(results)
    pred_probs = mean_probs
    if pred_probs is None:
        running = ProbabilityMean()
        for result in results.values():
            if result.pred_probs is not None:
                running.add(result.pred_probs)
        pred_probs = running.mean()
    every_method_gave_probs = all(r.pred_probs is not None or r.folded_probs for r in results.values())
    score_kind = "probability" if pred_probs is not None and every_method_gave_probs else "rank"
    if score_kind == "probability":
        assert pred_probs is not None
        scores = np.asarray(pred_probs[np.arange(len(labels)), np.asarray(labels)], dtype=np.float64)
    else:
        scores = np.mean([rank_normalise(r.quality) for r in results.values()], axis=0)
    if pred_probs is not None:
        suggested = pred_probs.argmax(axis=1)
        suggested_prob = pred_probs[np.arange(len(suggested)), suggested].astype(np.float64)
    else:
        suggested = next(iter(results.values())).suggested
        suggested_prob = np.full(len(suggested), np.nan)
    return Consensus(
        score=scores,
        is_issue=is_issue,
        suggested=suggested,
        suggested_prob=suggested_prob,
        pred_probs=pred_probs,
        estimated_error_rate=float(is_issue.mean()) if len(is_issue) else 0.0,
        score_kind=score_kind,
    )


NEIGHBOUR_VOTE = "knn"  # the method whose score is the share of a sample's neighbours that carry its label


def lean_on_neighbours(consensus: Consensus, vote: ScorerResult) -> Consensus:
    """The consensus whose score gives the neighbour vote (``vote``: the knn method's result) as much weight as
    all the methods' mean: the mean of the two, on the consensus score's own scale. For clusterable data
    (labelaudit.estimate.data_are_clusterable), where the estimate follows the neighbours' labels too.

    Why: labels made by rules are learnt by the probe and DeFT, which then score their mistakes like right
    labels, while a sample's neighbours mostly carry its true class. Tune rows, F1 of the flags (the cut
    chosen along each ranking), consensus -> leaning: wrench_sms 0.626 -> 0.689, wrench_youtube 0.592 -> 0.636,
    AUROC 0.976 -> 0.972 and 0.917 -> 0.924; the neighbour vote alone 0.711 and 0.598. On clusterable Gaussian
    classes with random (not learnt) noise, 2-5 classes, 5-20 %, the leaning ranking's F1 is within 0.005 of
    the consensus's (the vote alone up to 0.011 lower)."""
    quality = np.asarray(vote.quality, dtype=np.float64)
    own = quality if consensus.score_kind == "probability" else rank_normalise(quality)
    return replace(consensus, score=(np.asarray(consensus.score, dtype=np.float64) + own) / 2.0)


def suspect_order(score: np.ndarray, sample_ids: np.ndarray | None = None) -> np.ndarray:
    """Sample indices, most suspect first: by the consensus score, ties in ``sample_ids`` order (as the report
    lists them) or, without ids, in sample order."""
    tie_break = np.arange(len(score)) if sample_ids is None else np.asarray(sample_ids, dtype=str)
    return np.lexsort((tie_break, score))


def follow_estimate(
    consensus: Consensus,
    error_probability: np.ndarray,
    rate: float,
    n_flags: int,
    order: np.ndarray | None = None,
    settled: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> Consensus:
    """The consensus with the estimate's rate and flag cut: ``n_flags`` flags (``ErrorEstimate.n_flags``: the
    cut along this ranking with the best expected F1), taken from the top of the consensus ranking (the
    ranking finds errors better than any single score; the estimate knows how many there are). ``order``: the
    samples most suspect first, ``suspect_order(consensus.score, sample_ids)`` so that ties go as the report
    lists them and the flags are the report's top rows (None: ties in sample order).

    ``settled`` (optional, (N,) bool): rows a person reviewed; they are neither counted nor flagged here
    (``verification.apply_verified`` settles them afterwards). With ``labels`` (the given class indices), a
    flagged sample whose most probable class is its own label is suggested the most probable *other*
    class: the ranking doubts the label, and a reviewer is best served by the likeliest alternative, not
    by "keep" dressed up as a suggestion."""
    open_rows = np.ones(len(error_probability), dtype=bool) if settled is None else ~settled
    order = suspect_order(consensus.score) if order is None else order
    order = order[open_rows[order]]
    is_issue = np.zeros(len(consensus.score), dtype=bool)
    is_issue[order[:n_flags]] = True
    suggested, suggested_prob = consensus.suggested, consensus.suggested_prob
    if labels is not None and consensus.pred_probs is not None:
        same = np.flatnonzero(is_issue & (suggested == labels))
        if len(same):
            others = np.array(consensus.pred_probs[same], dtype=np.float64)
            others[np.arange(len(same)), labels[same]] = -np.inf
            suggested, suggested_prob = suggested.copy(), suggested_prob.copy()
            suggested[same] = others.argmax(axis=1)
            suggested_prob[same] = others.max(axis=1)
    return replace(
        consensus,
        is_issue=is_issue,
        suggested=suggested,
        suggested_prob=suggested_prob,
        estimated_error_rate=float(rate),
        error_probability=error_probability,
    )
