"""Small synthetic report folders for the gate, export and apply tests: exact numbers, no embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from labelaudit.discover import discover
from labelaudit.io import write_json_atomic

METHODS = ["confident", "deft"]


def write_report(
    out: Path,
    rows: list[dict[str, Any]],
    *,
    kind: str = "image_folder",
    modality: str = "image",
    source: str = "data",
    error_rate: float | None = None,
    class_rates: dict[str, float] | None = None,
) -> Path:
    """Write report.parquet, classes.parquet and summary.json the way `labelaudit audit` lays them out."""
    frame = pd.DataFrame(rows)
    for column, default in (("path", None), ("text", None), ("suggested_prob", 0.9), ("is_issue", False)):
        if column not in frame.columns:
            frame[column] = default
    if "suggested_label" not in frame.columns:
        frame["suggested_label"] = frame["given_label"]
    for m in METHODS:
        frame[f"{m}_score"] = frame["consensus_score"]
        frame[f"{m}_issue"] = frame["is_issue"]
        frame[f"{m}_suggested"] = frame["suggested_label"]
    frame = frame.sort_values(["consensus_score", "sample_id"], kind="mergesort").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    classes = sorted(frame["given_label"].unique())
    class_rows = []
    for c in classes:
        part = frame[frame["given_label"] == c]
        flagged = int(part["is_issue"].sum())
        rate = (class_rates or {}).get(c, flagged / len(part))
        class_rows.append(
            {
                "class": c,
                "name": c,
                "count": len(part),
                "flagged": flagged,
                "flagged_rate": flagged / len(part),
                "estimated_error_rate": rate,
                "confused_with": None,
                "confused_share": 0.0,
            }
        )
    class_frame = pd.DataFrame(class_rows).sort_values("estimated_error_rate", ascending=False, kind="mergesort")
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "report.parquet", index=False)
    class_frame.to_parquet(out / "classes.parquet", index=False)
    summary = {
        "labelaudit_version": "0.1.0",
        "dataset": {
            "source": source,
            "kind": kind,
            "modality": modality,
            "n_samples": len(frame),
            "n_classes": len(classes),
        },
        "classes": classes,
        "methods": METHODS,
        "estimated_error_rate": float(frame["is_issue"].mean()) if error_rate is None else error_rate,
        "n_flagged": int(frame["is_issue"].sum()),
        "n_skipped": 0,
        "skipped": [],
    }
    write_json_atomic(out / "summary.json", summary)
    return out


def report_from_data(out: Path, data: Path, suspects: dict[str, str], **kwargs: Any) -> Path:
    """A report of a real dataset: ``suspects`` maps sample_id -> suggested label; those rows are flagged."""
    dataset = discover(data)
    rows = []
    for i, record in enumerate(dataset.samples.to_dict("records")):
        suspect = record["sample_id"] in suspects
        rows.append(
            {
                "sample_id": record["sample_id"],
                "path": record["path"],
                "text": record["text"],
                "given_label": record["label"],
                "suggested_label": suspects.get(record["sample_id"], record["label"]),
                "consensus_score": 0.01 * (i + 1) if suspect else 0.5 + 0.01 * i,
                "is_issue": suspect,
                "content_hash": record["content_hash"],
            }
        )
    kwargs.setdefault("kind", dataset.kind)
    kwargs.setdefault("modality", dataset.modality)
    kwargs.setdefault("source", str(data))
    return write_report(out, rows, **kwargs)


def tree_state(root: Path) -> dict[str, str]:
    """Every file and folder below root -> a hash of its bytes ('dir' for folders): equal means identical."""
    import hashlib

    state: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        state[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state
