from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from labelaudit.cache import EmbeddingCache
from labelaudit.discover import discover
from labelaudit.embed import embed_samples

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
    from labelaudit.encoders import embed_class_prompts

    cold = embed_class_prompts(tiny_encoder, ["cat", "dog"], "image", EmbeddingCache(tmp_path, "prompts"))
    calls: list[int] = []
    real = tiny_encoder.encode_texts
    monkeypatch.setattr(tiny_encoder, "encode_texts", lambda texts: calls.append(len(texts)) or real(texts))
    warm = embed_class_prompts(tiny_encoder, ["cat", "dog"], "image", EmbeddingCache(tmp_path, "prompts"))
    assert calls == []
    np.testing.assert_array_equal(cold, warm)
    embed_class_prompts(tiny_encoder, ["cat", "dog", "bird"], "image", EmbeddingCache(tmp_path, "prompts"))
    assert calls == [len(tiny_encoder.templates("image"))]


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
