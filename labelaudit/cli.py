"""Command line: one thin function per command over the Python API.

Exit codes: 0 success, 1 a quality gate failed, 2 a usage or input error, 130 interrupted (Ctrl-C), 143 stopped
by SIGTERM.
"""

from __future__ import annotations

import inspect
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .config import (
    CACHE_DIR_ENV,
    DEFAULT_CACHE_DIR,
    AuditConfig,
    DataSpec,
    EmbedSpec,
    EncoderSpec,
    EngineSpec,
    ScoringSpec,
)
from .engines import ENGINES
from .errors import SPEAKING_TO_CLI, AuditInterrupted, LabelAuditError, Terminated
from .estimate import EstimateSettings
from .export import EXPORTERS
from .scorers import DEFAULT_METHODS, parse_methods
from .scorers.confident import ConfidentSettings
from .scorers.deft import EMBEDDING_LR, PROMPT_LR, DeftSettings


def _without_flag_types(params: list[typer.core.TyperOption | typer.core.TyperArgument]) -> list:
    """A flag takes no value, so --help shows no type beside it: typer 0.29 prints `<bool>` beside every flag
    (--json, --quiet, --help), which reads as if it wanted one. An empty metavar is what typer shows instead."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Command(typer.core.TyperCommand):
    def get_params(self, ctx: typer.Context) -> list:  # type: ignore[override]
        return _without_flag_types(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    def get_params(self, ctx: typer.Context) -> list:  # type: ignore[override]
        return _without_flag_types(super().get_params(ctx))


app = typer.Typer(
    cls=_Group,
    name="labelaudit",
    help="Find wrong labels in a labelled dataset (image folder, text folder or CSV/Parquet manifest).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
DEFAULT_METHODS_SPEC = ",".join(DEFAULT_METHODS)
# audit's options in panels, as a user looks for them (32 options in one list hid the ones that matter).
DATA, MODEL, METHODS, OUTPUT, ENGINE = "Data", "Model", "Methods", "Output", "Engine and cache"
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, what a shell reports for a process SIGTERM ended


class ModalityChoice(str, Enum):
    image = "image"
    text = "text"


# --engine and --to choices come from the registries: a new engine or export format is no CLI change.
EngineChoice = Enum("EngineChoice", {name: name for name in ENGINES}, type=str)  # type: ignore[misc]
ExportFormat = Enum("ExportFormat", {name.replace("-", "_"): name for name in EXPORTERS}, type=str)  # type: ignore[misc]


class ErrorRateSource(str, Enum):
    model = "model"
    verified = "verified"
    auto = "auto"


class LowerBoundCut(str, Enum):
    headline = "headline"
    doubted = "doubted"


class LowerBoundRate(str, Enum):
    auto = "auto"
    isolated = "isolated"
    anchors = "anchors"


class MistakeSources(str, Enum):
    auto = "auto"
    uniform = "uniform"
    confusion = "confusion"


class EstimateBound(str, Enum):
    upper = "upper"
    point = "point"


def _version_callback(value: bool) -> None:
    if value:
        from .version import __version__

        typer.echo(f"labelaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Find wrong labels in a labelled dataset before anyone trains on it."""


