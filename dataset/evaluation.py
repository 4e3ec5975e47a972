"""Shaping-independent evaluation: how close is a set of drum sequences to held-out real drums?

The reward is never the judge of itself. A set of generated sequences is compared with a
held-out set of real ones, metric by metric, by the **overlapping area** (OA) of the two
distributions of the metric over the sets (in the spirit of mgeval, Yang & Lerch 2018):

    OA(f) = integral min(p_gen(x), p_real(x)) dx

where ``p_gen`` and ``p_real`` are Gaussian kernel density estimates of feature ``f`` over the
generated and the real sequences, evaluated on one shared grid (mgeval's KL divergence evaluated
the two densities on different grids; here both live on the same 512 points). OA is 1 for
identical distributions and 0 for disjoint ones. A family's score is the mean OA of its
features; the headline score is the mean over the families that discriminate (see
:func:`compare_to_baselines`).

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
| ``<name>`` of each metric registered at level ``song`` (:mod:`dataset.registry`; ``swing`` and ``polyrhythm`` ship registered) | the metric's value (each element of an array value is a feature) |

A registered metric is a family of its own, judged like the built-in ones: it counts towards the
headline when it discriminates (its ceiling beats the best floor by ``min_gap``). The families
of :data:`FAMILIES` are the built-in ones; :func:`families` lists them with the registered ones.
All of them read hits only (a value > 0).

**Velocity families** judge the dynamics (the values as velocities, read exactly), beside the
hit families and never averaged into their headline: :func:`score_velocity_sets` scores them,
:func:`compare_velocity_to_baselines` gives their own ceiling, floors and headline
(:class:`VelocityBaselines`), the families :data:`VELOCITY_FAMILIES`:

| family | features |
|---|---|
| ``velocity`` | ``velocity_mean`` and ``velocity_spread`` (:func:`dataset.metrics.velocity_stats`: mean and population std of the drum's hit velocities, 0 without hits) of each drum that the real set uses |
| ``accent`` | ``accent_pattern[p, d]`` (:func:`dataset.metrics.accent_pattern`: mean velocity of drum ``d``'s hits at position ``p = t mod steps_per_bar``, 0 without) for the :data:`ACCENT_DRUMS` drums with the most real hits and, of each, its :data:`ACCENT_POSITIONS` positions with the most real hits (ties: lower drum, lower position); ``accent_contrast`` (:func:`dataset.metrics.accent_contrast`) of those drums |

Their floors are velocity-aware: uniform random hits with velocities uniform on (0, 1];
density-matched random hits whose velocities are drawn from the real set's hit velocities of
the same drum (a fair floor: the right distribution of velocities, none of their structure);
silence; and constant velocity (the ceiling's own real hits, all at 1.0: what a hits-only model
plays), which the velocity families score far below the real set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from dataset import metrics

__all__ = [
    "FAMILIES",
    "families",
    "sequence_features",
    "overlapping_area",
    "SetScore",
    "score_sets",
    "Baselines",
    "compare_to_baselines",
    "density_matched_random",
    "uniform_random",
    "silence",
    # velocity: the dynamics, with a headline of their own
    "VELOCITY_FAMILIES",
    "ACCENT_DRUMS",
    "ACCENT_POSITIONS",
    "velocity_sequence_features",
    "score_velocity_sets",
    "VelocityBaselines",
    "compare_velocity_to_baselines",
    "constant_velocity",
]

FAMILIES: tuple[str, ...] = (
    "density", "ioi", "syncopation", "transitions", "ngram_diversity", "entropy",
    "empty_bars", "pattern_consistency",
)  # fmt: skip


def families() -> tuple[str, ...]:
    """The evaluation's families now: :data:`FAMILIES`, then each registered song-level metric."""
    from dataset.registry import registered_metrics

    return (*FAMILIES, *(n for n in registered_metrics("song") if n not in FAMILIES))


