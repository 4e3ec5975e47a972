"""Tests of agents/training/ppo.py: config, GAE and KL oracles, reward, training, resume, DDP."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from ddp_run import torchrun

import drum_env  # noqa: F401
from agents.policies.policy import DrumPolicy, PolicyConfig, load_policy, save_policy
from agents.training.checkpoint import load_checkpoint
from agents.training.ppo import (
    PHASES,
    PPOConfig,
    RewardWeights,
    batch_normalize,
    bernoulli_kl,
    compute_gae,
    cxx_compiler,
    epoch_normalize,
    reward_terms,
    train,
    update_config,
    update_normalizer,
    weighted_reward,
)
from drum_env.rewards import TERMS, RunningNormalizer, make_shaping

ROOT = Path(__file__).resolve().parents[2]

TINY = dict(
    num_envs=4, num_steps=16, total_timesteps=512, seq_len=32, d_model=16, n_layers=1,
    n_heads=2, progress=False, tensorboard=False, device="cpu", seed=3, anneal_lr=True,
    clip_vloss=True,
)  # fmt: skip


def tiny(tmp_path: Path, name: str = "run", **changes) -> PPOConfig:
    return PPOConfig(**{**TINY, "out": str(tmp_path / name), **changes})


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k].cpu(), b[k].cpu()), k


# ----------------------------------------------------------------------------- config


def test_config_derived_values_and_hashable():
    cfg = PPOConfig(num_envs=8, num_steps=32, num_minibatches=4, total_timesteps=10_000,
                    weights={"step": 0.5, "song": 2})  # fmt: skip
    assert (cfg.batch_size, cfg.minibatch_size, cfg.num_iterations) == (256, 64, 39)
    assert cfg.iterations(2) == 19
    assert cfg.weights == (("step", 0.5), ("song", 2.0))
    assert cfg.weight_mapping == {"step": 0.5, "song": 2.0}
    assert cfg.to_dict()["weights"] == {"step": 0.5, "song": 2.0}
    hash(cfg)
    assert update_config(cfg, learning_rate=1e-3).learning_rate == 1e-3
    assert cfg.learning_rate == 3e-4
    # the default shaping (aligned) weighs variety, not step; the given weights switch step on
    assert cfg.learnable_terms == ("step", "bar", "phrase", "section", "silence", "repetition",
                                   "variety")  # fmt: skip


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"total_timesteps": 0}, "total_timesteps"),
        ({"total_timesteps": 100}, "total_timesteps"),  # less than one batch of 16 * 64
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"gamma": 1.5}, "gamma"),
        ({"num_minibatches": 3}, "num_minibatches"),
        ({"seq_len": 40}, "seq_len"),
        ({"prompt_bars": 4}, "prompt_bars"),
        ({"shaping": "nope"}, "shaping"),
        ({"weights": {"nope": 1.0}}, "weights"),
        ({"kl_coef": 0.1}, "kl_coef"),
        ({"device": "tpu"}, "device"),
        ({"d_model": 30, "n_heads": 4}, "d_model"),
        ({"learn_weights": True, "shaping": "sparse"}, "learn_weights"),
        ({"target_kl": 0.0}, "target_kl"),
        ({"amp": "yes"}, "amp"),
        ({"compile": 1}, "compile"),
        ({"dropout": 1.0}, "dropout"),
        ({"reward_norm": "episode"}, "reward_norm"),
        ({"reward_norm": "batch", "shaping": "hierarchical-raw"}, "reward_norm"),
    ],
)
def test_config_rejects_bad_values(changes, field):
    with pytest.raises(ValueError, match=field):
        PPOConfig(**changes)


def test_update_config_unknown_key_lists_valid_ones():
    with pytest.raises(ValueError, match=r"'lr'.*valid fields.*'learning_rate'"):
        update_config(PPOConfig(), lr=1e-3)
    with pytest.raises(ValueError, match="gamma"):
        update_config(PPOConfig(), gamma=-0.1)


# ----------------------------------------------------------------------------- oracles


def test_gae_matches_per_episode_oracle_and_masks_reset_steps():
    gamma, lam = 0.9, 0.8
    # one sub-env: episode A ends at t=2, t=3 is the reset step, episode B runs t=4..5
    rewards = torch.tensor([[1.0], [2.0], [3.0], [0.0], [4.0], [5.0]])
    values = torch.tensor([[0.5], [0.4], [0.3], [9.0], [0.2], [0.1]])
    terms = torch.tensor([[False], [False], [True], [False], [False], [False]])
    valid = torch.tensor([[True], [True], [True], [False], [True], [True]])
    next_value = torch.tensor([0.7])
    adv, ret = compute_gae(rewards, values, terms, valid, next_value, gamma, lam)

    def oracle(r, v, bootstrap):
        out, last = [], 0.0
        v_next = [*v[1:], bootstrap]
        for t in reversed(range(len(r))):
            delta = r[t] + gamma * v_next[t] - v[t]
            last = delta + gamma * lam * last
            out.append(last)
        return out[::-1]

    expected = oracle([1, 2, 3], [0.5, 0.4, 0.3], 0.0) + [0.0] + oracle([4, 5], [0.2, 0.1], 0.7)
    torch.testing.assert_close(adv[:, 0], torch.tensor(expected), rtol=0, atol=1e-6)
    torch.testing.assert_close(ret, adv + values)
    assert adv[3, 0] == 0.0  # the reset step carries nothing


def test_bernoulli_kl_matches_torch():
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(5, 9, generator=g) * 3, torch.randn(5, 9, generator=g) * 3
    expected = torch.distributions.kl_divergence(
        DrumPolicy.distribution(p), DrumPolicy.distribution(q)
    )
    torch.testing.assert_close(bernoulli_kl(p, q), expected, rtol=1e-5, atol=1e-5)
    assert torch.all(bernoulli_kl(p, p).abs() < 1e-6)


@pytest.mark.parametrize("shaping, weights", [("hierarchical", None), ("bar", {"bar": 0.3}),
                                              ("hierarchical-raw", {"step": 0.7})])  # fmt: skip
def test_fixed_weight_reward_equals_env_reward(shaping, weights):
    env = gym.make_vec("DrumCompose-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       seq_len=32, prompt_bars=1, shaping=shaping, weights=weights)  # fmt: skip
    w = RewardWeights(make_shaping(shaping, weights).weight_vector)().detach().double().numpy()
    w64 = make_shaping(shaping, weights).weight_vector
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(80):  # several episodes: the normaliser moves between them
        _, reward, term, _, info = env.step(rng.integers(0, 2, (3, 9)))
        mine = weighted_reward(reward_terms(info, "norm", 3), w64)
        np.testing.assert_array_equal(mine, reward)
        np.testing.assert_allclose(weighted_reward(reward_terms(info, "norm", 3), w), reward,
                                   rtol=1e-6, atol=1e-6)  # fmt: skip
        ended += int(term.sum())
    assert ended >= 6


def test_batch_normalize_matches_oracle_over_closed_steps():
    rng = np.random.default_rng(0)
    shape = (6, 5, len(TERMS))
    raw = -rng.random(shape)
    closed = rng.random(shape) < 0.4
    closed[..., 0] = True  # a term that closes every step
    closed[..., 1] = False  # one that never closes
    closed[..., 2] = False
    closed[3, 2, 2] = True  # one that closes once
    raw = np.where(closed, raw, 0.0)
    raw[0, 0, 0] = 0.0  # closed with the value 0: still counted
    got = batch_normalize(raw, closed)
    assert got.shape == shape and got.dtype == np.float64
    assert np.all(got[~closed] == 0.0)
    for k in range(shape[-1]):
        x = raw[..., k][closed[..., k]]
        if len(x) == 0:
            continue
        expected = (x - x.mean()) / np.sqrt(x.var() + 1e-8)  # oracle: numpy's population std
        np.testing.assert_allclose(got[..., k][closed[..., k]], expected, atol=1e-12)
        if len(x) > 1:
            assert abs(got[..., k][closed[..., k]].mean()) < 1e-12
            assert got[..., k][closed[..., k]].std() == pytest.approx(1.0, abs=1e-6)
    assert got[3, 2, 2] == 0.0


def test_epoch_normalize_is_frozen_until_updated():
    rng = np.random.default_rng(1)
    shape = (4, 3, len(TERMS))
    norm = RunningNormalizer(len(TERMS))
    first = -rng.random(shape)
    closed = rng.random(shape) < 0.5
    # an empty normaliser is the identity (on closed entries), and reading does not update it
    np.testing.assert_array_equal(epoch_normalize(first, closed, norm),
                                  np.where(closed, first, 0.0))  # fmt: skip
    assert norm.count.sum() == 0
    update_normalizer(norm, first, closed)
    np.testing.assert_array_equal(norm.count, closed.sum(axis=(0, 1)))
    for k in range(len(TERMS)):
        x = first[..., k][closed[..., k]]
        assert norm.mean[k] == pytest.approx(x.mean() if len(x) else 0.0, abs=1e-12)
        if len(x) > 1:
            assert norm.var[k] == pytest.approx(x.var(), abs=1e-12)
    state = norm.state_dict()
    second = -rng.random(shape)
    got = epoch_normalize(second, np.ones(shape, bool), norm)
    assert norm.state_dict() == state
    # every row uses the same statistics: each row alone gives the same values
    for t in range(shape[0]):
        np.testing.assert_array_equal(got[t], epoch_normalize(second[t], np.ones(shape[1:], bool),
                                                              norm))  # fmt: skip
    np.testing.assert_array_equal(got, norm.normalize(second))


# ----------------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.parametrize("reward_norm", ["running", "epoch"])
def test_epoch_statistics_frozen_within_an_iteration(tmp_path, reward_norm):
    # 16 steps per episode, 40 per rollout: episodes end (and the env's running normaliser
    # updates) within the first iteration; the epoch normaliser stays empty (the identity)
    # until its end, so iteration 1's return is the weighted sum of the raw terms.
    cfg = tiny(tmp_path, reward_norm, reward_norm=reward_norm, num_steps=40,
               total_timesteps=320, seq_len=32, prompt_bars=1)  # fmt: skip
    result = train(cfg)
    w = cfg.shaping_object.weights
    first = result.history[0]
    assert first["charts/episodes"] > cfg.num_envs  # a second episode started and ended
    weighted_raw = sum(w[k] * first[f"reward/{k}"] for k in TERMS)
    if reward_norm == "epoch":
        assert first["charts/episodic_return"] == pytest.approx(weighted_raw, abs=1e-9)
        state = load_checkpoint(result.checkpoint_path)["ranks"][0]["reward_normalizer"]
        episodes = sum(row["charts/episodes"] for row in result.history)
        assert state["count"][TERMS.index("song")] == episodes  # every closed term, once
        second = result.history[1]
        assert second["charts/episodic_return"] != pytest.approx(
            sum(w[k] * second[f"reward/{k}"] for k in TERMS), abs=1e-6
        )
    else:  # the env normalises the second episodes with the first ones' statistics
        assert first["charts/episodic_return"] != pytest.approx(weighted_raw, abs=1e-6)


@pytest.mark.slow
def test_tiny_run_completes_and_repeats(tmp_path):
    a = train(tiny(tmp_path, "a", tensorboard=True, checkpoint_every=3))
    assert a.global_step == 512 and a.iterations == 8 and len(a.history) == 8
    assert a.policy_path.is_file() and a.checkpoint_path.is_file()
    assert list((tmp_path / "a" / "tb").iterdir())  # TensorBoard event file
    for row in a.history:
        for key in ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl",
                    "losses/grad_norm", "charts/SPS", "charts/learning_rate"):  # fmt: skip
            assert math.isfinite(row[key]), key
    assert -1.0 <= a.mean_song_raw <= 0.0 and math.isfinite(a.mean_episode_return)
    assert a.history[-1]["charts/learning_rate"] < a.history[0]["charts/learning_rate"]  # annealed
    assert all(row["losses/skipped_updates"] == 0 for row in a.history)  # no scaler on CPU

    state = load_checkpoint(a.checkpoint_path)
    assert state["iteration"] == 8 and state["global_step"] == 512 and state["seed"] == 3
    assert state["config"]["num_envs"] == 4
    loaded = load_policy(a.policy_path)
    assert_same_weights(loaded.state_dict(), a.policy.state_dict())
    assert_same_weights(state["model"], a.policy.state_dict())

    b = train(tiny(tmp_path, "b"))
    assert_same_weights(a.policy.state_dict(), b.policy.state_dict())
    other = train(tiny(tmp_path, "c", seed=4))
    assert not torch.equal(other.policy.policy_head.weight, a.policy.policy_head.weight)


@pytest.mark.slow
def test_a_timer_sees_every_phase_in_order_and_changes_nothing(tmp_path):
    seen: list[str] = []

    @contextlib.contextmanager
    def timer(phase: str):
        seen.append(phase)
        yield

    plain = train(tiny(tmp_path, "plain", total_timesteps=192))
    timed = train(tiny(tmp_path, "timed", total_timesteps=192), timer=timer)
    assert timed.iterations == 3 and set(seen) == set(PHASES)
    per_iteration = ["rollout", "reward", "bootstrap value", "GAE", "update", "logging"]
    assert seen == per_iteration * 2 + [*per_iteration, "checkpoint"] + ["checkpoint"]
    assert_same_weights(plain.policy.state_dict(), timed.policy.state_dict())


@pytest.mark.slow
@pytest.mark.parametrize(
    "amp, reward_norm", [(False, "running"), (True, "running"), (False, "batch"), (False, "epoch")]
)
def test_resume_is_exact(tmp_path, amp, reward_norm):
    cfg = dict(amp=amp, learn_weights=True, checkpoint_every=100, total_timesteps=640,
               reward_norm=reward_norm)  # fmt: skip
    full = train(tiny(tmp_path, "full", **cfg))

    stop_at = 4
    part = train(tiny(tmp_path, "part", **cfg), callback=lambda m: m["iteration"] < stop_at)
    assert part.iterations == stop_at
    assert load_checkpoint(part.checkpoint_path)["iteration"] == stop_at
    resumed = train(tiny(tmp_path, "part", resume=True, **cfg))
    assert resumed.iterations == full.iterations == 10
    assert_same_weights(full.policy.state_dict(), resumed.policy.state_dict())
    a = load_checkpoint(full.checkpoint_path)
    b = load_checkpoint(resumed.checkpoint_path)
    assert_same_weights(a["reward_weights"], b["reward_weights"])
    assert a["ranks"][0]["env"]["normalizer"] == b["ranks"][0]["env"]["normalizer"]
    assert a["ranks"][0]["reward_normalizer"] == b["ranks"][0]["reward_normalizer"]
    if reward_norm == "epoch":
        assert sum(a["ranks"][0]["reward_normalizer"]["count"]) > 0
    assert len(a["history"]) == len(b["history"]) == 10
    for ra, rb in zip(a["history"], b["history"]):
        assert ra.keys() == rb.keys()
        for k in ra:
            if k != "charts/SPS":  # wall-clock
                assert ra[k] == rb[k] or (math.isnan(ra[k]) and math.isnan(rb[k])), k


_CHILD = """
import sys, time, torch
torch.set_num_threads(1)
from agents.training.ppo import PPOConfig, train
cfg = PPOConfig(**{cfg!r})

