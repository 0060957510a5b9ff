"""Row-blocked numerics over the (N, D) embedding matrix.

The pipeline keeps embeddings in float16, as the cache stores them: at 1M x 512 that is 1 GB instead of
2 GB. Whole-matrix numpy expressions on it (``embeddings @ prompts.T``, ``embeddings[idx].astype(...)``)
would each materialise a float32 or float64 copy of everything, so every full pass goes through these
helpers, which convert one block of rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK_ROWS = 65_536


def row_blocks(n: int, rows: int | None = None) -> Iterator[slice]:
    rows = rows or BLOCK_ROWS
    for start in range(0, n, rows):
        yield slice(start, min(n, start + rows))


def rows_float32(embeddings: np.ndarray, index: np.ndarray | slice) -> np.ndarray:
    """The selected rows as a float32 array (a copy only of those rows)."""
    return np.asarray(embeddings[index], dtype=np.float32)


def project(embeddings: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``embeddings @ matrix.T`` as float32 (N, K), converting one block of rows at a time."""
    weights = np.asarray(matrix, dtype=np.float32).T
    out = np.empty((len(embeddings), weights.shape[1]), dtype=np.float32)
    for block in row_blocks(len(embeddings)):
        out[block] = rows_float32(embeddings, block) @ weights
    return out


def class_means(embeddings: np.ndarray, labels: np.ndarray, n_classes: int, index: np.ndarray) -> np.ndarray:
    """(K, D) float32 mean embedding of each class over the rows in ``index`` (zeros for an absent class)."""
    sums = np.zeros((n_classes, embeddings.shape[1]), dtype=np.float64)
    for block in row_blocks(len(index)):
        rows = index[block]
        np.add.at(sums, labels[rows], rows_float32(embeddings, rows))
    counts = np.bincount(labels[index], minlength=n_classes).astype(np.float64)
    return (sums / np.maximum(counts, 1.0)[:, None]).astype(np.float32)
