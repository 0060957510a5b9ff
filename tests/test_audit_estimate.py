"""An audit's error rate, interval and flag cut come from the calibrated estimate (labelaudit.estimate).

The data are Gaussian classes that overlap (a probe disagrees with ~8 % of the labels although almost all
are right): the majority vote of the methods flags those hard samples, the estimate does not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from labelaudit import audit, pipeline
from labelaudit.cli import main
from labelaudit.estimate import flag_count
from labelaudit.gate import check_gate, describe

from .report_factory import write_report

METHODS = "confident,knn"  # the two the estimate reads: enough for the stage, and fast


class LookupEncoder:
    """A text encoder whose "texts" are row names: ``row-12`` embeds as row 12 of a fixed matrix."""

    identity = "test-lookup-encoder"
    description = "lookup table (test)"
    logit_scale = None
    device = torch.device("cpu")

    def __init__(self, vectors: np.ndarray, centres: np.ndarray, class_names: Sequence[str]) -> None:
        self.vectors, self.centres, self.class_names = vectors, centres, list(class_names)

    def image_transform(self):
        return None

    def encode_image_batch(self, pixels):
        raise NotImplementedError

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            if text.startswith("row-"):
                rows.append(self.vectors[int(text.removeprefix("row-"))])
            else:  # a class prompt: its class's centre
                rows.append(self.centres[next(k for k, c in enumerate(self.class_names) if c in text)])
        return np.asarray(rows, dtype=np.float32)

    def templates(self, modality: str) -> Sequence[str]:
        return ["{}"]

    def soft_prompt_model(self):
        return None


def overlapping_classes(n: int, wrong: int, k: int = 4, seed: int = 0, spread: float = 1.9):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    centres = rng.normal(size=(k, 16)) * 1.6
    x = centres[truth] + rng.normal(size=(n, 16)) * spread
    given = truth.copy()
    flipped = rng.choice(n, size=wrong, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, k, wrong)) % k
    return lookup_dataset(x, centres, truth, given)


def lookup_dataset(x: np.ndarray, centres: np.ndarray, truth: np.ndarray, given: np.ndarray):
    """A text frame labelled ``given``, an encoder that returns ``x`` for it, and which labels are wrong."""
    names = [f"class{c}" for c in range(len(centres))]
    frame = pd.DataFrame(
        {
            "id": [f"s{i:04d}" for i in range(len(x))],
            "text": [f"row-{i}" for i in range(len(x))],
            "label": [names[g] for g in given],
        }
    )
    centres_unit = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    return frame, LookupEncoder(x.astype(np.float32), centres_unit.astype(np.float32), names), given != truth


@pytest.fixture(scope="module")
def nearly_clean():
    # 0.5 % wrong in overlapping classes, where the old vote read 4.6 % (unit rows, as encoders return them)
    return overlapping_classes(1200, wrong=6, spread=2.7, seed=3)


def test_a_nearly_clean_audit_reports_nearly_clean_where_the_vote_did_not(nearly_clean, tmp_path: Path) -> None:
    frame, encoder, wrong = nearly_clean
    result = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id")
    vote = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id", estimate=None)
    truth = float(wrong.mean())
    assert vote.estimated_error_rate > truth + 0.02  # the vote counts hard samples as errors...
    assert abs(result.estimated_error_rate - truth) < 0.01  # ...the calibrated estimate does not
    summary = result.summary
    assert summary.error_rate is not None and summary.error_rate.lower <= truth <= summary.error_rate.upper
    assert summary.n_flagged is not None and summary.n_flagged <= 3 * wrong.sum()
    assert vote.summary.error_rate is None and "majority" in vote.summary.error_rate_estimator


def test_flags_are_the_top_of_the_ranking_and_class_rates_add_up(nearly_clean, tmp_path: Path) -> None:
    frame, encoder, _ = nearly_clean
    result = audit(frame, encoder=encoder, methods=METHODS, cache_dir=None, id_col="id")
    samples, classes = result.samples, result.classes
    n_flagged = int(samples["is_issue"].sum())
    assert samples["is_issue"].head(n_flagged).all()  # the report is sorted by the consensus ranking
    # the cut with the best expected F1 along the report's order (flag_count with that order as the ranking)
    probability = samples["error_probability"].to_numpy()
    in_order = np.arange(len(samples))
    assert n_flagged == flag_count(probability, np.ones(len(samples), bool), None, in_order, "best_f1") > 0
    assert samples["error_probability"].mean() == pytest.approx(result.estimated_error_rate, abs=1e-6)
    weighted = float((classes["estimated_error_rate"] * classes["count"]).sum() / classes["count"].sum())
    assert weighted == pytest.approx(result.estimated_error_rate, abs=1e-6)


def test_the_audit_cuts_its_flags_where_the_expected_f1_along_the_report_is_highest(tmp_path: Path) -> None:
    frame, encoder, _ = overlapping_classes(600, wrong=30, spread=2.0)
    samples = audit(frame, encoder=encoder, methods=METHODS, cache_dir=None, id_col="id").samples
    probability = samples["error_probability"].to_numpy()
    best = flag_count(probability, np.ones(len(samples), bool), None, np.arange(len(samples)), "best_f1")
    assert int(samples["is_issue"].sum()) == best
    assert samples["is_issue"].head(best).all()
    assert best != round(probability.sum())  # on this data the rule differs from the expected count


def test_summary_gate_and_cached_rerun_carry_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame, encoder, wrong = overlapping_classes(400, wrong=40)
    out = tmp_path / "report"
    first = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id", out=out)
    payload = json.loads((out / "summary.json").read_text())
    block = payload["error_rate"]
    assert block["lower"] <= payload["estimated_error_rate"] <= block["upper"]
    assert 0.5 < block["audit_power"]["auroc"] <= 1.0 and "calibrated" in payload["error_rate_estimator"]

    again = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id")
    assert again.run["scores_from_cache"]["estimate"] is True  # a cached re-run reads the estimate back
    assert again.summary.to_json() == first.summary.to_json()
    # an estimator whose code changed (its version raised) computes the estimate again
    monkeypatch.setattr(pipeline, "ESTIMATOR_VERSION", pipeline.ESTIMATOR_VERSION + 1)
    newer = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id")
    assert newer.run["scores_from_cache"]["estimate"] is False

    gate = check_gate(out, max_error_rate=0.5)
    assert gate.model_estimate is not None and gate.model_estimate.upper == block["upper"]
    assert any("interval" in line for line in describe(gate))

    # --on upper judges the interval's upper end: a limit between the point and that end passes on the point only
    limit = f"{(payload['estimated_error_rate'] + block['upper']) / 2:.4f}"
    assert block["upper"] - payload["estimated_error_rate"] > 0.002  # room for a limit between them
    assert main(["gate", str(out), "--max-error-rate", limit, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["error_rate_source"] == "model"
    assert main(["gate", str(out), "--max-error-rate", limit, "--on", "upper", "--json"]) == 1
    strict = json.loads(capsys.readouterr().out)
    assert strict["error_rate_source"] == "model, upper end of the 95% interval"
    assert strict["checks"][0]["value"] == pytest.approx(block["upper"])
    assert main(["gate", str(out), "--max-error-rate", f"{block['upper']:.6f}", "--on", "upper"]) == 0  # inclusive


def test_gating_on_the_upper_end_of_a_report_without_an_interval_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [dict(sample_id=f"s{i}", given_label="ab"[i % 2], consensus_score=0.5, is_issue=False) for i in range(8)]
    report = write_report(tmp_path / "old", rows)  # planted scores: no calibrated estimate, so no interval
    assert main(["gate", str(report), "--max-error-rate", "0.5", "--on", "upper"]) == 2
    assert "--on point" in capsys.readouterr().err
    assert main(["gate", str(report), "--max-error-rate", "0.5"]) == 0  # the point still gates


def test_a_lower_bound_that_passes_the_gate_says_its_upper_end_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A passing lower bound says little (wrench_youtube: 0.7 % for 13.5 %, upper end 16.8 %): the gate says so
    where the pass is read, and names --on upper."""
    rows = [dict(sample_id=f"s{i}", given_label="ab"[i % 2], consensus_score=0.5, is_issue=i == 0) for i in range(40)]
    report = write_report(tmp_path / "r", rows)
    summary_path = report / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["estimated_error_rate"] = 0.01
    interval = dict(lower=0.005, upper=0.17, confidence=0.95, is_lower_bound=True, warnings=[], details={})
    summary["error_rate"] = interval
    summary_path.write_text(json.dumps(summary))

    assert main(["gate", str(report), "--max-error-rate", "0.05"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "lower bound and the upper end of its interval, 17.00%, is above the limit: --on upper" in said
    assert main(["gate", str(report), "--max-error-rate", "0.2"]) == 0  # the upper end passes too: nothing to say
    assert "--on upper" not in capsys.readouterr().err
    summary_path.write_text(json.dumps({**summary, "error_rate": {**interval, "is_lower_bound": False}}))
    assert main(["gate", str(report), "--max-error-rate", "0.05"]) == 0  # a point, not a bound: the interval says it
    assert "--on upper" not in capsys.readouterr().err


def test_a_flag_whose_best_class_is_its_own_label_is_suggested_the_likeliest_other() -> None:
    from labelaudit.consensus import Consensus, follow_estimate

    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    consensus = Consensus(
        score=np.array([0.0, 0.5, 1.0]),  # sample 0 is the most suspect
        is_issue=np.zeros(3, dtype=bool),
        suggested=probs.argmax(1),
        suggested_prob=probs.max(1),
        pred_probs=probs,
        estimated_error_rate=0.0,
    )
    labels = np.array([0, 1, 2])  # sample 0's likeliest class is its own label
    followed = follow_estimate(consensus, np.array([0.6, 0.1, 0.0]), 0.23, 1, labels=labels)
    assert followed.is_issue.tolist() == [True, False, False]
    assert followed.suggested[0] == 1 and followed.suggested_prob[0] == pytest.approx(0.3)  # not "keep label 0"
    assert followed.suggested[1:].tolist() == [1, 2]  # unflagged rows keep their suggestion


def test_the_label_free_reading_comes_from_zero_shot_and_can_only_raise_the_upper_end(tmp_path: Path) -> None:
    frame, encoder, _ = overlapping_classes(400, wrong=40)
    with_prompts = audit(frame, encoder=encoder, methods=f"{METHODS},zeroshot", cache_dir=None, id_col="id")
    block = with_prompts.summary.error_rate
    assert block is not None
    reading = block.details["label_free_reading"]  # zero-shot's class prompts never see the labels
    assert reading["methods"] == ["zeroshot"] and 0.0 <= reading["rate"] <= 1.0
    assert block.upper >= reading["rate"] or not reading["counts"]
    without = audit(frame, encoder=encoder, methods=METHODS, cache_dir=None, id_col="id").summary.error_rate
    assert without is not None and without.details["label_free_reading"] is None  # no label-free method ran
    assert without.lower == block.lower  # the probe and the neighbour vote's readings are the same in both


def class_pair_noise(n: int, share: float, k: int = 5, seed: int = 3, scale: float = 1.6):
    """Overlapping classes whose labels went to the next class for ``share`` of the samples (class-pair noise)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    centres = rng.normal(size=(k, 16)) * scale  # overlapping: the probe learns part of the class pairs
    x = centres[truth] + rng.normal(size=(n, 16))
    flipped = rng.random(n) < share
    given = np.where(flipped, (truth + 1) % k, truth)
    return lookup_dataset(x, centres, truth, given)


def clusterable_nearly_clean(n: int = 2000, k: int = 5, seed: int = 2):
    """Clusterable classes (a sample's two neighbours share its predicted class for 0.85 of the samples; HOC
    reads 6.7 %), 0.3 % of the labels moved to another class at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    centres = rng.normal(size=(k, 16)) * 0.8
    x = centres[truth] + rng.normal(size=(n, 16))
    given = truth.copy()
    moved = rng.choice(n, size=6, replace=False)
    given[moved] = (truth[moved] + rng.integers(1, k, 6)) % k
    return lookup_dataset(x, centres, truth, given)


def test_an_audit_names_the_anchors_reading_of_a_lower_bound_and_the_option_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labelaudit.estimate as estimate_module
    from labelaudit.estimate import EstimateSettings

    frame, encoder, wrong = class_pair_noise(1500, share=0.25)
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)  # as on class-pair data
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    # These classes are clusterable, so by default the neighbours' reading would head (the next test): off here;
    # and by default the anchors would head (the test after it): isolated mistakes here.
    default = audit(frame, **kwargs, estimate=EstimateSettings(neighbour_min_purity=None, lower_bound_rate="isolated"))
    block = default.summary.error_rate
    assert block is not None and block.is_lower_bound
    anchored = block.details["anchor_extrapolated_rate"]
    truth = float(wrong.mean())
    assert abs(anchored - truth) < abs(default.estimated_error_rate - truth)  # the anchors see the class pairs
    assert any(f"imply {anchored:.1%}" in w and "--lower-bound-rate anchors" in w for w in block.warnings)
    opted = audit(frame, **kwargs, estimate=EstimateSettings(lower_bound_rate="anchors", neighbour_min_purity=None))
    assert opted.run["scores_from_cache"]["estimate"] is False  # another setting, another cached estimate
    assert opted.estimated_error_rate == pytest.approx(anchored, abs=0.01)
    assert opted.summary.error_rate is not None and opted.summary.error_rate.details["headline_reading"] == (
        "anchors, extrapolated"
    )
    assert opted.samples["error_probability"].mean() == pytest.approx(opted.estimated_error_rate, abs=1e-6)


def test_by_default_a_lower_bound_follows_the_anchors_where_the_data_back_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lower_bound_rate="auto": on class-pair noise with classes the encoder separates, the anchors read more
    than isolated mistakes beyond their sampling error, so the headline is theirs. The pipeline gives the
    estimate the neighbour graph for the purity check even with the neighbours' reading off."""
    import labelaudit.estimate as estimate_module
    from labelaudit.estimate import EstimateSettings

    frame, encoder, wrong = class_pair_noise(1500, share=0.25)
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)  # as on class-pair data
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    isolated = audit(frame, **kwargs, estimate=EstimateSettings(neighbour_min_purity=None, lower_bound_rate="isolated"))
    default = audit(frame, **kwargs, estimate=EstimateSettings(neighbour_min_purity=None))
    block = default.summary.error_rate
    assert block is not None and block.is_lower_bound
    details = block.details
    reading = details["neighbour_reading"]
    assert reading["rate"] is None and not reading["counts"]  # HOC is off; its purity is still read
    separation = (reading["predicted_purity"] - reading["chance_purity"]) / (1 - reading["chance_purity"])
    assert separation >= EstimateSettings().anchor_min_purity_above_chance
    assert details["anchor_reading_backed"] is True
    assert (
        details["anchor_extrapolated_rate"] - 1.645 * details["anchor_standard_error"] > isolated.estimated_error_rate
    )
    assert details["headline_reading"] == "anchors, extrapolated"
    assert default.estimated_error_rate == pytest.approx(details["anchor_extrapolated_rate"], abs=0.01)
    truth = float(wrong.mean())
    assert abs(default.estimated_error_rate - truth) < abs(isolated.estimated_error_rate - truth)
    assert any("`--lower-bound-rate isolated`" in w and "class-pair noise" in w for w in block.warnings)
    assert int(default.samples["is_issue"].sum()) > int(isolated.samples["is_issue"].sum())


