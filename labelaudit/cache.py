"""Embedding cache keyed by encoder identity + sample content hash, on a disk or in a bucket.

Layout: ``CACHE_DIR/<encoder key>/shard-*.npz``. Each shard holds content hashes, float16 vectors and a
digest of both. On a disk it is written to a temp file and renamed, so a killed run or two audits sharing
the folder never leave a half-written shard; in a bucket (``CACHE_DIR`` = ``s3://...``, ``gs://...``) it
is one PUT, which an object store makes visible complete or not at all. A shard whose digest does not
match is deleted and its samples are embedded again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Generator, Mapping
from pathlib import Path

import numpy as np

from . import storage
from .storage import Location, StoragePath

CACHE_FORMAT = 1
STALE_TEMP_S = 3600


def _digest(hashes: np.ndarray, vectors: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(hashes).tobytes())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest()


def _checked_shard(data: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, vectors) of a shard whose digest matches; raises otherwise (the shard is then evicted)."""
    hashes, vectors, digest = data["hashes"], data["vectors"], str(data["digest"])
    if _digest(hashes, vectors) != digest or len(hashes) != len(vectors):
        raise ValueError("digest mismatch")
    return hashes, vectors


class EmbeddingCache:
    def __init__(self, root: str | Path | Location | None, identity: str) -> None:
        self.identity = identity
        key = hashlib.blake2b(f"{CACHE_FORMAT}:{identity}".encode(), digest_size=8).hexdigest()
        self.folder: Path | Location | None = None if root is None else storage.resolve(root) / key
        self.stored_rows = 0  # rows this process saved, for the message of an interrupted run
        self._evicted: list[StoragePath] = []  # corrupt shards deleted (appended from reader threads)
        self._memory: dict[str, np.ndarray] = {}
        self._marker_written = False

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    @property
    def corrupt_shards(self) -> int:
        return len(self._evicted)

    def _shards(self) -> list[StoragePath]:
        if self.folder is None:
            return []
        # Shard temp files a killed run left behind; another audit may be writing one now (the folder may be
        # shared), so only those untouched for STALE_TEMP_S go: a write takes seconds.
        storage.remove_stale_temp_files(self.folder, ".shard-*.tmp", STALE_TEMP_S)
        with storage.failures_explained("list the embedding cache", self.folder):
            return storage.list_files(self.folder, "shard-", ".npz")

    def _read_shard(self, shard: StoragePath) -> tuple[np.ndarray, np.ndarray] | None:
        # A shard removed by a concurrent run's cleanup is a miss (its rows are elsewhere or re-embedded);
        # a network or permission failure says nothing about the shard, so it stops the run and the shard stays.
        return storage.load_npz_or_evict(
            shard,
            _checked_shard,
            read_error="read the embedding cache shard",
            on_evict=lambda: self._evicted.append(shard),
        )

    def _shard_contents(self) -> Generator[tuple[np.ndarray, np.ndarray] | None, None, None]:
        """(hashes, vectors) of every readable shard, in order; bucket objects are fetched on a thread pool."""
        yield from storage.map_reads(self._read_shard, self._shards())

    def lookup(self, hashes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (found mask, float16 matrix with a row per hash; rows not found are zero). A hash listed
        more than once (exact duplicates) is found for every row that lists it."""
        wanted: dict[str, list[int]] = {}
        for i, h in enumerate(hashes):
            wanted.setdefault(h, []).append(i)
        found = np.zeros(len(hashes), dtype=bool)
        matrix: np.ndarray | None = None

        def take(shard_hashes: np.ndarray, shard_vectors: np.ndarray) -> None:
            nonlocal matrix
            for row, h in enumerate(shard_hashes.tolist()):
                rows = wanted.get(h)
                if rows is None or found[rows[0]]:
                    continue
                if matrix is None:
                    matrix = np.zeros((len(hashes), shard_vectors.shape[1]), dtype=np.float16)
                matrix[rows] = shard_vectors[row]
                found[rows] = True

        if self._memory:
            keys = np.array(list(self._memory), dtype="U32")
            take(keys, np.stack(list(self._memory.values())))
        if not found.all():
            contents = self._shard_contents()
            for content in contents:
                if content is not None:
                    take(*content)
                if found.all():
                    break
            contents.close()  # stops the fetch thread pool now, not when garbage collected
        return found, matrix

    def store(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Persist one batch of embeddings as a new shard (or keep them in memory when disabled)."""
        if not hashes:
            return
        vectors16 = np.asarray(vectors, dtype=np.float16)
        if self.folder is None:
            self._memory.update(zip(hashes, vectors16, strict=True))
            return
        hash_array = np.array(hashes, dtype="U32")
        arrays = {"hashes": hash_array, "vectors": vectors16, "digest": np.array(_digest(hash_array, vectors16))}
        marker = self.folder / "encoder.json"
        with storage.failures_explained("write the embedding cache", self.folder):
            # Checked once per cache object, not per shard: in a bucket every check is a request.
            if not self._marker_written and not storage.is_file(marker):
                text = json.dumps({"identity": self.identity, "format": CACHE_FORMAT}) + "\n"
                storage.write_bytes_atomic(marker, text.encode())
            self._marker_written = True
            storage.save_npz(self.folder / f"shard-{uuid.uuid4().hex}.npz", arrays)
        self.stored_rows += len(hashes)


class ScoreCache:
    """Scorer results keyed by everything that determines them: ``key_parts`` (samples, labels, classes,
    seed, labelaudit version) plus the method's own settings. Scorers are deterministic, so an unchanged
    re-run (the common CI case) reads its results back instead of retraining; any change to a sample, label
    or setting is a miss, and changing one method's settings leaves the others' entries valid."""

    def __init__(self, folder: Path | Location | None, key_parts: list[str]) -> None:
        self.folder = folder
        self.key_parts = list(key_parts)

    def _path(self, method: str, settings: str) -> Path | Location | None:
        if self.folder is None:
            return None
        digest = hashlib.blake2b(digest_size=16)
        for part in [*self.key_parts, method, settings]:
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        return self.folder / f"{method}-{digest.hexdigest()}.npz"

    def load(self, method: str, settings: str) -> dict[str, np.ndarray] | None:
        """The stored arrays of ``method`` run with ``settings`` (scorers.settings_key), or None."""
        path = self._path(method, settings)
        if path is None:
            return None
        # Missing, damaged (deleted) or unreadable just now: each is a miss, and the scorer runs again.
        return storage.load_npz_or_evict(path, lambda data: {name: data[name] for name in data.files})

    def save(self, method: str, settings: str, arrays: dict[str, np.ndarray]) -> None:
        path = self._path(method, settings)
        if path is not None:
            storage.save_npz(path, arrays, "write the score cache")
