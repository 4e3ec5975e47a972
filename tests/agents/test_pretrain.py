"""agents.training.pretrain: masked teacher-forced loss, targets, learning, reproducibility, env."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.policies.policy import DrumPolicy, PolicyConfig, load_policy, obs_to_tensors
from agents.training.pretrain import (
    PretrainConfig,
    PretrainResult,
    next_step_loss,
    pretrain,
    shown_values,
    window_targets,
)
from drum_env.rewards import song_features

SMALL = PolicyConfig(
    num_drums=4, context_steps=8, steps_per_bar=4, bars_per_phrase=2, target_size=15,
    d_model=16, n_layers=1, n_heads=2,
)  # fmt: skip

# 30 optimiser steps on the built-in corpus, windows of 64 steps (4 bars)
FAST = {"seq_len": 64, "batch_size": 16, "d_model": 32, "n_layers": 1, "n_heads": 4,
        "max_steps": 30,
        "learning_rate": 2e-3, "progress": False, "log_every": 10}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> PretrainResult:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return pretrain(PretrainConfig(**FAST, out=str(tmp_path_factory.mktemp("pretrain"))))
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seq_len": 1}, "seq_len"),
        ({"seq_len": 1026}, "seq_len"),
        ({"steps_per_bar": 0}, "steps_per_bar"),
        ({"bars_per_phrase": 1.5}, "bars_per_phrase"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"max_grad_norm": 0}, "max_grad_norm"),
        ({"log_every": 0}, "log_every"),
        ({"max_steps": 0}, "max_steps"),
        ({"seed": -1}, "seed"),
        ({"device": "toaster"}, "device"),
        ({"d_model": 31}, "d_model"),
        ({"n_layers": 0}, "n_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"data": 3}, "data"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PretrainConfig(**kwargs)


def test_policy_config_matches_the_env():
    from drum_env.core import DrumComposeConfig

    cfg = PretrainConfig(context_steps=16, d_model=32)
    env = DrumComposeConfig(seq_len=64, prompt_bars=1, context_steps=16)
    assert dataclasses.replace(cfg.policy_config_for(9), dropout=0.0) == (
        PolicyConfig.from_env_config(env, d_model=32, n_layers=cfg.n_layers, n_heads=cfg.n_heads)
    )


# ----------------------------------------------------------------------------- loss and targets


def test_window_targets_are_the_clipped_song_features_of_each_unpadded_window():
    rng = np.random.default_rng(0)
    lengths = [12, 8, 12, 5]
    wins = [(rng.random((n, 4)) < 0.4) * rng.uniform(0.1, 1.0, (n, 4)) for n in lengths]
    step = torch.zeros(4, 12, 4)
    for i, w in enumerate(wins):
        step[i, : len(w)] = torch.from_numpy(w)
    out = window_targets(step, torch.tensor(lengths), 4, 2)
    assert out.shape == (4, 15) and out.dtype == torch.float32
    for i, w in enumerate(wins):
        expected = np.clip(song_features(w > 0, 4, 2), 0.0, 1.0).astype(np.float32)
        np.testing.assert_array_equal(out[i].numpy(), expected)


def test_window_targets_equal_the_env_target_observation():
    import gymnasium as gym

    import drum_env  # noqa: F401

    env = gym.make("DrumCompose-v0", seq_len=64, prompt_bars=1)
    for window in (0, 5):
        obs, _ = env.reset(seed=0, options={"window": window})
        ref = env.unwrapped.data.stack([window], 64)  # bool (1, 64, D)
        target = window_targets(torch.from_numpy(ref.astype(np.float32)), torch.tensor([64]), 16, 4)
        np.testing.assert_array_equal(target[0].numpy(), obs["target"])
    env.close()


def test_masked_loss_ignores_padding():
    torch.manual_seed(0)
    policy = DrumPolicy(SMALL)
    g = torch.Generator().manual_seed(1)
    lengths = [13, 6, 9]
    samples = [(torch.rand(n, 4, generator=g) < 0.4).float() for n in lengths]
    targets = torch.rand(3, 15, generator=g)
    hits = torch.zeros(3, 13, 4)
    mask = torch.zeros(3, 13, dtype=torch.bool)
    for i, s in enumerate(samples):
        hits[i, : len(s)] = s
        hits[i, len(s) :] = 1.0  # padding that is not silence must not matter either
        mask[i, : len(s)] = True
    batch_loss, count = next_step_loss(policy, hits, mask, targets)
    assert int(count) == sum(n - 1 for n in lengths)
    losses = [
        next_step_loss(policy, s[None], torch.ones(1, len(s), dtype=torch.bool), targets[i : i + 1])
        for i, s in enumerate(samples)
    ]
    weighted = sum(loss * c for loss, c in losses) / sum(c for _, c in losses)
    torch.testing.assert_close(batch_loss, weighted, rtol=1e-5, atol=1e-6)
    # and the oracle: mean BCE per drum over the real next steps
    bce = []
    for i, s in enumerate(samples):
        phase = torch.tensor([(len(s) - 1) % SMALL.phrase_len])
        out = policy(s[None, :-1], phase, targets[i : i + 1])
        bce.append(
            torch.nn.functional.binary_cross_entropy_with_logits(
                out.logits[0], s[1:], reduction="none"
            ).mean(-1)
        )
    torch.testing.assert_close(batch_loss, torch.cat(bce).mean(), rtol=1e-5, atol=1e-6)


def test_loss_feeds_the_phase_of_the_window(monkeypatch):
    torch.manual_seed(0)
    policy = DrumPolicy(SMALL)
    seen = []
    forward = policy.forward

    def spy(steps, phase, target):
        seen.append((steps.shape[1], phase.tolist()))
        return forward(steps, phase, target)

    monkeypatch.setattr(policy, "forward", spy)
    hits = torch.zeros(2, 11, 4)
    mask = torch.ones(2, 11, dtype=torch.bool)
    next_step_loss(policy, hits, mask, torch.zeros(2, 15))
    next_step_loss(policy, hits, mask, torch.zeros(2, 15), start_phase=5)
    # 10 tokens; the last predicts window step 10: phase 10 mod 8 = 2, then (5 + 10) mod 8 = 7
    assert seen == [(10, [2, 2]), (10, [7, 7])]


def test_loss_needs_two_steps():
    torch.manual_seed(0)
    one = torch.ones(1, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="2 steps"):
        next_step_loss(DrumPolicy(SMALL), torch.zeros(1, 1, 4), one, torch.zeros(1, 15))


# ----------------------------------------------------------------------------- training


def test_pretraining_lowers_the_loss_and_writes_outputs(run: PretrainResult):
    assert run.steps == 30 and len(run.losses) == 30
    assert all(np.isfinite(run.losses))
    first, last = np.mean(run.losses[:5]), np.mean(run.losses[-5:])
    assert last < first - 0.05, (first, last)
    assert run.final_loss == pytest.approx(np.mean(run.losses[-10:]))
    assert run.policy_path.name == "policy.pt" and run.policy_path.is_file()
    assert list((run.policy_path.parent / "tb").glob("events.out.tfevents.*"))
    assert (run.policy_path.parent / "config.json").is_file()
    policy = load_policy(run.policy_path)
    assert policy.config.dropout == 0.0  # saved for acting
    assert policy.config.d_model == 32 and policy.config.target_size == 20


def test_pretraining_is_reproducible(run: PretrainResult, tmp_path: Path):
    again = pretrain(PretrainConfig(**FAST, out=str(tmp_path / "again")))
    assert again.losses == run.losses
    a, b = load_policy(run.policy_path), load_policy(again.policy_path)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    # the caller's global torch generator is left alone
    state = torch.random.get_rng_state()
    pretrain(PretrainConfig(**{**FAST, "max_steps": 2, "seed": 1}, out=str(tmp_path / "s1")))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_other_seed_other_weights(run: PretrainResult, tmp_path: Path):
    other = pretrain(PretrainConfig(**{**FAST, "max_steps": 3, "seed": 1}, out=str(tmp_path)))
    assert other.losses[:3] != run.losses[:3]


def test_pretraining_on_a_folder_with_short_sequences_fp32(tmp_path: Path):
    """Sequences shorter than seq_len give padded batches; a 6-drum corpus sizes the policy."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for i, n in enumerate([20, 48, 33, 64, 80]):
        seq = ((rng.random((n, 6)) < 0.3) * 0.9).astype(np.float32)
        np.savez(data / f"s{i}.npz", sequence=seq)
    result = pretrain(
        PretrainConfig(
            data=str(data), seq_len=32, steps_per_bar=4, bars_per_phrase=2, batch_size=4,
            epochs=2, d_model=16, n_heads=2, n_layers=1, amp=False, progress=False,
            out=str(tmp_path / "out"),
        )
    )  # fmt: skip
    assert result.steps > 0 and all(np.isfinite(result.losses))
    policy = load_policy(result.policy_path)
    assert (policy.config.num_drums, policy.config.target_size) == (6, 17)