def _as_list(seqs: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
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
        dict name -> float64 array (scalar, (drums,) or (drums, drums)); the registered
        song-level metrics under ``registered/<name>``.
    """
    from dataset.registry import MetricGrid, compute_metrics

    h = metrics.as_hits(seq)
    dens = metrics.hit_density(h)
    ioi = metrics.ioi_stats(h)
    p = ioi.hist
    hist_entropy = -(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)).sum(-1).mean()
    bars = metrics.bar_density(h, steps_per_bar)
    per_step = h.sum(axis=-1)
    on_eighths = (np.arange(h.shape[0]) % 2 == 0).astype(np.float64)
    hits = per_step.sum()
    return {
        "avg_hits": dens.avg_hits,
        "drum_density": dens.drum_density,
        "ioi_mean": ioi.mean,
        "ioi_hist_entropy": np.float64(hist_entropy),
        "syncopation": metrics.syncopation(h, steps_per_bar),
        "metrical_syncopation": metrics.metrical_syncopation(h, steps_per_bar),
        "transitions": metrics.transitions(h),
        "ngram_diversity": metrics.n_grams(h, 4).diversity,
        "step_entropy": metrics.pattern_entropy(h),
        "phrase_entropy": metrics.phrase_entropy(h, steps_per_bar * bars_per_phrase),
        "empty_bar_rate": np.float64((bars == 0).mean()) if len(bars) else np.float64(0.0),
        "drum_in_pattern_rate": np.float64((per_step * on_eighths).sum() / hits if hits else 0),
        "groove_consistency": metrics.phrase_structure(
            h, steps_per_bar, bars_per_phrase
        ).bar_repetition,
        **{f"registered/{name}": np.asarray(value, dtype=np.float64) for name, value in
           compute_metrics(h, MetricGrid(steps_per_bar, bars_per_phrase), level="song").items()
           if name not in FAMILIES},
    }  # fmt: skip


def _feature_table(
    feats: list[dict[str, np.ndarray]], real: list[dict[str, np.ndarray]]
) -> dict[str, dict[str, np.ndarray]]:
    """Family -> feature name -> values over the set (N,), feature choice fixed by ``real``."""
    drums = real[0]["drum_density"].shape[0]
    used = np.flatnonzero(np.mean([f["drum_density"] for f in real], axis=0) > 0)
    trans = np.mean([f["transitions"] for f in real], axis=0).ravel()
    top = np.argsort(-trans, kind="stable")[:8]
    top = top[trans[top] > 0]

    def col(name: str) -> np.ndarray:
        return np.array([f[name] for f in feats], dtype=np.float64)

    density = col("drum_density")
    ioi = col("ioi_mean")
    transitions = col("transitions").reshape(len(feats), drums * drums)
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
    }  # fmt: skip
    for key in real[0]:
        if key.startswith("registered/"):
            name = key.split("/", 1)[1]
            values = np.array([np.ravel(f[key]) for f in feats], dtype=np.float64)
            table[name] = ({name: values[:, 0]} if values.shape[1] == 1 else
                           {f"{name}[{i}]": values[:, i] for i in range(values.shape[1])})
    return {k: v for k, v in table.items() if v}


def _bandwidth(x: np.ndarray, floor: float) -> float:
    """Silverman's rule of thumb, never below ``floor``."""
    n = len(x)
    if n < 2:
        return floor
    iqr = np.subtract(*np.percentile(x, [75, 25]))
    spread = min(x.std(ddof=1), iqr / 1.349) if iqr > 0 else x.std(ddof=1)
    return max(0.9 * spread * n ** (-0.2), floor)


def overlapping_area(a: np.ndarray, b: np.ndarray, grid_points: int = 512) -> float:
    """Overlapping area of the Gaussian KDEs of two samples, on one shared grid.

    Bandwidths follow Silverman's rule, with a floor of 1% of the pooled range (or 1e-3 when
    all values are equal) so constant samples are narrow bumps rather than undefined.

    Args:
        a: float array (n,), one feature over one set.
        b: float array (m,), the same feature over the other set.
        grid_points: grid size.

    Returns:
        float in [0, 1]: 1 for identical samples, near 0 for far-apart ones.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise ValueError("overlapping_area needs two non-empty samples")
    pooled = np.concatenate([a, b])
    span = float(pooled.max() - pooled.min())
    floor = 0.01 * span if span > 0 else 1e-3
    ha, hb = _bandwidth(a, floor), _bandwidth(b, floor)
    lo = pooled.min() - 6 * max(ha, hb)
    hi = pooled.max() + 6 * max(ha, hb)
    grid = np.linspace(lo, hi, grid_points)

    def kde(x: np.ndarray, h: float) -> np.ndarray:
        z = (grid[:, None] - x[None, :]) / h
        return np.exp(-0.5 * z * z).sum(axis=1) / (len(x) * h * np.sqrt(2 * np.pi))

    overlap = np.minimum(kde(a, ha), kde(b, hb))
    area = float(np.sum((overlap[1:] + overlap[:-1]) * np.diff(grid)) / 2)
    return float(np.clip(area, 0.0, 1.0))


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
    gen, ref = _as_list(generated), _as_list(real)
    if gen[0].shape[1] != ref[0].shape[1]:
        raise ValueError(
            f"generated sequences have {gen[0].shape[1]} drums, real ones {ref[0].shape[1]}"
        )
    gen_f = [sequence_features(s, steps_per_bar, bars_per_phrase) for s in gen]
    ref_f = [sequence_features(s, steps_per_bar, bars_per_phrase) for s in ref]
    return _score_tables(_feature_table(gen_f, ref_f), _feature_table(ref_f, ref_f))


def _score_tables(
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


def constant_velocity(seqs: Sequence[np.ndarray], velocity: float = 1.0) -> list[np.ndarray]:
    """The same hits, every one at ``velocity``: what a hits-only model plays for ``seqs``.

    Args:
        seqs: sequences (steps, drums); a hit is a value > 0.
        velocity: the velocity of every hit, in (0, 1] (1.0: binary takes).

    Raises:
        ValueError: for a ``velocity`` outside (0, 1].
    """
    if not 0.0 < velocity <= 1.0:
        raise ValueError(f"velocity must be in (0, 1], got {velocity!r}")
    return [(np.asarray(s) > 0).astype(np.float32) * np.float32(velocity) for s in seqs]


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

    def headline(self, score: SetScore) -> float:
        """Mean OA over the discriminative families."""
        fams = self.discriminative or tuple(score.families)
        return float(np.mean([score.families[f] for f in fams]))


def compare_to_baselines(
    real: np.ndarray | Sequence[np.ndarray],
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    seed: int = 0,
    bootstrap: int = 5,
    min_gap: float = 0.1,
) -> Baselines:
    """Ceiling and floors for a held-out real set.

    The real set is split in two disjoint halves (seeded shuffle): the first half plays the
    held-out set, the second the "generated" one (the ceiling); ``bootstrap`` further random
    splits give its spread. The floors are scored against the same first half, with as many
    sequences as the second half: uniform random, density-matched random and silence.

    Args:
        real: at least 4 real sequences.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        seed: seed of the splits and the random players.
        bootstrap: number of extra random splits for the ceiling's spread.
        min_gap: how much the ceiling must beat the best floor for a family to count.

    Returns:
        Baselines.
    """
    ref = _as_list(real)
    kw = {"steps_per_bar": steps_per_bar, "bars_per_phrase": bars_per_phrase}

    def floors(other: list[np.ndarray], held: list[np.ndarray], rng: np.random.Generator) -> dict:
        return {
            "uniform_random": uniform_random(other, rng),
            "density_random": density_matched_random(other, held, rng),
            "silence": silence(other),
        }

    ceiling, std, scores, disc = _ceiling_and_floors(
        ref, lambda gen, held: score_sets(gen, held, **kw), floors, seed, bootstrap, min_gap
    )
    return Baselines(ceiling, std, *scores.values(), disc)


def _ceiling_and_floors(
    ref: list[np.ndarray],
    score: Callable[[list[np.ndarray], list[np.ndarray]], SetScore],
    floors: Callable[[list[np.ndarray], list[np.ndarray], np.random.Generator], dict],
    seed: int,
    bootstrap: int,
    min_gap: float,
) -> tuple[SetScore, dict[str, float], dict[str, SetScore], tuple[str, ...]]:
    """The ceiling, its spread, the floors' scores and the discriminative families.

    ``score(generated, held)`` scores a set against the held-out half; ``floors(other, held,
    rng)`` makes the floor players' sets (name -> sequences, drawing from ``rng`` in order).
    """
    if len(ref) < 4:
        raise ValueError(f"need at least 4 real sequences for the baselines, got {len(ref)}")
    rng = np.random.default_rng(seed)

    def split() -> tuple[list[np.ndarray], list[np.ndarray]]:
        order = rng.permutation(len(ref))
        half = len(ref) // 2
        return [ref[i] for i in order[:half]], [ref[i] for i in order[half:]]

    held, other = split()
    ceiling = score(other, held)
    spreads = [score(b, a) for a, b in (split() for _ in range(bootstrap))]
    std = {f: float(np.std([s.families[f] for s in spreads + [ceiling]]))
           for f in ceiling.families}  # fmt: skip
    std["mean"] = float(np.std([s.mean for s in spreads + [ceiling]]))
    scores = {name: score(players, held) for name, players in floors(other, held, rng).items()}
    disc = tuple(
        f for f in ceiling.families
        if ceiling.families[f] - max(s.families[f] for s in scores.values()) >= min_gap
    )  # fmt: skip
    return ceiling, std, scores, disc


# ----------------------------------------------------------------------------- velocity
# The dynamics, judged beside the hit families with a headline of their own: the hit families,
# their headline and :class:`Baselines` stay as they are (they read hits only).

VELOCITY_FAMILIES: tuple[str, ...] = ("velocity", "accent")
"""The velocity families of :func:`score_velocity_sets` (see the module docstring)."""

ACCENT_DRUMS = 3
"""The ``accent`` family looks at the real set's most-hit drums, this many."""
ACCENT_POSITIONS = 4
"""... and at each one's most-hit positions in the bar, this many."""


def velocity_sequence_features(seq: np.ndarray, steps_per_bar: int = 16) -> dict[str, np.ndarray]:
    """The raw per-sequence features the velocity families are built from.

    Args:
        seq: array (steps, drums), values in [0, 1]; a hit is a value > 0, its value the
            velocity (read exactly).
        steps_per_bar: steps in one bar.

    Returns:
        dict of float64 arrays: ``velocity_mean``, ``velocity_spread``, ``accent_contrast``
        ``(drums,)`` (:func:`dataset.metrics.velocity_stats`,
        :func:`dataset.metrics.accent_contrast`); ``accent_pattern`` and ``position_hits``
        ``(steps_per_bar, drums)`` (:func:`dataset.metrics.accent_pattern` and the number of
        hits it averages at each position: positions ``t mod steps_per_bar``).
    """
    v = metrics.as_velocities(seq)
    if v.ndim != 2:
        raise ValueError(f"seq must be (steps, drums), got shape {v.shape}")
    stats = metrics.velocity_stats(v)
    bars = -(-len(v) // steps_per_bar)
    hits = np.zeros((bars * steps_per_bar, v.shape[1]))
    hits[: len(v)] = v > 0
    return {
        "velocity_mean": stats.mean,
        "velocity_spread": stats.spread,
        "accent_pattern": metrics.accent_pattern(v, steps_per_bar),
        "accent_contrast": metrics.accent_contrast(v, steps_per_bar),
        "position_hits": hits.reshape(bars, steps_per_bar, v.shape[1]).sum(axis=0),
    }


def _velocity_table(
    feats: list[dict[str, np.ndarray]], real: list[dict[str, np.ndarray]]
) -> dict[str, dict[str, np.ndarray]]:
    """Family -> feature name -> values over the set (N,), feature choice fixed by ``real``."""
    hits = np.sum([f["position_hits"] for f in real], axis=0)  # (steps_per_bar, drums)
    per_drum = hits.sum(axis=0)
    used = np.flatnonzero(per_drum > 0)
    top = used[np.argsort(-per_drum[used], kind="stable")][:ACCENT_DRUMS]
    cells = []
    for d in top:
        where = np.argsort(-hits[:, d], kind="stable")[:ACCENT_POSITIONS]
        cells += [(int(p), int(d)) for p in where if hits[p, d] > 0]

    def col(name: str) -> np.ndarray:
        return np.array([f[name] for f in feats], dtype=np.float64)

    mean, spread, contrast = col("velocity_mean"), col("velocity_spread"), col("accent_contrast")
    pattern = col("accent_pattern")
    table = {
        "velocity": {**{f"velocity_mean[{d}]": mean[:, d] for d in used},
                     **{f"velocity_spread[{d}]": spread[:, d] for d in used}},
        "accent": {**{f"accent_pattern[{p},{d}]": pattern[:, p, d] for p, d in cells},
                   **{f"accent_contrast[{d}]": contrast[:, d] for d in top}},
    }  # fmt: skip
    return {k: v for k, v in table.items() if v}


def score_velocity_sets(
    generated: np.ndarray | Sequence[np.ndarray],
    real: np.ndarray | Sequence[np.ndarray],
    steps_per_bar: int = 16,
) -> SetScore:
    """Score the dynamics of generated sequences against held-out real ones, family by family.

    The families of :data:`VELOCITY_FAMILIES` (those with a feature: none without a real hit),
    by the overlapping area of each feature's distribution, as :func:`score_sets` does for the
    hit families; ``mean`` is the mean over these families only.

    Args:
        generated: (N, steps, drums) array or list of (steps, drums) arrays, values in [0, 1]
            (velocities; binary takes have every hit at 1.0).
        real: the held-out real set, same drums.
        steps_per_bar: steps in one bar.

    Returns:
        SetScore of the velocity families.

    Raises:
        ValueError: empty sets, sets with different numbers of drums, values outside [0, 1].
    """
    gen, ref = _as_list(generated), _as_list(real)
    if gen[0].shape[1] != ref[0].shape[1]:
        raise ValueError(
            f"generated sequences have {gen[0].shape[1]} drums, real ones {ref[0].shape[1]}"
        )
    gen_f = [velocity_sequence_features(s, steps_per_bar) for s in gen]
    ref_f = [velocity_sequence_features(s, steps_per_bar) for s in ref]
    return _score_tables(_velocity_table(gen_f, ref_f), _velocity_table(ref_f, ref_f))


class VelocityBaselines(NamedTuple):
    """Reference scores of the velocity families (:func:`compare_velocity_to_baselines`)."""

    real_vs_real: SetScore
    """Ceiling: one half of the real set against the other."""
    real_vs_real_std: dict[str, float]
    """Bootstrap standard deviation of the ceiling, per family and ``mean``."""
    uniform_random: SetScore
    """Hits with probability 1/2, velocities uniform on (0, 1]."""
    density_random: SetScore
    """Hits at each drum's real rate, velocities drawn from the real hits of that drum."""
    silence: SetScore
    constant_velocity: SetScore
    """The ceiling's own real hits, every one at velocity 1.0 (a binary, hits-only take)."""
    discriminative: tuple[str, ...]
    """Velocity families whose ceiling beats the best floor by at least ``min_gap``: the
    velocity headline averages these only."""

    def headline(self, score: SetScore) -> float:
        """Mean OA over the discriminative velocity families (all of them if none is).

        0 when the real set has no hit, hence no velocity feature.
        """
        fams = self.discriminative or tuple(score.families)
        return float(np.mean([score.families[f] for f in fams])) if fams else 0.0


def compare_velocity_to_baselines(
    real: np.ndarray | Sequence[np.ndarray],
    steps_per_bar: int = 16,
    seed: int = 0,
    bootstrap: int = 5,
    min_gap: float = 0.1,
) -> VelocityBaselines:
    """Ceiling and floors of the velocity families for a held-out real set.

    The same splits as :func:`compare_to_baselines` with the same ``seed`` (the same halves and
    bootstrap splits), scored by :func:`score_velocity_sets`. The floors, scored against the
    first half with as many sequences as the second: uniform random
    (:func:`uniform_random` with velocities), density-matched random
    (:func:`density_matched_random` with velocities: each drum hits at its real rate and each
    hit takes a velocity drawn from that drum's real hits, so the floor knows the real
    distribution of velocities and lacks only their structure), silence, and
    :func:`constant_velocity` (the second half's own hits, all at 1.0: a hits-only model).

    Args:
        real: at least 4 real sequences, values in [0, 1].
        steps_per_bar: steps in one bar.
        seed: seed of the splits and the random players.
        bootstrap: number of extra random splits for the ceiling's spread.
        min_gap: how much the ceiling must beat the best floor for a family to count.

    Returns:
        VelocityBaselines.
    """
    ref = _as_list(real)

    def floors(other: list[np.ndarray], held: list[np.ndarray], rng: np.random.Generator) -> dict:
        return {
            "uniform_random": uniform_random(other, rng, velocities=True),
            "density_random": density_matched_random(other, held, rng, velocities=True),
            "silence": silence(other),
            "constant_velocity": constant_velocity(other),
        }

    ceiling, std, scores, disc = _ceiling_and_floors(
        ref, lambda gen, held: score_velocity_sets(gen, held, steps_per_bar), floors, seed,
        bootstrap, min_gap,
    )  # fmt: skip
    return VelocityBaselines(ceiling, std, *scores.values(), disc)
