"""The learned reward (agents.discriminator): what D reads, that it learns, its reward, resume."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ddp_run import torchrun

from agents.training.discriminator import FeatureDiscriminator, add_discriminator_reward
from dataset.evaluation import feature_matrix, score_sets


def grooves(n: int, seed: int, steps: int = 48, drums: int = 9) -> list[np.ndarray]:
    """Rock-like bars: kick on 1 and 3, snare on 2 and 4, hi-hat on 8ths, a few random extras."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = np.zeros((steps, drums), dtype=np.float32)
        x[0::8, 0] = 1
        x[4::8, 1] = 1
        x[0::2, 2] = 1
        x[rng.random((steps, drums)) < 0.02] = 1
        out.append(x)
    return out


def noise(n: int, seed: int, steps: int = 48, drums: int = 9) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((steps, drums)) < 0.15).astype(np.float32) for _ in range(n)]


def test_feature_matrix_has_one_column_per_headline_feature():
    real, gen = grooves(40, 0), noise(40, 1)
    x, names, ref = feature_matrix(real)
    score = score_sets(gen, real)
    assert names == list(score.features)  # the same features, in the same order
    assert x.shape == (40, len(names))
    y, names_gen, _ = feature_matrix(gen, real=ref)
    assert names_gen == names  # the real set fixes the columns
    assert y.shape == (40, len(names))
    # a column is the feature of each sequence: the first is density/avg_hits
    assert names[0] == "density/avg_hits"
    assert np.allclose(y[:, 0], [g.sum() / len(g) for g in gen])


def test_discriminator_learns_real_from_noise_and_rewards_real_like_takes():
    disc = FeatureDiscriminator(grooves(64, 0), 16, 4, coef=2.0, clip=5.0, updates=50, seed=0)
    fake, gen = noise(64, 1), torch.Generator().manual_seed(0)
    for _ in range(4):
        stats = disc.update(fake, gen)
    assert stats["disc/accuracy"] > 0.9
    real_r, fake_r = disc.reward(grooves(32, 5)), disc.reward(noise(32, 6))
    assert real_r.shape == (32,) and fake_r.shape == (32,)
    assert real_r.mean() > fake_r.mean() + 1.0
    # the reward is coef * the clipped logit of D
    with torch.no_grad():
        z = disc.logits(disc.features(noise(32, 6))).clamp(-5, 5).double().numpy()
    assert np.allclose(fake_r, 2.0 * z)
    assert np.all(np.abs(fake_r) <= 2.0 * 5.0 + 1e-9)
    assert disc.reward([]).shape == (0,)


def test_replay_keeps_the_last_iterations():
    disc = FeatureDiscriminator(grooves(16, 0), 16, 4, replay=2, updates=1)
    for k in (3, 4, 5):
        disc.update(noise(k, k), torch.Generator())
    assert [len(c) for c in disc.composed] == [4, 5]


def test_state_round_trip_gives_the_same_rewards_and_updates():
    a = FeatureDiscriminator(grooves(32, 0), 16, 4, updates=3, seed=1)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator()
    a.update(noise(8, 1), ga)
    b = FeatureDiscriminator(grooves(32, 0), 16, 4, updates=3, seed=7)
    saved = io.BytesIO()  # through bytes, as a checkpoint is (optimiser state is not shared)
    replay = {k: torch.as_tensor(v) for k, v in a.replay_state().items()}
    torch.save({"module": a.state_dict(), "replay": replay}, saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    b.load_state_dict(state["module"])
    b.load_replay_state({k: v.numpy() for k, v in state["replay"].items()})
    gb.set_state(ga.get_state())
    takes = noise(8, 2)
    assert np.array_equal(a.reward(takes), b.reward(takes))
    assert a.update(takes, ga) == b.update(takes, gb)
    assert np.array_equal(a.reward(takes), b.reward(takes))


def test_the_reward_lands_on_the_last_step_of_each_finished_episode():
    disc = FeatureDiscriminator(grooves(32, 0), 16, 4, coef=1.0, updates=1, seed=0)
    canvases = np.stack(grooves(3, 9, steps=64))  # primer of 16 steps + 48 composed
    rewards = np.zeros((8, 4))
    takes = [(2, np.array([0, 3]), canvases[:2]), (7, np.array([1]), canvases[2:])]
    expected = disc.reward([c[16:] for c in canvases])
    stats = add_discriminator_reward(disc, takes, rewards, 16, torch.Generator())
    assert rewards[2, 0] == expected[0] and rewards[2, 3] == expected[1]
    assert rewards[7, 1] == expected[2]
    assert np.count_nonzero(rewards) == 3
    assert stats["disc/reward"] == pytest.approx(expected.mean())
    assert [len(c) for c in disc.composed] == [3]  # D trained on them
    assert add_discriminator_reward(disc, [], rewards, 16, torch.Generator()) == {}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="at least 2 real"):
        FeatureDiscriminator(grooves(1, 0), 16, 4)


