"""Rhythm metrics of drum sequences: pure, vectorised numpy functions.

This module is the single source of every metric in drum-env. The dataset, the environments'
rewards, the evaluation, the tests and the benchmarks all call these functions; nothing else
re-implements them.

Conventions shared by every function:

* ``seq`` is an array ``(..., steps, drums)``: any leading batch axes, then time (one step is
  ``1 / steps_per_bar`` of a bar, a 16th note for the default 16) and the drum classes. Values are
  velocities in ``[0, 1]`` or binary hits; **a hit is a value > 0** and every metric works on hits
  only (velocity is ignored), except those of the velocity section, which read each hit's value
  as its velocity, exactly (no quantisation; they check the values are in ``[0, 1]``). Boolean
  arrays are accepted as they are (a velocity of 1 for each hit).
* Every metric is finite for every input: an empty sequence (0 steps), one step, all silence and
  all hits give well-defined numbers (the edge-case value is stated in each docstring), never NaN.
* Counts are in steps (time), hits (onsets of one drum at one step) or bars; units are stated.
* Functions return float64 arrays (or NamedTuples of them) with the batch shape ``(...)`` in
  front, so ``f(seq)[i] == f(seq[i])`` for a stacked batch.

Window-level helpers (``window_metrics``, ``song_metrics``) combine the functions into flat
``{"level/name": value}`` dictionaries (the env's episode metrics use ``song_metrics``).

Where the seed document defines a metric otherwise than this module first did, both stay: the
project's under its original name (the env's rewards and the evaluation call it), the seed's
under a name of its own:

| seed method | seed definition | here | the project's, beside it |
|---|---|---|---|
| ``_aggregate`` | mean of each unit | ``aggregate`` | |
| ``_co_occurrence`` | steps with > 1 drum | ``co_occurrence_fraction`` | ``co_occurrence`` |
| ``_transitions`` | consecutive steps | ``step_transitions`` | ``transitions`` (onsets) |
| ``_fraction_dense_bars`` | > ``D/2`` a step | ``fraction_bars_above`` | ``fraction_dense_bars`` |
| ``_n_grams`` | a ``Counter`` | ``n_gram_counter`` | ``n_grams`` |
| ``_fast_patterns`` | IOIs <= ``fast_threshold`` | ``fast_hits`` | ``fast_patterns`` (runs) |
| ``_phrase_structure`` | hits per bar | ``phrase_hits_per_bar`` | ``phrase_structure`` |
| ``_section_metrics`` | per section | ``section_level_metrics`` | ``section_metrics`` |
| ``_song_metrics`` | the whole song | ``song_level_metrics`` | ``song_metrics`` (flat) |

:func:`level_metrics` and :func:`song_level_metrics` build the dataset's nested metrics dict
(the seed's names at each level), including the metrics registered with
:func:`register_metric` (see :mod:`dataset.registry`; built in: :func:`swing`,
:func:`polyrhythm`, :func:`drum_periods`).

The velocity section describes the dynamics: per drum, :func:`velocity_stats` (mean and
spread of the hit velocities) and :func:`accent_contrast`; per position in the bar,
:func:`accent_pattern`; per bar, :func:`bar_dynamic_range` and :func:`bar_velocity_stats`;
:func:`mean_dynamic_range`; and :func:`velocity_features`, one fixed-length vector of them for
a bar, a phrase or a song (the env's velocity rewards). The dataset adds them to its metrics
dict through :data:`VELOCITY_SPECS`, not through the registry (whose song-level metrics the
evaluation and the env's reward judge as hit metrics).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType, SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from dataset.registry import (
    BUILTIN_KEYS,
    VELOCITY_KEYS,
    MetricGrid,
    MetricSpec,
    register_metric,
    registered_metrics,
)

__all__ = [
    "HitDensity",
    "IOIStats",
    "NGramStats",
    "FastPatterns",
    "PhraseStructure",
    "SectionMetrics",
    "as_hits",
    "hit_density",
    "bar_density",
    "fraction_dense_bars",
    "ioi_stats",
    "co_occurrence",
    "step_codes",
    "n_grams",
    "fast_patterns",
    "transitions",
    "syncopation",
    "metrical_weights",
    "metrical_syncopation",
    "pattern_entropy",
    "phrase_entropy",
    "jaccard",
    "phrase_structure",
    "default_sections",
    "section_spans",
    "section_metrics",
    "window_metrics",
    "song_metrics",
    # the seed's definitions, under names of their own (see level_metrics)
    "aggregate",
    "co_occurrence_fraction",
    "step_transitions",
    "fraction_bars_above",
    "n_gram_counter",
    "fast_hits",
    "phrase_hits_per_bar",
    "section_level_metrics",
    "level_metrics",
    "song_level_metrics",
    # every window of one sequence, from tables
    "WindowLayout",
    "WindowTables",
    # the seed's "extensible metrics": two built in, and the registry
    "swing",
    "drum_periods",
    "polyrhythm",
    "register_metric",
    # velocity: the dynamics of the hits (values read exactly)
    "VelocityStats",
    "as_velocities",
    "velocity_stats",
    "bar_velocity_stats",
    "accent_pattern",
    "accent_contrast",
    "bar_dynamic_range",
    "mean_dynamic_range",
    "velocity_features",
    "velocity_feature_names",
    "VELOCITY_SPECS",
]


_F32_EXACT = 2**24  # integers below this are exact in float32
_MAX_PAIR_DRUMS = 10  # most drums for the per-pattern tables (_bits, _pair_bits: 2**10 rows)
_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0
_CHUNK_BYTES = 1 << 18  # size of the float32 temporaries that are made chunk by chunk


def as_hits(seq: np.ndarray) -> np.ndarray:
    """Boolean hits of a sequence.

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.

    Returns:
        bool array (..., steps, drums).

    Raises:
        ValueError: if ``seq`` has fewer than two axes.
    """
    seq = np.asarray(seq)
    if seq.ndim < 2:
        raise ValueError(f"seq must have shape (..., steps, drums), got shape {seq.shape}")
    if seq.dtype == np.bool_:
        return seq
    return seq > 0


def _per_step(h: np.ndarray) -> np.ndarray:
    """Number of drums hit on each step: (..., steps, drums) bool -> (..., steps) float32.

    A matrix product: much faster than a reduction along the short drum axis.
    """
    return _per_step_f(h.astype(np.float32))


def _per_step_f(hf: np.ndarray) -> np.ndarray:
    """:func:`_per_step` of hits already as float32 (exact: a step has at most ``drums`` hits)."""
    return hf @ np.ones(hf.shape[-1], dtype=np.float32)


def _hit_products(h: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``h.astype(float32) @ weights`` for hits (..., steps, drums) and weights (drums, k).

    Chunk by chunk of steps, so that the float32 copy of the hits stays small (a large
    temporary array costs more in fresh memory than in arithmetic). Float32 matrix products of
    0/1 hits with integer weights: exact while the results stay below 2**24.

    Returns:
        float32 array (..., steps, k).
    """
    drums = h.shape[-1]
    n = math.prod(h.shape[:-1])
    flat = h.reshape(n, drums)
    out = np.empty((n, weights.shape[1]), dtype=np.float32)
    chunk = max(1, _CHUNK_BYTES // (4 * max(drums, 1)))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        np.matmul(flat[start:stop].astype(np.float32), weights, out=out[start:stop])
    return out.reshape(*h.shape[:-1], weights.shape[1])


def _time_last(h: np.ndarray) -> np.ndarray:
    """(..., steps, drums) -> contiguous (..., drums, steps), for scans along time."""
    return np.ascontiguousarray(np.swapaxes(h, -1, -2))


def _safe_div(num: np.ndarray, den: np.ndarray | float) -> np.ndarray:
    """``num / den`` where ``den > 0``, else 0 (broadcasting), float64."""
    den = np.asarray(den, dtype=np.float64)
    if den.ndim == 0:
        return np.asarray(num, dtype=np.float64) / den if den > 0 else np.zeros(np.shape(num))
    return np.asarray(num, dtype=np.float64) / np.where(den > 0, den, np.inf)


def _sum_last(x: np.ndarray, size: int, bound: int) -> np.ndarray:
    """Sums of consecutive chunks of ``size`` along the last axis: (..., n * size) -> (..., n).

    ``x`` holds integers in ``[0, bound]``. The sums are exact, so their order does not matter:
    a float32 matrix product while they stay below 2**24, else a float64 sum.

    Returns:
        float64 array (..., n).
    """
    chunks = x.reshape(*x.shape[:-1], x.shape[-1] // size, size)
    if size * bound < _F32_EXACT:
        ones = np.ones(size, dtype=np.float32)
        return (chunks.astype(np.float32, copy=False) @ ones).astype(np.float64)
    return chunks.sum(axis=-1, dtype=np.float64)


class _HitList(NamedTuple):
    """Every hit of a sequence, in (batch..., drum, step) order.

    The sparse form that the IOI, fast-run and per-drum counts work on: O(hits) work instead of
    scans over every step of every drum. A row is one drum of one sequence of the batch.
    """

    pos: np.ndarray
    """(hits,) int64 ``row * steps + step`` of each hit, increasing."""
    bounds: np.ndarray
    """(rows + 1,) int64: the hits of row ``r`` are ``pos[bounds[r] : bounds[r + 1]]``."""
    gap: np.ndarray
    """(hits - 1,) ``pos[k + 1] - pos[k]``: steps to the next hit, where that is of this row."""
    same: np.ndarray
    """(hits - 1,) bool: hit ``k + 1`` is of the same row as hit ``k``."""


def _row_bounds(pos: np.ndarray, rows: int, steps: int) -> np.ndarray:
    """Where each row starts among increasing flat positions ``pos = row * steps + step``.

    Returns:
        int64 array (rows + 1,): the entries of row ``r`` are ``pos[bounds[r] : bounds[r + 1]]``.
    """
    return np.searchsorted(pos, np.arange(rows + 1, dtype=np.int64) * steps)


def _same_row(bounds: np.ndarray, n: int) -> np.ndarray:
    """(n - 1,) bool: entries ``k`` and ``k + 1`` lie in the same row of :func:`_row_bounds`."""
    same = np.ones(max(n - 1, 0), dtype=bool)
    inner = bounds[1:-1]
    same[inner[(inner > 0) & (inner < n)] - 1] = False
    return same


def _hit_list(h: np.ndarray) -> _HitList:
    """:class:`_HitList` of hits ``h`` (..., steps, drums)."""
    rows = math.prod(h.shape[:-2]) * h.shape[-1]
    pos = np.flatnonzero(_time_last(h))  # row * steps + t, increasing
    bounds = _row_bounds(pos, rows, h.shape[-2])
    return _HitList(pos, bounds, np.diff(pos), _same_row(bounds, pos.size))


def _drum_hits(hl: _HitList, shape: tuple[int, ...]) -> np.ndarray:
    """Hits of each drum, (..., drums) int64, from the hit list of a sequence of ``shape``."""
    return np.diff(hl.bounds).reshape(*shape[:-2], shape[-1])


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
    if steps < _F32_EXACT:  # a matrix product, exact: counts below 2**24
        drum_hits = np.ones(steps, dtype=np.float32) @ hf
    else:
        drum_hits = h.sum(axis=-2)
    return _hit_density(_per_step_f(hf), drum_hits, steps)


def _hit_density(per_step: np.ndarray, drum_hits: np.ndarray, steps: int) -> HitDensity:
    """:func:`hit_density` from :func:`_per_step` and the integer hits of each drum."""
    drum_density = _safe_div(drum_hits, steps)
    avg_hits = _safe_div(per_step.sum(axis=-1), steps)
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
    _check_positive(steps_per_bar, "steps_per_bar")
    return _chunks(h, steps_per_bar).sum(axis=(-1, -2)) / steps_per_bar


def _bar_density(per_step: np.ndarray, steps_per_bar: int, drums: int) -> np.ndarray:
    """:func:`bar_density` from :func:`_per_step` of ``drums`` drums: exact sums, one division."""
    return _bar_hits(per_step, steps_per_bar, drums) / steps_per_bar


def _bar_hits(per_step: np.ndarray, steps_per_bar: int, drums: int) -> np.ndarray:
    """Hits in each complete bar, float64 (..., bars) exact integers, from :func:`_per_step`."""
    n_bars = per_step.shape[-1] // steps_per_bar
    return _sum_last(per_step[..., : n_bars * steps_per_bar], steps_per_bar, drums)


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
    return _fraction_dense(bar_density(seq, steps_per_bar), dense_threshold)


def _fraction_dense(density: np.ndarray, dense_threshold: float = 1.0) -> np.ndarray:
    """:func:`fraction_dense_bars` from :func:`bar_density`."""
    return _safe_div((density >= dense_threshold).sum(axis=-1), density.shape[-1])


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
    _check_positive(max_ioi, "max_ioi")
    return _ioi_stats(_hit_list(h), h.shape, max_ioi)


def _ioi_stats(hl: _HitList, shape: tuple[int, ...], max_ioi: int = 16) -> IOIStats:
    """:func:`ioi_stats` from the hit list of a sequence of ``shape`` (..., steps, drums).

    The IOIs of a row are the gaps between its consecutive hits; every sum below is a sum of
    integers, hence exact, so the statistics do not depend on the summation order.
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
    return _ioi_of_sums(sums, count.reshape(cells))


def _ioi_of_sums(sums: np.ndarray, count: np.ndarray) -> IOIStats:
    """:class:`IOIStats` from integer sums over each drum's IOIs.

    Args:
        sums: (..., drums, 2 + max_ioi): the sum of the IOIs (steps), the sum of their squares,
            then the number of IOIs in each histogram bin.
        count: (..., drums) number of IOIs.
    """
    ratio = _ioi_ratios(sums, count)
    mean = ratio[..., 0]
    var = np.maximum(ratio[..., 1] - mean**2, 0.0)
    return IOIStats(mean, var, ratio[..., 2:])


def _ioi_ratios(sums: np.ndarray, count: np.ndarray) -> np.ndarray:
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
    return _co_occurrence(as_hits(seq).astype(np.float32))


def _co_occurrence(hf: np.ndarray) -> np.ndarray:
    """:func:`co_occurrence` of hits as float32."""
    counts = np.matmul(np.swapaxes(hf, -1, -2), hf)  # exact: integer counts < 2**24
    return _safe_div(counts, hf.shape[-2])


@lru_cache(maxsize=16)
def _pair_bits(drums: int) -> np.ndarray:
    """Which pairs of drums each step pattern holds.

    Returns:
        float32 array (2**drums, drums * drums): entry ``(c, i * drums + j)`` is 1 when pattern
        ``c`` holds both drum ``i`` and drum ``j``, else 0.
    """
    bits = _bits(drums)
    out = (bits[:, :, None] * bits[:, None, :]).reshape(2**drums, drums * drums)
    out.setflags(write=False)  # cached: shared by every caller
    return out


def _co_occurrence_of_counts(counts: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`co_occurrence` from the full pattern histogram of :func:`_pattern_counts`.

    ``counts`` is (rows, 2**drums) for a sequence of ``shape`` (..., steps, drums). One small
    matrix product: ``C[i, j]`` sums the counts of the patterns holding both ``i`` and ``j``
    (exact integer counts in float32, as in :func:`_co_occurrence`).
    """
    drums = shape[-1]
    pairs = counts.astype(np.float32) @ _pair_bits(drums)
    return _safe_div(pairs.reshape(*shape[:-2], drums, drums), shape[-2])


# ----------------------------------------------------------------------------- patterns


def step_codes(seq: np.ndarray) -> np.ndarray:
    """Each step's drum pattern as an integer bitmask: ``code[t] = sum_d h[t, d] * 2**d``.

    Args:
        seq: array (..., steps, drums) with at most 62 drums; a hit is a value > 0.

    Returns:
        int64 array (..., steps), values in [0, 2**drums).
    """
    h = as_hits(seq)
    drums = h.shape[-1]
    _check_drums(drums)
    if drums <= 24:  # exact in float32: a fast matrix product
        return _step_codes_f(h.astype(np.float32))
    weights = np.left_shift(np.int64(1), np.arange(drums, dtype=np.int64))
    return (h.astype(np.int64) * weights).sum(axis=-1)


def _check_drums(drums: int) -> None:
    if drums > 62:
        raise ValueError(f"step_codes supports at most 62 drums, got {drums}")


def _step_codes_f(hf: np.ndarray) -> np.ndarray:
    """:func:`step_codes` of hits as float32 with at most 24 drums (exact in float32)."""
    weights = np.exp2(np.arange(hf.shape[-1], dtype=np.float32))
    return (hf @ weights).astype(np.int64)


class NGramStats(NamedTuple):
    """N-grams of step patterns (see :func:`n_grams`)."""

    codes: np.ndarray
    """(..., steps - n + 1) int64 code of each n-gram (exact for ``n * drums <= 63``, else a
    64-bit hash)."""
    num_distinct: np.ndarray
    """(...) number of distinct n-grams."""
    diversity: np.ndarray
    """(...) distinct n-grams / n-grams, in [0, 1]; 0 when the sequence is shorter than n."""


_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)


def n_grams(seq: np.ndarray, n: int = 4) -> NGramStats:
    """N-grams of consecutive step patterns and their diversity.

    The n-gram starting at step ``t`` is the tuple ``(code[t], ..., code[t + n - 1])`` of
    :func:`step_codes`; there are ``max(T - n + 1, 0)`` of them. ``diversity`` is the number of
    distinct n-grams over the number of n-grams: one bar of 16 different 4-grams repeated has low
    diversity, random play has diversity near 1, silence has ``1 / (T - n + 1)``.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        n: n-gram length in steps (4 = one beat at 16 steps per bar).

    Returns:
        NGramStats.
    """
    _check_positive(n, "n")
    return _n_grams(step_codes(seq), np.shape(seq)[-1], n)


def _n_grams(code: np.ndarray, drums: int, n: int = 4) -> NGramStats:
    """:func:`n_grams` from :func:`step_codes` of a sequence with ``drums`` drums."""
    steps = code.shape[-1]
    count = max(steps - n + 1, 0)
    if n * drums <= 63:
        grams = np.zeros((*code.shape[:-1], count), dtype=np.int64)
        for k in range(n):
            grams |= code[..., k : k + count] << np.int64(drums * k)
    else:
        acc = np.zeros((*code.shape[:-1], count), dtype=np.uint64)
        for k in range(n):
            acc = (acc ^ code[..., k : k + count].astype(np.uint64)) * _HASH_MULT
        grams = acc.view(np.int64)
    if count == 0:
        distinct = np.zeros(code.shape[:-1])
    else:
        ordered = np.sort(grams, axis=-1)
        distinct = 1.0 + (np.diff(ordered, axis=-1) != 0).sum(axis=-1)
    return NGramStats(grams, distinct, _safe_div(distinct, count))


def _distinct_ngrams(
    code: np.ndarray, drums: int, n: int, counts: np.ndarray | None = None
) -> np.ndarray | None:
    """Number of distinct n-grams of each sequence, float64 (...), or None where not done so.

    Each step pattern is replaced by its rank among the patterns of its sequence (from the
    pattern histogram ``counts`` of :func:`_pattern_counts`, small alphabet only), so an n-gram
    is a number below ``radix ** n``. Where that fits in 32 bits the n-grams are sorted as
    uint32 (several times faster than int64); the count is that of the exact n-gram codes.
    Needs ``steps >= n`` and n-gram codes that are exact (``n * drums <= 63``), not hashed.
    """
    steps = code.shape[-1]
    count = steps - n + 1
    if counts is None:
        if not _small_alphabet(drums, steps):
            return None
        counts = _pattern_counts(code, drums)
    rows, alphabet = counts.shape
    if rows == 0:
        return None
    present = counts > 0
    radix = int(present.sum(axis=-1).max())
    if radix**n > 2**32:
        return None
    rank = np.cumsum(present, axis=-1) - 1
    ids = code.reshape(rows, steps) + (np.arange(rows) * alphabet)[:, None]
    digit = rank.ravel().take(ids).astype(np.uint32)  # (rows, steps), values < radix
    grams = digit[:, :count].copy()
    for k in range(1, n):  # below radix ** n <= 2**32 at every step: exact in uint32
        grams *= np.uint32(radix)
        grams += digit[:, k : k + count]
    grams.sort(axis=-1)
    distinct = 1.0 + np.count_nonzero(grams[:, 1:] != grams[:, :-1], axis=-1)
    return distinct.reshape(code.shape[:-1])[()]  # [()]: a scalar for one sequence


def _ngram_diversity(
    code: np.ndarray, drums: int, n: int = 4, counts: np.ndarray | None = None
) -> np.ndarray:
    """``n_grams(seq, n).diversity`` from :func:`step_codes` of ``seq``.

    ``counts``: :func:`_pattern_counts` of ``code`` with a small alphabet, if at hand.
    """
    return _safe_div(_ngram_distinct(code, drums, n, counts), max(code.shape[-1] - n + 1, 0))


def _ngram_distinct(
    code: np.ndarray, drums: int, n: int = 4, counts: np.ndarray | None = None
) -> np.ndarray:
    """``n_grams(seq, n).num_distinct`` from :func:`step_codes` of ``seq``, float64 (...).

    Long sequences (where sorting int64 n-gram codes is slow) go through
    :func:`_distinct_ngrams`; ``counts`` as in :func:`_ngram_diversity`.
    """
    count = max(code.shape[-1] - n + 1, 0)
    if count >= _LONG_NGRAMS and n * drums <= 63:
        distinct = _distinct_ngrams(code, drums, n, counts)
        if distinct is not None:
            return np.asarray(distinct, dtype=np.float64)
    return _n_grams(code, drums, n).num_distinct


_LONG_NGRAMS = 256  # n-grams per sequence from which _distinct_ngrams is the faster count


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
    _check_positive(fast_threshold, "fast_threshold")
    _check_positive(steps_per_bar, "steps_per_bar")
    return _fast_patterns(_hit_list(h), h.shape, fast_threshold, steps_per_bar)


def _fast_patterns(
    hl: _HitList, shape: tuple[int, ...], fast_threshold: int = 4, steps_per_bar: int = 16
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
    return _fast_of_counts(
        fast_hits.reshape(*batch, drums), hits.reshape(*batch, drums), n_runs, steps, steps_per_bar
    )


def _fast_of_counts(
    fast_hits: np.ndarray, hits: np.ndarray, n_runs: np.ndarray, steps: int, steps_per_bar: int
) -> FastPatterns:
    """:class:`FastPatterns` from counts of sequences of ``steps`` steps.

    ``fast_hits`` and ``hits`` (..., drums): hits in fast runs and all hits of each drum;
    ``n_runs`` (...): the number of fast runs.
    """
    return FastPatterns(_safe_div(fast_hits, hits), _safe_div(n_runs * steps_per_bar, steps))


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
    _check_positive(fast_threshold, "fast_threshold")
    return _fast_hits(_hit_list(h), h.shape, fast_threshold)


def _fast_hits(hl: _HitList, shape: tuple[int, ...], fast_threshold: int = 4) -> np.ndarray:
    """:func:`fast_hits` from the hit list of a sequence of ``shape`` (..., steps, drums)."""
    batch, drums = shape[:-2], shape[-1]
    n_seq = math.prod(batch)
    fast = hl.same & (hl.gap <= fast_threshold)  # gap k lies between hits k and k + 1
    row = np.searchsorted(hl.bounds, np.flatnonzero(fast) + 1, side="right") - 1
    counts = np.bincount(row // max(drums, 1), minlength=n_seq)
    return counts.reshape(batch).astype(np.float64)


def transitions(seq: np.ndarray) -> np.ndarray:
    """Drum-to-drum transition probabilities between consecutive onsets.

    An onset step is a step with at least one hit. For each onset step ``t`` that has a next onset
    step ``t'`` (the first onset after ``t``), every pair ``(i, j)`` with ``h[t, i]`` and
    ``h[t', j]`` counts once: ``N[i, j]``. Then ``P[i, j] = N[i, j] / sum_k N[i, k]``: given that
    drum ``i`` hits, the share of ``j`` among the drums of the next onset. Each row sums to 1, or
    is all 0 when drum ``i`` is never followed by an onset.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.

    Returns:
        float64 array (..., drums, drums), rows summing to 1 or 0.
    """
    h = as_hits(seq)
    hf = h.astype(np.float32)
    if h.shape[-1] <= _MAX_PAIR_DRUMS and h.shape[-2] < _F32_EXACT:
        return _transitions_of_codes(_step_codes_f(hf), h.shape[-1])
    return _transitions(hf, _per_step_f(hf))


def _next_onset_hits(hf: np.ndarray, per_step: np.ndarray) -> np.ndarray:
    """The hits of the next onset, at each onset step that has one; 0 on every other step.

    Returns:
        float32 array (..., steps, drums), the shape of ``hf``.
    """
    steps, drums = hf.shape[-2], hf.shape[-1]
    flat = hf.reshape(per_step.size, drums)
    follow = np.zeros_like(flat)
    onset = np.flatnonzero(per_step > 0)  # flat (batch..., step) index, increasing
    if onset.size > 1 and drums:
        bounds = _row_bounds(onset, per_step.size // steps, steps)
        pair = np.flatnonzero(_same_row(bounds, onset.size))  # onset k + 1 follows onset k
        src, dst = onset[pair], onset[pair + 1]
        if flat.flags.c_contiguous:  # move whole rows at once, as opaque items
            row = np.dtype((np.void, flat.itemsize * drums))
            follow.view(row)[src] = flat.view(row)[dst]
        else:
            follow[src] = flat[dst]
    return follow.reshape(hf.shape)


def _transitions(hf: np.ndarray, per_step: np.ndarray) -> np.ndarray:
    """:func:`transitions` of hits as float32, with :func:`_per_step` of them."""
    follow = _next_onset_hits(hf, per_step)
    counts = np.matmul(np.swapaxes(hf, -1, -2), follow)  # exact: integer counts < 2**24
    return _safe_div(counts, counts.sum(axis=-1, keepdims=True))


def _take_rows(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[index]`` of a 2-D ``table``: rows of (..., columns), the shape of ``index``.

    Each row of a C-contiguous table moves as one opaque item: several times faster than fancy
    indexing of short rows.
    """
    if table.shape[1] == 0 or not table.flags.c_contiguous:
        return table[index]
    row = np.dtype((np.void, table.itemsize * table.shape[1]))
    out = table.view(row).reshape(-1).take(index)
    return out.view(table.dtype).reshape(*index.shape, table.shape[1])


@lru_cache(maxsize=16)
def _bits(drums: int) -> np.ndarray:
    """The hits of each step pattern: (2**drums, drums) float32, row ``c`` is ``c`` in binary.

    Least significant bit (drum 0) first. Cached, read-only.
    """
    out = ((np.arange(2**drums)[:, None] >> np.arange(drums)) & 1).astype(np.float32)
    out.setflags(write=False)
    return out


def _transitions_of_codes(code: np.ndarray, drums: int) -> np.ndarray:
    """:func:`transitions` from :func:`step_codes` (..., steps), for few drums (small tables).

    The onsets of each sequence, in order, padded with silence to the same number, as hits
    (one row of :func:`_bits` each); then batched products of each onset with the next, a
    chunk of sequences at a time. The counts are those of :func:`_transitions`, exact integers
    in float32.
    """
    batch, steps = code.shape[:-1], code.shape[-1]
    n_seq = math.prod(batch)
    flat = code.reshape(n_seq * steps)
    onset = np.flatnonzero(flat)  # a step with a hit has a non-zero code
    bounds = _row_bounds(onset, n_seq, steps)
    n_onsets = np.diff(bounds)
    width = int(n_onsets.max()) if n_seq else 0
    onset_codes = np.zeros(onset.size + 1, dtype=np.int64)
    onset_codes[:-1] = flat[onset]  # and a last entry 0: silence
    counts = np.empty((n_seq, drums, drums), dtype=np.float32)
    chunk = max(1, _CHUNK_BYTES // (4 * max(drums, 1) * max(width, 1)))  # sequences
    for start in range(0, n_seq, chunk):
        stop = min(start + chunk, n_seq)
        slot = bounds[start:stop, None] + np.arange(width)  # index into onset
        slot[slot >= bounds[start + 1 : stop + 1, None]] = onset.size  # past the last onset
        hits = _take_rows(_bits(drums), onset_codes.take(slot))  # (sequences, width, drums)
        np.matmul(np.swapaxes(hits[:, :-1], -1, -2), hits[:, 1:], out=counts[start:stop])
    counts = counts.reshape(*batch, drums, drums)
    return _safe_div(counts, counts.sum(axis=-1, keepdims=True))


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
    _check_positive(steps_per_bar, "steps_per_bar")
    return _syncopation(_per_step(h), steps_per_bar)


def _syncopation(per_step: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """:func:`syncopation` from :func:`_per_step`."""
    off = (np.arange(per_step.shape[-1]) % steps_per_bar) != 0
    return _safe_div((per_step * off).sum(axis=-1), per_step.sum(axis=-1))


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
    _check_positive(steps_per_bar, "steps_per_bar")
    _check_positive(beats_per_bar, "beats_per_bar")
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
    return _metrical_syncopation(_per_step(h), steps_per_bar, beats_per_bar)


def _metrical_syncopation(
    per_step: np.ndarray, steps_per_bar: int = 16, beats_per_bar: int = 4
) -> np.ndarray:
    """:func:`metrical_syncopation` from :func:`_per_step`."""
    w = np.resize(metrical_weights(steps_per_bar, beats_per_bar), per_step.shape[-1])
    return _safe_div((per_step * w).sum(axis=-1), per_step.sum(axis=-1))


def pattern_entropy(seq: np.ndarray) -> np.ndarray:
    """Shannon entropy, in bits, of the distribution of step patterns.

    With ``p(c)`` the fraction of steps whose :func:`step_codes` pattern is ``c`` (which drums hit
    together; silence is a pattern too): ``H = -sum_c p(c) log2 p(c)``. 0 for ``T <= 1``, for
    silence and for any one pattern repeated; at most ``log2(min(T, 2**drums))``.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.

    Returns:
        float64 array (...), bits.
    """
    return _pattern_entropy(step_codes(seq), np.shape(seq)[-1])


@lru_cache(maxsize=64)
def _plogp(steps: int) -> np.ndarray:
    """``p log2 p`` of ``p = c / steps`` for every count ``c`` in ``0..steps`` (0 for ``c = 0``).

    Element by element the same expression as on a whole array of counts, so looking counts up
    here gives the same numbers as computing them (with one logarithm per distinct count).
    Cached (read-only): a window, its phrases and its sections need few distinct lengths.
    """
    counts = np.arange(steps + 1)
    p = counts / steps
    out = np.where(counts > 0, p * np.log2(np.where(counts > 0, p, 1.0)), 0.0)
    out.setflags(write=False)
    return out


def _pattern_entropy(code: np.ndarray, drums: int) -> np.ndarray:
    """:func:`pattern_entropy` from :func:`step_codes` (..., steps) of ``drums`` drums.

    A chunk of sequences at a time where their histograms would be large (each sequence's
    entropy is computed on its own, so chunks change nothing).
    """
    batch, steps = code.shape[:-1], code.shape[-1]
    if steps == 0:
        return np.zeros(batch)
    rows = math.prod(batch)
    width = 2**drums if _small_alphabet(drums, steps) else steps
    chunk = max(1, _CHUNK_BYTES // (8 * width))  # sequences
    if rows <= chunk:
        return _entropy_of_counts(_pattern_counts(code, drums), steps, batch)
    flat = code.reshape(rows, steps)
    out = np.empty(rows)
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        part = flat[start:stop]
        out[start:stop] = _entropy_of_counts(_pattern_counts(part, drums), steps, (stop - start,))
    return out.reshape(batch)


def _small_alphabet(drums: int, steps: int) -> bool:
    """Whether :func:`_pattern_counts` counts every one of the ``2**drums`` patterns."""
    return 2**drums <= 4 * steps


def _pattern_counts(code: np.ndarray, drums: int) -> np.ndarray:
    """How often each step pattern occurs in each sequence, (rows, k) int64 for ``steps > 0``.

    With a small alphabet (:func:`_small_alphabet`) column ``c`` counts pattern ``c``;
    otherwise the columns hold the counts of the distinct patterns in increasing order, then 0.
    """
    steps = code.shape[-1]
    rows = math.prod(code.shape[:-1])
    if _small_alphabet(drums, steps):  # small alphabet: count every pattern directly
        alphabet = 2**drums
        ids = code.reshape(rows, steps) + (np.arange(rows) * alphabet)[:, None]
        return np.bincount(ids.ravel(), minlength=rows * alphabet).reshape(rows, alphabet)
    # large alphabet: sort, then count runs of equal codes
    flat = code.reshape(rows, steps)
    if drums <= 15:  # the same order, sorted faster as int16
        flat = flat.astype(np.int16)
    flat = np.sort(flat, axis=-1)
    start = np.ones_like(flat, dtype=bool)
    start[:, 1:] = flat[:, 1:] != flat[:, :-1]
    run_id = np.cumsum(start, axis=-1) - 1 + (np.arange(rows) * steps)[:, None]
    return np.bincount(run_id.ravel(), minlength=rows * steps).reshape(rows, steps)


def _entropy_of_counts(counts: np.ndarray, steps: int, batch: tuple[int, ...]) -> np.ndarray:
    """Entropy, bits, of each row of :func:`_pattern_counts` over ``steps`` steps."""
    plogp = _plogp(steps).take(counts)
    return np.maximum(-plogp.sum(axis=-1), 0.0).reshape(batch)


def phrase_entropy(seq: np.ndarray, phrase_len: int = 64) -> np.ndarray:
    """Mean :func:`pattern_entropy` over the phrases of a sequence.

    The sequence is cut into consecutive phrases of ``phrase_len`` steps; a trailing partial
    phrase counts as a phrase of its own length. 0 when ``T = 0``.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        phrase_len: steps per phrase (``steps_per_bar * bars_per_phrase``).

    Returns:
        float64 array (...), bits.
    """
    h = as_hits(seq)
    _check_positive(phrase_len, "phrase_len")
    if h.shape[-2] == 0:
        return np.zeros(h.shape[:-2])
    return _phrase_entropy(step_codes(h), h.shape[-1], phrase_len)


def _phrase_entropy(code: np.ndarray, drums: int, phrase_len: int = 64) -> np.ndarray:
    """:func:`phrase_entropy` from :func:`step_codes` (..., steps) of ``drums`` drums."""
    steps = code.shape[-1]
    full = steps // phrase_len
    parts = []
    if full:
        phrases = code[..., : full * phrase_len].reshape(*code.shape[:-1], full, phrase_len)
        parts.append(_pattern_entropy(phrases, drums))
    if steps % phrase_len:
        parts.append(_pattern_entropy(code[..., full * phrase_len :], drums)[..., None])
    if not parts:
        return np.zeros(code.shape[:-1])
    return np.concatenate(parts, axis=-1).mean(axis=-1)


# ----------------------------------------------------------------------------- structure


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard similarity of two hit grids: ``|a and b| / |a or b|``, 1 when both are silent.

    Args:
        a: array (..., steps, drums); a hit is a value > 0.
        b: array of the same shape.

    Returns:
        float64 array (...), in [0, 1].
    """
    a, b = as_hits(a), as_hits(b)
    inter = (a & b).sum(axis=(-1, -2))
    union = (a | b).sum(axis=(-1, -2))
    return np.where(union > 0, _safe_div(inter, union), 1.0)


class PhraseStructure(NamedTuple):
    """Repetition structure of bars and phrases (see :func:`phrase_structure`)."""

    bar_repetition: np.ndarray
    """(...) mean Jaccard similarity of each complete bar with the bar before it, in [0, 1];
    0 with fewer than two complete bars."""
    phrase_repetition: np.ndarray
    """(...) mean Jaccard similarity of each complete phrase with the phrase before it, in
    [0, 1]; 0 with fewer than two complete phrases."""
    fill_ratio: np.ndarray
    """(...) mean over complete phrases of (hits in the phrase's last bar) / (mean hits per bar
    of the phrase), in [0, bars_per_phrase]; a silent phrase gives 0; 0 without phrases."""


def phrase_structure(
    seq: np.ndarray, steps_per_bar: int = 16, bars_per_phrase: int = 4
) -> PhraseStructure:
    """How bars and phrases repeat, and how much the last bar of a phrase stands out (fills).

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.

    Returns:
        PhraseStructure of float64 arrays (definitions on its fields).
    """
    h = as_hits(seq)
    _check_positive(steps_per_bar, "steps_per_bar")
    _check_positive(bars_per_phrase, "bars_per_phrase")
    return _phrase_structure_of_views(h, steps_per_bar, bars_per_phrase)


def _c_like(h: np.ndarray) -> bool:
    """Whether the batch and step axes of ``h`` lie in memory in their order (outer to inner).

    That is the case of C-ordered arrays and of their slices, and then every per-chunk array
    that the structure metrics average (sums over views of bars, phrases or sections) is
    C-ordered too, as are the arrays that :func:`window_metrics` builds instead. Otherwise (a
    transposed layout) numpy lays those arrays out, and so adds up their means, in another
    order: then :func:`window_metrics` sums over the views, to give the same numbers bit for
    bit.
    """
    strides = [abs(st) for st, n in zip(h.strides[:-1], h.shape[:-1], strict=True) if n > 1 and st]
    return all(a >= b for a, b in zip(strides, strides[1:]))


def _chunks(h: np.ndarray, size: int) -> np.ndarray:
    """Complete chunks of ``size`` steps: (..., steps, drums) -> (..., n, size, drums)."""
    n = h.shape[-2] // size
    return h[..., : n * size, :].reshape(*h.shape[:-2], n, size, h.shape[-1])


def _phrase_structure_of_views(
    h: np.ndarray, steps_per_bar: int, bars_per_phrase: int
) -> PhraseStructure:
    """:func:`phrase_structure` by sums over views of the bars and phrases of ``h``.

    Cheap for short sequences; :func:`window_metrics` uses :func:`_phrase_structure`, which
    shares its intermediate results, where the layout of ``h`` allows (see :func:`_c_like`).
    """
    bars = _chunks(h, steps_per_bar)
    phrases = _chunks(h, steps_per_bar * bars_per_phrase)
    reps = []
    for chunks in (bars, phrases):
        if chunks.shape[-3] < 2:
            reps.append(np.zeros(chunks.shape[:-3]))
        else:
            reps.append(jaccard(chunks[..., 1:, :, :], chunks[..., :-1, :, :]).mean(axis=-1))
    n_phr = phrases.shape[-3]
    if n_phr == 0:
        fill = np.zeros(h.shape[:-2])
    else:
        hits_per_bar = _chunks(phrases, steps_per_bar).sum(axis=(-1, -2)) / steps_per_bar
        fill = _safe_div(hits_per_bar[..., -1], hits_per_bar.mean(axis=-1)).mean(axis=-1)
    return PhraseStructure(reps[0], reps[1], fill)


def _consecutive_jaccard(
    h: np.ndarray, per_step: np.ndarray, size: int, code: np.ndarray | None = None
) -> np.ndarray:
    """Mean :func:`jaccard` of each complete chunk of ``size`` steps with the chunk before it.

    0 with fewer than two chunks. From hits ``h`` and :func:`_per_step` of them, or their
    :func:`step_codes` when given; the intersections and unions are exact integer counts (per
    step, then summed).
    """
    n, drums = h.shape[-2] // size, h.shape[-1]
    if n < 2:
        return np.zeros(h.shape[:-2])
    stop = n * size
    if code is not None and _HAS_BITWISE_COUNT:  # bit counts of the step codes
        later, earlier = code[..., size:stop], code[..., : stop - size]
        inter = _sum_last(np.bitwise_count(later & earlier), size, drums)
        union = _sum_last(np.bitwise_count(later | earlier), size, drums)
    else:
        both = _per_step(h[..., size:stop, :] & h[..., : stop - size, :])
        inter = _sum_last(both, size, drums)
        union = per_step[..., size:stop] + per_step[..., : stop - size] - both
        union = _sum_last(union, size, drums)
    return _mean_jaccard(inter, union)


def _mean_jaccard(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the Jaccard similarities ``inter / union`` of chunk pairs.

    From their intersections and unions (exact integers); 1 where both chunks are silent.
    """
    return np.where(union > 0, _safe_div(inter, union), 1.0).mean(axis=-1)


def _phrase_structure(
    h: np.ndarray,
    per_step: np.ndarray,
    bar_dens: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    code: np.ndarray | None = None,
) -> PhraseStructure:
    """:func:`phrase_structure` from hits, their per-step counts and bar densities.

    With their :func:`step_codes` (optional), the Jaccard similarities count bits of the codes.
    """
    bar_rep = _consecutive_jaccard(h, per_step, steps_per_bar, code)
    phrase_rep = _consecutive_jaccard(h, per_step, steps_per_bar * bars_per_phrase, code)
    return PhraseStructure(bar_rep, phrase_rep, _fill_ratio(bar_dens, bars_per_phrase))


def _fill_ratio(bar_dens: np.ndarray, bars_per_phrase: int) -> np.ndarray:
    """``fill_ratio`` of :class:`PhraseStructure` from the bar densities (..., bars)."""
    n_phr = bar_dens.shape[-1] // bars_per_phrase
    if n_phr == 0:
        return np.zeros(bar_dens.shape[:-1])
    hits_per_bar = bar_dens[..., : n_phr * bars_per_phrase].reshape(
        *bar_dens.shape[:-1], n_phr, bars_per_phrase
    )  # (..., phrases, bars)
    return _safe_div(hits_per_bar[..., -1], hits_per_bar.mean(axis=-1)).mean(axis=-1)


def default_sections(steps: int, phrase_len: int) -> list[tuple[int, int]]:
    """One section per two phrases: ``[(0, 2p), (2p, 4p), ...]`` clipped to ``steps``.

    Args:
        steps: length of the window, steps.
        phrase_len: steps per phrase.

    Returns:
        list of ``(start, end)`` step indices, half-open; empty when ``steps == 0``.
    """
    _check_positive(phrase_len, "phrase_len")
    size = 2 * phrase_len
    return [(s, min(s + size, steps)) for s in range(0, steps, size)]


class SectionMetrics(NamedTuple):
    """Per-section summary (see :func:`section_metrics`)."""

    density: np.ndarray
    """(..., sections) mean hits per step of each section."""
    entropy: np.ndarray
    """(..., sections) :func:`pattern_entropy` of each section, bits."""
    contrast: np.ndarray
    """(...) standard deviation of the section densities, hits per step; 0 for one section."""


def section_metrics(
    seq: np.ndarray, sections: list[tuple[int, int]] | None = None, phrase_len: int = 64
) -> SectionMetrics:
    """Density and entropy of each section, and how much the sections differ.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        sections: ``(start, end)`` step indices (half-open) relative to ``seq``, clipped to it;
            empty sections after clipping are dropped. ``None``: :func:`default_sections`.
        phrase_len: steps per phrase, for the default sections.

    Returns:
        SectionMetrics; with no non-empty section, ``density`` and ``entropy`` have length 0 and
        ``contrast`` is 0.
    """
    h = as_hits(seq)
    _check_positive(phrase_len, "phrase_len")
    spans = _spans(h.shape[-2], sections, phrase_len)
    if not spans:
        empty = np.zeros((*h.shape[:-2], 0))
        return SectionMetrics(empty, empty, np.zeros(h.shape[:-2]))
    return _section_metrics(h, step_codes(h), spans)


def section_spans(
    steps: int, sections: list[tuple[int, int]] | None = None, phrase_len: int = 64
) -> list[tuple[int, int]]:
    """The sections that :func:`section_metrics` and :func:`level_metrics` describe, in order.

    Args:
        steps: length of the window, steps.
        sections: ``(start, end)`` step indices (half-open) relative to the window; ``None``:
            :func:`default_sections`.
        phrase_len: steps per phrase, for the default sections.

    Returns:
        the non-empty sections, clipped to ``[0, steps)``: list of ``(start, end)``.

    >>> section_spans(10, [(-2, 3), (3, 3), (8, 20)])
    [(0, 3), (8, 10)]
    """
    _check_positive(phrase_len, "phrase_len")
    return _spans(int(steps), sections, phrase_len)


def _spans(
    steps: int, sections: list[tuple[int, int]] | None, phrase_len: int
) -> list[tuple[int, int]]:
    """The non-empty sections of :func:`section_metrics`, clipped to ``steps``."""
    if sections is None:
        sections = default_sections(steps, phrase_len)
    spans = [(max(0, int(s)), min(steps, int(e))) for s, e in sections]
    return [(s, e) for s, e in spans if e > s]


def _section_metrics(
    h: np.ndarray,
    code: np.ndarray,
    spans: list[tuple[int, int]],
    per_step: np.ndarray | None = None,
) -> SectionMetrics:
    """:func:`section_metrics` of hits ``h`` over the non-empty clipped ``spans`` (at least one).

    From the :func:`step_codes` of ``h`` and, optionally, its :func:`_per_step` counts. Without
    them, or when the layout of ``h`` is not C-like (see :func:`_c_like`), the densities are
    sums over views of ``h``.
    """
    batch, drums = h.shape[:-2], h.shape[-1]
    by_step = per_step is not None and _c_like(h)
    size = spans[0][1] - spans[0][0]
    if all(e - s == size for s, e in spans) and all(
        s == spans[0][0] + k * size for k, (s, _) in enumerate(spans)
    ):  # contiguous equal spans (the default): one reshape, no Python loop
        start = spans[0][0]
        stop = start + len(spans) * size
        if per_step is not None and by_step:
            density = _sum_last(per_step[..., start:stop], size, drums) / size
        else:
            parts = h[..., start:stop, :].reshape(*batch, len(spans), size, drums)
            density = parts.sum(axis=(-1, -2)) / size
        entropy = _pattern_entropy(code[..., start:stop].reshape(*batch, len(spans), size), drums)
    else:
        if per_step is not None and by_step:
            densities = [
                _safe_div(np.ascontiguousarray(per_step[..., s:e]).sum(axis=-1), e - s)
                for s, e in spans
            ]
        else:
            densities = [hit_density(h[..., s:e, :]).avg_hits for s, e in spans]
        density = np.stack(densities, axis=-1)
        entropy = np.stack([_pattern_entropy(code[..., s:e], drums) for s, e in spans], axis=-1)
    return SectionMetrics(density, entropy, density.std(axis=-1))


def _check_positive(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# ----------------------------------------------------------------------------- levels


def window_metrics(
    seq: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    sections: list[tuple[int, int]] | None = None,
    fast_threshold: int = 4,
) -> dict[str, np.ndarray]:
    """Every step, bar, phrase and section metric of one window, as a flat dictionary.

    Keys are ``"level/name"``. ``step/``: hit density, co-occurrence, transitions, IOI statistics
    and step-pattern entropy of the window as a whole; ``bar/``: per-bar densities, dense-bar
    fraction, both syncopations, fast patterns, 4-gram diversity; ``phrase/``: repetition, fills
    and phrase entropy; ``section/``: :func:`section_metrics`. (The dataset returns the nested
    dict of :func:`level_metrics` instead, with the seed's definitions under the seed's names.)

    Args:
        seq: array (steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        sections: section spans, see :func:`section_metrics`.
        fast_threshold: see :func:`fast_patterns`.

    Returns:
        dict of float64 arrays (scalars, or arrays sized by drums, bars or sections).
    """
    return _window_parts(seq, steps_per_bar, bars_per_phrase, sections, fast_threshold).flat


class _WindowParts(NamedTuple):
    """:func:`window_metrics` and the intermediate results that :func:`level_metrics` reuses."""

    flat: dict[str, np.ndarray]
    """The dict of :func:`window_metrics`."""
    h: np.ndarray
    """bool (..., steps, drums) hits."""
    per_step: np.ndarray
    """float32 (..., steps) drums hit on each step (:func:`_per_step`)."""
    codes: np.ndarray
    """int64 (..., steps) :func:`step_codes`."""
    per_bar: np.ndarray
    """float64 (..., bars) hits in each complete bar (exact integers)."""
    spans: list[tuple[int, int]]
    """The non-empty clipped sections."""
    ngram_distinct: np.ndarray
    """float64 (...) distinct 4-grams (:func:`n_grams` ``num_distinct``)."""
    fast_hits: np.ndarray
    """float64 (...) :func:`fast_hits` with the window's ``fast_threshold``."""


def _window_parts(
    seq: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    sections: list[tuple[int, int]] | None = None,
    fast_threshold: int = 4,
) -> _WindowParts:
    """:func:`window_metrics` of ``seq``, with the intermediate results it shares."""
    h = as_hits(seq)
    phrase_len = steps_per_bar * bars_per_phrase
    # The checks of the functions below, in the order in which they would raise.
    _check_positive(fast_threshold, "fast_threshold")
    _check_positive(steps_per_bar, "steps_per_bar")
    _check_positive(bars_per_phrase, "bars_per_phrase")
    _check_positive(phrase_len, "phrase_len")
    steps, drums = h.shape[-2], h.shape[-1]
    spans = _spans(steps, sections, phrase_len)
    _check_drums(drums)
    # Intermediate results shared by the metrics (each computed once).
    weights = np.ones((drums, 2), dtype=np.float32)
    weights[:, 1] = np.exp2(np.arange(drums, dtype=np.float32))  # step codes, exact below 25
    products = _hit_products(h, weights)
    per_step = np.ascontiguousarray(products[..., 0])
    codes = products[..., 1].astype(np.int64) if drums <= 24 else step_codes(h)
    del products
    per_bar = _bar_hits(per_step, steps_per_bar, drums)
    bar_dens = per_bar / steps_per_bar  # _bar_density, keeping the hits per bar
    if _c_like(h):
        struct = _phrase_structure(h, per_step, bar_dens, steps_per_bar, bars_per_phrase, codes)
    else:
        struct = _phrase_structure_of_views(h, steps_per_bar, bars_per_phrase)
    # A histogram of every step pattern of each window, where the alphabet is small.
    counts = _pattern_counts(codes, drums) if steps and _small_alphabet(drums, steps) else None
    # Few drums: transitions and co-occurrence from the codes (small tables, exact counts).
    if drums <= _MAX_PAIR_DRUMS and steps < _F32_EXACT:
        trans = _transitions_of_codes(codes, drums)
        if counts is not None:
            co_occ = _co_occurrence_of_counts(counts, h.shape)
        else:
            co_occ = _co_occurrence(h.astype(np.float32))
    else:
        hf = h.astype(np.float32)
        trans, co_occ = _transitions(hf, per_step), _co_occurrence(hf)
        del hf
    hits = _hit_list(h)
    dens = _hit_density(per_step, _drum_hits(hits, h.shape), steps)
    ioi = _ioi_stats(hits, h.shape)
    fast = _fast_patterns(hits, h.shape, fast_threshold, steps_per_bar)
    n_fast = _fast_hits(hits, h.shape, fast_threshold)
    del hits
    if spans:
        sect = _section_metrics(h, codes, spans, per_step)
    else:
        empty = np.zeros((*h.shape[:-2], 0))
        sect = SectionMetrics(empty, empty, np.zeros(h.shape[:-2]))
    if counts is None:
        entropy = _pattern_entropy(codes, drums)
    else:
        entropy = _entropy_of_counts(counts, steps, h.shape[:-2])
    distinct = _ngram_distinct(codes, drums, 4, counts)
    flat = {
        "step/avg_hits": dens.avg_hits,
        "step/drum_density": dens.drum_density,
        "step/max_hits": dens.max_hits,
        "step/co_occurrence": co_occ,
        "step/transitions": trans,
        "step/ioi_mean": ioi.mean,
        "step/ioi_var": ioi.var,
        "step/ioi_hist": ioi.hist,
        "step/entropy": entropy,
        "bar/density": bar_dens,
        "bar/fraction_dense": _fraction_dense(bar_dens),
        "bar/syncopation": _syncopation(per_step, steps_per_bar),
        "bar/metrical_syncopation": _metrical_syncopation(per_step, steps_per_bar),
        "bar/fast_fraction": fast.fraction,
        "bar/fast_runs_per_bar": fast.runs_per_bar,
        "bar/ngram_diversity": _safe_div(distinct, max(steps - 3, 0)),
        "phrase/bar_repetition": struct.bar_repetition,
        "phrase/phrase_repetition": struct.phrase_repetition,
        "phrase/fill_ratio": struct.fill_ratio,
        "phrase/entropy": _phrase_entropy(codes, drums, phrase_len),
        "section/density": sect.density,
        "section/entropy": sect.entropy,
        "section/contrast": sect.contrast,
    }
    return _WindowParts(flat, h, per_step, codes, per_bar, spans, distinct, n_fast)


def song_metrics(
    seq: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    fast_threshold: int = 4,
) -> dict[str, np.ndarray]:
    """Song-level metrics of a whole sequence, keys ``"song/name"``.

    The scalar summaries of :func:`window_metrics` computed over the whole sequence (default
    sections), under the names the seed uses for the song level: ``song/step_entropy`` (the
    step-pattern entropy of the whole sequence), ``song/phrase_entropy``,
    ``song/ngram_diversity``, plus densities, syncopations, structure, IOI means and the
    sequence length in steps and bars. For any sequence, ``song_metrics(seq)["song/x"]`` equals
    the window metric of the same name over the full-length window.

    Args:
        seq: array (steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        fast_threshold: see :func:`fast_patterns`.

    Returns:
        dict of float64 arrays.
    """
    w = window_metrics(seq, steps_per_bar, bars_per_phrase, None, fast_threshold)
    steps = np.shape(seq)[-2]
    return {
        "song/length_steps": np.float64(steps),
        "song/length_bars": np.float64(steps / steps_per_bar),
        "song/avg_hits": w["step/avg_hits"],
        "song/drum_density": w["step/drum_density"],
        "song/max_hits": w["step/max_hits"],
        "song/ioi_mean": w["step/ioi_mean"],
        "song/fraction_dense_bars": w["bar/fraction_dense"],
        "song/syncopation": w["bar/syncopation"],
        "song/metrical_syncopation": w["bar/metrical_syncopation"],
        "song/fast_runs_per_bar": w["bar/fast_runs_per_bar"],
        "song/bar_repetition": w["phrase/bar_repetition"],
        "song/phrase_repetition": w["phrase/phrase_repetition"],
        "song/fill_ratio": w["phrase/fill_ratio"],
        "song/section_contrast": w["section/contrast"],
        "song/step_entropy": w["step/entropy"],
        "song/phrase_entropy": w["phrase/entropy"],
        "song/ngram_diversity": w["bar/ngram_diversity"],
    }


# ----------------------------------------------------------------------------- the seed's names
# The seed defines some metrics otherwise than the project did first. Both stay: the project's
# under the names above (the env's rewards and the evaluation use them), the seed's below under
# names of their own, and the dataset's metrics dict carries the seed's definitions under the
# seed's names (see level_metrics).


def aggregate(seq: np.ndarray, step_size: int) -> np.ndarray:
    """The seed's ``_aggregate``: the mean of each complete unit of ``step_size`` steps.

    ``out[..., u, d] = mean(seq[..., u * step_size : (u + 1) * step_size, d])`` for the
    ``num_units = steps // step_size`` complete units; a trailing partial unit is left out. It
    averages the *values* (velocities, or 0/1 hits), as the seed's formula does: for binary hits
    that is the fraction of the unit's steps on which each drum hits. This is the dataset's
    ``"bar"`` (``step_size = steps_per_bar``) and ``"phrase"`` (``phrase_len``) view.

    Args:
        seq: array (..., steps, drums).
        step_size: steps per unit, >= 1.

    Returns:
        float64 array (..., steps // step_size, drums); ``(..., 0, drums)`` when the sequence is
        shorter than one unit.

    >>> aggregate(np.array([[1, 0], [0, 0], [1, 1], [1, 0], [1, 1]]), 2)
    array([[0.5, 0. ],
           [1. , 0.5]])
    """
    seq = np.asarray(seq)
    if seq.ndim < 2:
        raise ValueError(f"seq must have shape (..., steps, drums), got shape {seq.shape}")
    _check_positive(step_size, "step_size")
    units = _chunks(seq, step_size)  # (..., n, step_size, drums)
    if step_size == 1:
        return units[..., 0, :].astype(np.float64)
    return units.sum(axis=-2, dtype=np.float64) / step_size


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
    return _co_occurrence_fraction(_per_step(h))


def _co_occurrence_fraction(per_step: np.ndarray) -> np.ndarray:
    """:func:`co_occurrence_fraction` from :func:`_per_step`."""
    return _safe_div((per_step > 1).sum(axis=-1), per_step.shape[-1])


def step_transitions(seq: np.ndarray) -> np.ndarray:
    """The seed's ``_transitions``: drum-to-drum probabilities between consecutive steps.

    ``N[i, j] = #{t in 0 .. T-2 : h[t, i] and h[t + 1, j]}`` counts drum ``i`` on a step and
    drum ``j`` on the next step; ``P[i, j] = N[i, j] / sum_k N[i, k]`` is the conditional
    probability that, of the drums hit on the step after a hit of ``i``, one is ``j`` (each
    row a distribution). A row is all 0 when ``i`` is never followed by a hit on the next
    step. (The project's :func:`transitions` goes from each onset to the next onset,
    skipping silent steps.)

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.

    Returns:
        float64 array (..., drums, drums), rows summing to 1 or 0.

    >>> step_transitions(np.array([[1, 0], [0, 1], [0, 0], [1, 0]]))
    array([[0., 1.],
           [0., 0.]])
    """
    h = as_hits(seq)
    return _step_transitions(h.astype(np.float32))


def _step_transitions(hf: np.ndarray) -> np.ndarray:
    """:func:`step_transitions` of hits as float32."""
    if hf.shape[-2] < _F32_EXACT:  # exact: integer counts < 2**24
        counts = np.matmul(np.swapaxes(hf[..., :-1, :], -1, -2), hf[..., 1:, :])
    else:
        counts = np.einsum("...ti,...tj->...ij", hf[..., :-1, :], hf[..., 1:, :], dtype=np.float64)
    return _safe_div(counts, counts.sum(axis=-1, keepdims=True))


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
    _check_positive(steps_per_bar, "steps_per_bar")
    limit = h.shape[-1] / 2 if threshold is None else float(threshold)
    return _fraction_above(bar_density(h, steps_per_bar), limit)


def _fraction_above(density: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`fraction_bars_above` from :func:`bar_density`."""
    return _safe_div((density > threshold).sum(axis=-1), density.shape[-1])


def n_gram_counter(seq: np.ndarray, n: int = 4) -> Counter[tuple[int, ...]]:
    """The seed's ``_n_grams``: a ``Counter`` of the n-step drum patterns of one sequence.

    The n-gram at step ``t`` is the ``n x D`` block ``h[t : t + n]`` flattened step by step
    (``(h[t, 0], ..., h[t, D-1], h[t+1, 0], ...)``, each 0 or 1); there are
    ``max(T - n + 1, 0)`` of them. ``len(counter)`` is the number of distinct n-grams (the
    seed's song ``ngram_diversity``, equal to ``n_grams(seq, n).num_distinct``).

    Args:
        seq: array (steps, drums), one sequence; a hit is a value > 0.
        n: n-gram length in steps.

    Returns:
        ``Counter`` mapping each n-gram (a tuple of ``n * D`` ints) to its count; empty when
        ``T < n``.

    Raises:
        ValueError: if ``seq`` is not 2-D (a Counter has no batch axis) or ``n < 1``.

    >>> n_gram_counter(np.array([[1, 0], [0, 1], [1, 0], [0, 1]]), 2).most_common(1)
    [((1, 0, 0, 1), 2)]
    """
    h = as_hits(seq)
    if h.ndim != 2:
        raise ValueError(f"seq must have shape (steps, drums) for a Counter, got {h.shape}")
    _check_positive(n, "n")
    count = max(h.shape[0] - n + 1, 0)
    if count == 0:
        return Counter()
    windows = np.lib.stride_tricks.sliding_window_view(h.astype(np.uint8), n, axis=0)
    rows = np.swapaxes(windows, -1, -2).reshape(count, n * h.shape[1])  # (count, n * D)
    return Counter(map(tuple, rows.tolist()))


def phrase_hits_per_bar(
    seq: np.ndarray, steps_per_bar: int = 16, bars_per_phrase: int = 4
) -> np.ndarray:
    """The seed's ``_phrase_structure``: the number of hits in each bar of each phrase.

    ``out[..., p, b]`` = hits (all drums) in bar ``b`` of complete phrase ``p``; a trailing
    partial phrase is left out, so a sequence shorter than a phrase gives an empty array (the
    seed's "short sequences handled safely"). (The project's :func:`phrase_structure` measures
    repetition and fills.)

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.

    Returns:
        float64 array (..., steps // (steps_per_bar * bars_per_phrase), bars_per_phrase), hits
        (integers), each in ``[0, steps_per_bar * drums]``.

    >>> phrase_hits_per_bar(np.ones((9, 2)), 2, 2)
    array([[4., 4.],
           [4., 4.]])
    """
    h = as_hits(seq)
    _check_positive(steps_per_bar, "steps_per_bar")
    _check_positive(bars_per_phrase, "bars_per_phrase")
    per_bar = _chunks(h, steps_per_bar).sum(axis=(-1, -2)).astype(np.float64)
    return _phrase_hits(per_bar, bars_per_phrase)


def _phrase_hits(per_bar: np.ndarray, bars_per_phrase: int) -> np.ndarray:
    """:func:`phrase_hits_per_bar` from the hits of each complete bar (..., bars)."""
    n = per_bar.shape[-1] // bars_per_phrase
    return per_bar[..., : n * bars_per_phrase].reshape(*per_bar.shape[:-1], n, bars_per_phrase)


# ----------------------------------------------------------------------------- swing, polyrhythm


@lru_cache(maxsize=64)
def _swing_positions(steps: int, steps_per_bar: int, beats_per_bar: int) -> np.ndarray:
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
    _check_positive(steps_per_bar, "steps_per_bar")
    _check_positive(beats_per_bar, "beats_per_bar")
    t = _swing_positions(h.shape[-2], steps_per_bar, beats_per_bar)
    on, late = h[..., t, :], h[..., t + 1, :]
    delayed = (late & ~on).sum(axis=(-1, -2))
    straight = (on & ~late).sum(axis=(-1, -2))
    return _swing_of_counts(delayed, straight)


def _swing_of_counts(delayed: np.ndarray, straight: np.ndarray) -> np.ndarray:
    """:func:`swing` from the counts of delayed and straight off-beat pairs."""
    return _safe_div(delayed, delayed + straight)


def drum_periods(seq: np.ndarray, max_lag: int = 16, min_recurrence: float = 0.75) -> np.ndarray:
    """The period of each drum: the shortest lag at which its hits mostly recur.

    The recurrence of drum ``d`` at lag ``k`` is the share of its hits that have a hit of ``d``
    ``k`` steps later, among those whose step ``t + k`` lies in the sequence:
    ``R_d(k) = #{t < T - k : h[t, d] and h[t + k, d]} / #{t < T - k : h[t, d]}`` (0 when the
    denominator is 0). The period is the smallest ``k`` in ``1 .. min(max_lag, T - 1)`` with
    ``R_d(k) >= min_recurrence``, and 0 (no period) when there is none. Quarter-note kicks
    have period 4 on a 16th grid, 8th-note hats 2, a backbeat snare 8, a 3-step (dotted 8th)
    figure 3; a drum with fewer than two hits has none.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        max_lag: the longest period looked for, steps (one bar: ``steps_per_bar``).
        min_recurrence: share of recurring hits, in (0, 1], from which a lag is a period.

    Returns:
        float64 array (..., drums), periods in steps: 0 or an integer in ``[1, max_lag]``.

    >>> drum_periods(np.tile([[1, 1, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]], (4, 1)), 8)
    array([4., 2., 4.])
    """
    h = as_hits(seq)
    _check_positive(max_lag, "max_lag")
    if not 0 < min_recurrence <= 1:
        raise ValueError(f"min_recurrence must be in (0, 1], got {min_recurrence!r}")
    steps = h.shape[-2]
    lags = min(max_lag, steps - 1)
    periods = np.zeros(h.shape[:-2] + h.shape[-1:])
    if lags < 1:
        return periods
    recur, total = _recurrences(h, lags)  # (..., lags, drums), (..., drums)
    tail = np.cumsum(h[..., : steps - lags - 1 : -1, :], axis=-2)  # hits in the last k steps
    return _periods_of_counts(recur, total[..., None, :] - tail, min_recurrence)


def _periods_of_counts(recur: np.ndarray, starts: np.ndarray, min_recurrence: float) -> np.ndarray:
    """:func:`drum_periods` from the counts of its recurrence rates.

    Args:
        recur: (..., lags, drums) ``#{t < T - k : h[t, d] and h[t + k, d]}``, lag ``k`` at index
            ``k - 1``.
        starts: (..., lags, drums) ``#{t < T - k : h[t, d]}``.
        min_recurrence: see :func:`drum_periods`.
    """
    rate = _safe_div(recur, starts)  # R_d(k), lag k at index k - 1
    ok = rate >= min_recurrence
    return np.where(ok.any(axis=-2), ok.argmax(axis=-2) + 1.0, 0.0)


def _recurrences(h: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """``#{t : h[t, d] and h[t + k, d]}`` for ``k = 1 .. lags``, and the hits of each drum.

    Each drum's hits are packed as bits into 64-bit words along time; a lag is a shift of the
    words and the count a bit count (64 steps per operation). Without ``np.bitwise_count``
    (numpy < 2.0) a loop over the lags on the hits themselves.

    Returns:
        int64 arrays (..., lags, drums) and (..., drums).
    """
    batch, steps, drums = h.shape[:-2], h.shape[-2], h.shape[-1]
    if not _HAS_BITWISE_COUNT:
        recur = np.stack(
            [(h[..., :-k, :] & h[..., k:, :]).sum(axis=-2) for k in range(1, lags + 1)], axis=-2
        )
        return recur.astype(np.int64), h.sum(axis=-2, dtype=np.int64)
    rows = math.prod(batch) * drums
    n_words = -(-steps // 64)
    packed = np.zeros((rows, (n_words + lags // 64 + 2) * 8), dtype=np.uint8)
    bits = np.packbits(_time_last(h).reshape(rows, steps), axis=-1, bitorder="little")
    packed[:, : bits.shape[1]] = bits
    words = packed.view("<u8")  # bit t % 64 of word t // 64 is step t; zero words after
    base = words[:, :n_words]
    total = np.bitwise_count(base).sum(axis=-1, dtype=np.int64)
    recur = np.empty((rows, lags), dtype=np.int64)
    for k in range(1, lags + 1):
        q, r = divmod(k, 64)
        later = words[:, q : q + n_words] >> np.uint64(r)  # bit t: step t + k
        if r:
            later |= words[:, q + 1 : q + 1 + n_words] << np.uint64(64 - r)
        recur[:, k - 1] = np.bitwise_count(base & later).sum(axis=-1, dtype=np.int64)
    recur = recur.reshape(*batch, drums, lags)
    return np.swapaxes(recur, -1, -2), total.reshape(*batch, drums)


def polyrhythm(seq: np.ndarray, max_lag: int = 16, min_recurrence: float = 0.75) -> np.ndarray:
    """Polyrhythm: the share of pairs of periodic drums whose periods cross.

    With the :func:`drum_periods` ``p_d`` of each drum, over the pairs ``i < j`` of drums that
    both have a period (``p > 0``), a pair *crosses* when neither period divides the other
    (3 against 4, 6 against 4: a hemiola); nested periods (2 and 4, 4 and 16) form one metre.
    ``polyrhythm = crossing pairs / pairs``; 0 with fewer than two periodic drums.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        max_lag: see :func:`drum_periods`.
        min_recurrence: see :func:`drum_periods`.

    Returns:
        float64 array (...), in [0, 1].

    >>> three_four = np.zeros((24, 2)); three_four[::3, 0] = 1; three_four[::4, 1] = 1
    >>> float(polyrhythm(three_four)), float(polyrhythm(np.ones((24, 2))))
    (1.0, 0.0)
    """
    return _polyrhythm_of_periods(drum_periods(seq, max_lag, min_recurrence))


def _polyrhythm_of_periods(periods: np.ndarray) -> np.ndarray:
    """:func:`polyrhythm` from the :func:`drum_periods` (..., drums)."""
    p = periods.astype(np.int64)
    a, b = p[..., :, None], p[..., None, :]
    both = (a > 0) & (b > 0)
    upper = np.triu(np.ones((p.shape[-1],) * 2, dtype=bool), k=1)
    pairs = both & upper
    safe_a, safe_b = np.maximum(a, 1), np.maximum(b, 1)
    cross = pairs & (safe_a % safe_b != 0) & (safe_b % safe_a != 0)
    return _safe_div(cross.sum(axis=(-1, -2)), pairs.sum(axis=(-1, -2)))


# ----------------------------------------------------------------------------- velocity
# The dynamics of a performance. A hit's value is its velocity (MIDI velocity / 127 in the
# Groove MIDI data); these functions, unlike every metric above, read the values themselves,
# exactly as they are (no quantisation), while which steps are hits stays ``value > 0``. Binary
# input has every hit at velocity 1; all-zero input gives 0 everywhere.


class VelocityStats(NamedTuple):
    """Velocity of each drum's hits (see :func:`velocity_stats`)."""

    mean: np.ndarray
    """(..., drums) mean velocity of the drum's hits, in [0, 1]; 0 for a drum without hits."""
    spread: np.ndarray
    """(..., drums) population standard deviation of the velocity of the drum's hits, in
    [0, 0.5]; 0 for a drum without hits (and, exactly, for one hit)."""


def as_velocities(seq: np.ndarray) -> np.ndarray:
    """Velocities of a sequence as float64, checked.

    Args:
        seq: array (..., steps, drums), values in [0, 1] (a hit is a value > 0); booleans read
            as 0 and 1.

    Returns:
        float64 C-ordered array (..., steps, drums), the same values (a new array unless
        ``seq`` is such an array already).

    Raises:
        ValueError: if ``seq`` has fewer than two axes, is not a real numeric array, or holds a
            value outside [0, 1] (NaN included).
    """
    v = np.asarray(seq)
    if v.ndim < 2:
        raise ValueError(f"seq must have shape (..., steps, drums), got shape {v.shape}")
    if v.dtype.kind not in "biuf":
        raise ValueError(f"seq must be a real numeric or boolean array, got dtype {v.dtype}")
    # C order: numpy sums along an axis in an order that follows the memory layout, so one
    # layout for all makes equal values give equal sums
    v = np.ascontiguousarray(v, dtype=np.float64)
    if v.size:
        lo, hi = v.min(), v.max()
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            raise ValueError(
                f"seq must hold velocities in [0, 1] (a hit is a value > 0), got values in "
                f"[{lo}, {hi}]"
            )
    return v


def velocity_stats(seq: np.ndarray) -> VelocityStats:
    """Mean and spread of each drum's hit velocities.

    For drum ``d`` with hits ``H_d = {t : v[t, d] > 0}``, ``n_d = |H_d|``:
    ``mean[d] = sum_{t in H_d} v[t, d] / n_d`` and ``spread[d] = sqrt(sum_{t in H_d} (v[t, d] -
    mean[d])**2 / n_d)`` (population standard deviation); both 0 when ``n_d = 0``. Steps without
    a hit of ``d`` do not count (a rest is not a soft hit). For the same statistics of each
    complete bar, see :func:`bar_velocity_stats`.

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.

    Returns:
        VelocityStats of float64 arrays (..., drums).

    Raises:
        ValueError: see :func:`as_velocities`.

    >>> s = velocity_stats(np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 0.25]]))
    >>> s.mean.tolist(), s.spread.tolist()
    ([0.75, 0.25], [0.25, 0.0])
    """
    v = as_velocities(seq)
    return _velocity_stats(v, v > 0)


def _velocity_stats(v: np.ndarray, h: np.ndarray) -> VelocityStats:
    """:func:`velocity_stats` of checked velocities ``v`` and their hits ``h`` (two passes).

    Time last and contiguous: sums along the last axis are several times faster than along
    the steps of ``(..., steps, drums)`` (one order of summation either way, so equal inputs
    give equal numbers).
    """
    vt, ht = _time_last(v), _time_last(h)
    n = np.maximum(np.count_nonzero(ht, axis=-1), 1)  # a sum over no hit is 0: 0 / 1
    mean = vt.sum(axis=-1) / n  # rests are 0: the sum is over the hits
    dev = np.where(ht, vt - mean[..., None], 0.0)
    dev *= dev
    return VelocityStats(mean, np.sqrt(dev.sum(axis=-1) / n))


def bar_velocity_stats(seq: np.ndarray, steps_per_bar: int = 16) -> VelocityStats:
    """:func:`velocity_stats` of each complete bar: ``(..., bars, drums)``.

    Bar ``b`` is steps ``[b * steps_per_bar, (b + 1) * steps_per_bar)``; a trailing partial bar
    is left out (as in :func:`bar_density`).

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
        steps_per_bar: steps in one bar.

    Returns:
        VelocityStats of float64 arrays (..., bars, drums); ``bars = steps // steps_per_bar``.

    Raises:
        ValueError: see :func:`as_velocities`, and a ``steps_per_bar`` that is not a positive
            integer.
    """
    v = as_velocities(seq)
    _check_positive(steps_per_bar, "steps_per_bar")
    bars = _chunks(v, steps_per_bar)
    return _velocity_stats(bars, bars > 0)


def _fold_bar(x: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """Sums over the steps of each position in the bar: (..., steps, drums) -> (..., spb, drums).

    Position ``p`` gathers steps ``t`` with ``t mod steps_per_bar = p``, a trailing partial bar
    included (booleans are counted, as int64).
    """
    full = x.shape[-2] // steps_per_bar
    out = _chunks(x, steps_per_bar).sum(axis=-3)
    rest = x.shape[-2] - full * steps_per_bar
    if rest:
        out[..., :rest, :] += x[..., full * steps_per_bar :, :]
    return out


def accent_pattern(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """Accent pattern: the mean velocity of each drum's hits at each position in the bar.

    Position ``p`` of a bar gathers every step ``t`` with ``t mod steps_per_bar = p``, a trailing
    partial bar included (as for :func:`syncopation` and :func:`metrical_syncopation`, which
    also read positions). With ``H_{p,d} = {t : t mod steps_per_bar = p, v[t, d] > 0}``:
    ``A[p, d] = sum_{t in H_{p,d}} v[t, d] / |H_{p,d}|``, and 0 where drum ``d`` never hits at
    position ``p`` (a rest is not a soft hit). A hi-hat accented on the beat reads e.g.
    ``A[0::4, hat] > A[2::4, hat]`` on a 16-step bar.

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (..., steps_per_bar, drums), in [0, 1].

    Raises:
        ValueError: see :func:`as_velocities`, and a ``steps_per_bar`` that is not a positive
            integer.

    >>> hat = np.array([[1.0], [0.5], [0.8], [0.0]])  # two bars of two steps
    >>> accent_pattern(hat, 2).ravel().tolist()
    [0.9, 0.5]
    """
    v = as_velocities(seq)
    _check_positive(steps_per_bar, "steps_per_bar")
    return _fold_bar(v, steps_per_bar) / np.maximum(_fold_bar(v > 0, steps_per_bar), 1)


def accent_contrast(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """How much each drum's velocity depends on the position in the bar.

    The between-position standard deviation of the drum's hit velocities: with ``n_{p,d}``
    hits of drum ``d`` at position ``p`` (as in :func:`accent_pattern`, whose ``A[p, d]`` is
    their mean), ``n_d = sum_p n_{p,d}`` and the drum's mean velocity ``m_d``
    (:func:`velocity_stats`): ``C[d] = sqrt(sum_p n_{p,d} (A[p, d] - m_d)**2 / n_d)``, and 0 for a
    drum without hits. By the law of total variance ``C[d]**2 + (mean within-position
    variance) = spread[d]**2``, so ``0 <= C[d] <= spread[d] <= 0.5``: 0 when every position's
    mean velocity is the drum's mean (constant velocity, or no positional accents), equal to
    the spread when the position determines the velocity (every position played once, or a
    strict accent pattern).

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (..., drums), in [0, 0.5].

    Raises:
        ValueError: see :func:`accent_pattern`.
    """
    v = as_velocities(seq)
    _check_positive(steps_per_bar, "steps_per_bar")
    h = v > 0
    return _accent_contrast(*_position_parts(v, h, steps_per_bar))


def _position_parts(
    v: np.ndarray, h: np.ndarray, steps_per_bar: int
) -> tuple[np.ndarray, np.ndarray]:
    """Velocity sums and hit counts of each position in the bar, (..., spb, drums) each."""
    return _fold_bar(v, steps_per_bar), _fold_bar(h, steps_per_bar)


def _accent_contrast(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """:func:`accent_contrast` from :func:`_position_parts`."""
    n = np.maximum(count.sum(axis=-2), 1)  # sums over no hit are 0: 0 / 1
    mean = total.sum(axis=-2) / n
    dev = total / np.maximum(count, 1) - mean[..., None, :]  # positions without hits weigh 0
    return np.sqrt((count * dev * dev).sum(axis=-2) / n)


def bar_dynamic_range(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """Dynamic range of each complete bar: its loudest hit's velocity minus its softest's.

    Over the hits of every drum in bar ``b`` (steps ``[b * steps_per_bar, (b + 1) *
    steps_per_bar)``): ``max v - min v`` over ``{(t, d) in bar b : v[t, d] > 0}``, and 0 for a bar
    with fewer than two hits. A trailing partial bar is left out (as in :func:`bar_density`).

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (..., bars), in [0, 1]; shape (..., 0) without a complete bar.

    Raises:
        ValueError: see :func:`accent_pattern`.

    >>> bar_dynamic_range(np.array([[1.0, 0.25], [0.0, 0.0], [0.5, 0.0], [0.0, 0.0]]), 2)
    array([0.75, 0.  ])
    """
    v = as_velocities(seq)
    _check_positive(steps_per_bar, "steps_per_bar")
    return _bar_dynamic_range(v, steps_per_bar)


def _bar_dynamic_range(v: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """:func:`bar_dynamic_range` of checked velocities."""
    spans, ranged = _bar_spans(v, steps_per_bar)
    return np.where(ranged, spans, 0.0)


def _bar_spans(v: np.ndarray, steps_per_bar: int) -> tuple[np.ndarray, np.ndarray]:
    """Loudest minus softest hit of each complete bar, and whether it has two hits or more.

    Returns:
        float64 (..., bars), meaningless where the bar has fewer than two hits; bool (..., bars).
    """
    bars = _chunks(v, steps_per_bar)
    bars = bars.reshape(*bars.shape[:-2], bars.shape[-2] * bars.shape[-1])
    h = bars > 0
    spans = bars.max(axis=-1, initial=0.0) - np.where(h, bars, 1.0).min(axis=-1, initial=1.0)
    return spans, np.count_nonzero(h, axis=-1) >= 2


def mean_dynamic_range(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """Mean :func:`bar_dynamic_range` over the complete bars that have at least two hits.

    Bars with fewer than two hits (no range to speak of) are left out, so that sparse playing
    does not read as flat dynamics; 0 when no complete bar has two hits.

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (...), in [0, 1].

    Raises:
        ValueError: see :func:`accent_pattern`.
    """
    v = as_velocities(seq)
    _check_positive(steps_per_bar, "steps_per_bar")
    return _mean_dynamic_range(v, steps_per_bar)


def _mean_dynamic_range(v: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """:func:`mean_dynamic_range` of checked velocities."""
    return _mean_of_spans(*_bar_spans(v, steps_per_bar))


def _mean_of_spans(spans: np.ndarray, ranged: np.ndarray) -> np.ndarray:
    """:func:`mean_dynamic_range` from :func:`_bar_spans`."""
    return np.where(ranged, spans, 0.0).sum(axis=-1) / np.maximum(ranged.sum(axis=-1), 1)


def velocity_feature_names(drums: int) -> tuple[str, ...]:
    """Names of the ``3 * drums + 1`` entries of :func:`velocity_features`, in order.

    Args:
        drums: number of drums.

    Returns:
        ``("velocity_mean[0]", ..., "velocity_spread[0]", ..., "accent_contrast[0]", ...,
        "mean_dynamic_range")``.
    """
    if isinstance(drums, bool) or not isinstance(drums, (int, np.integer)) or drums < 0:
        raise ValueError(f"drums must be a non-negative integer, got {drums!r}")
    parts = ("velocity_mean", "velocity_spread", "accent_contrast")
    return (*(f"{p}[{d}]" for p in parts for d in range(drums)), "mean_dynamic_range")


def velocity_features(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    """One fixed-length vector of a unit's dynamics, for bar, phrase and song level rewards.

    ``F = 3 * drums + 1`` entries (names: :func:`velocity_feature_names`), each in [0, 1]:

    * ``[0, D)``: ``velocity_mean`` of each drum (:func:`velocity_stats`, 0 without hits);
    * ``[D, 2D)``: ``velocity_spread`` of each drum (population std over its hits, <= 0.5);
    * ``[2D, 3D)``: ``accent_contrast`` of each drum (:func:`accent_contrast`, <= its spread);
    * ``[3D]``: ``mean_dynamic_range`` (:func:`mean_dynamic_range`: mean over the complete
      bars with two hits or more of the loudest minus the softest hit).

    Meant for a window of a whole number of bars (one bar, a phrase, a song); a trailing partial
    bar counts for the first three parts, not the last. Values are read exactly, so two
    sequences with equal values have equal features; all-zero input gives all zeros; binary
    input (every hit 1.0) gives mean 1 for each drum that hits and 0 elsewhere. Vectorised over
    the leading axes, no Python loop (for one sequence of 9 drums some 40 microseconds for a
    bar, 70 for 512 steps).

    Args:
        seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (..., 3 * drums + 1).

    Raises:
        ValueError: see :func:`accent_pattern`.

    >>> f = velocity_features(np.array([[1.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.5, 0.0]]), 2)
    >>> f.tolist()  # kick at 1 on the beat, 0.5 off it: all its spread is accent
    [0.75, 0.0, 0.25, 0.0, 0.25, 0.0, 0.5]
    """
    v = as_velocities(seq)
    _check_positive(steps_per_bar, "steps_per_bar")
    h = v > 0
    stats = _velocity_stats(v, h)
    contrast = _accent_contrast(*_position_parts(v, h, steps_per_bar))
    dyn = _mean_of_spans(*_bar_spans(v, steps_per_bar))
    return np.concatenate([stats.mean, stats.spread, contrast, dyn[..., None]], axis=-1)


# ----------------------------------------------------------------------------- the metrics dict


def _grid(steps_per_bar: int, bars_per_phrase: int, fast_threshold: int) -> MetricGrid:
    return MetricGrid(int(steps_per_bar), int(bars_per_phrase), int(fast_threshold))


def _registered(specs: Mapping[str, MetricSpec] | None, level: str) -> dict[str, MetricSpec]:
    """The metrics of ``level`` among ``specs`` (``None``: the registry now)."""
    if specs is None:
        return registered_metrics(level)
    return {k: s for k, s in specs.items() if level in s.levels}


def section_level_metrics(
    seq: np.ndarray,
    sections: list[tuple[int, int]] | None = None,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    specs: Mapping[str, MetricSpec] | None = None,
) -> dict[str, np.ndarray]:
    """The seed's ``_section_metrics``: the metrics of each section, stacked.

    Sections as in :func:`section_metrics` (clipped to ``seq``, empty ones dropped; ``None``:
    one per two phrases). For each section ``[start, end)``, of the section's steps: the seed's
    ``avg_hits``, ``drum_density``, ``max_hits`` (:func:`hit_density`) and ``dense_frac``
    (:func:`fraction_bars_above` with its default threshold ``D / 2``, bars counted from the
    section's start); the project's ``step_entropy`` (:func:`pattern_entropy`); then the
    registered metrics of level ``"section"``. Section ``i`` is ``section_spans(...)[i]``
    (:func:`section_spans`).

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        sections: ``(start, end)`` step indices, half-open, relative to ``seq``.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase (for the default sections).
        specs: registered metrics to add (:func:`dataset.registry.registered_metrics`);
            ``None`` for the registry now, ``{}`` for none.

    Returns:
        dict name -> float64 array ``(..., S, ...)``: the section axis ``S`` right after the
        batch axes (``drum_density`` is ``(..., S, D)``); ``S = 0`` when no section is left.
    """
    parts = _window_parts(seq, steps_per_bar, bars_per_phrase, sections)
    grid = _grid(steps_per_bar, bars_per_phrase, 4)
    listed = _section_list(seq, parts, steps_per_bar, _registered(specs, "section"), grid)
    batch, drums = parts.h.shape[:-2], parts.h.shape[-1]
    if not listed:
        shapes = {"drum_density": (drums,)}
        keys = [*BUILTIN_KEYS["section"], *_registered(specs, "section")]
        return {k: np.zeros((*batch, 0, *shapes.get(k, ()))) for k in keys}
    axis = len(batch)
    return {k: np.stack([d[k] for d in listed], axis=axis) for k in listed[0]}


def _section_list(
    seq: np.ndarray,
    parts: _WindowParts,
    steps_per_bar: int,
    specs: Mapping[str, MetricSpec],
    grid: MetricGrid,
) -> list[dict[str, np.ndarray]]:
    """One dict per section of :func:`section_level_metrics`, from the window's parts.

    ``avg_hits`` and ``step_entropy`` are the window's ``section/density`` and
    ``section/entropy`` (:func:`section_metrics`, the same definitions); contiguous sections of
    equal length (the default ones) are computed with one reshape, others one by one.
    """
    h, per_step, spans = parts.h, parts.per_step, parts.spans
    batch, drums = h.shape[:-2], h.shape[-1]
    n = len(spans)
    if not n:
        return []
    size = spans[0][1] - spans[0][0]
    start, stop = spans[0][0], spans[0][0] + n * size
    if all(e - s == size for s, e in spans) and all(
        s == start + k * size for k, (s, _) in enumerate(spans)
    ):  # contiguous equal spans: one reshape, no Python loop
        steps = per_step[..., start:stop].reshape(*batch, n, size)
        per_drum = h[..., start:stop, :].reshape(*batch, n, size, drums).sum(axis=-2)
        drum_density = _safe_div(per_drum, size)  # (..., n, drums)
        max_hits = steps.max(axis=-1).astype(np.float64)
        dense = _fraction_above(_bar_density(steps, steps_per_bar, drums), drums / 2)
    else:
        drum_density = np.stack(
            [_safe_div(h[..., s:e, :].sum(axis=-2), e - s) for s, e in spans], axis=-2
        )
        max_hits = np.stack([per_step[..., s:e].max(axis=-1) for s, e in spans], -1)
        max_hits = max_hits.astype(np.float64)
        dense = np.stack(
            [
                _fraction_above(_bar_density(per_step[..., s:e], steps_per_bar, drums), drums / 2)
                for s, e in spans
            ],
            axis=-1,
        )
    flat = parts.flat
    out = []
    for i, (s, e) in enumerate(spans):
        section = {
            "avg_hits": flat["section/density"][..., i],
            "drum_density": drum_density[..., i, :],
            "max_hits": max_hits[..., i],
            "dense_frac": dense[..., i],
            "step_entropy": flat["section/entropy"][..., i],
        }
        for name, spec in specs.items():
            section[name] = spec(np.asarray(seq)[..., s:e, :], grid)
        out.append(section)
    return out


def level_metrics(
    seq: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    sections: list[tuple[int, int]] | None = None,
    fast_threshold: int = 4,
    specs: Mapping[str, MetricSpec] | None = None,
) -> dict[str, Any]:
    """The window levels of the dataset's metrics dict: ``{"step", "bar", "phrase", "section"}``.

    The seed's definitions under the seed's names, the project's metrics under names of their
    own, then the registered metrics of each level (see :mod:`dataset.registry`). All describe
    the window ``seq`` (``"step"``, ``"bar"``, ``"phrase"``) or its sections:

    * ``"step"``: ``avg_hits``, ``drum_density``, ``max_hits`` (:func:`hit_density`);
      ``ioi_mean``, ``ioi_var``, ``ioi_hist`` (:func:`ioi_stats`); ``co_occurrence``
      (:func:`co_occurrence_fraction`, the seed's); ``co_occurrence_matrix``
      (:func:`co_occurrence`); ``transitions`` (:func:`step_transitions`, the seed's);
      ``onset_transitions`` (:func:`transitions`); ``fast_patterns`` (:func:`fast_hits`, the
      seed's); ``step_entropy`` (:func:`pattern_entropy`).
    * ``"bar"``: ``density`` (:func:`bar_density`); ``fraction_dense_bars``
      (:func:`fraction_bars_above`, the seed's); ``fraction_busy_bars``
      (:func:`fraction_dense_bars`); ``syncopation``; ``metrical_syncopation``;
      ``fast_fraction``, ``fast_runs_per_bar`` (:func:`fast_patterns`); ``ngram_diversity``
      (distinct 4-grams, the seed's); ``ngram_diversity_ratio`` (:func:`n_grams` diversity).
    * ``"phrase"``: ``phrase_structure`` (:func:`phrase_hits_per_bar`, the seed's);
      ``bar_repetition``, ``phrase_repetition``, ``fill_ratio`` (:func:`phrase_structure`);
      ``phrase_entropy``; ``section_contrast`` (:func:`section_metrics` contrast).
    * ``"section"``: a list, one dict per section, of :func:`section_level_metrics`.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        sections: section spans, see :func:`section_metrics`.
        fast_threshold: the longest IOI of a fast hit, steps (:func:`fast_hits`).
        specs: registered metrics to add; ``None`` for the registry now, ``{}`` for none.

    Returns:
        ``{"step": dict, "bar": dict, "phrase": dict, "section": list of dicts}`` of float64
        arrays with the batch shape of ``seq`` in front.
    """
    p = _window_parts(seq, steps_per_bar, bars_per_phrase, sections, fast_threshold)
    w, h = p.flat, p.h
    drums = h.shape[-1]
    grid = _grid(steps_per_bar, bars_per_phrase, fast_threshold)
    out: dict[str, Any] = {
        "step": {
            "avg_hits": w["step/avg_hits"],
            "drum_density": w["step/drum_density"],
            "max_hits": w["step/max_hits"],
            "ioi_mean": w["step/ioi_mean"],
            "ioi_var": w["step/ioi_var"],
            "ioi_hist": w["step/ioi_hist"],
            "co_occurrence": _co_occurrence_fraction(p.per_step),
            "co_occurrence_matrix": w["step/co_occurrence"],
            "transitions": _step_transitions(h.astype(np.float32)),
            "onset_transitions": w["step/transitions"],
            "fast_patterns": p.fast_hits,
            "step_entropy": w["step/entropy"],
        },
        "bar": {
            "density": w["bar/density"],
            "fraction_dense_bars": _fraction_above(w["bar/density"], drums / 2),
            "fraction_busy_bars": w["bar/fraction_dense"],
            "syncopation": w["bar/syncopation"],
            "metrical_syncopation": w["bar/metrical_syncopation"],
            "fast_fraction": w["bar/fast_fraction"],
            "fast_runs_per_bar": w["bar/fast_runs_per_bar"],
            "ngram_diversity": p.ngram_distinct,
            "ngram_diversity_ratio": w["bar/ngram_diversity"],
        },
        "phrase": {
            "phrase_structure": _phrase_hits(p.per_bar, bars_per_phrase),
            "bar_repetition": w["phrase/bar_repetition"],
            "phrase_repetition": w["phrase/phrase_repetition"],
            "fill_ratio": w["phrase/fill_ratio"],
            "phrase_entropy": w["phrase/entropy"],
            "section_contrast": w["section/contrast"],
        },
    }
    done: dict[str, np.ndarray] = {}  # a metric of several window levels is computed once
    for level in ("step", "bar", "phrase"):
        for name, spec in _registered(specs, level).items():
            if name not in done:
                done[name] = spec(seq, grid)
            out[level][name] = done[name]
    out["section"] = _section_list(seq, p, steps_per_bar, _registered(specs, "section"), grid)
    return out


def song_level_metrics(
    seq: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    fast_threshold: int = 4,
    specs: Mapping[str, MetricSpec] | None = None,
) -> dict[str, np.ndarray]:
    """The seed's ``_song_metrics``: the ``"song"`` level of the dataset's metrics dict.

    Of the whole sequence: the seed's ``avg_hits``, ``drum_density``, ``max_hits``,
    ``step_entropy`` (entropy of the step patterns, bits), ``phrase_entropy`` (its mean over
    the phrases) and ``ngram_diversity`` (the number of distinct 4-grams, ``len`` of
    :func:`n_gram_counter`); then ``length_steps``, ``length_bars`` and the project's
    summaries: ``ioi_mean``, ``co_occurrence``, ``fraction_dense_bars``,
    ``fraction_busy_bars``, ``syncopation``, ``metrical_syncopation``, ``fast_patterns``,
    ``fast_runs_per_bar``, ``bar_repetition``, ``phrase_repetition``, ``fill_ratio``,
    ``section_contrast``, ``ngram_diversity_ratio``; then the registered metrics of level
    ``"song"``. Each entry equals the :func:`level_metrics` entry of the same name over the
    full-length window (default sections). The env's :func:`song_metrics` (flat keys
    ``"song/..."``) is the project's older dict and stays as it is.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        fast_threshold: the longest IOI of a fast hit, steps (:func:`fast_hits`).
        specs: registered metrics to add; ``None`` for the registry now, ``{}`` for none.

    Returns:
        dict name -> float64 array (batch shape of ``seq`` in front).
    """
    w = level_metrics(seq, steps_per_bar, bars_per_phrase, None, fast_threshold, specs={})
    step, bar, phrase = w["step"], w["bar"], w["phrase"]
    batch = np.shape(seq)[:-2]
    steps = np.shape(seq)[-2]
    out = {
        "avg_hits": step["avg_hits"],
        "drum_density": step["drum_density"],
        "max_hits": step["max_hits"],
        "step_entropy": step["step_entropy"],
        "phrase_entropy": phrase["phrase_entropy"],
        "ngram_diversity": bar["ngram_diversity"],
        "length_steps": np.full(batch, float(steps)),
        "length_bars": np.full(batch, steps / steps_per_bar),
        "ioi_mean": step["ioi_mean"],
        "co_occurrence": step["co_occurrence"],
        "fraction_dense_bars": bar["fraction_dense_bars"],
        "fraction_busy_bars": bar["fraction_busy_bars"],
        "syncopation": bar["syncopation"],
        "metrical_syncopation": bar["metrical_syncopation"],
        "fast_patterns": step["fast_patterns"],
        "fast_runs_per_bar": bar["fast_runs_per_bar"],
        "bar_repetition": phrase["bar_repetition"],
        "phrase_repetition": phrase["phrase_repetition"],
        "fill_ratio": phrase["fill_ratio"],
        "section_contrast": phrase["section_contrast"],
        "ngram_diversity_ratio": bar["ngram_diversity_ratio"],
    }
    grid = _grid(steps_per_bar, bars_per_phrase, fast_threshold)
    for name, spec in _registered(specs, "song").items():
        out[name] = spec(seq, grid)
    return out


# ----------------------------------------------------------------------------- window tables
# Written for speed: the dataset asks for the level metrics of one window at a time, thousands
# of times per file, and from the window (level_metrics) each costs some hundred small numpy
# calls, a millisecond. Almost every metric is a function of integer counts over spans of
# steps, which are differences of prefix sums over the sequence: WindowTables builds such
# tables once per sequence, with them the scalar metrics of every window (vectorised over the
# window starts, through the final formulas above: _fraction_above, _mean_jaccard, ...), and
# reads a window's metrics in some twenty calls. The tests compare it with level_metrics.

_TABLE_MAX_DRUMS = 15
"""Most drums for :class:`WindowTables`: exact 4-gram codes (``4 * drums <= 63``), and tables
with one entry per step pattern (``2**drums``)."""
_TABLE_MAX_LENGTH = 2**16 - 1
"""Longest window of :class:`WindowTables`: its IOI sums are read modulo 2**32 (squares of gaps
of one window stay below ``length**2 < 2**32``)."""
_TABLE_CHUNK = 1 << 20
"""Elements of the per-start temporaries that :class:`WindowTables` builds at once."""
_IOI_BINS = 16
"""Bins of the IOI histogram of :func:`level_metrics` (:func:`ioi_stats`' default)."""


class WindowLayout(NamedTuple):
    """Where the leaves of a window's metrics dict lie in the flat vector of :class:`WindowTables`.

    The leaves are stored by shape, not in dict order (the matrices, the IOI histogram, the bar
    densities, the phrase structure, the per-drum vectors, then the scalars): leaves of one shape
    are adjacent, so that one call makes them all into arrays or tensors of their own.
    """

    paths: tuple[tuple[Any, ...], ...]
    """Each leaf's place in the nested dict, in dict order: ``(level, name)`` for ``"step"``,
    ``"bar"`` and ``"phrase"``, ``("section", i, name)`` for section ``i``."""
    shapes: tuple[tuple[int, ...], ...]
    """Each leaf's shape, in dict order."""
    offsets: tuple[int, ...]
    """Where each leaf's values start in the flat vector, in dict order."""
    size: int
    """Length of the flat vector."""


@lru_cache(maxsize=16)
def _popcounts(drums: int) -> np.ndarray:
    """Number of drums in each step pattern: int64 (2**drums,). Cached, read-only."""
    out = _bits(drums).sum(axis=1).astype(np.int64)
    out.setflags(write=False)
    return out


def _prefix(x: np.ndarray) -> np.ndarray:
    """Prefix sums along the first axis with a leading 0: (n, ...) -> int64 (n + 1, ...)."""
    out = np.zeros((x.shape[0] + 1, *x.shape[1:]), dtype=np.int64)
    np.cumsum(x, axis=0, out=out[1:])
    return out


def _sliding_max(x: np.ndarray, m: int) -> np.ndarray:
    """``max(x[s : s + m])`` for every ``s`` in ``0 .. len(x) - m`` (doubling, O(n log m))."""
    out, width = x, 1
    while 2 * width <= m:  # out[s] = max(x[s : s + 2 * width])
        out = np.maximum(out[:-width], out[width:])
        width *= 2
    if width < m:
        out = np.maximum(out[: len(out) - (m - width)], out[m - width :])
    return out[: len(x) - m + 1]


def _lookup(fn: Any, positions: np.ndarray) -> np.ndarray:
    """``fn`` of each position, computed once per distinct position (windows overlap)."""
    uniq, inverse = np.unique(positions, return_inverse=True)
    return fn(uniq)[inverse.reshape(positions.shape)]


def _span_means(seq: np.ndarray, size: int) -> np.ndarray:
    """:func:`aggregate` of ``seq[s : s + size]`` for every ``s``: float32 (T - size + 1, D).

    The float64 sum runs over the steps in order, as :func:`aggregate`'s does, so the numbers
    are the same (read-only).
    """
    values = np.asarray(seq, dtype=np.float64)
    count = max(len(values) - size + 1, 0)
    total = values[:count].copy()
    for k in range(1, size):
        total += values[k : k + count]
    out = (total / size if size > 1 else total).astype(np.float32)
    out.setflags(write=False)
    return out


def _entropies(codes: np.ndarray, drums: int, m: int, positions: np.ndarray) -> np.ndarray:
    """:func:`pattern_entropy` of ``codes[p : p + m]`` for each ``p`` in ``positions``.

    Each span is a row of :func:`_pattern_entropy`, so the numbers are those of a window.
    """
    view = np.lib.stride_tricks.sliding_window_view(codes, m)
    chunk = max(1, _TABLE_CHUNK // max(m, 2**drums))

    def entropy(p: np.ndarray) -> np.ndarray:
        out = np.empty(len(p))
        for i in range(0, len(p), chunk):
            out[i : i + chunk] = _pattern_entropy(view[p[i : i + chunk]], drums)
        return out

    return _lookup(entropy, positions)


class WindowTables:
    """The window levels of :func:`level_metrics` of every window of one sequence, from tables.

    A window is ``seq[start : start + length]`` for ``start`` in ``0, stride, 2 * stride, ...
    <= T - length``. :meth:`level_metrics` of a window equals :func:`level_metrics` of
    ``seq[start : start + length]`` with the same arguments, cast to float32 (the dataset's
    samples), and :meth:`fill` writes the same numbers into one flat float32 vector
    (:attr:`layout`). Only the built-in registered metrics ``swing`` and ``polyrhythm`` at the
    ``"step"``, ``"bar"`` or ``"phrase"`` level are read from tables; every other registered
    metric is computed from the window, when it is asked for.

    The tables, built once, in O(T log T + windows * length) vectorised work for a sequence of
    T steps and D drums:

    * per window, float32: its scalar metrics, IOI means and variances, fast-run fractions,
      computed for all windows at once from prefix sums and sliding maxima over the sequence
      (:func:`_pattern_entropy` of every phrase-long and section-long span for the entropies);
    * per step: prefix sums of each drum's hits, counts of the onsets before it, the hits of
      each bar-long span, and the :func:`aggregate` of each bar- and phrase-long span;
    * per onset: its hits and those of the step after it, float32, for the three drum-by-drum
      matrices (one matrix product each);
    * per hit: prefix sums of the IOI histogram over a list of the hits by drum.

    That is ``10 D + 12`` bytes per step (``12 D + 12`` from 65536 hits on), ``8 D + 12`` per
    onset, ``32`` per hit and ``4 * (3 D + scalars)`` per window (:attr:`nbytes`; ``scalars``
    is 35 with the defaults): some 250 bytes per window and 200 per step for 9 drums.

    Args:
        seq: array (T, drums), values in [0, 1] (a hit is a value > 0), at most 15 drums. Kept
            (not copied) for registered metrics that are not built in: do not modify it.
        length: window length, steps, ``1 <= length <= min(T, 65535)``.
        stride: step between window starts, steps.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        sections: section spans relative to the window, see :func:`section_metrics`.
        fast_threshold: see :func:`level_metrics`.
        specs: registered metrics to add; ``None`` for the registry now, ``{}`` for none.

    Raises:
        ValueError: for an argument out of its range (the message names it).

    >>> seq = np.tile(np.eye(3, dtype=np.float32), (20, 1))
    >>> tables = WindowTables(seq, 32, steps_per_bar=4, bars_per_phrase=2, specs={})
    >>> got = tables.level_metrics(5)["step"]["step_entropy"]
    >>> want = level_metrics(seq[5:37], 4, 2, specs={})["step"]["step_entropy"]
    >>> bool(got == np.float32(want))
    True
    """

    layout: WindowLayout
    """Where each leaf of a window's metrics dict lies in the vector of :meth:`fill`."""

    @staticmethod
    def supports(drums: int, length: int) -> bool:
        """Whether windows of ``length`` steps of ``drums`` drums can be read from tables."""
        return 1 <= drums <= _TABLE_MAX_DRUMS and 1 <= length <= _TABLE_MAX_LENGTH

    def __init__(
        self,
        seq: np.ndarray,
        length: int,
        stride: int = 1,
        steps_per_bar: int = 16,
        bars_per_phrase: int = 4,
        sections: list[tuple[int, int]] | None = None,
        fast_threshold: int = 4,
        specs: Mapping[str, MetricSpec] | None = None,
    ) -> None:
        h = as_hits(seq)
        if h.ndim != 2:
            raise ValueError(f"seq must have shape (steps, drums), got shape {h.shape}")
        steps, drums = h.shape
        for value, name in [
            (length, "length"),
            (stride, "stride"),
            (steps_per_bar, "steps_per_bar"),
            (bars_per_phrase, "bars_per_phrase"),
            (fast_threshold, "fast_threshold"),
        ]:
            _check_positive(value, name)
        if not length <= min(steps, _TABLE_MAX_LENGTH):
            raise ValueError(
                f"length must be in [1, min(steps, {_TABLE_MAX_LENGTH})], got {length} for "
                f"{steps} steps"
            )
        if not self.supports(drums, length):
            raise ValueError(f"WindowTables supports 1 to {_TABLE_MAX_DRUMS} drums, got {drums}")
        self.length, self.stride, self.drums = int(length), int(stride), drums
        self.steps_per_bar, self.bars_per_phrase = int(steps_per_bar), int(bars_per_phrase)
        self.fast_threshold = int(fast_threshold)
        self._phrase_len = self.steps_per_bar * self.bars_per_phrase
        self.num_windows = (steps - self.length) // self.stride + 1
        self.spans = _spans(self.length, sections, self._phrase_len)
        self._grid = _grid(steps_per_bar, bars_per_phrase, fast_threshold)
        self._seq = seq
        self._plan(specs)
        self._build(h, np.asarray(seq))

    # ------------------------------------------------------------------ layout

    def _plan(self, specs: Mapping[str, MetricSpec] | None) -> None:
        """The leaves in dict order, and where each one goes (see :class:`WindowLayout`)."""
        drums, spb, n_spans = self.drums, self.steps_per_bar, len(self.spans)
        # group -> (shape of one leaf, number of leaves); a group's leaves are adjacent
        groups = {
            "matrix": (drums, drums),
            "hist": (drums, _IOI_BINS),
            "bar": (self.length // spb,),
            "phrase": (self.length // (spb * self.bars_per_phrase), self.bars_per_phrase),
            "drum": (drums,),  # the window's density, each section's, IOI mean, var, fast
            "scalar": (),
        }
        # the last three are read with the scalars, from the per-window table
        drum_row = {"drum_density": 0, "ioi_mean": n_spans + 1, "ioi_var": n_spans + 2,
                    "fast_fraction": n_spans + 3}  # fmt: skip
        matrix = {"co_occurrence_matrix": 0, "transitions": 1, "onset_transitions": 2}
        single = {"ioi_hist": "hist", "density": "bar", "phrase_structure": "phrase"}
        builtins = {_swing_metric: "swing", _polyrhythm_metric: "polyrhythm"}
        entries: list[tuple[tuple[Any, ...], str, Any]] = []  # (path, group, index or key)
        columns: list[str] = []  # the scalar columns of the per-window table
        self._builtin: dict[str, str] = {}  # registered name -> built-in read from tables
        self._extras: dict[str, MetricSpec] = {}  # computed from the window
        self._velocity: dict[str, str] = {}  # extra -> its velocity metric (computed together)
        for level in ("step", "bar", "phrase"):
            for key in BUILTIN_KEYS[level]:
                path = (level, key)
                if key in drum_row:
                    entries.append((path, "drum", drum_row[key]))
                elif key in matrix:
                    entries.append((path, "matrix", matrix[key]))
                elif key in single:
                    entries.append((path, single[key], 0))
                else:
                    entries.append((path, "scalar", len(columns)))
                    columns.append(f"{level}/{key}")
            for name, spec in _registered(specs, level).items():
                if spec.fn in builtins:
                    self._builtin[name] = builtins[spec.fn]
                    entries.append(((level, name), "scalar", len(columns)))
                    columns.append(f"builtin/{name}")
                else:
                    self._extras[name] = spec
                    if spec.fn in _VELOCITY_NAMES:
                        self._velocity[name] = _VELOCITY_NAMES[spec.fn]
                    entries.append(((level, name), "extra", (name, None)))
        for i, span in enumerate(self.spans):
            for key in BUILTIN_KEYS["section"]:
                if key == "drum_density":
                    entries.append((("section", i, key), "drum", i + 1))
                else:
                    entries.append((("section", i, key), "scalar", len(columns)))
                    columns.append(f"section/{i}/{key}")
            for name, spec in _registered(specs, "section").items():
                self._extras[f"section/{name}"] = spec
                entries.append((("section", i, name), "extra", (f"section/{name}", span)))
        self._columns = columns
        counts = {"scalar": len(columns), "drum": n_spans + 4, "matrix": 3}
        self._offsets, size = {}, 0
        for group, shape in groups.items():
            self._offsets[group] = size
            size += counts.get(group, 1) * math.prod(shape)
        extra_shapes = self._extra_shapes(e[2] for e in entries if e[1] == "extra")
        shapes, offsets = [], []
        self._extra_slots: list[tuple[int, int, str, tuple[int, int] | None]] = []
        for _, group, where in entries:
            if group == "extra":
                shape = extra_shapes[where]
                self._extra_slots.append((size, math.prod(shape), *where))
                offsets.append(size)
                size += math.prod(shape)
            else:
                shape = groups[group]
                offsets.append(self._offsets[group] + where * math.prod(shape))
            shapes.append(shape)
        paths = tuple(e[0] for e in entries)
        self.layout = WindowLayout(paths, tuple(shapes), tuple(offsets), size)
        self._views = self._slices(groups)

    def _slices(self, groups: dict[str, tuple[int, ...]]) -> Any:
        """Where :meth:`fill` writes each group, and the index arrays it uses."""
        o, drums, n_spans = self._offsets, self.drums, len(self.spans)
        spb = self.steps_per_bar
        n_bars, n_phr = groups["bar"][0], groups["phrase"][0]

        def part(group: str, count: int = 1) -> slice:
            return slice(o[group], o[group] + count * math.prod(groups[group]))

        return SimpleNamespace(
            row=slice(o["scalar"] - 3 * drums, o["scalar"] + len(self._columns)),
            drum=part("drum", n_spans + 1),  # the densities (the rest comes with the row)
            drum_shape=(n_spans + 1, drums),
            ioi_shift=np.array([[1], [0]]),
            hist=part("hist"),
            hist_shape=(drums, _IOI_BINS),
            counts_shape=(3, drums, drums + 1),
            matrix=part("matrix", 3),
            matrix_shape=(3, drums, drums),
            bar=part("bar"),
            bar_span=n_bars * spb,
            phrase=part("phrase"),
            phrase_span=n_phr * self.bars_per_phrase * spb,
        )

    def _extra_shapes(
        self, wanted: Any
    ) -> dict[tuple[str, tuple[int, int] | None], tuple[int, ...]]:
        """Value shape of each registered metric computed per window, from the first window."""
        out: dict[tuple[str, tuple[int, int] | None], tuple[int, ...]] = {}
        for key, span in wanted:
            if (key, span) not in out:
                part = self._window(0) if span is None else self._window(0)[:, span[0] : span[1]]
                out[key, span] = self._extras[key](part, self._grid).shape[1:]
        return out

    def _window(self, start: int) -> np.ndarray:
        """The window at ``start`` as a fresh float32 batch of one, (1, length, drums)."""
        return np.array(np.asarray(self._seq)[None, start : start + self.length], np.float32)

    # ------------------------------------------------------------------ tables

    def _build(self, h: np.ndarray, seq: np.ndarray) -> None:
        """The tables of hits ``h`` (T, drums) of the values ``seq`` (see the class docstring)."""
        steps, drums = h.shape
        length, spb = self.length, self.steps_per_bar
        n = h.sum(axis=1, dtype=np.int64)  # drums hit on each step
        codes = step_codes(h)
        onset = np.flatnonzero(n)
        # hits by drum, in (drum, step) order, and their IOI features
        pos = np.flatnonzero(_time_last(h))  # drum * steps + step
        drum_start = np.searchsorted(pos, np.arange(drums) * steps)
        same = np.ones(pos.size, dtype=bool)  # hit k is not the first of its drum
        same[drum_start[drum_start < pos.size]] = False
        gap = np.zeros(pos.size, dtype=np.int64)
        gap[1:] = np.diff(pos)
        gap[~same] = 0
        feats = np.zeros((pos.size, 2 + _IOI_BINS), dtype=np.uint32)
        feats[:, 0] = gap
        feats[:, 1] = gap * gap  # window sums below length**2 < 2**32
        feats[np.flatnonzero(same), 2 + np.minimum(gap[same], _IOI_BINS) - 1] = 1
        # prefix sums modulo 2**32 (window differences are exact), and a spare last row: the
        # sums of a window read row lo + 1 <= hits + 1. fill() reads the histogram's, modulo
        # 2**16 (a window has fewer IOIs).
        ioi = np.zeros((pos.size + 2, 2 + _IOI_BINS), dtype=np.uint32)
        np.cumsum(feats, axis=0, dtype=np.uint32, out=ioi[1:-1])
        ioi[-1] = ioi[-2]
        self._ioi_hist = ioi[:, 2:].astype(np.uint16)
        ph = _prefix(h)
        # where each drum's hits before each step end in the hit list (its hits lo .. hi - 1
        # in a window); differences are hits in spans
        index = ph + drum_start
        dtype = np.uint16 if pos.size < 2**16 else np.int32 if pos.size < 2**31 else np.int64
        self._hit_index = index.astype(dtype)
        # Steps without a hit add nothing to the drum-by-drum counts: per onset, its hits as
        # float32 with a last column of the drums hit (its product with the hits gives the
        # transitions' row sums), the same of the step after it, and its step. A window's
        # onsets are the rows onsets_before[start] .. onsets_before[stop] - 1.
        hf = np.zeros((steps + 1, drums + 1), dtype=np.float32)
        hf[:steps, :drums] = h
        hf[:steps, drums] = n
        self._onset_hf, self._onset_next = hf[onset], hf[onset + 1]
        self._onset_step = onset.astype(np.int32 if steps < 2**31 else np.int64)
        self._onsets_before = _prefix(n > 0).astype(np.int32 if steps < 2**31 else np.int64)
        pn = _prefix(n)
        # hits of each bar-long span (exact in float32), and their density
        bar_sums = pn[spb:] - pn[:-spb]
        self._bar_sums = bar_sums.astype(np.float32)
        self._bar_density = (bar_sums / spb).astype(np.float32)
        self._means = {size: _span_means(seq, size) for size in {spb, self._phrase_len}}
        starts = np.arange(self.num_windows, dtype=np.int64) * self.stride
        # per window: IOI mean and variance, fast-run fractions, then the scalars (adjacent in
        # the vector too), a chunk of windows at a time
        n_cols = len(self._columns)
        rows = np.empty((self.num_windows, 3 * drums + n_cols), dtype=np.float32)
        ctx = self._context(h, n, codes, pn, ph, starts)
        ctx["ioi"], ctx["hit_index"] = ioi, self._hit_index
        chunk = max(1, _TABLE_CHUNK // max(length * drums, 1))
        for i in range(0, self.num_windows, chunk):
            part = slice(i, i + chunk)
            cols, vectors = self._scalars(ctx, starts[part], part)
            rows[part, : 3 * drums] = vectors.reshape(len(vectors), -1)
            rows[part, 3 * drums :] = np.stack([cols[c] for c in self._columns], axis=1)
        self._rows = rows
        # window boundaries for the per-drum counts: the window's, then each section's
        bounds = [0, length] + [v for span in self.spans for v in span]
        self._count_bounds = np.array(bounds, dtype=np.int64)
        sizes = [length] + [e - s for s, e in self.spans]
        self._count_sizes = np.array(sizes, dtype=np.float64)[:, None]

    def _context(
        self,
        h: np.ndarray,
        n: np.ndarray,
        codes: np.ndarray,
        pn: np.ndarray,
        ph: np.ndarray,
        starts: np.ndarray,
    ) -> dict[str, Any]:
        """Whole-sequence arrays that the per-window scalars are read from."""
        steps, drums = h.shape
        length, spb, thr = self.length, self.steps_per_bar, self.fast_threshold
        pl = spb * self.bars_per_phrase
        ctx: dict[str, Any] = {"n": n, "codes": codes, "pn": pn, "ph": ph}
        ctx["busy"] = _prefix(n > 1)
        ctx["max"] = {m: _sliding_max(n, m) for m in {length, *(e - s for s, e in self.spans)}}
        # the gap from each hit to the one before it of its drum (0: none), for fast_hits
        t = np.arange(steps)
        prev = np.where(h, t[:, None], -1)
        prev[1:] = np.maximum.accumulate(prev[:-1], axis=0)  # last hit strictly before t
        prev[0] = -1
        gap = np.where(h & (prev >= 0), t[:, None] - prev, 0)
        ctx["gap"] = gap
        ctx["fast"] = _prefix(((gap > 0) & (gap <= thr)).sum(axis=1))
        # runs: lengths back to each hit's run start and on to its run end (0 off a hit)
        last_off = np.where(h, -1, t[:, None])
        back = t[:, None] - np.maximum.accumulate(last_off, axis=0)
        next_off = np.where(h, steps, t[:, None])
        fwd = np.minimum.accumulate(next_off[::-1], axis=0)[::-1] - t[:, None]
        ctx["run_back"], ctx["run_fwd"] = back, fwd
        file_fast = h & (back + fwd - 1 >= thr)
        ctx["fast_hits"] = _prefix(file_fast)
        ctx["fast_starts"] = _prefix((file_fast & (back == 1)).sum(axis=1))
        # distinct 4-grams: the last earlier start of the same 4-gram (-1: none)
        if length >= 4:
            grams = np.zeros(steps - 3, dtype=np.int64)
            for k in range(4):
                grams |= codes[k : k + steps - 3] << np.int64(drums * k)
            order = np.argsort(grams, kind="stable")
            prev4 = np.full(steps - 3, -1, dtype=np.int64)
            repeat = grams[order[1:]] == grams[order[:-1]]
            prev4[order[1:][repeat]] = order[:-1][repeat]
            ctx["prev4"] = prev4
        # Jaccard terms: pattern bits shared with, and joined with, the step a bar or phrase back
        popcount = _popcounts(drums)
        for lag in {spb, pl}:
            inter, union = np.zeros(steps, np.int64), np.zeros(steps, np.int64)
            inter[lag:] = popcount[codes[lag:] & codes[:-lag]]
            union[lag:] = popcount[codes[lag:] | codes[:-lag]]
            ctx["inter", lag] = _prefix(inter)
            ctx["union", lag] = _prefix(union)
        # entropies of every phrase-long and section-long span the windows need
        ctx["entropy"] = {}
        full, rest = divmod(length, pl)
        offsets: dict[int, list[int]] = {}
        for k in range(full):
            offsets.setdefault(pl, []).append(k * pl)
        if rest:
            offsets.setdefault(rest, []).append(full * pl)
        for s, e in self.spans:
            offsets.setdefault(e - s, []).append(s)
        for m, offs in offsets.items():  # {length: {offset: entropy of every window's span}}
            offs = sorted(set(offs))
            where = starts[:, None] + np.array(offs, dtype=np.int64)
            ctx["entropy"][m] = dict(zip(offs, _entropies(codes, drums, m, where).T, strict=True))
        # built-in registered metrics
        if "swing" in self._builtin.values():
            late, on = h[1:], h[:-1]
            ctx["delayed"] = (late & ~on).sum(axis=1)
            ctx["straight"] = (on & ~late).sum(axis=1)
        if "polyrhythm" in self._builtin.values():
            lags = min(spb, length - 1)
            ctx["recur"] = [_prefix(h[:-k] & h[k:]) for k in range(1, lags + 1)]
        return ctx

    def _scalars(
        self, ctx: dict[str, Any], a: np.ndarray, part: slice
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The scalar metrics of windows ``part``, starting at ``a``, and three per-drum ones.

        Returns:
            dict column -> float64 (windows,), and float64 (windows, 3, drums): IOI mean, IOI
            variance and fast fraction.
        """
        length, spb, thr = self.length, self.steps_per_bar, self.fast_threshold
        drums, bpp = self.drums, self.bars_per_phrase
        pl = spb * bpp
        n, pn, ph = ctx["n"], ctx["pn"], ctx["ph"]
        b = a + length
        col: dict[str, np.ndarray] = {}
        total = pn[b] - pn[a]
        hits = ph[b] - ph[a]  # (windows, drums)
        # step
        col["step/avg_hits"] = _safe_div(total, length)
        col["step/max_hits"] = ctx["max"][length][a].astype(np.float64)
        col["step/co_occurrence"] = _safe_div(ctx["busy"][b] - ctx["busy"][a], length)
        gap = ctx["gap"]
        late = np.zeros(len(a), dtype=np.int64)  # fast IOIs from a hit before the window
        for j in range(min(thr, length)):
            g = gap[a + j]
            late += ((g > j) & (g <= thr)).sum(axis=1)
        col["step/fast_patterns"] = (ctx["fast"][b] - ctx["fast"][a] - late).astype(np.float64)
        col["step/step_entropy"] = _entropies(ctx["codes"], drums, length, a)
        # bar
        n_bars = length // spb
        per_bar = (pn[a[:, None] + spb * np.arange(1, n_bars + 1)]
                   - pn[a[:, None] + spb * np.arange(n_bars)]).astype(np.float64)  # fmt: skip
        dens = per_bar / spb
        col["bar/fraction_dense_bars"] = _fraction_above(dens, drums / 2)
        col["bar/fraction_busy_bars"] = _fraction_dense(dens)
        down = n[a[:, None] + np.arange(0, length, spb)].sum(axis=1)
        col["bar/syncopation"] = _safe_div(total - down, total)
        weights = np.resize(metrical_weights(spb), length)
        weighted = np.lib.stride_tricks.sliding_window_view(n.astype(np.float64), length)[a]
        col["bar/metrical_syncopation"] = _safe_div(weighted @ weights, total)
        fast_hits, n_runs = self._fast_runs(ctx, a)
        fast = _fast_of_counts(fast_hits, hits, n_runs, length, spb)
        col["bar/fast_runs_per_bar"] = fast.runs_per_bar
        if length >= 4:
            prev4 = np.lib.stride_tricks.sliding_window_view(ctx["prev4"], length - 3)[a]
            distinct = (prev4 < a[:, None]).sum(axis=1).astype(np.float64)
        else:
            distinct = np.zeros(len(a))
        col["bar/ngram_diversity"] = distinct
        col["bar/ngram_diversity_ratio"] = _safe_div(distinct, max(length - 3, 0))
        # phrase
        for lag, name in ((spb, "bar_repetition"), (pl, "phrase_repetition")):
            chunks = length // lag
            if chunks < 2:
                col[f"phrase/{name}"] = np.zeros(len(a))
                continue
            lo = a[:, None] + lag * np.arange(1, chunks)
            inter = ctx["inter", lag][lo + lag] - ctx["inter", lag][lo]
            union = ctx["union", lag][lo + lag] - ctx["union", lag][lo]
            col[f"phrase/{name}"] = _mean_jaccard(inter, union)
        col["phrase/fill_ratio"] = _fill_ratio(dens, bpp)
        full, rest = divmod(length, pl)
        parts = [ctx["entropy"][pl][k * pl][part, None] for k in range(full)]
        if rest:
            parts.append(ctx["entropy"][rest][full * pl][part, None])
        col["phrase/phrase_entropy"] = np.concatenate(parts, axis=-1).mean(axis=-1)
        # sections
        densities = []
        for i, (s, e) in enumerate(self.spans):
            m = e - s
            density = _safe_div(pn[a + e] - pn[a + s], m)
            densities.append(density)
            col[f"section/{i}/avg_hits"] = density
            col[f"section/{i}/max_hits"] = ctx["max"][m][a + s].astype(np.float64)
            lo = a[:, None] + s + spb * np.arange(m // spb)
            section_bars = (pn[lo + spb] - pn[lo]) / spb
            col[f"section/{i}/dense_frac"] = _fraction_above(section_bars, drums / 2)
            col[f"section/{i}/step_entropy"] = ctx["entropy"][m][s][part]
        if densities:
            col["phrase/section_contrast"] = np.stack(densities, axis=-1).std(axis=-1)
        else:
            col["phrase/section_contrast"] = np.zeros(len(a))
        # built-in registered metrics
        if self._builtin:
            values = self._builtin_values(ctx, a)
            for name, builtin in self._builtin.items():
                col[f"builtin/{name}"] = values[builtin]
        # IOIs: those of drum d end at hits lo[d] + 1 .. hi[d] - 1 of the hit list
        lo, hi = ctx["hit_index"][a].astype(np.int64), ctx["hit_index"][b].astype(np.int64)
        ends = ctx["ioi"][np.stack([lo + 1, hi]), :2]  # (2, windows, drums, 2)
        ioi = _ioi_of_sums(ends[1] - ends[0], hi - lo - 1)
        return col, np.stack([ioi.mean, ioi.var, fast.fraction], axis=1)

    def _fast_runs(self, ctx: dict[str, Any], a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hits in fast runs of each drum (windows, drums) and fast runs (windows,).

        A run of the sequence that crosses the window's first or last step is cut there: the
        prefix sums count the runs by their length in the sequence, so the two cut runs of each
        drum are counted again with their length in the window.
        """
        length, thr = self.length, self.fast_threshold
        b = a + length
        back, fwd = ctx["run_back"], ctx["run_fwd"]
        hits = ctx["fast_hits"][b] - ctx["fast_hits"][a]
        runs = ctx["fast_starts"][b] - ctx["fast_starts"][a]
        # the run through the first step (0 where it has no hit)
        back_a, fwd_a = back[a], fwd[a]
        in_1, full_1 = np.minimum(fwd_a, length), back_a + fwd_a - 1
        # the run through the last step, if another one
        back_b, fwd_b = back[b - 1], fwd[b - 1]
        other = fwd_a < length
        in_2 = np.where(other, np.minimum(back_b, length), 0)
        full_2 = np.where(other, back_b + fwd_b - 1, 0)
        fast_in_1, fast_full_1 = in_1 >= thr, full_1 >= thr
        fast_in_2, fast_full_2 = in_2 >= thr, full_2 >= thr
        hits = hits + in_1 * (fast_in_1.astype(np.int64) - fast_full_1)
        hits += in_2 * (fast_in_2.astype(np.int64) - fast_full_2)
        starts_1 = fast_full_1 & (back_a == 1)  # counted by the prefix sums
        runs = runs + (fast_in_1.sum(axis=1) - starts_1.sum(axis=1))
        runs += fast_in_2.sum(axis=1) - fast_full_2.sum(axis=1)
        return hits, runs

    def _builtin_values(self, ctx: dict[str, Any], a: np.ndarray) -> dict[str, np.ndarray]:
        """``swing`` and ``polyrhythm`` of the windows starting at ``a``."""
        length, spb = self.length, self.steps_per_bar
        out = {}
        if "delayed" in ctx:
            t = a[:, None] + _swing_positions(length, spb, self._grid.beats_per_bar)
            out["swing"] = _swing_of_counts(
                ctx["delayed"][t].sum(axis=1), ctx["straight"][t].sum(axis=1)
            )
        if "recur" in ctx:
            lags = len(ctx["recur"])
            if lags < 1:
                out["polyrhythm"] = np.zeros(len(a))
            else:
                ph = ctx["ph"]
                end = a[:, None] + length - np.arange(1, lags + 1)  # (windows, lags)
                recur = np.stack([p[end[:, k]] - p[a] for k, p in enumerate(ctx["recur"])], axis=1)
                periods = _periods_of_counts(recur, ph[end] - ph[a][:, None], 0.75)
                out["polyrhythm"] = _polyrhythm_of_periods(periods)
        return out

    # ------------------------------------------------------------------ windows

    def fill(self, start: int, out: np.ndarray) -> None:
        """Write the metrics of the window at ``start`` into ``out``, laid out as :attr:`layout`.

        Args:
            start: first step of the window, a multiple of ``stride`` in ``[0, T - length]``.
            out: float32 array (layout.size,), written over.
        """
        r, rem = divmod(start, self.stride)
        if rem or not 0 <= r < self.num_windows:
            raise ValueError(f"no window starts at step {start}")
        a, b = start, start + self.length
        v = self._views
        out[v.row] = self._rows[r]  # IOI means, variances, fast-run fractions, the scalars
        # hits of each drum in the window and in each section: the densities
        index = self._hit_index[a + self._count_bounds]  # (2 + 2 * sections, drums)
        hits = index[1::2] - index[::2]
        np.divide(hits, self._count_sizes, out=out[v.drum].reshape(v.drum_shape))
        # IOI histogram: the hits of drum d in the window are hits lo[d] .. hi[d] - 1 of the hit
        # list, its IOIs those that end at hits lo[d] + 1 .. hi[d] - 1. Without IOIs the
        # difference is not 0 (it wraps around), but then _ioi_ratios divides it by inf.
        ends = self._ioi_hist[index[:2] + v.ioi_shift]  # (2, drums, bins), uint16
        count = np.subtract(hits[0], 1, dtype=np.int64)  # signed: -1 for no hit
        out[v.hist].reshape(v.hist_shape)[...] = _ioi_ratios(ends[1] - ends[0], count)
        # drum-by-drum counts, each with its divisor in a last column: co-occurrence (by the
        # window's length), consecutive steps and consecutive onsets (by their row sums)
        first, end = self._onsets_before[a], self._onsets_before[b]
        onsets = self._onset_hf[first:end]
        onset_hits = onsets[:, : self.drums]
        counts = np.empty(v.counts_shape, dtype=np.float32)
        np.matmul(onset_hits.T, onset_hits, out=counts[0, :, :-1])
        counts[0, :, -1] = self.length
        # the step after an onset on the window's last step is not in the window
        stop = end - first - (end > first and self._onset_step[end - 1] == b - 1)
        np.matmul(onset_hits[:stop].T, self._onset_next[first : first + stop], out=counts[1])
        np.matmul(onset_hits[:-1].T, onsets[1:], out=counts[2])
        den = counts[:, :, -1:]
        safe = np.where(den > 0, den, np.inf)
        np.divide(
            counts[:, :, :-1], safe, out=out[v.matrix].reshape(v.matrix_shape), dtype=np.float64
        )
        # bars and phrases: the hits of bar-long spans, a bar apart
        spb = self.steps_per_bar
        out[v.bar] = self._bar_density[a : a + v.bar_span : spb]
        out[v.phrase] = self._bar_sums[a : a + v.phrase_span : spb]
        if self._extra_slots:
            self._fill_extras(a, out)

    def _fill_extras(self, start: int, out: np.ndarray) -> None:
        """The registered metrics that are not built in, computed from the window."""
        window = self._window(start)
        done: dict[tuple[str, tuple[int, int] | None], np.ndarray] = {}
        velocity: dict[str, np.ndarray] | None = None
        for offset, size, key, span in self._extra_slots:
            if (key, span) not in done:
                if span is None and key in self._velocity:  # all of them in one pass
                    if velocity is None:
                        velocity = _velocity_values(window, self.steps_per_bar)
                    done[key, span] = velocity[self._velocity[key]][0]
                else:
                    part = window if span is None else window[:, span[0] : span[1]]
                    done[key, span] = self._extras[key](part, self._grid)[0]
            out[offset : offset + size] = done[key, span].ravel()

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables."""
        arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)]
        arrays += self._means.values()
        return sum(a.nbytes for a in arrays if a is not self._seq)

    def unit_means(self, start: int, size: int) -> np.ndarray:
        """:func:`aggregate` of the window at ``start``, for ``size`` a bar or a phrase.

        Args:
            start: first step of the window, a multiple of ``stride`` in ``[0, T - length]``.
            size: ``steps_per_bar`` or ``steps_per_bar * bars_per_phrase``.

        Returns:
            float32 view (length // size, drums) of the tables (read-only: copy it to keep it):
            equal to ``aggregate(seq[start : start + length], size)`` cast to float32.
        """
        n = self.length // size
        return self._means[size][start : start + n * size : size]

    def level_metrics(self, start: int) -> dict[str, Any]:
        """The window levels of :func:`level_metrics` of the window at ``start``, as float32.

        Args:
            start: first step of the window, a multiple of ``stride`` in ``[0, T - length]``.

        Returns:
            ``{"step": dict, "bar": dict, "phrase": dict, "section": list of dicts}`` of float32
            arrays, equal to :func:`level_metrics` of ``seq[start : start + length]`` (with this
            object's arguments) cast to float32.
        """
        flat = np.empty(self.layout.size, dtype=np.float32)
        self.fill(start, flat)
        out: dict[str, Any] = {"step": {}, "bar": {}, "phrase": {}, "section": []}
        out["section"] = [{} for _ in self.spans]
        for path, shape, offset in zip(*self.layout[:3], strict=True):
            value = flat[offset : offset + math.prod(shape)].reshape(shape)
            if path[0] == "section":
                out["section"][path[1]][path[2]] = value
            else:
                out[path[0]][path[1]] = value
        return out


# ----------------------------------------------------------------------------- built-in extras
# Registered like a user's metric would be (module-level functions: picklable for workers).


def _swing_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`swing` on the grid's bars and beats."""
    return swing(seq, grid.steps_per_bar, grid.beats_per_bar)


def _polyrhythm_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`polyrhythm` with periods up to one bar."""
    return polyrhythm(seq, grid.steps_per_bar)


def _drum_periods_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`drum_periods` up to one bar."""
    return drum_periods(seq, grid.steps_per_bar)


register_metric("swing", _swing_metric, levels=("bar", "song"), batched=True,
                replace=True)  # fmt: skip
register_metric("polyrhythm", _polyrhythm_metric, levels=("phrase", "song"), batched=True,
                replace=True)  # fmt: skip
register_metric("drum_periods", _drum_periods_metric, levels=("song",), batched=True,
                replace=True)  # fmt: skip


# ----------------------------------------------------------------------------- velocity extras
# The velocity metrics of the dataset's metrics dict. Not registered: the registered song-level
# metrics are the evaluation's hit families and the env's ``metrics`` reward term, which judge
# hits; the dataset adds these to its own snapshot of the registry (their names are reserved in
# the registry, :data:`dataset.registry.VELOCITY_KEYS`). Module-level functions: picklable.


def _velocity_mean_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """``velocity_stats(seq).mean`` (:func:`velocity_stats`)."""
    return velocity_stats(seq).mean


def _velocity_spread_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """``velocity_stats(seq).spread`` (:func:`velocity_stats`)."""
    return velocity_stats(seq).spread


def _accent_pattern_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`accent_pattern` on the grid's bars."""
    return accent_pattern(seq, grid.steps_per_bar)


def _accent_contrast_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`accent_contrast` on the grid's bars."""
    return accent_contrast(seq, grid.steps_per_bar)


def _dynamic_range_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`bar_dynamic_range` on the grid's bars."""
    return bar_dynamic_range(seq, grid.steps_per_bar)


def _mean_dynamic_range_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`mean_dynamic_range` on the grid's bars."""
    return mean_dynamic_range(seq, grid.steps_per_bar)


_VELOCITY_FNS = {
    "velocity_mean": _velocity_mean_metric,
    "velocity_spread": _velocity_spread_metric,
    "accent_pattern": _accent_pattern_metric,
    "accent_contrast": _accent_contrast_metric,
    "dynamic_range": _dynamic_range_metric,
    "mean_dynamic_range": _mean_dynamic_range_metric,
}
_VELOCITY_NAMES = {fn: name for name, fn in _VELOCITY_FNS.items()}


def _velocity_values(seq: np.ndarray, steps_per_bar: int) -> dict[str, np.ndarray]:
    """Every velocity metric of :data:`_VELOCITY_FNS` at once, sharing the intermediate results.

    The same numbers as each function on its own (the same helpers on the same float64 values):
    :class:`WindowTables` reads a window's velocity metrics with one call.
    """
    v = as_velocities(seq)
    h = v > 0
    stats = _velocity_stats(v, h)
    total, count = _position_parts(v, h, steps_per_bar)
    spans, ranged = _bar_spans(v, steps_per_bar)
    return {
        "velocity_mean": stats.mean,
        "velocity_spread": stats.spread,
        "accent_pattern": total / np.maximum(count, 1),
        "accent_contrast": _accent_contrast(total, count),
        "dynamic_range": np.where(ranged, spans, 0.0),
        "mean_dynamic_range": _mean_of_spans(spans, ranged),
    }


def _velocity_specs() -> Mapping[str, MetricSpec]:
    """:data:`VELOCITY_SPECS` from :data:`dataset.registry.VELOCITY_KEYS`, read-only."""
    levels: dict[str, list[str]] = {}
    for level, names in VELOCITY_KEYS.items():
        for name in names:
            levels.setdefault(name, []).append(level)
    specs = {
        n: MetricSpec(n, _VELOCITY_FNS[n], tuple(lv), batched=True) for n, lv in levels.items()
    }
    return MappingProxyType(specs)


VELOCITY_SPECS: Mapping[str, MetricSpec] = _velocity_specs()
"""The velocity metrics that :class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset`
adds to its metrics dict with ``velocity_metrics=True`` (after the registered metrics of each
level), read-only:

| key | levels | value |
|---|---|---|
| ``velocity_mean`` | ``bar``, ``song`` | ``(D,)`` :func:`velocity_stats` mean |
| ``velocity_spread`` | ``bar``, ``song`` | ``(D,)`` :func:`velocity_stats` spread |
| ``accent_pattern`` | ``bar``, ``song`` | ``(steps_per_bar, D)`` :func:`accent_pattern` |
| ``accent_contrast`` | ``bar``, ``song`` | ``(D,)`` :func:`accent_contrast` |
| ``dynamic_range`` | ``bar`` | ``(bars,)`` :func:`bar_dynamic_range` |
| ``mean_dynamic_range`` | ``song`` | ``()`` :func:`mean_dynamic_range` |

Pass them as ``specs`` (``{**registered_metrics(), **VELOCITY_SPECS}``) to
:func:`level_metrics`, :func:`song_level_metrics` or :class:`WindowTables` for the dataset's dict.
"""
