"""Rhythm metrics of drum sequences: pure, vectorised numpy functions, a package by family.

This package is the single source of every metric in drum-env. The dataset, the environments'
rewards, the evaluation, the tests and the benchmarks all call these functions; nothing else
re-implements them. Import them from here (``from dataset.metrics import hit_density``); the
modules hold them by family:

| module | what it holds |
|---|---|
| ``hits`` | hits and timing: densities, IOIs, co-occurrence, fast runs, syncopation, swing |
| ``patterns`` | patterns and variety: step codes, n-grams, transitions, entropies |
| ``structure`` | bars, phrases, sections: repetition, fills, sections, periods, polyrhythm |
| ``dynamics`` | the velocities of the hits: accents, dynamic range, velocity features |
| ``levels`` | the metrics dicts of a window and of a song; the built-in registered metrics |
| ``window_tables`` | the window cache: every window's level metrics from per-file tables |
| ``kernels`` | the shared kernels the families compute with |

Each family module also makes public the kernels behind its metrics (a metric computed from
intermediate results that another module shares); they are not re-exported here.

Conventions shared by every function:

* ``seq`` is an array ``(..., steps, drums)``: any leading batch axes, then time (one step is
  ``1 / steps_per_bar`` of a bar, a 16th note for the default 16) and the drum classes. Values are
  velocities in ``[0, 1]`` or binary hits; **a hit is a value > 0** and every metric works on hits
  only (velocity is ignored), except those of :mod:`~dataset.metrics.dynamics`, which read each
  hit's value as its velocity, exactly (no quantisation; they check the values are in
  ``[0, 1]``). Boolean arrays are accepted as they are (a velocity of 1 for each hit).
* Every metric is finite for every input: an empty sequence (0 steps), one step, all silence and
  all hits give well-defined numbers (the edge-case value is stated in each docstring), never NaN.
* Counts are in steps (time), hits (onsets of one drum at one step) or bars; units are stated.
* Functions return float64 arrays (or NamedTuples of them) with the batch shape ``(...)`` in
  front, so ``f(seq)[i] == f(seq[i])`` for a stacked batch.

Window-level helpers (``window_metrics``, ``song_metrics``) combine the functions into flat
``{"level/name": value}`` dictionaries (the env's episode metrics use ``song_metrics``).

Where the seed document defines a metric otherwise than this package first did, both stay: the
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
:func:`polyrhythm`, :func:`drum_periods`, registered when this package is imported).

:mod:`~dataset.metrics.dynamics` describes the dynamics: per drum, :func:`velocity_stats` (mean
and spread of the hit velocities) and :func:`accent_contrast`; per position in the bar,
:func:`accent_pattern`; per bar, :func:`bar_dynamic_range` and :func:`bar_velocity_stats`;
:func:`mean_dynamic_range`; and :func:`velocity_features`, one fixed-length vector of them for
a bar, a phrase or a song (the env's velocity rewards). The dataset adds them to its metrics
dict through :data:`VELOCITY_SPECS`, not through the registry (whose song-level metrics the
evaluation and the env's reward judge as hit metrics).
"""

from __future__ import annotations

from dataset.metrics.dynamics import (
    VELOCITY_SPECS,
    VelocityStats,
    accent_contrast,
    accent_pattern,
    as_velocities,
    bar_dynamic_range,
    bar_velocity_stats,
    mean_dynamic_range,
    velocity_feature_names,
    velocity_features,
    velocity_stats,
)
from dataset.metrics.hits import (
    FastPatterns,
    HitDensity,
    IOIStats,
    bar_density,
    co_occurrence,
    co_occurrence_fraction,
    fast_hits,
    fast_patterns,
    fraction_bars_above,
    fraction_dense_bars,
    hit_density,
    ioi_stats,
    metrical_syncopation,
    metrical_weights,
    swing,
    syncopation,
)
from dataset.metrics.kernels import as_hits
from dataset.metrics.levels import (
    level_metrics,
    section_level_metrics,
    song_level_metrics,
    song_metrics,
    window_metrics,
)
from dataset.metrics.patterns import (
    NGramStats,
    n_gram_counter,
    n_grams,
    pattern_entropy,
    phrase_entropy,
    step_codes,
    step_transitions,
    transitions,
)
from dataset.metrics.structure import (
    PhraseStructure,
    SectionMetrics,
    aggregate,
    default_sections,
    drum_periods,
    jaccard,
    phrase_hits_per_bar,
    phrase_structure,
    polyrhythm,
    section_metrics,
    section_spans,
)
from dataset.metrics.window_tables import WindowLayout, WindowTables
from dataset.registry import register_metric

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
