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
at that temperature on the held-out players; :func:`score_at_chosen_temperature` does both
steps and reports the takes' variety beside the real continuations' (the benchmark scripts'
tables of "T = 1" and "T*" rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from agents.evaluation.heldout import HeldoutConfig, Reference, evaluate, heldout_dataset, reference

__all__ = ["TEMPERATURES", "TemperatureChoice", "choose_temperature", "score_at_chosen_temperature"]

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


def score_at_chosen_temperature(
    policy: Any,
    config: HeldoutConfig,
    select: HeldoutConfig,
    val_dir: str | Path,
    env_kwargs: dict[str, Any],
    ref: Reference,
    temperatures: Sequence[float] = TEMPERATURES,
    seed: int = 0,
    diversity_episodes: int = 256,
) -> tuple[list[dict[str, Any]], float]:
    """Score ``policy`` on held-out data at temperature 1 and at its validation-chosen one.

    The temperature is chosen by :func:`choose_temperature` on ``val_dir`` (with ``select``'s
    evaluation settings); both plays are scored by :func:`~agents.evaluation.heldout.evaluate`
    with ``config.eval_draws`` draws, and the intra-set diversity of ``diversity_episodes`` takes
    (:func:`dataset.diversity.intra_set_diversity` of the composed part, episodes seeded
    ``config.eval_seed``) is reported beside the real continuations' of the same windows.

    Args:
        policy: a drum-env policy (not an SB3 model).
        config: the held-out evaluation's settings.
        select: the validation evaluation's settings (e.g. fewer episodes, one draw).
        val_dir: folder of validation ``.npz`` files (never the held-out split).
        env_kwargs: the held-out env's arguments (``config.env_kwargs(heldout)``).
        ref: :func:`~agents.evaluation.heldout.reference` of the held-out part.
        temperatures: the candidates.
        seed: seed of the action draws.
        diversity_episodes: takes whose diversity is reported.

    Returns:
        ``(rows, real_diversity)``: two rows, ``play`` ``"T=1"`` then ``"T*"``, each with
        ``seed``, ``temperature``, ``validation_headlines`` (candidate as text -> headline),
        ``headline``, ``headline_se`` and ``diversity``; and the real continuations' diversity.
    """
    from agents.evaluation.rollout import policy_fn, rollout_episodes
    from dataset.diversity import intra_set_diversity

    choice = choose_temperature(policy, select, val_dir, temperatures, seed=seed)
    rows, real_diversity = [], float("nan")
    for label, t in (("T=1", 1.0), ("T*", choice.temperature)):
        scores = evaluate(policy_fn(policy, seed=seed, temperature=t), config, env_kwargs, ref,
                          config.eval_draws)  # fmt: skip
        takes = rollout_episodes(policy_fn(policy, seed=seed, temperature=t), env_kwargs,
                                 episodes=diversity_episodes, num_envs=16,
                                 seed=config.eval_seed)  # fmt: skip
        p = takes.prompt_steps
        real_diversity = intra_set_diversity(takes.references[:, p:])
        rows.append({
            "play": label, "seed": seed, "temperature": t,
            "validation_headlines": {str(k): v for k, v in choice.headlines.items()},
            "headline": scores["headline"], "headline_se": scores["headline_se"],
            "diversity": intra_set_diversity(takes.sequences[:, p:]),
        })  # fmt: skip
    return rows, real_diversity
