"""Velocities anchored to the primer: ``agents.evaluation.anchor`` and ``policy_fn``.

What a user relies on: the anchor moves only the velocity classes of hits, never whether a drum
hits; it pulls them towards the classes the primer played at that bar position (else the
drum's overall level); it remembers each sub-env's primer from the start of its episode; and it
is off at 0, refused where it cannot apply.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from agents.evaluation.anchor import PrimerAnchor, anchor_logits, check_velocity_anchor
from agents.evaluation.rollout import load_any_policy, policy_fn, rollout_episodes
from agents.policies.policy import make_policy, policy_velocity_bins, save_policy
from dataset.velocity import VelocityBins

K = 3
BINS = VelocityBins(np.array([0.4, 0.7]), np.array([0.25, 0.55, 0.9], np.float32))
SPB, CTX, D = 4, 8, 2


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 20.0), st.integers(1, 6))
def test_anchor_keeps_the_hit_rate_and_reweights_the_classes(seed, beta, levels):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 3, levels + 1, generator=g, dtype=torch.float64) * 3
    anchor = torch.randn(5, 3, levels, generator=g, dtype=torch.float64) * 2
    out = anchor_logits(logits, anchor, beta)
    p, q = torch.softmax(logits, -1), torch.softmax(out, -1)
    torch.testing.assert_close(q[..., 0], p[..., 0])  # P(no hit) is the policy's
    expected = p[..., 1:] * torch.exp(beta * anchor)
    expected = expected / expected.sum(-1, keepdim=True) * (1 - p[..., :1])
    torch.testing.assert_close(q[..., 1:], expected)


def test_beta_zero_returns_the_logits():
    logits = torch.randn(2, 3, K + 1)
    assert anchor_logits(logits, torch.randn(2, 3, K), 0.0) is logits


def obs_of(canvas: np.ndarray, t: int, seq_len: int = 16) -> dict[str, np.ndarray]:
    """The observation of a canvas (B, T, D) about to write step ``t`` (context of CTX steps)."""
    b = len(canvas)
    steps = t + np.arange(-CTX, 0)
    context = canvas[:, np.maximum(steps, 0)] * (steps >= 0)[None, :, None]
    position = np.zeros((b, SPB + 2 + 2), np.float32)
    position[:, t % SPB] = 1.0
    position[:, -1] = t / seq_len
    return {"context": context.reshape(b, -1).astype(np.float32), "position": position}


def test_anchor_follows_the_primers_accent_at_each_position_else_the_drums_level():
    # one bar of primer: drum 0 loud on beat 0, soft on beat 2; drum 1 hits nowhere
    canvas = np.zeros((1, 16, D), np.float32)
    canvas[0, 0, 0], canvas[0, 2, 0] = 0.95, 0.2  # classes 3 and 1
    anchor = PrimerAnchor(BINS, D, CTX, SPB)
    a = anchor(obs_of(canvas, 4))  # first composed step: position 0 of the bar
    assert a.shape == (1, D, K)
    assert a[0, 0].argmax() == 2  # class 3 at position 0
    assert a[0, 1].tolist() == pytest.approx([np.log(1 / K)] * K)  # a drum never hit: no pull
    canvas[0, 4, 0] = 0.95
    a = anchor(obs_of(canvas, 6))  # position 2, same episode: the primer's soft note
    assert a[0, 0].argmax() == 0
    b = anchor(obs_of(canvas, 5))  # earlier progress: a new episode, the canvas is its primer
    # position 1: no primer hit there, so the drum's overall level over the new primer's steps
    # (classes 3, 1, 3 in the context): class 3 first, class 2 unplayed last
    assert b[0, 0].argmax() == 2 and b[0, 0].argmin() == 1


def test_anchor_starts_over_on_another_batch_size():
    canvas = np.zeros((2, 16, D), np.float32)
    canvas[:, 0, 0] = 0.95
    anchor = PrimerAnchor(BINS, D, CTX, SPB)
    anchor(obs_of(canvas, 4))
    canvas3 = np.zeros((3, 16, D), np.float32)
    canvas3[:, 0, 0] = 0.2
    assert (anchor(obs_of(canvas3, 4))[:, 0].argmax(-1) == 0).all()


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "1"])
def test_velocity_anchor_is_validated(value):
    with pytest.raises(ValueError, match="velocity_anchor"):
        check_velocity_anchor(value)


def expressive_policy(tmp_path, levels=K, bins=BINS):
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, velocity_levels=levels,
                   velocity_bins=bins)  # fmt: skip
    torch.manual_seed(0)
    policy = make_policy("transformer", env.unwrapped.config, d_model=16, n_layers=1)
    env.close()
    return load_any_policy(save_policy(tmp_path / f"p{levels}.pt", policy))


def test_policy_fn_without_anchor_plays_as_before(tmp_path):
    policy = expressive_policy(tmp_path)
    kwargs = {"seq_len": 32, "prompt_bars": 1, "velocity_levels": K,
              "velocity_bins": policy_velocity_bins(policy).to_dict()}  # fmt: skip
    a = rollout_episodes(policy_fn(policy, seed=3), kwargs, episodes=4, num_envs=4)
    b = rollout_episodes(policy_fn(policy, seed=3, velocity_anchor=0.0), kwargs, episodes=4,
                         num_envs=4)  # fmt: skip
    np.testing.assert_array_equal(a.takes, b.takes)


def test_anchored_takes_keep_the_primers_dynamics(tmp_path):
    """A strong anchor makes each drum's composed hits play the primer's classes, while the
    same policy unanchored does not; the hits themselves stay the policy's own draws."""
    policy = expressive_policy(tmp_path)
    kwargs = {"seq_len": 32, "prompt_bars": 1, "velocity_levels": K,
              "velocity_bins": policy_velocity_bins(policy).to_dict()}  # fmt: skip

    def agreement(rollouts):
        p = rollouts.prompt_steps
        spb = 16  # the env's default steps_per_bar
        same = total = 0
        for take in rollouts.takes:
            primer = BINS.encode(take[:p])
            composed = BINS.encode(take[p:])
            for t in range(composed.shape[0]):
                for d in range(composed.shape[1]):
                    was = primer[t % spb, d]
                    if composed[t, d] and was:
                        same += composed[t, d] == was
                        total += 1
        return same / max(total, 1), total

    plain, n_plain = agreement(rollout_episodes(policy_fn(policy, seed=1), kwargs, episodes=64,
                                                num_envs=8))  # fmt: skip
    anchored, n_anchored = agreement(
        rollout_episodes(
            policy_fn(policy, seed=1, velocity_anchor=8.0), kwargs, episodes=64, num_envs=8
        )
    )
    assert n_plain > 40 and n_anchored > 40
    assert anchored > 0.9 > plain + 0.2


def test_anchor_is_refused_for_a_binary_policy(tmp_path):
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1)
    policy = make_policy("transformer", env.unwrapped.config, d_model=16, n_layers=1)
    env.close()
    with pytest.raises(ValueError, match="velocity_anchor.*binary"):
        policy_fn(policy, velocity_anchor=1.0)
    policy_fn(policy, velocity_anchor=0)  # off is fine
