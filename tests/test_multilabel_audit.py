"""The multi-label scorers, their consensus, the calibrated error rates and the report tables, on small
synthetic tag sets whose true tags are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelaudit.multilabel import combine
from labelaudit.multilabel.audit import audit_tags
from labelaudit.multilabel.combine import (
    PairConsensus,
    decide,
    inject_errors,
    mixture_proportion,
    pair_consensus,
    top_pairs,
)
from labelaudit.multilabel.scorers import (
    MultilabelContext,
    PairResult,
    fit_fold_ovr,
    learnable_classes,
    multilabel_folds,
    rarest_tag,
    run_methods,
)
from labelaudit.multilabel.tables import for_csv, report_tables
from labelaudit.multilabel.tags import parse_tag_column

CLASSES = ["red", "green", "blue", "round", "large", "shiny"]


def tag_data(n: int = 400, seed: int = 0, noise: float = 0.35) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, true tags, class directions): each class is a direction, a sample the sum of its tags'
    directions plus noise, centred (so no common direction can stand in for a threshold) and normalised."""
    rng = np.random.default_rng(seed)
    k, d = len(CLASSES), 24
    directions = np.linalg.qr(rng.normal(size=(d, k)))[0].T  # orthonormal class directions
    tags = rng.random((n, k)) < 0.3
    tags[~tags.any(axis=1), 0] = True
    x = tags.astype(float) @ directions + noise * rng.normal(size=(n, d))
    x -= x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), tags, directions.astype(np.float32)


FAST = {"deft_folds": 2}  # cross-fitting on 2 folds: half the optimiser steps of the default 5


def context(x: np.ndarray, tags: np.ndarray, prompts: np.ndarray | None = None, **options: object) -> MultilabelContext:
    return MultilabelContext(
        embeddings=x, tags=tags, class_names=CLASSES, class_embeddings=prompts, options={**FAST, **options}
    )


@pytest.fixture(scope="module")
def noisy() -> dict[str, np.ndarray]:
    x, truth, prompts = tag_data()
    injection = inject_errors(truth, 0.1, seed=5)
    return {"x": x, "truth": truth, "prompts": prompts, "given": injection.tags, "wrong": injection.tags != truth}


@pytest.fixture(scope="module")
def noisy_results(noisy: dict[str, np.ndarray]) -> dict[str, PairResult]:
    return run_methods(context(noisy["x"], noisy["given"], noisy["prompts"]), ["deft", "confident", "zeroshot", "knn"])


def auroc(truth: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth.ravel(), score.ravel()))


# ---- scorers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["confident", "knn", "zeroshot", "deft"])
def test_every_method_ranks_the_wrong_pairs_first_and_flags_in_the_right_direction(
    method: str, noisy: dict[str, np.ndarray], noisy_results: dict[str, PairResult]
) -> None:
    result = noisy_results[method]
    given, wrong = noisy["given"], noisy["wrong"]
    assert result.probs.shape == given.shape
    assert ((result.probs >= 0) & (result.probs <= 1)).all()
    assert auroc(wrong, np.abs(given - result.probs)) > 0.9
    assert not (result.missing & given).any(), "a missing flag on a tag that is given"
    assert not (result.spurious & ~given).any(), "a spurious flag on a tag that is not given"
    caught = (result.flagged & wrong).sum() / wrong.sum()
    precision = (result.flagged & wrong).sum() / max(result.flagged.sum(), 1)
    # Flags are enriched for errors well beyond their base rate (kNN and DeFT flag loosely on 400 rows of
    # independent tags; the consensus calibrates the count, see below).
    assert caught > 0.5 and precision > 3 * wrong.mean(), (method, caught, precision)


