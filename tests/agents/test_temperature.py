"""Tests of sampling temperature: policy_fn's temperature and agents/evaluation/temperature.py."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import drum_env  # noqa: F401
from agents.evaluation.heldout import HeldoutConfig, write_split
from agents.evaluation.rollout import policy_fn
from agents.evaluation.temperature import choose_temperature
from agents.policies.policy import DrumPolicy, PolicyConfig


def small_policy(seed: int = 0, **changes) -> tuple[DrumPolicy, dict]:
    env = gym.make_vec("DrumCompose-v0", num_envs=64, vectorization_mode="vector_entry_point",
                       seq_len=32, prompt_bars=1)  # fmt: skip
    obs, _ = env.reset(seed=0)
    config = PolicyConfig.from_env_config(env.unwrapped.config, d_model=16, n_heads=2, **changes)
    env.close()
    torch.manual_seed(seed)
    return DrumPolicy(config), obs


def test_temperature_sharpens_and_flattens_the_draws():
    """At hit rate 0.1, T < 1 hits less often and T > 1 more (p = sigmoid(logit / T))."""
    policy, obs = small_policy(init_hit_rate=0.1)
    rates = {}
    for t in (0.5, 1.0, 2.0):
        act = policy_fn(policy, seed=1, temperature=t)
        rates[t] = float(np.mean([act(obs).mean() for _ in range(20)]))
    logit = np.log(0.1 / 0.9)
    for t, rate in rates.items():
        assert rate == pytest.approx(1 / (1 + np.exp(-logit / t)), abs=0.02), (t, rates)
    assert rates[0.5] < rates[1.0] < rates[2.0]


def test_temperature_one_is_the_policy_as_it_is():
    policy, obs = small_policy()
    a, b = policy_fn(policy, seed=5), policy_fn(policy, seed=5, temperature=1.0)
    for _ in range(3):
        assert np.array_equal(a(obs), b(obs))
    # deterministic play ignores the temperature: the mode is the mode
    sharp = policy_fn(policy, deterministic=True, temperature=0.5)
    assert np.array_equal(sharp(obs), policy_fn(policy, deterministic=True)(obs))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_temperature_is_named(bad):
    policy, _ = small_policy()
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        policy_fn(policy, temperature=bad)


def test_choose_temperature_keeps_the_best_validation_headline(tmp_path):
    config = HeldoutConfig(seq_len=32, prompt_bars=1, eval_episodes=8, baseline_splits=1)
    split = write_split(config, tmp_path)
    policy, _ = small_policy(init_hit_rate=0.1)
    choice = choose_temperature(policy, config, split.train_dir, temperatures=(0.5, 1.0, 2.0))
    assert set(choice.headlines) == {0.5, 1.0, 2.0}
    assert all(0.0 <= h <= 1.0 for h in choice.headlines.values())
    assert choice.headlines[choice.temperature] == max(choice.headlines.values())
    with pytest.raises(ValueError, match="at least one"):
        choose_temperature(policy, config, split.train_dir, temperatures=())
    with pytest.raises(ValueError, match="finite numbers > 0"):
        choose_temperature(policy, config, split.train_dir, temperatures=(0.0,))


def test_score_at_chosen_temperature_plays_one_and_the_validation_choice(tmp_path):
    """Two rows, T = 1 then the temperature choose_temperature picks on the validation folder,
    each scored on the held-out part as evaluate scores it, with the takes' variety beside the
    real continuations'."""
    from agents.evaluation.heldout import evaluate, heldout_dataset, reference
    from agents.evaluation.rollout import rollout_episodes
    from agents.evaluation.temperature import score_at_chosen_temperature
    from dataset.diversity import intra_set_diversity

    config = HeldoutConfig(seq_len=32, prompt_bars=1, eval_episodes=8, baseline_splits=1)
    split = write_split(config, tmp_path)
    held = heldout_dataset(config, split.heldout_dir)
    ref, kwargs = reference(config, held), config.env_kwargs(held)
    policy, _ = small_policy(init_hit_rate=0.1)
    temps = (0.5, 2.0)
    rows, real = score_at_chosen_temperature(policy, config, config, split.train_dir, kwargs, ref,
                                             temps, seed=3, diversity_episodes=6)  # fmt: skip
    choice = choose_temperature(policy, config, split.train_dir, temps, seed=3)
    assert [r["play"] for r in rows] == ["T=1", "T*"]
    assert [r["temperature"] for r in rows] == [1.0, choice.temperature]
    for row in rows:
        assert row["seed"] == 3
        assert row["validation_headlines"] == {str(k): v for k, v in choice.headlines.items()}
        want = evaluate(policy_fn(policy, seed=3, temperature=row["temperature"]), config, kwargs,
                        ref, config.eval_draws)  # fmt: skip
        assert row["headline"] == want["headline"]
        assert row["headline_se"] == want["headline_se"]
        takes = rollout_episodes(policy_fn(policy, seed=3, temperature=row["temperature"]), kwargs,
                                 episodes=6, num_envs=16, seed=config.eval_seed)  # fmt: skip
        p = takes.prompt_steps
        assert row["diversity"] == intra_set_diversity(takes.sequences[:, p:])
    assert real == intra_set_diversity(takes.references[:, p:])
    assert rows[0]["diversity"] != rows[1]["diversity"]  # the two plays differ
