"""The players of the alignment tables: simple ways to continue a primer.

A player (:data:`PlayerFactory`) plays whole episodes of ``DrumCompose-v0`` from what the env
shows it (:class:`PlayerView`). The reference players (:func:`reference_players`): the real
continuation (plays the reference: the ceiling), the per-position mode of the reference window
(reads the reference too, but repeats one bar), loop-the-primer, a pretrained policy sampled and
thresholded at 0.5 (optional), density-matched random (each drum at its rate in the training
split), uniform random and silence. :func:`probe_players` adds simple players built to game a
reward (the primer looped with random drops and additions, random bars at the target's
densities repeated with variation, random play at the target's densities).
:func:`policy_player` plays a policy file (sampled, at a temperature, with nucleus sampling:
:func:`sample_top_p`). :mod:`agents.evaluation.alignment` plays and scores them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from drum_env.core import DrumComposeConfig

__all__ = [
    "PlayerView",
    "PlayerSetup",
    "PlayerFn",
    "PlayerFactory",
    "real_continuation",
    "per_position_mode",
    "loop_primer",
    "density_random",
    "uniform_random",
    "silence",
    "policy_player",
    "sample_top_p",
    "loop_with_variations",
    "random_bars_with_variations",
    "target_density_random",
    "reference_players",
    "probe_players",
]


class PlayerView(NamedTuple):
    """What a player sees before one step of a batch of episodes (all in lockstep).

    A fair player reads only ``obs`` and ``canvases``; the real continuation and the
    per-position mode read ``references`` (they are references, not candidates).
    """

    obs: dict[str, np.ndarray]
    """The batched observation (``context`` (B, C * D), ``position``, ``target``)."""
    references: np.ndarray
    """bool (B, seq_len, drums): each episode's reference window."""
    canvases: np.ndarray
    """bool (B, seq_len, drums): the primer and the steps written so far."""
    t: int
    """The step about to be written (the same in every episode)."""
    steps_per_bar: int
    """Steps in one bar."""
    prompt_steps: int
    """Steps of primer."""


class PlayerSetup(NamedTuple):
    """What a player is built from, once per play."""

    config: DrumComposeConfig
    """The task."""
    num_envs: int
    """Episodes played together (the batch size of every :class:`PlayerView`)."""
    train_rates: np.ndarray
    """float64 (drums,): hits per step of each drum in the training split."""
    seed: int
    """Seed of the player's own generator (the draw's reset seed)."""


PlayerFn = Callable[[PlayerView], np.ndarray]
"""One step of a batch: PlayerView -> actions, bool or 0/1 array (B, drums)."""
PlayerFactory = Callable[[PlayerSetup], PlayerFn]
"""Builds a :data:`PlayerFn` for one play (fresh generator, fresh state)."""


def _drums(view: PlayerView) -> tuple[int, int]:
    return view.references.shape[0], view.references.shape[-1]


def _target_density(view: PlayerView) -> np.ndarray:
    """Each drum's density in the reference window, read from the ``target`` observation."""
    return view.obs["target"][:, -view.references.shape[-1] :].astype(np.float64)


def real_continuation() -> PlayerFactory:
    """The reference itself: the real continuation of the primer (the ceiling)."""
    return lambda setup: lambda view: view.references[:, view.t]


def per_position_mode() -> PlayerFactory:
    """Each drum hits where it hits in more than half the bars of the reference window.

    The mode of the reference's hits at each position in the bar: every step-level reward is
    maximised by it, and it repeats one bar.
    """

    def make(setup: PlayerSetup) -> PlayerFn:
        def act(view: PlayerView) -> np.ndarray:
            b, d = _drums(view)
            bars = view.references.reshape(b, -1, view.steps_per_bar, d)
            return bars.mean(axis=1)[:, view.t % view.steps_per_bar] > 0.5

        return act

    return make


def loop_primer() -> PlayerFactory:
    """Repeat the step one bar earlier: the primer's last bar, looped."""
    return lambda setup: lambda view: view.canvases[:, view.t - view.steps_per_bar]


def _rate_random(rate: float | None) -> PlayerFactory:
    def make(setup: PlayerSetup) -> PlayerFn:
        rng = np.random.default_rng(setup.seed)
        p = setup.train_rates if rate is None else np.full(setup.config.num_drums, rate)

        def act(view: PlayerView) -> np.ndarray:
            return rng.random(_drums(view)) < p

        return act

    return make


def density_random() -> PlayerFactory:
    """Each drum hits independently at its rate in the training split."""
    return _rate_random(None)


