"""The sampling temperature of a policy, chosen on validation data, never on held-out data.

A policy trained by likelihood (``drum-env pretrain``) samples its own distribution at
temperature 1; a lower temperature plays its likelier hits more often and its unlikely ones
less, which often scores better against real drumming. So "RL improved the pretrained policy"
means something only against the pretrained policy at its *best* temperature: RL that merely
sharpens the distribution is a temperature. :func:`choose_temperature` finds that temperature
the way a user without held-out data would: it plays the policy at each candidate on windows of
a validation folder (files of the *training* players that pretraining did not train on), scores
the takes with the held-out evaluation (:func:`agents.evaluation.heldout.evaluate`, the same
headline the benchmark reports), and keeps the best. The benchmark then plays the pretrained policy
at that temperature on the held-out players.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from agents.evaluation.heldout import HeldoutConfig, evaluate, heldout_dataset, reference

__all__ = ["TEMPERATURES", "TemperatureChoice", "choose_temperature"]

TEMPERATURES: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1)
"""The candidates :func:`choose_temperature` tries by default."""


class TemperatureChoice(NamedTuple):
    """What :func:`choose_temperature` found."""

    temperature: float
    """The candidate with the highest validation headline (the lowest one on a tie)."""
    headlines: dict[float, float]
    """Candidate -> validation headline."""


def choose_temperature(
    policy: Any,
    config: HeldoutConfig,
    val_dir: str | Path,
    temperatures: Sequence[float] = TEMPERATURES,
    seed: int = 0,
) -> TemperatureChoice:
    """The sampling temperature at which ``policy`` scores best on a validation folder.

    Args:
        policy: a drum-env policy (:func:`agents.evaluation.rollout.load_any_policy`; not an SB3
            model).
        config: the task and the evaluation settings (``eval_episodes``, ``eval_seed``); its
            split fields are unused.
        val_dir: folder of validation ``.npz`` files (never the held-out split).
        temperatures: the candidates, each > 0.
        seed: seed of the action draws (the same for every candidate).

    Returns:
        TemperatureChoice.

    Raises:
        ValueError: no candidate, a candidate that is not a number > 0, or a validation folder
            with fewer than 4 full windows (:func:`agents.evaluation.heldout.reference`).
    """
    from agents.evaluation.rollout import policy_fn

    candidates = [float(t) for t in temperatures]
    if not candidates:
        raise ValueError("temperatures must name at least one candidate")
    for t in candidates:
        if not t > 0 or t == float("inf"):
            raise ValueError(f"temperatures must be finite numbers > 0, got {t!r}")
    data = heldout_dataset(config, val_dir)
    ref = reference(config, data)
    kwargs = config.env_kwargs(data)
    scores = {
        t: evaluate(policy_fn(policy, seed=seed, temperature=t), config, kwargs, ref)["headline"]
        for t in candidates
    }
    best = max(sorted(scores), key=lambda t: scores[t])
    return TemperatureChoice(best, scores)
