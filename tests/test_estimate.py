"""The calibrated error-rate estimate (labelaudit/estimate.py) on data with a known share of wrong labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from labelaudit.estimate import EstimateSettings, best_bin, clopper_pearson, estimate_error_rate, flag_count
from labelaudit.scorers.confident import out_of_fold_probabilities


def noisy_clusters(rate: float, n: int = 2000, k: int = 4, seed: int = 0, spread: float = 1.9):
    """Gaussian classes a linear probe separates well but not perfectly; ``rate`` of labels moved to a
    uniformly random other class. Returns the probe's out-of-fold probabilities, the given and true labels."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    centres = rng.normal(size=(k, 16)) * 1.6
    x = centres[truth] + rng.normal(size=(n, 16)) * spread
    given = truth.copy()
    flip = rng.random(n) < rate
    given[flip] = (truth[flip] + rng.integers(1, k, flip.sum())) % k
    probs = out_of_fold_probabilities(x.astype(np.float32), given, k, 5, seed)
    return probs, given, truth


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.2])
def test_estimate_is_close_to_the_truth_and_the_interval_covers_it(rate: float) -> None:
    probs, given, truth = noisy_clusters(rate)
    true_rate = float(np.mean(given != truth))
    estimate = estimate_error_rate(probs, given)
    assert abs(estimate.rate - true_rate) < 0.025
    assert estimate.lower - 1e-3 <= true_rate <= estimate.upper  # a bound of 0.001 % on clean data is fine


def test_a_clean_dataset_comes_back_clean_where_the_flag_share_would_not() -> None:
    probs, given, truth = noisy_clusters(0.0)
    estimate = estimate_error_rate(probs, given)
    disagreements = float(np.mean(probs.argmax(1) != given))  # what a "the model disagrees" count reads
    assert disagreements > 0.03  # the probe is wrong on hard samples...
    assert estimate.rate < 0.01  # ...which the estimate does not count as label errors
    assert estimate.is_issue.sum() <= 0.01 * len(given)


def test_posterior_mean_is_the_rate_and_class_rates_add_up() -> None:
    probs, given, _ = noisy_clusters(0.1)
    estimate = estimate_error_rate(probs, given)
    assert estimate.error_probability.mean() == pytest.approx(estimate.rate, abs=1e-9)
    sizes = np.bincount(given, minlength=4)
    assert np.dot(estimate.class_rates(given, 4), sizes) / sizes.sum() == pytest.approx(estimate.rate, abs=1e-9)
    # the cut with the best expected F1, the most probable ones
    assert estimate.is_issue.sum() == estimate.n_flags > 0
    assert estimate.n_flags == flag_count(estimate.error_probability, np.ones(len(given), bool), None, None, "best_f1")
    assert estimate.error_probability[estimate.is_issue].min() >= estimate.error_probability[~estimate.is_issue].max()


def test_a_lower_bound_flags_up_to_the_upper_end_of_the_interval() -> None:
    posterior = np.full(1000, 0.01)
    open_rows = np.ones(1000, dtype=bool)
    assert flag_count(posterior, open_rows, None) == 10  # firm: the errors the estimate expects
    assert flag_count(posterior, open_rows, 0.12) == 120  # a lower bound: what may be wrong
    open_rows[:500] = False  # reviewed rows are settled, not flagged again
    assert flag_count(posterior, open_rows, None) == 5


def test_the_flag_cut_has_the_best_expected_f1_along_the_ranking() -> None:
    posterior = np.r_[np.full(20, 0.9), np.full(980, 0.01)]  # 27.8 errors expected, 18 of them in the top 20
    everyone = np.ones(1000, dtype=bool)
    assert flag_count(posterior, everyone, None, None, "expected") == 28
    assert flag_count(posterior, everyone, None, None, "best_f1") == 20  # 2*18/(20+27.8) beats 28 flags' 0.65
    assert flag_count(posterior, everyone, None, -posterior, "best_f1") == 20  # the same, as a ranking
    # a ranking that puts the likely errors last: no short cut finds them, so the best cut takes everyone
    assert flag_count(posterior, everyone, None, posterior, "best_f1") == 1000
    # a clean set comes back clean: less than half an error expected flags nothing
    assert flag_count(np.full(1000, 0.0004), everyone, None, None, "best_f1") == 0


def test_a_lower_bound_flags_at_least_the_errors_it_expects() -> None:
    """A lower bound says at least ``sum(posterior)`` labels are wrong; its probabilities are too low, so the
    best-F1 cut computed from them may stop short of that many: the floor takes the expected count instead."""
    posterior = np.r_[np.full(5, 0.9), np.full(995, 0.05)]  # 54.25 errors expected, 4.5 of them in the top 5
    everyone = np.ones(1000, dtype=bool)
    assert flag_count(posterior, everyone, None, None, "best_f1") == 5
    assert flag_count(posterior, everyone, None, None, "best_f1", at_least_expected=True) == 54
    deeper = np.r_[np.full(300, 0.9), np.full(700, 0.01)]  # a best-F1 cut already past the expected count stays
    assert flag_count(deeper, everyone, None, None, "best_f1", at_least_expected=True) == 300
    # Through the estimate: class-pair noise read with mistakes made from the given label is a lower bound whose
    # probabilities are far too low; where its best-F1 cut stops short the floor (on by default) lifts it. (Made
    # from the predicted class, the default, the estimate reads these draws closer and the cut no longer stops
    # short.) Whether a given draw stops short depends on the probe's last digits (it moved between torch
    # builds), so several draws are made and the floor must hold, and help, wherever one does.
    stopped_short = 0
    from_label = EstimateSettings(mistake_origin="given")
    for rate, seed in [(0.2, 0), (0.2, 1), (0.2, 3), (0.2, 5), (0.1, 0)]:
        probs, given, truth = paired_clusters(rate, "pair", seed=seed)
        floored = estimate_error_rate(probs, given, settings=from_label)
        unfloored = estimate_error_rate(
            probs, given, settings=dataclasses.replace(from_label, lower_bound_flags_expected=False)
        )
        assert floored.is_lower_bound and floored.n_flags >= round(floored.rate * len(given))
        if unfloored.n_flags < round(unfloored.rate * len(given)):
            stopped_short += 1
            wrong = given != truth
            assert np.sum(floored.is_issue & wrong) > np.sum(unfloored.is_issue & wrong)  # the extra flags find errors
    assert stopped_short >= 2


def test_flags_find_the_wrong_labels() -> None:
    probs, given, truth = noisy_clusters(0.1)
    flags = estimate_error_rate(probs, given).is_issue
    wrong = given != truth
    precision = (flags & wrong).sum() / max(flags.sum(), 1)
    recall = (flags & wrong).sum() / wrong.sum()
    assert precision > 0.8 and recall > 0.6


