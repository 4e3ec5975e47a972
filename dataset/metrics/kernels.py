"""Shared kernels of the metric families: the building blocks, no metric of their own.

What several modules of :mod:`dataset.metrics` compute with: hits as booleans
(:func:`as_hits`), drums hit per step (:func:`hits_per_step`), exact integer sums in float32
(:func:`sum_last`, :func:`hit_products`), division with 0 for an empty denominator
(:func:`safe_div`), complete bars or phrases as views (:func:`complete_chunks`), the sparse list
of every hit (:class:`HitList`), the bits of each step pattern (:func:`pattern_bits`) and the
argument check every public function uses (:func:`check_positive`). Each kernel is exact where
its docstring says so: the metrics built on them give the same numbers whatever path computes
them (see :class:`dataset.metrics.window_tables.WindowTables`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

__all__ = [
    # constants
    "F32_EXACT",
    "MAX_PAIR_DRUMS",
    "HAS_BITWISE_COUNT",
    "CHUNK_BYTES",
    # hits and counts
    "as_hits",
    "hits_per_step",
    "hits_per_step_f",
    "hit_products",
    "hits_per_drum",
    "pattern_bits",
    # arithmetic and layout
    "safe_div",
    "sum_last",
    "time_last",
    "complete_chunks",
    "c_like",
    # the sparse hit list
    "HitList",
    "hit_list",
    "row_bounds",
    "same_row",
    # argument checks
    "check_positive",
]


F32_EXACT = 2**24  # integers below this are exact in float32
MAX_PAIR_DRUMS = 10  # most drums for the per-pattern tables (pattern_bits, _pair_bits: 2**10 rows)
HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0
CHUNK_BYTES = 1 << 18  # size of the float32 temporaries that are made chunk by chunk


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


def hits_per_step(h: np.ndarray) -> np.ndarray:
    """Number of drums hit on each step: (..., steps, drums) bool -> (..., steps) float32.

    A matrix product: much faster than a reduction along the short drum axis.
    """
    return hits_per_step_f(h.astype(np.float32))


def hits_per_step_f(hf: np.ndarray) -> np.ndarray:
    """:func:`hits_per_step` of hits already as float32.

    Exact: a step has at most ``drums`` hits.
    """
    return hf @ np.ones(hf.shape[-1], dtype=np.float32)


def hit_products(h: np.ndarray, weights: np.ndarray) -> np.ndarray:
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
    chunk = max(1, CHUNK_BYTES // (4 * max(drums, 1)))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        np.matmul(flat[start:stop].astype(np.float32), weights, out=out[start:stop])
    return out.reshape(*h.shape[:-1], weights.shape[1])


def time_last(h: np.ndarray) -> np.ndarray:
    """(..., steps, drums) -> contiguous (..., drums, steps), for scans along time."""
    return np.ascontiguousarray(np.swapaxes(h, -1, -2))


def safe_div(num: np.ndarray, den: np.ndarray | float) -> np.ndarray:
    """``num / den`` where ``den > 0``, else 0 (broadcasting), float64."""
    den = np.asarray(den, dtype=np.float64)
    if den.ndim == 0:
        return np.asarray(num, dtype=np.float64) / den if den > 0 else np.zeros(np.shape(num))
    return np.asarray(num, dtype=np.float64) / np.where(den > 0, den, np.inf)


def sum_last(x: np.ndarray, size: int, bound: int) -> np.ndarray:
    """Sums of consecutive chunks of ``size`` along the last axis: (..., n * size) -> (..., n).

    ``x`` holds integers in ``[0, bound]``. The sums are exact, so their order does not matter:
    a float32 matrix product while they stay below 2**24, else a float64 sum.

    Returns:
        float64 array (..., n).
    """
    chunks = x.reshape(*x.shape[:-1], x.shape[-1] // size, size)
    if size * bound < F32_EXACT:
        ones = np.ones(size, dtype=np.float32)
        return (chunks.astype(np.float32, copy=False) @ ones).astype(np.float64)
    return chunks.sum(axis=-1, dtype=np.float64)


class HitList(NamedTuple):
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


def row_bounds(pos: np.ndarray, rows: int, steps: int) -> np.ndarray:
    """Where each row starts among increasing flat positions ``pos = row * steps + step``.

    Returns:
        int64 array (rows + 1,): the entries of row ``r`` are ``pos[bounds[r] : bounds[r + 1]]``.
    """
    return np.searchsorted(pos, np.arange(rows + 1, dtype=np.int64) * steps)


def same_row(bounds: np.ndarray, n: int) -> np.ndarray:
    """(n - 1,) bool: entries ``k`` and ``k + 1`` lie in the same row of :func:`row_bounds`."""
    same = np.ones(max(n - 1, 0), dtype=bool)
    inner = bounds[1:-1]
    same[inner[(inner > 0) & (inner < n)] - 1] = False
    return same


def hit_list(h: np.ndarray) -> HitList:
    """:class:`HitList` of hits ``h`` (..., steps, drums)."""
    rows = math.prod(h.shape[:-2]) * h.shape[-1]
    pos = np.flatnonzero(time_last(h))  # row * steps + t, increasing
    bounds = row_bounds(pos, rows, h.shape[-2])
    return HitList(pos, bounds, np.diff(pos), same_row(bounds, pos.size))


def hits_per_drum(hl: HitList, shape: tuple[int, ...]) -> np.ndarray:
    """Hits of each drum, (..., drums) int64, from the hit list of a sequence of ``shape``."""
    return np.diff(hl.bounds).reshape(*shape[:-2], shape[-1])


def check_positive(value: int, name: str) -> None:
    """Raise a ``ValueError`` that names ``name`` unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def complete_chunks(h: np.ndarray, size: int) -> np.ndarray:
    """Complete chunks of ``size`` steps: (..., steps, drums) -> (..., n, size, drums)."""
    n = h.shape[-2] // size
    return h[..., : n * size, :].reshape(*h.shape[:-2], n, size, h.shape[-1])


def c_like(h: np.ndarray) -> bool:
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


@lru_cache(maxsize=16)
def pattern_bits(drums: int) -> np.ndarray:
    """The hits of each step pattern: (2**drums, drums) float32, row ``c`` is ``c`` in binary.

    Least significant bit (drum 0) first. Cached, read-only.
    """
    out = ((np.arange(2**drums)[:, None] >> np.arange(drums)) & 1).astype(np.float32)
    out.setflags(write=False)
    return out
