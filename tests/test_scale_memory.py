"""The memory-bounded paths used at scale: float16 embeddings, row-blocked numerics, a subsampled probe
and one running probability table. Each test shrinks the block/cap sizes so the large-N code path runs
on a small problem, and checks it gives what the plain whole-matrix computation gives."""

from __future__ import annotations

import numpy as np
import pytest

from labelaudit import chunked
from labelaudit.cache import ScoreCache
from labelaudit.consensus import ProbabilityMean
from labelaudit.pipeline import score_methods
from labelaudit.scorers import ScoreContext, get_scorer, settings_type
from labelaudit.scorers import confident as confident_module
from labelaudit.scorers import zeroshot as zeroshot_module
from labelaudit.scorers.deft import DeftSettings

from .conftest import synthetic_embeddings


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunked, "BLOCK_ROWS", 97)  # odd, so blocks never line up with folds or batches


def _context(x: np.ndarray, given: np.ndarray, centres: np.ndarray) -> ScoreContext:
    return ScoreContext(
        embeddings=x, labels=given, class_names=[f"class {i}" for i in range(len(centres))], class_embeddings=centres
    )


# A short DeFT run for tests that time or compare many scorers; the other scorers run with their defaults.
QUICK_DEFT = DeftSettings(epochs=3, folds=2)


def test_project_in_blocks_equals_the_whole_matrix_product(small_blocks: None) -> None:
    x, _, _, centres = synthetic_embeddings(n=500, k=7)
    half = x.astype(np.float16)
    got = chunked.project(half, centres)
    assert got.dtype == np.float32 and got.shape == (500, 7)
    np.testing.assert_allclose(got, half.astype(np.float32) @ centres.T, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["deft", "confident", "zeroshot", "knn"])
def test_scorers_give_the_same_answer_on_float16_and_float32_copies(small_blocks: None, method: str) -> None:
    x, given, _, centres = synthetic_embeddings(n=600, k=5, noise_rate=0.15, seed=2)
    as_cached = x.astype(np.float16)  # what the pipeline holds
    settings = QUICK_DEFT if method == "deft" else None
    half = get_scorer(method).score(_context(as_cached, given, centres), settings)
    full = get_scorer(method).score(_context(as_cached.astype(np.float32), given, centres), settings)
    np.testing.assert_allclose(half.quality, full.quality, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(half.is_issue, full.is_issue)
    assert half.pred_probs is not None and half.pred_probs.dtype == np.float32


def test_stratified_subsample_keeps_every_class_and_its_share() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), [800, 150, 45, 5])
    index = rng.permutation(len(labels))
    picked = confident_module.stratified_subsample(index, labels, 100, seed=1)
    counts = np.bincount(labels[picked], minlength=4)
    assert set(picked) <= set(index) and len(np.unique(picked)) == len(picked)
    assert 98 <= len(picked) <= 104
    assert counts[0] == 80 and counts[1] == 15 and counts[3] == 1  # shares kept, the rare class not lost
    assert confident_module.stratified_subsample(index, labels, 5000, seed=1) is index


def test_capped_probe_scores_every_row_and_still_finds_the_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    x, given, true, centres = synthetic_embeddings(n=1500, k=5, noise_rate=0.15, seed=4)
    fitted_rows: list[int] = []
    from sklearn.linear_model import LogisticRegression

    real_fit = LogisticRegression.fit

    def counting_fit(self, features, targets, *args, **kwargs):  # type: ignore[no-untyped-def]
        fitted_rows.append(len(features))
        return real_fit(self, features, targets, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", counting_fit)
    monkeypatch.setattr(confident_module, "PROBE_MAX_TRAIN_ROWS", 300)
    probs = confident_module.out_of_fold_probabilities(x, given, 5, 5, seed=0)
    assert len(fitted_rows) == 5 and max(fitted_rows) <= 305
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1, dtype=np.float64), 1.0, atol=1e-6)
    assert (probs > 0).all()
    wrong = given != true
    fitted_rows.clear()
    result = get_scorer("confident").score(_context(x, given, centres))
    assert result.settings["train_rows_per_fold"] == 300 and max(fitted_rows) <= 305
    assert (result.is_issue & wrong).sum() / wrong.sum() >= 0.7


