"""The whole audit as one Python call: a short list of stages, each a function of the one before.

    discover -> load the encoder -> embed -> score (+ consensus) -> issue checks -> summary -> write

``audit`` runs them in order inside one engine session (``labelaudit.engines``); every option comes from
one ``AuditConfig`` (``labelaudit.config``). Torch and the model libraries load only in the stages that
need them, so bad input fails before they do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import html as html_page
from . import storage, verification
from .cache import EmbeddingCache, ScoreCache
from .config import DEFAULT_CACHE_DIR, AuditConfig, DataSpec, EmbedSpec, EncoderSpec, ScoringSpec
from .consensus import (
    NEIGHBOUR_VOTE,
    Consensus,
    PredictedClasses,
    ProbabilityMean,
    combine,
    follow_estimate,
    lean_on_neighbours,
    suspect_order,
)
from .discover import Dataset, code_names_warning, discover, resolved_spec
from .encoders.plan import LazyEncoder
from .engines import EmbedJob, Engine, get_engine
from .errors import AuditInterrupted, DataError, LabelAuditError, Terminated, keyword_errors
from .estimate import (
    ESTIMATOR_VERSION,
    ErrorEstimate,
    EstimateSettings,
    data_are_clusterable,
    estimate_error_rate,
)
from .io import WRITING_MARKER
from .issues import FoundIssues, IssueInputs, find_issues
from .neighbors import NeighborGraph, NeighborSource
from .neighbour_reading import neighbour_pairs
from .progress import QUIET, Reporter
from .report import (
    class_joint,
    classes_table,
    confused_pairs,
    prepare_output_dir,
    samples_table,
    unwritable_folder,
    write_report,
    write_summary,
    write_tag_report,
    writing_report,
)
from .scorers import FoldRunner, ScoreContext, ScorerResult, get_scorer, settings_key
from .summary import (
    CALIBRATED_ESTIMATOR,
    ERROR_RATE_ESTIMATOR,
    DatasetSummary,
    EncoderSummary,
    ErrorRateSummary,
    Summary,
)
from .version import __version__

if TYPE_CHECKING:
    from .embed import EmbeddingResult
    from .encoders import Encoder

# Wall-clock figures that graph building stores in its settings: they go to run.json, not summary.json.
NEIGHBOR_TIMING_KEYS = ("seconds", "build_s", "search_s")
GRAPH_K = 20  # the neighbour graph the issue checks read (the scorers may have asked for more)
SKIPPED_LISTED = 1000  # skipped files named in summary.json; skipped.csv lists them all


@dataclass
class AuditResult:
    samples: pd.DataFrame  # one row per audited sample, most suspect first
    classes: pd.DataFrame  # one row per class, worst first
    # What ran and what it found: a function of the inputs, seed and versions only, so that two runs
    # on the same inputs write byte-identical reports.
    summary: Summary
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason", "stage"]))
    embeddings: np.ndarray | None = None  # (N, D) float16 as cached, rows in discovery order (not report order)
    # The issue checks' own tables by file stem, e.g. "duplicates": one row per duplicate-group member.
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    # How this particular run went: timestamps, timings, cache hits, platform (run.json).
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def estimated_error_rate(self) -> float:
        return self.summary.estimated_error_rate

    @property
    def issues(self) -> pd.DataFrame:
        return self.samples[self.samples["is_issue"]]

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write the report folder: the tables, the HTML page (rendered from them), run.json, summary.json."""
        out = Path(out)
        prepare_output_dir(out, overwrite)
        with writing_report(out):
            if self.summary.multilabel is not None:
                write_tag_report(out, self.samples, self.classes, self.skipped, self.summary.multilabel.tag_separator)
                from .html.tags import render_tag_html

                render_tag_html(self.samples, self.classes, self.summary, out)
            else:
                write_report(out, self.samples, self.classes, self.skipped, self.tables)
                html_page.render_html(self.samples, self.classes, self.summary, out)
            write_summary(out, self.summary, self.run or None)
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


@dataclass
class _Run:
    """What the orchestrator keeps for run.json and for the message of an interrupted run."""

    started_at: datetime
    timer: _Timer
    out: Path | None
    engine: Engine | None = None
    cache: EmbeddingCache | None = None


