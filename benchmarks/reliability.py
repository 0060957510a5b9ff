"""Reliability figures too slow for the test suite, measured once and committed.

    python benchmarks/reliability.py manifest [--mb 100]   # discover() on a large text CSV manifest
    python benchmarks/reliability.py hashcheck [--n 2000] [--large 10]  # cost of the per-image hash check
    python benchmarks/reliability.py hugetext [--mb 50]   # one huge text file in a text audit: memory, CPU

``manifest`` writes a CSV of about ``--mb`` MB (columns id, text, label; texts of ~100 characters) to a
temporary folder and times ``labelaudit.discover`` on it in a fresh process, so the peak RSS is that of
reading the manifest alone. ``hashcheck`` times ``load_image`` on the CIFAR-10 JPEGs of the shared assets and
on generated 12-megapixel JPEGs, with and without the discovery-hash check that embedding does (read
once, hash, decode those bytes).
``hugetext`` audits sample_data/text (the default text encoder, no cache) in a fresh process, then the same
folder with one ``--mb`` MB text file added, and compares their peak RSS and CPU seconds: a text sample is
read a chunk at a time and cut to what an encoder can use, so one huge file must not cost more than a
normal audit (issue #16: 50 MB took 2 minutes and ~7 GB when the whole text reached the tokenizer).
Results go to benchmarks/results/reliability_<name>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"
CIFAR_IMAGES = REPO.parent / "shared" / "assets" / "cifar10n" / "images"
WORDS = [
    "label",
    "audit",
    "quick",
    "brown",
    "fox",
    "dataset",
    "noise",
    "class",
    "text",
    "row",
    "sample",
    "review",
    "wrong",
    "right",
    "image",
    "report",
    "cache",
    "shard",
    "kill",
    "resume",
    "manifest",
    "column",
    "value",
]


def write_manifest(path: Path, megabytes: float, seed: int = 0) -> int:
    """A text manifest of about ``megabytes`` MB; returns its row count. Written in chunks: the point is
    to measure labelaudit reading it, not this script holding it in memory."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    target = int(megabytes * 1_000_000)
    rows, chunk = 0, 50_000
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("id,text,label\n")
        while handle.tell() < target:
            picks = rng.choice(words, size=(chunk, 16))
            texts = [" ".join(r) for r in picks]
            frame = pd.DataFrame(
                {"id": np.arange(rows, rows + chunk), "text": texts, "label": rng.choice(list("abcdefgh"), chunk)}
            )
            frame.to_csv(handle, header=False, index=False)
            rows += chunk
    return rows


