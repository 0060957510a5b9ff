"""`labelaudit export`: each queue format written, parsed back and checked against its documented structure."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from labelaudit.cli import main

from .conftest import make_image
from .report_factory import report_from_data

SUSPECTS = {"red/red_1.png": "blue", "green/green_2.png": "red", "blue/blue_0.png": "green"}


@pytest.fixture
def report(image_folder: Path, tmp_path: Path) -> Path:
    return report_from_data(tmp_path / "report", image_folder, SUSPECTS)


@pytest.fixture
def text_report(tmp_path: Path) -> Path:
    data = tmp_path / "texts"
    for label, words in (("sports", "goal match team"), ("cooking", "flour oven bake")):
        for i in range(3):
            (data / label).mkdir(parents=True, exist_ok=True)
            (data / label / f"t{i}.txt").write_text(f"{words} {i} " * 100, encoding="utf-8")
    return report_from_data(tmp_path / "text-report", data, {"sports/t1.txt": "cooking"})


def test_csv_queue_defaults_to_flagged_rows_most_suspect_first(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "queue.csv"
    assert main(["export", str(report), "--to", "csv", "--out", str(out)]) == 0
    queue = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert set(queue["sample_id"]) == set(SUSPECTS)
    assert queue["consensus_score"].astype(float).is_monotonic_increasing
    assert list(queue.columns[:6]) == ["rank", "sample_id", "path", "given_label", "suggested_label", "decision"]
    for column in ("consensus_score", "suggested_prob", "confident_score", "deft_score", "content_hash"):
        assert column in queue.columns
    assert (queue["decision"] == "").all()
    assert dict(zip(queue["sample_id"], queue["suggested_label"], strict=True)) == SUSPECTS
    assert all(Path(p).is_file() for p in queue["path"])
    assert not list(tmp_path.glob(".*.tmp"))


def test_selection_top_max_score_and_classes(report: Path, tmp_path: Path) -> None:
    def ids(*args: str) -> list[str]:
        out = tmp_path / "q.csv"
        assert main(["export", str(report), "--out", str(out), "--overwrite", *args]) == 0
        return pd.read_csv(out)["sample_id"].tolist()

    assert len(ids("--top", "5")) == 5  # beyond the 3 flagged ones
    assert ids("--top", "2") == ids()[:2]
    assert len(ids("--max-score", "0.5")) == 3
    assert len(ids("--max-score", "1.0")) == 18
    assert ids("--classes", "red,green") == [s for s in ids() if not s.startswith("blue/")]
    assert ids("--top", "18", "--classes", "blue") == [s for s in ids("--top", "18") if s.startswith("blue/")]


def test_unknown_class_or_missing_report_exits_2(report: Path, tmp_path: Path) -> None:
    assert main(["export", str(report), "--classes", "purple", "--out", str(tmp_path / "q.csv")]) == 2
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "q.csv")]) == 2
    assert main(["export", str(report), "--to", "pdf", "--out", str(tmp_path / "q.csv")]) == 2
    assert not (tmp_path / "q.csv").exists()


def test_batches_and_split_by_class(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "queues" / "q.csv"
    assert main(["export", str(report), "--top", "18", "--batch-size", "4", "--split-by-class", "--out", str(out)]) == 0
    files = sorted(p.name for p in out.parent.iterdir())
    assert files == [f"q-{c}-{n:03d}.csv" for c in ("blue", "green", "red") for n in (1, 2)]
    red = pd.concat([pd.read_csv(out.parent / f"q-red-{n:03d}.csv") for n in (1, 2)])
    assert len(pd.read_csv(out.parent / "q-red-001.csv")) == 4
    assert set(red["given_label"]) == {"red"} and len(red) == 6
    assert red["consensus_score"].is_monotonic_increasing

    assert main(["export", str(report), "--top", "7", "--batch-size", "3", "--out", str(tmp_path / "b.csv")]) == 0
    sizes = [len(pd.read_csv(tmp_path / f"b-{n:03d}.csv")) for n in (1, 2, 3)]
    assert sizes == [3, 3, 1]


def test_labelstudio_tasks_and_config_match(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "tasks.json"
    assert main(["export", str(report), "--to", "labelstudio", "--out", str(out)]) == 0
    tasks = json.loads(out.read_text())
    config = ET.parse(tmp_path / "tasks.config.xml").getroot()
    assert config.tag == "View"
    image = config.find("Image")
    assert image is not None and image.get("name") == "image" and image.get("value") == "$image"
    controls = {c.get("name"): c for c in config.iter("Choices")}
    assert set(controls) == {"label", "review"}
    assert all(c.get("toName") == "image" for c in controls.values())
    assert [c.get("value") for c in controls["label"]] == ["blue", "green", "red"]
    assert [c.get("value") for c in controls["review"]] == ["remove", "unsure"]

    assert len(tasks) == 3
    for task in tasks:
        assert set(task) == {"data", "predictions"}
        data = task["data"]
        assert data["image"].startswith("/data/local-files/?d=")
        assert Path("/" + unquote(data["image"].split("?d=", 1)[1])).is_file()
        assert data["suggested_label"] == SUSPECTS[data["sample_id"]]
        (prediction,) = task["predictions"]
        assert 0 <= prediction["score"] <= 1
        (result,) = prediction["result"]
        assert result["from_name"] in controls and result["to_name"] == image.get("name")
        assert result["type"] == "choices" and result["value"]["choices"] == [data["suggested_label"]]


def test_labelstudio_url_prefix_and_text_tasks(report: Path, text_report: Path, tmp_path: Path) -> None:
    out = tmp_path / "tasks.json"
    assert (
        main(["export", str(report), "--to", "labelstudio", "--url-prefix", "s3://bucket/ds/", "--out", str(out)]) == 0
    )
    urls = sorted(t["data"]["image"] for t in json.loads(out.read_text()))
    assert urls == sorted(f"s3://bucket/ds/{s}" for s in SUSPECTS)

    out = tmp_path / "text.json"
    assert main(["export", str(text_report), "--to", "labelstudio", "--out", str(out)]) == 0
    (task,) = json.loads(out.read_text())
    assert task["data"]["text"].startswith("goal match team 1") and len(task["data"]["text"]) > 1000  # not the excerpt
    assert task["predictions"][0]["result"][0]["to_name"] == "text"
    assert ET.parse(tmp_path / "text.config.xml").getroot().find("Text") is not None


def test_cvat_for_images_xml(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "cvat.xml"
    assert main(["export", str(report), "--to", "cvat", "--top", "4", "--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    labels = root.findall("meta/task/labels/label")
    assert [label.findtext("name") for label in labels] == ["blue", "green", "red"]
    assert {a.findtext("name") for a in labels[0].findall("attributes/attribute")} == {
        "suggested_label",
        "consensus_score",
        "rank",
        "sample_id",
    }
    images = root.findall("image")
    assert len(images) == 4 and [i.get("id") for i in images] == ["0", "1", "2", "3"]
    for image in images:
        assert (image.get("width"), image.get("height")) == ("16", "16")
        (tag,) = image.findall("tag")
        assert image.get("name", "").split("/")[0] == tag.get("label")
        attributes = {a.get("name"): a.text for a in tag.findall("attribute")}
        assert attributes["sample_id"] == image.get("name")
        assert attributes["suggested_label"] in {"red", "green", "blue"}
        float(attributes["consensus_score"] or "")
    spec = json.loads((tmp_path / "cvat.labels.json").read_text())
    assert [s["name"] for s in spec] == ["blue", "green", "red"] and spec[0]["type"] == "tag"


def test_cvat_and_fiftyone_refuse_text_reports(text_report: Path, tmp_path: Path) -> None:
    assert main(["export", str(text_report), "--to", "cvat", "--out", str(tmp_path / "c.xml")]) == 2
    assert main(["export", str(text_report), "--to", "fiftyone-json", "--out", str(tmp_path / "f.json")]) == 2


def test_fiftyone_json(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "fo.json"
    assert main(["export", str(report), "--to", "fiftyone-json", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["media_type"] == "image" and payload["classes"] == ["blue", "green", "red"]
    samples = payload["samples"]
    assert [s["labelaudit_rank"] for s in samples] == sorted(s["labelaudit_rank"] for s in samples)
    for s in samples:
        assert Path(s["filepath"]).is_absolute() and Path(s["filepath"]).is_file()
        assert s["ground_truth"] == {"_cls": "Classification", "label": s["labelaudit_sample_id"].split("/")[0]}
        assert s["labelaudit"]["_cls"] == "Classification" and s["labelaudit"]["label"] != s["ground_truth"]["label"]
        assert 0 <= s["labelaudit"]["confidence"] <= 1
        assert "suspect" in s["tags"]


def test_empty_queue_is_written_and_said(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clean = report_from_data(tmp_path / "clean", image_folder, {})
    out = tmp_path / "q.csv"
    assert main(["export", str(clean), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 0
    assert "No samples matched" in " ".join(capsys.readouterr().err.split())


def test_manifest_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    data = tmp_path / "ds"
    for i in range(4):
        make_image(data / "img" / f"{i}.png", (i * 40, 0, 0))
    pd.DataFrame({"path": [f"img/{i}.png" for i in range(4)], "label": ["a", "a", "b", "b"]}).to_csv(
        data / "m.csv", index=False
    )
    report = report_from_data(tmp_path / "r", data / "m.csv", {"img/1.png": "b"})
    out = tmp_path / "cvat.xml"
    assert main(["export", str(report), "--to", "cvat", "--out", str(out)]) == 0
    assert [i.get("name") for i in ET.parse(out).getroot().findall("image")] == ["img/1.png"]
