"""The hierarchical drum dataset: windows of drum sequences, their hierarchical views and metrics.

Importing this module does not import torch: the dataset is a plain map-style dataset (an object
with ``__len__`` and ``__getitem__``, which :class:`torch.utils.data.DataLoader` accepts as it is)
and converts to tensors only inside ``__getitem__`` / ``__getitems__``, importing torch there.
With ``as_numpy=True``, or through :meth:`CompleteHierarchicalDrumDataset.window` and
:meth:`CompleteHierarchicalDrumDataset.window_metrics`, torch is never needed.
"""

from __future__ import annotations

import gc
import math
import operator
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dataset import metrics
from dataset.io import OnError, check_num_drums, load_npz_folder, validate_sequence
from dataset.metrics import VELOCITY_SPECS, WindowLayout, WindowTables
from dataset.registry import MetricSpec, registered_metrics

__all__ = ["CompleteHierarchicalDrumDataset"]

Section = tuple[int, int]


@lru_cache(maxsize=1)
def _from_numpy() -> Any:
    """``torch.from_numpy``, imported on first use (importing this module does not import torch)."""
    from torch import from_numpy

    return from_numpy


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch of samples is made.

    A batch is thousands of small, acyclic objects (a tensor per metric per sample). Each 700
    allocations trigger a collection that traverses the young objects, and tensors are slow to
    traverse: paused, the batch costs a fraction (one collection runs after it instead).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int, or a ValueError naming ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _SamplePlan:
    """How one flat float32 vector becomes a sample dict, for windows of one length.

    The vector holds the window, its bar and phrase means, the window's metrics as
    :meth:`dataset.metrics.WindowTables.fill` lays them out, then the song metrics. Its leaves
    are stored by shape, so that each run of adjacent leaves of one shape becomes arrays (or
    tensors) in one call, ``torch.from_numpy(run).unbind(0)``: a tensor per leaf (some 75) is
    still most of a sample's time, but no more than one call into torch per run. Each sample
    gets a fresh vector; its tensors are views of it, as those of a batch were views of the
    batch's arrays.
    """

    def __init__(
        self,
        window: WindowLayout,
        length: int,
        drums: int,
        steps_per_bar: int,
        phrase_len: int,
        song: dict[str, np.ndarray],
    ) -> None:
        # "step", "bar" and "phrase": (where, shape, steps averaged)
        self.arrays: list[tuple[slice, tuple[int, int], int]] = []
        offset = 0
        for size in (1, steps_per_bar, phrase_len):
            shape = (length // size, drums)
            self.arrays.append((slice(offset, offset + math.prod(shape)), shape, size))
            offset += math.prod(shape)
        self.window = slice(offset, offset + window.size)
        offset += window.size
        # song leaves: the scalars, then each other shape's, in dict order within a shape
        song_shapes = {k: np.shape(v) for k, v in song.items()}
        shapes_seen = list(dict.fromkeys([(), *song_shapes.values()]))
        self.song_keys = [k for shape in shapes_seen for k, v in song_shapes.items() if v == shape]
        song_offsets = {}
        start = offset
        for k in self.song_keys:
            song_offsets[k] = offset
            offset += math.prod(song_shapes[k])
        self.song = slice(start, offset)
        self.size = offset
        # every leaf, in dict order: the window's, then the song's
        shapes = [*window.shapes, *(song_shapes[k] for k in song)]
        offsets = [self.window.start + o for o in window.offsets] + [song_offsets[k] for k in song]
        by_offset = sorted(range(len(offsets)), key=offsets.__getitem__)
        # runs of adjacent leaves of one shape
        self.groups: list[tuple[int, int, tuple[int, ...]]] = []  # (offset, count, shape)
        for leaf in by_offset:
            o, shape = offsets[leaf], shapes[leaf]
            if self.groups:
                g_off, g_count, g_shape = self.groups[-1]
                if g_shape == shape and g_off + g_count * math.prod(shape) == o:
                    self.groups[-1] = (g_off, g_count + 1, shape)
                    continue
            self.groups.append((o, 1, shape))
        # (start, end, shape of the run, one leaf only) of each run, for sample()
        self.runs = [
            (o, o + count * math.prod(shape), shape if count == 1 else (count, *shape), count == 1)
            for o, count, shape in self.groups
        ]
        position = {leaf: i for i, leaf in enumerate(by_offset)}  # leaf -> index in group order
        # the dicts: {level or section index: (keys, their leaves' positions)}
        paths = [*window.paths, *(("song", k) for k in song)]
        containers: dict[Any, tuple[list[str], list[int]]] = {}
        for leaf, path in enumerate(paths):
            keys, where = containers.setdefault(path[:-1], ([], []))
            keys.append(path[-1])
            where.append(position[leaf])
        # (level, whether a section, keys, getter of its leaves), in dict order
        self.containers = [
            (key[0], len(key) > 1, tuple(keys), operator.itemgetter(*where))
            for key, (keys, where) in containers.items()
        ]

    def song_block(self, song: dict[str, np.ndarray]) -> np.ndarray:
        """The song part of the vector, float32 (song size,).

        From song metrics of the names and shapes the plan was made for.
        """
        return np.concatenate([np.ravel(song[k]) for k in self.song_keys]).astype(np.float32)

    def fill_arrays(
        self, buf: np.ndarray, window: np.ndarray, tables: WindowTables, start: int
    ) -> None:
        """Write the window, its bar means and its phrase means into ``buf``.

        The means are read from the tables (:meth:`dataset.metrics.WindowTables.unit_means`).
        """
        (where, shape, _), *units = self.arrays
        buf[where].reshape(shape)[...] = window
        for where, shape, size in units:
            buf[where].reshape(shape)[...] = tables.unit_means(start, size)

    def sample(self, buf: np.ndarray, as_numpy: bool) -> dict[str, Any]:
        """The sample dict of a filled vector ``buf``, float32 (size,).

        Its tensors (or arrays) are views of ``buf``.
        """
        leaves: list[Any] = []
        arrays = [buf[where].reshape(shape) for where, shape, _ in self.arrays]
        if as_numpy:
            for lo, hi, shape, single in self.runs:
                part = buf[lo:hi].reshape(shape)
                if single:
                    leaves.append(part)
                else:  # part[j, ...]: 0-d arrays (not numpy scalars) for scalars
                    leaves.extend(part[j, ...] for j in range(shape[0]))
        else:
            from_numpy = _from_numpy()
            arrays = [from_numpy(a) for a in arrays]
            for lo, hi, shape, single in self.runs:
                part = from_numpy(buf[lo:hi].reshape(shape))
                if single:
                    leaves.append(part)
                else:
                    leaves.extend(part.unbind(0))
        metrics_: dict[str, Any] = {"step": None, "bar": None, "phrase": None, "section": []}
        sections = metrics_["section"]
        for level, in_section, keys, take in self.containers:
            d = dict(zip(keys, take(leaves))) if len(keys) > 1 else {keys[0]: take(leaves)}
            if in_section:
                sections.append(d)
            else:
                metrics_[level] = d
        return {"step": arrays[0], "bar": arrays[1], "phrase": arrays[2], "metrics": metrics_}


_Prepared = tuple[WindowTables, _SamplePlan, np.ndarray]
"""A sequence's window tables, the plan of its samples and its song metrics vector."""


class CompleteHierarchicalDrumDataset:
    """Fixed-length windows of drum sequences, with hierarchical views and rhythm metrics.

    ## Description

    The corpus is every ``*.npz`` file under ``npz_dir`` (recursively, sorted; see
    :func:`dataset.io.load_npz_folder`), or the in-memory ``sequences``. Each sequence is a
    float32 array ``(time_steps, num_drums)`` with values in [0, 1]; a hit is a value > 0. One
    *sample* is a window of ``seq_len`` consecutive steps of one sequence:

    * windows start at every step ``0, stride, 2 * stride, ... <= T - seq_len`` of a sequence of
      ``T`` steps; the last start ``T - seq_len`` is included when ``stride`` divides
      ``T - seq_len`` (always with the default ``stride=1``), so a sequence gives
      ``(T - seq_len) // stride + 1`` samples;
    * a sequence shorter than ``seq_len`` gives one sample of its own length ``T`` (the collate
      function of :mod:`dataset.loader` pads it and marks the padding in a mask).

    Windows are never materialised: ``sample_indices`` holds ``(sequence_idx, start_idx)`` pairs
    and a window is sliced when it is asked for, so memory is the corpus plus ``16 * N`` bytes.

    ## Sample

    ``dataset[i]`` is a dict, exactly the seed's (float32 torch tensors, or numpy arrays with
    ``as_numpy=True``):

    | key | shape | meaning |
    |---|---|---|
    | ``"step"`` | ``(L, D)`` | the window, ``L = min(seq_len, T)`` steps, ``D`` drums |
    | ``"bar"`` | ``(L // steps_per_bar, D)`` | :meth:`_aggregate`: each complete bar's mean |
    | ``"phrase"`` | ``(L // phrase_len, D)`` | :meth:`_aggregate`: each complete phrase's mean |
    | ``"metrics"`` | nested dict | ``{"step": {...}, "bar": {...}, "phrase": {...},
    "section": [...], "song": {...}}`` |

    ``"bar"`` and ``"phrase"`` average the window's values over each complete unit (the seed's
    ``_aggregate``): for 0/1 hits, the fraction of the unit's steps on which each drum hits. A
    trailing partial bar (or phrase) is left out of them, but stays in ``"step"`` and in every
    metric. (The step grid of a bar is ``sample["step"][: n * steps_per_bar].reshape(n,
    steps_per_bar, D)``.)

    ``"metrics"`` holds, by level, the seed's metrics under the seed's names, the project's under
    names of their own, the registered metrics (:mod:`dataset.registry`; built in:
    ``swing``, ``polyrhythm``, ``drum_periods``), then the velocity metrics (see below); every
    hit metric's key and definition is listed in
    :func:`dataset.metrics.level_metrics` (``"step"``, ``"bar"``, ``"phrase"``: they describe the
    window; ``"section"``: a list with one dict per section of the window, the seed's
    ``avg_hits``, ``drum_density``, ``max_hits``, ``dense_frac`` and more) and
    :func:`dataset.metrics.song_level_metrics` (``"song"``: the whole source sequence, the
    seed's ``avg_hits``, ``drum_density``, ``max_hits``, ``step_entropy``, ``phrase_entropy``,
    ``ngram_diversity`` and more; equal for every window of one file, computed once per file
    and cached). Scalars are 0-d; per-drum metrics have shape ``(D,)``, ``(D, D)`` or
    ``(D, 16)``; ``metrics["bar"]["density"]`` has one value per complete bar and
    ``metrics["phrase"]["phrase_structure"]`` is ``(phrases, bars_per_phrase)``.

    ## Velocity metrics

    Every metric above works on hits (a value > 0). With ``velocity_metrics=True`` the dict
    also describes the dynamics, the values read as velocities, exactly, after the registered
    metrics of each level (:data:`dataset.metrics.VELOCITY_SPECS`,
    :data:`dataset.registry.VELOCITY_KEYS`). Off by default: the dict stays the seed's (and
    ``dataset[i]`` as fast) unless they are asked for.

    * ``velocity_mean``, ``velocity_spread`` (``"bar"`` and ``"song"``, ``(D,)``): mean and
      population standard deviation of each drum's hit velocities, 0 for a drum without hits
      (:func:`dataset.metrics.velocity_stats`);
    * ``accent_pattern`` (``"bar"`` and ``"song"``, ``(steps_per_bar, D)``): mean velocity of
      each drum's hits at each position in the bar, 0 where it has none
      (:func:`dataset.metrics.accent_pattern`);
    * ``accent_contrast`` (``"bar"`` and ``"song"``, ``(D,)``): between-position standard
      deviation of each drum's hit velocities (:func:`dataset.metrics.accent_contrast`);
    * ``dynamic_range`` (``"bar"``, ``(bars,)``): loudest minus softest hit of each complete
      bar, 0 below two hits (:func:`dataset.metrics.bar_dynamic_range`);
    * ``mean_dynamic_range`` (``"song"``, ``()``): its mean over the complete bars with two hits
      or more (:func:`dataset.metrics.mean_dynamic_range`).

    As for the other ``"bar"`` metrics, the ``"bar"`` ones describe the window. Binary data gives
    mean 1 for every drum that hits and 0 spread, contrast and range.

    ## Sections

    ``sections`` is a list of ``(start, end)`` step indices, half-open and relative to the
    window, clipped to it (a section left empty by clipping is dropped). ``None``: one section
    per two phrases, ``(0, 2 * phrase_len), (2 * phrase_len, 4 * phrase_len), ...``, the last
    one clipped to the window. ``metrics["section"][i]`` describes ``section_spans(L)[i]``
    (:meth:`section_spans`).

    ## Augmentation

    With ``augment=True`` each window is rolled along time (``np.roll``, axis 0) by a shift drawn
    uniformly from ``0 .. L - 1`` by ``np.random.default_rng([seed, epoch, index])``: the same
    ``seed``, epoch (:meth:`set_epoch`) and index always give the same sample, whatever the
    number of DataLoader workers or the order of the indices. Window metrics describe the rolled
    window. Call :meth:`set_epoch` before each epoch for fresh shifts (with
    ``persistent_workers=True`` the workers keep the epoch they were started with).

    ## Throughput

    The first time a window of a sequence is asked for, the dataset builds the sequence's
    :class:`dataset.metrics.WindowTables` (prefix sums and per-window values from which every
    window's metrics are read in some twenty numpy calls; some 250 bytes per window and 200 per
    step with the defaults, for 9 drums), and keeps them. A window that is not rolled is then
    read from them, ``dataset[i]`` as fast as :meth:`__getitems__`; rolled windows
    (``augment=True``) are computed by :func:`dataset.metrics.level_metrics`, batch-wise in
    :meth:`__getitems__`. Either way ``dataset.__getitems__(idx) == [dataset[i] for i in idx]``
    and the numbers are those of :func:`dataset.metrics.level_metrics`. The tables are not
    pickled: each DataLoader worker builds those of the sequences it reads.

    ## Registered metrics

    The dataset takes a snapshot of :func:`dataset.registry.registered_metrics` when it is
    built (``metric_specs``, the velocity metrics appended): metrics registered later are not
    in its samples, and its DataLoader workers compute the same ones as the main process.

    Args:
        npz_dir: folder of ``.npz`` files, or ``None`` with ``sequences``.
        seq_len: window length, steps (``>= 1``).
        steps_per_bar: steps in one bar (16 = 16th notes in 4/4).
        bars_per_phrase: bars in one phrase.
        sections: section spans relative to the window, see above; ``None`` for the default.
        augment: roll each window by a seeded random shift.
        fast_threshold: shortest run of consecutive hits of one drum, in steps, that counts as a
            fast pattern (see :func:`dataset.metrics.fast_patterns`).
        stride: step between consecutive window starts, steps (``>= 1``).
        on_error: ``"raise"`` or ``"skip"`` bad files (see :func:`dataset.io.load_npz_folder`);
            in-memory ``sequences`` are always checked with ``"raise"``.
        seed: non-negative seed of the augmentation.
        sequences: in-memory corpus (used when ``npz_dir`` is ``None``): arrays
            ``(time_steps, num_drums)``, values in [0, 1]; they are copied.
        key: name of the array in each ``.npz`` archive.
        as_numpy: return numpy arrays instead of torch tensors (torch is then never imported).
        velocity_metrics: add the velocity metrics to the metrics dict (see above; some 80
            microseconds more per sample of 512 steps).

    Raises:
        dataset.io.DataError: for bad files or sequences (the message names them).
        ValueError: for invalid arguments (the message names the argument).

    Examples:
        >>> seqs = [np.eye(4, 2, dtype=np.float32), np.ones((6, 2), np.float32)]
        >>> ds = CompleteHierarchicalDrumDataset(None, seq_len=5, steps_per_bar=2,
        ...                                      bars_per_phrase=2, sequences=seqs, as_numpy=True)
        >>> ds.sample_indices.tolist()
        [[0, 0], [1, 0], [1, 1]]
        >>> sample = ds[2]
        >>> sample["step"].shape, sample["bar"].shape, sample["phrase"].shape
        ((5, 2), (2, 2), (1, 2))
        >>> sample["bar"].tolist(), float(sample["metrics"]["song"]["ngram_diversity"])
        ([[1.0, 1.0], [1.0, 1.0]], 1.0)
        >>> sorted(sample["metrics"]["section"][0])[:4]
        ['avg_hits', 'dense_frac', 'drum_density', 'max_hits']
    """

    files: list[Path]
    """Source file of each sequence (empty for an in-memory corpus)."""
    names: list[str]
    """Name of each sequence: its file path, or ``"sequences[i]"``."""
    sequences: list[np.ndarray]
    """Read-only float32 arrays ``(time_steps, num_drums)``, values in [0, 1]."""
    sample_indices: np.ndarray
    """int64 array ``(N, 2)``: ``(sequence_idx, start_idx)`` of each sample, in order."""
    metric_specs: dict[str, MetricSpec]
    """The registered metrics it computes (a snapshot taken when it was built), then the
    velocity metrics (:data:`dataset.metrics.VELOCITY_SPECS`) with ``velocity_metrics=True``."""
    velocity_metrics: bool
    """Whether its metrics dict holds the velocity metrics (see above)."""

    def __init__(
        self,
        npz_dir: str | Path | None,
        seq_len: int = 512,
        steps_per_bar: int = 16,
        bars_per_phrase: int = 4,
        sections: Sequence[Section] | None = None,
        augment: bool = False,
        fast_threshold: int = 4,
        *,
        stride: int = 1,
        on_error: OnError = "raise",
        seed: int = 0,
        sequences: Sequence[np.ndarray] | None = None,
        key: str = "sequence",
        as_numpy: bool = False,
        velocity_metrics: bool = False,
    ) -> None:
        self.seq_len = _check_int(seq_len, "seq_len", 1)
        self.steps_per_bar = _check_int(steps_per_bar, "steps_per_bar", 1)
        self.bars_per_phrase = _check_int(bars_per_phrase, "bars_per_phrase", 1)
        self.phrase_len = self.steps_per_bar * self.bars_per_phrase
        self.fast_threshold = _check_int(fast_threshold, "fast_threshold", 1)
        self.stride = _check_int(stride, "stride", 1)
        self.seed = _check_int(seed, "seed", 0)
        self.augment = bool(augment)
        self.as_numpy = bool(as_numpy)
        self.sections = self._check_sections(sections)
        self.epoch = 0

        if (npz_dir is None) == (sequences is None):
            raise ValueError("give exactly one of npz_dir (a folder) and sequences= (arrays)")
        if npz_dir is not None:
            # a file that records bars of another length than steps_per_bar is refused (named)
            corpus = load_npz_folder(
                npz_dir, on_error=on_error, key=key, steps_per_bar=steps_per_bar
            )
            self.files = list(corpus.files)
            self.names = [str(f) for f in self.files]
            seqs = corpus.sequences
        else:
            if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
                raise ValueError("sequences must be a list of 2-D arrays, got one 2-D array")
            assert sequences is not None  # exactly one of the two, checked above
            self.files = []
            self.names = [f"sequences[{i}]" for i in range(len(sequences))]
            seqs = [
                np.array(validate_sequence(s, n), dtype=np.float32, copy=True)
                for s, n in zip(sequences, self.names, strict=True)
            ]
        self.num_drums = check_num_drums(self.names, seqs)
        for s in seqs:
            s.setflags(write=False)  # windows are views: keep the corpus safe from them
        self.sequences = seqs
        self.lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        self._window_lengths = [min(self.seq_len, len(s)) for s in seqs]  # L of each sequence
        self.sample_indices = self._build_index()
        self.velocity_metrics = bool(velocity_metrics)
        self.metric_specs = registered_metrics()
        if self.velocity_metrics:
            self.metric_specs.update(VELOCITY_SPECS)
        self._song_cache: list[dict[str, np.ndarray] | None] = [None] * len(seqs)
        self._reset_tables()

    def _reset_tables(self) -> None:
        """Forget the window tables (:meth:`_table_sample`): they are rebuilt when needed."""
        # per sequence: (tables, plan, song vector), None before use, False if not supported
        self._tables: list[_Prepared | Literal[False] | None] = [None] * len(self.sequences)
        self._plans: dict[tuple[Any, ...], _SamplePlan] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the window tables (workers rebuild them, file by file, when used)."""
        state = self.__dict__.copy()
        for k in ("_tables", "_plans"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_tables()

    # ------------------------------------------------------------------------- indexing

    @staticmethod
    def _check_sections(sections: Sequence[Section] | None) -> tuple[Section, ...] | None:
        if sections is None:
            return None
        out = []
        for span in sections:
            try:
                start, end = (operator.index(v) for v in span)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"sections must be (start, end) pairs of integer steps, got {span!r}"
                ) from exc
            if end < start:
                raise ValueError(f"sections: end < start in {span!r}")
            out.append((int(start), int(end)))
        return tuple(out)

    def _build_index(self) -> np.ndarray:
        parts = []
        for i, length in enumerate(self.lengths):
            starts = np.arange(0, max(int(length) - self.seq_len, 0) + 1, self.stride)
            parts.append(np.stack([np.full_like(starts, i), starts], axis=1))
        return np.concatenate(parts).astype(np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        """Number of samples ``N``."""
        return len(self.sample_indices)

    def _index(self, idx: Any) -> int:
        try:
            i = operator.index(idx)
        except TypeError:
            raise TypeError(f"index must be an integer, got {type(idx).__name__}") from None
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for dataset of {n} samples")
        return i % n

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that, with ``seed`` and the index, draws each augmentation shift.

        Args:
            epoch: non-negative epoch number.
        """
        self.epoch = _check_int(epoch, "epoch", 0)

    def _shift(self, i: int, length: int) -> int:
        """Augmentation shift of sample ``i`` (of ``length`` steps) at the current epoch, steps."""
        if length <= 1:
            return 0
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return int(rng.integers(length))

    def _window(self, i: int, augment: bool) -> np.ndarray:
        seq_idx, start = self.sample_indices[i]
        win = self.sequences[seq_idx][start : start + self.seq_len]
        if augment:
            win = np.roll(win, self._shift(i, len(win)), axis=0)
        return win

    def window(self, idx: int) -> np.ndarray:
        """The raw window of a sample (no augmentation).

        Args:
            idx: sample index, ``-N <= idx < N``.

        Returns:
            read-only float32 array ``(L, D)``, a view of the corpus, ``L = min(seq_len, T)``.
        """
        return self._window(self._index(idx), augment=False)

    def window_metrics(self, idx: int) -> dict[str, Any]:
        """The ``"metrics"`` of a sample's raw window (no augmentation), as numpy arrays.

        Args:
            idx: sample index, ``-N <= idx < N``.

        Returns:
            ``{"step", "bar", "phrase", "section", "song"}`` as in a sample, with float64
            arrays (the ``"song"`` arrays are the cached, read-only ones: do not modify).
        """
        i = self._index(idx)
        out = self._level_metrics(self._window(i, augment=False))
        out["song"] = self.sequence_metrics(self.sample_indices[i, 0])
        return out

    def sequence_metrics(self, sequence_idx: int) -> dict[str, np.ndarray]:
        """The ``"song"`` metrics of source sequence ``sequence_idx``, computed once and cached.

        Args:
            sequence_idx: index into :attr:`sequences`.

        Returns:
            :meth:`_song_metrics` of the sequence: dict of read-only float64 arrays (shared by
            every caller: do not modify).
        """
        i = int(sequence_idx)
        cached = self._song_cache[i]
        if cached is None:
            cached = {
                k: np.asarray(v, np.float64)
                for k, v in self._song_metrics(self.sequences[i]).items()
            }
            for v in cached.values():
                v.setflags(write=False)
            self._song_cache[i] = cached
        return cached

    # ------------------------------------------------------------------------- metrics
    # The seed's metric methods, each ``_metric(seq)`` of a sequence ``seq``: an array
    # (steps, drums), or (..., steps, drums) where the metric has batch axes. Thin calls into
    # dataset.metrics with this dataset's settings; the metrics are defined (and documented)
    # there only, under the names in brackets.

    def _hit_density(self, seq: np.ndarray) -> metrics.HitDensity:
        """``avg_hits``, ``drum_density``, ``max_hits`` (:func:`~dataset.metrics.hit_density`)."""
        return metrics.hit_density(seq)

    def _fraction_dense_bars(self, seq: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Fraction of bars above ``threshold`` hits per step, default ``D / 2``.

        (:func:`~dataset.metrics.fraction_bars_above`.)
        """
        return metrics.fraction_bars_above(seq, self.steps_per_bar, threshold)

    def _ioi_stats(self, seq: np.ndarray) -> metrics.IOIStats:
        """Mean, variance, histogram of each drum's IOIs (:func:`~dataset.metrics.ioi_stats`)."""
        return metrics.ioi_stats(seq)

    def _co_occurrence(self, seq: np.ndarray) -> np.ndarray:
        """Fraction of steps with > 1 drum (:func:`~dataset.metrics.co_occurrence_fraction`)."""
        return metrics.co_occurrence_fraction(seq)

    def _n_grams(self, seq: np.ndarray, n: int = 4) -> Counter[tuple[int, ...]]:
        """``Counter`` of the n-step patterns (:func:`~dataset.metrics.n_gram_counter`)."""
        return metrics.n_gram_counter(seq, n)

    def _fast_patterns(self, seq: np.ndarray) -> np.ndarray:
        """Hits close to the drum's last one (:func:`~dataset.metrics.fast_hits`)."""
        return metrics.fast_hits(seq, self.fast_threshold)

    def _transitions(self, seq: np.ndarray) -> np.ndarray:
        """Drum-to-drum, consecutive steps (:func:`~dataset.metrics.step_transitions`)."""
        return metrics.step_transitions(seq)

    def _syncopation(self, seq: np.ndarray) -> np.ndarray:
        """Share of hits not on a bar's first step (:func:`~dataset.metrics.syncopation`)."""
        return metrics.syncopation(seq, self.steps_per_bar)

    def _phrase_structure(self, seq: np.ndarray) -> np.ndarray:
        """Hits per bar of each phrase (:func:`~dataset.metrics.phrase_hits_per_bar`)."""
        return metrics.phrase_hits_per_bar(seq, self.steps_per_bar, self.bars_per_phrase)

    def _section_metrics(self, seq: np.ndarray) -> dict[str, np.ndarray]:
        """The sections of ``seq`` (:func:`~dataset.metrics.section_level_metrics`)."""
        return metrics.section_level_metrics(
            seq, self._sections(), self.steps_per_bar, self.bars_per_phrase, self.metric_specs
        )

    def _song_metrics(self, seq: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics of a whole sequence (:func:`~dataset.metrics.song_level_metrics`).

        :meth:`sequence_metrics` caches them per source sequence.
        """
        return metrics.song_level_metrics(
            seq, self.steps_per_bar, self.bars_per_phrase, self.fast_threshold, self.metric_specs
        )

    def _aggregate(self, seq: np.ndarray, step_size: int) -> np.ndarray:
        """Mean of each complete unit of steps (:func:`~dataset.metrics.aggregate`)."""
        return metrics.aggregate(seq, step_size)

    def _sections(self) -> list[tuple[int, int]] | None:
        return None if self.sections is None else list(self.sections)

    def _level_metrics(self, seq: np.ndarray) -> dict[str, Any]:
        """:func:`dataset.metrics.level_metrics` of ``seq`` (..., steps, drums), batched."""
        return metrics.level_metrics(
            seq,
            self.steps_per_bar,
            self.bars_per_phrase,
            self._sections(),
            self.fast_threshold,
            self.metric_specs,
        )

    # ------------------------------------------------------------------------- samples

    def __getitem__(self, idx: int) -> dict[str, Any]:
        """One sample: ``{"step", "bar", "phrase", "metrics"}`` (see the class docstring).

        A window that is not rolled (``augment=False``, or a shift of 0) is read from its
        sequence's window tables (:meth:`_table_sample`); a rolled one goes through
        :func:`dataset.metrics.level_metrics`.
        """
        i = self._index(idx)
        seq_idx, start = self.sample_indices[i].tolist()
        length = self._window_lengths[seq_idx]
        shift = self._shift(i, length) if self.augment else 0
        if not shift:
            sample = self._table_sample(seq_idx, start, length)
            if sample is not None:
                return sample
        out: list[dict[str, Any] | None] = [None]
        self._batch_samples({0: (seq_idx, self._rolled(seq_idx, start, length, shift))}, out)
        return out[0]  # type: ignore[return-value]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Several samples, equal to ``[self[i] for i in indices]``.

        Windows that are not rolled are read from their sequences' window tables, as in
        :meth:`__getitem__`. Rolled windows are grouped by length and each group's window
        metrics are computed in one vectorised call of :func:`dataset.metrics.level_metrics`
        over a ``(B, L, D)`` stack. :class:`torch.utils.data.DataLoader` calls this with each
        batch of indices.

        Args:
            indices: sample indices.

        Returns:
            list of sample dicts, in the order of ``indices``.
        """
        out: list[dict[str, Any] | None] = []
        rolled: dict[int, tuple[int, np.ndarray]] = {}  # position -> (sequence, window)
        with _gc_paused():
            for pos, idx in enumerate(indices):
                i = self._index(idx)
                seq_idx, start = self.sample_indices[i].tolist()
                length = self._window_lengths[seq_idx]
                shift = self._shift(i, length) if self.augment else 0
                sample = None if shift else self._table_sample(seq_idx, start, length)
                if sample is None:
                    rolled[pos] = (seq_idx, self._rolled(seq_idx, start, length, shift))
                out.append(sample)
            if rolled:
                self._batch_samples(rolled, out)
        return out  # type: ignore[return-value]

    def _rolled(self, seq_idx: int, start: int, length: int, shift: int) -> np.ndarray:
        """Window ``[start, start + length)`` of a sequence rolled by ``shift`` steps."""
        window = self.sequences[seq_idx][start : start + length]
        return np.roll(window, shift, axis=0) if shift else window

    def _batch_samples(
        self, windows: dict[int, tuple[int, np.ndarray]], out: list[dict[str, Any] | None]
    ) -> None:
        """Samples of windows, batch-wise, written into ``out``.

        ``windows`` maps a position in ``out`` to the window's sequence index and the window
        (steps, drums).
        """
        groups: dict[int, list[int]] = {}
        for pos, (_, win) in windows.items():
            groups.setdefault(len(win), []).append(pos)
        for positions in groups.values():
            batch = np.stack([windows[p][1] for p in positions])  # (B, L, D) float32, a copy
            song = [self.sequence_metrics(windows[p][0]) for p in positions]
            samples = self._make_samples(batch, song)
            for p, sample in zip(positions, samples, strict=True):
                out[p] = sample

    def _table_sample(self, seq_idx: int, start: int, length: int) -> dict[str, Any] | None:
        """The sample of window ``[start, start + length)`` of a sequence, from its tables.

        The window's metrics are read from the :class:`dataset.metrics.WindowTables` of the
        sequence, the song's from :meth:`sequence_metrics` (both built on first use, then
        kept); everything goes into one fresh float32 vector that the sample's tensors (or
        arrays) are views of (:class:`_SamplePlan`). ``None`` where the tables do not apply
        (more drums than they support): then the sample is computed from the window.
        """
        prepared = self._tables[seq_idx]
        if prepared is None:
            prepared = self._prepare_tables(seq_idx, length)
        if prepared is False:
            return None
        tables, plan, song = prepared
        buf = np.empty(plan.size, dtype=np.float32)
        plan.fill_arrays(buf, self.sequences[seq_idx][start : start + length], tables, start)
        tables.fill(start, buf[plan.window])
        buf[plan.song] = song
        return plan.sample(buf, self.as_numpy)

    def _prepare_tables(self, seq_idx: int, length: int) -> _Prepared | Literal[False]:
        """Build (and keep) a sequence's window tables, sample plan and song metrics vector.

        False (kept too) where the tables do not apply.
        """
        prepared: _Prepared | Literal[False] = False
        if WindowTables.supports(self.num_drums, length):
            tables = WindowTables(
                self.sequences[seq_idx], length, self.stride, self.steps_per_bar,
                self.bars_per_phrase, self._sections(), self.fast_threshold, self.metric_specs,
            )  # fmt: skip
            song = self.sequence_metrics(seq_idx)
            key = (length, tuple((k, np.shape(v)) for k, v in song.items()))
            plan = self._plans.get(key)
            if plan is None:  # one per window length and song metric shapes: shared
                plan = self._plans[key] = _SamplePlan(
                    tables.layout, length, self.num_drums, self.steps_per_bar, self.phrase_len,
                    song,
                )  # fmt: skip
            prepared = (tables, plan, plan.song_block(song))
        self._tables[seq_idx] = prepared
        return prepared

    def _make_samples(
        self, batch: np.ndarray, song: list[dict[str, np.ndarray]]
    ) -> list[dict[str, Any]]:
        """Samples of a stack of equal-length windows ``batch`` (B, L, D) and their song metrics."""
        b = batch.shape[0]
        arrays = {
            "step": batch,
            "bar": self._aggregate(batch, self.steps_per_bar).astype(np.float32),
            "phrase": self._aggregate(batch, self.phrase_len).astype(np.float32),
        }
        levels = self._level_metrics(batch)
        # The leaves of the metrics dict, container by container (step, bar, phrase, each
        # section, song), each an array with the batch axis first; split per sample below.
        containers = [levels["step"], levels["bar"], levels["phrase"], *levels["section"]]
        song_keys = list(song[0])
        keys = [list(c) for c in containers] + [song_keys]
        values = [v for c in containers for v in c.values()]
        values += [np.stack([m[k] for m in song]) for k in song_keys]
        # always a fresh, writable, C-ordered copy: tensors must not alias metrics' arrays
        values = [np.array(v, dtype=np.float32, order="C") for v in values]
        bounds = np.cumsum([0] + [len(k) for k in keys]).tolist()
        spans = list(zip(keys, bounds[:-1], bounds[1:], strict=True))
        samples = []
        split: dict[str, Any]
        with _gc_paused():
            if self.as_numpy:
                # ``v[j, ...]`` keeps 0-d arrays (not numpy scalars) for scalar metrics
                split = {k: [v[j, ...] for j in range(b)] for k, v in arrays.items()}
                rows = zip(*[[v[j, ...] for j in range(b)] for v in values], strict=True)
            else:
                import torch

                split = {k: torch.from_numpy(v).unbind(0) for k, v in arrays.items()}
                rows = zip(*[torch.from_numpy(v).unbind(0) for v in values], strict=True)
            for j, row in enumerate(rows):
                parts = [dict(zip(k, row[lo:hi], strict=True)) for k, lo, hi in spans]
                metrics_: dict[str, Any] = {"step": parts[0], "bar": parts[1], "phrase": parts[2]}
                metrics_["section"] = parts[3:-1]
                metrics_["song"] = parts[-1]
                samples.append(
                    {"step": split["step"][j], "bar": split["bar"][j],
                     "phrase": split["phrase"][j], "metrics": metrics_}
                )  # fmt: skip
        return samples

    @property
    def tables_nbytes(self) -> int:
        """Bytes held by the window tables built so far (see the class docstring)."""
        return sum(p[0].nbytes for p in self._tables if p)

    def section_spans(self, length: int) -> list[tuple[int, int]]:
        """The sections of a window of ``length`` steps: ``metrics["section"][i]`` is span ``i``.

        Args:
            length: window length, steps.

        Returns:
            ``(start, end)`` step indices relative to the window, clipped, empty ones dropped
            (see the class docstring).
        """
        return metrics.section_spans(length, self._sections(), self.phrase_len)

    # ------------------------------------------------------------------------- statistics

    def summary(self, bpm: float | None = None, beats_per_bar: int = 4) -> dict[str, Any]:
        """Corpus statistics, for the ``drum-env stats`` table.

        Args:
            bpm: tempo in beats per minute, if known: adds ``"hours"``. Without it the duration
                is unknown and ``"hours"`` is left out.
            beats_per_bar: beats in one bar, to convert steps to beats with ``bpm``.

        Returns:
            dict with ``num_files`` (0 for an in-memory corpus), ``num_sequences``,
            ``num_drums``, ``num_samples``, ``seq_len``, ``total_steps``, ``total_bars``,
            ``min_length_steps``, ``mean_length_steps``, ``max_length_steps``, ``hours`` (only
            with ``bpm``), ``drum_density`` (float64 array ``(D,)``: fraction of all steps on
            which each drum hits), ``velocity_mean`` and ``velocity_spread`` (float64 arrays
            ``(D,)``: :func:`dataset.metrics.velocity_stats` of all the corpus's hits of each
            drum, pooled; 0 for a drum that never hits), and the mean over sequences of every
            scalar metric of the ``"song"`` level (:meth:`sequence_metrics`, registered and
            velocity metrics included; keys ``"song/<name>"``, floats).
        """
        total = int(self.lengths.sum())
        hits = np.zeros(self.num_drums, dtype=np.int64)
        for s in self.sequences:
            hits += (s > 0).sum(axis=0)
        out: dict[str, Any] = {
            "num_files": len(self.files),
            "num_sequences": len(self.sequences),
            "num_drums": self.num_drums,
            "num_samples": len(self),
            "seq_len": self.seq_len,
            "total_steps": total,
            "total_bars": total / self.steps_per_bar,
            "min_length_steps": int(self.lengths.min()),
            "mean_length_steps": float(self.lengths.mean()),
            "max_length_steps": int(self.lengths.max()),
        }
        if bpm is not None:
            if not bpm > 0:
                raise ValueError(f"bpm must be > 0, got {bpm!r}")
            steps_per_beat = self.steps_per_bar / _check_int(beats_per_bar, "beats_per_bar", 1)
            out["hours"] = total / steps_per_beat * 60.0 / bpm / 3600.0
        out["drum_density"] = hits / total
        pooled = metrics.velocity_stats(np.concatenate(self.sequences))
        out["velocity_mean"], out["velocity_spread"] = pooled.mean, pooled.spread
        songs = [self.sequence_metrics(i) for i in range(len(self.sequences))]
        for k, v in songs[0].items():
            if v.ndim == 0:
                out[f"song/{k}"] = float(np.mean([s[k] for s in songs]))
        return out

    def __repr__(self) -> str:
        source = f"{len(self.files)} files" if self.files else f"{len(self.sequences)} sequences"
        return (
            f"{type(self).__name__}({source}, num_drums={self.num_drums}, seq_len={self.seq_len}, "
            f"stride={self.stride}, samples={len(self)}, augment={self.augment})"
        )
