"""CLIP zero-shot: class probabilities from the similarity of each sample to its class prompts, then
cleanlab's filter and quality score.

The softmax temperature is fitted to the given labels (one scalar, so it cannot memorise them): a
raw cosine similarity has no calibrated scale, and cleanlab's thresholds need calibrated probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..chunked import project, row_blocks
from ..errors import LabelAuditError
from . import ScoreContext, ScorerResult
from ._cleanlab import cleanlab_result

# One scalar is fitted, so 100k rows pin it down; more would only multiply the 60 full passes over N x K.
TEMPERATURE_FIT_ROWS = 100_000


def fit_temperature(similarities: np.ndarray, labels: np.ndarray) -> float:
    """The logit scale s in [1, 1000] that minimises the NLL of ``labels`` under softmax(s * sim)."""
    import torch

    sims = torch.as_tensor(similarities, dtype=torch.float64)
    target = torch.as_tensor(labels, dtype=torch.long)

    def nll(log_scale: float) -> float:
        return float(torch.nn.functional.cross_entropy(sims * np.exp(log_scale), target))

    low, high = 0.0, np.log(1000.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(np.exp((low + high) / 2))


def zero_shot_similarities(context: ScoreContext) -> np.ndarray:
    if context.class_embeddings is None:
        raise LabelAuditError("the zeroshot method needs class-prompt embeddings from the encoder")
    return project(context.embeddings, context.class_embeddings)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class ZeroShotSettings:
    """No options: the temperature is fitted, the prompts are the encoder's templates."""

    def check(self) -> None:
        pass


class ZeroShotScorer:
    name = "zeroshot"
    settings_type = ZeroShotSettings

    def score(self, context: ScoreContext, settings: ZeroShotSettings | None = None) -> ScorerResult:
        sims = zero_shot_similarities(context)
        fit_rows = np.arange(len(sims))
        if len(fit_rows) > TEMPERATURE_FIT_ROWS:
            fit_rows = np.sort(np.random.default_rng(context.seed).choice(len(sims), TEMPERATURE_FIT_ROWS, False))
        scale = fit_temperature(sims[fit_rows], context.labels[fit_rows])
        probs = np.empty(sims.shape, dtype=np.float32)
        for block in row_blocks(len(sims)):
            probs[block] = softmax(sims[block] * scale)
        del sims
        return cleanlab_result(
            context.labels, probs, {"temperature_fitted_scale": round(scale, 3), "prompts": "template ensemble"}
        )


SCORER = ZeroShotScorer
