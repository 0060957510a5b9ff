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

import labelaudit
from labelaudit.cache import EmbeddingCache
from labelaudit.cli import main
from labelaudit.discover import discover
from labelaudit.storage import Location

from .conftest import TINY_MODEL, local_ray, make_image

moto_server = pytest.importorskip(
    "moto.server", reason="moto[server] is not installed (pip install 'moto[server]>=5'); it serves a local S3"
)
boto3 = pytest.importorskip("boto3", reason="boto3 (installed with moto) creates the test bucket")

MODEL = {"model": str(TINY_MODEL), "pretrained": "random"}
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


def _run_record(out: Path) -> dict[str, Any]:
    """run.json: how this run went (cache hits, timings); summary.json holds only what the inputs determine."""
    return json.loads((out / "run.json").read_text())


def _scores(result: labelaudit.AuditResult) -> pd.DataFrame:
    columns = ["sample_id", "given_label", "consensus_score", "is_issue", "confident_score", "zeroshot_score"]
    return result.samples[columns].sort_values("sample_id").reset_index(drop=True)


def test_cache_in_a_bucket_is_written_and_an_unchanged_rerun_embeds_nothing(
    s3: S3, dataset: dict[str, Any], tmp_path: Path
) -> None:
    prefix = _prefix()
    cache = f"s3://{BUCKET}/{prefix}/cache"
    data = str(dataset["local"])
    assert _audit_cli(data, cache, tmp_path / "cold") == 0
    cold = _run_record(tmp_path / "cold")
    assert (cold["cache"]["hits"], cold["cache"]["embedded"]) == (0, 18)
    assert cold["cache"]["dir"].startswith(cache + "/")

    keys = s3.keys(f"{prefix}/cache/")
    assert any(k.endswith(".npz") and "/shard-" in k for k in keys)  # sample shards
    assert sum(k.endswith("/encoder.json") for k in keys) == 2  # samples and class prompts
    assert any("/scores/confident-" in k for k in keys)
    assert any("/neighbors/" in k for k in keys)
    assert not any(k.endswith(".tmp") for k in keys)  # one PUT per object: no temp objects left behind

    assert _audit_cli(data, cache, tmp_path / "warm") == 0
    warm = _run_record(tmp_path / "warm")
    assert (warm["cache"]["hits"], warm["cache"]["embedded"]) == (18, 0)
    assert warm["scores_from_cache"]["confident"] is True
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


def test_manifest_in_a_bucket_audits_like_the_same_data_on_disk(
    s3: S3, dataset: dict[str, Any], tmp_path: Path
) -> None:
    local = labelaudit.audit(dataset["local"], cache_dir=None, methods=METHODS, seed=1, workers=0, **MODEL)
    remote = labelaudit.audit(
        dataset["uri"], cache_dir=None, methods=METHODS, seed=1, workers=2, out=tmp_path / "report", **MODEL
    )
    pd.testing.assert_frame_equal(_scores(local), _scores(remote))
    assert "data:image/jpeg;base64" in (tmp_path / "report" / "report.html").read_text()  # thumbnails from S3
    paths = remote.samples.set_index("sample_id")["path"]
    assert paths["img/red/red_0.png"] == f"s3://{BUCKET}/dataset/img/red/red_0.png"  # reports say where it is
    assert remote.summary.dataset.kind == "manifest"
    assert sorted(local.samples["content_hash"]) == sorted(remote.samples["content_hash"])

    # A folder in a bucket is discovered like a local folder (one recursive listing).
    folder = discover(f"s3://{BUCKET}/dataset/img/")
    on_disk = discover(dataset["local"].parent / "img")
    assert folder.samples["sample_id"].tolist() == on_disk.samples["sample_id"].tolist()
    assert folder.samples["content_hash"].tolist() == on_disk.samples["content_hash"].tolist()


