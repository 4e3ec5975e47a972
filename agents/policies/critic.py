"""The PPO trainer's critic: a value network of its own over the whole observation.

Why not the policy's value head: :class:`~agents.policies.policy.DrumPolicy` reads the phase of the
step to write from the ``position`` observation (step in bar, bar in phrase) and nothing else of it,
so its features cannot tell the first bar of an episode from the last; and its value head reads
those features detached, so the value loss cannot teach the trunk what it lacks. What the return
still to come depends on is where the episode stands (how many bar, phrase and section ends and
the song end are left: ``position``'s section and song progress), what has been composed
(``context``) and what it is compared against (``target``). Measured on the default 131k-step
``drum-env train`` on the Groove split, the policy's head explained about 0.2 of the return's
variance over the last quarter of the run; this critic explains more (README, "Learning").

:class:`Critic` is what CleanRL's and Stable-Baselines3's PPO build for a flat observation: the
observation's arrays concatenated (``context``, ``position``, ``target``, in that order), two
tanh layers (64 wide by default), orthogonal initialisation with gain ``sqrt(2)`` and 1 on the
output (Andrychowicz et al. 2021). It lives in the trainer, beside the policy: a saved
``policy.pt`` holds the actor alone (what ``generate`` and the rollouts need), and a PPO
checkpoint holds both, so a resumed run continues with the same critic.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["CRITICS", "OBS_KEYS", "Critic"]

CRITICS: tuple[str, ...] = ("mlp", "policy")
"""The critics the trainer offers: ``mlp`` (:class:`Critic`, the default) and ``policy`` (the
policy's own value head, the only critic before 0.4)."""

OBS_KEYS: tuple[str, ...] = ("context", "position", "target")
"""The observation arrays the critic reads, in the order they are concatenated."""


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class Critic(nn.Module):
    """``V(obs)``: a tanh MLP over the concatenated observation arrays.

    Initialisation draws from the global torch generator.

    Args:
        sizes: the length of each array of :data:`OBS_KEYS` in one observation.
        hidden: widths of the hidden layers (each >= 1).
    """

    def __init__(self, sizes: Mapping[str, int], hidden: tuple[int, ...] = (64, 64)) -> None:
        super().__init__()
        missing = [k for k in OBS_KEYS if k not in sizes]
        if missing:
            raise ValueError(f"Critic needs the sizes of {list(OBS_KEYS)}; missing {missing}")
        if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be one or more positive widths, got {hidden!r}")
        self.sizes = {k: int(sizes[k]) for k in OBS_KEYS}
        widths = (sum(self.sizes.values()), *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [_orthogonal(nn.Linear(a, b), float(np.sqrt(2.0))), nn.Tanh()]
        layers.append(_orthogonal(nn.Linear(widths[-1], 1), 1.0))
        self.net = nn.Sequential(*layers)

    @classmethod
    def for_space(cls, space: object, hidden: tuple[int, ...] = (64, 64)) -> Critic:
        """The critic of an env's (single) ``Dict`` observation space."""
        spaces = getattr(space, "spaces", None)
        if spaces is None:
            raise TypeError(f"expected a gymnasium Dict space, got {type(space).__name__}")
        return cls({k: int(np.prod(spaces[k].shape)) for k in OBS_KEYS}, hidden)

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        """Values float32 ``(B,)`` of a batch of observations (``(B, size)`` tensors)."""
        x = torch.cat([obs[k].reshape(obs[k].shape[0], -1).float() for k in OBS_KEYS], dim=-1)
        return self.net(x).squeeze(-1).float()
