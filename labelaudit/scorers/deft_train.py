"""The torch side of DeFT (labelaudit.scorers.deft): the learned prompts, their training loop and scoring."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..chunked import class_means, row_blocks, rows_float32
from ..encoders import SoftPromptModel
from . import ScoreContext
from .deft import DeftSettings, default_batch_size, learning_rate, logit_scale


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


def build_prompts(
    context: ScoreContext,
    settings: DeftSettings,
    variant: str,
    train_index: np.ndarray,
    generator: torch.Generator,
) -> torch.nn.Module:
    if variant == "prompt":
        tower = context.soft_prompt_model()
        assert tower is not None and settings.init_text is not None
        return TokenPrompts(tower, context.class_names, settings.n_ctx, settings.init_text, generator)
    if context.class_embeddings is not None:
        init = torch.as_tensor(context.class_embeddings, dtype=torch.float32)
    else:
        means = class_means(context.embeddings, context.labels, context.n_classes, train_index)
        init = torch.from_numpy(means)
    return EmbeddingPrompts(F.normalize(init, dim=-1), generator)


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
    prompts = build_prompts(context, settings, variant, train_index, generator)
    scale = logit_scale(context, settings)
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


@torch.no_grad()
def score_with(
    prompts: torch.nn.Module, context: ScoreContext, settings: DeftSettings, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(p_clean, float32 softmax of positive logits) for the samples in ``index``, a block of rows at a time."""
    pos, neg = prompts()
    scale = logit_scale(context, settings)
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


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def threads_for(variant: str) -> contextlib.AbstractContextManager[None]:
    # Embedding-variant steps are tiny matrix products: one thread is faster than a contended pool.
    return torch_threads(1 if variant == "embedding" else torch.get_num_threads())
