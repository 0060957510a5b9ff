"""Multi-label detection benchmark: labelaudit's per-pair audit against cleanlab's multi-label recipe on the
same embeddings, per (sample, tag) pair and per sample.

    python benchmarks/multilabel.py                       # 20news + CIFAR, all noise conditions, report rows
    python benchmarks/multilabel.py --rows tune           # the half the defaults were chosen on
    python benchmarks/multilabel.py --datasets 20news --conditions real random:0.1

Data (offline):
- ``20news``: the 20 Newsgroups test texts of the shared assets, MiniLM embeddings (``--news-embeddings``, the
  npz of quality.py's loader: embeddings, given, gold, ids). Tags are derived from the newsgroup by
  ``NEWS_TAGS`` (comp.sys.ibm.pc.hardware -> computers, hardware, pc). Tag prompts for zero-shot and DeFT are
  MiniLM embeddings of the tag names. The given newsgroup carries real (cleanlab/MTurk-checked) label noise,
  0.3 % of the documents, so the ``real`` condition is a nearly clean multi-label set.
- ``cifar``: the 10,000 CIFAR-10N images with hand-made proxy features (benchmarks/cifar10n_features.py; no
  pretrained image encoder is available offline). Tags from the class hierarchy (``CIFAR_TAGS``: cat -> animal,
  mammal, pet, cat). The ``real`` condition derives the given tags from the CIFAR-10N ``aggre`` label, real
  human noise (9 % of images); no class prompts, so no zero-shot.

Conditions: ``real`` (the derived real noise) and ``MODE:RATE`` synthetic noise on the gold tags: a share RATE
of the samples gets one error, half a missing tag, half a spurious one. ``random``: a uniformly chosen present
tag removed / absent tag added (labelaudit's own calibration instead draws spurious tags by prevalence);
``confusable``: the present tag the sample is least typical of removed / the absent tag nearest to it added.

Rows are split into tune/report halves by a hash of the id (``quality.report_rows``); metrics use one half.
The audit runs on all rows, as a user would; its error-rate estimate is re-read on the chosen half
(``Calibration.estimate(rows=...)``). Results: benchmarks/results/multilabel.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # many small fits: BLAS threads only contend on a shared box
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import report_rows  # noqa: E402
from results_io import write_results  # noqa: E402

from labelaudit.multilabel.audit import audit_tags  # noqa: E402
from labelaudit.multilabel.combine import decide, pair_consensus  # noqa: E402
from labelaudit.multilabel.scorers import MultilabelContext  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
NEWS_EMBEDDINGS = Path("/work/emb/20news_test_cleanlab.npz")
CIFAR_FEATURES = Path("/tmp/cifar10n_features")
DEFAULT_CONDITIONS = ["real", "random:0.05", "random:0.1", "random:0.2", "confusable:0.1"]

# Tags a person would give a post of each newsgroup: its topic path without the filler parts (sys, misc, soc,
# alt) and with the two broad readings the hierarchy implies (sport and vehicles are recreation).
NEWS_TAGS: dict[str, list[str]] = {
    "alt.atheism": ["religion", "atheism"],
    "comp.graphics": ["computers", "graphics"],
    "comp.os.ms-windows.misc": ["computers", "windows", "operating systems"],
    "comp.sys.ibm.pc.hardware": ["computers", "hardware", "pc"],
    "comp.sys.mac.hardware": ["computers", "hardware", "mac"],
    "comp.windows.x": ["computers", "x window system"],
    "misc.forsale": ["for sale"],
    "rec.autos": ["recreation", "vehicles", "cars"],
    "rec.motorcycles": ["recreation", "vehicles", "motorcycles"],
    "rec.sport.baseball": ["recreation", "sport", "baseball"],
    "rec.sport.hockey": ["recreation", "sport", "hockey"],
    "sci.crypt": ["science", "cryptography"],
    "sci.electronics": ["science", "electronics"],
    "sci.med": ["science", "medicine"],
    "sci.space": ["science", "space"],
    "soc.religion.christian": ["religion", "christianity"],
    "talk.politics.guns": ["politics", "guns"],
    "talk.politics.mideast": ["politics", "middle east"],
    "talk.politics.misc": ["politics"],
    "talk.religion.misc": ["religion"],
}
# The CIFAR-10 class hierarchy (WordNet-like) plus two visual groupings; each image also keeps its class.
CIFAR_TAGS: dict[str, list[str]] = {
    "airplane": ["vehicle", "aircraft", "airplane"],
    "automobile": ["vehicle", "road vehicle", "automobile"],
    "bird": ["animal", "bird"],
    "cat": ["animal", "mammal", "pet", "cat"],
    "deer": ["animal", "mammal", "hoofed", "deer"],
    "dog": ["animal", "mammal", "pet", "dog"],
    "frog": ["animal", "amphibian", "frog"],
    "horse": ["animal", "mammal", "hoofed", "horse"],
    "ship": ["vehicle", "watercraft", "ship"],
    "truck": ["vehicle", "road vehicle", "truck"],
}


@dataclass
class TagData:
    name: str
    embeddings: np.ndarray
    given: np.ndarray  # (N, K) bool, with the dataset's real noise
    gold: np.ndarray  # (N, K) bool
    classes: list[str]
    class_embeddings: np.ndarray | None
    ids: np.ndarray
    note: str


def tag_matrix(groups: np.ndarray, mapping: dict[str, list[str]], names: list[str]) -> tuple[np.ndarray, list[str]]:
    classes = sorted({t for tags in mapping.values() for t in tags})
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(groups), len(classes)), dtype=bool)
    for row, group in enumerate(groups):
        out[row, [index[t] for t in mapping[names[group]]]] = True
    return out, classes


def load_20news(path: Path) -> TagData:
    import torch

    from labelaudit.encoders import embed_class_prompts
    from labelaudit.encoders.sentence import SentenceEncoder

    with np.load(path, allow_pickle=False) as data:
        x = data["embeddings"].astype(np.float32)
        names = [str(n) for n in data["class_names"]]
        given_group, gold_group, ids = data["given"], data["gold"], data["ids"].astype(str)
    given, classes = tag_matrix(given_group, NEWS_TAGS, names)
    gold, _ = tag_matrix(gold_group, NEWS_TAGS, names)
    encoder = SentenceEncoder("all-MiniLM-L6-v2", torch.device("cpu"))
    prompts = embed_class_prompts(encoder, classes, "text")
    return TagData(
        "20news", x, given, gold, classes, prompts, ids, "MiniLM embeddings; tags from the newsgroup (NEWS_TAGS)"
    )


def load_cifar(folder: Path) -> TagData:
    x = np.load(folder / "features.npy").astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = pd.read_csv(folder / "labels_aggre.csv")
    names = [line.split(maxsplit=1)[1] for line in (folder / "classes.txt").read_text().splitlines() if line.strip()]
    given, classes = tag_matrix(labels["given_label"].to_numpy(), CIFAR_TAGS, names)
    gold, _ = tag_matrix(labels["gold_label"].to_numpy(), CIFAR_TAGS, names)
    return TagData(
        "cifar",
        x,
        given,
        gold,
        classes,
        None,
        labels["index"].astype(str).to_numpy(),
        "hand-made proxy image features (HOG, colour, thumbnail); tags from the class hierarchy (CIFAR_TAGS)",
    )


def synthetic(data: TagData, mode: str, rate: float, seed: int) -> np.ndarray:
    """Given tags = the gold tags with one error in a share ``rate`` of the samples (see the module doc)."""
    rng = np.random.default_rng(seed)
    gold = data.gold
    out = gold.copy()
    n, k = gold.shape
    if mode == "confusable":
        counts = np.maximum(gold.sum(axis=0), 1)
        means = (gold.T.astype(np.float64) @ data.embeddings) / counts[:, None]
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        affinity = data.embeddings @ means.T  # (N, K)
    for i in rng.choice(n, size=int(round(rate * n)), replace=False):
        present, absent = np.flatnonzero(gold[i]), np.flatnonzero(~gold[i])
        remove = len(present) > 0 and (not len(absent) or rng.random() < 0.5)
        choices = present if remove else absent
        if mode == "random":
            j = rng.choice(choices)
        elif mode == "confusable":
            j = choices[np.argmin(affinity[i, choices])] if remove else choices[np.argmax(affinity[i, choices])]
        else:
            raise ValueError(f"unknown noise mode {mode!r}")
        out[i, j] = not out[i, j]
    return out


# ---- the peer -----------------------------------------------------------------------------------------


def cleanlab_recipe(x: np.ndarray, tags: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """cleanlab's documented multi-label recipe: 5-fold cross_val_predict of a one-vs-rest logistic regression,
    then its multi-label find_label_issues (samples), find_multilabel_issues_per_class (pairs) and
    get_label_quality_scores (samples)."""
    import warnings

    from cleanlab.multilabel_classification.filter import find_label_issues, find_multilabel_issues_per_class
    from cleanlab.multilabel_classification.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.multiclass import OneVsRestClassifier

    probs = cross_val_predict(
        OneVsRestClassifier(LogisticRegression(max_iter=1000)),
        x,
        tags.astype(int),
        cv=KFold(5, shuffle=True, random_state=seed),
        method="predict_proba",
    )
    labels = [np.flatnonzero(row).tolist() for row in tags]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pair_issue = find_multilabel_issues_per_class(labels, probs, n_jobs=1)
        sample_issue = find_label_issues(labels, probs, n_jobs=1)
        quality = get_label_quality_scores(labels, probs)
    return {
        "suspicion": np.abs(tags - probs),
        "pair_flags": np.asarray(pair_issue, dtype=bool),
        "sample_flags": np.asarray(sample_issue, dtype=bool),
        "sample_suspicion": 1.0 - np.asarray(quality),
        "estimated_pair_error_rate": float(np.asarray(pair_issue).mean()),
        "estimated_sample_error_rate": float(np.asarray(sample_issue).mean()),
    }


# ---- metrics -----------------------------------------------------------------------------------------


def detection(flags: np.ndarray, truth: np.ndarray, score: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    flags, truth, score = flags.ravel(), truth.ravel(), score.ravel()
    tp = float((flags & truth).sum())
    precision = tp / max(int(flags.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    both = truth.any() and (~truth).any()
    return {
        "flagged": int(flags.sum()),
        "errors": int(truth.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
        "auroc": round(float(roc_auc_score(truth, score)), 4) if both else float("nan"),
        "auprc": round(float(average_precision_score(truth, score)), 4) if both else float("nan"),
    }


def evaluate(
    pair_flags: np.ndarray,
    pair_score: np.ndarray,
    sample_flags: np.ndarray,
    sample_score: np.ndarray,
    wrong: np.ndarray,
    rows: np.ndarray,
    estimated_pair: float,
    estimated_sample: float,
) -> dict[str, object]:
    sample_wrong = wrong.any(axis=1)
    out: dict[str, object] = {}
    for key, value in detection(pair_flags[rows], wrong[rows], pair_score[rows]).items():
        out[f"pair_{key}"] = value
    for key, value in detection(sample_flags[rows], sample_wrong[rows], sample_score[rows]).items():
        out[f"sample_{key}"] = value
    out["estimated_pair_error_rate"] = round(estimated_pair, 5)
    out["true_pair_error_rate"] = round(float(wrong[rows].mean()), 5)
    out["estimated_sample_error_rate"] = round(estimated_sample, 5)
    out["true_sample_error_rate"] = round(float(sample_wrong[rows].mean()), 5)
    return out


def run_condition(
    data: TagData,
    condition: str,
    which_rows: str,
    seed: int,
    options: dict[str, object] | None = None,
    copies: int | None = None,
) -> list[dict[str, object]]:
    """``options`` and ``copies`` go to the audit (the smoke test makes it cheap with them)."""
    if condition == "real":
        given = data.given
    else:
        mode, rate = condition.split(":")
        given = synthetic(data, mode, float(rate), seed + 1)
    wrong = given != data.gold
    rows = report_rows(data.ids, which_rows)
    context = MultilabelContext(
        embeddings=data.embeddings,
        tags=given,
        class_names=data.classes,
        class_embeddings=data.class_embeddings,
        options=dict(options or {}),
    )
    table: list[dict[str, object]] = []

    def record(method: str, seconds: float, **metrics: object) -> None:
        row = {"dataset": data.name, "condition": condition, "method": method, "seconds": round(seconds, 1)}
        table.append({**row, **evaluate(**metrics)})  # type: ignore[arg-type]
        shown = {k: table[-1][k] for k in ("pair_f1", "pair_auroc", "sample_f1", "sample_auroc")}
        rates = f"pair {table[-1]['estimated_pair_error_rate']} vs {table[-1]['true_pair_error_rate']}, "
        rates += f"sample {table[-1]['estimated_sample_error_rate']} vs {table[-1]['true_sample_error_rate']}"
        print(f"  {method:44s} {shown} est/true {rates}", flush=True)

    start = time.perf_counter()
    audit = audit_tags(context, copies=copies)  # the default methods: deft, confident, knn
    if data.class_embeddings is not None:  # zeroshot is no default; scored alone for the table
        from labelaudit.multilabel.scorers import run_methods

        extra = run_methods(context, ["zeroshot"])
    seconds = time.perf_counter() - start
    assert audit.calibration is not None
    estimate = audit.calibration.estimate(given, rows)
    common = {"wrong": wrong, "rows": rows}
    consensus = audit.consensus
    for rule in ("calibrated", "majority"):
        decisions = decide(given, consensus, audit.calibration, rule)
        flags = decisions.missing | decisions.spurious
        est_pair = estimate.pair_error_rate if rule == "calibrated" else float(flags[rows].mean())
        est_sample = estimate.sample_error_rate if rule == "calibrated" else float(decisions.is_issue[rows].mean())
        label = "labelaudit (default: calibrated flags)" if rule == "calibrated" else "labelaudit, majority-vote flags"
        record(
            label,
            seconds,
            pair_flags=flags,
            pair_score=consensus.suspicion,
            sample_flags=decisions.is_issue,
            sample_score=1.0 - consensus.quality,
            estimated_pair=est_pair,
            estimated_sample=est_sample,
            **common,
        )
    else:
        extra = {}
    for name, result in {**audit.methods, **extra}.items():
        alone = pair_consensus({name: result}, given)
        flags = result.flagged
        record(
            f"labelaudit {name} alone (its own flags)",
            float("nan"),
            pair_flags=flags,
            pair_score=alone.suspicion,
            sample_flags=flags.any(axis=1),
            sample_score=1.0 - alone.quality,
            estimated_pair=float(flags[rows].mean()),
            estimated_sample=float(flags.any(axis=1)[rows].mean()),
            **common,
        )
    start = time.perf_counter()
    peer = cleanlab_recipe(data.embeddings, given, seed)
    record(
        "peer: cleanlab multi-label recipe",
        time.perf_counter() - start,
        pair_flags=peer["pair_flags"],
        pair_score=peer["suspicion"],
        sample_flags=peer["sample_flags"],
        sample_score=peer["sample_suspicion"],
        estimated_pair=float(peer["pair_flags"][rows].mean()),
        estimated_sample=float(peer["sample_flags"][rows].mean()),
        **common,
    )
    return table


MD_COLUMNS = [
    "dataset",
    "condition",
    "method",
    "pair_precision",
    "pair_recall",
    "pair_f1",
    "pair_auroc",
    "pair_auprc",
    "sample_precision",
    "sample_recall",
    "sample_f1",
    "sample_auroc",
    "sample_auprc",
    "estimated_pair_error_rate",
    "true_pair_error_rate",
    "estimated_sample_error_rate",
    "true_sample_error_rate",
    "seconds",
]


def to_markdown(rows: list[dict[str, object]]) -> str:
    frame = pd.DataFrame(rows)[MD_COLUMNS]
    lines = ["| " + " | ".join(MD_COLUMNS) + " |", "|" + "---|" * len(MD_COLUMNS)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", choices=["20news", "cifar"], default=["20news", "cifar"])
    parser.add_argument("--conditions", nargs="*", default=DEFAULT_CONDITIONS)
    parser.add_argument("--rows", choices=["report", "tune", "all"], default="report")
    parser.add_argument("--news-embeddings", type=Path, default=NEWS_EMBEDDINGS)
    parser.add_argument("--cifar-features", type=Path, default=CIFAR_FEATURES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "multilabel")
    args = parser.parse_args()

    loaders = {"20news": lambda: load_20news(args.news_embeddings), "cifar": lambda: load_cifar(args.cifar_features)}
    rows: list[dict[str, object]] = []
    notes: dict[str, str] = {}
    for name in args.datasets:
        data = loaders[name]()
        notes[name] = data.note
        print(
            f"{name}: {len(data.gold)} samples, {len(data.classes)} tags, {data.gold.sum(1).mean():.2f} tags a sample",
            flush=True,
        )
        for condition in args.conditions:
            print(f" {condition}", flush=True)
            rows += run_condition(data, condition, args.rows, args.seed)
    meta = {"rows": args.rows, "seed": args.seed, "datasets": notes, "conditions": args.conditions}
    write_results(
        args.out, {"meta": meta, "results": rows}, f"Rows: {args.rows}. {json.dumps(notes)}\n\n" + to_markdown(rows)
    )
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
