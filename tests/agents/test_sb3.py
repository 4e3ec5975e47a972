import numpy as np
import pytest

from agents.baselines.sb3 import BaselineConfig, train_baseline
from agents.evaluation.rollout import random_policy, rollout_episodes


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_baseline_trains_saves_and_repeats(tmp_path, algo):
    cfg = dict(algo=algo, total_timesteps=256, num_envs=2, num_steps=32, eval_every=128,
               eval_episodes=2, tensorboard=False, seed=3)
    a = train_baseline(BaselineConfig(out=str(tmp_path / "a"), **cfg))
    b = train_baseline(BaselineConfig(out=str(tmp_path / "b"), **cfg))
    assert a.model_path.exists() and a.global_step == 256
    assert [e["step"] for e in a.evaluations] == [128.0, 256.0]
    assert -1.0 <= a.mean_song_raw <= 0.0
    assert a.evaluations == b.evaluations  # same seed, same run


def test_baseline_config_rejects_bad_values():
    with pytest.raises(ValueError, match="algo"):
        BaselineConfig(algo="dqn")
    with pytest.raises(ValueError, match="total_timesteps"):
        BaselineConfig(total_timesteps=0)


def test_rollouts_shapes_and_primer():
    r = rollout_episodes(random_policy(9, 0.2, seed=1), {"seq_len": 64, "prompt_bars": 1},
                         episodes=5, num_envs=3, seed=0)
    assert r.returns.shape == (5,) and r.sequences.shape == (5, 64, 9)
    assert np.array_equal(r.sequences[:, :16], r.references[:, :16])  # the primer
    assert np.all((r.song_raw <= 0) & (r.song_raw >= -1))
    again = rollout_episodes(random_policy(9, 0.2, seed=1), {"seq_len": 64, "prompt_bars": 1},
                             episodes=5, num_envs=3, seed=0)
    assert np.array_equal(r.sequences, again.sequences)


def test_loop_policy_repeats_the_primer_bar():
    from agents.evaluation.rollout import loop_policy

    r = rollout_episodes(loop_policy(9, 16, 16), {"seq_len": 64, "prompt_bars": 1,
                                                  "context_steps": 16},
                         episodes=4, num_envs=4, seed=3)  # fmt: skip
    primer = r.sequences[:, :16]
    for bar in range(1, 4):
        np.testing.assert_array_equal(r.sequences[:, 16 * bar: 16 * (bar + 1)], primer > 0)
    with pytest.raises(ValueError, match="context_steps >= steps_per_bar"):
        loop_policy(9, 8, 16)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_baseline_logs_episode_returns_and_evaluations_in_out_tb(tmp_path, algo):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = BaselineConfig(algo=algo, total_timesteps=1024, num_envs=2, num_steps=32,
                         eval_every=512, eval_episodes=2, seq_len=32, out=str(tmp_path / algo))
    train_baseline(cfg)
    events = list((tmp_path / algo / "tb").glob("events.out.tfevents.*"))
    assert events, "TensorBoard events belong directly in out/tb"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"rollout/ep_rew_mean", "eval/episode_return", "eval/song_raw"} <= tags, tags
    assert len(acc.Scalars("eval/episode_return")) == 2  # both evaluations were written