def callback(metrics):
    print("iteration", int(metrics["iteration"]), flush=True)
    if metrics["iteration"] >= 2:
        time.sleep(0.3)  # leave time for the kill

train(cfg, callback=callback)
print("finished", flush=True)
"""


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    cfg = {**TINY, "total_timesteps": 64 * 12, "checkpoint_every": 1,
           "out": str(tmp_path / "killed")}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CHILD.format(cfg=cfg))], cwd=ROOT,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 4 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the training subprocess exited early"
            if line.startswith("iteration"):
                seen = int(line.split()[1])
        assert seen == 4
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")  # whole, not corrupt
    assert 3 <= state["iteration"] < 12  # killed mid-run
    assert not (tmp_path / "killed" / "policy.pt").exists()

    resumed = train(PPOConfig(**{**cfg, "resume": True}))
    full = train(PPOConfig(**{**cfg, "out": str(tmp_path / "full")}))
    assert resumed.iterations == full.iterations == 12
    assert_same_weights(full.policy.state_dict(), resumed.policy.state_dict())


def _ddp_agrees_and_resumes(tmp_path: Path, *flags: str) -> dict:
    """Run the DDP worker with ``flags`` whole, and split at iteration 2 then resumed: both
    ranks end with the same weights, and so does the split run; returns rank 0's weights."""
    torchrun(tmp_path / "full", *flags)
    r0 = torch.load(tmp_path / "full" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "full" / "rank1.pt", weights_only=True)
    assert_same_weights(r0["model"], r1["model"])
    torchrun(tmp_path / "split", *flags, "--stop-at", "2")
    torchrun(tmp_path / "split", *flags, "--resume")
    s0 = torch.load(tmp_path / "split" / "rank0.pt", weights_only=True)
    assert_same_weights(r0["model"], s0["model"])
    return r0["model"]


