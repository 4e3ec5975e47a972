"""Held-out evaluation: split the data, set the ceiling and floors, score a policy.

The benchmark (:mod:`agents.evaluation.benchmark`) and the tuner (:mod:`agents.tune`) both judge a
policy here, by the shaping-independent evaluation of :mod:`dataset.evaluation` (the reward never
judges itself):

1. **Split** (:func:`write_split`): the sequences (files) go to a training and a held-out part,
   written as ``.npz`` folders so every agent reads them by path. Three ways, the first that
   is set wins:

   * ``heldout_players``: by player, the first folder of each file's path (the Groove MIDI
     Dataset's ``drummer1`` ... ``drummer10``): the named players are held out, the others
     train, so evaluation is on drummers the model never heard;
   * ``split_csv``: by the ``split`` column of a Groove ``info.csv`` (rows ``test`` are held
     out, all others train), matched on ``midi_filename`` without its suffix;
   * otherwise a seeded permutation holds out ``heldout_fraction`` of the files.

2. **Reference** (:func:`reference`): from the held-out part, ``2 * eval_episodes`` full
   windows of ``seq_len`` steps (bar-aligned; all of them when there are fewer), stratified by
   file (:func:`stratified_counts`); their continuations (after the primer) give
   :func:`dataset.evaluation.compare_to_baselines`: the ceiling (real vs real, two halves) and
   the floors (uniform random, density-matched random, silence), and the *discriminative*
   families that the headline averages. The spread of ceiling and floors is their standard
   deviation over ``baseline_splits`` random halvings; their standard error a bootstrap
   (``eval_resamples`` resamples).

3. **Evaluate** (:func:`evaluate`): ``eval_draws`` draws of ``eval_episodes`` episodes on the
   held-out part, stratified by file: every file with a full window plays its share of the
   episodes (:func:`stratified_counts`: in proportion to its windows, at least one each), in
   an env of its own (:func:`agents.evaluation.rollout.rollout_episodes` on that file, reset with
   ``eval_seed``, so every policy gets the same primers and reference windows). The composed
   part of each canvas is scored with :func:`dataset.evaluation.score_sets_resampled` against
   the continuations of the episodes' own reference windows: the headline (mean overlapping
   area over the discriminative families) with its standard error (a bootstrap over the
   episodes, paired, combined with the spread over the draws:
   :func:`dataset.evaluation.headline_standard_error`), every family's OA, the mean raw
   ``song`` term and the mean return.

The defaults (``eval_episodes`` 512, ``eval_draws`` 4) are chosen so that the headline's
standard error is below 0.005 on the Groove subset with drummers 8 and 9 held out
(``benchmarks/headline_error.py``; README, "Evaluation"): the error reported is 0.0034 for
loop-the-primer and 0.0038 for a pretrained policy (0.0055 for the density-matched random
player), the one measured (the spread of repeated evaluations) 0.0025-0.0029 for all three,
where 0.3's 64 episodes and one draw gave 0.011-0.023.
The difference of two policies' headlines then has an error of at most ``sqrt(2)`` times that,
about 0.005: a gain of 0.04 is unmistakable, and noise the size of 0.3's +0.017 (inside that
evaluation's error) is no longer mistaken for a result.
"""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from agents.task import TaskConfig, check_bool, check_int, check_number, check_path
from dataset.evaluation import FAMILIES  # the built-in families: the CSV's columns

__all__ = [
    "FAMILIES",
    "HeldoutConfig",
    "Split",
    "Reference",
    "load_sequences",
    "player_of",
    "split_indices",
    "write_split",
    "heldout_dataset",
    "stratified_counts",
    "reference",
    "evaluate",
    "play_draw",
]

EVAL_EPISODES = 512
"""Default episodes per evaluation draw (see the module docstring for how it was chosen)."""
EVAL_DRAWS = 4
"""Default evaluation draws of a final score."""


