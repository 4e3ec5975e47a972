"""Extensible metrics: one function and one registration, and it is in the dataset's metrics.

The seed asks for metrics that are "easy to add (e.g. swing, polyrhythm)". A metric here is a
pure function ``fn(seq, grid) -> value`` of a drum sequence ``seq`` (an array
``(..., steps, drums)``, values in [0, 1], a hit is a value > 0) and the time grid ``grid``
(:class:`MetricGrid`: steps per bar, bars per phrase, ...). Registered for some of the levels
:data:`LEVELS`, it appears in every sample of
:class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset` built afterwards, under
``sample["metrics"][level][name]``:

* ``"step"``, ``"bar"``, ``"phrase"``: ``fn`` of the sample window (the level says what the
  value describes, as for the built-in metrics of that level);
* ``"section"``: ``fn`` of each section of the window, in each entry of the section list;
* ``"song"``: ``fn`` of the whole source sequence, computed once per file and cached.

>>> import numpy as np
>>> from dataset.registry import register_metric, unregister_metric, compute_metrics
>>> @register_metric("kick_share", levels=("bar", "song"), batched=True)
... def kick_share(seq, grid):
...     h = np.asarray(seq) > 0
...     hits = h.sum(axis=(-1, -2))
...     return np.where(hits > 0, h[..., 0].sum(axis=-1) / np.maximum(hits, 1), 0.0)
>>> compute_metrics(np.eye(4, 2), names=["kick_share"])
{'kick_share': array(0.5)}
>>> _ = unregister_metric("kick_share")

The callers that want every registered metric (the dataset, and the evaluation, ``drum-env
stats`` and reward terms) need one loop: :func:`registered_metrics` lists them with their levels,
:func:`compute_metrics` computes them on a sequence. Built in and registered when
:mod:`dataset.metrics` is imported: ``swing`` (:func:`dataset.metrics.swing`) and
``polyrhythm`` / ``drum_periods`` (:func:`dataset.metrics.polyrhythm`,
:func:`dataset.metrics.drum_periods`).

This module imports numpy only; :mod:`dataset.metrics` imports it (never the other way round).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np

__all__ = [
    "LEVELS",
    "BUILTIN_KEYS",
    "VELOCITY_KEYS",
    "MetricGrid",
    "MetricSpec",
    "register_metric",
    "unregister_metric",
    "registered_metrics",
    "compute_metrics",
]

LEVELS: tuple[str, ...] = ("step", "bar", "phrase", "section", "song")
"""The levels of the dataset's metrics dict, in the seed's order."""

BUILTIN_KEYS: Mapping[str, tuple[str, ...]] = {
    "step": (
        "avg_hits",
        "drum_density",
        "max_hits",
        "ioi_mean",
        "ioi_var",
        "ioi_hist",
        "co_occurrence",
        "co_occurrence_matrix",
        "transitions",
        "onset_transitions",
        "fast_patterns",
        "step_entropy",
    ),
    "bar": (
        "density",
        "fraction_dense_bars",
        "fraction_busy_bars",
        "syncopation",
        "metrical_syncopation",
        "fast_fraction",
        "fast_runs_per_bar",
        "ngram_diversity",
        "ngram_diversity_ratio",
    ),
    "phrase": (
        "phrase_structure",
        "bar_repetition",
        "phrase_repetition",
        "fill_ratio",
        "phrase_entropy",
        "section_contrast",
    ),
    "section": (
        "avg_hits",
        "drum_density",
        "max_hits",
        "dense_frac",
        "step_entropy",
    ),
    "song": (
        "avg_hits",
        "drum_density",
        "max_hits",
        "step_entropy",
        "phrase_entropy",
        "ngram_diversity",
        "length_steps",
        "length_bars",
        "ioi_mean",
        "co_occurrence",
        "fraction_dense_bars",
        "fraction_busy_bars",
        "syncopation",
        "metrical_syncopation",
        "fast_patterns",
        "fast_runs_per_bar",
        "bar_repetition",
        "phrase_repetition",
        "fill_ratio",
        "section_contrast",
        "ngram_diversity_ratio",
    ),
}
"""The built-in metric names of each level, in the order of the dataset's dicts (see
:func:`dataset.metrics.level_metrics` and :func:`dataset.metrics.song_level_metrics`, which
define them). A registered metric may not take one of these names at a level it registers for."""

VELOCITY_KEYS: Mapping[str, tuple[str, ...]] = {
    "bar": (
        "velocity_mean",
        "velocity_spread",
        "accent_pattern",
        "accent_contrast",
        "dynamic_range",
    ),
    "song": (
        "velocity_mean",
        "velocity_spread",
        "accent_pattern",
        "accent_contrast",
        "mean_dynamic_range",
    ),
}
"""The velocity metrics of the dataset's metrics dict at each level, in order (defined by
:data:`dataset.metrics.VELOCITY_SPECS`). They are not registered: the registered song-level
metrics are hit metrics to the evaluation's families and the env's reward term. The dataset
adds them after the registered metrics of a level; no registered metric may take one of these
names, at any level."""


class MetricGrid(NamedTuple):
    """The time grid a metric function is given: how steps group into bars and phrases."""

    steps_per_bar: int = 16
    """Steps in one bar (16 = 16th notes in 4/4)."""
    bars_per_phrase: int = 4
    """Bars in one phrase."""
    fast_threshold: int = 4
    """The dataset's ``fast_threshold``, steps."""
    beats_per_bar: int = 4
    """Beats (quarter notes in 4/4) in one bar."""

    @property
    def phrase_len(self) -> int:
        """Steps in one phrase, ``steps_per_bar * bars_per_phrase``."""
        return self.steps_per_bar * self.bars_per_phrase


