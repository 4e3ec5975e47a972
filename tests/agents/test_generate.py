import dataclasses
import json

import numpy as np
import pytest

from agents.evaluation.generate import GenerateConfig, generate
from agents.evaluation.rollout import load_any_policy
from agents.training.ppo import PPOConfig, train
from agents.training.runs import RunDirError
from dataset.midi import midi_to_sequence


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo")
    cfg = PPOConfig(
        num_envs=4,
        num_steps=16,
        total_timesteps=128,
        seq_len=32,
        d_model=16,
        n_layers=1,
        n_heads=2,
        out=str(out),
        progress=False,
        tensorboard=False,
    )
    return train(cfg)


def _config(policy, out, **changes):
    values = {"num": 2, "seq_len": 32, "prompt_bars": 1, **changes}
    return GenerateConfig(policy=str(policy), out=str(out), **values)


@pytest.mark.parametrize("which", ["policy_path", "checkpoint_path"])
def test_generate_writes_midi_npz_png_from_policy_or_checkpoint(tmp_path, trained, which):
    result = generate(_config(getattr(trained, which), tmp_path, seed=1))
    assert sorted(p.name for p in result.files) == sorted(
        f"take{i}{s}" for i in range(2) for s in (".mid", ".npz", ".png")
    )
    for i in range(2):
        with np.load(tmp_path / f"take{i}.npz", allow_pickle=False) as f:
            seq = f["sequence"]
            assert np.array_equal(seq[:16] > 0, f["reference"][:16] > 0)  # the primer is kept
        back = midi_to_sequence(tmp_path / f"take{i}.mid").sequence
        n = min(len(back), len(seq))
        assert np.array_equal(back[:n] > 0, seq[:n] > 0)
        assert (tmp_path / f"take{i}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 2


def test_generate_repeats_with_a_seed(tmp_path, trained):
    a = generate(_config(trained.policy_path, tmp_path / "a", seed=3))
    b = generate(_config(trained.policy_path, tmp_path / "b", seed=3))
    assert np.array_equal(a.rollouts.sequences, b.rollouts.sequences)


def test_the_policy_fixes_the_metre_unless_given(trained):
    cfg = GenerateConfig(policy=str(trained.policy_path))
    assert (cfg.context_steps, cfg.steps_per_bar, cfg.bars_per_phrase) == (16, 16, 4)
    assert cfg.shaping == "aligned-raw"  # returns on one fixed scale
    assert cfg.env_kwargs()["steps_per_bar"] == 16
    given = GenerateConfig(policy=str(trained.policy_path), context_steps=8)
    assert given.context_steps == 8  # any context length the policy can read
    # an explicit value is kept (no file read) and refused by generate when it does not fit
    other = dataclasses.replace(given, steps_per_bar=8, seq_len=32, out="unused")
    with pytest.raises(ValueError, match="steps_per_bar=8 does not fit"):
        generate(other)


def test_existing_takes_are_refused_unless_force(tmp_path, trained):
    generate(_config(trained.policy_path, tmp_path, num=3))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="--force"):
        generate(_config(trained.policy_path, tmp_path))
    generate(_config(trained.policy_path, tmp_path, force=True))
    assert not (tmp_path / "take2.npz").exists()  # the earlier third take is gone, not mixed in
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"  # other files are left alone


def test_generate_config_is_validated(trained):
    with pytest.raises(ValueError, match="num must be"):
        GenerateConfig(policy=str(trained.policy_path), num=0)
    with pytest.raises(ValueError, match="bpm"):
        GenerateConfig(policy=str(trained.policy_path), bpm=0)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            GenerateConfig(policy=str(trained.policy_path), temperature=bad)
    with pytest.raises(ValueError, match="velocity_anchor"):
        GenerateConfig(policy=str(trained.policy_path), velocity_anchor=-1)


