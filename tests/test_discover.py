from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelaudit.discover import discover, load_class_file
from labelaudit.errors import DataError

from .conftest import make_image


def test_image_folder_finds_nested_files_and_ignores_hidden_and_non_media(image_folder: Path) -> None:
    make_image(image_folder / "red" / "deeper" / "more" / "nested.jpg", (210, 10, 10))
    (image_folder / "red" / "notes.md").write_text("not an image")
    make_image(image_folder / "red" / ".hidden.png", (0, 0, 0))
    (image_folder / ".git").mkdir()

    dataset = discover(image_folder)

    assert dataset.modality == "image"
    assert dataset.classes == ["blue", "green", "red"]
    assert "red/deeper/more/nested.jpg" in set(dataset.samples["sample_id"])
    assert len(dataset.samples) == 19
    assert dataset.ignored_files == 1
    assert not any(".hidden" in s for s in dataset.samples["sample_id"])
    assert dataset.samples["content_hash"].str.len().eq(32).all()


def test_identical_files_share_a_content_hash(image_folder: Path) -> None:
    a = make_image(image_folder / "red" / "copy_a.png", (1, 2, 3))
    b = make_image(image_folder / "green" / "copy_b.png", (1, 2, 3))
    samples = discover(image_folder).samples.set_index("path")
    assert samples.loc[str(a), "content_hash"] == samples.loc[str(b), "content_hash"]


def test_text_folder_skips_non_utf8_file_and_names_it(tmp_path: Path) -> None:
    for label in ("ham", "spam"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "a.txt").write_text(f"a {label} message", encoding="utf-8")
    (tmp_path / "ham" / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    (tmp_path / "spam" / "bom.txt").write_bytes("\ufeffwith a byte order mark".encode())

    dataset = discover(tmp_path)

    assert dataset.modality == "text"
    assert len(dataset.samples) == 3
    assert [s.path for s in dataset.skipped] == ["ham/latin1.txt"]
    assert "UTF-8" in dataset.skipped[0].reason
    assert "with a byte order mark" in set(dataset.samples["text"])


def test_unreadable_file_is_skipped_not_fatal(image_folder: Path) -> None:
    broken = image_folder / "red" / "dangling.png"
    broken.symlink_to(image_folder / "missing-target.png")
    dataset = discover(image_folder)
    assert any(s.path == "red/dangling.png" for s in dataset.skipped)
    assert len(dataset.samples) == 18


def test_single_class_is_a_clear_error(tmp_path: Path) -> None:
    make_image(tmp_path / "only" / "a.png", (1, 1, 1))
    make_image(tmp_path / "only" / "b.png", (2, 2, 2))
    with pytest.raises(DataError, match="at least two"):
        discover(tmp_path)


@pytest.mark.parametrize("layout", ["empty", "no_media"])
def test_empty_inputs_are_clear_errors(tmp_path: Path, layout: str) -> None:
    if layout == "no_media":
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "x.bin").write_bytes(b"\0")
    with pytest.raises(DataError):
        discover(tmp_path)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nope")


def test_manifest_with_paths_relative_to_manifest(tmp_path: Path) -> None:
    make_image(tmp_path / "imgs" / "a.png", (255, 0, 0))
    make_image(tmp_path / "imgs" / "b.png", (0, 255, 0))
    make_image(tmp_path / "imgs" / "c.png", (0, 0, 255))
    manifest = tmp_path / "m.csv"
    pd.DataFrame(
        {
            "file": ["imgs/a.png", "imgs\\b.png", "imgs/c.png", "imgs/gone.png", "imgs/c.png"],
            "class": ["x", "y", "y", "x", None],
        }
    ).to_csv(manifest, index=False)

    dataset = discover(manifest, label_col="class", path_col="file")

    assert dataset.kind == "manifest"
    assert dataset.samples["sample_id"].tolist() == ["imgs/a.png", "imgs/b.png", "imgs/c.png"]
    reasons = {s.path: s.reason for s in dataset.skipped}
    assert reasons["imgs/gone.png"] == "file not found"
    assert reasons["row 5"] == "empty label"