MetricFn = Callable[[np.ndarray, MetricGrid], Any]
"""``fn(seq, grid)``: ``seq`` an array ``(steps, drums)`` (or ``(..., steps, drums)`` for a
batched metric), returning a finite number or array (``(...)`` batch shape in front)."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric (see :func:`register_metric`)."""

    name: str
    """Key of the metric in each level's dict."""
    fn: MetricFn
    """The metric function ``fn(seq, grid)``."""
    levels: tuple[str, ...]
    """Levels it appears at, a subset of :data:`LEVELS` in their order."""
    batched: bool = False
    """Whether ``fn`` takes a batch ``(..., steps, drums)`` and returns ``(...)`` in front;
    otherwise it is called once per sequence ``(steps, drums)``."""

    def __call__(self, seq: np.ndarray, grid: MetricGrid | None = None) -> np.ndarray:
        """The metric of ``seq``, checked.

        Args:
            seq: array (..., steps, drums), values in [0, 1]; a hit is a value > 0.
            grid: the time grid; ``None`` for :class:`MetricGrid` defaults.

        Returns:
            float64 array ``(..., *value_shape)``: the batch shape of ``seq`` in front.

        Raises:
            ValueError: ``seq`` has fewer than two axes, or ``fn`` returned a value that is not
                finite, is empty, lacks the batch shape, or whose shape differs between the
                sequences of the batch (the message names the metric).
        """
        seq = np.asarray(seq)
        if seq.ndim < 2:
            raise ValueError(f"seq must have shape (..., steps, drums), got shape {seq.shape}")
        grid = MetricGrid() if grid is None else grid
        batch = seq.shape[:-2]
        if self.batched or not batch:
            out = np.asarray(self.fn(seq, grid), dtype=np.float64)
        elif math.prod(batch) == 0:  # no sequence: the value shape from a silent one
            one = np.asarray(self.fn(np.zeros(seq.shape[-2:], seq.dtype), grid), np.float64)
            out = np.zeros((*batch, *one.shape))
        else:
            flat = seq.reshape(-1, *seq.shape[-2:])
            values = [np.asarray(self.fn(s, grid), dtype=np.float64) for s in flat]
            shapes = sorted({v.shape for v in values})
            if len(shapes) > 1:
                raise ValueError(
                    f"metric {self.name!r} returned values of different shapes {shapes} for "
                    f"the {len(values)} sequences of one batch: a metric's value must have one "
                    "shape for sequences of one length"
                )
            out = np.stack(values).reshape(*batch, *values[0].shape)
        if out.shape[: len(batch)] != batch:
            raise ValueError(
                f"metric {self.name!r} returned shape {out.shape} for sequences of shape "
                f"{seq.shape}: the batch shape {batch} must come first"
            )
        value_shape = out.shape[len(batch) :]
        if math.prod(value_shape) == 0:
            raise ValueError(
                f"metric {self.name!r} returned an empty value (shape {value_shape} per "
                "sequence): a metric gives at least one number"
            )
        if not np.all(np.isfinite(out)):
            raise ValueError(f"metric {self.name!r} returned a value that is not finite")
        return out


_REGISTRY: dict[str, MetricSpec] = {}


def _check_levels(levels: Iterable[str]) -> tuple[str, ...]:
    if isinstance(levels, str):
        levels = (levels,)
    levels = tuple(levels)
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown or not levels or len(set(levels)) != len(levels):
        raise ValueError(
            f"levels must be distinct names from {LEVELS}, at least one; got {levels!r}"
        )
    return tuple(lv for lv in LEVELS if lv in levels)


