"""Best-of-n on the held-out evaluation (agents.evaluation.best_of_n).

What a user relies on: the n draws play the same primers and references and differ only by the
policy's draws; draw 0 is what ``evaluate`` plays, so best-of-1 scores exactly as ``evaluate``
does; the kept take of an episode is the best-scored of its first n; the witness's reward is
added to the returns; bad arguments are refused by name.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import drum_env  # noqa: F401
from agents.evaluation.best_of_n import best_of, match_set, play_n, score_kept, take_scores
from agents.evaluation.heldout import (
    HeldoutConfig,
    evaluate,
    heldout_dataset,
    reference,
    write_split,
)
from agents.evaluation.rollout import policy_fn
from agents.policies.policy import DrumPolicy, PolicyConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    config = HeldoutConfig(seq_len=32, prompt_bars=1, eval_episodes=12, baseline_splits=1)
    split = write_split(config, tmp_path_factory.mktemp("split"))
    held = heldout_dataset(config, split.heldout_dir)
    kwargs = config.env_kwargs(held, shaping="aligned-raw")
    env = gym.make("DrumCompose-v0", **kwargs)
    torch.manual_seed(0)
    policy = DrumPolicy(PolicyConfig.from_env_config(env.unwrapped.config, d_model=16, n_heads=2))
    env.close()
    return config, kwargs, reference(config, held), policy


def test_draws_share_the_primers_and_draw_zero_is_what_evaluate_plays(setup):
    config, kwargs, ref, policy = setup
    draws = play_n(policy, config, kwargs, 3, temperature=0.9, seed=5)
    assert len(draws) == 3
    p = draws[0].prompt_steps
    for d in draws[1:]:
        assert np.array_equal(d.references, draws[0].references)
        assert np.array_equal(d.sequences[:, :p], draws[0].sequences[:, :p])  # the primers
    assert not np.array_equal(draws[0].sequences, draws[1].sequences)  # other action draws
    want = evaluate(policy_fn(policy, seed=5, temperature=0.9), config, kwargs, ref)
    got = score_kept(draws, np.zeros(config.eval_episodes, dtype=int), config, ref)
    assert got == (want["headline"], want["headline_se"])
    assert np.array_equal(take_scores(draws)[0], draws[0].returns)


def test_the_kept_takes_are_the_chosen_draws(setup):
    config, kwargs, ref, policy = setup
    draws = play_n(policy, config, kwargs, 2, seed=1)
    one = score_kept(draws, np.ones(config.eval_episodes, dtype=int), config, ref)
    swapped = [draws[1], draws[0]]
    assert one == score_kept(swapped, np.zeros(config.eval_episodes, dtype=int), config, ref)


def test_the_witness_reward_is_added_to_the_returns(setup):
    config, kwargs, ref, policy = setup
    draws = play_n(policy, config, kwargs, 2, seed=2)

    class Witness:  # stands in for an EnergyWitness: one reward per composed take
        def reward(self, composed):
            assert len(composed) == 2 * config.eval_episodes
            assert composed[0].shape == draws[0].sequences[0, draws[0].prompt_steps:].shape
            return np.array([float(c.sum()) for c in composed])

    p = draws[0].prompt_steps
    hits = np.array([[float((s[p:] > 0).sum()) for s in d.sequences] for d in draws])
    assert np.allclose(take_scores(draws, Witness()), take_scores(draws) + hits)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 8)),
                  elements=st.floats(-10, 10)), st.data())  # fmt: skip
def test_best_of_keeps_the_best_of_the_first_n(scores, data):
    n = data.draw(st.integers(1, len(scores)))
    kept = best_of(scores, n)
    assert kept.shape == (scores.shape[1],) and (kept < n).all()
    chosen = scores[kept, np.arange(scores.shape[1])]
    assert np.array_equal(chosen, scores[:n].max(axis=0))
    if n > 1:  # more draws never keep a worse-scored take
        assert (chosen >= scores[best_of(scores, n - 1), np.arange(scores.shape[1])]).all()


def test_bad_arguments_are_refused_by_name(setup):
    config, kwargs, _, policy = setup
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        play_n(policy, config, kwargs, 0)
    with pytest.raises(ValueError, match=r"n must be an integer in 1\.\.2"):
        best_of(np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="finite"):
        best_of(np.array([[np.nan]]), 1)


def test_match_set_moves_the_kept_set_onto_the_target():
    """Draw 1 holds takes distributed like the target and draw 0 takes far from it: matching
    the set keeps draw 1 and reaches an overlap near 1 from a start near 0."""
    rng = np.random.default_rng(0)
    target = rng.normal(0.0, 1.0, size=(400, 1))
    candidates = np.stack([rng.normal(10.0, 1.0, size=(200, 1)),
                           rng.normal(0.0, 1.0, size=(200, 1))])  # fmt: skip
    start = np.zeros(200, dtype=int)
    kept, objective = match_set(candidates, target, np.ones(1), start, passes=2)
    assert (kept == 1).mean() > 0.95
    assert objective > 0.8
    _, at_start = match_set(candidates, target, np.ones(1), start, passes=0)
    assert at_start < 0.05


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(2, 12), st.integers(1, 3), st.integers(0, 10_000))
def test_match_set_never_ends_below_its_start(n, episodes, features, seed):
    rng = np.random.default_rng(seed)
    candidates = rng.normal(size=(n, episodes, features))
    target = rng.normal(0.5, 2.0, size=(30, features))
    weights = rng.uniform(0.1, 1.0, size=features)
    start = rng.integers(0, n, size=episodes)
    _, before = match_set(candidates, target, weights, start, passes=0)
    kept, after = match_set(candidates, target, weights, start, passes=2, seed=seed)
    assert kept.shape == (episodes,) and ((0 <= kept) & (kept < n)).all()
    assert after >= before - 1e-12


def test_match_set_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="target must be"):
        match_set(np.zeros((2, 3, 2)), np.zeros((5, 3)), np.ones(2), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="start must hold one draw"):
        match_set(np.zeros((2, 3, 1)), np.zeros((5, 1)), np.ones(1), np.full(3, 2))
