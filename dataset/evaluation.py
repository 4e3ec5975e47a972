"""Shaping-independent evaluation: how close is a set of drum sequences to held-out real drums?

The reward is never the judge of itself. A set of generated sequences is compared with a
held-out set of real ones, metric by metric, by the **overlapping area** (OA) of the two
distributions of the metric over the sets (in the spirit of mgeval, Yang & Lerch 2018):

    OA(f) = integral min(p_gen(x), p_real(x)) dx

where ``p_gen`` and ``p_real`` are Gaussian kernel density estimates of feature ``f`` over the
generated and the real sequences, evaluated on one shared grid (mgeval's KL divergence evaluated
the two densities on different grids; here both live on the same 512 points; exact definition in
:mod:`dataset.overlap`). OA is 1 for identical distributions and 0 for disjoint ones. A family's
score is the mean OA of its features; the headline score is the mean over the families that
discriminate (see :func:`compare_to_baselines`).

Families and their per-sequence features (all from :mod:`dataset.metrics`):

| family | features |
|---|---|
| ``density`` | ``avg_hits``; ``drum_density`` of each drum that the real set uses |
| ``ioi`` | ``ioi_mean`` of each drum that the real set uses; mean IOI histogram entropy |
| ``syncopation`` | ``syncopation`` (seed definition), ``metrical_syncopation`` |
| ``transitions`` | transition probability ``P[i, j]`` for the 8 most frequent real transitions |
| ``ngram_diversity`` | ``n_grams(4).diversity`` |
| ``entropy`` | ``step_entropy``, ``phrase_entropy`` |
| ``empty_bars`` | share of complete bars with no hit |
| ``pattern_consistency`` | drum-in-pattern rate on the 8th-note grid (share of hits on even 16ths; muspy's rate on a plain 16th grid is always 1); groove consistency ``bar_repetition`` (Jaccard similarity of consecutive bars, so silence does not score like a steady groove) |
| ``metrical_position`` | ``onset_share[p, d]`` (:func:`dataset.metrical.onset_profile`: the share of drum ``d``'s onsets that fall on position ``p = t mod steps_per_bar`` of the bar, 0 for a drum without onsets) for the :data:`METRICAL_DRUMS` drums with the most real onsets and, of each, its :data:`METRICAL_POSITIONS` positions with the most real onsets (ties: lower drum, lower position) |
| ``<name>`` of each metric registered at level ``song`` (:mod:`dataset.registry`; ``swing`` and ``polyrhythm`` ship registered) | the metric's value (each element of an array value is a feature) |

A registered metric is a family of its own, judged like the built-in ones: it counts towards the
headline when it discriminates (its ceiling beats the best floor by ``min_gap``). The families
of :data:`FAMILIES` are the built-in ones; :func:`families` lists them with the registered ones.
All of them read hits only (a value > 0). ``metrical_position`` sees where the hits fall in the
bar: random bars at the real per-drum densities match the ``density`` family but spread each
drum's onsets over every position, so they score far below a player whose hits fall where the
real drummers' do (without it, such bars scored like the per-position mode).

**Standard error.** The headline is a mean of overlapping areas between two *sets*, so an
episode has no score of its own to average. Its standard error comes from a bootstrap over the
episodes (:func:`score_sets_resampled`): ``B`` resamples (:data:`RESAMPLES` by default, seeded)
draw the episodes again with replacement, each episode's take together with its reference
(*paired*); each resample is scored as the full sets are, bandwidths recomputed
(:mod:`dataset.overlap`: the bandwidth rule moves the OA as much as the values do), and the
standard deviation (``ddof=1``) of the ``B`` resampled headlines is the draw's bootstrap error
``se_k``. Over ``K`` draws (other primers), :func:`headline_standard_error` takes the larger of
two estimates of one draw's variance, the mean squared bootstrap error and the variance of the
``K`` headlines (``ddof=1``; none for one draw), and divides by ``K``:
``SE = sqrt(max(mean_k se_k^2, var_k headline_k) / K)``, the standard error of the mean of the
``K`` draws' headlines. The ceiling and floors (:func:`compare_to_baselines` with
``resamples``) resample each of their two sets on its own (they are not paired):
``Baselines.headline_se``.

**Velocity families** judge the dynamics beside the hit families, with a headline of their own
(:mod:`dataset.evaluation_velocity`; its names are also found here, as before).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from dataset import metrics
from dataset.metrical import onset_positions, onset_profile
from dataset.overlap import overlapping_area, resample_counts, resampled_overlapping_area

__all__ = [
    "FAMILIES",
    "families",
    "sequence_features",
    "feature_matrix",
    "overlapping_area",
    "SetScore",
    "score_sets",
    # where the hits fall in the bar
    "METRICAL_DRUMS",
    "METRICAL_POSITIONS",
    "onset_positions",
    "onset_profile",
    # the headline's standard error
    "RESAMPLES",
    "ResampledScore",
    "score_sets_resampled",
    "headline_standard_error",
    "Baselines",
    "compare_to_baselines",
    "density_matched_random",
    "uniform_random",
    "silence",
    # the machinery the velocity families (dataset.evaluation_velocity) share
    "as_sequence_list",
    "top_cells",
    "score_tables",
    "ceiling_and_floors",
]

FAMILIES: tuple[str, ...] = (
    "density", "ioi", "syncopation", "transitions", "ngram_diversity", "entropy",
    "empty_bars", "pattern_consistency", "metrical_position",
)  # fmt: skip

METRICAL_DRUMS = 3
"""The ``metrical_position`` family looks at the real set's drums with the most onsets, this
many (on Groove: kick, snare, closed hi-hat)."""
METRICAL_POSITIONS = 4
"""... and at each one's positions in the bar with the most real onsets, this many. Three drums
and four positions separate the ceiling from the density-matched floor the most on Groove
(more cells add positions where real and random players both rarely hit)."""

RESAMPLES = 200
"""Bootstrap resamples of the headline's standard error, by default."""


