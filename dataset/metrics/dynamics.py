"""Dynamics: the velocities of the hits, read exactly.

Per drum, :func:`velocity_stats` (mean and spread of the hit velocities) and
:func:`accent_contrast`; per position in the bar, :func:`accent_pattern`; per bar,
:func:`bar_dynamic_range` and :func:`bar_velocity_stats`; :func:`mean_dynamic_range`; and
:func:`velocity_features`, one fixed-length vector of them for a bar, a phrase or a song (the
env's velocity rewards). The dataset adds them to its metrics dict through
:data:`VELOCITY_SPECS`, not through the registry (whose song-level metrics the evaluation and
the env's reward judge as hit metrics); :func:`velocity_values` computes all of them at once
for the window tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from dataset.metrics.kernels import check_positive, complete_chunks, time_last
from dataset.registry import (
    VELOCITY_KEYS,
    MetricGrid,
    MetricSpec,
)

__all__ = [
    # checked input
    "as_velocities",
    # per drum, per position in the bar, per bar
    "VelocityStats",
    "velocity_stats",
    "accent_contrast",
    "accent_pattern",
    "bar_velocity_stats",
    "bar_dynamic_range",
    "mean_dynamic_range",
    # one vector of them, for the env's rewards
    "velocity_features",
    "velocity_feature_names",
    # the dataset's velocity metrics
    "VELOCITY_SPECS",
    "VELOCITY_METRIC_NAMES",
    "velocity_values",
]


# ----------------------------------------------------------------------------- velocity
# The dynamics of a performance. A hit's value is its velocity (MIDI velocity / 127 in the
# Groove MIDI data); these functions, unlike the metrics of the other modules, read the values
# themselves, exactly as they are (no quantisation), while which steps are hits stays
# ``value > 0``. Binary input has every hit at velocity 1; all-zero input gives 0 everywhere.


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
    vt, ht = time_last(v), time_last(h)
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
    check_positive(steps_per_bar, "steps_per_bar")
    bars = complete_chunks(v, steps_per_bar)
    return _velocity_stats(bars, bars > 0)


def _fold_bar(x: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """Sums over the steps of each position in the bar: (..., steps, drums) -> (..., spb, drums).

    Position ``p`` gathers steps ``t`` with ``t mod steps_per_bar = p``, a trailing partial bar
    included (booleans are counted, as int64).
    """
    full = x.shape[-2] // steps_per_bar
    out = complete_chunks(x, steps_per_bar).sum(axis=-3)
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
    check_positive(steps_per_bar, "steps_per_bar")
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
    check_positive(steps_per_bar, "steps_per_bar")
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
    check_positive(steps_per_bar, "steps_per_bar")
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
    bars = complete_chunks(v, steps_per_bar)
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
    check_positive(steps_per_bar, "steps_per_bar")
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
    check_positive(steps_per_bar, "steps_per_bar")
    h = v > 0
    stats = _velocity_stats(v, h)
    contrast = _accent_contrast(*_position_parts(v, h, steps_per_bar))
    dyn = _mean_of_spans(*_bar_spans(v, steps_per_bar))
    return np.concatenate([stats.mean, stats.spread, contrast, dyn[..., None]], axis=-1)


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
VELOCITY_METRIC_NAMES: Mapping[Any, str] = MappingProxyType(
    {fn: name for name, fn in _VELOCITY_FNS.items()}
)
"""The name of each velocity metric's function in :data:`VELOCITY_SPECS` (read-only): how
:class:`~dataset.metrics.window_tables.WindowTables` knows it can compute them together with
:func:`velocity_values`."""


def velocity_values(seq: np.ndarray, steps_per_bar: int) -> dict[str, np.ndarray]:
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
