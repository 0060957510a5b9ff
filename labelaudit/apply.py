"""Fold reviewed decisions back into the dataset, reversibly.

Every decision row is validated before anything changes; one bad row refuses the whole file with a message
per row, so a dataset is never half-applied. Folder datasets: files move (relabel -> new class folder,
remove -> ``ROOT/_removed/``), and a journal written *before* the first move lets ``undo`` put every byte
back. Manifest datasets: a new corrected manifest is written beside the original, never over it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from . import storage
from .config import DataSpec
from .discover import (
    MANIFEST_EXTENSIONS,
    ManifestColumns,
    is_hidden,
    label_text,
    manifest_file,
    read_manifest,
    resolve_columns,
    sample_ids,
)
from .errors import DataError, LabelAuditError, speaks_python
from .hashing import hash_text
from .io import write_atomic, write_json_atomic
from .storage import hash_file
from .version import __version__

REMOVED_DIR = "_removed"
ACTIONS = ("keep", "relabel", "remove", "unsure")
JOURNAL_FORMAT = "labelaudit-apply-journal/1"


class DecisionError(LabelAuditError):
    """Some decision rows cannot be applied; nothing was changed."""

    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(
            f"{len(problems)} decision(s) in {source} cannot be applied; nothing was changed:\n{listed}{more}"
        )


@dataclass
class Decision:
    where: str  # "line 7" or "task 3": how the user finds the row again
    sample_id: str
    action: str
    new_label: str | None = None
    given_label: str | None = None
    content_hash: str | None = None
    # Tag sets (docs/multilabel.md): ``retag`` sets the whole tag set to ``new_tags`` (Label Studio, CVAT);
    # ``accept`` adds ``add_tags`` and removes ``remove_tags`` (the CSV queue's columns).
    new_tags: tuple[str, ...] | None = None
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        if self.action == "retag":
            return "retag:" + "|".join(self.new_tags or ())
        if self.action == "accept":
            return "accept:" + " ".join([*(f"+{t}" for t in self.add_tags), *(f"-{t}" for t in self.remove_tags)])
        return f"relabel:{self.new_label}" if self.action == "relabel" else self.action


@dataclass
class Plan:
    kind: str  # "folder" | "manifest"
    root: str
    decisions_file: str
    operations: list[dict[str, Any]] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)
    unchanged: list[dict[str, str]] = field(default_factory=list)
    manifest_out: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- reading decisions


def parse_decision(raw: Any) -> tuple[str, str | None] | None:
    """``keep``, ``relabel:<class>``, ``remove``, ``unsure``; blank means not reviewed (None)."""
    if raw is None or (isinstance(raw, float) and pd.isna(raw)):
        return None
    text = str(raw).strip()
    if not text:
        return None
    head, sep, tail = text.partition(":")
    action = head.strip().lower()
    if action == "relabel":
        label = tail.strip()
        if not sep or not label:
            raise ValueError("'relabel' needs a class: relabel:<class>")
        return "relabel", label
    if action in ("keep", "remove", "unsure") and not sep:
        return action, None
    raise ValueError(f"unknown decision {text!r} (use keep, relabel:<class>, remove or unsure)")


def _optional(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
        return None
    return str(value).strip()


def read_decisions(path: Path, names: dict[str, str] | None = None) -> tuple[list[Decision], list[str]]:
    """Decisions from a reviewed CSV queue (or report.html's download), a Label Studio JSON / JSON-MIN export,
    a CVAT for images 1.1 XML or a FiftyOne samples JSON; also per-row problems found.

    A relabel may name the class by its --classes name (what the CVAT and FiftyOne exports show, what a
    reviewer may type in the CSV queue): it is read as the class's key, from ``names`` (class key -> name,
    e.g. the report's) and the names the file itself records; a name that could mean two classes is refused."""
    decisions, problems, found = _read_decisions(Path(path))
    return _to_class_keys(decisions, {**found, **(names or {})}, problems), problems


def _to_class_keys(decisions: list[Decision], names: dict[str, str], problems: list[str]) -> list[Decision]:
    if not names:
        return decisions
    kept: list[Decision] = []
    for d in decisions:
        if d.action == "relabel" and d.new_label is not None:
            key, problem = _key_of(d.new_label, names)
            if problem:
                problems.append(f"{d.where} ({d.sample_id}): {problem}; write relabel:<key> to say which")
                continue
            if key != d.new_label:  # a name, read as its class's key
                d.new_label = key
                if d.new_label == d.given_label:  # e.g. a FiftyOne ground_truth left at the given class's name
                    d.action, d.new_label = "keep", None
        elif d.action in ("accept", "retag"):  # a tag set: each tag by its key or its name
            translated: dict[str, tuple[str, ...]] = {}
            trouble = []
            for field_name in ("add_tags", "remove_tags", "new_tags"):
                tags = getattr(d, field_name)
                if tags is None:
                    continue
                keys = []
                for tag in tags:
                    key, problem = _key_of(tag, names)
                    if problem:
                        trouble.append(problem)
                    keys.append(key)
                translated[field_name] = tuple(keys)
            if trouble:
                problems.append(f"{d.where} ({d.sample_id}): {trouble[0]}; write the tag's key to say which")
                continue
            for field_name, keys in translated.items():
                setattr(d, field_name, keys)
        kept.append(d)
    return kept


def _key_of(label: str, names: dict[str, str]) -> tuple[str, str | None]:
    """The class key ``label`` means (a key, or the name of exactly one other class) and, where it could mean two
    classes, the problem instead."""
    named = sorted(k for k, n in names.items() if n == label and k != label)
    if named and label in names:
        return label, f"{label!r} is both a class key and the name of class {named[0]!r}"
    if len(named) > 1:
        return label, f"{label!r} names several classes ({', '.join(named)})"
    return (named[0] if named else label), None


def report_class_names(report: Path) -> dict[str, str]:
    """Class key -> name from a report's classes table (single-label and tag-set reports alike; empty when it
    has none)."""
    table = Path(report) / "classes.parquet"
    try:
        classes = pd.read_parquet(table, columns=["class", "name"])
    except (OSError, ValueError, KeyError):
        return {}
    return dict(zip(classes["class"].astype(str), classes["name"].astype(str), strict=True))


def _read_decisions(path: Path) -> tuple[list[Decision], list[str], dict[str, str]]:
    """The decisions as written, their problems and the class names (key -> name) the file records."""
    if not path.is_file():
        raise LabelAuditError(f"decisions file {path} not found")
    if path.suffix.lower() == ".xml":
        return (*_read_cvat(path), _cvat_class_names(path))
    if path.suffix.lower() == ".json":
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LabelAuditError(f"cannot read decisions JSON {path}: {exc}") from None
        if isinstance(payload, dict) and isinstance(payload.get("samples"), list):
            return (*_read_fiftyone(payload), _fiftyone_class_names(payload))
        return (*_read_labelstudio(path, payload), {})  # its choices store the keys already (alias)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise LabelAuditError(f"cannot read decisions CSV {path}: {exc}") from None
    missing = [c for c in ("sample_id", "decision") if c not in frame.columns]
    if missing:
        raise LabelAuditError(
            f"{path} has no {' or '.join(missing)} column: pass a queue written by `labelaudit export --to csv`"
        )
    decisions: list[Decision] = []
    problems: list[str] = []
    tag_queue = "add_tags" in frame.columns or "remove_tags" in frame.columns
    for number, record in enumerate(frame.to_dict("records"), start=2):
        where = f"line {number}"
        if tag_queue and str(record["decision"] or "").strip().lower() == "accept":
            sample_id = _optional(record["sample_id"])
            if sample_id is None:
                problems.append(f"{where}: empty sample_id")
                continue
            decisions.append(
                Decision(
                    where,
                    sample_id,
                    "accept",
                    given_label=_optional(record.get("given_tags")),
                    content_hash=_optional(record.get("content_hash")),
                    add_tags=_tag_cell(record.get("add_tags")),
                    remove_tags=_tag_cell(record.get("remove_tags")),
                )
            )
            continue
        try:
            parsed = parse_decision(record["decision"])
        except ValueError as exc:
            problems.append(f"{where} ({record.get('sample_id')}): {exc}")
            continue
        if parsed is None:
            continue
        sample_id = _optional(record["sample_id"])
        if sample_id is None:
            problems.append(f"{where}: empty sample_id")
            continue
        decisions.append(
            Decision(
                where,
                sample_id,
                parsed[0],
                parsed[1],
                _optional(record.get("given_tags" if tag_queue else "given_label")),
                _optional(record.get("content_hash")),
            )
        )
    from .export import class_names_of

    return decisions, problems, {**(class_names_of(frame) or {}), **_tag_names_of(frame)}


def _tag_names_of(frame: pd.DataFrame) -> dict[str, str]:
    """Class key -> name from a tag-set queue's given_tags / given_names (and suggested) columns, tag by tag."""
    names: dict[str, str] = {}
    for keys_column, names_column in (("given_tags", "given_names"), ("suggested_tags", "suggested_names")):
        if keys_column in frame.columns and names_column in frame.columns:
            for keys, shown in zip(frame[keys_column], frame[names_column], strict=True):
                key_list, name_list = _tag_cell(keys), _tag_cell(shown)
                if len(key_list) == len(name_list):
                    names.update(zip(key_list, name_list, strict=True))
    return names


TAG_CELL_SEPARATORS = ("|", ";", ",")  # what a reviewer may type between tags in add_tags / remove_tags


def _tag_cell(value: Any) -> tuple[str, ...]:
    text = _optional(value)
    if text is None:
        return ()
    for sep in TAG_CELL_SEPARATORS:
        if sep in text:
            return tuple(t.strip() for t in text.split(sep) if t.strip())
    return (text,)


def _choices(result: list[dict[str, Any]], control: str) -> list[str]:
    found: list[str] = []
    for item in result:
        if item.get("from_name") == control and item.get("type", "choices") == "choices":
            found.extend(str(c) for c in item.get("value", {}).get("choices", []))
    return found


def _read_labelstudio(path: Path, tasks: Any) -> tuple[list[Decision], list[str]]:
    """Decisions from a Label Studio "JSON" or "JSON-MIN" export, under one rule for several annotations.

    Full JSON nests a task's annotations; JSON-MIN writes one record per annotation, repeating the task's
    ``id``. Either way every submitted (not skipped) annotation of a task is read: when they agree they are
    one decision, when they disagree the task is refused and named, with each annotation's answer, so the
    reviewers settle it in Label Studio instead of labelaudit picking a winner.
    """
    from .export.labelstudio import LABEL_CONTROL, REVIEW_CONTROL

    if not isinstance(tasks, list):
        raise LabelAuditError(f"{path} is not a Label Studio export (expected a JSON list of tasks)")
    # task key -> (where, task data, [(annotation name, labels, review choices)]), in file order
    grouped: dict[Any, tuple[str, dict[str, Any], list[tuple[str, list[str], list[str]]]]] = {}
    problems: list[str] = []
    for number, item in enumerate(tasks, start=1):
        if not isinstance(item, dict):
            problems.append(f"task {number}: not a task object")
            continue
        task_id = item.get("id")
        key = ("id", task_id) if task_id is not None else ("number", number)
        where = f"task {task_id if task_id is not None else number}"
        if "data" in item:  # the full "JSON" export: the task's annotations nested in it
            data = item["data"] if isinstance(item["data"], dict) else {}
            answers = [
                (
                    _annotation_name(a.get("id"), a.get("completed_by")),
                    _choices(a.get("result") or [], LABEL_CONTROL),
                    _choices(a.get("result") or [], REVIEW_CONTROL),
                )
                for a in item.get("annotations", [])
                if isinstance(a, dict) and not a.get("was_cancelled")
            ]
        else:  # "JSON_MIN": one record per annotation, data fields and one key per control at the top level
            data = item
            answers = [
                (
                    _annotation_name(item.get("annotation_id"), item.get("annotator")),
                    _as_list(item.get(LABEL_CONTROL)),
                    _as_list(item.get(REVIEW_CONTROL)),
                )
            ]
        entry = grouped.setdefault(key, (where, data, []))
        entry[2].extend(answers)

    decisions: list[Decision] = []
    for where, data, answers in grouped.values():
        sample_id = _optional(data.get("sample_id"))
        if sample_id is None:
            problems.append(f"{where}: no sample_id in the task data (was it exported by labelaudit?)")
            continue
        given = _optional(data.get("given_label"))
        tagged = isinstance(data.get("given_tags"), list)  # a tag-set queue: the choices are the new tag set
        found: list[tuple[str, tuple[str, str | None]]] = []
        for name, labels, review in answers:
            if review:
                action = review[0].strip().lower()
                if action not in ("remove", "unsure"):
                    problems.append(f"{where} ({sample_id}): unknown review choice {review[0]!r}")
                    continue
                found.append((name, (action, None)))
            elif tagged:  # every choice cleared is an empty tag set, also an answer
                found.append((name, ("retag", "\n".join(sorted(set(labels))))))
            elif labels:
                found.append((name, ("keep", None) if labels[0] == given else ("relabel", labels[0])))
            # an annotation with neither choice answered nothing: not a decision
        distinct = {answer for _, answer in found}
        if len(distinct) > 1:
            listed = "; ".join(f"{name}: {_decision_text(answer)}" for name, answer in found)
            problems.append(
                f"{where} ({sample_id}): its {len(found)} annotations disagree ({listed}); "
                "settle it in Label Studio (update or delete one) and export again"
            )
            continue
        if found:
            action, label = found[0][1]
            content_hash = _optional(data.get("content_hash"))
            if action == "retag":
                tags = tuple(t for t in (label or "").split("\n") if t)
                decisions.append(Decision(where, sample_id, "retag", None, given, content_hash, new_tags=tags))
                continue
            decisions.append(Decision(where, sample_id, action, label, given, content_hash))
    return decisions, problems


def _annotation_name(annotation_id: Any, annotator: Any) -> str:
    if isinstance(annotator, dict):
        annotator = annotator.get("email") or annotator.get("id")
    name = f"annotation {annotation_id}" if annotation_id is not None else "an annotation"
    return f"{name} by {annotator}" if annotator not in (None, "") else name


def _decision_text(answer: tuple[str, str | None]) -> str:
    return f"relabel:{answer[1]}" if answer[0] == "relabel" else answer[0]


def _read_cvat(path: Path) -> tuple[list[Decision], list[str]]:
    """A "CVAT for images 1.1" annotation export of a queue from `export --to cvat`: each image's tag is its
    label now. CVAT has no "not looked at" state, so every image with a tag counts as reviewed (the same
    class as given: keep); an image whose tag was deleted is skipped (unsure)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise LabelAuditError(f"cannot read CVAT XML {path}: {exc}") from None
    if root.tag != "annotations":
        raise LabelAuditError(f"{path} is not a CVAT for images XML (no <annotations> root)")
    decisions: list[Decision] = []
    problems: list[str] = []
    for number, image in enumerate(root.iter("image"), start=1):
        where = f"image {image.get('id', number)}"
        tags = image.findall("tag")
        # CVAT resets a tag's attributes when its label is changed: the image name is the fallback id
        attributes = {a.get("name"): (a.text or "").strip() for tag in tags for a in tag.findall("attribute")}
        sample_id = attributes.get("sample_id") or _optional(image.get("name"))
        if sample_id is None:
            problems.append(f"{where}: no sample_id attribute and no image name")
            continue
        labels = {str(t.get("label")) for t in tags}
        if "verdict" in attributes:  # a tag-set queue (export of a multi-label report): the tags are the new set
            decisions.append(Decision(where, sample_id, "retag", new_tags=tuple(sorted(labels))))
            continue
        if len(labels) > 1:
            problems.append(f"{where} ({sample_id}): several tags ({', '.join(sorted(labels))}); keep one")
            continue
        if not labels:
            decisions.append(Decision(where, sample_id, "unsure"))
            continue
        decisions.append(Decision(where, sample_id, "relabel", labels.pop()))
    return decisions, problems


def _cvat_class_names(path: Path) -> dict[str, str]:
    """Key -> name of each label with a ``class_key`` attribute (a named export); CVAT's own export keeps
    the labels, with their attributes' default values, in its ``<meta>``."""
    import xml.etree.ElementTree as ET

    from .export.cvat import KEY_ATTRIBUTE

    names: dict[str, str] = {}
    for label in ET.parse(path).getroot().iter("label"):
        for attribute in label.iter("attribute"):
            if attribute.findtext("name") == KEY_ATTRIBUTE and label.findtext("name"):
                names[(attribute.findtext("default_value") or "").strip()] = str(label.findtext("name")).strip()
    return names


def _fiftyone_class_names(payload: dict[str, Any]) -> dict[str, str]:
    from .export.fiftyone import KEYS_INFO

    # Each sample's given class (kept by any FiftyOne round trip), then the dataset's info (when it was kept).
    names = {
        str(s["labelaudit_given_label"]): str(s["labelaudit_given_name"])
        for s in payload["samples"]
        if isinstance(s, dict) and s.get("labelaudit_given_label") is not None and s.get("labelaudit_given_name")
    }
    info = payload.get("info")
    keys = info.get(KEYS_INFO) if isinstance(info, dict) else None
    if isinstance(keys, dict):
        names.update({str(key): str(name) for name, key in keys.items()})
    return names


def _read_fiftyone(payload: dict[str, Any]) -> tuple[list[Decision], list[str]]:
    """A FiftyOne samples JSON (`export --to fiftyone-json`, or ``dataset.write_json`` after review): a
    ``ground_truth`` label other than the given one is a relabel; the sample tags ``remove`` and ``unsure``
    are those decisions. Like CVAT, every sample in the file counts as reviewed (unchanged: keep)."""
    decisions: list[Decision] = []
    problems: list[str] = []
    for number, sample in enumerate(payload["samples"], start=1):
        where = f"sample {number}"
        if not isinstance(sample, dict):
            problems.append(f"{where}: not a sample object")
            continue
        sample_id = _optional(sample.get("labelaudit_sample_id"))
        if sample_id is None:
            problems.append(f"{where}: no labelaudit_sample_id (was it exported by labelaudit?)")
            continue
        given = _optional(sample.get("labelaudit_given_label"))
        truth = sample.get("ground_truth")
        label = _optional(truth.get("label")) if isinstance(truth, dict) else None
        tags = {str(t).strip().lower() for t in sample.get("tags") or []}
        content_hash = _optional(sample.get("labelaudit_content_hash"))
        if "remove" in tags or "unsure" in tags:
            action, new_label = ("remove" if "remove" in tags else "unsure"), None
        elif label is None:
            problems.append(f"{where} ({sample_id}): no ground_truth label")
            continue
        elif given is not None and label == given:
            action, new_label = "keep", None
        else:
            action, new_label = "relabel", label
        decisions.append(Decision(where, sample_id, action, new_label, given, content_hash))
    return decisions, problems


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get("choices", [])
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


# ---------------------------------------------------------------- planning


@speaks_python()
def plan_apply(
    decisions_file: Path,
    data: Path | None = None,
    *,
    out: Path | None = None,
    label_col: str | None = None,
    path_col: str | None = None,
    text_col: str | None = None,
    id_col: str | None = None,
    modality: str | None = None,
    allow_outside_root: bool = False,
    report: Path | None = None,
    label_sep: str | None = None,
    label_cols: str | tuple[str, ...] | None = None,
) -> tuple[Plan, pd.DataFrame | None]:
    """Validate every decision against the dataset as it is now; raise DecisionError listing every bad row.

    With ``report`` (the audit's report folder) the dataset is read as the audit read it: its summary.json
    holds the data spec (manifest columns, modality) and the dataset's path, which ``data`` defaults to.
    Options given here win over the report's. ``label_sep`` / ``label_cols`` read a tag-set manifest without
    the report, as `audit --label-sep` / `--label-cols` did."""
    spec = DataSpec(
        modality=modality,  # type: ignore[arg-type]
        label_col=label_col,
        path_col=path_col,
        text_col=text_col,
        id_col=id_col,
        allow_outside_root=allow_outside_root,
        label_sep=label_sep,
        label_cols=label_cols,  # type: ignore[arg-type]  # DataSpec splits "a,b,c"
    )
    names: dict[str, str] = {}
    if report is not None:
        data, spec = _from_report(Path(report), data, spec)
        names = report_class_names(Path(report))
    if data is None:
        raise LabelAuditError("pass a DECISIONS file and --data DATA (or --report REPORT_DIR, or --undo JOURNAL)")
    decisions, problems = read_decisions(decisions_file, names)
    decisions, dup_problems = _dedupe(decisions)
    problems += dup_problems
    data = Path(data).expanduser()
    if not data.exists():
        raise LabelAuditError(f"--data {data} does not exist")
    if data.is_dir() and (spec.wants_tags or _tag_decisions(decisions)):
        raise LabelAuditError("these are tag-set decisions, and a folder dataset holds one class per sample")
    if data.is_dir():
        plan = _plan_folder(decisions, data, problems)
        corrected = None
    elif data.suffix.lower() in MANIFEST_EXTENSIONS and (spec.wants_tags or _tag_decisions(decisions)):
        plan, corrected = _plan_tag_manifest(decisions, data, problems, out, spec)
    elif data.suffix.lower() in MANIFEST_EXTENSIONS:
        plan, corrected = _plan_manifest(decisions, data, problems, out, spec)
    else:
        raise LabelAuditError(f"--data {data} is neither a dataset folder nor a CSV/Parquet manifest")
    plan.decisions_file = str(Path(decisions_file).resolve())
    if problems:
        raise DecisionError(problems, str(decisions_file))
    return plan, corrected


def _from_report(report: Path, data: Path | None, spec: DataSpec) -> tuple[Path | None, DataSpec]:
    """The dataset and data spec of an audit's report, with what the caller gave on top."""
    from .report import load_summary

    summary = load_summary(report)
    recorded = summary.data_spec or DataSpec()
    chosen = {name: value for name, value in spec.to_json().items() if value not in (None, False)}
    spec = dataclasses.replace(recorded, **chosen)
    if data is None and summary.dataset.kind != "dataframe" and not storage.is_uri(summary.dataset.source):
        data = Path(summary.dataset.source)
    return data, spec


def _dedupe(decisions: list[Decision]) -> tuple[list[Decision], list[str]]:
    seen: dict[str, Decision] = {}
    problems = []
    for d in decisions:
        first = seen.get(d.sample_id)
        if first is None:
            seen[d.sample_id] = d
        elif first.text != d.text:
            problems.append(f"{d.where} ({d.sample_id}): contradicts {first.where} ({first.text} vs {d.text})")
    return list(seen.values()), problems


def _sample_hashes(file: Path) -> set[str]:
    """Hashes the audit may have recorded for a file: of its bytes (images) or of its decoded text."""
    hashes = {hash_file(file)}
    if file.suffix.lower() == ".txt":
        with contextlib.suppress(ValueError):  # not UTF-8: then the audit could only have hashed the bytes
            hashes.add(hash_text(storage.read_text(file)))
    return hashes


def _plan_folder(decisions: list[Decision], data: Path, problems: list[str]) -> Plan:
    root = data.resolve()
    classes = {p.name for p in root.iterdir() if p.is_dir() and not is_hidden(p.name)}
    plan = Plan(kind="folder", root=str(root), decisions_file="")
    targets: dict[str, str] = {}
    new_dirs: list[str] = []
    for d in decisions:
        tag = f"{d.where} ({d.sample_id})"
        rel = PurePosixPath(d.sample_id.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts or len(rel.parts) < 2:
            problems.append(f"{tag}: not a path inside a class folder of {root}")
            continue
        src = root / Path(*rel.parts)
        try:
            resolved = src.resolve()
        except OSError as exc:
            problems.append(f"{tag}: cannot resolve the path: {exc}")
            continue
        if not resolved.is_relative_to(root):
            problems.append(f"{tag}: path resolves outside the dataset root {root}; refusing to move it")
            continue
        current = rel.parts[0]
        if is_hidden(current) or current not in classes:
            problems.append(f"{tag}: {current!r} is not a class folder of {root}")
            continue
        if not src.is_file():
            problems.append(f"{tag}: file not found (moved or deleted since the audit?)")
            continue
        if d.given_label is not None and d.given_label != current:
            problems.append(f"{tag}: was labelled {d.given_label!r} at the audit but is in {current!r} now")
            continue
        if d.content_hash is not None and d.content_hash not in _sample_hashes(src):
            problems.append(f"{tag}: file changed since the audit (content hash differs); re-run the audit")
            continue
        if d.action == "relabel" and d.new_label not in classes:
            problems.append(
                f"{tag}: unknown class {d.new_label!r}; classes are {', '.join(sorted(classes))} "
                "(create the folder first to add a class)"
            )
            continue
        if d.action in ("keep", "unsure") or (d.action == "relabel" and d.new_label == current):
            plan.unchanged.append({"sample_id": d.sample_id, "decision": d.text})
            continue
        if d.action == "relabel":
            assert d.new_label is not None
            dst_rel = PurePosixPath(d.new_label, *rel.parts[1:])
        else:
            dst_rel = PurePosixPath(REMOVED_DIR, *rel.parts)
        dst = root / Path(*dst_rel.parts)
        # A class folder or _removed/ that is a symbolic link to elsewhere would take the file out of the
        # dataset (discovery skips such a folder): the folder the file lands in must resolve inside the root.
        try:
            lands_in = dst.parent.resolve()
        except OSError as exc:
            problems.append(f"{tag}: cannot resolve {dst_rel.parent}: {exc}")
            continue
        if not lands_in.is_relative_to(root):
            problems.append(
                f"{tag}: {dst_rel.parent} leads outside the dataset root {root} (a symbolic link?); "
                "refusing to move a file out of the dataset"
            )
            continue
        if os.path.lexists(dst):  # a link counts, dangling or not: the user's
            problems.append(f"{tag}: {dst_rel} already exists; refusing to overwrite it")
            continue
        if str(dst_rel) in targets:
            problems.append(f"{tag}: {dst_rel} is also the target of {targets[str(dst_rel)]}")
            continue
        targets[str(dst_rel)] = d.sample_id
        for parent in reversed(dst.parents):
            if parent.is_relative_to(root) and parent != root and not parent.exists():
                name = parent.relative_to(root).as_posix()
                if name not in new_dirs:
                    new_dirs.append(name)
        plan.operations.append(
            {
                "op": "move",
                "sample_id": d.sample_id,
                "decision": d.text,
                "src": rel.as_posix(),
                "dst": dst_rel.as_posix(),
                "hash": hash_file(src),
                # A link moves as a link: a relative one may not resolve from _removed/, so undo knows it by
                # the text it holds, not by the bytes it led to.
                **({"link": os.readlink(src)} if src.is_symlink() else {}),
            }
        )
    plan.created_dirs = new_dirs
    plan.counts = _counts(plan)
    return plan


def _counts(plan: Plan) -> dict[str, int]:
    counts = {a: 0 for a in ACTIONS}
    for item in [*plan.operations, *plan.unchanged]:
        for change in item.get("changes", [item]):
            action = change["decision"].split(":", 1)[0]
            counts[action] = counts.get(action, 0) + 1  # accept / retag: tag sets only
    return counts


def default_manifest_out(manifest: Path) -> Path:
    return manifest.with_name(f"{manifest.stem}.corrected{manifest.suffix}")


def _plan_manifest(
    decisions: list[Decision],
    manifest: Path,
    problems: list[str],
    out: Path | None,
    spec: DataSpec,
) -> tuple[Plan, pd.DataFrame]:
    manifest = manifest.resolve()
    root = manifest.parent
    out = _manifest_out(manifest, out)
    frame = read_manifest(manifest)
    columns = resolve_columns(frame, spec)  # exactly as discovery resolved them at the audit
    row_of = {sid: i for i, sid in enumerate(sample_ids(frame, columns, root)) if sid is not None}
    labels = frame[columns.label]
    known = {label_text(v) for v in labels if _optional(v) is not None}
    plan = Plan(kind="manifest", root=str(manifest), decisions_file="", manifest_out=str(out))
    corrected = frame.copy()
    drop: list[int] = []
    changes: list[dict[str, Any]] = []
    rows = _ManifestRows(frame, columns, root, spec, row_of, problems)
    for d in decisions:
        tag = f"{d.where} ({d.sample_id})"
        row = rows.locate(d, lambda row: label_text(labels.iloc[row]), lambda given, now: given == now, "labelled")
        if row is None:
            continue
        current = label_text(labels.iloc[row])
        if d.action == "relabel" and d.new_label not in known:
            problems.append(
                f"{tag}: unknown class {d.new_label!r}; the manifest's classes are {', '.join(sorted(known))}"
            )
            continue
        if d.action in ("keep", "unsure") or (d.action == "relabel" and d.new_label == current):
            plan.unchanged.append({"sample_id": d.sample_id, "decision": d.text})
            continue
        change = {"sample_id": d.sample_id, "decision": d.text, "manifest_row": row + 1, "old_label": current}
        if d.action == "remove":
            drop.append(row)
        else:
            change["new_label"] = d.new_label
            corrected.iloc[row, corrected.columns.get_loc(columns.label)] = _typed(labels, d.new_label)
        changes.append(change)
    corrected = corrected.drop(index=corrected.index[drop]).reset_index(drop=True)
    plan.operations.append({"op": "write_manifest", "path": str(out), "changes": changes})
    plan.counts = _counts(plan)
    return plan, corrected


def _manifest_out(manifest: Path, out: Path | None) -> Path:
    """Where the corrected manifest goes: never over the original, never over an existing file."""
    out = Path(out).expanduser().resolve() if out is not None else default_manifest_out(manifest)
    if out == manifest:
        raise LabelAuditError("--out names the manifest itself: apply writes a new manifest, never over the original")
    if out.exists():
        raise LabelAuditError(f"{out} already exists; remove it or pass another --out")
    return out


@dataclass
class _ManifestRows:
    """Finds a decision's manifest row and checks it is the row the audit saw (single-label and tag-set
    manifests alike): the sample id resolves, the label is the one the queue was made from, the file's
    content is unchanged. Problems are collected, not raised, so that one pass names every bad row."""

    frame: pd.DataFrame
    columns: Any
    root: Path
    spec: DataSpec
    row_of: dict[str, int]
    problems: list[str]

    def locate(
        self,
        decision: Decision,
        current: Callable[[int], str],
        same: Callable[[str, str], bool],
        verb: str,
    ) -> int | None:
        tag = f"{decision.where} ({decision.sample_id})"
        row = self.row_of.get(decision.sample_id)
        if row is None:
            self.problems.append(
                f"{tag}: no manifest row has this sample id (pass the --*-col options used at the audit)"
            )
            return None
        now = current(row)
        if decision.given_label is not None and not same(decision.given_label, now):
            self.problems.append(
                f"{tag}: was {verb} {decision.given_label!r} at the audit but is {now!r} in the manifest"
            )
            return None
        if decision.content_hash is not None:
            problem = _manifest_hash_problem(
                self.frame, row, self.columns, self.root, decision.content_hash, self.spec.allow_outside_root
            )
            if problem:
                self.problems.append(f"{tag}: {problem}")
                return None
        return row


def _tag_decisions(decisions: list[Decision]) -> bool:
    return any(d.action in ("retag", "accept") for d in decisions)


def _plan_tag_manifest(
    decisions: list[Decision], manifest: Path, problems: list[str], out: Path | None, spec: DataSpec
) -> tuple[Plan, pd.DataFrame]:
    """A multi-label manifest: each decision's new tag set is written back into the label column (joined by
    the separator in a CSV, a list in a Parquet list column) or into the one-hot columns; the rest as for a
    single-label manifest (a new file beside the original, ids and hashes checked against the audit)."""
    from .discover import TAG_COLUMN_CANDIDATES, _pick_column
    from .multilabel.tags import parse_onehot, parse_tag_column

    manifest = manifest.resolve()
    root = manifest.parent
    out = _manifest_out(manifest, out)
    frame = read_manifest(manifest)
    label_col = None
    try:
        if spec.label_cols:
            matrix = parse_onehot(frame, list(spec.label_cols), allow_empty=True)
        else:
            label_col = _pick_column(frame, spec.label_col, TAG_COLUMN_CANDIDATES, "label", required=True)
            assert label_col is not None
            matrix = parse_tag_column(frame[label_col].tolist(), sep=spec.label_sep, allow_empty=True, column=label_col)
    except DataError as exc:  # the parser speaks of the audit's options; apply also reads them from --report
        raise DataError(
            f"{manifest}: {exc} (apply takes the --label-sep / --label-cols the audit used, or --report "
            "REPORT_DIR to read them from the audit's report)"
        ) from None
    sep = spec.label_sep or "|"
    columns = resolve_columns(frame.assign(**{ROW_LABEL: ""}), dataclasses.replace(spec, label_col=ROW_LABEL))
    row_of = {sid: i for i, sid in enumerate(sample_ids(frame, columns, root)) if sid is not None}
    known = set(matrix.classes)
    plan = Plan(kind="manifest", root=str(manifest), decisions_file="", manifest_out=str(out))
    corrected = frame.copy()
    drop: list[int] = []
    changes: list[dict[str, Any]] = []
    rows = _ManifestRows(frame, columns, root, spec, row_of, problems)

    def tags_of(row: int) -> list[str]:
        return [c for c, on in zip(matrix.classes, matrix.tags[row], strict=True) if on]

    for d in decisions:
        tag = f"{d.where} ({d.sample_id})"
        row = rows.locate(
            d,
            lambda row: sep.join(tags_of(row)),
            lambda given, now: set(_split_tags(given, sep)) == set(_split_tags(now, sep)),
            "tagged",
        )
        if row is None:
            continue
        current = tags_of(row)
        if d.action == "retag":
            wanted = list(d.new_tags or ())
        elif d.action == "accept":
            wanted = [t for t in current if t not in set(d.remove_tags)] + [t for t in d.add_tags if t not in current]
        elif d.action == "relabel":  # relabel:<tags joined by the separator> names the whole set
            wanted = _split_tags(d.new_label or "", sep)
        else:
            wanted = current
        unknown = sorted({*wanted, *d.remove_tags} - known)
        if unknown:
            problems.append(f"{tag}: unknown tag(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}")
            continue
        if d.action in ("keep", "unsure") or (d.action != "remove" and set(wanted) == set(current)):
            plan.unchanged.append({"sample_id": d.sample_id, "decision": d.text})
            continue
        change = {"sample_id": d.sample_id, "decision": d.text, "manifest_row": row + 1, "old_label": sep.join(current)}
        if d.action == "remove":
            drop.append(row)
        else:
            ordered = [c for c in matrix.classes if c in set(wanted)]  # class order, as the audit wrote tag sets
            change["new_label"] = sep.join(ordered)
            _write_tags(corrected, row, ordered, label_col, spec, sep)
        changes.append(change)
    corrected = corrected.drop(index=corrected.index[drop]).reset_index(drop=True)
    plan.operations.append({"op": "write_manifest", "path": str(out), "changes": changes})
    plan.counts = _counts(plan)
    return plan, corrected


ROW_LABEL = "__labelaudit_tags__"  # a stand-in label column: the columns are resolved as discovery did


def _split_tags(text: str, sep: str) -> list[str]:
    return [t.strip() for t in text.split(sep) if t.strip()]


def _write_tags(
    frame: pd.DataFrame, row: int, tags: list[str], label_col: str | None, spec: DataSpec, sep: str
) -> None:
    if spec.label_cols:  # one-hot: each column keeps its type (1/0, True/False or the text it had)
        for column in spec.label_cols:
            on = column in tags
            old = frame[column]
            if pd.api.types.is_bool_dtype(old.dtype):
                value: Any = on
            elif pd.api.types.is_numeric_dtype(old.dtype):
                value = int(on)
            else:
                value = "1" if on else "0"
            frame.iloc[row, frame.columns.get_loc(column)] = value
        return
    assert label_col is not None
    position = frame.columns.get_loc(label_col)
    if spec.label_sep is None:  # a Parquet list column stays a list column
        frame.iat[row, position] = list(tags)
    else:
        frame.iat[row, position] = sep.join(tags)


def _typed(column: pd.Series, label: str | None) -> Any:
    # A Parquet manifest with integer labels must stay integer, or the corrected file changes its schema.
    if label is not None and pd.api.types.is_integer_dtype(column.dtype):
        try:
            return int(label)
        except ValueError:
            return label
    return label


def _manifest_hash_problem(
    frame: pd.DataFrame,
    row: int,
    columns: ManifestColumns,
    root: Path,
    expected: str,
    allow_outside_root: bool,
) -> str | None:
    if columns.text is not None:
        return None if hash_text(str(frame.iloc[row][columns.text])) == expected else "text changed since the audit"
    assert columns.path is not None
    _, file = manifest_file(str(frame.iloc[row][columns.path]), root)
    if not allow_outside_root and not file.resolve().is_relative_to(root):
        return f"path resolves outside the manifest folder {root} (pass --allow-outside-root to accept)"
    if not file.is_file():
        return "file not found (moved or deleted since the audit?)"
    if expected not in _sample_hashes(file):
        return "file changed since the audit (content hash differs); re-run the audit"
    return None


# ---------------------------------------------------------------- executing and undoing


def default_journal(decisions_file: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(decisions_file).with_name(f"{Path(decisions_file).stem}.journal-{stamp}")
    candidate, number = base.with_name(base.name + ".json"), 1
    while candidate.exists():  # two applies in one second must not overwrite the first one's undo record
        number += 1
        candidate = base.with_name(f"{base.name}-{number}.json")
    return candidate


def journal_payload(plan: Plan, status: str) -> dict[str, Any]:
    payload = {"format": JOURNAL_FORMAT, "labelaudit_version": __version__, "status": status}
    payload["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    payload.update(asdict(plan))
    return payload


@speaks_python()
def execute(plan: Plan, corrected: pd.DataFrame | None, journal: Path) -> dict[str, Any]:
    """Carry out a validated plan. The journal is on disk before the first change."""
    journal = Path(journal).expanduser().resolve()
    if plan.kind == "folder" and journal.is_relative_to(Path(plan.root)):
        # Inside the tree it would outlive an undo and make the dataset differ from before.
        raise LabelAuditError(f"--journal {journal} is inside the dataset; write it elsewhere")
    payload = journal_payload(plan, "pending")
    write_json_atomic(journal, payload)
    if plan.kind == "folder":
        _move_all(plan)
    else:
        assert corrected is not None and plan.manifest_out is not None
        out = Path(plan.manifest_out)
        _write_manifest(corrected, out)
        plan.operations[0]["hash"] = hash_file(out)
    payload = journal_payload(plan, "applied")
    payload["journal"] = str(journal)
    write_json_atomic(journal, payload)
    return payload


def _write_manifest(frame: pd.DataFrame, out: Path) -> None:
    if out.suffix.lower() == ".csv":
        write_atomic(out, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        write_atomic(out, lambda tmp: frame.to_parquet(tmp, index=False, engine="pyarrow"))


def _move_all(plan: Plan) -> None:
    root = Path(plan.root)
    done: list[tuple[Path, Path]] = []
    try:
        for name in plan.created_dirs:
            (root / name).mkdir(exist_ok=True)
        for op in plan.operations:
            src, dst = root / op["src"], root / op["dst"]
            if os.path.lexists(dst):
                raise LabelAuditError(f"{op['dst']} appeared while applying; refusing to overwrite it")
            os.rename(src, dst)
            done.append((src, dst))
    except (OSError, LabelAuditError) as exc:
        # Put back what already moved so the dataset is never left half-applied.
        for src, dst in reversed(done):
            os.rename(dst, src)
        _remove_empty_dirs(root, plan.created_dirs)
        raise LabelAuditError(f"applying failed and was rolled back: {exc}") from None


def _remove_empty_dirs(root: Path, names: list[str]) -> None:
    for name in reversed(names):
        folder = root / name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


@speaks_python()
def undo(journal_file: Path, dry_run: bool = False) -> dict[str, Any]:
    """Restore the state before ``apply``. Every step is checked before the first file moves back."""
    journal_file = Path(journal_file).expanduser()
    if not journal_file.is_file():
        raise LabelAuditError(f"journal {journal_file} not found")
    try:
        payload = json.loads(journal_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelAuditError(f"cannot read journal {journal_file}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != JOURNAL_FORMAT:
        raise LabelAuditError(f"{journal_file} is not a labelaudit apply journal")
    if payload["status"] == "undone":
        raise LabelAuditError(f"{journal_file} was already undone")
    root = Path(payload["root"])
    problems: list[str] = []
    moves: list[tuple[Path, Path]] = []
    if payload["kind"] == "folder":
        for op in payload["operations"]:
            src, dst = root / op["src"], root / op["dst"]
            link = op.get("link")  # a link moved as a link is known by its text (see _plan_folder)
            moved = dst.is_symlink() if link is not None else dst.is_file()
            if moved and not os.path.lexists(src):
                if (os.readlink(dst) == link) if link is not None else (hash_file(dst) == op["hash"]):
                    moves.append((dst, src))
                else:
                    problems.append(f"{op['dst']}: changed since it was moved; restore it by hand")
            elif src.is_file() and not dst.exists():
                continue  # never moved: an interrupted apply
            else:
                problems.append(
                    f"{op['dst']} -> {op['src']}: cannot restore ({op['src']} exists or {op['dst']} is gone)"
                )
    else:
        op = payload["operations"][0]
        out = Path(op["path"])
        if out.is_file() and op.get("hash") and hash_file(out) != op["hash"]:
            problems.append(f"{out}: edited since apply wrote it; delete it by hand if you mean to")
    if problems:
        raise DecisionError(problems, str(journal_file))
    payload["undo"] = {"restored": [str(s.relative_to(root)) for _, s in moves]}
    if dry_run:
        return payload
    if payload["kind"] == "folder":
        for dst, src in moves:
            src.parent.mkdir(parents=True, exist_ok=True)
            os.rename(dst, src)
        _remove_empty_dirs(root, payload.get("created_dirs", []))
    else:
        Path(payload["operations"][0]["path"]).unlink(missing_ok=True)
    payload["status"] = "undone"
    payload["undone_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(journal_file, payload)
    return payload
