"""Tests for drum_env/vector.py: the native vector env against SyncVectorEnv of single envs."""

from __future__ import annotations

import copy
import functools
import importlib
import pickle
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from drum_env.rewards import TERMS, RunningNormalizer
from drum_env.vector import DrumComposeVectorEnv

ENV_ID = "DrumCompose-v0"
SMALL = {"seq_len": 64, "prompt_bars": 1}
EPISODE = 64 - 16  # env steps of one episode
EPISODES = 3


def make_native(num_envs: int, **kwargs) -> DrumComposeVectorEnv:
    return gym.make_vec(
        ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **{**SMALL, **kwargs}
    )


def make_sync(num_envs: int, **kwargs) -> SyncVectorEnv:
    fn = functools.partial(gym.make, ENV_ID, **{**SMALL, **kwargs})
    return SyncVectorEnv([fn for _ in range(num_envs)])


def assert_same(a, b, path="info"):
    """Recursive exact equality of (nested dicts of) arrays and scalars."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        assert set(a) == set(b), (path, sorted(set(a) ^ set(b)))
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{k}]")
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, (path, a.shape, b.shape)
        if a.dtype == object or b.dtype == object:
            assert a.tolist() == b.tolist(), path
        else:
            assert a.dtype.kind == b.dtype.kind, (path, a.dtype, b.dtype)
            assert np.array_equal(a, b), (path, a, b)


def raw_terms(info) -> dict:
    terms = info.get("reward_terms", {})
    return {k: v for k, v in terms.items() if "/raw" in k}


@pytest.mark.parametrize("shaping", ["hierarchical-raw", "sparse", "hierarchical"])
@pytest.mark.parametrize("num_envs", [1, 3, 8])
def test_native_matches_sync(num_envs, shaping):
    native = make_native(num_envs, shaping=shaping)
    sync = make_sync(num_envs, shaping=shaping)
    normalised = native.unwrapped.config.shaping.normalize
    assert native.single_observation_space == sync.single_observation_space
    assert native.single_action_space == sync.single_action_space
    assert native.observation_space == sync.observation_space
    assert native.action_space == sync.action_space

    obs_n, info_n = native.reset(seed=42)
    obs_s, info_s = sync.reset(seed=42)
    assert_same(obs_n, obs_s, "reset obs")
    assert_same(info_n, info_s, "reset info")
    reset_obs = obs_n

    rng = np.random.default_rng(num_envs)
    total = EPISODES * (EPISODE + 1) + 5  # includes the autoreset steps
    actions = (rng.random((total, num_envs, 9)) < 0.3).astype(np.int8)
    episodes_done = 0
    autoreset_next = False
    for i, a in enumerate(actions):
        obs_n, rew_n, term_n, trunc_n, info_n = native.step(a)
        obs_s, rew_s, term_s, trunc_s, info_s = sync.step(a)
        where = f"step {i}"
        assert_same(obs_n, obs_s, f"{where} obs")
        assert np.array_equal(term_n, term_s), where
        assert np.array_equal(trunc_n, trunc_s), where
        assert not trunc_n.any()
        assert term_n.dtype == np.bool_ and trunc_n.dtype == np.bool_
        assert rew_n.shape == (num_envs,)
        # every raw term, bit for bit (and its mask)
        assert_same(raw_terms(info_n), raw_terms(info_s), f"{where} raw terms")
        if not normalised or episodes_done == 0:
            assert np.array_equal(rew_n, rew_s), (where, rew_n, rew_s)
            assert_same(info_n, info_s, f"{where} info")
        if autoreset_next:
            # Gymnasium's NEXT_STEP autoreset: reward 0, the reset observation, reset info
            assert np.array_equal(rew_n, np.zeros(num_envs)), where
            assert not term_n.any()
            assert "reward_terms" not in info_n
            assert info_n["_window"].all()
            np.testing.assert_array_equal(obs_n["position"], reset_obs["position"])
            assert_same(info_n["window"], info_s["window"], f"{where} window")
        expected_term = (i % (EPISODE + 1)) == EPISODE - 1
        assert term_n.all() if expected_term else not term_n.any(), where
        if term_n.all():
            episodes_done += 1
            assert "episode_metrics" in info_n and info_n["_episode_metrics"].all()
        autoreset_next = bool(term_n.any())
    assert episodes_done == EPISODES

    # the shared normaliser has seen every sub-env's episodes; each sync env only its own
    shared = native.unwrapped.normalizer
    own = [env.unwrapped.normalizer for env in sync.envs]
    np.testing.assert_array_equal(shared.count, sum(n.count for n in own))
    per_episode = shared.count / (EPISODES * num_envs)
    assert per_episode[TERMS.index("step")] == EPISODE
    assert per_episode[TERMS.index("song")] == 1
    # and its mean is the pooled mean of theirs
    total = sum(n.count * n.mean for n in own)
    pooled = np.divide(total, shared.count, out=np.zeros_like(total), where=shared.count > 0)
    np.testing.assert_allclose(shared.mean, pooled, rtol=1e-12, atol=1e-15)
    native.close()
    sync.close()


def stacked_terms(info, kind: str) -> np.ndarray:
    """``info["reward_terms"]`` of one kind ("raw", "norm", "closed"): array (num_envs, terms)."""
    return np.stack([info["reward_terms"][f"{name}/{kind}"] for name in TERMS], axis=-1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"shaping": "hierarchical-raw"}, {"velocity_levels": 4}],
    ids=["aligned", "hierarchical-raw", "velocity-4"],
)
def test_native_matches_single_envs_and_one_shared_normaliser(kwargs, seed):
    """Whole episodes of 64 sub-envs, autoresets included, against single envs bit for bit.

    Observations, terminations, raw terms and infos as ``SyncVectorEnv`` gives them; the
    normalised terms and the rewards as one normaliser shared by every sub-env gives them
    (:class:`RunningNormalizer`, fed each episode's terms when it ends); the saved state as
    the single envs' states stacked.
    """
    n = 64
    native, sync = make_native(n, **kwargs), make_sync(n, **kwargs)
    config = native.unwrapped.config
    weights, normalised = config.shaping.weight_vector, config.shaping.normalize
    shared = RunningNormalizer(len(TERMS))  # the oracle of the native env's normaliser
    raw_hist = np.zeros((n, config.seq_len, len(TERMS)))
    closed_hist = np.zeros((n, config.seq_len, len(TERMS)), dtype=bool)
    assert_same(native.reset(seed=seed), sync.reset(seed=seed), "reset")
    rng = np.random.default_rng(seed)
    top = config.velocity_levels or 1
    autoreset, t = False, config.prompt_steps  # t: the step each sub-env writes next
    for i in range(3 * (config.episode_steps + 1)):
        density = (0.05, 0.3, 0.8)[i % 3]
        a = np.where(rng.random((n, 9)) < density, rng.integers(1, top + 1, (n, 9)), 0)
        obs_n, rew_n, term_n, trunc_n, info_n = native.step(a)
        obs_s, rew_s, term_s, trunc_s, info_s = sync.step(a)
        where = f"step {i}"
        assert_same(obs_n, obs_s, f"{where} obs")
        assert_same((term_n, trunc_n), (term_s, trunc_s), f"{where} terminations")
        if autoreset:  # reward 0 and the reset's info
            assert_same((rew_n, info_n), (rew_s, info_s), f"{where} autoreset")
            autoreset, t = False, config.prompt_steps
            continue
        assert_same(raw_terms(info_n), raw_terms(info_s), f"{where} raw terms")
        raw, closed = stacked_terms(info_s, "raw"), stacked_terms(info_s, "closed")
        np.testing.assert_array_equal(stacked_terms(info_n, "closed"), closed)
        norm = np.where(closed, shared.normalize(raw), 0.0) if normalised else raw
        np.testing.assert_array_equal(stacked_terms(info_n, "norm"), norm, err_msg=where)
        np.testing.assert_array_equal(rew_n, (norm * weights).sum(axis=-1), err_msg=where)
        if not normalised:
            assert_same(info_n, info_s, f"{where} info")
        else:  # the episode metrics; the terms above
            assert_same(info_n.get("episode_metrics"), info_s.get("episode_metrics"), where)
        raw_hist[:, t], closed_hist[:, t] = raw, closed
        t += 1
        if term_n.any():
            assert term_n.all()  # the sub-envs run in lockstep
            shared.update(closed_hist.sum(axis=(0, 1)), raw_hist.sum(axis=(0, 1)),
                          np.square(raw_hist).sum(axis=(0, 1)))  # fmt: skip
            raw_hist[:], closed_hist[:] = 0.0, False
            autoreset = True
        # the saved state: the single envs' states stacked, and the shared normaliser
        if i % 17 == 3 or term_n.any():
            state = native.unwrapped.state_dict()
            singles = [env.unwrapped.state_dict() for env in sync.envs]
            for name, buffer in state["core"]["buffers"].items():
                stacked = np.concatenate([s["core"]["buffers"][name] for s in singles])
                np.testing.assert_array_equal(buffer, stacked, err_msg=f"{where} {name}")
            ref = state["core"]["ref_features"]
            for name, value in ref.items():
                mine = value if name == "section" else [value]
                theirs = [[s["core"]["ref_features"][name]] if name != "section"
                          else s["core"]["ref_features"][name] for s in singles]  # fmt: skip
                for k, array in enumerate(mine):
                    stacked = np.concatenate([row[k] for row in theirs])
                    np.testing.assert_array_equal(array, stacked, err_msg=f"{where} {name}")
            assert state["rngs"] == [s["rng"] for s in singles]
            assert state["normalizer"] == shared.state_dict()


@pytest.mark.parametrize(
    "config",
    [
        {"seq_len": 128, "prompt_bars": 1, "sections": ((0, 40), (40, 100), (100, 128))},
        {"seq_len": 256, "prompt_bars": 2, "context_steps": 8},
        {"seq_len": 48, "prompt_bars": 2, "steps_per_bar": 8, "bars_per_phrase": 2},
    ],
    ids=["sections", "long", "8-steps-per-bar"],
)
def test_native_matches_sync_mid_episode_closes(config):
    """Phrases and sections that close before the episode ends, other bar geometry."""
    native = make_native(4, shaping="hierarchical-raw", **config)
    sync = make_sync(4, shaping="hierarchical-raw", **config)
    episode = native.unwrapped.config.episode_steps
    assert_same(native.reset(seed=9), sync.reset(seed=9))
    rng = np.random.default_rng(1)
    for i in range(2 * (episode + 1)):
        a = (rng.random((4, 9)) < 0.4).astype(np.int8)
        out_n, out_s = native.step(a), sync.step(a)
        assert_same(out_n[0], out_s[0], f"step {i} obs")
        for k in (1, 2, 3):
            assert np.array_equal(out_n[k], out_s[k]), (i, k)
        assert_same(out_n[4], out_s[4], f"step {i} info")


def test_normalised_rewards_diverge_only_after_the_first_episode():
    """The documented difference: one shared normaliser vs one per sub-env."""
    native = make_native(3, shaping="hierarchical")
    sync = make_sync(3, shaping="hierarchical")
    native.reset(seed=0)
    sync.reset(seed=0)
    actions = (np.random.default_rng(0).random((2 * (EPISODE + 1), 3, 9)) < 0.3).astype(np.int8)
    differ = []
    for a in actions:
        rew_n = native.step(a)[1]
        rew_s = sync.step(a)[1]
        differ.append(not np.array_equal(rew_n, rew_s))
    assert not any(differ[: EPISODE + 1])
    assert any(differ[EPISODE + 1 :])


def test_normaliser_count_grows_per_episode():
    native = make_native(4, shaping="hierarchical")
    native.reset(seed=1)
    norm = native.unwrapped.normalizer
    step = TERMS.index("step")
    actions = np.zeros((4, 9), np.int8)
    for k in range(1, 3):
        for _ in range(EPISODE - 1):
            native.step(actions)
            assert norm.count[step] == (k - 1) * 4 * EPISODE  # frozen within an episode
        native.step(actions)
        assert norm.count[step] == k * 4 * EPISODE
        native.step(actions)  # autoreset
        assert norm.count[step] == k * 4 * EPISODE


def test_seed_list_and_determinism():
    a, b = make_native(3), make_native(3)
    obs_a, info_a = a.reset(seed=[5, 6, 7])
    obs_b, info_b = b.reset(seed=5)
    assert_same(obs_a, obs_b)
    assert_same(info_a, info_b)
    single = gym.make(ENV_ID, **SMALL)
    for i in range(3):
        _, info = single.reset(seed=5 + i)
        assert info["window"] == info_a["window"][i]
    with pytest.raises(ValueError, match="seed"):
        a.reset(seed=[1, 2])


def test_reset_options_apply_to_every_sub_env():
    env = make_native(3)
    obs, info = env.reset(seed=0, options={"window": 7})
    assert info["window"].tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match="window"):
        env.reset(seed=0, options={"window": -1})


def test_metadata_autoreset_mode():
    env = make_native(2)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert isinstance(env.unwrapped, DrumComposeVectorEnv)
    assert env.num_envs == 2


@pytest.mark.parametrize(
    "actions",
    [
        np.zeros((3, 8), np.int8),
        np.zeros((2, 9), np.int8),
        np.zeros(9, np.int8),
        np.full((3, 9), 2),
        np.full((3, 9), 0.5),
        np.full((3, 9), np.nan),
    ],
    ids=["drums", "envs", "single", "two", "half", "nan"],
)
def test_action_validation(actions):
    env = make_native(3)
    env.reset(seed=0)
    # the batched space: Gymnasium's batch_space turns MultiBinary(9) into Box(0, 1, (3, 9), int8)
    assert str(env.action_space) == "Box(0, 1, (3, 9), int8)"
    with pytest.raises(ValueError, match=re.escape(str(env.action_space))):
        env.step(actions)


def test_bad_construction():
    with pytest.raises(ValueError, match="num_envs"):
        DrumComposeVectorEnv(num_envs=0, **SMALL)
    with pytest.raises(ValueError, match="no-such"):
        make_native(2, shaping="no-such")
    with pytest.raises(ValueError, match="prompt_bars"):
        make_native(2, seq_len=64, prompt_bars=4)
    with pytest.raises(RuntimeError, match="reset"):
        make_native(2).step(np.zeros((2, 9), np.int8))


def test_vector_env_basic_contract():
    """What Gymnasium's vector tests check: spaces, seeding, dtypes, render, close twice."""
    env = make_native(4, render_mode="ansi")
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    obs2, _ = env.reset(seed=3)
    assert_same(obs, obs2)
    env.action_space.seed(0)
    for _ in range(EPISODE + 3):
        obs, rew, term, trunc, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert rew.dtype == np.float64 and rew.shape == (4,)
    frames = env.render()
    assert isinstance(frames, tuple) and len(frames) == 4
    assert all(isinstance(f, str) for f in frames)
    env.close()
    env.close()


def test_pickle_round_trip_continues_identically():
    env = make_native(3, shaping="hierarchical")
    env.reset(seed=2)
    actions = (np.random.default_rng(2).random((2 * (EPISODE + 1), 3, 9)) < 0.3).astype(np.int8)
    for a in actions[:10]:
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.normalizer is not env.normalizer
    for i, a in enumerate(actions[10:]):
        assert_same(env.step(a), clone.step(a), f"step {i}")
    np.testing.assert_array_equal(clone.normalizer.count, env.normalizer.count)


def _find_vector_checker():
    candidates = [
        ("gymnasium.utils.env_checker", "check_vector_env"),
        ("gymnasium.utils.env_checker", "check_vec_env"),
        ("gymnasium.vector.utils", "check_vector_env"),
        ("gymnasium.utils.vector_env_checker", "check_vector_env"),
    ]
    for module, name in candidates:
        try:
            fn = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if fn is not None:
            return fn
    return None


def test_gymnasium_vector_env_checker():
    checker = _find_vector_checker()
    if checker is None:
        pytest.skip(
            f"gymnasium {gym.__version__} ships no vector env checker (gymnasium/utils/"
            "env_checker.py checks single envs only); test_native_matches_sync and "
            "test_vector_env_basic_contract cover the vector contract"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checker(make_native(3))


# --------------------------------------------------------------------------- state_dict


def assert_plain(value, path="state"):
    """The state holds only numeric / bool arrays, python scalars, str, None, lists, dicts."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), (path, k)
            assert_plain(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            assert_plain(v, f"{path}[{k}]")
    elif isinstance(value, np.ndarray):
        assert value.dtype.kind in "biuf", (path, value.dtype)
    else:
        assert value is None or type(value) in (int, float, bool, str), (path, type(value))


def step_both(a, b, actions, where=""):
    for i, act in enumerate(actions):
        assert_same(a.step(act), b.step(act), f"{where} step {i}")


# steps into the second episode when saved: its first step to write, mid-episode, one step
# before the end, just terminated (the autoreset step comes next), right after the autoreset,
# mid-way through the third episode (the sub-envs of the native env always run in lockstep)
SAVE_AT = [0, 7, EPISODE - 1, EPISODE, EPISODE + 1, EPISODE + 1 + 20]


@pytest.mark.parametrize("saved_after", SAVE_AT)
@pytest.mark.parametrize("copy_state", ["as-is", "pickle", "deepcopy"])
def test_state_dict_round_trip_continues_bitwise(saved_after, copy_state):
    # normalised: the shared normaliser matters; the opt-in metrics term weighed, so it closes
    kwargs = {"shaping": "hierarchical", "weights": {"metrics": 1.0}}
    env = make_native(3, **kwargs)
    env.reset(seed=11)
    rng = np.random.default_rng(saved_after)
    # a first whole episode so that the normaliser holds statistics
    for act in (rng.random((EPISODE + 1 + saved_after, 3, 9)) < 0.3).astype(np.int8):
        env.step(act)
    state = env.unwrapped.state_dict()
    assert_plain(state)
    assert set(state) == {"format", "version", "num_envs", "core", "normalizer", "rngs",
                          "autoreset", "started"}  # fmt: skip
    assert env.unwrapped.autoreset_mask.all() == (saved_after == EPISODE)
    np.testing.assert_array_equal(state["autoreset"], env.unwrapped.autoreset_mask)
    if copy_state == "pickle":
        state = pickle.loads(pickle.dumps(state))
    elif copy_state == "deepcopy":
        state = copy.deepcopy(state)
    fresh = make_native(3, **kwargs)
    fresh.unwrapped.load_state_dict(state)
    assert_same(env.unwrapped.observation, fresh.unwrapped.observation, "observation")
    assert_same(env.unwrapped.references, fresh.unwrapped.references, "references")
    np.testing.assert_array_equal(fresh.unwrapped.normalizer.count, env.unwrapped.normalizer.count)
    assert env.unwrapped.normalizer.count[: TERMS.index("bar_velocity")].min() > 0  # binary env
    # more than one whole episode, through an autoreset and a reset with new windows
    actions = (rng.random((2 * (EPISODE + 1) + 3, 3, 9)) < 0.3).astype(np.int8)
    step_both(env, fresh, actions)
    assert_same(env.unwrapped.canvases, fresh.unwrapped.canvases, "canvases")
    # an explicit unseeded reset draws from the restored generators
    assert_same(env.reset(), fresh.reset(), "reset")


def test_load_state_dict_into_a_used_env():
    env, other = make_native(3, shaping="hierarchical"), make_native(3, shaping="hierarchical")
    env.reset(seed=1)
    other.reset(seed=99)
    rng = np.random.default_rng(0)
    for act in (rng.random((EPISODE + 9, 3, 9)) < 0.3).astype(np.int8):
        env.step(act)
        other.step(1 - act)
    other.unwrapped.load_state_dict(env.unwrapped.state_dict())
    step_both(env, other, (rng.random((EPISODE + 5, 3, 9)) < 0.3).astype(np.int8))


def test_state_dict_is_a_copy():
    env = make_native(2)
    env.reset(seed=0)
    state = env.unwrapped.state_dict()
    snapshot = copy.deepcopy(state)
    for _ in range(EPISODE + 3):
        env.step(np.ones((2, 9), np.int8))
    assert_same(state, snapshot)


def test_state_dict_before_reset():
    env = make_native(2)
    state = env.unwrapped.state_dict()
    assert_plain(state)
    assert state["started"] is False
    fresh = make_native(2)
    fresh.unwrapped.load_state_dict(state)
    with pytest.raises(RuntimeError, match="reset"):
        fresh.step(np.zeros((2, 9), np.int8))
    assert_same(env.reset(), fresh.reset())  # the same (unseeded) generators


def _edit(state, path, value):
    *parents, last = path
    for key in parents:
        state = state[key]
    if value is _DELETE:
        del state[last]
    else:
        state[last] = value(state[last]) if callable(value) else value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("autoreset",), _DELETE, "missing key.*autoreset"),
        (("core", "buffers", "_closed_hist"), _DELETE, "missing key.*_closed_hist"),
        (("rngs",), _DELETE, "missing key.*rngs"),
        (("version",), 0, "version 0"),
        (("format",), "DrumComposeEnv", "DrumComposeEnv"),
        (("core", "buffers", "canvas"), lambda a: a[:, :-1], "canvas.*\\(3, 63, 9\\)"),
        (("core", "buffers", "_raw_hist"), lambda a: a.astype(np.float32), "_raw_hist.*float32"),
        (("core", "ref_features", "step_probs"), lambda a: a[:2], "step_probs"),
        (("autoreset",), lambda a: a.astype(np.int64), "autoreset.*int64"),
        (("rngs",), lambda r: r[:2], "rngs.*3 generator states"),
        (("rngs", 0, "bit_generator"), "MT19937", "rngs.*MT19937"),
        (("normalizer", "count"), lambda c: c[:3], "normalizer"),
        (("started",), "yes", "started"),
    ],
    ids=["no-autoreset", "no-buffer", "no-rngs", "version", "format", "shape", "dtype",
         "ref-shape", "autoreset-dtype", "rng-count", "rng-kind", "normalizer", "started"],
)  # fmt: skip
def test_load_state_dict_errors_change_nothing(path, value, match):
    env = make_native(3, shaping="hierarchical")
    env.reset(seed=0)
    for _ in range(EPISODE + 5):
        env.step(np.ones((3, 9), np.int8))
    state = env.unwrapped.state_dict()
    _edit(state, path, value)
    target = make_native(3, shaping="hierarchical")
    target.reset(seed=5)
    target.step(np.zeros((3, 9), np.int8))
    before = copy.deepcopy(target.unwrapped.state_dict())
    with pytest.raises(ValueError, match=match):
        target.unwrapped.load_state_dict(state)
    assert_same(target.unwrapped.state_dict(), before)


def test_load_state_dict_other_num_envs_or_task():
    env = make_native(3)
    env.reset(seed=0)
    state = env.unwrapped.state_dict()
    with pytest.raises(ValueError, match="3 sub-envs, the env has 2"):
        make_native(2).unwrapped.load_state_dict(state)
    with pytest.raises(ValueError, match="seq_len"):
        make_native(3, seq_len=48).unwrapped.load_state_dict(state)
    with pytest.raises(ValueError, match="sections"):
        make_native(3, sections=((0, 32), (32, 64))).unwrapped.load_state_dict(state)


def test_public_read_access():
    env = make_native(3)
    venv = env.unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        _ = venv.observation
    obs, _ = env.reset(seed=4)
    assert_same(venv.observation, obs)
    assert venv.prompt_steps == 16
    refs = venv.references
    assert refs.dtype == np.float32 and refs.shape == (3, 64, 9)
    canvases = venv.canvases
    assert canvases.dtype == np.float32 and canvases.shape == (3, 64, 9)
    np.testing.assert_array_equal(canvases[:, :16], refs[:, :16])  # the primer
    assert not canvases[:, 16:].any()
    canvases[:] = 1  # a copy: the env is untouched
    assert not venv.canvases[:, 16:].any()
    act = np.ones((3, 9), np.int8)
    for i in range(EPISODE):
        obs, *_ = env.step(act)
        assert_same(venv.observation, obs, f"step {i}")
        assert venv.autoreset_mask.tolist() == [i == EPISODE - 1] * 3
    assert venv.canvases[:, 16:].all()  # the whole composition until the autoreset step
    mask = venv.autoreset_mask
    mask[:] = False
    assert venv.autoreset_mask.all()
    env.step(act)
    assert not venv.autoreset_mask.any()
    assert not venv.canvases[:, 16:].any()
