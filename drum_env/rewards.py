"""Reward levels, shaping presets and running normalisation for DrumCompose.

The reward of one env step is

    r_t = sum_k w_k * n_k(x_k(t))        (sum over the terms k that close at step t)

where ``x_k`` is the raw term of level ``k``, ``n_k`` its running normalisation (or the identity
for an unnormalised shaping) and ``w_k`` the shaping's weight. The terms:

| term | closes | raw value (each in [-1, 0]) |
|---|---|---|
| ``step`` | every composed step | ``-mean_d (a_d - p_ref[pos, d])**2``: the step's hits vs the reference window's hit rate of each drum at this position in the bar |
| ``bar`` | at each composed bar end | ``-mean_k |f_bar(c)_k - f_bar(r)_k|``: :func:`bar_features` of the composed bar vs the reference bar at the same place |
| ``phrase`` | at each phrase end | the same with :func:`phrase_features` |
| ``section`` | at each section end | the same with :func:`section_features` |
| ``song`` | at the episode's end | the same with :func:`song_features` of the whole canvas vs the whole reference window |
| ``silence`` | at each composed bar end | ``-1`` if the composed bar is silent while the reference bar is not, else 0 |
| ``repetition`` | at each composed bar end | ``-1`` if the composed bar repeats one non-silent step pattern on every step while the reference bar does not, else 0 |
| ``metrics`` | at the episode's end | ``-mean_{m, j} |a_{m,j} - b_{m,j}| / max(|a_{m,j}|, |b_{m,j}|)`` (a term 0/0 counts 0) over the elements ``j`` of every metric ``m`` registered at level ``song`` (:mod:`dataset.registry`; ``swing``, ``polyrhythm``, ``drum_periods`` ship), ``a`` of the canvas and ``b`` of the reference window: :func:`registered_distance`. Weight 0 in every preset (opt in with ``weights={"metrics": 1}``); while its weight is 0 it is not computed and never closes |
| ``bar_velocity`` | at each composed bar end, expressive env only | ``-mean_k |f_vel(c)_k - f_vel(r)_k|``: :func:`velocity_features` of the bar's velocities vs the reference bar's (after the primer the reference's velocities are moved to their bins' levels, so the real continuation's classes score 0) |
| ``phrase_velocity`` | at each phrase end, expressive env only | the same over the phrase |
| ``song_velocity`` | at the episode's end, expressive env only | the same over the whole window |
| ``variety`` | at each composed bar end | ``-(1/3) sum_j |v(c_k, c_{k-1})_j - v(r_k, r_{k-1})_j|``: :func:`variety_features` ``v`` = [Jaccard similarity with the bar before, pattern entropy / log2(min(S, 2**D)), 4-gram diversity] of composed bar ``c_k`` (after ``c_{k-1}``) vs reference bar ``r_k`` (after ``r_{k-1}``); a window's first bar counts as its own bar before |

Every feature is computed by ``dataset.metrics`` (nothing here re-implements a metric) and scaled
to ``[0, 1]``, so a raw term is a mean absolute feature difference with a minus sign.

Running normalisation (``n_k``): each term keeps a count, mean and variance (Chan's parallel form
of Welford's algorithm) over all its closed values; ``n_k(x) = clip((x - mean_k) / sqrt(var_k +
1e-8), -clip, clip)``, and the identity while fewer than two values have been seen. An episode's
terms join the statistics when the episode ends, so every reward of an episode is scaled by the
same numbers (and Gymnasium's ``check_env`` sees repeatable rewards).

The default shaping, ``aligned`` (see :data:`SHAPINGS`), has the property a user relies on:
on held-out real data the real continuation of the primer has the highest return, and the
returns of simple reference players (per-position mode, loop-the-primer, a pretrained policy
sampled or thresholded, random players, silence) rank like their shaping-independent
evaluation scores (:mod:`agents.alignment` measures it). Every term of ``aligned`` is 0 when
the composition equals the reference and at most 0 otherwise, so the real continuation is a
maximum of every term, normalised or not (the normalisation is increasing). It leaves out the
``step`` term: a term that is a function of one step's action is maximised by the per-position
mode (for the step term, ``(a - p)**2`` is smallest at ``a = round(p)``), so with 48 step terms
an episode the mode of the reference outscored the real continuation and RL drifted to
variation-free play. Instead it adds ``variety`` (weight 3): how much each bar varies from
the bar before it and how varied its step patterns are, against the reference's, which a
mode-seeking or variation-free player cannot match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from dataset import metrics

__all__ = [
    "LEVELS",
    "TERMS",
    "VELOCITY_TERMS",
    "velocity_features",
    "velocity_feature_size",
    "SHAPINGS",
    "DEFAULT_SHAPING",
    "Shaping",
    "make_shaping",
    "MAX_WEIGHT",
    "check_weights",
    "step_probabilities",
    "bar_features",
    "phrase_features",
    "section_features",
    "section_features_of_song",
    "song_features",
    "song_features_of_metrics",
    "variety_features",
    "VARIETY_FEATURE_NAMES",
    "SONG_FEATURE_NAMES",
    "feature_distance",
    "registered_distance",
    "check_finite_terms",
    "RunningNormalizer",
    "update_moments",
]

LEVELS: tuple[str, ...] = ("step", "bar", "phrase", "section", "song")
"""The five hierarchical levels, finest first."""

VELOCITY_TERMS: tuple[str, ...] = ("bar_velocity", "phrase_velocity", "song_velocity")
"""The dynamics terms: they close only in the expressive env (``velocity_levels > 0``)."""

TERMS: tuple[str, ...] = (*LEVELS, "silence", "repetition", "variety", "metrics",
                          *VELOCITY_TERMS)  # fmt: skip
"""Every reward term: the five levels, the two terms against degenerate play, the bar-level
variety term (see :func:`variety_features`), the opt-in registered-metrics term, then the
velocity terms (:data:`VELOCITY_TERMS`)."""


# ----------------------------------------------------------------------------- shapings


class _Weights(dict):
    """A read-only, hashable, picklable dict of term weights."""

    def _readonly(self, *args: object, **kwargs: object) -> None:
        raise TypeError("shaping weights are read-only; use make_shaping(weights=...)")

    __setitem__ = __delitem__ = __ior__ = _readonly  # type: ignore[assignment]
    update = pop = popitem = clear = setdefault = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple:
        return (_Weights, (dict(self),))


MAX_WEIGHT: float = 1e3
"""The largest term weight: a weight is a finite number in ``[0, MAX_WEIGHT]`` (0 switches a term
off). Raw terms lie in ``[-1, 0]`` and normalised ones in ``[-5, 5]``, so every reward stays
finite and far from float32's limits."""