def test_manifest_refuses_paths_outside_its_folder(tmp_path: Path) -> None:
    make_image(tmp_path / "outside.png", (1, 1, 1))
    inner = tmp_path / "data"
    make_image(inner / "a.png", (2, 2, 2))
    make_image(inner / "b.png", (3, 3, 3))
    manifest = inner / "m.csv"
    pd.DataFrame({"path": ["a.png", "b.png", "../outside.png"], "label": ["p", "q", "p"]}).to_csv(manifest, index=False)

    refused = discover(manifest)
    assert "outside" in refused.skipped[0].reason
    assert len(discover(manifest, allow_outside_root=True).samples) == 3


def test_text_manifest_parquet_and_classes_file(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["good film", "bad film", "great", "awful"], "label": [1, 0, 1, 0]})
    frame.to_parquet(tmp_path / "m.parquet")
    (tmp_path / "classes.txt").write_text("0\tnegative\n1\tpositive\n")

    dataset = discover(tmp_path / "m.parquet", classes_file=tmp_path / "classes.txt")

    assert dataset.modality == "text"
    assert dataset.classes == ["0", "1"]
    assert dataset.prompt_names() == ["negative", "positive"]


def test_manifest_missing_label_column_lists_columns(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("text,category\nhello,a\n")
    with pytest.raises(DataError, match="category"):
        discover(tmp_path / "m.csv")


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("id,text,label\n1,a,x\n1,b,y\n")
    with pytest.raises(DataError, match="duplicate"):
        discover(tmp_path / "m.csv", id_col="id")


def test_class_file_formats(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("n01440764,tench\nn02102040,English springer\n")
    keys, names = load_class_file(tmp_path / "c.txt")
    assert keys == ["n01440764", "n02102040"]
    assert names["n02102040"] == "English springer"
    (tmp_path / "d.txt").write_text("cat\ncat\n")
    with pytest.raises(DataError, match="twice"):
        load_class_file(tmp_path / "d.txt")


def test_symlink_loops_end_and_a_symlinked_image_is_audited(image_folder: Path) -> None:
    red = image_folder / "red"
    (red / "loop").symlink_to(red, target_is_directory=True)  # red/loop/loop/... if it were followed
    (red / "up").symlink_to(image_folder, target_is_directory=True)
    (red / "self.png").symlink_to(red / "self.png")  # a link to itself: ELOOP on open
    (red / "alias.png").symlink_to(image_folder / "green" / "green_0.png")

    dataset = discover(image_folder)

    ids = set(dataset.samples["sample_id"])
    assert "red/alias.png" in ids
    assert not any("/loop/" in i or "/up/" in i for i in ids)
    by_id = dataset.samples.set_index("sample_id")["content_hash"]
    assert by_id["red/alias.png"] == by_id["green/green_0.png"]
    reasons = {s.path: s.reason for s in dataset.skipped}
    assert "not followed" in reasons["red/loop/"] and "not followed" in reasons["red/up/"]
    assert reasons["red/self.png"] == "broken symbolic link"
    assert len(dataset.samples) == 19


def _unlisted_folder_is_skipped_with_a_reason(image_folder: Path) -> None:
    dataset = discover(image_folder)
    reasons = {s.path: s.reason for s in dataset.skipped}
    assert "not readable" in reasons["red/private/"] and "permission denied" in reasons["red/private/"]
    assert len(dataset.samples) == 18  # everything else is still audited


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 folder anyway; the simulated test covers it")
def test_unreadable_folder_is_skipped_with_a_reason(image_folder: Path) -> None:
    private = image_folder / "red" / "private"
    make_image(private / "hidden_from_us.png", (9, 9, 9))
    private.chmod(0)
    try:
        _unlisted_folder_is_skipped_with_a_reason(image_folder)
    finally:
        private.chmod(0o755)


def test_unreadable_folder_is_skipped_with_a_reason_simulated(
    image_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root (CI containers) ignores permissions, so make listing the folder fail the way it does for a user.
    private = image_folder / "red" / "private"
    make_image(private / "hidden_from_us.png", (9, 9, 9))
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> Iterator[os.DirEntry[str]]:
        if Path(path) == private:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    _unlisted_folder_is_skipped_with_a_reason(image_folder)


def test_non_utf8_file_and_folder_names_are_skipped_and_named_printably(image_folder: Path) -> None:
    red = os.fsencode(image_folder / "red")
    make_image(Path(os.fsdecode(red + b"/caf\xe9.png")), (250, 1, 1))
    make_image(Path(os.fsdecode(os.fsencode(image_folder) + b"/gr\xfcn/a.png")), (1, 250, 1))
    make_image(Path(os.fsdecode(red + b"/sub\xff/b.png")), (250, 2, 2))

    dataset = discover(image_folder)

    reasons = {s.path: s.reason for s in dataset.skipped}
    assert set(reasons) == {"red/caf\\xe9.png", "gr\\xfcn/", "red/sub\\xff/"}
    assert all("not valid UTF-8" in r for r in reasons.values())
    assert dataset.classes == ["blue", "green", "red"]
    assert len(dataset.samples) == 18
    for value in [*reasons, *dataset.samples["sample_id"], *dataset.samples["path"]]:
        value.encode("utf-8")  # every name can be written to Parquet, CSV and HTML


def test_very_long_file_names_are_audited(image_folder: Path) -> None:
    ascii_name = "x" * 246 + ".png"
    polish_name = "ł" * 123 + ".png"  # 250 bytes in UTF-8, 127 characters
    assert len(os.fsencode(ascii_name)) == len(os.fsencode(polish_name)) == 250
    make_image(image_folder / "red" / ascii_name, (240, 0, 0))
    make_image(image_folder / "blue" / polish_name, (0, 0, 240))

    ids = set(discover(image_folder).samples["sample_id"])

    assert {f"red/{ascii_name}", f"blue/{polish_name}"} <= ids


@pytest.mark.parametrize("label", [None, float("nan"), "", "   "])
def test_manifest_rows_without_a_label_are_skipped_with_a_reason(tmp_path: Path, label: object) -> None:
    frame = pd.DataFrame({"text": ["good", "bad", "fine", "awful", "unlabelled"], "label": ["p", "n", "p", "n", label]})
    frame.to_parquet(tmp_path / "m.parquet")  # Parquet keeps None and NaN as they are, unlike CSV

    dataset = discover(tmp_path / "m.parquet")

    assert len(dataset.samples) == 4
    assert [s.as_dict() for s in dataset.skipped] == [{"path": "row 5", "reason": "empty label", "stage": "discover"}]


def test_manifest_float_labels_with_nan_keep_their_integer_names(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": [0.0, 1.0, np.nan, 1.0]})
    dataset = discover(frame)
    assert dataset.classes == ["0", "1"]
    assert [s.reason for s in dataset.skipped] == ["empty label"]


def test_manifest_backslash_paths_resolve_to_folders_and_fall_back_to_literal_names(tmp_path: Path) -> None:
    make_image(tmp_path / "imgs" / "sub" / "a.png", (255, 0, 0))
    make_image(tmp_path / "imgs" / "b.png", (0, 255, 0))
    make_image(tmp_path / "odd\\name.png", (0, 0, 255))  # a legal Linux file name, no folder "odd"
    pd.DataFrame(
        {"path": ["imgs\\sub/a.png", "imgs\\b.png", "odd\\name.png", "imgs\\gone.png"], "label": ["x", "y", "y", "x"]}
    ).to_csv(tmp_path / "m.csv", index=False)

    dataset = discover(tmp_path / "m.csv")

    assert dataset.samples["sample_id"].tolist() == ["imgs/sub/a.png", "imgs/b.png", "odd\\name.png"]
    assert dataset.samples["path"].tolist() == [
        str(tmp_path / "imgs/sub/a.png"),
        str(tmp_path / "imgs/b.png"),
        str(tmp_path / "odd\\name.png"),
    ]
    assert [(s.path, s.reason) for s in dataset.skipped] == [("imgs/gone.png", "file not found")]


@pytest.mark.parametrize(
    ("modality", "wants"),
    [(None, ["path column", "text column"]), ("text", ["path column", "text column"]), ("image", ["path column"])],
)
def test_manifest_without_path_or_text_column_names_the_columns_it_has(
    tmp_path: Path, modality: str | None, wants: list[str]
) -> None:
    (tmp_path / "m.csv").write_text("review,label\nlovely,p\nawful,n\n")
    with pytest.raises(DataError) as error:
        discover(tmp_path / "m.csv", modality=modality)  # type: ignore[arg-type]
    message = str(error.value)
    assert all(w in message for w in wants)
    assert "Its columns are: review, label" in message
    if modality == "image":
        assert "text column" not in message


def test_manifest_named_column_that_is_missing_names_the_columns_it_has(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("review,label\nlovely,p\nawful,n\n")
    with pytest.raises(DataError, match="no text column 'body'; its columns are: review, label"):
        discover(tmp_path / "m.csv", text_col="body")
    with pytest.raises(DataError, match="no path column 'file'; its columns are: review, label"):
        discover(tmp_path / "m.csv", path_col="file")


def test_five_megabyte_text_manifest_is_read_in_reasonable_time(tmp_path: Path) -> None:
    # The 100 MB figure is measured by benchmarks/reliability.py; this guards against anything worse than
    # linear creeping into manifest reading, at a size the test suite can afford.
    rng = np.random.default_rng(0)
    words = np.array(["label", "audit", "quick", "brown", "fox", "dataset", "noise", "class", "text", "row"])
    n = 50_000
    texts = [" ".join(rng.choice(words, size=17)) for _ in range(n)]
    frame = pd.DataFrame({"id": np.arange(n), "text": texts, "label": rng.choice(["a", "b", "c"], size=n)})
    frame.to_csv(tmp_path / "big.csv", index=False)
    assert (tmp_path / "big.csv").stat().st_size > 5_000_000

    start = time.perf_counter()
    dataset = discover(tmp_path / "big.csv", id_col="id")
    seconds = time.perf_counter() - start

    assert len(dataset.samples) == n and not dataset.skipped
    assert dataset.samples["text"].iat[n - 1] == texts[-1]
    assert seconds < 30, f"reading a 5 MB manifest took {seconds:.1f} s"


def test_a_dataset_reached_through_a_symlinked_path_keeps_its_inner_links(image_folder: Path, tmp_path: Path) -> None:
    (image_folder / "red" / "alias.png").symlink_to(image_folder / "green" / "green_0.png")  # inside: fine
    via = tmp_path / "via"
    via.symlink_to(image_folder, target_is_directory=True)  # e.g. ~/data -> /mnt/disk/data

    dataset = discover(via)

    assert "red/alias.png" in set(dataset.samples["sample_id"])
    assert not any("outside" in s.reason for s in dataset.skipped)


def test_files_apply_moved_to_removed_are_not_a_class_on_the_next_audit(image_folder: Path) -> None:
    make_image(image_folder / "_removed" / "green" / "green_9.png", (0, 0, 0))  # what `apply` moved aside

    dataset = discover(image_folder)

    assert "_removed" not in set(dataset.samples["label"])
    assert not any(s.startswith("_removed") for s in dataset.samples["sample_id"])
    assert len(dataset.samples) == 18
