"""The alignment table: does a reward shaping rank real drumming first?

A shaped reward is only worth maximising if maximising it makes the music better. This module
measures that, for any set of shapings, on held-out real data:

1. **Players** (:data:`PlayerFactory`): simple ways to continue a primer, each playing whole
   episodes of ``DrumCompose-v0`` on the held-out split. The reference players
   (:func:`reference_players`): the real continuation (plays the reference: the ceiling), the
   per-position mode of the reference window (reads the reference too, but repeats one bar),
   loop-the-primer, a pretrained policy sampled and thresholded at 0.5 (optional), density-
   matched random (each drum at its rate in the training split), uniform random and silence.
   :func:`probe_players` adds simple players built to game a reward (the primer looped with
   random drops and additions, random bars at the target's densities repeated with variation,
   random play at the target's densities).
2. **Episodes**: every player plays the same episodes (reset with the same seed, so the same
   primers and reference windows). The raw reward terms of every step are kept
   (``info["reward_terms"]``), so one play serves every shaping.
3. **Headline**: the composed continuations are scored against the episodes' reference
   continuations by the shaping-independent evaluation (:func:`agents.evaluation.heldout.reference`
   and :func:`dataset.evaluation.score_sets`; mean overlapping area over the discriminative
   families), as the benchmark scores a policy.
4. **Returns** under each shaping, two ways: unnormalised, ``sum_t sum_k w_k x_k(t)``; and
   normalised with **one** :class:`~drum_env.rewards.RunningNormalizer` warmed on the mix of all
   players' episodes (every draw) and then frozen, ``sum_t sum_k w_k n_k(x_k(t))``. A running
   normaliser fed by each player's own episodes would grade each player against itself.
5. **Alignment** per shaping (:class:`ShapingSummary`): whether the real continuation has the
   highest mean return (on every draw), and the Spearman rank correlation of the players' mean
   returns with their headlines (the smallest over the draws). The property a user relies on
   (``DESIGN.md``): under the default shaping the real continuation is first and Spearman is
   at least 0.8 (:meth:`ShapingSummary.aligned`).
6. **Local alignment** (``DESIGN.md``'s second property): the same question among policies
   *near* one being trained, the slope RL climbs. :func:`play_family` plays a family (e.g.
   one pretrained policy at several sampling temperatures, with nucleus sampling, and its
   PPO checkpoints: :func:`policy_player`) and keeps each player's headline and mean term sums
   per draw, so every weighting of the terms is scored without replay;
   :func:`local_summary` gives, per draw, the Spearman correlation of the mean return with
   the headline, for the whole return and for each term alone.

>>> from agents.evaluation.heldout import HeldoutConfig
>>> table = alignment_table(["aligned", "hierarchical"], HeldoutConfig(),
...                         episodes=16)  # doctest: +SKIP
>>> print(to_markdown(table))  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from agents.evaluation.heldout import (
    HeldoutConfig,
    Reference,
    Split,
    heldout_dataset,
    reference,
    write_split,  # fmt: skip
)
from drum_env.core import DrumComposeConfig
from drum_env.rewards import TERMS, RunningNormalizer, Shaping, make_shaping

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
    "Episodes",
    "play_episodes",
    "warm_normalizer",
    "term_sums",
    "episode_returns",
    "spearman",
    "set_headline",
    "AlignmentRow",
    "ShapingSummary",
    "AlignmentTable",
    "alignment_table",
    "to_markdown",
    "FamilyPlay",
    "play_family",
    "LocalSummary",
    "local_summary",
    "DEFAULT_SHAPINGS",
]

DEFAULT_SHAPINGS: tuple[str, ...] = (
    "aligned", "aligned-raw", "sparse", "step", "bar", "hierarchical", "hierarchical-raw",
)  # fmt: skip
"""The shapings :func:`alignment_table` compares by default: every preset."""


# ----------------------------------------------------------------------------- players


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


# ----------------------------------------------------------------------------- episodes


class Episodes(NamedTuple):
    """Whole episodes of one player, with every raw reward term of every step."""

    raw: np.ndarray
    """float64 (episodes, episode_steps, terms): raw terms in :data:`TERMS` order, 0 where
    a term did not close."""
    closed: np.ndarray
    """bool (episodes, episode_steps, terms): which terms closed on each step."""
    canvases: np.ndarray
    """bool (episodes, seq_len, drums): the compositions, primer included."""
    references: np.ndarray
    """bool (episodes, seq_len, drums): the reference windows."""
    prompt_steps: int
    """Steps of primer."""


def play_episodes(
    player: PlayerFactory,
    env_kwargs: Mapping[str, Any],
    episodes: int,
    seed: int,
    train_rates: np.ndarray | None = None,
) -> Episodes:
    """Play ``episodes`` episodes of ``DrumCompose-v0`` in lockstep with ``player``.

    One native vector env with ``episodes`` sub-envs, reset with ``seed`` (sub-env ``i`` gets
    ``seed + i``): every player given the same arguments sees the same primers and references.

    Args:
        player: the player.
        env_kwargs: ``DrumCompose-v0`` arguments (the held-out data, the task); the shaping
            does not matter (raw terms are kept).
        episodes: number of episodes (sub-envs).
        seed: reset seed, also the player's seed.
        train_rates: float (drums,) hit rates of the training split (density-matched random);
            ``None``: the rates of the episodes' reference windows.

    Returns:
        Episodes.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = gym.make_vec(
        "DrumCompose-v0", num_envs=episodes, vectorization_mode="vector_entry_point",
        **dict(env_kwargs),
    )  # fmt: skip
    try:
        u = env.unwrapped
        config = u.config
        obs, _ = env.reset(seed=seed)
        refs = u.references > 0
        if train_rates is None:
            train_rates = refs.mean(axis=(0, 1), dtype=np.float64)
        act = player(PlayerSetup(config, episodes, np.asarray(train_rates, np.float64), seed))
        steps = config.episode_steps
        raw = np.zeros((episodes, steps, len(TERMS)))
        closed = np.zeros((episodes, steps, len(TERMS)), dtype=bool)
        for k in range(steps):
            t = config.prompt_steps + k
            view = PlayerView(obs, refs, u.canvases > 0, t, config.steps_per_bar,
                              config.prompt_steps)  # fmt: skip
            actions = np.asarray(act(view)).astype(np.int8)
            obs, _, terminated, _, info = env.step(actions)
            terms = info["reward_terms"]
            raw[:, k] = np.stack([terms[f"{name}/raw"] for name in TERMS], axis=-1)
            closed[:, k] = np.stack([terms[f"{name}/closed"] for name in TERMS], axis=-1)
        if not terminated.all():
            raise RuntimeError("episodes did not terminate together")  # pragma: no cover
        canvases = u.canvases > 0
    finally:
        env.close()
    return Episodes(raw, closed, canvases, refs, config.prompt_steps)


