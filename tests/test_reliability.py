"""Reliability as a user meets it: reruns give the same bytes, and a killed run leaves nothing half-done."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import labelaudit
from labelaudit.cli import main
from labelaudit.errors import AuditInterrupted, LabelAuditError
from labelaudit.io import WRITING_MARKER
from labelaudit.report import REPORT_FILES, load_report

from .conftest import ROOT, SAMPLE_TEXT, TINY_MODEL


def test_same_inputs_give_byte_identical_reports_and_only_run_json_differs(tmp_path: Path) -> None:
    def audit(name: str, cache: str) -> Path:
        out = tmp_path / name
        args = ["audit", str(SAMPLE_TEXT), "--out", str(out), "--cache-dir", str(tmp_path / cache), "--quiet"]
        assert main(args) == 0
        return out

    first = audit("first", "cache-a")
    second = audit("second", "cache-b")  # a fresh cache: everything computed again
    warm = audit("warm", "cache-a")  # everything read back from the cache
    names = sorted(p.name for p in first.iterdir())
    assert "run.json" in names and "summary.json" in names and "report.html" in names
    for other in (second, warm):
        assert sorted(p.name for p in other.iterdir()) == names
        for name in names:
            if name != "run.json":
                assert (other / name).read_bytes() == (first / name).read_bytes(), f"{other.name}/{name}"
    run_first = json.loads((first / "run.json").read_text())
    run_warm = json.loads((warm / "run.json").read_text())
    assert run_first["cache"]["embedded"] == 48 and run_warm["cache"]["hits"] == 48
    assert set(run_warm["scores_from_cache"].values()) == {True}
    assert {"started_at", "finished_at", "timings_s", "platform"} <= set(run_first)


# --- Interruption -----------------------------------------------------------------------------------------

N_IMAGES = 200
SHARD_ROWS = 16  # a shard every 4 batches of 4: shards appear within the first second of embedding
TINY_ARGS = ["--model", str(TINY_MODEL), "--pretrained", "random", "--workers", "0", "--batch-size", "4"]


@pytest.fixture(scope="module")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("many") / "images"
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        path = root / f"class_{i % 4}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return root


def _child_env(home: Path) -> dict[str, str]:
    # The child must import this checkout's labelaudit, not whatever is installed.
    return {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "LABELAUDIT_SHARD_ROWS": str(SHARD_ROWS),
    }


def _start(args: list[str], home: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "labelaudit.cli", "audit", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env(home))


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 90.0) -> bool:
    """Poll until ``condition`` holds (True) or the process ended first (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.002)
    process.kill()
    raise AssertionError("the audit neither reached the awaited point nor ended")


def _shard_hashes(cache: Path) -> set[str]:
    hashes: set[str] = set()
    for shard in cache.glob("*/shard-*.npz"):
        with np.load(shard) as data:
            hashes.update(data["hashes"].tolist())
    return hashes


def _assert_every_visible_file_parses(out: Path) -> None:
    for path in out.iterdir():
        if path.name.startswith("."):
            continue  # temp files and the marker: never taken for a report file
        assert path.name in REPORT_FILES, f"unexpected file {path.name}"
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            assert path.read_text(encoding="utf-8").rstrip().endswith("</html>"), path.name