def check_weights(weights: object) -> None:
    """Raise ``ValueError`` unless ``weights`` maps known terms to numbers in ``[0, MAX_WEIGHT]``.

    The message names ``weights`` and the offending term.
    """
    if not isinstance(weights, Mapping):
        raise ValueError(f"weights must map term names to numbers, got {weights!r}")
    unknown = sorted(str(k) for k in set(weights) - set(TERMS))
    if unknown:
        raise ValueError(f"weights has unknown term(s) {unknown}; known terms: {list(TERMS)}")
    for term, w in weights.items():
        number = isinstance(w, (int, float, np.integer, np.floating)) and not isinstance(
            w, (bool, np.bool_)
        )
        if not number or not np.isfinite(w) or not 0.0 <= float(w) <= MAX_WEIGHT:
            raise ValueError(
                f"weights: {term!r} must be a finite number in [0, {MAX_WEIGHT:g}] (0 switches "
                f"the term off), got {w!r}"
            )


@dataclass(frozen=True)
class Shaping:
    """A named reward shaping: one weight per term and whether terms are normalised.

    Attributes:
        name: the preset's name (or "custom").
        weights: weight of each term of :data:`TERMS` (missing terms weigh 0).
        normalize: whether each term is divided by its running standard deviation (after
            subtracting its running mean) before weighting.
    """

    name: str
    weights: Mapping[str, float] = field(default_factory=dict)
    normalize: bool = True

    def __post_init__(self) -> None:
        check_weights(self.weights)
        full = {k: float(self.weights.get(k, 0.0)) for k in TERMS}
        object.__setattr__(self, "weights", _Weights(full))

    @property
    def weight_vector(self) -> np.ndarray:
        """float64 array (len(TERMS),): the weights in :data:`TERMS` order."""
        return np.array([self.weights[k] for k in TERMS])


