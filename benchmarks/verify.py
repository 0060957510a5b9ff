"""Verified-sample benchmark: does `labelaudit verify` + `estimate` give an interval that covers the truth, and
how wide is it, against a simple random sample of the same size?

    python benchmarks/verify.py                              # wrench_sms and wrench_youtube, 500 draws of 200
    python benchmarks/verify.py --datasets wrench_trec --repeats 200

For each set: the labelaudit default consensus (deft, confident, zeroshot, knn) on MiniLM embeddings of every
row (``/work/emb/<set>.npz`` when present, else embedded through the cache as in quality.py), then repeated
draws with `verify`'s own design code (``verification.plan_design``) and the gold labels as the reviewer, each
estimated with `estimate`'s own functions at their defaults. The same estimator on a simple random sample of the
same size is the comparison. All rows are used: nothing here is tuned. Results: benchmarks/results/verify.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import quality  # noqa: E402
from quality import RESULTS, BenchData, labelaudit_methods, load_text_set  # noqa: E402
from results_io import write_results  # noqa: E402

from labelaudit import verify as stats  # noqa: E402
from labelaudit.consensus import combine  # noqa: E402
from labelaudit.verification import plan_design, report_population_digest  # noqa: E402

EMBEDDINGS = Path("/work/emb")
DEFAULT_SETS = ["wrench_sms", "wrench_youtube"]
DEFAULT_METHODS = ("deft (embedding, 5-fold cross-fit)", "confident", "zeroshot", "knn")


def load(name: str, cache_dir: Path) -> BenchData:
    npz = EMBEDDINGS / f"{name}.npz"
    if npz.is_file():
        data = np.load(npz, allow_pickle=False)
        return BenchData(
            name=name,
            embeddings=data["embeddings"],
            given=data["given"],
            gold=data["gold"],
            class_names=[str(c) for c in data["class_names"]],
            class_embeddings=data["class_embeddings"],
            soft_prompt=None,
            ids=data["ids"],
            note=f"sentence-transformers all-MiniLM-L6-v2 ({npz}), real label noise",
        )
    import torch

    from labelaudit.encoders.sentence import SentenceEncoder

    if not (quality.ASSETS / "text").is_dir():
        sys.exit(f"no {npz} and no shared assets at {quality.ASSETS} (pass --assets)")
    data = load_text_set(name, SentenceEncoder("all-MiniLM-L6-v2", torch.device("cpu")), cache_dir)
    data.soft_prompt = None  # the embedding variant only, as the audit's default
    return data


def report_table(data: BenchData, seed: int, methods: tuple[str, ...] = DEFAULT_METHODS) -> pd.DataFrame:
    """What report.parquet holds for this set under the audit's default methods, in rank order."""
    calls = labelaudit_methods(data, seed)
    results = {name: calls[name]() for name in methods}
    consensus = combine(results, data.given)
    names = np.array(data.class_names, dtype=object)
    frame = pd.DataFrame(
        {
            "sample_id": data.ids.astype(str),
            "content_hash": data.ids.astype(str),
            "given_label": names[data.given],
            "suggested_label": names[consensus.suggested],
            "suggested_prob": consensus.suggested_prob,
            "consensus_score": consensus.score,
            "is_issue": consensus.is_issue,
            "wrong": data.given != data.gold,
        }
    )
    frame = frame.sort_values(["consensus_score", "sample_id"], kind="mergesort").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame


