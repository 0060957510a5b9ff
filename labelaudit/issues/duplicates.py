"""Duplicate groups, and groups whose members carry different labels (the ``duplicate_conflict`` issue type).

Exact duplicates (same content hash) and near duplicates (cosine at or above ``NEAR_DUPLICATE_THRESHOLD``
between neighbours in the shared k-NN graph, labelaudit.neighbors) are joined transitively into groups. A
group whose members carry more than one label is a *conflict*: at least one of those labels is wrong.
Same-label groups are listed too (they inflate a class and leak across splits) but are not label errors.
The groups are written as duplicates.parquet / .csv.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..neighbors import NeighborGraph
from . import IssueInputs, IssueResult

# Calibrated by reading nearest-neighbour pairs of the shared wrench sms/youtube/trec sets with
# all-MiniLM-L6-v2 (docs/method.md): at >= 0.95 pairs are the same message with trivial edits or the same
# question reworded; between 0.92 and 0.95 they start to differ in what they ask ("who were the five Marx
# brothers" / "how many Marx brothers were there"), which can rightly carry different labels.
NEAR_DUPLICATE_THRESHOLD = 0.95
TABLE_COLUMNS = [
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


@dataclass
class Duplicates:
    table: pd.DataFrame  # one row per member of every duplicate group
    group: np.ndarray  # (N,) group id per sample, -1 when in no group
    conflict: np.ndarray  # (N,) bool, member of a group with more than one label


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
    table = pd.DataFrame(records, columns=TABLE_COLUMNS)
    if len(table):
        # Conflicts first: they are the label problems; same-label groups are housekeeping.
        table = table.sort_values(
            ["conflicting", "group", "sample_id"], ascending=[False, True, True], kind="mergesort"
        )
    return Duplicates(table=table.reset_index(drop=True), group=group, conflict=conflict)


class DuplicateCheck:
    name = "duplicate_conflict"
    summary_key = "duplicates"
    table_name = "duplicates"

    def find(self, inputs: IssueInputs) -> IssueResult:
        found = find_duplicates(inputs.graph, inputs.hashes, inputs.labels, inputs.classes, inputs.sample_ids)
        table = found.table
        return IssueResult(
            flags=found.conflict,
            columns={"duplicate_group": found.group, "duplicate_conflict": found.conflict},
            summary={
                "groups": int(table["group"].nunique()) if len(table) else 0,
                "conflicting_groups": int(table.loc[table["conflicting"], "group"].nunique()) if len(table) else 0,
                "samples_in_conflicting_groups": int(found.conflict.sum()),
            },
            table=table,
        )

    def terminal_row(self, count: int) -> tuple[str, str] | None:
        return "duplicate conflicts", f"{count:,} samples (listed in {self.table_name}.csv)"


CHECK = DuplicateCheck
