"""Data discovery: an image folder, a text folder, a CSV/Parquet manifest or a DataFrame -> a samples table.

The samples table has one row per usable sample with the columns
``sample_id, path, text, label, content_hash``. Files that cannot be used are not errors: they are
returned in ``Dataset.skipped`` with a reason, so one bad file never stops an audit.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from . import storage
from .config import DataSpec
from .errors import DataError, LabelAuditError, io_reason
from .hashing import hash_text
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
TAG_COLUMN_CANDIDATES = (*LABEL_COLUMN_CANDIDATES, "tags", "labels")  # a multi-label manifest's usual names
ID_COLUMN_CANDIDATES = ("sample_id", "id", "uid", "uuid", "guid", "image_id", "doc_id")


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
    columns: ManifestColumns | None = None  # for a manifest or DataFrame: the columns it was read with
    # A multi-label manifest (docs/multilabel.md): (N, K) bool, row i of ``samples`` carries tag k of ``classes``;
    # the ``label`` column then holds each tag set joined by ``tag_sep`` (for display only).
    tags: np.ndarray | None = None
    tag_column: str | None = None  # the manifest's label column; None for one-hot columns
    tag_sep: str = "|"

    @property
    def is_multilabel(self) -> bool:
        return self.tags is not None

    def label_indices(self) -> list[int]:
        index = {name: i for i, name in enumerate(self.classes)}
        return [index[label] for label in self.samples["label"]]

    def prompt_names(self) -> list[str]:
        return [self.class_names.get(c, c) for c in self.classes]


def resolved_spec(spec: DataSpec, dataset: Dataset) -> DataSpec:
    """``spec`` as discovery applied it to ``dataset``: the modality found and, for a manifest, its columns."""
    columns = dataset.columns
    if columns is None:
        return dataclasses.replace(spec, modality=dataset.modality)
    label_col = dataset.tag_column if dataset.is_multilabel else columns.label
    return dataclasses.replace(
        spec,
        modality=columns.modality,
        label_col=label_col,
        path_col=columns.path,
        text_col=columns.text,
        id_col=columns.id,
        multilabel=dataset.is_multilabel or spec.multilabel,
    )


def sample_row(
    sample_id: str, path: str | None, text: str | None, label: str, content_hash: str | None
) -> dict[str, object]:
    """One row of the samples table (SAMPLE_COLUMNS); content_hash is None until a bucket's file is read."""
    return {"sample_id": sample_id, "path": path, "text": text, "label": label, "content_hash": content_hash}


def humanize_class_name(key: str) -> str:
    return key.replace("_", " ").replace("-", " ").strip() or key