def test_verified_items_are_anchors() -> None:
    probs, given, truth = noisy_clusters(0.1)
    verified = np.full(len(given), -1)
    verified[:100] = (given[:100] != truth[:100]).astype(int)
    estimate = estimate_error_rate(probs, given, verified=verified)
    assert np.array_equal(estimate.error_probability[:100], verified[:100].astype(float))
    assert estimate.details["n_verified"] == 100


def test_weak_features_are_reported_as_a_lower_bound() -> None:
    """When the classes overlap, wrong labels hide among hard samples: the summary must say the estimate is a
    lower bound (low audit power), while well-separated classes get no such warning."""
    weak = estimate_error_rate(*noisy_clusters(0.2, spread=6.0)[:2])
    assert weak.power.auroc < EstimateSettings().low_power_auroc
    assert weak.is_lower_bound and any("Audit power is low" in w for w in weak.warnings)
    strong = estimate_error_rate(*noisy_clusters(0.05, spread=1.0)[:2])
    assert not strong.is_lower_bound and not strong.warnings


def test_heavy_noise_on_separable_classes_keeps_its_audit_power() -> None:
    """Audit power is a property of the encoder and the classes: 40 % wrong labels must not read as weak
    features (against all observed labels the AUROC is 0.74 here, because a wrong label scores like a
    synthetic mistake), and the interval covers the truth without calling the estimate a lower bound."""
    probs, given, truth = noisy_clusters(0.4, spread=1.0)
    estimate = estimate_error_rate(probs, given)
    assert estimate.power.auroc > EstimateSettings().low_power_auroc
    assert not any("Audit power is low" in w for w in estimate.warnings) and not estimate.is_lower_bound
    assert estimate.lower <= float(np.mean(given != truth)) <= estimate.upper


def test_two_classes_with_heavy_noise_keep_their_audit_power() -> None:
    """With two classes every synthetic mistake made on an already wrong label gives it its true class, so 30 %
    of the synthetic mistakes score like right labels here; the power figure takes them out as the estimate
    does (without that, 0.77 on classes the probe tells apart: "audit power is low", a false warning; 0.99 with it)."""
    probs, given, truth = noisy_clusters(0.3, k=2, spread=1.0)
    estimate = estimate_error_rate(probs, given)
    assert abs(estimate.rate - float(np.mean(given != truth))) < 0.03
    assert estimate.power.auroc > 0.95
    assert not any("Audit power is low" in w for w in estimate.warnings)


def one_way_clusters(rate: float, n: int = 3000, seed: int = 0, spread: float = 1.0):
    """Two Gaussian classes; only class 0 is ever mislabelled (as 1), ``rate`` of all labels in all."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    x = rng.normal(size=(2, 16))[truth] * 1.6 + rng.normal(size=(n, 16)) * spread
    given = truth.copy()
    given[(truth == 0) & (rng.random(n) < 2 * rate)] = 1
    return out_of_fold_probabilities(x.astype(np.float32), given, 2, 5, seed), given, truth


@pytest.mark.parametrize("rate", [0.05, 0.1])
def test_one_way_noise_is_read_where_the_mistakes_leave(rate: float) -> None:
    """Mistakes that leave one class only: spread evenly over both classes (``confused_sources="uniform"``),
    half the synthetic mistakes sit on the class nobody mislabels, score lower than any real mistake and read
    the rate as ~0, said to be a lower bound; by default, with two classes, a sample gets a synthetic mistake
    in proportion to how often the anchors say its class is left, and the rate and the flags follow."""
    probs, given, truth = one_way_clusters(rate)
    true_rate, wrong = float(np.mean(given != truth)), given != truth
    uniform = estimate_error_rate(probs, given, settings=EstimateSettings(confused_sources="uniform"))
    assert uniform.rate < true_rate / 5 and uniform.is_lower_bound
    estimate = estimate_error_rate(probs, given)
    assert true_rate / 2 < estimate.rate and estimate.lower <= true_rate <= estimate.upper
    assert np.sum(estimate.is_issue & wrong) > 0.6 * np.sum(wrong) > np.sum(uniform.is_issue & wrong)
    confusion = estimate_error_rate(probs, given, settings=EstimateSettings(confused_sources="confusion"))
    assert (confusion.rate, confusion.n_flags) == (estimate.rate, estimate.n_flags)


def test_mistake_sources_follow_the_confusions_only_with_two_classes() -> None:
    """With more classes the confusions already choose where a mistake goes; "auto" then spreads the mistakes
    over every sample alike, as "uniform" does."""
    probs, given, _ = chained_clusters(0.2)  # class-pair noise: not read as symmetric, so the sources matter
    default = estimate_error_rate(probs, given)
    uniform = estimate_error_rate(probs, given, settings=EstimateSettings(confused_sources="uniform"))
    confusion = estimate_error_rate(probs, given, settings=EstimateSettings(confused_sources="confusion"))
    assert (default.rate, default.upper, default.n_flags) == (uniform.rate, uniform.upper, uniform.n_flags)
    assert (default.rate, default.n_flags) != (confusion.rate, confusion.n_flags)


def test_two_classes_with_symmetric_noise_are_no_lower_bound() -> None:
    """Doubted samples hold the wrong labels, and with two classes a synthetic mistake on a wrong label is a
    repair: uncorrected, the doubted reading read 12-13 % for 6 % here, the interval's upper end with it, and
    called the (right) estimate a lower bound."""
    probs, given, truth = noisy_clusters(0.06, k=2, spread=1.0)
    true_rate = float(np.mean(given != truth))
    estimate = estimate_error_rate(probs, given)
    assert abs(estimate.rate - true_rate) < 0.01 and estimate.lower <= true_rate <= estimate.upper < 0.1
    assert not estimate.is_lower_bound


def flag_f1(estimate, wrong: np.ndarray) -> float:
    """F1 of the estimate's own flags (``is_issue``) against the wrong labels."""
    return 2.0 * float(np.sum(estimate.is_issue & wrong)) / (estimate.n_flags + int(wrong.sum()))


