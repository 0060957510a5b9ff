"""Data discovery: an image folder, a text folder, a CSV/Parquet manifest or a DataFrame -> a samples table.

The samples table has one row per usable sample with the columns
``sample_id, path, text, label, content_hash``. Files that cannot be used are not errors: they are
returned in ``Dataset.skipped`` with a reason, so one bad file never stops an audit.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from . import storage
from .errors import DataError, LabelAuditError
from .progress import QUIET, Reporter
from .storage import Location, StoragePath

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
TEXT_EXTENSIONS = frozenset({".txt"})
MANIFEST_EXTENSIONS = frozenset({".csv", ".parquet", ".pq"})

Modality = Literal["image", "text"]
SAMPLE_COLUMNS = ["sample_id", "path", "text", "label", "content_hash"]
PATH_COLUMN_CANDIDATES = ("path", "file", "filepath", "file_path", "image", "image_path", "filename")
TEXT_COLUMN_CANDIDATES = ("text", "sentence", "content", "document")
LABEL_COLUMN_CANDIDATES = ("label", "given_label", "class", "target", "y")


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str
    stage: str = "discover"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "stage": self.stage}


@dataclass
class Dataset:
    samples: pd.DataFrame
    classes: list[str]
    class_names: dict[str, str]
    modality: Modality
    root: Path | Location | None
    kind: str
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored_files: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return self.samples["label"].tolist()

    def label_indices(self) -> list[int]:
        index = {name: i for i, name in enumerate(self.classes)}
        return [index[label] for label in self.samples["label"]]

    def prompt_names(self) -> list[str]:
        return [self.class_names.get(c, c) for c in self.classes]


def hash_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_text(text: str) -> str:
    return hash_bytes(text.encode("utf-8"))


def hash_file(path: StoragePath, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with storage.open_input(path) as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_text_file(path: StoragePath) -> str:
    """Read a UTF-8 text sample (a BOM is dropped). Raises ValueError naming the file otherwise."""
    data = storage.read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 text (byte {exc.start}): re-save {path.name} as UTF-8, e.g. `iconv -t UTF-8`"
        ) from None


def humanize_class_name(key: str) -> str:
    return key.replace("_", " ").replace("-", " ").strip() or key


def load_class_file(path: Path) -> tuple[list[str], dict[str, str]]:
    """Read class order and prompt names: lines of ``key,name``, ``key<TAB>name`` or just ``name``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--classes file not found: {path}")
    keys: list[str] = []
    names: dict[str, str] = {}
    for line_no, raw in enumerate(read_text_file(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for separator in ("\t", ","):
            if separator in line:
                key, name = (part.strip() for part in line.split(separator, 1))
                break
        else:
            key, name = line, line
        if not key:
            raise DataError(f"{path}:{line_no}: empty class key")
        if key in names:
            raise DataError(f"{path}:{line_no}: class {key!r} is listed twice")
        keys.append(key)
        names[key] = name or key
    if not keys:
        raise DataError(f"--classes file {path} lists no classes")
    return keys, names


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_removed")


def printable_path(text: str) -> str:
    """``text`` safe to write as UTF-8: bytes of a non-UTF-8 file name become ``\\xNN`` escapes."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _is_utf8(text: str) -> bool:
    # os.walk hands back undecodable name bytes as lone surrogates (PEP 383); those cannot be written
    # to Parquet, CSV or HTML, and a report that names a file must be able to name it.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NOT_UTF8_NAME = "file name is not valid UTF-8: rename it (e.g. `convmv -f latin1 -t utf8 --notest`)"
NOT_UTF8_FOLDER = "folder name is not valid UTF-8: rename it (e.g. `convmv -f latin1 -t utf8 --notest`)"
FOLDER_UNREADABLE = "folder not readable: its files were not audited"
FOLDER_LINK = "symbolic link to a folder: not followed (avoids link loops)"


def _walk_class_folder(folder: Path, root: Path, skipped: list[SkippedFile]) -> list[Path]:
    """Every non-hidden file below ``folder``, sorted. Folders that cannot be listed, symlinked folders
    (not followed: a link loop would never end) and non-UTF-8 names go to ``skipped`` with a reason, so
    a silently missing part of the dataset never looks like a complete audit."""
    found: list[Path] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        skipped.append(SkippedFile(_relative(where, root) + "/", f"{FOLDER_UNREADABLE} ({_reason(exc)})"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=False):
        here = Path(dirpath)
        kept: list[str] = []
        for name in sorted(d for d in dirnames if not _is_hidden(d)):
            if not _is_utf8(name):
                skipped.append(SkippedFile(_relative(here / name, root) + "/", NOT_UTF8_FOLDER))
            elif (here / name).is_symlink():
                skipped.append(SkippedFile(_relative(here / name, root) + "/", FOLDER_LINK))
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(f for f in filenames if not _is_hidden(f)):
            if _is_utf8(name):
                found.append(here / name)
            else:
                skipped.append(SkippedFile(_relative(here / name, root), NOT_UTF8_NAME))
    return found


def _relative(path: Path, root: Path) -> str:
    return printable_path(path.relative_to(root).as_posix())


def discover_folder(
    root: Path,
    modality: Modality | None = None,
    reporter: Reporter = QUIET,
) -> tuple[pd.DataFrame, Modality, list[SkippedFile], int]:
    if not _is_utf8(str(root)):
        raise DataError(f"the dataset folder's path {printable_path(str(root))} is not valid UTF-8: rename or move it")
    skipped: list[SkippedFile] = []
    class_dirs: list[Path] = []
    for entry in sorted(p for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name)):
        if _is_utf8(entry.name):
            class_dirs.append(entry)
        else:  # the label would be the folder name, and it cannot be written to the report
            skipped.append(SkippedFile(_relative(entry, root) + "/", NOT_UTF8_FOLDER))
    if not class_dirs:
        raise DataError(
            f"{root} has no class sub-folders. Expected ROOT/<class>/<file> (one folder per class), "
            "or pass a CSV/Parquet manifest."
        )
    files_by_class = {d.name: _walk_class_folder(d, root, skipped) for d in class_dirs}
    modality = modality or _folder_modality(root, files_by_class)
    extensions = IMAGE_EXTENSIONS if modality == "image" else TEXT_EXTENSIONS

    rows: list[dict[str, object]] = []
    ignored = 0
    total = sum(len(fs) for fs in files_by_class.values())
    with reporter.task("Discovering files", total=total) as task:
        for label, files in files_by_class.items():
            for file in files:
                task.advance()
                if file.suffix.lower() not in extensions:
                    ignored += 1
                    continue
                rel = file.relative_to(root).as_posix()
                try:
                    if file.is_symlink() and not file.exists():
                        raise OSError("broken symbolic link")
                    if modality == "text":
                        text = read_text_file(file)
                        rows.append(
                            {
                                "sample_id": rel,
                                "path": str(file),
                                "text": text,
                                "label": label,
                                "content_hash": hash_text(text),
                            }
                        )
                    else:
                        rows.append(
                            {
                                "sample_id": rel,
                                "path": str(file),
                                "text": None,
                                "label": label,
                                "content_hash": hash_file(file),
                            }
                        )
                except (OSError, ValueError) as exc:
                    skipped.append(SkippedFile(rel, _reason(exc)))
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS), modality, skipped, ignored


def _folder_modality(root: object, files_by_class: dict[str, list[Any]]) -> Modality:
    n_images = sum(p.suffix.lower() in IMAGE_EXTENSIONS for fs in files_by_class.values() for p in fs)
    n_texts = sum(p.suffix.lower() in TEXT_EXTENSIONS for fs in files_by_class.values() for p in fs)
    if n_images == 0 and n_texts == 0:
        raise DataError(
            f"{root} has class folders but no image ({', '.join(sorted(IMAGE_EXTENSIONS))}) or .txt files in them."
        )
    return "image" if n_images >= n_texts else "text"


def _read_remote(file: Location, modality: Modality) -> tuple[str | None, str | None, str | None]:
    """(text, content hash, None), or (None, None, skip reason): runs on an I/O thread, so it never raises."""
    try:
        if modality == "text":
            text = read_text_file(file)
            return text, hash_text(text), None
        return None, hash_file(file), None
    except (OSError, ValueError) as exc:
        return None, None, _reason(exc)[:300]


def _read_remote_rows(
    rows: list[dict[str, object]], files: list[Location], modality: Modality, task: Any
) -> list[SkippedFile]:
    """Fill text and content_hash of ``rows`` from ``files`` on a thread pool: on a bucket every file is a
    request, and one after another they would take latency x files. An unreadable file is returned as a
    skip and its row keeps content_hash None."""
    skipped: list[SkippedFile] = []
    for row, (text, content_hash, reason) in zip(
        rows, storage.map_io(lambda file: _read_remote(file, modality), files), strict=True
    ):
        task.advance()
        if reason is not None:
            skipped.append(SkippedFile(str(row["sample_id"]), reason))
        else:
            row["text"], row["content_hash"] = text, content_hash
    return skipped


def discover_remote_folder(
    root: Location, modality: Modality | None = None, reporter: Reporter = QUIET
) -> tuple[pd.DataFrame, Modality, list[SkippedFile], int]:
    """``discover_folder`` for ``s3://bucket/folder/``: one recursive listing, then the files are read."""
    try:
        files = storage.walk_files(root)
    except OSError as exc:
        raise storage.storage_error("list", root, exc) from None
    files_by_class: dict[str, list[Location]] = {}
    for file in files:
        parts = file.relative_to(root).split("/")
        # Like a local folder: files beside the class folders belong to no class; hidden names are ignored.
        if len(parts) >= 2 and not any(_is_hidden(part) for part in parts):
            files_by_class.setdefault(parts[0], []).append(file)
    if not files_by_class:
        storage.check_reachable(root, "data")
        raise DataError(
            f"{root} has no files in class sub-folders (or does not exist). Expected ROOT/<class>/<file> "
            "(one folder per class), or pass a CSV/Parquet manifest."
        )
    files_by_class = dict(sorted(files_by_class.items()))
    modality = modality or _folder_modality(root, files_by_class)
    extensions = IMAGE_EXTENSIONS if modality == "image" else TEXT_EXTENSIONS
    wanted = [(label, f) for label, fs in files_by_class.items() for f in fs if f.suffix.lower() in extensions]
    ignored = sum(len(fs) for fs in files_by_class.values()) - len(wanted)
    rows: list[dict[str, object]] = [
        {"sample_id": f.relative_to(root), "path": f.uri, "text": None, "label": label, "content_hash": None}
        for label, f in wanted
    ]
    with reporter.task("Reading files", total=len(rows)) as task:
        skipped = _read_remote_rows(rows, [f for _, f in wanted], modality, task)
    rows = [row for row in rows if row["content_hash"] is not None]
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS), modality, skipped, ignored


def _remote_target(raw: str, root: Location) -> Location:
    """The object a manifest row names: relative to the manifest's folder, or a URI on the same filesystem."""
    if storage.is_uri(raw):
        target = Location.parse(raw)
        if target.scheme != root.scheme:
            raise ValueError(f"not on the manifest's filesystem ({root.scheme}://); copy it there or list it there")
        return target if target.query else Location(target.scheme, target.netloc, target.key, root.query)
    if raw.startswith("/"):
        raise ValueError("an absolute local path in an object-store manifest: write it relative to the manifest")
    return root.child(raw)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _pick_column(
    frame: pd.DataFrame, given: str | None, candidates: tuple[str, ...], what: str, required: bool
) -> str | None:
    if given is not None:
        if given not in frame.columns:
            raise DataError(
                f"manifest has no {what} column {given!r}; its columns are: {', '.join(map(str, frame.columns))}"
            )
        return given
    lowered = {str(c).lower(): c for c in frame.columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    if required:
        raise DataError(
            f"manifest has no {what} column (looked for {', '.join(candidates)}); name it with "
            f"--{what}-col. Its columns are: {', '.join(map(str, frame.columns))}"
        )
    return None


def read_manifest(path: StoragePath) -> pd.DataFrame:
    suffix = path.suffix.lower()
    source: Path | io.BytesIO = path if isinstance(path, Path) else _fetch_manifest(path)
    try:
        if suffix == ".csv":
            return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        return pd.read_parquet(source)
    except UnicodeDecodeError:
        raise DataError(f"manifest {path} is not UTF-8: re-save it as UTF-8") from None
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise DataError(f"cannot read manifest {path}: {exc}") from None


def _fetch_manifest(path: Location) -> io.BytesIO:
    try:
        return io.BytesIO(storage.read_bytes(path))
    except FileNotFoundError:
        storage.check_reachable(path, "manifest")  # a missing bucket gets its own message
        raise DataError(f"{path} does not exist") from None
    except OSError as exc:
        raise storage.storage_error("read the manifest", path, exc) from None


def discover_table(
    frame: pd.DataFrame,
    base_dir: Path | Location | None,
    label_col: str | None = None,
    path_col: str | None = None,
    text_col: str | None = None,
    id_col: str | None = None,
    modality: Modality | None = None,
    allow_outside_root: bool = False,
    reporter: Reporter = QUIET,
) -> tuple[pd.DataFrame, Modality, list[SkippedFile]]:
    label_col = _pick_column(frame, label_col, LABEL_COLUMN_CANDIDATES, "label", required=True)
    if modality != "image":
        text_col = _pick_column(frame, text_col, TEXT_COLUMN_CANDIDATES, "text", required=False)
    if modality != "text" or text_col is None:
        path_col = _pick_column(
            frame, path_col, PATH_COLUMN_CANDIDATES, "path", required=text_col is None and modality == "image"
        )
    if path_col is None and text_col is None:
        # Name both: a text manifest whose column is called "review" must not be told only about paths.
        raise DataError(
            f"manifest has neither a path column (looked for {', '.join(PATH_COLUMN_CANDIDATES)}) nor a text "
            f"column (looked for {', '.join(TEXT_COLUMN_CANDIDATES)}); name one with --path-col or --text-col. "
            f"Its columns are: {', '.join(map(str, frame.columns))}"
        )
    if modality is None:
        modality = "text" if text_col is not None and path_col is None else "image"
    if modality == "text" and text_col is None and path_col is not None:
        text_col = None  # text samples read from files named in the path column
    if id_col is not None and id_col not in frame.columns:
        raise DataError(f"manifest has no id column {id_col!r}")
    if id_col is not None:
        ids = frame[id_col].astype(str)
        duplicated = ids[ids.duplicated()].unique().tolist()
        if duplicated:
            raise DataError(f"manifest id column {id_col!r} has duplicate ids, e.g. {duplicated[:3]}")

    remote_root = base_dir if isinstance(base_dir, Location) else None
    root = Path.cwd().resolve() if remote_root is not None else (base_dir or Path.cwd()).resolve()
    rows: list[dict[str, object]] = []
    skipped: list[SkippedFile] = []
    remote: list[tuple[dict[str, object], Location]] = []  # read after the loop, many at a time
    with reporter.task("Reading manifest", total=len(frame)) as task:
        for position, record in enumerate(frame.to_dict("records")):
            task.advance()
            sample_id = str(record[id_col]) if id_col else None
            raw_label = record[label_col]
            where = f"row {position + 1}"
            if (
                raw_label is None
                or (isinstance(raw_label, float) and pd.isna(raw_label))
                or str(raw_label).strip() == ""
            ):
                skipped.append(SkippedFile(sample_id or where, "empty label"))
                continue
            label = _label_to_str(raw_label)
            if modality == "text" and text_col is not None:
                text = record[text_col]
                if text is None or (isinstance(text, float) and pd.isna(text)):
                    skipped.append(SkippedFile(sample_id or where, "empty text"))
                    continue
                text = str(text)
                rows.append(
                    {
                        "sample_id": sample_id or str(position),
                        "path": None,
                        "text": text,
                        "label": label,
                        "content_hash": hash_text(text),
                    }
                )
                continue
            raw_path = record[path_col]
            if raw_path is None or (isinstance(raw_path, float) and pd.isna(raw_path)) or str(raw_path) == "":
                skipped.append(SkippedFile(sample_id or where, "empty path"))
                continue
            if remote_root is not None:
                rel = str(raw_path).replace("\\", "/")
                sample_id = sample_id or rel
                try:
                    target = _remote_target(rel, remote_root)
                    if not allow_outside_root and not target.is_relative_to(remote_root):
                        raise ValueError(
                            f"path resolves outside the manifest folder {remote_root} "
                            "(pass --allow-outside-root to accept)"
                        )
                except (LabelAuditError, ValueError) as exc:
                    skipped.append(SkippedFile(sample_id, str(exc)))
                    continue
                row = {"sample_id": sample_id, "path": target.uri, "text": None, "label": label, "content_hash": None}
                rows.append(row)
                remote.append((row, target))
                continue
            rel, file = _manifest_file(str(raw_path), root)
            sample_id = sample_id or rel
            try:
                resolved = file.resolve()
                if not allow_outside_root and not resolved.is_relative_to(root):
                    raise ValueError(
                        f"path resolves outside the manifest folder {root} (pass --allow-outside-root to accept)"
                    )
                if not file.is_file():
                    raise FileNotFoundError(str(file))
                if modality == "text":
                    text = read_text_file(file)
                    content_hash = hash_text(text)
                else:
                    text, content_hash = None, hash_file(file)
                rows.append(
                    {
                        "sample_id": sample_id,
                        "path": str(file),
                        "text": text,
                        "label": label,
                        "content_hash": content_hash,
                    }
                )
            except (OSError, ValueError) as exc:
                skipped.append(SkippedFile(sample_id, _reason(exc)))
    if remote:
        with reporter.task("Reading files", total=len(remote)) as task:
            skipped.extend(_read_remote_rows([r for r, _ in remote], [t for _, t in remote], modality, task))
        rows = [row for row in rows if row["content_hash"] is not None]
    samples = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    if samples["sample_id"].duplicated().any():
        duplicated = samples.loc[samples["sample_id"].duplicated(), "sample_id"].head(3).tolist()
        raise DataError(f"manifest names the same sample more than once, e.g. {duplicated}; pass --id-col")
    return samples, modality, skipped


def _manifest_file(raw: str, root: Path) -> tuple[str, Path]:
    """(sample id, file) for a manifest path. Windows-made manifests write ``a\\b.jpg``: it means
    ``a/b.jpg`` when that exists; only when it does not, a file literally named ``a\\b.jpg`` (legal on
    Linux) is used. The id is then the name as found, so two such rows never collide."""
    normalised = raw.replace("\\", "/")
    candidates = [normalised] if normalised == raw else [normalised, raw]
    for rel in candidates:
        file = Path(rel) if Path(rel).is_absolute() else root / rel
        if file.is_file():
            return rel, file
    return normalised, Path(normalised) if Path(normalised).is_absolute() else root / normalised


def _label_to_str(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def discover(
    data: str | Path | Location | pd.DataFrame,
    *,
    modality: Modality | None = None,
    label_col: str | None = None,
    path_col: str | None = None,
    text_col: str | None = None,
    id_col: str | None = None,
    classes_file: str | Path | None = None,
    allow_outside_root: bool = False,
    reporter: Reporter = QUIET,
) -> Dataset:
    """Find every sample of a dataset and its label. Raises DataError for unusable input as a whole."""
    ignored = 0

    def from_manifest(manifest: Path | Location) -> tuple[pd.DataFrame, Modality, list[SkippedFile]]:
        return discover_table(
            read_manifest(manifest),
            manifest.parent,
            label_col,
            path_col,
            text_col,
            id_col,
            modality,
            allow_outside_root,
            reporter,
        )

    if isinstance(data, pd.DataFrame):
        samples, modality, skipped = discover_table(
            data, None, label_col, path_col, text_col, id_col, modality, allow_outside_root, reporter
        )
        root, kind = None, "dataframe"
    elif isinstance(location := storage.resolve(data), Location):
        if location.suffix.lower() in MANIFEST_EXTENSIONS:
            samples, modality, skipped = from_manifest(location)
            kind = "manifest"
        else:  # s3://bucket/folder/: a bucket has no folders to test for, so list it and see
            samples, modality, skipped, ignored = discover_remote_folder(location, modality, reporter)
            kind = f"{modality}_folder"
        root = location
    else:
        path = location
        if not path.exists():
            raise DataError(f"{path} does not exist")
        if path.is_dir():
            samples, modality, skipped, ignored = discover_folder(path, modality, reporter)
            root = path.resolve()
            kind = f"{modality}_folder"
        elif path.suffix.lower() in MANIFEST_EXTENSIONS:
            samples, modality, skipped = from_manifest(path)
            root, kind = path.resolve(), "manifest"
        else:
            raise DataError(f"{path} is neither a folder nor a manifest ({', '.join(sorted(MANIFEST_EXTENSIONS))})")

    if samples.empty:
        hint = f" ({len(skipped)} files skipped, e.g. {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise DataError(
            f"no usable samples found in {data if not isinstance(data, pd.DataFrame) else 'the DataFrame'}{hint}"
        )

    present = sorted(samples["label"].unique().tolist())
    warnings: list[str] = []
    if classes_file is not None:
        keys, names = load_class_file(Path(classes_file))
        unknown = sorted(set(present) - set(keys))
        if unknown:
            raise DataError(f"labels not in --classes file: {', '.join(unknown[:10])}")
        empty = [k for k in keys if k not in set(present)]
        if empty:
            warnings.append(f"{len(empty)} class(es) in the classes file have no samples: {', '.join(empty[:10])}")
        classes = [k for k in keys if k in set(present)]
    else:
        classes = present
        names = {c: humanize_class_name(c) for c in classes}
    if len(classes) < 2:
        raise DataError(
            f"only one class ({classes[0]!r}) has samples: a label audit compares classes, so it needs at least two"
        )
    counts = samples["label"].value_counts()
    singletons = [c for c in classes if counts.get(c, 0) == 1]
    if singletons:
        warnings.append(f"{len(singletons)} class(es) have a single sample: {', '.join(singletons[:10])}")
    samples = samples.reset_index(drop=True)
    return Dataset(
        samples=samples,
        classes=classes,
        class_names=names,
        modality=modality,
        root=root,
        kind=kind,
        skipped=skipped,
        ignored_files=ignored,
        warnings=warnings,
    )