def warm_normalizer(plays: Sequence[Episodes]) -> RunningNormalizer:
    """A normaliser that has seen every closed raw term of ``plays`` (the mix), then frozen.

    Args:
        plays: the Episodes of every player (and draw) of the mix.

    Returns:
        RunningNormalizer; do not update it while scoring (it is a fixed scale).
    """
    norm = RunningNormalizer(len(TERMS))
    for ep in plays:
        raw = np.where(ep.closed, ep.raw, 0.0)
        norm.update(ep.closed.sum(axis=(0, 1)), raw.sum(axis=(0, 1)),
                    np.square(raw).sum(axis=(0, 1)))  # fmt: skip
    return norm


def term_sums(episodes: Episodes, normalizer: RunningNormalizer | None = None) -> np.ndarray:
    """Each term summed over each episode's closed steps: the returns before weighting.

    ``sum_t v_k(t)`` over the steps where term ``k`` closed, ``v = n(x)`` with ``normalizer``
    (frozen) and ``v = x`` without. A shaping's return is this times its weight vector
    (:func:`episode_returns`), so one play serves every weighting.

    Args:
        episodes: the episodes.
        normalizer: the frozen normaliser, or None for raw terms.

    Returns:
        float64 (episodes, len(TERMS)), in :data:`TERMS` order.
    """
    values = episodes.raw
    if normalizer is not None:
        values = normalizer.normalize(values)
    return np.where(episodes.closed, values, 0.0).sum(axis=1)


