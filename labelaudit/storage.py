"""Where labelaudit reads and writes: a local path, or an object-store URI through ``pyarrow.fs``.

This is the only module that tells the two apart: every other module passes a ``StoragePath`` to the
functions here (read a sample, load or save an .npz entry, list a folder) and gets the same behaviour on
a disk and in a bucket.

A location string is either a plain path, kept as a ``pathlib.Path`` so the local code paths stay exactly
as fast and as atomic (temp file + rename) as before, or a URI that ``pyarrow.fs.FileSystem.from_uri``
understands: ``s3://``, ``gs://``, ``abfs://``, ``hdfs://`` (``file://`` becomes a plain path). A URI
becomes a ``Location``: plain strings (scheme, bucket, key, query) that pickle as they are, so a Ray
worker or a DataLoader process opens the filesystem itself, with the credentials of its own environment.

Credentials never go into a URI: every URI is written into reports and ``summary.json``.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import os
import posixpath
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from .errors import DataError, LabelAuditError
from .hashing import CHUNK_BYTES, DIGEST_SIZE, hash_stream
from .io import write_atomic

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Object stores make an object visible only when its upload completes, so a single PUT is already atomic.
OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})
# Reading many small objects one after another is bound by request latency, not bandwidth.
IO_THREADS = 16
# Defaults added to the URI when the filesystem is built (never to the URIs written into reports):
# - s3 allow_delayed_open: a small object is one PutObject instead of a three-request multipart upload;
# - gs retry_limit_seconds: google-cloud-cpp otherwise retries an unreachable endpoint for 15 minutes.
DEFAULT_QUERY = {"s3": {"allow_delayed_open": "true"}, "gs": {"retry_limit_seconds": "20"}}
DEFAULT_QUERY["gcs"] = DEFAULT_QUERY["gs"]
HINTS = {
    "s3": "check the endpoint (AWS_ENDPOINT_URL, or ?endpoint_override=HOST:PORT&scheme=http in the URI), the "
    "network, and the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) in this environment",
    "gs": "check the network and the credentials (GOOGLE_APPLICATION_CREDENTIALS, or `gcloud auth "
    "application-default login`) in this environment",
}
HINTS["gcs"] = HINTS["gs"]

T = TypeVar("T")


def is_uri(location: object) -> bool:
    return isinstance(location, str) and _URI.match(location) is not None


@dataclass(frozen=True)
class Location:
    """A file or folder on a pyarrow filesystem, named by URI parts (``s3://netloc/key?query``)."""

    scheme: str
    netloc: str  # the bucket (s3, gs), container@account (abfs) or host:port (hdfs)
    key: str  # the path below netloc, without leading or trailing slash; "" is the bucket itself
    query: str = ""  # filesystem options from the URI (endpoint_override, region, ...), kept for children

    @classmethod
    def parse(cls, uri: str) -> Location:
        scheme, rest = uri.split("://", 1)
        rest, _, query = rest.partition("?")
        netloc, _, key = rest.partition("/")
        if "@" in netloc and scheme.lower() not in ("abfs", "abfss"):
            raise LabelAuditError(
                f"{_redact(uri)}: put credentials in the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...), "
                "not in the URI: URIs are written into reports"
            )
        return cls(scheme.lower(), netloc, _normalize(key), query)

    @property
    def uri(self) -> str:
        base = f"{self.scheme}://{self.netloc}" + (f"/{self.key}" if self.key else "")
        return base + (f"?{self.query}" if self.query else "")

    def __str__(self) -> str:
        return self.uri

    def __truediv__(self, name: str) -> Location:
        return self.child(name)

    def child(self, relative: str) -> Location:
        return Location(self.scheme, self.netloc, _normalize(f"{self.key}/{relative}"), self.query)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def parent(self) -> Location:
        return Location(self.scheme, self.netloc, self.key.rsplit("/", 1)[0] if "/" in self.key else "", self.query)

    @property
    def bucket(self) -> Location:
        return Location(self.scheme, self.netloc, "", self.query)

    def is_relative_to(self, other: Location) -> bool:
        if (self.scheme, self.netloc) != (other.scheme, other.netloc) or self.key.split("/")[0] == "..":
            return False
        return not other.key or self.key == other.key or self.key.startswith(other.key + "/")

    def relative_to(self, other: Location) -> str:
        if not self.is_relative_to(other):
            raise ValueError(f"{self.uri} is not under {other.uri}")
        return self.key[len(other.key) :].lstrip("/")

    @property
    def filesystem(self) -> Any:
        return _filesystem(self.scheme, self.netloc, self.query)[0]

    @property
    def fs_path(self) -> str:
        root = _filesystem(self.scheme, self.netloc, self.query)[1]
        return f"{root}/{self.key}" if self.key else root or "/"

    @property
    def is_object_store(self) -> bool:
        return self.filesystem.type_name in OBJECT_STORES


StoragePath = Path | Location


def _normalize(key: str) -> str:
    """Collapse ``a//b``, ``./`` and ``..`` like a path; a key that climbs above the bucket keeps its ``..``,
    so it is never inside any folder of the bucket."""
    key = posixpath.normpath(key.strip("/")) if key.strip("/") else ""
    return "" if key == "." else key


def _redact(uri: str) -> str:
    scheme, _, rest = uri.partition("://")
    netloc, slash, tail = rest.partition("/")
    return f"{scheme}://***@{netloc.rsplit('@', 1)[-1]}{slash}{tail}" if "@" in netloc else uri


_filesystems: dict[tuple[int, str, str, str], tuple[Any, str]] = {}
_filesystems_lock = threading.Lock()


def _filesystem(scheme: str, netloc: str, query: str) -> tuple[Any, str]:
    """The filesystem for one bucket and its root path, built once per process.

    Keyed by process id: a forked DataLoader worker must not share the parent's pooled HTTP connections.
    """
    key = (os.getpid(), scheme, netloc, query)
    cached = _filesystems.get(key)
    if cached is not None:
        return cached
    with _filesystems_lock:
        if key not in _filesystems:
            _filesystems[key] = _build_filesystem(scheme, netloc, query)
        return _filesystems[key]


def _build_filesystem(scheme: str, netloc: str, query: str) -> tuple[Any, str]:
    from urllib.parse import parse_qsl, urlencode

    import pyarrow.fs as pafs

    given = dict(parse_qsl(query, keep_blank_values=True))
    defaults = {k: v for k, v in DEFAULT_QUERY.get(scheme, {}).items() if k not in given}
    uri = f"{scheme}://{netloc}/"
    for extra in (defaults, {}):  # an older pyarrow may not know a default option: then go without it
        options = {**given, **extra}
        try:
            fs, root = pafs.FileSystem.from_uri(uri + (f"?{urlencode(options)}" if options else ""))
            return fs, root.rstrip("/")
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a URI it cannot use
            if extra and any(name in str(exc) for name in extra):
                continue
            raise LabelAuditError(
                f"cannot open {Location(scheme, netloc, '', query).uri}: {_first_line(exc)}; {hint(scheme)}"
            ) from None
    raise AssertionError("unreachable")


def hint(scheme: str) -> str:
    return HINTS.get(scheme, "check the network and the credentials in this environment")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def resolve(location: str | Path | Location) -> Path | Location:
    """A plain path (``~`` expanded) or a ``Location`` for a URI; builds no filesystem and makes no request."""
    if isinstance(location, Location | Path):
        return location.expanduser() if isinstance(location, Path) else location
    text = str(location)
    if not is_uri(text):
        return Path(text).expanduser()
    if text.lower().startswith("file://"):
        import pyarrow.fs as pafs

        return Path(pafs.FileSystem.from_uri(text)[1])
    return Location.parse(text)


def check_reachable(location: Location, what: str) -> None:
    """Fail in seconds, with a message that says what to fix, when the bucket is missing or unreachable."""
    bucket = location.bucket
    try:
        info = bucket.filesystem.get_file_info(bucket.fs_path)
    except LabelAuditError:
        raise
    except Exception as exc:  # network, credentials, endpoint: pyarrow reports all of them as OSError
        raise LabelAuditError(
            f"{what} {location.uri}: cannot reach it ({_first_line(exc)}); {hint(location.scheme)}"
        ) from None
    import pyarrow.fs as pafs

    if info.type == pafs.FileType.NotFound:
        raise LabelAuditError(
            f"{what} {location.uri}: the bucket {bucket.uri} does not exist (or these credentials cannot see it); "
            f"create it first, or {hint(location.scheme)}"
        )


def open_location(location: str | Path | Location, what: str) -> Path | Location:
    """``resolve``, and for a URI check up front that its bucket exists and answers: a wrong endpoint or a
    missing bucket then stops the run in seconds, before discovery and model loading."""
    resolved = resolve(location)
    if isinstance(resolved, Location):
        check_reachable(resolved, what)
    return resolved


def storage_error(action: str, location: Location, exc: BaseException) -> LabelAuditError:
    return LabelAuditError(f"cannot {action} {location.uri}: {_first_line(exc)}; {hint(location.scheme)}")


def is_file(path: StoragePath) -> bool:
    if isinstance(path, Path):
        return path.is_file()
    import pyarrow.fs as pafs

    return path.filesystem.get_file_info(path.fs_path).type == pafs.FileType.File


def read_bytes(path: StoragePath) -> bytes:
    """The whole file; FileNotFoundError when it is missing, OSError when it cannot be read."""
    if isinstance(path, Path):
        return path.read_bytes()
    with path.filesystem.open_input_stream(path.fs_path) as stream:
        return stream.read()


def open_input(path: StoragePath) -> IO[bytes]:
    if isinstance(path, Path):
        return open(path, "rb")
    return path.filesystem.open_input_stream(path.fs_path)


def readable(path: str) -> str | IO[bytes]:
    """What PIL can open: a local path as is, a URI as an in-memory buffer of the object's bytes."""
    if not is_uri(path):
        return path
    location = resolve(path)
    if isinstance(location, Path):
        return str(location)
    return io.BytesIO(read_bytes(location))


def write_bytes_atomic(path: StoragePath, data: bytes) -> None:
    """Readers see the old content or the new one, never a part: temp + rename on a disk, one PUT on a bucket."""
    if isinstance(path, Path):
        write_atomic(path, lambda tmp: tmp.write_bytes(data))
        return
    fs = path.filesystem
    if path.is_object_store:
        target = path.fs_path
    else:  # e.g. HDFS: a write is visible while it runs, so write beside the target and move it over
        target = f"{path.parent.fs_path}/.{path.name}.{uuid.uuid4().hex}.tmp"
        fs.create_dir(path.parent.fs_path, recursive=True)
    try:
        # One write() of the whole buffer, then close(): the object appears complete at close or not at all.
        # (Readers check a digest or treat an unreadable entry as a miss anyway.)
        with fs.open_output_stream(target) as stream:
            stream.write(data)
        if target != path.fs_path:
            fs.move(target, path.fs_path)
    except Exception:
        if target != path.fs_path:
            with contextlib.suppress(OSError):
                fs.delete_file(target)
        raise


def remove(path: StoragePath) -> None:
    """Delete a file; one that is already gone is fine (another run may have removed it first)."""
    with contextlib.suppress(OSError):
        if isinstance(path, Path):
            path.unlink(missing_ok=True)
        else:
            path.filesystem.delete_file(path.fs_path)


def list_files(folder: StoragePath, prefix: str, suffix: str) -> list[Any]:
    """Files directly in ``folder`` named ``prefix*suffix``, sorted; one listing request on a bucket."""
    if isinstance(folder, Path):
        return sorted(folder.glob(f"{prefix}*{suffix}")) if folder.is_dir() else []
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(folder.fs_path, allow_not_found=True, recursive=False)
    names = [
        info.base_name
        for info in folder.filesystem.get_file_info(selector)
        if info.type == pafs.FileType.File and info.base_name.startswith(prefix) and info.base_name.endswith(suffix)
    ]
    return [folder / name for name in sorted(names)]


def walk_files(folder: Location) -> list[Location]:
    """Every file below ``folder`` (one recursive listing), sorted by key."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(folder.fs_path, allow_not_found=True, recursive=True)
    root = folder.fs_path.rstrip("/")
    found = [
        folder.child(info.path[len(root) :].lstrip("/"))
        for info in folder.filesystem.get_file_info(selector)
        if info.type == pafs.FileType.File and info.path.startswith(root)
    ]
    return sorted(found, key=lambda location: location.key)


def load_npz_or_evict(
    path: StoragePath,
    parse: Callable[[Mapping[str, np.ndarray]], T],
    *,
    read_error: str | None = None,
    on_evict: Callable[[], None] | None = None,
) -> T | None:
    """``parse`` of an .npz cache entry's arrays, or None when the entry is missing.

    An entry that cannot be read as an .npz or that ``parse`` rejects (any exception) is deleted and None
    returned: a damaged entry is a miss, never a wrong answer; ``on_evict`` is told. A bucket that cannot be
    reached says nothing about the entry: with ``read_error`` (what was being done, for the message) that
    raises a LabelAuditError, without it the entry counts as a miss and is kept."""
    if isinstance(path, Path):
        source: Path | io.BytesIO = path
    else:
        try:
            source = io.BytesIO(read_bytes(path))  # one GET; a missing object is the common miss
        except FileNotFoundError:
            return None
        except OSError as exc:
            if read_error is None:
                return None
            raise storage_error(read_error, path, exc) from None
    try:
        with np.load(source, allow_pickle=False) as data:
            return parse(data)
    except FileNotFoundError:
        return None  # removed by a concurrent run's cleanup
    except Exception:  # a corrupt zip raises many types; none of them may be trusted
        remove(path)
        if on_evict is not None:
            on_evict()
        return None


def save_npz(path: StoragePath, arrays: dict[str, np.ndarray], action: str | None = None) -> None:
    """Write an .npz atomically (temp + rename on a disk, one PUT in a bucket). With ``action`` (e.g. "write
    the score cache") a bucket's failure becomes a LabelAuditError saying what to check."""
    if isinstance(path, Path):

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        write_atomic(path, write)
        return
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with failures_explained(action, path) if action else contextlib.nullcontext():
        write_bytes_atomic(path, buffer.getvalue())


@contextlib.contextmanager
def failures_explained(action: str, location: StoragePath) -> Iterator[None]:
    """Turn a bucket's OSError into a LabelAuditError that says what to check; a disk's errors pass as they are."""
    try:
        yield
    except OSError as exc:
        if isinstance(location, Path):
            raise
        raise storage_error(action, location, exc) from None


def is_remote(path: StoragePath | None) -> bool:
    """Whether ``path`` is in an object store (or another pyarrow filesystem) rather than on this disk."""
    return isinstance(path, Location)


def hash_file(path: StoragePath) -> str:
    """The content hash of a file's bytes (labelaudit.hashing), read a chunk at a time."""
    with open_input(path) as handle:
        return hash_stream(handle)


def read_text(path: StoragePath) -> str:
    """A UTF-8 text file (a BOM is dropped). Raises ValueError naming the file otherwise."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 text (byte {exc.start}): re-save {path.name} as UTF-8, e.g. `iconv -t UTF-8`"
        ) from None


# Characters of a text sample kept for embedding and the report. Far more than any supported encoder reads
# (open_clip: 77 tokens; sentence-transformers: at most 512 word pieces): a 50 MB text file must not reach the
# tokenizer whole, which costs minutes and gigabytes for tokens the model drops anyway.
TEXT_CHARS_KEPT = 20_000
EMPTY_TEXT = "empty text file (nothing but whitespace): nothing to audit"


def read_sample(path: StoragePath, modality: str) -> tuple[str | None, str]:
    """(text, content hash) of one sample file: for a text its first TEXT_CHARS_KEPT characters and the hash
    of all of it, for an image (None, the hash of the bytes). A text is read a chunk at a time, so memory
    stays bounded whatever one file holds. Raises OSError, or ValueError for a text that is not UTF-8 or holds
    nothing but whitespace (both are skips with a reason, not errors)."""
    if modality != "text":
        return None, hash_file(path)
    with open_input(path) as handle:
        return read_text_sample(handle, path.name)


def read_text_sample(handle: IO[bytes], name: str) -> tuple[str, str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    kept: list[str] = []
    n_kept, offset = 0, 0
    while True:
        chunk = handle.read(CHUNK_BYTES)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"not UTF-8 text (byte {offset + exc.start}): re-save {name} as UTF-8, e.g. `iconv -t UTF-8`"
            ) from None
        # The hash is that of the decoded text (hashing.hash_text): the file's bytes without a BOM.
        digest.update(text.encode("utf-8"))
        if n_kept < TEXT_CHARS_KEPT:
            kept.append(text[: TEXT_CHARS_KEPT - n_kept])
            n_kept += len(kept[-1])
        offset += len(chunk)
        if not chunk:
            break
    content = "".join(kept)
    if not content.strip() and n_kept < TEXT_CHARS_KEPT:
        raise ValueError(EMPTY_TEXT)
    return content, digest.hexdigest()


def open_table(path: StoragePath, what: str) -> Path | io.BytesIO:
    """What pandas reads a table from: a local path as it is, an object's bytes fetched into memory (a
    Parquet reader needs to seek). A missing object or bucket is a DataError naming ``what``."""
    if isinstance(path, Path):
        return path
    try:
        return io.BytesIO(read_bytes(path))
    except FileNotFoundError:
        check_reachable(path, what)  # a missing bucket gets its own message
        raise DataError(f"{path} does not exist") from None
    except OSError as exc:
        raise storage_error(f"read the {what}", path, exc) from None


def remove_stale_temp_files(folder: StoragePath, pattern: str, age_s: float) -> None:
    """Delete temp files matching ``pattern`` that a killed writer left in a local folder, once untouched for
    ``age_s`` (another process sharing the folder may be writing one right now). A bucket has none: a PUT is
    atomic."""
    if not isinstance(folder, Path):
        return
    now = time.time()
    for tmp in folder.glob(pattern):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > age_s:
                tmp.unlink()


def map_reads(function: Callable[[T], Any], paths: list[StoragePath]) -> Iterator[Any]:
    """``map`` of a read over ``paths``, in order: one after another on a disk, on a thread pool for a
    bucket, where every read is a request and latency, not bandwidth, sets the pace (``map_io``)."""
    if any(isinstance(path, Location) for path in paths):
        return map_io(function, paths)  # type: ignore[arg-type]
    return map(function, paths)  # type: ignore[arg-type]


def map_io(function: Callable[[T], Any], items: Iterable[T], threads: int = IO_THREADS) -> Iterator[Any]:
    """``map`` over I/O-bound calls on a thread pool (pyarrow releases the GIL), in order.

    Submitted in chunks of two per thread, so at most that many results (e.g. cache shards of a few MB)
    wait in memory, and a consumer that stops early leaves little work running."""
    items = list(items)
    if len(items) <= 1:
        yield from map(function, items)
        return
    chunk = threads * 2
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        for start in range(0, len(items), chunk):
            yield from pool.map(function, items[start : start + chunk])
