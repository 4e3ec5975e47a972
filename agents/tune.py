"""Optuna over reward weights and PPO hyperparameters, scored on a validation split.

One study searches the reward weights of every term of :data:`drum_env.rewards.TERMS` (the five
levels plus ``silence`` and ``repetition``), the learning rate, dropout, the model width, the
entropy coefficient and (with a pretrained policy) the KL coefficient. Each trial trains
:func:`agents.ppo.train` for ``total_timesteps`` env steps and returns the shaping-independent
headline score of :mod:`dataset.evaluation` on a *validation* split (higher is better; the study
maximises it). The reward never judges itself.

* :class:`TuneConfig`: the study, the objective's fixed settings and the search-space bounds;
  frozen and validated (errors name the field).
* :func:`run_study`: ``run_study(config) -> StudyResult``.
* :func:`open_study`: create or load the study, with the storage and clash checks.
* :func:`export_best`: the best trial's :class:`~agents.ppo.PPOConfig` as a JSON file that
  ``drum-env train --config FILE`` accepts.
* :func:`objective` (one trial: :func:`suggest`, train, :func:`validation_score`) and
  :func:`make_pruner`: the pieces :func:`run_study` runs, public so that tests can replace them.
* The ``drum-env tune`` command is :mod:`agents.cli`'s, made from :class:`TuneConfig`.

## Search space

| parameter | Optuna name | distribution | default bounds |
|---|---|---|---|
| weight of each term ``k`` of ``weight_terms`` | ``w_<k>`` | uniform (see below) | [0, 2] |
| ``lr`` | ``lr`` | log-uniform | [1e-5, 1e-3] |
| ``dropout`` | ``dropout`` | uniform | [0, 0.2] |
| ``d_model`` | ``d_model`` | categorical, each a multiple of ``n_heads`` | {32, 64, 128} |
| ``ent_coef`` | ``ent_coef`` | log-uniform | [1e-4, 5e-2] |
| ``kl_coef`` | ``kl_coef`` | log-uniform, **only with** ``pretrained`` | [1e-3, 1] |

The weights are uniform, not log-uniform: 0 must be reachable, it switches a term off. They
replace the base ``shaping``'s weights for the terms they name; the shaping still decides
whether terms are normalised (``hierarchical``: running normalisation, ``hierarchical-raw``:
raw terms).

The KL penalty only means something towards a pretrained policy, so ``kl_coef`` is sampled only
when ``pretrained`` names a policy file (``drum-env pretrain``), and is 0 otherwise. A
pretrained policy fixes the architecture: ``d_model``, ``n_layers`` and ``n_heads`` are then
read from it and ``d_model`` is not searched. (Pretraining once per study inside the tuner was
the alternative; a file given by the user keeps the study cheap and its workers identical.)

## Objective and pruning

The data are split twice with the benchmark's own functions (``agents.benchmark``): first into
a test part (``heldout_fraction``, ``split_seed``, or a Groove ``split_csv``), *exactly as the
benchmark holds it out* when its ``heldout_fraction`` / ``split_seed`` / ``split_csv`` are the
same, and which the tuner never reads; then the rest into training and validation
(``validation_fraction``). A trial trains on the training part; every ``eval_every`` env steps
(rounded down to whole PPO iterations of ``num_envs * num_steps``) it plays ``eval_episodes``
episodes on the validation part (reset seed ``eval_seed``: the same primers for every trial)
and reports the headline (mean overlapping area over the discriminative feature families,
against ceiling and floors computed on the validation windows) with ``trial.report(score,
env_steps)``. When the pruner says so, training stops and the trial ends PRUNED. The last
evaluation (after ``total_timesteps`` env steps) is the trial's value. Evaluations read the
checkpoint that :func:`agents.ppo.train` writes every ``eval_every`` steps, so a report
lags training by one iteration (the callback of iteration ``i + 1`` scores the policy of
iteration ``i``).

Pruners: ``"median"`` (Optuna's ``MedianPruner``: after ``pruner_startup_trials`` finished
trials and ``pruner_warmup_steps`` env steps, stop a trial whose report is worse than the
median of the other trials at the same step), ``"hyperband"`` (``HyperbandPruner`` with
``min_resource = eval_every``, ``max_resource = budget``) or ``"none"``.

Trial ``n`` trains with seed ``seed + n`` (model, env resets, action sampling); the evaluation
samples actions with the same seed. A trial that raises is recorded FAIL (with its error in the
trial's ``error`` user attribute) and the next trial runs; after ``max_failures`` failures in a
row a worker stops. A worker that dies leaves its trial RUNNING until the heartbeat
(``heartbeat_s``) lapses, then the next worker to start a trial marks it FAIL. Neither touches
the finished trials.

## Storage, workers, resume

By default the study lives in a SQLite file, ``out/<study_name>.db`` (``runs/tune/
drum-env.db``). ``storage`` takes any SQLAlchemy URL Optuna's ``RDBStorage`` accepts, e.g.
PostgreSQL (``pip install 'drum-env[postgres]'`` for the driver) so workers on several
machines share one study::

    # once: create the study (runs no trial)
    drum-env tune --storage postgresql://user:pw@db/drumenv --study-name s1 --n-trials 0
    # then on every machine, as many workers as you like:
    drum-env tune --storage postgresql://user:pw@db/drumenv --study-name s1 --resume --n-trials 10

Without ``--resume`` an existing study is an error (so a typo never mixes two experiments);
``--resume`` continues a study, with new trial numbers after the existing ones, and requires
that it exists and was created with the same search space and objective settings (the study
stores them as its user attributes ``search_space`` and ``objective``; a clash names the
fields that differ). Data paths, the device and the storage may differ between workers.
``n_trials`` counts the trials of one worker.

## Export and the dashboard

After every run the best trial's config is written to ``out/<study_name>/best_config.json``
(``best_config`` to change it): every :class:`~agents.ppo.PPOConfig` field, with the data
folder given to the tuner, the trial's seed and ``total_timesteps``; train it with
``drum-env train --config runs/tune/drum-env/best_config.json`` (options after it override,
e.g. ``--total-timesteps 100000``). ``--resume --n-trials 0`` only exports.

Open the Optuna dashboard on the same storage URL::

    pip install optuna-dashboard
    optuna-dashboard sqlite:///runs/tune/drum-env.db     # then open http://127.0.0.1:8080

Each trial shows its intermediate scores (x axis: env steps), its parameters and its user
attributes (the full PPO config, the seed, the validation song term and return).

>>> TuneConfig(total_timesteps=4096, num_envs=8, num_steps=64).iterations
8
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from agents.evaluation.heldout import HeldoutConfig
from agents.storage import open_storage, shown_url
from agents.task import (
    RunConfig,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_path,
    is_int,
)

if TYPE_CHECKING:
    import optuna

    from agents.training.ppo import PPOConfig

__all__ = [
    "PRUNERS",
    "TuneConfig",
    "StudyResult",
    "run_study",
    "open_study",
    "export_best",
    "TrialData",
    "suggest",
    "objective",
    "validation_score",
    "make_pruner",
]

PRUNERS: tuple[str, ...] = ("median", "hyperband", "none")
"""Pruner names: Optuna's ``MedianPruner``, ``HyperbandPruner``, or no pruning."""

