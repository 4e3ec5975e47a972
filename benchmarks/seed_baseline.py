"""The seed's dataset written the obvious way: a baseline for throughput comparisons only.

This is *not* used by drum-env. It computes the same samples and the same set of metrics, with
the same definitions, as :class:`dataset.hierarchical.CompleteHierarchicalDrumDataset` and
:mod:`dataset.metrics` (``benchmarks/dataset_throughput.py`` checks that they agree), but the way
the seed's description reads when coded directly: Python loops over steps and drums on nested
lists of booleans, ``collections.Counter`` for step patterns and n-grams, one sample at a time,
and ``torch.tensor`` for every output. Song metrics are cached per file, as in the real
dataset, so the comparison is of the per-window work. The metrics dict is the dataset's nested
one (the seed's levels and names), with the built-in registered metrics (``swing``,
``polyrhythm``, ``drum_periods``) of :mod:`dataset.registry`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SeedBaselineDataset", "baseline_window_metrics", "baseline_song_metrics"]

MAX_IOI = 16
NGRAM = 4
DENSE_THRESHOLD = 1.0
BEATS_PER_BAR = 4
MIN_RECURRENCE = 0.75


def _entropy(patterns: list[tuple[bool, ...]]) -> float:
    if len(patterns) <= 1:
        return 0.0
    total = len(patterns)
    h = 0.0
    for count in Counter(patterns).values():
        p = count / total
        h -= p * math.log2(p)
    return max(h, 0.0)


def _jaccard(a: list[list[bool]], b: list[list[bool]]) -> float:
    inter = union = 0
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            inter += x and y
            union += x or y
    return inter / union if union else 1.0


def _metrical_weights(steps_per_bar: int) -> list[float]:
    beat = max(steps_per_bar // BEATS_PER_BAR, 1)
    weights = []
    for p in range(steps_per_bar):
        if p % beat == 0:
            weights.append(0.0)
        elif beat % 2 == 0 and p % (beat // 2) == 0:
            weights.append(0.5)
        else:
            weights.append(1.0)
    return weights


def _swing(h: list[list[bool]], steps_per_bar: int) -> float:
    beat = steps_per_bar // BEATS_PER_BAR
    if beat < 4 or beat % 2:
        return 0.0
    delayed = straight = 0
    for t in range(len(h) - 1):
        p = t % steps_per_bar
        if p < BEATS_PER_BAR * beat and p % beat == beat // 2:
            for on, late in zip(h[t], h[t + 1], strict=True):
                delayed += late and not on
                straight += on and not late
    return delayed / (delayed + straight) if delayed + straight else 0.0


def _periods(h: list[list[bool]], max_lag: int) -> list[float]:
    steps = len(h)
    drums = len(h[0]) if h else 0
    out = []
    for d in range(drums):
        period = 0.0
        for k in range(1, min(max_lag, steps - 1) + 1):
            starts = [t for t in range(steps - k) if h[t][d]]
            if starts and sum(1 for t in starts if h[t + k][d]) / len(starts) >= MIN_RECURRENCE:
                period = float(k)
                break
        out.append(period)
    return out


def _polyrhythm(periods: list[float]) -> float:
    pairs = cross = 0
    for i in range(len(periods)):
        for j in range(i + 1, len(periods)):
            a, b = int(periods[i]), int(periods[j])
            if a and b:
                pairs += 1
                cross += a % b != 0 and b % a != 0
    return cross / pairs if pairs else 0.0


def _sections(
    h: list[list[bool]], spans: list[tuple[int, int]], steps_per_bar: int
) -> list[dict[str, Any]]:
    drums = len(h[0]) if h else 0
    out = []
    for s, e in spans:
        part = h[s:e]
        per_step = [sum(row) for row in part]
        n_bars = len(part) // steps_per_bar
        bar_hits = [
            sum(per_step[b * steps_per_bar : (b + 1) * steps_per_bar]) for b in range(n_bars)
        ]
        dense = sum(1 for x in bar_hits if x / steps_per_bar > drums / 2)
        out.append(
            {
                "avg_hits": sum(per_step) / len(part),
                "drum_density": [sum(row[d] for row in part) / len(part) for d in range(drums)],
                "max_hits": max(per_step),
                "dense_frac": dense / n_bars if n_bars else 0.0,
                "step_entropy": _entropy([tuple(row) for row in part]),
            }
        )
    return out


def baseline_window_metrics(
    window: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    sections: Sequence[tuple[int, int]] | None = None,
    fast_threshold: int = 4,
) -> dict[str, Any]:
    """The window levels of :func:`dataset.metrics.level_metrics`, with Python loops."""
    h = (np.asarray(window) > 0).tolist()
    steps = len(h)
    drums = window.shape[1]
    phrase_len = steps_per_bar * bars_per_phrase
    rows = [tuple(row) for row in h]

    # density
    per_step = [sum(row) for row in h]
    drum_hits = [0] * drums
    for t in range(steps):
        for d in range(drums):
            if h[t][d]:
                drum_hits[d] += 1
    avg_hits = sum(per_step) / steps if steps else 0.0
    drum_density = [c / steps if steps else 0.0 for c in drum_hits]
    max_hits = max(per_step, default=0)

    # co-occurrence
    co = [[0.0] * drums for _ in range(drums)]
    for t in range(steps):
        for i in range(drums):
            if h[t][i]:
                for j in range(drums):
                    if h[t][j]:
                        co[i][j] += 1
    co = [[c / steps if steps else 0.0 for c in row] for row in co]

    # transitions between consecutive onset steps
    onsets = [t for t in range(steps) if per_step[t] > 0]
    trans = [[0.0] * drums for _ in range(drums)]
    for a, b in zip(onsets[:-1], onsets[1:], strict=True):
        for i in range(drums):
            if h[a][i]:
                for j in range(drums):
                    if h[b][j]:
                        trans[i][j] += 1
    for row in trans:
        total = sum(row)
        if total:
            row[:] = [c / total for c in row]

    # the seed's: co-occurrence as a fraction of steps, transitions between consecutive steps
    co_fraction = sum(1 for n in per_step if n > 1) / steps if steps else 0.0
    step_trans = [[0.0] * drums for _ in range(drums)]
    for t in range(steps - 1):
        for i in range(drums):
            if h[t][i]:
                for j in range(drums):
                    if h[t + 1][j]:
                        step_trans[i][j] += 1
    for row in step_trans:
        total = sum(row)
        if total:
            row[:] = [c / total for c in row]

    # inter-onset intervals
    ioi_mean, ioi_var, ioi_hist = [], [], []
    for d in range(drums):
        times = [t for t in range(steps) if h[t][d]]
        iois = [b - a for a, b in zip(times[:-1], times[1:], strict=True)]
        hist = [0.0] * MAX_IOI
        if iois:
            mean = sum(iois) / len(iois)
            var = max(sum(x * x for x in iois) / len(iois) - mean * mean, 0.0)
            for x in iois:
                hist[min(x, MAX_IOI) - 1] += 1 / len(iois)
        else:
            mean = var = 0.0
        ioi_mean.append(mean)
        ioi_var.append(var)
        ioi_hist.append(hist)
    seed_fast = 0
    for d in range(drums):
        times = [t for t in range(steps) if h[t][d]]
        seed_fast += sum(
            1 for a, b in zip(times[:-1], times[1:], strict=True) if b - a <= fast_threshold
        )

    # bars
    n_bars = steps // steps_per_bar
    bars = [h[b * steps_per_bar : (b + 1) * steps_per_bar] for b in range(n_bars)]
    bar_density = [
        sum(per_step[b * steps_per_bar : (b + 1) * steps_per_bar]) / steps_per_bar
        for b in range(n_bars)
    ]
    fraction_dense = sum(1 for x in bar_density if x >= DENSE_THRESHOLD) / n_bars if n_bars else 0.0
    seed_dense = sum(1 for x in bar_density if x > drums / 2) / n_bars if n_bars else 0.0
    total_hits = sum(per_step)
    off_first = sum(per_step[t] for t in range(steps) if t % steps_per_bar != 0)
    syncopation = off_first / total_hits if total_hits else 0.0
    weights = _metrical_weights(steps_per_bar)
    weighted = sum(per_step[t] * weights[t % steps_per_bar] for t in range(steps))
    metrical = weighted / total_hits if total_hits else 0.0

    # fast runs
    fast_hits = [0] * drums
    runs = 0
    for d in range(drums):
        t = 0
        while t < steps:
            if h[t][d]:
                start = t
                while t < steps and h[t][d]:
                    t += 1
                if t - start >= fast_threshold:
                    runs += 1
                    fast_hits[d] += t - start
            else:
                t += 1
    fast_fraction = [f / c if c else 0.0 for f, c in zip(fast_hits, drum_hits, strict=True)]
    runs_per_bar = runs * steps_per_bar / steps if steps else 0.0

    # n-grams
    count = steps - NGRAM + 1
    grams = Counter(tuple(rows[t : t + NGRAM]) for t in range(max(count, 0)))
    ngram_diversity = len(grams) / count if count > 0 else 0.0

    # phrases
    n_phrases = steps // phrase_len
    phrases = [h[p * phrase_len : (p + 1) * phrase_len] for p in range(n_phrases)]
    bar_rep = (
        sum(_jaccard(bars[b], bars[b - 1]) for b in range(1, n_bars)) / (n_bars - 1)
        if n_bars >= 2
        else 0.0
    )
    phrase_rep = (
        sum(_jaccard(phrases[p], phrases[p - 1]) for p in range(1, n_phrases)) / (n_phrases - 1)
        if n_phrases >= 2
        else 0.0
    )
    bar_hits = [sum(per_step[b * steps_per_bar : (b + 1) * steps_per_bar]) for b in range(n_bars)]
    phrase_hits = [
        bar_hits[p * bars_per_phrase : (p + 1) * bars_per_phrase] for p in range(n_phrases)
    ]
    fills = []
    for p in range(n_phrases):
        dens = bar_density[p * bars_per_phrase : (p + 1) * bars_per_phrase]
        mean = sum(dens) / len(dens)
        fills.append(dens[-1] / mean if mean > 0 else 0.0)
    fill_ratio = sum(fills) / len(fills) if fills else 0.0
    chunks = [rows[s : s + phrase_len] for s in range(0, steps, phrase_len)]
    phrase_entropy = sum(_entropy(c) for c in chunks) / len(chunks) if chunks else 0.0

    # sections
    if sections is None:
        sections = [(s, min(s + 2 * phrase_len, steps)) for s in range(0, steps, 2 * phrase_len)]
    spans = [(max(0, s), min(steps, e)) for s, e in sections]
    spans = [(s, e) for s, e in spans if e > s]
    sec_density = [sum(per_step[s:e]) / (e - s) for s, e in spans]
    if sec_density:
        m = sum(sec_density) / len(sec_density)
        contrast = math.sqrt(sum((x - m) ** 2 for x in sec_density) / len(sec_density))
    else:
        contrast = 0.0

    periods = _periods(h, steps_per_bar)
    return {
        "step": {
            "avg_hits": avg_hits,
            "drum_density": drum_density,
            "max_hits": max_hits,
            "ioi_mean": ioi_mean,
            "ioi_var": ioi_var,
            "ioi_hist": ioi_hist,
            "co_occurrence": co_fraction,
            "co_occurrence_matrix": co,
            "transitions": step_trans,
            "onset_transitions": trans,
            "fast_patterns": seed_fast,
            "step_entropy": _entropy(rows),
        },
        "bar": {
            "density": bar_density,
            "fraction_dense_bars": seed_dense,
            "fraction_busy_bars": fraction_dense,
            "syncopation": syncopation,
            "metrical_syncopation": metrical,
            "fast_fraction": fast_fraction,
            "fast_runs_per_bar": runs_per_bar,
            "ngram_diversity": len(grams),
            "ngram_diversity_ratio": ngram_diversity,
            "swing": _swing(h, steps_per_bar),
        },
        "phrase": {
            "phrase_structure": phrase_hits if phrase_hits else np.zeros((0, bars_per_phrase)),
            "bar_repetition": bar_rep,
            "phrase_repetition": phrase_rep,
            "fill_ratio": fill_ratio,
            "phrase_entropy": phrase_entropy,
            "section_contrast": contrast,
            "polyrhythm": _polyrhythm(periods),
        },
        "section": _sections(h, spans, steps_per_bar),
    }


def baseline_song_metrics(
    seq: np.ndarray, steps_per_bar: int = 16, bars_per_phrase: int = 4, fast_threshold: int = 4
) -> dict[str, Any]:
    """The song metrics of :func:`dataset.metrics.song_level_metrics`, from the baseline's loops."""
    w = baseline_window_metrics(seq, steps_per_bar, bars_per_phrase, None, fast_threshold)
    step, bar, phrase = w["step"], w["bar"], w["phrase"]
    periods = _periods((np.asarray(seq) > 0).tolist(), steps_per_bar)
    return {
        "avg_hits": step["avg_hits"],
        "drum_density": step["drum_density"],
        "max_hits": step["max_hits"],
        "step_entropy": step["step_entropy"],
        "phrase_entropy": phrase["phrase_entropy"],
        "ngram_diversity": bar["ngram_diversity"],
        "length_steps": len(seq),
        "length_bars": len(seq) / steps_per_bar,
        "ioi_mean": step["ioi_mean"],
        "co_occurrence": step["co_occurrence"],
        "fraction_dense_bars": bar["fraction_dense_bars"],
        "fraction_busy_bars": bar["fraction_busy_bars"],
        "syncopation": bar["syncopation"],
        "metrical_syncopation": bar["metrical_syncopation"],
        "fast_patterns": step["fast_patterns"],
        "fast_runs_per_bar": bar["fast_runs_per_bar"],
        "bar_repetition": phrase["bar_repetition"],
        "phrase_repetition": phrase["phrase_repetition"],
        "fill_ratio": phrase["fill_ratio"],
        "section_contrast": phrase["section_contrast"],
        "ngram_diversity_ratio": bar["ngram_diversity_ratio"],
        "swing": bar["swing"],
        "polyrhythm": _polyrhythm(periods),
        "drum_periods": periods,
    }


