"""The seed's dataset written the obvious way: a baseline for throughput comparisons only.

This is *not* used by drum-env. It computes the same samples and the same set of metrics, with
the same definitions, as :class:`dataset.hierarchical.CompleteHierarchicalDrumDataset` and
:mod:`dataset.metrics` (``benchmarks/dataset_throughput.py`` checks that they agree), but the way
the seed's description reads when coded directly: Python loops over steps and drums on nested
lists of booleans, ``collections.Counter`` for step patterns and n-grams, one sample at a time,
and ``torch.tensor`` for every output. Song metrics are cached per file, as in the real
dataset, so the comparison is of the per-window work.
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


def baseline_window_metrics(
    window: np.ndarray,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    sections: Sequence[tuple[int, int]] | None = None,
    fast_threshold: int = 4,
) -> dict[str, Any]:
    """Every window metric of :func:`dataset.metrics.window_metrics`, with Python loops."""
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

    # bars
    n_bars = steps // steps_per_bar
    bars = [h[b * steps_per_bar : (b + 1) * steps_per_bar] for b in range(n_bars)]
    bar_density = [
        sum(per_step[b * steps_per_bar : (b + 1) * steps_per_bar]) / steps_per_bar
        for b in range(n_bars)
    ]
    fraction_dense = sum(1 for x in bar_density if x >= DENSE_THRESHOLD) / n_bars if n_bars else 0.0
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
    sec_entropy = [_entropy(rows[s:e]) for s, e in spans]
    if sec_density:
        m = sum(sec_density) / len(sec_density)
        contrast = math.sqrt(sum((x - m) ** 2 for x in sec_density) / len(sec_density))
    else:
        contrast = 0.0

    return {
        "step/avg_hits": avg_hits,
        "step/drum_density": drum_density,
        "step/max_hits": max_hits,
        "step/co_occurrence": co,
        "step/transitions": trans,
        "step/ioi_mean": ioi_mean,
        "step/ioi_var": ioi_var,
        "step/ioi_hist": ioi_hist,
        "step/entropy": _entropy(rows),
        "bar/density": bar_density,
        "bar/fraction_dense": fraction_dense,
        "bar/syncopation": syncopation,
        "bar/metrical_syncopation": metrical,
        "bar/fast_fraction": fast_fraction,
        "bar/fast_runs_per_bar": runs_per_bar,
        "bar/ngram_diversity": ngram_diversity,
        "phrase/bar_repetition": bar_rep,
        "phrase/phrase_repetition": phrase_rep,
        "phrase/fill_ratio": fill_ratio,
        "phrase/entropy": phrase_entropy,
        "section/density": sec_density,
        "section/entropy": sec_entropy,
        "section/contrast": contrast,
    }


def baseline_song_metrics(
    seq: np.ndarray, steps_per_bar: int = 16, bars_per_phrase: int = 4, fast_threshold: int = 4
) -> dict[str, Any]:
    """The song metrics of :func:`dataset.metrics.song_metrics`, from the baseline's loops."""
    w = baseline_window_metrics(seq, steps_per_bar, bars_per_phrase, None, fast_threshold)
    return {
        "song/length_steps": len(seq),
        "song/length_bars": len(seq) / steps_per_bar,
        "song/avg_hits": w["step/avg_hits"],
        "song/drum_density": w["step/drum_density"],
        "song/max_hits": w["step/max_hits"],
        "song/ioi_mean": w["step/ioi_mean"],
        "song/fraction_dense_bars": w["bar/fraction_dense"],
        "song/syncopation": w["bar/syncopation"],
        "song/metrical_syncopation": w["bar/metrical_syncopation"],
        "song/fast_runs_per_bar": w["bar/fast_runs_per_bar"],
        "song/bar_repetition": w["phrase/bar_repetition"],
        "song/phrase_repetition": w["phrase/phrase_repetition"],
        "song/fill_ratio": w["phrase/fill_ratio"],
        "song/section_contrast": w["section/contrast"],
        "song/step_entropy": w["step/entropy"],
        "song/phrase_entropy": w["phrase/entropy"],
        "song/ngram_diversity": w["bar/ngram_diversity"],
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
        values = {
            **baseline_window_metrics(
                window,
                self.steps_per_bar,
                self.bars_per_phrase,
                self.sections,
                self.fast_threshold,
            ),
            **self.song_metrics(i),
        }
        return {
            "step": torch.tensor(window, dtype=torch.float32),
            "bar": torch.tensor(
                window[: n_bars * self.steps_per_bar].reshape(n_bars, self.steps_per_bar, -1),
                dtype=torch.float32,
            ),
            "phrase": torch.tensor(
                window[: n_phrases * self.phrase_len].reshape(n_phrases, self.phrase_len, -1),
                dtype=torch.float32,
            ),
            "metrics": {k: torch.tensor(v, dtype=torch.float32) for k, v in values.items()},
        }
