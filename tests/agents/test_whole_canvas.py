"""The whole canvas (TaskConfig.whole_canvas, PolicyConfig.canvas_steps).

What a user relies on: a policy that reads the canvas from its first step acts exactly as it
was pretrained (token ``i`` is canvas step ``i``, the env's zero padding dropped), whatever mix of
episodes and steps a batch holds (PPO's minibatches), with the same gradients; the default
policy is unchanged; ``--whole-canvas`` carries from pretraining through PPO to ``generate``;
an env of another length is refused with a message that names the field.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import drum_env  # noqa: F401
from agents.evaluation.rollout import load_any_policy, policy_fn
from agents.policies.compat import check_policy_fits
from agents.policies.policy import DrumPolicy, PolicyConfig, saved_policy_config
from agents.policies.transformer import _prefix_groups
from agents.task import TaskConfig
from agents.training.ppo import PPOConfig, train
from agents.training.pretrain import PretrainConfig, pretrain

SPB, BPP, D, K = 4, 2, 3, 6
PHRASE = SPB * BPP
SEQ = 24  # canvas steps


def _policy(canvas_steps: int = SEQ, context_steps: int = SEQ, seed: int = 0) -> DrumPolicy:
    torch.manual_seed(seed)
    cfg = PolicyConfig(num_drums=D, context_steps=context_steps, steps_per_bar=SPB,
                       bars_per_phrase=BPP, target_size=K, d_model=16, n_layers=2, n_heads=2,
                       canvas_steps=canvas_steps)  # fmt: skip
    return DrumPolicy(cfg).eval()


def _obs(canvas: torch.Tensor, t: int, target: torch.Tensor, context: int = SEQ) -> dict:
    """The env's observation after ``t`` written steps: the latest ``context`` steps, zero before
    the canvas's first, and the position features of step ``t`` (as drum_env.core builds them)."""
    steps = torch.arange(t - context, t)
    ctx = torch.where((steps >= 0)[:, None], canvas[steps.clamp(min=0)], torch.zeros(D))
    pos = torch.zeros(SPB + BPP + 2)
    pos[t % SPB] = 1.0
    pos[SPB + (t // SPB) % BPP] = 1.0
    pos[-1] = t / SEQ
    return {"context": ctx.reshape(-1), "position": pos, "target": target}


def _batch(rows: list[dict]) -> dict:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def _episodes(n: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    canvases = [(torch.rand(SEQ, D, generator=g) < 0.3).float() for _ in range(n)]
    targets = [torch.rand(K, generator=g) for _ in range(n)]
    return canvases, targets


def test_acts_as_pretrained_on_the_canvas_so_far():
    """Token i is canvas step i at position i: the output for the step to write equals the
    last token of the pretraining pass over the steps written so far."""
    policy = _policy()
    (canvas,), (target,) = _episodes(1, 0)
    for t in (1, 5, 8, 13, SEQ - 1):
        out = policy.forward_obs(_batch([_obs(canvas, t, target)]))
        ref = policy(canvas[None, :t], torch.tensor([t % PHRASE]), target[None])
        assert torch.allclose(out.logits[0], ref.logits[0, -1], atol=1e-5), t
        assert torch.allclose(out.value[0], ref.value[0, -1], atol=1e-5), t


def test_the_default_reads_padding_as_silence_and_no_padding_is_the_same_either_way():
    """canvas_steps = 0 (the default, and old saved policies) reads the context as the env gives
    it; where the context holds no padding (t >= context_steps) the two readings agree bitwise."""
    whole, plain = _policy(), _policy(canvas_steps=0)
    plain.load_state_dict(whole.state_dict())
    (canvas,), (target,) = _episodes(1, 1)
    short = _batch([_obs(canvas, t, target, context=8) for t in (8, 8)])
    assert torch.equal(whole.forward_obs(short).logits, plain.forward_obs(short).logits)
    padded = _batch([_obs(canvas, 5, target)])
    as_given = plain(padded["context"].reshape(1, SEQ, D), torch.tensor([5 % PHRASE]),
                     target[None]).logits[0, -1]  # fmt: skip
    assert torch.allclose(plain.forward_obs(padded).logits[0], as_given, atol=1e-6)
    assert not torch.allclose(whole.forward_obs(padded).logits[0], as_given, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_eps=st.integers(1, 4), n_rows=st.integers(2, 20),
       data=st.data())  # fmt: skip
def test_a_mixed_minibatch_is_each_row_alone(seed, n_eps, n_rows, data):
    """Rows of several episodes and steps, shuffled, some repeated, one episode sharing another's
    start and target then diverging: the batched outputs are the row-by-row outputs."""
    policy = _policy(seed=seed % 3)
    canvases, targets = _episodes(n_eps, seed)
    if n_eps > 1:  # same primer and target as episode 0, then another continuation
        canvases[1][:10] = canvases[0][:10]
        targets[1] = targets[0]
    picks = data.draw(st.lists(st.tuples(st.integers(0, n_eps - 1), st.integers(0, SEQ - 1)),
                               min_size=n_rows, max_size=n_rows))  # fmt: skip
    rows = [_obs(canvases[e], t, targets[e]) for e, t in picks]
    out = policy.forward_obs(_batch(rows))
    alone = [policy.forward_obs(_batch([r])) for r in rows]
    assert torch.allclose(out.logits, torch.cat([a.logits for a in alone]), atol=1e-5)
    assert torch.allclose(out.value, torch.cat([a.value for a in alone]), atol=1e-5)


def test_gradients_of_a_mixed_minibatch_are_each_rows():
    policy = _policy()
    canvases, targets = _episodes(3, 2)
    rows = [_obs(canvases[e], t, targets[e]) for e in range(3) for t in (0, 3, 9, 17, 23)]
    actions = (torch.rand(len(rows), D, generator=torch.Generator().manual_seed(0)) < 0.3).float()

    def grads(batches: list[list[int]]) -> list[torch.Tensor]:
        policy.zero_grad()
        for idx in batches:
            logp, ent, value = policy.evaluate_actions(_batch([rows[i] for i in idx]),
                                                       actions[idx])  # fmt: skip
            (logp.sum() + ent.sum() + value.sum()).backward()
        return [p.grad.clone() for p in policy.parameters() if p.grad is not None]

    together = grads([list(range(len(rows)))])
    alone = grads([[i] for i in range(len(rows))])
    assert len(together) == len(alone) > 0
    for a, b in zip(together, alone):
        assert torch.allclose(a, b, atol=1e-5)


def test_one_pass_per_distinct_canvas():
    canvases, targets = _episodes(3, 3)
    canvases[1][:10] = canvases[0][:10]  # shares episode 0's start and target, then diverges
    targets[1] = targets[0]
    canvases[2] = canvases[0].clone()  # the same canvas with another target
    rows = [_obs(canvases[e], t, targets[e]) for t in (2, 6, 9, 15, 20) for e in range(3)]
    batch = _batch(rows)
    written = torch.round(batch["position"][:, -1] * SEQ).long()
    reps, rep_of = _prefix_groups(batch["context"].reshape(len(rows), SEQ, D), batch["target"],
                                  written, written.clamp(1, SEQ))  # fmt: skip
    assert len(reps) == 3  # episode 1's steps up to 9 read episode 0's pass
    row_of = {(e, t): i for i, (t, e) in enumerate((t, e) for t in (2, 6, 9, 15, 20)
                                                   for e in range(3))}  # fmt: skip
    assert rep_of[row_of[1, 6]] == rep_of[row_of[0, 20]] == rep_of[row_of[1, 9]]
    assert rep_of[row_of[1, 15]] != rep_of[row_of[0, 20]]
    assert rep_of[row_of[2, 6]] != rep_of[row_of[0, 6]]


@pytest.mark.parametrize("bad", [-1, 2.5, True, "64"])
def test_bad_canvas_steps_are_named(bad):
    with pytest.raises(ValueError, match="canvas_steps"):
        PolicyConfig(canvas_steps=bad)


def test_whole_canvas_task_shows_every_step():
    task = TaskConfig(seq_len=32, prompt_bars=1, context_steps=16, whole_canvas=True)
    assert task.env_kwargs()["context_steps"] == 32 and task.canvas_steps == 32
    assert TaskConfig(seq_len=32, context_steps=16).canvas_steps == 0
    env = gym.make("DrumCompose-v0", **task.env_kwargs())
    obs, _ = env.reset(seed=0)
    assert obs["context"].shape == (32 * env.unwrapped.config.num_drums,)
    assert not obs["context"][: 16 * env.unwrapped.config.num_drums].any()  # before the primer
    with pytest.raises(ValueError, match="whole_canvas"):
        TaskConfig(whole_canvas=1)


def test_an_env_of_another_length_is_refused():
    policy = _policy()
    task = TaskConfig(seq_len=32, steps_per_bar=SPB, bars_per_phrase=BPP, context_steps=16)
    with pytest.raises(ValueError, match=f"seq_len=32 does not fit .*canvas_steps={SEQ}"):
        check_policy_fits(policy.config, task, "p.pt")


@pytest.mark.slow
def test_pretrain_ppo_generate_keep_the_whole_canvas(tmp_path):
    torch.set_num_threads(1)
    fast = {"seq_len": 32, "prompt_bars": 1, "batch_size": 16, "d_model": 16, "n_layers": 1,
            "n_heads": 2, "max_steps": 40, "progress": False, "log_every": 10}
    result = pretrain(PretrainConfig(**fast, whole_canvas=True, out=str(tmp_path / "pre")))
    saved = saved_policy_config(result.policy_path)
    assert saved["canvas_steps"] == 32 and saved["context_steps"] == 32
    common = dict(num_envs=4, num_steps=16, total_timesteps=128, seq_len=32, prompt_bars=1,
                  d_model=16, n_layers=1, n_heads=2, progress=False, tensorboard=False,
                  device="cpu", seed=0)  # fmt: skip
    tuned = train(PPOConfig(**common, whole_canvas=True, kl_coef=0.1,
                            pretrained=str(result.policy_path), out=str(tmp_path / "ppo")))
    assert load_any_policy(tuned.policy_path).config.canvas_steps == 32
    scratch = train(PPOConfig(**common, whole_canvas=True, out=str(tmp_path / "scratch")))
    assert load_any_policy(scratch.policy_path).config.canvas_steps == 32
    plain = train(PPOConfig(**common, out=str(tmp_path / "plain")))
    assert load_any_policy(plain.policy_path).config.canvas_steps == 0
    with pytest.raises(ValueError, match="seq_len=64 does not fit it"):
        train(PPOConfig(**{**common, "seq_len": 64}, pretrained=str(result.policy_path),
                        out=str(tmp_path / "other")))  # fmt: skip
    policy = load_any_policy(tuned.policy_path)
    env = gym.make_vec("DrumCompose-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       seq_len=32, prompt_bars=1, context_steps=32)  # fmt: skip
    obs, _ = env.reset(seed=0)
    act = policy_fn(policy, seed=0, env=env)
    for _ in range(16):
        actions = act(obs)
        assert actions.shape == (3, 9) and set(np.unique(actions)) <= {0, 1}
        obs, *_ = env.step(actions)
    env.close()


@pytest.mark.slow
def test_benchmark_with_the_whole_canvas_runs_every_agent_in_it(tmp_path):
    """``drum-env benchmark --whole-canvas``: the pretrained policy, PPO from it and from
    scratch, SB3 and loop-the-primer all play in envs that show the whole canvas."""
    from agents.evaluation.benchmark import BenchmarkConfig, run_benchmark

    torch.set_num_threads(1)
    cfg = BenchmarkConfig.preset(
        "smoke", agents=("ppo", "ppo+pretrain", "sb3-ppo", "pretrained", "loop"),
        whole_canvas=True, out=str(tmp_path), work=str(tmp_path / "work"), progress=False,
        pretrain_steps=20,
    )  # fmt: skip
    run_benchmark(cfg)
    work = tmp_path / "work"
    assert saved_policy_config(work / "pretrain" / "seed0" / "run" / "policy.pt")[
        "canvas_steps"] == cfg.seq_len  # fmt: skip
    for agent in ("ppo", "ppo+pretrain"):
        ckpt = work / "runs" / "aligned" / agent / "seed0" / "checkpoint.pt"
        assert torch.load(ckpt, weights_only=True)["policy_config"]["canvas_steps"] == cfg.seq_len
    text = (tmp_path / "shapings.csv").read_text()
    for agent in ("ppo+pretrain", "sb3-ppo", "pretrained", "loop"):
        assert f",{agent}," in text
