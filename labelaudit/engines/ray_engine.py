"""Ray engine for the embedding stage: decode in Ray Data CPU tasks, embed in an actor pool, write the cache.

Discovery stays on the driver. Only the samples whose content hash is not in the embedding cache go into a
Ray Dataset; ``map_batches`` CPU tasks open and preprocess the images exactly like the local engine
(``load_image`` + the encoder's own transform), an actor pool with one model per actor embeds them, and
every actor writes its batches straight into the same ``EmbeddingCache`` shards the local engine uses.
Sample paths and the cache location travel as strings; a worker given ``s3://...`` opens the bucket itself
through pyarrow.fs, so every node needs credentials (and the endpoint, if not AWS) in its own environment.
The driver then reads all embeddings back through the normal cache lookup, so a dead actor, an
interrupted run, a later local run or a CI run never recompute what is already stored.

This module imports ray and torch only inside its functions, so importing it is cheap and safe.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from ..cache import EmbeddingCache
from ..config import EmbedSpec, EngineSpec
from ..discover import SkippedFile
from ..errors import LabelAuditError
from ..progress import QUIET, Reporter
from . import EmbedJob, require_ray
from .ray_folds import RayFolds, ray_session

if TYPE_CHECKING:
    from ..embed import EmbeddingResult
    from ..encoders import Encoder
    from ..scorers import FoldRunner

EncoderFactory = Callable[[], "Encoder"]
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def build_encoder(
    modality: str, model: str | None, pretrained: str | None, checkpoint: str | None, device: str
) -> Encoder:
    """Rebuild the driver's encoder inside a Ray actor (picklable through ``functools.partial``)."""
    from ..encoders import resolve_encoder

    return resolve_encoder(modality, model, pretrained, checkpoint, device)[0]


def encoder_factory(
    modality: str, model: str | None, pretrained: str | None, checkpoint: str | None, device: str
) -> EncoderFactory:
    """A factory the actors call; relative model/checkpoint paths are made absolute for other processes."""
    if model is not None and model.endswith(".json") and Path(model).is_file():
        model = str(Path(model).resolve())
    if checkpoint is not None:
        checkpoint = str(Path(checkpoint).expanduser().resolve())
    return partial(build_encoder, modality, model, pretrained, checkpoint, device)


