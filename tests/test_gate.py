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
        ["--max-class-error-rate", "20"],
    ],
)
def test_usage_errors_exit_2(report: Path, args: list[str]) -> None:
    assert main(["gate", str(report), *args]) == 2


def test_a_percentage_limit_names_the_rate_meant(report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", str(report), "--max-error-rate", "5"]) == 2
    assert "did you mean 0.05 for 5 %?" in " ".join(capsys.readouterr().err.split())
    # a tolerance of five points written as 5 would let any regression through
    assert main(["gate", str(report), "--baseline", str(report), "--tolerance", "5"]) == 2
    assert "--tolerance is a rate between 0 and 1" in " ".join(capsys.readouterr().err.split())


def test_one_inclusive_limit_rule_for_audit_and_gate() -> None:
    from labelaudit import cli, gate, limits

    # 0.1 + 0.05 is 0.15000000000000002: a run sitting on its limit passes, a hair above it fails
    assert not limits.exceeds(0.1 + 0.05, 0.15) and limits.exceeds(0.1501, 0.15)
    assert limits.check_rate("--x", 0.0) == 0.0 and limits.check_rate("--x", 1.0) == 1.0
    # neither module keeps a private copy of the rule
    assert not hasattr(gate, "_exceeds") and not hasattr(gate, "EPSILON") and not hasattr(cli, "EPSILON")


def test_class_limit_sits_on_float_noise(tmp_path: Path) -> None:
    report = write_report(tmp_path / "r", rows(100, 5), class_rates={"cat": 0.1 + 0.05, "dog": 0.1})
    assert main(["gate", str(report), "-q", "--max-class-error-rate", "0.15"]) == 0
    assert main(["gate", str(report), "-q", "--max-class-error-rate", "0.1499"]) == 1


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


def test_classes_whose_labels_are_codes_are_shown_by_their_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels "0" and "1" named by ``--classes FILE``: the class table holds both, and the gate, like the audit's
    own tables, names the classes (it printed the codes, "0: 6.0% ..., most confused with 1")."""
    import pandas as pd

    report = write_report(tmp_path / "report", rows(100, 5, labels=("0", "1")))
    classes = pd.read_parquet(report / "classes.parquet")
    classes["name"] = classes["class"].map({"0": "ham", "1": "spam"})
    classes["confused_with"] = classes["class"].map({"0": "1", "1": "0"})
    classes.to_parquet(report / "classes.parquet", index=False)
    assert main(["gate", str(report), "--max-class-error-rate", "0.05", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    worst = payload["worst_classes"][0]
    assert (worst["class"], worst["name"], worst["confused_with"], worst["confused_with_name"]) == (
        "0",
        "ham",
        "1",
        "spam",
    )
    assert main(["gate", str(report), "--max-class-error-rate", "0.05"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "over the limit: ham (6.0%)" in err and "ham: 6.0% estimated error" in err and "confused with spam" in err


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


# ---------------------------------------------------------------- a baseline of another audit


def _with_summary(report: Path, **changes: object) -> Path:
    summary_file = report / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key in ("source", "modality"):
            summary["dataset"][key] = value
        else:
            summary[key] = value
    summary_file.write_text(json.dumps(summary), encoding="utf-8")
    return report


ENCODER = {"identity": "sentence-transformers:all-MiniLM-L6-v2"}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"source": "other-data"}, "dataset: baseline other-data, this report data"),
        ({"modality": "text"}, "modality: baseline text, this report image"),
        ({"encoder": {"identity": "open_clip:ViT-B-32:laion2b_s34b_b79k"}}, "encoder: baseline open_clip"),
        ({"methods": ["confident"]}, "methods: baseline confident, this report confident,deft"),
        ({"classes": ["airplane", "ship"]}, "classes: none in common"),
    ],
)
def test_a_baseline_of_another_audit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, named: str
) -> None:
    current = _with_summary(write_report(tmp_path / "current", rows(100, 5)), encoder=ENCODER)
    # every sample flagged in the baseline: without the check this passed the regression gate in silence
    base = _with_summary(write_report(tmp_path / "base", rows(100, 50)), **{"encoder": ENCODER, **change})
    assert main(["gate", str(current), "--baseline", str(base)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert named in err and "--allow-different-baseline" in err
    assert main(["gate", str(current), "--baseline", str(base), "--allow-different-baseline"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: baseline differs: " + named in err


def test_data_and_data_slash_are_the_same_dataset(tmp_path: Path) -> None:
    current = write_report(tmp_path / "current", rows(100, 5), source="data/")
    base = write_report(tmp_path / "base", rows(100, 5), source="./data")
    assert main(["gate", str(current), "-q", "--baseline", str(base)]) == 0


def test_added_classes_are_a_warning_not_a_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_report(tmp_path / "base", rows(100, 5))
    current = write_report(tmp_path / "current", rows(150, 5, labels=("cat", "dog", "bird")))
    assert main(["gate", str(current), "--baseline", str(base), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["baseline_warnings"] == ["classes added since the baseline: bird"]
    assert "warning: baseline differs: classes added since the baseline: bird" in captured.err


def test_every_newly_flagged_sample_is_listed_or_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_report(tmp_path / "base", rows(200, 0))
    current = write_report(tmp_path / "current", rows(200, 80))
    summary = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit = tmp_path / "gate.xml"
    assert main(["gate", str(current), "--baseline", str(base), "--junit", str(junit), "--json"]) == 1
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["newly_flagged"]) == 80  # machines get every one
    err = captured.err
    assert "80 sample(s) newly flagged since the baseline:" in err
    assert err.count(" (was not flagged)") == 20 and "… 60 more (every one is listed by --json)" in err
    text = summary.read_text(encoding="utf-8")
    assert text.count("| was not flagged |") == 50 and "… 30 more" in text
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and "… 30 more" in (failure.text or "")


def test_a_passing_lower_bound_says_that_the_upper_end_of_its_interval_is_above_the_limit(
    report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pass a lower bound's point gives says least: the gate says so where the user reads the pass, and
    names the way out (--on upper), but only where that end is above the limit."""
    summary_file = report / "summary.json"
    payload = json.loads(summary_file.read_text())
    note = "it is a lower bound and the upper end of its interval, 12.00%, is above the limit: --on upper"
    for upper, is_lower_bound, said in ((0.12, True, True), (0.12, False, False), (0.055, True, False)):
        payload["error_rate"] = {"lower": 0.04, "upper": upper, "is_lower_bound": is_lower_bound, "warnings": []}
        summary_file.write_text(json.dumps(payload))
        assert main(["gate", str(report), "--max-error-rate", "0.06"]) == 0  # the point, 5 %, passes
        assert (note in capsys.readouterr().err) == said
    payload["error_rate"]["upper"] = 0.12
    summary_file.write_text(json.dumps(payload))
    assert main(["gate", str(report), "--max-error-rate", "0.06", "--on", "upper"]) == 1