def episode_returns(
    episodes: Episodes, shaping: Shaping, normalizer: RunningNormalizer | None = None
) -> np.ndarray:
    """Undiscounted return of every episode under ``shaping``.

    ``sum_t sum_k w_k v_k(t)`` over the closed terms, ``v = n(x)`` with ``normalizer`` (frozen)
    and ``v = x`` without.

    Args:
        episodes: the episodes.
        shaping: the weights (its ``normalize`` flag is not read: pass a normaliser or not).
        normalizer: the frozen normaliser, or None for unnormalised returns.

    Returns:
        float64 (episodes,).
    """
    return term_sums(episodes, normalizer) @ shaping.weight_vector


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); 0 when either side is constant."""

    def ranks(x: Sequence[float]) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        for v in np.unique(x):
            tie = x == v
            r[tie] = r[tie].mean()
        return r - r.mean()

    ra, rb = ranks(a), ranks(b)
    den = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def set_headline(episodes: Episodes, config: HeldoutConfig, ref: Reference) -> float:
    """The shaping-independent headline of a player's compositions, in [0, 1].

    The composed part of every canvas is scored against the episodes' own reference
    continuations (:func:`dataset.evaluation.score_sets`), and the mean overlapping area over
    ``ref``'s discriminative families is returned, as the benchmark scores a policy.

    Args:
        episodes: the episodes.
        config: the task (``steps_per_bar``, ``bars_per_phrase``).
        ref: the held-out reference (:func:`agents.evaluation.heldout.reference`).

    Returns:
        float.
    """
    from dataset.evaluation import score_sets

    p = episodes.prompt_steps
    score = score_sets(
        episodes.canvases[:, p:].astype(np.float32),
        episodes.references[:, p:].astype(np.float32),
        config.steps_per_bar, config.bars_per_phrase,
    )  # fmt: skip
    return ref.baselines.headline(score)


# ----------------------------------------------------------------------------- the table


class AlignmentRow(NamedTuple):
    """One player under one shaping, means over the episodes and the draws."""

    shaping: str
    player: str
    headline: float
    """Shaping-independent evaluation score of the player's compositions, in [0, 1]."""
    mean_return: float
    """Mean return as the shaping defines it: with the frozen normaliser if it normalises."""
    raw_return: float
    """Mean unnormalised return (weights times raw terms)."""
    norm_return: float
    """Mean return with the frozen normaliser, whatever the shaping says."""


class ShapingSummary(NamedTuple):
    """Whether one shaping ranks the players like the evaluation does."""

    shaping: str
    normalized: bool
    """The shaping normalises its terms (``mean_return`` is then the normalised one)."""
    spearman: float
    """Smallest over the draws of Spearman(mean returns, headlines) across players."""
    spearman_raw: float
    """The same with unnormalised returns."""
    spearman_norm: float
    """The same with the frozen normaliser."""
    real_first: bool
    """The real continuation has the strictly highest mean return on every draw, both with
    and without the frozen normaliser."""
    best: str
    """The player with the highest mean return (over the draws, as the shaping defines it)."""

    def aligned(self, min_spearman: float = 0.8) -> bool:
        """The property: real first, Spearman >= ``min_spearman`` normalised and not."""
        return self.real_first and min(self.spearman_raw, self.spearman_norm) >= min_spearman