def _hoc_reads(monkeypatch: pytest.MonkeyPatch, rate: float) -> None:
    """HOC's fit reads ``rate`` (its purity gate and everything around it stay real)."""
    import labelaudit.neighbour_reading as neighbour_module

    monkeypatch.setattr(neighbour_module, "hoc_error_rate", lambda *args, **kwargs: rate)


def test_on_clusterable_data_the_estimate_follows_the_neighbours_reading_inside_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labelaudit.estimate import EstimateSettings

    frame, encoder, _ = class_pair_noise(1500, share=0.25)  # the methods read 18.2 %, the interval reaches 26.7 %
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    _hoc_reads(monkeypatch, 0.24)  # as labels made by rules read: above the methods, inside what the data allow
    default = audit(frame, **kwargs)
    without = audit(frame, **kwargs, estimate=EstimateSettings(neighbour_min_purity=None))
    block = default.summary.error_rate
    assert block is not None
    reading = block.details["neighbour_reading"]
    assert reading["counts"] and not reading["above_readings"] and reading["predicted_purity"] >= 0.8
    assert block.details["headline_reading"] == "nearest neighbours' labels"
    assert default.estimated_error_rate == pytest.approx(0.24, abs=0.005)
    assert without.estimated_error_rate < 0.2
    assert block.lower <= default.estimated_error_rate <= block.upper
    # The summary says where the number comes from, whichever warning carries it.
    assert any("two nearest neighbours imply" in w for w in block.warnings)
    assert default.samples["error_probability"].mean() == pytest.approx(default.estimated_error_rate, abs=1e-6)
    assert int(default.samples["is_issue"].sum()) > int(without.samples["is_issue"].sum())


