"""The verification workflow around :mod:`labelaudit.verify`'s statistics: a design drawn from a report, its
review queue, the reviewers' decisions joined back, the estimate written beside the report, and the verified
items read by the next audit.

Files, all under ``REPORT/verification/`` and all written atomically:

- ``frame-<design id>.parquet``: the sampling frame, one row per report row (sample_id, content_hash, given_label, rank,
  consensus score, flag, stratum, the model's error guess), so an estimate never depends on the report's
  ranking staying the same;
- ``design.json``: strata (size, drawn, inclusion probability, error guess), seed, the report's population
  digest, and every drawn item with its stratum; written last, it is what makes a design exist;
- ``estimate.json`` and ``verified.csv``: written by ``estimate``.

Nothing here imports torch: ``verify``, ``estimate`` and ``gate`` run in a second.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import verify as stats
from .errors import LabelAuditError, speaks_python
from .io import write_atomic, write_json_atomic
from .summary import Summary

VERIFY_DIR = "verification"
DESIGN_FILE = "design.json"
FRAME_PATTERN = "frame-{design_id}.parquet"  # one per design: a draw stopped half-way never mixes two
ESTIMATE_FILE = "estimate.json"
VERIFIED_FILE = "verified.csv"
DESIGN_FORMAT = "labelaudit-verify-design/1"
ESTIMATE_FORMAT = "labelaudit-verified-estimate/1"
# Extra columns of the CSV queue, after the ones `labelaudit export` writes: out of the reviewer's way.
DESIGN_COLUMNS = ["stratum", "stratum_size", "inclusion_probability"]
SKIPS_RULE = (
    "skipped items (unsure, or never returned) are treated as missing at random within their stratum: the "
    "stratum's reviewed items stand for them (the 'if all right / all wrong' figures bound what they could change)"
)
REMOVE_RULE = "`remove` counts as a wrong label (the sample belongs to no class as given)"
VERIFIED_COLUMNS = ["sample_id", "content_hash", "given_label", "verdict", "corrected_label", "decision", "stratum"]


def verification_dir(report_dir: Path) -> Path:
    return Path(report_dir) / VERIFY_DIR


# ---------------------------------------------------------------- the report


def read_report(report_dir: Path) -> tuple[pd.DataFrame, Summary]:
    """The report's samples table (rank order) and summary, with messages a user can act on."""
    from .report import load_report

    folder = Path(report_dir)
    samples, _, summary = load_report(folder)  # missing, damaged or foreign: a LabelAuditError naming the file
    required = ("sample_id", "given_label", "suggested_label", "consensus_score", "is_issue", "rank")
    missing = [c for c in required if c not in samples]
    if missing:
        raise LabelAuditError(f"{folder}/report.parquet has no {', '.join(missing)} column: is it a labelaudit report?")
    return samples.sort_values("rank", kind="mergesort").reset_index(drop=True), summary


def population_digest(sample_ids: Any, content_hashes: Any, given_labels: Any) -> str:
    """Identity of the audited population: the same samples with the same content and the same given labels.

    A verified estimate is about these rows; it stays valid when the ranking changes (a re-audit with other
    methods) and stops being valid when any sample, byte or label does."""
    rows = sorted(
        zip(
            (str(s) for s in sample_ids),
            ("" if h is None or (isinstance(h, float) and np.isnan(h)) else str(h) for h in content_hashes),
            (str(g) for g in given_labels),
            strict=True,
        )
    )
    digest = hashlib.sha256()
    for row in rows:
        digest.update("\x1f".join(row).encode("utf-8") + b"\x1e")
    return digest.hexdigest()


def report_population_digest(samples: pd.DataFrame) -> str:
    hashes = samples["content_hash"] if "content_hash" in samples else [None] * len(samples)
    return population_digest(samples["sample_id"], hashes, samples["given_label"])


# ---------------------------------------------------------------- design


@dataclass
class Design:
    frame: pd.DataFrame  # one row per report row, rank order, with its stratum
    strata: list[dict[str, Any]]
    picked: np.ndarray  # frame positions of the drawn items, in queue order
    payload: dict[str, Any] = field(default_factory=dict)


