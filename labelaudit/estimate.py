"""The label-error rate, estimated on the dataset itself: a point, an interval and a calibrated posterior.

Why not the share of flagged samples: on a nearly clean dataset most samples a model disagrees with are
hard, not mislabelled, so that share reads 8-12 % where the truth is 0.3-1 %; and on heavily corrupted
data the models learn the noise, so it reads 8 % where the truth is 46 %.

How (mixture-proportion estimation, in the spirit of Garg et al. 2021, "Best Bin Estimation"):
- Every sample's *score* is the out-of-sample probability the methods give its label. Observed scores are
  a mixture: ``F_obs = (1 - rate) * F_clean + rate * F_wrong``.
- ``F_wrong``, the score distribution of a wrong label, is read from *synthetic mistakes*: give a sample
  another label and look at the probability the methods gave that label. The methods' probabilities for
  a sample were computed without its own label (cross-fitted folds, neighbours other than itself), so
  every (sample, other label) pair is a synthetic mistake that costs nothing to score: no retraining.
  Which other label: the data's own confusions, read on the samples the methods are surest of (anchors, see
  anchor_confusions), so a synthetic mistake goes where the real ones tend to go; or any other class, where
  those explain the lowest scores at a flat ratio (the mark of symmetric noise). Confusion-weighted
  mistakes are made from the class the methods predict, not the given label (``mistake_origins``).
- A synthetic mistake on a sample whose label is already wrong may give it its true class: no mistake,
  and it scores like a right label. The readings are corrected for those (``RepairChances``).
- Where scores are low, almost only wrong labels live, so ``F_obs(t) / F_wrong(t)`` is close to the rate.
  The threshold ``t`` is the one whose upper confidence bound of that ratio is lowest.
- The interval spans what the data cannot tell apart: the statistical bounds of that ratio, the same
  estimate with synthetic mistakes that go to any class (the most visible kind), and two readings for
  mistakes that are plausible (placed on samples the methods already doubt, or read higher up the score
  range, where systematic errors that the models have learnt still show). A wide interval means the
  estimate is a lower bound, and the summary says so.
- The posterior ``P(wrong | score) = rate * f_wrong(score) / f_obs(score)`` (a monotone density ratio,
  fitted by isotonic regression) turns the rate into a per-sample error probability whose mean is the
  rate; the flags are the top of the ranking down to the cut with the best expected F1 under that probability
  (``flag_count``), and per-class rates add up to the headline.
- Verified items (``labelaudit estimate``) enter as known anchors: probability 0 (checked right) or 1.

Defaults were chosen on the tune rows of benchmarks/quality.py (never on the rows it reports).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .chunked import row_blocks
from .neighbour_reading import NeighbourReading, read_neighbours, reading_gate

# Part of the score cache's key for an estimate: raised whenever the estimator's code changes what it returns
# for the same inputs and settings, so that a cached re-run never reads back an older estimator's numbers.
# 2: the readings count the synthetic mistakes that repair a label; the power takes them out.
# 3: confusion-weighted synthetic mistakes are made from the predicted class (EstimateSettings.mistake_origin).
# 4: they go where the labels of anchor samples go, not where cleanlab's confident joint says (confusions_from).
# 5: with two classes they leave each class as often as the anchors' labels say (confused_sources="auto").
# 6: the interval's upper end also holds the reading of the methods that never see the labels (label_free_methods).
# 7: that reading counts only below half of what a view with no information reads (label_free_max_chance_share).
# 8: a lower bound reads the anchors' rate too (details, warning, upper end; EstimateSettings.lower_bound_rate).
# 9: on clusterable data the headline follows the neighbours' labels (HOC; EstimateSettings.neighbour_min_purity).
# 10: there the flag cut is chosen along a ranking that leans on the neighbour vote (consensus.lean_on_neighbours).
# 11: the neighbours' reading is followed only up to the label-free reading (or the readings' upper end).
# 12: where it is followed, at least the count it expects is flagged (neighbour_flags_expected).
# 13: the neighbours it reads are the nearest that are not copies of the sample (neighbour_copy_similarity).
# 14: a followed reading the scores cannot hold goes up the score, so the headline is it (filled_up_the_scores).
# 15: a lower bound's upper end is the label-free reading wherever it reads more (label_free_bounds_lower_bounds).
# 16: where no label-free method ran, a lower bound's warning says nothing bounds the mistakes the methods learnt.
# 17: a lower bound follows the anchors where they read more beyond their error and the classes separate ("auto").
# 18: the anchors do not count where the surest of them disagree with their labels more than the next ones do.
ESTIMATOR_VERSION = 18
# Score bins on the logit scale: the low tail, where the estimate is read, needs fine resolution near 0.
_LOGIT_EDGES = np.linspace(-16.0, 16.0, 1601)
SCORE_EDGES = np.concatenate([[0.0], 1.0 / (1.0 + np.exp(-_LOGIT_EDGES)), [1.0 + 1e-9]])


@dataclass(frozen=True)
class EstimateSettings:
    """How the rate is estimated. Each default was chosen on the benchmark's tune rows."""

    # Whose out-of-sample probabilities the estimate reads (their mean; all methods' mean if none of these
    # ran). The probe and the neighbour vote learn from the labels out of fold; zero-shot ignores the labels,
    # and its flatter probabilities blur the line between right and wrong labels.
    methods: tuple[str, ...] = ("confident", "knn")
    # Methods that never see the labels (zero-shot prompts). The same estimate read on their probabilities cannot
    # be fooled by mistakes the other methods have learnt from the labels, only by right labels the encoder finds
    # hard, so it reads high rather than low and is one more upper end of the interval, never the point
    # (label_free_reading). Ignored where its own audit power is below ``low_power_auroc`` (such a view cannot
    # tell a mistake from a right label, and its reading is mostly right labels), or where it reads at least
    # ``label_free_max_chance_share`` of what a view with no information reads, (K - 1) / K (every label as
    # likely wrong as any other): most of what such a view counts is its own blindness. Near that rate the
    # audit power, taken apart from the rate, means nothing and reads high: wrench_youtube with its classes
    # named "0" and "1" (a manifest's label codes) read 42.4 % with power 0.99; with the names HAM and SPAM
    # 16.8 % (0.86). The code-named views of the six shared text sets read 0.64-1.00 of chance, the named
    # ones 0.03-0.34 (0.74 on wrench_trec, whose power of 0.63 already rules it out). A flat cap of one half
    # (estimator version 6) is chance itself with two classes.
    label_free_methods: tuple[str, ...] = ("zeroshot",)
    label_free_max_chance_share: float = 0.5
    # Where the estimate is a lower bound, the label-free reading raises the upper end even where it does not
    # count (weak, or near what a blind view reads): a lower bound says the methods may have learnt mistakes
    # that no reading from the labels sees, so their readings bound nothing, and a weak label-free view errs
    # high (it counts the right labels it cannot place). Without it wrench_trec, 45.7 % wrong, read "at least
    # 0.7 %, could be up to 7.1 %", and a gate on the upper end passed it; zero-shot read 61.3 % (power 0.63).
    label_free_bounds_lower_bounds: bool = True
    min_injected_share: float = 0.1  # the threshold search starts where 10 % of synthetic mistakes lie below it
    plausible_share: float = 0.7  # the "plausible mistakes" reading of the upper bound, at this share
    destination_smoothing: float = 0.5  # pseudo-count added to every confusion when choosing a mistake's label
    doubt_floor: float = 0.02  # doubt-weighted mistakes: weight = 1 - score + this floor
    # Which samples get the confusion-weighted synthetic mistakes: every sample alike ("uniform"), in
    # proportion to how often the data's confusions (confusions_from) say its class is given another label
    # ("confusion"), or "auto" (the default): "confusion" with two classes, "uniform" with more. Where the
    # mistakes leave one class only (positives missed, a rule that fires on one class), uniform sources put
    # half of them on a class nobody mislabels, lower than any real mistake, and read the rate near 0:
    # two-class one-way noise 0.1-1.8 % for 6-14 %, "confusion" 5.3-14.2 % (benchmarks/two_class_noise.py).
    # With two classes a mistake has one place to go, so which class it leaves is all the confusions can
    # tell; read on anchors it no longer counts hard right labels (imdb_test_cleanlab, tune rows
    # (benchmarks/tune_settings.py): 0.5 % uniform, 0.6 % confusion, for 0.7 %; the confident joint read
    # 1.1 %); wrench_sms 2.3 -> 3.2 % for 6.0 %, flag F1 0.55 -> 0.62, youtube unchanged. With more classes
    # the confusions already choose the destinations, and using them for the sources too called both nearly
    # clean 20news sets (0.3 %, 1.1 %) lower bounds. `audit --mistake-sources`.
    confused_sources: Literal["auto", "uniform", "confusion"] = "auto"
    # Which class a confusion-weighted synthetic mistake is made from: the class the methods predict
    # ("predicted", the default) or the given label ("given", before). Made from the given label, a mistake on
    # a label that is already wrong moves it a second step (under class-pair noise class i, given i + 1,
    # becomes i + 2), which scores lower than any real mistake, and the rate reads low (see mistake_origins).
    # With two classes both are the same (a second step is a repair, which the readings count). Tune rows
    # (benchmarks/tune_settings.py), given -> predicted: CIFAR-10N worst 28.0 -> 30.3 % (truth 41.0 %),
    # random1 16.9 -> 18.0 % (17.8 %), aggre 9.7 % both (9.1 %); wrench_trec 1.0 -> 0.6 % (45.7 %, a lower bound
    # both ways); the 20news sets unchanged. Seed-1 class-pair rows: wrench_trec asym 20 % 3.6 -> 5.9 %, flag F1
    # 0.31 -> 0.54; CIFAR-10N asym 20 % 10.7 -> 14.1 % (F1 0.46 -> 0.54), asym 40 % 8.8 -> 10.9 % (0.20 -> 0.31);
    # symmetric and instance-dependent rows within 0.2 points. The interval's upper end is lower (trec 13.4 ->
    # 7.3 %).
    mistake_origin: Literal["given", "predicted"] = "predicted"
    # Where the confusion-weighted synthetic mistakes go (and, where the sources follow the confusions, see
    # confused_sources, which classes they leave): the given labels of anchor samples ("anchors", the default; see
    # anchor_confusions), or cleanlab's confident joint ("confident_joint", before). The confident joint also counts
    # the hard right labels that the methods put in a neighbouring class, so it sends mistakes where the *model*
    # errs, not where the *labels* went: on CIFAR-10N's proxy features a third of them went to the real class-pair
    # noise's class. Tune rows (benchmarks/tune_settings.py), confident joint -> anchors: CIFAR-10N worst 30.3 ->
    # 34.4 % (truth 41.0 %), aggre 9.7 -> 10.2 % (9.1 %), random1 18.0 -> 19.2 % (17.8 %); seed-1 class-pair rows:
    # CIFAR-10N asym 10/20/40 % 9.6/14.1/11.0 -> 11.4/18.0/15.5 %, wrench_trec asym 10/20 % 5.6/5.9 -> 7.6/10.6 %;
    # the nearly clean sets, symmetric and instance-dependent rows within 0.6 points.
    confusions_from: Literal["anchors", "confident_joint"] = "anchors"
    # The anchors of a class: this share of the samples the methods predict as it, those they are surest of.
    # Tune rows: 0.35 reads class-pair noise higher still but CIFAR-10N asym 20 % at 20.8 % and aggre at 10.8 %
    # (9.1 %); 0.7 called the nearly clean 20news slice (1.1 %) a lower bound.
    anchor_share: float = 0.5
    selection_confidence: float = 0.90  # confidence of the bound that chooses the threshold
    confidence: float = 0.95  # confidence of the reported interval
    wide_interval: float = 0.05  # an interval wider than this (and than the estimate) is called uncertain
    # The estimate is called a lower bound when mistakes placed where the methods already doubt, or read
    # higher up the score range, explain clearly more errors than isolated mistakes: by more than this
    # beyond the point estimate's own upper bound. 0.02 until those readings counted the mistakes that repair
    # a label, which lowers them (most on two-class data); with 0.02 wrench_sms (6.3 %, read 2.8 %) then lost
    # its lower-bound call on the tune rows. 0.01 keeps it and calls trec and slice inst 10 % (0.2-0.3 % for
    # 10 %) lower bounds, and no set whose estimate is right becomes one (tune rows, seed-1 synthetic rows,
    # benchmarks/two_class_noise.py). Since confused_sources="auto" (version 5) wrench_sms reads 3.2 % with
    # an upper bound of 6.2 % that holds the truth, and the doubted reading no longer clears it: not a lower
    # bound any more.
    lower_bound_gap: float = 0.01
    # Off by default (None): where the estimate is a lower bound, let the headline follow the doubted-samples
    # reading when it is this many times the isolated one. On the tune rows that fixed wrench_sms (5.9 % for
    # 6.0 %, isolated 2.4 %) but read imdb_test_cleanlab, 99.3 % clean, as 7.0 % (isolated 0.69 % for
    # 0.68 %): the two give the same readings, and a nearly clean set must come back nearly clean.
    doubted_headline_ratio: float | None = None
    # What a lower bound's headline reads: what isolated mistakes explain ("isolated"), the rate the anchors imply
    # where that reads more ("anchors", `audit --lower-bound-rate anchors`), or the anchors where the data back
    # them ("auto", the default since estimator version 17). The anchors' rate is the off-diagonal share of
    # anchor_confusions at the two ``anchor_rate_shares``, extrapolated linearly to anchors of no size, where the
    # methods' own sure mistakes vanish (anchor_extrapolated_rate). Class-pair noise (one class consistently
    # labelled as another), which the probe learns and the mixture readings miss, shows there. "auto" follows
    # them where two things hold (docs/benchmarks.md, "Where the anchors head a lower bound"):
    # - they read more than the point by more than their sampling error: the reading less
    #   ``anchor_significance_z`` standard errors (anchor_rate_standard_error) is above it. On the tune rows the
    #   20news slice, 1.0 % wrong, reads 4.5 % +- 2.7 % on its 1,000 rows (20 classes, a dozen anchors each);
    # - the encoder separates the classes, so that the samples the methods are surest of are of the class they
    #   are predicted as: their predicted purity (the neighbours' reading) is at least
    #   ``anchor_min_purity_above_chance`` of the way from chance to 1. On the offline proxy image features
    #   (0.17-0.23: the surest tenth of CIFAR-10N's clean labels is 10 % another class) the anchors read those
    #   clean labels 7.5 % wrong (the point 3.0 %) and 10-20 % class-pair noise 6-11 points high; the text sets'
    #   class-pair rows, which they read within 3 points, are at 0.32-0.62 (tune rows, seed-1 synthetic rows).
    #   The line is the middle of that gap. Without the neighbours (no graph) "auto" reads isolated mistakes.
    lower_bound_rate: Literal["isolated", "anchors", "auto"] = "auto"
    anchor_significance_z: float = 1.645  # one-sided 95 %
    anchor_min_purity_above_chance: float = 0.27
    anchor_rate_shares: tuple[float, float] = (0.25, 0.5)
    # The anchors' reading counts only below this share of what a view with no information reads, (K - 1) / K:
    # a blind encoder's surest samples are of any class, and their labels read near that (the tests' tiny
    # random-weight model: 0.92 of it on ten classes, 82.8 %). The heaviest class-pair rows read 0.44-0.56 of
    # it (tune rows, seed 1: 40 % noise on the 20news slice, wrench_trec and CIFAR-10N's proxy features), the
    # real sets at most 0.42 (CIFAR-10N worst). Not the audit power: 40 % class-pair noise, which the probe
    # learns, brings it down to 0.74-0.78, as low as that blind model's 0.72.
    anchor_max_chance_share: float = 0.75
    # The anchors' reading also counts only where its premise holds: the samples the methods are surest of are
    # of their predicted class, so the surest (inner) anchors disagree with their labels at most as often as the
    # next ones (outer), which add the methods' own mistakes. Where the inner ones disagree more by more than
    # this many standard errors (anchor_inner_excess), the methods are surest of the *wrong* labels, and the
    # line through the two readings, extrapolated to share 0, reads higher still. That happens with a few
    # samples per class: a model that holds each sample out fits its class without its wrong label, while every
    # other sample of the class is fitted with that label pulling its region away. Synthetic 512-d classes
    # with 10 % of labels moved (benchmarks/speed.py scale, estimate rows): 10 samples per class read 49.2 %
    # (z = +30.6), 20 and 40 per class z = +23.8 and +7.0 (not lower bounds there, so the anchors were not
    # read). Every shared set, synthetic row and Gaussian set of benchmarks/anchor_gate.py (seed 1) is at
    # z <= +1.6, and every row whose anchors the default follows at z <= -1.4.
    anchor_max_inner_excess_z: float | None = 1.645
    # The neighbours' reading (labelaudit/neighbour_reading.py, HOC): the error rate a sample's label and its two
    # nearest neighbours' labels imply, which no model trained on the labels enters, so labels made by rules do
    # not fool it. The headline follows it where a sample and its two neighbours share the predicted class for
    # at least ``neighbour_min_purity`` of the samples (None: never), with at least
    # ``neighbour_min_triples_per_cell`` samples per cell of its K x K x K label table and at most
    # ``neighbour_max_classes`` classes. Chosen on the tune rows: the predicted purity was 0.84-0.93 on the two
    # sets it read within 3 points (wrench_sms 6.1 % for 6.3 %, youtube 11.1 % for 14.0 %), at most 0.67 on the
    # seven where it read 8-57 % for 0.3-42 % (20news, imdb, trec, CIFAR-10N's proxy features).
    neighbour_min_purity: float | None = 0.8
    # Whose predicted classes the purity is read from: the out-of-fold probe, as the tune rows were. Not the
    # estimate's mean: it holds the neighbour vote, whose prediction is the neighbours' majority label, so it
    # reads purer (20news_test_cleanlab 0.78 against the probe's 0.71, all rows).
    neighbour_purity_methods: tuple[str, ...] = ("confident",)
    neighbour_min_triples_per_cell: int = 10
    neighbour_max_classes: int = 50
    # A sample's two neighbours are the nearest that are not copies of it: cosine below this (None: the two
    # nearest). A copy carries the sample's own mistake, so copies agreeing on a wrong label read as right
    # (neighbour_reading.neighbour_pairs). The duplicates check's line (issues.duplicates.NEAR_DUPLICATE_
    # THRESHOLD), not tuned: tune rows, wrench_sms 5.0 % -> 6.0 % for 6.4 %, youtube 9.6 % -> 10.8 % for 15.2 %
    # (the rows with two such neighbours).
    neighbour_copy_similarity: float | None = 0.95
    # Where the estimate is a lower bound, flag as many as the upper end of the interval (True) instead of
    # the ``flag_cut`` below (False, the default). Tune rows: the upper end found more of
    # labelling-function noise (youtube F1 0.67 vs 0.09) but flagged 674 of imdb's tune rows for 33 errors.
    flag_to_upper_bound: bool = False
    # How many to flag: "best_f1", the cut of the ranking whose expected F1 under the error probabilities is
    # highest, or "expected", as many as the errors the estimate expects (see flag_count).
    flag_cut: Literal["best_f1", "expected"] = "best_f1"
    # Where the estimate is a lower bound, choose that cut under the error probabilities of the headline
    # ("headline", the default) or of the doubted-samples reading ("doubted", when it reads more): for labels
    # made by rules (weak supervision), whose mistakes the models partly learn and score higher up the range
    # than isolated ones, so the headline's probabilities, which average to the lower bound, are far too low
    # there. Tune rows, F1 headline vs doubted: wrench_youtube 0.24 vs 0.64, wrench_sms 0.32 vs 0.70,
    # CIFAR-10N 0.40/0.49/0.66 vs 0.39/0.50/0.67 (aggre/random1/worst); but imdb_test_cleanlab, 99.3 % clean
    # with many hard reviews, 56 vs 501 flags for 34 errors (F1 0.16 vs 0.07). Nothing in the scores told the
    # two apart (docs/method.md), so the user who knows where the labels came from chooses.
    lower_bound_cut: Literal["headline", "doubted"] = "headline"
    # Where the estimate is a lower bound, flag at least as many as it expects (see flag_count). Tune rows, F1
    # of the best-F1 cut without / with this floor, headline cut: wrench_sms 0.510 / 0.554, trec 0.033 /
    # 0.039, the rest unchanged (the best-F1 cut was already deeper); doubted cut: wrench_sms 0.628 / 0.694,
    # youtube 0.559 / 0.611, trec 0.043 / 0.066, CIFAR-10N and imdb unchanged.
    lower_bound_flags_expected: bool = True
    # Where the headline follows the neighbours' reading, flag at least as many as it expects too. Its error
    # probabilities are the methods' own, scaled up to the neighbours' rate: the methods score the mistakes
    # they learnt like right labels, so along the ranking (which leans on the neighbour vote there) the
    # probabilities come in too slowly and the best-F1 cut stops short of the count the headline expects.
    # Tune rows, wrench_sms F1 0.689 -> 0.723 (90 -> 107 flags on all rows for 135 wrong); youtube, already a
    # lower bound, unchanged; no other set follows the neighbours.
    neighbour_flags_expected: bool = True
    low_power_auroc: float = 0.80  # synthetic mistakes found with a lower AUROC: the estimate is a lower bound
    # Symmetric noise (a wrong label is any other class): mistakes to any class then explain the lowest scores
    # at a constant rate, and that reading is the headline; the confusion-weighted one assumes mistakes sit on
    # confusable classes and reads such noise high (tune rows: CIFAR-10N sym 20 % 28.7 % vs 23.3 %, 20news
    # slice sym 20 % 24.1 % vs 20.9 %, truth 19.9 % / 21.1 %). "Constant": the ratio at ``symmetric_shares[1]``
    # of the mistakes is at most ``symmetric_flatness`` times the ratio at ``symmetric_shares[0]``, which must
    # hold at least ``symmetric_min_count`` samples. Tune rows: flatness 0.7-1.1 on symmetric noise (but 1.45 on
    # CIFAR-10N sym 10 %, which keeps the confusion-weighted reading), 1.48 on CIFAR-10N random1 (whose
    # any-class reading, 8 % for 18 %, must not be taken), 2-6 on its aggre/worst and on class-pair noise.
    symmetric_flatness: float | None = 1.3
    symmetric_shares: tuple[float, float] = (0.05, 0.3)
    symmetric_min_count: int = 10

    @property
    def reads_neighbours(self) -> bool:
        """Whether the estimate asks for each sample's two nearest neighbours: for the neighbours' reading, or
        for the purity that lower_bound_rate="auto" asks of the anchors."""
        return self.neighbour_min_purity is not None or self.lower_bound_rate == "auto"

    def check(self) -> None:
        """Raise LabelAuditError for a setting no estimate could use (a share outside (0, 1), a choice that is
        not one of its options, a pair of shares out of order). Run before any scoring, by ``AuditConfig.check``
        and by ``estimate_error_rate``, so a bad value fails at once and says which field it was."""
        from .errors import LabelAuditError

        problems = [problem for problem in self._problems() if problem]
        if problems:
            raise LabelAuditError("EstimateSettings: " + "; ".join(problems))

    def _problems(self) -> list[str | None]:
        choices = {
            "confused_sources": ("auto", "uniform", "confusion"),
            "mistake_origin": ("given", "predicted"),
            "confusions_from": ("anchors", "confident_joint"),
            "lower_bound_rate": ("isolated", "anchors", "auto"),
            "flag_cut": ("best_f1", "expected"),
            "lower_bound_cut": ("headline", "doubted"),
        }
        problems: list[str | None] = [
            f"{name} must be one of {', '.join(options)}, not {getattr(self, name)!r}"
            for name, options in choices.items()
            if getattr(self, name) not in options
        ]
        for name in ("methods", "label_free_methods", "neighbour_purity_methods"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(method, str) for method in value):
                problems.append(f"{name} must be a tuple of method names, not {value!r}")
        if not self.methods:
            problems.append("methods must name at least one method whose probabilities the estimate reads")
        open_shares = ("min_injected_share", "plausible_share", "selection_confidence", "confidence")
        problems += [_within(self, name, 0.0, 1.0, closed_high=False) for name in open_shares]
        problems += [
            _within(self, name, 0.0, 1.0)
            for name in ("anchor_share", "low_power_auroc", "anchor_min_purity_above_chance")
        ]
        problems += [
            _within(self, name, 0.0, None) for name in ("label_free_max_chance_share", "anchor_max_chance_share")
        ]
        problems += [
            _at_least(self, name, 0.0)
            for name in (
                "destination_smoothing",
                "doubt_floor",
                "wide_interval",
                "lower_bound_gap",
                "anchor_significance_z",
            )
        ]
        if self.neighbour_min_purity is not None:
            problems.append(_within(self, "neighbour_min_purity", 0.0, 1.0))
        if self.neighbour_copy_similarity is not None:  # a cosine: above -1, and at most 1 (only exact copies)
            problems.append(_within(self, "neighbour_copy_similarity", -1.0, 1.0))
        if self.doubted_headline_ratio is not None:
            problems.append(_within(self, "doubted_headline_ratio", 0.0, None))
        if self.symmetric_flatness is not None:
            problems.append(_within(self, "symmetric_flatness", 0.0, None))
        if self.anchor_max_inner_excess_z is not None and not _number(self.anchor_max_inner_excess_z):
            problems.append(
                f"anchor_max_inner_excess_z must be a number or None, not {self.anchor_max_inner_excess_z!r}"
            )
        problems += [_increasing_shares(self, "anchor_rate_shares"), _increasing_shares(self, "symmetric_shares")]
        problems += [
            _at_least(self, "neighbour_min_triples_per_cell", 1, integer=True),
            _at_least(self, "neighbour_max_classes", 2, integer=True),
            _at_least(self, "symmetric_min_count", 1, integer=True),
        ]
        return problems


