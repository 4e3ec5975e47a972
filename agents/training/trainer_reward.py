"""The trainer's reward: the env's terms, normalised (``reward_norm``) and weighted.

The trainer learns from ``r_t = sum_k w_k * n_k(t)`` with ``n_k`` = ``info["reward_terms"]
["<k>/norm"]`` (the env's normalised term, or the raw term for an unnormalised shaping). With
the shaping's fixed weights this is the env's own reward. With ``learn_weights=True`` the
weights of the *dense* terms are :class:`RewardWeights`: ``w_k = softplus(theta_k) >= 0`` for
the terms other than ``song`` whose shaping weight is non-zero, initialised to the shaping's
weights; ``song`` and zero-weight terms keep their weights. Once per iteration, one Adam step
(``weights_lr``) minimises over the episodes finished in the iteration

    L(theta, b) = mean_e ( sum_{k learned} w_k * S_{e,k} + b - y_e )**2

where ``S_{e,k}`` is term ``k``'s normalised value summed over episode ``e`` and ``y_e`` is the
episode's ``song`` term as the env delivers it (``song/norm``: the sparse, final outcome, on the
same scale as the other terms; the raw song term for ``*-raw`` shapings) and ``b`` an intercept
that is not part of the reward. The dense part of the return thus learns to predict the final
outcome. Under DDP the gradient is averaged over the episodes of every rank, so every rank holds
the same weights.

## Reward normalisation (``reward_norm``)

``n_k`` is chosen by ``reward_norm``; each is computed over the steps where term ``k`` *closed*
(``info["reward_terms"]["<k>/closed"]``: every step for ``step``, bar ends for ``bar``,
``silence`` and ``repetition``, phrase / section ends, the episode's end for ``song``; a raw 0
cannot tell "not closed" from "closed with 0"), and is 0 where it did not close:

* ``"running"`` (default): the env's running normaliser (``<k>/norm``), updated whenever an
  episode ends; the trainer's reward is the env's reward bit for bit.
* ``"batch"``: the raw terms of the whole rollout (``num_steps x num_envs``) are normalised by
  that rollout's own mean and (population) standard deviation of each term over its closed
  steps, ``(x - mean) / sqrt(var + 1e-8)``, without clipping: zero mean and unit variance per
  term over each batch. The reward is known once the rollout is complete (GAE needs no more).
* ``"epoch"``: a trainer-side :class:`~drum_env.rewards.RunningNormalizer` (clipped to +-5
  like the env's) whose statistics are frozen during an iteration and updated with all of the
  iteration's closed raw terms at its end; it is saved in the checkpoint.

Under DDP the epoch normaliser, like the env's, folds the closed terms of every rank (the ranks
hold the same statistics); the batch statistics are per rank. Both need a
normalised shaping (not ``*-raw``), and with ``learn_weights`` the fit uses the trainer's
normalised terms (``S_{e,k}`` and ``y_e``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from agents.training.distributed import Dist, all_reduce
from drum_env.rewards import TERMS, RunningNormalizer

__all__ = [
    "REWARD_NORMS",
    "reward_terms",
    "batch_normalize",
    "epoch_normalize",
    "update_normalizer",
    "weighted_reward",
    "RewardWeights",
    "Episodes",
    "assign_rewards",
    "fit_reward_weights",
    "episode_metrics",
]

REWARD_NORMS: tuple[str, ...] = ("running", "batch", "epoch")
"""The values of :attr:`agents.training.ppo.PPOConfig.reward_norm`."""


def reward_terms(info: Mapping[str, Any], kind: str, num_envs: int) -> np.ndarray:
    """Stack ``info["reward_terms"]["<term>/<kind>"]`` of a vector-env step into a matrix.

    Args:
        info: the infos of ``DrumComposeVectorEnv.step``.
        kind: ``"norm"`` (the env's normalised terms), ``"raw"`` or ``"closed"`` (whether the
            term closed on the step).
        num_envs: sub-envs ``N`` (a step where every sub-env resets has no reward terms: zeros).

    Returns:
        array (N, len(TERMS)), columns in ``TERMS`` order: float64, bool for ``"closed"``.
    """
    dtype = np.bool_ if kind == "closed" else np.float64
    terms = info.get("reward_terms")
    if terms is None:
        return np.zeros((num_envs, len(TERMS)), dtype=dtype)
    return np.stack([np.asarray(terms[f"{k}/{kind}"], dtype=dtype) for k in TERMS], -1)


def batch_normalize(raw: np.ndarray, closed: np.ndarray, epsilon: float = 1e-8) -> np.ndarray:
    """``reward_norm="batch"``: normalise each term over a batch's closed steps.

    Args:
        raw: float array (..., len(TERMS)): raw terms of a rollout, e.g. (T, N, terms).
        closed: bool array of the same shape: where each term closed.
        epsilon: added to the variance before the square root.

    Returns:
        float64 array of ``raw``'s shape: ``(raw - mean_k) / sqrt(var_k + epsilon)`` where
        ``closed``, 0 elsewhere; ``mean_k``, ``var_k`` (population) over term ``k``'s closed
        entries (a term that closed once is 0).
    """
    raw = np.asarray(raw, dtype=np.float64)
    closed = np.asarray(closed, dtype=bool)
    axes = tuple(range(raw.ndim - 1))
    count = closed.sum(axis=axes)
    mean = np.where(closed, raw, 0.0).sum(axis=axes) / np.maximum(count, 1)
    var = np.where(closed, np.square(raw - mean), 0.0).sum(axis=axes) / np.maximum(count, 1)
    return np.where(closed, (raw - mean) / np.sqrt(var + epsilon), 0.0)


def epoch_normalize(raw: np.ndarray, closed: np.ndarray, normalizer: RunningNormalizer
                    ) -> np.ndarray:  # fmt: skip
    """``reward_norm="epoch"``: normalise with ``normalizer``'s current (frozen) statistics.

    Args:
        raw: float array (..., len(TERMS)).
        closed: bool array of the same shape.
        normalizer: read only; update it with :func:`update_normalizer` after the iteration.

    Returns:
        float64 array of ``raw``'s shape: ``normalizer.normalize(raw)`` where ``closed``, else 0.
    """
    return np.where(closed, normalizer.normalize(np.asarray(raw, dtype=np.float64)), 0.0)


def update_normalizer(normalizer: RunningNormalizer, raw: np.ndarray, closed: np.ndarray) -> None:
    """Add the closed entries of ``raw`` (..., len(TERMS)) to ``normalizer``'s statistics."""
    axes = tuple(range(np.ndim(raw) - 1))
    values = np.where(closed, np.asarray(raw, dtype=np.float64), 0.0)
    normalizer.update(np.sum(closed, axis=axes).astype(np.float64), values.sum(axis=axes),
                      np.square(values).sum(axis=axes))  # fmt: skip