def load_class_file(path: Path) -> tuple[list[str], dict[str, str]]:
    """Read class order and prompt names: lines of ``key,name``, ``key<TAB>name`` or just ``name``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--classes file not found: {path}")
    keys: list[str] = []
    names: dict[str, str] = {}
    for line_no, raw in enumerate(storage.read_text(path).splitlines(), start=1):
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


def is_hidden(name: str) -> bool:
    """Names discovery ignores: dot files and what `apply` moved to _removed/."""
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
LINK_OUTSIDE = (
    "symbolic link to a file outside the dataset folder: not read (pass --allow-outside-root to follow such links)"
)
CLASS_LINK_OUTSIDE = (
    "symbolic link to a folder outside the dataset folder: not read (pass --allow-outside-root to follow such links)"
)


def _walk_class_folder(folder: Path, root: Path, skipped: list[SkippedFile]) -> list[Path]:
    """Every non-hidden file below ``folder``, sorted. Folders that cannot be listed, symlinked folders
    (not followed: a link loop would never end) and non-UTF-8 names go to ``skipped`` with a reason, so
    a silently missing part of the dataset never looks like a complete audit."""
    found: list[Path] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        skipped.append(SkippedFile(_relative(where, root) + "/", f"{FOLDER_UNREADABLE} ({io_reason(exc)})"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=False):
        here = Path(dirpath)
        kept: list[str] = []
        for name in sorted(d for d in dirnames if not is_hidden(d)):
            if not _is_utf8(name):
                skipped.append(SkippedFile(_relative(here / name, root) + "/", NOT_UTF8_FOLDER))
            elif (here / name).is_symlink():
                skipped.append(SkippedFile(_relative(here / name, root) + "/", FOLDER_LINK))
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(f for f in filenames if not is_hidden(f)):
            if _is_utf8(name):
                found.append(here / name)
            else:
                skipped.append(SkippedFile(_relative(here / name, root), NOT_UTF8_NAME))
    return found


def _relative(path: Path, root: Path) -> str:
    return printable_path(path.relative_to(root).as_posix())


def _leaves(path: Path, real_root: Path) -> bool:
    """Whether ``path`` (a symbolic link, or a file below one) resolves to a place outside ``real_root``."""
    return not path.resolve().is_relative_to(real_root)


def discover_folder(
    root: Path,
    modality: Modality | None = None,
    reporter: Reporter = QUIET,
    allow_outside_root: bool = False,
) -> tuple[pd.DataFrame, Modality, list[SkippedFile], int]:
    """The samples of ``root/<class>/<file>``. A symbolic link that leads outside ``root`` (a file link to
    /etc/passwd, a class folder linked to the home folder) is not read unless ``allow_outside_root``: the
    user named this folder, and its report must not carry the contents of files elsewhere."""
    if not _is_utf8(str(root)):
        raise DataError(f"the dataset folder's path {printable_path(str(root))} is not valid UTF-8: rename or move it")
    real_root = root.resolve()
    skipped: list[SkippedFile] = []
    class_dirs: list[Path] = []
    for entry in sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name)):
        if not _is_utf8(entry.name):  # the label would be the folder name, and it cannot be written to the report
            skipped.append(SkippedFile(_relative(entry, root) + "/", NOT_UTF8_FOLDER))
        elif entry.is_symlink() and not allow_outside_root and _leaves(entry, real_root):
            skipped.append(SkippedFile(_relative(entry, root) + "/", CLASS_LINK_OUTSIDE))
        else:
            class_dirs.append(entry)
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
                    # Only a file link can lead out: linked sub-folders are not walked, linked class folders
                    # were checked above.
                    if file.is_symlink() and not allow_outside_root and _leaves(file, real_root):
                        skipped.append(SkippedFile(rel, LINK_OUTSIDE))
                        continue
                    text, content_hash = storage.read_sample(file, modality)
                    rows.append(sample_row(rel, str(file), text, label, content_hash))
                except (OSError, ValueError) as exc:
                    skipped.append(SkippedFile(rel, io_reason(exc)))
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
        return (*storage.read_sample(file, modality), None)
    except (OSError, ValueError) as exc:
        return None, None, io_reason(exc)[:300]


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
        if len(parts) >= 2 and not any(is_hidden(part) for part in parts):
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
    rows = [sample_row(f.relative_to(root), f.uri, None, label, None) for label, f in wanted]
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
    source = storage.open_table(path, "manifest")
    try:
        if suffix == ".csv":
            return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        return pd.read_parquet(source)
    except UnicodeDecodeError:
        raise DataError(f"manifest {path} is not UTF-8: re-save it as UTF-8") from None
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise DataError(f"cannot read manifest {path}: {exc}") from None


@dataclass(frozen=True)
class ManifestColumns:
    """The manifest columns discovery reads, as resolved: ``text`` is set when the samples are the text
    column's values, ``path`` when they are files (images, or text files for a text audit)."""

    label: str
    path: str | None
    text: str | None
    id: str | None
    modality: Modality


def resolve_columns(frame: pd.DataFrame, spec: DataSpec) -> ManifestColumns:
    """The columns and modality a manifest is read with: the ones ``spec`` names, else found by their usual
    names (``*_COLUMN_CANDIDATES``). Raises DataError naming the columns the manifest does have."""
    modality = spec.modality
    label_col = _pick_column(frame, spec.label_col, LABEL_COLUMN_CANDIDATES, "label", required=True)
    assert label_col is not None
    text_col = spec.text_col
    if modality != "image":
        text_col = _pick_column(frame, text_col, TEXT_COLUMN_CANDIDATES, "text", required=False)
    path_col = spec.path_col
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
    if spec.id_col is not None and spec.id_col not in frame.columns:
        raise DataError(f"manifest has no id column {spec.id_col!r}")
    from_text = modality == "text" and text_col is not None
    return ManifestColumns(
        label=label_col,
        path=None if from_text else path_col,
        text=text_col if from_text else None,
        id=spec.id_col if spec.id_col is not None else _found_id_column(frame, {label_col, path_col, text_col}),
        modality=modality,
    )