@dataclass(frozen=True)
class HeldoutConfig(TaskConfig):
    """The task plus how it is judged on held-out data: the split and the evaluation episodes.

    The benchmark's and the tuner's configs derive from it.
    """

    split_csv: str | None = None
    """A Groove ``info.csv``: files whose row says ``split = test`` are held out, all others
    train; ``None``: a seeded random split (``heldout_fraction``)."""
    heldout_players: tuple[str, ...] | None = None
    """Players (the first folder of each file's path, e.g. ``drummer8``) held out: a
    leave-players-out split; overrides ``split_csv`` and ``heldout_fraction``."""
    heldout_fraction: float = 0.25
    """Share of the files held out, in (0, 1), when neither ``heldout_players`` nor
    ``split_csv`` is given."""
    split_seed: int = 0
    """Seed of the split and of the baseline windows (not of the runs)."""
    eval_episodes: int = EVAL_EPISODES
    """Episodes per evaluation (>= 2); the baselines use twice as many held-out windows."""
    eval_seed: int = 12_345
    """Reset seed of the evaluation episodes: the same primers for every policy."""
    baseline_splits: int = 5
    """Random halvings of the baseline windows for the spread of ceiling and floors (>= 1)."""
    eval_draws: int = EVAL_DRAWS
    """Evaluation draws of a final score: each plays ``eval_episodes`` episodes from other
    primers (reset seed ``eval_seed + 7919 * k``); the score is their mean, its standard error
    combines the bootstrap over episodes with the spread over the draws (the points of a
    learning curve before the last are one draw)."""
    stratify: bool = True
    """Stratify the windows by held-out file: every file with a full window plays its share of
    the episodes and gives its share of the baseline windows, in proportion to its windows and
    at least one (:func:`stratified_counts`). ``False``: the env draws the episodes' windows
    and the baselines a uniform sample of windows (0.3's evaluation)."""
    eval_resamples: int = 200
    """Bootstrap resamples of the headline's standard error (>= 2)."""

    def __post_init__(self) -> None:
        self._check_task()
        self._check_heldout()

    def _check_heldout(self) -> None:
        check_path(self, "split_csv")
        players = self.heldout_players
        if players is not None:
            if isinstance(players, str):
                players = tuple(p for p in players.split(",") if p)
            players = tuple(players)
            if not players or not all(isinstance(p, str) and p for p in players):
                raise ValueError(
                    f"heldout_players must be non-empty player names, got {self.heldout_players!r}"
                )
            object.__setattr__(self, "heldout_players", players)
        check_number("heldout_fraction", self.heldout_fraction, 0.0, 1.0, True, True)
        check_int("split_seed", self.split_seed, 0)
        check_int("eval_episodes", self.eval_episodes, 2)
        check_int("eval_seed", self.eval_seed, 0)
        check_int("baseline_splits", self.baseline_splits, 1)
        check_int("eval_draws", self.eval_draws, 1)
        check_bool("stratify", self.stratify)
        check_int("eval_resamples", self.eval_resamples, 2)


class Split(NamedTuple):
    """The two parts of a split, as folders and names."""

    train_dir: Path
    """Folder of the training part's ``.npz`` files."""
    heldout_dir: Path
    """Folder of the held-out part's ``.npz`` files."""
    train_names: list[str]
    """Names (relative paths without suffix) of the training files."""
    heldout_names: list[str]
    """Names of the held-out files."""
    source: str
    """Where the data came from, in words."""


def load_sequences(data: str | None) -> tuple[list[str], list[np.ndarray], str]:
    """Names (relative paths without suffix), sequences and a description of ``data``.

    Args:
        data: a folder of ``.npz`` files, or ``None`` for the built-in corpus (names
            ``builtin/000`` ...).
    """
    if data is None:
        from dataset.synthetic import default_corpus

        seqs = default_corpus()
        return [f"builtin/{i:03d}" for i in range(len(seqs))], seqs, "the built-in corpus"
    from dataset.io import load_npz_folder

    root = Path(data)
    corpus = load_npz_folder(root)
    names = [p.relative_to(root).with_suffix("").as_posix() for p in corpus.files]
    return names, list(corpus.sequences), f"data folder {data!r}"


def player_of(name: str) -> str:
    """The player of a file: the first folder of its name (``drummer8/session1/x`` -> ``drummer8``).

    A file at the top of the folder is its own player.
    """
    return name.split("/", 1)[0]