def weighted_reward(norm_terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The trainer's reward ``r = sum_k w_k * n_k``.

    Args:
        norm_terms: float64 array (N, len(TERMS)): :func:`reward_terms` with ``kind="norm"``.
        weights: float array (len(TERMS),), in ``TERMS`` order.

    Returns:
        float64 array (N,). Bitwise the env's reward when ``weights`` are the shaping's
        (the env sums the same products in the same order).
    """
    return (norm_terms * weights).sum(axis=-1)


def _inverse_softplus(x: np.ndarray) -> np.ndarray:
    """``theta`` with ``softplus(theta) = x`` for ``x > 0`` (float64; ``-inf`` at 0)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(x > 20.0, x, np.log(np.expm1(np.minimum(x, 20.0))))


_WEIGHT_RTOL = 1e-3  # how closely float32 must hold a weight it is given


class RewardWeights(nn.Module):
    """Per-term reward weights; the learned ones are ``softplus(theta) > 0``.

    The weights it is given are honoured or refused, never replaced: every weight must be
    finite and ``>= 0``; a learned term must start above 0, because ``softplus`` never reaches
    0 (a term whose weight is 0 is switched off and stays fixed at 0: ``PPOConfig`` learns only
    the terms with a non-zero weight); and, when any term is learned, every weight must survive
    float32 (within 0.1%; a learned one as ``softplus(theta)``): at least ``1e-30``, or 0.

    Args:
        initial: float array (len(TERMS),), the shaping's weights (start of the learned ones).
        learned: names of the learned terms (the others keep their initial weight).

    Raises:
        ValueError: a weight that is negative, not finite, or not representable as above, or
            an unknown learned term (the message names the term and the weight).
    """

    def __init__(self, initial: np.ndarray, learned: tuple[str, ...] = ()) -> None:
        super().__init__()
        initial = np.asarray(initial, dtype=np.float64)
        if initial.shape != (len(TERMS),):
            raise ValueError(f"reward weights must be {len(TERMS)} numbers, got {initial.shape}")
        unknown = sorted(set(learned) - set(TERMS))
        if unknown:
            raise ValueError(f"learned weights: unknown term(s) {unknown}; known: {list(TERMS)}")
        mask = np.array([k in learned for k in TERMS])
        for k, w, learn in zip(TERMS, initial, mask):
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"weights: {k!r} must be finite and >= 0, got {float(w)!r}")
            if learn and w == 0:
                raise ValueError(
                    f"weights: {k!r} is learned but starts at 0, which softplus cannot "
                    "represent; give it a weight > 0, or leave it at 0 to keep it switched off"
                )
        theta = torch.as_tensor(np.where(mask, _inverse_softplus(initial), 0.0),
                                dtype=torch.float32)  # fmt: skip
        fixed = torch.as_tensor(initial, dtype=torch.float32)
        held = torch.where(torch.as_tensor(mask), nn.functional.softplus(theta), fixed)
        for k, w, got, learn in zip(TERMS, initial, held.double().numpy(), mask):
            # with nothing learned the trainer weighs with the float64 weights themselves
            if mask.any() and abs(got - w) > _WEIGHT_RTOL * w:
                raise ValueError(
                    f"weights: {k!r}={w:g} cannot be held in float32"
                    f"{' as softplus(theta)' if learn else ''} (it becomes {got:g}); use a "
                    "weight of at least 1e-30, or 0 to switch the term off"
                )
        self.register_buffer("fixed", fixed)
        self.register_buffer("mask", torch.as_tensor(mask))
        self.theta = nn.Parameter(theta)
        self.bias = nn.Parameter(torch.zeros((), dtype=torch.float32))

    def forward(self) -> Tensor:
        """Float32 tensor (len(TERMS),): the current weights."""
        return torch.where(self.mask, nn.functional.softplus(self.theta), self.fixed)

    def fit_loss(self, term_sums: Tensor, song: Tensor) -> Tensor:
        """Sum over episodes of ``(sum_{k learned} w_k * S_{e,k} + b - y_e)**2``.

        Args:
            term_sums: float tensor (E, len(TERMS)): each term's normalised value summed over
                an episode.
            song: float tensor (E,): the episode's ``song/norm`` term.

        Returns:
            scalar tensor (a sum: divide by the number of episodes for the mean).
        """
        w = torch.where(self.mask, self(), torch.zeros_like(self.fixed))
        pred = (term_sums.float() * w).sum(-1) + self.bias
        return torch.square(pred - song.float()).sum()



