"""The verified-sample benchmark must keep running: a tiny synthetic set through its design and estimate loop."""

from __future__ import annotations

import importlib.util

from .bench_data import synthetic_bench_data
from .conftest import ROOT


def test_verify_benchmark_runs_draws_and_reports_coverage_and_width() -> None:
    spec = importlib.util.spec_from_file_location("verify_bench", ROOT / "benchmarks" / "verify.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data, given, true = synthetic_bench_data(n=300, noise_rate=0.15, seed=2)
    row = bench.run(data, n=60, repeats=3, seed=0, methods=("confident", "knn"))  # DeFT is what costs; not here
    assert row["rows"] == 300 and row["true_error_rate"] == round(float((given != true).mean()), 4)
    for kind in ("stratified", "simple"):
        assert 0.0 <= row[kind]["coverage"] <= 1.0 and 0.0 < row[kind]["mean_half_width"] < 0.5
    assert sum(s["drawn"] for s in row["strata"]) == 60 and row["strata"][0]["name"] == "flagged"
    markdown = bench.to_markdown([row])
    assert "labelaudit verify (stratified)" in markdown and "simple random sample" in markdown
