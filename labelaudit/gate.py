"""Quality gate over a finished report: absolute limits and regression against a baseline report.

``check_gate`` is a pure function over loaded reports; rendering (terminal, JSON, JUnit XML, GitHub
step-summary Markdown) lives beside it so the CLI stays a thin caller.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import LabelAuditError, speaks_python
from .io import write_text_atomic
from .limits import check_rate, exceeds
from .report import load_report
from .summary import Summary

NEWLY_FLAGGED_LISTED = 50  # in the step summary and JUnit text; --json lists every one
NEWLY_FLAGGED_PRINTED = 20  # on the terminal
ALLOW_DIFFERENT_BASELINE = "--allow-different-baseline"
LABEL_ERROR_RATE = "label-error rate"
# A tag-set report's estimated_error_rate is the share of samples with at least one wrong tag (summary.multilabel
# also has a per-pair rate): "label-error rate" would leave a reader guessing which of the two was judged.
SAMPLE_ERROR_RATE = "sample error rate (share of samples with a wrong tag)"


def error_rate_name(summary: Summary) -> str:
    """What a report's estimated_error_rate is, in words: LABEL_ERROR_RATE, or SAMPLE_ERROR_RATE for a tag set."""
    return SAMPLE_ERROR_RATE if summary.multilabel is not None else LABEL_ERROR_RATE


@dataclass
class Check:
    """One limit and how the report measured against it."""

    name: str
    description: str
    limit: float
    value: float
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class PowerFigure:
    auroc: float | None  # synthetic mistakes told from right labels (see estimate.AuditPower)
    recall_at_cut: float | None  # share of them the flag cut catches


@dataclass(frozen=True)
class ModelEstimate:
    """The report's calibrated estimate as the gate reads it (``--json``: the ``model_estimate`` object)."""

    estimate: float
    lower: float
    upper: float
    confidence: float
    is_lower_bound: bool
    audit_power: PowerFigure
    warnings: list[str]

    def interval_text(self) -> str:
        text = f"{self.confidence:.0%} interval {self.lower:.2%} to {self.upper:.2%}"
        if self.audit_power.auroc is not None:
            text += f"; audit power AUROC {self.audit_power.auroc:.2f}"
        return text


@dataclass(frozen=True)
class JudgedRate:
    """The rate an error-rate limit judges and which number it is, kept apart so that every message is built
    from the parts instead of by parsing a string."""

    value: float
    verified: bool = False  # False: the report's model estimate; True: the verified estimate (`labelaudit verify`)
    # Which end: None for the model's point; else words such as "upper end of the 95% interval" (--on upper),
    # or for a verified estimate "upper end of the 95% interval" / "point estimate".
    end: str | None = None

    @property
    def source(self) -> str:
        """``--json``'s ``error_rate_source``: "model", "model, upper end of the 95% interval", or
        "verified (upper end of the 95% interval)" / "verified (point estimate)"."""
        if self.verified:
            return f"verified ({self.end})"
        return "model" if self.end is None else f"model, {self.end}"

    def describe(self, rate_name: str) -> str:
        """The rate in words for a check line, e.g. "estimated label-error rate, upper end of the 95% interval"."""
        if self.verified:
            return f"verified {rate_name}, {self.end}"
        return f"estimated {rate_name}" + ("" if self.end is None else f", {self.end}")


