"""Play whole DrumCompose episodes with any policy: the shared evaluation loop and its adapters.

The custom PPO agent, the Stable-Baselines3 baselines, ``drum-env generate`` and the benchmark
all evaluate through :func:`rollout_episodes`, so their numbers are comparable. A policy is a
:data:`PolicyFn`; the adapters make one from a torch policy (:func:`policy_fn`), an SB3 model
(:func:`sb3_policy_fn`) or nothing (:func:`random_policy`), and :func:`load_any_policy` reads a
policy file or a PPO checkpoint.

In the expressive env (``velocity_levels = K > 0``) actions are int64 classes ``0 .. K`` per drum
(0 no hit, ``k`` velocity bin ``k``) instead of int8 0 / 1; every adapter here plays either. A
policy's velocity bins (:func:`agents.policies.policy.policy_velocity_bins`) are the ones to build
its evaluation envs with (``velocity_bins=``), so that its classes play at the levels it learned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from agents.baselines.sb3_load import VELOCITY_BINS_FILE, SB3Policy, load_sb3_zip

__all__ = [
    "PolicyFn", "Rollouts", "rollout_episodes", "random_policy", "loop_policy", "policy_fn",
    "sb3_policy_fn", "load_any_policy", "SB3Policy", "VELOCITY_BINS_FILE",
]  # fmt: skip

PolicyFn = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Maps a batched observation (dict of arrays with a leading ``num_envs`` axis) to actions
``(num_envs, num_drums)``: int8 0 / 1, or int64 classes ``0 .. K`` in the expressive env."""


class Rollouts(NamedTuple):
    """Finished episodes of :func:`rollout_episodes`."""

    returns: np.ndarray
    """float64 (episodes,): undiscounted sum of the env's rewards."""
    song_raw: np.ndarray
    """float64 (episodes,): the raw ``song`` term (in [-1, 0]; 0 = the song features match)."""
    sequences: np.ndarray
    """float32 (episodes, seq_len, drums): the composed canvases, primer included."""
    references: np.ndarray
    """float32 (episodes, seq_len, drums): the reference windows."""
    prompt_steps: int
    """Steps of primer at the start of each sequence."""
    takes: np.ndarray | None = None
    """float32 (episodes, seq_len, drums): the canvases with velocities (the primer keeps the
    data's, composed hits play at the primer's per-drum mean; ``DrumComposeVectorEnv.takes``)."""
    tempos: tuple[float | None, ...] = ()
    """Each episode's reference tempo when its file records one (quarter notes per minute)."""
    reference_values: np.ndarray | None = None
    """float32 (episodes, seq_len, drums): the reference windows with the data's velocities
    (``DrumComposeVectorEnv.reference_values``): what the velocity families judge against."""


