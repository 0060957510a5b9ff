"""The CLI end to end, as a user runs it, on the bundled sample data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from labelaudit.cli import main

from .conftest import SAMPLE_IMAGES, SAMPLE_TEXT, TINY_MODEL

# The deliberately wrong labels listed in sample_data/README.md.
WRONG_TEXT = {"cooking/t12.txt", "finance/t25.txt", "space/t26.txt"}


@pytest.fixture(scope="module")
def text_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "text"
    cache = tmp_path_factory.mktemp("cache")
    assert main(["audit", str(SAMPLE_TEXT), "--out", str(out), "--cache-dir", str(cache), "--quiet"]) == 0
    return out


def test_text_audit_writes_every_report_file(text_report: Path) -> None:
    for name in ("report.parquet", "report.csv", "classes.parquet", "classes.csv", "summary.json", "skipped.csv"):
        assert (text_report / name).is_file(), name
    assert not list(text_report.glob("*.tmp"))


def test_report_rows_columns_and_ranking(text_report: Path) -> None:
    report = pd.read_parquet(text_report / "report.parquet")
    csv = pd.read_csv(text_report / "report.csv")
    assert len(report) == len(csv) == 48
    for column in (
        "rank",
        "sample_id",
        "given_label",
        "suggested_label",
        "suggested_prob",
        "consensus_score",
        "is_issue",
        "deft_score",
        "deft_issue",
        "confident_score",
        "zeroshot_score",
    ):
        assert column in report.columns, column
    assert report["rank"].tolist() == list(range(1, 49))
    assert report["consensus_score"].is_monotonic_increasing
    assert report["sample_id"].tolist() == csv["sample_id"].tolist()


def test_deliberately_wrong_sample_labels_rank_on_top(text_report: Path) -> None:
    report = pd.read_parquet(text_report / "report.parquet")
    top = set(report.head(5)["sample_id"])
    assert top >= WRONG_TEXT, report.head(8)[["sample_id", "given_label", "suggested_label", "consensus_score"]]
    flagged = set(report.loc[report["is_issue"], "sample_id"])
    assert len(flagged & WRONG_TEXT) >= 2
    assert len(flagged - WRONG_TEXT) <= 1


def test_summary_says_what_ran(text_report: Path) -> None:
    summary = json.loads((text_report / "summary.json").read_text())
    assert summary["dataset"]["n_samples"] == 48
    assert summary["methods"] == ["deft", "confident", "zeroshot", "knn"]
    assert "all-MiniLM-L6-v2" in summary["encoder"]["description"]
    assert 0.0 <= summary["estimated_error_rate"] <= 0.15
    classes = pd.read_parquet(text_report / "classes.parquet")
    assert sorted(classes["class"]) == ["cooking", "finance", "space", "sports"]


def test_existing_report_is_not_clobbered_without_overwrite(text_report: Path, capsys) -> None:
    before = (text_report / "report.csv").read_bytes()
    assert main(["audit", str(SAMPLE_TEXT), "--out", str(text_report), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (text_report / "report.csv").read_bytes() == before


def test_json_output_parses_and_fail_above_gates(tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    code = main(
        [
            "audit",
            str(SAMPLE_TEXT),
            "--out",
            str(tmp_path / "r"),
            "--cache-dir",
            str(cache),
            "--json",
            "--methods",
            "confident",
            "--fail-above",
            "0.0",
        ]
    )
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["methods"] == ["confident"]
    assert code == (1 if summary["estimated_error_rate"] > 0 else 0)
    assert code == 1


def test_fail_on_upper_judges_the_upper_end_of_the_interval(tmp_path: Path, capsys) -> None:
    cache, out = tmp_path / "cache", tmp_path / "r"
    assert main(["audit", str(SAMPLE_TEXT), "--out", str(out), "--cache-dir", str(cache), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    point, upper = summary["estimated_error_rate"], summary["error_rate"]["upper"]
    assert upper > point + 0.02  # 48 samples: a wide interval
    between = f"{(point + upper) / 2:.4f}"
    run = ["audit", str(SAMPLE_TEXT), "--out", str(out), "--cache-dir", str(cache), "--quiet", "--overwrite"]

    assert main([*run, "--fail-above", between]) == 0  # the point is below the limit
    assert main([*run, "--fail-above", between, "--fail-on", "point"]) == 0
    capsys.readouterr()
    assert main([*run, "--fail-above", between, "--fail-on", "upper"]) == 1
    message = " ".join(capsys.readouterr().err.split())
    assert f"upper end of the 95% interval {upper:.2%} is above --fail-above" in message
    assert main([*run, "--fail-above", f"{upper:.6f}", "--fail-on", "upper"]) == 0  # inclusive, like every limit


def test_fail_on_without_fail_above_is_refused_before_the_audit(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    assert main(["audit", str(SAMPLE_TEXT), "--out", str(out), "--no-cache", "--fail-on", "upper"]) == 2
    assert "pass --fail-above RATE with it" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("limit", ["5", "-0.1", "1.5", "nan"])
def test_fail_above_outside_0_1_is_refused_before_the_audit(tmp_path: Path, capsys, limit: str) -> None:
    # sample_data/text's estimated rate is 6.25 %: `--fail-above 5` meant 5 % and passed it silently
    out = tmp_path / "r"
    assert main(["audit", str(SAMPLE_TEXT), "--out", str(out), "--no-cache", "--fail-above", limit]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "--fail-above is a rate between 0 and 1, e.g. 0.05 for 5 %" in message
    if limit == "5":
        assert "did you mean 0.05 for 5 %?" in message
    assert not out.exists()  # refused before anything ran or was written


def test_missing_data_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["audit", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_option_is_a_usage_error(capsys) -> None:
    assert main(["audit", str(SAMPLE_TEXT), "--no-such-option"]) == 2


def test_image_audit_end_to_end_with_a_tiny_random_model(tmp_path: Path) -> None:
    out = tmp_path / "images"
    code = main(
        [
            "audit",
            str(SAMPLE_IMAGES),
            "--out",
            str(out),
            "--model",
            str(TINY_MODEL),
            "--pretrained",
            "random",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--workers",
            "0",
            "--quiet",
        ]
    )
    assert code == 0
    report = pd.read_parquet(out / "report.parquet")
    assert len(report) == 100
    summary = json.loads((out / "summary.json").read_text())
    assert summary["encoder"]["identity"] == "open_clip:labelaudit-tiny:random-seed0"
    run = json.loads((out / "run.json").read_text())
    assert run["cache"]["embedded"] == 100


def test_console_script_runs_and_offline_weights_fail_fast(tmp_path: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "labelaudit.cli", "audit", str(SAMPLE_IMAGES), "--out", str(tmp_path / "r"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 2
    assert "--checkpoint" in run.stderr
    assert "Traceback" not in run.stderr


def test_cli_default_methods_match_the_library_default() -> None:
    from labelaudit.cli import DEFAULT_METHODS_SPEC
    from labelaudit.scorers import DEFAULT_METHODS

    assert DEFAULT_METHODS_SPEC.split(",") == list(DEFAULT_METHODS)


def test_unchanged_rerun_reads_scores_back_and_writes_the_same_report(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["audit", str(SAMPLE_TEXT), "--cache-dir", str(cache), "--quiet", "--methods", "deft,confident"]
    assert main([*args, "--out", str(tmp_path / "cold")]) == 0
    assert main([*args, "--out", str(tmp_path / "warm")]) == 0
    cold = pd.read_parquet(tmp_path / "cold" / "report.parquet")
    warm = pd.read_parquet(tmp_path / "warm" / "report.parquet")
    pd.testing.assert_frame_equal(cold, warm)
    run = json.loads((tmp_path / "warm" / "run.json").read_text())
    assert run["scores_from_cache"]["deft"] is True

    # Relabel one sample in a manifest, keeping the row order, so only the label differs.
    texts = sorted(SAMPLE_TEXT.glob("*/*.txt"))
    frame = pd.DataFrame({"text": [t.read_text() for t in texts], "label": [t.parent.name for t in texts]})
    frame.to_csv(tmp_path / "before.csv", index=False)
    frame.loc[0, "label"] = "sports" if frame.loc[0, "label"] != "sports" else "cooking"
    frame.to_csv(tmp_path / "after.csv", index=False)
    common = ["--cache-dir", str(cache), "--quiet", "--methods", "deft,confident"]
    assert main(["audit", str(tmp_path / "before.csv"), *common, "--out", str(tmp_path / "before")]) == 0
    assert main(["audit", str(tmp_path / "after.csv"), *common, "--out", str(tmp_path / "changed")]) == 0
    changed = json.loads((tmp_path / "changed" / "run.json").read_text())
    assert changed["scores_from_cache"]["deft"] is False
    assert changed["cache"]["embedded"] == 0


def test_summary_reads_back_as_written(text_report: Path) -> None:
    from labelaudit.summary import NotASummary, Summary

    payload = json.loads((text_report / "summary.json").read_text())
    summary = Summary.from_json(payload)
    assert summary.dataset.n_samples == 48 and summary.issue_types["label_error"] == summary.n_flagged
    assert summary.to_json() == payload and list(summary.to_json()) == list(payload)  # same keys, same order
    assert summary.data_spec is not None and summary.data_spec.modality == "text"
    with pytest.raises(NotASummary, match="is it a labelaudit report"):
        Summary.from_json({"dataset": {}})


def test_the_estimate_options_reach_the_estimate_settings(tmp_path: Path, monkeypatch) -> None:
    import labelaudit
    from labelaudit.errors import LabelAuditError

    seen = []

    def fake_audit(data, config, **kwargs):
        seen.append(config.scoring.estimate)
        raise LabelAuditError("stop here")

    monkeypatch.setattr(labelaudit, "audit", fake_audit)
    out = str(tmp_path / "r")
    assert main(["audit", str(SAMPLE_TEXT), "--out", out, "--quiet", "--lower-bound-cut", "doubted"]) == 2
    assert main(["audit", str(SAMPLE_TEXT), "--out", out, "--quiet"]) == 2
    assert [s.lower_bound_cut for s in seen] == ["doubted", "headline"]
    assert main(["audit", str(SAMPLE_TEXT), "--out", out, "--lower-bound-cut", "deepest"]) == 2  # not a choice
    assert len(seen) == 2
    assert main(["audit", str(SAMPLE_TEXT), "--out", out, "--quiet", "--mistake-sources", "confusion"]) == 2
    assert [s.confused_sources for s in seen] == ["auto", "auto", "confusion"]
    assert main(["audit", str(SAMPLE_TEXT), "--out", out, "--quiet", "--lower-bound-rate", "anchors"]) == 2
    assert [s.lower_bound_rate for s in seen] == ["auto", "auto", "auto", "anchors"]
    assert main(["audit", str(SAMPLE_TEXT), "--out", out, "--quiet", "--no-neighbour-reading"]) == 2
    assert [s.neighbour_min_purity for s in seen] == [0.8, 0.8, 0.8, 0.8, None]
