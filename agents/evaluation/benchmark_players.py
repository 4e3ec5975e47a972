"""The benchmark's players that do not train, rebuilt from its training split.

:mod:`agents.evaluation.benchmark` plays them in its grid (one cell per seed, shaping ``any``)
and :mod:`agents.evaluation.report` plays them again on a listening page, from the same
numbers: each drum's hit rate in the training split (:func:`training_rates`; with velocity
levels also the split's bins and each drum's class frequencies) and :func:`player_policy`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from agents.evaluation.benchmark_report import PLAYERS

__all__ = ["TrainingRates", "training_rates", "player_policy"]


class TrainingRates(NamedTuple):
    """What the players that do not train take from the training split."""

    rates: np.ndarray
    """float64 (drums,): hits per step of each drum (the random player's rates)."""
    velocity_bins: Any
    """With velocity levels: the split's :class:`~dataset.velocity.VelocityBins` (the envs' own
    choice on that data; loop-the-primer plays at them); else ``None``."""
    class_rates: np.ndarray | None
    """With velocity levels: float64 (drums, K + 1), each drum's class frequencies (the random
    player's table); else ``None``."""


def training_rates(sequences: Sequence[np.ndarray], velocity_levels: int = 0) -> TrainingRates:
    """The training split's per-drum hit rates (and velocity bins and class rates).

    Args:
        sequences: the training split's sequences, float arrays (steps, drums) in [0, 1].
        velocity_levels: ``K`` (0: binary hits; no bins or class table).
    """
    from dataset.metrics import as_hits

    hits = sum(as_hits(s).sum(axis=0) for s in sequences)
    rates = np.asarray(hits, dtype=np.float64) / float(sum(len(s) for s in sequences))
    if not velocity_levels:
        return TrainingRates(rates, None, None)
    from dataset.velocity import VelocityBins

    bins = VelocityBins.from_data(sequences, velocity_levels)
    classes = np.concatenate([bins.encode(np.asarray(s)) for s in sequences])
    k = velocity_levels + 1
    counts = np.stack([np.bincount(classes[:, d], minlength=k) for d in range(len(rates))])
    return TrainingRates(rates, bins, counts / counts.sum(axis=1, keepdims=True))


def player_policy(agent: str, config: Any, rates: TrainingRates, seed: int,
                  pretrained: str | Path | None = None) -> tuple[Callable, Any]:  # fmt: skip
    """A player that does not train, as the benchmark plays it: a batched numpy policy.

    The players are :data:`~agents.evaluation.benchmark_report.PLAYERS`.

    Args:
        agent: ``pretrained`` (the policy file ``pretrained``, sampled), ``loop``
            (loop-the-primer) or ``random`` (each drum at its training-split rate, or class
            rates with velocity levels).
        config: the task (``context_steps``, ``steps_per_bar``, ``velocity_levels``).
        rates: :func:`training_rates` of the training split.
        seed: seed of the sampling (``pretrained``, ``random``).
        pretrained: the pretrained policy's file (``pretrained`` only).

    Returns:
        ``(policy, velocity_bins)``: the bins the player's envs must use (the pretrained
        policy's own), or ``None`` for the training split's.
    """
    from agents.evaluation.rollout import load_any_policy, loop_policy, policy_fn, random_policy
    from agents.policies.policy import policy_velocity_bins

    drums = len(rates.rates)
    if agent == "pretrained":
        if pretrained is None:
            raise ValueError("player_policy: 'pretrained' needs the policy file (pretrained=)")
        policy = load_any_policy(pretrained)
        return policy_fn(policy, seed=seed), policy_velocity_bins(policy)
    if agent == "loop":
        return loop_policy(drums, config.shown_steps, config.steps_per_bar,
                           rates.velocity_bins), None  # fmt: skip
    if agent != "random":
        raise ValueError(f"player_policy: agent must be one of {list(PLAYERS)}, got {agent!r}")
    if rates.class_rates is not None:  # density- and velocity-matched classes
        return random_policy(drums, rates.class_rates, seed, config.velocity_levels), None
    return random_policy(drums, rates.rates, seed), None
