"""Multi-label audits end to end, as a user runs them: a tagged manifest through `audit`, then gate, export and
apply/undo on its report. One small text manifest (48 rows, three topics, MiniLM) audited once per module."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelaudit.config import DataSpec
from labelaudit.discover import discover
from labelaudit.errors import DataError
from labelaudit.multilabel.tags import parse_tag_column

from .conftest import ROOT

SAMPLE_TAGS = ROOT / "sample_data" / "tags.csv"  # 48 rows, three topics; three planted mistakes
PLANTED = "s03"  # given "food" although its text is only about the weather (s07: a spurious tag, s11: a missing one)


def tagged_manifest(folder: Path) -> Path:
    """A copy of sample_data/tags.csv in ``folder`` (tests that apply decisions rewrite it)."""
    path = folder / "manifest.csv"
    shutil.copyfile(SAMPLE_TAGS, path)
    return path


@pytest.fixture(scope="module")
def tag_report(tmp_path_factory: pytest.TempPathFactory, minilm_encoder) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tagged")
    manifest = tagged_manifest(folder)
    return manifest, audit_tagged(manifest, folder / "report", minilm_encoder)


def audit_tagged(manifest: Path, out: Path, encoder, **options) -> Path:
    """Audit a tagged manifest with the small settings these tests use (3 DeFT epochs, 2 folds, no cache)."""
    from labelaudit import audit

    audit(
        manifest,
        out=out,
        encoder=encoder,
        label_sep="|",
        id_col="id",
        cache_dir=None,
        deft_epochs=3,
        deft_folds=2,
        **options,
    )
    return out


def test_audit_reports_given_suggested_missing_and_spurious_tags_per_sample(tag_report) -> None:
    _, out = tag_report
    report = pd.read_parquet(out / "report.parquet")
    top = report.set_index("sample_id").loc[PLANTED]
    assert top["rank"] <= 3 and bool(top["is_issue"])
    assert set(report.head(2)["sample_id"]) == {PLANTED, "s11"}  # two of the planted errors come first
    assert list(top["given_tags"]) == ["food"]
    assert list(top["missing_tags"]) == ["weather"] and "weather" in list(top["suggested_tags"])
    assert list(report.set_index("sample_id").loc["s11", "missing_tags"]) == ["food"]
    assert report["rank"].tolist() == list(range(1, len(report) + 1))
    assert report["quality"].is_monotonic_increasing
    # The CSV joins each tag set with the separator the manifest used, so it reads back as the same sets.
    csv = pd.read_csv(out / "report.csv", dtype=str, keep_default_na=False)
    back = parse_tag_column(csv["given_tags"].tolist(), sep="|", classes=["food", "sports", "weather"])
    assert back.tag_lists() == [list(t) for t in report["given_tags"]]


def test_classes_table_has_per_class_missing_and_spurious_rates(tag_report) -> None:
    _, out = tag_report
    classes = pd.read_parquet(out / "classes.parquet").set_index("class")
    assert set(classes.index) == {"food", "sports", "weather"}
    assert classes.loc["weather", "flagged_missing"] >= 1 and classes.loc["food", "flagged_missing"] >= 1
    absent = 48 - classes.loc["weather", "count"]
    assert classes.loc["weather", "missing_rate"] == pytest.approx(classes.loc["weather", "flagged_missing"] / absent)
    given = classes.loc["food", "count"]
    assert classes.loc["food", "spurious_rate"] == pytest.approx(classes.loc["food", "flagged_spurious"] / given)


def test_summary_names_the_pair_and_the_sample_error_rate(tag_report) -> None:
    from labelaudit.summary import Summary

    _, out = tag_report
    payload = json.loads((out / "summary.json").read_text())
    tags = payload["multilabel"]
    assert "(sample, tag) pairs" in tags["pair_error_rate_definition"]
    assert "samples" in tags["sample_error_rate_definition"]
    assert 0 < tags["estimated_pair_error_rate"] < tags["estimated_sample_error_rate"] < 0.5
    assert payload["estimated_error_rate"] == tags["estimated_sample_error_rate"]
    assert payload["data_spec"]["label_sep"] == "|" and payload["data_spec"]["multilabel"] is True
    summary = Summary.from_json(payload)
    assert summary.multilabel is not None and summary.multilabel.n_flagged_missing >= 1
    assert summary.to_json() == payload  # the typed summary round-trips


def test_gate_judges_the_sample_error_rate_of_a_tag_report(tag_report) -> None:
    from labelaudit.gate import check_gate

    _, out = tag_report
    rate = json.loads((out / "summary.json").read_text())["multilabel"]["estimated_sample_error_rate"]
    assert not check_gate(out, max_error_rate=rate / 2).passed
    result = check_gate(out, max_error_rate=min(1.0, rate * 2), max_class_error_rate=0.9, baseline_dir=out)
    assert result.passed and result.n_newly_flagged == 0


def test_labelstudio_export_offers_multiple_choices_preselected_with_the_suggested_tags(tag_report, tmp_path) -> None:
    from labelaudit.export import export

    _, out = tag_report
    target = tmp_path / "queue.json"
    result = export(out, "labelstudio", target, top=3)
    config = ET.fromstring((tmp_path / "queue.config.xml").read_text())
    label = next(c for c in config.iter("Choices") if c.get("name") == "label")
    assert label.get("choice") == "multiple"
    tasks = json.loads(target.read_text())
    first = next(t for t in tasks if t["data"]["sample_id"] == PLANTED)
    assert first["data"]["given_tags"] == ["food"]
    assert first["predictions"][0]["result"][0]["value"]["choices"] == first["data"]["suggested_tags"]
    assert result.n_rows == 3


def test_csv_export_and_apply_accept_rewrite_the_label_column_and_undo_restores(tag_report, tmp_path) -> None:
    from labelaudit.apply import execute, plan_apply, undo
    from labelaudit.export import export

    manifest, out = tag_report
    queue = tmp_path / "queue.csv"
    export(out, "csv", queue)
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    assert {"given_tags", "suggested_tags", "add_tags", "remove_tags", "decision"} <= set(frame.columns)
    row = frame.index[frame["sample_id"] == PLANTED][0]
    assert frame.loc[row, "add_tags"] == "weather"
    frame.loc[row, "remove_tags"] = "food"  # the reviewer also removes the tag labelaudit left
    frame.loc[row, "decision"] = "accept"
    frame.to_csv(queue, index=False)
    corrected_path = tmp_path / "corrected.csv"
    plan, corrected = plan_apply(queue, report=out, out=corrected_path)
    payload = execute(plan, corrected, tmp_path / "journal.json")
    written = pd.read_csv(corrected_path, dtype=str, keep_default_na=False).set_index("id")
    original = pd.read_csv(manifest, dtype=str, keep_default_na=False).set_index("id")
    assert written.loc[PLANTED, "tags"] == "weather"
    others = written.index != PLANTED
    assert written.loc[others, "tags"].equals(original.loc[others, "tags"])  # nothing else changed
    assert payload["counts"]["accept"] == 1
    undo(tmp_path / "journal.json")
    assert not corrected_path.exists() and manifest.is_file()


def test_labelstudio_tag_answers_apply_to_a_parquet_list_column(tmp_path) -> None:
    from labelaudit.apply import plan_apply

    manifest = tmp_path / "m.parquet"
    pd.DataFrame({"text": ["rain", "pizza", "goal"], "label": [["weather"], ["food"], ["sports", "food"]]}).to_parquet(
        manifest
    )
    tasks = [
        {
            "id": 1,
            "data": {"sample_id": "2", "given_label": "food|sports", "given_tags": ["food", "sports"]},
            "annotations": [{"id": 9, "result": [{"from_name": "label", "value": {"choices": ["sports"]}}]}],
        }
    ]
    decisions = tmp_path / "ls.json"
    decisions.write_text(json.dumps(tasks))
    spec = DataSpec(multilabel=True)
    plan, corrected = plan_apply(decisions, manifest, modality="text", out=tmp_path / "fixed.parquet", label_col=None)
    assert plan.counts["retag"] == 1 and spec.wants_tags
    assert corrected is not None and list(corrected.loc[2, "label"]) == ["sports"]
    assert list(corrected.loc[0, "label"]) == ["weather"]


def test_a_parquet_list_column_and_one_hot_columns_are_read_as_tag_sets(tmp_path) -> None:
    pd.DataFrame({"text": ["a", "b", "c"], "label": [["x"], ["y", "x"], ["y"]]}).to_parquet(tmp_path / "l.parquet")
    listed = discover(tmp_path / "l.parquet")
    assert listed.is_multilabel and listed.classes == ["x", "y"]
    assert listed.tags is not None and listed.tags.tolist() == [[True, False], [True, True], [False, True]]
    pd.DataFrame({"text": ["a", "b"], "cat": ["1", "0"], "dog": ["yes", "no"]}).to_csv(tmp_path / "o.csv", index=False)
    with pytest.raises(DataError, match="no tags"):
        discover(tmp_path / "o.csv", label_cols="cat,dog")
    onehot = discover(tmp_path / "o.csv", label_cols="cat,dog", allow_empty_tags=True)
    assert onehot.classes == ["cat", "dog"] and onehot.tags is not None
    assert onehot.tags.tolist() == [[True, True], [False, False]]


def test_a_row_whose_file_cannot_be_read_is_skipped_with_its_tags(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("rain today")
    (tmp_path / "c.txt").write_text("pizza tonight")
    pd.DataFrame({"path": ["a.txt", "missing.txt", "c.txt"], "label": ["w", "w;f", "f"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    dataset = discover(tmp_path / "m.csv", label_sep=";")
    assert dataset.samples["sample_id"].tolist() == ["a.txt", "c.txt"]
    assert dataset.tags is not None and dataset.tags.tolist() == [[False, True], [True, False]]
    assert [s.path for s in dataset.skipped] == ["missing.txt"]


def test_a_folder_with_multi_label_options_is_a_clear_error(image_folder: Path, capsys) -> None:
    from labelaudit.cli import main

    with pytest.raises(DataError, match="needs a CSV or Parquet manifest"):
        discover(image_folder, label_sep="|")
    assert main(["audit", str(image_folder), "--label-sep", "|", "--no-cache"]) == 2
    assert "multi-label audit needs a CSV or Parquet manifest" in capsys.readouterr().err


def test_a_single_label_summary_keeps_its_data_spec_keys() -> None:
    # summary.json of a single-label audit must not change (benchmarks/identity.py compares its bytes).
    assert set(DataSpec().to_json()) == {
        "modality",
        "label_col",
        "path_col",
        "text_col",
        "id_col",
        "classes_file",
        "allow_outside_root",
    }
    spec = DataSpec(label_cols=("a", "b"))
    assert DataSpec.from_json(spec.to_json()) == spec and np.array_equal(spec.label_cols, ("a", "b"))


def test_view_renders_a_tag_set_page_with_missing_and_spurious_tags_and_class_rates(tag_report, tmp_path) -> None:
    import shutil

    from labelaudit.cli import main

    _, out = tag_report
    folder = tmp_path / "report"
    shutil.copytree(out, folder)
    # A single-label page left by an older labelaudit is not kept: it showed joined tag sets as classes.
    (folder / "report.html").write_text("<html>single-label page</html>")
    assert main(["view", str(folder), "--no-open"]) == 0
    page = (folder / "report.html").read_text()
    assert "single-label page" not in page and "labelaudit tag-set report" in page
    assert "Most-confused class pairs" not in page and "labelaudit-data" not in page  # no single-label script
    summary = json.loads((folder / "summary.json").read_text())["multilabel"]
    assert f"{summary['estimated_sample_error_rate']:.2%}" in page and "estimated sample error rate" in page
    assert f"{summary['estimated_pair_error_rate']:.2%}" in page and "estimated pair error rate" in page
    row = page[page.index(f'<tr data-sample="{PLANTED}">') :]
    row = row[: row.index("</tr>")]
    assert '<span class="tag missing">weather</span>' in row  # the planted sample's missing tag
    classes = pd.read_parquet(folder / "classes.parquet").set_index("class")
    weather = page[page.index('<tr data-class="weather">') :]
    assert f"{classes.loc['weather', 'missing_rate']:.1%}" in weather[: weather.index("</tr>")]


def test_audit_writes_the_tag_set_page_that_view_renders(tag_report, tmp_path) -> None:
    import shutil

    from labelaudit.cli import main

    _, out = tag_report
    written = (out / "report.html").read_text()
    assert "labelaudit tag-set report" in written and "labelaudit-data" not in written
    folder = tmp_path / "again"
    shutil.copytree(out, folder)
    assert main(["view", str(folder), "--no-open", "--rerender"]) == 0
    assert (folder / "report.html").read_text() == written  # the same page, from the tables on disk


def _tag_queue(folder: Path) -> Path:
    """A reviewed CSV tag queue (as `export --to csv` writes it): remove 'weather' from sample b."""
    queue = folder / "queue.csv"
    pd.DataFrame(
        {"sample_id": ["b"], "given_tags": ["food|weather"], "add_tags": [""], "remove_tags": ["weather"]}
        | {"decision": ["accept"]}
    ).to_csv(queue, index=False)
    return queue


def test_a_tag_set_changed_since_the_audit_is_refused(tmp_path, capsys) -> None:
    from labelaudit.cli import main

    queue = _tag_queue(tmp_path)  # made when b was tagged food|weather
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["rain", "pizza"], "tags": ["weather", "weather|food"]}).to_csv(
        manifest, index=False
    )
    args = ["apply", str(queue), "--data", str(manifest), "--id-col", "id", "--modality", "text", "--label-sep", "|"]
    assert main([*args, "--out", str(tmp_path / "same.csv")]) == 0  # the same set in another order is the same
    pd.DataFrame({"id": ["a", "b"], "text": ["rain", "pizza"], "tags": ["weather", "food"]}).to_csv(
        manifest, index=False
    )
    assert main([*args, "--out", str(tmp_path / "fixed.csv")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "(b): was tagged 'food|weather' at the audit but is 'food' in the manifest" in err
    assert not (tmp_path / "fixed.csv").exists()


def test_apply_without_report_reads_a_tag_manifest_with_label_sep_or_label_cols(tmp_path, capsys) -> None:
    from labelaudit.cli import main

    queue = _tag_queue(tmp_path)
    manifest = tmp_path / "m.csv"
    pd.DataFrame(
        {"id": ["a", "b", "c"], "text": ["rain", "pizza", "goal"], "tags": ["weather", "food|weather", "sports"]}
    ).to_csv(manifest, index=False)
    common = ["apply", str(queue), "--data", str(manifest), "--id-col", "id", "--modality", "text"]
    assert main([*common, "--label-sep", "|", "--out", str(tmp_path / "fixed.csv")]) == 0
    fixed = pd.read_csv(tmp_path / "fixed.csv", dtype=str, keep_default_na=False)
    assert fixed["tags"].tolist() == ["weather", "food", "sports"]

    onehot = tmp_path / "o.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["rain", "pizza"], "food": [0, 1], "weather": [1, 1]}).to_csv(
        onehot, index=False
    )
    args = ["apply", str(queue), "--data", str(onehot), "--id-col", "id", "--modality", "text"]
    assert main([*args, "--label-cols", "food,weather", "--out", str(tmp_path / "fixed_o.csv")]) == 0
    written = pd.read_csv(tmp_path / "fixed_o.csv").set_index("id")
    assert written.loc["b", "food"] == 1 and written.loc["b", "weather"] == 0 and written.loc["a", "weather"] == 1


def test_apply_of_a_tag_queue_without_the_separator_names_label_sep_and_report(tmp_path, capsys) -> None:
    from labelaudit.cli import main

    manifest = tmp_path / "m.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["rain", "pizza"], "tags": ["weather", "food|weather"]}).to_csv(
        manifest, index=False
    )
    code = main(["apply", str(_tag_queue(tmp_path)), "--data", str(manifest), "--id-col", "id", "--modality", "text"])
    err = capsys.readouterr().err
    assert code == 2 and "--label-sep" in err and "--report" in err and "Traceback" not in err
    assert not (tmp_path / "m.corrected.csv").exists()


def test_gate_names_the_sample_error_rate_in_lines_json_and_step_summary(
    tag_report, tmp_path, capsys, monkeypatch
) -> None:
    from labelaudit.cli import main

    _, out = tag_report
    summary_file = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    code = main(["gate", str(out), "--max-error-rate", "0.0", "--baseline", str(out), "--json"])
    captured = capsys.readouterr()
    named = "sample error rate (share of samples with a wrong tag)"
    assert code == 1
    assert f"estimated {named}" in captured.err and "label-error rate" not in captured.err
    payload = json.loads(captured.out)
    assert payload["error_rate_name"] == named
    assert {c["name"]: c["description"] for c in payload["checks"]}["max-error-rate"] == f"estimated {named}"
    markdown = summary_file.read_text()
    assert f"estimated {named}" in markdown and "label-error rate" not in markdown


def test_audit_fail_above_names_the_sample_error_rate_of_a_tag_set(tmp_path, capsys) -> None:
    from labelaudit.cli import main

    manifest = tagged_manifest(tmp_path)
    args = ["audit", str(manifest), "--label-sep", "|", "--id-col", "id", "--out", str(tmp_path / "report")]
    code = main([*args, "--no-cache", "--quiet", "--deft-epochs", "3", "--deft-folds", "2", "--fail-above", "0.0"])
    assert code == 1  # the planted errors put the sample error rate above 0
    message = " ".join(capsys.readouterr().err.split())
    assert "gate failed: estimated sample error rate (share of samples with a wrong tag)" in message