def paired_clusters(rate: float, mode: str, n: int = 3000, k: int = 8, seed: int = 0):
    """Eight classes in four pairs of close clusters, so the data's own confusions sit within a pair.
    ``mode`` "sym": a wrong label is any other class; "pair": class c is mislabelled c + 1."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    centres = np.repeat(rng.normal(size=(k // 2, 16)) * 2.5, 2, axis=0) + rng.normal(size=(k, 16)) * 0.5
    x = centres[truth] + rng.normal(size=(n, 16))
    given = truth.copy()
    flip = rng.random(n) < rate
    given[flip] = (truth[flip] + (rng.integers(1, k, flip.sum()) if mode == "sym" else 1)) % k
    return out_of_fold_probabilities(x.astype(np.float32), given, k, 5, seed), given, truth


def test_the_plausible_reading_takes_out_the_mistakes_that_repair_a_label() -> None:
    """Two classes, 15 % symmetric noise: a synthetic mistake made on a wrong label gives it its true class.
    Left in, those repairs raised the plausible-mistakes reading above the point's upper end and called a
    right estimate (15.9 % for 16.0 %) a lower bound."""
    probs, given, truth = noisy_clusters(0.15, k=2, spread=1.0)
    true_rate = float(np.mean(given != truth))
    estimate = estimate_error_rate(probs, given)
    assert abs(estimate.rate - true_rate) < 0.01 and estimate.lower <= true_rate <= estimate.upper
    assert not estimate.is_lower_bound


@pytest.mark.parametrize(
    "case",
    [lambda: paired_clusters(0.1, "pair"), lambda: noisy_clusters(0.02, k=4, spread=1.9)],
    ids=["class-pair noise", "light noise"],
)
def test_the_interval_reaches_down_to_what_mistakes_to_any_class_read(case) -> None:
    """The headline follows isolated mistakes where the noise does not look symmetric, but mistakes to any
    class are as possible an account of the same scores, and read less (they are easier to see): the
    interval spans both, so its lower end is at or below their reading."""
    probs, given, _ = case()
    estimate = estimate_error_rate(probs, given)
    assert estimate.details["headline_reading"] == "isolated mistakes"
    assert estimate.details["any_class_mistakes_rate"] < estimate.details["isolated_mistakes_rate"]
    assert estimate.lower <= estimate.details["any_class_mistakes_rate"]


def test_symmetric_noise_is_read_with_mistakes_to_any_class() -> None:
    """Uniform noise on classes that are confused in pairs: mistakes weighted by the data's confusions land
    on the partner class, look less wrong than the real ones and read the rate high; the any-class reading
    explains the low tail at a flat ratio and is the headline. 20,000 samples, so that a point is signal.
    Confusions read on anchors (the default) see that the labels of sure samples go to any class, so even
    without the symmetric switch the confusion-weighted reading is right; cleanlab's confident joint, which
    counts the hard right labels of the partner class, reads it high."""
    probs, given, truth = paired_clusters(0.4, "sym", n=20_000)
    true_rate = float(np.mean(given != truth))
    estimate = estimate_error_rate(probs, given)
    confusion_only = estimate_error_rate(probs, given, settings=EstimateSettings(symmetric_flatness=None))
    joint_only = estimate_error_rate(
        probs, given, settings=EstimateSettings(symmetric_flatness=None, confusions_from="confident_joint")
    )
    assert "symmetric" in estimate.details["headline_reading"]
    # within a point; without the correction for synthetic mistakes that restore a wrong label's true class
    # (see without_repairs) the any-class ratio reads 43-44 % here
    assert abs(estimate.rate - true_rate) < 0.01
    assert abs(confusion_only.rate - true_rate) < 0.01
    assert abs(joint_only.rate - true_rate) > 0.015
    assert estimate.lower <= true_rate <= estimate.upper


def test_a_mistake_that_restores_the_true_class_is_not_counted() -> None:
    from labelaudit.estimate import _Reading, without_repairs

    def repaired(rate: float) -> float:  # a wrong label repaired with chance 0.25, a right one never
        return 0.25 * rate

    corrected = without_repairs(_Reading(rate=0.5, lower=0.4, upper=0.6, injected_share=0.2), repaired)
    # rate = ratio * (1 - rate * share): 0.5 * (1 - 0.444 * 0.25) = 0.444
    assert corrected.rate == pytest.approx(0.5 / 1.125)
    assert corrected.rate == pytest.approx(0.5 * (1 - corrected.rate * 0.25))
    assert corrected.lower < corrected.rate < corrected.upper
    assert without_repairs(_Reading(0.01, 0.0, 0.02, 0.1), repaired).rate == pytest.approx(0.01, rel=0.01)
    # mistakes that also repair right labels (made from another class than the label) take out their share too
    both = without_repairs(_Reading(0.5, 0.4, 0.6, 0.2), lambda rate: 0.25 * rate + 0.1 * (1 - rate))
    assert both.rate == pytest.approx(0.5 * (1 - 0.25 * both.rate - 0.1 * (1 - both.rate)))


def test_class_pair_noise_is_not_taken_for_symmetric() -> None:
    """Class-pair noise makes the any-class ratio climb: the headline stays the confusion-weighted reading,
    and the models have learnt the pattern, so the summary calls the estimate a lower bound."""
    probs, given, truth = paired_clusters(0.2, "pair")
    estimate = estimate_error_rate(probs, given)
    assert estimate.details["headline_reading"] == "isolated mistakes"
    assert estimate.is_lower_bound and estimate.lower <= float(np.mean(given != truth)) <= estimate.upper


def test_anchors_send_mistakes_where_the_labels_went() -> None:
    """Class-pair noise (c labelled c + 1) on classes that sit in look-alike pairs: for an odd class c, c + 1
    lies in another pair, and the methods' own confusions are with its partner c - 1. Read on anchors (the
    samples the methods are surest of), the data's confusions go where the noise went; the confident joint
    also counts the partner's hard right labels, sends synthetic mistakes there, and they score lower than
    the real ones, so the rate reads lower."""
    from labelaudit.estimate import anchor_confusions, confusion_counts

    probs, given, truth = paired_clusters(0.2, "pair")
    k = probs.shape[1]

    def to_noise_class(counts: np.ndarray) -> np.ndarray:
        shares = []
        for cls in range(1, k, 2):
            leaving = counts[:, cls].copy()
            leaving[cls] = 0.0
            shares.append(leaving[(cls + 1) % k] / leaving.sum())
        return np.array(shares)

    anchored = to_noise_class(anchor_confusions(given, probs, EstimateSettings().anchor_share))
    joint = to_noise_class(confusion_counts(given, probs))
    assert np.all(anchored > 0.85) and np.all(anchored > joint + 0.05)
    true_rate = float(np.mean(given != truth))
    default = estimate_error_rate(probs, given)
    from_joint = estimate_error_rate(probs, given, settings=EstimateSettings(confusions_from="confident_joint"))
    assert default.rate > 1.5 * from_joint.rate
    # still low (the models have learnt part of the noise) and said to be a lower bound
    assert default.rate < true_rate and default.is_lower_bound and default.lower <= true_rate <= default.upper


def test_anchor_confusions_of_a_class_nobody_predicts_are_empty() -> None:
    """A class the methods never predict has no anchors: its column is 0 (the destination smoothing then
    spreads its mistakes), and the others are scaled to every sample predicted as them."""
    from labelaudit.estimate import anchor_confusions

    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.7, 0.3, 0.0], [0.2, 0.8, 0.0]])
    labels = np.array([0, 1, 0, 1])
    counts = anchor_confusions(labels, probs, 0.5)
    assert np.all(counts[:, 2] == 0.0)
    # class 0: anchors are the surer half of its three samples (0.9 and 0.8, at or above the median), labelled
    # 0 and 1, scaled to three samples
    assert counts[:, 0] == pytest.approx([1.5, 1.5, 0.0])
    assert counts[:, 1] == pytest.approx([0.0, 1.0, 0.0])


def chained_clusters(rate: float, n: int = 3000, k: int = 6, seed: int = 0):
    """Six Gaussian classes; ``rate`` of each class c mislabelled c + 1 (class-pair noise along a chain)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    x = (rng.normal(size=(k, 16)) * 1.6)[truth] + rng.normal(size=(n, 16))
    given = np.where(rng.random(n) < rate, (truth + 1) % k, truth)
    return out_of_fold_probabilities(x.astype(np.float32), given, k, 5, seed), given, truth


