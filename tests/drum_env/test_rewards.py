"""Tests for drum_env/rewards.py: shapings, running moments, normaliser, features.

Oracles: the shaping table is copied by hand from the ``rewards.SHAPINGS`` docstring; running
moments are checked against ``np.mean`` / ``np.var`` of the concatenated stream; features are
checked for their documented shapes and ranges and for batch consistency.
"""

from __future__ import annotations

import copy
import io
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drum_env import rewards
from drum_env.rewards import (
    DEFAULT_SHAPING,
    LEVELS,
    SHAPINGS,
    SONG_FEATURE_NAMES,
    TERMS,
    VARIETY_FEATURE_NAMES,
    Moments,
    RunningNormalizer,
    Shaping,
    make_shaping,
    update_moments,
)

# --------------------------------------------------------------------------- shapings

# The table of the SHAPINGS docstring, written out by hand: name -> (non-zero weights, normalised).
_UNITS = ("bar", "phrase", "section", "song", "silence", "repetition")
_VELOCITY = dict.fromkeys(("bar_velocity", "phrase_velocity", "song_velocity"), 1.0)
DOCUMENTED_SHAPINGS = {
    "aligned": ({**dict.fromkeys(_UNITS, 1.0), "variety": 3.0, **_VELOCITY}, True),
    "aligned-raw": ({**dict.fromkeys(_UNITS, 1.0), "variety": 3.0, **_VELOCITY}, False),
    "aligned-hits": ({**dict.fromkeys(_UNITS, 1.0), "variety": 3.0}, True),
    "sparse": ({"song": 1.0}, True),
    "step": ({"step": 1.0, "song": 1.0}, True),
    "bar": ({"bar": 1.0, "song": 1.0, "silence": 1.0, "repetition": 1.0}, True),
    "hierarchical": (dict.fromkeys(("step", *_UNITS), 1.0), True),
    "hierarchical-raw": (dict.fromkeys(("step", *_UNITS), 1.0), False),
}


def test_terms_and_levels():
    assert LEVELS == ("step", "bar", "phrase", "section", "song")
    assert TERMS == (*LEVELS, "silence", "repetition", "variety", "metrics", "bar_velocity",
                     "phrase_velocity", "song_velocity")  # fmt: skip


def test_default_shaping_is_aligned_and_has_no_step_term():
    assert DEFAULT_SHAPING == "aligned"
    assert make_shaping() is SHAPINGS["aligned"]
    # the step term (a function of one step's action) is maximised by the per-position mode
    assert SHAPINGS["aligned"].weights["step"] == 0.0
    assert SHAPINGS["aligned"].weights["variety"] > 0.0


def test_every_documented_shaping_exists():
    assert set(DOCUMENTED_SHAPINGS) <= set(SHAPINGS)


@pytest.mark.parametrize("name", sorted(DOCUMENTED_SHAPINGS))
def test_shaping_weights_as_documented(name):
    nonzero, normalize = DOCUMENTED_SHAPINGS[name]
    shaping = make_shaping(name)
    assert shaping is SHAPINGS[name]
    assert shaping.name == name
    assert shaping.normalize is normalize
    assert dict(shaping.weights) == {k: nonzero.get(k, 0.0) for k in TERMS}
    np.testing.assert_array_equal(shaping.weight_vector, [nonzero.get(k, 0.0) for k in TERMS])


@pytest.mark.parametrize("name", sorted(SHAPINGS))
def test_every_shaping_resolves(name):
    shaping = make_shaping(name)
    assert isinstance(shaping, Shaping)
    assert set(shaping.weights) == set(TERMS)
    assert all(math.isfinite(w) for w in shaping.weights.values())
    assert make_shaping(shaping) is shaping  # a Shaping passes through


def test_weight_override_replaces_only_named_terms():
    s = make_shaping("sparse", weights={"bar": 2.5, "song": 0.5})
    assert s.name == "sparse+custom"
    assert s.normalize is True
    assert dict(s.weights) == {k: {"bar": 2.5, "song": 0.5}.get(k, 0.0) for k in TERMS}
    # the preset itself is untouched
    assert SHAPINGS["sparse"].weights["bar"] == 0.0
    assert SHAPINGS["sparse"].weights["song"] == 1.0


