"""Untrusted files stay inert: one regression test per row of the second adversarial round.

Issue 21 (against 0.3.0), rows 1-13: a crafted SB3 ``model.zip`` never runs its pickles, a
symlinked lock (or run file, or take) is never followed, registered metrics and reward terms are
checked and named, a policy and an env agree or refuse on every path, tempi and headers are
bounded where they are read, and messages name what the user gave. The first round's rows live
in ``tests/test_faults.py``.

Every CLI row runs ``agents.cli.main(argv)`` in-process and checks what a user sees: exit status
2 and one stderr line that names the argument or the file.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from torch_threads import one_torch_thread  # noqa: F401  (autouse: one torch thread)

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from agents.cli import main
from agents.training.runs import LOCK_FILE, RunDirError, RunLock, prepare_run_dir
from dataset.io import (
    DataError,
    SymlinkError,
    atomic_write,
    load_npz_file,
    read_npz_tempo,
)
from dataset.registry import register_metric, unregister_metric

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--total-timesteps", "512", "--num-envs", "16", "--num-steps", "32", "--seq-len",
              "32", "--no-tensorboard", "--no-progress"]  # fmt: skip


def error_line(capsys, command: str) -> str:
    """The one stderr line of a failed command (no usage block, no traceback)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"drum-env {command}: error: "), lines[0]
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """A 64-step SB3 PPO run of ``drum-env baseline``: ``model.zip``, its sidecar, config.json."""
    from agents.baselines.sb3 import BaselineConfig, train_baseline

    out = tmp_path_factory.mktemp("inert") / "sb3"
    train_baseline(BaselineConfig(out=str(out), seq_len=32, num_envs=2, num_steps=16,
                                  total_timesteps=64, eval_every=0, eval_episodes=2,
                                  tensorboard=False))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory) -> Path:
    """An untrained Transformer policy file (binary hits), sized for the default task."""
    import torch

    from agents.policies.policy import make_policy, save_policy

    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1)
    torch.manual_seed(0)
    policy = make_policy("transformer", env.unwrapped.config, d_model=16, n_layers=1)
    env.close()
    return save_policy(tmp_path_factory.mktemp("inert") / "policy.pt", policy)


# ------------------------------------------------------------------ row 1: model.zip stays data


class _Touch:
    """Unpickling it creates ``path``: the marker of code run from a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def poison(zip_path: Path, marker: Path) -> Path:
    """Rewrite ``zip_path``'s ``data`` so that every pickled value creates ``marker`` on load."""
    payload = base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    with zipfile.ZipFile(zip_path) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    data = json.loads(entries["data"])
    for value in data.values():
        if isinstance(value, dict) and ":serialized:" in value:
            value[":serialized:"] = payload
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(zip_path, "w") as z:
        for name, content in entries.items():
            z.writestr(name, content)
    return zip_path


def test_row1_the_poisoned_zip_would_run_under_sb3s_loader(baseline, tmp_path):
    """The payload is live: SB3's own JSON decoding runs it (so the next tests test something)."""
    from stable_baselines3.common.save_util import json_to_data

    marker = tmp_path / "ran"
    zip_path = poison(shutil.copy(baseline / "model.zip", tmp_path / "model.zip"), marker)
    with zipfile.ZipFile(zip_path) as z:
        json_to_data(z.read("data").decode())
    assert marker.exists()


def test_row1_load_any_policy_never_unpickles_a_model_zip(baseline, tmp_path):
    from agents.evaluation.rollout import SB3Policy, load_any_policy

    marker = tmp_path / "ran"
    run = shutil.copytree(baseline, tmp_path / "run")
    poison(run / "model.zip", marker)
    assert isinstance(load_any_policy(run / "model.zip"), SB3Policy)  # rebuilt from data
    (run / "sb3_policy.json").unlink()  # a 0.3.0 run: config.json and the zip's plain JSON
    assert isinstance(load_any_policy(run / "model.zip"), SB3Policy)
    assert not marker.exists()


def test_row1_generate_on_a_foreign_poisoned_zip_refuses_without_running_it(baseline, tmp_path,
                                                                            capsys):  # fmt: skip
    marker = tmp_path / "ran"
    foreign = poison(shutil.copy(baseline / "model.zip", tmp_path / "model.zip"), marker)
    assert main(["generate", str(foreign), "--out", str(tmp_path / "takes")]) == 2
    line = error_line(capsys, "generate")
    assert "model.zip" in line and "never unpickles" in line and "trust_sb3_zip" in line
    assert not marker.exists() and not (tmp_path / "takes").exists()