def _decode_batch(
    batch: dict[str, np.ndarray], transform: Callable[[Any], Any], max_pixels: int, shape: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """CPU task: open + preprocess every image of a batch; an unreadable file becomes ok=False with a reason."""
    from ..embed import load_image, skip_reason

    n = len(batch["row"])
    pixels = np.zeros((n, *shape), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    reasons = [""] * n
    for i, (path, content_hash) in enumerate(zip(batch["path"].tolist(), batch["hash"].tolist(), strict=True)):
        try:
            image = load_image(path, max_pixels, str(content_hash))
            pixels[i] = np.asarray(transform(image), dtype=np.float32)
            ok[i] = True
        except Exception as exc:  # any decoder failure means "skip this file", never "stop the audit"
            reasons[i] = skip_reason(exc)
    return {
        "row": batch["row"],
        "hash": batch["hash"],
        "ok": ok,
        "reason": np.array(reasons, dtype=object),
        "pixels": pixels,
    }


class EmbedActor:
    """One model per actor; stores each embedded batch as a cache shard before returning it."""

    def __init__(self, factory: EncoderFactory, cache_root: str | None, identity: str, modality: str) -> None:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        self.encoder = factory()
        if self.encoder.identity != identity:
            raise RuntimeError(f"actor built encoder {self.encoder.identity!r}, the driver uses {identity!r}")
        # A folder path or a bucket URI: this actor opens the bucket itself, with its own node's credentials.
        self.cache = EmbeddingCache(cache_root, identity) if cache_root is not None else None
        self.modality = modality

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        n = len(batch["row"])
        ok = batch["ok"] if "ok" in batch else np.ones(n, dtype=bool)
        good = np.flatnonzero(ok)
        vectors: np.ndarray | None = None
        if len(good):
            if self.modality == "text":
                vectors = self.encoder.encode_texts([str(t) for t in batch["text"][good].tolist()])
            else:
                vectors = self.encoder.encode_image_batch(torch.from_numpy(np.ascontiguousarray(batch["pixels"][good])))
            if self.cache is not None:
                self.cache.store([str(h) for h in batch["hash"][good].tolist()], vectors)
        out: dict[str, np.ndarray] = {
            "row": batch["row"],
            "ok": ok,
            "reason": batch["reason"] if "reason" in batch else np.array([""] * n, dtype=object),
        }
        if self.cache is None:  # no shared cache folder: hand the vectors back to the driver instead
            full = np.zeros((n, 0 if vectors is None else vectors.shape[1]), dtype=np.float16)
            if vectors is not None:
                full[good] = vectors.astype(np.float16)
            out["vectors"] = full
        return out


def _pixel_shape(transform: Callable[[Any], Any]) -> tuple[int, ...]:
    return tuple(np.asarray(transform(Image.new("RGB", (32, 32)))).shape)


def _runtime_env(address: str | None) -> dict[str, Any]:
    """Make the workers import this very labelaudit: by PYTHONPATH locally, shipped as a py_module remotely."""
    if address in (None, "local"):
        paths = [PACKAGE_PARENT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
    return {"py_modules": [str(Path(PACKAGE_PARENT) / "labelaudit")]}


def embed_samples_ray(
    samples: pd.DataFrame,
    modality: str,
    encoder: Encoder,
    factory: EncoderFactory,
    cache: EmbeddingCache,
    batch_size: int = EmbedSpec.batch_size,
    max_pixels: int = EmbedSpec.max_pixels,
    concurrency: int | None = None,
    address: str | None = None,
    reporter: Reporter = QUIET,
) -> EmbeddingResult:
    """``embed_samples`` on Ray: same result, same cache; ``concurrency`` = embedding actors (default 1 per GPU)."""
    from ..embed import EmbeddingResult

    hashes = samples["content_hash"].astype(str).tolist()
    found_before, _ = cache.lookup(hashes)
    missing = np.flatnonzero(~found_before)
    skipped_rows: dict[int, str] = {}
    if len(missing):
        with audit_session(address) as ray:  # joins the audit's session when one is open
            skipped_rows = _execute(
                ray, samples, modality, encoder, factory, cache, missing, batch_size, max_pixels, concurrency, reporter
            )
    found, matrix = cache.lookup(hashes)
    lost = [int(i) for i in missing if not found[i] and int(i) not in skipped_rows]
    if lost:
        raise LabelAuditError(
            f"the Ray workers embedded {len(lost)} sample(s) that the driver cannot find in the cache folder "
            f"{cache.folder}: on a multi-node cluster --cache-dir must be a file system shared by every node "
            "or an object-store URI (s3://..., gs://...) every node can reach"
        )
    skipped = [
        SkippedFile(samples["sample_id"].iat[row], reason, "embed") for row, reason in sorted(skipped_rows.items())
    ]
    vectors = matrix[found] if matrix is not None else np.zeros((0, 0), dtype=np.float16)
    return EmbeddingResult(
        vectors=vectors,
        kept=found,
        skipped=skipped,
        n_cached=int(found_before.sum()),
        n_embedded=int(found.sum() - found_before.sum()),
    )


def audit_session(address: str | None) -> contextlib.AbstractContextManager[ModuleType]:
    """The Ray session an ``--engine ray`` audit holds from embedding through scoring (reused when open)."""
    return ray_session(address, _runtime_env(address))


def _execute(
    ray: Any,
    samples: pd.DataFrame,
    modality: str,
    encoder: Encoder,
    factory: EncoderFactory,
    cache: EmbeddingCache,
    missing: np.ndarray,
    batch_size: int,
    max_pixels: int,
    concurrency: int | None,
    reporter: Reporter,
) -> dict[int, str]:
    ray.data.DataContext.get_current().enable_progress_bars = False
    column = "text" if modality == "text" else "path"
    values = samples[column].astype(str).tolist()
    hashes = samples["content_hash"].astype(str).tolist()
    items = [{"row": int(i), "hash": hashes[i], column: values[i]} for i in missing]
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = concurrency or max(1, gpus)
    blocks = max(1, min(len(items), math.ceil(len(items) / batch_size), 1000))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    if modality == "image":
        transform = encoder.image_transform()
        if transform is None:
            raise LabelAuditError(f"{encoder.description} cannot embed images")
        dataset = dataset.map_batches(
            _decode_batch,
            batch_size=batch_size,
            batch_format="numpy",
            fn_kwargs={"transform": transform, "max_pixels": max_pixels, "shape": _pixel_shape(transform)},
            num_cpus=1,
        )
    dataset = dataset.map_batches(
        EmbedActor,
        batch_size=batch_size,
        batch_format="numpy",
        fn_constructor_kwargs={
            "factory": factory,
            "cache_root": str(cache.folder.parent) if cache.folder is not None else None,
            "identity": encoder.identity,
            "modality": modality,
        },
        compute=ray.data.ActorPoolStrategy(size=actors),
        # Ray Data restarts a dead actor and retries the batch it was running (max_restarts=-1 by default);
        # an exception raised by our code fails the run instead, after the shards already written.
        num_gpus=1 if gpus else None,
    )
    skipped: dict[int, str] = {}
    try:
        with reporter.task(f"Embedding on Ray ({actors} actor{'s' if actors > 1 else ''})", total=len(items)) as task:
            for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
                rows, ok = batch["row"], batch["ok"]
                for row, reason in zip(rows[~ok].tolist(), batch["reason"][~ok].tolist(), strict=True):
                    skipped[int(row)] = str(reason)
                if "vectors" in batch and ok.any():
                    cache.store([hashes[int(r)] for r in rows[ok]], batch["vectors"][ok])
                task.advance(len(rows))
    except (KeyboardInterrupt, LabelAuditError):
        raise
    except Exception as exc:  # ray wraps worker errors in its own types
        first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise LabelAuditError(
            f"the Ray embedding run failed ({type(exc).__name__}: {first_line})."
            " Embeddings computed so far are saved in the cache; run the same command again to resume."
        ) from exc
    return skipped


def _return(encoder: Encoder) -> Encoder:
    return encoder


def fixed_encoder(encoder: Encoder) -> EncoderFactory:
    """A factory for an encoder object passed to ``audit(encoder=...)``: the object is pickled to each actor."""
    return partial(_return, encoder)


class RayEngine:
    """``--engine ray``: one Ray session from embedding through scoring (a local Ray starts once per audit)."""

    name = "ray"

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec

    def check(self) -> None:
        require_ray()  # before discovery, when the extra is missing

    @contextlib.contextmanager
    def session(self) -> Iterator[FoldRunner]:
        with audit_session(self.spec.ray_address) as ray:
            yield RayFolds(ray)

    def embed(self, job: EmbedJob, reporter: Reporter) -> EmbeddingResult:
        rebuild = job.rebuild
        factory = (
            fixed_encoder(job.encoder)
            if rebuild is None
            else encoder_factory(job.modality, rebuild.model, rebuild.pretrained, rebuild.checkpoint, rebuild.device)
        )
        return embed_samples_ray(
            job.samples,
            job.modality,
            job.encoder,
            factory,
            job.cache,
            batch_size=job.spec.batch_size,
            max_pixels=job.spec.max_pixels,
            concurrency=self.spec.ray_concurrency,
            address=self.spec.ray_address,
            reporter=reporter,
        )

    def saved_note(self, cache: EmbeddingCache) -> str:
        return f"Embeddings the Ray actors finished are saved in the cache ({cache.folder})."


ENGINE = RayEngine
