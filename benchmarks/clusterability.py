"""Estimators that trust the neighbour graph instead of a model: HOC and the "nugget", on the tune rows.

Issue #14 names HOC (Zhu, Song and Liu, "Clusterability as an alternative to anchor points", ICML 2021) as
reading to do. It never looks at a model trained on the labels, so labels made by rules, which the probe
learns, should not fool it the way they fool the calibrated estimate. It assumes instead that a sample and
its two nearest neighbours share the true class (2-NN clusterability) and that their given labels are
independent given it; the first-, second- and third-order agreement of the three given labels then pin
down the noise transition matrix T and the class prior p, and the error rate is sum_k p_k (1 - T_kk).

The "nugget" reads the same assumption off the most similar pairs only: if pairs that close always share
the true class, their given labels disagree at 1 - (1 - e)^2 - e^2 / (K - 1) under symmetric noise at rate e.
A third column feeds labelaudit's own calibrated estimate the vote of the 2 nearest neighbours instead of
the probe and the 20-neighbour vote (``knn2_calibrated``): the same neighbours, through the estimator that
copes with hard classes.

All three are measured against how far their assumption holds, the share of (sample, 2 neighbours) triples whose
*true* labels agree (``gold_2nn_purity``), which a user cannot compute. This is a study, not a shipped
method (docs/benchmarks.md says why):

    python benchmarks/clusterability.py --datasets wrench_sms wrench_youtube wrench_trec 20news_slice2000 \
        imdb_test_cleanlab 20news_test_cleanlab --cifar aggre random1 worst --out benchmarks/results/clusterability
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

from labelaudit.neighbour_reading import hoc_error_rate, predicted_purity  # noqa: E402
from labelaudit.scorers import ScoreContext, get_scorer  # noqa: E402

TOP_PAIR_SHARE = 0.02  # the nugget reads the most similar 2 % of (sample, one of its 10 neighbours) pairs
DUPLICATE_SIMILARITY = 0.999  # exact duplicates share a label whatever made it; left out of the nugget


def nugget_error_rate(disagreement: float, classes: int) -> float:
    """Invert D = 2e - e^2 K / (K - 1), the disagreement of two same-class labels under symmetric noise e."""
    scale = classes / (classes - 1)
    return float((1 - np.sqrt(max(1 - disagreement * scale, 0.0))) / scale)


def calibrated_on_two_neighbours(context: ScoreContext) -> float:
    """labelaudit's calibrated estimate read from the 2-nearest-neighbour vote alone."""
    from labelaudit.estimate import estimate_error_rate
    from labelaudit.scorers.knn import KnnSettings

    probs = get_scorer("knn").score(context, KnnSettings(k=2)).pred_probs
    return estimate_error_rate(probs, context.labels).rate


def study(data: quality.BenchData, rows: str) -> dict[str, object]:
    keep = quality.report_rows(data.ids, rows)
    x, given, gold = data.embeddings[keep], data.given[keep], data.gold[keep]
    classes = int(max(given.max(), gold.max()) + 1)
    # One context: the study's neighbours and the kNN scorer's come from the same shared graph (one search).
    context = ScoreContext(
        embeddings=x, labels=given, class_names=data.class_names, class_embeddings=None, soft_prompt=None, seed=0
    )
    graph = context.neighbor_graph(10)
    similarity, index_of = graph.similarities, graph.indices
    pair = index_of[:, :2]
    purity = np.mean((gold[pair[:, 0]] == gold) & (gold[pair[:, 1]] == gold))
    s = similarity.ravel()
    a, b = np.repeat(np.arange(len(given)), 10), index_of.ravel()
    distinct = s < DUPLICATE_SIMILARITY
    top = distinct & (s >= np.quantile(s[distinct], 1 - TOP_PAIR_SHARE))
    given_disagree = float(np.mean(given[a[top]] != given[b[top]]))
    knn2 = calibrated_on_two_neighbours(context)
    # What the estimate's neighbours' reading gates on, with the out-of-fold probe's predictions (no true label).
    probe = get_scorer("confident").score(context, get_scorer("confident").settings_type()).pred_probs
    assert probe is not None
    return {
        "dataset": data.name,
        "rows": rows,
        "samples": int(len(given)),
        "classes": classes,
        "true_error_rate": round(float(np.mean(given != gold)), 4),
        "hoc_estimate": round(hoc_error_rate(given, given[pair[:, 0]], given[pair[:, 1]], classes), 4),
        "nugget_estimate": round(nugget_error_rate(given_disagree, classes), 4),
        "knn2_calibrated_estimate": round(knn2, 4),
        "gold_2nn_purity": round(float(purity), 3),
        "predicted_2nn_purity": round(predicted_purity(np.argmax(probe, axis=1), pair), 3),
        "top_pairs": int(top.sum()),
        "top_pairs_true_disagreement": round(float(np.mean(gold[a[top]] != gold[b[top]])), 3),
        "top_pairs_given_disagreement": round(given_disagree, 3),
    }


def to_markdown(results: list[dict[str, object]]) -> str:
    lines = [
        "| data (rows) | true rate | HOC | nugget | calibrated on the 2-NN vote | true 2-NN purity "
        "| predicted 2-NN purity | top pairs' true / given disagreement |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['dataset']} ({r['rows']}, {r['samples']:,}) | {r['true_error_rate']:.1%} | {r['hoc_estimate']:.1%} "
            f"| {r['nugget_estimate']:.1%} | {r['knn2_calibrated_estimate']:.1%} | {r['gold_2nn_purity']:.2f} "
            f"| {r['predicted_2nn_purity']:.2f} "
            f"| {r['top_pairs_true_disagreement']:.3f} / {r['top_pairs_given_disagreement']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=[], help="shared text sets (MiniLM, cached)")
    parser.add_argument("--cifar", nargs="*", default=[], help="CIFAR-10N label sets in /tmp/cifar10n_features")
    parser.add_argument("--features", type=Path, default=Path("/tmp/cifar10n_features"))
    parser.add_argument("--rows", default="tune", choices=["tune", "report", "all"])
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/labelaudit").expanduser())
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    sets = []
    if args.datasets:
        sets += quality.load_datasets(argparse.Namespace(embeddings=None, cache_dir=args.cache_dir), args.datasets)
    for name in args.cifar:
        labels = args.features / f"labels_{name}.csv"
        sets.append(quality.load_precomputed(args.features / "features.npy", labels, None, f"cifar10n_{name}"))
    results = []
    for data in sets:
        results.append(study(data, args.rows))
        print(json.dumps(results[-1]), flush=True)
    print(to_markdown(results))
    if args.out is not None:
        write_results(args.out, results, to_markdown(results))


if __name__ == "__main__":
    main()