# ----------------------------------------------------------------------------- in the trainer

TINY = dict(
    num_envs=4, num_steps=16, seq_len=32, d_model=16, n_layers=1, n_heads=2, progress=False,
    tensorboard=False, device="cpu", seed=3, disc_coef=1.0, disc_updates=2, disc_replay=3,
)  # fmt: skip


@pytest.mark.slow
def test_a_run_with_the_discriminator_logs_it_repeats_and_resumes_exactly(tmp_path):
    from agents.training.checkpoint import load_checkpoint
    from agents.training.ppo import PPOConfig, train

    def run(name: str, **changes):
        return train(PPOConfig(**{**TINY, "out": str(tmp_path / name), "total_timesteps": 640,
                                  **changes}))  # fmt: skip

    full = run("full")
    again = run("again")
    rows = full.history
    assert all(0.0 <= r["disc/accuracy"] <= 1.0 for r in rows if "disc/accuracy" in r)
    assert sum("disc/reward" in r for r in rows) >= len(rows) // 2  # episodes end most iterations
    for k, v in full.policy.state_dict().items():
        assert torch.equal(v, again.policy.state_dict()[k]), k

    part = train(PPOConfig(**{**TINY, "out": str(tmp_path / "part"), "total_timesteps": 640}),
                 callback=lambda m: m["iteration"] < 4)  # fmt: skip
    assert part.iterations == 4
    resumed = run("part", resume=True)
    for k, v in full.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k]), k
    a, b = load_checkpoint(full.checkpoint_path), load_checkpoint(resumed.checkpoint_path)
    for k, v in a["discriminator"]["net"].items():
        assert torch.equal(v, b["discriminator"]["net"][k]), k
    assert [r.get("disc/loss") for r in a["history"]] == [r.get("disc/loss") for r in b["history"]]


def test_the_discriminator_is_off_by_default_and_its_settings_are_checked(tmp_path):
    from agents.training.ppo import PPOConfig

    assert PPOConfig(out=str(tmp_path / "x")).disc_coef == 0.0
    with pytest.raises(ValueError, match="disc_coef"):
        PPOConfig(out=str(tmp_path / "x"), disc_coef=-1.0)
    with pytest.raises(ValueError, match="disc_replay"):
        PPOConfig(out=str(tmp_path / "x"), disc_replay=0)


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_under_ddp_the_ranks_agree_and_a_split_run_resumes_to_the_same_end(tmp_path):
    """D's gradients are averaged (the ranks hold one D) and each rank's replay is saved: a run
    stopped at iteration 2 and resumed ends where the whole run ends."""
    torchrun(tmp_path / "full", "--disc-coef", "1.0")
    torchrun(tmp_path / "split", "--disc-coef", "1.0", "--stop-at", "2")
    torchrun(tmp_path / "split", "--disc-coef", "1.0", "--resume")
    r0, r1, s0 = (torch.load(tmp_path / run / f"rank{r}.pt", weights_only=True)["model"]
                  for run, r in (("full", 0), ("full", 1), ("split", 0)))  # fmt: skip
    for k in r0:
        assert torch.equal(r0[k], r1[k]) and torch.equal(r0[k], s0[k]), k
    from agents.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    assert len(ckpt["ranks"]) == 2 and all("discriminator" in r for r in ckpt["ranks"])
    assert any("disc/accuracy" in row for row in ckpt["history"])


# ----------------------------------------------------------------------------- in the benchmark


def test_the_benchmark_row_is_opt_in_custom_ppo_only_and_maps_to_its_preset():
    from agents.evaluation.benchmark import DEFAULT_SHAPINGS, BenchmarkConfig

    assert "aligned+disc" not in DEFAULT_SHAPINGS
    cfg = BenchmarkConfig(shapings=("aligned", "aligned+disc"), seeds=(0,))
    cells = cfg.cells()
    assert ("aligned+disc", "ppo", 0) in cells and ("aligned+disc", "ppo+pretrain", 0) in cells
    assert ("aligned+disc", "sb3-ppo", 0) not in cells and ("aligned", "sb3-ppo", 0) in cells
    assert cfg.reward_setup("aligned+disc") == ("aligned", None, "running")


