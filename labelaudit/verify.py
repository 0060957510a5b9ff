"""Verified-sample estimate: a stratified random sample that a person checks, and the error rate it implies.

No estimate computed from the embeddings alone is right on every kind of noise. A small sample reviewed by a
person is: drawn at random with known inclusion probabilities, it gives an unbiased estimate of the label-error
rate whatever the model got wrong, and the model's ranking only decides how *efficient* the sample is.

The statistics are plain functions over arrays (no hidden state), in the order they are used:

- design: :func:`error_guess` (the model's per-row probability that the label is wrong), :func:`make_strata`
  (strata from the consensus ranking: the flagged set, bands of the next-most-suspect rows, the clean bulk),
  :func:`allocate` (how many items per stratum: the allocation that minimises the expected variance of the
  estimate under the model's guesses, Neyman's allocation with a small-count correction, with a floor so no
  stratum goes unsampled) and :func:`draw` (a seeded simple random sample inside every stratum);
- estimate: :func:`point_rate` (the stratified Horvitz-Thompson estimate) and :func:`estimate_rate`, whose
  interval comes from :func:`posterior_totals` (per stratum, beta-binomial draws of the errors among the rows
  nobody reviewed, with the Clopper-Pearson priors split over the strata: fully reviewed strata are exact,
  strata with no error found still get an honest upper end), combined by Monte Carlo with a fixed seed;
  :func:`flagged_precision_recall`, :func:`class_rates`, :func:`items_to_halve` and :func:`choose_threshold`
  build on the same counts.

The workflow (reading a report, writing the queue and the design, joining decisions back) is in
``verification.py``; none of it imports torch.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

# ---------------------------------------------------------------- design

# Bands of the unflagged rows by consensus rank, as cumulative fractions: the next 5 %, the next 10 %, the
# next 25 %, then the bulk. Errors the flag missed concentrate just past the cut when the ranking is
# informative; log-spaced bands follow that decay without trusting the model's probabilities for the cut
# points (only for the allocation).
BANDS = (0.05, 0.15, 0.40)
# Items every stratum gets at least (when it has that many rows): an empty stratum would make the estimate
# depend on the model again.
MIN_PER_STRATUM = 5
# The smallest per-stratum error rate the allocation assumes. A model that is sure its bulk is clean is the
# model whose blind spots a verification exists to catch, so its guess is not taken below this.
GUESS_FLOOR = 0.02
# Unknown model probabilities (no probabilistic method ran): a flagged row is a coin flip, others 5 %.
FLAGGED_GUESS, UNFLAGGED_GUESS = 0.5, 0.05
LEVEL = 0.95
DRAWS = 20_000
JEFFREYS = 0.5  # Beta(1/2, 1/2): smooths rates in the width prediction of items_to_halve
MIN_PER_CLASS = 20  # reviewed items of a class before its own rate is reported


def error_guess(
    given: np.ndarray,
    suggested: np.ndarray,
    suggested_prob: np.ndarray,
    is_issue: np.ndarray,
    error_probability: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """The model's probability that each row's label is wrong, and where it came from.

    A calibrated ``error_probability`` column wins when the report has one. Otherwise: a row whose suggested
    label is its given label is wrong with probability ``1 - suggested_prob``; a row with another suggestion
    at least with ``suggested_prob`` (the suggested class alone takes that much). Rows without a probability
    fall back to the flag. The guess only steers the allocation; the estimate does not depend on it.
    """
    flag_guess = np.where(np.asarray(is_issue, dtype=bool), FLAGGED_GUESS, UNFLAGGED_GUESS)
    if error_probability is not None:
        guess = np.asarray(error_probability, dtype=np.float64)
        return np.clip(np.where(np.isfinite(guess), guess, flag_guess), 0.0, 1.0), "error_probability"
    prob = np.asarray(suggested_prob, dtype=np.float64)
    same = np.asarray(given, dtype=object) == np.asarray(suggested, dtype=object)
    guess = np.where(same, 1.0 - prob, prob)
    if not np.isfinite(guess).any():
        return flag_guess, "flag (no probabilities in the report)"
    return np.clip(np.where(np.isfinite(guess), guess, flag_guess), 0.0, 1.0), "suggested_prob"


def make_strata(
    is_issue: np.ndarray,
    rank: np.ndarray,
    bands: Sequence[float] = BANDS,
    min_rows: int = 2 * MIN_PER_STRATUM,
) -> tuple[np.ndarray, list[str]]:
    """Stratum index of every row and the strata's names.

    Stratum 0 is the flagged set (when there is one); the unflagged rows, most suspect (lowest ``rank``) first,
    are cut into bands at the cumulative fractions ``bands``, the last band being the clean bulk. A band with
    fewer than ``min_rows`` rows joins the next one, so that every stratum can hold a floor of reviewed items.
    """
    flagged = np.asarray(is_issue, dtype=bool)
    rank = np.asarray(rank)
    strata = np.full(len(flagged), -1, dtype=np.int64)
    names: list[str] = []
    if flagged.any():
        strata[flagged] = 0
        names.append("flagged")
    rest = np.flatnonzero(~flagged)
    rest = rest[np.argsort(rank[rest], kind="mergesort")]
    cuts = sorted({int(round(f * len(rest))) for f in bands if 0.0 < f < 1.0} | {len(rest)})
    segments: list[list[int]] = []
    for cut in cuts:
        start = segments[-1][1] if segments else 0
        if cut <= start:
            continue
        if segments and segments[-1][1] - segments[-1][0] < min_rows:
            segments[-1][1] = cut  # the band before is too small: it takes these rows too
        else:
            segments.append([start, cut])
    if len(segments) > 1 and segments[-1][1] - segments[-1][0] < min_rows:
        # A small last band joins the one before. Two statements: in ``segments[-2][1] = segments.pop()[1]`` the
        # pop runs first, so the band two before took the rows (and two bands raised an IndexError).
        last = segments.pop()
        segments[-1][1] = last[1]
    for number, (start, end) in enumerate(segments):
        strata[rest[start:end]] = len(names)
        if number == len(segments) - 1:
            names.append("clean bulk" if len(segments) > 1 else "unflagged")
        else:
            names.append(f"unflagged, rank {start / len(rest):.0%}-{end / len(rest):.0%}")
    return strata, names


def _expected_variance(weight: float, guess: float, n: int, size: int) -> float:
    """Expected variance of a stratum's contribution with ``n`` of ``size`` rows reviewed.

    ``guess + 1/n`` instead of ``guess``: with few items and few errors the interval is as wide as about one
    error in ``n`` would make it (the prior's weight), so a stratum the model calls clean still earns items.
    """
    if n >= size:
        return 0.0
    rate = min(guess + 1.0 / n, 0.5)
    return weight * weight * rate * (1.0 - rate) / n * (1.0 - n / size)


def allocate(
    sizes: np.ndarray,
    guesses: np.ndarray,
    n: int,
    floor: int = MIN_PER_STRATUM,
    guess_floor: float = GUESS_FLOOR,
) -> np.ndarray:
    """Items to review per stratum: ``n`` in all (or every row when the strata hold fewer).

    Every stratum first gets ``min(floor, size)``; the rest go one at a time to the stratum whose expected
    variance drops most (exact for this separable convex objective; Neyman's allocation when counts are
    large). ``guesses`` are the per-stratum error rates the model expects, taken no lower than
    ``guess_floor``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if n >= total:
        return sizes.copy()
    weights = sizes / max(total, 1)
    rates = np.clip(np.asarray(guesses, dtype=np.float64), guess_floor, 0.5)
    counts = np.minimum(sizes, min(floor, n // max(len(sizes), 1)))  # a small n shares the floor out evenly
    if n < len(sizes):  # fewer items than strata: one each, biggest strata first
        for h in np.argsort(-sizes, kind="mergesort")[:n]:
            counts[h] = 1
    heap = []
    for h in range(len(sizes)):
        if counts[h] < sizes[h]:
            heap.append((-_gain(weights[h], rates[h], int(counts[h]), int(sizes[h])), h))
    heapq.heapify(heap)
    left = n - int(counts.sum())
    while left > 0 and heap:
        _, h = heapq.heappop(heap)
        counts[h] += 1
        left -= 1
        if counts[h] < sizes[h]:
            heapq.heappush(heap, (-_gain(weights[h], rates[h], int(counts[h]), int(sizes[h])), h))
    return counts


def _gain(weight: float, rate: float, n: int, size: int) -> float:
    before = _expected_variance(weight, rate, n, size) if n > 0 else math.inf
    return before - _expected_variance(weight, rate, n + 1, size)


def draw(strata: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """Row positions of a simple random sample of ``counts[h]`` rows inside every stratum ``h``, in a random
    order (so the queue's order does not tell a reviewer which stratum an item came from)."""
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(strata == h), size=int(c), replace=False) for h, c in enumerate(counts)]
    chosen = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
    return rng.permutation(chosen.astype(np.int64))


# ---------------------------------------------------------------- estimate
#
# The interval. Per stratum h with N_h rows, m_h reviewed and x_h found wrong, the errors among the N_h - m_h
# rows nobody reviewed are drawn beta-binomially: a rate from a Beta posterior, then a binomial count; the
# stratum totals are summed over Monte Carlo draws with a fixed seed and the interval's ends are quantiles of
# that sum. Two details make it keep its nominal coverage where a plain Wald or Jeffreys interval does not:
#
# - The two ends use the two priors of the Clopper-Pearson interval: the lower end Beta(0, s_h), the upper end
#   Beta(s_h, 0). For one stratum (s = 1) and a large population this *is* Clopper-Pearson: x = 0 gives a
#   lower end of exactly 0 and a positive upper end, and the interval never under-covers because of small
#   counts.
# - The prior is *split* over the strata: s_h = m_h / m, the stratum's share of the reviewed items, so all
#   strata together carry one pseudo-observation, not one each. Per-stratum priors of full weight (say a
#   Jeffreys prior in each of five strata) add up to a strong prior that pulls the estimate of a nearly clean
#   dataset upwards and made the stratified interval wider than simple random sampling in simulations. The
#   split is the Beta analogue of Tiwari et al.'s (2006) modification of the Fay-Feuer (1997) interval for
#   weighted sums of counts: one extra event, weighted like an average reviewed item, for the upper end.
#
# A fully reviewed stratum is exact (the finite-population correction in its plainest form); a stratum nobody
# reviewed (every drawn item skipped) contributes its worst case, 0 to the lower and 1 to the upper end.

LOWER, UPPER = "lower", "upper"


def _tail_rates(
    reviewed: np.ndarray, errors: np.ndarray, share: np.ndarray, tail: str, rng: np.random.Generator, draws: int
) -> np.ndarray:
    """(draws, H) rates from the tail's Beta posterior; point masses where a shape parameter is 0."""
    a = errors + (share if tail == UPPER else 0.0)
    b = reviewed - errors + (share if tail == LOWER else 0.0)
    safe = rng.beta(np.where(a > 0, a, 1.0), np.where(b > 0, b, 1.0), size=(draws, len(a)))
    if tail == LOWER:
        return np.where(a > 0, np.where(b > 0, safe, 1.0), 0.0)
    return np.where(b > 0, np.where(a > 0, safe, 0.0), 1.0)


def posterior_totals(
    sizes: np.ndarray,
    reviewed: np.ndarray,
    errors: np.ndarray,
    tail: str,
    rng: np.random.Generator,
    draws: int = DRAWS,
    share: np.ndarray | None = None,
    rates: np.ndarray | None = None,
) -> np.ndarray:
    """(draws, H) Monte Carlo draws of every stratum's total number of wrong labels, for the ``tail``
    (``"lower"`` or ``"upper"``) end of the interval.

    ``share`` is each stratum's prior weight (default: its share of the reviewed items). ``rates`` (draws, H),
    when given, is used for strata with nothing reviewed instead of their worst case (class cells borrow their
    stratum's rate this way).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    reviewed = np.asarray(reviewed, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.int64)
    if share is None:
        share = prior_share(sizes, reviewed)
    theta = _tail_rates(reviewed, errors, np.asarray(share, dtype=np.float64), tail, rng, draws)
    if rates is not None:
        theta = np.where(reviewed == 0, rates, theta)
    unseen = rng.binomial(np.broadcast_to(sizes - reviewed, theta.shape), theta)
    return errors + unseen


def prior_share(sizes: np.ndarray, reviewed: np.ndarray) -> np.ndarray:
    """Each stratum's part of the one pseudo-observation: its share of the reviewed items among the strata
    that still hold unreviewed rows (a fully reviewed stratum is exact and needs no prior)."""
    open_ = np.asarray(reviewed) < np.asarray(sizes)
    weights = np.where(open_, np.asarray(reviewed, dtype=np.float64), 0.0)
    if weights.sum() == 0:
        return open_.astype(np.float64) / max(int(open_.sum()), 1)
    return weights / weights.sum()


def quantile(values: np.ndarray, tail: str, level: float = LEVEL) -> float:
    """The interval's end from Monte Carlo draws. Totals are counts: an interpolated quantile would fall
    between two counts and shorten the interval, so the end is a drawn value (the inverted CDF)."""
    q = (1.0 - level) / 2.0
    return float(np.quantile(values, q if tail == LOWER else 1.0 - q, method="inverted_cdf"))


def point_rate(sizes: np.ndarray, reviewed: np.ndarray, errors: np.ndarray) -> float:
    """Stratified (Horvitz-Thompson) estimate: every reviewed row stands for ``size / reviewed`` rows of its
    stratum. A stratum with nothing reviewed counts at 1/2, the middle of its worst-case range."""
    sizes = np.asarray(sizes, dtype=np.float64)
    reviewed = np.asarray(reviewed, dtype=np.float64)
    rates = np.where(reviewed > 0, np.asarray(errors) / np.maximum(reviewed, 1), 0.5)
    return float((sizes * rates).sum() / max(sizes.sum(), 1.0))


def _bounded(point: float, low: float, high: float) -> dict[str, float]:
    # The ends never exclude the point: with no error found anywhere the lower end is 0 and the point too.
    return {"estimate": point, "lower": min(low, point), "upper": max(high, point)}


def estimate_rate(
    sizes: np.ndarray,
    reviewed: np.ndarray,
    errors: np.ndarray,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, float]:
    """Error rate over all strata: the stratified point estimate and its ``level`` interval."""
    rng = np.random.default_rng(seed)
    total = max(int(np.sum(sizes)), 1)
    ends = [
        quantile(posterior_totals(sizes, reviewed, errors, tail, rng, draws).sum(axis=1) / total, tail, level)
        for tail in (LOWER, UPPER)
    ]
    return _bounded(point_rate(sizes, reviewed, errors), *ends)


def flagged_precision_recall(
    sizes: np.ndarray,
    reviewed: np.ndarray,
    errors: np.ndarray,
    flagged: np.ndarray,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Precision (share of the flagged rows that are wrong) and recall (share of all wrong rows that are
    flagged) of the report's flag, where ``flagged[h]`` says stratum ``h`` is part of the flagged set.

    Recall's lower end takes the flagged strata at their lower and the others at their upper end (fewest
    errors caught, most missed), and the other way round for its upper end."""
    flagged = np.asarray(flagged, dtype=bool)
    sizes, reviewed, errors = (np.asarray(a, dtype=np.int64) for a in (sizes, reviewed, errors))
    rng = np.random.default_rng(seed + 1)
    out: dict[str, dict[str, float]] = {}
    n_flagged = int(sizes[flagged].sum())
    if not n_flagged:
        return out
    caught = point_rate(sizes[flagged], reviewed[flagged], errors[flagged]) * n_flagged
    everything = point_rate(sizes, reviewed, errors) * int(sizes.sum())
    # Precision is about the flagged strata alone: their prior is one pseudo-observation among themselves.
    inside = [a[flagged] for a in (sizes, reviewed, errors)]
    out["precision"] = _bounded(
        caught / n_flagged,
        quantile(posterior_totals(*inside, LOWER, rng, draws).sum(axis=1) / n_flagged, LOWER, level),
        quantile(posterior_totals(*inside, UPPER, rng, draws).sum(axis=1) / n_flagged, UPPER, level),
    )
    share = prior_share(sizes, reviewed)
    low = posterior_totals(sizes, reviewed, errors, LOWER, rng, draws, share)
    high = posterior_totals(sizes, reviewed, errors, UPPER, rng, draws, share)
    if everything > 0 or high.sum() > 0:
        few = low[:, flagged].sum(axis=1)
        many = high[:, flagged].sum(axis=1)
        recall_low = few / np.maximum(few + high[:, ~flagged].sum(axis=1), 1)
        recall_high = np.where(
            many + low[:, ~flagged].sum(axis=1) > 0, many / np.maximum(many + low[:, ~flagged].sum(axis=1), 1), 1.0
        )
        point = caught / everything if everything > 0 else 1.0
        out["recall"] = _bounded(point, quantile(recall_low, LOWER, level), quantile(recall_high, UPPER, level))
    return out


def class_rates(
    strata: np.ndarray,
    classes: np.ndarray,
    reviewed: np.ndarray,
    wrong: np.ndarray,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
    min_reviewed: int = MIN_PER_CLASS,
) -> dict[str, dict[str, float | int]]:
    """Per given label: its error rate with an interval, for classes with at least ``min_reviewed`` reviewed
    rows. ``strata`` and ``classes`` cover every row of the report; ``reviewed`` marks the reviewed rows and
    ``wrong`` their verdicts. Each (stratum, class) cell is a stratum of its own; a cell nobody reviewed
    borrows its stratum's rate (an assumption: the class errs there like the stratum's other classes)."""
    strata = np.asarray(strata, dtype=np.int64)
    classes = np.asarray(classes).astype(str)
    reviewed = np.asarray(reviewed, dtype=bool)
    wrong = np.asarray(wrong, dtype=bool) & reviewed
    n_strata = int(strata.max()) + 1 if len(strata) else 0
    rng = np.random.default_rng(seed + 2)
    stratum_reviewed = np.bincount(strata[reviewed], minlength=n_strata)
    stratum_errors = np.bincount(strata[wrong], minlength=n_strata)
    stratum_share = prior_share(np.bincount(strata, minlength=n_strata), stratum_reviewed)
    borrowed = {
        tail: _tail_rates(stratum_reviewed, stratum_errors, stratum_share, tail, rng, draws) for tail in (LOWER, UPPER)
    }
    out: dict[str, dict[str, float | int]] = {}
    for name in sorted(set(classes[reviewed])):
        mine = classes == name
        if int((mine & reviewed).sum()) < min_reviewed:
            continue
        sizes = np.bincount(strata[mine], minlength=n_strata)
        seen = np.bincount(strata[mine & reviewed], minlength=n_strata)
        bad = np.bincount(strata[mine & wrong], minlength=n_strata)
        ends = []
        for tail in (LOWER, UPPER):
            totals = posterior_totals(sizes, seen, bad, tail, rng, draws, rates=borrowed[tail])
            ends.append(quantile(totals.sum(axis=1) / max(int(sizes.sum()), 1), tail, level))
        stratum_rate = stratum_errors / np.maximum(stratum_reviewed, 1)
        cell = np.where(seen > 0, bad / np.maximum(seen, 1), stratum_rate)
        point = float((sizes * cell).sum() / max(int(sizes.sum()), 1))
        out[name] = {
            **_bounded(point, *ends),
            "rows": int(sizes.sum()),
            "reviewed": int(seen.sum()),
            "wrong": int(bad.sum()),
        }
    return out


def normal_half_width(sizes: np.ndarray, reviewed: np.ndarray, errors: np.ndarray, level: float = LEVEL) -> float:
    """Normal-approximation half-width of the stratified estimate, with Jeffreys-smoothed rates (used only to
    predict how the interval shrinks with more items, never as the reported interval)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    reviewed = np.asarray(reviewed, dtype=np.float64)
    rates = (np.asarray(errors) + JEFFREYS) / (reviewed + 2 * JEFFREYS)
    weights = sizes / max(sizes.sum(), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            reviewed >= sizes, 0.0, weights**2 * rates * (1 - rates) / np.maximum(reviewed, 1) * (1 - reviewed / sizes)
        )
    z = _z(level)
    return float(z * math.sqrt(terms.sum()))


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2.0))


def items_to_halve(sizes: np.ndarray, reviewed: np.ndarray, errors: np.ndarray, level: float = LEVEL) -> int | None:
    """About how many more reviewed items (spread like the current ones) would halve the interval's width;
    0 when the strata are already fully reviewed, None when nothing was reviewed."""
    sizes = np.asarray(sizes, dtype=np.int64)
    reviewed = np.asarray(reviewed, dtype=np.int64)
    have = int(reviewed.sum())
    if have == 0:
        return None
    now = normal_half_width(sizes, reviewed, errors, level)
    if now == 0.0:
        return 0
    shares = reviewed / have

    def width(total: int) -> float:
        counts = np.minimum(sizes, np.maximum(reviewed, np.round(shares * total).astype(np.int64)))
        return normal_half_width(sizes, counts, errors * counts / np.maximum(reviewed, 1), level)

    low, high = have, int(sizes.sum())
    if width(high) > now / 2:
        return high - have
    while low < high:  # the smallest total whose predicted width is at most half of today's
        mid = (low + high) // 2
        if width(mid) <= now / 2:
            high = mid
        else:
            low = mid + 1
    return low - have


def choose_threshold(scores: np.ndarray, wrong: np.ndarray, weights: np.ndarray) -> dict[str, float] | None:
    """The consensus-score cut (flag ``score <= cut``) with the best estimated F1 on the reviewed rows.

    ``scores``, ``wrong`` and ``weights`` (each row's Horvitz-Thompson weight, ``size / reviewed`` of its
    stratum) are those of the reviewed rows. The F1 at the chosen cut is optimistic: the cut was chosen on
    the same rows it is measured on.
    """
    scores = np.asarray(scores, dtype=np.float64)
    wrong = np.asarray(wrong, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    if not wrong.any():
        return None
    order = np.argsort(scores, kind="mergesort")
    s, y, w = scores[order], wrong[order], weights[order]
    tp = np.cumsum(w * y)
    fp = np.cumsum(w * ~y)
    positives = float((w * y).sum())
    last = np.r_[s[1:] != s[:-1], True]  # evaluate only after the last row of each tied score
    f1 = np.where(last, 2 * tp / (2 * tp + fp + (positives - tp)), -1.0)
    best = int(np.argmax(f1))
    flagged = tp[best] + fp[best]
    return {
        "max_consensus_score": float(s[best]),
        "precision": float(tp[best] / flagged) if flagged else 0.0,
        "recall": float(tp[best] / positives),
        "f1": float(f1[best]),
    }


def flag_f1(flagged: np.ndarray, wrong: np.ndarray, weights: np.ndarray) -> float:
    """Estimated F1 of a given flag on the reviewed rows, Horvitz-Thompson weighted like choose_threshold."""
    flagged = np.asarray(flagged, dtype=bool)
    wrong = np.asarray(wrong, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    tp = float((weights * (flagged & wrong)).sum())
    fp = float((weights * (flagged & ~wrong)).sum())
    fn = float((weights * (~flagged & wrong)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
