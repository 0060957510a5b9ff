"""The multi-label audit inside the normal pipeline: after discovery and the cached embedding, the score stage
is ``audit.audit_tags`` (every method, the consensus and the calibrated error rates), and the summary stage
builds the tag-set report (``tables``) and a ``Summary`` with its ``MultilabelSummary``.

``pipeline.audit`` calls these when discovery read tag sets (``Dataset.is_multilabel``); what they share with a
single-label audit (engine, embedding cache, class prompts, neighbour graph, run.json) is the pipeline's own.
The label-free issue checks (duplicates, outliers) and the HTML page are single-label only for now.
"""

from __future__ import annotations

import dataclasses
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import storage
from ..config import AuditConfig, ScoringSpec
from ..discover import Dataset, resolved_spec
from ..progress import Reporter
from ..report import excerpt
from ..summary import EncoderSummary, MultilabelSummary, Summary
from .audit import MultilabelAudit, audit_tags
from .scorers import DEFAULT_METHODS as TAG_DEFAULT_METHODS
from .scorers import MultilabelContext

if TYPE_CHECKING:
    from ..embed import EmbeddingResult
    from ..encoders import Encoder
    from ..pipeline import AuditResult, _Run
    from ..scorers import FoldRunner

# Columns the single-label report has and the report jobs (gate, export, apply) read: a tag-set report has
# them too, with the tag sets joined by the separator, so selection and baselines work unchanged.
SHARED_COLUMNS = ("given_label", "suggested_label", "consensus_score", "suggested_prob")


def tag_methods(scoring: ScoringSpec) -> list[str]:
    """The methods of a tag-set audit: the ones asked for, or the tag-set defaults when none were (zero-shot is
    no default there: see ``multilabel.scorers.DEFAULT_METHODS``)."""
    from ..scorers import DEFAULT_METHODS

    return list(TAG_DEFAULT_METHODS) if tuple(scoring.methods) == tuple(DEFAULT_METHODS) else list(scoring.methods)


def flat_options(scoring: ScoringSpec, methods: list[str]) -> dict[str, Any]:
    """Each method's typed Settings as the flat ``<method>_<setting>`` options the tag scorers read."""
    options: dict[str, Any] = {}
    for name in methods:
        settings = scoring.settings_for(name)
        for item in dataclasses.fields(settings):
            options[f"{name}_{item.name}"] = getattr(settings, item.name)
    return options


def score_tags_stage(
    dataset: Dataset,
    embedded: EmbeddingResult,
    encoder: Encoder,
    cache_root: Path | storage.Location | None,
    scoring: ScoringSpec,
    fold_runner: FoldRunner,
    run: _Run,
    reporter: Reporter,
) -> MultilabelAudit:
    """Class prompts, every tag scorer out-of-sample, their consensus and the calibrated error rates."""
    from ..pipeline import class_prompts_stage, neighbor_source

    assert dataset.tags is not None
    prompt_names, class_embeddings = class_prompts_stage(dataset, encoder, cache_root, run)
    methods = tag_methods(scoring)
    options = flat_options(scoring, methods)
    options["modality"] = dataset.modality
    context = MultilabelContext(
        embeddings=embedded.vectors,
        tags=dataset.tags,
        class_names=prompt_names,
        class_embeddings=class_embeddings,
        logit_scale=encoder.logit_scale,
        soft_prompt=encoder.soft_prompt_model() if "deft" in methods and _wants_prompts(scoring) else None,
        seed=scoring.seed,
        folds=int(options.get("confident_folds", 5)),
        options=options,
        reporter=reporter,
        neighbors=neighbor_source(
            embedded, encoder, run, dataset.samples["content_hash"].astype(str).tolist(), scoring.seed
        ),
        fold_runner=fold_runner,
    )
    with run.timer.stage("score_tags"):
        return audit_tags(context, methods)


def _wants_prompts(scoring: ScoringSpec) -> bool:
    # The soft-prompt tower is built only for DeFT's prompt variant: building it loads the text tower again.
    return scoring.settings_for("deft").variant != "embedding"


def tag_tables(dataset: Dataset, audit: MultilabelAudit) -> tuple[pd.DataFrame, pd.DataFrame]:
    """report and classes tables of a tag-set audit, with the columns the report jobs share (SHARED_COLUMNS)."""
    from .tables import report_tables
    from .tags import tags_to_column

    samples = dataset.samples
    extra = pd.DataFrame(
        {
            "path": samples["path"].to_numpy(),
            "text": [excerpt(t) for t in samples["text"]],
            "given_label": samples["label"].to_numpy(),
            "suggested_label": tags_to_column(audit.decisions.suggested, dataset.classes, dataset.tag_sep),
            "consensus_score": audit.decisions.quality.astype(np.float64),
            # The consensus's probability of the least certain pair's suggested answer.
            "suggested_prob": _suggested_prob(audit),
            "content_hash": samples["content_hash"].to_numpy(),
        }
    )
    table, classes = report_tables(audit, samples["sample_id"].astype(str).tolist(), dataset.classes, extra)
    for name, result in audit.methods.items():  # each method's pair flags, per sample
        flagged = pd.Series(result.flagged.any(axis=1), index=samples["sample_id"].astype(str).to_numpy())
        table[f"{name}_issue"] = flagged.loc[table["sample_id"]].to_numpy()
    table["issue_type"] = np.where(table["is_issue"], "label_error", "")
    classes["flagged"] = classes["flagged_missing"] + classes["flagged_spurious"]
    # Per class: the share of its (sample, class) pairs judged wrong, the rate `gate --max-class-error-rate` reads.
    classes["estimated_error_rate"] = classes["flagged_rate"]
    classes["confused_with"] = None
    classes["confused_share"] = 0.0
    return table, classes