def split_indices(config: HeldoutConfig, names: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indices of the training and the held-out files (see the module docstring).

    Raises:
        ValueError: a CSV without the needed columns or matching no file, players that no file
            has, or a split that leaves a part empty; the message names the setting.
    """
    n = len(names)
    if config.heldout_players is not None:
        players = [player_of(name) for name in names]
        unknown = sorted(set(config.heldout_players) - set(players))
        if unknown:
            raise ValueError(
                f"heldout_players: no file of {config.data!r} belongs to {unknown}; players "
                f"found: {sorted(set(players))}"
            )
        chosen = set(config.heldout_players)
        held = [i for i in range(n) if players[i] in chosen]
        train = [i for i in range(n) if players[i] not in chosen]
    elif config.split_csv is not None:
        with open(config.split_csv, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"midi_filename", "split"} <= set(reader.fieldnames):
                raise ValueError(
                    f"split_csv {config.split_csv!r} needs the columns 'midi_filename' and "
                    f"'split', has {reader.fieldnames}"
                )
            split = {Path(r["midi_filename"]).with_suffix("").as_posix(): r["split"]
                     for r in reader}  # fmt: skip
        if not any(name in split for name in names):
            raise ValueError(
                f"split_csv {config.split_csv!r}: no midi_filename matches a file of "
                f"{config.data!r} (compared without suffix, e.g. {names[0]!r})"
            )
        held = [i for i, name in enumerate(names) if split.get(name) == "test"]
        train = [i for i in range(n) if i not in set(held)]
    else:
        order = np.random.default_rng(config.split_seed).permutation(n)
        k = max(1, int(round(config.heldout_fraction * n)))
        held, train = sorted(order[:k].tolist()), sorted(order[k:].tolist())
    if not held or not train:
        raise ValueError(
            f"the split leaves {len(train)} training and {len(held)} held-out sequences; both "
            "must be non-empty"
        )
    return train, held


def write_split(config: HeldoutConfig, work: str | Path) -> Split:
    """Split ``config.data`` and write both parts as ``.npz`` folders under ``work/split``.

    Files this function wrote earlier under ``work/split`` are removed first (a stale split
    must not leak into the new one); nothing else is touched. Files of a data folder are
    copied as they are, so what they record (``tempo_bpm``, ``steps_per_bar``) stays.
    """
    names, seqs, source = load_sequences(config.data)
    train, held = split_indices(config, names)
    root = Path(work) / "split"
    dirs = {"train": root / "train", "heldout": root / "heldout"}
    for d in dirs.values():
        for old in d.rglob("*.npz"):
            old.unlink()
    for part, idx in (("train", train), ("heldout", held)):
        for i in idx:
            path = dirs[part] / f"{names[i]}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            original = Path(config.data) / f"{names[i]}.npz" if config.data is not None else None
            if original is not None and original.is_file():  # keep what it records (tempo)
                shutil.copyfile(original, path)
            else:
                np.savez_compressed(path, sequence=np.asarray(seqs[i], dtype=np.float32))
    return Split(
        dirs["train"], dirs["heldout"], [names[i] for i in train], [names[i] for i in held],
        source,
    )  # fmt: skip


def heldout_dataset(config: TaskConfig, folder: str | Path) -> Any:
    """The held-out part as a bar-aligned dataset (the evaluation env's ``data``)."""
    from dataset.hierarchical import CompleteHierarchicalDrumDataset

    return CompleteHierarchicalDrumDataset(
        folder, config.seq_len, config.steps_per_bar, config.bars_per_phrase,
        stride=config.steps_per_bar, as_numpy=True,
    )  # fmt: skip


class Reference(NamedTuple):
    """The ceiling and floors a policy's score is read against."""

    baselines: Any
    """:class:`dataset.evaluation.Baselines` (split seed ``split_seed``): the discriminative
    families and the headline function."""
    headline: dict[str, tuple[float, float]]
    """Player (``ceiling``, ``uniform_random``, ``density_random``, ``silence``) -> (mean, std)
    headline over ``baseline_splits`` halvings."""
    windows: int
    """Held-out windows the baselines were computed on."""
    heldout_windows: int
    """Full windows in the held-out part."""
    velocity: Any = None
    """:class:`dataset.evaluation_velocity.VelocityBaselines` of the same windows and splits: the
    velocity families' ceiling, floors and discriminative families."""
    velocity_headline: dict[str, tuple[float, float]] | None = None
    """Player (``ceiling``, ``uniform_random``, ``density_random``, ``silence``,
    ``constant_velocity``) -> (mean, std) velocity headline over ``baseline_splits`` halvings."""
    headline_se: dict[str, float] | None = None
    """Player (as :attr:`headline`) -> bootstrap standard error of the first halving's headline
    (``eval_resamples`` resamples of each of its two sets; an upper bound for the error of the
    mean over the halvings, which share their windows)."""
    files: int = 0
    """Held-out files with a full window (the strata of a stratified evaluation)."""


def _full_windows(config: TaskConfig, heldout: Any) -> np.ndarray:
    """The held-out part's windows of ``seq_len`` steps: int array (M, 2) of (sequence, start)."""
    lengths = np.array([len(s) for s in heldout.sequences])
    idx = np.asarray(heldout.sample_indices).reshape(-1, 2)
    return idx[idx[:, 1] + config.seq_len <= lengths[idx[:, 0]]]


def stratified_counts(
    sizes: Sequence[int] | np.ndarray, total: int, cap: bool = False
) -> np.ndarray:
    """How many of ``total`` draws each stratum (a held-out file) gets: in proportion, >= 1.

    Largest-remainder allocation of the quotas ``q_f = total * n_f / sum n`` (``n_f`` the
    stratum's size, its windows): each stratum first gets ``floor(q_f)``, raised to 1 when
    ``total`` covers every stratum (every file represented); draws over ``total`` (from those
    raises) are taken back from the strata furthest above their quota, and the draws left go
    one by one to the largest remainders ``q_f - k_f``. Ties go to the earlier stratum, so the
    allocation is deterministic.

    Args:
        sizes: int array (F,), each stratum's size (>= 1).
        total: draws to allocate (>= 0).
        cap: no stratum gets more draws than its size (sampling without replacement; needs
            ``total <= sum(sizes)``).

    Returns:
        int64 array (F,) summing to ``total``.

    Raises:
        ValueError: no stratum, a size below 1, a negative ``total``, or ``cap`` with
            ``total > sum(sizes)``.

    >>> stratified_counts([100, 10, 1], 11).tolist()
    [9, 1, 1]
    >>> stratified_counts([3, 1], 4, cap=True).tolist()
    [3, 1]
    """
    n = np.asarray(sizes, dtype=np.int64).ravel()
    if len(n) == 0 or (n < 1).any():
        raise ValueError(f"stratified_counts needs strata of size >= 1, got {n.tolist()}")
    if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 0:
        raise ValueError(f"total must be an integer >= 0, got {total!r}")
    if cap and total > n.sum():
        raise ValueError(f"cannot draw {total} without replacement from {int(n.sum())} items")
    quota = total * n / n.sum()
    k = np.floor(quota).astype(np.int64)
    if total >= len(n):
        k = np.maximum(k, 1)
    limit = n if cap else np.full(len(n), np.iinfo(np.int64).max)
    k = np.minimum(k, limit)
    while k.sum() > total:
        k[np.argmin(np.where(k > 1, quota - k, np.inf))] -= 1
    while k.sum() < total:
        k[np.argmax(np.where(k < limit, quota - k, -np.inf))] += 1
    return k


def reference(config: HeldoutConfig, heldout: Any) -> Reference:
    """Ceiling and floors on the continuations of ``2 * eval_episodes`` held-out windows.

    All the full windows when there are fewer; with ``stratify``, each file gives its share
    (:func:`stratified_counts` without replacement, then a seeded choice of its windows),
    otherwise a uniform seeded sample.

    Args:
        config: the task and the evaluation settings.
        heldout: the held-out dataset (:func:`heldout_dataset`).

    Raises:
        ValueError: fewer than 4 full windows in the held-out part.
    """
    from dataset.evaluation import compare_to_baselines
    from dataset.evaluation_velocity import compare_velocity_to_baselines

    full = _full_windows(config, heldout)
    if len(full) < 4:
        raise ValueError(
            f"the held-out split has {len(full)} windows of seq_len={config.seq_len} steps; the "
            "baselines need at least 4 (hold out more data or lower seq_len)"
        )
    rng = np.random.default_rng(config.split_seed)
    total = min(len(full), 2 * config.eval_episodes)
    _, stratum, sizes = np.unique(full[:, 0], return_inverse=True, return_counts=True)
    if config.stratify:
        counts = stratified_counts(sizes, total, cap=True)
        pick = np.concatenate([rng.choice(np.flatnonzero(stratum == f), k, replace=False)
                               for f, k in enumerate(counts)])  # fmt: skip
    else:
        pick = rng.choice(len(full), size=total, replace=False)
    p = config.prompt_steps
    windows = [
        np.asarray(heldout.sequences[s][st + p : st + config.seq_len], dtype=np.float32)
        for s, st in full[np.sort(pick)]
    ]
    kw = {"steps_per_bar": config.steps_per_bar, "bars_per_phrase": config.bars_per_phrase}
    base = compare_to_baselines(windows, seed=config.split_seed, resamples=config.eval_resamples,
                                **kw)  # fmt: skip
    runs = [base] + [
        compare_to_baselines(windows, seed=config.split_seed + k, bootstrap=0, **kw)
        for k in range(1, config.baseline_splits)
    ]
    players = {"ceiling": "real_vs_real", "uniform_random": "uniform_random",
               "density_random": "density_random", "silence": "silence"}  # fmt: skip
    headline = {}
    for name, attr in players.items():
        values = [base.headline(getattr(b, attr)) for b in runs]
        headline[name] = (float(np.mean(values)), float(np.std(values)))
    se = {name: base.headline_se[attr] for name, attr in players.items()}
    spb = config.steps_per_bar
    vel = compare_velocity_to_baselines(windows, spb, seed=config.split_seed)
    vel_runs = [vel] + [
        compare_velocity_to_baselines(windows, spb, seed=config.split_seed + k, bootstrap=0)
        for k in range(1, config.baseline_splits)
    ]
    vel_headline = {}
    for name, attr in {**players, "constant_velocity": "constant_velocity"}.items():
        values = [vel.headline(getattr(b, attr)) for b in vel_runs]
        vel_headline[name] = (float(np.mean(values)), float(np.std(values)))
    return Reference(base, headline, len(windows), len(full), vel, vel_headline, se, len(sizes))


class _FileView(NamedTuple):
    """One held-out file as env data: its sequence and its full windows.

    It duck-types the dataset that :func:`drum_env.core.load_reference` reads.
    """

    sequences: list[np.ndarray]
    sample_indices: np.ndarray
    names: list[str]
    files: list[Any]


def _as_dataset(config: HeldoutConfig, data: Any) -> Any:
    """The evaluation env's ``data`` as a dataset with ``sequences`` and ``sample_indices``."""
    if hasattr(data, "sequences") and hasattr(data, "sample_indices"):
        return data
    if data is not None:
        return heldout_dataset(config, data)
    from dataset.hierarchical import CompleteHierarchicalDrumDataset
    from dataset.synthetic import default_corpus

    return CompleteHierarchicalDrumDataset(
        None, config.seq_len, config.steps_per_bar, config.bars_per_phrase,
        stride=config.steps_per_bar, sequences=default_corpus(), as_numpy=True,
    )  # fmt: skip


def play_draw(
    policy: Callable[[dict[str, np.ndarray]], np.ndarray],
    config: HeldoutConfig,
    env_kwargs: Mapping[str, Any],
    seed: int,
) -> Any:
    """Play one draw of ``eval_episodes`` episodes: :class:`agents.evaluation.rollout.Rollouts`.

    What :func:`evaluate` scores for draw ``k`` (``seed = eval_seed + 7919 * k``); public for
    scripts that score the same takes another way (``benchmarks/energy_alignment.py``).

    Stratified (``stratify``): file ``f`` (the ``f``-th held-out sequence with a full window)
    plays its :func:`stratified_counts` share in an env of its own, reset with
    ``seed + 1009 * f``, whose sub-envs draw their windows among the file's. Under a
    normalised shaping each file's env starts its own normaliser, so ``returns`` are the
    file's first episodes' returns.
    """
    from agents.evaluation.rollout import Rollouts, rollout_episodes

    episodes = config.eval_episodes
    if not config.stratify:
        return rollout_episodes(policy, env_kwargs, episodes=episodes,
                                num_envs=min(16, episodes), seed=seed)  # fmt: skip
    data = _as_dataset(config, env_kwargs.get("data"))
    kwargs = dict(env_kwargs)
    levels = int(kwargs.get("velocity_levels") or 0)
    if levels and kwargs.get("velocity_bins") is None:  # the whole part's bins, as one env has
        from dataset.velocity import VelocityBins

        values = [np.asarray(s, dtype=np.float32) for s in data.sequences]
        kwargs["velocity_bins"] = VelocityBins.from_data(values, levels)
    full = _full_windows(config, data)
    if len(full) == 0:
        raise ValueError(f"the evaluation data has no window of seq_len={config.seq_len} steps")
    seqs, stratum, sizes = np.unique(full[:, 0], return_inverse=True, return_counts=True)
    counts = stratified_counts(sizes, episodes)
    names = list(getattr(data, "names", [f"sequences[{i}]" for i in range(len(data.sequences))]))
    files = list(getattr(data, "files", []) or [])
    if len(files) != len(data.sequences):  # tempos come from the files, when there are files
        files = [None] * len(data.sequences)
    parts = []
    for f, (s, k) in enumerate(zip(seqs, counts)):
        if not k:
            continue
        starts = full[stratum == f, 1]
        view = _FileView([data.sequences[s]], np.stack([np.zeros_like(starts), starts], 1),
                         [names[s]], [files[s]] if files[s] is not None else [])  # fmt: skip
        parts.append(rollout_episodes(policy, {**kwargs, "data": view}, episodes=int(k),
                                      num_envs=min(64, int(k)), seed=seed + 1009 * f))  # fmt: skip

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name) for r in parts])

    return Rollouts(
        cat("returns"), cat("song_raw"), cat("sequences"), cat("references"),
        parts[0].prompt_steps, cat("takes"), tuple(t for r in parts for t in r.tempos),
        cat("reference_values"),
    )  # fmt: skip


