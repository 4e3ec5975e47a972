"""benchmarks/pretrain_throughput.py and benchmarks/recipe_time.py, run as a user runs them.

Tiny sizes on the built-in corpus: what is checked is what the README quotes from them (every
part and stage timed, the two pretraining paths giving the same losses), not the speeds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # subprocesses that pretrain, train and evaluate

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=900)  # fmt: skip


def test_pretrain_throughput_times_both_paths_and_they_learn_alike(tmp_path: Path):
    out = tmp_path / "pt.json"
    _run("pretrain_throughput.py", "--steps", "4", "--repeats", "1", "--batch-size", "16",
         "--bound-batches", "8", "--bound-steps", "1", "--out", str(out))  # fmt: skip
    result = json.loads(out.read_text())
    assert out.with_suffix(".md").is_file()
    # the two ways of feeding pretraining draw the same batches: the same losses, bit for bit
    assert result["same_losses"] == {"compared": 4 + 2, "max_abs_diff": 0.0}
    for path in ("loader", "table"):
        summary = result["paths"][path]
        assert summary["steps"] == 4 and summary["validations"] == 2
        for clock in ("", "_cpu"):
            for part in ("data", "model", "validation", "total"):
                assert summary[f"{part}{clock}_s"]["median"] > 0, (path, part, clock)
            assert summary[f"samples_per{clock}_s"]["median"] > 0
        assert result["to_optimum"][path]["stop_s"] > result["to_optimum"][path]["best_s"] > 0
    assert [(r["dropout"], r["masks"]) for r in result["model_bound"]] == [
        (0.1, "fast"), (0.1, "torch"), (0.0, "none")]  # fmt: skip
    assert "torch's dropout / with the fast masks" in out.with_suffix(".md").read_text()
    assert result["speedup_cpu"] > 0 and len(result["speedups_cpu"]) == 1


def test_recipe_time_quick_times_every_stage(tmp_path: Path):
    from dataset.synthetic import default_corpus

    data = tmp_path / "corpus"
    data.mkdir()
    for i, seq in enumerate(default_corpus()[:32]):
        np.savez(data / f"s{i}.npz", sequence=seq)
    out = tmp_path / "recipe.json"
    _run("recipe_time.py", "--quick", "--data", str(data), "--heldout-players", "",
         "--total-timesteps", "512", "--pretrain-steps", "3", "--eval-episodes", "8",
         "--threads", "2", "--work", str(tmp_path / "work"), "--out", str(out))  # fmt: skip
    result = json.loads(out.read_text())
    # the run used the threads asked for, and the report says what its clocks then mean
    assert result["config"]["threads"] == 2
    assert "over 2 torch threads" in out.with_suffix(".md").read_text()
    timing = result["timing"]
    for clock in ("stages", "stages_cpu"):
        assert set(timing[clock]) == {"setup", "pretraining", "PPO", "evaluation"}
        assert all(v > 0 for v in timing[clock].values()), timing[clock]
    assert sum(timing["stages"].values()) == pytest.approx(timing["wall_s"])
    assert timing["pretraining"]["steps"] == [3]
    assert timing["pretraining"]["parts_s"]["model"] > 0
    assert timing["PPO"]["env_steps"] == [512] and timing["PPO"]["env_steps_per_s"] > 0
    assert timing["PPO"]["phases_s"]["update"] > 0 and timing["PPO"]["phases_s"]["rollout"] > 0
    evaluation = timing["evaluation"]
    assert evaluation["calls"] == 5  # pretrained, loop, random, PPO at 0 steps and at the end
    assert evaluation["parts_s"]["rollout and the rest"] > evaluation["parts_s"]["scoring"] > 0
    assert timing["PPO"]["phases_s"]["rollout: env.step"] > 0
    assert timing["PPO"]["phases_s"]["rollout: policy forward"] > 0
    assert set(result["headline"]) == {"pretrained", "ppo+pretrain", "loop", "random"}


def test_env_throughput_measures_only_the_parts_and_sizes_asked_for(tmp_path: Path):
    out = tmp_path / "env.json"
    _run("env_throughput.py", "--quick", "--repeats", "1", "--parts", "b", "--n", "4", "8",
         "--out", str(out))  # fmt: skip
    result = json.loads(out.read_text())
    assert result["single_env"] is None and result["seq_len_cost"] is None
    assert list(result["vector"]) == ["4", "8"]
    for row in result["vector"].values():
        assert row["native_env_steps_per_s"] > 0 and row["sync_env_steps_per_s"] > 0
    assert "met_single_env" not in result["targets"]
    assert result["machine"]["drum_env_path"] == str(ROOT / "drum_env")


def test_env_profile_times_every_kind_of_vector_step(tmp_path: Path):
    out = tmp_path / "profile.md"
    _run("env_profile.py", "--n", "4", "--episodes", "1", "--out", str(out))
    text = out.read_text()
    for kind, per_episode in [("open step", 90), ("bar end", 4), ("bar and phrase end", 1),
                              ("episode end", 1), ("autoreset", 1)]:  # fmt: skip
        assert re.search(rf"\| {kind}[^|]* \| {per_episode} \|", text), kind
    assert "| observation |" in text and "env steps/s" in text
