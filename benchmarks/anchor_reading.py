"""Study: the error rate the anchors imply, beside the shipped estimate (docs/benchmarks.md, "The rate the
anchors imply"). Runs benchmarks/quality.py as it is and, for each dataset, records the readings of the
first estimate it computes (the default consensus's): the shipped point and whether it is a lower bound, the
off-diagonal share of the anchor confusions at several anchor shares, and the line through 0.25 and 0.5 taken
at share 0 (``anchor_extrapolated_rate``, what ``EstimateSettings(lower_bound_rate="anchors")`` makes the
headline of a lower bound).

    python benchmarks/anchor_reading.py --out benchmarks/results/anchor_reading_youtube -- \\
        --rows tune --no-prompt-variant --datasets wrench_youtube

Everything after ``--`` is quality.py's own arguments (datasets, --synthetic, --seed, --embeddings ...).
Writes OUT.json (one record per dataset) and prints each record as it comes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from labelaudit.estimate import (  # noqa: E402
    ErrorEstimate,
    EstimateSettings,
    anchor_error_share,
    anchor_extrapolated_rate,
)

SHARES = (0.1, 0.15, 0.25, 0.5)
EXTRAPOLATED_FROM = EstimateSettings().anchor_rate_shares


def readings(pred_probs: np.ndarray, labels: np.ndarray, estimate: ErrorEstimate) -> dict[str, Any]:
    """The record for one estimate: what it read, what the anchors read, and what the opt-in would head with."""
    labels = np.asarray(labels, dtype=np.int64)
    extrapolated = anchor_extrapolated_rate(labels, pred_probs, EXTRAPOLATED_FROM)
    return {
        "point": round(float(estimate.rate), 4),
        "upper": round(float(estimate.upper), 4),
        "lower_bound": bool(estimate.is_lower_bound),
        **{f"anchors_{share}": round(anchor_error_share(labels, pred_probs, share), 4) for share in SHARES},
        "extrapolated": round(extrapolated, 4),
        "with_anchor_headline": round(max(float(estimate.rate), extrapolated), 4)
        if estimate.is_lower_bound
        else round(float(estimate.rate), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="results file stem (OUT.json)")
    args, quality_args = parser.parse_known_args()
    quality_args = [a for a in quality_args if a != "--"]

    import quality

    records: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    run_dataset, estimate_error_rate = quality.run_dataset, quality.estimate_error_rate

    def each_dataset(data: Any, rows: Any, seed: int) -> Any:
        current.update(name=data.name, truth=round(float((data.given != data.gold).mean()), 4))
        return run_dataset(data, rows, seed)

    def recorded(pred_probs: np.ndarray, labels: np.ndarray, *more: Any, **options: Any) -> ErrorEstimate:
        estimate = estimate_error_rate(pred_probs, labels, *more, **options)
        if current["name"] not in records:  # the first is the default consensus's estimate
            record = {"dataset": current["name"], "truth": current["truth"], **readings(pred_probs, labels, estimate)}
            records[current["name"]] = record
            print("READING", json.dumps(record), flush=True)
        return estimate

    quality.run_dataset, quality.estimate_error_rate = each_dataset, recorded
    scratch = Path(tempfile.mkdtemp(prefix="anchor_reading_"))  # quality.py's own tables: not this study's output
    sys.argv = [str(REPO / "benchmarks" / "quality.py"), *quality_args, "--out", str(scratch / "quality")]
    quality.main()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"quality_args": quality_args, "extrapolated_from": list(EXTRAPOLATED_FROM)}
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": list(records.values())}, indent=2))
    print(f"wrote {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
