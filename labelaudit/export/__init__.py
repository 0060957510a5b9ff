"""Relabel queues: the suspects of a report, in a format annotators open directly.

One file per format defines an ``Exporter`` (``EXPORTER`` in the module); a new format is one new file plus
one line in ``EXPORTERS``, which the CLI's --to choices are read from. Selection, ordering and splitting into
batches happen once, here, for every format.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import LabelAuditError, speaks_python
from ..summary import Summary

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ExportContext:
    """What a format needs besides the rows: the report's summary, classes and where files live."""

    summary: Summary
    classes: list[str]
    report_dir: Path
    url_prefix: str | None = None
    names: dict[str, str] | None = None  # class key -> name, when a --classes file named them otherwise

    def name_of(self, key: object) -> str:
        """What a reviewer reads for class ``key``: its --classes name where one differs, else the key."""
        return self.names.get(str(key), str(key)) if self.names else str(key)

    def names_of(self, tags: Iterable[object]) -> str:
        """A tag set as a reviewer reads it: each tag's name, joined by the report's separator."""
        return self.tag_separator.join(self.name_of(t) for t in tags)

    @property
    def modality(self) -> str:
        return self.summary.dataset.modality

    @property
    def methods(self) -> list[str]:
        return list(self.summary.methods)

    @property
    def is_multilabel(self) -> bool:
        return self.summary.multilabel is not None

    @property
    def tag_separator(self) -> str:
        return self.summary.multilabel.tag_separator if self.summary.multilabel is not None else "|"

    def relative_path(self, row: dict[str, Any]) -> str:
        """The sample's path relative to the dataset root (for URLs and annotation-tool file names)."""
        if self.summary.dataset.is_folder or row.get("path") is None:
            return str(row["sample_id"])
        source = Path(self.summary.dataset.source)
        try:
            return Path(str(row["path"])).resolve().relative_to(source.resolve().parent).as_posix()
        except (ValueError, OSError):
            return str(row["sample_id"])


class Exporter(Protocol):
    name: str
    suffix: str
    modalities: tuple[str, ...]
    tag_sets: bool  # writes the queue of a tag-set (multi-label) report, which `apply` reads back as tag sets

    def write(self, queue: pd.DataFrame, target: Path, ctx: ExportContext) -> None:
        """Write one queue file atomically."""

    def write_extras(self, target: Path, ctx: ExportContext) -> list[Path]:
        """Write companion files once per export (e.g. a labelling config); return them."""

    def extra_paths(self, target: Path) -> list[Path]:
        """The companion files ``write_extras`` would write for ``target``, without writing them."""


@dataclass
class ExportResult:
    files: list[Path]
    extras: list[Path]
    n_rows: int
    format: str
    selection: str
    parts: list[dict[str, Any]] = field(default_factory=list)


# Format name (the --to value) -> the module whose EXPORTER writes it.
EXPORTERS: dict[str, str] = {
    "csv": "labelaudit.export.csv_queue",
    "labelstudio": "labelaudit.export.labelstudio",
    "cvat": "labelaudit.export.cvat",
    "fiftyone-json": "labelaudit.export.fiftyone",
}


def get_exporter(name: str) -> Exporter:
    if name not in EXPORTERS:
        raise LabelAuditError(f"unknown export format {name!r}; choose one of {', '.join(EXPORTERS)}")
    return importlib.import_module(EXPORTERS[name]).EXPORTER()


def select_queue(
    samples: pd.DataFrame,
    *,
    top: int | None = None,
    max_score: float | None = None,
    classes: list[str] | None = None,
) -> tuple[pd.DataFrame, str]:
    """Rows to review, most suspect first, and a sentence saying how they were chosen.

    Without --top or --max-score the queue is the consensus-flagged rows: that is what the report calls
    suspect. With either, the flag is ignored so a reviewer can also look just past the cut-off.
    """
    queue = samples.sort_values(["consensus_score", "rank"], kind="mergesort")
    why: list[str] = []
    if classes:
        if "given_tags" in queue.columns:  # a tag set: any of its tags, given or suggested
            wanted = set(classes)
            keep = [
                bool(wanted & ({*map(str, g)} | {*map(str, s)}))
                for g, s in zip(queue["given_tags"], queue["suggested_tags"], strict=True)
            ]
            queue = queue[keep]
            why.append(f"tags given or suggested in {', '.join(classes)}")
        else:
            queue = queue[queue["given_label"].astype(str).isin(classes)]
            why.append(f"given label in {', '.join(classes)}")
    if top is None and max_score is None:
        queue = queue[queue["is_issue"].astype(bool)]
        why.insert(0, "flagged by the consensus")
    if max_score is not None:
        queue = queue[queue["consensus_score"] <= max_score]
        why.insert(0, f"consensus score <= {max_score:g}")
    if top is not None:
        queue = queue.head(top)
        why.insert(0, f"top {top}")
    return queue.reset_index(drop=True), "; ".join(why)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"


def partition(
    queue: pd.DataFrame, target: Path, batch_size: int | None, split_by_class: bool
) -> list[tuple[Path, pd.DataFrame]]:
    """Split a queue into files ``STEM[-CLASS][-NNN]SUFFIX``; each part keeps the queue's order."""
    groups: list[tuple[str, pd.DataFrame]] = [("", queue)]
    if split_by_class and len(queue):
        groups = [(f"-{_safe(str(label))}", part) for label, part in queue.groupby("given_label", sort=True)]
    parts: list[tuple[Path, pd.DataFrame]] = []
    suffix = "".join(target.suffixes[-1:])
    stem = target.name[: len(target.name) - len(suffix)] if suffix else target.name
    for tag, frame in groups:
        if batch_size and len(frame) > 0:
            for number, start in enumerate(range(0, len(frame), batch_size), start=1):
                name = f"{stem}{tag}-{number:03d}{suffix}"
                parts.append((target.with_name(name), frame.iloc[start : start + batch_size].reset_index(drop=True)))
        else:
            parts.append((target.with_name(f"{stem}{tag}{suffix}"), frame.reset_index(drop=True)))
    return parts


