from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test must never wait on the network


# End-to-end runs of the Ray engine start a cluster and its actors: minutes on 2 cores. They run in a stage of
# their own (.ci/run sets LABELAUDIT_SLOW_TESTS=1), so that `pytest` keeps to its 5 minutes.
SLOW_TESTS = {
    "tests/test_ray_engine.py::test_ray_report_equals_local_and_both_engines_share_the_cache",
    "tests/test_ray_engine.py::test_killed_actor_is_restarted_by_ray_and_nothing_is_lost",
    "tests/test_ray_engine.py::test_failing_actor_keeps_what_it_cached_and_the_rerun_embeds_only_the_rest",
    "tests/test_object_store.py::test_ray_engine_with_cache_and_manifest_in_a_bucket_shares_the_cache_with_local_both_ways",
}
RUN_SLOW = os.environ.get("LABELAUDIT_SLOW_TESTS") == "1"


def pytest_configure(config: pytest.Config) -> None:
    import torch

    # Test tensors are tiny: one thread avoids pool overhead and oversubscription on a shared 2-core CI box.
    torch.set_num_threads(1)
    config.addinivalue_line("markers", "slow: a Ray end-to-end run; only with LABELAUDIT_SLOW_TESTS=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="a Ray end-to-end run: set LABELAUDIT_SLOW_TESTS=1 (.ci/run does)")
    for item in items:
        if item.nodeid in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
            if not RUN_SLOW:
                item.add_marker(skip)


ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = ROOT / "tests" / "assets" / "labelaudit-tiny.json"
SAMPLE_TEXT = ROOT / "sample_data" / "text"
SAMPLE_IMAGES = ROOT / "sample_data" / "images"
SHARED_ASSETS = ROOT.parent / "shared" / "assets"


@pytest.fixture(scope="session")
def tiny_encoder():
    import torch

    from labelaudit.encoders.openclip import OpenClipEncoder

    return OpenClipEncoder(str(TINY_MODEL), "random", None, torch.device("cpu"))


@pytest.fixture(scope="session")
def minilm_encoder():
    import torch

    from labelaudit.encoders.sentence import SentenceEncoder

    return SentenceEncoder("all-MiniLM-L6-v2", torch.device("cpu"))


def make_image(path: Path, color: tuple[int, int, int], size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label, base in (("red", (200, 30, 30)), ("green", (30, 200, 30)), ("blue", (30, 30, 200))):
        for i in range(6):
            jitter = tuple(int(c + rng.integers(-20, 20)) for c in base)
            make_image(root / label / f"{label}_{i}.png", jitter)
    return root


def synthetic_embeddings(
    n: int = 1000,
    k: int = 5,
    dim: int = 64,
    noise_rate: float = 0.1,
    spread: float = 0.35,
    seed: int = 0,
    mode: str = "symmetric",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clustered unit vectors with known wrong labels: (embeddings, given labels, true labels, class centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    true = rng.integers(0, k, size=n)
    x = centres[true] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim) * 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    given = true.copy()
    flip = rng.random(n) < noise_rate
    given[flip] = (true[flip] + rng.integers(1, k, size=flip.sum())) % k
    return x.astype(np.float32), given, true, centres.astype(np.float32)


def local_ray() -> Iterator[Any]:
    """A 2-CPU local Ray for a module's tests (skipped without the extra); its workers import this checkout."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
