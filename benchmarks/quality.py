"""Detection-quality benchmark: every labelaudit method and the peers on the same embeddings, in one run.

    python benchmarks/quality.py                      # all shared text sets, real noise
    python benchmarks/quality.py --quick              # two small sets, for a smoke run
    python benchmarks/quality.py --embeddings X.npy --labels L.csv   # precomputed features (e.g. real CLIP)

``L.csv`` has columns ``given_label`` and ``gold_label`` (or ``is_wrong``), one row per embedding row.
Metrics are computed on the *report* rows only (half of the rows, chosen by a hash of the row id);
defaults were chosen by looking at the other half (``--rows tune``), so the reported rows were never
used to tune. Results go to benchmarks/results/quality.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # results_io, also when a test loads this file by path
from results_io import write_results  # noqa: E402

from labelaudit.consensus import NEIGHBOUR_VOTE, Consensus, combine, follow_estimate, lean_on_neighbours  # noqa: E402
from labelaudit.estimate import (  # noqa: E402
    ErrorEstimate,
    EstimateSettings,
    data_are_clusterable,
    estimate_error_rate,
)
from labelaudit.scorers import ScoreContext, ScorerResult, get_scorer  # noqa: E402
from labelaudit.scorers.deft import DeftSettings  # noqa: E402

ASSETS = REPO.parent / "shared" / "assets"
RESULTS = REPO / "benchmarks" / "results"
TEXT_SETS = ["20news_test_cleanlab", "imdb_test_cleanlab", "wrench_sms", "wrench_youtube", "wrench_trec"]
QUICK_SETS = ["wrench_youtube", "wrench_sms"]
WITH_PROMPT_VARIANT = True
DUMP_DIR: Path | None = None  # --dump: per-method scores for offline analysis


@dataclass
class BenchData:
    name: str
    embeddings: np.ndarray
    given: np.ndarray
    gold: np.ndarray
    class_names: list[str]
    class_embeddings: np.ndarray | None
    soft_prompt: object | None
    ids: np.ndarray
    note: str


def report_rows(ids: np.ndarray, which: str) -> np.ndarray:
    parity = np.array([int(hashlib.blake2b(str(i).encode(), digest_size=2).hexdigest(), 16) % 2 for i in ids])
    if which == "all":
        return np.ones(len(ids), dtype=bool)
    return parity == (1 if which == "report" else 0)


# A named slice of a shared set: (set, rows). The slice holds every row whose given label is wrong and
# fills up with rows chosen by a hash of their id, so it is the same slice on every machine.
SLICES = {"20news_slice2000": ("20news_test_cleanlab", 2000)}


def slice_rows(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    wrong = frame["given_label"].astype(str) != frame["gold_label"].astype(str)
    order = frame["id"].astype(str).map(lambda i: hashlib.blake2b(f"slice:{i}".encode(), digest_size=8).hexdigest())
    fill = order[~wrong].sort_values().index[: max(rows - int(wrong.sum()), 0)]
    return frame.loc[sorted(set(frame.index[wrong]) | set(fill))].reset_index(drop=True)


def load_text_set(name: str, encoder: object, cache_dir: Path) -> BenchData:
    from labelaudit.cache import EmbeddingCache
    from labelaudit.discover import discover
    from labelaudit.embed import embed_class_prompts, embed_samples

    source, rows = SLICES.get(name, (name, 0))
    folder = ASSETS / "text" / source
    frame = pd.read_csv(folder / f"{source}.csv")
    if rows:
        frame = slice_rows(frame, rows)
    classes = pd.read_csv(folder / "classes.txt", sep="\t", header=None, names=["id", "name"])
    names = dict(zip(classes["id"].astype(str), classes["name"], strict=True))
    data = pd.DataFrame(
        {
            "id": frame["id"].astype(str),
            "text": frame["text"].fillna("").astype(str),
            "label": frame["given_label"].astype(str),
        }
    )
    dataset = discover(data, id_col="id")
    embedded = embed_samples(dataset.samples, "text", encoder, EmbeddingCache(cache_dir, encoder.identity))
    key = {k: i for i, k in enumerate(classes["id"].astype(str))}
    kept_ids = dataset.samples["sample_id"].to_numpy()[embedded.kept]
    gold_by_id = dict(zip(frame["id"].astype(str), frame["gold_label"].astype(str), strict=True))
    given_by_id = dict(zip(frame["id"].astype(str), frame["given_label"].astype(str), strict=True))
    class_names = [names[k] for k in classes["id"].astype(str)]
    return BenchData(
        name=name,
        embeddings=embedded.vectors,
        given=np.array([key[given_by_id[i]] for i in kept_ids]),
        gold=np.array([key[gold_by_id[i]] for i in kept_ids]),
        class_names=class_names,
        class_embeddings=embed_class_prompts(encoder, class_names, "text"),
        soft_prompt=encoder.soft_prompt_model(),
        ids=kept_ids,
        note=f"{encoder.description}, real label noise" + (f"; {len(frame):,} rows of {source}" if rows else ""),
    )


def read_class_names(path: Path) -> list[str]:
    """One class a line, in id order: ``name`` or ``id<whitespace>name`` (as in the shared classes.txt files)."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    parts = [line.split(maxsplit=1) for line in lines]
    if all(len(p) == 2 and p[0].isdigit() for p in parts):
        return [name for _, name in sorted(parts, key=lambda p: int(p[0]))]
    return lines


