"""Execution engines: where an audit embeds its samples and runs the scorers' independent fold jobs.

An ``Engine`` opens what it needs for one audit (``session``, which yields the ``FoldRunner`` the scorers
get), embeds samples into the content-hash embedding cache (``embed``), and says what an interrupted run kept
(``saved_note``). ``local`` (the default, ``engines/local.py``) works in this process with DataLoader workers;
``ray`` (``engines/ray_engine.py``) decodes and embeds on a Ray cluster and runs the folds as Ray tasks. Both
write the same cache, and everything after embedding is the same. A new engine is one module that defines
``ENGINE`` plus one line in ``ENGINES``. Importing this package or an engine module never imports ray or torch.
"""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from ..errors import LabelAuditError

if TYPE_CHECKING:
    import pandas as pd

    from ..cache import EmbeddingCache
    from ..config import EmbedSpec, EncoderSpec, EngineSpec
    from ..embed import EmbeddingResult
    from ..encoders import Encoder
    from ..progress import Reporter
    from ..scorers import FoldRunner

ENGINES: dict[str, str] = {
    "local": "labelaudit.engines.local",
    "ray": "labelaudit.engines.ray_engine",
}
RAY_INSTALL_HINT = 'pip install "labelaudit[ray]"  (or: pip install "ray[data]>=2.9")'


@dataclass(frozen=True)
class EmbedJob:
    samples: pd.DataFrame  # the samples table (discover.SAMPLE_COLUMNS)
    modality: str
    encoder: Encoder
    cache: EmbeddingCache
    spec: EmbedSpec
    rebuild: EncoderSpec | None  # how another process builds the same encoder; None: send the object itself


class Engine(Protocol):
    name: str

    def check(self) -> None:
        """Fail before discovery when the engine cannot run here (e.g. its extra is not installed)."""

    def session(self) -> AbstractContextManager[FoldRunner]:
        """Hold what the engine needs from embedding through scoring; yields where the scorers' folds run."""

    def embed(self, job: EmbedJob, reporter: Reporter) -> EmbeddingResult:
        """Embed every sample of the job that its cache lacks, into that cache."""

    def saved_note(self, cache: EmbeddingCache) -> str:
        """What an interrupted run kept in the cache, for the message that says how to resume."""


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise LabelAuditError(f"unknown --engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    return engine


def get_engine(spec: EngineSpec) -> Engine:
    module = importlib.import_module(ENGINES[check_engine(spec.name)])
    return module.ENGINE(spec)


def require_ray() -> ModuleType:
    """Import ray (with Ray Data), or explain how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise LabelAuditError(
            f"--engine ray needs the optional Ray extra, which is not installed ({exc}). Install it with: "
            f"{RAY_INSTALL_HINT}"
        ) from None
    return ray
