"""Label Studio: a tasks JSON importable as is, plus the labelling config XML it was made for.

Each task carries the suggested label as a *prediction* (pre-selected in the editor, with its score), so a
reviewer only clicks when labelaudit is wrong. The config has two controls: ``label`` (the classes) and
``review`` (remove / unsure); `labelaudit apply` reads the export back with the same names.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from ..io import write_json_atomic, write_text_atomic
from ..version import __version__
from . import ExportContext, queue_records

LABEL_CONTROL = "label"
REVIEW_CONTROL = "review"
REVIEW_CHOICES = ("remove", "unsure")
# Label Studio serves local files under this path when LOCAL_FILES_SERVING_ENABLED is set; the `d` parameter
# is relative to LOCAL_FILES_DOCUMENT_ROOT.
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def config_path(target: Path) -> Path:
    return target.with_name(f"{target.name.rsplit('.', 1)[0]}.config.xml")


def labelling_config(
    classes: list[str], modality: str, names: dict[str, str] | None = None, multiple: bool = False
) -> str:
    """The labelling interface. With ``names`` (a --classes file's), each choice shows the class's name and
    stores its key (Label Studio's ``alias``), so the export `apply` reads names the dataset's own labels.
    ``multiple``: a tag-set queue, whose label control takes several choices (Label Studio's
    ``choice="multiple"``), pre-selected with the suggested tag set."""
    view = ET.Element("View")
    given, suggested = ("$given_name", "$suggested_name") if names else ("$given_label", "$suggested_label")
    what = "tags" if multiple else "label"
    ET.SubElement(view, "Header", {"value": f"Given {what}: {given}, labelaudit suggests: {suggested}"})
    if modality == "image":
        ET.SubElement(view, "Image", {"name": modality, "value": f"${modality}", "zoom": "true"})
    else:
        ET.SubElement(view, "Text", {"name": modality, "value": f"${modality}"})
    choices = ET.SubElement(
        view,
        "Choices",
        {
            "name": LABEL_CONTROL,
            "toName": modality,
            "choice": "multiple" if multiple else "single",
            "showInline": "true",
        },
    )
    for name in classes:
        shown = names.get(name, name) if names else name
        ET.SubElement(choices, "Choice", {"value": shown, "alias": name} if shown != name else {"value": name})
    ET.SubElement(view, "Header", {"value": "Or, if no class fits:", "size": "6"})
    review = ET.SubElement(
        view, "Choices", {"name": REVIEW_CONTROL, "toName": modality, "choice": "single", "showInline": "true"}
    )
    for name in REVIEW_CHOICES:
        ET.SubElement(review, "Choice", {"value": name})
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def media_value(row: dict[str, Any], ctx: ExportContext) -> str:
    if ctx.modality == "text":
        return _full_text(row)
    if ctx.url_prefix is not None:
        return ctx.url_prefix + quote(ctx.relative_path(row))
    absolute = Path(str(row["path"])).resolve().as_posix()
    return LOCAL_FILES_PREFIX + quote(absolute.lstrip("/"))


def _full_text(row: dict[str, Any]) -> str:
    # The report keeps a 200-character excerpt; reviewers need the whole sample when its file is still there.
    path = row.get("path")
    if path and os.path.isfile(str(path)):
        try:
            return Path(str(path)).read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            pass
    return str(row.get("text") or "")


def task(row: dict[str, Any], ctx: ExportContext) -> dict[str, Any]:
    modality = ctx.modality
    data = {
        modality: media_value(row, ctx),
        "sample_id": str(row["sample_id"]),
        "given_label": str(row["given_label"]),
        "suggested_label": str(row["suggested_label"]),
        **{column: str(row[column]) for column in ("given_name", "suggested_name") if column in row},
        "consensus_score": round(float(row["consensus_score"]), 6),
        "rank": int(row["rank"]),
        "content_hash": row.get("content_hash"),
        "path": row.get("path"),
    }
    suggested = [str(row["suggested_label"])]
    if ctx.is_multilabel:  # the tag sets as lists, for the reviewer's choices and for `apply` to check against
        data["given_tags"] = [str(t) for t in row["given_tags"]]
        data["suggested_tags"] = suggested = [str(t) for t in row["suggested_tags"]]
        data["missing_tags"] = [str(t) for t in row["missing_tags"]]
        data["spurious_tags"] = [str(t) for t in row["spurious_tags"]]
        if ctx.names:  # what the header shows; the choices show names and store keys (alias)
            data["given_name"] = ctx.names_of(row["given_tags"])
            data["suggested_name"] = ctx.names_of(row["suggested_tags"])
    score = float(row["suggested_prob"]) if row.get("suggested_prob") is not None else None
    prediction: dict[str, Any] = {
        "model_version": f"labelaudit-{__version__}",
        "result": [
            {
                "from_name": LABEL_CONTROL,
                "to_name": modality,
                "type": "choices",
                "value": {"choices": suggested},
            }
        ],
    }
    if score is not None:
        prediction["score"] = round(score, 6)
    return {"data": data, "predictions": [prediction]}


class LabelStudioExporter:
    name = "labelstudio"
    suffix = ".json"
    modalities = ("image", "text")
    tag_sets = True

    def write(self, queue: pd.DataFrame, target: Path, ctx: ExportContext) -> None:
        records = queue_records(queue, ctx.methods)
        write_json_atomic(target, [task(r, ctx) for r in records])

    def extra_paths(self, target: Path) -> list[Path]:
        return [config_path(target)]

    def write_extras(self, target: Path, ctx: ExportContext) -> list[Path]:
        path = config_path(target)
        write_text_atomic(path, labelling_config(ctx.classes, ctx.modality, ctx.names, multiple=ctx.is_multilabel))
        return [path]


EXPORTER = LabelStudioExporter
