"""Scorers judge every sample's given label from the embeddings. All share one interface:

``scorer.score(context) -> ScorerResult`` with a label-quality score in [0, 1] (low = likely wrong),
an issue flag, a suggested label and, where the method has them, out-of-sample predicted probabilities.
A new method is one module that defines a scorer class plus one line in ``SCORER_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..encoders import SoftPromptModel
from ..errors import LabelAuditError
from ..neighbors import NeighborGraph, NeighborSource
from ..progress import QUIET, Reporter

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
    embeddings: np.ndarray  # (N, D) float32, L2-normalised
    labels: np.ndarray  # (N,) int class indices
    class_names: list[str]  # prompt names, one per class index
    class_embeddings: np.ndarray | None = None  # (K, D) prompt-ensemble embeddings, L2-normalised
    logit_scale: float | None = None  # the encoder's own scale, if it has a trained one
    soft_prompt: SoftPromptModel | None = None
    seed: int = 0
    folds: int = 5
    options: dict[str, Any] = field(default_factory=dict)
    reporter: Reporter = QUIET
    neighbors: NeighborSource | None = None  # the shared k-NN graph (cached on disk by the pipeline)
    fold_runner: FoldRunner = field(default_factory=SerialFolds)  # Ray tasks with --engine ray

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def neighbor_graph(self, k: int) -> NeighborGraph:
        """The k nearest neighbours of every sample, built on first use and shared by all scorers."""
        if self.neighbors is None:
            self.neighbors = NeighborSource(self.embeddings, seed=self.seed)
        return self.neighbors.graph(k)


@dataclass
class ScorerResult:
    quality: np.ndarray  # (N,) in [0, 1], low = likely wrong label
    is_issue: np.ndarray  # (N,) bool
    suggested: np.ndarray  # (N,) int
    pred_probs: np.ndarray | None = None  # (N, K) out-of-sample probabilities, rows sum to 1
    settings: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    name: str

    def score(self, context: ScoreContext) -> ScorerResult: ...


def available_methods() -> list[str]:
    return list(SCORER_MODULES)


def get_scorer(name: str) -> Scorer:
    if name not in SCORER_MODULES:
        raise LabelAuditError(f"unknown method {name!r}; choose from: {', '.join(SCORER_MODULES)}")
    module = importlib.import_module(SCORER_MODULES[name])
    return module.SCORER()


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
