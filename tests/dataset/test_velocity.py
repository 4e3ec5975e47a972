"""Velocity: the bins of dataset/velocity.py, the velocity metrics of dataset/metrics/dynamics.py,
the dataset's velocity metrics and the velocity families of dataset/evaluation.py.

The metrics are checked against loop oracles written straight from their docstrings (exact
fractions through ``math.fsum``), on hypothesis-drawn sequences of real velocities, plus their
properties: bounds, batch consistency, exactness, edge cases and bad input.
"""

from __future__ import annotations

import math
import timeit

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dataset import evaluation, metrics
from dataset.evaluation import (
    VELOCITY_FAMILIES,
    compare_velocity_to_baselines,
    constant_velocity,
    density_matched_random,
    families,
    score_sets,
    score_velocity_sets,
    uniform_random,
)
from dataset.hierarchical import CompleteHierarchicalDrumDataset as DS
from dataset.metrics import (
    VELOCITY_SPECS,
    WindowTables,
    accent_contrast,
    accent_pattern,
    bar_dynamic_range,
    bar_velocity_stats,
    level_metrics,
    mean_dynamic_range,
    song_level_metrics,
    velocity_feature_names,
    velocity_features,
    velocity_stats,
)
from dataset.registry import VELOCITY_KEYS, register_metric, registered_metrics
from dataset.synthetic import default_corpus
from dataset.velocity import MAX_VELOCITY_LEVELS, VelocityBins

FAST = settings(max_examples=60, deadline=None)
FEW = settings(max_examples=20, deadline=None)

# a hit's value: a MIDI velocity / 127 (as in the Groove data), any float in (0, 1], or a rest
VALUES = st.one_of(
    st.just(0.0), st.just(0.0), st.integers(1, 127).map(lambda k: k / 127),
    st.floats(0.0, 1.0, width=32),
)  # fmt: skip


@st.composite
def sequences(draw, max_steps: int = 40, max_drums: int = 4, batch: tuple[int, ...] = ()):
    steps = draw(st.integers(0, max_steps))
    drums = draw(st.integers(1, max_drums))
    return draw(hnp.arrays(np.float32, (*batch, steps, drums), elements=VALUES))


# --------------------------------------------------------------------------- oracles


def hits_of(seq: np.ndarray, ts, d: int) -> list[float]:
    return [float(seq[t, d]) for t in ts if seq[t, d] > 0]


def mean_std(vals: list[float]) -> tuple[float, float]:
    if not vals:
        return 0.0, 0.0
    m = math.fsum(vals) / len(vals)
    return m, math.sqrt(math.fsum((x - m) ** 2 for x in vals) / len(vals))