def test_pretrained_policy_acts_in_the_env(run: PretrainResult):
    import gymnasium as gym

    import drum_env  # noqa: F401

    env = gym.make("DrumCompose-v0", seq_len=64, prompt_bars=1)
    expected = PolicyConfig.from_env_config(env.unwrapped.config, d_model=32, n_heads=4)
    policy = load_policy(run.policy_path, expected=expected)
    obs, _ = env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    steps, done = 0, False
    while not done:
        with torch.no_grad():
            actions, log_prob, value = policy.act(obs_to_tensors(obs, "cpu"), generator=generator)
        assert actions.shape == (1, 9) and torch.isfinite(log_prob).all()
        assert torch.isfinite(value).all()
        obs, _, terminated, truncated, _ = env.step(actions[0].numpy().astype(np.int8))
        done = terminated or truncated
        steps += 1
    assert steps == 48
    env.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pretraining_on_cuda_with_fp16_autocast(tmp_path: Path):
    result = pretrain(PretrainConfig(**{**FAST, "max_steps": 10}, device="cuda", out=str(tmp_path)))
    assert result.steps == 10 and all(np.isfinite(result.losses))
    assert load_policy(result.policy_path).input_proj.weight.device.type == "cpu"


def test_validation_keeps_the_best_policy_and_patience_stops(tmp_path: Path):
    """With val_data the saved policy is the one of the lowest validation loss."""
    from agents.training.pretrain import validation_loss
    from dataset.loader import get_complete_rl_dataloader
    from dataset.synthetic import default_corpus

    seqs = default_corpus()
    for part, rows in (("train", seqs[:48]), ("val", seqs[48:])):
        (tmp_path / part).mkdir()
        for i, seq in enumerate(rows):
            np.savez(tmp_path / part / f"s{i}.npz", sequence=seq)
    cfg = dict(FAST, data=str(tmp_path / "train"), val_data=str(tmp_path / "val"), log_every=5,
               max_steps=40, learning_rate=0.05)  # fmt: skip
    result = pretrain(PretrainConfig(**cfg, out=str(tmp_path / "a")))
    steps = [s for s, _ in result.val_losses]
    assert steps == sorted(set(steps)) and steps[0] == 5 and all(s % 5 == 0 for s in steps)
    values = [v for _, v in result.val_losses]
    assert result.best_val_loss == min(values)
    assert result.best_step == steps[values.index(min(values))]
    policy = load_policy(result.policy_path)
    loader = get_complete_rl_dataloader(str(tmp_path / "val"), 64, 16, 4, batch_size=16,
                                        shuffle=False, stride=16)  # fmt: skip
    again = validation_loss(policy, loader, torch.device("cpu"), PretrainConfig(**cfg))
    assert again == pytest.approx(result.best_val_loss, rel=1e-4)  # the saved one is the best
    stopped = pretrain(PretrainConfig(**{**cfg, "max_steps": 400, "patience": 1},
                                      out=str(tmp_path / "b")))  # fmt: skip
    assert stopped.steps < 400  # a validation without a new best ends the run
    with pytest.raises(ValueError, match="patience needs val_data"):
        PretrainConfig(patience=3)


