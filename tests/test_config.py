"""AuditConfig: one place for every option, flat keyword options mapped onto it, bad options caught up front."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from labelaudit.config import AuditConfig, EmbedSpec, EngineSpec, ScoringSpec
from labelaudit.errors import LabelAuditError
from labelaudit.estimate import EstimateSettings
from labelaudit.scorers.confident import ConfidentSettings
from labelaudit.scorers.deft import DeftSettings
from labelaudit.scorers.knn import KnnSettings
from labelaudit.scorers.zeroshot import ZeroShotSettings

from .conftest import SAMPLE_TEXT


def test_flat_options_reach_every_spec_and_every_scorer_setting() -> None:
    config = AuditConfig().with_options(
        methods="knn, deft",
        label_col="y",
        model="st:x",
        batch_size=8,
        cache_dir=None,
        engine="ray",
        ray_address="auto",
        seed=4,
        folds=3,
        deft_ctx=8,
        deft_batch_size=32,
        knn_k=5,
        knn_weighting="uniform",
    )
    assert config.scoring.methods == ("knn", "deft") and config.scoring.seed == 4
    assert config.data.label_col == "y" and config.encoder.model == "st:x"
    assert config.embed == EmbedSpec(batch_size=8, cache_dir=None)
    assert config.engine == EngineSpec(name="ray", ray_address="auto")
    assert config.scoring.settings_for("confident") == ConfidentSettings(folds=3)
    assert config.scoring.settings_for("deft") == DeftSettings(n_ctx=8, batch_size=32)
    assert config.scoring.settings_for("knn") == KnnSettings(k=5, weighting="uniform")
    assert config.scoring.settings_for("zeroshot") == ZeroShotSettings()  # not named: its defaults


def test_options_apply_on_top_of_a_given_config() -> None:
    base = AuditConfig(scoring=ScoringSpec(settings={"deft": DeftSettings(epochs=2)}))
    config = base.with_options(deft_folds=1)
    assert config.scoring.settings_for("deft") == DeftSettings(epochs=2, folds=1)
    assert base.scoring.settings_for("deft") == DeftSettings(epochs=2)  # frozen: the base is unchanged


@pytest.mark.parametrize("name", ["knn_kk", "bogus", "deft", "settings", "name"])
def test_a_misspelt_option_is_an_error_not_a_silent_default(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        AuditConfig().with_options(**{name: 1})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (AuditConfig(engine=EngineSpec(name="spark")), "unknown --engine 'spark'"),
        (AuditConfig(scoring=ScoringSpec(methods=("deft", "magic"))), "unknown method"),
        (AuditConfig(scoring=ScoringSpec(methods=())), "--methods is empty"),
        (AuditConfig(scoring=ScoringSpec(settings={"deft": DeftSettings(variant="x")})), "--deft-variant"),
        (AuditConfig(scoring=ScoringSpec(settings={"knn": KnnSettings(weighting="x")})), "knn weighting"),
        (AuditConfig(scoring=ScoringSpec(estimate=EstimateSettings(confidence=95))), r"confidence must be in \(0, 1\)"),
        (
            AuditConfig(scoring=ScoringSpec(estimate=EstimateSettings(neighbour_min_purity=1.5))),
            r"neighbour_min_purity must be in \(0, 1\]",
        ),
    ],
)
def test_check_refuses_options_no_run_could_use(config: AuditConfig, message: str) -> None:
    with pytest.raises(LabelAuditError, match=message):
        config.check()


def test_settings_of_a_method_that_does_not_run_are_not_checked() -> None:
    config = AuditConfig(scoring=ScoringSpec(methods=("knn",), settings={"deft": DeftSettings(epochs=0)}))
    config.check()


def _frame() -> pd.DataFrame:
    rows = [
        {"text": file.read_text(encoding="utf-8"), "label": folder.name}
        for folder in sorted(SAMPLE_TEXT.iterdir())
        for file in sorted(folder.glob("*.txt"))
    ]
    return pd.DataFrame(rows)


def test_scorer_settings_reach_the_scorers_and_key_their_own_cache_entry(tmp_path: Path, minilm_encoder) -> None:
    """knn's k and DeFT's batch size could not be set before the config; the score cache is keyed per method,
    so a change to one method's settings recomputes that method only."""
    from labelaudit import audit

    frame = _frame()
    common = {"encoder": minilm_encoder, "cache_dir": tmp_path / "cache", "methods": "knn,deft", "deft_epochs": 1}
    first = audit(frame, knn_k=3, deft_batch_size=7, **common)
    assert first.summary.method_settings["knn"]["k"] == 3
    assert first.summary.method_settings["deft"]["batch_size"] == 7
    second = audit(frame, knn_k=4, deft_batch_size=7, **common)
    assert second.summary.method_settings["knn"]["k"] == 4
    # the estimate reads every method's probabilities, so a changed knn setting recomputes it too
    assert second.run["scores_from_cache"] == {"knn": False, "deft": True, "estimate": False}
