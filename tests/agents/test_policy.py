"""agents.policies.policy: shapes, causality, observation mapping, sampling, autocast, saving."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import agents.policies.policy
from agents.policies.policy import (
    POLICY_KINDS,
    DrumPolicy,
    MLPPolicy,
    MLPPolicyConfig,
    PolicyConfig,
    PolicyOutput,
    bernoulli_entropy,
    bernoulli_log_prob,
    load_policy,
    obs_to_tensors,
    save_policy,
)
from agents.policies.transformer import embedding_lookup, last_token_attention
from drum_env.core import DrumComposeConfig

SMALL = PolicyConfig(
    num_drums=5, context_steps=8, steps_per_bar=4, bars_per_phrase=2, target_size=7,
    d_model=16, n_layers=2, n_heads=2,
)  # fmt: skip


def make_policy(config: PolicyConfig = SMALL, seed: int = 0) -> DrumPolicy:
    torch.manual_seed(seed)
    return DrumPolicy(config)


def random_inputs(config: PolicyConfig, b: int, length: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    steps = (torch.rand(b, length, config.num_drums, generator=g) < 0.3).float()
    phase = torch.randint(config.phrase_len, (b,), generator=g)
    target = torch.rand(b, config.target_size, generator=g)
    return steps, phase, target


def make_obs(config: PolicyConfig, steps: torch.Tensor, phase: torch.Tensor, target):
    """Env-style observations whose step to write has the given phases."""
    b = steps.shape[0]
    spb = config.steps_per_bar
    position = torch.zeros(b, config.position_size)
    position[torch.arange(b), phase % spb] = 1.0
    position[torch.arange(b), spb + phase // spb] = 1.0
    position[:, -2:] = 0.5
    return {"context": steps.reshape(b, -1), "position": position, "target": target}


# ----------------------------------------------------------------------------- config


def test_from_env_config_takes_the_env_sizes():
    env_cfg = DrumComposeConfig(seq_len=96, steps_per_bar=12, bars_per_phrase=2, context_steps=24)
    cfg = PolicyConfig.from_env_config(env_cfg, d_model=32, n_heads=8)
    assert (cfg.num_drums, cfg.context_steps, cfg.steps_per_bar, cfg.bars_per_phrase) == (
        9, 24, 12, 2,
    )  # fmt: skip
    assert cfg.target_size == env_cfg.target_size
    assert cfg.position_size == env_cfg.position_size
    assert (cfg.d_model, cfg.n_heads) == (32, 8)
    with pytest.raises(TypeError, match="hidden"):
        PolicyConfig.from_env_config(env_cfg, hidden=3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_drums": 0}, "num_drums"),
        ({"context_steps": -1}, "context_steps"),
        ({"steps_per_bar": 2.0}, "steps_per_bar"),
        ({"bars_per_phrase": True}, "bars_per_phrase"),
        ({"target_size": 0}, "target_size"),
        ({"d_model": 0}, "d_model"),
        ({"n_layers": 0}, "n_layers"),
        ({"n_heads": 0}, "n_heads"),
        ({"d_model": 30, "n_heads": 4}, "d_model"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": "0.1"}, "dropout"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PolicyConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SMALL.d_model = 8  # type: ignore[misc]


# ----------------------------------------------------------------------------- model


def test_output_shapes_and_dtypes():
    policy = make_policy()
    steps, phase, target = random_inputs(SMALL, 3, 11)
    out = policy(steps, phase, target)
    assert isinstance(out, PolicyOutput)
    assert out.logits.shape == (3, 11, SMALL.num_drums) and out.logits.dtype == torch.float32
    assert out.value.shape == (3, 11) and out.value.dtype == torch.float32
    obs_out = policy.forward_obs(make_obs(SMALL, steps, phase, target))
    assert obs_out.logits.shape == (3, SMALL.num_drums)
    assert obs_out.value.shape == (3,)


def test_input_shapes_are_checked():
    policy = make_policy()
    steps, phase, target = random_inputs(SMALL, 2, 4)
    with pytest.raises(ValueError, match="num_drums"):
        policy(steps[..., :3], phase, target)
    with pytest.raises(ValueError, match="phase"):
        policy(steps, phase[:1], target)
    with pytest.raises(ValueError, match="target_size"):
        policy(steps, phase, target[:, :3])
    with pytest.raises(ValueError, match="max_len"):
        policy(torch.zeros(1, SMALL.max_len + 1, SMALL.num_drums), phase[:1], target[:1])
    obs = make_obs(SMALL, steps, phase, target)
    with pytest.raises(ValueError, match="position"):
        policy.forward_obs({**obs, "position": obs["position"][:, :-1]})
    with pytest.raises(ValueError, match="context"):
        policy.forward_obs({**obs, "context": obs["context"][:, :-1]})


@pytest.mark.parametrize("j", [0, 3, 9])
def test_causal_changing_step_j_leaves_earlier_tokens_unchanged(j):
    policy = make_policy()
    steps, phase, target = random_inputs(SMALL, 2, 10)
    before = policy(steps, phase, target)
    changed = steps.clone()
    changed[:, j] = 1.0 - changed[:, j]
    after = policy(changed, phase, target)
    torch.testing.assert_close(after.logits[:, :j], before.logits[:, :j], rtol=0, atol=1e-6)
    torch.testing.assert_close(after.value[:, :j], before.value[:, :j], rtol=0, atol=1e-6)
    assert not torch.allclose(after.logits[:, j], before.logits[:, j])


def test_phase_counts_back_from_the_last_token():
    """Token i of a window of L predicts phase (phase - (L - 1 - i)) mod phrase_len: a shorter
    window ending at an earlier token, with the matching phase, gives the same outputs."""
    policy = make_policy()
    steps, phase, target = random_inputs(SMALL, 2, 10)
    full = policy(steps, phase, target)
    short = policy(steps[:, :6], (phase - 4) % SMALL.phrase_len, target)
    torch.testing.assert_close(short.logits, full.logits[:, :6], rtol=0, atol=1e-5)
    other = policy(steps[:, :6], (phase - 3) % SMALL.phrase_len, target)
    assert not torch.allclose(other.logits, full.logits[:, :6])


def test_forward_obs_is_forward_on_the_context_last_token():
    policy = make_policy()
    steps, phase, target = random_inputs(SMALL, 4, SMALL.context_steps)
    out = policy.forward_obs(make_obs(SMALL, steps, phase, target))
    ref = policy(steps, phase, target)
    torch.testing.assert_close(out.logits, ref.logits[:, -1], rtol=0, atol=1e-6)
    torch.testing.assert_close(out.value, ref.value[:, -1], rtol=0, atol=1e-6)


def test_forward_obs_on_env_observations():
    import gymnasium as gym

    import drum_env  # noqa: F401

    env = gym.make("DrumCompose-v0", seq_len=64, prompt_bars=1)
    config = PolicyConfig.from_env_config(env.unwrapped.config, d_model=16, n_heads=2)
    policy = make_policy(config)
    obs, _ = env.reset(seed=3)
    for i in range(5):
        t = obs_to_tensors(obs, "cpu")
        assert t["context"].shape == (1, config.context_steps * config.num_drums)
        with torch.no_grad():
            actions, log_prob, value = policy.act(t)
        # the phase read from the observation is the env's step to write
        step = env.unwrapped.config.prompt_steps + i  # the step the env writes next
        ref = policy(
            t["context"].reshape(1, -1, config.num_drums),
            torch.tensor([step % config.phrase_len]),
            t["target"],
        )
        torch.testing.assert_close(value, ref.value[:, -1], rtol=0, atol=1e-6)
        obs, *_ = env.step(actions[0].numpy().astype(np.int8))
    env.close()


def test_value_head_reads_detached_features():
    policy = make_policy()
    steps, phase, target = random_inputs(SMALL, 2, 6)
    policy(steps, phase, target).value.sum().backward()
    assert all(p.grad is None for n, p in policy.named_parameters() if not n.startswith("value"))
    assert all(p.grad is not None for n, p in policy.named_parameters() if n.startswith("value"))


def test_initialisation_is_seeded_and_heads_are_small():
    a, b = make_policy(seed=5), make_policy(seed=5)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = make_policy(seed=6)
    assert not torch.equal(a.input_proj.weight, c.input_proj.weight)
    # CleanRL's gain 0.01: the initial policy barely depends on its input, and hits every drum
    # with probability init_hit_rate
    steps, phase, target = random_inputs(SMALL, 2, 6)
    probs = torch.sigmoid(a(steps, phase, target).logits)
    assert (probs - SMALL.init_hit_rate).abs().max() < 0.01
    assert all(isinstance(v, torch.Tensor) for v in a.state_dict().values())


def test_eval_mode_and_no_grad_agree_with_training_mode():
    """PPO may act under eval() + no_grad (Transformer fast path) and update in train mode."""
    policy = make_policy()
    steps, phase, target = random_inputs(SMALL, 3, 8)
    train = policy(steps, phase, target)
    policy.eval()
    with torch.no_grad():
        fast = policy(steps, phase, target)
    torch.testing.assert_close(fast.logits, train.logits.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(fast.value, train.value.detach(), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- acting


def test_act_repeats_with_the_same_seeded_generator():
    policy = make_policy()
    obs = make_obs(SMALL, *random_inputs(SMALL, 16, SMALL.context_steps))
    with torch.no_grad():
        a1, lp1, v1 = policy.act(obs, generator=torch.Generator().manual_seed(7))
        a2, lp2, v2 = policy.act(obs, generator=torch.Generator().manual_seed(7))
        a3, _, _ = policy.act(obs, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a1, a2) and torch.equal(lp1, lp2) and torch.equal(v1, v2)
    assert not torch.equal(a1, a3)
    assert a1.shape == (16, SMALL.num_drums) and a1.dtype == torch.float32
    assert set(a1.unique().tolist()) <= {0.0, 1.0}
    assert lp1.shape == (16,) and v1.shape == (16,)


def test_act_deterministic_hits_where_probability_exceeds_half():
    policy = make_policy()
    with torch.no_grad():
        policy.policy_head.bias.copy_(torch.tensor([3.0, -3.0, 3.0, -3.0, 3.0]))
    obs = make_obs(SMALL, *random_inputs(SMALL, 4, SMALL.context_steps))
    with torch.no_grad():
        actions, log_prob, _ = policy.act(obs, deterministic=True)
        logits = policy.forward_obs(obs).logits
    assert torch.equal(actions, (torch.sigmoid(logits) > 0.5).float())
    assert torch.equal(actions, torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]]).expand(4, -1))
    torch.testing.assert_close(log_prob, policy.distribution(logits).log_prob(actions))


def test_evaluate_actions_matches_the_distribution():
    policy = make_policy()
    obs = make_obs(SMALL, *random_inputs(SMALL, 8, SMALL.context_steps))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        actions, act_log_prob, act_value = policy.act(obs, generator=g)
    log_prob, entropy, value = policy.evaluate_actions(obs, actions.to(torch.int64))
    dist = policy.distribution(policy.forward_obs(obs).logits)
    torch.testing.assert_close(log_prob, dist.log_prob(actions))
    torch.testing.assert_close(entropy, dist.entropy())
    torch.testing.assert_close(log_prob.detach(), act_log_prob)
    torch.testing.assert_close(value.detach(), act_value)
    # an independent Bernoulli per drum: the log-prob is the sum over drums
    p = torch.sigmoid(dist.base_dist.logits)
    manual = (actions * p.log() + (1 - actions) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(log_prob, manual, rtol=1e-5, atol=1e-5)
    log_prob.sum().backward()  # differentiable for the PPO update
    assert policy.policy_head.weight.grad is not None


def test_obs_to_tensors_adds_a_batch_axis_to_a_single_observation():
    single = {
        "context": np.zeros(SMALL.context_steps * SMALL.num_drums, np.float32),
        "position": np.zeros(SMALL.position_size, np.float32),
        "target": np.zeros(SMALL.target_size, np.float64),
    }
    t = obs_to_tensors(single, "cpu")
    assert t["context"].shape == (1, SMALL.context_steps * SMALL.num_drums)
    assert all(v.dtype == torch.float32 for v in t.values())
    batch = obs_to_tensors({k: np.stack([v, v]) for k, v in single.items()}, torch.device("cpu"))
    assert batch["target"].shape == (2, SMALL.target_size)


# ----------------------------------------------------------------------------- precision, devices


def test_autocast_bf16_on_cpu_runs_and_is_close_to_fp32():
    policy = make_policy(dataclasses.replace(SMALL, d_model=32))
    with torch.no_grad():  # logits of order 1, so that the comparison means something
        policy.policy_head.weight.mul_(100.0)
    steps, phase, target = random_inputs(SMALL, 4, SMALL.context_steps)
    obs = make_obs(SMALL, steps, phase, target)
    ref = policy(steps, phase, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = policy(steps, phase, target)
        actions, log_prob, value = policy.act(obs, generator=torch.Generator().manual_seed(0))
        lp, ent, _ = policy.evaluate_actions(obs, actions)
    assert out.logits.dtype == torch.float32 and out.value.dtype == torch.float32
    assert log_prob.dtype == lp.dtype == ent.dtype == torch.float32
    scale = ref.logits.abs().max().item()
    assert scale > 0.3
    torch.testing.assert_close(out.logits, ref.logits, rtol=0, atol=0.05 * scale)
    torch.testing.assert_close(out.value, ref.value, rtol=0, atol=0.05)
    (lp.sum() + ent.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters() if p.grad is not None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_act_and_fp16_autocast():
    policy = make_policy().cuda()
    steps, phase, target = random_inputs(SMALL, 4, SMALL.context_steps)
    obs = {k: v.cuda() for k, v in make_obs(SMALL, steps, phase, target).items()}
    ref = make_policy()(steps, phase, target)
    out = policy(steps.cuda(), phase.cuda(), target.cuda())
    torch.testing.assert_close(out.logits.cpu(), ref.logits, rtol=1e-3, atol=1e-4)
    g = torch.Generator(device="cuda").manual_seed(0)
    with torch.autocast("cuda", dtype=torch.float16), torch.no_grad():
        a1, lp, v = policy.act(obs, generator=g)
        a2, _, _ = policy.act(obs, generator=torch.Generator(device="cuda").manual_seed(0))
        a3, _, _ = policy.act(obs, generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(a2, a3) and lp.dtype == torch.float32 and a1.device.type == "cuda"


# ----------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path: Path):
    policy = make_policy(dataclasses.replace(SMALL, dropout=0.2))
    path = save_policy(tmp_path / "sub" / "policy.pt", policy)
    assert path == tmp_path / "sub" / "policy.pt" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["policy.pt"]  # no temp file left
    payload = torch.load(path, weights_only=True)
    assert payload["config"] == dataclasses.asdict(policy.config)
    loaded = load_policy(path)
    assert loaded.config == policy.config
    for (ka, va), (kb, vb) in zip(policy.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    policy.eval()
    loaded.eval()
    steps, phase, target = random_inputs(SMALL, 2, 7)
    a, b = policy(steps, phase, target), loaded(steps, phase, target)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.value, b.value)
    # overwriting is atomic and leaves one file
    save_policy(path, loaded)
    assert [p.name for p in path.parent.iterdir()] == ["policy.pt"]


def test_load_missing_file_names_it(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_policy(tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_load_corrupt_file_raises_value_error_naming_it(tmp_path: Path, content: bytes):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="bad.pt"):
        load_policy(path)


def test_load_truncated_checkpoint(tmp_path: Path):
    path = save_policy(tmp_path / "p.pt", make_policy())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="p.pt"):
        load_policy(path)


def test_load_other_objects_are_rejected(tmp_path: Path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="other.pt.*not a policy checkpoint"):
        load_policy(path)
    torch.save({"config": {"d_model": 16, "colour": 1}, "state_dict": {}}, path)
    with pytest.raises(ValueError, match="colour"):
        load_policy(path)
    torch.save({"config": {"d_model": 0}, "state_dict": {}}, path)
    with pytest.raises(ValueError, match="d_model"):
        load_policy(path)


def test_load_mismatched_tensors_names_the_differing_fields(tmp_path: Path):
    path = save_policy(tmp_path / "p.pt", make_policy())
    payload = torch.load(path, weights_only=True)
    payload["config"]["d_model"] = 32
    payload["config"]["num_drums"] = 9
    torch.save(payload, path)
    with pytest.raises(ValueError, match="d_model") as info:
        load_policy(path)
    assert "num_drums" in str(info.value) and "n_layers" not in str(info.value)


def test_load_with_expected_config(tmp_path: Path):
    path = save_policy(tmp_path / "p.pt", make_policy())
    assert load_policy(path, expected=dataclasses.replace(SMALL, dropout=0.3)).config == SMALL
    other = dataclasses.replace(SMALL, steps_per_bar=8, target_size=9)
    with pytest.raises(ValueError, match="steps_per_bar") as info:
        load_policy(path, expected=other)
    assert "target_size" in str(info.value) and "d_model" not in str(info.value)


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.2, True])
def test_init_hit_rate_must_be_a_probability(rate):
    with pytest.raises(ValueError, match="init_hit_rate"):
        PolicyConfig(init_hit_rate=rate)


def test_fresh_policy_plays_at_its_init_hit_rate():
    policy = DrumPolicy(PolicyConfig(init_hit_rate=0.2))
    steps = torch.zeros(4, 8, 9)
    probs = torch.sigmoid(policy(steps, torch.zeros(4, dtype=torch.long), torch.rand(4, 20)).logits)
    assert torch.allclose(probs, torch.full_like(probs, 0.2), atol=0.01)


# ----------------------------------------------------------------------------- speed paths


def test_bernoulli_helpers_are_bitwise_the_distribution():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 9, generator=g) * 3
    actions = (torch.rand(64, 9, generator=g) < 0.4).float()
    dist = DrumPolicy.distribution(logits)
    assert torch.equal(bernoulli_log_prob(logits, actions), dist.log_prob(actions))
    assert torch.equal(bernoulli_entropy(logits), dist.entropy())


def test_embedding_lookup_is_bitwise_the_embedding():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(16, 8)
    index = torch.randint(0, 16, (64, 12))
    grad = torch.randn(64, 12, 8)
    grads = []
    for out in (emb(index), embedding_lookup(emb, index)):
        emb.zero_grad()
        out.backward(grad)
        grads.append((out.detach(), emb.weight.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("d_model, heads, b, length",
                         [(16, 2, 5, 8), (32, 4, 64, 16), (8, 1, 1, 1)])  # fmt: skip
def test_last_token_attention_is_bitwise_the_module(d_model, heads, b, length):
    """The rollout's and the update's last-token pass: the module's numbers and gradients."""
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(d_model, heads, batch_first=True)
    keys = torch.randn(b, length, d_model, requires_grad=True)
    ref = attn(keys[:, -1:], keys, keys, need_weights=False)[0][:, 0]
    fast = last_token_attention(attn, keys)
    assert torch.equal(fast, ref)
    weights = torch.randn(b, d_model)
    grads = []
    for out in (ref, fast):
        keys.grad = None
        attn.zero_grad()
        (out * weights).sum().backward(retain_graph=True)
        grads.append([keys.grad.clone()] + [p.grad.clone() for p in attn.parameters()])
    assert all(torch.equal(x, y) for x, y in zip(*grads))
    with torch.inference_mode():
        assert torch.equal(last_token_attention(attn, keys), ref.detach())


