"""DrumComposeVectorEnv: ``num_envs`` DrumCompose episodes stepped as numpy batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from drum_env import render as _render
from drum_env.base import (
    RENDER_MODES,
    ComposeBase,
    DrumComposeArgs,
    render_canvas,
    takes_compose_args,
)
from drum_env.checks import (
    check_actions,
    check_generator_state,
    check_normalizer_state,
    check_state_array,
    check_state_header,
    generator_state,
    options_window,
    set_generator_state,
)
from drum_env.rewards import TERMS

__all__ = ["DrumComposeVectorEnv"]


class DrumComposeVectorEnv(ComposeBase, VectorEnv):
    """The native vector form of ``DrumCompose-v0``: every sub-env in one numpy batch.

    ``gymnasium.make_vec("DrumCompose-v0", num_envs=N, vectorization_mode="vector_entry_point",
    **env_kwargs)`` builds it; it takes the same keyword arguments as
    :class:`~drum_env.env.DrumComposeEnv` (see there for spaces, rewards and episode end).

    Equivalence with ``SyncVectorEnv`` over ``N`` single envs: sub-env ``i`` is seeded with
    ``seed + i`` (a list gives one seed each) and draws its windows from its own generator, so
    observations, terminations and raw reward terms are bit-for-bit those of ``SyncVectorEnv``
    with the same seeds, and so are the rewards of unnormalised shapings. Normalised rewards
    differ after the first episodes because here one :class:`~drum_env.rewards.RunningNormalizer`
    is shared by all sub-envs, while each env of a ``SyncVectorEnv`` keeps its own.

    Autoreset is Gymnasium's default ``NEXT_STEP``: the step after a sub-env's episode ends
    resets it, returns its first observation with reward 0, and ignores its action. The step
    itself has no Python loop over sub-envs; only resets draw each sub-env's window from its own
    generator in a short loop.

    :meth:`state_dict` / :meth:`load_state_dict` save and restore everything the env's future
    depends on (episode buffers, reference features, autoreset flags, the shared normaliser,
    every sub-env's generator): an env built with the same arguments continues bit for bit.

    Args:
        num_envs: number of sub-envs ``N``.
        **kwargs: the arguments of :class:`~drum_env.env.DrumComposeEnv`.
    """

    STATE_VERSION = 1
    """Version of the :meth:`state_dict` format (the core's has its own)."""

    metadata = {
        "render_modes": list(RENDER_MODES),
        "render_fps": 8,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    @takes_compose_args
    def __init__(self, num_envs: int = 1, *args: Any, **kwargs: Any) -> None:
        """``num_envs`` sub-envs; the other arguments: :class:`~drum_env.base.DrumComposeArgs`."""
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self._build(DrumComposeArgs(*args, **kwargs), num_envs=int(num_envs))
        self.num_envs = int(num_envs)
        self.single_observation_space = self.config.observation_space()
        self.single_action_space = self.config.action_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs: list[np.random.Generator] | None = None
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._started = False

    @property
    def canvases(self) -> np.ndarray:
        """float32 array (num_envs, seq_len, num_drums), a copy: each sub-env's canvas.

        The primer and the hits written so far, values in {0, 1} (with velocity levels, the
        hits' velocities in [0, 1]); steps not written yet are 0. After the step that
        terminates a sub-env (until its autoreset step) it is that episode's whole composition.
        """
        if self.config.expressive:
            return self._core.values.copy()
        return self._core.canvas.astype(np.float32)

    @property
    def references(self) -> np.ndarray:
        """float32 array (num_envs, seq_len, num_drums), a copy: each episode's reference window.

        Values in {0, 1} (hits); the first :attr:`prompt_steps` steps are the primer.
        """
        return self._core.reference.astype(np.float32)

    @property
    def reference_values(self) -> np.ndarray:
        """float32 array (num_envs, seq_len, num_drums), a new array: the reference windows.

        As the data gives them: velocities in [0, 1] (1.0 hits for binary data).
        """
        return self.data.stack_values(self._core.window_ids, self.config.seq_len)

    @property
    def takes(self) -> np.ndarray:
        """float32 array (num_envs, seq_len, num_drums), a copy: each canvas with velocities.

        With velocity levels, the canvases' velocities. Without,
        :func:`~drum_env.render.take_values`: the primer keeps the data's values (velocities),
        composed hits play at the primer's per-drum mean velocity.
        """
        if not self._core.has_episode:  # window 0's primers are no takes of these envs
            raise RuntimeError("no episode yet: reset() the env before reading its takes")
        if self.config.expressive:
            return self._core.values.copy()
        primer = self.data.primer_values(self._core.window_ids, self.config.prompt_steps)
        return _render.take_values(self._core.canvas, primer)

    @property
    def tempos(self) -> list[float | None]:
        """Each sub-env's reference tempo (quarter notes per minute) when its file records one."""
        return [self.data.tempo(w) for w in self._core.window_ids]

    @property
    def prompt_steps(self) -> int:
        """Steps of primer at the start of every canvas (``prompt_bars * steps_per_bar``)."""
        return self.config.prompt_steps

    @property
    def autoreset_mask(self) -> np.ndarray:
        """Which sub-envs reset on the next step: bool array (num_envs,), a copy.

        True where the last step terminated the episode: the next :meth:`step` resets that
        sub-env, ignores its action and returns reward 0 (Gymnasium's ``NEXT_STEP`` mode).
        """
        return self._autoreset.copy()

    @property
    def observation(self) -> dict[str, np.ndarray]:
        """The current batched observation, as the last :meth:`reset` or :meth:`step` returned it.

        A fresh dict of new float32 arrays, keys and shapes of :attr:`observation_space`; the way
        to get the observation to act on after :meth:`load_state_dict`.

        Raises:
            RuntimeError: the env was never reset.
        """
        return self._core_obs()

    @property
    def np_random_list(self) -> list[np.random.Generator]:
        """Each sub-env's generator (created unseeded if reset has not seeded them)."""
        if self._rngs is None:
            self._rngs = [seeding.np_random()[0] for _ in range(self.num_envs)]
        return self._rngs

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset every sub-env: ``seed + i`` (or ``seed[i]``) seeds sub-env ``i``.

        Args:
            seed: an int, one seed per sub-env, or None to keep (or create) the generators.
            options: as :meth:`DrumComposeEnv.reset`, applied to every sub-env.

        Returns:
            Batched observation and infos (Gymnasium's vector info layout).
        """
        if isinstance(seed, (int, np.integer)):
            seed = [int(seed) + i for i in range(self.num_envs)]
        if seed is not None:
            if len(seed) != self.num_envs:
                raise ValueError(f"seed must give {self.num_envs} seeds, got {len(seed)}")
            self._rngs = [
                seeding.np_random(s)[0] if s is not None else rng
                for s, rng in zip(seed, self.np_random_list)
            ]
        envs = np.arange(self.num_envs)
        infos = self._reset_envs(envs, options)  # options_window checks them
        self._autoreset[:] = False
        self._started = True
        return self._core_obs(), infos

    def _reset_envs(self, envs: np.ndarray, options: Mapping[str, Any] | None) -> dict[str, Any]:
        rngs = self.np_random_list
        windows = np.array([options_window(options, self.data, rngs[i]) for i in envs])
        self._core.reset(envs, windows)
        seq, start = self.data.windows[windows].T
        names = np.full(self.num_envs, None, dtype=object)
        names[envs] = [self.data.names[s] for s in seq]
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[envs] = True
        window_arr = np.zeros(self.num_envs, dtype=int)
        window_arr[envs] = windows
        start_arr = np.zeros(self.num_envs, dtype=int)
        start_arr[envs] = start
        return {
            "window": window_arr, "_window": mask.copy(),
            "sequence": names, "_sequence": mask.copy(),
            "start": start_arr, "_start": mask.copy(),
        }  # fmt: skip

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every running sub-env; sub-envs whose episode ended last step are reset."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = check_actions(actions, (self.num_envs, self.config.num_drums), self.action_space,
                          self.config.velocity_levels)
        n = self.num_envs
        rewards = np.zeros(n)
        terminations = np.zeros(n, dtype=bool)
        infos: dict[str, Any] = {}
        resetting = np.flatnonzero(self._autoreset)
        running = np.flatnonzero(~self._autoreset)
        if len(resetting):
            infos.update(self._reset_envs(resetting, None))
        if len(running):
            every = len(running) == n  # (running is sorted: every sub-env, in order)
            ended_metrics: dict[str, np.ndarray] = {}
            result = self._core.step(a if every else a[running], None if every else running,
                                     ended_metrics)  # fmt: skip
            cols = slice(None) if every else running  # running's columns of (..., n) arrays
            rewards[cols] = result.reward
            terminations[cols] = result.terminated
            mask = np.zeros(n, dtype=bool)
            mask[cols] = True
            # One new block per step for every term's values, handed out as its rows: each key
            # gets its own array, and no array is handed out twice.
            k = len(TERMS)
            values = np.zeros((2 * k, n))
            values[:k, cols] = result.raw.T
            values[k:, cols] = result.normalized.T
            closed = np.zeros((k, n), dtype=bool)
            closed[:, cols] = result.closed.T
            terms: dict[str, np.ndarray] = {}
            for j, name in enumerate(TERMS):
                terms[f"{name}/raw"] = values[j]
                terms[f"_{name}/raw"] = mask
                terms[f"{name}/norm"] = values[k + j]
                terms[f"_{name}/norm"] = mask
                terms[f"{name}/closed"] = closed[j]
                terms[f"_{name}/closed"] = mask
            infos["reward_terms"] = terms
            infos["_reward_terms"] = mask
            ended = running[result.terminated]
            if len(ended):
                done_mask = np.zeros(n, dtype=bool)
                done_mask[ended] = True
                episode: dict[str, np.ndarray] = {}
                for key, metric in ended_metrics.items():
                    arr = np.zeros(n)
                    arr[ended] = metric
                    episode[key] = arr
                    episode[f"_{key}"] = done_mask
                infos["episode_metrics"] = episode
                infos["_episode_metrics"] = done_mask
        self._autoreset = terminations.copy()
        truncations = np.zeros(n, dtype=bool)
        return self._core_obs(), rewards, terminations, truncations, infos

    def render(self) -> tuple[str | np.ndarray, ...] | None:
        """Render every sub-env's canvas (a tuple, one entry per sub-env)."""
        if self.render_mode is None:
            return None
        return tuple(
            render_canvas(self.render_mode, self._core.canvas[i].astype(np.float32), self.config,
                          int(self._core.t[i]))
            for i in range(self.num_envs)
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """Everything the env's future depends on, as numpy arrays and plain Python data.

        Copies, not views: stepping the env afterwards leaves the returned dict unchanged. Holds
        only numeric or bool numpy arrays, python scalars, str, None, lists and dicts, so it
        pickles and converts to tensors generically. The per-window reference feature cache is
        not saved: it is recomputed, deterministically, when a window is next used.

        Returns:
            dict with ``"format"`` (``"DrumComposeVectorEnv"``), ``"version"``
            (:attr:`STATE_VERSION`), ``"num_envs"`` (int), ``"core"`` (the
            :meth:`ComposeCore.state_dict <drum_env.core.ComposeCore.state_dict>`: episode
            buffers, term history, reference windows and features), ``"normalizer"`` (the shared
            :class:`~drum_env.rewards.RunningNormalizer`'s ``state_dict``), ``"rngs"`` (one
            ``bit_generator.state`` dict per sub-env), ``"autoreset"`` (bool array (num_envs,),
            :attr:`autoreset_mask`) and ``"started"`` (bool: reset has been called).
        """
        return {
            "format": type(self).__name__,
            "version": self.STATE_VERSION,
            "num_envs": self.num_envs,
            "core": self._core.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "rngs": [generator_state(g) for g in self.np_random_list],
            "autoreset": self._autoreset.copy(),
            "started": bool(self._started),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` into this env, built with the same arguments.

        The env may be fresh or used; everything is checked before anything is written, so on
        an error the env is unchanged. Afterwards :attr:`observation` is the observation to act
        on, and stepping continues bit for bit as the saved env would have. The shared
        normaliser is restored in place (other holders of it see the restored statistics).

        Args:
            state: a dict written by :meth:`state_dict` (arrays may be anything
                ``np.asarray`` takes).

        Raises:
            ValueError: the state does not fit: another format or version, number of sub-envs
                or task, a missing or unknown key, a buffer of another shape or dtype (the
                message names it), or a generator state for another bit generator.
        """
        keys = ("num_envs", "core", "normalizer", "rngs", "autoreset", "started")
        check_state_header(state, type(self).__name__, self.STATE_VERSION, keys)
        if state["num_envs"] != self.num_envs:
            raise ValueError(
                f"{type(self).__name__} state has {state['num_envs']} sub-envs, the env has "
                f"{self.num_envs}"
            )
        autoreset = check_state_array("'autoreset'", state["autoreset"], self._autoreset)
        if not isinstance(state["started"], (bool, np.bool_)):
            raise ValueError(f"state 'started' must be a bool, got {state['started']!r}")
        rngs = state["rngs"]
        if not isinstance(rngs, (list, tuple)) or len(rngs) != self.num_envs:
            got = len(rngs) if isinstance(rngs, (list, tuple)) else type(rngs).__name__
            raise ValueError(f"state 'rngs' must hold {self.num_envs} generator states, got {got}")
        gens = self.np_random_list
        rngs = [
            check_generator_state(f"'rngs'[{i}]", r, g)
            for i, (r, g) in enumerate(zip(rngs, gens))
        ]
        check_normalizer_state(state["normalizer"], self.normalizer)
        self._core.load_state_dict(state["core"])  # checks everything before writing
        # --- everything fits: write
        self.normalizer.load_state_dict(state["normalizer"])
        for g, r in zip(gens, rngs):
            set_generator_state(g, r)
        self._autoreset[...] = autoreset
        self._started = bool(state["started"])

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release."""

    def _core_obs(self) -> dict[str, np.ndarray]:
        return self._core.observe()
