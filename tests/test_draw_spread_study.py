"""benchmarks/draw_spread.py backs the seed-to-seed figures of docs/benchmarks.md: its counts must be what
the draws say, and it must refuse to read the report rows' noise seed."""

from __future__ import annotations

import sys

import pytest

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import draw_spread  # noqa: E402


def _draw(rate: float, lower: float, upper: float, lower_bound: bool, truth: float = 0.2) -> dict[str, object]:
    return {"truth": truth, "rate": rate, "lower": lower, "upper": upper, "lower_bound": lower_bound}


def test_the_summary_counts_each_kind_of_draw() -> None:
    draws = [
        _draw(0.21, 0.18, 0.25, False),  # within 3 points, held
        _draw(0.25, 0.22, 0.30, False),  # 5 points high, truth below the interval, not called a lower bound
        _draw(0.10, 0.05, 0.15, True),  # 10 points low, outside, but called a lower bound
        _draw(0.23, 0.20, 0.26, False),  # exactly 3 points high, truth on the lower end
    ]
    summary = draw_spread.summarise(draws)
    assert summary["draws"] == 4
    assert summary["within_3_points"] == 2
    assert summary["truth_in_interval"] == 2
    assert summary["lower_bound_calls"] == 1
    assert summary["missed_unannounced"] == 1
    assert summary["worst_error"] == pytest.approx(-0.10)
    assert summary["mean_error"] == pytest.approx((0.01 + 0.05 - 0.10 + 0.03) / 4, abs=1e-4)
    table = draw_spread.to_markdown({"row": summary}, [1, 2, 3, 4])
    assert "| row | -0.2 |" in table and "| all rows | | | | 2/4 | 2/4 | 1/4 | 1/4 |" in table


def test_the_report_seed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["draw_spread.py", "--seeds", "0", "1"])
    with pytest.raises(SystemExit) as refused:
        draw_spread.main()
    assert refused.value.code == 2
