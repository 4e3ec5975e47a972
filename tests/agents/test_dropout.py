"""agents.policies.dropout and the Transformer's training path with it, from the definitions.

* the mask: an element drops with probability ``k / 2 ** 16`` (``k = round(p * 2 ** 16)``,
  within ``2 ** -17`` of ``p``), in every position of the random words alike; a kept element
  is scaled by ``1 / (1 - k / 2 ** 16)``, so ``E[out] = x``;
* gradients: the output's gradient times the same multiplier (zero where dropped);
* eval mode and ``p = 0``: the input itself; a policy in eval mode (or with dropout 0) is the
  torch modules' own pass, bit for bit, and a policy saved before fast dropout gives the same
  eval outputs;
* the attention written out equals ``nn.MultiheadAttention`` with dropout 0, and the layer
  equals ``nn.TransformerEncoderLayer`` (to float rounding); with dropout the attention is
  unbiased (its mean over masks is the attention without dropout);
* seeded: the same seed gives the same masks, outputs and gradients.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_policy import random_inputs

from agents.policies.dropout import LEVELS, drop_levels, dropout_multiplier, fast_dropout
from agents.policies.policy import DrumPolicy, PolicyConfig, load_policy
from agents.policies.transformer import dropout_self_attention, encoder_layer_with_dropout

DATA = Path(__file__).resolve().parent / "data"

SMALL = PolicyConfig(
    num_drums=5, context_steps=8, steps_per_bar=4, bars_per_phrase=2, target_size=7,
    d_model=16, n_layers=2, n_heads=2, dropout=0.1,
)  # fmt: skip


def _causal(length: int) -> torch.Tensor:
    return torch.ones(length, length, dtype=torch.bool).triu(1)


# ----------------------------------------------------------------------------- the mask


@pytest.mark.parametrize(("p", "k"), [(0.0, 0), (0.1, 6554), (0.5, 32768), (2.0**-17, 0),
                                      (0.25, 16384), (1 - 2.0**-16, LEVELS - 1)])  # fmt: skip
def test_drop_levels_rounds_p_to_sixteen_bits(p, k):
    assert drop_levels(p) == k
    assert abs(drop_levels(p) / LEVELS - p) <= 2.0**-17


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, 1 - 2.0**-18, math.nan])
def test_drop_levels_refuses_rates_outside_zero_one(p):
    with pytest.raises(ValueError, match="p"):
        drop_levels(p)


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0.01, 0.9), seed=st.integers(0, 2**31 - 1),
       n=st.sampled_from([400_000, 400_001, 400_003]))  # fmt: skip
def test_drop_rate_is_p_in_every_lane_and_the_scale_keeps_the_mean(p, seed, n):
    g = torch.Generator().manual_seed(seed)
    m = dropout_multiplier((n,), p, generator=g)
    q = drop_levels(p) / LEVELS  # the rate applied
    scale = 1.0 / (1.0 - q)
    assert m.shape == (n,) and m.dtype == torch.float32
    kept = m != 0
    assert torch.all(m[kept] == torch.tensor(scale, dtype=torch.float32))
    # each 16-bit lane of the 64-bit words (element i % 4) drops at the same rate: a word
    # whose sign bit never varies would keep every fourth element
    for lane in range(4):
        dropped = (~kept[lane::4]).double()
        sigma = math.sqrt(q * (1 - q) / dropped.numel())
        assert abs(float(dropped.mean()) - q) < 5 * sigma, lane
    # E[m] = (1 - q) * scale = 1
    sigma = scale * math.sqrt(q * (1 - q) / n)
    assert abs(float(m.double().mean()) - 1.0) < 5 * sigma


def test_multiplier_takes_the_shape_dtype_and_seed():
    a = dropout_multiplier((3, 5, 7), 0.3, dtype=torch.bfloat16,
                           generator=torch.Generator().manual_seed(4))  # fmt: skip
    b = dropout_multiplier((3, 5, 7), 0.3, dtype=torch.bfloat16,
                           generator=torch.Generator().manual_seed(4))  # fmt: skip
    c = dropout_multiplier((3, 5, 7), 0.3, dtype=torch.bfloat16,
                           generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert a.shape == (3, 5, 7) and a.dtype == torch.bfloat16
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(9)  # no generator: torch's default one
    d = dropout_multiplier((100,), 0.3)
    torch.manual_seed(9)
    assert torch.equal(d, dropout_multiplier((100,), 0.3))


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0.0, 0.95), seed=st.integers(0, 2**31 - 1),
       shape=st.lists(st.integers(1, 9), min_size=1, max_size=3))  # fmt: skip
def test_fast_dropout_is_x_times_the_multiplier_and_so_is_its_gradient(p, seed, shape):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, requires_grad=True)
    grad = torch.randn(shape, generator=g)
    state = g.get_state()
    out = fast_dropout(x, p, generator=g)
    out.backward(grad)
    if drop_levels(p) == 0:
        assert out is x
        return
    g.set_state(state)
    m = dropout_multiplier(tuple(shape), p, generator=g)
    assert torch.equal(out, x.detach() * m)
    # gradient through kept elements only, scaled as they are
    assert torch.equal(x.grad, grad * m)
    assert torch.all(x.grad[m == 0] == 0)


def test_eval_mode_and_p_zero_are_the_input_itself():
    x = torch.randn(4, 6, requires_grad=True)
    assert fast_dropout(x, 0.5, training=False) is x
    assert fast_dropout(x, 0.0) is x
    assert fast_dropout(x, 0.0, training=False) is x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_masks_come_from_a_cuda_generator():
    g = torch.Generator("cuda").manual_seed(0)
    x = torch.ones(1 << 20, device="cuda")
    out = fast_dropout(x, 0.1, generator=g)
    assert out.device.type == "cuda"
    assert abs(float((out == 0).float().mean()) - drop_levels(0.1) / LEVELS) < 2e-3
    g.manual_seed(0)
    assert torch.equal(out, fast_dropout(x, 0.1, generator=g))


# ----------------------------------------------------------------------------- attention


@pytest.mark.parametrize(("d_model", "heads", "b", "length"),
                         [(16, 2, 5, 8), (32, 4, 6, 16), (8, 1, 1, 1)])  # fmt: skip
def test_attention_written_out_is_the_module_without_dropout(d_model, heads, b, length):
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(d_model, heads, batch_first=True)
    x = torch.randn(b, length, d_model, requires_grad=True)
    ref = attn(x, x, x, attn_mask=_causal(length), need_weights=False)[0]
    out = dropout_self_attention(attn, x, 0.0)
    last = dropout_self_attention(attn, x, 0.0, last_only=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(last, ref[:, -1], rtol=1e-5, atol=1e-6)
    weights = torch.randn(b, length, d_model)
    grads = []
    for y in (ref, out):
        x.grad = None
        attn.zero_grad()
        (y * weights).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in attn.parameters()])
    for a, c in zip(*grads, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)


def test_attention_dropout_is_unbiased():
    """E over the masks of softmax(...) * m @ V is the attention without dropout."""
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        plain = dropout_self_attention(attn, x, 0.0)
        draws = 4000
        mean = torch.zeros_like(plain)
        with torch.random.fork_rng():
            torch.manual_seed(2)
            for _ in range(draws):
                mean += dropout_self_attention(attn, x, 0.3) / draws
            one = dropout_self_attention(attn, x, 0.3)
    assert not torch.allclose(one, plain)  # the masks do something ...
    assert (mean - plain).abs().max() < 0.03  # ... and nothing on average


def test_layer_with_dropout_zero_is_the_torch_layer():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=64, dropout=0.0,
                                             activation="gelu", batch_first=True,
                                             norm_first=True)  # fmt: skip
    x = torch.randn(3, 7, 16)
    ref = layer(x, src_mask=_causal(7), is_causal=True)
    torch.testing.assert_close(encoder_layer_with_dropout(layer, x), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(encoder_layer_with_dropout(layer, x, last_only=True), ref[:, -1],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    post_ln = torch.nn.TransformerEncoderLayer(16, 2, batch_first=True, norm_first=False)
    with pytest.raises(ValueError, match="norm_first"):
        encoder_layer_with_dropout(post_ln, x)


# ----------------------------------------------------------------------------- the policy


def _module_pass(policy: DrumPolicy, steps, phase, target) -> torch.Tensor:
    """The trunk's features as torch's modules compute them (the pass before fast dropout)."""
    c = policy.config
    length = steps.shape[1]
    index = torch.arange(length)
    phases = torch.remainder(phase.long()[:, None] - (length - 1 - index), c.phrase_len)
    x = (policy.input_proj(steps) + policy.position_embedding(index)
         + policy.step_embedding(phases % c.steps_per_bar)
         + policy.bar_embedding(phases // c.steps_per_bar)
         + policy.target_proj(target)[:, None, :])  # fmt: skip
    return policy.trunk(x, mask=_causal(length), is_causal=True)


def test_eval_mode_and_dropout_zero_are_the_modules_pass_bit_for_bit():
    steps, phase, target = random_inputs(SMALL, 4, 8)
    torch.manual_seed(0)
    policy = DrumPolicy(SMALL).eval()
    ref = policy.policy_head(_module_pass(policy, steps, phase, target))
    assert torch.equal(policy(steps, phase, target).logits, ref)
    with torch.no_grad():  # torch's fast path (its fused kernel) in both
        fused = policy.policy_head(_module_pass(policy, steps, phase, target))
        assert torch.equal(policy(steps, phase, target).logits, fused)
    torch.manual_seed(0)
    plain = DrumPolicy(dataclasses.replace(SMALL, dropout=0.0)).train()  # the same weights
    out = plain(steps, phase, target).logits
    assert torch.equal(out, policy.policy_head(_module_pass(plain, steps, phase, target)))
    assert torch.equal(out.detach(), ref.detach())


def test_a_policy_saved_before_fast_dropout_gives_the_same_eval_outputs():
    """``data/policy_before_fast_dropout*.pt``: saved, with its eval outputs, by 3be0c51.

    A policy with dropout 0.1 in its config (2 layers, 8 wide); its outputs were bit for bit
    these on the machine that made them; another CPU may round its sums otherwise.
    """
    policy = load_policy(DATA / "policy_before_fast_dropout.pt")
    saved = torch.load(DATA / "policy_before_fast_dropout_outputs.pt", weights_only=True)
    assert policy.config.dropout == 0.1
    policy.eval()
    with torch.no_grad():
        out = policy(saved["steps"], saved["phase"], saved["target"])
        obs = {"context": saved["steps"].reshape(3, -1), "position": saved["position"],
               "target": saved["target"]}  # fmt: skip
        out_obs = policy.forward_obs(obs)
    for got, key in ((out.logits, "logits"), (out.value, "value"),
                     (out_obs.logits, "obs_logits"), (out_obs.value, "obs_value")):  # fmt: skip
        torch.testing.assert_close(got, saved[key], rtol=1e-6, atol=1e-6, msg=key)


def test_training_with_dropout_is_seeded_and_reaches_every_parameter():
    steps, phase, target = random_inputs(SMALL, 4, 8)
    torch.manual_seed(0)
    policy = DrumPolicy(SMALL).train()
    runs = []
    for seed in (3, 3, 4):
        policy.zero_grad()
        torch.manual_seed(seed)
        out = policy(steps, phase, target)
        (out.logits.square().mean()).backward()
        runs.append((out.logits.detach(), [p.grad.clone() for p in policy.trunk.parameters()]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    assert not torch.equal(runs[0][0], runs[2][0])
    assert all(bool(g.abs().sum() > 0) for g in runs[0][1])
    policy.eval()
    with torch.no_grad():  # dropout really happens in training, and eval has none
        assert not torch.equal(policy(steps, phase, target).logits, runs[0][0])


def test_last_token_training_pass_with_dropout_runs_and_is_seeded():
    """PPO with dropout > 0: the acting pass (the last token) drops too, seeded."""
    steps, phase, target = random_inputs(SMALL, 3, 8)
    torch.manual_seed(0)
    policy = DrumPolicy(SMALL).train()
    spb = SMALL.steps_per_bar
    position = torch.zeros(3, SMALL.position_size)
    position[torch.arange(3), phase % spb] = 1.0
    position[torch.arange(3), spb + phase // spb] = 1.0
    obs = {"context": steps.reshape(3, -1), "position": position, "target": target}
    torch.manual_seed(5)
    a = policy.forward_obs(obs).logits
    torch.manual_seed(5)
    b = policy.forward_obs(obs).logits
    assert a.shape == (3, SMALL.num_drums) and torch.equal(a, b)
    policy.eval()
    with torch.no_grad():
        ref = policy(steps, phase, target).logits[:, -1]
        torch.testing.assert_close(policy.forward_obs(obs).logits, ref, rtol=0, atol=1e-6)
