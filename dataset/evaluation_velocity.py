"""Velocity families: the dynamics of a set of takes against held-out real ones.

They judge the values as velocities, read exactly, beside the hit families of
:mod:`dataset.evaluation` and never averaged into their headline: :func:`score_velocity_sets`
scores them, :func:`compare_velocity_to_baselines` gives their own ceiling, floors and headline
(:class:`VelocityBaselines`), by the overlapping area of each feature's distributions as the
hit families are scored. The families :data:`VELOCITY_FAMILIES`:

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

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from dataset import metrics
from dataset.evaluation import (
    ResampledScore,
    SetScore,
    as_sequence_list,
    ceiling_and_floors,
    density_matched_random,
    score_tables,
    silence,
    top_cells,
    uniform_random,
)
from dataset.metrical import onset_positions

__all__ = [
    "VELOCITY_FAMILIES",
    "ACCENT_DRUMS",
    "ACCENT_POSITIONS",
    "velocity_sequence_features",
    "score_velocity_sets",
    "VelocityBaselines",
    "compare_velocity_to_baselines",
    "constant_velocity",
]

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
    return {
        "velocity_mean": stats.mean,
        "velocity_spread": stats.spread,
        "accent_pattern": metrics.accent_pattern(v, steps_per_bar),
        "accent_contrast": metrics.accent_contrast(v, steps_per_bar),
        "position_hits": onset_positions(v, steps_per_bar),
    }


def _velocity_table(
    feats: list[dict[str, np.ndarray]], real: list[dict[str, np.ndarray]]
) -> dict[str, dict[str, np.ndarray]]:
    """Family -> feature name -> values over the set (N,), feature choice fixed by ``real``."""
    hits = np.sum([f["position_hits"] for f in real], axis=0)  # (steps_per_bar, drums)
    used = np.flatnonzero(hits.sum(axis=0) > 0)
    cells = top_cells(hits, ACCENT_DRUMS, ACCENT_POSITIONS)
    top = list(dict.fromkeys(d for _, d in cells))  # the drums of the cells, in their order

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
    gen, ref = as_sequence_list(generated), as_sequence_list(real)
    if gen[0].shape[1] != ref[0].shape[1]:
        raise ValueError(
            f"generated sequences have {gen[0].shape[1]} drums, real ones {ref[0].shape[1]}"
        )
    gen_f = [velocity_sequence_features(s, steps_per_bar) for s in gen]
    ref_f = [velocity_sequence_features(s, steps_per_bar) for s in ref]
    return score_tables(_velocity_table(gen_f, ref_f), _velocity_table(ref_f, ref_f))


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
    ref = as_sequence_list(real)

    def floors(other: list[np.ndarray], held: list[np.ndarray], rng: np.random.Generator) -> dict:
        return {
            "uniform_random": uniform_random(other, rng, velocities=True),
            "density_random": density_matched_random(other, held, rng, velocities=True),
            "silence": silence(other),
            "constant_velocity": constant_velocity(other),
        }

    def score(gen: list[np.ndarray], held: list[np.ndarray], _: int) -> ResampledScore:
        return ResampledScore(score_velocity_sets(gen, held, steps_per_bar), {})

    ceiling, std, scores, disc, _ = ceiling_and_floors(
        ref, score, floors, seed, bootstrap, min_gap
    )
    return VelocityBaselines(ceiling, std, *scores.values(), disc)  # type: ignore[call-arg, arg-type]  # the floors, in order


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
