"""Two-class and one-way noise on Gaussian classes: what the estimate reads where the truth is known exactly.

The shared text sets hold two-class data only with labelling-rule noise (wrench youtube/sms) or none to speak
of (imdb), so the two cases this script draws had no benchmark row: symmetric noise on two classes (every
synthetic mistake on a wrong label then repairs it, which the readings must count), and one-way noise, where
mistakes leave one class only (positives that were missed). With two classes the default
(``confused_sources="auto"``, since estimator version 5) makes the synthetic mistakes leave each class as
often as the data's confusions say; ``confused_sources="uniform"`` spreads them evenly, as before. Four
overlapping classes with 0.5 % symmetric noise show the cost of ``EstimateSettings(confused_sources="confusion")``
on nearly clean data with more classes. Six classes
with class-pair noise (class c given c + 1) show what ``EstimateSettings(mistake_origin="given")``, the
estimator before version 3, read there: mistakes made from a wrong label move it to c + 2;
``confusions_from="confident_joint"`` is where the estimator before version 4 sent the mistakes.

Each set: 4,000 samples in 64 dimensions, class means on the unit sphere scaled by the separation, unit
noise; the probe and the neighbour vote are labelaudit's own (``confident``, ``knn``), as the estimate reads
them. Six settings: the default, ``--lower-bound-cut doubted``, ``confused_sources="confusion"``, ``"uniform"``,
``mistake_origin="given"`` and ``confusions_from="confident_joint"``.

    python benchmarks/two_class_noise.py --out benchmarks/results/two_class_noise
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (the benchmarks folder is not a package)
from results_io import write_results  # noqa: E402

from labelaudit.estimate import EstimateSettings, estimate_error_rate  # noqa: E402

N, DIM = 4000, 64
SETTINGS = {
    "default": EstimateSettings(),
    "--lower-bound-cut doubted": EstimateSettings(lower_bound_cut="doubted"),
    "confused_sources=confusion": EstimateSettings(confused_sources="confusion"),
    "confused_sources=uniform": EstimateSettings(confused_sources="uniform"),
    "mistake_origin=given": EstimateSettings(mistake_origin="given"),
    "confusions_from=confident_joint": EstimateSettings(confusions_from="confident_joint"),
}
# (name, classes, noise kind, rate, separation)
CASES = [
    *[(f"2 classes, symmetric {r:.0%}, separation {s}", 2, "sym", r, s) for r in (0.06, 0.15, 0.3) for s in (0.6, 2)],
    *[(f"2 classes, one-way {r:.0%}, separation {s}", 2, "one-way", r, s) for r in (0.06, 0.15) for s in (0.6, 1, 2)],
    *[(f"4 classes, symmetric 0.5%, separation {s}", 4, "sym", 0.005, s) for s in (0.6, 1.0)],
    *[(f"6 classes, class-pair {r:.0%}, separation {s}", 6, "pair", r, s) for r in (0.1, 0.2) for s in (1, 2)],
]


def draw(classes: int, kind: str, rate: float, separation: float, seed: int) -> tuple[np.ndarray, ...]:
    """(features, given labels, true labels). "one-way": only class 0 is mislabelled, at twice ``rate``;
    "pair": each class c is mislabelled c + 1 at ``rate``."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, N)
    means = rng.normal(size=(classes, DIM))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    x = rng.normal(size=(N, DIM)) / np.sqrt(DIM) + means[truth] * separation / (2 * np.sqrt(2))
    if kind == "sym":
        flip = rng.random(N) < rate
        given = np.where(flip, (truth + rng.integers(1, classes, N)) % classes, truth)
    elif kind == "pair":
        given = np.where(rng.random(N) < rate, (truth + 1) % classes, truth)
    else:
        given = np.where((truth == 0) & (rng.random(N) < 2 * rate), 1, truth)
    return x.astype(np.float32), given, truth


def run_case(name: str, classes: int, kind: str, rate: float, separation: float, seed: int) -> dict[str, object]:
    x, given, truth = draw(classes, kind, rate, separation, seed)
    data = quality.features_only(name, x, given, truth, [f"class {c}" for c in range(classes)], "Gaussian classes")
    probs = quality.estimate_inputs(data, seed)
    wrong = given != truth
    row: dict[str, object] = {"set": name, "true_rate": round(float(wrong.mean()), 4)}
    everyone = np.ones(len(wrong), dtype=bool)
    for label, settings in SETTINGS.items():
        row[label] = quality.estimate_columns(estimate_error_rate(probs, given, settings=settings), wrong, everyone)
    print(json.dumps(row), flush=True)
    return row


def to_markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| set (true rate) | " + " | ".join(f"{label}: estimate [interval], flags, F1" for label in SETTINGS) + " |",
        "| --- | " + " | ".join("---" for _ in SETTINGS) + " |",
    ]
    for row in rows:
        cells = [quality.estimate_cell(row[label]) for label in SETTINGS]
        lines.append(f"| {row['set']} ({row['true_rate']:.1%}) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("LB: the summary calls the estimate a lower bound. Audit power is in the json.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/two_class_noise"))
    args = parser.parse_args()
    rows = [run_case(*case, seed=args.seed) for case in CASES]
    write_results(args.out, {"seed": args.seed, "rows": rows}, to_markdown(rows), indent=1)
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
