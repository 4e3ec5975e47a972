"""The distribution as a user installs it: the base install runs the env; names never clash.

The base install (``pip install drum-env``) is what the env needs (numpy, gymnasium, a MIDI
library); torch, SB3, PettingZoo and Optuna come with the extras. This test builds the wheel,
installs it into a fresh virtual environment without extras and checks, as a user would, that
``gymnasium.make("DrumCompose-v0")`` runs an episode there without torch, and that a command
that needs torch says which extra to install. It needs the package registry (the base
dependencies are downloaded) and takes a minute: it is marked slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EPISODE = """
import sys
import gymnasium
import drum_env
env = gymnasium.make("DrumCompose-v0", seq_len=64, prompt_bars=1)
obs, info = env.reset(seed=0)
done = False
while not done:
    obs, reward, done, truncated, info = env.step(env.action_space.sample())
assert "torch" not in sys.modules, "the env imported torch"
print("EPISODE OK", env.unwrapped.canvas.shape)
"""


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_base_install_runs_the_env_and_names_the_extra_for_training(tmp_path):
    wheels = tmp_path / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-w", str(wheels), str(ROOT)])  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheels.glob("drum_env-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    packages = sorted(str(init.relative_to(ROOT)) for top in ("dataset", "drum_env", "agents")
                      for init in (ROOT / top).rglob("__init__.py"))  # fmt: skip
    missing = [init for init in packages if init not in shipped]
    assert not missing, f"the wheel lacks the packages of {missing}"
    assert all(f"{top}/py.typed" in shipped for top in ("dataset", "drum_env", "agents"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # without PYTHONPATH: a checkout on it (with the drum_env.egg-info that the wheel build
    # leaves there) would make pip take drum-env as installed already and skip the wheel
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    installed = _run([str(python), "-m", "pip", "install", "-q", str(wheel)], env=clean_env)
    if installed.returncode != 0 and "No matching distribution" in installed.stderr:
        pytest.skip(f"the package registry is not reachable: {installed.stderr[-300:]}")
    assert installed.returncode == 0, installed.stderr[-2000:]
    listed = _run([str(python), "-m", "pip", "list", "--format=freeze"], env=clean_env)
    for heavy in ("torch", "stable-baselines3", "pettingzoo", "optuna", "tensorboard"):
        assert f"{heavy}==" not in listed.stdout.lower(), f"the base install pulled {heavy}"

    episode = _run([str(python), "-c", EPISODE], cwd=tmp_path, env=clean_env)
    assert episode.returncode == 0, episode.stderr[-2000:]
    assert "EPISODE OK (64, 9)" in episode.stdout

    train = _run([str(env_dir / "bin" / "drum-env"), "train", "--total-timesteps", "512"],
                 cwd=tmp_path, env=clean_env)  # fmt: skip
    assert train.returncode == 2, train.stderr[-2000:]
    assert "pip install 'drum-env[train]'" in train.stderr
    assert len(train.stderr.strip().splitlines()) == 1  # one line, no traceback
    band = _run([str(python), "-c", "from drum_env import band"], cwd=tmp_path, env=clean_env)
    assert band.returncode != 0 and "pip install 'drum-env[band]'" in band.stderr


def test_a_users_dataset_module_is_named_not_a_deep_import_error(tmp_path):
    # PYTHONPATH: this checkout, after the working directory (python -c puts '' first)
    (tmp_path / "dataset.py").write_text("x = 1\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = _run([sys.executable, "-c", "import drum_env"], cwd=tmp_path, env=env)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert f"{tmp_path / 'dataset.py'} shadows 'dataset'" in last


@pytest.mark.parametrize("stray", [("agents.py",), ("dataset.py", "agents.py")])
def test_a_users_agents_module_is_named_in_one_line(tmp_path, stray):
    # the README's example imports drum_env, then agents: a stray agents.py would otherwise fail
    # later with "'agents' is not a package"
    for name in stray:
        (tmp_path / name).write_text("x = 1\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import drum_env\nfrom agents.evaluation.rollout import policy_fn\n"
    proc = _run([sys.executable, "-c", code], cwd=tmp_path, env=env)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "not a package" not in proc.stderr
    for name in stray:
        assert f"{tmp_path / name} shadows {name[:-3]!r}" in last


def test_an_unrelated_agents_folder_without_code_is_no_clash(tmp_path):
    (tmp_path / "agents").mkdir()  # a namespace folder (no __init__.py): ours is found first
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = _run([sys.executable, "-c", "import drum_env, agents.task"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
