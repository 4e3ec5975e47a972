"""The task and run specs: the settings every command shares, declared once, and the validators.

Every config that builds a ``DrumCompose-v0`` env (:class:`~agents.training.ppo.PPOConfig`,
:class:`~agents.training.pretrain.PretrainConfig`, :class:`~agents.baselines.sb3.BaselineConfig`,
:class:`~agents.tune.TuneConfig`, :class:`~agents.evaluation.benchmark.BenchmarkConfig`,
:class:`~agents.evaluation.generate.GenerateConfig`) derives from :class:`TaskConfig`, so a
task setting has one name, one default, one docstring and one check everywhere, and
:meth:`TaskConfig.env_kwargs` is the only place that turns it into the env's arguments.

The defaults are the CPU-sized task the commands train on (4 bars of 16ths, one bar of
primer, 16 steps of context): smaller than the env's own defaults (``seq_len=128``,
``prompt_bars=2``, ``context_steps=32``), which ``gymnasium.make`` keeps.

Beside it, :class:`RunConfig` declares the run settings (``out``, ``seed``, ``device``,
``threads``, ``amp``, ``progress``, ``resume``, ``force``) once, with one default each; every
command's config derives from both. The commands that train (``train``, ``pretrain``,
``baseline``) also derive from :class:`TrackConfig`: CleanRL's ``exp_name``, ``track`` and its
W&B settings, and a fresh run folder ``runs/{env_id}__{exp_name}__{seed}__{unix_time}`` when
``out`` is not given (:func:`default_run_dir`).

The validators (:func:`check_int`, :func:`check_number`, :func:`check_bool`,
:func:`check_path`, :func:`check_choice`) raise ``ValueError`` naming the field and the allowed
range; every config uses them.

>>> TaskConfig(seq_len=32).env_kwargs()["seq_len"]
32
>>> TaskConfig(seq_len=30)
Traceback (most recent call last):
...
ValueError: seq_len must be a multiple of steps_per_bar=16, got 30
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from drum_env.rewards import MAX_WEIGHT  # re-exported: the env's one weight bound

__all__ = [
    "TaskConfig",
    "RunConfig",
    "TrackConfig",
    "ENV_ID",
    "default_run_dir",
    "MAX_WEIGHT",
    "is_int",
    "is_number",
    "check_int",
    "check_number",
    "check_bool",
    "check_path",
    "check_choice",
    "replace_config",
    "config_to_dict",
]


# ----------------------------------------------------------------------------- validators


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (numpy integers count; bools do not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (ints and floats, numpy's too; bools do not)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None,
              optional: bool = False) -> None:  # fmt: skip
    """Raise ``ValueError`` unless ``value`` is an integer in ``[low, high]`` (or None if optional).

    Args:
        name: the field's name, for the message.
        value: the value.
        low: smallest allowed value (None: unbounded).
        high: largest allowed value (None: unbounded).
        optional: whether ``None`` is allowed.
    """
    if optional and value is None:
        return
    ok = is_int(value) and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        if high is None:
            want = f"an integer >= {low}" if low is not None else "an integer"
        else:
            want = f"an integer in [{low}, {high}]"
        raise ValueError(f"{name} must be {want}{' or None' if optional else ''}, got {value!r}")


def check_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False,
                 optional: bool = False) -> None:  # fmt: skip
    """Raise ``ValueError`` unless ``value`` is a finite number in the given interval.

    Args:
        name: the field's name, for the message.
        value: the value.
        low: lower bound.
        high: upper bound.
        low_open: exclude ``low``.
        high_open: exclude ``high``.
        optional: whether ``None`` is allowed.
    """
    if optional and value is None:
        return
    ok = is_number(value) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(
            f"{name} must be a finite number in {lo}{low}, {high}{hi}"
            f"{' or None' if optional else ''}, got {value!r}"
        )


def check_bool(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices`` (listed in the message)."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_path(obj: Any, name: str, optional: bool = True) -> None:
    """Normalise field ``name`` of frozen dataclass ``obj`` to a ``str`` path, or raise.

    ``os.PathLike`` values become strings; ``None`` passes when ``optional``; an empty string
    never does.
    """
    value = getattr(obj, name)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        object.__setattr__(obj, name, value)
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{name} must be a non-empty path{' or None' if optional else ''}, got {value!r}"
        )


def _json_arg(name: str, value: Any, expected: str) -> Any:
    """``value`` parsed from JSON when it is a string (a command-line option), else as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be {expected}: {exc}") from exc


