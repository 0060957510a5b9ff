"""Embedding stage: samples -> one L2-normalised vector each, through the cache.

Only samples whose content hash is not cached are embedded; they are saved in shards as the run goes,
so an interrupted run resumes where it stopped. Images decode in DataLoader workers so the model does
not wait on disk; a file that fails to decode is skipped with its reason, never fatal.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps

from . import storage
from .cache import EmbeddingCache
from .discover import SkippedFile
from .encoders import Encoder
from .progress import QUIET, Reporter

DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
SHARD_ROWS = 4096


@dataclass
class EmbeddingResult:
    vectors: np.ndarray  # (n_kept, dim) float16 as cached (half the memory), rows in the order of the kept samples
    kept: np.ndarray  # bool mask over the input samples
    skipped: list[SkippedFile] = field(default_factory=list)
    n_cached: int = 0
    n_embedded: int = 0


def load_image(path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image the way every user file should be opened: size-capped, first frame, upright, RGB.

    ``path`` may be a URI (``s3://bucket/img/a.jpg``): its bytes are read through pyarrow.fs in this process."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        with Image.open(storage.readable(path)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(f"image is {width}x{height}, over the {max_pixels:,}-pixel cap (--max-pixels)")
            image.seek(0)
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float32)
                array = (255.0 * (array - array.min()) / max(float(np.ptp(array)), 1.0)).astype(np.uint8)
                image = Image.fromarray(array)
            return image.convert("RGB")


def _skip_reason(exc: BaseException) -> str:
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return "image over the pixel cap (possible decompression bomb)"
    if isinstance(exc, FileNotFoundError):
        return "file not found (deleted during the audit?)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a readable image (corrupt or wrong extension)"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot decode image: {text[:200]}"


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], transform: Callable[[Any], torch.Tensor], max_pixels: int) -> None:
        self.paths = paths
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return index, self.transform(load_image(self.paths[index], self.max_pixels)), None
        except Exception as exc:  # any decoder failure means "skip this file", never "stop the audit"
            return index, None, _skip_reason(exc)


def _collate(
    batch: list[tuple[int, torch.Tensor | None, str | None]],
) -> tuple[list[int], torch.Tensor | None, list[tuple[int, str]]]:
    good = [(i, t) for i, t, _ in batch if t is not None]
    bad = [(i, reason) for i, t, reason in batch if t is None and reason is not None]
    pixels = torch.stack([t for _, t in good]) if good else None
    return [i for i, _ in good], pixels, bad


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _ShardBuffer:
    """Collects embedded rows and stores them in the cache every ``SHARD_ROWS`` rows."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache
        self.hashes: list[str] = []
        self.vectors: list[np.ndarray] = []

    def add(self, hashes: list[str], vectors: np.ndarray) -> None:
        self.hashes.extend(hashes)
        self.vectors.append(vectors)
        if len(self.hashes) >= SHARD_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.hashes:
            self.cache.store(self.hashes, np.concatenate(self.vectors))
            self.hashes, self.vectors = [], []


def embed_samples(
    samples: pd.DataFrame,
    modality: str,
    encoder: Encoder,
    cache: EmbeddingCache,
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    reporter: Reporter = QUIET,
) -> EmbeddingResult:
    hashes = samples["content_hash"].tolist()
    found, cached = cache.lookup(hashes)
    n = len(samples)
    vectors: np.ndarray | None = cached
    kept = found.copy()
    skipped: list[SkippedFile] = []
    missing = np.flatnonzero(~found)

    def put(rows: list[int], batch_vectors: np.ndarray) -> None:
        nonlocal vectors
        if vectors is None:
            vectors = np.zeros((n, batch_vectors.shape[1]), dtype=np.float16)
        # float16, as the cache stores it, so a cold run and a cached re-run give byte-identical reports.
        vectors[rows] = batch_vectors.astype(np.float16)
        kept[rows] = True

    buffer = _ShardBuffer(cache)
    try:
        with reporter.task("Embedding", total=len(missing)) as task:
            if len(missing) and modality == "text":
                texts = samples["text"].tolist()
                for start in range(0, len(missing), batch_size):
                    rows = missing[start : start + batch_size].tolist()
                    batch_vectors = encoder.encode_texts([texts[i] for i in rows])
                    put(rows, batch_vectors)
                    buffer.add([hashes[i] for i in rows], batch_vectors)
                    task.advance(len(rows))
            elif len(missing):
                transform = encoder.image_transform()
                paths = samples["path"].tolist()
                files = _ImageFiles([paths[i] for i in missing], transform, max_pixels)
                n_workers = default_workers() if workers is None else workers
                loader = torch.utils.data.DataLoader(
                    files,
                    batch_size=batch_size,
                    shuffle=False,
                    num_workers=n_workers,
                    collate_fn=_collate,
                    pin_memory=encoder.device.type == "cuda",
                    persistent_workers=False,
                    prefetch_factor=4 if n_workers > 0 else None,
                )
                for local_rows, pixels, bad in loader:
                    for local, reason in bad:
                        skipped.append(SkippedFile(samples["sample_id"].iat[missing[local]], reason, "embed"))
                    if pixels is not None:
                        rows = [int(missing[i]) for i in local_rows]
                        batch_vectors = encoder.encode_image_batch(pixels)
                        put(rows, batch_vectors)
                        buffer.add([hashes[i] for i in rows], batch_vectors)
                    task.advance(len(local_rows) + len(bad))
    finally:
        buffer.flush()  # keep what was embedded, also when interrupted
    if vectors is None:
        vectors = np.zeros((0, 0), dtype=np.float16)
        kept[:] = False
    return EmbeddingResult(
        vectors=vectors if kept.all() else vectors[kept],
        kept=kept,
        skipped=skipped,
        n_cached=int(found.sum()),
        n_embedded=int(kept.sum() - found.sum()),
    )
