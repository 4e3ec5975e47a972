"""Best-of-n on the held-out evaluation: how far can ranking a policy's own takes go?

Play ``n`` takes of every evaluation primer (the same windows, other action draws), keep the
take a score ranks first, and score the kept set with the held-out headline. Best-of-n is the
simplest way to climb a score while staying near the policy: its kept takes are the policy
reweighted towards the score, at a KL divergence from the policy of at most ``log n -
(n - 1) / n`` (Stiennon et al. 2020; Gao, Schulman and Hilton 2023 compare it with RL at equal KL).
So what it gains on held-out players shows how much a fine-tuner that climbs the same score near
its start (PPO with a KL penalty, DPO, expert iteration) can hope to gain there, and a gain that
*falls* as ``n`` grows shows the score being over-optimised: its best takes are no longer the
best drumming.

:func:`play_n` plays the takes (draw ``k`` samples with ``seed + k``; draw 0 is the take
:func:`~agents.evaluation.heldout.evaluate` plays), :func:`take_scores` ranks them by the
episode return plus an optional :class:`~agents.training.discriminator.EnergyWitness` reward
(fit on the training players' windows, never the held-out ones), :func:`best_of` keeps the
first ``n``'s best, and :func:`score_kept` scores what was kept as ``evaluate`` scores a draw.
:func:`match_set` chooses among the takes the *set* whose feature densities overlap most with a
target set's (the held-out references: an oracle; the training windows: what a judge fit on
training data knows), which shows whether the takes or the judge limit the gain.
``benchmarks/best_of_n.py`` runs it over a benchmark's seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.evaluation.heldout import HeldoutConfig, Reference, play_draw

__all__ = ["play_n", "take_scores", "best_of", "score_kept", "match_set"]


def play_n(policy: Any, config: HeldoutConfig, env_kwargs: Mapping[str, Any], n: int,
           temperature: float = 1.0, seed: int = 0) -> list[Any]:  # fmt: skip
    """``n`` draws of actions on one draw of evaluation windows.

    Args:
        policy: a drum-env policy (:func:`agents.evaluation.rollout.load_any_policy`).
        config: the evaluation's settings (``eval_episodes``, ``eval_seed``, ``stratify``).
        env_kwargs: the evaluation env's arguments; their ``shaping`` gives the returns.
        n: takes per primer (>= 1).
        temperature: sampling temperature.
        seed: draw ``k`` samples its actions with ``seed + k``.

    Returns:
        ``n`` :class:`~agents.evaluation.rollout.Rollouts` of the same episodes, windows and
        references (those of :func:`~agents.evaluation.heldout.play_draw` with ``eval_seed``).

    Raises:
        ValueError: ``n`` is not an integer >= 1.
        RuntimeError: the draws did not play the same references.
    """
    from agents.evaluation.rollout import policy_fn

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    draws = [play_draw(policy_fn(policy, seed=seed + k, temperature=temperature), config,
                       env_kwargs, config.eval_seed) for k in range(int(n))]  # fmt: skip
    for d in draws[1:]:
        if not np.array_equal(d.references, draws[0].references):
            raise RuntimeError("the draws played other windows; the env must draw its windows "
                               "from its reset seed alone")  # fmt: skip
    return draws


def take_scores(draws: list[Any], witness: Any = None) -> np.ndarray:
    """float64 (n, episodes): each take's return, plus ``witness``'s reward of its composed part.

    The witness (an :class:`~agents.training.discriminator.EnergyWitness` with its ``coef``)
    sees every take of every draw as the composed set, as the fine-tuner's witness sees a
    round's takes.
    """
    returns = np.stack([np.asarray(d.returns, dtype=np.float64) for d in draws])
    if witness is None:
        return returns
    p = draws[0].prompt_steps
    composed = [s[p:] > 0 for d in draws for s in d.sequences]
    return returns + np.asarray(witness.reward(composed)).reshape(returns.shape)


def best_of(scores: np.ndarray, n: int) -> np.ndarray:
    """For each episode, the draw among the first ``n`` with the highest score: int (episodes,).

    Ties keep the earliest draw. Raises ValueError for ``n`` outside ``1 .. len(scores)`` or
    scores that are not a finite (draws, episodes) array.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or not np.isfinite(scores).all():
        raise ValueError(f"scores must be a finite (draws, episodes) array, got shape "
                         f"{scores.shape}")  # fmt: skip
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(scores):
        raise ValueError(f"n must be an integer in 1..{len(scores)} (the draws), got {n!r}")
    return np.argmax(scores[:n], axis=0)


