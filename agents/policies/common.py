"""What both policies share: the output tuple, the heads, the velocity bins, the observations.

:class:`~agents.policies.transformer.DrumPolicy` and :class:`~agents.policies.mlp.MLPPolicy` are
built from these pieces, so their heads, initialisation and velocity bins are the same code:

* :class:`PolicyOutput`: logits and values, float32;
* :func:`policy_head`, :func:`shape_logits`, :func:`orthogonal`: the policy head (orthogonal,
  gain 0.01, its bias at ``init_hit_rate``) and its logits' shape;
* :class:`VelocityBinsMixin`: a policy's velocity bins as buffers, ``action_dist`` and
  ``distribution``;
* :func:`act_from_output`, :func:`evaluate_from_output`: ``act`` and ``evaluate_actions`` of
  either policy;
* :func:`config_from_env`, :func:`check_positive_int`: a config sized for a task, its checks;
* :func:`obs_to_tensors`: a DrumCompose observation as tensors.

## Velocity bins

A policy with ``K > 0`` keeps the :class:`~dataset.velocity.VelocityBins` it plays at as two
buffers (``velocity_bin_edges`` float64, ``velocity_bin_levels`` float32) in its state dict, so
:func:`~agents.policies.policy.save_policy`, a PPO checkpoint's model state and
``load_state_dict`` all carry them; ``policy.velocity_bins`` (and
:func:`~agents.policies.policy.policy_velocity_bins` for a file) gives them back to build
evaluation envs with the same bins (``velocity_bins=bins.to_dict()``). A policy built without
bins holds the uniform bins (``VelocityBins.uniform(K)``) until its state is loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from agents.policies.distributions import ActionDist, independent_pattern_logits
from dataset.velocity import VelocityBins

if TYPE_CHECKING:
    from drum_env.core import DrumComposeConfig

__all__ = [
    "PolicyOutput",
    "VelocityBinsMixin",
    "policy_head",
    "shape_logits",
    "orthogonal",
    "act_from_output",
    "evaluate_from_output",
    "config_from_env",
    "check_positive_int",
    "obs_to_tensors",
]


def config_from_env(cls: type, cfg: DrumComposeConfig, overrides: Mapping[str, Any]) -> Any:
    """A policy config of ``cls`` sized for a DrumCompose task, with ``overrides`` on top.

    Raises:
        TypeError: for an override that is not a field of ``cls`` (the message lists them).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown {cls.__name__} field(s) {unknown}; fields: {sorted(names)}")
    base = {
        "num_drums": cfg.num_drums,
        "context_steps": cfg.context_steps,
        "steps_per_bar": cfg.steps_per_bar,
        "bars_per_phrase": cfg.bars_per_phrase,
        "target_size": cfg.target_size,
        "velocity_levels": int(getattr(cfg, "velocity_levels", 0)),
    }
    return cls(**{**base, **overrides})


def check_positive_int(value: Any, name: str) -> None:
    """A ValueError naming ``name`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class PolicyOutput(NamedTuple):
    """Outputs of :class:`DrumPolicy`, float32."""

    logits: Tensor
    """Logits of each drum of the predicted step: Bernoulli logits (B, L, D), or (B, D) from
    :meth:`DrumPolicy.forward_obs`; with ``velocity_levels = K > 0`` categorical logits with a
    trailing class axis, (B, L, D, K + 1) or (B, D, K + 1)."""
    value: Tensor
    """State value: (B, L), or (B,) from :meth:`DrumPolicy.forward_obs`."""


class _DistributionOf:
    """``policy.distribution(logits)``: the policy's own head's distribution.

    Called on the class (``DrumPolicy.distribution(logits)``), the binary head's, as always.
    """

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return ActionDist(0).distribution
        return obj.action_dist.distribution


def policy_head(width: int, config: Any) -> nn.Linear:
    """The policy head: ``D`` Bernoulli logits, or ``D * (K + 1)`` categorical logits.

    Orthogonal weights of gain 0.01; the bias starts every drum at ``init_hit_rate``
    (``logit(rate)``; with ``K`` classes, ``log(1 - rate)`` for no hit and ``log(rate / K)`` for
    each velocity class, so the softmax gives exactly those probabilities). A joint step head
    (``joint_step``) has ``2 ** D`` logits whose bias is the independent draws' log-probabilities
    (:func:`~agents.policies.distributions.independent_pattern_logits`).
    """
    k, drums, rate = config.velocity_levels, config.num_drums, float(config.init_hit_rate)
    if getattr(config, "joint_step", False):  # one logit per step pattern (2 ** D)
        head = orthogonal(nn.Linear(width, 2**drums), 0.01)
        with torch.no_grad():
            head.bias.copy_(independent_pattern_logits(drums, rate))
        return head
    head = orthogonal(nn.Linear(width, drums * (k + 1) if k else drums), 0.01)
    with torch.no_grad():
        if not k:
            nn.init.constant_(head.bias, float(np.log(rate / (1.0 - rate))))
        else:
            per_drum = torch.tensor([np.log(1.0 - rate)] + [np.log(rate / k)] * k)
            head.bias.copy_(per_drum.repeat(drums))
    return head


def shape_logits(logits: Tensor, config: Any) -> Tensor:
    """The head's output as logits: (..., D) unchanged, or (..., D * (K + 1)) -> (..., D, K + 1)."""
    k = config.velocity_levels
    return logits.unflatten(-1, (config.num_drums, k + 1)) if k else logits


