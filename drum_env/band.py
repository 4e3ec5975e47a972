"""DrumBand (``drum_band_v0``): DrumCompose as a PettingZoo band, one agent per instrument.

``parallel_env(**kwargs)`` is the native :class:`pettingzoo.ParallelEnv`; ``env(**kwargs)`` its
AEC form (``parallel_to_aec`` with PettingZoo's usual wrappers); ``raw_env(**kwargs)`` the AEC
form without the wrappers. The episodes, the primer and the shared reward are those of
``DrumCompose-v0``: every step runs the same :class:`~drum_env.core.ComposeCore` with ``B = 1``,
so nothing of the reward is computed twice or differently.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

try:
    from pettingzoo import AECEnv, ParallelEnv
    from pettingzoo.utils import conversions, wrappers
except ModuleNotFoundError as exc:  # the band is an extra
    raise ModuleNotFoundError(
        "drum_env.band needs PettingZoo, which is not installed: pip install 'drum-env[band]'",
        name=exc.name,
    ) from None

from dataset import metrics
from drum_env import render as _render
from drum_env import rewards
from drum_env.base import RENDER_MODES, DrumComposeArgs, SingleComposeBase, takes_compose_args
from drum_env.checks import options_window
from drum_env.core import terms_info
from drum_env.rewards import TERMS

__all__ = [
    "AGENT_TERMS",
    "OWN_TARGET_NAMES",
    "DrumBandParallelEnv",
    "env",
    "parallel_env",
    "raw_env",
]

AGENT_TERMS: tuple[str, ...] = ("bar_density", "phrase_ioi")
"""The per-agent reward terms, in the order of ``infos[agent]["agent_terms"]``."""

OWN_TARGET_NAMES: tuple[str, ...] = ("step_rate", "bar_density", "phrase_ioi", "song_density")
"""The agent's own-instrument targets in its observation (see the class docstring)."""

_RESET_OPTIONS = ("window", "sequence")
_BAR, _PHRASE = TERMS.index("bar"), TERMS.index("phrase")


