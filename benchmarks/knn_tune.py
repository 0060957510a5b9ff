"""Choose the kNN scorer's k and weighting on the benchmark's *tune* rows (never the report rows).

    python benchmarks/knn_tune.py --cache-dir /tmp/lacache

Every sample's neighbours come from all rows (as in an audit); only the metrics are restricted to the
tune half, chosen by the same row-id hash as benchmarks/quality.py. Prints one line per setting and the
mean AUROC / F1 over the text sets; results go to benchmarks/results/knn_tune.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import QUICK_SETS, RESULTS, TEXT_SETS, load_text_set, metrics, report_rows  # noqa: E402

from labelaudit.neighbors import build_graph  # noqa: E402
from labelaudit.scorers import ScoreContext, ScorerResult  # noqa: E402
from labelaudit.scorers.knn import WEIGHTINGS, KnnScorer, KnnSettings  # noqa: E402

KS = (5, 10, 20, 30, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--datasets", nargs="*", default=None, help="text sets (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/labelaudit").expanduser())
    args = parser.parse_args()
    import torch

    from labelaudit.encoders.sentence import SentenceEncoder
    from labelaudit.neighbors import NeighborSource

    encoder = SentenceEncoder("all-MiniLM-L6-v2", torch.device("cpu"))
    rows: list[dict[str, object]] = []
    for name in args.datasets or (QUICK_SETS if args.quick else TEXT_SETS):
        data = load_text_set(name, encoder, args.cache_dir)
        wrong = data.given != data.gold
        tune = report_rows(data.ids, "tune")
        source = NeighborSource(data.embeddings, k=max(KS))
        source._graph = build_graph(data.embeddings, max(KS))  # one search per set, sliced per k
        for k in KS:
            for weighting in WEIGHTINGS:
                context = ScoreContext(
                    embeddings=data.embeddings,
                    labels=data.given,
                    class_names=data.class_names,
                    neighbors=source,
                )
                start = time.perf_counter()
                result: ScorerResult = KnnScorer().score(context, KnnSettings(k=k, weighting=weighting))
                row = {"dataset": name, "k": k, "weighting": weighting}
                row.update(metrics(result, wrong, tune, time.perf_counter() - start))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\nmean over sets (tune rows):")
    for k in KS:
        for weighting in WEIGHTINGS:
            sel = [r for r in rows if r["k"] == k and r["weighting"] == weighting]
            print(
                f"k={k:3d} {weighting:10s} auroc={np.nanmean([r['auroc'] for r in sel]):.4f} "
                f"auprc={np.nanmean([r['auprc'] for r in sel]):.4f} f1={np.mean([r['f1'] for r in sel]):.4f}"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "knn_tune.json").write_text(json.dumps({"rows": "tune", "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