def _found_id_column(frame: pd.DataFrame, taken: set[str | None]) -> str | None:
    """A column with a usual id name (``ID_COLUMN_CANDIDATES``) whose values are present and unique: the
    manifest's own sample ids. One with gaps or repeats is not an id column, and is left alone (--id-col
    names one explicitly, and is then refused if it has either)."""
    lowered = {str(c).lower(): c for c in frame.columns if c not in taken}
    for candidate in ID_COLUMN_CANDIDATES:
        column = lowered.get(candidate)
        if column is None:
            continue
        values = frame[column]
        if values.isna().any() or (values.astype(str) == "").any() or values.astype(str).duplicated().any():
            continue
        return str(column)
    return None


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def sample_ids(frame: pd.DataFrame, columns: ManifestColumns, root: Path | Location) -> list[str | None]:
    """The sample id discovery gives each manifest row: the id column's value; else the row number for a
    text in the manifest; else the path as found (``manifest_file``). None for a row without a path."""
    ids: list[str | None] = []
    for position, record in enumerate(frame.to_dict("records")):
        if columns.id is not None:
            ids.append(str(record[columns.id]))
        elif columns.text is not None:
            ids.append(str(position))
        else:
            raw = record[columns.path]
            if _missing(raw) or str(raw) == "":
                ids.append(None)
            elif storage.is_remote(root):
                ids.append(str(raw).replace("\\", "/"))
            else:
                ids.append(manifest_file(str(raw), cast(Path, root))[0])
    return ids


def discover_table(
    frame: pd.DataFrame,
    base_dir: Path | Location | None,
    spec: DataSpec | None = None,
    reporter: Reporter = QUIET,
) -> tuple[pd.DataFrame, ManifestColumns, list[SkippedFile]]:
    spec = spec or DataSpec()
    columns = resolve_columns(frame, spec)
    _refuse_duplicate_ids(frame, columns.id)
    remote = storage.is_remote(base_dir)
    root: Path | Location = (
        cast(Location, base_dir) if remote else (cast("Path | None", base_dir) or Path.cwd()).resolve()
    )
    ids = sample_ids(frame, columns, root)
    rows: list[dict[str, object]] = []
    skipped: list[SkippedFile] = []
    to_read: list[tuple[dict[str, object], Location]] = []  # bucket files, read after the loop, many at a time
    with reporter.task("Reading manifest", total=len(frame)) as task:
        for position, record in enumerate(frame.to_dict("records")):
            task.advance()
            where = str(record[columns.id]) if columns.id else f"row {position + 1}"
            raw_label = record[columns.label]
            if _missing(raw_label) or str(raw_label).strip() == "":
                skipped.append(SkippedFile(where, "empty label"))
                continue
            label = label_text(raw_label)
            if columns.text is not None:
                text = record[columns.text]
                if _missing(text) or not str(text).strip():
                    skipped.append(SkippedFile(where, "empty text"))
                    continue
                kept = str(text)[: storage.TEXT_CHARS_KEPT]  # the hash is of the whole text, as for a file
                rows.append(sample_row(str(ids[position]), None, kept, label, hash_text(str(text))))
                continue
            raw_path, sample_id = record[columns.path], ids[position]
            if _missing(raw_path) or str(raw_path) == "" or sample_id is None:
                skipped.append(SkippedFile(where, "empty path"))
                continue
            try:
                if remote:
                    target = _remote_file(str(raw_path), cast(Location, root), spec.allow_outside_root)
                    rows.append(sample_row(sample_id, target.uri, None, label, None))
                    to_read.append((rows[-1], target))
                else:
                    local = cast(Path, root)
                    # Without an id column the id is the path as manifest_file found it: no second lookup.
                    file = manifest_file(str(raw_path), local)[1] if columns.id else _under(local, sample_id)
                    text, content_hash = _read_local(file, local, spec.allow_outside_root, columns.modality)
                    rows.append(sample_row(sample_id, str(file), text, label, content_hash))
            except (LabelAuditError, OSError, ValueError) as exc:
                skipped.append(SkippedFile(sample_id, str(exc) if remote else io_reason(exc)))
    if to_read:
        with reporter.task("Reading files", total=len(to_read)) as task:
            skipped.extend(_read_remote_rows([r for r, _ in to_read], [t for _, t in to_read], columns.modality, task))
        rows = [row for row in rows if row["content_hash"] is not None]
    samples = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    if samples["sample_id"].duplicated().any():
        duplicated = samples.loc[samples["sample_id"].duplicated(), "sample_id"].head(3).tolist()
        raise DataError(f"manifest names the same sample more than once, e.g. {duplicated}; pass --id-col")
    return samples, columns, skipped


