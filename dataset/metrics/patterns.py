"""Patterns and variety: which drums hit together, what follows what, how varied it is.

Step patterns as bitmasks (:func:`step_codes`), n-grams of them and their diversity
(:func:`n_grams`), drum-to-drum transitions between onsets (:func:`transitions`), the entropy
of the step patterns (:func:`pattern_entropy`, :func:`phrase_entropy`); the seed's
:func:`step_transitions` and :func:`n_gram_counter` beside the project's definitions (see
:mod:`dataset.metrics`).

As in :mod:`dataset.metrics.hits`, each metric is a public checker over a kernel of
intermediate results (``*_of_codes`` from :func:`step_codes`, ``*_f`` for float32 hits) that
the window levels and the window tables share.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from dataset.metrics.kernels import (
    CHUNK_BYTES,
    F32_EXACT,
    MAX_PAIR_DRUMS,
    as_hits,
    check_positive,
    hits_per_step_f,
    pattern_bits,
    row_bounds,
    safe_div,
    same_row,
)

__all__ = [
    # metrics
    "step_codes",
    "NGramStats",
    "n_grams",
    "transitions",
    "pattern_entropy",
    "phrase_entropy",
    "step_transitions",
    "n_gram_counter",
    # kernels: the metrics from intermediate results
    "check_drums",
    "step_codes_f",
    "n_grams_of_codes",
    "ngram_distinct_of_codes",
    "transitions_f",
    "transitions_of_codes",
    "small_alphabet",
    "pattern_counts",
    "entropy_of_counts",
    "pattern_entropy_of_codes",
    "phrase_entropy_of_codes",
    "step_transitions_f",
]


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
    check_drums(drums)
    if drums <= 24:  # exact in float32: a fast matrix product
        return step_codes_f(h.astype(np.float32))
    weights = np.left_shift(np.int64(1), np.arange(drums, dtype=np.int64))
    return (h.astype(np.int64) * weights).sum(axis=-1)


def check_drums(drums: int) -> None:
    """Raise a ``ValueError`` for more drums than :func:`step_codes` supports (62)."""
    if drums > 62:
        raise ValueError(f"step_codes supports at most 62 drums, got {drums}")


def step_codes_f(hf: np.ndarray) -> np.ndarray:
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
    check_positive(n, "n")
    return n_grams_of_codes(step_codes(seq), np.shape(seq)[-1], n)


def n_grams_of_codes(code: np.ndarray, drums: int, n: int = 4) -> NGramStats:
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
    return NGramStats(grams, distinct, safe_div(distinct, count))


def _distinct_ngrams(
    code: np.ndarray, drums: int, n: int, counts: np.ndarray | None = None
) -> np.ndarray | None:
    """Number of distinct n-grams of each sequence, float64 (...), or None where not done so.

    Each step pattern is replaced by its rank among the patterns of its sequence (from the
    pattern histogram ``counts`` of :func:`pattern_counts`, small alphabet only), so an n-gram
    is a number below ``radix ** n``. Where that fits in 32 bits the n-grams are sorted as
    uint32 (several times faster than int64); the count is that of the exact n-gram codes.
    Needs ``steps >= n`` and n-gram codes that are exact (``n * drums <= 63``), not hashed.
    """
    steps = code.shape[-1]
    count = steps - n + 1
    if counts is None:
        if not small_alphabet(drums, steps):
            return None
        counts = pattern_counts(code, drums)
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

    ``counts``: :func:`pattern_counts` of ``code`` with a small alphabet, if at hand.
    """
    return safe_div(ngram_distinct_of_codes(code, drums, n, counts), max(code.shape[-1] - n + 1, 0))