def _number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool) and value == value


def _within(
    settings: EstimateSettings, name: str, low: float, high: float | None, closed_high: bool = True
) -> str | None:
    """None when the field lies in (low, high] (or (low, high) with ``closed_high=False``; no upper end for None)."""
    value = getattr(settings, name)
    inside = _number(value) and value > low and (high is None or (value <= high if closed_high else value < high))
    if inside:
        return None
    bound = "positive" if high is None else f"in ({low:g}, {high:g}{']' if closed_high else ')'}"
    return f"{name} must be {bound}, not {value!r}"


def _at_least(settings: EstimateSettings, name: str, low: float, integer: bool = False) -> str | None:
    value = getattr(settings, name)
    kind_ok = isinstance(value, int | np.integer) and not isinstance(value, bool) if integer else _number(value)
    if kind_ok and value >= low:
        return None
    return f"{name} must be {'an integer ' if integer else ''}at least {low:g}, not {value!r}"


def _increasing_shares(settings: EstimateSettings, name: str) -> str | None:
    value = getattr(settings, name)
    pair = tuple(value) if isinstance(value, tuple | list) else ()
    if len(pair) == 2 and all(_number(share) for share in pair) and 0.0 < pair[0] < pair[1] <= 1.0:
        return None
    return f"{name} must be two shares with 0 < first < second <= 1, not {value!r}"