_ALL = {"step": 1.0, "bar": 1.0, "phrase": 1.0, "section": 1.0, "song": 1.0,
        "silence": 1.0, "repetition": 1.0}  # fmt: skip
_ALIGNED_HITS = {"bar": 1.0, "phrase": 1.0, "section": 1.0, "song": 1.0, "silence": 1.0,
                 "repetition": 1.0, "variety": 3.0}  # fmt: skip
_ALIGNED = {**_ALIGNED_HITS, "bar_velocity": 1.0, "phrase_velocity": 1.0, "song_velocity": 1.0}

SHAPINGS: Mapping[str, Shaping] = MappingProxyType(
    {
        "aligned": Shaping("aligned", _ALIGNED, normalize=True),
        "aligned-raw": Shaping("aligned-raw", _ALIGNED, normalize=False),
        "aligned-hits": Shaping("aligned-hits", _ALIGNED_HITS, normalize=True),
        "sparse": Shaping("sparse", {"song": 1.0}, normalize=True),
        "step": Shaping("step", {"step": 1.0, "song": 1.0}, normalize=True),
        "bar": Shaping(
            "bar", {"bar": 1.0, "song": 1.0, "silence": 1.0, "repetition": 1.0}, normalize=True
        ),
        "hierarchical": Shaping("hierarchical", _ALL, normalize=True),
        "hierarchical-raw": Shaping("hierarchical-raw", _ALL, normalize=False),
    }
)
"""The named shapings:

| name | weights (all others 0) | normalised |
|---|---|---|
| ``aligned`` (default) | bar, phrase, section, song, silence, repetition 1; variety 3; bar_velocity, phrase_velocity, song_velocity 1 | yes |
| ``aligned-raw`` | as ``aligned`` | no |
| ``aligned-hits`` | as ``aligned`` without the velocity terms: dynamics unrewarded | yes |
| ``sparse`` | song 1 | yes |
| ``step`` | step 1, song 1 | yes |
| ``bar`` | bar 1, song 1, silence 1, repetition 1 | yes |
| ``hierarchical`` | every term but variety, metrics and the velocity terms 1 | yes |
| ``hierarchical-raw`` | as ``hierarchical`` | no |

The velocity terms close only in the expressive env (``velocity_levels > 0``); in the binary
env they never close, so ``aligned`` and ``aligned-hits`` give the same rewards there.

``aligned`` is the default because it is the one whose returns rank real drumming first and
rank the reference players like the held-out evaluation does (see the module docstring); the
others are kept, unchanged, for comparison. ``step`` and ``hierarchical*`` contain the
mode-seeking ``step`` term: under them the per-position mode of the reference outscores the
real continuation.
"""

DEFAULT_SHAPING: str = "aligned"
"""The shaping of ``DrumCompose-v0`` when none is given."""