def test_zeroshot_fits_its_temperature_on_a_subsample_of_a_large_set(monkeypatch: pytest.MonkeyPatch) -> None:
    x, given, _, centres = synthetic_embeddings(n=2000, k=5, noise_rate=0.1, seed=5)
    whole = get_scorer("zeroshot").score(_context(x, given, centres))
    monkeypatch.setattr(zeroshot_module, "TEMPERATURE_FIT_ROWS", 500)
    sampled = get_scorer("zeroshot").score(_context(x, given, centres))
    whole_scale = whole.settings["temperature_fitted_scale"]
    assert sampled.settings["temperature_fitted_scale"] == pytest.approx(whole_scale, rel=0.15)
    assert (sampled.is_issue == whole.is_issue).mean() >= 0.99


def test_score_methods_keeps_one_probability_table_equal_to_the_mean(tmp_path) -> None:
    x, given, _, centres = synthetic_embeddings(n=400, k=4, noise_rate=0.1, seed=6)
    context = _context(x.astype(np.float16), given, centres)
    names = ["deft", "confident", "zeroshot", "knn"]
    settings = {name: DeftSettings(epochs=2, folds=2) if name == "deft" else settings_type(name)() for name in names}
    separately = [get_scorer(name).score(context, settings[name]).pred_probs for name in names]
    results, mean_probs, from_cache = score_methods(settings, context, ScoreCache(None, ["key"]))
    assert all(r.pred_probs is None for r in results.values())  # dropped once folded into the mean
    assert from_cache == dict.fromkeys(names, False)
    assert mean_probs is not None and mean_probs.dtype == np.float32
    np.testing.assert_allclose(mean_probs, np.mean(separately, axis=0), rtol=1e-5, atol=1e-6)
    # the consensus still knows every method gave probabilities: its score is the given label's mean probability
    from labelaudit.consensus import combine

    score = combine(results, given, mean_probs).score
    np.testing.assert_allclose(score, mean_probs[np.arange(len(given)), given].astype(np.float64))


def test_probability_mean_without_tables_is_none() -> None:
    running = ProbabilityMean()
    assert running.mean() is None
    running.add(np.full((2, 2), 0.5))
    running.add(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(running.mean(), [[0.75, 0.25], [0.25, 0.75]])


def test_cleanlab_flags_on_float32_tables_match_float64() -> None:
    from cleanlab.filter import find_label_issues

    from labelaudit.scorers._cleanlab import cleanlab_result
    from labelaudit.scorers.confident import out_of_fold_probabilities

    x, given, _, _ = synthetic_embeddings(n=3000, k=6, noise_rate=0.15, seed=8)
    probs = out_of_fold_probabilities(x, given, 6, 5, seed=0)
    assert probs.dtype == np.float32
    reference = find_label_issues(given, probs.astype(np.float64), n_jobs=1)
    result = cleanlab_result(given, probs.copy(), {})
    assert result.pred_probs is not None and result.pred_probs.dtype == np.float32
    assert (result.is_issue == reference).mean() >= 0.999


def test_predicted_classes_keep_the_argmax_of_the_mean_and_no_table() -> None:
    from labelaudit.consensus import PredictedClasses

    rng = np.random.default_rng(3)
    tables = [rng.dirichlet(np.ones(5), size=300) for _ in range(3)]
    running = ProbabilityMean()
    for table in tables:
        running.add(table)
    gathered = PredictedClasses(3)
    for table in tables:
        gathered.add(table)
    np.testing.assert_array_equal(gathered.predicted(), np.argmax(running.mean(), axis=1))
    assert gathered.running.total is None  # the (N, K) total is dropped once the last table is in
    with pytest.raises(ValueError, match="expected 3"):
        gathered.add(tables[0])
    partial = PredictedClasses(2)
    assert partial.predicted() is None
    partial.add(tables[1])  # the other method did not run: the classes of the one that did
    np.testing.assert_array_equal(partial.predicted(), np.argmax(tables[1], axis=1))


def test_one_methods_predicted_classes_cost_no_copy_of_its_table() -> None:
    import tracemalloc

    from labelaudit.consensus import PredictedClasses

    n, k = 200_000, 20
    table = np.random.default_rng(4).random((n, k))  # float64, as a scorer may hand it over
    gathered = PredictedClasses(1)
    tracemalloc.start()
    gathered.add(table)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # a float32 copy (what ProbabilityMean keeps) would be n * k * 4 bytes = 16 MB
    assert peak < n * k * 4 / 2
    np.testing.assert_array_equal(gathered.predicted(), np.argmax(table.astype(np.float32), axis=1))