def test_generate_samples_at_the_temperature(tmp_path, trained):
    """A cool temperature plays the policy's likelier steps: a fresh policy's rare hits become
    rarer; temperature 1 is the default's takes exactly."""
    plain = generate(_config(trained.policy_path, tmp_path / "a", seed=2, num=8))
    one = generate(_config(trained.policy_path, tmp_path / "b", seed=2, num=8, temperature=1.0))
    cool = generate(_config(trained.policy_path, tmp_path / "c", seed=2, num=8, temperature=0.3))
    assert np.array_equal(plain.rollouts.sequences, one.rollouts.sequences)
    p = plain.rollouts.prompt_steps
    assert (cool.rollouts.sequences[:, p:] > 0).mean() < (
        plain.rollouts.sequences[:, p:] > 0
    ).mean()


def test_velocity_anchor_needs_a_policy_with_velocity_levels(tmp_path, trained):
    with pytest.raises(ValueError, match="velocity_anchor.*binary"):
        generate(_config(trained.policy_path, tmp_path, velocity_anchor=1.0))


def test_missing_policy_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_any_policy(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        GenerateConfig(policy=str(tmp_path / "nope.pt"))


def test_takes_keep_the_primer_velocities_and_tempo_and_render_wav(tmp_path, trained):
    import wave

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):  # velocities in (0, 1], a recorded tempo of 138 bpm
        hits = rng.random((64, 9)) < 0.3
        seq = (hits * rng.uniform(0.2, 0.9, (64, 9))).astype(np.float32)
        np.savez(data / f"s{i}.npz", sequence=seq, tempo_bpm=np.float64(138.0))
    result = generate(_config(trained.policy_path, tmp_path / "out", data=str(data), wav=True,
                              seed=2))  # fmt: skip
    takes, refs = result.rollouts.takes, result.rollouts.references
    assert result.rollouts.tempos == (138.0, 138.0)
    for i, take in enumerate(takes):
        with np.load(tmp_path / "out" / f"take{i}.npz", allow_pickle=False) as f:
            saved = f["sequence"]
        np.testing.assert_array_equal(saved, take)
        primer = saved[:16]
        assert np.array_equal(primer > 0, refs[i][:16] > 0)
        assert len(np.unique(primer[primer > 0])) > 3  # dynamics kept, not all 127
        composed = saved[16:][saved[16:] > 0]
        assert composed.size == 0 or (composed.max() < 1.0 and composed.min() > 0.0)
        back = midi_to_sequence(tmp_path / "out" / f"take{i}.mid")
        assert back.tempo_bpm == pytest.approx(138.0, rel=1e-3)
        with wave.open(str(tmp_path / "out" / f"take{i}.wav"), "rb") as w:
            assert w.getnframes() > 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["bpm"] for s in summary] == [138.0, 138.0]
    fixed = generate(_config(trained.policy_path, tmp_path / "b", data=str(data), bpm=90.0))
    assert midi_to_sequence(tmp_path / "b" / "take0.mid").tempo_bpm == pytest.approx(90.0, rel=1e-3)
    assert fixed.rollouts.takes.shape == fixed.rollouts.sequences.shape


@pytest.mark.slow
def test_generate_from_an_sb3_model_zip(tmp_path):
    from agents.baselines.sb3 import BaselineConfig, train_baseline
    from agents.evaluation.rollout import SB3Policy

    run = train_baseline(BaselineConfig(total_timesteps=128, num_envs=2, num_steps=32,
                                        eval_every=0, eval_episodes=2, seq_len=32, context_steps=8,
                                        tensorboard=False, out=str(tmp_path / "sb3")))  # fmt: skip
    policy = load_any_policy(run.model_path)
    assert isinstance(policy, SB3Policy) and policy.config.context_steps == 8
    cfg = GenerateConfig(policy=str(run.model_path), out=str(tmp_path / "takes"), num=2,
                         seq_len=32, prompt_bars=1)  # fmt: skip
    assert cfg.context_steps == 8  # read from the run's config.json
    result = generate(cfg)
    assert (tmp_path / "takes" / "take1.mid").is_file()
    assert result.rollouts.sequences.shape == (2, 32, 9)
    with pytest.raises(ValueError, match="reads exactly 8 steps"):
        generate(GenerateConfig(policy=str(run.model_path), out=str(tmp_path / "t2"), num=1,
                                seq_len=32, prompt_bars=1, context_steps=16))  # fmt: skip