# ----------------------------------------------------------------------------- MLP policy


MLP_SMALL = MLPPolicyConfig(num_drums=5, context_steps=8, steps_per_bar=4, bars_per_phrase=2,
                            target_size=7, hidden_sizes=(32, 16))  # fmt: skip


def mlp_obs(config: MLPPolicyConfig, b: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "context": (torch.rand(b, config.context_steps * config.num_drums, generator=g) < 0.3)
        .float(),
        "position": torch.rand(b, config.position_size, generator=g),
        "target": torch.rand(b, config.target_size, generator=g),
    }


def test_policy_kinds():
    assert POLICY_KINDS == ("transformer", "mlp")
    env_cfg = DrumComposeConfig(seq_len=64, context_steps=24)
    transformer = agents.policies.policy.make_policy("transformer", env_cfg, d_model=16)
    assert isinstance(transformer, DrumPolicy)
    mlp = agents.policies.policy.make_policy("mlp", env_cfg)
    assert isinstance(mlp, MLPPolicy) and mlp.kind == "mlp" and DrumPolicy.kind == "transformer"
    assert mlp.config.context_steps == 24 and mlp.config.hidden_sizes == (64, 64)
    assert mlp.config.obs_size == 24 * 9 + (16 + 4 + 2) + 20
    with pytest.raises(ValueError, match="policy kind.*'gru'"):
        agents.policies.policy.make_policy("gru", env_cfg)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"num_drums": 0}, "num_drums"), ({"hidden_sizes": ()}, "hidden_sizes"),
     ({"hidden_sizes": (64, 0)}, "hidden_sizes"), ({"init_hit_rate": 1.0}, "init_hit_rate"),
     ({"kind": "transformer"}, "kind")],
)  # fmt: skip
def test_mlp_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MLPPolicyConfig(**kwargs)


