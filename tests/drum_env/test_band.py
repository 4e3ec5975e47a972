"""Tests for drum_env/band.py: PettingZoo's own suites, and the band against DrumCompose-v0.

The shared reward is checked step by step against ``gymnasium.make("DrumCompose-v0")`` played
with the band's stacked actions on the same seed; the per-agent terms and the observation's own
targets against oracles rebuilt here from the band's public ``canvas`` and ``reference`` with
the pure functions of :mod:`dataset.metrics`.
"""

from __future__ import annotations

import functools
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    seed_test,
    state_test,
)

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from dataset import metrics
from dataset.midi import DRUM_NAMES
from drum_env import band
from drum_env.band import AGENT_TERMS, DrumBandParallelEnv

SMALL = {"seq_len": 64, "prompt_bars": 1}
ROOT = Path(__file__).resolve().parents[2]

# PettingZoo recommends "<descriptor>_<number>" agent names; ours are instrument names. Its
# suites also reset with options={"options": 1}, which the band ignores with a warning.
pz_warnings = pytest.mark.filterwarnings(
    "ignore:We recommend agents to be named", "ignore:drum_band_v0 ignores reset option"
)


def small(**kwargs) -> DrumBandParallelEnv:
    return band.parallel_env(**{**SMALL, **kwargs})


def random_actions(agents: list[str], rng: np.random.Generator, p: float = 0.3) -> dict:
    return {a: int(rng.random() < p) for a in agents}


# --------------------------------------------------------------------------- PettingZoo suites


@pz_warnings
def test_parallel_api():
    parallel_api_test(small(), num_cycles=100)


@pz_warnings
def test_aec_api():
    api_test(band.env(**SMALL), num_cycles=100)


@pz_warnings
def test_aec_api_truncating():
    api_test(band.env(**SMALL, max_cycles=5), num_cycles=20)


def test_seed_test():
    seed_test(functools.partial(band.env, **SMALL), num_cycles=100)


def test_parallel_seed_test():
    parallel_seed_test(functools.partial(band.parallel_env, **SMALL), num_cycles=100)


def test_max_cycles_test():
    max_cycles_test(band)  # builds parallel_env(max_cycles=4) and env(max_cycles=4)


def test_state_test():
    state_test(band.env(**SMALL), small())
    b = small()
    b.reset(seed=0)
    state = b.state()
    c = b.config
    assert b.state_space.contains(state)
    np.testing.assert_array_equal(state[: c.seq_len * c.num_drums], b.canvas.ravel())


# --------------------------------------------------------------------------- spaces, names


def test_spaces_cached_and_shared_shape():
    b = small()
    for agent in b.possible_agents:
        assert b.observation_space(agent) is b.observation_space(agent)
        assert b.action_space(agent) is b.action_space(agent)
        assert b.action_space(agent) == gym.spaces.Discrete(2)
        space = b.observation_space(agent)
        assert isinstance(space, gym.spaces.Box) and space.dtype == np.float32
        assert space.shape == (b.observation_size,)
        assert space == b.observation_space(b.possible_agents[0])
    aec = band.env(**SMALL)
    assert aec.observation_space("kick") is aec.observation_space("kick")
    assert aec.action_space("snare") is aec.action_space("snare")


def test_metadata():
    assert band.DrumBandParallelEnv.metadata["name"] == "drum_band_v0"
    assert band.DrumBandParallelEnv.metadata["is_parallelizable"] is True
    assert band.DrumBandParallelEnv.metadata["render_modes"] == ["ansi", "rgb_array"]
    assert band.env(**SMALL).metadata["name"] == "drum_band_v0"


def test_agents_named_after_instruments():
    b = small()
    assert b.possible_agents == list(DRUM_NAMES)
    assert b.agents == []
    b.reset(seed=0)
    assert b.agents == list(DRUM_NAMES)


