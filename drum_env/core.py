"""The shared, batched heart of DrumCompose: one frozen config, the reference data, the core.

:class:`ComposeCore` holds the state of ``B`` episodes as numpy arrays with a batch axis and
steps them together. :class:`~drum_env.env.DrumComposeEnv` runs it with ``B = 1``,
:class:`~drum_env.vector.DrumComposeVectorEnv` with ``B = num_envs`` and the PettingZoo band
with ``B = 1``, so the three compute rewards and observations with exactly the same code.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from dataset import metrics
from drum_env import rewards
from drum_env.rewards import TERMS, RunningNormalizer, Shaping

__all__ = ["DrumComposeConfig", "ReferenceData", "ComposeCore", "StepResult", "load_reference"]


@dataclass(frozen=True)
class DrumComposeConfig:
    """Everything that defines a DrumCompose task. Validated on construction.

    Attributes:
        seq_len: steps of one episode's window, primer included; a multiple of steps_per_bar.
        steps_per_bar: steps in one bar (16 = 16th notes in 4/4).
        bars_per_phrase: bars in one phrase.
        prompt_bars: bars of the reference given as the primer; the agent composes the rest.
        context_steps: steps of the canvas the observation shows (the latest ones).
        sections: ``(start, end)`` steps of the sections, relative to the window; ``None``:
            one section per two phrases.
        shaping: the reward shaping (resolved from a name by :func:`rewards.make_shaping`).
        num_drums: drums per step, set from the data.
    """

    seq_len: int = 128
    steps_per_bar: int = 16
    bars_per_phrase: int = 4
    prompt_bars: int = 2
    context_steps: int = 32
    sections: tuple[tuple[int, int], ...] | None = None
    shaping: Shaping = field(default_factory=lambda: rewards.make_shaping("hierarchical"))
    num_drums: int = 9

    def __post_init__(self) -> None:
        for name in ("seq_len", "steps_per_bar", "bars_per_phrase", "context_steps", "num_drums"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.seq_len % self.steps_per_bar:
            raise ValueError(
                f"seq_len must be a multiple of steps_per_bar={self.steps_per_bar}, "
                f"got {self.seq_len}"
            )
        bars = self.seq_len // self.steps_per_bar
        if not isinstance(self.prompt_bars, (int, np.integer)) or not 0 <= self.prompt_bars < bars:
            raise ValueError(
                f"prompt_bars must be an integer in [0, {bars - 1}] (the episode has "
                f"seq_len / steps_per_bar = {bars} bars), got {self.prompt_bars!r}"
            )
        if self.sections is not None:
            clean = []
            for span in self.sections:
                start, end = (int(v) for v in span)
                if end < start:
                    raise ValueError(f"sections: end < start in {span!r}")
                start, end = max(start, 0), min(end, self.seq_len)
                if end > start:
                    clean.append((start, end))
            object.__setattr__(self, "sections", tuple(clean))

    @property
    def prompt_steps(self) -> int:
        """Steps of the primer."""
        return self.prompt_bars * self.steps_per_bar

    @property
    def episode_steps(self) -> int:
        """Env steps of one episode: the steps the agent composes."""
        return self.seq_len - self.prompt_steps

    @property
    def phrase_len(self) -> int:
        """Steps in one phrase."""
        return self.steps_per_bar * self.bars_per_phrase

    @property
    def section_spans(self) -> tuple[tuple[int, int], ...]:
        """The sections as ``(start, end)`` steps, half-open, within the window."""
        if self.sections is None:
            return tuple(metrics.default_sections(self.seq_len, self.phrase_len))
        return self.sections

    @property
    def position_size(self) -> int:
        """Length of the ``position`` observation."""
        return self.steps_per_bar + self.bars_per_phrase + 2

    @property
    def target_size(self) -> int:
        """Length of the ``target`` observation."""
        return len(rewards.SONG_FEATURE_NAMES) + self.num_drums

    def observation_space(self) -> spaces.Dict:
        """The single-env observation space."""
        return spaces.Dict(
            {
                "context": spaces.Box(
                    0.0, 1.0, (self.context_steps * self.num_drums,), dtype=np.float32
                ),
                "position": spaces.Box(0.0, 1.0, (self.position_size,), dtype=np.float32),
                "target": spaces.Box(0.0, 1.0, (self.target_size,), dtype=np.float32),
            }
        )

    def action_space(self) -> spaces.MultiBinary:
        """The single-env action space."""
        return spaces.MultiBinary(self.num_drums)


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ReferenceData:
    """The reference windows episodes are drawn from.

    Attributes:
        hits: bool arrays ``(time_steps, drums)``, one per sequence.
        windows: int64 array ``(N, 2)``: ``(sequence_idx, start)`` of every window of
            ``seq_len`` steps (the dataset's full-length samples).
        names: name of each sequence (file path or ``sequences[i]``).
    """

    hits: tuple[np.ndarray, ...]
    windows: np.ndarray
    names: tuple[str, ...]

    def stack(self, window_ids: np.ndarray, seq_len: int) -> np.ndarray:
        """Reference hits of windows: int array (M,) -> bool array (M, seq_len, drums)."""
        out = [
            self.hits[s][st : st + seq_len] for s, st in self.windows[np.asarray(window_ids)]
        ]
        return np.stack(out) if out else np.zeros((0, seq_len, self.hits[0].shape[1]), bool)


def load_reference(
    data: Any, seq_len: int, steps_per_bar: int, bars_per_phrase: int, on_error: str = "raise"
) -> ReferenceData:
    """Resolve the env's ``data`` argument into reference windows.

    Args:
        data: ``None`` (the built-in synthetic corpus), a folder of ``.npz`` files, or a
            :class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset` (its sequences and
            its full-length windows are used).
        seq_len: steps of an episode's window.
        steps_per_bar: steps per bar; built datasets start windows on bar lines.
        bars_per_phrase: bars per phrase.
        on_error: passed to the dataset for a folder.

    Returns:
        ReferenceData with at least one window.

    Raises:
        ValueError: when no sequence is at least ``seq_len`` steps long.
    """
    from dataset.hierarchical import CompleteHierarchicalDrumDataset

    if data is None:
        from dataset.synthetic import default_corpus

        ds = CompleteHierarchicalDrumDataset(
            None, seq_len, steps_per_bar, bars_per_phrase, stride=steps_per_bar,
            sequences=default_corpus(), as_numpy=True,
        )  # fmt: skip
        source = "the built-in synthetic corpus"
    elif isinstance(data, (str, Path)):
        ds = CompleteHierarchicalDrumDataset(
            data, seq_len, steps_per_bar, bars_per_phrase, stride=steps_per_bar,
            on_error=on_error, as_numpy=True,
        )  # fmt: skip
        source = f"data folder {str(data)!r}"
    elif hasattr(data, "sequences") and hasattr(data, "sample_indices"):
        ds = data
        source = f"dataset {type(data).__name__}"
    else:
        raise ValueError(
            "data must be None (built-in corpus), a folder of .npz files or a "
            f"CompleteHierarchicalDrumDataset, got {type(data).__name__}"
        )
    lengths = np.array([len(s) for s in ds.sequences])
    idx = np.asarray(ds.sample_indices, dtype=np.int64).reshape(-1, 2)
    full = idx[idx[:, 1] + seq_len <= lengths[idx[:, 0]]]
    if len(full) == 0:
        raise ValueError(
            f"{source} has no sequence of at least seq_len={seq_len} steps (longest: "
            f"{int(lengths.max(initial=0))} steps); lower seq_len or give longer sequences"
        )
    short = int((lengths < seq_len).sum())
    if short:
        warnings.warn(
            f"{source}: {short} of {len(lengths)} sequences are shorter than seq_len={seq_len} "
            "steps and are not used as references",
            stacklevel=3,
        )
    names = tuple(getattr(ds, "names", [f"sequences[{i}]" for i in range(len(lengths))]))
    hits = tuple(metrics.as_hits(np.asarray(s)) for s in ds.sequences)
    return ReferenceData(hits, full, names)


# ----------------------------------------------------------------------------- core


class _RefFeatures(NamedTuple):
    """Reference features of windows, batch axis first."""

    step_probs: np.ndarray  # (M, steps_per_bar, D)
    bar: np.ndarray  # (M, bars, Kb)
    bar_silent: np.ndarray  # (M, bars) bool
    bar_constant: np.ndarray  # (M, bars) bool: one pattern on every step
    phrase: np.ndarray  # (M, phrases, Kp)
    section: list[np.ndarray]  # per section: (M, Ks)
    song: np.ndarray  # (M, Kg), also the target observation


class StepResult(NamedTuple):
    """What one batched step produced."""

    raw: np.ndarray
    """float64 (B, terms): raw value of each term (0 where it did not close)."""
    closed: np.ndarray
    """bool (B, terms): which terms closed on this step."""
    normalized: np.ndarray
    """float64 (B, terms): normalised values (raw for unnormalised shapings), 0 where open."""
    reward: np.ndarray
    """float64 (B,): the weighted sum."""
    terminated: np.ndarray
    """bool (B,): the window is composed."""


_T = {name: k for k, name in enumerate(TERMS)}
_BAR, _PHRASE, _SECTION, _SONG = 1, 2, 4, 8


class ComposeCore:
    """State and dynamics of ``B`` DrumCompose episodes, stepped as numpy batches.

    Args:
        config: the task.
        data: the reference windows.
        num_envs: batch size ``B``.
        normalizer: running reward normaliser (shared when several cores hold the same one).
    """

    def __init__(
        self,
        config: DrumComposeConfig,
        data: ReferenceData,
        num_envs: int = 1,
        normalizer: RunningNormalizer | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.num_envs = num_envs
        self.normalizer = normalizer if normalizer is not None else RunningNormalizer(len(TERMS))
        c = config
        b, t, d = num_envs, c.seq_len, c.num_drums
        self.reference = np.zeros((b, t, d), dtype=bool)
        self.canvas = np.zeros((b, t, d), dtype=bool)
        self.t = np.full(b, c.prompt_steps, dtype=np.int64)
        self.window_ids = np.zeros(b, dtype=np.int64)
        self._feature_cache: dict[int, tuple[np.ndarray, ...]] = {}
        self._ref: _RefFeatures | None = None
        # This episode's raw terms and which closed, per step: the normaliser takes them when
        # the episode ends (one write per step instead of three running sums).
        self._raw_hist = np.zeros((b, t, len(TERMS)))
        self._closed_hist = np.zeros((b, t, len(TERMS)), dtype=bool)
        self._rows = np.arange(b)
        self._weights = c.shaping.weight_vector
        # Which section (index) closes when step t-1 is written, by t; -1 for none.
        self._section_at = np.full(t + 1, -1, dtype=np.int64)
        for k, (_, end) in enumerate(c.section_spans):
            if end > c.prompt_steps:
                self._section_at[end] = k
        # Which units close when step t-1 is written, by t, as bit flags: one lookup per step.
        ends = np.arange(t + 1)
        self._closes_at = (
            (ends % c.steps_per_bar == 0) * _BAR
            | (ends % c.phrase_len == 0) * _PHRASE
            | (self._section_at >= 0) * _SECTION
            | (ends == t) * _SONG
        ).astype(np.int64)
        self._closes_at[: c.prompt_steps + 1] = 0  # nothing closes before the agent writes
        # Term columns that may close for each combination of unit flags.
        self._columns = []
        for flags in range(16):
            names = ["step"]
            names += ["bar", "silence", "repetition"] if flags & _BAR else []
            names += ["phrase"] if flags & _PHRASE else []
            names += ["section"] if flags & _SECTION else []
            names += ["song"] if flags & _SONG else []
            self._columns.append(np.array(sorted(_T[n] for n in names)))
        # Position features by step: one-hot step in bar, one-hot bar in phrase, section and
        # song progress. Precomputed once: observing is a gather.
        self._position = self._position_table()
        self._context_offsets = np.arange(-c.context_steps, 0)

    # ------------------------------------------------------------------------- reference

    def _position_table(self) -> np.ndarray:
        c = self.config
        steps = np.arange(c.seq_len + 1)
        table = np.zeros((c.seq_len + 1, c.position_size), dtype=np.float32)
        table[steps, steps % c.steps_per_bar] = 1.0
        table[steps, c.steps_per_bar + (steps // c.steps_per_bar) % c.bars_per_phrase] = 1.0
        spans = c.section_spans
        progress = np.zeros(c.seq_len + 1, dtype=np.float32)
        for start, end in spans:
            inside = (steps >= start) & (steps < end)
            progress[inside] = (steps[inside] - start) / (end - start)
        table[:, -2] = progress
        table[:, -1] = steps / c.seq_len
        return table

    def _compute_features(self, ref: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """Reference features of a batch of windows: bool (M, T, D) -> one tuple per window."""
        c = self.config
        m, d = ref.shape[0], c.num_drums
        bars = ref.reshape(m, -1, c.steps_per_bar, d)
        codes = metrics.step_codes(bars)
        n_phr = c.seq_len // c.phrase_len
        phrases = ref[:, : n_phr * c.phrase_len].reshape(m, n_phr, c.phrase_len, d)
        parts = (
            rewards.step_probabilities(ref, c.steps_per_bar),
            rewards.bar_features(bars, c.steps_per_bar),
            ~bars.any(axis=(-1, -2)),
            (codes == codes[..., :1]).all(axis=-1) & bars.any(axis=(-1, -2)),
            rewards.phrase_features(phrases, c.steps_per_bar, c.bars_per_phrase),
            *[rewards.section_features(ref[:, s:e], c.steps_per_bar) for s, e in c.section_spans],
            np.clip(rewards.song_features(ref, c.steps_per_bar, c.bars_per_phrase), 0.0, 1.0),
        )
        return [tuple(p[i] for p in parts) for i in range(m)]

    def _reference_features(self, window_ids: np.ndarray, ref: np.ndarray) -> _RefFeatures:
        """Features of the given windows, computed once per window and cached."""
        missing = sorted({int(w) for w in window_ids} - self._feature_cache.keys())
        if missing:
            first = {int(w): k for k, w in enumerate(window_ids)}
            rows = ref[[first[w] for w in missing]]
            for w, feats in zip(missing, self._compute_features(rows)):
                self._feature_cache[w] = feats
        per = [self._feature_cache[int(w)] for w in window_ids]
        cols = [np.stack(col) for col in zip(*per)]
        n_sec = len(self.config.section_spans)
        return _RefFeatures(*cols[:5], cols[5 : 5 + n_sec], cols[5 + n_sec])

    # ------------------------------------------------------------------------- dynamics

    def reset(self, env_ids: np.ndarray, window_ids: np.ndarray) -> None:
        """Start new episodes in sub-envs ``env_ids`` (int (M,)) on windows ``window_ids``."""
        env_ids = np.asarray(env_ids, dtype=np.int64)
        if env_ids.size == 0:
            return
        c = self.config
        ref = self.data.stack(window_ids, c.seq_len)
        feats = self._reference_features(np.asarray(window_ids), ref)
        self.reference[env_ids] = ref
        self.canvas[env_ids] = False
        self.canvas[env_ids, : c.prompt_steps] = ref[:, : c.prompt_steps]
        self.t[env_ids] = c.prompt_steps
        self.window_ids[env_ids] = window_ids
        self._raw_hist[env_ids] = 0.0
        self._closed_hist[env_ids] = False
        if self._ref is None:
            if len(env_ids) != self.num_envs:
                raise ValueError("the first reset must start every sub-env")
            self._ref = _RefFeatures(
                *(np.empty((self.num_envs, *a.shape[1:]), a.dtype) for a in feats[:5]),
                [np.empty((self.num_envs, *a.shape[1:]), a.dtype) for a in feats.section],
                np.empty((self.num_envs, *feats.song.shape[1:]), feats.song.dtype),
            )
        for mine, new in zip((*self._ref[:5], *self._ref.section, self._ref.song),
                             (*feats[:5], *feats.section, feats.song)):  # fmt: skip
            mine[env_ids] = new
        self._target = self._ref.song.astype(np.float32)  # the observation's target, per episode

    def step(self, actions: np.ndarray, env_ids: np.ndarray | None = None) -> StepResult:
        """Write one step in sub-envs ``env_ids`` (all by default).

        Args:
            actions: bool array (M, drums), one row per stepped sub-env.
            env_ids: int array (M,) of running sub-envs, or None for all ``B``.

        Returns:
            StepResult with one row per stepped sub-env.
        """
        c, ref = self.config, self._ref
        rows = self._rows if env_ids is None else np.asarray(env_ids)
        m = len(rows)
        pos = self.t[rows]
        self.canvas[rows, pos] = actions
        raw = np.zeros((m, len(TERMS)))
        closed = np.zeros((m, len(TERMS)), dtype=bool)

        probs = ref.step_probs[rows, pos % c.steps_per_bar]
        # Reductions, not matrix products: BLAS may sum in another order for another batch size,
        # and the single and vector envs must agree to the last bit.
        raw[:, _T["step"]] = -np.square(actions - probs).sum(axis=-1) / c.num_drums
        closed[:, _T["step"]] = True

        end = pos + 1
        flags = self._closes_at[end]
        any_flags = int(np.bitwise_or.reduce(flags))
        if any_flags & _BAR:
            bar_end = (flags & _BAR) > 0
            i = np.flatnonzero(bar_end)
            e, k = rows[i], end[i] // c.steps_per_bar - 1
            bars = self._slices(e, end[i], c.steps_per_bar)
            feats = rewards.bar_features(bars, c.steps_per_bar)
            raw[i, _T["bar"]] = -rewards.feature_distance(feats, ref.bar[e, k])
            codes = metrics.step_codes(bars)
            silent = ~bars.any(axis=(-1, -2))
            constant = (codes == codes[:, :1]).all(axis=-1) & ~silent
            raw[i, _T["silence"]] = -(silent & ~ref.bar_silent[e, k]).astype(np.float64)
            raw[i, _T["repetition"]] = -(constant & ~ref.bar_constant[e, k]).astype(np.float64)
            closed[i, _T["bar"]] = closed[i, _T["silence"]] = closed[i, _T["repetition"]] = True

        if any_flags & _PHRASE:
            phrase_end = (flags & _PHRASE) > 0
            i = np.flatnonzero(phrase_end)
            e, k = rows[i], end[i] // c.phrase_len - 1
            phrases = self._slices(e, end[i], c.phrase_len)
            feats = rewards.phrase_features(phrases, c.steps_per_bar, c.bars_per_phrase)
            raw[i, _T["phrase"]] = -rewards.feature_distance(feats, ref.phrase[e, k])
            closed[i, _T["phrase"]] = True

        if any_flags & _SECTION:
            section = self._section_at[end]
            for k in np.unique(section[section >= 0]):
                i = np.flatnonzero(section == k)
                start, stop = c.section_spans[k]
                sections = self._slices(rows[i], end[i], stop - start)
                feats = rewards.section_features(sections, c.steps_per_bar)
                raw[i, _T["section"]] = -rewards.feature_distance(feats, ref.section[k][rows[i]])
                closed[i, _T["section"]] = True

        terminated = (flags & _SONG) > 0
        if any_flags & _SONG:
            i = np.flatnonzero(terminated)
            songs = self.canvas[rows[i]]
            feats = rewards.song_features(songs, c.steps_per_bar, c.bars_per_phrase)
            raw[i, _T["song"]] = -rewards.feature_distance(feats, ref.song[rows[i]])
            closed[i, _T["song"]] = True

        self.t[rows] = end
        if c.shaping.normalize:
            cols = self._columns[any_flags]  # only the terms that can have closed
            values = np.zeros_like(raw)
            values[:, cols] = np.where(
                closed[:, cols], self.normalizer.normalize(raw[:, cols], cols), 0.0
            )
        else:
            values = raw  # raw is 0 wherever a term did not close
        reward = (values * self._weights).sum(axis=-1)
        self._raw_hist[rows, pos] = raw
        self._closed_hist[rows, pos] = closed
        if any_flags & _SONG:
            done = rows[terminated]
            raw_done = self._raw_hist[done]  # 0 wherever a term did not close
            self.normalizer.update(
                self._closed_hist[done].sum(axis=(0, 1)),
                raw_done.sum(axis=(0, 1)),
                np.square(raw_done).sum(axis=(0, 1)),
            )
        return StepResult(raw, closed, values, reward, terminated)

    def _slices(self, env_ids: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
        """The canvas's last ``length`` steps before ``ends``: bool (M, length, drums)."""
        steps = ends[:, None] - length + np.arange(length)
        return self.canvas[env_ids[:, None], steps]

    # ------------------------------------------------------------------------- observing

    def observe(self) -> dict[str, np.ndarray]:
        """Batched observation: each single-space key with a leading batch axis (float32)."""
        if self._ref is None:
            raise RuntimeError("no episode yet: reset before observing")
        c = self.config
        t0 = int(self.t[0])
        if t0 >= c.context_steps and (self.t == t0).all():  # lockstep: one slice
            context = self.canvas[:, t0 - c.context_steps : t0]
        else:
            rows = np.arange(self.num_envs)
            steps = self.t[:, None] + self._context_offsets
            context = self.canvas[rows[:, None], np.maximum(steps, 0)] & (steps >= 0)[..., None]
        return {
            "context": context.reshape(self.num_envs, -1).astype(np.float32),
            "position": self._position[self.t],
            "target": self._target.copy(),  # never hand out the same array twice
        }

    def episode_metrics(self, env_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Scalar song metrics of the canvases of ``env_ids``: name -> float64 array (M,)."""
        c = self.config
        song = metrics.song_metrics(self.canvas[env_ids], c.steps_per_bar, c.bars_per_phrase)
        return {k: v for k, v in song.items() if np.ndim(v) == 1}


def check_actions(actions: Any, shape: tuple[int, ...], space: spaces.Space) -> np.ndarray:
    """Validate actions against a MultiBinary space: -> bool array of ``shape``.

    Raises:
        ValueError: naming the expected space when the shape is wrong or a value is not 0 or 1.
    """
    a = np.asarray(actions)
    if a.shape != shape:
        raise ValueError(f"action must have shape {shape} for {space}, got shape {a.shape}")
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "uif":
        raise ValueError(f"action values must be 0 or 1 for {space}, got dtype {a.dtype}")
    hits = a == 1
    if not (hits | (a == 0)).all():
        raise ValueError(f"action values must be 0 or 1 for {space}, got {a!r}")
    return hits


def terms_info(result: StepResult, row: int | slice) -> dict[str, Any]:
    """``info["reward_terms"]``: ``"<term>/raw"``, ``"<term>/norm"``, ``"<term>/closed"``.

    One of each for every term; ``closed`` (bool) says whether the term closed on this step, so
    that a raw 0 of a closed term is told apart from "did not close".
    """
    return (
        dict(zip(_RAW_KEYS, result.raw[row].tolist()))
        | dict(zip(_NORM_KEYS, result.normalized[row].tolist()))
        | dict(zip(_CLOSED_KEYS, result.closed[row].tolist()))
    )


_RAW_KEYS = tuple(f"{name}/raw" for name in TERMS)
_NORM_KEYS = tuple(f"{name}/norm" for name in TERMS)
_CLOSED_KEYS = tuple(f"{name}/closed" for name in TERMS)


def options_window(
    options: Mapping[str, Any] | None, data: ReferenceData, rng: np.random.Generator
) -> int:
    """The window of a reset, drawn from ``rng`` unless ``options`` chooses it.

    ``options["window"]`` picks a window, ``options["sequence"]`` a random window of that
    sequence; without options, a random window.

    Raises:
        ValueError: unknown option keys, or a window / sequence out of range.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - {"window", "sequence"})
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; known: ['window', 'sequence']")
    n = len(data.windows)
    if "window" in options:
        w = int(options["window"])
        if not 0 <= w < n:
            raise ValueError(f"options['window'] must be in [0, {n - 1}], got {w}")
        return w
    if "sequence" in options:
        s = int(options["sequence"])
        choices = np.flatnonzero(data.windows[:, 0] == s)
        if len(choices) == 0:
            raise ValueError(
                f"options['sequence']={s} has no window of the episode length "
                f"(sequences: 0..{len(data.hits) - 1})"
            )
        return int(choices[rng.integers(len(choices))])
    return int(rng.integers(n))


def build_config(
    data: Any,
    seq_len: int,
    steps_per_bar: int,
    bars_per_phrase: int,
    prompt_bars: int,
    context_steps: int,
    sections: Sequence[tuple[int, int]] | None,
    shaping: str | Shaping,
    weights: Mapping[str, float] | None,
    normalize: bool | None,
    on_error: str = "raise",
) -> tuple[DrumComposeConfig, ReferenceData]:
    """Validate the env arguments and load the data: the shared constructor of every env."""
    resolved = rewards.make_shaping(shaping, weights, normalize)
    DrumComposeConfig(  # validate the arguments before loading any data
        seq_len, steps_per_bar, bars_per_phrase, prompt_bars, context_steps,
        tuple(sections) if sections is not None else None, resolved,
    )  # fmt: skip
    ref = load_reference(data, seq_len, steps_per_bar, bars_per_phrase, on_error)
    config = DrumComposeConfig(
        seq_len, steps_per_bar, bars_per_phrase, prompt_bars, context_steps,
        tuple(sections) if sections is not None else None, resolved, ref.hits[0].shape[1],
    )  # fmt: skip
    return config, ref
