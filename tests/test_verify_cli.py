"""verify -> reviewed decisions in every format -> estimate -> gate --use verified -> audit --verified, as a user
runs them, on reports written by the real audit of the bundled sample data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from labelaudit import verification
from labelaudit.cli import main

from .conftest import ROOT, SAMPLE_IMAGES, SAMPLE_TEXT, TINY_MODEL

# sample_data/README.md: the deliberately wrong labels and their true classes
TEXT_GOLD = {"cooking/t12.txt": "sports", "finance/t25.txt": "space", "space/t26.txt": "cooking"}
IMAGE_GOLD = {
    "bird/train_00001.jpg": "truck",
    "cat/train_00004.jpg": "automobile",
    "horse/train_00008.jpg": "ship",
    "airplane/train_00019.jpg": "frog",
    "ship/train_00028.jpg": "deer",
}


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def text_report(tmp_path_factory: pytest.TempPathFactory, text_cache: Path) -> Path:
    out = tmp_path_factory.mktemp("verify") / "text"
    cache = text_cache
    assert main(["audit", str(SAMPLE_TEXT), "--out", str(out), "--cache-dir", str(cache), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def image_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "images"
    args = ["audit", str(SAMPLE_IMAGES), "--out", str(out), "--model", str(TINY_MODEL), "--pretrained", "random"]
    args += ["--cache-dir", str(tmp_path_factory.mktemp("cache")), "--workers", "0", "--quiet"]
    assert main(args) == 0
    return out


def _fresh(report: Path, tmp_path: Path) -> Path:
    """A copy of a module report, so each test draws its own sample."""
    import shutil

    copy = tmp_path / report.name
    shutil.copytree(report, copy)
    return copy


def _gold_decision(sample_id: str, gold: dict[str, str]) -> str:
    """The simulated reviewer: the gold label."""
    return f"relabel:{gold[sample_id]}" if sample_id in gold else "keep"


def _gold_queue(text_report: Path, tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    """A fresh copy of the text report, its 24-item verify queue (seed 1), and that queue decided as the
    simulated reviewer would (``_gold_decision``), for the test to alter and write back."""
    report = _fresh(text_report, tmp_path)
    queue = tmp_path / "queue.csv"
    assert main(["verify", str(report), "--n", "24", "--out", str(queue), "--seed", "1"]) == 0
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    frame["decision"] = [_gold_decision(s, TEXT_GOLD) for s in frame["sample_id"]]
    return report, queue, frame


def _truth(report: Path, gold: dict[str, str]) -> float:
    return len(gold) / len(pd.read_parquet(report / "report.parquet"))


def _estimate(report: Path, *files: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    args = ["estimate", str(report), "--json"]
    for f in files:
        args += ["--verified", str(f)]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------- verify


def test_verify_writes_a_stratified_queue_the_design_and_the_html_section(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _fresh(text_report, tmp_path)
    queue = tmp_path / "queue.csv"
    assert main(["verify", str(report), "--n", "20", "--out", str(queue), "--seed", "3"]) == 0
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    assert len(frame) == 20 and set(frame["decision"]) == {""}
    assert list(frame.columns[-3:]) == ["stratum", "stratum_size", "inclusion_probability"]
    design = json.loads((report / "verification" / "design.json").read_text())
    assert [i["sample_id"] for i in design["items"]] == frame["sample_id"].tolist()
    by_name = {s["name"]: s for s in design["strata"]}
    assert sum(s["rows"] for s in design["strata"]) == 48 and sum(s["drawn"] for s in design["strata"]) == 20
    for row in frame.to_dict("records"):  # every item carries its stratum's size and inclusion probability
        stratum = by_name[row["stratum"]]
        assert int(row["stratum_size"]) == stratum["rows"]
        assert float(row["inclusion_probability"]) == pytest.approx(stratum["drawn"] / stratum["rows"], abs=1e-6)
    assert by_name["flagged"]["inclusion_probability"] == 1.0  # the small suspect stratum is taken whole
    flagged = set(pd.read_parquet(report / "report.parquet").query("is_issue")["sample_id"])
    assert flagged <= set(frame["sample_id"])

    page = (report / "report.html").read_text(encoding="utf-8")
    blob = json.loads(re.search(r'id="labelaudit-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert [r["id"] for r in blob["verify"]] == frame["sample_id"].tolist()
    assert 'id="verify-grid"' in page and 'href="#verify"' in page

    # the same seed draws the same sample; an existing queue or design is not replaced without --overwrite
    before = queue.read_bytes()
    assert main(["verify", str(report), "--n", "20", "--out", str(queue), "--seed", "4"]) == 2
    assert "--overwrite" in capsys.readouterr().err and queue.read_bytes() == before
    other = tmp_path / "other.csv"
    assert main(["verify", str(report), "--n", "20", "--out", str(other), "--seed", "3"]) == 2  # the design exists
    assert not other.exists()
    assert main(["verify", str(report), "--n", "20", "--out", str(queue), "--seed", "3", "--overwrite"]) == 0
    assert queue.read_bytes() == before
    assert main(["verify", str(report), "--n", "20", "--out", str(queue), "--seed", "9", "--overwrite"]) == 0
    frames = sorted(p.name for p in (report / "verification").glob("frame-*.parquet"))
    assert frames == [json.loads((report / "verification" / "design.json").read_text())["frame_file"]]


def test_more_items_than_samples_enumerates_the_report_and_the_estimate_is_exact(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _fresh(text_report, tmp_path)
    queue = tmp_path / "queue.csv"
    assert main(["verify", str(report), "--n", "200", "--out", str(queue)]) == 0
    assert "only 48 samples" in " ".join(capsys.readouterr().err.split())
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    assert len(frame) == 48 and set(frame["inclusion_probability"].astype(float)) == {1.0}
    frame["decision"] = [_gold_decision(s, TEXT_GOLD) for s in frame["sample_id"]]
    frame.to_csv(queue, index=False)
    result = _estimate(report, queue, capsys=capsys)
    assert result["error_rate"] == {"estimate": 3 / 48, "lower": 3 / 48, "upper": 3 / 48}
    assert result["items_to_halve"] == 0


def test_removes_count_as_wrong_and_a_stratum_nobody_reviewed_is_named(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, queue, frame = _gold_queue(text_report, tmp_path)
    wrong = frame["sample_id"].isin(list(TEXT_GOLD))
    frame.loc[wrong, "decision"] = "remove"  # the reviewer drops them instead of relabelling them
    unreviewed = frame["stratum"] == "clean bulk"
    frame.loc[unreviewed, "decision"] = "unsure"  # and skips every item of one stratum
    frame.to_csv(queue, index=False)
    capsys.readouterr()
    result = _estimate(report, queue, capsys=capsys)
    assert result["wrong"] == int(wrong.sum()) > 0 and "remove" in result["remove_rule"]
    assert any("'clean bulk'" in w and "no reviewed item" in w for w in result["warnings"])
    cut = result["threshold"]
    scores = pd.read_parquet(report / "report.parquet")["consensus_score"]
    assert cut["rows_flagged"] == int((scores <= cut["max_consensus_score"]).sum())  # flag score <= cut


@pytest.mark.parametrize("trouble", ["another given label", "two files that disagree"])
def test_decisions_that_do_not_fit_the_report_refuse_the_estimate(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], trouble: str
) -> None:
    """A decision made on another version of a sample's label, or two decision files saying different things
    about one sample: no estimate (exit 2), nothing written, and the sample named."""
    report, queue, frame = _gold_queue(text_report, tmp_path)
    files = [queue]
    first = frame["sample_id"].iloc[0]
    if trouble == "another given label":
        given = frame.loc[0, "given_label"]
        frame.loc[0, "given_label"] = next(c for c in ("cooking", "sports", "space") if c != given)
    else:
        other = frame.copy()
        other.loc[0, "decision"] = "remove" if frame.loc[0, "decision"] == "keep" else "keep"
        files.append(tmp_path / "second.csv")
        other.to_csv(files[1], index=False)
    frame.to_csv(queue, index=False)
    capsys.readouterr()
    assert main(["estimate", str(report), *[a for f in files for a in ("--verified", str(f))]]) == 2
    assert first in capsys.readouterr().err
    assert not (report / "verification" / "estimate.json").exists()


def test_csv_decisions_estimate_and_gate_on_the_verified_number(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report, queue, frame = _gold_queue(text_report, tmp_path)
    right = frame.index[frame["decision"] == "keep"]
    frame.loc[right[0], "decision"] = "unsure"  # a skip
    frame.loc[right[1], "decision"] = ""  # never returned
    frame.to_csv(queue, index=False)
    capsys.readouterr()
    result = _estimate(report, queue, capsys=capsys)

    assert (result["drawn"], result["reviewed"], result["unsure"], result["not_returned"]) == (24, 22, 1, 1)
    wrong_drawn = sum(s in TEXT_GOLD for s in frame["sample_id"])
    assert result["wrong"] == wrong_drawn
    # the point is the stratified estimate: per stratum, its reviewed items stand for all of its rows
    expected = sum(s["rows"] * s["wrong"] / s["reviewed"] for s in result["strata"] if s["reviewed"]) / 48
    rate = result["error_rate"]
    assert rate["estimate"] == pytest.approx(expected)
    assert rate["lower"] <= rate["estimate"] <= rate["upper"] and rate["lower"] <= _truth(report, TEXT_GOLD)
    skips = result["skips"]
    assert skips["if_all_right"]["estimate"] <= rate["estimate"] < skips["if_all_wrong"]["estimate"]  # 2 skipped
    assert "missing at random within their stratum" in skips["rule"]
    assert result["flagged"]["precision"]["lower"] <= result["flagged"]["precision"]["estimate"]
    assert (report / "verification" / "estimate.json").is_file()
    verified = pd.read_csv(report / "verification" / "verified.csv", dtype=str, keep_default_na=False)
    assert len(verified) == 22 and set(verified["verdict"]) == {"right", "wrong"}
    wrong = verified[verified["verdict"] == "wrong"]
    assert dict(zip(wrong["sample_id"], wrong["corrected_label"], strict=True)) == {
        s: TEXT_GOLD[s] for s in frame["sample_id"] if s in TEXT_GOLD
    }

    # the terminal summary names the interval, the skips rule and the flag's precision
    assert main(["estimate", str(report), "--verified", str(queue)]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "95% interval" in said and "missing at random" in said and "flag precision" in said

    # gate: the upper end by default, the point on request; says which number it used
    upper, point = rate["upper"], rate["estimate"]
    between = (upper + point) / 2
    args = ["gate", str(report), "--max-error-rate", f"{between:.6f}", "--use", "verified"]
    assert main(args) == 1
    assert "upper end of the 95% interval" in capsys.readouterr().err
    summary_file = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    assert main([*args, "--on", "point", "--json"]) == 0
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    gated = json.loads(capsys.readouterr().out)
    assert gated["error_rate_source"] == "verified (point estimate)"
    step = " ".join(summary_file.read_text().split())
    assert "`--max-error-rate` judged the point estimate." in step and "items reviewed" in step
    assert gated["checks"][0]["value"] == pytest.approx(point) and gated["verified"]["upper"] == pytest.approx(upper)
    assert main(["gate", str(report), "--max-error-rate", "0.5", "--use", "auto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["error_rate_source"].startswith("verified")
    assert main(["gate", str(report), "--max-error-rate", "0.5", "--json"]) == 0  # the default stays the model's
    assert json.loads(capsys.readouterr().out)["error_rate_source"] == "model"


def test_label_studio_json_and_json_min_exports(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _fresh(text_report, tmp_path)
    tasks_file = tmp_path / "tasks.json"
    assert main(["verify", str(report), "--n", "16", "--to", "labelstudio", "--out", str(tasks_file)]) == 0
    assert (tmp_path / "tasks.config.xml").is_file()
    tasks = json.loads(tasks_file.read_text())
    assert len(tasks) == 16
    full, minimal = [], []
    for number, task in enumerate(tasks):
        data = task["data"]
        label = TEXT_GOLD.get(data["sample_id"], data["given_label"])
        choice = "review" if number == 0 else "label"
        value = "unsure" if number == 0 else label
        full.append(
            {
                "id": number,
                "data": data,
                "annotations": [{"result": [{"from_name": choice, "type": "choices", "value": {"choices": [value]}}]}],
            }
        )
        minimal.append({**data, choice: value})
    for name, payload in (("full.json", full), ("min.json", minimal)):
        (tmp_path / name).write_text(json.dumps(payload))
        result = _estimate(report, tmp_path / name, capsys=capsys)
        assert (result["reviewed"], result["unsure"]) == (15, 1)
        assert result["wrong"] == sum(t["data"]["sample_id"] in TEXT_GOLD for t in tasks[1:])


def test_report_html_download_counts_only_the_drawn_items(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page's decisions.csv (its columns, as the page writes them) holds the Verify marks and whatever
    else the reviewer decided; only the drawn items count."""
    report = _fresh(text_report, tmp_path)
    assert main(["verify", str(report), "--n", "12", "--out", str(tmp_path / "q.csv")]) == 0
    page = (report / "report.html").read_text(encoding="utf-8")
    blob = json.loads(re.search(r'id="labelaudit-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    drawn = {r["id"] for r in blob["verify"]}
    extra = next(r for r in blob["rows"] if r["id"] not in drawn)
    lines = []
    for r in [*blob["verify"], extra]:
        decision = _gold_decision(r["id"], TEXT_GOLD)
        lines.append(
            {
                "rank": r["rank"],
                "sample_id": r["id"],
                "path": r["path"],
                "given_label": r["given"],
                "suggested_label": r["sugg"],
                "decision": decision,
                "text": r["text"],
                "content_hash": r["hash"],
            }
        )
    download = tmp_path / "decisions.csv"
    pd.DataFrame(lines).reindex(columns=blob["decisionColumns"]).to_csv(download, index=False)
    result = _estimate(report, download, capsys=capsys)
    assert result["reviewed"] == 12 and result["decisions_outside_sample"] == 1


def test_cvat_and_fiftyone_exports_as_the_reviewers_marks(
    image_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _fresh(image_report, tmp_path)
    xml = tmp_path / "queue.xml"
    assert main(["verify", str(report), "--n", "30", "--to", "cvat", "--out", str(xml), "--seed", "2"]) == 0
    root = ET.parse(xml).getroot()
    images = root.findall("image")
    assert len(images) == 30
    for number, image in enumerate(images):
        (tag,) = image.findall("tag")
        name = image.get("name", "")
        if name in IMAGE_GOLD:  # the reviewer fixes the tag; CVAT resets the attributes of a changed tag
            tag.set("label", IMAGE_GOLD[name])
            for attribute in tag.findall("attribute"):
                tag.remove(attribute)
        elif number == 0:
            image.remove(tag)  # no tag: skipped
    xml.write_text(ET.tostring(root, encoding="unicode"))
    result = _estimate(report, xml, capsys=capsys)
    drawn_wrong = sum(i.get("name") in IMAGE_GOLD for i in images)
    assert result["wrong"] == drawn_wrong and result["reviewed"] == 30 - (images[0].get("name") not in IMAGE_GOLD)

    fo = tmp_path / "queue.json"
    assert main(["verify", str(report), "--n", "30", "--to", "fiftyone-json", "--out", str(fo), "--overwrite"]) == 0
    payload = json.loads(fo.read_text())
    for number, sample in enumerate(payload["samples"]):
        sid = sample["labelaudit_sample_id"]
        if sid in IMAGE_GOLD:
            sample["ground_truth"]["label"] = IMAGE_GOLD[sid]
        elif number == 1:
            sample["tags"].append("unsure")
    fo.write_text(json.dumps(payload))
    result = _estimate(report, fo, capsys=capsys)
    assert result["wrong"] == sum(s["labelaudit_sample_id"] in IMAGE_GOLD for s in payload["samples"])
    assert result["unsure"] == (payload["samples"][1]["labelaudit_sample_id"] not in IMAGE_GOLD)


# ---------------------------------------------------------------- refusals


def test_usage_errors_exit_2_and_write_nothing(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _fresh(text_report, tmp_path)
    queue = tmp_path / "q.csv"
    assert main(["estimate", str(report), "--verified", str(queue)]) == 2  # no sample drawn yet
    assert "labelaudit verify" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nowhere"), "--out", str(queue)]) == 2
    assert main(["verify", str(report), "--to", "cvat", "--out", str(tmp_path / "q.xml")]) == 2  # text report
    assert main(["gate", str(report), "--max-error-rate", "0.1", "--use", "verified"]) == 2  # nothing verified
    assert "no verified estimate" in capsys.readouterr().err
    assert not (report / "verification").exists() and not queue.exists()

    assert main(["verify", str(report), "--n", "10", "--out", str(queue)]) == 0
    assert main(["estimate", str(report)]) == 2  # no decisions given
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    frame["decision"] = "keep"
    frame.loc[0, "content_hash"] = "0" * 32  # the file changed since the draw
    frame.loc[1, "decision"] = "delete"  # not a decision
    frame.to_csv(queue, index=False)
    capsys.readouterr()
    assert main(["estimate", str(report), "--verified", str(queue)]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "content changed" in said and "unknown decision" in said
    assert not (report / "verification" / "estimate.json").exists()


def test_a_verified_estimate_of_another_report_version_is_refused_by_the_gate(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _fresh(text_report, tmp_path)
    queue = tmp_path / "q.csv"
    assert main(["verify", str(report), "--n", "10", "--out", str(queue)]) == 0
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    frame["decision"] = "keep"
    frame.to_csv(queue, index=False)
    assert main(["estimate", str(report), "--verified", str(queue), "--json"]) == 0
    kept = tmp_path / "kept-estimate.json"  # as a CI job keeps one in the repository
    kept.write_bytes((report / "verification" / "estimate.json").read_bytes())
    (report / "verification" / "estimate.json").unlink()
    gate = ["gate", str(report), "--max-error-rate", "0.5"]
    assert main([*gate, "--use", "verified", "--estimate", str(kept)]) == 0
    assert main([*gate, "--estimate", str(kept)]) == 2  # --estimate without --use verified/auto
    assert main([*gate, "--use", "verified", "--estimate", str(tmp_path / "none.json")]) == 2
    samples = pd.read_parquet(report / "report.parquet")
    samples.loc[0, "given_label"] = "sports" if samples.loc[0, "given_label"] != "sports" else "cooking"
    samples.to_parquet(report / "report.parquet", index=False)  # as if re-audited after a relabel
    capsys.readouterr()
    assert main([*gate, "--use", "verified", "--estimate", str(kept)]) == 2
    assert "another version of this data" in capsys.readouterr().err
    assert main([*gate, "--use", "auto", "--estimate", str(kept), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error_rate_source"] == "model" and "instead" in captured.err
    assert main(["estimate", str(report), "--verified", str(queue)]) == 2  # the design is stale too


def test_verify_estimate_and_gate_do_not_import_torch(text_report: Path, tmp_path: Path) -> None:
    report = _fresh(text_report, tmp_path)
    script = f"""
import sys
import pandas as pd
from labelaudit.cli import main
report, queue = {str(report)!r}, {str(tmp_path / "q.csv")!r}
assert main(["verify", report, "--n", "10", "--out", queue]) == 0
frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
frame["decision"] = "keep"
frame.to_csv(queue, index=False)
assert main(["estimate", report, "--verified", queue, "--json"]) == 0
assert main(["gate", report, "--max-error-rate", "0.9", "--use", "verified"]) == 0
heavy = [m for m in ("torch", "sentence_transformers", "open_clip", "cleanlab") if m in sys.modules]
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ---------------------------------------------------------------- reuse by the next audit


def test_verified_states_match_by_id_and_content() -> None:
    verified = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c", "d"],
            "content_hash": ["h1", "h2", "h3", "h4"],
            "given_label": ["x", "x", "x", "x"],
            "verdict": ["right", "wrong", "wrong", "wrong"],
            "corrected_label": [None, "y", "y", None],
        }
    )
    ids = ["a", "b", "c", "d", "e"]
    hashes = ["h1", "h2", "CHANGED", "h4", "h5"]
    labels = ["x", "x", "x", "z", "x"]
    states, corrected = verification.verified_states(ids, hashes, labels, verified)
    # a right; b wrong -> y; c changed content: unknown; d relabelled to z though no label was given: unknown
    assert states.tolist() == [0, 1, -1, -1, -1] and corrected.tolist() == [None, "y", None, None, None]
    states, _ = verification.verified_states(["b"], ["h2"], ["y"], verified)  # since relabelled as reviewed
    assert states.tolist() == [0]


def test_the_next_audit_never_flags_reviewed_right_samples_and_flags_reviewed_wrong_ones(
    text_report: Path, text_cache: Path, tmp_path: Path
) -> None:
    samples = pd.read_parquet(text_report / "report.parquet")
    flagged = samples[samples["is_issue"]]
    clean_wrong = samples[~samples["is_issue"]].iloc[-1]  # the least suspect sample, said to be wrong
    verified = pd.DataFrame(
        {
            "sample_id": [flagged.iloc[0]["sample_id"], clean_wrong["sample_id"]],
            "content_hash": [flagged.iloc[0]["content_hash"], clean_wrong["content_hash"]],
            "given_label": [flagged.iloc[0]["given_label"], clean_wrong["given_label"]],
            "verdict": ["right", "wrong"],
            "corrected_label": [None, "space" if clean_wrong["given_label"] != "space" else "sports"],
        }
    )
    verified_csv = tmp_path / "verified.csv"
    verified.to_csv(verified_csv, index=False)
    out = tmp_path / "again"
    args = ["audit", str(SAMPLE_TEXT), "--out", str(out), "--cache-dir", str(text_cache), "--quiet"]  # scores cached
    assert main([*args, "--verified", str(verified_csv)]) == 0
    again = pd.read_parquet(out / "report.parquet").set_index("sample_id")
    first, second = verified["sample_id"]
    assert not again.loc[first, "is_issue"] and again.loc[first, "verified"] == 0
    assert again.loc[second, "is_issue"] and again.loc[second, "verified"] == 1
    assert again.loc[second, "suggested_label"] == verified.loc[1, "corrected_label"]
    assert (again.drop(index=[first, second])["verified"] == -1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verified"] == {"file": str(verified_csv), "matched": 2, "right": 1, "wrong": 1}
    assert summary["n_flagged"] == int(again["is_issue"].sum())
    # The rate is the calibrated estimate with the reviewed rows as anchors: known right count 0, known wrong 1.
    assert again.loc[first, "error_probability"] == 0.0 and again.loc[second, "error_probability"] == 1.0
    assert summary["estimated_error_rate"] == pytest.approx(again["error_probability"].mean(), abs=1e-6)
    bad = tmp_path / "bad.csv"
    verified.drop(columns=["content_hash"]).to_csv(bad, index=False)
    assert main([*args, "--overwrite", "--verified", str(bad)]) == 2  # refused before any embedding


def test_gold_reviewer_estimates_cover_the_sample_data_truth(
    text_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five seeds of 20 items on the real text report: the interval holds the true 3/48 every time."""
    truth = _truth(text_report, TEXT_GOLD)
    held = 0
    for seed in range(5):
        report = _fresh(text_report, tmp_path / str(seed))
        queue = tmp_path / f"q{seed}.csv"
        assert main(["verify", str(report), "--n", "20", "--out", str(queue), "--seed", str(seed)]) == 0
        frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
        frame["decision"] = [_gold_decision(s, TEXT_GOLD) for s in frame["sample_id"]]
        frame.to_csv(queue, index=False)
        rate = _estimate(report, queue, capsys=capsys)["error_rate"]
        held += rate["lower"] <= truth <= rate["upper"]
    assert held == 5


# ---------------------------------------------------------------- report.html's Verify section, in a browser

from .test_html import _open, _wait_for_file, browser, downloads, driver  # noqa: E402, F401, I001


@browser
def test_browser_verify_section_marks_download_and_estimate(
    driver,  # noqa: F811 (the fixtures imported above)
    downloads: Path,  # noqa: F811
    text_report: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report = _fresh(text_report, tmp_path)
    assert main(["verify", str(report), "--n", "10", "--out", str(tmp_path / "q.csv"), "--seed", "5"]) == 0
    _open(driver, report / "report.html")
    cards = driver.find_elements(By.CSS_SELECTOR, "#verify-grid .card")
    assert len(cards) == 10
    names = [b.text for b in cards[0].find_elements(By.CSS_SELECTOR, ".decide button")]
    assert names == ["right", "wrong →", "no class fits", "unsure"]

    def click(element) -> None:  # type: ignore[no-untyped-def]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)

    expected = {}
    for number, card in enumerate(cards):
        sample_id = card.get_attribute("data-id")
        if sample_id in TEXT_GOLD:
            Select(card.find_element(By.CSS_SELECTOR, ".decide select")).select_by_value(TEXT_GOLD[sample_id])
            click(card.find_element(By.CSS_SELECTOR, "button[data-action=relabel]"))
            expected[sample_id] = f"relabel:{TEXT_GOLD[sample_id]}"
        elif number == 0:
            click(card.find_element(By.CSS_SELECTOR, "button[data-action=unsure]"))
            expected[sample_id] = "unsure"
        else:
            click(card.find_element(By.CSS_SELECTOR, "button[data-action=keep]"))
            expected[sample_id] = "keep"
    assert driver.find_element(By.ID, "verify-decided").text == "10"
    target = downloads / "decisions.csv"
    target.unlink(missing_ok=True)
    click(driver.find_element(By.ID, "download"))
    _wait_for_file(target)
    frame = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert dict(zip(frame["sample_id"], frame["decision"], strict=True)) == expected
    result = _estimate(report, target, capsys=capsys)
    assert result["reviewed"] == 10 - list(expected.values()).count("unsure")
    assert result["wrong"] == sum(s in TEXT_GOLD for s in expected)
