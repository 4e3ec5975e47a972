import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset.evaluation import (
    FAMILIES,
    compare_to_baselines,
    density_matched_random,
    families,
    overlapping_area,
    score_sets,
    sequence_features,
    silence,
)
from dataset.synthetic import default_corpus


@pytest.fixture(scope="module")
def corpus():
    return [s[:128] for s in default_corpus()]


def test_overlapping_area_identical_is_one_and_disjoint_near_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    assert overlapping_area(a, a) == pytest.approx(1.0, abs=1e-6)
    assert overlapping_area(a, a + 100.0) < 1e-6
    # Two samples of one distribution overlap a lot, a shifted one less.
    b = rng.normal(size=200)
    assert overlapping_area(a, b) > 0.8
    assert overlapping_area(a, b + 2.0) < overlapping_area(a, b)


def test_overlapping_area_of_constants():
    assert overlapping_area(np.zeros(10), np.zeros(7)) == pytest.approx(1.0, abs=1e-6)
    assert overlapping_area(np.zeros(10), np.ones(7)) < 1e-6


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=30),
       st.lists(st.floats(-5, 5), min_size=1, max_size=30))
def test_overlapping_area_is_a_symmetric_fraction(a, b):
    oa = overlapping_area(np.array(a), np.array(b))
    assert 0.0 <= oa <= 1.0
    assert oa == pytest.approx(overlapping_area(np.array(b), np.array(a)), abs=1e-9)


def test_identical_sets_score_one(corpus):
    score = score_sets(corpus, corpus)
    assert set(score.families) == set(families()) and set(FAMILIES) < set(families())
    assert all(v == pytest.approx(1.0, abs=1e-4) for v in score.families.values())


def test_ceiling_beats_every_floor(corpus):
    base = compare_to_baselines(corpus, seed=1)
    ceiling = base.headline(base.real_vs_real)
    for floor in (base.uniform_random, base.density_random, base.silence):
        assert ceiling > base.headline(floor) + 0.2
    assert base.headline(base.silence) < 0.2
    assert "density" in base.discriminative


def test_resampled_real_scores_above_random(corpus):
    real, other = corpus[:32], corpus[32:]
    rng = np.random.default_rng(0)
    random = density_matched_random(other, real, rng)
    assert score_sets(other, real).mean > score_sets(random, real).mean


def test_silence_is_finite_and_low(corpus):
    feats = sequence_features(np.zeros((64, 9)))
    assert all(np.all(np.isfinite(v)) for v in feats.values())
    assert score_sets(silence(corpus), corpus).mean < 0.2


def test_drum_in_pattern_rate_uses_the_eighth_grid():
    seq = np.zeros((16, 2))
    seq[[0, 2, 4, 6], 0] = 1  # 8th notes: all in the pattern
    assert sequence_features(seq)["drum_in_pattern_rate"] == 1.0
    seq[[1, 3], 1] = 1  # two 16th off-beats: 4 of 6 hits in the pattern
    assert sequence_features(seq)["drum_in_pattern_rate"] == pytest.approx(4 / 6)


def test_bad_sets_raise():
    with pytest.raises(ValueError, match="empty"):
        score_sets([], [np.zeros((16, 9))])
    with pytest.raises(ValueError, match="drums"):
        score_sets([np.zeros((16, 3))], [np.zeros((16, 9))])
    with pytest.raises(ValueError, match="at least 4"):
        compare_to_baselines([np.zeros((16, 9))] * 3)


def test_a_registered_metric_is_an_evaluation_family():
    from dataset.registry import register_metric, unregister_metric

    corpus = [s[:64] for s in default_corpus()[:24]]

    @register_metric("kick_share_eval", levels=("song",), batched=True)
    def kick_share(seq, grid):
        h = np.asarray(seq) > 0
        hits = h.sum(axis=(-1, -2))
        return np.where(hits > 0, h[..., 0].sum(axis=-1) / np.maximum(hits, 1), 0.0)

    try:
        assert families()[-1] == "kick_share_eval"
        same = score_sets(corpus[:12], corpus[12:])
        assert 0.0 <= same.families["kick_share_eval"] <= 1.0
        silent = score_sets([np.zeros_like(s) for s in corpus[:12]], corpus[12:])
        assert silent.families["kick_share_eval"] < same.families["kick_share_eval"]
    finally:
        unregister_metric("kick_share_eval")
    assert "kick_share_eval" not in families()
