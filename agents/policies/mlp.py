"""The MLP policy: the policy Stable-Baselines3's PPO builds for this env, at equal size.

:class:`MLPPolicy` (``kind = "mlp"``) is the policy Stable-Baselines3's PPO builds for this
env: the observation flattened (``context``, ``position``, ``target``), two separate 64-64
tanh MLPs for the policy and the value, orthogonal initialisation. It has the interface the
trainer and the rollouts use (:meth:`~MLPPolicy.forward_obs`, :meth:`~MLPPolicy.act`,
:meth:`~MLPPolicy.evaluate_actions`, :meth:`~MLPPolicy.distribution`) and reads exactly its own
``context_steps``. :func:`make_policy` builds either kind from an env config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from agents.policies import common
from agents.policies.distributions import check_velocity_levels
from dataset.velocity import VelocityBins

if TYPE_CHECKING:
    from drum_env.core import DrumComposeConfig

__all__ = ["MLPPolicyConfig", "MLPPolicy"]


@dataclass(frozen=True)
class MLPPolicyConfig:
    """Shape of an :class:`MLPPolicy`. Validated on construction.

    Build it from an env with :meth:`from_env_config` so the sizes agree with the observations.
    """

    num_drums: int = 9
    """Drums per step ``D``: Bernoulli outputs per step."""
    context_steps: int = 16
    """Steps of the env's ``context`` observation ``C``; the MLP reads exactly ``C * D`` values
    (unlike the Transformer, it cannot read another context length)."""
    steps_per_bar: int = 16
    """Steps in one bar (the ``position`` observation's step-in-bar block)."""
    bars_per_phrase: int = 4
    """Bars in one phrase (the ``position`` observation's bar-in-phrase block)."""
    target_size: int = 20
    """Length ``K`` of the target-feature vector (the env's ``target`` observation)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the hidden tanh layers of each of the two MLPs (policy, value); SB3's PPO
    default is ``(64, 64)``."""
    init_hit_rate: float = 0.1
    """Hit probability of every drum before training, in (0, 1) (as
    :attr:`PolicyConfig.init_hit_rate`)."""
    kind: str = "mlp"
    """Always ``"mlp"``: recorded with the config, so a saved config names its policy kind."""
    velocity_levels: int = 0
    """Velocity classes ``K`` of the action (as :attr:`PolicyConfig.velocity_levels`): 0 binary
    hits, ``K > 0`` a categorical per drum over ``K + 1`` classes."""

    def __post_init__(self) -> None:
        for name in ("num_drums", "context_steps", "steps_per_bar", "bars_per_phrase",
                     "target_size"):  # fmt: skip
            common.check_positive_int(getattr(self, name), name)
        sizes = self.hidden_sizes
        if isinstance(sizes, (list, tuple)):
            object.__setattr__(self, "hidden_sizes", tuple(sizes))  # a loaded list
        if not isinstance(sizes, (list, tuple)) or not sizes:
            raise ValueError(f"hidden_sizes must be a non-empty tuple of ints >= 1, got {sizes!r}")
        for size in sizes:
            common.check_positive_int(size, "hidden_sizes")
        if isinstance(self.init_hit_rate, bool) or not 0.0 < float(self.init_hit_rate) < 1.0:
            raise ValueError(f"init_hit_rate must be in (0, 1), got {self.init_hit_rate!r}")
        if self.kind != "mlp":
            raise ValueError(f"kind of an MLPPolicyConfig must be 'mlp', got {self.kind!r}")
        check_velocity_levels(self.velocity_levels)

    @property
    def position_size(self) -> int:
        """Length of the env's ``position`` observation this policy reads."""
        return self.steps_per_bar + self.bars_per_phrase + 2

    @property
    def obs_size(self) -> int:
        """Inputs of the MLPs: ``context_steps * num_drums + position_size + target_size``."""
        return self.context_steps * self.num_drums + self.position_size + self.target_size

    @property
    def max_len(self) -> int:
        """Longest context (steps) the policy reads: ``context_steps`` exactly."""
        return self.context_steps

    @classmethod
    def from_env_config(cls, cfg: DrumComposeConfig, **overrides: Any) -> MLPPolicyConfig:
        """The config whose sizes match a DrumCompose task, as :meth:`PolicyConfig.from_env_config`.

        Args:
            cfg: the env's :class:`~drum_env.core.DrumComposeConfig`.
            **overrides: any other field (``hidden_sizes``, ``init_hit_rate``).

        Raises:
            TypeError: for an override that is not a field.
        """
        return common.config_from_env(cls, cfg, overrides)


def _mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [common.orthogonal(nn.Linear(a, b), float(np.sqrt(2.0))), nn.Tanh()]
    return nn.Sequential(*layers)


class MLPPolicy(common.VelocityBinsMixin, nn.Module):
    """An MLP actor-critic of the size and kind SB3's PPO uses, over the flattened observation.

    ``x = concat(context, position, target)`` (``obs_size`` values); two separate tanh MLPs
    (``hidden_sizes``, SB3's ``net_arch=dict(pi=[64, 64], vf=[64, 64])``), orthogonally
    initialised with gain sqrt(2); a policy head to ``D`` Bernoulli logits (gain 0.01, bias
    ``logit(init_hit_rate)`` as in :class:`DrumPolicy`) and a value head (gain 1). The same
    interface as :class:`DrumPolicy` where the trainer and the rollouts use it:
    :meth:`forward_obs`, :meth:`act`, :meth:`evaluate_actions`, :meth:`distribution`.
    Initialisation draws from the global torch generator. With ``config.velocity_levels > 0``
    the head is a categorical per drum, as :class:`DrumPolicy`'s.

    Args:
        config: sizes.
        velocity_bins: as for :class:`DrumPolicy`.
    """

    kind = "mlp"
    """The policy kind (:data:`POLICY_KINDS`) that :func:`save_policy` records."""

    def __init__(self, config: MLPPolicyConfig,
                 velocity_bins: VelocityBins | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not isinstance(config, MLPPolicyConfig):
            raise TypeError(f"config must be an MLPPolicyConfig, got {type(config).__name__}")
        self.config = config
        sizes = (config.obs_size, *config.hidden_sizes)
        self.policy_net = _mlp(sizes)
        self.value_net = _mlp(sizes)
        self.policy_head = common.policy_head(sizes[-1], config)
        self.value_head = common.orthogonal(nn.Linear(sizes[-1], 1), 1.0)
        self._register_velocity_bins(velocity_bins)

    def forward(self, x: Tensor) -> common.PolicyOutput:
        """Outputs from flattened observations.

        Args:
            x: float tensor (B, obs_size): ``concat(context, position, target)``.

        Returns:
            PolicyOutput: logits float32 (B, D) (with velocity classes (B, D, K + 1)), value
            float32 (B,).
        """
        logits = common.shape_logits(self.policy_head(self.policy_net(x)).float(), self.config)
        value = self.value_head(self.value_net(x)).squeeze(-1).float()
        return common.PolicyOutput(logits, value)

    def forward_obs(self, obs: Mapping[str, Tensor]) -> common.PolicyOutput:
        """Outputs for the step to write, from a batch of DrumCompose observations.

        Args:
            obs: ``{"context": (B, C * D), "position": (B, position_size), "target": (B, K)}``
                float tensors (:func:`obs_to_tensors`), with ``C = config.context_steps``.

        Returns:
            PolicyOutput: logits float32 (B, D), value float32 (B,).

        Raises:
            ValueError: an observation of another size (the message names the key).
        """
        c = self.config
        sizes = {"context": c.context_steps * c.num_drums, "position": c.position_size,
                 "target": c.target_size}  # fmt: skip
        for key, size in sizes.items():
            t = obs[key]
            if t.dim() != 2 or t.shape[-1] != size:
                raise ValueError(
                    f"obs[{key!r}] must have shape (B, {size}) for this MLP policy (context_steps="
                    f"{c.context_steps}, num_drums={c.num_drums}), got {tuple(t.shape)}"
                )
        x = torch.cat([obs["context"], obs["position"], obs["target"]], -1).float()
        return self(x)

    def act(
        self,
        obs: Mapping[str, Tensor],
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Choose the next step's hits (see :meth:`DrumPolicy.act`).

        Returns:
            actions (B, D) (float32 0 / 1, or int64 classes), log_prob float32 (B,), value
            float32 (B,).
        """
        return common.act_from_output(self.forward_obs(obs), self.action_dist, deterministic,
                                      generator)  # fmt: skip

    def evaluate_actions(
        self, obs: Mapping[str, Tensor], actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probability, entropy and value (see :meth:`DrumPolicy.evaluate_actions`).

        Returns:
            log_prob float32 (B,), entropy float32 (B,), value float32 (B,).
        """
        return common.evaluate_from_output(self.forward_obs(obs), self.action_dist, actions)
