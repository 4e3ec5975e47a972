import json

import numpy as np
import pytest

from agents.generate import generate, load_any_policy
from agents.ppo import PPOConfig, train
from dataset.midi import midi_to_sequence


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo")
    cfg = PPOConfig(num_envs=4, num_steps=16, total_timesteps=128, seq_len=32, d_model=16,
                    n_layers=1, n_heads=2, out=str(out), progress=False, tensorboard=False)
    return train(cfg)


@pytest.mark.parametrize("which", ["policy_path", "checkpoint_path"])
def test_generate_writes_midi_npz_png_from_policy_or_checkpoint(tmp_path, trained, which):
    result = generate(getattr(trained, which), tmp_path, num=2,
                      env_kwargs={"seq_len": 32, "prompt_bars": 1}, seed=1)
    assert sorted(p.name for p in result.files) == sorted(
        f"take{i}{s}" for i in range(2) for s in (".mid", ".npz", ".png"))
    for i in range(2):
        with np.load(tmp_path / f"take{i}.npz", allow_pickle=False) as f:
            seq = f["sequence"]
            assert np.array_equal(seq[:16], f["reference"][:16])  # the primer is kept
        back = midi_to_sequence(tmp_path / f"take{i}.mid").sequence
        n = min(len(back), len(seq))
        assert np.array_equal(back[:n] > 0, seq[:n] > 0)
        assert (tmp_path / f"take{i}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 2


def test_generate_repeats_with_a_seed(tmp_path, trained):
    kwargs = {"seq_len": 32, "prompt_bars": 1}
    a = generate(trained.policy_path, tmp_path / "a", num=2, env_kwargs=kwargs, seed=3)
    b = generate(trained.policy_path, tmp_path / "b", num=2, env_kwargs=kwargs, seed=3)
    assert np.array_equal(a.rollouts.sequences, b.rollouts.sequences)


def test_missing_policy_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_any_policy(tmp_path / "nope.pt")
