"""Tests for dataset/metrics/ (the package): every rhythm metric against its docstring definition.

Three kinds of check, as STYLE.md §10 asks:

* hand-worked examples (a two-bar kick/snare/hat groove at 8 steps per bar, worked out in the
  comments, expected numbers written literally);
* tables of cases (``pytest.mark.parametrize``);
* hypothesis properties on random sequences: finiteness and shapes, bounds, batch consistency
  (``f(stack)[i] == f(stack[i])``, which the vector env relies on), window == song metrics,
  invariances, and agreement with small loop-based oracles written straight from the docstrings.
"""

from __future__ import annotations

import doctest
import importlib
import itertools
import math
import pkgutil
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dataset import metrics
from dataset.metrics import (
    as_hits,
    bar_density,
    co_occurrence,
    default_sections,
    fast_patterns,
    fraction_dense_bars,
    hit_density,
    ioi_stats,
    jaccard,
    metrical_syncopation,
    metrical_weights,
    n_grams,
    pattern_entropy,
    phrase_entropy,
    phrase_structure,
    section_metrics,
    song_metrics,
    step_codes,
    syncopation,
    transitions,
    window_metrics,
)

FAST = settings(max_examples=60, deadline=None)
FEW = settings(max_examples=25, deadline=None)

# --------------------------------------------------------------------------- the groove

# Two bars at steps_per_bar=8, drums (kick K, snare S, hat H); step code = K + 2 S + 4 H.
#
#   t : 0 1 2 3 4 5 6 7 | 8 9 10 11 12 13 14 15
#   K : x . . . x . . . | x .  .  x  x  .  .  .     hits 0,4,8,11,12        (5)
#   S : . . x . . . x . | . .  x  .  .  .  x  x     hits 2,6,10,14,15       (5)
#   H : x x x x x x x x | x x  x  x  x  .  .  .     hits 0..12              (13)
#   n : 2 1 2 1 2 1 2 1 | 2 1  2  2  2  0  1  1     drums per step, 23 hits in all
#   c : 5 4 6 4 5 4 6 4 | 5 4  6  5  5  0  2  2     step code
KICK = [0, 4, 8, 11, 12]
SNARE = [2, 6, 10, 14, 15]
HAT = list(range(13))


def groove(dtype=np.float32, velocity: float = 1.0) -> np.ndarray:
    seq = np.zeros((16, 3), dtype=dtype)
    seq[KICK, 0] = velocity
    seq[SNARE, 1] = velocity
    seq[HAT, 2] = velocity
    return seq


def test_groove_layout():
    # The hand-worked tables below rest on this picture; check it once, independently.
    h = groove() > 0
    assert h.sum(axis=1).tolist() == [2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 2, 2, 0, 1, 1]
    assert (h * [1, 2, 4]).sum(axis=1).tolist() == [5, 4, 6, 4, 5, 4, 6, 4, 5, 4, 6, 5, 5, 0, 2, 2]


def test_groove_hit_density():
    d = hit_density(groove())
    # 23 hits over 16 steps; K 5/16, S 5/16, H 13/16; at most two drums on one step.
    assert d.avg_hits == 1.4375
    np.testing.assert_array_equal(d.drum_density, [0.3125, 0.3125, 0.8125])
    assert d.max_hits == 2.0


@pytest.mark.parametrize(
    ("steps_per_bar", "expected"),
    [
        (8, [1.5, 1.375]),  # 12 and 11 hits over 8 steps
        (16, [1.4375]),  # one bar: 23 / 16
        (4, [1.5, 1.5, 1.75, 1.0]),  # 6, 6, 7, 4 hits over 4 steps
        (5, [1.6, 1.4, 1.4]),  # 8, 7, 7 hits over 5 steps; step 15 is a partial bar, left out
        (17, []),  # no complete bar
    ],
)
def test_groove_bar_density(steps_per_bar, expected):
    np.testing.assert_array_equal(bar_density(groove(), steps_per_bar), expected)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(1.0, 1.0), (1.375, 1.0), (1.4, 0.5), (1.5, 0.5), (1.51, 0.0)],
)
def test_groove_fraction_dense_bars(threshold, expected):
    # Bar densities 1.5 and 1.375 (see above); dense means >= threshold.
    assert fraction_dense_bars(groove(), 8, threshold) == expected


def test_groove_ioi_stats():
    # K hits 0,4,8,11,12: IOIs 4,4,3,1 -> mean 3, var (1+1+0+4)/4 = 1.5.
    # S hits 2,6,10,14,15: IOIs 4,4,4,1 -> mean 3.25, var (3*0.5625 + 5.0625)/4 = 1.6875.
    # H hits 0..12: twelve IOIs of 1 -> mean 1, var 0.
    s = ioi_stats(groove(), max_ioi=4)
    np.testing.assert_allclose(s.mean, [3.0, 3.25, 1.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.var, [1.5, 1.6875, 0.0], rtol=0, atol=1e-12)
    # Bins: IOI 1, 2, 3, >= 4.
    np.testing.assert_allclose(
        s.hist, [[0.25, 0, 0.25, 0.5], [0.25, 0, 0, 0.75], [1, 0, 0, 0]], rtol=0, atol=1e-12
    )
    # With three bins, IOIs of 3 and 4 share the last one.
    s3 = ioi_stats(groove(), max_ioi=3)
    np.testing.assert_allclose(s3.hist, [[0.25, 0, 0.75], [0.25, 0, 0.75], [1, 0, 0]])


def test_groove_co_occurrence():
    # K and S never together; every kick has a hat; snares 2, 6, 10 have a hat, 14, 15 not.
    expected = np.array([[5, 0, 5], [0, 5, 3], [5, 3, 13]]) / 16
    np.testing.assert_array_equal(co_occurrence(groove()), expected)


def test_groove_step_codes():
    expected = [5, 4, 6, 4, 5, 4, 6, 4, 5, 4, 6, 5, 5, 0, 2, 2]
    codes = step_codes(groove())
    assert codes.dtype == np.int64
    assert codes.tolist() == expected


@pytest.mark.parametrize(
    ("n", "distinct", "diversity"),
    [
        # 2-grams, 15 of them: (5,4) (4,6) (6,4) (4,5) repeat; new are (6,5) (5,5) (5,0) (0,2)
        # (2,2): 9 distinct.
        (2, 9, 9 / 15),
        # 4-grams, 13 of them: t=0..3 give 4 distinct, t=4..7 repeat them, t=8..12 are all new
        # (5465, 4655, 6550, 5502, 5022): 9 distinct.
        (4, 9, 9 / 13),
        (1, 5, 5 / 16),  # codes {5, 4, 6, 0, 2}
        (16, 1, 1.0),  # the whole sequence is one 16-gram
        (17, 0, 0.0),  # shorter than n
    ],
)
def test_groove_n_grams(n, distinct, diversity):
    g = n_grams(groove(), n)
    assert g.num_distinct == distinct
    assert g.diversity == pytest.approx(diversity, abs=1e-15)
    assert g.codes.shape == (max(16 - n + 1, 0),)


@pytest.mark.parametrize(
    ("threshold", "fraction", "runs_per_bar"),
    [
        # Runs: K {0},{4},{8},{11,12}; S {2},{6},{10},{14,15}; H {0..12} (13 steps).
        (4, [0, 0, 1], 0.5),  # one fast run (H) in 2 bars
        (2, [0.4, 0.4, 1], 1.5),  # K 11-12 and S 14-15 count too: 3 runs in 2 bars
        (1, [1, 1, 1], 4.5),  # every run: 4 + 4 + 1 = 9 runs in 2 bars
        (13, [0, 0, 1], 0.5),
        (14, [0, 0, 0], 0.0),
    ],
)
def test_groove_fast_patterns(threshold, fraction, runs_per_bar):
    f = fast_patterns(groove(), threshold, steps_per_bar=8)
    np.testing.assert_array_equal(f.fraction, fraction)
    assert f.runs_per_bar == runs_per_bar


def test_groove_transitions():
    # Onset steps: every step but 13. Pairs (onset t -> next onset t'):
    #   K row: K->H at t=0,4,8,11; K->K at 11; K->S at 12 (12 -> 14 skips the silent 13): 1,1,4.
    #   S row: S->H at 2,6,10; S->K at 10; S->S at 14:                                   1,1,3.
    #   H row: H->H at 0..11 (12); H->S at 1,5,9,12 (4); H->K at 3,7,10,11 (4):         4,4,12.
    expected = np.array([[1 / 6, 1 / 6, 4 / 6], [1 / 5, 1 / 5, 3 / 5], [0.2, 0.2, 0.6]])
    np.testing.assert_allclose(transitions(groove()), expected, rtol=0, atol=1e-12)


def test_groove_syncopation():
    # On the first step of a bar: 2 hits at t=0 and 2 at t=8; 19 of the 23 hits are off it.
    assert syncopation(groove(), 8) == pytest.approx(19 / 23, abs=1e-15)
    # One 16-step bar: only t=0 is on it.
    assert syncopation(groove(), 16) == pytest.approx(21 / 23, abs=1e-15)


def test_groove_metrical_syncopation():
    # Weights at 8 steps per bar: 0 on even steps, 0.5 on odd ones. Hits on odd steps:
    # t=1,3,5,7,9 (one each), 11 (two), 13 (none), 15 (one): 8 hits * 0.5 = 4, over 23 hits.
    assert metrical_syncopation(groove(), 8) == pytest.approx(4 / 23, abs=1e-15)


# log2 of small integers, to write entropies exactly as worked out by hand.
L3, L5 = math.log2(3), math.log2(5)


def test_groove_pattern_entropy():
    # Code counts over 16 steps: 5 x5, 4 x5, 6 x3, 2 x2, 0 x1.
    # H = log2 16 - (5 log2 5 + 5 log2 5 + 3 log2 3 + 2 log2 2 + 0) / 16.
    expected = 4 - (10 * L5 + 3 * L3 + 2) / 16
    assert expected == pytest.approx(2.1266144718101823, abs=1e-15)
    assert pattern_entropy(groove()) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("phrase_len", "expected"),
    [
        # Phrase 1 codes 5 4 6 4 5 4 6 4 -> p = 1/4, 1/2, 1/4 -> 1.5 bits.
        # Phrase 2 codes 5 4 6 5 5 0 2 2 -> counts 3,1,1,1,2 -> 3 - (3 log2 3 + 2) / 8 bits.
        (8, (1.5 + 3 - (3 * L3 + 2) / 8) / 2),
        # One phrase: the whole-sequence entropy.
        (16, 4 - (10 * L5 + 3 * L3 + 2) / 16),
        (100, 4 - (10 * L5 + 3 * L3 + 2) / 16),
        # Phrase t=0..11: 5 x4, 4 x5, 6 x3 -> log2 12 - (8 + 5 log2 5 + 3 log2 3) / 12;
        # partial phrase t=12..15: 5 0 2 2 -> 1.5 bits; the mean of the two.
        (12, (math.log2(12) - (8 + 5 * L5 + 3 * L3) / 12 + 1.5) / 2),
        # Every step its own phrase: 16 entropies of 0.
        (1, 0.0),
    ],
)
def test_groove_phrase_entropy(phrase_len, expected):
    assert phrase_entropy(groove(), phrase_len) == pytest.approx(expected, abs=1e-12)


def test_groove_jaccard_of_bars():
    # Bar 1: K{0,4} S{2,6} H{0..7}: 12 hits. Bar 2 (positions in the bar): K{0,3,4} S{2,6,7}
    # H{0..4}: 11 hits. Shared: K{0,4} S{2,6} H{0..4} = 9. Union 12 + 11 - 9 = 14.
    g = groove()
    assert jaccard(g[:8], g[8:]) == pytest.approx(9 / 14, abs=1e-15)
    assert jaccard(g[8:], g[:8]) == pytest.approx(9 / 14, abs=1e-15)


