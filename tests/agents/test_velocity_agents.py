"""Velocity classes on the learning side (``velocity_levels = K > 0``): the categorical head,
its maths, checkpoints with bins, pretraining on classes, PPO, the rollout adapters, SB3 and
generation. The binary (K = 0) behaviour is covered by the other tests of this folder."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from agents.policies.policy import (
    ActionDist,
    DrumPolicy,
    MLPPolicy,
    MLPPolicyConfig,
    PolicyConfig,
    action_dist,
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    load_policy,
    make_policy,
    obs_to_tensors,
    policy_velocity_bins,
    save_policy,
)
from dataset.velocity import VelocityBins

K = 3
BINS = VelocityBins(np.array([0.4, 0.7]), np.array([0.25, 0.55, 0.9], np.float32))
SMALL = PolicyConfig(
    num_drums=5, context_steps=8, steps_per_bar=4, bars_per_phrase=2, target_size=7,
    d_model=16, n_layers=2, n_heads=2, velocity_levels=K,
)  # fmt: skip
MLP = MLPPolicyConfig(num_drums=5, context_steps=8, steps_per_bar=4, bars_per_phrase=2,
                      target_size=7, hidden_sizes=(16,), velocity_levels=K)  # fmt: skip


def fresh(config=SMALL, seed: int = 0, bins=BINS):
    torch.manual_seed(seed)
    return (DrumPolicy if isinstance(config, PolicyConfig) else MLPPolicy)(config, bins)


def observations(config, b: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Env-style observations: context velocities in [0, 1], one-hot positions, targets."""
    g = torch.Generator().manual_seed(seed)
    hits = torch.rand(b, config.context_steps, config.num_drums, generator=g) < 0.3
    context = (hits * torch.rand(hits.shape, generator=g)).reshape(b, -1)
    phase = torch.randint(config.steps_per_bar * config.bars_per_phrase, (b,), generator=g)
    spb = config.steps_per_bar
    position = torch.zeros(b, config.position_size)
    position[torch.arange(b), phase % spb] = 1.0
    position[torch.arange(b), spb + phase // spb] = 1.0
    target = torch.rand(b, config.target_size, generator=g)
    return {"context": context, "position": position, "target": target}


def random_logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2


# ----------------------------------------------------------------------------- the head


@pytest.mark.parametrize("config", [SMALL, MLP], ids=["transformer", "mlp"])
def test_categorical_head_shapes_and_int_actions(config):
    policy = fresh(config)
    obs = observations(config, 16)
    out = policy.forward_obs(obs)
    assert out.logits.shape == (16, 5, K + 1) and out.logits.dtype == torch.float32
    with torch.no_grad():
        a1, lp1, v1 = policy.act(obs, generator=torch.Generator().manual_seed(7))
        a2, lp2, _ = policy.act(obs, generator=torch.Generator().manual_seed(7))
        a3, _, _ = policy.act(obs, generator=torch.Generator().manual_seed(8))
    assert a1.shape == (16, 5) and a1.dtype == torch.int64
    assert int(a1.min()) >= 0 and int(a1.max()) <= K
    assert torch.equal(a1, a2) and torch.equal(lp1, lp2) and not torch.equal(a1, a3)
    assert lp1.shape == (16,) and v1.shape == (16,)
    if isinstance(config, PolicyConfig):  # the whole-window pass has the class axis too
        steps = obs["context"].reshape(16, config.context_steps, 5)
        full = policy(steps, torch.zeros(16, dtype=torch.long), obs["target"])
        assert full.logits.shape == (16, config.context_steps, 5, K + 1)


@pytest.mark.parametrize("config", [SMALL, MLP], ids=["transformer", "mlp"])
def test_log_prob_and_entropy_are_sums_of_per_drum_categoricals(config):
    policy = fresh(config)
    obs = observations(config, 8)
    with torch.no_grad():
        actions, act_log_prob, act_value = policy.act(obs, generator=torch.Generator())
    log_prob, entropy, value = policy.evaluate_actions(obs, actions)
    logits = policy.forward_obs(obs).logits
    manual_lp = sum(torch.distributions.Categorical(logits=logits[:, d]).log_prob(actions[:, d])
                    for d in range(5))  # fmt: skip
    manual_h = sum(torch.distributions.Categorical(logits=logits[:, d]).entropy()
                   for d in range(5))  # fmt: skip
    torch.testing.assert_close(log_prob, manual_lp)
    torch.testing.assert_close(entropy, manual_h)
    torch.testing.assert_close(log_prob.detach(), act_log_prob)
    torch.testing.assert_close(value.detach(), act_value)
    dist = policy.distribution(logits)
    torch.testing.assert_close(dist.log_prob(actions), log_prob)
    # the same classes as another dtype (a numpy int8 buffer) give the same numbers
    torch.testing.assert_close(policy.evaluate_actions(obs, actions.to(torch.int8))[0], log_prob)
    log_prob.sum().backward()  # differentiable for the PPO update
    assert policy.policy_head.weight.grad is not None


def test_fresh_head_plays_at_its_init_hit_rate_spread_over_the_classes():
    policy = DrumPolicy(dataclasses.replace(SMALL, init_hit_rate=0.2, n_layers=1))
    probs = torch.softmax(policy.forward_obs(observations(SMALL, 4)).logits, -1)
    expected = torch.tensor([0.8] + [0.2 / K] * K).expand_as(probs)
    torch.testing.assert_close(probs, expected, atol=0.01, rtol=0)


def test_deterministic_act_plays_the_most_likely_class():
    policy = fresh()
    with torch.no_grad():
        bias = torch.full((5, K + 1), -4.0)
        bias[torch.arange(5), torch.tensor([0, 1, 2, 3, 1])] = 4.0
        policy.policy_head.bias.copy_(bias.reshape(-1))
        actions, log_prob, _ = policy.act(observations(SMALL, 3), deterministic=True)
    assert torch.equal(actions, torch.tensor([[0, 1, 2, 3, 1]]).expand(3, -1))
    assert (log_prob > math.log(0.9)).all()


def test_categorical_head_under_autocast_gives_float32_maths():
    policy = fresh(dataclasses.replace(SMALL, d_model=32))
    obs = observations(SMALL, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actions, log_prob, _ = policy.act(obs, generator=torch.Generator().manual_seed(0))
        lp, ent, value = policy.evaluate_actions(obs, actions)
    assert actions.dtype == torch.int64 and value.dtype == torch.float32
    assert log_prob.dtype == lp.dtype == ent.dtype == torch.float32
    (lp.sum() + ent.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters() if p.grad is not None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_categorical_head_on_cuda_with_bins_and_fp16_autocast():
    policy = fresh().cuda()
    assert policy.velocity_bins == BINS  # the bins' buffers move with the module
    obs = {k: v.cuda() for k, v in observations(SMALL, 4).items()}
    with torch.autocast("cuda", dtype=torch.float16), torch.no_grad():
        a1, lp, _ = policy.act(obs, generator=torch.Generator(device="cuda").manual_seed(0))
        a2, _, _ = policy.act(obs, generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(a1, a2) and a1.dtype == torch.int64 and lp.dtype == torch.float32


def test_categorical_kernels_match_torch():
    logits, other = random_logits(64, 9, K + 1), random_logits(64, 9, K + 1, seed=1)
    actions = torch.randint(K + 1, (64, 9), generator=torch.Generator().manual_seed(2))
    p = torch.distributions.Independent(torch.distributions.Categorical(logits=logits), 1)
    q = torch.distributions.Independent(torch.distributions.Categorical(logits=other), 1)
    torch.testing.assert_close(categorical_log_prob(logits, actions), p.log_prob(actions))
    torch.testing.assert_close(categorical_entropy(logits), p.entropy())
    torch.testing.assert_close(categorical_kl(logits, other),
                               torch.distributions.kl_divergence(p, q))  # fmt: skip


def test_kl_is_zero_for_identical_policies_and_positive_otherwise():
    dist = action_dist(K)
    logits = random_logits(32, 5, K + 1)
    assert torch.equal(dist.kl(logits, logits), torch.zeros(32))
    assert (dist.kl(logits, random_logits(32, 5, K + 1, seed=1)) > 0).all()
    # the logits of two fresh policies of different seeds differ, so their KL is positive
    a, b = fresh(seed=0), fresh(seed=1)
    obs = observations(SMALL, 8)
    with torch.no_grad():
        la, lb = a.forward_obs(obs).logits, b.forward_obs(obs).logits
    assert (dist.kl(la, lb) > 0).all() and torch.equal(dist.kl(la, la), torch.zeros(8))


def test_action_dist_is_chosen_by_velocity_levels():
    assert fresh().action_dist == ActionDist(K) and fresh().action_dist.action_dtype == torch.int64
    binary = DrumPolicy(dataclasses.replace(SMALL, velocity_levels=0))
    assert binary.action_dist == ActionDist(0) and binary.velocity_bins is None
    assert binary.policy_head.out_features == 5  # the binary head: D logits, as always
    assert not any(k.startswith("velocity_bin") for k in binary.state_dict())
    with pytest.raises(ValueError, match="velocity_levels"):
        action_dist(-1)


@pytest.mark.parametrize("value", [-1, 128, 1.5, True, "3"])
def test_velocity_levels_is_validated_naming_the_field(value):
    with pytest.raises(ValueError, match="velocity_levels"):
        PolicyConfig(velocity_levels=value)
    with pytest.raises(ValueError, match="velocity_levels"):
        MLPPolicyConfig(velocity_levels=value)


def test_bins_must_fit_the_levels():
    with pytest.raises(ValueError, match="velocity_levels=3"):
        DrumPolicy(SMALL, VelocityBins.uniform(2))
    with pytest.raises(ValueError, match="velocity_levels=0"):
        DrumPolicy(dataclasses.replace(SMALL, velocity_levels=0), BINS)
    assert DrumPolicy(SMALL).velocity_bins == VelocityBins.uniform(K)  # until loaded
    assert DrumPolicy(SMALL, BINS.to_dict()).velocity_bins == BINS


def test_make_policy_takes_levels_and_bins_from_the_env_config():
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, velocity_levels=K)
    cfg = env.unwrapped.config
    for kind in ("transformer", "mlp"):
        policy = make_policy(kind, cfg)
        assert policy.config.velocity_levels == K and policy.config.target_size == cfg.target_size
        assert policy.velocity_bins == cfg.velocity_bins
        obs, _ = env.reset(seed=0)
        with torch.no_grad():
            actions, _, _ = policy.act(obs_to_tensors(obs, "cpu"))
        assert env.action_space.contains(actions[0].numpy())
    env.close()


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("config", [SMALL, MLP], ids=["transformer", "mlp"])
def test_save_load_round_trip_keeps_levels_and_bins(tmp_path: Path, config):
    policy = fresh(config)
    path = save_policy(tmp_path / "p.pt", policy)
    loaded = load_policy(path)
    assert loaded.config == policy.config and loaded.config.velocity_levels == K
    assert loaded.velocity_bins == BINS and policy_velocity_bins(path) == BINS
    assert policy_velocity_bins(loaded) == BINS
    obs = observations(config, 4)
    assert torch.equal(policy.forward_obs(obs).logits, loaded.forward_obs(obs).logits)
    # the file is plain tensors and data: weights_only loading, bins exact
    payload = torch.load(path, weights_only=True)
    assert payload["state_dict"]["velocity_bin_edges"].dtype == torch.float64
    np.testing.assert_array_equal(payload["state_dict"]["velocity_bin_levels"].numpy(), BINS.levels)


def test_a_file_without_velocity_levels_loads_as_binary(tmp_path: Path):
    binary = DrumPolicy(dataclasses.replace(SMALL, velocity_levels=0))
    path = save_policy(tmp_path / "old.pt", binary)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["velocity_levels"]  # as files written before velocities existed
    torch.save(payload, path)
    loaded = load_policy(path)
    assert loaded.config.velocity_levels == 0 and loaded.velocity_bins is None
    assert policy_velocity_bins(path) is None


def test_other_levels_are_named_on_load(tmp_path: Path):
    path = save_policy(tmp_path / "p.pt", fresh())
    with pytest.raises(ValueError, match="velocity_levels: checkpoint has 3, expected 0"):
        load_policy(path, expected=dataclasses.replace(SMALL, velocity_levels=0))
    payload = torch.load(path, weights_only=True)
    payload["config"]["velocity_levels"] = 2  # tensors of a 3-level head
    torch.save(payload, path)
    with pytest.raises(ValueError, match="velocity_levels: tensors have 3, config has 2"):
        load_policy(path)


# ----------------------------------------------------------------------------- pretraining


def test_next_step_loss_is_the_per_drum_cross_entropy_over_classes():
    from agents.training.pretrain import next_step_loss

    policy = fresh()
    g = torch.Generator().manual_seed(0)
    values = (torch.rand(3, 6, 5, generator=g) < 0.4) * torch.rand(3, 6, 5, generator=g)
    classes = torch.from_numpy(BINS.encode(values.numpy()))
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 4:] = False
    target = torch.rand(3, 7, generator=g)
    loss, count = next_step_loss(policy, values, mask, target, classes=classes)
    logits = policy(values[:, :-1], torch.full((3,), 5 % 8), target).logits
    ce = torch.nn.functional.cross_entropy(logits.permute(0, 3, 1, 2), classes[:, 1:],
                                           reduction="none").mean(-1)  # fmt: skip
    valid = mask[:, 1:].float()
    torch.testing.assert_close(loss, (ce * valid).sum() / valid.sum())
    assert int(count) == 13
    with pytest.raises(ValueError, match="classes"):
        next_step_loss(policy, values, mask, target)


def test_shown_values_keep_the_primer_and_quantize_the_rest():
    from agents.training.pretrain import shown_values

    values = torch.tensor([[[0.3, 0.0], [0.8, 0.5], [0.45, 0.0], [0.0, 0.95]]])
    shown = shown_values(values, BINS, prompt_steps=2)
    assert torch.equal(shown[:, :2], values[:, :2])
    levels = BINS.levels  # 0.45 is in bin 2, 0.95 in bin 3
    np.testing.assert_array_equal(shown[0, 2:].numpy(), [[levels[1], 0.0], [0.0, levels[2]]])


def test_window_targets_equal_the_expressive_env_target_observation():
    from agents.training.pretrain import shown_values, window_targets

    env = gym.make("DrumCompose-v0", seq_len=64, prompt_bars=1, velocity_levels=K)
    core, bins = env.unwrapped, env.unwrapped.config.velocity_bins
    for window in (0, 5):
        obs, _ = env.reset(seed=0, options={"window": window})
        values = torch.from_numpy(core.data.stack_values(np.array([window]), 64))
        shown = shown_values(values, bins, prompt_steps=16)
        target = window_targets(values, torch.tensor([64]), 16, 4, shown)
        np.testing.assert_array_equal(target[0].numpy(), obs["target"])
    env.close()


FAST = {"seq_len": 64, "batch_size": 16, "d_model": 32, "n_layers": 1, "n_heads": 4,
        "max_steps": 30,
        "learning_rate": 2e-3, "progress": False, "log_every": 10,
        "velocity_levels": K}  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from agents.training.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(1)
    return pretrain(PretrainConfig(**FAST, out=str(tmp_path_factory.mktemp("pre"))))


def test_pretraining_on_classes_lowers_the_loss_and_saves_the_data_bins(pretrained):
    from dataset.synthetic import default_corpus

    losses = pretrained.losses
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05, (losses[:5], losses[-5:])
    policy = load_policy(pretrained.policy_path)
    assert policy.config.velocity_levels == K
    assert policy.velocity_bins == VelocityBins.from_data(default_corpus(), K)
    # it fits the expressive env of the same task and acts there
    env = gym.make("DrumCompose-v0", seq_len=64, prompt_bars=1, velocity_levels=K)
    expected = PolicyConfig.from_env_config(env.unwrapped.config, d_model=32, n_heads=4)
    assert load_policy(pretrained.policy_path, expected=expected).config == policy.config
    assert env.unwrapped.config.velocity_bins == policy.velocity_bins
    env.close()


def test_validation_on_classes_uses_the_training_bins(tmp_path: Path):
    """The bins come from data alone; the validation loss is measured with them."""
    from agents.training.pretrain import PretrainConfig, pretrain, validation_loss
    from dataset.loader import get_complete_rl_dataloader
    from dataset.synthetic import default_corpus

    seqs = default_corpus()
    train_rows = seqs[:48]
    val_rows = [np.where(s > 0, 1.0, 0.0).astype(np.float32) for s in seqs[48:]]  # loud
    for part, rows in (("train", train_rows), ("val", val_rows)):
        (tmp_path / part).mkdir()
        for i, seq in enumerate(rows):
            np.savez(tmp_path / part / f"s{i}.npz", sequence=seq)
    cfg = dict(FAST, data=str(tmp_path / "train"), val_data=str(tmp_path / "val"), log_every=5,
               max_steps=15, patience=2)  # fmt: skip
    result = pretrain(PretrainConfig(**cfg, out=str(tmp_path / "a")))
    policy = load_policy(result.policy_path)
    assert policy.velocity_bins == VelocityBins.from_data(train_rows, K)
    assert policy.velocity_bins != VelocityBins.from_data([*train_rows, *val_rows], K)
    values = [v for _, v in result.val_losses]
    assert values and all(np.isfinite(values)) and result.best_val_loss == min(values)
    loader = get_complete_rl_dataloader(str(tmp_path / "val"), 64, 16, 4, batch_size=16,
                                        shuffle=False, stride=16)  # fmt: skip
    again = validation_loss(policy, loader, torch.device("cpu"), PretrainConfig(**cfg))
    assert again == pytest.approx(result.best_val_loss, rel=1e-4)


# ----------------------------------------------------------------------------- PPO


TINY = dict(
    num_envs=4, num_steps=16, total_timesteps=128, seq_len=32, d_model=16, n_layers=1,
    n_heads=2, progress=False, tensorboard=False, device="cpu", seed=3, velocity_levels=K,
)  # fmt: skip


def test_ppo_two_iterations_on_classes_complete_and_resume_exactly(tmp_path: Path):
    from agents.training.checkpoint import load_checkpoint
    from agents.training.ppo import PPOConfig, train

    full = train(PPOConfig(**TINY, out=str(tmp_path / "full")))
    assert full.iterations == 2 and full.policy.config.velocity_levels == K
    for row in full.history:
        assert all(math.isfinite(row[k]) for k in ("losses/policy_loss", "losses/entropy",
                                                   "losses/approx_kl"))  # fmt: skip
    # the categorical entropy of the fresh head (hit rate 0.1 spread over K classes), summed
    # over the 9 drums; a Bernoulli head at the same hit rate would give 9 * 0.325 = 2.93
    probs = np.array([0.9] + [0.1 / K] * K)
    fresh_entropy = 9 * float(-(probs * np.log(probs)).sum())  # 3.91
    assert full.history[0]["losses/entropy"] == pytest.approx(fresh_entropy, rel=0.02)
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, velocity_levels=K)
    assert policy_velocity_bins(full.policy_path) == env.unwrapped.config.velocity_bins
    assert policy_velocity_bins(full.checkpoint_path) == env.unwrapped.config.velocity_bins
    env.close()

    part = train(PPOConfig(**TINY, out=str(tmp_path / "part")), callback=lambda m: False)
    assert part.iterations == 1 and load_checkpoint(part.checkpoint_path)["iteration"] == 1
    resumed = train(PPOConfig(**TINY, out=str(tmp_path / "part"), resume=True))
    assert resumed.iterations == 2
    for key, value in full.policy.state_dict().items():
        assert torch.equal(value, resumed.policy.state_dict()[key]), key


def test_ppo_kl_to_a_pretrained_policy_with_classes(tmp_path: Path, monkeypatch):
    from agents.training.ppo import PPOConfig, train

    env = gym.make_vec("DrumCompose-v0", num_envs=1, vectorization_mode="vector_entry_point",
                       seq_len=32, prompt_bars=1, velocity_levels=K)  # fmt: skip
    cfg = env.unwrapped.config
    env.close()
    torch.manual_seed(123)
    bins = VelocityBins(np.array([0.3, 0.6]), np.array([0.2, 0.5, 0.8], np.float32))
    pre = DrumPolicy(PolicyConfig.from_env_config(cfg, d_model=16, n_layers=1, n_heads=2), bins)
    assert bins != cfg.velocity_bins  # the run must play at the pretrained policy's bins
    path = save_policy(tmp_path / "pre.pt", pre)
    made = []  # the trainer's env kwargs
    real_make_vec = gym.make_vec
    monkeypatch.setattr(gym, "make_vec",
                        lambda *a, **kw: made.append(kw) or real_make_vec(*a, **kw))
    result = train(PPOConfig(**{**TINY, "total_timesteps": 192}, pretrained=str(path),
                             kl_coef=0.5, learning_rate=3e-3, anneal_lr=False,
                             out=str(tmp_path / "kl")))  # fmt: skip
    kls = [row["losses/kl_pretrained"] for row in result.history]
    assert all(math.isfinite(k) and k >= 0.0 for k in kls) and kls[-1] > kls[0]
    assert VelocityBins.from_dict(made[0]["velocity_bins"]) == bins  # envs play at its levels
    assert result.policy.velocity_bins == bins


def test_ppo_refuses_a_pretrained_policy_of_other_levels(tmp_path: Path):
    from agents.training.ppo import PPOConfig, train

    binary = DrumPolicy(PolicyConfig(num_drums=9, context_steps=16, target_size=20, d_model=16))
    path = save_policy(tmp_path / "binary.pt", binary)
    with pytest.raises(ValueError, match=r"velocity_levels=0.*velocity_levels=3"):
        train(PPOConfig(**TINY, pretrained=str(path), out=str(tmp_path / "a")))
    expressive = save_policy(tmp_path / "k3.pt", fresh())
    with pytest.raises(ValueError, match=r"velocity_levels=3.*velocity_levels=0"):
        train(PPOConfig(**{**TINY, "velocity_levels": 0}, pretrained=str(expressive),
                        out=str(tmp_path / "b")))  # fmt: skip


# ----------------------------------------------------------------------------- rollouts


def test_random_policy_plays_seeded_classes_at_the_given_rates():
    from agents.evaluation.rollout import random_policy

    obs = {"context": np.zeros((20_000, 1))}
    act = random_policy(2, rate=0.3, seed=0, velocity_levels=K)
    actions = act(obs)
    assert actions.dtype == np.int64 and actions.shape == (20_000, 2)
    freq = np.stack([(actions == c).mean(0) for c in range(K + 1)], 1)
    np.testing.assert_allclose(freq, [[0.7, 0.1, 0.1, 0.1]] * 2, atol=0.01)
    assert np.array_equal(random_policy(2, 0.3, 0, K)(obs), actions)
    table = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]])
    actions = random_policy(2, table, seed=1, velocity_levels=K)(obs)
    assert set(np.unique(actions[:, 0])) == {0, 2} and (actions[:, 1] == 3).all()
    with pytest.raises(ValueError, match="rate"):
        random_policy(2, np.ones((2, 4)), velocity_levels=K)