@dataclass
class Scored:
    """The scoring stage's output: every method's result and their consensus, in discovery order."""

    labels: np.ndarray  # (N,) class index of each sample's given label
    prompt_names: list[str]  # the class names the prompts were made of
    class_embeddings: np.ndarray  # (K, D)
    context: ScoreContext
    results: dict[str, ScorerResult]
    consensus: Consensus
    from_cache: dict[str, bool]  # method -> read back from the score cache
    score_cache: ScoreCache | None = None
    settings_keys: dict[str, str] = field(default_factory=dict)  # method -> its settings' cache key
    estimate_probs: np.ndarray | None = None  # mean probabilities of the methods the estimate reads
    label_free_probs: np.ndarray | None = None  # ... of those that never see the labels (an upper end), if any ran
    # (N,) the most probable class of EstimateSettings.neighbour_purity_methods, if any ran: the neighbours' purity
    purity_predictions: np.ndarray | None = None
    estimate: ErrorEstimate | None = None  # set by estimate_stage


@dataclass
class Reviewed:
    """Verdicts a person gave (`labelaudit estimate` writes them): the audit settles those rows."""

    table: pd.DataFrame
    source: str
    states: np.ndarray | None = None  # per sample once settled: -1 not reviewed, 0 right, 1 wrong

    @classmethod
    def read(cls, verified: str | Path | pd.DataFrame) -> Reviewed:
        where = "<DataFrame>" if isinstance(verified, pd.DataFrame) else str(verified)
        return cls(verification.read_verified(verified), where)

    corrected: np.ndarray | None = None  # per sample: the reviewer's label of a row verified wrong

    def match(self, dataset: Dataset) -> np.ndarray:
        """Each sample's review state (-1 not reviewed, 0 right, 1 wrong): the estimate's anchors."""
        samples = dataset.samples
        self.states, self.corrected = verification.verified_states(
            samples["sample_id"], samples["content_hash"], samples["label"], self.table
        )
        return self.states

    def settle(self, dataset: Dataset, scored: Scored) -> Scored:
        """Reviewed rows settled: right ones never flagged, wrong ones flagged with the reviewer's label."""
        if self.states is None or self.corrected is None:
            self.match(dataset)
        assert self.states is not None and self.corrected is not None
        consensus = verification.apply_verified(scored.consensus, self.states, self.corrected, dataset.classes)
        return dataclasses.replace(scored, consensus=consensus)


@dataclass
class Issues:
    graph: NeighborGraph  # the k-NN graph the checks read
    found: FoundIssues


_STAGE_WORDS = {
    "starting": "starting",
    "discover": "finding the samples",
    "plan_model": "choosing the model",
    "load_model": "loading the model",
    "embed": "embedding",
    "class_prompts": "embedding the class prompts",
    "neighbor_issues": "finding duplicates and outliers",
    "report": "building the report",
    "write": "writing the report",
}


def _interrupt_message(run: _Run, terminated: bool = False) -> str:
    """What an interrupted audit kept, and how to go on: the user decides from this whether to rerun."""
    stage, cache = run.timer.current, run.cache
    words = _STAGE_WORDS.get(stage, f"scoring ({stage.removeprefix('score_')})")
    parts = [f"Interrupted while {words}{' (SIGTERM)' if terminated else ''}."]
    if cache is None or run.engine is None:
        parts.append("Nothing had been embedded yet.")
    elif not cache.enabled:
        parts.append("Nothing was saved (--no-cache): running the same command again starts over.")
    else:
        parts.append(run.engine.saved_note(cache))
    if stage == "write" and run.out is not None:
        parts.append(
            f"The report in {run.out} is incomplete and marked so ({WRITING_MARKER}); labelaudit will not read it."
        )
    if cache is not None and cache.enabled:
        parts.append("Run the same command again to resume: cached embeddings are read back, not computed again.")
    return " ".join(parts)


@contextmanager
def _explain_interrupt(run: _Run) -> Iterator[None]:
    """Turn Ctrl-C into ``AuditInterrupted`` saying what was saved by the stage it hit and how to resume."""
    try:
        yield
    except AuditInterrupted:
        raise
    except KeyboardInterrupt as exc:
        raise AuditInterrupted(_interrupt_message(run, isinstance(exc, Terminated))) from exc


