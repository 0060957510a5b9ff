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

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..chunked import class_means, row_blocks, rows_float32
from ..encoders import SoftPromptModel
from ..errors import LabelAuditError
from . import ScoreContext, ScorerResult
from ._cleanlab import stratified_folds

PROMPT_INIT = {"image": "a photo of a", "text": "This text is about"}


@dataclass(frozen=True)
class DeftSettings:
    variant: str = "embedding"  # "embedding" | "prompt" | "auto"
    epochs: int = 10
    warmup_epochs: int = 1
    n_ctx: int = 16
    lr: float | None = None  # None: the variant's default
    batch_size: int | None = None  # None: about 50 steps per epoch (see default_batch_size)
    folds: int = 5  # cross-fitting: see docs/method.md
    logit_scale: float | None = None  # None: the encoder's, else 50
    init_text: str = "a photo of a"

    def validate(self, n_classes: int) -> None:
        if self.variant not in ("embedding", "prompt", "auto"):
            raise LabelAuditError(f"--deft-variant must be embedding, prompt or auto, not {self.variant!r}")
        if self.epochs < 1:
            raise LabelAuditError(f"--deft-epochs must be at least 1 (got {self.epochs})")
        if self.variant != "embedding" and self.n_ctx < 1:
            raise LabelAuditError(f"--deft-ctx must be at least 1 context vector (got {self.n_ctx})")
        if self.lr is not None and not self.lr > 0:
            raise LabelAuditError(f"--deft-lr must be positive (got {self.lr})")
        if self.folds < 1:
            raise LabelAuditError(f"--deft-folds must be 1 (no cross-fitting) or more (got {self.folds})")
        if n_classes < 2:
            raise LabelAuditError("DeFT needs at least two classes")


class EmbeddingPrompts(torch.nn.Module):
    """Positive and negative class vectors learned directly in the embedding space."""

    def __init__(self, init: torch.Tensor, generator: torch.Generator) -> None:
        super().__init__()
        noise = 0.01 * torch.randn(init.shape, generator=generator)
        self.pos = torch.nn.Parameter(init.clone())
        self.neg = torch.nn.Parameter(init.clone() + noise)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.pos, dim=-1), F.normalize(self.neg, dim=-1)


