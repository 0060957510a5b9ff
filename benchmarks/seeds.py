"""How far the calibrated estimate moves with ``--seed``: the same data audited with five seeds.

    python benchmarks/seeds.py                                   # the shared text sets, seeds 0-4
    python benchmarks/seeds.py --embeddings X.npy --labels L.csv --name cifar10n_worst   # precomputed features

The seed sets the scorers' cross-validation folds and DeFT's initialisation, nothing else; the estimate is
computed from their probabilities without randomness of its own. A CI gate on the estimate should not flip
with the seed, so what matters here is the spread of the point (max - min over the seeds) against the
interval the summary prints, and whether "lower bound" is said on every seed or only some. Only the four
default methods run (no peers), on every row, as an audit sees them. Results go to
benchmarks/results/seeds.json and .md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from quality import (
    ANCHORS_ROW,
    DEFAULT_MEMBERS,
    DEFAULT_ROW,
    TEXT_SETS,
    BenchData,
    calibrated_row,
    labelaudit_methods,
    load_datasets,
)
from results_io import write_results  # noqa: E402

from labelaudit.estimate import EstimateSettings

RESULTS = Path(__file__).parent / "results"


def audit_with_seed(data: BenchData, seed: int) -> dict[str, object]:
    calls = labelaudit_methods(data, seed)
    results = {name: calls[name]() for name in DEFAULT_MEMBERS if name in calls}
    wrong = data.given != data.gold
    every_row = np.ones(len(wrong), dtype=bool)
    row = calibrated_row(data, results, wrong, every_row, method=DEFAULT_ROW)
    # The class-pair opt-in (audit --lower-bound-rate anchors): the default's point wherever that is no lower bound.
    anchors = EstimateSettings(lower_bound_rate="anchors")
    opted = calibrated_row(data, results, wrong, every_row, anchors, ANCHORS_ROW, with_estimate=False)
    return {
        "dataset": data.name,
        "seed": seed,
        "estimate": row["estimate_whole_set"],
        "lower": row["estimate_lower"],
        "upper": row["estimate_upper"],
        "is_lower_bound": row["estimate_is_lower_bound"],
        "truth": row["true_rate_whole_set"],
        "flagged": row["flagged"],
        "f1": row["f1"],
        "estimate_anchors": opted["estimate_whole_set"],
    }


def to_markdown(rows: list[dict[str, object]]) -> str:
    frame = pd.DataFrame(rows)
    lines = [
        "| dataset | truth | estimate per seed | spread (max - min) | median interval | lower bound said "
        "| flagged per seed | `--lower-bound-rate anchors` per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, group in frame.groupby("dataset", sort=False):
        group = group.sort_values("seed")
        estimates = group["estimate"].to_numpy()
        lines.append(
            f"| {name} | {group['truth'].iloc[0]:.1%} | "
            + ", ".join(f"{e:.1%}" for e in estimates)
            + f" | {estimates.max() - estimates.min():.1%} | "
            f"{group['lower'].median():.1%}-{group['upper'].median():.1%} | "
            f"{int(group['is_lower_bound'].sum())} of {len(group)} | "
            + ", ".join(str(int(f)) for f in group["flagged"])
            + " | "
            + (", ".join(f"{e:.1%}" for e in group["estimate_anchors"]) if "estimate_anchors" in group else "-")
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets", nargs="*", default=None, help=f"text sets (default: {' '.join(TEXT_SETS)} 20news_slice2000)"
    )
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--embeddings", type=Path, help="precomputed embeddings (.npy or .parquet)")
    parser.add_argument("--labels", type=Path, help="labels for --embeddings (given_label, gold_label)")
    parser.add_argument("--class-names", type=Path, help="class names for --embeddings")
    parser.add_argument("--name", help="dataset name for --embeddings")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/labelaudit").expanduser())
    parser.add_argument("--out", type=Path, default=RESULTS / "seeds")
    args = parser.parse_args()

    datasets = load_datasets(args, args.datasets or [*TEXT_SETS, "20news_slice2000"])
    rows = [audit_with_seed(data, seed) for data in datasets for seed in args.seeds]
    table = to_markdown(rows)
    write_results(args.out, {"seeds": args.seeds, "results": rows}, table)
    print(table)


if __name__ == "__main__":
    main()
