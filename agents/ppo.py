"""PPO for DrumCompose: the custom policy on the native vector env, with AMP, DDP and exact resume.

The update is CleanRL's ``ppo.py`` read top to bottom (rollout, GAE, flatten, minibatch epochs,
clipped surrogate, clipped value loss, entropy bonus), inside typed functions:

* :class:`PPOConfig`: every hyperparameter, frozen and validated; :func:`update_config`.
* :func:`train`: ``train(config, callback) -> TrainResult``.
* pure pieces the tests check against oracles: :func:`compute_gae`, :func:`bernoulli_kl`,
  :func:`reward_terms`, :func:`weighted_reward`, :class:`RewardWeights`.
* :func:`get_env_state` / :func:`set_env_state`: the vector env's complete state for exact resume.

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

## Reward and learned weights

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

The batch and epoch statistics are per rank under DDP (like the env's normaliser). Both need a
normalised shaping (not ``*-raw``), and with ``learn_weights`` the fit uses the trainer's
normalised terms (``S_{e,k}`` and ``y_e``).

## Mixed precision, clipping, schedule

Forward passes run under ``torch.autocast`` (bfloat16 on CPU, float16 on CUDA) when ``amp``;
the policy returns float32 logits and values, and log-probabilities, ratios and losses are
computed in float32. On CUDA with float16 a ``GradScaler`` scales the loss; elsewhere the scaler
is disabled (its state is still checkpointed). Gradients are clipped to ``max_grad_norm``; the
pre-clip norm is logged. The learning rate follows a ``LambdaLR`` (linear decay to 0 when
``anneal_lr``).

## DDP

Run under ``torchrun --nproc_per_node=N``: with ``WORLD_SIZE > 1`` the process group is set up
(``nccl`` on CUDA, ``gloo`` on CPU), the model is built from the same seed on every rank and
wrapped in ``DistributedDataParallel`` (which also broadcasts rank 0's parameters), every rank
steps its own ``num_envs`` sub-envs seeded ``seed + rank * num_envs + i``, and gradients are
averaged by DDP. ``total_timesteps`` and ``global_step`` count the env steps of all ranks, so an
iteration is ``world_size * batch_size`` steps. The reward normaliser is per rank (each rank's
env keeps its own statistics, like the sub-envs of a ``SyncVectorEnv``), the approximate KL for
``target_kl`` is averaged over ranks before the early-stop decision (so all ranks stop
together), and logged metrics are rank 0's. Only rank 0 writes checkpoints, the policy and
TensorBoard; per-rank state (env, normaliser, RNGs) is gathered into its checkpoint.

## Checkpoints and exact resume

``out/checkpoint.pt`` is written atomically every ``checkpoint_every`` iterations, at the end,
and when the callback stops the run: model, optimiser, scheduler, scaler, reward weights and
their optimiser, step counters, the config, the history, and per rank the full vector-env state
(:func:`get_env_state`: canvas, reference, positions, the episode's term history, reference
features, autoreset flags, reward normaliser, the sub-envs' generators, the last observation),
the running episode sums and every RNG state (global torch / CUDA / ``random``, the
action-sampling and shuffling generators). ``resume=True`` restores all of it, so a run
interrupted after iteration ``k`` and resumed ends with bitwise the same weights as an
uninterrupted one (same device, threads and library versions; checked on CPU and on CUDA with
and without AMP). Everything is loaded with ``torch.load(weights_only=True)``.
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

from agents.checkpoint import (
    atomic_torch_save,
    capture_rng_state,
    load_checkpoint,
    numpy_rng_state,
    restore_rng_state,
    set_numpy_rng_state,
)
from agents.policy import DrumPolicy, PolicyConfig, load_policy, obs_to_tensors, save_policy
from drum_env.rewards import SHAPINGS, TERMS, RunningNormalizer, make_shaping

__all__ = [
    "PPOConfig",
    "TrainResult",
    "train",
    "update_config",
    "compute_gae",
    "bernoulli_kl",
    "reward_terms",
    "weighted_reward",
    "batch_normalize",
    "epoch_normalize",
    "update_normalizer",
    "REWARD_NORMS",
    "RewardWeights",
    "get_env_state",
    "set_env_state",
]

_CKPT_FORMAT = "drum-env/ppo-checkpoint"
_CKPT_VERSION = 1

# Fields that fix the env and its state: a checkpoint can only resume with the same values.
_ENV_FIELDS = (
    "data", "seq_len", "steps_per_bar", "bars_per_phrase", "prompt_bars", "context_steps",
    "shaping", "weights", "learn_weights", "num_envs", "reward_norm",
)  # fmt: skip
# Their values in checkpoints written before the field existed.
_FIELD_DEFAULTS = {"reward_norm": "running"}

REWARD_NORMS: tuple[str, ...] = ("running", "batch", "epoch")
"""The values of :attr:`PPOConfig.reward_norm`."""


# ----------------------------------------------------------------------------- config


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


@dataclass(frozen=True)
class PPOConfig:
    """One PPO run on ``DrumCompose-v0``. Frozen; validated on construction.

    Change fields with :func:`update_config`. Derived sizes (``batch_size``, ``minibatch_size``,
    ``num_iterations``) are properties. Errors name the field and its allowed range.
    """

    # --- task (the env's arguments)
    data: str | None = None
    """Folder of ``.npz`` reference sequences; ``None``: the built-in synthetic corpus."""
    seq_len: int = 64
    """Steps of an episode's window, primer included; a multiple of ``steps_per_bar``."""
    steps_per_bar: int = 16
    """Steps in one bar (16 = 16th notes in 4/4)."""
    bars_per_phrase: int = 4
    """Bars in one phrase."""
    prompt_bars: int = 1
    """Bars of primer; the agent composes ``seq_len - prompt_bars * steps_per_bar`` steps."""
    context_steps: int = 16
    """Steps of canvas the observation shows."""
    shaping: str = "hierarchical"
    """Reward shaping, a name of ``drum_env.SHAPINGS``."""
    weights: tuple[tuple[str, float], ...] | None = None
    """Per-term weights overriding the shaping's; give a dict, it is stored as ``(term,
    weight)`` pairs in ``TERMS`` order so the config stays hashable."""
    learn_weights: bool = False
    """Learn the dense terms' weights (see the module docstring); the shaping's weights start
    them."""
    weights_lr: float = 1e-2
    """Adam learning rate of the learned reward weights (one step per iteration)."""
    reward_norm: str = "running"
    """How each term is normalised before weighting (see the module docstring): ``"running"``
    (the env's running normaliser: the env's own reward), ``"batch"`` (this rollout's mean and
    std of each term) or ``"epoch"`` (a trainer normaliser frozen during an iteration, updated at
    its end). ``"batch"`` and ``"epoch"`` need a normalised shaping."""

    # --- rollout
    num_envs: int = 16
    """Sub-envs of the vector env (per rank under DDP)."""
    num_steps: int = 32
    """Steps per sub-env per rollout: a rollout is ``batch_size = num_envs * num_steps``."""
    total_timesteps: int = 50_000
    """Env steps to train for, over all sub-envs and all ranks."""

    # --- PPO
    lr: float = 3e-4
    """Adam learning rate of the policy."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the iterations."""
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
    clip_vloss: bool = True
    """Clip the value loss around the rollout's values (CleanRL's clipped value loss)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Gradient clipping max norm."""
    target_kl: float | None = None
    """Stop the epochs of an iteration once the approximate KL exceeds this; ``None``: never."""
    kl_coef: float = 0.0
    """Weight of ``KL(pi || pi_pretrained)`` in the loss (RL Tuner style); needs
    ``pretrained``."""
    pretrained: str | None = None
    """A policy file (:func:`agents.policy.save_policy`) that initialises the weights and is the
    frozen reference of the KL penalty; its shape must match this config's."""

    # --- model
    d_model: int = 32
    """Transformer width; a multiple of ``n_heads``. The defaults (32 wide, one layer, 16 steps
    of context) are sized for CPU training: 5-10x the env steps/s of a 64-wide two-layer model
    on 32 steps."""
    n_layers: int = 1
    """Transformer layers."""
    n_heads: int = 2
    """Attention heads."""
    dropout: float = 0.0
    """Dropout in the Transformer, in [0, 1) (rollouts run in eval mode, without it)."""

    # --- system
    amp: bool = False
    """Mixed precision: autocast to bfloat16 on CPU, float16 (with a GradScaler) on CUDA. Off
    by default: at this model size autocast's casts cost more than they save (measured on CPU
    and on an H100, see the README); turn it on for wider models."""
    device: str = "auto"
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available). Under DDP on
    CUDA each rank uses ``cuda:LOCAL_RANK``."""
    seed: int = 0
    """Seeds the model, the env resets (``seed + rank * num_envs``) and the generators."""
    out: str = "runs/ppo"
    """Folder of ``checkpoint.pt``, ``policy.pt`` and ``tb/``."""
    checkpoint_every: int = 10
    """Iterations between checkpoints (one is also written at the end)."""
    resume: bool = False
    """Resume from ``out/checkpoint.pt``."""
    progress: bool = True
    """Show a progress bar (env steps)."""
    tensorboard: bool = True
    """Write TensorBoard scalars under ``out/tb``."""

    def __post_init__(self) -> None:
        for name in ("data", "pretrained"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
            elif value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a path (str) or None, got {value!r}")
        if isinstance(self.out, os.PathLike):
            object.__setattr__(self, "out", os.fspath(self.out))
        if not isinstance(self.out, str) or not self.out:
            raise ValueError(f"out must be a non-empty path, got {self.out!r}")

        positive = (
            "seq_len", "steps_per_bar", "bars_per_phrase", "context_steps", "num_envs",
            "num_steps", "total_timesteps", "num_minibatches", "update_epochs", "d_model",
            "n_layers", "n_heads", "checkpoint_every",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not _is_int(self.prompt_bars) or self.prompt_bars < 0:
            raise ValueError(f"prompt_bars must be an integer >= 0, got {self.prompt_bars!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in (
            "learn_weights", "anneal_lr", "norm_adv", "clip_vloss", "amp", "resume", "progress",
            "tensorboard",
        ):  # fmt: skip
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

        def number(name: str, low: float, high: float, low_open: bool, high_open: bool) -> None:
            value = getattr(self, name)
            ok = _is_number(value) and math.isfinite(value)
            if ok:
                ok = (value > low if low_open else value >= low) and (
                    value < high if high_open else value <= high
                )
            if not ok:
                lo, hi = "(" if low_open else "[", ")" if high_open else "]"
                raise ValueError(f"{name} must be a number in {lo}{low}, {high}{hi}, got {value!r}")

        inf = math.inf
        number("lr", 0.0, inf, True, True)
        number("weights_lr", 0.0, inf, True, True)
        number("gamma", 0.0, 1.0, False, False)
        number("gae_lambda", 0.0, 1.0, False, False)
        number("clip_coef", 0.0, inf, True, True)
        number("ent_coef", 0.0, inf, False, True)
        number("vf_coef", 0.0, inf, False, True)
        number("max_grad_norm", 0.0, inf, True, True)
        number("kl_coef", 0.0, inf, False, True)
        number("dropout", 0.0, 1.0, False, True)
        if self.target_kl is not None:
            number("target_kl", 0.0, inf, True, True)
        if self.kl_coef > 0 and self.pretrained is None:
            raise ValueError(
                f"kl_coef={self.kl_coef} needs a pretrained policy: set pretrained to a policy "
                "file, or kl_coef to 0"
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be a multiple of n_heads={self.n_heads}, got {self.d_model}"
            )
        dev = self.device
        if not isinstance(dev, str) or not (
            dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())
        ):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")

        # Env arguments: the env's own validation, before any data is loaded.
        if self.shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of {list(SHAPINGS)}, got {self.shaping!r}")
        if self.weights is not None:
            pairs = self.weights.items() if isinstance(self.weights, Mapping) else self.weights
            try:
                given = {str(k): float(v) for k, v in pairs}
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"weights must map term names to numbers, got {self.weights!r}"
                ) from exc
            try:
                make_shaping(self.shaping, given)
            except ValueError as exc:
                raise ValueError(f"weights: {exc}") from exc
            object.__setattr__(self, "weights", tuple((k, given[k]) for k in TERMS if k in given))
        from drum_env.core import DrumComposeConfig

        DrumComposeConfig(
            self.seq_len, self.steps_per_bar, self.bars_per_phrase, self.prompt_bars,
            self.context_steps, None, self.shaping_object,
        )  # fmt: skip
        if self.reward_norm not in REWARD_NORMS:
            raise ValueError(
                f"reward_norm must be one of {list(REWARD_NORMS)}, got {self.reward_norm!r}"
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
    def weight_mapping(self) -> dict[str, float] | None:
        """``weights`` as a dict (``None`` when not given)."""
        return None if self.weights is None else dict(self.weights)

    @property
    def shaping_object(self):  # -> drum_env.rewards.Shaping
        """The resolved :class:`~drum_env.rewards.Shaping` (preset plus ``weights``)."""
        return make_shaping(self.shaping, self.weight_mapping)

    @property
    def learnable_terms(self) -> tuple[str, ...]:
        """Terms whose weight ``learn_weights`` learns: non-song terms with non-zero weight."""
        w = self.shaping_object.weights
        return tuple(k for k in TERMS if k != "song" and w[k] != 0.0)

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``DrumCompose-v0`` for this config."""
        return {
            "data": self.data, "seq_len": self.seq_len, "steps_per_bar": self.steps_per_bar,
            "bars_per_phrase": self.bars_per_phrase, "prompt_bars": self.prompt_bars,
            "context_steps": self.context_steps, "shaping": self.shaping,
            "weights": self.weight_mapping,
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (``weights`` as a dict), safe for checkpoints and JSON."""
        d = dataclasses.asdict(self)
        d["weights"] = self.weight_mapping
        return d


def update_config(cfg: PPOConfig, **changes: Any) -> PPOConfig:
    """A copy of ``cfg`` with ``changes`` applied and validated (``dataclasses.replace``).

    Raises:
        ValueError: an unknown field (the message lists the valid ones), or an invalid value.
    """
    names = [f.name for f in dataclasses.fields(PPOConfig)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise ValueError(f"unknown PPOConfig field(s) {unknown}; valid fields: {names}")
    return dataclasses.replace(cfg, **changes)


class TrainResult(NamedTuple):
    """What :func:`train` returns."""

    policy_path: Path
    """``out/policy.pt`` (:func:`agents.policy.save_policy`; written by rank 0)."""
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
    policy: DrumPolicy
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
    x = np.maximum(np.asarray(x, dtype=np.float64), 1e-6)
    return np.where(x > 20.0, x, np.log(np.expm1(x)))


class RewardWeights(nn.Module):
    """Per-term reward weights; the learned ones are ``softplus(theta) >= 0``.

    Args:
        initial: float array (len(TERMS),), the shaping's weights (start of the learned ones).
        learned: names of the learned terms (the others keep their initial weight).
    """

    def __init__(self, initial: np.ndarray, learned: tuple[str, ...] = ()) -> None:
        super().__init__()
        initial = np.asarray(initial, dtype=np.float64)
        mask = np.array([k in learned for k in TERMS])
        self.register_buffer("fixed", torch.as_tensor(initial, dtype=torch.float32))
        self.register_buffer("mask", torch.as_tensor(mask))
        theta = np.where(mask, _inverse_softplus(initial), 0.0)
        self.theta = nn.Parameter(torch.as_tensor(theta, dtype=torch.float32))
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


# ----------------------------------------------------------------------------- env state


def _np_to_tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a).copy())


def _state_arrays(obj: Any) -> dict[str, np.ndarray]:
    """The numeric numpy arrays among an object's attributes (its batched state and tables)."""
    return {
        k: v for k, v in vars(obj).items()
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf"
    }  # fmt: skip


def get_env_state(env: Any) -> dict[str, Any]:
    """The complete state of a ``DrumComposeVectorEnv`` as tensors and plain data.

    Relies on the vector env's internals, read generically so that a renamed buffer is still
    captured: every numeric numpy array attribute of its ``ComposeCore`` (canvas, reference,
    positions, window ids, this episode's term history, the target, and the constant tables),
    the core's reference features (``_ref``), the vector env's autoreset flags, the shared
    reward normaliser (``state_dict``), each sub-env's generator (``np_random_list``) and the
    current observation. The per-window feature cache is not saved (it is recomputed on use).
    :func:`set_env_state` restores it, and the env then continues exactly.

    Args:
        env: the vector env (or a wrapper of it: ``env.unwrapped`` is used); reset at least once.

    Returns:
        dict loadable with ``torch.load(weights_only=True)``.

    Raises:
        ValueError: the env has not been reset.
    """
    venv = env.unwrapped
    core = venv._core
    if core._ref is None:
        raise ValueError("get_env_state: reset the env first")
    ref_fields = [
        [_np_to_tensor(a) for a in f] if isinstance(f, (list, tuple)) else _np_to_tensor(f)
        for f in core._ref
    ]
    return {
        "num_envs": int(venv.num_envs),
        "core": {k: _np_to_tensor(v) for k, v in _state_arrays(core).items()},
        "ref_features": ref_fields,
        "autoreset": _np_to_tensor(venv._autoreset),
        "started": bool(venv._started),
        "normalizer": venv.normalizer.state_dict(),
        "rngs": [numpy_rng_state(g) for g in venv.np_random_list],
        "observation": {k: _np_to_tensor(v) for k, v in core.observe().items()},
    }


def set_env_state(env: Any, state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Restore a state written by :func:`get_env_state` into an env built with the same config.

    The env is reset first if it never was (to allocate its buffers); every saved array is
    copied into the matching buffer in place.

    Args:
        env: the vector env (or a wrapper); built with the same arguments as the saved one.
        state: the saved state.

    Returns:
        The current observation (batched numpy dict), as the env's last ``step`` returned it.

    Raises:
        ValueError: the state does not fit the env (number of sub-envs, a buffer missing or of
            another shape or dtype, e.g. after a change of the env's version); the message
            names the buffer.
    """
    venv = env.unwrapped
    if int(state["num_envs"]) != venv.num_envs:
        raise ValueError(f"env state has {state['num_envs']} sub-envs, the env has {venv.num_envs}")
    core = venv._core
    if core._ref is None:
        env.reset()

    def copy_into(name: str, target: Any, value: Tensor) -> None:
        source = value.numpy()
        if (
            not isinstance(target, np.ndarray)
            or target.shape != source.shape
            or (target.dtype != source.dtype)
        ):
            have = (target.shape, str(target.dtype)) if isinstance(target, np.ndarray) else None
            raise ValueError(
                f"env state does not fit the env: buffer {name!r} is saved as "
                f"{tuple(source.shape), str(source.dtype)}, the env has {have}"
            )
        target[...] = source

    mine = _state_arrays(core)
    for name, value in state["core"].items():
        copy_into(name, mine.get(name), value)
    saved_ref = state["ref_features"]
    if len(saved_ref) != len(core._ref):
        raise ValueError("env state does not fit the env: reference features differ")
    for k, (target, value) in enumerate(zip(core._ref, saved_ref)):
        if isinstance(value, list):
            if not isinstance(target, (list, tuple)) or len(target) != len(value):
                raise ValueError(f"env state does not fit the env: reference feature {k}")
            for j, (t, v) in enumerate(zip(target, value)):
                copy_into(f"_ref[{k}][{j}]", t, v)
        else:
            copy_into(f"_ref[{k}]", target, value)
    copy_into("_autoreset", venv._autoreset, state["autoreset"])
    venv._started = bool(state["started"])
    venv.normalizer.load_state_dict(state["normalizer"])
    gens = venv.np_random_list
    if len(state["rngs"]) != len(gens):
        raise ValueError(f"env state has {len(state['rngs'])} generators, the env {len(gens)}")
    for g, s in zip(gens, state["rngs"]):
        set_numpy_rng_state(g, s)
    obs = core.observe()
    for k, v in state["observation"].items():
        if not np.array_equal(obs[k], v.numpy()):
            raise ValueError(f"env state is inconsistent: its observation {k!r} differs")
    return obs


# ----------------------------------------------------------------------------- distributed


class _Dist(NamedTuple):
    rank: int
    world_size: int
    local_rank: int
    enabled: bool
    owns_group: bool


def _setup_distributed(config: PPOConfig) -> _Dist:
    # Under torchrun (which always sets WORLD_SIZE) run DDP even with one process, so the
    # nccl / gloo path can be checked on a single-GPU machine.
    if "WORLD_SIZE" not in os.environ:
        return _Dist(0, 1, 0, False, False)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = config.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, True, owns)


def _resolve_device(config: PPOConfig, d: _Dist) -> torch.device:
    if config.device == "cpu":
        return torch.device("cpu")
    if config.device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device={config.device!r} but CUDA is not available")
    if d.enabled:
        return torch.device("cuda", d.local_rank)
    return torch.device(config.device if config.device != "auto" else "cuda")


def _all_reduce(values: Tensor, d: _Dist) -> Tensor:
    """Sum over ranks (in place; no-op without DDP)."""
    if d.enabled:
        import torch.distributed as dist

        dist.all_reduce(values)
    return values


class _ActorCritic(nn.Module):
    """``policy.forward_obs`` as ``forward``, so DistributedDataParallel can wrap it."""

    def __init__(self, policy: DrumPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        out = self.policy.forward_obs(obs)
        return out.logits, out.value


# ----------------------------------------------------------------------------- training


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


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


def _check_resume(state: Mapping[str, Any], config: PPOConfig, policy_cfg: PolicyConfig,
                  world_size: int, path: Path) -> None:  # fmt: skip
    if state.get("format") != _CKPT_FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} is not a PPO checkpoint of drum-env")
    saved = state["policy_config"]
    mine = dataclasses.asdict(policy_cfg)
    diffs = [f"{k} (checkpoint {saved.get(k)!r}, config {v!r})" for k, v in mine.items()
             if saved.get(k) != v]  # fmt: skip
    if diffs:
        raise ValueError(
            f"checkpoint {str(path)!r} holds a model with another config; differing fields: "
            + ", ".join(diffs)
        )
    saved_cfg = state["config"]
    mine_cfg = config.to_dict()
    diffs = [f"{k} (checkpoint {saved_cfg.get(k, _FIELD_DEFAULTS.get(k))!r}, config "
             f"{mine_cfg[k]!r})" for k in _ENV_FIELDS
             if saved_cfg.get(k, _FIELD_DEFAULTS.get(k)) != mine_cfg[k]]  # fmt: skip
    if diffs:
        raise ValueError(
            f"checkpoint {str(path)!r} was trained on another env; differing fields: "
            + ", ".join(diffs)
        )
    if int(state["world_size"]) != world_size:
        raise ValueError(
            f"checkpoint {str(path)!r} was written by {state['world_size']} DDP rank(s), this "
            f"run has {world_size}: resume with the same number of processes"
        )


def train(config: PPOConfig, callback: Callable[[dict[str, float]], bool | None] | None = None
          ) -> TrainResult:  # fmt: skip
    """Train the custom policy with PPO on ``DrumCompose-v0`` (see the module docstring).

    Seeds the global torch generator (model initialisation) from ``config.seed``.

    Args:
        config: the run.
        callback: called after every iteration with that iteration's metrics (the keys of
            :data:`TrainResult.history`: ``"charts/episode_return"``, ``"losses/policy"``, ...);
            returning ``False`` stops the run after writing a checkpoint (e.g. Optuna pruning).
            Under DDP it is called on rank 0 only.

    Returns:
        TrainResult.

    Raises:
        FileNotFoundError: ``resume=True`` and ``out/checkpoint.pt`` is missing.
        ValueError: a corrupt checkpoint, or one whose model / env config or world size differ
            (the fields are named); a pretrained policy of another shape; fewer steps than one
            iteration under DDP.
    """
    d = _setup_distributed(config)
    try:
        return _train(config, callback, d)
    finally:
        if d.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(
    config: PPOConfig, callback: Callable[[dict[str, float]], bool | None] | None, d: _Dist
) -> TrainResult:
    import gymnasium as gym

    import drum_env  # noqa: F401  (registers DrumCompose-v0)

    rank, world = d.rank, d.world_size
    main = rank == 0
    device = _resolve_device(config, d)
    if device.type == "cuda":
        # Exact resume needs a repeatable run: deterministic cuBLAS workspaces and kernels
        # (index_add in embedding backward, ...). Process-wide, as torch only offers it so.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    num_iterations = config.iterations(world)
    if num_iterations < 1:
        raise ValueError(
            f"total_timesteps={config.total_timesteps} is less than one iteration of "
            f"{world} rank(s) x batch_size {config.batch_size}"
        )
    out = Path(config.out)
    ckpt_path, policy_path = out / "checkpoint.pt", out / "policy.pt"
    n, steps = config.num_envs, config.num_steps
    num_terms = len(TERMS)

    # --- env: each rank its own sub-envs, seeded seed + rank * num_envs + i
    env = gym.make_vec(
        "DrumCompose-v0", num_envs=n, vectorization_mode="vector_entry_point",
        **config.env_kwargs(),
    )  # fmt: skip
    venv = env.unwrapped
    next_obs, _ = env.reset(seed=config.seed + rank * n)
    num_drums = venv.config.num_drums

    # --- model: the same initialisation on every rank
    torch.manual_seed(config.seed)
    policy_cfg = PolicyConfig.from_env_config(
        venv.config, d_model=config.d_model, n_layers=config.n_layers, n_heads=config.n_heads,
        dropout=config.dropout,
    )  # fmt: skip
    policy = DrumPolicy(policy_cfg).to(device)
    reference: DrumPolicy | None = None
    if config.pretrained is not None:
        reference = load_policy(config.pretrained, map_location=device, expected=policy_cfg)
        policy.load_state_dict(reference.state_dict())
        reference.eval().requires_grad_(False)
    model: nn.Module = _ActorCritic(policy)
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=1e-5)
    anneal = config.anneal_lr
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: max(1.0 - i / num_iterations, 0.0) if anneal else 1.0
    )
    cuda = device.type == "cuda"
    amp_dtype = torch.float16 if cuda else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and cuda)

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=config.amp)

    shaping = config.shaping_object
    learned = config.learnable_terms if config.learn_weights else ()
    reward_weights = RewardWeights(shaping.weight_vector, learned).to(device)
    weights_optimizer = torch.optim.Adam(reward_weights.parameters(), lr=config.weights_lr)
    # reward_norm="epoch": frozen during an iteration, updated at its end (per rank)
    epoch_normalizer = RunningNormalizer(num_terms)

    # --- generators: per rank, derived from (seed, rank)
    seeds = np.random.SeedSequence([config.seed, rank]).generate_state(3)
    act_seed, shuffle_seed, global_seed = (int(s) for s in seeds)
    act_gen = torch.Generator(device=device).manual_seed(int(act_seed))
    shuffle_gen = torch.Generator().manual_seed(int(shuffle_seed))
    torch.manual_seed(int(global_seed))  # dropout draws; differs by rank after the model init
    generators = {"action": act_gen, "shuffle": shuffle_gen}

    # --- running episode sums (per sub-env), counters
    ep_return = np.zeros(n)
    ep_norm = np.zeros((n, num_terms))
    ep_raw = np.zeros((n, num_terms))
    global_step, start_iteration = 0, 0
    history: list[dict[str, float]] = []

    if config.resume:
        state = load_checkpoint(ckpt_path)
        try:
            _check_resume(state, config, policy_cfg, world, ckpt_path)
            policy.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            reward_weights.load_state_dict(state["reward_weights"])
            weights_optimizer.load_state_dict(state["weights_optimizer"])
            local = state["ranks"][rank]
            next_obs = set_env_state(env, local["env"])
            ep_return = local["episode"]["return"].numpy().copy()
            ep_norm = local["episode"]["norm"].numpy().copy()
            ep_raw = local["episode"]["raw"].numpy().copy()
            if "reward_normalizer" in local:  # absent in checkpoints from before reward_norm
                epoch_normalizer.load_state_dict(local["reward_normalizer"])
            restore_rng_state(local["rng"], (), generators)
        except (KeyError, IndexError, TypeError, RuntimeError) as exc:
            raise ValueError(
                f"checkpoint {str(ckpt_path)!r} is incomplete or does not fit this run "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        global_step = int(state["global_step"])
        start_iteration = int(state["iteration"])
        history = list(state["history"])

    def save_checkpoint(iteration: int) -> None:
        local = {
            "env": get_env_state(env),
            "episode": {
                "return": _np_to_tensor(ep_return),
                "norm": _np_to_tensor(ep_norm),
                "raw": _np_to_tensor(ep_raw),
            },  # fmt: skip
            "rng": capture_rng_state((), generators),
            "reward_normalizer": epoch_normalizer.state_dict(),
        }
        if d.enabled:
            import torch.distributed as dist

            gathered: list[Any] | None = [None] * world if main else None
            dist.gather_object(local, gathered, dst=0)
            ranks = gathered
        else:
            ranks = [local]
        if not main:
            return
        atomic_torch_save(
            {
                "format": _CKPT_FORMAT, "version": _CKPT_VERSION,
                "config": config.to_dict(), "policy_config": dataclasses.asdict(policy_cfg),
                "seed": config.seed, "world_size": world,
                "iteration": iteration, "global_step": global_step,
                "model": policy.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "reward_weights": reward_weights.state_dict(),
                "weights_optimizer": weights_optimizer.state_dict(),
                "history": history, "ranks": ranks,
            },
            ckpt_path,
        )  # fmt: skip

    writer = None
    if main and config.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=global_step if config.resume else None)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=num_iterations * config.batch_size * world, initial=global_step, unit="step",
        desc="ppo", disable=not (config.progress and main), dynamic_ncols=True,
    )  # fmt: skip

    # --- storage, shapes (num_steps, num_envs, ...)
    obs_space = venv.single_observation_space
    obs_buf = {k: torch.zeros((steps, n, *space.shape), device=device)
               for k, space in obs_space.spaces.items()}  # fmt: skip
    actions = torch.zeros((steps, n, num_drums), device=device)
    logprobs = torch.zeros((steps, n), device=device)
    rewards = torch.zeros((steps, n), device=device)
    terminations = torch.zeros((steps, n), dtype=torch.bool, device=device)
    valid = torch.zeros((steps, n), dtype=torch.bool, device=device)
    values = torch.zeros((steps, n), device=device)
    # the reward terms of the rollout (the reward is weighed once it is complete)
    raw_buf = np.zeros((steps, n, num_terms))
    norm_buf = np.zeros((steps, n, num_terms))
    closed_buf = np.zeros((steps, n, num_terms), dtype=bool)
    term_buf = np.zeros((steps, n), dtype=bool)

    # sub-envs whose next step is an autoreset step (their episode just ended)
    next_reset = venv._autoreset.copy()
    iteration = start_iteration
    try:
        for iteration in range(start_iteration + 1, num_iterations + 1):
            t_start = time.perf_counter()
            # the shaping's float64 weights unless learned: then r_t is the env's reward exactly
            weights_np = (reward_weights().detach().double().cpu().numpy() if learned
                          else shaping.weight_vector)  # fmt: skip
            finished: list[tuple[float, np.ndarray, np.ndarray]] = []  # return, norm, raw sums

            # --- rollout
            policy.eval()
            for step in range(steps):
                obs = obs_to_tensors(next_obs, device)
                for k in obs_buf:
                    obs_buf[k][step] = obs[k]
                valid[step] = torch.as_tensor(~next_reset, device=device)
                with torch.no_grad(), autocast():
                    out_t = policy.forward_obs(obs)
                logits = out_t.logits.float()
                action = torch.bernoulli(torch.sigmoid(logits), generator=act_gen)
                logprobs[step] = DrumPolicy.distribution(logits).log_prob(action)
                values[step] = out_t.value.float()
                actions[step] = action
                next_obs, _, term, _, info = env.step(action.to(torch.int8).cpu().numpy())
                norm_buf[step] = reward_terms(info, "norm", n)
                raw_buf[step] = reward_terms(info, "raw", n)
                closed_buf[step] = reward_terms(info, "closed", n)
                term_buf[step] = term
                terminations[step] = torch.as_tensor(term, device=device)
                next_reset = term  # NEXT_STEP autoreset: the next step resets these sub-envs
            global_step += steps * n * world

            # --- reward: the normalised terms, weighted; episode sums
            if config.reward_norm == "batch":
                norm_buf[...] = batch_normalize(raw_buf, closed_buf)
            elif config.reward_norm == "epoch":
                norm_buf[...] = epoch_normalize(raw_buf, closed_buf, epoch_normalizer)
                update_normalizer(epoch_normalizer, raw_buf, closed_buf)
            for step in range(steps):
                norm, raw, term = norm_buf[step], raw_buf[step], term_buf[step]
                reward = weighted_reward(norm, weights_np)
                ep_return += reward
                ep_norm += norm
                ep_raw += raw
                for i in np.flatnonzero(term):
                    finished.append((float(ep_return[i]), ep_norm[i].copy(), ep_raw[i].copy()))
                ep_return[term] = 0.0
                ep_norm[term] = 0.0
                ep_raw[term] = 0.0
                rewards[step] = torch.as_tensor(reward, dtype=torch.float32, device=device)
            policy.train()

            # --- learned reward weights: one step on this iteration's episodes (all ranks)
            weights_fit = float("nan")
            if learned:
                song = TERMS.index("song")
                sums = torch.tensor(np.array([f[1] for f in finished]).reshape(-1, num_terms),
                                    dtype=torch.float32, device=device)  # fmt: skip
                weights_optimizer.zero_grad(set_to_none=False)
                loss_sum = reward_weights.fit_loss(sums, sums[:, song])
                loss_sum.backward()
                episodes = torch.tensor(float(len(finished)), device=device)
                stats = _all_reduce(torch.stack([loss_sum.detach(), episodes]), d)
                count = float(stats[1])
                if count > 0:
                    for p in reward_weights.parameters():
                        _all_reduce(p.grad, d).div_(count)
                    weights_optimizer.step()
                    weights_fit = float(stats[0]) / count

            # --- GAE
            with torch.no_grad(), autocast():
                next_value = policy.forward_obs(obs_to_tensors(next_obs, device)).value.float()
            advantages, returns = compute_gae(
                rewards, values, terminations, valid, next_value, config.gamma, config.gae_lambda
            )

            # --- flatten the batch: (num_steps * num_envs, ...)
            b_obs = {k: v.reshape(steps * n, *v.shape[2:]) for k, v in obs_buf.items()}
            b_actions = actions.reshape(-1, num_drums)
            b_logprobs, b_values = logprobs.reshape(-1), values.reshape(-1)
            b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
            b_valid = valid.reshape(-1).float()
            b_ref_logits = None
            if reference is not None:
                with torch.no_grad(), autocast():
                    b_ref_logits = reference.forward_obs(b_obs).logits.float()

            # --- minibatch epochs
            sums = {"policy": 0.0, "value": 0.0, "entropy": 0.0, "kl_pretrained": 0.0,
                    "approx_kl": 0.0, "clipfrac": 0.0, "grad_norm": 0.0}  # fmt: skip
            updates = finite_updates = 0
            mb = config.minibatch_size
            for _epoch in range(config.update_epochs):
                order = torch.randperm(config.batch_size, generator=shuffle_gen).to(device)
                epoch_kl = torch.zeros((), device=device)
                for start in range(0, config.batch_size, mb):
                    idx = order[start : start + mb]
                    mask = b_valid[idx]
                    with autocast():
                        logits, new_value = model({k: v[idx] for k, v in b_obs.items()})
                    logits, new_value = logits.float(), new_value.float()
                    pi = DrumPolicy.distribution(logits)
                    new_logprob = pi.log_prob(b_actions[idx])
                    entropy = pi.entropy()
                    logratio = new_logprob - b_logprobs[idx]
                    ratio = logratio.exp()
                    with torch.no_grad():
                        approx_kl = _masked_mean((ratio - 1.0) - logratio, mask)
                        clipfrac = _masked_mean(
                            ((ratio - 1.0).abs() > config.clip_coef).float(), mask
                        )
                    adv = b_advantages[idx]
                    if config.norm_adv:
                        mean = _masked_mean(adv, mask)
                        std = _masked_mean(torch.square(adv - mean), mask).sqrt()
                        adv = (adv - mean) / (std + 1e-8)
                    pg_loss = _masked_mean(torch.maximum(
                        -adv * ratio,
                        -adv * torch.clamp(ratio, 1.0 - config.clip_coef, 1.0 + config.clip_coef),
                    ), mask)  # fmt: skip
                    if config.clip_vloss:
                        v_clipped = b_values[idx] + torch.clamp(
                            new_value - b_values[idx], -config.clip_coef, config.clip_coef
                        )
                        v_loss = 0.5 * _masked_mean(torch.maximum(
                            torch.square(new_value - b_returns[idx]),
                            torch.square(v_clipped - b_returns[idx]),
                        ), mask)  # fmt: skip
                    else:
                        v_loss = 0.5 * _masked_mean(torch.square(new_value - b_returns[idx]), mask)
                    entropy_loss = _masked_mean(entropy, mask)
                    kl_pre = torch.zeros((), device=device)
                    if b_ref_logits is not None:
                        kl_pre = _masked_mean(bernoulli_kl(logits, b_ref_logits[idx]), mask)
                    loss = (pg_loss - config.ent_coef * entropy_loss + config.vf_coef * v_loss
                            + config.kl_coef * kl_pre)  # fmt: skip

                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()

                    epoch_kl += approx_kl
                    updates += 1
                    logged = {"policy": pg_loss, "value": v_loss, "entropy": entropy_loss,
                              "kl_pretrained": kl_pre, "approx_kl": approx_kl,
                              "clipfrac": clipfrac}  # fmt: skip
                    for key, value in logged.items():
                        sums[key] += float(value.detach())
                    pre_clip = float(grad_norm)
                    if math.isfinite(pre_clip):  # fp16 overflow: GradScaler skips the step
                        sums["grad_norm"] += pre_clip
                        finite_updates += 1
                if config.target_kl is not None:
                    mean_kl = _all_reduce(epoch_kl / config.num_minibatches, d) / world
                    if float(mean_kl) > config.target_kl:
                        break
            lr_now = scheduler.get_last_lr()[0]
            scheduler.step()

            # --- metrics
            with torch.no_grad():
                vmask = b_valid > 0
                y, yhat = b_returns[vmask], b_values[vmask]
                var_y = float(y.var()) if y.numel() > 1 else float("nan")
                explained = float("nan") if not var_y > 0 else 1.0 - float((y - yhat).var()) / var_y
            metrics: dict[str, float] = {
                "iteration": float(iteration),
                "global_step": float(global_step),
                "charts/episodes": float(len(finished)),
            }
            song = TERMS.index("song")
            if finished:
                raw_sums = np.array([f[2] for f in finished])
                metrics["charts/episode_return"] = float(np.mean([f[0] for f in finished]))
                metrics["charts/episode_song_raw"] = float(raw_sums[:, song].mean())
                for k, name in enumerate(TERMS):
                    metrics[f"reward/{name}"] = float(raw_sums[:, k].mean())
            else:
                metrics["charts/episode_return"] = float("nan")
                metrics["charts/episode_song_raw"] = float("nan")
                for name in TERMS:
                    metrics[f"reward/{name}"] = float("nan")
            for key, total in sums.items():
                metrics[f"losses/{key}"] = total / max(updates, 1)
            # pre-clip norm, over the updates GradScaler did not skip (NaN if it skipped all)
            metrics["losses/grad_norm"] = (
                sums["grad_norm"] / finite_updates if finite_updates else float("nan")
            )
            metrics["losses/skipped_updates"] = float(updates - finite_updates)
            metrics["losses/explained_variance"] = explained
            metrics["charts/lr"] = float(lr_now)
            metrics["charts/fps"] = steps * n * world / (time.perf_counter() - t_start)
            if learned:
                for name, w in zip(TERMS, reward_weights().detach().cpu().tolist()):
                    metrics[f"weights/{name}"] = float(w)
                metrics["losses/weights_fit"] = weights_fit
            history.append(metrics)

            if writer is not None:
                for key, value in metrics.items():
                    if key not in ("iteration", "global_step") and math.isfinite(value):
                        writer.add_scalar(key, value, global_step)
            bar.update(steps * n * world)
            if main and finished:
                bar.set_postfix(ret=f"{metrics['charts/episode_return']:.2f}",
                                song=f"{metrics['charts/episode_song_raw']:.3f}")  # fmt: skip

            stop = False
            if callback is not None and main:
                stop = callback(dict(metrics)) is False
            if d.enabled:
                flag = _all_reduce(torch.tensor([float(stop)], device=device), d)
                stop = bool(flag.item() > 0)
            if stop or iteration % config.checkpoint_every == 0 or iteration == num_iterations:
                save_checkpoint(iteration)
            if stop:
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        env.close()

    if main:
        save_policy(policy_path, policy)
    if d.enabled:
        import torch.distributed as dist

        dist.barrier()
    return TrainResult(
        policy_path, ckpt_path, global_step, iteration,
        _recent(history, "charts/episode_return"), _recent(history, "charts/episode_song_raw"),
        history, policy,
    )  # fmt: skip