def evaluate(
    policy: Callable[[dict[str, np.ndarray]], np.ndarray],
    config: HeldoutConfig,
    env_kwargs: Mapping[str, Any],
    ref: Reference,
    draws: int = 1,
) -> dict[str, float]:
    """Play the evaluation episodes with ``policy`` and score what it composed.

    Args:
        policy: batched observation dict -> int8 actions (:mod:`agents.evaluation.rollout`'s
            adapters).
        config: the task and the evaluation settings.
        env_kwargs: the evaluation env's arguments (its ``data`` the held-out dataset).
        ref: :func:`reference` of the same held-out part.
        draws: evaluation draws: draw ``k`` resets with ``eval_seed + 7919 * k`` (draw 0 is
            the usual evaluation); every score is the mean over the draws.

    Returns:
        ``headline`` (in [0, 1], higher is better), ``headline_se`` (its standard error over
        episodes and draws: :func:`dataset.evaluation.headline_standard_error` of the draws'
        headlines and their bootstrap errors, ``eval_resamples`` paired resamples of the
        episodes, seeded ``eval_seed + k``), ``headline_draw_std`` (the standard
        deviation of the headline over the draws; 0 for one), ``song_raw``, ``episode_return``
        and ``oa_<family>`` for every family of :data:`FAMILIES` (NaN where it has no feature)
        and of each registered song-level metric (:func:`dataset.evaluation.families`); then
        ``velocity_headline`` and ``oa_velocity``, ``oa_accent``
        (:data:`dataset.evaluation_velocity.VELOCITY_FAMILIES`): the dynamics of the takes (a binary
        env's takes play composed hits at the primer's per-drum mean velocity) against the
        references' recorded velocities.
    """
    from dataset.evaluation import families, headline_standard_error, score_sets_resampled
    from dataset.evaluation_velocity import VELOCITY_FAMILIES, score_velocity_sets

    rows, errors = [], []
    for k in range(draws):
        r = play_draw(policy, config, env_kwargs, config.eval_seed + 7919 * k)
        p = r.prompt_steps
        scored = score_sets_resampled(
            r.sequences[:, p:], r.references[:, p:], config.steps_per_bar,
            config.bars_per_phrase, resamples=config.eval_resamples, seed=config.eval_seed + k,
        )  # fmt: skip
        score = scored.score
        errors.append(ref.baselines.standard_error(scored))
        row = {
            "headline": ref.baselines.headline(score),
            "song_raw": float(r.song_raw.mean()),
            "episode_return": float(r.returns.mean()),
        }
        for f in families():  # the built-in ones, then the registered metrics
            row[f"oa_{f}"] = float(score.families.get(f, math.nan))
        if ref.velocity is not None:
            vs = score_velocity_sets(r.takes[:, p:], r.reference_values[:, p:],
                                     config.steps_per_bar)  # fmt: skip
            row["velocity_headline"] = ref.velocity.headline(vs)
            for f in VELOCITY_FAMILIES:
                row[f"oa_{f}"] = float(vs.families.get(f, math.nan))
        rows.append(row)
    heads = [row["headline"] for row in rows]
    out = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    out["headline_se"] = headline_standard_error(heads, errors)
    out["headline_draw_std"] = float(np.std(heads))
    return out
