"""--engine ray: same report as the local engine, one shared cache, nothing lost when an actor fails.

Runs on a 2-CPU local Ray started once for the module, with the tiny random open_clip model.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import labelaudit
from labelaudit.cache import EmbeddingCache
from labelaudit.cli import main
from labelaudit.discover import discover
from labelaudit.errors import LabelAuditError

from .conftest import ROOT, TINY_MODEL, local_ray

MODEL = {"model": str(TINY_MODEL), "pretrained": "random"}
METHODS = "deft,confident,zeroshot,knn"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    yield from local_ray()


@pytest.fixture
def folder_with_bad_file(image_folder: Path) -> Path:
    (image_folder / "red" / "broken.png").write_bytes(b"not a png")
    return image_folder


def _shard_hashes(cache_dir: Path) -> list[str]:
    hashes: list[str] = []
    for shard in sorted(cache_dir.glob("*/shard-*.npz")):
        with np.load(shard) as data:
            hashes.extend(data["hashes"].tolist())
    return hashes


def assert_same_float16_vectors(a: np.ndarray, b: np.ndarray) -> None:
    """The cache stores float16 vectors: the same forward pass in an actor and here may round a value to the
    neighbouring float16 (another thread count sums in another order), no further. It was 0 apart here."""
    assert a.dtype == b.dtype == np.float16 and a.shape == b.shape
    step = np.spacing(np.maximum(np.abs(a), np.abs(b)))
    assert np.all(np.abs(a.astype(np.float32) - b.astype(np.float32)) <= step), "not the same forward pass"


def _assert_same_report(a: labelaudit.AuditResult, b: labelaudit.AuditResult) -> None:
    assert a.samples["sample_id"].tolist() == b.samples["sample_id"].tolist()
    for column in a.samples.columns:
        left, right = a.samples[column], b.samples[column]
        if pd.api.types.is_float_dtype(left):
            np.testing.assert_allclose(left.to_numpy(), right.to_numpy(), atol=1e-5, err_msg=column)
        else:
            assert left.tolist() == right.tolist(), column
    assert a.skipped.to_dict("records") == b.skipped.to_dict("records")
    assert a.summary.flagged_per_method == b.summary.flagged_per_method


def test_ray_report_equals_local_and_both_engines_share_the_cache(
    ray_cluster: object, folder_with_bad_file: Path, tmp_path: Path
) -> None:
    local_cache, ray_cache = tmp_path / "local-cache", tmp_path / "ray-cache"
    local = labelaudit.audit(folder_with_bad_file, cache_dir=local_cache, methods=METHODS, seed=3, **MODEL)
    ray_run = labelaudit.audit(
        folder_with_bad_file, cache_dir=ray_cache, methods=METHODS, seed=3, engine="ray", ray_concurrency=2, **MODEL
    )
    assert ray_run.run["cache"] == {**local.run["cache"], "dir": ray_run.run["cache"]["dir"]}
    assert ray_run.run["cache"]["embedded"] == 18
    assert ray_run.skipped["path"].tolist() == ["red/broken.png"]
    assert "not a readable image" in ray_run.skipped["reason"].iat[0]
    _assert_same_report(local, ray_run)
    assert ray_run.run["cross_validation_folds_ran_on"] == "ray"
    assert local.run["cross_validation_folds_ran_on"] == "local"
    assert sorted(_shard_hashes(ray_cache)) == sorted(_shard_hashes(local_cache))  # each sample stored once

    # ray after local, and local after ray: nothing new is embedded, and the report is the same again.
    ray_after_local = labelaudit.audit(
        folder_with_bad_file, cache_dir=local_cache, methods=METHODS, seed=3, engine="ray", **MODEL
    )
    local_after_ray = labelaudit.audit(folder_with_bad_file, cache_dir=ray_cache, methods=METHODS, seed=3, **MODEL)
    for result in (ray_after_local, local_after_ray):
        assert (result.run["cache"]["hits"], result.run["cache"]["embedded"]) == (18, 0)
        _assert_same_report(local, result)


def test_failing_actor_keeps_what_it_cached_and_the_rerun_embeds_only_the_rest(
    ray_cluster: object, image_folder: Path, tmp_path: Path, tiny_encoder
) -> None:
    from labelaudit.engines.ray_engine import build_encoder, embed_samples_ray, encoder_factory

    samples = discover(image_folder).samples
    cache_dir = tmp_path / "cache"

    def failing_factory():  # pickled by value: the actor raises on its 2nd batch, like a crash mid-run
        class FailOnSecondBatch:
            def __init__(self) -> None:
                self.inner = build_encoder("image", str(TINY_MODEL), "random", None, "cpu")
                self.identity, self.device, self.calls = self.inner.identity, self.inner.device, 0

            def encode_image_batch(self, pixels):
                self.calls += 1
                if self.calls == 2:
                    raise RuntimeError("simulated actor failure")
                return self.inner.encode_image_batch(pixels)

        return FailOnSecondBatch()

    cache = EmbeddingCache(cache_dir, tiny_encoder.identity)
    with pytest.raises(LabelAuditError, match="run the same command again to resume"):
        embed_samples_ray(samples, "image", tiny_encoder, failing_factory, cache, batch_size=4, concurrency=1)
    saved = _shard_hashes(cache_dir)
    assert 4 <= len(saved) < 18  # the first batch reached the cache before the failure

    rerun = embed_samples_ray(
        samples,
        "image",
        tiny_encoder,
        encoder_factory("image", str(TINY_MODEL), "random", None, "cpu"),
        EmbeddingCache(cache_dir, tiny_encoder.identity),
        batch_size=4,
        concurrency=1,
    )
    assert (rerun.n_cached, rerun.n_embedded) == (len(saved), 18 - len(saved))
    assert sorted(_shard_hashes(cache_dir)) == sorted(samples["content_hash"])  # nothing embedded twice

    from labelaudit.embed import embed_samples

    local = embed_samples(samples, "image", tiny_encoder, EmbeddingCache(None, tiny_encoder.identity), workers=0)
    assert_same_float16_vectors(rerun.vectors, local.vectors)


def test_killed_actor_is_restarted_by_ray_and_nothing_is_lost(
    ray_cluster: object, image_folder: Path, tmp_path: Path, tiny_encoder
) -> None:
    from labelaudit.engines.ray_engine import build_encoder, embed_samples_ray

    samples = discover(image_folder).samples
    cache_dir, marker = tmp_path / "cache", tmp_path / "killed-once"

    def killing_factory():  # the first actor process dies hard on its 2nd batch; Ray restarts it and retries
        class DieOnceOnSecondBatch:
            def __init__(self) -> None:
                self.inner = build_encoder("image", str(TINY_MODEL), "random", None, "cpu")
                self.identity, self.device, self.calls = self.inner.identity, self.inner.device, 0

            def encode_image_batch(self, pixels):
                self.calls += 1
                if self.calls == 2 and not marker.exists():
                    marker.touch()
                    os._exit(1)
                return self.inner.encode_image_batch(pixels)

        return DieOnceOnSecondBatch()

    result = embed_samples_ray(
        samples,
        "image",
        tiny_encoder,
        killing_factory,
        EmbeddingCache(cache_dir, tiny_encoder.identity),
        batch_size=4,
        concurrency=1,
    )
    assert marker.exists()
    assert (result.n_cached, result.n_embedded) == (0, 18)
    assert sorted(_shard_hashes(cache_dir)) == sorted(samples["content_hash"])  # each sample stored exactly once


def test_engine_ray_without_the_extra_says_how_to_install_it(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_ray(name: str, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(LabelAuditError, match=r'pip install "labelaudit\[ray\]"'):
        labelaudit.audit(image_folder, cache_dir=None, engine="ray", **MODEL)
    args = ["audit", str(image_folder), "--out", str(tmp_path / "out"), "--engine", "ray", "--quiet", "--no-cache"]
    assert main(args) == 2
    assert "labelaudit[ray]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cache_uri_pyarrow_cannot_open_is_a_clear_error_not_a_local_folder(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Object-store URIs are supported (tests/test_object_store.py); one pyarrow.fs does not know must say so
    # before any work, instead of creating a folder named "nosuch:".
    monkeypatch.chdir(tmp_path)
    args = ["audit", str(image_folder), "--out", str(tmp_path / "out"), "--cache-dir", "nosuch://bucket/cache"]
    assert main([*args, "--quiet"]) == 2
    assert "cannot open nosuch://bucket" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_importing_labelaudit_never_imports_ray() -> None:
    code = (
        "import sys, labelaudit, labelaudit.cli, labelaudit.pipeline, labelaudit.engines.ray_engine; "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _pid_and_value(values: np.ndarray, index: int) -> tuple[int, float]:
    return os.getpid(), float(values[index])


def test_fold_jobs_run_as_ray_tasks_and_come_back_in_job_order(ray_cluster: object) -> None:
    from labelaudit.engines.ray_folds import RayFolds

    runner = RayFolds(ray_cluster)  # type: ignore[arg-type]
    out = runner.map(_pid_and_value, {"values": np.arange(5.0)}, [{"index": i} for i in (4, 0, 2)])
    assert [value for _, value in out] == [4.0, 0.0, 2.0]
    assert all(pid != os.getpid() for pid, _ in out) and runner.submitted == 3


def test_confident_probe_folds_on_ray_equal_the_serial_folds(ray_cluster: object) -> None:
    from labelaudit.engines.ray_folds import RayFolds
    from labelaudit.scorers.confident import out_of_fold_probabilities

    from .conftest import synthetic_embeddings

    x, given, _, _ = synthetic_embeddings(n=600, k=4, noise_rate=0.1)
    half = x.astype(np.float16)
    serial = out_of_fold_probabilities(half, given, 4, 5, seed=0)
    on_ray = out_of_fold_probabilities(half, given, 4, 5, seed=0, runner=RayFolds(ray_cluster))  # type: ignore[arg-type]
    np.testing.assert_allclose(on_ray, serial, rtol=1e-10, atol=1e-12)