def random_policy(num_drums: int, rate: float | np.ndarray = 0.5, seed: int = 0,
                  velocity_levels: int = 0) -> PolicyFn:  # fmt: skip
    """A policy that hits each drum independently with probability ``rate`` (seeded).

    With ``velocity_levels = K > 0`` it plays classes: each drum's class is drawn from a
    probability table ``(num_drums, K + 1)``; a ``rate`` of shape ``()`` or ``(num_drums,)``
    is a hit rate, spread evenly over the ``K`` velocity classes (``[1 - rate, rate / K, ...]``),
    and a ``rate`` of shape ``(num_drums, K + 1)`` is the table itself (e.g. each drum's class
    frequencies in the data: a density- and velocity-matched random player). One uniform draw
    per drum and step either way.

    Args:
        num_drums: drums per step.
        rate: hit probability, scalar or float array (num_drums,); with velocity levels also a
            class table (num_drums, K + 1) whose rows sum to 1.
        seed: seed of the policy's own generator.
        velocity_levels: ``K`` (0: binary hits).

    Returns:
        PolicyFn: int8 0 / 1 actions, or int64 classes with velocity levels.

    Raises:
        ValueError: ``velocity_levels`` is not an integer >= 0; with velocity levels, a class
            table of another shape, with entries outside [0, 1], or whose rows do not sum to 1.
    """
    if isinstance(velocity_levels, bool) or not isinstance(velocity_levels, (int, np.integer)) \
            or velocity_levels < 0:
        raise ValueError(f"velocity_levels must be an integer >= 0, got {velocity_levels!r}")
    rng = np.random.default_rng(seed)
    table = np.asarray(rate, dtype=np.float64)
    if not velocity_levels:
        rate = np.broadcast_to(table, (num_drums,))

        def act(obs: dict[str, np.ndarray]) -> np.ndarray:
            n = len(next(iter(obs.values())))
            return (rng.random((n, num_drums)) < rate).astype(np.int8)

        return act
    k = int(velocity_levels)
    if table.ndim < 2:
        hit = np.broadcast_to(table, (num_drums,))
        table = np.concatenate([1.0 - hit[:, None], np.repeat(hit[:, None] / k, k, 1)], axis=1)
    if table.shape != (num_drums, k + 1):
        raise ValueError(
            f"rate must be a hit rate (scalar or ({num_drums},)) or a class table "
            f"({num_drums}, {k + 1}), got shape {table.shape}"
        )
    if not (np.isfinite(table).all() and (table >= 0).all()
            and np.allclose(table.sum(1), 1.0)):  # fmt: skip
        raise ValueError(f"rate must give class probabilities in [0, 1] summing to 1, got {table}")
    inner = np.cumsum(table, axis=1)[:, :-1]  # (D, K): the class boundaries in [0, 1)

    def act_classes(obs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(obs.values())))
        u = rng.random((n, num_drums))
        return (u[..., None] >= inner).sum(-1).astype(np.int64)

    return act_classes


def loop_policy(num_drums: int, context_steps: int, steps_per_bar: int,
                velocity_bins: Any = None) -> PolicyFn:  # fmt: skip
    """Loop the primer: play at each step what the canvas holds one bar earlier.

    The obvious continuation that learns nothing: it reads only the observation's ``context``
    (flattened ``(context_steps, num_drums)``, oldest step first), whose row
    ``context_steps - steps_per_bar`` is the step one bar before the current one, so with a
    one-bar primer it repeats the primer's bar to the end. With ``velocity_bins`` (the
    expressive env's, ``env.unwrapped.config.velocity_bins``) it plays the classes of those
    values (``bins.encode``): a primer hit's velocity class, and a looped hit's own class again.

    Args:
        num_drums: drums per step.
        context_steps: steps of context in the observation (>= ``steps_per_bar``).
        steps_per_bar: steps in one bar.
        velocity_bins: the env's :class:`~dataset.velocity.VelocityBins` (or its ``to_dict()``)
            when it has velocity levels; ``None`` for the binary env.

    Returns:
        PolicyFn: int8 0 / 1 actions, or int64 classes with ``velocity_bins``.

    Raises:
        ValueError: the context is shorter than a bar.
    """
    if context_steps < steps_per_bar:
        raise ValueError(
            f"loop_policy needs context_steps >= steps_per_bar, got {context_steps} < "
            f"{steps_per_bar}"
        )
    row = context_steps - steps_per_bar
    bins = None
    if velocity_bins is not None:
        from dataset.velocity import VelocityBins

        bins = VelocityBins.from_dict(velocity_bins)

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        context = np.asarray(obs["context"]).reshape(-1, context_steps, num_drums)
        if bins is not None:
            return bins.encode(context[:, row])
        return (context[:, row] > 0).astype(np.int8)

    return act


