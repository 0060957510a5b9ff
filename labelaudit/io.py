"""Atomic file writes: a reader never sees a half-written output, and a killed run leaves none behind."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import LabelAuditError

# Present in a report folder while report.write_report writes it. A folder holding it was left by a run
# stopped mid-write: readers refuse it, and the next audit may replace it without --overwrite (the files
# are labelaudit's own). Here, not in report.py, so that `labelaudit view` can check it without torch.
WRITING_MARKER = ".labelaudit-writing"


def refuse_incomplete_report(folder: Path) -> None:
    if (Path(folder) / WRITING_MARKER).exists():
        raise LabelAuditError(
            f"{folder} holds an incomplete report: a run is writing it or was stopped while writing it. "
            "Run the audit again; it replaces the incomplete files."
        )


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes owner-only files; a report should get the permissions any new file would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(target: Path, writer: Callable[[Path], Any]) -> None:
    with atomic_path(target) as tmp:
        writer(tmp)


def write_text_atomic(target: Path, text: str) -> None:
    write_atomic(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(target: Path, payload: Any) -> None:
    write_text_atomic(target, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def write_table_atomic(frame: pd.DataFrame, stem: Path) -> None:
    """Write ``stem.parquet`` and ``stem.csv`` with the same rows."""
    write_atomic(stem.with_suffix(".parquet"), lambda tmp: frame.to_parquet(tmp, index=False, engine="pyarrow"))
    write_atomic(stem.with_suffix(".csv"), lambda tmp: frame.to_csv(tmp, index=False))