class AlignmentTable(NamedTuple):
    """What :func:`alignment_table` measured."""

    rows: list[AlignmentRow]
    """One row per shaping x player."""
    summaries: dict[str, ShapingSummary]
    """Shaping name -> its summary."""
    players: tuple[str, ...]
    """Players in the order given; the Spearman correlation uses those in ``ranked``."""
    ranked: tuple[str, ...]
    """Players whose ranks are compared (the reference players; probes are shown only)."""
    headlines: dict[str, float]
    """Player -> headline (mean over the draws)."""
    draws: tuple[int, ...]
    """Reset seeds of the draws."""
    episodes: int
    """Episodes per player and draw."""
    families: tuple[str, ...]
    """The discriminative families the headline averages."""
    source: str
    """Where the held-out data came from, in words."""


def alignment_table(
    shapings: Sequence[str | Shaping] = DEFAULT_SHAPINGS,
    config: HeldoutConfig | None = None,
    *,
    players: Mapping[str, PlayerFactory] | None = None,
    probes: Mapping[str, PlayerFactory] | None = None,
    episodes: int | None = None,
    seeds: Sequence[int] | None = None,
    split: Split | None = None,
    work: str | Path | None = None,
) -> AlignmentTable:
    """Mean return and headline of every player under every shaping, on held-out data.

    Args:
        shapings: shaping names (or :class:`~drum_env.rewards.Shaping` objects).
        config: the task and the split (``data``, ``heldout_players`` / ``split_csv`` /
            ``heldout_fraction``, ``seq_len``, ``prompt_bars``, ...); ``None``:
            ``HeldoutConfig()`` (the built-in corpus). Its ``eval_episodes`` and ``eval_seed``
            are the defaults of ``episodes`` and ``seeds``.
        players: name -> PlayerFactory whose ranks are compared with their headlines; ``None``:
            :func:`reference_players` (without the pretrained policy). Must contain ``real``.
        probes: extra players shown in the table and warming the normaliser, but not ranked
            (e.g. :func:`probe_players`); their returns are reported so that a probe beating
            ``real`` shows.
        episodes: episodes per player and draw (>= 4).
        seeds: reset seeds, one per draw.
        split: an existing split (its folders are read); ``None``: ``config`` is split with
            :func:`agents.evaluation.heldout.write_split` under ``work``.
        work: folder for the split; ``None``: a temporary folder, removed at the end.

    Returns:
        AlignmentTable.

    Raises:
        ValueError: no ``real`` player, fewer than 3 ranked players, or fewer than 4 episodes.
    """
    config = config or HeldoutConfig()
    players = dict(reference_players() if players is None else players)
    probes = dict(probes or {})
    if "real" not in players:
        raise ValueError(
            f"players must contain 'real' (the real continuation), got {list(players)}"
        )
    if len(players) < 3:
        raise ValueError(f"need at least 3 ranked players, got {list(players)}")
    overlap = sorted(set(players) & set(probes))
    if overlap:
        raise ValueError(f"players and probes share names {overlap}")
    episodes = config.eval_episodes if episodes is None else int(episodes)
    if episodes < 4:
        raise ValueError(f"episodes must be >= 4, got {episodes}")
    draws = tuple(int(s) for s in ((config.eval_seed,) if seeds is None else seeds))
    resolved = {(s if isinstance(s, str) else s.name): make_shaping(s) for s in shapings}

    with tempfile.TemporaryDirectory() as tmp:
        split, ref, rates, env_kwargs = _heldout_setup(config, split, work, tmp)
        everyone = {**players, **probes}
        plays = {(name, s): play_episodes(make, env_kwargs, episodes, s, rates)
                 for s in draws for name, make in everyone.items()}  # fmt: skip

    heads = {key: set_headline(ep, config, ref) for key, ep in plays.items()}
    norm = warm_normalizer(list(plays.values()))
    rows, summaries = [], {}
    ranked = tuple(players)
    for name, shaping in resolved.items():
        raw = {key: float(episode_returns(ep, shaping).mean()) for key, ep in plays.items()}
        nrm = {key: float(episode_returns(ep, shaping, norm).mean()) for key, ep in plays.items()}
        own = nrm if shaping.normalize else raw
        for player in everyone:
            rows.append(AlignmentRow(
                name, player, float(np.mean([heads[(player, s)] for s in draws])),
                float(np.mean([own[(player, s)] for s in draws])),
                float(np.mean([raw[(player, s)] for s in draws])),
                float(np.mean([nrm[(player, s)] for s in draws])),
            ))  # fmt: skip

        def rho(values: dict) -> float:
            return min(spearman([values[(p, s)] for p in ranked], [heads[(p, s)] for p in ranked])
                       for s in draws)  # fmt: skip

        def first(values: dict) -> bool:
            return all(values[("real", s)] > values[(p, s)]
                       for s in draws for p in everyone if p != "real")  # fmt: skip

        mean_own = {p: np.mean([own[(p, s)] for s in draws]) for p in everyone}
        summaries[name] = ShapingSummary(
            name, shaping.normalize, rho(own), rho(raw), rho(nrm), first(raw) and first(nrm),
            max(mean_own, key=mean_own.get),
        )  # fmt: skip
    return AlignmentTable(
        rows, summaries, tuple(everyone), ranked,
        {p: float(np.mean([heads[(p, s)] for s in draws])) for p in everyone}, draws, episodes,
        tuple(ref.baselines.discriminative), split.source,
    )  # fmt: skip


