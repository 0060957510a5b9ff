"""Reading tag sets from a label column or one-hot columns, and writing them back."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelaudit.errors import DataError, LabelAuditError
from labelaudit.multilabel.tags import (
    detect_separator,
    parse_onehot,
    parse_tag_column,
    tag_lists,
    tags_to_column,
)


def test_delimited_column_reads_into_sorted_classes_and_a_bool_matrix() -> None:
    parsed = parse_tag_column(["cat|dog", " dog ", "bird | cat"], sep="|")
    assert parsed.classes == ["bird", "cat", "dog"]
    assert parsed.tags.dtype == bool
    assert parsed.tags.tolist() == [[False, True, True], [False, False, True], [True, True, False]]
    assert parsed.tag_lists() == [["cat", "dog"], ["dog"], ["bird", "cat"]]


def test_classes_file_order_is_kept_and_unused_classes_stay() -> None:
    parsed = parse_tag_column(["b;a", "a"], sep=";", classes=["c", "a", "b"])
    assert parsed.classes == ["c", "a", "b"]
    assert parsed.tags.tolist() == [[False, True, True], [False, True, False]]


def test_parquet_list_column_reads_as_tag_sets(tmp_path) -> None:
    frame = pd.DataFrame({"label": [["x", "y"], ["z"], ["y"]]})
    frame.to_parquet(tmp_path / "m.parquet")
    column = pd.read_parquet(tmp_path / "m.parquet")["label"]  # numpy arrays, as pyarrow gives them
    parsed = parse_tag_column(column.tolist())
    assert parsed.classes == ["x", "y", "z"]
    assert parsed.tag_lists() == [["x", "y"], ["z"], ["y"]]


def test_numeric_tags_in_a_list_column_read_as_their_integer_text() -> None:
    parsed = parse_tag_column([[1.0, 2.0], [3]])
    assert parsed.classes == ["1", "2", "3"]


@pytest.mark.parametrize("empty", ["", "   ", None, float("nan")])
def test_an_empty_tag_set_is_an_error_that_names_the_row_and_the_way_out(empty: object) -> None:
    with pytest.raises(DataError, match=r"1 rows have no tags.*sample b.*--allow-empty-tags"):
        parse_tag_column(["x|y", empty, "y"], sep="|", ids=["a", "b", "c"])


def test_empty_tag_sets_are_kept_when_allowed() -> None:
    parsed = parse_tag_column(["x|y", "", []][:2] + ["y"], sep="|", allow_empty=True)
    assert parsed.tags.tolist() == [[True, True], [False, False], [False, True]]


def test_no_tag_anywhere_is_an_error_even_when_empty_sets_are_allowed() -> None:
    with pytest.raises(DataError, match="no row carries any tag"):
        parse_tag_column(["", ""], sep="|", allow_empty=True)


def test_unknown_tags_with_a_classes_file_name_the_tags_and_the_rows() -> None:
    message = r"2 rows carry tags the classes file does not list: 'dgo', 'kat'.*row 2, row 3"
    with pytest.raises(DataError, match=message):
        parse_tag_column(["cat", "kat|dog", "dgo"], sep="|", classes=["cat", "dog"])


def test_a_tag_listed_twice_in_one_row_is_an_error() -> None:
    with pytest.raises(DataError, match=r"1 rows list a tag twice: row 2 \(cat\)"):
        parse_tag_column(["cat", "cat|dog|cat"], sep="|")
    with pytest.raises(DataError, match="twice"):
        parse_tag_column([["cat"], ["cat", "cat"]])


@pytest.mark.parametrize("cell", ["cat||dog", "cat|", "|cat"])
def test_an_empty_tag_between_separators_is_an_error(cell: str) -> None:
    with pytest.raises(DataError, match="empty tag"):
        parse_tag_column(["dog", cell], sep="|")


def test_tags_glued_by_another_delimiter_are_a_mixed_delimiter_error() -> None:
    with pytest.raises(DataError, match=r"mixes delimiters.*'\|'.*';'.*row 3"):
        parse_tag_column(["cat|dog", "dog", "cat;dog"], sep="|")
    # With a classes file the listed classes are the tags; an unlisted glued pair is caught the same way.
    with pytest.raises(DataError, match="mixes delimiters"):
        parse_tag_column(["cat|dog", "cat;dog"], sep="|", classes=["cat", "dog"])


def test_a_class_name_holding_another_delimiter_is_fine_when_its_parts_are_no_tags() -> None:
    parsed = parse_tag_column(["rock, pop|jazz", "jazz"], sep="|")
    assert parsed.classes == ["jazz", "rock, pop"]


def test_a_separator_that_no_row_uses_while_another_delimiter_is_everywhere_is_questioned() -> None:
    with pytest.raises(DataError, match=r"no row contains the separator '\|' but 2 rows contain ';'"):
        parse_tag_column(["a;b", "b;c"], sep="|")
    # ...unless a classes file says those are class names.
    parsed = parse_tag_column(["a;b", "b;c"], sep="|", classes=["a;b", "b;c"])
    assert parsed.tags.tolist() == [[True, False], [False, True]]


def test_text_without_a_separator_asks_for_one_and_suggests_what_it_found() -> None:
    with pytest.raises(DataError, match=r"name the delimiter between tags \(the cells contain ';'\).*--label-sep"):
        parse_tag_column(["a;b", "b"])


def test_detect_separator_refuses_two_delimiters() -> None:
    assert detect_separator(["a|b", "c"]) == "|"
    assert detect_separator(["a", "c"]) is None
    with pytest.raises(DataError, match="mixes delimiters"):
        detect_separator(["a|b", "c;d"])


def test_mixing_list_cells_and_text_cells_is_an_error() -> None:
    with pytest.raises(DataError, match="mixes lists of tags and plain text"):
        parse_tag_column([["a"], "a|b"], sep="|")


@pytest.mark.parametrize("sep", ["", " ", "\t"])
def test_an_invisible_separator_is_refused(sep: str) -> None:
    with pytest.raises(DataError, match="visible character"):
        parse_tag_column(["a"], sep=sep)


def test_duplicate_classes_in_the_classes_file_are_an_error() -> None:
    with pytest.raises(DataError, match="more than once"):
        parse_tag_column(["a"], sep="|", classes=["a", "b", "a"])


def test_onehot_columns_accept_the_usual_spellings_of_true_and_false() -> None:
    frame = pd.DataFrame(
        {"cat": [1, 0, "yes"], "dog": [True, "false", "0"], "bird": [0.0, 1.0, "TRUE"], "other": ["x", "y", "z"]}
    )
    parsed = parse_onehot(frame, ["cat", "dog", "bird"])
    assert parsed.classes == ["cat", "dog", "bird"]
    assert parsed.tags.tolist() == [[True, True, False], [False, False, True], [True, False, True]]


def test_onehot_bad_cells_name_the_column_rows_and_values() -> None:
    frame = pd.DataFrame({"cat": [1, 2, None], "dog": [0, 1, 1]})
    with pytest.raises(DataError, match=r"one-hot column 'cat'.*2 cells do not: row 2 \('2'\), row 3 \(empty\)"):
        parse_onehot(frame, ["cat", "dog"])


def test_onehot_missing_or_repeated_columns_are_errors() -> None:
    frame = pd.DataFrame({"cat": [1], "dog": [1]})
    with pytest.raises(DataError, match="no column 'cow'.*its columns are: cat, dog"):
        parse_onehot(frame, ["cat", "cow"])
    with pytest.raises(DataError, match="more than once"):
        parse_onehot(frame, ["cat", "cat"])
    with pytest.raises(DataError, match="--label-cols needs"):
        parse_onehot(frame, [])


def test_onehot_all_zero_row_is_an_empty_tag_set() -> None:
    frame = pd.DataFrame({"cat": [1, 0], "dog": [0, 0]})
    with pytest.raises(DataError, match="1 rows have no tags"):
        parse_onehot(frame, ["cat", "dog"])
    assert parse_onehot(frame, ["cat", "dog"], allow_empty=True).tags.sum() == 1


def test_errors_are_label_audit_errors_so_the_cli_exits_2() -> None:
    assert issubclass(DataError, LabelAuditError)


def test_writing_refuses_a_class_that_contains_the_separator() -> None:
    with pytest.raises(DataError, match="contains the separator"):
        tags_to_column(np.array([[True]]), ["a|b"], "|")


def test_importing_the_package_loads_neither_torch_nor_sklearn() -> None:
    code = "import sys, labelaudit.multilabel; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---- round trips ---------------------------------------------------------------------------------------

# Class names: any printable text without the delimiters, no surrounding space (the reader strips it).
names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="|;,"),
    min_size=1,
    max_size=12,
)


@st.composite
def tag_problems(draw: st.DrawFn) -> tuple[list[str], np.ndarray]:
    classes = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    rows = draw(st.integers(1, 8))
    matrix = draw(
        st.lists(st.lists(st.booleans(), min_size=len(classes), max_size=len(classes)), min_size=rows, max_size=rows)
    )
    tags = np.array(matrix, dtype=bool).reshape(rows, len(classes))
    tags[~tags.any(axis=1), draw(st.integers(0, len(classes) - 1))] = True  # no empty sets
    return classes, tags


@settings(max_examples=60, deadline=None)
@given(tag_problems(), st.sampled_from(["|", ";", ","]))
def test_delimited_round_trip_through_a_csv_file(problem: tuple[list[str], np.ndarray], sep: str) -> None:
    classes, tags = problem
    cells = tags_to_column(tags, classes, sep)
    buffer = io.StringIO()
    pd.DataFrame({"label": cells}).to_csv(buffer, index=False)
    buffer.seek(0)
    column = pd.read_csv(buffer, dtype=str, keep_default_na=False)["label"]
    parsed = parse_tag_column(column.tolist(), sep=sep, classes=classes)
    assert parsed.classes == classes
    assert np.array_equal(parsed.tags, tags)


@settings(max_examples=40, deadline=None)
@given(tag_problems())
def test_list_round_trip_through_parquet(problem: tuple[list[str], np.ndarray]) -> None:
    classes, tags = problem
    buffer = io.BytesIO()
    pd.DataFrame({"label": tags_to_column(tags, classes, None)}).to_parquet(buffer)
    buffer.seek(0)
    parsed = parse_tag_column(pd.read_parquet(buffer)["label"].tolist())
    # Without a classes file the classes are the tags seen, sorted; the tag sets are the same.
    assert tag_lists(parsed.tags, parsed.classes) == [sorted(row) for row in tag_lists(tags, classes)]
    assert parsed.classes == sorted(c for c, used in zip(classes, tags.any(axis=0), strict=True) if used)


@settings(max_examples=40, deadline=None)
@given(tag_problems())
def test_onehot_round_trip(problem: tuple[list[str], np.ndarray]) -> None:
    classes, tags = problem
    frame = pd.DataFrame(tags.astype(int), columns=classes)
    parsed = parse_onehot(frame, classes)
    assert parsed.classes == classes
    assert np.array_equal(parsed.tags, tags)
