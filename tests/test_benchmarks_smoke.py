"""Smoke runs of benchmarks/speed.py's core functions on tiny inputs, so the harness cannot rot."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, TINY_MODEL


@pytest.fixture(scope="module")
def speed() -> Any:
    spec = importlib.util.spec_from_file_location("speed_bench", ROOT / "benchmarks" / "speed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["speed_bench"] = module
    spec.loader.exec_module(module)
    return module


def _image_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*.png"))


def test_embedding_ratio_and_files(speed: Any, tiny_encoder: Any, image_folder: Path, tmp_path: Path) -> None:
    paths = _image_paths(image_folder)[:8]
    result = speed.measure_embedding(paths, tiny_encoder, batch_size=4, rounds=2, workers=0)
    assert result["images"] == 8 and len(result["rounds"]) == 2
    assert math.isfinite(result["ratio"]) and result["ratio"] > 0
    assert result["labelaudit_images_per_s"] > 0 and result["bare_images_per_s"] > 0
    assert result["max_abs_vector_diff"] < 1e-2  # both sides computed the same embeddings
    payload = speed.save("embed", result, "smoke", tmp_path / "speed_embed", quick=True)
    written = json.loads((tmp_path / "speed_embed.json").read_text())
    assert written["result"]["ratio"] == result["ratio"] and written["machine"]["nproc"] >= 1
    assert "**ratio**" in (tmp_path / "speed_embed.md").read_text()
    assert payload["benchmark"] == "embed"


def test_cached_rerun(speed: Any, image_folder: Path, tmp_path: Path) -> None:
    result = speed.measure_cache(image_folder, str(TINY_MODEL), tmp_path / "cache", warm_runs=1, methods="zeroshot")
    assert result["cold"]["cache"] == {"hits": 0, "embedded": 18}
    assert result["warm"][0]["cache"] == {"hits": 18, "embedded": 0}
    assert result["same_result"] and result["ratio_total"] > 0
    speed.save("cache", result, "smoke", tmp_path / "speed_cache", quick=True)
    assert set(json.loads((tmp_path / "speed_cache.json").read_text())["result"]) >= {"ratio_total", "cold", "warm"}


def test_scoring_scale(speed: Any, tmp_path: Path) -> None:
    rows = [speed.score_one(500, 5, method, dim=32) for method in ("deft", "confident", "zeroshot", "knn", "stage")]
    # one run through the real subprocess path: the peak RSS must come from the child
    rows += speed.run_scale([(500, 5)], ["consensus"], dim=32, threads=1, timeout=120)
    for row in rows:
        assert row["seconds"] is not None and row["seconds"] >= 0, row
        assert 0.0 <= row["flagged_share"] <= 1.0
    child = rows[-1]
    assert child["status"] == "ok" and child["peak_rss_mb"] > 10
    assert child["peak_rss_mb"] <= child["ru_maxrss_mb"] + 1
    stage = rows[4]
    assert stage["stage_methods"] == ["deft", "confident", "zeroshot", "knn"] and stage["flag_precision"] > 0.5
    for row in rows[:5]:
        row["status"] = "ok"
    payload = speed.save("scale", rows, "smoke", tmp_path / "speed_scale", quick=True)
    total = payload["scoring_stage_totals"][0]
    assert total["scoring_stage_s"] == stage["seconds"] and total["measured"] == "one process"
    assert (tmp_path / "speed_scale.png").stat().st_size > 1000
    assert "consensus" in (tmp_path / "speed_scale.md").read_text()


def test_estimate_cost_row(speed: Any) -> None:
    """The estimate row times the calibration after a scoring stage it ran itself, and reads the 10 % of
    labels the synthetic problem moved (separable clusters), so the time is of real work."""
    row = speed.score_one(500, 5, "estimate", dim=32)
    assert row["stage_cpu_s"] > 0 and row["cpu_s"] > 0 and row["seconds"] >= 0
    assert 0.05 <= row["estimated_error_rate"] <= 0.15, row
    _, findings = speed.scale_findings([{**row, "status": "ok", "peak_rss_mb": 1.0}])
    (line,) = [f for f in findings if f.startswith("estimate, 500 x 5:")]
    assert f"{row['cpu_s'] / row['stage_cpu_s']:.1%} of it" in line


def test_stream_memory_child_and_table(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("stream_bench", ROOT / "benchmarks" / "stream.py")
    assert spec is not None and spec.loader is not None
    stream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stream)
    manifest = tmp_path / "manifest.csv"
    stream.write_manifest(manifest, 700, classes=7)
    cold = stream.child(manifest, tmp_path / "cache")
    warm = stream.child(manifest, tmp_path / "cache")
    assert (cold["n"], cold["embedded"], cold["cached"]) == (700, 700, 0)
    assert (warm["embedded"], warm["cached"]) == (0, 700)
    assert cold["dtype"] == "float16" and cold["embeddings_mb"] == round(700 * 512 * 2 / 2**20, 1)
    assert cold["peak_rss_mb"] >= cold["rss_after_imports_mb"] > 0
    text = stream.markdown({"setup": "smoke", "rows": [{"run": "cold", **cold}], "findings": ["f"]})
    assert "| 700 | cold |" in text


def test_engines_subset_and_table(image_folder: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("engines_bench", ROOT / "benchmarks" / "engines.py")
    assert spec is not None and spec.loader is not None
    engines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engines)
    subset = engines.image_subset(4, tmp_path / "subset", image_folder)
    linked = sorted(p.relative_to(subset).as_posix() for p in subset.rglob("*") if p.is_symlink())
    classes = sorted(p.name for p in image_folder.iterdir() if p.is_dir())
    assert len(linked) == len(classes) * max(1, 4 // len(classes))
    rows = [
        {"engine": "local", "workers": 1, "images": 10, "embed_s": 2.0, "images_per_s": 5.0},
        {"engine": "ray", "workers": 2, "images": 10, "embed_s": 4.0, "images_per_s": 2.5},
    ]
    text = engines.markdown({"setup": "smoke", "rows": rows})
    assert "| ray | 2 | 10 | 4.0 | 2.5 | 0.50 |" in text


def test_identity_check_allows_only_the_added_summary_keys(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("identity_bench", ROOT / "benchmarks" / "identity.py")
    assert spec is not None and spec.loader is not None
    identity = importlib.util.module_from_spec(spec)
    sys.modules["identity_bench"] = identity  # its dataclasses look their module up there
    spec.loader.exec_module(identity)
    report = tmp_path / "r"
    report.mkdir()
    summary = {"dataset": {"n": 1}, "engine": "local"}
    (report / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (report / "run.json").write_text("{}")
    golden = identity.prefixed("report", identity.report_digests(report))
    assert not any("run.json" in name for name in golden)
    (report / "summary.json").write_text(json.dumps({**summary, "engine": "ray"}, indent=2) + "\n")
    assert identity.compare(golden, identity.prefixed("report", identity.report_digests(report))) == [
        "report/summary.json: differs"
    ]
    # A dotted added key reaches into nested objects; its siblings must still match.
    nested = {**summary, "error_rate": {"rate": 0.1, "details": {"isolated_mistakes_rate": 0.1}}}
    (report / "summary.json").write_text(json.dumps(nested, indent=2) + "\n")
    golden = identity.prefixed("report", identity.report_digests(report))
    added = json.loads(json.dumps(nested))
    added["error_rate"]["details"].update(anchor_inner_excess_z=-2.5)
    (report / "summary.json").write_text(json.dumps(added, indent=2) + "\n")
    assert identity.compare(golden, identity.prefixed("report", identity.report_digests(report))) == []
    added["error_rate"]["details"]["isolated_mistakes_rate"] = 0.2
    (report / "summary.json").write_text(json.dumps(added, indent=2) + "\n")
    assert identity.compare(golden, identity.prefixed("report", identity.report_digests(report))) == [
        "report/summary.json: differs"
    ]