class Episodes:
    """Running per-sub-env sums of the current episodes: return, normalised and raw terms."""

    def __init__(self, n: int) -> None:
        self.ret = np.zeros(n)
        self.norm = np.zeros((n, len(TERMS)))
        self.raw = np.zeros((n, len(TERMS)))

    def add(self, reward: np.ndarray, norm: np.ndarray, raw: np.ndarray, term: np.ndarray
            ) -> list[tuple[float, np.ndarray, np.ndarray]]:  # fmt: skip
        """Add one step; returns ``(return, norm sums, raw sums)`` of the episodes it ended."""
        self.ret += reward
        self.norm += norm
        self.raw += raw
        done = [(float(self.ret[i]), self.norm[i].copy(), self.raw[i].copy())
                for i in np.flatnonzero(term)]  # fmt: skip
        self.ret[term], self.norm[term], self.raw[term] = 0.0, 0.0, 0.0
        return done

    def state_dict(self) -> dict[str, np.ndarray]:
        """The sums as numpy arrays."""
        return {"return": self.ret.copy(), "norm": self.norm.copy(), "raw": self.raw.copy()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict`."""
        self.ret[...], self.norm[...], self.raw[...] = state["return"], state["norm"], state["raw"]



def assign_rewards(raw: np.ndarray, norm: np.ndarray, closed: np.ndarray,
                   terminations: np.ndarray, reward_norm: str, weights: np.ndarray,
                   epoch_normalizer: RunningNormalizer, episodes: Episodes
                   ) -> tuple[np.ndarray, list[tuple[float, np.ndarray, np.ndarray]]]:  # fmt: skip
    """A rollout's rewards: its terms normalised as ``reward_norm`` says, then weighted.

    Args:
        raw: float64 (steps, envs, terms): the env's raw terms.
        norm: float64 (steps, envs, terms): the env's normalised terms; overwritten in place
            with the trainer's for ``"batch"`` and ``"epoch"``.
        closed: bool (steps, envs, terms): where each term closed.
        terminations: bool (steps, envs): where episodes ended.
        reward_norm: one of :data:`REWARD_NORMS`.
        weights: float64 (terms,): the term weights.
        epoch_normalizer: the trainer normaliser of ``"epoch"`` (updated at the end).
        episodes: the running episode sums (updated).

    Returns:
        ``(rewards, finished)``: float64 (steps, envs), and ``(return, norm sums, raw sums)`` of
        every episode that ended in the rollout.
    """
    if reward_norm == "batch":
        norm[...] = batch_normalize(raw, closed)
    elif reward_norm == "epoch":
        norm[...] = epoch_normalize(raw, closed, epoch_normalizer)
        update_normalizer(epoch_normalizer, raw, closed)
    rewards = np.zeros(terminations.shape)
    finished = []
    for step in range(raw.shape[0]):
        rewards[step] = weighted_reward(norm[step], weights)
        finished += episodes.add(rewards[step], norm[step], raw[step], terminations[step])
    return rewards, finished


def fit_reward_weights(reward_weights: RewardWeights, optimizer: torch.optim.Optimizer,
                        finished: list[tuple[float, np.ndarray, np.ndarray]], d: Dist,
                        device: torch.device) -> float:  # fmt: skip
    """One Adam step of the learned weights on the episodes of every rank; the fit loss."""
    song = TERMS.index("song")
    sums = torch.tensor(np.array([f[1] for f in finished]).reshape(-1, len(TERMS)),
                        dtype=torch.float32, device=device)  # fmt: skip
    optimizer.zero_grad(set_to_none=False)
    loss_sum = reward_weights.fit_loss(sums, sums[:, song])
    loss_sum.backward()
    episodes = torch.tensor(float(len(finished)), device=device)
    stats = all_reduce(torch.stack([loss_sum.detach(), episodes]), d)
    count = float(stats[1])
    if count == 0:
        return float("nan")
    for p in reward_weights.parameters():
        all_reduce(p.grad, d).div_(count)
    optimizer.step()
    return float(stats[0]) / count


def episode_metrics(finished: list[tuple[float, np.ndarray, np.ndarray]], weights: np.ndarray,
                    length: int) -> dict[str, float]:  # fmt: skip
    """``charts/*`` and ``reward/<term>`` (mean raw term sums) of the finished episodes.

    ``charts/episodic_return`` is the return the trainer optimised (normalised terms, weighted);
    ``charts/episodic_return_raw`` the same weights on the raw terms, comparable across runs
    and shapings' normalisers; ``charts/episodic_length`` the composed steps of an episode
    (``length``: every episode composes the same number).
    """
    out = {"charts/episodes": float(len(finished))}
    raw = np.array([f[2] for f in finished]).reshape(-1, len(TERMS))
    nan = not finished
    out["charts/episodic_return"] = math.nan if nan else float(np.mean([f[0] for f in finished]))
    out["charts/episodic_return_raw"] = math.nan if nan else float((raw @ weights).mean())
    out["charts/episodic_length"] = math.nan if nan else float(length)
    song = TERMS.index("song")
    out["charts/episode_song_raw"] = math.nan if nan else float(raw[:, song].mean())
    for k, name in enumerate(TERMS):
        out[f"reward/{name}"] = math.nan if nan else float(raw[:, k].mean())
    return out
