"""Tests for drum_env/env.py: DrumCompose-v0 through the ecosystem's checkers and oracles.

The reward oracles rebuild every raw term of a step from the env's public ``canvas`` and
``reference`` with the pure functions of :mod:`drum_env.rewards`, independently of the env's
incremental, batched bookkeeping.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from dataset import metrics
from dataset.hierarchical import CompleteHierarchicalDrumDataset
from dataset.midi import midi_to_sequence
from dataset.synthetic import default_corpus
from drum_env import rewards
from drum_env.env import DrumComposeEnv
from drum_env.render import DEFAULT_DRUM_NAMES
from drum_env.rewards import TERMS

ENV_ID = "DrumCompose-v0"
SMALL = {"seq_len": 64, "prompt_bars": 1}


def make(**kwargs) -> gym.Env:
    return gym.make(ENV_ID, **{**SMALL, **kwargs})


def action_stream(env: gym.Env, n: int, seed: int = 0) -> np.ndarray:
    """Pre-sampled random actions: int8 (n, drums)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, env.action_space.n)) < 0.3).astype(np.int8)


def rollout(env: gym.Env, seed: int | None, actions: np.ndarray, options=None):
    """Reset then play ``actions``; return [(obs, info)] + [(obs, r, term, trunc, info), ...]."""
    out = [env.reset(seed=seed, options=options)]
    for a in actions:
        step = env.step(a)
        out.append(step)
        if step[2] or step[3]:
            break
    return out


def copy_obs(obs: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in obs.items()}


# --------------------------------------------------------------------------- checkers