def ngram_distinct_of_codes(
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
    return n_grams_of_codes(code, drums, n).num_distinct


_LONG_NGRAMS = 256  # n-grams per sequence from which _distinct_ngrams is the faster count


# ----------------------------------------------------------------------------- transitions


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
    if h.shape[-1] <= MAX_PAIR_DRUMS and h.shape[-2] < F32_EXACT:
        return transitions_of_codes(step_codes_f(hf), h.shape[-1])
    return transitions_f(hf, hits_per_step_f(hf))


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
        bounds = row_bounds(onset, per_step.size // steps, steps)
        pair = np.flatnonzero(same_row(bounds, onset.size))  # onset k + 1 follows onset k
        src, dst = onset[pair], onset[pair + 1]
        if flat.flags.c_contiguous:  # move whole rows at once, as opaque items
            row = np.dtype((np.void, flat.itemsize * drums))
            follow.view(row)[src] = flat.view(row)[dst]
        else:
            follow[src] = flat[dst]
    return follow.reshape(hf.shape)


def transitions_f(hf: np.ndarray, per_step: np.ndarray) -> np.ndarray:
    """:func:`transitions` of hits as float32, with :func:`hits_per_step` of them."""
    follow = _next_onset_hits(hf, per_step)
    counts = np.matmul(np.swapaxes(hf, -1, -2), follow)  # exact: integer counts < 2**24
    return safe_div(counts, counts.sum(axis=-1, keepdims=True))


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


def transitions_of_codes(code: np.ndarray, drums: int) -> np.ndarray:
    """:func:`transitions` from :func:`step_codes` (..., steps), for few drums (small tables).

    The onsets of each sequence, in order, padded with silence to the same number, as hits
    (one row of :func:`pattern_bits` each); then batched products of each onset with the next, a
    chunk of sequences at a time. The counts are those of :func:`transitions_f`, exact integers
    in float32.
    """
    batch, steps = code.shape[:-1], code.shape[-1]
    n_seq = math.prod(batch)
    flat = code.reshape(n_seq * steps)
    onset = np.flatnonzero(flat)  # a step with a hit has a non-zero code
    bounds = row_bounds(onset, n_seq, steps)
    n_onsets = np.diff(bounds)
    width = int(n_onsets.max()) if n_seq else 0
    onset_codes = np.zeros(onset.size + 1, dtype=np.int64)
    onset_codes[:-1] = flat[onset]  # and a last entry 0: silence
    counts = np.empty((n_seq, drums, drums), dtype=np.float32)
    chunk = max(1, CHUNK_BYTES // (4 * max(drums, 1) * max(width, 1)))  # sequences
    for start in range(0, n_seq, chunk):
        stop = min(start + chunk, n_seq)
        slot = bounds[start:stop, None] + np.arange(width)  # index into onset
        slot[slot >= bounds[start + 1 : stop + 1, None]] = onset.size  # past the last onset
        hits = _take_rows(pattern_bits(drums), onset_codes.take(slot))  # (sequences, width, drums)
        np.matmul(np.swapaxes(hits[:, :-1], -1, -2), hits[:, 1:], out=counts[start:stop])
    counts = counts.reshape(*batch, drums, drums)
    return safe_div(counts, counts.sum(axis=-1, keepdims=True))


# ----------------------------------------------------------------------------- entropy


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
    return pattern_entropy_of_codes(step_codes(seq), np.shape(seq)[-1])


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


def pattern_entropy_of_codes(code: np.ndarray, drums: int) -> np.ndarray:
    """:func:`pattern_entropy` from :func:`step_codes` (..., steps) of ``drums`` drums.

    A chunk of sequences at a time where their histograms would be large (each sequence's
    entropy is computed on its own, so chunks change nothing).
    """
    batch, steps = code.shape[:-1], code.shape[-1]
    if steps == 0:
        return np.zeros(batch)
    rows = math.prod(batch)
    width = 2**drums if small_alphabet(drums, steps) else steps
    chunk = max(1, CHUNK_BYTES // (8 * width))  # sequences
    if rows <= chunk:
        return entropy_of_counts(pattern_counts(code, drums), steps, batch)
    flat = code.reshape(rows, steps)
    out = np.empty(rows)
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        part = flat[start:stop]
        out[start:stop] = entropy_of_counts(pattern_counts(part, drums), steps, (stop - start,))
    return out.reshape(batch)


def small_alphabet(drums: int, steps: int) -> bool:
    """Whether :func:`pattern_counts` counts every one of the ``2**drums`` patterns."""
    return 2**drums <= 4 * steps


def pattern_counts(code: np.ndarray, drums: int) -> np.ndarray:
    """How often each step pattern occurs in each sequence, (rows, k) int64 for ``steps > 0``.

    With a small alphabet (:func:`small_alphabet`) column ``c`` counts pattern ``c``;
    otherwise the columns hold the counts of the distinct patterns in increasing order, then 0.
    """
    steps = code.shape[-1]
    rows = math.prod(code.shape[:-1])
    if small_alphabet(drums, steps):  # small alphabet: count every pattern directly
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


def entropy_of_counts(counts: np.ndarray, steps: int, batch: tuple[int, ...]) -> np.ndarray:
    """Entropy, bits, of each row of :func:`pattern_counts` over ``steps`` steps."""
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
    check_positive(phrase_len, "phrase_len")
    if h.shape[-2] == 0:
        return np.zeros(h.shape[:-2])
    return phrase_entropy_of_codes(step_codes(h), h.shape[-1], phrase_len)


def phrase_entropy_of_codes(code: np.ndarray, drums: int, phrase_len: int = 64) -> np.ndarray:
    """:func:`phrase_entropy` from :func:`step_codes` (..., steps) of ``drums`` drums."""
    steps = code.shape[-1]
    full = steps // phrase_len
    parts = []
    if full:
        phrases = code[..., : full * phrase_len].reshape(*code.shape[:-1], full, phrase_len)
        parts.append(pattern_entropy_of_codes(phrases, drums))
    if steps % phrase_len:
        parts.append(pattern_entropy_of_codes(code[..., full * phrase_len :], drums)[..., None])
    if not parts:
        return np.zeros(code.shape[:-1])
    return np.concatenate(parts, axis=-1).mean(axis=-1)


# ----------------------------------------------------------------------------- the seed's names
# The seed defines some metrics otherwise than the project did first. Both stay: the project's
# under the names above (the env's rewards and the evaluation use them), the seed's below under
# names of their own (see dataset.metrics).


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
    return step_transitions_f(h.astype(np.float32))


def step_transitions_f(hf: np.ndarray) -> np.ndarray:
    """:func:`step_transitions` of hits as float32."""
    if hf.shape[-2] < F32_EXACT:  # exact: integer counts < 2**24
        counts = np.matmul(np.swapaxes(hf[..., :-1, :], -1, -2), hf[..., 1:, :])
    else:
        counts = np.einsum("...ti,...tj->...ij", hf[..., :-1, :], hf[..., 1:, :], dtype=np.float64)
    return safe_div(counts, counts.sum(axis=-1, keepdims=True))


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
    check_positive(n, "n")
    count = max(h.shape[0] - n + 1, 0)
    if count == 0:
        return Counter()
    windows = np.lib.stride_tricks.sliding_window_view(h.astype(np.uint8), n, axis=0)
    rows = np.swapaxes(windows, -1, -2).reshape(count, n * h.shape[1])  # (count, n * D)
    return Counter(map(tuple, rows.tolist()))