@pytest.mark.parametrize(
    ("bars_per_phrase", "bar_rep", "phrase_rep", "fill"),
    [
        # One-bar phrases: phrases are the bars; each phrase's last bar is itself: fill 1.
        (1, 9 / 14, 9 / 14, 1.0),
        # One two-bar phrase: no phrase pair; fill = 11 hits / mean(12, 11) = 22 / 23.
        (2, 9 / 14, 0.0, 22 / 23),
        # No complete phrase.
        (3, 9 / 14, 0.0, 0.0),
    ],
)
def test_groove_phrase_structure(bars_per_phrase, bar_rep, phrase_rep, fill):
    s = phrase_structure(groove(), 8, bars_per_phrase)
    assert s.bar_repetition == pytest.approx(bar_rep, abs=1e-15)
    assert s.phrase_repetition == pytest.approx(phrase_rep, abs=1e-15)
    assert s.fill_ratio == pytest.approx(fill, abs=1e-15)


@pytest.mark.parametrize(
    ("sections", "density", "entropy", "contrast"),
    [
        # Halves: densities 12/8, 11/8; entropies of the two 8-step phrases (see above).
        ([(0, 8), (8, 16)], [1.5, 1.375], [1.5, 3 - (3 * L3 + 2) / 8], 0.0625),
        # Clipped to the window; (20, 30) is empty after clipping and dropped.
        ([(-5, 8), (8, 100), (20, 30)], [1.5, 1.375], [1.5, 3 - (3 * L3 + 2) / 8], 0.0625),
        # Unequal spans: t=0..3 has 6 hits (codes 5 4 6 4 -> 1.5 bits); t=4..15 has 17 hits
        # (codes 5 4 6 4 5 4 6 5 5 0 2 2 -> counts 4,3,2,2,1); std of (1.5, 17/12) = 1/24.
        (
            [(0, 4), (4, 16)],
            [1.5, 17 / 12],
            [1.5, math.log2(12) - (8 + 3 * L3 + 2 + 2) / 12],
            1 / 24,
        ),
        # One section: contrast 0.
        ([(0, 16)], [1.4375], [4 - (10 * L5 + 3 * L3 + 2) / 16], 0.0),
        # Overlapping spans are allowed.
        ([(0, 8), (0, 8)], [1.5, 1.5], [1.5, 1.5], 0.0),
    ],
)
def test_groove_section_metrics(sections, density, entropy, contrast):
    s = section_metrics(groove(), sections)
    np.testing.assert_allclose(s.density, density, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.entropy, entropy, rtol=0, atol=1e-12)
    assert s.contrast == pytest.approx(contrast, abs=1e-12)


def test_groove_default_sections():
    # phrase_len 4 -> sections of 8 steps: the two bars.
    s = section_metrics(groove(), None, phrase_len=4)
    np.testing.assert_allclose(s.density, [1.5, 1.375])
    assert s.contrast == pytest.approx(0.0625)
    # phrase_len 8 -> one section of 16 steps.
    assert section_metrics(groove(), None, phrase_len=8).density.tolist() == [1.4375]


def test_groove_window_and_song_metrics():
    w = window_metrics(groove(), steps_per_bar=8, bars_per_phrase=1)
    assert w["step/avg_hits"] == 1.4375
    np.testing.assert_array_equal(w["bar/density"], [1.5, 1.375])
    assert w["bar/syncopation"] == pytest.approx(19 / 23)
    assert w["bar/metrical_syncopation"] == pytest.approx(4 / 23)
    assert w["bar/fast_runs_per_bar"] == 0.5
    assert w["bar/ngram_diversity"] == pytest.approx(9 / 13)
    assert w["phrase/bar_repetition"] == pytest.approx(9 / 14)
    assert w["phrase/entropy"] == pytest.approx((1.5 + 3 - (3 * L3 + 2) / 8) / 2)
    # Default sections: one per two phrases of one bar each = the whole 16 steps.
    np.testing.assert_array_equal(w["section/density"], [1.4375])
    s = song_metrics(groove(), steps_per_bar=8, bars_per_phrase=1)
    assert s["song/length_steps"] == 16.0
    assert s["song/length_bars"] == 2.0
    assert s["song/step_entropy"] == pytest.approx(4 - (10 * L5 + 3 * L3 + 2) / 16)
    assert s["song/fill_ratio"] == 1.0


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("steps_per_bar", "beats_per_bar", "expected"),
    [
        # beat 4: 0 on the beat, 0.5 on the "and", 1 on "e" and "a".
        (16, 4, [0, 1, 0.5, 1] * 4),
        # beat 2: 0 on the beat, 0.5 on the 8th off-beat (the docstring's example).
        (8, 4, [0, 0.5] * 4),
        # beat 3 (odd): no half-beat level.
        (12, 4, [0, 1, 1] * 4),
        # beat 1: every step is on the beat grid.
        (4, 4, [0, 0, 0, 0]),
        (3, 4, [0, 0, 0]),  # beat = max(3 // 4, 1) = 1
        (12, 3, [0, 1, 0.5, 1] * 3),  # beat 4
        (6, 2, [0, 1, 1, 0, 1, 1]),  # beat 3
        (16, 2, [0, 1, 1, 1, 0.5, 1, 1, 1] * 2),  # beat 8, half-beat 4
        (1, 1, [0]),
    ],
)
def test_metrical_weights_table(steps_per_bar, beats_per_bar, expected):
    w = metrical_weights(steps_per_bar, beats_per_bar)
    assert w.dtype == np.float64
    assert w.tolist() == expected


def test_metrical_weights_default_is_16_steps_4_beats():
    assert metrical_weights().tolist() == [0, 1, 0.5, 1] * 4


def one_hit(step: int, steps: int = 16, drums: int = 1, drum: int = 0) -> np.ndarray:
    seq = np.zeros((steps, drums))
    seq[step, drum] = 1
    return seq


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([0], 0.0),  # on the beat
        ([4, 8, 12], 0.0),
        ([2, 6], 0.5),  # 8th-note off-beats
        ([1, 3, 13, 15], 1.0),  # 16ths between them
        ([0, 2], 0.25),
        ([0, 1, 2, 3], (0 + 1 + 0.5 + 1) / 4),
        ([17], 1.0),  # second bar, position 1
        ([18, 20], 0.25),  # second bar, positions 2 and 4
        ([], 0.0),  # no hits
    ],
)
def test_metrical_syncopation_table(steps, expected):
    seq = np.zeros((32, 2))
    seq[steps, 0] = 1
    assert metrical_syncopation(seq) == expected


def test_metrical_syncopation_counts_every_drum_of_a_step():
    seq = np.zeros((16, 3))
    seq[0, :] = 1  # three hits, weight 0
    seq[1, 0] = 1  # one hit, weight 1
    assert metrical_syncopation(seq) == 0.25


@pytest.mark.parametrize(
    ("hits", "steps_per_bar", "expected"),
    [
        ([0], 16, 0.0),
        ([0, 16], 16, 0.0),
        ([1], 16, 1.0),
        ([0, 1], 16, 0.5),
        ([0, 4, 8, 12], 16, 0.75),
        ([0, 4, 8, 12], 4, 0.0),
        ([0, 4, 8, 12], 8, 0.5),
        ([], 16, 0.0),
        ([3], 1, 0.0),  # one step per bar: every step starts a bar
    ],
)
def test_syncopation_table(hits, steps_per_bar, expected):
    seq = np.zeros((32, 1))
    seq[hits, 0] = 1
    assert syncopation(seq, steps_per_bar) == expected


@pytest.mark.parametrize(
    ("hits", "max_ioi", "mean", "var", "hist"),
    [
        ([], 4, 0.0, 0.0, [0, 0, 0, 0]),  # no hit: no IOI
        ([5], 4, 0.0, 0.0, [0, 0, 0, 0]),  # one hit: no IOI
        ([0, 1], 4, 1.0, 0.0, [1, 0, 0, 0]),  # consecutive steps: IOI 1
        ([0, 2, 3], 3, 1.5, 0.25, [0.5, 0.5, 0]),  # IOIs 2, 1 (the docstring's example)
        ([0, 9], 4, 9.0, 0.0, [0, 0, 0, 1]),  # beyond max_ioi: last bin
        ([0, 4, 8, 12], 4, 4.0, 0.0, [0, 0, 0, 1]),
        ([0, 1, 5], 1, 2.5, 2.25, [1]),  # one bin holds every IOI
        ([0, 1, 3, 6, 10], 5, 2.5, 1.25, [0.25, 0.25, 0.25, 0.25, 0]),
    ],
)
def test_ioi_stats_table(hits, max_ioi, mean, var, hist):
    seq = np.zeros((16, 2))
    seq[hits, 1] = 1
    s = ioi_stats(seq, max_ioi)
    # Drum 0 is silent throughout.
    np.testing.assert_allclose(s.mean, [0, mean], rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.var, [0, var], rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.hist, [[0] * max_ioi, hist], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("runs", "threshold", "fraction", "runs_per_bar"),
    [
        ([(0, 4)], 4, 1.0, 1.0),  # one run of exactly the threshold, 16 steps = 1 bar
        ([(0, 3)], 4, 0.0, 0.0),
        ([(0, 4), (5, 9)], 4, 1.0, 2.0),  # two runs separated by one rest
        ([(0, 4), (4, 8)], 4, 1.0, 1.0),  # adjacent: one run of 8
        ([(0, 2), (10, 16)], 4, 0.75, 1.0),  # 6 of 8 hits in the fast run
        ([(0, 16)], 4, 1.0, 1.0),  # the whole sequence
        ([(12, 16)], 4, 1.0, 1.0),  # a run that ends the sequence
        ([], 4, 0.0, 0.0),
    ],
)
def test_fast_patterns_table(runs, threshold, fraction, runs_per_bar):
    seq = np.zeros((16, 2))
    for start, end in runs:
        seq[start:end, 0] = 1
    f = fast_patterns(seq, threshold, 16)
    np.testing.assert_allclose(f.fraction, [fraction, 0.0], rtol=0, atol=1e-15)
    assert f.runs_per_bar == runs_per_bar


def test_fast_patterns_runs_per_bar_divides_by_the_fractional_bar_count():
    # One run in 24 steps at 16 steps per bar = 1.5 bars -> 2/3 runs per bar.
    seq = np.zeros((24, 1))
    seq[:4] = 1
    assert fast_patterns(seq, 4, 16).runs_per_bar == pytest.approx(2 / 3, abs=1e-15)


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        # Alternating K, S: K always followed by S and S by K (except the last).
        ([[1, 0], [0, 1], [1, 0], [0, 1]], [[0, 1], [1, 0]]),
        # Silence between onsets is skipped.
        ([[1, 0], [0, 0], [0, 0], [0, 1]], [[0, 1], [0, 0]]),
        # Both drums, then only K: each drum's row is all K.
        ([[1, 1], [1, 0]], [[1, 0], [1, 0]]),
        # K then both: K's row splits evenly; S is never followed.
        ([[1, 0], [1, 1]], [[0.5, 0.5], [0, 0]]),
        # One onset: nothing follows.
        ([[1, 1], [0, 0]], [[0, 0], [0, 0]]),
        ([[0, 0], [0, 0]], [[0, 0], [0, 0]]),
    ],
)
def test_transitions_table(grid, expected):
    np.testing.assert_allclose(transitions(np.array(grid)), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([[0, 0]], [[0, 0]], 1.0),  # both silent
        ([[1, 0]], [[1, 0]], 1.0),
        ([[1, 0]], [[0, 1]], 0.0),
        ([[1, 1]], [[1, 0]], 0.5),
        ([[1, 0], [1, 1]], [[1, 1], [0, 1]], 0.5),  # shared 2, union 4
        ([[1, 0]], [[0, 0]], 0.0),
    ],
)
def test_jaccard_table(a, b, expected):
    assert jaccard(np.array(a), np.array(b)) == expected
    assert jaccard(np.array(b), np.array(a)) == expected


