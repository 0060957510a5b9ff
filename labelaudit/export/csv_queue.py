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
# A tag-set queue: the reviewer edits add_tags / remove_tags (pre-filled with labelaudit's suggestion) and
# writes ``accept`` in ``decision`` to apply them, or keep / remove / unsure; blank rows are not reviewed.
TAG_LEADING = ["rank", "sample_id", "path", "given_tags", "suggested_tags", "add_tags", "remove_tags", "decision"]
TAG_TRAILING = ["consensus_score", "text", "content_hash"]


def tag_queue_frame(queue: pd.DataFrame, methods: list[str], sep: str) -> pd.DataFrame:
    from ..multilabel.tags import format_tags

    frame = queue.copy()
    for column, source in (
        ("given_tags", "given_tags"),
        ("suggested_tags", "suggested_tags"),
        ("add_tags", "missing_tags"),
        ("remove_tags", "spurious_tags"),
    ):
        frame[column] = [format_tags(map(str, tags), sep) for tags in queue[source]]
    frame["decision"] = ""
    columns = [c for c in TAG_LEADING if c in frame.columns] + [c for c in TAG_TRAILING if c in frame.columns]
    return frame[columns]


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
        frame = (
            tag_queue_frame(queue, ctx.methods, ctx.tag_separator)
            if ctx.is_multilabel
            else queue_frame(queue, ctx.methods)
        )
        write_atomic(target, lambda tmp: frame.to_csv(tmp, index=False))

    def extra_paths(self, target: Path) -> list[Path]:
        return []

    def write_extras(self, target: Path, ctx: ExportContext) -> list[Path]:
        return []


EXPORTER = CsvExporter