def audit(
    data: str | Path | storage.Location | pd.DataFrame,
    config: AuditConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    encoder: Encoder | None = None,
    reporter: Reporter = QUIET,
    verified: str | Path | pd.DataFrame | None = None,
    **options: Any,
) -> AuditResult:
    """Audit the labels of a dataset.

    ``data`` is an image or text folder (one sub-folder per class), a CSV/Parquet manifest, or a
    DataFrame with a label column and a path or text column; a folder or manifest may be an object-store
    URI (``s3://bucket/dataset/manifest.parquet``). ``config`` holds every option (``labelaudit.config``);
    flat keyword options (``methods="knn"``, ``deft_epochs=3``, ``cache_dir=None``, ...) are applied on top
    of it (``AuditConfig.with_options``). Returns an ``AuditResult`` whose ``samples`` table ranks every
    sample most-suspect first; with ``out`` the report is also written. ``encoder`` is an encoder object to
    use instead of building one from ``config.encoder``. ``verified``: a verified.csv from `labelaudit estimate`
    (or its DataFrame): rows a person reviewed are settled (right: never flagged; wrong: flagged, with the
    reviewer's label as the suggestion).
    Ctrl-C raises ``AuditInterrupted`` (a KeyboardInterrupt) saying what was saved and how to resume.
    """
    config = (config or AuditConfig()).with_options(**options)
    run = _Run(datetime.now(timezone.utc), _Timer(), Path(out) if out is not None else None)
    with _explain_interrupt(run), keyword_errors():
        run.engine, cache_root = prepare(config, run.out, overwrite, reporter)
        reviewed = None if verified is None else Reviewed.read(verified)  # fail before the expensive work
        dataset = discover_stage(data, config.data, run.timer, reporter)
        if dataset.is_multilabel and reviewed is not None:
            raise DataError("--verified settles single labels; a multi-label audit cannot take it yet")
        rebuild = config.encoder if encoder is None else None  # how other processes build the same encoder
        encoder, notes = encoder_stage(dataset.modality, config.encoder, encoder, run.timer, reporter)
        notes = notes + prompt_warnings(dataset, config, reporter)
        run.cache = EmbeddingCache(cache_root, encoder.identity)
        if isinstance(encoder, LazyEncoder):
            encoder.remember_in(run.cache.folder)
        if dataset.is_multilabel:
            from .multilabel import stage as tag_stage

            with run.engine.session() as fold_runner:
                dataset, embedded = embed_stage(dataset, encoder, run, config.embed, rebuild, reporter)
                tagged = tag_stage.score_tags_stage(
                    dataset, embedded, encoder, cache_root, config.scoring, fold_runner, run, reporter
                )
            result = tag_stage.tag_result(data, dataset, encoder, embedded, tagged, notes, config, run)
            if out is not None:
                run.timer.current = "write"
                result.save(out, overwrite=True)
            return result
        with run.engine.session() as fold_runner:
            dataset, embedded = embed_stage(dataset, encoder, run, config.embed, rebuild, reporter)
            scored = score_stage(dataset, embedded, encoder, cache_root, config.scoring, fold_runner, run, reporter)
        states = reviewed.match(dataset) if reviewed is not None else None
        sample_ids = dataset.samples["sample_id"].astype(str).to_numpy()
        scored = estimate_stage(scored, config.scoring.estimate, states, run.timer, sample_ids)
        if reviewed is not None:
            scored = reviewed.settle(dataset, scored)
        issues = issues_stage(dataset, embedded, scored, run.timer)
        result = summary_stage(data, dataset, encoder, embedded, scored, issues, notes, config, run, reviewed)
        if out is not None:
            run.timer.current = "write"
            result.save(out, overwrite=True)
        return result


def prepare(
    config: AuditConfig, out: Path | None, overwrite: bool, reporter: Reporter = QUIET
) -> tuple[Engine, Path | storage.Location | None]:
    """Everything that can fail on the options alone, before the expensive work: the engine, the cache, --out."""
    config.check()
    engine = get_engine(config.engine)
    cache_dir = config.embed.cache_dir
    cache_root = None if cache_dir is None else storage.open_location(cache_dir, "--cache-dir")
    if isinstance(cache_root, Path):
        cache_root = _usable_cache_folder(cache_root, explicit=str(cache_dir) != DEFAULT_CACHE_DIR, reporter=reporter)
    engine.check()
    if out is not None:
        prepare_output_dir(out, overwrite)
    return engine, cache_root


def _usable_cache_folder(folder: Path, explicit: bool, reporter: Reporter) -> Path | None:
    """``folder`` when the cache can be written there. A folder the user named (--cache-dir or the
    environment) that cannot be is an error before any embedding; the default one, which the user never
    chose, is passed over with a warning and the audit runs without a cache."""
    reason = unwritable_folder(folder)
    if reason is None:
        return folder
    if explicit:
        raise LabelAuditError(
            f"--cache-dir {folder}: cannot keep the embedding cache there ({reason}); pass a folder you can "
            f"write to, or --no-cache to run without one"
        )
    reporter.note(
        f"[yellow]warning:[/] the default cache folder {folder} cannot be written ({reason}): running without "
        f"a cache (nothing is kept for a re-run); pass --cache-dir to choose another folder"
    )
    return None


