"""One call that audits tag sets from arrays: every method, the consensus, the calibration and the decisions.

This is the whole multi-label score stage; the pipeline's job is only to build the ``MultilabelContext``
(embeddings, tag matrix, class prompts) and to hand the result to ``report_tables``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .combine import (
    DEFAULT_INJECTION_RATE,
    Calibration,
    PairConsensus,
    TagDecisions,
    calibrate,
    decide,
    pair_consensus,
)
from .scorers import MultilabelContext, PairResult, run_methods

CALIBRATION_SEED_OFFSET = 7919  # the copy's corruptions must not reuse the folds' random stream


@dataclass
class MultilabelAudit:
    classes: list[str]
    tags: np.ndarray  # (N, K) given
    methods: dict[str, PairResult]
    consensus: PairConsensus
    calibration: Calibration | None
    decisions: TagDecisions
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The numbers a summary.json needs; every rate says what it is a share of."""
        d = self.decisions
        n, k = self.tags.shape
        judged = int(self.consensus.scored.sum()) * n
        out: dict[str, Any] = {
            "n_samples": n,
            "n_classes": k,
            "n_classes_judged": int(self.consensus.scored.sum()),
            "n_pairs_judged": judged,
            "n_flagged_samples": int(d.is_issue.sum()),
            "n_flagged_missing": int(d.missing.sum()),
            "n_flagged_spurious": int(d.spurious.sum()),
            "flagged_sample_rate": float(d.is_issue.mean()) if n else 0.0,
            "flagged_pair_rate": float((d.missing | d.spurious).sum() / max(judged, 1)),
            "flag_rule": d.flag_rule,
            "methods": {name: result.settings for name, result in self.methods.items()},
        }
        if d.estimate is not None:
            out.update(d.estimate.as_dict())
            assert self.calibration is not None
            out["calibration"] = self.calibration.settings
        return out


def audit_tags(
    context: MultilabelContext,
    methods: list[str] | tuple[str, ...] | None = None,
    *,
    calibrated: bool = True,
    injection_rate: float = DEFAULT_INJECTION_RATE,
    flag_rule: str | None = None,
    copies: int | None = None,
) -> MultilabelAudit:
    """Score every (sample, class) pair with ``methods``, combine, and (``calibrated``) estimate the error rates
    from corrupted copies scored the same way (``copies``, default ``combine.copies_needed``: one on a set of
    a few thousand samples or more, which doubles the scoring time)."""
    results = run_methods(context, methods)
    consensus = pair_consensus(results, context.tags)
    calibration = None
    if calibrated:

        def rescore(tags: np.ndarray) -> PairConsensus:
            return pair_consensus(run_methods(context.with_tags(tags), list(results)), tags)

        calibration = calibrate(
            rescore, context.tags, consensus.scored, context.seed + CALIBRATION_SEED_OFFSET, injection_rate, copies
        )
    decisions = decide(context.tags, consensus, calibration, flag_rule)
    return MultilabelAudit(
        classes=list(context.class_names),
        tags=context.tags,
        methods=results,
        consensus=consensus,
        calibration=calibration,
        decisions=decisions,
        settings={"methods": list(results), "seed": context.seed, "folds": context.folds},
    )
