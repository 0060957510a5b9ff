"""The multi-label benchmark harness must keep running: its noise, its peer and one tiny condition."""

from __future__ import annotations

import sys

import numpy as np

from .conftest import ROOT
from .test_multilabel_audit import CLASSES, tag_data

sys.path.insert(0, str(ROOT / "benchmarks"))
import multilabel as bench  # noqa: E402


def tiny() -> bench.TagData:
    x, truth, prompts = tag_data(n=300, seed=4)
    return bench.TagData("tiny", x, truth.copy(), truth, list(CLASSES), prompts, np.arange(300).astype(str), "")


def test_synthetic_noise_puts_one_error_in_the_asked_share_of_samples() -> None:
    data = tiny()
    for mode in ("random", "confusable"):
        given = bench.synthetic(data, mode, 0.2, seed=1)
        wrong = given != data.gold
        assert wrong.any(axis=1).sum() == 60
        assert (wrong.sum(axis=1) <= 1).all()


def test_tag_matrix_follows_the_mapping() -> None:
    tags, classes = bench.tag_matrix(np.array([0, 1]), {"a.b": ["x", "y"], "c": ["y"]}, ["a.b", "c"])
    assert classes == ["x", "y"] and tags.tolist() == [[True, True], [False, True]]
    assert all(bench.NEWS_TAGS[g] for g in bench.NEWS_TAGS) and len(bench.NEWS_TAGS) == 20


def test_one_condition_reports_labelaudit_and_the_cleanlab_peer() -> None:
    rows = bench.run_condition(
        tiny(), "random:0.1", "all", seed=0, options={"deft_folds": 2, "deft_epochs": 3}, copies=1
    )
    methods = [r["method"] for r in rows]
    assert "peer: cleanlab multi-label recipe" in methods
    assert methods[0] == "labelaudit (default: calibrated flags)"
    default = rows[0]
    assert default["true_pair_error_rate"] == round(30 / (300 * len(CLASSES)), 5)
    assert default["pair_auroc"] > 0.9
    assert bench.to_markdown(rows).count("\n") == len(rows) + 2