def test_row1_a_trusted_zip_converts_and_plays_as_sb3_played_it(baseline, tmp_path):
    from stable_baselines3 import PPO

    from agents.baselines.sb3_load import SIDECAR_FILE, trust_sb3_zip
    from agents.evaluation.rollout import (
        load_any_policy,
        policy_fn,
        rollout_episodes,
        sb3_policy_fn,
    )

    foreign = shutil.copy(baseline / "model.zip", tmp_path / "model.zip")
    with pytest.raises(ValueError, match="trust_sb3_zip"):
        load_any_policy(foreign)
    assert trust_sb3_zip(foreign) == tmp_path / SIDECAR_FILE
    task = {"seq_len": 32, "prompt_bars": 1, "context_steps": 16}
    ours = rollout_episodes(policy_fn(load_any_policy(foreign)), task, episodes=3, seed=1)
    sb3 = rollout_episodes(sb3_policy_fn(PPO.load(foreign, device="cpu")), task, episodes=3,
                           seed=1)  # fmt: skip
    np.testing.assert_array_equal(ours.takes, sb3.takes)  # bit for bit, as PPO.load seeded it


def test_row1_a_truncated_or_inflated_zip_is_refused_by_name(baseline, tmp_path):
    from agents.evaluation.rollout import load_any_policy

    run = shutil.copytree(baseline, tmp_path / "run")
    raw = (run / "model.zip").read_bytes()
    (run / "model.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="model.zip.*not a Stable-Baselines3 model.zip"):
        load_any_policy(run / "model.zip")
    with zipfile.ZipFile(run / "model.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data", "{}")
        z.writestr("policy.pth", bytes(300 * 2**20))  # 300 MiB of zeros in a few hundred KB
    with pytest.raises(ValueError, match="'policy.pth' entry inflates"):
        load_any_policy(run / "model.zip")


# ------------------------------------------------------------------- row 2: no link is followed


def test_row2_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).symlink_to(victim)
    with pytest.raises(RunDirError, match=r"\.lock is a symbolic link .*victim.txt"):
        RunLock(out).acquire()
    assert main(["train", *TINY_TRAIN, "--out", str(out)]) == 2
    assert "symbolic link" in error_line(capsys, "train")
    assert victim.read_text() == "precious"
    assert (out / LOCK_FILE).is_symlink()  # left for the user to look at


def test_row2_run_files_and_takes_are_never_written_through_links(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").symlink_to(victim)
    with pytest.raises(RunDirError, match=r"config.json \(to .*victim.txt"):
        prepare_run_dir(out, {"seed": 0})
    prepare_run_dir(out, {"seed": 0}, force=True)  # force removes the link, not its target
    assert not (out / "config.json").is_symlink() and victim.read_text() == "precious"
    link = tmp_path / "take0.mid"
    link.symlink_to(victim)
    with pytest.raises(SymlinkError, match="take0.mid"):
        atomic_write(link, lambda f: f.write(b"x"))
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1)
    env.reset(seed=0)
    for suffix in (".mid", ".npz", ".wav"):
        target = tmp_path / f"take{suffix}"
        target.symlink_to(victim)
        with pytest.raises(SymlinkError, match=f"take{suffix}"):
            env.unwrapped.save(target)
    from drum_env.render import save_piano_roll_png

    (tmp_path / "take.png").symlink_to(victim)
    with pytest.raises(SymlinkError, match="take.png"):
        save_piano_roll_png(env.unwrapped.take, tmp_path / "take.png")
    assert victim.read_text() == "precious"


# ------------------------------------------------------------------- rows 3-4: registered metrics


@pytest.fixture
def metric():
    """Register a song metric for one test; it is removed afterwards."""
    names = []

    def register(name, fn, **kwargs):
        register_metric(name, fn, levels=("song",), **kwargs)
        names.append(name)

    yield register
    for name in dict.fromkeys(names):
        unregister_metric(name)


def play_one_episode(silent: bool = False, **kwargs):
    """One seeded episode: random hits, or silence after the primer."""
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    terminated, rewards = False, []
    while not terminated:
        action = np.zeros_like(env.action_space.sample()) if silent else env.action_space.sample()
        _, reward, terminated, _, _ = env.step(action)
        rewards.append(reward)
    return rewards


def test_row3_an_empty_metric_is_an_error_naming_it_never_a_nan_reward(metric):
    metric("hollow", lambda seq, grid: np.zeros(0))
    with pytest.raises(ValueError, match="metric 'hollow' returned an empty value"):
        play_one_episode(weights={"metrics": 1})


def test_row3_a_non_finite_reward_term_is_an_error_naming_it(monkeypatch):
    from drum_env import rewards

    monkeypatch.setattr(rewards, "registered_distance", lambda a, *rest: np.full(len(a), np.nan))
    with pytest.raises(ValueError, match=r"reward term\(s\) metrics \(nan\) are not finite"):
        play_one_episode(weights={"metrics": 1})


