"""open_clip encoder: any open_clip architecture with a hub tag, a local checkpoint, or random weights."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelUnavailableError
from . import IMAGE_TEMPLATES, TEXT_TEMPLATES, normalize
from .hub import hub_cache_dir, hub_reachable, offline
from .plan import RANDOM_WEIGHTS, cached_weight_file

NETWORK_TIMEOUT_S = "10"


def _register_config_file(model: str) -> str:
    """``--model path/to/arch.json`` registers that architecture with open_clip under the file's stem."""
    import open_clip

    path = Path(model)
    if path.suffix == ".json" and path.is_file():
        open_clip.add_model_config(path)
        return path.stem
    return model


def _pretrained_cfg(model: str, tag: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.pretrained.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        known = ", ".join(tags[:12]) if tags else "none (use --checkpoint FILE or --pretrained random)"
        raise ModelUnavailableError(f"open_clip has no pretrained tag {tag!r} for {model}; known tags: {known}")
    return cfg


def default_pretrained_tag(model: str) -> str:
    import open_clip

    model = _register_config_file(model)
    if model not in open_clip.list_models():
        raise ModelUnavailableError(_unknown_model_message(model))
    tags = open_clip.list_pretrained_tags_by_model(model)
    if "laion2b_s34b_b79k" in tags:
        return "laion2b_s34b_b79k"
    if not tags:
        raise ModelUnavailableError(
            f"open_clip lists no pretrained weights for {model}: pass --checkpoint FILE, or --pretrained random"
        )
    return tags[0]


def _unknown_model_message(model: str) -> str:
    import open_clip

    close = [m for m in open_clip.list_models() if model.lower().replace("/", "-") in m.lower()][:8]
    hint = (
        f" Did you mean: {', '.join(close)}?"
        if close
        else " See `python -c 'import open_clip; print(open_clip.list_models())'`."
    )
    return f"unknown open_clip model {model!r}.{hint}"


def weights_available_offline(model: str, tag: str) -> bool:
    try:
        return cached_weight_file(_pretrained_cfg(model, tag)) is not None
    except ModelUnavailableError:
        return False


@contextlib.contextmanager
def _short_network_timeouts() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")}
    for key, value in saved.items():
        if value is None:
            os.environ[key] = NETWORK_TIMEOUT_S
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def resolve_weights(model: str, tag: str) -> tuple[str, dict[str, Any]]:
    """Local weight file for ``model``/``tag``: from the cache, else one bounded download attempt."""
    import open_clip

    cfg = _pretrained_cfg(model, tag)
    cached = cached_weight_file(cfg)
    if cached:
        return cached, cfg
    how_to = (
        f"Download it once on a machine with internet (it lands in {hub_cache_dir()}), or pass a local state dict "
        f"with --checkpoint FILE (e.g. open_clip_pytorch_model.bin for {model})."
    )
    if offline():
        raise ModelUnavailableError(
            f"CLIP weights {model}/{tag} are not in the local cache and HF_HUB_OFFLINE is set. {how_to}"
        )
    # One quick look at the hub before downloading: without a network, the hub client would retry for minutes.
    if cfg.get("hf_hub") and not hub_reachable():
        raise ModelUnavailableError(
            f"CLIP weights {model}/{tag} are not in the local cache and the model hub cannot be reached "
            f"(no network?). {how_to}"
        )
    try:
        with _short_network_timeouts():
            path = open_clip.pretrained.download_pretrained(cfg)
    except Exception as exc:  # network libraries raise many types; all mean the same to the user
        raise ModelUnavailableError(
            f"could not download CLIP weights {model}/{tag} ({type(exc).__name__}: {str(exc)[:200]}). {how_to}"
        ) from None
    if not path or not os.path.isfile(path):
        raise ModelUnavailableError(f"could not download CLIP weights {model}/{tag}. {how_to}")
    return path, cfg


def file_fingerprint(path: Path) -> str:
    from ..storage import hash_file

    return hash_file(path)


class OpenClipEncoder:
    """Image and text embeddings from an open_clip model, plus its text tower for soft prompts."""

    def __init__(self, model: str, pretrained: str | None, checkpoint: str | None, device: torch.device) -> None:
        import open_clip

        model = _register_config_file(model)
        if model not in open_clip.list_models():
            raise ModelUnavailableError(_unknown_model_message(model))
        kwargs: dict[str, Any] = {}
        if checkpoint is not None:
            ckpt = Path(checkpoint).expanduser()
            if not ckpt.is_file():
                raise ModelUnavailableError(f"--checkpoint {ckpt} does not exist")
            weights: str | None = str(ckpt)
            weight_id = f"file:{file_fingerprint(ckpt)}"
            if pretrained and pretrained not in RANDOM_WEIGHTS:
                cfg = _pretrained_cfg(model, pretrained)
                kwargs = _preprocess_kwargs(cfg)
        elif pretrained is None or pretrained.lower() in RANDOM_WEIGHTS:
            weights, weight_id = None, "random-seed0"
        else:
            weights, cfg = resolve_weights(model, pretrained)
            kwargs = _preprocess_kwargs(cfg)
            weight_id = pretrained
        # Random weights must be the same in every run, or the embedding cache would mix two models.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            try:
                self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                    model, pretrained=weights, device=device, **kwargs
                )
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                raise ModelUnavailableError(f"cannot load {model} weights from {weights}: {str(exc)[:300]}") from None
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model)
        self.device = device
        self.name = model
        self.identity = f"open_clip:{model}:{weight_id}"
        self.description = f"open_clip {model} ({'random weights' if weights is None else weight_id})"
        scale = getattr(self.model, "logit_scale", None)
        self.logit_scale: float | None = float(scale.exp().item()) if scale is not None else None
        if weights is None:
            self.logit_scale = None  # a random model's scale means nothing; fit a temperature instead

    def image_transform(self) -> Callable[[Any], torch.Tensor]:
        return self.preprocess

    def templates(self, modality: str) -> Sequence[str]:
        return IMAGE_TEMPLATES if modality == "image" else TEXT_TEMPLATES

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def encode_image_batch(self, pixels: torch.Tensor) -> np.ndarray:
        with self._autocast():
            features = self.model.encode_image(pixels.to(self.device, non_blocking=True))
        return normalize(features.float().cpu().numpy())

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start : start + batch_size])).to(self.device)
            with self._autocast():
                out.append(self.model.encode_text(tokens).float().cpu().numpy())
        return normalize(np.concatenate(out))

    def soft_prompt_model(self) -> ClipSoftPrompt | None:
        tower = getattr(self.model, "text", self.model)
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final")
        if not all(hasattr(tower, attr) for attr in needed) or getattr(tower, "cls_emb", None) is not None:
            return None
        return ClipSoftPrompt(tower, self.tokenizer, self.device)