def test_a_neighbours_reading_above_every_other_reading_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A neighbour of another true class looks like a wrong label to HOC, so it can read above every other
    reading (unpatched, test_a_nearly_clean_clusterable_set_comes_back_nearly_clean): here it reads 30 % where
    the interval ends at 26.7 % on a lower bound, so the methods' reading stays and the summary says why."""
    import labelaudit.estimate as estimate_module
    from labelaudit.estimate import EstimateSettings

    frame, encoder, _ = class_pair_noise(1500, share=0.25)
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)  # as on class-pair data
    _hoc_reads(monkeypatch, 0.30)
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    default = audit(frame, **kwargs)
    without = audit(frame, **kwargs, estimate=EstimateSettings(neighbour_min_purity=None))
    block = default.summary.error_rate
    assert block is not None and block.is_lower_bound
    reading = block.details["neighbour_reading"]
    assert reading["predicted_purity"] >= 0.8 and reading["rate"] > block.upper
    assert not reading["counts"] and reading["above_readings"]
    assert block.details["headline_reading"] != "nearest neighbours' labels"
    assert default.estimated_error_rate == pytest.approx(without.estimated_error_rate, abs=1e-9)
    assert any(
        f"two nearest neighbours imply {reading['rate']:.1%}, more than the readings" in w for w in block.warnings
    )