class VelocityBinsMixin:
    """The velocity bins a policy plays at, kept as buffers (see the module docstring)."""

    config: Any
    velocity_bin_edges: Tensor
    velocity_bin_levels: Tensor

    def _register_velocity_bins(self, bins: VelocityBins | Mapping[str, Any] | None) -> None:
        k = self.config.velocity_levels
        if not k:
            if bins is not None:
                raise ValueError(
                    "velocity_bins were given but velocity_levels=0 (a binary policy has no bins)"
                )
            return
        bins = VelocityBins.uniform(k) if bins is None else VelocityBins.from_dict(bins)
        if bins.num_levels != k:
            raise ValueError(
                f"velocity_bins have {bins.num_levels} levels but velocity_levels={k}"
            )
        self.register_buffer("velocity_bin_edges", torch.from_numpy(bins.edges.copy()))
        self.register_buffer("velocity_bin_levels", torch.from_numpy(bins.levels.copy()))

    @property
    def action_dist(self) -> ActionDist:
        """The :class:`ActionDist` of this policy's head."""
        joint = self.config.num_drums if getattr(self.config, "joint_step", False) else 0
        return ActionDist(self.config.velocity_levels, joint)

    @property
    def velocity_bins(self) -> VelocityBins | None:
        """The :class:`~dataset.velocity.VelocityBins` the policy plays at.

        ``None`` when ``velocity_levels = 0``; build evaluation envs with ``velocity_bins=``
        these.
        """
        if not self.config.velocity_levels:
            return None
        return VelocityBins(
            self.velocity_bin_edges.detach().cpu().numpy().astype(np.float64),
            self.velocity_bin_levels.detach().cpu().numpy().astype(np.float32),
        )

    distribution = _DistributionOf()
    """``distribution(logits)``: the head's torch distribution, independent over the drums
    (``log_prob`` and ``entropy`` sum over them): a Bernoulli per drum for logits (..., D), or a
    categorical per drum for (..., D, K + 1) when ``velocity_levels > 0``; cast to float32
    (autocast may give bf16 / fp16). On the class (``DrumPolicy.distribution``) the binary
    head's."""


def orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    """``layer`` with orthogonal weights of ``gain`` and zero bias (CleanRL's ``layer_init``)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def act_from_output(out: PolicyOutput, dist: ActionDist, deterministic: bool,
                    generator: torch.Generator | None
                    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``act`` of either policy kind from its outputs (see ``DrumPolicy.act``)."""
    logits = out.logits.float()
    actions = dist.mode(logits) if deterministic else dist.sample(logits, generator)
    return actions, dist.log_prob(logits, actions), out.value


def evaluate_from_output(out: PolicyOutput, dist: ActionDist, actions: Tensor
                         ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``evaluate_actions`` of either policy kind (see ``DrumPolicy.evaluate_actions``)."""
    logits = out.logits.float()
    return dist.log_prob(logits, actions), dist.entropy(logits), out.value


def obs_to_tensors(obs: Mapping[str, np.ndarray], device: torch.device | str) -> dict[str, Tensor]:
    """Observations (numpy) -> float32 tensors on ``device``.

    Args:
        obs: a batched observation (``context`` (B, C * D), ...) as a vector env returns it, or a
            single env's observation (``context`` (C * D,), ...): a batch axis of 1 is added.
        device: target device.

    Returns:
        dict of float32 tensors with a leading batch axis, one per key of ``obs``.
    """
    single = np.ndim(obs["context"]) == 1
    out = {}
    for key, value in obs.items():
        t = torch.as_tensor(np.asarray(value), dtype=torch.float32, device=device)
        out[key] = t.unsqueeze(0) if single else t
    return out
