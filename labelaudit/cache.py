"""Embedding cache keyed by encoder identity + sample content hash, on a disk or in a bucket.

Layout: ``CACHE_DIR/<encoder key>/shard-*.npz``. Each shard holds content hashes, float16 vectors and a
digest of both. On a disk it is written to a temp file and renamed, so a killed run or two audits sharing
the folder never leave a half-written shard; in a bucket (``CACHE_DIR`` = ``s3://...``, ``gs://...``) it
is one PUT, which an object store makes visible complete or not at all. A shard whose digest does not
match is deleted and its samples are embedded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
import uuid
from collections.abc import Generator
from pathlib import Path

import numpy as np

from . import storage
from .io import write_atomic, write_text_atomic
from .storage import Location, StoragePath

CACHE_FORMAT = 1
STALE_TEMP_S = 3600


def _digest(hashes: np.ndarray, vectors: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(hashes).tobytes())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest()


class EmbeddingCache:
    def __init__(self, root: str | Path | Location | None, identity: str) -> None:
        self.identity = identity
        key = hashlib.blake2b(f"{CACHE_FORMAT}:{identity}".encode(), digest_size=8).hexdigest()
        self.folder: Path | Location | None = None if root is None else storage.resolve(root) / key
        self.corrupt_shards = 0
        self.stored_rows = 0  # rows this process saved, for the message of an interrupted run
        self._memory: dict[str, np.ndarray] = {}
        self._marker_written = False

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def _shards(self) -> list[StoragePath]:
        if self.folder is None:
            return []
        if isinstance(self.folder, Path):
            if not self.folder.is_dir():
                return []
            self._remove_stale_temp_files()
            return sorted(self.folder.glob("shard-*.npz"))
        try:
            return storage.list_files(self.folder, "shard-", ".npz")
        except OSError as exc:
            raise storage.storage_error("list the embedding cache", self.folder, exc) from None

    def _remove_stale_temp_files(self) -> None:
        """Drop shard temp files a killed run left behind. Another audit may be writing one right now (the
        folder may be shared), so only those untouched for STALE_TEMP_S go; a write takes seconds."""
        assert isinstance(self.folder, Path)  # object stores have no temp files: a PUT is atomic
        now = time.time()
        for tmp in self.folder.glob(".shard-*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > STALE_TEMP_S:
                    tmp.unlink()

    def _read_shard(self, shard: Path) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with np.load(shard, allow_pickle=False) as data:
                hashes, vectors, digest = data["hashes"], data["vectors"], str(data["digest"])
            if _digest(hashes, vectors) != digest or len(hashes) != len(vectors):
                raise ValueError("digest mismatch")
            return hashes, vectors
        except FileNotFoundError:
            return None  # removed by a concurrent run's cleanup: its rows are elsewhere or re-embedded
        except Exception:  # a corrupt zip raises many types; none of them may be trusted
            self.corrupt_shards += 1
            with contextlib.suppress(OSError):
                shard.unlink()
            return None

    @staticmethod
    def _fetch(shard: Location) -> bytes | None:
        try:
            return storage.read_bytes(shard)
        except FileNotFoundError:
            return None  # removed by a concurrent run's cleanup, as on a disk
        except OSError as exc:  # a network or permission failure says nothing about the shard: keep it
            raise storage.storage_error("read the embedding cache shard", shard, exc) from None

    def _parse_object(self, shard: Location, content: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as data:
                hashes, vectors, digest = data["hashes"], data["vectors"], str(data["digest"])
            if _digest(hashes, vectors) != digest or len(hashes) != len(vectors):
                raise ValueError("digest mismatch")
            return hashes, vectors
        except Exception:  # the bytes arrived and are wrong: the object is corrupt
            self.corrupt_shards += 1
            storage.remove(shard)
            return None

    def _shard_contents(self) -> Generator[tuple[np.ndarray, np.ndarray] | None, None, None]:
        """(hashes, vectors) of every readable shard; objects are fetched on a thread pool, in order."""
        shards = self._shards()
        if not shards or isinstance(self.folder, Path):
            for shard in shards:
                yield self._read_shard(shard)
            return
        for shard, content in zip(shards, storage.map_io(self._fetch, shards), strict=True):
            yield None if content is None else self._parse_object(shard, content)

    def lookup(self, hashes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (found mask, float16 matrix with a row per hash; rows not found are zero)."""
        wanted = {h: i for i, h in enumerate(hashes)}
        found = np.zeros(len(hashes), dtype=bool)
        matrix: np.ndarray | None = None

        def take(shard_hashes: np.ndarray, shard_vectors: np.ndarray) -> None:
            nonlocal matrix
            for row, h in enumerate(shard_hashes.tolist()):
                i = wanted.get(h)
                if i is None or found[i]:
                    continue
                if matrix is None:
                    matrix = np.zeros((len(hashes), shard_vectors.shape[1]), dtype=np.float16)
                matrix[i] = shard_vectors[row]
                found[i] = True

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
        digest = _digest(hash_array, vectors16)
        if isinstance(self.folder, Location):
            self._store_object(hash_array, vectors16, digest)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = self.folder / "encoder.json"
        if not marker.exists():
            write_text_atomic(marker, json.dumps({"identity": self.identity, "format": CACHE_FORMAT}) + "\n")
        target = self.folder / f"shard-{uuid.uuid4().hex}.npz"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, hashes=hash_array, vectors=vectors16, digest=np.array(digest))

        write_atomic(target, write)
        self.stored_rows += len(hashes)

    def _store_object(self, hash_array: np.ndarray, vectors16: np.ndarray, digest: str) -> None:
        assert isinstance(self.folder, Location)
        marker = self.folder / "encoder.json"
        try:
            # Checked once per cache object, not per shard: on a bucket every check is a request.
            if not self._marker_written and not storage.is_file(marker):
                text = json.dumps({"identity": self.identity, "format": CACHE_FORMAT}) + "\n"
                storage.write_bytes_atomic(marker, text.encode())
            self._marker_written = True
            target = self.folder / f"shard-{uuid.uuid4().hex}.npz"
            storage.save_npz(target, {"hashes": hash_array, "vectors": vectors16, "digest": np.array(digest)})
        except OSError as exc:
            raise storage.storage_error("write the embedding cache", self.folder, exc) from None


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
        if isinstance(path, Location):
            return self._load_object(path)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except Exception:  # a damaged entry is a miss, never a wrong answer
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    @staticmethod
    def _load_object(path: Location) -> dict[str, np.ndarray] | None:
        try:
            content = storage.read_bytes(path)  # one GET; a missing object is the common miss
        except OSError:  # missing, or unreadable just now: either way the scorer runs again
            return None
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except Exception:  # a damaged entry is a miss, never a wrong answer
            storage.remove(path)
            return None

    def save(self, method: str, settings: str, arrays: dict[str, np.ndarray]) -> None:
        path = self._path(method, settings)
        if path is None:
            return
        if isinstance(path, Location):
            try:
                storage.save_npz(path, arrays)
            except OSError as exc:
                raise storage.storage_error("write the score cache", path, exc) from None
            return
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        write_atomic(path, write)
