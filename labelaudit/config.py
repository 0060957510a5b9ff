"""Every option of an audit: frozen dataclasses, built once (by the CLI or a Python caller) and read by the stages.

``AuditConfig`` holds one spec per concern: ``DataSpec`` (how to read the dataset), ``EncoderSpec`` (which
model), ``EmbedSpec`` (batches, image decoding, the cache), ``EngineSpec`` (where to run) and ``ScoringSpec``
(which methods, the seed, each scorer's own ``Settings``). Defaults are written here, once; the CLI reads its
option defaults from these classes. A scorer's ``Settings`` dataclass lives beside the scorer
(``labelaudit/scorers/<name>.py``) and is found through the scorer registry, so a new scorer brings its
options with it and every one of them can be set.

This module loads no model library: the CLI builds and checks a config, so a bad option fails before torch
is imported.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .estimate import EstimateSettings
from .scorers import DEFAULT_METHODS, SCORER_MODULES, parse_methods, settings_type

if TYPE_CHECKING:
    from .storage import Location

Modality = Literal["image", "text"]
DEFAULT_CACHE_DIR = "~/.cache/labelaudit"
CACHE_DIR_ENV = "LABELAUDIT_CACHE_DIR"


def default_cache_dir() -> str:
    return os.environ.get(CACHE_DIR_ENV, DEFAULT_CACHE_DIR)


@dataclass(frozen=True)
class DataSpec:
    """How to read the dataset. A column left None is found by its usual names (label, path, text, ...)."""

    modality: Modality | None = None  # None: detected from the files or the columns
    label_col: str | None = None
    path_col: str | None = None  # manifest paths are relative to the manifest's folder
    text_col: str | None = None
    id_col: str | None = None
    classes_file: str | None = None  # class order and prompt names: lines of key,name
    # Accept manifest paths outside the manifest's folder and folder symlinks that lead out of the data folder.
    allow_outside_root: bool = False
    # Multi-label manifests (docs/multilabel.md): the label column holds several tags per row, separated by
    # ``label_sep`` in a CSV (a Parquet list column needs no separator), or one one-hot column per class.
    label_sep: str | None = None
    label_cols: tuple[str, ...] | None = None
    allow_empty_tags: bool = False  # a sample that carries no tag is a valid answer, not a manifest error
    multilabel: bool = False  # set by discovery when it read tag sets (and to ask for a Parquet list column)

    def __post_init__(self) -> None:
        if isinstance(self.label_cols, str):  # "a,b,c" as the CLI and a JSON round trip may give it
            object.__setattr__(self, "label_cols", tuple(c.strip() for c in self.label_cols.split(",")))
        elif self.label_cols is not None:
            object.__setattr__(self, "label_cols", tuple(str(c) for c in self.label_cols))

    @property
    def wants_tags(self) -> bool:
        """True when the options alone say the labels are tag sets."""
        return self.multilabel or self.label_sep is not None or self.label_cols is not None

    def to_json(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        if not self.wants_tags:  # a single-label summary.json keeps the bytes it had before tag sets existed
            for name in MULTILABEL_FIELDS:
                del payload[name]
        elif self.label_cols is not None:
            payload["label_cols"] = list(self.label_cols)
        return payload

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> DataSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in payload.items() if name in known})


MULTILABEL_FIELDS = ("label_sep", "label_cols", "allow_empty_tags", "multilabel")


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder embeds the samples; encoders.resolve_encoder picks one per modality for None."""

    model: str | None = None  # an open_clip name, a model-config .json, or st:<name-or-path>
    pretrained: str | None = None  # an open_clip tag, or "random"
    checkpoint: str | None = None  # a local open_clip state dict
    device: str = "auto"


@dataclass(frozen=True)
class EmbedSpec:
    batch_size: int = 64
    workers: int | None = None  # image-decoding processes of the local engine; None: cores - 1
    max_pixels: int = 100_000_000  # larger images are skipped (decompression bombs)
    # A folder or an object-store URI; None keeps embeddings in memory only.
    cache_dir: str | Path | Location | None = field(default_factory=default_cache_dir)