def test_normalize_override():
    s = make_shaping("hierarchical", normalize=False)
    assert s.normalize is False
    assert dict(s.weights) == dict(SHAPINGS["hierarchical"].weights)
    s = make_shaping("hierarchical-raw", normalize=True)
    assert s.normalize is True


def test_override_of_a_shaping_object():
    base = Shaping("mine", {"phrase": 3.0}, normalize=False)
    s = make_shaping(base, weights={"step": 0.25})
    assert s.weights["phrase"] == 3.0 and s.weights["step"] == 0.25
    assert s.normalize is False


def test_unknown_shaping_name_raises_naming_it():
    with pytest.raises(ValueError, match="no-such-shaping"):
        make_shaping("no-such-shaping")


def test_unknown_term_in_weights_raises_naming_it():
    with pytest.raises(ValueError, match="bogus_term"):
        make_shaping("hierarchical", weights={"bogus_term": 1.0})
    with pytest.raises(ValueError, match="bogus_term"):
        Shaping("custom", {"bogus_term": 1.0})


def test_non_finite_weight_raises_naming_the_term():
    with pytest.raises(ValueError, match="bar"):
        Shaping("custom", {"bar": float("nan")})
    with pytest.raises(ValueError, match="song"):
        make_shaping("sparse", weights={"song": float("inf")})


def test_shaping_of_wrong_type_raises():
    with pytest.raises(ValueError, match="shaping"):
        make_shaping(3)  # type: ignore[arg-type]


def test_shaping_is_frozen():
    s = make_shaping("hierarchical")
    with pytest.raises(AttributeError):
        s.normalize = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.weights["bar"] = 5.0  # type: ignore[index]
    with pytest.raises(TypeError):
        del s.weights["bar"]  # type: ignore[attr-defined]
    with pytest.raises((TypeError, AttributeError)):
        s.weights.update(bar=5.0)  # type: ignore[attr-defined]
    assert s.weights["bar"] == 1.0


def test_shaping_weights_in_place_or_is_rejected():
    s = Shaping("mine", {"bar": 1.0})  # a private Shaping: a failure must not touch the presets
    weights = s.weights
    with pytest.raises(TypeError):
        weights |= {"bar": 5.0}  # type: ignore[operator]
    assert s.weights["bar"] == 1.0


def test_shaping_pickles_and_hashes():
    s = make_shaping("bar", weights={"step": 0.5})
    clone = pickle.loads(pickle.dumps(s))
    assert clone == s and hash(clone) == hash(s)
    assert clone.weight_vector.tolist() == s.weight_vector.tolist()
    assert copy.deepcopy(s) == s


# --------------------------------------------------------------------------- update_moments

NUM_TERMS = 3
values_st = st.floats(-100.0, 100.0, allow_nan=False, allow_subnormal=False)
# A stream: a list of batches; a batch holds, per term, a (possibly empty) list of values.
batch_st = st.lists(st.lists(values_st, max_size=7), min_size=NUM_TERMS, max_size=NUM_TERMS)


def _fold(batches):
    moments = Moments(np.zeros(NUM_TERMS), np.zeros(NUM_TERMS), np.zeros(NUM_TERMS))
    for batch in batches:
        count = np.array([len(v) for v in batch], dtype=np.float64)
        total = np.array([np.sum(v) if v else 0.0 for v in batch])
        sumsq = np.array([np.sum(np.square(v)) if v else 0.0 for v in batch])
        moments = update_moments(moments, count, total, sumsq)
    return moments