def test_text_folder_in_a_bucket_reads_like_a_local_one(s3: S3, tmp_path: Path) -> None:
    prefix = _prefix()
    files = {"spam/a.txt": "win money now", "spam/b.txt": "cheap pills", "ham/c.txt": "\ufefflunch at noon?"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    (tmp_path / "ham" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "ham" / ".hidden.txt").write_text("ignored")
    for file in tmp_path.rglob("*.txt"):
        s3.upload(file, f"{prefix}/text/{file.relative_to(tmp_path).as_posix()}")
    remote, local = discover(f"s3://{BUCKET}/{prefix}/text"), discover(tmp_path)
    columns = ["sample_id", "text", "label", "content_hash"]
    pd.testing.assert_frame_equal(remote.samples[columns], local.samples[columns])
    assert [(s.path, s.reason) for s in remote.skipped] == [(s.path, s.reason) for s in local.skipped]
    assert remote.modality == "text" and len(remote.skipped) == 1


def test_manifest_rows_outside_its_folder_missing_or_on_another_filesystem_are_skipped(
    s3: S3, dataset: dict[str, Any], tmp_path: Path
) -> None:
    rows = [
        *dataset["rows"],
        {"path": "../elsewhere/x.png", "label": "red"},
        {"path": "img/red/missing.png", "label": "red"},
        {"path": f"s3://{BUCKET}/dataset/img/blue/blue_0.png", "label": "blue"},  # an absolute URI: same object
        {"path": "gs://other-bucket/y.png", "label": "green"},
        {"path": "/data/z.png", "label": "green"},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    s3.upload(tmp_path / "manifest.csv", "dataset/manifest-extra.csv")
    found = discover(f"s3://{BUCKET}/dataset/manifest-extra.csv", modality="image")
    reasons = {s.path: s.reason for s in found.skipped}
    assert "outside the manifest folder" in reasons["../elsewhere/x.png"]
    assert reasons["img/red/missing.png"] == "file not found"
    assert "filesystem" in reasons["gs://other-bucket/y.png"]
    assert "absolute local path" in reasons["/data/z.png"]
    assert len(found.samples) == 19


@pytest.fixture(scope="module")
def ray_cluster(s3: S3) -> Iterator[Any]:
    """A 2-CPU local Ray, started after ``s3`` set AWS_*: the workers inherit the endpoint and credentials,
    as a real cluster's nodes must have them in their own environment."""
    yield from local_ray()


def test_ray_engine_with_cache_and_manifest_in_a_bucket_shares_the_cache_with_local_both_ways(
    s3: S3, dataset: dict[str, Any], ray_cluster: Any
) -> None:
    settings = {"methods": "zeroshot,knn", "seed": 2, **MODEL}
    first, second = (f"s3://{BUCKET}/{_prefix()}/cache" for _ in range(2))
    local_first = labelaudit.audit(dataset["uri"], cache_dir=first, workers=0, **settings)
    ray_after_local = labelaudit.audit(dataset["uri"], cache_dir=first, engine="ray", **settings)
    ray_first = labelaudit.audit(dataset["uri"], cache_dir=second, engine="ray", batch_size=8, **settings)
    local_after_ray = labelaudit.audit(dataset["uri"], cache_dir=second, workers=0, **settings)
    counts = [(r.run["cache"]["hits"], r.run["cache"]["embedded"]) for r in (local_first, ray_after_local)]
    assert counts == [(0, 18), (18, 0)]
    counts = [(r.run["cache"]["hits"], r.run["cache"]["embedded"]) for r in (ray_first, local_after_ray)]
    assert counts == [(0, 18), (18, 0)]
    assert len([k for k in s3.keys(second.split(BUCKET + "/")[1]) if "/shard-" in k]) >= 3  # the actors wrote them
    for result in (ray_after_local, ray_first, local_after_ray):
        np.testing.assert_allclose(
            result.samples["consensus_score"].to_numpy(), local_first.samples["consensus_score"].to_numpy(), atol=1e-5
        )
        assert result.samples["sample_id"].tolist() == local_first.samples["sample_id"].tolist()


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


def test_manifest_in_a_missing_bucket_or_key_is_a_clear_error(
    s3: S3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _audit_cli("s3://no-such-bucket-here/dataset/manifest.csv", f"s3://{BUCKET}/c", tmp_path / "a") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _audit_cli(f"s3://{BUCKET}/nowhere/manifest.csv", f"s3://{BUCKET}/c", tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert f"s3://{BUCKET}/nowhere/manifest.csv does not exist" in err


def test_locations_keep_their_filesystem_options_and_never_climb_out_of_a_folder() -> None:
    root = Location.parse("s3://bucket/dataset/manifest.csv?endpoint_override=h:9000&scheme=http").parent
    image = root / "img/../img/a b.jpg"
    assert image.uri == "s3://bucket/dataset/img/a b.jpg?endpoint_override=h:9000&scheme=http"
    assert image.is_relative_to(root) and image.relative_to(root) == "img/a b.jpg"
    assert not (root / "../other/x.jpg").is_relative_to(root)
    assert not Location.parse("s3://bucket/../x").is_relative_to(Location.parse("s3://bucket"))
    assert not Location.parse("s3://other/dataset/x").is_relative_to(root)