@pytest.mark.parametrize(
    ("steps", "phrase_len", "expected"),
    [
        (16, 4, [(0, 8), (8, 16)]),
        (10, 4, [(0, 8), (8, 10)]),
        (8, 4, [(0, 8)]),
        (1, 64, [(0, 1)]),
        (0, 4, []),
        (512, 64, [(0, 128), (128, 256), (256, 384), (384, 512)]),
    ],
)
def test_default_sections_table(steps, phrase_len, expected):
    assert default_sections(steps, phrase_len) == expected


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        ([[0, 0]], 0.0),  # one step
        ([[1, 0]] * 8, 0.0),  # one pattern repeated
        ([[0, 0]] * 8, 0.0),  # silence
        ([[1, 0], [0, 1]], 1.0),  # two equally likely patterns
        ([[0, 0], [1, 0], [0, 1], [1, 1]], 2.0),  # every pattern of 2 drums once
        ([[1, 0], [1, 0], [1, 0], [0, 0]], 2 - 0.75 * math.log2(3)),  # p = 3/4, 1/4
    ],
)
def test_pattern_entropy_table(grid, expected):
    assert pattern_entropy(np.array(grid)) == pytest.approx(expected, abs=1e-12)


def test_fraction_dense_bars_docstring_examples():
    # 16th-note hats + kick on 0, 8 + snare on 4, 12: 20 hits >= 16 -> dense.
    sixteenths = np.zeros((16, 3))
    sixteenths[:, 2] = 1
    sixteenths[[0, 8], 0] = 1
    sixteenths[[4, 12], 1] = 1
    # 8th-note hats + the same kick and snare: 12 hits < 16 -> not dense.
    eighths = sixteenths.copy()
    eighths[1::2, 2] = 0
    both = np.concatenate([sixteenths, eighths, sixteenths])
    assert fraction_dense_bars(sixteenths) == 1.0
    assert fraction_dense_bars(eighths) == 0.0
    assert fraction_dense_bars(both) == pytest.approx(2 / 3, abs=1e-15)


def test_n_grams_exact_codes_de_bruijn_one_drum():
    # The binary de Bruijn sequence 0001011100 holds each of the 8 3-grams exactly once.
    seq = np.array([0, 0, 0, 1, 0, 1, 1, 1, 0, 0])[:, None]
    g = n_grams(seq, 3)
    assert g.codes.shape == (8,)
    assert len(set(g.codes.tolist())) == 8
    assert g.num_distinct == 8
    assert g.diversity == 1.0


def test_n_grams_exact_codes_de_bruijn_two_drums():
    # Step codes 0010203112132233 0: every ordered pair of the 4 two-drum patterns once.
    codes = [0, 0, 1, 0, 2, 0, 3, 1, 1, 2, 1, 3, 2, 2, 3, 3, 0]
    seq = np.array([[c & 1, c >> 1] for c in codes])
    assert step_codes(seq).tolist() == codes
    g = n_grams(seq, 2)
    assert len(set(g.codes.tolist())) == 16
    assert g.num_distinct == 16
    assert g.diversity == 1.0
    # Repeating the sequence repeats every 2-gram: still 16 (plus the seam pair (0, 0) again).
    g2 = n_grams(np.concatenate([seq, seq]), 2)
    assert g2.num_distinct == 16
    assert g2.diversity == pytest.approx(16 / 33, abs=1e-15)


@pytest.mark.parametrize(("steps", "n"), [(16, 4), (10, 1), (70, 7), (5, 5), (64, 64)])
def test_n_grams_silence_diversity(steps, n):
    # Silence: one distinct n-gram among steps - n + 1.
    g = n_grams(np.zeros((steps, 10)), n)
    assert g.num_distinct == 1
    assert g.diversity == pytest.approx(1 / (steps - n + 1), abs=1e-15)


def test_step_codes_bitmask_and_drum_limit():
    seq = np.zeros((3, 62), dtype=bool)
    seq[0, 0] = seq[1, 61] = True
    seq[2, [1, 30]] = True
    assert step_codes(seq).tolist() == [1, 2**61, 2 + 2**30]
    with pytest.raises(ValueError, match="62"):
        step_codes(np.zeros((3, 63)))


@pytest.mark.parametrize("drums", [25, 40, 62])
@pytest.mark.parametrize("steps", [0, 1, 9, 120])
def test_many_drums_codes_n_grams_entropy(drums, steps):
    # More than 24 drums: the int64 step-code path, and n-grams hashed already for n = 2.
    rng = np.random.default_rng(drums * 1000 + steps)
    seq = np.resize(rng.random((5, drums)) < 0.3, (steps, drums))
    if steps:
        seq[rng.integers(0, steps, 3), rng.integers(0, drums, 3)] ^= True
    codes = [sum(int(seq[t, k]) << k for k in range(drums)) for t in range(steps)]
    assert step_codes(seq).tolist() == codes
    for n in [1, 2, 4]:
        grams = {tuple(codes[t : t + n]) for t in range(steps - n + 1)}
        assert n_grams(seq, n).num_distinct == len(grams)
    counts = Counter(codes)
    entropy = -sum(c / steps * math.log2(c / steps) for c in counts.values())
    assert pattern_entropy(seq) == pytest.approx(entropy, abs=1e-9)


def test_as_hits():
    seq = np.array([[0.0, 0.3], [1.0, 0.0]])
    np.testing.assert_array_equal(as_hits(seq), [[False, True], [True, False]])
    b = np.array([[True, False]])
    assert as_hits(b).dtype == np.bool_
    np.testing.assert_array_equal(as_hits(b), b)


def test_doctests():
    attempted = 0
    for info in pkgutil.iter_modules(metrics.__path__):  # every module of the package
        module = importlib.import_module(f"dataset.metrics.{info.name}")
        result = doctest.testmod(module, verbose=False)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert attempted > 0


# --------------------------------------------------------------------------- strategies

LEVELS = np.array([0.0, 0.3, 1.0], dtype=np.float32)


def _array(draw, shape):
    if draw(st.booleans()):
        return draw(hnp.arrays(np.bool_, shape))
    idx = draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 2)))
    return LEVELS[idx]


@st.composite
def sequences(draw, max_steps: int = 70, max_drums: int = 10, min_steps: int = 0):
    """(T, D) arrays: bool, or float32 with values in {0, 0.3, 1}."""
    steps = draw(st.integers(min_steps, max_steps))
    drums = draw(st.integers(1, max_drums))
    return _array(draw, (steps, drums))


@st.composite
def batches(draw, max_steps: int = 40, max_drums: int = 8):
    """(B, T, D) or (B1, B2, T, D) stacks."""
    lead = draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))
    steps = draw(st.integers(0, max_steps))
    drums = draw(st.integers(1, max_drums))
    return _array(draw, (*lead, steps, drums))


bar_sizes = st.sampled_from([1, 3, 4, 8, 12, 16])
phrase_bars = st.sampled_from([1, 2, 4])


# --------------------------------------------------------------------------- all outputs

N_GRAM = 3
MAX_IOI = 6


def all_outputs(seq, spb: int = 8, bpp: int = 2) -> dict[str, np.ndarray]:
    """Every output of every metric function, by name (batch axes kept in front)."""
    phrase_len = spb * bpp
    d = hit_density(seq)
    i = ioi_stats(seq, MAX_IOI)
    g = n_grams(seq, N_GRAM)
    f = fast_patterns(seq, 3, spb)
    p = phrase_structure(seq, spb, bpp)
    s = section_metrics(seq, None, phrase_len)
    return {
        "avg_hits": d.avg_hits,
        "drum_density": d.drum_density,
        "max_hits": d.max_hits,
        "bar_density": bar_density(seq, spb),
        "fraction_dense": fraction_dense_bars(seq, spb),
        "ioi_mean": i.mean,
        "ioi_var": i.var,
        "ioi_hist": i.hist,
        "co_occurrence": co_occurrence(seq),
        "step_codes": step_codes(seq),
        "ngram_codes": g.codes,
        "ngram_distinct": g.num_distinct,
        "ngram_diversity": g.diversity,
        "fast_fraction": f.fraction,
        "fast_runs_per_bar": f.runs_per_bar,
        "transitions": transitions(seq),
        "syncopation": syncopation(seq, spb),
        "metrical_syncopation": metrical_syncopation(seq, spb),
        "pattern_entropy": pattern_entropy(seq),
        "phrase_entropy": phrase_entropy(seq, phrase_len),
        "jaccard_reversed": jaccard(seq, np.flip(seq, axis=-2)),
        "bar_repetition": p.bar_repetition,
        "phrase_repetition": p.phrase_repetition,
        "fill_ratio": p.fill_ratio,
        "section_density": s.density,
        "section_entropy": s.entropy,
        "section_contrast": s.contrast,
    }


