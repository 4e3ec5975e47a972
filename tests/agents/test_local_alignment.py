"""Tests for the local-alignment part of agents/evaluation/alignment.py.

What a user of ``benchmarks/local_alignment.py`` relies on: the family's players sample as they
say (temperature sharpens or flattens, top-p drops unlikely hit patterns), the family's returns
are the env's, and the summary's Spearman per draw is the rank correlation a hand computes.
"""

from __future__ import annotations

import doctest

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.evaluation import alignment as al
from agents.evaluation.heldout import HeldoutConfig, heldout_dataset, write_split
from drum_env.rewards import SHAPINGS, TERMS, RunningNormalizer


def _env_kwargs() -> dict:
    return HeldoutConfig(shaping="aligned-raw").env_kwargs()


def _fresh_policy(hit_rate: float):
    """A fresh (untrained) Transformer policy: every drum near ``hit_rate``, i.e. rare hits."""
    from agents.policies.policy import make_policy

    env = gym.make("DrumCompose-v0", **_env_kwargs())
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return make_policy("transformer", env.unwrapped.config, init_hit_rate=hit_rate)
    finally:
        env.close()


def _composed_hits(player: al.PlayerFactory, episodes: int = 8) -> int:
    ep = al.play_episodes(player, _env_kwargs(), episodes, seed=4)
    return int(ep.canvases[:, ep.prompt_steps :].sum())


def test_doctests():
    assert doctest.testmod(al, verbose=False).failed == 0


# --------------------------------------------------------------------------- top-p


def test_top_p_keeps_the_likeliest_patterns_hand_worked():
    rng = np.random.default_rng(0)
    # two drums at 0.5: four patterns of 0.25 each; top_p 0.5 keeps the first two in the
    # stable order of equals, (0, 0) and (1, 0): drum 1 never hits, drum 0 half the time
    draws = al.sample_top_p(np.full((20_000, 2), 0.5), 0.5, rng)
    assert not draws[:, 1].any()
    assert draws[:, 0].mean() == pytest.approx(0.5, abs=0.02)
    # (1, 0) holds 0.81 >= 0.75 alone: always played
    assert al.sample_top_p(np.array([[0.9, 0.1]] * 50), 0.75, rng).tolist() == [[True, False]] * 50
    # 0.81 and 0.90 < 0.95: (0, 0) and (1, 1) (0.09 each) join; sampled as 0.81 : 0.09 : 0.09
    draws = al.sample_top_p(np.array([[0.9, 0.1]] * 30_000), 0.95, rng)
    assert not (~draws[:, 0] & draws[:, 1]).any()  # (0, 1), the least likely, dropped
    assert (draws[:, 0] & ~draws[:, 1]).mean() == pytest.approx(0.81 / 0.99, abs=0.01)


def test_top_p_of_one_is_plain_independent_sampling():
    p = np.array([0.05, 0.3, 0.6, 0.95])
    draws = al.sample_top_p(np.tile(p, (40_000, 1)), 1.0, np.random.default_rng(1))
    np.testing.assert_allclose(draws.mean(axis=0), p, atol=0.01)
    both = (draws[:, 1] & draws[:, 2]).mean()  # independence kept
    assert both == pytest.approx(0.3 * 0.6, abs=0.01)


@pytest.mark.parametrize(
    "probs, top_p, match",
    [
        (np.full((2, 3), 0.5), 0.0, "top_p"),
        (np.full((2, 3), 0.5), 1.5, "top_p"),
        (np.full((2, 3), 0.5), True, "top_p"),
        (np.full((2, 3), 1.5), 0.9, r"\[0, 1\]"),
        (np.full((2, 3, 1), 0.5), 0.9, "shape"),
        (np.full((2, 17), 0.5), 0.9, "D <= 16"),
    ],
)  # fmt: skip
def test_top_p_bad_input_named(probs, top_p, match):
    with pytest.raises(ValueError, match=match):
        al.sample_top_p(probs, top_p, np.random.default_rng(0))


# --------------------------------------------------------------------------- policy players


def test_temperature_below_one_plays_fewer_unlikely_hits_than_above():
    """Every drum of a fresh policy hits with p near 0.1 (unlikely): T < 1 sharpens those p
    towards 0, T > 1 flattens them towards 1/2."""
    policy = _fresh_policy(0.1)
    cold = _composed_hits(al.policy_player(policy, temperature=0.6))
    plain = _composed_hits(al.policy_player(policy))
    hot = _composed_hits(al.policy_player(policy, temperature=1.4))
    assert cold < plain < hot
    assert hot > 2 * cold


def test_top_p_player_drops_rare_hits():
    """At p = 0.02 per drum, silence holds 0.98**9 = 0.83 of a step's mass: top-p 0.5 plays
    only silence, plain sampling does not."""
    policy = _fresh_policy(0.02)
    assert _composed_hits(al.policy_player(policy, top_p=0.5)) == 0
    assert _composed_hits(al.policy_player(policy)) > 0
    a = al.play_episodes(al.policy_player(policy, top_p=0.95), _env_kwargs(), 4, seed=2)
    b = al.play_episodes(al.policy_player(policy, top_p=0.95), _env_kwargs(), 4, seed=2)
    np.testing.assert_array_equal(a.canvases, b.canvases)  # seeded