def test_mlp_is_sb3_sized_and_starts_at_its_hit_rate():
    torch.manual_seed(0)
    policy = MLPPolicy(MLPPolicyConfig())
    shapes = {k: tuple(v.shape) for k, v in policy.state_dict().items()}
    obs = 16 * 9 + 22 + 20
    assert shapes["policy_net.0.weight"] == (64, obs) and shapes["value_net.2.weight"] == (64, 64)
    assert shapes["policy_head.weight"] == (9, 64) and shapes["value_head.weight"] == (1, 64)
    out = policy.forward_obs(mlp_obs(policy.config, 6))
    assert out.logits.shape == (6, 9) and out.value.shape == (6,)
    assert out.logits.dtype == torch.float32 and out.value.dtype == torch.float32
    probs = torch.sigmoid(out.logits)
    assert (probs - 0.1).abs().max() < 0.01


def test_mlp_act_and_evaluate_match_the_distribution():
    torch.manual_seed(0)
    policy = MLPPolicy(MLP_SMALL)
    obs = mlp_obs(MLP_SMALL, 16)
    with torch.no_grad():
        a1, lp1, v1 = policy.act(obs, generator=torch.Generator().manual_seed(7))
        a2, lp2, v2 = policy.act(obs, generator=torch.Generator().manual_seed(7))
        det, _, _ = policy.act(obs, deterministic=True)
        logits = policy.forward_obs(obs).logits
    assert torch.equal(a1, a2) and torch.equal(lp1, lp2) and torch.equal(v1, v2)
    assert torch.equal(det, (torch.sigmoid(logits) > 0.5).float())
    log_prob, entropy, value = policy.evaluate_actions(obs, a1.to(torch.int64))
    dist = policy.distribution(logits)
    assert torch.equal(log_prob.detach(), dist.log_prob(a1)) and torch.equal(lp1, log_prob.detach())
    assert torch.equal(entropy.detach(), dist.entropy()) and torch.equal(value.detach(), v1)


