"""Hits and timing: how much is played, when, and how fast.

Densities (:func:`hit_density`, :func:`bar_density`, :func:`fraction_dense_bars`), inter-onset
intervals (:func:`ioi_stats`), drums played together (:func:`co_occurrence`), fast runs and
fast hits (:func:`fast_patterns`, :func:`fast_hits`), syncopation (:func:`syncopation`,
:func:`metrical_syncopation`, :func:`metrical_weights`) and :func:`swing`; the seed's
:func:`co_occurrence_fraction` and :func:`fraction_bars_above` beside the project's
definitions (see :mod:`dataset.metrics`).

Each metric is a public checker over a kernel that computes it from intermediate results
(``*_of_counts``, ``*_of_hit_list``, ``*_of_density``, ``*_f`` for float32 hits): the window
levels (:mod:`dataset.metrics.levels`) and the window tables
(:mod:`dataset.metrics.window_tables`) share those results between metrics and call the same
kernels, so every path gives the same numbers.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from dataset.metrics.kernels import (
    F32_EXACT,
    HitList,
    as_hits,
    check_positive,
    complete_chunks,
    hit_list,
    hits_per_step,
    hits_per_step_f,
    pattern_bits,
    safe_div,
    sum_last,
)

__all__ = [
    # metrics
    "HitDensity",
    "hit_density",
    "bar_density",
    "fraction_dense_bars",
    "IOIStats",
    "ioi_stats",
    "co_occurrence",
    "FastPatterns",
    "fast_patterns",
    "fast_hits",
    "syncopation",
    "metrical_weights",
    "metrical_syncopation",
    "co_occurrence_fraction",
    "fraction_bars_above",
    "swing",
    # kernels: the metrics from intermediate results
    "hit_density_of_counts",
    "bar_hits",
    "bar_density_of_counts",
    "fraction_dense_of_density",
    "ioi_stats_of_hit_list",
    "ioi_mean_of_hit_list",
    "ioi_of_sums",
    "ioi_ratios",
    "co_occurrence_f",
    "co_occurrence_of_counts",
    "fast_patterns_of_hit_list",
    "fast_patterns_of_counts",
    "fast_hits_of_hit_list",
    "syncopation_of_counts",
    "metrical_syncopation_of_counts",
    "co_occurrence_fraction_of_counts",
    "fraction_above_of_density",
    "swing_positions",
    "swing_of_counts",
]


# ----------------------------------------------------------------------------- densities


class HitDensity(NamedTuple):
    """Hit density of a sequence (see :func:`hit_density`)."""

    avg_hits: np.ndarray
    """(...) mean number of drums hit per step, hits per step, in [0, drums]."""
    drum_density: np.ndarray
    """(..., drums) fraction of steps on which each drum hits, in [0, 1]."""
    max_hits: np.ndarray
    """(...) largest number of drums hit together on one step, hits, in [0, drums]."""


def hit_density(seq: np.ndarray) -> HitDensity:
    """Hit density: how many drums hit per step, and how often each drum hits.

    Definitions, for hits ``h[t, d]`` over ``T`` steps:
    ``avg_hits = sum_{t,d} h[t, d] / T``; ``drum_density[d] = sum_t h[t, d] / T``;
    ``max_hits = max_t sum_d h[t, d]``. All three are 0 when ``T = 0``.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.

    Returns:
        HitDensity of float64 arrays.

    >>> float(hit_density(np.array([[1, 0], [1, 1], [0, 0], [0, 0]])).avg_hits)
    0.75
    """
    h = as_hits(seq)
    steps = h.shape[-2]
    hf = h.astype(np.float32)
    if steps < F32_EXACT:  # a matrix product, exact: counts below 2**24
        drum_hits = np.ones(steps, dtype=np.float32) @ hf
    else:
        drum_hits = h.sum(axis=-2)
    return hit_density_of_counts(hits_per_step_f(hf), drum_hits, steps)


def hit_density_of_counts(per_step: np.ndarray, drum_hits: np.ndarray, steps: int) -> HitDensity:
    """:func:`hit_density` from :func:`hits_per_step` and the integer hits of each drum."""
    drum_density = safe_div(drum_hits, steps)
    avg_hits = safe_div(per_step.sum(axis=-1), steps)
    max_hits = per_step.max(axis=-1, initial=0).astype(np.float64)
    return HitDensity(avg_hits, drum_density, max_hits)


def bar_density(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """Mean hits per step of each complete bar.

    ``bar_density[b] = sum_{t in bar b, d} h[t, d] / steps_per_bar`` for the ``T // steps_per_bar``
    complete bars; a trailing partial bar is left out.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar (16 = 16th notes in 4/4).

    Returns:
        float64 array (..., bars), hits per step; shape (..., 0) when there is no complete bar.
    """
    h = as_hits(seq)
    check_positive(steps_per_bar, "steps_per_bar")
    return complete_chunks(h, steps_per_bar).sum(axis=(-1, -2)) / steps_per_bar


def bar_density_of_counts(per_step: np.ndarray, steps_per_bar: int, drums: int) -> np.ndarray:
    """:func:`bar_density` from :func:`hits_per_step` of ``drums`` drums.

    Exact sums, one division.
    """
    return bar_hits(per_step, steps_per_bar, drums) / steps_per_bar


def bar_hits(per_step: np.ndarray, steps_per_bar: int, drums: int) -> np.ndarray:
    """Hits in each complete bar, float64 (..., bars) exact integers, from :func:`hits_per_step`."""
    n_bars = per_step.shape[-1] // steps_per_bar
    return sum_last(per_step[..., : n_bars * steps_per_bar], steps_per_bar, drums)


def fraction_dense_bars(
    seq: np.ndarray, steps_per_bar: int = 16, dense_threshold: float = 1.0
) -> np.ndarray:
    """Fraction of complete bars that are dense.

    A bar is dense when its :func:`bar_density` (mean hits per step) is ``>= dense_threshold``:
    with the default 1.0 and 16 steps per bar that is at least 16 hits in the bar, e.g. a groove
    with 16th-note hi-hats, while 8th-note hi-hats with kick and snare are not dense.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        dense_threshold: hits per step from which a bar counts as dense.

    Returns:
        float64 array (...), in [0, 1]; 0 when there is no complete bar.
    """
    return fraction_dense_of_density(bar_density(seq, steps_per_bar), dense_threshold)


def fraction_dense_of_density(density: np.ndarray, dense_threshold: float = 1.0) -> np.ndarray:
    """:func:`fraction_dense_bars` from :func:`bar_density`."""
    return safe_div((density >= dense_threshold).sum(axis=-1), density.shape[-1])


# ----------------------------------------------------------------------------- timing


class IOIStats(NamedTuple):
    """Inter-onset-interval statistics per drum (see :func:`ioi_stats`)."""

    mean: np.ndarray
    """(..., drums) mean IOI, steps; 0 for a drum with fewer than two hits."""
    var: np.ndarray
    """(..., drums) population variance of the IOI, steps squared; 0 likewise."""
    hist: np.ndarray
    """(..., drums, max_ioi) fraction of a drum's IOIs equal to 1, 2, ..., the last bin
    holding IOIs >= max_ioi; a zero row for a drum with fewer than two hits."""


def ioi_stats(seq: np.ndarray, max_ioi: int = 16) -> IOIStats:
    """Inter-onset intervals (IOI) of each drum.

    An IOI of drum ``d`` is the distance in steps between two consecutive hits of ``d`` (hits on
    consecutive steps are an IOI of 1). A drum with ``k`` hits has ``k - 1`` IOIs.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        max_ioi: number of histogram bins; bin ``i`` counts IOIs of ``i + 1`` steps, the last bin
            every IOI ``>= max_ioi``.

    Returns:
        IOIStats of float64 arrays.

    >>> ioi_stats(np.array([[1], [0], [1], [1]]), max_ioi=3).mean
    array([1.5])
    """
    h = as_hits(seq)
    check_positive(max_ioi, "max_ioi")
    return ioi_stats_of_hit_list(hit_list(h), h.shape, max_ioi)


def ioi_stats_of_hit_list(hl: HitList, shape: tuple[int, ...], max_ioi: int = 16) -> IOIStats:
    """:func:`ioi_stats` from the hit list of a sequence of ``shape`` (..., steps, drums).

    The IOIs of a row are the gaps between its consecutive hits; every sum below is a sum of
    integers, hence exact, so the statistics do not depend on the summation order.
    """
    rows = hl.bounds.size - 1
    hits, count, has, first, total = _ioi_totals(hl)
    # Squares: segment sums over the gaps, those between two rows set to 0.
    sq_total = np.zeros(rows, dtype=np.int64)
    if has.size:
        square = np.zeros(hl.pos.size, dtype=np.int64)  # one more entry: the last segment's end
        np.multiply(hl.gap, hl.gap, out=square[:-1], where=hl.same)
        sq_total[has] = np.add.reduceat(square, first)
    cells = (*shape[:-2], shape[-1])
    # Histogram: one bincount over (batch * drum, bin) cells, gaps between rows in a spare one.
    key = np.repeat(np.arange(rows, dtype=np.int64) * max_ioi, hits)[1:]
    key += np.minimum(hl.gap, max_ioi) - 1
    key[~hl.same] = rows * max_ioi
    counts = np.bincount(key, minlength=rows * max_ioi + 1)[:-1]
    sums = np.concatenate(
        [total[:, None], sq_total[:, None], counts.reshape(rows, max_ioi)], axis=1
    ).reshape(*cells, 2 + max_ioi)
    return ioi_of_sums(sums, count.reshape(cells))


def ioi_mean_of_hit_list(hl: HitList, shape: tuple[int, ...]) -> np.ndarray:
    """The ``mean`` of :func:`ioi_stats_of_hit_list` alone, the same values: float64 (..., drums).

    Without the squares and the histogram that the variance and ``hist`` need.
    """
    _, count, _, _, total = _ioi_totals(hl)
    cells = (*shape[:-2], shape[-1])
    return ioi_ratios(total.reshape(*cells, 1), count.reshape(cells))[..., 0]


def _ioi_totals(
    hl: HitList,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a hit list: hits, IOIs, the rows with hits, their first hits, IOI sums.

    int64 arrays: ``hits`` (rows,), ``count`` (rows,) the IOIs, ``has`` the indices of the rows
    with a hit, ``first`` their first hit's index in the list, ``total`` (rows,) the IOIs'
    sum (exact).
    """
    rows = hl.bounds.size - 1
    hits = np.diff(hl.bounds)
    count = np.maximum(hits - 1, 0)
    has = np.flatnonzero(hits)
    first = hl.bounds[has]
    last = hl.bounds[has + 1] - 1
    # A row's IOIs add up to the distance from its first hit to its last one.
    total = np.zeros(rows, dtype=np.int64)
    total[has] = hl.pos[last] - hl.pos[first]
    return hits, count, has, first, total


