"""Where the hits fall in the bar: each drum's onset distribution over the bar's positions.

The evaluation's ``metrical_position`` family (:mod:`dataset.evaluation`) is built on these two
functions. Position ``p`` of the bar gathers every step ``t`` with ``t mod steps_per_bar = p``
(a trailing partial bar included, as for :func:`dataset.metrics.syncopation` and
:func:`dataset.metrics.accent_pattern`); on this grid every hit is an onset. With hits
``h[t, d]`` (a value > 0):

* :func:`onset_positions`: ``N[p, d] = #{t : t mod steps_per_bar = p, h[t, d]}``, the onsets of
  drum ``d`` at position ``p``;
* :func:`onset_profile`: ``q[p, d] = N[p, d] / sum_p' N[p', d]``, drum ``d``'s onset
  distribution over the positions (each column sums to 1), and ``q[:, d] = 0`` for a drum
  without onsets (no onset is no distribution, not a uniform one).

A groove's kick on beats 1 and 3 reads ``q[0, kick] + q[8, kick] = 1``; the same number of kicks
at random positions spreads ``q[:, kick]`` over all 16 positions. The density family sees no
difference between the two; this profile does. Both functions are pure, vectorised over any
batch axes, and finite for every input (0 steps, one step, silence, all hits).
"""

from __future__ import annotations

import numpy as np

from dataset.metrics import as_hits

__all__ = ["onset_positions", "onset_profile"]


def _check_steps_per_bar(steps_per_bar: int) -> None:
    if isinstance(steps_per_bar, bool) or not isinstance(steps_per_bar, (int, np.integer)) \
            or steps_per_bar < 1:  # fmt: skip
        raise ValueError(f"steps_per_bar must be an integer >= 1, got {steps_per_bar!r}")


def onset_positions(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """Onsets of each drum at each position in the bar.

    ``N[p, d] = #{t : t mod steps_per_bar = p, h[t, d]}``: the steps of the sequence folded onto
    one bar, a trailing partial bar included (its steps count at their positions).

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
        steps_per_bar: steps in one bar (positions of the profile).

    Returns:
        float64 array (..., steps_per_bar, drums) of counts (0 for 0 steps).

    Raises:
        ValueError: ``seq`` with fewer than two axes, or ``steps_per_bar`` not an integer >= 1.

    >>> kick = np.array([[1], [0], [1], [0], [1], [0]])  # three bars of two steps
    >>> onset_positions(kick, 2).ravel().tolist()
    [3.0, 0.0]
    """
    h = as_hits(seq)
    _check_steps_per_bar(steps_per_bar)
    *batch, steps, drums = h.shape
    bars = -(-steps // steps_per_bar)
    padded = np.zeros((*batch, bars * steps_per_bar, drums), dtype=np.float64)
    padded[..., :steps, :] = h
    return padded.reshape(*batch, bars, steps_per_bar, drums).sum(axis=-3)


def onset_profile(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """Each drum's onset distribution over the bar's positions.

    ``q[p, d] = N[p, d] / sum_p' N[p', d]`` with ``N`` of :func:`onset_positions`; a drum
    without onsets has ``q[:, d] = 0``. Unchanged by repeating whole bars and by shifting the
    sequence by whole bars; a shift by ``s`` steps (of a sequence of whole bars, wrapped) rolls
    it by ``s`` positions.

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (..., steps_per_bar, drums), in [0, 1]; each column sums to 1 or is 0.

    Raises:
        ValueError: see :func:`onset_positions`.

    >>> snare = np.zeros((32, 1)); snare[[4, 12, 20, 28], 0] = 1  # backbeat, two bars
    >>> q = onset_profile(snare)[:, 0]
    >>> np.flatnonzero(q).tolist(), float(q[4])
    ([4, 12], 0.5)
    """
    counts = onset_positions(seq, steps_per_bar)
    total = counts.sum(axis=-2, keepdims=True)
    return counts / np.maximum(total, 1.0)
