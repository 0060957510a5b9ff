from __future__ import annotations

from pathlib import Path

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