def plan_design(samples: pd.DataFrame, n: int, seed: int, population: str) -> Design:
    """Strata, allocation and the seeded draw for ``n`` items of a report's samples table."""
    if n < 1:
        raise LabelAuditError(f"--n must be 1 or more, got {n}")
    probability = samples["error_probability"].to_numpy() if "error_probability" in samples else None
    guess, source = stats.error_guess(
        samples["given_label"].astype(str).to_numpy(),
        samples["suggested_label"].astype(str).to_numpy(),
        samples["suggested_prob"].to_numpy() if "suggested_prob" in samples else np.full(len(samples), np.nan),
        samples["is_issue"].to_numpy(),
        probability,
    )
    strata, names = stats.make_strata(samples["is_issue"].to_numpy(), samples["rank"].to_numpy())
    sizes = np.bincount(strata, minlength=len(names))
    guesses = np.array([float(guess[strata == h].mean()) for h in range(len(names))])
    counts = stats.allocate(sizes, guesses, n)
    picked = stats.draw(strata, counts, seed)
    frame = pd.DataFrame(
        {
            "sample_id": samples["sample_id"].astype(str).to_numpy(),
            "content_hash": samples["content_hash"].to_numpy() if "content_hash" in samples else None,
            "given_label": samples["given_label"].astype(str).to_numpy(),
            "rank": samples["rank"].to_numpy(),
            "consensus_score": samples["consensus_score"].astype(np.float64).to_numpy(),
            "is_issue": samples["is_issue"].astype(bool).to_numpy(),
            "stratum": strata,
            "error_guess": guess,
        }
    )
    table = []
    for h, name in enumerate(names):
        ranks = frame.loc[strata == h, "rank"]
        table.append(
            {
                "stratum": h,
                "name": name,
                "rows": int(sizes[h]),
                "drawn": int(counts[h]),
                "inclusion_probability": float(counts[h] / sizes[h]) if sizes[h] else 0.0,
                "error_guess": round(float(guesses[h]), 6),
                "rank_first": int(ranks.min()),
                "rank_last": int(ranks.max()),
            }
        )
    items = [
        {"sample_id": frame.at[i, "sample_id"], "content_hash": _text(frame.at[i, "content_hash"]), "stratum": int(s)}
        for i, s in zip(picked.tolist(), strata[picked].tolist(), strict=True)
    ]
    design_id = hashlib.sha256(
        json.dumps([population, seed, n, [s["drawn"] for s in table], [i["sample_id"] for i in items]]).encode()
    ).hexdigest()[:16]
    payload = {
        "format": DESIGN_FORMAT,
        "labelaudit_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "design_id": design_id,
        "population_digest": population,
        "n_requested": n,
        "n_drawn": len(items),
        "seed": seed,
        "error_guess_source": source,
        "strata": table,
        "strata_rule": {"bands": list(stats.BANDS), "min_per_stratum": stats.MIN_PER_STRATUM},
        "allocation": "minimum expected variance under the model's per-stratum error guesses (floor "
        f"{stats.GUESS_FLOOR:g}), at least {stats.MIN_PER_STRATUM} per stratum",
        "items": items,
    }
    return Design(frame=frame, strata=table, picked=picked, payload=payload)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


@dataclass
class VerifyResult:
    design: Design
    files: list[Path]
    extras: list[Path]
    design_file: Path
    html: Path | None


