"""Reliability as a user meets it: reruns give the same bytes, and a killed run leaves nothing half-done."""

from __future__ import annotations

import json
from pathlib import Path

from labelaudit.cli import main

from .conftest import SAMPLE_TEXT


def test_same_inputs_give_byte_identical_reports_and_only_run_json_differs(tmp_path: Path) -> None:
    def audit(name: str, cache: str) -> Path:
        out = tmp_path / name
        args = ["audit", str(SAMPLE_TEXT), "--out", str(out), "--cache-dir", str(tmp_path / cache), "--quiet"]
        assert main(args) == 0
        return out

    first = audit("first", "cache-a")
    second = audit("second", "cache-b")  # a fresh cache: everything computed again
    warm = audit("warm", "cache-a")  # everything read back from the cache
    names = sorted(p.name for p in first.iterdir())
    assert "run.json" in names and "summary.json" in names and "report.html" in names
    for other in (second, warm):
        assert sorted(p.name for p in other.iterdir()) == names
        for name in names:
            if name != "run.json":
                assert (other / name).read_bytes() == (first / name).read_bytes(), f"{other.name}/{name}"
    run_first = json.loads((first / "run.json").read_text())
    run_warm = json.loads((warm / "run.json").read_text())
    assert run_first["cache"]["embedded"] == 48 and run_warm["cache"]["hits"] == 48
    assert set(run_warm["scores_from_cache"].values()) == {True}
    assert {"started_at", "finished_at", "timings_s", "platform"} <= set(run_first)
