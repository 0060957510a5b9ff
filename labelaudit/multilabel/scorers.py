"""Per-(sample, class) scorers for tag sets, all out-of-sample, over plain arrays.

Every scorer returns a ``PairResult``: for each pair the probability that the tag should be present, and two
flags, *missing* (not given, looks present) and *spurious* (given, looks absent). The four kinds of evidence
are those of the single-label product, each turned into one binary question per class:

- ``confident``: a cross-validated one-vs-rest logistic-regression probe, fed to cleanlab's multi-label path
  (``find_multilabel_issues_per_class`` for the pairs, ``find_label_issues`` and ``get_label_quality_scores``
  for the samples);
- ``knn``: the similarity-weighted share of a sample's nearest neighbours that carry each tag;
- ``zeroshot``: the similarity to each class prompt, turned into a probability by a per-class logistic fit
  (two numbers per class: a slope and a threshold);
- ``deft``: a learned positive and negative prompt per class (``labelaudit.multilabel.deft``).

Classes with fewer than ``MIN_CLASS_ROWS`` given positives or negatives cannot be learned by any of these;
their pairs get the class's share as probability and are never flagged (``PairResult.scored``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..chunked import project, row_blocks, rows_float32
from ..errors import LabelAuditError
from ..progress import QUIET, Reporter

if TYPE_CHECKING:
    from ..neighbors import NeighborGraph, NeighborSource
    from ..scorers import FoldRunner

MIN_CLASS_ROWS = 3  # given positives and negatives a class needs before it is judged
PROBE_MAX_TRAIN_ROWS = 100_000
DEFAULT_KNN_K = 20


@dataclass
class MultilabelContext:
    embeddings: np.ndarray  # (N, D) L2-normalised, float16 or float32
    tags: np.ndarray  # (N, K) bool: the given tag sets
    class_names: list[str]  # prompt names, one per class
    class_embeddings: np.ndarray | None = None  # (K, D) class-prompt embeddings, L2-normalised
    logit_scale: float | None = None
    soft_prompt: Any | None = None  # labelaudit.encoders.SoftPromptModel, for DeFT's prompt variant
    seed: int = 0
    folds: int = 5
    options: dict[str, Any] = field(default_factory=dict)
    reporter: Reporter = QUIET
    neighbors: NeighborSource | None = None  # shared with the single-label consumers when the pipeline has one
    fold_runner: FoldRunner | None = None

    def __post_init__(self) -> None:
        self.tags = np.asarray(self.tags, dtype=bool)
        if self.tags.ndim != 2 or len(self.tags) != len(self.embeddings):
            raise ValueError(f"tags must be (N, K) with N = {len(self.embeddings)} rows, got {self.tags.shape}")
        if self.tags.shape[1] != len(self.class_names):
            raise ValueError(f"{self.tags.shape[1]} tag columns but {len(self.class_names)} class names")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def neighbor_graph(self, k: int) -> NeighborGraph:
        if self.neighbors is None:
            from ..neighbors import NeighborSource

            self.neighbors = NeighborSource(self.embeddings, seed=self.seed)
        return self.neighbors.graph(k)

    def with_tags(self, tags: np.ndarray) -> MultilabelContext:
        """The same data with other tag sets (the calibration's corrupted copy); the neighbour graph is shared."""
        from dataclasses import replace

        if self.neighbors is None:
            from ..neighbors import NeighborSource

            self.neighbors = NeighborSource(self.embeddings, seed=self.seed)
        return replace(self, tags=np.asarray(tags, dtype=bool))


@dataclass
class PairResult:
    probs: np.ndarray  # (N, K) float32: out-of-sample probability that the tag should be present
    missing: np.ndarray  # (N, K) bool: not given, looks present
    spurious: np.ndarray  # (N, K) bool: given, looks absent
    scored: np.ndarray  # (K,) bool: classes this method could judge
    settings: dict[str, Any] = field(default_factory=dict)
    sample_issue: np.ndarray | None = None  # (N,) bool, where the method has a per-sample rule (cleanlab)
    sample_quality: np.ndarray | None = None  # (N,) in [0, 1], low = suspect

    @property
    def flagged(self) -> np.ndarray:
        return self.missing | self.spurious

    @classmethod
    def thresholded(
        cls, tags: np.ndarray, probs: np.ndarray, scored: np.ndarray, settings: dict[str, Any]
    ) -> PairResult:
        """The result of a method whose flag rule is the 1/2 threshold (``threshold_flags``): pairs of a class
        it could not judge get the class's given share first (``probs`` is changed in place)."""
        _unscored(probs, tags, scored)
        missing, spurious = threshold_flags(tags, probs, scored)
        return cls(probs=probs, missing=missing, spurious=spurious, scored=scored, settings=settings)


def learnable_classes(tags: np.ndarray, minimum: int = MIN_CLASS_ROWS) -> np.ndarray:
    """(K,) bool: classes with at least ``minimum`` given positives and ``minimum`` given negatives."""
    positives = tags.sum(axis=0)
    return (positives >= minimum) & (len(tags) - positives >= minimum)


def threshold_flags(tags: np.ndarray, probs: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Missing: not given and p > 1/2; spurious: given and p < 1/2 (an exact 1/2 keeps the given answer)."""
    missing = ~tags & (probs > 0.5) & scored[None, :]
    spurious = tags & (probs < 0.5) & scored[None, :]
    return missing, spurious


def _unscored(probs: np.ndarray, tags: np.ndarray, scored: np.ndarray) -> None:
    """Pairs of a class nothing can learn get the class's given share: no evidence either way."""
    share = tags.mean(axis=0) if len(tags) else np.zeros(tags.shape[1])
    probs[:, ~scored] = share[~scored]


# ---- folds ---------------------------------------------------------------------------------------------


def rarest_tag(tags: np.ndarray) -> np.ndarray:
    """(N,) each row's rarest given tag (K for an untagged row): the stratum the folds and subsamples keep."""
    counts = tags.sum(axis=0).astype(np.float64)
    masked = np.where(tags, counts[None, :], np.inf)
    return np.where(tags.any(axis=1), masked.argmin(axis=1), tags.shape[1])


def multilabel_folds(tags: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id per sample, stratified on each row's rarest tag so every class, rare ones too, is spread over
    the folds (the single-label helper on that stratum; full iterative stratification buys little here)."""
    from ..scorers._cleanlab import stratified_folds

    return stratified_folds(rarest_tag(tags), n_folds, seed)


def _fold_count(context: MultilabelContext) -> int:
    return max(2, min(context.folds, len(context.tags)))


# ---- confident: one-vs-rest probe + cleanlab -----------------------------------------------------------


def fit_fold_ovr(
    embeddings: np.ndarray,
    tags: np.ndarray,
    strata: np.ndarray,
    fold_ids: np.ndarray,
    fold: int,
    seed: int,
    c: float,
    max_train_rows: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One logistic regression per class without fold ``fold``, predicting it: (held-out rows, (n, K) probs).

    A module-level function of plain arrays, so a FoldRunner (Ray) can run it as a task."""
    from threadpoolctl import threadpool_limits

    from ..scorers.confident import stratified_subsample

    held_out = np.flatnonzero(fold_ids == fold)
    probs = np.zeros((len(held_out), tags.shape[1]), dtype=np.float32)
    if not len(held_out):
        return held_out, probs
    train = stratified_subsample(np.flatnonzero(fold_ids != fold), strata, max_train_rows, seed + fold)
    x_train = rows_float32(embeddings, train)
    # K small fits in a row: BLAS threads only contend with each other (17x slower on a busy 2-core box).
    with threadpool_limits(1):
        _fit_classes(embeddings, tags, train, held_out, x_train, probs, seed, c)
    return held_out, probs


def _fit_classes(
    embeddings: np.ndarray,
    tags: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
    x_train: np.ndarray,
    probs: np.ndarray,
    seed: int,
    c: float,
) -> None:
    from sklearn.linear_model import LogisticRegression

    for k in range(tags.shape[1]):
        y = tags[train, k]
        if y.all() or not y.any():  # this fold's training rows hold one answer only: predict it
            probs[:, k] = float(y.mean()) if len(y) else 0.0
            continue
        model = LogisticRegression(C=c, max_iter=1000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on tiny folds are expected and harmless
            model.fit(x_train, y)
        for block in row_blocks(len(held_out)):
            probs[block, k] = model.predict_proba(rows_float32(embeddings, held_out[block]))[:, 1]


def out_of_fold_ovr(context: MultilabelContext, folds: int, c: float = 1.0, task: Any | None = None) -> np.ndarray:
    from ..scorers import SerialFolds

    fold_ids = multilabel_folds(context.tags, folds, context.seed)
    jobs = [{"fold": f, "seed": context.seed, "c": c, "max_train_rows": PROBE_MAX_TRAIN_ROWS} for f in range(folds)]
    shared = {
        "embeddings": context.embeddings,
        "tags": context.tags,
        "strata": rarest_tag(context.tags),
        "fold_ids": fold_ids,
    }
    probs = np.zeros(context.tags.shape, dtype=np.float32)
    for held_out, fold_probs in (context.fold_runner or SerialFolds()).map(fit_fold_ovr, shared, jobs, task):
        probs[held_out] = fold_probs
    return probs


def cleanlab_pairs(tags: np.ndarray, probs: np.ndarray, scored: np.ndarray) -> dict[str, np.ndarray]:
    """cleanlab's multi-label verdicts on the scored classes: per-pair issues, per-sample issues and quality."""
    from cleanlab.multilabel_classification.filter import find_label_issues, find_multilabel_issues_per_class
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    n, k = tags.shape
    pair_issue = np.zeros((n, k), dtype=bool)
    columns = np.flatnonzero(scored)
    if not len(columns):
        return {"pair_issue": pair_issue, "sample_issue": np.zeros(n, bool), "sample_quality": np.ones(n)}
    sub_tags = tags[:, columns]
    labels = [np.flatnonzero(row).tolist() for row in sub_tags]
    sub_probs = np.clip(np.asarray(probs[:, columns], dtype=np.float64), 1e-6, 1 - 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about small classes; learnable_classes screened them
        pair_issue[:, columns] = find_multilabel_issues_per_class(labels, sub_probs, n_jobs=1)
        sample_issue = np.asarray(find_label_issues(labels, sub_probs, n_jobs=1), dtype=bool)
        quality = np.asarray(get_label_quality_scores(labels, sub_probs), dtype=np.float64)
    return {"pair_issue": pair_issue, "sample_issue": sample_issue, "sample_quality": quality}


def score_confident(context: MultilabelContext) -> PairResult:
    folds = _fold_count(context)
    c = float(context.options.get("probe_c", 1.0))
    scored = learnable_classes(context.tags)
    with context.reporter.task("Scoring tags: confident (cross-validated probe)", total=folds) as task:
        probs = out_of_fold_ovr(context, folds, c, task)
    _unscored(probs, context.tags, scored)
    verdict = cleanlab_pairs(context.tags, probs, scored)
    issue = verdict["pair_issue"]
    return PairResult(
        probs=probs,
        missing=issue & ~context.tags,
        spurious=issue & context.tags,
        scored=scored,
        sample_issue=verdict["sample_issue"],
        sample_quality=verdict["sample_quality"],
        settings={
            "model": "one-vs-rest logistic regression",
            "C": c,
            "folds": folds,
            "folds_stratified_on": "each row's rarest tag",
            "pair_flags": "cleanlab.multilabel_classification.filter.find_multilabel_issues_per_class",
            "sample_flags": "cleanlab.multilabel_classification.filter.find_label_issues (prune_by_noise_rate)",
            "sample_quality": "cleanlab.multilabel_classification.rank.get_label_quality_scores",
        },
    )


# ---- knn: neighbours' tags ----------------------------------------------------------------------------


def neighbor_tag_shares(indices: np.ndarray, similarities: np.ndarray, tags: np.ndarray, weighting: str) -> np.ndarray:
    """(n, K) similarity-weighted share of each row's neighbours that carry each tag; NaN without neighbours."""
    from ..scorers.knn import neighbor_weights

    weights = neighbor_weights(similarities, weighting)
    weights[indices < 0] = 0.0
    neighbour_tags = tags[np.clip(indices, 0, None)].astype(np.float64)  # (n, k, K)
    total = weights.sum(axis=1)
    shares = np.einsum("nj,njk->nk", weights, neighbour_tags)
    with np.errstate(invalid="ignore", divide="ignore"):
        return shares / total[:, None]


def score_knn(context: MultilabelContext) -> PairResult:
    from ..scorers.knn import KnnSettings

    k = int(context.options.get("knn_k", DEFAULT_KNN_K))
    weighting = str(context.options.get("knn_weighting", KnnSettings().weighting))
    scored = learnable_classes(context.tags)
    n = len(context.tags)
    probs = np.empty(context.tags.shape, dtype=np.float32)
    share = context.tags.mean(axis=0)
    with context.reporter.task("Scoring tags: knn (neighbours' tags)", total=1) as task:
        graph = context.neighbor_graph(k)
        # Blocks of 4096 rows: the gathered (rows, k, K) neighbour tags are the peak.
        for block in row_blocks(n, 4096):
            part = neighbor_tag_shares(graph.indices[block], graph.similarities[block], context.tags, weighting)
            probs[block] = np.where(np.isnan(part), share[None, :], part)
        task.advance()
    return PairResult.thresholded(
        context.tags,
        probs,
        scored,
        {
            "k": graph.k,
            "weighting": weighting,
            "flag_rule": "the weighted majority of the neighbours disagrees with the given tag",
            "search": graph.settings.get("method"),
            "recall_at_k": graph.settings.get("recall_at_k"),
        },
    )


# ---- zeroshot: class prompts, one logistic fit per class ---------------------------------------------


def platt_fit(similarity: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of P(tag) = sigmoid(slope * similarity + intercept), nearly unregularised."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4, max_iter=1000)
    model.fit(similarity.reshape(-1, 1).astype(np.float64), target)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def score_zeroshot(context: MultilabelContext) -> PairResult:
    if context.class_embeddings is None:
        raise LabelAuditError("the zeroshot method needs class-prompt embeddings from the encoder")
    sims = project(context.embeddings, context.class_embeddings)  # (N, K) float32
    folds = _fold_count(context)
    fold_ids = multilabel_folds(context.tags, folds, context.seed)
    scored = learnable_classes(context.tags)
    probs = np.empty(sims.shape, dtype=np.float32)
    thresholds: dict[str, float | None] = {}
    with context.reporter.task("Scoring tags: zeroshot (per-class threshold)", total=1) as task:
        for k in range(context.n_classes):
            if not scored[k]:
                continue
            slope, intercept = platt_fit(sims[:, k], context.tags[:, k])
            if slope <= 0:  # more similar to the prompt is not more likely tagged: the prompt says nothing
                scored[k] = False
                continue
            thresholds[context.class_names[k]] = round(-intercept / slope, 4)
            # Cross-fitted like the other methods, although two numbers per class can hardly memorise a tag.
            for fold in range(folds):
                held_out, train = fold_ids == fold, fold_ids != fold
                y = context.tags[train, k]
                if y.all() or not y.any():
                    probs[held_out, k] = float(y.mean()) if len(y) else 0.0
                    continue
                a, b = platt_fit(sims[train, k], y)
                probs[held_out, k] = 1.0 / (1.0 + np.exp(-(a * sims[held_out, k] + b)))
        task.advance()
    return PairResult.thresholded(
        context.tags,
        probs,
        scored,
        {
            "calibration": "per-class logistic fit of the prompt similarity, cross-fitted",
            "thresholds": thresholds,
            "folds": folds,
            "flag_rule": "the calibrated probability is on the other side of 1/2 from the given tag",
        },
    )


def score_deft(context: MultilabelContext) -> PairResult:
    from .deft import score_deft as run

    return run(context)


METHODS: dict[str, Callable[[MultilabelContext], PairResult]] = {
    "deft": score_deft,
    "confident": score_confident,
    "zeroshot": score_zeroshot,
    "knn": score_knn,
}
# Zero-shot is available but not a default: on the 20news tune rows (MiniLM, prompts of the tag names) its
# pair AUROC was 0.92 against 0.98-0.99 for the others, and averaging it in lowered the consensus's pair AUPRC
# from 0.63 to 0.54 and its sample AUROC from 0.93 to 0.89 (10 % random errors; the same with confusable ones).
DEFAULT_METHODS = ("deft", "confident", "knn")


def run_methods(
    context: MultilabelContext, methods: list[str] | tuple[str, ...] | None = None
) -> dict[str, PairResult]:
    """Every method in ``methods`` (default ``DEFAULT_METHODS``)."""
    names = list(methods or DEFAULT_METHODS)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise LabelAuditError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}")
    return {name: METHODS[name](context) for name in names}
