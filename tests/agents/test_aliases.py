"""agents.aliases: the flat module paths of 0.3 import as the modules at their new homes."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import agents
from agents.aliases import MOVED

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_is_the_same_module_as_its_new_home(old):
    new = MOVED[old]
    assert not (ROOT / (old.replace(".", "/") + ".py")).exists(), "a file shadows the alias"
    assert (ROOT / (new.replace(".", "/") + ".py")).is_file()
    module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert getattr(agents, old.split(".")[1]) is module


def test_the_old_imports_of_the_readme_work_in_a_fresh_interpreter():
    code = (
        "from agents.rollout import load_any_policy, policy_fn\n"
        "from agents.ppo import PPOConfig, train\n"
        "from agents.sb3_load import trust_sb3_zip\n"
        "from agents.policy import policy_velocity_bins\n"
        "from agents.alignment import *\n"
        "import agents.ppo, agents.training.ppo\n"
        "assert agents.ppo is agents.training.ppo\n"
        "assert PPOConfig.__module__ == 'agents.training.ppo'\n"
        "print('OK')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "OK"


def test_a_name_that_never_existed_is_still_missing():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("agents.no_such_module")
