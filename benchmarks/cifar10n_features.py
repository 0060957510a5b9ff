"""Offline image features for the CIFAR-10N subset in the shared assets (no pretrained weights needed).

    python benchmarks/cifar10n_features.py                    # -> /tmp/cifar10n_features
    python benchmarks/cifar10n_features.py --check            # also: 5-fold logistic regression on the clean labels

Features (numpy only, the same for every method): a HOG (unsigned gradient orientations in 9 bins, 4x4-pixel
cells, 2x2-cell blocks L2-Hys normalised) plus an HSV colour histogram (joint 8x4x4 bins, whole image and
2x2 quadrants) and a 8x8 thumbnail in a Lab-like opponent colour space. Each group is power-normalised
(signed square root) and scaled to unit norm, then the concatenation is PCA-whitened to ``DIM`` dimensions
(fitted on the images themselves, unsupervised) and every row is L2-normalised.

Writes ``features.npy`` (float32, N x DIM), ``classes.txt`` and one labels CSV per noisy label set
(``labels_aggre.csv``, ``labels_random1.csv``, ``labels_worst.csv``, and the held-out ``labels_random2.csv``
and ``labels_random3.csv``: ``given_label`` = that column,
``gold_label`` = ``clean``) into ``--out``. Feed them to ``benchmarks/quality.py --embeddings ... --labels ...``.
These are data, not code: do not commit them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ASSET_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "assets" / "cifar10n"
DEFAULT_ASSETS = ASSET_DIR if ASSET_DIR.is_dir() else Path("/work/shared/assets/cifar10n")
# random2 and random3 are held out: no estimator setting was chosen on them (docs/benchmarks.md).
LABEL_SETS = ("aggre", "random1", "worst", "random2", "random3")
DIM = 384
ORIENTATIONS = 9
CELL = 4
GROUPS = ("hog", "colour", "thumb")


def load_images(folder: Path, files: list[str]) -> np.ndarray:
    """Decode the JPEGs to a uint8 array (N, 32, 32, 3)."""
    from PIL import Image

    out = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, name in enumerate(files):
        with Image.open(folder / name) as image:
            out[i] = np.asarray(image.convert("RGB").resize((32, 32)))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def hog(gray: np.ndarray, cell: int = CELL, bins: int = ORIENTATIONS) -> np.ndarray:
    """HOG of (N, H, W) grey images: orientation histograms per cell (linear bin interpolation, magnitude
    weighted), 2x2-cell blocks L2-Hys normalised. Returns (N, blocks * 4 * bins)."""
    n, h, w = gray.shape
    gx = np.zeros_like(gray)
    gy = np.zeros_like(gray)
    gx[:, :, 1:-1] = gray[:, :, 2:] - gray[:, :, :-2]
    gy[:, 1:-1, :] = gray[:, 2:, :] - gray[:, :-2, :]
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * bins  # in [0, bins)
    low = np.floor(angle).astype(np.int64) % bins
    high = (low + 1) % bins
    frac = angle - np.floor(angle)
    votes = np.zeros((n, h, w, bins), dtype=np.float32)
    np.put_along_axis(votes, low[..., None], (magnitude * (1 - frac))[..., None], axis=3)
    np.put_along_axis(votes, high[..., None], (magnitude * frac)[..., None], axis=3)  # high != low
    cy, cx = h // cell, w // cell
    cells = votes.reshape(n, cy, cell, cx, cell, bins).sum(axis=(2, 4))  # (N, cy, cx, bins)
    blocks = np.concatenate(
        [cells[:, :-1, :-1], cells[:, 1:, :-1], cells[:, :-1, 1:], cells[:, 1:, 1:]], axis=3
    ).reshape(n, (cy - 1) * (cx - 1), 4 * bins)
    blocks = blocks / np.sqrt((blocks**2).sum(axis=2, keepdims=True) + 1e-6)
    blocks = np.minimum(blocks, 0.2)
    blocks = blocks / np.sqrt((blocks**2).sum(axis=2, keepdims=True) + 1e-6)
    return blocks.reshape(n, -1)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) floats in [0, 1] -> HSV in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    c = v - rgb.min(axis=-1)
    s = np.where(v > 0, c / np.maximum(v, 1e-12), 0.0)
    safe = np.maximum(c, 1e-12)
    hue = np.where(v == r, (g - b) / safe, np.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(c > 0, np.mod(hue / 6.0, 1.0), 0.0)
    return np.stack([hue, s, v], axis=-1)


def colour_histograms(rgb: np.ndarray, bins: tuple[int, int, int] = (8, 4, 4)) -> np.ndarray:
    """Joint HSV histograms of the whole image and of its 2x2 quadrants, each normalised to sum 1."""
    n, h, w, _ = rgb.shape
    hsv = rgb_to_hsv(rgb)
    idx = np.zeros((n, h, w), dtype=np.int64)
    for channel, k in enumerate(bins):
        idx = idx * k + np.minimum((hsv[..., channel] * k).astype(np.int64), k - 1)
    total = int(np.prod(bins))
    regions = [(slice(None), slice(None))] + [
        (slice(y, y + h // 2), slice(x, x + w // 2)) for y in (0, h // 2) for x in (0, w // 2)
    ]
    parts = []
    for ys, xs in regions:
        flat = idx[:, ys, xs].reshape(n, -1)
        offsets = flat + (np.arange(n) * total)[:, None]
        hist = np.bincount(offsets.ravel(), minlength=n * total).reshape(n, total).astype(np.float32)
        parts.append(hist / hist.sum(axis=1, keepdims=True))
    return np.concatenate(parts, axis=1)


def thumbnail(rgb: np.ndarray, size: int = 8) -> np.ndarray:
    """Average-pooled (size x size) thumbnail in an opponent colour space (luma, red-green, yellow-blue),
    each image's luma mean removed."""
    n, h, w, _ = rgb.shape
    f = h // size
    small = rgb.reshape(n, size, f, size, f, 3).mean(axis=(2, 4))
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    luma = (r + g + b) / 3
    opp = np.stack([luma - luma.mean(axis=(1, 2), keepdims=True), (r - g) / 2, (r + g) / 2 - b], axis=-1)
    return opp.reshape(n, -1)


