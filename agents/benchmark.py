"""The shaping benchmark: which reward shaping teaches which agent to drum like held-out data?

For every reward shaping x agent x seed, one run trains for a fixed budget of env steps on the
*training* split of the data and is judged on the *held-out* split by the shaping-independent
evaluation of :mod:`dataset.evaluation` (the reward never judges itself):

1. **Split.** The sequences (files) are split by a seeded permutation of their indices into a
   training and a held-out part (``heldout_fraction``), or by the ``split`` column of a Groove
   ``info.csv`` (``split_csv``: rows ``test`` are held out, every other file trains). Both parts
   are written as ``.npz`` folders under ``work/split`` so that every agent reads them by path.
2. **Baselines.** From the held-out split, ``2 * eval_episodes`` full windows of ``seq_len``
   steps (bar-aligned) are drawn; their continuations (the steps after the primer) give
   :func:`dataset.evaluation.compare_to_baselines`: the ceiling (real vs real, two halves of
   ``eval_episodes`` windows each) and the floors (uniform random, density-matched random,
   silence), and the *discriminative* families that the headline score averages. The spread of
   ceiling and floors is their standard deviation over ``baseline_splits`` random halvings.
3. **Evaluation** of a policy at ``env_steps``: :func:`agents.rollout.rollout_episodes` plays
   ``eval_episodes`` episodes of ``DrumCompose-v0`` on the held-out split, reset with
   ``eval_seed`` (the same primers and reference windows for every agent and every point), and
   the composed part of each canvas (after the primer) is scored with
   :func:`dataset.evaluation.score_sets` against the continuations of the episodes' own
   reference windows. Reported: the headline (mean overlapping area over the discriminative
   families), every family's OA, the mean raw ``song`` term (in [-1, 0]) and the mean return.
4. **Agents.** ``ppo`` (:func:`agents.ppo.train`), ``ppo+pretrain`` (:func:`agents.pretrain.
   pretrain` on the training split, once per seed, then PPO initialised from it with a KL
   penalty ``kl_coef`` towards it), ``sb3-ppo`` and ``sb3-a2c`` (Stable-Baselines3, set up as
   :func:`agents.sb3.train_baseline` does and trained in chunks of ``learn(...,
   reset_num_timesteps=False)`` so it can be evaluated between them), and ``random``: a player
   that hits each drum independently at its rate in the training split (no training, shaping
   independent: one cell per seed, shaping ``any``).
5. **Shapings.** The presets of :data:`drum_env.SHAPINGS` plus ``learned``: the custom PPO with
   ``learn_weights=True`` from ``hierarchical``'s weights. SB3 has no learned weights, so the
   ``learned`` x SB3 cells are skipped (``n/a`` in the tables). Opt-in rows (custom PPO only,
   SB3 ``n/a``; not in the default list):

   * ``tuned``: the ``shaping`` and ``weights`` of a ``best_config.json`` written by
     :mod:`agents.tune` (``tuned_config``, ``--tuned FILE``; giving the file adds the row).
     Only the reward weights are taken from it: every other setting is the other cells', so the
     row compares reward weights. The tuning run must use the benchmark's split settings (the
     same ``data``, ``split_csv`` or ``heldout_fraction`` and ``split_seed``): the tuner then
     trains and validates inside the benchmark's training split and never sees its held-out
     part. The file's path and weights are part of the settings ``resume`` checks.
   * ``hierarchical/batch`` and ``hierarchical/epoch``: ``hierarchical`` with the trainer's
     per-batch or per-epoch reward normalisation (:attr:`agents.ppo.PPOConfig.reward_norm`)
     instead of the env's running one (``<shaping>/<reward_norm>``). Opt-in because each
     adds a full row of custom PPO runs (about a sixth more runtime with every agent).

Learning curves: every run is evaluated at 0 env steps (the initial or pretrained policy), at
about ``eval_points`` evenly spaced points and at the end. The custom PPO is evaluated from its
checkpoints (``checkpoint_every`` is the evaluation interval; the callback of iteration ``i + 1``
reads the checkpoint of iteration ``i``), so the run itself is the plain :func:`agents.ppo.train`.

Outputs in ``out`` (default ``benchmarks/results``): ``shapings.csv`` (one row per shaping x
agent x seed x evaluation point, appended as runs finish), ``shapings.md`` (mean +- std over
seeds of the final scores, best per column in bold, ceiling and floors, the families, the command),
``shapings.png`` (learning curves and a bar chart) and ``shapings.json`` (everything). Runs,
checkpoints and the split live in ``work`` (default ``runs/benchmark``). With ``resume=True``
the cells whose final row is in the CSV are skipped (the config must match the one recorded in
``shapings.config.json``); rows of an unfinished cell are dropped and the cell runs again.

All runs train on the CPU with ``threads`` torch threads (default 1) and AMP off by default
(bf16 autocast is slower than float32 on CPUs without bf16 units).

>>> cfg = BenchmarkConfig.preset("smoke")
>>> cfg.agents, cfg.shapings, cfg.seeds
(('ppo', 'sb3-ppo', 'random'), ('hierarchical',), (0,))
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from agents.heldout import (
    FAMILIES,
    HeldoutConfig,
    Reference,
    Split,
    evaluate,
    heldout_dataset,
    write_split,
)
from agents.heldout import reference as reference_players
from agents.task import check_bool, check_int, check_number, check_path

__all__ = [
    "AGENTS",
    "SHAPING_NAMES",
    "DEFAULT_SHAPINGS",
    "CSV_COLUMNS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "run_benchmark",
]

AGENTS: tuple[str, ...] = ("ppo", "ppo+pretrain", "sb3-ppo", "sb3-a2c", "random")
"""Agent names, in table order."""
DEFAULT_SHAPINGS: tuple[str, ...] = (
    "sparse", "step", "bar", "hierarchical", "hierarchical-raw", "learned",
)  # fmt: skip
"""The shapings run by default: the presets of :data:`drum_env.SHAPINGS` and ``learned``."""
SHAPING_NAMES: tuple[str, ...] = (
    *DEFAULT_SHAPINGS, "tuned", "hierarchical/batch", "hierarchical/epoch",
)  # fmt: skip
"""Every shaping name, in table order: :data:`DEFAULT_SHAPINGS`, then the opt-in ``tuned``
(weights of a tuning run) and ``hierarchical/batch``, ``hierarchical/epoch`` (the trainer's
reward normalisation per batch or per epoch instead of the env's running one)."""
_SB3 = {"sb3-ppo": "ppo", "sb3-a2c": "a2c"}
# Shapings only the custom PPO has (learned weights, tuned weights, trainer-side normalisation).
_CUSTOM_ONLY = ("learned", "tuned", "hierarchical/batch", "hierarchical/epoch")
_PPO_AGENTS = ("ppo", "ppo+pretrain")
_ANY = "any"  # the shaping of the shaping-independent random agent

CSV_COLUMNS: tuple[str, ...] = (
    "shaping", "agent", "seed", "env_steps", "final", "headline", "song_raw", "episode_return",
    *(f"oa_{f}" for f in FAMILIES), "train_s", "eval_s", "wall_s",
)  # fmt: skip
"""Columns of ``shapings.csv``: ``final`` is 1 on a run's last evaluation; ``oa_<family>`` the
family's mean overlapping area (empty when the family has no feature for this data);
``train_s`` the training wall time up to that point (evaluations and pretraining excluded),
``eval_s`` the time of that evaluation, ``wall_s`` the time since the run started."""

# Throughput measured on the 2-core development machine (env steps / s, one torch thread),
# used only for the time estimate printed at the start.
_RATE = {"ppo": 380.0, "ppo+pretrain": 350.0, "sb3-ppo": 3000.0, "sb3-a2c": 4000.0}
_EVAL_S_PER_EPISODE = 0.015
_PRETRAIN_S_PER_STEP = 0.05

_GROOVE_ATTRIBUTION = (
    "Data: Groove MIDI Dataset (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019; Google "
    "Magenta), https://magenta.tensorflow.org/datasets/groove, licensed CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/)."
)


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class BenchmarkConfig(HeldoutConfig):
    """One benchmark: the grid, the budgets, the data and where to write. Frozen, validated.

    The task and the held-out evaluation settings come from
    :class:`~agents.heldout.HeldoutConfig`; the task's ``shaping`` (and ``weights``) is the
    reward under which the players that do not train (``random``) report their return. Build
    one by hand, or from a budget with :meth:`preset`.
    """

    shapings: tuple[str, ...] = DEFAULT_SHAPINGS
    """Shapings to train with, names of :data:`SHAPING_NAMES` (default
    :data:`DEFAULT_SHAPINGS`); ``tuned`` needs ``tuned_config``, which adds it."""
    tuned_config: str | None = None
    """A ``best_config.json`` of :mod:`agents.tune` (PPOConfig fields): its ``shaping`` and
    ``weights`` (only those) make the ``tuned`` row. Tune with the benchmark's split settings
    (same data, ``split_csv`` / ``heldout_fraction``, ``split_seed``) so that the held-out data
    stay unseen."""
    agents: tuple[str, ...] = AGENTS
    """Agents, names of :data:`AGENTS`."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the runs; every cell runs once per seed."""
    total_timesteps: int = 16_384
    """Env steps per run (the custom PPO rounds it down to whole iterations of
    ``ppo_num_envs * ppo_num_steps``, SB3 up to whole rollouts of ``sb3_num_envs *
    sb3_n_steps``)."""
    eval_points: int = 4
    """Evaluations during a run, evenly spaced (besides the one at 0 steps; the last is the
    final one)."""
    ppo_num_envs: int = 16
    """Sub-envs of the custom PPO."""
    ppo_num_steps: int = 32
    """Steps per sub-env per custom PPO rollout."""
    kl_coef: float = 0.1
    """KL penalty towards the pretrained policy for ``ppo+pretrain`` (>= 0)."""
    pretrain_steps: int = 300
    """Optimiser steps of pretraining (batch 32) for ``ppo+pretrain``, once per seed."""
    sb3_num_envs: int = 8
    """Envs of SB3's DummyVecEnv."""
    sb3_num_steps: int = 64
    """SB3 rollout length per env (SB3's ``n_steps``)."""
    amp: bool = False
    """Autocast (bf16 on CPU) in the custom PPO and pretraining."""
    threads: int = 1
    """torch threads during the benchmark."""
    out: str = "benchmarks/results"
    """Folder of ``shapings.{csv,md,png,json}``."""
    work: str = "runs/benchmark"
    """Folder of the split, the pretrained policies and every run's checkpoints."""
    resume: bool = False
    """Keep the finished cells of ``out/shapings.csv`` and run only the others."""
    progress: bool = True
    """Show a progress bar over the runs and one line per finished run."""
    command: str | None = None
    """The command line recorded in the report (``None``: the config is shown instead)."""

    def __post_init__(self) -> None:
        self._check_task()
        self._check_heldout()
        for name in ("shapings", "agents", "seeds"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise ValueError(f"{name} must be a sequence, got {value!r}")
            object.__setattr__(self, name, tuple(value))
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ValueError(f"{name} has duplicates: {getattr(self, name)!r}")
        bad = [s for s in self.shapings if s not in SHAPING_NAMES]
        if bad:
            raise ValueError(f"shapings: unknown {bad}; choose from {list(SHAPING_NAMES)}")
        bad = [a for a in self.agents if a not in AGENTS]
        if bad:
            raise ValueError(f"agents: unknown {bad}; choose from {list(AGENTS)}")
        for s in self.seeds:
            check_int("seeds", s, 0)
        for name in ("total_timesteps", "eval_points", "ppo_num_envs", "ppo_num_steps",
                     "pretrain_steps", "sb3_num_envs", "sb3_num_steps", "threads"):
            check_int(name, getattr(self, name), 1)  # fmt: skip
        check_number("kl_coef", self.kl_coef, 0.0)
        for name in ("amp", "resume", "progress"):
            check_bool(name, getattr(self, name))
        if any(a in _PPO_AGENTS for a in self.agents):
            batch = self.ppo_num_envs * self.ppo_num_steps
            if self.total_timesteps < batch:
                raise ValueError(
                    f"total_timesteps={self.total_timesteps} is less than one custom PPO "
                    f"iteration (ppo_num_envs * ppo_num_steps = {batch})"
                )
        check_path(self, "tuned_config")
        if self.command is not None and not isinstance(self.command, str):
            raise ValueError(f"command must be a string or None, got {self.command!r}")
        check_path(self, "out", optional=False)
        check_path(self, "work", optional=False)
        if self.tuned_config is not None:
            self.tuned_reward()  # readable and valid, or a ValueError naming tuned_config
            if "tuned" not in self.shapings:
                object.__setattr__(self, "shapings", (*self.shapings, "tuned"))
        elif "tuned" in self.shapings:
            raise ValueError("shapings: 'tuned' needs tuned_config (--tuned FILE), a "
                             "best_config.json of drum-env tune")  # fmt: skip

    def tuned_reward(self) -> tuple[str, dict[str, float] | None]:
        """The ``(shaping, weights)`` of ``tuned_config`` (read and validated now).

        Raises:
            ValueError: no ``tuned_config``, or a file that cannot be read or holds no valid
                ``shaping`` / ``weights`` (the message names ``tuned_config`` and the file).
        """
        if self.tuned_config is None:
            raise ValueError("tuned_config is not set")
        path = self.tuned_config
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"tuned_config: cannot read {path!r} ({exc})") from exc
        if not isinstance(values, dict) or "shaping" not in values:
            raise ValueError(f"tuned_config: {path!r} holds no PPO config with a 'shaping' "
                             "(a best_config.json of drum-env tune)")  # fmt: skip
        from agents.ppo import PPOConfig

        try:  # PPOConfig's own checks of the shaping name and the weights
            cfg = PPOConfig(shaping=values["shaping"], weights=values.get("weights"))
        except ValueError as exc:
            raise ValueError(f"tuned_config: {path!r}: {exc}") from exc
        return cfg.shaping, cfg.weight_mapping

    def reward_setup(self, shaping: str) -> tuple[str, dict[str, float] | None, str]:
        """The env shaping, weights and :attr:`PPOConfig.reward_norm` of a benchmark shaping.

        ``learned`` uses ``hierarchical``; the random player's ``any`` the task's ``shaping``
        and ``weights``; ``tuned`` the tuned file's shaping and weights; ``<preset>/<norm>``
        the preset with that normalisation.
        """
        if shaping == "tuned":
            name, weights = self.tuned_reward()
            return name, weights, "running"
        if shaping == _ANY:
            return self.shaping, self.weight_mapping, "running"
        if "/" in shaping:
            name, norm = shaping.split("/", 1)
            return name, None, norm
        return ("hierarchical" if shaping == "learned" else shaping), None, "running"

    @property
    def prompt_steps(self) -> int:
        """Steps of primer: ``prompt_bars * steps_per_bar``."""
        return self.prompt_bars * self.steps_per_bar

    @property
    def ppo_batch(self) -> int:
        """Env steps per custom PPO iteration: ``ppo_num_envs * ppo_num_steps``."""
        return self.ppo_num_envs * self.ppo_num_steps

    @property
    def sb3_batch(self) -> int:
        """Env steps per SB3 rollout: ``sb3_num_envs * sb3_n_steps``."""
        return self.sb3_num_envs * self.sb3_num_steps

    def cells(self) -> list[tuple[str, str, int]]:
        """The ``(shaping, agent, seed)`` runs, seed by seed.

        ``random`` runs once per seed, with shaping ``"any"``; ``learned``, ``tuned`` and the
        trainer-normalised shapings x SB3 are left out.
        """
        out = []
        for seed in self.seeds:
            for shaping in self.shapings:
                for agent in self.agents:
                    if agent == "random" or (agent in _SB3 and shaping in _CUSTOM_ONLY):
                        continue
                    out.append((shaping, agent, seed))
            if "random" in self.agents:
                out.append((_ANY, "random", seed))
        return out

    def estimated_seconds(self, cells: Sequence[tuple[str, str, int]] | None = None) -> float:
        """A rough wall-time estimate of ``cells`` (default: all), in seconds.

        From the rates measured on the development machine (2 CPU cores, one torch thread).
        """
        cells = self.cells() if cells is None else cells
        total = 0.0
        evals = self.eval_points + 1
        for _, agent, _ in cells:
            if agent == "random":
                total += self.eval_episodes * _EVAL_S_PER_EPISODE
                continue
            total += self.total_timesteps / _RATE[agent]
            total += evals * self.eval_episodes * _EVAL_S_PER_EPISODE
        if "ppo+pretrain" in {a for _, a, _ in cells}:
            total += len({s for _, a, s in cells if a == "ppo+pretrain"}) * (
                self.pretrain_steps * _PRETRAIN_S_PER_STEP
            )
        return total

    def result_fields(self) -> dict[str, Any]:
        """The fields that decide the numbers (a resumed run must match them)."""
        skip = {"out", "work", "resume", "progress", "command", "seeds", "shapings", "agents"}
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        if self.tuned_config is not None:  # absent otherwise: earlier records stay resumable
            shaping, weights = self.tuned_reward()
            fields["tuned_reward"] = {"shaping": shaping, "weights": weights}
        return fields

    @classmethod
    def preset(cls, budget: str = "default", **changes: Any) -> BenchmarkConfig:
        """A config for a named budget, with ``changes`` on top.

        * ``"smoke"``: one shaping, PPO and SB3 PPO (plus the random player), one seed, one
          PPO iteration; seconds (the test suite runs it).
        * ``"quick"``: every default shaping and agent, 2 seeds, 4,096 env steps per run; under
          15 minutes on 2 CPU cores.
        * ``"default"``: every default shaping and agent, 3 seeds, 16,384 env steps per run; about
          30-40 minutes on 2 CPU cores (the README's table).

        Args:
            budget: ``"smoke"``, ``"quick"`` or ``"default"``.
            **changes: field values that override the preset's.

        Returns:
            BenchmarkConfig.
        """
        presets: dict[str, dict[str, Any]] = {
            "smoke": dict(
                shapings=("hierarchical",), agents=("ppo", "sb3-ppo", "random"), seeds=(0,),
                total_timesteps=1024, eval_points=1, eval_episodes=16, baseline_splits=2,
                sb3_num_envs=4, sb3_num_steps=32, pretrain_steps=5, ppo_num_envs=16,
                ppo_num_steps=32,
            ),
            "quick": dict(
                seeds=(0, 1), total_timesteps=4096, eval_points=2, eval_episodes=32,
                pretrain_steps=100,
            ),
            "default": {},
        }  # fmt: skip
        if budget not in presets:
            raise ValueError(f"budget must be one of {list(presets)}, got {budget!r}")
        return cls(**{**presets[budget], **changes})


# ----------------------------------------------------------------------------- runs


class _Context(NamedTuple):
    config: BenchmarkConfig
    split: Split
    heldout: Any  # CompleteHierarchicalDrumDataset of the held-out split (the eval env's data)
    reference: Reference
    train_rates: np.ndarray  # float64 (drums,): hits per step of each drum in the train split
    pretrained: dict[int, str]  # seed -> pretrained policy path (filled lazily)
    notes: dict[str, Any]


def _env_kwargs(config: BenchmarkConfig, data: Any, shaping: str) -> dict[str, Any]:
    """The env arguments of a benchmark shaping (its preset, weights) on ``data``."""
    name, weights, _ = config.reward_setup(shaping)
    return config.env_kwargs(data, shaping=name, weights=weights)


def _run_dir(config: BenchmarkConfig, shaping: str, agent: str, seed: int) -> Path:
    return Path(config.work) / "runs" / shaping.replace("/", "_") / agent / f"seed{seed}"


class _Recorder:
    """Collects a run's evaluation rows with their timings."""

    def __init__(self, ctx: _Context, shaping: str, agent: str, seed: int) -> None:
        self.ctx, self.key = ctx, {"shaping": shaping, "agent": agent, "seed": seed}
        self.env_kwargs = _env_kwargs(ctx.config, ctx.heldout, shaping)
        self.rows: list[dict[str, Any]] = []
        self.start = time.perf_counter()
        self.eval_total = 0.0

    def elapsed_training(self) -> float:
        return time.perf_counter() - self.start - self.eval_total

    def evaluate(self, policy: Callable, env_steps: int, train_s: float | None = None) -> None:
        t = time.perf_counter()
        scores = evaluate(policy, self.ctx.config, self.env_kwargs, self.ctx.reference)
        spent = time.perf_counter() - t
        train = self.elapsed_training() if train_s is None else train_s
        self.eval_total += spent
        self.rows.append({
            **self.key, "env_steps": int(env_steps), "final": 0, **scores,
            "train_s": train, "eval_s": spent, "wall_s": time.perf_counter() - self.start,
        })  # fmt: skip

    def finish(self) -> list[dict[str, Any]]:
        self.rows[-1]["final"] = 1
        return self.rows


def _pretrained_policy(ctx: _Context, seed: int) -> str:
    """Pretrain on the training split once per seed (reused by every shaping)."""
    if seed in ctx.pretrained:
        return ctx.pretrained[seed]
    from agents.pretrain import PretrainConfig, pretrain

    c = ctx.config
    out = Path(c.work) / "pretrain" / f"seed{seed}"
    path = out / "policy.pt"
    if not (c.resume and path.is_file()):
        t = time.perf_counter()
        result = pretrain(PretrainConfig(
            **{**c.task_fields(), "data": str(ctx.split.train_dir)}, epochs=10_000,
            max_steps=c.pretrain_steps, seed=seed, amp=c.amp, device="cpu", out=str(out),
            force=True, progress=False,
        ))  # fmt: skip
        ctx.notes.setdefault("pretrain", {})[str(seed)] = {
            "steps": result.steps, "final_loss": result.final_loss,
            "wall_s": time.perf_counter() - t,
        }  # fmt: skip
    ctx.pretrained[seed] = str(path)
    return str(path)


def _run_ppo(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    import gymnasium as gym
    import torch

    from agents.generate import load_any_policy, policy_fn
    from agents.policy import DrumPolicy, PolicyConfig, load_policy
    from agents.ppo import PPOConfig, train

    c = ctx.config
    rec = _Recorder(ctx, shaping, agent, seed)
    pretrained = _pretrained_policy(ctx, seed) if agent == "ppo+pretrain" else None
    rec.start = time.perf_counter()  # pretraining is shared by the seed's runs: not counted
    iterations = c.total_timesteps // c.ppo_batch
    every = max(1, iterations // c.eval_points)
    env_shaping, weights, reward_norm = c.reward_setup(shaping)
    cfg = PPOConfig(
        **{**c.task_fields(), "data": str(ctx.split.train_dir), "shaping": env_shaping,
           "weights": weights}, reward_norm=reward_norm, learn_weights=shaping == "learned",
        num_envs=c.ppo_num_envs, num_steps=c.ppo_num_steps, total_timesteps=c.total_timesteps,
        kl_coef=c.kl_coef if pretrained else 0.0, pretrained=pretrained, amp=c.amp,
        device="cpu", seed=seed, out=str(_run_dir(c, shaping, agent, seed)),
        checkpoint_every=every, force=True, progress=False, tensorboard=False,
    )  # fmt: skip

    # env step 0: the pretrained policy, or the initialisation train() makes (same seed)
    if pretrained is not None:
        initial = load_policy(pretrained)
    else:
        env = gym.make("DrumCompose-v0", **cfg.env_kwargs())
        pcfg = PolicyConfig.from_env_config(
            env.unwrapped.config, d_model=cfg.d_model, n_layers=cfg.n_layers,
            n_heads=cfg.n_heads, dropout=cfg.dropout,
        )  # fmt: skip
        env.close()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            initial = DrumPolicy(pcfg)
    rec.evaluate(policy_fn(initial, seed=seed), 0, 0.0)
    rec.start = time.perf_counter() - rec.eval_total  # the run's clock starts with training

    trained_s: dict[int, float] = {}
    checkpoint = Path(cfg.out) / "checkpoint.pt"

    def callback(metrics: dict[str, float]) -> bool:
        i = int(metrics["iteration"])
        trained_s[i] = rec.elapsed_training()
        done = i - 1  # the checkpoint on disk now is the one of iteration i - 1
        if done >= 1 and done % every == 0 and done < iterations:
            policy = load_any_policy(checkpoint)
            rec.evaluate(policy_fn(policy, seed=seed), done * c.ppo_batch, trained_s[done])
        return True

    result = train(cfg, callback)
    rec.evaluate(policy_fn(result.policy.cpu(), seed=seed), result.global_step)
    if shaping == "learned" and result.history:
        weights = {k[len("weights/"):]: v for k, v in result.history[-1].items()
                   if k.startswith("weights/")}  # fmt: skip
        ctx.notes.setdefault("learned_weights", {})[f"{agent}/seed{seed}"] = weights
    return rec.finish()


def _run_sb3(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    """SB3 as :func:`agents.sb3.train_baseline` sets it up, trained in evaluated chunks."""
    from agents.sb3 import BaselineConfig, build_model, sb3_policy_fn

    c = ctx.config
    rec = _Recorder(ctx, shaping, agent, seed)
    env_shaping, weights, _ = c.reward_setup(shaping)
    base = BaselineConfig(
        **{**c.task_fields(), "data": str(ctx.split.train_dir), "shaping": env_shaping,
           "weights": weights}, algo=_SB3[agent], num_envs=c.sb3_num_envs,
        num_steps=c.sb3_num_steps, total_timesteps=c.total_timesteps, seed=seed, eval_every=0,
        out=str(_run_dir(c, shaping, agent, seed)), tensorboard=False,
    )  # fmt: skip
    model, venv = build_model(base)
    rec.evaluate(sb3_policy_fn(model), 0, 0.0)
    rec.start = time.perf_counter() - rec.eval_total
    batch = c.sb3_batch
    targets = sorted({max(batch, (k * c.total_timesteps // c.eval_points) // batch * batch)
                      for k in range(1, c.eval_points)} | {c.total_timesteps})  # fmt: skip
    for target in targets:
        if target > model.num_timesteps:
            model.learn(target - model.num_timesteps, reset_num_timesteps=False)
            rec.evaluate(sb3_policy_fn(model), model.num_timesteps)
    venv.close()
    return rec.finish()


def _run_random(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    from agents.rollout import random_policy

    rec = _Recorder(ctx, shaping, agent, seed)
    rec.evaluate(random_policy(len(ctx.train_rates), ctx.train_rates, seed), 0, 0.0)
    return rec.finish()


def _run_cell(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    if agent in _PPO_AGENTS:
        return _run_ppo(ctx, shaping, agent, seed)
    if agent in _SB3:
        return _run_sb3(ctx, shaping, agent, seed)
    return _run_random(ctx, shaping, agent, seed)


# ----------------------------------------------------------------------------- the csv


def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k in CSV_COLUMNS:
                v = raw.get(k, "")
                if k in ("shaping", "agent"):
                    row[k] = v
                elif k in ("seed", "env_steps", "final"):
                    row[k] = int(v)
                else:
                    row[k] = float(v) if v not in ("", None) else math.nan
            rows.append(row)
    return rows


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], append: bool) -> None:
    new = not append or not path.is_file()
    with path.open("w" if new else "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(row[k], float) and math.isnan(row[k])
                                 else row[k]) for k in CSV_COLUMNS})  # fmt: skip
        fh.flush()


def _finished(rows: Sequence[Mapping[str, Any]]) -> set[tuple[str, str, int]]:
    return {(r["shaping"], r["agent"], r["seed"]) for r in rows if r["final"]}


# ----------------------------------------------------------------------------- reports


class BenchmarkResult(NamedTuple):
    """What :func:`run_benchmark` wrote and found."""

    csv_path: Path
    md_path: Path
    png_path: Path
    json_path: Path
    rows: list[dict[str, Any]]
    """Every row of ``shapings.csv`` (resumed rows included), :data:`CSV_COLUMNS` keys."""
    summary: dict[str, dict[str, dict[str, float]]]
    """shaping -> agent -> ``{"headline", "headline_std", "song_raw", "song_raw_std", "seeds",
    "train_s", "steps_per_s"}`` over the seeds' final rows."""
    references: dict[str, tuple[float, float]]
    """``ceiling``, ``uniform_random``, ``density_random``, ``silence`` -> headline (mean, std
    over the baseline halvings)."""
    discriminative: tuple[str, ...]
    """Families the headline averages."""
    ran: int
    """Runs done by this call (the others were resumed)."""
    wall_s: float
    """Wall time of this call."""


def _summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["final"]:
            groups.setdefault((r["shaping"], r["agent"]), []).append(r)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (shaping, agent), rs in groups.items():
        cell: dict[str, float] = {"seeds": float(len(rs))}
        for key in ("headline", "song_raw", "episode_return", *(f"oa_{f}" for f in FAMILIES)):
            values = np.array([r[key] for r in rs], dtype=np.float64)
            ok = values[np.isfinite(values)]
            cell[key] = float(ok.mean()) if len(ok) else math.nan
            cell[f"{key}_std"] = float(ok.std()) if len(ok) else math.nan
        cell["train_s"] = float(np.mean([r["train_s"] for r in rs]))
        cell["env_steps"] = float(np.mean([r["env_steps"] for r in rs]))
        cell["steps_per_s"] = cell["env_steps"] / cell["train_s"] if cell["train_s"] > 0 else 0.0
        out.setdefault(shaping, {})[agent] = cell
    return out


def _curves(
    rows: Sequence[Mapping[str, Any]], agent: str
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Learning curves of one agent: shaping -> (env_steps, mean headline, std over seeds)."""
    by: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r["agent"] == agent:
            by.setdefault(r["shaping"], {}).setdefault(r["env_steps"], []).append(r["headline"])
    out = {}
    for shaping, points in by.items():
        steps = np.array(sorted(points))
        values = [np.array(points[s]) for s in steps]
        out[shaping] = (steps, np.array([v.mean() for v in values]),
                        np.array([v.std() for v in values]))  # fmt: skip
    return out


def _fmt(mean: float, std: float, seeds: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "-"
    text = f"{mean:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if seeds > 1 else "")


def _table(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    shapings: Sequence[str],
    agents: Sequence[str],
    key: str,
) -> list[str]:
    """A markdown table: rows shapings, columns agents, the best mean per column in bold."""
    lines = ["| shaping | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    best = {}
    for a in agents:
        means = [summary[s][a][key] for s in shapings if a in summary.get(s, {})]
        means = [m for m in means if math.isfinite(m)]
        best[a] = max(means) if means else None
    for s in shapings:
        cells = []
        for a in agents:
            if a in _SB3 and s in _CUSTOM_ONLY:
                cells.append("n/a")
                continue
            c = summary.get(s, {}).get(a)
            if c is None:
                cells.append("-")
                continue
            text = _fmt(c[key], c[f"{key}_std"], c["seeds"])
            cells.append(f"**{text}**" if best[a] is not None and c[key] == best[a] else text)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def _notes(config: BenchmarkConfig, shapings: Sequence[str]) -> list[str]:
    """The report's notes on the opt-in rows (``tuned``, reward normalisation)."""
    lines = ["Notes:", ""]
    if "tuned" in shapings and config.tuned_config is not None:
        name, weights = config.tuned_reward()
        shown = ", ".join(f"{k} {v:g}" for k, v in (weights or {}).items()) or "its own"
        lines.append(f"* `tuned`: shaping `{name}` with the weights of `{config.tuned_config}` "
                     f"({shown}); every other setting as the other rows. The tuning run must "
                     "use this benchmark's split settings (data, split_csv or heldout_fraction, "
                     "split_seed) so that the held-out data stay unseen.")  # fmt: skip
    norms = [s for s in shapings if "/" in s]
    if norms:
        lines.append("* " + ", ".join(f"`{s}`" for s in norms) + ": the custom PPO normalises "
                     "each reward term over its rollout batch (`batch`) or with statistics "
                     "frozen during an iteration (`epoch`) instead of the env's running "
                     "normaliser (the other rows).")  # fmt: skip
    lines.append("* The rows `hierarchical/batch` and `hierarchical/epoch` (reward normalisation "
                 "per batch / per epoch) and `tuned` are opt-in: `--shapings ... "
                 "hierarchical/batch hierarchical/epoch`, `--tuned FILE`; each adds a row of "
                 "custom PPO runs, so they are not in the default list.")  # fmt: skip
    return [*lines, ""]


def _markdown(
    config: BenchmarkConfig,
    ctx_info: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> str:
    ref = ctx_info["references"]
    shapings = [s for s in SHAPING_NAMES if s in summary]
    agents = [a for a in AGENTS if a != "random" and any(a in summary[s] for s in summary)]
    disc = ctx_info["discriminative"]
    rest = [f for f in ctx_info["families"] if f not in disc]
    lines = [
        "# Reward shapings x agents on held-out drums",
        "",
        f"Made by: `{ctx_info['command']}`",
        "",
        f"Data: {ctx_info['data']}; split: {ctx_info['train_sequences']} training and "
        f"{ctx_info['heldout_sequences']} held-out sequences ({ctx_info['split']}). Episodes: "
        f"{config.seq_len} steps ({config.prompt_bars} bar primer from the held-out split). "
        f"Budget: {config.total_timesteps:,} env steps per run, seeds "
        f"{', '.join(str(s) for s in sorted({r['seed'] for r in rows}))}; "
        f"{config.eval_episodes} evaluation episodes.",
        "",
        "Score: **headline** = mean overlapping area (OA) between the feature distributions "
        "of the composed part and of the held-out reference continuations, over the "
        f"discriminative families: {', '.join(disc)}"
        + (f" (reported but not averaged: {', '.join(rest)})" if rest else "")
        + ". 1 = indistinguishable from real; higher is better.",
        "",
        "## Final headline score (mean ± std over seeds; best per column in **bold**)",
        "",
        *_table(summary, shapings, agents, "headline"),
        "",
    ]
    custom = [s for s in shapings if s in _CUSTOM_ONLY]
    if custom and any(a in _SB3 for a in agents):
        lines += [", ".join(f"`{s}`" for s in custom) + " x SB3: not applicable (learned "
                  "weights, tuned weights and the reward normalisation per batch / epoch are "
                  "part of the custom trainer); those runs are skipped.", ""]  # fmt: skip
    lines += _notes(config, shapings)
    lines += [
        "## Final song term (raw, in [-1, 0]; 0 = the song features match; higher is better)",
        "",
        *_table(summary, shapings, agents, "song_raw"),
        "",
        "## References (shaping-independent)",
        "",
        "| player | headline | song term |",
        "|---|---:|---:|",
    ]
    rnd = summary.get(_ANY, {}).get("random")
    if rnd is not None:
        lines.append(
            "| random agent (each drum at its training-split rate, through the env) | "
            f"{_fmt(rnd['headline'], rnd['headline_std'], rnd['seeds'])} | "
            f"{_fmt(rnd['song_raw'], rnd['song_raw_std'], rnd['seeds'])} |"
        )
    names = {"ceiling": "ceiling: real vs real (± spread over halvings)",
             "uniform_random": "floor: uniform random", "density_random":
             "floor: density-matched random", "silence": "floor: silence"}  # fmt: skip
    for key, label in names.items():
        mean, std = ref[key]
        lines.append(f"| {label} | {mean:.3f} ± {std:.3f} | - |")
    lines += [
        "",
        f"Ceiling and floors: {ctx_info['baseline_windows']} held-out windows (continuations), "
        "split in two halves.",
        "",
        "## Per-family OA (final, mean over seeds)",
        "",
        "| shaping | agent | " + " | ".join(ctx_info["families"]) + " |",
        "|---|---|" + "---:|" * len(ctx_info["families"]),
    ]
    for s in [*shapings, _ANY]:
        for a in AGENTS:
            c = summary.get(s, {}).get(a)
            if c is not None:
                vals = " | ".join(_fmt(c[f"oa_{f}"], 0, 1, 2) for f in ctx_info["families"])
                lines.append(f"| {s} | {a} | {vals} |")
    lines += ["", "## Time", "", "| agent | mean train s per run | env steps / s |",
              "|---|---:|---:|"]  # fmt: skip
    for a in agents:
        cells = [summary[s][a] for s in summary if a in summary[s]]
        t = float(np.mean([c["train_s"] for c in cells]))
        sps = float(np.mean([c["steps_per_s"] for c in cells]))
        lines.append(f"| {a} | {t:.1f} | {sps:,.0f} |")
    total = sum(r["wall_s"] for r in rows if r["final"])
    lines += ["", f"Total wall time of the runs: {total:,.0f} s (evaluations included; "
              "pretraining excluded)."]  # fmt: skip
    if config.data and "groove" in config.data.lower():
        lines += ["", _GROOVE_ATTRIBUTION]
    return "\n".join(lines) + "\n"


def _plot(
    path: Path,
    config: BenchmarkConfig,
    ctx_info: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> None:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("the benchmark plot needs matplotlib: pip install drum-env") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = ctx_info["references"]
    shapings = [s for s in SHAPING_NAMES if s in summary]
    agents = [a for a in AGENTS if a != "random" and any(a in summary[s] for s in summary)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.5))
    curve_agent = next((a for a in ("ppo", "ppo+pretrain", "sb3-ppo", "sb3-a2c")
                        if a in agents), None)  # fmt: skip
    styles = {"ceiling": ("tab:green", "-"), "density_random": ("tab:gray", "--"),
              "uniform_random": ("tab:red", ":"), "silence": ("black", "-.")}  # fmt: skip

    def references(ax: Any) -> None:
        for key, (color, ls) in styles.items():
            ax.axhline(ref[key][0], color=color, ls=ls, lw=1, label=key.replace("_", " "))

    if curve_agent is not None:
        for shaping, (steps, mean, std) in _curves(rows, curve_agent).items():
            line = left.plot(steps, mean, marker="o", ms=3, label=shaping)[0]
            left.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    references(left)
    left.set_xlabel("env steps")
    left.set_ylabel("headline score (held-out)")
    left.set_title(f"learning curves: {curve_agent or '-'} (mean ± std over seeds)")
    left.set_ylim(0, 1)
    left.legend(fontsize=7, ncol=2)

    groups = [*shapings, _ANY] if _ANY in summary else shapings
    width = 0.8 / max(1, len(agents))
    for k, a in enumerate(agents):
        xs, ys, es = [], [], []
        for g, s in enumerate(shapings):
            c = summary.get(s, {}).get(a)
            if c is not None:
                xs.append(g + (k - (len(agents) - 1) / 2) * width)
                ys.append(c["headline"])
                es.append(c["headline_std"])
        right.bar(xs, ys, width, yerr=es, capsize=2, label=a)
    if _ANY in summary:
        c = summary[_ANY]["random"]
        right.bar([len(shapings)], [c["headline"]], width, yerr=[c["headline_std"]], capsize=2,
                  color="tab:brown", label="random agent")  # fmt: skip
    references(right)
    right.set_xticks(range(len(groups)))
    right.set_xticklabels(["random" if g == _ANY else g for g in groups], rotation=20)
    right.set_ylabel("final headline score")
    right.set_ylim(0, 1)
    right.set_title(f"final score, {config.total_timesteps:,} env steps per run")
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _write_reports(
    config: BenchmarkConfig,
    ctx_info: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    notes: Mapping[str, Any],
    plot: bool,
) -> dict[str, dict[str, dict[str, float]]]:
    out = Path(config.out)
    summary = _summarise(rows)
    if not summary:
        return summary
    md = out / "shapings.md"
    md.write_text(_markdown(config, ctx_info, rows, summary), encoding="utf-8")
    payload = {
        "config": dataclasses.asdict(config), **ctx_info, "summary": summary, "rows": list(rows),
        "notes": dict(notes),
    }  # fmt: skip
    (out / "shapings.json").write_text(
        json.dumps(payload, indent=1, default=_json_default, allow_nan=True), encoding="utf-8"
    )
    if plot:
        _plot(out / "shapings.png", config, ctx_info, rows, summary)
    return summary


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ----------------------------------------------------------------------------- driver


def _check_resume(config: BenchmarkConfig, path: Path) -> None:
    if not path.is_file():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    mine = json.loads(json.dumps(config.result_fields(), default=_json_default))
    diffs = [f"{k} (recorded {saved.get(k)!r}, now {v!r})" for k, v in mine.items()
             if saved.get(k) != v]  # fmt: skip
    if diffs:
        raise ValueError(
            f"resume: {path} was written by a benchmark with other settings; differing "
            "fields: " + ", ".join(diffs) + " (run without --resume to start over)"
        )


def run_benchmark(config: BenchmarkConfig) -> BenchmarkResult:
    """Run every cell of ``config`` (skipping finished ones when resuming) and write reports.

    Args:
        config: the benchmark.

    Returns:
        BenchmarkResult.

    Raises:
        ValueError: bad data or split (the message says what), or ``resume`` with settings
            that differ from the recorded ones.
    """
    with warnings.catch_warnings():
        # every env of every run would repeat the data's warnings (short sequences): show
        # each message once
        seen: set[str] = set()
        show = warnings.showwarning

        def show_once(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            if str(message) not in seen:
                seen.add(str(message))
                show(message, category, *args, **kwargs)

        warnings.showwarning = show_once
        return _run_benchmark(config)


def _run_benchmark(config: BenchmarkConfig) -> BenchmarkResult:
    import torch
    from tqdm.auto import tqdm

    from dataset.metrics import as_hits

    t_start = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(config.work).mkdir(parents=True, exist_ok=True)
    csv_path, config_path = out / "shapings.csv", out / "shapings.config.json"
    if config.resume:
        _check_resume(config, config_path)
    config_path.write_text(
        json.dumps(config.result_fields(), indent=1, default=_json_default), encoding="utf-8"
    )
    rows = _read_csv(csv_path) if config.resume else []
    done = _finished(rows)
    rows = [r for r in rows if (r["shaping"], r["agent"], r["seed"]) in done]  # drop unfinished
    _write_csv(csv_path, rows, append=False)

    split = write_split(config, config.work)
    heldout = heldout_dataset(config, split.heldout_dir)
    train_ds = heldout_dataset(config, split.train_dir)
    hits = sum(as_hits(s).sum(axis=0) for s in train_ds.sequences)
    rates = np.asarray(hits, dtype=np.float64) / float(sum(len(s) for s in train_ds.sequences))
    reference = reference_players(config, heldout)
    ctx = _Context(config, split, heldout, reference, rates, {}, {})

    from dataset.evaluation import FAMILIES as EVAL_FAMILIES

    assert tuple(EVAL_FAMILIES) == FAMILIES, "CSV columns out of date with dataset.evaluation"
    ctx_info = {
        "command": config.command or f"run_benchmark({config!r})",
        "data": split.source,
        "split": (f"leave players out: {', '.join(config.heldout_players)} held out"
                  if config.heldout_players else f"by {config.split_csv}" if config.split_csv
                  else f"seeded random split, {config.heldout_fraction:.0%} held out"),
        "train_sequences": len(split.train_names), "heldout_sequences": len(split.heldout_names),
        "heldout_names": split.heldout_names,
        "baseline_windows": reference.windows, "heldout_windows": reference.heldout_windows,
        "references": reference.headline,
        "reference_families": {
            name: getattr(reference.baselines, name).families
            for name in ("real_vs_real", "uniform_random", "density_random", "silence")
        },
        "ceiling_std": reference.baselines.real_vs_real_std,
        "discriminative": list(reference.baselines.discriminative),
        "families": list(reference.baselines.real_vs_real.families),
        "train_rates": rates.tolist(),
    }  # fmt: skip

    todo = [cell for cell in config.cells() if cell not in done]
    est = config.estimated_seconds(todo)
    say = tqdm.write if config.progress else (lambda *_: None)
    say(
        f"benchmark: {len(todo)} run(s) to do ({len(done)} resumed), "
        f"{config.total_timesteps:,} env steps each; estimated {est / 60:.1f} min on 2 CPU "
        f"cores (ceiling {reference.headline['ceiling'][0]:.3f}, density-matched floor "
        f"{reference.headline['density_random'][0]:.3f})"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    ran = 0
    try:
        bar = tqdm(total=len(todo), unit="run", disable=not config.progress, dynamic_ncols=True)
        for shaping, agent, seed in todo:
            bar.set_description(f"{shaping}/{agent}/seed{seed}")
            new = _run_cell(ctx, shaping, agent, seed)
            _write_csv(csv_path, new, append=True)
            rows += new
            ran += 1
            final = new[-1]
            say(
                f"{shaping:>16} {agent:<12} seed {seed}: headline {final['headline']:.3f}, "
                f"song {final['song_raw']:.3f}, {final['env_steps']:,} steps in "
                f"{final['wall_s']:.0f} s"
            )
            bar.update(1)
            _write_reports(config, ctx_info, rows, ctx.notes, plot=False)
        bar.close()
    finally:
        torch.set_num_threads(threads)
    summary = _write_reports(config, ctx_info, rows, ctx.notes, plot=True)
    return BenchmarkResult(
        csv_path, out / "shapings.md", out / "shapings.png", out / "shapings.json", rows,
        summary, reference.headline, tuple(reference.baselines.discriminative), ran,
        time.perf_counter() - t_start,
    )  # fmt: skip