@dataclass
class AuditPower:
    """How well the methods find synthetic mistakes: a property of the encoder and the classes."""

    # Synthetic mistakes vs the labels the estimate calls right, by score. Read against all observed labels
    # the AUROC falls with the noise itself (a wrong label scores like a synthetic mistake, a coin flip), so
    # the observed AUROC ``A`` is taken apart as ``A = (1 - rate) * auroc + rate / 2``: 40 % symmetric noise
    # read 0.71-0.78 on encoders that tell right from wrong labels at 0.87-0.94 (seed-1 synthetic rows).
    # The synthetic mistakes hold their own share of right-looking scores: one made on an already wrong label
    # gives it its true class with chance ``share`` (see RepairChances), so ``rate * share`` of them
    # score like right labels, and ``A = (1 - rate - rate * share) * auroc + rate * (1 + share) / 2``. With
    # two classes every such mistake is a repair (share 1): 30 % symmetric noise on two Gaussian classes the
    # probe tells apart (flag F1 0.93-1.0) read 0.73-0.78 without this term, "audit power is low"; with it
    # 0.95-0.99. With ten classes the share is small: CIFAR-10N (proxy features) 0.001-0.03 higher (worst
    # 0.816 -> 0.834); the estimate itself does not move.
    auroc: float
    recall_at_cut: float  # share of synthetic mistakes scored below the flag cut's lowest-ranked flag


@dataclass
class ErrorEstimate:
    rate: float
    lower: float
    upper: float
    error_probability: np.ndarray  # (N,) calibrated P(label is wrong); its mean is ``rate``
    power: AuditPower
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    n_flags: int = 0  # how many unreviewed samples to flag: see flag_count
    # The data cannot rule out many more errors than the point says (systematic mistakes, low audit power);
    # the warnings say which.
    is_lower_bound: bool = False

    @property
    def is_issue(self) -> np.ndarray:
        """The ``n_flags`` samples with the highest error probability (ties: first in order). The pipeline flags
        that many from the top of the consensus ranking instead (consensus.follow_estimate)."""
        flags = np.zeros(len(self.error_probability), dtype=bool)
        flags[np.argsort(-self.error_probability, kind="stable")[: self.n_flags]] = True
        return flags

    def class_rates(self, labels: np.ndarray, n_classes: int) -> np.ndarray:
        """Per-class estimated error rate (mean posterior over the class's samples); weighted by class size
        they add up to ``rate``."""
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        sums = np.bincount(labels, weights=self.error_probability, minlength=n_classes)
        return np.divide(sums, counts, out=np.zeros(n_classes), where=counts > 0)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """For the score cache: a cached re-run reads the estimate back instead of computing it."""
        meta = {
            "rate": self.rate,
            "lower": self.lower,
            "upper": self.upper,
            "power": [self.power.auroc, self.power.recall_at_cut],
            "n_flags": self.n_flags,
            "is_lower_bound": self.is_lower_bound,
            "warnings": self.warnings,
            "details": self.details,
        }
        return {"error_probability": self.error_probability, "meta": np.array(json.dumps(meta))}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ErrorEstimate:
        meta = json.loads(str(arrays["meta"]))
        return cls(
            rate=float(meta["rate"]),
            lower=float(meta["lower"]),
            upper=float(meta["upper"]),
            error_probability=np.asarray(arrays["error_probability"], dtype=np.float64),
            power=AuditPower(*(float(v) for v in meta["power"])),
            warnings=[str(w) for w in meta["warnings"]],
            details=dict(meta["details"]),
            n_flags=int(meta["n_flags"]),
            # an entry written before the flag was a field kept it in the details
            is_lower_bound=bool(meta.get("is_lower_bound", meta["details"].get("lower_bound", False))),
        )


# ---------------------------------------------------------------------------------------------- statistics


def clopper_pearson(successes: float, trials: int, confidence: float) -> tuple[float, float]:
    from scipy.stats import beta

    tail = (1.0 - confidence) / 2.0
    k = float(np.clip(round(successes), 0, trials))
    lower = float(beta.ppf(tail, k, trials - k + 1)) if k > 0 else 0.0
    upper = float(beta.ppf(1.0 - tail, k + 1, trials - k)) if k < trials else 1.0
    return lower, upper


def _bins(scores: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(SCORE_EDGES, scores, side="right") - 1, 0, len(SCORE_EDGES) - 2)


