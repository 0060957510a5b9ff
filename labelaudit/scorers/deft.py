"""DeFT noisy-label detector (Wei et al., "Vision-Language Models are Strong Noisy Label Detectors",
NeurIPS 2024), phase 1, on frozen cached embeddings.

Every class gets a learned *positive* and a learned *negative* prompt. A sample is judged clean when
its embedding is closer to the positive prompt of its label than to the negative one: the negative
prompt is a learned per-class threshold, so no noise rate has to be guessed.

Two variants share the training loop:
- ``prompt``: context vectors ``[P1..Pm] <class>.`` / ``[N1..Nm] <class>.`` through the frozen text
  tower (CLIP, or a BERT-style sentence-transformers model); only the 2·m context vectors learn.
- ``embedding``: the K positive and K negative class vectors learn directly in the embedding space,
  initialised from the class-prompt embeddings; any encoder, and much cheaper per step.
Cross-fitting (``deft_folds`` > 1) trains on K-1 folds and scores the held-out fold, so no sample is
judged by prompts that saw its own label.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import LabelAuditError
from . import ScoreContext, ScorerResult
from ._cleanlab import stratified_folds

VARIANTS = ("embedding", "prompt", "auto")
# The words the prompt variant's context vectors start from, by modality.
INIT_TEXT = {"image": "a photo of a", "text": "This text is about"}
EMBEDDING_LR = 0.01
PROMPT_LR = 0.002


@dataclass(frozen=True)
class DeftSettings:
    variant: str = "embedding"  # one of VARIANTS
    epochs: int = 10
    warmup_epochs: int = 1
    n_ctx: int = 16
    lr: float | None = None  # None: the variant's default (EMBEDDING_LR, PROMPT_LR)
    batch_size: int | None = None  # None: about 50 steps per epoch (see default_batch_size)
    folds: int = 5  # cross-fitting: see docs/method.md
    logit_scale: float | None = None  # None: the encoder's, else 50
    init_text: str | None = None  # None: INIT_TEXT of the data's modality

    def check(self) -> None:
        if self.variant not in VARIANTS:
            raise LabelAuditError(f"--deft-variant must be embedding, prompt or auto, not {self.variant!r}")
        if self.epochs < 1:
            raise LabelAuditError(f"--deft-epochs must be at least 1 (got {self.epochs})")
        if self.variant != "embedding" and self.n_ctx < 1:
            raise LabelAuditError(f"--deft-ctx must be at least 1 context vector (got {self.n_ctx})")
        if self.lr is not None and not self.lr > 0:
            raise LabelAuditError(f"--deft-lr must be positive (got {self.lr})")
        if self.folds < 1:
            raise LabelAuditError(f"--deft-folds must be 1 (no cross-fitting) or more (got {self.folds})")


def _resolve_variant(context: ScoreContext, settings: DeftSettings) -> str:
    if settings.variant == "embedding":
        return "embedding"
    if context.soft_prompt_model() is None:
        if settings.variant == "prompt":
            raise LabelAuditError(
                "this encoder's text side cannot take soft prompts (it needs a CLIP text tower or a BERT-style "
                "sentence-transformers model); use --deft-variant embedding"
            )
        return "embedding"
    return "prompt"


def learning_rate(settings: DeftSettings, variant: str) -> float:
    return settings.lr or (PROMPT_LR if variant == "prompt" else EMBEDDING_LR)


def default_batch_size(n: int) -> int:
    """About 50 optimiser steps per epoch whatever N is: enough steps on a small set, few text-tower passes
    on a large one (each step costs one pass over 2K prompts)."""
    return int(min(4096, max(8, math.ceil(n / 50))))


def logit_scale(context: ScoreContext, settings: DeftSettings) -> float:
    return float(settings.logit_scale or context.logit_scale or 50.0)


class DeftScorer:
    name = "deft"
    settings_type = DeftSettings

    def score(self, context: ScoreContext, settings: DeftSettings | None = None) -> ScorerResult:
        from . import deft_train  # torch: loaded only when DeFT runs

        settings = settings or DeftSettings()
        settings.check()
        if context.n_classes < 2:
            raise LabelAuditError("DeFT needs at least two classes")
        if settings.init_text is None:
            settings = dataclasses.replace(settings, init_text=INIT_TEXT.get(context.modality, INIT_TEXT["image"]))
        variant = _resolve_variant(context, settings)
        n = len(context.labels)
        folds = min(settings.folds, n)
        p_clean = np.zeros(n)
        probs = np.zeros((n, context.n_classes), dtype=np.float32)
        fold_ids = stratified_folds(context.labels, folds, context.seed) if folds > 1 else np.zeros(n, dtype=int)
        # Reported as trained: with cross-fitting each model sees only the training folds.
        train_size = int((fold_ids != 0).sum()) if folds > 1 else n
        batch_size = settings.batch_size or default_batch_size(train_size)
        task = context.reporter.task("Scoring: deft", total=folds * settings.epochs)
        with task as progress, deft_train.threads_for(variant):
            for fold in range(folds):
                held_out = np.flatnonzero(fold_ids == fold)
                train = np.flatnonzero(fold_ids != fold) if folds > 1 else held_out
                prompts = deft_train.train_deft(context, settings, variant, train, context.seed + fold, progress)
                p_clean[held_out], probs[held_out] = deft_train.score_with(prompts, context, settings, held_out)
        return ScorerResult(
            quality=p_clean,
            is_issue=p_clean <= 0.5,
            suggested=probs.argmax(axis=1),
            pred_probs=probs,
            settings={
                "variant": variant,
                "epochs": settings.epochs,
                "warmup_epochs": settings.warmup_epochs,
                "n_ctx": settings.n_ctx if variant == "prompt" else None,
                "folds": folds,
                "lr": learning_rate(settings, variant),
                "logit_scale": logit_scale(context, settings),
                "batch_size": batch_size,
            },
        )


SCORER = DeftScorer