@pytest.mark.slow
def test_a_smoke_benchmark_with_the_disc_row_trains_with_the_discriminator(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare_shapings.py"), "--smoke",
         "--no-progress", "--out", str(out), "--work", str(out / "work"),
         "--shapings", "aligned+disc"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(out / "work" / "runs" / "aligned+disc" / "ppo" / "seed0" / "checkpoint.pt",
                      weights_only=True)  # fmt: skip
    assert ckpt["config"]["disc_coef"] == 1.0 and ckpt["config"]["shaping"] == "aligned"
    assert "discriminator" in ckpt
    md = (out / "shapings.md").read_text()
    assert "| aligned+disc |" in md and "learned from data" in md


# ----------------------------------------------------------------------------- the energy witness


def test_energy_witness_is_the_energy_distances_derivative_over_weighted_features():
    """r(x) = coef * sum_k w_k (mean |x_k - x'_k| - mean |x_k - y_k|) over the takes (replay and
    this batch) and the real rows, features standardised by the real set, each family weighing
    as much as in the headline (w sums to 1/families per family)."""
    from agents.training.discriminator import EnergyWitness

    real, earlier, takes = grooves(60, 0), noise(10, 1), grooves(5, 2) + noise(5, 3)
    witness = EnergyWitness(real, 16, 4, coef=2.5, replay=3)
    families = [n.split("/", 1)[0] for n in witness.names]
    w = witness.weights.double().numpy()
    for fam in set(families):
        mask = np.array([f == fam for f in families])
        assert w[mask].sum() == pytest.approx(1 / len(set(families)))
    witness.update_rows(witness.features(earlier), torch.Generator().manual_seed(0))
    x = witness.features(takes).double().numpy()
    fake = np.concatenate([witness.features(earlier).double().numpy(), x])
    y = witness.real.double().numpy()
    expected = 2.5 * np.array([
        (np.abs(row - fake) * w).sum(1).mean() - (np.abs(row - y) * w).sum(1).mean()
        for row in x
    ])  # fmt: skip
    assert np.allclose(witness.reward(takes), expected, atol=1e-4)


def test_energy_witness_rewards_takes_where_takes_are_rarer_than_real_drumming():
    """Among takes half like the real set and half noise, the real-like ones earn more; a set
    like the real one is near zero energy distance, a collapsed set (one take repeated) and
    noise far from it."""
    from agents.training.discriminator import EnergyWitness

    real = grooves(200, 0)
    witness = EnergyWitness(real, 16, 4, replay=1)
    mixed = witness.reward(grooves(20, 1) + noise(20, 2))
    assert mixed[:20].mean() > mixed[20:].mean() + 0.1
    g = torch.Generator().manual_seed(0)

    def energy(takes):
        witness.composed = []
        return witness.update_rows(witness.features(takes), g)["disc/energy"]

    like, collapsed = energy(grooves(100, 3)), energy(grooves(1, 4) * 100)
    far = energy(noise(100, 5))
    assert abs(like) < collapsed and abs(like) < far
    assert collapsed > 0 and far > 0


@pytest.mark.slow
def test_a_run_with_the_energy_witness_logs_it_repeats_and_resumes_exactly(tmp_path):
    from agents.training.ppo import PPOConfig, train

    def run(name: str, **changes):
        return train(PPOConfig(**{**TINY, "disc_kind": "energy", "out": str(tmp_path / name),
                                  "total_timesteps": 640, **changes}))  # fmt: skip

    full = run("full")
    assert sum(np.isfinite(r.get("disc/energy", np.nan)) for r in full.history) >= 2
    assert all("disc/accuracy" not in r for r in full.history)
    stopped = train(PPOConfig(**{**TINY, "disc_kind": "energy", "out": str(tmp_path / "split"),
                                 "total_timesteps": 640}),
                    callback=lambda m: m["iteration"] < 4)  # fmt: skip
    assert stopped.iterations == 4
    resumed = run("split", resume=True)
    for k, v in full.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k]), k
    with pytest.raises(ValueError, match="disc_kind"):
        PPOConfig(out=str(tmp_path / "x"), disc_kind="gan")
