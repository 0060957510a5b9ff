"""Time and peak memory of the neighbour graph (labelaudit.neighbors) on synthetic embeddings.

    python benchmarks/neighbors.py --quick            # 10k and 100k (a few minutes on 2 cores)
    python benchmarks/neighbors.py --sizes 1000000    # the 1M run (run once, in the background)

Each size runs in a fresh subprocess so its peak RSS is its own. The embeddings are clustered unit
vectors (N/100 Gaussian clusters in 512-d, within-cluster cosine ~0.4), float32, k = 20; the search
method is whatever ``build_graph(method="auto")`` picks for that size. Peak RSS includes the input
embeddings themselves (N x 512 x 4 bytes); ``graph_extra_mb`` is the peak above the input.
Results go to benchmarks/results/neighbors.json and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"


def clustered(n: int, dim: int = 512, seed: int = 0) -> np.ndarray:
    """Built in blocks so no float64 N x D temporary doubles the peak."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 100), dim)).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(n, s + 100_000) - s
        block = centres[rng.integers(0, len(centres), m)] + 1.2 * rng.standard_normal((m, dim), dtype=np.float32)
        x[s : s + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return x


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def one(n: int, k: int, method: str) -> dict[str, object]:
    from labelaudit.neighbors import build_graph

    x = clustered(n)
    import torch  # noqa: F401  (imported before the baseline so its own footprint is not billed to the graph)

    base = peak_mb()
    start = time.perf_counter()
    graph = build_graph(x, k, method)
    seconds = time.perf_counter() - start
    return {
        "n": n,
        "dim": x.shape[1],
        "k": k,
        "method": graph.settings["method"],
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_mb()),
        "input_mb": round(x.nbytes / 2**20),
        "graph_extra_mb": round(peak_mb() - base),
        "recall_at_k": graph.settings.get("recall_at_k"),
        "settings": graph.settings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k and 100k only")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--method", default="auto", help="auto, exact or faiss")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "neighbors.json")
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.k, args.method)))
        return
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    rows = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--k", str(args.k), "--method", args.method]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else []
    keep = [r for r in previous if (r["n"], r["method"]) not in {(x["n"], x["method"]) for x in rows}]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(sorted(keep + rows, key=lambda r: r["n"]), indent=2) + "\n")
    print("| N | method | time (s) | peak RSS (MB) | of which input (MB) | recall@k |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r['n']:,}", r["method"], r["seconds"], r["peak_rss_mb"], r["input_mb"], r["recall_at_k"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
