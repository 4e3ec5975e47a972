"""dataset/overlap.py: the overlapping area and its vectorised bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset.overlap import (
    overlapping_area,
    resample_counts,
    resampled_overlapping_area,
)

samples = st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.5]) | st.floats(-3, 3),
                   min_size=1, max_size=25)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(samples, samples, st.integers(0, 2**31 - 1))
def test_each_resample_is_scored_as_the_resampled_samples_are(a, b, seed):
    """Row r is overlapping_area of the expanded resample, bandwidths recomputed."""
    rng = np.random.default_rng(seed)
    a, b = np.array(a), np.array(b)
    wa, wb = resample_counts(len(a), 5, rng), resample_counts(len(b), 5, rng)
    got = resampled_overlapping_area(a, b, wa, wb)
    assert got.shape == (5,) and np.all((got >= 0) & (got <= 1))
    want = [overlapping_area(np.repeat(a, wa[r].astype(int)), np.repeat(b, wb[r].astype(int)))
            for r in range(5)]  # fmt: skip
    assert np.allclose(got, want, atol=3e-3)
    assert resampled_overlapping_area(a, b)[0] == pytest.approx(overlapping_area(a, b), abs=3e-3)


def test_identical_paired_resamples_overlap_fully():
    a = np.random.default_rng(0).normal(size=50)
    w = resample_counts(50, 30, np.random.default_rng(1))
    assert np.allclose(resampled_overlapping_area(a, a, w, w), 1.0, atol=1e-9)


def test_resample_counts_rows():
    rng = np.random.default_rng(0)
    c = resample_counts(10, 500, rng)
    assert c.shape == (500, 10) and np.all(c.sum(1) == 10) and np.all(c >= 0)
    assert abs(c.mean() - 1.0) < 0.05 and abs(c.var() - 0.9) < 0.1  # binomial(10, 1/10)
    a = resample_counts(10, 5, np.random.default_rng(3))
    assert np.array_equal(a, resample_counts(10, 5, np.random.default_rng(3)))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="non-empty"):
        overlapping_area([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        overlapping_area([np.nan], [1.0])
    with pytest.raises(ValueError, match="weights_a"):
        resampled_overlapping_area([1.0, 2.0], [1.0], np.ones((3, 5)))
    with pytest.raises(ValueError, match="count 2 items"):
        resampled_overlapping_area([1.0, 2.0], [1.0], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="whole numbers"):
        resampled_overlapping_area([1.0, 2.0], [1.0], np.full((1, 2), 1.5))
    with pytest.raises(ValueError, match="rows"):
        resampled_overlapping_area([1.0, 2.0], [1.0], np.ones((2, 2)), np.ones((3, 1)))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="resamples"):
        resample_counts(4, 0, rng)
    with pytest.raises(ValueError, match="n must"):
        resample_counts(0, 3, rng)
