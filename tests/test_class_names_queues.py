"""With a --classes file, the CVAT and FiftyOne queues show class names, and `apply` reads the reviewed
files back as the dataset's keys; a relabel:<name> decision is read as its class's key, an ambiguous one
refused (#17)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from labelaudit.cli import main
from labelaudit.config import DataSpec

from .conftest import make_image
from .report_factory import report_from_data

KEYS = {"RED": 0, "GREEN": 1, "BLUE": 2}


def _named_report(tmp_path: Path, names: str = "0\tRED\n1\tGREEN\n2\tBLUE\n") -> tuple[Path, Path]:
    data = tmp_path / "ds"
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    for i in range(6):
        make_image(data / "img" / f"{i}.png", colours[i % 3])
    pd.DataFrame({"path": [f"img/{i}.png" for i in range(6)], "label": [i % 3 for i in range(6)]}).to_csv(
        data / "m.csv", index=False
    )
    (tmp_path / "classes.txt").write_text(names)
    spec = DataSpec(classes_file=str(tmp_path / "classes.txt"))
    # img/0.png is RED (0) and suspected BLUE (2); img/4.png is GREEN (1) and suspected RED (0)
    report = report_from_data(tmp_path / "r", data / "m.csv", {"img/0.png": "2", "img/4.png": "0"}, spec=spec)
    return report, data / "m.csv"


def _apply(decisions: Path, manifest: Path, *extra: str) -> pd.DataFrame:
    assert main(["apply", str(decisions), "--data", str(manifest), *extra]) == 0
    corrected = pd.read_csv(manifest.with_name("m.corrected.csv"))
    return corrected.set_index("path")["label"]


def test_cvat_queue_shows_names_and_apply_reads_the_keys_back(tmp_path: Path) -> None:
    report, manifest = _named_report(tmp_path)
    out = tmp_path / "q.xml"
    assert main(["export", str(report), "--to", "cvat", "--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    labels = root.findall("meta/task/labels/label")
    assert [label.findtext("name") for label in labels] == ["RED", "GREEN", "BLUE"]
    images = {i.get("name"): i for i in root.findall("image")}
    tag = images["img/0.png"].find("tag")
    assert tag is not None and tag.get("label") == "RED"
    attributes = {a.get("name"): a.text for a in tag.findall("attribute")}
    assert attributes["suggested_label"] == "BLUE" and attributes["class_key"] == "0"
    spec = json.loads((tmp_path / "q.labels.json").read_text())
    assert [s["name"] for s in spec] == ["RED", "GREEN", "BLUE"]

    # The reviewer changes img/0.png's tag to BLUE (CVAT drops its attributes) and leaves img/4.png as is.
    tag.set("label", "BLUE")
    for attribute in tag.findall("attribute"):
        tag.remove(attribute)
    ET.ElementTree(root).write(out)
    labels_now = _apply(out, manifest)
    assert labels_now["img/0.png"] == 2 and labels_now["img/4.png"] == 1


def test_fiftyone_queue_shows_names_and_apply_reads_the_keys_back(tmp_path: Path) -> None:
    report, manifest = _named_report(tmp_path)
    out = tmp_path / "fo.json"
    assert main(["export", str(report), "--to", "fiftyone-json", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["classes"] == ["RED", "GREEN", "BLUE"]
    assert payload["info"]["labelaudit_class_keys"] == {"RED": "0", "GREEN": "1", "BLUE": "2"}
    samples = {s["labelaudit_sample_id"]: s for s in payload["samples"]}
    assert samples["img/0.png"]["ground_truth"]["label"] == "RED"
    assert samples["img/0.png"]["labelaudit"]["label"] == "BLUE"
    assert samples["img/0.png"]["labelaudit_given_label"] == "0"  # the key, for apply's checks

    samples["img/0.png"]["ground_truth"]["label"] = "BLUE"  # reviewed; img/4.png left at its given GREEN
    out.write_text(json.dumps(payload))
    labels_now = _apply(out, manifest)
    assert labels_now["img/0.png"] == 2 and labels_now["img/4.png"] == 1


def test_a_relabel_decision_may_name_the_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report, manifest = _named_report(tmp_path)
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--out", str(queue)]) == 0
    frame = pd.read_csv(queue, dtype=str)
    frame["decision"] = ["relabel:BLUE" if s == "img/0.png" else "relabel:1" for s in frame["sample_id"]]
    frame.to_csv(queue, index=False)
    labels_now = _apply(queue, manifest)  # the queue's given_name / suggested_name columns tell the names
    assert labels_now["img/0.png"] == 2 and labels_now["img/4.png"] == 1

    bare = tmp_path / "bare.csv"  # a hand-written file: only --report knows the names
    pd.DataFrame({"sample_id": ["img/4.png"], "decision": ["relabel:BLUE"]}).to_csv(bare, index=False)
    assert main(["apply", str(bare), "--data", str(manifest), "--out", str(tmp_path / "x.csv"), "--dry-run"]) == 2
    assert "unknown class 'BLUE'" in " ".join(capsys.readouterr().err.split())
    assert main(["apply", str(bare), "--report", str(report), "--out", str(tmp_path / "c.csv")]) == 0
    assert pd.read_csv(tmp_path / "c.csv").set_index("path")["label"]["img/4.png"] == 2


def test_a_class_name_that_is_another_class_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report, manifest = _named_report(tmp_path, names="0\t1\n1\tONE\n2\tTWO\n")  # class 0 is named "1"
    decisions = tmp_path / "d.csv"
    pd.DataFrame({"sample_id": ["img/0.png"], "decision": ["relabel:1"]}).to_csv(decisions, index=False)
    assert main(["apply", str(decisions), "--report", str(report), "--dry-run"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "'1' is both a class key and the name of class '0'" in said and "relabel:<key>" in said
    pd.DataFrame({"sample_id": ["img/0.png"], "decision": ["relabel:TWO"]}).to_csv(decisions, index=False)
    assert main(["apply", str(decisions), "--report", str(report), "--dry-run"]) == 0
