"""Encoders turn samples and class prompts into L2-normalised vectors in one shared space.

Every encoder offers the same small surface (``Encoder``); ``resolve_encoder`` maps the user's
``--model/--pretrained/--checkpoint`` to one. Heavy libraries are imported only when an encoder is built.
An encoder handed to the Python API that returns rows of another length is not trusted on it: the embed stage
scales those rows to unit length (labelaudit.embed.unit_rows), since every later stage reads inner products as
cosines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .plan import (  # noqa: F401  (re-exported: the templates and defaults have always lived here)
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    DEFAULT_TEXT_MODEL,
    IMAGE_TEMPLATES,
    TEXT_TEMPLATES,
    EncoderPlan,
    LazyEncoder,
    plan_encoder,
)

if TYPE_CHECKING:
    import torch


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
    import torch

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


def build_encoder(plan: EncoderPlan) -> Encoder:
    """Load the model a plan names (this is where torch and the model library are imported)."""
    torch_device = pick_device(plan.device)
    if plan.kind == "sentence-transformers":
        from .sentence import SentenceEncoder

        return SentenceEncoder(plan.model, torch_device)
    from .openclip import OpenClipEncoder

    return OpenClipEncoder(plan.model, plan.pretrained, plan.checkpoint, torch_device)


def resolve_encoder(
    modality: str,
    model: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    device: str = "auto",
) -> tuple[Encoder, list[str]]:
    """Build the encoder a user asked for now; returns it with notes worth telling the user."""
    plan, notes = plan_encoder(modality, model, pretrained, checkpoint, device)
    return build_encoder(plan), notes
