"""PPO for DrumCompose: the custom policy on the native vector env, with AMP, DDP and exact resume.

Read top to bottom like CleanRL's ``ppo.py``: the config, the pure pieces the tests check
against oracles, then the loop (:func:`train`: set-up, then per iteration the rollout, reward,
GAE and the minibatch epochs with the clipped surrogate, the clipped value loss, the entropy
bonus and an optional KL to the pretrained policy). Beside it: the set-up helpers in
:mod:`agents.training.ppo_setup`, the rollout and the update in :mod:`agents.training.ppo_steps`,
distributed set-up in :mod:`agents.training.distributed`, checkpoints and their exact resume in
:mod:`agents.training.checkpoint`, the run folder in :mod:`agents.training.runs`.

* :class:`PPOConfig`: every hyperparameter (the task settings from
  :class:`~agents.task.TaskConfig`), frozen and validated; :func:`update_config`.
* :func:`train`: ``train(config, callback, timer=None) -> TrainResult``; a ``timer``
  (:data:`PhaseTimer`) sees every phase of :data:`PHASES`.
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

One batched forward pass per step, no Python loop over sub-envs, the Transformer's last token
only; the update bounds the speed (:mod:`agents.training.ppo_steps` says what was measured).

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
iteration is ``world_size * batch_size`` steps. The reward normalisers (the env's and
``"epoch"``'s) fold the finished episodes of every rank, so all ranks hold the same moments
(:func:`~agents.training.distributed.share_normalizer`); the approximate KL for
``target_kl`` is averaged over ranks before the early-stop decision (so all ranks stop
together), and logged metrics are rank 0's. Only rank 0 writes checkpoints, the
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

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor

from agents.policies.critic import CRITICS
from agents.policies.policy import (
    POLICY_KINDS,
    DrumPolicy,
    MLPPolicy,
    bernoulli_kl,
    obs_to_tensors,
    save_policy,
)
from agents.task import (
    RunConfig,
    TaskConfig,
    TrackConfig,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_path,
    replace_config,
)
from agents.training.checkpoint import (
    rank_state,
    restore_rank_state,
    save_training_state,
)
from agents.training.discriminator import add_discriminator_reward
from agents.training.distributed import (
    Dist,
    all_reduce,
    barrier,
    gather_to_main,
    resolve_device,
    setup_distributed,
    share_normalizer,
    teardown_distributed,
)
from agents.training.ppo_setup import (
    Agent,
    TrainerReward,
    check_cxx,
    checkpointed_modules,
    claim_run,
    count_iterations,
    cxx_compiler,
    make_agent,
    make_amp,
    make_env,
    make_generators,
    make_model,
    make_optimizer,
    make_reward,
    open_logs,
    pretrained_velocity_bins,
    repeatable_device,
)
from agents.training.ppo_steps import Storage, collect_rollout, ppo_update
from agents.training.run_logs import RunLogs
from agents.training.run_logs import recent_mean as _recent
from agents.training.runs import RunLock
from agents.training.trainer_reward import (
    REWARD_NORMS,
    RewardWeights,
    assign_rewards,
    batch_normalize,
    episode_metrics,
    epoch_normalize,
    fit_reward_weights,
    reward_terms,
    update_normalizer,
    weighted_reward,
)
from drum_env.rewards import TERMS, VELOCITY_TERMS

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
    "PHASES",
    "PhaseTimer",
    "save_checkpoint",
]

RESUMABLE_FIELDS: tuple[str, ...] = (
    "total_timesteps", "resume", "force", "progress", "tensorboard", "checkpoint_every", "out",
    "capture_every", "exp_name", "track", "wandb_project_name", "wandb_entity",
)  # fmt: skip
"""The :class:`PPOConfig` fields a resumed run may change; any other must equal the
checkpoint's. ``total_timesteps`` may only grow (extend a run); ``out`` may differ when the run
folder was moved."""

ADDED_FIELDS: dict[str, Any] = {"compile": False, "critic": "policy", "init_hit_rate": 0.1,
                                "disc_coef": 0.0, "disc_replay": 16, "disc_updates": 4,
                                "disc_kind": "mlp", "whole_canvas": False}
""":class:`PPOConfig` fields added after checkpoints of the current format were first written
(0.3.0), with the value that trains as those checkpoints' runs did: a checkpoint without the
field resumes as if it held this value."""


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PPOConfig(TrackConfig, RunConfig, TaskConfig):
    """One PPO run on ``DrumCompose-v0``. Frozen; validated on construction.

    The task settings (``data``, ``seq_len``, ..., ``shaping``, ``weights``) come from
    :class:`~agents.task.TaskConfig`, the run settings from :class:`~agents.task.RunConfig`,
    the experiment's name and tracking from :class:`~agents.task.TrackConfig`:
    ``out`` (by default a new ``runs/DrumCompose-v0__{exp_name}__{seed}__{unix_time}``) holds
    ``config.json``, ``checkpoint.pt``, ``policy.pt`` and ``tb/``; ``seed`` seeds
    the model, the env resets (``seed + rank * num_envs``) and the generators; under DDP on
    CUDA each rank uses ``cuda:LOCAL_RANK``; ``resume`` continues the run in ``out`` from its
    ``checkpoint.pt``; ``progress`` shows a bar of env steps. Change fields with
    :func:`update_config`. Derived sizes (``batch_size``, ``minibatch_size``,
    ``num_iterations``) are properties. Errors name the field and its allowed range. Names
    follow CleanRL's ``ppo.py`` where it has one.
    """

    # --- reward
    learn_weights: bool = False
    """Learn the dense terms' weights (see the module docstring); the shaping's weights start
    them."""
    weights_lr: float = 1e-2
    """Adam learning rate of the learned reward weights (one step per iteration)."""
    disc_coef: float = 0.0
    """Weight of a reward learned from data (:mod:`agents.training.discriminator`, GAIL-style):
    each finished episode earns ``disc_coef * clip(logit D(take), -5, 5)`` on its last step, where
    ``D`` tells the training data's continuations from the policy's by the held-out evaluation's
    features. 0 (default): off."""
    disc_kind: str = "mlp"
    """The reward from data that ``disc_coef`` weighs: ``mlp`` (a discriminator ``D``, as
    above) or ``energy`` (the energy distance's witness over the same features, nothing to
    train: :class:`~agents.training.discriminator.EnergyWitness`; each finished episode earns
    ``disc_coef * witness(take)``)."""
    disc_replay: int = 16
    """Iterations of composed takes the discriminator trains on (its replay; with ``energy``,
    the takes the witness compares a take with)."""
    disc_updates: int = 4
    """Adam steps of the discriminator per iteration."""
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
    compile: bool = False
    """Run the PPO update's forward and backward passes through ``torch.compile`` (inductor;
    on CPU it needs a C++ compiler). The Transformer's update runs 1.07-1.3x faster on CPU
    after a compile of 2-3 s, which a run repays after 170-660k env steps; the MLP's barely
    gains (``benchmarks/results/speed_limits.md``). The rollout and the saved policy are
    unchanged; the compiled kernels round differently, so a run repeats (and resumes) bitwise
    only with the same setting."""
    checkpoint_every: int = 10
    """Iterations between checkpoints (one is also written at the end)."""
    tensorboard: bool = True
    """Write TensorBoard logs under ``out/tb``: the scalars every iteration, a few takes as audio
    and piano rolls (``capture_every``), and at the end of the run its hyperparameters with its
    final numbers (the HParams tab; :mod:`agents.training.run_logs`)."""
    capture_every: int | None = None
    """Iterations between the takes logged to TensorBoard (and W&B): a few fixed primers of the
    training data, each continued by the policy, as audio and a piano roll beside the real
    continuation; also at the last iteration. ``None``: at every checkpoint
    (``checkpoint_every``); 0: none. Capturing draws no random number the run uses: a seeded run
    trains bitwise the same with it on or off. A capture takes about 0.5 s with the numpy kit,
    2-3 s with FluidSynth (it loads its soundfont for every clip): raise it for short
    iterations."""

    DEFAULT_EXP_NAME: ClassVar[str] = "ppo"

    def __post_init__(self) -> None:
        self._check_task()
        self._check_track()
        self._check_run()
        check_int("capture_every", self.capture_every, 0, optional=True)
        if self.track and not self.tensorboard:
            raise ValueError(
                "track=True syncs the TensorBoard logs to W&B: it needs tensorboard=True "
                "(drop --no-tensorboard)"
            )
        check_path(self, "pretrained")
        for name in ("num_envs", "num_steps", "total_timesteps", "num_minibatches",
                     "update_epochs", "d_model", "n_layers", "n_heads", "checkpoint_every"):
            check_int(name, getattr(self, name), 1)  # fmt: skip
        for name in ("learn_weights", "anneal_lr", "norm_adv", "clip_vloss", "compile",
                     "tensorboard"):  # fmt: skip
            check_bool(name, getattr(self, name))
        check_number("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_number("weights_lr", self.weights_lr, 0.0, low_open=True)
        check_number("disc_coef", self.disc_coef, 0.0)
        check_choice("disc_kind", self.disc_kind, ("mlp", "energy"))
        check_int("disc_replay", self.disc_replay, 1)
        check_int("disc_updates", self.disc_updates, 1)
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


# ----------------------------------------------------------------------------- timing hook

PHASES: tuple[str, ...] = (
    "rollout", "reward", "bootstrap value", "GAE", "update", "logging", "checkpoint",
)  # fmt: skip
"""The phases of an iteration that :func:`train`'s ``timer`` sees, in the order they run:
:func:`~agents.training.ppo_steps.collect_rollout`, the trainer's reward
(:func:`~agents.training.trainer_reward.assign_rewards`), the value of the observation after the
rollout, :func:`compute_gae`, :func:`~agents.training.ppo_steps.ppo_update`, the metrics and
their logs (with the takes captured for TensorBoard when due), and the checkpoint (and the
final ``policy.pt``) when one is written."""

PhaseTimer = Callable[[str], AbstractContextManager[Any]]
"""A timing hook: ``timer(phase)`` returns a context manager that :func:`train` enters around
every run of each phase of :data:`PHASES` (``benchmarks/train_profile.py`` and
``benchmarks/speed_limits.py`` time the trainer through it). It only observes: a run with a
timer computes bitwise what a run without one does."""


def _untimed(phase: str) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- the loop


def train(config: PPOConfig, callback: Callable[[dict[str, float]], bool | None] | None = None,
          *, timer: PhaseTimer | None = None) -> TrainResult:  # fmt: skip
    """Train the custom policy with PPO on ``DrumCompose-v0`` (see the module docstring).

    Seeds the global torch generator (model initialisation) from ``config.seed``. The run
    folder is claimed by :func:`agents.training.runs.prepare_run_dir` (refused if it holds
    another run, unless ``resume`` or ``force``).

    Args:
        config: the run.
        callback: called after every iteration with that iteration's metrics (the keys of
            :data:`TrainResult.history`: ``"charts/episodic_return"``,
            ``"losses/policy_loss"``, ...);
            returning ``False`` stops the run after writing a checkpoint (e.g. Optuna pruning).
            Under DDP it is called on rank 0 only.
        timer: a :data:`PhaseTimer`, entered around each phase of every iteration
            (:data:`PHASES`); None times nothing.

    Returns:
        TrainResult.

    Raises:
        agents.training.runs.RunDirError: ``out`` holds another run, or there is nothing to
            resume.
        ValueError: a corrupt checkpoint, or one of another run (the differing fields are
            named); a pretrained policy of another shape; fewer steps than one iteration.
    """
    d = setup_distributed(config.device)
    try:
        if config.compile:  # before any work, and before out/ is claimed
            check_cxx(resolve_device(config.device, d))
        with RunLock(config.out, enabled=d.main):  # the run owns out/ until it ends (rank 0)
            return _train(config, callback, d, timer or _untimed)
    finally:
        teardown_distributed(d)


def _train(config: PPOConfig, callback: Callable[[dict[str, float]], bool | None] | None,
           d: Dist, timer: PhaseTimer) -> TrainResult:  # fmt: skip
    device = repeatable_device(resolve_device(config.device, d))
    num_iterations = count_iterations(config, d)
    ckpt_path, policy_path = Path(config.out) / "checkpoint.pt", Path(config.out) / "policy.pt"
    n, steps, step_size = config.num_envs, config.num_steps, config.batch_size * d.world_size

    # --- env: each rank its own sub-envs, seeded seed + rank * num_envs + i
    env = make_env(config)
    venv = env.unwrapped
    next_obs, _ = env.reset(seed=config.seed + d.rank * n)
    next_reset = np.zeros(n, dtype=bool)

    # --- agent (the same initialisation on every rank), optimiser, schedule, reward, generators
    agent = make_agent(config, venv, device)
    policy, critic = agent.policy, agent.critic
    model, update_model = make_model(agent, d, device, config.compile)
    optimizer, scheduler = make_optimizer(config, agent, num_iterations)
    scaler, autocast = make_amp(config, device)
    reward = make_reward(config, device, venv)
    for normalizer in (venv.normalizer, reward.normalizer):  # every rank scales rewards alike
        share_normalizer(normalizer, d)
    generators = make_generators(config, d.rank, device)
    modules = checkpointed_modules(agent, optimizer, scheduler, scaler, reward)

    # --- resume (exactly where the checkpoint stopped), or start
    global_step, start_iteration, history = 0, 0, []
    state = claim_run(config, agent, d, ckpt_path, RESUMABLE_FIELDS, ADDED_FIELDS)
    if state is not None:
        next_obs, next_reset = restore_rank_state(state, d.rank, modules, venv, reward.episodes,
                                                  reward.normalizer, generators, ckpt_path,
                                                  reward.discriminator)  # fmt: skip
        global_step, start_iteration = int(state["global_step"]), int(state["iteration"])
        history = list(state["history"])
        _extend_schedule(optimizer, scheduler)
        if start_iteration > num_iterations:
            raise _past_the_end(ckpt_path, global_step, config)

    logs = open_logs(config, d, global_step, num_iterations)
    buf = Storage.allocate(venv.single_observation_space, steps, n, venv.config.num_drums, device,
                           policy.action_dist.action_dtype)  # fmt: skip
    iteration, threads = start_iteration, _set_threads(config.threads)
    try:
        for iteration in range(start_iteration + 1, num_iterations + 1):
            t_start = time.perf_counter()
            weights_np = reward.weight_vector()
            with timer("rollout"):
                takes = [] if reward.discriminator is not None else None  # for the learned reward
                next_obs, next_reset = collect_rollout(env, policy, critic, next_obs, next_reset,
                                                       buf, generators["action"], autocast, takes)
            global_step += step_size
            with timer("reward"):
                rewards, finished = assign_rewards(
                    buf.raw, buf.norm, buf.closed, buf.terminations.cpu().numpy(),
                    config.reward_norm, weights_np, reward.normalizer, reward.episodes,
                )  # fmt: skip
                disc_metrics = _discriminate(reward, takes, rewards, config, generators, d)
            buf.rewards.copy_(torch.as_tensor(rewards, dtype=torch.float32))
            model.train()
            weights_fit = _fit_weights(reward, finished, d, device)
            with timer("bootstrap value"):
                next_value = _bootstrap_value(agent, next_obs, device, autocast)
            with timer("GAE"):
                advantages, returns = compute_gae(buf.rewards, buf.values, buf.terminations,
                                                  buf.valid, next_value, config.gamma,
                                                  config.gae_lambda)  # fmt: skip
            with timer("update"):
                losses = ppo_update(update_model, policy, agent.reference, optimizer, scaler, buf,
                                    advantages, returns, config, generators["shuffle"], d,
                                    autocast)  # fmt: skip
            lr_now = optimizer.param_groups[0]["lr"]  # the rate this iteration used
            scheduler.step()
            with timer("logging"):
                metrics = {"iteration": float(iteration), "global_step": float(global_step),
                           **episode_metrics(finished, weights_np,
                                             config.seq_len - config.prompt_steps), **losses,
                           "charts/learning_rate": float(lr_now),
                           "charts/SPS": step_size / (time.perf_counter() - t_start),
                           **_weight_metrics(reward, weights_fit), **disc_metrics}  # fmt: skip
                history.append(metrics)
                logs.log(history, global_step, policy)  # scalars; takes and HParams when due
            stop = _stop(callback, metrics, d, device)
            if stop or iteration % config.checkpoint_every == 0 or iteration == num_iterations:
                with timer("checkpoint"):  # every rank's part, written by rank 0
                    local = rank_state(venv, next_obs, next_reset, reward.episodes,
                                       reward.normalizer, generators, reward.discriminator)
                    save_checkpoint(ckpt_path, config, agent, d, iteration, global_step, modules,
                                    history, gather_to_main(local, d))  # fmt: skip
            if stop:
                break
    finally:
        _close(threads, logs, env)

    if d.main:
        with timer("checkpoint"):
            save_policy(policy_path, policy)
    barrier(d)
    return TrainResult(
        policy_path, ckpt_path, global_step, iteration,
        _recent(history, "charts/episodic_return"), _recent(history, "charts/episode_song_raw"),
        history, policy,
    )  # fmt: skip


# ----------------------------------------------------------------------------- loop helpers


def _past_the_end(ckpt_path: Path, global_step: int, config: PPOConfig) -> ValueError:
    """The error of a resume whose checkpoint is already past ``total_timesteps``."""
    return ValueError(
        f"checkpoint {str(ckpt_path)!r} is at {global_step} env steps, past "
        f"total_timesteps={config.total_timesteps}: raise --total-timesteps to extend it"
    )


def _fit_weights(reward: TrainerReward, finished: list[Any], d: Dist, device: torch.device
                 ) -> float:  # fmt: skip
    """One fit of the learned reward weights on the finished episodes; NaN when none learn."""
    if not reward.learned:
        return math.nan
    return fit_reward_weights(reward.weights, reward.weights_optimizer, finished, d, device)


def _discriminate(reward: TrainerReward, takes: list[Any] | None, rewards: np.ndarray,
                  config: PPOConfig, generators: Mapping[str, torch.Generator], d: Dist
                  ) -> dict[str, float]:  # fmt: skip
    """The learned reward (``disc_coef > 0``) added to ``rewards``, ``D`` trained; its metrics.

    ``D`` learns from the rollout's takes, its minibatches drawn with the shuffling generator.
    """
    if reward.discriminator is None or takes is None:
        return {}
    reduce = (lambda g: all_reduce(g, d) / d.world_size) if d.enabled else None
    return add_discriminator_reward(reward.discriminator, takes, rewards, config.prompt_steps,
                                    generators["shuffle"], reduce)  # fmt: skip


def _stop(callback: Callable[[dict[str, float]], bool | None] | None,
          metrics: Mapping[str, float], d: Dist, device: torch.device) -> bool:  # fmt: skip
    """Whether the callback (rank 0's) stopped the run; under DDP every rank learns it."""
    stop = callback is not None and d.main and callback(dict(metrics)) is False
    if d.enabled:
        stop = bool(all_reduce(torch.tensor([float(stop)], device=device), d).item() > 0)
    return stop


def _weight_metrics(reward: TrainerReward, weights_fit: float) -> dict[str, float]:
    """``weights/<term>`` and ``losses/weights_fit`` when the weights are learned; else none."""
    if not reward.learned:
        return {}
    out = {f"weights/{name}": float(w)
           for name, w in zip(TERMS, reward.weights().detach().cpu().tolist())}  # fmt: skip
    out["losses/weights_fit"] = weights_fit
    return out


def _set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (unless None); the count before, for :func:`_close`."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    return before


def _close(threads: int, logs: RunLogs, env: Any) -> None:
    """Restore torch's threads; close the logs (bar, TensorBoard, W&B) and the env."""
    torch.set_num_threads(threads)
    logs.close()
    env.close()


def _extend_schedule(optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """After a resume, the learning rate on this run's schedule (an extended run continues).

    The schedule is the resumed run's ``total_timesteps``; the scheduler's step is the
    checkpoint's.
    """
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs,
                                   scheduler.lr_lambdas):  # fmt: skip
        group["lr"] = base * factor(scheduler.last_epoch)


def save_checkpoint(path: Path, config: PPOConfig, agent: Agent, d: Dist, iteration: int,
                    global_step: int, modules: Mapping[str, Any], history: list[dict[str, float]],
                    ranks: list[Any] | None) -> None:  # fmt: skip
    """Rank 0 writes ``out/checkpoint.pt`` (:func:`agents.training.checkpoint.save_training_state`).

    ``ranks`` is every rank's :func:`~agents.training.checkpoint.rank_state`, gathered to rank
    0 (None on the other ranks, which write nothing).
    """
    if d.main:
        save_training_state(
            path, config=config.to_dict(), policy_config=dataclasses.asdict(agent.config),
            world_size=d.world_size, iteration=iteration, global_step=global_step,
            modules=modules, history=history, ranks=ranks,
        )  # fmt: skip


def _bootstrap_value(agent: Agent, next_obs: Mapping[str, np.ndarray], device: torch.device,
                     autocast: Callable[[], Any]) -> Tensor:  # fmt: skip
    """float32 (num_envs,): the value of the observation after the rollout (GAE's ``V_T``)."""
    with torch.no_grad(), autocast():
        last = obs_to_tensors(next_obs, device)
        value = (agent.policy.forward_obs(last).value if agent.critic is None
                 else agent.critic(last))  # fmt: skip
        return value.float()