def discover_stage(
    data: str | Path | storage.Location | pd.DataFrame, spec: DataSpec, timer: _Timer, reporter: Reporter
) -> Dataset:
    with timer.stage("discover"):
        dataset = discover(data, reporter=reporter, **spec.to_json())
    for warning in dataset.warnings:
        reporter.note(f"[yellow]warning:[/] {warning}")
    return dataset


def prompt_warnings(dataset: Dataset, config: AuditConfig, reporter: Reporter) -> list[str]:
    """What the user should know about the class names the prompts read, where a method reads them."""
    if dataset.is_multilabel or "zeroshot" not in config.scoring.methods:
        return []
    warnings = code_names_warning(dataset.prompt_names(), config.data.classes_file is not None)
    for warning in warnings:
        reporter.note(f"[yellow]warning:[/] {warning}")
    return warnings


def encoder_stage(
    modality: str, spec: EncoderSpec, given: Encoder | None, timer: _Timer, reporter: Reporter
) -> tuple[Encoder, list[str]]:
    """The encoder the caller gave, or the one ``spec`` names, with notes worth telling the user. The named
    one is a ``LazyEncoder``: its model loads on the first cache miss, so a fully cached run never loads it."""
    if given is not None:
        return given, []
    from .encoders import LazyEncoder, plan_encoder

    with timer.stage("plan_model"):
        plan, notes = plan_encoder(modality, spec.model, spec.pretrained, spec.checkpoint, spec.device)
    for note in notes:
        reporter.note(f"[cyan]note:[/] {note}")
    return LazyEncoder(plan, reporter), notes


def embed_stage(
    dataset: Dataset, encoder: Encoder, run: _Run, spec: EmbedSpec, rebuild: EncoderSpec | None, reporter: Reporter
) -> tuple[Dataset, EmbeddingResult]:
    """Embed through the engine; the dataset comes back without the samples that could not be embedded."""
    assert run.engine is not None and run.cache is not None
    with run.timer.stage("embed"):
        job = EmbedJob(dataset.samples, dataset.modality, encoder, run.cache, spec, rebuild)
        embedded = run.engine.embed(job, reporter)
    skipped = dataset.skipped + embedded.skipped
    if run.cache.corrupt_shards:
        reporter.note(
            f"[yellow]warning:[/] {run.cache.corrupt_shards} corrupt cache shard(s) were removed and re-embedded"
        )
    samples = dataset.samples[embedded.kept].reset_index(drop=True)
    if dataset.tags is not None:  # tag sets: a class given to no kept sample is simply not judged
        tags = dataset.tags[np.asarray(embedded.kept, dtype=bool)]
        return dataclasses.replace(dataset, samples=samples, tags=tags, skipped=skipped), embedded
    present = [c for c in dataset.classes if c in set(samples["label"])]
    if len(present) < 2:
        raise DataError(f"fewer than two classes have usable samples after skipping {len(skipped)} unreadable file(s)")
    return dataclasses.replace(dataset, samples=samples, classes=present, skipped=skipped), embedded


def score_stage(
    dataset: Dataset,
    embedded: EmbeddingResult,
    encoder: Encoder,
    cache_root: Path | storage.Location | None,
    scoring: ScoringSpec,
    fold_runner: FoldRunner,
    run: _Run,
    reporter: Reporter,
) -> Scored:
    """Class prompts, every scorer (or its cached result), and their consensus."""
    labels = np.asarray(dataset.label_indices(), dtype=np.int64)
    prompt_names, class_embeddings = class_prompts_stage(dataset, encoder, cache_root, run)
    hashes = dataset.samples["content_hash"].astype(str).tolist()
    context = ScoreContext(
        embeddings=embedded.vectors,
        labels=labels,
        class_names=prompt_names,
        class_embeddings=class_embeddings,
        logit_scale=encoder.logit_scale,
        soft_prompt_factory=encoder.soft_prompt_model,
        seed=scoring.seed,
        modality=dataset.modality,
        reporter=reporter,
        fold_runner=fold_runner,
        neighbors=neighbor_source(embedded, encoder, run, hashes, scoring.seed),
    )
    score_cache = ScoreCache(
        run.cache.folder / "scores" if run.cache.folder is not None else None,
        # Everything the scorers see but their own settings, which key each method's entry on top.
        [__version__, encoder.identity, str(scoring.seed), dataset.modality, "\n".join(prompt_names), *hashes]
        + [str(label) for label in labels.tolist()],
    )
    settings = {name: scoring.settings_for(name) for name in scoring.methods}
    reads = EstimateReads(scoring.estimate)
    results, mean_probs, from_cache = score_methods(settings, context, score_cache, run.timer, reads.gathered())
    consensus = combine(results, labels, mean_probs)
    scored = Scored(
        labels,
        prompt_names,
        class_embeddings,
        context,
        results,
        consensus,
        from_cache,
        score_cache=score_cache,
        settings_keys={name: settings_key(value) for name, value in settings.items()},
    )
    return reads.attach(scored)