@settings(max_examples=200, deadline=None)
@given(st.lists(batch_st, max_size=6))
def test_update_moments_matches_numpy(batches):
    moments = _fold(batches)
    for k in range(NUM_TERMS):
        stream = np.array([v for batch in batches for v in batch[k]], dtype=np.float64)
        assert moments.count[k] == len(stream)
        if len(stream) == 0:
            assert moments.mean[k] == 0.0 and moments.m2[k] == 0.0
            continue
        scale = max(1.0, float(np.max(np.abs(stream))))
        # sums of squares lose about eps * n * scale**2 to cancellation
        tol = 1e-12 * scale**2 * len(stream) + 1e-12
        assert moments.mean[k] == pytest.approx(np.mean(stream), abs=1e-12 * scale)
        assert moments.m2[k] / len(stream) == pytest.approx(np.var(stream), abs=tol)
        assert moments.m2[k] >= 0.0
    assert all(np.isfinite(a).all() for a in moments)


@given(st.lists(batch_st, min_size=1, max_size=4))
@settings(max_examples=50, deadline=None)
def test_update_moments_with_empty_batch_is_identity(batches):
    moments = _fold(batches)
    zero = np.zeros(NUM_TERMS)
    same = update_moments(moments, zero, zero, zero)
    for a, b in zip(same, moments):
        np.testing.assert_array_equal(a, b)


def test_update_moments_hand_worked():
    # stream [1, 2, 3] then [5]: mean 2.75, population variance 2.1875 -> M2 = 8.75
    m = Moments(np.zeros(1), np.zeros(1), np.zeros(1))
    m = update_moments(m, np.array([3.0]), np.array([6.0]), np.array([14.0]))
    m = update_moments(m, np.array([1.0]), np.array([5.0]), np.array([25.0]))
    assert m.count.tolist() == [4.0]
    assert m.mean.tolist() == [2.75]
    assert m.m2.tolist() == [8.75]


def test_update_moments_returns_new_arrays():
    m = Moments(np.zeros(2), np.zeros(2), np.zeros(2))
    new = update_moments(m, np.array([1.0, 0.0]), np.array([2.0, 0.0]), np.array([4.0, 0.0]))
    assert m.count.tolist() == [0.0, 0.0]  # input untouched
    assert new.count.tolist() == [1.0, 0.0]


# --------------------------------------------------------------------------- normaliser


def _feed(norm: RunningNormalizer, values: np.ndarray) -> None:
    """Feed values (n, terms) as one batch."""
    values = np.asarray(values, dtype=np.float64)
    norm.update(
        np.full(values.shape[1], float(len(values))), values.sum(axis=0), (values**2).sum(axis=0)
    )


def test_normalizer_identity_before_two_values():
    norm = RunningNormalizer(len(TERMS))
    raw = np.linspace(-1.0, 0.0, len(TERMS))[None]
    np.testing.assert_array_equal(norm.normalize(raw), raw)
    _feed(norm, np.full((1, len(TERMS)), -0.5))
    assert norm.count.tolist() == [1.0] * len(TERMS)
    np.testing.assert_array_equal(norm.normalize(raw), raw)
    np.testing.assert_array_equal(norm.var, np.zeros(len(TERMS)))