def test_class_pair_mistakes_are_made_from_the_predicted_class() -> None:
    """Made from the given label, a synthetic mistake on a wrong label (class c given c + 1) moves it to c + 2,
    which scores lower than any real mistake: the rate read 1.5 % for 20 % here and the flags missed (F1 0.15).
    Made from the predicted class (the default), it is the real mistake's twin."""
    probs, given, truth = chained_clusters(0.2)
    wrong = given != truth
    from_label = estimate_error_rate(probs, given, settings=EstimateSettings(mistake_origin="given"))
    default = estimate_error_rate(probs, given)

    assert from_label.rate < 0.02 and default.rate > 3 * from_label.rate
    assert flag_f1(default, wrong) > flag_f1(from_label, wrong) + 0.4
    # still far below the truth, and said to be a lower bound
    assert default.is_lower_bound and default.lower <= wrong.mean() <= default.upper + 0.01
    # the audit power reads mistakes made from the label either way
    assert default.power.auroc == pytest.approx(from_label.power.auroc, abs=0.05)


def test_two_classes_read_the_same_from_either_origin() -> None:
    """With two classes a mistake made from the predicted class and one made from the label differ only where
    the two disagree, and there a second step is a repair, which the readings count already: the setting is
    a no-op (docs/method.md says two-class sets are unchanged)."""
    probs, given, _ = noisy_clusters(0.1, k=2, spread=1.6)
    assert np.any(probs.argmax(1) != given)  # the origins would differ on these samples
    default = estimate_error_rate(probs, given)
    from_label = estimate_error_rate(probs, given, settings=EstimateSettings(mistake_origin="given"))
    assert (default.rate, default.lower, default.upper, default.n_flags) == (
        from_label.rate,
        from_label.lower,
        from_label.upper,
        from_label.n_flags,
    )


def test_no_destination_smoothing_still_gives_every_mistake_a_destination() -> None:
    """With ``destination_smoothing=0`` a class the data's confusions never leave sends its synthetic mistakes
    to any other class instead of nowhere (an IndexError before). Here every label is the one the probe
    predicts, so the confident joint has no confusions at all."""
    probs, _, _ = noisy_clusters(0.0, k=4)
    agreeing = probs.argmax(1)
    estimate = estimate_error_rate(probs, agreeing, settings=EstimateSettings(destination_smoothing=0.0))
    assert np.isfinite(estimate.error_probability).all() and estimate.rate < 0.01


def test_one_class_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        estimate_error_rate(np.ones((5, 1)), np.zeros(5, dtype=int))


def test_best_bin_recovers_a_known_mixture() -> None:
    """Observed = 90 % clean scores near 1, 10 % drawn from the injected distribution: the mixture proportion
    read at the best bin is 10 %."""
    edges = 200
    injected = np.zeros(edges)
    injected[:50] = 1 / 50
    clean = np.zeros(edges)
    clean[150:] = 1 / 50
    observed = np.round((0.9 * clean + 0.1 * injected) * 10_000)
    reading = best_bin(observed, injected, 10_000, EstimateSettings())
    assert reading.rate == pytest.approx(0.1, abs=0.01)
    assert reading.lower <= 0.1 <= reading.upper


def test_clopper_pearson_bounds() -> None:
    assert clopper_pearson(0, 100, 0.95)[0] == 0.0
    low, high = clopper_pearson(10, 100, 0.95)
    assert 0.04 < low < 0.1 < high < 0.18


def rule_noise(n: int = 3000, seed: int = 0, share: float = 0.45, n_sub: int = 12):
    """Two classes, each six sub-clusters; a labelling rule mislabels ``share`` of one sub-cluster (as a
    keyword rule mislabels every message with the keyword). The probe learns part of the rule, so the
    wrong labels score in the middle of the range, not like isolated mistakes."""
    rng = np.random.default_rng(seed)
    sub = rng.integers(0, n_sub, n)
    truth = sub % 2
    x = rng.normal(size=(n_sub, 16))[sub] * 2.0 + rng.normal(size=(n, 16))
    given = truth.copy()
    hit = (sub == 0) & (rng.random(n) < share)
    given[hit] = 1 - truth[hit]
    return out_of_fold_probabilities(x.astype(np.float32), given, 2, 5, seed), given, truth


def test_a_lower_bound_cuts_the_ranking_under_the_doubted_reading() -> None:
    """Where the estimate is a lower bound, the headline's error probabilities average to that bound and
    flag a handful; with ``lower_bound_cut="doubted"`` the doubted-samples reading, which sees the mistakes
    higher up the score range, sets a deeper cut (for labels made by rules)."""
    probs, given, truth = rule_noise()
    wrong = given != truth

    headline = estimate_error_rate(probs, given)  # the default
    doubted = estimate_error_rate(probs, given, settings=EstimateSettings(lower_bound_cut="doubted"))
    assert doubted.is_lower_bound and doubted.rate < 0.5 * wrong.mean()  # the rule's errors are mostly hidden
    assert doubted.rate == headline.rate  # the cut changes, the estimate does not
    assert flag_f1(headline, wrong) < 0.15 < 0.3 < flag_f1(doubted, wrong)
    assert doubted.n_flags <= doubted.upper * len(given)  # still inside what the interval allows
    # the default's lower-bound note names the option; with it, the note does not, and the details say which cut
    assert any("--lower-bound-cut doubted" in w for w in headline.warnings)
    assert not any("--lower-bound-cut" in w for w in doubted.warnings)
    assert "doubted" in doubted.details["flag_cut"] and "headline" in headline.details["flag_cut"]