def rollout_episodes(
    policy: PolicyFn,
    env_kwargs: Mapping[str, Any] | None = None,
    episodes: int = 16,
    num_envs: int = 8,
    seed: int = 0,
) -> Rollouts:
    """Play ``episodes`` whole episodes of ``DrumCompose-v0`` with ``policy``.

    Runs the native vector env with ``num_envs`` sub-envs seeded ``seed, seed + 1, ...``; the
    first ``episodes`` episodes to finish are kept (all sub-envs finish together, so these are
    the episodes of sub-envs ``0..`` in order, round after round).

    Args:
        policy: batched observation -> actions.
        env_kwargs: keyword arguments of ``DrumCompose-v0`` (data, seq_len, shaping, ...).
        episodes: episodes to return.
        num_envs: sub-envs stepped together.
        seed: reset seed.

    Returns:
        Rollouts.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    num_envs = max(1, min(num_envs, episodes))
    env = gym.make_vec(
        "DrumCompose-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
        **dict(env_kwargs or {}),
    )  # fmt: skip
    venv = env.unwrapped  # the DrumComposeVectorEnv: its canvases and references
    obs, _ = env.reset(seed=seed)
    returns, song, seqs, refs, takes, tempos, ref_values = [], [], [], [], [], [], []
    running = np.zeros(num_envs)
    while len(returns) < episodes:
        obs, reward, terminated, _, info = env.step(policy(obs))
        running += reward
        if terminated.any():
            ended = np.flatnonzero(terminated)
            canvases, references = venv.canvases[ended], venv.references[ended]
            with_velocity, tempo = venv.takes[ended], venv.tempos
            real_values = venv.reference_values[ended]
            for j, i in enumerate(ended):
                returns.append(running[i])
                song.append(info["reward_terms"]["song/raw"][i])
                seqs.append(canvases[j])
                refs.append(references[j])
                takes.append(with_velocity[j])
                tempos.append(tempo[i])
                ref_values.append(real_values[j])
            running[terminated] = 0.0
            obs, *_ = env.step(np.zeros(env.action_space.shape, env.action_space.dtype))  # reset
    env.close()
    k = episodes
    return Rollouts(
        np.array(returns[:k]), np.array(song[:k]), np.stack(seqs[:k]), np.stack(refs[:k]),
        venv.prompt_steps, np.stack(takes[:k]), tuple(tempos[:k]), np.stack(ref_values[:k]),
    )  # fmt: skip


def load_any_policy(path: str | Path):
    """A policy from ``policy.pt``, a PPO ``checkpoint.pt`` or an SB3 ``model.zip``.

    ``policy.pt`` and ``checkpoint.pt`` give a :class:`~agents.policies.policy.DrumPolicy` (or
    ``MLPPolicy``), read with ``torch.load(weights_only=True)``; a ``.zip`` gives an
    :class:`SB3Policy`, read as data by :func:`agents.baselines.sb3_load.load_sb3_zip` (nothing in
    the file is unpickled; its task from the sidecar or ``config.json`` that ``drum-env baseline``
    writes beside it). :func:`policy_fn` plays any of them. Loading a ``.pt`` leaves the global
    torch generator as it was (a training run may be evaluating); loading a ``.zip`` seeds the
    global generators with the model's seed, as SB3's ``PPO.load`` does. Each
    carries the velocity bins it plays at (``policy.velocity_bins``, or ``config.velocity_bins``
    of an :class:`SB3Policy`; :func:`agents.policies.policy.policy_velocity_bins` reads either).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is none of these, or its policy config or tensors are not a
            policy's, or a ``.zip`` cannot be rebuilt without running code from it (the
            message names the file and what is wrong).
    """
    import torch

    from agents.policies.policy import load_policy, policy_from_state
    from agents.training.checkpoint import load_checkpoint

    if Path(path).suffix == ".zip":
        return load_sb3_zip(path)
    payload = load_checkpoint(path)
    if "policy_config" in payload and "model" in payload:  # a PPO training checkpoint
        with torch.random.fork_rng():  # building a module draws from the global generator
            return policy_from_state(payload["policy_config"], payload["model"], path)
    return load_policy(path)


def policy_fn(policy: Any, deterministic: bool = False, seed: int = 0, temperature: float = 1.0,
              *, env: Any = None, velocity_anchor: float = 0.0
              ) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:  # fmt: skip
    """Wrap a policy of :func:`load_any_policy` as a batched numpy policy for rollouts.

    A :class:`SB3Policy` plays through :func:`sb3_policy_fn` (``seed`` unused: SB3 samples from
    torch's global generator). Given the ``env`` it will play in, the policy and the env must
    agree as ``drum-env generate`` requires (:func:`agents.policies.compat.check_policy_fits`:
    drums, metre, velocity levels and bins, observation layout); every call checks the observation's
    layout (:func:`agents.policies.compat.check_observation`).

    Args:
        policy: the torch policy (evaluated on CPU, no gradients).
        deterministic: hit when the probability is > 0.5 instead of sampling (with velocity
            classes: each drum's most likely class).
        seed: seed of the torch generator that samples the actions.
        temperature: sample from ``logits / temperature`` (> 0): below 1 sharper, above 1
            flatter; 1 samples the policy as it is. Not for SB3 models.
        env: the env (single or vector, wrapped or not) the actions are for; ``None``: not
            checked up front.
        velocity_anchor: ``beta`` of :mod:`agents.evaluation.anchor` (>= 0; 0: off): a hit's
            velocity class re-weighted by the primer's dynamics, the hits left as they are
            (after the temperature). The function then remembers each sub-env's primer, so use
            one per rollout. Policies with velocity levels only.

    Returns:
        obs dict of arrays -> actions (num_envs, num_drums): int8 0 / 1, or int64 classes for a
        policy with velocity levels.

    Raises:
        ValueError: a temperature that is not a finite number > 0, or one for an SB3 model; an
            ``env`` the policy does not fit (the message names the field); a ``velocity_anchor``
            that is not a finite number >= 0, or one > 0 for a binary policy or an SB3 model.
    """
    import torch

    from agents.policies.compat import check_observation, check_policy_fits
    from agents.policies.policy import obs_to_tensors, policy_velocity_bins

    if env is not None:  # the Python path refuses what drum-env generate refuses
        check_policy_fits(policy.config, env.unwrapped.config, "policy",
                          policy_bins=policy_velocity_bins(policy),
                          hint="build the env with the policy's {name}")  # fmt: skip

    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
            or not math.isfinite(temperature) or temperature <= 0):  # fmt: skip
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    from agents.evaluation.anchor import PrimerAnchor, anchor_logits, check_velocity_anchor

    beta = check_velocity_anchor(velocity_anchor)
    if isinstance(policy, SB3Policy):
        if temperature != 1.0:
            raise ValueError("temperature applies to drum-env policies, not to SB3 models")
        if beta:
            raise ValueError("velocity_anchor applies to drum-env policies, not to SB3 models")
        return sb3_policy_fn(policy.model, deterministic)
    anchor = None
    if beta:
        if not policy.config.velocity_levels:
            raise ValueError(
                "velocity_anchor re-weights velocity classes: the policy is binary "
                "(velocity_levels = 0)"
            )
        c = policy.config
        anchor = PrimerAnchor(policy_velocity_bins(policy), c.num_drums, c.context_steps,
                              c.steps_per_bar)  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    device = next(policy.parameters()).device
    dtype = np.int64 if policy.config.velocity_levels else np.int8
    policy.eval()

    def act(obs: Mapping[str, np.ndarray]) -> np.ndarray:
        check_observation(policy.config, obs)
        with torch.no_grad():
            if temperature == 1.0 and anchor is None:
                actions, _, _ = policy.act(
                    obs_to_tensors(obs, device), deterministic=deterministic, generator=generator
                )
            else:
                logits = policy.forward_obs(obs_to_tensors(obs, device)).logits.float()
                logits = logits / temperature
                if anchor is not None:
                    weights = torch.from_numpy(anchor(obs)).to(logits.device)
                    logits = anchor_logits(logits, weights, beta)
                dist = policy.action_dist
                actions = (dist.mode(logits) if deterministic
                           else dist.sample(logits, generator))  # fmt: skip
        return actions.cpu().numpy().astype(dtype)

    return act


def sb3_policy_fn(model: Any, deterministic: bool = False):
    """A policy function (batched obs dict -> actions) from an SB3 model's ``predict``.

    Actions are int8 0 / 1 (``MultiBinary``), or int64 classes (``MultiDiscrete``: velocity
    levels).
    """
    dtype = np.int64 if isinstance(model.action_space, gym.spaces.MultiDiscrete) else np.int8

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        actions, _ = model.predict(obs, deterministic=deterministic)
        return np.asarray(actions, dtype=dtype)

    return act