def class_prompts_stage(
    dataset: Dataset, encoder: Encoder, cache_root: Path | storage.Location | None, run: _Run
) -> tuple[list[str], np.ndarray]:
    """The class names the prompts are made of and their embeddings, cached beside the encoder's (a single-
    label and a tag-set audit read them alike)."""
    from .embed import embed_class_prompts

    prompt_names = dataset.prompt_names()
    with run.timer.stage("class_prompts"):
        prompt_cache = EmbeddingCache(cache_root, f"{encoder.identity}|prompts")
        class_embeddings = embed_class_prompts(encoder, prompt_names, dataset.modality, prompt_cache)
    return prompt_names, class_embeddings


def neighbor_source(
    embedded: EmbeddingResult, encoder: Encoder, run: _Run, hashes: list[str], seed: int
) -> NeighborSource:
    """The scorers' neighbour graph, built once and cached by the samples' content ``hashes`` in the run's
    cache folder."""
    assert run.cache is not None
    return NeighborSource(
        embedded.vectors,
        folder=run.cache.folder / "neighbors" if run.cache.folder is not None else None,
        identity=encoder.identity,
        hashes=hashes,
        seed=seed,
    )


class EstimateReads:
    """What the estimate reads of the scorers, gathered while they run (each (N, K) table is dropped as soon
    as it is folded in): the mean probabilities of ``EstimateSettings.methods``, of the label-free methods its
    upper end reads, and the classes the neighbour-purity methods predict. One place, so the audit and the
    cost benchmark (benchmarks/speed.py) feed the estimate the same inputs."""

    def __init__(self, settings: EstimateSettings | None) -> None:
        self.settings = settings
        self.probs, self.label_free = ProbabilityMean(), ProbabilityMean()
        # Only the classes the purity methods predict are read, so only those are kept (not a third table).
        self.purity = PredictedClasses(0 if settings is None else len(settings.neighbour_purity_methods))

    def gathered(self) -> list[tuple[ProbabilityMean | PredictedClasses, tuple[str, ...]]]:
        """``score_methods``' ``gathered``: nothing when no estimate is asked for."""
        if self.settings is None:
            return []
        return [
            (self.probs, self.settings.methods),
            (self.label_free, self.settings.label_free_methods),
            (self.purity, self.settings.neighbour_purity_methods),
        ]

    def attach(self, scored: Scored) -> Scored:
        """``scored`` carrying what was gathered; the estimate reads the consensus's probabilities where none
        of its own methods gave any."""
        probs = self.probs.mean()
        return dataclasses.replace(
            scored,
            estimate_probs=probs if probs is not None else scored.consensus.pred_probs,
            label_free_probs=self.label_free.mean(),
            purity_predictions=self.purity.predicted(),
        )


def estimate_stage(
    scored: Scored,
    settings: EstimateSettings | None,
    verified: np.ndarray | None = None,
    timer: _Timer | None = None,
    sample_ids: np.ndarray | None = None,
) -> Scored:
    """The calibrated error-rate estimate (labelaudit.estimate) and the flag cut it sets; read back from the
    score cache on a re-run. ``verified``: per-sample review states (-1, 0 right, 1 wrong), or None;
    ``sample_ids``: each sample's id, which breaks ties in the report's order (None: ties by position)."""
    if settings is None or scored.estimate_probs is None:
        return scored  # no estimate asked for, or no method gave probabilities: the majority vote stands
    pairs = _neighbour_pairs(scored, settings)
    ranked = scored.consensus
    vote = scored.results.get(NEIGHBOUR_VOTE)
    classes = scored.estimate_probs.shape[1]
    # Where the estimate follows the neighbours' labels, the ranking leans on them too.
    if vote is not None and data_are_clusterable(settings, scored.purity_predictions, pairs, classes):
        ranked = lean_on_neighbours(ranked, vote)
    # The report's order (ties by sample id): the flag cut is chosen along it and the flags are taken in it.
    order = suspect_order(ranked.score, sample_ids)
    with (timer or _Timer()).stage("estimate"):
        estimate, cached = _estimate_cached(scored, settings, verified, order, pairs)
        consensus = follow_estimate(
            ranked,
            estimate.error_probability,
            estimate.rate,
            estimate.n_flags,
            order=order,
            settled=None if verified is None else verified >= 0,
            labels=scored.labels,
        )
    from_cache = {**scored.from_cache, "estimate": cached}
    return dataclasses.replace(scored, consensus=consensus, estimate=estimate, from_cache=from_cache)