class DrumBandParallelEnv(SingleComposeBase, ParallelEnv):
    """A drum band: each instrument is an agent that decides, each step, whether it hits.

    ## Description

    The cooperative multi-agent form of ``DrumCompose-v0`` (see
    :class:`~drum_env.env.DrumComposeEnv`): the same reference windows, primer, episode length
    and hierarchical reward. Agent ``i`` plays drum column ``i``; the band's actions, stacked in
    agent (= instrument) order, are the ``MultiBinary(num_drums)`` action of one
    ``DrumCompose-v0`` step. Agents are named after the instruments (``kick``, ``snare``,
    ``hihat_closed``, ``hihat_open``, ``tom_low``, ``tom_mid``, ``tom_high``, ``crash``,
    ``ride``: :data:`dataset.drums.DRUM_NAMES`) when the data holds 9 drums, else ``drum0``,
    ``drum1``, ...

    ## Action Space

    ``Discrete(2)`` per agent: 1 = the agent's drum hits on this step, 0 = rest. ``step`` takes
    one action for every live agent; ``bool``, integer and integral float values 0 / 1 are
    accepted. With ``velocity_levels=K > 0``: ``Discrete(K + 1)``, 0 = rest, ``k`` = a hit in
    velocity bin ``k`` (as ``DrumCompose-v0``'s expressive action; the shared and own
    ``context`` then carry velocities in [0, 1]).

    ## Observation Space

    ``Box(0, 1, (n,), float32)`` per agent, the same space for every agent so one policy can
    take all agents as a batch. With ``C = context_steps``, ``D = num_drums``,
    ``S = steps_per_bar``, ``P = bars_per_phrase``, ``t`` the step to write and ``d`` the
    agent's drum:

    | slice | size | meaning | range | unit |
    |---|---|---|---|---|
    | ``context`` | ``C * D`` | shared: latest canvas steps, step-major | {0, 1} | hits |
    | ``position`` | ``S + P + 2`` | shared: DrumCompose's ``position`` | [0, 1] | 16ths, bars |
    | ``target`` | ``11 + D`` | shared: DrumCompose's ``target`` | [0, 1] | features |
    | ``own_context`` | ``C`` | drum ``d``'s column of ``context`` | {0, 1} | hits |
    | ``own_target[0]`` | 1 | reference rate of ``d`` at ``t % S`` | [0, 1] | per bar |
    | ``own_target[1]`` | 1 | reference density of ``d`` in bar ``t // S`` | [0, 1] | hits/step |
    | ``own_target[2]`` | 1 | ``min(ioi_mean / S, 1)`` of ``d``, reference phrase | [0, 1] | bars |
    | ``own_target[3]`` | 1 | reference density of ``d`` over the window | [0, 1] | hits/step |
    | ``agent_id`` | ``D`` | one-hot ``d`` | {0, 1} | one-hot |

    ``n = C * D + (S + P + 2) + (11 + D) + C + 4 + D`` (375 for the defaults
    ``C = 32, D = 9, S = 16, P = 4``). The shared slices are exactly DrumCompose-v0's
    observation (``context``, ``position``, ``target`` concatenated). ``own_target[1]`` and
    ``[2]`` are for the bar and phrase that hold step ``t`` (the last ones once the window is
    composed; ``[2]`` is 0 when the window is shorter than a phrase).
    ``own_target[0]`` is the hit rate of drum ``d`` over the reference window's bars at this
    position in the bar, the target of the ``step`` term.

    ## Rewards

    Every agent gets the shared team reward ``r_t`` of DrumCompose-v0 (``sum_k w_k n_k(x_k)``,
    see :mod:`drum_env.rewards`) plus its own terms for its drum ``d``:

        r_t^d = r_t + agent_weight * (b_t^d + f_t^d)

    * ``bar_density``, at the end of each composed bar ``k`` (0 on other steps):
      ``b^d = -| density_d(canvas bar k) - density_d(reference bar k) |``, with
      ``density_d = metrics.hit_density(bar).drum_density[d]`` (hits per step), in [-1, 0];
    * ``phrase_ioi``, at the end of each phrase ``j`` that the agents wrote into (0 elsewhere):
      ``f^d = -| g_d(canvas phrase j) - g_d(reference phrase j) |``, with
      ``g_d = min(metrics.ioi_stats(phrase).mean[d] / steps_per_bar, 1)`` (mean IOI in bars;
      0 for a drum with fewer than two hits), in [-1, 0].

    Both close on the same steps as DrumCompose's ``bar`` and ``phrase`` terms and are not
    normalised. With ``agent_weight=0`` every agent's reward is DrumCompose-v0's reward exactly.
    ``infos[agent]["reward_terms"]`` holds the shared terms (as DrumCompose-v0's
    ``info["reward_terms"]``), ``infos[agent]["agent_terms"]`` the raw agent terms
    (:data:`AGENT_TERMS`).

    ## Starting State

    As DrumCompose-v0: the canvas holds the primer (the reference's first ``prompt_bars``
    bars). The window is drawn from the env's own generator, seeded only by
    ``reset(seed=...)``; ``reset(options={"window": i})`` or ``{"sequence": j}`` choose it
    (other option keys are ignored with a warning). ``infos[agent]`` of the reset holds
    ``window``, ``sequence`` and ``start``.

    ## Episode End

    * Termination (all agents): the window is composed, after
      ``seq_len - prompt_bars * steps_per_bar`` steps; the last ``infos[agent]`` also hold
      ``"episode_metrics"``.
    * Truncation (all agents): ``max_cycles`` steps were taken before the window was composed.
      The default ``max_cycles`` is the episode length, so episodes terminate.

    Agents leave ``agents`` when their episode ends; ``step`` then needs a ``reset``.

    ## State

    ``state()``: float32 ``(seq_len * D + S + P + 2,)`` in [0, 1], the whole canvas
    (step-major) and the ``position`` vector, for a centralised critic.

    ## Arguments

    Those of :class:`~drum_env.env.DrumComposeEnv`, the fields of
    :class:`~drum_env.base.DrumComposeArgs` (``data``, ``seq_len``, ``steps_per_bar``,
    ``bars_per_phrase``, ``prompt_bars``, ``context_steps``, ``sections``, ``shaping``,
    ``weights``, ``normalize``, ``render_mode``, ``on_error``, ``normalizer``,
    ``velocity_levels``, ``velocity_bins``), and, by keyword only:

    | argument | default | meaning |
    |---|---|---|
    | ``max_cycles`` | ``None`` | truncate after this many steps; None: the episode length |
    | ``agent_weight`` | 1.0 | weight of the per-agent terms in each agent's reward |

    >>> from drum_env.band import parallel_env
    >>> band = parallel_env(seq_len=64, prompt_bars=1)
    >>> observations, infos = band.reset(seed=0)
    >>> band.agents[:3], observations["kick"].shape
    (['kick', 'snare', 'hihat_closed'], (375,))
    >>> actions = {agent: band.action_space(agent).sample() for agent in band.agents}
    >>> observations, rewards, terminations, truncations, infos = band.step(actions)

    ## Version History

    * v0: initial release.
    """

    metadata = {
        "name": "drum_band_v0",
        "render_modes": list(RENDER_MODES),
        "is_parallelizable": True,
        "render_fps": 8,
    }

    @takes_compose_args
    def __init__(
        self, *args: Any, max_cycles: int | None = None, agent_weight: float = 1.0, **kwargs: Any
    ) -> None:
        """The band; all arguments but its own two: :class:`~drum_env.base.DrumComposeArgs`."""
        compose_args = DrumComposeArgs(*args, **kwargs)  # checks them before the band's own
        if max_cycles is not None and (
            not isinstance(max_cycles, (int, np.integer))
            or isinstance(max_cycles, bool)
            or max_cycles < 1
        ):
            raise ValueError(f"max_cycles must be a positive integer or None, got {max_cycles!r}")
        if isinstance(agent_weight, bool) or not isinstance(agent_weight, (int, float, np.number)):
            raise ValueError(f"agent_weight must be a finite number, got {agent_weight!r}")
        if not np.isfinite(agent_weight):
            raise ValueError(f"agent_weight must be a finite number, got {agent_weight!r}")
        self._build(compose_args, num_envs=1)
        c = self.config
        self.max_cycles = int(max_cycles) if max_cycles is not None else c.episode_steps
        self.agent_weight = float(agent_weight)
        self.possible_agents: list[str] = list(_render.default_drum_names(c.num_drums))
        self.agents: list[str] = []
        self._np_random: np.random.Generator | None = None
        self._np_random_seed: int | None = None

        # Observation layout: [shared (context, position, target) | own_context | own_target |
        # agent_id]. The shared part and the one-hot ids never depend on the agent's index
        # in a way that a shared-parameter policy could not read.
        d, ctx = c.num_drums, c.context_steps
        self._shared_size = ctx * d + c.position_size + c.target_size
        self._own_size = ctx + len(OWN_TARGET_NAMES)
        self.observation_size = self._shared_size + self._own_size + d
        self._agent_ids = np.eye(d, dtype=np.float32)
        self.observation_spaces: dict[str, spaces.Box] = {
            a: spaces.Box(0.0, 1.0, (self.observation_size,), dtype=np.float32)
            for a in self.possible_agents
        }
        self._classes = c.velocity_levels + 1 if c.expressive else 2
        self.action_spaces: dict[str, spaces.Discrete] = {
            a: spaces.Discrete(self._classes) for a in self.possible_agents
        }
        self.state_space = spaces.Box(
            0.0, 1.0, (c.seq_len * d + c.position_size,), dtype=np.float32
        )
        # Own targets by step t in [0, seq_len]: float32 (seq_len + 1, drums, 4), set on reset.
        self._own_table = np.zeros((c.seq_len + 1, d, len(OWN_TARGET_NAMES)), dtype=np.float32)
        self._ref_bar_density = np.zeros((c.seq_len // c.steps_per_bar, d))
        self._ref_phrase_ioi = np.zeros((c.seq_len // c.phrase_len, d))
        self._cycles = 0
        self._running = False
        self._has_reset = False

    # ------------------------------------------------------------------------- spaces

    def observation_space(self, agent: str) -> spaces.Box:
        """The agent's observation space (the same object on every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        """The agent's action space (the same object on every call).

        ``Discrete(2)``, or ``Discrete(K + 1)`` with ``K`` velocity levels (0 rest, ``k`` a hit
        in velocity bin ``k``).
        """
        return self.action_spaces[agent]

    @property
    def np_random(self) -> np.random.Generator:
        """The env's generator, the only source of randomness (seeded by ``reset(seed=...)``)."""
        if self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random()
        return self._np_random

    # ------------------------------------------------------------------------- dynamics

    def reset(
        self, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode on a reference window drawn with the env's own generator.

        Args:
            seed: seeds the env's generator (``gymnasium.utils.seeding.np_random``); None keeps
                it (or creates an unseeded one).
            options: ``{"window": i}`` or ``{"sequence": j}`` choose the reference, as for
                DrumCompose-v0; other keys are ignored with a warning.

        Returns:
            ``(observations, infos)``, one entry per agent; each info holds ``window``,
            ``sequence`` and ``start`` of the reference.
        """
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(_RESET_OPTIONS))
        if unknown:
            warnings.warn(
                f"drum_band_v0 ignores reset option(s) {unknown}; known: {list(_RESET_OPTIONS)}",
                stacklevel=2,
            )
        known = {k: options[k] for k in _RESET_OPTIONS if k in options}
        window = options_window(known, self.data, self.np_random)
        self._core.reset(np.array([0]), np.array([window]))
        self._set_references()
        self.agents = self.possible_agents[:]
        self._cycles = 0
        self._running = True
        self._has_reset = True
        seq, start = self.data.windows[window]
        info = {"window": int(window), "sequence": self.data.names[seq], "start": int(start)}
        return self._get_obs(), {a: dict(info) for a in self.agents}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Write one step of the canvas: each agent's action is its drum's hit or rest.

        Args:
            actions: one action in {0, 1} (``0 .. K`` with velocity levels) for every live
                agent, keyed by agent name.

        Returns:
            ``(observations, rewards, terminations, truncations, infos)``, each keyed by the
            agents that were live before the step.

        Raises:
            RuntimeError: before ``reset`` or after the episode ended.
            ValueError: actions for unknown or finished agents, missing actions, or a value
                that is not 0 or 1 (not in ``0 .. K``); the message names the agents.
        """
        if not self._running:
            raise RuntimeError("call reset() before step(), and again after the episode ends")
        chosen = self._check_actions(actions)
        c, core = self.config, self._core
        end = int(core.t[0]) + 1  # steps written after this one
        ended: dict[str, np.ndarray] = {}  # the episode metrics, when the step ends it
        result = core.step(chosen[None], episode_metrics=ended)
        agent_terms = np.zeros((len(AGENT_TERMS), c.num_drums))
        if result.closed[0, _BAR]:
            bar = core.canvas[0, end - c.steps_per_bar : end]
            dens = metrics.hit_density(bar).drum_density
            agent_terms[0] = -np.abs(dens - self._ref_bar_density[end // c.steps_per_bar - 1])
        if result.closed[0, _PHRASE]:
            phrase = core.canvas[0, end - c.phrase_len : end]
            ioi = _ioi_feature(phrase, c.steps_per_bar)
            agent_terms[1] = -np.abs(ioi - self._ref_phrase_ioi[end // c.phrase_len - 1])
        team = float(result.reward[0])
        own = self.agent_weight * agent_terms.sum(axis=0)

        self._cycles += 1
        terminated = bool(result.terminated[0])
        truncated = not terminated and self._cycles >= self.max_cycles
        agents = self.agents
        shared_terms = terms_info(result, 0)
        episode = None
        if terminated:
            episode = core.episode_metrics_info(0, ended)
        rewards_out: dict[str, float] = {}
        infos: dict[str, dict[str, Any]] = {}
        for i, agent in enumerate(agents):
            rewards_out[agent] = team + float(own[i])
            info = {
                "reward_terms": dict(shared_terms),
                "agent_terms": dict(zip(AGENT_TERMS, agent_terms[:, i].tolist())),
            }
            if episode is not None:
                info["episode_metrics"] = dict(episode)
            infos[agent] = info
        observations = self._get_obs()
        terminations = dict.fromkeys(agents, terminated)
        truncations = dict.fromkeys(agents, truncated)
        if terminated or truncated:
            self.agents = []
            self._running = False
        return observations, rewards_out, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """float32 ``(seq_len * num_drums + position_size,)``: the canvas and the position.

        Raises:
            RuntimeError: before the first ``reset``.
        """
        if not self._has_reset:
            raise RuntimeError("call reset() before state()")
        position = self._core.observe()["position"][0]
        return np.concatenate([self.canvas.ravel(), position])

    # ------------------------------------------------------------------------- helpers

    def _check_actions(self, actions: Mapping[str, Any]) -> np.ndarray:
        """Validate the actions: -> bool array (num_drums,) in agent (= instrument) order."""
        if not isinstance(actions, Mapping):
            raise ValueError(
                f"actions must be a dict {{agent: 0 or 1}}, got {type(actions).__name__}"
            )
        if actions.keys() != set(self.agents):
            unknown = sorted(set(actions) - set(self.agents), key=str)
            missing = [a for a in self.agents if a not in actions]
            problems = []
            if unknown:
                problems.append(f"actions for unknown or finished agent(s) {unknown}")
            if missing:
                problems.append(f"no action for live agent(s) {missing}")
            raise ValueError("; ".join(problems) + f" (live agents: {self.agents})")
        values = [actions[a] for a in self.agents]
        try:
            arr = np.asarray(values)
        except ValueError:  # ragged: some value is not a scalar
            arr = None
        top = self._classes - 1
        if arr is not None and arr.shape == (len(values),) and arr.dtype.kind in "biuf":
            whole = np.isfinite(arr).all() and (arr == np.round(arr)).all()
            if whole and ((arr >= 0) & (arr <= top)).all():
                classes = arr.astype(np.int64)
                return classes if self.config.expressive else classes == 1
        bad = {a: v for a, v in zip(self.agents, values) if not _is_class(v, top)}
        what = "0 (rest) or 1 (hit)" if top == 1 else f"an integer in [0, {top}] (0 rest)"
        raise ValueError(f"each action must be {what} for Discrete({top + 1}), got {bad}")

    def _set_references(self) -> None:
        """Per-agent reference targets of the new episode's window (metrics of the reference)."""
        c = self.config
        ref = self._core.reference[0]
        d = c.num_drums
        n_bars, n_phrases = c.seq_len // c.steps_per_bar, c.seq_len // c.phrase_len
        bars = ref.reshape(n_bars, c.steps_per_bar, d)
        phrases = ref[: n_phrases * c.phrase_len].reshape(n_phrases, c.phrase_len, d)
        self._ref_bar_density = metrics.hit_density(bars).drum_density
        self._ref_phrase_ioi = _ioi_feature(phrases, c.steps_per_bar)
        t = np.arange(c.seq_len + 1)
        table = self._own_table
        table[:, :, 0] = rewards.step_probabilities(ref, c.steps_per_bar)[t % c.steps_per_bar]
        table[:, :, 1] = self._ref_bar_density[np.minimum(t // c.steps_per_bar, n_bars - 1)]
        if n_phrases:
            table[:, :, 2] = self._ref_phrase_ioi[np.minimum(t // c.phrase_len, n_phrases - 1)]
        else:
            table[:, :, 2] = 0.0
        table[:, :, 3] = metrics.hit_density(ref).drum_density

    def _get_obs(self) -> dict[str, np.ndarray]:
        c = self.config
        shared = self._core.observe()
        t = int(self._core.t[0])
        d, ctx, s = c.num_drums, c.context_steps, self._shared_size
        obs = np.empty((d, self.observation_size), dtype=np.float32)
        obs[:, : ctx * d] = shared["context"][0]
        obs[:, ctx * d : ctx * d + c.position_size] = shared["position"][0]
        obs[:, ctx * d + c.position_size : s] = shared["target"][0]
        obs[:, s : s + ctx] = shared["context"][0].reshape(ctx, d).T
        obs[:, s + ctx : s + self._own_size] = self._own_table[t]
        obs[:, s + self._own_size :] = self._agent_ids
        return {agent: obs[i] for i, agent in enumerate(self.possible_agents)}


def _ioi_feature(seq: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """``min(mean IOI / steps_per_bar, 1)`` per drum: bool (..., steps, drums) -> (..., drums)."""
    return np.minimum(metrics.ioi_stats(seq).mean / steps_per_bar, 1.0)


def _is_class(value: Any, top: int) -> bool:
    """Whether one agent's action is a scalar integer in ``[0, top]``.

    A bool, an integer or an integral float.
    """
    a = np.asarray(value)
    if a.ndim != 0 or a.dtype.kind not in "biuf" or not np.isfinite(a):
        return False
    return bool(a == np.round(a) and 0 <= a <= top)


def parallel_env(**kwargs: Any) -> DrumBandParallelEnv:
    """The band as a PettingZoo ``ParallelEnv``; ``kwargs`` as :class:`DrumBandParallelEnv`."""
    return DrumBandParallelEnv(**kwargs)


def raw_env(**kwargs: Any) -> AECEnv:
    """The band's AEC form without wrappers (``parallel_to_aec_wrapper``)."""
    return conversions.parallel_to_aec_wrapper(DrumBandParallelEnv(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """The band's AEC form, wrapped as PettingZoo's own environments are.

    ``OrderEnforcingWrapper(AssertOutOfBoundsWrapper(raw_env(**kwargs)))``: agents act in
    instrument order, the parallel step runs when the last live agent has acted, and an action
    outside ``Discrete(2)`` fails an assertion at once.
    """
    return wrappers.OrderEnforcingWrapper(wrappers.AssertOutOfBoundsWrapper(raw_env(**kwargs)))
