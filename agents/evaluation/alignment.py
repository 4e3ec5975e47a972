"""The alignment table: does a reward shaping rank real drumming first?

A shaped reward is only worth maximising if maximising it makes the music better. This module
measures that, for any set of shapings, on held-out real data:

1. **Players** (:mod:`agents.evaluation.players`, re-exported here): simple ways to continue a
   primer, each playing whole episodes of ``DrumCompose-v0`` on the held-out split: the
   reference players (:func:`reference_players`, the real continuation first) and the probes
   built to game a reward (:func:`probe_players`).
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
from collections.abc import Mapping, Sequence
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
from agents.evaluation.players import (
    PlayerFactory,
    PlayerFn,
    PlayerSetup,
    PlayerView,
    density_random,
    loop_primer,
    loop_with_variations,
    per_position_mode,
    policy_player,
    probe_players,
    random_bars_with_variations,
    real_continuation,
    reference_players,
    sample_top_p,
    silence,
    target_density_random,
    uniform_random,
)
from drum_env.rewards import TERMS, RunningNormalizer, Shaping, make_shaping

__all__ = [
    # the players (agents.evaluation.players), re-exported: the tables play them
    "PlayerView", "PlayerSetup", "PlayerFn", "PlayerFactory", "real_continuation",
    "per_position_mode", "loop_primer", "density_random", "uniform_random", "silence",
    "policy_player", "sample_top_p", "loop_with_variations", "random_bars_with_variations",
    "target_density_random", "reference_players", "probe_players",
    # the tables
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
]  # fmt: skip

DEFAULT_SHAPINGS: tuple[str, ...] = (
    "aligned", "aligned-raw", "sparse", "step", "bar", "hierarchical", "hierarchical-raw",
)  # fmt: skip
"""The shapings :func:`alignment_table` compares by default: every preset."""


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