def test_a_nearly_clean_clusterable_set_comes_back_nearly_clean(tmp_path: Path) -> None:
    """Clusterable classes, 0.3 % wrong: HOC reads several points (neighbours of another class), the methods
    read the truth and their interval is narrow, so the estimate stays within a point."""
    frame, encoder, wrong = clusterable_nearly_clean()
    result = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id")
    block = result.summary.error_rate
    assert block is not None
    reading = block.details["neighbour_reading"]
    assert reading["predicted_purity"] >= 0.8 and reading["rate"] > float(wrong.mean()) + 0.02  # HOC alone: high
    assert not reading["counts"] and reading["above_readings"]
    assert abs(result.estimated_error_rate - float(wrong.mean())) < 0.01
    assert not any("two nearest neighbours imply" in w for w in block.warnings)


def test_where_the_neighbours_reading_heads_a_point_estimate_the_summary_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labelaudit.estimate as estimate_module

    frame, encoder, _ = class_pair_noise(1500, share=0.1)  # the interval reaches 12.1 %
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: False)  # as on wrench_sms
    _hoc_reads(monkeypatch, 0.09)
    result = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id")
    block = result.summary.error_rate
    assert block is not None and not block.is_lower_bound
    assert block.details["headline_reading"] == "nearest neighbours' labels"
    said = [w for w in block.warnings if "two nearest neighbours imply" in w]
    assert len(said) == 1 and "--no-neighbour-reading" in said[0]
    assert f"read {block.details['isolated_mistakes_rate']:.1%}" in said[0]  # what the methods read instead