def test_confident_uses_cleanlabs_multilabel_verdicts_for_pairs_and_samples(
    noisy: dict[str, np.ndarray], noisy_results: dict[str, PairResult]
) -> None:
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class

    result = noisy_results["confident"]
    labels = [np.flatnonzero(row).tolist() for row in noisy["given"]]
    expected = find_multilabel_issues_per_class(labels, np.clip(result.probs.astype(np.float64), 1e-6, 1 - 1e-6))
    assert np.array_equal(result.flagged, expected)
    assert result.sample_issue is not None and result.sample_quality is not None
    assert result.sample_issue.shape == (len(labels),)


def test_the_probe_never_sees_the_tags_of_the_fold_it_predicts() -> None:
    x, tags, _ = tag_data(n=120)
    fold_ids = multilabel_folds(tags, 3, seed=0)
    strata = rarest_tag(tags)
    scrambled = tags.copy()
    held = fold_ids == 1
    scrambled[held] = np.random.default_rng(1).random((held.sum(), tags.shape[1])) < 0.5
    kwargs = {"fold_ids": fold_ids, "fold": 1, "seed": 0, "c": 1.0, "max_train_rows": 10_000, "strata": strata}
    rows_a, probs_a = fit_fold_ovr(x, tags, **kwargs)
    rows_b, probs_b = fit_fold_ovr(x, scrambled, **kwargs)
    assert np.array_equal(rows_a, np.flatnonzero(held))
    assert np.allclose(probs_a, probs_b)


def test_knn_and_deft_score_a_sample_without_its_own_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    from labelaudit.multilabel import deft

    x, tags, _ = tag_data(n=150)
    fixed = np.arange(len(tags)) % 3
    monkeypatch.setattr(deft, "multilabel_folds", lambda tags, n, seed: fixed)
    flipped = tags.copy()
    flipped[fixed == 0] = ~flipped[fixed == 0]
    for method in ("knn", "deft"):
        a = run_methods(context(x, tags, deft_folds=3, deft_epochs=2), [method])[method].probs
        b = run_methods(context(x, flipped, deft_folds=3, deft_epochs=2), [method])[method].probs
        if method == "deft":  # cross-fitted: the held-out fold's own tags never reach its prompts
            assert np.allclose(a[fixed == 0], b[fixed == 0], atol=1e-6)
        else:  # a neighbour list never holds the sample itself
            graph = context(x, tags).neighbor_graph(20)
            row = 0
            assert row not in graph.indices[row]
            others = np.setdiff1d(np.arange(len(tags)), graph.indices[row])
            assert len(others) > 0


def test_deft_learns_a_threshold_for_a_rare_tag_on_centred_features() -> None:
    x, tags, _ = tag_data(n=400, seed=3)
    result = run_methods(context(x, tags, deft_folds=2), ["deft"])["deft"]
    # Without the per-class offset absent pairs sat near 1/2 on centred features.
    assert result.probs[~tags].mean() < 0.2
    assert result.probs[tags].mean() > 0.6


def test_zeroshot_needs_class_prompts_and_is_no_default_method() -> None:
    from labelaudit.errors import LabelAuditError

    x, tags, _ = tag_data(n=60)
    with pytest.raises(LabelAuditError, match="class-prompt embeddings"):
        run_methods(context(x, tags), ["zeroshot"])
    assert list(run_methods(context(x, tags, deft_epochs=1))) == ["deft", "confident", "knn"]


def test_unknown_method_is_a_clear_error() -> None:
    from labelaudit.errors import LabelAuditError

    x, tags, _ = tag_data(n=30)
    with pytest.raises(LabelAuditError, match="unknown method.*choose from"):
        run_methods(context(x, tags), ["magic"])


def test_a_class_too_rare_to_learn_is_never_flagged() -> None:
    x, tags, _ = tag_data(n=100)
    tags[:, 5] = False
    tags[:2, 5] = True  # two given positives: below MIN_CLASS_ROWS
    assert not learnable_classes(tags)[5]
    results = run_methods(context(x, tags, deft_epochs=2, deft_folds=2), ["confident", "knn", "deft"])
    for result in results.values():
        assert not result.scored[5]
        assert not result.flagged[:, 5].any()
    consensus = pair_consensus(results, tags)
    assert not consensus.scored[5] and (consensus.suspicion[:, 5] == 0).all()


