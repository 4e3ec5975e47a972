"""The set-up of a PPO run in named helpers, in the order :func:`agents.training.ppo.train` uses.

As CleanRL's ``ppo.py`` builds its env, agent and optimiser before the loop, the trainer does:

* :func:`repeatable_device`, :func:`count_iterations`;
* :func:`make_env`: this rank's native vector env (with a pretrained policy's velocity bins);
* :func:`make_agent`: the policy, the pretrained reference and the critic (:class:`Agent`);
* :func:`make_model`: the module the update trains (DDP, ``torch.compile``);
* :func:`make_optimizer`, :func:`make_amp`: Adam and its schedule, autocast and the scaler;
* :func:`make_reward`: the trainer's reward weights and sums (:class:`TrainerReward`);
* :func:`make_generators`: this rank's generators, derived from ``(seed, rank)``;
* :func:`checkpointed_modules`, :func:`claim_run`: what a checkpoint holds, the resume check
  and the run folder;
* :func:`open_logs`: W&B, TensorBoard (scalars, takes, HParams) and the progress bar.

Every helper does exactly what the loop did inline before (in the same order, drawing the
same random numbers), so a seeded run is bitwise the same.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import nn

from agents.policies.critic import Critic
from agents.policies.policy import (
    DrumPolicy,
    MLPPolicy,
    MLPPolicyConfig,
    PolicyConfig,
    load_policy,
    policy_velocity_bins,
    saved_policy_config,
)
from agents.training.checkpoint import load_training_state
from agents.training.discriminator import EnergyWitness, FeatureDiscriminator, real_windows
from agents.training.distributed import Dist, barrier, broadcast_from_main
from agents.training.ppo_steps import ActorCritic
from agents.training.run_logs import RunLogs
from agents.training.runs import prepare_run_dir
from agents.training.trainer_reward import Episodes, RewardWeights
from dataset.velocity import VelocityBins
from drum_env.rewards import TERMS, RunningNormalizer

if TYPE_CHECKING:
    from agents.training.ppo import PPOConfig

__all__ = [
    "Agent",
    "TrainerReward",
    "repeatable_device",
    "count_iterations",
    "pretrained_velocity_bins",
    "make_env",
    "make_agent",
    "make_model",
    "make_optimizer",
    "make_amp",
    "make_reward",
    "make_generators",
    "checkpointed_modules",
    "claim_run",
    "open_logs",
    "cxx_compiler",
    "check_cxx",
    "compile_model",
]


def repeatable_device(device: torch.device) -> torch.device:
    """``device``; on CUDA, deterministic kernels first: exact resume needs a repeatable run."""
    if device.type == "cuda":
        # deterministic cuBLAS workspaces and kernels (index_add in embedding backward, ...);
        # process-wide, as torch only offers it so
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device


def count_iterations(config: PPOConfig, d: Dist) -> int:
    """The run's iterations, all ranks together; at least one (else a ValueError)."""
    iterations = config.iterations(d.world_size)
    if iterations < 1:
        raise ValueError(
            f"total_timesteps={config.total_timesteps} is less than one iteration of "
            f"{d.world_size} rank(s) x batch_size {config.batch_size}"
        )
    return iterations


def checkpointed_modules(agent: Agent, optimizer: torch.optim.Optimizer, scheduler: Any,
                         scaler: torch.amp.GradScaler, reward: TrainerReward
                         ) -> dict[str, Any]:  # fmt: skip
    """The objects whose ``state_dict()`` a checkpoint holds, by their names in it."""
    return {"model": agent.policy, "optimizer": optimizer, "scheduler": scheduler,
            "scaler": scaler, "reward_weights": reward.weights,
            "weights_optimizer": reward.weights_optimizer,
            **({"critic": agent.critic} if agent.critic is not None else {}),
            **({"discriminator": reward.discriminator} if reward.discriminator is not None
               else {})}  # fmt: skip


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



class Agent(NamedTuple):
    """The learner's modules, as :func:`make_agent` builds them."""

    policy: DrumPolicy | MLPPolicy
    """The policy being trained."""
    config: PolicyConfig | MLPPolicyConfig
    """Its config (what ``policy.pt`` and the checkpoint record)."""
    reference: DrumPolicy | None
    """The frozen ``pretrained`` policy (the KL's other side), or None."""
    critic: Critic | None
    """The trainer's value network (``critic="mlp"``), or None (the policy's value head)."""


