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

The two neighbours are the nearest that are not copies of the sample (``neighbour_pairs``): a copy is labelled
from the same content, by the same rule or annotator, so its label's mistake is the sample's own, and copies
that agree on a wrong label read as two witnesses that the label is right.
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
    ``above_readings``, read but not followed because it reads more than the estimate's readings allow;
    ``samples_read``, the samples with two neighbours that are not copies of them, which it reads (or would
    read, where it does not count); the others are left out of the reading and of its purity. ``chance``: the
    purity that neighbours drawn at random would show (chance_purity; None: not read)."""

    purity: float
    rate: float | None
    counts: bool
    # Read, but above what the estimate's readings allow, so not followed (see estimate_error_rate).
    above_readings: bool = False
    samples_read: int | None = None  # None: not counted (a reading built by hand)
    chance: float | None = None

    @property
    def purity_above_chance(self) -> float | None:
        """How far the purity is from chance towards 1: 0 where the predicted classes of neighbours are as
        alike as random samples' (features that do not separate the classes), 1 where every sample shares its
        neighbours' class. Unlike the purity itself it does not grow with fewer classes or one large class."""
        if self.chance is None or self.chance >= 1.0:
            return None
        return (self.purity - self.chance) / (1.0 - self.chance)

    def to_details(self) -> dict[str, float | bool | None]:
        return {
            "predicted_purity": round(self.purity, 6),
            "rate": None if self.rate is None else round(self.rate, 6),
            "counts": self.counts,
            "above_readings": self.above_readings,
            "samples_read": self.samples_read,
            "chance_purity": None if self.chance is None else round(self.chance, 6),
        }


def neighbour_pairs(indices: np.ndarray, similarities: np.ndarray, copy_similarity: float | None) -> np.ndarray:
    """Each sample's two nearest neighbours in a graph (``indices`` / ``similarities``, N x k, most similar
    first, -1 for none found) that are not copies of it: cosine below ``copy_similarity`` (None: the two
    nearest, copies or not). N x 2 row indices, -1 where the graph holds fewer than two such neighbours.

    HOC reads the two neighbours' labels as independent witnesses of the sample's true class. A copy (the
    duplicates check's near duplicate, cosine 0.95 or more, read from the same graph) carries the sample's own
    mistake: on wrench_youtube 18 % of the samples' nearest neighbour is a copy, most with the same label, and
    the reading was low by a third (tune rows, 9.6 % for 14.0 %; 10.8 % without copies). The graph's
    similarities are cosines because the embed stage makes every row unit length (labelaudit.embed.unit_rows)."""
    usable = indices >= 0
    if copy_similarity is not None:
        usable &= similarities < copy_similarity
    # The first two usable columns of each row, in the graph's order (a stable sort keeps it).
    columns = np.argsort(~usable, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(indices))[:, None]
    pairs = np.full((len(indices), 2), -1, dtype=np.int64)
    found = usable[rows, columns]
    pairs[:, : columns.shape[1]] = np.where(found, indices[rows, columns], -1)
    return pairs


def read_rows(pairs: np.ndarray) -> np.ndarray:
    """The samples the neighbours' reading reads: those with two neighbours (``pairs``, N x 2, -1 for none)."""
    return (pairs >= 0).all(axis=1) if len(pairs) else np.zeros(0, dtype=bool)


def predicted_purity(predicted: np.ndarray, pairs: np.ndarray) -> float:
    """The share of the samples read (those with two neighbours in ``pairs``, N x 2 row indices, -1 for none)
    whose two neighbours share their ``predicted`` class (N,); 0 where none has two."""
    found = read_rows(pairs)
    if not found.any():
        return 0.0
    mine = predicted[found]
    return float(((predicted[pairs[found, 0]] == mine) & (predicted[pairs[found, 1]] == mine)).mean())


def chance_purity(predicted: np.ndarray, pairs: np.ndarray, classes: int) -> float:
    """The predicted purity that neighbours drawn at random would show, on the samples read (those with two
    neighbours in ``pairs``): the chance that three samples share a predicted class, the sum of each class's
    share cubed (1 with one class, 1 / K**2 with K even ones)."""
    found = read_rows(pairs)
    if not found.any():
        return 1.0
    share = np.bincount(np.asarray(predicted)[found], minlength=classes) / int(found.sum())
    return float(np.sum(share**3))


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


def reading_gate(
    predicted: np.ndarray,
    pairs: np.ndarray,
    classes: int,
    min_purity: float | None,
    min_triples_per_cell: int,
    max_classes: int,
) -> tuple[float, np.ndarray, bool]:
    """The predicted purity, the rows read (those with two neighbours in ``pairs``) and whether the neighbours'
    reading counts for them (see read_neighbours): the one gate, which the audit's ranking also asks before the
    estimate runs (labelaudit.estimate.data_are_clusterable)."""
    purity = predicted_purity(predicted, pairs)
    rows = np.flatnonzero(read_rows(pairs))
    applies = (
        min_purity is not None
        and purity >= min_purity
        and classes <= max_classes
        and len(rows) >= min_triples_per_cell * classes**3
    )
    return purity, rows, applies


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
    purity, rows, applies = reading_gate(predicted, pairs, classes, min_purity, min_triples_per_cell, max_classes)
    chance = chance_purity(predicted, pairs, classes)
    if not applies:
        return NeighbourReading(purity, None, False, samples_read=len(rows), chance=chance)
    labels = np.asarray(labels, dtype=np.int64)
    rate = hoc_error_rate(labels[rows], labels[pairs[rows, 0]], labels[pairs[rows, 1]], classes)
    return NeighbourReading(purity, rate, True, samples_read=len(rows), chance=chance)