def _histogram(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(
        _bins(np.ravel(scores)), weights=None if weights is None else np.ravel(weights), minlength=len(SCORE_EDGES) - 1
    ).astype(np.float64)


def confusion_counts(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """(K, K) confident joint, ``C[given, true]``: where the data's own mistakes seem to go."""
    import warnings

    from cleanlab.count import compute_confident_joint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(compute_confident_joint(labels, pred_probs, calibrate=False), dtype=np.float64)


def anchor_confusions(labels: np.ndarray, pred_probs: np.ndarray, share: float) -> np.ndarray:
    """(K, K) ``C[given, true]`` read on anchors: for each class i, the ``share`` of the samples the methods
    predict as i that they are surest of, counted by their given label and scaled to every sample predicted i.

    Anchor points are the classic way to read a noise transition matrix (Patrini et al. 2017; Xia et al. 2019):
    a sample the methods are sure of is of that class, so where its label says otherwise, that is where
    labels of the class go. Hard samples, whose disagreement with the label is as often the methods' error as
    the label's, are left out; the confident joint counts them in. A class the methods never
    predict has no anchors; its column stays 0 and the destination smoothing spreads its mistakes."""
    k = pred_probs.shape[1]
    counts = np.zeros((k, k))
    for cls, members, belief in _predicted_classes(pred_probs):
        anchors = members[_surest(belief, share)]
        counts[:, cls] = np.bincount(labels[anchors], minlength=k) * (len(members) / len(anchors))
    return counts


def _predicted_classes(pred_probs: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Each class the methods predict: (class, the rows predicted as it, their probability of it). One sort,
    not one scan per class (K can be large); classes nobody is predicted as are left out."""
    n, k = pred_probs.shape
    if n == 0:
        return
    predicted = np.asarray(np.argmax(pred_probs, axis=1), dtype=np.int64)
    by_class = np.argsort(predicted, kind="stable")
    starts = np.searchsorted(predicted[by_class], np.arange(k + 1))
    for cls in range(k):
        members = by_class[starts[cls] : starts[cls + 1]]
        if len(members):
            yield cls, members, np.asarray(pred_probs[members, cls], dtype=np.float64)


def _surest(belief: np.ndarray, share: float) -> np.ndarray:
    """The mask of the ``share`` of ``belief`` the methods are surest of (ties at the cut kept): the anchors."""
    return belief >= np.quantile(belief, 1.0 - share)


def anchor_error_share(labels: np.ndarray, pred_probs: np.ndarray, share: float) -> float:
    """The labels' error rate read on anchors at one ``share``: anchor_confusions' off-diagonal share."""
    counts = anchor_confusions(labels, pred_probs, share)
    total = counts.sum()
    return float((total - np.trace(counts)) / total) if total > 0 else 0.0


def anchor_extrapolated_rate(labels: np.ndarray, pred_probs: np.ndarray, shares: tuple[float, float]) -> float:
    """The labels' error rate read on anchors (anchor_error_share), extrapolated to anchors of no size. Read at
    one share it also counts where the methods are sure and wrong (imdb 2.4 % for 0.7 %, CIFAR-10N aggre 18.5 %
    for 9.1 % at share 0.25, tune rows), which grows with the share while class-conditional label noise does
    not; the line through the readings at two shares, taken at share 0, keeps the noise."""
    small, large = sorted(shares)
    at_small, at_large = (anchor_error_share(labels, pred_probs, share) for share in (small, large))
    return float(np.clip(at_small - (at_large - at_small) * small / (large - small), 0.0, 1.0))


@dataclass(frozen=True)
class _AnchorBands:
    """One predicted class's anchors at two shares: the surest ``small`` share of its samples (the inner
    anchors) and the next ones up to ``large`` (the outer), and how many of each disagree with their labels."""

    members: int  # the samples predicted as the class
    inner: int
    inner_disagree: int
    outer: int
    outer_disagree: int


def _anchor_bands(labels: np.ndarray, pred_probs: np.ndarray, small: float, large: float) -> Iterator[_AnchorBands]:
    for cls, members, belief in _predicted_classes(pred_probs):
        inner = _surest(belief, small)
        outer = _surest(belief, large) & ~inner
        disagree = labels[members] != cls
        yield _AnchorBands(
            len(members), int(inner.sum()), int(disagree[inner].sum()), int(outer.sum()), int(disagree[outer].sum())
        )


def _smoothed_share(disagree: int, count: int) -> float:
    """A disagreement share smoothed by half a count, so that anchors with no disagreement still have some error."""
    return (float(disagree) + 0.5) / (count + 1)


def anchor_inner_excess(labels: np.ndarray, pred_probs: np.ndarray, shares: tuple[float, float]) -> tuple[float, float]:
    """How much more often the surest anchors (the ``small`` share of each predicted class) disagree with their
    labels than the next ones (up to ``large``), as it moves anchor_error_share from one share to the other:
    the excess of the reading at ``small`` over that at ``large``, and that excess in standard errors (each
    disagreement share a binomial count, smoothed as in anchor_rate_standard_error). Negative where the inner
    anchors agree more, as anchors must."""
    small, large = sorted(shares)
    n = pred_probs.shape[0]
    excess = variance = 0.0
    for band in _anchor_bands(labels, pred_probs, small, large):
        if not band.inner or not band.outer:
            continue  # one share holds every anchor of the class: it moves nothing
        weight = band.members * band.outer / (band.inner + band.outer) / n
        excess += weight * (band.inner_disagree / band.inner - band.outer_disagree / band.outer)
        for count, disagree in ((band.inner, band.inner_disagree), (band.outer, band.outer_disagree)):
            share = _smoothed_share(disagree, count)
            variance += weight**2 * share * (1.0 - share) / count
    return excess, (excess / float(np.sqrt(variance)) if variance > 0 else 0.0)


def anchor_rate_standard_error(labels: np.ndarray, pred_probs: np.ndarray, shares: tuple[float, float]) -> float:
    """The sampling error of anchor_extrapolated_rate (before its clip to [0, 1]). Per predicted class the line
    at share 0 is a weighted difference of two disagreement shares, on the surest ``small`` share of its samples
    (the inner anchors) and on the next ones up to ``large`` (the outer): each a binomial count given the
    anchors, smoothed by half a count so that an anchor set with no disagreement still has some error. It ignores
    that the anchors are themselves chosen from the data, and matches a bootstrap of the rows on the tune rows
    (20news slice 0.027 vs 0.024, CIFAR-10N's clean labels 0.011 vs 0.011)."""
    small, large = sorted(shares)
    n = pred_probs.shape[0]
    if n == 0:
        return 0.0
    variance = 0.0
    for band in _anchor_bands(labels, pred_probs, small, large):
        # The reading at share 0 is at_small + (at_small - at_large) * small / (large - small), and at_large
        # mixes the inner and the outer anchors by their counts: its weight on each.
        slope = small / (large - small)
        inner_weight = 1.0 + slope - slope * band.inner / (band.inner + band.outer)
        outer_weight = -slope * band.outer / (band.inner + band.outer)
        for count, weight, disagree in (
            (band.inner, inner_weight, band.inner_disagree),
            (band.outer, outer_weight, band.outer_disagree),
        ):
            if count:
                share = _smoothed_share(disagree, count)
                variance += band.members**2 * weight**2 * share * (1.0 - share) / count
    return float(np.sqrt(variance) / n)


def synthetic_mistake_histogram(
    pred_probs: np.ndarray,
    labels: np.ndarray,
    destination: str,
    selection: str,
    settings: EstimateSettings,
    confusions: np.ndarray | None = None,
    origins: np.ndarray | None = None,
) -> np.ndarray:
    """Score histogram of every (sample, other label) pair, weighted by how likely that mistake is.

    ``destination``: "confusion" (a sample of class i gets label j in proportion to the data's confusions
    from i to j) or "uniform" (any other class). ``selection``: "uniform" (every sample equally) or "doubt"
    (samples the methods already doubt get more mistakes, as people and labelling rules make them).
    ``origins`` (N,): the class each sample's mistakes are made from (see mistake_origins; None: its label)."""
    n, k = pred_probs.shape
    own = pred_probs[np.arange(n), labels].astype(np.float64)
    origins = labels if origins is None else origins
    sample_weight = mistake_sources(selection, own, labels, settings, confusions)
    sample_weight = sample_weight / sample_weight.sum()
    hist = np.zeros(len(SCORE_EDGES) - 1)
    for block in row_blocks(n, 16_384):
        probs = np.asarray(pred_probs[block], dtype=np.float64)
        where = mistake_destinations(origins[block], k, destination, settings, confusions)
        hist += _histogram(probs, where * sample_weight[block][:, None])
    return hist / hist.sum()


def mistake_origins(pred_probs: np.ndarray, labels: np.ndarray, settings: EstimateSettings) -> np.ndarray:
    """(N,): the class each sample's confusion-weighted synthetic mistakes are made from
    (EstimateSettings.mistake_origin). A synthetic mistake stands for a sample of true class i mislabelled;
    made from the given label, the wrong labels among them (the rate itself) are moved a second step, which
    under class-pair noise lands where no real mistake does (class i given i + 1 becomes i + 2, scored near
    0) and reads the rate near 0. The predicted class is the true one wherever the methods are right, which
    they are on most wrong labels; where they are wrong on a right label, the mistake may restore the given
    label (counted as a repair, see repair_chances)."""
    if settings.mistake_origin == "given" or pred_probs.shape[1] <= 2:
        return labels
    return np.asarray(np.argmax(pred_probs, axis=1), dtype=np.int64)


def confused_sources(settings: EstimateSettings, k: int) -> str:
    """The ``selection`` of the confusion-weighted synthetic mistakes (EstimateSettings.confused_sources)."""
    if settings.confused_sources == "auto":
        return "confusion" if k == 2 else "uniform"
    return settings.confused_sources


def mistake_sources(
    selection: str, own: np.ndarray, labels: np.ndarray, settings: EstimateSettings, confusions: np.ndarray | None
) -> np.ndarray:
    """(N,) unnormalised: how many synthetic mistakes each sample gets; ``selection`` as in
    ``synthetic_mistake_histogram``, or "confusion" (as often as its class is left, see flip_out_rates)."""
    if selection == "doubt":
        return 1.0 - own + settings.doubt_floor
    if selection == "confusion":
        assert confusions is not None
        return flip_out_rates(confusions, settings)[labels]
    return np.ones(len(labels))


def flip_out_rates(confusions: np.ndarray, settings: EstimateSettings) -> np.ndarray:
    """(K,): the share of each true class that the confusions (confusions_from) say was given another label,
    smoothed like the destinations. Mistakes leave some classes more than others (one-way confusions, a rule
    that fires on one class); a sample of such a class then gets a synthetic mistake more often."""
    k = len(confusions)
    smoothing = settings.destination_smoothing
    of_true = confusions.sum(axis=0) + smoothing * k
    leaving = of_true - np.diag(confusions) - smoothing
    return leaving / of_true


def mistake_destinations(
    given: np.ndarray, k: int, destination: str, settings: EstimateSettings, confusions: np.ndarray | None = None
) -> np.ndarray:
    """(len(given), k): the chance that a synthetic mistake on a sample labelled ``given`` gives it each other
    label (0 for its own); ``destination`` as in ``synthetic_mistake_histogram``."""
    if destination == "confusion":
        assert confusions is not None
        where = confusions[:, given].T + settings.destination_smoothing  # C[j, i]: true i, given j
    else:
        where = np.ones((len(given), k))
    where[np.arange(len(given)), given] = 0.0
    # A class the confusions never leave, with no smoothing (destination_smoothing=0): any other class.
    empty = where.sum(axis=1) <= 0.0
    where[empty] = 1.0
    where[np.flatnonzero(empty), given[empty]] = 0.0
    return where / where.sum(axis=1, keepdims=True)


@dataclass
class _Reading:
    rate: float
    lower: float
    upper: float
    injected_share: float


def best_bin(observed: np.ndarray, injected: np.ndarray, n: int, settings: EstimateSettings) -> _Reading:
    """Mixture proportion of ``injected`` in ``observed`` (both score histograms; ``observed`` holds counts
    of ``n`` samples): the ratio of their masses below the threshold whose upper bound is lowest."""
    below_obs = np.cumsum(observed)
    below_inj = np.cumsum(injected)
    candidates = np.flatnonzero(below_inj >= settings.min_injected_share)
    # The upper bound only changes where an observed sample enters; one candidate per distinct count.
    best: tuple[float, int] = (np.inf, int(candidates[-1]))
    for edge in candidates[np.r_[True, np.diff(below_obs[candidates]) > 0]]:
        upper = clopper_pearson(below_obs[edge], n, settings.selection_confidence)[1] / below_inj[edge]
        if upper < best[0]:
            best = (upper, int(edge))
    edge = best[1]
    share = float(below_inj[edge])
    count = float(below_obs[edge])
    low, high = clopper_pearson(count, n, settings.confidence)
    return _Reading(
        rate=min(1.0, (count + 0.5) / (n + 1.0) / share),
        lower=min(1.0, low / share),
        upper=min(1.0, high / share),
        injected_share=share,
    )


@dataclass(frozen=True)
class RepairChances:
    """Per sample, the chance that a synthetic mistake made on it gives it its true class: a "mistake" that
    scores like a right label, so the synthetic mistakes' low tail is thinner than the real mistakes' and
    every reading is high by that share (visible on heavy noise: wrench_trec sym 40 % read 47 % for 41 %).
    ``if_wrong``: where the sample's label is wrong (its true class is another one); ``if_right``: where it
    is right, which happens only for mistakes made from another class than the label (mistake_origins)."""

    if_wrong: np.ndarray
    if_right: np.ndarray
    weight: np.ndarray  # how many synthetic mistakes each sample gets (mistake_sources)

    def share(self, error_probability: np.ndarray) -> float:
        """The share of the synthetic mistakes that repair, with ``error_probability`` per sample."""
        repaired = self.if_wrong * error_probability + self.if_right * (1.0 - error_probability)
        return float(self.weight @ repaired / max(float(self.weight.sum()), 1e-12))


def repair_chances(
    pred_probs: np.ndarray,
    labels: np.ndarray,
    origins: np.ndarray,
    destination: str,
    selection: str,
    settings: EstimateSettings,
    confusions: np.ndarray | None,
) -> RepairChances:
    """RepairChances of the synthetic mistakes ``synthetic_mistake_histogram`` makes with these arguments. A
    wrong label's true class is one of the others, by the methods' belief; a mistake made from ``origins``
    repairs it where it goes there. A right label is repaired where a mistake made from another class goes
    back to it."""
    n, k = pred_probs.shape
    own = pred_probs[np.arange(n), labels].astype(np.float64)
    if_wrong = np.zeros(n)
    if_right = np.zeros(n)
    for block in row_blocks(n, 16_384):
        given, origin = labels[block], origins[block]
        rows = np.arange(len(given))
        where = mistake_destinations(origin, k, destination, settings, confusions)
        belief = np.array(pred_probs[block], dtype=np.float64)
        belief[rows, given] = 0.0
        belief /= np.maximum(belief.sum(axis=1, keepdims=True), 1e-12)
        if_wrong[block] = (where * belief).sum(axis=1)
        if_right[block] = where[rows, given]  # 0 where the mistake is made from the label itself
    return RepairChances(if_wrong, if_right, mistake_sources(selection, own, labels, settings, confusions))


def without_repairs(reading: _Reading, repaired: Callable[[float], float]) -> _Reading:
    """``reading`` with the synthetic mistakes that repair a label taken out (see RepairChances): with
    ``repaired(rate)`` their share where the error rate is ``rate``, solve ``rate = ratio * (1 - repaired(rate))``
    for the rate and for each bound. Where a wrong label is repaired with chance ``s`` and no right one is,
    ``repaired(rate) = rate * s`` and the rate is ``ratio / (1 + ratio * s)``."""

    def solve(ratio: float) -> float:
        low, high = 0.0, ratio  # rate - ratio * (1 - repaired(rate)) is <= 0 at 0 and >= 0 at the ratio
        for _ in range(40):
            mid = (low + high) / 2.0
            if mid < ratio * (1.0 - repaired(mid)):
                low = mid
            else:
                high = mid
        return (low + high) / 2.0

    return _Reading(solve(reading.rate), solve(reading.lower), solve(reading.upper), reading.injected_share)


def thinned(reading: _Reading, factor: float) -> _Reading:
    """``reading`` with its rate and bounds times ``factor``."""
    return _Reading(reading.rate * factor, reading.lower * factor, reading.upper * factor, reading.injected_share)


def reading_at_share(observed: np.ndarray, injected: np.ndarray, n: int, share: float, confidence: float) -> _Reading:
    """The mass ratio (and its confidence bounds) at the first threshold holding ``share`` of the mistakes."""
    below_inj = np.cumsum(injected)
    edge = min(int(np.searchsorted(below_inj, share)), len(below_inj) - 1)
    held = max(float(below_inj[edge]), 1e-12)
    count = float(np.cumsum(observed)[edge])
    low, high = clopper_pearson(count, n, confidence)
    return _Reading(
        rate=min(1.0, (count + 0.5) / (n + 1.0) / held),
        lower=min(1.0, low / held),
        upper=min(1.0, high / held),
        injected_share=held,
    )


def density_ratio(observed: np.ndarray, injected: np.ndarray) -> np.ndarray:
    """``f_wrong / f_obs`` per score bin, monotone (non-increasing in the score), by isotonic regression."""
    from sklearn.isotonic import IsotonicRegression

    obs = observed / max(observed.sum(), 1e-12)
    used = (obs + injected) > 0
    share = np.zeros_like(obs)
    share[used] = injected[used] / (injected[used] + obs[used])
    centres = np.arange(len(obs), dtype=np.float64)
    fitted = np.zeros_like(obs)
    if used.sum() >= 2:
        iso = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0 - 1e-9, out_of_bounds="clip")
        iso.fit(centres[used], share[used], sample_weight=(obs + injected)[used])
        fitted = iso.predict(centres)
    return fitted / (1.0 - fitted)


def posterior_scale(ratio_per_sample: np.ndarray, rate: float, weights: np.ndarray | None = None) -> float:
    """``c`` such that ``min(1, c * ratio)`` averages to ``rate`` over the samples (c = rate unless rows clip);
    ``weights``: how many samples each entry of ``ratio_per_sample`` stands for (None: one each)."""
    if rate <= 0 or not np.any(ratio_per_sample > 0):
        return 0.0

    def mean(scale: float) -> float:
        return float(np.average(np.minimum(1.0, scale * ratio_per_sample), weights=weights))

    low, high = 0.0, max(rate, 1e-12)
    while mean(high) < rate and high < 1e12:
        high *= 2.0
    for _ in range(60):
        mid = (low + high) / 2.0
        if mean(mid) < rate:
            low = mid
        else:
            high = mid
    return high


def repaired_share(
    repairs: RepairChances, observed: np.ndarray, injected: np.ndarray, own: np.ndarray
) -> Callable[[float], float]:
    """``repaired(rate)``: the share of the ``injected`` synthetic mistakes that repair a label where the error
    rate is ``rate``, with each sample's error probability the posterior those mistakes give at that rate
    (calibrated_posterior). Summed per score bin, so that a call costs the bins, not the samples."""
    bins = _bins(own)
    n_bins = len(SCORE_EDGES) - 1
    ratio = density_ratio(observed, injected)
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    if_wrong = np.bincount(bins, weights=repairs.weight * repairs.if_wrong, minlength=n_bins)
    if_right = np.bincount(bins, weights=repairs.weight * repairs.if_right, minlength=n_bins)
    total = max(float(repairs.weight.sum()), 1e-12)
    used = counts > 0

    def share(rate: float) -> float:
        wrong = np.minimum(1.0, posterior_scale(ratio[used], rate, counts[used]) * ratio[used])
        return float((if_wrong[used] @ wrong + if_right[used] @ (1.0 - wrong)) / total)

    return share


# ------------------------------------------------------------------------------------------------ the API


def data_are_clusterable(
    settings: EstimateSettings, predicted: np.ndarray | None, pairs: np.ndarray | None, classes: int
) -> bool:
    """Whether the neighbours' reading counts for these data (the gate estimate_error_rate applies to it): a
    sample and its two nearest neighbours (``pairs``) share the ``predicted`` class often enough, and there are
    samples enough for the classes. Asked before the estimate runs, so the ranking the flag cut is chosen along
    can lean on the neighbour vote there (labelaudit.consensus.lean_on_neighbours)."""
    if predicted is None or pairs is None:
        return False
    _, _, applies = reading_gate(
        np.asarray(predicted),
        np.asarray(pairs, dtype=np.int64),
        classes,
        settings.neighbour_min_purity,
        settings.neighbour_min_triples_per_cell,
        settings.neighbour_max_classes,
    )
    return applies


@dataclass(frozen=True)
class _ScoreReadings:
    """What the methods' own scores say (docs/method.md, steps 1-4): the readings against each kind of synthetic
    mistake, which of them the point is, and whether the data call it a lower bound."""

    observed: np.ndarray  # score histogram of the given labels
    own: np.ndarray  # (N,) each sample's score of its given label
    isolated: _Reading  # against confusion-weighted mistakes
    visible: _Reading  # against mistakes to any class
    doubted: _Reading  # against mistakes on samples the methods already doubt
    plausible: _Reading  # the ratio read higher up the score range
    symmetric: bool  # the noise looks symmetric: the point is the visible reading
    point: _Reading
    main: np.ndarray  # the point's synthetic-mistake histogram
    main_repaired: Callable[[float], float]
    on_doubted: np.ndarray  # the doubted reading's synthetic-mistake histogram
    point_posterior: np.ndarray  # (N,) error probabilities under the point
    lower_bound: bool
    follow_doubt: bool  # the headline follows the doubted reading (EstimateSettings.doubted_headline_ratio)
    power_mistakes: np.ndarray  # what the audit power reads (made from the label: see read_the_scores)
    power_repaired: Callable[[float], float]

    @property
    def upper(self) -> float:
        """The highest these readings go."""
        return max(self.point.upper, self.isolated.upper, self.doubted.upper, self.plausible.upper)


def read_the_scores(pred_probs: np.ndarray, labels: np.ndarray, settings: EstimateSettings) -> _ScoreReadings:
    n, k = pred_probs.shape
    own = np.asarray(pred_probs[np.arange(n), labels], dtype=np.float64)
    observed = _histogram(own)
    confusions = (
        anchor_confusions(labels, pred_probs, settings.anchor_share)
        if settings.confusions_from == "anchors"
        else confusion_counts(labels, pred_probs)
    )

    origins = mistake_origins(pred_probs, labels, settings)
    sources = confused_sources(settings, k)

    def mistakes(destination: str, selection: str, origin: np.ndarray | None = None) -> np.ndarray:
        return synthetic_mistake_histogram(pred_probs, labels, destination, selection, settings, confusions, origin)

    def repaired(repairs: RepairChances, injected: np.ndarray) -> Callable[[float], float]:
        return repaired_share(repairs, observed, injected, own)

    to_confused = mistakes("confusion", sources, origins)
    confused_repairs = repair_chances(pred_probs, labels, origins, "confusion", sources, settings, confusions)
    confused_repaired = repaired(confused_repairs, to_confused)
    isolated = without_repairs(best_bin(observed, to_confused, n, settings), confused_repaired)
    # Mistakes to any class are made from the label: under symmetric noise a second mistake on a wrong label is
    # just another wrong label, and it repairs the label with chance 1 / (K - 1) exactly.
    to_any_class = mistakes("uniform", "uniform")
    any_class_repairs = RepairChances(np.full(n, 1.0 / max(k - 1, 1)), np.zeros(n), np.ones(n))
    any_class_repaired = repaired(any_class_repairs, to_any_class)
    visible = without_repairs(best_bin(observed, to_any_class, n, settings), any_class_repaired)
    symmetric = k > 2 and looks_symmetric(observed, to_any_class, settings)  # two classes: the same mistakes
    point, main, main_repaired = (
        (visible, to_any_class, any_class_repaired) if symmetric else (isolated, to_confused, confused_repaired)
    )
    on_doubted = mistakes("confusion", "doubt", origins)
    doubted = best_bin(observed, on_doubted, n, settings)
    plausible = reading_at_share(observed, main, n, settings.plausible_share, settings.confidence)
    # Every reading counts the synthetic mistakes that repair a label (see RepairChances). Doubted samples hold
    # the wrong labels, so more of the doubted-sample mistakes are repairs than the rate says: their share by
    # the point reading's error probabilities. With two classes every mistake made from a wrong label is a
    # repair, and uncorrected, 6 % symmetric noise read 12-13 % that way and was called a lower bound.
    plausible = without_repairs(plausible, main_repaired)
    point_posterior = calibrated_posterior(observed, main, own, point.rate, None)
    doubt = mistake_sources("doubt", own, labels, settings, confusions)
    doubted = thinned(doubted, 1.0 - dataclasses.replace(confused_repairs, weight=doubt).share(point_posterior))
    # Plausible mistakes explaining clearly more than isolated ones do is the mark of systematic noise
    # (crowd workers, labelling rules) that the methods have partly learnt: the isolated reading is low.
    # With EstimateSettings.doubted_headline_ratio (off by default) the headline then follows mistakes
    # placed on samples the methods already doubt, where they explain far more; it is still a lower bound.
    # Where the noise looks symmetric, the flat ratio is the evidence that the mistakes are of the injected
    # kind; the plausible readings, which admit right labels by construction, read higher there at every
    # noise level and are no sign of systematic mistakes (seed-1 synthetic rows: sym 20-40 % called lower
    # bounds while the estimate stood 0-3.5 points *above* the truth).
    lower_bound = not symmetric and lower_bound_reading(isolated, doubted, plausible, settings)
    ratio = settings.doubted_headline_ratio
    follow_doubt = lower_bound and ratio is not None and doubted.rate > ratio * point.rate
    # The audit power always reads mistakes made from the label. Made from the predicted class, a mistake on a
    # right label that the methods get wrong goes back to that label and scores like it, a hard right label,
    # which looks found and which the decomposition in AuditPower cannot take out: four overlapping Gaussian
    # classes read 0.99-1.00 that way (0.92 from the label).
    power_mistakes, power_repaired = main, main_repaired
    if not symmetric and origins is not labels:  # mistake_origins returns the labels where they are the origin
        power_mistakes = mistakes("confusion", sources)
        from_labels = repair_chances(pred_probs, labels, labels, "confusion", sources, settings, confusions)
        power_repaired = repaired(from_labels, power_mistakes)
    return _ScoreReadings(
        observed=observed,
        own=own,
        isolated=isolated,
        visible=visible,
        doubted=doubted,
        plausible=plausible,
        symmetric=symmetric,
        point=point,
        main=main,
        main_repaired=main_repaired,
        on_doubted=on_doubted,
        point_posterior=point_posterior,
        lower_bound=lower_bound,
        follow_doubt=follow_doubt,
        power_mistakes=power_mistakes,
        power_repaired=power_repaired,
    )


@dataclass(frozen=True)
class _OtherViews:
    """What views beside the methods' scores read (docs/method.md, step 4), and which of them the headline
    follows: the neighbours' labels (HOC), the anchors, the methods that never see the labels."""

    neighbours: NeighbourReading | None  # None: the caller gave no neighbours
    anchored: float | None  # the rate the anchors imply; read only where the estimate is a lower bound
    anchored_error: float | None  # its standard error; read only where the anchors read more than the point
    anchors_beyond_error: bool  # they read more than the point by more than anchor_significance_z errors
    separation: float | None  # the neighbours' purity above chance (None: no neighbours given)
    anchors_backed: bool  # both of those hold, with separation on or above the line (lower_bound_rate="auto")
    anchors_count: bool
    inner_excess_z: float | None  # anchor_inner_excess in standard errors; read where the anchors are
    anchors_inverted: bool  # above anchor_max_inner_excess_z: the surest anchors disagree most, so none count
    label_free: LabelFreeReading | None
    label_free_counts: bool
    readings_upper: float  # the highest the methods' readings go, the anchors' among them where they count
    neighbours_above: bool  # the neighbours read above what the data allow, so they are not followed
    follow_neighbours: bool
    anchors_read_more: bool
    follow_anchors: bool

    @property
    def neighbour_rate(self) -> float | None:
        return None if self.neighbours is None else self.neighbours.rate


def read_other_views(
    scores: _ScoreReadings,
    pred_probs: np.ndarray,
    labels: np.ndarray,
    settings: EstimateSettings,
    label_free_probs: np.ndarray | None,
    neighbour_pairs: np.ndarray | None,
    neighbour_predictions: np.ndarray | None,
) -> _OtherViews:
    k = pred_probs.shape[1]
    neighbours = (
        None
        if neighbour_pairs is None
        else read_neighbours(
            np.argmax(pred_probs, axis=1) if neighbour_predictions is None else np.asarray(neighbour_predictions),
            labels,
            np.asarray(neighbour_pairs, dtype=np.int64),
            k,
            settings.neighbour_min_purity,
            settings.neighbour_min_triples_per_cell,
            settings.neighbour_max_classes,
        )
    )
    # Read wherever the estimate is a lower bound: the headline follows it with lower_bound_rate="anchors", and
    # the warning names it either way; see anchor_max_chance_share for where it counts. Where the neighbours'
    # reading heads, the option changes nothing, so the warning does not offer it.
    anchored = anchor_extrapolated_rate(labels, pred_probs, settings.anchor_rate_shares) if scores.lower_bound else None
    inner_excess_z = (
        anchor_inner_excess(labels, pred_probs, settings.anchor_rate_shares)[1] if anchored is not None else None
    )
    anchors_inverted = (
        inner_excess_z is not None
        and settings.anchor_max_inner_excess_z is not None
        and inner_excess_z > settings.anchor_max_inner_excess_z
    )
    anchors_count = (
        anchored is not None and anchored < settings.anchor_max_chance_share * (k - 1) / k and not anchors_inverted
    )
    label_free = None if label_free_probs is None else label_free_reading(label_free_probs, labels, settings)
    label_free_counts = (
        label_free is not None
        and label_free.power >= settings.low_power_auroc
        and label_free.rate < settings.label_free_max_chance_share * (k - 1) / k
    )
    # The highest the methods' readings go: the interval's upper end before a headline is chosen, but for the
    # label-free reading, which sets the neighbours' ceiling itself where it counts.
    readings_upper = scores.upper
    if anchors_count and anchored is not None:
        readings_upper = max(readings_upper, anchored)
    # Where the data are clusterable, the neighbours' labels read what the methods, which learn the labels, miss;
    # but only up to what a view that cannot learn them reads. A neighbour of another true class looks like a
    # wrong label to HOC, so it reads high wherever neighbours' classes differ, most of all on clean labels:
    # clusterable Gaussian classes (predicted purity 0.87-0.95) 0.2 % wrong read 2.1-6.1 % where the methods
    # read 0.2 % (benchmarks/clusterable_noise.py). The ceiling is the label-free reading where it counts (it
    # cannot learn mistakes made by rules, and reads hard right labels as wrong, so high rather than low:
    # wrench_sms 9.1 % and youtube 16.8 % for HOC's 5.7 % and 10.3 %; the synthetic sets 1.5-10.6 %, the
    # methods' own), else the highest of the readings above (sms 6.2 %, youtube 11.6 % without zero-shot).
    clusterable = neighbours is not None and neighbours.counts and not scores.follow_doubt
    neighbours_ceiling = label_free.rate if label_free_counts and label_free is not None else readings_upper
    neighbours_above = clusterable and neighbours is not None and (neighbours.rate or 0.0) > neighbours_ceiling
    if neighbours_above and neighbours is not None:
        neighbours = dataclasses.replace(neighbours, counts=False, above_readings=True)
    follow_neighbours = clusterable and not neighbours_above
    anchors_read_more = (
        not scores.follow_doubt
        and not follow_neighbours
        and anchors_count
        and anchored is not None
        and anchored > scores.point.rate
    )
    anchored_error = (
        anchor_rate_standard_error(labels, pred_probs, settings.anchor_rate_shares) if anchors_read_more else None
    )
    separation = None if neighbours is None else neighbours.purity_above_chance
    anchors_beyond_error = (
        anchored is not None
        and anchored_error is not None
        and anchored - settings.anchor_significance_z * anchored_error > scores.point.rate
    )
    anchors_backed = (
        anchors_read_more
        and anchors_beyond_error
        and separation is not None
        and separation >= settings.anchor_min_purity_above_chance
    )
    return _OtherViews(
        neighbours=neighbours,
        anchored=anchored,
        anchored_error=anchored_error,
        anchors_beyond_error=anchors_beyond_error,
        separation=separation,
        anchors_backed=anchors_backed,
        anchors_count=anchors_count,
        inner_excess_z=inner_excess_z,
        anchors_inverted=anchors_inverted,
        label_free=label_free,
        label_free_counts=label_free_counts,
        readings_upper=readings_upper,
        neighbours_above=neighbours_above,
        follow_neighbours=follow_neighbours,
        anchors_read_more=anchors_read_more,
        follow_anchors=anchors_read_more
        and (settings.lower_bound_rate == "anchors" or (settings.lower_bound_rate == "auto" and anchors_backed)),
    )


@dataclass(frozen=True)
class _Followed:
    """The reading the headline follows: its ``name`` (the details' ``headline_reading``), its ``rate`` and the
    synthetic-mistake histogram its error probabilities are scaled from; ``beyond_the_scores``: a reading from
    another view than the scores (see calibrated_posterior); ``is_the_point``: the point reading itself."""

    name: str
    rate: float
    mistakes: np.ndarray
    beyond_the_scores: bool = False
    is_the_point: bool = False


def followed_reading(scores: _ScoreReadings, views: _OtherViews) -> _Followed:
    if scores.follow_doubt:
        return _Followed("doubted samples", scores.doubted.rate, scores.on_doubted)
    if views.follow_neighbours:
        assert views.neighbour_rate is not None  # followed only where the reading counts, so it was read
        return _Followed("nearest neighbours' labels", views.neighbour_rate, scores.main, beyond_the_scores=True)
    if views.follow_anchors:
        assert views.anchored is not None
        return _Followed("anchors, extrapolated", views.anchored, scores.main, beyond_the_scores=True)
    name = "mistakes to any class (the noise looks symmetric)" if scores.symmetric else "isolated mistakes"
    return _Followed(name, scores.point.rate, scores.main, is_the_point=True)


def estimate_error_rate(
    pred_probs: np.ndarray,
    labels: np.ndarray,
    verified: np.ndarray | None = None,
    settings: EstimateSettings | None = None,
    ranking: np.ndarray | None = None,
    label_free_probs: np.ndarray | None = None,
    neighbour_pairs: np.ndarray | None = None,
    neighbour_predictions: np.ndarray | None = None,
) -> ErrorEstimate:
    """Estimate the label-error rate from out-of-sample ``pred_probs`` (N, K) and the given ``labels``.

    ``verified`` (optional, (N,)): -1 not reviewed, 0 reviewed and right, 1 reviewed and wrong. ``ranking``
    (optional, (N,)): the order the flags will be taken in, low = most suspect (the consensus score); the
    flag cut is chosen along it. Without it, along the error probability. ``label_free_probs`` (optional,
    (N, K)): the probabilities of methods that never see the labels (``EstimateSettings.label_free_methods``),
    whose reading can raise the interval's upper end (``label_free_reading``). ``neighbour_pairs`` (optional,
    (N, 2)): each sample's two nearest neighbours, for the neighbours' reading
    (``EstimateSettings.neighbour_min_purity``); ``neighbour_predictions`` (optional, (N,)): the classes its
    purity is read from (``EstimateSettings.neighbour_purity_methods``; None: the most probable of ``pred_probs``)."""
    settings = settings or EstimateSettings()
    settings.check()
    labels = np.asarray(labels, dtype=np.int64)
    n, k = pred_probs.shape
    if k < 2:  # discovery refuses such data (exit 2); this is for the Python API
        raise ValueError(f"an error-rate estimate needs at least two classes, got pred_probs with {k} column(s)")
    scores = read_the_scores(pred_probs, labels, settings)
    views = read_other_views(
        scores, pred_probs, labels, settings, label_free_probs, neighbour_pairs, neighbour_predictions
    )
    observed, own, doubted = scores.observed, scores.own, scores.doubted
    verified = None if verified is None else np.asarray(verified)
    # The headline's error probabilities, whose mean is the headline: the reading it follows, scaled.
    followed = followed_reading(scores, views)
    if followed.is_the_point:
        posterior = with_verified(scores.point_posterior, verified)  # computed with the point reading already
    else:
        posterior = calibrated_posterior(
            observed, followed.mistakes, own, followed.rate, verified, beyond_the_scores=followed.beyond_the_scores
        )
    rate = float(posterior.mean()) if n else 0.0
    lower = min(rate, scores.point.lower, scores.visible.lower)
    # The readings' upper end holds the anchors' reading where it counts (a lower bound's warning names it).
    upper = max(rate, views.readings_upper)
    from_the_labels_upper = upper
    label_free_sets_upper = (
        views.label_free is not None
        and views.label_free.rate > upper
        and (views.label_free_counts or (scores.lower_bound and settings.label_free_bounds_lower_bounds))
    )
    if label_free_sets_upper and views.label_free is not None:
        upper = views.label_free.rate

    open_rows = np.ones(n, dtype=bool) if verified is None else verified < 0
    # A lower bound whose doubted-samples reading says more than the reading the headline follows:
    # EstimateSettings.lower_bound_cut picks which of the two readings' error probabilities choose the flag cut.
    # Against the followed reading, not the point: the neighbours' and the anchors' readings can read more than
    # the doubted samples, and cutting on the doubted ones would then flag fewer than the headline expects.
    doubted_reads_more = scores.lower_bound and doubted.rate > followed.rate
    cut_on_doubted = doubted_reads_more and settings.lower_bound_cut == "doubted"
    cut_posterior = posterior
    if cut_on_doubted:
        cut_posterior = calibrated_posterior(observed, scores.on_doubted, own, doubted.rate, verified)
    n_flags = flag_count(
        cut_posterior,
        open_rows,
        upper if scores.lower_bound and settings.flag_to_upper_bound else None,
        ranking,
        settings.flag_cut,
        at_least_expected=(scores.lower_bound and settings.lower_bound_flags_expected)
        or (views.follow_neighbours and settings.neighbour_flags_expected),
    )
    power = _power(observed, scores.power_mistakes, own, open_rows, n_flags, rate, scores.power_repaired(rate))
    warnings = estimate_warnings(
        scores,
        views,
        settings,
        n,
        rate,
        (lower, upper),
        from_the_labels_upper,
        label_free_sets_upper,
        doubted_reads_more,
        cut_on_doubted,
    )
    lower_bound = scores.lower_bound
    if power.auroc < settings.low_power_auroc:
        lower_bound = True
        warnings.append(
            f"Audit power is low: synthetic mistakes are told from right labels with AUROC {power.auroc:.2f}. "
            "The encoder separates these classes poorly, so the estimate is a lower bound."
        )
    label_free = views.label_free
    details = {
        "method": "mixture-proportion estimate against synthetic mistakes (best bin, Clopper-Pearson)",
        "threshold_mistake_share": round(scores.point.injected_share, 4),
        "isolated_mistakes_rate": round(scores.isolated.rate, 6),
        "headline_reading": followed.name,
        "any_class_mistakes_rate": round(scores.visible.rate, 6),
        "doubted_samples_rate": round(doubted.rate, 6),
        "plausible_mistakes_rate": round(scores.plausible.rate, 6),
        # None where no label-free method ran; "counts": its audit power reached low_power_auroc (and it read
        # less than label_free_max_chance_share of a blind view's (K - 1) / K), so it may set the upper end
        "label_free_reading": None
        if label_free is None
        else {
            "methods": list(settings.label_free_methods),
            "rate": round(label_free.rate, 6),
            "audit_power": round(label_free.power, 4),
            "counts": views.label_free_counts,
            "sets_upper_end": label_free_sets_upper,
        },
        "n_verified": int(np.sum(verified >= 0)) if verified is not None else 0,
        "flag_cut": f"{settings.flag_cut} along the ranking, under the "
        + ("doubted-samples reading's" if cut_on_doubted else "headline's")
        + " error probabilities",
    }
    if views.neighbours is not None:  # only where the caller gave the neighbours (the audit pipeline does)
        details["neighbour_reading"] = views.neighbours.to_details()
    if views.anchored is not None:  # only where the estimate is a lower bound (it is read nowhere else)
        details["anchor_extrapolated_rate"] = round(views.anchored, 6)
        details["anchor_reading_counts"] = views.anchors_count  # see anchor_max_chance_share
        if views.inner_excess_z is not None:  # see anchor_max_inner_excess_z
            details["anchor_inner_excess_z"] = round(views.inner_excess_z, 4)
        if views.anchored_error is not None:  # where they read more than the point
            details["anchor_standard_error"] = round(views.anchored_error, 6)
            details["anchor_reading_backed"] = views.anchors_backed  # what lower_bound_rate="auto" follows
    return ErrorEstimate(rate, lower, upper, posterior, power, warnings, details, n_flags, lower_bound)


def _why_anchors_not_backed(views: _OtherViews, point: float, settings: EstimateSettings) -> str:
    """Why lower_bound_rate="auto" did not follow the anchors, in words (the checks of read_other_views)."""
    reasons = []
    if not views.anchors_beyond_error and views.anchored_error is not None:
        reasons.append(f"it is within its sampling error (±{views.anchored_error:.1%}) of {point:.1%}")
    if views.separation is None:
        reasons.append("no neighbour graph to check that the encoder separates the classes")
    elif views.separation < settings.anchor_min_purity_above_chance:
        reasons.append(
            "the encoder separates these classes too poorly for the surest samples to be of their predicted class"
            f" (neighbours' predicted classes {views.separation:.2f} of the way from chance to alike)"
        )
    return "; ".join(reasons)


def estimate_warnings(
    scores: _ScoreReadings,
    views: _OtherViews,
    settings: EstimateSettings,
    n: int,
    rate: float,
    interval: tuple[float, float],
    from_the_labels_upper: float,
    label_free_sets_upper: bool,
    doubted_reads_more: bool,
    cut_on_doubted: bool,
) -> list[str]:
    """What the summary says about the estimate, in plain words: where the data cannot pin it down (a lower
    bound, and what each reading says), where the interval is wide, and which reading the headline follows."""
    lower, upper = interval
    said: list[str] = []
    label_free_names = ", ".join(settings.label_free_methods)
    if scores.lower_bound:
        said.append(
            "The data alone cannot pin the error rate down: isolated mistakes explain "
            f"{scores.point.rate:.1%}, mistakes on samples the methods already doubt {scores.doubted.rate:.1%}, and "
            f"if the real mistakes are systematic it may be as high as {upper:.1%}"
            + (f" (what {label_free_names}, which never sees the labels, reads)" if label_free_sets_upper else "")
            + (
                f": a weak view of these classes (its audit power {views.label_free.power:.2f}), so a loose end, but"
                f" the readings from the labels, which reach {from_the_labels_upper:.1%}, cannot see mistakes the"
                " methods have learnt"
                if label_free_sets_upper and not views.label_free_counts and views.label_free is not None
                else ""
            )
            + (
                f". The estimate, {rate:.1%}, is what the labels of the samples the methods are surest of imply "
                + (
                    "(--lower-bound-rate anchors, for class-pair noise)"
                    if settings.lower_bound_rate == "anchors"
                    else f"(±{views.anchored_error or 0.0:.1%}): more than isolated mistakes explain beyond that"
                    " error, on classes the encoder separates, as where one class's labels went consistently to"
                    " another (class-pair noise); `--lower-bound-rate isolated` reports the isolated reading"
                )
                if views.follow_anchors
                else ""
            )
            + (
                f". The estimate, {rate:.1%}, is what the labels of each sample's two nearest neighbours imply "
                f"({views.neighbours.purity:.0%} of the samples share their neighbours' predicted class)"
                if views.follow_neighbours and views.neighbours is not None
                else ""
            )
            + (
                f". The labels of each sample's two nearest neighbours imply {views.neighbours.rate:.1%}, more than "
                "the readings here allow (a neighbour of another class reads as a wrong label), so it is not taken"
                if views.neighbours_above and views.neighbours is not None and views.neighbours.rate is not None
                else ""
            )
            + (
                f" (with no method that never sees the labels among those run, such as {label_free_names}, nothing"
                " bounds the mistakes the methods learnt: the rate may be higher still)"
                if views.label_free is None and settings.label_free_methods
                else ""
            )
            + f". Treat {rate:.1%} as a lower bound; `labelaudit verify` measures the rate on a reviewed sample."
            + (
                " If the labels were made by rules or weak supervision, `labelaudit audit --lower-bound-cut doubted` "
                f"flags deeper, as the doubted-samples reading ({scores.doubted.rate:.1%}) suggests."
                if doubted_reads_more and not cut_on_doubted
                else ""
            )
            + (
                " If one class's labels went consistently to another (class-pair noise), the labels of the samples "
                f"the methods are surest of imply {views.anchored:.1%}; `labelaudit audit --lower-bound-rate anchors` "
                "reports that as the estimate"
                + (
                    f" (not taken by default: {_why_anchors_not_backed(views, scores.point.rate, settings)})."
                    if settings.lower_bound_rate == "auto"
                    else "."
                )
                if views.anchors_read_more and not views.follow_anchors
                else ""
            )
            + (
                " The labels of the samples the methods are surest of disagree with them more often than those of"
                " the next surest do, so they say nothing about the rate here and no option reports them (with a"
                " few samples per class, a model that holds each sample out is surest of the mislabelled ones)."
                if views.anchors_inverted
                else ""
            )
        )
    elif upper - lower > max(settings.wide_interval, rate):
        said.append(
            f"The estimate is uncertain with {n:,} samples: the error rate is between {lower:.1%} and {upper:.1%}. "
            + (
                f"The upper end is what the methods that never see the labels ({label_free_names})"
                " read: they cannot learn systematic mistakes, but they also count right labels the encoder finds"
                " hard. "
                if label_free_sets_upper
                else ""
            )
            + "`labelaudit verify` narrows it with a reviewed sample."
        )
    if (
        views.follow_neighbours and not scores.lower_bound and views.neighbours is not None
    ):  # a lower bound's warning says it already
        said.append(
            f"The estimate, {rate:.1%}, is what the labels of each sample's two nearest neighbours imply "
            f"({views.neighbours.purity:.0%} of the samples share their neighbours' predicted class); the methods, "
            f"which learn from the labels, read {scores.point.rate:.1%}. `labelaudit audit --no-neighbour-reading` "
            "reports theirs."
        )
    return said


@dataclass(frozen=True)
class LabelFreeReading:
    rate: float  # the estimate read on the label-free methods' probabilities
    power: float  # their audit power (AUROC of synthetic mistakes against right labels)


def label_free_reading(probs: np.ndarray, labels: np.ndarray, settings: EstimateSettings) -> LabelFreeReading:
    """The whole estimate, read on the probabilities of methods that never see the labels (zero-shot prompts).

    A method that learns from the labels, however cross-fitted, learns the mistakes that recur (labelling
    rules, one class to its neighbour): they score like right labels and the point reads low. A label-free
    view sees a real mistake exactly as it sees a synthetic one, so what fools it is the opposite: right
    labels it finds as unlikely as mistakes, which raise every reading. So its rate is an upper end. Measured
    with MiniLM (docs/benchmarks.md): it read at or above the truth on every shared text set (wrench_youtube
    16.8 % for 13.5 %, where the other readings reached 11.6 %; imdb 13.6 % for 0.7 %, a weak view of
    sentiment), and below it where the noise follows what the encoder itself finds ambiguous (instance-dependent
    noise, or class-pair noise between classes the prompts confuse too), so it is an upper end, not a bound."""
    inner = estimate_error_rate(probs, labels, settings=settings)
    return LabelFreeReading(inner.rate, inner.power.auroc)


def calibrated_posterior(
    observed: np.ndarray,
    mistakes: np.ndarray,
    own: np.ndarray,
    rate: float,
    verified: np.ndarray | None,
    beyond_the_scores: bool = False,
) -> np.ndarray:
    """Per-sample ``P(wrong | score)``: the monotone density ratio of ``mistakes`` (a synthetic-mistake score
    histogram) to ``observed``, scaled to average ``rate``; verified items are 0 (right) or 1 (wrong).

    Where no synthetic mistake scores as high as most samples (well-separated classes), the samples with a
    positive ratio can hold less than ``rate``: they are then all wrong, and the mean stays below ``rate``.
    For a reading of these same scores that is right (its best bin overshot what the scores show). For a
    reading from another view (``beyond_the_scores``: the neighbours' labels, the anchors), which counts the
    mistakes the methods learnt and score like right labels, the rest of ``rate`` goes to the next samples up
    the score, whole score bins first, as the ranking takes them: else the headline, this mean, would stay
    below the reading it says it follows (10.1 % where the neighbours' reading said 11 % in a test set)."""
    bins = _bins(own)
    ratio_per_sample = density_ratio(observed, mistakes)[bins]
    posterior = np.minimum(1.0, posterior_scale(ratio_per_sample, rate) * ratio_per_sample)
    if beyond_the_scores and len(posterior):
        posterior = filled_up_the_scores(posterior, bins, rate)
    return with_verified(posterior, verified)


def filled_up_the_scores(posterior: np.ndarray, bins: np.ndarray, rate: float) -> np.ndarray:
    """``posterior`` with what its mean lacks of ``rate`` given to the samples it calls right (0), from the
    lowest score bin up: each bin in turn all wrong, the last one in part."""
    missing = min(rate, 1.0) * len(posterior) - float(posterior.sum())
    if missing <= 1e-9:
        return posterior
    posterior = posterior.copy()
    unread = posterior <= 0
    in_bin = np.bincount(bins[unread], minlength=len(SCORE_EDGES) - 1).astype(np.float64)
    share = np.zeros_like(in_bin)
    for index in np.flatnonzero(in_bin):  # ascending score
        share[index] = min(1.0, missing / in_bin[index])
        missing -= in_bin[index]
        if missing <= 0:
            break
    posterior[unread] = share[bins[unread]]
    return posterior


def with_verified(posterior: np.ndarray, verified: np.ndarray | None) -> np.ndarray:
    """``posterior`` with reviewed items set to 0 (reviewed right) or 1 (reviewed wrong)."""
    if verified is None:
        return posterior
    return np.where(verified == 0, 0.0, np.where(verified == 1, 1.0, posterior))


def looks_symmetric(observed: np.ndarray, to_any_class: np.ndarray, settings: EstimateSettings) -> bool:
    """Whether mistakes to any class explain the low score tail at a constant rate (see EstimateSettings):
    the mark of symmetric noise. Where the right kind of mistake is injected, the ratio of observed to
    injected mass stays flat until correct labels enter; an injected kind that is more visible than the real
    mistakes makes it climb from the start."""
    if settings.symmetric_flatness is None:
        return False
    below_obs, below_inj = np.cumsum(observed), np.cumsum(to_any_class)
    ratios = []
    for share in settings.symmetric_shares:
        edge = min(int(np.searchsorted(below_inj, share)), len(below_inj) - 1)
        if below_obs[edge] < settings.symmetric_min_count or below_inj[edge] <= 0:
            return False
        ratios.append(below_obs[edge] / below_inj[edge])
    return bool(ratios[1] <= settings.symmetric_flatness * ratios[0])


def lower_bound_reading(point: _Reading, doubted: _Reading, plausible: _Reading, settings: EstimateSettings) -> bool:
    """Whether plausible mistakes explain clearly more errors than isolated ones (see EstimateSettings)."""
    return max(doubted.rate, plausible.rate) > point.upper + settings.lower_bound_gap


def flag_count(
    posterior: np.ndarray,
    open_rows: np.ndarray,
    lower_bound_upper: float | None,
    ranking: np.ndarray | None = None,
    cut: Literal["best_f1", "expected"] = "expected",
    at_least_expected: bool = False,
) -> int:
    """How many unreviewed samples to flag, taken from the top of ``ranking`` (low = most suspect; ties in
    sample order, as ``consensus.suspect_order`` without ids; None: by the error probability), with
    ``posterior`` the error probabilities.

    - ``cut="best_f1"``: the cut whose expected F1 is highest. The top ``k`` hold ``sum(posterior[top k])``
      expected errors out of ``sum(posterior)``, so the expected F1 is about ``2 * that / (k + sum)``. On the
      tune rows it beat the expected count (below) on 8 of 9 real-noise sets (youtube 0.24 vs 0.09, imdb
      0.16 vs 0.11, CIFAR-10N worst 0.66 vs 0.61; sms 0.32 vs 0.43) and on 18 of 22 synthetic dev rows:
      where the ranking is sharper than the probabilities, the cut goes deeper.
    - ``cut="expected"``: the number of errors the estimate expects among them (the sum of their error
      probabilities). On the tune rows it beat the methods' majority vote on F1 on the nearly clean sets
      (20news 0.13 vs 0.05, imdb 0.11 vs 0.08) and CIFAR-10N aggre (0.39 vs 0.36), and missed
      labelling-function noise (youtube 0.09 vs 0.61); flagging only "more likely wrong than right"
      (posterior > 0.5) was lower still.
    - ``lower_bound_upper`` (EstimateSettings.flag_to_upper_bound, off by default): as many as the upper end
      of the interval says there may be.

    - ``at_least_expected`` (where the estimate is a lower bound, ``EstimateSettings.lower_bound_flags_expected``,
      or follows the neighbours' reading, ``neighbour_flags_expected``): never fewer than the expected count.
      A lower bound says at least that many labels are wrong, and its error probabilities are too low, so the
      best-F1 cut computed from them stops short; so do the methods' probabilities scaled to the neighbours'.

    Where the estimate expects less than half an error, nothing is flagged: a clean set comes back clean."""
    n_open = int(open_rows.sum())
    if lower_bound_upper is not None:
        return int(round(lower_bound_upper * n_open))
    expected = float(posterior[open_rows].sum())
    if cut == "expected" or round(expected) == 0:
        return int(round(expected))
    order = np.argsort(-posterior if ranking is None else np.asarray(ranking), kind="stable")
    order = order[open_rows[order]]
    found = np.cumsum(posterior[order])
    expected_f1 = 2.0 * found / (np.arange(1, len(order) + 1) + expected)
    best = int(np.argmax(expected_f1)) + 1
    return max(best, int(round(expected))) if at_least_expected else best


def _power(
    observed: np.ndarray,
    injected: np.ndarray,
    own: np.ndarray,
    open_rows: np.ndarray,
    n_flags: int,
    rate: float,
    repaired: float,
) -> AuditPower:
    """Audit power (see AuditPower), with ``rate`` the estimated share of wrong labels among the observed and
    ``repaired`` the share of the ``injected`` mistakes that give a sample its true class (RepairChances)."""
    obs = observed / max(observed.sum(), 1e-12)
    above = 1.0 - np.cumsum(obs)  # observed mass strictly above each bin
    against_observed = float(np.sum(injected * (above + 0.5 * obs)))
    informative = 1.0 - rate - repaired  # the pairs (mistake, right label) that carry the power
    auroc = (
        float(np.clip((against_observed - 0.5 * (rate + repaired)) / informative, 0.0, 1.0))
        if informative > 0.0
        else 0.5
    )
    scores = np.sort(own[open_rows])
    if n_flags <= 0 or not len(scores):
        return AuditPower(auroc=auroc, recall_at_cut=0.0)
    cut_bin = int(_bins(scores[min(n_flags, len(scores)) - 1 : min(n_flags, len(scores))])[0])
    return AuditPower(auroc=auroc, recall_at_cut=float(injected[: cut_bin + 1].sum()))