def test_row4_a_metric_of_varying_length_is_named(metric):
    metric("ragged", lambda seq, grid: np.ones(1 + int((np.asarray(seq) > 0).sum()) % 3))
    from dataset.registry import registered_metrics

    spec = registered_metrics("song")["ragged"]
    seqs = np.zeros((3, 16, 2))
    seqs[1, 0, 0] = seqs[2, :2, 0] = 1
    with pytest.raises(ValueError, match="metric 'ragged' returned values of different shapes"):
        spec(seqs)
    # longer when the second half has a hit: the reference has, a silent continuation has not
    metric("ragged", lambda seq, grid: np.ones(1 + int((np.asarray(seq)[16:] > 0).any())),
           replace=True)
    with pytest.raises(ValueError, match="metric 'ragged' returned shape"):
        play_one_episode(silent=True, weights={"metrics": 1})


# -------------------------------------------------------------- row 5: a policy fits its env or not


def test_row5_the_python_path_refuses_an_env_of_other_velocity_levels(tmp_path):
    import torch

    from agents.evaluation.rollout import load_any_policy, policy_fn
    from agents.policies.policy import make_policy, save_policy

    four = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, velocity_levels=4)
    torch.manual_seed(0)
    path = save_policy(tmp_path / "k4.pt", make_policy("transformer", four.unwrapped.config,
                                                       d_model=16, n_layers=1))  # fmt: skip
    policy = load_any_policy(path)
    many = gym.make_vec("DrumCompose-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        seq_len=32, prompt_bars=1, velocity_levels=127)  # fmt: skip
    with pytest.raises(ValueError, match="velocity_levels=127 does not fit .*velocity_levels=4"):
        policy_fn(policy, env=many)
    from dataset.velocity import VelocityBins

    rebinned = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, velocity_levels=4,
                        velocity_bins=VelocityBins.uniform(4))  # fmt: skip
    with pytest.raises(ValueError, match="velocity_bins of the env"):
        policy_fn(policy, env=rebinned)
    policy_fn(policy, env=four)  # its own env: fine
    binary = gym.make_vec("DrumCompose-v0", num_envs=2, vectorization_mode="vector_entry_point",
                          seq_len=32, prompt_bars=1)  # fmt: skip
    obs, _ = binary.reset(seed=0)
    layout = r"observation 'target' has 20 values.*reads 48 \(target_size\)"
    with pytest.raises(ValueError, match=layout):
        policy_fn(policy)(obs)  # without the env: the observation's layout is checked
    many.close()
    binary.close()


# ------------------------------------------------------------------------ rows 6-8: bounded numbers