def register_metric(
    name: str,
    fn: F | None = None,
    *,
    levels: Iterable[str] = ("song",),
    batched: bool = False,
    replace: bool = False,
) -> Any:
    """Register a metric, so that datasets built from now on compute it at ``levels``.

    Use it as a call, ``register_metric("swing", swing_fn, levels=("bar", "song"))``, or as a
    decorator, ``@register_metric("swing", levels=("bar", "song"))``. The function is called
    ``fn(seq, grid)``, see :class:`MetricSpec`; it must be finite for every input (empty,
    one-step, silent and all-hit sequences included). A dataset takes a snapshot of the
    registry when it is built (its DataLoader workers use that snapshot): register metrics at
    import time of your module, before building datasets. With a ``"spawn"`` start method the
    function must be importable (a module-level function, not a lambda).

    Args:
        name: key of the metric in the levels' dicts: a non-empty string without ``"/"``, not
            a built-in key of those levels (:data:`BUILTIN_KEYS`) nor a velocity metric's name
            (:data:`VELOCITY_KEYS`).
        fn: the metric function; ``None`` to return a decorator.
        levels: levels it appears at, from :data:`LEVELS`.
        batched: ``fn`` takes ``(..., steps, drums)`` and returns the batch shape in front (the
            dataset then computes a whole batch of windows in one call); otherwise it is called
            once per ``(steps, drums)`` sequence.
        replace: replace a metric already registered under ``name`` instead of raising.

    Returns:
        ``fn`` (unchanged), or a decorator that registers and returns its function.

    Raises:
        ValueError: for a bad ``name`` or ``levels``, a built-in or velocity name, or a name
            already registered (without ``replace=True``).
        TypeError: if ``fn`` is not callable.
    """
    if not isinstance(name, str) or not name or "/" in name or name.startswith("_"):
        raise ValueError(f"name must be a non-empty string without '/' or a leading '_': {name!r}")
    lv = _check_levels(levels)
    clash = [level for level in lv if name in BUILTIN_KEYS[level]]
    if clash:
        raise ValueError(f"{name!r} is a built-in metric of level(s) {clash}: choose another name")
    if any(name in keys for keys in VELOCITY_KEYS.values()):
        raise ValueError(
            f"{name!r} is a velocity metric of the dataset (VELOCITY_KEYS): choose another name"
        )
    if name in _REGISTRY and not replace:
        raise ValueError(f"a metric {name!r} is registered already (pass replace=True)")

    def register(func: F) -> F:
        if not callable(func):
            raise TypeError(f"fn must be callable, got {type(func).__name__}")
        _REGISTRY[name] = MetricSpec(name, func, lv, bool(batched))
        return func

    return register if fn is None else register(fn)


def unregister_metric(name: str) -> MetricSpec:
    """Remove a registered metric (built-ins too: ``swing``, ``polyrhythm``, ``drum_periods``).

    Args:
        name: its name.

    Returns:
        the removed :class:`MetricSpec` (``register_metric(s.name, s.fn, levels=s.levels,
        batched=s.batched)`` puts it back).

    Raises:
        KeyError: if no metric of that name is registered.
    """
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise KeyError(f"no metric {name!r} is registered; registered: {list(_REGISTRY)}") from None


def registered_metrics(level: str | None = None) -> dict[str, MetricSpec]:
    """The registered metrics, in registration order.

    Args:
        level: only those of this level (one of :data:`LEVELS`); ``None`` for all.

    Returns:
        a new dict ``name -> MetricSpec`` (changing it does not change the registry).
    """
    if level is not None:
        _check_levels((level,))
    return {k: s for k, s in _REGISTRY.items() if level is None or level in s.levels}


def compute_metrics(
    seq: np.ndarray,
    grid: MetricGrid | None = None,
    *,
    level: str | None = None,
    names: Iterable[str] | None = None,
    specs: Mapping[str, MetricSpec] | None = None,
) -> dict[str, np.ndarray]:
    """Compute registered metrics on a sequence (or a batch of them).

    Args:
        seq: array (steps, drums) or (..., steps, drums), values in [0, 1]; a hit is a value
            > 0.
        grid: the time grid; ``None`` for :class:`MetricGrid` defaults.
        level: only the metrics of this level; ``None`` for all.
        names: only these metrics (each must be among those selected).
        specs: the metrics to choose from; ``None`` for the registry now.

    Returns:
        dict ``name -> float64 array`` (batch shape of ``seq`` in front), in registration
        order.

    Raises:
        KeyError: for a name in ``names`` that is not among the metrics.
        ValueError: see :meth:`MetricSpec.__call__`.
    """
    chosen = dict(registered_metrics(level) if specs is None else specs)
    if level is not None and specs is not None:
        chosen = {k: s for k, s in chosen.items() if level in s.levels}
    if names is not None:
        names = list(names)
        missing = [n for n in names if n not in chosen]
        if missing:
            raise KeyError(f"no registered metric {missing} (level {level!r}): {list(chosen)}")
        chosen = {n: chosen[n] for n in names}
    return {k: s(seq, grid) for k, s in chosen.items()}
