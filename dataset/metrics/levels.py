"""The metrics of a window and of a song, as dictionaries, and the built-in registered metrics.

:func:`window_metrics` and :func:`song_metrics` are the project's flat ``{"level/name": value}``
dicts (the env's episode metrics use :func:`song_metrics`); :func:`level_metrics`,
:func:`section_level_metrics` and :func:`song_level_metrics` build the dataset's nested metrics
dict, the seed's definitions under the seed's names, then the metrics registered with
:func:`dataset.registry.register_metric`. Every metric of a window is computed once from
intermediate results shared between the families (hits per step, step codes, the hit list),
through the kernels of :mod:`dataset.metrics.hits`, :mod:`dataset.metrics.patterns` and
:mod:`dataset.metrics.structure`.

The built-in registered metrics (:func:`swing_metric`, :func:`polyrhythm_metric`,
:func:`drum_periods_metric`, registered as ``swing``, ``polyrhythm`` and ``drum_periods``) are
registered here, in that order, when :mod:`dataset.metrics` is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from dataset.metrics.hits import (
    bar_density_of_counts,
    bar_hits,
    co_occurrence_f,
    co_occurrence_fraction_of_counts,
    co_occurrence_of_counts,
    fast_hits_of_hit_list,
    fast_patterns_of_hit_list,
    fraction_above_of_density,
    fraction_dense_of_density,
    hit_density_of_counts,
    ioi_mean_of_hit_list,
    ioi_stats_of_hit_list,
    metrical_syncopation_of_counts,
    swing,
    syncopation_of_counts,
)
from dataset.metrics.kernels import (
    F32_EXACT,
    MAX_PAIR_DRUMS,
    as_hits,
    c_like,
    check_positive,
    hit_list,
    hit_products,
    hits_per_drum,
    safe_div,
)
from dataset.metrics.patterns import (
    check_drums,
    entropy_of_counts,
    ngram_distinct_of_codes,
    pattern_counts,
    pattern_entropy_of_codes,
    phrase_entropy_of_codes,
    small_alphabet,
    step_codes,
    step_transitions_f,
    transitions_f,
    transitions_of_codes,
)
from dataset.metrics.structure import (
    SectionMetrics,
    drum_periods,
    phrase_hits_of_bars,
    phrase_structure_of_counts,
    phrase_structure_of_views,
    polyrhythm,
    section_metrics_of_spans,
    section_spans,
)
from dataset.registry import (
    BUILTIN_KEYS,
    MetricGrid,
    MetricSpec,
    register_metric,
    registered_metrics,
)

__all__ = [
    # the metrics dicts
    "window_metrics",
    "song_metrics",
    "section_level_metrics",
    "level_metrics",
    "song_level_metrics",
    # registered metrics
    "metric_grid",
    "registered_specs",
    "swing_metric",
    "polyrhythm_metric",
    "drum_periods_metric",
]


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
    """float32 (..., steps) drums hit on each step (:func:`hits_per_step`)."""
    codes: np.ndarray
    """int64 (..., steps) :func:`step_codes`."""
    per_bar: np.ndarray
    """float64 (..., bars) hits in each complete bar (exact integers)."""
    spans: list[tuple[int, int]]
    """The non-empty clipped sections."""
    ngram_distinct: np.ndarray
    """float64 (...) distinct 4-grams (:func:`n_grams` ``num_distinct``)."""
    fast_hits: np.ndarray | None
    """float64 (...) :func:`fast_hits` with the window's ``fast_threshold`` (None with
    ``song_only``)."""


def _window_parts(
    seq: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    sections: list[tuple[int, int]] | None = None,
    fast_threshold: int = 4,
    song_only: bool = False,
) -> _WindowParts:
    """:func:`window_metrics` of ``seq``, with the intermediate results it shares.

    With ``song_only``, what :func:`song_metrics` leaves out is not computed: ``flat`` has no
    ``step/co_occurrence``, ``step/transitions``, ``step/ioi_var`` and ``step/ioi_hist``, and
    ``fast_hits`` is None (the other values are the same).
    """
    h = as_hits(seq)
    phrase_len = steps_per_bar * bars_per_phrase
    # The checks of the functions below, in the order in which they would raise.
    check_positive(fast_threshold, "fast_threshold")
    check_positive(steps_per_bar, "steps_per_bar")
    check_positive(bars_per_phrase, "bars_per_phrase")
    check_positive(phrase_len, "phrase_len")
    steps, drums = h.shape[-2], h.shape[-1]
    spans = section_spans(steps, sections, phrase_len)
    check_drums(drums)
    # Intermediate results shared by the metrics (each computed once).
    weights = np.ones((drums, 2), dtype=np.float32)
    weights[:, 1] = np.exp2(np.arange(drums, dtype=np.float32))  # step codes, exact below 25
    products = hit_products(h, weights)
    per_step = np.ascontiguousarray(products[..., 0])
    codes = products[..., 1].astype(np.int64) if drums <= 24 else step_codes(h)
    del products
    per_bar = bar_hits(per_step, steps_per_bar, drums)
    bar_dens = per_bar / steps_per_bar  # bar_density_of_counts, keeping the hits per bar
    if c_like(h):
        struct = phrase_structure_of_counts(
            h, per_step, bar_dens, steps_per_bar, bars_per_phrase, codes
        )
    else:
        struct = phrase_structure_of_views(h, steps_per_bar, bars_per_phrase)
    # A histogram of every step pattern of each window, where the alphabet is small.
    counts = pattern_counts(codes, drums) if steps and small_alphabet(drums, steps) else None
    # Few drums: transitions and co-occurrence from the codes (small tables, exact counts).
    pairs: dict[str, np.ndarray] = {}  # (song_only: not computed)
    if not song_only and drums <= MAX_PAIR_DRUMS and steps < F32_EXACT:
        trans = transitions_of_codes(codes, drums)
        if counts is not None:
            co_occ = co_occurrence_of_counts(counts, h.shape)
        else:
            co_occ = co_occurrence_f(h.astype(np.float32))
        pairs = {"step/co_occurrence": co_occ, "step/transitions": trans}
    elif not song_only:
        hf = h.astype(np.float32)
        trans, co_occ = transitions_f(hf, per_step), co_occurrence_f(hf)
        del hf
        pairs = {"step/co_occurrence": co_occ, "step/transitions": trans}
    hits = hit_list(h)
    dens = hit_density_of_counts(per_step, hits_per_drum(hits, h.shape), steps)
    if song_only:  # the mean alone
        ioi = {"step/ioi_mean": ioi_mean_of_hit_list(hits, h.shape)}
    else:
        stats = ioi_stats_of_hit_list(hits, h.shape)
        ioi = {"step/ioi_mean": stats.mean, "step/ioi_var": stats.var, "step/ioi_hist": stats.hist}
    fast = fast_patterns_of_hit_list(hits, h.shape, fast_threshold, steps_per_bar)
    n_fast = None if song_only else fast_hits_of_hit_list(hits, h.shape, fast_threshold)
    del hits
    if spans:
        sect = section_metrics_of_spans(h, codes, spans, per_step)
    else:
        empty = np.zeros((*h.shape[:-2], 0))
        sect = SectionMetrics(empty, empty, np.zeros(h.shape[:-2]))
    if counts is None:
        entropy = pattern_entropy_of_codes(codes, drums)
    else:
        entropy = entropy_of_counts(counts, steps, h.shape[:-2])
    distinct = ngram_distinct_of_codes(codes, drums, 4, counts)
    flat = {
        "step/avg_hits": dens.avg_hits,
        "step/drum_density": dens.drum_density,
        "step/max_hits": dens.max_hits,
        **pairs,
        **ioi,
        "step/entropy": entropy,
        "bar/density": bar_dens,
        "bar/fraction_dense": fraction_dense_of_density(bar_dens),
        "bar/syncopation": syncopation_of_counts(per_step, steps_per_bar),
        "bar/metrical_syncopation": metrical_syncopation_of_counts(per_step, steps_per_bar),
        "bar/fast_fraction": fast.fraction,
        "bar/fast_runs_per_bar": fast.runs_per_bar,
        "bar/ngram_diversity": safe_div(distinct, max(steps - 3, 0)),
        "phrase/bar_repetition": struct.bar_repetition,
        "phrase/phrase_repetition": struct.phrase_repetition,
        "phrase/fill_ratio": struct.fill_ratio,
        "phrase/entropy": phrase_entropy_of_codes(codes, drums, phrase_len),
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
    w = _window_parts(seq, steps_per_bar, bars_per_phrase, None, fast_threshold, True).flat
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


# ----------------------------------------------------------------------------- the metrics dict


def metric_grid(steps_per_bar: int, bars_per_phrase: int, fast_threshold: int) -> MetricGrid:
    """The grid that registered metrics are called with (:class:`dataset.registry.MetricGrid`)."""
    return MetricGrid(int(steps_per_bar), int(bars_per_phrase), int(fast_threshold))


def registered_specs(specs: Mapping[str, MetricSpec] | None, level: str) -> dict[str, MetricSpec]:
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
    grid = metric_grid(steps_per_bar, bars_per_phrase, 4)
    listed = _section_list(seq, parts, steps_per_bar, registered_specs(specs, "section"), grid)
    batch, drums = parts.h.shape[:-2], parts.h.shape[-1]
    if not listed:
        shapes = {"drum_density": (drums,)}
        keys = [*BUILTIN_KEYS["section"], *registered_specs(specs, "section")]
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
        drum_density = safe_div(per_drum, size)  # (..., n, drums)
        max_hits = steps.max(axis=-1).astype(np.float64)
        dense = fraction_above_of_density(
            bar_density_of_counts(steps, steps_per_bar, drums), drums / 2
        )
    else:
        drum_density = np.stack(
            [safe_div(h[..., s:e, :].sum(axis=-2), e - s) for s, e in spans], axis=-2
        )
        max_hits = np.stack([per_step[..., s:e].max(axis=-1) for s, e in spans], -1)
        max_hits = max_hits.astype(np.float64)
        dense = np.stack(
            [
                fraction_above_of_density(
                    bar_density_of_counts(per_step[..., s:e], steps_per_bar, drums), drums / 2
                )
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
    grid = metric_grid(steps_per_bar, bars_per_phrase, fast_threshold)
    out: dict[str, Any] = {
        "step": {
            "avg_hits": w["step/avg_hits"],
            "drum_density": w["step/drum_density"],
            "max_hits": w["step/max_hits"],
            "ioi_mean": w["step/ioi_mean"],
            "ioi_var": w["step/ioi_var"],
            "ioi_hist": w["step/ioi_hist"],
            "co_occurrence": co_occurrence_fraction_of_counts(p.per_step),
            "co_occurrence_matrix": w["step/co_occurrence"],
            "transitions": step_transitions_f(h.astype(np.float32)),
            "onset_transitions": w["step/transitions"],
            "fast_patterns": p.fast_hits,
            "step_entropy": w["step/entropy"],
        },
        "bar": {
            "density": w["bar/density"],
            "fraction_dense_bars": fraction_above_of_density(w["bar/density"], drums / 2),
            "fraction_busy_bars": w["bar/fraction_dense"],
            "syncopation": w["bar/syncopation"],
            "metrical_syncopation": w["bar/metrical_syncopation"],
            "fast_fraction": w["bar/fast_fraction"],
            "fast_runs_per_bar": w["bar/fast_runs_per_bar"],
            "ngram_diversity": p.ngram_distinct,
            "ngram_diversity_ratio": w["bar/ngram_diversity"],
        },
        "phrase": {
            "phrase_structure": phrase_hits_of_bars(p.per_bar, bars_per_phrase),
            "bar_repetition": w["phrase/bar_repetition"],
            "phrase_repetition": w["phrase/phrase_repetition"],
            "fill_ratio": w["phrase/fill_ratio"],
            "phrase_entropy": w["phrase/entropy"],
            "section_contrast": w["section/contrast"],
        },
    }
    done: dict[str, np.ndarray] = {}  # a metric of several window levels is computed once
    for level in ("step", "bar", "phrase"):
        for name, spec in registered_specs(specs, level).items():
            if name not in done:
                done[name] = spec(seq, grid)
            out[level][name] = done[name]
    out["section"] = _section_list(seq, p, steps_per_bar, registered_specs(specs, "section"), grid)
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
    grid = metric_grid(steps_per_bar, bars_per_phrase, fast_threshold)
    for name, spec in registered_specs(specs, "song").items():
        out[name] = spec(seq, grid)
    return out


# ----------------------------------------------------------------------------- built-in extras
# Registered like a user's metric would be (module-level functions: picklable for workers).


def swing_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`swing` on the grid's bars and beats."""
    return swing(seq, grid.steps_per_bar, grid.beats_per_bar)


def polyrhythm_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`polyrhythm` with periods up to one bar."""
    return polyrhythm(seq, grid.steps_per_bar)


def drum_periods_metric(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """:func:`drum_periods` up to one bar."""
    return drum_periods(seq, grid.steps_per_bar)


register_metric("swing", swing_metric, levels=("bar", "song"), batched=True,
                replace=True)  # fmt: skip
register_metric("polyrhythm", polyrhythm_metric, levels=("phrase", "song"), batched=True,
                replace=True)  # fmt: skip
register_metric("drum_periods", drum_periods_metric, levels=("song",), batched=True,
                replace=True)  # fmt: skip