class TrainerReward(NamedTuple):
    """The trainer's reward state, as :func:`make_reward` builds it."""

    shaping: Any
    """The shaping (``drum_env.rewards.Shaping``) whose terms and weights the reward reads."""
    learned: tuple[str, ...]
    """The terms whose weights are learned (empty unless ``learn_weights``)."""
    weights: RewardWeights
    """The per-term weights (learned ones move; the others stay the shaping's)."""
    weights_optimizer: torch.optim.Optimizer
    """Adam over the learned weights."""
    normalizer: RunningNormalizer
    """The running normaliser of ``reward_norm="epoch"`` (per rank)."""
    episodes: Episodes
    """The running sums of the episodes in progress."""
    discriminator: FeatureDiscriminator | None = None
    """The learned reward's ``D`` (``disc_coef > 0``), or None."""

    def weight_vector(self) -> np.ndarray:
        """float64 (terms,): the weights of this iteration; the shaping's own unless learned."""
        if self.learned:
            return self.weights().detach().double().cpu().numpy()
        return self.shaping.weight_vector  # then r_t is the env's reward exactly


def make_env(config: PPOConfig) -> Any:
    """This rank's vector env of ``num_envs`` sub-envs (``gym.make_vec``, the native one).

    With velocity levels and a ``pretrained`` policy the envs use its velocity bins, so its
    classes keep the levels it learned; otherwise the env's own (from the data).
    """
    import gymnasium as gym

    import drum_env  # noqa: F401  (registers DrumCompose-v0)

    bins = pretrained_velocity_bins(config)
    return gym.make_vec("DrumCompose-v0", num_envs=config.num_envs,
                        vectorization_mode="vector_entry_point",
                        **config.env_kwargs(velocity_bins=bins))  # fmt: skip


def make_agent(config: PPOConfig, venv: Any, device: torch.device) -> Agent:
    """The policy (from ``config.seed``: the same on every rank), the reference, the critic.

    A ``pretrained`` policy is loaded (refused if its shape is not the run's; its joint step
    head, if it has one, and its reading of the canvas are the run's) and copied into the
    policy; with ``critic="mlp"`` the policy's own value head is frozen.
    """
    torch.manual_seed(config.seed)
    policy_cfg: PolicyConfig | MLPPolicyConfig
    if config.policy_kind == "mlp":
        policy_cfg = MLPPolicyConfig.from_env_config(venv.config,
                                                     init_hit_rate=config.init_hit_rate)
        policy: DrumPolicy | MLPPolicy = MLPPolicy(policy_cfg, venv.config.velocity_bins)
        policy = policy.to(device)
    else:
        # a pretrained policy's joint step head (PolicyConfig.joint_step) is kept: read from its
        # file's config without building it (no random numbers drawn)
        # and so is its reading of the canvas (PolicyConfig.canvas_steps)
        saved = saved_policy_config(config.pretrained) if config.pretrained is not None else {}
        joint = bool(saved.get("joint_step", False))
        canvas = int(saved.get("canvas_steps", 0)) if saved else config.canvas_steps
        policy_cfg = PolicyConfig.from_env_config(
            venv.config, d_model=config.d_model, n_layers=config.n_layers,
            n_heads=config.n_heads, dropout=config.dropout, init_hit_rate=config.init_hit_rate,
            **({"joint_step": True} if joint else {}),
            **({"canvas_steps": canvas} if canvas else {}),
        )  # fmt: skip
        if canvas and canvas != venv.config.seq_len:
            raise ValueError(
                f"pretrained policy {config.pretrained!r} reads a canvas of {canvas} steps "
                f"(canvas_steps); seq_len={venv.config.seq_len} does not fit it: use "
                f"seq_len={canvas}"
            )
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
    return Agent(policy, policy_cfg, reference, critic)


def make_model(agent: Agent, d: Dist, device: torch.device, compile: bool
               ) -> tuple[nn.Module, nn.Module]:  # fmt: skip
    """The model the update trains (DDP-wrapped under ``torchrun``) and its compiled form."""
    model: nn.Module = ActorCritic(agent.policy, agent.critic)
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    return model, (compile_model(model, device) if compile else model)


def make_optimizer(config: PPOConfig, agent: Agent, num_iterations: int
                   ) -> tuple[torch.optim.Optimizer, Any]:  # fmt: skip
    """Adam over the trainable parameters and its learning-rate schedule (``anneal_lr``)."""
    # foreach: one multi-tensor step instead of a Python loop over the parameters, bitwise the
    # same updates (Adam's maths in the same order); fused=True would be faster still but rounds
    # differently
    trainable = [p for p in agent.policy.parameters() if p.requires_grad]
    if agent.critic is not None:
        trainable += list(agent.critic.parameters())
    optimizer = torch.optim.Adam(trainable, lr=config.learning_rate, eps=1e-5,
                                 foreach=True)  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: max(1.0 - i / num_iterations, 0.0) if config.anneal_lr else 1.0
    )
    return optimizer, scheduler


def make_amp(config: PPOConfig, device: torch.device
             ) -> tuple[torch.amp.GradScaler, Callable[[], torch.autocast]]:  # fmt: skip
    """The gradient scaler (on for float16 on CUDA) and the autocast context of ``amp``."""
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=config.amp)

    return scaler, autocast