def test_normalizer_standardises_after_two_values():
    rng = np.random.default_rng(0)
    values = rng.uniform(-1.0, 0.0, size=(50, 4))
    norm = RunningNormalizer(4, clip=10.0)
    _feed(norm, values[:20])
    _feed(norm, values[20:])
    np.testing.assert_allclose(norm.mean, values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(norm.var, values.var(axis=0), rtol=1e-10)
    raw = rng.uniform(-1.0, 0.0, size=(6, 4))
    expected = (raw - values.mean(axis=0)) / np.sqrt(values.var(axis=0) + 1e-8)
    np.testing.assert_allclose(norm.normalize(raw), expected, rtol=1e-10)
    # the normalised stream itself has mean 0 and variance ~1
    z = norm.normalize(values)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(z.var(axis=0), 1.0, rtol=1e-6)


def test_normalizer_only_ready_terms_are_scaled():
    norm = RunningNormalizer(2)
    norm.update(np.array([3.0, 1.0]), np.array([-3.0, -0.5]), np.array([5.0, 0.25]))
    raw = np.array([[-0.2, -0.2]])
    out = norm.normalize(raw)
    mean, var = -1.0, 5.0 / 3.0 - 1.0
    assert out[0, 0] == pytest.approx((-0.2 - mean) / math.sqrt(var + 1e-8))
    assert out[0, 1] == -0.2  # one value seen: identity


def test_normalizer_clips():
    norm = RunningNormalizer(1, clip=2.0)
    _feed(norm, np.array([[0.0], [0.1], [-0.1], [0.05]]))  # mean 0.0125
    out = norm.normalize(np.array([[100.0], [-100.0], [0.0125]]))
    assert out[:, 0].tolist() == pytest.approx([2.0, -2.0, 0.0], abs=1e-12)


def test_normalizer_columns_select_terms():
    rng = np.random.default_rng(1)
    norm = RunningNormalizer(len(TERMS))
    _feed(norm, rng.uniform(-1, 0, size=(30, len(TERMS))))
    raw = rng.uniform(-1, 0, size=(5, len(TERMS)))
    cols = np.array([0, 2, 6])
    np.testing.assert_array_equal(norm.normalize(raw[:, cols], cols), norm.normalize(raw)[:, cols])


def test_normalizer_constant_stream_is_finite():
    norm = RunningNormalizer(1)
    _feed(norm, np.full((10, 1), -0.25))
    out = norm.normalize(np.array([[-0.25], [0.0]]))
    assert np.isfinite(out).all()
    assert out[0, 0] == 0.0
    assert out[1, 0] == norm.clip  # 0.25 / sqrt(1e-8) is far beyond the clip


def _trained_normalizer(num_terms: int = len(TERMS), seed: int = 2) -> RunningNormalizer:
    rng = np.random.default_rng(seed)
    norm = RunningNormalizer(num_terms, clip=3.0, epsilon=1e-6)
    for _ in range(3):
        _feed(norm, rng.uniform(-1, 0, size=(int(rng.integers(1, 10)), num_terms)))
    return norm


def _assert_same_normalizer(a: RunningNormalizer, b: RunningNormalizer) -> None:
    for x, y in zip(a.moments, b.moments):
        np.testing.assert_array_equal(x, y)
    assert a.clip == b.clip and a.epsilon == b.epsilon
    raw = np.random.default_rng(3).uniform(-2, 1, size=(8, len(a.count)))
    np.testing.assert_array_equal(a.normalize(raw), b.normalize(raw))


def test_normalizer_state_dict_round_trip():
    norm = _trained_normalizer()
    state = norm.state_dict()
    # plain Python: lists of floats and floats
    for key in ("count", "mean", "m2"):
        assert isinstance(state[key], list) and all(type(v) is float for v in state[key])
    assert type(state["clip"]) is float and type(state["epsilon"]) is float
    fresh = RunningNormalizer(len(TERMS))
    fresh.load_state_dict(state)
    _assert_same_normalizer(norm, fresh)
    # loading is a copy: updating one does not move the other
    _feed(fresh, np.zeros((3, len(TERMS))))
    assert not np.array_equal(fresh.count, norm.count)


def test_normalizer_state_dict_through_torch_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    norm = _trained_normalizer()
    path = tmp_path / "ckpt.pt"
    torch.save({"reward_normalizer": norm.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    fresh = RunningNormalizer(len(TERMS))
    fresh.load_state_dict(loaded["reward_normalizer"])
    _assert_same_normalizer(norm, fresh)
    # and through an in-memory buffer
    buf = io.BytesIO()
    torch.save(norm.state_dict(), buf)
    buf.seek(0)
    fresh2 = RunningNormalizer(len(TERMS))
    fresh2.load_state_dict(torch.load(buf, weights_only=True))
    _assert_same_normalizer(norm, fresh2)


def test_normalizer_wrong_size_state_raises():
    state = _trained_normalizer(num_terms=5).state_dict()
    with pytest.raises(ValueError, match="5 terms"):
        RunningNormalizer(len(TERMS)).load_state_dict(state)


# --------------------------------------------------------------------------- features

SPB, BPP = 16, 4


def _random_hits(rng, shape, density):
    return rng.random(shape) < density


def _inputs(steps: int, drums: int = 9, batch: int = 5, seed: int = 0):
    """Random hits at several densities plus the edge cases: silence and all hits."""
    rng = np.random.default_rng(seed)
    rows = [_random_hits(rng, (steps, drums), d) for d in np.linspace(0.05, 0.95, batch)]
    rows += [np.zeros((steps, drums), bool), np.ones((steps, drums), bool)]
    # one drum on the downbeats only, and a single hit
    beat = np.zeros((steps, drums), bool)
    beat[::4, 0] = True
    single = np.zeros((steps, drums), bool)
    single[steps // 2, drums - 1] = True
    return np.stack([*rows, beat, single])


FEATURES = {
    # name: (function of a batch, steps of one input, expected number of features for 9 drums)
    "bar": (lambda x: rewards.bar_features(x, SPB), SPB, 9 + 3),
    "phrase": (lambda x: rewards.phrase_features(x, SPB, BPP), SPB * BPP, 4),
    "section": (lambda x: rewards.section_features(x, SPB), 2 * SPB * BPP, 2 * 9 + 1),
    "song": (lambda x: rewards.song_features(x, SPB, BPP), 8 * SPB, len(SONG_FEATURE_NAMES) + 9),
    # the bar before each bar: the bar played backwards (any bar of the same shape will do)
    "variety": (
        lambda x: rewards.variety_features(x, x[..., ::-1, :]), SPB, len(VARIETY_FEATURE_NAMES)
    ),
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_features_shape_range_and_batch_consistency(name):
    fn, steps, size = FEATURES[name]
    x = _inputs(steps)
    out = fn(x)
    assert out.shape == (len(x), size)
    assert out.dtype == np.float64
    assert np.isfinite(out).all()
    assert (out >= 0.0).all() and (out <= 1.0).all(), out
    for i in range(len(x)):
        np.testing.assert_array_equal(out[i], fn(x[i]), err_msg=f"row {i}")
    # extra batch axes are kept
    nested = fn(x.reshape(3, 3, *x.shape[1:]))
    assert nested.shape == (3, 3, size)
    np.testing.assert_array_equal(nested.reshape(len(x), size), out)
    # float velocities and bool hits give the same features
    np.testing.assert_array_equal(fn(x.astype(np.float32) * 0.5), out)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(sorted(FEATURES)),
    st.integers(1, 9),
    st.floats(0.0, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_features_in_unit_interval_for_random_inputs(name, drums, density, seed):
    fn, steps, _ = FEATURES[name]
    rng = np.random.default_rng(seed)
    x = rng.random((3, steps, drums)) < density
    out = fn(x)
    assert np.isfinite(out).all()
    assert (out >= 0.0).all() and (out <= 1.0).all(), out
    for i in range(len(x)):
        np.testing.assert_array_equal(out[i], fn(x[i]))


def test_feature_sizes_follow_drums():
    for drums in (1, 4, 9, 12):
        x = np.ones((2 * SPB * BPP, drums), bool)
        assert rewards.bar_features(x[:SPB], SPB).shape == (drums + 3,)
        assert rewards.phrase_features(x[: SPB * BPP], SPB, BPP).shape == (4,)
        assert rewards.section_features(x, SPB).shape == (2 * drums + 1,)
        assert rewards.song_features(x, SPB, BPP).shape == (len(SONG_FEATURE_NAMES) + drums,)


def test_bar_features_hand_worked():
    # 4 steps per bar, 2 drums: kick on 0 and 2, snare on 1.
    bar = np.array([[1, 0], [0, 1], [1, 0], [0, 0]], dtype=bool)
    out = rewards.bar_features(bar, 4)
    # densities [2/4, 1/4]; mean hits per step 3/4 over 2 drums; 2 of 3 hits off the downbeat;
    # metrical weights at 4 steps per bar (beat = 1 step) are all 0.
    np.testing.assert_allclose(out, [0.5, 0.25, 0.375, 2 / 3, 0.0])


# An 8-step bar, 2 drums (code: kick 1, snare 2): kick on 0, 4, 5; snare on 2, 6.
_BAR = np.array([[1, 0], [0, 0], [0, 1], [0, 0], [1, 0], [1, 0], [0, 1], [0, 0]], dtype=bool)
# The bar before it: kick on 0, 4; snare on 2, 6.
_PREV = np.array([[1, 0], [0, 0], [0, 1], [0, 0], [1, 0], [0, 0], [0, 1], [0, 0]], dtype=bool)


def test_variety_features_hand_worked():
    # Jaccard: 4 shared hits of 5 -> 0.8. Codes [1, 0, 2, 0, 1, 1, 2, 0]: counts 3, 3, 2 of 8 ->
    # entropy 2 * 3/8 * log2(8/3) + 1/4 * log2(4) bits, over log2(min(8, 2**2)) = 2. 4-grams:
    # 5, all distinct -> diversity 1.
    entropy = (2 * 3 / 8 * math.log2(8 / 3) + 1 / 4 * 2) / 2
    np.testing.assert_allclose(rewards.variety_features(_BAR, _PREV), [0.8, entropy, 1.0])
    # _PREV against itself: Jaccard 1; codes [1, 0, 2, 0, 1, 0, 2, 0]: counts 4, 2, 2 ->
    # entropy 1.5 bits / 2; 4-grams (1020), (0201), (2010), (0102), (1020): 4 distinct of 5.
    np.testing.assert_allclose(rewards.variety_features(_PREV, _PREV), [1.0, 0.75, 0.8])


def test_variety_term_hand_worked():
    # The term at a bar end: -feature_distance(v(composed bar, bar before), v(reference ...)).
    composed = rewards.variety_features(_BAR, _PREV)
    reference = rewards.variety_features(_PREV, _PREV)
    entropy = (2 * 3 / 8 * math.log2(8 / 3) + 1 / 4 * 2) / 2
    expected = -(abs(0.8 - 1.0) + abs(entropy - 0.75) + abs(1.0 - 0.8)) / 3
    assert -rewards.feature_distance(composed, reference) == pytest.approx(expected, abs=1e-12)
    assert rewards.feature_distance(composed, composed) == 0.0  # the reference itself: 0


def test_variety_features_of_a_repeated_bar_and_of_silence():
    # a bar repeated exactly (what the per-position mode and loop-the-primer play): Jaccard 1
    assert rewards.variety_features(_BAR, _BAR)[0] == 1.0
    # two silent bars: Jaccard 1, entropy 0, one distinct 4-gram of 5
    silent = np.zeros((8, 2), bool)
    np.testing.assert_allclose(rewards.variety_features(silent, silent), [1.0, 0.0, 0.2])
    # a silent bar after a played one shares nothing
    assert rewards.variety_features(silent, _BAR)[0] == 0.0


def test_silence_features():
    silent = np.zeros((8 * SPB, 9), bool)
    np.testing.assert_array_equal(rewards.bar_features(silent[:SPB], SPB), 0.0)
    song = rewards.song_features(silent, SPB, BPP)
    np.testing.assert_array_equal(song[-9:], 0.0)  # densities


def test_step_probabilities():
    rng = np.random.default_rng(4)
    ref = rng.random((3, 4 * SPB, 9)) < 0.4
    probs = rewards.step_probabilities(ref, SPB)
    assert probs.shape == (3, SPB, 9)
    expected = ref.reshape(3, 4, SPB, 9).mean(axis=1)
    np.testing.assert_allclose(probs, expected)
    assert ((probs >= 0) & (probs <= 1)).all()


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_feature_distance_of_identical_inputs_is_zero(name):
    fn, steps, _ = FEATURES[name]
    f = fn(_inputs(steps))
    d = rewards.feature_distance(f, f.copy())
    assert d.shape == (len(f),)
    np.testing.assert_array_equal(d, 0.0)


def test_feature_distance_range_and_value():
    a = np.array([[0.0, 0.5, 1.0], [1.0, 1.0, 1.0]])
    b = np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(rewards.feature_distance(a, b), [2 / 3, 1.0])
    rng = np.random.default_rng(5)
    x, y = rng.random((20, 7)), rng.random((20, 7))
    d = rewards.feature_distance(x, y)
    assert ((d >= 0) & (d <= 1)).all()
    np.testing.assert_allclose(d, np.abs(x - y).mean(axis=-1))
    np.testing.assert_array_equal(d, rewards.feature_distance(y, x))


# --------------------------------------------------------------------------- the aligned property


def _play(player, shaping: str = "aligned-raw", episodes: int = 8):
    """Raw terms summed over whole episodes: float (episodes, terms)."""
    import gymnasium as gym

    import drum_env  # noqa: F401  (registers DrumCompose-v0)

    env = gym.make_vec(
        "DrumCompose-v0", num_envs=episodes, vectorization_mode="vector_entry_point",
        seq_len=64, prompt_bars=1, context_steps=16, shaping=shaping,
    )  # fmt: skip
    env.reset(seed=7)
    ref = env.unwrapped.references > 0
    start = env.unwrapped.prompt_steps
    total = np.zeros((episodes, len(TERMS)))
    for t in range(start, ref.shape[1]):
        _, _, _, _, info = env.step(player(ref, t).astype(np.int8))
        total += np.stack([info["reward_terms"][f"{k}/raw"] for k in TERMS], axis=-1)
    env.close()
    return total


def _real(ref, t):
    return ref[:, t]


def _mode(ref, t):
    bars = ref.reshape(ref.shape[0], -1, SPB, ref.shape[-1])
    return bars.mean(axis=1)[:, t % SPB] > 0.5


def test_real_continuation_maximises_every_aligned_term():
    real = _play(_real)
    weighted = [k for k in TERMS if SHAPINGS["aligned"].weights[k] != 0.0]
    for k in weighted:
        np.testing.assert_array_equal(real[:, TERMS.index(k)], 0.0, err_msg=k)
    assert (real <= 0.0).all()


def test_the_mode_outscores_real_drumming_on_step_but_not_on_aligned():
    real, mode = _play(_real), _play(_mode)
    step, variety = TERMS.index("step"), TERMS.index("variety")
    # the documented failure of the step term: the per-position mode beats the real continuation
    assert mode[:, step].mean() > real[:, step].mean()
    # a variation-free player cannot match the reference's bar-to-bar variation
    assert mode[:, variety].mean() < 0.0
    w = SHAPINGS["aligned"].weight_vector
    assert (real @ w).mean() > (mode @ w).mean()


def test_registered_metrics_term_is_zero_for_the_reference_and_opt_in():
    import gymnasium as gym

    from drum_env.rewards import SHAPINGS, registered_distance

    rng = np.random.default_rng(0)
    ref = rng.random((4, 64, 9)) < 0.25
    assert np.array_equal(registered_distance(ref, ref, 16, 4), np.zeros(4))
    other = registered_distance(rng.random((4, 64, 9)) < 0.6, ref, 16, 4)
    assert np.all((other > 0) & (other <= 1))
    # hand-worked: one registered metric with values 2 and 1 -> |2 - 1| / max(2, 1) = 0.5
    from dataset.registry import register_metric, unregister_metric

    assert all(w["metrics"] == 0.0 for w in (s.weights for s in SHAPINGS.values()))
    saved = {n: unregister_metric(n) for n in ("swing", "polyrhythm", "drum_periods")}
    try:
        register_metric("hits_total", lambda seq, grid: float(np.asarray(seq).sum()),
                        levels=("song",))  # fmt: skip
        two, one = np.zeros((1, 16, 2), bool), np.zeros((1, 16, 2), bool)
        two[0, :2, 0], one[0, 0, 0] = True, True
        assert registered_distance(two, one, 16, 4)[0] == pytest.approx(0.5)
        unregister_metric("hits_total")
        assert registered_distance(two, one, 16, 4)[0] == 0.0  # nothing registered
    finally:
        for spec in saved.values():
            register_metric(spec.name, spec.fn, levels=spec.levels, batched=spec.batched)
    # the env: the term closes at the episode's end only when weighed; real play scores 0
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, weights={"metrics": 1.0})
    env.reset(seed=0)
    u = env.unwrapped
    for t in range(16, 32):
        _, _, done, _, info = env.step(u.reference[t].astype(np.int8))
    assert done and info["reward_terms"]["metrics/closed"]
    assert info["reward_terms"]["metrics/raw"] == 0.0
