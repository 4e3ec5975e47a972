"""RL Baselines3 Zoo on DrumCompose-v0 with the shipped ``hyperparams/{ppo,a2c}.yml``.

The README's command, run as a user runs it (a subprocess, from an empty folder): RL Zoo reads
the yml, trains a few hundred steps and saves a model that SB3 loads, and that drum-env's own
loader plays once it is trusted (``trust_sb3_zip``), as ``drum-env generate`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rl_zoo3", reason="RL Zoo is not installed: pip install 'drum-env[zoo]'")
import yaml  # noqa: E402  (RL Zoo's dependency)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_the_shipped_yml_is_the_sb3_baselines_settings(algo):
    from agents.baselines.sb3 import BaselineConfig

    settings = yaml.safe_load((ROOT / "hyperparams" / f"{algo}.yml").read_text())
    zoo = settings["DrumCompose-v0"]
    base = BaselineConfig(algo=algo)
    assert zoo["policy"] == "MultiInputPolicy"
    assert (zoo["n_envs"], zoo["n_steps"]) == (base.num_envs, base.num_steps)
    assert (zoo["ent_coef"], zoo["learning_rate"]) == (base.ent_coef, base.learning_rate)
    assert zoo.get("batch_size") == (256 if algo == "ppo" else None)  # as build_model sets it
    assert zoo["env_kwargs"] == {k: base.env_kwargs()[k] for k in zoo["env_kwargs"]}


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_rl_zoo_trains_from_the_shipped_yml_and_saves_a_model_that_loads(algo, tmp_path):
    import gymnasium
    from stable_baselines3 import A2C, PPO

    import drum_env  # noqa: F401
    from agents.baselines.sb3_load import trust_sb3_zip
    from agents.evaluation.rollout import load_any_policy, policy_fn

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", "DrumCompose-v0",
           "--gym-packages", "drum_env", "--conf-file", str(ROOT / "hyperparams" / f"{algo}.yml"),
           "-n", "512", "-f", str(tmp_path / "logs"), "--seed", "0", "--eval-freq", "-1",
           "--num-threads", "1"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model_path = tmp_path / "logs" / algo / "DrumCompose-v0_1" / "DrumCompose-v0.zip"
    assert model_path.is_file(), sorted(p.name for p in (tmp_path / "logs").rglob("*"))

    model = (PPO if algo == "ppo" else A2C).load(model_path, device="cpu")
    assert model.num_timesteps == 512 and model.n_steps == 64
    play = gymnasium.make_vec("DrumCompose-v0", num_envs=2, vectorization_mode="vector_entry_point",
                              seq_len=64, prompt_bars=1, context_steps=16)  # fmt: skip
    obs, _ = play.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2, 9)

    trust_sb3_zip(model_path, algo)  # then drum-env reads it as data, as generate does
    act = policy_fn(load_any_policy(model_path), env=play)
    done = np.zeros(2, dtype=bool)
    while not done.all():
        obs, _, terminated, truncated, _ = play.step(act(obs))
        done |= terminated | truncated
    assert play.unwrapped.takes.shape == (2, 64, 9)
