"""Tests of agents/policies/critic.py: what the critic sees, that it learns (trainer)."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import drum_env  # noqa: F401
from agents.policies.critic import OBS_KEYS, Critic
from agents.policies.policy import DrumPolicy, PolicyConfig, load_policy, obs_to_tensors
from agents.training.checkpoint import atomic_torch_save, load_checkpoint
from agents.training.ppo import PPOConfig, train
from drum_env.rewards import TERMS, make_shaping

TINY = dict(
    num_envs=4, num_steps=16, total_timesteps=256, seq_len=32, d_model=16, n_layers=1,
    n_heads=2, progress=False, tensorboard=False, device="cpu", seed=3,
)  # fmt: skip


def tiny(tmp_path: Path, name: str = "run", **changes) -> PPOConfig:
    return PPOConfig(**{**TINY, "out": str(tmp_path / name), **changes})


def vector_obs(num_envs: int = 4, **kwargs) -> tuple[dict[str, torch.Tensor], object]:
    env = gym.make_vec("DrumCompose-v0", num_envs=num_envs,
                       vectorization_mode="vector_entry_point", **kwargs)  # fmt: skip
    obs, _ = env.reset(seed=0)
    space = env.unwrapped.single_observation_space
    env.close()
    return obs_to_tensors(obs, "cpu"), space


def test_critic_reads_every_observation_array():
    """The value moves with the context, the position (song progress included) and the target."""
    obs, space = vector_obs(seq_len=32, prompt_bars=1)
    torch.manual_seed(0)
    critic = Critic.for_space(space)
    inputs = {k: v.clone().requires_grad_(True) for k, v in obs.items()}
    critic(inputs).sum().backward()
    for key in OBS_KEYS:
        assert inputs[key].grad is not None and inputs[key].grad.abs().sum() > 0, key
    # song progress alone (the position's last entry) changes the value
    later = {k: v.clone() for k, v in obs.items()}
    later["position"][:, -1] = 0.9
    with torch.no_grad():
        assert not torch.allclose(critic(obs), critic(later))


def test_critic_for_space_and_bad_input():
    obs, space = vector_obs(seq_len=32, prompt_bars=1, context_steps=8)
    critic = Critic.for_space(space, hidden=(8,))
    assert critic.sizes == {"context": 8 * 9, "position": space["position"].shape[0],
                            "target": space["target"].shape[0]}  # fmt: skip
    assert critic(obs).shape == (4,) and critic(obs).dtype == torch.float32
    with pytest.raises(ValueError, match=r"missing \['target'\]"):
        Critic({"context": 3, "position": 2})
    with pytest.raises(ValueError, match="hidden must be"):
        Critic({"context": 3, "position": 2, "target": 1}, hidden=(0,))
    with pytest.raises(TypeError, match="Dict space"):
        Critic.for_space(space["context"])


def test_default_run_trains_its_own_critic_and_saves_the_actor_alone(tmp_path):
    result = train(tiny(tmp_path))
    state = load_checkpoint(result.checkpoint_path)
    assert set(state["critic"]) == {f"net.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}
    # the policy's own value head rests: it is the one a fresh policy of the same seed has
    env = gym.make("DrumCompose-v0", **tiny(tmp_path).env_kwargs())
    config = PolicyConfig.from_env_config(env.unwrapped.config, d_model=16, n_heads=2)
    env.close()
    torch.manual_seed(3)
    fresh = DrumPolicy(config)
    for name, value in fresh.state_dict().items():
        if name.startswith("value_head"):
            assert torch.equal(value, result.policy.state_dict()[name]), name
    # policy.pt is the actor: it loads as a policy and holds no critic tensors
    loaded = load_policy(result.policy_path)
    assert not any(k.startswith(("critic", "net.")) for k in loaded.state_dict())


def test_episode_charts_give_the_raw_return_and_the_length(tmp_path):
    cfg = tiny(tmp_path, total_timesteps=512)
    result = train(cfg)
    weights = make_shaping(cfg.shaping).weight_vector
    rows = [r for r in result.history if r["charts/episodes"] > 0]
    assert rows
    for row in rows:
        expected = sum(w * row[f"reward/{t}"] for t, w in zip(TERMS, weights))
        assert math.isclose(row["charts/episodic_return_raw"], expected, rel_tol=1e-9,
                            abs_tol=1e-12)  # fmt: skip
        assert row["charts/episodic_length"] == cfg.seq_len - cfg.prompt_steps
        assert -float(np.sum(weights)) <= row["charts/episodic_return_raw"] <= 0.0


def test_a_checkpoint_from_before_the_critic_resumes_with_the_policy_head(tmp_path):
    """0.3.0 checkpoints have no ``critic`` (nor ``init_hit_rate``): they resume as they trained."""
    first = train(tiny(tmp_path, critic="policy", total_timesteps=128))
    state = load_checkpoint(first.checkpoint_path)
    assert "critic" not in state
    del state["config"]["critic"], state["config"]["init_hit_rate"]
    atomic_torch_save(state, first.checkpoint_path)
    with pytest.raises(ValueError, match=r"critic \(checkpoint 'policy', now 'mlp'\)"):
        train(tiny(tmp_path, resume=True, total_timesteps=256))
    longer = train(tiny(tmp_path, resume=True, total_timesteps=256, critic="policy"))
    assert longer.global_step == 256


def test_critic_choice_is_validated():
    with pytest.raises(ValueError, match=r"critic must be one of \['mlp', 'policy'\]"):
        PPOConfig(critic="shared")
    with pytest.raises(ValueError, match="init_hit_rate"):
        PPOConfig(init_hit_rate=1.0)


@pytest.mark.slow
def test_the_critic_explains_the_return_where_the_policy_head_cannot(tmp_path):
    """On the built-in corpus, over the last quarter of a short default run, the trainer's
    critic explains at least half of the return's variance, and more than the policy's head."""
    def last_quarter_ev(critic: str) -> float:
        result = train(PPOConfig(total_timesteps=65_536, progress=False, tensorboard=False,
                                 device="cpu", seed=0, critic=critic,
                                 out=str(tmp_path / critic)))  # fmt: skip
        rows = result.history[-len(result.history) // 4:]
        return float(np.mean([r["losses/explained_variance"] for r in rows]))

    mlp, head = last_quarter_ev("mlp"), last_quarter_ev("policy")
    assert mlp >= 0.5, (mlp, head)
    assert mlp > head + 0.1, (mlp, head)