@pytest.mark.parametrize("render_mode", ["ansi", "rgb_array"])
def test_gymnasium_check_env(render_mode):
    env = make(render_mode=render_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


def test_gymnasium_check_env_default_arguments():
    env = gym.make(ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_sb3_check_env_without_warnings():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True, skip_render_check=True)
        sb3_check_env(make(render_mode="rgb_array"), warn=True, skip_render_check=False)


def test_import_does_not_import_torch():
    code = (
        "import sys, drum_env, gymnasium; "
        "env = gymnasium.make('DrumCompose-v0', seq_len=64, prompt_bars=1); env.reset(seed=0); "
        "env.step(env.action_space.sample()); "
        "bad = sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules); "
        "assert not bad, bad"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_registered_spec():
    spec = gym.spec(ENV_ID)
    assert spec.entry_point == "drum_env.env:DrumComposeEnv"
    assert spec.vector_entry_point == "drum_env.vector:DrumComposeVectorEnv"
    env = gym.make(ENV_ID)
    assert isinstance(env.unwrapped, DrumComposeEnv)
    assert env.spec is not None and env.spec.id == ENV_ID


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_rollout():
    env_a, env_b = make(), make()
    actions = action_stream(env_a, 200)
    a = rollout(env_a, 7, actions)
    b = rollout(env_b, 7, actions)
    assert len(a) == len(b) == 49
    assert data_equivalence(a, b, exact=True)
    # and again on the same env after another episode: observations and raw terms repeat;
    # normalised terms and rewards move with the statistics the finished episodes added
    rollout(env_a, 99, actions)
    c = rollout(env_a, 7, actions)
    assert data_equivalence([s[0] for s in a], [s[0] for s in c], exact=True)
    for sa, sc in zip(a[1:], c[1:]):
        raw_a = {k: v for k, v in sa[-1]["reward_terms"].items() if k.endswith("/raw")}
        raw_c = {k: v for k, v in sc[-1]["reward_terms"].items() if k.endswith("/raw")}
        assert raw_a == raw_c
        assert sa[2:4] == sc[2:4]
    # the first bar's terms are normalised by then (the default shaping has no step term)
    assert a[16][-1]["reward_terms"]["bar/closed"]
    assert a[16][1] != c[16][1]


def test_same_seed_same_rollout_unnormalised_after_other_episodes():
    env = make(shaping="hierarchical-raw")
    actions = action_stream(env, 200)
    a = rollout(env, 7, actions)
    rollout(env, 99, actions)
    rollout(env, None, actions[::-1])
    b = rollout(env, 7, actions)
    assert data_equivalence(a, b, exact=True)


def test_different_seeds_give_different_windows():
    env = make()
    windows = {env.reset(seed=s)[1]["window"] for s in range(12)}
    assert len(windows) >= 6


def test_unseeded_resets_continue_the_generator():
    env_a, env_b = make(), make()
    env_a.reset(seed=3)
    env_b.reset(seed=3)
    seq_a = [env_a.reset()[1]["window"] for _ in range(5)]
    seq_b = [env_b.reset()[1]["window"] for _ in range(5)]
    assert seq_a == seq_b
    assert len(set(seq_a)) > 1


# --------------------------------------------------------------------------- episodes

EPISODE_CONFIGS = [
    {"seq_len": 64, "prompt_bars": 1},
    {"seq_len": 128, "prompt_bars": 2},
    {"seq_len": 128, "prompt_bars": 0},
    {"seq_len": 256, "prompt_bars": 3},
    {"seq_len": 64, "prompt_bars": 3, "steps_per_bar": 8, "bars_per_phrase": 2},
]


@pytest.mark.parametrize("config", EPISODE_CONFIGS, ids=str)
def test_episode_length_and_observations(config):
    env = gym.make(ENV_ID, **config)
    u = env.unwrapped
    spb = config.get("steps_per_bar", 16)
    bpp = config.get("bars_per_phrase", 4)
    seq_len, prompt = config["seq_len"], config["prompt_bars"] * spb
    expected_len = seq_len - prompt
    ctx = u.config.context_steps
    drums = u.config.num_drums
    obs, info = env.reset(seed=1)
    target = np.clip(rewards.song_features(u.reference > 0, spb, bpp), 0.0, 1.0)
    actions = action_stream(env, expected_len + 5, seed=2)
    for i in range(expected_len + 1):
        t = prompt + i  # the step to write next
        assert env.observation_space.contains(obs), f"step {i}"
        # context: the last ctx steps of the canvas before t, zeros before step 0
        canvas = u.canvas
        padded = np.concatenate([np.zeros((ctx, drums), np.float32), canvas[:t]])[-ctx:]
        np.testing.assert_array_equal(obs["context"].reshape(ctx, drums), padded)
        # position: one-hot step in bar, one-hot bar in phrase, song progress
        pos = obs["position"]
        np.testing.assert_array_equal(pos[:spb], np.eye(spb)[t % spb])
        np.testing.assert_array_equal(pos[spb : spb + bpp], np.eye(bpp)[(t // spb) % bpp])
        assert pos[-1] == np.float32(t / seq_len)
        np.testing.assert_array_equal(obs["target"], target.astype(np.float32))
        if i == expected_len:
            break
        obs, reward, terminated, truncated, info = env.step(actions[i])
        assert isinstance(reward, float)
        assert truncated is False
        assert terminated is (i == expected_len - 1), f"step {i}"
        assert ("episode_metrics" in info) is terminated
    # the canvas now holds the primer and every action
    np.testing.assert_array_equal(u.canvas[prompt:], actions[:expected_len].astype(np.float32))
    with pytest.raises(RuntimeError, match="reset"):
        u.step(actions[0])


def test_final_info_has_episode_metrics():
    env = make()
    steps = rollout(env, 0, action_stream(env, 100))
    info = steps[-1][-1]
    metrics_ = info["episode_metrics"]
    assert "song/avg_hits" in metrics_ and "song/syncopation" in metrics_
    assert all(np.isfinite(v) and np.ndim(v) == 0 for v in metrics_.values())
    expected = metrics.song_metrics(env.unwrapped.canvas, 16, 4)
    for key, value in metrics_.items():
        assert value == pytest.approx(float(expected[key]), rel=1e-12, abs=1e-12), key


def test_primer_is_reference():
    env = gym.make(ENV_ID, seq_len=128, prompt_bars=2)
    u = env.unwrapped
    for seed in range(5):
        env.reset(seed=seed)
        np.testing.assert_array_equal(u.canvas[:32], u.reference[:32])
        assert not u.canvas[32:].any()
        assert u.canvas.dtype == np.float32 and u.canvas.shape == (128, 9)
        assert set(np.unique(u.reference)) <= {0.0, 1.0}


def test_reset_window_option():
    env = make()
    u = env.unwrapped
    n = len(u.data.windows)
    for w in (0, 5, n - 1):
        _, info = env.reset(seed=0, options={"window": w})
        assert info["window"] == w
        seq, start = u.data.windows[w]
        assert info["start"] == start
        assert info["sequence"] == u.data.names[seq]
        np.testing.assert_array_equal(u.reference, u.data.hits[seq][start : start + 64])
    # option "sequence": a window of that sequence
    _, info = env.reset(seed=0, options={"sequence": 3})
    assert u.data.windows[info["window"]][0] == 3
    # an empty options dict is accepted (check_env's contract)
    env.reset(seed=0, options={})


@pytest.mark.parametrize(
    "options, match",
    [
        ({"window": -1}, "window"),
        ({"window": 10**9}, "window"),
        ({"sequence": 10**6}, "sequence"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_reset_bad_options(options, match):
    env = make()
    with pytest.raises(ValueError, match=match):
        env.reset(seed=0, options=options)


# --------------------------------------------------------------------------- reward oracle


def oracle_terms(canvas, reference, end, spb, bpp, sections, seq_len, action):
    """Raw terms of the step that wrote canvas step ``end - 1``, from the pure functions."""
    c, r = canvas > 0, reference > 0
    drums = c.shape[1]
    out = dict.fromkeys(TERMS, 0.0)
    probs = rewards.step_probabilities(r, spb)[(end - 1) % spb]
    out["step"] = -float(np.square(np.asarray(action, float) - probs).sum() / drums)

    def dist(fn, a, b, *args):
        return -float(rewards.feature_distance(fn(a, *args), fn(b, *args)))

    if end % spb == 0:
        cb, rb = c[end - spb : end], r[end - spb : end]
        out["bar"] = dist(rewards.bar_features, cb, rb, spb)
        out["silence"] = -float(not cb.any() and rb.any())

        def constant(bar):
            return bar.any() and (bar == bar[:1]).all()

        out["repetition"] = -float(constant(cb) and not constant(rb))
        # variety: against the bar before (the bar itself for the window's first bar)
        p = slice(end - 2 * spb, end - spb) if end >= 2 * spb else slice(end - spb, end)
        out["variety"] = -float(
            rewards.feature_distance(
                rewards.variety_features(cb, c[p]), rewards.variety_features(rb, r[p])
            )
        )
    phrase_len = spb * bpp
    if end % phrase_len == 0:
        s = slice(end - phrase_len, end)
        out["phrase"] = dist(rewards.phrase_features, c[s], r[s], spb, bpp)
    for start, stop in sections:
        if stop == end:
            out["section"] = dist(rewards.section_features, c[start:stop], r[start:stop], spb)
    if end == seq_len:
        out["song"] = -float(
            rewards.feature_distance(
                rewards.song_features(c, spb, bpp), rewards.song_features(r, spb, bpp)
            )
        )
    return out


ORACLE_CONFIGS = [
    {"seq_len": 128, "prompt_bars": 2},
    {"seq_len": 256, "prompt_bars": 1},
    {"seq_len": 128, "prompt_bars": 1, "sections": ((0, 40), (40, 100), (100, 128))},
    {"seq_len": 48, "prompt_bars": 2, "steps_per_bar": 8, "bars_per_phrase": 2},
]


@pytest.mark.parametrize("policy", ["random", "reference", "silence", "all-hits"])
@pytest.mark.parametrize("config", ORACLE_CONFIGS, ids=str)
def test_raw_terms_match_pure_function_oracle(config, policy):
    env = gym.make(ENV_ID, shaping="hierarchical-raw", **config)
    u = env.unwrapped
    c = u.config
    spb, bpp, seq_len = c.steps_per_bar, c.bars_per_phrase, c.seq_len
    sections = c.section_spans
    env.reset(seed=11)
    rng = np.random.default_rng(5)
    for t in range(c.prompt_steps, seq_len):
        if policy == "random":
            a = (rng.random(c.num_drums) < 0.3).astype(np.int64)
        elif policy == "reference":
            a = u.reference[t].astype(np.int64)
        elif policy == "silence":
            a = np.zeros(c.num_drums, np.int64)
        else:
            a = np.ones(c.num_drums, np.int64)
        _, reward, terminated, _, info = env.step(a)
        terms = info["reward_terms"]
        kinds = ("raw", "norm", "closed")
        assert set(terms) == {f"{k}/{kind}" for k in TERMS for kind in kinds}
        assert terms["step/closed"] is True and terms["song/closed"] == terminated
        for k in ("bar", "silence", "repetition", "variety"):
            assert terms[f"{k}/closed"] == ((t + 1) % spb == 0), (k, t)
        assert all(terms[f"{k}/closed"] or terms[f"{k}/raw"] == 0.0 for k in TERMS)
        expected = oracle_terms(u.canvas, u.reference, t + 1, spb, bpp, sections, seq_len, a)
        got = {k: terms[f"{k}/raw"] for k in TERMS}
        for k in TERMS:
            assert got[k] == pytest.approx(expected[k], abs=1e-12), (k, t, got, expected)
            assert -1.0 <= got[k] <= 0.0
        # unnormalised: the reward is the weighted sum of the raw terms
        w = c.shaping.weights
        assert reward == pytest.approx(sum(w[k] * got[k] for k in TERMS), abs=1e-12)
        assert all(terms[f"{k}/norm"] == terms[f"{k}/raw"] for k in TERMS)
        if policy == "reference":
            for k in ("bar", "phrase", "section", "song", "silence", "repetition", "variety"):
                assert got[k] == 0.0, (k, t)
        if policy == "silence" and (t + 1) % spb == 0:
            ref_bar = u.reference[t + 1 - spb : t + 1]
            assert got["silence"] == (-1.0 if ref_bar.any() else 0.0)
            assert got["repetition"] == 0.0
        assert terminated is (t == seq_len - 1)


def test_bar_term_is_exactly_the_oracle():
    """The documented equality, exact to the bit, on each bar close."""
    env = gym.make(ENV_ID, seq_len=128, prompt_bars=2, shaping="hierarchical-raw")
    u = env.unwrapped
    env.reset(seed=21)
    actions = action_stream(env, 96, seed=3)
    bars_checked = 0
    for i, a in enumerate(actions):
        _, _, terminated, _, info = env.step(a)
        end = 32 + i + 1
        if end % 16 == 0:
            composed = u.canvas[end - 16 : end]
            ref = u.reference[end - 16 : end]
            expected = -rewards.feature_distance(
                rewards.bar_features(composed, 16), rewards.bar_features(ref, 16)
            )
            assert info["reward_terms"]["bar/raw"] == float(expected)
            bars_checked += 1
        else:
            assert info["reward_terms"]["bar/raw"] == 0.0
    assert terminated and bars_checked == 6


def test_playing_silence_is_punished_on_bars_with_hits():
    env = gym.make(ENV_ID, seq_len=128, prompt_bars=1, shaping="hierarchical-raw")
    u = env.unwrapped
    env.reset(seed=4)
    silence_terms = []
    for _ in range(112):
        _, _, _, _, info = env.step(np.zeros(9, np.int8))
        silence_terms.append(info["reward_terms"]["silence/raw"])
    bar_ends = [16 * k - 16 - 1 for k in range(2, 9)]  # step index of each bar close
    ref_bars = u.reference.reshape(8, 16, 9)[1:]
    expected = [-1.0 if bar.any() else 0.0 for bar in ref_bars]
    assert [silence_terms[i] for i in bar_ends] == expected
    assert expected.count(-1.0) >= 1  # the test means something
    others = set(range(112)) - set(bar_ends)
    assert all(silence_terms[i] == 0.0 for i in others)


def test_playing_the_reference_zeroes_every_level_above_step():
    env = gym.make(ENV_ID, seq_len=256, prompt_bars=2)
    u = env.unwrapped
    for seed in range(3):
        env.reset(seed=seed)
        for t in range(32, 256):
            _, _, terminated, _, info = env.step(u.reference[t].astype(np.int8))
            for k in ("bar", "phrase", "section", "song", "silence", "repetition"):
                assert info["reward_terms"][f"{k}/raw"] == 0.0, (k, t)
        assert terminated


@pytest.mark.parametrize(
    "shaping, weights",
    [
        ("hierarchical", None),
        ("sparse", None),
        ("bar", {"step": 0.5, "phrase": 2.0}),
        ("hierarchical-raw", {"song": 3.0, "silence": 0.0}),
    ],
)
def test_reward_is_weighted_sum_of_normalised_terms(shaping, weights):
    env = make(shaping=shaping, weights=weights)
    shape = rewards.make_shaping(shaping, weights)
    actions = action_stream(env, 48 * 3, seed=1)
    env.reset(seed=0)
    for a in actions:
        _, reward, terminated, _, info = env.step(a)
        terms = info["reward_terms"]
        expected = sum(shape.weights[k] * terms[f"{k}/norm"] for k in TERMS)
        assert reward == pytest.approx(expected, abs=1e-12)
        if terminated:
            env.reset()


def test_normalizer_joins_statistics_when_the_episode_ends():
    env = gym.make(ENV_ID, seq_len=128, prompt_bars=2, shaping="hierarchical")
    u = env.unwrapped
    norm = u.normalizer
    env.reset(seed=0)
    actions = action_stream(env, 96 * 2, seed=9)
    raw_first = []
    for i in range(96):
        assert norm.count.tolist() == [0.0] * len(TERMS)  # nothing joins mid-episode
        _, _, terminated, _, info = env.step(actions[i])
        terms = info["reward_terms"]
        raw_first.append([terms[f"{k}/raw"] for k in TERMS])
        # before any statistics, normalisation is the identity
        assert all(terms[f"{k}/norm"] == terms[f"{k}/raw"] for k in TERMS)
    assert terminated
    raw_first = np.array(raw_first)
    # closes: step every step; 6 composed bars; phrases end at 64 and 128; one section; one song
    closes = {"step": 96, "bar": 6, "silence": 6, "repetition": 6, "phrase": 2, "section": 1,
              "song": 1, "variety": 6, "metrics": 0,  # metrics weigh 0: never computed
              "bar_velocity": 0, "phrase_velocity": 0, "song_velocity": 0}  # binary  # fmt: skip
    np.testing.assert_array_equal(norm.count, [closes[k] for k in TERMS])
    ends = np.arange(33, 129)
    masks = {
        "step": np.ones(96, bool),
        "bar": ends % 16 == 0,
        "silence": ends % 16 == 0,
        "repetition": ends % 16 == 0,
        "variety": ends % 16 == 0,
        "phrase": ends % 64 == 0,
        "section": ends == 128,
        "song": ends == 128,
        "metrics": np.zeros(96, bool),
        **{k: np.zeros(96, bool) for k in ("bar_velocity", "phrase_velocity", "song_velocity")},
    }
    for j, k in enumerate(TERMS):
        values = raw_first[masks[k], j]
        if not len(values):  # never closed: no statistics
            assert norm.mean[j] == 0.0 and norm.var[j] == 0.0, k
            continue
        assert norm.mean[j] == pytest.approx(values.mean(), abs=1e-12), k
        assert norm.var[j] == pytest.approx(values.var() if len(values) > 1 else 0.0, abs=1e-12)
    # second episode: every term scaled by the statistics frozen at the episode's start
    mean, std = norm.mean.copy(), np.sqrt(norm.var + norm.epsilon)
    ready = norm.count > 1
    env.reset(seed=1)
    for i in range(96):
        _, _, _, _, info = env.step(actions[96 + i])
        terms = info["reward_terms"]
        end = 33 + i
        for j, k in enumerate(TERMS):
            closed = masks[k][end - 33]
            raw = terms[f"{k}/raw"]
            if not closed:
                assert terms[f"{k}/norm"] == 0.0
            elif ready[j]:
                expected = np.clip((raw - mean[j]) / std[j], -norm.clip, norm.clip)
                assert terms[f"{k}/norm"] == pytest.approx(expected, abs=1e-9), (k, end)
            else:
                assert terms[f"{k}/norm"] == raw
    np.testing.assert_array_equal(norm.count, [2 * closes[k] for k in TERMS])


def test_shared_normalizer_argument():
    norm = drum_env.RunningNormalizer()
    a, b = make(normalizer=norm), make(normalizer=norm)
    assert a.unwrapped.normalizer is b.unwrapped.normalizer is norm
    for env, seed in ((a, 0), (b, 1)):
        rollout(env, seed, action_stream(env, 48))
    assert norm.count[TERMS.index("song")] == 2
    assert norm.count[TERMS.index("step")] == 96


# --------------------------------------------------------------------------- pickling, wrappers


def test_pickle_round_trip_continues_identically():
    env = make()
    actions = action_stream(env, 48)
    env.reset(seed=3)
    for a in actions[:10]:
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    for a in actions[10:]:
        assert data_equivalence(env.step(a), clone.step(a), exact=True)
    assert data_equivalence(env.reset(), clone.reset(), exact=True)
    # the clone holds its own state: stepping it does not move the original
    env.reset(seed=4)
    clone = pickle.loads(pickle.dumps(env))
    clone.step(actions[0])
    steps = [e.unwrapped.state_dict()["core"]["buffers"]["t"][0] for e in (env, clone)]
    assert steps == [16, 17]


def test_deepcopy_of_env():
    env = make()
    env.reset(seed=3)
    twin = copy.deepcopy(env)
    a = action_stream(env, 48)
    for x in a:
        assert data_equivalence(env.step(x), twin.step(x), exact=True)


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


def play(env, actions):
    """Step ``actions``, resetting (unseeded: from the env's generator) after each episode."""
    out = []
    for a in actions:
        step = env.step(a)
        out.append(step)
        if step[2]:
            out.append(env.reset())
    return out


EPISODE = 64 - 16


@pytest.mark.parametrize("saved_after", [0, 5, EPISODE - 1, EPISODE])
@pytest.mark.parametrize("copy_state", ["as-is", "pickle", "deepcopy"])
def test_state_dict_round_trip_continues_bitwise(saved_after, copy_state):
    # normalised: the normaliser matters; the opt-in metrics term weighed, so it closes too
    env = DrumComposeEnv(**SMALL, shaping="hierarchical", weights={"metrics": 1.0})
    actions = action_stream(env, 3 * EPISODE + 10, seed=saved_after)
    env.reset(seed=7)
    play(env, actions[:EPISODE])  # one whole episode: the normaliser holds statistics
    assert env.normalizer.count[: TERMS.index("bar_velocity")].min() > 0  # binary env
    for a in actions[EPISODE : EPISODE + saved_after]:
        _, _, terminated, _, _ = env.step(a)
    state = env.state_dict()
    assert_plain(state)
    assert set(state) == {"format", "version", "core", "normalizer", "rng", "np_random_seed",
                          "started"}  # fmt: skip
    assert state["started"] is (saved_after != EPISODE)  # just terminated: reset comes next
    if copy_state == "pickle":
        state = pickle.loads(pickle.dumps(state))
    elif copy_state == "deepcopy":
        state = copy.deepcopy(state)
    fresh = DrumComposeEnv(**SMALL, shaping="hierarchical", weights={"metrics": 1.0})
    fresh.load_state_dict(state)
    assert data_equivalence(env.observation, fresh.observation, exact=True)
    assert fresh.np_random_seed == env.np_random_seed == 7
    np.testing.assert_array_equal(fresh.canvas, env.canvas)
    np.testing.assert_array_equal(fresh.reference, env.reference)
    if saved_after == EPISODE:
        with pytest.raises(RuntimeError, match="reset"):
            fresh.step(actions[0])
        assert data_equivalence(env.reset(), fresh.reset(), exact=True)
    rest = actions[EPISODE + saved_after :]  # more than one whole episode
    assert data_equivalence(play(env, rest), play(fresh, rest), exact=True)


def test_load_state_dict_into_a_made_env():
    env, other = make(shaping="hierarchical"), make(shaping="hierarchical")
    actions = action_stream(env, 2 * EPISODE + 20)
    env.reset(seed=1)
    other.reset(seed=2)  # through OrderEnforcing, which keeps its own "has reset" flag
    play(env, actions[:70])
    other.unwrapped.load_state_dict(env.unwrapped.state_dict())
    assert data_equivalence(play(env, actions[70:]), play(other, actions[70:]), exact=True)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("rng"), "missing key.*rng"),
        (lambda s: s["core"]["buffers"].pop("canvas"), "missing key.*canvas"),
        (lambda s: s["core"].update(num_envs=3), "3 sub-envs"),
        (lambda s: s["core"]["buffers"].update(t=np.zeros(2, np.int64)), "'t'.*\\(2,\\)"),
        (lambda s: s["core"]["buffers"].update(_target=np.zeros((1, 20))), "_target.*float64"),
        (lambda s: s.update(version=2), "version 2"),
        (lambda s: s.update(np_random_seed="x"), "np_random_seed"),
        (lambda s: s["rng"].update(bit_generator="Philox"), "Philox"),
    ],
    ids=["no-rng", "no-buffer", "num_envs", "shape", "dtype", "version", "seed", "rng-kind"],
)
def test_load_state_dict_errors_change_nothing(edit, match):
    env = DrumComposeEnv(**SMALL)
    env.reset(seed=0)
    for a in action_stream(env, 10):
        env.step(a)
    state = env.state_dict()
    edit(state)
    target = DrumComposeEnv(**SMALL)
    target.reset(seed=3)
    before = target.state_dict()
    with pytest.raises(ValueError, match=match):
        target.load_state_dict(state)
    after = target.state_dict()
    for name, value in before["core"]["buffers"].items():
        np.testing.assert_array_equal(value, after["core"]["buffers"][name], err_msg=name)
    assert after["rng"] == before["rng"] and after["normalizer"] == before["normalizer"]


def test_load_state_dict_other_task():
    env = DrumComposeEnv(**SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="prompt_bars"):
        DrumComposeEnv(seq_len=64, prompt_bars=2).load_state_dict(env.state_dict())
    with pytest.raises(ValueError, match="DrumComposeVectorEnv"):
        state = {**env.state_dict(), "format": "DrumComposeVectorEnv"}
        DrumComposeEnv(**SMALL).load_state_dict(state)


def test_make_with_a_shaping_object_keeps_the_spec():
    shaping = rewards.make_shaping("sparse", weights={"bar": 2.0})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = make(shaping=shaping)
    assert not caught, [str(w.message) for w in caught]
    assert env.spec is not None and env.spec.kwargs["shaping"] == shaping


def test_flatten_observation():
    env = gym.wrappers.FlattenObservation(make())
    obs, _ = env.reset(seed=0)
    size = 32 * 9 + (16 + 4 + 2) + (11 + 9)
    assert obs.shape == (size,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    for a in action_stream(env, 48):
        obs, _, terminated, _, _ = env.step(a)
        assert env.observation_space.contains(obs)
    assert terminated


@pytest.mark.slow
def test_sb3_ppo_trains():
    from stable_baselines3 import PPO

    env = gym.make(ENV_ID, seq_len=64, prompt_bars=1)
    model = PPO("MultiInputPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0,
                device="cpu", verbose=0)  # fmt: skip
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(env.action_space.dtype))
    env.step(action)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "action",
    [
        np.zeros(8, np.int8),
        np.zeros((1, 9), np.int8),
        np.zeros(10),
        np.int8(1),
    ],
    ids=["too-short", "2-d", "too-long", "scalar"],
)
def test_wrong_action_shape(action):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"MultiBinary\(9\)"):
        env.step(action)


@pytest.mark.parametrize(
    "values",
    [[2, 0, 0, 0, 0, 0, 0, 0, 0], [0.5] * 9, [-1] * 9, [np.nan] * 9, ["1"] * 9],
    ids=["two", "half", "minus-one", "nan", "string"],
)
def test_action_values_outside_0_1(values):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"MultiBinary\(9\)"):
        env.step(np.array(values))


def test_valid_action_encodings_agree():
    a = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1])
    results = []
    for enc in (a.astype(np.int8), a.astype(bool), a.astype(np.float32), a.tolist()):
        env = make(shaping="hierarchical-raw")
        env.reset(seed=0)
        results.append(env.step(enc))
    for r in results[1:]:
        assert data_equivalence(r, results[0], exact=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shaping": "no-such-shaping"}, "no-such-shaping"),
        ({"weights": {"bogus_term": 1.0}}, "bogus_term"),
        ({"seq_len": 64, "prompt_bars": 4}, "prompt_bars"),
        ({"seq_len": 64, "prompt_bars": 9}, "prompt_bars"),
        ({"seq_len": 64, "prompt_bars": -1}, "prompt_bars"),
        ({"seq_len": 60}, "seq_len"),
        ({"seq_len": 0}, "seq_len"),
        ({"steps_per_bar": 0}, "steps_per_bar"),
        ({"context_steps": 0}, "context_steps"),
        ({"data": 3.5}, "data"),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **{**SMALL, **kwargs})