def load_precomputed(
    embeddings: Path, labels: Path, class_names: list[str] | None, name: str | None = None
) -> BenchData:
    x = np.load(embeddings) if embeddings.suffix == ".npy" else pd.read_parquet(embeddings).to_numpy()
    table = pd.read_csv(labels) if labels.suffix == ".csv" else pd.read_parquet(labels)
    given = table["given_label"].to_numpy()
    gold = table["gold_label"].to_numpy() if "gold_label" in table else np.where(table["is_wrong"], -1, given)
    k = int(max(given.max(), gold.max()) + 1)
    names = class_names or [f"class {i}" for i in range(k)]
    return features_only(name or embeddings.stem, x, given, gold, names, f"precomputed {embeddings.name}")


def features_only(
    name: str, features: np.ndarray, given: np.ndarray, gold: np.ndarray, class_names: list[str], note: str
) -> BenchData:
    """A set with features and labels only (no class-prompt embeddings, so no zero-shot), rows L2-normalised."""
    from labelaudit.encoders import normalize

    return BenchData(
        name=name,
        embeddings=normalize(features),
        given=given,
        gold=gold,
        class_names=class_names,
        class_embeddings=None,
        soft_prompt=None,
        ids=np.arange(len(given)),
        note=note,
    )


# ---- synthetic noise on the clean labels --------------------------------------------------------------


def synthetic_noise(data: BenchData, mode: str, rate: float, seed: int) -> BenchData:
    """Replace the given labels by the gold labels corrupted at ``rate``:
    ``sym`` flips to a uniformly random other class; ``asym`` flips class k to k+1 (class-pair flips);
    ``inst`` flips the samples closest to another class's mean to that class (instance-dependent)."""
    rng = np.random.default_rng(seed)
    gold = data.gold.copy()
    k = len(data.class_names)
    n_flip = int(round(rate * len(gold)))
    given = gold.copy()
    if mode == "inst":
        means = np.stack(
            [
                data.embeddings[gold == c].mean(0) if (gold == c).any() else np.zeros(data.embeddings.shape[1])
                for c in range(k)
            ]
        )
        sims = data.embeddings @ means.T
        sims[np.arange(len(gold)), gold] = -np.inf
        nearest = sims.argmax(1)
        order = np.argsort(-sims.max(1))[:n_flip]
        given[order] = nearest[order]
    else:
        chosen = rng.choice(len(gold), size=n_flip, replace=False)
        if mode == "sym":
            given[chosen] = (gold[chosen] + rng.integers(1, k, size=n_flip)) % k
        elif mode == "asym":
            given[chosen] = (gold[chosen] + 1) % k
        else:
            raise ValueError(f"unknown noise mode {mode!r}")
    return dataclasses.replace(
        data,
        name=f"{data.name} [{mode} {rate:.0%}]",
        given=given,
        gold=gold,
        note=f"{data.note}; synthetic {mode} noise at {rate:.0%} on the gold labels",
    )


# ---- peers -------------------------------------------------------------------------------------------