_FORMAT_VERSION = 1  # of the study's user attributes
_DIRECTION = "maximize"


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TuneConfig(RunConfig, HeldoutConfig):
    """One Optuna study: storage, budget, data, fixed PPO settings and search-space bounds.

    The task (its ``shaping`` is the base shaping: it decides the normalisation, and the sampled
    weights replace its weights of ``weight_terms``) and the split come from
    :class:`~agents.heldout.HeldoutConfig`: ``heldout_players`` / ``split_csv`` /
    ``heldout_fraction`` make the *test* part, never read by the tuner (use the benchmark's
    settings), and ``validation_fraction`` of the rest is validated on. The run settings come
    from :class:`~agents.task.RunConfig`: ``out`` holds the default SQLite file and
    ``<study_name>/`` (trial runs, best config); trial ``n`` trains with seed ``seed + n``;
    ``device`` is the trials' training device (evaluation runs on the CPU); ``resume``
    continues an existing study (without it the study must be new); ``progress`` logs every
    finished trial (Optuna's INFO log); ``force`` is not used. Frozen; validated on
    construction with :mod:`agents.task`'s checks (errors name the field and the allowed
    range). Derived values (``batch_size``, ``iterations``, ``storage_url``, ...) are
    properties.
    """

    DEFAULT_OUT: ClassVar[str] = "runs/tune"
    UNUSED_RUN_SETTINGS: ClassVar[tuple[str, ...]] = ("force",)

    # --- study
    study_name: str = "drum-env"
    """Name of the study in the storage."""
    storage: str | None = None
    """An Optuna RDB URL (``postgresql://user:pw@host/db``, ``sqlite:///file.db``, ...);
    ``None``: the SQLite file ``out/<study_name>.db``."""
    n_trials: int | None = 20
    """Trials this worker runs (``None``: until ``timeout``); 0 only creates or checks the
    study and exports the best config."""
    timeout: float | None = None
    """Seconds after which this worker starts no new trial; ``None``: no limit."""
    pruner: str = "median"
    """``"median"``, ``"hyperband"`` or ``"none"``."""
    pruner_startup_trials: int = 4
    """Median pruner: finished trials before any trial is pruned."""
    pruner_warmup_steps: int = 0
    """Median pruner: env steps of a trial before it can be pruned."""
    hyperband_reduction_factor: int = 3
    """Hyperband: the reduction factor ``eta`` (>= 2)."""
    sampler_seed: int | None = 0
    """Seed of the TPE sampler (``None``: random). Workers sharing a study should use different
    seeds, or their first (random) trials repeat each other's parameters."""
    max_failures: int = 3
    """Failed trials in a row after which this worker stops."""
    heartbeat_s: int | None = 60
    """Seconds between heartbeats of a running trial; a trial silent for twice as long (its
    worker died) is marked FAIL by the next worker. ``None``: no heartbeat."""

    # --- objective
    total_timesteps: int = 16_384
    """Env steps of one trial's training; at least one PPO iteration (``num_envs *
    num_steps``), rounded down to whole iterations."""
    eval_every: int = 4096
    """Env steps between validation evaluations (reports to the pruner), rounded down to whole
    iterations (at least one); the final evaluation always runs."""
    eval_episodes: int = 32
    """Validation episodes per evaluation (>= 2); the ceiling and floors use twice as many
    validation windows."""
    validation_fraction: float = 0.25
    """Share of the rest that forms the validation part, in (0, 1)."""
    split_seed: int = 0
    """Seed of both splits and of the validation baselines; use the benchmark's
    ``split_seed``."""
    # --- fixed PPO settings
    num_envs: int = 16
    """Sub-envs of the vector env."""
    num_steps: int = 32
    """Steps per sub-env per rollout."""
    num_minibatches: int = 4
    """Minibatches per PPO epoch; must divide ``num_envs * num_steps``."""
    n_layers: int = 1
    """Transformer layers (from the policy file when ``pretrained``)."""
    n_heads: int = 2
    """Attention heads; divides every ``d_model_choices`` (from the policy file when
    ``pretrained``)."""
    pretrained: str | None = None
    """A policy file (``drum-env pretrain``): initialises every trial, is the KL reference, and
    turns on the ``kl_coef`` search; ``None``: ``kl_coef = 0``."""

    # --- search space
    weight_terms: tuple[str, ...] | None = None
    """Terms whose weight is searched; ``None``: every term of ``drum_env.rewards.TERMS``."""
    weight_low: float = 0.0
    """Lower bound of each weight (uniform), >= 0."""
    weight_high: float = 2.0
    """Upper bound of each weight."""
    lr_low: float = 1e-5
    """Lower bound of the learning rate (log-uniform), > 0."""
    lr_high: float = 1e-3
    """Upper bound of the learning rate."""
    dropout_low: float = 0.0
    """Lower bound of dropout (uniform), >= 0."""
    dropout_high: float = 0.2
    """Upper bound of dropout, < 1."""
    d_model_choices: tuple[int, ...] = (32, 64, 128)
    """Transformer widths to choose from; each a multiple of ``n_heads``."""
    ent_coef_low: float = 1e-4
    """Lower bound of the entropy coefficient (log-uniform), > 0."""
    ent_coef_high: float = 5e-2
    """Upper bound of the entropy coefficient."""
    kl_coef_low: float = 1e-3
    """Lower bound of the KL coefficient (log-uniform, only with ``pretrained``), > 0."""
    kl_coef_high: float = 1.0
    """Upper bound of the KL coefficient."""

    # --- outputs
    best_config: str | None = None
    """Where to write the best trial's PPO config; ``None``: ``out/<study_name>/
    best_config.json``."""
    keep_checkpoints: bool = False
    """Keep every trial's ``checkpoint.pt`` (its ``policy.pt`` is always kept)."""

    def __post_init__(self) -> None:
        self._check_task()
        self._check_heldout()
        self._check_run()
        for name in ("storage", "pretrained", "best_config"):
            check_path(self, name)
        if not isinstance(self.study_name, str) or not self.study_name.strip():
            raise ValueError(f"study_name must be a non-empty string, got {self.study_name!r}")
        if any(c in self.study_name for c in "/\\") or self.study_name in (".", ".."):
            raise ValueError(f"study_name must not be a path, got {self.study_name!r}")
        check_bool("keep_checkpoints", self.keep_checkpoints)

        # budget first: the most common mistake gets the clearest message
        for name in ("num_envs", "num_steps"):
            check_int(name, getattr(self, name), 1)
        check_int("total_timesteps", self.total_timesteps, 1)
        if self.total_timesteps < self.batch_size:
            raise ValueError(
                f"total_timesteps={self.total_timesteps} env steps is less than one PPO "
                f"iteration (num_envs * num_steps = {self.batch_size})"
            )
        minimum = {
            "eval_every": 1, "num_minibatches": 1, "n_layers": 1, "n_heads": 1,
            "max_failures": 1, "pruner_startup_trials": 0, "pruner_warmup_steps": 0,
            "hyperband_reduction_factor": 2,
        }  # fmt: skip
        for name, low in minimum.items():
            check_int(name, getattr(self, name), low)
        check_int("n_trials", self.n_trials, 0, optional=True)
        check_number("timeout", self.timeout, 0.0, low_open=True, optional=True)
        if self.n_trials is None and self.timeout is None:
            raise ValueError("n_trials and timeout are both None: give at least one of them")
        check_int("sampler_seed", self.sampler_seed, 0, optional=True)
        check_int("heartbeat_s", self.heartbeat_s, 1, optional=True)
        check_choice("pruner", self.pruner, PRUNERS)
        check_number("validation_fraction", self.validation_fraction, 0.0, 1.0, True, True)

        # search space: bounds, then low <= high
        check_number("weight_low", self.weight_low, 0.0)
        check_number("weight_high", self.weight_high)
        check_number("lr_low", self.lr_low, 0.0, low_open=True)
        check_number("lr_high", self.lr_high)
        check_number("dropout_low", self.dropout_low, 0.0)
        check_number("dropout_high", self.dropout_high, high=1.0, high_open=True)
        check_number("ent_coef_low", self.ent_coef_low, 0.0, low_open=True)
        check_number("ent_coef_high", self.ent_coef_high)
        check_number("kl_coef_low", self.kl_coef_low, 0.0, low_open=True)
        check_number("kl_coef_high", self.kl_coef_high)
        for stem in ("weight", "lr", "dropout", "ent_coef", "kl_coef"):
            lo, hi = getattr(self, f"{stem}_low"), getattr(self, f"{stem}_high")
            if lo > hi:
                raise ValueError(f"{stem}_low={lo} must be <= {stem}_high={hi}")
        choices = self.d_model_choices
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
            raise ValueError(f"d_model_choices must be a sequence of integers, got {choices!r}")
        object.__setattr__(self, "d_model_choices", tuple(choices))
        choices = self.d_model_choices
        if not choices or len(set(choices)) != len(choices):
            raise ValueError(f"d_model_choices must be non-empty and unique, got {choices!r}")
        for c in choices:
            if not is_int(c) or c < 1 or c % self.n_heads:
                raise ValueError(
                    f"d_model_choices: every width must be a positive multiple of n_heads="
                    f"{self.n_heads}, got {c!r}"
                )

        from drum_env.rewards import TERMS

        terms = self.weight_terms
        if terms is None:
            terms = TERMS
        if isinstance(terms, (str, bytes)) or not isinstance(terms, Sequence):
            raise ValueError(f"weight_terms must be a sequence of term names, got {terms!r}")
        unknown = sorted(set(terms) - set(TERMS))
        if unknown:
            raise ValueError(f"weight_terms: unknown term(s) {unknown}; known terms: "
                             f"{list(TERMS)}")  # fmt: skip
        if len(set(terms)) != len(terms):
            raise ValueError(f"weight_terms has duplicates: {list(terms)!r}")
        object.__setattr__(self, "weight_terms", tuple(t for t in TERMS if t in terms))

        # the fixed PPO settings must make a valid PPOConfig (env arguments, minibatches, ...)
        try:
            self.ppo_config({"d_model": choices[0], "lr": self.lr_low,
                             "ent_coef": self.ent_coef_low, "dropout": self.dropout_low},
                            seed=0, arch=None)  # fmt: skip
        except ValueError as exc:
            raise ValueError(f"the fixed PPO settings are invalid: {exc}") from None

    # ------------------------------------------------------------------------- derived

    @property
    def batch_size(self) -> int:
        """Env steps per PPO iteration: ``num_envs * num_steps``."""
        return self.num_envs * self.num_steps

    @property
    def iterations(self) -> int:
        """PPO iterations per trial: ``total_timesteps // batch_size``."""
        return self.total_timesteps // self.batch_size

    @property
    def eval_iterations(self) -> int:
        """Iterations between evaluations: ``max(1, eval_every // batch_size)``."""
        return max(1, self.eval_every // self.batch_size)

    @property
    def study_dir(self) -> Path:
        """``out/<study_name>``: the trials' runs and the best config."""
        return Path(self.out) / self.study_name

    @property
    def storage_url(self) -> str:
        """``storage``, or the URL of the default SQLite file ``out/<study_name>.db``."""
        if self.storage is not None:
            return self.storage
        return "sqlite:///" + (Path(self.out) / f"{self.study_name}.db").as_posix()

    @property
    def best_config_path(self) -> Path:
        """Where :func:`run_study` writes the best trial's PPO config."""
        if self.best_config is not None:
            return Path(self.best_config)
        return self.study_dir / "best_config.json"

    def search_space(self) -> dict[str, Any]:
        """The bounds a study is created with (stored as its ``search_space`` attribute).

        ``kl_coef`` is ``None`` without ``pretrained``; ``d_model`` is ``None`` with it (the
        policy file fixes the width).
        """
        pre = self.pretrained is not None
        return {
            "weight_terms": list(self.weight_terms or ()),
            "weight": [self.weight_low, self.weight_high],
            "lr": [self.lr_low, self.lr_high],
            "dropout": [self.dropout_low, self.dropout_high],
            "d_model": None if pre else list(self.d_model_choices),
            "ent_coef": [self.ent_coef_low, self.ent_coef_high],
            "kl_coef": [self.kl_coef_low, self.kl_coef_high] if pre else None,
        }

    def objective_settings(self) -> dict[str, Any]:
        """The fixed settings that make trial scores comparable (stored as ``objective``).

        Paths (data, split CSV, policy file), the device, the storage and the worker options are
        left out: they may differ between the machines of one study.
        """
        names = (
            "total_timesteps", "eval_every", "eval_episodes", "eval_seed", "seed",
            "heldout_fraction", "validation_fraction", "split_seed", "num_envs", "num_steps",
            "num_minibatches", "n_layers", "n_heads", "amp",
        )  # fmt: skip
        settings: dict[str, Any] = {n: getattr(self, n) for n in names}
        settings.update({k: v for k, v in self.task_fields().items() if k != "data"})
        settings["heldout_players"] = (None if self.heldout_players is None
                                       else list(self.heldout_players))  # fmt: skip
        settings["pretrained"] = self.pretrained is not None
        settings["split"] = ("players" if self.heldout_players is not None else "csv"
                             if self.split_csv is not None else "random")  # fmt: skip
        return settings

    def ppo_config(
        self,
        params: Mapping[str, Any],
        seed: int,
        arch: tuple[int, int, int] | None = None,
        **changes: Any,
    ) -> PPOConfig:
        """The :class:`~agents.ppo.PPOConfig` of a trial's parameters.

        Args:
            params: Optuna parameters: ``w_<term>`` for each of ``weight_terms``, ``lr``,
                ``dropout``, ``ent_coef``, ``d_model`` (unless ``arch``) and ``kl_coef`` (with
                ``pretrained``; 0 when absent).
            seed: the run's seed (``seed + trial.number``).
            arch: ``(d_model, n_layers, n_heads)`` of the pretrained policy, or ``None``.
            **changes: other PPOConfig fields (``data``, ``out``, ...).

        Returns:
            PPOConfig, with the study's task and ``total_timesteps`` unless changed.
        """
        from agents.training.ppo import PPOConfig

        weights = {**(self.weight_mapping or {}),
                   **{k[2:]: float(v) for k, v in params.items() if k.startswith("w_")}}
        d_model, n_layers, n_heads = arch if arch else (params["d_model"], self.n_layers,
                                                        self.n_heads)  # fmt: skip
        values: dict[str, Any] = dict(
            **{**self.task_fields(), "weights": weights or None},
            num_envs=self.num_envs, num_steps=self.num_steps,
            total_timesteps=self.total_timesteps, num_minibatches=self.num_minibatches,
            learning_rate=float(params["lr"]),
            ent_coef=float(params["ent_coef"]), kl_coef=float(params.get("kl_coef", 0.0)),
            pretrained=self.pretrained, d_model=int(d_model), n_layers=int(n_layers),
            n_heads=int(n_heads), dropout=float(params["dropout"]), amp=self.amp,
            device=self.device, threads=self.threads, seed=int(seed),
            out=f"runs/tuned/{self.study_name}",
        )  # fmt: skip
        values.update(changes)
        return PPOConfig(**values)


class StudyResult(NamedTuple):
    """What :func:`run_study` returns."""

    study: Any
    """The ``optuna.Study`` (its storage stays open)."""
    storage: str
    """The storage URL, password hidden."""
    trials_run: int
    """Trials this call ran (any state)."""
    complete: int
    """COMPLETE trials in the study (all workers)."""
    pruned: int
    """PRUNED trials in the study."""
    failed: int
    """FAIL trials in the study."""
    best_trial: int | None
    """Number of the best trial; ``None`` while no trial completed."""
    best_value: float | None
    """Its validation headline score, in [0, 1]."""
    best_params: dict[str, Any]
    """Its Optuna parameters."""
    best_config_path: Path | None
    """The JSON file of its PPO config (``None`` while no trial completed)."""
    stopped: str | None
    """Why this worker stopped before ``n_trials`` (``max_failures`` reached), else ``None``."""
    wall_s: float
    """Seconds this call took."""


# ----------------------------------------------------------------------------- study checks


def _diff(stored: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(stored) | set(given))
    return [f"{k}: stored {stored.get(k)!r}, given {given.get(k)!r}" for k in keys
            if stored.get(k) != given.get(k)]  # fmt: skip


def _check_study(study: optuna.Study, config: TuneConfig, shown: str) -> None:
    """Raise if ``study`` was created with another search space or objective."""
    attrs = study.user_attrs
    name = config.study_name
    if "search_space" not in attrs:
        if study.trials:
            raise ValueError(
                f"study {name!r} in {shown!r} was not created by drum-env tune (it has no "
                "search_space attribute); choose another --study-name"
            )
        _record_settings(study, config)  # an empty study another worker is still setting up
        return
    if [d.name.lower() for d in study.directions] != [_DIRECTION]:
        raise ValueError(f"study {name!r} in {shown!r} does not maximise one value")
    for key, given in (("search_space", config.search_space()),
                       ("objective", config.objective_settings())):  # fmt: skip
        diff = _diff(attrs.get(key, {}), json.loads(json.dumps(given)))
        if diff:
            what = "search space" if key == "search_space" else "objective settings"
            raise ValueError(
                f"study {name!r} in {shown!r} was created with a different {what}: "
                f"{'; '.join(diff)}. Use the stored values, or another --study-name"
            )


def _record_settings(study: optuna.Study, config: TuneConfig) -> None:
    study.set_user_attr("search_space", config.search_space())
    study.set_user_attr("objective", config.objective_settings())
    study.set_user_attr("drum_env_tune_version", _FORMAT_VERSION)
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental API: only the dashboard's axis label
        study.set_metric_names(["validation headline"])


def open_study(
    config: TuneConfig,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    check: bool = True,
) -> optuna.Study:
    """Create the study (``resume=False``) or load it (``resume=True``).

    Args:
        config: the study.
        sampler: the sampler of this worker (default: Optuna's).
        pruner: the pruner of this worker (default: Optuna's).
        check: on load, require the stored search space and objective settings to equal
            ``config``'s.

    Returns:
        optuna.Study, direction maximise.

    Raises:
        ValueError: a bad URL or missing driver; without ``resume`` an existing study; with
            ``resume`` a missing study, or one created with other settings (named).
        ConnectionError: the storage cannot be reached.
    """
    import optuna

    sqlite_dir = config.out if config.storage is None else None
    storage = open_storage(config.storage_url, config.heartbeat_s, sqlite_dir)
    shown, name = shown_url(config.storage_url), config.study_name
    if config.resume:
        try:
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                      pruner=pruner)  # fmt: skip
        except KeyError:
            names = optuna.get_all_study_names(storage)
            held = f"{names[:10]}{' ...' if len(names) > 10 else ''}"
            raise ValueError(
                f"--resume: no study {name!r} in {shown!r} (it holds {held}); run once without "
                "--resume to create it"
            ) from None
        if check:
            _check_study(study, config, shown)
        return study
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=_DIRECTION,
                                    sampler=sampler, pruner=pruner)  # fmt: skip
    except optuna.exceptions.DuplicatedStudyError:
        raise ValueError(
            f"study {name!r} already exists in {shown!r}; pass --resume (resume=True) to "
            "continue it, or choose another --study-name"
        ) from None
    _record_settings(study, config)
    return study


