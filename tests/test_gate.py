"""`labelaudit gate`: exit codes, inclusive limits, regression against a baseline, machine outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labelaudit.cli import main
from labelaudit.gate import check_gate

from .report_factory import write_report


def rows(n: int, flagged: int, labels: tuple[str, ...] = ("cat", "dog"), prefix: str = "") -> list[dict]:
    """n samples alternating over labels; the first `flagged` are flagged (and most suspect)."""
    return [
        {
            "sample_id": f"{prefix}{labels[i % len(labels)]}/{i:03d}.png",
            "given_label": labels[i % len(labels)],
            "suggested_label": labels[(i + 1) % len(labels)] if i < flagged else labels[i % len(labels)],
            "consensus_score": 0.001 * i if i < flagged else 0.5 + 0.001 * i,
            "is_issue": i < flagged,
            "content_hash": f"{prefix}hash{i}",
        }
        for i in range(n)
    ]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    # 5 of 100 flagged: an error rate of exactly 0.05; cat has 3 of its 50 (0.06), dog 2 (0.04)
    return write_report(tmp_path / "report", rows(100, 5))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--max-error-rate", "0.05"], 0),  # equal to the limit passes
        (["--max-error-rate", "0.0499"], 1),
        (["--max-error-rate", "0.2"], 0),
        (["--max-class-error-rate", "0.06"], 0),
        (["--max-class-error-rate", "0.059"], 1),
        (["--max-flagged", "5"], 0),
        (["--max-flagged", "4"], 1),
        (["--max-error-rate", "0.5", "--max-flagged", "4"], 1),  # any failed limit fails the gate
    ],
)
def test_exit_codes_and_inclusive_limits(report: Path, args: list[str], code: int) -> None:
    assert main(["gate", str(report), "--quiet", *args]) == code


@pytest.mark.parametrize(
    "args",
    [
        [],  # no limit at all
        ["--max-error-rate", "5"],  # a percentage, not a rate
        ["--max-error-rate", "-0.1"],
        ["--max-flagged", "-1"],
        ["--max-new-flagged", "1"],  # needs --baseline
        ["--max-error-rate", "0.1", "--tolerance", "-0.01", "--baseline", "."],
    ],
)
def test_usage_errors_exit_2(report: Path, args: list[str]) -> None:
    assert main(["gate", str(report), *args]) == 2


def test_missing_or_foreign_report_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", str(tmp_path / "nope"), "--max-error-rate", "0.1"]) == 2
    assert "does not exist" in " ".join(capsys.readouterr().err.split())
    assert main(["gate", str(tmp_path), "--max-error-rate", "0.1"]) == 2
    assert "not a labelaudit report" in " ".join(capsys.readouterr().err.split())


def test_failure_message_names_limit_value_and_worst_classes(report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", str(report), "--max-error-rate", "0.01", "--max-class-error-rate", "0.05"]) == 1
    err = capsys.readouterr().err
    assert "FAIL max-error-rate" in err and "5.00%" in err and "limit 1.00%" in err
    assert "FAIL max-class-error-rate" in err and "cat (6.0%)" in err
    assert "worst classes" in err and "cat: 6.0%" in err
    assert "gate failed: max-error-rate, max-class-error-rate" in err


def test_json_output(report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", str(report), "--max-flagged", "3", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["passed"] is False
    assert payload["failed"] == ["max-flagged"]
    assert payload["checks"][0]["value"] == 5 and payload["checks"][0]["limit"] == 3
    assert payload["worst_classes"][0]["class"] == "cat"


def test_junit_xml_has_one_case_per_limit(report: Path, tmp_path: Path) -> None:
    junit = tmp_path / "ci" / "gate.xml"
    code = main(["gate", str(report), "-q", "--max-error-rate", "0.01", "--max-flagged", "10", "--junit", str(junit)])
    assert code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"max-error-rate", "max-flagged"}
    failure = cases["max-error-rate"].find("failure")
    assert failure is not None and "5.00%" in (failure.get("message") or "")
    assert cases["max-flagged"].find("failure") is None


def test_github_step_summary_is_appended(report: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["gate", str(report), "-q", "--max-error-rate", "0.01"]) == 1
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n")
    assert "labelaudit gate failed" in text and "| max-error-rate | 5.00% | 1.00% | **failed** |" in text


def test_regression_against_baseline_with_tolerance(tmp_path: Path) -> None:
    base = write_report(tmp_path / "base", rows(100, 5))  # 0.05
    same = write_report(tmp_path / "same", rows(100, 5))
    worse = write_report(tmp_path / "worse", rows(100, 10))  # 0.10
    assert main(["gate", str(same), "-q", "--baseline", str(base)]) == 0
    assert main(["gate", str(worse), "-q", "--baseline", str(base)]) == 1
    # 0.05 + 0.05 is 0.10000000000000001 in floating point: the edge must still pass
    assert main(["gate", str(worse), "-q", "--baseline", str(base), "--tolerance", "0.05"]) == 0
    assert main(["gate", str(worse), "-q", "--baseline", str(base), "--tolerance", "0.049"]) == 1
    better = write_report(tmp_path / "better", rows(100, 1))
    assert main(["gate", str(better), "-q", "--baseline", str(base)]) == 0
    # absolute limits still apply next to the baseline
    assert main(["gate", str(same), "-q", "--baseline", str(base), "--max-error-rate", "0.01"]) == 1


def test_newly_flagged_matches_by_id_or_content_hash(tmp_path: Path) -> None:
    old = rows(20, 3)
    base = write_report(tmp_path / "base", old)
    new = rows(20, 5)
    new[0]["sample_id"] = "renamed/000.png"  # flagged before under another name: matched by content hash
    new[1]["content_hash"] = "edited"  # same id, new bytes: matched by id
    new.append(
        {
            "sample_id": "cat/new.png",
            "given_label": "cat",
            "suggested_label": "dog",
            "consensus_score": 0.0,
            "is_issue": True,
            "content_hash": "brand-new",
        }
    )
    current = write_report(tmp_path / "current", new)
    result = check_gate(current, baseline_dir=base, max_new_flagged=2)
    listed = {s["sample_id"]: s["status"] for s in result.newly_flagged}
    assert listed == {"cat/new.png": "new", "dog/003.png": "was not flagged", "cat/004.png": "was not flagged"}
    assert result.n_newly_flagged == 3
    assert [c.name for c in result.failed] == ["regression", "max-new-flagged"]


def test_newly_flagged_are_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_report(tmp_path / "base", rows(20, 1))
    current = write_report(tmp_path / "current", rows(20, 2))
    assert main(["gate", str(current), "--baseline", str(base), "--tolerance", "0.1"]) == 0
    err = capsys.readouterr().err
    assert "1 sample(s) newly flagged since the baseline" in err and "dog/001.png: dog -> cat" in err
