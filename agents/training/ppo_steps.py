"""The two halves of a PPO iteration: collect a rollout into :class:`Storage`, then update.

:func:`agents.training.ppo.train` calls them once per iteration, in CleanRL's order: the rollout
(:func:`collect_rollout`), the trainer's reward and GAE, then the minibatch epochs
(:func:`ppo_update`). They are public so that a benchmark can call or time them as the trainer
does (``train(..., timer=...)`` times them in place, see :data:`agents.training.ppo.PHASES`).

* :class:`Storage`: one rollout of one rank, every array ``(num_steps, num_envs, ...)``.
* :func:`collect_rollout`: ``num_steps`` steps of every sub-env into a :class:`Storage`.
* :func:`ppo_update`: the clipped-surrogate minibatch epochs; the mean losses.
* :class:`ActorCritic`: the policy's logits and the critic's values as one module (for DDP).

## Throughput

The loop does per step one batched forward pass of the policy over all sub-envs (in
``inference_mode``, the observation written once into its storage row), one ``env.step`` of the
native vector env and no Python loop over sub-envs; the policy's Transformer computes the last
token only (see :mod:`agents.policies.policy`). Log-probabilities and entropies come from the
Bernoulli kernels directly (no distribution objects), a minibatch is a slice of the rollout
shuffled once per epoch, the logged losses are read in one transfer per minibatch, and Adam
takes one multi-tensor step (``foreach``). None of this changes a number: a seeded run ends
bitwise as before these changes. ``benchmarks/train_profile.py`` times each phase: the PPO
update (4 epochs of forward and backward passes) takes 60-90 % of the time at every
``num_envs``, and the throughput grows with ``num_envs`` as long as larger minibatches make the
update cheaper per sample: up to about 256 envs with the Transformer (minibatches of 2,048
windows; larger ones leave the cache and the throughput falls) and 1,024 or more with the MLP
(``benchmarks/results/train_throughput.json``).

The update bounds the throughput: with the env, the rollout and everything else free, the
Transformer's update alone allows 1.3-1.8x the env steps/s of the whole of SB3's PPO at equal
settings, the MLP's 2.8-6.6x from 16 to 256 envs (``benchmarks/speed_limits.py``). ``compile``
runs the update's model through ``torch.compile``: 1.07-1.3x faster for the Transformer after a
compile of a few seconds, which runs of more than 170-660k env steps repay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from agents.policies.critic import Critic
from agents.policies.policy import DrumPolicy, MLPPolicy
from agents.training.distributed import Dist, all_reduce
from agents.training.trainer_reward import reward_terms
from drum_env.rewards import TERMS

if TYPE_CHECKING:
    from agents.training.ppo import PPOConfig

__all__ = ["Storage", "host_rows", "upload_obs", "collect_rollout", "masked_mean", "ppo_update",
           "ActorCritic"]


class Storage(NamedTuple):
    """One rollout of one rank; every array has the leading shape ``(num_steps, num_envs)``."""

    obs: dict[str, Tensor]
    """Observations the actions were chosen from, per key ``(steps, envs, *space.shape)``."""
    actions: Tensor
    """``(steps, envs, drums)``: float32 0 or 1, or int64 classes with velocity levels."""
    logprobs: Tensor
    """float32 ``(steps, envs)``: log-probability of the action under the rollout policy."""
    values: Tensor
    """float32 ``(steps, envs)``: the value estimate of the observation."""
    rewards: Tensor
    """float32 ``(steps, envs)``: the trainer's reward (set once the rollout is complete)."""
    terminations: Tensor
    """bool ``(steps, envs)``: the transition ended its episode."""
    valid: Tensor
    """bool ``(steps, envs)``: false for autoreset steps (their action had no effect)."""
    raw: np.ndarray
    """float64 ``(steps, envs, terms)``: raw reward terms."""
    norm: np.ndarray
    """float64 ``(steps, envs, terms)``: normalised reward terms (``reward_norm`` applied)."""
    closed: np.ndarray
    """bool ``(steps, envs, terms)``: whether each term closed at the step."""
    host: dict[str, Tensor] | None = None
    """Host rows ``(envs, *space.shape)`` per key that a step's observation is staged in before
    its copy to the device (pinned on CUDA, so the copy is asynchronous); None on the CPU,
    where the observation is written into its storage row directly."""

    @classmethod
    def allocate(cls, obs_space: Any, steps: int, n: int, drums: int, device: torch.device,
                 action_dtype: torch.dtype = torch.float32, staged: bool = False
                 ) -> Storage:  # fmt: skip
        """Zeroed storage for ``steps`` steps of ``n`` sub-envs (actions of ``action_dtype``).

        Off the CPU, and on it with ``staged``, it has :attr:`host` (:func:`host_rows`).
        """
        def z(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        terms = len(TERMS)
        return cls(
            {k: z(steps, n, *s.shape) for k, s in obs_space.spaces.items()},
            z(steps, n, drums, dtype=action_dtype),
            z(steps, n), z(steps, n), z(steps, n), z(steps, n, dtype=torch.bool),
            z(steps, n, dtype=torch.bool), np.zeros((steps, n, terms)),
            np.zeros((steps, n, terms)), np.zeros((steps, n, terms), dtype=bool),
            host_rows(obs_space, n, device) if staged or device.type != "cpu" else None,
        )  # fmt: skip


def host_rows(obs_space: Any, n: int, device: torch.device) -> dict[str, Tensor]:
    """float32 CPU tensors ``(n, *space.shape)`` per key of ``obs_space``: a step's observation.

    Page-locked (pinned) when ``device`` is CUDA, so that a ``copy_(..., non_blocking=True)``
    from them to the device runs asynchronously.
    """
    rows = {k: torch.zeros((n, *s.shape)) for k, s in obs_space.spaces.items()}
    return {k: t.pin_memory() for k, t in rows.items()} if device.type == "cuda" else rows


def upload_obs(rows: dict[str, Tensor], next_obs: dict[str, np.ndarray],
               host: dict[str, Tensor] | None) -> None:  # fmt: skip
    """Write a step's observation (numpy, per key) into its storage ``rows``.

    Without ``host`` (CPU storage) each array is cast into its row in place; with it, it is
    cast into its host row, then copied to the device row with ``non_blocking=True``. The host
    rows may be rewritten at the next step: the step's action, read back to the host before
    then, waits for the copy (the same CUDA stream). Either way the float32 values are numpy's
    cast of the observation, bit for bit.
    """
    for k, row in rows.items():
        if host is None:
            row.numpy()[...] = next_obs[k]
        else:
            host[k].numpy()[...] = next_obs[k]
            row.copy_(host[k], non_blocking=True)


def collect_rollout(env: Any, policy: nn.Module, critic: nn.Module | None,
                    next_obs: dict[str, np.ndarray], next_reset: np.ndarray, buf: Storage,
                    act_gen: torch.Generator, autocast: Callable[[], Any],
                    takes: list[tuple[int, np.ndarray, np.ndarray]] | None = None,
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Play ``num_steps`` steps of every sub-env into ``buf``; returns the next obs and resets.

    With a list ``takes``, each step where episodes end appends ``(step, sub-envs, canvases)``:
    the finished canvases (k, seq_len, drums), read before the next step's autoreset (the
    learned reward's input, :func:`~agents.training.discriminator.add_discriminator_reward`).

    The values come from ``critic`` (:class:`~agents.policies.critic.Critic`), or from the policy's
    own value head when it is ``None``.

    Per step, with no Python loop over sub-envs: the observation is written once into its
    storage row (which the policy then reads), one batched forward pass in ``inference_mode``,
    the draw (Bernoulli, or categorical with velocity levels) and its log-probability, one
    ``env.step``, the reward terms. The
    terminations and reset flags are kept in numpy and copied to ``buf`` once at the end.
    """
    steps, n = buf.actions.shape[:2]
    terminations = np.zeros((steps, n), dtype=bool)
    resets = np.zeros((steps, n), dtype=bool)
    dist = policy.action_dist
    binary = not dist.velocity_levels
    policy.eval()
    if critic is not None:
        critic.eval()
    for step in range(steps):
        obs = {k: v[step] for k, v in buf.obs.items()}
        upload_obs(obs, next_obs, buf.host)
        resets[step] = next_reset
        with torch.inference_mode():
            with autocast():
                out = policy.forward_obs(obs)
            logits = out.logits.float()
            action = dist.sample(logits, act_gen)
            buf.logprobs[step] = dist.log_prob(logits, action)
            value = out.value if critic is None else critic(obs)
            buf.values[step] = value.float()
            buf.actions[step] = action
            env_action = (action.to(torch.int8) if binary else action).cpu().numpy()
        next_obs, _, term, _, info = env.step(env_action)
        buf.norm[step] = reward_terms(info, "norm", n)
        buf.raw[step] = reward_terms(info, "raw", n)
        buf.closed[step] = reward_terms(info, "closed", n)
        terminations[step] = term
        if takes is not None and term.any():
            envs = np.flatnonzero(term)
            takes.append((step, envs, env.unwrapped.canvases[envs]))
        next_reset = term  # NEXT_STEP autoreset: the next step resets these sub-envs
    buf.terminations.copy_(torch.from_numpy(terminations))
    buf.valid.copy_(torch.from_numpy(~resets))
    return next_obs, next_reset


def masked_mean(x: Tensor, mask: Tensor, count: Tensor) -> Tensor:
    """``sum(x * mask) / count``: the mean over the valid rows (``count = max(sum(mask), 1)``)."""
    return (x * mask).sum() / count


def ppo_update(model: nn.Module, policy: nn.Module, reference: nn.Module | None,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, buf: Storage,
               advantages: Tensor, returns: Tensor, config: PPOConfig,
               shuffle_gen: torch.Generator, d: Dist, autocast: Callable[[], Any]
               ) -> dict[str, float]:  # fmt: skip
    """The minibatch epochs of one iteration; the mean losses (``losses/*`` metrics).

    The losses are CleanRL's, every mean taken over the minibatch's valid rows; the
    log-probabilities, entropies and KL come from the policy's
    :class:`~agents.policies.policy.ActionDist` (the distribution's own kernels, without building
    distribution objects: Bernoulli, or categorical with velocity levels), and the logged values
    are read in one transfer per minibatch.
    """
    device = buf.actions.device
    dist = policy.action_dist
    steps, n = buf.actions.shape[:2]
    b_obs = {k: v.reshape(steps * n, *v.shape[2:]) for k, v in buf.obs.items()}
    batch = {"actions": buf.actions.reshape(steps * n, -1), "logprobs": buf.logprobs.reshape(-1),
             "values": buf.values.reshape(-1), "advantages": advantages.reshape(-1),
             "returns": returns.reshape(-1), "valid": buf.valid.reshape(-1).float(),
             **{f"obs/{k}": v for k, v in b_obs.items()}}  # fmt: skip
    if reference is not None:
        with torch.no_grad(), autocast():
            batch["ref_logits"] = reference.forward_obs(b_obs).logits.float()

    names = ("policy", "value", "entropy", "kl_pretrained", "approx_kl", "clipfrac")
    sums = dict.fromkeys((*names, "grad_norm"), 0.0)
    params = [p for group in optimizer.param_groups for p in group["params"]]  # policy, critic
    updates = finite_updates = 0
    mb = config.minibatch_size
    for _epoch in range(config.update_epochs):
        order = torch.randperm(config.batch_size, generator=shuffle_gen).to(device)
        # one gather per array and epoch; a minibatch is then a slice (the same rows as
        # indexing with its part of the permutation, without a gather per minibatch)
        shuffled = {k: v[order] for k, v in batch.items()}
        epoch_kl = torch.zeros((), device=device)
        for start in range(0, config.batch_size, mb):
            b = {k: v[start : start + mb] for k, v in shuffled.items()}
            mask = b["valid"]
            count = mask.sum().clamp(min=1.0)  # every mean below is over the valid rows
            with autocast():
                logits, new_value = model({k: b[f"obs/{k}"] for k in b_obs})
            logits, new_value = logits.float(), new_value.float()
            logratio = dist.log_prob(logits, b["actions"]) - b["logprobs"]
            ratio = logratio.exp()
            with torch.no_grad():
                approx_kl = masked_mean((ratio - 1.0) - logratio, mask, count)
                clipped = ((ratio - 1.0).abs() > config.clip_coef).float()
                clipfrac = masked_mean(clipped, mask, count)
            adv = b["advantages"]
            if config.norm_adv:
                mean = masked_mean(adv, mask, count)
                std = masked_mean(torch.square(adv - mean), mask, count).sqrt()
                adv = (adv - mean) / (std + 1e-8)
            pg_loss = masked_mean(torch.maximum(
                -adv * ratio,
                -adv * torch.clamp(ratio, 1.0 - config.clip_coef, 1.0 + config.clip_coef),
            ), mask, count)  # fmt: skip
            if config.clip_vloss:
                v_clipped = b["values"] + torch.clamp(
                    new_value - b["values"], -config.clip_coef, config.clip_coef
                )
                v_loss = 0.5 * masked_mean(torch.maximum(
                    torch.square(new_value - b["returns"]),
                    torch.square(v_clipped - b["returns"]),
                ), mask, count)  # fmt: skip
            else:
                v_loss = 0.5 * masked_mean(torch.square(new_value - b["returns"]), mask, count)
            entropy_loss = masked_mean(dist.entropy(logits), mask, count)
            kl_pre = torch.zeros((), device=device)
            if "ref_logits" in b:
                kl_pre = masked_mean(dist.kl(logits, b["ref_logits"]), mask, count)
            loss = (pg_loss - config.ent_coef * entropy_loss + config.vf_coef * v_loss
                    + config.kl_coef * kl_pre)  # fmt: skip

            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()

            epoch_kl += approx_kl
            updates += 1
            logged = torch.stack([pg_loss.detach(), v_loss.detach(), entropy_loss.detach(),
                                  kl_pre, approx_kl, clipfrac, grad_norm.detach().float()])
            *values, norm = logged.tolist()  # one read of the logged values
            for key, value in zip(names, values):
                sums[key] += value
            if math.isfinite(norm):  # fp16 overflow: GradScaler skipped the step
                sums["grad_norm"] += norm
                finite_updates += 1
        if config.target_kl is not None:
            mean_kl = all_reduce(epoch_kl / config.num_minibatches, d) / d.world_size
            if float(mean_kl) > config.target_kl:
                break
    # CleanRL's tag names where CleanRL logs the same quantity (dashboards overlay)
    tag = {"policy": "policy_loss", "value": "value_loss"}
    out = {f"losses/{tag.get(k, k)}": v / max(updates, 1) for k, v in sums.items()}
    # pre-clip norm over the updates GradScaler did not skip (NaN if it skipped all)
    out["losses/grad_norm"] = sums["grad_norm"] / finite_updates if finite_updates else math.nan
    out["losses/skipped_updates"] = float(updates - finite_updates)
    with torch.no_grad():
        vmask = batch["valid"] > 0
        y, yhat = batch["returns"][vmask], batch["values"][vmask]
        var_y = float(y.var()) if y.numel() > 1 else math.nan
        out["losses/explained_variance"] = (
            math.nan if not var_y > 0 else 1.0 - float((y - yhat).var()) / var_y
        )
    return out


class ActorCritic(nn.Module):
    """The policy's logits and the critic's values as one ``forward``, so DDP can wrap both.

    Without a critic the values are the policy's own value head's.
    """

    def __init__(self, policy: DrumPolicy | MLPPolicy, critic: Critic | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.critic = critic

    def forward(self, obs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The logits and the values of a batch of observations (tensors per key)."""
        out = self.policy.forward_obs(obs)
        value = out.value if self.critic is None else self.critic(obs)
        return out.logits, value
