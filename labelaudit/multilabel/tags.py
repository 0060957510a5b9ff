"""Reading tag sets: a manifest's label column (a Parquet list column, or text with a delimiter such as ``|``)
or one-hot columns, into a class list and an (N, K) bool matrix; and writing them back.

Pure functions of plain values, so the manifest reader, ``apply`` and the tests share one definition of what
a valid tag set is. Every problem is a ``DataError`` that names the rows and says what to change: a bad
manifest must never be half-read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError

# Delimiters people put between tags in one CSV cell. Used to catch a column that mixes two of them.
DELIMITERS = ("|", ";", ",")
MAX_EXAMPLES = 5  # rows named in one error message

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "f"})


@dataclass(frozen=True)
class TagMatrix:
    """``tags[i, k]``: sample i carries class ``classes[k]``."""

    classes: list[str]
    tags: np.ndarray  # (N, K) bool

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def tag_lists(self) -> list[list[str]]:
        return tag_lists(self.tags, self.classes)


def tag_lists(tags: np.ndarray, classes: Sequence[str]) -> list[list[str]]:
    """Each row's tags as class names, in class order."""
    names = np.asarray(classes, dtype=object)
    return [names[row].tolist() for row in np.asarray(tags, dtype=bool)]


def format_tags(tags: Iterable[str], sep: str) -> str:
    """One CSV cell: the tags joined by ``sep`` (the inverse of ``parse_tag_column`` with that ``sep``)."""
    return sep.join(tags)


def _where(position: int, ids: Sequence[object] | None) -> str:
    return f"sample {ids[position]!s}" if ids is not None else f"row {position + 1}"