# ----------------------------------------------------------------------------- data


class TrialData(NamedTuple):
    """What every trial of a worker shares: its split of the data and the validation set-up."""

    train_dir: Path  # the tuner's training part (npz folder)
    heldout: Any  # agents.heldout.HeldoutConfig of the validation evaluation
    env_kwargs: dict[str, Any]  # DrumCompose-v0 kwargs on the validation part
    reference: Any  # agents.heldout.Reference: ceiling and floors on validation windows
    arch: tuple[int, int, int] | None  # (d_model, n_layers, n_heads) of the pretrained policy


@contextlib.contextmanager
def _prepared_data(config: TuneConfig) -> Iterator[TrialData]:
    """Split the data (test | train | validation) into a folder of this worker; remove it after.

    Uses :mod:`agents.heldout`'s split and evaluation, so the test part is the benchmark's
    held-out part for equal ``split_seed`` / ``heldout_players`` / fraction / CSV.
    """
    from agents.evaluation.heldout import heldout_dataset, reference, write_split

    config.study_dir.mkdir(parents=True, exist_ok=True)
    # one folder per worker process: workers on one machine never rewrite each other's split
    work = Path(tempfile.mkdtemp(prefix=f"split-{socket.gethostname()}-{os.getpid()}-",
                                 dir=config.study_dir))  # fmt: skip
    try:
        outer = write_split(config, work / "test")  # train+validation | test (never read below)
        inner_config = dataclasses.replace(
            config, data=str(outer.train_dir), split_csv=None, heldout_players=None,
            heldout_fraction=config.validation_fraction, baseline_splits=1,
        )  # fmt: skip
        inner = write_split(inner_config, work / "validation")
        validation = heldout_dataset(config, inner.heldout_dir)
        try:
            ref = reference(inner_config, validation)
        except ValueError as exc:
            raise ValueError(f"validation split: {exc}") from None
        arch = _pretrained_arch(config) if config.pretrained is not None else None
        yield TrialData(inner.train_dir, inner_config, config.env_kwargs(validation), ref, arch)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pretrained_arch(config: TuneConfig) -> tuple[int, int, int]:
    """``(d_model, n_layers, n_heads)`` of the pretrained policy, checked against the env."""
    from agents.policies.policy import load_policy

    assert config.pretrained is not None
    pc = load_policy(config.pretrained).config
    for name in ("context_steps", "steps_per_bar", "bars_per_phrase"):
        if getattr(pc, name) != getattr(config, name):
            raise ValueError(
                f"pretrained policy {config.pretrained!r} has {name}={getattr(pc, name)}, the "
                f"study {name}={getattr(config, name)}"
            )
    return pc.d_model, pc.n_layers, pc.n_heads


