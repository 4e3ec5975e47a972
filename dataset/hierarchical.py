"""The hierarchical drum dataset: windows of drum sequences, their hierarchical views and metrics.

Importing this module does not import torch: the dataset is a plain map-style dataset (an object
with ``__len__`` and ``__getitem__``, which :class:`torch.utils.data.DataLoader` accepts as it is)
and converts to tensors only inside ``__getitem__`` / ``__getitems__``, importing torch there.
With ``as_numpy=True``, or through :meth:`CompleteHierarchicalDrumDataset.window` and
:meth:`CompleteHierarchicalDrumDataset.window_metrics`, torch is never needed.
"""

from __future__ import annotations

import gc
import operator
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from dataset import metrics
from dataset.io import OnError, check_num_drums, load_npz_folder, validate_sequence
from dataset.registry import MetricSpec, registered_metrics

__all__ = ["CompleteHierarchicalDrumDataset"]

Section = tuple[int, int]


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
    names of their own, and the registered metrics (:mod:`dataset.registry`; built in:
    ``swing``, ``polyrhythm``, ``drum_periods``); every key and definition is listed in
    :func:`dataset.metrics.level_metrics` (``"step"``, ``"bar"``, ``"phrase"``: they describe the
    window; ``"section"``: a list with one dict per section of the window, the seed's
    ``avg_hits``, ``drum_density``, ``max_hits``, ``dense_frac`` and more) and
    :func:`dataset.metrics.song_level_metrics` (``"song"``: the whole source sequence, the
    seed's ``avg_hits``, ``drum_density``, ``max_hits``, ``step_entropy``, ``phrase_entropy``,
    ``ngram_diversity`` and more; equal for every window of one file, computed once per file
    and cached). Scalars are 0-d; per-drum metrics have shape ``(D,)``, ``(D, D)`` or
    ``(D, 16)``; ``metrics["bar"]["density"]`` has one value per complete bar and
    ``metrics["phrase"]["phrase_structure"]`` is ``(phrases, bars_per_phrase)``.

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

    :meth:`__getitems__` (called by the DataLoader with a whole batch of indices) computes the
    metrics of all same-length windows of the batch in one vectorised call;
    ``dataset.__getitems__(idx) == [dataset[i] for i in idx]``.

    ## Registered metrics

    The dataset takes a snapshot of :func:`dataset.registry.registered_metrics` when it is
    built (``metric_specs``): metrics registered later are not in its samples, and its
    DataLoader workers compute the same ones as the main process.

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

    Raises:
        dataset.io.DataError: for bad files or sequences (the message names them).
        ValueError: for invalid arguments (the message names the argument).

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
    """The registered metrics it computes (a snapshot taken when it was built)."""

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
            corpus = load_npz_folder(npz_dir, on_error=on_error, key=key)
            self.files = list(corpus.files)
            self.names = [str(f) for f in self.files]
            seqs = corpus.sequences
        else:
            if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
                raise ValueError("sequences must be a list of 2-D arrays, got one 2-D array")
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
        self.sample_indices = self._build_index()
        self.metric_specs = registered_metrics()
        self._song_cache: list[dict[str, np.ndarray] | None] = [None] * len(seqs)

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
        """One sample: ``{"step", "bar", "phrase", "metrics"}`` (see the class docstring)."""
        return self.__getitems__([idx])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Several samples, equal to ``[self[i] for i in indices]``, computed batch-wise.

        The windows are grouped by length and each group's window metrics are computed in one
        vectorised call of :func:`dataset.metrics.level_metrics` over a ``(B, L, D)`` stack.
        :class:`torch.utils.data.DataLoader` calls this with each batch of indices.

        Args:
            indices: sample indices.

        Returns:
            list of sample dicts, in the order of ``indices``.
        """
        idx = [self._index(i) for i in indices]
        windows = [self._window(i, self.augment) for i in idx]
        groups: dict[int, list[int]] = {}
        for pos, win in enumerate(windows):
            groups.setdefault(len(win), []).append(pos)
        out: list[dict[str, Any]] = [{} for _ in idx]
        for positions in groups.values():
            batch = np.stack([windows[p] for p in positions])  # (B, L, D) float32, a copy
            song = [self.sequence_metrics(self.sample_indices[idx[p], 0]) for p in positions]
            samples = self._make_samples(batch, song)
            for p, sample in zip(positions, samples, strict=True):
                out[p] = sample
        return out

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
                metrics_ = {"step": parts[0], "bar": parts[1], "phrase": parts[2]}
                metrics_["section"] = parts[3:-1]
                metrics_["song"] = parts[-1]
                samples.append(
                    {"step": split["step"][j], "bar": split["bar"][j],
                     "phrase": split["phrase"][j], "metrics": metrics_}
                )  # fmt: skip
        return samples

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
            which each drum hits), and the mean over sequences of every scalar metric of the
            ``"song"`` level (:meth:`sequence_metrics`, registered metrics included; keys
            ``"song/<name>"``, floats).
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
