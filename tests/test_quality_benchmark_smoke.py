"""The detection-quality harness must keep running: a tiny synthetic run through every method and peer."""

from __future__ import annotations

from pathlib import Path

from .bench_data import quality, synthetic_bench_data


def test_quality_harness_scores_every_method_on_known_errors(tmp_path: Path) -> None:
    data, given, true = synthetic_bench_data(n=300, noise_rate=0.15, seed=2)
    rows = quality.run_dataset(data, "all", seed=0)
    methods = {row["method"] for row in rows}
    assert {"confident", "zeroshot", "knn", "peer: small-loss GMM"} <= methods
    assert any(m.startswith("consensus (labelaudit default") for m in methods)
    consensus = next(r for r in rows if str(r["method"]).startswith("consensus (labelaudit default"))
    assert consensus["true_error_rate"] == round(float((given != true).mean()), 4)
    assert consensus["auroc"] > 0.9
    assert "peer: cleanlab Datalab (features only)" in methods
    default = next(r for r in rows if str(r["method"]).startswith("labelaudit default"))
    assert default["estimate_lower"] <= default["estimate_whole_set"] <= default["estimate_upper"]
    assert abs(default["estimate_whole_set"] - default["true_rate_whole_set"]) < 0.05
    # The class-pair opt-in only ever heads a lower bound with more than the point; elsewhere it is the default.
    anchors = next(r for r in rows if r["method"] == quality.ANCHORS_ROW)
    if default["estimate_is_lower_bound"]:
        assert anchors["estimate_whole_set"] >= default["estimate_whole_set"]
    else:
        assert anchors["estimate_whole_set"] == default["estimate_whole_set"]
        assert anchors["flagged"] == default["flagged"]
    markdown = quality.to_markdown(rows)
    # The methods' table; a caption and the estimate's table (one row); the AUROC- and F1-difference tables.
    assert markdown.count("\n") == len(rows) + 2 + 6 + 6 + 6
    old_vote = next(r for r in rows if str(r["method"]).startswith("consensus (labelaudit default"))
    assert abs(default["f1_minus_old_vote"] - (default["f1"] - old_vote["f1"])) < 1e-3
    low, high = default["f1_minus_old_vote_ci"]
    assert low <= default["f1_minus_old_vote"] <= high
    # The ranking against each cleanlab recipe: the AUROC difference of their two rows, inside its bootstrap interval.
    peer = next(r for r in rows if r["method"] == "peer: cleanlab default (CV logistic regression)")
    assert abs(default["auroc_minus_cleanlab_default"] - (default["auroc"] - peer["auroc"])) < 1e-3
    low, high = default["auroc_minus_cleanlab_default_ci"]
    assert low <= default["auroc_minus_cleanlab_default"] <= high < 0.05
    # The best cut in hindsight is the F1 ceiling of every cut on the same ranking (its AUROC is that ranking's).
    hindsight = next(r for r in rows if r["method"] == quality.HINDSIGHT_ROW)
    assert hindsight["auroc"] == default["auroc"]
    assert hindsight["f1"] >= max(default["f1"], old_vote["f1"]) and hindsight["f1"] > 0.5