def test_mlp_refuses_another_context_length():
    policy = MLPPolicy(MLP_SMALL)
    obs = mlp_obs(MLP_SMALL, 2)
    with pytest.raises(ValueError, match="context"):
        policy.forward_obs({**obs, "context": obs["context"][:, :-5]})
    with pytest.raises(ValueError, match="position"):
        policy.forward_obs({**obs, "position": obs["position"][:, :-1]})


def test_mlp_acts_on_env_observations():
    import gymnasium as gym

    import drum_env  # noqa: F401

    env = gym.make_vec("DrumCompose-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       seq_len=64, prompt_bars=1, context_steps=16)  # fmt: skip
    policy = agents.policies.policy.make_policy("mlp", env.unwrapped.config)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        with torch.no_grad():
            actions, _, _ = policy.act(obs_to_tensors(obs, "cpu"))
        obs, *_ = env.step(actions.numpy().astype(np.int8))
    env.close()


def test_mlp_save_load_round_trip_records_the_kind(tmp_path: Path):
    torch.manual_seed(0)
    policy = MLPPolicy(MLP_SMALL)
    path = save_policy(tmp_path / "mlp.pt", policy)
    payload = torch.load(path, weights_only=True)
    assert payload["kind"] == "mlp" and payload["config"]["kind"] == "mlp"
    loaded = load_policy(path)
    assert isinstance(loaded, MLPPolicy) and loaded.config == MLP_SMALL
    for (ka, va), (kb, vb) in zip(policy.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    obs = mlp_obs(MLP_SMALL, 3)
    assert torch.equal(policy.forward_obs(obs).logits, loaded.forward_obs(obs).logits)
    assert load_policy(path, expected=MLP_SMALL).config == MLP_SMALL
    with pytest.raises(ValueError, match="holds an mlp policy.*transformer"):
        load_policy(path, expected=SMALL)
    other = dataclasses.replace(MLP_SMALL, hidden_sizes=(8,))
    with pytest.raises(ValueError, match="hidden_sizes"):
        load_policy(path, expected=other)
    assert torch.load(save_policy(tmp_path / "t.pt", make_policy()),
                      weights_only=True)["kind"] == "transformer"  # fmt: skip


def test_mlp_file_with_tensors_of_another_shape_is_refused(tmp_path: Path):
    path = save_policy(tmp_path / "mlp.pt", MLPPolicy(MLP_SMALL))
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden_sizes"] = [64, 64]
    torch.save(payload, path)
    with pytest.raises(ValueError, match="mlp.pt.*do not fit"):
        load_policy(path)
