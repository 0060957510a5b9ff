"""Issue checks: each finds one kind of problem in the audited samples, beside the label scorers.

An ``IssueCheck`` has a name (the issue type written into the report's ``issue_type`` column and counted in
summary.json's ``issue_types``) and ``find(inputs) -> IssueResult``: a flag per sample, the per-sample columns
it adds to the report, its section of summary.json, an optional table of its own (``<table_name>.parquet`` /
``.csv``) and a row for the terminal summary. The report, the summary, the terminal and the HTML page are
built from whatever checks are registered, as cleanlab's Datalab does with its IssueManagers: a new issue
type is one module here plus one line in ``ISSUE_CHECKS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..neighbors import NeighborGraph

# Issue type -> the module whose CHECK finds it. The order is that of the report's columns, of the
# '+'-joined issue_type values and of summary.json's sections.
ISSUE_CHECKS: dict[str, str] = {
    "label_error": "labelaudit.issues.label_error",
    "duplicate_conflict": "labelaudit.issues.duplicates",
    "outlier": "labelaudit.issues.outliers",
}


@dataclass
class IssueInputs:
    """What a check may read; every per-sample array is in discovery order (one row per audited sample)."""

    labels: np.ndarray  # (N,) class index of the given label
    classes: list[str]
    sample_ids: np.ndarray  # (N,) str
    hashes: np.ndarray  # (N,) content hashes
    embeddings: np.ndarray  # (N, D) float16, L2-normalised
    class_embeddings: np.ndarray | None  # (K, D) class-prompt embeddings
    graph: NeighborGraph  # the shared k-NN graph (labelaudit.neighbors)
    label_errors: np.ndarray  # (N,) bool: the consensus of the label scorers


@dataclass
class IssueResult:
    flags: np.ndarray  # (N,) bool: the samples with this issue
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # per-sample report columns, in order
    summary: dict[str, Any] | None = None  # its section of summary.json, under the check's summary_key
    table: pd.DataFrame | None = None  # its own table, written under the check's table_name


class IssueCheck(Protocol):
    name: str  # the issue type
    summary_key: str | None  # the key of its section in summary.json, if it writes one
    table_name: str | None  # the file stem of its own table beside the report, if it has one

    def find(self, inputs: IssueInputs) -> IssueResult: ...

    def terminal_row(self, count: int) -> tuple[str, str] | None:
        """(label, value) for the terminal summary, given how many samples have the issue; None: no row."""


@cache
def get_checks() -> tuple[IssueCheck, ...]:
    return tuple(importlib.import_module(module).CHECK() for module in ISSUE_CHECKS.values())


def table_names() -> tuple[str, ...]:
    """The stems of the tables the registered checks write beside the report."""
    return tuple(check.table_name for check in get_checks() if check.table_name)


def terminal_rows(counts: dict[str, int]) -> list[tuple[str, str]]:
    """The terminal summary's rows of the registered checks, from summary.json's issue_types counts."""
    rows = [check.terminal_row(counts.get(check.name, 0)) for check in get_checks()]
    return [row for row in rows if row is not None]


@dataclass
class FoundIssues:
    """Every registered check with its result, in registry order."""

    found: list[tuple[IssueCheck, IssueResult]]

    def issue_type(self) -> np.ndarray:
        """Each sample's issue types, '+'-joined in registry order ('' when none)."""
        names = [check.name for check, _ in self.found]
        rows = zip(*(result.flags for _, result in self.found), strict=True)
        return np.array(["+".join(n for n, flag in zip(names, row, strict=True) if flag) for row in rows], dtype=object)

    def columns(self) -> pd.DataFrame:
        """The report's per-sample issue columns: issue_type, then every check's own."""
        columns: dict[str, Any] = {"issue_type": self.issue_type()}
        for _, result in self.found:
            columns.update(result.columns)
        return pd.DataFrame(columns)

    def counts(self) -> dict[str, int]:
        return {check.name: int(result.flags.sum()) for check, result in self.found}

    def sections(self) -> dict[str, dict[str, Any]]:
        return {
            check.summary_key: result.summary
            for check, result in self.found
            if check.summary_key is not None and result.summary is not None
        }

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            check.table_name: result.table
            for check, result in self.found
            if check.table_name is not None and result.table is not None
        }


def find_issues(inputs: IssueInputs) -> FoundIssues:
    return FoundIssues([(check, check.find(inputs)) for check in get_checks()])