def _estimate_cached(
    scored: Scored,
    settings: EstimateSettings,
    verified: np.ndarray | None,
    order: np.ndarray,
    pairs: np.ndarray | None,
) -> tuple[ErrorEstimate, bool]:
    """The estimate and whether it was read back from the score cache. Its flag cut is chosen along
    ``order`` (the samples most suspect first), the order the flags are taken in; ``pairs``: each sample's two
    nearest neighbours, for the neighbours' reading (None: no reading)."""
    assert scored.estimate_probs is not None
    key = json.dumps(
        {
            "settings": settings_key(settings),
            "estimator": ESTIMATOR_VERSION,
            "methods": scored.settings_keys,  # the probabilities it reads depend on every method's settings
            "verified": None if verified is None else _states_digest(verified),
        },
        sort_keys=True,
    )
    stored = scored.score_cache.load("estimate", key) if scored.score_cache is not None else None
    if stored is not None:
        return ErrorEstimate.from_arrays(stored), True
    positions = np.empty(len(order), dtype=np.int64)
    positions[order] = np.arange(len(order))
    estimate = estimate_error_rate(
        scored.estimate_probs,
        scored.labels,
        verified,
        settings,
        ranking=positions,
        label_free_probs=scored.label_free_probs,
        neighbour_pairs=pairs,
        neighbour_predictions=scored.purity_predictions,
    )
    if scored.score_cache is not None:
        scored.score_cache.save("estimate", key, estimate.to_arrays())
    return estimate, False


def _neighbour_pairs(scored: Scored, settings: EstimateSettings) -> np.ndarray | None:
    """Each sample's two nearest neighbours that are not copies of it, for the estimate's neighbours' reading
    and the predicted purity that lower_bound_rate="auto" asks of the anchors: from the graph the issue checks
    read anyway (GRAPH_K), so asking for it here costs no second search."""
    if not settings.reads_neighbours or scored.purity_predictions is None:
        return None  # off, or none of the methods its purity is read from ran: no reading
    graph = scored.context.neighbor_graph(GRAPH_K)
    if graph.k < 2:
        return None
    return neighbour_pairs(graph.indices, graph.similarities, settings.neighbour_copy_similarity)


def _states_digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.int8).tobytes()).hexdigest()


def cached_class_joint(
    labels: np.ndarray, pred_probs: np.ndarray | None, score_cache: ScoreCache | None
) -> np.ndarray | None:
    """report.class_joint through the score cache, keyed by the very bytes it reads: cleanlab, which computes
    it, takes seconds to import, more than the rest of a cached re-run."""
    if pred_probs is None:
        return None
    if score_cache is None:
        return class_joint(labels, pred_probs)
    digest = hashlib.blake2b(digest_size=16)
    for array in (np.ascontiguousarray(labels, dtype=np.int64), np.ascontiguousarray(pred_probs)):
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    stored = score_cache.load("class_joint", digest.hexdigest())
    if stored is not None and "joint" in stored:
        return np.asarray(stored["joint"])
    joint = class_joint(labels, pred_probs)
    score_cache.save("class_joint", digest.hexdigest(), {"joint": joint})
    return joint


def _score_cached(
    name: str, settings: Any, context: ScoreContext, score_cache: ScoreCache
) -> tuple[ScorerResult, bool]:
    """The scorer's result and whether it came from the cache (recorded in run.json, not in the
    settings: the summary must not differ between a cold and a cached run)."""
    key = settings_key(settings)
    stored = score_cache.load(name, key)
    if stored is not None:
        result = ScorerResult(
            quality=stored["quality"],
            is_issue=stored["is_issue"].astype(bool),
            suggested=stored["suggested"],
            pred_probs=stored.get("pred_probs"),
            settings=json.loads(str(stored["settings"])),
        )
        return result, True
    result = get_scorer(name).score(context, settings)
    arrays = {
        "quality": result.quality,
        "is_issue": result.is_issue,
        "suggested": result.suggested,
        "settings": np.array(json.dumps(result.settings, default=str)),
    }
    if result.pred_probs is not None:
        arrays["pred_probs"] = result.pred_probs
    score_cache.save(name, key, arrays)
    return result, False


