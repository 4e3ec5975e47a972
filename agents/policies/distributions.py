"""The action distributions of the policy heads: Bernoulli or categorical per drum.

The maths of acting, for both policies (:mod:`agents.policies.transformer`,
:mod:`agents.policies.mlp`), the trainer and the rollouts: pure functions over logits
(log-probability, entropy, KL), summed over the drums in float32, and :class:`ActionDist`, which
picks them by the number of velocity classes ``K`` (:func:`action_dist`; a policy's own is
``policy.action_dist``).

## Velocity classes

With ``velocity_levels = K > 0`` (the env's ``MultiDiscrete([K + 1] * D)`` action: 0 is no hit,
class ``k`` a hit in velocity bin ``k``, :mod:`dataset.velocity`) the policy head gives
``D * (K + 1)`` logits, shaped ``(..., D, K + 1)``: an independent categorical per drum, whose
log-probability and entropy are summed over the drums. Its bias starts every drum at
``P(no hit) = 1 - init_hit_rate`` and ``init_hit_rate / K`` for each velocity class. The input
is unchanged: a token reads the step's values (velocities in ``[0, 1]``, as the env's
``context`` shows them). :class:`ActionDist` holds the maths of both heads (sampling, mode,
log-probability, entropy, KL), chosen by ``K`` (:func:`action_dist`); the trainer and the
rollouts use it through ``policy.action_dist``. With ``K = 0`` every number is what it was
before velocities existed (the same parameters, initial draws and kernels).

## Joint step patterns

With ``joint_step`` (binary policies, ``PolicyConfig.joint_step``) the head gives ``2 ** D``
logits, one per step pattern: pattern ``i`` hits drum ``d`` when bit ``d`` of ``i`` is set
(:func:`pattern_index`, :func:`pattern_bits`). Actions stay the env's 0 / 1 per drum; the
log-probability of an action is its pattern's log-softmax, the entropy and KL those of the
categorical over patterns. :func:`independent_pattern_logits` starts the head at the
independent Bernoulli distribution of a hit rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent

from dataset.velocity import MAX_VELOCITY_LEVELS

__all__ = [
    "ActionDist",
    "action_dist",
    "check_velocity_levels",
    "bernoulli_log_prob",
    "bernoulli_entropy",
    "bernoulli_kl",
    "categorical_log_prob",
    "categorical_entropy",
    "categorical_kl",
    "MAX_JOINT_DRUMS",
    "pattern_index",
    "pattern_bits",
    "independent_pattern_logits",
]

MAX_JOINT_DRUMS: int = 12
"""The most drums a joint step head covers (``2 ** 12`` patterns)."""


def pattern_index(actions: Tensor) -> Tensor:
    """The pattern of 0 / 1 hits (..., D) as an int64 index (...): bit ``d`` is drum ``d``."""
    weights = 2 ** torch.arange(actions.shape[-1], device=actions.device)
    return (actions.round().long() * weights).sum(-1)


def pattern_bits(index: Tensor, num_drums: int) -> Tensor:
    """The 0 / 1 hits (..., D), float32, of pattern indices (...): :func:`pattern_index` undone."""
    shifts = torch.arange(num_drums, device=index.device)
    return ((index.unsqueeze(-1) >> shifts) & 1).float()


def independent_pattern_logits(num_drums: int, rate: float) -> Tensor:
    """Logits (2 ** D,) of the joint head equal to ``D`` independent Bernoulli(``rate``) draws.

    ``log P(pattern) = k log(rate) + (D - k) log(1 - rate)`` for a pattern of ``k`` hits.
    """
    hits = pattern_bits(torch.arange(2**num_drums), num_drums).sum(-1).double()
    return (hits * np.log(rate) + (num_drums - hits) * np.log(1.0 - rate)).float()


def check_velocity_levels(value: Any) -> None:
    """A ValueError unless ``value`` is an integer in ``[0, MAX_VELOCITY_LEVELS]``."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not 0 <= value <= MAX_VELOCITY_LEVELS):  # fmt: skip
        raise ValueError(
            f"velocity_levels must be an integer in [0, {MAX_VELOCITY_LEVELS}] (0: binary hits), "
            f"got {value!r}"
        )


