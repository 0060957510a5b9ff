"""Encoders turn samples and class prompts into L2-normalised vectors in one shared space.

Every encoder offers the same small surface (``Encoder``); ``resolve_encoder`` maps the user's
``--model/--pretrained/--checkpoint`` to one. Heavy libraries are imported only when an encoder is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

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

if TYPE_CHECKING:
    from ..cache import EmbeddingCache

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


def embed_class_prompts(
    encoder: Encoder, class_names: Sequence[str], modality: str, cache: EmbeddingCache | None = None
) -> np.ndarray:
    """One vector per class: the normalised mean of its template embeddings (CLIP's prompt ensembling).

    With a cache, prompt texts are cached like samples: on a CPU the text tower costs as much as the
    rest of a warm re-run, so a re-run should not pay it again.
    """
    from ..discover import hash_text

    templates = list(encoder.templates(modality))
    texts = [t.format(name) for name in class_names for t in templates]
    if cache is None:
        vectors = encoder.encode_texts(texts)
    else:
        hashes = [hash_text(text) for text in texts]
        found, vectors = cache.lookup(hashes)
        missing = np.flatnonzero(~found)
        if len(missing):
            fresh = encoder.encode_texts([texts[i] for i in missing])
            fresh = fresh.astype(np.float16).astype(np.float32)  # as stored, so cold and warm runs agree
            if vectors is None:
                vectors = np.zeros((len(texts), fresh.shape[1]), dtype=np.float32)
            vectors[missing] = fresh
            cache.store([hashes[i] for i in missing], fresh)
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(class_names), len(templates), -1).mean(axis=1)
    return normalize(vectors)


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
