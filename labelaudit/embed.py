"""Embedding stage: samples -> one L2-normalised vector each, through the cache.

Only samples whose content hash is not cached are embedded; they are saved in shards as the run goes,
so an interrupted run resumes where it stopped. Images decode in DataLoader workers so the model does
not wait on disk; a file that fails to decode is skipped with its reason, never fatal.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from . import storage
from .cache import EmbeddingCache
from .chunked import row_blocks, rows_float32
from .config import EmbedSpec
from .discover import SkippedFile
from .encoders import Encoder, normalize
from .errors import LabelAuditError, io_reason
from .hashing import hash_bytes, hash_text
from .progress import NULL_TASK, QUIET, Reporter

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_IMAGE_PIXELS = EmbedSpec.max_pixels
SHARD_ROWS = 4096


@dataclass
class EmbeddingResult:
    vectors: np.ndarray  # (n_kept, dim) float16 as cached (half the memory), rows in the order of the kept samples
    kept: np.ndarray  # bool mask over the input samples
    skipped: list[SkippedFile] = field(default_factory=list)
    n_cached: int = 0
    n_embedded: int = 0


class FileChangedError(Exception):
    """The file's bytes are not the ones discovery hashed: it was rewritten while the audit ran."""


DELETED_DURING_AUDIT = "deleted during the audit"
CHANGED_DURING_AUDIT = "changed during the audit (its content differs from when it was found): run again to include it"


def shard_rows() -> int:
    """Rows per cache shard: ``LABELAUDIT_SHARD_ROWS`` or ``SHARD_ROWS``. A hard kill (SIGKILL, OOM, power
    loss) loses at most this many embeddings; smaller shards lose less but make more files to read back."""
    raw = os.environ.get("LABELAUDIT_SHARD_ROWS")
    if raw is None:
        return SHARD_ROWS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise LabelAuditError(f"LABELAUDIT_SHARD_ROWS must be a whole number of at least 1, not {raw!r}")
    return value


def load_image(path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, expected_hash: str | None = None) -> Image.Image:
    """Open an image the way every user file should be opened: size-capped, first frame, upright, RGB.

    With ``expected_hash`` (the content hash from discovery) the file is read once, checked against the
    hash and decoded from those very bytes: the cache stores a vector under the hash of the content it
    was computed from, so a file rewritten since discovery raises FileChangedError instead of filing
    the new picture's vector under the old picture's hash. ``path`` may be a URI (``s3://bucket/a.jpg``):
    its bytes are then read through pyarrow.fs in this process."""
    data = storage.read_bytes(storage.resolve(path))
    if expected_hash is not None and hash_bytes(data) != expected_hash:
        raise FileChangedError(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        with Image.open(io.BytesIO(data)) as image:
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


def skip_reason(exc: BaseException) -> str:
    """The reason a sample image is skipped, in words a user can act on."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return "image over the pixel cap (possible decompression bomb)"
    if isinstance(exc, FileNotFoundError):
        return DELETED_DURING_AUDIT  # discovery found and hashed it, so it went away since
    if isinstance(exc, FileChangedError):
        return CHANGED_DURING_AUDIT
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a readable image (corrupt or wrong extension)"
    if isinstance(exc, OSError) and (exc.strerror or isinstance(exc, PermissionError)):
        return io_reason(exc)  # the disk, not the image: in discovery's words
    return f"cannot decode image: {io_reason(exc)}"


class _ImageFiles:
    """The images to embed, as a map-style dataset for torch's DataLoader (which needs only these two methods;
    not subclassing its Dataset keeps torch out of a run that embeds nothing)."""

    def __init__(
        self, paths: list[str], hashes: list[str], transform: Callable[[Any], torch.Tensor], max_pixels: int
    ) -> None:
        self.paths = paths
        self.hashes = hashes
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = load_image(self.paths[index], self.max_pixels, self.hashes[index])
            return index, self.transform(image), None
        except Exception as exc:  # any decoder failure means "skip this file", never "stop the audit"
            return index, None, skip_reason(exc)


def _collate(
    batch: list[tuple[int, torch.Tensor | None, str | None]],
) -> tuple[list[int], torch.Tensor | None, list[tuple[int, str]]]:
    import torch

    good = [(i, t) for i, t, _ in batch if t is not None]
    bad = [(i, reason) for i, t, reason in batch if t is None and reason is not None]
    pixels = torch.stack([t for _, t in good]) if good else None
    return [i for i, _ in good], pixels, bad


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _ShardBuffer:
    """Collects embedded rows and stores them in the cache every ``shard_rows()`` rows."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache
        self.rows = shard_rows()
        self.hashes: list[str] = []
        self.vectors: list[np.ndarray] = []

    def add(self, hashes: list[str], vectors: np.ndarray) -> None:
        self.hashes.extend(hashes)
        self.vectors.append(vectors)
        if len(self.hashes) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if self.hashes:
            self.cache.store(self.hashes, np.concatenate(self.vectors))
            self.hashes, self.vectors = [], []


