"""Object-store locations (pyarrow.fs): the cache and the data in an S3 bucket, served by a local moto server.

One moto server and one bucket set-up per module; every test uses its own key prefix. The AWS variables
point every process (this one, DataLoader workers, Ray workers) at the moto endpoint via AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from labelaudit.cache import EmbeddingCache
from labelaudit.cli import main
from labelaudit.storage import Location

from .conftest import TINY_MODEL, make_image

moto_server = pytest.importorskip(
    "moto.server", reason="moto[server] is not installed (pip install 'moto[server]>=5'); it serves a local S3"
)
boto3 = pytest.importorskip("boto3", reason="boto3 (installed with moto) creates the test bucket")

METHODS = "confident,zeroshot,knn"
BUCKET = "labelaudit-test"


@dataclass
class S3:
    endpoint: str
    client: Any

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def upload(self, local: Path, key: str) -> str:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=local.read_bytes())
        return f"s3://{BUCKET}/{key}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",  # never wait on an instance-metadata lookup
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield S3(endpoint, client)
    server.stop()


@pytest.fixture(scope="module")
def dataset(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """18 images and a manifest, once on local disk and once in the bucket under dataset/ (same layout)."""
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(0)
    rows = []
    for label, base in (("red", (200, 30, 30)), ("green", (30, 200, 30)), ("blue", (30, 30, 200))):
        for i in range(6):
            jitter = tuple(int(c + rng.integers(-20, 20)) for c in base)
            rel = f"img/{label}/{label}_{i}.png"
            s3.upload(make_image(root / rel, jitter), f"dataset/{rel}")
            rows.append({"path": rel, "label": label})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    uri = s3.upload(root / "manifest.csv", "dataset/manifest.csv")
    return {"local": root / "manifest.csv", "uri": uri, "rows": rows}


def _prefix() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


def _audit_cli(data: str, cache: str, out: Path, *extra: str) -> int:
    args = ["audit", data, "--out", str(out), "--cache-dir", cache, "--methods", METHODS, "--quiet"]
    return main([*args, "--model", str(TINY_MODEL), "--pretrained", "random", "--workers", "0", *extra])


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def test_cache_in_a_bucket_is_written_and_an_unchanged_rerun_embeds_nothing(
    s3: S3, dataset: dict[str, Any], tmp_path: Path
) -> None:
    prefix = _prefix()
    cache = f"s3://{BUCKET}/{prefix}/cache"
    data = str(dataset["local"])
    assert _audit_cli(data, cache, tmp_path / "cold") == 0
    cold = _summary(tmp_path / "cold")
    assert (cold["cache"]["hits"], cold["cache"]["embedded"]) == (0, 18)
    assert cold["cache"]["dir"].startswith(cache + "/")

    keys = s3.keys(f"{prefix}/cache/")
    assert any(k.endswith(".npz") and "/shard-" in k for k in keys)  # sample shards
    assert sum(k.endswith("/encoder.json") for k in keys) == 2  # samples and class prompts
    assert any("/scores/confident-" in k for k in keys)
    assert any("/neighbors/" in k for k in keys)
    assert not any(k.endswith(".tmp") for k in keys)  # one PUT per object: no temp objects left behind

    assert _audit_cli(data, cache, tmp_path / "warm") == 0
    warm = _summary(tmp_path / "warm")
    assert (warm["cache"]["hits"], warm["cache"]["embedded"]) == (18, 0)
    assert warm["method_settings"]["confident"]["from_cache"] is True
    assert warm["neighbor_graph"]["from_cache"] is True
    assert s3.keys(f"{prefix}/cache/") == keys  # nothing new written
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "cold" / "report.parquet"), pd.read_parquet(tmp_path / "warm" / "report.parquet")
    )


def test_corrupt_shard_object_is_removed_and_its_rows_are_embedded_again(s3: S3) -> None:
    prefix = _prefix()
    cache = EmbeddingCache(f"s3://{BUCKET}/{prefix}", "m")
    cache.store(["h1", "h2"], np.ones((2, 4), dtype=np.float32))
    (bad,) = [k for k in s3.keys(prefix) if "/shard-" in k]
    body = bytearray(s3.client.get_object(Bucket=BUCKET, Key=bad)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.client.put_object(Bucket=BUCKET, Key=bad, Body=bytes(body))
    cache.store(["h3"], np.full((1, 4), 2.0, dtype=np.float32))

    fresh = EmbeddingCache(f"s3://{BUCKET}/{prefix}", "m")
    found, matrix = fresh.lookup(["h1", "h2", "h3"])
    assert found.tolist() == [False, False, True]
    assert matrix is not None and np.all(matrix[2] == 2.0)
    assert fresh.corrupt_shards == 1
    shards = [k for k in s3.keys(prefix) if "/shard-" in k]
    assert bad not in shards and len(shards) == 1  # the bad object is deleted, the good one kept

    fresh.store(["h1", "h2"], np.ones((2, 4), dtype=np.float32))
    again, _ = EmbeddingCache(f"s3://{BUCKET}/{prefix}", "m").lookup(["h1", "h2", "h3"])
    assert again.all()


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ("s3://no-such-bucket-here/cache", "does not exist"),
        ("s3://{bucket}/cache?endpoint_override=127.0.0.1:{closed}&scheme=http", "cannot reach"),
        ("s3://key:secret@{bucket}/cache", "not in the URI"),
        ("nosuch://bucket/cache", "cannot open"),
    ],
)
def test_unusable_cache_location_fails_fast_with_a_clear_message(
    s3: S3, dataset: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: str, message: str
) -> None:
    cache = cache.format(bucket=BUCKET, closed=_free_port())
    start = time.monotonic()
    assert _audit_cli(str(dataset["local"]), cache, tmp_path / "out") == 2
    assert time.monotonic() - start < 30  # the SDK's own retries (3 attempts) are the only wait
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "secret" not in err
    assert not (tmp_path / "out").exists()


def test_locations_keep_their_filesystem_options_and_never_climb_out_of_a_folder() -> None:
    root = Location.parse("s3://bucket/dataset/manifest.csv?endpoint_override=h:9000&scheme=http").parent
    image = root / "img/../img/a b.jpg"
    assert image.uri == "s3://bucket/dataset/img/a b.jpg?endpoint_override=h:9000&scheme=http"
    assert image.is_relative_to(root) and image.relative_to(root) == "img/a b.jpg"
    assert not (root / "../other/x.jpg").is_relative_to(root)
    assert not Location.parse("s3://bucket/../x").is_relative_to(Location.parse("s3://bucket"))
    assert not Location.parse("s3://other/dataset/x").is_relative_to(root)
