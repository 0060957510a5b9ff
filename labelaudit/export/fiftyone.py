"""FiftyOne: samples serialised the way ``fiftyone.Sample.from_dict`` reads them.

Labels are ``Classification`` documents (``_cls`` names the type): ``ground_truth`` is the given label and
``labelaudit`` the suggestion with its probability as confidence, so the FiftyOne App can sort and filter
the queue. Load it with ``fo.Dataset.from_dict(json.load(open(FILE)))``.

With a --classes file that names the classes otherwise than their keys, labels are the names, and the
dataset's ``info`` (which FiftyOne keeps in ``dataset.write_json``) maps each name to its key for `apply`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..io import write_json_atomic
from . import ExportContext, queue_records

KEYS_INFO = "labelaudit_class_keys"  # in the dataset's info: class name -> key, where a --classes file named them


def sample(row: dict[str, Any], ctx: ExportContext) -> dict[str, Any]:
    return {
        "filepath": str(Path(str(row["path"])).resolve()) if row.get("path") else None,
        "tags": ["labelaudit", "suspect"] if row.get("is_issue") else ["labelaudit"],
        "ground_truth": {"_cls": "Classification", "label": ctx.name_of(row["given_label"])},
        "labelaudit": {
            "_cls": "Classification",
            "label": ctx.name_of(row["suggested_label"]),
            "confidence": row.get("suggested_prob"),
        },
        "labelaudit_rank": int(row["rank"]),
        "labelaudit_consensus_score": float(row["consensus_score"]),
        "labelaudit_is_issue": bool(row.get("is_issue")),
        "labelaudit_sample_id": str(row["sample_id"]),
        "labelaudit_given_label": str(row["given_label"]),  # ground_truth is what reviewers edit
        **({"labelaudit_given_name": ctx.name_of(row["given_label"])} if ctx.names else {}),
        "labelaudit_content_hash": row.get("content_hash"),
        "labelaudit_method_scores": row["method_scores"],
    }


class FiftyOneExporter:
    name = "fiftyone-json"
    suffix = ".json"
    modalities = ("image",)
    tag_sets = False

    def write(self, queue: pd.DataFrame, target: Path, ctx: ExportContext) -> None:
        records = queue_records(queue, ctx.methods)
        shown = [ctx.name_of(c) for c in ctx.classes]
        payload: dict[str, Any] = {
            "name": f"labelaudit-{target.stem}",
            "media_type": "image",
            "classes": shown,
            "samples": [sample(r, ctx) for r in records],
        }
        if shown != list(ctx.classes):
            payload["info"] = {KEYS_INFO: dict(zip(shown, ctx.classes, strict=True))}
        write_json_atomic(target, payload)

    def extra_paths(self, target: Path) -> list[Path]:
        return []

    def write_extras(self, target: Path, ctx: ExportContext) -> list[Path]:
        return []


EXPORTER = FiftyOneExporter