def test_loop_policy_repeats_the_classes_of_the_bar_before():
    from agents.evaluation.rollout import loop_policy

    context = np.zeros((1, 8, 2), np.float32)
    context[0, 4] = [0.35, 0.9]  # the step one bar (4 steps) before the current one
    context[0, 5] = [1.0, 1.0]
    act = loop_policy(2, 8, 4, velocity_bins=BINS.to_dict())
    actions = act({"context": context.reshape(1, -1)})
    assert actions.dtype == np.int64 and actions.tolist() == [[1, 3]]
    levels = BINS.decode(actions)  # a looped hit plays its own class again
    assert act({"context": np.repeat(levels, 8, 0).reshape(1, -1)}).tolist() == [[1, 3]]


def test_policy_rollouts_play_classes_at_the_bins_levels(tmp_path: Path):
    from agents.evaluation.rollout import load_any_policy, policy_fn, rollout_episodes

    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, velocity_levels=K,
                   velocity_bins=BINS)  # fmt: skip
    policy = make_policy("transformer", env.unwrapped.config, d_model=16, n_layers=1)
    env.close()
    path = save_policy(tmp_path / "p.pt", policy)
    loaded = load_any_policy(path)
    assert policy_velocity_bins(loaded) == BINS
    kwargs = {"seq_len": 32, "prompt_bars": 1, "velocity_levels": K,
              "velocity_bins": policy_velocity_bins(loaded).to_dict()}  # fmt: skip
    rollouts = rollout_episodes(policy_fn(loaded, seed=0), kwargs, episodes=2, num_envs=2)
    composed = rollouts.takes[:, rollouts.prompt_steps :]
    assert (composed > 0).any()
    assert set(np.unique(composed)) <= {0.0, *BINS.levels.tolist()}


