"""Where the anchors' reading can head a lower bound: the estimate's readings beside the neighbours' purity.

The anchors' rate (``EstimateSettings.lower_bound_rate="anchors"``) reads class-pair noise that the probe
learns, but it assumes that the samples the methods are surest of are of the class they are predicted as.
On features that barely separate the classes that fails, and it reads clean labels as noisy. This study
puts each set's default estimate, the anchors' reading and the chance-corrected purity of the probe's
predictions among each sample's two nearest neighbours side by side, on the *tune* rows of the real sets,
on synthetic noise drawn with seed 1 (never the report rows' seed 0) and on CIFAR-10N's clean labels:

    python benchmarks/anchor_gate.py --cifar aggre random1 worst --synthetic sym asym inst \\
        --out benchmarks/results/anchor_gate

``--gaussian`` adds four Gaussian classes at 16, 128 and 384 dimensions (``--datasets --no-cifar-clean
--gaussian`` for those alone). ``--rows all`` reads the real sets whole, as an audit of them does (the
check that the default moves no real set's headline: ``--rows all --cifar aggre random1 worst random2
random3 --no-cifar-clean``).

Probabilities are cached per set in ``--cache`` (a rerun with other settings skips the scoring).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (the benchmarks folder is not a package)
import tune_settings  # noqa: E402
from results_io import write_results  # noqa: E402

from labelaudit.estimate import ErrorEstimate, EstimateSettings, estimate_error_rate  # noqa: E402
from labelaudit.neighbour_reading import chance_purity, predicted_purity  # noqa: E402

METHODS = ("confident", "knn", "zeroshot")


def subset(data: quality.BenchData, keep: np.ndarray, name: str) -> quality.BenchData:
    return dataclasses.replace(
        data,
        name=name,
        embeddings=data.embeddings[keep],
        given=data.given[keep],
        gold=data.gold[keep],
        ids=data.ids[keep],
    )


def load_sets(args: argparse.Namespace) -> list[quality.BenchData]:
    """tune_settings' sets (the text sets, CIFAR-10N's label sets, the synthetic rows), with the real sets cut
    to ``--rows``, then CIFAR-10N's clean labels and the Gaussian classes before the synthetic rows."""
    loaded = tune_settings.load_sets(args)
    real_names = {*args.datasets, *(f"cifar10n_{labels}" for labels in args.cifar)}
    real = [
        subset(data, quality.report_rows(data.ids, args.rows), f"{data.name} ({args.rows})")
        for data in loaded
        if data.name in real_names
    ]
    extra: list[quality.BenchData] = []
    if args.cifar_clean:
        aggre = quality.load_precomputed(
            args.cifar_features / "features.npy",
            args.cifar_features / "labels_aggre.csv",
            quality.read_class_names(args.cifar_features / "classes.txt"),
        )
        extra.append(dataclasses.replace(aggre, given=aggre.gold, name="cifar10n [clean labels]"))
    if args.gaussian:
        extra += gaussian_sets()
    return real + extra + [data for data in loaded if data.name not in real_names]


# (dimensions, spreads of the class means): where the classes barely separate, and where they do.
GAUSSIAN_CASES = ((16, (0.0, 0.2, 0.3, 0.45)), (128, (0.0, 0.1, 0.15, 0.25)), (384, (0.0, 0.06, 0.1, 0.15)))


def gaussian_sets() -> list[quality.BenchData]:
    """Four Gaussian classes (2,000 unit-length rows), clean and with a quarter of the labels moved to the next
    class, at the dimensions and spreads of ``GAUSSIAN_CASES``: how the purity above chance behaves where the
    truth is known and no shared set was used to choose anything."""
    sets = []
    for dim, spreads in GAUSSIAN_CASES:
        for spread in spreads:
            for share in (0.0, 0.25):
                rng = np.random.default_rng(3)
                truth = rng.integers(0, 4, 2000)
                x = rng.normal(size=(4, dim))[truth] * spread + rng.normal(size=(2000, dim))
                x /= np.linalg.norm(x, axis=1, keepdims=True)
                given = np.where(rng.random(2000) < share, (truth + 1) % 4, truth)
                name = f"gaussian {dim}-d, spread {spread}, class-pair {share:.0%}"
                names = [f"c{c}" for c in range(4)]
                sets.append(
                    quality.BenchData(name, x.astype(np.float32), given, truth, names, None, None, np.arange(2000), "")
                )
    return sets


def cached_probabilities(data: quality.BenchData, cache: Path, seed: int) -> dict[str, np.ndarray]:
    """Each of ``METHODS``' out-of-sample probabilities for ``data`` (cached while its labels match)."""
    path = cache / f"{data.name}.npz"
    if path.is_file():
        stored = np.load(path)
        if np.array_equal(stored["given"], data.given):
            return {m: stored[m] for m in METHODS if m in stored}
    methods = quality.labelaudit_methods(data, seed)
    probs = {m: methods[m]().pred_probs for m in METHODS if m in methods}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, given=data.given, **probs)
    return probs