def probability_view(anchor: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Probabilities that put Beta(6, 2) on ``anchor`` (per sample) and spread the rest over the other classes."""
    n = len(anchor)
    top = rng.beta(6.0, 2.0, n)
    rest = rng.dirichlet(np.ones(k - 1), n) * (1.0 - top)[:, None]
    others = (anchor[:, None] + np.arange(1, k)[None, :]) % k
    probs = np.empty((n, k))
    probs[np.arange(n), anchor] = top
    probs[np.arange(n)[:, None], others] = rest
    return probs


def learnt_noise(seed: int = 0, n: int = 3000, k: int = 3, rate: float = 0.12):
    """12 % wrong labels that the label-trained methods have learnt completely (a wrong label scores like a
    right one), and a view that never saw the labels (zero-shot prompts), which scores the true class."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    given = truth.copy()
    hit = rng.random(n) < rate
    given[hit] = (truth[hit] + rng.integers(1, k, hit.sum())) % k
    return probability_view(given, k, rng), probability_view(truth, k, rng), given, truth


def test_a_label_free_view_raises_the_upper_end_that_learnt_mistakes_hide() -> None:
    learnt, label_free, given, truth = learnt_noise()
    true_rate = float(np.mean(given != truth))
    alone = estimate_error_rate(learnt, given)
    assert alone.upper < 0.01 < true_rate  # every reading of the label-trained view misses them
    both = estimate_error_rate(learnt, given, label_free_probs=label_free)
    assert both.lower <= true_rate <= both.upper + 0.02  # the label-free reading sees them
    assert both.rate == alone.rate and both.n_flags == alone.n_flags  # an upper end only: point and cut stay
    reading = both.details["label_free_reading"]
    assert reading["counts"] and reading["sets_upper_end"] and reading["rate"] == pytest.approx(both.upper, abs=1e-6)
    assert any("never see the labels" in w for w in both.warnings)
    assert alone.details["label_free_reading"] is None


def test_a_label_free_view_that_knows_nothing_is_ignored() -> None:
    learnt, label_free, given, _ = learnt_noise()
    random_view = np.random.default_rng(1).dirichlet(np.ones(3), len(given))
    alone = estimate_error_rate(learnt, given)
    estimate = estimate_error_rate(learnt, given, label_free_probs=random_view)
    reading = estimate.details["label_free_reading"]
    assert reading["rate"] > 0.5 and not reading["counts"]  # it calls most labels wrong: itself is what is wrong
    assert estimate.upper == alone.upper
    # a weak view, a fifth of the label-free one: its own audit power is below low_power_auroc
    weak = estimate_error_rate(learnt, given, label_free_probs=0.2 * label_free + 0.8 * random_view)
    reading = weak.details["label_free_reading"]
    assert reading["rate"] < 0.5 and reading["audit_power"] < EstimateSettings().low_power_auroc
    assert not reading["counts"] and weak.upper == alone.upper


def test_a_two_class_view_that_only_leans_to_one_class_is_ignored() -> None:
    """Class names that are codes ("0", "1") give zero-shot prompts nothing to read: the view leans a little to
    one class for every sample. Near chance, (K - 1) / K = 50 % with two classes, its audit power means nothing
    and reads high, so a cap of one half let it set the upper end (wrench_youtube: 42.4 %, power 0.99)."""
    settings = EstimateSettings()
    would_have_counted = 0
    for seed in range(6):
        learnt, _, given, _ = learnt_noise(seed=seed, k=2)
        lean = np.clip(0.6 + 0.03 * np.random.default_rng(seed + 10).standard_normal(len(given)), 0.01, 0.99)
        estimate = estimate_error_rate(learnt, given, label_free_probs=np.stack([lean, 1.0 - lean], axis=1))
        reading = estimate.details["label_free_reading"]
        would_have_counted += reading["rate"] < 0.5 and reading["audit_power"] >= settings.low_power_auroc
        assert reading["rate"] > settings.label_free_max_chance_share * 0.5 and not reading["counts"]
        assert estimate.upper == estimate_error_rate(learnt, given).upper
    assert would_have_counted >= 2  # what the cap is for: these passed the power check and the flat cap


def _anchor_case(rng: np.random.Generator, n: int = 6000, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Methods whose confidence varies from sample to sample and who err more where they are less sure:
    (true classes, their predicted probabilities, whether each prediction is wrong)."""
    true = rng.integers(0, k, n)
    confidence = rng.uniform(0.4, 1.0, n)
    wrong = rng.random(n) < 0.6 * (1.0 - confidence)  # sure and wrong sometimes, unsure and wrong more often
    predicted = np.where(wrong, (true + rng.integers(1, k, n)) % k, true)
    probs = np.full((n, k), 0.0)
    probs += ((1.0 - confidence) / (k - 1))[:, None]
    probs[np.arange(n), predicted] = confidence
    return true, probs, wrong


def test_the_anchor_reading_extrapolated_to_no_anchors_keeps_label_noise_and_drops_the_methods_errors() -> None:
    from labelaudit.estimate import anchor_error_share, anchor_extrapolated_rate

    rng = np.random.default_rng(3)
    true, probs, _ = _anchor_case(rng)
    shares = (0.25, 0.5)

    def one_share(labels: np.ndarray, share: float) -> float:
        return anchor_error_share(labels, probs, share)

    # Right labels: at either share the anchors hold the methods' sure mistakes, more at the larger share.
    assert one_share(true, 0.5) > one_share(true, 0.25) > 0.02
    assert anchor_extrapolated_rate(true, probs, shares) < 0.4 * one_share(true, 0.25)
    # 20 % class-pair noise on the labels, which the methods do not see: the anchors carry it at every share.
    noisy = true.copy()
    flipped = rng.random(len(true)) < 0.2
    noisy[flipped] = (true[flipped] + 1) % probs.shape[1]
    assert anchor_extrapolated_rate(noisy, probs, shares) == pytest.approx(0.2, abs=0.025)
    assert one_share(noisy, 0.5) > 0.2 + 0.025  # one share alone reads the methods' errors on top


def test_anchors_whose_surest_samples_are_the_mislabelled_ones_count_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a few samples per class an out-of-fold model is surest of the wrong labels (benchmarks/speed.py's
    10k x 1000 estimate row read 49 % for 10 % that way): the anchors' premise fails, and neither the default
    nor ``--lower-bound-rate anchors`` follows them, nor does the interval reach for them."""
    import labelaudit.estimate as estimate_module
    from labelaudit.estimate import anchor_inner_excess

    rng = np.random.default_rng(7)
    true, probs, _ = _anchor_case(rng, n=3000)
    noisy = true.copy()
    flipped = rng.random(len(true)) < 0.1
    noisy[flipped] = (true[flipped] + 1) % probs.shape[1]
    shares = (0.25, 0.5)
    assert anchor_inner_excess(noisy, probs, shares)[1] < 1.645  # the methods do not favour the wrong labels
    # Now the methods are surest where the label is wrong: those samples' true class gets the top confidence.
    inverted = probs.copy()
    inverted[flipped] = np.where(inverted[flipped] == inverted[flipped].max(axis=1, keepdims=True), 1.0, 0.0)
    excess, z = anchor_inner_excess(noisy, inverted, shares)
    assert excess > 0.05 and z > 5
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)
    monkeypatch.setattr(estimate_module, "looks_symmetric", lambda *args: False)
    for rule in ("anchors", "auto"):
        checked = estimate_error_rate(inverted, noisy, settings=EstimateSettings(lower_bound_rate=rule))
        assert checked.details["headline_reading"] != "anchors, extrapolated"
        assert checked.details["anchor_reading_counts"] is False and checked.details["anchor_inner_excess_z"] > 5
        assert checked.upper < checked.details["anchor_extrapolated_rate"]
        assert any("surest of the mislabelled ones" in warning for warning in checked.warnings)
    unchecked = estimate_error_rate(
        inverted, noisy, settings=EstimateSettings(lower_bound_rate="anchors", anchor_max_inner_excess_z=None)
    )
    assert unchecked.details["headline_reading"] == "anchors, extrapolated"
    assert unchecked.rate > 0.2  # what the inverted anchors read: twice the truth and more


def test_only_a_lower_bound_reads_the_anchors(monkeypatch: pytest.MonkeyPatch) -> None:
    import labelaudit.estimate as estimate_module

    rng = np.random.default_rng(4)
    true, probs, _ = _anchor_case(rng, n=2000)
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: False)
    default = estimate_error_rate(probs, true)
    assert not default.is_lower_bound and "anchor_extrapolated_rate" not in default.details
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)
    assert "anchor_extrapolated_rate" in estimate_error_rate(probs, true).details


