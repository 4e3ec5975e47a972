"""Structure: bars, phrases and sections, how they repeat, and the periods of each drum.

Similarity of hit grids (:func:`jaccard`), repetition of bars and phrases and the fills at
phrase ends (:func:`phrase_structure`), sections (:func:`default_sections`,
:func:`section_spans`, :func:`section_metrics`), the periods of the drums and whether they
cross (:func:`drum_periods`, :func:`polyrhythm`); the seed's :func:`aggregate` (the bar and
phrase views of the dataset) and :func:`phrase_hits_per_bar` (see :mod:`dataset.metrics`).

Each metric is a public checker over a kernel of intermediate results (``*_of_counts``,
``*_of_views``, ``*_of_spans``, ``*_of_bars``, ``*_of_periods``) that the window levels and the
window tables share.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dataset.metrics.hits import hit_density
from dataset.metrics.kernels import (
    HAS_BITWISE_COUNT,
    as_hits,
    c_like,
    check_positive,
    complete_chunks,
    hits_per_step,
    safe_div,
    sum_last,
    time_last,
)
from dataset.metrics.patterns import pattern_entropy_of_codes, step_codes

__all__ = [
    # metrics
    "jaccard",
    "PhraseStructure",
    "phrase_structure",
    "default_sections",
    "SectionMetrics",
    "section_metrics",
    "section_spans",
    "aggregate",
    "phrase_hits_per_bar",
    "drum_periods",
    "polyrhythm",
    # kernels: the metrics from intermediate results
    "phrase_structure_of_views",
    "phrase_structure_of_counts",
    "mean_jaccard",
    "fill_ratio",
    "section_metrics_of_spans",
    "phrase_hits_of_bars",
    "periods_of_counts",
    "polyrhythm_of_periods",
]


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
    return np.where(union > 0, safe_div(inter, union), 1.0)


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
    check_positive(steps_per_bar, "steps_per_bar")
    check_positive(bars_per_phrase, "bars_per_phrase")
    return phrase_structure_of_views(h, steps_per_bar, bars_per_phrase)


def phrase_structure_of_views(
    h: np.ndarray, steps_per_bar: int, bars_per_phrase: int
) -> PhraseStructure:
    """:func:`phrase_structure` by sums over views of the bars and phrases of ``h``.

    Cheap for short sequences; :func:`window_metrics` uses :func:`phrase_structure_of_counts`, which
    shares its intermediate results, where the layout of ``h`` allows (see :func:`c_like`).
    """
    bars = complete_chunks(h, steps_per_bar)
    phrases = complete_chunks(h, steps_per_bar * bars_per_phrase)
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
        hits_per_bar = complete_chunks(phrases, steps_per_bar).sum(axis=(-1, -2)) / steps_per_bar
        fill = safe_div(hits_per_bar[..., -1], hits_per_bar.mean(axis=-1)).mean(axis=-1)
    return PhraseStructure(reps[0], reps[1], fill)


def _consecutive_jaccard(
    h: np.ndarray, per_step: np.ndarray, size: int, code: np.ndarray | None = None
) -> np.ndarray:
    """Mean :func:`jaccard` of each complete chunk of ``size`` steps with the chunk before it.

    0 with fewer than two chunks. From hits ``h`` and :func:`hits_per_step` of them, or their
    :func:`step_codes` when given; the intersections and unions are exact integer counts (per
    step, then summed).
    """
    n, drums = h.shape[-2] // size, h.shape[-1]
    if n < 2:
        return np.zeros(h.shape[:-2])
    stop = n * size
    if code is not None and HAS_BITWISE_COUNT:  # bit counts of the step codes
        later, earlier = code[..., size:stop], code[..., : stop - size]
        inter = sum_last(np.bitwise_count(later & earlier), size, drums)
        union = sum_last(np.bitwise_count(later | earlier), size, drums)
    else:
        both = hits_per_step(h[..., size:stop, :] & h[..., : stop - size, :])
        inter = sum_last(both, size, drums)
        union = per_step[..., size:stop] + per_step[..., : stop - size] - both
        union = sum_last(union, size, drums)
    return mean_jaccard(inter, union)


def mean_jaccard(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the Jaccard similarities ``inter / union`` of chunk pairs.

    From their intersections and unions (exact integers); 1 where both chunks are silent.
    """
    return np.where(union > 0, safe_div(inter, union), 1.0).mean(axis=-1)