def test_where_the_neighbours_read_more_than_the_doubted_samples_the_doubted_cut_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labelaudit.estimate as estimate_module
    from labelaudit.estimate import EstimateSettings

    frame, encoder, _ = class_pair_noise(1500, share=0.1)  # isolated 5.5 % < doubted 8.6 % < neighbours 11 %
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)  # as on labelling-rule noise
    _hoc_reads(monkeypatch, 0.11)
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    default = audit(frame, **kwargs)
    block = default.summary.error_rate
    assert block is not None and block.is_lower_bound
    assert block.details["headline_reading"] == "nearest neighbours' labels"
    assert block.details["isolated_mistakes_rate"] < block.details["doubted_samples_rate"]
    assert block.details["doubted_samples_rate"] < default.estimated_error_rate
    assert not any("--lower-bound-cut doubted" in w for w in block.warnings)  # it would flag fewer, not deeper
    doubted = audit(frame, **kwargs, estimate=EstimateSettings(lower_bound_cut="doubted"))
    assert int(doubted.samples["is_issue"].sum()) == int(default.samples["is_issue"].sum())


def test_where_the_scores_hold_less_than_the_neighbours_read_the_headline_is_still_their_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Well-separated classes: only 10.1 % of the samples score where any synthetic mistake scores, so error
    probabilities scaled to the neighbours' 11.5 % saturate there, and their mean, the headline, read 10.1 %
    while the summary said it follows 11.5 %. The rest goes to the next samples up the score."""
    import labelaudit.estimate as estimate_module

    frame, encoder, _ = class_pair_noise(1500, share=0.1)
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)
    _hoc_reads(monkeypatch, 0.115)
    result = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id")
    block = result.summary.error_rate
    assert block is not None and block.details["headline_reading"] == "nearest neighbours' labels"
    probability = result.samples["error_probability"].to_numpy()
    assert result.estimated_error_rate == pytest.approx(0.115, abs=1e-4)
    assert probability.mean() == pytest.approx(result.estimated_error_rate, abs=1e-6)
    assert (probability >= 1.0).mean() < 0.115  # not every suspect sample is certain: one bin is in part
    assert int(result.samples["is_issue"].sum()) >= round(0.115 * len(frame)) - 1  # at least the expected count


def test_on_overlapping_classes_the_neighbours_reading_does_not_count(nearly_clean, tmp_path: Path) -> None:
    frame, encoder, wrong = nearly_clean  # a sample's neighbours are often of another class: HOC would read high
    result = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id")
    block = result.summary.error_rate
    assert block is not None
    reading = block.details["neighbour_reading"]
    assert not reading["counts"] and reading["rate"] is None and reading["predicted_purity"] < 0.8
    assert block.details["headline_reading"] != "nearest neighbours' labels"


def test_the_neighbours_purity_is_read_from_the_probe_and_without_it_there_is_no_reading(tmp_path: Path) -> None:
    from labelaudit.estimate import EstimateSettings

    frame, encoder, _ = class_pair_noise(1500, share=0.25)
    kwargs = {"encoder": encoder, "cache_dir": tmp_path / "cache", "id_col": "id"}
    by_probe = audit(frame, methods=METHODS, **kwargs).summary.error_rate
    by_vote = audit(
        frame, methods=METHODS, **kwargs, estimate=EstimateSettings(neighbour_purity_methods=("knn",))
    ).summary.error_rate
    assert by_probe is not None and by_vote is not None
    # The neighbour vote predicts its neighbours' majority label, so it reads purer than the probe does.
    assert (
        by_vote.details["neighbour_reading"]["predicted_purity"]
        > by_probe.details["neighbour_reading"]["predicted_purity"]
    )
    without_probe = audit(frame, methods="knn", **kwargs).summary.error_rate
    assert without_probe is not None and "neighbour_reading" not in without_probe.details


def test_where_the_neighbours_reading_heads_the_warning_does_not_offer_the_anchors_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labelaudit.estimate as estimate_module
    from labelaudit.neighbour_reading import NeighbourReading

    frame, encoder, _ = class_pair_noise(1500, share=0.25)  # the anchors read 29 %
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: True)
    monkeypatch.setattr(estimate_module, "read_neighbours", lambda *args: NeighbourReading(0.9, 0.05, True))
    block = audit(frame, encoder=encoder, methods=METHODS, cache_dir=None, id_col="id").summary.error_rate
    assert block is not None and block.details["headline_reading"] == "nearest neighbours' labels"
    assert block.details["anchor_extrapolated_rate"] > 0.05  # they read more, but the option would not report it
    assert not any("--lower-bound-rate anchors" in w for w in block.warnings)


def _by_id(result, column: str) -> pd.Series:
    return result.samples.set_index("sample_id")[column].sort_index()


def test_on_clusterable_data_the_ranking_leans_on_the_neighbour_vote(tmp_path: Path) -> None:
    """Where the data pass the neighbours' purity gate, the report's score is the mean of the methods' consensus and the
    neighbour vote's score, and the flags are the top of that ranking; with the reading off it is the consensus."""
    from labelaudit.estimate import EstimateSettings

    frame, encoder, _ = class_pair_noise(1500, share=0.25)
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    leaning = audit(frame, **kwargs)
    plain = audit(frame, **kwargs, estimate=EstimateSettings(neighbour_min_purity=None))
    block = leaning.summary.error_rate
    assert block is not None and block.details["neighbour_reading"]["predicted_purity"] >= 0.8
    vote = _by_id(leaning, "knn_score")
    expected = (_by_id(plain, "consensus_score") + vote) / 2
    np.testing.assert_allclose(_by_id(leaning, "consensus_score").to_numpy(), expected.to_numpy(), atol=1e-9)
    assert not np.allclose(_by_id(plain, "consensus_score").to_numpy(), expected.to_numpy(), atol=1e-3)
    flags = leaning.samples["is_issue"].to_numpy()
    assert flags.any() and flags[: int(flags.sum())].all()  # the report's top rows, in the leaning order


