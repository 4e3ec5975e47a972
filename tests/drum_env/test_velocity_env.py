"""The expressive env (``velocity_levels = K > 0``): spaces, checkers, velocity canvas, terms.

What a user relies on: the action is a velocity class per drum, the canvas, observation and take
carry velocities, the primer keeps the data's velocities, the velocity terms close at bar,
phrase and song ends and rank the real continuation first, the single, vector and band envs
agree, and ``K = 0`` is the binary env.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from dataset.synthetic import default_corpus
from dataset.velocity import VelocityBins
from drum_env import rewards
from drum_env.band import DrumBandParallelEnv
from drum_env.rewards import TERMS, VELOCITY_TERMS

ENV_ID = "DrumCompose-v0"
K = 4
SMALL = {"seq_len": 64, "prompt_bars": 1, "velocity_levels": K}


def make(**kwargs) -> gym.Env:
    return gym.make(ENV_ID, **{**SMALL, **kwargs})


def real_classes(env: gym.Env) -> np.ndarray:
    """The classes that replay the episode's reference window: int (seq_len, drums)."""
    return env.unwrapped.config.velocity_bins.encode(env.unwrapped.reference_values)


def play(env: gym.Env, classes: np.ndarray, window: int = 0):
    """Play ``classes`` (seq_len, drums) after the primer; return the per-step infos and rewards."""
    env.reset(seed=0, options={"window": window})
    p = env.unwrapped.config.prompt_steps
    infos, rewards_ = [], []
    for t in range(p, env.unwrapped.config.seq_len):
        _, r, term, _, info = env.step(classes[t])
        infos.append(info)
        rewards_.append(r)
    assert term
    return infos, np.array(rewards_)


def term_sum(infos, term: str) -> float:
    return float(sum(info["reward_terms"][f"{term}/raw"] for info in infos))


def test_spaces():
    env = make()
    assert env.action_space == spaces.MultiDiscrete(np.full(9, K + 1))
    c = env.unwrapped.config
    assert c.velocity_levels == K and c.velocity_bins.num_levels == K
    size = len(rewards.SONG_FEATURE_NAMES) + 9 + rewards.velocity_feature_size(9)
    assert env.observation_space["target"].shape == (size,)
    assert make(velocity_levels=0).action_space == spaces.MultiBinary(9)


def test_gymnasium_checker_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make().unwrapped, skip_render_check=True)


def test_sb3_checker_passes():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(make(), warn=True)


def test_pettingzoo_band_checkers_pass():
    pytest.importorskip("pettingzoo")
    from pettingzoo.test import parallel_api_test

    band = DrumBandParallelEnv(seq_len=64, prompt_bars=1, velocity_levels=K)
    assert band.action_space("kick") == spaces.Discrete(K + 1)
    parallel_api_test(band, num_cycles=60)


def test_primer_keeps_its_velocities_and_canvas_carries_levels():
    env = make(context_steps=16)
    obs, _ = env.reset(seed=0, options={"window": 3})
    u = env.unwrapped
    p = u.config.prompt_steps
    data = u.data.stack_values(np.array([3]), u.config.seq_len)[0]
    np.testing.assert_array_equal(u.canvas[:p], data[:p])
    # the observation shows the primer's velocities, not 0/1
    np.testing.assert_array_equal(obs["context"].reshape(16, 9), data[p - 16 : p])
    action = np.arange(9) % (K + 1)
    obs, *_ = env.step(action)
    levels = np.concatenate([[0.0], u.config.velocity_bins.levels]).astype(np.float32)
    np.testing.assert_array_equal(u.canvas[p], levels[action])
    np.testing.assert_array_equal(obs["context"].reshape(16, 9)[-1], levels[action])
    np.testing.assert_array_equal(u.take, u.canvas)


def test_velocity_terms_close_at_unit_ends_only():
    env = make()
    infos, _ = play(env, np.ones((64, 9), dtype=np.int64))
    spb, p = 16, 16
    for i, info in enumerate(infos):
        end = p + i + 1
        terms = info["reward_terms"]
        assert terms["bar_velocity/closed"] == (end % spb == 0)
        assert terms["phrase_velocity/closed"] == (end % 64 == 0)
        assert terms["song_velocity/closed"] == (end == 64)
        for term in VELOCITY_TERMS:
            assert -1.0 <= terms[f"{term}/raw"] <= 0.0


def test_real_continuation_scores_zero_on_velocity_terms():
    env = make()
    for window in (0, 5, 11):
        env.reset(seed=0, options={"window": window})
        infos, _ = play(env, real_classes(env), window)
        for term in VELOCITY_TERMS:
            assert term_sum(infos, term) == 0.0, term


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), window=st.integers(0, 20))
def test_real_dynamics_rank_first_among_same_hits(seed, window):
    """The same hits at other velocities never beat the real continuation on a velocity term."""
    env = make()
    env.reset(seed=0, options={"window": window})
    real = real_classes(env)
    rng = np.random.default_rng(seed)
    other = np.where(real > 0, rng.integers(1, K + 1, real.shape), 0)
    real_infos, _ = play(env, real, window)
    other_infos, _ = play(env, other, window)
    for term in VELOCITY_TERMS:
        assert term_sum(other_infos, term) <= term_sum(real_infos, term) == 0.0
    for term in set(TERMS) - set(VELOCITY_TERMS):  # same hits: the same hit terms
        assert term_sum(other_infos, term) == term_sum(real_infos, term)