def _examples(positions: Sequence[int], ids: Sequence[object] | None, extra: Sequence[str] | None = None) -> str:
    shown = [
        _where(p, ids) + (f" ({extra[n]})" if extra is not None else "") for n, p in enumerate(positions[:MAX_EXAMPLES])
    ]
    more = f" and {len(positions) - MAX_EXAMPLES} more" if len(positions) > MAX_EXAMPLES else ""
    return ", ".join(shown) + more


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def _scalar_to_tag(value: object) -> str:
    """One tag as text: ``3.0`` (a Parquet float column) reads as ``3``, as single-label manifests do."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _is_list_like(value: object) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, pd.Series)) or (
        hasattr(value, "__array__") and not isinstance(value, (str, bytes))
    )


def detect_separator(values: Iterable[object]) -> str | None:
    """The one delimiter of ``DELIMITERS`` found in the text cells, None if none is; an error if several are."""
    found = Counter()
    for value in values:
        if isinstance(value, str):
            for delimiter in DELIMITERS:
                if delimiter in value:
                    found[delimiter] += 1
    if len(found) > 1:
        listing = ", ".join(f"{d!r} in {n} rows" for d, n in found.most_common())
        raise DataError(f"the label column mixes delimiters ({listing}); use one between tags and name it")
    return next(iter(found), None)


def parse_tag_column(
    values: Sequence[object],
    *,
    sep: str | None = None,
    classes: Sequence[str] | None = None,
    ids: Sequence[object] | None = None,
    allow_empty: bool = False,
    column: str = "label",
) -> TagMatrix:
    """Read a label column holding several tags per row.

    ``values``: one cell per sample: a list of tags (a Parquet list column) or text with the tags separated
    by ``sep``. ``classes``: the known classes in order (from a classes file); without it the classes are
    the tags seen, sorted. ``ids`` name the rows in errors. An empty tag set is an error unless
    ``allow_empty`` (a sample that legitimately carries no tag)."""
    if sep is not None and (not sep or sep.isspace()):
        raise DataError(f"the tag separator must be a visible character such as '|' or ';', not {sep!r}")
    cells = list(values)
    kinds = {"list" if _is_list_like(v) else "text" for v in cells if not _is_missing(v)}
    if kinds == {"list", "text"}:
        raise DataError(f"column {column!r} mixes lists of tags and plain text; give every row the same form")
    parsed: list[list[str]] = []
    if kinds == {"list"}:
        for value in cells:
            parsed.append([] if _is_missing(value) else [_scalar_to_tag(v) for v in value])
    else:
        if sep is None:
            found = detect_separator(cells)
            hint = f" (the cells contain {found!r})" if found else ""
            raise DataError(
                f"column {column!r} holds text, not lists of tags: name the delimiter between tags{hint}, "
                "e.g. --label-sep '|', or give one-hot columns with --label-cols"
            )
        for value in cells:
            text = "" if _is_missing(value) else _scalar_to_tag(value)
            parsed.append([part.strip() for part in text.split(sep)] if text else [])
    _check_cells(parsed, ids, sep, classes, cells if kinds == {"text"} else None)
    if classes is None:
        known = sorted({tag for row in parsed for tag in row})
    else:
        known = list(classes)
        if len(set(known)) != len(known):
            duplicated = sorted(c for c, n in Counter(known).items() if n > 1)
            raise DataError(f"the classes file lists {', '.join(map(repr, duplicated))} more than once")
        unknown_rows = [i for i, row in enumerate(parsed) if any(t not in set(known) for t in row)]
        if unknown_rows:
            known_set = set(known)
            names = sorted({t for i in unknown_rows for t in parsed[i] if t not in known_set})
            raise DataError(
                f"{len(unknown_rows)} rows carry tags the classes file does not list: "
                f"{', '.join(map(repr, names[:MAX_EXAMPLES]))}{' ...' if len(names) > MAX_EXAMPLES else ''} "
                f"({_examples(unknown_rows, ids)}); add them to the classes file or fix the rows"
            )
    _check_empty(parsed, ids, allow_empty, column)
    index = {name: k for k, name in enumerate(known)}
    tags = np.zeros((len(parsed), len(known)), dtype=bool)
    for i, row in enumerate(parsed):
        tags[i, [index[t] for t in row]] = True
    return TagMatrix(classes=known, tags=tags)


def _check_cells(
    parsed: list[list[str]],
    ids: Sequence[object] | None,
    sep: str | None,
    classes: Sequence[str] | None,
    raw: list[object] | None,
) -> None:
    blank = [i for i, row in enumerate(parsed) if any(t == "" for t in row)]
    if blank:
        how = f"two {sep!r} in a row, or one at the start or end" if sep else "an empty string in the list"
        raise DataError(f"{len(blank)} rows hold an empty tag ({how}): {_examples(blank, ids)}")
    doubled = [i for i, row in enumerate(parsed) if len(set(row)) != len(row)]
    if doubled:
        which = [", ".join(sorted(t for t, n in Counter(parsed[i]).items() if n > 1)) for i in doubled]
        raise DataError(
            f"{len(doubled)} rows list a tag twice: {_examples(doubled, ids, which)}; a tag set names each tag once"
        )
    if sep is None or raw is None:
        return
    # Mixed delimiters: a token that another delimiter splits into tags that stand alone elsewhere (or into
    # listed classes) is two tags glued by the wrong delimiter, not a class of its own.
    known = set(classes) if classes is not None else {t for row in parsed for t in row}
    glued: list[int] = []
    glue: list[str] = []
    for i, row in enumerate(parsed):
        for tag in row:
            if classes is not None and tag in known:
                continue
            for other in DELIMITERS:
                if other == sep or other not in tag:
                    continue
                pieces = [p.strip() for p in tag.split(other)]
                if all(p and p in known and p != tag for p in pieces):
                    glued.append(i)
                    glue.append(other)
                    break
            else:
                continue
            break
    if glued:
        raise DataError(
            f"the label column mixes delimiters: the separator is {sep!r} but {len(glued)} rows join tags with "
            f"{', '.join(sorted(set(map(repr, glue))))}: {_examples(glued, ids)}; use one delimiter throughout"
        )
    if classes is None and not any(isinstance(v, str) and sep in v for v in raw):
        others = {d: sum(isinstance(v, str) and d in v for v in raw) for d in DELIMITERS if d != sep}
        others = {d: n for d, n in others.items() if n}
        if others:
            listing = ", ".join(f"{n} rows contain {d!r}" for d, n in others.items())
            raise DataError(
                f"no row contains the separator {sep!r} but {listing}: is that the separator? If those "
                "characters belong to the class names, give a classes file that lists them"
            )


def _check_empty(parsed: list[list[str]], ids: Sequence[object] | None, allow_empty: bool, column: str) -> None:
    empty = [i for i, row in enumerate(parsed) if not row]
    if empty and not allow_empty:
        raise DataError(
            f"{len(empty)} rows have no tags in column {column!r}: {_examples(empty, ids)}. Tag them, drop "
            "them, or allow untagged samples (--allow-empty-tags) if carrying no tag is a valid answer"
        )
    if len(empty) == len(parsed):
        raise DataError(f"no row carries any tag in column {column!r}")


def _cell_to_bool(value: object) -> bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer, float, np.floating)) and not _is_missing(value):
        return {0: False, 1: True}.get(float(value))  # type: ignore[call-overload]
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def parse_onehot(
    frame: pd.DataFrame,
    label_cols: Sequence[str],
    *,
    ids: Sequence[object] | None = None,
    allow_empty: bool = False,
) -> TagMatrix:
    """Read one-hot columns (one per class, named by ``label_cols``): 1/0, true/false or yes/no per cell."""
    label_cols = [str(c).strip() for c in label_cols]
    if not label_cols or any(not c for c in label_cols):
        raise DataError("--label-cols needs the names of the one-hot columns, one per class, comma separated")
    doubled = sorted(c for c, n in Counter(label_cols).items() if n > 1)
    if doubled:
        raise DataError(f"--label-cols names {', '.join(map(repr, doubled))} more than once")
    absent = [c for c in label_cols if c not in frame.columns]
    if absent:
        raise DataError(
            f"the manifest has no column {', '.join(map(repr, absent))}; its columns are: "
            f"{', '.join(map(str, frame.columns))}"
        )
    tags = np.zeros((len(frame), len(label_cols)), dtype=bool)
    for k, column in enumerate(label_cols):
        cells = frame[column].tolist()
        values = [_cell_to_bool(v) for v in cells]
        bad = [i for i, v in enumerate(values) if v is None]
        if bad:
            shown = ["empty" if _is_missing(cells[i]) else repr(_scalar_to_tag(cells[i])) for i in bad]
            raise DataError(
                f"one-hot column {column!r} must hold 1/0, true/false or yes/no; {len(bad)} cells do not: "
                f"{_examples(bad, ids, shown)}"
            )
        tags[:, k] = values
    rows = [[c for c, t in zip(label_cols, row, strict=True) if t] for row in tags]
    _check_empty(rows, ids, allow_empty, ", ".join(label_cols))
    return TagMatrix(classes=label_cols, tags=tags)


def tags_to_column(tags: np.ndarray, classes: Sequence[str], sep: str | None) -> list[object]:
    """A label column holding ``tags``: text joined by ``sep``, or lists of names (a Parquet list column) when
    ``sep`` is None. A class name that contains ``sep`` could not be read back, so it is refused."""
    lists = tag_lists(tags, classes)
    if sep is None:
        return lists
    clashing = [c for c in classes if sep in c]
    if clashing:
        raise DataError(
            f"class {clashing[0]!r} contains the separator {sep!r}, so a joined tag set could not be read back; "
            "choose another separator"
        )
    return [format_tags(row, sep) for row in lists]