def _measure_discover(path: str) -> dict[str, Any]:
    """Runs in a fresh process (see ``manifest``)."""
    from labelaudit.discover import discover, read_manifest

    start = time.perf_counter()
    frame = read_manifest(Path(path))
    read_s = time.perf_counter() - start
    del frame
    start = time.perf_counter()
    dataset = discover(path, id_col="id")
    discover_s = time.perf_counter() - start
    return {
        "rows": len(dataset.samples),
        "skipped": len(dataset.skipped),
        "classes": len(dataset.classes),
        "read_csv_s": round(read_s, 2),
        "discover_s": round(discover_s, 2),
        "samples_table_mb": round(dataset.samples.memory_usage(deep=True).sum() / 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def manifest(megabytes: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.csv"
        start = time.perf_counter()
        rows = write_manifest(path, megabytes)
        generate_s = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
        child = subprocess.run(
            [sys.executable, __file__, "_discover", str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        measured = json.loads(child.stdout.strip().splitlines()[-1])
    assert measured["rows"] == rows, (measured, rows)
    return {
        "manifest_mb": round(size_mb, 1),
        "generate_s": round(generate_s, 1),
        **measured,
        "rows_per_s": round(rows / max(measured["discover_s"], 1e-9)),
    }


def _timed_loads(paths: list[str], hashes: list[str], repeats: int) -> dict[str, Any]:
    from labelaudit.embed import load_image

    def timed(check: bool) -> float:
        start = time.perf_counter()
        for path, digest in zip(paths, hashes, strict=True):
            load_image(path, expected_hash=digest if check else None)
        return time.perf_counter() - start

    timed(False)  # warm the page cache: both sides then read from memory
    plain, checked = [], []
    for _ in range(repeats):  # interleaved, so load on the shared machine hits both sides alike
        plain.append(timed(False))
        checked.append(timed(True))
    plain_s, checked_s = statistics.median(plain), statistics.median(checked)
    return {
        "images": len(paths),
        "mean_file_kb": round(sum(Path(p).stat().st_size for p in paths) / len(paths) / 1024, 1),
        "load_image_s": round(plain_s, 3),
        "load_image_with_hash_check_s": round(checked_s, 3),
        "overhead_per_image_us": round((checked_s - plain_s) / len(paths) * 1e6, 1),
        "overhead_pct": round(100 * (checked_s / plain_s - 1), 1),
    }


def hashcheck(n: int, n_large: int, repeats: int = 3) -> dict[str, Any]:
    """Small files (CIFAR-10 JPEGs) and 12-megapixel photos, where hashing a few MB could start to show."""
    import numpy as np
    from PIL import Image

    from labelaudit.storage import hash_file

    small = sorted(str(p) for p in CIFAR_IMAGES.glob("*/*"))[:n]
    if not small:
        raise SystemExit(f"no images under {CIFAR_IMAGES}")
    result = {"cifar10_jpeg": _timed_loads(small, [hash_file(Path(p)) for p in small], repeats)}
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        large = []
        for i in range(n_large):
            ramp = np.linspace(0, 200, 4000, dtype=np.float32)[None, :, None] + rng.normal(0, 20, (3000, 4000, 3))
            path = Path(folder) / f"photo_{i}.jpg"
            Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8)).save(path, quality=90)
            large.append(str(path))
        result["photo_12mp_jpeg"] = _timed_loads(large, [hash_file(Path(p)) for p in large], repeats)
    return result


def _measure_audit(folder: str) -> dict[str, Any]:
    """Runs in a fresh process (see ``hugetext``)."""
    import labelaudit

    start = time.process_time()
    result = labelaudit.audit(folder, cache_dir=None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "samples": len(result.samples),
        "cpu_s": round(time.process_time() - start, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "warnings": result.summary.warnings,
    }


def _audit_in_child(folder: Path) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, __file__, "_audit", str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def hugetext(megabytes: float) -> dict[str, Any]:
    import shutil

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "text"
        shutil.copytree(REPO / "sample_data" / "text", data)
        normal = _audit_in_child(data)
        label = sorted(p.name for p in data.iterdir() if p.is_dir())[0]
        big = data / label / "huge.txt"
        words = " ".join(WORDS) + "\n"
        with open(big, "w", encoding="utf-8") as handle:
            for _ in range(int(megabytes * 1_000_000) // len(words)):
                handle.write(words)
        size_mb = big.stat().st_size / 1e6
        huge = _audit_in_child(data)
    return {
        "huge_file_mb": round(size_mb, 1),
        "normal": normal,
        "with_huge_file": huge,
        "peak_rss_ratio": round(huge["peak_rss_mb"] / normal["peak_rss_mb"], 2),
        "cpu_ratio": round(huge["cpu_s"] / max(normal["cpu_s"], 1e-9), 2),
    }


def _write(name: str, payload: dict[str, Any], lines: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"reliability_{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"reliability_{name}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("_discover").add_argument("path")
    sub.add_parser("_audit").add_argument("folder")
    t = sub.add_parser("hugetext")
    t.add_argument("--mb", type=float, default=50.0)
    m = sub.add_parser("manifest")
    m.add_argument("--mb", type=float, default=100.0)
    h = sub.add_parser("hashcheck")
    h.add_argument("--n", type=int, default=2000)
    h.add_argument("--large", type=int, default=10)
    args = parser.parse_args()
    if args.command == "_discover":
        print(json.dumps(_measure_discover(args.path)))
        return
    if args.command == "_audit":
        print(json.dumps(_measure_audit(args.folder)))
        return
    env = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    if args.command == "manifest":
        result = manifest(args.mb)
        lines = [
            f"# discover() on a {result['manifest_mb']} MB text CSV manifest",
            "",
            "| rows | read_csv s | discover s (read + table) | rows/s | samples table MB | peak RSS MB |",
            "|---|---|---|---|---|---|",
            f"| {result['rows']:,} | {result['read_csv_s']} | {result['discover_s']} | {result['rows_per_s']:,} "
            f"| {result['samples_table_mb']} | {result['peak_rss_mb']} |",
            "",
            f"Machine: {env['cpus']} cores shared with other jobs, load average {env['load_average_at_start']} at "
            "the start; treat times as rough.",
        ]
    elif args.command == "hugetext":
        result = hugetext(args.mb)
        normal, huge = result["normal"], result["with_huge_file"]
        lines = [
            f"# A text audit of sample_data/text, without and with one {result['huge_file_mb']} MB text file",
            "",
            "| audit | samples | CPU s | peak RSS MB |",
            "|---|---|---|---|",
            f"| sample_data/text | {normal['samples']} | {normal['cpu_s']} | {normal['peak_rss_mb']} |",
            f"| + one {result['huge_file_mb']} MB file | {huge['samples']} | {huge['cpu_s']} | {huge['peak_rss_mb']} |",
            "",
            f"Peak RSS ratio {result['peak_rss_ratio']}, CPU ratio {result['cpu_ratio']} (default text encoder, "
            "no cache, each audit in a fresh process).",
            f"Machine: {env['cpus']} cores shared with other jobs, load average {env['load_average_at_start']} at "
            "the start; treat times as rough.",
        ]
    else:
        result = hashcheck(args.n, args.large)
        lines = [
            "# load_image with and without the discovery-hash check",
            "",
            "| images | count | mean file KB | plain s | with hash check s | overhead per image µs | overhead % |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, row in result.items():
            lines.append(
                f"| {name} | {row['images']} | {row['mean_file_kb']} | {row['load_image_s']} "
                f"| {row['load_image_with_hash_check_s']} | {row['overhead_per_image_us']} | {row['overhead_pct']} |"
            )
        lines += [
            "",
            "Both columns read the file into memory once; the check adds one blake2b pass over those bytes.",
            f"Machine: {env['cpus']} cores shared with other jobs, load average {env['load_average_at_start']} at "
            "the start; treat times as rough.",
        ]
    _write(args.command, {"command": args.command, "args": vars(args), "machine": env, "result": result}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
