"""Fold reviewed decisions back into the dataset, reversibly.

Every decision row is validated before anything changes; one bad row refuses the whole file with a message
per row, so a dataset is never half-applied. Folder datasets: files move (relabel -> new class folder,
remove -> ``ROOT/_removed/``), and a journal written *before* the first move lets ``undo`` put every byte
back. Manifest datasets: a new corrected manifest is written beside the original, never over it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from . import __version__
from .discover import (
    LABEL_COLUMN_CANDIDATES,
    MANIFEST_EXTENSIONS,
    PATH_COLUMN_CANDIDATES,
    TEXT_COLUMN_CANDIDATES,
    _is_hidden,
    _label_to_str,
    _manifest_file,
    _pick_column,
    hash_file,
    hash_text,
    read_manifest,
    read_text_file,
)
from .errors import LabelAuditError
from .io import write_atomic, write_json_atomic

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

    @property
    def text(self) -> str:
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


def read_decisions(path: Path) -> tuple[list[Decision], list[str]]:
    """Decisions from a reviewed CSV queue (or report.html's download), a Label Studio JSON / JSON-MIN export,
    a CVAT for images 1.1 XML or a FiftyOne samples JSON; also per-row problems found."""
    path = Path(path)
    if not path.is_file():
        raise LabelAuditError(f"decisions file {path} not found")
    if path.suffix.lower() == ".xml":
        return _read_cvat(path)
    if path.suffix.lower() == ".json":
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LabelAuditError(f"cannot read decisions JSON {path}: {exc}") from None
        if isinstance(payload, dict) and isinstance(payload.get("samples"), list):
            return _read_fiftyone(payload)
        return _read_labelstudio(path, payload)
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
    for number, record in enumerate(frame.to_dict("records"), start=2):
        where = f"line {number}"
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
                _optional(record.get("given_label")),
                _optional(record.get("content_hash")),
            )
        )
    return decisions, problems


def _choices(result: list[dict[str, Any]], control: str) -> list[str]:
    found: list[str] = []
    for item in result:
        if item.get("from_name") == control and item.get("type", "choices") == "choices":
            found.extend(str(c) for c in item.get("value", {}).get("choices", []))
    return found


def _read_labelstudio(path: Path, tasks: Any) -> tuple[list[Decision], list[str]]:
    from .export.labelstudio import LABEL_CONTROL, REVIEW_CONTROL

    if not isinstance(tasks, list):
        raise LabelAuditError(f"{path} is not a Label Studio export (expected a JSON list of tasks)")
    decisions: list[Decision] = []
    problems: list[str] = []
    for number, item in enumerate(tasks, start=1):
        where = f"task {item.get('id', number) if isinstance(item, dict) else number}"
        if not isinstance(item, dict):
            problems.append(f"{where}: not a task object")
            continue
        if "data" in item:  # the full "JSON" export
            data = item["data"]
            annotations = [a for a in item.get("annotations", []) if not a.get("was_cancelled")]
            if not annotations:
                continue
            result = annotations[-1].get("result", [])
            labels, review = _choices(result, LABEL_CONTROL), _choices(result, REVIEW_CONTROL)
        else:  # "JSON_MIN": data fields and one key per control at the top level
            data = item
            labels = _as_list(item.get(LABEL_CONTROL))
            review = _as_list(item.get(REVIEW_CONTROL))
        sample_id = _optional(data.get("sample_id"))
        if sample_id is None:
            problems.append(f"{where}: no sample_id in the task data (was it exported by labelaudit?)")
            continue
        given = _optional(data.get("given_label"))
        if review:
            action, label = review[0].strip().lower(), None
            if action not in ("remove", "unsure"):
                problems.append(f"{where} ({sample_id}): unknown review choice {review[0]!r}")
                continue
        elif labels:
            label = labels[0]
            action = "keep" if label == given else "relabel"
            label = None if action == "keep" else label
        else:
            continue
        decisions.append(Decision(where, sample_id, action, label, given, _optional(data.get("content_hash"))))
    return decisions, problems


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
        if len(labels) > 1:
            problems.append(f"{where} ({sample_id}): several tags ({', '.join(sorted(labels))}); keep one")
            continue
        if not labels:
            decisions.append(Decision(where, sample_id, "unsure"))
            continue
        decisions.append(Decision(where, sample_id, "relabel", labels.pop()))
    return decisions, problems


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


def plan_apply(
    decisions_file: Path,
    data: Path,
    *,
    out: Path | None = None,
    label_col: str | None = None,
    path_col: str | None = None,
    text_col: str | None = None,
    id_col: str | None = None,
    modality: str | None = None,
    allow_outside_root: bool = False,
) -> tuple[Plan, pd.DataFrame | None]:
    """Validate every decision against the dataset as it is now; raise DecisionError listing every bad row."""
    decisions, problems = read_decisions(decisions_file)
    decisions, dup_problems = _dedupe(decisions)
    problems += dup_problems
    data = Path(data).expanduser()
    if not data.exists():
        raise LabelAuditError(f"--data {data} does not exist")
    if data.is_dir():
        plan = _plan_folder(decisions, data, problems)
        corrected = None
    elif data.suffix.lower() in MANIFEST_EXTENSIONS:
        plan, corrected = _plan_manifest(
            decisions, data, problems, out, label_col, path_col, text_col, id_col, modality, allow_outside_root
        )
    else:
        raise LabelAuditError(f"--data {data} is neither a dataset folder nor a CSV/Parquet manifest")
    plan.decisions_file = str(Path(decisions_file).resolve())
    if problems:
        raise DecisionError(problems, str(decisions_file))
    return plan, corrected


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
            hashes.add(hash_text(read_text_file(file)))
    return hashes


def _plan_folder(decisions: list[Decision], data: Path, problems: list[str]) -> Plan:
    root = data.resolve()
    classes = {p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name)}
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
        if _is_hidden(current) or current not in classes:
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
        if dst.exists() or dst.is_symlink():
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
            }
        )
    plan.created_dirs = new_dirs
    plan.counts = _counts(plan)
    return plan


def _counts(plan: Plan) -> dict[str, int]:
    counts = {a: 0 for a in ACTIONS}
    for item in [*plan.operations, *plan.unchanged]:
        for change in item.get("changes", [item]):
            counts[change["decision"].split(":", 1)[0]] += 1
    return counts


def _manifest_ids(
    frame: pd.DataFrame,
    label_col: str | None,
    path_col: str | None,
    text_col: str | None,
    id_col: str | None,
    modality: str | None,
    root: Path,
) -> tuple[str, str | None, str | None, list[str]]:
    """Sample ids of every manifest row, derived exactly as discovery derived them at the audit."""
    label_col = _pick_column(frame, label_col, LABEL_COLUMN_CANDIDATES, "label", required=True)
    assert label_col is not None
    if modality != "image":
        text_col = _pick_column(frame, text_col, TEXT_COLUMN_CANDIDATES, "text", required=False)
    else:
        text_col = None
    if modality != "text" or text_col is None:
        path_col = _pick_column(frame, path_col, PATH_COLUMN_CANDIDATES, "path", required=text_col is None)
    else:
        path_col = None
    if modality is None:
        modality = "text" if text_col is not None and path_col is None else "image"
    use_text = modality == "text" and text_col is not None
    if id_col is not None and id_col not in frame.columns:
        raise LabelAuditError(f"manifest has no id column {id_col!r}")
    ids: list[str] = []
    for position, record in enumerate(frame.to_dict("records")):
        if id_col is not None:
            ids.append(str(record[id_col]))
        elif use_text:
            ids.append(str(position))
        else:
            raw = record[path_col] if path_col else None
            missing = raw is None or (isinstance(raw, float) and pd.isna(raw))
            ids.append("" if missing else _manifest_file(str(raw), root)[0])
    return label_col, (None if use_text else path_col), (text_col if use_text else None), ids


def default_manifest_out(manifest: Path) -> Path:
    return manifest.with_name(f"{manifest.stem}.corrected{manifest.suffix}")


def _plan_manifest(
    decisions: list[Decision],
    manifest: Path,
    problems: list[str],
    out: Path | None,
    label_col: str | None,
    path_col: str | None,
    text_col: str | None,
    id_col: str | None,
    modality: str | None,
    allow_outside_root: bool,
) -> tuple[Plan, pd.DataFrame]:
    manifest = manifest.resolve()
    root = manifest.parent
    out = Path(out).expanduser().resolve() if out is not None else default_manifest_out(manifest)
    if out == manifest:
        raise LabelAuditError("--out names the manifest itself: apply writes a new manifest, never over the original")
    if out.exists():
        raise LabelAuditError(f"{out} already exists; remove it or pass another --out")
    frame = read_manifest(manifest)
    label_col, path_col, text_col, ids = _manifest_ids(frame, label_col, path_col, text_col, id_col, modality, root)
    row_of = {sid: i for i, sid in enumerate(ids)}
    labels = frame[label_col]
    known = {_label_to_str(v) for v in labels if _optional(v) is not None}
    plan = Plan(kind="manifest", root=str(manifest), decisions_file="", manifest_out=str(out))
    corrected = frame.copy()
    drop: list[int] = []
    changes: list[dict[str, Any]] = []
    for d in decisions:
        tag = f"{d.where} ({d.sample_id})"
        row = row_of.get(d.sample_id)
        if row is None:
            problems.append(f"{tag}: no manifest row has this sample id (pass the --*-col options used at the audit)")
            continue
        current = _label_to_str(labels.iloc[row])
        if d.given_label is not None and d.given_label != current:
            problems.append(f"{tag}: was labelled {d.given_label!r} at the audit but is {current!r} in the manifest")
            continue
        if d.content_hash is not None:
            problem = _manifest_hash_problem(frame, row, path_col, text_col, root, d.content_hash, allow_outside_root)
            if problem:
                problems.append(f"{tag}: {problem}")
                continue
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
            corrected.iloc[row, corrected.columns.get_loc(label_col)] = _typed(labels, d.new_label)
        changes.append(change)
    corrected = corrected.drop(index=corrected.index[drop]).reset_index(drop=True)
    plan.operations.append({"op": "write_manifest", "path": str(out), "changes": changes})
    plan.counts = _counts(plan)
    return plan, corrected


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
    path_col: str | None,
    text_col: str | None,
    root: Path,
    expected: str,
    allow_outside_root: bool,
) -> str | None:
    if text_col is not None:
        return None if hash_text(str(frame.iloc[row][text_col])) == expected else "text changed since the audit"
    assert path_col is not None
    _, file = _manifest_file(str(frame.iloc[row][path_col]), root)
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
            if dst.exists():
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
            if dst.is_file() and not src.exists():
                if hash_file(dst) != op["hash"]:
                    problems.append(f"{op['dst']}: changed since it was moved; restore it by hand")
                else:
                    moves.append((dst, src))
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