def uniform_random() -> PlayerFactory:
    """Each drum hits independently with probability 1/2."""
    return _rate_random(0.5)


def silence() -> PlayerFactory:
    """Never hit."""
    return lambda setup: lambda view: np.zeros(_drums(view), dtype=bool)


def policy_player(
    policy: Any, deterministic: bool = False, temperature: float = 1.0, top_p: float | None = None
) -> PlayerFactory:
    """A :class:`~agents.policies.policy.DrumPolicy` (or its path) playing from its observations.

    Args:
        policy: the policy, or a ``policy.pt`` / PPO ``checkpoint.pt`` path.
        deterministic: hit where the probability is above 0.5 (thresholded) instead of
            sampling.
        temperature: sample from ``logits / temperature`` (> 0; 1: the policy as it is), as
            :func:`agents.evaluation.rollout.policy_fn` does.
        top_p: nucleus sampling of the step's hit pattern (:func:`sample_top_p`, after the
            temperature), in (0, 1]; ``None``: plain sampling. Binary policies only.

    Raises:
        ValueError: ``top_p`` outside (0, 1], with ``deterministic``, or for a policy with
            velocity classes; a temperature that is not a finite number > 0.
    """
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be a number in (0, 1], got {top_p!r}")
        if deterministic:
            raise ValueError("top_p samples; it cannot be combined with deterministic=True")

    def make(setup: PlayerSetup) -> PlayerFn:
        from agents.evaluation.rollout import load_any_policy, policy_fn

        model = load_any_policy(policy) if isinstance(policy, (str, Path)) else policy
        # policy_fn validates the temperature, also for the nucleus player
        fn = policy_fn(model, deterministic=deterministic, seed=setup.seed, temperature=temperature)
        if top_p is None:
            return lambda view: fn(view.obs)
        return _nucleus_fn(model, temperature, float(top_p), setup.seed)

    return make


def _nucleus_fn(model: Any, temperature: float, top_p: float, seed: int) -> PlayerFn:
    import torch

    from agents.policies.policy import obs_to_tensors

    if getattr(model.config, "velocity_levels", 0):
        raise ValueError("top_p applies to binary policies (velocity_levels = 0)")
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    model.eval()

    def act(view: PlayerView) -> np.ndarray:
        with torch.no_grad():
            logits = model.forward_obs(obs_to_tensors(view.obs, device)).logits.float()
        probs = torch.sigmoid(logits / temperature).cpu().numpy().astype(np.float64)
        return sample_top_p(probs, top_p, rng)

    return act