@app.command()
def audit(
    data: Annotated[
        str,
        typer.Argument(
            help="Image folder, text folder (ROOT/<class>/<file>) or CSV/Parquet manifest; "
            "a path or an object-store URI (s3://bucket/dataset/manifest.parquet).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for report.parquet/.csv, classes, summary.json.", rich_help_panel=OUTPUT
        ),
    ] = Path("labelaudit-report"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a report already in --out.", rich_help_panel=OUTPUT)
    ] = False,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated scorers: deft, confident, zeroshot, knn.",
            # spaced, so that it wraps between names at 80 columns instead of after "default:"
            show_default=", ".join(DEFAULT_METHODS),
            rich_help_panel=METHODS,
        ),
    ] = DEFAULT_METHODS_SPEC,
    model: Annotated[
        str | None,
        typer.Option(
            help="open_clip model, a model-config .json, or st:<name-or-path> for a sentence-transformers text model.",
            show_default="ViT-B-32; text: a sentence-transformers model if no CLIP weights are cached",
            rich_help_panel=MODEL,
        ),
    ] = None,
    pretrained: Annotated[
        str | None,
        typer.Option(
            help="open_clip pretrained tag; 'random' for untrained weights.",
            show_default="laion2b_s34b_b79k",
            rich_help_panel=MODEL,
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Local open_clip state dict to load instead of a hub download.",
            show_default=False,
            rich_help_panel=MODEL,
        ),
    ] = None,
    modality: Annotated[
        ModalityChoice | None,
        typer.Option(help="Override detection of image vs text data.", show_default=False, rich_help_panel=DATA),
    ] = None,
    label_col: Annotated[
        str | None,
        typer.Option(
            help="Manifest label column.", show_default="label, given_label, class, target or y", rich_help_panel=DATA
        ),
    ] = None,
    path_col: Annotated[
        str | None,
        typer.Option(
            help="Manifest path column, relative to the manifest.",
            show_default="path, file, filepath, image, ...",
            rich_help_panel=DATA,
        ),
    ] = None,
    text_col: Annotated[
        str | None,
        typer.Option(
            help="Manifest text column.", show_default="text, sentence, content or document", rich_help_panel=DATA
        ),
    ] = None,
    id_col: Annotated[
        str | None,
        typer.Option(
            help="Manifest column with unique sample ids.",
            show_default="sample_id, id, uid, ... if unique",
            rich_help_panel=DATA,
        ),
    ] = None,
    classes: Annotated[
        Path | None,
        typer.Option(
            help="Class order and prompt names: lines of 'key,name' (or key<TAB>name, or name).",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    allow_outside_root: Annotated[
        bool,
        typer.Option(
            "--allow-outside-root",
            help="Read samples outside the dataset: manifest paths outside the manifest's folder, and symbolic "
            "links in a data folder that lead out of it (skipped by default).",
            rich_help_panel=DATA,
        ),
    ] = False,
    label_sep: Annotated[
        str | None,
        typer.Option(
            help="Multi-label: the label column holds several tags per row separated by this, e.g. '|' "
            "(a Parquet list column is found without it). See docs/multilabel.md.",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = DataSpec.label_sep,
    label_cols: Annotated[
        str | None,
        typer.Option(
            help="Multi-label: one-hot columns, one per class, comma separated.",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    allow_empty_tags: Annotated[
        bool,
        typer.Option(
            "--allow-empty-tags", help="Multi-label: a row with no tag is valid, not an error.", rich_help_panel=DATA
        ),
    ] = DataSpec.allow_empty_tags,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda, cuda:1 or mps.", rich_help_panel=MODEL)
    ] = EncoderSpec.device,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Samples per embedding batch.", rich_help_panel=ENGINE)
    ] = EmbedSpec.batch_size,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Image-decoding worker processes.",
            show_default="cores - 1",
            rich_help_panel=ENGINE,
        ),
    ] = None,
    # A string, not a Path: Path("s3://bucket") would collapse the "//" and point at a local folder "s3:".
    cache_dir: Annotated[
        str,
        typer.Option(
            envvar=CACHE_DIR_ENV,  # the flag, when given, wins over the environment
            help="Embedding cache folder or object-store URI, e.g. s3://bucket/cache (env LABELAUDIT_CACHE_DIR).",
            rich_help_panel=ENGINE,
        ),
    ] = DEFAULT_CACHE_DIR,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.", rich_help_panel=ENGINE)
    ] = False,
    engine: Annotated[
        EngineChoice,
        typer.Option(
            help="Where to embed: local (this process) or ray (a Ray cluster; needs the optional ray extra).",
            rich_help_panel=ENGINE,
        ),
    ] = EngineChoice(EngineSpec.name),
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join (auto, ray://head:10001).",
            show_default="start a local Ray",
            rich_help_panel=ENGINE,
        ),
    ] = None,
    ray_concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Embedding actors (one model each) for --engine ray.",
            show_default="1 per GPU, else 1",
            rich_help_panel=ENGINE,
        ),
    ] = None,
    max_pixels: Annotated[
        int, typer.Option(min=1, help="Skip images with more pixels than this.", rich_help_panel=ENGINE)
    ] = EmbedSpec.max_pixels,
    folds: Annotated[
        int, typer.Option(min=2, help="Cross-validation folds of the confident scorer.", rich_help_panel=METHODS)
    ] = ConfidentSettings.folds,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same report.", rich_help_panel=METHODS)
    ] = ScoringSpec.seed,
    deft_variant: Annotated[
        str,
        typer.Option(
            help="DeFT prompts: embedding (learned class vectors), prompt (soft prompts through the text tower) "
            "or auto.",
            rich_help_panel=METHODS,
        ),
    ] = DeftSettings.variant,
    deft_epochs: Annotated[
        int, typer.Option(help="DeFT training epochs.", rich_help_panel=METHODS)
    ] = DeftSettings.epochs,
    deft_ctx: Annotated[
        int, typer.Option(help="DeFT context vectors per prompt (prompt variant).", rich_help_panel=METHODS)
    ] = DeftSettings.n_ctx,
    deft_lr: Annotated[
        float | None,
        typer.Option(
            help="DeFT learning rate.",
            show_default=f"{EMBEDDING_LR} embedding, {PROMPT_LR} prompt",
            rich_help_panel=METHODS,
        ),
    ] = DeftSettings.lr,
    deft_folds: Annotated[
        int,
        typer.Option(help="DeFT cross-fitting folds (1 = train and score on all samples).", rich_help_panel=METHODS),
    ] = DeftSettings.folds,
    lower_bound_cut: Annotated[
        LowerBoundCut,
        typer.Option(
            help="When the estimate is only a lower bound, how deep to flag: headline (the errors it expects) or "
            "doubted (deeper, for labels made by rules or weak supervision; on clean data with hard classes it "
            "flags far more).",
            rich_help_panel=METHODS,
        ),
    ] = LowerBoundCut.headline,
    lower_bound_rate: Annotated[
        LowerBoundRate,
        typer.Option(
            help="When the estimate is only a lower bound, what it reports: isolated (what isolated mistakes "
            "explain), anchors (the rate the labels of the samples the methods are surest of imply, where that "
            "is more; for class-pair noise, one class labelled consistently as another) or auto (the anchors "
            "where they read more beyond their sampling error and the encoder separates the classes, else "
            "isolated).",
            rich_help_panel=METHODS,
        ),
    ] = LowerBoundRate.auto,
    neighbour_reading: Annotated[
        bool,
        typer.Option(
            "--neighbour-reading/--no-neighbour-reading",
            help="On data whose samples share their nearest neighbours' predicted class (80 % or more), let the "
            "estimate follow what the neighbours' labels imply (HOC), which models trained on the labels cannot "
            "learn away: labels made by rules; the ranking then leans on the neighbour vote too. "
            "--no-neighbour-reading keeps the models' readings and the plain consensus.",
            rich_help_panel=METHODS,
        ),
    ] = True,
    mistake_sources: Annotated[
        MistakeSources,
        typer.Option(
            help="Which samples the estimate's synthetic mistakes are made on: uniform (every sample alike), "
            "confusion (a class's samples as often as the data say the class is mislabelled; for noise that "
            "leaves one class, such as missed positives) or auto (confusion with two classes, else uniform).",
            rich_help_panel=METHODS,
        ),
    ] = MistakeSources.auto,
    fail_above: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 when the estimated label-error rate is above this rate in [0, 1] (0.05 = 5 %).",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    fail_on: Annotated[
        EstimateBound | None,
        typer.Option(
            help="What --fail-above judges: the estimate's point, or the upper end of its 95 % interval (exit 1 "
            "unless the audit rules out a rate above the limit; docs/gate.md). Default: the point.",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print summary.json, with run.json under 'run', to stdout instead of tables.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or tables.", rich_help_panel=OUTPUT)
    ] = False,
    verified: Annotated[
        Path | None,
        typer.Option(
            help="verified.csv from `labelaudit estimate`: reviewed-right samples are never flagged, "
            "reviewed-wrong ones are flagged with the reviewer's label (matched by sample id and content hash).",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
) -> None:
    """Audit the labels of DATA and write a ranked report of suspect labels."""
    from .limits import check_rate, exceeds

    check_rate("--fail-above", fail_above)  # before the audit: a bad limit must not cost a whole run
    if fail_on is not None and fail_above is None:
        raise LabelAuditError("--fail-on says which number --fail-above judges: pass --fail-above RATE with it")

    from . import audit as run_audit
    from .progress import Reporter
    from .report import print_summary

    config = AuditConfig(
        data=DataSpec(
            modality=modality.value if modality else None,
            label_col=label_col,
            path_col=path_col,
            text_col=text_col,
            id_col=id_col,
            classes_file=str(classes) if classes else None,
            allow_outside_root=allow_outside_root,
            label_sep=label_sep,
            label_cols=label_cols,  # type: ignore[arg-type]  # DataSpec splits "a,b,c"
            allow_empty_tags=allow_empty_tags,
        ),
        encoder=EncoderSpec(
            model=model, pretrained=pretrained, checkpoint=str(checkpoint) if checkpoint else None, device=device
        ),
        embed=EmbedSpec(
            batch_size=batch_size, workers=workers, max_pixels=max_pixels, cache_dir=None if no_cache else cache_dir
        ),
        engine=EngineSpec(name=engine.value, ray_address=ray_address, ray_concurrency=ray_concurrency),
        scoring=ScoringSpec(
            methods=tuple(parse_methods(methods)),
            seed=seed,
            settings={
                "confident": ConfidentSettings(folds=folds),
                "deft": DeftSettings(
                    variant=deft_variant, epochs=deft_epochs, n_ctx=deft_ctx, lr=deft_lr, folds=deft_folds
                ),
            },
            estimate=EstimateSettings(
                lower_bound_cut=lower_bound_cut.value,
                lower_bound_rate=lower_bound_rate.value,
                neighbour_min_purity=EstimateSettings.neighbour_min_purity if neighbour_reading else None,
                confused_sources=mistake_sources.value,
            ),
        ),
    )
    reporter = Reporter(enabled=not quiet and not json_out, console=err)
    try:
        with _sigterm_as_interrupt():
            result = run_audit(data, config, out=out, overwrite=overwrite, reporter=reporter, verified=verified)
    except KeyboardInterrupt as exc:
        # Said here, in the command: typer >= 0.20 turns a KeyboardInterrupt into a silent exit 130
        # before main() could explain what was saved.
        raise typer.Exit(_interrupted(exc)) from None
    if json_out:
        typer.echo(json.dumps({**result.summary.to_json(), "run": result.run}, indent=2, default=str))
    elif not quiet:
        print_summary(Console(), result.samples, result.classes, result.summary)
        if result.summary.n_skipped:
            err.print(f"[yellow]{result.summary.n_skipped} file(s) were skipped; see {out / 'skipped.csv'}[/]")
        err.print(f"Report written to [bold]{out}[/]")
    if fail_above is None:
        return
    from .gate import error_rate_name, judged_model_rate, model_estimate_of

    judged = judged_model_rate(
        str(out),
        result.estimated_error_rate,
        model_estimate_of(result.summary),
        None if fail_on is None else fail_on.value,
        flag="--fail-on",
    )
    if exceeds(judged.value, fail_above):
        what = judged.describe(error_rate_name(result.summary))
        err.print(f"[red]gate failed:[/] {what} {judged.value:.2%} is above --fail-above {fail_above:.2%}")
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def gate(
    report: Annotated[
        Path, typer.Argument(help="Report folder written by `labelaudit audit --out`.", show_default=False)
    ],
    max_error_rate: Annotated[
        float | None,
        typer.Option(
            help="Fail when the estimated label-error rate is above this (0.05 = 5 %); for a tag-set report, "
            "the sample error rate (share of samples with a wrong tag).",
            show_default=False,
        ),
    ] = None,
    max_class_error_rate: Annotated[
        float | None,
        typer.Option(help="Fail when any class's estimated error rate is above this.", show_default=False),
    ] = None,
    max_flagged: Annotated[
        int | None, typer.Option(min=0, help="Fail when more samples than this are flagged.", show_default=False)
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="An earlier report folder: fail when the error rate rose by more than --tolerance, "
            "and list samples newly flagged since.",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="With --baseline: allowed rise of the error rate (0.01 = one point).")
    ] = 0.0,
    max_new_flagged: Annotated[
        int | None,
        typer.Option(
            min=0, help="With --baseline: fail when more samples than this are newly flagged.", show_default=False
        ),
    ] = None,
    allow_different_baseline: Annotated[
        bool,
        typer.Option(
            "--allow-different-baseline",
            help="Compare with a baseline audited on another dataset, encoder or methods (refused otherwise).",
        ),
    ] = False,
    junit: Annotated[
        Path | None, typer.Option(help="Also write a JUnit XML file, one test case per limit.", show_default=False)
    ] = None,
    use: Annotated[
        ErrorRateSource,
        typer.Option(
            help="Which error rate --max-error-rate judges: model (the report's estimate), verified (from "
            "`labelaudit estimate`; refused when missing or stale) or auto (verified when there is a current one, "
            "else model). --baseline always compares the model's estimates.",
        ),
    ] = ErrorRateSource.model,
    on: Annotated[
        EstimateBound | None,
        typer.Option(
            help="Gate --max-error-rate on the upper end of the estimate's interval or on its point. Default: the "
            "upper end of a verified estimate, the point of the model's; --on upper with the model's fails unless "
            "the audit rules out a rate above the limit.",
            show_default=False,
        ),
    ] = None,
    estimate_file: Annotated[
        Path | None,
        typer.Option(
            "--estimate",
            help="The verified estimate to use (default REPORT/verification/estimate.json), e.g. one kept in the "
            "repository; refused unless it describes exactly the report's samples.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON to stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only failures.")] = False,
) -> None:
    """Exit 1 when a report exceeds a label-quality limit (for CI); 0 when within limits.

    Limits are inclusive: a value equal to its limit passes. A --baseline audited on another dataset, encoder
    or methods is refused (exit 2) unless --allow-different-baseline is given. When GITHUB_STEP_SUMMARY is set,
    a Markdown summary is appended to it.
    """
    from . import gate as gating

    result = gating.check_gate(
        report,
        max_error_rate=max_error_rate,
        max_class_error_rate=max_class_error_rate,
        max_flagged=max_flagged,
        baseline_dir=baseline,
        tolerance=tolerance,
        max_new_flagged=max_new_flagged,
        allow_different_baseline=allow_different_baseline,
        use=use.value,
        on=None if on is None else on.value,
        estimate_file=estimate_file,
    )
    for note in result.notes:
        err.print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
    for line in gating.warning_lines(result):
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if junit is not None:
        gating.write_junit(result, junit)
    gating.append_step_summary(result)
    if json_out:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    if not quiet or not result.passed:
        for line in gating.describe(result):
            err.print(
                ("[red]" if line.startswith("FAIL") else "[green]") + line + "[/]", highlight=False, soft_wrap=True
            )
        if not result.passed:
            for line in gating.worst_lines(result):
                err.print(escape(line), highlight=False, soft_wrap=True)
        if result.baseline_dir is not None:
            for line in gating.newly_lines(result, gating.NEWLY_FLAGGED_PRINTED):
                err.print(escape(line), highlight=False, soft_wrap=True)
        verdict = (
            "[green]gate passed[/]"
            if result.passed
            else "[red]gate failed:[/] " + ", ".join(c.name for c in result.failed)
        )
        err.print(verdict)
    if not result.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def export(
    report: Annotated[
        Path, typer.Argument(help="Report folder written by `labelaudit audit --out`.", show_default=False)
    ],
    to: Annotated[ExportFormat, typer.Option("--to", help="Queue format.")] = ExportFormat.csv,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Queue file (default relabel-queue.csv / .json / .xml); --split-by-class and --batch-size add "
            "-<class>-NNN before the suffix.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int | None, typer.Option(min=1, help="The N most suspect samples, flagged or not.", show_default=False)
    ] = None,
    max_score: Annotated[
        float | None,
        typer.Option(help="Samples with consensus score <= S (low = suspect), flagged or not.", show_default=False),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(help="Only samples whose given label is one of these (comma-separated).", show_default=False),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Split the queue into files of N samples.", show_default=False)
    ] = None,
    split_by_class: Annotated[bool, typer.Option("--split-by-class", help="One queue file per given label.")] = False,
    url_prefix: Annotated[
        str | None,
        typer.Option(
            help="Label Studio: image URL = prefix + path relative to the dataset root "
            "(default: /data/local-files/?d=<absolute path>).",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace queue files that already exist (refused otherwise).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the files written as JSON to stdout.")] = False,
) -> None:
    """Write the suspects of a report as a review queue (CSV, Label Studio, CVAT or FiftyOne).

    Without --top or --max-score the queue holds the samples the consensus flagged; rows are ordered by
    consensus score, most suspect first.
    """
    from .export import export as run_export

    result = run_export(
        report,
        to.value,
        out,
        top=top,
        max_score=max_score,
        classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        batch_size=batch_size,
        split_by_class=split_by_class,
        url_prefix=url_prefix,
        overwrite=overwrite,
    )
    if json_out:
        payload = {
            "format": result.format,
            "selection": result.selection,
            "rows": result.n_rows,
            "files": result.parts,
            "extras": [str(p) for p in result.extras],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    if result.n_rows == 0:
        err.print(f"[yellow]No samples matched ({result.selection}); wrote an empty queue.[/]")
    err.print(f"{result.n_rows} sample(s) ({result.selection}) -> {len(result.files)} {result.format} file(s):")
    for part in result.parts:
        err.print(f"  {part['file']} ({part['rows']} rows)", highlight=False, soft_wrap=True)
    for extra in result.extras:
        err.print(f"  {extra}", highlight=False, soft_wrap=True)


@app.command("apply")
def apply_decisions(
    decisions: Annotated[
        Path | None,
        typer.Argument(help="Reviewed CSV queue or Label Studio JSON export.", show_default=False),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="The audited dataset: folder or manifest.", show_default=False)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print the plan; change nothing.")] = False,
    undo: Annotated[
        Path | None,
        typer.Option(help="Restore the state before the apply that wrote this journal.", show_default=False),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(help="Where to write the journal (default: beside DECISIONS, timestamped).", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Manifest datasets: the corrected manifest (default: <name>.corrected.<ext>).", show_default=False
        ),
    ] = None,
    label_col: Annotated[
        str | None, typer.Option(help="Manifest label column, as at the audit.", show_default=False)
    ] = None,
    path_col: Annotated[
        str | None, typer.Option(help="Manifest path column, as at the audit.", show_default=False)
    ] = None,
    text_col: Annotated[
        str | None, typer.Option(help="Manifest text column, as at the audit.", show_default=False)
    ] = None,
    id_col: Annotated[str | None, typer.Option(help="Manifest id column, as at the audit.", show_default=False)] = None,
    modality: Annotated[
        ModalityChoice | None, typer.Option(help="As at the audit, if it was overridden.", show_default=False)
    ] = None,
    allow_outside_root: Annotated[
        bool, typer.Option("--allow-outside-root", help="Manifests: accept paths outside the manifest's folder.")
    ] = False,
    label_sep: Annotated[
        str | None,
        typer.Option(
            help="Multi-label manifest: the separator between tags in the label column, as at the audit "
            "(--report reads it from the report).",
            show_default=False,
        ),
    ] = DataSpec.label_sep,
    label_cols: Annotated[
        str | None,
        typer.Option(help="Multi-label manifest: the one-hot columns, as at the audit.", show_default=False),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="The audit's report folder: read the dataset as the audit did (its path, manifest columns and "
            "modality come from its summary.json; options given here win).",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the journal as JSON to stdout.")] = False,
) -> None:
    """Apply reviewed decisions (keep, relabel:<class>, remove, unsure) to the dataset, or --undo them.

    Every row is checked first (path inside the dataset, known class, file unchanged since the audit); any
    problem refuses the whole file. Folders: files move to their new class folder or to DATA/_removed/, after
    a journal is written. Manifests: a new corrected manifest is written; the original is never edited.
    """
    from . import apply as applying

    if undo is not None:
        if decisions is not None or data is not None or report is not None:
            raise LabelAuditError(
                "--undo JOURNAL takes no --report" if report else "--undo JOURNAL takes no DECISIONS file or --data"
            )
        payload = applying.undo(undo, dry_run=dry_run)
        if json_out:
            typer.echo(json.dumps(payload, indent=2))
        restored = payload["undo"]["restored"]
        what = "would restore" if dry_run else "restored"
        if payload["kind"] == "folder":
            err.print(f"{what} {len(restored)} file(s) under {payload['root']}")
        else:
            err.print(f"{what} by deleting {payload['operations'][0]['path']}")
        return
    if decisions is None or (data is None and report is None):
        raise LabelAuditError("pass a DECISIONS file and --data DATA (or --undo JOURNAL)")
    plan, corrected = applying.plan_apply(
        decisions,
        data,
        out=out,
        label_col=label_col,
        path_col=path_col,
        text_col=text_col,
        id_col=id_col,
        modality=modality.value if modality else None,
        allow_outside_root=allow_outside_root,
        report=report,
        label_sep=label_sep,
        label_cols=label_cols,
    )
    counts = ", ".join(f"{n} {a}" for a, n in plan.counts.items() if n)
    if dry_run:
        payload = applying.journal_payload(plan, "dry-run")
    else:
        payload = applying.execute(plan, corrected, journal or applying.default_journal(decisions))
    if json_out:
        typer.echo(json.dumps(payload, indent=2))
    verb = "would" if dry_run else "did"
    if plan.kind == "folder":
        for op in plan.operations:
            err.print(f"  {op['decision']:<20} {op['src']} -> {op['dst']}", highlight=False, soft_wrap=True)
        err.print(f"{verb} move {len(plan.operations)} file(s) ({counts or 'no decisions'})")
    else:
        for change in plan.operations[0]["changes"]:
            err.print(f"  {change['decision']:<20} {change['sample_id']}", highlight=False, soft_wrap=True)
        err.print(f"{verb} write {plan.manifest_out} ({counts or 'no decisions'})", highlight=False, soft_wrap=True)
    if not dry_run:
        err.print(
            f"journal: {payload['journal']}  (undo with `labelaudit apply --undo {payload['journal']}`)",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def verify(
    report: Annotated[
        Path, typer.Argument(help="Report folder written by `labelaudit audit --out`.", show_default=False)
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="Items to review.")] = 200,
    to: Annotated[ExportFormat, typer.Option("--to", help="Queue format, as `labelaudit export` writes it.")] = (
        ExportFormat.csv
    ),
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Queue file (default verify-queue.csv / .json / .xml).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the draw; the same seed draws the same items.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing queue file and the report's verification sample.")
    ] = False,
    url_prefix: Annotated[
        str | None,
        typer.Option(help="Label Studio image URLs, as for `labelaudit export`.", show_default=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the design as JSON to stdout.")] = False,
) -> None:
    """Draw a stratified random sample of REPORT for a person to check, and write it as a review queue.

    More items come from the suspect strata and fewer from the clean bulk, with known inclusion probabilities,
    so `labelaudit estimate` can turn the reviewed items into an unbiased error rate with a 95 % interval. The
    design is kept in REPORT/verification/; report.html gets a Verify section with the same items.
    """
    from rich.table import Table

    from . import verification

    result = verification.write_verify(report, n, out, to.value, seed=seed, overwrite=overwrite, url_prefix=url_prefix)
    design = result.design.payload
    if json_out:
        typer.echo(json.dumps({k: v for k, v in design.items() if k != "items"}, indent=2))
        return
    table = Table(title=f"Verification sample of {report}", title_justify="left")
    for column in ("stratum", "rows", "ranks", "drawn", "inclusion prob.", "model's error guess"):
        table.add_column(column, justify="left" if column in ("stratum", "ranks") else "right")
    for s in result.design.strata:
        table.add_row(
            s["name"],
            f"{s['rows']:,}",
            f"{s['rank_first']:,}-{s['rank_last']:,}",
            f"{s['drawn']:,}",
            f"{s['inclusion_probability']:.3f}",
            f"{s['error_guess']:.1%}",
        )
    err.print(table)
    if design["n_drawn"] < n:
        err.print(f"[yellow]The report has only {design['n_drawn']} samples: every one is in the queue.[/]")
    err.print(f"{design['n_drawn']} item(s) -> {result.files[0]}", highlight=False, soft_wrap=True)
    for extra in result.extras:
        err.print(f"  {extra}", highlight=False, soft_wrap=True)
    err.print(f"design: {result.design_file}", highlight=False, soft_wrap=True)
    if result.html is not None:
        err.print(f"report.html has a Verify section with the same items: {result.html}", highlight=False)
    err.print(
        "Mark each item keep (right), relabel:<class> (wrong), remove (wrong, no class fits) or unsure, then run "
        f"`labelaudit estimate {report} --verified FILE`.",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def estimate(
    report: Annotated[
        Path, typer.Argument(help="Report folder with a sample drawn by `labelaudit verify`.", show_default=False)
    ],
    verified: Annotated[
        list[Path] | None,
        typer.Option(
            help="Reviewed decisions: the CSV queue, report.html's decisions.csv, a Label Studio JSON/JSON-MIN, "
            "CVAT XML or FiftyOne JSON export. Repeat for several files.",
            show_default=False,
        ),
    ] = None,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    json_out: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON to stdout.")] = False,
) -> None:
    """Turn the reviewed sample into an error rate with a confidence interval (and the flag's precision,
    recall, per-class rates and a re-chosen flag threshold); written to REPORT/verification/estimate.json."""
    from . import verification

    result = verification.write_estimate(report, list(verified or []), level=level)
    if json_out:
        typer.echo(json.dumps(result.payload, indent=2))
        return
    verification.print_estimate(err, result.payload)
    err.print(f"written: {', '.join(str(f) for f in result.files)}", highlight=False, soft_wrap=True)


@app.command()
def view(
    report: Annotated[
        Path, typer.Argument(help="Report folder written by `labelaudit audit --out`.", show_default=False)
    ],
    serve: Annotated[bool, typer.Option("--serve", help="Serve the folder on 127.0.0.1 instead.")] = False,
    port: Annotated[int, typer.Option(min=0, max=65535, help="--serve: port on 127.0.0.1 (0: any free one).")] = 8000,
    rerender: Annotated[bool, typer.Option("--rerender", help="Render report.html again even if it exists.")] = False,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a browser.")] = True,
) -> None:
    """Open the report's self-contained report.html (rendered first if missing), or serve it on localhost."""
    from .html import view as viewing

    page, rendered = viewing.ensure_page(report, rerender=rerender)
    if rendered:
        err.print(f"rendered {page}", highlight=False, soft_wrap=True)
    if not serve:
        typer.echo(str(page))
        if open_browser and not viewing.open_page(str(page)):
            err.print("[yellow]no browser could be started; open the file above by hand.[/]")
        return
    server = viewing.make_server(report, port)
    url = viewing.page_url(server)
    err.print(f"serving {report} on {url} (loopback only); Ctrl-C stops", highlight=False, soft_wrap=True)
    typer.echo(url)
    if open_browser:
        viewing.open_page(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def reflowed_help(doc: str | None) -> str | None:
    """A command's docstring with each paragraph on one line: rich prints single newlines as they are, so a
    docstring wrapped at the source's width breaks mid-sentence in a terminal of another width. Paragraphs
    (blank lines) and lines that start a list item stay."""
    if not doc:
        return doc
    paragraphs = []
    for block in inspect.cleandoc(doc).split("\n\n"):
        lines: list[str] = []
        for line in block.splitlines():
            if lines and not line.startswith(("- ", "* ", " ")):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


for _command in app.registered_commands:
    _command.help = _command.help or reflowed_help(_command.callback.__doc__ if _command.callback else None)
    if _command.cls is typer.core.TyperCommand:  # typer fills in its own class; a command that chose one keeps it
        _command.cls = _Command


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns (and exits with) the exit code."""
    import click

    speaking = SPEAKING_TO_CLI.set(True)  # error messages name flags, not Python keywords
    try:
        code = app(args=argv, standalone_mode=False)
    except LabelAuditError as exc:
        # escape: a message may hold brackets ('labelaudit[ray]', paths) that rich would eat as markup
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)  # a wrapped path cannot be copied or grepped
        code = EXIT_USAGE
    except (click.exceptions.Abort, typer.Abort) as exc:
        code = _interrupted(exc)
    except KeyboardInterrupt as exc:
        code = _interrupted(exc)
    except (click.ClickException, typer.TyperException) as exc:
        # typer >= 0.20 vendors click: its usage errors are not click's classes, but still exit 2.
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"[red]error:[/] {exc}")
        code = EXIT_USAGE
    finally:
        SPEAKING_TO_CLI.reset(speaking)
    code = code if isinstance(code, int) else 0
    if argv is None:
        sys.exit(code)
    return code


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt) for the block's duration, so that the audit handles
    it as it handles Ctrl-C: the partial shard is flushed and the message says what was saved."""

    def terminated(signum: int, frame: object) -> None:
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set a handler
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(exc: BaseException) -> int:
    # ``exc`` is the audit's AuditInterrupted, or a click Abort (other click/typer versions) caused by it.
    cause: BaseException | None = exc
    chain: list[BaseException] = []
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    code = EXIT_TERMINATED if any(isinstance(c, Terminated) for c in chain) else EXIT_INTERRUPTED
    cause = next((c for c in chain if isinstance(c, AuditInterrupted)), None)
    if cause is not None and str(cause):
        err.print(f"[yellow]{escape(str(cause))}[/]", soft_wrap=True)
    else:
        err.print(
            "[yellow]Interrupted.[/] Embeddings computed so far are saved in the cache; "
            "run the same command again to resume."
        )
    return code


if __name__ == "__main__":
    main()