def class_names_of(samples: pd.DataFrame) -> dict[str, str] | None:
    """Class key -> name from the given_name / suggested_name columns beside the label columns (a report's, or
    a reviewed queue's, where a reviewer may have left cells empty); None when there are none."""
    names: dict[str, str] = {}
    for key_column, name_column in (("given_label", "given_name"), ("suggested_label", "suggested_name")):
        if key_column in samples.columns and name_column in samples.columns:
            pairs = samples[[key_column, name_column]].dropna()
            names.update(zip(pairs[key_column].astype(str), pairs[name_column].astype(str), strict=True))
    return names or None


def tag_class_names(report_dir: Path) -> dict[str, str] | None:
    """Class key -> name of a tag-set report (its classes table holds both), where a --classes file named any
    class otherwise; None when every name is its key."""
    import pandas as pd

    try:
        table = pd.read_parquet(Path(report_dir) / "classes.parquet", columns=["class", "name"])
    except (OSError, ValueError, KeyError):
        return None
    names = dict(zip(table["class"].astype(str), table["name"].astype(str), strict=True))
    return names if any(key != name for key, name in names.items()) else None


@speaks_python(classes="classes=")
def export(
    report_dir: Path,
    to: str,
    out: Path | None = None,
    *,
    top: int | None = None,
    max_score: float | None = None,
    classes: list[str] | None = None,
    batch_size: int | None = None,
    split_by_class: bool = False,
    url_prefix: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write a relabel queue of ``report_dir`` in format ``to``; returns the files written.

    An existing file among them is refused unless ``overwrite``: the default relabel-queue.csv is exactly the
    file a reviewer fills in, and a second export must not silently wipe their decisions."""
    exporter = get_exporter(to)
    out = Path(out) if out is not None else Path(f"relabel-queue{exporter.suffix}")
    if top is not None and top < 1:
        raise LabelAuditError(f"--top must be 1 or more, got {top}")
    if batch_size is not None and batch_size < 1:
        raise LabelAuditError(f"--batch-size must be 1 or more, got {batch_size}")
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        raise LabelAuditError(f"report folder {report_dir} does not exist")
    from ..report import load_report  # pandas and the tables: not needed for the CLI's --to choices

    samples, _, summary = load_report(report_dir)
    known = summary.classes or sorted(samples["given_label"].astype(str).unique())
    if classes:
        unknown = [c for c in classes if c not in known]
        if unknown:
            raise LabelAuditError(f"--classes names unknown class(es) {', '.join(unknown)}; known: {', '.join(known)}")
    names = tag_class_names(report_dir) if summary.multilabel is not None else class_names_of(samples)
    ctx = ExportContext(summary=summary, classes=known, report_dir=report_dir, url_prefix=url_prefix, names=names)
    if ctx.modality not in exporter.modalities:
        raise LabelAuditError(
            f"the {to} export handles {' and '.join(exporter.modalities)} datasets; this report is {ctx.modality}"
        )
    if ctx.is_multilabel and not exporter.tag_sets:
        able = [name for name in EXPORTERS if get_exporter(name).tag_sets]
        choices = ", ".join(able[:-1]) + f" or {able[-1]}" if len(able) > 1 else able[0]
        raise LabelAuditError(
            f"the {to} export holds one class per sample, and this report holds tag sets; use --to {choices}"
        )
    queue, selection = select_queue(samples, top=top, max_score=max_score, classes=classes)
    parts = partition(queue, Path(out), batch_size, split_by_class)
    if not overwrite:
        refuse_existing([p for p, _ in parts] + exporter.extra_paths(Path(out)))
    for target, frame in parts:
        exporter.write(frame, target, ctx)
    extras = exporter.write_extras(Path(out), ctx)
    return ExportResult(
        files=[p for p, _ in parts],
        extras=extras,
        n_rows=len(queue),
        format=to,
        selection=selection,
        parts=[{"file": str(p), "rows": len(f)} for p, f in parts],
    )


def refuse_existing(targets: list[Path]) -> None:
    """Raise LabelAuditError naming the first of ``targets`` that exists (checked before anything is written)."""
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise LabelAuditError(
            f"{existing[0]}{more} already exists and may hold a reviewer's decisions; pass --overwrite to replace "
            "it, or choose another --out"
        )


def queue_records(queue: pd.DataFrame, methods: list[str]) -> list[dict[str, Any]]:
    """Rows as plain Python values (no numpy scalars, None for missing) for JSON and XML writers."""
    import pandas as pd

    records = []
    for row in queue.to_dict("records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and pd.isna(value)):
                clean[key] = None
            elif getattr(value, "ndim", 0) > 0:  # a tag set, read back from Parquet as an array
                clean[key] = value.tolist()
            elif hasattr(value, "item"):
                clean[key] = value.item()
            else:
                clean[key] = value
        clean["method_scores"] = {m: clean.get(f"{m}_score") for m in methods if f"{m}_score" in clean}
        records.append(clean)
    return records
