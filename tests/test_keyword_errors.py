"""Every public Python entry point's errors name its keywords (``top=``); the same mistake on the command line
names the flag (``--top``). audit()'s own translation is tested in test_firstrun.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from labelaudit import apply as applying
from labelaudit import gate, verification
from labelaudit.cli import main
from labelaudit.errors import LabelAuditError
from labelaudit.export import export

from .report_factory import report_from_data

SUSPECTS = {"red/red_1.png": "blue", "green/green_2.png": "red"}


@pytest.fixture
def report(image_folder: Path, tmp_path: Path) -> Path:
    return report_from_data(tmp_path / "report", image_folder, SUSPECTS)


def _python_says(call: Callable[[], object]) -> str:
    with pytest.raises(LabelAuditError) as raised:
        call()
    return str(raised.value)


def _cli_says(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(args) == 2
    return " ".join(capsys.readouterr().err.split())


def test_export(report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    said = _python_says(lambda: export(report, "csv", tmp_path / "q.csv", classes=["nope"]))
    assert "classes= names unknown class" in said and "--classes" not in said and "classes_file" not in said
    (tmp_path / "q.csv").write_text("taken\n")
    said = _python_says(lambda: export(report, "csv", tmp_path / "q.csv"))
    assert "overwrite=True" in said and "out=" in said and "--overwrite" not in said
    said = _cli_says(["export", str(report), "--out", str(tmp_path / "q.csv")], capsys)
    assert "--overwrite" in said and "--out" in said


def test_apply_plan(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    decisions = tmp_path / "d.csv"
    pd.DataFrame({"sample_id": ["red/red_0.png"], "decision": ["keep"]}).to_csv(decisions, index=False)
    said = _python_says(lambda: applying.plan_apply(decisions, tmp_path / "missing"))
    assert said.startswith("data=") and "--data" not in said
    assert "--data" in _cli_says(["apply", str(decisions), "--data", str(tmp_path / "missing")], capsys)


def test_apply_execute(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    decisions = tmp_path / "d.csv"
    pd.DataFrame({"sample_id": ["red/red_0.png"], "decision": ["remove"]}).to_csv(decisions, index=False)
    plan, corrected = applying.plan_apply(decisions, image_folder)
    inside = image_folder / "journal.json"
    said = _python_says(lambda: applying.execute(plan, corrected, inside))
    assert said.startswith("journal=") and "--journal" not in said
    said = _cli_says(["apply", str(decisions), "--data", str(image_folder), "--journal", str(inside)], capsys)
    assert "--journal" in said
    assert not inside.exists() and (image_folder / "red" / "red_0.png").is_file()


def test_gate(report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    said = _python_says(lambda: gate.check_gate(report, max_error_rate=5))
    assert "max_error_rate=" in said and "--max-error-rate" not in said
    said = _python_says(lambda: gate.check_gate(report, max_new_flagged=1))
    assert "baseline_dir=" in said and "--baseline" not in said
    assert "--max-error-rate" in _cli_says(["gate", str(report), "--max-error-rate", "5"], capsys)


def test_verify_and_estimate(report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queue = tmp_path / "v.csv"
    verification.write_verify(report, 4, queue)
    said = _python_says(lambda: verification.write_verify(report, 4, queue))
    assert "overwrite=True" in said and "--overwrite" not in said
    assert "--overwrite" in _cli_says(["verify", str(report), "--n", "4", "--out", str(queue)], capsys)

    said = _python_says(lambda: verification.write_estimate(report, []))
    assert "decision_files=" in said and "--verified" not in said
    assert "--verified" in _cli_says(["estimate", str(report)], capsys)
    said = _python_says(lambda: verification.write_estimate(report, [queue], level=2.0))
    assert "level=" in said and "--level" not in said
