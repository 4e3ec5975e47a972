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

import argparse
import csv
import dataclasses
import json
import math
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "AGENTS",
    "SHAPING_NAMES",
    "DEFAULT_SHAPINGS",
    "CSV_COLUMNS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "run_benchmark",
    "add_arguments",
    "config_from_args",
    "main",
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

# Families as in dataset.evaluation.FAMILIES (kept literal so the columns are known without
# importing it; a test checks they agree).
_FAMILIES = (
    "density", "ioi", "syncopation", "transitions", "ngram_diversity", "entropy",
    "empty_bars", "pattern_consistency",
)  # fmt: skip
CSV_COLUMNS: tuple[str, ...] = (
    "shaping", "agent", "seed", "env_steps", "final", "headline", "song_raw", "episode_return",
    *(f"oa_{f}" for f in _FAMILIES), "train_s", "eval_s", "wall_s",
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
class BenchmarkConfig:
    """One benchmark: the grid, the budgets, the data and where to write. Frozen, validated.

    Build one by hand, or from a budget with :meth:`preset`.
    """

    data: str | None = None
    """Folder of ``.npz`` sequences; ``None``: the built-in synthetic corpus."""
    split_csv: str | None = None
    """A Groove ``info.csv``: files whose ``midi_filename`` row says ``split = test`` are held
    out, all others train; ``None``: a seeded random split (``heldout_fraction``)."""
    heldout_fraction: float = 0.25
    """Share of the sequences held out, in (0, 1), when ``split_csv`` is not given."""
    split_seed: int = 0
    """Seed of the split and of the baseline windows (not of the runs)."""
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
    eval_episodes: int = 64
    """Episodes per evaluation (>= 2); the baselines use twice as many held-out windows."""
    eval_seed: int = 12_345
    """Reset seed of the evaluation episodes: the same primers for every run."""
    baseline_splits: int = 5
    """Random halvings of the baseline windows for the spread of ceiling and floors (>= 1)."""
    seq_len: int = 64
    """Steps per episode, primer included; a multiple of ``steps_per_bar``."""
    prompt_bars: int = 1
    """Bars of primer."""
    steps_per_bar: int = 16
    """Steps in one bar."""
    bars_per_phrase: int = 4
    """Bars in one phrase."""
    context_steps: int = 16
    """Steps of canvas the custom policy sees (and pretraining uses)."""
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
    sb3_n_steps: int = 64
    """SB3 rollout length per env."""
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
            if not _is_int(s) or s < 0:
                raise ValueError(f"seeds must be integers >= 0, got {s!r}")
        minimum = {
            "total_timesteps": 1, "eval_points": 1, "eval_episodes": 2, "baseline_splits": 1,
            "seq_len": 1, "prompt_bars": 0, "steps_per_bar": 1, "bars_per_phrase": 1,
            "context_steps": 1, "ppo_num_envs": 1, "ppo_num_steps": 1, "pretrain_steps": 1,
            "sb3_num_envs": 1, "sb3_n_steps": 1, "threads": 1, "split_seed": 0, "eval_seed": 0,
        }  # fmt: skip
        for name, low in minimum.items():
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.seq_len % self.steps_per_bar:
            raise ValueError(
                f"seq_len must be a multiple of steps_per_bar={self.steps_per_bar}, "
                f"got {self.seq_len}"
            )
        if self.prompt_steps >= self.seq_len:
            raise ValueError(
                f"prompt_bars={self.prompt_bars} leaves nothing to compose in seq_len="
                f"{self.seq_len} steps"
            )
        if not (isinstance(self.heldout_fraction, (int, float)) and 0 < self.heldout_fraction < 1):
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}")
        if not (isinstance(self.kl_coef, (int, float)) and math.isfinite(self.kl_coef)
                and self.kl_coef >= 0):  # fmt: skip
            raise ValueError(f"kl_coef must be a finite number >= 0, got {self.kl_coef!r}")
        if any(a in _PPO_AGENTS for a in self.agents):
            batch = self.ppo_num_envs * self.ppo_num_steps
            if self.total_timesteps < batch:
                raise ValueError(
                    f"total_timesteps={self.total_timesteps} is less than one custom PPO "
                    f"iteration (ppo_num_envs * ppo_num_steps = {batch})"
                )
        for name in ("data", "split_csv", "command", "tuned_config"):
            value = getattr(self, name)
            if isinstance(value, Path):
                object.__setattr__(self, name, str(value))
            elif value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or None, got {value!r}")
        for name in ("out", "work"):
            value = getattr(self, name)
            object.__setattr__(self, name, str(value))
            if not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty path")
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

        ``learned`` (and the random player's ``any``) use ``hierarchical``; ``tuned`` the
        tuned file's shaping and weights; ``<preset>/<norm>`` the preset with that
        normalisation.
        """
        if shaping == "tuned":
            name, weights = self.tuned_reward()
            return name, weights, "running"
        if "/" in shaping:
            name, norm = shaping.split("/", 1)
            return name, None, norm
        return ("hierarchical" if shaping in ("learned", _ANY) else shaping), None, "running"

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
        return self.sb3_num_envs * self.sb3_n_steps

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
                sb3_num_envs=4, sb3_n_steps=32, pretrain_steps=5, ppo_num_envs=16,
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


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


# ----------------------------------------------------------------------------- data


class _Split(NamedTuple):
    train_dir: Path
    heldout_dir: Path
    train_names: list[str]
    heldout_names: list[str]
    source: str


def _load_sequences(config: BenchmarkConfig) -> tuple[list[str], list[np.ndarray], str]:
    """Names (relative paths without suffix) and sequences of the benchmark's data."""
    if config.data is None:
        from dataset.synthetic import default_corpus

        seqs = default_corpus()
        return [f"builtin/{i:03d}" for i in range(len(seqs))], seqs, "the built-in corpus"
    from dataset.io import load_npz_folder

    root = Path(config.data)
    corpus = load_npz_folder(root)
    names = [p.relative_to(root).with_suffix("").as_posix() for p in corpus.files]
    return names, list(corpus.sequences), f"data folder {config.data!r}"


def _split_indices(config: BenchmarkConfig, names: Sequence[str]) -> tuple[list[int], list[int]]:
    n = len(names)
    if config.split_csv is not None:
        with open(config.split_csv, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"midi_filename", "split"} <= set(reader.fieldnames):
                raise ValueError(
                    f"split_csv {config.split_csv!r} needs the columns 'midi_filename' and "
                    f"'split', has {reader.fieldnames}"
                )
            split = {Path(r["midi_filename"]).with_suffix("").as_posix(): r["split"]
                     for r in reader}  # fmt: skip
        matched = [name for name in names if name in split]
        if not matched:
            raise ValueError(
                f"split_csv {config.split_csv!r}: no midi_filename matches a file of "
                f"{config.data!r} (compared without suffix, e.g. {names[0]!r})"
            )
        held = [i for i, name in enumerate(names) if split.get(name) == "test"]
        train = [i for i in range(n) if i not in set(held)]
    else:
        order = np.random.default_rng(config.split_seed).permutation(n)
        k = max(1, int(round(config.heldout_fraction * n)))
        held, train = sorted(order[:k].tolist()), sorted(order[k:].tolist())
    if not held or not train:
        raise ValueError(
            f"the split leaves {len(train)} training and {len(held)} held-out sequences; both "
            "must be non-empty"
        )
    return train, held


def _write_split(config: BenchmarkConfig) -> _Split:
    """Split the data and write both parts as ``.npz`` folders under ``work/split``."""
    names, seqs, source = _load_sequences(config)
    train, held = _split_indices(config, names)
    root = Path(config.work) / "split"
    dirs = {"train": root / "train", "heldout": root / "heldout"}
    for d in dirs.values():
        for old in d.rglob("*.npz"):  # only files this function wrote: a stale split must go
            old.unlink()
    for part, idx in (("train", train), ("heldout", held)):
        for i in idx:
            path = dirs[part] / f"{names[i]}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, sequence=np.asarray(seqs[i], dtype=np.float32))
    return _Split(
        dirs["train"], dirs["heldout"], [names[i] for i in train], [names[i] for i in held],
        source,
    )  # fmt: skip


# ----------------------------------------------------------------------------- evaluation


class _Reference(NamedTuple):
    baselines: Any  # dataset.evaluation.Baselines (split seed split_seed)
    headline: dict[str, tuple[float, float]]  # player -> (mean, std) over baseline_splits
    windows: int  # held-out windows the baselines were computed on
    heldout_windows: int  # full windows in the held-out split


def _reference(config: BenchmarkConfig, heldout: Any) -> _Reference:
    """Ceiling and floors on the continuations of ``2 * eval_episodes`` held-out windows."""
    from dataset.evaluation import compare_to_baselines

    lengths = np.array([len(s) for s in heldout.sequences])
    idx = np.asarray(heldout.sample_indices).reshape(-1, 2)
    full = idx[idx[:, 1] + config.seq_len <= lengths[idx[:, 0]]]
    if len(full) < 4:
        raise ValueError(
            f"the held-out split has {len(full)} windows of seq_len={config.seq_len} steps; the "
            "baselines need at least 4 (hold out more data or lower seq_len)"
        )
    rng = np.random.default_rng(config.split_seed)
    pick = rng.choice(len(full), size=min(len(full), 2 * config.eval_episodes), replace=False)
    p = config.prompt_steps
    windows = [
        np.asarray(heldout.sequences[s][st + p : st + config.seq_len], dtype=np.float32)
        for s, st in full[np.sort(pick)]
    ]
    kw = {"steps_per_bar": config.steps_per_bar, "bars_per_phrase": config.bars_per_phrase}
    base = compare_to_baselines(windows, seed=config.split_seed, **kw)
    runs = [base] + [
        compare_to_baselines(windows, seed=config.split_seed + k, bootstrap=0, **kw)
        for k in range(1, config.baseline_splits)
    ]
    players = {"ceiling": "real_vs_real", "uniform_random": "uniform_random",
               "density_random": "density_random", "silence": "silence"}  # fmt: skip
    headline = {}
    for name, attr in players.items():
        values = [base.headline(getattr(b, attr)) for b in runs]
        headline[name] = (float(np.mean(values)), float(np.std(values)))
    return _Reference(base, headline, len(windows), len(full))


def _evaluate(
    policy: Callable[[dict[str, np.ndarray]], np.ndarray],
    config: BenchmarkConfig,
    env_kwargs: Mapping[str, Any],
    reference: _Reference,
) -> dict[str, float]:
    """Play the evaluation episodes and score what was composed against the references."""
    from agents.rollout import rollout_episodes
    from dataset.evaluation import score_sets

    r = rollout_episodes(
        policy, env_kwargs, episodes=config.eval_episodes, num_envs=min(16, config.eval_episodes),
        seed=config.eval_seed,
    )  # fmt: skip
    p = r.prompt_steps
    score = score_sets(
        r.sequences[:, p:], r.references[:, p:], config.steps_per_bar, config.bars_per_phrase
    )
    row = {
        "headline": reference.baselines.headline(score),
        "song_raw": float(r.song_raw.mean()),
        "episode_return": float(r.returns.mean()),
    }
    for f in _FAMILIES:
        row[f"oa_{f}"] = float(score.families.get(f, math.nan))
    return row


# ----------------------------------------------------------------------------- runs


class _Context(NamedTuple):
    config: BenchmarkConfig
    split: _Split
    heldout: Any  # CompleteHierarchicalDrumDataset of the held-out split (the eval env's data)
    reference: _Reference
    train_rates: np.ndarray  # float64 (drums,): hits per step of each drum in the train split
    pretrained: dict[int, str]  # seed -> pretrained policy path (filled lazily)
    notes: dict[str, Any]


def _env_kwargs(config: BenchmarkConfig, data: Any, shaping: str) -> dict[str, Any]:
    name, weights, _ = config.reward_setup(shaping)
    kwargs = {
        "data": data, "seq_len": config.seq_len, "steps_per_bar": config.steps_per_bar,
        "bars_per_phrase": config.bars_per_phrase, "prompt_bars": config.prompt_bars,
        "context_steps": config.context_steps, "shaping": name,
    }  # fmt: skip
    if weights is not None:
        kwargs["weights"] = weights
    return kwargs


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
        scores = _evaluate(policy, self.ctx.config, self.env_kwargs, self.ctx.reference)
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
            data=str(ctx.split.train_dir), seq_len=c.seq_len, steps_per_bar=c.steps_per_bar,
            bars_per_phrase=c.bars_per_phrase, context_steps=c.context_steps, epochs=10_000,
            max_steps=c.pretrain_steps, seed=seed, amp=c.amp, device="cpu", out=str(out),
            progress=False,
        ))  # fmt: skip
        ctx.notes.setdefault("pretrain", {})[str(seed)] = {
            "steps": result.steps, "final_loss": result.final_loss,
            "wall_s": time.perf_counter() - t,
        }  # fmt: skip
    ctx.pretrained[seed] = str(path)
    return str(path)