def test_policy_player_bad_input_named():
    policy = _fresh_policy(0.1)
    with pytest.raises(ValueError, match="top_p"):
        al.policy_player(policy, top_p=0.0)
    with pytest.raises(ValueError, match="deterministic"):
        al.policy_player(policy, deterministic=True, top_p=0.9)
    with pytest.raises(ValueError, match="temperature"):
        al.play_episodes(al.policy_player(policy, temperature=0.0), _env_kwargs(), 4, seed=0)


# --------------------------------------------------------------------------- the summary


def _constructed_play() -> al.FamilyPlay:
    """Four players, two draws; returns under ``aligned-raw`` are the ``song`` sums (weight 1)
    plus three times the ``variety`` sums."""
    song, variety = TERMS.index("song"), TERMS.index("variety")
    raw = np.zeros((2, 4, len(TERMS)))
    raw[0, :, song] = [-0.4, -0.3, -0.2, -0.1]  # draw 0: ranks 0 1 2 3
    raw[1, :, song] = [-0.4, -0.2, -0.3, -0.1]  # draw 1: one swap
    raw[:, :, variety] = [0.0, 0.0, 0.0, -0.5]  # costs the last player 1.5 on both draws
    heads = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    return al.FamilyPlay(
        ("a", "b", "c", "d"), (1, 2), heads, raw, 2 * raw, ("song", "variety"),
        RunningNormalizer(len(TERMS)), 4, ("density",), "constructed",
    )  # fmt: skip


def test_local_summary_spearman_hand_worked():
    play = _constructed_play()
    s = al.local_summary(play, "aligned-raw")
    # returns draw 0: -0.4 -0.3 -0.2 -1.6 -> ranks 1 2 3 0 vs 0 1 2 3: 1 - 6 * 12 / 60 = -0.2
    # draw 1: -0.4 -0.2 -0.3 -1.6 -> ranks 1 3 2 0: 1 - 6 * 14 / 60 = -0.4
    assert s.spearman_raw == pytest.approx((-0.2, -0.4))
    assert s.spearman_norm == pytest.approx((-0.2, -0.4))  # norm = 2 * raw: same ranks
    assert s.terms["song"] == pytest.approx((1.0, 0.8))
    # variety: -0.5 for d, 0 for the rest (ties at average rank 2): d last, best headline
    assert s.terms["variety"][0] == pytest.approx(-np.sqrt(0.6))
    assert set(s.terms) == {"song", "variety"}
    assert (s.most_rewarded, s.best_scored) == ("b", "d")
    assert s.worst == pytest.approx(-0.4) and not s.aligned()
    song_only = al.local_summary(play, "sparse")  # song weight 1 only
    assert song_only.spearman_raw == pytest.approx((1.0, 0.8))
    assert song_only.aligned(0.8) and not song_only.aligned(0.9)
    # each draw's Spearman is the module's spearman of the weighted sums
    for d in range(2):
        ret = play.raw[d] @ SHAPINGS["aligned-raw"].weight_vector
        assert s.spearman_raw[d] == pytest.approx(al.spearman(ret, play.headlines[d]))
    # a subset of players
    sub = al.local_summary(play, "aligned-raw", players=("a", "b", "c"))
    assert sub.spearman_raw == pytest.approx((1.0, 0.5))


def test_local_summary_bad_input_named():
    play = _constructed_play()
    with pytest.raises(ValueError, match=r"\['zz'\] were not played"):
        al.local_summary(play, "aligned", players=("a", "b", "zz"))
    with pytest.raises(ValueError, match="at least 3"):
        al.local_summary(play, "aligned", players=("a", "b"))
    with pytest.raises(ValueError, match="unknown shaping"):
        al.local_summary(play, "nope")


def test_play_family_returns_are_the_players_returns(tmp_path):
    """The family's mean term sums give each player's mean return, raw and normalised, and the
    real continuation's headline is 1 (it is the reference set)."""
    players = {"real": al.real_continuation(), "loop": al.loop_primer(), "quiet": al.silence()}
    config = HeldoutConfig()
    split = write_split(config, tmp_path)
    play = al.play_family(players, config, episodes=6, seeds=(3, 8), split=split)
    assert play.raw.shape == play.norm.shape == (2, 3, len(TERMS))
    assert "metrics" in play.closed_terms and "bar_velocity" not in play.closed_terms
    np.testing.assert_allclose(play.headlines[:, 0], 1.0)
    w = SHAPINGS["aligned"].weight_vector
    kw = config.env_kwargs(data=heldout_dataset(config, split.heldout_dir))
    for d, seed in enumerate((3, 8)):
        eps = al.play_episodes(players["loop"], kw, 6, seed)
        np.testing.assert_allclose(play.raw[d, 1] @ w, al.episode_returns(eps, SHAPINGS["aligned"]
                                                                          ).mean())  # fmt: skip
        np.testing.assert_allclose(
            play.norm[d, 1] @ w, al.episode_returns(eps, SHAPINGS["aligned"], play.normalizer
                                                    ).mean())  # fmt: skip
    s = al.local_summary(play, "aligned")
    assert s.spearman_raw == pytest.approx((1.0, 1.0)) and s.best_scored == "real"


def test_play_family_bad_input_named():
    two = {"real": al.real_continuation(), "quiet": al.silence()}
    with pytest.raises(ValueError, match="at least 3 players"):
        al.play_family(two, episodes=4, seeds=(1,))
    three = {**two, "loop": al.loop_primer()}
    with pytest.raises(ValueError, match="episodes must be >= 4"):
        al.play_family(three, episodes=2, seeds=(1,))
    with pytest.raises(ValueError, match="seeds"):
        al.play_family(three, episodes=4, seeds=())
