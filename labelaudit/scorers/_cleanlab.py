"""The shared last step of the probability-based scorers: cleanlab's issue filter and quality ranking."""

from __future__ import annotations

import warnings

import numpy as np

from . import ScorerResult


def cleanlab_result(labels: np.ndarray, pred_probs: np.ndarray, settings: dict[str, object]) -> ScorerResult:
    """cleanlab's flags and quality scores for ``pred_probs``, which this call may overwrite (it is the
    caller's scratch array: at 1M x 1000 every extra N x K copy is 4-8 GB)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    # float32 throughout: cleanlab's filter on a float64 table needs 2.4x the table in scratch memory (1.3 GB
    # extra at 1M x 100), on float32 about 1.4x (0.56 GB); the flags agree (tests/test_scale_memory.py).
    pred_probs = np.asarray(pred_probs, dtype=np.float32)
    np.clip(pred_probs, 1e-12, None, out=pred_probs)
    pred_probs /= pred_probs.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about tiny classes; discover() already told the user
        is_issue = find_label_issues(labels, pred_probs, n_jobs=1)
        quality = get_label_quality_scores(labels, pred_probs)
    return ScorerResult(
        quality=np.asarray(quality, dtype=np.float64),  # (N,) only: float64 keeps ranks exact
        is_issue=np.asarray(is_issue, dtype=bool),
        suggested=pred_probs.argmax(axis=1),
        pred_probs=pred_probs,
        settings={
            **settings,
            "filter": "cleanlab.filter.find_label_issues (prune_by_noise_rate)",
            "quality": "cleanlab.rank.get_label_quality_scores (self_confidence)",
        },
    )


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id per sample; each class is spread over the folds, also classes smaller than ``n_folds``."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        folds[members] = (np.arange(len(members)) + offset) % n_folds
        offset += len(members)
    return folds