# ----------------------------------------------------------------------------- objective


def suggest(trial: optuna.Trial, config: TuneConfig, data: TrialData) -> dict[str, Any]:
    """Sample one point of the search space (see the module docstring's table)."""
    params: dict[str, Any] = {}
    for term in config.weight_terms or ():
        params[f"w_{term}"] = trial.suggest_float(f"w_{term}", config.weight_low,
                                                  config.weight_high)  # fmt: skip
    params["lr"] = trial.suggest_float("lr", config.lr_low, config.lr_high, log=True)
    params["dropout"] = trial.suggest_float("dropout", config.dropout_low, config.dropout_high)
    if data.arch is None:
        params["d_model"] = trial.suggest_categorical("d_model", list(config.d_model_choices))
    params["ent_coef"] = trial.suggest_float("ent_coef", config.ent_coef_low,
                                             config.ent_coef_high, log=True)  # fmt: skip
    if config.pretrained is not None:
        params["kl_coef"] = trial.suggest_float("kl_coef", config.kl_coef_low,
                                                config.kl_coef_high, log=True)  # fmt: skip
    return params


def validation_score(data: TrialData, policy: Any, seed: int) -> dict[str, float]:
    """Score ``policy`` on the validation episodes (:func:`agents.heldout.evaluate`).

    Returns:
        ``headline`` (in [0, 1], higher is better), ``song_raw``, ``episode_return``,
        ``oa_<family>``.
    """
    from agents.evaluation.heldout import evaluate
    from agents.evaluation.rollout import policy_fn

    return evaluate(policy_fn(policy, seed=seed), data.heldout, data.env_kwargs, data.reference)