def embedding_batches(hashes: list[str], found: np.ndarray, batch_size: int) -> list[list[int]]:
    """The batches to embed, as row indices: each distinct content once (its first row), cut into batches of
    ``batch_size`` in discovery order, and only the batches with a member the cache lacks.

    A batch's members are fixed by the dataset alone, never by what the cache holds: a model's output for a
    sample varies in the last bits with its batch-mates (padding, kernel choice), so a resumed run must embed
    a sample beside the very samples an uninterrupted run would, or its report would not be byte-identical.
    An interrupted run saves whole batches, so a resumed one re-embeds no cached sample."""
    first: dict[str, int] = {}
    for row, content_hash in enumerate(hashes):
        first.setdefault(content_hash, row)
    distinct = list(first.values())
    batches = [distinct[start : start + batch_size] for start in range(0, len(distinct), batch_size)]
    return [batch for batch in batches if not found[batch].all()]


def _ignore_sigterm(_worker_id: int) -> None:
    # SIGTERM goes to the whole process group (timeout, CI runners): the main process says what was saved and
    # stops the workers; a worker killed by it first would only add a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A worker hands its batches over through multiprocessing's resource-sharer thread; when the main process
    # stops early, that thread's socket closes under it and it reports the error through sys.excepthook (a
    # traceback on the user's terminal). That failure is expected then: keep it quiet, let any other through.
    default_hook = sys.excepthook

    def quiet_resource_sharer(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if any(frame.filename.endswith("resource_sharer.py") for frame in traceback.extract_tb(tb)):
            return
        default_hook(kind, error, tb)

    sys.excepthook = quiet_resource_sharer


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
    """Every sample's vector: from the cache, else embedded (each distinct content once, in the batches
    ``embedding_batches`` fixes) and saved to the cache as the run goes."""
    hashes = samples["content_hash"].tolist()
    found, cached = cache.lookup(hashes)
    if cached is not None:
        make_cached_rows_unit(cached, found)
    n = len(samples)
    vectors: np.ndarray | None = cached
    kept = found.copy()
    skipped: list[SkippedFile] = []
    batches = embedding_batches(hashes, found, batch_size)
    rows_of: dict[str, list[int]] = {}
    for row, content_hash in enumerate(hashes):
        rows_of.setdefault(content_hash, []).append(row)
    failed: dict[str, str] = {}  # content hash -> why its file could not be embedded

    buffer = _ShardBuffer(cache)

    def put(batch_rows: list[int], batch_vectors: np.ndarray) -> None:
        """Keep the fresh vectors of the batch's uncached members (for all their duplicates) and save them;
        a cached member keeps the cached vector, so this run agrees with every later warm one."""
        nonlocal vectors
        batch_vectors = unit_rows(batch_vectors)
        if vectors is None:
            vectors = np.zeros((n, batch_vectors.shape[1]), dtype=np.float16)
        fresh = [(row, vector) for row, vector in zip(batch_rows, batch_vectors, strict=True) if not found[row]]
        for row, vector in fresh:
            rows = rows_of[hashes[row]]
            # float16, as the cache stores it, so a cold run and a cached re-run give byte-identical reports.
            vectors[rows] = vector.astype(np.float16)
            kept[rows] = True
        if fresh:
            buffer.add([hashes[row] for row, _ in fresh], np.stack([vector for _, vector in fresh]))

    load = getattr(encoder, "load", None)  # a LazyEncoder: its own spinner first, then the Embedding bar
    if batches and callable(load):
        load()
    # Nothing to embed (every vector cached): no bar at all, rather than one frozen at 0/0.
    total = sum(len(batch) for batch in batches)
    progress = reporter.task("Embedding", total=total) if batches else contextlib.nullcontext(NULL_TASK)
    try:
        with progress as task:
            if batches and modality == "text":
                texts = samples["text"].tolist()
                for batch in batches:
                    put(batch, encoder.encode_texts([texts[i] for i in batch]))
                    task.advance(len(batch))
            elif batches:
                import torch

                transform = encoder.image_transform()
                files = _ImageFiles(samples["path"].tolist(), hashes, transform, max_pixels)
                n_workers = default_workers() if workers is None else workers
                loader = torch.utils.data.DataLoader(
                    files,
                    batch_sampler=batches,
                    num_workers=n_workers,
                    collate_fn=_collate,
                    pin_memory=encoder.device.type == "cuda",
                    persistent_workers=False,
                    prefetch_factor=4 if n_workers > 0 else None,
                    worker_init_fn=_ignore_sigterm if n_workers > 0 else None,
                )
                for rows, pixels, bad in loader:
                    for row, reason in bad:
                        if not found[row]:  # a cached member that fails now keeps its cached vector
                            failed[hashes[row]] = reason
                    if pixels is not None:
                        put(rows, encoder.encode_image_batch(pixels))
                    task.advance(len(rows) + len(bad))
    finally:
        buffer.flush()  # keep what was embedded, also when interrupted
    for content_hash, reason in failed.items():
        skipped.extend(SkippedFile(samples["sample_id"].iat[row], reason, "embed") for row in rows_of[content_hash])
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


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` with each row scaled to unit length where the encoder returned one that is not. Encoders
    promise L2-normalised rows (labelaudit.encoders), and everything downstream reads an inner product as a
    cosine: from an encoder that breaks the promise, every neighbour read as a near duplicate (cosines
    clamped to 1), so every sample was a duplicate conflict. Rows within 1e-3 of unit length, as every bundled
    encoder returns them, are left as they are, so their vectors (and the cache's) do not move."""
    vectors = np.asarray(vectors)
    norms = np.linalg.norm(np.asarray(vectors, dtype=np.float32), axis=1)
    off = np.abs(norms - 1.0) > 1e-3
    if not off.any():
        return vectors
    fixed = np.array(vectors, dtype=np.float32)
    fixed[off] = normalize(fixed[off])
    return fixed


def make_cached_rows_unit(vectors: np.ndarray, found: np.ndarray) -> None:
    """Scale, in place, the found rows of a cache lookup that are not unit length: a cache written before
    the embed stage made rows unit length (``unit_rows``) may hold such an encoder's rows as it returned them.
    One block of rows at a time (a float32 copy of a block, not of the matrix; 0.34 CPU s per 200k x 512);
    rows within 1e-3, all the bundled encoders' and every row stored since, are left as they are."""
    for block in row_blocks(len(vectors)):
        rows = rows_float32(vectors, block)
        fixed = unit_rows(rows)
        if fixed is not rows:  # some row of the block is off (rows not found are zero: they stay as they are)
            kept = found[block]
            vectors[block][kept] = fixed[kept].astype(vectors.dtype)


def embed_class_prompts(
    encoder: Encoder, class_names: Sequence[str], modality: str, cache: EmbeddingCache | None = None
) -> np.ndarray:
    """One vector per class: the normalised mean of its template embeddings (CLIP's prompt ensembling).

    With a cache, prompt texts are cached like samples: on a CPU the text tower costs as much as the
    rest of a warm re-run, so a re-run should not pay it again.
    """
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