def run(
    data: BenchData, n: int, repeats: int, seed: int, methods: tuple[str, ...] = DEFAULT_METHODS
) -> dict[str, object]:
    start = time.perf_counter()
    table = report_table(data, seed, methods)
    scoring_s = time.perf_counter() - start
    wrong = table["wrong"].to_numpy()
    truth = float(wrong.mean())
    flagged = table["is_issue"].to_numpy()
    true_precision = float(wrong[flagged].mean()) if flagged.any() else None
    true_recall = float((wrong & flagged).sum() / max(wrong.sum(), 1))
    population = report_population_digest(table)
    everyone = np.zeros(len(table), dtype=np.int64)
    outcome: dict[str, dict[str, list[float]]] = {
        kind: {"covered": [], "width": [], "estimate": []} for kind in ("stratified", "simple", "oracle")
    }
    # The headroom of a calibrated `error_probability` column (issue #14): the same strata, allocated with
    # the true per-stratum error rates as the guess. Not something a user can run: a yardstick.
    oracle_table = table.assign(error_probability=wrong.astype(np.float64))
    precision_covered, recall_covered, precision_width = [], [], []
    first = None
    start = time.perf_counter()
    for draw in range(repeats):
        design = plan_design(table, n, seed=draw, population=population)
        oracle = plan_design(oracle_table, n, seed=draw, population=population)
        first = first or design
        strata = design.frame["stratum"].to_numpy()
        for kind, (st, picked) in {
            "stratified": (strata, design.picked),
            "simple": (everyone, stats.draw(everyone, np.array([n]), draw)),
            "oracle": (oracle.frame["stratum"].to_numpy(), oracle.picked),
        }.items():
            h = int(st.max()) + 1
            sizes = np.bincount(st, minlength=h)
            reviewed = np.bincount(st[picked], minlength=h)
            errors = np.bincount(st[picked][wrong[picked]], minlength=h)
            result = stats.estimate_rate(sizes, reviewed, errors)
            outcome[kind]["covered"].append(result["lower"] <= truth <= result["upper"])
            outcome[kind]["width"].append(result["upper"] - result["lower"])
            outcome[kind]["estimate"].append(result["estimate"])
            if kind == "stratified" and true_precision is not None:
                is_flagged = np.array([s["name"] == "flagged" for s in design.strata])
                pr = stats.flagged_precision_recall(sizes, reviewed, errors, is_flagged)
                precision_covered.append(pr["precision"]["lower"] <= true_precision <= pr["precision"]["upper"])
                precision_width.append(pr["precision"]["upper"] - pr["precision"]["lower"])
                recall_covered.append(pr["recall"]["lower"] <= true_recall <= pr["recall"]["upper"])
    estimate_s = (time.perf_counter() - start) / repeats
    assert first is not None
    summary: dict[str, object] = {
        "dataset": data.name,
        "rows": len(table),
        "true_error_rate": round(truth, 4),
        "model_error_rate": round(float(flagged.mean()), 4),
        "n": n,
        "repeats": repeats,
        "strata": [
            {
                k: s[k] if not isinstance(s[k], float) else round(s[k], 4)
                for k in ("name", "rows", "drawn", "error_guess")
            }
            | {"true_error_rate": round(float(wrong[first.frame["stratum"].to_numpy() == s["stratum"]].mean()), 4)}
            for s in first.strata
        ],
        "scoring_s": round(scoring_s, 1),
        "seconds_per_draw": round(estimate_s, 3),
    }
    for kind, values in outcome.items():
        summary[kind] = {
            "coverage": round(float(np.mean(values["covered"])), 4),
            "mean_half_width": round(float(np.mean(values["width"])) / 2, 4),
            "max_half_width": round(float(np.max(values["width"])) / 2, 4),
            "mean_estimate": round(float(np.mean(values["estimate"])), 4),
            "rmse": round(float(np.sqrt(np.mean((np.array(values["estimate"]) - truth) ** 2))), 4),
        }
    if true_precision is not None:
        summary["flag"] = {
            "rows": int(flagged.sum()),
            "true_precision": round(true_precision, 4),
            "true_recall": round(true_recall, 4),
            "precision_coverage": round(float(np.mean(precision_covered)), 4),
            "precision_mean_half_width": round(float(np.mean(precision_width)) / 2, 4),
            "recall_coverage": round(float(np.mean(recall_covered)), 4),
        }
    return summary


def to_markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| dataset | rows | true rate | model estimate | design | coverage (95 % nominal) | mean ± half-width | "
        "max half-width | RMSE of the point |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "stratified": "labelaudit verify (stratified)",
        "simple": "simple random sample",
        "oracle": "same strata, allocated on the true rates (yardstick)",
    }
    for r in rows:
        for kind, label in labels.items():
            v = r[kind]
            assert isinstance(v, dict)
            lines.append(
                f"| {r['dataset']} | {r['rows']:,} | {r['true_error_rate']:.2%} | {r['model_error_rate']:.2%} | "
                f"{label} | {v['coverage']:.1%} | ±{100 * v['mean_half_width']:.2f} pts | "
                f"±{100 * v['max_half_width']:.2f} pts | {100 * v['rmse']:.2f} pts |"
            )
    lines += ["", "| dataset | flagged | true precision | precision coverage | ± half-width | recall coverage |"]
    lines.append("|---|---|---|---|---|---|")
    for r in rows:
        f = r.get("flag")
        if isinstance(f, dict):
            lines.append(
                f"| {r['dataset']} | {f['rows']} | {f['true_precision']:.1%} | {f['precision_coverage']:.1%} | "
                f"±{100 * f['precision_mean_half_width']:.1f} pts | {f['recall_coverage']:.1%} |"
            )
    for r in rows:
        lines += [
            "",
            f"Strata of {r['dataset']} (first draw):",
            "",
            "| stratum | rows | drawn | model's guess | truth |",
        ]
        lines.append("|---|---|---|---|---|")
        strata = r["strata"]
        assert isinstance(strata, list)
        for s in strata:
            lines.append(
                f"| {s['name']} | {s['rows']:,} | {s['drawn']} | {s['error_guess']:.1%} | {s['true_error_rate']:.1%} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=DEFAULT_SETS)
    parser.add_argument("--n", type=int, default=200, help="items reviewed per draw")
    parser.add_argument("--repeats", type=int, default=500, help="independent draws per set")
    parser.add_argument("--seed", type=int, default=0, help="scorers' seed")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/labelaudit").expanduser())
    parser.add_argument("--out", type=Path, default=RESULTS / "verify")
    parser.add_argument("--assets", type=Path, default=quality.ASSETS, help="the shared assets folder")
    args = parser.parse_args()
    quality.ASSETS = args.assets
    rows = []
    for name in args.datasets:
        data = load(name, args.cache_dir)
        print(f"{name}: {len(data.given)} rows, {(data.given != data.gold).mean():.2%} wrong", flush=True)
        rows.append(run(data, args.n, args.repeats, args.seed))
        print(json.dumps(rows[-1], indent=1), flush=True)
    meta = {"n": args.n, "repeats": args.repeats, "seed": args.seed, "methods": list(DEFAULT_METHODS)}
    write_results(
        args.out,
        {"meta": meta, "results": rows},
        f"`python benchmarks/verify.py --n {args.n} --repeats {args.repeats}`; reviewer = the gold labels; "
        "every row of each set.\n\n" + to_markdown(rows),
    )
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