def make_reward(config: PPOConfig, device: torch.device, venv: Any = None) -> TrainerReward:
    """The reward weights (learned or the shaping's), their optimiser, normaliser and sums.

    With ``disc_coef > 0`` also the discriminator, on the real continuations of ``venv``'s
    windows.
    """
    shaping = config.shaping_object
    learned = config.learnable_terms if config.learn_weights else ()
    weights = RewardWeights(shaping.weight_vector, learned).to(device)
    weights_optimizer = torch.optim.Adam(weights.parameters(), lr=config.weights_lr)
    disc = None
    if config.disc_coef > 0:
        if venv is None:
            raise ValueError("disc_coef > 0 needs the env (make_reward(config, device, venv))")
        real = real_windows(venv, config.seq_len, config.prompt_steps, config.seed)
        if config.disc_kind == "energy":
            disc = EnergyWitness(real, config.steps_per_bar, config.bars_per_phrase,
                                 coef=config.disc_coef, replay=config.disc_replay,
                                 seed=config.seed, device=device)  # fmt: skip
        else:
            disc = FeatureDiscriminator(real, config.steps_per_bar, config.bars_per_phrase,
                                        coef=config.disc_coef, updates=config.disc_updates,
                                        replay=config.disc_replay, seed=config.seed,
                                        device=device)  # fmt: skip
    return TrainerReward(shaping, learned, weights, weights_optimizer,
                         RunningNormalizer(len(TERMS)), Episodes(config.num_envs),
                         disc)  # fmt: skip


def make_generators(config: PPOConfig, rank: int, device: torch.device
                    ) -> dict[str, torch.Generator]:  # fmt: skip
    """This rank's generators (actions, shuffling), derived from ``(seed, rank)``.

    Also seeds the global torch generator (dropout draws), which differs by rank after the
    model's initialisation.
    """
    seeds = np.random.SeedSequence([config.seed, rank]).generate_state(3)
    act_gen = torch.Generator(device=device).manual_seed(int(seeds[0]))
    shuffle_gen = torch.Generator().manual_seed(int(seeds[1]))
    torch.manual_seed(int(seeds[2]))
    return {"action": act_gen, "shuffle": shuffle_gen}


def claim_run(config: PPOConfig, agent: Agent, d: Dist, ckpt_path: Path,
              resumable: Sequence[str], added: Mapping[str, Any]
              ) -> dict[str, Any] | None:  # fmt: skip
    """The checkpoint to resume (checked against the run), then the run folder claimed.

    The resume is checked before ``config.json`` changes; rank 0 claims ``out``
    (:func:`~agents.training.runs.prepare_run_dir`) once the settings, the model and a resume
    are valid. ``resumable`` and ``added`` are the config fields a resume may change and those
    added since the checkpoint format (:func:`~agents.training.checkpoint.load_training_state`).
    Returns the checkpoint's state, or None for a fresh start.

    Rank 0 reads the checkpoint and sends it to the other ranks (with the error, when it is
    refused: every rank raises it), so that under DDP only rank 0's ``out`` needs it: the nodes
    of a multi-node run need no shared file system.
    """
    loaded: tuple[dict[str, Any] | None, Exception | None] = (None, None)
    if d.main and config.resume and ckpt_path.is_file():
        try:
            loaded = (load_training_state(
                ckpt_path, config=config.to_dict(),
                policy_config=dataclasses.asdict(agent.config), world_size=d.world_size,
                resumable=resumable, added=added,
            ), None)  # fmt: skip
        except Exception as exc:  # re-raised on every rank below
            loaded = (None, exc)
    state, error = broadcast_from_main(loaded, d)
    if error is not None:
        raise error
    if d.main:
        prepare_run_dir(Path(config.out), config.to_dict(), resume=config.resume,
                        force=config.force)  # fmt: skip
    barrier(d)
    return state


def open_logs(config: PPOConfig, d: Dist, global_step: int, num_iterations: int) -> RunLogs:
    """The run's logs (:class:`~agents.training.run_logs.RunLogs`).

    W&B when ``track``, rank 0's TensorBoard writer, the progress bar over the run's env steps,
    the takes and the HParams.
    """
    return RunLogs(config, d, global_step, num_iterations)


def cxx_compiler() -> str | None:
    """The C++ compiler inductor builds with on CPU, when it is installed; else None.

    Inductor (``torch.compile``) takes ``$CXX`` when it is set, a missing one included, else
    ``g++`` (``clang++`` on macOS), with no other fallback; ``compile=True`` needs it on CPU.
    """
    import shutil
    import sys

    name = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")
    return name if shutil.which(name) else None


def check_cxx(device: torch.device) -> None:
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


def compile_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(model)``, after :func:`check_cxx`."""
    check_cxx(device)
    return torch.compile(model)