@dataclass
class GateResult:
    report_dir: str
    passed: bool
    checks: list[Check]
    estimated_error_rate: float
    n_flagged: int
    n_samples: int
    worst_classes: list[dict[str, Any]]
    baseline_dir: str | None = None
    baseline_error_rate: float | None = None
    newly_flagged: list[dict[str, Any]] = field(default_factory=list)
    n_newly_flagged: int = 0
    baseline_warnings: list[str] = field(default_factory=list)
    # Which number --max-error-rate judged (None: the model's point). The regression always compares model points.
    judged: JudgedRate | None = None
    verified: dict[str, Any] | None = None  # the verified estimate's rate, interval and counts, when used
    notes: list[str] = field(default_factory=list)  # said on stderr: e.g. why auto fell back to the model
    # The report's calibrated estimate: point, interval, audit power, lower-bound flag and its caveats
    # (None for a report written before labelaudit estimated an interval).
    model_estimate: ModelEstimate | None = None
    # Which rate estimated_error_rate is: SAMPLE_ERROR_RATE for a tag-set report; None for a single-label one
    # (the label-error rate), left out of --json there so that its output keeps the bytes it had.
    error_rate_name: str | None = None

    @property
    def rate_name(self) -> str:
        return self.error_rate_name or LABEL_ERROR_RATE

    @property
    def error_rate_source(self) -> str:
        """What ``judged`` is, as ``--json`` names it (see ``JudgedRate.source``)."""
        return self.judged.source if self.judged is not None else "model"

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        # --json keeps the key and place it had: the judged rate's source where the field stands.
        payload = {
            ("error_rate_source" if key == "judged" else key): (self.error_rate_source if key == "judged" else value)
            for key, value in asdict(self).items()
        }
        payload["failed"] = [c.name for c in self.failed]
        if self.error_rate_name is None:
            del payload["error_rate_name"]
        return payload


