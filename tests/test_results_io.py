"""benchmarks/results_io.py writes every benchmark's committed results: both files, in the JSON layout the
committed files have, and never a half-written file where a reader (the docs, a diff) looks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import results_io  # noqa: E402


def test_both_files_are_written_with_the_asked_indent(tmp_path: Path) -> None:
    stem = tmp_path / "new" / "folder" / "study"
    payload = {"meta": {"seed": 1}, "rows": [{"a": 1}]}
    results_io.write_results(stem, payload, "| a |\n", indent=1)
    assert json.loads(stem.with_suffix(".json").read_text()) == payload
    assert stem.with_suffix(".json").read_text() == json.dumps(payload, indent=1) + "\n"
    assert stem.with_suffix(".md").read_text() == "| a |\n"
    assert sorted(p.name for p in stem.parent.iterdir()) == ["study.json", "study.md"]  # no temporary left


def test_a_write_that_fails_leaves_the_old_file_whole(tmp_path: Path) -> None:
    stem = tmp_path / "study"
    results_io.write_results(stem, {"rows": [1]}, "old\n")
    # A lone surrogate cannot be encoded: the write fails after the file is opened, which truncates a plain one.
    with pytest.raises(UnicodeEncodeError):
        results_io.write_results(stem, {"rows": [2]}, "new \ud800\n")
    assert stem.with_suffix(".md").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.json", "study.md"]