def raw_features(images: np.ndarray, groups: tuple[str, ...] = GROUPS) -> np.ndarray:
    """Concatenated, per-group signed-sqrt + unit-norm features of uint8 (N, 32, 32, 3) images."""
    rgb = images.astype(np.float32) / 255.0
    parts = []
    if "hog" in groups:
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        parts.append(hog(gray))
    if "colour" in groups:
        parts.append(colour_histograms(rgb))
    if "thumb" in groups:
        parts.append(thumbnail(rgb))
    return np.concatenate([_unit(np.sign(p) * np.sqrt(np.abs(p))) for p in parts], axis=1).astype(np.float32)


def pca_whiten(x: np.ndarray, dim: int = DIM, eps: float = 1e-2) -> np.ndarray:
    """Project on the top ``dim`` principal components, whitened (regularised by ``eps`` of the top
    eigenvalue so noise directions are not blown up)."""
    centred = (x - x.mean(axis=0)).astype(np.float64)
    dim = min(dim, *centred.shape)
    if len(x) < x.shape[1]:  # few rows (tests): the thin SVD is cheaper than the D x D covariance
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        var, vectors = s[:dim] ** 2 / len(x), vt[:dim].T
    else:
        var, vectors = np.linalg.eigh(centred.T @ centred / len(x))  # ascending
        var, vectors = var[::-1][:dim], vectors[:, ::-1][:, :dim]
    return (centred @ vectors) / np.sqrt(np.maximum(var, 0) + eps * var[0])


def image_features(images: np.ndarray, dim: int | None = DIM, groups: tuple[str, ...] = GROUPS) -> np.ndarray:
    """The benchmark's image features: (N, dim) float32 with L2-normalised rows (dim=None: no PCA)."""
    x = raw_features(images, groups)
    if dim is not None:
        x = pca_whiten(x, dim)
    return _unit(x).astype(np.float32)


def check(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """5-fold cross-validated accuracy of a logistic regression on the clean labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=1000), features, labels, cv=folds).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=Path, default=DEFAULT_ASSETS, help="the shared cifar10n/ folder")
    parser.add_argument("--out", type=Path, default=Path("/tmp/cifar10n_features"))
    parser.add_argument("--dim", type=int, default=DIM, help="PCA-whitened dimension (0: no PCA)")
    parser.add_argument("--groups", default="hog,colour,thumb", help="comma-separated: hog, colour, thumb")
    parser.add_argument("--check", action="store_true", help="5-fold logistic regression on the clean labels")
    args = parser.parse_args()

    table = pd.read_csv(args.assets / "subset_train_0_9999.csv")
    start = time.perf_counter()
    images = load_images(args.assets, table["file"].tolist())
    decoded = time.perf_counter()
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    features = image_features(images, args.dim or None, groups)
    done = time.perf_counter()
    print(
        f"{len(images)} images decoded in {decoded - start:.1f}s, features {features.shape} ({','.join(groups)}) "
        f"in {done - decoded:.1f}s"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "features.npy", features)
    classes = args.assets / "classes.txt"
    if classes.is_file():
        (args.out / "classes.txt").write_text(classes.read_text())
    for name in LABEL_SETS:
        labels = pd.DataFrame({"index": table["index"], "given_label": table[name], "gold_label": table["clean"]})
        labels.to_csv(args.out / f"labels_{name}.csv", index=False)
        print(f"  labels_{name}.csv: {(labels['given_label'] != labels['gold_label']).mean():.2%} wrong")
    if args.check:
        print(f"5-fold logistic regression accuracy on clean labels: {check(features, table['clean'].to_numpy()):.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