def _refuse_duplicate_ids(frame: pd.DataFrame, id_col: str | None) -> None:
    if id_col is not None:
        given = frame[id_col].astype(str)
        duplicated = given[given.duplicated()].unique().tolist()
        if duplicated:
            raise DataError(f"manifest id column {id_col!r} has duplicate ids, e.g. {duplicated[:3]}")


def _remote_file(raw: str, root: Location, allow_outside_root: bool) -> Location:
    target = _remote_target(raw.replace("\\", "/"), root)
    if not allow_outside_root and not target.is_relative_to(root):
        raise ValueError(f"path resolves outside the manifest folder {root} (pass --allow-outside-root to accept)")
    return target


def _read_local(file: Path, root: Path, allow_outside_root: bool, modality: Modality) -> tuple[str | None, str]:
    if not allow_outside_root and not file.resolve().is_relative_to(root):
        raise ValueError(f"path resolves outside the manifest folder {root} (pass --allow-outside-root to accept)")
    if not file.is_file():
        raise FileNotFoundError(str(file))
    return storage.read_sample(file, modality)


def manifest_file(raw: str, root: Path) -> tuple[str, Path]:
    """(sample id, file) for a manifest path. Windows-made manifests write ``a\\b.jpg``: it means
    ``a/b.jpg`` when that exists; only when it does not, a file literally named ``a\\b.jpg`` (legal on
    Linux) is used. The id is then the name as found, so two such rows never collide."""
    normalised = raw.replace("\\", "/")
    candidates = [normalised] if normalised == raw else [normalised, raw]
    for rel in candidates:
        if _under(root, rel).is_file():
            return rel, _under(root, rel)
    return normalised, _under(root, normalised)


def _under(root: Path, rel: str) -> Path:
    return Path(rel) if Path(rel).is_absolute() else root / rel


def label_text(value: object) -> str:
    """A manifest label as the report writes it: 3.0 (a float column with gaps) is "3", whitespace trimmed."""
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
    label_sep: str | None = None,
    label_cols: tuple[str, ...] | str | None = None,
    allow_empty_tags: bool = False,
    multilabel: bool = False,
    reporter: Reporter = QUIET,
) -> Dataset:
    """Find every sample of a dataset and its label (or its tag set: ``label_sep``, ``label_cols``, a Parquet
    list column). Raises DataError for unusable input as a whole."""
    spec = DataSpec(
        modality=modality,
        label_col=label_col,
        path_col=path_col,
        text_col=text_col,
        id_col=id_col,
        classes_file=None if classes_file is None else str(classes_file),
        allow_outside_root=allow_outside_root,
        label_sep=label_sep,
        label_cols=label_cols,  # type: ignore[arg-type]  # DataSpec splits "a,b,c"
        allow_empty_tags=allow_empty_tags,
        multilabel=multilabel,
    )
    found = _find_samples(data, spec, reporter)
    samples, skipped = found.samples, found.skipped
    if samples.empty:
        hint = f" ({len(skipped)} files skipped, e.g. {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise DataError(
            f"no usable samples found in {data if not isinstance(data, pd.DataFrame) else 'the DataFrame'}{hint}"
        )
    if found.is_multilabel:  # the classes are the tags, found with them
        return dataclasses.replace(found, samples=samples.reset_index(drop=True))
    classes, names, warnings = _class_list(samples, classes_file)
    warnings += _long_text_warning(samples)
    samples = samples.reset_index(drop=True)
    return dataclasses.replace(found, samples=samples, classes=classes, class_names=names, warnings=warnings)


