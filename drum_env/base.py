"""What the three DrumCompose envs share: their arguments, declared once, and one base class.

:class:`~drum_env.env.DrumComposeEnv`, :class:`~drum_env.vector.DrumComposeVectorEnv` and the
PettingZoo band (:class:`~drum_env.band.DrumBandParallelEnv`) take the same arguments,
:class:`DrumComposeArgs`, and build the same things from them (the frozen
:class:`~drum_env.core.DrumComposeConfig`, the :class:`~drum_env.core.ReferenceData` and one
:class:`~drum_env.core.ComposeCore`) in :class:`ComposeBase`. The env and the band, which run
one episode, also share the canvas, the reference, ``render`` and ``close``
(:class:`SingleComposeBase`); the vector env draws each sub-env's canvas with the same
:func:`render_canvas`.

The constructors take the fields of :class:`DrumComposeArgs` as keywords (or positionally, in
field order), so ``gymnasium.make("DrumCompose-v0", data=..., shaping=...)`` passes them
through unchanged; :func:`takes_compose_args` gives each constructor the signature it really
has, for ``help()`` and ``inspect.signature``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import gymnasium as gym
import numpy as np

from dataset.velocity import VelocityBins
from drum_env import rewards
from drum_env.core import ComposeCore, DrumComposeConfig, ReferenceData, load_reference
from drum_env.render import render_ansi, render_rgb
from drum_env.rewards import RunningNormalizer, Shaping

__all__ = [
    "RENDER_MODES",
    "ComposeBase",
    "DrumComposeArgs",
    "SingleComposeBase",
    "render_canvas",
    "takes_compose_args",
]

RENDER_MODES: tuple[str, ...] = ("ansi", "rgb_array")
"""The render modes of every DrumCompose env: a text grid, a piano-roll image."""


@dataclass(frozen=True)
class DrumComposeArgs:
    """The arguments of every DrumCompose env, as given; checked on construction.

    Everything that needs no data is checked here (the render mode, the shaping and its
    overrides, the task geometry, the velocity levels), so that a bad argument fails before any
    data is loaded; :meth:`build` loads the data and resolves the task.
    """

    data: Any = None
    """``None`` (the built-in synthetic corpus), a folder of ``.npz`` files, or a dataset
    (:class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset`)."""
    seq_len: int = 128
    """Steps per window (primer included), a multiple of ``steps_per_bar``."""
    steps_per_bar: int = 16
    """Steps in one bar (16 = 16th notes in 4/4)."""
    bars_per_phrase: int = 4
    """Bars in one phrase."""
    prompt_bars: int = 2
    """Bars of primer; must leave at least one bar to compose."""
    context_steps: int = 32
    """Steps of canvas in the observation."""
    sections: Sequence[tuple[int, int]] | None = None
    """``(start, end)`` step spans of the sections; ``None``: one per two phrases."""
    shaping: str | Shaping = rewards.DEFAULT_SHAPING
    """A name of ``rewards.SHAPINGS`` or a ``Shaping``."""
    weights: Mapping[str, float] | None = None
    """Per-term weights that override the shaping's."""
    normalize: bool | None = None
    """Override the shaping's normalisation."""
    render_mode: str | None = None
    """``"ansi"`` (text grid), ``"rgb_array"`` (piano roll) or ``None``."""
    on_error: Literal["raise", "skip"] = "raise"
    """``"skip"`` bad ``.npz`` files with one warning, or ``"raise"``."""
    normalizer: RunningNormalizer | None = None
    """A ``RunningNormalizer`` to share (the vector env's sub-envs share one); ``None``: a new
    one."""
    velocity_levels: int = 0
    """``K``: 0 binary hits; ``K > 0`` velocity classes per hit."""
    velocity_bins: VelocityBins | Mapping[str, Any] | None = None
    """The ``K`` bins (a ``VelocityBins`` or its ``to_dict()``); ``None``: from the data."""

    def __post_init__(self) -> None:
        if self.render_mode is not None and self.render_mode not in RENDER_MODES:
            raise ValueError(
                f"render_mode must be one of {list(RENDER_MODES)} or None, "
                f"got {self.render_mode!r}"
            )
        if self.sections is not None:
            object.__setattr__(self, "sections", tuple(self.sections))
        self._config(velocity_bins=self.velocity_bins)  # checks all but the data

    def _config(self, **from_data: Any) -> DrumComposeConfig:
        """The task of these arguments; ``from_data``: ``num_drums``, ``velocity_bins``."""
        return DrumComposeConfig(
            self.seq_len, self.steps_per_bar, self.bars_per_phrase, self.prompt_bars,
            self.context_steps, self.sections,  # type: ignore[arg-type]  # a tuple by now
            rewards.make_shaping(self.shaping, self.weights, self.normalize),
            velocity_levels=self.velocity_levels, **from_data,
        )  # fmt: skip

    def build(self) -> tuple[DrumComposeConfig, ReferenceData]:
        """Load the data and resolve the task: the shared constructor of every env.

        With ``velocity_levels > 0`` and no ``velocity_bins``, the bins are chosen from the hits
        of every reference sequence (:meth:`~dataset.velocity.VelocityBins.from_data`).

        Returns:
            The task (``num_drums`` from the data) and the reference windows.

        Raises:
            ValueError: the data cannot be read or has no window of ``seq_len`` steps.
        """
        ref = load_reference(
            self.data, self.seq_len, self.steps_per_bar, self.bars_per_phrase, self.on_error
        )
        bins = self.velocity_bins
        if self.velocity_levels and bins is None:
            bins = VelocityBins.from_data(ref.values or ref.hits, int(self.velocity_levels))
        return self._config(num_drums=ref.hits[0].shape[1], velocity_bins=bins), ref


_Init = TypeVar("_Init", bound=Callable[..., None])


def takes_compose_args(init: _Init) -> _Init:
    """Show :class:`DrumComposeArgs`' fields in the signature of a constructor that takes them.

    ``init`` has the form ``__init__(self, [own positional ones,] *args, [own keyword-only
    ones,] **kwargs)`` and passes ``*args, **kwargs`` to ``DrumComposeArgs``. Only the
    signature that ``help()`` and :func:`inspect.signature` report changes; the call is the
    same.
    """
    own = list(inspect.signature(init).parameters.values())
    fields = [
        inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
                          annotation=f.type)
        for f in dataclasses.fields(DrumComposeArgs)
    ]  # fmt: skip
    positional = [p for p in own if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    keyword_only = [p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY]
    init.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        positional + fields + keyword_only, return_annotation=None
    )
    return init


def render_canvas(
    mode: str, canvas: np.ndarray, config: DrumComposeConfig, position: int
) -> str | np.ndarray:
    """Draw one canvas as its env's ``render_mode`` asks: the render helper of every env.

    Args:
        mode: ``"ansi"`` or ``"rgb_array"``.
        canvas: float32 array (seq_len, num_drums), values in [0, 1] (velocities or hits).
        config: the task (bar length, primer length).
        position: steps written so far (the cursor).

    Returns:
        ``str`` (:func:`~drum_env.render.render_ansi`: one row per drum, labelled with its
        name) or uint8 array ``(drums * 8, seq_len * 4, 3)``
        (:func:`~drum_env.render.render_rgb`).
    """
    draw = render_ansi if mode == "ansi" else render_rgb
    return draw(canvas, config.steps_per_bar, config.prompt_steps, position=position)


class ComposeBase:
    """The part every DrumCompose env shares: config, data, render mode and one core.

    Attributes:
        config: the frozen task (:class:`~drum_env.core.DrumComposeConfig`).
        data: the reference windows (:class:`~drum_env.core.ReferenceData`).
        render_mode: ``"ansi"``, ``"rgb_array"`` or ``None``.
    """

    config: DrumComposeConfig
    data: ReferenceData
    render_mode: str | None

    def _build(self, args: DrumComposeArgs, num_envs: int) -> None:
        """Load the data, resolve the task and build a core of ``num_envs`` episodes."""
        self.config, self.data = args.build()
        self.render_mode = args.render_mode
        self._core = ComposeCore(self.config, self.data, num_envs, args.normalizer)

    @property
    def normalizer(self) -> RunningNormalizer:
        """The running reward normaliser (see :mod:`drum_env.rewards`).

        One for the whole env: a vector env's sub-envs share it.
        """
        return self._core.normalizer


class SingleComposeBase(ComposeBase):
    """The members of the envs that run one episode (the env and the band)."""

    @property
    def canvas(self) -> np.ndarray:
        """float32 array (seq_len, num_drums): the primer and what was written so far.

        Hits as 1; with velocity levels, each hit's velocity.
        """
        if self.config.expressive:
            return self._core.values[0].copy()
        return self._core.canvas[0].astype(np.float32)

    @property
    def reference(self) -> np.ndarray:
        """float32 array (seq_len, num_drums): the hits of the episode's reference window."""
        return self._core.reference[0].astype(np.float32)

    def render(self) -> str | np.ndarray | None:
        """Render the canvas: a text grid (``"ansi"``) or a piano-roll image (``"rgb_array"``).

        Returns:
            :func:`render_canvas` of :attr:`canvas`; None (with a warning) without a
            ``render_mode``.
        """
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode=...")
            return None
        return render_canvas(self.render_mode, self.canvas, self.config, int(self._core.t[0]))

    def close(self) -> None:
        """Nothing to release; safe to call more than once."""