def objective(trial: optuna.Trial, config: TuneConfig, data: TrialData) -> float:
    """Train one trial, reporting validation scores; returns the final validation headline."""
    import optuna

    from agents.evaluation.rollout import load_any_policy
    from agents.training.ppo import train

    params = suggest(trial, config, data)
    seed = config.seed + trial.number
    out = config.study_dir / f"trial_{trial.number:05d}"
    shutil.rmtree(out, ignore_errors=True)  # a leftover of an earlier study of the same name
    run = config.ppo_config(
        params, seed, data.arch, data=str(data.train_dir), out=str(out),
        checkpoint_every=config.eval_iterations, force=True, progress=False, tensorboard=False,
    )  # fmt: skip
    exported = dataclasses.replace(
        run,
        data=config.data,
        out=f"runs/tuned/{config.study_name}",
        checkpoint_every=10,
        force=False,
        progress=True,
        tensorboard=True,
    )
    trial.set_user_attr("ppo_config", exported.to_dict())
    trial.set_user_attr("seed", seed)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr("run_dir", str(out))

    every, iterations, batch = config.eval_iterations, run.num_iterations, run.batch_size
    checkpoint = out / "checkpoint.pt"
    pruned_at: list[int] = []

    def callback(metrics: dict[str, float]) -> bool:
        done = int(metrics["iteration"]) - 1  # the checkpoint on disk is iteration i - 1's
        if done >= 1 and done % every == 0 and done < iterations:
            policy = load_any_policy(checkpoint)
            score = validation_score(data, policy, seed)["headline"]
            trial.report(score, done * batch)
            if trial.should_prune():
                pruned_at.append(done * batch)
                return False
        return True

    try:
        try:
            result = train(run, callback)
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        if pruned_at:
            raise optuna.TrialPruned(f"pruned after {pruned_at[0]} env steps")
        try:
            row = validation_score(data, result.policy.cpu(), seed)
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        trial.report(row["headline"], result.global_step)
        trial.set_user_attr("env_steps", int(result.global_step))
        for key in ("song_raw", "episode_return"):
            trial.set_user_attr(f"validation_{key}", float(row[key]))
        return float(row["headline"])
    finally:
        if not config.keep_checkpoints:
            checkpoint.unlink(missing_ok=True)