def cleanlab_default(data: BenchData, seed: int = 0) -> ScorerResult:
    """What a cleanlab user would do: 5-fold cross-validated sklearn LogisticRegression, default settings."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    counts = np.bincount(data.given)
    folds = int(min(5, counts[counts > 0].min())) if counts[counts > 0].min() >= 2 else 2
    probs = cross_val_predict(
        LogisticRegression(max_iter=1000),
        data.embeddings,
        data.given,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        method="predict_proba",
    )
    return ScorerResult(
        quality=get_label_quality_scores(data.given, probs),
        is_issue=find_label_issues(data.given, probs, n_jobs=1),
        suggested=probs.argmax(1),
        pred_probs=probs,
    )


def datalab_features(data: BenchData, seed: int = 0) -> tuple[ScorerResult, float]:
    """The other recipe a cleanlab user runs on embeddings alone: Datalab on features only (its kNN path),
    and its own estimate (the share it flags)."""
    import warnings

    from cleanlab import Datalab

    lab = Datalab(data={"label": data.given}, label_name="label", verbosity=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab.find_issues(features=np.asarray(data.embeddings, dtype=np.float32), issue_types={"label": {}})
    issues = lab.get_issues("label")
    flags = issues["is_label_issue"].to_numpy(dtype=bool)
    result = ScorerResult(
        quality=issues["label_score"].to_numpy(dtype=np.float64),
        is_issue=flags,
        suggested=issues["predicted_label"].to_numpy(),
    )
    return result, float(flags.mean())


def small_loss_gmm(data: BenchData, seed: int = 0) -> ScorerResult:
    """The small-loss criterion of DivideMix-style methods: a 2-component GMM on each sample's
    cross-validated cross-entropy; the high-loss component is flagged."""
    from sklearn.mixture import GaussianMixture

    from labelaudit.scorers.confident import out_of_fold_probabilities

    probs = out_of_fold_probabilities(data.embeddings, data.given, len(data.class_names), 5, seed)
    loss = -np.log(np.clip(probs[np.arange(len(data.given)), data.given], 1e-12, None))
    normalised = ((loss - loss.min()) / max(np.ptp(loss), 1e-12)).reshape(-1, 1)
    gmm = GaussianMixture(2, max_iter=50, tol=1e-2, reg_covar=5e-4, random_state=seed).fit(normalised)
    clean_component = int(gmm.means_.argmin())
    p_clean = gmm.predict_proba(normalised)[:, clean_component]
    return ScorerResult(quality=p_clean, is_issue=p_clean < 0.5, suggested=probs.argmax(1), pred_probs=probs)


# ---- runs --------------------------------------------------------------------------------------------


def labelaudit_methods(data: BenchData, seed: int) -> dict[str, Callable[[], ScorerResult]]:
    def run(method: str, settings: object = None) -> Callable[[], ScorerResult]:
        def call() -> ScorerResult:
            context = ScoreContext(
                embeddings=data.embeddings,
                labels=data.given,
                class_names=data.class_names,
                class_embeddings=data.class_embeddings,
                soft_prompt=data.soft_prompt,
                seed=seed,
            )
            return get_scorer(method).score(context, settings)

        return call

    methods = {
        "deft (embedding, no cross-fit)": run("deft", DeftSettings(variant="embedding", folds=1)),
        "deft (embedding, 5-fold cross-fit)": run("deft", DeftSettings(variant="embedding", folds=5)),
        "confident": run("confident"),
        "zeroshot": run("zeroshot"),
        "knn": run("knn"),
    }
    if data.class_embeddings is None:  # precomputed features without class-prompt embeddings
        del methods["zeroshot"]
    if data.soft_prompt is not None and WITH_PROMPT_VARIANT:
        methods["deft (prompt)"] = run("deft", DeftSettings(variant="prompt"))
    return methods


def estimate_inputs(data: BenchData, seed: int) -> np.ndarray:
    """What the calibrated estimate reads: the mean of the out-of-sample probabilities of
    ``EstimateSettings().methods`` (labelaudit's probe and neighbour vote), computed for ``data``."""
    methods = labelaudit_methods(data, seed)
    return np.mean([methods[m]().pred_probs for m in EstimateSettings().methods], axis=0)


def estimate_columns(estimate: ErrorEstimate, wrong: np.ndarray, rows: np.ndarray) -> dict[str, object]:
    """An estimate as a settings-comparison cell: its rate, interval, lower-bound call and audit power, and
    its own flag cut's count and F1 on ``rows`` (``wrong``: the true mistakes, every row)."""
    flags = estimate.is_issue[rows]
    found = int(np.sum(flags & wrong[rows]))
    return {
        "estimate": round(estimate.rate, 4),
        "interval": [round(estimate.lower, 4), round(estimate.upper, 4)],
        "lower_bound_said": estimate.is_lower_bound,
        "audit_power": round(estimate.power.auroc, 3),
        "flagged": int(flags.sum()),
        "f1": round(2 * found / max(int(flags.sum()) + int(wrong[rows].sum()), 1), 3),
    }


def estimate_cell(column: dict[str, object]) -> str:
    """``estimate_columns`` as markdown: "rate [lower, upper] LB, flags[/wrong labels], F1"."""
    bound = " LB" if column["lower_bound_said"] else ""
    flags = f"{column['flagged']}" + (f"/{column['wrong']}" if "wrong" in column else "")
    low, high = column["interval"]
    return f"{column['estimate']:.1%} [{low:.1%}, {high:.1%}]{bound}, {flags}, {column['f1']:.2f}"


def metrics(
    result: ScorerResult,
    wrong: np.ndarray,
    rows: np.ndarray,
    seconds: float,
    error_probability: np.ndarray | None = None,
) -> dict[str, float]:
    """``error_probability``: a calibrated per-sample posterior, whose mean over the rows is the estimate;
    without it the estimate is the flagged share (what every vote rule and cleanlab's recipes report)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    flags, truth = result.is_issue[rows], wrong[rows]
    tp = float((flags & truth).sum())
    precision = tp / max(flags.sum(), 1)
    recall = tp / max(truth.sum(), 1)
    suspicion = 1.0 - result.quality[rows]
    both = truth.any() and (~truth).any()
    return {
        "flagged": int(flags.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
        "auroc": round(float(roc_auc_score(truth, suspicion)), 4) if both else float("nan"),
        "auprc": round(float(average_precision_score(truth, suspicion)), 4) if both else float("nan"),
        "estimated_error_rate": round(
            float(flags.mean() if error_probability is None else error_probability[rows].mean()), 4
        ),
        "true_error_rate": round(float(truth.mean()), 4),
        "seconds": round(seconds, 2),
    }


def run_dataset(data: BenchData, which_rows: str, seed: int) -> list[dict[str, object]]:
    wrong = data.given != data.gold
    rows = report_rows(data.ids, which_rows)
    results: dict[str, ScorerResult] = {}
    table: list[dict[str, object]] = []
    calls = {
        **labelaudit_methods(data, seed),
        "peer: cleanlab default (CV logistic regression)": lambda: cleanlab_default(data, seed),
        "peer: small-loss GMM": lambda: small_loss_gmm(data, seed),
        "peer: cleanlab Datalab (features only)": lambda: datalab_features(data, seed)[0],
    }
    for name, call in calls.items():
        start = time.perf_counter()
        results[name] = call()
        table.append(
            {"dataset": data.name, "method": name, **metrics(results[name], wrong, rows, time.perf_counter() - start)}
        )
        print(
            f"  {name:48s} " + " ".join(f"{k}={v}" for k, v in table[-1].items() if k not in ("dataset", "method")),
            flush=True,
        )
    if DUMP_DIR is not None:
        DUMP_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(
            DUMP_DIR / f"{data.name}.npz",
            given=data.given,
            gold=data.gold,
            rows=rows,
            **{f"{name}|quality": r.quality for name, r in results.items()},
            **{f"{name}|issue": r.is_issue for name, r in results.items()},
            **{f"{name}|probs": r.pred_probs for name, r in results.items() if r.pred_probs is not None},
        )
    three = ("deft (embedding, 5-fold cross-fit)", "confident", "zeroshot")
    variants = {
        "consensus (deft, confident, zeroshot)": three,
        "consensus (labelaudit default: deft, confident, zeroshot, knn)": (*three, "knn"),
    }
    if "zeroshot" not in results:  # no class-prompt embeddings: the consensus of what ran
        variants = {
            "consensus (deft, confident; no zeroshot)": three[:2],
            "consensus (deft, confident, knn; no zeroshot)": (*three[:2], "knn"),
        }
    for label, members in variants.items():
        start = time.perf_counter()
        consensus = combine({k: results[k] for k in members}, data.given)
        as_result = ScorerResult(quality=consensus.score, is_issue=consensus.is_issue, suggested=consensus.suggested)
        table.append(
            {"dataset": data.name, "method": label, **metrics(as_result, wrong, rows, time.perf_counter() - start)}
        )
        print(
            f"  {label:48s} " + " ".join(f"{k}={v}" for k, v in table[-1].items() if k not in ("dataset", "method")),
            flush=True,
        )
    table.append(calibrated_row(data, results, wrong, rows))
    # The same estimate as the default row's (so no estimate columns): only the flag cut differs.
    rules = EstimateSettings(lower_bound_cut="doubted")
    table.append(calibrated_row(data, results, wrong, rows, rules, RULES_ROW, with_estimate=False))
    # A lower bound's headline from the anchors (the default's where they read no more than its point).
    anchors = EstimateSettings(lower_bound_rate="anchors")
    table.append(calibrated_row(data, results, wrong, rows, anchors, ANCHORS_ROW, with_estimate=False))
    table.append(hindsight_row(data, results, wrong, rows))
    return table


def default_consensus(data: BenchData, results: dict[str, ScorerResult]) -> Consensus:
    """The consensus of the methods `labelaudit audit` runs by default (those of them that ran)."""
    return combine({k: results[k] for k in DEFAULT_MEMBERS if k in results}, data.given)


def audit_ranking(
    data: BenchData, results: dict[str, ScorerResult], settings: EstimateSettings | None = None
) -> Consensus:
    """The ranking `labelaudit audit` cuts (with ``settings``): the default consensus, leaning on the neighbour
    vote where the data are clusterable, as the pipeline's estimate stage decides it."""
    consensus = default_consensus(data, results)
    chosen = settings or EstimateSettings()
    purity_probs = mean_probabilities(results, chosen.neighbour_purity_methods)
    vote = results.get(NEIGHBOUR_VOTE)
    if vote is None or purity_probs is None or chosen.neighbour_min_purity is None:
        return consensus
    predicted = np.argmax(purity_probs, axis=1)
    if data_are_clusterable(chosen, predicted, neighbour_pairs(data, chosen), purity_probs.shape[1]):
        return lean_on_neighbours(consensus, vote)
    return consensus


HINDSIGHT_ROW = "consensus ranking, best cut in hindsight (chosen with the true labels)"


def hindsight_row(
    data: BenchData, results: dict[str, ScorerResult], wrong: np.ndarray, rows: np.ndarray
) -> dict[str, object]:
    """The default consensus ranking cut where F1 on ``rows`` is highest, chosen with the true labels: the
    ceiling of every flag rule on that ranking (no audit can know this cut). A target above it needs a better
    ranking, not a better cut."""
    consensus = audit_ranking(data, results)
    on_rows = np.flatnonzero(rows)
    order = on_rows[np.argsort(consensus.score[on_rows], kind="stable")]
    hits = np.cumsum(wrong[order])
    f1 = 2 * hits / (np.arange(1, len(order) + 1) + max(int(wrong[rows].sum()), 1))
    flags = np.zeros(len(wrong), dtype=bool)
    flags[order[: int(np.argmax(f1)) + 1]] = True
    as_result = ScorerResult(quality=consensus.score, is_issue=flags, suggested=consensus.suggested)
    return {"dataset": data.name, "method": HINDSIGHT_ROW, **metrics(as_result, wrong, rows, 0.0)}


DEFAULT_ROW = "labelaudit default: consensus ranking, calibrated estimate and cut"
# The rows of labelaudit_methods that `labelaudit audit` runs by default (deft,confident,zeroshot,knn).
DEFAULT_MEMBERS = ("deft (embedding, 5-fold cross-fit)", "confident", "zeroshot", "knn")
RULES_ROW = "labelaudit --lower-bound-cut doubted (for labels made by rules)"
ANCHORS_ROW = "labelaudit --lower-bound-rate anchors (for class-pair noise)"


def mean_probabilities(results: dict[str, ScorerResult], methods: tuple[str, ...]) -> np.ndarray | None:
    """The mean of the named methods' probabilities, as an audit gathers them for the estimate (None: none ran)."""
    read = [results[m].pred_probs for m in methods if m in results and results[m].pred_probs is not None]
    return np.mean(read, axis=0) if read else None


_PAIRS: dict[tuple[int, float | None], tuple[np.ndarray, np.ndarray]] = {}


def neighbour_pairs(data: BenchData, settings: EstimateSettings | None = None) -> np.ndarray:
    """Each row's two nearest neighbours that are not copies of it, as the audit pipeline gives them to the
    estimate (one search per data, from the same 20-neighbour graph)."""
    copy_similarity = (settings or EstimateSettings()).neighbour_copy_similarity
    held = _PAIRS.get((id(data), copy_similarity))
    if held is None or held[0] is not data.embeddings:
        from labelaudit.neighbors import NeighborSource
        from labelaudit.neighbour_reading import neighbour_pairs as pairs_of

        graph = NeighborSource(data.embeddings, seed=0).graph(20)
        held = (data.embeddings, pairs_of(graph.indices, graph.similarities, copy_similarity))
        _PAIRS[(id(data), copy_similarity)] = held
    return held[1]


def calibrated_row(
    data: BenchData,
    results: dict[str, ScorerResult],
    wrong: np.ndarray,
    rows: np.ndarray,
    settings: EstimateSettings | None = None,
    method: str = DEFAULT_ROW,
    with_estimate: bool = True,
) -> dict[str, object]:
    """What `labelaudit audit` reports (by default, or with ``settings``): the four methods' consensus ranking,
    the calibrated estimate (on every row, as an audit sees them) and the flag cut it sets, measured on
    ``rows``; ``with_estimate``: also the estimate's interval, power and the truth on every row."""
    start = time.perf_counter()
    consensus = audit_ranking(data, results, settings)
    old_vote = consensus.is_issue  # the flag rule before issue #14 (the methods' majority vote)
    chosen = settings or EstimateSettings()
    probs = mean_probabilities(results, chosen.methods)
    purity_probs = mean_probabilities(results, chosen.neighbour_purity_methods)  # as the pipeline reads them
    estimate = estimate_error_rate(
        consensus.pred_probs if probs is None else probs,
        data.given,
        settings=settings,
        ranking=consensus.score,
        label_free_probs=mean_probabilities(results, chosen.label_free_methods),
        neighbour_pairs=neighbour_pairs(data, chosen) if chosen.reads_neighbours else None,
        neighbour_predictions=None if purity_probs is None else np.argmax(purity_probs, axis=1),
    )
    consensus = follow_estimate(consensus, estimate.error_probability, estimate.rate, estimate.n_flags)
    as_result = ScorerResult(quality=consensus.score, is_issue=consensus.is_issue, suggested=consensus.suggested)
    row: dict[str, object] = {
        "dataset": data.name,
        "method": method,
        **metrics(as_result, wrong, rows, time.perf_counter() - start, estimate.error_probability),
        "estimate_whole_set": round(estimate.rate, 4),  # the rate an audit of every row reports
    }
    if with_estimate:
        row["wrong_on_rows"] = int(wrong[rows].sum())
        row.update(auroc_against_peers(consensus.score, results, wrong, rows, seed=0))
        others = {"old_vote": old_vote, **{k: results[p].is_issue for k, p in CLEANLAB_RECIPES.items() if p in results}}
        row.update(f1_against(consensus.is_issue, others, wrong, rows, seed=0))
        truth = float(wrong.mean())
        row.update(
            {
                "estimate_lower": round(estimate.lower, 4),
                "estimate_upper": round(estimate.upper, 4),
                "estimate_is_lower_bound": estimate.is_lower_bound,
                "audit_power_auroc": round(estimate.power.auroc, 4),
                "true_rate_whole_set": round(truth, 4),
                "truth_in_interval": bool(round(estimate.lower, 4) <= round(truth, 4) <= round(estimate.upper, 4)),
            }
        )
        label_free = estimate.details.get("label_free_reading") or {}  # zero-shot's reading (an upper end)
        row["label_free_rate"] = label_free.get("rate")
        row["label_free_audit_power"] = label_free.get("audit_power")
        neighbours = estimate.details.get("neighbour_reading") or {}  # HOC, where the data are clusterable
        row["neighbour_predicted_purity"] = neighbours.get("predicted_purity")
        row["neighbour_rate"] = neighbours.get("rate")
    print(
        f"  {row['method']:48s} " + " ".join(f"{k}={v}" for k, v in row.items() if k not in ("dataset", "method")),
        flush=True,
    )
    return row


CLEANLAB_RECIPES = {
    "cleanlab_default": "peer: cleanlab default (CV logistic regression)",
    "datalab": "peer: cleanlab Datalab (features only)",
}


def bootstrap_draws(n: int, seed: int, resamples: int = 1000) -> list[np.ndarray]:
    """The row indices of each resample; the AUROC and F1 differences read the same ones."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, n) for _ in range(resamples)]


def auroc_against_peers(
    quality: np.ndarray,
    results: dict[str, ScorerResult],
    wrong: np.ndarray,
    rows: np.ndarray,
    seed: int,
) -> dict[str, object]:
    """The consensus ranking's AUROC minus each cleanlab recipe's on ``rows``, with a paired bootstrap 95 %
    interval (the same resampled rows for both): with a few dozen wrong labels (imdb's report rows hold 39)
    a difference of 0.01-0.02 is within the noise of the rows, and the table should say which are."""
    from scipy.stats import rankdata

    def roc_auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
        # Mann-Whitney with tied scores averaged, as sklearn's roc_auc_score; ~20x cheaper per resample.
        positives = int(labels.sum())
        negatives = len(labels) - positives
        return float((rankdata(scores)[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))

    truth = wrong[rows]
    if truth.all() or not truth.any():
        return {}
    ours = 1.0 - quality[rows]
    draws = [d for d in bootstrap_draws(len(truth), seed) if truth[d].any() and not truth[d].all()]
    out: dict[str, object] = {}
    for key, peer in CLEANLAB_RECIPES.items():
        if peer not in results:
            continue
        theirs = 1.0 - results[peer].quality[rows]
        point = roc_auc_score(truth, ours) - roc_auc_score(truth, theirs)
        deltas = [roc_auc_score(truth[d], ours[d]) - roc_auc_score(truth[d], theirs[d]) for d in draws]
        low, high = np.quantile(deltas, [0.025, 0.975])
        out[f"auroc_minus_{key}"] = round(float(point), 4)
        out[f"auroc_minus_{key}_ci"] = [round(float(low), 4), round(float(high), 4)]
    return out


def f1_against(
    flags: np.ndarray,
    others: dict[str, np.ndarray],
    wrong: np.ndarray,
    rows: np.ndarray,
    seed: int,
) -> dict[str, object]:
    """The flags' F1 minus each other flag rule's on ``rows``, with a paired bootstrap 95 % interval: a
    resample weights every row by how often it was drawn, and both rules' F1 are read from those weights."""
    truth = wrong[rows]
    weights = np.stack([np.bincount(d, minlength=len(truth)) for d in bootstrap_draws(len(truth), seed)])

    def f1(chosen: np.ndarray) -> tuple[float, np.ndarray]:
        def score(w: np.ndarray) -> np.ndarray:
            tp, fp, fn = w @ (chosen & truth), w @ (chosen & ~truth), w @ (~chosen & truth)
            return 2 * tp / np.maximum(2 * tp + fp + fn, 1)

        return float(score(np.ones(len(truth)))), score(weights)

    ours, ours_draws = f1(flags[rows])
    out: dict[str, object] = {}
    for key, theirs_flags in others.items():
        theirs, theirs_draws = f1(theirs_flags[rows])
        low, high = np.quantile(ours_draws - theirs_draws, [0.025, 0.975])
        out[f"f1_minus_{key}"] = round(ours - theirs, 4)
        out[f"f1_minus_{key}_ci"] = [round(float(low), 4), round(float(high), 4)]
    return out


def _difference_table(frame: pd.DataFrame, metric: str, keys: list[str], caption: str) -> list[str]:
    """A table of ``{metric}_minus_{key}`` with their intervals, one line per default row that has them."""
    first = f"{metric}_minus_{keys[0]}"
    if first not in frame:
        return []
    lines = ["", caption, "", "| dataset | wrong labels on these rows | " + " | ".join(keys) + " |"]
    lines.append("|" + "---|" * (len(keys) + 2))
    for _, row in frame[frame[first].notna()].iterrows():
        cells = []
        for key in keys:
            point, interval = row.get(f"{metric}_minus_{key}"), row.get(f"{metric}_minus_{key}_ci")
            cells.append(
                f"{point:+.3f} [{interval[0]:+.3f}, {interval[1]:+.3f}]" if isinstance(interval, list) else "-"
            )
        lines.append(f"| {row['dataset']} | {int(row['wrong_on_rows'])} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(rows: list[dict[str, object]]) -> str:
    frame = pd.DataFrame(rows)
    columns = [
        "dataset",
        "method",
        "precision",
        "recall",
        "f1",
        "auroc",
        "auprc",
        "estimated_error_rate",
        "true_error_rate",
        "flagged",
        "seconds",
    ]
    table = frame[columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    estimate_columns = [
        "dataset",
        "estimate_whole_set",
        "estimate_lower",
        "estimate_upper",
        "true_rate_whole_set",
        "truth_in_interval",
        "estimate_is_lower_bound",
        "audit_power_auroc",
        "label_free_rate",
        "label_free_audit_power",
    ]
    if "estimate_lower" in frame:
        calibrated = frame[frame["estimate_lower"].notna()][estimate_columns]
        lines += ["", "The calibrated estimate on every row (what an audit reports), with its 95 % interval:", ""]
        lines += ["| " + " | ".join(estimate_columns) + " |", "|" + "---|" * len(estimate_columns)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in calibrated.itertuples(index=False)]
    lines += _difference_table(
        frame,
        "auroc",
        list(CLEANLAB_RECIPES),
        "The consensus ranking's AUROC minus each cleanlab recipe's (cleanlab_default: CV logistic regression; "
        "datalab: features only) on these rows, with a paired bootstrap 95 % interval (an interval that holds 0: "
        "the rows cannot tell the two apart):",
    )
    lines += _difference_table(
        frame,
        "f1",
        ["old_vote", *CLEANLAB_RECIPES],
        "The default flag cut's F1 minus the old vote's (a strict majority of the four methods) and each cleanlab "
        "recipe's, with a paired bootstrap 95 % interval:",
    )
    return "\n".join(lines) + "\n"


def load_datasets(args: argparse.Namespace, text_sets: list[str]) -> list[BenchData]:
    """``--embeddings/--labels/--class-names/--name`` when given, else ``text_sets`` embedded with MiniLM
    through the embedding cache in ``--cache-dir``."""
    if args.embeddings is not None:
        names = read_class_names(args.class_names) if args.class_names else None
        return [load_precomputed(args.embeddings, args.labels, names, args.name)]
    if not (ASSETS / "text").is_dir():
        sys.exit(f"shared assets not found at {ASSETS}: pass --embeddings/--labels instead")
    import torch

    from labelaudit.encoders.sentence import SentenceEncoder

    encoder = SentenceEncoder("all-MiniLM-L6-v2", torch.device("cpu"))
    datasets = []
    for name in text_sets:
        print(f"loading {name}", flush=True)
        datasets.append(load_text_set(name, encoder, args.cache_dir))
    return datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=None, help=f"text sets (default all: {' '.join(TEXT_SETS)})")
    parser.add_argument("--quick", action="store_true", help="two small sets only")
    parser.add_argument("--rows", choices=["report", "tune", "all"], default="report")
    parser.add_argument("--embeddings", type=Path, help="precomputed embeddings (.npy or .parquet)")
    parser.add_argument("--labels", type=Path, help="labels for --embeddings (.csv/.parquet: given_label, gold_label)")
    parser.add_argument("--class-names", type=Path, help="class names for --embeddings (one a line, or 'id name')")
    parser.add_argument("--name", help="dataset name for --embeddings in the results (default: the file's stem)")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/labelaudit").expanduser())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "quality")
    parser.add_argument("--dump", type=Path, help="also save every method's scores (npz per dataset) here")
    parser.add_argument(
        "--no-prompt-variant", action="store_true", help="skip DeFT's soft-prompt variant (slow on CPU)"
    )
    parser.add_argument(
        "--synthetic",
        nargs="*",
        choices=["sym", "asym", "inst"],
        help="replace the real noise by synthetic noise of these kinds on the gold labels",
    )
    parser.add_argument("--rates", nargs="*", type=float, default=[0.1, 0.2, 0.4], help="synthetic noise rates")
    args = parser.parse_args()
    global DUMP_DIR, WITH_PROMPT_VARIANT
    DUMP_DIR = args.dump
    WITH_PROMPT_VARIANT = not args.no_prompt_variant

    datasets = load_datasets(args, args.datasets or (QUICK_SETS if args.quick else TEXT_SETS))
    rows: list[dict[str, object]] = []
    if args.synthetic:
        datasets = [
            synthetic_noise(dataclasses.replace(d, given=d.gold), mode, rate, args.seed)
            for d in datasets
            for mode in args.synthetic
            for rate in args.rates
        ]
    for data in datasets:
        print(
            f"{data.name}: {len(data.given)} samples, {len(data.class_names)} classes, "
            f"{(data.given != data.gold).mean():.2%} wrong ({data.note})",
            flush=True,
        )
        rows += run_dataset(data, args.rows, args.seed)
    meta = {"rows": args.rows, "seed": args.seed, "datasets": {d.name: d.note for d in datasets}}
    write_results(
        args.out,
        {"meta": meta, "results": rows},
        f"Rows: {args.rows}. {json.dumps(meta['datasets'])}\n\n" + to_markdown(rows),
    )
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