class SeedBaselineDataset:
    """The seed's dataset, one sample at a time, with the same windows and augmentation."""

    def __init__(
        self,
        sequences: list[np.ndarray],
        seq_len: int = 512,
        steps_per_bar: int = 16,
        bars_per_phrase: int = 4,
        sections: Sequence[tuple[int, int]] | None = None,
        augment: bool = False,
        fast_threshold: int = 4,
        seed: int = 0,
    ) -> None:
        self.sequences = [np.asarray(s, dtype=np.float32) for s in sequences]
        self.seq_len = seq_len
        self.steps_per_bar = steps_per_bar
        self.bars_per_phrase = bars_per_phrase
        self.phrase_len = steps_per_bar * bars_per_phrase
        self.sections = sections
        self.augment = augment
        self.fast_threshold = fast_threshold
        self.seed = seed
        self.epoch = 0
        self.sample_indices = []
        for i, s in enumerate(self.sequences):
            for start in range(max(len(s) - seq_len, 0) + 1):
                self.sample_indices.append((i, start))
        self._song: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.sample_indices)

    def song_metrics(self, i: int) -> dict[str, Any]:
        if i not in self._song:
            self._song[i] = baseline_song_metrics(
                self.sequences[i], self.steps_per_bar, self.bars_per_phrase, self.fast_threshold
            )
        return self._song[i]

    def __getitem__(self, idx: int) -> dict[str, Any]:
        import torch

        i, start = self.sample_indices[idx]
        window = self.sequences[i][start : start + self.seq_len]
        if self.augment and len(window) > 1:
            rng = np.random.default_rng([self.seed, self.epoch, idx])
            window = np.roll(window, int(rng.integers(len(window))), axis=0)
        n = len(window)
        n_bars, n_phrases = n // self.steps_per_bar, n // self.phrase_len
        levels = baseline_window_metrics(
            window, self.steps_per_bar, self.bars_per_phrase, self.sections, self.fast_threshold
        )
        levels["song"] = self.song_metrics(i)

        def tensor(v: Any) -> torch.Tensor:
            return torch.tensor(v, dtype=torch.float32)

        metrics = {
            level: [{k: tensor(v) for k, v in d.items()} for d in part]
            if level == "section"
            else {k: tensor(v) for k, v in part.items()}
            for level, part in levels.items()
        }
        d = window.shape[1]
        bars = window[: n_bars * self.steps_per_bar].reshape(n_bars, self.steps_per_bar, d)
        phrases = window[: n_phrases * self.phrase_len].reshape(n_phrases, self.phrase_len, d)
        return {
            "step": tensor(window),
            "bar": tensor(bars.mean(axis=1, dtype=np.float64)),  # the seed's _aggregate
            "phrase": tensor(phrases.mean(axis=1, dtype=np.float64)),
            "metrics": metrics,
        }