class TokenPrompts(torch.nn.Module):
    """Shared positive and negative context vectors, prepended to each class name in the text tower."""

    def __init__(
        self, tower: SoftPromptModel, class_names: list[str], n_ctx: int, init_text: str, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.tower = tower
        self.class_names = class_names
        ctx = 0.02 * torch.randn((n_ctx, tower.width), generator=generator)
        template = tower.token_embeddings(init_text).float().cpu()[:n_ctx]
        if len(template):
            ctx[n_ctx - len(template) :] = template  # the template's words sit right before the class name
        self.pos_ctx = torch.nn.Parameter(ctx.clone())
        self.neg_ctx = torch.nn.Parameter(ctx.clone() + 0.02 * torch.randn(ctx.shape, generator=generator))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.tower.device  # type: ignore[attr-defined]
        both = torch.cat([self.pos_ctx, self.neg_ctx]).to(device)
        m = self.pos_ctx.shape[0]
        pos = self.tower.encode(both[:m], self.class_names)
        neg = self.tower.encode(both[m:], self.class_names)
        return F.normalize(pos.float().cpu(), dim=-1), F.normalize(neg.float().cpu(), dim=-1)


def _build_prompts(
    context: ScoreContext,
    settings: DeftSettings,
    variant: str,
    train_index: np.ndarray,
    generator: torch.Generator,
) -> torch.nn.Module:
    if variant == "prompt":
        assert context.soft_prompt is not None
        return TokenPrompts(context.soft_prompt, context.class_names, settings.n_ctx, settings.init_text, generator)
    if context.class_embeddings is not None:
        init = torch.as_tensor(context.class_embeddings, dtype=torch.float32)
    else:
        means = class_means(context.embeddings, context.labels, context.n_classes, train_index)
        init = torch.from_numpy(means)
    return EmbeddingPrompts(F.normalize(init, dim=-1), generator)


def _resolve_variant(context: ScoreContext, settings: DeftSettings) -> str:
    if settings.variant == "embedding":
        return "embedding"
    if context.soft_prompt is None:
        if settings.variant == "prompt":
            raise LabelAuditError(
                "this encoder's text side cannot take soft prompts (it needs a CLIP text tower or a BERT-style "
                "sentence-transformers model); use --deft-variant embedding"
            )
        return "embedding"
    return "prompt"


def train_deft(
    context: ScoreContext,
    settings: DeftSettings,
    variant: str,
    train_index: np.ndarray,
    seed: int,
    task: Any | None = None,
) -> torch.nn.Module:
    """Learn positive/negative prompts on the samples in ``train_index`` only."""
    generator = torch.Generator().manual_seed(seed)
    # Rows are gathered and converted to float32 per batch: a float32 copy of the training folds would be
    # 1.6 GB at 1M x 512, on top of the float16 matrix it copies.
    train_index = np.asarray(train_index)
    labels = torch.as_tensor(context.labels[train_index], dtype=torch.long)
    prompts = _build_prompts(context, settings, variant, train_index, generator)
    scale = _scale(context, settings)
    n, k = len(labels), context.n_classes
    batch_size = settings.batch_size or default_batch_size(n)
    steps_per_epoch = math.ceil(n / batch_size)
    lr = learning_rate(settings, variant)
    optimizer = torch.optim.AdamW([p for p in prompts.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs * steps_per_epoch)
    rows = torch.arange(batch_size)
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(n, generator=generator)
        clean_seen = total_seen = 0
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            f = torch.from_numpy(rows_float32(context.embeddings, train_index[batch.numpy()]))
            y = labels[batch]
            r = rows[: len(batch)]
            pos, neg = prompts()
            pos_logits = scale * f @ pos.T
            neg_logits = scale * f @ neg.T
            # As in the paper's code, the clean/noisy split trains only the negative prompts.
            pair = torch.stack([pos_logits.detach(), neg_logits], dim=-1).softmax(dim=-1)
            p_yes, p_no = pair[..., 0], pair[..., 1]
            clean = p_yes[r, y] > 0.5
            complementary = (y + torch.randint(1, k, (len(y),), generator=generator)) % k
            ce = F.cross_entropy(pos_logits, y, reduction="none")
            if epoch <= settings.warmup_epochs:
                loss_cls, yes_target = ce.mean(), y
            else:
                loss_cls = ce[clean].mean() if clean.any() else ce.sum() * 0.0
                yes_target = torch.where(clean, y, pos_logits.detach().argmax(dim=1))
            log_no = torch.log(p_no[r, complementary].clamp(min=1e-5))
            log_yes = torch.log(p_yes[r, yes_target].clamp(min=1e-5))
            loss = loss_cls - log_no.mean() - log_yes.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            clean_seen += int(clean.sum())
            total_seen += len(batch)
        if task is not None:
            task.advance()
            task.describe(
                f"Scoring: deft ({variant}) epoch {epoch}/{settings.epochs}, "
                f"clean {clean_seen / max(total_seen, 1):.1%}"
            )
    return prompts


def learning_rate(settings: DeftSettings, variant: str) -> float:
    return settings.lr or (0.002 if variant == "prompt" else 0.01)


def default_batch_size(n: int) -> int:
    """About 50 optimiser steps per epoch whatever N is: enough steps on a small set, few text-tower passes
    on a large one (each step costs one pass over 2K prompts)."""
    return int(min(4096, max(8, math.ceil(n / 50))))


def _scale(context: ScoreContext, settings: DeftSettings) -> float:
    return float(settings.logit_scale or context.logit_scale or 50.0)


@torch.no_grad()
def score_with(
    prompts: torch.nn.Module, context: ScoreContext, settings: DeftSettings, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(p_clean, float32 softmax of positive logits) for the samples in ``index``, a block of rows at a time."""
    pos, neg = prompts()
    scale = _scale(context, settings)
    index = np.asarray(index)
    p_clean = np.empty(len(index), dtype=np.float64)
    probs = np.empty((len(index), pos.shape[0]), dtype=np.float32)
    for block in row_blocks(len(index)):
        f = torch.from_numpy(rows_float32(context.embeddings, index[block]))
        y = torch.as_tensor(context.labels[index[block]], dtype=torch.long)
        pos_logits = scale * f @ pos.T
        neg_logits = scale * f @ neg.T
        rows = torch.arange(len(y))
        p_clean[block] = torch.sigmoid(pos_logits[rows, y] - neg_logits[rows, y]).double().numpy()
        probs[block] = pos_logits.softmax(dim=1).numpy()
    return p_clean, probs


class DeftScorer:
    name = "deft"

    def score(self, context: ScoreContext) -> ScorerResult:
        settings = settings_from_options(context.options)
        settings.validate(context.n_classes)
        variant = _resolve_variant(context, settings)
        n = len(context.labels)
        folds = min(settings.folds, n)
        p_clean = np.zeros(n)
        probs = np.zeros((n, context.n_classes), dtype=np.float32)
        fold_ids = stratified_folds(context.labels, folds, context.seed) if folds > 1 else np.zeros(n, dtype=int)
        # Reported as trained: with cross-fitting each model sees only the training folds.
        train_size = int((fold_ids != 0).sum()) if folds > 1 else n
        batch_size = settings.batch_size or default_batch_size(train_size)
        # Embedding-variant steps are tiny matrix products: one thread is faster than a contended pool.
        threads = 1 if variant == "embedding" else torch.get_num_threads()
        with context.reporter.task("Scoring: deft", total=folds * settings.epochs) as task, torch_threads(threads):
            for fold in range(folds):
                held_out = np.flatnonzero(fold_ids == fold)
                train = np.flatnonzero(fold_ids != fold) if folds > 1 else held_out
                prompts = train_deft(context, settings, variant, train, context.seed + fold, task)
                p_clean[held_out], probs[held_out] = score_with(prompts, context, settings, held_out)
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
                "logit_scale": _scale(context, settings),
                "batch_size": batch_size,
            },
        )


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def settings_from_options(options: dict[str, Any]) -> DeftSettings:
    kwargs = {
        "variant": options.get("deft_variant", "embedding"),
        "epochs": options.get("deft_epochs", 10),
        "n_ctx": options.get("deft_ctx", 16),
        "lr": options.get("deft_lr"),
        "folds": options.get("deft_folds", 5),
        "batch_size": options.get("deft_batch_size"),
        "init_text": options.get("deft_init_text", "a photo of a"),
    }
    return DeftSettings(**{k: v for k, v in kwargs.items() if v is not None or k == "lr"})


SCORER = DeftScorer
