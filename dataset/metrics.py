"""Rhythm metrics of drum sequences: pure, vectorised numpy functions.

This module is the single source of every metric in drum-env. The dataset, the environments'
rewards, the evaluation, the tests and the benchmarks all call these functions; nothing else
re-implements them.

Conventions shared by every function:

* ``seq`` is an array ``(..., steps, drums)``: any leading batch axes, then time (one step is
  ``1 / steps_per_bar`` of a bar, a 16th note for the default 16) and the drum classes. Values are
  velocities in ``[0, 1]`` or binary hits; **a hit is a value > 0** and every metric works on hits
  only (velocity is ignored). Boolean arrays are accepted as they are.
* Every metric is finite for every input: an empty sequence (0 steps), one step, all silence and
  all hits give well-defined numbers (the edge-case value is stated in each docstring), never NaN.
* Counts are in steps (time), hits (onsets of one drum at one step) or bars; units are stated.
* Functions return float64 arrays (or NamedTuples of them) with the batch shape ``(...)`` in
  front, so ``f(seq)[i] == f(seq[i])`` for a stacked batch.

Window-level helpers at the bottom (``window_metrics``, ``song_metrics``) combine the functions
into the flat ``{"level/name": value}`` dictionaries that the dataset returns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

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
    "section_metrics",
    "window_metrics",
    "song_metrics",
]


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
    return h.astype(np.float32) @ np.ones(h.shape[-1], dtype=np.float32)


def _time_last(h: np.ndarray) -> np.ndarray:
    """(..., steps, drums) -> contiguous (..., drums, steps), for scans along time."""
    return np.ascontiguousarray(np.swapaxes(h, -1, -2))


def _safe_div(num: np.ndarray, den: np.ndarray | float) -> np.ndarray:
    """``num / den`` where ``den > 0``, else 0 (broadcasting), float64."""
    den = np.asarray(den, dtype=np.float64)
    if den.ndim == 0:
        return np.asarray(num, dtype=np.float64) / den if den > 0 else np.zeros(np.shape(num))
    return np.asarray(num, dtype=np.float64) / np.where(den > 0, den, np.inf)


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
    per_step = _per_step(h)
    drum_density = _safe_div(h.sum(axis=-2), steps)
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
    n_bars = h.shape[-2] // steps_per_bar
    bars = h[..., : n_bars * steps_per_bar, :].reshape(
        *h.shape[:-2], n_bars, steps_per_bar, h.shape[-1]
    )
    return bars.sum(axis=(-1, -2)) / steps_per_bar


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
    density = bar_density(seq, steps_per_bar)
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
    h_t = _time_last(h)  # (..., drums, steps): accumulate along the contiguous axis
    steps = h_t.shape[-1]
    t = np.arange(steps, dtype=np.int32)
    # Index of the latest hit strictly before each step (-1 if none).
    last = np.maximum.accumulate(np.where(h_t, t, np.int32(-1)), axis=-1)
    prev = np.empty_like(last)
    prev[..., :1] = -1
    prev[..., 1:] = last[..., :-1]
    has_ioi = h_t & (prev >= 0)
    ioi = np.where(has_ioi, t - prev, 0)
    count = has_ioi.sum(axis=-1)
    mean = _safe_div(ioi.sum(axis=-1), count)
    var = np.maximum(_safe_div(np.square(ioi, dtype=np.float64).sum(axis=-1), count) - mean**2, 0.0)
    # Histogram: one bincount over (batch * drum, bin) cells.
    flat = np.flatnonzero(has_ioi)
    cells = count.size
    bins = np.minimum(ioi.ravel()[flat], max_ioi) - 1
    counts = np.bincount((flat // max(steps, 1)) * max_ioi + bins, minlength=cells * max_ioi)
    hist = _safe_div(counts.reshape(*count.shape, max_ioi), count[..., None])
    return IOIStats(mean, var, hist)


def co_occurrence(seq: np.ndarray) -> np.ndarray:
    """How often two drums hit on the same step.

    ``C[i, j] = sum_t h[t, i] h[t, j] / T``; the diagonal is the drum density. 0 when ``T = 0``.

    Args:
        seq: array (..., steps, drums); a hit is a value > 0.

    Returns:
        float64 array (..., drums, drums), symmetric, values in [0, 1].
    """
    h = as_hits(seq).astype(np.float32)
    counts = np.matmul(np.swapaxes(h, -1, -2), h)  # exact: integer counts < 2**24
    return _safe_div(counts, h.shape[-2])


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
    if drums > 62:
        raise ValueError(f"step_codes supports at most 62 drums, got {drums}")
    if drums <= 24:  # exact in float32: a fast matrix product
        weights = np.exp2(np.arange(drums, dtype=np.float32))
        return (h.astype(np.float32) @ weights).astype(np.int64)
    weights = np.left_shift(np.int64(1), np.arange(drums, dtype=np.int64))
    return (h.astype(np.int64) * weights).sum(axis=-1)


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
    code = step_codes(seq)
    drums = np.shape(seq)[-1]
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
    h_t = _time_last(h)  # (..., drums, steps)
    steps = h_t.shape[-1]
    t = np.arange(steps, dtype=np.int32)
    last_rest = np.maximum.accumulate(np.where(h_t, np.int32(-1), t), axis=-1)
    rev = np.where(h_t, np.int32(steps), t)[..., ::-1]
    next_rest = np.minimum.accumulate(rev, axis=-1)[..., ::-1]
    run_len = next_rest - last_rest - 1
    in_fast = h_t & (run_len >= fast_threshold)
    run_start = in_fast & (last_rest == t - 1)
    fraction = _safe_div(in_fast.sum(axis=-1), h_t.sum(axis=-1))
    runs_per_bar = _safe_div(run_start.sum(axis=(-1, -2)) * steps_per_bar, steps)
    return FastPatterns(fraction, runs_per_bar)


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
    steps = h.shape[-2]
    onset = h.any(axis=-1)
    t = np.arange(steps)
    # First onset strictly after t (steps if none).
    nxt_incl = np.flip(np.minimum.accumulate(np.flip(np.where(onset, t, steps), -1), -1), -1)
    nxt = np.concatenate([nxt_incl[..., 1:], np.full_like(nxt_incl[..., :1], steps)], axis=-1)
    valid = nxt < steps
    follower = np.take_along_axis(h, np.minimum(nxt, max(steps - 1, 0))[..., None], axis=-2)
    src = (h & valid[..., None]).astype(np.float32)
    counts = np.matmul(np.swapaxes(src, -1, -2), follower.astype(np.float32))
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
    per_step = _per_step(h)
    off = (np.arange(h.shape[-2]) % steps_per_bar) != 0
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
    per_step = _per_step(h)
    w = np.resize(metrical_weights(steps_per_bar, beats_per_bar), h.shape[-2])
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
    code = step_codes(seq)
    steps = code.shape[-1]
    batch = code.shape[:-1]
    if steps == 0:
        return np.zeros(batch)
    rows = int(np.prod(batch, dtype=np.int64))
    drums = np.shape(seq)[-1]
    if 2**drums <= 4 * steps:  # small alphabet: count every pattern directly
        alphabet = 2**drums
        ids = code.reshape(rows, steps) + (np.arange(rows) * alphabet)[:, None]
        counts = np.bincount(ids.ravel(), minlength=rows * alphabet).reshape(rows, alphabet)
    else:  # large alphabet: sort, then count runs of equal codes
        flat = np.sort(code.reshape(rows, steps), axis=-1)
        start = np.ones_like(flat, dtype=bool)
        start[:, 1:] = flat[:, 1:] != flat[:, :-1]
        run_id = np.cumsum(start, axis=-1) - 1 + (np.arange(rows) * steps)[:, None]
        counts = np.bincount(run_id.ravel(), minlength=rows * steps).reshape(rows, steps)
    p = counts / steps
    plogp = np.where(counts > 0, p * np.log2(np.where(counts > 0, p, 1.0)), 0.0)
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
    steps = h.shape[-2]
    full = steps // phrase_len
    parts = []
    if full:
        phrases = h[..., : full * phrase_len, :].reshape(*h.shape[:-2], full, phrase_len, -1)
        parts.append(pattern_entropy(phrases))
    if steps % phrase_len:
        parts.append(pattern_entropy(h[..., full * phrase_len :, :])[..., None])
    if not parts:
        return np.zeros(h.shape[:-2])
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


def _chunks(h: np.ndarray, size: int) -> np.ndarray:
    """Complete chunks of ``size`` steps: (..., steps, drums) -> (..., n, size, drums)."""
    n = h.shape[-2] // size
    return h[..., : n * size, :].reshape(*h.shape[:-2], n, size, h.shape[-1])


def _mean_consecutive_jaccard(chunks: np.ndarray) -> np.ndarray:
    if chunks.shape[-3] < 2:
        return np.zeros(chunks.shape[:-3])
    return jaccard(chunks[..., 1:, :, :], chunks[..., :-1, :, :]).mean(axis=-1)


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
    bars = _chunks(h, steps_per_bar)
    phrases = _chunks(h, steps_per_bar * bars_per_phrase)
    bar_rep = _mean_consecutive_jaccard(bars)
    phrase_rep = _mean_consecutive_jaccard(phrases)
    n_phr = phrases.shape[-3]
    if n_phr == 0:
        fill = np.zeros(h.shape[:-2])
    else:
        hits_per_bar = bar_density(phrases, steps_per_bar)  # (..., phrases, bars)
        fill = _safe_div(hits_per_bar[..., -1], hits_per_bar.mean(axis=-1)).mean(axis=-1)
    return PhraseStructure(bar_rep, phrase_rep, fill)


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
    steps = h.shape[-2]
    if sections is None:
        sections = default_sections(steps, phrase_len)
    spans = [(max(0, int(s)), min(steps, int(e))) for s, e in sections]
    spans = [(s, e) for s, e in spans if e > s]
    batch = h.shape[:-2]
    if not spans:
        empty = np.zeros((*batch, 0))
        return SectionMetrics(empty, empty, np.zeros(batch))
    size = spans[0][1] - spans[0][0]
    if all(e - s == size for s, e in spans) and all(
        s == spans[0][0] + k * size for k, (s, _) in enumerate(spans)
    ):  # contiguous equal spans (the default): one reshape, no Python loop
        start = spans[0][0]
        parts = h[..., start : start + len(spans) * size, :].reshape(
            *batch, len(spans), size, h.shape[-1]
        )
        density = parts.sum(axis=(-1, -2)) / size
        entropy = pattern_entropy(parts)
    else:
        density = np.stack([hit_density(h[..., s:e, :]).avg_hits for s, e in spans], axis=-1)
        entropy = np.stack([pattern_entropy(h[..., s:e, :]) for s, e in spans], axis=-1)
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
    and phrase entropy; ``section/``: :func:`section_metrics`.

    Args:
        seq: array (steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        sections: section spans, see :func:`section_metrics`.
        fast_threshold: see :func:`fast_patterns`.

    Returns:
        dict of float64 arrays (scalars, or arrays sized by drums, bars or sections).
    """
    h = as_hits(seq)
    phrase_len = steps_per_bar * bars_per_phrase
    dens = hit_density(h)
    ioi = ioi_stats(h)
    fast = fast_patterns(h, fast_threshold, steps_per_bar)
    struct = phrase_structure(h, steps_per_bar, bars_per_phrase)
    sect = section_metrics(h, sections, phrase_len)
    return {
        "step/avg_hits": dens.avg_hits,
        "step/drum_density": dens.drum_density,
        "step/max_hits": dens.max_hits,
        "step/co_occurrence": co_occurrence(h),
        "step/transitions": transitions(h),
        "step/ioi_mean": ioi.mean,
        "step/ioi_var": ioi.var,
        "step/ioi_hist": ioi.hist,
        "step/entropy": pattern_entropy(h),
        "bar/density": bar_density(h, steps_per_bar),
        "bar/fraction_dense": fraction_dense_bars(h, steps_per_bar),
        "bar/syncopation": syncopation(h, steps_per_bar),
        "bar/metrical_syncopation": metrical_syncopation(h, steps_per_bar),
        "bar/fast_fraction": fast.fraction,
        "bar/fast_runs_per_bar": fast.runs_per_bar,
        "bar/ngram_diversity": n_grams(h, 4).diversity,
        "phrase/bar_repetition": struct.bar_repetition,
        "phrase/phrase_repetition": struct.phrase_repetition,
        "phrase/fill_ratio": struct.fill_ratio,
        "phrase/entropy": phrase_entropy(h, phrase_len),
        "section/density": sect.density,
        "section/entropy": sect.entropy,
        "section/contrast": sect.contrast,
    }


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