def make_shaping(
    shaping: str | Shaping = DEFAULT_SHAPING,
    weights: Mapping[str, float] | None = None,
    normalize: bool | None = None,
) -> Shaping:
    """Resolve a shaping name (or object) and optional overrides into a :class:`Shaping`.

    Args:
        shaping: a name of :data:`SHAPINGS` or a Shaping.
        weights: per-term weights that replace the preset's for the terms they name.
        normalize: overrides the preset's normalisation when not None.

    Returns:
        Shaping (named ``"<preset>+custom"`` when overridden).

    Raises:
        ValueError: unknown shaping name or term.
    """
    if isinstance(shaping, str):
        if shaping not in SHAPINGS:
            raise ValueError(f"unknown shaping {shaping!r}; choose one of {list(SHAPINGS)}")
        base = SHAPINGS[shaping]
    elif isinstance(shaping, Shaping):
        base = shaping
    else:
        raise ValueError(f"shaping must be a name or a Shaping, got {type(shaping).__name__}")
    if weights is None and normalize is None:
        return base
    merged = dict(base.weights)
    if weights is not None:
        check_weights(weights)
        merged.update({k: float(v) for k, v in weights.items()})
    norm = base.normalize if normalize is None else bool(normalize)
    return Shaping(f"{base.name}+custom", merged, norm)


# ----------------------------------------------------------------------------- features


def _entropy_scale(steps: int, drums: int) -> float:
    """Largest possible pattern entropy of ``steps`` steps, bits (at least 1, to divide by)."""
    return max(np.log2(min(max(steps, 1), 2.0**drums)), 1.0)