def bernoulli_log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    """Log-probability of ``actions`` under independent Bernoullis, summed over the last axis.

    Bitwise what ``DrumPolicy.distribution(logits).log_prob(actions)`` returns (the same
    kernel, ``-binary_cross_entropy_with_logits``), without building distribution objects or
    validating their arguments (which costs more than the maths at PPO's batch sizes).

    Args:
        logits: float32 tensor (..., D).
        actions: float32 tensor (..., D) of 0 / 1.

    Returns:
        float32 tensor (...).
    """
    return -nn.functional.binary_cross_entropy_with_logits(logits, actions,
                                                           reduction="none").sum(-1)  # fmt: skip


def bernoulli_entropy(logits: Tensor) -> Tensor:
    """Entropy of independent Bernoullis given by logits, summed over the last axis.

    Bitwise ``DrumPolicy.distribution(logits).entropy()``.

    Args:
        logits: float32 tensor (..., D).

    Returns:
        float32 tensor (...), >= 0.
    """
    probs = torch.sigmoid(logits)
    return nn.functional.binary_cross_entropy_with_logits(logits, probs,
                                                          reduction="none").sum(-1)  # fmt: skip


def bernoulli_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """``KL(p || q)`` of independent Bernoullis given by logits, summed over the last axis.

    ``sum_d p_d (log p_d - log q_d) + (1 - p_d) (log(1 - p_d) - log(1 - q_d))``, computed with
    ``logsigmoid`` for stability, in float32.

    Args:
        logits_p: tensor (..., D).
        logits_q: tensor (..., D).

    Returns:
        float32 tensor (...), >= 0.
    """
    lp, lq = logits_p.float(), logits_q.float()
    p = torch.sigmoid(lp)
    f = nn.functional.logsigmoid
    kl = p * (f(lp) - f(lq)) + (1.0 - p) * (f(-lp) - f(-lq))
    return kl.sum(-1)


def categorical_log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    """Log-probability of class ``actions`` under a categorical per drum, summed over the drums.

    Args:
        logits: float tensor (..., D, C).
        actions: integer tensor (..., D) of classes in ``0 .. C - 1`` (any dtype holding them).

    Returns:
        float32 tensor (...).
    """
    log_p = nn.functional.log_softmax(logits.float(), -1)
    return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1).sum(-1)


def categorical_entropy(logits: Tensor) -> Tensor:
    """Entropy of a categorical per drum given by logits, summed over the drums.

    Args:
        logits: float tensor (..., D, C).

    Returns:
        float32 tensor (...), >= 0.
    """
    log_p = nn.functional.log_softmax(logits.float(), -1)
    return -(log_p.exp() * log_p).sum((-2, -1))


def categorical_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """``KL(p || q)`` of a categorical per drum given by logits, summed over the drums.

    ``sum_d sum_c p_dc (log p_dc - log q_dc)``, from ``log_softmax``, in float32.

    Args:
        logits_p: tensor (..., D, C).
        logits_q: tensor (..., D, C).

    Returns:
        float32 tensor (...), >= 0.
    """
    log_p = nn.functional.log_softmax(logits_p.float(), -1)
    log_q = nn.functional.log_softmax(logits_q.float(), -1)
    return (log_p.exp() * (log_p - log_q)).sum((-2, -1))