def test_sigkill_during_embedding_then_the_rerun_embeds_only_what_was_not_saved(
    many_images: Path, tmp_path: Path
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = [str(many_images), "--out", str(out), "--cache-dir", str(cache), *TINY_ARGS, "--methods", "zeroshot,knn"]
    killed = _start([*args, "--quiet"], tmp_path)
    assert _wait_for(lambda: bool(list(cache.glob("*/shard-*.npz"))), killed), killed.communicate()[1]
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    saved = _shard_hashes(cache)
    assert SHARD_ROWS <= len(saved) < N_IMAGES, "the kill should land while embedding"

    rerun = subprocess.run(
        [sys.executable, "-m", "labelaudit.cli", "audit", *args, "--json"],
        capture_output=True,
        text=True,
        env=_child_env(tmp_path),
        timeout=120,
    )

    assert rerun.returncode == 0, rerun.stderr
    run = json.loads(rerun.stdout)["run"]
    assert run["cache"]["hits"] == len(saved)
    assert run["cache"]["embedded"] == N_IMAGES - len(saved)
    assert run["cache"]["corrupt_shards_removed"] == 0
    _assert_every_visible_file_parses(out)
    assert not list(out.glob(".*"))
    assert len(pd.read_parquet(out / "report.parquet")) == N_IMAGES


def test_ctrl_c_during_embedding_exits_130_and_says_what_was_saved_and_how_to_resume(
    many_images: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    args = [str(many_images), "--out", str(tmp_path / "out"), "--cache-dir", str(cache), *TINY_ARGS, "--quiet"]
    process = _start(args, tmp_path)
    assert _wait_for(lambda: bool(list(cache.glob("*/shard-*.npz"))), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Interrupted while embedding" in stderr
    # The count it names is what the cache holds: the partial batch is flushed on the way out.
    saved = re.search(r"([\d,]+) new embedding\(s\) were saved in the cache", stderr)
    assert saved is not None, stderr
    assert int(saved.group(1).replace(",", "")) == len(_shard_hashes(cache))
    assert "Run the same command again to resume" in stderr


def _methods_in(out: Path) -> dict[str, list[str]]:
    """Which methods each report file says ran: a file from another run shows up as a mismatch."""
    found = {
        "summary.json": json.loads((out / "summary.json").read_text())["methods"],
        "report.parquet": [c.removesuffix("_score") for c in pd.read_parquet(out / "report.parquet").columns],
        "report.csv": [c.removesuffix("_score") for c in pd.read_csv(out / "report.csv").columns],
        "report.html": [m for m in ("zeroshot", "knn") if f"{m}_score" in (out / "report.html").read_text()],
    }
    if (out / "run.json").exists():
        found["run.json"] = list(json.loads((out / "run.json").read_text())["scores_from_cache"])
    return {name: [m for m in methods if m in ("zeroshot", "knn")] for name, methods in found.items()}


def test_kill_while_writing_the_report_leaves_one_whole_report_or_a_marked_incomplete_one(
    many_images: Path, tmp_path: Path, tiny_encoder
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    labelaudit.audit(many_images, out=out, encoder=tiny_encoder, cache_dir=cache, methods="zeroshot", workers=0)
    args = [str(many_images), "--out", str(out), "--cache-dir", str(cache), *TINY_ARGS, "--quiet", "--overwrite"]
    outcomes = []
    # Kill at once, a little later and later still after the marker appears: early, middle and (on a fast
    # machine) after the writes. Fixed delays, so that a failure can be reproduced.
    for delay in (0.0, 0.02, 0.06):
        process = _start([*args, "--methods", "zeroshot,knn"], tmp_path)
        if _wait_for(lambda: (out / WRITING_MARKER).exists(), process):
            time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.communicate()

        _assert_every_visible_file_parses(out)
        if (out / WRITING_MARKER).exists():
            outcomes.append("incomplete")
            with pytest.raises(LabelAuditError, match="incomplete report"):
                load_report(out)
        else:
            outcomes.append("complete")
            methods = _methods_in(out)
            assert all(m == methods["summary.json"] for m in methods.values()), methods

    # Whatever the kills left, the next audit replaces it and leaves no temp file behind.
    labelaudit.audit(many_images, out=out, encoder=tiny_encoder, cache_dir=cache, methods="knn", overwrite=True)
    assert all(m == ["knn"] for m in _methods_in(out).values())
    assert not list(out.glob(".*")), list(out.glob(".*"))
    assert "incomplete" in outcomes, outcomes  # at least one kill landed inside the writes


def test_report_interrupted_mid_write_is_refused_by_readers_and_replaced_without_overwrite(
    image_folder: Path, tmp_path: Path, tiny_encoder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    kwargs = {"encoder": tiny_encoder, "cache_dir": None, "methods": "zeroshot", "workers": 0}
    labelaudit.audit(image_folder, out=out, **kwargs)

    def stopped(*_: object, **__: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the tables, before the page and the summary

    with monkeypatch.context() as patch:
        patch.setattr("labelaudit.html.render_html", stopped)
        with pytest.raises(AuditInterrupted, match="writing the report.*incomplete"):
            labelaudit.audit(image_folder, out=out, overwrite=True, **kwargs)
    (out / ".report.csv.x1y2z3.tmp").write_text("what a SIGKILL mid-write leaves")

    assert (out / WRITING_MARKER).exists() and not (out / "summary.json").exists()
    assert main(["gate", str(out), "--max-error-rate", "1"]) == 2
    assert main(["view", str(out), "--no-open"]) == 2  # its page is the old run's, not the tables'
    assert capsys.readouterr().err.count("incomplete report") == 2
    labelaudit.audit(image_folder, out=out, **kwargs)  # no --overwrite needed: the folder is marked as ours
    assert load_report(out)[2].methods == ["zeroshot"]
    assert not list(out.glob(".*"))
    with pytest.raises(LabelAuditError, match="overwrite=True"):  # the API names its keyword, not the flag
        labelaudit.audit(image_folder, out=out, **kwargs)  # a complete report is still protected


# --- Names ------------------------------------------------------------------------------------------------

AWKWARD_CLASSES = ["a b", "ćłass", "$(rm -rf x)", ";|&"]


def test_awkward_folder_and_file_names_round_trip_into_every_report_file(tmp_path: Path, tiny_encoder) -> None:
    root = tmp_path / "data"
    long_name = "ł" * 123 + ".png"  # 250 bytes
    names = ("one.png", "two words.png", long_name)
    rng = np.random.default_rng(1)
    for label in AWKWARD_CLASSES:
        for name in names:
            (root / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / label / name)
    latin1 = Path(os.fsdecode(os.fsencode(root / "a b") + b"/caf\xe9.png"))
    Image.new("RGB", (16, 16)).save(latin1)
    out = tmp_path / "out"

    labelaudit.audit(root, out=out, encoder=tiny_encoder, cache_dir=None, methods="zeroshot,knn", workers=0)

    expected_ids = sorted(f"{label}/{name}" for label in AWKWARD_CLASSES for name in names)
    report = pd.read_parquet(out / "report.parquet")
    csv = pd.read_csv(out / "report.csv", dtype=str, keep_default_na=False)
    assert sorted(report["sample_id"]) == sorted(csv["sample_id"]) == expected_ids
    for frame in (report, csv):
        assert (frame["sample_id"].str.split("/").str[0] == frame["given_label"]).all()
        assert set(frame["suggested_label"]) <= set(AWKWARD_CLASSES)
    assert sorted(pd.read_parquet(out / "classes.parquet")["class"]) == sorted(AWKWARD_CLASSES)
    assert sorted(pd.read_csv(out / "classes.csv", dtype=str, keep_default_na=False)["class"]) == sorted(
        AWKWARD_CLASSES
    )
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["classes"] == sorted(AWKWARD_CLASSES)
    skipped = pd.read_csv(out / "skipped.csv", dtype=str, keep_default_na=False)
    assert skipped["path"].tolist() == ["a b/caf\\xe9.png"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "ćłass" in page and "$(rm -rf x)" in page and ";|&amp;" in page