def score_methods(
    settings: dict[str, Any],
    context: ScoreContext,
    score_cache: ScoreCache,
    timer: _Timer | None = None,
    gathered: Sequence[tuple[ProbabilityMean | PredictedClasses, tuple[str, ...]]] = (),
) -> tuple[dict[str, ScorerResult], np.ndarray | None, dict[str, bool]]:
    """Run (or read back) every scorer, each with its Settings (``settings``: method name -> Settings, in
    run order): their results, the mean of their probabilities, and which of them came from the score cache.
    ``gathered`` (optional): each running mean also gathers the methods named beside it (the estimate's, and
    the label-free ones its upper end reads).

    Each scorer's (N, K) table is folded into one running mean and dropped from its result right away, so
    the scoring stage holds one such table however many methods run.
    """
    timer = timer or _Timer()
    results: dict[str, ScorerResult] = {}
    from_cache: dict[str, bool] = {}
    probs = ProbabilityMean()
    for name, method_settings in settings.items():
        with timer.stage(f"score_{name}"):
            result, from_cache[name] = _score_cached(name, method_settings, context, score_cache)
            if result.pred_probs is not None:
                probs.add(result.pred_probs)
                for subset_probs, subset in gathered:
                    if name in subset:
                        subset_probs.add(result.pred_probs)
                result.pred_probs = None
                result.folded_probs = True
            results[name] = result
    return results, probs.mean(), from_cache


def issues_stage(dataset: Dataset, embedded: EmbeddingResult, scored: Scored, timer: _Timer) -> Issues:
    """Every registered issue check (labelaudit.issues), label errors being the consensus's flags."""
    with timer.stage("neighbor_issues"):
        graph = scored.context.neighbor_graph(GRAPH_K)
        inputs = IssueInputs(
            labels=scored.labels,
            classes=dataset.classes,
            sample_ids=dataset.samples["sample_id"].astype(str).to_numpy(),
            hashes=dataset.samples["content_hash"].astype(str).to_numpy(),
            embeddings=embedded.vectors,
            class_embeddings=scored.class_embeddings,
            graph=graph,
            label_errors=scored.consensus.is_issue,
        )
        return Issues(graph, find_issues(inputs))


def summary_stage(
    data: str | Path | storage.Location | pd.DataFrame,
    dataset: Dataset,
    encoder: Encoder,
    embedded: EmbeddingResult,
    scored: Scored,
    issues: Issues,
    notes: list[str],
    config: AuditConfig,
    run: _Run,
    reviewed: Reviewed | None = None,
) -> AuditResult:
    """The report's tables, its summary and run.json."""
    with run.timer.stage("report"):
        consensus = scored.consensus
        issue_columns = issues.found.columns()
        if reviewed is not None:
            issue_columns["verified"] = reviewed.states  # -1 not reviewed, 0 verified right, 1 verified wrong
        names = scored.prompt_names if config.data.classes_file is not None else None  # the file's names
        table = samples_table(
            dataset.samples, dataset.classes, scored.labels, scored.results, consensus, issue_columns, names
        )
        classes = classes_table(
            dataset.classes,
            scored.prompt_names,
            scored.labels,
            consensus,
            embedded.vectors,
            scored.class_embeddings,
            joint=cached_class_joint(scored.labels, consensus.pred_probs, scored.score_cache),
        )
        skipped = pd.DataFrame([s.as_dict() for s in dataset.skipped], columns=["path", "reason", "stage"])
        summary = build_summary(
            data,
            dataset,
            EncoderSummary(encoder.identity, encoder.description, int(embedded.vectors.shape[1])),
            scored.labels,
            scored.results,
            consensus,
            issues,
            dataset.warnings + notes,
            config,
            scored.estimate,
        )
        if reviewed is not None and reviewed.states is not None:
            settled = verification.verified_summary(reviewed.states, reviewed.source)
            summary = dataclasses.replace(summary, verified=settled)
    return AuditResult(
        samples=table,
        classes=classes,
        summary=summary,
        skipped=skipped,
        embeddings=embedded.vectors,
        tables=issues.found.tables(),
        run=run_info(run, embedded, scored, issues, encoder),
    )