def test_folds_spread_every_class_over_the_folds() -> None:
    tags = np.zeros((50, 3), dtype=bool)
    tags[:, 0] = True
    tags[:5, 1] = True  # a rare class: five rows over five folds
    tags[5:15, 2] = True
    folds = multilabel_folds(tags, 5, seed=0)
    assert sorted(folds[:5]) == [0, 1, 2, 3, 4]
    assert len(set(folds[5:15])) == 5


# ---- consensus, calibration, decisions ---------------------------------------------------------------


def test_mixture_proportion_recovers_a_known_share_and_zero() -> None:
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.0, 0.6, size=20_000)
    errors = rng.uniform(0.4, 1.0, size=2_000)
    for share in (0.0, 0.01, 0.05, 0.2):
        n_err = int(share * 20_000)
        mixture = np.concatenate([clean[: 20_000 - n_err], rng.uniform(0.4, 1.0, size=n_err)])
        assert mixture_proportion(mixture, errors) == pytest.approx(share, abs=0.01 + 0.15 * share)
    assert np.isnan(mixture_proportion(clean, np.array([])))
    assert mixture_proportion(np.array([]), errors) == 0.0


def test_inject_errors_puts_one_error_in_the_asked_share_of_samples_on_judged_classes_only() -> None:
    _, tags, _ = tag_data(n=500)
    scored = np.array([True, True, True, True, True, False])
    injection = inject_errors(tags, 0.2, seed=1, scored=scored)
    assert injection.samples.sum() == 100
    assert ((injection.missing | injection.spurious).sum(axis=1) <= 1).all()
    assert not (injection.missing | injection.spurious)[:, 5].any()
    assert (tags[injection.missing]).all() and (~tags[injection.spurious]).all()
    assert np.array_equal(injection.tags, tags ^ (injection.missing | injection.spurious))
    assert 30 < injection.missing.sum() < 70  # about half and half


def test_top_pairs_takes_the_most_suspect_candidates() -> None:
    suspicion = np.array([[0.9, 0.1], [0.5, 0.8]])
    candidates = np.array([[True, True], [True, False]])
    assert top_pairs(suspicion, candidates, 2).tolist() == [[True, False], [True, False]]
    assert not top_pairs(suspicion, candidates, 0).any()


def test_majority_needs_more_than_half_of_the_methods_that_judged_the_class() -> None:
    consensus = PairConsensus(
        probs=np.zeros((1, 2), np.float32),
        suspicion=np.zeros((1, 2)),
        missing_votes=np.array([[2, 1]]),
        spurious_votes=np.zeros((1, 2), int),
        n_methods=np.array([3, 2]),
        quality=np.ones(1),
    )
    missing, _ = consensus.majority()
    assert missing.tolist() == [[True, False]]


AUDIT_METHODS = None  # the defaults


@pytest.fixture(scope="module")
def clean_audit():
    x, truth, prompts = tag_data(n=500, seed=11, noise=0.3)
    return truth, audit_tags(context(x, truth, prompts), AUDIT_METHODS)


@pytest.fixture(scope="module")
def noisy_audit(noisy: dict[str, np.ndarray]):
    return audit_tags(context(noisy["x"], noisy["given"], noisy["prompts"]), AUDIT_METHODS)


def test_a_clean_tag_set_comes_back_nearly_clean(clean_audit) -> None:
    truth, audit = clean_audit
    estimate = audit.decisions.estimate
    assert estimate is not None
    # No error at all: the estimate may only reflect the detector's own false alarms, a fraction of a percent.
    assert estimate.pair_error_rate < 0.005
    assert estimate.sample_error_rate < 0.03
    assert audit.decisions.is_issue.mean() < 0.03
    # The uncalibrated majority vote flags more than the calibrated rule on the same scores.
    majority = decide(truth, audit.consensus, None, "majority")
    assert (majority.missing | majority.spurious).sum() >= (audit.decisions.missing | audit.decisions.spurious).sum()


