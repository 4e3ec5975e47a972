"""A joint step head (PolicyConfig.joint_step): one categorical over a step's 2 ** D patterns.

What a user relies on: it starts as the independent head it replaces (same hit rates), its
log-probability, entropy and KL are those of the categorical over patterns, pretraining learns
it, ``train --pretrained`` keeps it, and it plays in the env through ``policy_fn``.
"""

from __future__ import annotations

import itertools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import drum_env  # noqa: F401
from agents.evaluation.rollout import load_any_policy, policy_fn
from agents.policies.distributions import (
    MAX_JOINT_DRUMS,
    action_dist,
    independent_pattern_logits,
    pattern_bits,
    pattern_index,
)
from agents.policies.policy import DrumPolicy, PolicyConfig, load_policy, saved_policy_config
from agents.training.ppo import PPOConfig, train
from agents.training.pretrain import PretrainConfig, next_step_loss, pretrain

SMALL = dict(num_drums=4, context_steps=8, steps_per_bar=4, bars_per_phrase=2, target_size=15,
             d_model=16, n_layers=1, n_heads=2)  # fmt: skip


def test_pattern_index_and_bits_are_inverse_and_bit_d_is_drum_d():
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))  # every pattern of 5
    index = pattern_index(bits)
    assert sorted(index.tolist()) == list(range(32))
    assert torch.equal(pattern_bits(index, 5), bits)
    assert pattern_index(torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])).item() == 4  # drum 2 -> 2 ** 2


def test_head_starts_at_the_independent_hit_rate():
    """The softmax of the initial bias has every drum's marginal hit rate = init_hit_rate, and
    the entropy of D independent Bernoulli draws."""
    rate = 0.2
    policy = DrumPolicy(PolicyConfig(**SMALL, joint_step=True, init_hit_rate=rate))
    logits = policy.policy_head.bias.detach()
    assert logits.shape == (2**4,)
    probs = torch.softmax(logits.double(), -1)
    marginals = (probs[:, None] * pattern_bits(torch.arange(16), 4).double()).sum(0)
    assert torch.allclose(marginals, torch.full((4,), rate, dtype=torch.float64), atol=1e-6)
    bernoulli = -4 * (rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    assert policy.action_dist.entropy(logits).item() == pytest.approx(bernoulli, rel=1e-5)
    assert torch.allclose(independent_pattern_logits(4, rate).exp().sum(), torch.tensor(1.0))


def test_log_prob_entropy_kl_are_the_categorical_over_patterns():
    torch.manual_seed(0)
    dist = action_dist(0, joint_drums=3)
    logits, other = torch.randn(5, 8), torch.randn(5, 8)
    actions = dist.sample(logits, torch.Generator().manual_seed(1))
    assert actions.shape == (5, 3) and set(actions.unique().tolist()) <= {0.0, 1.0}
    cat = torch.distributions.Categorical(logits=logits)
    assert torch.allclose(dist.log_prob(logits, actions), cat.log_prob(pattern_index(actions)))
    assert torch.allclose(dist.entropy(logits), cat.entropy())
    kl = torch.distributions.kl_divergence(cat, torch.distributions.Categorical(logits=other))
    assert torch.allclose(dist.kl(logits, other), kl, atol=1e-6)
    assert torch.equal(dist.mode(logits), pattern_bits(logits.argmax(-1), 3))


def test_samples_follow_the_pattern_probabilities():
    """Drums drawn together: a head that puts all its mass on {drum 0 and 1 together} and
    {silence} never plays drum 0 without drum 1."""
    dist = action_dist(0, joint_drums=2)
    logits = torch.full((4000, 4), -30.0)
    logits[:, 0] = 0.0  # silence
    logits[:, 3] = 0.0  # drums 0 and 1
    a = dist.sample(logits, torch.Generator().manual_seed(0))
    assert torch.equal(a[:, 0], a[:, 1])
    assert 0.45 < a[:, 0].mean().item() < 0.55


@pytest.mark.parametrize(
    "changes, match",
    [({"velocity_levels": 2}, "joint_step is for binary"),
     ({"num_drums": MAX_JOINT_DRUMS + 1}, "above"),
     ({"joint_step": 1}, "joint_step must be True or False")],
)  # fmt: skip
def test_bad_joint_configs_are_named(changes, match):
    with pytest.raises(ValueError, match=match):
        PolicyConfig(**{**SMALL, "joint_step": True, **changes})


def test_pretraining_loss_is_the_pattern_cross_entropy_per_drum():
    torch.manual_seed(0)
    policy = DrumPolicy(PolicyConfig(**SMALL, joint_step=True))
    hits = (torch.rand(3, 6, 4) < 0.3).float()
    mask = torch.ones(3, 6, dtype=torch.bool)
    target = torch.rand(3, 15)
    loss, count = next_step_loss(policy, hits, mask, target)
    out = policy(hits[:, :-1], torch.full((3,), 5 % 8), target)
    expected = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1),
                                                 pattern_index(hits[:, 1:]).flatten()) / 4
    assert count.item() == 15
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.slow
def test_pretrain_then_ppo_keeps_the_joint_head_and_plays(tmp_path):
    torch.set_num_threads(1)
    fast = {"seq_len": 32, "batch_size": 16, "d_model": 16, "n_layers": 1, "n_heads": 2,
            "max_steps": 80, "learning_rate": 3e-3, "progress": False, "log_every": 10}
    result = pretrain(PretrainConfig(**fast, joint_step=True, out=str(tmp_path / "pre")))
    assert saved_policy_config(result.policy_path)["joint_step"] is True
    pretrained = load_policy(result.policy_path)
    assert pretrained.config.joint_step and pretrained.policy_head.out_features == 2**9
    assert np.mean(result.losses[-20:]) < np.mean(result.losses[:20])  # it learns
    run = train(PPOConfig(num_envs=4, num_steps=16, total_timesteps=128, seq_len=32,
                          d_model=16, n_layers=1, n_heads=2, progress=False, tensorboard=False,
                          device="cpu", seed=0, kl_coef=0.1, pretrained=str(result.policy_path),
                          out=str(tmp_path / "ppo")))  # fmt: skip
    tuned = load_any_policy(run.policy_path)
    assert tuned.config.joint_step
    env = gym.make_vec("DrumCompose-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       seq_len=32, prompt_bars=1, context_steps=16)  # fmt: skip
    obs, _ = env.reset(seed=0)
    for temperature in (1.0, 0.8):
        act = policy_fn(tuned, seed=0, temperature=temperature, env=env)
        actions = act(obs)
        assert actions.shape == (3, 9) and set(np.unique(actions)) <= {0, 1}
        obs, *_ = env.step(actions)
    env.close()
