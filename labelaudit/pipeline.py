"""The whole audit as one Python call: discover -> embed -> score -> consensus -> report tables."""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__, storage, verification
from .cache import DEFAULT_CACHE_DIR, EmbeddingCache, ScoreCache
from .consensus import ProbabilityMean, combine
from .discover import Dataset, Modality, discover
from .embed import DEFAULT_MAX_IMAGE_PIXELS, embed_samples
from .encoders import Encoder, embed_class_prompts, resolve_encoder
from .engines import check_engine, require_ray
from .errors import AuditInterrupted, DataError
from .io import WRITING_MARKER
from .neighbor_issues import find_duplicates, find_outliers, issue_types
from .neighbors import NeighborSource
from .progress import QUIET, Reporter
from .report import classes_table, confused_pairs, prepare_output_dir, samples_table, write_report
from .scorers import FoldRunner, ScoreContext, ScorerResult, SerialFolds, get_scorer, parse_methods

# Wall-clock figures that graph building stores in its settings: they go to run.json, not summary.json.
NEIGHBOR_TIMING_KEYS = ("seconds", "build_s", "search_s")


@dataclass
class AuditResult:
    samples: pd.DataFrame  # one row per audited sample, most suspect first
    classes: pd.DataFrame  # one row per class, worst first
    # What ran and what it found: a function of the inputs, seed and versions only, so that two runs
    # on the same inputs write byte-identical reports.
    summary: dict[str, Any]
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason", "stage"]))
    embeddings: np.ndarray | None = None  # (N, D) float16 as cached, rows in discovery order (not report order)
    duplicates: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per duplicate-group member
    # How this particular run went: timestamps, timings, cache hits, platform (run.json).
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def estimated_error_rate(self) -> float:
        return float(self.summary["estimated_error_rate"])

    @property
    def issues(self) -> pd.DataFrame:
        return self.samples[self.samples["is_issue"]]

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        out = Path(out)
        prepare_output_dir(out, overwrite)
        write_report(out, self.samples, self.classes, self.summary, self.skipped, self.duplicates, self.run or None)
        return out


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.current = "starting"  # the stage running now, for the message of an interrupted run

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self.current = name
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)


_STAGE_WORDS = {
    "starting": "starting",
    "discover": "finding the samples",
    "load_model": "loading the model",
    "embed": "embedding",
    "class_prompts": "embedding the class prompts",
    "neighbor_issues": "finding duplicates and outliers",
    "report": "building the report",
    "write": "writing the report",
}


def _interrupt_message(stage: str, cache: EmbeddingCache | None, engine: str, out: Path | None) -> str:
    """What an interrupted audit kept, and how to go on: the user decides from this whether to rerun."""
    words = _STAGE_WORDS.get(stage, f"scoring ({stage.removeprefix('score_')})")
    parts = [f"Interrupted while {words}."]
    if cache is None:
        parts.append("Nothing had been embedded yet.")
    elif not cache.enabled:
        parts.append("Nothing was saved (--no-cache): running the same command again starts over.")
    elif engine == "ray":
        parts.append(f"Embeddings the Ray actors finished are saved in the cache ({cache.folder}).")
    else:
        parts.append(f"{cache.stored_rows:,} new embedding(s) were saved in the cache ({cache.folder}).")
    if stage == "write" and out is not None:
        parts.append(
            f"The report in {out} is incomplete and marked so ({WRITING_MARKER}); labelaudit will not read it."
        )
    if cache is not None and cache.enabled:
        parts.append("Run the same command again to resume: cached embeddings are read back, not computed again.")
    return " ".join(parts)


def _score_cached(name: str, context: ScoreContext, score_cache: ScoreCache) -> tuple[ScorerResult, bool]:
    """The scorer's result and whether it came from the cache (recorded in run.json, not in the
    settings: the summary must not differ between a cold and a cached run)."""
    stored = score_cache.load(name)
    if stored is not None:
        result = ScorerResult(
            quality=stored["quality"],
            is_issue=stored["is_issue"].astype(bool),
            suggested=stored["suggested"],
            pred_probs=stored.get("pred_probs"),
            settings=json.loads(str(stored["settings"])),
        )
        return result, True
    result = get_scorer(name).score(context)
    arrays = {
        "quality": result.quality,
        "is_issue": result.is_issue,
        "suggested": result.suggested,
        "settings": np.array(json.dumps(result.settings, default=str)),
    }
    if result.pred_probs is not None:
        arrays["pred_probs"] = result.pred_probs
    score_cache.save(name, arrays)
    return result, False