def families() -> tuple[str, ...]:
    """The evaluation's families now: :data:`FAMILIES`, then each registered song-level metric."""
    from dataset.registry import registered_metrics

    return (*FAMILIES, *(n for n in registered_metrics("song") if n not in FAMILIES))


def as_sequence_list(seqs: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """A set of sequences as a non-empty list of (steps, drums) arrays.

    Raises:
        ValueError: an array that is not (N, steps, drums), an empty list, or a sequence that
            is not (steps, drums).
    """
    if isinstance(seqs, np.ndarray):
        if seqs.ndim != 3:
            raise ValueError(f"a set of sequences must be (N, steps, drums), got {seqs.shape}")
        return list(seqs)
    out = [np.asarray(s) for s in seqs]
    if not out:
        raise ValueError("a set of sequences must not be empty")
    for i, s in enumerate(out):
        if s.ndim != 2:
            raise ValueError(f"sequence {i} must be (steps, drums), got shape {s.shape}")
    return out


def sequence_features(
    seq: np.ndarray, steps_per_bar: int = 16, bars_per_phrase: int = 4
) -> dict[str, np.ndarray]:
    """The raw per-sequence features the families are built from.

    Args:
        seq: array (steps, drums); a hit is a value > 0.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.

    Returns:
        dict name -> float64 array (scalar, (drums,), (drums, drums), or (steps_per_bar,
        drums) for ``onset_positions`` and ``onset_profile``); the registered song-level
        metrics under ``registered/<name>``.
    """
    h = metrics.as_hits(seq)
    if h.ndim != 2:
        raise ValueError(f"seq must be (steps, drums), got shape {h.shape}")
    return {k: v[0] for k, v in _stacked_features(h[None], steps_per_bar, bars_per_phrase).items()}


def _stacked_features(
    h: np.ndarray, steps_per_bar: int, bars_per_phrase: int
) -> dict[str, np.ndarray]:
    """:func:`sequence_features` of equal-length sequences at once.

    Bool (N, T, D) -> name -> float64 (N, ...): every metric is vectorised over batch axes.
    """
    from dataset.registry import MetricGrid, compute_metrics

    n = len(h)
    dens = metrics.hit_density(h)
    ioi = metrics.ioi_stats(h)
    p = ioi.hist
    plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    bars = metrics.bar_density(h, steps_per_bar)
    per_step = h.sum(axis=-1)
    on_eighths = (np.arange(h.shape[-2]) % 2 == 0).astype(np.float64)
    hits = per_step.sum(axis=-1)
    on_grid = (per_step * on_eighths).sum(axis=-1)
    grid = MetricGrid(steps_per_bar, bars_per_phrase)
    out = {
        "avg_hits": dens.avg_hits,
        "drum_density": dens.drum_density,
        "ioi_mean": ioi.mean,
        "ioi_hist_entropy": -plogp.sum(-1).mean(-1),
        "syncopation": metrics.syncopation(h, steps_per_bar),
        "metrical_syncopation": metrics.metrical_syncopation(h, steps_per_bar),
        "transitions": metrics.transitions(h),
        "ngram_diversity": metrics.n_grams(h, 4).diversity,
        "step_entropy": metrics.pattern_entropy(h),
        "phrase_entropy": metrics.phrase_entropy(h, steps_per_bar * bars_per_phrase),
        "empty_bar_rate": (bars == 0).mean(-1) if bars.shape[-1] else np.zeros(n),
        "drum_in_pattern_rate": np.where(hits > 0, on_grid / np.maximum(hits, 1), 0.0),
        "groove_consistency": metrics.phrase_structure(
            h, steps_per_bar, bars_per_phrase
        ).bar_repetition,
        "onset_positions": onset_positions(h, steps_per_bar),
        "onset_profile": onset_profile(h, steps_per_bar),
        **{f"registered/{name}": np.asarray(value, dtype=np.float64) for name, value in
           compute_metrics(h, grid, level="song").items() if name not in FAMILIES},
    }  # fmt: skip
    return {k: np.asarray(v, dtype=np.float64).reshape(n, *np.shape(v)[1:]) for k, v in out.items()}


def _set_features(
    seqs: list[np.ndarray], steps_per_bar: int, bars_per_phrase: int
) -> dict[str, np.ndarray]:
    """The features of a set: name -> float64 (N, ...), row ``i`` of sequence ``i``.

    Sequences of one length are computed together (:func:`_stacked_features`).
    """
    hits = [metrics.as_hits(s) for s in seqs]
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(hits):
        groups.setdefault(x.shape[0], []).append(i)
    parts = {length: _stacked_features(np.stack([hits[i] for i in idx]), steps_per_bar,
                                       bars_per_phrase) for length, idx in groups.items()}  # fmt: skip
    if len(parts) == 1:
        return next(iter(parts.values()))
    order = np.argsort(np.concatenate([groups[length] for length in parts]), kind="stable")
    return {k: np.concatenate([part[k] for part in parts.values()])[order]
            for k in next(iter(parts.values()))}  # fmt: skip


def _feature_table(
    feats: Mapping[str, np.ndarray], real: Mapping[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """Family -> feature name -> values over the set (N,), feature choice fixed by ``real``.

    ``feats`` and ``real``: :func:`_set_features` of the set and of the real set.
    """
    n, drums = feats["drum_density"].shape
    used = np.flatnonzero(real["drum_density"].mean(axis=0) > 0)
    trans = real["transitions"].mean(axis=0).ravel()
    top = np.argsort(-trans, kind="stable")[:8]
    top = top[trans[top] > 0]

    def col(name: str) -> np.ndarray:
        return feats[name]

    density = col("drum_density")
    ioi = col("ioi_mean")
    transitions = col("transitions").reshape(n, drums * drums)
    cells = top_cells(real["onset_positions"].sum(axis=0), METRICAL_DRUMS, METRICAL_POSITIONS)
    profile = col("onset_profile")
    table = {
        "density": {"avg_hits": col("avg_hits"),
                    **{f"drum_density[{d}]": density[:, d] for d in used}},
        "ioi": {**{f"ioi_mean[{d}]": ioi[:, d] for d in used},
                "ioi_hist_entropy": col("ioi_hist_entropy")},
        "syncopation": {"syncopation": col("syncopation"),
                        "metrical_syncopation": col("metrical_syncopation")},
        "transitions": {f"P[{k // drums},{k % drums}]": transitions[:, k] for k in top},
        "ngram_diversity": {"ngram_diversity": col("ngram_diversity")},
        "entropy": {"step_entropy": col("step_entropy"), "phrase_entropy": col("phrase_entropy")},
        "empty_bars": {"empty_bar_rate": col("empty_bar_rate")},
        "pattern_consistency": {"drum_in_pattern_rate": col("drum_in_pattern_rate"),
                                "groove_consistency": col("groove_consistency")},
        "metrical_position": {f"onset_share[{p},{d}]": profile[:, p, d] for p, d in cells},
    }  # fmt: skip
    for key in real:
        if key.startswith("registered/"):
            name = key.split("/", 1)[1]
            values = feats[key].reshape(n, -1)
            table[name] = ({name: values[:, 0]} if values.shape[1] == 1 else
                           {f"{name}[{i}]": values[:, i] for i in range(values.shape[1])})
    return {k: v for k, v in table.items() if v}


def feature_matrix(
    seqs: np.ndarray | Sequence[np.ndarray], steps_per_bar: int = 16, bars_per_phrase: int = 4,
    real: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """The headline's features as one row per sequence: what a learned judge of a set reads.

    Args:
        seqs: the sequences, (steps, drums) each.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        real: the raw features of the real set that fixes the columns (which drums, transitions
            and metrical cells; the third return value of a call on the real set); ``None``:
            ``seqs`` are the real set.

    Returns:
        ``(x, names, real)``: float64 (N, F), each column one feature of the families of
        :func:`score_sets` (``family/feature``, in the families' order), and the real set's raw
        features (pass them back as ``real`` to get the same columns for another set).
    """
    feats = _set_features(as_sequence_list(seqs), steps_per_bar, bars_per_phrase)
    ref = feats if real is None else dict(real)
    table = _feature_table(feats, ref)
    names = [f"{family}/{name}" for family, cols in table.items() for name in cols]
    x = np.stack([np.asarray(v, dtype=np.float64) for cols in table.values()
                  for v in cols.values()], axis=1)  # fmt: skip
    return x, names, ref


def top_cells(hits: np.ndarray, drums: int, positions: int) -> list[tuple[int, int]]:
    """``(position, drum)`` cells of a real set's onsets per position ``hits`` (spb, drums).

    The ``drums`` drums with the most onsets and, of each, its ``positions`` positions with the
    most onsets (only positions with an onset; ties: lower drum, lower position).
    """
    per_drum = hits.sum(axis=0)
    used = np.flatnonzero(per_drum > 0)
    top = used[np.argsort(-per_drum[used], kind="stable")][:drums]
    cells = []
    for d in top:
        where = np.argsort(-hits[:, d], kind="stable")[:positions]
        cells += [(int(p), int(d)) for p in where if hits[p, d] > 0]
    return cells


class SetScore(NamedTuple):
    """Scores of one set against the real set."""

    families: dict[str, float]
    """Family -> mean OA of its features, in [0, 1]."""
    features: dict[str, float]
    """``family/feature`` -> OA."""
    mean: float
    """Mean over all families."""


def score_sets(
    generated: np.ndarray | Sequence[np.ndarray],
    real: np.ndarray | Sequence[np.ndarray],
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
) -> SetScore:
    """Score generated sequences against held-out real ones, family by family.

    Args:
        generated: (N, steps, drums) array or list of (steps, drums) arrays.
        real: the held-out real set, same drums.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.

    Returns:
        SetScore.

    Raises:
        ValueError: empty sets, or sets with different numbers of drums.
    """
    return score_sets_resampled(generated, real, steps_per_bar, bars_per_phrase, 0).score


class ResampledScore(NamedTuple):
    """A set's scores and their bootstrap resamples (:func:`score_sets_resampled`)."""

    score: SetScore
    """The scores of the full sets (what :func:`score_sets` returns)."""
    families: dict[str, np.ndarray]
    """Family -> float64 (resamples,): the family's mean OA on each bootstrap resample (empty
    without resamples). :meth:`Baselines.headline_resampled` averages the headline's families."""


def score_sets_resampled(
    generated: np.ndarray | Sequence[np.ndarray],
    real: np.ndarray | Sequence[np.ndarray],
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    resamples: int = RESAMPLES,
    seed: int | np.random.Generator = 0,
    paired: bool = True,
) -> ResampledScore:
    """Score two sets as :func:`score_sets` does, and every family on bootstrap resamples.

    A resample draws the sequences again with replacement (:func:`dataset.overlap.
    resample_counts`) and scores every feature as the full sets are, bandwidths recomputed
    (:func:`dataset.overlap.resampled_overlapping_area`); the features are computed once and
    their choice (drums, transitions, cells) stays that of the full real set.

    Args:
        generated: (N, steps, drums) array or list of (steps, drums) arrays.
        real: the held-out real set, same drums.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        resamples: bootstrap resamples (0: none, ``families`` is empty; else >= 2).
        seed: seed (or generator) of the resamples.
        paired: ``generated[i]`` continues the primer of ``real[i]`` (an episode's take and
            its reference): both are drawn together, with the same counts; the sets must have
            equal sizes. ``False``: each set is resampled on its own.

    Returns:
        ResampledScore.

    Raises:
        ValueError: empty sets, sets with different numbers of drums, ``resamples`` of 1 or
            not an integer >= 0, or ``paired`` sets of different sizes.
    """
    gen, ref = as_sequence_list(generated), as_sequence_list(real)
    if gen[0].shape[1] != ref[0].shape[1]:
        raise ValueError(
            f"generated sequences have {gen[0].shape[1]} drums, real ones {ref[0].shape[1]}"
        )
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) \
            or resamples < 0 or resamples == 1:  # fmt: skip
        raise ValueError(f"resamples must be 0 (none) or an integer >= 2, got {resamples!r}")
    if paired and resamples and len(gen) != len(ref):
        raise ValueError(f"paired resampling needs sets of equal size, got {len(gen)} generated "
                         f"and {len(ref)} real sequences")  # fmt: skip
    return _score_features(
        _set_features(gen, steps_per_bar, bars_per_phrase),
        _set_features(ref, steps_per_bar, bars_per_phrase), resamples, seed, paired,
    )  # fmt: skip


def _score_features(
    gen_f: Mapping[str, np.ndarray],
    ref_f: Mapping[str, np.ndarray],
    resamples: int,
    seed: int | np.random.Generator,
    paired: bool,
) -> ResampledScore:
    """:func:`score_sets_resampled` of two sets' :func:`_set_features`."""
    gen_t, ref_t = _feature_table(gen_f, ref_f), _feature_table(ref_f, ref_f)
    score = score_tables(gen_t, ref_t)
    if not resamples:
        return ResampledScore(score, {})
    rng = np.random.default_rng(seed)
    w_gen = resample_counts(len(gen_f["avg_hits"]), resamples, rng)
    w_ref = w_gen if paired else resample_counts(len(ref_f["avg_hits"]), resamples, rng)
    fams = {family: np.mean([resampled_overlapping_area(gen_t[family][k], v, w_gen, w_ref)
                             for k, v in feats.items()], axis=0)
            for family, feats in ref_t.items()}  # fmt: skip
    return ResampledScore(score, fams)


def headline_standard_error(
    headlines: Sequence[float] | np.ndarray, bootstrap_se: Sequence[float] | np.ndarray
) -> float:
    """Standard error of the mean headline of ``K`` evaluation draws.

    ``SE = sqrt(max(mean_k se_k^2, var_k headline_k) / K)``: the larger of two estimates of one
    draw's variance, the mean squared bootstrap error of the draws (``se_k``, e.g.
    :meth:`Baselines.headline_se`) and the variance of their headlines (``ddof=1``; not
    defined, so not used, for one draw), divided by the number of draws. Neither estimate alone
    can understate it: the bootstrap holds the bandwidths fixed, and a few draws' variance is
    itself noisy.

    Args:
        headlines: float (K,), each draw's headline.
        bootstrap_se: float (K,), each draw's bootstrap standard error (>= 0).

    Returns:
        float >= 0.

    Raises:
        ValueError: no draw, lengths that differ, NaN or inf, or a negative error.
    """
    h = np.asarray(headlines, dtype=np.float64).ravel()
    se = np.asarray(bootstrap_se, dtype=np.float64).ravel()
    if len(h) == 0 or len(h) != len(se):
        raise ValueError(f"headline_standard_error needs one bootstrap error per headline and at "
                         f"least one draw, got {len(h)} headlines and {len(se)} errors")  # fmt: skip
    if not (np.isfinite(h).all() and np.isfinite(se).all()) or (se < 0).any():
        raise ValueError(f"headlines and bootstrap errors must be finite (errors >= 0), got "
                         f"{h.tolist()} and {se.tolist()}")  # fmt: skip
    draws = float(h.var(ddof=1)) if len(h) > 1 else 0.0
    return float(np.sqrt(max(float(np.mean(se**2)), draws) / len(h)))


def score_tables(
    gen_t: dict[str, dict[str, np.ndarray]], ref_t: dict[str, dict[str, np.ndarray]]
) -> SetScore:
    """:class:`SetScore` of two feature tables (family -> feature -> values over a set)."""
    families, features = {}, {}
    for family, feats in ref_t.items():
        scores = [overlapping_area(gen_t[family][k], v) for k, v in feats.items()]
        for k, s in zip(feats, scores):
            features[f"{family}/{k}"] = s
        families[family] = float(np.mean(scores))
    mean = float(np.mean(list(families.values()))) if families else 0.0  # no feature: no score
    return SetScore(families, features, mean)


# ----------------------------------------------------------------------------- baselines


def silence(like: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Silent sequences with the shapes of ``like``."""
    return [np.zeros_like(np.asarray(s), dtype=np.float32) for s in like]


def uniform_random(
    like: Sequence[np.ndarray], rng: np.random.Generator, velocities: bool = False
) -> list[np.ndarray]:
    """Every drum hits on every step with probability 1/2, shapes of ``like``.

    Args:
        like: sequences whose shapes to take.
        rng: the generator to draw from.
        velocities: give each sequence's hits velocities drawn uniformly from (0, 1] (after its
            hits are drawn); otherwise every hit is 1.0 (and the draws are as they always were).
    """
    out = []
    for s in like:
        hits = (rng.random(np.shape(s)) < 0.5).astype(np.float32)
        if velocities:
            hits *= (1.0 - rng.random(np.shape(s))).astype(np.float32)  # (0, 1]
        out.append(hits)
    return out


def density_matched_random(
    like: Sequence[np.ndarray],
    real: Sequence[np.ndarray],
    rng: np.random.Generator,
    velocities: bool = False,
) -> list[np.ndarray]:
    """Each drum hits independently at its rate in ``real`` (hits / steps), shapes of ``like``.

    Args:
        like: sequences whose shapes to take.
        real: the real set whose rates (and velocities) to match.
        rng: the generator to draw from.
        velocities: give each hit of drum ``d`` a velocity drawn uniformly, with replacement,
            from the values of the hits of drum ``d`` in ``real`` (its empirical distribution of
            hit velocities), independently of everything else, after each sequence's hits are
            drawn; otherwise every hit is 1.0 (and the draws are as they always were).
    """
    hits = sum(metrics.as_hits(np.asarray(s)).sum(axis=0) for s in real)
    rate = hits / sum(len(s) for s in real)
    if not velocities:
        return [(rng.random(np.shape(s)) < rate).astype(np.float32) for s in like]
    pools = [np.concatenate([np.asarray(s, np.float32)[:, d][np.asarray(s)[:, d] > 0]
                             for s in real]) for d in range(len(rate))]  # fmt: skip
    out = []
    for s in like:
        seq = (rng.random(np.shape(s)) < rate).astype(np.float32)
        for d, pool in enumerate(pools):  # a drum of rate 0 never hits: its pool is not used
            at = np.flatnonzero(seq[:, d])
            seq[at, d] = pool[rng.integers(len(pool), size=len(at))] if len(at) else 0.0
        out.append(seq)
    return out


class Baselines(NamedTuple):
    """Reference scores printed beside every model."""

    real_vs_real: SetScore
    """Ceiling: one half of the real set against the other."""
    real_vs_real_std: dict[str, float]
    """Bootstrap standard deviation of the ceiling, per family and ``mean``."""
    uniform_random: SetScore
    density_random: SetScore
    silence: SetScore
    discriminative: tuple[str, ...]
    """Families whose ceiling beats the best floor by at least ``min_gap``: the headline
    score averages these only (a family that scores the same for every player, like muspy's
    groove consistency, is reported but not averaged)."""
    headline_se: dict[str, float] | None = None
    """Bootstrap standard error of the headline of ``real_vs_real``, ``uniform_random``,
    ``density_random`` and ``silence``: each player's set and the held-out half resampled on
    their own, ``resamples`` times (:func:`compare_to_baselines`); ``None`` without."""

    def headline(self, score: SetScore) -> float:
        """Mean OA over the discriminative families."""
        fams = self.discriminative or tuple(score.families)
        return float(np.mean([score.families[f] for f in fams]))

    def headline_resampled(self, families: Mapping[str, np.ndarray]) -> np.ndarray:
        """The headline of each bootstrap resample: float64 (resamples,).

        Args:
            families: family -> (resamples,) OA, :attr:`ResampledScore.families`.
        """
        return _headline_resampled(self.discriminative, families)

    def standard_error(self, resampled: ResampledScore) -> float:
        """Bootstrap standard error of the headline of one draw.

        The standard deviation (``ddof=1``) of :meth:`headline_resampled`; 0 without resamples.
        """
        values = self.headline_resampled(resampled.families)
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _headline_resampled(
    discriminative: tuple[str, ...], families: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Mean over the discriminative families (all of them if none is) of each resample's OA."""
    fams = discriminative or tuple(families)
    if not fams or not families:
        return np.zeros(0)
    return np.mean([np.asarray(families[f], dtype=np.float64) for f in fams], axis=0)


def compare_to_baselines(
    real: np.ndarray | Sequence[np.ndarray],
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    seed: int = 0,
    bootstrap: int = 5,
    min_gap: float = 0.1,
    resamples: int = 0,
) -> Baselines:
    """Ceiling and floors for a held-out real set.

    The real set is split in two disjoint halves (seeded shuffle): the first half plays the
    held-out set, the second the "generated" one (the ceiling); ``bootstrap`` further random
    splits give its spread. The floors are scored against the same first half, with as many
    sequences as the second half: uniform random, density-matched random and silence. With
    ``resamples``, each player's headline gets a bootstrap standard error
    (``Baselines.headline_se``; the player's set and the first half resampled on their own,
    from a generator of its own, so the splits and the floors are drawn as without it).

    Args:
        real: at least 4 real sequences.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        seed: seed of the splits and the random players.
        bootstrap: number of extra random splits for the ceiling's spread.
        min_gap: how much the ceiling must beat the best floor for a family to count.
        resamples: bootstrap resamples of each player's standard error (0: none; else >= 2).

    Returns:
        Baselines.
    """
    ref = as_sequence_list(real)
    boot = np.random.default_rng([seed, 1])  # apart from the splits' and the floors' draws
    real_f = _set_features(ref, steps_per_bar, bars_per_phrase)  # once: the halves are rows
    row = {id(s): i for i, s in enumerate(ref)}

    def features(seqs: list[np.ndarray]) -> dict[str, np.ndarray]:
        if all(id(s) in row for s in seqs):
            rows = [row[id(s)] for s in seqs]
            return {k: v[rows] for k, v in real_f.items()}
        return _set_features(seqs, steps_per_bar, bars_per_phrase)

    def score(gen: list[np.ndarray], held: list[np.ndarray], b: int) -> ResampledScore:
        return _score_features(features(gen), features(held), b, boot, False)

    def floors(other: list[np.ndarray], held: list[np.ndarray], rng: np.random.Generator) -> dict:
        return {
            "uniform_random": uniform_random(other, rng),
            "density_random": density_matched_random(other, held, rng),
            "silence": silence(other),
        }

    ceiling, std, scores, disc, se = ceiling_and_floors(
        ref, score, floors, seed, bootstrap, min_gap, resamples
    )
    return Baselines(ceiling, std, *scores.values(), disc, se)  # type: ignore[call-arg, arg-type]  # the floors, in order


def ceiling_and_floors(
    ref: list[np.ndarray],
    score: Callable[[list[np.ndarray], list[np.ndarray], int], ResampledScore],
    floors: Callable[[list[np.ndarray], list[np.ndarray], np.random.Generator], dict],
    seed: int,
    bootstrap: int,
    min_gap: float,
    resamples: int = 0,
) -> tuple[SetScore, dict[str, float], dict[str, SetScore], tuple[str, ...],
           dict[str, float] | None]:  # fmt: skip
    """The ceiling, its spread, the floors' scores, the discriminative families, the errors.

    The errors: the bootstrap standard error of each player's headline (``None`` without
    ``resamples``). ``score(generated, held, resamples)`` scores a set against the held-out half;
    ``floors(other, held, rng)`` makes the floor players' sets (name -> sequences, drawing from
    ``rng`` in order).
    """
    if len(ref) < 4:
        raise ValueError(f"need at least 4 real sequences for the baselines, got {len(ref)}")
    rng = np.random.default_rng(seed)

    def split() -> tuple[list[np.ndarray], list[np.ndarray]]:
        order = rng.permutation(len(ref))
        half = len(ref) // 2
        return [ref[i] for i in order[:half]], [ref[i] for i in order[half:]]

    held, other = split()
    top = score(other, held, resamples)
    ceiling = top.score
    spreads = [score(b, a, 0).score for a, b in (split() for _ in range(bootstrap))]
    std = {f: float(np.std([s.families[f] for s in spreads + [ceiling]]))
           for f in ceiling.families}  # fmt: skip
    std["mean"] = float(np.std([s.mean for s in spreads + [ceiling]]))
    resampled = {"real_vs_real": top}
    for name, players in floors(other, held, rng).items():
        resampled[name] = score(players, held, resamples)
    scores = {name: r.score for name, r in resampled.items() if name != "real_vs_real"}
    disc = tuple(
        f for f in ceiling.families
        if ceiling.families[f] - max(s.families[f] for s in scores.values()) >= min_gap
    )  # fmt: skip
    se = None
    if resamples:
        se = {name: float(_headline_resampled(disc, r.families).std(ddof=1))
              for name, r in resampled.items()}  # fmt: skip
    return ceiling, std, scores, disc, se


_VELOCITY_NAMES = frozenset({
    "VELOCITY_FAMILIES", "ACCENT_DRUMS", "ACCENT_POSITIONS", "velocity_sequence_features",
    "score_velocity_sets", "VelocityBaselines", "compare_velocity_to_baselines",
    "constant_velocity",
})  # fmt: skip


def __getattr__(name: str) -> object:
    """The velocity families' names (0.3 had them here): :mod:`dataset.evaluation_velocity`."""
    if name in _VELOCITY_NAMES:
        from dataset import evaluation_velocity

        return getattr(evaluation_velocity, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
