"""Which encoder an audit uses, decided without loading it; the model itself loads on the first cache miss.

``plan_encoder`` turns ``--model/--pretrained/--checkpoint`` into an ``EncoderPlan``: the encoder's identity
(its cache key), its description and its prompt templates, all known without torch or a model library. A
``LazyEncoder`` answers those from the plan and builds the real encoder only when something has to be
embedded, so a fully cached re-run never imports torch, open_clip or sentence-transformers.

The one fact a plan cannot know is a trained CLIP model's logit scale (the scorers read it); the first load
writes it beside the cached embeddings (``ENCODER_FACTS``), and later runs read it back from there.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LabelAuditError, ModelUnavailableError

if TYPE_CHECKING:
    import torch

    from ..progress import Reporter
    from ..storage import Location
    from . import Encoder, SoftPromptModel

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
# open_clip's hub repository for the default weights (tests check it against open_clip's own table): knowing
# it here tells whether they are downloaded without importing open_clip, which imports torch.
DEFAULT_CLIP_HUB = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/"
DEFAULT_TEXT_MODEL = "st:all-MiniLM-L6-v2"
RANDOM_WEIGHTS = ("random", "none")
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
ENCODER_FACTS = "encoder-facts.json"


def cached_weight_file(cfg: dict[str, Any]) -> str | None:
    """The local path of an open_clip tag's weights if they are already downloaded; never touches the network."""
    if cfg.get("file"):
        return cfg["file"]
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        for name in [filename] if filename else HF_WEIGHT_FILES:
            found = try_to_load_from_cache(repo_id, name)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url", "")
    if url:
        candidate = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None


def default_clip_weights_cached() -> bool:
    return cached_weight_file({"hf_hub": DEFAULT_CLIP_HUB}) is not None


@dataclass(frozen=True)
class EncoderPlan:
    """What to build, and what the audit needs to know about it before (or instead of) building it."""

    kind: str  # "open_clip" or "sentence-transformers"
    model: str  # open_clip architecture (or its .json config) / sentence-transformers name or folder
    pretrained: str | None  # open_clip tag, or a RANDOM_WEIGHTS word
    checkpoint: str | None
    device: str  # as asked: auto, cpu, cuda, ...
    identity: str
    description: str

    @property
    def has_trained_scale(self) -> bool:
        """Whether the model carries a trained logit scale (random CLIP weights and text models do not)."""
        return self.kind == "open_clip" and self.identity.rsplit(":", 1)[-1] != "random-seed0"

    def templates(self, modality: str) -> Sequence[str]:
        if self.kind == "open_clip" and modality == "image":
            return IMAGE_TEMPLATES
        return TEXT_TEMPLATES


def _open_clip_plan(model: str, pretrained: str | None, checkpoint: str | None, device: str) -> EncoderPlan:
    path = Path(model)
    name = path.stem if path.suffix == ".json" and path.is_file() else model  # a config file registers as its stem
    if checkpoint is not None:
        from ..storage import hash_file

        ckpt = Path(checkpoint).expanduser()
        if not ckpt.is_file():
            raise ModelUnavailableError(f"--checkpoint {ckpt} does not exist")
        weight_id, described = f"file:{hash_file(ckpt)}", None
    elif pretrained is None or pretrained.lower() in RANDOM_WEIGHTS:
        weight_id, described = "random-seed0", "random weights"
    else:
        weight_id, described = pretrained, None
    return EncoderPlan(
        kind="open_clip",
        model=model,
        pretrained=pretrained,
        checkpoint=checkpoint,
        device=device,
        identity=f"open_clip:{name}:{weight_id}",
        description=f"open_clip {name} ({described or weight_id})",
    )


def _sentence_plan(name: str, device: str) -> EncoderPlan:
    short = Path(name).name if Path(name).exists() else name.split("/")[-1]
    return EncoderPlan(
        kind="sentence-transformers",
        model=name,
        pretrained=None,
        checkpoint=None,
        device=device,
        identity=f"sentence-transformers:{short}",
        description=f"sentence-transformers {short}",
    )


def plan_encoder(
    modality: str,
    model: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    device: str = "auto",
) -> tuple[EncoderPlan, list[str]]:
    """The encoder a user asked for, not yet loaded; with notes worth telling the user."""
    notes: list[str] = []
    if model is not None and model.startswith("st:"):
        if modality == "image":
            raise LabelAuditError("sentence-transformers models embed text only; use an open_clip model for images")
        return _sentence_plan(model[3:], device), notes
    explicit = model is not None or pretrained is not None or checkpoint is not None
    if modality == "text" and not explicit:
        if default_clip_weights_cached():
            return _open_clip_plan(DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, None, device), notes
        notes.append(
            f"No local CLIP weights for {DEFAULT_CLIP_MODEL}/{DEFAULT_CLIP_PRETRAINED}: text is embedded with the "
            "offline sentence-transformers model all-MiniLM-L6-v2 (pass --model/--checkpoint to choose)."
        )
        return _sentence_plan(DEFAULT_TEXT_MODEL[3:], device), notes
    model_name = model or DEFAULT_CLIP_MODEL
    if checkpoint is None and pretrained is None:
        if model_name == DEFAULT_CLIP_MODEL:
            pretrained = DEFAULT_CLIP_PRETRAINED
        else:  # which tags a model has is open_clip's table: asking it costs the import
            from .openclip import default_pretrained_tag

            pretrained = default_pretrained_tag(model_name)
        if model is not None:
            notes.append(f"Using pretrained weights {model_name}/{pretrained} (choose with --pretrained).")
    return _open_clip_plan(model_name, pretrained, checkpoint, device), notes