def expected_shapes(batch: tuple, steps: int, drums: int, spb: int = 8, bpp: int = 2) -> dict:
    n_sections = -(-steps // (2 * spb * bpp))
    b = tuple(batch)
    return {
        "avg_hits": b,
        "drum_density": (*b, drums),
        "max_hits": b,
        "bar_density": (*b, steps // spb),
        "fraction_dense": b,
        "ioi_mean": (*b, drums),
        "ioi_var": (*b, drums),
        "ioi_hist": (*b, drums, MAX_IOI),
        "co_occurrence": (*b, drums, drums),
        "step_codes": (*b, steps),
        "ngram_codes": (*b, max(steps - N_GRAM + 1, 0)),
        "ngram_distinct": b,
        "ngram_diversity": b,
        "fast_fraction": (*b, drums),
        "fast_runs_per_bar": b,
        "transitions": (*b, drums, drums),
        "syncopation": b,
        "metrical_syncopation": b,
        "pattern_entropy": b,
        "phrase_entropy": b,
        "jaccard_reversed": b,
        "bar_repetition": b,
        "phrase_repetition": b,
        "fill_ratio": b,
        "section_density": (*b, n_sections),
        "section_entropy": (*b, n_sections),
        "section_contrast": b,
    }


INT_OUTPUTS = {"step_codes", "ngram_codes"}


def check_finite_and_shapes(seq, spb: int = 8, bpp: int = 2) -> dict[str, np.ndarray]:
    out = all_outputs(seq, spb, bpp)
    shapes = expected_shapes(seq.shape[:-2], seq.shape[-2], seq.shape[-1], spb, bpp)
    assert out.keys() == shapes.keys()
    for name, value in out.items():
        value = np.asarray(value)
        assert value.shape == shapes[name], name
        assert value.dtype == (np.int64 if name in INT_OUTPUTS else np.float64), name
        assert np.all(np.isfinite(value)), name
    return out


def check_bounds(seq, out: dict, bpp: int = 2) -> None:
    steps, drums = seq.shape[-2:]
    for name in [
        "drum_density",
        "fraction_dense",
        "ioi_hist",
        "co_occurrence",
        "ngram_diversity",
        "fast_fraction",
        "transitions",
        "syncopation",
        "metrical_syncopation",
        "jaccard_reversed",
        "bar_repetition",
        "phrase_repetition",
    ]:
        v = out[name]
        assert np.all((v >= 0) & (v <= 1)), name
    for name in ["avg_hits", "max_hits", "bar_density", "section_density"]:
        assert np.all((out[name] >= 0) & (out[name] <= drums)), name
    assert np.all(out["avg_hits"] <= out["max_hits"] + 1e-12)
    assert np.all(out["ngram_distinct"] <= max(steps - N_GRAM + 1, 0))
    assert np.all(out["ioi_mean"] >= 0) and np.all(out["ioi_var"] >= 0)
    assert np.all(out["ioi_mean"] <= max(steps - 1, 0))
    assert np.all((out["step_codes"] >= 0) & (out["step_codes"] < 2**drums))
    # co_occurrence: symmetric, diagonal = drum density.
    c = out["co_occurrence"]
    np.testing.assert_array_equal(c, np.swapaxes(c, -1, -2))
    np.testing.assert_array_equal(np.diagonal(c, axis1=-2, axis2=-1), out["drum_density"])
    # Rows of transitions and of the IOI histogram sum to 1 or are all 0.
    for name in ["transitions", "ioi_hist"]:
        rows = out[name].sum(axis=-1)
        ok = np.isclose(rows, 1.0, rtol=0, atol=1e-9) | (rows == 0)
        assert np.all(ok), name
        assert np.all((rows == 0) == np.all(out[name] == 0, axis=-1)), name
    # Entropies: 0 <= H <= log2(min(T, 2**D)).
    cap = math.log2(max(min(steps, 2**drums), 1))
    for name in ["pattern_entropy", "phrase_entropy", "section_entropy"]:
        assert np.all((out[name] >= 0) & (out[name] <= cap + 1e-9)), name
    assert np.all((out["fill_ratio"] >= 0) & (out["fill_ratio"] <= bpp + 1e-12))
    assert np.all(out["section_contrast"] >= 0)


# --------------------------------------------------------------------------- edge cases


def edge_cases():
    cases = []
    for dtype in [np.bool_, np.float32, np.float64]:
        for drums in [1, 3, 10]:
            for steps in [0, 1, 2, 7, 16, 33, 70]:
                cases.append(
                    pytest.param(
                        np.zeros((steps, drums), dtype),
                        id=f"silent-{dtype.__name__}-{steps}x{drums}",
                    )
                )
                cases.append(
                    pytest.param(
                        np.ones((steps, drums), dtype), id=f"full-{dtype.__name__}-{steps}x{drums}"
                    )
                )
    return cases


@pytest.mark.parametrize("seq", edge_cases())
@pytest.mark.parametrize(("spb", "bpp"), [(8, 2), (16, 4), (1, 1), (3, 2)])
def test_edge_cases_finite_shapes_bounds(seq, spb, bpp):
    out = check_finite_and_shapes(seq, spb, bpp)
    check_bounds(seq, out, bpp)


@pytest.mark.parametrize("steps", [0, 1])
def test_empty_and_one_step_values(steps):
    # The documented edge-case values.
    seq = np.ones((steps, 3))
    d = hit_density(seq)
    assert d.avg_hits == (0.0 if steps == 0 else 3.0)
    assert d.max_hits == (0.0 if steps == 0 else 3.0)
    np.testing.assert_array_equal(d.drum_density, [float(steps)] * 3)
    assert fraction_dense_bars(seq, 16) == 0.0
    assert bar_density(seq, 16).shape == (0,)
    np.testing.assert_array_equal(ioi_stats(seq).mean, [0, 0, 0])
    assert pattern_entropy(seq) == 0.0
    assert phrase_entropy(seq) == 0.0
    g = n_grams(seq, 4)
    assert g.num_distinct == 0 and g.diversity == 0.0
    assert fast_patterns(seq).runs_per_bar == 0.0
    np.testing.assert_array_equal(transitions(seq), np.zeros((3, 3)))
    s = phrase_structure(seq)
    assert (s.bar_repetition, s.phrase_repetition, s.fill_ratio) == (0.0, 0.0, 0.0)
    sec = section_metrics(seq)
    assert sec.density.shape == (steps,) and sec.contrast == 0.0
    assert syncopation(seq) == 0.0  # no hit, or every hit on step 0, a bar start
    assert metrical_syncopation(seq) == 0.0
    assert jaccard(seq, seq) == 1.0


def test_all_silent_and_all_hits_values():
    silent, full = np.zeros((32, 4)), np.ones((32, 4))
    assert hit_density(silent).avg_hits == 0.0 and hit_density(full).avg_hits == 4.0
    assert syncopation(silent) == 0.0 and syncopation(full) == 30 / 32
    assert metrical_syncopation(silent) == 0.0
    # Full 16-step bars: 4 beats at 0, 4 eighth off-beats at 0.5, 8 sixteenths at 1 -> 10 / 16.
    assert metrical_syncopation(full) == 10 / 16
    assert pattern_entropy(silent) == 0.0 and pattern_entropy(full) == 0.0
    assert jaccard(silent, silent) == 1.0 and jaccard(full, silent) == 0.0
    assert phrase_structure(silent, 8, 2).bar_repetition == 1.0  # silent bars are identical
    assert phrase_structure(silent, 8, 2).fill_ratio == 0.0  # a silent phrase gives 0
    assert phrase_structure(full, 8, 2).fill_ratio == 1.0
    np.testing.assert_array_equal(fast_patterns(full, 4, 16).fraction, [1, 1, 1, 1])
    assert fast_patterns(full, 4, 16).runs_per_bar == 2.0  # 4 runs in 2 bars
    np.testing.assert_array_equal(transitions(full), np.full((4, 4), 0.25))
    np.testing.assert_array_equal(co_occurrence(full), np.ones((4, 4)))
    assert n_grams(full, 4).diversity == pytest.approx(1 / 29)


# --------------------------------------------------------------------------- properties


@FAST
@given(seq=sequences(), spb=bar_sizes, bpp=phrase_bars)
def test_random_finite_shapes_bounds(seq, spb, bpp):
    out = check_finite_and_shapes(seq, spb, bpp)
    check_bounds(seq, out, bpp)


@FAST
@given(stack=batches(), spb=bar_sizes, bpp=phrase_bars)
def test_batch_consistency(stack, spb, bpp):
    out = check_finite_and_shapes(stack, spb, bpp)
    check_bounds(stack, out, bpp)
    lead = stack.shape[:-2]
    for index in np.ndindex(*lead):
        single = all_outputs(stack[index], spb, bpp)
        for name, value in single.items():
            np.testing.assert_array_equal(out[name][index], value, err_msg=name)
    # jaccard of two different stacks, too.
    other = np.roll(stack, 1, axis=-2)
    j = jaccard(stack, other)
    for index in np.ndindex(*lead):
        assert j[index] == jaccard(stack[index], other[index])


@FAST
@given(
    stack=batches(max_drums=10),
    sections=st.lists(st.tuples(st.integers(-5, 45), st.integers(-5, 45)), max_size=4),
)
def test_section_metrics_batch_consistency_explicit_sections(stack, sections):
    out = section_metrics(stack, sections)
    for index in np.ndindex(*stack.shape[:-2]):
        single = section_metrics(stack[index], sections)
        for a, b in zip(out, single, strict=True):
            np.testing.assert_array_equal(a[index], b)


@FEW
@given(stack=batches(), n=st.integers(7, 12))
def test_n_grams_hash_path_batch_consistency(stack, n):
    # With D = 8 and n >= 8, n * D > 63: the hashed codes must also agree row by row.
    stack = np.concatenate([stack, stack[..., :1]] * 8, axis=-1)[..., :8]
    g = n_grams(stack, n)
    for index in np.ndindex(*stack.shape[:-2]):
        single = n_grams(stack[index], n)
        np.testing.assert_array_equal(g.codes[index], single.codes)
        assert g.num_distinct[index] == single.num_distinct


SONG_TO_WINDOW = {
    "song/avg_hits": "step/avg_hits",
    "song/drum_density": "step/drum_density",
    "song/max_hits": "step/max_hits",
    "song/ioi_mean": "step/ioi_mean",
    "song/fraction_dense_bars": "bar/fraction_dense",
    "song/syncopation": "bar/syncopation",
    "song/metrical_syncopation": "bar/metrical_syncopation",
    "song/fast_runs_per_bar": "bar/fast_runs_per_bar",
    "song/bar_repetition": "phrase/bar_repetition",
    "song/phrase_repetition": "phrase/phrase_repetition",
    "song/fill_ratio": "phrase/fill_ratio",
    "song/section_contrast": "section/contrast",
    "song/step_entropy": "step/entropy",
    "song/phrase_entropy": "phrase/entropy",
    "song/ngram_diversity": "bar/ngram_diversity",
}

WINDOW_KEYS = {
    "step/avg_hits",
    "step/drum_density",
    "step/max_hits",
    "step/co_occurrence",
    "step/transitions",
    "step/ioi_mean",
    "step/ioi_var",
    "step/ioi_hist",
    "step/entropy",
    "bar/density",
    "bar/fraction_dense",
    "bar/syncopation",
    "bar/metrical_syncopation",
    "bar/fast_fraction",
    "bar/fast_runs_per_bar",
    "bar/ngram_diversity",
    "phrase/bar_repetition",
    "phrase/phrase_repetition",
    "phrase/fill_ratio",
    "phrase/entropy",
    "section/density",
    "section/entropy",
    "section/contrast",
}


@FAST
@given(seq=sequences(), spb=bar_sizes, bpp=phrase_bars, fast=st.integers(1, 6))
def test_window_of_full_length_equals_song(seq, spb, bpp, fast):
    w = window_metrics(seq, spb, bpp, None, fast)
    s = song_metrics(seq, spb, bpp, fast)
    assert w.keys() == WINDOW_KEYS
    assert s.keys() == set(SONG_TO_WINDOW) | {"song/length_steps", "song/length_bars"}
    for song_key, window_key in SONG_TO_WINDOW.items():
        np.testing.assert_array_equal(s[song_key], w[window_key], err_msg=song_key)
    assert s["song/length_steps"] == seq.shape[0]
    assert s["song/length_bars"] == seq.shape[0] / spb
    for value in [*w.values(), *s.values()]:
        assert np.all(np.isfinite(value))


@FAST
@given(seq=sequences(), spb=bar_sizes, bpp=phrase_bars, fast=st.integers(1, 6))
def test_window_metrics_are_the_metric_functions(seq, spb, bpp, fast):
    # Every window entry is the function its docstring names, with the same parameters.
    w = window_metrics(seq, spb, bpp, [(0, 5), (5, 40)], fast)
    d, i = hit_density(seq), ioi_stats(seq)
    f = fast_patterns(seq, fast, spb)
    p = phrase_structure(seq, spb, bpp)
    sec = section_metrics(seq, [(0, 5), (5, 40)])
    expected = {
        "step/avg_hits": d.avg_hits,
        "step/drum_density": d.drum_density,
        "step/max_hits": d.max_hits,
        "step/co_occurrence": co_occurrence(seq),
        "step/transitions": transitions(seq),
        "step/ioi_mean": i.mean,
        "step/ioi_var": i.var,
        "step/ioi_hist": i.hist,
        "step/entropy": pattern_entropy(seq),
        "bar/density": bar_density(seq, spb),
        "bar/fraction_dense": fraction_dense_bars(seq, spb),
        "bar/syncopation": syncopation(seq, spb),
        "bar/metrical_syncopation": metrical_syncopation(seq, spb),
        "bar/fast_fraction": f.fraction,
        "bar/fast_runs_per_bar": f.runs_per_bar,
        "bar/ngram_diversity": n_grams(seq, 4).diversity,
        "phrase/bar_repetition": p.bar_repetition,
        "phrase/phrase_repetition": p.phrase_repetition,
        "phrase/fill_ratio": p.fill_ratio,
        "phrase/entropy": phrase_entropy(seq, spb * bpp),
        "section/density": sec.density,
        "section/entropy": sec.entropy,
        "section/contrast": sec.contrast,
    }
    assert w.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(w[key], value, err_msg=key)


@FAST
@given(seq=sequences(), spb=bar_sizes, bpp=phrase_bars)
def test_velocity_is_ignored(seq, spb, bpp):
    # Every metric works on hits: scaled velocities, bools and 0/1 floats agree exactly.
    ref = all_outputs(seq, spb, bpp)
    for variant in [
        np.asarray(seq, dtype=np.float32) * 0.5,
        (np.asarray(seq) > 0).astype(np.float64),
        np.asarray(seq) > 0,
    ]:
        out = all_outputs(variant, spb, bpp)
        for name in ref:
            np.testing.assert_array_equal(out[name], ref[name], err_msg=name)


def _pad_axis(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    width = [(0, 0)] * x.ndim
    for a in axes:
        width[a] = (0, 1)
    return np.pad(x, width)


@FAST
@given(seq=sequences(max_drums=9), spb=bar_sizes, bpp=phrase_bars)
def test_adding_a_silent_drum(seq, spb, bpp):
    # A silent last drum column adds no hit and leaves every step code unchanged.
    wider = np.concatenate([seq, np.zeros_like(seq[:, :1])], axis=1)
    a, b = all_outputs(seq, spb, bpp), all_outputs(wider, spb, bpp)
    for name in [
        "avg_hits",
        "max_hits",
        "bar_density",
        "fraction_dense",
        "step_codes",
        "ngram_distinct",
        "ngram_diversity",
        "fast_runs_per_bar",
        "syncopation",
        "metrical_syncopation",
        "jaccard_reversed",
        "bar_repetition",
        "phrase_repetition",
        "fill_ratio",
        "section_density",
        "section_contrast",
    ]:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)
    for name in ["pattern_entropy", "phrase_entropy", "section_entropy"]:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-12, err_msg=name)
    # Per-drum outputs gain a zero entry / row / column.
    for name, axes in [
        ("drum_density", (0,)),
        ("ioi_mean", (0,)),
        ("ioi_var", (0,)),
        ("ioi_hist", (0,)),
        ("fast_fraction", (0,)),
        ("co_occurrence", (0, 1)),
        ("transitions", (0, 1)),
    ]:
        np.testing.assert_array_equal(b[name], _pad_axis(a[name], axes), err_msg=name)


@FAST
@given(seq=sequences(), data=st.data(), spb=bar_sizes, bpp=phrase_bars)
def test_permuting_drums(seq, data, spb, bpp):
    perm = np.array(data.draw(st.permutations(range(seq.shape[1]))))
    a, b = all_outputs(seq, spb, bpp), all_outputs(seq[:, perm], spb, bpp)
    for name in [
        "avg_hits",
        "max_hits",
        "bar_density",
        "fraction_dense",
        "ngram_distinct",
        "ngram_diversity",
        "fast_runs_per_bar",
        "syncopation",
        "metrical_syncopation",
        "jaccard_reversed",
        "bar_repetition",
        "phrase_repetition",
        "fill_ratio",
        "section_density",
        "section_contrast",
    ]:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-12, err_msg=name)
    for name in ["pattern_entropy", "phrase_entropy", "section_entropy"]:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-9, err_msg=name)
    for name in ["drum_density", "ioi_mean", "ioi_var", "ioi_hist", "fast_fraction"]:
        np.testing.assert_allclose(b[name], a[name][perm], rtol=0, atol=1e-12, err_msg=name)
    for name in ["co_occurrence", "transitions"]:
        np.testing.assert_allclose(
            b[name], a[name][np.ix_(perm, perm)], rtol=0, atol=1e-12, err_msg=name
        )