def test_on_overlapping_classes_the_ranking_is_the_consensus(nearly_clean, tmp_path: Path) -> None:
    frame, encoder, _ = nearly_clean
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    default = audit(frame, **kwargs)
    off = audit(frame, **kwargs, estimate=None)  # the methods' vote, before any estimate: the plain consensus
    assert default.summary.error_rate is not None
    assert not default.summary.error_rate.details["neighbour_reading"]["counts"]
    pd.testing.assert_series_equal(_by_id(default, "consensus_score"), _by_id(off, "consensus_score"))


def test_where_the_estimate_follows_the_neighbours_it_flags_at_least_what_it_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error probabilities are the methods' own scaled to the neighbours' rate, so the best-F1 cut under
    them stops short of the count the headline expects: the flags are never fewer (neighbour_flags_expected)."""
    import labelaudit.estimate as estimate_module
    from labelaudit.estimate import EstimateSettings

    frame, encoder, _ = class_pair_noise(1500, share=0.1, scale=1.1)
    monkeypatch.setattr(estimate_module, "lower_bound_reading", lambda *args: False)  # as on wrench_sms
    _hoc_reads(monkeypatch, 0.116)  # just under the ceiling here (the interval's 12.1 %)
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    default = audit(frame, **kwargs)
    unfloored = audit(frame, **kwargs, estimate=EstimateSettings(neighbour_flags_expected=False))
    assert default.summary.error_rate is not None
    assert default.summary.error_rate.details["headline_reading"] == "nearest neighbours' labels"
    expected = round(default.estimated_error_rate * len(frame))
    assert int(unfloored.samples["is_issue"].sum()) < expected  # the best-F1 cut alone stops short here
    assert int(default.samples["is_issue"].sum()) == expected


def clusterable_with_copies(n: int = 1500, copies: int = 600, k: int = 3, seed: int = 5):
    """Well separated classes, 15 % of the labels moved at random, then ``copies`` samples copied with their
    labels (a copy carries its sample's mistake, as rules and annotators label the same content alike)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    centres = rng.normal(size=(k, 16)) * 1.5
    x = centres[truth] + rng.normal(size=(n, 16))
    moved = rng.random(n) < 0.15
    given = np.where(moved, (truth + rng.integers(1, k, n)) % k, truth)
    copied = rng.choice(n, size=copies, replace=False)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)  # unit rows, as the encoders return them
    return lookup_dataset(
        np.concatenate([x, x[copied]]),
        centres,
        np.concatenate([truth, truth[copied]]),
        np.concatenate([given, given[copied]]),
    )


