"""summary.json as a typed value: what an audit ran and what it found, a function of its inputs, seed and versions.

The audit's summary stage builds a ``Summary``; every job on a finished report (gate, export, apply, the HTML
page, the terminal summary) reads it back with ``Summary.from_json`` and uses its attributes, never string
keys. ``to_json`` writes the keys in one fixed order, so two runs on the same inputs write the same bytes.
Torch-free, like everything the report jobs import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import DataSpec
from .errors import LabelAuditError
from .version import __version__

ERROR_RATE_ESTIMATOR = "share of samples flagged by a strict majority of the methods"
CALIBRATED_ESTIMATOR = (
    "calibrated on the dataset itself: the share of wrong labels that explains the methods' scores, "
    "measured against synthetic mistakes (docs/method.md)"
)
# A multi-label audit's estimated_error_rate is its sample error rate (MultilabelSummary says the pair one).
MULTILABEL_ERROR_RATE_ESTIMATOR = (
    "share of samples whose tag set has at least one wrong tag (missing or spurious), "
    "estimated against injected synthetic errors (docs/multilabel.md)"
)
PAIR_ERROR_RATE_DEFINITION = (
    "share of the judged (sample, tag) pairs whose given answer is wrong: a tag missing or spurious"
)
SAMPLE_ERROR_RATE_DEFINITION = "share of samples whose tag set has at least one wrong tag"


class NotASummary(LabelAuditError):
    """A summary.json without what every labelaudit summary has."""


@dataclass(frozen=True)
class DatasetSummary:
    source: str  # the path or URI as given, or "<DataFrame>"
    kind: str  # image_folder, text_folder, manifest or dataframe
    modality: str  # image or text
    n_samples: int
    n_classes: int
    ignored_files: int = 0  # files in the class folders with another extension

    @property
    def is_folder(self) -> bool:
        return self.kind.endswith("_folder")

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "modality": self.modality,
            "n_samples": self.n_samples,
            "n_classes": self.n_classes,
            "ignored_files": self.ignored_files,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> DatasetSummary:
        return cls(
            source=str(payload.get("source", "")),
            kind=str(payload.get("kind", "")),
            modality=str(payload.get("modality", "image")),
            n_samples=int(payload.get("n_samples", 0)),
            n_classes=int(payload.get("n_classes", 0)),
            ignored_files=int(payload.get("ignored_files", 0)),
        )


@dataclass(frozen=True)
class EncoderSummary:
    identity: str  # the embedding cache's key for the encoder
    description: str  # for people
    dim: int

    def to_json(self) -> dict[str, Any]:
        return {"identity": self.identity, "description": self.description, "dim": self.dim}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> EncoderSummary:
        return cls(str(payload.get("identity", "")), str(payload.get("description", "?")), int(payload.get("dim", 0)))


@dataclass(frozen=True)
class ErrorRateSummary:
    """The calibrated estimate's interval, power and caveats (labelaudit.estimate); the point itself is
    ``Summary.estimated_error_rate``."""

    lower: float
    upper: float
    confidence: float = 0.95
    is_lower_bound: bool = False  # the data cannot rule out many more errors than the point says
    power_auroc: float | None = None  # synthetic mistakes told from right labels (1 = perfectly; see AuditPower)
    power_recall: float | None = None  # share of synthetic mistakes the flag cut catches
    warnings: list[str] = field(default_factory=list)  # in plain words, for the terminal, page and gate
    details: dict[str, Any] = field(default_factory=dict)  # the readings behind the interval

    def to_json(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "confidence": self.confidence,
            "is_lower_bound": self.is_lower_bound,
            "audit_power": {"auroc": self.power_auroc, "recall_at_cut": self.power_recall},
            "warnings": self.warnings,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ErrorRateSummary:
        power = payload.get("audit_power") or {}
        return cls(
            lower=float(payload.get("lower", 0.0)),
            upper=float(payload.get("upper", 1.0)),
            confidence=float(payload.get("confidence", 0.95)),
            is_lower_bound=bool(payload.get("is_lower_bound", False)),
            power_auroc=None if power.get("auroc") is None else float(power["auroc"]),
            power_recall=None if power.get("recall_at_cut") is None else float(power["recall_at_cut"]),
            warnings=[str(w) for w in payload.get("warnings", [])],
            details=dict(payload.get("details", {})),
        )


@dataclass(frozen=True)
class MultilabelSummary:
    """What a multi-label audit adds to summary.json: the two error rates, each named by what it is a share of,
    and the flag counts per kind of error (a missing tag, a spurious tag)."""

    estimated_pair_error_rate: float  # PAIR_ERROR_RATE_DEFINITION
    estimated_sample_error_rate: float  # SAMPLE_ERROR_RATE_DEFINITION
    estimated_missing_share: float  # of the judged pairs given as absent, the share that should be present
    estimated_spurious_share: float  # of the judged pairs given as present, the share that should be absent
    n_pairs_judged: int
    n_classes_judged: int
    n_flagged_pairs: int
    n_flagged_missing: int
    n_flagged_spurious: int
    flag_rule: str
    label_column: str | None = None  # None: one-hot columns (data_spec.label_cols)
    tag_separator: str = "|"  # how report.csv, the exports and a CSV manifest join a tag set
    calibration: dict[str, Any] = field(default_factory=dict)
    pair_error_rate_definition: str = PAIR_ERROR_RATE_DEFINITION
    sample_error_rate_definition: str = SAMPLE_ERROR_RATE_DEFINITION

    def to_json(self) -> dict[str, Any]:
        return {
            "estimated_pair_error_rate": self.estimated_pair_error_rate,
            "pair_error_rate_definition": self.pair_error_rate_definition,
            "estimated_sample_error_rate": self.estimated_sample_error_rate,
            "sample_error_rate_definition": self.sample_error_rate_definition,
            "estimated_missing_share": self.estimated_missing_share,
            "estimated_spurious_share": self.estimated_spurious_share,
            "n_pairs_judged": self.n_pairs_judged,
            "n_classes_judged": self.n_classes_judged,
            "n_flagged_pairs": self.n_flagged_pairs,
            "n_flagged_missing": self.n_flagged_missing,
            "n_flagged_spurious": self.n_flagged_spurious,
            "flag_rule": self.flag_rule,
            "label_column": self.label_column,
            "tag_separator": self.tag_separator,
            "calibration": self.calibration,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> MultilabelSummary:
        return cls(
            estimated_pair_error_rate=float(payload["estimated_pair_error_rate"]),
            estimated_sample_error_rate=float(payload["estimated_sample_error_rate"]),
            estimated_missing_share=float(payload.get("estimated_missing_share", 0.0)),
            estimated_spurious_share=float(payload.get("estimated_spurious_share", 0.0)),
            n_pairs_judged=int(payload.get("n_pairs_judged", 0)),
            n_classes_judged=int(payload.get("n_classes_judged", 0)),
            n_flagged_pairs=int(payload.get("n_flagged_pairs", 0)),
            n_flagged_missing=int(payload.get("n_flagged_missing", 0)),
            n_flagged_spurious=int(payload.get("n_flagged_spurious", 0)),
            flag_rule=str(payload.get("flag_rule", "")),
            label_column=payload.get("label_column"),
            tag_separator=str(payload.get("tag_separator", "|")),
            calibration=dict(payload.get("calibration", {})),
            pair_error_rate_definition=str(payload.get("pair_error_rate_definition", PAIR_ERROR_RATE_DEFINITION)),
            sample_error_rate_definition=str(payload.get("sample_error_rate_definition", SAMPLE_ERROR_RATE_DEFINITION)),
        )


@dataclass
class Summary:
    dataset: DatasetSummary
    estimated_error_rate: float  # see error_rate_estimator
    classes: list[str] = field(default_factory=list)  # class keys in the report's order
    encoder: EncoderSummary = field(default_factory=lambda: EncoderSummary("", "?", 0))
    methods: list[str] = field(default_factory=list)
    method_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # what each scorer says it ran with
    n_flagged: int | None = None  # None only in a summary that did not record it
    flagged_per_method: dict[str, int] = field(default_factory=dict)
    issue_types: dict[str, int] = field(default_factory=dict)  # issue type -> samples with it (labelaudit.issues)
    # Each issue check's own section (e.g. "duplicates", "outliers"), written between issue_types and neighbor_graph.
    check_sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    neighbor_graph: dict[str, Any] = field(default_factory=dict)  # how the k-NN graph was searched
    confused_pairs: list[dict[str, Any]] = field(default_factory=list)
    n_skipped: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # the first 1000
    warnings: list[str] = field(default_factory=list)
    seed: int = 0
    engine: str = "local"
    data_spec: DataSpec | None = None  # how the data was read (resolved columns), so `apply` need not ask again
    verified: dict[str, Any] | None = None  # `audit --verified`: the file and how many rows it settled
    multilabel: MultilabelSummary | None = None  # a multi-label audit (tag sets); None for a single-label one
    labelaudit_version: str = __version__
    error_rate_estimator: str = ERROR_RATE_ESTIMATOR
    error_rate: ErrorRateSummary | None = None  # the calibrated estimate's interval and power; None: no interval

    def error_rate_text(self) -> str:
        """The rate as people should read it: with its interval, and "at least" where it is a lower bound."""
        rate = self.estimated_error_rate
        if self.error_rate is None:
            return f"{rate:.2%}"
        span = f"{self.error_rate.lower:.1%}-{self.error_rate.upper:.1%}"
        if self.error_rate.is_lower_bound:
            return f"at least {rate:.1%} (could be up to {self.error_rate.upper:.1%}; interval {span})"
        return f"{rate:.1%} ({self.error_rate.confidence:.0%} interval {span})"

    def audit_power_text(self) -> str:
        """How well the methods find synthetic mistakes, in words (terminal, page and gate share it)."""
        if self.error_rate is None or self.error_rate.power_auroc is None:
            return "not measured"
        text = f"AUROC {self.error_rate.power_auroc:.2f} on synthetic mistakes"
        if self.error_rate.power_recall is not None:
            text += f", {self.error_rate.power_recall:.0%} of them caught by the flag cut"
        return text

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "labelaudit_version": self.labelaudit_version,
            "dataset": self.dataset.to_json(),
            "classes": self.classes,
            "encoder": self.encoder.to_json(),
            "methods": self.methods,
            "method_settings": self.method_settings,
            "estimated_error_rate": self.estimated_error_rate,
            "error_rate_estimator": self.error_rate_estimator,
            **({"error_rate": self.error_rate.to_json()} if self.error_rate is not None else {}),
            "n_flagged": self.n_flagged,
            "flagged_per_method": self.flagged_per_method,
            "issue_types": self.issue_types,
            **self.check_sections,
            "neighbor_graph": self.neighbor_graph,
            "confused_pairs": self.confused_pairs,
            "n_skipped": self.n_skipped,
            "skipped": self.skipped,
            "warnings": self.warnings,
            "seed": self.seed,
            "engine": self.engine,
        }
        if self.data_spec is not None:
            payload["data_spec"] = self.data_spec.to_json()
        if self.verified is not None:
            payload["verified"] = self.verified
        if self.multilabel is not None:
            payload["multilabel"] = self.multilabel.to_json()
        return payload

    @property
    def is_multilabel(self) -> bool:
        return self.multilabel is not None

    @classmethod
    def from_json(cls, payload: Any, where: str = "summary.json") -> Summary:
        """Read a summary back; keys a summary may lack get their defaults, unknown keys are kept as check
        sections. ``where`` names the file in the error for a payload that is no labelaudit summary."""
        if not isinstance(payload, dict) or "estimated_error_rate" not in payload or "dataset" not in payload:
            raise NotASummary(f"{where} has no estimated_error_rate: is it a labelaudit report?")
        known = {name for name in cls.__dataclass_fields__ if name != "check_sections"}
        spec = payload.get("data_spec")
        tags = payload.get("multilabel")
        return cls(
            dataset=DatasetSummary.from_json(payload["dataset"]),
            estimated_error_rate=float(payload["estimated_error_rate"]),
            classes=[str(c) for c in payload.get("classes", [])],
            encoder=EncoderSummary.from_json(payload.get("encoder", {})),
            methods=[str(m) for m in payload.get("methods", [])],
            method_settings=dict(payload.get("method_settings", {})),
            n_flagged=None if payload.get("n_flagged") is None else int(payload["n_flagged"]),
            flagged_per_method=dict(payload.get("flagged_per_method", {})),
            issue_types=dict(payload.get("issue_types", {})),
            check_sections={k: v for k, v in payload.items() if k not in known},
            neighbor_graph=dict(payload.get("neighbor_graph", {})),
            confused_pairs=list(payload.get("confused_pairs", [])),
            n_skipped=int(payload.get("n_skipped", 0)),
            skipped=list(payload.get("skipped", [])),
            warnings=list(payload.get("warnings", [])),
            seed=int(payload.get("seed", 0)),
            engine=str(payload.get("engine", "local")),
            data_spec=DataSpec.from_json(spec) if isinstance(spec, dict) else None,
            verified=dict(payload["verified"]) if isinstance(payload.get("verified"), dict) else None,
            multilabel=MultilabelSummary.from_json(tags) if isinstance(tags, dict) else None,
            labelaudit_version=str(payload.get("labelaudit_version", "")),
            error_rate_estimator=str(payload.get("error_rate_estimator", ERROR_RATE_ESTIMATOR)),
            error_rate=ErrorRateSummary.from_json(payload["error_rate"])
            if isinstance(payload.get("error_rate"), dict)
            else None,
        )
