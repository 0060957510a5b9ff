"""Property tests: whatever label strings a dataset has, the report files give them back unchanged."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from labelaudit.discover import discover
from labelaudit.io import write_table_atomic

# Any printable text, including quotes, commas, newlines, unicode and strings pandas likes to read as NaN.
labels = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
    st.sampled_from(["NA", "nan", "None", "null", "#N/A", "1", "01", "1.0", 'a,"b"', "x\ny", "  padded  "]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(labels, min_size=1, max_size=8))
def test_report_tables_round_trip_any_label_strings(values: list[str]) -> None:
    frame = pd.DataFrame({"given_label": values, "suggested_label": list(reversed(values))})
    with TemporaryDirectory() as folder:
        stem = Path(folder) / "report"
        write_table_atomic(frame, stem)
        parquet = pd.read_parquet(stem.with_suffix(".parquet"))
        csv = pd.read_csv(stem.with_suffix(".csv"), dtype=str, keep_default_na=False)
    assert parquet["given_label"].tolist() == values
    assert csv["given_label"].tolist() == values
    assert csv["suggested_label"].tolist() == list(reversed(values))


# Texts without control characters: pandas' writer leaves a bare carriage return unquoted, which no CSV
# reader can tell from a line end; that is a property of the writer, not of labelaudit's reader.
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(str.strip)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(texts, labels), min_size=2, max_size=10))
def test_text_manifest_labels_are_read_back_as_written(rows: list[tuple[str, str]]) -> None:
    frame = pd.DataFrame(rows, columns=["text", "label"])
    with TemporaryDirectory() as folder:
        manifest = Path(folder) / "m.csv"
        frame.to_csv(manifest, index=False)
        # A blank label is a skipped row (test_discover covers that), so it is no class either.
        labelled = frame[frame["label"].str.strip() != ""]
        if labelled["label"].str.strip().nunique() < 2:
            return  # a single class is refused by design; covered in test_discover
        dataset = discover(manifest)
    assert dataset.samples["label"].tolist() == [label.strip() for label in labelled["label"]]
    assert dataset.samples["text"].tolist() == labelled["text"].tolist()
    assert len(dataset.skipped) == len(frame) - len(labelled)