def newly_flagged(samples: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Samples flagged now that were not flagged in the baseline.

    A sample matches its baseline row by sample_id or by content hash, so a file that was renamed or
    moved keeps its history; a sample with no match at all is reported as ``new``.
    """
    flagged_ids = set(baseline.loc[baseline["is_issue"], "sample_id"].astype(str))
    flagged_hashes = set(baseline.loc[baseline["is_issue"], "content_hash"].dropna().astype(str))
    known_ids = set(baseline["sample_id"].astype(str))
    known_hashes = set(baseline["content_hash"].dropna().astype(str))
    current = samples[samples["is_issue"]].copy()
    ids = current["sample_id"].astype(str)
    hashes = current["content_hash"].astype(str)
    was_flagged = ids.isin(flagged_ids) | hashes.isin(flagged_hashes)
    current = current[~was_flagged]
    known = ids[~was_flagged].isin(known_ids) | hashes[~was_flagged].isin(known_hashes)
    current.insert(0, "status", ["was not flagged" if k else "new" for k in known])
    return current


def _source(summary: Summary) -> str | None:
    source = summary.dataset.source
    if not source:
        return None
    text = str(source).rstrip("/")
    # "data", "data/" and "./data" name the same folder; a URI keeps its "//".
    return text if "://" in text else os.path.normpath(text)


def compare_baseline(summary: Summary, baseline: Summary) -> tuple[list[str], list[str]]:
    """What differs between a report's summary and its baseline's: (blocking, notes).

    Blocking differences make a regression check meaningless: another dataset (source or modality),
    another encoder or other methods flag other samples for reasons that have nothing to do with the
    labels, and classes that share nothing mean another dataset. Added or removed classes are a note:
    the rate still measures the same dataset, and a new noisy class is a regression worth catching.
    A field missing from either summary (older reports) is not compared.
    """
    blocking: list[str] = []
    notes: list[str] = []

    def differ(what: str, new: Any, old: Any) -> None:
        if new is not None and old is not None and new != old:
            blocking.append(f"{what}: baseline {old}, this report {new}")

    differ("dataset", _source(summary), _source(baseline))
    differ("modality", summary.dataset.modality or None, baseline.dataset.modality or None)
    differ("encoder", summary.encoder.identity or None, baseline.encoder.identity or None)
    new_methods, old_methods = summary.methods or None, baseline.methods or None
    differ(
        "methods",
        ",".join(sorted(map(str, new_methods))) if new_methods is not None else None,
        ",".join(sorted(map(str, old_methods))) if old_methods is not None else None,
    )
    if summary.classes and baseline.classes:
        new_classes, old_classes = set(map(str, summary.classes)), set(map(str, baseline.classes))
        if not new_classes & old_classes:
            blocking.append(
                f"classes: none in common (baseline {', '.join(sorted(old_classes))}; "
                f"this report {', '.join(sorted(new_classes))})"
            )
        else:
            if new_classes - old_classes:
                notes.append(f"classes added since the baseline: {', '.join(sorted(new_classes - old_classes))}")
            if old_classes - new_classes:
                notes.append(f"classes removed since the baseline: {', '.join(sorted(old_classes - new_classes))}")
    return blocking, notes


@speaks_python(baseline="baseline_dir=", estimate="estimate_file=")
def check_gate(
    report_dir: Path,
    *,
    max_error_rate: float | None = None,
    max_class_error_rate: float | None = None,
    max_flagged: int | None = None,
    baseline_dir: Path | None = None,
    tolerance: float = 0.0,
    max_new_flagged: int | None = None,
    worst: int = 5,
    allow_different_baseline: bool = False,
    use: str = "model",
    on: str | None = None,
    estimate_file: Path | None = None,
) -> GateResult:
    """Measure a report against the given limits. Raises LabelAuditError when no limit is given.

    ``use``: which error rate the error-rate limits judge: ``model`` (summary.json), ``verified`` (the report's
    verified estimate from `labelaudit estimate`) or ``auto`` (verified when a current one exists);
    ``estimate_file`` reads it from elsewhere than REPORT/verification/estimate.json (e.g. one kept in the
    repository for CI). ``on``: the ``upper`` end of the estimate's interval or its ``point``; by default
    the upper end of a verified estimate and the point of the model's."""
    if max_error_rate is None and max_class_error_rate is None and max_flagged is None and baseline_dir is None:
        raise LabelAuditError(
            "no limit to gate on: pass --max-error-rate, --max-class-error-rate, --max-flagged or --baseline"
        )
    if max_new_flagged is not None and baseline_dir is None:
        raise LabelAuditError("--max-new-flagged compares with a baseline: pass --baseline OLD_REPORT_DIR too")
    check_rate("--max-error-rate", max_error_rate)
    check_rate("--max-class-error-rate", max_class_error_rate)
    check_rate("--tolerance", tolerance)

    if use not in ("model", "verified", "auto") or on not in (None, "upper", "point"):
        raise LabelAuditError(f"--use is model, verified or auto and --on upper or point, got {use!r}, {on!r}")

    samples, classes, summary = load_report(Path(report_dir))
    model_rate = summary.estimated_error_rate
    rate_name = error_rate_name(summary)
    if estimate_file is not None and use == "model":
        raise LabelAuditError("--estimate is a verified estimate: pass --use verified (or auto) with it")
    model_estimate = model_estimate_of(summary)
    judged, verified, notes = _error_rate(report_dir, samples, model_rate, model_estimate, use, on, estimate_file)
    n_flagged = summary.n_flagged if summary.n_flagged is not None else int(samples["is_issue"].sum())
    names = _class_names(classes)
    worst_rows = _worst_classes(classes, names, worst)
    checks: list[Check] = []
    if max_error_rate is not None:
        checks.append(
            Check(
                "max-error-rate",
                judged.describe(rate_name),
                max_error_rate,
                judged.value,
                not exceeds(judged.value, max_error_rate),
            )
        )
    if max_class_error_rate is not None:
        over = classes[classes["estimated_error_rate"].map(lambda r: exceeds(float(r), max_class_error_rate))]
        top = float(classes["estimated_error_rate"].max()) if len(classes) else 0.0
        checks.append(
            Check(
                "max-class-error-rate",
                "worst per-class estimated " + ("pair error rate" if summary.multilabel is not None else "error rate"),
                max_class_error_rate,
                top,
                over.empty,
                ", ".join(
                    f"{names.get(str(c), c)} ({r:.1%})"
                    for c, r in zip(over["class"], over["estimated_error_rate"], strict=True)
                ),
            )
        )
    if max_flagged is not None:
        checks.append(
            Check(
                "max-flagged",
                "samples flagged",
                float(max_flagged),
                float(n_flagged),
                not exceeds(n_flagged, max_flagged),
            )
        )

    if model_estimate is not None and not judged.verified and max_error_rate is not None:
        notes = notes + [f"about the estimate: {w}" for w in model_estimate.warnings]
        if (
            judged.end is None
            and model_estimate.is_lower_bound
            and not exceeds(model_rate, max_error_rate)
            and exceeds(model_estimate.upper, max_error_rate)
        ):
            # The case a passing point says least about: said where the user reads the pass, with the way out.
            notes.append(
                f"the point passes, but it is a lower bound and the upper end of its interval, "
                f"{model_estimate.upper:.2%}, is above the limit: --on upper gates on that end "
                "(or gate on a verified estimate, docs/verify.md)"
            )
    result = GateResult(
        report_dir=str(report_dir),
        passed=True,
        checks=checks,
        estimated_error_rate=model_rate,
        n_flagged=n_flagged,
        n_samples=summary.dataset.n_samples,
        worst_classes=worst_rows,
        judged=judged,
        verified=verified,
        notes=notes,
        model_estimate=model_estimate,
        error_rate_name=rate_name if summary.multilabel is not None else None,
    )
    if baseline_dir is not None:
        base_samples, _, base_summary = load_report(Path(baseline_dir))
        blocking, notes = compare_baseline(summary, base_summary)
        if blocking and not allow_different_baseline:
            raise LabelAuditError(
                f"the baseline {baseline_dir} does not report on the same audit, so a regression check against it "
                "would mean nothing:\n" + "\n".join(f"  {b}" for b in blocking) + f"\nPass {ALLOW_DIFFERENT_BASELINE} "
                "to compare anyway, or point --baseline at a report of this dataset, encoder and methods."
            )
        result.baseline_warnings = blocking + notes
        base_rate = base_summary.estimated_error_rate
        fresh = newly_flagged(samples, base_samples)
        result.baseline_dir = str(baseline_dir)
        result.baseline_error_rate = base_rate
        result.n_newly_flagged = len(fresh)
        result.newly_flagged = [
            {
                "status": row["status"],
                "rank": int(row["rank"]),
                "sample_id": str(row["sample_id"]),
                "given_label": str(row["given_label"]),
                "suggested_label": str(row["suggested_label"]),
                "consensus_score": float(row["consensus_score"]),
            }
            for row in fresh.to_dict("records")
        ]
        checks.append(
            Check(
                "regression",
                f"estimated {rate_name} vs baseline {base_rate:.2%} (+ tolerance {tolerance:.2%})",
                base_rate + tolerance,
                model_rate,  # model against model: a baseline's rate is its model estimate
                not exceeds(model_rate, base_rate + tolerance),
            )
        )
        if max_new_flagged is not None:
            checks.append(
                Check(
                    "max-new-flagged",
                    "samples newly flagged since the baseline",
                    float(max_new_flagged),
                    float(len(fresh)),
                    not exceeds(len(fresh), max_new_flagged),
                )
            )
    result.passed = all(c.passed for c in checks)
    return result


def _error_rate(
    report_dir: Path,
    samples: pd.DataFrame,
    model_rate: float,
    model_estimate: ModelEstimate | None,
    use: str,
    on: str | None,
    file: Path | None = None,
) -> tuple[JudgedRate, dict[str, Any] | None, list[str]]:
    """The rate the error-rate limits judge and which number it is, the verified estimate's numbers when
    used, and notes for the user."""
    if use == "model":
        return judged_model_rate(str(report_dir), model_rate, model_estimate, on), None, []
    from .verification import StaleEstimate, load_estimate

    try:
        estimate = load_estimate(report_dir, samples, file)
    except StaleEstimate as exc:
        if use == "verified":
            raise
        note = f"{exc}. Gating on the model's estimate instead (--use auto)."
        return judged_model_rate(str(report_dir), model_rate, model_estimate, on), None, [note]
    if estimate is None:
        if use == "verified":
            raise LabelAuditError(
                f"{report_dir} has no verified estimate: run `labelaudit verify {report_dir}`, review the queue, "
                f"then `labelaudit estimate {report_dir} --verified FILE` (or gate with --use model)"
            )
        note = "no verified estimate in the report: gating on the model's estimate"
        return judged_model_rate(str(report_dir), model_rate, model_estimate, on), None, [note]
    on = on or "upper"  # a reviewed sample's interval is exact: its upper end is what it can vouch for
    interval = estimate["error_rate"]
    level = float(estimate.get("level", 0.95))
    value = float(interval["upper"] if on == "upper" else interval["estimate"])
    what = f"upper end of the {level:.0%} interval" if on == "upper" else "point estimate"
    verified = {
        "estimate": float(interval["estimate"]),
        "lower": float(interval["lower"]),
        "upper": float(interval["upper"]),
        "level": level,
        "reviewed": int(estimate["reviewed"]),
        "on": on,
    }
    return JudgedRate(value, verified=True, end=what), verified, []


def judged_model_rate(
    report: str, model_rate: float, model_estimate: ModelEstimate | None, on: str | None, flag: str = "--on"
) -> JudgedRate:
    """The model's rate a limit judges (``gate --max-error-rate``, ``audit --fail-above``) and what it is: its
    point by default; with ``on="upper"`` the upper end of its interval, for a gate that passes only when the
    audit cannot put the rate above the limit (labelling-rule noise the methods learn reads a low point; its
    upper end is where it shows, docs/method.md). ``report`` and ``flag`` name them in the error."""
    if on != "upper":
        return JudgedRate(model_rate)
    if model_estimate is None:
        raise LabelAuditError(
            f"{report} has no interval for its estimate (a tag-set audit has none, nor has a report of an older "
            f"labelaudit): judge its point with {flag} point"
        )
    return JudgedRate(model_estimate.upper, end=f"upper end of the {model_estimate.confidence:.0%} interval")


def model_estimate_of(summary: Summary) -> ModelEstimate | None:
    error_rate = summary.error_rate
    if error_rate is None:
        return None
    return ModelEstimate(
        estimate=summary.estimated_error_rate,
        lower=error_rate.lower,
        upper=error_rate.upper,
        confidence=error_rate.confidence,
        is_lower_bound=error_rate.is_lower_bound,
        audit_power=PowerFigure(error_rate.power_auroc, error_rate.power_recall),
        warnings=list(error_rate.warnings),
    )


def model_interval_text(result: GateResult) -> str:
    """The model estimate's interval and power, e.g. for a line that already shows the point."""
    assert result.model_estimate is not None
    return result.model_estimate.interval_text() + ("; a lower bound" if result.model_estimate.is_lower_bound else "")


def model_estimate_text(result: GateResult) -> str | None:
    """The model's estimate as people should read it, or None for a report without an interval."""
    m = result.model_estimate
    if m is None:
        return None
    return f"{'at least ' if m.is_lower_bound else ''}{m.estimate:.2%} ({m.interval_text()})"


def _class_names(classes: pd.DataFrame) -> dict[str, str]:
    """Label value -> class name, where the labels are codes with names (``--classes FILE``: the class table
    then has a ``name`` column); the names are what the audit's own tables show."""
    if "name" not in classes.columns:
        return {}
    return {str(c): str(n) for c, n in zip(classes["class"], classes["name"], strict=True) if pd.notna(n)}


def _worst_classes(classes: pd.DataFrame, names: dict[str, str], worst: int) -> list[dict[str, Any]]:
    rows = []
    for record in classes.head(worst).to_dict("records"):
        confused = record.get("confused_with")
        confused = None if confused is None or pd.isna(confused) else str(confused)
        rows.append(
            {
                "class": str(record["class"]),
                "name": names.get(str(record["class"])),
                "count": int(record["count"]),
                "flagged": int(record["flagged"]),
                "estimated_error_rate": float(record["estimated_error_rate"]),
                "confused_with": confused,
                "confused_with_name": None if confused is None else names.get(confused),
            }
        )
    return rows


def _fmt(check: Check, value: float) -> str:
    return f"{int(value)}" if check.name in ("max-flagged", "max-new-flagged") else f"{value:.2%}"


def describe(result: GateResult) -> list[str]:
    """Plain-text lines: one per check, then the worst classes and newly flagged samples."""
    lines = []
    for check in result.checks:
        verdict = "ok  " if check.passed else "FAIL"
        line = (
            f"{verdict} {check.name}: {check.description} {_fmt(check, check.value)} (limit {_fmt(check, check.limit)})"
        )
        if check.detail:
            line += f"; over the limit: {check.detail}"
        lines.append(line)
    if result.verified is not None:
        v = result.verified
        lines.append(
            f"     verified estimate {v['estimate']:.2%} ({v['level']:.0%} interval {v['lower']:.2%} to "
            f"{v['upper']:.2%}, {v['reviewed']} items reviewed); "
            f"the model's estimate is {result.estimated_error_rate:.2%}"
        )
    elif result.model_estimate is not None and any(c.name == "max-error-rate" for c in result.checks):
        after = next(i for i, c in enumerate(result.checks) if c.name == "max-error-rate") + 1
        lines.insert(after, f"     model estimate {model_estimate_text(result)}")
    return lines


def junit_xml(result: GateResult) -> str:
    """One JUnit test case per limit, so CI systems list each limit and its measured value natively."""
    suite = ET.Element(
        "testsuite",
        {
            "name": "labelaudit gate",
            "tests": str(len(result.checks)),
            "failures": str(len(result.failed)),
            "errors": "0",
            "skipped": "0",
        },
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("report_dir", result.report_dir),
        ("estimated_error_rate", f"{result.estimated_error_rate:.6f}"),
        ("n_flagged", str(result.n_flagged)),
        ("n_samples", str(result.n_samples)),
        ("baseline_dir", result.baseline_dir or ""),
        ("error_rate_source", result.error_rate_source),
        *(
            (
                ("estimated_error_rate_lower", f"{result.model_estimate.lower:.6f}"),
                ("estimated_error_rate_upper", f"{result.model_estimate.upper:.6f}"),
            )
            if result.model_estimate is not None
            else ()
        ),
    ):
        ET.SubElement(properties, "property", {"name": key, "value": value})
    for check in result.checks:
        case = ET.SubElement(suite, "testcase", {"classname": "labelaudit.gate", "name": check.name, "time": "0"})
        text = f"{check.description}: {_fmt(check, check.value)} (limit {_fmt(check, check.limit)})"
        if not check.passed:
            failure = ET.SubElement(case, "failure", {"message": text, "type": "LabelQualityGate"})
            failure.text = "\n".join(
                [text, *warning_lines(result), *worst_lines(result), *newly_lines(result, NEWLY_FLAGGED_LISTED)]
            )
        else:
            ET.SubElement(case, "system-out").text = text
    root = ET.Element("testsuites", {"name": "labelaudit", "tests": suite.get("tests", "0")})
    root.set("failures", suite.get("failures", "0"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def worst_lines(result: GateResult) -> list[str]:
    return ["worst classes:"] + [
        f"  {c.get('name') or c['class']}: {c['estimated_error_rate']:.1%} estimated error, {c['flagged']} of "
        f"{c['count']} flagged"
        + (f", most confused with {c.get('confused_with_name') or c['confused_with']}" if c["confused_with"] else "")
        for c in result.worst_classes
    ]


def newly_lines(result: GateResult, limit: int | None = None) -> list[str]:
    """The newly flagged samples, most suspect first: all of them, or ``limit`` and a "… N more" line."""
    if result.baseline_dir is None:
        return []
    colon = ":" if result.newly_flagged else "."
    shown = result.newly_flagged if limit is None else result.newly_flagged[:limit]
    lines = [f"{result.n_newly_flagged} sample(s) newly flagged since the baseline{colon}"] + [
        f"  {s['sample_id']}: {s['given_label']} -> {s['suggested_label']} ({s['status']})" for s in shown
    ]
    if len(shown) < result.n_newly_flagged:
        lines.append(f"  … {result.n_newly_flagged - len(shown)} more (every one is listed by --json)")
    return lines


def warning_lines(result: GateResult) -> list[str]:
    return [f"baseline differs: {w}" for w in result.baseline_warnings]


def markdown(result: GateResult) -> str:
    """GitHub Actions step summary."""
    icon = "✅" if result.passed else "❌"
    out = [
        f"### {icon} labelaudit gate {'passed' if result.passed else 'failed'}",
        "",
        f"Report `{result.report_dir}`: {result.n_samples:,} samples, {result.n_flagged:,} flagged, "
        f"estimated {result.rate_name} **{result.estimated_error_rate:.2%}**"
        + (f" ({model_interval_text(result)})" if result.model_estimate is not None else "")
        + (f" (baseline {result.baseline_error_rate:.2%})" if result.baseline_error_rate is not None else "")
        + ".",
    ]
    if result.verified is not None:
        v = result.verified
        assert result.judged is not None  # a verified estimate comes with the verified rate it judged
        out += [
            "",
            f"Verified {result.rate_name} **{v['estimate']:.2%}** ({v['level']:.0%} interval {v['lower']:.2%} to "
            f"{v['upper']:.2%}, {v['reviewed']} items reviewed); `--max-error-rate` judged the "
            f"{result.judged.end}.",
        ]
    out += [
        "",
        "| limit | measured | allowed | result |",
        "| --- | --- | --- | --- |",
    ]
    for c in result.checks:
        out.append(f"| {c.name} | {_fmt(c, c.value)} | {_fmt(c, c.limit)} | {'ok' if c.passed else '**failed**'} |")
    out += ["", "| worst class | est. error | flagged | most confused with |", "| --- | --- | --- | --- |"]
    for w in result.worst_classes:
        out.append(
            f"| {w['class']} | {w['estimated_error_rate']:.1%} | {w['flagged']} of {w['count']} | "
            f"{w['confused_with'] or '-'} |"
        )
    if result.baseline_dir is not None:
        if result.baseline_warnings:
            out += [""] + [f"> ⚠️ {line}  " for line in warning_lines(result)]
        out += ["", f"**{result.n_newly_flagged}** sample(s) newly flagged since the baseline."]
        if result.newly_flagged:
            out += ["", "| rank | sample | given | suggested | score | |", "| --- | --- | --- | --- | --- | --- |"]
            for s in result.newly_flagged[:NEWLY_FLAGGED_LISTED]:
                out.append(
                    f"| {s['rank']} | `{s['sample_id']}` | {s['given_label']} | {s['suggested_label']} | "
                    f"{s['consensus_score']:.3f} | {s['status']} |"
                )
            if result.n_newly_flagged > NEWLY_FLAGGED_LISTED:
                out += ["", f"… {result.n_newly_flagged - NEWLY_FLAGGED_LISTED} more (every one is listed by --json)."]
    return "\n".join(out) + "\n\n"


def write_junit(result: GateResult, target: Path) -> None:
    write_text_atomic(Path(target), junit_xml(result))


def append_step_summary(result: GateResult, environ: dict[str, str] | None = None) -> Path | None:
    """Append the Markdown summary to $GITHUB_STEP_SUMMARY when it is set; return the file written."""
    target = (environ if environ is not None else os.environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    # The runner owns this file and documents appending as the way to add to it; other steps' summaries
    # already in it must survive, so it is appended to rather than replaced.
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(markdown(result))
    return Path(target)