def _find_samples(data: str | Path | Location | pd.DataFrame, spec: DataSpec, reporter: Reporter) -> Dataset:
    """The samples of a folder, a manifest (on a disk or in a bucket) or a DataFrame; classes not yet set."""
    modality, ignored, columns = spec.modality, 0, None
    location = None if isinstance(data, pd.DataFrame) else storage.resolve(data)
    tagged: TaggedRows | None = None
    if location is None:
        samples, columns, skipped, tagged = _discover_rows(cast(pd.DataFrame, data), None, spec, reporter)
        root, kind = None, "dataframe"
    elif storage.is_remote(location) and location.suffix.lower() not in MANIFEST_EXTENSIONS:
        _refuse_tags_in_folder(spec, str(location))
        # s3://bucket/folder/: a bucket has no folders to test for, so list it and see
        samples, modality, skipped, ignored = discover_remote_folder(cast(Location, location), modality, reporter)
        root, kind = location, f"{modality}_folder"
    elif storage.is_remote(location):
        samples, columns, skipped, tagged = _discover_rows(read_manifest(location), location.parent, spec, reporter)
        root, kind = location, "manifest"
    else:
        path = cast(Path, location)
        if not path.exists():
            raise DataError(f"{path} does not exist")
        if path.is_dir():
            _refuse_tags_in_folder(spec, str(path))
            samples, modality, skipped, ignored = discover_folder(path, modality, reporter, spec.allow_outside_root)
            root = path.resolve()
            kind = f"{modality}_folder"
        elif path.suffix.lower() in MANIFEST_EXTENSIONS:
            samples, columns, skipped, tagged = _discover_rows(read_manifest(path), path.parent, spec, reporter)
            root, kind = path.resolve(), "manifest"
        else:
            raise DataError(f"{path} is neither a folder nor a manifest ({', '.join(sorted(MANIFEST_EXTENSIONS))})")
    dataset = Dataset(
        samples=samples,
        classes=[],
        class_names={},
        modality=columns.modality if columns is not None else cast(Modality, modality),
        root=root,
        kind=kind,
        skipped=skipped,
        ignored_files=ignored,
        columns=columns,
    )
    if tagged is None:
        return dataset
    return dataclasses.replace(
        dataset,
        classes=tagged.classes,
        class_names=tagged.names,
        tags=tagged.tags,
        tag_column=tagged.column,
        tag_sep=tagged.sep,
        warnings=tagged.warnings,
    )


# ---- multi-label manifests ------------------------------------------------------------------------------

ROW_COLUMN = "__labelaudit_row__"  # a manifest row's position, carried through discover_table as its "label"
LIST_SEP = "|"  # how the report and the terminal join the tags of a list column or of one-hot columns


@dataclass
class TaggedRows:
    classes: list[str]
    names: dict[str, str]
    tags: np.ndarray  # (N, K) bool, rows as the samples table's
    column: str | None
    sep: str
    warnings: list[str] = field(default_factory=list)


def _refuse_tags_in_folder(spec: DataSpec, where: str) -> None:
    if spec.wants_tags:
        raise DataError(
            f"{where} is a folder, and a folder layout gives each sample one class: a multi-label audit needs a "
            "CSV or Parquet manifest with a label column holding the tags (--label-sep '|', or a Parquet list "
            "column) or one-hot columns (--label-cols a,b,c); see docs/multilabel.md"
        )


def _holds_lists(frame: pd.DataFrame, column: str | None) -> bool:
    from .multilabel.tags import _is_list_like

    if column is None or column not in frame.columns:
        return False
    return any(_is_list_like(v) for v in frame[column].head(1000).tolist())