def test_agents_of_other_drum_counts(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        np.savez(tmp_path / f"s{i}.npz", sequence=(rng.random((80, 3)) < 0.3).astype(np.float32))
    b = small(data=tmp_path)
    assert b.possible_agents == ["drum0", "drum1", "drum2"]
    obs, _ = b.reset(seed=1)
    c = b.config
    assert obs["drum2"].shape == (c.context_steps * 4 + c.position_size + 11 + 3 + 4 + 3,)
    parallel_seed_test(functools.partial(band.parallel_env, data=tmp_path, **SMALL), 60)


def test_observations_in_space_and_fresh_arrays():
    b = small()
    obs, _ = b.reset(seed=3)
    rng = np.random.default_rng(0)
    while b.agents:
        for agent, o in obs.items():
            assert b.observation_space(agent).contains(o), agent
        held, copies = obs, {a: o.copy() for a, o in obs.items()}
        obs, *_ = b.step(random_actions(b.agents, rng))
        for a in held:  # a step never writes into arrays handed out before
            np.testing.assert_array_equal(held[a], copies[a])


# --------------------------------------------------------------------------- seeding


def test_same_seed_same_episodes_despite_global_rngs():
    """The band draws only from its own generator: disturbing the global RNGs changes nothing."""

    def run(seed: int, global_seed: int):
        b = small()
        random.seed(global_seed)
        np.random.seed(global_seed)  # noqa: NPY002  (disturbing the legacy global on purpose)
        out = [b.reset(seed=seed)]
        rng = np.random.default_rng(7)
        for _ in range(2):  # two episodes: the second reset continues the env's generator
            while b.agents:
                out.append(b.step(random_actions(b.agents, rng)))
            random.seed(global_seed + 1)
            np.random.seed(global_seed + 1)  # noqa: NPY002
            out.append(b.reset())
        return out

    assert data_equivalence(run(5, 123), run(5, 456))
    windows = {small().reset(seed=s)[1]["kick"]["window"] for s in range(8)}
    assert len(windows) > 1


def test_reset_options():
    b = small()
    _, infos = b.reset(seed=0, options={"window": 2})
    assert all(info["window"] == 2 for info in infos.values())
    with pytest.warns(UserWarning, match="ignores reset option"):
        b.reset(options={"widnow": 1})
    with pytest.raises(ValueError, match="options\\['window'\\]"):
        b.reset(options={"window": 10**9})


# --------------------------------------------------------------------------- vs DrumCompose-v0


@pytest.mark.parametrize("shaping", ["hierarchical", "hierarchical-raw"])
def test_shared_reward_equals_drum_compose(shaping):
    """agent_weight=0: every agent's reward and reward_terms are DrumCompose-v0's, every step."""
    kwargs = {**SMALL, "shaping": shaping}
    b = band.parallel_env(**kwargs, agent_weight=0.0)
    single = gym.make("DrumCompose-v0", **kwargs)
    rng = np.random.default_rng(0)
    c = b.config
    shared = c.context_steps * c.num_drums + c.position_size + c.target_size
    for episode in range(3):  # normalised rewards use statistics from the third episode on
        seed = 11 if episode == 0 else None
        obs, infos = b.reset(seed=seed)
        s_obs, s_info = single.reset(seed=seed)
        assert infos["kick"] == s_info
        steps = 0
        while b.agents:
            actions = random_actions(b.agents, rng)
            stacked = np.array([actions[a] for a in b.possible_agents], dtype=np.int8)
            obs, rewards, terms, truncs, infos = b.step(actions)
            s_obs, s_reward, s_term, s_trunc, s_info = single.step(stacked)
            steps += 1
            expected = np.concatenate([s_obs["context"], s_obs["position"], s_obs["target"]])
            for agent in b.possible_agents:
                assert rewards[agent] == s_reward
                assert type(rewards[agent]) is float
                assert infos[agent]["reward_terms"] == s_info["reward_terms"]
                assert terms[agent] is s_term and truncs[agent] is s_trunc
                np.testing.assert_array_equal(obs[agent][:shared], expected)
            np.testing.assert_array_equal(b.canvas, single.unwrapped.canvas)
        assert steps == c.episode_steps and s_term
        assert data_equivalence(infos["ride"]["episode_metrics"], s_info["episode_metrics"])
    np.testing.assert_array_equal(b.normalizer.mean, single.unwrapped.normalizer.mean)


def oracle_agent_terms(canvas, reference, end, steps_per_bar, phrase_len, prompt_steps):
    """(bar_density, phrase_ioi) per drum after ``end`` steps are written, from metrics."""
    bar = np.zeros(canvas.shape[1])
    phrase = np.zeros(canvas.shape[1])
    if end % steps_per_bar == 0:
        a = metrics.hit_density(canvas[end - steps_per_bar : end]).drum_density
        r = metrics.hit_density(reference[end - steps_per_bar : end]).drum_density
        bar = -np.abs(a - r)
    if end % phrase_len == 0 and end > prompt_steps:
        a = metrics.ioi_stats(canvas[end - phrase_len : end]).mean
        r = metrics.ioi_stats(reference[end - phrase_len : end]).mean
        phrase = -np.abs(np.minimum(a / steps_per_bar, 1) - np.minimum(r / steps_per_bar, 1))
    return bar, phrase


@pytest.mark.parametrize("kwargs", [SMALL, {"seq_len": 128, "prompt_bars": 2}])
def test_agent_terms_against_oracle(kwargs):
    weight = 0.5
    b = band.parallel_env(**kwargs, agent_weight=weight)
    # the band's shared reward is the single env's under the same shaping
    single = gym.make("DrumCompose-v0", shaping=b.config.shaping, **kwargs)
    c = b.config
    rng = np.random.default_rng(1)
    closed_bar = closed_phrase = 0
    b.reset(seed=4)
    single.reset(seed=4)
    end = c.prompt_steps
    while b.agents:
        actions = random_actions(b.agents, rng, p=0.4)
        _, rewards, *_, infos = b.step(actions)
        _, s_reward, *_ = single.step(np.array([actions[a] for a in b.possible_agents]))
        end += 1
        bar, phrase = oracle_agent_terms(
            b.canvas, b.reference, end, c.steps_per_bar, c.phrase_len, c.prompt_steps
        )
        closed_bar += end % c.steps_per_bar == 0
        closed_phrase += bool(phrase.any())
        for d, agent in enumerate(b.possible_agents):
            terms = infos[agent]["agent_terms"]
            assert list(terms) == list(AGENT_TERMS)
            assert terms["bar_density"] == pytest.approx(bar[d], abs=1e-12)
            assert terms["phrase_ioi"] == pytest.approx(phrase[d], abs=1e-12)
            assert -1.0 <= terms["bar_density"] <= 0.0 and -1.0 <= terms["phrase_ioi"] <= 0.0
            own = weight * (bar[d] + phrase[d])
            assert rewards[agent] == pytest.approx(s_reward + own, abs=1e-12)
    assert closed_bar == c.episode_steps // c.steps_per_bar
    assert closed_phrase >= 1


def test_agent_terms_hand_worked():
    """All drums hit every step of a bar: each bar term is -(1 - reference density)."""
    b = small(agent_weight=1.0)
    b.reset(seed=2)
    ref = b.reference
    c = b.config
    for _ in range(c.steps_per_bar):
        _, _, _, _, infos = b.step(dict.fromkeys(b.agents, 1))
    bar = ref[c.prompt_steps : c.prompt_steps + c.steps_per_bar]
    expected = -(1.0 - bar.mean(axis=0))
    got = [infos[a]["agent_terms"]["bar_density"] for a in b.possible_agents]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_observation_layout_own_targets():
    b = small(context_steps=16)
    c = b.config
    ctx, d = c.context_steps, c.num_drums
    s = ctx * d + c.position_size + c.target_size
    obs, _ = b.reset(seed=6)
    rng = np.random.default_rng(2)
    t = c.prompt_steps
    while True:
        ref = b.reference
        for i, agent in enumerate(b.possible_agents):
            o = obs[agent]
            np.testing.assert_array_equal(o[s : s + ctx], o[: ctx * d].reshape(ctx, d)[:, i])
            rate = ref[:, i].reshape(-1, c.steps_per_bar).mean(axis=0)[t % c.steps_per_bar]
            k = min(t // c.steps_per_bar, c.seq_len // c.steps_per_bar - 1)
            bar = ref[k * c.steps_per_bar : (k + 1) * c.steps_per_bar, i].mean()
            ioi = metrics.ioi_stats(ref[: c.phrase_len]).mean[i]
            own = [rate, bar, min(ioi / c.steps_per_bar, 1.0), ref[:, i].mean()]
            np.testing.assert_allclose(o[s + ctx : s + ctx + 4], own, atol=1e-6)
            np.testing.assert_array_equal(o[s + ctx + 4 :], np.eye(d)[i])
        if not b.agents:
            break
        obs, *_ = b.step(random_actions(b.agents, rng))
        t += 1
    assert t == c.seq_len


# --------------------------------------------------------------------------- episode end


def test_default_episode_terminates():
    b = small()
    b.reset(seed=0)
    n = 0
    while b.agents:
        _, _, terms, truncs, infos = b.step(dict.fromkeys(b.agents, 0))
        n += 1
    assert n == b.config.episode_steps == b.max_cycles
    assert all(terms.values()) and not any(truncs.values())
    assert "episode_metrics" in infos["kick"]
    with pytest.raises(RuntimeError, match="reset"):
        b.step({})


def test_max_cycles_truncates():
    b = small(max_cycles=3)
    b.reset(seed=0)
    for i in range(3):
        _, _, terms, truncs, infos = b.step(dict.fromkeys(b.agents, 1))
        assert not any(terms.values())
        assert all(truncs.values()) == (i == 2)
    assert b.agents == []
    assert "episode_metrics" not in infos["snare"]
    b.reset()
    assert b.agents == b.possible_agents
    long = small(max_cycles=1000)
    long.reset(seed=0)
    n = 0
    while long.agents:
        _, _, terms, truncs, _ = long.step(dict.fromkeys(long.agents, 0))
        n += 1
    assert n == long.config.episode_steps and all(terms.values()) and not any(truncs.values())


def test_aec_round_of_agents():
    aec = band.env(**SMALL)
    aec.reset(seed=0)
    order = [aec.agent_selection]
    for _ in range(len(DRUM_NAMES) - 1):
        aec.step(1)
        order.append(aec.agent_selection)
    assert order == list(DRUM_NAMES)
    aec.step(np.int64(0))  # the last agent completes the band's first step
    assert aec.agent_selection == "kick"
    assert aec.unwrapped.canvas[aec.unwrapped.config.prompt_steps].tolist() == [1.0] * 8 + [0.0]


# --------------------------------------------------------------------------- bad input


def test_bad_actions():
    b = small()
    with pytest.raises(RuntimeError, match="reset"):
        b.step(dict.fromkeys(DRUM_NAMES, 0))
    b.reset(seed=0)
    ok = dict.fromkeys(b.agents, 0)
    with pytest.raises(ValueError, match=r"unknown or finished agent\(s\) \['cowbell'\]"):
        b.step({**ok, "cowbell": 1})
    with pytest.raises(ValueError, match=r"no action for live agent\(s\) \['snare', 'ride'\]"):
        b.step({a: v for a, v in ok.items() if a not in ("snare", "ride")})
    for bad in (2, -1, 0.5, None, "1", np.array([0, 1]), np.nan):
        with pytest.raises(ValueError, match=r"must be 0 \(rest\) or 1 \(hit\).*'crash'"):
            b.step({**ok, "crash": bad})
    with pytest.raises(ValueError, match="must be a dict"):
        b.step([0] * len(DRUM_NAMES))
    # nothing was written: the position (state()'s last entry, t / seq_len) is the primer's end
    assert b.state()[-1] == np.float32(b.config.prompt_steps / b.config.seq_len)
    b.step({**ok, "kick": True, "snare": np.int32(1), "ride": 1.0, "crash": np.bool_(False)})
    written = b.canvas[b.config.prompt_steps]
    assert written.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1]


def test_aec_out_of_bounds_action_asserts():
    aec = band.env(**SMALL)
    aec.reset(seed=0)
    with pytest.raises(AssertionError, match="action space"):
        aec.step(2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_cycles"):
        small(max_cycles=0)
    with pytest.raises(ValueError, match="agent_weight"):
        small(agent_weight=float("nan"))
    with pytest.raises(ValueError, match="render_mode"):
        small(render_mode="human")
    with pytest.raises(ValueError, match="prompt_bars"):
        small(prompt_bars=4)


# --------------------------------------------------------------------------- render, misc


def test_render_modes():
    b = small(render_mode="ansi")
    b.reset(seed=0)
    b.step(dict.fromkeys(b.agents, 1))
    text = b.render()
    assert isinstance(text, str)
    lines = text.splitlines()
    assert [line.split("|")[0].strip() for line in lines[1:10]] == list(DRUM_NAMES)
    assert f"step {b.config.prompt_steps + 1}/64" in text
    rgb = small(render_mode="rgb_array")
    rgb.reset(seed=0)
    image = rgb.render()
    assert image.dtype == np.uint8 and image.shape == (9 * 8, 64 * 4, 3)
    aec = band.env(**SMALL, render_mode="rgb_array")
    aec.reset(seed=0)
    assert aec.render().shape == image.shape
    quiet = small()
    quiet.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert quiet.render() is None


def test_close_twice():
    b = small()
    b.reset(seed=0)
    b.close()
    b.close()
    aec = band.env(**SMALL)
    aec.reset(seed=0)
    aec.close()
    aec.close()


def test_pickle_round_trip_continues_identically():
    b = small()
    b.reset(seed=9)
    rng = np.random.default_rng(0)
    for _ in range(5):
        b.step(random_actions(b.agents, rng))
    clone = pickle.loads(pickle.dumps(b))
    actions = random_actions(b.agents, rng)
    assert data_equivalence(b.step(actions), clone.step(actions))
    assert data_equivalence(b.reset(), clone.reset())


# --------------------------------------------------------------------------- example


@pytest.mark.slow
def test_example_shared_policy_runs():
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "band_shared_policy.py"),
         "--total-steps", "96", "--episodes-per-update", "1", "--eval-episodes", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "before training" in proc.stdout and "after training" in proc.stdout
    assert time.perf_counter() - start < 60
