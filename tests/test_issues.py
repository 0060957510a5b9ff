"""Issue checks are plug-ins: the report's columns, summary.json, the terminal and the tables follow the registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from labelaudit import issues
from labelaudit.issues import FoundIssues, IssueInputs, IssueResult, get_checks
from labelaudit.issues.duplicates import DuplicateCheck
from labelaudit.issues.label_error import LabelErrorCheck
from labelaudit.issues.outliers import OutlierCheck

from .conftest import SAMPLE_TEXT


def test_issue_type_joins_the_flags_in_registry_order() -> None:
    found = FoundIssues(
        [
            (LabelErrorCheck(), IssueResult(np.array([False, True, False]))),
            (DuplicateCheck(), IssueResult(np.array([False, True, True]), {"duplicate_group": np.array([-1, 0, 0])})),
            (OutlierCheck(), IssueResult(np.array([True, False, False]), summary={"count": 1})),
        ]
    )
    assert found.issue_type().tolist() == ["outlier", "label_error+duplicate_conflict", "duplicate_conflict"]
    assert list(found.columns()) == ["issue_type", "duplicate_group"]
    assert found.counts() == {"label_error": 1, "duplicate_conflict": 2, "outlier": 1}
    assert found.sections() == {"outliers": {"count": 1}}


class EndsInOneCheck:
    """A made-up issue type for the test: samples whose id ends in "1"."""

    name = "ends_in_one"
    summary_key = "ends_in_one"
    table_name = "ends_in_one"

    def find(self, inputs: IssueInputs) -> IssueResult:
        flags = np.array([str(s).endswith("1") for s in inputs.sample_ids])
        table = pd.DataFrame({"sample_id": inputs.sample_ids[flags]})
        return IssueResult(flags, {"ends_in_one": flags}, {"count": int(flags.sum())}, table)

    def terminal_row(self, count: int) -> tuple[str, str] | None:
        return "ends in one", f"{count} samples"


CHECK = EndsInOneCheck


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(issues.ISSUE_CHECKS, "ends_in_one", __name__)  # the one line a new issue type adds
    get_checks.cache_clear()
    yield
    get_checks.cache_clear()


def test_a_registered_check_reaches_every_report_file(
    registered: None, tmp_path: Path, minilm_encoder, capsys: pytest.CaptureFixture
) -> None:
    from labelaudit import audit
    from labelaudit.report import print_summary

    rows = [
        {"text": f.read_text(encoding="utf-8"), "label": folder.name, "id": f"{folder.name}-{f.stem}"}
        for folder in sorted(SAMPLE_TEXT.iterdir())
        for f in sorted(folder.glob("*.txt"))
    ]
    out = tmp_path / "report"
    result = audit(pd.DataFrame(rows), out=out, encoder=minilm_encoder, methods="knn", cache_dir=None, id_col="id")
    expected = {r["id"] for r in rows if r["id"].endswith("1")}
    report = pd.read_parquet(out / "report.parquet")
    assert list(report.columns)[-1] == "ends_in_one"
    assert set(report.loc[report["ends_in_one"], "sample_id"]) == expected
    assert report.loc[report["ends_in_one"], "issue_type"].str.endswith("ends_in_one").all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["issue_types"]["ends_in_one"] == len(expected) == summary["ends_in_one"]["count"]
    assert set(pd.read_csv(out / "ends_in_one.csv")["sample_id"]) == expected
    print_summary(Console(width=200), result.samples, result.classes, result.summary)
    lines = capsys.readouterr().out.splitlines()
    assert any("ends in one" in line and f"│ {len(expected)} samples" in line for line in lines)
