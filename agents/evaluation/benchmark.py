"""The shaping benchmark: which reward shaping teaches which agent to drum like held-out data?

For every reward shaping x agent x seed, one run trains for a fixed budget of env steps on the
*training* split of the data and is judged on the *held-out* split by the shaping-independent
evaluation of :mod:`dataset.evaluation` (the reward never judges itself):

1. **Split.** The sequences (files) are split by a seeded permutation of their indices into a
   training and a held-out part (``heldout_fraction``), or by the ``split`` column of a Groove
   ``info.csv`` (``split_csv``: rows ``test`` are held out, every other file trains). Both parts
   are written as ``.npz`` folders under ``work/split`` so that every agent reads them by path.
2. **Baselines** (:func:`agents.evaluation.heldout.reference`). From the held-out split,
   ``2 * eval_episodes`` full windows of ``seq_len`` steps (bar-aligned, stratified by file)
   are drawn; their continuations (the steps after the primer) give
   :func:`dataset.evaluation.compare_to_baselines`: the ceiling (real vs real, two halves of
   ``eval_episodes`` windows each) and the floors (uniform random, density-matched random,
   silence), and the *discriminative* families that the headline score averages. The spread of
   ceiling and floors is their standard deviation over ``baseline_splits`` random halvings,
   their standard error a bootstrap.
3. **Evaluation** of a policy at ``env_steps`` (:func:`agents.evaluation.heldout.evaluate`):
   ``eval_episodes`` episodes of ``DrumCompose-v0`` on the held-out split, every file playing
   its share, reset with ``eval_seed`` (the same primers and reference windows for every agent
   and every point; the final point plays ``eval_draws`` draws), and the composed part of each
   canvas (after the primer) is scored with :func:`dataset.evaluation.score_sets_resampled`
   against the continuations of the episodes' own reference windows. Reported: the headline
   (mean overlapping area over the discriminative families) with its standard error, every
   family's OA, the mean raw ``song`` term (in [-1, 0]) and the mean return.
4. **Agents.** ``ppo`` (:func:`agents.training.ppo.train`, the Transformer policy), ``ppo-mlp`` (the
   same trainer with SB3's policy: ``policy_kind="mlp"``), ``ppo+pretrain``
   (:func:`agents.training.pretrain. pretrain` on the training split, once per seed, then PPO
   initialised from it with a KL penalty ``kl_coef`` towards it), ``sb3-ppo`` and ``sb3-a2c``
   (Stable-Baselines3, set up as :func:`agents.baselines.sb3.train_baseline` does and trained in
   chunks of ``learn(..., reset_num_timesteps=False)`` so it can be evaluated between them), and
   ``random``: a player that hits each drum independently at its rate in the training split (no
   training, shaping
   independent: one cell per seed, shaping ``any``).
5. **Shapings.** The presets of :data:`drum_env.SHAPINGS` plus ``learned``: the custom PPO with
   ``learn_weights=True`` from ``aligned``'s weights. SB3 has no learned weights, so the
   ``learned`` x SB3 cells are skipped (``n/a`` in the tables). Opt-in rows (custom PPO only,
   SB3 ``n/a``; not in the default list):

   * ``tuned``: the ``shaping`` and ``weights`` of a ``best_config.json`` written by
     :mod:`agents.tune` (``tuned_config``, ``--tuned FILE``; giving the file adds the row).
     Only the reward weights are taken from it: every other setting is the other cells', so the
     row compares reward weights. The tuning run must use the benchmark's split settings (the
     same ``data``, ``split_csv`` or ``heldout_fraction`` and ``split_seed``): the tuner then
     trains and validates inside the benchmark's training split and never sees its held-out
     part. The file's path and weights are part of the settings ``resume`` checks.
   * ``aligned+disc``: ``aligned`` plus a reward learned from data
     (:mod:`agents.training.discriminator`: a GAIL-style discriminator of the training split's
     continuations against the policy's, on the held-out evaluation's features;
     ``disc_coef`` = :data:`~agents.evaluation.benchmark_report.DISC_COEF`).
   * ``hierarchical/batch`` and ``hierarchical/epoch``: ``hierarchical`` with the trainer's
     per-batch or per-epoch reward normalisation (:attr:`agents.training.ppo.PPOConfig.reward_norm`)
     instead of the env's running one (``<shaping>/<reward_norm>``). Opt-in because each
     adds a full row of custom PPO runs (about a sixth more runtime with every agent).

Learning curves: every run is evaluated at 0 env steps (the initial or pretrained policy), at
about ``eval_points`` evenly spaced points and at the end. The custom PPO is evaluated from its
checkpoints (``checkpoint_every`` is the evaluation interval; the callback of iteration ``i + 1``
reads the checkpoint of iteration ``i``), so the run itself is the plain
:func:`agents.training.ppo.train`.

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
(('ppo', 'sb3-ppo', 'random'), ('aligned',), (0,))
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from agents.evaluation import benchmark_report as report
from agents.evaluation.benchmark_players import TrainingRates, player_policy, training_rates
from agents.evaluation.benchmark_report import (
    AGENTS,
    ANY_SHAPING,
    CSV_COLUMNS,
    CUSTOM_ONLY,
    DEFAULT_SHAPINGS,
    DISC_COEF,
    DISC_SUFFIX,
    PLAYERS,
    PPO_AGENTS,
    SB3_ALGOS,
    SHAPING_NAMES,
)
from agents.evaluation.heldout import (
    HeldoutConfig,
    Reference,
    Split,
    evaluate,
    heldout_dataset,
    write_split,
)
from agents.evaluation.heldout import reference as reference_players
from agents.task import RunConfig, check_int, check_number, check_path
from agents.training.run_logs import log_hparams, log_takes, play_takes
from agents.training.runs import write_json

__all__ = [
    "ADDED_FIELDS",
    "AGENTS",
    "SHAPING_NAMES",
    "DEFAULT_SHAPINGS",
    "CSV_COLUMNS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "EVAL_SCALARS",
    "run_benchmark",
    "run_dir",
    "pretrain_dir",
    "same_run_config",
]

# Throughput measured on the 2-core development machine (env steps / s, one torch thread),
# used only for the time estimate printed at the start.
_RATE = {"ppo": 8000.0, "ppo-mlp": 15000.0, "ppo+pretrain": 8000.0, "sb3-ppo": 2000.0,
         "sb3-a2c": 3000.0}  # fmt: skip
# An evaluation draw of a pretrained policy on the Groove split (drummers 8, 9 held out), 512
# episodes stratified by file, scored with 200 bootstrap resamples: about 3.6 s
# (benchmarks/headline_error.py).
_EVAL_S_PER_EPISODE = 0.004
_SCORE_S_PER_DRAW = 1.5  # features, OA and the bootstrap of the standard error
_PRETRAIN_S_PER_STEP = 0.05

# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class BenchmarkConfig(RunConfig, HeldoutConfig):
    """One benchmark: the grid, the budgets, the data and where to write. Frozen, validated.

    The task and the held-out evaluation settings come from
    :class:`~agents.evaluation.heldout.HeldoutConfig`; the task's ``shaping`` (and ``weights``) is
    the reward under which the players that do not train (``random``) report their return. The
    run settings come from :class:`~agents.task.RunConfig`: ``out`` is the folder of
    ``shapings.{csv,md,png,json}``; ``device``, ``threads`` and ``amp`` apply to the custom PPO
    and pretraining (``auto``, the default of every command, is CUDA where there is one, else the
    CPU, where the README's numbers were made; SB3 and the evaluations run on the CPU whatever it
    is); ``resume`` keeps the finished cells of
    ``out/shapings.csv`` and runs only the others; ``progress`` shows a bar over the runs and
    one line per finished run; ``seed`` (``seeds`` seed the runs) and ``force`` are not used.
    Build one by hand, or from a budget with :meth:`preset`.
    """

    DEFAULT_OUT: ClassVar[str] = "benchmarks/results"
    UNUSED_RUN_SETTINGS: ClassVar[tuple[str, ...]] = ("seed", "force")

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
    pretrain_steps: int = 10_000
    """Most optimiser steps of pretraining (batch 32) for ``ppo+pretrain`` and ``pretrained``,
    once per seed (cached in ``work/pretrain`` and reused while its config is unchanged)."""
    pretrain_patience: int | None = 10
    """Stop pretraining after this many validations (every 100 steps, on a tenth of the training
    files) without a new best validation loss; the best policy is kept. ``None``: always run
    ``pretrain_steps``. Pretraining matters: on Groove the sampled policy scores 0.44 after 300
    steps, 0.76 after 3,000 and 0.80 after 10,000."""
    sb3_num_envs: int = 8
    """Envs of SB3's DummyVecEnv."""
    sb3_num_steps: int = 64
    """SB3 rollout length per env (SB3's ``n_steps``)."""
    work: str = "runs/benchmark"
    """Folder of the split, the pretrained policies and every run's checkpoints."""
    command: str | None = None
    """The command line recorded in the report (``None``: the config is shown instead)."""

    def __post_init__(self) -> None:
        self._check_task()
        self._check_heldout()
        self._check_run()
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
        check_int("pretrain_patience", self.pretrain_patience, 1, optional=True)
        for name in ("total_timesteps", "eval_points", "ppo_num_envs", "ppo_num_steps",
                     "pretrain_steps", "sb3_num_envs", "sb3_num_steps"):
            check_int(name, getattr(self, name), 1)  # fmt: skip
        check_number("kl_coef", self.kl_coef, 0.0)
        if any(a in PPO_AGENTS for a in self.agents):
            batch = self.ppo_num_envs * self.ppo_num_steps
            if self.total_timesteps < batch:
                raise ValueError(
                    f"total_timesteps={self.total_timesteps} is less than one custom PPO "
                    f"iteration (ppo_num_envs * ppo_num_steps = {batch})"
                )
        check_path(self, "tuned_config")
        if self.command is not None and not isinstance(self.command, str):
            raise ValueError(f"command must be a string or None, got {self.command!r}")
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
        from agents.training.ppo import PPOConfig

        try:  # PPOConfig's own checks of the shaping name and the weights
            cfg = PPOConfig(shaping=values["shaping"], weights=values.get("weights"))
        except ValueError as exc:
            raise ValueError(f"tuned_config: {path!r}: {exc}") from exc
        return cfg.shaping, cfg.weight_mapping

    def reward_setup(self, shaping: str) -> tuple[str, dict[str, float] | None, str]:
        """The env shaping, weights and :attr:`PPOConfig.reward_norm` of a benchmark shaping.

        ``learned`` uses ``aligned`` (its weights start the learned ones); the players' ``any``
        the task's ``shaping`` and ``weights``; ``tuned`` the tuned file's shaping and weights;
        ``<preset>/<norm>`` the preset with that normalisation; ``<preset>+disc`` the preset
        (the runs add the learned discriminator's reward).
        """
        if shaping.endswith(DISC_SUFFIX):
            return self.reward_setup(shaping[: -len(DISC_SUFFIX)])
        if shaping == "tuned":
            name, weights = self.tuned_reward()
            return name, weights, "running"
        if shaping == ANY_SHAPING:
            return self.shaping, self.weight_mapping, "running"
        if "/" in shaping:
            name, norm = shaping.split("/", 1)
            return name, None, norm
        return ("aligned" if shaping == "learned" else shaping), None, "running"

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

        The :data:`~agents.evaluation.benchmark_report.PLAYERS` (``pretrained``, ``loop``,
        ``random``) run once per seed, with shaping ``"any"``; ``learned``, ``tuned`` and the
        trainer-normalised shapings x SB3 are left out.
        """
        out = []
        for seed in self.seeds:
            for shaping in self.shapings:
                for agent in self.agents:
                    if agent in PLAYERS or (agent in SB3_ALGOS and shaping in CUSTOM_ONLY):
                        continue
                    out.append((shaping, agent, seed))
            out += [(ANY_SHAPING, a, seed) for a in PLAYERS if a in self.agents]
        return out

    def estimated_seconds(self, cells: Sequence[tuple[str, str, int]] | None = None) -> float:
        """A rough wall-time estimate of ``cells`` (default: all), in seconds.

        From the rates measured on the development machine (2 CPU cores, one torch thread).
        """
        cells = self.cells() if cells is None else cells
        total = 0.0
        evals = self.eval_points + 1
        draws = self.eval_draws
        for _, agent, _ in cells:
            per_draw = self.eval_episodes * _EVAL_S_PER_EPISODE + _SCORE_S_PER_DRAW
            if agent in PLAYERS:
                total += draws * per_draw
                continue
            total += self.total_timesteps / _RATE[agent]
            total += (evals + draws - 1) * per_draw
        pretrained = {s for _, a, s in cells if a in ("ppo+pretrain", "pretrained")}
        total += len(pretrained) * self.pretrain_steps * _PRETRAIN_S_PER_STEP
        return total

    def result_fields(self) -> dict[str, Any]:
        """The fields that decide the numbers (a resumed run must match them)."""
        skip = {"out", "work", "resume", "progress", "command", "seeds", "shapings", "agents",
                *self.UNUSED_RUN_SETTINGS}
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        if self.tuned_config is not None:  # absent otherwise: earlier records stay resumable
            shaping, weights = self.tuned_reward()
            fields["tuned_reward"] = {"shaping": shaping, "weights": weights}
        return fields

    @classmethod
    def preset(cls, budget: str = "default", **changes: Any) -> BenchmarkConfig:
        """A config for a named budget, with ``changes`` on top.

        * ``"smoke"``: one shaping, PPO and SB3 PPO (plus the random player), one seed, one
          PPO iteration, 16 evaluation episodes, one draw; seconds (the test suite runs it).
        * ``"quick"``: every default shaping and agent, 2 seeds, 4,096 env steps per run, 32
          evaluation episodes (the tables show the larger standard error this gives); under 15
          minutes on 2 CPU cores.
        * ``"default"``: every default shaping and agent, 3 seeds, 16,384 env steps per run, the
          evaluation's defaults (512 episodes, 4 draws at the final point: a standard error
          below 0.005); about 80 minutes on 2 CPU cores by :meth:`estimated_seconds`, 35 more
          than with 0.3's 64 episodes and one draw (the README's table).

        Args:
            budget: ``"smoke"``, ``"quick"`` or ``"default"``.
            **changes: field values that override the preset's.

        Returns:
            BenchmarkConfig.
        """
        presets: dict[str, dict[str, Any]] = {
            "smoke": dict(
                shapings=("aligned",), agents=("ppo", "sb3-ppo", "random"), seeds=(0,),
                total_timesteps=1024, eval_points=1, eval_episodes=16, baseline_splits=2,
                eval_draws=1, eval_resamples=20,
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
    # With velocity levels: the bins of the train split (the envs' own choice on that data) and
    # each drum's class frequencies there (float64 (drums, K + 1), the random player's table).
    velocity_bins: Any = None
    class_rates: np.ndarray | None = None


def _env_kwargs(
    config: BenchmarkConfig, data: Any, shaping: str, velocity_bins: Any = None
) -> dict[str, Any]:
    """The env arguments of a benchmark shaping (its preset, weights) on ``data``."""
    name, weights, _ = config.reward_setup(shaping)
    return config.env_kwargs(data, velocity_bins, shaping=name, weights=weights)


def run_dir(work: str | Path, shaping: str, agent: str, seed: int) -> Path:
    """The folder of one run of the grid: ``work/runs/<shaping>/<agent>/seed<k>``.

    It holds the custom PPO's ``policy.pt`` and ``checkpoint.pt``, or SB3's ``model.zip`` and
    its sidecar (a ``/`` in the shaping's name becomes ``_``).
    """
    return Path(work) / "runs" / shaping.replace("/", "_") / agent / f"seed{seed}"


def pretrain_dir(work: str | Path, seed: int) -> Path:
    """The folder of the pretrained policy of ``seed``: ``work/pretrain/seed<k>/run``."""
    return Path(work) / "pretrain" / f"seed{seed}" / "run"


class _Recorder:
    """Collects a run's evaluation rows with their timings."""

    def __init__(
        self, ctx: _Context, shaping: str, agent: str, seed: int, velocity_bins: Any = None
    ) -> None:
        """Record the runs of one (shaping, agent, seed) cell.

        ``velocity_bins``: the bins the policy plays at (default: the train split's); the
        held-out env plays the policy's classes at these levels.
        """
        self.ctx, self.key = ctx, {"shaping": shaping, "agent": agent, "seed": seed}
        bins = velocity_bins if velocity_bins is not None else ctx.velocity_bins
        self.env_kwargs = _env_kwargs(ctx.config, ctx.heldout, shaping, bins)
        self.rows: list[dict[str, Any]] = []
        self.takes: list[Any] = []  # each evaluation's takes (Rollouts) for TensorBoard
        self.run_dir = run_dir(ctx.config.work, shaping, agent, seed)
        self.start = time.perf_counter()
        self.eval_total = 0.0

    def elapsed_training(self) -> float:
        return time.perf_counter() - self.start - self.eval_total

    def evaluate(self, policy: Callable, env_steps: int, train_s: float | None = None,
                 final: bool = False) -> None:  # fmt: skip
        """Score ``policy`` now (the final evaluation over ``eval_draws`` draws)."""
        t = time.perf_counter()
        draws = self.ctx.config.eval_draws if final else 1
        scores = evaluate(policy, self.ctx.config, self.env_kwargs, self.ctx.reference, draws)
        spent = time.perf_counter() - t
        train = self.elapsed_training() if train_s is None else train_s
        self.eval_total += spent
        self.rows.append({
            **self.key, "env_steps": int(env_steps), "final": 0, **scores,
            "train_s": train, "eval_s": spent, "wall_s": time.perf_counter() - self.start,
        })  # fmt: skip
        t = time.perf_counter()  # the takes to hear: not training time, not the scores' time
        self.takes.append(play_takes(policy, self.env_kwargs))
        self.eval_total += time.perf_counter() - t

    def finish(self) -> list[dict[str, Any]]:
        """The rows, the last one final; the run's ``tb/`` written (:func:`_write_logs`)."""
        self.rows[-1]["final"] = 1
        _write_logs(self.run_dir / "tb", self.ctx.config, self.key, self.rows, self.takes)
        return self.rows


EVAL_SCALARS: tuple[str, ...] = (
    "headline", "headline_se", "velocity_headline", "song_raw", "episode_return",
)  # fmt: skip
"""The evaluation's numbers that a benchmark run logs to TensorBoard (``eval/<name>``), and, at
its final evaluation, as its HParams metrics (``hparam/<name>``)."""


def _write_logs(folder: Path, config: BenchmarkConfig, key: Mapping[str, Any],
                rows: Sequence[Mapping[str, Any]], takes: Sequence[Any]) -> None:  # fmt: skip
    """A benchmark run's TensorBoard logs in ``folder`` (a rerun's replace the old ones).

    Every evaluation: its :data:`EVAL_SCALARS` (``eval/<name>``) and its takes
    (:func:`agents.training.run_logs.log_takes`: audio, on the numpy kit, and piano rolls of
    fixed held-out primers, beside the real continuations) at its env steps; at the end the
    HParams: the cell (shaping, agent, seed; its shaping replaces the task's) and the
    benchmark's settings, with the final evaluation's numbers as the metrics.
    """
    from torch.utils.tensorboard import SummaryWriter

    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    writer = SummaryWriter(str(folder))
    try:
        for i, (row, rollouts) in enumerate(zip(rows, takes)):
            step = int(row["env_steps"])
            for name in EVAL_SCALARS:
                if name in row and math.isfinite(row[name]):
                    writer.add_scalar(f"eval/{name}", row[name], step)
            # the kit: FluidSynth loads its soundfont per clip, minutes over a --quick run
            log_takes(writer, rollouts, step, config.steps_per_bar, real=i == 0, synth="kit")
        final = rows[-1]
        metrics = {f"hparam/{name}": float(final[name]) for name in EVAL_SCALARS if name in final}
        settings = {k: v for k, v in config.to_dict().items() if k not in ("command", "out")}
        log_hparams(writer, {**settings, **key}, metrics, int(final["env_steps"]))  # the cell's
    finally:
        writer.close()


_PATH_FIELDS = ("data", "out", "val_data")


def same_run_config(saved: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether a cached run's ``config.json`` (``saved``) is the run ``wanted`` would make.

    Every field must be equal, except that the folders (``data``, ``out``, ``val_data``) are
    compared where they point (resolved against the working folder), so ``--work runs/x`` and
    ``--work /abs/path/runs/x`` reuse each other's pretraining instead of training it again.
    """
    if saved is None or set(saved) != set(wanted):
        return False
    for key, value in wanted.items():
        old = saved[key]
        if key in _PATH_FIELDS and isinstance(value, str) and isinstance(old, str):
            if Path(value).resolve() != Path(old).resolve():
                return False
        elif old != value:
            return False
    return True


def _pretrained_policy(ctx: _Context, seed: int) -> str:
    """Pretrain on the training split once per seed (reused by every shaping).

    A tenth of the training files (seeded) validates: the best policy by validation loss is
    kept and ``pretrain_patience`` stops a run that has converged. The policy is cached in
    ``work/pretrain/seed<k>`` and reused while its ``config.json`` is the same.
    """
    if seed in ctx.pretrained:
        return ctx.pretrained[seed]
    from agents.training.pretrain import PretrainConfig, pretrain

    c = ctx.config
    root = pretrain_dir(c.work, seed).parent
    parts = write_split(
        HeldoutConfig(data=str(ctx.split.train_dir), heldout_fraction=0.1, split_seed=seed),
        root,
    )  # fmt: skip
    cfg = PretrainConfig(
        **{**c.task_fields(), "data": str(parts.train_dir)}, epochs=10_000,
        max_steps=c.pretrain_steps, seed=seed, amp=c.amp, device=c.device, threads=c.threads,
        out=str(root / "run"),
        val_data=str(parts.heldout_dir), patience=c.pretrain_patience, log_every=100, force=True,
        progress=False,
    )  # fmt: skip
    path = root / "run" / "policy.pt"
    record = root / "run" / "result.json"
    saved = json.loads((root / "run" / "config.json").read_text()) if record.is_file() else None
    if same_run_config(saved, json.loads(json.dumps(cfg.to_dict()))) and path.is_file():
        ctx.notes.setdefault("pretrain", {})[str(seed)] = json.loads(record.read_text())
    else:
        t = time.perf_counter()
        result = pretrain(cfg)
        info = {"steps": result.steps, "best_step": result.best_step,
                "final_train_loss": result.final_loss, "best_val_loss": result.best_val_loss,
                "val_losses": result.val_losses, "wall_s": time.perf_counter() - t}  # fmt: skip
        write_json(record, info)
        ctx.notes.setdefault("pretrain", {})[str(seed)] = info
    ctx.pretrained[seed] = str(path)
    return str(path)


def _run_ppo(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    import gymnasium as gym
    import torch

    from agents.evaluation.rollout import load_any_policy, policy_fn
    from agents.policies.policy import load_policy, make_policy, policy_velocity_bins
    from agents.training.ppo import PPOConfig, train

    c = ctx.config
    kind = "mlp" if agent == "ppo-mlp" else "transformer"
    pretrained = _pretrained_policy(ctx, seed) if agent == "ppo+pretrain" else None
    # PPO plays at the pretrained policy's bins, or at the bins its envs choose on the train split
    bins = policy_velocity_bins(pretrained) if pretrained is not None else None
    rec = _Recorder(ctx, shaping, agent, seed, bins)
    rec.start = time.perf_counter()  # pretraining is shared by the seed's runs: not counted
    iterations = c.total_timesteps // c.ppo_batch
    every = max(1, iterations // c.eval_points)
    env_shaping, weights, reward_norm = c.reward_setup(shaping)
    cfg = PPOConfig(
        **{**c.task_fields(), "data": str(ctx.split.train_dir), "shaping": env_shaping,
           "weights": weights}, reward_norm=reward_norm, learn_weights=shaping == "learned",
        num_envs=c.ppo_num_envs, num_steps=c.ppo_num_steps, total_timesteps=c.total_timesteps,
        kl_coef=c.kl_coef if pretrained else 0.0, pretrained=pretrained, amp=c.amp,
        disc_coef=DISC_COEF if shaping.endswith(DISC_SUFFIX) else 0.0,
        policy_kind=kind, device=c.device, threads=c.threads, seed=seed,
        out=str(run_dir(c.work, shaping, agent, seed)),
        checkpoint_every=every, force=True, progress=False, tensorboard=False,
    )  # fmt: skip

    # env step 0: the pretrained policy, or the initialisation train() makes (same seed)
    if pretrained is not None:
        initial = load_policy(pretrained)
    else:
        env = gym.make("DrumCompose-v0", **cfg.env_kwargs())
        sizes = {} if kind == "mlp" else dict(d_model=cfg.d_model, n_layers=cfg.n_layers,
                                              n_heads=cfg.n_heads, dropout=cfg.dropout)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            initial = make_policy(kind, env.unwrapped.config, **sizes)
        env.close()
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
    rec.evaluate(policy_fn(result.policy.cpu(), seed=seed), result.global_step, final=True)
    if shaping == "learned" and result.history:
        weights = {k[len("weights/"):]: v for k, v in result.history[-1].items()
                   if k.startswith("weights/")}  # fmt: skip
        ctx.notes.setdefault("learned_weights", {})[f"{agent}/seed{seed}"] = weights
    return rec.finish()


def _run_sb3(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    """SB3 as :func:`agents.baselines.sb3.train_baseline` sets it up, trained in scored chunks."""
    from agents.baselines.sb3 import BaselineConfig, build_model, save_model
    from agents.evaluation.rollout import sb3_policy_fn

    c = ctx.config
    rec = _Recorder(ctx, shaping, agent, seed)
    env_shaping, weights, _ = c.reward_setup(shaping)
    base = BaselineConfig(
        **{**c.task_fields(), "data": str(ctx.split.train_dir), "shaping": env_shaping,
           "weights": weights}, algo=SB3_ALGOS[agent], num_envs=c.sb3_num_envs,
        num_steps=c.sb3_num_steps, total_timesteps=c.total_timesteps, seed=seed, eval_every=0,
        out=str(run_dir(c.work, shaping, agent, seed)), tensorboard=False,
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
            rec.evaluate(sb3_policy_fn(model), model.num_timesteps,
                         final=target == targets[-1])  # fmt: skip
    save_model(model, base, velocity_bins=venv.envs[0].unwrapped.config.velocity_bins)
    venv.close()
    return rec.finish()


def _run_player(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    """A player that does not train: the pretrained policy alone, loop-the-primer, random."""
    path = _pretrained_policy(ctx, seed) if agent == "pretrained" else None
    rates = TrainingRates(ctx.train_rates, ctx.velocity_bins, ctx.class_rates)
    policy, bins = player_policy(agent, ctx.config, rates, seed, path)
    rec = _Recorder(ctx, shaping, agent, seed, bins)
    rec.start = time.perf_counter()
    rec.evaluate(policy, 0, 0.0, final=True)
    return rec.finish()


def _run_cell(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    if agent in PPO_AGENTS:
        return _run_ppo(ctx, shaping, agent, seed)
    if agent in SB3_ALGOS:
        return _run_sb3(ctx, shaping, agent, seed)
    return _run_player(ctx, shaping, agent, seed)


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


# ----------------------------------------------------------------------------- driver


# Settings the benchmark gained after results were recorded, with the value that recordings
# without them were made with: such a recording resumes at that value (as PPO's checkpoints do,
# agents.training.ppo.ADDED_FIELDS) and is refused at any other.
ADDED_FIELDS: dict[str, Any] = {"whole_canvas": False, "device": "cpu"}


def _check_resume(config: BenchmarkConfig, path: Path) -> None:
    if not path.is_file():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved = {**ADDED_FIELDS, **saved}
    mine = json.loads(json.dumps(config.result_fields(), default=report.json_default))
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


def _with_device(config: BenchmarkConfig) -> BenchmarkConfig:
    """``config`` with ``auto`` replaced by the device it picks (``cuda`` or ``cpu``).

    A recording then names where it trained, and its resume on another kind of machine is
    refused (:func:`_check_resume`) rather than mixing CPU and GPU runs in one table.

    Raises:
        ValueError: CUDA asked for where there is none (before any work).
    """
    if config.device == "cpu":
        return config
    from agents.training.distributed import Dist, resolve_device

    device = resolve_device(config.device, Dist(0, 1, 0, False, False))
    return dataclasses.replace(config, device=device.type) if config.device == "auto" else config


def _run_benchmark(config: BenchmarkConfig) -> BenchmarkResult:
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    config = _with_device(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(config.work).mkdir(parents=True, exist_ok=True)
    csv_path, config_path = out / "shapings.csv", out / "shapings.config.json"
    if config.resume:
        _check_resume(config, config_path)
    config_path.write_text(
        json.dumps(config.result_fields(), indent=1, default=report.json_default), encoding="utf-8"
    )
    rows = report.read_csv(csv_path) if config.resume else []
    done = report.finished(rows)
    rows = [r for r in rows if (r["shaping"], r["agent"], r["seed"]) in done]  # drop unfinished
    report.write_csv(csv_path, rows, append=False)

    split = write_split(config, config.work)
    heldout = heldout_dataset(config, split.heldout_dir)
    train_ds = heldout_dataset(config, split.train_dir)
    rates, bins, class_rates = training_rates(train_ds.sequences, config.velocity_levels)
    reference = reference_players(config, heldout)
    ctx = _Context(config, split, heldout, reference, rates, {}, {}, bins, class_rates)

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
        "reference_se": reference.headline_se,
        "heldout_files": reference.files,
        "velocity_references": reference.velocity_headline,
        "velocity_discriminative": list(reference.velocity.discriminative),
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
    ran = 0
    with config.torch_threads():
        bar = tqdm(total=len(todo), unit="run", disable=not config.progress, dynamic_ncols=True)
        for shaping, agent, seed in todo:
            bar.set_description(f"{shaping}/{agent}/seed{seed}")
            new = _run_cell(ctx, shaping, agent, seed)
            report.write_csv(csv_path, new, append=True)
            rows += new
            ran += 1
            final = new[-1]
            say(
                f"{shaping:>16} {agent:<12} seed {seed}: headline {final['headline']:.3f}, "
                f"song {final['song_raw']:.3f}, {final['env_steps']:,} steps in "
                f"{final['wall_s']:.0f} s"
            )
            bar.update(1)
            report.write_reports(config, ctx_info, rows, ctx.notes, plot=False)
        bar.close()
    summary = report.write_reports(config, ctx_info, rows, ctx.notes, plot=True)
    return BenchmarkResult(
        csv_path, out / "shapings.md", out / "shapings.png", out / "shapings.json", rows,
        summary, reference.headline, tuple(reference.baselines.discriminative), ran,
        time.perf_counter() - t_start,
    )  # fmt: skip