def _preprocess_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    keys = {
        "mean": "image_mean",
        "std": "image_std",
        "interpolation": "image_interpolation",
        "resize_mode": "image_resize_mode",
    }
    return {arg: cfg[key] for key, arg in keys.items() if key in cfg}


class ClipSoftPrompt:
    """CLIP's text tower run on ``[SOT] ctx_1..ctx_m <class name tokens> . [EOT]`` with learned ctx vectors.

    Sequences are cut right after the longest EOT token: with the causal mask, later positions cannot
    change the EOT output, and the shorter sequence makes each training step several times cheaper.
    """

    def __init__(self, tower: torch.nn.Module, tokenizer: Any, device: torch.device) -> None:
        self.tower = tower
        self.tokenizer = tokenizer
        self.device = device
        self.width = int(tower.token_embedding.weight.shape[1])
        for parameter in tower.parameters():
            parameter.requires_grad_(False)

    def _tokens(self, text: str) -> torch.Tensor:
        return self.tokenizer([text])[0].to(self.device)

    def token_embeddings(self, text: str) -> torch.Tensor:
        tokens = self._tokens(text)
        eot = int(tokens.argmax())
        return self.tower.token_embedding(tokens[1:eot]).detach()

    def encode(self, context: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        tower = self.tower
        n_ctx = context.shape[0]
        # Placeholder words keep the token layout; their embeddings are replaced by the context vectors.
        placeholder = " ".join(["X"] * n_ctx)
        tokens = self.tokenizer([f"{placeholder} {name}.".strip() for name in class_names]).to(self.device)
        eot_positions = tokens.argmax(dim=-1)
        length = int(eot_positions.max()) + 1
        tokens = tokens[:, :length]
        cast_dtype = (
            tower.transformer.get_cast_dtype() if hasattr(tower.transformer, "get_cast_dtype") else torch.float32
        )
        embedded = tower.token_embedding(tokens).to(cast_dtype)
        if n_ctx:
            ctx = context.to(cast_dtype).unsqueeze(0).expand(len(class_names), -1, -1)
            embedded = torch.cat([embedded[:, :1], ctx, embedded[:, 1 + n_ctx :]], dim=1)
        x = embedded + tower.positional_embedding[:length].to(cast_dtype)
        mask = tower.attn_mask
        if mask is not None:
            mask = mask[:length, :length]
        x = tower.transformer(x, attn_mask=mask)
        x = tower.ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), eot_positions]
        projection = tower.text_projection
        if projection is not None:
            pooled = projection(pooled) if isinstance(projection, torch.nn.Linear) else pooled @ projection
        return F.normalize(pooled.float(), dim=-1)