def _discover_rows(
    frame: pd.DataFrame, base_dir: Path | Location | None, spec: DataSpec, reporter: Reporter
) -> tuple[pd.DataFrame, ManifestColumns, list[SkippedFile], TaggedRows | None]:
    """discover_table, and for a multi-label manifest its tag sets: parsed over the whole manifest first (a
    bad cell refuses the manifest, naming its rows), then the rows whose file could be read keep theirs."""
    label_col = None
    candidates = TAG_COLUMN_CANDIDATES if spec.wants_tags else LABEL_COLUMN_CANDIDATES
    if not spec.label_cols:
        label_col = _pick_column(frame, spec.label_col, candidates, "label", required=False)
    if not spec.wants_tags and not _holds_lists(frame, label_col):
        return (*discover_table(frame, base_dir, spec, reporter), None)
    from .multilabel.tags import parse_onehot, parse_tag_column

    keys: list[str] | None = None
    names: dict[str, str] = {}
    if spec.classes_file is not None:
        keys, names = load_class_file(Path(spec.classes_file))
    if spec.label_cols:
        if keys is not None and sorted(keys) != sorted(spec.label_cols):
            raise DataError("with --label-cols the classes are those columns: the --classes file must list the same")
        matrix = parse_onehot(frame, list(spec.label_cols), allow_empty=spec.allow_empty_tags)
        sep, column = spec.label_sep or LIST_SEP, None
    else:
        if label_col is None:
            _pick_column(frame, None, candidates, "label", True)  # raises, naming the columns
        assert label_col is not None
        matrix = parse_tag_column(
            frame[label_col].tolist(),
            sep=spec.label_sep,
            classes=keys,
            allow_empty=spec.allow_empty_tags,
            column=label_col,
        )
        sep, column = spec.label_sep or LIST_SEP, label_col
    rows = frame.copy()
    rows[ROW_COLUMN] = [str(i) for i in range(len(frame))]
    samples, columns, skipped = discover_table(
        rows, base_dir, dataclasses.replace(spec, label_col=ROW_COLUMN), reporter
    )
    positions = samples["label"].astype(int).to_numpy()
    tags = matrix.tags[positions]
    from .multilabel.tags import tags_to_column

    samples["label"] = tags_to_column(tags, matrix.classes, sep)
    warnings = []
    unused = [c for c, n in zip(matrix.classes, tags.sum(axis=0), strict=True) if n == 0]
    if unused:
        warnings.append(f"{len(unused)} class(es) are given to no usable sample: {', '.join(unused[:10])}")
    return (
        samples,
        columns,
        skipped,
        TaggedRows(
            classes=matrix.classes,
            names={c: names.get(c, humanize_class_name(c)) for c in matrix.classes},
            tags=tags,
            column=column,
            sep=sep,
            warnings=warnings,
        ),
    )


def _long_text_warning(samples: pd.DataFrame) -> list[str]:
    """Texts cut to what the encoder can use (storage.TEXT_CHARS_KEPT), said in summary.json's warnings."""
    long = samples[samples["text"].fillna("").str.len() >= storage.TEXT_CHARS_KEPT]
    if long.empty:
        return []
    return [
        f"{len(long)} text sample(s) have {storage.TEXT_CHARS_KEPT:,} characters or more: only their first "
        f"{storage.TEXT_CHARS_KEPT:,} are read and embedded (the encoder uses far fewer), e.g. "
        f"{', '.join(long['sample_id'].astype(str).head(3))}"
    ]


def _class_list(samples: pd.DataFrame, classes_file: str | Path | None) -> tuple[list[str], dict[str, str], list[str]]:
    """(class keys in report order, their prompt names, warnings): the --classes file's order, else sorted."""
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
    return classes, names, warnings


def code_names_warning(prompt_names: list[str], from_file: bool) -> list[str]:
    """A warning where no class name holds a letter ("0", "1", "17"): codes, which the zero-shot prompts
    (and DeFT's starting prompts) read as text and learn nothing from. Measured on wrench_youtube (MiniLM):
    zero-shot's AUROC 0.79 with the names HAM and SPAM, 0.69 with "0" and "1", and the flags' F1 0.20 vs 0.10
    (docs/benchmarks.md)."""
    if any(any(ch.isalpha() for ch in name) for name in prompt_names):
        return []
    shown = ", ".join(repr(name) for name in prompt_names[:5]) + (", ..." if len(prompt_names) > 5 else "")
    where = "the --classes file names them" if from_file else "they are the label values"
    return [
        f"the class names are codes, not words ({shown}; {where}): the zeroshot method's prompts read a class's"
        " name and learn nothing from a code, so its scores and its label-free reading of the error rate are"
        " weak. Name the classes with --classes FILE, lines of 'key,name' (e.g. '0,ham'); docs/audit.md"
    ]
