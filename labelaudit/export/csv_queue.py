"""CSV review queue: one row per suspect and an empty ``decision`` column for the reviewer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import write_atomic
from . import ExportContext

LEADING = [
    "rank",
    "sample_id",
    "path",
    "given_label",
    "given_name",  # only in reports of a --classes file whose names differ from its keys
    "suggested_label",
    "suggested_name",
    "decision",
    "consensus_score",
    "suggested_prob",
]
TRAILING = ["text", "content_hash"]


def queue_frame(queue: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Columns a reviewer reads left to right; content_hash stays so `apply` can detect changed files."""
    frame = queue.copy()
    frame["decision"] = ""
    scores = [f"{m}_score" for m in methods if f"{m}_score" in frame.columns]
    columns = [c for c in LEADING if c in frame.columns] + scores + [c for c in TRAILING if c in frame.columns]
    return frame[columns]


class CsvExporter:
    name = "csv"
    suffix = ".csv"
    modalities = ("image", "text")

    def write(self, queue: pd.DataFrame, target: Path, ctx: ExportContext) -> None:
        frame = queue_frame(queue, ctx.methods)
        write_atomic(target, lambda tmp: frame.to_csv(tmp, index=False))

    def write_extras(self, target: Path, ctx: ExportContext) -> list[Path]:
        return []


EXPORTER = CsvExporter