def _weights_pairs(value: Any) -> tuple[tuple[str, float], ...] | None:
    """``weights`` as ``(term, weight)`` pairs in ``TERMS`` order (a JSON string, dict or pairs).

    Each weight must be a finite number in ``[0, MAX_WEIGHT]``: 0 switches a term off; a
    negative weight would reward the opposite of the term, and a huge one overflows the reward.
    """
    from drum_env.rewards import TERMS, check_weights

    if value is None:
        return None
    value = _json_arg("weights", value, "a JSON object of term weights")
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        try:
            pairs = [tuple(p) for p in value]
        except TypeError:
            raise ValueError(
                f"weights must map term names to numbers, got {value!r}"
            ) from None
    given: dict[str, Any] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"weights must map term names to numbers, got {value!r}")
        term, weight = pair
        if not isinstance(term, str):
            raise ValueError(f"weights: term names must be strings, got {term!r}")
        given[term] = weight
    check_weights(given)  # the env's own check: known terms, finite, in [0, MAX_WEIGHT]
    return tuple((k, float(given[k])) for k in TERMS if k in given)


def _sections(value: Any) -> tuple[tuple[int, int], ...] | None:
    if value is None:
        return None
    value = _json_arg("sections", value, "a JSON list of [start, end] pairs")
    try:
        spans = tuple((a, b) for a, b in value)
    except (TypeError, ValueError):
        raise ValueError(f"sections must be a list of (start, end) pairs, got {value!r}") from None
    for a, b in spans:
        if not (is_int(a) and is_int(b)) or a < 0 or b <= a:
            raise ValueError(
                f"sections: each span must be integers 0 <= start < end, got {(a, b)!r}"
            )
    return tuple((int(a), int(b)) for a, b in spans)