def test_a_lower_bound_names_what_the_anchors_read_and_the_opt_in_heads_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import labelaudit.estimate as estimate_module

    rng = np.random.default_rng(6)
    true, probs, _ = _anchor_case(rng, n=4000)
    given = true.copy()
    flipped = rng.random(len(true)) < 0.25
    given[flipped] = (true[flipped] + 1) % probs.shape[1]
    opt_in = EstimateSettings(lower_bound_rate="anchors")
    extrapolated = estimate_module.anchor_extrapolated_rate(given, probs, (0.25, 0.5))

    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)  # as on class-pair rows
    default, opted = estimate_error_rate(probs, given), estimate_error_rate(probs, given, settings=opt_in)
    assert default.is_lower_bound and default.details["headline_reading"] != "anchors, extrapolated"
    if extrapolated <= default.rate:
        pytest.fail(f"the case should read the anchors above the point: {extrapolated} vs {default.rate}")
    # The default keeps its point, names the anchors' reading and the option, and its interval holds the reading.
    assert default.details["anchor_extrapolated_rate"] == pytest.approx(extrapolated, abs=1e-6)
    assert default.upper >= extrapolated
    named = [w for w in default.warnings if "--lower-bound-rate anchors" in w]
    assert len(named) == 1 and f"{extrapolated:.1%}" in named[0]
    # The opt-in heads with it (its error probabilities average to it) and no longer offers the option...
    assert opted.details["headline_reading"] == "anchors, extrapolated"
    assert opted.rate == pytest.approx(extrapolated, abs=0.01)
    assert opted.details["anchor_extrapolated_rate"] == pytest.approx(extrapolated, abs=1e-6)
    # ...and says where its number comes from.
    assert any(f"The estimate, {opted.rate:.1%}, is what the labels of the samples" in w for w in opted.warnings)
    assert not any("`labelaudit audit --lower-bound-rate anchors`" in w for w in opted.warnings)
    # Where the anchors read above every other upper end, they set the upper end (the warning's "as high as").
    monkeypatch.setattr(estimate_module, "anchor_extrapolated_rate", lambda *args: 0.6)
    high = estimate_error_rate(probs, given, settings=EstimateSettings(anchor_max_chance_share=1.0))
    assert high.upper == pytest.approx(0.6) and any("as high as 60.0%" in w for w in high.warnings)
    # They do not count where they read 3/4 or more of what a blind view reads ((K - 1) / K = 75 % here).
    blind = estimate_error_rate(probs, given)
    assert blind.details["anchor_reading_counts"] is False
    assert blind.upper < 0.6 and not any("--lower-bound-rate" in w for w in blind.warnings)
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: False)  # no lower bound: no change
    assert estimate_error_rate(probs, given, settings=opt_in).rate == pytest.approx(
        estimate_error_rate(probs, given).rate
    )


def test_the_anchor_readings_standard_error_matches_a_bootstrap_of_the_rows() -> None:
    from labelaudit.estimate import anchor_extrapolated_rate, anchor_rate_standard_error

    rng = np.random.default_rng(8)
    true, probs, _ = _anchor_case(rng, n=3000)
    given = np.where(rng.random(len(true)) < 0.15, (true + 1) % probs.shape[1], true)
    shares = (0.25, 0.5)
    error = anchor_rate_standard_error(given, probs, shares)
    replicates = [
        anchor_extrapolated_rate(given[rows], probs[rows], shares)
        for rows in (rng.integers(0, len(true), len(true)) for _ in range(200))
    ]
    assert error == pytest.approx(float(np.std(replicates)), rel=0.25)
    # Four times the rows, half the error.
    many = np.tile(np.arange(len(true)), 4)
    assert anchor_rate_standard_error(given[many], probs[many], shares) == pytest.approx(error / 2, rel=0.05)


def test_anchors_that_all_agree_with_their_labels_still_have_a_sampling_error() -> None:
    """No disagreement among a few hundred anchors is no proof that none of their labels is wrong: the reading's
    standard error stays positive (each share smoothed by half a count), so the check that the anchors read
    more than the point beyond their error cannot be passed on a reading taken as exact."""
    from labelaudit.estimate import anchor_rate_standard_error

    rng = np.random.default_rng(8)
    _, probs, _ = _anchor_case(rng, n=3000)
    agreeing = np.argmax(probs, axis=1)  # every label is the methods' predicted class: no anchor disagrees
    clean = anchor_rate_standard_error(agreeing, probs, (0.25, 0.5))
    assert clean > 0.0
    many = np.tile(np.arange(len(agreeing)), 4)  # and it still shrinks with the rows
    assert 0.0 < anchor_rate_standard_error(agreeing[many], probs[many], (0.25, 0.5)) < clean


