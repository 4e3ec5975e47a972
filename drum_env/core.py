"""The shared, batched heart of DrumCompose: one frozen config, the reference data, the core.

:class:`ComposeCore` holds the state of ``B`` episodes as numpy arrays with a batch axis and
steps them together. :class:`~drum_env.env.DrumComposeEnv` runs it with ``B = 1``,
:class:`~drum_env.vector.DrumComposeVectorEnv` with ``B = num_envs`` and the PettingZoo band
with ``B = 1``, so the three compute rewards and observations with exactly the same code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from gymnasium import spaces

from dataset import metrics
from dataset.velocity import MAX_VELOCITY_LEVELS, VelocityBins
from drum_env import rewards
from drum_env.checks import check_keys, check_reset_options, check_state_array, check_state_header
from drum_env.rewards import TERMS, RunningNormalizer, Shaping

__all__ = [
    "check_reset_options",  # re-exported from drum_env.checks (its old home)
    "DrumComposeConfig", "ReferenceData", "ComposeCore", "StepResult", "load_reference",
    "terms_info",
]  # fmt: skip


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
        velocity_levels: ``K``; 0 is the binary env (``MultiBinary`` actions, hits only);
            ``K > 0`` the expressive env (``MultiDiscrete([K + 1] * num_drums)``: 0 no hit,
            ``k`` a hit in velocity bin ``k``).
        velocity_bins: the ``K`` bins (:class:`~dataset.velocity.VelocityBins`) when ``K > 0``,
            set from the data unless given; ``None`` when ``K = 0``.
    """

    seq_len: int = 128
    steps_per_bar: int = 16
    bars_per_phrase: int = 4
    prompt_bars: int = 2
    context_steps: int = 32
    sections: tuple[tuple[int, int], ...] | None = None
    shaping: Shaping = field(default_factory=lambda: rewards.make_shaping(rewards.DEFAULT_SHAPING))
    num_drums: int = 9
    velocity_levels: int = 0
    velocity_bins: VelocityBins | None = None

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
        k = self.velocity_levels
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not (
            0 <= k <= MAX_VELOCITY_LEVELS
        ):
            raise ValueError(
                f"velocity_levels must be an integer in [0, {MAX_VELOCITY_LEVELS}] (0: binary "
                f"hits), got {k!r}"
            )
        if self.velocity_bins is not None:
            bins = VelocityBins.from_dict(self.velocity_bins)
            if k == 0:
                raise ValueError("velocity_bins needs velocity_levels > 0")
            if bins.num_levels != k:
                raise ValueError(
                    f"velocity_bins has {bins.num_levels} levels, velocity_levels is {k}"
                )
            object.__setattr__(self, "velocity_bins", bins)

    @property
    def expressive(self) -> bool:
        """Whether actions carry velocities (``velocity_levels > 0``)."""
        return self.velocity_levels > 0

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
        """Length of the ``target`` observation.

        The song features, the drum densities, and the song's velocity features when
        ``velocity_levels > 0``.
        """
        size = len(rewards.SONG_FEATURE_NAMES) + self.num_drums
        if self.expressive:
            size += rewards.velocity_feature_size(self.num_drums)
        return size

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

    def action_space(self) -> spaces.MultiBinary | spaces.MultiDiscrete:
        """The single-env action space.

        ``MultiBinary(num_drums)``, or with ``K`` velocity levels
        ``MultiDiscrete([K + 1] * num_drums)``.
        """
        if self.expressive:
            return spaces.MultiDiscrete(np.full(self.num_drums, self.velocity_levels + 1))
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
        values: float32 arrays ``(time_steps, drums)`` in [0, 1], the sequences as given
            (velocities / 127 for converted MIDI; what a take's primer keeps).
        tempos: each sequence's tempo in quarter notes per minute when its file records one
            (``tempo_bpm``, written by ``drum-env convert``), else ``None``.
    """

    hits: tuple[np.ndarray, ...]
    windows: np.ndarray
    names: tuple[str, ...]
    values: tuple[np.ndarray, ...] = ()
    tempos: tuple[float | None, ...] = ()

    def primer_values(self, window_ids: np.ndarray, prompt_steps: int) -> np.ndarray:
        """The primers as given (velocities): int array (M,) -> float32 (M, prompt_steps, drums).

        :meth:`stack_values` of the first ``prompt_steps`` steps (the hits as 1.0 when no
        values were kept).
        """
        return self.stack_values(window_ids, prompt_steps)

    def tempo(self, window_id: int | np.integer) -> float | None:
        """The recorded tempo of a window's sequence (quarter notes per minute), or ``None``."""
        seq = int(self.windows[int(window_id)][0])
        return self.tempos[seq] if seq < len(self.tempos) else None

    def stack_values(self, window_ids: np.ndarray, seq_len: int) -> np.ndarray:
        """Reference values of windows: int array (M,) -> float32 (M, seq_len, drums).

        The velocities; the hits as 1.0 when no values were kept.
        """
        source = self.values or self.hits
        out = [np.asarray(source[s][st : st + seq_len], dtype=np.float32)
               for s, st in self.windows[np.asarray(window_ids)]]  # fmt: skip
        return np.stack(out) if out else np.zeros((0, seq_len, self.hits[0].shape[1]),
                                                  np.float32)  # fmt: skip

    def stack(self, window_ids: np.ndarray, seq_len: int) -> np.ndarray:
        """Reference hits of windows: int array (M,) -> bool array (M, seq_len, drums)."""
        out = [
            self.hits[s][st : st + seq_len] for s, st in self.windows[np.asarray(window_ids)]
        ]
        return np.stack(out) if out else np.zeros((0, seq_len, self.hits[0].shape[1]), bool)


def load_reference(
    data: Any, seq_len: int, steps_per_bar: int, bars_per_phrase: int,
    on_error: Literal["raise", "skip"] = "raise",
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
            stacklevel=4,  # the env's __init__ (<- ComposeBase._build <- DrumComposeArgs.build)
        )
    names = tuple(getattr(ds, "names", [f"sequences[{i}]" for i in range(len(lengths))]))
    hits = tuple(metrics.as_hits(np.asarray(s)) for s in ds.sequences)
    values = tuple(np.asarray(s, dtype=np.float32) for s in ds.sequences)
    files = list(getattr(ds, "files", []) or [])
    tempos = tuple(_recorded_tempo(f) for f in files) if len(files) == len(hits) else ()
    return ReferenceData(hits, full, names, values, tempos)


def _recorded_tempo(path: Any) -> float | None:
    """The ``tempo_bpm`` a converted ``.npz`` records, or ``None``.

    Read by :func:`dataset.io.read_npz_tempo`: headers checked before allocating, the tempo
    within 20-400 bpm or a :class:`~dataset.io.DataError` naming the file.
    """
    from dataset.io import read_npz_tempo

    return read_npz_tempo(path) if Path(str(path)).suffix == ".npz" else None


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
    velocity_bar: np.ndarray  # (M, bars, Fv); Fv = 0 when velocity_levels = 0
    velocity_phrase: np.ndarray  # (M, phrases, Fv)
    velocity_song: np.ndarray  # (M, Fv)


def _pack(cols: Sequence[Any], num_sections: int) -> _RefFeatures:
    """:class:`_RefFeatures` from its arrays in :func:`_feature_arrays` order."""
    n = num_sections
    return _RefFeatures(*cols[:5], list(cols[5 : 5 + n]), *cols[5 + n :])  # type: ignore[call-arg]


class _WindowFeatures:
    """Reference features of every window used so far: one table row per window.

    A window's features depend on the data alone, so each is computed once, when a reset first
    draws it, and a batch of windows is gathered with one fancy index per table instead of
    stacking one small array per window and field. Not saved: recomputed deterministically on
    use.

    Args:
        num_windows: windows of the data (the ids run ``0 .. num_windows - 1``).
        compute: window ids, int array (M,) -> the feature arrays of those windows, batch
            axis first, in a fixed order.
    """

    def __init__(self, num_windows: int, compute: Callable[[np.ndarray], list[np.ndarray]]):
        self._compute = compute
        self.row = np.full(num_windows, -1, dtype=np.int64)
        """int64 (num_windows,): each window's table row; -1 for a window not computed yet."""
        self.tables: list[np.ndarray] = []
        """The feature arrays, one row per computed window (capacity grows by doubling)."""
        self.size = 0
        """Rows in use."""

    def rows(self, window_ids: np.ndarray) -> np.ndarray:
        """Table rows of windows (int (M,) -> int64 (M,)), computing the windows not seen yet."""
        window_ids = np.asarray(window_ids, dtype=np.int64)
        rows = self.row[window_ids]
        if (rows < 0).any():
            missing = np.unique(window_ids[rows < 0])
            self._append(missing, self._compute(missing))
            rows = self.row[window_ids]
        return rows

    def gather(self, window_ids: np.ndarray) -> list[np.ndarray]:
        """The feature arrays of windows, batch axis first (new arrays)."""
        rows = self.rows(window_ids)
        return [table[rows] for table in self.tables]

    def _append(self, window_ids: np.ndarray, arrays: list[np.ndarray]) -> None:
        need = self.size + len(window_ids)
        capacity = len(self.tables[0]) if self.tables else 0
        if need > capacity:
            capacity = max(need, 2 * capacity, 64)
            grown = [np.empty((capacity, *a.shape[1:]), a.dtype) for a in arrays]
            for new, old in zip(grown, self.tables):
                new[: self.size] = old[: self.size]
            self.tables = grown
        for table, a in zip(self.tables, arrays):
            table[self.size : need] = a
        self.row[window_ids] = np.arange(self.size, need)
        self.size = need


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

    Every numpy array attribute is either a state buffer, named in :attr:`STATE_BUFFERS` and
    saved by :meth:`state_dict`, or a table built from the config in ``__init__`` and never
    written after, named in :attr:`CONSTANT_TABLES`. A new buffer must be added to one of the
    two (the env's tests fail otherwise). Besides those, the reference features of the current
    windows (``_ref``) are state too and saved under ``"ref_features"``; the running reward
    normaliser is saved by the env that owns it (several cores may share one); the per-window
    feature cache is not saved, since it is recomputed deterministically on use.

    Args:
        config: the task.
        data: the reference windows.
        num_envs: batch size ``B``.
        normalizer: running reward normaliser (shared when several cores hold the same one).
    """

    STATE_VERSION = 3
    """Version of the :meth:`state_dict` format; bump it when the saved buffers change (2: the
    ``variety`` term joined :data:`~drum_env.rewards.TERMS`; 3: velocities, the ``values``
    buffer, the velocity terms and reference features)."""

    STATE_BUFFERS = ("reference", "canvas", "values", "t", "window_ids", "_target", "_raw_hist",
                     "_closed_hist")  # fmt: skip
    """The batched episode buffers (batch axis first) that reset and step write."""

    CONSTANT_TABLES = ("_rows", "_weights", "_section_at", "_closes_at", "_columns",
                       "_position", "_context_offsets", "_closes_list", "_levels",
                       "_term_steps")  # fmt: skip
    """Tables derived from the config alone, never written after ``__init__``: not saved."""

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
        # The canvas's velocities (float32 in [0, 1]) with velocity levels; empty without.
        self.values = np.zeros((b, t if c.expressive else 0, d), dtype=np.float32)
        # class -> value: 0 for class 0, then the bins' levels
        self._levels = np.zeros(1, dtype=np.float32)
        if c.expressive:
            assert c.velocity_bins is not None  # DrumComposeConfig sets it with the levels
            self._levels = np.concatenate([self._levels, c.velocity_bins.levels])
        self.t = np.full(b, c.prompt_steps, dtype=np.int64)
        self.window_ids = np.zeros(b, dtype=np.int64)
        self._target = np.zeros((b, c.target_size), dtype=np.float32)  # the target observation
        self._feature_cache = _WindowFeatures(len(data.windows), self._window_features)
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
        self._closes_list = self._closes_at.tolist()  # the same, for scalar lookups (B = 1)
        # Term columns that may close for each combination of unit flags.
        self._columns = []
        for flags in range(16):
            names = ["step"]
            names += ["bar", "silence", "repetition", "variety"] if flags & _BAR else []
            names += ["phrase"] if flags & _PHRASE else []
            names += ["section"] if flags & _SECTION else []
            names += ["song", "metrics"] if flags & _SONG else []
            if c.expressive:
                names += ["bar_velocity"] if flags & _BAR else []
                names += ["phrase_velocity"] if flags & _PHRASE else []
                names += ["song_velocity"] if flags & _SONG else []
            self._columns.append(np.array(sorted(_T[n] for n in names)))
        # The steps at which each term can close (all others hold 0 in _raw_hist).
        self._term_steps = [
            np.array([e - 1 for e in range(c.prompt_steps + 1, t + 1)
                      if j in self._columns[self._closes_at[e]]], dtype=np.int64)
            for j in range(len(TERMS))
        ]  # fmt: skip
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

    def _compute_features(
        self, ref: np.ndarray, values: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Reference features of a batch of windows: bool (M, T, D) -> arrays, batch axis first.

        The arrays of :class:`_RefFeatures` in :func:`_feature_arrays` order, then the
        reference half of the ``variety`` term at every bar: float64 (M, bars, 3),
        :func:`~drum_env.rewards.variety_features` of bar ``k`` after bar ``k - 1`` (after itself
        for ``k = 0``), which depends on the window alone.

        ``values``: float32 (M, T, D), the windows' velocities as :meth:`reference_values`
        gives them; used (and needed) only when ``velocity_levels > 0``.
        """
        c = self.config
        m, d = ref.shape[0], c.num_drums
        bars = ref.reshape(m, -1, c.steps_per_bar, d)
        codes = metrics.step_codes(bars)
        n_phr = c.seq_len // c.phrase_len
        phrases = ref[:, : n_phr * c.phrase_len].reshape(m, n_phr, c.phrase_len, d)
        if c.expressive:
            assert values is not None
            velocity = (
                rewards.velocity_features(values.reshape(m, -1, c.steps_per_bar, d),
                                          c.steps_per_bar),
                rewards.velocity_features(
                    values[:, : n_phr * c.phrase_len].reshape(m, n_phr, c.phrase_len, d),
                    c.steps_per_bar,
                ),
                rewards.velocity_features(values, c.steps_per_bar),
            )  # fmt: skip
        else:
            velocity = (np.zeros((m, bars.shape[1], 0)), np.zeros((m, n_phr, 0)),
                        np.zeros((m, 0)))  # fmt: skip
        parts = (
            rewards.step_probabilities(ref, c.steps_per_bar),
            rewards.bar_features(bars, c.steps_per_bar),
            ~bars.any(axis=(-1, -2)),
            (codes == codes[..., :1]).all(axis=-1) & bars.any(axis=(-1, -2)),
            rewards.phrase_features(phrases, c.steps_per_bar, c.bars_per_phrase),
            *[rewards.section_features(ref[:, s:e], c.steps_per_bar) for s, e in c.section_spans],
            np.clip(rewards.song_features(ref, c.steps_per_bar, c.bars_per_phrase), 0.0, 1.0),
            *velocity,
        )
        previous = np.concatenate([bars[:, :1], bars[:, :-1]], axis=1)
        return [*parts, rewards.variety_features(bars, previous)]

    def reference_values(self, window_ids: np.ndarray) -> np.ndarray:
        """The velocities an episode on each window is judged against: float32 (M, T, D).

        The primer keeps the data's values; after it each hit is moved to its velocity bin's
        level (:meth:`~dataset.velocity.VelocityBins.quantize`), so that playing the real
        continuation's classes reproduces it exactly. Without velocity levels: the data's
        values as they are.
        """
        c = self.config
        values = self.data.stack_values(window_ids, c.seq_len)
        if c.expressive:
            assert c.velocity_bins is not None  # DrumComposeConfig sets it with the levels
            values[:, c.prompt_steps :] = c.velocity_bins.quantize(values[:, c.prompt_steps :])
        return values

    def _reference_features(self, window_ids: np.ndarray) -> _RefFeatures:
        """Features of the given windows (int (M,)), computed once per window and cached."""
        cols = self._feature_cache.gather(window_ids)
        return _pack(cols[:-1], len(self.config.section_spans))  # the last: the variety table

    def _window_features(self, window_ids: np.ndarray) -> list[np.ndarray]:
        """:meth:`_compute_features` of windows of the data, int (M,) (the cache's source)."""
        ref = self.data.stack(window_ids, self.config.seq_len)
        values = self.reference_values(window_ids) if self.config.expressive else None
        return self._compute_features(ref, values)

    def _allocate_features(self, like: _RefFeatures) -> _RefFeatures:
        """Zeroed reference features of ``B`` windows, shaped like ``like``'s rows."""
        b = self.num_envs
        arrays = [np.zeros((b, *a.shape[1:]), a.dtype) for a in _feature_arrays(like)]
        return _pack(arrays, len(like.section))

    def _feature_layout(self) -> _RefFeatures:
        """Zeroed reference features of ``B`` windows: the shapes and dtypes of ``_ref``."""
        c = self.config
        silent = np.zeros((1, c.seq_len, c.num_drums), dtype=bool)
        quiet = np.zeros((1, c.seq_len, c.num_drums), dtype=np.float32)
        cols = self._compute_features(silent, quiet)[:-1]
        return self._allocate_features(_pack(cols, len(c.section_spans)))

    # ------------------------------------------------------------------------- dynamics

    @property
    def has_episode(self) -> bool:
        """Whether an episode was ever started (reset, or a state loaded): the canvas is one."""
        return self._ref is not None

    def reset(self, env_ids: np.ndarray, window_ids: np.ndarray) -> None:
        """Start new episodes in sub-envs ``env_ids`` (int (M,)) on windows ``window_ids``."""
        env_ids = np.asarray(env_ids, dtype=np.int64)
        if env_ids.size == 0:
            return
        c = self.config
        ref = self.data.stack(window_ids, c.seq_len)
        values = self.reference_values(window_ids) if c.expressive else None
        feats = self._reference_features(window_ids)
        # every sub-env in order (the vector env's autoreset): slices, not fancy indexing
        envs: Any = slice(None) if np.array_equal(env_ids, self._rows) else env_ids
        self.reference[envs] = ref
        self.canvas[envs] = False
        self.canvas[envs, : c.prompt_steps] = ref[:, : c.prompt_steps]
        if c.expressive:
            assert values is not None
            self.values[envs] = 0.0
            self.values[envs, : c.prompt_steps] = values[:, : c.prompt_steps]
        self.t[envs] = c.prompt_steps
        self.window_ids[envs] = window_ids
        self._raw_hist[envs] = 0.0
        self._closed_hist[envs] = False
        if self._ref is None:
            if len(env_ids) != self.num_envs:
                raise ValueError("the first reset must start every sub-env")
            self._ref = self._allocate_features(feats)
        for mine, new in zip(_feature_arrays(self._ref), _feature_arrays(feats)):
            mine[envs] = new
        if c.expressive:  # the observation's target, per episode
            self._target[envs] = np.concatenate(
                [feats.song, np.clip(feats.velocity_song, 0.0, 1.0)], axis=-1
            )
        else:
            self._target[envs] = feats.song

    def step(
        self,
        actions: np.ndarray,
        env_ids: np.ndarray | None = None,
        episode_metrics: dict[str, np.ndarray] | None = None,
    ) -> StepResult:
        """Write one step in sub-envs ``env_ids`` (all by default).

        Args:
            actions: bool array (M, drums), one row per stepped sub-env; with velocity levels
                int array (M, drums) of classes in ``0 .. K``.
            env_ids: int array (M,) of running sub-envs, or None for all ``B``.
            episode_metrics: an empty dict to receive, when episodes end on this step,
                :meth:`episode_metrics` of the ended sub-envs (name -> float64 array, one
                value per row where ``terminated``), which the song term computes anyway.

        Returns:
            StepResult with one row per stepped sub-env.
        """
        c, ref = self.config, self._ref
        assert ref is not None, "reset() before step()"
        if c.expressive:
            classes = actions
            actions = classes > 0
        if env_ids is None and self.num_envs == 1:
            p = int(self.t[0])
            if not self._closes_list[p + 1]:  # most steps: only the step term closes
                if c.expressive:
                    self.values[0, p] = self._levels[classes[0]]
                return self._step_open(actions[0], p)
        rows = self._rows if env_ids is None else np.asarray(env_ids)
        m = len(rows)
        pos = self.t[rows]
        p = int(pos[0])
        if env_ids is None and (pos == p).all():
            # Lockstep (the vector env's episodes all start and end together): every sub-env
            # writes step p, so the writes and gathers below are slices, not fancy indexing.
            at: tuple[Any, Any] = (slice(None), p)
            in_bar: tuple[Any, Any] = (slice(None), p % c.steps_per_bar)
        else:
            at, in_bar = (rows, pos), (rows, pos % c.steps_per_bar)
        self.canvas[at] = actions
        if c.expressive:
            self.values[at] = self._levels[classes]
        raw = np.zeros((m, len(TERMS)))
        closed = np.zeros((m, len(TERMS)), dtype=bool)

        probs = ref.step_probs[in_bar]
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
            # variety: the bar and the one before it (the bar itself for a window's first bar);
            # the reference's half depends on the window alone and comes from the cache
            prev_end = np.where(k > 0, end[i] - c.steps_per_bar, end[i])
            variety = rewards.variety_features(bars, self._slices(e, prev_end, c.steps_per_bar))
            windows = self._feature_cache.rows(self.window_ids[e])  # (computed once per window)
            ref_variety = self._feature_cache.tables[-1][windows, k]
            raw[i, _T["variety"]] = -rewards.feature_distance(variety, ref_variety)
            for name in ("bar", "silence", "repetition", "variety"):
                closed[i, _T[name]] = True
            if c.expressive:
                vbars = self._slices(e, end[i], c.steps_per_bar, self.values)
                feats = rewards.velocity_features(vbars, c.steps_per_bar)
                dist = rewards.feature_distance(feats, ref.velocity_bar[e, k])
                raw[i, _T["bar_velocity"]] = -dist
                closed[i, _T["bar_velocity"]] = True

        if any_flags & _PHRASE:
            phrase_end = (flags & _PHRASE) > 0
            i = np.flatnonzero(phrase_end)
            e, k = rows[i], end[i] // c.phrase_len - 1
            phrases = self._slices(e, end[i], c.phrase_len)
            feats = rewards.phrase_features(phrases, c.steps_per_bar, c.bars_per_phrase)
            raw[i, _T["phrase"]] = -rewards.feature_distance(feats, ref.phrase[e, k])
            closed[i, _T["phrase"]] = True
            if c.expressive:
                vphr = self._slices(e, end[i], c.phrase_len, self.values)
                feats = rewards.velocity_features(vphr, c.steps_per_bar)
                raw[i, _T["phrase_velocity"]] = -rewards.feature_distance(
                    feats, ref.velocity_phrase[e, k]
                )
                closed[i, _T["phrase_velocity"]] = True

        terminated = (flags & _SONG) > 0
        song: dict[str, np.ndarray] = {}
        if any_flags & _SONG:
            # The song metrics of the composed windows: the song term's features, a
            # whole-window section's features and info's episode metrics, computed once.
            songs = self.canvas[rows[terminated]]
            song = metrics.song_metrics(songs, c.steps_per_bar, c.bars_per_phrase)

        if any_flags & _SECTION:
            section = self._section_at[end]
            for k in np.unique(section[section >= 0]):
                i = np.flatnonzero(section == k)
                start, stop = c.section_spans[k]
                if (start, stop) == (0, c.seq_len):  # the song: these rows are the terminated
                    shape = (c.seq_len, c.num_drums)
                    feats = rewards.section_features_of_song(song, shape, c.steps_per_bar)
                else:
                    sections = self._slices(rows[i], end[i], stop - start)
                    feats = rewards.section_features(sections, c.steps_per_bar)
                raw[i, _T["section"]] = -rewards.feature_distance(feats, ref.section[k][rows[i]])
                closed[i, _T["section"]] = True

        if any_flags & _SONG:
            i = np.flatnonzero(terminated)
            feats = rewards.song_features_of_metrics(
                song, songs.shape[-2:], c.steps_per_bar, c.bars_per_phrase
            )
            raw[i, _T["song"]] = -rewards.feature_distance(feats, ref.song[rows[i]])
            closed[i, _T["song"]] = True
            if self._weights[_T["metrics"]] != 0.0:  # opt-in: computed only when weighted
                raw[i, _T["metrics"]] = -rewards.registered_distance(
                    songs, self.reference[rows[i]], c.steps_per_bar, c.bars_per_phrase
                )
                closed[i, _T["metrics"]] = True
            if c.expressive:
                feats = rewards.velocity_features(self.values[rows[i]], c.steps_per_bar)
                raw[i, _T["song_velocity"]] = -rewards.feature_distance(
                    feats, ref.velocity_song[rows[i]]
                )
                closed[i, _T["song_velocity"]] = True

        if not np.isfinite(raw).all():  # a registered metric's NaN never becomes a reward
            rewards.check_finite_terms(raw, closed)
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
        self._raw_hist[at] = raw
        self._closed_hist[at] = closed
        if any_flags & _SONG:
            self.normalizer.update(*self._episode_sums(rows[terminated]))
        if episode_metrics is not None:
            episode_metrics.update(_episode_metrics(song))
        return StepResult(raw, closed, values, reward, terminated)

    def _step_open(self, action: np.ndarray, p: int) -> StepResult:
        """:meth:`step` for ``B = 1`` at a step that closes no unit: the same values, in scalars.

        Only the ``step`` term closes, so the normalised value and the reward are one scalar each,
        computed with the same float64 operations as the batched path (and so the same bits).
        """
        c = self.config
        s = _T["step"]
        self.canvas[0, p] = action
        raw = np.zeros((1, len(TERMS)))
        closed = np.zeros((1, len(TERMS)), dtype=bool)
        assert self._ref is not None, "reset() before step()"
        sq = np.square(action - self._ref.step_probs[0, p % c.steps_per_bar])
        x = -float(np.add.reduce(sq)) / c.num_drums  # what .sum(axis=-1) does
        raw[0, s] = x
        closed[0, s] = True
        if c.shaping.normalize:
            v = self.normalizer.normalize_one(x, s)
            values = np.zeros((1, len(TERMS)))
            values[0, s] = v
        else:
            v, values = x, raw
        y = v * float(self._weights[s])
        if y != 0.0 and y == y:  # the other terms add signed zeros: the sum is y itself
            reward = np.array([y])
        else:
            reward = (values * self._weights).sum(axis=-1)
        self.t[0] = p + 1
        self._raw_hist[0, p] = raw[0]
        self._closed_hist[0, p] = closed[0]
        return StepResult(raw, closed, values, reward, np.zeros(1, dtype=bool))

    def _episode_sums(self, env_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Count, sum and sum of squares of each term's values over the episodes of ``env_ids``.

        For the normaliser: int64, float64 and float64 arrays (terms,), the values of
        ``_closed_hist[env_ids].sum(axis=(0, 1))``, ``_raw_hist[env_ids].sum(axis=(0, 1))`` and
        ``np.square(_raw_hist[env_ids]).sum(axis=(0, 1))`` to the last bit, from a tenth of
        the values. numpy sums over leading axes one value at a time, in (sub-env, step) order,
        starting from +0.0; such a sum is never -0.0, so adding a zero (+0.0 or -0.0) never
        changes it. A term is 0 at every step where it cannot close (``_term_steps``), so
        adding only the other values, in the same order and one at a time
        (``np.add.accumulate``), gives the same sums.

        Args:
            env_ids: int array (M,), sorted: the sub-envs whose episodes ended.
        """
        raw, closed = self._raw_hist, self._closed_hist
        if len(env_ids) != self.num_envs:  # (all of them: the buffers themselves, no copies)
            raw, closed = raw[env_ids], closed[env_ids]
        count = np.zeros(len(TERMS), dtype=np.int64)
        total, sumsq = np.zeros(len(TERMS)), np.zeros(len(TERMS))
        zero = np.zeros(1)
        for j, steps in enumerate(self._term_steps):
            values = raw[:, steps, j].reshape(-1)  # (sub-env, step) order
            count[j] = np.count_nonzero(closed[:, steps, j])
            total[j] = np.add.accumulate(np.concatenate([zero, values]))[-1]
            sumsq[j] = np.add.accumulate(np.concatenate([zero, np.square(values)]))[-1]
        return count, total, sumsq

    def _slices(
        self, env_ids: np.ndarray, ends: np.ndarray, length: int, source: np.ndarray | None = None
    ) -> np.ndarray:
        """The last ``length`` steps before ``ends``: bool (M, length, drums).

        Of the canvas, or of ``source`` (e.g. the reference) when given.
        """
        source = self.canvas if source is None else source
        if len(env_ids) == 1:  # one row: a slice, the same values without the gather
            e, end = int(env_ids[0]), int(ends[0])
            if end >= length:
                return source[e : e + 1, end - length : end]
        # Every sub-env (env_ids are sorted and distinct) at one end: a slice, copied to the
        # layout the gather gives, without its index arithmetic.
        end = int(ends[0])
        if len(env_ids) == self.num_envs and end >= length and (ends == end).all():
            return source[:, end - length : end].copy()
        steps = ends[:, None] - length + np.arange(length)
        return source[env_ids[:, None], steps]

    # ------------------------------------------------------------------------- observing

    def observe(self, row: int | None = None) -> dict[str, np.ndarray]:
        """Batched observation: each single-space key with a leading batch axis (float32).

        With ``row``, that sub-env's observation alone, without the batch axis (the same
        values as ``observe()[k][row]``, as new arrays).
        """
        if self._ref is None:
            raise RuntimeError("no episode yet: reset before observing")
        c = self.config
        canvas = self.values if c.expressive else self.canvas
        if row is not None:
            t = int(self.t[row])
            if t < c.context_steps:
                return {k: v[row] for k, v in self.observe().items()}
            return {
                "context": canvas[row, t - c.context_steps : t].reshape(-1).astype(np.float32),
                "position": self._position[t].copy(),
                "target": self._target[row].copy(),
            }
        t0 = int(self.t[0])
        if t0 >= c.context_steps and (self.t == t0).all():  # lockstep: one slice
            # converted to float32 in one pass, into a new array (observations are kept)
            context = np.empty((self.num_envs, c.context_steps * c.num_drums), np.float32)
            context.reshape(self.num_envs, c.context_steps, c.num_drums)[...] = canvas[
                :, t0 - c.context_steps : t0
            ]
        else:
            rows = np.arange(self.num_envs)
            steps = self.t[:, None] + self._context_offsets
            context = canvas[rows[:, None], np.maximum(steps, 0)] * (steps >= 0)[..., None]
            context = context.reshape(self.num_envs, -1).astype(np.float32)
        return {
            "context": context,
            "position": self._position[self.t],
            "target": self._target.copy(),  # never hand out the same array twice
        }

    def episode_metrics(self, env_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Scalar song metrics of the canvases of ``env_ids``: name -> float64 array (M,)."""
        c = self.config
        song = metrics.song_metrics(self.canvas[env_ids], c.steps_per_bar, c.bars_per_phrase)
        return _episode_metrics(song)

    def episode_metrics_info(
        self, env_id: int, computed: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, float]:
        """``info["episode_metrics"]`` of one env: :meth:`episode_metrics` as plain Python floats.

        For people (an info dict prints as ``3.35``, not ``np.float64(3.35)``); the values are
        the float64 numbers of :meth:`episode_metrics`, unchanged. ``computed``: the episode
        metrics that :meth:`step` gave for a step of this env alone (not computed again).
        """
        if computed is None:
            computed = self.episode_metrics(np.array([env_id]))
        return {k: float(v[0]) for k, v in computed.items()}

    # ------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """The episodes' state as numpy arrays and plain Python data (copies, not views).

        Returns:
            dict with ``"format"`` (``"ComposeCore"``), ``"version"``
            (:attr:`STATE_VERSION`), ``"num_envs"`` (``B``), ``"task"`` (the task geometry
            the buffers depend on: seq_len, steps_per_bar, bars_per_phrase, prompt_bars,
            context_steps, sections, num_drums, num_windows), ``"buffers"`` (each name of
            :attr:`STATE_BUFFERS` -> its array, batch axis first: ``reference`` / ``canvas``
            bool (B, seq_len, drums), ``t`` int64 (B,) the next step to write, ``window_ids``
            int64 (B,), ``_target`` float32 (B, target_size), ``_raw_hist`` float64 and
            ``_closed_hist`` bool (B, seq_len, terms) this episode's terms per step) and
            ``"ref_features"`` (the current windows' reference features, field name ->
            array (B, ...), ``"section"`` a list with one array per section; ``None`` before
            the first reset). The normaliser and the generators are not included: the env
            that owns them saves them.
        """
        ref = None
        if self._ref is not None:
            ref = {name: ([a.copy() for a in value] if name == "section" else value.copy())
                   for name, value in self._ref._asdict().items()}  # fmt: skip
        return {
            "format": "ComposeCore",
            "version": self.STATE_VERSION,
            "num_envs": int(self.num_envs),
            "task": self._task_state(),
            "buffers": {name: getattr(self, name).copy() for name in self.STATE_BUFFERS},
            "ref_features": ref,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict` of a core of the same task.

        Everything is checked before anything is written: on an error the core is unchanged.
        The per-window feature cache is kept (it only depends on the data).

        Args:
            state: the saved state; arrays may be anything ``np.asarray`` takes.

        Raises:
            ValueError: the state does not fit this core: a missing or unknown key, another
                format or version, number of sub-envs or task, or a buffer of another shape
                or dtype or with out-of-range positions; the message names the buffer.
        """
        check_state_header(state, "ComposeCore", self.STATE_VERSION,
                           ("num_envs", "task", "buffers", "ref_features"))  # fmt: skip
        n = state["num_envs"]
        if n != self.num_envs:
            raise ValueError(f"ComposeCore state has {n} sub-envs, the core has {self.num_envs}")
        task = self._task_state()
        saved_task = _mapping(state["task"], "task")
        for key, value in task.items():
            if key not in saved_task:
                raise ValueError(f"ComposeCore state: 'task' is missing key {key!r}")
            saved = saved_task[key]
            if key == "sections" and isinstance(saved, (list, tuple)):
                saved = [list(span) if isinstance(span, (list, tuple)) else span for span in saved]
            if saved != value:
                raise ValueError(
                    f"ComposeCore state was saved for {key}={saved!r}, this env has "
                    f"{key}={value!r}; build the env with the same arguments"
                )
        buffers = _mapping(state["buffers"], "buffers")
        check_keys(buffers, self.STATE_BUFFERS, "ComposeCore state 'buffers'")
        arrays = {
            name: check_state_array(f"buffers[{name!r}]", buffers[name], getattr(self, name))
            for name in self.STATE_BUFFERS
        }
        c = self.config
        t = arrays["t"]
        if ((t < c.prompt_steps) | (t > c.seq_len)).any():
            raise ValueError(
                f"ComposeCore state: buffers['t'] must lie in [{c.prompt_steps}, {c.seq_len}], "
                f"got {t.tolist()}"
            )
        w = arrays["window_ids"]
        if ((w < 0) | (w >= len(self.data.windows))).any():
            raise ValueError(
                f"ComposeCore state: buffers['window_ids'] must lie in "
                f"[0, {len(self.data.windows) - 1}], got {w.tolist()}"
            )
        saved_ref = state["ref_features"]
        ref = None
        if saved_ref is not None:
            saved_ref = _mapping(saved_ref, "ref_features")
            ref = self._ref if self._ref is not None else self._feature_layout()
            check_keys(saved_ref, _RefFeatures._fields, "ComposeCore state 'ref_features'")
            sections = saved_ref["section"]
            if not isinstance(sections, (list, tuple)) or len(sections) != len(ref.section):
                got = len(sections) if isinstance(sections, (list, tuple)) else sections
                raise ValueError(
                    "ComposeCore state: ref_features['section'] must be a list of "
                    f"{len(ref.section)} arrays (one per section), got {got!r}"
                )
            names = [f"ref_features[{k!r}]" for k in _RefFeatures._fields[:5]]
            names += [f"ref_features['section'][{k}]" for k in range(len(ref.section))]
            names += [f"ref_features[{k!r}]" for k in _RefFeatures._fields[6:]]
            saved_arrays = [*(saved_ref[k] for k in _RefFeatures._fields[:5]), *sections,
                            *(saved_ref[k] for k in _RefFeatures._fields[6:])]  # fmt: skip
            checked = [
                check_state_array(name, value, mine)
                for name, value, mine in zip(names, saved_arrays, _feature_arrays(ref))
            ]
        # --- everything fits: write
        for name, value in arrays.items():
            getattr(self, name)[...] = value
        if ref is not None:
            for mine, value in zip(_feature_arrays(ref), checked):
                mine[...] = value
        self._ref = ref

    def _task_state(self) -> dict[str, Any]:
        """The task geometry the buffers depend on, as plain data."""
        c = self.config
        return {
            "seq_len": int(c.seq_len),
            "steps_per_bar": int(c.steps_per_bar),
            "bars_per_phrase": int(c.bars_per_phrase),
            "prompt_bars": int(c.prompt_bars),
            "context_steps": int(c.context_steps),
            "sections": [[int(s), int(e)] for s, e in c.section_spans],
            "num_drums": int(c.num_drums),
            "velocity_levels": int(c.velocity_levels),
            "velocity_bins": None if c.velocity_bins is None else c.velocity_bins.to_dict(),
            "num_windows": len(self.data.windows),
        }


def _episode_metrics(song: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The episode metrics among ``song_metrics`` of a batch: the scalar ones (M,)."""
    return {k: v for k, v in song.items() if np.ndim(v) == 1}


def _feature_arrays(ref: _RefFeatures) -> list[np.ndarray]:
    """The arrays of reference features in a fixed order, sections flattened in."""
    return [*ref[:5], *ref.section, *ref[6:]]


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"state entry {name!r} must be a dict, got {type(value).__name__}")
    return value


# ----------------------------------------------------------------------------- step results


def terms_info(result: StepResult, row: int) -> dict[str, Any]:
    """``info["reward_terms"]``: ``"<term>/raw"``, ``"<term>/norm"``, ``"<term>/closed"``.

    One of each for every term; ``closed`` (bool) says whether the term closed on this step, so
    that a raw 0 of a closed term is told apart from "did not close".
    """
    return dict(
        zip(
            _TERM_KEYS,
            result.raw[row].tolist()
            + result.normalized[row].tolist()
            + result.closed[row].tolist(),
        )
    )


_RAW_KEYS = tuple(f"{name}/raw" for name in TERMS)
_NORM_KEYS = tuple(f"{name}/norm" for name in TERMS)
_CLOSED_KEYS = tuple(f"{name}/closed" for name in TERMS)
_TERM_KEYS = _RAW_KEYS + _NORM_KEYS + _CLOSED_KEYS