@dataclass(frozen=True)
class EngineSpec:
    name: str = "local"  # see labelaudit/engines
    ray_address: str | None = None  # None: start a local Ray
    ray_concurrency: int | None = None  # embedding actors; None: one per GPU, else one


@dataclass(frozen=True)
class ScoringSpec:
    methods: tuple[str, ...] = DEFAULT_METHODS
    seed: int = 0  # the same seed gives the same report
    # Scorer name -> an instance of its Settings; a scorer not named here runs with its defaults.
    settings: Mapping[str, Any] = field(default_factory=dict)
    # The calibrated error-rate estimate and the flag cut it sets (labelaudit.estimate); None: the methods'
    # majority vote flags and the flagged share is the rate (the rule before the estimate, for comparison).
    estimate: EstimateSettings | None = field(default_factory=EstimateSettings)

    def settings_for(self, name: str) -> Any:
        given = self.settings.get(name)
        return given if given is not None else settings_type(name)()


@dataclass(frozen=True)
class AuditConfig:
    data: DataSpec = field(default_factory=DataSpec)
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    embed: EmbedSpec = field(default_factory=EmbedSpec)
    engine: EngineSpec = field(default_factory=EngineSpec)
    scoring: ScoringSpec = field(default_factory=ScoringSpec)

    def check(self) -> None:
        """Raise LabelAuditError for an option no run could use. Reads no file, loads no model library."""
        from .engines import check_engine

        check_engine(self.engine.name)
        parse_methods(list(self.scoring.methods))
        for name in self.scoring.methods:
            self.scoring.settings_for(name).check()
        if self.scoring.estimate is not None:
            self.scoring.estimate.check()

    def with_options(self, **options: Any) -> AuditConfig:
        """This config with flat keyword options applied, as ``audit(data, methods=..., deft_epochs=...)`` takes them.

        A name is a field of one of the specs (``batch_size``, ``model``, ``ray_address``, ...; ``engine`` is
        the engine's name) or ``<scorer>_<setting>`` for a field of a scorer's Settings (``deft_epochs``,
        ``knn_k``, ``confident_folds``); ``folds`` and ``deft_ctx`` are the CLI's names for
        ``confident_folds`` and ``deft_n_ctx``."""
        specs: dict[str, dict[str, Any]] = {}
        scorers: dict[str, dict[str, Any]] = {}
        for given, value in options.items():
            name = FLAT_ALIASES.get(given, given)
            if name in FLAT_SPEC_FIELDS:
                spec, field_name = FLAT_SPEC_FIELDS[name]
                specs.setdefault(spec, {})[field_name] = tuple(parse_methods(value)) if name == "methods" else value
                continue
            scorer, _, setting = name.partition("_")
            if scorer not in SCORER_MODULES or setting not in _field_names(settings_type(scorer)):
                raise TypeError(f"audit() got an unexpected keyword argument {given!r}")
            scorers.setdefault(scorer, {})[setting] = value
        config = dataclasses.replace(
            self, **{spec: dataclasses.replace(getattr(self, spec), **values) for spec, values in specs.items()}
        )
        if not scorers:
            return config
        settings = dict(config.scoring.settings)
        for scorer, values in scorers.items():
            settings[scorer] = dataclasses.replace(config.scoring.settings_for(scorer), **values)
        return dataclasses.replace(config, scoring=dataclasses.replace(config.scoring, settings=settings))


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _flat_spec_fields() -> dict[str, tuple[str, str]]:
    """Flat option name -> (spec, field) for every field of every spec, except the engine's ``name``
    (the option is ``engine``) and the scorer settings (``<scorer>_<setting>``)."""
    fields: dict[str, tuple[str, str]] = {"engine": ("engine", "name")}
    for spec in dataclasses.fields(AuditConfig):
        for item in dataclasses.fields(spec.default_factory):  # type: ignore[arg-type]
            if (spec.name, item.name) not in (("engine", "name"), ("scoring", "settings")):
                fields[item.name] = (spec.name, item.name)
    return fields


FLAT_SPEC_FIELDS = _flat_spec_fields()
FLAT_ALIASES = {"folds": "confident_folds", "deft_ctx": "deft_n_ctx"}