# ----------------------------------------------------------------------------- SB3, generate


def test_sb3_ppo_trains_on_classes_and_plays_int_actions(tmp_path: Path):
    from agents.baselines.sb3 import BaselineConfig, build_model, train_baseline
    from agents.evaluation.rollout import load_any_policy, sb3_policy_fn

    config = BaselineConfig(seq_len=32, num_envs=2, num_steps=64, total_timesteps=256,
                            eval_every=0, eval_episodes=2, tensorboard=False,
                            velocity_levels=K, out=str(tmp_path / "sb3"))  # fmt: skip
    model, venv = build_model(config)
    assert isinstance(model.action_space, gym.spaces.MultiDiscrete)
    model.learn(256)
    obs = venv.reset()
    actions = sb3_policy_fn(model)(obs)
    assert actions.dtype == np.int64 and actions.shape == (2, 9)
    assert all(venv.action_space.contains(a) for a in actions)
    venv.close()
    result = train_baseline(config)
    loaded = load_any_policy(result.model_path)
    assert loaded.config.velocity_levels == K
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, velocity_levels=K)
    assert policy_velocity_bins(loaded) == env.unwrapped.config.velocity_bins
    env.close()


def test_generate_writes_takes_at_the_policys_velocity_levels(tmp_path: Path):
    from agents.evaluation.generate import GenerateConfig, generate
    from dataset.midi import midi_to_sequence

    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, velocity_levels=K,
                   velocity_bins=BINS)  # fmt: skip
    torch.manual_seed(0)
    policy = make_policy("transformer", env.unwrapped.config, d_model=16, n_layers=1,
                         init_hit_rate=0.5)  # fmt: skip
    env.close()
    path = save_policy(tmp_path / "p.pt", policy)
    config = GenerateConfig(policy=str(path), seq_len=32, num=2, out=str(tmp_path / "takes"))
    assert config.velocity_levels == K  # from the policy file
    result = generate(config)
    prompt = result.rollouts.prompt_steps
    composed = result.rollouts.takes[:, prompt:]
    assert set(np.unique(composed)) <= {0.0, *BINS.levels.tolist()} and (composed > 0).any()
    allowed = {0, *(int(round(float(v) * 127)) for v in BINS.levels)}
    for i in range(2):  # the .mid files hold those levels as MIDI velocities
        written = midi_to_sequence(tmp_path / "takes" / f"take{i}.mid").sequence
        velocities = set(np.round(written[prompt:] * 127).astype(int).ravel().tolist())
        assert velocities <= allowed and len(velocities) > 1, velocities
    with pytest.raises(ValueError, match="velocity_levels=0 does not fit"):
        generate(GenerateConfig(policy=str(path), seq_len=32, velocity_levels=0,
                                out=str(tmp_path / "x")))  # fmt: skip