def make_pruner(config: TuneConfig):  # -> optuna.pruners.BasePruner
    """The study's Optuna pruner (``config.pruner``; see the module docstring)."""
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.pruner_startup_trials,
            n_warmup_steps=config.pruner_warmup_steps,
        )
    if config.pruner == "hyperband":
        step = config.eval_iterations * config.batch_size
        return optuna.pruners.HyperbandPruner(
            min_resource=min(step, config.iterations * config.batch_size),
            max_resource=config.iterations * config.batch_size,
            reduction_factor=config.hyperband_reduction_factor,
        )
    return optuna.pruners.NopPruner()


# ----------------------------------------------------------------------------- study


def run_study(config: TuneConfig) -> StudyResult:
    """Create or resume the study, run ``n_trials`` trials (or until ``timeout``), export the best.

    Args:
        config: the study.

    Returns:
        StudyResult.

    Raises:
        ValueError: bad data or split, a bad storage URL, a study that exists (without
            ``resume``), is missing (with ``resume``) or was created with other settings.
        ConnectionError: the storage cannot be reached.
    """
    import optuna

    t_start = time.perf_counter()
    sampler = optuna.samplers.TPESampler(seed=config.sampler_seed)
    pruner = make_pruner(config)
    ran: list[int] = []
    stopped: list[str] = []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO if config.progress
                                 else optuna.logging.WARNING)  # fmt: skip
    try:
        if config.n_trials == 0:
            study = open_study(config, sampler, pruner)
        else:
            with _prepared_data(config) as data:  # bad data fails before a study is created
                study = open_study(config, sampler, pruner)
                streak = [0]

                def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                    ran.append(trial.number)
                    streak[0] = streak[0] + 1 if trial.state.name == "FAIL" else 0
                    if streak[0] >= config.max_failures:
                        stopped.append(f"{streak[0]} trials in a row failed (max_failures)")
                        study.stop()

                with config.torch_threads():
                    study.optimize(
                        lambda trial: objective(trial, config, data), n_trials=config.n_trials,
                        timeout=config.timeout, catch=(Exception,), callbacks=[after_trial],
                        gc_after_trial=True,
                    )  # fmt: skip
    finally:
        optuna.logging.set_verbosity(verbosity)

    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    complete = states.count("COMPLETE")
    best_path = None
    best_trial = best_value = None
    best_params: dict[str, Any] = {}
    if complete:
        best = study.best_trial
        best_trial, best_value, best_params = best.number, float(best.value), dict(best.params)
        best_path = export_best(study, config.best_config_path)
    return StudyResult(
        study, shown_url(config.storage_url), len(ran), complete, states.count("PRUNED"),
        states.count("FAIL"), best_trial, best_value, best_params, best_path,
        stopped[0] if stopped else None, time.perf_counter() - t_start,
    )  # fmt: skip