def _suggested_prob(audit: MultilabelAudit) -> np.ndarray:
    probs = audit.consensus.probs.astype(np.float64)
    suggested = audit.decisions.suggested
    sure = np.where(suggested, probs, 1.0 - probs)  # the probability of each pair's suggested answer
    sure = np.where(audit.consensus.scored[None, :], sure, 1.0)
    return sure.min(axis=1) if sure.shape[1] else np.ones(len(sure))


def tag_summary(
    data: str | Path | storage.Location | pd.DataFrame,
    dataset: Dataset,
    encoder: EncoderSummary,
    audit: MultilabelAudit,
    warnings: list[str],
    config: AuditConfig,
    neighbor_graph: dict[str, Any],
) -> Summary:
    numbers = audit.summary()
    estimate = audit.decisions.estimate
    assert estimate is not None, "the pipeline's tag audit is always calibrated"
    d = audit.decisions
    tags = MultilabelSummary(
        estimated_pair_error_rate=round(estimate.pair_error_rate, 6),
        estimated_sample_error_rate=round(estimate.sample_error_rate, 6),
        estimated_missing_share=round(estimate.missing_share, 6),
        estimated_spurious_share=round(estimate.spurious_share, 6),
        n_pairs_judged=int(numbers["n_pairs_judged"]),
        n_classes_judged=int(numbers["n_classes_judged"]),
        n_flagged_pairs=int((d.missing | d.spurious).sum()),
        n_flagged_missing=int(d.missing.sum()),
        n_flagged_spurious=int(d.spurious.sum()),
        flag_rule=d.flag_rule,
        label_column=dataset.tag_column,
        tag_separator=dataset.tag_sep,
        calibration=dict(numbers.get("calibration", {})),
    )
    from ..pipeline import dataset_summary
    from ..summary import MULTILABEL_ERROR_RATE_ESTIMATOR

    return Summary(
        dataset=dataset_summary(data, dataset),
        estimated_error_rate=tags.estimated_sample_error_rate,
        error_rate_estimator=MULTILABEL_ERROR_RATE_ESTIMATOR,
        classes=dataset.classes,
        encoder=encoder,
        methods=list(audit.methods),
        method_settings={name: r.settings for name, r in audit.methods.items()},
        n_flagged=int(d.is_issue.sum()),
        flagged_per_method={name: int(r.flagged.any(axis=1).sum()) for name, r in audit.methods.items()},
        issue_types={"label_error": int(d.is_issue.sum())},
        neighbor_graph=neighbor_graph,
        n_skipped=len(dataset.skipped),
        skipped=[s.as_dict() for s in dataset.skipped[:1000]],
        warnings=warnings,
        seed=config.scoring.seed,
        engine=config.engine.name,
        data_spec=resolved_spec(config.data, dataset),
        multilabel=tags,
    )


def tag_result(
    data: str | Path | storage.Location | pd.DataFrame,
    dataset: Dataset,
    encoder: Encoder,
    embedded: EmbeddingResult,
    audit: MultilabelAudit,
    notes: list[str],
    config: AuditConfig,
    run: _Run,
) -> AuditResult:
    """The tag-set report's tables, its summary and run.json."""
    from ..pipeline import NEIGHBOR_TIMING_KEYS, AuditResult, torch_version
    from ..version import __version__

    with run.timer.stage("report"):
        table, classes = tag_tables(dataset, audit)
        skipped = pd.DataFrame([s.as_dict() for s in dataset.skipped], columns=["path", "reason", "stage"])
        knn = audit.methods.get("knn")
        graph = {k: v for k, v in (knn.settings if knn else {}).items() if k in ("k", "search", "recall_at_k")}
        summary = tag_summary(
            data,
            dataset,
            EncoderSummary(encoder.identity, encoder.description, int(embedded.vectors.shape[1])),
            audit,
            dataset.warnings + notes,
            config,
            {k: v for k, v in graph.items() if k not in NEIGHBOR_TIMING_KEYS},
        )
    assert run.cache is not None
    info = {
        "labelaudit_version": __version__,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "timings_s": run.timer.timings,
        "cache": {
            "dir": str(run.cache.folder) if run.cache.folder else None,
            "hits": embedded.n_cached,
            "embedded": embedded.n_embedded,
            "corrupt_shards_removed": run.cache.corrupt_shards,
        },
        "platform": {"python": platform.python_version(), "torch": torch_version(), "device": str(encoder.device)},
    }
    return AuditResult(
        samples=table, classes=classes, summary=summary, skipped=skipped, embeddings=embedded.vectors, run=info
    )
