"""Tests of agents/training/run_logs.py: takes in TensorBoard, HParams, W&B, run folders."""

from __future__ import annotations

import doctest
import math
import re
from pathlib import Path

import pytest

from agents.training import run_logs
from agents.training.ppo import PPOConfig, train
from drum_env.audio import SAMPLE_RATE
from drum_env.rewards import TERMS, VELOCITY_TERMS

TINY = dict(
    num_envs=4, num_steps=16, total_timesteps=512, seq_len=32, d_model=16, n_layers=1,
    n_heads=2, progress=False, tensorboard=True, device="cpu", seed=3,
)  # fmt: skip


def tiny(tmp_path: Path, name: str, **changes) -> PPOConfig:
    return PPOConfig(**{**TINY, "out": str(tmp_path / name), **changes})


def events(folder: Path):
    """The TensorBoard entries of ``folder`` (all of them kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"audio": 0, "images": 0, "scalars": 0,
                                                       "tensors": 0})  # fmt: skip
    acc.Reload()
    return acc


def hparams_entry(acc) -> tuple[dict, list[str]]:
    """The HParams plugin's session values and its metric names."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]).experiment
    values = {}
    for key, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        values[key] = getattr(value, kind)
    return values, [m.name.tag for m in experiment.metric_infos]


def test_doctests():
    assert doctest.testmod(run_logs).failed == 0


def test_train_logs_takes_as_audio_and_piano_rolls_then_its_hparams(tmp_path):
    result = train(tiny(tmp_path, "run", capture_every=4))  # 8 iterations of 64 env steps
    acc = events(tmp_path / "run" / "tb")
    tags = acc.Tags()
    n = run_logs.CAPTURE_TAKES
    assert sorted(tags["images"]) == [f"takes/{i}" for i in range(n)]
    assert sorted(tags["audio"]) == sorted([f"takes/{i}/{who}" for i in range(n)
                                            for who in ("agent", "real")])  # fmt: skip
    # a take at iterations 4 and 8 (env steps 256, 512); the real continuation once
    assert [e.step for e in acc.Audio("takes/0/agent")] == [256, 512]
    assert [e.step for e in acc.Audio("takes/0/real")] == [256]
    clip = acc.Audio("takes/0/agent")[0]
    assert clip.sample_rate == SAMPLE_RATE and clip.encoded_audio_string[:4] == b"RIFF"
    assert acc.Images("takes/0")[-1].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"

    values, metrics = hparams_entry(acc)
    assert metrics == ["hparam/episodic_return_raw", "hparam/episode_song_raw"]
    assert values["seed"] == 3 and values["num_envs"] == 4 and values["shaping"] == "aligned"
    assert values["data"] == "none" and values["capture_every"] == 4
    final = acc.Scalars("hparam/episodic_return_raw")
    assert len(final) == 1 and final[0].step == result.global_step and math.isfinite(final[0].value)

    # the raw return and the episode length are logged; only the reward terms that are on
    assert {"charts/episodic_return_raw", "charts/episodic_length"} <= set(tags["scalars"])
    weights = PPOConfig().shaping_object.weights
    on = {f"reward/{t}" for t in TERMS if weights[t] and t not in VELOCITY_TERMS}
    assert {t for t in tags["scalars"] if t.startswith("reward/")} == on
    assert len(on) < len(TERMS)  # the default shaping switches some off
    assert "losses/kl_pretrained" not in tags["scalars"]  # no pretrained policy
    assert {f"reward/{t}" for t in TERMS} <= set(result.history[-1])  # the history keeps all


def test_capturing_takes_changes_nothing_the_run_computes(tmp_path):
    on = train(tiny(tmp_path, "on", capture_every=1))
    off = train(tiny(tmp_path, "off", capture_every=0))
    policy = [(tmp_path / name / "policy.pt").read_bytes() for name in ("on", "off")]
    assert policy[0] == policy[1]  # byte for byte
    assert on.history[-1]["losses/policy_loss"] == off.history[-1]["losses/policy_loss"]
    assert on.policy.training == off.policy.training
    assert not events(tmp_path / "off" / "tb").Tags()["audio"]  # 0 switches it off


def test_capture_every_is_validated():
    with pytest.raises(ValueError, match="capture_every must be an integer >= 0"):
        PPOConfig(capture_every=-1)


# ----------------------------------------------------------------------------- run folders, W&B

CLI_TINY = ["--num-envs", "4", "--num-steps", "16", "--total-timesteps", "64", "--seq-len", "32",
            "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--no-progress",
            "--device", "cpu", "--capture-every", "0"]  # fmt: skip