def ioi_of_sums(sums: np.ndarray, count: np.ndarray) -> IOIStats:
    """:class:`IOIStats` from integer sums over each drum's IOIs.

    Args:
        sums: (..., drums, 2 + max_ioi): the sum of the IOIs (steps), the sum of their squares,
            then the number of IOIs in each histogram bin.
        count: (..., drums) number of IOIs.
    """
    ratio = ioi_ratios(sums, count)
    mean = ratio[..., 0]
    var = np.maximum(ratio[..., 1] - mean**2, 0.0)
    return IOIStats(mean, var, ratio[..., 2:])


def ioi_ratios(sums: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``sums / count`` (``sums`` (..., drums, k), ``count`` (..., drums)), 0 where no IOI.

    ``sums`` may be anything finite where ``count <= 0``.
    """
    return sums / np.where(count > 0, count, np.inf)[..., None]


def co_occurrence(seq: np.ndarray) -> np.ndarray:
    """How often two drums hit on the same step.

    ``C[i, j] = sum_t h[t, i] h[t, j] / T``; the diagonal is the drum density. 0 when ``T = 0``.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.

    Returns:
        float64 array (..., drums, drums), symmetric, values in [0, 1].
    """
    return co_occurrence_f(as_hits(seq).astype(np.float32))


def co_occurrence_f(hf: np.ndarray) -> np.ndarray:
    """:func:`co_occurrence` of hits as float32."""
    counts = np.matmul(np.swapaxes(hf, -1, -2), hf)  # exact: integer counts < 2**24
    return safe_div(counts, hf.shape[-2])


@lru_cache(maxsize=16)
def _pair_bits(drums: int) -> np.ndarray:
    """Which pairs of drums each step pattern holds.

    Returns:
        float32 array (2**drums, drums * drums): entry ``(c, i * drums + j)`` is 1 when pattern
        ``c`` holds both drum ``i`` and drum ``j``, else 0.
    """
    bits = pattern_bits(drums)
    out = (bits[:, :, None] * bits[:, None, :]).reshape(2**drums, drums * drums)
    out.setflags(write=False)  # cached: shared by every caller
    return out


def co_occurrence_of_counts(counts: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`co_occurrence` from the full pattern histogram of :func:`pattern_counts`.

    ``counts`` is (rows, 2**drums) for a sequence of ``shape`` (..., steps, drums). One small
    matrix product: ``C[i, j]`` sums the counts of the patterns holding both ``i`` and ``j``
    (exact integer counts in float32, as in :func:`co_occurrence_f`).
    """
    drums = shape[-1]
    pairs = counts.astype(np.float32) @ _pair_bits(drums)
    return safe_div(pairs.reshape(*shape[:-2], drums, drums), shape[-2])


# ----------------------------------------------------------------------------- fast runs


class FastPatterns(NamedTuple):
    """Fast runs of one drum (see :func:`fast_patterns`)."""

    fraction: np.ndarray
    """(..., drums) fraction of a drum's hits that lie in fast runs, in [0, 1]; 0 without hits."""
    runs_per_bar: np.ndarray
    """(...) number of fast runs (all drums) per bar of the sequence, runs per bar."""


def fast_patterns(
    seq: np.ndarray, fast_threshold: int = 4, steps_per_bar: int = 16
) -> FastPatterns:
    """Fast patterns: rolls and runs, a drum hitting on every step for a while.

    A fast run of drum ``d`` is a maximal run of consecutive steps on which ``d`` hits, at least
    ``fast_threshold`` steps long (four 16th notes in a row by default: a roll, a 16th-note fill).

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        fast_threshold: shortest run, in steps, that counts as fast.
        steps_per_bar: steps in one bar, for ``runs_per_bar``.

    Returns:
        FastPatterns; ``runs_per_bar`` divides by ``T / steps_per_bar`` bars (0 when ``T = 0``).
    """
    h = as_hits(seq)
    check_positive(fast_threshold, "fast_threshold")
    check_positive(steps_per_bar, "steps_per_bar")
    return fast_patterns_of_hit_list(hit_list(h), h.shape, fast_threshold, steps_per_bar)


def fast_patterns_of_hit_list(
    hl: HitList, shape: tuple[int, ...], fast_threshold: int = 4, steps_per_bar: int = 16
) -> FastPatterns:
    """:func:`fast_patterns` from the hit list of a sequence of ``shape`` (..., steps, drums).

    A run is a stretch of hits of one row each one step after the one before; its length is
    the number of hits in it (integer counts throughout).
    """
    steps, drums = shape[-2], shape[-1]
    batch = shape[:-2]
    rows = hl.bounds.size - 1
    n_hits = hl.pos.size
    # Hit k + 1 starts a new run unless it follows hit k on the next step of the same row.
    starts = np.flatnonzero(~(hl.same & (hl.gap == 1))) + 1
    starts = np.concatenate(([0], starts)) if n_hits else starts
    lengths = np.diff(starts, append=n_hits)
    fast = lengths >= fast_threshold
    fast_rows = np.searchsorted(hl.bounds, starts[fast], side="right") - 1
    fast_hits = np.bincount(fast_rows, weights=lengths[fast], minlength=rows)
    hits = np.diff(hl.bounds)
    n_seq = rows // drums if drums else math.prod(batch)
    n_runs = np.bincount(fast_rows // max(drums, 1), minlength=n_seq).reshape(batch)
    return fast_patterns_of_counts(
        fast_hits.reshape(*batch, drums), hits.reshape(*batch, drums), n_runs, steps, steps_per_bar
    )


def fast_patterns_of_counts(
    fast_hits: np.ndarray, hits: np.ndarray, n_runs: np.ndarray, steps: int, steps_per_bar: int
) -> FastPatterns:
    """:class:`FastPatterns` from counts of sequences of ``steps`` steps.

    ``fast_hits`` and ``hits`` (..., drums): hits in fast runs and all hits of each drum;
    ``n_runs`` (...): the number of fast runs.
    """
    return FastPatterns(safe_div(fast_hits, hits), safe_div(n_runs * steps_per_bar, steps))


def fast_hits(seq: np.ndarray, fast_threshold: int = 4) -> np.ndarray:
    """Fast patterns as the seed defines them: the number of hits close to the one before.

    A hit of drum ``d`` at step ``t`` is fast when the previous hit of ``d`` is at most
    ``fast_threshold`` steps earlier (its inter-onset interval, see :func:`ioi_stats`, is
    ``<= fast_threshold``): ``fast_hits = #{IOIs of any drum <= fast_threshold}``. Each drum's
    first hit is never fast. (The project's :func:`fast_patterns` measures runs instead.)

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        fast_threshold: the longest IOI, steps, that counts as fast.

    Returns:
        float64 array (...), a count of hits, in ``[0, hits - drums hit at all]``; 0 without
        hits.

    >>> float(fast_hits(np.array([[1], [0], [1], [0], [0], [0], [0], [1]]), 4))
    1.0
    """
    h = as_hits(seq)
    check_positive(fast_threshold, "fast_threshold")
    return fast_hits_of_hit_list(hit_list(h), h.shape, fast_threshold)


def fast_hits_of_hit_list(
    hl: HitList, shape: tuple[int, ...], fast_threshold: int = 4
) -> np.ndarray:
    """:func:`fast_hits` from the hit list of a sequence of ``shape`` (..., steps, drums)."""
    batch, drums = shape[:-2], shape[-1]
    n_seq = math.prod(batch)
    fast = hl.same & (hl.gap <= fast_threshold)  # gap k lies between hits k and k + 1
    row = np.searchsorted(hl.bounds, np.flatnonzero(fast) + 1, side="right") - 1
    counts = np.bincount(row // max(drums, 1), minlength=n_seq)
    return counts.reshape(batch).astype(np.float64)


# ----------------------------------------------------------------------------- syncopation


def syncopation(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """Syncopation as the seed defines it: the share of hits not on the first step of a bar.

    ``syncopation = #{hits at t with t mod steps_per_bar != 0} / #hits``; 0 without hits.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (...), in [0, 1].
    """
    h = as_hits(seq)
    check_positive(steps_per_bar, "steps_per_bar")
    return syncopation_of_counts(hits_per_step(h), steps_per_bar)


def syncopation_of_counts(per_step: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """:func:`syncopation` from :func:`hits_per_step`."""
    off = (np.arange(per_step.shape[-1]) % steps_per_bar) != 0
    return safe_div((per_step * off).sum(axis=-1), per_step.sum(axis=-1))


def metrical_weights(steps_per_bar: int = 16, beats_per_bar: int = 4) -> np.ndarray:
    """Syncopation weight of each position in a bar, by metrical level.

    With ``beat = max(steps_per_bar // beats_per_bar, 1)`` steps: 0 on the beat grid
    (``p mod beat == 0``), 0.5 on the half-beat off-beats (``p mod (beat / 2) == 0`` when
    ``beat`` is even), 1 elsewhere (the 16th-note "e" and "a" at 16 steps per bar).

    Args:
        steps_per_bar: steps in one bar.
        beats_per_bar: beats (quarter notes in 4/4) in one bar.

    Returns:
        float64 array (steps_per_bar,), values in {0, 0.5, 1}.

    >>> metrical_weights(8, 4)
    array([0. , 0.5, 0. , 0.5, 0. , 0.5, 0. , 0.5])
    """
    check_positive(steps_per_bar, "steps_per_bar")
    check_positive(beats_per_bar, "beats_per_bar")
    beat = max(steps_per_bar // beats_per_bar, 1)
    p = np.arange(steps_per_bar)
    w = np.ones(steps_per_bar)
    if beat % 2 == 0:
        w[p % (beat // 2) == 0] = 0.5
    w[p % beat == 0] = 0.0
    return w


def metrical_syncopation(
    seq: np.ndarray, steps_per_bar: int = 16, beats_per_bar: int = 4
) -> np.ndarray:
    """Metrical syncopation: mean :func:`metrical_weights` weight of the hits.

    ``sum_{t,d} h[t, d] * w[t mod steps_per_bar] / #hits``: 0 when every hit is on a beat, 0.5
    for hits on 8th-note off-beats, 1 when every hit is on a 16th between them; 0 without hits.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        beats_per_bar: beats in one bar.

    Returns:
        float64 array (...), in [0, 1].
    """
    h = as_hits(seq)
    return metrical_syncopation_of_counts(hits_per_step(h), steps_per_bar, beats_per_bar)


def metrical_syncopation_of_counts(
    per_step: np.ndarray, steps_per_bar: int = 16, beats_per_bar: int = 4
) -> np.ndarray:
    """:func:`metrical_syncopation` from :func:`hits_per_step`."""
    w = np.resize(metrical_weights(steps_per_bar, beats_per_bar), per_step.shape[-1])
    return safe_div((per_step * w).sum(axis=-1), per_step.sum(axis=-1))


# ----------------------------------------------------------------------------- the seed's names
# The seed defines some metrics otherwise than the project did first. Both stay: the project's
# under the names above (the env's rewards and the evaluation use them), the seed's below under
# names of their own (see dataset.metrics).


def co_occurrence_fraction(seq: np.ndarray) -> np.ndarray:
    """The seed's ``_co_occurrence``: the fraction of steps on which more than one drum hits.

    ``#{t : sum_d h[t, d] > 1} / T``; 0 when ``T = 0``. (The project's :func:`co_occurrence`
    is the drum-by-drum matrix.)

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.

    Returns:
        float64 array (...), in [0, 1].

    >>> float(co_occurrence_fraction(np.array([[1, 1], [1, 0], [0, 0], [1, 1]])))
    0.5
    """
    h = as_hits(seq)
    return co_occurrence_fraction_of_counts(hits_per_step(h))


def co_occurrence_fraction_of_counts(per_step: np.ndarray) -> np.ndarray:
    """:func:`co_occurrence_fraction` from :func:`hits_per_step`."""
    return safe_div((per_step > 1).sum(axis=-1), per_step.shape[-1])


def fraction_bars_above(
    seq: np.ndarray, steps_per_bar: int = 16, threshold: float | None = None
) -> np.ndarray:
    """The seed's ``_fraction_dense_bars``: the fraction of bars with hits above a threshold.

    Each complete bar is averaged with :func:`aggregate` (hits of each drum per step); its hits
    are the sum over the drums, the mean number of drums hit per step (:func:`bar_density`).
    A bar is dense when that is ``> threshold``, by default half the number of drums ``D / 2``
    (a bar of 9 drums is dense when more than 4.5 drums hit per step on average). (The
    project's :func:`fraction_dense_bars` counts bars with ``>= 1`` hit per step.)

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        threshold: hits per step above which a bar is dense; ``None`` for ``drums / 2``.

    Returns:
        float64 array (...), in [0, 1]; 0 when there is no complete bar.

    >>> float(fraction_bars_above(np.array([[1, 1], [1, 1], [1, 0], [0, 0]]), 2))
    0.5
    """
    h = as_hits(seq)
    check_positive(steps_per_bar, "steps_per_bar")
    limit = h.shape[-1] / 2 if threshold is None else float(threshold)
    return fraction_above_of_density(bar_density(h, steps_per_bar), limit)


def fraction_above_of_density(density: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`fraction_bars_above` from :func:`bar_density`."""
    return safe_div((density > threshold).sum(axis=-1), density.shape[-1])


# ----------------------------------------------------------------------------- swing


@lru_cache(maxsize=64)
def swing_positions(steps: int, steps_per_bar: int, beats_per_bar: int) -> np.ndarray:
    """Steps ``t`` on the straight off-beat 8th with ``t + 1 < steps`` (see :func:`swing`)."""
    beat = steps_per_bar // beats_per_bar
    if beat < 4 or beat % 2:
        return np.zeros(0, dtype=np.int64)
    t = np.arange(max(steps - 1, 0))
    p = t % steps_per_bar
    out = t[(p % beat == beat // 2) & (p < beats_per_bar * beat)]
    out.setflags(write=False)
    return out


def swing(seq: np.ndarray, steps_per_bar: int = 16, beats_per_bar: int = 4) -> np.ndarray:
    """Swing (shuffle): the share of off-beat 8ths delayed to the next step, per drum and beat.

    With ``beat = steps_per_bar // beats_per_bar`` steps, each beat ``k`` of a bar has a
    straight off-beat 8th at position ``s = k * beat + beat / 2`` of the bar and its swung
    (delayed) form one step later, ``s + 1`` (the 16th "a" at 16 steps per bar; the last
    triplet 8th at 24). For every drum ``d`` and every such pair of steps ``(t, t + 1)`` of the
    sequence (both in it): the pair is *delayed* when ``h[t + 1, d]`` and not ``h[t, d]``, and
    *straight* when ``h[t, d]`` and not ``h[t + 1, d]`` (both or neither: no evidence).
    ``swing = delayed / (delayed + straight)``: 1 for swung 8ths (hi-hat on 1 e & *a*), 0 for
    straight 8ths, and 0 without evidence (silence, all hits, straight 16ths, a sequence shorter
    than the first pair) or when the beat has no room for it (``beat`` odd or below 4 steps).
    A hit on the "a" of a drum that leaves the "&" empty reads as swing, e.g. a syncopated
    kick: the measure is meant for the timekeeping voices.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        beats_per_bar: beats in one bar.

    Returns:
        float64 array (...), in [0, 1].

    >>> hat = np.array([[1], [0], [0], [1]] * 4)  # 16th grid: 1 . . a on every beat
    >>> float(swing(hat)), float(swing(np.array([[1], [0], [1], [0]] * 4)))
    (1.0, 0.0)
    """
    h = as_hits(seq)
    check_positive(steps_per_bar, "steps_per_bar")
    check_positive(beats_per_bar, "beats_per_bar")
    t = swing_positions(h.shape[-2], steps_per_bar, beats_per_bar)
    on, late = h[..., t, :], h[..., t + 1, :]
    delayed = (late & ~on).sum(axis=(-1, -2))
    straight = (on & ~late).sum(axis=(-1, -2))
    return swing_of_counts(delayed, straight)


def swing_of_counts(delayed: np.ndarray, straight: np.ndarray) -> np.ndarray:
    """:func:`swing` from the counts of delayed and straight off-beat pairs."""
    return safe_div(delayed, delayed + straight)
