"""dataset/metrical.py: each drum's onset distribution over the bar's positions."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dataset import metrical
from dataset.metrical import onset_positions, onset_profile


def hits(max_steps: int = 64, max_drums: int = 5):
    """Binary sequences (steps, drums), 0 steps and one step included."""
    return st.integers(0, max_steps).flatmap(lambda t: st.integers(1, max_drums).flatmap(
        lambda d: hnp.arrays(np.float32, (t, d), elements=st.sampled_from([0.0, 0.5, 1.0]))))


def test_doctests():
    assert doctest.testmod(metrical, verbose=False).failed == 0


def test_hand_worked_backbeat():
    """Kick on 1 and 3, snare on 2 and 4, hat on every 8th: two bars of 16 steps."""
    seq = np.zeros((32, 3))
    seq[[0, 8, 16, 24], 0] = 1
    seq[[4, 12, 20, 28], 1] = 1
    seq[::2, 2] = 1
    n = onset_positions(seq)
    assert n.shape == (16, 3) and n[0, 0] == n[8, 0] == 2 and n.sum() == 4 + 4 + 16
    q = onset_profile(seq)
    assert q[[0, 8], 0].tolist() == [0.5, 0.5] and q[[4, 12], 1].tolist() == [0.5, 0.5]
    assert np.allclose(q[::2, 2], 1 / 8) and np.all(q[1::2, 2] == 0)


def test_partial_bar_counts_at_its_positions():
    seq = np.zeros((20, 1))
    seq[[0, 16, 17], 0] = 1  # the trailing partial bar's steps 16, 17 are positions 0, 1
    assert onset_positions(seq)[:2, 0].tolist() == [2.0, 1.0]


@pytest.mark.parametrize("seq", [np.zeros((0, 4)), np.zeros((1, 4)), np.ones((1, 4)),
                                 np.zeros((37, 4)), np.ones((48, 4)), np.ones((3, 4))])
def test_edge_cases_are_finite(seq):
    q = onset_profile(seq)
    assert q.shape == (16, 4) and np.isfinite(q).all()
    if not seq.any():
        assert (q == 0).all()


def test_all_hits_on_whole_bars_is_uniform():
    assert np.allclose(onset_profile(np.ones((48, 3))), 1 / 16)


@settings(max_examples=60, deadline=None)
@given(hits())
def test_profile_is_a_distribution_per_drum(seq):
    q = onset_profile(seq)
    assert np.isfinite(q).all() and (q >= 0).all() and (q <= 1).all()
    sums = q.sum(axis=0)
    played = (seq > 0).any(axis=0)
    assert np.allclose(sums[played], 1.0) and np.all(sums[~played] == 0)
    assert onset_positions(seq).sum() == (seq > 0).sum()


@settings(max_examples=40, deadline=None)
@given(hits(), st.integers(1, 4), st.integers(0, 40), st.randoms(use_true_random=False))
def test_invariances(seq, repeat, shift, rnd):
    """Whole bars repeated or rotated: same profile; a shift of s steps rolls it by s; drums
    permuted: columns permuted."""
    bars = -(-len(seq) // 16)
    whole = np.zeros((bars * 16, seq.shape[1]), np.float32)
    whole[: len(seq)] = seq
    q = onset_profile(whole)
    assert np.allclose(onset_profile(np.tile(whole, (repeat, 1))), q)
    if len(whole):
        assert np.allclose(onset_profile(np.roll(whole, 16 * repeat, axis=0)), q)
        assert np.allclose(onset_profile(np.roll(whole, shift, axis=0)), np.roll(q, shift, 0))
    perm = list(range(seq.shape[1]))
    rnd.shuffle(perm)
    assert np.allclose(onset_profile(seq[:, perm]), onset_profile(seq)[:, perm])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_batched_equals_one_by_one_and_other_bar_lengths(steps_per_bar, steps, seed):
    batch = (np.random.default_rng(seed).random((3, steps, 4)) < 0.3).astype(np.float32)
    q = onset_profile(batch, steps_per_bar)
    assert q.shape == (3, steps_per_bar, 4)
    for i in range(3):
        assert np.array_equal(q[i], onset_profile(batch[i], steps_per_bar))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="steps_per_bar"):
        onset_profile(np.zeros((16, 2)), 0)
    with pytest.raises(ValueError, match="steps_per_bar"):
        onset_positions(np.zeros((16, 2)), 2.5)
    with pytest.raises(ValueError, match="shape"):
        onset_profile(np.zeros(16))
