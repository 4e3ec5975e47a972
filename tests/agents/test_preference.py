"""Preference fine-tuning (agents.training.preference): online DPO on the policy's own takes.

What a user relies on: the loss is DPO's (log 2 at the reference, falling as the policy prefers
the winners more than the reference does); a pair is the best and the worst take of one primer;
the takes of a group share their primer and differ only by the policy's draws; a take's
log-probability is the sum of its steps' as the trainer computes them; a run moves the policy
towards its winners, leaves its reference alone, and repeats exactly from its seed; bad settings
are refused by name.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import drum_env  # noqa: F401
from agents.policies.policy import make_policy, obs_to_tensors
from agents.task import TaskConfig
from agents.training.preference import (
    PreferenceConfig,
    dpo_loss,
    finetune,
    play_takes,
    preference_pairs,
    take_log_probs,
)

SEQ = 32


def _env_kwargs() -> dict:
    return TaskConfig(seq_len=SEQ, whole_canvas=True).env_kwargs()


def _policy(seed: int = 0):
    torch.manual_seed(seed)
    config = gym.make("DrumCompose-v0", **_env_kwargs()).unwrapped.config
    return make_policy("transformer", config, d_model=16, n_layers=1, n_heads=2,
                       canvas_steps=SEQ).eval()  # fmt: skip


def test_dpo_loss_is_log2_at_the_reference_and_its_gradient_prefers_the_winner():
    ref_w, ref_l = torch.tensor([-5.0, -3.0]), torch.tensor([-4.0, -6.0])
    logp_w = ref_w.clone().requires_grad_(True)
    logp_l = ref_l.clone().requires_grad_(True)
    loss, accuracy = dpo_loss(logp_w, logp_l, ref_w, ref_l, beta=0.5)
    assert loss.item() == pytest.approx(math.log(2.0))
    assert accuracy.item() == 0.0  # a zero margin is not a right order
    loss.backward()
    assert (logp_w.grad < 0).all() and (logp_l.grad > 0).all()  # descent raises w, lowers l


@settings(max_examples=50, deadline=None)
@given(st.floats(-20, 20), st.floats(0.01, 5.0), st.floats(0.01, 5.0))
def test_dpo_loss_falls_as_the_policy_prefers_the_winner_more_than_the_reference(m, step, beta):
    def loss_at(margin: float) -> float:
        zero = torch.zeros(1)
        return dpo_loss(torch.tensor([margin]), zero, zero, zero, beta)[0].item()

    assert loss_at(m + step) <= loss_at(m)
    assert loss_at(m) == pytest.approx(math.log1p(math.exp(-beta * m)), rel=1e-5, abs=1e-6)


def test_pairs_are_each_groups_best_and_worst_and_ties_are_skipped():
    returns = np.array([1.0, 3.0, 2.0, -1.0,   5.0, 5.0, 5.0, 5.0,   0.0, -2.0, 0.5, 0.5])
    winners, losers = preference_pairs(returns, 4)
    assert winners.tolist() == [1, 10] and losers.tolist() == [3, 9]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**31 - 1))
def test_every_pair_is_within_one_group_and_ordered(groups, takes, seed):
    returns = np.random.default_rng(seed).integers(0, 3, groups * takes).astype(float)
    winners, losers = preference_pairs(returns, takes)
    assert (winners // takes == losers // takes).all()
    assert (returns[winners] > returns[losers]).all()
    grouped = returns.reshape(groups, takes)
    assert len(winners) == int((grouped.max(1) > grouped.min(1)).sum())


@pytest.mark.parametrize(("returns", "takes", "match"), [
    (np.zeros(5), 2, "groups of 2 takes"), (np.zeros((2, 2)), 2, "1-D"),
    (np.array([0.0, np.nan]), 2, "finite"),
])  # fmt: skip
def test_bad_returns_are_refused(returns, takes, match):
    with pytest.raises(ValueError, match=match):
        preference_pairs(returns, takes)


@pytest.mark.parametrize(("changes", "field"), [
    ({"takes": 1}, "takes"), ({"rounds": 0}, "rounds"), ({"beta": 0.0}, "beta"),
    ({"learning_rate": float("nan")}, "learning_rate"), ({"shaping": "nope"}, "shaping"),
    ({"seed": -1}, "seed"), ({"primers": True}, "primers"), ({"energy_coef": -1.0}, "energy_coef"),
])  # fmt: skip
def test_a_bad_setting_is_refused_by_name(changes, field):
    with pytest.raises(ValueError, match=rf"^{field} must"):
        PreferenceConfig(**changes)


def test_a_group_shares_its_primer_and_a_takes_log_prob_is_the_sum_of_its_steps():
    policy = _policy()
    env = gym.make_vec("DrumCompose-v0", num_envs=6, vectorization_mode="vector_entry_point",
                       **_env_kwargs())  # fmt: skip
    takes = play_takes(policy, env, 3, seed=11, generator=torch.Generator().manual_seed(0))
    env.close()
    steps = takes.actions.shape[0]
    assert takes.windows[:3].tolist() == [takes.windows[0]] * 3
    assert takes.windows[3:].tolist() == [takes.windows[3]] * 3
    first = takes.obs["context"][0]  # the primer, before any composed step
    assert np.array_equal(first[0], first[1]) and np.array_equal(first[0], first[2])
    assert not np.array_equal(takes.actions[:, 0], takes.actions[:, 1])  # the draws differ
    # the canvas at the episode's end: the primer, then what the policy played, step by step
    assert takes.canvases.shape == (6, SEQ, takes.actions.shape[-1])
    assert np.array_equal(takes.canvases[:, takes.prompt_steps:] > 0,
                          takes.actions.transpose(1, 0, 2) > 0)
    primer = takes.canvases[:, :takes.prompt_steps].reshape(6, -1)  # the latest steps, shown last
    assert np.array_equal(primer, takes.obs["context"][0][:, -primer.shape[1]:])
    index = np.array([4, 0])
    with torch.no_grad():
        summed = take_log_probs(policy, takes, index)
        for j, i in enumerate(index):
            per_step = [
                policy.evaluate_actions(
                    obs_to_tensors({k: v[t, i:i + 1] for k, v in takes.obs.items()}, "cpu"),
                    torch.as_tensor(takes.actions[t, i:i + 1]),
                )[0].item()
                for t in range(steps)
            ]
            assert summed[j].item() == pytest.approx(sum(per_step), rel=1e-4, abs=1e-4)


def test_play_takes_refuses_envs_that_are_not_whole_groups():
    env = gym.make_vec("DrumCompose-v0", num_envs=5, vectorization_mode="vector_entry_point",
                       **_env_kwargs())  # fmt: skip
    with pytest.raises(ValueError, match="5 sub-envs are not a whole number of groups of 2"):
        play_takes(_policy(), env, 2, seed=0, generator=torch.Generator())
    env.close()


def _run(seed: int = 0, **changes):
    policy = _policy()
    start = {k: v.clone() for k, v in policy.state_dict().items()}
    config = PreferenceConfig(**{"rounds": 2, "primers": 6, "takes": 3, "epochs": 4,
                                 "pairs_per_batch": 3, "learning_rate": 3e-3, "seed": seed,
                                 **changes})  # fmt: skip
    seen = []
    history = finetune(policy, _env_kwargs(), config, on_round=lambda r, p: seen.append(r))
    return policy, start, history, seen


def test_a_run_prefers_its_winners_moves_the_policy_and_repeats_from_its_seed():
    policy, start, history, seen = _run()
    assert seen == [1, 2] and [h["round"] for h in history] == [1.0, 2.0]
    for h in history:
        assert h["pairs"] >= 1
        # after 4 epochs on a round's pairs the policy orders them better than its reference
        assert h["loss"] < math.log(2.0) and h["accuracy"] > 0.5
    moved = any(not torch.equal(start[k], v) for k, v in policy.state_dict().items())
    assert moved
    again, _, history2, _ = _run()
    assert history2 == history
    for k, v in policy.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    other, _, _, _ = _run(seed=1)
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in policy.state_dict().items())


def test_the_energy_witness_changes_the_ranking_and_still_trains():
    """With ``energy_coef`` the takes are ranked by return plus the witness: other pairs than
    the return alone picks, so other weights, and the policy still learns its pairs."""
    plain, _, _, _ = _run()
    energy, _, history, _ = _run(energy_coef=50.0)
    assert all(h["loss"] < math.log(2.0) for h in history)
    assert any(not torch.equal(v, energy.state_dict()[k]) for k, v in plain.state_dict().items())