class LazyEncoder:
    """An ``Encoder`` that loads its model on first use: identity, description and templates come from the plan,
    the logit scale from the facts a previous load stored; embedding anything builds the model (once)."""

    def __init__(
        self,
        plan: EncoderPlan,
        reporter: Reporter | None = None,
        build: Callable[[EncoderPlan], Encoder] | None = None,
    ) -> None:
        self.plan = plan
        self.identity = plan.identity
        self.description = plan.description
        self._reporter = reporter
        self._build = build or _build
        self._loaded: Encoder | None = None
        self._facts_folder: Path | Location | None = None
        self.load_seconds: float | None = None  # None: the model never loaded

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def remember_in(self, folder: Path | Location | None) -> None:
        """Where the facts of this encoder live (its embedding-cache folder), or None without a cache."""
        self._facts_folder = folder

    def load(self) -> Encoder:
        if self._loaded is None:
            from ..progress import QUIET

            reporter = self._reporter or QUIET
            start = time.perf_counter()
            with reporter.task(f"Loading {self.description}", total=None):
                encoder = self._build(self.plan)
            self.load_seconds = round(time.perf_counter() - start, 3)
            if encoder.identity != self.identity:  # the cache would file vectors under another model's name
                raise RuntimeError(f"planned encoder {self.identity!r}, built {encoder.identity!r}")
            self._loaded = encoder
            self._store_facts(encoder.logit_scale)
        return self._loaded

    def _facts_file(self) -> Path | Location | None:
        return None if self._facts_folder is None else self._facts_folder / ENCODER_FACTS

    def _store_facts(self, logit_scale: float | None) -> None:
        target = self._facts_file()
        if target is None or not self.plan.has_trained_scale:
            return
        from .. import storage

        # json writes a float as its repr, which reads back as the very same float: cached and cold runs agree.
        text = json.dumps({"identity": self.identity, "logit_scale": logit_scale}) + "\n"
        with storage.failures_explained("write the embedding cache", target):
            storage.write_bytes_atomic(target, text.encode())

    def _stored_scale(self) -> tuple[bool, float | None]:
        target = self._facts_file()
        if target is None:
            return False, None
        from .. import storage

        try:
            facts = json.loads(storage.read_bytes(target))
        except (OSError, ValueError):  # missing or damaged: load the model and write it again
            return False, None
        if not isinstance(facts, dict) or facts.get("identity") != self.identity or "logit_scale" not in facts:
            return False, None
        scale = facts["logit_scale"]
        return (True, float(scale)) if isinstance(scale, int | float) else (False, None)

    @property
    def logit_scale(self) -> float | None:
        if self._loaded is not None:
            return self._loaded.logit_scale
        if not self.plan.has_trained_scale:
            return None
        known, scale = self._stored_scale()
        return scale if known else self.load().logit_scale

    @property
    def device(self) -> torch.device:
        return self.load().device

    def templates(self, modality: str) -> Sequence[str]:
        return self.plan.templates(modality)

    def image_transform(self) -> Callable[[Any], torch.Tensor] | None:
        return self.load().image_transform()

    def encode_image_batch(self, pixels: torch.Tensor) -> Any:
        return self.load().encode_image_batch(pixels)

    def encode_texts(self, texts: Sequence[str]) -> Any:
        return self.load().encode_texts(texts)

    def soft_prompt_model(self) -> SoftPromptModel | None:
        return self.load().soft_prompt_model()


def _build(plan: EncoderPlan) -> Encoder:
    from . import build_encoder

    check_default_weights_reachable(plan)
    return build_encoder(plan)


def check_default_weights_reachable(plan: EncoderPlan) -> None:
    """Fail before torch and open_clip are imported (4-5 s on a small machine) when the default CLIP weights
    are neither on disk nor downloadable: the first thing a new user without a network would otherwise wait
    for. Other tags are checked by ``openclip.resolve_weights``, which needs open_clip's table of tags."""
    if plan.kind != "open_clip" or plan.checkpoint is not None:
        return
    if (plan.model, plan.pretrained) != (DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED) or default_clip_weights_cached():
        return
    from .hub import hub_cache_dir, hub_reachable, offline

    how_to = (
        f"Download it once on a machine with internet (it lands in {hub_cache_dir()}), or pass a local state dict "
        f"with --checkpoint FILE (e.g. open_clip_pytorch_model.bin for {plan.model})."
    )
    where = f"CLIP weights {plan.model}/{plan.pretrained} are not in the local cache"
    if offline():
        raise ModelUnavailableError(f"{where} and HF_HUB_OFFLINE is set. {how_to}")
    if not hub_reachable():
        raise ModelUnavailableError(f"{where} and the model hub cannot be reached (no network?). {how_to}")