def score_methods(
    method_names: list[str], context: ScoreContext, score_cache: ScoreCache, timer: _Timer | None = None
) -> tuple[dict[str, ScorerResult], np.ndarray | None, dict[str, bool]]:
    """Run (or read back) every scorer: their results, the mean of their probabilities, and which of
    them came from the score cache.

    Each scorer's (N, K) table is folded into one running mean and dropped from its result right away, so
    the scoring stage holds one such table however many methods run.
    """
    timer = timer or _Timer()
    results: dict[str, ScorerResult] = {}
    from_cache: dict[str, bool] = {}
    probs = ProbabilityMean()
    for name in method_names:
        with timer.stage(f"score_{name}"):
            result, from_cache[name] = _score_cached(name, context, score_cache)
            if result.pred_probs is not None:
                probs.add(result.pred_probs)
                result.pred_probs = None
            results[name] = result
    return results, probs.mean(), from_cache


@contextmanager
def _explain_interrupt(
    timer: _Timer, caches: list[EmbeddingCache], engine: str, out: str | Path | None
) -> Iterator[None]:
    """Turn Ctrl-C into ``AuditInterrupted`` saying what was saved by the stage it hit and how to resume."""
    try:
        yield
    except AuditInterrupted:
        raise
    except KeyboardInterrupt as exc:
        out_path = Path(out) if out is not None else None
        message = _interrupt_message(timer.current, caches[0] if caches else None, engine, out_path)
        raise AuditInterrupted(message) from exc