def dataset_summary(data: str | Path | storage.Location | pd.DataFrame, dataset: Dataset) -> DatasetSummary:
    """summary.json's ``dataset`` section for ``data`` as discovered (and embedded) into ``dataset``."""
    return DatasetSummary(
        source=str(data) if not isinstance(data, pd.DataFrame) else "<DataFrame>",
        kind=dataset.kind,
        modality=dataset.modality,
        n_samples=int(len(dataset.samples)),
        n_classes=len(dataset.classes),
        ignored_files=dataset.ignored_files,
    )


def build_summary(
    data: str | Path | storage.Location | pd.DataFrame,
    dataset: Dataset,
    encoder: EncoderSummary,
    labels: np.ndarray,
    results: dict[str, ScorerResult],
    consensus: Consensus,
    issues: Issues,
    warnings: list[str],
    config: AuditConfig,
    estimate: ErrorEstimate | None = None,
) -> Summary:
    """summary.json of an audit of ``data`` (``dataset`` as discovered and embedded, ``labels`` its class indices)."""
    error_rate = None
    if estimate is not None:
        assert config.scoring.estimate is not None
        error_rate = ErrorRateSummary(
            lower=round(estimate.lower, 6),
            upper=round(estimate.upper, 6),
            confidence=config.scoring.estimate.confidence,
            is_lower_bound=estimate.is_lower_bound,
            power_auroc=round(estimate.power.auroc, 4),
            power_recall=round(estimate.power.recall_at_cut, 4),
            warnings=list(estimate.warnings),
            details=dict(estimate.details),
        )
    return Summary(
        dataset=dataset_summary(data, dataset),
        classes=dataset.classes,
        encoder=encoder,
        methods=list(config.scoring.methods),
        method_settings={name: r.settings for name, r in results.items()},
        estimated_error_rate=round(consensus.estimated_error_rate, 6),
        n_flagged=int(consensus.is_issue.sum()),
        flagged_per_method={name: int(r.is_issue.sum()) for name, r in results.items()},
        issue_types=issues.found.counts(),
        check_sections=issues.found.sections(),
        neighbor_graph={k: v for k, v in issues.graph.settings.items() if k not in NEIGHBOR_TIMING_KEYS},
        confused_pairs=confused_pairs(labels, consensus.suggested, consensus.is_issue, dataset.classes),
        n_skipped=len(dataset.skipped),
        skipped=[s.as_dict() for s in dataset.skipped[:SKIPPED_LISTED]],
        warnings=warnings,
        seed=config.scoring.seed,
        engine=config.engine.name,
        data_spec=resolved_spec(config.data, dataset),
        error_rate_estimator=ERROR_RATE_ESTIMATOR if estimate is None else CALIBRATED_ESTIMATOR,
        error_rate=error_rate,
    )


def run_info(run: _Run, embedded: EmbeddingResult, scored: Scored, issues: Issues, encoder: Encoder) -> dict[str, Any]:
    """run.json: how this run went (times, cache hits), which two runs on the same inputs may differ in."""
    assert run.cache is not None
    return {
        "labelaudit_version": __version__,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "timings_s": _timings(run, encoder),
        "cache": {
            "dir": str(run.cache.folder) if run.cache.folder else None,
            "hits": embedded.n_cached,
            "embedded": embedded.n_embedded,
            "corrupt_shards_removed": run.cache.corrupt_shards,
        },
        "scores_from_cache": scored.from_cache,
        "cross_validation_folds_ran_on": scored.context.fold_runner.where,  # "ray": the probe's folds were Ray tasks
        "neighbor_graph": {
            "from_cache": scored.context.neighbors.loaded_from_cache if scored.context.neighbors else False,
            **{k: v for k, v in issues.graph.settings.items() if k in NEIGHBOR_TIMING_KEYS},
        },
        "model_loaded": not isinstance(encoder, LazyEncoder) or encoder.loaded,
        "platform": {"python": platform.python_version(), "torch": torch_version(), "device": _device(encoder)},
    }


def _timings(run: _Run, encoder: Encoder) -> dict[str, float]:
    """Each stage's seconds; a lazily loaded model's load time (spent inside the stage that first needed it)
    as load_model, absent when the model never loaded."""
    timings = dict(run.timer.timings)
    if isinstance(encoder, LazyEncoder) and encoder.load_seconds is not None:
        timings["load_model"] = encoder.load_seconds
    return timings


def _device(encoder: Encoder) -> str | None:
    """Where the model ran; None when it never loaded (every embedding and score came from the cache)."""
    if isinstance(encoder, LazyEncoder) and not encoder.loaded:
        return None
    return str(encoder.device)


def torch_version() -> str | None:
    """torch's version, from its package metadata: importing torch to ask would cost seconds on a cached run."""
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None
