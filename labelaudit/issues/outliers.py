"""Outliers (the ``outlier`` issue type): samples far from everything, and from every class prompt.

A sample is an outlier when its k-th neighbour in the shared k-NN graph is unusually distant and, when class
prompts exist, it is also unusually dissimilar to every class prompt. Listed with a score; not label errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..chunked import project, row_blocks
from ..neighbors import NeighborGraph
from . import IssueInputs, IssueResult

OUTLIER_K = 10  # the k-th neighbour distance; 10 so a small tight cluster of odd samples still counts
OUTLIER_DISTANCE_Z = 3.5  # robust z of the k-th neighbour distance
OUTLIER_PROMPT_Z = 1.0  # robust z of how far the best class-prompt similarity falls below typical


@dataclass
class Outliers:
    score: np.ndarray  # (N,) robust z of the k-th neighbour distance (higher = more isolated)
    is_outlier: np.ndarray  # (N,) bool
    settings: dict[str, float | int | bool]


def robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    # A floor on the spread: with many exact duplicates the MAD can be ~0 and every sample would be "far".
    return (values - median) / max(mad, 1e-3)


def find_outliers(
    graph: NeighborGraph,
    embeddings: np.ndarray,
    class_embeddings: np.ndarray | None,
    k: int = OUTLIER_K,
    distance_z: float = OUTLIER_DISTANCE_Z,
    prompt_z: float = OUTLIER_PROMPT_Z,
) -> Outliers:
    n = len(embeddings)
    if graph.k == 0 or n < 3:
        return Outliers(np.zeros(n), np.zeros(n, dtype=bool), {"k": 0})
    k = min(k, graph.k)
    kth_distance = 1.0 - graph.similarities[:, k - 1].astype(np.float64)
    score = robust_z(kth_distance)
    is_outlier = score >= distance_z
    if class_embeddings is not None:
        best_prompt = np.concatenate(
            [project(embeddings[block], class_embeddings).max(axis=1) for block in row_blocks(n)]
        ).astype(np.float64)
        # Far from its neighbours *and* from every class: a sample in a sparse corner of a class is not one.
        is_outlier &= -robust_z(best_prompt) >= prompt_z
    settings: dict[str, float | int | bool] = {
        "k": k,
        "distance_z": distance_z,
        "prompt_z": prompt_z,
        "uses_class_prompts": class_embeddings is not None,
    }
    return Outliers(score=score, is_outlier=is_outlier, settings=settings)


class OutlierCheck:
    name = "outlier"
    summary_key = "outliers"
    table_name = None

    def find(self, inputs: IssueInputs) -> IssueResult:
        found = find_outliers(inputs.graph, inputs.embeddings, inputs.class_embeddings)
        return IssueResult(
            flags=found.is_outlier,
            columns={"outlier_score": found.score, "is_outlier": found.is_outlier},
            summary={"count": int(found.is_outlier.sum()), **found.settings},
        )

    def terminal_row(self, count: int) -> tuple[str, str] | None:
        return "outliers", f"{count:,} (not counted as label errors)"


CHECK = OutlierCheck
