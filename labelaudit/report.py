"""Report stage: scores -> samples table, classes table, summary; written atomically; shown in the terminal."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from .chunked import project, row_blocks
from .errors import LabelAuditError, io_reason
from .io import WRITING_MARKER, refuse_incomplete_report, write_json_atomic, write_table_atomic, write_text_atomic
from .issues import table_names, terminal_rows
from .summary import Summary

if TYPE_CHECKING:
    from .consensus import Consensus
    from .scorers import ScorerResult

TEXT_EXCERPT_CHARS = 200
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
# Every file an audit writes into --out: what marks a folder as holding a report, and whose temp files a
# killed run may leave. Each issue check's table (labelaudit.issues) is one of them.
REPORT_FILES = (
    "report.parquet",
    "report.csv",
    "classes.parquet",
    "classes.csv",
    SUMMARY_FILE,
    RUN_FILE,
    "skipped.csv",
    *(f"{stem}{suffix}" for stem in table_names() for suffix in (".parquet", ".csv")),
    "report.html",
)
# Written by earlier versions and removed by write_report: counted as report files, so that a user's own
# file of that name is protected by --overwrite like the others.
LEGACY_REPORT_FILES = ("skipped.parquet",)


def excerpt(text: str | None) -> str | None:
    if text is None:
        return None
    flat = " ".join(str(text).split())
    return flat if len(flat) <= TEXT_EXCERPT_CHARS else flat[: TEXT_EXCERPT_CHARS - 1] + "…"


def samples_table(
    samples: pd.DataFrame,
    classes: list[str],
    labels: np.ndarray,
    results: dict[str, ScorerResult],
    consensus: Consensus,
    extra: pd.DataFrame | None = None,
    class_names: list[str] | None = None,
) -> pd.DataFrame:
    """``extra``: further per-sample columns in discovery order (e.g. the neighbour issue types).
    ``class_names``: each class's name from a --classes file; where one differs from its key (``0`` ->
    ``HAM``), ``given_name`` and ``suggested_name`` follow the label columns, for every reader to show."""
    class_array = np.array(classes, dtype=object)
    frame = pd.DataFrame(
        {
            "sample_id": samples["sample_id"].astype(str).to_numpy(),
            "path": samples["path"].to_numpy(),
            "text": [excerpt(t) for t in samples["text"]],
            "given_label": class_array[labels],
            "suggested_label": class_array[consensus.suggested],
            "suggested_prob": consensus.suggested_prob.astype(np.float64),
            "consensus_score": consensus.score.astype(np.float64),
            "is_issue": consensus.is_issue.astype(bool),
            "content_hash": samples["content_hash"].to_numpy(),
        }
    )
    if consensus.error_probability is not None:
        # Calibrated P(this label is wrong): its mean is the estimated error rate (docs/method.md).
        frame.insert(
            frame.columns.get_loc("is_issue"), "error_probability", consensus.error_probability.astype(np.float64)
        )
    if class_names is not None and list(class_names) != list(classes):
        name_array = np.array(class_names, dtype=object)
        frame.insert(frame.columns.get_loc("given_label") + 1, "given_name", name_array[labels])
        frame.insert(frame.columns.get_loc("suggested_label") + 1, "suggested_name", name_array[consensus.suggested])
    for name, result in results.items():
        frame[f"{name}_score"] = result.quality.astype(np.float64)
        frame[f"{name}_issue"] = result.is_issue.astype(bool)
        frame[f"{name}_suggested"] = class_array[result.suggested]
    if extra is not None:
        for column in extra.columns:
            frame[column] = extra[column].to_numpy()
    frame = frame.sort_values(["consensus_score", "sample_id"], kind="mergesort").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame


def class_joint(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """cleanlab's estimate of the joint of given and true labels, (K, K); the per-class error rates read it."""
    from cleanlab.count import estimate_joint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(estimate_joint(labels, pred_probs))


