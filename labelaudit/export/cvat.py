"""CVAT: a "CVAT for images 1.1" annotation XML with one ``<tag>`` per image.

CVAT documents this format (Actions > Upload annotations > "CVAT 1.1") for image tags: each image holds a
``<tag label=...>`` with ``<attribute>`` children. The given label is the tag; the suggested label, consensus
score and rank are attributes, so reviewers filter on them in the job view and fix the tag. A labels JSON for
CVAT's raw label constructor is written beside it, so the task is created with matching labels.

With a --classes file that names the classes otherwise than their keys, labels are the names; each label has
a fixed ``class_key`` attribute holding its key, which CVAT keeps in the labels of its own export, so
`labelaudit apply` maps the names back to the dataset's keys.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from ..errors import LabelAuditError
from ..io import write_json_atomic, write_text_atomic
from . import ExportContext, queue_records

ATTRIBUTES = ("suggested_label", "consensus_score", "rank", "sample_id")
KEY_ATTRIBUTE = "class_key"  # a named label's key (the name is what CVAT shows)
# A tag-set queue: one <tag> per given tag; the reviewer deletes the spurious ones and adds the missing ones.
TAG_ATTRIBUTES = ("suggested_label", "verdict", "consensus_score", "rank", "sample_id")


def labels_path(target: Path) -> Path:
    return target.with_name(f"{target.name.rsplit('.', 1)[0]}.labels.json")


def label_spec(
    classes: list[str], multilabel: bool = False, names: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """CVAT's raw label specification (Project/Task > Labels > Raw). ``multilabel``: the suggestion is a tag
    set (text), and each given tag says whether labelaudit thinks it spurious (``verdict``). ``names``: class
    key -> name; each label is then called by its name and carries its key (``class_key``)."""
    if multilabel:
        text = {"mutable": False, "input_type": "text", "default_value": "", "values": [""]}
        verdict = {"mutable": False, "input_type": "select", "default_value": "keep", "values": ["keep", "spurious"]}
        attributes = [{"name": name, **(verdict if name == "verdict" else text)} for name in TAG_ATTRIBUTES]
        return [
            {"name": names.get(c, c), "type": "tag", "attributes": [*attributes, _key_attribute(c)]}
            if names and names.get(c, c) != c
            else {"name": c, "type": "tag", "attributes": attributes}
            for c in classes
        ]
    shown = [names.get(c, c) for c in classes] if names else list(classes)
    attributes = [
        {
            "name": "suggested_label",
            "mutable": False,
            "input_type": "select",
            "default_value": shown[0],
            "values": shown,
        },
        {"name": "consensus_score", "mutable": False, "input_type": "text", "default_value": "", "values": [""]},
        {"name": "rank", "mutable": False, "input_type": "text", "default_value": "", "values": [""]},
        {"name": "sample_id", "mutable": False, "input_type": "text", "default_value": "", "values": [""]},
    ]
    if shown == list(classes):
        return [{"name": c, "type": "tag", "attributes": attributes} for c in classes]
    return [
        {"name": name, "type": "tag", "attributes": [*attributes, _key_attribute(key)]}
        for key, name in zip(classes, shown, strict=True)
    ]


def _key_attribute(key: str) -> dict[str, Any]:
    return {"name": KEY_ATTRIBUTE, "mutable": False, "input_type": "text", "default_value": key, "values": [key]}


def _size(path: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except OSError as exc:
        raise LabelAuditError(f"cannot read image size of {path} for the CVAT export: {exc}") from None


def annotation_xml(records: list[dict[str, Any]], ctx: ExportContext, task_name: str) -> str:
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(meta, "name").text = task_name
    ET.SubElement(meta, "size").text = str(len(records))
    ET.SubElement(meta, "mode").text = "annotation"
    labels = ET.SubElement(meta, "labels")
    for spec in label_spec(ctx.classes, ctx.is_multilabel, ctx.names):
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = spec["name"]
        ET.SubElement(label, "type").text = "tag"
        attributes = ET.SubElement(label, "attributes")
        for attr in spec["attributes"]:
            node = ET.SubElement(attributes, "attribute")
            ET.SubElement(node, "name").text = attr["name"]
            ET.SubElement(node, "mutable").text = "False"
            ET.SubElement(node, "input_type").text = attr["input_type"]
            ET.SubElement(node, "default_value").text = attr["default_value"]
            ET.SubElement(node, "values").text = "\n".join(attr["values"])
    named = not ctx.is_multilabel and [ctx.name_of(c) for c in ctx.classes] != list(ctx.classes)
    for index, row in enumerate(records):
        width, height = _size(str(row["path"]))
        image = ET.SubElement(
            root,
            "image",
            {"id": str(index), "name": ctx.relative_path(row), "width": str(width), "height": str(height)},
        )
        if ctx.is_multilabel:
            spurious = {str(t) for t in row["spurious_tags"]}
            for given in row["given_tags"]:
                tag = ET.SubElement(image, "tag", {"label": ctx.name_of(given), "source": "auto"})
                verdict = "spurious" if str(given) in spurious else "keep"
                values = {**row, "verdict": verdict, "suggested_label": ctx.names_of(row["suggested_tags"])}
                for name in TAG_ATTRIBUTES:
                    value = values[name]
                    text = f"{value:.6f}" if name == "consensus_score" else str(value)
                    ET.SubElement(tag, "attribute", {"name": name}).text = text
                if ctx.name_of(given) != str(given):  # the attributes of a named label
                    ET.SubElement(tag, "attribute", {"name": KEY_ATTRIBUTE}).text = str(given)
            continue
        tag = ET.SubElement(image, "tag", {"label": ctx.name_of(row["given_label"]), "source": "auto"})
        for name in ATTRIBUTES:
            value = row[name]
            if name == "consensus_score":
                text = f"{value:.6f}"
            else:
                text = ctx.name_of(value) if name == "suggested_label" else str(value)
            ET.SubElement(tag, "attribute", {"name": name}).text = text
        if named:  # every label of a named spec has the attribute
            ET.SubElement(tag, "attribute", {"name": KEY_ATTRIBUTE}).text = str(row["given_label"])
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


class CvatExporter:
    name = "cvat"
    suffix = ".xml"
    modalities = ("image",)
    tag_sets = True

    def write(self, queue: pd.DataFrame, target: Path, ctx: ExportContext) -> None:
        records = queue_records(queue, ctx.methods)
        write_text_atomic(target, annotation_xml(records, ctx, target.stem))

    def extra_paths(self, target: Path) -> list[Path]:
        return [labels_path(target)]

    def write_extras(self, target: Path, ctx: ExportContext) -> list[Path]:
        path = labels_path(target)
        write_json_atomic(path, label_spec(ctx.classes, ctx.is_multilabel, ctx.names))
        return [path]


EXPORTER = CvatExporter