@pytest.mark.parametrize("bpm", ["1e9", "1e-3", "nan"])
def test_rows6_7_generate_bounds_bpm_and_names_it(bpm, policy_file, tmp_path, capsys):
    out = tmp_path / "takes"
    argv = ["generate", str(policy_file), "--seq-len", "32", "--num", "1", "--bpm", bpm,
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    line = error_line(capsys, "generate")
    assert "bpm" in line and "20" in line and "400" in line
    assert not out.exists()


def test_rows6_7_every_writer_bounds_the_tempo(tmp_path):
    from dataset.midi import sequence_to_midi
    from drum_env.audio import MAX_WAV_SECONDS, render_audio

    seq = np.eye(16, 9, dtype=np.float32)
    for bpm in (1e9, 1e-3, 19.9, 400.1):
        with pytest.raises(ValueError, match="bpm must be a tempo from 20 to 400"):
            sequence_to_midi(seq, tmp_path / "x.mid", bpm=bpm)
        with pytest.raises(ValueError, match="bpm must be a tempo from 20 to 400"):
            render_audio(seq, bpm=bpm)
    long = np.zeros((4000, 9), np.float32)  # 4000 16ths at 20 bpm: 50 minutes
    with pytest.raises(ValueError, match=f"more than the limit of {MAX_WAV_SECONDS:,.0f} s"):
        render_audio(long, bpm=20)


def test_row7_a_file_with_an_absurd_tempo_is_named(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    seq = (np.random.default_rng(0).random((64, 9)) < 0.2).astype(np.float32)
    np.savez(data / "slow.npz", sequence=seq, tempo_bpm=np.float64(1e-3))
    with pytest.raises(DataError, match=r"slow.npz: its 'tempo_bpm' must be a tempo from 20"):
        load_npz_file(data / "slow.npz")
    with pytest.raises(DataError, match="slow.npz"):
        read_npz_tempo(data / "slow.npz")
    with pytest.raises(DataError, match="slow.npz"):
        gym.make("DrumCompose-v0", data=str(data), seq_len=32, prompt_bars=1)
    assert main(["stats", str(data), "--seq-len", "32"]) == 2
    assert "slow.npz" in error_line(capsys, "stats")
    assert main(["stats", "--bpm", "1e-3"]) == 2
    assert "--bpm" in error_line(capsys, "stats")


def npz_with_claim(path: Path, key: str, shape: tuple[int, ...]) -> Path:
    """A small .npz with a good ``sequence`` and an entry ``key`` whose header claims ``shape``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    good = io.BytesIO()
    np.save(good, np.eye(64, 9, dtype=np.float32))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("sequence.npy", good.getvalue())
        z.writestr(f"{key}.npy", header.getvalue() + bytes(64))
    return path


@pytest.mark.parametrize("key", ["tempo_bpm", "reference"])
def test_row8_every_array_header_is_checked_before_allocating(key, tmp_path):
    path = npz_with_claim(tmp_path / "claim.npz", key, (10**11,))
    assert path.stat().st_size < 4096
    claims = rf"claim.npz: array '{key}' claims shape \(100000000000,\)"
    with pytest.raises(DataError, match=claims):
        load_npz_file(path)
    if key == "tempo_bpm":
        with pytest.raises(DataError, match="claim.npz: array 'tempo_bpm' claims"):
            read_npz_tempo(path)


# ------------------------------------------------------------------------- row 9: the compiler


def test_row9_a_missing_cxx_is_named_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    out = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, "--compile", "--out", str(out)]) == 2
    line = error_line(capsys, "train")
    assert "$CXX=" in line and "no-such-g++" in line
    assert not out.exists()  # no run folder, no config.json


# ---------------------------------------------------------------------- rows 10, 13: resume


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """One-iteration runs of each policy kind."""
    runs = {}
    for kind in ("transformer", "mlp"):
        out = tmp_path_factory.mktemp("inert") / kind
        assert main(["train", *TINY_TRAIN, "--policy-kind", kind, "--out", str(out)]) == 0
        runs[kind] = out
    return runs


@pytest.mark.parametrize(("saved", "asked"), [("transformer", "mlp"), ("mlp", "transformer")])
def test_row10_a_refused_resume_names_the_changed_policy_kind(saved, asked, tiny_runs, tmp_path,
                                                              capsys):  # fmt: skip
    out = shutil.copytree(tiny_runs[saved], tmp_path / "run")
    before = (out / "checkpoint.pt").read_bytes()
    argv = ["train", *TINY_TRAIN, "--out", str(out), "--resume", "--policy-kind", asked,
            "--total-timesteps", "1024"]  # fmt: skip
    assert main(argv) == 2
    line = error_line(capsys, "train")
    assert f"policy_kind (checkpoint '{saved}', now '{asked}')" in line
    assert (out / "checkpoint.pt").read_bytes() == before


def test_row13_a_checkpoint_that_is_a_folder_is_named_as_such(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint.pt").mkdir(parents=True)
    assert main(["train", *TINY_TRAIN, "--out", str(out), "--resume"]) == 2
    line = error_line(capsys, "train")
    assert "checkpoint.pt is a folder" in line and "has no" not in line


# --------------------------------------------------------------------------- row 11: the extra


def test_row11_tune_in_a_base_install_asks_for_the_tune_extra(tmp_path):
    code = (
        "import sys\n"
        "for m in ('torch', 'stable_baselines3', 'tensorboard', 'optuna', 'sqlalchemy'):\n"
        "    sys.modules[m] = None  # as in a base install\n"
        "from agents.cli import main\n"
        "sys.exit(main(['tune', '--study-name', 's', '--n-trials', '0', '--no-progress']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "pip install 'drum-env[tune]'" in done.stderr and "[train]" not in done.stderr


def test_row11_the_tune_extra_installs_optuna_and_training_and_all_holds_it():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]  # fmt: skip
    assert any(r.startswith("optuna") for r in extras["tune"])
    assert "drum-env[train]" in extras["tune"]
    assert "tune" in extras["all"][0] and "train" in extras["all"][0]


# ------------------------------------------------------------------------ row 12: save before reset


def test_row12_saving_a_take_before_any_reset_is_an_error(tmp_path):
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1)
    with pytest.raises(RuntimeError, match=r"no episode yet: reset\(\) the env"):
        env.unwrapped.save(tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
    vec = gym.make_vec("DrumCompose-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       seq_len=32, prompt_bars=1)  # fmt: skip
    with pytest.raises(RuntimeError, match="no episode yet"):
        vec.unwrapped.takes  # noqa: B018
    env.reset(seed=0)
    assert env.unwrapped.save(tmp_path / "x.npz").is_file()