def phrase_structure_of_counts(
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
    return PhraseStructure(bar_rep, phrase_rep, fill_ratio(bar_dens, bars_per_phrase))


def fill_ratio(bar_dens: np.ndarray, bars_per_phrase: int) -> np.ndarray:
    """``fill_ratio`` of :class:`PhraseStructure` from the bar densities (..., bars)."""
    n_phr = bar_dens.shape[-1] // bars_per_phrase
    if n_phr == 0:
        return np.zeros(bar_dens.shape[:-1])
    hits_per_bar = bar_dens[..., : n_phr * bars_per_phrase].reshape(
        *bar_dens.shape[:-1], n_phr, bars_per_phrase
    )  # (..., phrases, bars)
    return safe_div(hits_per_bar[..., -1], hits_per_bar.mean(axis=-1)).mean(axis=-1)


# ----------------------------------------------------------------------------- sections


def default_sections(steps: int, phrase_len: int) -> list[tuple[int, int]]:
    """One section per two phrases: ``[(0, 2p), (2p, 4p), ...]`` clipped to ``steps``.

    Args:
        steps: length of the window, steps.
        phrase_len: steps per phrase.

    Returns:
        list of ``(start, end)`` step indices, half-open; empty when ``steps == 0``.
    """
    check_positive(phrase_len, "phrase_len")
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
    check_positive(phrase_len, "phrase_len")
    spans = _spans(h.shape[-2], sections, phrase_len)
    if not spans:
        empty = np.zeros((*h.shape[:-2], 0))
        return SectionMetrics(empty, empty, np.zeros(h.shape[:-2]))
    return section_metrics_of_spans(h, step_codes(h), spans)


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
    check_positive(phrase_len, "phrase_len")
    return _spans(int(steps), sections, phrase_len)


def _spans(
    steps: int, sections: list[tuple[int, int]] | None, phrase_len: int
) -> list[tuple[int, int]]:
    """The non-empty sections of :func:`section_metrics`, clipped to ``steps``."""
    if sections is None:
        sections = default_sections(steps, phrase_len)
    spans = [(max(0, int(s)), min(steps, int(e))) for s, e in sections]
    return [(s, e) for s, e in spans if e > s]


def section_metrics_of_spans(
    h: np.ndarray,
    code: np.ndarray,
    spans: list[tuple[int, int]],
    per_step: np.ndarray | None = None,
) -> SectionMetrics:
    """:func:`section_metrics` of hits ``h`` over the non-empty clipped ``spans`` (at least one).

    From the :func:`step_codes` of ``h`` and, optionally, its :func:`hits_per_step` counts. Without
    them, or when the layout of ``h`` is not C-like (see :func:`c_like`), the densities are
    sums over views of ``h``.
    """
    batch, drums = h.shape[:-2], h.shape[-1]
    by_step = per_step is not None and c_like(h)
    size = spans[0][1] - spans[0][0]
    if all(e - s == size for s, e in spans) and all(
        s == spans[0][0] + k * size for k, (s, _) in enumerate(spans)
    ):  # contiguous equal spans (the default): one reshape, no Python loop
        start = spans[0][0]
        stop = start + len(spans) * size
        if per_step is not None and by_step:
            density = sum_last(per_step[..., start:stop], size, drums) / size
        else:
            parts = h[..., start:stop, :].reshape(*batch, len(spans), size, drums)
            density = parts.sum(axis=(-1, -2)) / size
        entropy = pattern_entropy_of_codes(
            code[..., start:stop].reshape(*batch, len(spans), size), drums
        )
    else:
        if per_step is not None and by_step:
            densities = [
                safe_div(np.ascontiguousarray(per_step[..., s:e]).sum(axis=-1), e - s)
                for s, e in spans
            ]
        else:
            densities = [hit_density(h[..., s:e, :]).avg_hits for s, e in spans]
        density = np.stack(densities, axis=-1)
        entropy = np.stack(
            [pattern_entropy_of_codes(code[..., s:e], drums) for s, e in spans], axis=-1
        )
    return SectionMetrics(density, entropy, density.std(axis=-1))


# ----------------------------------------------------------------------------- the seed's names
# The seed defines some metrics otherwise than the project did first. Both stay: the project's
# under the names above (the env's rewards and the evaluation use them), the seed's below under
# names of their own (see dataset.metrics).


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
    check_positive(step_size, "step_size")
    units = complete_chunks(seq, step_size)  # (..., n, step_size, drums)
    if step_size == 1:
        return units[..., 0, :].astype(np.float64)
    return units.sum(axis=-2, dtype=np.float64) / step_size


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
    check_positive(steps_per_bar, "steps_per_bar")
    check_positive(bars_per_phrase, "bars_per_phrase")
    per_bar = complete_chunks(h, steps_per_bar).sum(axis=(-1, -2)).astype(np.float64)
    return phrase_hits_of_bars(per_bar, bars_per_phrase)


def phrase_hits_of_bars(per_bar: np.ndarray, bars_per_phrase: int) -> np.ndarray:
    """:func:`phrase_hits_per_bar` from the hits of each complete bar (..., bars)."""
    n = per_bar.shape[-1] // bars_per_phrase
    return per_bar[..., : n * bars_per_phrase].reshape(*per_bar.shape[:-1], n, bars_per_phrase)


# ----------------------------------------------------------------------------- periods, polyrhythm


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
    check_positive(max_lag, "max_lag")
    if not 0 < min_recurrence <= 1:
        raise ValueError(f"min_recurrence must be in (0, 1], got {min_recurrence!r}")
    steps = h.shape[-2]
    lags = min(max_lag, steps - 1)
    periods = np.zeros(h.shape[:-2] + h.shape[-1:])
    if lags < 1:
        return periods
    recur, total = _recurrences(h, lags)  # (..., lags, drums), (..., drums)
    tail = np.cumsum(h[..., : steps - lags - 1 : -1, :], axis=-2)  # hits in the last k steps
    return periods_of_counts(recur, total[..., None, :] - tail, min_recurrence)


def periods_of_counts(recur: np.ndarray, starts: np.ndarray, min_recurrence: float) -> np.ndarray:
    """:func:`drum_periods` from the counts of its recurrence rates.

    Args:
        recur: (..., lags, drums) ``#{t < T - k : h[t, d] and h[t + k, d]}``, lag ``k`` at index
            ``k - 1``.
        starts: (..., lags, drums) ``#{t < T - k : h[t, d]}``.
        min_recurrence: see :func:`drum_periods`.
    """
    rate = safe_div(recur, starts)  # R_d(k), lag k at index k - 1
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
    if not HAS_BITWISE_COUNT:
        recur = np.stack(
            [(h[..., :-k, :] & h[..., k:, :]).sum(axis=-2) for k in range(1, lags + 1)], axis=-2
        )
        return recur.astype(np.int64), h.sum(axis=-2, dtype=np.int64)
    rows = math.prod(batch) * drums
    n_words = -(-steps // 64)
    packed = np.zeros((rows, (n_words + lags // 64 + 2) * 8), dtype=np.uint8)
    bits = np.packbits(time_last(h).reshape(rows, steps), axis=-1, bitorder="little")
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
    return polyrhythm_of_periods(drum_periods(seq, max_lag, min_recurrence))


def polyrhythm_of_periods(periods: np.ndarray) -> np.ndarray:
    """:func:`polyrhythm` from the :func:`drum_periods` (..., drums)."""
    p = periods.astype(np.int64)
    a, b = p[..., :, None], p[..., None, :]
    both = (a > 0) & (b > 0)
    upper = np.triu(np.ones((p.shape[-1],) * 2, dtype=bool), k=1)
    pairs = both & upper
    safe_a, safe_b = np.maximum(a, 1), np.maximum(b, 1)
    cross = pairs & (safe_a % safe_b != 0) & (safe_b % safe_a != 0)
    return safe_div(cross.sum(axis=(-1, -2)), pairs.sum(axis=(-1, -2)))
