"""Encoders turn samples and class prompts into L2-normalised vectors in one shared space.

Every encoder offers the same small surface (``Encoder``); ``resolve_encoder`` maps the user's
``--model/--pretrained/--checkpoint`` to one. Heavy libraries are imported only when an encoder is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

IMAGE_TEMPLATES = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a cropped photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a close-up photo of a {}.",
)
TEXT_TEMPLATES = ("{}", "This text is about {}.")

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_TEXT_MODEL = "st:all-MiniLM-L6-v2"


class SoftPromptModel(Protocol):
    """A frozen text tower that accepts learned context vectors in place of some input tokens."""

    width: int  # size of one input token embedding

    def token_embeddings(self, text: str) -> torch.Tensor:
        """Input embeddings of ``text``'s tokens (no special tokens), shape (n_tokens, width)."""

    def encode(self, context: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """Embed ``[context] <class name>.`` for every class; context (m, width) -> (K, dim), not normalised."""


class Encoder(Protocol):
    identity: str
    description: str
    logit_scale: float | None
    device: torch.device

    def image_transform(self) -> Callable[[Any], torch.Tensor] | None: ...

    def encode_image_batch(self, pixels: torch.Tensor) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def templates(self, modality: str) -> Sequence[str]: ...

    def soft_prompt_model(self) -> SoftPromptModel | None: ...


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def resolve_encoder(
    modality: str,
    model: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    device: str = "auto",
) -> tuple[Encoder, list[str]]:
    """Build the encoder a user asked for; returns it with notes worth telling the user."""
    notes: list[str] = []
    torch_device = pick_device(device)
    if model is not None and model.startswith("st:"):
        if modality == "image":
            from ..errors import LabelAuditError

            raise LabelAuditError("sentence-transformers models embed text only; use an open_clip model for images")
        from .sentence import SentenceEncoder

        return SentenceEncoder(model[3:], torch_device), notes

    from .openclip import OpenClipEncoder, default_pretrained_tag, weights_available_offline

    explicit = model is not None or pretrained is not None or checkpoint is not None
    if modality == "text" and not explicit:
        if weights_available_offline(DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED):
            return OpenClipEncoder(DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, None, torch_device), notes
        from .sentence import SentenceEncoder

        notes.append(
            f"No local CLIP weights for {DEFAULT_CLIP_MODEL}/{DEFAULT_CLIP_PRETRAINED}: text is embedded with the "
            "offline sentence-transformers model all-MiniLM-L6-v2 (pass --model/--checkpoint to choose)."
        )
        return SentenceEncoder(DEFAULT_TEXT_MODEL[3:], torch_device), notes
    model_name = model or DEFAULT_CLIP_MODEL
    if checkpoint is None and pretrained is None:
        pretrained = default_pretrained_tag(model_name)
        if model is not None:
            notes.append(f"Using pretrained weights {model_name}/{pretrained} (choose with --pretrained).")
    return OpenClipEncoder(model_name, pretrained, checkpoint, torch_device), notes