@pytest.mark.slow
def test_ddp_two_ranks_identical_weights_and_exact_resume(tmp_path):
    torchrun(tmp_path / "full")
    r0 = torch.load(tmp_path / "full" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "full" / "rank1.pt", weights_only=True)
    assert_same_weights(r0["model"], r1["model"])
    assert r0["global_step"] == 2 * 2 * 16 * 4 and r0["iterations"] == 4
    state = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    envs = [r["env"]["core"]["buffers"] for r in state["ranks"]]
    assert not torch.equal(envs[0]["window_ids"], envs[1]["window_ids"])  # seeds offset by rank
    assert (tmp_path / "full" / "policy.pt").is_file()
    assert not (tmp_path / "full" / "rank0").exists()

    torchrun(tmp_path / "split", "--stop-at", "2")
    torchrun(tmp_path / "split", "--resume")
    s0 = torch.load(tmp_path / "split" / "rank0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "split" / "rank1.pt", weights_only=True)
    assert_same_weights(s0["model"], s1["model"])
    assert_same_weights(r0["model"], s0["model"])


@pytest.mark.slow
def test_ddp_two_ranks_with_velocity_classes(tmp_path):
    """The expressive policy (categorical head, bins as buffers) trains under DDP: both ranks
    end with the same weights, the same bins, and a split run resumes to the same end."""
    model = _ddp_agrees_and_resumes(tmp_path, "--velocity-levels", "3")
    assert model["velocity_bin_levels"].shape == (3,)


@pytest.mark.slow
@pytest.mark.skipif(cxx_compiler() is None, reason="torch.compile on CPU needs a C++ compiler "
                                                   "($CXX, g++, c++ or clang++ on PATH)")
def test_ddp_two_ranks_with_a_compiled_update(tmp_path):
    """``compile=True`` under DDP (the compiled module wraps the DDP one): both ranks end with
    the same weights, and a split run resumes to the same end."""
    _ddp_agrees_and_resumes(tmp_path, "--compile")


@pytest.mark.slow
def test_learned_weights_move_and_stay_non_negative(tmp_path):
    # hierarchical weighs every term but variety: all of them but song and variety are learned
    result = train(tiny(tmp_path, learn_weights=True, weights_lr=0.05, total_timesteps=640,
                        seq_len=64, shaping="hierarchical"))  # fmt: skip
    first, last = result.history[0], result.history[-1]
    learned = [k for k in TERMS if k not in ("song", "variety")]
    assert all(f"weights/{k}" in last for k in TERMS)
    assert last["weights/song"] == 1.0  # the target's own weight is fixed
    moved = [k for k in learned if abs(last[f"weights/{k}"] - 1.0) > 1e-3]
    assert "step" in moved and "bar" in moved
    for row in result.history:
        assert all(row[f"weights/{k}"] >= 0.0 for k in TERMS)
        assert row["losses/weights_fit"] >= 0.0 or math.isnan(row["losses/weights_fit"])
    assert first["weights/step"] != last["weights/step"]


@pytest.mark.slow
def test_kl_penalty_to_pretrained(tmp_path):
    torch.manual_seed(123)  # another initialisation than the trainer's seed
    env_cfg = gym.make_vec("DrumCompose-v0", num_envs=1, vectorization_mode="vector_entry_point",
                           seq_len=32, prompt_bars=1).unwrapped.config  # fmt: skip
    pre = DrumPolicy(PolicyConfig.from_env_config(env_cfg, d_model=16, n_layers=1, n_heads=2))
    path = save_policy(tmp_path / "pre.pt", pre)
    result = train(tiny(tmp_path, pretrained=str(path), kl_coef=0.5, learning_rate=3e-3,
                        anneal_lr=False, total_timesteps=256))  # fmt: skip
    kls = [row["losses/kl_pretrained"] for row in result.history]
    assert kls[0] >= 0.0 and kls[-1] > 0.0 and all(math.isfinite(k) for k in kls)
    assert kls[-1] > kls[0]  # the pretrained policy initialises the weights: KL starts at 0
    # without a penalty, KL is not computed
    plain = train(tiny(tmp_path, "plain", total_timesteps=128))
    assert all(row["losses/kl_pretrained"] == 0.0 for row in plain.history)


# ----------------------------------------------------------------------------- bad input


def test_resume_missing_checkpoint_names_it(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint.pt to resume"):
        train(tiny(tmp_path, resume=True, total_timesteps=64))


def test_resume_corrupt_checkpoint_names_it(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="checkpoint.pt"):
        train(tiny(tmp_path, resume=True, total_timesteps=64))


@pytest.mark.slow
def test_resume_with_other_model_or_env_names_fields(tmp_path):
    train(tiny(tmp_path, total_timesteps=64))
    with pytest.raises(ValueError, match=r"d_model \(checkpoint 16, now 32\)"):
        train(tiny(tmp_path, resume=True, total_timesteps=128, d_model=32))
    with pytest.raises(ValueError, match="n_layers"):
        train(tiny(tmp_path, resume=True, total_timesteps=128, n_layers=2))
    with pytest.raises(ValueError, match="num_envs"):
        train(tiny(tmp_path, resume=True, total_timesteps=128, num_envs=2))
    with pytest.raises(ValueError, match="shaping"):
        train(tiny(tmp_path, resume=True, total_timesteps=128, shaping="bar"))


def test_pretrained_of_another_shape_is_refused(tmp_path):
    pre = DrumPolicy(PolicyConfig(d_model=32, n_layers=1, n_heads=2, context_steps=32,
                                  target_size=20))  # fmt: skip
    path = save_policy(tmp_path / "pre.pt", pre)
    with pytest.raises(ValueError, match="d_model"):
        train(tiny(tmp_path, pretrained=str(path), total_timesteps=64))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        train(tiny(tmp_path, pretrained=str(tmp_path / "missing.pt"), total_timesteps=64))


def test_existing_run_folder_is_refused_unless_resume_or_force(tmp_path):
    import json

    train(tiny(tmp_path, total_timesteps=64))
    with pytest.raises(ValueError, match=r"already holds a run.*--resume.*--force"):
        train(tiny(tmp_path, total_timesteps=64))
    train(tiny(tmp_path, total_timesteps=64, force=True))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["force"] is True and saved["total_timesteps"] == 64


@pytest.mark.slow
def test_resume_keeps_the_config_and_extends_the_budget(tmp_path):
    train(tiny(tmp_path, total_timesteps=128))  # 2 iterations of 64
    with pytest.raises(ValueError, match=r"learning_rate \(checkpoint 0.0003, now 0.1\)"):
        train(tiny(tmp_path, resume=True, total_timesteps=256, learning_rate=0.1))
    with pytest.raises(ValueError, match=r"seed .*num_steps|num_steps .*seed"):
        train(tiny(tmp_path, resume=True, total_timesteps=256, num_steps=32, seed=9))
    with pytest.raises(ValueError, match="raise --total-timesteps to extend it"):
        train(tiny(tmp_path, resume=True, total_timesteps=64))
    longer = train(tiny(tmp_path, resume=True, total_timesteps=256))
    assert longer.global_step == 256 and longer.iterations == 4
    # never an iteration at lr 0
    assert all(row["charts/learning_rate"] > 0 for row in longer.history)


def test_a_checkpoint_from_before_the_compile_field_resumes(tmp_path):
    """0.3.0 checkpoints have no ``compile`` in their config: they resume as compile=False."""
    from agents.training.checkpoint import atomic_torch_save

    first = train(tiny(tmp_path, total_timesteps=128))
    state = load_checkpoint(first.checkpoint_path)
    del state["config"]["compile"]
    atomic_torch_save(state, first.checkpoint_path)
    with pytest.raises(ValueError, match=r"compile \(checkpoint False, now True\)"):
        train(tiny(tmp_path, resume=True, total_timesteps=256, compile=True))
    longer = train(tiny(tmp_path, resume=True, total_timesteps=256))
    assert longer.global_step == 256 and longer.iterations == 4


# ----------------------------------------------------------------------------- the MLP policy


def test_policy_kind_is_validated_and_mlp_refuses_a_pretrained_transformer():
    with pytest.raises(ValueError, match=r"policy_kind must be one of \['transformer', 'mlp'\]"):
        PPOConfig(policy_kind="gru")
    with pytest.raises(ValueError, match=r"pretrained=.*Transformer.*policy_kind='mlp'"):
        PPOConfig(policy_kind="mlp", pretrained="pre.pt")
    assert PPOConfig().policy_kind == "transformer"
    assert PPOConfig(policy_kind="mlp").to_dict()["policy_kind"] == "mlp"


@pytest.mark.slow
def test_mlp_run_repeats_resumes_exactly_and_plays(tmp_path):
    from agents.evaluation.generate import GenerateConfig, generate
    from agents.evaluation.rollout import load_any_policy, policy_fn, rollout_episodes
    from agents.policies.policy import MLPPolicy

    cfg = dict(policy_kind="mlp", total_timesteps=640, checkpoint_every=100, learn_weights=True)
    full = train(tiny(tmp_path, "full", **cfg))
    assert isinstance(full.policy, MLPPolicy) and full.iterations == 10
    assert all(math.isfinite(row["losses/policy_loss"]) for row in full.history)
    again = train(tiny(tmp_path, "again", **cfg))
    assert_same_weights(full.policy.state_dict(), again.policy.state_dict())
    part = train(tiny(tmp_path, "part", **cfg), callback=lambda m: m["iteration"] < 4)
    assert part.iterations == 4
    resumed = train(tiny(tmp_path, "part", resume=True, **cfg))
    assert_same_weights(full.policy.state_dict(), resumed.policy.state_dict())
    with pytest.raises(ValueError, match="policy_kind"):  # a resume keeps the policy kind
        train(tiny(tmp_path, "part", resume=True, **{**cfg, "policy_kind": "transformer",
                                                     "total_timesteps": 704}))  # fmt: skip

    # the policy file and the checkpoint both load as the MLP and play (drum-env generate)
    for path in (full.policy_path, full.checkpoint_path):
        policy = load_any_policy(path)
        assert isinstance(policy, MLPPolicy)
        assert_same_weights(policy.state_dict(), full.policy.state_dict())
    rollouts = rollout_episodes(policy_fn(load_policy(full.policy_path)),
                                tiny(tmp_path).env_kwargs(), episodes=2)  # fmt: skip
    assert rollouts.returns.shape == (2,) and np.isfinite(rollouts.returns).all()
    taken = generate(GenerateConfig(policy=str(full.policy_path), out=str(tmp_path / "takes"),
                                    num=2, seq_len=32, prompt_bars=1))  # fmt: skip
    assert len(taken.files) >= 6


@pytest.mark.slow
@pytest.mark.skipif(cxx_compiler() is None, reason="torch.compile on CPU needs a C++ compiler "
                                                   "($CXX, g++, c++ or clang++ on PATH)")
def test_compiled_update_computes_the_eager_update_and_resumes_exactly(tmp_path, monkeypatch):
    compiled_modules = []

    def spy(model, *args, **kwargs):
        compiled_modules.append(type(model).__name__)
        return real_compile(model, *args, **kwargs)

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", spy)
    # one iteration from the same seed: the same rollout, the same update up to rounding
    eager = train(tiny(tmp_path, "eager", total_timesteps=64))
    assert compiled_modules == []
    compiled = train(tiny(tmp_path, "compiled", total_timesteps=64, compile=True))
    assert compiled_modules == ["ActorCritic"]  # the update's model, not the rollout's policy
    ours = compiled.policy.state_dict()
    assert ours.keys() == eager.policy.state_dict().keys()  # the saved policy is the plain one
    for key, value in eager.policy.state_dict().items():
        torch.testing.assert_close(ours[key], value, rtol=1e-4, atol=1e-5)
    assert compiled.history[0]["losses/policy_loss"] == pytest.approx(
        eager.history[0]["losses/policy_loss"], rel=1e-4, abs=1e-6
    )

    cfg = dict(compile=True, total_timesteps=256, checkpoint_every=100)
    full = train(tiny(tmp_path, "full", **cfg))
    part = train(tiny(tmp_path, "part", **cfg), callback=lambda m: m["iteration"] < 2)
    assert part.iterations == 2
    with pytest.raises(ValueError, match="compile"):  # a resume keeps the setting
        train(tiny(tmp_path, "part", resume=True, **{**cfg, "compile": False}))
    resumed = train(tiny(tmp_path, "part", resume=True, **cfg))
    assert_same_weights(full.policy.state_dict(), resumed.policy.state_dict())


def test_compile_without_a_cxx_compiler_is_refused_before_the_run(tmp_path, monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match=r"compile=True: .*C\+\+ compiler.*without --compile"):
        train(tiny(tmp_path, "nocxx", total_timesteps=64, compile=True))
    assert not (tmp_path / "nocxx").exists()  # the run folder was not claimed


def test_transformer_run_refuses_a_pretrained_mlp(tmp_path):
    from agents.policies.policy import MLPPolicy, MLPPolicyConfig

    env_cfg = gym.make_vec("DrumCompose-v0", num_envs=1, vectorization_mode="vector_entry_point",
                           seq_len=32, prompt_bars=1).unwrapped.config  # fmt: skip
    path = save_policy(tmp_path / "mlp.pt", MLPPolicy(MLPPolicyConfig.from_env_config(env_cfg)))
    with pytest.raises(ValueError, match="mlp.pt.*holds an mlp policy"):
        train(tiny(tmp_path, pretrained=str(path), total_timesteps=64))


def test_a_refused_resume_leaves_config_json_alone(tmp_path):
    import json

    train(tiny(tmp_path, total_timesteps=64))
    before = json.loads((tmp_path / "run" / "config.json").read_text())
    with pytest.raises(ValueError, match="learning_rate"):
        train(tiny(tmp_path, resume=True, total_timesteps=128, learning_rate=0.1))
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == before
