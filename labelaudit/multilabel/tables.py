"""The report tables of a multi-label audit, as DataFrames: one row per sample and one per class.

Tag sets are list columns (Parquet keeps them as lists); ``for_csv`` joins them with a separator for the CSV
copy, so a CSV reader gets back what ``parse_tag_column`` reads with the same separator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from .audit import MultilabelAudit
from .tags import format_tags, tag_lists

TAG_SET_COLUMNS = ("given_tags", "suggested_tags", "missing_tags", "spurious_tags")


def samples_table(
    audit: MultilabelAudit,
    sample_ids: Sequence[object],
    classes: Sequence[str] | None = None,
    extra: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per sample, most suspect first: rank, sample_id, given_tags, suggested_tags, missing_tags,
    spurious_tags, n_missing, n_spurious, quality (low = suspect), is_issue, worst_tag (the most suspect pair's
    class) and worst_suspicion. ``classes``: the class keys as the manifest writes them (default the audit's
    class names). ``extra``: further per-sample columns, in the same order as ``sample_ids``."""
    names = list(classes) if classes is not None else audit.classes
    d = audit.decisions
    suspicion = audit.consensus.suspicion
    worst = suspicion.argmax(axis=1) if suspicion.shape[1] else np.zeros(len(suspicion), dtype=np.int64)
    worst_value = suspicion[np.arange(len(suspicion)), worst] if suspicion.shape[1] else np.zeros(len(suspicion))
    frame = pd.DataFrame(
        {
            "rank": d.rank,
            "sample_id": [str(i) for i in sample_ids],
            "given_tags": tag_lists(audit.tags, names),
            "suggested_tags": tag_lists(d.suggested, names),
            "missing_tags": tag_lists(d.missing, names),
            "spurious_tags": tag_lists(d.spurious, names),
            "n_missing": d.missing.sum(axis=1).astype(np.int64),
            "n_spurious": d.spurious.sum(axis=1).astype(np.int64),
            "quality": d.quality.astype(np.float64),
            "is_issue": d.is_issue,
            "worst_tag": [names[k] if v > 0 else None for k, v in zip(worst, worst_value, strict=True)],
            "worst_suspicion": worst_value.astype(np.float64),
        }
    )
    if extra is not None:
        for column in extra.columns:
            frame[column] = extra[column].to_numpy()
    return frame.sort_values("rank", kind="mergesort").reset_index(drop=True)


def classes_table(audit: MultilabelAudit, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per class, most suspect first: how often it is given and suggested, how many of its pairs look
    missing or spurious, and the rates: ``missing_rate`` = flagged missing / samples not given the tag,
    ``spurious_rate`` = flagged spurious / samples given it; ``judged_by``: the methods that could judge it."""
    names = list(classes) if classes is not None else audit.classes
    d = audit.decisions
    n = len(audit.tags)
    given = audit.tags.sum(axis=0)
    missing = d.missing.sum(axis=0)
    spurious = d.spurious.sum(axis=0)
    frame = pd.DataFrame(
        {
            "class": names,
            "name": audit.classes,
            "count": given.astype(np.int64),
            "suggested_count": d.suggested.sum(axis=0).astype(np.int64),
            "flagged_missing": missing.astype(np.int64),
            "flagged_spurious": spurious.astype(np.int64),
            "missing_rate": missing / np.maximum(n - given, 1),
            "spurious_rate": spurious / np.maximum(given, 1),
            "judged": audit.consensus.scored,
            "judged_by": [[m for m, r in audit.methods.items() if r.scored[k]] for k in range(len(names))],
        }
    )
    frame["flagged_rate"] = (frame["flagged_missing"] + frame["flagged_spurious"]) / max(n, 1)
    return frame.sort_values(["flagged_rate", "class"], ascending=[False, True], kind="mergesort").reset_index(
        drop=True
    )


def report_tables(
    audit: MultilabelAudit,
    sample_ids: Sequence[object],
    classes: Sequence[str] | None = None,
    extra: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples, classes): what report.parquet/csv and classes.parquet/csv hold for a multi-label audit."""
    return samples_table(audit, sample_ids, classes, extra), classes_table(audit, classes)


def for_csv(frame: pd.DataFrame, sep: str = "|") -> pd.DataFrame:
    """A copy with every list column (the tag sets) joined by ``sep``, for the CSV beside the Parquet file."""
    out = frame.copy()
    for column in out.columns:
        values = out[column].tolist()
        if values and all(isinstance(v, list) for v in values):
            clash = sorted({str(t) for v in values for t in v if sep in str(t)})
            if clash:
                raise DataError(
                    f"tag {clash[0]!r} contains the separator {sep!r}, so the CSV could not be read back; "
                    "choose another separator"
                )
            out[column] = [format_tags(map(str, v), sep) for v in values]
    return out