def sample_top_p(probs: np.ndarray, top_p: float, rng: np.random.Generator) -> np.ndarray:
    """Nucleus (top-p) sampling of one step's hit pattern from independent per-drum hit rates.

    Top-p of a language model keeps the most likely *tokens* whose probabilities sum to at
    least ``top_p`` and samples among them. A drum step's token is its hit pattern, one of
    ``2**D`` (the drums are independent Bernoullis, so a pattern's probability is the product
    of its drums' ``p`` or ``1 - p``): the patterns are sorted by probability, the smallest
    set of most likely ones holding at least ``top_p`` of the mass is kept (the most likely
    pattern always), and a pattern is drawn from it, renormalised. Per drum separately, top-p
    of a Bernoulli only says "play the likelier outcome when its probability is >= top_p",
    which clips rare hits and rests one drum at a time; over the joint pattern it drops the
    unlikely *combinations* (a rare extra hit on top of a likely groove), which is what the
    nucleus is for.

    Args:
        probs: float array (B, D), each drum's hit probability in [0, 1]; D <= 16.
        top_p: kept mass, in (0, 1]; 1 samples the independent Bernoullis' joint exactly.
        rng: the generator of the draws.

    Returns:
        bool array (B, D).

    Raises:
        ValueError: ``probs`` not 2-d with at most 16 drums or outside [0, 1]; ``top_p``
            outside (0, 1].

    >>> p = np.array([[0.9, 0.1], [0.02, 0.03]])  # the likeliest patterns hold 0.81 and 0.95
    >>> sample_top_p(p, 0.75, np.random.default_rng(0)).astype(int).tolist()
    [[1, 0], [0, 0]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or not 1 <= probs.shape[1] <= 16:
        raise ValueError(f"probs must have shape (B, D) with 1 <= D <= 16, got {probs.shape}")
    if not np.all((probs >= 0) & (probs <= 1)):
        raise ValueError("probs must lie in [0, 1]")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be a number in (0, 1], got {top_p!r}")
    b, d = probs.shape
    patterns = (np.arange(2**d)[:, None] >> np.arange(d)) & 1  # (P, D): bit j = drum j
    joint = np.prod(np.where(patterns[None] == 1, probs[:, None], 1.0 - probs[:, None]), -1)
    order = np.argsort(-joint, axis=1, kind="stable")
    sorted_p = np.take_along_axis(joint, order, axis=1)
    before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the likelier patterns
    keep = before < top_p * sorted_p.sum(axis=1, keepdims=True)
    keep[:, 0] = True
    kept = np.where(keep, sorted_p, 0.0)
    cdf = np.cumsum(kept, axis=1)
    u = rng.random((b, 1)) * cdf[:, -1:]
    pick = np.minimum((cdf <= u).sum(axis=1), 2**d - 1)
    return patterns[order[np.arange(b), pick]].astype(bool)


def _vary(hits: np.ndarray, rng: np.random.Generator, p_drop: float, add: np.ndarray) -> np.ndarray:
    """Drop each hit with probability ``p_drop``; add hits with probability ``add``."""
    kept = hits & (rng.random(hits.shape) >= p_drop)
    return kept | (rng.random(hits.shape) < add)


def loop_with_variations(p_drop: float = 0.15, add_scale: float = 0.15) -> PlayerFactory:
    """Loop the primer with small random variations (a probe).

    Each hit of the step one bar earlier is dropped with probability ``p_drop``; each drum is
    added with probability ``add_scale`` times its training rate.
    """

    def make(setup: PlayerSetup) -> PlayerFn:
        rng = np.random.default_rng(setup.seed)

        def act(view: PlayerView) -> np.ndarray:
            hits = view.canvases[:, view.t - view.steps_per_bar]
            return _vary(hits, rng, p_drop, add_scale * setup.train_rates)

        return act

    return make


def random_bars_with_variations(p_drop: float = 0.15, add_scale: float = 0.15) -> PlayerFactory:
    """Random bars at the target's densities, repeated with variations (a probe).

    The first composed bar hits each drum at its density in the ``target`` observation; later
    bars repeat it with each hit dropped with probability ``p_drop`` and each drum added with
    probability ``add_scale`` times its target density: density and bar-to-bar variation
    match, the positions in the bar are random.
    """

    def make(setup: PlayerSetup) -> PlayerFn:
        rng = np.random.default_rng(setup.seed)

        def act(view: PlayerView) -> np.ndarray:
            dens = _target_density(view)
            if view.t < view.prompt_steps + view.steps_per_bar:
                return rng.random(dens.shape) < dens
            first = view.prompt_steps + (view.t - view.prompt_steps) % view.steps_per_bar
            return _vary(view.canvases[:, first], rng, p_drop, add_scale * dens)

        return act

    return make


def target_density_random() -> PlayerFactory:
    """Each drum hits independently at its density in the ``target`` observation (a probe)."""

    def make(setup: PlayerSetup) -> PlayerFn:
        rng = np.random.default_rng(setup.seed)

        def act(view: PlayerView) -> np.ndarray:
            dens = _target_density(view)
            return rng.random(dens.shape) < dens

        return act

    return make


def reference_players(pretrained: Any = None) -> dict[str, PlayerFactory]:
    """The reference players of ``DESIGN.md``, in order from the ceiling down.

    Args:
        pretrained: a pretrained :class:`~agents.policies.policy.DrumPolicy` or its path; when
            given, ``pretrained-sampled`` and ``pretrained-thresholded`` are added.

    Returns:
        name -> PlayerFactory: ``real``, (``pretrained-sampled``), ``loop-primer``, ``mode``,
        (``pretrained-thresholded``), ``density-random``, ``uniform-random``, ``silence``.
    """
    players: dict[str, PlayerFactory] = {"real": real_continuation()}
    if pretrained is not None:
        players["pretrained-sampled"] = policy_player(pretrained, deterministic=False)
    players["loop-primer"] = loop_primer()
    players["mode"] = per_position_mode()
    if pretrained is not None:
        players["pretrained-thresholded"] = policy_player(pretrained, deterministic=True)
    players["density-random"] = density_random()
    players["uniform-random"] = uniform_random()
    players["silence"] = silence()
    return players


def probe_players() -> dict[str, PlayerFactory]:
    """Simple non-learning players that try to game a reward (none may beat ``real``)."""
    return {
        "loop-varied": loop_with_variations(),
        "random-bars-varied": random_bars_with_variations(),
        "target-density-random": target_density_random(),
    }


