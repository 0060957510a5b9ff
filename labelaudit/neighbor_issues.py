"""Issue types read off the shared neighbour graph (labelaudit.neighbors), beside the label scorers.

- Duplicate groups: exact duplicates (same content hash) and near duplicates (cosine at or above
  ``NEAR_DUPLICATE_THRESHOLD`` between graph neighbours), joined transitively. A group whose members
  carry more than one label is a *conflict*: at least one of those labels is wrong. Same-label groups
  are listed too (they inflate a class and leak across splits) but are not label errors.
- Outliers: samples far from everything (their k-th neighbour is unusually distant) and, when class
  prompts exist, unusually dissimilar to every class prompt. Listed with a score; not label errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .chunked import project, row_blocks
from .neighbors import NeighborGraph

# Calibrated by reading nearest-neighbour pairs of the shared wrench sms/youtube/trec sets with
# all-MiniLM-L6-v2 (docs/method.md): at >= 0.95 pairs are the same message with trivial edits or the same
# question reworded; between 0.92 and 0.95 they start to differ in what they ask ("who were the five Marx
# brothers" / "how many Marx brothers were there"), which can rightly carry different labels.
NEAR_DUPLICATE_THRESHOLD = 0.95
OUTLIER_K = 10  # the k-th neighbour distance; 10 so a small tight cluster of odd samples still counts
OUTLIER_DISTANCE_Z = 3.5  # robust z of the k-th neighbour distance
OUTLIER_PROMPT_Z = 1.0  # robust z of how far the best class-prompt similarity falls below typical
ISSUE_TYPES = ("label_error", "duplicate_conflict", "outlier")


@dataclass
class Duplicates:
    table: pd.DataFrame  # one row per member of every duplicate group
    group: np.ndarray  # (N,) group id per sample, -1 when in no group
    conflict: np.ndarray  # (N,) bool, member of a group with more than one label


@dataclass
class Outliers:
    score: np.ndarray  # (N,) robust z of the k-th neighbour distance (higher = more isolated)
    is_outlier: np.ndarray  # (N,) bool
    settings: dict[str, float | int | bool]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression keeps later finds O(1)
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def find_duplicates(
    graph: NeighborGraph,
    hashes: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    sample_ids: np.ndarray,
    threshold: float = NEAR_DUPLICATE_THRESHOLD,
) -> Duplicates:
    n = len(labels)
    uf = _UnionFind(n)
    best = np.zeros(n, dtype=np.float64)  # each member's highest similarity to another member
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    same = sorted_hashes[1:] == sorted_hashes[:-1]
    for a, b in zip(order[:-1][same].tolist(), order[1:][same].tolist(), strict=True):
        uf.union(a, b)
        best[a] = best[b] = 1.0
    rows, cols = np.nonzero(graph.similarities >= threshold)
    for i, j in zip(rows.tolist(), graph.indices[rows, cols].tolist(), strict=True):
        if j < 0:
            continue
        uf.union(i, j)
    near_sims = graph.similarities[rows, cols].astype(np.float64)
    np.maximum.at(best, rows, near_sims)
    np.maximum.at(best, graph.indices[rows, cols], near_sims)

    roots = np.array([uf.find(i) for i in range(n)])
    sizes = np.bincount(roots, minlength=n)
    in_group = sizes[roots] > 1
    group = np.full(n, -1, dtype=np.int64)
    conflict = np.zeros(n, dtype=bool)
    records = []
    members_by_root: dict[int, list[int]] = {}
    for i in np.nonzero(in_group)[0].tolist():
        members_by_root.setdefault(int(roots[i]), []).append(i)
    class_array = np.array(classes, dtype=object)
    for gid, root in enumerate(sorted(members_by_root)):
        members = members_by_root[root]
        member_labels = sorted({int(labels[m]) for m in members})
        is_conflict = len(member_labels) > 1
        kind = "exact" if len({hashes[m] for m in members}) == 1 else "near"
        group[members] = gid
        conflict[members] = is_conflict
        for m in members:
            records.append(
                {
                    "group": gid,
                    "kind": kind,
                    "conflicting": is_conflict,
                    "group_size": len(members),
                    "group_labels": "|".join(class_array[member_labels]),
                    "min_similarity": float(min(best[x] for x in members)),
                    "sample_id": str(sample_ids[m]),
                    "label": class_array[labels[m]],
                    "similarity": float(best[m]),
                    "content_hash": hashes[m],
                }
            )
    columns = [
        "group",
        "kind",
        "conflicting",
        "group_size",
        "group_labels",
        "min_similarity",
        "sample_id",
        "label",
        "similarity",
        "content_hash",
    ]
    table = pd.DataFrame(records, columns=columns)
    if len(table):
        # Conflicts first: they are the label problems; same-label groups are housekeeping.
        table = table.sort_values(
            ["conflicting", "group", "sample_id"], ascending=[False, True, True], kind="mergesort"
        )
    return Duplicates(table=table.reset_index(drop=True), group=group, conflict=conflict)


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


def issue_types(is_label_error: np.ndarray, duplicates: Duplicates, outliers: Outliers) -> np.ndarray:
    """Each sample's issue types, '+'-joined in ISSUE_TYPES order ('' when none)."""
    parts = [is_label_error, duplicates.conflict, outliers.is_outlier]
    return np.array(
        [
            "+".join(name for name, flag in zip(ISSUE_TYPES, flags, strict=True) if flag)
            for flags in zip(*parts, strict=True)
        ],
        dtype=object,
    )
