"""The error rate the neighbours' labels imply, read without a model trained on the labels.

HOC (Zhu, Song and Liu, "Clusterability as an alternative to anchor points", ICML 2021) assumes that a sample
and its two nearest neighbours share the true class, and that their given labels are independent given it.
The first-, second- and third-order agreement of the three given labels then pin down the noise transition
matrix T and the class prior p, and the error rate is ``sum_k p_k (1 - T_kk)``.

Why labelaudit reads it: the calibrated estimate learns from methods trained on the labels, and labels made by
rules (weak supervision) are learnt by those methods, so their mistakes look like right labels (wrench_sms read
3.2 % for 6.0 %, wrench_youtube 0.7 % for 13.5 %). HOC never looks at such a model. Its assumption fails on
most embeddings (20news, imdb, CIFAR-10N's proxy features: it read 8-57 % for 0.3-41 %), so it counts only where
the data show that it holds: where a sample and its two neighbours share the class the methods *predict* for
at least ``EstimateSettings.neighbour_min_purity`` of the samples. That predicted purity follows the true one
closely (tune rows: sms 0.93 for 0.93, youtube 0.84 for 0.84, 20news 0.58-0.67 for 0.54-0.70, imdb 0.55 for
0.56, CIFAR-10N 0.18-0.21 for 0.18; benchmarks/clusterability.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEPS = 200  # L-BFGS iterations at most: the fit has K^2 + K parameters and settles long before this


@dataclass(frozen=True)
class NeighbourReading:
    """What the neighbours' labels read: ``purity``, the share of samples whose two nearest neighbours are
    predicted the same class as they are; ``rate``, HOC's error rate (None where it was not read: too impure,
    too few samples for the classes, or too many classes); ``counts``, whether the estimate follows it;
    ``above_readings``, read but not followed because it reads more than the estimate's readings allow."""

    purity: float
    rate: float | None
    counts: bool
    # Read, but above what the estimate's readings allow, so not followed (see estimate_error_rate).
    above_readings: bool = False

    def to_details(self) -> dict[str, float | bool | None]:
        return {
            "predicted_purity": round(self.purity, 6),
            "rate": None if self.rate is None else round(self.rate, 6),
            "counts": self.counts,
            "above_readings": self.above_readings,
        }


def predicted_purity(predicted: np.ndarray, pairs: np.ndarray) -> float:
    """The share of samples whose two neighbours (``pairs``, N x 2 row indices, -1 for none found) share their
    ``predicted`` class (N,); a sample without two neighbours counts as impure."""
    if not len(pairs):
        return 0.0
    found = (pairs >= 0).all(axis=1)
    first, second = (predicted[np.where(found, pairs[:, j], 0)] for j in (0, 1))
    return float((found & (first == predicted) & (second == predicted)).mean())


def hoc_error_rate(
    labels: np.ndarray, first: np.ndarray, second: np.ndarray, classes: int, steps: int = STEPS
) -> float:
    """HOC's error rate from each sample's label and its two nearest neighbours' labels (``first``, ``second``)."""
    import torch

    n = len(labels)
    c1 = np.bincount(labels, minlength=classes) / n
    c2 = np.zeros((classes, classes))
    np.add.at(c2, (labels, first), 1)
    np.add.at(c2, (labels, second), 1)
    c2 /= 2 * n
    c3 = np.zeros((classes, classes, classes))
    np.add.at(c3, (labels, first, second), 1)
    c3 /= n
    t1, t2, t3 = (torch.tensor(c, dtype=torch.float64) for c in (c1, c2, c3))
    # Start from a diagonally dominant T, as HOC does, so that the solution is not a permutation of the classes.
    start = np.eye(classes) * 0.9 + (1 - np.eye(classes)) * 0.1 / max(classes - 1, 1)
    t_logit = torch.tensor(np.log(start), dtype=torch.float64, requires_grad=True)
    p_logit = torch.tensor(np.log(c1 + 1e-6), dtype=torch.float64, requires_grad=True)
    # L-BFGS, not HOC's Adam: the loss is smooth and small (K^2 + K numbers), and it lands where 1,500 Adam
    # steps do (to the fifth digit on clustered test data) in a 10th to a 100th of the CPU time.
    optimiser = torch.optim.LBFGS(
        [t_logit, p_logit],
        lr=1.0,
        max_iter=steps,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        t, p = torch.softmax(t_logit, 1), torch.softmax(p_logit, 0)
        loss = (
            ((p @ t - t1) ** 2).sum()
            + ((t.T @ torch.diag(p) @ t - t2) ** 2).sum()
            + ((torch.einsum("k,ki,kj,kl->ijl", p, t, t, t) - t3) ** 2).sum()
        )
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        t, p = torch.softmax(t_logit, 1).numpy(), torch.softmax(p_logit, 0).numpy()
    return float((p * (1 - np.diag(t))).sum())


def reading_applies(
    purity: float, n: int, classes: int, min_purity: float | None, min_triples_per_cell: int, max_classes: int
) -> bool:
    """Whether the neighbours' reading counts for ``n`` samples in ``classes`` classes whose predicted purity is
    ``purity`` (see read_neighbours): the one gate, which the audit's ranking also asks before the estimate runs
    (labelaudit.estimate.data_are_clusterable)."""
    return (
        min_purity is not None
        and purity >= min_purity
        and classes <= max_classes
        and n >= min_triples_per_cell * classes**3
    )


def read_neighbours(
    predicted: np.ndarray,
    labels: np.ndarray,
    pairs: np.ndarray,
    classes: int,
    min_purity: float | None,
    min_triples_per_cell: int,
    max_classes: int,
) -> NeighbourReading:
    """The neighbours' reading of ``labels`` (N,) in ``classes`` classes, with ``predicted`` the methods' classes
    (N,) its purity is read from, taken only where its assumption holds and its third-order counts are filled:
    at least ``min_triples_per_cell`` samples per cell of the K x K x K label table, at most ``max_classes``."""
    purity = predicted_purity(predicted, pairs)
    if not reading_applies(purity, len(labels), classes, min_purity, min_triples_per_cell, max_classes):
        return NeighbourReading(purity, None, False)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.flatnonzero((pairs >= 0).all(axis=1))
    rate = hoc_error_rate(labels[rows], labels[pairs[rows, 0]], labels[pairs[rows, 1]], classes)
    return NeighbourReading(purity, rate, True)