def test_window_table_batches_are_the_dataloaders_in_its_seeded_order(tmp_path: Path):
    """The table gives the batches a shuffling DataLoader gives, epoch after epoch, and targets."""
    from agents.training.pretrain import WindowTable, loader_order
    from dataset.loader import get_complete_rl_dataloader, set_loader_epoch
    from dataset.synthetic import default_corpus
    from dataset.velocity import VelocityBins

    seqs = default_corpus()[:20]
    seqs[3] = seqs[3][:40]  # a window shorter than seq_len: padded, masked
    for i, seq in enumerate(seqs):
        np.savez(tmp_path / f"s{i}.npz", sequence=seq)
    loader = get_complete_rl_dataloader(str(tmp_path), 64, 16, 4, batch_size=16, shuffle=True,
                                        seed=5, stride=16)  # fmt: skip
    bins = VelocityBins.from_data(loader.dataset.sequences, 3)
    plain = WindowTable(loader.dataset, 16, 4)
    shown = WindowTable(loader.dataset, 16, 4, bins, prompt_steps=16)
    generator = torch.Generator().manual_seed(5)
    assert len(plain) == len(loader.dataset) and len(loader) > 2
    for epoch in range(3):
        set_loader_epoch(loader, epoch)
        order = loader_order(len(plain), generator)
        ours = list(plain.batches(16, order))
        theirs = list(loader)
        assert len(ours) == len(theirs)
        for first, a, b in zip(range(0, len(order), 16), ours, theirs):
            for key in ("step", "mask", "lengths"):
                assert torch.equal(a[key], b[key]), (epoch, key)
            expect = window_targets(b["step"], b["lengths"], 16, 4)
            assert torch.equal(a["target"], expect)
            values = shown_values(b["step"], bins, 16)
            expect = window_targets(b["step"], b["lengths"], 16, 4, values)
            assert torch.equal(shown.batch(order[first : first + 16])["target"], expect)
    assert any(not bool(b["mask"].all()) for b in plain.batches(16))  # the short one, padded


def test_pretraining_reports_where_its_time_goes(run: PretrainResult):
    parts = run.timings
    for clock in ("", "_cpu"):
        data, model, total = (parts[k + clock] for k in ("data", "model", "total"))
        assert data > 0 and model > 0 and parts["validation" + clock] == 0.0  # no val_data
        assert data + model < total
    assert len(parts) == 8
