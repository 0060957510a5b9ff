"""Neighbour agreement: a sample whose nearest neighbours carry another label is suspect.

For each sample, the similarity-weighted label distribution of its k nearest neighbours in embedding
space (itself excluded) from the shared neighbour graph. Quality = the weight on the given label;
suggested label = the neighbours' top label; flagged when that top label is not the given one.
Nothing is trained, so the distribution is out-of-sample and doubles as ``pred_probs``.
See Zhu, Dong and Liu, "Detecting Corrupted Labels Without Training a Model to Predict" (ICML 2022).
Defaults (k, weighting) were chosen on the benchmark's tune rows; docs/method.md says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..chunked import row_blocks
from ..errors import LabelAuditError
from . import ScoreContext, ScorerResult

WEIGHTINGS = ("uniform", "similarity", "softmax")
SOFTMAX_TEMPERATURE = 0.05


@dataclass(frozen=True)
class KnnSettings:
    k: int = 20  # neighbours that vote
    weighting: str = "similarity"  # one of WEIGHTINGS

    def check(self) -> None:
        if self.k < 1:
            raise LabelAuditError(f"knn k must be at least 1 (got {self.k})")
        if self.weighting not in WEIGHTINGS:
            raise LabelAuditError(f"unknown knn weighting {self.weighting!r}; choose from {', '.join(WEIGHTINGS)}")


def neighbor_weights(similarities: np.ndarray, weighting: str) -> np.ndarray:
    if weighting == "uniform":
        return np.ones_like(similarities, dtype=np.float64)
    if weighting == "similarity":
        return np.clip(similarities, 0.0, None).astype(np.float64)  # an anti-similar neighbour is no evidence
    if weighting == "softmax":
        shifted = (similarities - similarities[:, :1]) / SOFTMAX_TEMPERATURE
        return np.exp(shifted.astype(np.float64))
    raise ValueError(f"unknown knn weighting {weighting!r}; choose from {', '.join(WEIGHTINGS)}")


def neighbor_label_distribution(
    indices: np.ndarray, similarities: np.ndarray, labels: np.ndarray, n_classes: int, weighting: str
) -> np.ndarray:
    """(N, K) rows summing to 1; a row with no usable neighbour is uniform (no evidence either way)."""
    weights = neighbor_weights(similarities, weighting)
    weights[indices < 0] = 0.0
    neighbour_labels = labels[np.clip(indices, 0, None)]
    dist = np.zeros((len(indices), n_classes), dtype=np.float64)
    rows = np.repeat(np.arange(len(indices)), indices.shape[1])
    np.add.at(dist, (rows, neighbour_labels.ravel()), weights.ravel())
    total = dist.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    dist[empty] = 1.0 / n_classes
    total[empty] = 1.0
    return dist / total


class KnnScorer:
    name = "knn"
    settings_type = KnnSettings

    def score(self, context: ScoreContext, settings: KnnSettings | None = None) -> ScorerResult:
        settings = settings or KnnSettings()
        settings.check()
        k, weighting = settings.k, settings.weighting
        with context.reporter.task("Scoring: knn (neighbour agreement)", total=1) as task:
            graph = context.neighbor_graph(k)
            n = len(context.labels)
            dist = np.empty((n, context.n_classes), dtype=np.float32)
            given = np.empty(n, dtype=np.float64)
            top = np.empty(n, dtype=np.int64)
            # float64 per block, so ties are exact ties; the stored table is float32 (N x K at 1M x 1000).
            for block in row_blocks(n):
                part = neighbor_label_distribution(
                    graph.indices[block], graph.similarities[block], context.labels, context.n_classes, weighting
                )
                rows = np.arange(len(part))
                labels = context.labels[block]
                given[block] = part[rows, labels]
                best = part.argmax(axis=1)
                # Ties go to the given label: an even split is not evidence that the label is wrong.
                top[block] = np.where(given[block] >= part[rows, best] - 1e-12, labels, best)
                dist[block] = part
            task.advance()
        return ScorerResult(
            quality=given,
            is_issue=top != context.labels,
            suggested=top,
            pred_probs=dist,
            settings={
                "k": graph.k,
                "weighting": weighting,
                "flag_rule": "neighbours' top label differs from the given label",
                "search": graph.settings.get("method"),
                "recall_at_k": graph.settings.get("recall_at_k"),
            },
        )


SCORER = KnnScorer
