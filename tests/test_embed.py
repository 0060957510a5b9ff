from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelaudit.cache import EmbeddingCache
from labelaudit.discover import discover
from labelaudit.embed import embed_samples, load_image
from labelaudit.errors import LabelAuditError

from .conftest import make_image


def test_embeddings_are_normalised_and_independent_of_batch_size(image_folder: Path, tiny_encoder) -> None:
    samples = discover(image_folder).samples
    small = embed_samples(
        samples, "image", tiny_encoder, EmbeddingCache(None, tiny_encoder.identity), batch_size=4, workers=0
    )
    large = embed_samples(
        samples, "image", tiny_encoder, EmbeddingCache(None, tiny_encoder.identity), batch_size=64, workers=1
    )
    assert small.vectors.shape == (18, 32)
    np.testing.assert_allclose(np.linalg.norm(small.vectors, axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(small.vectors, large.vectors, atol=1e-3)


def test_second_run_is_served_from_cache_and_only_new_files_are_embedded(
    image_folder: Path, tiny_encoder, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    samples = discover(image_folder).samples
    first = embed_samples(samples, "image", tiny_encoder, EmbeddingCache(cache_dir, tiny_encoder.identity), workers=0)
    assert (first.n_cached, first.n_embedded) == (0, 18)

    make_image(image_folder / "red" / "new.png", (250, 5, 5))
    samples = discover(image_folder).samples
    second = embed_samples(samples, "image", tiny_encoder, EmbeddingCache(cache_dir, tiny_encoder.identity), workers=0)
    assert (second.n_cached, second.n_embedded) == (18, 1)
    cached_rows = samples["sample_id"] != "red/new.png"
    np.testing.assert_array_equal(second.vectors[cached_rows.to_numpy()], first.vectors)


def test_encoder_identity_is_part_of_the_cache_key(tmp_path: Path) -> None:
    vectors = np.eye(3, dtype=np.float32)
    EmbeddingCache(tmp_path, "model-a").store(["h1", "h2", "h3"], vectors)
    found_a, _ = EmbeddingCache(tmp_path, "model-a").lookup(["h1", "h2", "h3"])
    found_b, _ = EmbeddingCache(tmp_path, "model-b").lookup(["h1", "h2", "h3"])
    assert found_a.all()
    assert not found_b.any()


def test_corrupt_shard_is_detected_removed_and_not_trusted(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    cache.store(["h1"], np.ones((1, 4), dtype=np.float32))
    shard = next(cache.folder.glob("shard-*.npz"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))

    reader = EmbeddingCache(tmp_path, "m")
    found, _ = reader.lookup(["h1"])
    assert not found.any()
    assert reader.corrupt_shards == 1
    assert not shard.exists()


class _FailingEncoder:
    """Wraps an encoder and raises after ``fail_after`` batches, like a run killed mid-way."""

    def __init__(self, inner, fail_after: int) -> None:
        self.inner, self.fail_after, self.calls = inner, fail_after, 0
        self.identity, self.device = inner.identity, inner.device

    def image_transform(self):
        return self.inner.image_transform()

    def encode_image_batch(self, pixels):
        self.calls += 1
        if self.calls > self.fail_after:
            raise KeyboardInterrupt
        return self.inner.encode_image_batch(pixels)


def test_interrupted_run_resumes_from_what_it_cached(
    image_folder: Path, tiny_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("labelaudit.embed.SHARD_ROWS", 4)
    samples = discover(image_folder).samples
    failing = _FailingEncoder(tiny_encoder, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        embed_samples(
            samples, "image", failing, EmbeddingCache(tmp_path, tiny_encoder.identity), batch_size=4, workers=0
        )

    resumed = embed_samples(
        samples, "image", tiny_encoder, EmbeddingCache(tmp_path, tiny_encoder.identity), batch_size=4, workers=0
    )
    assert resumed.n_cached == 8
    assert resumed.n_embedded == 10


def test_corrupt_truncated_and_empty_images_are_skipped_with_reasons(image_folder: Path, tiny_encoder) -> None:
    (image_folder / "red" / "zero.png").write_bytes(b"")
    good = (image_folder / "red" / "red_0.png").read_bytes()
    (image_folder / "red" / "truncated.png").write_bytes(good[: len(good) // 2])
    (image_folder / "green" / "text.jpg").write_text("this is not a jpeg")
    samples = discover(image_folder).samples

    result = embed_samples(samples, "image", tiny_encoder, EmbeddingCache(None, tiny_encoder.identity), workers=0)

    skipped = {s.path: s.reason for s in result.skipped}
    assert set(skipped) == {"red/zero.png", "red/truncated.png", "green/text.jpg"}
    assert all(skipped.values())
    assert result.kept.sum() == 18


def test_huge_image_is_skipped_by_the_pixel_cap(image_folder: Path, tiny_encoder) -> None:
    make_image(image_folder / "blue" / "huge.png", (0, 0, 255), size=300)
    samples = discover(image_folder).samples
    result = embed_samples(
        samples, "image", tiny_encoder, EmbeddingCache(None, tiny_encoder.identity), workers=0, max_pixels=200 * 200
    )
    assert [s.path for s in result.skipped] == ["blue/huge.png"]
    assert "pixel" in result.skipped[0].reason


def test_text_embedding_uses_cache(tmp_path: Path, tiny_encoder) -> None:
    import pandas as pd

    samples = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "path": [None, None],
            "text": ["one", "two"],
            "label": ["x", "y"],
            "content_hash": ["ha", "hb"],
        }
    )
    first = embed_samples(samples, "text", tiny_encoder, EmbeddingCache(tmp_path, tiny_encoder.identity))
    again = embed_samples(samples, "text", tiny_encoder, EmbeddingCache(tmp_path, tiny_encoder.identity))
    assert again.n_cached == 2 and again.n_embedded == 0
    np.testing.assert_array_equal(first.vectors, again.vectors)


def test_class_prompts_are_cached_and_identical_on_a_warm_run(
    tiny_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labelaudit.embed import embed_class_prompts

    cold = embed_class_prompts(tiny_encoder, ["cat", "dog"], "image", EmbeddingCache(tmp_path, "prompts"))
    calls: list[int] = []
    real = tiny_encoder.encode_texts
    monkeypatch.setattr(tiny_encoder, "encode_texts", lambda texts: calls.append(len(texts)) or real(texts))
    warm = embed_class_prompts(tiny_encoder, ["cat", "dog"], "image", EmbeddingCache(tmp_path, "prompts"))
    assert calls == []
    np.testing.assert_array_equal(cold, warm)
    embed_class_prompts(tiny_encoder, ["cat", "dog", "bird"], "image", EmbeddingCache(tmp_path, "prompts"))
    assert calls == [len(tiny_encoder.templates("image"))]


def _hostile_images(folder: Path) -> dict[str, Path]:
    """Files that are valid images but not plain 8-bit RGB with an honest extension."""
    red = folder / "red"
    red.mkdir(parents=True, exist_ok=True)
    files = {name: red / name for name in ("png.jpg", "cmyk.jpg", "deep.png", "palette.png", "animated.gif")}
    Image.new("RGB", (16, 16), (200, 10, 10)).save(files["png.jpg"], format="PNG")
    Image.new("CMYK", (16, 16), (0, 200, 200, 0)).save(files["cmyk.jpg"])
    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 200).astype(np.uint16)
    Image.fromarray(ramp).save(files["deep.png"])  # mode I;16
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(1, (0, 0, 8, 16))
    palette.save(files["palette.png"], transparency=0)
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(files["animated.gif"], save_all=True, append_images=frames[1:], duration=50, loop=0)
    return files


def test_hostile_but_valid_images_embed_without_warnings(image_folder: Path, tiny_encoder) -> None:
    files = _hostile_images(image_folder)
    assert Image.open(files["deep.png"]).mode == "I;16" and Image.open(files["palette.png"]).mode == "P"
    assert getattr(Image.open(files["animated.gif"]), "n_frames", 1) == 3
    samples = discover(image_folder).samples

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a decoder warning per file would flood a large audit's log
        result = embed_samples(samples, "image", tiny_encoder, EmbeddingCache(None, tiny_encoder.identity), workers=0)

    assert result.skipped == [] and result.kept.all()
    assert load_image(str(files["png.jpg"])).getpixel((0, 0)) == (200, 10, 10)
    assert load_image(str(files["cmyk.jpg"])).getpixel((0, 0)) == (255, 55, 55)
    deep = np.asarray(load_image(str(files["deep.png"])))
    assert deep.min() == 0 and deep.max() == 255 and len(np.unique(deep)) > 100  # a ramp, not clipped to white
    palette = load_image(str(files["palette.png"]))
    assert palette.getpixel((0, 0)) == (0, 255, 0) and palette.getpixel((15, 0)) == (255, 0, 0)
    assert load_image(str(files["animated.gif"])).getpixel((8, 8)) == (255, 0, 0)  # the first frame


def test_exif_orientation_is_applied_before_embedding(tmp_path: Path, tiny_encoder) -> None:
    # A camera stores the sensor's landscape pixels plus "rotate 90 degrees clockwise to view" (orientation 6).
    pixels = np.zeros((16, 32, 3), dtype=np.uint8)
    pixels[:, :16] = (220, 20, 20)
    pixels[:, 16:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated_by_tag = tmp_path / "a" / "tagged.jpg"
    rotated_by_tag.parent.mkdir()
    Image.fromarray(pixels).save(rotated_by_tag, quality=95, exif=exif)
    with Image.open(rotated_by_tag) as raw:
        upright = raw.convert("RGB").transpose(Image.Transpose.ROTATE_270)  # what a viewer shows
    physically_rotated = tmp_path / "b" / "upright.png"
    physically_rotated.parent.mkdir()
    upright.save(physically_rotated)

    loaded = load_image(str(rotated_by_tag))
    assert loaded.size == (16, 32)
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(upright))
    samples = discover(tmp_path).samples
    vectors = embed_samples(
        samples, "image", tiny_encoder, EmbeddingCache(None, tiny_encoder.identity), workers=0
    ).vectors
    np.testing.assert_array_equal(vectors[0], vectors[1])


def test_files_deleted_or_rewritten_after_discovery_are_skipped_and_never_cached_wrongly(
    image_folder: Path, tiny_encoder, tmp_path: Path
) -> None:
    samples = discover(image_folder).samples
    by_id = samples.set_index("sample_id")
    (image_folder / "red" / "red_0.png").unlink()
    changed = image_folder / "green" / "green_0.png"
    make_image(changed, (255, 255, 255))  # another picture under the same name
    old_hash = by_id.loc["green/green_0.png", "content_hash"]

    result = embed_samples(samples, "image", tiny_encoder, EmbeddingCache(tmp_path, tiny_encoder.identity), workers=0)

    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons["red/red_0.png"] == "deleted during the audit"
    assert reasons["green/green_0.png"].startswith("changed during the audit")
    assert result.kept.sum() == 16
    # The new picture's vector must not be filed under the old picture's hash, or every later run with the
    # old picture would silently get the wrong embedding.
    found, _ = EmbeddingCache(tmp_path, tiny_encoder.identity).lookup([old_hash])
    assert not found.any()
    again = discover(image_folder).samples
    rerun = embed_samples(again, "image", tiny_encoder, EmbeddingCache(tmp_path, tiny_encoder.identity), workers=0)
    assert (rerun.n_cached, rerun.n_embedded, rerun.skipped) == (16, 1, [])


def test_shard_size_comes_from_the_environment(
    image_folder: Path, tiny_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELAUDIT_SHARD_ROWS", "5")
    samples = discover(image_folder).samples
    embed_samples(
        samples, "image", tiny_encoder, EmbeddingCache(tmp_path, tiny_encoder.identity), batch_size=5, workers=0
    )
    sizes = sorted(len(np.load(s)["hashes"]) for s in tmp_path.glob("*/shard-*.npz"))
    assert sizes == [3, 5, 5, 5]
    monkeypatch.setenv("LABELAUDIT_SHARD_ROWS", "zero")
    with pytest.raises(LabelAuditError, match="LABELAUDIT_SHARD_ROWS"):
        embed_samples(samples, "image", tiny_encoder, EmbeddingCache(None, tiny_encoder.identity), workers=0)


def test_temp_files_of_killed_shard_writes_are_removed_once_stale(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    cache.store(["h1"], np.ones((1, 4), dtype=np.float32))
    stale = cache.folder / ".shard-dead.npz.abc123.tmp"
    fresh = cache.folder / ".shard-busy.npz.def456.tmp"  # another audit sharing the cache may be writing it
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    found, _ = EmbeddingCache(tmp_path, "m").lookup(["h1"])

    assert found.all()
    assert not stale.exists() and fresh.exists()


def test_a_disk_error_reads_the_same_in_discovery_embedding_and_reports(tmp_path) -> None:
    """An I/O error is the disk's fault, not the image's: the embedder says it in discovery's words (and a damaged
    report's), so one cause reads as one reason in the skipped-files table; a decoder's own failure still says so."""
    import errno

    from labelaudit.embed import skip_reason
    from labelaudit.errors import io_reason
    from labelaudit.report import _damaged

    disk = OSError(errno.EIO, "Input/output error")
    assert skip_reason(disk) == io_reason(disk) == "input/output error"
    assert "(input/output error)" in str(_damaged(tmp_path / "summary.json", disk))
    assert skip_reason(PermissionError(errno.EACCES, "Permission denied")) == "permission denied"
    assert skip_reason(OSError("image file is truncated")) == "cannot decode image: image file is truncated"


def test_rows_cached_at_another_length_are_read_back_at_unit_length(tmp_path: Path) -> None:
    """A cache written before the embed stage made rows unit length holds such an encoder's rows as it
    returned them (every later stage reads inner products as cosines); rows within 1e-3 are left alone."""
    import pandas as pd

    class NeverCalled:
        identity = "test-old-cache"

        def encode_texts(self, texts):  # every row is cached: the encoder must not run
            raise AssertionError("embedded although cached")

    samples = pd.DataFrame({"sample_id": ["a", "b", "c"], "text": ["x", "y", "z"], "content_hash": ["h1", "h2", "h3"]})
    unit = np.array([0.6, 0.8, 0.0], dtype=np.float32) * np.float32(1 + 5e-4)
    EmbeddingCache(tmp_path, NeverCalled.identity).store(
        ["h1", "h2", "h3"], np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], unit], dtype=np.float32)
    )
    result = embed_samples(samples, "text", NeverCalled(), EmbeddingCache(tmp_path, NeverCalled.identity))
    assert result.n_cached == 3
    np.testing.assert_allclose(result.vectors.astype(np.float32), [[0.6, 0.8, 0.0], [0.0, 0.0, 1.0], unit], atol=1e-3)
    assert np.array_equal(result.vectors[2], unit.astype(np.float16))  # already unit: as stored


def test_a_shard_whose_vectors_no_longer_match_its_digest_is_evicted(tmp_path: Path) -> None:
    """A shard that still loads but whose vectors changed (a bad disk, a bad copy) is not served: its rows are
    a miss, to be embedded again, and the shard is deleted."""
    cache = EmbeddingCache(tmp_path, "model-a")
    cache.store(["h1", "h2"], np.ones((2, 4), dtype=np.float32))
    assert cache.folder is not None
    (shard,) = Path(cache.folder).glob("shard-*.npz")
    with np.load(shard) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["vectors"] = arrays["vectors"] * 2  # same shapes, same digest field, other numbers
    np.savez(shard, **arrays)
    reader = EmbeddingCache(tmp_path, "model-a")
    found, _ = reader.lookup(["h1", "h2"])
    assert not found.any() and reader.corrupt_shards == 1 and not shard.exists()


def test_score_cache_keys_keep_their_parts_apart(tmp_path: Path) -> None:
    """The key hashes its parts with a separator: ("ab", "c") and ("a", "bc") are different runs."""
    from labelaudit.cache import ScoreCache

    first = ScoreCache(tmp_path, ["samples:ab"])._path("c", "{}")
    second = ScoreCache(tmp_path, ["samples:a"])._path("bc", "{}")
    assert first != second
    first = ScoreCache(tmp_path, ["x", "yz"])._path("m", "{}")
    second = ScoreCache(tmp_path, ["xy", "z"])._path("m", "{}")
    assert first != second