def test_bad_render_mode_raises():
    with pytest.raises(ValueError, match="render_mode"):
        DrumComposeEnv(seq_len=64, prompt_bars=1, render_mode="bogus")


def test_data_folder_with_only_short_sequences(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        seq = (rng.random((48, 9)) < 0.3).astype(np.float32)
        np.savez(tmp_path / f"short{i}.npz", sequence=seq)
    with pytest.raises(ValueError, match="seq_len=64"):
        gym.make(ENV_ID, data=tmp_path, seq_len=64, prompt_bars=1)


def test_data_folder_with_some_short_sequences_warns(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a_long.npz", sequence=(rng.random((96, 9)) < 0.3).astype(np.float32))
    np.savez(tmp_path / "b_short.npz", sequence=(rng.random((32, 9)) < 0.3).astype(np.float32))
    with pytest.warns(UserWarning, match="shorter than seq_len"):
        env = gym.make(ENV_ID, data=tmp_path, seq_len=64, prompt_bars=1)
    assert {int(s) for s, _ in env.unwrapped.data.windows} == {0}


# --------------------------------------------------------------------------- render and save


def test_render_ansi_one_row_per_drum():
    env = make(render_mode="ansi")
    env.reset(seed=0)
    for a in action_stream(env, 20):
        env.step(a)
    text = env.render()
    assert isinstance(text, str)
    lines = text.splitlines()
    rows = lines[1:10]
    assert [row.split("|")[0].strip() for row in rows] == list(DEFAULT_DRUM_NAMES)
    canvas = env.unwrapped.canvas
    for d, row in enumerate(rows):
        cells = row[row.index("|") :].replace("|", "")
        assert len(cells) == 64
        hits = np.array([ch in "oOxX" for ch in cells])
        np.testing.assert_array_equal(hits, canvas[:, d] > 0, err_msg=DEFAULT_DRUM_NAMES[d])
    assert sum("|" in line for line in lines) == 1 + 9  # header and the drum rows


def test_render_rgb_array():
    env = make(render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] > 0 and image.shape[1] > 0
    env.step(np.ones(9, np.int8))
    assert not np.array_equal(env.render(), image)  # the new step shows


def test_save_npz_and_midi(tmp_path):
    env = make()
    _, info = env.reset(seed=2)
    for a in action_stream(env, 48, seed=4):
        env.step(a)
    canvas, take = env.unwrapped.canvas, env.unwrapped.take
    np.testing.assert_array_equal(take > 0, canvas > 0)  # the take is the canvas, with velocities
    primer = env.unwrapped.data.primer_values(np.array([info["window"]]), 16)[0]
    np.testing.assert_array_equal(take[:16], primer)  # the primer keeps the data's values
    npz_path = env.unwrapped.save(tmp_path / "out" / "song.npz")
    assert npz_path.suffix == ".npz"
    with np.load(npz_path, allow_pickle=False) as f:
        assert sorted(f.keys()) == ["prompt_steps", "sequence"]
        np.testing.assert_array_equal(f["sequence"], take)
    mid_path = env.unwrapped.save(tmp_path / "song.mid", bpm=100.0)
    conv = midi_to_sequence(mid_path, steps_per_bar=16, velocity=False)
    back = conv.sequence
    assert back.shape[1] == 9 and len(back) <= 64
    np.testing.assert_array_equal(back > 0, canvas[: len(back)] > 0)
    assert not canvas[len(back) :].any()  # only trailing silence may be cut
    assert conv.tempo_bpm == pytest.approx(100.0)
    wav = env.unwrapped.save(tmp_path / "song.wav")  # FluidSynth where installed, else the kit
    assert wav.read_bytes()[:4] == b"RIFF"
    with pytest.raises(ValueError, match=r"\.npz"):
        env.unwrapped.save(tmp_path / "song.ogg")


# --------------------------------------------------------------------------- data sources


@pytest.fixture(scope="module")
def npz_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("npz")
    for i, seq in enumerate(default_corpus()[:6]):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        np.savez(sub / f"seq{i:02d}.npz", sequence=seq)
    return folder


def test_data_as_npz_folder(npz_folder):
    for data in (npz_folder, str(npz_folder)):
        env = gym.make(ENV_ID, data=data, seq_len=64, prompt_bars=1)
        u = env.unwrapped
        ds = CompleteHierarchicalDrumDataset(npz_folder, seq_len=64, as_numpy=True)
        lengths = [len(s) for s in ds.sequences]
        expected = [(i, s) for i, n in enumerate(lengths) for s in range(0, n - 64 + 1, 16)]
        assert [tuple(w) for w in u.data.windows.tolist()] == expected
        for w in (0, len(expected) - 1):
            env.reset(seed=0, options={"window": w})
            i, s = expected[w]
            np.testing.assert_array_equal(u.reference, ds.sequences[i][s : s + 64] > 0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(u)


def test_data_as_dataset_object(npz_folder):
    ds = CompleteHierarchicalDrumDataset(npz_folder, seq_len=64, as_numpy=True)
    env = gym.make(ENV_ID, data=ds, seq_len=64, prompt_bars=1)
    u = env.unwrapped
    np.testing.assert_array_equal(u.data.windows, ds.sample_indices)
    for w in (0, 17, len(ds) - 1):
        _, info = env.reset(seed=0, options={"window": w})
        i, s = ds.sample_indices[w]
        np.testing.assert_array_equal(u.reference, ds.sequences[i][s : s + 64] > 0)
        assert info["sequence"] == ds.names[i]
    steps = rollout(env, 0, action_stream(env, 48))
    assert steps[-1][2] is True


def test_default_data_is_the_synthetic_corpus():
    env = make()
    u = env.unwrapped
    corpus = default_corpus()
    assert len(u.data.hits) == len(corpus)
    for hits, seq in zip(u.data.hits, corpus):
        np.testing.assert_array_equal(hits, seq > 0)