@speaks_python()
def write_verify(
    report_dir: Path,
    n: int,
    out: Path | None,
    to: str = "csv",
    seed: int = 0,
    overwrite: bool = False,
    url_prefix: str | None = None,
) -> VerifyResult:
    """Draw the sample, write the queue in format ``to``, the frame and the design (last); re-render
    report.html with its Verify section."""
    from .export import ExportContext, class_names_of, get_exporter

    exporter = get_exporter(to)
    samples, summary = read_report(report_dir)
    out = Path(out) if out is not None else Path(f"verify-queue{exporter.suffix}")
    folder = verification_dir(report_dir)
    design_file = folder / DESIGN_FILE
    if not overwrite:
        for existing in (out, design_file):
            if existing.exists():
                raise LabelAuditError(
                    f"{existing} already exists; pass --overwrite to draw a new sample (reviews of the old one "
                    "no longer count once it is replaced), or choose another --out"
                )
    classes = [str(c) for c in summary.classes or sorted(samples["given_label"].astype(str).unique())]
    ctx = ExportContext(
        summary=summary,
        classes=classes,
        report_dir=Path(report_dir),
        url_prefix=url_prefix,
        names=class_names_of(samples),
    )
    if ctx.modality not in exporter.modalities:
        raise LabelAuditError(
            f"the {to} queue handles {' and '.join(exporter.modalities)} datasets; this report is {ctx.modality}"
        )
    design = plan_design(samples, n, seed, report_population_digest(samples))
    queue = samples.iloc[design.picked].reset_index(drop=True)
    by_stratum = {s["stratum"]: s for s in design.strata}
    strata = design.frame["stratum"].to_numpy()[design.picked]
    queue["stratum"] = [by_stratum[h]["name"] for h in strata]
    queue["stratum_size"] = [by_stratum[h]["rows"] for h in strata]
    queue["inclusion_probability"] = [round(by_stratum[h]["inclusion_probability"], 6) for h in strata]

    # The frame first, under a name of its own, then the queue, then design.json naming the frame: a run
    # stopped anywhere before design.json leaves the previous design whole.
    frame_name = FRAME_PATTERN.format(design_id=design.payload["design_id"])
    design.payload["frame_file"] = frame_name
    previous = _previous_frame(design_file)
    write_atomic(folder / frame_name, lambda tmp: design.frame.to_parquet(tmp, index=False, engine="pyarrow"))
    if to == "csv":
        from .export.csv_queue import queue_frame

        table = queue_frame(queue, list(summary.methods))
        table = pd.concat([table, queue[DESIGN_COLUMNS]], axis=1)
        write_atomic(out, lambda tmp: table.to_csv(tmp, index=False))
    else:
        exporter.write(queue, out, ctx)
    extras = exporter.write_extras(out, ctx)
    design.payload["queue"] = {"file": str(out), "format": to}
    write_json_atomic(design_file, design.payload)
    if previous is not None and previous != frame_name:
        (folder / previous).unlink(missing_ok=True)  # the replaced design's frame, written by verify
    html = _rerender(report_dir)
    return VerifyResult(design=design, files=[out], extras=extras, design_file=design_file, html=html)


def _previous_frame(design_file: Path) -> str | None:
    try:
        name = json.loads(design_file.read_text(encoding="utf-8")).get("frame_file")
    except (OSError, ValueError, AttributeError):
        return None
    # only a name this module writes, so a hand-edited design can never make verify delete another file
    return name if isinstance(name, str) and re.fullmatch(r"frame-[0-9a-f]{16}\.parquet", name) else None


def _rerender(report_dir: Path) -> Path | None:
    """report.html again, now with the Verify section; a page that cannot be rendered (say, a report
    written without one) is not a reason to fail the draw."""
    if not (Path(report_dir) / "report.html").exists():
        return None
    from .html import render_report

    return render_report(report_dir)


