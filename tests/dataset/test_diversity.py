"""Tests of dataset/diversity.py: the intra-set diversity's definition and its refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dataset.diversity import intra_set_diversity


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(2, 6), st.integers(1, 8), st.integers(1, 4)),
              elements=st.sampled_from([0.0, 0.3, 1.0])))
def test_matches_the_pairwise_oracle(x):
    pairs = list(itertools.combinations(range(len(x)), 2))
    oracle = np.mean([np.mean((x[i] > 0) != (x[j] > 0)) for i, j in pairs])
    assert intra_set_diversity(x) == pytest.approx(oracle)
    assert 0.0 <= intra_set_diversity(x) <= 1.0
    # the order of the set does not matter, nor do velocities (hits are what count)
    assert intra_set_diversity(x[::-1]) == pytest.approx(oracle)
    assert intra_set_diversity((x > 0).astype(np.float32)) == pytest.approx(oracle)


def test_copies_score_zero_and_independent_sets_score_2p1mp():
    one = np.random.default_rng(0).random((16, 9)) < 0.3
    assert intra_set_diversity(np.stack([one] * 5)) == 0.0
    rng = np.random.default_rng(1)
    many = (rng.random((400, 48, 9)) < 0.2).astype(np.float32)
    assert intra_set_diversity(many, max_pairs=5_000) == pytest.approx(2 * 0.2 * 0.8, abs=0.01)


def test_sampled_pairs_are_seeded():
    rng = np.random.default_rng(2)
    x = rng.random((100, 8, 3)) < 0.5
    a = intra_set_diversity(x, max_pairs=50, seed=3)
    b = intra_set_diversity(x, max_pairs=50, seed=3)
    assert a == b and a == pytest.approx(intra_set_diversity(x), abs=0.1)


@pytest.mark.parametrize("seqs, match", [
    (np.zeros((1, 4, 2)), "at least 2"),
    ([np.zeros((4, 2)), np.zeros((5, 2))], "one shape"),
    (np.zeros((3, 4)), r"shape \[T, D\]"),
    (np.zeros((3, 0, 2)), "empty"),
])
def test_bad_input_is_named(seqs, match):
    with pytest.raises(ValueError, match=match):
        intra_set_diversity(seqs)
    with pytest.raises(ValueError, match="max_pairs"):
        intra_set_diversity(np.zeros((3, 4, 2)), max_pairs=0)