def classes_table(
    classes: list[str],
    class_names: list[str],
    labels: np.ndarray,
    consensus: Consensus,
    embeddings: np.ndarray,
    class_embeddings: np.ndarray | None,
    joint: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per class; ``joint`` is ``class_joint(labels, consensus.pred_probs)`` if the caller has it."""
    k = len(classes)
    counts = np.bincount(labels, minlength=k)
    flagged = np.bincount(labels[consensus.is_issue], minlength=k)
    if joint is None and consensus.pred_probs is not None:
        joint = class_joint(labels, consensus.pred_probs)
    rows = []
    for c in range(k):
        row: dict[str, Any] = {
            "class": classes[c],
            "name": class_names[c],
            "count": int(counts[c]),
            "flagged": int(flagged[c]),
            "flagged_rate": float(flagged[c] / max(counts[c], 1)),
        }
        if joint is not None and joint[c].sum() > 0:
            off = joint[c].copy()
            row["estimated_error_rate"] = float(1.0 - off[c] / off.sum())
            off[c] = -1.0
            j = int(off.argmax())
            row["confused_with"] = classes[j] if off[j] > 0 else None
            row["confused_share"] = float(max(off[j], 0.0) / joint[c].sum())
        else:
            row.update({"estimated_error_rate": row["flagged_rate"], "confused_with": None, "confused_share": 0.0})
        if consensus.error_probability is not None and counts[c]:
            # The calibrated estimate's share of the class: class rates weighted by size add up to the headline.
            row["estimated_error_rate"] = float(consensus.error_probability[labels == c].mean())
        rows.append(row)
    frame = pd.DataFrame(rows)
    if class_embeddings is not None:
        margin = np.empty(len(labels), dtype=np.float32)
        correct = np.empty(len(labels), dtype=bool)
        for block in row_blocks(len(labels)):
            sims = project(embeddings[block], class_embeddings)
            rows, given = np.arange(len(sims)), labels[block]
            correct[block] = sims.argmax(axis=1) == given
            own = sims[rows, given].copy()
            sims[rows, given] = -np.inf
            margin[block] = own - sims.max(axis=1)
        frame["zeroshot_accuracy"] = [float(correct[labels == c].mean()) if counts[c] else np.nan for c in range(k)]
        frame["zeroshot_margin"] = [float(margin[labels == c].mean()) if counts[c] else np.nan for c in range(k)]
    return frame.sort_values(["estimated_error_rate", "class"], ascending=[False, True], kind="mergesort").reset_index(
        drop=True
    )


def confused_pairs(
    labels: np.ndarray, suggested: np.ndarray, is_issue: np.ndarray, classes: list[str], top: int = 10
) -> list[dict[str, Any]]:
    pairs: dict[tuple[int, int], int] = {}
    for given, sugg in zip(labels[is_issue].tolist(), suggested[is_issue].tolist(), strict=True):
        if given != sugg:
            pairs[(given, sugg)] = pairs.get((given, sugg), 0) + 1
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [{"given": classes[g], "suggested": classes[s], "count": n} for (g, s), n in ranked]


def prepare_output_dir(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready for a report, or raise LabelAuditError: before the audit's expensive work, so a
    folder that cannot take the report costs seconds, not a whole run."""
    if out.exists() and not out.is_dir():
        raise LabelAuditError(f"--out {out} exists and is not a folder")
    interrupted = (out / WRITING_MARKER).exists()
    ours = (*REPORT_FILES, *LEGACY_REPORT_FILES)
    if out.is_dir() and not interrupted and not overwrite and any((out / name).exists() for name in ours):
        raise LabelAuditError(f"{out} already holds a report; pass --overwrite to replace it, or choose another --out")
    reason = unwritable_folder(out)
    if reason is not None:
        raise LabelAuditError(
            f"--out {out}: cannot write the report there ({reason}); choose a folder you can write to"
        )
    _remove_stale_temp_files(out)


def unwritable_folder(folder: Path) -> str | None:
    """Create ``folder`` if needed and check that a file can be made in it; None when it can, else why not, in
    words (permissions alone do not tell: root, ACLs, read-only mounts, so a probe file is made and removed)."""
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(20, "it is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".labelaudit-probe-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return io_reason(exc)
    return None


def _remove_stale_temp_files(out: Path) -> None:
    """Temp files a killed run left beside the report files (io.atomic_path names them ``.<name>.*.tmp``);
    only these names are touched, never anything else in the folder."""
    for name in (*REPORT_FILES, WRITING_MARKER):
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def writing_report(out: Path) -> Iterator[None]:
    """Mark ``out`` while a report's files are written into it. Each file is atomic on its own; the set is
    not, so the folder holds WRITING_MARKER meanwhile and ``write_summary`` writes summary.json last: a folder
    with summary.json and no marker holds one complete run, and a run killed half-way leaves a marked folder
    that no reader mistakes for a report (old and new files side by side) and that the next audit replaces."""
    marker = out / WRITING_MARKER
    write_text_atomic(marker, "a labelaudit run is writing this report, or was stopped while writing it\n")
    (out / SUMMARY_FILE).unlink(missing_ok=True)  # scripts that read only summary.json must not see the old one
    yield
    marker.unlink()  # not reached when writing failed: the folder stays marked incomplete


def write_report(
    out: Path,
    samples: pd.DataFrame,
    classes: pd.DataFrame,
    skipped: pd.DataFrame,
    tables: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Write the report's tables as Parquet and CSV: samples, the issue checks' own tables, classes, skipped."""
    write_table_atomic(samples, out / "report")
    for stem, table in (tables or {}).items():
        write_table_atomic(table, out / stem)
    write_table_atomic(classes, out / "classes")
    write_table_atomic(skipped, out / "skipped")
    (out / "skipped.parquet").unlink(missing_ok=True)  # skipped files are a short list: CSV is enough


def write_tag_report(out: Path, samples: pd.DataFrame, classes: pd.DataFrame, skipped: pd.DataFrame, sep: str) -> None:
    """A multi-label report's tables: Parquet keeps the tag sets as lists, the CSV joins them with ``sep``. The
    HTML page reads single labels, so a report.html an earlier audit left here would describe another run."""
    from .io import write_atomic
    from .multilabel.tables import for_csv

    for stem, frame in (("report", samples), ("classes", classes)):
        write_atomic(out / f"{stem}.parquet", lambda tmp, f=frame: f.to_parquet(tmp, index=False, engine="pyarrow"))
        write_atomic(out / f"{stem}.csv", lambda tmp, f=frame: for_csv(f, sep).to_csv(tmp, index=False))
    write_atomic(out / "skipped.csv", lambda tmp: skipped.to_csv(tmp, index=False))
    for name in ("report.html", "skipped.parquet"):
        (out / name).unlink(missing_ok=True)
    for stem in table_names():  # an earlier single-label run's issue tables
        for suffix in (".parquet", ".csv"):
            (out / f"{stem}{suffix}").unlink(missing_ok=True)


def write_summary(out: Path, summary: Summary, run: dict[str, Any] | None = None) -> None:
    """run.json (timings), then summary.json: the file that says the report is complete goes last."""
    if run is not None:
        write_json_atomic(out / RUN_FILE, run)
    else:
        (out / RUN_FILE).unlink(missing_ok=True)  # an earlier run's timings would describe another run
    write_json_atomic(out / SUMMARY_FILE, summary.to_json())


def load_summary(folder: Path) -> Summary:
    """A report folder's summary.json; refuses a folder that is no complete labelaudit report.

    The one reader every command goes through (gate, export, apply, verify, estimate, view): a missing,
    damaged or unreadable file is a LabelAuditError naming it, never a traceback."""
    folder = Path(folder)
    summary_file = folder / SUMMARY_FILE
    if not folder.is_dir():
        raise LabelAuditError(f"report folder {folder} does not exist (run `labelaudit audit DATA --out {folder}`)")
    refuse_incomplete_report(folder)
    if not summary_file.is_file():
        raise LabelAuditError(f"{folder} is not a labelaudit report folder (no summary.json)")
    try:
        payload = json.loads(summary_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise _damaged(summary_file, exc) from None
    try:
        return Summary.from_json(payload, str(summary_file))
    except LabelAuditError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # valid JSON, wrong shape: edited by hand
        raise _damaged(summary_file, exc) from None


def _damaged(path: Path, exc: BaseException) -> LabelAuditError:
    reason = io_reason(exc)
    return LabelAuditError(
        f"cannot read {path} ({reason}): the report is damaged; run the audit again (with --overwrite) to rewrite it"
    )


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types (ArrowInvalid, OSError, ...) for a bad or missing file
        raise _damaged(path, exc) from None


def load_report(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, Summary]:
    """(samples, classes, summary) of a report folder, through ``load_summary``'s checks and messages."""
    summary = load_summary(folder)
    return _read_table(Path(folder) / "report.parquet"), _read_table(Path(folder) / "classes.parquet"), summary


def print_summary(
    console: Console,
    samples: pd.DataFrame,
    classes: pd.DataFrame,
    summary: Summary,
    top: int = 10,
    worst: int = 5,
) -> None:
    if summary.multilabel is not None:
        print_tag_summary(console, samples, classes, summary, top, worst)
        return
    n, dataset = summary.dataset.n_samples, summary.dataset
    head = Table(title="labelaudit summary", show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    head.add_row("samples", f"{n:,} in {dataset.n_classes} classes ({dataset.modality})")
    head.add_row("encoder", summary.encoder.description)
    head.add_row("methods", ", ".join(summary.methods))
    head.add_row("estimated label-error rate", summary.error_rate_text())
    if summary.error_rate is not None and summary.error_rate.power_auroc is not None:
        head.add_row("audit power", summary.audit_power_text())
    head.add_row("flagged", f"{summary.n_flagged or 0:,} of {n:,}")
    if summary.issue_types:
        for label, value in terminal_rows(summary.issue_types):
            head.add_row(label, value)
    if summary.n_skipped:
        head.add_row("skipped files", f"[yellow]{summary.n_skipped:,}[/] (listed in skipped.csv)")
    console.print(head)
    if summary.error_rate is not None:
        for warning in summary.error_rate.warnings:
            console.print(f"[yellow]note:[/] {warning}")

    flagged_rows = samples["issue_type"] != "" if "issue_type" in samples else samples["is_issue"]
    suspects = samples[flagged_rows].head(top)
    if len(suspects):
        table = Table(title=f"Top {len(suspects)} suspect labels", title_justify="left")
        for column in ("rank", "sample", "given", "suggested", "score", "issue"):
            table.add_column(column, justify="right" if column in ("rank", "score") else "left")
        named = "given_name" in suspects.columns
        for row in suspects.itertuples():
            table.add_row(
                str(row.rank),
                _short(row.sample_id),
                str(row.given_name if named else row.given_label),
                str(row.suggested_name if named else row.suggested_label),
                f"{row.consensus_score:.3f}",
                str(getattr(row, "issue_type", "label_error")),
            )
        console.print(table)
    else:
        console.print("[green]No suspect labels found.[/]")

    table = Table(title=f"{min(worst, len(classes))} worst classes", title_justify="left")
    for column in ("class", "count", "flagged", "est. error", "most confused with"):
        table.add_column(column, justify="right" if column in ("count", "flagged", "est. error") else "left")
    # Named classes (a --classes file's names differ from its keys) are shown by name, as in the suspects.
    names = dict(zip(classes["class"], classes["name"], strict=True)) if "given_name" in samples.columns else {}
    for row in classes.head(worst).itertuples():
        # A class confused with none reads back as NaN, not None, once the column also holds names.
        other = row.confused_with if isinstance(row.confused_with, str) and row.confused_with else None
        confused = f"{names.get(other, other)} ({row.confused_share:.0%})" if other else "-"
        shown = names.get(row[1], row[1])
        table.add_row(str(shown), str(row.count), str(row.flagged), f"{row.estimated_error_rate:.1%}", confused)
    console.print(table)


def print_tag_summary(
    console: Console, samples: pd.DataFrame, classes: pd.DataFrame, summary: Summary, top: int = 10, worst: int = 5
) -> None:
    """The terminal summary of a multi-label audit: both error rates, named; the suspect tag sets; the classes
    whose tags look most often missing or spurious."""
    tags = summary.multilabel
    assert tags is not None
    n, dataset = summary.dataset.n_samples, summary.dataset
    head = Table(title="labelaudit summary (multi-label)", show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    head.add_row("samples", f"{n:,} with tags from {dataset.n_classes} classes ({dataset.modality})")
    head.add_row("encoder", summary.encoder.description)
    head.add_row("methods", ", ".join(summary.methods))
    head.add_row(
        "est. sample error rate", f"{tags.estimated_sample_error_rate:.2%} ({tags.sample_error_rate_definition})"
    )
    head.add_row("est. pair error rate", f"{tags.estimated_pair_error_rate:.2%} ({tags.pair_error_rate_definition})")
    head.add_row("flagged samples", f"{summary.n_flagged or 0:,} of {n:,}")
    head.add_row("flagged tags", f"{tags.n_flagged_missing:,} missing, {tags.n_flagged_spurious:,} spurious")
    if summary.n_skipped:
        head.add_row("skipped files", f"[yellow]{summary.n_skipped:,}[/] (listed in skipped.csv)")
    console.print(head)
    suspects = samples[samples["is_issue"]].head(top)
    if len(suspects):
        table = Table(title=f"Top {len(suspects)} suspect tag sets", title_justify="left")
        for column in ("rank", "sample", "given", "missing", "spurious", "quality"):
            table.add_column(column, justify="right" if column in ("rank", "quality") else "left")
        for row in suspects.itertuples():
            table.add_row(
                str(row.rank),
                _short(row.sample_id),
                ", ".join(map(str, row.given_tags)) or "-",
                ", ".join(map(str, row.missing_tags)) or "-",
                ", ".join(map(str, row.spurious_tags)) or "-",
                f"{row.quality:.3f}",
            )
        console.print(table)
    else:
        console.print("[green]No suspect tags found.[/]")
    table = Table(title=f"{min(worst, len(classes))} worst classes", title_justify="left")
    for column in ("class", "given", "missing", "spurious", "missing rate", "spurious rate"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in classes.head(worst).itertuples():
        table.add_row(
            str(row[1]),
            str(row.count),
            str(row.flagged_missing),
            str(row.flagged_spurious),
            f"{row.missing_rate:.1%}",
            f"{row.spurious_rate:.1%}",
        )
    console.print(table)


def _short(value: str, width: int = 60) -> str:
    return value if len(value) <= width else "…" + value[-(width - 1) :]
