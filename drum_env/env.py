"""DrumCompose-v0: compose a drum sequence one step at a time, rewarded at five levels."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drum_env import render as _render
from drum_env.base import RENDER_MODES, DrumComposeArgs, SingleComposeBase, takes_compose_args
from drum_env.checks import (
    check_actions,
    check_generator_state,
    check_normalizer_state,
    check_reset_options,  # re-exported: drum_env.env.check_reset_options
    check_state_header,
    generator_state,
    options_window,
    set_generator_state,
)
from drum_env.core import terms_info

__all__ = ["DrumComposeEnv", "check_reset_options"]


class DrumComposeEnv(SingleComposeBase, gym.Env):
    """Compose drums: after a primer taken from a real groove, write one drum step per env step.

    ## Description

    Each episode draws a reference window of ``seq_len`` steps from a dataset of drum sequences
    (by default the built-in synthetic corpus of :mod:`dataset.synthetic`; any folder of
    ``.npz`` files or a :class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset`). Its
    first ``prompt_bars`` bars are copied to the canvas as the primer; the agent then writes the
    remaining ``seq_len - prompt_bars * steps_per_bar`` steps, one per env step, choosing which
    drums hit. It is rewarded for matching the reference's rhythm statistics (not its notes) at
    the step, bar, phrase, section and song levels.

    ## Action Space

    ``MultiBinary(num_drums)``: 1 = the drum hits on this step. With the default 9-drum data the
    drums are kick, snare, closed hi-hat, open hi-hat, low tom, mid tom, high tom, crash, ride.

    With ``velocity_levels=K > 0`` (the expressive env): ``MultiDiscrete([K + 1] * num_drums)``,
    0 = rest, ``k`` = a hit in velocity bin ``k``, played at the bin's level. The bins
    (``env.unwrapped.config.velocity_bins``, :class:`~dataset.velocity.VelocityBins`) are
    equal-count bins of the data's hit velocities unless ``velocity_bins`` gives them: edges at
    the ``j / K`` quantiles, each level the median velocity of the data's hits in its bin.

    ## Observation Space

    A ``Dict`` (one level, so Stable-Baselines3's ``MultiInputPolicy`` takes it as it is):

    | key | shape | meaning | range | unit |
    |---|---|---|---|---|
    | ``context`` | ``(context_steps * num_drums,)`` | the latest steps of the canvas, oldest first, flattened step-major (``reshape(context_steps, num_drums)`` restores the grid); zeros before step 0 | {0, 1}; [0, 1] with velocity levels | hits; velocity / 127 |
    | ``position[0:spb]`` | ``(steps_per_bar,)`` | one-hot step in the bar of the step to write | {0, 1} | 16ths |
    | ``position[spb:spb+bpp]`` | ``(bars_per_phrase,)`` | one-hot bar in the phrase | {0, 1} | bars |
    | ``position[-2]`` | ``()`` | progress through the current section | [0, 1) | fraction |
    | ``position[-1]`` | ``()`` | progress through the window, ``t / seq_len`` | [0, 1] | fraction |
    | ``target`` | ``(11 + num_drums,)`` (``+ F`` with velocity levels) | the reference window's song features (``rewards.SONG_FEATURE_NAMES``, then each drum's density; with velocity levels then its ``rewards.velocity_features``) | [0, 1] | scaled metrics |

    ## Rewards

    ``r_t = sum_k w_k * n_k(x_k(t))`` over the terms that close at step ``t`` (see
    :mod:`drum_env.rewards` for every formula): ``step`` (each step: squared error of the hits
    against the reference's per-position hit rates), ``bar``, ``phrase``, ``section`` (at each
    unit's end: mean absolute difference of the unit's features and the reference unit's),
    ``song`` (at the end: the same for the whole window), ``silence`` and ``repetition``
    (``-1`` for a silent bar or one pattern on every step, where the reference bar is neither),
    ``variety`` (at each bar end: the bar's Jaccard similarity with the bar before it, pattern
    entropy and 4-gram diversity against the reference bar's). Every raw term lies in
    ``[-1, 0]``. With velocity levels, ``bar_velocity``, ``phrase_velocity`` and
    ``song_velocity`` close at bar, phrase and episode ends: the mean absolute difference of the
    unit's ``rewards.velocity_features`` (per-drum velocity mean and spread, accents, dynamic
    range) and the reference unit's, whose velocities after the primer are moved to their bins'
    levels (so the real continuation's classes score 0). ``n_k`` is a running normalisation per term (identity for the ``*-raw``
    shapings), updated when an episode ends; ``w_k`` comes from ``shaping``. The default
    shaping, ``"aligned"``, leaves out the mode-seeking ``step`` term and weighs ``variety`` 3,
    so that real drumming earns the highest return (:mod:`drum_env.rewards` says why).
    ``info["reward_terms"]`` holds ``"<term>/raw"`` and ``"<term>/norm"`` of the step (0 for
    terms that did not close) and ``"<term>/closed"`` (bool: whether the term closed on this
    step; a closed term may be 0 too).

    ## Starting State

    The canvas holds the primer (the reference's first ``prompt_bars`` bars) and silence after
    it; the first step to write is ``prompt_bars * steps_per_bar``. The window is drawn
    uniformly from the data's windows (starting on bar lines) with ``self.np_random``, or chosen
    with ``reset(options={"window": i})`` or ``{"sequence": j}``.

    ## Episode End

    * Termination: the last step of the window is written (after
      ``seq_len - prompt_bars * steps_per_bar`` steps). The last step's info holds
      ``"episode_metrics"``, the song metrics of the composed window (name -> plain Python
      float).
    * Truncation: never by the env itself (the episode length is fixed by ``seq_len``).

    ## Arguments

    The fields of :class:`~drum_env.base.DrumComposeArgs`, by keyword or in this order (the
    vector env and the band take the same):

    | argument | default | meaning |
    |---|---|---|
    | ``data`` | ``None`` | ``None`` (built-in corpus), a folder of ``.npz`` files, or a dataset |
    | ``seq_len`` | 128 | steps per window (primer included), a multiple of ``steps_per_bar`` |
    | ``steps_per_bar`` | 16 | steps in one bar |
    | ``bars_per_phrase`` | 4 | bars in one phrase |
    | ``prompt_bars`` | 2 | bars of primer; must leave at least one bar to compose |
    | ``context_steps`` | 32 | steps of canvas in the observation |
    | ``sections`` | ``None`` | ``(start, end)`` step spans; ``None``: one per two phrases |
    | ``shaping`` | ``"aligned"`` | a name of ``rewards.SHAPINGS`` or a ``Shaping`` |
    | ``weights`` | ``None`` | per-term weights that override the shaping's |
    | ``normalize`` | ``None`` | override the shaping's normalisation |
    | ``render_mode`` | ``None`` | ``"ansi"`` (text grid) or ``"rgb_array"`` (piano roll) |
    | ``on_error`` | ``"raise"`` | ``"skip"`` bad ``.npz`` files with one warning |
    | ``normalizer`` | ``None`` | a ``RunningNormalizer`` to share (the vector env passes one) |
    | ``velocity_levels`` | 0 | ``K``: 0 binary hits; ``K > 0`` velocity classes per hit |
    | ``velocity_bins`` | ``None`` | the bins (a ``VelocityBins`` or its ``to_dict()``); ``None``: from the data |

    >>> import gymnasium, drum_env
    >>> env = gymnasium.make("DrumCompose-v0", seq_len=64, prompt_bars=1)
    >>> obs, info = env.reset(seed=0)
    >>> sorted(obs), obs["context"].shape
    (['context', 'position', 'target'], (288,))
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

    ## Saving and restoring

    ``env.unwrapped.state_dict()`` returns the env's whole state (numpy arrays and plain data);
    ``load_state_dict`` restores it into an env built with the same arguments, which then
    continues bit for bit. Pickling and ``copy.deepcopy`` work too.

    ## Version History

    * v0 (drum-env 0.3.0): ``velocity_levels`` (the expressive env) and the velocity terms;
      with the default ``velocity_levels=0`` rewards and observations are unchanged.
    * v0 (drum-env 0.2.0): the default shaping is ``aligned`` (no ``step`` term; a ``variety``
      term at bar ends), under which the real continuation earns the highest return; the old
      default is ``shaping="hierarchical"``. The id stays ``v0`` (the project is before 1.0
      and its design names ``DrumCompose-v0``); the package version and CHANGELOG.md mark it.
    * v0 (drum-env 0.1.0): initial release.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 8}

    STATE_VERSION = 1
    """Version of the :meth:`state_dict` format (the core's has its own)."""

    @takes_compose_args
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The env; its arguments: :class:`~drum_env.base.DrumComposeArgs` (see the table)."""
        self._build(DrumComposeArgs(*args, **kwargs), num_envs=1)
        self.observation_space = self.config.observation_space()
        self.action_space = self.config.action_space()
        self._started = False

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        """Write one step of the canvas; see the class docstring for rewards and episode end."""
        if not self._started:
            raise RuntimeError("call reset() before step(), and again after the episode ends")
        a = check_actions(action, (self.config.num_drums,), self.action_space,
                          self.config.velocity_levels)
        ended: dict[str, np.ndarray] = {}  # the episode metrics, when the step ends it
        result = self._core.step(a[None], episode_metrics=ended)
        terminated = bool(result.terminated[0])
        info = {"reward_terms": terms_info(result, 0)}
        if terminated:
            self._started = False
            info["episode_metrics"] = self._core.episode_metrics_info(0, ended)
        return self._get_obs(), float(result.reward[0]), terminated, False, info

    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict]:
        """Start an episode on a reference window drawn with ``self.np_random``.

        Args:
            seed: seeds ``self.np_random`` (the only source of randomness).
            options: ``{"window": i}`` or ``{"sequence": j}`` to choose the reference.

        Returns:
            The first observation and an info dict with the window and its source.
        """
        super().reset(seed=seed)
        window = options_window(options, self.data, self.np_random)  # checks the options
        self._core.reset(np.array([0]), np.array([window]))
        self._started = True
        return self._get_obs(), self._get_info()

    @property
    def take(self) -> np.ndarray:
        """float32 array (seq_len, num_drums): the canvas with velocities.

        With velocity levels, the canvas itself (the primer's values, then each composed hit at
        its class's level). Without, :func:`~drum_env.render.take_values`: the primer keeps
        the data's values (velocities), composed hits play at the primer's per-drum mean
        velocity.
        """
        if not self._core.has_episode:  # window 0's primer is no take of this env
            raise RuntimeError("no episode yet: reset() the env before reading or saving a take")
        if self.config.expressive:
            return self._core.values[0].copy()
        primer = self.data.primer_values(self._core.window_ids[:1], self.config.prompt_steps)[0]
        return _render.take_values(self._core.canvas[0], primer)

    @property
    def reference_values(self) -> np.ndarray:
        """float32 array (seq_len, num_drums): the velocities the episode is judged against.

        The primer's recorded values, then the reference continuation's: as recorded in the
        binary env, at their velocity bins' levels in the expressive env (so that
        ``config.velocity_bins.encode(env.reference_values)`` are the classes that replay it).
        """
        return self._core.reference_values(self._core.window_ids[:1])[0]

    @property
    def tempo(self) -> float | None:
        """The reference's tempo (quarter notes per minute) when its file records one."""
        return self.data.tempo(int(self._core.window_ids[0]))

    @property
    def observation(self) -> dict[str, np.ndarray]:
        """The current observation, as the last :meth:`reset` or :meth:`step` returned it.

        A fresh dict of new float32 arrays (see the Observation Space table); the way to get
        the observation to act on after :meth:`load_state_dict`.

        Raises:
            RuntimeError: the env was never reset.
        """
        return self._get_obs()

    def state_dict(self) -> dict[str, Any]:
        """Everything the env's future depends on, as numpy arrays and plain Python data.

        Copies, not views. Holds only numeric or bool numpy arrays, python scalars, str, None,
        lists and dicts. The per-window reference feature cache is not saved: it is recomputed,
        deterministically, when a window is next used.

        Returns:
            dict with ``"format"`` (``"DrumComposeEnv"``), ``"version"``
            (:attr:`STATE_VERSION`), ``"core"`` (the
            :meth:`ComposeCore.state_dict <drum_env.core.ComposeCore.state_dict>` with one
            sub-env), ``"normalizer"`` (the :class:`~drum_env.rewards.RunningNormalizer`'s
            ``state_dict``), ``"rng"`` (``self.np_random``'s ``bit_generator.state``),
            ``"np_random_seed"`` (int, :attr:`np_random_seed`) and ``"started"`` (bool: an
            episode is running, so ``step`` may be called).
        """
        rng = self.np_random
        return {
            "format": type(self).__name__,
            "version": self.STATE_VERSION,
            "core": self._core.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "rng": generator_state(rng),
            "np_random_seed": int(self.np_random_seed),
            "started": bool(self._started),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` into this env, built with the same arguments.

        The env may be fresh or used; everything is checked before anything is written, so on
        an error the env is unchanged. Afterwards :attr:`observation` is the observation to act
        on, and the env continues bit for bit as the saved one would have. A shared normaliser
        is restored in place. Wrappers keep their own state: ``gymnasium.make``'s
        ``OrderEnforcing`` wants one ``reset`` through it before ``step``, so reset a made env
        once before loading into its ``unwrapped`` env (or build :class:`DrumComposeEnv`
        directly).

        Args:
            state: a dict written by :meth:`state_dict`.

        Raises:
            ValueError: the state does not fit: another format, version or task, a missing or
                unknown key, a buffer of another shape or dtype (the message names it), or a
                generator state for another bit generator.
        """
        keys = ("core", "normalizer", "rng", "np_random_seed", "started")
        check_state_header(state, type(self).__name__, self.STATE_VERSION, keys)
        if not isinstance(state["started"], (bool, np.bool_)):
            raise ValueError(f"state 'started' must be a bool, got {state['started']!r}")
        seed = state["np_random_seed"]
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"state 'np_random_seed' must be an int, got {seed!r}")
        rng = check_generator_state("'rng'", state["rng"], self.np_random)
        check_normalizer_state(state["normalizer"], self.normalizer)
        self._core.load_state_dict(state["core"])  # checks everything before writing
        # --- everything fits: write
        self.normalizer.load_state_dict(state["normalizer"])
        set_generator_state(self.np_random, rng)
        self._np_random_seed = int(seed)  # gym.Env's record of the seed, as reset left it
        self._started = bool(state["started"])

    def save(self, path: str | Path, bpm: float | None = None) -> Path:
        """Save the take (:attr:`take`: the canvas with velocities) as ``.npz``, MIDI or WAV.

        ``.npz`` holds ``sequence`` (the take) and ``prompt_steps``; ``.mid`` / ``.midi`` is a
        General MIDI drum track ending on its last bar line; ``.wav`` is audio at a fixed gain,
        through FluidSynth and a General MIDI soundfont where installed, else the built-in kit
        (:func:`drum_env.audio.render_audio`, ``synth="auto"``). The primer keeps its
        velocities in every format.

        Args:
            path: file to write; the suffix picks the format.
            bpm: tempo, quarter notes per minute; ``None``: the reference file's recorded tempo
                (``drum-env convert`` records it), else 120.

        Returns:
            The path written.

        Raises:
            RuntimeError: the env was never reset (there is no take).
            ValueError: another suffix, a tempo outside 20-400 bpm, or a WAV longer than
                :data:`drum_env.audio.MAX_WAV_SECONDS`.
        """
        from dataset.io import atomic_write

        path = Path(path)
        take = self.take  # refuses an env never reset
        path.parent.mkdir(parents=True, exist_ok=True)
        tempo = float(bpm) if bpm is not None else (self.tempo or 120.0)
        spb = self.config.steps_per_bar
        if path.suffix in (".mid", ".midi"):
            from dataset.midi import sequence_to_midi

            sequence_to_midi(take, path, bpm=tempo, steps_per_bar=spb)
        elif path.suffix == ".npz":
            prompt = self.config.prompt_steps
            atomic_write(path, lambda f: np.savez_compressed(f, sequence=take,
                                                             prompt_steps=prompt))  # fmt: skip
        elif path.suffix == ".wav":
            from drum_env.audio import save_wav

            save_wav(take, path, bpm=tempo, steps_per_bar=spb)
        else:
            raise ValueError(f"path must end in .npz, .mid, .midi or .wav, got {str(path)!r}")
        return path

    def _get_obs(self) -> dict[str, np.ndarray]:
        return self._core.observe(0)

    def _get_info(self) -> dict[str, Any]:
        window = int(self._core.window_ids[0])
        seq, start = self.data.windows[window]
        return {"window": window, "sequence": self.data.names[seq], "start": int(start)}
