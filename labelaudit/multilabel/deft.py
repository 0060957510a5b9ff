"""DeFT for tag sets: each class's positive/negative prompt pair is a binary detector of that one tag.

In the single-label detector (``labelaudit.scorers.deft``) a sample is clean when it is closer to its
label's positive prompt than to its negative one: the negative prompt is a learned per-class threshold.
Here that same comparison is asked of every (sample, class) pair:

    P(tag k present | x) = sigmoid(scale * (cos(x, pos_k) - cos(x, neg_k)) + b_k)

trained with a binary cross-entropy on the given tags (learning rate 0.05 for the embedding variant: with
the single-label 0.01 the offsets had not converged in 10 epochs on a few hundred rows; on 20news tune rows
both gave the same ranking). The per-class offset ``b_k`` (started at the log-odds
of the class's share) is the threshold a binary question needs: in a single-label detector both prompts are
compared on the same sample, so no offset is needed, but without it a class given to 5 % of the samples
could only be called present at odds of one to one wherever the two prompts are equally near (on centred
features: almost everywhere; measured on the CIFAR proxy features, the mean P(present) of absent pairs was
0.43 without it). DeFT's clean/noisy split carries over per pair:
after the warm-up epochs a pair whose given tag the current detector contradicts drops out of the loss, so
the prompts do not learn the errors they are meant to find. It is off by default (``deft_clean_split``):
for a binary question about a rare tag, "the detector says no" is the usual answer for a correct but
atypical positive, so the split dropped true tags and the detector learned to miss them. On the tune rows
(10 % random missing/spurious tags) it lowered the pair AUROC from 0.983 to 0.972 on 20news and from 0.93
to 0.88 on the CIFAR proxy features. Cross-fitting (``deft_folds``) scores every
sample with prompts that never saw its tags. Both variants of the single-label scorer are available:
``embedding`` (class vectors learned in the embedding space, any encoder) and ``prompt`` (soft context
vectors through the frozen text tower).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..chunked import row_blocks, rows_float32
from ..scorers.deft import INIT_TEXT, DeftSettings, default_batch_size, learning_rate
from ..scorers.deft_train import EmbeddingPrompts, TokenPrompts, torch_threads
from .scorers import MultilabelContext, PairResult, learnable_classes, multilabel_folds


def _variant(context: MultilabelContext, settings: DeftSettings) -> str:
    from ..errors import LabelAuditError

    if settings.variant == "embedding" or (settings.variant == "auto" and context.soft_prompt is None):
        return "embedding"
    if context.soft_prompt is None:
        raise LabelAuditError(
            "this encoder's text side cannot take soft prompts (it needs a CLIP text tower or a BERT-style "
            "sentence-transformers model); use --deft-variant embedding"
        )
    return "prompt"


def _initial_vectors(context: MultilabelContext, train: np.ndarray) -> torch.Tensor:
    if context.class_embeddings is not None:
        init = np.asarray(context.class_embeddings, dtype=np.float32)
    else:  # the mean of each class's tagged training rows
        sums = np.zeros((context.n_classes, context.embeddings.shape[1]), dtype=np.float64)
        for block in row_blocks(len(train)):
            rows = train[block]
            sums += context.tags[rows].T.astype(np.float64) @ rows_float32(context.embeddings, rows)
        init = (sums / np.maximum(context.tags[train].sum(axis=0), 1)[:, None]).astype(np.float32)
    return F.normalize(torch.from_numpy(init), dim=-1)


def _scale(context: MultilabelContext, settings: DeftSettings) -> float:
    return float(settings.logit_scale or context.logit_scale or 50.0)


class BinaryDetectors(torch.nn.Module):
    """K prompt pairs and K offsets: ``logits(f)`` is the (B, K) log-odds that each tag is present."""

    def __init__(self, prompts: torch.nn.Module, share: np.ndarray, scale: float) -> None:
        super().__init__()
        self.prompts = prompts
        share = np.clip(np.asarray(share, dtype=np.float64), 1e-3, 1 - 1e-3)
        self.offset = torch.nn.Parameter(torch.as_tensor(np.log(share / (1 - share)), dtype=torch.float32))
        self.scale = scale

    def logits(self, f: torch.Tensor) -> torch.Tensor:
        pos, neg = self.prompts()
        return self.scale * (f @ pos.T - f @ neg.T) + self.offset


def train_binary_deft(
    context: MultilabelContext,
    settings: DeftSettings,
    variant: str,
    train: np.ndarray,
    seed: int,
    task: Any | None = None,
) -> BinaryDetectors:
    """Learn the K prompt pairs on the rows in ``train`` only."""
    generator = torch.Generator().manual_seed(seed)
    if variant == "prompt":
        prompts: torch.nn.Module = TokenPrompts(
            context.soft_prompt, context.class_names, settings.n_ctx, settings.init_text, generator
        )
    else:
        prompts = EmbeddingPrompts(_initial_vectors(context, train), generator)
    tags = torch.as_tensor(context.tags[train], dtype=torch.float32)
    detectors = BinaryDetectors(prompts, context.tags[train].mean(axis=0), _scale(context, settings))
    n = len(train)
    batch_size = settings.batch_size or default_batch_size(n)
    optimizer = torch.optim.AdamW(
        [p for p in detectors.parameters() if p.requires_grad], lr=learning_rate(settings, variant), weight_decay=0.0
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs * math.ceil(n / batch_size))
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(n, generator=generator)
        kept = seen = 0
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            f = torch.from_numpy(rows_float32(context.embeddings, train[batch.numpy()]))
            y = tags[batch]
            margin = detectors.logits(f)  # (B, K) log-odds of "tag present"
            loss = F.binary_cross_entropy_with_logits(margin, y, reduction="none")
            if epoch > settings.warmup_epochs:
                # DeFT's split, per pair: keep the pairs whose given tag the detector currently agrees with.
                agree = (margin.detach() > 0) == (y > 0.5)
                loss = loss[agree]
                kept += int(agree.sum())
            else:
                kept += loss.numel()
            seen += y.numel()
            loss = loss.mean() if loss.numel() else margin.sum() * 0.0
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        if task is not None:
            task.advance()
            task.describe(
                f"Scoring tags: deft ({variant}) epoch {epoch}/{settings.epochs}, kept {kept / max(seen, 1):.1%}"
            )
    return detectors


@torch.no_grad()
def predict(detectors: BinaryDetectors, context: MultilabelContext, rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), context.n_classes), dtype=np.float32)
    for block in row_blocks(len(rows)):
        f = torch.from_numpy(rows_float32(context.embeddings, rows[block]))
        out[block] = torch.sigmoid(detectors.logits(f)).numpy()
    return out


EMBEDDING_LR = 0.05
# Options of the tag-set detector that the single-label DeftSettings does not have.
MULTILABEL_ONLY_OPTIONS = ("deft_clean_split",)


def settings_from_options(options: dict[str, Any]) -> DeftSettings:
    """The ``deft_<setting>`` entries of ``options`` (the flat names ``audit()`` takes, ``deft_ctx`` for
    ``n_ctx``) as a typed DeftSettings, read through the config so that defaults and aliases are written once."""
    from ..config import AuditConfig

    flat = {k: v for k, v in options.items() if k.startswith("deft_") and k not in MULTILABEL_ONLY_OPTIONS}
    settings: DeftSettings = AuditConfig().with_options(**flat).scoring.settings_for("deft")
    if settings.init_text is None:  # the modality's words; the context knows no modality, CLIP's are the default
        settings = replace(settings, init_text=INIT_TEXT[str(options.get("modality", "image"))])
    return settings


def multilabel_settings(options: dict[str, Any]) -> DeftSettings:
    """The single-label settings, with the tag-set defaults: no clean/noisy split, a higher embedding-variant
    learning rate (see the module doc)."""
    settings = settings_from_options(options)
    if not options.get("deft_clean_split", False):
        settings = replace(settings, warmup_epochs=settings.epochs)
    return settings


def score_deft(context: MultilabelContext) -> PairResult:
    settings = multilabel_settings(context.options)
    settings.check()
    variant = _variant(context, settings)
    if settings.lr is None and variant == "embedding":
        settings = replace(settings, lr=EMBEDDING_LR)
    n = len(context.tags)
    folds = min(settings.folds, n)
    fold_ids = multilabel_folds(context.tags, folds, context.seed) if folds > 1 else np.zeros(n, dtype=np.int64)
    probs = np.zeros(context.tags.shape, dtype=np.float32)
    threads = 1 if variant == "embedding" else torch.get_num_threads()  # tiny products: one thread is faster
    with context.reporter.task("Scoring tags: deft", total=folds * settings.epochs) as task, torch_threads(threads):
        for fold in range(folds):
            held_out = np.flatnonzero(fold_ids == fold)
            train = np.flatnonzero(fold_ids != fold) if folds > 1 else held_out
            detectors = train_binary_deft(context, settings, variant, train, context.seed + fold, task)
            probs[held_out] = predict(detectors, context, held_out)
    scored = learnable_classes(context.tags)
    return PairResult.thresholded(
        context.tags,
        probs,
        scored,
        {
            "variant": variant,
            "detector": "sigmoid(scale * (cos(x, positive prompt) - cos(x, negative prompt)) + offset) per class",
            "epochs": settings.epochs,
            "clean_split": settings.warmup_epochs < settings.epochs,
            "warmup_epochs": settings.warmup_epochs,
            "folds": folds,
            "lr": learning_rate(settings, variant),
            "logit_scale": _scale(context, settings),
            "flag_rule": "the detector is on the other side of 1/2 from the given tag",
        },
    )
