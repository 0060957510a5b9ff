"""How far the default estimate strays from the truth from one noise draw to the next, and how often its
interval holds the truth: the synthetic rows of ``quality_synthetic_*`` drawn with many seeds.

The report rows are one draw (noise seed 0). A single draw can land the estimate within 3 points or 5
points off by luck of which samples were flipped, and can put the truth just outside a 95 % interval that
would hold it 19 times in 20. This study draws the symmetric and class-pair noise of the synthetic rows
(wrench_trec and the 2,000-row 20news slice with MiniLM, CIFAR-10N's clean labels on the offline proxy
features) with seeds 1 to 21, never the report seed 0, and per row counts the draws whose point is within
3 points, whose interval holds the truth, and that are called lower bounds:

    python benchmarks/draw_spread.py --out benchmarks/results/draw_spread

Instance-dependent noise is left out: ``quality.synthetic_noise`` makes it without a random draw (the
samples nearest another class's mean), so every seed gives the same row. Probabilities are cached per
seed under ``--cache`` (``{cache}/seed{S}``, anchor_gate's layout), so a rerun only re-reads the estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anchor_gate  # noqa: E402  (the benchmarks folder is not a package)
import quality  # noqa: E402
import tune_settings  # noqa: E402
from results_io import write_results  # noqa: E402

from labelaudit.estimate import EstimateSettings  # noqa: E402

WITHIN = 0.03  # the target for heavy noise: the point within 3 points of the truth


def one_draw(data: quality.BenchData, probs: dict[str, np.ndarray]) -> dict[str, object]:
    """The default estimate of one synthetic row, as an audit reads it."""
    estimate = anchor_gate.AuditInputs.of(data, probs).estimate(data.given, EstimateSettings())
    return {
        "truth": float(np.mean(data.given != data.gold)),
        "rate": estimate.rate,
        "lower": estimate.lower,
        "upper": estimate.upper,
        "lower_bound": estimate.is_lower_bound,
        "headline_reading": estimate.details["headline_reading"],
    }


def summarise(draws: list[dict[str, object]]) -> dict[str, object]:
    """One row's draws in figures: the point's bias and spread against the truth, and how many draws were
    within WITHIN of it, held it in the interval, were called lower bounds, or missed it unannounced
    (the truth outside the interval of a draw not called a lower bound)."""
    errors = np.array([float(d["rate"]) - float(d["truth"]) for d in draws])  # type: ignore[arg-type]
    held = [float(d["lower"]) <= float(d["truth"]) <= float(d["upper"]) for d in draws]  # type: ignore[arg-type]
    called = [bool(d["lower_bound"]) for d in draws]
    return {
        "draws": len(draws),
        "mean_error": round(float(errors.mean()), 4),
        "error_sd": round(float(errors.std(ddof=1)) if len(draws) > 1 else 0.0, 4),
        "worst_error": round(float(errors[np.argmax(np.abs(errors))]), 4),
        "within_3_points": int(np.sum(np.abs(errors) <= WITHIN + 1e-9)),
        "truth_in_interval": int(sum(held)),
        "lower_bound_calls": int(sum(called)),
        "missed_unannounced": int(sum(not h and not c for h, c in zip(held, called, strict=True))),
    }


def to_markdown(summaries: dict[str, dict[str, object]], seeds: list[int]) -> str:
    lines = [
        f"Noise seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} draws per row; the report rows are seed 0).",
        "",
        "| row | mean error (points) | spread (sd) | worst draw | within 3 points | truth in interval "
        "| called a lower bound | truth outside, not called one |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in summaries.items():
        n = s["draws"]
        lines.append(
            f"| {name} | {100 * float(s['mean_error']):+.1f} | {100 * float(s['error_sd']):.1f} "  # type: ignore[arg-type]
            f"| {100 * float(s['worst_error']):+.1f} | {s['within_3_points']}/{n} "  # type: ignore[arg-type]
            f"| {s['truth_in_interval']}/{n} | {s['lower_bound_calls']}/{n} | {s['missed_unannounced']}/{n} |"
        )
    counted = ("draws", "within_3_points", "truth_in_interval", "lower_bound_calls", "missed_unannounced")
    total = {key: sum(int(s[key]) for s in summaries.values()) for key in counted}  # type: ignore[call-overload]
    n = total["draws"]
    lines.append(
        f"| all rows | | | | {total['within_3_points']}/{n} | {total['truth_in_interval']}/{n} "
        f"| {total['lower_bound_calls']}/{n} | {total['missed_unannounced']}/{n} |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="*", type=int, default=list(range(1, 22)), help="noise seeds (never 0)")
    parser.add_argument("--synthetic", nargs="*", default=["sym", "asym"], choices=["sym", "asym"])
    parser.add_argument("--rates", nargs="*", type=float, default=[0.1, 0.2, 0.4])
    parser.add_argument("--cifar-features", type=Path, default=tune_settings.CIFAR_FEATURES)
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/labelaudit").expanduser())
    parser.add_argument("--cache", type=Path, default=Path("/tmp/labelaudit-draw-spread"))
    parser.add_argument("--out", type=Path, default=quality.RESULTS / "draw_spread")
    args = parser.parse_args()
    if 0 in args.seeds:
        parser.error("seed 0 draws the report rows; this study must not read them")
    draws: dict[str, list[dict[str, object]]] = {}
    for seed in args.seeds:
        sets = argparse.Namespace(
            datasets=[],
            rows="tune",
            cifar=[],
            cifar_clean=False,
            cifar_features=args.cifar_features,
            synthetic=args.synthetic,
            rates=args.rates,
            gaussian=False,
            synthetic_seed=seed,
            cache_dir=args.cache_dir,
        )
        for data in anchor_gate.load_sets(sets):
            draw = one_draw(data, anchor_gate.cached_probabilities(data, args.cache / f"seed{seed}", 0))
            print(json.dumps({"seed": seed, "set": data.name, **draw}), flush=True)
            draws.setdefault(data.name, []).append({"seed": seed, **draw})
    summaries = {name: summarise(rows) for name, rows in draws.items()}
    meta = {"seeds": args.seeds, "scorer_seed": 0}
    write_results(
        args.out, {"meta": meta, "summaries": summaries, "draws": draws}, to_markdown(summaries, args.seeds), indent=1
    )
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