@FAST
@given(seq=sequences(min_steps=1, max_steps=35))
def test_repeating_a_sequence_keeps_distributions(seq):
    # Densities, co-occurrence and the step-pattern distribution are averages over steps.
    twice = np.concatenate([seq, seq])
    for f in [
        lambda s: hit_density(s).avg_hits,
        lambda s: hit_density(s).drum_density,
        lambda s: hit_density(s).max_hits,
        co_occurrence,
    ]:
        np.testing.assert_allclose(f(twice), f(seq), rtol=0, atol=1e-12)
    assert pattern_entropy(twice) == pytest.approx(pattern_entropy(seq), abs=1e-9)


# --------------------------------------------------------------------------- oracles
# Loop-based implementations written from the docstrings, for one (T, D) sequence.


def ref_ioi(h: np.ndarray, max_ioi: int):
    drums = h.shape[1]
    mean, var, hist = np.zeros(drums), np.zeros(drums), np.zeros((drums, max_ioi))
    for d in range(drums):
        iois = np.diff(np.flatnonzero(h[:, d]))
        if len(iois):
            mean[d], var[d] = iois.mean(), iois.var()
            for x in iois:
                hist[d, min(x, max_ioi) - 1] += 1 / len(iois)
    return mean, var, hist


def ref_fast(h: np.ndarray, threshold: int, spb: int):
    steps, drums = h.shape
    fraction, runs = np.zeros(drums), 0
    for d in range(drums):
        in_fast = 0
        for hit, group in itertools.groupby(h[:, d]):
            length = len(list(group))
            if hit and length >= threshold:
                runs += 1
                in_fast += length
        total = h[:, d].sum()
        fraction[d] = in_fast / total if total else 0.0
    return fraction, (runs / (steps / spb) if steps else 0.0)


def ref_transitions(h: np.ndarray) -> np.ndarray:
    drums = h.shape[1]
    counts = np.zeros((drums, drums))
    onsets = [t for t in range(h.shape[0]) if h[t].any()]
    for a, b in itertools.pairwise(onsets):
        counts += np.outer(h[a], h[b])
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)


