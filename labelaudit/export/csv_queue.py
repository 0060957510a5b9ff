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
# given_names / suggested_names: only in reports of a --classes file whose names differ from its keys; add_tags
# and remove_tags take keys or names.
TAG_LEADING = [
    "rank",
    "sample_id",
    "path",
    "given_tags",
    "given_names",
    "suggested_tags",
    "suggested_names",
    "add_tags",
    "remove_tags",
    "decision",
]
TAG_TRAILING = ["consensus_score", "text", "content_hash"]


def tag_queue_frame(
    queue: pd.DataFrame, methods: list[str], sep: str, names: dict[str, str] | None = None
) -> pd.DataFrame:
    from ..multilabel.tags import format_tags

    frame = queue.copy()
    if names:
        for column, source in (("given_names", "given_tags"), ("suggested_names", "suggested_tags")):
            frame[column] = [format_tags((names.get(str(t), str(t)) for t in tags), sep) for tags in queue[source]]
    for column, source in (
        ("given_tags", "given_tags"),
        ("suggested_tags", "suggested_tags"),
        ("add_tags", "missing_tags"),
        ("remove_tags", "spurious_tags"),
    ):
        # the cells a reviewer edits show names (apply reads names or keys); the given set stays in keys, which
        # apply checks against the manifest
        shown = names if names and column in ("add_tags", "remove_tags") else {}
        frame[column] = [format_tags((shown.get(str(t), str(t)) for t in tags), sep) for tags in queue[source]]
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
    tag_sets = True

    def write(self, queue: pd.DataFrame, target: Path, ctx: ExportContext) -> None:
        frame = (
            tag_queue_frame(queue, ctx.methods, ctx.tag_separator, ctx.names)
            if ctx.is_multilabel
            else queue_frame(queue, ctx.methods)
        )
        write_atomic(target, lambda tmp: frame.to_csv(tmp, index=False))

    def extra_paths(self, target: Path) -> list[Path]:
        return []

    def write_extras(self, target: Path, ctx: ExportContext) -> list[Path]:
        return []


EXPORTER = CsvExporter