def test_the_neighbours_reading_does_not_take_a_samples_copies_for_witnesses(tmp_path: Path) -> None:
    from labelaudit.estimate import EstimateSettings

    frame, encoder, wrong = clusterable_with_copies()
    kwargs = {"encoder": encoder, "methods": METHODS, "cache_dir": tmp_path / "cache", "id_col": "id"}
    readings = {}
    for copy_similarity in (0.95, None):
        result = audit(frame, **kwargs, estimate=EstimateSettings(neighbour_copy_similarity=copy_similarity))
        block = result.summary.error_rate
        assert block is not None
        readings[copy_similarity] = block.details["neighbour_reading"]
    truth = float(wrong.mean())
    assert readings[0.95]["rate"] is not None and readings[None]["rate"] is not None
    assert readings[0.95]["samples_read"] == len(frame)  # one copy each: two other neighbours are always left
    # A copy agrees with its sample's label, right or wrong: read as a neighbour, it hides the mistakes.
    assert readings[None]["rate"] < truth - 0.025
    assert abs(readings[0.95]["rate"] - truth) < 0.015


def test_rows_an_encoder_returns_at_another_length_are_made_unit_length(tmp_path: Path) -> None:
    """Encoders promise unit rows; the lookup encoder here does not keep the promise (its rows are 3-6 long).
    Read as cosines, its inner products were clamped to 1 and every sample was a near duplicate of its
    neighbours: all 600 were duplicate conflicts. The embed stage scales such rows to unit length."""
    frame, encoder, _ = class_pair_noise(600, share=0.1)
    assert np.linalg.norm(encoder.vectors, axis=1).min() > 1.5
    result = audit(frame, encoder=encoder, methods=METHODS, cache_dir=tmp_path / "cache", id_col="id")
    # 16 at unit length: in 16 dimensions a few neighbours of another label do come within cosine 0.95
    assert int(result.samples["duplicate_conflict"].sum()) < 0.05 * len(frame)
    from labelaudit.embed import unit_rows

    unit = np.eye(3, dtype=np.float32)[[0, 1]] * np.float32(1 + 5e-4)
    assert unit_rows(unit) is unit  # within 1e-3 of unit length, as the bundled encoders return them: untouched
    np.testing.assert_allclose(unit_rows(np.array([[3.0, 4.0], [0.6, 0.8]])), [[0.6, 0.8], [0.6, 0.8]])


def test_flags_skip_the_reviewed_rows_and_ties_go_in_the_reports_order() -> None:
    """follow_estimate takes its flags from the top of the ranking among the rows nobody reviewed, and where
    scores tie, in sample-id order, as the report lists them, so the flags are the report's top rows."""
    from labelaudit.consensus import Consensus, follow_estimate, suspect_order

    score = np.array([0.1, 0.2, 0.2, 0.2, 0.9])
    ids = np.array(["e", "d", "b", "c", "a"])
    order = suspect_order(score, ids)
    assert order.tolist() == [0, 2, 3, 1, 4]  # 0.1 first; the three at 0.2 as b, c, d
    consensus = Consensus(
        score=score,
        is_issue=np.zeros(5, dtype=bool),
        suggested=np.zeros(5, dtype=np.int64),
        suggested_prob=np.full(5, 0.5),
        pred_probs=None,
        estimated_error_rate=0.0,
    )
    settled = np.array([True, False, False, False, False])  # the most suspect row was reviewed
    followed = follow_estimate(consensus, np.full(5, 0.4), 0.4, 2, order=order, settled=settled)
    assert np.flatnonzero(followed.is_issue).tolist() == [2, 3]  # b and c, not the reviewed e
