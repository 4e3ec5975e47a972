"""Intra-set diversity: how different the members of a set of drum sequences are from each other.

A policy can win a distributional score by playing one good groove every time; a listener hears
the sameness at once. The benchmark therefore reports, beside the headline, the diversity of an
agent's takes next to the diversity of the real continuations of the same primers.

Definition (:func:`intra_set_diversity`): for sequences ``x_1 .. x_n`` of one shape ``[T, D]``,
read as hits (``> 0``), the mean over pairs ``i < j`` of the normalised Hamming distance
``mean_{t, d} [hit(x_i)[t, d] != hit(x_j)[t, d]]``. 0: every sequence the same; two independent
sequences of hit rate ``p`` per cell score ``2 p (1 - p)`` on average. Pairs are all of them up to
``max_pairs``, otherwise a seeded sample of ``max_pairs`` distinct pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["intra_set_diversity"]


def intra_set_diversity(
    seqs: np.ndarray | Sequence[np.ndarray], max_pairs: int = 20_000, seed: int = 0
) -> float:
    """Mean pairwise normalised Hamming distance between the hits of ``seqs`` (see the module).

    Args:
        seqs: ``n >= 2`` sequences of one shape ``[T, D]`` (an array ``[n, T, D]`` or a list).
        max_pairs: the most pairs compared (>= 1); beyond it a seeded sample.
        seed: seed of the pair sample.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: fewer than 2 sequences, sequences of different shapes or not 2-D, empty
            sequences, or ``max_pairs < 1``.
    """
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, (int, np.integer)) or max_pairs < 1:
        raise ValueError(f"max_pairs must be an integer >= 1, got {max_pairs!r}")
    shapes = {np.shape(s) for s in seqs}
    if len(shapes) > 1:
        raise ValueError(f"sequences must share one shape [T, D], got {sorted(shapes)}")
    hits = np.asarray(seqs) > 0
    if hits.ndim != 3:
        raise ValueError(
            f"expected n sequences of shape [T, D], got an array of shape {hits.shape}"
        )
    n = hits.shape[0]
    if n < 2:
        raise ValueError(f"intra-set diversity needs at least 2 sequences, got {n}")
    if hits.shape[1] * hits.shape[2] == 0:
        raise ValueError(f"sequences are empty (shape {hits.shape[1:]})")
    flat = hits.reshape(n, -1)
    total = n * (n - 1) // 2
    if total <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        codes = rng.choice(total, size=max_pairs, replace=False)
        i, j = np.triu_indices(n, k=1)
        i, j = i[codes], j[codes]
    return float((flat[i] != flat[j]).mean())
