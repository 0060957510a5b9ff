"""Combine the per-pair scorers into one verdict per (sample, tag) pair and per sample, and estimate how many
pairs and samples are wrong.

- Pair probability: the mean over the methods that could judge the class of their probability that the tag
  should be present. Pair suspicion: its distance from the given answer, ``|given - probability|``.
- Sample quality: ``1 - `` the largest suspicion among the sample's pairs (one wrong tag makes a wrong tag
  set); rank 1 is the most suspect sample.
- Error rates, calibrated on the data's own synthetic corruptions (``calibrate``): a copy of the tag sets
  gets known missing and spurious tags in a share of its samples and is scored again (several copies
  on a small set, so that each kind of error is injected a few hundred times). Among the copy's
  untouched pairs, the share of real errors is a *mixture proportion*: the real pairs' suspicions are a
  mixture of clean pairs and of errors that score like the injected ones. It is estimated with Best Bin
  Estimation (Garg et al., "Mixture Proportion Estimation and PU Learning: A Modern Approach", NeurIPS 2021):
  over the upper tails ``suspicion >= t``, the share of real pairs in the tail divided by the share of injected
  errors in it, at the tail where that ratio's confidence bound is lowest. The bounds are exact binomial
  (Clopper-Pearson) ones rather than the paper's Hoeffding bounds, which for the tiny shares of a nearly clean
  set are looser than the shares themselves. Clean pairs that look suspicious can only push the estimate up,
  so on a clean set it stays near the detector's own false-alarm tail instead of near its error rate.
  Missing tags (among the absent pairs), spurious tags (among the present pairs) and samples are estimated
  separately; each names what it is a share of.
- Flags: the estimated number of missing (spurious) pairs, taken from the top of the suspicion ranking of the
  absent (present) pairs, so what is flagged is what is estimated; or, without calibration, a strict majority
  of the methods that judged the class. Suggested tag set: the given one with flagged missing tags added and
  flagged spurious tags removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .scorers import PairResult

DEFAULT_INJECTION_RATE = 0.1  # share of samples that get one injected error in the calibration copy
BBE_DELTA = 0.1  # confidence level of the bounds that choose the tail (Garg et al. use 0.1)
FLAG_RULES = ("calibrated", "majority")
MIN_INJECTED = 200  # injected errors of each kind the estimate wants (more copies on a small set)
MAX_COPIES = 5


@dataclass
class PairConsensus:
    probs: np.ndarray  # (N, K) float32: mean probability that the tag should be present
    suspicion: np.ndarray  # (N, K) float64: |given - probs|; 0 for a class no method judged
    missing_votes: np.ndarray  # (N, K) int
    spurious_votes: np.ndarray  # (N, K) int
    n_methods: np.ndarray  # (K,) methods that judged each class
    quality: np.ndarray  # (N,) 1 - the sample's largest pair suspicion

    @property
    def scored(self) -> np.ndarray:
        return self.n_methods > 0

    def majority(self) -> tuple[np.ndarray, np.ndarray]:
        """(missing, spurious): pairs that a strict majority of the methods judging the class flag."""
        need = self.n_methods[None, :]
        return self.missing_votes * 2 > need, self.spurious_votes * 2 > need


def pair_consensus(results: dict[str, PairResult], tags: np.ndarray) -> PairConsensus:
    if not results:
        raise ValueError("pair_consensus() needs at least one method's result")
    tags = np.asarray(tags, dtype=bool)
    n, k = tags.shape
    total = np.zeros((n, k), dtype=np.float64)
    missing = np.zeros((n, k), dtype=np.int32)
    spurious = np.zeros((n, k), dtype=np.int32)
    n_methods = np.zeros(k, dtype=np.int32)
    for result in results.values():
        total[:, result.scored] += result.probs[:, result.scored]
        missing += result.missing
        spurious += result.spurious
        n_methods += result.scored
    scored = n_methods > 0
    probs = np.where(scored[None, :], total / np.maximum(n_methods, 1)[None, :], tags.mean(axis=0)[None, :])
    suspicion = np.where(scored[None, :], np.abs(tags - probs), 0.0)
    quality = 1.0 - (suspicion.max(axis=1) if k else np.zeros(n))
    return PairConsensus(
        probs=probs.astype(np.float32),
        suspicion=suspicion,
        missing_votes=missing,
        spurious_votes=spurious,
        n_methods=n_methods,
        quality=quality,
    )


# ---- calibration --------------------------------------------------------------------------------------


@dataclass
class Injection:
    tags: np.ndarray  # (N, K) bool: the corrupted copy
    missing: np.ndarray  # (N, K) bool: tags removed (now missing)
    spurious: np.ndarray  # (N, K) bool: tags added (now spurious)

    @property
    def samples(self) -> np.ndarray:
        return (self.missing | self.spurious).any(axis=1)


def inject_errors(tags: np.ndarray, rate: float, seed: int, scored: np.ndarray | None = None) -> Injection:
    """A copy of ``tags`` in which a share ``rate`` of the samples gets one error each, half of them a missing
    tag (one of the sample's tags, uniformly, removed), half a spurious one (an absent class added, drawn in
    proportion to how often the class is given: the tags an annotator reaches for). Only ``scored`` classes."""
    tags = np.asarray(tags, dtype=bool)
    n, k = tags.shape
    scored = np.ones(k, dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    rng = np.random.default_rng(seed)
    prevalence = tags.mean(axis=0) * scored + 1e-9 * scored
    out = tags.copy()
    removed = np.zeros_like(tags)
    added = np.zeros_like(tags)
    count = int(round(rate * n))
    for i in rng.choice(n, size=min(count, n), replace=False):
        present = np.flatnonzero(tags[i] & scored)
        absent = np.flatnonzero(~tags[i] & scored)
        if not len(present) and not len(absent):
            continue
        if len(present) and (not len(absent) or rng.random() < 0.5):
            j = rng.choice(present)
            removed[i, j] = True
        else:
            weights = prevalence[absent] / prevalence[absent].sum()
            j = rng.choice(absent, p=weights)
            added[i, j] = True
        out[i, j] = not out[i, j]
    return Injection(tags=out, missing=removed, spurious=added)


def _clopper_pearson(successes: np.ndarray, trials: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import beta

    x = np.asarray(successes, dtype=np.float64)
    lower = np.where(x > 0, beta.ppf(alpha / 2, x, trials - x + 1), 0.0)
    upper = np.where(x < trials, beta.ppf(1 - alpha / 2, x + 1, trials - x), 1.0)
    return lower, upper


def mixture_proportion(mixture: np.ndarray, component: np.ndarray, delta: float = BBE_DELTA) -> float:
    """The share of ``mixture`` drawn from the distribution of ``component`` (both: scores, high = suspect).

    Best Bin Estimation: over the upper tails ``score >= t`` (t at each component score), the tail's share of
    the mixture over its share of the component, at the tail whose upper confidence bound of that ratio is
    lowest. An over-estimate when clean scores reach into the tail, which is the safe side."""
    mixture = np.sort(np.asarray(mixture, dtype=np.float64))
    component = np.sort(np.asarray(component, dtype=np.float64))
    n_m, n_c = len(mixture), len(component)
    if n_m == 0:
        return 0.0
    if n_c == 0:
        return float("nan")
    thresholds = np.unique(component)
    in_component = n_c - np.searchsorted(component, thresholds, side="left")
    in_mixture = n_m - np.searchsorted(mixture, thresholds, side="left")
    _, mixture_upper = _clopper_pearson(in_mixture, n_m, delta)
    component_lower, _ = _clopper_pearson(in_component, n_c, delta)
    bound = np.where(component_lower > 0, mixture_upper / np.maximum(component_lower, 1e-300), np.inf)
    best = int(np.argmin(bound))
    return float(min(1.0, (in_mixture[best] / n_m) / (in_component[best] / n_c)))


@dataclass
class ErrorEstimate:
    """Estimated label errors. Pair rates are shares of the judged (sample, class) pairs."""

    missing_share: float  # of the pairs given as absent, the share that should be present
    spurious_share: float  # of the pairs given as present, the share that should be absent
    n_absent: int
    n_present: int
    sample_error_rate: float  # share of samples whose tag set has at least one wrong tag

    @property
    def missing_pairs(self) -> int:
        return int(round(self.missing_share * self.n_absent))

    @property
    def spurious_pairs(self) -> int:
        return int(round(self.spurious_share * self.n_present))

    @property
    def pair_error_rate(self) -> float:
        """Share of the judged (sample, class) pairs whose given answer is wrong (a missing or spurious tag)."""
        total = self.n_absent + self.n_present
        return (self.missing_share * self.n_absent + self.spurious_share * self.n_present) / max(total, 1)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "estimated_pair_error_rate": round(self.pair_error_rate, 6),
            "estimated_sample_error_rate": round(self.sample_error_rate, 6),
            "estimated_missing_share": round(self.missing_share, 6),
            "estimated_spurious_share": round(self.spurious_share, 6),
            "estimated_missing_pairs": self.missing_pairs,
            "estimated_spurious_pairs": self.spurious_pairs,
        }


@dataclass
class Calibration:
    """The scored corrupted copies: enough to estimate error rates, also on a subset of rows (benchmarks)."""

    injections: list[Injection]
    copies: list[PairConsensus]
    settings: dict[str, Any] = field(default_factory=dict)

    def estimate(self, given: np.ndarray, rows: np.ndarray | None = None) -> ErrorEstimate:
        given = np.asarray(given, dtype=bool)
        n = len(given)
        rows = np.ones(n, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        scored = self.copies[0].scored
        judged = rows[:, None] & scored[None, :]
        pools: dict[str, list[np.ndarray]] = {key: [] for key in ("absent", "missing", "present", "spurious")}
        samples: dict[str, list[np.ndarray]] = {"clean": [], "hit": []}
        for injection, copy in zip(self.injections, self.copies, strict=True):
            untouched = judged & ~(injection.missing | injection.spurious)
            pools["absent"].append(copy.suspicion[untouched & ~injection.tags])
            pools["missing"].append(copy.suspicion[judged & injection.missing])
            pools["present"].append(copy.suspicion[untouched & injection.tags])
            pools["spurious"].append(copy.suspicion[judged & injection.spurious])
            sample_suspicion = 1.0 - copy.quality
            samples["clean"].append(sample_suspicion[rows & ~injection.samples])
            samples["hit"].append(sample_suspicion[rows & injection.samples])
        pooled = {key: np.concatenate(values) for key, values in pools.items()}
        missing = mixture_proportion(pooled["absent"], pooled["missing"])
        spurious = mixture_proportion(pooled["present"], pooled["spurious"])
        sample = mixture_proportion(np.concatenate(samples["clean"]), np.concatenate(samples["hit"]))
        return ErrorEstimate(
            missing_share=0.0 if np.isnan(missing) else missing,
            spurious_share=0.0 if np.isnan(spurious) else spurious,
            n_absent=int((judged & ~given).sum()),
            n_present=int((judged & given).sum()),
            sample_error_rate=0.0 if np.isnan(sample) else sample,
        )


def copies_needed(n_samples: int, rate: float, min_injected: int = MIN_INJECTED, max_copies: int = MAX_COPIES) -> int:
    """Copies so that each kind of error (missing, spurious) is injected about ``min_injected`` times."""
    per_copy = max(rate * n_samples / 2, 1.0)
    return int(np.clip(np.ceil(min_injected / per_copy), 1, max_copies))


def calibrate(
    rescore: Callable[[np.ndarray], PairConsensus],
    tags: np.ndarray,
    scored: np.ndarray,
    seed: int,
    rate: float = DEFAULT_INJECTION_RATE,
    copies: int | None = None,
) -> Calibration:
    """Corrupt copies of ``tags`` (``inject_errors``) and score each with ``rescore`` (the same methods). A
    small set gets several copies (``copies_needed``): the estimate needs a few hundred injected errors of
    each kind before its tail shares mean anything, and corrupting more of one copy would change the data."""
    count = copies or copies_needed(len(tags), rate)
    injections = [inject_errors(tags, rate, seed + c, scored) for c in range(count)]
    return Calibration(
        injections=injections,
        copies=[rescore(injection.tags) for injection in injections],
        settings={
            "method": "mixture proportion of injected errors (Best Bin Estimation, Clopper-Pearson bounds)",
            "injection_rate": rate,
            "copies": count,
            "injected_missing": int(sum(i.missing.sum() for i in injections)),
            "injected_spurious": int(sum(i.spurious.sum() for i in injections)),
            "delta": BBE_DELTA,
        },
    )


# ---- decisions ------------------------------------------------------------------------------------------


def top_pairs(suspicion: np.ndarray, candidates: np.ndarray, count: int) -> np.ndarray:
    """(N, K) bool: the ``count`` most suspect pairs among ``candidates`` (ties by position)."""
    flags = np.zeros(suspicion.shape, dtype=bool)
    where = np.flatnonzero(candidates.ravel())
    if count <= 0 or not len(where):
        return flags
    values = suspicion.ravel()[where]
    order = np.argsort(-values, kind="stable")[: min(count, len(where))]
    flags.ravel()[where[order]] = True
    return flags


@dataclass
class TagDecisions:
    missing: np.ndarray  # (N, K) bool
    spurious: np.ndarray  # (N, K) bool
    suggested: np.ndarray  # (N, K) bool
    quality: np.ndarray  # (N,)
    rank: np.ndarray  # (N,) int, 1 = most suspect
    estimate: ErrorEstimate | None
    flag_rule: str

    @property
    def is_issue(self) -> np.ndarray:
        return (self.missing | self.spurious).any(axis=1)


def decide(
    tags: np.ndarray, consensus: PairConsensus, calibration: Calibration | None, flag_rule: str | None = None
) -> TagDecisions:
    tags = np.asarray(tags, dtype=bool)
    rule = flag_rule or ("calibrated" if calibration is not None else "majority")
    if rule not in FLAG_RULES:
        raise ValueError(f"unknown flag rule {rule!r}; choose from {', '.join(FLAG_RULES)}")
    if rule == "calibrated" and calibration is None:
        raise ValueError("the calibrated flag rule needs a calibration")
    estimate = calibration.estimate(tags) if calibration is not None else None
    judged = np.broadcast_to(consensus.scored[None, :], tags.shape)
    if rule == "calibrated":
        assert estimate is not None
        missing = top_pairs(consensus.suspicion, judged & ~tags, estimate.missing_pairs)
        spurious = top_pairs(consensus.suspicion, judged & tags, estimate.spurious_pairs)
    else:
        missing, spurious = consensus.majority()
        missing &= ~tags & judged
        spurious &= tags & judged
    order = np.argsort(consensus.quality, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    return TagDecisions(
        missing=missing,
        spurious=spurious,
        suggested=tags ^ (missing | spurious),
        quality=consensus.quality,
        rank=rank,
        estimate=estimate,
        flag_rule=rule,
    )
