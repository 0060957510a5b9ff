"""Report folders with exact, chosen numbers for the gate, export, apply and html tests, and no embedding.

The numbers are planted as the scorers' and the consensus's output; everything after that is labelaudit's
own code (the issue checks, samples_table, classes_table, build_summary, AuditResult.save), so a test
report has exactly the format of a real one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labelaudit.config import AuditConfig, DataSpec, ScoringSpec
from labelaudit.consensus import Consensus
from labelaudit.discover import SAMPLE_COLUMNS, Dataset, discover
from labelaudit.issues import IssueInputs, find_issues
from labelaudit.neighbors import NeighborGraph
from labelaudit.pipeline import AuditResult, Issues, build_summary
from labelaudit.report import classes_table, samples_table
from labelaudit.scorers import ScorerResult
from labelaudit.summary import EncoderSummary

METHODS = ["confident", "deft"]
NO_ENCODER = EncoderSummary("test:planted", "none: scores planted by tests/report_factory.py", 0)


def write_report(
    out: Path,
    rows: list[dict[str, Any]],
    *,
    kind: str = "image_folder",
    modality: str = "image",
    source: str = "data",
    class_rates: dict[str, float] | None = None,
) -> Path:
    """A report of ``rows`` (sample_id, given_label, consensus_score, is_issue; optional suggested_label,
    suggested_prob, path, text, content_hash): every method gives the consensus score and flag.
    ``class_rates`` plants per-class estimated error rates (else each class's flagged share)."""
    frame = pd.DataFrame(rows)
    frame["label"] = frame["given_label"]
    for column in ("path", "text", "content_hash"):
        if column not in frame.columns:
            frame[column] = None
    classes = sorted(frame["given_label"].unique())
    dataset = Dataset(
        samples=frame[SAMPLE_COLUMNS], classes=classes, class_names={c: c for c in classes}, modality=modality,
        root=None, kind=kind,
    )  # fmt: skip
    return _save(out, dataset, frame, source, class_rates=class_rates)


def report_from_data(
    out: Path, data: Path, suspects: dict[str, str], source: str | None = None, spec: DataSpec | None = None
) -> Path:
    """A report of a real dataset, read as ``spec`` says: ``suspects`` maps sample_id -> suggested label;
    those rows are flagged."""
    spec = spec or DataSpec()
    dataset = discover(data, **spec.to_json())
    frame = dataset.samples.copy()
    suspect = frame["sample_id"].isin(list(suspects)).to_numpy()
    order = np.arange(len(frame))
    frame["given_label"] = frame["label"]
    frame["suggested_label"] = [
        suspects.get(s, label) for s, label in zip(frame["sample_id"], frame["label"], strict=True)
    ]
    frame["consensus_score"] = np.where(suspect, 0.01 * (order + 1), 0.5 + 0.01 * order)
    frame["is_issue"] = suspect
    return _save(out, dataset, frame, str(data) if source is None else source, spec)


def _save(
    out: Path,
    dataset: Dataset,
    frame: pd.DataFrame,
    source: str,
    spec: DataSpec | None = None,
    class_rates: dict[str, float] | None = None,
) -> Path:
    classes = dataset.classes
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[c] for c in frame["given_label"]], dtype=np.int64)
    suggested_names = frame["suggested_label"] if "suggested_label" in frame else frame["given_label"]
    suggested = np.array([index[c] for c in suggested_names], dtype=np.int64)
    score = frame["consensus_score"].to_numpy(dtype=np.float64)
    flags = frame["is_issue"].to_numpy(dtype=bool)
    prob = frame["suggested_prob"].to_numpy(dtype=np.float64) if "suggested_prob" in frame else np.full(len(frame), 0.9)
    results = {m: ScorerResult(quality=score, is_issue=flags, suggested=suggested) for m in METHODS}
    consensus = Consensus(score, flags, suggested, prob, None, float(flags.mean()))
    n = len(frame)
    graph = NeighborGraph(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), {"method": "exact", "k": 0})
    embeddings = np.zeros((n, 1), np.float16)
    inputs = IssueInputs(
        labels=labels,
        classes=classes,
        sample_ids=frame["sample_id"].astype(str).to_numpy(),
        # A row without a hash is no duplicate of another one without.
        hashes=np.array([h or f"no hash {i}" for i, h in enumerate(frame["content_hash"])], dtype=object),
        embeddings=embeddings,
        class_embeddings=None,
        graph=graph,
        label_errors=flags,
    )
    issues = Issues(graph, find_issues(inputs))
    config = AuditConfig(data=spec or DataSpec(), scoring=ScoringSpec(methods=tuple(METHODS)))
    samples = dataset.samples
    class_table = classes_table(classes, dataset.prompt_names(), labels, consensus, embeddings, None)
    for name, rate in (class_rates or {}).items():
        class_table.loc[class_table["class"] == name, "estimated_error_rate"] = rate
    result = AuditResult(
        samples=samples_table(
            samples, classes, labels, results, consensus, issues.found.columns(), dataset.prompt_names()
        ),
        classes=class_table,
        summary=build_summary(source, dataset, NO_ENCODER, labels, results, consensus, issues, [], config),
        tables=issues.found.tables(),
    )
    return result.save(out)


def tree_state(root: Path) -> dict[str, str]:
    """Every file and folder below root -> a hash of its bytes ('dir' for folders): equal means identical."""
    import hashlib

    state: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        state[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state