def audit(
    data: str | Path | storage.Location | pd.DataFrame,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    methods: str | list[str] | None = None,
    modality: Modality | None = None,
    label_col: str | None = None,
    path_col: str | None = None,
    text_col: str | None = None,
    id_col: str | None = None,
    classes_file: str | Path | None = None,
    allow_outside_root: bool = False,
    model: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    encoder: Encoder | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    cache_dir: str | Path | storage.Location | None = DEFAULT_CACHE_DIR,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    folds: int = 5,
    seed: int = 0,
    deft_variant: str = "embedding",
    deft_epochs: int = 10,
    deft_ctx: int = 16,
    deft_lr: float | None = None,
    deft_folds: int = 5,
    engine: str = "local",
    ray_address: str | None = None,
    ray_concurrency: int | None = None,
    reporter: Reporter = QUIET,
    verified: str | Path | pd.DataFrame | None = None,
) -> AuditResult:
    """Audit the labels of a dataset.

    ``data`` is an image or text folder (one sub-folder per class), a CSV/Parquet manifest, or a
    DataFrame with a label column and a path or text column; a folder or manifest may be an object-store
    URI (``s3://bucket/dataset/manifest.parquet``). Returns an ``AuditResult`` whose ``samples`` table
    ranks every sample most-suspect first; with ``out`` the report is also written. ``cache_dir`` is a
    folder or an object-store URI (``s3://bucket/labelaudit-cache``); ``None`` keeps embeddings in memory
    only. ``engine="ray"`` embeds on a Ray cluster (``ray_address``, default a local Ray;
    ``ray_concurrency`` embedding actors) into the same cache, and runs the confident probe's folds as
    Ray tasks.
    ``verified``: a verified.csv from `labelaudit estimate` (or its DataFrame): rows a person reviewed are
    settled (right: never flagged; wrong: flagged, with the reviewer's label as the suggestion).
    Ctrl-C raises ``AuditInterrupted`` (a KeyboardInterrupt) saying what was saved and how to resume.
    """
    started_at = datetime.now(timezone.utc)
    timer = _Timer()
    caches: list[EmbeddingCache] = []  # filled once the encoder is known
    with _explain_interrupt(timer, caches, engine, out):
        check_engine(engine)
        cache_root = None if cache_dir is None else storage.open_location(cache_dir, "--cache-dir")
        if engine == "ray":
            require_ray()  # fail before discovery when the extra is missing
        method_names = parse_methods(methods)
        verified_table = None if verified is None else verification.read_verified(verified)  # fail early
        if out is not None:
            prepare_output_dir(Path(out), overwrite)  # fail before the expensive work, not after

        with timer.stage("discover"):
            dataset = discover(
                data,
                modality=modality,
                label_col=label_col,
                path_col=path_col,
                text_col=text_col,
                id_col=id_col,
                classes_file=classes_file,
                allow_outside_root=allow_outside_root,
                reporter=reporter,
            )
        for warning in dataset.warnings:
            reporter.note(f"[yellow]warning:[/] {warning}")

        notes: list[str] = []
        built_encoder = None if encoder is not None else (dataset.modality, model, pretrained, checkpoint, device)
        with timer.stage("load_model"):
            if encoder is None:
                encoder, notes = resolve_encoder(dataset.modality, model, pretrained, checkpoint, device)
        for note in notes:
            reporter.note(f"[cyan]note:[/] {note}")
        cache = EmbeddingCache(cache_root, encoder.identity)
        caches.append(cache)

        with contextlib.ExitStack() as engine_session:
            fold_runner: FoldRunner = SerialFolds()
            if engine == "ray":
                from .engines.ray_engine import audit_session
                from .engines.ray_folds import RayFolds

                # One Ray session from embedding through scoring: a local Ray starts once per audit.
                fold_runner = RayFolds(engine_session.enter_context(audit_session(ray_address)))
            with timer.stage("embed"):
                if engine == "ray":
                    from .engines.ray_engine import embed_samples_ray, encoder_factory, fixed_encoder

                    embedded = embed_samples_ray(
                        dataset.samples,
                        dataset.modality,
                        encoder,
                        fixed_encoder(encoder) if built_encoder is None else encoder_factory(*built_encoder),
                        cache,
                        batch_size=batch_size,
                        max_pixels=max_pixels,
                        concurrency=ray_concurrency,
                        address=ray_address,
                        reporter=reporter,
                    )
                else:
                    embedded = embed_samples(
                        dataset.samples,
                        dataset.modality,
                        encoder,
                        cache,
                        batch_size=batch_size,
                        workers=workers,
                        max_pixels=max_pixels,
                        reporter=reporter,
                    )
            skipped = dataset.skipped + embedded.skipped
            if cache.corrupt_shards:
                reporter.note(
                    f"[yellow]warning:[/] {cache.corrupt_shards} corrupt cache shard(s) were removed and re-embedded"
                )
            samples = dataset.samples[embedded.kept].reset_index(drop=True)
            present = [c for c in dataset.classes if c in set(samples["label"])]
            if len(present) < 2:
                raise DataError(
                    f"fewer than two classes have usable samples after skipping {len(skipped)} unreadable file(s)"
                )
            dataset = Dataset(
                samples=samples,
                classes=present,
                class_names=dataset.class_names,
                modality=dataset.modality,
                root=dataset.root,
                kind=dataset.kind,
                skipped=skipped,
                ignored_files=dataset.ignored_files,
                warnings=dataset.warnings,
            )
            labels = np.asarray(dataset.label_indices(), dtype=np.int64)
            prompt_names = dataset.prompt_names()

            with timer.stage("class_prompts"):
                prompt_cache = EmbeddingCache(cache_root, f"{encoder.identity}|prompts")
                class_embeddings = embed_class_prompts(encoder, prompt_names, dataset.modality, prompt_cache)

            needs_soft_prompts = "deft" in method_names and deft_variant in ("prompt", "auto")
            context = ScoreContext(
                embeddings=embedded.vectors,
                labels=labels,
                class_names=prompt_names,
                class_embeddings=class_embeddings,
                logit_scale=encoder.logit_scale,
                soft_prompt=encoder.soft_prompt_model() if needs_soft_prompts else None,
                seed=seed,
                folds=folds,
                reporter=reporter,
                fold_runner=fold_runner,
                neighbors=NeighborSource(
                    embedded.vectors,
                    folder=cache.folder / "neighbors" if cache.folder is not None else None,
                    identity=encoder.identity,
                    hashes=samples["content_hash"].astype(str).tolist(),
                    seed=seed,
                ),
                options={
                    "deft_variant": deft_variant,
                    "deft_epochs": deft_epochs,
                    "deft_ctx": deft_ctx,
                    "deft_lr": deft_lr,
                    "deft_folds": deft_folds,
                    "deft_init_text": "a photo of a" if dataset.modality == "image" else "This text is about",
                },
            )
            score_cache = ScoreCache(
                cache.folder / "scores" if cache.folder is not None else None,
                [
                    __version__,
                    encoder.identity,
                    json.dumps(context.options, sort_keys=True),
                    str(seed),
                    str(folds),
                    dataset.modality,
                    "\n".join(prompt_names),
                    *samples["content_hash"].astype(str),
                    *map(str, labels.tolist()),
                ],
            )
            results, mean_probs, scores_from_cache = score_methods(method_names, context, score_cache, timer)

        with timer.stage("neighbor_issues"):
            graph = context.neighbor_graph(20)
            duplicates = find_duplicates(
                graph,
                samples["content_hash"].astype(str).to_numpy(),
                labels,
                dataset.classes,
                samples["sample_id"].astype(str).to_numpy(),
            )
            outliers = find_outliers(graph, embedded.vectors, class_embeddings)

        with timer.stage("report"):
            consensus = combine(results, labels, mean_probs)
            if verified_table is not None:
                states, corrected = verification.verified_states(
                    samples["sample_id"], samples["content_hash"], samples["label"], verified_table
                )
                consensus = verification.apply_verified(consensus, states, corrected, dataset.classes)
            neighbor_columns = pd.DataFrame(
                {
                    "issue_type": issue_types(consensus.is_issue, duplicates, outliers),
                    "duplicate_group": duplicates.group,
                    "duplicate_conflict": duplicates.conflict,
                    "outlier_score": outliers.score,
                    "is_outlier": outliers.is_outlier,
                }
            )
            if verified_table is not None:
                neighbor_columns["verified"] = states  # -1 not reviewed, 0 verified right, 1 verified wrong
            table = samples_table(samples, dataset.classes, labels, results, consensus, neighbor_columns)
            classes = classes_table(
                dataset.classes, prompt_names, labels, consensus, embedded.vectors, class_embeddings
            )
            skipped_frame = pd.DataFrame([s.as_dict() for s in skipped], columns=["path", "reason", "stage"])
            summary = {
                "labelaudit_version": __version__,
                "dataset": {
                    "source": str(data) if not isinstance(data, pd.DataFrame) else "<DataFrame>",
                    "kind": dataset.kind,
                    "modality": dataset.modality,
                    "n_samples": int(len(samples)),
                    "n_classes": len(dataset.classes),
                    "ignored_files": dataset.ignored_files,
                },
                "classes": dataset.classes,
                "encoder": {
                    "identity": encoder.identity,
                    "description": encoder.description,
                    "dim": int(embedded.vectors.shape[1]),
                },
                "methods": method_names,
                "method_settings": {name: r.settings for name, r in results.items()},
                "estimated_error_rate": consensus.estimated_error_rate,
                "error_rate_estimator": "share of samples flagged by a strict majority of the methods",
                "n_flagged": int(consensus.is_issue.sum()),
                "flagged_per_method": {name: int(r.is_issue.sum()) for name, r in results.items()},
                "issue_types": {
                    "label_error": int(consensus.is_issue.sum()),
                    "duplicate_conflict": int(duplicates.conflict.sum()),
                    "outlier": int(outliers.is_outlier.sum()),
                },
                "duplicates": {
                    "groups": int(duplicates.table["group"].nunique()) if len(duplicates.table) else 0,
                    "conflicting_groups": int(duplicates.table.loc[duplicates.table["conflicting"], "group"].nunique())
                    if len(duplicates.table)
                    else 0,
                    "samples_in_conflicting_groups": int(duplicates.conflict.sum()),
                },
                "outliers": {"count": int(outliers.is_outlier.sum()), **outliers.settings},
                "neighbor_graph": {k: v for k, v in graph.settings.items() if k not in NEIGHBOR_TIMING_KEYS},
                "confused_pairs": confused_pairs(labels, consensus.suggested, consensus.is_issue, dataset.classes),
                "n_skipped": len(skipped),
                "skipped": [s.as_dict() for s in skipped[:1000]],
                "warnings": dataset.warnings + notes,
                "seed": seed,
                "engine": engine,
            }
            if verified_table is not None:
                where = "<DataFrame>" if isinstance(verified, pd.DataFrame) else str(verified)
                summary["verified"] = verification.verified_summary(states, where)
        run = {
            "labelaudit_version": __version__,
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "timings_s": timer.timings,
            "cache": {
                "dir": str(cache.folder) if cache.folder else None,
                "hits": embedded.n_cached,
                "embedded": embedded.n_embedded,
                "corrupt_shards_removed": cache.corrupt_shards,
            },
            "scores_from_cache": scores_from_cache,
            "cross_validation_folds_ran_on": context.fold_runner.where,  # "ray": the probe's folds were Ray tasks
            "neighbor_graph": {
                "from_cache": context.neighbors.loaded_from_cache,
                **{k: v for k, v in graph.settings.items() if k in NEIGHBOR_TIMING_KEYS},
            },
            "platform": {
                "python": platform.python_version(),
                "torch": torch_version(),
                "device": str(encoder.device),
            },
        }
        result = AuditResult(
            samples=table,
            classes=classes,
            summary=summary,
            skipped=skipped_frame,
            embeddings=embedded.vectors,
            duplicates=duplicates.table,
            run=run,
        )
        if out is not None:
            timer.current = "write"
            result.save(out, overwrite=True)
        return result


def torch_version() -> str:
    import torch

    return str(torch.__version__)