def load_design(report_dir: Path, samples: pd.DataFrame | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """The design and its frame; with ``samples``, refused when they are of another population."""
    folder = verification_dir(report_dir)
    design_file = folder / DESIGN_FILE
    if not design_file.is_file():
        raise LabelAuditError(f"{report_dir} has no verification sample yet: run `labelaudit verify {report_dir}`")
    try:
        design = json.loads(design_file.read_text(encoding="utf-8"))
        frame = pd.read_parquet(folder / str(design["frame_file"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabelAuditError(f"cannot read the verification design in {folder}: {exc}") from None
    if not isinstance(design, dict) or design.get("format") != DESIGN_FORMAT:
        raise LabelAuditError(f"{design_file} is not a labelaudit verification design")
    if samples is not None and report_population_digest(samples) != design["population_digest"]:
        raise LabelAuditError(
            f"the verification sample in {folder} was drawn from another version of this report (other samples, "
            f"content or labels): run `labelaudit verify {report_dir} --overwrite` to draw a new one"
        )
    return design, frame


def design_rows(report_dir: Path, samples: pd.DataFrame) -> pd.DataFrame | None:
    """The drawn items as report rows, in queue order, for report.html; None without a matching design."""
    try:
        design, _ = load_design(report_dir, samples)
    except LabelAuditError:
        return None
    position = {sid: i for i, sid in enumerate(samples["sample_id"].astype(str))}
    rows = [position[item["sample_id"]] for item in design["items"] if item["sample_id"] in position]
    return samples.iloc[rows].reset_index(drop=True)


# ---------------------------------------------------------------- decisions -> verdicts


def read_verdicts(files: list[Path], design: dict[str, Any], frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per drawn item: its verdict (``right``, ``wrong``, ``unsure`` or ``missing``), the corrected
    label, the decision text and the file it came from; and how many decisions were about other samples.

    Decisions are read by `labelaudit apply`'s own readers (CSV queue, report.html's download, Label Studio
    JSON / JSON-MIN, CVAT XML, FiftyOne JSON). A decision about a sample whose content or given label differs
    from the design's refuses the whole estimate, like `apply` refuses it.
    """
    from .apply import DecisionError, _dedupe, read_decisions

    decisions = []
    problems: list[str] = []
    for file in files:
        found, trouble = read_decisions(Path(file))
        problems += [f"{file}: {p}" for p in trouble]
        for d in found:
            d.where = f"{file}: {d.where}"
        decisions += found
    decisions, contradictions = _dedupe(decisions)
    problems += contradictions
    rows = frame.set_index("sample_id")
    drawn = {item["sample_id"] for item in design["items"]}
    by_id = {}
    outside = 0
    for d in decisions:
        if d.sample_id not in drawn:
            outside += 1  # e.g. other suspects decided in report.html: not part of the random sample
            continue
        row = rows.loc[d.sample_id]
        known_hash = _text(row["content_hash"])
        if d.content_hash is not None and known_hash is not None and d.content_hash != known_hash:
            problems.append(f"{d.where} ({d.sample_id}): its content changed since `verify` drew it")
            continue
        if d.given_label is not None and d.given_label != str(row["given_label"]):
            problems.append(
                f"{d.where} ({d.sample_id}): labelled {d.given_label!r} in the decisions but "
                f"{row['given_label']!r} in the report"
            )
            continue
        by_id[d.sample_id] = d
    if problems:
        raise DecisionError(problems, ", ".join(str(f) for f in files))
    records = []
    for item in design["items"]:
        given = str(rows.loc[item["sample_id"], "given_label"])
        d = by_id.get(item["sample_id"])
        verdict, corrected = "missing", None
        if d is not None:
            if d.action == "keep" or (d.action == "relabel" and d.new_label == given):
                verdict = "right"
            elif d.action == "relabel":
                verdict, corrected = "wrong", d.new_label
            elif d.action == "remove":
                verdict = "wrong"
            else:
                verdict = "unsure"
        records.append(
            {
                "sample_id": item["sample_id"],
                "content_hash": item.get("content_hash"),
                "given_label": given,
                "verdict": verdict,
                "corrected_label": corrected,
                "decision": d.text if d is not None else None,
                "stratum": int(item["stratum"]),
                "source": d.where.rsplit(": ", 1)[0] if d is not None else None,
            }
        )
    return pd.DataFrame(records), outside


# ---------------------------------------------------------------- estimate


def _counts(frame: pd.DataFrame, verdicts: pd.DataFrame, n_strata: int) -> tuple[np.ndarray, ...]:
    sizes = np.bincount(frame["stratum"].to_numpy(), minlength=n_strata)
    strata = verdicts["stratum"].to_numpy()
    known = verdicts["verdict"].isin(["right", "wrong"]).to_numpy()
    wrong = (verdicts["verdict"] == "wrong").to_numpy()
    drawn = np.bincount(strata, minlength=n_strata)
    return sizes, drawn, np.bincount(strata[known], minlength=n_strata), np.bincount(strata[wrong], minlength=n_strata)


def compute_estimate(
    design: dict[str, Any],
    frame: pd.DataFrame,
    verdicts: pd.DataFrame,
    *,
    level: float = stats.LEVEL,
    draws: int = stats.DRAWS,
) -> dict[str, Any]:
    """Everything `estimate` reports, as a JSON-ready dict (see docs/verify.md for each field)."""
    n_strata = len(design["strata"])
    sizes, drawn, reviewed, errors = _counts(frame, verdicts, n_strata)
    skipped = drawn - reviewed
    rate = stats.estimate_rate(sizes, reviewed, errors, level, draws)
    all_right = stats.estimate_rate(sizes, drawn, errors, level, draws)
    all_wrong = stats.estimate_rate(sizes, drawn, errors + skipped, level, draws)
    names = [s["name"] for s in design["strata"]]
    flagged = np.array([name == "flagged" for name in names])
    warnings: list[str] = []
    for h in np.flatnonzero((reviewed == 0) & (sizes > 0)):
        warnings.append(
            f"stratum {names[h]!r} ({sizes[h]} rows) has no reviewed item: it counts at its worst case in the "
            "interval; review its items to narrow it"
        )
    strata_rows = []
    for h in range(n_strata):
        strata_rows.append(
            {
                "name": names[h],
                "rows": int(sizes[h]),
                "drawn": int(drawn[h]),
                "reviewed": int(reviewed[h]),
                "wrong": int(errors[h]),
                "skipped": int(skipped[h]),
                "error_rate": float(errors[h] / reviewed[h]) if reviewed[h] else None,
                "inclusion_probability": float(design["strata"][h]["inclusion_probability"]),
                "error_guess": design["strata"][h]["error_guess"],
            }
        )
    result: dict[str, Any] = {
        "format": ESTIMATE_FORMAT,
        "labelaudit_version": __version__,
        "population_digest": design["population_digest"],
        "design_id": design["design_id"],
        "level": level,
        "error_rate": rate,
        "n_samples": int(sizes.sum()),
        "drawn": int(drawn.sum()),
        "reviewed": int(reviewed.sum()),
        "right": int((verdicts["verdict"] == "right").sum()),
        "wrong": int(errors.sum()),
        "unsure": int((verdicts["verdict"] == "unsure").sum()),
        "not_returned": int((verdicts["verdict"] == "missing").sum()),
        "skips": {"rule": SKIPS_RULE, "if_all_right": all_right, "if_all_wrong": all_wrong},
        "remove_rule": REMOVE_RULE,
        "strata": strata_rows,
        "method": "stratified Horvitz-Thompson estimate; interval from per-stratum beta-binomial draws with "
        "split Clopper-Pearson priors, combined by Monte Carlo (docs/verify.md)",
        "draws": draws,
        "warnings": warnings,
    }
    if flagged.any():
        result["flagged"] = {
            "rows": int(sizes[flagged].sum()),
            **stats.flagged_precision_recall(sizes, reviewed, errors, flagged, level, draws),
        }
    result["items_to_halve"] = stats.items_to_halve(sizes, reviewed, errors, level)

    # Per class and the re-chosen cut work on rows: every report row, and the reviewed ones among them.
    position = {sid: i for i, sid in enumerate(frame["sample_id"])}
    known = verdicts[verdicts["verdict"].isin(["right", "wrong"])]
    rows = np.array([position[s] for s in known["sample_id"]], dtype=np.int64)
    is_reviewed = np.zeros(len(frame), dtype=bool)
    is_reviewed[rows] = True
    is_wrong = np.zeros(len(frame), dtype=bool)
    is_wrong[rows] = (known["verdict"] == "wrong").to_numpy()
    strata = frame["stratum"].to_numpy()
    result["classes"] = stats.class_rates(strata, frame["given_label"].to_numpy(), is_reviewed, is_wrong, level, draws)
    weights = sizes[strata[rows]] / np.maximum(reviewed[strata[rows]], 1)
    scores = frame["consensus_score"].to_numpy()[rows]
    cut = stats.choose_threshold(scores, is_wrong[rows], weights)
    if cut is not None:
        cut["rows_flagged"] = int((frame["consensus_score"].to_numpy() <= cut["max_consensus_score"]).sum())
        cut["current_flag_f1"] = stats.flag_f1(frame["is_issue"].to_numpy()[rows], is_wrong[rows], weights)
    result["threshold"] = cut
    return result


@dataclass
class EstimateResult:
    payload: dict[str, Any]
    verdicts: pd.DataFrame
    outside: int
    files: list[Path]


@speaks_python(verified="decision_files=[...]")
def write_estimate(
    report_dir: Path, decision_files: list[Path], *, level: float = stats.LEVEL, draws: int = stats.DRAWS
) -> EstimateResult:
    """Join the decisions to the design, estimate, write estimate.json and verified.csv beside the design."""
    if not decision_files:
        raise LabelAuditError("pass the reviewed decisions: --verified FILE (repeat it for several files)")
    if not 0.5 <= level < 1.0:
        raise LabelAuditError(f"--level is a confidence level between 0.5 and 1 (e.g. 0.95), got {level}")
    samples, summary = read_report(report_dir)
    design, frame = load_design(report_dir, samples)
    verdicts, outside = read_verdicts(decision_files, design, frame)
    payload = compute_estimate(design, frame, verdicts, level=level, draws=draws)
    payload["model_error_rate"] = float(summary.estimated_error_rate)
    payload["decisions"] = [str(f) for f in decision_files]
    payload["decisions_outside_sample"] = outside
    payload["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    folder = verification_dir(report_dir)
    reviewed = verdicts[verdicts["verdict"].isin(["right", "wrong"])].copy()
    names = {s["stratum"]: s["name"] for s in design["strata"]}
    reviewed["stratum"] = reviewed["stratum"].map(names)
    table = reviewed[VERIFIED_COLUMNS]
    write_atomic(folder / VERIFIED_FILE, lambda tmp: table.to_csv(tmp, index=False))
    write_json_atomic(folder / ESTIMATE_FILE, payload)
    return EstimateResult(payload, verdicts, outside, [folder / ESTIMATE_FILE, folder / VERIFIED_FILE])


def load_estimate(report_dir: Path, samples: pd.DataFrame, file: Path | None = None) -> dict[str, Any] | None:
    """The verified estimate of this report (``file``, default REPORT/verification/estimate.json), None when
    there is none; refused when it is about another population (the data changed since `estimate` ran)."""
    target = Path(file) if file is not None else verification_dir(report_dir) / ESTIMATE_FILE
    if not target.is_file():
        if file is not None:
            raise LabelAuditError(f"--estimate {target} not found (`labelaudit estimate` writes estimate.json)")
        return None
    try:
        payload = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabelAuditError(f"cannot read the verified estimate {target}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != ESTIMATE_FORMAT:
        raise LabelAuditError(f"{target} is not a labelaudit verified estimate")
    if payload.get("population_digest") != report_population_digest(samples):
        raise StaleEstimate(
            f"the verified estimate {target} was computed for another version of this data (other samples, "
            f"content or labels); draw and review a new sample: `labelaudit verify {report_dir} --overwrite`"
        )
    return payload


class StaleEstimate(LabelAuditError):
    """A verified estimate exists but describes another population."""


# ---------------------------------------------------------------- reuse by the next audit


def read_verified(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A verified.csv written by `labelaudit estimate` (or a DataFrame with its columns)."""
    if isinstance(source, pd.DataFrame):
        table = source.copy()
    else:
        path = Path(source)
        if not path.is_file():
            raise LabelAuditError(f"--verified {path} not found (it is REPORT/verification/verified.csv)")
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except (UnicodeDecodeError, ValueError) as exc:
            raise LabelAuditError(f"cannot read --verified {path}: {exc}") from None
    missing = [c for c in ("sample_id", "content_hash", "given_label", "verdict") if c not in table]
    if missing:
        raise LabelAuditError(
            f"--verified has no {', '.join(missing)} column: pass the verified.csv written by `labelaudit estimate`"
        )
    bad = sorted(set(table["verdict"].astype(str)) - {"right", "wrong"})
    if bad:
        raise LabelAuditError(f"--verified: unknown verdict(s) {', '.join(bad)} (right or wrong)")
    if "corrected_label" not in table:
        table["corrected_label"] = None
    return table


def verified_states(
    sample_ids: Any, content_hashes: Any, given_labels: Any, verified: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: -1 unknown, 0 verified right, 1 verified wrong; and the corrected label where one is known.

    A verdict applies to a row with the same sample_id *and* content_hash: changed content is another sample.
    A label corrected since (the given label is now the reviewer's corrected label) counts as verified right;
    any other change of label drops the verdict. These arrays are also what a calibration can use as
    known-clean and known-wrong anchors."""
    lookup = {}
    for record in verified.to_dict("records"):
        lookup[(str(record["sample_id"]), str(record["content_hash"]))] = record
    states = np.full(len(sample_ids), -1, dtype=np.int8)
    corrected = np.full(len(sample_ids), None, dtype=object)
    for i, (sid, chash, given) in enumerate(zip(sample_ids, content_hashes, given_labels, strict=True)):
        record = lookup.get((str(sid), str(chash)))
        if record is None:
            continue
        fixed = _text(record.get("corrected_label"))
        if str(given) == str(record["given_label"]):
            states[i] = 0 if record["verdict"] == "right" else 1
            corrected[i] = fixed if states[i] == 1 else None
        elif fixed is not None and str(given) == fixed:
            states[i] = 0
    return states, corrected


def apply_verified(consensus: Any, states: np.ndarray, corrected: np.ndarray, classes: list[str]) -> Any:
    """The consensus with verified rows settled: right ones never flagged, wrong ones flagged with the
    reviewer's label (probability 1) as the suggestion. ``consensus`` is a ``consensus.Consensus``."""
    from dataclasses import replace

    is_issue = np.where(states == 0, False, np.where(states == 1, True, consensus.is_issue))
    suggested = consensus.suggested.copy()
    suggested_prob = consensus.suggested_prob.copy()
    index = {c: k for k, c in enumerate(classes)}
    for i in np.flatnonzero(states == 1):
        if corrected[i] in index:
            suggested[i] = index[corrected[i]]
            suggested_prob[i] = 1.0
    # The rate stays the estimate's: it already counted the verified rows as known right or wrong.
    return replace(consensus, is_issue=is_issue, suggested=suggested, suggested_prob=suggested_prob)


def verified_summary(states: np.ndarray, source: str) -> dict[str, Any]:
    return {
        "file": source,
        "matched": int((states >= 0).sum()),
        "right": int((states == 0).sum()),
        "wrong": int((states == 1).sum()),
    }


# ---------------------------------------------------------------- terminal


def _span(value: dict[str, float]) -> str:
    return f"{value['estimate']:.1%}  ({value['lower']:.1%} to {value['upper']:.1%})"


def print_estimate(console: Any, payload: dict[str, Any]) -> None:
    """The estimate as rich tables on ``console`` (stderr in the CLI)."""
    from rich.table import Table

    level = f"{payload['level']:.0%}"
    head = Table(title="Verified label-error estimate", show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    head.add_row(f"error rate ({level} interval)", _span(payload["error_rate"]))
    head.add_row("model's estimate (report)", f"{payload['model_error_rate']:.1%}")
    head.add_row(
        "reviewed",
        f"{payload['reviewed']} of {payload['drawn']} drawn ({payload['wrong']} wrong, {payload['right']} right, "
        f"{payload['unsure']} unsure, {payload['not_returned']} not returned) from {payload['n_samples']:,} samples",
    )
    skipped = payload["unsure"] + payload["not_returned"]
    if skipped:
        skips = payload["skips"]
        head.add_row(
            "if the skipped were",
            f"all right: {_span(skips['if_all_right'])}; all wrong: {_span(skips['if_all_wrong'])}",
        )
    flagged = payload.get("flagged")
    if flagged:
        if "precision" in flagged:
            head.add_row(f"flag precision ({flagged['rows']:,} flagged)", _span(flagged["precision"]))
        if "recall" in flagged:
            head.add_row("flag recall", _span(flagged["recall"]))
    more = payload.get("items_to_halve")
    if more:
        head.add_row("to halve the interval", f"review about {more:,} more items (drawn the same way)")
    cut = payload.get("threshold")
    if cut:
        head.add_row(
            "re-chosen flag threshold",
            f"consensus_score <= {cut['max_consensus_score']:.4f}: {cut['rows_flagged']:,} rows, est. precision "
            f"{cut['precision']:.0%}, recall {cut['recall']:.0%}, F1 {cut['f1']:.2f} (today's flag: F1 "
            f"{cut['current_flag_f1']:.2f}; chosen on the same items, so optimistic)",
        )
    console.print(head)

    strata = Table(title="Strata", title_justify="left")
    for column in ("stratum", "rows", "drawn", "reviewed", "wrong", "rate", "model guessed"):
        strata.add_column(column, justify="left" if column == "stratum" else "right")
    for s in payload["strata"]:
        rate = "-" if s["error_rate"] is None else f"{s['error_rate']:.1%}"
        strata.add_row(
            s["name"],
            f"{s['rows']:,}",
            str(s["drawn"]),
            str(s["reviewed"]),
            str(s["wrong"]),
            rate,
            f"{s['error_guess']:.1%}",
        )
    console.print(strata)
    if payload["classes"]:
        table = Table(title=f"Per class (classes with {stats.MIN_PER_CLASS}+ reviewed items)", title_justify="left")
        for column in ("class", "rows", "reviewed", "wrong", f"error rate ({level} interval)"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for name, c in payload["classes"].items():
            table.add_row(name, f"{c['rows']:,}", str(c["reviewed"]), str(c["wrong"]), _span(c))
        console.print(table)
    rule = payload["remove_rule"]
    console.print(f"Skips: {payload['skips']['rule']}. {rule[0].upper()}{rule[1:]}.")
    if payload.get("decisions_outside_sample"):
        console.print(
            f"{payload['decisions_outside_sample']} decision(s) were about samples outside the drawn sample and "
            "were not counted (they were not drawn at random)."
        )
    for warning in payload["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
