"""Combine the scorers into one ranking, one flag and one estimated label-error rate.

- consensus score: the mean over methods of each sample's rank-normalised label-quality score (0 =
  the most suspect sample of every method, 1 = the least). Ranks make methods with differently
  calibrated scores count equally.
- consensus flag: a strict majority of the methods flag the sample (with one method, its own flag).
  Requiring agreement is what keeps a nearly clean dataset nearly clean.
- estimated error rate: the share of samples the consensus flags.
- suggested label: argmax of the mean of the methods' predicted probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from .scorers import ScorerResult


@dataclass
class Consensus:
    score: np.ndarray
    is_issue: np.ndarray
    suggested: np.ndarray
    suggested_prob: np.ndarray
    pred_probs: np.ndarray | None
    estimated_error_rate: float


def rank_normalise(quality: np.ndarray) -> np.ndarray:
    if len(quality) < 2:
        return np.ones_like(quality, dtype=np.float64)
    return (rankdata(quality, method="average") - 1.0) / (len(quality) - 1.0)


def combine(results: dict[str, ScorerResult], labels: np.ndarray) -> Consensus:
    if not results:
        raise ValueError("combine() needs at least one scorer result")
    scores = np.mean([rank_normalise(r.quality) for r in results.values()], axis=0)
    votes = np.sum([r.is_issue for r in results.values()], axis=0)
    is_issue = votes * 2 > len(results)
    probs_list = [r.pred_probs for r in results.values() if r.pred_probs is not None]
    if probs_list:
        pred_probs = np.mean(probs_list, axis=0)
        suggested = pred_probs.argmax(axis=1)
        suggested_prob = pred_probs[np.arange(len(suggested)), suggested]
    else:
        pred_probs = None
        suggested = next(iter(results.values())).suggested
        suggested_prob = np.full(len(suggested), np.nan)
    return Consensus(
        score=scores,
        is_issue=is_issue,
        suggested=suggested,
        suggested_prob=suggested_prob,
        pred_probs=pred_probs,
        estimated_error_rate=float(is_issue.mean()) if len(is_issue) else 0.0,
    )
