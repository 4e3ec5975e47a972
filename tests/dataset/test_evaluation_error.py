"""dataset/evaluation.py: the headline's standard error and the metrical-position family."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset.evaluation import (
    FAMILIES,
    compare_to_baselines,
    density_matched_random,
    headline_standard_error,
    score_sets,
    score_sets_resampled,
    sequence_features,
)
from dataset.synthetic import default_corpus

KICK, SNARE, HAT, RIDE = 0, 1, 2, 8


def grooves(n: int, rng: np.random.Generator, bars: int = 4) -> list[np.ndarray]:
    """Synthetic real drumming: a few 4/4 grooves, each hit kept with probability 0.9, ghost
    notes and fills at random; kick, snare and hat (or ride) where real drummers put them."""
    styles = (
        {KICK: [0, 8], SNARE: [4, 12], HAT: list(range(0, 16, 2))},           # rock
        {KICK: [0, 10], SNARE: [8], HAT: list(range(0, 16, 2))},              # half time
        {KICK: [0, 3, 8, 11], SNARE: [4, 12], HAT: list(range(16))},          # busy 16ths
        {KICK: [0, 7, 10], SNARE: [4, 12], RIDE: [0, 4, 6, 8, 12, 14]},       # ride swing-ish
    )  # fmt: skip
    out = []
    for _ in range(n):
        style = styles[rng.integers(len(styles))]
        seq = np.zeros((bars * 16, 9), np.float32)
        for b in range(bars):
            for drum, where in style.items():
                keep = rng.random(len(where)) < 0.9
                seq[b * 16 + np.array(where)[keep], drum] = 1
            ghosts = rng.random(16) < 0.06
            seq[b * 16 + np.flatnonzero(ghosts), SNARE] = 1
        out.append(seq)
    return out


@pytest.fixture(scope="module")
def real():
    return grooves(96, np.random.default_rng(0))


def positions_player(refs: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Hits at each reference's own positions: each (position, drum) at its rate there."""
    out = []
    for s in refs:
        rate = s.reshape(-1, 16, s.shape[-1]).mean(axis=0)  # (16, drums)
        out.append((rng.random(s.shape) < np.tile(rate, (len(s) // 16, 1))).astype(np.float32))
    return out


def density_player(refs: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Random bars at each reference's own per-drum densities (the positions random)."""
    return [(rng.random(s.shape) < s.mean(axis=0)).astype(np.float32) for s in refs]


# ----------------------------------------------------------------------------- the family


def test_metrical_position_is_a_family_with_the_real_sets_top_cells(real):
    assert FAMILIES[-1] == "metrical_position"
    score = score_sets(real[:48], real[48:])
    cells = [k for k in score.features if k.startswith("metrical_position/")]
    assert len(cells) == 12  # 3 drums x 4 positions
    assert "metrical_position/onset_share[0,0]" in cells  # the kick on the downbeat
    assert sequence_features(real[0])["onset_profile"].shape == (16, 9)


def test_density_matched_random_scores_clearly_below_hits_at_the_real_positions(real):
    """Random bars at the real per-drum densities match the density family as well as hits at
    the real positions do; the metrical-position family tells them apart, and it is
    discriminative by the rule of every family (the ceiling beats the best floor by 0.1)."""
    held, other = real[:48], real[48:]
    rng = np.random.default_rng(1)
    random = score_sets(density_player(other, rng), held)
    placed = score_sets(positions_player(other, rng), held)
    floor = score_sets(density_matched_random(other, held, rng), held)
    ceiling = score_sets(other, held)
    fam = "metrical_position"
    assert placed.families[fam] > random.families[fam] + 0.25
    assert placed.families[fam] > floor.families[fam] + 0.25
    assert ceiling.families[fam] > placed.families[fam] - 0.1
    assert abs(placed.families["density"] - random.families["density"]) < 0.1
    base = compare_to_baselines(real, seed=0)
    assert fam in base.discriminative
    assert base.headline(placed) > base.headline(random) + 0.1


def test_silence_and_one_step_sets_score_finite():
    short = [np.zeros((1, 9), np.float32), np.ones((1, 9), np.float32)]
    score = score_sets(short, short)
    assert all(math.isfinite(v) for v in score.families.values())


# ----------------------------------------------------------------------------- the error


def test_resampled_score_is_the_score_and_seeded(real):
    a, b = real[:32], real[32:64]
    plain = score_sets(a, b)
    r = score_sets_resampled(a, b, resamples=20, seed=3)
    assert r.score == plain
    assert set(r.families) == set(plain.families)
    assert all(v.shape == (20,) and np.all((v >= 0) & (v <= 1)) for v in r.families.values())
    again = score_sets_resampled(a, b, resamples=20, seed=3)
    assert all(np.array_equal(r.families[f], again.families[f]) for f in r.families)
    assert score_sets_resampled(a, b, resamples=0).families == {}


def test_identical_sets_have_zero_error_and_no_nan(real):
    base = compare_to_baselines(real, seed=0)
    r = score_sets_resampled(real[:40], real[:40], resamples=30, seed=0)
    assert base.standard_error(r) == pytest.approx(0.0, abs=1e-9)
    assert base.headline_resampled(r.families) == pytest.approx(1.0, abs=1e-6)
    silent = [np.zeros((64, 9), np.float32)] * 8
    s = score_sets_resampled(silent, silent, resamples=10)
    assert all(np.isfinite(v).all() for v in s.families.values())


@settings(max_examples=3, deadline=None)
@given(st.integers(0, 2**16))
def test_error_shrinks_as_the_set_grows(seed):
    rng = np.random.default_rng(seed)
    pool = grooves(200, rng)
    takes = density_matched_random(pool, pool, rng)  # paired with the real windows
    base = compare_to_baselines(pool[:64], seed=0)
    small = score_sets_resampled(takes[:16], pool[:16], resamples=40, seed=seed)
    large = score_sets_resampled(takes, pool, resamples=40, seed=seed)
    assert base.standard_error(large) < base.standard_error(small)


def test_reported_error_matches_the_spread_of_independent_draws():
    """Calibration: the bootstrap error of one draw is about the standard deviation of the
    headline over independent draws of the same size (episodes and takes drawn afresh)."""
    rng = np.random.default_rng(5)
    base = compare_to_baselines(grooves(96, rng), seed=0)
    heads, errors = [], []
    for k in range(16):
        refs = grooves(32, rng)
        takes = density_matched_random(refs, refs, rng)
        r = score_sets_resampled(takes, refs, resamples=40, seed=k)
        heads.append(base.headline(r.score))
        errors.append(base.standard_error(r))
    ratio = np.mean(errors) / np.std(heads, ddof=1)  # the spread itself is known to +-20%
    assert 0.5 < ratio < 2.0, ratio


def test_baselines_carry_an_error_per_player_and_the_same_draws(real):
    plain = compare_to_baselines(real, seed=2)
    boot = compare_to_baselines(real, seed=2, resamples=25)
    assert plain.headline_se is None
    assert set(boot.headline_se) == {"real_vs_real", "uniform_random", "density_random",
                                     "silence"}  # fmt: skip
    assert all(math.isfinite(v) and v >= 0 for v in boot.headline_se.values())
    assert boot.real_vs_real == plain.real_vs_real and boot.density_random == plain.density_random


def test_standard_error_combines_bootstrap_and_draws():
    assert headline_standard_error([0.7], [0.01]) == pytest.approx(0.01)
    # Draws that disagree more than the bootstrap says: their variance wins.
    assert headline_standard_error([0.50, 0.52], [0.001, 0.001]) == pytest.approx(0.01)
    # Draws that agree: the bootstrap wins, divided by the draws.
    assert headline_standard_error([0.5, 0.5, 0.5, 0.5], [0.01] * 4) == pytest.approx(0.005)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 0.1)), min_size=1, max_size=8))
def test_standard_error_is_at_least_each_estimate(draws):
    heads, errors = zip(*draws)
    se = headline_standard_error(heads, errors)
    k = len(heads)
    assert math.isfinite(se) and se >= 0
    assert se >= math.sqrt(np.mean(np.square(errors)) / k) - 1e-12
    if k > 1:
        assert se >= np.std(heads, ddof=1) / math.sqrt(k) - 1e-12


@pytest.mark.parametrize("kwargs, match", [
    ({"resamples": 1}, "resamples"),
    ({"resamples": -2}, "resamples"),
])  # fmt: skip
def test_bad_resampling_arguments_are_named(kwargs, match):
    seqs = default_corpus()[:8]
    with pytest.raises(ValueError, match=match):
        score_sets_resampled([s[:64] for s in seqs], [s[:64] for s in seqs], **kwargs)


def test_paired_sets_of_other_sizes_and_bad_errors_are_named():
    seqs = [s[:64] for s in default_corpus()[:8]]
    with pytest.raises(ValueError, match="equal size"):
        score_sets_resampled(seqs[:3], seqs, resamples=5)
    with pytest.raises(ValueError, match="one bootstrap error per headline"):
        headline_standard_error([0.5, 0.6], [0.01])
    with pytest.raises(ValueError, match="at least one draw"):
        headline_standard_error([], [])
    with pytest.raises(ValueError, match="finite"):
        headline_standard_error([0.5], [-0.01])
    with pytest.raises(ValueError, match="finite"):
        headline_standard_error([float("nan")], [0.01])