def step_probabilities(ref: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """Hit rate of each drum at each position in the bar, over the complete bars of ``ref``.

    Args:
        ref: bool array (..., steps, drums), steps a multiple of ``steps_per_bar``.
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (..., steps_per_bar, drums), values in [0, 1].
    """
    h = metrics.as_hits(ref)
    bars = h.reshape(*h.shape[:-2], -1, steps_per_bar, h.shape[-1])
    return bars.mean(axis=-3, dtype=np.float64)


def bar_features(bars: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """Features of bars, each in [0, 1]: per-drum density, mean hits per drum, both syncopations.

    Args:
        bars: bool array (..., steps_per_bar, drums).
        steps_per_bar: steps in one bar.

    Returns:
        float64 array (..., drums + 3).
    """
    drums = bars.shape[-1]
    dens = metrics.hit_density(bars)
    return np.concatenate(
        [
            dens.drum_density,
            (dens.avg_hits / drums)[..., None],
            metrics.syncopation(bars, steps_per_bar)[..., None],
            metrics.metrical_syncopation(bars, steps_per_bar)[..., None],
        ],
        axis=-1,
    )


def phrase_features(phrases: np.ndarray, steps_per_bar: int, bars_per_phrase: int) -> np.ndarray:
    """Features of phrases, each in [0, 1]: bar repetition, fills, entropy, 4-gram diversity.

    ``[bar_repetition, fill_ratio / bars_per_phrase, pattern_entropy / log2(min(L, 2**D)),
    n_grams(4).diversity]`` for phrases of ``L`` steps.

    Args:
        phrases: bool array (..., steps_per_bar * bars_per_phrase, drums).
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.

    Returns:
        float64 array (..., 4).
    """
    steps, drums = phrases.shape[-2:]
    structure = metrics.phrase_structure(phrases, steps_per_bar, bars_per_phrase)
    return np.stack(
        [
            structure.bar_repetition,
            structure.fill_ratio / bars_per_phrase,
            metrics.pattern_entropy(phrases) / _entropy_scale(steps, drums),
            metrics.n_grams(phrases, 4).diversity,
        ],
        axis=-1,
    )


def section_features(sections: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """Features of sections, each in [0, 1]: per-drum density, per-drum mean IOI, entropy.

    ``[drum_density (D), min(ioi_mean / steps_per_bar, 1) (D), pattern_entropy / log2(...)]``.

    Args:
        sections: bool array (..., steps, drums).
        steps_per_bar: steps in one bar (the IOI scale).

    Returns:
        float64 array (..., 2 * drums + 1).
    """
    return _section_features(
        metrics.hit_density(sections).drum_density,
        metrics.ioi_stats(sections).mean,
        metrics.pattern_entropy(sections),
        sections.shape[-2:],
        steps_per_bar,
    )


def section_features_of_song(
    song: Mapping[str, np.ndarray], shape: tuple[int, int], steps_per_bar: int
) -> np.ndarray:
    """:func:`section_features` of whole sequences from their :func:`~dataset.metrics.song_metrics`.

    For a section that spans the whole window: the same values, bit for bit (the song metrics
    are the metric functions' values), without computing them again.

    Args:
        song: ``song_metrics`` of bool arrays (..., steps, drums).
        shape: ``(steps, drums)`` of those arrays.
        steps_per_bar: steps in one bar (the IOI scale).

    Returns:
        float64 array (..., 2 * drums + 1).
    """
    return _section_features(song["song/drum_density"], song["song/ioi_mean"],
                             song["song/step_entropy"], shape, steps_per_bar)  # fmt: skip


def _section_features(
    density: np.ndarray, ioi_mean: np.ndarray, entropy: np.ndarray, shape: tuple[int, int],
    steps_per_bar: int,
) -> np.ndarray:  # fmt: skip
    """:func:`section_features` from the three metrics it scales."""
    steps, drums = shape
    return np.concatenate(
        [
            density,
            np.minimum(ioi_mean / steps_per_bar, 1.0),
            (entropy / _entropy_scale(steps, drums))[..., None],
        ],
        axis=-1,
    )


VARIETY_FEATURE_NAMES: tuple[str, ...] = ("bar_jaccard", "entropy/max", "ngram_diversity")
"""Names of the features of :func:`variety_features`."""


def variety_features(bars: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """How a bar varies from the bar before it and within itself, each feature in [0, 1].

    ``[jaccard(bar, previous), pattern_entropy(bar) / log2(min(S, 2**D)),
    n_grams(bar, 4).diversity]`` (:data:`VARIETY_FEATURE_NAMES`) for bars of ``S`` steps and
    ``D`` drums: :func:`dataset.metrics.jaccard` of the two bars' hits (1 when both are
    silent), :func:`dataset.metrics.pattern_entropy` in bits over its largest possible value,
    and :func:`dataset.metrics.n_grams` diversity (distinct 4-grams / 4-grams). A bar repeated
    exactly has Jaccard 1; the per-position mode of a window repeats one bar, and drummers
    rarely do. For the first bar of a window, which has no bar before it, pass the bar itself
    as ``previous`` (Jaccard 1 on both sides of the ``variety`` term: no signal).

    Args:
        bars: bool array (..., steps_per_bar, drums).
        previous: bool array of the same shape: the bar before each bar.

    Returns:
        float64 array (..., 3).
    """
    steps, drums = bars.shape[-2:]
    return np.stack(
        [
            metrics.jaccard(bars, previous),
            metrics.pattern_entropy(bars) / _entropy_scale(steps, drums),
            metrics.n_grams(bars, 4).diversity,
        ],
        axis=-1,
    )


SONG_FEATURE_NAMES: tuple[str, ...] = (
    "avg_hits/drums",
    "syncopation",
    "metrical_syncopation",
    "step_entropy/max",
    "phrase_entropy/max",
    "ngram_diversity",
    "bar_repetition",
    "phrase_repetition",
    "fill_ratio/bars_per_phrase",
    "fraction_dense_bars",
    "fast_runs_per_bar/steps_per_bar",
)
"""Names of the scalar song features; :func:`song_features` appends one density per drum."""


def song_features(songs: np.ndarray, steps_per_bar: int, bars_per_phrase: int) -> np.ndarray:
    """Features of whole sequences, each in [0, 1]: :data:`SONG_FEATURE_NAMES`, then densities.

    These are also the target metrics the agent is conditioned on. Computed from
    :func:`dataset.metrics.song_metrics` (:func:`song_features_of_metrics`).

    Args:
        songs: bool array (..., steps, drums).
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.

    Returns:
        float64 array (..., len(SONG_FEATURE_NAMES) + drums).
    """
    song = metrics.song_metrics(songs, steps_per_bar, bars_per_phrase)
    return song_features_of_metrics(song, songs.shape[-2:], steps_per_bar, bars_per_phrase)


def song_features_of_metrics(
    song: Mapping[str, np.ndarray], shape: tuple[int, int], steps_per_bar: int,
    bars_per_phrase: int,
) -> np.ndarray:  # fmt: skip
    """:func:`song_features` from the :func:`~dataset.metrics.song_metrics` of the sequences.

    The song metrics are the metric functions' values (``hit_density``, ``syncopation``,
    ``pattern_entropy``, ``n_grams``, ``phrase_structure``, ... of the whole sequence), so a
    caller that needs both computes them once.

    Args:
        song: ``song_metrics(songs, steps_per_bar, bars_per_phrase)`` of bool arrays
            (..., steps, drums).
        shape: ``(steps, drums)`` of those arrays.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.

    Returns:
        float64 array (..., len(SONG_FEATURE_NAMES) + drums).
    """
    steps, drums = shape
    phrase_len = steps_per_bar * bars_per_phrase
    scalars = [
        song["song/avg_hits"] / drums,
        song["song/syncopation"],
        song["song/metrical_syncopation"],
        song["song/step_entropy"] / _entropy_scale(steps, drums),
        song["song/phrase_entropy"] / _entropy_scale(min(steps, phrase_len), drums),
        song["song/ngram_diversity"],
        song["song/bar_repetition"],
        song["song/phrase_repetition"],
        song["song/fill_ratio"] / bars_per_phrase,
        song["song/fraction_dense_bars"],
        np.minimum(song["song/fast_runs_per_bar"] / steps_per_bar, 1),
    ]
    return np.concatenate([np.stack(scalars, axis=-1), song["song/drum_density"]], axis=-1)


def registered_distance(
    composed: np.ndarray, reference: np.ndarray, steps_per_bar: int, bars_per_phrase: int
) -> np.ndarray:
    """How far the registered song-level metrics of ``composed`` are from ``reference``'s.

    ``mean_{m, j} |a_{m,j} - b_{m,j}| / max(|a_{m,j}|, |b_{m,j}|)`` over every element ``j`` of
    every metric ``m`` registered at level ``song`` (a 0/0 element counts 0): a relative
    difference, so metrics of any scale (lags in steps, shares in [0, 1]) weigh alike.

    Args:
        composed: bool array (M, steps, drums).
        reference: bool array (M, steps, drums).
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.

    Returns:
        float64 array (M,), values in [0, 1]; 0 when no metric is registered.

    Raises:
        ValueError: a metric's value is empty, not finite, or of another shape for the
            composition than for the reference (the message names the metric).
    """
    from dataset.registry import MetricGrid, compute_metrics

    grid = MetricGrid(steps_per_bar, bars_per_phrase)
    a = compute_metrics(composed, grid, level="song")  # checks: finite, not empty, one shape
    b = compute_metrics(reference, grid, level="song")
    m = len(composed)
    parts = []
    for name in a:
        if a[name].shape != b[name].shape:
            raise ValueError(
                f"metric {name!r} returned shape {a[name].shape[1:]} for the composition but "
                f"{b[name].shape[1:]} for the reference (sequences of one length): the length "
                "of a registered metric's value must not depend on the sequence's content"
            )
        x = np.asarray(a[name], dtype=np.float64).reshape(m, -1)
        y = np.asarray(b[name], dtype=np.float64).reshape(m, -1)
        scale = np.maximum(np.abs(x), np.abs(y))
        parts.append(np.where(scale > 0, np.abs(x - y) / np.where(scale > 0, scale, 1.0), 0.0))
    if not parts:
        return np.zeros(m)
    return np.clip(np.concatenate(parts, axis=1).mean(axis=1), 0.0, 1.0)


def check_finite_terms(raw: np.ndarray, closed: np.ndarray) -> None:
    """Raise ``ValueError`` naming every closed reward term that is not finite (NaN or inf).

    Args:
        raw: float array (B, len(TERMS)): raw terms of a step.
        closed: bool array (B, len(TERMS)): which terms closed.
    """
    bad = closed & ~np.isfinite(raw)
    if bad.any():
        names = [f"{TERMS[j]} ({raw[i, j]})" for i, j in zip(*np.nonzero(bad))]
        raise ValueError(
            f"reward term(s) {', '.join(dict.fromkeys(names))} are not finite: a reward term is "
            "a number, never NaN (for 'metrics', check the registered song metrics)"
        )


def velocity_features(values: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """The dynamics of a unit of whole bars: float (..., steps, drums) -> float64 (..., F).

    :func:`dataset.metrics.velocity_features` (its docstring gives the exact definition; every
    feature in ``[0, 1]``), on the velocities of the canvas (the expressive env's ``values``).
    """
    return metrics.velocity_features(values, steps_per_bar)


def velocity_feature_size(num_drums: int) -> int:
    """``F``, the length of :func:`velocity_features` for ``num_drums`` drums."""
    return int(velocity_features(np.zeros((16, num_drums), np.float32), 16).shape[-1])


def feature_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference of two feature vectors (last axis), in [0, 1] for [0, 1] features.

    Args:
        a: float array (..., features).
        b: float array of the same shape.

    Returns:
        float64 array (...).
    """
    return np.abs(a - b).sum(axis=-1) / a.shape[-1]


# ----------------------------------------------------------------------------- normalisation


class Moments(NamedTuple):
    """Count, mean and sum of squared deviations (M2) of a stream of values, per term."""

    count: np.ndarray  # type: ignore[assignment]  # hides tuple.count, as it always has
    mean: np.ndarray
    m2: np.ndarray


def update_moments(
    moments: Moments, batch_count: np.ndarray, batch_sum: np.ndarray, batch_sumsq: np.ndarray
) -> Moments:
    """Fold a batch, given by its count, sum and sum of squares per term, into running moments.

    Chan et al.'s parallel update of Welford's algorithm; terms with ``batch_count == 0`` are
    left unchanged.

    Args:
        moments: the running Moments, arrays (terms,).
        batch_count: float array (terms,), values in the batch.
        batch_sum: float array (terms,), their sum.
        batch_sumsq: float array (terms,), the sum of their squares.

    Returns:
        The updated Moments (new arrays).
    """
    n_b = np.asarray(batch_count, dtype=np.float64)
    safe = np.maximum(n_b, 1.0)
    mean_b = batch_sum / safe
    m2_b = np.maximum(batch_sumsq - batch_sum * mean_b, 0.0)
    n = moments.count + n_b
    delta = mean_b - moments.mean
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_b > 0, moments.mean + delta * n_b / np.maximum(n, 1.0), moments.mean)
        m2 = np.where(
            n_b > 0, moments.m2 + m2_b + delta**2 * moments.count * n_b / np.maximum(n, 1.0),
            moments.m2,
        )
    return Moments(n, mean, m2)


class RunningNormalizer:
    """Per-term running mean and variance, shared by every sub-env that holds a reference to it.

    Args:
        num_terms: number of terms (``len(TERMS)``).
        clip: normalised values are clipped to ``[-clip, clip]``.
        epsilon: added to the variance before the square root.

    Attributes:
        reduce: None (default), or a function that sums a float64 array ``(3, terms)`` (the
            count, sum and sum of squares of a batch) over the processes of a run and returns
            the sums. :meth:`update` then folds the batch of every process, so processes that
            call ``update`` together hold the same statistics (DDP's ranks:
            :func:`agents.training.distributed.share_normalizer`).
    """

    def __init__(self, num_terms: int = len(TERMS), clip: float = 5.0, epsilon: float = 1e-8):
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.reduce: Callable[[np.ndarray], np.ndarray] | None = None
        zeros = np.zeros(num_terms)
        self.moments = Moments(zeros.copy(), zeros.copy(), zeros.copy())

    @property
    def moments(self) -> Moments:
        """The running count, mean and M2 of each term."""
        return self._moments

    @moments.setter
    def moments(self, value: Moments) -> None:
        # Cache what normalize() needs: it runs every step, the statistics change per episode.
        self._moments = value
        self._ready = value.count > 1
        self._inv_std = 1.0 / np.sqrt(self.var + self.epsilon)
        # the same as Python floats, for the one-env path of drum_env.core
        self._scalars = (self._ready.tolist(), value.mean.tolist(), self._inv_std.tolist())

    @property
    def mean(self) -> np.ndarray:
        """float64 array (terms,): running mean of each term."""
        return self.moments.mean

    @property
    def var(self) -> np.ndarray:
        """float64 array (terms,): running population variance (0 before two values)."""
        m = self._moments
        return np.where(m.count > 1, m.m2 / np.maximum(m.count, 1), 0.0)

    @property
    def count(self) -> np.ndarray:
        """float64 array (terms,): values seen per term."""
        return self.moments.count

    def normalize(self, raw: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """Normalise raw terms.

        Args:
            raw: float array (..., terms), or (..., len(columns)) with ``columns``.
            columns: int array, the terms that ``raw``'s last axis holds; None for all.

        Returns:
            float64 array of ``raw``'s shape.
        """
        cols = slice(None) if columns is None else columns
        scaled = (raw - self._moments.mean[cols]) * self._inv_std[cols]
        return np.where(self._ready[cols], np.clip(scaled, -self.clip, self.clip), raw)

    def normalize_one(self, raw: float, term: int) -> float:
        """:meth:`normalize` of one raw value of term index ``term``, as a Python float.

        The same float64 operations as :meth:`normalize` (so the same bits), without arrays:
        for the single env, where numpy's per-call overhead would dominate.
        """
        ready, mean, inv_std = self._scalars
        if not ready[term]:
            return raw
        scaled = (raw - mean[term]) * inv_std[term]
        return min(max(scaled, -self.clip), self.clip)  # np.clip, NaN passing through

    def update(self, count: np.ndarray, total: np.ndarray, sumsq: np.ndarray) -> None:
        """Add the values of finished episodes, given by per-term count, sum and sum of squares.

        With :attr:`reduce` set, the batch is first summed over the processes (every one must
        call ``update`` at the same point).
        """
        if self.reduce is not None:
            count, total, sumsq = self.reduce(np.stack([count, total, sumsq]).astype(np.float64))
        self.moments = update_moments(self.moments, count, total, sumsq)

    def state_dict(self) -> dict[str, list[float] | float]:
        """Plain-Python state (lists of floats), safe for ``torch.save`` / JSON."""
        return {
            "count": self.moments.count.tolist(),
            "mean": self.moments.mean.tolist(),
            "m2": self.moments.m2.tolist(),
            "clip": self.clip,
            "epsilon": self.epsilon,
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore the state written by :meth:`state_dict`.

        Raises:
            ValueError: if the state's number of terms differs from this normaliser's.
        """
        arrays = [np.asarray(state[k], dtype=np.float64) for k in ("count", "mean", "m2")]
        if any(a.shape != self.moments.count.shape for a in arrays):
            raise ValueError(
                f"normaliser state has {arrays[0].shape[0]} terms, expected "
                f"{self.moments.count.shape[0]}"
            )
        self.clip = float(state.get("clip", self.clip))  # type: ignore[arg-type]
        self.epsilon = float(state.get("epsilon", self.epsilon))  # type: ignore[arg-type]
        self.moments = Moments(*arrays)