@dataclass(frozen=True)
class ActionDist:
    """The action distribution of a policy head: the maths of acting, chosen by ``K``.

    ``velocity_levels = 0``: an independent Bernoulli per drum over logits (..., D), actions
    float32 0 / 1 (the :func:`bernoulli_log_prob` kernels). ``K > 0``: an independent
    categorical per drum over logits (..., D, K + 1), actions int64 classes ``0 .. K``. Every
    log-probability, entropy and KL is summed over the drums, in float32. Get one with
    :func:`action_dist` or ``policy.action_dist``.
    """

    velocity_levels: int = 0
    """``K``: 0 for the binary head, else the number of velocity classes of a hit."""
    joint_drums: int = 0
    """``D`` for a joint step head (a categorical over the ``2 ** D`` patterns), else 0."""

    @property
    def action_dtype(self) -> torch.dtype:
        """The dtype of the actions: float32 (binary) or int64 (classes)."""
        return torch.int64 if self.velocity_levels else torch.float32

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw an action per drum (no gradient): (..., D) of :attr:`action_dtype`."""
        logits = logits.detach().float()
        if self.joint_drums:
            probs = torch.softmax(logits, -1)
            draws = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
            return pattern_bits(draws.view(probs.shape[:-1]), self.joint_drums)
        if not self.velocity_levels:
            return torch.bernoulli(torch.sigmoid(logits), generator=generator)
        probs = torch.softmax(logits, -1)
        draws = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        return draws.view(probs.shape[:-1])

    def mode(self, logits: Tensor) -> Tensor:
        """The most likely action per drum: hit where ``p > 0.5``, or the argmax class."""
        logits = logits.detach().float()
        if self.joint_drums:
            return pattern_bits(logits.argmax(-1), self.joint_drums)
        if not self.velocity_levels:
            return (torch.sigmoid(logits) > 0.5).float()
        return logits.argmax(-1)

    def log_prob(self, logits: Tensor, actions: Tensor) -> Tensor:
        """``log pi(actions)`` summed over the drums: float32 (...)."""
        logits = logits.float()
        if self.joint_drums:
            return categorical_log_prob(logits.unsqueeze(-2), pattern_index(actions).unsqueeze(-1))
        if not self.velocity_levels:
            return bernoulli_log_prob(logits, actions.to(logits))
        return categorical_log_prob(logits, actions)

    def entropy(self, logits: Tensor) -> Tensor:
        """Entropy summed over the drums: float32 (...)."""
        logits = logits.float()
        if self.joint_drums:
            return categorical_entropy(logits.unsqueeze(-2))
        return categorical_entropy(logits) if self.velocity_levels else bernoulli_entropy(logits)

    def kl(self, logits_p: Tensor, logits_q: Tensor) -> Tensor:
        """``KL(p || q)`` summed over the drums: float32 (...), >= 0."""
        if self.joint_drums:
            return categorical_kl(logits_p.unsqueeze(-2), logits_q.unsqueeze(-2))
        if not self.velocity_levels:
            return bernoulli_kl(logits_p, logits_q)
        return categorical_kl(logits_p, logits_q)

    def distribution(self, logits: Tensor) -> Distribution:
        """The torch distribution (``Independent`` over the drums) the methods above compute.

        For a joint head, the ``Categorical`` over pattern indices (:func:`pattern_index`).
        """
        if self.joint_drums:
            return Categorical(logits=logits.float())
        if not self.velocity_levels:
            return Independent(Bernoulli(logits=logits.float()), 1)
        return Independent(Categorical(logits=logits.float()), 1)


def action_dist(velocity_levels: int = 0, joint_drums: int = 0) -> ActionDist:
    """The :class:`ActionDist` of a head: ``velocity_levels`` classes (0: binary), or joint.

    ``joint_drums = D > 0``: a joint step head over ``D`` drums (a categorical over patterns).

    Raises:
        ValueError: ``velocity_levels`` is not an integer in ``[0, 127]``; ``joint_drums`` is
            not in ``[0, MAX_JOINT_DRUMS]`` or is given with velocity classes.
    """
    check_velocity_levels(velocity_levels)
    if (isinstance(joint_drums, bool) or not isinstance(joint_drums, (int, np.integer))
            or not 0 <= joint_drums <= MAX_JOINT_DRUMS):  # fmt: skip
        raise ValueError(f"joint_drums must be an integer in [0, {MAX_JOINT_DRUMS}], "
                         f"got {joint_drums!r}")  # fmt: skip
    if joint_drums and velocity_levels:
        raise ValueError("a joint step head is binary: velocity_levels must be 0")
    return ActionDist(int(velocity_levels), int(joint_drums))
