"""benchmarks/seeds.py backs the seed table in docs/benchmarks.md: a tiny synthetic run through it."""

from __future__ import annotations

from .bench_data import seeds, synthetic_bench_data


def test_seeds_records_the_default_and_the_anchors_estimate_per_seed() -> None:
    data, given, true = synthetic_bench_data(n=240, noise_rate=0.1, seed=4)
    rows = [seeds.audit_with_seed(data, seed) for seed in (0, 1)]
    for row in rows:
        assert row["lower"] <= row["estimate"] <= row["upper"]
        assert row["truth"] == round(float((given != true).mean()), 4)
        # The opt-in heads only a lower bound, and only with more than the point.
        if row["is_lower_bound"]:
            assert row["estimate_anchors"] >= row["estimate"]
        else:
            assert row["estimate_anchors"] == row["estimate"]
    table = seeds.to_markdown(rows)
    line = next(line for line in table.splitlines() if line.startswith("| synthetic |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert len(cells) == 8 and cells[-1] == ", ".join(f"{r['estimate_anchors']:.1%}" for r in rows)
