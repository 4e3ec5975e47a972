"""Held-out evaluation: split the data, set the ceiling and floors, score a policy.

The benchmark (:mod:`agents.benchmark`) and the tuner (:mod:`agents.tune`) both judge a policy
here, by the shaping-independent evaluation of :mod:`dataset.evaluation` (the reward never
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
   windows of ``seq_len`` steps (bar-aligned); their continuations (after the primer) give
   :func:`dataset.evaluation.compare_to_baselines`: the ceiling (real vs real, two halves) and
   the floors (uniform random, density-matched random, silence), and the *discriminative*
   families that the headline averages. The spread of ceiling and floors is their standard
   deviation over ``baseline_splits`` random halvings.

3. **Evaluate** (:func:`evaluate`): :func:`agents.rollout.rollout_episodes` plays
   ``eval_episodes`` episodes on the held-out part, reset with ``eval_seed`` (the same primers
   and reference windows for every policy), and the composed part of each canvas is scored with
   :func:`dataset.evaluation.score_sets` against the continuations of the episodes' own
   reference windows: the headline (mean overlapping area over the discriminative families),
   every family's OA, the mean raw ``song`` term and the mean return.
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

from agents.task import TaskConfig, check_int, check_number, check_path
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
    "reference",
    "evaluate",
]

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
    eval_episodes: int = 64
    """Episodes per evaluation (>= 2); the baselines use twice as many held-out windows."""
    eval_seed: int = 12_345
    """Reset seed of the evaluation episodes: the same primers for every policy."""
    baseline_splits: int = 5
    """Random halvings of the baseline windows for the spread of ceiling and floors (>= 1)."""
    eval_draws: int = 1
    """Evaluation draws of a final score: each plays ``eval_episodes`` episodes from other
    primers (reset seed ``eval_seed + 7919 * k``); the score is their mean, their standard
    deviation is reported beside the spread over seeds."""

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
    """:class:`dataset.evaluation.VelocityBaselines` of the same windows and splits: the
    velocity families' ceiling, floors and discriminative families."""
    velocity_headline: dict[str, tuple[float, float]] | None = None
    """Player (``ceiling``, ``uniform_random``, ``density_random``, ``silence``,
    ``constant_velocity``) -> (mean, std) velocity headline over ``baseline_splits`` halvings."""


def reference(config: HeldoutConfig, heldout: Any) -> Reference:
    """Ceiling and floors on the continuations of ``2 * eval_episodes`` held-out windows.

    Args:
        config: the task and the evaluation settings.
        heldout: the held-out dataset (:func:`heldout_dataset`).

    Raises:
        ValueError: fewer than 4 full windows in the held-out part.
    """
    from dataset.evaluation import compare_to_baselines, compare_velocity_to_baselines

    lengths = np.array([len(s) for s in heldout.sequences])
    idx = np.asarray(heldout.sample_indices).reshape(-1, 2)
    full = idx[idx[:, 1] + config.seq_len <= lengths[idx[:, 0]]]
    if len(full) < 4:
        raise ValueError(
            f"the held-out split has {len(full)} windows of seq_len={config.seq_len} steps; the "
            "baselines need at least 4 (hold out more data or lower seq_len)"
        )
    rng = np.random.default_rng(config.split_seed)
    pick = rng.choice(len(full), size=min(len(full), 2 * config.eval_episodes), replace=False)
    p = config.prompt_steps
    windows = [
        np.asarray(heldout.sequences[s][st + p : st + config.seq_len], dtype=np.float32)
        for s, st in full[np.sort(pick)]
    ]
    kw = {"steps_per_bar": config.steps_per_bar, "bars_per_phrase": config.bars_per_phrase}
    base = compare_to_baselines(windows, seed=config.split_seed, **kw)
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
    return Reference(base, headline, len(windows), len(full), vel, vel_headline)


def evaluate(
    policy: Callable[[dict[str, np.ndarray]], np.ndarray],
    config: HeldoutConfig,
    env_kwargs: Mapping[str, Any],
    ref: Reference,
    draws: int = 1,
) -> dict[str, float]:
    """Play the evaluation episodes with ``policy`` and score what it composed.

    Args:
        policy: batched observation dict -> int8 actions (:mod:`agents.rollout`'s adapters).
        config: the task and the evaluation settings.
        env_kwargs: the evaluation env's arguments (its ``data`` the held-out dataset).
        ref: :func:`reference` of the same held-out part.
        draws: evaluation draws: draw ``k`` resets with ``eval_seed + 7919 * k`` (draw 0 is
            the usual evaluation); every score is the mean over the draws.

    Returns:
        ``headline`` (in [0, 1], higher is better), ``headline_draw_std`` (the standard
        deviation of the headline over the draws; 0 for one), ``song_raw``, ``episode_return``
        and ``oa_<family>`` for every family of :data:`FAMILIES` (NaN where it has no feature)
        and of each registered song-level metric (:func:`dataset.evaluation.families`); then
        ``velocity_headline`` and ``oa_velocity``, ``oa_accent``
        (:data:`dataset.evaluation.VELOCITY_FAMILIES`): the dynamics of the takes (a binary
        env's takes play composed hits at the primer's per-drum mean velocity) against the
        references' recorded velocities.
    """
    from agents.rollout import rollout_episodes
    from dataset.evaluation import VELOCITY_FAMILIES, families, score_sets, score_velocity_sets

    rows = []
    for k in range(draws):
        r = rollout_episodes(
            policy, env_kwargs, episodes=config.eval_episodes,
            num_envs=min(16, config.eval_episodes), seed=config.eval_seed + 7919 * k,
        )  # fmt: skip
        p = r.prompt_steps
        score = score_sets(
            r.sequences[:, p:], r.references[:, p:], config.steps_per_bar, config.bars_per_phrase
        )
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
    out = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    out["headline_draw_std"] = float(np.std([row["headline"] for row in rows]))
    return out