# ----------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class TaskConfig:
    """The DrumCompose task: the data, the episode's shape and the reward. Frozen, validated.

    Every command's config derives from this class; :meth:`env_kwargs` gives
    ``gymnasium.make("DrumCompose-v0", **kwargs)``'s arguments.
    """

    data: str | None = None
    """Folder of ``.npz`` reference sequences (array ``sequence``, ``[steps, drums]``);
    ``None``: the built-in synthetic corpus."""
    seq_len: int = 64
    """Steps of an episode's window, primer included; a multiple of ``steps_per_bar``."""
    steps_per_bar: int = 16
    """Steps in one bar (16: 16th notes in 4/4)."""
    bars_per_phrase: int = 4
    """Bars in one phrase."""
    prompt_bars: int = 1
    """Bars of the reference given as the primer; the agent composes the other
    ``seq_len - prompt_bars * steps_per_bar`` steps."""
    context_steps: int = 16
    """Steps of the canvas the observation shows (the latest ones); with ``whole_canvas``,
    not used."""
    whole_canvas: bool = False
    """Show the whole canvas: the observation's ``context`` is all ``seq_len`` steps (zero
    before the first), and the Transformer policy reads it from the canvas's first step
    (:attr:`~agents.policies.policy.PolicyConfig.canvas_steps`): the whole primer, everything
    played so far, and where it is in the song, as pretraining's whole windows show it. A
    pretrained policy keeps its own reading. Opt-in."""
    sections: tuple[tuple[int, int], ...] | None = None
    """Song sections as ``[[start, end], ...]`` steps of the window (JSON on the command line);
    ``None``: one section per two phrases."""
    shaping: str = "aligned"
    """Reward shaping, a name of ``drum_env.SHAPINGS``; the default ``aligned`` is the env's
    (``drum_env.rewards.DEFAULT_SHAPING``: real drumming earns the highest return)."""
    weights: tuple[tuple[str, float], ...] | None = None
    """Per-term weights that replace the shaping's, as JSON (``'{"step": 0.5}'``); terms of
    ``drum_env.TERMS``, each weight in ``[0, 1000]`` (0 switches the term off)."""
    normalize: bool | None = None
    """Normalise each term by its running mean and std; ``None``: the shaping's choice."""
    velocity_levels: int = 0
    """Velocity classes per hit: 0 is the binary env (hits only); ``K > 0`` the expressive
    env, whose action per drum is 0 (rest) or a velocity bin ``1..K`` (bins from the data)."""

    def __post_init__(self) -> None:
        self._check_task()

    def _check_task(self) -> None:
        from drum_env.core import DrumComposeConfig
        from drum_env.rewards import SHAPINGS

        check_path(self, "data")
        for name in ("seq_len", "steps_per_bar", "bars_per_phrase", "context_steps"):
            check_int(name, getattr(self, name), 1)
        check_int("prompt_bars", self.prompt_bars, 0)
        check_bool("whole_canvas", self.whole_canvas)
        check_int("velocity_levels", self.velocity_levels, 0, 127)
        check_choice("shaping", self.shaping, SHAPINGS)
        if self.normalize is not None:
            check_bool("normalize", self.normalize)
        object.__setattr__(self, "sections", _sections(self.sections))
        object.__setattr__(self, "weights", _weights_pairs(self.weights))
        # the env's own checks (multiples, primer length, weights), before any data is loaded
        DrumComposeConfig(
            self.seq_len, self.steps_per_bar, self.bars_per_phrase, self.prompt_bars,
            self.shown_steps, self.sections, self.shaping_object,
            velocity_levels=self.velocity_levels,
        )  # fmt: skip

    # ------------------------------------------------------------------------- derived

    @property
    def prompt_steps(self) -> int:
        """Steps of primer: ``prompt_bars * steps_per_bar``."""
        return self.prompt_bars * self.steps_per_bar

    @property
    def shown_steps(self) -> int:
        """Steps of the env's ``context``: ``seq_len`` with ``whole_canvas``, else theirs."""
        return self.seq_len if self.whole_canvas else self.context_steps

    @property
    def canvas_steps(self) -> int:
        """A fresh Transformer's ``canvas_steps``: ``seq_len`` with ``whole_canvas``, else 0.

        (:attr:`~agents.policies.policy.PolicyConfig.canvas_steps`.)
        """
        return self.seq_len if self.whole_canvas else 0

    @property
    def weight_mapping(self) -> dict[str, float] | None:
        """``weights`` as a dict (``None`` when not given)."""
        return None if self.weights is None else dict(self.weights)

    @property
    def shaping_object(self):  # -> drum_env.rewards.Shaping
        """The resolved :class:`~drum_env.rewards.Shaping` (preset, ``weights``, ``normalize``)."""
        from drum_env.rewards import make_shaping

        try:
            return make_shaping(self.shaping, self.weight_mapping, self.normalize)
        except ValueError as exc:
            raise ValueError(f"weights: {exc}") from exc

    def task_fields(self) -> dict[str, Any]:
        """The task settings alone, plain Python (``weights`` a dict, ``sections`` lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(TaskConfig)}

    def env_kwargs(
        self, data: Any = None, velocity_bins: Any = None, **changes: Any
    ) -> dict[str, Any]:
        """Keyword arguments of ``DrumCompose-v0`` for this task.

        Args:
            data: replaces ``self.data`` when given (a folder or a dataset object, e.g. a split).
            velocity_bins: the velocity bins to play with (a
                :class:`~dataset.velocity.VelocityBins` or its ``to_dict()``), e.g. a trained
                policy's on held-out data; ``None``: the env chooses them from its data.
            **changes: task fields to override (``shaping="sparse"``, ...), validated.

        Returns:
            dict for ``gymnasium.make("DrumCompose-v0", **kwargs)`` and ``make_vec``.
        """
        task = self if not changes else TaskConfig(**{**self.task_fields(), **changes})
        kwargs = {
            "data": task.data if data is None else data, "seq_len": task.seq_len,
            "steps_per_bar": task.steps_per_bar, "bars_per_phrase": task.bars_per_phrase,
            "prompt_bars": task.prompt_bars, "context_steps": task.shown_steps,
            "sections": task.sections, "shaping": task.shaping, "weights": task.weight_mapping,
            "normalize": task.normalize, "velocity_levels": task.velocity_levels,
        }  # fmt: skip
        if velocity_bins is not None:
            kwargs["velocity_bins"] = velocity_bins
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python, safe for JSON and checkpoints (:func:`config_to_dict`)."""
        return config_to_dict(self)


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunConfig:
    """Where and how a command runs: its folder, seed, device, threads, AMP, progress, resume.

    Every command's config derives from this class (and :class:`TaskConfig`), so a run setting
    has one name, one default, one docstring and one check everywhere. A command that has no
    use for a setting names it in ``UNUSED_RUN_SETTINGS`` and refuses any value but the default
    (``drum-env generate --resume`` is an error, not silently ignored).

    The defaults are the ones that serve a user on the machines this project is measured on:

    * ``out``: a new folder per run for the commands that train (:class:`TrackConfig`, as
      CleanRL names its runs), each other command's own folder (``DEFAULT_OUT``:
      ``runs/generate``, ``runs/tune``, ...), so that two commands never write into one folder
      by default;
    * ``seed`` 0;
    * ``device`` ``auto``: CUDA when available, else the CPU (a GPU user gets it without a
      flag; a CPU-only machine runs as with ``cpu``);
    * ``threads`` 1: at the default model size more torch threads gain at most about 1.3x
      when every core is idle and lose 5-30x while another process keeps a core busy
      (``benchmarks/results/throughput.md``); the benchmark and the tuner always used 1;
    * ``amp`` off: at the default model size the casts cost more than they save, bf16 autocast
      is slower than float32 on CPUs without bf16 units, and float32 repeats bitwise;
    * ``progress`` on: a run that takes minutes shows how far it is (``--no-progress`` in logs);
    * ``resume`` and ``force`` off: a run folder that holds a run is refused unless asked.
    """

    out: str | None = None
    """The command's output folder; ``None``: for ``train``, ``pretrain`` and ``baseline`` a new
    folder ``runs/{env_id}__{exp_name}__{seed}__{unix_time}`` (so a second run is never refused;
    ``--resume`` needs the run's folder given), for the other commands their own folder
    (``runs/<command>``; the benchmark's tables: ``benchmarks/results``)."""
    seed: int = 0
    """Seed of the run (model, env resets, action sampling), >= 0."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    threads: int | None = 1
    """torch intra-op threads while the command runs (restored after); ``None``: leave torch's
    setting (one per core). Seeded runs repeat bitwise only with the same number of threads."""
    amp: bool = False
    """Mixed precision: bfloat16 autocast on CPU, float16 with a ``GradScaler`` on CUDA."""
    progress: bool = True
    """Show progress (a bar, or a line per finished unit of work)."""
    resume: bool = False
    """Continue the run in ``out`` instead of starting a new one."""
    force: bool = False
    """Replace a previous run in ``out`` (its files are deleted) instead of refusing."""

    DEFAULT_OUT: ClassVar[str] = "runs"
    """The folder that ``out=None`` stands for (each command's config sets its own)."""
    UNUSED_RUN_SETTINGS: ClassVar[tuple[str, ...]] = ()
    """Run settings the command has no use for: any value but the default is refused."""

    def __post_init__(self) -> None:
        self._check_run()

    def _check_run(self) -> None:
        from agents.training.distributed import check_device

        if self.out is None:
            object.__setattr__(self, "out", self.DEFAULT_OUT)
        check_path(self, "out", optional=False)
        check_int("seed", self.seed, 0)
        check_device(self.device)
        check_int("threads", self.threads, 1, optional=True)
        for name in ("amp", "progress", "resume", "force"):
            check_bool(name, getattr(self, name))
        defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
        for name in self.UNUSED_RUN_SETTINGS:
            if getattr(self, name) != defaults[name]:
                raise ValueError(
                    f"{name}: {type(self).__name__} has no use for this run setting; leave it "
                    f"at its default {defaults[name]!r}, got {getattr(self, name)!r}"
                )

    @contextlib.contextmanager
    def torch_threads(self) -> Iterator[None]:
        """Set torch's intra-op threads to ``threads`` inside the block (unless ``None``)."""
        import torch

        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


ENV_ID = "DrumCompose-v0"
"""The env every command trains on: the ``{env_id}`` of a run folder's name."""

_EXP_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$")


def default_run_dir(exp_name: str, seed: int, root: str = "runs", now: float | None = None
                    ) -> str:  # fmt: skip
    """A new run folder, ``{root}/{ENV_ID}__{exp_name}__{seed}__{unix_time}`` (CleanRL's name).

    Where that folder exists already (a second run started within the same second), ``_2``,
    ``_3``, ... is appended, so the name is always one no run holds.

    >>> default_run_dir("ppo", 1, now=1700000000)
    'runs/DrumCompose-v0__ppo__1__1700000000'
    """
    base = f"{root}/{ENV_ID}__{exp_name}__{seed}__{int(time.time() if now is None else now)}"
    path, k = base, 1
    while os.path.lexists(path):
        k += 1
        path = f"{base}_{k}"
    return path


@dataclass(frozen=True)
class TrackConfig:
    """The experiment's name and its tracking: CleanRL's ``exp_name``, ``track`` and W&B flags.

    The commands that train (``train``, ``pretrain``, ``baseline``) derive from this class. Their
    ``out`` defaults to a new folder per run (:func:`default_run_dir`) instead of a fixed one;
    ``resume`` then needs ``out`` given (the folder of the run to continue).
    """

    exp_name: str | None = None
    """The experiment's name: part of the default run folder's name and the W&B run's
    (``{env_id}__{exp_name}__{seed}__{unix_time}``); letters, digits and ``._+-``; ``None``: the
    command's (``ppo`` for train, ``pretrain``, ``sb3_ppo`` / ``sb3_a2c`` for baseline)."""
    track: bool = False
    """Track the run with Weights & Biases (``pip install 'drum-env[track]'``): ``wandb.init``
    with the run's config and ``sync_tensorboard``, so every TensorBoard scalar and image
    reaches W&B too (and ``train``'s takes as ``wandb.Audio``); ``WANDB_MODE=offline`` keeps it
    on this machine (``wandb sync`` later)."""
    wandb_project_name: str = "drum-env"
    """The W&B project of a tracked run."""
    wandb_entity: str | None = None
    """The W&B team or user of a tracked run; ``None``: your default entity."""

    DEFAULT_EXP_NAME: ClassVar[str] = "run"
    """The ``exp_name`` that ``None`` stands for (each command's config sets its own)."""

    def default_exp_name(self) -> str:
        """The ``exp_name`` that ``None`` stands for."""
        return self.DEFAULT_EXP_NAME

    def _check_track(self) -> None:
        """Validate the fields; fill ``exp_name`` and, when ``out`` is None, a new run folder.

        Runs before :meth:`RunConfig._check_run` (which would fill ``out`` with ``DEFAULT_OUT``).
        """
        if self.exp_name is None:
            object.__setattr__(self, "exp_name", self.default_exp_name())
        if not isinstance(self.exp_name, str) or not _EXP_NAME.match(self.exp_name):
            raise ValueError(
                f"exp_name must be a name of letters, digits and ._+- (not starting with a "
                f"dot), got {self.exp_name!r}"
            )
        check_bool("track", self.track)
        if not isinstance(self.wandb_project_name, str) or not self.wandb_project_name:
            raise ValueError(
                f"wandb_project_name must be a non-empty string, got {self.wandb_project_name!r}"
            )
        if self.wandb_entity is not None and (not isinstance(self.wandb_entity, str)
                                              or not self.wandb_entity):  # fmt: skip
            raise ValueError(
                f"wandb_entity must be a non-empty string or None, got {self.wandb_entity!r}"
            )
        if getattr(self, "out", None) is None:
            unused = getattr(self, "UNUSED_RUN_SETTINGS", ())
            if getattr(self, "resume", False) and "resume" not in unused:  # which run?
                raise ValueError(
                    f"resume continues a run in its folder: give --out, the folder of the run "
                    f"to resume (e.g. runs/{ENV_ID}__{self.exp_name}__{getattr(self, 'seed', 0)}"
                    "__1700000000)"
                )
            object.__setattr__(self, "out", default_run_dir(self.exp_name,
                                                            getattr(self, "seed", 0)))

    @property
    def run_name(self) -> str:
        """The run's name (the W&B run's): the last part of its folder."""
        return os.path.basename(os.path.normpath(str(getattr(self, "out", "") or self.exp_name)))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        if value and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                         for p in value):  # fmt: skip
            return {k: v for k, v in value}  # (term, weight) pairs
        return [_plain(v) for v in value]
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain Python: tuples become lists, ``weights`` a dict."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = _plain(value) if f.name == "weights" else _listify(value)
    return out


def _listify(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_listify(v) for v in value]
    return value


def replace_config(config: Any, **changes: Any) -> Any:
    """A copy of a config with ``changes`` applied and validated (``dataclasses.replace``).

    Raises:
        ValueError: an unknown field (the message lists the valid ones), or an invalid value.
    """
    names = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise ValueError(
            f"unknown {type(config).__name__} field(s) {unknown}; valid fields: {names}"
        )
    return dataclasses.replace(config, **changes)
