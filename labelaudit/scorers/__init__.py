"""Scorers judge every sample's given label from the embeddings. All share one interface:

``scorer.score(context, settings) -> ScorerResult`` with a label-quality score in [0, 1] (low = likely
wrong), an issue flag, a suggested label and, where the method has them, out-of-sample predicted
probabilities. ``settings`` is the scorer's own frozen dataclass (``Scorer.settings_type``), defined in the
scorer's module; ``labelaudit.config`` collects them, so every option of every scorer can be set.
A new method is one module that defines a scorer class and its Settings plus one line in ``SCORER_MODULES``.

Importing this package or a scorer module loads no model library: heavy imports happen inside ``score``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import LabelAuditError
from ..progress import QUIET, Reporter

if TYPE_CHECKING:
    import numpy as np

    from ..encoders import SoftPromptModel
    from ..neighbors import NeighborGraph, NeighborSource

SCORER_MODULES: dict[str, str] = {
    "deft": "labelaudit.scorers.deft",
    "confident": "labelaudit.scorers.confident",
    "zeroshot": "labelaudit.scorers.zeroshot",
    "knn": "labelaudit.scorers.knn",
}
# Four independent kinds of evidence; the consensus needs three of them to agree before it flags.
DEFAULT_METHODS = ("deft", "confident", "zeroshot", "knn")


class FoldRunner(Protocol):
    """Runs independent per-fold jobs: ``function(**shared, **job)`` for every job, results in job order.
    ``shared`` holds the large read-only arrays every job needs (sent once to a cluster, not per job)."""

    where: str

    def map(
        self,
        function: Callable[..., Any],
        shared: dict[str, np.ndarray],
        jobs: list[dict[str, Any]],
        task: Any | None = None,
    ) -> list[Any]: ...


class SerialFolds:
    """The default: every fold in this process, one after the other."""

    where = "local"

    def map(
        self,
        function: Callable[..., Any],
        shared: dict[str, np.ndarray],
        jobs: list[dict[str, Any]],
        task: Any | None = None,
    ) -> list[Any]:
        results = []
        for job in jobs:
            results.append(function(**shared, **job))
            if task is not None:
                task.advance()
        return results


@dataclass
class ScoreContext:
    """The data every scorer reads; a scorer's options come separately, as its Settings."""

    embeddings: np.ndarray  # (N, D) float32, L2-normalised
    labels: np.ndarray  # (N,) int class indices
    class_names: list[str]  # prompt names, one per class index
    class_embeddings: np.ndarray | None = None  # (K, D) prompt-ensemble embeddings, L2-normalised
    logit_scale: float | None = None  # the encoder's own scale, if it has a trained one
    soft_prompt: SoftPromptModel | None = None  # the encoder's text tower for learned prompts, when given
    # Builds ``soft_prompt`` on first use (the encoder's soft_prompt_model), so only a scorer that needs it pays.
    soft_prompt_factory: Callable[[], SoftPromptModel | None] | None = None
    seed: int = 0
    modality: str = "image"
    reporter: Reporter = QUIET
    neighbors: NeighborSource | None = None  # the shared k-NN graph (cached on disk by the pipeline)
    fold_runner: FoldRunner = field(default_factory=SerialFolds)  # Ray tasks with --engine ray

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def soft_prompt_model(self) -> SoftPromptModel | None:
        if self.soft_prompt is None and self.soft_prompt_factory is not None:
            self.soft_prompt = self.soft_prompt_factory()
            self.soft_prompt_factory = None
        return self.soft_prompt

    def neighbor_graph(self, k: int) -> NeighborGraph:
        """The k nearest neighbours of every sample, built on first use and shared by all scorers."""
        if self.neighbors is None:
            from ..neighbors import NeighborSource

            self.neighbors = NeighborSource(self.embeddings, seed=self.seed)
        return self.neighbors.graph(k)


@dataclass
class ScorerResult:
    quality: np.ndarray  # (N,) in [0, 1], low = likely wrong label
    is_issue: np.ndarray  # (N,) bool
    suggested: np.ndarray  # (N,) int
    pred_probs: np.ndarray | None = None  # (N, K) out-of-sample probabilities, rows sum to 1
    settings: dict[str, Any] = field(default_factory=dict)
    # Its pred_probs went into the caller's running mean and were dropped (pipeline.score_methods), so the
    # consensus knows it gave probabilities.
    folded_probs: bool = False


class Settings(Protocol):
    """A scorer's options: a frozen dataclass whose defaults are the method's defaults."""

    def check(self) -> None:
        """Raise LabelAuditError, naming the CLI option, for a value no run could use."""


class Scorer(Protocol):
    name: str
    settings_type: type[Settings]

    def score(self, context: ScoreContext, settings: Any = None) -> ScorerResult:
        """``settings``: an instance of ``settings_type``; None runs with its defaults."""


def get_scorer(name: str) -> Scorer:
    if name not in SCORER_MODULES:
        raise LabelAuditError(f"unknown method {name!r}; choose from: {', '.join(SCORER_MODULES)}")
    module = importlib.import_module(SCORER_MODULES[name])
    return module.SCORER()


def settings_type(name: str) -> type[Settings]:
    """The Settings dataclass of scorer ``name``."""
    return get_scorer(name).settings_type


def settings_key(settings: Settings) -> str:
    """A stable text of every field of a Settings value, for cache keys."""
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)  # type: ignore[call-overload]


def parse_methods(spec: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if spec is None:
        return list(DEFAULT_METHODS)
    names = [m.strip() for m in spec.split(",")] if isinstance(spec, str) else [m.strip() for m in spec]
    names = [m for m in names if m]
    if not names:
        raise LabelAuditError("--methods is empty")
    unknown = [m for m in names if m not in SCORER_MODULES]
    if unknown:
        raise LabelAuditError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(SCORER_MODULES)}")
    return list(dict.fromkeys(names))
