"""PPO for DrumCompose: the custom policy on the native vector env, with AMP, DDP and exact resume.

Read top to bottom like CleanRL's ``ppo.py``: the config, the pure pieces the tests check
against oracles, then the loop (:func:`train`: rollout, reward, GAE, flatten, minibatch epochs
with the clipped surrogate, the clipped value loss, the entropy bonus and an optional KL to the
pretrained policy). Distributed set-up lives in :mod:`agents.training.distributed`, checkpoints and
their exact resume in :mod:`agents.training.checkpoint`, the run folder in
:mod:`agents.training.runs`.

* :class:`PPOConfig`: every hyperparameter (the task settings from
  :class:`~agents.task.TaskConfig`), frozen and validated; :func:`update_config`.
* :func:`train`: ``train(config, callback) -> TrainResult``.
* pure pieces: :func:`compute_gae`, :func:`bernoulli_kl`, :func:`reward_terms`,
  :func:`weighted_reward`, :func:`batch_normalize`, :func:`epoch_normalize`,
  :class:`RewardWeights`.

## Rollout and autoreset

``DrumComposeVectorEnv`` uses Gymnasium's ``NEXT_STEP`` autoreset: the step after a sub-env
terminates resets it, returns reward 0 and ignores the action. Storage row ``t`` holds the
observation the action was chosen from, the action, its log-probability and value, the reward,
``terminations[t]`` (the transition ended its episode) and ``valid[t]`` (false for a reset step).
GAE cuts the bootstrap with ``1 - terminations[t]`` (so nothing flows across episodes, and the
reset step right after a termination never feeds the terminal step), and every loss is a mean
over the valid rows only (the reset step's action had no effect, its "transition" joins the
terminal observation to the next episode's first one). The env never truncates, so there is no
truncation bootstrap.

## Reward

The trainer's reward is the env's reward terms, normalised as ``reward_norm`` says and weighted
by the shaping's weights or by learned ones: :mod:`agents.training.trainer_reward` defines both.

## Policy

``policy_kind`` picks the model: the causal Transformer :class:`~agents.policies.policy.DrumPolicy`
(default) or :class:`~agents.policies.policy.MLPPolicy`, SB3's PPO policy (two 64-64 tanh MLPs over
the flattened observation) for comparisons with Stable-Baselines3 at equal size. Both give Bernoulli
logits and a value from ``forward_obs``; the loop is the same for both. A ``pretrained`` policy
(``drum-env pretrain``) is a Transformer: an MLP run refuses one.

With ``velocity_levels = K > 0`` (the expressive env, ``MultiDiscrete`` actions) the policy's
head is a categorical per drum over ``K + 1`` classes: the rollout stores int64 classes, and
log-probabilities, entropies and the KL to the pretrained policy are the categorical ones summed
over the drums (``policy.action_dist``, :class:`~agents.policies.policy.ActionDist`); the loop is
otherwise the same. A ``pretrained`` policy must have the run's ``velocity_levels`` (refused
otherwise, naming both), and the envs are then built with the pretrained policy's velocity bins,
so its classes keep the levels it learned; without one they are the env's own bins (from the
data), which the trained policy records.

## Throughput

The loop does per step one batched forward pass of the policy over all sub-envs (in
``inference_mode``, the observation written once into its storage row), one ``env.step`` of the
native vector env and no Python loop over sub-envs; the policy's Transformer computes the last
token only (see :mod:`agents.policies.policy`). Log-probabilities and entropies come from the
Bernoulli kernels directly (no distribution objects), a minibatch is a slice of the rollout shuffled
once per epoch, the logged losses are read in one transfer per minibatch, and Adam takes one
multi-tensor step (``foreach``). None of this changes a number: a seeded run ends bitwise as
before these changes. ``benchmarks/train_profile.py`` times each phase: the PPO update (4
epochs of forward and backward passes) takes 60-90 % of the time at every ``num_envs``, and the
throughput grows with ``num_envs`` as long as larger minibatches make the update cheaper per
sample: up to about 256 envs with the Transformer (minibatches of 2,048 windows; larger ones
leave the cache and the throughput falls) and 1,024 or more with the MLP
(``benchmarks/results/train_throughput.json``).

The update bounds the throughput: with the env, the rollout and everything else free, the
Transformer's update alone allows 1.3-1.8x the env steps/s of the whole of SB3's PPO at equal
settings, the MLP's 2.8-6.6x from 16 to 256 envs (``benchmarks/speed_limits.py``). ``compile``
runs the update's model through ``torch.compile``: 1.07-1.3x faster for the Transformer after a
compile of a few seconds, which runs of more than 170-660k env steps repay.

## Mixed precision, clipping, schedule

Forward passes run under ``torch.autocast`` (bfloat16 on CPU, float16 on CUDA) when ``amp``;
the policy returns float32 logits and values, and log-probabilities, ratios and losses are
computed in float32. On CUDA with float16 a ``GradScaler`` scales the loss; elsewhere the scaler
is disabled (its state is still checkpointed). Gradients are clipped to ``max_grad_norm``; the
pre-clip norm is logged. The learning rate follows a ``LambdaLR``: with ``anneal_lr`` it decays
linearly, ``lr_i = learning_rate * (1 - i / num_iterations)`` at iteration ``i + 1``, so the
last iteration runs at ``learning_rate / num_iterations``, never at 0. A resumed run that
raises ``total_timesteps`` continues the same line to the new ``num_iterations``.

## DDP

Run under ``torchrun --nproc_per_node=N`` (see :mod:`agents.training.distributed`): the model is
built from the same seed on every rank and wrapped in ``DistributedDataParallel``, every rank steps
its own ``num_envs`` sub-envs seeded ``seed + rank * num_envs + i``, and gradients are averaged
by DDP. ``total_timesteps`` and ``global_step`` count the env steps of all ranks, so an
iteration is ``world_size * batch_size`` steps. The reward normaliser is per rank, the
approximate KL for ``target_kl`` is averaged over ranks before the early-stop decision (so all
ranks stop together), and logged metrics are rank 0's. Only rank 0 writes checkpoints, the
policy and TensorBoard; per-rank state (env, normaliser, RNGs) is gathered into its checkpoint.

## Checkpoints and exact resume

``out/checkpoint.pt`` is written atomically every ``checkpoint_every`` iterations, at the end,
and when the callback stops the run (:func:`agents.training.checkpoint.save_training_state`): model,
optimiser, scheduler, scaler, reward weights and their optimiser, step counters, the config,
the history, and per rank the vector env's own ``state_dict()``, the running episode sums and
every RNG state. ``resume=True`` restores all of it, so a run interrupted after iteration ``k``
and resumed ends with bitwise the same weights as an uninterrupted one (same device, threads
and library versions). A resume must use the checkpoint's config: only the fields of
:data:`RESUMABLE_FIELDS` may change (e.g. ``total_timesteps`` to extend a finished run); any
other difference is refused, naming the fields.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from agents.policies.critic import CRITICS, Critic
from agents.policies.policy import (
    POLICY_KINDS,
    DrumPolicy,
    MLPPolicy,
    MLPPolicyConfig,
    PolicyConfig,
    bernoulli_kl,
    load_policy,
    obs_to_tensors,
    policy_velocity_bins,
    save_policy,
)
from agents.task import (
    TaskConfig,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_path,
    replace_config,
)
from agents.training.checkpoint import (
    arrays_to_tensors,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    save_training_state,
    tensors_to_arrays,
)
from agents.training.distributed import (
    Dist,
    all_reduce,
    barrier,
    check_device,
    gather_to_main,
    resolve_device,
    setup_distributed,
    teardown_distributed,
)
from agents.training.runs import RunLock, prepare_run_dir
from agents.training.trainer_reward import (
    REWARD_NORMS,
    Episodes,
    RewardWeights,
    assign_rewards,
    batch_normalize,
    epoch_normalize,
    fit_reward_weights,
    reward_terms,
    update_normalizer,
    weighted_reward,
)
from dataset.velocity import VelocityBins
from drum_env.rewards import TERMS, VELOCITY_TERMS, RunningNormalizer

__all__ = [
    "PPOConfig",
    "TrainResult",
    "train",
    "update_config",
    "compute_gae",
    "bernoulli_kl",
    "pretrained_velocity_bins",
    "reward_terms",
    "weighted_reward",
    "batch_normalize",
    "epoch_normalize",
    "update_normalizer",
    "REWARD_NORMS",
    "RESUMABLE_FIELDS",
    "ADDED_FIELDS",
    "cxx_compiler",
    "RewardWeights",
]

RESUMABLE_FIELDS: tuple[str, ...] = (
    "total_timesteps", "resume", "force", "progress", "tensorboard", "checkpoint_every", "out",
)  # fmt: skip
"""The :class:`PPOConfig` fields a resumed run may change; any other must equal the
checkpoint's. ``total_timesteps`` may only grow (extend a run); ``out`` may differ when the run
folder was moved."""

ADDED_FIELDS: dict[str, Any] = {"compile": False, "critic": "policy", "init_hit_rate": 0.1}
""":class:`PPOConfig` fields added after checkpoints of the current format were first written
(0.3.0), with the value that trains as those checkpoints' runs did: a checkpoint without the
field resumes as if it held this value."""


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PPOConfig(TaskConfig):
    """One PPO run on ``DrumCompose-v0``. Frozen; validated on construction.

    The task settings (``data``, ``seq_len``, ..., ``shaping``, ``weights``) come from
    :class:`~agents.task.TaskConfig`. Change fields with :func:`update_config`. Derived sizes
    (``batch_size``, ``minibatch_size``, ``num_iterations``) are properties. Errors name the
    field and its allowed range. Names follow CleanRL's ``ppo.py`` where it has one.
    """

    # --- reward
    learn_weights: bool = False
    """Learn the dense terms' weights (see the module docstring); the shaping's weights start
    them."""
    weights_lr: float = 1e-2
    """Adam learning rate of the learned reward weights (one step per iteration)."""
    reward_norm: str = "running"
    """How each term is normalised before weighting: ``running`` (the env's running normaliser:
    the env's own reward), ``batch`` (this rollout's mean and std of each term) or ``epoch`` (a
    trainer normaliser frozen during an iteration, updated at its end); ``batch`` and ``epoch``
    need a normalised shaping."""

    # --- rollout
    num_envs: int = 16
    """Sub-envs of the vector env (per rank under DDP)."""
    num_steps: int = 32
    """Steps per sub-env per rollout: a rollout is ``batch_size = num_envs * num_steps``."""
    total_timesteps: int = 50_000
    """Env steps to train for, over all sub-envs and all ranks (rounded down to whole
    iterations)."""

    # --- PPO
    learning_rate: float = 3e-4
    """Adam learning rate of the policy."""
    anneal_lr: bool = False
    """Decay the learning rate linearly towards 0 over the iterations (CleanRL's default). Off
    by default, as in SB3: on the Groove split, 262k env steps from scratch, the constant rate
    with an unclipped value loss scored 0.60 against 0.52 with both on (README, "Results")."""
    gamma: float = 0.99
    """Discount factor, in [0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda, in [0, 1]."""
    num_minibatches: int = 4
    """Minibatches per epoch; must divide ``batch_size``."""
    update_epochs: int = 4
    """Passes over the rollout per iteration."""
    norm_adv: bool = True
    """Normalise advantages per minibatch (over its valid rows)."""
    clip_coef: float = 0.2
    """Surrogate clipping: ratios outside ``[1 - clip_coef, 1 + clip_coef]`` are clipped."""
    clip_vloss: bool = False
    """Clip the value loss around the rollout's values (CleanRL's clipped value loss). Off by
    default, as in SB3 (Andrychowicz et al. 2021 found it does not help): returns here span
    several units, and a value that may move only ``clip_coef`` per update learns slowly."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient, >= 0."""
    vf_coef: float = 0.5
    """Value loss coefficient, >= 0."""
    max_grad_norm: float = 0.5
    """Gradient clipping max norm, > 0."""
    target_kl: float | None = None
    """Stop the epochs of an iteration once the approximate KL exceeds this; ``None``: never."""
    kl_coef: float = 0.0
    """Weight of ``KL(pi || pi_pretrained)`` in the loss (RL Tuner style), >= 0; needs
    ``pretrained``."""
    pretrained: str | None = None
    """A policy file (``drum-env pretrain``) that initialises the weights and is the frozen
    reference of the KL penalty; its shape must match this config's."""

    # --- model
    policy_kind: str = "transformer"
    """The policy: ``transformer`` (:class:`~agents.policies.policy.DrumPolicy`, the causal
    Transformer over the context; ``d_model``, ``n_layers``, ``n_heads`` and ``dropout`` size it) or
    ``mlp`` (:class:`~agents.policies.policy.MLPPolicy`: SB3's PPO policy, two 64-64 tanh MLPs over
    the flattened observation; cannot start from a ``pretrained`` Transformer)."""
    d_model: int = 64
    """Transformer width; a multiple of ``n_heads``. The defaults (64 wide, 2 layers, 4 heads)
    are :class:`~agents.training.pretrain.PretrainConfig`'s, so a default pretrained policy fits."""
    n_layers: int = 2
    """Transformer layers."""
    n_heads: int = 4
    """Attention heads."""
    dropout: float = 0.0
    """Dropout in the Transformer, in [0, 1) (rollouts run in eval mode, without it)."""
    init_hit_rate: float = 0.1
    """Hit probability of every drum of a fresh policy, in (0, 1) (the policy head's bias;
    :attr:`~agents.policies.policy.PolicyConfig.init_hit_rate`); a ``pretrained`` policy's weights
    replace it."""
    critic: str = "mlp"
    """The value function: ``mlp`` (:class:`~agents.policies.critic.Critic`, a 64-64 tanh MLP of its
    own over the whole observation, position and song progress included, as SB3 and CleanRL
    build it; saved in the checkpoint, not in ``policy.pt``) or ``policy`` (the policy's own
    value head: for the Transformer, an MLP on its detached features, which cannot see where
    the episode stands; the only critic before 0.4)."""

    # --- system
    amp: bool = False
    """Mixed precision: bfloat16 autocast on CPU, float16 with a GradScaler on CUDA. Off by
    default: at this model size the casts cost more than they save."""
    compile: bool = False
    """Run the PPO update's forward and backward passes through ``torch.compile`` (inductor;
    on CPU it needs a C++ compiler). The Transformer's update runs 1.07-1.3x faster on CPU
    after a compile of 2-3 s, which a run repays after 170-660k env steps; the MLP's barely
    gains (``benchmarks/results/speed_limits.md``). The rollout and the saved policy are
    unchanged; the compiled kernels round differently, so a run repeats (and resumes) bitwise
    only with the same setting."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; under DDP on CUDA each
    rank uses ``cuda:LOCAL_RANK``."""
    threads: int | None = None
    """torch intra-op threads during the iterations (restored after); ``None``: leave torch's
    setting (one per core by default). On CPU, 1 is the safe choice for the default model: more
    threads gain at most about 1.3x on large minibatches when every core is idle, and lose
    5-30x while another process keeps a core busy (``benchmarks/results/throughput.md``).
    Seeded runs repeat bitwise only with the same number of threads."""
    seed: int = 0
    """Seeds the model, the env resets (``seed + rank * num_envs``) and the generators."""
    out: str = "runs/ppo"
    """Run folder: ``config.json``, ``checkpoint.pt``, ``policy.pt`` and ``tb/``."""
    checkpoint_every: int = 10
    """Iterations between checkpoints (one is also written at the end)."""
    resume: bool = False
    """Continue the run in ``out`` from its ``checkpoint.pt``."""
    force: bool = False
    """Replace a previous run in ``out`` (its files are deleted) instead of refusing."""
    progress: bool = True
    """Show a progress bar (env steps)."""
    tensorboard: bool = True
    """Write TensorBoard scalars under ``out/tb``."""

    def __post_init__(self) -> None:
        self._check_task()
        check_path(self, "pretrained")
        check_path(self, "out", optional=False)
        for name in ("num_envs", "num_steps", "total_timesteps", "num_minibatches",
                     "update_epochs", "d_model", "n_layers", "n_heads", "checkpoint_every"):
            check_int(name, getattr(self, name), 1)  # fmt: skip
        check_int("seed", self.seed, 0)
        check_int("threads", self.threads, 1, optional=True)
        for name in ("learn_weights", "anneal_lr", "norm_adv", "clip_vloss", "amp", "compile",
                     "resume", "force", "progress", "tensorboard"):  # fmt: skip
            check_bool(name, getattr(self, name))
        check_number("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_number("weights_lr", self.weights_lr, 0.0, low_open=True)
        check_number("gamma", self.gamma, 0.0, 1.0)
        check_number("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_number("clip_coef", self.clip_coef, 0.0, low_open=True)
        check_number("ent_coef", self.ent_coef, 0.0)
        check_number("vf_coef", self.vf_coef, 0.0)
        check_number("max_grad_norm", self.max_grad_norm, 0.0, low_open=True)
        check_number("kl_coef", self.kl_coef, 0.0)
        check_number("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_number("init_hit_rate", self.init_hit_rate, 0.0, 1.0, True, True)
        check_number("target_kl", self.target_kl, 0.0, low_open=True, optional=True)
        check_device(self.device)
        check_choice("reward_norm", self.reward_norm, REWARD_NORMS)
        check_choice("policy_kind", self.policy_kind, POLICY_KINDS)
        check_choice("critic", self.critic, CRITICS)
        if self.policy_kind != "transformer" and self.pretrained is not None:
            raise ValueError(
                f"pretrained={self.pretrained!r} is a Transformer policy (drum-env pretrain "
                f"trains policy_kind='transformer' only), so it cannot start a "
                f"policy_kind={self.policy_kind!r} run; drop pretrained (and kl_coef) or use "
                "policy_kind='transformer'"
            )
        if self.kl_coef > 0 and self.pretrained is None:
            raise ValueError(
                f"kl_coef={self.kl_coef} needs a pretrained policy: set pretrained to a policy "
                "file, or kl_coef to 0"
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be a multiple of n_heads={self.n_heads}, got {self.d_model}"
            )
        if self.reward_norm != "running" and not self.shaping_object.normalize:
            raise ValueError(
                f"reward_norm={self.reward_norm!r} normalises the terms, but shaping "
                f"{self.shaping!r} is unnormalised; use reward_norm='running' (raw terms) or a "
                "normalised shaping"
            )
        if self.learn_weights and not self.learnable_terms:
            raise ValueError(
                f"learn_weights=True but shaping {self.shaping!r} weights no dense term (only "
                "non-song terms with a non-zero weight are learned); pick another shaping or "
                "give weights"
            )
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide batch_size = num_envs * "
                f"num_steps = {self.batch_size}"
            )
        if self.num_iterations < 1:
            raise ValueError(
                f"total_timesteps must be at least batch_size = num_envs * num_steps = "
                f"{self.batch_size} (one iteration), got {self.total_timesteps}"
            )

    # ------------------------------------------------------------------------- derived

    @property
    def batch_size(self) -> int:
        """Env steps per rollout of one process: ``num_envs * num_steps``."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """Rows per minibatch: ``batch_size // num_minibatches``."""
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        """Iterations of a single-process run: ``total_timesteps // batch_size``."""
        return self.iterations(1)

    def iterations(self, world_size: int = 1) -> int:
        """Iterations with ``world_size`` DDP ranks: ``total_timesteps // (batch_size * world)``."""
        return self.total_timesteps // (self.batch_size * world_size)

    @property
    def learnable_terms(self) -> tuple[str, ...]:
        """Terms whose weight ``learn_weights`` learns: non-song terms with non-zero weight.

        Only terms that close in this task: the velocity terms need ``velocity_levels > 0``.
        """
        w = self.shaping_object.weights
        never = () if self.velocity_levels else VELOCITY_TERMS  # they never close
        return tuple(k for k in TERMS if k != "song" and w[k] != 0.0 and k not in never)


def update_config(cfg: PPOConfig, **changes: Any) -> PPOConfig:
    """A copy of ``cfg`` with ``changes`` applied and validated (``dataclasses.replace``).

    Raises:
        ValueError: an unknown field (the message lists the valid ones), or an invalid value.
    """
    return replace_config(cfg, **changes)


class TrainResult(NamedTuple):
    """What :func:`train` returns."""

    policy_path: Path
    """``out/policy.pt`` (:func:`agents.policies.policy.save_policy`; written by rank 0)."""
    checkpoint_path: Path
    """``out/checkpoint.pt``."""
    global_step: int
    """Env steps done, all ranks together."""
    iterations: int
    """Iterations done (including those before a resume)."""
    mean_episode_return: float
    """Mean return (trainer reward) of the episodes finished in the last iterations (the last
    tenth of the run, at least one iteration, going back until some episode finished); NaN if
    none finished."""
    mean_song_raw: float
    """Mean raw ``song`` term of the same episodes, in [-1, 0] (0: the song features match)."""
    history: list[dict[str, float]]
    """The metrics of every iteration (what the callback received)."""
    policy: DrumPolicy | MLPPolicy
    """The trained policy (this rank's copy, on the training device)."""


# ----------------------------------------------------------------------------- pure pieces


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    terminations: Tensor,
    valid: Tensor,
    next_value: Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates for a NEXT_STEP-autoreset rollout.

    ``delta_t = r_t + gamma * V_{t+1} * (1 - term_t) - V_t`` and
    ``A_t = delta_t + gamma * lambda * (1 - term_t) * A_{t+1}``, with ``V_T = next_value``.
    A termination cuts both the bootstrap and the recursion, so the reset step that follows it
    (and the next episode) never reaches the terminal step. Invalid rows (reset steps) get
    advantage 0 and return = value.

    Args:
        rewards: float tensor (T, N).
        values: float tensor (T, N): ``V(obs_t)``.
        terminations: bool tensor (T, N): transition ``t`` ended its episode.
        valid: bool tensor (T, N): false for reset steps (action ignored, reward 0).
        next_value: float tensor (N,): ``V`` of the observation after the last step.
        gamma: discount.
        gae_lambda: GAE lambda.

    Returns:
        advantages, returns: float tensors (T, N); ``returns = advantages + values``.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    nonterminal = 1.0 - terminations.to(rewards.dtype)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * following * nonterminal[t] - values[t]
        last = delta + gamma * gae_lambda * nonterminal[t] * last
        advantages[t] = last
    advantages = advantages * valid.to(rewards.dtype)
    return advantages, advantages + values


# bernoulli_kl (re-exported above) lives with the policy's other distribution kernels in
# agents.policies.policy, beside categorical_kl; ActionDist.kl picks one by velocity_levels.


def pretrained_velocity_bins(config: PPOConfig) -> VelocityBins | None:
    """The velocity bins of ``config.pretrained`` (``None`` without one, or for a binary one).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is not a policy, or its ``velocity_levels`` is not the run's (the
            message names both).
    """
    if config.pretrained is None:
        return None
    bins = policy_velocity_bins(config.pretrained)
    levels = 0 if bins is None else bins.num_levels
    if levels != config.velocity_levels:
        raise ValueError(
            f"pretrained policy {config.pretrained!r} plays velocity_levels={levels}, but this "
            f"run has velocity_levels={config.velocity_levels}: pretrain with velocity_levels="
            f"{config.velocity_levels}, or train with velocity_levels={levels}"
        )
    return bins


# ----------------------------------------------------------------------------- the loop


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

    @classmethod
    def allocate(cls, obs_space: Any, steps: int, n: int, drums: int, device: torch.device,
                 action_dtype: torch.dtype = torch.float32) -> Storage:  # fmt: skip
        """Zeroed storage for ``steps`` steps of ``n`` sub-envs (actions of ``action_dtype``)."""
        def z(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        terms = len(TERMS)
        return cls(
            {k: z(steps, n, *s.shape) for k, s in obs_space.spaces.items()},
            z(steps, n, drums, dtype=action_dtype),
            z(steps, n), z(steps, n), z(steps, n), z(steps, n, dtype=torch.bool),
            z(steps, n, dtype=torch.bool), np.zeros((steps, n, terms)),
            np.zeros((steps, n, terms)), np.zeros((steps, n, terms), dtype=bool),
        )  # fmt: skip


def _rollout(env: Any, policy: nn.Module, critic: nn.Module | None,
             next_obs: dict[str, np.ndarray], next_reset: np.ndarray, buf: Storage,
             act_gen: torch.Generator, autocast: Callable[[], Any]
             ) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Play ``num_steps`` steps of every sub-env into ``buf``; returns the next obs and resets.

    The values come from ``critic`` (:class:`~agents.policies.critic.Critic`), or from the policy's
    own value head when it is ``None``.

    Per step, with no Python loop over sub-envs: the observation is written once into its
    storage row (which the policy then reads), one batched forward pass in ``inference_mode``,
    the draw (Bernoulli, or categorical with velocity levels) and its log-probability, one
    ``env.step``, the reward terms. The
    terminations and reset flags are kept in numpy and copied to ``buf`` once at the end.
    """
    device = buf.actions.device
    steps, n = buf.actions.shape[:2]
    on_cpu = device.type == "cpu"
    terminations = np.zeros((steps, n), dtype=bool)
    resets = np.zeros((steps, n), dtype=bool)
    dist = policy.action_dist
    binary = not dist.velocity_levels
    policy.eval()
    if critic is not None:
        critic.eval()
    for step in range(steps):
        obs = {k: v[step] for k, v in buf.obs.items()}
        for k, row in obs.items():  # the float32 cast torch.as_tensor(..., float32) would make
            if on_cpu:
                row.numpy()[...] = next_obs[k]
            else:
                row.copy_(torch.as_tensor(np.asarray(next_obs[k], dtype=np.float32)))
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
        next_reset = term  # NEXT_STEP autoreset: the next step resets these sub-envs
    buf.terminations.copy_(torch.from_numpy(terminations))
    buf.valid.copy_(torch.from_numpy(~resets))
    return next_obs, next_reset


def _masked_mean(x: Tensor, mask: Tensor, count: Tensor) -> Tensor:
    """``sum(x * mask) / count``: the mean over the valid rows (``count = max(sum(mask), 1)``)."""
    return (x * mask).sum() / count


def _ppo_update(model: nn.Module, policy: nn.Module, reference: nn.Module | None,
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
                approx_kl = _masked_mean((ratio - 1.0) - logratio, mask, count)
                clipped = ((ratio - 1.0).abs() > config.clip_coef).float()
                clipfrac = _masked_mean(clipped, mask, count)
            adv = b["advantages"]
            if config.norm_adv:
                mean = _masked_mean(adv, mask, count)
                std = _masked_mean(torch.square(adv - mean), mask, count).sqrt()
                adv = (adv - mean) / (std + 1e-8)
            pg_loss = _masked_mean(torch.maximum(
                -adv * ratio,
                -adv * torch.clamp(ratio, 1.0 - config.clip_coef, 1.0 + config.clip_coef),
            ), mask, count)  # fmt: skip
            if config.clip_vloss:
                v_clipped = b["values"] + torch.clamp(
                    new_value - b["values"], -config.clip_coef, config.clip_coef
                )
                v_loss = 0.5 * _masked_mean(torch.maximum(
                    torch.square(new_value - b["returns"]),
                    torch.square(v_clipped - b["returns"]),
                ), mask, count)  # fmt: skip
            else:
                v_loss = 0.5 * _masked_mean(torch.square(new_value - b["returns"]), mask, count)
            entropy_loss = _masked_mean(dist.entropy(logits), mask, count)
            kl_pre = torch.zeros((), device=device)
            if "ref_logits" in b:
                kl_pre = _masked_mean(dist.kl(logits, b["ref_logits"]), mask, count)
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


def _episode_metrics(finished: list[tuple[float, np.ndarray, np.ndarray]], weights: np.ndarray,
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


def _recent(history: list[dict[str, float]], key: str) -> float:
    """Episode-weighted mean of ``key`` over the last tenth of ``history`` (see TrainResult)."""
    if not history:
        return float("nan")
    window = max(1, len(history) // 10)
    total = count = 0.0
    for i, row in enumerate(reversed(history)):
        n = row.get("charts/episodes", 0.0)
        if n > 0:
            total += n * row[key]
            count += n
        if i + 1 >= window and count > 0:
            break
    return total / count if count else float("nan")


class _ActorCritic(nn.Module):
    """The policy's logits and the critic's values as one ``forward``, so DDP can wrap both.

    Without a critic the values are the policy's own value head's.
    """

    def __init__(self, policy: DrumPolicy | MLPPolicy, critic: Critic | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.critic = critic

    def forward(self, obs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        out = self.policy.forward_obs(obs)
        value = out.value if self.critic is None else self.critic(obs)
        return out.logits, value


def cxx_compiler() -> str | None:
    """The C++ compiler inductor builds with on CPU, when it is installed; else None.

    Inductor (``torch.compile``) takes ``$CXX`` when it is set, a missing one included, else
    ``g++`` (``clang++`` on macOS), with no other fallback; ``compile=True`` needs it on CPU.
    """
    import shutil
    import sys

    name = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")
    return name if shutil.which(name) else None


def _check_cxx(device: torch.device) -> None:
    """On CPU, a ValueError naming the compiler inductor would use when it is not installed.

    Inductor compiles at the first call (the first update): without its compiler a run would
    fail there, deep in torch, after its rollout; :func:`train` checks before any work.
    """
    if device.type != "cpu" or cxx_compiler() is not None:
        return
    cxx = os.environ.get("CXX")
    which = (f"$CXX={cxx!r}, which is not an installed program" if cxx
             else "g++, which is not on PATH")  # fmt: skip
    raise ValueError(
        f"compile=True: torch.compile on CPU builds with a C++ compiler, here {which}; install "
        "it, set CXX to an installed C++ compiler, or train without --compile"
    )


def _compiled(model: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(model)``, after :func:`_check_cxx`."""
    _check_cxx(device)
    return torch.compile(model)


def train(config: PPOConfig, callback: Callable[[dict[str, float]], bool | None] | None = None
          ) -> TrainResult:  # fmt: skip
    """Train the custom policy with PPO on ``DrumCompose-v0`` (see the module docstring).

    Seeds the global torch generator (model initialisation) from ``config.seed``. The run
    folder is claimed by :func:`agents.training.runs.prepare_run_dir` (refused if it holds another
    run, unless ``resume`` or ``force``).

    Args:
        config: the run.
        callback: called after every iteration with that iteration's metrics (the keys of
            :data:`TrainResult.history`: ``"charts/episodic_return"``,
            ``"losses/policy_loss"``, ...);
            returning ``False`` stops the run after writing a checkpoint (e.g. Optuna pruning).
            Under DDP it is called on rank 0 only.

    Returns:
        TrainResult.

    Raises:
        agents.training.runs.RunDirError: ``out`` holds another run, or there is nothing to resume.
        ValueError: a corrupt checkpoint, or one of another run (the differing fields are
            named); a pretrained policy of another shape; fewer steps than one iteration.
    """
    d = setup_distributed(config.device)
    try:
        if config.compile:  # before any work, and before out/ is claimed
            _check_cxx(resolve_device(config.device, d))
        with RunLock(config.out, enabled=d.main):  # the run owns out/ until it ends (rank 0)
            return _train(config, callback, d)
    finally:
        teardown_distributed(d)


def _train(config: PPOConfig, callback: Callable[[dict[str, float]], bool | None] | None,
           d: Dist) -> TrainResult:  # fmt: skip
    import gymnasium as gym

    import drum_env  # noqa: F401  (registers DrumCompose-v0)

    device = resolve_device(config.device, d)
    if device.type == "cuda":
        # Exact resume needs a repeatable run: deterministic cuBLAS workspaces and kernels
        # (index_add in embedding backward, ...). Process-wide, as torch only offers it so.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    num_iterations = config.iterations(d.world_size)
    if num_iterations < 1:
        raise ValueError(
            f"total_timesteps={config.total_timesteps} is less than one iteration of "
            f"{d.world_size} rank(s) x batch_size {config.batch_size}"
        )
    out = Path(config.out)
    ckpt_path, policy_path = out / "checkpoint.pt", out / "policy.pt"
    n, steps, step_size = config.num_envs, config.num_steps, config.batch_size * d.world_size

    # --- env: each rank its own sub-envs, seeded seed + rank * num_envs + i; with velocity
    # levels and a pretrained policy, its bins (its classes keep the levels it learned)
    bins = pretrained_velocity_bins(config)
    env = gym.make_vec("DrumCompose-v0", num_envs=n, vectorization_mode="vector_entry_point",
                       **config.env_kwargs(velocity_bins=bins))  # fmt: skip
    venv = env.unwrapped
    next_obs, _ = env.reset(seed=config.seed + d.rank * n)
    next_reset = np.zeros(n, dtype=bool)

    # --- model (the same initialisation on every rank), optimisers, schedule, scaler
    torch.manual_seed(config.seed)
    policy_cfg: PolicyConfig | MLPPolicyConfig
    if config.policy_kind == "mlp":
        policy_cfg = MLPPolicyConfig.from_env_config(venv.config,
                                                     init_hit_rate=config.init_hit_rate)
        policy: DrumPolicy | MLPPolicy = MLPPolicy(policy_cfg, venv.config.velocity_bins)
        policy = policy.to(device)
    else:
        policy_cfg = PolicyConfig.from_env_config(
            venv.config, d_model=config.d_model, n_layers=config.n_layers,
            n_heads=config.n_heads, dropout=config.dropout, init_hit_rate=config.init_hit_rate,
        )  # fmt: skip
        policy = DrumPolicy(policy_cfg, venv.config.velocity_bins).to(device)
    reference: DrumPolicy | None = None
    if config.pretrained is not None:
        reference = load_policy(config.pretrained, map_location=device, expected=policy_cfg)
        policy.load_state_dict(reference.state_dict())
        reference.eval().requires_grad_(False)
    critic: Critic | None = None
    if config.critic == "mlp":  # the trainer's own value network; the policy's head rests
        critic = Critic.for_space(venv.single_observation_space).to(device)
        for name, param in policy.named_parameters():
            if name.startswith("value_"):
                param.requires_grad_(False)
    model: nn.Module = _ActorCritic(policy, critic)
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    update_model = _compiled(model, device) if config.compile else model
    # foreach: one multi-tensor step instead of a Python loop over the parameters, bitwise the
    # same updates (Adam's maths in the same order); fused=True would be faster still but rounds
    # differently
    trainable = [p for p in policy.parameters() if p.requires_grad]
    if critic is not None:
        trainable += list(critic.parameters())
    optimizer = torch.optim.Adam(trainable, lr=config.learning_rate, eps=1e-5,
                                 foreach=True)  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: max(1.0 - i / num_iterations, 0.0) if config.anneal_lr else 1.0
    )
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=config.amp)

    shaping = config.shaping_object
    learned = config.learnable_terms if config.learn_weights else ()
    reward_weights = RewardWeights(shaping.weight_vector, learned).to(device)
    weights_optimizer = torch.optim.Adam(reward_weights.parameters(), lr=config.weights_lr)
    epoch_normalizer = RunningNormalizer(len(TERMS))  # reward_norm="epoch" (per rank)
    episodes = Episodes(n)

    # --- generators: per rank, derived from (seed, rank)
    seeds = np.random.SeedSequence([config.seed, d.rank]).generate_state(3)
    act_gen = torch.Generator(device=device).manual_seed(int(seeds[0]))
    shuffle_gen = torch.Generator().manual_seed(int(seeds[1]))
    torch.manual_seed(int(seeds[2]))  # dropout draws; differs by rank after the model init
    generators = {"action": act_gen, "shuffle": shuffle_gen}
    modules = {"model": policy, "optimizer": optimizer, "scheduler": scheduler,
               "scaler": scaler, "reward_weights": reward_weights,
               "weights_optimizer": weights_optimizer,
               **({"critic": critic} if critic is not None else {})}  # fmt: skip
    global_step, start_iteration, history = 0, 0, []
    state = None
    if config.resume and ckpt_path.is_file():  # check the resume before config.json changes
        state = load_training_state(
            ckpt_path, config=config.to_dict(), policy_config=dataclasses.asdict(policy_cfg),
            world_size=d.world_size, resumable=RESUMABLE_FIELDS, added=ADDED_FIELDS,
        )  # fmt: skip
    if d.main:  # the settings, the model and a resume are valid: claim the run folder
        prepare_run_dir(out, config.to_dict(), resume=config.resume, force=config.force)
    barrier(d)
    if state is not None:
        next_obs, next_reset = _restore(state, d.rank, modules, venv, episodes,
                                        epoch_normalizer, generators, ckpt_path)  # fmt: skip
        global_step, start_iteration = int(state["global_step"]), int(state["iteration"])
        history = list(state["history"])
        # the schedule of this run's total_timesteps (an extended run continues its own line)
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs,
                                       scheduler.lr_lambdas):  # fmt: skip
            group["lr"] = base * factor(scheduler.last_epoch)
        if start_iteration > num_iterations:
            raise ValueError(
                f"checkpoint {str(ckpt_path)!r} is at {global_step} env steps, past "
                f"total_timesteps={config.total_timesteps}: raise --total-timesteps to extend it"
            )

    def save_checkpoint(iteration: int) -> None:
        local = {
            "env": venv.state_dict(), "observation": dict(next_obs), "next_reset": next_reset,
            "episode": episodes.state_dict(), "reward_normalizer": epoch_normalizer.state_dict(),
        }  # fmt: skip
        local = arrays_to_tensors(local)
        local["rng"] = capture_rng_state((), generators)
        ranks = gather_to_main(local, d)
        if d.main:
            save_training_state(
                ckpt_path, config=config.to_dict(), policy_config=dataclasses.asdict(policy_cfg),
                world_size=d.world_size, iteration=iteration, global_step=global_step,
                modules=modules, history=history, ranks=ranks,
            )  # fmt: skip

    writer = None
    if d.main and config.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=global_step if config.resume else None)
        # the run's config as text, as CleanRL logs its hyperparameters
        rows = "\n".join(f"|{k}|{v}|" for k, v in config.to_dict().items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}", global_step)
    from tqdm.auto import tqdm

    bar = tqdm(total=num_iterations * step_size, initial=global_step, unit="step", desc="ppo",
               disable=not (config.progress and d.main), dynamic_ncols=True)  # fmt: skip
    buf = Storage.allocate(venv.single_observation_space, steps, n, venv.config.num_drums, device,
                           policy.action_dist.action_dtype)  # fmt: skip
    iteration = start_iteration
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        for iteration in range(start_iteration + 1, num_iterations + 1):
            t_start = time.perf_counter()
            # the shaping's float64 weights unless learned: then r_t is the env's reward exactly
            weights_np = (reward_weights().detach().double().cpu().numpy() if learned
                          else shaping.weight_vector)  # fmt: skip
            next_obs, next_reset = _rollout(env, policy, critic, next_obs, next_reset, buf,
                                            act_gen, autocast)  # fmt: skip
            global_step += step_size
            rewards, finished = assign_rewards(
                buf.raw, buf.norm, buf.closed, buf.terminations.cpu().numpy(), config.reward_norm,
                weights_np, epoch_normalizer, episodes,
            )  # fmt: skip
            buf.rewards.copy_(torch.as_tensor(rewards, dtype=torch.float32))
            model.train()
            weights_fit = (fit_reward_weights(reward_weights, weights_optimizer, finished, d,
                                               device) if learned else math.nan)  # fmt: skip
            with torch.no_grad(), autocast():
                last = obs_to_tensors(next_obs, device)
                value = policy.forward_obs(last).value if critic is None else critic(last)
                next_value = value.float()
            advantages, returns = compute_gae(buf.rewards, buf.values, buf.terminations,
                                              buf.valid, next_value, config.gamma,
                                              config.gae_lambda)  # fmt: skip
            losses = _ppo_update(update_model, policy, reference, optimizer, scaler, buf,
                                 advantages, returns, config, shuffle_gen, d,
                                 autocast)  # fmt: skip
            lr_now = optimizer.param_groups[0]["lr"]  # the rate this iteration used
            scheduler.step()

            metrics = {"iteration": float(iteration), "global_step": float(global_step),
                       **_episode_metrics(finished, weights_np,
                                          config.seq_len - config.prompt_steps), **losses,
                       "charts/learning_rate": float(lr_now),
                       "charts/SPS": step_size / (time.perf_counter() - t_start)}  # fmt: skip
            if learned:
                for name, w in zip(TERMS, reward_weights().detach().cpu().tolist()):
                    metrics[f"weights/{name}"] = float(w)
                metrics["losses/weights_fit"] = weights_fit
            history.append(metrics)
            if writer is not None:
                for key, value in metrics.items():
                    if key not in ("iteration", "global_step") and math.isfinite(value):
                        writer.add_scalar(key, value, global_step)
            bar.update(step_size)
            if d.main and finished:
                bar.set_postfix(ret=f"{metrics['charts/episodic_return']:.2f}",
                                song=f"{metrics['charts/episode_song_raw']:.3f}")  # fmt: skip

            stop = callback is not None and d.main and callback(dict(metrics)) is False
            if d.enabled:
                stop = bool(all_reduce(torch.tensor([float(stop)], device=device), d).item() > 0)
            if stop or iteration % config.checkpoint_every == 0 or iteration == num_iterations:
                save_checkpoint(iteration)
            if stop:
                break
    finally:
        torch.set_num_threads(threads)
        bar.close()
        if writer is not None:
            writer.close()
        env.close()

    if d.main:
        save_policy(policy_path, policy)
    barrier(d)
    return TrainResult(
        policy_path, ckpt_path, global_step, iteration,
        _recent(history, "charts/episodic_return"), _recent(history, "charts/episode_song_raw"),
        history, policy,
    )  # fmt: skip


def _restore(state: Mapping[str, Any], rank: int, modules: Mapping[str, Any], venv: Any,
             episodes: Episodes, epoch_normalizer: RunningNormalizer,
             generators: Mapping[str, torch.Generator], path: Path
             ) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Load a checkpoint's modules and this rank's env, sums and RNGs; the next obs and resets."""
    try:
        for name, obj in modules.items():
            obj.load_state_dict(state[name])
        local = state["ranks"][rank]
        plain = tensors_to_arrays({k: v for k, v in local.items() if k != "rng"})
        venv.load_state_dict(plain["env"])
        episodes.load_state_dict(plain["episode"])
        epoch_normalizer.load_state_dict(plain["reward_normalizer"])
        restore_rng_state(local["rng"], (), generators)
    except (KeyError, IndexError, TypeError, RuntimeError) as exc:
        raise ValueError(
            f"checkpoint {str(path)!r} is incomplete or does not fit this run "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return dict(plain["observation"]), np.asarray(plain["next_reset"], dtype=bool)
