"""Hostile input and user mistakes (issue #16): nothing of the user's is deleted, read or leaked, and a mistake
is a message naming the file (exit 2), never a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import labelaudit
from labelaudit.cache import EmbeddingCache
from labelaudit.cli import main
from labelaudit.config import DEFAULT_CACHE_DIR
from labelaudit.discover import discover
from labelaudit.embed import embed_samples, embedding_batches
from labelaudit.errors import LabelAuditError
from labelaudit.hashing import hash_text
from labelaudit.progress import Reporter
from labelaudit.storage import TEXT_CHARS_KEPT

from .conftest import ROOT, TINY_MODEL, make_image
from .report_factory import write_report

TINY = {"model": str(TINY_MODEL), "pretrained": "random", "methods": "zeroshot,knn", "workers": 0}
TINY_ARGS = ["--model", str(TINY_MODEL), "--pretrained", "random", "--workers", "0", "--methods", "zeroshot,knn"]


def _text_folder(root: Path, per_class: int = 4) -> Path:
    for label in ("sport", "food"):
        for i in range(per_class):
            (root / label).mkdir(parents=True, exist_ok=True)
            (root / label / f"{i}.txt").write_text(f"{label} sample number {i} about {label}", encoding="utf-8")
    return root


def _rows(n: int = 6) -> list[dict[str, object]]:
    return [
        {"sample_id": f"s{i}", "given_label": "ab"[i % 2], "consensus_score": 0.1 * i, "is_issue": i < 2}
        for i in range(n)
    ]


# --- Data loss and leaks ------------------------------------------------------------------------------------


def test_an_audit_into_a_folder_of_the_users_files_deletes_none_of_them(
    image_folder: Path, tmp_path: Path, tiny_encoder
) -> None:
    out = tmp_path / "mine"
    make_image(out / "thumbs" / "holiday.jpg", (5, 5, 5))  # the user's own thumbs/ folder, no earlier report
    (out / "notes.txt").write_text("mine")

    labelaudit.audit(image_folder, out=out, encoder=tiny_encoder, cache_dir=None, methods="zeroshot", workers=0)
    labelaudit.audit(image_folder, out=out, encoder=tiny_encoder, cache_dir=None, methods="knn", overwrite=True)

    assert (out / "thumbs" / "holiday.jpg").is_file() and (out / "notes.txt").read_text() == "mine"
    assert (out / "summary.json").is_file()


def test_a_users_skipped_parquet_in_out_is_protected_like_every_report_file(
    image_folder: Path, tmp_path: Path, tiny_encoder
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    pd.DataFrame({"a": [1]}).to_parquet(out / "skipped.parquet")  # a name an older labelaudit wrote and removes
    with pytest.raises(LabelAuditError, match="overwrite=True"):  # the API names the keyword
        labelaudit.audit(image_folder, out=out, encoder=tiny_encoder, cache_dir=None, methods="zeroshot")
    assert (out / "skipped.parquet").is_file()


def test_symlinks_that_lead_out_of_the_data_folder_are_skipped_unless_allowed(tmp_path: Path) -> None:
    data = _text_folder(tmp_path / "data")
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the password is hunter2", encoding="utf-8")
    (data / "sport" / "leak.txt").symlink_to(secret)
    (data / "stolen").symlink_to(secret.parent, target_is_directory=True)  # a class folder linked out
    (data / "food" / "alias.txt").symlink_to(data / "sport" / "0.txt")  # inside the data folder: fine

    dataset = discover(data)

    reasons = {s.path: s.reason for s in dataset.skipped}
    assert "outside the dataset folder" in reasons["sport/leak.txt"]
    assert "--allow-outside-root" in reasons["sport/leak.txt"]
    assert "outside the dataset folder" in reasons["stolen/"]
    assert not dataset.samples["text"].str.contains("hunter2").any()
    assert "food/alias.txt" in set(dataset.samples["sample_id"])

    allowed = discover(data, allow_outside_root=True)
    assert {"sport/leak.txt", "stolen/secret.txt"} <= set(allowed.samples["sample_id"])


def test_no_report_file_carries_the_contents_of_a_file_linked_from_outside(tmp_path: Path, tiny_encoder) -> None:
    data = _text_folder(tmp_path / "data")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:hunter2", encoding="utf-8")
    (data / "sport" / "passwd.txt").symlink_to(secret)
    out = tmp_path / "out"

    labelaudit.audit(data, out=out, encoder=tiny_encoder, cache_dir=None, methods="zeroshot,knn")

    for name in ("report.csv", "report.parquet", "report.html", "summary.json"):
        assert b"hunter2" not in (out / name).read_bytes(), name
    assert "outside the dataset folder" in (out / "skipped.csv").read_text()


def test_export_refuses_to_replace_an_existing_queue_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = write_report(tmp_path / "report", _rows())
    queue = tmp_path / "relabel-queue.csv"
    queue.write_text("sample_id,decision\ns0,relabel:b\n")  # a reviewer's work
    tasks = tmp_path / "tasks.json"

    assert main(["export", str(report), "--out", str(queue)]) == 2
    assert queue.read_text() == "sample_id,decision\ns0,relabel:b\n"
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(report), "--to", "labelstudio", "--out", str(tasks)]) == 0
    config = next(tmp_path.glob("*.xml"))  # the labelling config beside it is protected too
    config.write_text("<View>edited by hand</View>")
    tasks.unlink()
    assert main(["export", str(report), "--to", "labelstudio", "--out", str(tasks)]) == 2
    assert config.read_text() == "<View>edited by hand</View>" and not tasks.exists()
    assert main(["export", str(report), "--out", str(queue), "--overwrite"]) == 0
    assert "relabel:b" not in queue.read_text()


# --- User errors are messages, before the expensive work ----------------------------------------------------


def _no_traceback(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_an_out_that_cannot_be_written_stops_before_discovery(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing_data = str(tmp_path / "no-such-data")  # discovery would fail too: the --out message must come first
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert main(["audit", missing_data, "--out", str(a_file / "out"), "--no-cache"]) == 2
    assert "--out" in _no_traceback(capsys)
    read_only_system = Path("/sys/labelaudit-out")  # not writable even for root
    if Path("/sys").is_dir():
        assert main(["audit", missing_data, "--out", str(read_only_system), "--no-cache"]) == 2
        assert "--out" in _no_traceback(capsys) and not read_only_system.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway; /sys covers it above")
def test_an_existing_read_only_out_stops_before_discovery(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(["audit", str(tmp_path / "no-such-data"), "--out", str(out), "--no-cache"]) == 2
        assert "cannot write the report" in _no_traceback(capsys)
    finally:
        out.chmod(0o755)


def test_a_cache_dir_that_is_a_file_stops_before_embedding(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a_file = tmp_path / "cache-file"
    a_file.write_text("x")
    out = tmp_path / "out"
    assert main(["audit", str(image_folder), "--out", str(out), "--cache-dir", str(a_file), *TINY_ARGS]) == 2
    err = _no_traceback(capsys)
    assert f"--cache-dir {a_file}" in err and "--no-cache" in err
    assert a_file.read_text() == "x" and not (out / "summary.json").exists()
    if Path("/sys").is_dir():
        assert main(["audit", str(image_folder), "--out", str(out), "--cache-dir", "/sys/labelaudit", *TINY_ARGS]) == 2
        assert "--cache-dir /sys/labelaudit" in _no_traceback(capsys)


def test_an_unusable_default_cache_folder_is_passed_over_with_a_warning(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_encoder
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cache").write_text("a file where the cache folder would go")
    monkeypatch.setenv("HOME", str(home))
    notes: list[str] = []

    class Recorder(Reporter):
        def note(self, message: str) -> None:
            notes.append(message)

    result = labelaudit.audit(
        image_folder, encoder=tiny_encoder, cache_dir=DEFAULT_CACHE_DIR, methods="zeroshot", workers=0,
        reporter=Recorder(enabled=False),
    )  # fmt: skip

    assert len(result.samples) == 18 and result.run["cache"]["dir"] is None
    assert any("running without a cache" in n for n in notes), notes


def test_a_damaged_summary_json_is_a_message_naming_it_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = write_report(tmp_path / "report", _rows())
    (report / "summary.json").write_text('{"estimated_error_rate": 0.1, "dataset": {')  # cut off mid-write by hand
    commands = [
        ["gate", str(report), "--max-error-rate", "1"],
        ["export", str(report), "--out", str(tmp_path / "q.csv")],
        ["view", str(report), "--rerender", "--no-open"],
        ["verify", str(report), "--n", "3", "--out", str(tmp_path / "v.csv")],
        ["estimate", str(report), "--verified", str(tmp_path / "v.csv")],
        ["apply", str(tmp_path / "q.csv"), "--report", str(report)],
    ]
    for command in commands:
        assert main(command) == 2, command
        err = _no_traceback(capsys)
        assert "summary.json" in err and "damaged" in err, (command, err)
    (report / "summary.json").write_bytes(b"\xff\xfe not utf-8")
    assert main(["export", str(report), "--out", str(tmp_path / "q.csv")]) == 2
    assert "summary.json" in _no_traceback(capsys)
    # Valid JSON of the wrong shape (edited by hand): export and view raised a ValueError traceback.
    damages = ('"estimated_error_rate": "n/a"', '"n_flagged": [1]', '"error_rate": {"lower": "low"}')
    for number, damage in enumerate(damages):
        edited = write_report(tmp_path / f"edited{number}", _rows())
        payload = json.loads((edited / "summary.json").read_text())
        payload.update(json.loads("{" + damage + "}"))
        (edited / "summary.json").write_text(json.dumps(payload))
        for command in commands[:4]:
            command = [str(edited) if part == str(report) else part for part in command]
            assert main(command) == 2, (command, damage)
            err = _no_traceback(capsys)
            assert "summary.json" in err and "damaged" in err, (command, damage, err)


# --- Resource limits and correctness -------------------------------------------------------------------------


def test_an_explicit_cache_dir_wins_over_the_environment(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELAUDIT_CACHE_DIR", str(tmp_path / "from-env"))
    flag = tmp_path / "from-flag"
    out = tmp_path / "out"
    assert main(["audit", str(image_folder), "--out", str(out), "--cache-dir", str(flag), *TINY_ARGS, "--quiet"]) == 0
    assert list(flag.glob("*/shard-*.npz")) and not (tmp_path / "from-env").exists()
    assert main(["audit", str(image_folder), "--out", str(out), "--overwrite", *TINY_ARGS, "--quiet"]) == 0
    assert list((tmp_path / "from-env").glob("*/shard-*.npz"))  # without the flag, the environment counts


def test_empty_and_whitespace_only_texts_are_skipped_with_a_reason(tmp_path: Path) -> None:
    data = _text_folder(tmp_path / "data")
    (data / "sport" / "empty.txt").write_text("")
    (data / "food" / "blank.txt").write_text(" \n\t \r\n\u3000")
    (data / "food" / "bom-only.txt").write_bytes(b"\xef\xbb\xbf\n")

    dataset = discover(data)

    reasons = {s.path: s.reason for s in dataset.skipped}
    assert set(reasons) == {"sport/empty.txt", "food/blank.txt", "food/bom-only.txt"}
    assert all(r.startswith("empty text") for r in reasons.values())
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"text": ["a real sentence", "   ", "another one", "\t"], "label": ["a", "a", "b", "b"]}).to_csv(
        manifest, index=False
    )
    from_manifest = discover(manifest)
    assert len(from_manifest.samples) == 2
    assert [s.reason for s in from_manifest.skipped] == ["empty text", "empty text"]


def test_a_huge_text_file_is_read_in_bounded_memory_and_cut_to_what_the_encoder_can_use(tmp_path: Path) -> None:
    data = _text_folder(tmp_path / "data")
    big = data / "sport" / "big.txt"
    line = "lorem ipsum dolor sit amet, consectetur adipiscing elit ąę\n"
    with big.open("w", encoding="utf-8") as handle:
        for _ in range(20_000_000 // len(line)):  # ~20 MB
            handle.write(line)
    whole = big.read_text(encoding="utf-8")
    expected_hash = hash_text(whole)
    del whole

    tracemalloc.start()
    try:
        dataset = discover(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    row = dataset.samples.set_index("sample_id").loc["sport/big.txt"]
    assert len(row["text"]) == TEXT_CHARS_KEPT and row["content_hash"] == expected_hash  # hash of all of it
    assert peak < 12_000_000, f"reading a 20 MB text peaked at {peak / 1e6:.0f} MB"  # reading it whole: > 40 MB
    assert any("only their first" in w and "sport/big.txt" in w for w in dataset.warnings)


class BatchSensitiveEncoder:
    """A text encoder whose output depends (slightly) on a sample's batch-mates, as real ones do in the last
    bits; records every batch it was given."""

    identity = "test:batch-sensitive"
    dim = 8

    def __init__(self, stop_after: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.stop_after = stop_after

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.stop_after is not None and len(self.batches) == self.stop_after:
            raise KeyboardInterrupt
        self.batches.append(list(texts))
        own = np.array([[hash_text(t + str(d))[:4] for d in range(self.dim)] for t in texts])
        base = np.vectorize(lambda h: int(h, 16) / 65536)(own)
        return base + 0.01 * base.mean(axis=0)


def _duplicated_texts(n: int = 40) -> pd.DataFrame:
    texts = [f"text {i % 30}" for i in range(n)]  # rows 30.. repeat rows 0..9: exact duplicates
    return pd.DataFrame(
        {"sample_id": [str(i) for i in range(n)], "text": texts, "content_hash": [hash_text(t) for t in texts]}
    )


def test_exact_duplicates_are_embedded_once_and_a_rerun_embeds_nothing_and_adds_no_shard(tmp_path: Path) -> None:
    samples = _duplicated_texts()
    cache = EmbeddingCache(tmp_path / "cache", "test")
    encoder = BatchSensitiveEncoder()

    first = embed_samples(samples, "text", encoder, cache, batch_size=8)
    shards = sorted(tmp_path.glob("cache/*/shard-*.npz"))
    rerun = embed_samples(samples, "text", BatchSensitiveEncoder(), EmbeddingCache(tmp_path / "cache", "test"), 8)

    assert sum(len(b) for b in encoder.batches) == 30  # each distinct text once
    assert first.kept.all() and (first.vectors[30:] == first.vectors[:10]).all()
    assert rerun.n_embedded == 0 and rerun.n_cached == 40
    assert sorted(tmp_path.glob("cache/*/shard-*.npz")) == shards
    assert (rerun.vectors == first.vectors).all()


def test_a_resumed_run_embeds_every_sample_in_the_batch_an_uninterrupted_run_would(tmp_path: Path) -> None:
    samples = _duplicated_texts()
    cold = embed_samples(samples, "text", BatchSensitiveEncoder(), EmbeddingCache(tmp_path / "cold", "t"), 8)

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the third batch: two batches are saved
        embed_samples(samples, "text", BatchSensitiveEncoder(stop_after=2), EmbeddingCache(tmp_path / "r", "t"), 8)
    resumed = embed_samples(samples, "text", BatchSensitiveEncoder(), EmbeddingCache(tmp_path / "r", "t"), 8)

    assert resumed.n_cached == 16 + 10  # the two saved batches, and the duplicates of their samples
    assert resumed.vectors.tobytes() == cold.vectors.tobytes()


def test_batch_composition_depends_on_the_dataset_not_on_the_cache() -> None:
    hashes = [f"h{i % 10}" for i in range(14)]  # rows 10..13 repeat 0..3
    nothing = np.zeros(14, dtype=bool)
    assert embedding_batches(hashes, nothing, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    some = nothing.copy()
    some[[1, 4, 5, 6, 7]] = True  # a cache holding one whole batch and part of another
    assert embedding_batches(hashes, some, 4) == [[0, 1, 2, 3], [8, 9]]


# --- SIGTERM ---------------------------------------------------------------------------------------------------


def test_sigterm_during_embedding_is_handled_like_ctrl_c_and_exits_143(tmp_path: Path) -> None:
    data = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(200):
        (data / f"c{i % 4}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(data / f"c{i % 4}" / f"{i}.png")
    cache = tmp_path / "cache"
    command = [
        sys.executable, "-m", "labelaudit.cli", "audit", str(data), "--out", str(tmp_path / "out"),
        "--cache-dir", str(cache), "--model", str(TINY_MODEL), "--pretrained", "random", "--workers", "2",
        "--batch-size", "4", "--quiet",
    ]  # fmt: skip
    env = {
        "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "LABELAUDIT_SHARD_ROWS": "16",
    }  # fmt: skip
    # Its own process group, signalled as a whole, as `timeout` and CI runners do: the decoding workers get it too.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while not list(cache.glob("*/shard-*.npz")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert process.poll() is None, process.communicate()[1]
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "Interrupted while embedding (SIGTERM)" in stderr
    saved = re.search(r"([\d,]+) new embedding\(s\) were saved in the cache", stderr)
    assert saved is not None, stderr
    with_hashes = set()
    for shard in cache.glob("*/shard-*.npz"):
        with np.load(shard) as entry:
            with_hashes.update(entry["hashes"].tolist())
    assert int(saved.group(1).replace(",", "")) == len(with_hashes)  # the partial shard was flushed
