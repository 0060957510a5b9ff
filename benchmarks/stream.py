"""Memory of discovery + embedding as the number of samples grows (issue #8: "memory must not grow with
the number of files beyond the embeddings themselves").

    python benchmarks/stream.py [--quick] [--sizes 10000,100000,1000000]

For each N, a CSV text manifest of N rows is written, then two fresh processes run what ``audit()`` runs
before scoring (``discover`` then ``embed_samples`` into an on-disk cache): a cold run that embeds
everything, then a warm run that reads everything back from the cache. The encoder is a stub that
returns random unit vectors (512-d): model compute is not what is measured, and no weights are needed.
Each process reports its peak RSS (VmHWM), its RSS after imports, and the size of the float16 embedding
matrix it ends with; "other growth per sample" is what is left once the matrix is taken out: the samples
table (ids, texts, labels, hashes) and the cache index.

Results go to benchmarks/results/stream.json and stream.md (--quick: stream-quick.*).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # results_io, also when a test loads this file by path
from results_io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DIM = 512


class StubEncoder:
    """Random unit vectors: the Encoder interface without a model, so only labelaudit's own memory counts."""

    identity = "benchmark-stub-512"
    description = "random vectors (benchmark stub)"
    logit_scale = None

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cpu")
        self._rng = np.random.default_rng(0)

    def image_transform(self) -> None:
        return None

    def encode_image_batch(self, pixels: Any) -> np.ndarray:
        return self._vectors(len(pixels))

    def encode_texts(self, texts: Any) -> np.ndarray:
        return self._vectors(len(texts))

    def _vectors(self, n: int) -> np.ndarray:
        x = self._rng.standard_normal((n, DIM), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def templates(self, modality: str) -> list[str]:
        return ["{}"]

    def soft_prompt_model(self) -> None:
        return None


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_manifest(path: Path, n: int, classes: int = 100) -> None:
    """A text manifest: an id, a ~60-character text and a label per row (written in blocks)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("id,text,label\n")
        for start in range(0, n, 100_000):
            rows = range(start, min(n, start + 100_000))
            handle.write(
                "".join(
                    f"s{i:07d},sample number {i} about topic {i % classes} with a few words,c{i % classes}\n"
                    for i in rows
                )
            )


def child(manifest: Path, cache_dir: Path) -> dict[str, Any]:
    from labelaudit.cache import EmbeddingCache
    from labelaudit.discover import discover
    from labelaudit.embed import embed_samples

    baseline = _status_mb("VmRSS")
    start = time.perf_counter()
    dataset = discover(manifest, modality="text")
    discover_s = time.perf_counter() - start
    after_discovery = _status_mb("VmRSS")
    encoder = StubEncoder()
    start = time.perf_counter()
    result = embed_samples(
        dataset.samples, "text", encoder, EmbeddingCache(cache_dir, encoder.identity), batch_size=4096
    )
    embed_s = time.perf_counter() - start
    n = len(dataset.samples)
    matrix_mb = result.vectors.nbytes / 2**20
    # The kernel updates its high-water mark lazily (not when pages are reclaimed), so VmHWM can read a little
    # below an RSS read earlier in the same process: the peak is at least every RSS seen.
    peak = max(_status_mb("VmHWM"), _status_mb("VmRSS"), baseline, after_discovery)
    return {
        "n": n,
        "dtype": str(result.vectors.dtype),
        "embedded": result.n_embedded,
        "cached": result.n_cached,
        "discover_s": round(discover_s, 2),
        "embed_s": round(embed_s, 2),
        "rss_after_imports_mb": round(baseline, 1),
        "rss_after_discovery_mb": round(after_discovery, 1),
        "peak_rss_mb": round(peak, 1),
        "embeddings_mb": round(matrix_mb, 1),
        "other_growth_bytes_per_sample": round((peak - baseline - matrix_mb) * 2**20 / max(n, 1), 1),
    }


def run_child(manifest: Path, cache_dir: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_child", str(manifest), str(cache_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"child failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def markdown(payload: dict[str, Any]) -> str:
    header = [
        "N",
        "run",
        "peak RSS MB",
        "RSS after imports MB",
        "float16 embeddings MB",
        "other growth bytes/sample",
        "discover s",
        "embed s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in payload["rows"]:
        cells = [
            f"{r['n']:,}",
            r["run"],
            r["peak_rss_mb"],
            r["rss_after_imports_mb"],
            r["embeddings_mb"],
            r["other_growth_bytes_per_sample"],
            r["discover_s"],
            r["embed_s"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return (
        "# Discovery + embedding memory vs N\n\n"
        + payload["setup"]
        + "\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(f"- {f}" for f in payload["findings"])
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("_child", help=argparse.SUPPRESS)
    c.add_argument("manifest", type=Path)
    c.add_argument("cache_dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="N = 2,000 and 20,000 (for smoke tests)")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 10000,100000,1000000)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.command == "_child":
        print(json.dumps(child(args.manifest, args.cache_dir)), flush=True)
        return
    sizes = [int(s) for s in (args.sizes or ("2000,20000" if args.quick else "10000,100000,1000000")).split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="labelaudit-stream-") as tmp:
        for n in sizes:
            manifest = Path(tmp) / f"manifest-{n}.csv"
            write_manifest(manifest, n)
            cache_dir = Path(tmp) / f"cache-{n}"
            for run in ("cold", "warm"):
                row = {"run": run, **run_child(manifest, cache_dir)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            shutil.rmtree(cache_dir, ignore_errors=True)
            manifest.unlink()
    findings = []
    for run in ("cold", "warm"):
        pts = [r for r in rows if r["run"] == run]
        if len(pts) >= 2:
            a, b = pts[0], pts[-1]
            ratio = (b["peak_rss_mb"] - b["rss_after_imports_mb"]) / max(
                a["peak_rss_mb"] - a["rss_after_imports_mb"], 1e-9
            )
            findings.append(
                f"{run}: RSS growth over imports x{ratio:.1f} for x{b['n'] / a['n']:.0f} samples "
                f"({a['n']:,} -> {b['n']:,}); peak {b['peak_rss_mb']} MB at {b['n']:,}, of which "
                f"{b['embeddings_mb']} MB is the float16 embedding matrix"
            )
    payload = {
        "setup": (
            f"CSV text manifest (id, ~60-char text, 100 classes), `discover()` then `embed_samples()` with a stub "
            f"{DIM}-d encoder into an on-disk cache, each run in a fresh process on "
            f"{os.cpu_count()} CPUs; cold = everything embedded and written to cache shards, warm = everything "
            f"read back from the cache."
        ),
        "rows": rows,
        "findings": findings,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("stream-quick" if args.quick else "stream")
    write_results(stem, payload, markdown(payload))
    print(f"stream: done; results in {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
