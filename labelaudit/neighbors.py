"""One k-nearest-neighbour graph per embedding set, built once and shared by every consumer.

The kNN scorer, duplicate conflicts and outliers all read the same ``NeighborGraph``: for each sample
the indices and cosine similarities of its k nearest other samples (itself excluded), most similar first.

- Up to ``EXACT_MAX`` samples the search is exact: chunked torch matrix products with a running top-k,
  so memory stays at one (query block x database block) tile and no N x N matrix ever exists.
- Above it, a FAISS IVF index with 8-bit scalar-quantised storage (a quarter of the float32 size, which
  is what keeps 1M x 512-d under 4 GB). ``nprobe`` is raised until recall@k against exact search on a
  random query sample reaches ``TARGET_RECALL``; the measured recall is stored in ``graph.settings``.
  Similarities of the found neighbours are recomputed exactly, so quantisation never reaches a threshold.
- ``NeighborSource`` caches the graph beside the embeddings (``<encoder cache>/neighbors/<key>.npz``, on a
  disk or in a bucket), keyed by the encoder identity, the content hashes in order and k, so a re-run loads it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import storage
from .chunked import rows_float32
from .storage import StoragePath

GRAPH_FORMAT = 1
DEFAULT_K = 20  # the largest k any consumer asks for by default; smaller requests slice this graph
EXACT_MAX = 20_000  # exact search is O(N^2 D): ~10 s here at 20k, minutes at 100k; see docs/benchmarks.md
TARGET_RECALL = 0.95
RECALL_SAMPLE = 1000
TILE_BYTES = 256 * 2**20  # float32 similarity tile held at once by the exact search


@dataclass
class NeighborGraph:
    indices: np.ndarray  # (N, k) int64, most similar first; never the row itself
    similarities: np.ndarray  # (N, k) float32 cosine similarities in [-1, 1], descending per row
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.similarities = clamp_cosines(self.similarities)

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def head(self, k: int) -> NeighborGraph:
        if k > self.k:
            raise ValueError(f"graph has k={self.k}, {k} requested")
        return NeighborGraph(self.indices[:, :k], self.similarities[:, :k], dict(self.settings, k=k))


def clamp_cosines(sims: np.ndarray) -> np.ndarray:
    """Cosines clipped to [-1, 1]; -inf (no neighbour found) stays -inf.

    Embeddings are stored in float16, so a row's norm is 1 only to ~1e-3 and two copies of one sample can
    score 1.0002; a cosine above 1 is rounding, and it reached duplicates.csv as a "similarity" of 1.00006.
    """
    finite = np.isfinite(sims)
    if not ((sims[finite] > 1.0).any() or (sims[finite] < -1.0).any()):
        return sims  # the common case, and a read-only array from a cached graph stays untouched
    return np.where(finite, np.clip(sims, -1.0, 1.0), sims).astype(sims.dtype, copy=False)


def _exact_search(
    queries: np.ndarray, database: np.ndarray, k: int, query_offset: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product. ``query_offset`` says where the queries sit inside ``database`` so
    each query's own row is excluded by index (not by similarity, which would drop exact duplicates);
    ``None`` means the queries are not database rows."""
    import torch

    n_db = len(database)
    k = min(k, n_db - (0 if query_offset is None else 1))
    db_block = max(1, min(n_db, 65_536))
    q_block = max(1, min(len(queries), TILE_BYTES // (4 * db_block)))
    out_idx = np.empty((len(queries), k), dtype=np.int64)
    out_sim = np.empty((len(queries), k), dtype=np.float32)
    with torch.inference_mode():
        for q0 in range(0, len(queries), q_block):
            q = torch.from_numpy(np.ascontiguousarray(queries[q0 : q0 + q_block], dtype=np.float32))
            best_sim = torch.full((len(q), k), -torch.inf)
            best_idx = torch.full((len(q), k), -1, dtype=torch.int64)
            for d0 in range(0, n_db, db_block):
                # The database may be the float16 embedding matrix: convert a tile, never all of it.
                sims = q @ torch.from_numpy(rows_float32(database, slice(d0, d0 + db_block))).T
                if query_offset is not None:
                    rows = torch.arange(len(q)) + q0 + query_offset
                    local = rows - d0
                    inside = (local >= 0) & (local < sims.shape[1])
                    sims[inside.nonzero().squeeze(1), local[inside]] = -torch.inf
                take = min(k, sims.shape[1])
                tile_sim, tile_idx = sims.topk(take, dim=1)
                merged_sim = torch.cat([best_sim, tile_sim], dim=1)
                merged_idx = torch.cat([best_idx, tile_idx + d0], dim=1)
                best_sim, order = merged_sim.topk(k, dim=1)
                best_idx = merged_idx.gather(1, order)
            out_idx[q0 : q0 + len(q)] = best_idx.numpy()
            out_sim[q0 : q0 + len(q)] = best_sim.numpy()
    return out_idx, out_sim


def exact_graph(embeddings: np.ndarray, k: int) -> NeighborGraph:
    indices, sims = _exact_search(embeddings, embeddings, k)
    return NeighborGraph(indices, sims, {"method": "exact", "k": indices.shape[1], "recall_at_k": 1.0})


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / max(truth.size, 1)


def faiss_graph(
    embeddings: np.ndarray,
    k: int,
    seed: int = 0,
    target_recall: float = TARGET_RECALL,
    recall_sample: int = RECALL_SAMPLE,
) -> NeighborGraph:
    import faiss

    x = embeddings  # float16 in an audit; each use below converts only the rows it needs
    n, dim = x.shape
    rng = np.random.default_rng(seed)
    # ~3 sqrt(N) lists (FAISS suggests 4-16 sqrt(N)): on 2 cores k-means training and the coarse
    # assignment grow with nlist, the scan shrinks with it; 3 balanced the two at 1M. nprobe buys recall.
    nlist = int(min(max(16, 3 * np.sqrt(n)), n // 32))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    train_rows = np.sort(rng.choice(n, size=min(n, 32 * nlist), replace=False))
    start = time.perf_counter()
    index.train(rows_float32(x, train_rows))
    for s in range(0, n, 100_000):
        index.add(rows_float32(x, slice(s, s + 100_000)))
    build_s = time.perf_counter() - start

    sample = np.sort(rng.choice(n, size=min(n, recall_sample), replace=False))
    queries = rows_float32(x, sample)
    truth = _exclude_self(sample, *_exact_search(queries, x, k + 1, query_offset=None))[0]
    nprobe, recall = 4, 0.0
    while True:
        index.nprobe = nprobe
        found = _faiss_search(index, queries, sample, k)[0]
        recall = recall_at_k(found, truth)
        if recall >= target_recall or nprobe >= nlist:
            break
        nprobe = min(nlist, nprobe * 2)
    start = time.perf_counter()
    indices = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, 50_000):
        rows = np.arange(s, min(n, s + 50_000))
        indices[rows] = _faiss_search(index, rows_float32(x, slice(s, s + len(rows))), rows, k)[0]
    search_s = time.perf_counter() - start
    del index
    indices, sims = _exact_similarities(x, indices)
    return NeighborGraph(
        indices,
        sims,
        {
            "method": "faiss-ivf-sq8",
            "k": k,
            "nlist": nlist,
            "nprobe": nprobe,
            "recall_at_k": round(recall, 4),
            "recall_sample": len(sample),
            "build_s": round(build_s, 2),
            "search_s": round(search_s, 2),
        },
    )


def _faiss_search(index: Any, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims, idx = index.search(queries, k + 1)
    return _exclude_self(rows, idx, sims)


def _exclude_self(rows: np.ndarray, idx: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop each row's own index from a (k+1)-wide result; when it is absent (ties, approximate
    search) drop the last column instead."""
    is_self = idx == rows[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), idx.shape[1] - 1)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(len(idx)), drop] = False
    width = idx.shape[1] - 1
    return idx[keep].reshape(-1, width), sims[keep].reshape(-1, width)


def _exact_similarities(x: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recompute the found neighbours' cosines in float32 and re-sort; -1 (not found) sorts last."""
    sims = np.full(indices.shape, -np.inf, dtype=np.float32)
    step = 2_000  # the gathered (step, k, D) block is the peak: ~80 MB at k=20, D=512
    for s in range(0, len(x), step):
        block = indices[s : s + step]
        valid = block >= 0
        gathered = rows_float32(x, np.where(valid, block, 0))
        block_sims = np.einsum("nkd,nd->nk", gathered, rows_float32(x, slice(s, s + step)))
        sims[s : s + step] = np.where(valid, block_sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")
    return np.take_along_axis(indices, order, 1), np.take_along_axis(sims, order, 1)


def build_graph(embeddings: np.ndarray, k: int = DEFAULT_K, method: str = "auto", seed: int = 0) -> NeighborGraph:
    """The k-NN graph of ``embeddings`` (L2-normalised rows); ``method`` is auto, exact or faiss."""
    n = len(embeddings)
    if n < 2:
        return NeighborGraph(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), {"method": "exact", "k": 0})
    k = min(k, n - 1)
    if method == "auto":
        method = "exact" if n <= EXACT_MAX else "faiss"
    if method == "exact":
        return exact_graph(embeddings, k)
    if method == "faiss":
        return faiss_graph(embeddings, k, seed=seed)
    raise ValueError(f"unknown neighbour search {method!r}; choose auto, exact or faiss")


def graph_key(identity: str, hashes: Sequence[str], k: int, method: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{GRAPH_FORMAT}:{identity}:{k}:{method}:".encode())
    for value in hashes:
        h.update(value.encode())
        h.update(b"\0")
    return h.hexdigest()


class NeighborSource:
    """Builds the graph on first use, at most once per process, and caches it on disk when given a folder.

    Requests for a smaller k slice the cached graph, so every consumer shares one search."""

    def __init__(
        self,
        embeddings: np.ndarray,
        *,
        folder: StoragePath | None = None,
        identity: str = "",
        hashes: Sequence[str] | None = None,
        k: int = DEFAULT_K,
        method: str = "auto",
        seed: int = 0,
    ) -> None:
        self.embeddings = embeddings
        self.folder = folder if hashes is not None else None
        self.identity = identity
        self.hashes = list(hashes) if hashes is not None else []
        self.k = k
        self.method = method
        self.seed = seed
        self.loaded_from_cache = False
        self._graph: NeighborGraph | None = None

    def path(self, k: int) -> StoragePath | None:
        if self.folder is None:
            return None
        return self.folder / f"{graph_key(self.identity, self.hashes, k, self.method)}.npz"

    def graph(self, k: int | None = None) -> NeighborGraph:
        want = self.k if k is None else k
        if self._graph is None or self._graph.k < min(want, len(self.embeddings) - 1):
            self._graph = self._load_or_build(max(want, self.k))
        return self._graph.head(min(want, self._graph.k))

    def _load_or_build(self, k: int) -> NeighborGraph:
        path = self.path(k)
        if path is not None:
            # A corrupt or foreign entry is deleted and rebuilt, never trusted.
            graph = storage.load_npz_or_evict(path, _graph_from)
            if graph is not None and graph.indices.shape[0] == len(self.embeddings):
                self.loaded_from_cache = True
                return graph
        start = time.perf_counter()
        graph = build_graph(self.embeddings, k, self.method, self.seed)
        graph.settings["seconds"] = round(time.perf_counter() - start, 3)
        if path is not None:
            arrays = {
                "indices": graph.indices,
                "similarities": graph.similarities,
                "settings": np.array(json.dumps(graph.settings)),
            }
            storage.save_npz(path, arrays, "write the neighbour graph cache")
        return graph


def _graph_from(data: Any) -> NeighborGraph:
    return NeighborGraph(data["indices"], data["similarities"], dict(_settings(data)))


def _settings(data: Any) -> dict[str, Any]:
    return json.loads(str(data["settings"])) if "settings" in data else {}