def oracle_stats(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps, drums = seq.shape
    out = [mean_std(hits_of(seq, range(steps), d)) for d in range(drums)]
    return np.array([m for m, _ in out]).reshape(drums), np.array([s for _, s in out]).reshape(
        drums
    )


def oracle_accent(seq: np.ndarray, spb: int) -> np.ndarray:
    steps, drums = seq.shape
    return np.array(
        [[mean_std(hits_of(seq, range(p, steps, spb), d))[0] for d in range(drums)]
         for p in range(spb)]
    ).reshape(spb, drums)  # fmt: skip


def oracle_contrast(seq: np.ndarray, spb: int) -> np.ndarray:
    steps, drums = seq.shape
    out = np.zeros(drums)
    for d in range(drums):
        n = len(hits_of(seq, range(steps), d))
        if n:
            m = mean_std(hits_of(seq, range(steps), d))[0]
            terms = []
            for p in range(spb):
                at = hits_of(seq, range(p, steps, spb), d)
                if at:
                    terms.append(len(at) * (mean_std(at)[0] - m) ** 2)
            out[d] = math.sqrt(math.fsum(terms) / n)
    return out


def oracle_bar_ranges(seq: np.ndarray, spb: int) -> list[float | None]:
    """Each complete bar's max - min over its hits, None below two hits."""
    out = []
    for b in range(len(seq) // spb):
        vals = [float(x) for x in seq[b * spb : (b + 1) * spb].ravel() if x > 0]
        out.append(max(vals) - min(vals) if len(vals) >= 2 else None)
    return out


def oracle_mean_range(seq: np.ndarray, spb: int) -> float:
    ranges = [r for r in oracle_bar_ranges(seq, spb) if r is not None]
    return math.fsum(ranges) / len(ranges) if ranges else 0.0


def close(a, b) -> None:
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=1e-9, atol=1e-12)  # fmt: skip


# --------------------------------------------------------------------------- hand-worked

# One 4/4 bar at 8 steps per bar then half a bar; drums (kick K, snare S, hat H):
#   t : 0    1    2    3    4    5    6    7  | 8    9    10   11
#   K : 1.0  .    .    .    0.5  .    .    .  | 1.0  .    .    .
#   S : .    .    0.6  .    .    .    0.2  .  | .    .    .    .
#   H : .    .    .    .    .    .    .    .  | .    .    .    .
GROOVE = np.zeros((12, 3))
GROOVE[[0, 4, 8], 0] = [1.0, 0.5, 1.0]
GROOVE[[2, 6], 1] = [0.6, 0.2]


def test_groove_by_hand():
    s = velocity_stats(GROOVE)
    # K: mean 2.5 / 3, deviations (1/6, -1/3, 1/6): variance (1/36 + 1/9 + 1/36) / 3 = 1/18
    close(s.mean, [2.5 / 3, 0.4, 0.0])
    close(s.spread, [math.sqrt(1 / 18), 0.2, 0.0])
    a = accent_pattern(GROOVE, 8)
    close(a[0], [1.0, 0.0, 0.0])  # t = 0 and the partial bar's t = 8: both 1.0
    close(a[2], [0.0, 0.6, 0.0])
    close(a[4], [0.5, 0.0, 0.0])
    assert a.sum() == pytest.approx(1.0 + 0.6 + 0.5 + 0.2)
    # K: positions 0 (two hits at 1) and 4 (one at 0.5) determine its velocity: contrast =
    # spread; S: one hit per position, likewise; H: no hits
    close(accent_contrast(GROOVE, 8), [math.sqrt(1 / 18), 0.2, 0.0])
    # the complete bar: loudest 1.0, softest 0.2; the partial bar is left out
    close(bar_dynamic_range(GROOVE, 8), [0.8])
    close(mean_dynamic_range(GROOVE, 8), 0.8)
    close(velocity_features(GROOVE, 8),
          [2.5 / 3, 0.4, 0, math.sqrt(1 / 18), 0.2, 0, math.sqrt(1 / 18), 0.2, 0, 0.8])  # fmt: skip
    bars = bar_velocity_stats(GROOVE, 4)  # 3 bars of 4 steps
    close(bars.mean, [[1.0, 0.6, 0], [0.5, 0.2, 0], [1.0, 0, 0]])
    close(bars.spread, np.zeros((3, 3)))


def test_constant_velocity_has_no_spread_but_a_positional_accent_has():
    hat = np.zeros((32, 1))
    hat[::2] = 0.7  # 8th notes, constant
    assert velocity_stats(hat).spread[0] == pytest.approx(0.0, abs=1e-12)
    assert accent_contrast(hat, 16)[0] == pytest.approx(0.0, abs=1e-12)
    hat[::4] = 0.9  # accents on the beat
    spread = velocity_stats(hat).spread[0]
    assert spread == pytest.approx(0.1)
    assert accent_contrast(hat, 16)[0] == pytest.approx(spread)  # all of it is positional
    close(accent_pattern(hat, 16)[::2, 0], [0.9, 0.7] * 4)


# --------------------------------------------------------------------------- properties


@FAST
@given(sequences(), st.integers(1, 8))
def test_metrics_equal_their_docstring_oracles(seq, spb):
    mean, spread = oracle_stats(seq)
    s = velocity_stats(seq)
    close(s.mean, mean)
    close(s.spread, spread)
    close(accent_pattern(seq, spb), oracle_accent(seq, spb))
    close(accent_contrast(seq, spb), oracle_contrast(seq, spb))
    close(bar_dynamic_range(seq, spb), [r or 0.0 for r in oracle_bar_ranges(seq, spb)])
    close(mean_dynamic_range(seq, spb), oracle_mean_range(seq, spb))
    close(velocity_features(seq, spb),
          [*mean, *spread, *oracle_contrast(seq, spb), oracle_mean_range(seq, spb)])  # fmt: skip
    bars = bar_velocity_stats(seq, spb)
    for b in range(len(seq) // spb):
        want = oracle_stats(seq[b * spb : (b + 1) * spb])
        close(bars.mean[b], want[0])
        close(bars.spread[b], want[1])


@FAST
@given(sequences(), st.integers(1, 8))
def test_bounds_and_finiteness(seq, spb):
    s = velocity_stats(seq)
    a = accent_pattern(seq, spb)
    c = accent_contrast(seq, spb)
    r = bar_dynamic_range(seq, spb)
    f = velocity_features(seq, spb)
    drums = seq.shape[1]
    assert f.shape == (3 * drums + 1,) and len(velocity_feature_names(drums)) == f.size
    assert a.shape == (spb, drums) and r.shape == (len(seq) // spb,)
    for x in (s.mean, s.spread, a, c, r, f):
        assert x.dtype == np.float64 and np.all(np.isfinite(x))
        assert np.all((x >= 0) & (x <= 1))
    assert np.all(s.spread <= 0.5)
    assert np.all(c <= s.spread + 1e-12)  # law of total variance
    has = (seq > 0).any(axis=0)
    assert np.all(s.mean[~has] == 0) and np.all(s.spread[~has] == 0) and np.all(c[~has] == 0)
    assert np.all(s.mean[has] > 0)


@FEW
@given(sequences(max_steps=24, batch=(3,)), st.integers(1, 6))
def test_a_batch_equals_its_sequences_bit_for_bit(stack, spb):
    feats = velocity_features(stack, spb)
    for i in range(len(stack)):
        one = stack[i]
        np.testing.assert_array_equal(feats[i], velocity_features(one, spb))
        np.testing.assert_array_equal(accent_pattern(stack, spb)[i], accent_pattern(one, spb))
        np.testing.assert_array_equal(bar_dynamic_range(stack, spb)[i],
                                      bar_dynamic_range(one, spb))  # fmt: skip
        np.testing.assert_array_equal(velocity_stats(stack).spread[i], velocity_stats(one).spread)
    np.testing.assert_array_equal(velocity_features(stack[None], spb)[0], feats)


@FEW
@given(sequences(max_steps=32), st.integers(1, 8), st.integers(0, 7))
def test_equal_velocities_give_identical_features(seq, spb, offset):
    # the same values in float64, in a view at another offset, and transposed in memory
    big = np.zeros((len(seq) + offset, seq.shape[1]))
    big[offset:] = seq
    view = big[offset:]
    fortran = np.asfortranarray(seq.astype(np.float64))
    want = velocity_features(seq, spb)
    for other in (seq.astype(np.float64), view, fortran):
        np.testing.assert_array_equal(velocity_features(other, spb), want)


def test_binary_and_silent_input():
    rng = np.random.default_rng(0)
    hits = rng.random((64, 5)) < 0.3
    hits[:, 4] = False
    for binary in (hits, hits.astype(np.float32)):
        s = velocity_stats(binary)
        np.testing.assert_array_equal(s.mean, [1, 1, 1, 1, 0])
        np.testing.assert_array_equal(s.spread, np.zeros(5))
        np.testing.assert_array_equal(accent_contrast(binary), np.zeros(5))
        np.testing.assert_array_equal(bar_dynamic_range(binary), np.zeros(4))
        np.testing.assert_array_equal(accent_pattern(binary), (metrics_positions(hits) > 0) * 1.0)
    for silent in (np.zeros((64, 5)), np.zeros((0, 5)), np.zeros((3, 0, 5)), np.zeros((0, 8, 5))):
        f = velocity_features(silent)
        assert f.shape == (*silent.shape[:-2], 16)
        np.testing.assert_array_equal(f, np.zeros(f.shape))
        np.testing.assert_array_equal(accent_pattern(silent), np.zeros((*silent.shape[:-2], 16, 5)))


def metrics_positions(h: np.ndarray, spb: int = 16) -> np.ndarray:
    return np.stack([h[p::spb].sum(axis=0) for p in range(spb)])


def test_values_are_read_exactly():
    seq = np.zeros((16, 2))
    seq[[0, 8], 0] = 0.5
    before = velocity_features(seq)
    seq[8, 0] = 0.5 + 1e-6  # far below a MIDI velocity step (1/127): read all the same
    after = velocity_features(seq)
    assert after[0] > before[0] and after[2] > before[2] and after[-1] > before[-1]
    seq[8, 0] = 1e-300  # a hit however soft
    assert velocity_stats(seq).mean[0] == pytest.approx(0.25)


@pytest.mark.parametrize("bad, match", [
    (np.zeros(4), "seq must have shape"),
    (np.full((4, 2), 1.5), r"\[0, 1\]"),
    (np.full((4, 2), -0.1), r"\[0, 1\]"),
    (np.array([[0.5, np.nan]]), r"\[0, 1\]"),
    (np.array([[0.5, np.inf]]), r"\[0, 1\]"),
    (np.zeros((4, 2), complex), "dtype"),
    (np.array([[None, 1]], dtype=object), "dtype"),
])  # fmt: skip
def test_bad_sequences_raise_naming_seq(bad, match):
    for fn in (velocity_stats, accent_pattern, accent_contrast, bar_dynamic_range,
               mean_dynamic_range, velocity_features, bar_velocity_stats):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            fn(bad)


@pytest.mark.parametrize("spb", [0, -4, 2.0, True, "16"])
def test_bad_steps_per_bar_raise_naming_it(spb):
    for fn in (accent_pattern, accent_contrast, bar_dynamic_range, mean_dynamic_range,
               velocity_features, bar_velocity_stats):  # fmt: skip
        with pytest.raises(ValueError, match="steps_per_bar"):
            fn(np.zeros((16, 2)), spb)
    with pytest.raises(ValueError, match="drums"):
        velocity_feature_names(-1)


def test_feature_names():
    assert velocity_feature_names(2) == (
        "velocity_mean[0]", "velocity_mean[1]", "velocity_spread[0]", "velocity_spread[1]",
        "accent_contrast[0]", "accent_contrast[1]", "mean_dynamic_range",
    )  # fmt: skip


def test_velocity_features_of_one_bar_is_cheap():
    bar = np.random.default_rng(0).random((1, 16, 9)).astype(np.float32)
    bar[bar < 0.6] = 0
    velocity_features(bar)
    seconds = min(timeit.repeat(lambda: velocity_features(bar), number=100, repeat=5)) / 100
    assert seconds < 1e-3  # some 40 microseconds: generous for a shared machine


def test_doctests():
    import doctest

    assert doctest.testmod(metrics).failed == 0


# --------------------------------------------------------------------------- the dataset


def velocity_corpus(lengths: list[int], drums: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        hits = rng.random((n, drums)) < 0.4
        out.append((hits * rng.integers(1, 128, (n, drums)) / 127).astype(np.float32))
    return out


def small(seqs: list[np.ndarray], **kw: object) -> DS:
    kw = {"seq_len": 16, "steps_per_bar": 4, "bars_per_phrase": 2, "as_numpy": True,
          "velocity_metrics": True, **kw}  # fmt: skip
    return DS(None, sequences=seqs, **kw)  # type: ignore[arg-type]


def test_samples_carry_the_velocity_metrics():
    seqs = velocity_corpus([40, 13])
    ds = small(seqs)
    for i in (0, 7, len(ds) - 1):
        m = ds[i]["metrics"]
        seq_idx = int(ds.sample_indices[i, 0])
        win = ds.window(i)
        for level in ("bar", "song"):
            tail = list(m[level])[-len(VELOCITY_KEYS[level]) :]
            assert tail == list(VELOCITY_KEYS[level])
        for key, want in {
            "velocity_mean": velocity_stats(win).mean,
            "velocity_spread": velocity_stats(win).spread,
            "accent_pattern": accent_pattern(win, 4),
            "accent_contrast": accent_contrast(win, 4),
            "dynamic_range": bar_dynamic_range(win, 4),
        }.items():
            np.testing.assert_array_equal(m["bar"][key], want.astype(np.float32), key)
        song = seqs[seq_idx]
        np.testing.assert_array_equal(m["song"]["mean_dynamic_range"],
                                      np.float32(mean_dynamic_range(song, 4)))  # fmt: skip
        np.testing.assert_array_equal(m["song"]["accent_pattern"],
                                      accent_pattern(song, 4).astype(np.float32))  # fmt: skip
    assert "velocity_mean" not in m["step"] and "velocity_mean" not in m["phrase"]
    assert all("velocity_mean" not in s for s in m["section"])
    off = DS(None, 16, 4, 2, sequences=seqs, as_numpy=True)[0]["metrics"]  # the default: off
    assert not any(k in off[lv] for lv in ("bar", "song") for k in VELOCITY_KEYS[lv])
    assert ds.metric_specs == {**registered_metrics(), **VELOCITY_SPECS}


@FEW
@given(st.integers(0, 2**31 - 1), st.sampled_from([(16, 1), (12, 3), (20, 2)]))
def test_tables_and_batches_equal_level_metrics_with_velocities(seed, shape):
    length, stride = shape
    seqs = velocity_corpus([37, 9, 24], seed=seed % 1000)
    specs = {**registered_metrics(), **VELOCITY_SPECS}
    for i, seq in enumerate(seqs):
        if len(seq) < length:
            continue
        tables = WindowTables(seq, length, stride, 4, 2, None, 4, specs)
        for start in range(0, len(seq) - length + 1, stride):
            want = level_metrics(seq[start : start + length], 4, 2, None, 4, specs)
            got = tables.level_metrics(start)
            for key in VELOCITY_KEYS["bar"]:
                expected = np.float32(want["bar"][key])
                np.testing.assert_array_equal(got["bar"][key], expected, f"{key} {i}")
    ds = small(seqs, seq_len=length, stride=stride, augment=True, seed=seed % 7)
    idx = list(range(len(ds)))
    for i, sample in zip(idx, ds.__getitems__(idx), strict=True):
        a, b = sample["metrics"], ds[i]["metrics"]
        for level in ("bar", "song"):
            for key in VELOCITY_KEYS[level]:
                np.testing.assert_array_equal(a[level][key], b[level][key])


def test_song_level_metrics_take_the_velocity_specs():
    seq = velocity_corpus([50])[0]
    song = song_level_metrics(seq, 4, 2, 4, dict(VELOCITY_SPECS))
    assert list(song)[-len(VELOCITY_KEYS["song"]) :] == list(VELOCITY_KEYS["song"])
    assert song["mean_dynamic_range"].shape == () and song["accent_pattern"].shape == (4, 3)


def test_velocity_metrics_are_not_registered_and_their_names_are_reserved():
    assert not set(registered_metrics()) & set(VELOCITY_SPECS)
    for name in ("velocity_mean", "dynamic_range", "mean_dynamic_range"):
        for levels in (("step",), ("song",)):
            with pytest.raises(ValueError, match="velocity"):
                register_metric(name, lambda seq, grid: 0.0, levels=levels)
    assert not set(registered_metrics()) & set(VELOCITY_SPECS)


def test_summary_reports_the_corpus_velocities():
    seqs = velocity_corpus([40, 24], seed=3)
    s = small(seqs).summary()
    pooled = np.concatenate(seqs)
    want_mean, want_spread = oracle_stats(pooled)
    close(s["velocity_mean"], want_mean)
    close(s["velocity_spread"], want_spread)
    want = np.mean([mean_dynamic_range(x, 4) for x in seqs])
    assert s["song/mean_dynamic_range"] == pytest.approx(want)
    off = small(seqs, velocity_metrics=False).summary()
    assert "song/mean_dynamic_range" not in off and "velocity_mean" in off


# --------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def real():
    return [s[:128] for s in default_corpus()]


def test_constant_velocity_scores_clearly_below_the_real_set(real):
    held, other = real[::2], real[1::2]
    ceiling = score_velocity_sets(other, held)
    assert set(ceiling.families) == set(VELOCITY_FAMILIES)
    for velocity in (1.0, float(np.concatenate([s[s > 0] for s in other]).mean())):
        flat = score_velocity_sets(constant_velocity(other, velocity), held)
        for family in VELOCITY_FAMILIES:
            assert flat.families[family] < ceiling.families[family] - 0.25, (velocity, family)
    # the hit families cannot tell: the same hits
    hits_real, hits_flat = score_sets(other, held), score_sets(constant_velocity(other), held)
    assert hits_flat.families == hits_real.families


def test_velocity_baselines_ceiling_beats_every_floor(real):
    base = compare_velocity_to_baselines(real, seed=1, bootstrap=2)
    ceiling = base.headline(base.real_vs_real)
    floors = (base.uniform_random, base.density_random, base.silence, base.constant_velocity)
    for floor in floors:
        assert ceiling > base.headline(floor) + 0.15
    assert base.headline(base.constant_velocity) < 0.4 and base.headline(base.silence) < 0.1
    assert set(base.discriminative) <= set(VELOCITY_FAMILIES) and base.discriminative
    assert set(base.real_vs_real_std) == {*VELOCITY_FAMILIES, "mean"}


def test_velocity_families_stay_out_of_the_hit_families(real):
    assert not set(VELOCITY_FAMILIES) & set(families())
    score = score_sets(real[:16], real[16:32])
    assert not set(VELOCITY_FAMILIES) & set(score.families)
    assert not any(k.startswith(("velocity_mean", "accent_pattern")) for k in score.families)


def test_identical_and_silent_sets(real):
    same = score_velocity_sets(real[:12], real[:12])
    assert all(v == pytest.approx(1.0, abs=1e-4) for v in same.families.values())
    silent = [np.zeros((64, 9), np.float32)] * 4
    empty = score_velocity_sets(real[:4], silent)  # no real hit: no velocity feature
    assert empty.families == {} and empty.mean == 0.0
    base = compare_velocity_to_baselines(silent, bootstrap=0)
    assert base.headline(base.real_vs_real) == 0.0


def test_density_matched_floor_draws_the_real_velocities_of_each_drum(real):
    rng = np.random.default_rng(0)
    fake = density_matched_random(real[:8], real, rng, velocities=True)
    for d in range(9):
        pool = set(np.concatenate([s[:, d][s[:, d] > 0] for s in real]).tolist())
        drawn = np.concatenate([s[:, d][s[:, d] > 0] for s in fake])
        assert set(drawn.tolist()) <= pool
    # without velocities: the draws and the hits are what they always were
    a = density_matched_random(real[:8], real, np.random.default_rng(5))
    b = density_matched_random(real[:8], real, np.random.default_rng(5), velocities=False)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(set(np.unique(x)) <= {0.0, 1.0} for x in a)
    # the hits of the velocity floor are those of the binary one (velocities drawn after)
    c = density_matched_random(real[:1], real, np.random.default_rng(5), velocities=True)
    np.testing.assert_array_equal(c[0] > 0, a[0] > 0)


def test_uniform_floor_with_velocities():
    like = [np.zeros((64, 4))] * 3
    plain = uniform_random(like, np.random.default_rng(2))
    assert all(set(np.unique(x)) <= {0.0, 1.0} for x in plain)
    vel = uniform_random(like, np.random.default_rng(2), velocities=True)
    values = np.concatenate([x[x > 0] for x in vel])
    assert values.min() > 0 and values.max() <= 1 and len(np.unique(values)) > 100
    np.testing.assert_array_equal(vel[0] > 0, plain[0] > 0)


def test_constant_velocity_checks_its_velocity():
    with pytest.raises(ValueError, match="velocity"):
        constant_velocity([np.ones((4, 2))], 0.0)
    assert evaluation.constant_velocity([np.eye(2)], 0.5)[0].tolist() == [[0.5, 0], [0, 0.5]]


# --------------------------------------------------------------------------- VelocityBins


@st.composite
def data_sets(draw):
    n = draw(st.integers(0, 3))
    return [draw(hnp.arrays(np.float32, (draw(st.integers(0, 20)), 2), elements=VALUES))
            for _ in range(n)]  # fmt: skip


@FAST
@given(data_sets(), st.integers(1, 12))
def test_bins_from_data_are_valid_and_round_trip(seqs, k):
    bins = VelocityBins.from_data(seqs, k)
    assert bins.num_levels == k
    assert np.all(np.diff(bins.edges) >= 0) and np.all((bins.levels > 0) & (bins.levels <= 1))
    assert VelocityBins.from_dict(bins.to_dict()) == bins
    assert hash(VelocityBins.from_dict(bins.to_dict())) == hash(bins)
    # decode then encode: a level plays in its own bin, unless the bin is empty (equal edges)
    codes = np.arange(k + 1)
    lows = np.concatenate([[0.0], bins.edges])
    highs = np.concatenate([bins.edges, [np.inf]])
    wide = np.concatenate([[True], lows < highs])
    np.testing.assert_array_equal(bins.encode(bins.decode(codes))[wide], codes[wide])


@FAST
@given(data_sets(), st.integers(1, 12), hnp.arrays(np.float32, (30,), elements=VALUES))
def test_bins_encode_by_the_edges(seqs, k, values):
    bins = VelocityBins.from_data(seqs, k)
    codes = bins.encode(values)
    assert codes.dtype == np.int64 and codes.shape == values.shape
    assert np.all((codes == 0) == (values <= 0))
    hit = values > 0
    want = 1 + np.array([np.sum(bins.edges <= v) for v in values[hit]], dtype=np.int64)
    np.testing.assert_array_equal(codes[hit], want)
    q = bins.quantize(values)
    assert q.dtype == np.float32 and np.all((q > 0) == hit)


@FAST
@given(st.lists(st.integers(1, 127), min_size=1, max_size=200), st.integers(1, 8))
def test_bins_are_equal_count_on_distinct_data(velocities, k):
    assume(len(set(velocities)) > 1)  # one value: the uniform bins (tested below)
    values = np.array(velocities) / 127
    bins = VelocityBins.from_data([values[:, None]], k)
    np.testing.assert_allclose(bins.edges, np.quantile(values, np.arange(1, k) / k))
    codes = bins.encode(values)
    for j in range(1, k + 1):
        inside = values[codes == j]
        if inside.size:
            assert bins.levels[j - 1] == pytest.approx(np.median(inside), abs=1e-6)


def test_bins_degenerate_data_and_bad_arguments():
    assert VelocityBins.from_data([], 4) == VelocityBins.uniform(4)
    assert VelocityBins.from_data([np.zeros((8, 2))], 3) == VelocityBins.uniform(3)
    one = VelocityBins.from_data([np.full((4, 1), 0.5)], 1)
    assert one.levels.tolist() == [0.5] and VelocityBins.uniform(1).levels.tolist() == [1.0]
    for bad in (0, MAX_VELOCITY_LEVELS + 1, 2.0, True):
        with pytest.raises(ValueError, match="velocity_levels"):
            VelocityBins.uniform(bad)
    with pytest.raises(ValueError, match="edges"):
        VelocityBins(np.array([0.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="levels"):
        VelocityBins(np.zeros(0), np.array([1.5]))
    with pytest.raises(ValueError, match="velocity_bins"):
        VelocityBins.from_dict({"edges": []})