def test_the_error_rates_of_a_noisy_tag_set_are_near_the_truth(noisy: dict[str, np.ndarray], noisy_audit) -> None:
    estimate = noisy_audit.decisions.estimate
    true_pair = noisy["wrong"].mean()
    true_sample = noisy["wrong"].any(axis=1).mean()
    assert true_pair / 2 < estimate.pair_error_rate < true_pair * 2
    assert true_sample / 2 < estimate.sample_error_rate < true_sample * 2
    d = noisy_audit.decisions
    # What is flagged is what is estimated, and most of it is right.
    assert d.missing.sum() == estimate.missing_pairs and d.spurious.sum() == estimate.spurious_pairs
    flags = d.missing | d.spurious
    assert (flags & noisy["wrong"]).sum() / flags.sum() > 0.5  # base rate: under 2 % of the pairs
    assert np.array_equal(d.suggested, noisy["given"] ^ flags)


def test_calibration_scores_the_copy_with_the_same_methods(
    noisy: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    from labelaudit.multilabel import audit as audit_module

    seen: list[tuple[list[str], bool]] = []
    real = audit_module.run_methods

    def spy(ctx: MultilabelContext, methods: list[str] | None = None) -> dict[str, PairResult]:
        seen.append((list(methods or []), np.array_equal(ctx.tags, noisy["given"])))
        return real(ctx, methods)

    monkeypatch.setattr(audit_module, "run_methods", spy)
    audit = audit_tags(context(noisy["x"], noisy["given"]), ["knn", "confident"])
    # The real tags first, then the corrupted copies: 400 rows need 5 copies for 200 errors of each kind.
    assert seen == [(["knn", "confident"], True)] + [(["knn", "confident"], False)] * 5
    assert audit.calibration is not None
    assert [int(i.samples.sum()) for i in audit.calibration.injections] == [40] * 5
    assert audit.summary()["estimated_pair_error_rate"] == pytest.approx(audit.decisions.estimate.pair_error_rate, 1e-4)


def test_without_calibration_the_flags_are_the_majority_and_no_rate_is_estimated(noisy: dict[str, np.ndarray]) -> None:
    audit = audit_tags(context(noisy["x"], noisy["given"]), ["knn", "confident"], calibrated=False)
    assert audit.calibration is None and audit.decisions.estimate is None
    assert audit.decisions.flag_rule == "majority"
    assert "estimated_pair_error_rate" not in audit.summary()
    with pytest.raises(ValueError, match="needs a calibration"):
        combine.decide(noisy["given"], audit.consensus, None, "calibrated")


# ---- report tables -----------------------------------------------------------------------------------


def test_report_tables_list_given_suggested_missing_and_spurious_tags(
    noisy: dict[str, np.ndarray], noisy_audit
) -> None:
    ids = [f"s{i}" for i in range(len(noisy["given"]))]
    samples, classes = report_tables(noisy_audit, ids)
    assert list(samples.columns[:6]) == [
        "rank",
        "sample_id",
        "given_tags",
        "suggested_tags",
        "missing_tags",
        "spurious_tags",
    ]
    assert samples["rank"].tolist() == list(range(1, len(ids) + 1))
    assert samples["quality"].is_monotonic_increasing
    for row in samples.itertuples():
        given, suggested = set(row.given_tags), set(row.suggested_tags)
        assert suggested == (given | set(row.missing_tags)) - set(row.spurious_tags)
        assert row.is_issue == bool(row.missing_tags or row.spurious_tags)
    # One row per class with its flagged counts; rates over the samples not given / given the tag.
    assert sorted(classes["class"]) == sorted(CLASSES)
    assert classes["flagged_missing"].sum() == noisy_audit.decisions.missing.sum()
    red = classes.set_index("class").loc["red"]
    given_red = noisy["given"][:, 0].sum()
    assert red["spurious_rate"] == pytest.approx(red["flagged_spurious"] / given_red)
    assert red["missing_rate"] == pytest.approx(red["flagged_missing"] / (len(ids) - given_red))


def test_the_csv_form_of_the_tables_reads_back_as_the_same_tag_sets(noisy_audit, tmp_path) -> None:
    ids = [str(i) for i in range(len(noisy_audit.tags))]
    samples, _ = report_tables(noisy_audit, ids)
    samples.to_parquet(tmp_path / "report.parquet")
    for_csv(samples, "|").to_csv(tmp_path / "report.csv", index=False)
    back = pd.read_csv(tmp_path / "report.csv", dtype=str, keep_default_na=False)
    parsed = parse_tag_column(back["suggested_tags"].tolist(), sep="|", classes=CLASSES, allow_empty=True)
    expected = [list(v) for v in pd.read_parquet(tmp_path / "report.parquet")["suggested_tags"]]
    assert [sorted(v) for v in parsed.tag_lists()] == [sorted(v) for v in expected]


def test_the_csv_form_refuses_a_tag_holding_the_separator() -> None:
    from labelaudit.errors import DataError

    with pytest.raises(DataError, match="contains the separator"):
        for_csv(pd.DataFrame({"given_tags": [["a|b"]]}), "|")


def test_deft_prompt_variant_trains_the_tag_detectors_through_the_text_tower(tiny_encoder) -> None:
    soft = tiny_encoder.soft_prompt_model()
    dim = tiny_encoder.encode_texts(["a"]).shape[1]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tags = rng.random((120, 3)) < 0.4
    ctx = MultilabelContext(
        embeddings=x,
        tags=tags,
        class_names=["red", "green", "blue"],
        soft_prompt=soft,
        options={"deft_variant": "prompt", "deft_epochs": 1, "deft_ctx": 4, "deft_batch_size": 60, "deft_folds": 2},
    )
    result = run_methods(ctx, ["deft"])["deft"]
    assert result.settings["variant"] == "prompt"
    assert result.probs.shape == (120, 3) and np.isfinite(result.probs).all()


def test_the_pair_error_rate_weighs_each_kind_by_its_pairs() -> None:
    """1 % of 9,000 absent pairs missing and 10 % of 1,000 present ones spurious: 190 of 10,000 pairs."""
    estimate = combine.ErrorEstimate(
        missing_share=0.01, spurious_share=0.10, n_absent=9000, n_present=1000, sample_error_rate=0.2
    )
    assert (estimate.missing_pairs, estimate.spurious_pairs) == (90, 100)
    assert estimate.pair_error_rate == pytest.approx(190 / 10_000)


def test_a_calibration_estimates_on_the_rows_it_is_asked_for() -> None:
    """Calibration.estimate(rows=...) judges only those rows' pairs (how the benchmarks read held-out rows)."""
    rng = np.random.default_rng(0)
    tags = rng.random((400, 5)) < 0.3
    probs = np.where(tags, 0.8, 0.2).astype(np.float32)

    def rescore(corrupted: np.ndarray) -> combine.PairConsensus:
        suspicion = np.abs(corrupted - probs).astype(np.float64)
        zeros = np.zeros(tags.shape, dtype=np.int32)
        return combine.PairConsensus(probs, suspicion, zeros, zeros, np.ones(5, dtype=np.int32), 1 - suspicion.max(1))

    calibration = combine.calibrate(rescore, tags, np.ones(5, dtype=bool), seed=0)
    half = np.arange(400) < 200
    estimate = calibration.estimate(tags, rows=half)
    assert estimate.n_absent + estimate.n_present == 200 * 5
    assert estimate.n_present == int(tags[half].sum())
