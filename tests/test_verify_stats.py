"""verify.py's statistics on synthetic populations: strata, allocation, the estimate and its coverage."""

from __future__ import annotations

import numpy as np
import pytest

from labelaudit import verify as V

DRAWS = 1000  # Monte Carlo draws per interval end in the repeated-draw tests: enough for a 95 % quantile


def population(n: int, rate: float, strength: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wrong labels, a consensus rank (1 = most suspect) that is informative with ``strength`` > 0, and the
    model's (calibrated) probability that each label is wrong."""
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    wrong = rng.random(n) < rate
    score = rng.normal(size=n) - strength * wrong
    rank = np.argsort(np.argsort(score)) + 1
    lw, lr = norm.pdf(score, -strength, 1) * rate, norm.pdf(score, 0, 1) * (1 - rate)
    return wrong, rank, lw / (lw + lr)


def design(
    rank: np.ndarray, guess: np.ndarray, n: int, flag_share: float = 0.08
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    flagged = rank <= int(flag_share * len(rank))
    strata, names = V.make_strata(flagged, rank)
    sizes = np.bincount(strata, minlength=len(names))
    guesses = np.array([guess[strata == h].mean() for h in range(len(names))])
    return strata, V.allocate(sizes, guesses, n), names


def counts(strata: np.ndarray, picked: np.ndarray, wrong: np.ndarray, h: int) -> tuple[np.ndarray, ...]:
    sizes = np.bincount(strata, minlength=h)
    return sizes, np.bincount(strata[picked], minlength=h), np.bincount(strata[picked][wrong[picked]], minlength=h)


# ---------------------------------------------------------------- design


def test_strata_are_the_flagged_set_then_rank_bands_of_the_rest() -> None:
    rank = np.arange(1, 1001)
    flagged = np.zeros(1000, dtype=bool)
    flagged[[0, 3, 500]] = True  # a flag need not follow the rank
    strata, names = V.make_strata(flagged, rank)
    assert names[0] == "flagged" and names[-1] == "clean bulk" and len(names) == 5
    assert set(np.flatnonzero(strata == 0)) == {0, 3, 500}
    sizes = np.bincount(strata)
    assert sizes.tolist() == [3, 50, 100, 249, 598]  # 5 %, 10 %, 25 % (rounded), the rest of the 997 unflagged
    # unflagged bands are contiguous in rank: every band's ranks come before the next band's
    for h in range(1, 4):
        assert rank[strata == h].max() < rank[strata == h + 1].min()


def test_small_bands_merge_so_every_stratum_can_hold_its_floor() -> None:
    strata, names = V.make_strata(np.zeros(40, dtype=bool), np.arange(1, 41))
    sizes = np.bincount(strata)
    assert (sizes >= 2 * V.MIN_PER_STRATUM).all() and sizes.sum() == 40
    strata, names = V.make_strata(np.zeros(5, dtype=bool), np.arange(1, 6))
    assert names == ["unflagged"] and (strata == 0).all()


@pytest.mark.parametrize(
    ("bands", "rows", "expected"),
    [((0.05, 0.15, 0.95), 103, [15, 88]), ((0.9,), 20, [20])],
    ids=["three bands before it", "one band before it"],
)
def test_a_small_last_band_joins_the_band_just_before_it(bands, rows, expected) -> None:
    """The last band (the clean bulk) is too small here: it joins the band before it, the strata stay
    contiguous in rank and their names say which ranks they hold."""
    rank = np.arange(rows)
    strata, names = V.make_strata(np.zeros(rows, dtype=bool), rank, bands=bands, min_rows=10)
    assert np.bincount(strata).tolist() == expected
    for h in range(len(expected) - 1):
        assert rank[strata == h].max() < rank[strata == h + 1].min()
    assert names[-1] == ("clean bulk" if len(expected) > 1 else "unflagged")
    if len(expected) > 1:
        assert names[0] == "unflagged, rank 0%-15%"


def test_allocation_favours_suspect_strata_keeps_floors_and_sums_to_n() -> None:
    sizes = np.array([100, 200, 500, 5000])
    counts = V.allocate(sizes, np.array([0.5, 0.2, 0.05, 0.0]), 200)
    assert counts.sum() == 200 and (counts >= V.MIN_PER_STRATUM).all()
    rates = counts / sizes
    assert rates[0] >= rates[1] > rates[2] > rates[3]  # more from the suspect strata...
    assert counts[3] >= 40  # ...but a bulk the model calls clean still gets a real share, not the floor


def test_allocation_enumerates_small_strata_and_everything_when_n_exceeds_the_rows() -> None:
    counts = V.allocate(np.array([3, 40, 300]), np.array([0.9, 0.2, 0.01]), 100)
    assert counts[0] == 3 and counts.sum() == 100  # a 3-row stratum is taken whole
    assert V.allocate(np.array([3, 40]), np.array([0.5, 0.1]), 100).tolist() == [3, 40]
    assert V.allocate(np.array([10, 10, 10]), np.array([0.5, 0.5, 0.5]), 2).sum() == 2  # fewer items than strata


def test_draw_is_seeded_within_strata_and_shuffled() -> None:
    strata = np.repeat([0, 1, 2], [50, 100, 850])
    counts = np.array([10, 20, 30])
    first, again, other = V.draw(strata, counts, 7), V.draw(strata, counts, 7), V.draw(strata, counts, 8)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.bincount(strata[first], minlength=3).tolist() == [10, 20, 30] and len(set(first)) == 60
    assert not (np.diff(strata[first]) >= 0).all()  # the queue is not grouped by stratum


def test_error_guess_prefers_a_calibrated_column_then_the_suggestion() -> None:
    given = np.array(["a", "a", "b"])
    suggested = np.array(["a", "b", "b"])
    prob = np.array([0.9, 0.8, np.nan])
    flag = np.array([False, True, False])
    guess, source = V.error_guess(given, suggested, prob, flag)
    assert source == "suggested_prob" and guess == pytest.approx([0.1, 0.8, V.UNFLAGGED_GUESS])
    guess, source = V.error_guess(given, suggested, prob, flag, np.array([0.01, 0.5, 0.2]))
    assert source == "error_probability" and guess == pytest.approx([0.01, 0.5, 0.2])
    _, source = V.error_guess(given, suggested, np.full(3, np.nan), flag)
    assert source.startswith("flag")


# ---------------------------------------------------------------- estimate


def test_fully_reviewed_strata_give_the_exact_rate() -> None:
    sizes = np.array([10, 30])
    result = V.estimate_rate(sizes, sizes, np.array([7, 3]))
    assert result == {"estimate": 0.25, "lower": 0.25, "upper": 0.25}


def test_zero_errors_found_gives_lower_end_zero_and_a_positive_upper_end() -> None:
    result = V.estimate_rate(np.array([1000]), np.array([200]), np.array([0]))
    assert result["estimate"] == 0.0 and result["lower"] == 0.0
    # Clopper-Pearson's 0-of-200 upper end (1.8 %), a little less for the finite population of 1000
    assert 0.010 < result["upper"] < 0.019


def test_one_stratum_matches_clopper_pearson_for_a_large_population() -> None:
    from scipy.stats import beta

    result = V.estimate_rate(np.array([10_000_000]), np.array([200]), np.array([14]), draws=10_000)
    assert result["lower"] == pytest.approx(beta.ppf(0.025, 14, 187), abs=0.004)
    assert result["upper"] == pytest.approx(beta.ppf(0.975, 15, 186), abs=0.004)


def test_the_interval_ends_are_counts_of_the_population() -> None:
    """Every end is a whole number of wrong labels among the rows: the unreviewed rows' errors are drawn as
    counts and the end is a drawn total, not an interpolation between two (which would shorten the interval)."""
    sizes = np.array([20, 30])
    result = V.estimate_rate(sizes, np.array([10, 10]), np.array([1, 0]))
    for end in ("lower", "upper"):
        assert result[end] * sizes.sum() == pytest.approx(round(result[end] * sizes.sum()), abs=1e-9)
    assert result["lower"] < result["estimate"] < result["upper"]


def test_a_fully_reviewed_stratum_takes_no_part_of_the_prior() -> None:
    assert V.prior_share(np.array([10, 1000]), np.array([10, 50])).tolist() == [0.0, 1.0]
    assert V.prior_share(np.array([10, 1000]), np.array([10, 1000])).tolist() == [0.0, 0.0]


def test_a_stratum_with_nothing_reviewed_counts_at_its_worst_case() -> None:
    sizes, reviewed, errors = np.array([100, 100]), np.array([50, 0]), np.array([5, 0])
    result = V.estimate_rate(sizes, reviewed, errors)
    assert result["estimate"] == pytest.approx((10 + 50) / 200)  # the unreviewed half counts at 1/2
    assert result["lower"] < 0.05 and result["upper"] > 0.5  # anything from 0 to 1 in the unreviewed half


def test_skipped_items_are_missing_at_random_within_their_stratum() -> None:
    # 40 drawn in each stratum; 10 skipped in the second: its 30 reviewed stand for all of its 900 rows
    sizes = np.array([100, 900])
    full = V.estimate_rate(sizes, np.array([40, 40]), np.array([20, 4]))
    skipped = V.estimate_rate(sizes, np.array([40, 30]), np.array([20, 3]))
    assert skipped["estimate"] == pytest.approx(full["estimate"])
    assert skipped["upper"] - skipped["lower"] > full["upper"] - full["lower"]


def test_precision_and_recall_of_the_flagged_strata() -> None:
    sizes, reviewed, errors = np.array([50, 950]), np.array([50, 150]), np.array([40, 3])
    result = V.flagged_precision_recall(sizes, reviewed, errors, np.array([True, False]))
    assert result["precision"] == {"estimate": 0.8, "lower": 0.8, "upper": 0.8}  # the flagged set was enumerated
    caught, missed = 40, 3 * 950 / 150
    recall = result["recall"]
    assert recall["estimate"] == pytest.approx(caught / (caught + missed))
    assert recall["lower"] < recall["estimate"] < recall["upper"] <= 1.0


def test_recalls_lower_end_counts_the_most_errors_the_unflagged_rows_may_hide() -> None:
    """The flagged set was enumerated (40 wrong of 50), so recall is 40 / (40 + the unflagged rows' errors):
    its lower end is where those errors are at the upper end of their interval, and the other way round."""
    sizes, reviewed, errors = np.array([50, 950]), np.array([50, 150]), np.array([40, 3])
    recall = V.flagged_precision_recall(sizes, reviewed, errors, np.array([True, False]))["recall"]
    hidden = V.estimate_rate(sizes[1:], reviewed[1:], errors[1:])
    assert recall["lower"] == pytest.approx(40 / (40 + hidden["upper"] * 950), rel=0.03)
    assert recall["upper"] == pytest.approx(40 / (40 + hidden["lower"] * 950), rel=0.03)


def test_a_class_cell_nobody_reviewed_borrows_its_strata_rate() -> None:
    """Class "a" was reviewed only in the flagged stratum; its 450 rows of the clean bulk count at the bulk's
    rate (what its other classes showed), not at 0 and not anywhere from 0 to 1."""
    strata = np.repeat([0, 1], [100, 900])
    classes = np.array(["a"] * 100 + ["a", "b"] * 450)
    reviewed = np.zeros(1000, dtype=bool)
    reviewed[:100] = True  # all of stratum 0, every one an "a"
    b_rows = 100 + np.flatnonzero(classes[100:] == "b")
    reviewed[b_rows[:200]] = True  # 200 "b" of the bulk, 4 of them wrong
    wrong = np.zeros(1000, dtype=bool)
    wrong[:50] = True
    wrong[b_rows[:4]] = True
    rate = V.class_rates(strata, classes, reviewed, wrong, min_reviewed=20)["a"]
    bulk_rate = 4 / 200
    assert rate["estimate"] == pytest.approx((50 + 450 * bulk_rate) / 550)
    assert rate["lower"] < rate["estimate"] < rate["upper"] < 0.2


def test_class_rates_need_enough_reviewed_items() -> None:
    strata = np.repeat([0, 1], [100, 900])
    classes = np.array(["a", "b"] * 500)
    reviewed = np.zeros(1000, dtype=bool)
    reviewed[:100] = True
    reviewed[100:200] = True
    wrong = np.zeros(1000, dtype=bool)
    wrong[:100:2] = True  # every reviewed "a" of stratum 0 is wrong, no "b"
    rates = V.class_rates(strata, classes, reviewed, wrong, min_reviewed=20)
    assert set(rates) == {"a", "b"}
    assert rates["a"]["wrong"] == 50 and rates["b"]["wrong"] == 0
    assert rates["a"]["estimate"] == pytest.approx(50 / 500)
    assert rates["b"]["estimate"] == 0.0 and rates["b"]["upper"] > 0
    assert V.class_rates(strata, classes, reviewed, wrong, min_reviewed=101) == {}


def test_items_to_halve_is_about_three_times_as_many_again() -> None:
    more = V.items_to_halve(np.array([100_000]), np.array([200]), np.array([20]))
    assert more is not None and 560 <= more <= 640
    assert V.items_to_halve(np.array([50, 50]), np.array([50, 50]), np.array([5, 1])) == 0
    assert V.items_to_halve(np.array([50]), np.array([0]), np.array([0])) is None


def test_a_small_population_needs_fewer_items_to_halve_the_interval() -> None:
    """200 of 1,000 rows reviewed already pins much of the population down (the finite-population
    correction): halving the interval takes about half as many more items as from a population of 100,000."""
    small = V.items_to_halve(np.array([1000]), np.array([200]), np.array([20]))
    large = V.items_to_halve(np.array([100_000]), np.array([200]), np.array([20]))
    assert small is not None and large is not None and small < 0.6 * large


def test_threshold_is_rechosen_where_the_verified_errors_stop() -> None:
    scores = np.linspace(0, 1, 100)
    wrong = scores < 0.2
    cut = V.choose_threshold(scores, wrong, np.ones(100))
    assert cut is not None and cut["max_consensus_score"] == pytest.approx(scores[19])
    assert cut["precision"] == 1.0 and cut["recall"] == 1.0
    assert V.choose_threshold(scores, np.zeros(100, dtype=bool), np.ones(100)) is None


def test_the_rechosen_cut_flags_every_row_tied_at_it() -> None:
    """A cut is a score: ``score <= cut`` flags both rows tied at 0.1, one right and one wrong, so the cut's
    precision is 0.5, never the 1.0 of stopping between the two."""
    cut = V.choose_threshold(np.array([0.1, 0.1, 0.9]), np.array([True, False, False]), np.ones(3))
    assert cut is not None and cut["max_consensus_score"] == 0.1
    assert cut["precision"] == 0.5 and cut["recall"] == 1.0


def test_the_rechosen_cut_weighs_each_reviewed_row_by_the_rows_it_stands_for() -> None:
    """The right label at 0.2 stands for ten rows of its stratum: cutting past it would flag ten right labels
    to catch one more error, so the cut stays at 0.1."""
    cut = V.choose_threshold(np.array([0.1, 0.2, 0.3]), np.array([True, False, True]), np.array([1.0, 10.0, 1.0]))
    assert cut is not None and cut["max_consensus_score"] == 0.1 and cut["recall"] == 0.5


def test_a_flags_f1_counts_the_errors_it_misses_by_their_weight() -> None:
    flagged, wrong = np.array([True, False, True]), np.array([True, True, False])
    assert V.flag_f1(flagged, wrong, np.array([1.0, 3.0, 1.0])) == pytest.approx(2 / (2 + 1 + 3))
    assert V.flag_f1(np.zeros(3, dtype=bool), wrong, np.ones(3)) == 0.0


# ---------------------------------------------------------------- repeated draws: coverage and width


@pytest.mark.parametrize(
    ("n_rows", "rate", "strength"),
    [
        (2000, 0.135, 2.0),  # youtube-like noise, an informative ranking
        (3000, 0.012, 2.5),  # nearly clean: several strata see no error at all
    ],
)
def test_interval_covers_the_truth_at_its_nominal_rate_and_beats_simple_random_sampling(
    n_rows: int, rate: float, strength: float
) -> None:
    """Simulated reviewers (the gold labels) over repeated draws of 200 items."""
    wrong, rank, guess = population(n_rows, rate, strength, seed=0)
    truth = wrong.mean()
    strata, allocation, names = design(rank, guess, 200)
    everyone = np.zeros(n_rows, dtype=np.int64)
    repeats = 200
    covered = {"stratified": 0, "simple": 0}
    widths: dict[str, list[float]] = {"stratified": [], "simple": []}
    for draw_seed in range(repeats):
        for kind, (st, alloc) in {"stratified": (strata, allocation), "simple": (everyone, np.array([200]))}.items():
            picked = V.draw(st, alloc, draw_seed)
            result = V.estimate_rate(*counts(st, picked, wrong, len(alloc)), draws=DRAWS, seed=draw_seed)
            covered[kind] += result["lower"] <= truth <= result["upper"]
            widths[kind].append(result["upper"] - result["lower"])
    coverage = covered["stratified"] / repeats
    assert 0.92 <= coverage <= 1.0, coverage  # 95 % nominal; 200 repeats measure it to about +-1.5 points
    assert covered["simple"] / repeats >= 0.92
    assert np.mean(widths["stratified"]) < np.mean(widths["simple"]), (
        np.mean(widths["stratified"]),
        np.mean(widths["simple"]),
    )


def test_interval_is_no_wider_than_simple_random_sampling_when_the_ranking_is_useless() -> None:
    wrong, rank, guess = population(2000, 0.10, 0.0, seed=1)
    strata, allocation, _ = design(rank, guess, 200, flag_share=0.05)
    everyone = np.zeros(2000, dtype=np.int64)
    stratified, simple = [], []
    for draw_seed in range(60):
        for st, alloc, out in ((strata, allocation, stratified), (everyone, np.array([200]), simple)):
            picked = V.draw(st, alloc, draw_seed)
            result = V.estimate_rate(*counts(st, picked, wrong, len(alloc)), draws=DRAWS, seed=draw_seed)
            out.append(result["upper"] - result["lower"])
    assert np.mean(stratified) <= 1.05 * np.mean(simple)  # no gain to be had, and almost nothing lost
