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
   continuations by the shaping-independent evaluation (:func:`agents.heldout.reference` and
   :func:`dataset.evaluation.score_sets`; mean overlapping area over the discriminative
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

>>> from agents.heldout import HeldoutConfig
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
from agents.heldout import HeldoutConfig, Split, heldout_dataset, reference, write_split
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
    "loop_with_variations",
    "random_bars_with_variations",
    "target_density_random",
    "reference_players",
    "probe_players",
    "Episodes",
    "play_episodes",
    "warm_normalizer",
    "episode_returns",
    "spearman",
    "AlignmentRow",
    "ShapingSummary",
    "AlignmentTable",
    "alignment_table",
    "to_markdown",
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


def policy_player(policy: Any, deterministic: bool = False) -> PlayerFactory:
    """A :class:`~agents.policy.DrumPolicy` (or a path to one) playing from its observations.

    Args:
        policy: the policy, or a ``policy.pt`` / PPO ``checkpoint.pt`` path.
        deterministic: hit where the probability is above 0.5 (thresholded) instead of
            sampling.
    """

    def make(setup: PlayerSetup) -> PlayerFn:
        from agents.rollout import load_any_policy, policy_fn

        model = load_any_policy(policy) if isinstance(policy, (str, Path)) else policy
        fn = policy_fn(model, deterministic=deterministic, seed=setup.seed)
        return lambda view: fn(view.obs)

    return make


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
        pretrained: a pretrained :class:`~agents.policy.DrumPolicy` or its path; when given,
            ``pretrained-sampled`` and ``pretrained-thresholded`` are added.

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
    values = episodes.raw
    if normalizer is not None:
        values = normalizer.normalize(values)
    values = np.where(episodes.closed, values, 0.0)
    return (values * shaping.weight_vector).sum(axis=(1, 2))


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
            :func:`agents.heldout.write_split` under ``work``.
        work: folder for the split; ``None``: a temporary folder, removed at the end.

    Returns:
        AlignmentTable.

    Raises:
        ValueError: no ``real`` player, fewer than 3 ranked players, or fewer than 4 episodes.
    """
    from dataset.evaluation import score_sets

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
        if split is None:
            split = write_split(config, work if work is not None else tmp)
        heldout = heldout_dataset(config, split.heldout_dir)
        ref = reference(config, heldout)
        rates = _hit_rates(split.train_dir)
        env_kwargs = config.env_kwargs(data=heldout)
        everyone = {**players, **probes}
        plays = {(name, s): play_episodes(make, env_kwargs, episodes, s, rates)
                 for s in draws for name, make in everyone.items()}  # fmt: skip

    def headline(ep: Episodes) -> float:
        p = ep.prompt_steps
        score = score_sets(
            ep.canvases[:, p:].astype(np.float32), ep.references[:, p:].astype(np.float32),
            config.steps_per_bar, config.bars_per_phrase,
        )  # fmt: skip
        return ref.baselines.headline(score)

    heads = {key: headline(ep) for key, ep in plays.items()}
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