def test_train_twice_without_out_makes_two_run_folders(tmp_path, monkeypatch, capsys):
    from agents.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", *CLI_TINY, "--seed", "7"]) == 0
    assert main(["train", *CLI_TINY, "--seed", "7"]) == 0  # not refused: a folder of its own
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2, folders
    for name in folders:
        assert re.fullmatch(r"DrumCompose-v0__ppo__7__\d{10}(_2)?", name), name
        assert (tmp_path / "runs" / name / "policy.pt").is_file()
    assert main(["train", *CLI_TINY, "--exp-name", "fast"]) == 0
    names = [p.name for p in (tmp_path / "runs").iterdir()]
    assert any(name.startswith("DrumCompose-v0__fast__0__") for name in names)
    capsys.readouterr()
    assert main(["train", *CLI_TINY, "--resume"]) == 2  # which run? --out must say
    assert "give --out" in capsys.readouterr().err
    assert main(["train", *CLI_TINY, "--exp-name", "a/b"]) == 2


def test_out_still_names_the_folder_and_a_second_run_there_is_refused(tmp_path, monkeypatch):
    from agents.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", *CLI_TINY, "--out", "mine"]) == 0
    assert main(["train", *CLI_TINY, "--out", "mine"]) == 2
    assert main(["train", *CLI_TINY, "--out", "mine", "--resume",
                 "--total-timesteps", "128"]) == 0  # fmt: skip
    assert not (tmp_path / "runs").exists()


def test_track_writes_an_offline_wandb_run_with_the_synced_scalars(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is the track extra: pip install 'drum-env[track]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(tiny(tmp_path, "DrumCompose-v0__ppo__3__1", total_timesteps=128, capture_every=2,
               track=True, wandb_project_name="drum-env-test"))  # fmt: skip
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    records = b"".join(p.read_bytes() for p in runs[0].glob("run-*.wandb"))
    for key in (b"charts/episodic_return_raw", b"losses/value_loss", b"hparam/episodic_return_raw",
                b"takes/0", b"DrumCompose-v0__ppo__3__1", b"drum-env-test", b"capture_every"):
        assert key in records, key  # synced scalars and media, the run's name, project, config
    assert list((runs[0] / "files" / "media" / "images").glob("*.png"))  # the piano rolls
    assert list((runs[0] / "files" / "media" / "audio").glob("takes/*/*.wav"))  # the takes


def test_track_without_wandb_asks_for_the_extra(tmp_path, monkeypatch, capsys):
    import sys

    from agents.cli import main

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails
    monkeypatch.chdir(tmp_path)
    assert main(["train", *CLI_TINY, "--track"]) == 2
    assert "pip install 'drum-env[track]'" in capsys.readouterr().err
    with pytest.raises(ModuleNotFoundError, match=r"drum-env\[track\]"):
        run_logs.start_tracking(tiny(tmp_path, "x", track=True))
    with pytest.raises(ValueError, match="needs tensorboard=True"):
        tiny(tmp_path, "y", track=True, tensorboard=False)


class _FakeRun:
    """What the fake ``wandb.init`` returns: remembers that it was finished."""

    def __init__(self, **kwargs) -> None:
        self.kwargs, self.finished = kwargs, False

    def finish(self) -> None:
        self.finished = True


def test_train_pretrain_and_baseline_call_wandb_as_cleanrl_does(tmp_path, monkeypatch):
    import sys
    import types

    from agents.baselines.sb3 import BaselineConfig, train_baseline
    from agents.training.pretrain import PretrainConfig, pretrain

    runs: list[_FakeRun] = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: runs.append(_FakeRun(**kwargs)) or runs[-1]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.chdir(tmp_path)
    train(PPOConfig(**{**TINY, "total_timesteps": 64, "capture_every": 0, "seed": 1},
                    track=True, wandb_entity="lab"))  # fmt: skip
    pretrain(PretrainConfig(seq_len=32, batch_size=8, d_model=16, n_layers=1, n_heads=2,
                            max_steps=2, progress=False, track=True, exp_name="pre"))  # fmt: skip
    train_baseline(BaselineConfig(total_timesteps=64, num_envs=2, num_steps=32, eval_every=0,
                                  eval_episodes=2, progress=False, track=True,
                                  wandb_project_name="p"))  # fmt: skip
    assert [r.finished for r in runs] == [True, True, True]
    names = [r.kwargs["name"] for r in runs]
    for name, exp in zip(names, ("ppo", "pre", "sb3_ppo")):
        assert re.fullmatch(rf"DrumCompose-v0__{exp}__\d__\d{{10}}(_\d)?", name), name
        assert (tmp_path / "runs" / name / "config.json").is_file()  # the run folder's name
    assert [r.kwargs["project"] for r in runs] == ["drum-env", "drum-env", "p"]
    assert [r.kwargs["entity"] for r in runs] == ["lab", None, None]
    assert all(r.kwargs["sync_tensorboard"] for r in runs)
    assert runs[0].kwargs["config"]["seed"] == 1 and runs[1].kwargs["config"]["exp_name"] == "pre"
    assert runs[2].kwargs["config"]["algo"] == "ppo"