def ref_weight(p: int, spb: int, bpb: int) -> float:
    beat = max(spb // bpb, 1)
    if p % beat == 0:
        return 0.0
    if beat % 2 == 0 and p % (beat // 2) == 0:
        return 0.5
    return 1.0


def ref_entropy(h: np.ndarray) -> float:
    if len(h) == 0:
        return 0.0
    counts = Counter(tuple(row) for row in h)
    return -sum(c / len(h) * math.log2(c / len(h)) for c in counts.values())


def ref_phrase_entropy(h: np.ndarray, phrase_len: int) -> float:
    parts = [h[s : s + phrase_len] for s in range(0, len(h), phrase_len)]
    return float(np.mean([ref_entropy(p) for p in parts])) if parts else 0.0


def ref_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return (a & b).sum() / union if union else 1.0


def ref_structure(h: np.ndarray, spb: int, bpp: int):
    def chunks(size):
        return [h[i * size : (i + 1) * size] for i in range(len(h) // size)]

    def rep(cs):
        if len(cs) < 2:
            return 0.0
        return float(np.mean([ref_jaccard(cs[i], cs[i - 1]) for i in range(1, len(cs))]))

    bars, phrases = chunks(spb), chunks(spb * bpp)
    fills = []
    for ph in phrases:
        per_bar = [ph[i * spb : (i + 1) * spb].sum() for i in range(bpp)]
        m = np.mean(per_bar)
        fills.append(per_bar[-1] / m if m > 0 else 0.0)
    return rep(bars), rep(phrases), (float(np.mean(fills)) if fills else 0.0)


def ref_distinct_ngrams(h: np.ndarray, n: int) -> int:
    return len({tuple(map(tuple, h[t : t + n])) for t in range(len(h) - n + 1)})


@FAST
@given(seq=sequences(), spb=st.integers(1, 17), bpp=st.integers(1, 4), data=st.data())
def test_against_loop_oracles(seq, spb, bpp, data):
    h = np.asarray(seq) > 0
    steps, drums = h.shape
    max_ioi = data.draw(st.integers(1, 20))
    threshold = data.draw(st.integers(1, 8))
    n = data.draw(st.integers(1, 8))
    bpb = data.draw(st.integers(1, 5))
    tol = {"rtol": 0, "atol": 1e-9}

    d = hit_density(seq)
    per_step = h.sum(axis=1)
    np.testing.assert_allclose(d.avg_hits, per_step.sum() / steps if steps else 0, **tol)
    np.testing.assert_allclose(d.drum_density, h.sum(axis=0) / steps if steps else 0, **tol)
    assert d.max_hits == (per_step.max() if steps else 0)

    bars = [h[b * spb : (b + 1) * spb].sum() / spb for b in range(steps // spb)]
    np.testing.assert_allclose(bar_density(seq, spb), bars, **tol)
    dense = [x >= 1.0 for x in bars]
    assert fraction_dense_bars(seq, spb) == pytest.approx(np.mean(dense) if dense else 0.0)

    for got, want in zip(ioi_stats(seq, max_ioi), ref_ioi(h, max_ioi), strict=True):
        np.testing.assert_allclose(got, want, **tol)

    co = np.array([[np.sum(h[:, i] & h[:, j]) for j in range(drums)] for i in range(drums)])
    np.testing.assert_allclose(co_occurrence(seq), co / steps if steps else 0, **tol)

    codes = [sum(int(h[t, k]) << k for k in range(drums)) for t in range(steps)]
    assert step_codes(seq).tolist() == codes

    g = n_grams(seq, n)
    count = max(steps - n + 1, 0)
    assert g.num_distinct == ref_distinct_ngrams(h, n)
    assert g.diversity == pytest.approx(ref_distinct_ngrams(h, n) / count if count else 0.0)

    frac, runs = ref_fast(h, threshold, spb)
    f = fast_patterns(seq, threshold, spb)
    np.testing.assert_allclose(f.fraction, frac, **tol)
    assert f.runs_per_bar == pytest.approx(runs, abs=1e-9)

    np.testing.assert_allclose(transitions(seq), ref_transitions(h), **tol)

    total = h.sum()
    off = sum(h[t].sum() for t in range(steps) if t % spb != 0)
    assert syncopation(seq, spb) == pytest.approx(off / total if total else 0.0, abs=1e-12)
    weighted = sum(h[t].sum() * ref_weight(t % spb, spb, bpb) for t in range(steps))
    assert metrical_syncopation(seq, spb, bpb) == pytest.approx(
        weighted / total if total else 0.0, abs=1e-12
    )
    w = metrical_weights(spb, bpb)
    assert w.tolist() == [ref_weight(p, spb, bpb) for p in range(spb)]

    assert pattern_entropy(seq) == pytest.approx(ref_entropy(h), abs=1e-9)
    assert phrase_entropy(seq, spb * bpp) == pytest.approx(
        ref_phrase_entropy(h, spb * bpp), abs=1e-9
    )
    rolled = np.roll(h, 3, axis=0)
    assert jaccard(seq, rolled) == pytest.approx(ref_jaccard(h, rolled), abs=1e-12)

    s = phrase_structure(seq, spb, bpp)
    for got, want in zip(s, ref_structure(h, spb, bpp), strict=True):
        assert got == pytest.approx(want, abs=1e-9)


@FAST
@given(
    seq=sequences(),
    sections=st.one_of(
        st.none(), st.lists(st.tuples(st.integers(-10, 80), st.integers(-10, 80)), max_size=5)
    ),
    phrase_len=st.integers(1, 20),
)
def test_section_metrics_against_oracle(seq, sections, phrase_len):
    h = np.asarray(seq) > 0
    steps = len(h)
    if sections is None:
        size = 2 * phrase_len
        spans = [(s, min(s + size, steps)) for s in range(0, steps, size)]
    else:
        spans = [(max(0, s), min(steps, e)) for s, e in sections]
    spans = [(s, e) for s, e in spans if e > s]
    density = [h[s:e].sum() / (e - s) for s, e in spans]
    entropy = [ref_entropy(h[s:e]) for s, e in spans]
    got = section_metrics(seq, sections, phrase_len)
    np.testing.assert_allclose(got.density, density, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.entropy, entropy, rtol=0, atol=1e-9)
    assert got.contrast == pytest.approx(np.std(density) if density else 0.0, abs=1e-12)
    if sections is None:
        assert default_sections(steps, phrase_len) == [
            (s, min(s + 2 * phrase_len, steps)) for s in range(0, steps, 2 * phrase_len)
        ]


@st.composite
def repetitive_sequences(draw, drums: int, steps: int):
    """A random pattern repeated with a period, then a few hits flipped: many repeated n-grams."""
    period = draw(st.integers(1, 12))
    pattern = draw(hnp.arrays(np.bool_, (period, drums)))
    seq = np.resize(pattern, (steps, drums))
    flips = draw(
        st.lists(st.tuples(st.integers(0, steps - 1), st.integers(0, drums - 1)), max_size=4)
    )
    for t, d in flips:
        seq[t, d] = not seq[t, d]
    return seq


@FAST
@given(data=st.data(), drums=st.integers(1, 10))
def test_n_grams_hash_path_counts_distinct(data, drums):
    # n * drums > 63: the codes are a 64-bit hash; counting must still match a set of tuples.
    n = data.draw(st.integers(63 // drums + 1, 63 // drums + 4))
    steps = data.draw(st.integers(n, n + 60))
    seq = data.draw(repetitive_sequences(drums, steps))
    assert n * drums > 63
    g = n_grams(seq, n)
    grams = [tuple(map(tuple, seq[t : t + n])) for t in range(steps - n + 1)]
    assert g.codes.shape == (len(grams),)
    assert g.num_distinct == len(set(grams))
    assert g.diversity == pytest.approx(len(set(grams)) / len(grams))
    # The hash separates exactly what the tuples separate.
    pairs = {}
    for gram, code in zip(grams, g.codes.tolist(), strict=True):
        assert pairs.setdefault(gram, code) == code
    assert len(set(pairs.values())) == len(pairs)


@FAST
@given(data=st.data(), drums=st.integers(1, 10))
def test_n_grams_exact_path_is_injective(data, drums):
    # n * drums <= 63: codes are exact, so equal codes <=> equal n-grams.
    n = data.draw(st.integers(1, 63 // drums))
    steps = data.draw(st.integers(n, n + 60))
    seq = data.draw(repetitive_sequences(drums, steps))
    g = n_grams(seq, n)
    grams = [tuple(map(tuple, seq[t : t + n])) for t in range(steps - n + 1)]
    assert g.num_distinct == len(set(grams))
    assert np.all(g.codes >= 0)
    mapping = {}
    for gram, code in zip(grams, g.codes.tolist(), strict=True):
        assert mapping.setdefault(gram, code) == code
    assert len(set(mapping.values())) == len(mapping)


# --------------------------------------------------------------------------- bad input

ONE_SEQ_FUNCTIONS = [
    as_hits,
    hit_density,
    bar_density,
    fraction_dense_bars,
    ioi_stats,
    co_occurrence,
    step_codes,
    n_grams,
    fast_patterns,
    transitions,
    syncopation,
    metrical_syncopation,
    pattern_entropy,
    phrase_entropy,
    lambda s: jaccard(s, s),
    phrase_structure,
    section_metrics,
    window_metrics,
    song_metrics,
]


@pytest.mark.parametrize(
    "func", ONE_SEQ_FUNCTIONS, ids=lambda f: f.__name__.replace("<lambda>", "jaccard")
)
@pytest.mark.parametrize("bad", [np.zeros(16), np.array([1.0, 0.0, 1.0]), np.float64(1.0)])
def test_rank_below_two_raises(func, bad):
    with pytest.raises(ValueError, match="shape"):
        func(bad)


SEQ = np.ones((32, 3))


def _arg(label: str, call, name: str):
    return pytest.param(call, name, id=f"{label}-{name}")


NON_POSITIVE = [
    _arg("bar_density", lambda v: bar_density(SEQ, v), "steps_per_bar"),
    _arg("fraction_dense_bars", lambda v: fraction_dense_bars(SEQ, v), "steps_per_bar"),
    _arg("fast_patterns", lambda v: fast_patterns(SEQ, 4, v), "steps_per_bar"),
    _arg("fast_patterns", lambda v: fast_patterns(SEQ, v, 16), "fast_threshold"),
    _arg("syncopation", lambda v: syncopation(SEQ, v), "steps_per_bar"),
    _arg("metrical_weights", lambda v: metrical_weights(v, 4), "steps_per_bar"),
    _arg("metrical_weights", lambda v: metrical_weights(16, v), "beats_per_bar"),
    _arg("metrical_syncopation", lambda v: metrical_syncopation(SEQ, v), "steps_per_bar"),
    _arg("metrical_syncopation", lambda v: metrical_syncopation(SEQ, 16, v), "beats_per_bar"),
    _arg("phrase_structure", lambda v: phrase_structure(SEQ, v, 4), "steps_per_bar"),
    _arg("phrase_structure", lambda v: phrase_structure(SEQ, 16, v), "bars_per_phrase"),
    _arg("n_grams", lambda v: n_grams(SEQ, v), "n"),
    _arg("ioi_stats", lambda v: ioi_stats(SEQ, v), "max_ioi"),
    _arg("phrase_entropy", lambda v: phrase_entropy(SEQ, v), "phrase_len"),
    _arg("window_metrics", lambda v: window_metrics(SEQ, v), "steps_per_bar"),
    _arg("window_metrics", lambda v: window_metrics(SEQ, 16, v), "bars_per_phrase"),
    _arg("window_metrics", lambda v: window_metrics(SEQ, 16, 4, None, v), "fast_threshold"),
    _arg("song_metrics", lambda v: song_metrics(SEQ, v), "steps_per_bar"),
    _arg("song_metrics", lambda v: song_metrics(SEQ, 16, v), "bars_per_phrase"),
    _arg("song_metrics", lambda v: song_metrics(SEQ, 16, 4, v), "fast_threshold"),
    _arg("section_metrics", lambda v: section_metrics(SEQ, None, v), "phrase_len"),
    _arg("section_metrics", lambda v: section_metrics(SEQ, [(0, 8)], v), "phrase_len"),
    _arg("default_sections", lambda v: default_sections(32, v), "phrase_len"),
]


@pytest.mark.parametrize(("call", "name"), NON_POSITIVE)
@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_non_positive_argument_raises_naming_it(call, name, value):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call(value)


# =========================================================================== the seed's names
# The seed's definitions, under names of their own, worked out by hand on the groove above.
# Consecutive steps of the groove (t -> t + 1), drums hit:
#   0 KH->H  1 H->SH  2 SH->H  3 H->KH  4 KH->H  5 H->SH  6 SH->H  7 H->KH  8 KH->H  9 H->SH
#   10 SH->KH  11 KH->KH  12 KH->(none)  13 (none)->S  14 S->S

from dataset.metrics import (  # noqa: E402  (kept beside the tests that use them)
    aggregate,
    co_occurrence_fraction,
    drum_periods,
    fast_hits,
    fraction_bars_above,
    level_metrics,
    n_gram_counter,
    phrase_hits_per_bar,
    polyrhythm,
    section_level_metrics,
    song_level_metrics,
    step_transitions,
    swing,
)
from dataset.registry import BUILTIN_KEYS  # noqa: E402


def test_groove_aggregate():
    # Bar 1 (t 0..7): K 0,4 -> 2/8; S 2,6 -> 2/8; H 8/8. Bar 2: K 8,11,12 -> 3/8; S 10,14,15
    # -> 3/8; H 8..12 -> 5/8.
    expected = [[0.25, 0.25, 1.0], [0.375, 0.375, 0.625]]
    np.testing.assert_array_equal(aggregate(groove(), 8), expected)
    # values are averaged, not hits: velocity 0.5 halves the means
    np.testing.assert_array_equal(aggregate(groove(velocity=0.5), 8), np.multiply(expected, 0.5))
    np.testing.assert_array_equal(aggregate(groove(), 16), [[5 / 16, 5 / 16, 13 / 16]])
    assert aggregate(groove(), 17).shape == (0, 3)
    np.testing.assert_array_equal(aggregate(groove(), 1), groove())
    # 5 steps per unit: 3 units, step 15 left out; unit 1 = t 0..4: K 0,4; S 2; H 0..4
    np.testing.assert_array_equal(aggregate(groove(), 5)[0], [0.4, 0.2, 1.0])


def test_groove_co_occurrence_fraction():
    # more than one drum on t = 0, 2, 4, 6, 8, 10, 11, 12: 8 of 16 steps
    assert co_occurrence_fraction(groove()) == 0.5
    assert co_occurrence_fraction(groove()[:, :1]) == 0.0  # one drum never co-occurs


def test_groove_step_transitions():
    # K row (K at 0, 4, 8, 11, 12): K->H at 0, 4, 8, 11; K->K at 11; 12 -> silence: 1, 0, 4.
    # S row (S at 2, 6, 10, 14, 15): S->H at 2, 6, 10; S->K at 10; S->S at 14: 1, 1, 3.
    # H row (H at 0..12): H->H at 0..11 (12); H->S at 1, 5, 9 (3); H->K at 3, 7, 10, 11 (4).
    expected = np.array([[1, 0, 4], [1, 1, 3], [4, 3, 12]]) / np.array([[5], [5], [19]])
    np.testing.assert_allclose(step_transitions(groove()), expected, rtol=0, atol=1e-15)
    # onset-to-onset (the project's) differs: 12 -> 14 skips the silent step
    assert not np.allclose(transitions(groove()), expected)


@pytest.mark.parametrize(
    ("steps_per_bar", "threshold", "expected"),
    [
        (8, None, 0.0),  # densities 1.5, 1.375; D / 2 = 1.5 and "above" is strict
        (8, 1.4, 0.5),
        (8, 1.375, 0.5),
        (8, 1.0, 1.0),
        (4, None, 0.25),  # densities 1.5, 1.5, 1.75, 1.0: only 1.75 > 1.5
        (17, None, 0.0),  # no complete bar
    ],
)
def test_groove_fraction_bars_above(steps_per_bar, threshold, expected):
    assert fraction_bars_above(groove(), steps_per_bar, threshold) == expected


def test_groove_n_gram_counter():
    c = n_gram_counter(groove(), 4)
    # 13 4-grams, 9 distinct (see test_groove_n_grams); t = 0 and t = 4 are the same:
    # rows KH, H, SH, H -> (1,0,1, 0,0,1, 0,1,1, 0,0,1)
    assert sum(c.values()) == 13 and len(c) == 9
    assert c[(1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1)] == 2
    assert len(n_gram_counter(groove(), 1)) == 5  # step patterns {KH, H, SH, none, S}
    assert n_gram_counter(groove(), 17) == Counter()
    assert n_gram_counter(groove(), 16) == Counter({tuple(groove().astype(int).ravel()): 1})
    with pytest.raises(ValueError, match="shape"):
        n_gram_counter(np.stack([groove(), groove()]))


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        # IOIs: K 4, 4, 3, 1; S 4, 4, 4, 1; H twelve of 1.
        (4, 4 + 4 + 12),
        (3, 2 + 1 + 12),
        (1, 1 + 1 + 12),
        (16, 4 + 4 + 12),
    ],
)
def test_groove_fast_hits(threshold, expected):
    assert fast_hits(groove(), threshold) == expected


@pytest.mark.parametrize(
    ("steps_per_bar", "bars_per_phrase", "expected"),
    [
        (8, 1, [[12], [11]]),  # 12 and 11 hits in the two bars
        (8, 2, [[12, 11]]),
        (4, 2, [[6, 6], [7, 4]]),  # bars of 6, 6, 7, 4 hits
        (4, 3, [[6, 6, 7]]),  # the fourth bar is in no complete phrase
    ],
)
def test_groove_phrase_hits_per_bar(steps_per_bar, bars_per_phrase, expected):
    np.testing.assert_array_equal(
        phrase_hits_per_bar(groove(), steps_per_bar, bars_per_phrase), expected
    )


def test_groove_phrase_hits_per_bar_short():
    assert phrase_hits_per_bar(groove(), 8, 3).shape == (0, 3)
    assert phrase_hits_per_bar(groove()[:0], 16, 4).shape == (0, 4)


def test_groove_section_level_metrics():
    # (4, 16): K 4, 8, 11, 12; S 6, 10, 14, 15; H 4..12 -> 4, 4, 9 of 12 steps; 17 hits.
    s = section_level_metrics(groove(), [(0, 8), (8, 16), (4, 16)], steps_per_bar=4)
    np.testing.assert_array_equal(s["avg_hits"], [1.5, 1.375, 17 / 12])
    np.testing.assert_array_equal(
        s["drum_density"], [[0.25, 0.25, 1], [0.375, 0.375, 0.625], [1 / 3, 1 / 3, 9 / 12]]
    )
    np.testing.assert_array_equal(s["max_hits"], [2, 2, 2])
    # bars of 4 steps from each section's start, dense above D / 2 = 1.5 per step:
    # (0, 8): 1.5, 1.5 -> 0; (8, 16): 1.75, 1.0 -> 1/2; (4, 16): 1.5, 1.75, 1.0 -> 1/3
    np.testing.assert_allclose(s["dense_frac"], [0, 0.5, 1 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        s["step_entropy"][:2], [1.5, 3 - (3 * L3 + 2) / 8], rtol=0, atol=1e-12
    )
    empty = section_level_metrics(groove(), [(20, 30)], specs={})
    assert list(empty) == list(BUILTIN_KEYS["section"])
    assert empty["avg_hits"].shape == (0,) and empty["drum_density"].shape == (0, 3)


def test_groove_level_and_song_metrics():
    m = level_metrics(groove(), steps_per_bar=8, bars_per_phrase=1, specs={})
    assert list(m) == ["step", "bar", "phrase", "section"]
    for level in ("step", "bar", "phrase"):
        assert list(m[level]) == list(BUILTIN_KEYS[level])
    assert m["step"]["co_occurrence"] == 0.5
    np.testing.assert_array_equal(m["step"]["co_occurrence_matrix"], co_occurrence(groove()))
    assert m["step"]["transitions"][2, 2] == pytest.approx(12 / 19, abs=1e-15)
    assert m["step"]["onset_transitions"][2, 2] == pytest.approx(0.6, abs=1e-15)
    assert m["step"]["fast_patterns"] == 20.0
    assert m["bar"]["fraction_dense_bars"] == 0.0 and m["bar"]["fraction_busy_bars"] == 1.0
    assert m["bar"]["ngram_diversity"] == 9.0
    assert m["bar"]["ngram_diversity_ratio"] == pytest.approx(9 / 13)
    np.testing.assert_array_equal(m["phrase"]["phrase_structure"], [[12], [11]])
    # one default section: two one-bar phrases = the 16 steps
    assert len(m["section"]) == 1 and m["section"][0]["avg_hits"] == 1.4375
    s = song_level_metrics(groove(), steps_per_bar=8, bars_per_phrase=1, specs={})
    assert list(s) == list(BUILTIN_KEYS["song"])
    assert (s["avg_hits"], s["max_hits"], s["ngram_diversity"]) == (1.4375, 2.0, 9.0)
    assert s["step_entropy"] == pytest.approx(4 - (10 * L5 + 3 * L3 + 2) / 16)
    assert s["phrase_entropy"] == pytest.approx((1.5 + 3 - (3 * L3 + 2) / 8) / 2)
    assert (s["length_steps"], s["length_bars"], s["fast_patterns"]) == (16.0, 2.0, 20.0)


def test_song_level_metrics_include_the_registered_ones():
    s = song_level_metrics(groove(), 16, 4)
    assert list(s)[: len(BUILTIN_KEYS["song"])] == list(BUILTIN_KEYS["song"])
    assert {"swing", "polyrhythm", "drum_periods"} <= set(s)
    assert s["swing"] == swing(groove(), 16) and s["drum_periods"].shape == (3,)


# --------------------------------------------------------------------------- swing


def _beats(*positions: int, beats: int = 4, width: int = 4) -> np.ndarray:
    """One drum: hits on ``positions`` of every beat of one 16-step bar."""
    seq = np.zeros((beats * width, 1))
    for b in range(beats):
        for p in positions:
            seq[b * width + p] = 1
    return seq


@pytest.mark.parametrize(
    ("seq", "expected"),
    [
        (_beats(0, 3), 1.0),  # swung 8ths: "1 . . a"
        (_beats(0, 2), 0.0),  # straight 8ths
        (_beats(0, 1, 2, 3), 0.0),  # straight 16ths: both positions, no evidence
        (_beats(0), 0.0),  # quarter notes: neither position
        (np.zeros((16, 3)), 0.0),
        (np.ones((16, 3)), 0.0),
        (_beats(0, 3)[:3], 0.0),  # the first pair (2, 3) is not complete
        (_beats(0, 3)[:4], 1.0),
    ],
)
def test_swing_table(seq, expected):
    assert swing(seq) == expected


def test_swing_groove_and_mixed_drums():
    # One 16-step bar. Pairs (2,3), (6,7), (10,11), (14,15): S straight at 2, 6 and 10; K
    # delayed at 10 -> 11; H on both sides or neither; S on both at 14, 15: 1 / (1 + 3).
    assert swing(groove(), 16) == 0.25
    # At 8 steps per bar a beat is 2 steps: no room for a delayed 8th.
    assert swing(groove(), 8) == 0.0
    # Hats swung (delayed 4 times), snare on the straight "&" twice: 4 / 6.
    seq = np.concatenate([_beats(0, 3), _beats(2, beats=4)], axis=1)
    seq[[6, 14], 1] = 0
    assert swing(seq) == pytest.approx(4 / 6)
    # 24 steps per bar (16th triplets): the off-beat 8th at 3, swung at 4 = 2/3 of the beat
    triplet = np.zeros((24, 1))
    triplet[[0, 4, 6, 10, 12, 16, 18, 22]] = 1
    assert swing(triplet, 24) == 1.0
    assert swing(_beats(0, 3), 12, 4) == 0.0  # beats of 3 steps: odd, no straight 8th


# --------------------------------------------------------------------------- polyrhythm


def test_drum_periods_groove():
    # K hits 0,4,8,11,12: R(1) = 1/5, R(2) = 0, R(3) = 1/5, R(4) = 3/4 (0->4, 4->8, 8->12 of
    # the 4 hits before t = 12) -> 4. S hits 2,6,10,14,15: R(1) = 1/4, R(2) = R(3) = 0,
    # R(4) = 3/3 -> 4. H hits 0..12: R(1) = 12/13 -> 1.
    np.testing.assert_array_equal(drum_periods(groove()), [4, 4, 1])
    # a stricter recurrence: K's 3/4 is not enough; R(5) = 0/3, R(6) = 0/3, R(7) = 1/3
    # (4 -> 11), R(8) = 2/2 (0 -> 8, 4 -> 12) -> 8
    np.testing.assert_array_equal(drum_periods(groove(), 16, 0.8), [8, 4, 1])
    np.testing.assert_array_equal(drum_periods(groove(), 7, 0.8), [0, 4, 1])
    np.testing.assert_array_equal(drum_periods(groove(), 3), [0, 0, 1])  # lags 1..3 only
    assert polyrhythm(groove()) == 0.0  # 4, 4 and 1: nested


@pytest.mark.parametrize(
    ("periods", "expected"),
    [
        ((3, 4), 1.0),  # 3 against 4
        ((3, 4, 2), 2 / 3),  # (3, 4) and (3, 2) cross; (4, 2) nest
        ((2, 4, 8), 0.0),
        ((6, 4), 1.0),  # hemiola
        ((3, 0), 0.0),  # a silent drum has no period: fewer than two periodic drums
        ((5,), 0.0),
    ],
)
def test_polyrhythm_table(periods, expected):
    seq = np.zeros((48, len(periods)))
    for d, p in enumerate(periods):
        if p:
            seq[::p, d] = 1
    np.testing.assert_array_equal(drum_periods(seq), periods)
    assert polyrhythm(seq) == pytest.approx(expected, abs=1e-15)


def test_drum_periods_edge_values():
    assert drum_periods(np.ones((1, 3))).tolist() == [0, 0, 0]  # no lag fits
    assert drum_periods(np.ones((2, 3))).tolist() == [1, 1, 1]
    assert drum_periods(np.zeros((16, 2))).tolist() == [0, 0]
    one = np.zeros((16, 1))
    one[5] = 1
    assert drum_periods(one).tolist() == [0]  # one hit: nothing recurs
    with pytest.raises(ValueError, match="min_recurrence"):
        drum_periods(one, 16, 0.0)


def test_drum_periods_long_lags_cross_words():
    # lags beyond 64 steps (bit shifts across words) and sequences of 64 * k +- 1 steps
    for steps in (63, 64, 65, 200):
        seq = np.zeros((steps, 2))
        seq[::70, 0] = 1
        seq[::3, 1] = 1
        want = [70 if steps > 70 else 0, 3]
        np.testing.assert_array_equal(drum_periods(seq, 96), want)


# --------------------------------------------------------------------------- properties

NEW_BOUNDED = {  # name -> function of (seq, spb, bpp), outputs in [0, 1]
    "co_occurrence_fraction": lambda s, spb, bpp: co_occurrence_fraction(s),
    "fraction_bars_above": lambda s, spb, bpp: fraction_bars_above(s, spb),
    "swing": lambda s, spb, bpp: swing(s, spb),
    "polyrhythm": lambda s, spb, bpp: polyrhythm(s, spb),
    "step_transitions": lambda s, spb, bpp: step_transitions(s),
    "aggregate": lambda s, spb, bpp: aggregate(np.asarray(s, np.float64), spb),
}
NEW_COUNTS = {
    "fast_hits": lambda s, spb, bpp: fast_hits(s, 3),
    "drum_periods": lambda s, spb, bpp: drum_periods(s, spb),
    "phrase_hits_per_bar": lambda s, spb, bpp: phrase_hits_per_bar(s, spb, bpp),
}


def new_outputs(seq, spb: int, bpp: int) -> dict[str, np.ndarray]:
    return {k: f(seq, spb, bpp) for k, f in {**NEW_BOUNDED, **NEW_COUNTS}.items()}


def check_new(seq, spb: int, bpp: int) -> dict[str, np.ndarray]:
    out = new_outputs(seq, spb, bpp)
    batch, (steps, drums) = seq.shape[:-2], seq.shape[-2:]
    h = np.asarray(seq) > 0
    shapes = {
        "co_occurrence_fraction": batch,
        "fraction_bars_above": batch,
        "swing": batch,
        "polyrhythm": batch,
        "step_transitions": (*batch, drums, drums),
        "aggregate": (*batch, steps // spb, drums),
        "fast_hits": batch,
        "drum_periods": (*batch, drums),
        "phrase_hits_per_bar": (*batch, steps // (spb * bpp), bpp),
    }
    for name, value in out.items():
        assert value.dtype == np.float64 and value.shape == shapes[name], name
        assert np.all(np.isfinite(value)), name
    for name in NEW_BOUNDED:
        assert np.all((out[name] >= 0) & (out[name] <= 1)), name
    rows = out["step_transitions"].sum(axis=-1)
    assert np.all(np.isclose(rows, 1, rtol=0, atol=1e-9) | (rows == 0))
    hits, drums_hit = h.sum(axis=(-1, -2)), h.any(axis=-2).sum(axis=-1)
    assert np.all((out["fast_hits"] >= 0) & (out["fast_hits"] <= hits - drums_hit))
    p = out["drum_periods"]
    assert np.all((p == np.round(p)) & (p >= 0) & (p <= min(spb, max(steps - 1, 0))))
    assert np.all(p[~h.any(axis=-2)] == 0)  # silent drums have no period
    phr = out["phrase_hits_per_bar"]
    assert np.all((phr >= 0) & (phr <= spb * drums) & (phr == np.round(phr)))
    return out


@pytest.mark.parametrize("seq", edge_cases())
@pytest.mark.parametrize(("spb", "bpp"), [(8, 2), (16, 4), (1, 1), (3, 2)])
def test_new_metrics_edge_cases_finite_shapes_bounds(seq, spb, bpp):
    check_new(seq, spb, bpp)


@pytest.mark.parametrize("steps", [0, 1])
def test_new_metrics_empty_and_one_step_values(steps):
    seq = np.ones((steps, 3))
    assert swing(seq) == 0.0 and polyrhythm(seq) == 0.0 and fast_hits(seq) == 0.0
    assert drum_periods(seq).tolist() == [0, 0, 0]
    assert co_occurrence_fraction(seq) == float(steps)  # 0 steps: 0; one step of 3 drums: 1
    np.testing.assert_array_equal(step_transitions(seq), np.zeros((3, 3)))
    assert fraction_bars_above(seq) == 0.0 and aggregate(seq, 16).shape == (0, 3)
    assert phrase_hits_per_bar(seq).shape == (0, 4)
    assert n_gram_counter(seq) == Counter()


def test_new_metrics_all_silent_and_all_hits_values():
    silent, full = np.zeros((32, 4)), np.ones((32, 4))
    assert swing(silent) == swing(full) == 0.0  # no evidence either way
    assert polyrhythm(silent) == polyrhythm(full) == 0.0
    assert drum_periods(silent).tolist() == [0] * 4 and drum_periods(full).tolist() == [1] * 4
    assert co_occurrence_fraction(silent) == 0.0 and co_occurrence_fraction(full) == 1.0
    np.testing.assert_array_equal(step_transitions(full), np.full((4, 4), 0.25))
    assert fast_hits(full, 4) == 31 * 4 and fast_hits(silent) == 0.0
    assert fraction_bars_above(full, 16) == 1.0 and fraction_bars_above(silent, 16) == 0.0
    np.testing.assert_array_equal(phrase_hits_per_bar(full, 8, 2), [[32, 32], [32, 32]])
    assert len(n_gram_counter(full)) == len(n_gram_counter(silent)) == 1


@FAST
@given(seq=sequences(), spb=bar_sizes, bpp=phrase_bars)
def test_new_metrics_random_finite_shapes_bounds(seq, spb, bpp):
    check_new(seq, spb, bpp)


@FAST
@given(stack=batches(), spb=bar_sizes, bpp=phrase_bars)
def test_new_metrics_batch_consistency(stack, spb, bpp):
    out = check_new(stack, spb, bpp)
    for index in np.ndindex(*stack.shape[:-2]):
        for name, value in new_outputs(stack[index], spb, bpp).items():
            np.testing.assert_array_equal(out[name][index], value, err_msg=name)


@FAST
@given(seq=sequences(), spb=bar_sizes, bpp=phrase_bars)
def test_new_metrics_velocity_is_ignored(seq, spb, bpp):
    ref = new_outputs(seq, spb, bpp)
    out = new_outputs((np.asarray(seq) > 0).astype(np.float32) * 0.5, spb, bpp)
    for name in ref:
        if name != "aggregate":  # the one that averages values, not hits
            np.testing.assert_array_equal(out[name], ref[name], err_msg=name)


# --------------------------------------------------------------------------- oracles
# Loop-based versions written from the docstrings (the seed's wording where it has one).


def ref_swing(h: np.ndarray, spb: int, bpb: int) -> float:
    beat = spb // bpb
    if beat < 4 or beat % 2:
        return 0.0
    delayed = straight = 0
    for t in range(len(h) - 1):
        p = t % spb
        if p < bpb * beat and p % beat == beat // 2:
            for d in range(h.shape[1]):
                delayed += bool(h[t + 1, d] and not h[t, d])
                straight += bool(h[t, d] and not h[t + 1, d])
    return delayed / (delayed + straight) if delayed + straight else 0.0


def ref_periods(h: np.ndarray, max_lag: int, min_rec: float) -> list[int]:
    steps, drums = h.shape
    out = []
    for d in range(drums):
        period = 0
        for k in range(1, min(max_lag, steps - 1) + 1):
            starts = [t for t in range(steps - k) if h[t, d]]
            rec = sum(1 for t in starts if h[t + k, d])
            if starts and rec / len(starts) >= min_rec:
                period = k
                break
        out.append(period)
    return out


def ref_polyrhythm(periods: list[int]) -> float:
    pairs = [(a, b) for a, b in itertools.combinations(periods, 2) if a and b]
    cross = [1 for a, b in pairs if a % b and b % a]
    return len(cross) / len(pairs) if pairs else 0.0


@FAST
@given(seq=sequences(), spb=st.integers(1, 25), bpp=st.integers(1, 4), data=st.data())
def test_new_metrics_against_loop_oracles(seq, spb, bpp, data):
    h = np.asarray(seq) > 0
    steps, drums = h.shape
    threshold = data.draw(st.integers(1, 8))
    bpb = data.draw(st.integers(1, 5))
    max_lag = data.draw(st.integers(1, 80))
    min_rec = data.draw(st.sampled_from([0.5, 0.75, 1.0]))
    tol = {"rtol": 0, "atol": 1e-12}

    bars = [h[b * spb : (b + 1) * spb].mean(axis=0) for b in range(steps // spb)]
    np.testing.assert_allclose(aggregate(h, spb).reshape(-1, drums), np.reshape(bars, (-1, drums)))
    # mean hits per step of a bar > D / 2, in exact integers: 2 * hits > D * steps_per_bar
    dense = [2 * h[b * spb : (b + 1) * spb].sum() > drums * spb for b in range(steps // spb)]
    assert fraction_bars_above(seq, spb) == (np.mean(dense) if dense else 0.0)

    many = sum(1 for t in range(steps) if h[t].sum() > 1)
    assert co_occurrence_fraction(seq) == pytest.approx(many / steps if steps else 0.0, abs=1e-15)

    counts = np.zeros((drums, drums))
    for t in range(steps - 1):
        counts += np.outer(h[t], h[t + 1])
    rows = counts.sum(axis=1, keepdims=True)
    want = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    np.testing.assert_allclose(step_transitions(seq), want, **tol)

    fast = 0
    for d in range(drums):
        times = np.flatnonzero(h[:, d])
        fast += int(np.sum(np.diff(times) <= threshold))
    assert fast_hits(seq, threshold) == fast

    grams = Counter(tuple(int(x) for x in h[t : t + 4].ravel()) for t in range(max(steps - 3, 0)))
    assert n_gram_counter(seq) == grams
    assert len(grams) == n_grams(seq, 4).num_distinct

    phrase = spb * bpp
    per_bar = [
        [h[p * phrase + b * spb : p * phrase + (b + 1) * spb].sum() for b in range(bpp)]
        for p in range(steps // phrase)
    ]
    np.testing.assert_array_equal(
        phrase_hits_per_bar(seq, spb, bpp), np.reshape(per_bar, (-1, bpp))
    )

    assert swing(seq, spb, bpb) == pytest.approx(ref_swing(h, spb, bpb), abs=1e-15)
    periods = ref_periods(h, max_lag, min_rec)
    assert drum_periods(seq, max_lag, min_rec).tolist() == periods
    assert polyrhythm(seq, max_lag, min_rec) == pytest.approx(ref_polyrhythm(periods), abs=1e-15)


@FAST
@given(seq=sequences(), spb=bar_sizes, bpp=phrase_bars, fast=st.integers(1, 6))
def test_level_metrics_are_the_metric_functions(seq, spb, bpp, fast):
    m = level_metrics(seq, spb, bpp, [(0, 5), (5, 40)], fast, specs={})
    w = window_metrics(seq, spb, bpp, [(0, 5), (5, 40)], fast)
    expected = {
        ("step", "co_occurrence"): co_occurrence_fraction(seq),
        ("step", "co_occurrence_matrix"): w["step/co_occurrence"],
        ("step", "transitions"): step_transitions(seq),
        ("step", "onset_transitions"): w["step/transitions"],
        ("step", "fast_patterns"): fast_hits(seq, fast),
        ("step", "step_entropy"): w["step/entropy"],
        ("bar", "fraction_dense_bars"): fraction_bars_above(seq, spb),
        ("bar", "fraction_busy_bars"): w["bar/fraction_dense"],
        ("bar", "ngram_diversity"): n_grams(seq, 4).num_distinct,
        ("bar", "ngram_diversity_ratio"): w["bar/ngram_diversity"],
        ("phrase", "phrase_structure"): phrase_hits_per_bar(seq, spb, bpp),
        ("phrase", "section_contrast"): w["section/contrast"],
    }
    for (level, key), value in expected.items():
        np.testing.assert_array_equal(m[level][key], value, err_msg=key)
    for level in ("step", "bar", "phrase"):
        for key in m[level]:
            if f"{level}/{key}" in w and (level, key) not in expected:  # same definition
                np.testing.assert_array_equal(m[level][key], w[f"{level}/{key}"], err_msg=key)
    sections = section_level_metrics(seq, [(0, 5), (5, 40)], spb, bpp, specs={})
    assert len(m["section"]) == sections["avg_hits"].shape[-1]
    spans = metrics.section_spans(len(seq), [(0, 5), (5, 40)])
    assert len(spans) == len(m["section"])
    for i, (sec, (a, b)) in enumerate(zip(m["section"], spans, strict=True)):
        d = hit_density(np.asarray(seq)[a:b])
        assert sec["avg_hits"] == pytest.approx(d.avg_hits, abs=1e-12)
        np.testing.assert_array_equal(sec["drum_density"], d.drum_density)
        assert sec["max_hits"] == d.max_hits
        assert sec["dense_frac"] == fraction_bars_above(np.asarray(seq)[a:b], spb)
        for k, v in sec.items():
            np.testing.assert_array_equal(sections[k][i], v, err_msg=k)


@FAST
@given(seq=sequences(), spb=bar_sizes, bpp=phrase_bars, fast=st.integers(1, 6))
def test_song_level_equals_full_length_window(seq, spb, bpp, fast):
    s = song_level_metrics(seq, spb, bpp, fast)
    w = level_metrics(seq, spb, bpp, None, fast)
    for key, value in s.items():
        where = [lv for lv in ("step", "bar", "phrase") if key in w[lv]]
        if where:
            np.testing.assert_array_equal(value, w[where[0]][key], err_msg=key)
        assert np.all(np.isfinite(value)), key
    assert s["length_steps"] == len(seq)


NEW_ONE_SEQ = [
    lambda s: aggregate(s, 4),
    co_occurrence_fraction,
    step_transitions,
    fraction_bars_above,
    n_gram_counter,
    fast_hits,
    phrase_hits_per_bar,
    section_level_metrics,
    level_metrics,
    song_level_metrics,
    swing,
    drum_periods,
    polyrhythm,
]


@pytest.mark.parametrize("func", NEW_ONE_SEQ)
@pytest.mark.parametrize("bad", [np.zeros(16), np.float64(1.0)])
def test_new_metrics_rank_below_two_raises(func, bad):
    with pytest.raises(ValueError, match="shape"):
        func(bad)


NEW_NON_POSITIVE = [
    _arg("aggregate", lambda v: aggregate(SEQ, v), "step_size"),
    _arg("fraction_bars_above", lambda v: fraction_bars_above(SEQ, v), "steps_per_bar"),
    _arg("n_gram_counter", lambda v: n_gram_counter(SEQ, v), "n"),
    _arg("fast_hits", lambda v: fast_hits(SEQ, v), "fast_threshold"),
    _arg("phrase_hits_per_bar", lambda v: phrase_hits_per_bar(SEQ, v), "steps_per_bar"),
    _arg("phrase_hits_per_bar", lambda v: phrase_hits_per_bar(SEQ, 4, v), "bars_per_phrase"),
    _arg("swing", lambda v: swing(SEQ, v), "steps_per_bar"),
    _arg("swing", lambda v: swing(SEQ, 16, v), "beats_per_bar"),
    _arg("drum_periods", lambda v: drum_periods(SEQ, v), "max_lag"),
    _arg("polyrhythm", lambda v: polyrhythm(SEQ, v), "max_lag"),
    _arg("level_metrics", lambda v: level_metrics(SEQ, v), "steps_per_bar"),
    _arg("song_level_metrics", lambda v: song_level_metrics(SEQ, 16, 4, v), "fast_threshold"),
]


@pytest.mark.parametrize(("call", "name"), NEW_NON_POSITIVE)
@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_new_non_positive_argument_raises_naming_it(call, name, value):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call(value)