def _separated_pairs(predicted: np.ndarray, rng: np.random.Generator, alike: bool) -> np.ndarray:
    """Each sample's two neighbours: samples of its own predicted class (``alike``), or any samples."""
    n = len(predicted)
    if not alike:
        return rng.integers(0, n, (n, 2))
    pairs = np.empty((n, 2), dtype=np.int64)
    for cls in np.unique(predicted):
        members = np.flatnonzero(predicted == cls)
        pairs[members] = rng.choice(members, (len(members), 2))
    return pairs


def test_auto_follows_the_anchors_where_they_read_more_beyond_their_error_and_the_classes_separate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lower_bound_rate="auto" (the default): the anchors head a lower bound only where they read more than
    the point by more than their sampling error and the neighbours' predicted classes are alike well above
    chance (a blind encoder's surest samples are of any class). Elsewhere the warning says why not."""
    import labelaudit.estimate as estimate_module

    rng = np.random.default_rng(6)
    true, probs, _ = _anchor_case(rng, n=4000)
    given = true.copy()
    flipped = rng.random(len(true)) < 0.25
    given[flipped] = (true[flipped] + 1) % probs.shape[1]
    predicted = np.argmax(probs, axis=1)
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)  # as on class-pair rows
    # Here the anchors read 24.1 % +- 2.3 % where isolated mistakes explain 21.6 %: within their error. As on
    # the text sets' class-pair rows, let them read far more (their standard error stays the real one).
    monkeypatch.setattr(estimate_module, "anchor_extrapolated_rate", lambda *args: 0.32)
    off = EstimateSettings(neighbour_min_purity=None)  # the neighbours' reading itself is not under test

    def read(alike: bool) -> estimate_module.ErrorEstimate:
        pairs = _separated_pairs(predicted, np.random.default_rng(0), alike)
        return estimate_error_rate(probs, given, settings=off, neighbour_pairs=pairs, neighbour_predictions=predicted)

    isolated = estimate_error_rate(probs, given, settings=EstimateSettings(lower_bound_rate="isolated"))
    separated = read(alike=True)
    assert separated.details["anchor_reading_backed"] is True
    assert separated.details["headline_reading"] == "anchors, extrapolated"
    assert separated.rate == pytest.approx(0.32, abs=0.01)
    assert isolated.rate < 0.25
    error = separated.details["anchor_standard_error"]
    assert any(f"(±{error:.1%})" in w and "`--lower-bound-rate isolated`" in w for w in separated.warnings)
    # Neighbours as alike as random samples: the encoder does not separate the classes.
    blind = read(alike=False)
    assert blind.details["anchor_reading_backed"] is False and blind.rate == pytest.approx(isolated.rate)
    assert any("separates these classes too poorly" in w and "not taken by default" in w for w in blind.warnings)
    # No graph: nothing shows the classes separate, so isolated mistakes.
    no_graph = estimate_error_rate(probs, given, settings=off)
    assert no_graph.rate == pytest.approx(isolated.rate)
    assert any("no neighbour graph" in w for w in no_graph.warnings)
    # A reading within its sampling error of the point is not taken either.
    monkeypatch.setattr(estimate_module, "anchor_rate_standard_error", lambda *args: 0.5)
    noisy = read(alike=True)
    assert noisy.details["anchor_reading_backed"] is False and noisy.rate == pytest.approx(isolated.rate)
    assert any("within its sampling error (±50.0%)" in w for w in noisy.warnings)


def test_purity_above_chance_is_zero_for_random_neighbours_and_one_for_alike_ones() -> None:
    from labelaudit.neighbour_reading import chance_purity, read_neighbours

    rng = np.random.default_rng(2)
    predicted = rng.integers(0, 4, 8000)
    labels = predicted.copy()
    assert chance_purity(predicted, rng.integers(0, 8000, (8000, 2)), 4) == pytest.approx(1 / 16, rel=0.05)
    assert chance_purity(np.zeros(10, dtype=np.int64), np.zeros((10, 2), dtype=np.int64), 4) == 1.0  # one class
    for alike, expected in ((False, 0.0), (True, 1.0)):
        pairs = _separated_pairs(predicted, rng, alike)
        reading = read_neighbours(predicted, labels, pairs, 4, None, 10, 50)
        assert reading.purity_above_chance == pytest.approx(expected, abs=0.02)
        assert reading.to_details()["chance_purity"] == pytest.approx(1 / 16, rel=0.05)


def test_the_doubted_cut_is_weighed_against_the_reading_the_headline_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``lower_bound_cut="doubted"`` cuts on the doubted samples' probabilities only where they read more than the
    headline does. With the anchors' reading heading above the doubted one, that would flag fewer than the
    headline expects, so the headline's cut stays; where the anchors read less, the doubted cut is taken."""
    import labelaudit.estimate as estimate_module

    rng = np.random.default_rng(6)
    true, probs, _ = _anchor_case(rng, n=4000)
    given = true.copy()
    flipped = rng.random(len(true)) < 0.25
    given[flipped] = (true[flipped] + 1) % probs.shape[1]
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)  # as on class-pair rows
    # As many flags as the errors expected: the count then shows whose error probabilities chose the cut.
    loose = {"anchor_max_chance_share": 1.0, "flag_cut": "expected"}
    plain = estimate_error_rate(probs, given, settings=EstimateSettings(**loose))  # type: ignore[arg-type]
    doubted, point = plain.details["doubted_samples_rate"], plain.rate
    if not point + 0.04 < doubted < 0.33:
        pytest.fail(f"the case should read the doubted samples well above the point: {doubted} vs {point}")

    def opted(anchors_read: float, cut: str) -> estimate_module.ErrorEstimate:
        monkeypatch.setattr(estimate_module, "anchor_extrapolated_rate", lambda *args: anchors_read)
        settings = EstimateSettings(lower_bound_rate="anchors", lower_bound_cut=cut, **loose)  # type: ignore[arg-type]
        return estimate_error_rate(probs, given, settings=settings)

    above = doubted + 0.03
    on_anchors, with_doubted_cut = opted(above, "headline"), opted(above, "doubted")
    assert with_doubted_cut.rate == pytest.approx(above, abs=0.005)
    assert "headline's" in with_doubted_cut.details["flag_cut"]
    assert with_doubted_cut.n_flags == on_anchors.n_flags >= 0.95 * above * len(given)
    assert not any("--lower-bound-cut doubted" in w for w in with_doubted_cut.warnings)
    # Anchors reading between the point and the doubted samples: the doubted cut is deeper, and it is taken.
    between = (point + doubted) / 2
    cut_on_doubted, cut_on_headline = opted(between, "doubted"), opted(between, "headline")
    assert "doubted-samples reading's" in cut_on_doubted.details["flag_cut"]
    assert cut_on_doubted.n_flags > cut_on_headline.n_flags


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"plausible_share": 0.0}, "plausible_share"),
        ({"anchor_share": 1.2}, "anchor_share"),
        ({"neighbour_min_purity": 0.0}, "neighbour_min_purity"),
        ({"neighbour_copy_similarity": 1.5}, "neighbour_copy_similarity"),
        ({"neighbour_min_triples_per_cell": 0}, "neighbour_min_triples_per_cell"),
        ({"neighbour_max_classes": 2.5}, "neighbour_max_classes"),
        ({"anchor_rate_shares": (0.5, 0.25)}, "anchor_rate_shares"),
        ({"symmetric_shares": (0.05,)}, "symmetric_shares"),
        ({"doubt_floor": -0.1}, "doubt_floor"),
        ({"flag_cut": "best"}, "flag_cut"),
        ({"lower_bound_rate": "anchor"}, "lower_bound_rate"),
        ({"methods": ()}, "methods"),
        ({"methods": "confident"}, "methods"),
    ],
)
def test_a_setting_no_estimate_could_use_is_refused_by_name(changes: dict, field: str) -> None:
    from labelaudit.errors import LabelAuditError

    settings = EstimateSettings(**changes)
    with pytest.raises(LabelAuditError, match=rf"EstimateSettings: {field} must"):
        settings.check()
    probs = np.full((20, 2), 0.5)
    with pytest.raises(LabelAuditError, match=field):  # the Python API refuses it before reading anything
        estimate_error_rate(probs, np.arange(20) % 2, settings=settings)