@dataclasses.dataclass(frozen=True)
class AuditInputs:
    """What an audit hands the estimate, built from ``cached_probabilities``: the default methods' mean
    probabilities, zero-shot's as the label-free view, each sample's two nearest neighbours and the probe's
    predicted classes (the neighbours' purity is read from them)."""

    pred_probs: np.ndarray
    label_free: np.ndarray | None
    pairs: np.ndarray
    predicted: np.ndarray

    @classmethod
    def of(cls, data: quality.BenchData, probs: dict[str, np.ndarray]) -> AuditInputs:
        settings = EstimateSettings()
        return cls(
            pred_probs=np.mean([probs[m] for m in settings.methods], axis=0),
            label_free=probs.get("zeroshot"),
            pairs=quality.neighbour_pairs(data, settings),
            predicted=np.argmax(probs["confident"], axis=1),
        )

    def estimate(self, given: np.ndarray, settings: EstimateSettings) -> ErrorEstimate:
        return estimate_error_rate(
            self.pred_probs,
            given,
            settings=settings,
            label_free_probs=self.label_free,
            neighbour_pairs=self.pairs,
            neighbour_predictions=self.predicted,
        )


def study(data: quality.BenchData, probs: dict[str, np.ndarray]) -> dict[str, object]:
    inputs = AuditInputs.of(data, probs)
    pairs, predicted, mean = inputs.pairs, inputs.predicted, inputs.pred_probs
    wrong = data.given != data.gold
    row: dict[str, object] = {"set": data.name, "samples": len(wrong), "true_rate": round(float(wrong.mean()), 4)}
    compared = {
        "default": EstimateSettings(),
        "isolated": EstimateSettings(lower_bound_rate="isolated"),
        "anchors": EstimateSettings(lower_bound_rate="anchors"),
    }
    for label, chosen in compared.items():
        estimate = inputs.estimate(data.given, chosen)
        row[label] = {
            "rate": round(estimate.rate, 4),
            "interval": [round(estimate.lower, 4), round(estimate.upper, 4)],
            "lower_bound": estimate.is_lower_bound,
            "headline_reading": estimate.details["headline_reading"],
        }
        if label == "default":
            row["anchor_rate"] = estimate.details.get("anchor_extrapolated_rate")
            row["anchors_count"] = estimate.details.get("anchor_reading_counts")
            row["anchor_standard_error"] = estimate.details.get("anchor_standard_error")
            row["anchors_backed"] = estimate.details.get("anchor_reading_backed")
            row["audit_power"] = round(estimate.power.auroc, 4)
    # What the separation check reads, from the unrounded figures (the details hold them to 6 digits).
    purity, chance = predicted_purity(predicted, pairs), chance_purity(predicted, pairs, mean.shape[1])
    row["predicted_purity"] = round(purity, 4)
    row["chance_purity"] = round(chance, 4)
    row["purity_above_chance"] = round((purity - chance) / (1 - chance), 4)
    row["probe_accuracy_vs_given"] = round(float(np.mean(predicted == data.given)), 4)
    return row


def to_markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| set (true rate) | default [interval] | isolated | anchors' reading ± standard error | backed "
        "| --lower-bound-rate anchors | audit power | predicted purity (chance) | purity above chance |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        d, i, a = r["default"], r["isolated"], r["anchors"]
        lb = " LB" if d["lower_bound"] else ""
        anchor = "-" if r["anchor_rate"] is None else f"{r['anchor_rate']:.1%}"
        if r["anchor_standard_error"] is not None:
            anchor += f" ± {r['anchor_standard_error']:.1%}"
        backed = {None: "-", True: "yes", False: "no"}[r["anchors_backed"]]
        lines.append(
            f"| {r['set']} ({r['true_rate']:.1%}) "
            f"| {d['rate']:.1%} [{d['interval'][0]:.1%}, {d['interval'][1]:.1%}]{lb} "
            f"| {i['rate']:.1%} | {anchor} | {backed} | {a['rate']:.1%} | {r['audit_power']:.2f} "
            f"| {r['predicted_purity']:.2f} ({r['chance_purity']:.3f}) | {r['purity_above_chance']:.2f} |"
        )
    lines += [
        "",
        "Backed: the anchors read more than the point beyond 1.645 standard errors and the purity above chance is "
        "at least the line (EstimateSettings.anchor_min_purity_above_chance); the default follows them there.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets", nargs="*", default=tune_settings.TEXT_SETS, help="shared text sets, real noise (tune rows)"
    )
    parser.add_argument("--rows", choices=["tune", "all"], default="tune", help="the real sets' rows")
    parser.add_argument("--cifar", nargs="*", default=[], choices=["aggre", "random1", "worst", "random2", "random3"])
    parser.add_argument("--no-cifar-clean", dest="cifar_clean", action="store_false", help="skip the clean labels")
    parser.add_argument("--cifar-features", type=Path, default=tune_settings.CIFAR_FEATURES)
    parser.add_argument("--synthetic", nargs="*", default=[], choices=["sym", "asym", "inst"])
    parser.add_argument("--rates", nargs="*", type=float, default=[0.1, 0.2, 0.4])
    parser.add_argument("--gaussian", action="store_true", help="also the Gaussian classes of GAUSSIAN_CASES")
    parser.add_argument("--synthetic-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the scorers' seed")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/labelaudit").expanduser())
    parser.add_argument("--cache", type=Path, default=Path("/tmp/labelaudit-anchor-gate"))
    parser.add_argument("--out", type=Path, default=quality.RESULTS / "anchor_gate")
    args = parser.parse_args()
    rows = []
    for data in load_sets(args):
        row = study(data, cached_probabilities(data, args.cache, args.seed))
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta = {"synthetic_seed": args.synthetic_seed, "seed": args.seed}
    write_results(args.out, {"meta": meta, "rows": rows}, to_markdown(rows), indent=1)
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
