"""A tag-set report whose --classes file names the classes otherwise than their keys: the queues show the names
(CSV beside the keys, Label Studio and CVAT as the choices a reviewer picks), and `apply` reads names or keys
back as the manifest's keys."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from labelaudit.cli import main

from .conftest import make_image
from .test_multilabel_pipeline import PLANTED, audit_tagged, tagged_manifest

KEYS = {"sports": "S", "food": "F", "weather": "W"}
CLASSES = "F\tfood\nS\tsports\nW\tweather\n"


@pytest.fixture(scope="module")
def named_tag_report(tmp_path_factory: pytest.TempPathFactory, minilm_encoder) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("named_tags")
    manifest = tagged_manifest(folder)
    frame = pd.read_csv(manifest)
    frame["tags"] = ["|".join(KEYS[t] for t in tags.split("|")) for tags in frame["tags"]]
    frame.to_csv(manifest, index=False)
    (folder / "classes.txt").write_text(CLASSES)
    out = audit_tagged(manifest, folder / "report", minilm_encoder, classes_file=folder / "classes.txt")
    return manifest, out


def _apply(queue: Path, manifest: Path, out: Path, *extra: str) -> pd.Series:
    assert main(["apply", str(queue), "--data", str(manifest), "--label-sep", "|", "--out", str(out), *extra]) == 0
    return pd.read_csv(out, dtype=str, keep_default_na=False).set_index("id")["tags"]


def test_csv_tag_queue_shows_names_and_apply_reads_names_or_keys(named_tag_report, tmp_path: Path) -> None:
    manifest, report = named_tag_report
    queue = tmp_path / "queue.csv"
    assert main(["export", str(report), "--to", "csv", "--out", str(queue)]) == 0
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    row = frame.index[frame["sample_id"] == PLANTED][0]  # given "food" (F), its text is about the weather
    assert frame.loc[row, "given_tags"] == "F" and frame.loc[row, "given_names"] == "food"
    assert "weather" in frame.loc[row, "suggested_names"].split("|")
    assert frame.loc[row, "add_tags"] == "weather"  # the cell the reviewer edits, in names
    frame.loc[row, "remove_tags"] = "food"  # a name the reviewer types
    frame.loc[row, "decision"] = "accept"
    frame.to_csv(queue, index=False)
    for name, extra in (("alone", ()), ("with_report", ("--report", str(report)))):
        tags = _apply(queue, manifest, tmp_path / f"corrected_{name}.csv", *extra)
        assert tags[PLANTED] == "W"  # the manifest's keys, not the names


def test_a_tag_that_is_one_class_key_and_another_class_name_is_refused(named_tag_report, tmp_path: Path) -> None:
    from labelaudit.apply import read_decisions

    _, report = named_tag_report
    queue = tmp_path / "queue.csv"
    assert main(["export", str(report), "--to", "csv", "--out", str(queue)]) == 0
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    row = frame.index[frame["sample_id"] == PLANTED][0]
    frame.loc[row, "add_tags"], frame.loc[row, "decision"] = "S", "accept"
    frame.to_csv(queue, index=False)
    decisions, problems = read_decisions(queue, {"F": "food", "S": "sports", "W": "S"})  # W is *named* "S"
    assert not decisions and "both a class key and the name of class 'W'" in problems[0]
    decisions, problems = read_decisions(queue, {"F": "food", "S": "sports", "W": "weather"})
    assert not problems and decisions[0].add_tags == ("S",)


def test_labelstudio_tag_queue_shows_names_and_stores_keys(named_tag_report, tmp_path: Path) -> None:
    _, report = named_tag_report
    queue = tmp_path / "queue.json"
    assert main(["export", str(report), "--to", "labelstudio", "--out", str(queue)]) == 0
    config = ET.fromstring((tmp_path / "queue.config.xml").read_text())
    choices = {c.get("value"): c.get("alias") for c in config.iter("Choice") if c.get("alias")}
    assert choices == {"food": "F", "sports": "S", "weather": "W"}  # shown by name, exported as the key
    assert "$given_name" in config.find("Header").get("value")
    task = next(t for t in json.loads(queue.read_text()) if t["data"]["sample_id"] == PLANTED)
    assert task["data"]["given_name"] == "food" and task["data"]["given_tags"] == ["F"]


def test_cvat_tag_queue_calls_labels_by_name_and_apply_reads_the_keys(tmp_path: Path, tiny_encoder, capsys) -> None:
    from labelaudit import audit

    data = tmp_path / "ds"
    colours = {"R": (200, 30, 30), "G": (30, 200, 30), "B": (30, 30, 200)}
    rows = []
    for i in range(18):
        keys = ["R", "G", "B"][i % 3] + ("|B" if i % 3 == 0 and i % 2 else "")
        make_image(data / "img" / f"{i}.png", colours[keys[0]])
        rows.append({"path": f"img/{i}.png", "tags": keys})
    pd.DataFrame(rows).to_csv(data / "m.csv", index=False)
    (tmp_path / "classes.txt").write_text("R\tred\nG\tgreen\nB\tblue\n")
    report = tmp_path / "report"
    audit(
        data / "m.csv",
        out=report,
        encoder=tiny_encoder,
        label_sep="|",
        cache_dir=None,
        deft_epochs=2,
        deft_folds=2,
        classes_file=tmp_path / "classes.txt",
    )
    # FiftyOne's queue holds one class per sample: refused for tag sets (apply would read a relabel), nothing written
    assert main(["export", str(report), "--to", "fiftyone-json", "--out", str(tmp_path / "fo.json")]) == 2
    assert "use --to csv, labelstudio or cvat" in capsys.readouterr().err and not (tmp_path / "fo.json").exists()
    out = tmp_path / "q.xml"
    assert main(["export", str(report), "--to", "cvat", "--out", str(out), "--top", "18"]) == 0
    root = ET.parse(out).getroot()
    assert sorted(label.findtext("name") for label in root.findall("meta/task/labels/label")) == [
        "blue",
        "green",
        "red",
    ]
    spec = json.loads((tmp_path / "q.labels.json").read_text())
    assert {s["name"]: a["default_value"] for s in spec for a in s["attributes"] if a["name"] == "class_key"} == {
        "red": "R",
        "green": "G",
        "blue": "B",
    }
    image = next(i for i in root.findall("image") if i.get("name") == "img/1.png")  # given G
    (tag,) = image.findall("tag")
    assert tag.get("label") == "green"
    tag.set("label", "red")  # the reviewer retags it red
    for other in root.findall("image"):
        if other is not image:
            root.remove(other)
    ET.ElementTree(root).write(out)
    corrected = tmp_path / "corrected.csv"
    assert (
        main(["apply", str(out), "--data", str(data / "m.csv"), "--report", str(report), "--out", str(corrected)]) == 0
    )
    assert pd.read_csv(corrected, dtype=str).set_index("path").loc["img/1.png", "tags"] == "R"  # the key, not "red"