def test_every_default_and_every_opt_in_the_cli_offers_passes_the_check() -> None:
    EstimateSettings().check()
    EstimateSettings(
        neighbour_min_purity=None, lower_bound_rate="anchors", lower_bound_cut="doubted", confused_sources="uniform"
    ).check()
    EstimateSettings(doubted_headline_ratio=2.0, symmetric_flatness=None, label_free_methods=()).check()
    EstimateSettings(neighbour_copy_similarity=None).check()


def test_the_neighbours_reading_calls_copies_what_the_duplicates_check_does() -> None:
    from labelaudit.issues.duplicates import NEAR_DUPLICATE_THRESHOLD

    assert EstimateSettings().neighbour_copy_similarity == NEAR_DUPLICATE_THRESHOLD


def test_leaning_on_the_neighbour_vote_averages_it_with_the_consensus_on_the_consensus_scale() -> None:
    from labelaudit.consensus import combine, lean_on_neighbours
    from labelaudit.scorers import ScorerResult

    labels = np.array([0, 1, 0, 1])
    probe = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    vote = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.6, 0.4]])
    results = {
        name: ScorerResult(
            quality=p[np.arange(4), labels], is_issue=np.zeros(4, bool), suggested=p.argmax(1), pred_probs=p
        )
        for name, p in (("confident", probe), ("knn", vote))
    }
    by_probability = combine(results, labels)
    assert by_probability.score_kind == "probability"
    leaning = lean_on_neighbours(by_probability, results["knn"])
    np.testing.assert_allclose(leaning.score, (by_probability.score + vote[np.arange(4), labels]) / 2)
    np.testing.assert_array_equal(leaning.is_issue, by_probability.is_issue)
    # Where a method gave no probabilities the consensus is a mean of ranks, and the vote joins as a rank.
    results["confident"] = dataclasses.replace(results["confident"], pred_probs=None)
    by_rank = combine(results, labels)
    assert by_rank.score_kind == "rank"
    vote_ranks = np.array([1.0, 2 / 3, 0.0, 1 / 3])  # the vote's given-label scores 1, .5, 0, .4, ranked
    np.testing.assert_allclose(lean_on_neighbours(by_rank, results["knn"]).score, (by_rank.score + vote_ranks) / 2)


def test_what_the_scores_cannot_hold_goes_up_the_score_whole_bins_first() -> None:
    from labelaudit.estimate import _bins, filled_up_the_scores

    scores = np.concatenate([np.full(10, 0.05), np.full(40, 0.6), np.full(50, 0.95)])
    assert len(set(_bins(scores).tolist())) == 3  # three score bins
    posterior = np.where(scores < 0.1, 1.0, 0.0)  # the scores hold 10 %
    filled = filled_up_the_scores(posterior, _bins(scores), 0.3)
    assert filled.mean() == pytest.approx(0.3)
    assert np.all(filled[:10] == 1.0) and np.allclose(filled[10:50], 0.5) and np.all(filled[50:] == 0.0)
    assert np.all(np.diff(filled[np.argsort(scores, kind="stable")]) <= 0)  # monotone down the score
    assert filled_up_the_scores(posterior, _bins(scores), 0.05) is posterior  # nothing missing: unchanged


def test_a_lower_bounds_upper_end_is_what_even_a_weak_label_free_view_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lower bound says the methods may have learnt mistakes that no reading from the labels sees, so their
    readings bound nothing from above; a weak label-free view errs high (it counts the right labels it cannot
    place), so it is the upper end there (wrench_trec, 45.7 % wrong: "could be up to 7.1 %" before, zero-shot
    61.3 % at audit power 0.63). Where the estimate is not a lower bound, a weak view still does not count."""
    import labelaudit.estimate as estimate_module

    learnt, label_free, given, truth = learnt_noise()
    weak_view = 0.2 * label_free + 0.8 * np.random.default_rng(1).dirichlet(np.ones(3), len(given))
    not_lower = estimate_error_rate(learnt, given, label_free_probs=weak_view)
    assert not not_lower.is_lower_bound and not not_lower.details["label_free_reading"]["sets_upper_end"]
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)
    alone = estimate_error_rate(learnt, given)
    weak = estimate_error_rate(learnt, given, label_free_probs=weak_view)
    reading = weak.details["label_free_reading"]
    assert weak.is_lower_bound and reading["audit_power"] < EstimateSettings().low_power_auroc
    assert not reading["counts"] and reading["sets_upper_end"]
    assert weak.upper == pytest.approx(reading["rate"], abs=1e-6) and weak.upper > alone.upper
    assert alone.upper < 0.01 < weak.upper <= float(np.mean(given != truth))  # nearer the truth, not past it
    assert weak.rate == alone.rate and weak.n_flags == alone.n_flags  # an upper end only
    said = next(w for w in weak.warnings if "lower bound" in w)
    assert "loose end" in said and f"{alone.upper:.1%}" in said  # what the readings from the labels reach
    assert "may be higher still" not in said
    # Without a label-free view, nothing bounds them: the warning says so rather than offer its end as a ceiling.
    assert "nothing bounds the mistakes the methods learnt" in next(w for w in alone.warnings if "lower bound" in w)
    off = EstimateSettings(label_free_bounds_lower_bounds=False)
    assert estimate_error_rate(learnt, given, label_free_probs=weak_view, settings=off).upper == alone.upper