def export_best(source: TuneConfig | optuna.Study, path: str | Path | None = None) -> Path:
    """Write the best trial's :class:`~agents.ppo.PPOConfig` as JSON for ``drum-env train``.

    Args:
        source: a study, or a config naming one (loaded without the settings check).
        path: the file; default: ``config.best_config_path`` for a config,
            ``runs/tune/<study>/best_config.json`` for a study.

    Returns:
        The path written (atomically; folders created).

    Raises:
        ValueError: no trial of the study has completed, or the study is missing.
    """
    from agents.training.ppo import PPOConfig

    if isinstance(source, TuneConfig):
        study = open_study(dataclasses.replace(source, resume=True), check=False)
        default = source.best_config_path
    else:
        study = source
        default = Path("runs/tune") / study.study_name / "best_config.json"
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not done:
        raise ValueError(f"study {study.study_name!r} has no completed trial to export yet")
    best = study.best_trial
    values = best.user_attrs.get("ppo_config")
    if not isinstance(values, dict):
        raise ValueError(f"trial {best.number} of study {study.study_name!r} has no ppo_config "
                         "attribute (not a drum-env tune study)")  # fmt: skip
    values = PPOConfig(**values).to_dict()  # validates; the same keys `drum-env train` accepts
    from dataset.io import atomic_write

    text = json.dumps(values, indent=1) + "\n"
    return atomic_write(Path(default if path is None else path), lambda f: f.write(text.encode()))
