"""Velocities anchored to the primer: an expressive policy keeps the drummer's dynamics.

Within one performance a drummer keeps the dynamics: the ghost notes stay soft, the backbeat
stays loud, the accents fall where they fell. Looping the primer reproduces that exactly, and
an expressive policy sampled as it is does not: it plays the velocity levels of the players it
was trained on, which are not the held-out player's (README "Expressive drums").

:func:`anchor_logits` re-weights a hit's velocity class by the primer's dynamics, a product of
experts: ``P(class k | hit) ∝ P_policy(k | hit) * A(k) ** beta``, with ``P(hit)`` left exactly as
the policy gives it, so the hits are the policy's own and only their velocities move.
:class:`PrimerAnchor` supplies ``log A`` for each sub-env from the primer it remembers:

* at a bar position where the primer's bars hit drum ``d``, ``A(k) = 0.8 * f(k) + 0.05`` with
  ``f`` the share of those hits in class ``k`` (the primer's accent at that position, softened);
* elsewhere ``A(k) = (n(k) + 0.5) / (n + 0.5 K)``: the drum's class counts over the whole primer,
  smoothed (its overall level);
* a drum the primer never hits gets ``A = 1 / K``: no preference, the policy alone.

The primer is what the observation's ``context`` shows when an episode starts (the first call
for a sub-env, or a call whose song progress, the ``position`` observation's last entry, is
below the previous call's): every step the context holds then is the primer's, zero-padded
before the canvas's first step, and its classes are ``bins.encode`` of the values. A primer
longer than ``context_steps`` is seen only in its last ``context_steps`` steps. A change of
batch size starts over. These weights are a decoding rule, like the sampling temperature, not
something the policy learned; ``beta = 0`` turns it off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.task import check_number

__all__ = ["ACCENT_WEIGHT", "ACCENT_FLOOR", "COUNT_PRIOR", "anchor_logits", "PrimerAnchor",
           "check_velocity_anchor"]  # fmt: skip

ACCENT_WEIGHT = 0.8
"""Weight of the primer's class shares at a bar position it hits (``A = 0.8 f + 0.05``)."""
ACCENT_FLOOR = 0.05
"""What every class keeps at such a position, so no class is ruled out."""
COUNT_PRIOR = 0.5
"""Added to each class count of a drum over the whole primer (its overall level)."""


def check_velocity_anchor(value: Any) -> float:
    """``value`` as a float, or ValueError unless it is a finite number >= 0."""
    check_number("velocity_anchor", value, 0.0)
    return float(value)


def anchor_logits(logits: Any, anchor: Any, beta: float) -> Any:
    """Logits over ``0 .. K`` whose class-given-hit is re-weighted by ``anchor ** beta``.

    Args:
        logits: torch tensor (..., K + 1): class 0 no hit, class ``k`` a hit in velocity bin ``k``.
        anchor: tensor (..., K), ``log A(k)`` (any finite values; only differences within a
            drum matter).
        beta: the anchor's weight (>= 0; 0 returns ``logits`` unchanged).

    Returns:
        tensor (..., K + 1) with ``softmax(out)[..., 0] == softmax(logits)[..., 0]`` and
        ``softmax(out)[..., k] ∝ softmax(logits)[..., k] * exp(beta * anchor[..., k - 1])`` for
        ``k >= 1``.
    """
    import torch

    if beta == 0:
        return logits
    hits = logits[..., 1:]
    moved = hits + beta * anchor.to(logits.dtype)
    shift = torch.logsumexp(hits, -1, keepdim=True) - torch.logsumexp(moved, -1, keepdim=True)
    return torch.cat([logits[..., :1], moved + shift], -1)


class PrimerAnchor:
    """``log A`` for each sub-env's next step, from the primer it remembers (module docstring).

    Args:
        bins: the velocity bins of the env (:class:`dataset.velocity.VelocityBins` or its dict).
        num_drums: drums per step.
        context_steps: steps of the observation's ``context``.
        steps_per_bar: steps in one bar.
    """

    def __init__(self, bins: Any, num_drums: int, context_steps: int, steps_per_bar: int) -> None:
        from dataset.velocity import VelocityBins

        self.bins = VelocityBins.from_dict(bins)
        self.levels = len(self.bins.levels)
        self.num_drums, self.context_steps = int(num_drums), int(context_steps)
        self.steps_per_bar = int(steps_per_bar)
        self._progress: np.ndarray | None = None
        self._at_position: np.ndarray | None = None  # (B, steps_per_bar, D, K) log A

    def _capture(self, rows: np.ndarray, context: np.ndarray, step: np.ndarray) -> None:
        """Remember the primer of ``rows`` from their context, at bar position ``step``."""
        spb, k = self.steps_per_bar, self.levels
        classes = self.bins.encode(context[rows])  # (R, C, D)
        c = classes.shape[1]
        # bar position of context row i: (step - C + i) mod spb
        positions = (step[rows, None] - c + np.arange(c)[None]) % spb  # (R, C)
        onehot = classes[..., None] == np.arange(1, k + 1)  # (R, C, D, K)
        at = positions[..., None] == np.arange(spb)  # (R, C, spb)
        counts = np.einsum("rcp,rcdk->rpdk", at.astype(float), onehot.astype(float))
        n_pos = counts.sum(-1, keepdims=True)
        shares = counts / np.maximum(n_pos, 1)
        at_position = np.log(ACCENT_WEIGHT * shares + ACCENT_FLOOR)
        total = counts.sum(1)  # (R, D, K)
        overall = np.log((total + COUNT_PRIOR) / (total.sum(-1, keepdims=True) + COUNT_PRIOR * k))
        assert self._at_position is not None
        # where the primer has no hit at a position, the drum's overall level
        self._at_position[rows] = np.where(n_pos > 0, at_position, overall[:, None])

    def __call__(self, obs: Any) -> np.ndarray:
        """float64 (B, D, K): ``log A`` for the step each sub-env is about to play."""
        context = np.asarray(obs["context"]).reshape(-1, self.context_steps, self.num_drums)
        position = np.asarray(obs["position"])
        b = len(context)
        step = position[:, : self.steps_per_bar].argmax(1)
        progress = position[:, -1]
        if self._progress is None or len(self._progress) != b:
            self._progress = np.full(b, np.inf)
            self._at_position = np.zeros((b, self.steps_per_bar, self.num_drums, self.levels))
        new = np.flatnonzero(progress < self._progress)
        if len(new):
            self._capture(new, context, step)
        self._progress = progress.copy()
        assert self._at_position is not None
        return self._at_position[np.arange(b), step]