def _heldout_setup(config: HeldoutConfig, split: Split | None, work: str | Path | None,
                   tmp: str) -> tuple[Split, Any, np.ndarray, dict[str, Any]]:  # fmt: skip
    """What every alignment table plays on: split, held-out reference, hit rates, env arguments.

    The split is written under ``work`` (else ``tmp``) unless given; the hit rates are the
    training split's, per drum.
    """
    if split is None:
        split = write_split(config, work if work is not None else tmp)
    heldout = heldout_dataset(config, split.heldout_dir)
    return split, reference(config, heldout), _hit_rates(split.train_dir), config.env_kwargs(
        data=heldout
    )


def _hit_rates(folder: str | Path) -> np.ndarray:
    """Hits per step of each drum over every sequence of a folder: float64 (drums,)."""
    from dataset.io import load_npz_folder

    corpus = load_npz_folder(Path(folder))
    hits = sum((np.asarray(s) > 0).sum(axis=0) for s in corpus.sequences)
    return np.asarray(hits, dtype=np.float64) / sum(len(s) for s in corpus.sequences)


def to_markdown(table: AlignmentTable, digits: int = 2) -> str:
    """The table as markdown: players x shapings, then Spearman and "real first" per shaping.

    Each cell holds the player's mean return unnormalised / with the frozen normaliser; the
    headline column is the shaping-independent evaluation score.

    Args:
        table: what :func:`alignment_table` returned.
        digits: decimals of the returns.

    Returns:
        str (GitHub markdown).
    """
    shapings = list(table.summaries)
    cell = {(r.shaping, r.player): r for r in table.rows}
    head = "| player | headline | " + " | ".join(f"`{s}`" for s in shapings) + " |"
    lines = [
        f"Held-out data: {table.source}; {table.episodes} episodes x {len(table.draws)} draw(s) "
        f"(seeds {', '.join(map(str, table.draws))}); headline = mean OA over "
        f"{', '.join(table.families)}. Cells: mean return unnormalised / with one normaliser "
        "warmed on the mix of all players, then frozen. Players in parentheses are probes "
        "(not ranked).",
        "",
        head,
        "|---|---:|" + "---:|" * len(shapings),
    ]
    for p in table.players:
        name = p if p in table.ranked else f"({p})"
        cells = [f"{cell[(s, p)].raw_return:.{digits}f} / {cell[(s, p)].norm_return:.{digits}f}"
                 for s in shapings]  # fmt: skip
        lines.append(f"| {name} | {table.headlines[p]:.2f} | " + " | ".join(cells) + " |")
    rho = [f"{table.summaries[s].spearman_raw:+.2f} / {table.summaries[s].spearman_norm:+.2f}"
           for s in shapings]  # fmt: skip
    lines.append("| **Spearman** (min over draws) | | " + " | ".join(rho) + " |")
    first = ["yes" if table.summaries[s].real_first else f"no ({table.summaries[s].best})"
             for s in shapings]  # fmt: skip
    lines.append("| **real first** | | " + " | ".join(first) + " |")
    ok = ["**yes**" if table.summaries[s].aligned() else "no" for s in shapings]
    lines.append("| **aligned** (real first, Spearman >= 0.8) | | " + " | ".join(ok) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- local alignment


class FamilyPlay(NamedTuple):
    """A family of players on the same held-out episodes: headlines and per-term sums.

    What :func:`play_family` measured; every weighting of the terms is scored from it without
    replay (:func:`local_summary`): the mean return under weights ``w`` is ``raw @ w``
    (unnormalised) or ``norm @ w`` (with the frozen normaliser).
    """

    players: tuple[str, ...]
    """Player names, in the order given."""
    draws: tuple[int, ...]
    """Reset seeds of the draws (each a fresh set of primers and reference windows)."""
    headlines: np.ndarray
    """float64 (draws, players): the shaping-independent headline (:func:`set_headline`)."""
    raw: np.ndarray
    """float64 (draws, players, len(TERMS)): the mean over the episodes of each raw term's sum
    (:func:`term_sums`)."""
    norm: np.ndarray
    """float64 (draws, players, len(TERMS)): the same with the frozen normaliser."""
    closed_terms: tuple[str, ...]
    """The terms that closed at least once (the others are 0 everywhere)."""
    normalizer: RunningNormalizer
    """The frozen normaliser of ``norm`` (warmed on every play of the family unless given)."""
    episodes: int
    """Episodes per player and draw."""
    families: tuple[str, ...]
    """The discriminative families the headline averages."""
    source: str
    """Where the held-out data came from, in words."""


def play_family(
    players: Mapping[str, PlayerFactory],
    config: HeldoutConfig | None = None,
    *,
    episodes: int,
    seeds: Sequence[int],
    split: Split | None = None,
    work: str | Path | None = None,
    normalizer: RunningNormalizer | None = None,
    with_metrics: bool = True,
) -> FamilyPlay:
    """Every player plays ``episodes`` held-out episodes per draw; keep headlines and term sums.

    Args:
        players: name -> PlayerFactory (at least 3), e.g. one pretrained policy sampled at
            several temperatures (:func:`policy_player`) and its fine-tuned checkpoints.
        config: the task and the split, as for :func:`alignment_table`; ``None``:
            ``HeldoutConfig()`` (the built-in corpus).
        episodes: episodes per player and draw (>= 4).
        seeds: reset seeds, one per draw (>= 1).
        split: an existing split; ``None``: ``config`` is split under ``work``.
        work: folder for the split; ``None``: a temporary folder, removed at the end.
        normalizer: a frozen normaliser to score ``norm`` with; ``None``: one warmed on every
            play of the family (all players, all draws), then frozen (:func:`warm_normalizer`).
        with_metrics: compute the opt-in ``metrics`` term too (the env computes it only when
            it is weighted; its weight does not touch the raw terms kept).

    Returns:
        FamilyPlay.

    Raises:
        ValueError: fewer than 3 players, fewer than 4 episodes, or no seed.
    """
    config = config or HeldoutConfig()
    if len(players) < 3:
        raise ValueError(f"need at least 3 players, got {list(players)}")
    if episodes < 4:
        raise ValueError(f"episodes must be >= 4, got {episodes}")
    draws = tuple(int(s) for s in seeds)
    if not draws:
        raise ValueError("seeds must name at least one draw")
    with tempfile.TemporaryDirectory() as tmp:
        split, ref, rates, env_kwargs = _heldout_setup(config, split, work, tmp)
        if with_metrics:
            env_kwargs["weights"] = {**(env_kwargs.get("weights") or {}), "metrics": 1.0}
        plays = [[play_episodes(make, env_kwargs, episodes, s, rates) for make in players.values()]
                 for s in draws]  # fmt: skip
    flat = [ep for row in plays for ep in row]
    norm = normalizer if normalizer is not None else warm_normalizer(flat)
    closed = np.any([ep.closed.any(axis=(0, 1)) for ep in flat], axis=0)
    return FamilyPlay(
        tuple(players), draws,
        np.array([[set_headline(ep, config, ref) for ep in row] for row in plays]),
        np.array([[term_sums(ep).mean(axis=0) for ep in row] for row in plays]),
        np.array([[term_sums(ep, norm).mean(axis=0) for ep in row] for row in plays]),
        tuple(t for t, c in zip(TERMS, closed) if c), norm, episodes,
        tuple(ref.baselines.discriminative), split.source,
    )  # fmt: skip


class LocalSummary(NamedTuple):
    """Whether one weighting of the terms ranks a family of players like the headline does."""

    shaping: str
    spearman_raw: tuple[float, ...]
    """Per draw: Spearman(mean unnormalised return, headline) across the players."""
    spearman_norm: tuple[float, ...]
    """Per draw: the same with the family's frozen normaliser."""
    terms: dict[str, tuple[float, ...]]
    """Term -> per draw Spearman of its mean raw sum alone (every term that closed; a term
    normalised by a frozen normaliser ranks the same but for clipping)."""
    most_rewarded: str
    """The player with the highest unnormalised return (mean over the draws)."""
    best_scored: str
    """The player with the highest headline (mean over the draws)."""

    @property
    def worst(self) -> float:
        """The smallest Spearman over the draws, normalised and not."""
        return min(*self.spearman_raw, *self.spearman_norm)

    def aligned(self, min_spearman: float = 0.8) -> bool:
        """Locally aligned: Spearman >= ``min_spearman`` on every draw, normalised and not."""
        return self.worst >= min_spearman


def local_summary(
    play: FamilyPlay, shaping: str | Shaping, players: Sequence[str] | None = None
) -> LocalSummary:
    """Rank correlation of the mean return under ``shaping`` with the headline, per draw.

    Args:
        play: what :func:`play_family` measured.
        shaping: a shaping name or object (its weights; both normalised and unnormalised
            returns are scored, whatever its ``normalize`` flag).
        players: the players ranked (at least 3 of ``play.players``); ``None``: all.

    Returns:
        LocalSummary.

    Raises:
        ValueError: an unknown player name, or fewer than 3 players.
    """
    shaping = make_shaping(shaping)
    names = tuple(play.players if players is None else players)
    unknown = sorted(set(names) - set(play.players))
    if unknown:
        raise ValueError(f"players {unknown} were not played; played: {list(play.players)}")
    if len(names) < 3:
        raise ValueError(f"need at least 3 players to rank, got {list(names)}")
    idx = [play.players.index(n) for n in names]
    heads = play.headlines[:, idx]
    w = shaping.weight_vector

    def per_draw(values: np.ndarray) -> tuple[float, ...]:
        return tuple(spearman(v, h) for v, h in zip(values, heads))

    raw = play.raw[:, idx] @ w
    terms = {t: per_draw(play.raw[:, idx, TERMS.index(t)]) for t in play.closed_terms}
    return LocalSummary(
        shaping.name, per_draw(raw), per_draw(play.norm[:, idx] @ w), terms,
        names[int(np.argmax(raw.mean(axis=0)))], names[int(np.argmax(heads.mean(axis=0)))],
    )  # fmt: skip
