"""The window cache: the level metrics of every window of one sequence, from tables.

:class:`WindowTables` builds prefix sums and per-window values once per sequence, and reads
the :func:`~dataset.metrics.levels.level_metrics` of any window from them in some twenty numpy
calls; :class:`WindowLayout` says where each leaf of a window's metrics dict lies in the flat
vector it fills. :class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset` uses it for
every window it serves; the numbers are those of
:func:`~dataset.metrics.levels.level_metrics` (cast to float32), through the same final
formulas (the kernels of the family modules).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from dataset.metrics.dynamics import VELOCITY_METRIC_NAMES, velocity_values
from dataset.metrics.hits import (
    fast_patterns_of_counts,
    fraction_above_of_density,
    fraction_dense_of_density,
    ioi_of_sums,
    ioi_ratios,
    metrical_weights,
    swing_of_counts,
    swing_positions,
)
from dataset.metrics.kernels import as_hits, check_positive, pattern_bits, safe_div, time_last
from dataset.metrics.levels import metric_grid, polyrhythm_metric, registered_specs, swing_metric
from dataset.metrics.patterns import pattern_entropy_of_codes, step_codes
from dataset.metrics.structure import (
    fill_ratio,
    mean_jaccard,
    periods_of_counts,
    polyrhythm_of_periods,
    section_spans,
)
from dataset.registry import (
    BUILTIN_KEYS,
    MetricSpec,
)

__all__ = [
    "WindowLayout",
    "WindowTables",
]


# ----------------------------------------------------------------------------- window tables
# Written for speed: the dataset asks for the level metrics of one window at a time, thousands
# of times per file, and from the window (level_metrics) each costs some hundred small numpy
# calls, a millisecond. Almost every metric is a function of integer counts over spans of
# steps, which are differences of prefix sums over the sequence: WindowTables builds such
# tables once per sequence, with them the scalar metrics of every window (vectorised over the
# window starts, through the final formulas of the family modules: fraction_above_of_density,
# mean_jaccard, ...), and reads a window's metrics in some twenty calls. The tests compare it
# with level_metrics.

_TABLE_MAX_DRUMS = 15
"""Most drums for :class:`WindowTables`: exact 4-gram codes (``4 * drums <= 63``), and tables
with one entry per step pattern (``2**drums``)."""
_TABLE_MAX_LENGTH = 2**16 - 1
"""Longest window of :class:`WindowTables`: its IOI sums are read modulo 2**32 (squares of gaps
of one window stay below ``length**2 < 2**32``)."""
_TABLE_CHUNK = 1 << 20
"""Elements of the per-start temporaries that :class:`WindowTables` builds at once."""
_IOI_BINS = 16
"""Bins of the IOI histogram of :func:`level_metrics` (:func:`ioi_stats`' default)."""


class WindowLayout(NamedTuple):
    """Where the leaves of a window's metrics dict lie in the flat vector of :class:`WindowTables`.

    The leaves are stored by shape, not in dict order (the matrices, the IOI histogram, the bar
    densities, the phrase structure, the per-drum vectors, then the scalars): leaves of one shape
    are adjacent, so that one call makes them all into arrays or tensors of their own.
    """

    paths: tuple[tuple[Any, ...], ...]
    """Each leaf's place in the nested dict, in dict order: ``(level, name)`` for ``"step"``,
    ``"bar"`` and ``"phrase"``, ``("section", i, name)`` for section ``i``."""
    shapes: tuple[tuple[int, ...], ...]
    """Each leaf's shape, in dict order."""
    offsets: tuple[int, ...]
    """Where each leaf's values start in the flat vector, in dict order."""
    size: int
    """Length of the flat vector."""


@lru_cache(maxsize=16)
def _popcounts(drums: int) -> np.ndarray:
    """Number of drums in each step pattern: int64 (2**drums,). Cached, read-only."""
    out = pattern_bits(drums).sum(axis=1).astype(np.int64)
    out.setflags(write=False)
    return out


def _prefix(x: np.ndarray) -> np.ndarray:
    """Prefix sums along the first axis with a leading 0: (n, ...) -> int64 (n + 1, ...)."""
    out = np.zeros((x.shape[0] + 1, *x.shape[1:]), dtype=np.int64)
    np.cumsum(x, axis=0, out=out[1:])
    return out


def _sliding_max(x: np.ndarray, m: int) -> np.ndarray:
    """``max(x[s : s + m])`` for every ``s`` in ``0 .. len(x) - m`` (doubling, O(n log m))."""
    out, width = x, 1
    while 2 * width <= m:  # out[s] = max(x[s : s + 2 * width])
        out = np.maximum(out[:-width], out[width:])
        width *= 2
    if width < m:
        out = np.maximum(out[: len(out) - (m - width)], out[m - width :])
    return out[: len(x) - m + 1]


def _lookup(fn: Any, positions: np.ndarray) -> np.ndarray:
    """``fn`` of each position, computed once per distinct position (windows overlap)."""
    uniq, inverse = np.unique(positions, return_inverse=True)
    return fn(uniq)[inverse.reshape(positions.shape)]


def _span_means(seq: np.ndarray, size: int) -> np.ndarray:
    """:func:`aggregate` of ``seq[s : s + size]`` for every ``s``: float32 (T - size + 1, D).

    The float64 sum runs over the steps in order, as :func:`aggregate`'s does, so the numbers
    are the same (read-only).
    """
    values = np.asarray(seq, dtype=np.float64)
    count = max(len(values) - size + 1, 0)
    total = values[:count].copy()
    for k in range(1, size):
        total += values[k : k + count]
    out = (total / size if size > 1 else total).astype(np.float32)
    out.setflags(write=False)
    return out


def _entropies(codes: np.ndarray, drums: int, m: int, positions: np.ndarray) -> np.ndarray:
    """:func:`pattern_entropy` of ``codes[p : p + m]`` for each ``p`` in ``positions``.

    Each span is a row of :func:`pattern_entropy_of_codes`, so the numbers are those of a window.
    """
    view = np.lib.stride_tricks.sliding_window_view(codes, m)
    chunk = max(1, _TABLE_CHUNK // max(m, 2**drums))

    def entropy(p: np.ndarray) -> np.ndarray:
        out = np.empty(len(p))
        for i in range(0, len(p), chunk):
            out[i : i + chunk] = pattern_entropy_of_codes(view[p[i : i + chunk]], drums)
        return out

    return _lookup(entropy, positions)


class WindowTables:
    """The window levels of :func:`level_metrics` of every window of one sequence, from tables.

    A window is ``seq[start : start + length]`` for ``start`` in ``0, stride, 2 * stride, ...
    <= T - length``. :meth:`level_metrics` of a window equals :func:`level_metrics` of
    ``seq[start : start + length]`` with the same arguments, cast to float32 (the dataset's
    samples), and :meth:`fill` writes the same numbers into one flat float32 vector
    (:attr:`layout`). Only the built-in registered metrics ``swing`` and ``polyrhythm`` at the
    ``"step"``, ``"bar"`` or ``"phrase"`` level are read from tables; every other registered
    metric is computed from the window, when it is asked for.

    The tables, built once, in O(T log T + windows * length) vectorised work for a sequence of
    T steps and D drums:

    * per window, float32: its scalar metrics, IOI means and variances, fast-run fractions,
      computed for all windows at once from prefix sums and sliding maxima over the sequence
      (:func:`pattern_entropy_of_codes` of every phrase-long and section-long span for the
      entropies);
    * per step: prefix sums of each drum's hits, counts of the onsets before it, the hits of
      each bar-long span, and the :func:`aggregate` of each bar- and phrase-long span;
    * per onset: its hits and those of the step after it, float32, for the three drum-by-drum
      matrices (one matrix product each);
    * per hit: prefix sums of the IOI histogram over a list of the hits by drum.

    That is ``10 D + 12`` bytes per step (``12 D + 12`` from 65536 hits on), ``8 D + 12`` per
    onset, ``32`` per hit and ``4 * (3 D + scalars)`` per window (:attr:`nbytes`; ``scalars``
    is 35 with the defaults): some 250 bytes per window and 200 per step for 9 drums.

    Args:
        seq: array (T, drums), values in [0, 1] (a hit is a value > 0), at most 15 drums. Kept
            (not copied) for registered metrics that are not built in: do not modify it.
        length: window length, steps, ``1 <= length <= min(T, 65535)``.
        stride: step between window starts, steps.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        sections: section spans relative to the window, see :func:`section_metrics`.
        fast_threshold: see :func:`level_metrics`.
        specs: registered metrics to add; ``None`` for the registry now, ``{}`` for none.

    Raises:
        ValueError: for an argument out of its range (the message names it).

    Examples:
        >>> from dataset.metrics import level_metrics
        >>> seq = np.tile(np.eye(3, dtype=np.float32), (20, 1))
        >>> tables = WindowTables(seq, 32, steps_per_bar=4, bars_per_phrase=2, specs={})
        >>> got = tables.level_metrics(5)["step"]["step_entropy"]
        >>> want = level_metrics(seq[5:37], 4, 2, specs={})["step"]["step_entropy"]
        >>> bool(got == np.float32(want))
        True
    """

    layout: WindowLayout
    """Where each leaf of a window's metrics dict lies in the vector of :meth:`fill`."""

    @staticmethod
    def supports(drums: int, length: int) -> bool:
        """Whether windows of ``length`` steps of ``drums`` drums can be read from tables."""
        return 1 <= drums <= _TABLE_MAX_DRUMS and 1 <= length <= _TABLE_MAX_LENGTH

    def __init__(
        self,
        seq: np.ndarray,
        length: int,
        stride: int = 1,
        steps_per_bar: int = 16,
        bars_per_phrase: int = 4,
        sections: list[tuple[int, int]] | None = None,
        fast_threshold: int = 4,
        specs: Mapping[str, MetricSpec] | None = None,
    ) -> None:
        h = as_hits(seq)
        if h.ndim != 2:
            raise ValueError(f"seq must have shape (steps, drums), got shape {h.shape}")
        steps, drums = h.shape
        for value, name in [
            (length, "length"),
            (stride, "stride"),
            (steps_per_bar, "steps_per_bar"),
            (bars_per_phrase, "bars_per_phrase"),
            (fast_threshold, "fast_threshold"),
        ]:
            check_positive(value, name)
        if not length <= min(steps, _TABLE_MAX_LENGTH):
            raise ValueError(
                f"length must be in [1, min(steps, {_TABLE_MAX_LENGTH})], got {length} for "
                f"{steps} steps"
            )
        if not self.supports(drums, length):
            raise ValueError(f"WindowTables supports 1 to {_TABLE_MAX_DRUMS} drums, got {drums}")
        self.length, self.stride, self.drums = int(length), int(stride), drums
        self.steps_per_bar, self.bars_per_phrase = int(steps_per_bar), int(bars_per_phrase)
        self.fast_threshold = int(fast_threshold)
        self._phrase_len = self.steps_per_bar * self.bars_per_phrase
        self.num_windows = (steps - self.length) // self.stride + 1
        self.spans = section_spans(self.length, sections, self._phrase_len)
        self._grid = metric_grid(steps_per_bar, bars_per_phrase, fast_threshold)
        self._seq = seq
        self._plan(specs)
        self._build(h, np.asarray(seq))

    # ------------------------------------------------------------------ layout

    def _plan(self, specs: Mapping[str, MetricSpec] | None) -> None:
        """The leaves in dict order, and where each one goes (see :class:`WindowLayout`)."""
        drums, spb, n_spans = self.drums, self.steps_per_bar, len(self.spans)
        # group -> (shape of one leaf, number of leaves); a group's leaves are adjacent
        groups = {
            "matrix": (drums, drums),
            "hist": (drums, _IOI_BINS),
            "bar": (self.length // spb,),
            "phrase": (self.length // (spb * self.bars_per_phrase), self.bars_per_phrase),
            "drum": (drums,),  # the window's density, each section's, IOI mean, var, fast
            "scalar": (),
        }
        # the last three are read with the scalars, from the per-window table
        drum_row = {"drum_density": 0, "ioi_mean": n_spans + 1, "ioi_var": n_spans + 2,
                    "fast_fraction": n_spans + 3}  # fmt: skip
        matrix = {"co_occurrence_matrix": 0, "transitions": 1, "onset_transitions": 2}
        single = {"ioi_hist": "hist", "density": "bar", "phrase_structure": "phrase"}
        builtins = {swing_metric: "swing", polyrhythm_metric: "polyrhythm"}
        entries: list[tuple[tuple[Any, ...], str, Any]] = []  # (path, group, index or key)
        columns: list[str] = []  # the scalar columns of the per-window table
        self._builtin: dict[str, str] = {}  # registered name -> built-in read from tables
        self._extras: dict[str, MetricSpec] = {}  # computed from the window
        self._velocity: dict[str, str] = {}  # extra -> its velocity metric (computed together)
        for level in ("step", "bar", "phrase"):
            for key in BUILTIN_KEYS[level]:
                path = (level, key)
                if key in drum_row:
                    entries.append((path, "drum", drum_row[key]))
                elif key in matrix:
                    entries.append((path, "matrix", matrix[key]))
                elif key in single:
                    entries.append((path, single[key], 0))
                else:
                    entries.append((path, "scalar", len(columns)))
                    columns.append(f"{level}/{key}")
            for name, spec in registered_specs(specs, level).items():
                if spec.fn in builtins:
                    self._builtin[name] = builtins[spec.fn]
                    entries.append(((level, name), "scalar", len(columns)))
                    columns.append(f"builtin/{name}")
                else:
                    self._extras[name] = spec
                    if spec.fn in VELOCITY_METRIC_NAMES:
                        self._velocity[name] = VELOCITY_METRIC_NAMES[spec.fn]
                    entries.append(((level, name), "extra", (name, None)))
        for i, span in enumerate(self.spans):
            for key in BUILTIN_KEYS["section"]:
                if key == "drum_density":
                    entries.append((("section", i, key), "drum", i + 1))
                else:
                    entries.append((("section", i, key), "scalar", len(columns)))
                    columns.append(f"section/{i}/{key}")
            for name, spec in registered_specs(specs, "section").items():
                self._extras[f"section/{name}"] = spec
                entries.append((("section", i, name), "extra", (f"section/{name}", span)))
        self._columns = columns
        counts = {"scalar": len(columns), "drum": n_spans + 4, "matrix": 3}
        self._offsets, size = {}, 0
        for group, shape in groups.items():
            self._offsets[group] = size
            size += counts.get(group, 1) * math.prod(shape)
        extra_shapes = self._extra_shapes(e[2] for e in entries if e[1] == "extra")
        shapes, offsets = [], []
        self._extra_slots: list[tuple[int, int, str, tuple[int, int] | None]] = []
        for _, group, where in entries:
            if group == "extra":
                shape = extra_shapes[where]
                self._extra_slots.append((size, math.prod(shape), *where))
                offsets.append(size)
                size += math.prod(shape)
            else:
                shape = groups[group]
                offsets.append(self._offsets[group] + where * math.prod(shape))
            shapes.append(shape)
        paths = tuple(e[0] for e in entries)
        self.layout = WindowLayout(paths, tuple(shapes), tuple(offsets), size)
        self._views = self._slices(groups)

    def _slices(self, groups: dict[str, tuple[int, ...]]) -> Any:
        """Where :meth:`fill` writes each group, and the index arrays it uses."""
        o, drums, n_spans = self._offsets, self.drums, len(self.spans)
        spb = self.steps_per_bar
        n_bars, n_phr = groups["bar"][0], groups["phrase"][0]

        def part(group: str, count: int = 1) -> slice:
            return slice(o[group], o[group] + count * math.prod(groups[group]))

        return SimpleNamespace(
            row=slice(o["scalar"] - 3 * drums, o["scalar"] + len(self._columns)),
            drum=part("drum", n_spans + 1),  # the densities (the rest comes with the row)
            drum_shape=(n_spans + 1, drums),
            ioi_shift=np.array([[1], [0]]),
            hist=part("hist"),
            hist_shape=(drums, _IOI_BINS),
            counts_shape=(3, drums, drums + 1),
            matrix=part("matrix", 3),
            matrix_shape=(3, drums, drums),
            bar=part("bar"),
            bar_span=n_bars * spb,
            phrase=part("phrase"),
            phrase_span=n_phr * self.bars_per_phrase * spb,
        )

    def _extra_shapes(
        self, wanted: Any
    ) -> dict[tuple[str, tuple[int, int] | None], tuple[int, ...]]:
        """Value shape of each registered metric computed per window, from the first window."""
        out: dict[tuple[str, tuple[int, int] | None], tuple[int, ...]] = {}
        for key, span in wanted:
            if (key, span) not in out:
                part = self._window(0) if span is None else self._window(0)[:, span[0] : span[1]]
                out[key, span] = self._extras[key](part, self._grid).shape[1:]
        return out

    def _window(self, start: int) -> np.ndarray:
        """The window at ``start`` as a fresh float32 batch of one, (1, length, drums)."""
        return np.array(np.asarray(self._seq)[None, start : start + self.length], np.float32)

    # ------------------------------------------------------------------ tables

    def _build(self, h: np.ndarray, seq: np.ndarray) -> None:
        """The tables of hits ``h`` (T, drums) of the values ``seq`` (see the class docstring)."""
        steps, drums = h.shape
        length, spb = self.length, self.steps_per_bar
        n = h.sum(axis=1, dtype=np.int64)  # drums hit on each step
        codes = step_codes(h)
        onset = np.flatnonzero(n)
        # hits by drum, in (drum, step) order, and their IOI features
        pos = np.flatnonzero(time_last(h))  # drum * steps + step
        drum_start = np.searchsorted(pos, np.arange(drums) * steps)
        same = np.ones(pos.size, dtype=bool)  # hit k is not the first of its drum
        same[drum_start[drum_start < pos.size]] = False
        gap = np.zeros(pos.size, dtype=np.int64)
        gap[1:] = np.diff(pos)
        gap[~same] = 0
        feats = np.zeros((pos.size, 2 + _IOI_BINS), dtype=np.uint32)
        feats[:, 0] = gap
        feats[:, 1] = gap * gap  # window sums below length**2 < 2**32
        feats[np.flatnonzero(same), 2 + np.minimum(gap[same], _IOI_BINS) - 1] = 1
        # prefix sums modulo 2**32 (window differences are exact), and a spare last row: the
        # sums of a window read row lo + 1 <= hits + 1. fill() reads the histogram's, modulo
        # 2**16 (a window has fewer IOIs).
        ioi = np.zeros((pos.size + 2, 2 + _IOI_BINS), dtype=np.uint32)
        np.cumsum(feats, axis=0, dtype=np.uint32, out=ioi[1:-1])
        ioi[-1] = ioi[-2]
        self._ioi_hist = ioi[:, 2:].astype(np.uint16)
        ph = _prefix(h)
        # where each drum's hits before each step end in the hit list (its hits lo .. hi - 1
        # in a window); differences are hits in spans
        index = ph + drum_start
        dtype = np.uint16 if pos.size < 2**16 else np.int32 if pos.size < 2**31 else np.int64
        self._hit_index = index.astype(dtype)
        # Steps without a hit add nothing to the drum-by-drum counts: per onset, its hits as
        # float32 with a last column of the drums hit (its product with the hits gives the
        # transitions' row sums), the same of the step after it, and its step. A window's
        # onsets are the rows onsets_before[start] .. onsets_before[stop] - 1.
        hf = np.zeros((steps + 1, drums + 1), dtype=np.float32)
        hf[:steps, :drums] = h
        hf[:steps, drums] = n
        self._onset_hf, self._onset_next = hf[onset], hf[onset + 1]
        self._onset_step = onset.astype(np.int32 if steps < 2**31 else np.int64)
        self._onsets_before = _prefix(n > 0).astype(np.int32 if steps < 2**31 else np.int64)
        pn = _prefix(n)
        # hits of each bar-long span (exact in float32), and their density
        bar_sums = pn[spb:] - pn[:-spb]
        self._bar_sums = bar_sums.astype(np.float32)
        self._bar_density = (bar_sums / spb).astype(np.float32)
        self._means = {size: _span_means(seq, size) for size in {spb, self._phrase_len}}
        starts = np.arange(self.num_windows, dtype=np.int64) * self.stride
        # per window: IOI mean and variance, fast-run fractions, then the scalars (adjacent in
        # the vector too), a chunk of windows at a time
        n_cols = len(self._columns)
        rows = np.empty((self.num_windows, 3 * drums + n_cols), dtype=np.float32)
        ctx = self._context(h, n, codes, pn, ph, starts)
        ctx["ioi"], ctx["hit_index"] = ioi, self._hit_index
        chunk = max(1, _TABLE_CHUNK // max(length * drums, 1))
        for i in range(0, self.num_windows, chunk):
            part = slice(i, i + chunk)
            cols, vectors = self._scalars(ctx, starts[part], part)
            rows[part, : 3 * drums] = vectors.reshape(len(vectors), -1)
            rows[part, 3 * drums :] = np.stack([cols[c] for c in self._columns], axis=1)
        self._rows = rows
        # window boundaries for the per-drum counts: the window's, then each section's
        bounds = [0, length] + [v for span in self.spans for v in span]
        self._count_bounds = np.array(bounds, dtype=np.int64)
        sizes = [length] + [e - s for s, e in self.spans]
        self._count_sizes = np.array(sizes, dtype=np.float64)[:, None]

    def _context(
        self,
        h: np.ndarray,
        n: np.ndarray,
        codes: np.ndarray,
        pn: np.ndarray,
        ph: np.ndarray,
        starts: np.ndarray,
    ) -> dict[str, Any]:
        """Whole-sequence arrays that the per-window scalars are read from."""
        steps, drums = h.shape
        length, spb, thr = self.length, self.steps_per_bar, self.fast_threshold
        pl = spb * self.bars_per_phrase
        ctx: dict[Any, Any] = {"n": n, "codes": codes, "pn": pn, "ph": ph}
        ctx["busy"] = _prefix(n > 1)
        ctx["max"] = {m: _sliding_max(n, m) for m in {length, *(e - s for s, e in self.spans)}}
        # the gap from each hit to the one before it of its drum (0: none), for fast_hits
        t = np.arange(steps)
        prev = np.where(h, t[:, None], -1)
        prev[1:] = np.maximum.accumulate(prev[:-1], axis=0)  # last hit strictly before t
        prev[0] = -1
        gap = np.where(h & (prev >= 0), t[:, None] - prev, 0)
        ctx["gap"] = gap
        ctx["fast"] = _prefix(((gap > 0) & (gap <= thr)).sum(axis=1))
        # runs: lengths back to each hit's run start and on to its run end (0 off a hit)
        last_off = np.where(h, -1, t[:, None])
        back = t[:, None] - np.maximum.accumulate(last_off, axis=0)
        next_off = np.where(h, steps, t[:, None])
        fwd = np.minimum.accumulate(next_off[::-1], axis=0)[::-1] - t[:, None]
        ctx["run_back"], ctx["run_fwd"] = back, fwd
        file_fast = h & (back + fwd - 1 >= thr)
        ctx["fast_hits"] = _prefix(file_fast)
        ctx["fast_starts"] = _prefix((file_fast & (back == 1)).sum(axis=1))
        # distinct 4-grams: the last earlier start of the same 4-gram (-1: none)
        if length >= 4:
            grams = np.zeros(steps - 3, dtype=np.int64)
            for k in range(4):
                grams |= codes[k : k + steps - 3] << np.int64(drums * k)
            order = np.argsort(grams, kind="stable")
            prev4 = np.full(steps - 3, -1, dtype=np.int64)
            repeat = grams[order[1:]] == grams[order[:-1]]
            prev4[order[1:][repeat]] = order[:-1][repeat]
            ctx["prev4"] = prev4
        # Jaccard terms: pattern bits shared with, and joined with, the step a bar or phrase back
        popcount = _popcounts(drums)
        for lag in {spb, pl}:
            inter, union = np.zeros(steps, np.int64), np.zeros(steps, np.int64)
            inter[lag:] = popcount[codes[lag:] & codes[:-lag]]
            union[lag:] = popcount[codes[lag:] | codes[:-lag]]
            ctx["inter", lag] = _prefix(inter)
            ctx["union", lag] = _prefix(union)
        # entropies of every phrase-long and section-long span the windows need
        ctx["entropy"] = {}
        full, rest = divmod(length, pl)
        offsets: dict[int, list[int]] = {}
        for k in range(full):
            offsets.setdefault(pl, []).append(k * pl)
        if rest:
            offsets.setdefault(rest, []).append(full * pl)
        for s, e in self.spans:
            offsets.setdefault(e - s, []).append(s)
        for m, offs in offsets.items():  # {length: {offset: entropy of every window's span}}
            offs = sorted(set(offs))
            where = starts[:, None] + np.array(offs, dtype=np.int64)
            ctx["entropy"][m] = dict(zip(offs, _entropies(codes, drums, m, where).T, strict=True))
        # built-in registered metrics
        if "swing" in self._builtin.values():
            late, on = h[1:], h[:-1]
            ctx["delayed"] = (late & ~on).sum(axis=1)
            ctx["straight"] = (on & ~late).sum(axis=1)
        if "polyrhythm" in self._builtin.values():
            lags = min(spb, length - 1)
            ctx["recur"] = [_prefix(h[:-k] & h[k:]) for k in range(1, lags + 1)]
        return ctx

    def _scalars(
        self, ctx: dict[Any, Any], a: np.ndarray, part: slice
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The scalar metrics of windows ``part``, starting at ``a``, and three per-drum ones.

        Returns:
            dict column -> float64 (windows,), and float64 (windows, 3, drums): IOI mean, IOI
            variance and fast fraction.
        """
        length, spb, thr = self.length, self.steps_per_bar, self.fast_threshold
        drums, bpp = self.drums, self.bars_per_phrase
        pl = spb * bpp
        n, pn, ph = ctx["n"], ctx["pn"], ctx["ph"]
        b = a + length
        col: dict[str, np.ndarray] = {}
        total = pn[b] - pn[a]
        hits = ph[b] - ph[a]  # (windows, drums)
        # step
        col["step/avg_hits"] = safe_div(total, length)
        col["step/max_hits"] = ctx["max"][length][a].astype(np.float64)
        col["step/co_occurrence"] = safe_div(ctx["busy"][b] - ctx["busy"][a], length)
        gap = ctx["gap"]
        late = np.zeros(len(a), dtype=np.int64)  # fast IOIs from a hit before the window
        for j in range(min(thr, length)):
            g = gap[a + j]
            late += ((g > j) & (g <= thr)).sum(axis=1)
        col["step/fast_patterns"] = (ctx["fast"][b] - ctx["fast"][a] - late).astype(np.float64)
        col["step/step_entropy"] = _entropies(ctx["codes"], drums, length, a)
        # bar
        n_bars = length // spb
        per_bar = (pn[a[:, None] + spb * np.arange(1, n_bars + 1)]
                   - pn[a[:, None] + spb * np.arange(n_bars)]).astype(np.float64)  # fmt: skip
        dens = per_bar / spb
        col["bar/fraction_dense_bars"] = fraction_above_of_density(dens, drums / 2)
        col["bar/fraction_busy_bars"] = fraction_dense_of_density(dens)
        down = n[a[:, None] + np.arange(0, length, spb)].sum(axis=1)
        col["bar/syncopation"] = safe_div(total - down, total)
        weights = np.resize(metrical_weights(spb), length)
        weighted = np.lib.stride_tricks.sliding_window_view(n.astype(np.float64), length)[a]
        col["bar/metrical_syncopation"] = safe_div(weighted @ weights, total)
        fast_hits, n_runs = self._fast_runs(ctx, a)
        fast = fast_patterns_of_counts(fast_hits, hits, n_runs, length, spb)
        col["bar/fast_runs_per_bar"] = fast.runs_per_bar
        if length >= 4:
            prev4 = np.lib.stride_tricks.sliding_window_view(ctx["prev4"], length - 3)[a]
            distinct = (prev4 < a[:, None]).sum(axis=1).astype(np.float64)
        else:
            distinct = np.zeros(len(a))
        col["bar/ngram_diversity"] = distinct
        col["bar/ngram_diversity_ratio"] = safe_div(distinct, max(length - 3, 0))
        # phrase
        for lag, name in ((spb, "bar_repetition"), (pl, "phrase_repetition")):
            chunks = length // lag
            if chunks < 2:
                col[f"phrase/{name}"] = np.zeros(len(a))
                continue
            lo = a[:, None] + lag * np.arange(1, chunks)
            inter = ctx["inter", lag][lo + lag] - ctx["inter", lag][lo]
            union = ctx["union", lag][lo + lag] - ctx["union", lag][lo]
            col[f"phrase/{name}"] = mean_jaccard(inter, union)
        col["phrase/fill_ratio"] = fill_ratio(dens, bpp)
        full, rest = divmod(length, pl)
        parts = [ctx["entropy"][pl][k * pl][part, None] for k in range(full)]
        if rest:
            parts.append(ctx["entropy"][rest][full * pl][part, None])
        col["phrase/phrase_entropy"] = np.concatenate(parts, axis=-1).mean(axis=-1)
        # sections
        densities = []
        for i, (s, e) in enumerate(self.spans):
            m = e - s
            density = safe_div(pn[a + e] - pn[a + s], m)
            densities.append(density)
            col[f"section/{i}/avg_hits"] = density
            col[f"section/{i}/max_hits"] = ctx["max"][m][a + s].astype(np.float64)
            lo = a[:, None] + s + spb * np.arange(m // spb)
            section_bars = (pn[lo + spb] - pn[lo]) / spb
            col[f"section/{i}/dense_frac"] = fraction_above_of_density(section_bars, drums / 2)
            col[f"section/{i}/step_entropy"] = ctx["entropy"][m][s][part]
        if densities:
            col["phrase/section_contrast"] = np.stack(densities, axis=-1).std(axis=-1)
        else:
            col["phrase/section_contrast"] = np.zeros(len(a))
        # built-in registered metrics
        if self._builtin:
            values = self._builtin_values(ctx, a)
            for name, builtin in self._builtin.items():
                col[f"builtin/{name}"] = values[builtin]
        # IOIs: those of drum d end at hits lo[d] + 1 .. hi[d] - 1 of the hit list
        lo, hi = ctx["hit_index"][a].astype(np.int64), ctx["hit_index"][b].astype(np.int64)
        ends = ctx["ioi"][np.stack([lo + 1, hi]), :2]  # (2, windows, drums, 2)
        ioi = ioi_of_sums(ends[1] - ends[0], hi - lo - 1)
        return col, np.stack([ioi.mean, ioi.var, fast.fraction], axis=1)

    def _fast_runs(self, ctx: dict[Any, Any], a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hits in fast runs of each drum (windows, drums) and fast runs (windows,).

        A run of the sequence that crosses the window's first or last step is cut there: the
        prefix sums count the runs by their length in the sequence, so the two cut runs of each
        drum are counted again with their length in the window.
        """
        length, thr = self.length, self.fast_threshold
        b = a + length
        back, fwd = ctx["run_back"], ctx["run_fwd"]
        hits = ctx["fast_hits"][b] - ctx["fast_hits"][a]
        runs = ctx["fast_starts"][b] - ctx["fast_starts"][a]
        # the run through the first step (0 where it has no hit)
        back_a, fwd_a = back[a], fwd[a]
        in_1, full_1 = np.minimum(fwd_a, length), back_a + fwd_a - 1
        # the run through the last step, if another one
        back_b, fwd_b = back[b - 1], fwd[b - 1]
        other = fwd_a < length
        in_2 = np.where(other, np.minimum(back_b, length), 0)
        full_2 = np.where(other, back_b + fwd_b - 1, 0)
        fast_in_1, fast_full_1 = in_1 >= thr, full_1 >= thr
        fast_in_2, fast_full_2 = in_2 >= thr, full_2 >= thr
        hits = hits + in_1 * (fast_in_1.astype(np.int64) - fast_full_1)
        hits += in_2 * (fast_in_2.astype(np.int64) - fast_full_2)
        starts_1 = fast_full_1 & (back_a == 1)  # counted by the prefix sums
        runs = runs + (fast_in_1.sum(axis=1) - starts_1.sum(axis=1))
        runs += fast_in_2.sum(axis=1) - fast_full_2.sum(axis=1)
        return hits, runs

    def _builtin_values(self, ctx: dict[Any, Any], a: np.ndarray) -> dict[str, np.ndarray]:
        """``swing`` and ``polyrhythm`` of the windows starting at ``a``."""
        length, spb = self.length, self.steps_per_bar
        out = {}
        if "delayed" in ctx:
            t = a[:, None] + swing_positions(length, spb, self._grid.beats_per_bar)
            out["swing"] = swing_of_counts(
                ctx["delayed"][t].sum(axis=1), ctx["straight"][t].sum(axis=1)
            )
        if "recur" in ctx:
            lags = len(ctx["recur"])
            if lags < 1:
                out["polyrhythm"] = np.zeros(len(a))
            else:
                ph = ctx["ph"]
                end = a[:, None] + length - np.arange(1, lags + 1)  # (windows, lags)
                recur = np.stack([p[end[:, k]] - p[a] for k, p in enumerate(ctx["recur"])], axis=1)
                periods = periods_of_counts(recur, ph[end] - ph[a][:, None], 0.75)
                out["polyrhythm"] = polyrhythm_of_periods(periods)
        return out

    # ------------------------------------------------------------------ windows

    def fill(self, start: int, out: np.ndarray) -> None:
        """Write the metrics of the window at ``start`` into ``out``, laid out as :attr:`layout`.

        Args:
            start: first step of the window, a multiple of ``stride`` in ``[0, T - length]``.
            out: float32 array (layout.size,), written over.
        """
        r, rem = divmod(start, self.stride)
        if rem or not 0 <= r < self.num_windows:
            raise ValueError(f"no window starts at step {start}")
        a, b = start, start + self.length
        v = self._views
        out[v.row] = self._rows[r]  # IOI means, variances, fast-run fractions, the scalars
        # hits of each drum in the window and in each section: the densities
        index = self._hit_index[a + self._count_bounds]  # (2 + 2 * sections, drums)
        hits = index[1::2] - index[::2]
        np.divide(hits, self._count_sizes, out=out[v.drum].reshape(v.drum_shape))
        # IOI histogram: the hits of drum d in the window are hits lo[d] .. hi[d] - 1 of the hit
        # list, its IOIs those that end at hits lo[d] + 1 .. hi[d] - 1. Without IOIs the
        # difference is not 0 (it wraps around), but then ioi_ratios divides it by inf.
        ends = self._ioi_hist[index[:2] + v.ioi_shift]  # (2, drums, bins), uint16
        count = np.subtract(hits[0], 1, dtype=np.int64)  # signed: -1 for no hit
        out[v.hist].reshape(v.hist_shape)[...] = ioi_ratios(ends[1] - ends[0], count)
        # drum-by-drum counts, each with its divisor in a last column: co-occurrence (by the
        # window's length), consecutive steps and consecutive onsets (by their row sums)
        first, end = self._onsets_before[a], self._onsets_before[b]
        onsets = self._onset_hf[first:end]
        onset_hits = onsets[:, : self.drums]
        counts = np.empty(v.counts_shape, dtype=np.float32)
        np.matmul(onset_hits.T, onset_hits, out=counts[0, :, :-1])
        counts[0, :, -1] = self.length
        # the step after an onset on the window's last step is not in the window
        stop = end - first - (end > first and self._onset_step[end - 1] == b - 1)
        np.matmul(onset_hits[:stop].T, self._onset_next[first : first + stop], out=counts[1])
        np.matmul(onset_hits[:-1].T, onsets[1:], out=counts[2])
        den = counts[:, :, -1:]
        safe = np.where(den > 0, den, np.inf)
        np.divide(
            counts[:, :, :-1], safe, out=out[v.matrix].reshape(v.matrix_shape), dtype=np.float64
        )
        # bars and phrases: the hits of bar-long spans, a bar apart
        spb = self.steps_per_bar
        out[v.bar] = self._bar_density[a : a + v.bar_span : spb]
        out[v.phrase] = self._bar_sums[a : a + v.phrase_span : spb]
        if self._extra_slots:
            self._fill_extras(a, out)

    def _fill_extras(self, start: int, out: np.ndarray) -> None:
        """The registered metrics that are not built in, computed from the window."""
        window = self._window(start)
        done: dict[tuple[str, tuple[int, int] | None], np.ndarray] = {}
        velocity: dict[str, np.ndarray] | None = None
        for offset, size, key, span in self._extra_slots:
            if (key, span) not in done:
                if span is None and key in self._velocity:  # all of them in one pass
                    if velocity is None:
                        velocity = velocity_values(window, self.steps_per_bar)
                    done[key, span] = velocity[self._velocity[key]][0]
                else:
                    part = window if span is None else window[:, span[0] : span[1]]
                    done[key, span] = self._extras[key](part, self._grid)[0]
            out[offset : offset + size] = done[key, span].ravel()

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables."""
        arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)]
        arrays += self._means.values()
        return sum(a.nbytes for a in arrays if a is not self._seq)

    def unit_means(self, start: int, size: int) -> np.ndarray:
        """:func:`aggregate` of the window at ``start``, for ``size`` a bar or a phrase.

        Args:
            start: first step of the window, a multiple of ``stride`` in ``[0, T - length]``.
            size: ``steps_per_bar`` or ``steps_per_bar * bars_per_phrase``.

        Returns:
            float32 view (length // size, drums) of the tables (read-only: copy it to keep it):
            equal to ``aggregate(seq[start : start + length], size)`` cast to float32.
        """
        n = self.length // size
        return self._means[size][start : start + n * size : size]

    def level_metrics(self, start: int) -> dict[str, Any]:
        """The window levels of :func:`level_metrics` of the window at ``start``, as float32.

        Args:
            start: first step of the window, a multiple of ``stride`` in ``[0, T - length]``.

        Returns:
            ``{"step": dict, "bar": dict, "phrase": dict, "section": list of dicts}`` of float32
            arrays, equal to :func:`level_metrics` of ``seq[start : start + length]`` (with this
            object's arguments) cast to float32.
        """
        flat = np.empty(self.layout.size, dtype=np.float32)
        self.fill(start, flat)
        out: dict[str, Any] = {"step": {}, "bar": {}, "phrase": {}, "section": []}
        out["section"] = [{} for _ in self.spans]
        for path, shape, offset in zip(*self.layout[:3], strict=True):
            value = flat[offset : offset + math.prod(shape)].reshape(shape)
            if path[0] == "section":
                out["section"][path[1]][path[2]] = value
            else:
                out[path[0]][path[1]] = value
        return out
