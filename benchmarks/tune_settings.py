"""Estimator settings side by side on the *tune* rows: where a default of ``EstimateSettings`` is chosen.

quality.py reports the default on the report rows; this script is how a default is chosen without looking
at them. For each set it computes the probabilities the estimate reads (``EstimateSettings().methods``:
labelaudit's probe and neighbour vote, out of sample), then runs every setting in ``SETTINGS`` on them:

- the shared text sets (MiniLM through the embedding cache, as quality.py) and the 20news slice;
- CIFAR-10N aggre / random1 / worst on the offline proxy features of ``cifar10n_features.py`` (``--cifar``);
- synthetic noise drawn with ``--synthetic-seed`` (1: never the report rows' seed 0) on wrench_trec, the
  20news slice and CIFAR-10N's clean labels (``--synthetic``).

The estimate sees every row, as an audit does; its error rate is compared with the truth on every row, the
flags' F1 on the tune rows. The flags here are the estimate's own cut ranked by its error probabilities
(``ErrorEstimate.is_issue``); an audit ranks by the consensus of all methods, so F1 here is for comparing
settings, not for quoting against quality.py. Probabilities are cached in ``--cache`` (a rerun with other
settings skips the scoring). Zero-shot is not among them, so the intervals here leave out its label-free
upper end (``EstimateSettings.label_free_methods``, estimator version 6), which moves no point, flag or
lower-bound call; quality.py's intervals include it.

    python benchmarks/tune_settings.py --cifar aggre random1 worst --synthetic sym asym inst \\
        --out benchmarks/results/tune_settings
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
from results_io import write_results  # noqa: E402

from labelaudit.estimate import EstimateSettings, estimate_error_rate  # noqa: E402

SETTINGS = {
    "default": EstimateSettings(),
    "confusions_from=confident_joint": EstimateSettings(confusions_from="confident_joint"),
    "anchor_share=0.35": EstimateSettings(anchor_share=0.35),
    "anchor_share=0.7": EstimateSettings(anchor_share=0.7),
    "symmetric_flatness=None": EstimateSettings(symmetric_flatness=None),
    "confused_sources=confusion": EstimateSettings(confused_sources="confusion"),
    "confused_sources=uniform": EstimateSettings(confused_sources="uniform"),
    "mistake_origin=given": EstimateSettings(mistake_origin="given"),
    "min_injected_share=0.15": EstimateSettings(min_injected_share=0.15),
    "min_injected_share=0.2": EstimateSettings(min_injected_share=0.2),
    "destination_smoothing=0.05": EstimateSettings(destination_smoothing=0.05),
}
TEXT_SETS = [*quality.TEXT_SETS, "20news_slice2000"]
SYNTHETIC_SETS = ["wrench_trec", "20news_slice2000"]
CIFAR_FEATURES = Path("/tmp/cifar10n_features")


def load_sets(args: argparse.Namespace) -> list[quality.BenchData]:
    sets: list[quality.BenchData] = []
    texts = list(dict.fromkeys(args.datasets + (SYNTHETIC_SETS if args.synthetic else [])))
    if texts:
        import torch

        from labelaudit.encoders.sentence import SentenceEncoder

        encoder = SentenceEncoder("all-MiniLM-L6-v2", torch.device("cpu"))
        loaded = {name: quality.load_text_set(name, encoder, args.cache_dir) for name in texts}
        sets += [loaded[name] for name in args.datasets]
    cifar: dict[str, quality.BenchData] = {}
    if args.cifar or args.synthetic:
        names = quality.read_class_names(args.cifar_features / "classes.txt")
        for labels in sorted(set(args.cifar) | ({"aggre"} if args.synthetic else set())):
            cifar[labels] = quality.load_precomputed(
                args.cifar_features / "features.npy",
                args.cifar_features / f"labels_{labels}.csv",
                names,
                f"cifar10n_{labels}",
            )
        sets += [cifar[labels] for labels in args.cifar]
    bases = [loaded[name] for name in SYNTHETIC_SETS] + [cifar["aggre"]] if args.synthetic else []
    for base in bases:  # synthetic noise on the gold labels (CIFAR-10N's clean ones)
        clean = dataclasses.replace(base, given=base.gold, name=base.name.replace("_aggre", ""))
        sets += [
            quality.synthetic_noise(clean, mode, rate, args.synthetic_seed)
            for mode in args.synthetic
            for rate in args.rates
        ]
    return sets


def cached_estimate_inputs(data: quality.BenchData, cache: Path, seed: int) -> np.ndarray:
    """``quality.estimate_inputs`` for ``data``, cached per set in ``cache`` (reused while its labels match)."""
    path = cache / f"{data.name}.npz"
    if path.is_file():
        stored = np.load(path)
        if np.array_equal(stored["given"], data.given):
            return stored["probs"]
    probs = quality.estimate_inputs(data, seed)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, probs=probs, given=data.given)
    return probs


def evaluate(data: quality.BenchData, probs: np.ndarray) -> dict[str, object]:
    wrong = data.given != data.gold
    tune = quality.report_rows(data.ids, "tune")
    row: dict[str, object] = {"set": data.name, "samples": len(wrong), "true_rate": round(float(wrong.mean()), 4)}
    for label, settings in SETTINGS.items():
        estimate = estimate_error_rate(probs, data.given, settings=settings)
        row[label] = {**quality.estimate_columns(estimate, wrong, tune), "wrong": int(wrong[tune].sum())}
    return row


def changed_fields() -> dict[str, dict[str, object]]:
    """Each setting as the fields it changes from the default (for the results' meta)."""
    default = dataclasses.asdict(EstimateSettings())
    return {
        label: {k: v for k, v in dataclasses.asdict(settings).items() if v != default[k]}
        for label, settings in SETTINGS.items()
    }


def to_markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "Estimate [interval] (LB: said to be a lower bound), flags / wrong labels and flag F1 on the tune rows.",
        "",
        "| set (true rate) | " + " | ".join(SETTINGS) + " |",
        "| --- | " + " | ".join("---" for _ in SETTINGS) + " |",
    ]
    for row in rows:
        cells = [quality.estimate_cell(row[label]) for label in SETTINGS]
        lines.append(f"| {row['set']} ({row['true_rate']:.1%}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=TEXT_SETS, help="shared text sets, real noise")
    parser.add_argument("--cifar", nargs="*", default=[], choices=["aggre", "random1", "worst"])
    parser.add_argument("--cifar-features", type=Path, default=CIFAR_FEATURES)
    parser.add_argument("--synthetic", nargs="*", default=[], choices=["sym", "asym", "inst"])
    parser.add_argument("--rates", nargs="*", type=float, default=[0.1, 0.2, 0.4])
    parser.add_argument("--synthetic-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the scorers' seed")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/labelaudit").expanduser())
    parser.add_argument("--cache", type=Path, default=Path("/tmp/labelaudit-tune-settings"))
    parser.add_argument("--out", type=Path, default=quality.RESULTS / "tune_settings")
    args = parser.parse_args()
    rows = []
    for data in load_sets(args):
        row = evaluate(data, cached_estimate_inputs(data, args.cache, args.seed))
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta = {"synthetic_seed": args.synthetic_seed, "seed": args.seed, "settings": changed_fields()}
    write_results(args.out, {"meta": meta, "rows": rows}, to_markdown(rows), indent=1)
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