def score_kept(draws: list[Any], chosen: np.ndarray, config: HeldoutConfig,
               ref: Reference) -> tuple[float, float]:  # fmt: skip
    """(headline, standard error) of the kept takes against their references.

    Scored as :func:`~agents.evaluation.heldout.evaluate` scores draw 0 (the same resamples and
    seed), so ``score_kept(draws, zeros, ...)`` is ``evaluate``'s headline and error of one draw.
    """
    from dataset.evaluation import score_sets_resampled

    chosen = np.asarray(chosen)
    episodes = np.arange(len(chosen))
    seqs = np.stack([d.sequences for d in draws])[chosen, episodes]
    p = draws[0].prompt_steps
    scored = score_sets_resampled(seqs[:, p:], draws[0].references[:, p:], config.steps_per_bar,
                                  config.bars_per_phrase, resamples=config.eval_resamples,
                                  seed=config.eval_seed)  # fmt: skip
    return ref.baselines.headline(scored.score), ref.baselines.standard_error(scored)


def match_set(candidates: np.ndarray, target: np.ndarray, weights: np.ndarray,
              start: np.ndarray, passes: int = 3, grid_points: int = 256,
              seed: int = 0) -> tuple[np.ndarray, float]:  # fmt: skip
    """Choose one take per episode so that the kept set's features overlap most with a target's.

    The objective is the headline's: ``sum_k weights[k] * OA_k``, the overlapping area of the
    Gaussian kernel densities of feature ``k`` over the kept takes and over the target set
    (:mod:`dataset.overlap`'s bandwidth rule and floor, on one grid per feature). Greedy
    coordinate ascent: episode by episode (a seeded order), the take that raises the objective
    most replaces the kept one; ``passes`` sweeps. The bandwidths are those of the starting set
    and are held fixed, so a swap costs one density update; the result is scored afterwards by
    :func:`score_kept` with the evaluation's own bandwidths.

    Args:
        candidates: float (n, episodes, features): every take's features.
        target: float (m, features): the target set's features.
        weights: float (features,): each feature's weight (the headline's: one over the
            families, shared among a family's features).
        start: int (episodes,): the draw kept at first (e.g. :func:`best_of`'s).
        passes: sweeps over the episodes (>= 1).
        grid_points: points of each feature's density grid.
        seed: seed of the episodes' order.

    Returns:
        ``(kept, objective)``: int (episodes,) the draw kept for each episode, and the final
        objective (never below the start's).
    """
    from dataset.overlap import bandwidth

    candidates = np.asarray(candidates, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    n, episodes, features = candidates.shape
    if target.ndim != 2 or target.shape[1] != features or len(np.asarray(weights)) != features:
        raise ValueError(f"target must be (m, {features}) and weights ({features},), got "
                         f"{target.shape} and {np.shape(weights)}")  # fmt: skip
    kept = np.array(start, dtype=int)
    if kept.shape != (episodes,) or kept.min() < 0 or kept.max() >= n:
        raise ValueError(f"start must hold one draw in 0..{n - 1} per episode")
    rows = np.arange(episodes)
    kernels, target_density, steps = [], [], []
    for k in range(features):
        mine, theirs = candidates[:, :, k].ravel(), target[:, k]
        pooled = np.concatenate([mine, theirs])
        span = float(pooled.max() - pooled.min())
        floor = 0.01 * span if span > 1e-9 else 1e-3
        ha, hb = bandwidth(candidates[kept, rows, k], floor), bandwidth(theirs, floor)
        reach = 6 * max(ha, hb)
        grid = np.linspace(pooled.min() - reach, pooled.max() + reach, grid_points)
        za = (candidates[:, :, k, None] - grid) / ha
        kernels.append(np.exp(-0.5 * za * za) / (ha * np.sqrt(2 * np.pi)))  # n, episodes, G
        zb = (theirs[:, None] - grid) / hb
        target_density.append((np.exp(-0.5 * zb * zb) / (hb * np.sqrt(2 * np.pi))).mean(0))
        dx = np.diff(grid)
        steps.append(np.r_[dx / 2, 0.0] + np.r_[0.0, dx / 2])  # trapezoid weights
    kern = np.stack(kernels)  # F, n, episodes, G
    dens_t, step = np.stack(target_density), np.stack(steps)  # F, G
    w = np.asarray(weights, dtype=np.float64)[:, None]
    dens = kern[:, kept, rows].mean(1)  # F, G
    best = float((w * np.minimum(dens, dens_t) * step).sum())
    order_rng = np.random.default_rng(seed)
    for _ in range(int(passes)):
        for e in order_rng.permutation(episodes):
            trial = dens[:, None] + (kern[:, :, e] - kern[:, kept[e], e][:, None]) / episodes
            values = (w[:, None] * np.minimum(trial, dens_t[:, None]) * step[:, None]).sum((0, 2))
            b = int(np.argmax(values))
            if values[b] > best + 1e-12:
                kept[e], dens, best = b, trial[:, b], float(values[b])
    return kept, best