def test_binary_env_never_closes_velocity_terms_and_aligned_equals_aligned_hits():
    actions = (np.random.default_rng(0).random((64, 9)) < 0.3).astype(np.int8)
    out = {}
    for shaping in ("aligned", "aligned-hits"):
        env = make(velocity_levels=0, shaping=shaping)
        infos, rew = play(env, actions)
        out[shaping] = rew
        for info in infos:
            for term in VELOCITY_TERMS:
                assert not info["reward_terms"][f"{term}/closed"]
    np.testing.assert_array_equal(out["aligned"], out["aligned-hits"])


def test_single_and_vector_env_agree_bit_for_bit():
    n = 3
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **SMALL)
    singles = [make() for _ in range(n)]
    obs_v, info_v = venv.reset(seed=0, options={"window": 4})
    # the vector env draws its own windows; put every single env on the same ones
    windows = info_v["window"]
    obs_s = [e.reset(seed=0, options={"window": int(w)})[0] for e, w in zip(singles, windows)]
    np.testing.assert_array_equal(obs_v["context"], np.stack([o["context"] for o in obs_s]))
    rng = np.random.default_rng(1)
    for _ in range(48):
        a = rng.integers(0, K + 1, (n, 9))
        obs_v, r_v, term_v, _, _ = venv.step(a)
        for i, e in enumerate(singles):
            o, r, term, _, _ = e.step(a[i])
            assert r == r_v[i] and term == term_v[i]
            for key in o:
                np.testing.assert_array_equal(o[key], obs_v[key][i])
    takes = np.stack([e.unwrapped.take for e in singles])
    np.testing.assert_array_equal(venv.unwrapped.takes, takes)


def test_state_dict_round_trip_continues_bit_for_bit():
    a, b = make(), make()
    a.reset(seed=7)
    b.reset(seed=99)  # another episode, overwritten by the load
    rng = np.random.default_rng(2)
    for _ in range(20):
        a.step(rng.integers(0, K + 1, 9))
    b.unwrapped.load_state_dict(a.unwrapped.state_dict())
    for _ in range(60):
        act = rng.integers(0, K + 1, 9)
        ra, rb = a.step(act), b.step(act)
        assert ra[1] == rb[1] and ra[2] == rb[2]
        np.testing.assert_array_equal(ra[0]["context"], rb[0]["context"])
        if ra[2]:
            a.reset(seed=1), b.reset(seed=1)


def test_state_of_another_velocity_setting_is_refused():
    a = make()
    a.reset(seed=0)
    with pytest.raises(ValueError, match="velocity_levels"):
        make(velocity_levels=3).unwrapped.load_state_dict(a.unwrapped.state_dict())


def test_given_bins_are_used_and_checked():
    bins = VelocityBins(np.array([0.3, 0.6, 0.9]), np.array([0.2, 0.5, 0.8, 1.0]))
    env = make(velocity_bins=bins.to_dict())
    assert env.unwrapped.config.velocity_bins == bins
    with pytest.raises(ValueError, match="velocity_bins has 4 levels, velocity_levels is 3"):
        make(velocity_levels=3, velocity_bins=bins)
    with pytest.raises(ValueError, match="velocity_bins needs velocity_levels > 0"):
        make(velocity_levels=0, velocity_bins=bins)


def test_bins_come_from_the_data():
    env = make()
    expected = VelocityBins.from_data(default_corpus(), K)
    assert env.unwrapped.config.velocity_bins == expected


@pytest.mark.parametrize("bad", [-1, 1.5, 128, True, "3"])
def test_bad_velocity_levels_name_the_argument(bad):
    with pytest.raises(ValueError, match="velocity_levels"):
        make(velocity_levels=bad)


@pytest.mark.parametrize(
    "action", [np.full(9, K + 1), np.full(9, -1), np.full(9, 0.5), np.full(9, np.nan), np.zeros(8)]
)
def test_bad_actions_are_refused_with_the_space(action):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="MultiDiscrete"):
        env.unwrapped.step(action)


def test_band_plays_velocities_like_the_single_env():
    band = DrumBandParallelEnv(seq_len=64, prompt_bars=1, velocity_levels=K)
    env = make()
    band.reset(seed=0, options={"window": 2})
    env.reset(seed=0, options={"window": 2})
    rng = np.random.default_rng(3)
    for _ in range(48):
        a = rng.integers(0, K + 1, 9)
        *_, infos_band = band.step(dict(zip(band.agents, a.tolist())))
        *_, info = env.step(a)
        assert infos_band["kick"]["reward_terms"] == info["reward_terms"]
        np.testing.assert_array_equal(band.canvas, env.unwrapped.canvas)
    with pytest.raises(ValueError, match=rf"integer in \[0, {K}\]"):
        band.reset(seed=0)
        band.step(dict.fromkeys(band.agents, K + 1))


def test_saved_midi_plays_the_class_levels(tmp_path):
    """A take written to MIDI keeps the primer's velocities and the composed classes' levels."""
    from dataset.midi import midi_to_sequence

    env = make()
    env.reset(seed=0, options={"window": 1})
    rng = np.random.default_rng(4)
    terminated = False
    while not terminated:
        *_, terminated, _, _ = env.step(rng.integers(0, K + 1, 9))
    path = env.unwrapped.save(tmp_path / "take.mid")
    back = midi_to_sequence(path).sequence[: env.unwrapped.config.seq_len]
    expected = np.clip(np.rint(env.unwrapped.take * 127), 0, 127) / 127
    np.testing.assert_allclose(back, expected, atol=1e-6)
