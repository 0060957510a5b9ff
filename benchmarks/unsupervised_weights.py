"""Study: weigh the methods without labels instead of averaging them equally (docs/benchmarks.md, "Weighing the
methods without labels"). Reads the per-method scores that ``benchmarks/quality.py --dump DIR`` saves and,
on the rows that run evaluated (``--rows tune`` for the dumps this study was judged on), compares the
consensus ranking's AUROC for the given label's wrongness:

- ``mean``: the shipped consensus, the mean of the four methods' probabilities of the given label;
- ``summa_mean`` / ``summa_rank``: the same mean, or the mean of the methods' rank-normalised scores, weighted
  by SUMMA (Ahsen, Vogel and Stolovitzky, JMLR 2019): where the methods err independently given the truth,
  the off-diagonal covariance of their rank scores is rank one, with each method's entry proportional to its
  AUROC minus 1/2, so its leading eigenvector weighs them without a single label;
- ``mean_rank``: the unweighted mean rank (the consensus before the mean probability);
- the two cleanlab recipes of quality.py (``peer_cleanlab_default``, ``peer_datalab``).

It also records a label-free statistic looked at for the flag cut: how much more often zero-shot, which never
sees the labels, disagrees with the given label on the learned methods' top 3 % of suspects than on all rows
(``zeroshot_lift_top3``). Where the suspects are real mistakes zero-shot should agree with them more.

    python benchmarks/quality.py --rows tune --no-prompt-variant --datasets wrench_youtube wrench_sms \\
        wrench_trec 20news_slice2000 20news_test_cleanlab imdb_test_cleanlab --dump /tmp/dump --out /tmp/dump/q
    python benchmarks/unsupervised_weights.py --dumps /tmp/dump --out benchmarks/results/unsupervised_weights

(the CIFAR-10N dumps come from the same quality.py command lines as docs/benchmarks.md, with ``--rows tune
--dump /tmp/dump``). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # results_io, also when a test loads this file by path
from results_io import write_results  # noqa: E402

METHODS = ("deft (embedding, 5-fold cross-fit)", "confident", "zeroshot", "knn")
LEARNED = ("deft (embedding, 5-fold cross-fit)", "confident", "knn")  # the methods that learn from the labels
PEERS = {
    "peer_cleanlab_default": "peer: cleanlab default (CV logistic regression)",
    "peer_datalab": "peer: cleanlab Datalab (features only)",
}
SETS = (
    "wrench_youtube",
    "wrench_sms",
    "wrench_trec",
    "20news_slice2000",
    "20news_test_cleanlab",
    "imdb_test_cleanlab",
    "cifar10n_aggre",
    "cifar10n_random1",
    "cifar10n_worst",
)


def rank_one_weights(covariance: np.ndarray, iterations: int = 200) -> np.ndarray:
    """SUMMA's weights: the vector v with covariance[i, j] ~ v[i] * v[j] off the diagonal (the diagonal,
    which holds each method's own variance, is refitted to v[i]^2 until it settles), signed so that the
    weights add up to more than zero, clipped at zero and normalised to sum to 1."""
    fitted = np.array(covariance, dtype=np.float64)
    vector = np.zeros(len(fitted))
    for _ in range(iterations):
        values, vectors = np.linalg.eigh(fitted)
        vector = vectors[:, -1] * np.sqrt(max(values[-1], 0.0))
        np.fill_diagonal(fitted, vector**2)
    vector = vector if vector.sum() >= 0 else -vector
    clipped = np.clip(vector, 0.0, None)
    return clipped / clipped.sum() if clipped.sum() > 0 else np.full(len(vector), 1.0 / len(vector))


def rank_scores(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return (rankdata(values) - 1.0) / max(len(values) - 1, 1)


def auroc_of_wrongness(wrong: np.ndarray, label_quality: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(wrong, -label_quality))


def zeroshot_lift(given: np.ndarray, learned_quality: np.ndarray, zeroshot_probs: np.ndarray, share: float) -> float:
    """How much more often zero-shot's top class is not the given label on the learned methods' ``share`` most
    suspect rows than on all rows."""
    disagrees = zeroshot_probs.argmax(axis=1) != given
    top = np.argsort(learned_quality, kind="stable")[: max(int(share * len(given)), 5)]
    return float(disagrees[top].mean() / max(disagrees.mean(), 1e-12))


def study(dump: dict[str, np.ndarray]) -> dict[str, Any]:
    given, wrong = dump["given"], dump["given"] != dump["gold"]
    judged = dump["rows"].astype(bool)
    rows = np.arange(len(given))
    quality = {m: dump[f"{m}|probs"][rows, given].astype(np.float64) for m in METHODS if f"{m}|probs" in dump}
    ranks = np.stack([rank_scores(q) for q in quality.values()])
    weights = rank_one_weights(np.cov(ranks))
    rankings = {
        "mean": np.mean(list(quality.values()), axis=0),
        "summa_mean": np.sum([w * q for w, q in zip(weights, quality.values(), strict=True)], axis=0),
        "summa_rank": weights @ ranks,
        "mean_rank": ranks.mean(axis=0),
        **{key: dump[f"{name}|quality"] for key, name in PEERS.items()},
    }
    record: dict[str, Any] = {
        "rows": int(judged.sum()),
        "wrong_on_rows": int(wrong[judged].sum()),
        "weights": {m: round(float(w), 3) for m, w in zip(quality, weights, strict=True)},
        **{f"auroc_{key}": round(auroc_of_wrongness(wrong[judged], r[judged]), 4) for key, r in rankings.items()},
    }
    if "zeroshot" in quality:
        learned = np.mean([quality[m] for m in LEARNED], axis=0)
        record["zeroshot_lift_top3"] = round(zeroshot_lift(given, learned, dump["zeroshot|probs"], 0.03), 3)
        record["top3_truly_wrong"] = round(
            float(wrong[np.argsort(learned, kind="stable")[: int(0.03 * len(given))]].mean()), 3
        )
    return record


def to_markdown(records: dict[str, dict[str, Any]]) -> str:
    keys = ["mean", "summa_mean", "summa_rank", "mean_rank", *PEERS]
    lines = [
        "| data | wrong labels on the rows | SUMMA weights (deft, confident, zeroshot, knn) | "
        + " | ".join(f"AUROC {k}" for k in keys)
        + " | zero-shot lift, top 3 % | top 3 % truly wrong |",
        "|" + " --- |" * (len(keys) + 5),
    ]
    for name, r in records.items():
        lines.append(
            f"| {name} | {r['wrong_on_rows']} | {', '.join(f'{w:.2f}' for w in r['weights'].values())} | "
            + " | ".join(f"{r[f'auroc_{k}']:.3f}" for k in keys)
            + f" | {r.get('zeroshot_lift_top3', '—')} | {r.get('top3_truly_wrong', '—')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dumps", type=Path, required=True, help="the folder quality.py --dump wrote")
    parser.add_argument("--out", type=Path, required=True, help="results file stem (OUT.json, OUT.md)")
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    args = parser.parse_args()
    records = {}
    for name in args.sets:
        path = args.dumps / f"{name}.npz"
        if not path.is_file():
            print(f"{name}: no dump at {path}, skipped")
            continue
        records[name] = study(dict(np.load(path)))
        print(name, records[name])
    write_results(args.out, records, to_markdown(records))
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