def _policy_from_checkpoint(path: Path) -> tuple[Any, int]:
    """The policy of a PPO checkpoint (its ``policy_config`` and ``model``) and its iteration."""
    import torch

    from agents.checkpoint import load_checkpoint
    from agents.policy import DrumPolicy, PolicyConfig

    state = load_checkpoint(path)
    with torch.random.fork_rng():  # building a module draws from the global generator
        policy = DrumPolicy(PolicyConfig(**state["policy_config"]))
    policy.load_state_dict(state["model"])
    return policy, int(state["iteration"])


def _run_ppo(ctx: _Context, shaping: str, agent: str, seed: int) -> list[dict[str, Any]]:
    import gymnasium as gym
    import torch

    from agents.generate import policy_fn
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
        data=str(ctx.split.train_dir), seq_len=c.seq_len, steps_per_bar=c.steps_per_bar,
        bars_per_phrase=c.bars_per_phrase, prompt_bars=c.prompt_bars,
        context_steps=c.context_steps, shaping=env_shaping, weights=weights,
        reward_norm=reward_norm, learn_weights=shaping == "learned", num_envs=c.ppo_num_envs,
        num_steps=c.ppo_num_steps, total_timesteps=c.total_timesteps,
        kl_coef=c.kl_coef if pretrained else 0.0, pretrained=pretrained, amp=c.amp,
        device="cpu", seed=seed, out=str(_run_dir(c, shaping, agent, seed)),
        checkpoint_every=every, progress=False, tensorboard=False,
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
            policy, at = _policy_from_checkpoint(checkpoint)
            if at != done:
                raise RuntimeError(f"expected the checkpoint of iteration {done}, found {at}")
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
    import gymnasium as gym
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.sb3 import BaselineConfig, _sb3_policy_fn

    c = ctx.config
    rec = _Recorder(ctx, shaping, agent, seed)
    out = _run_dir(c, shaping, agent, seed)
    base = BaselineConfig(
        algo=_SB3[agent], data=str(ctx.split.train_dir), seq_len=c.seq_len,
        prompt_bars=c.prompt_bars, shaping=shaping, num_envs=c.sb3_num_envs,
        total_timesteps=c.total_timesteps, n_steps=c.sb3_n_steps, seed=seed, eval_every=0,
        out=str(out), tensorboard=False,
    )  # fmt: skip
    kwargs = _env_kwargs(c, str(ctx.split.train_dir), shaping)
    set_random_seed(seed)
    venv = DummyVecEnv([lambda: gym.make("DrumCompose-v0", **kwargs)] * base.num_envs)
    venv.seed(seed)
    extra = dict(base.extra)
    if base.algo == "ppo":
        extra.setdefault("batch_size", min(256, base.n_steps * base.num_envs))
    algo = PPO if base.algo == "ppo" else A2C
    model = algo(
        "MultiInputPolicy", venv, learning_rate=base.learning_rate, n_steps=base.n_steps,
        ent_coef=base.ent_coef, seed=seed, device="cpu", verbose=0, **extra,
    )  # fmt: skip
    rec.evaluate(_sb3_policy_fn(model), 0, 0.0)
    rec.start = time.perf_counter() - rec.eval_total
    batch = c.sb3_batch
    targets = sorted({max(batch, (k * c.total_timesteps // c.eval_points) // batch * batch)
                      for k in range(1, c.eval_points)} | {c.total_timesteps})  # fmt: skip
    for target in targets:
        if target > model.num_timesteps:
            model.learn(target - model.num_timesteps, reset_num_timesteps=False)
            rec.evaluate(_sb3_policy_fn(model), model.num_timesteps)
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
        for key in ("headline", "song_raw", "episode_return", *(f"oa_{f}" for f in _FAMILIES)):
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

    from dataset.hierarchical import CompleteHierarchicalDrumDataset
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

    split = _write_split(config)
    heldout = CompleteHierarchicalDrumDataset(
        split.heldout_dir, config.seq_len, config.steps_per_bar, config.bars_per_phrase,
        stride=config.steps_per_bar, as_numpy=True,
    )  # fmt: skip
    train_ds = CompleteHierarchicalDrumDataset(
        split.train_dir, config.seq_len, config.steps_per_bar, config.bars_per_phrase,
        stride=config.steps_per_bar, as_numpy=True,
    )  # fmt: skip
    hits = sum(as_hits(s).sum(axis=0) for s in train_ds.sequences)
    rates = np.asarray(hits, dtype=np.float64) / float(sum(len(s) for s in train_ds.sequences))
    reference = _reference(config, heldout)
    ctx = _Context(config, split, heldout, reference, rates, {}, {})

    from dataset.evaluation import FAMILIES

    assert tuple(FAMILIES) == _FAMILIES, "CSV columns out of date with dataset.evaluation"
    ctx_info = {
        "command": config.command or f"run_benchmark({config!r})",
        "data": split.source,
        "split": f"by {config.split_csv}" if config.split_csv else
                 f"seeded random split, {config.heldout_fraction:.0%} held out",
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


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser`` (``drum-env benchmark`` uses this too)."""
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--smoke", action="store_true", help="seconds: the test suite's run")
    budget.add_argument("--quick", action="store_true", help="under 15 min on 2 CPU cores")
    parser.add_argument("--data", default=None, help="npz folder (default: built-in corpus)")
    parser.add_argument("--split-csv", default=None,
                        help="Groove info.csv: hold out its 'test' split")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="run seeds")
    parser.add_argument("--budget", type=int, default=None, help="env steps per run")
    parser.add_argument("--shapings", nargs="+", default=None, choices=SHAPING_NAMES,
                        help="default: " + " ".join(DEFAULT_SHAPINGS))  # fmt: skip
    parser.add_argument("--tuned", default=None, metavar="FILE",
                        help="best_config.json of drum-env tune (run with the same split "
                             "settings): adds the 'tuned' row")  # fmt: skip
    parser.add_argument("--agents", nargs="+", default=None, choices=AGENTS)
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results", help="report folder")
    parser.add_argument("--work", default="runs/benchmark", help="runs and split folder")
    parser.add_argument("--resume", action="store_true", help="skip runs already in the CSV")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def config_from_args(args: argparse.Namespace, command: str | None = None) -> BenchmarkConfig:
    """The :class:`BenchmarkConfig` of parsed :func:`add_arguments` options."""
    budget = "smoke" if args.smoke else "quick" if args.quick else "default"
    changes: dict[str, Any] = {
        "data": args.data, "split_csv": args.split_csv, "out": args.out, "work": args.work,
        "resume": args.resume, "threads": args.threads, "progress": not args.no_progress,
        "command": command, "tuned_config": args.tuned,
    }  # fmt: skip
    for name, field in (("seeds", "seeds"), ("budget", "total_timesteps"),
                        ("shapings", "shapings"), ("agents", "agents"),
                        ("eval_episodes", "eval_episodes"), ("seq_len", "seq_len")):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            changes[field] = tuple(value) if isinstance(value, list) else value
    return BenchmarkConfig.preset(budget, **changes)


def main(argv: Sequence[str] | None = None, prog: str = "drum-env benchmark") -> int:
    """Run the benchmark from the command line; returns the exit code.

    Args:
        argv: options (default ``sys.argv[1:]``).
        prog: how the command is named in the help and in the report.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = add_arguments(argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args, command=" ".join([prog, *map(shlex.quote, argv)]))
        result = run_benchmark(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(result.md_path.read_text(encoding="utf-8"))
    print(f"wrote {result.csv_path}, {result.md_path}, {result.png_path}, {result.json_path} "
          f"({result.ran} run(s), {result.wall_s:.0f} s)")  # fmt: skip
    return 0
