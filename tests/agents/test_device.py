"""The GPU path as far as a CPU can test it: the device choice and the rollout's copies."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.training.distributed import Dist, resolve_device
from agents.training.ppo import PPOConfig, train
from agents.training.ppo_setup import make_agent, make_env
from agents.training.ppo_steps import Storage, collect_rollout, host_rows, upload_obs

ONE = Dist(0, 1, 0, False, False)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_picks_the_cpu_without_cuda(no_cuda):
    assert resolve_device("auto", ONE) == torch.device("cpu")
    assert resolve_device("cpu", ONE) == torch.device("cpu")


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_clear_error(no_cuda, device):
    with pytest.raises(ValueError, match=f"device='{device}' but CUDA is not available .*"
                                         "use device 'cpu' or 'auto'"):  # fmt: skip
        resolve_device(device, ONE)


def test_with_cuda_each_rank_takes_its_local_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no kernel runs: names only
    assert resolve_device("auto", ONE) == torch.device("cuda")
    assert resolve_device("cuda:1", ONE) == torch.device("cuda", 1)
    assert resolve_device("cuda", Dist(3, 4, 1, True, False)) == torch.device("cuda", 1)
    assert resolve_device("cpu", Dist(3, 4, 1, True, False)) == torch.device("cpu")


def test_train_on_cuda_without_it_fails_before_claiming_out(no_cuda, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(PPOConfig(device="cuda", out=str(out), progress=False, tensorboard=False))
    assert not out.exists()


def _rollout(config: PPOConfig, staged: bool) -> Storage:
    env = make_env(config)
    next_obs, _ = env.reset(seed=config.seed)
    agent = make_agent(config, env.unwrapped, torch.device("cpu"))
    buf = Storage.allocate(env.unwrapped.single_observation_space, config.num_steps,
                           config.num_envs, env.unwrapped.config.num_drums, torch.device("cpu"),
                           staged=staged)  # fmt: skip
    assert (buf.host is not None) == staged
    host = None if buf.host is None else {k: v.data_ptr() for k, v in buf.host.items()}
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        next_obs, _ = collect_rollout(env, agent.policy, agent.critic, next_obs,
                                      np.zeros(config.num_envs, dtype=bool), buf, gen,
                                      contextlib.nullcontext)  # fmt: skip
    if host is not None:  # the same host rows every step: no allocation per step
        assert {k: v.data_ptr() for k, v in buf.host.items()} == host
    env.close()
    return buf


def test_staged_copies_give_the_direct_path_bit_for_bit(tmp_path):
    """The CUDA path's staging (host rows, then a copy) on the CPU: the same storage."""
    config = PPOConfig(num_envs=3, num_steps=20, seq_len=32, d_model=16, n_layers=1,
                       n_heads=2, device="cpu", seed=4, out=str(tmp_path))  # fmt: skip
    direct, staged = _rollout(config, False), _rollout(config, True)
    for key in direct.obs:
        assert torch.equal(direct.obs[key], staged.obs[key]), key
        assert direct.obs[key].abs().sum() > 0
    for name in ("actions", "logprobs", "values", "terminations", "valid"):
        assert torch.equal(getattr(direct, name), getattr(staged, name)), name
    np.testing.assert_array_equal(direct.raw, staged.raw)


def test_cuda_host_rows_are_pinned_and_copies_non_blocking(monkeypatch):
    """On CUDA the host rows are page-locked and each step's copy is asynchronous (faked: this
    machine may have no CUDA; the calls are what is checked)."""
    space = make_env(PPOConfig(num_envs=2, seq_len=32)).unwrapped.single_observation_space
    pinned, copies = [], []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: pinned.append(t.shape) or t)
    assert host_rows(space, 2, torch.device("cpu")) and not pinned
    host = host_rows(space, 2, torch.device("cuda"))
    assert sorted(pinned) == sorted((2, *s.shape) for s in space.spaces.values())
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in host.values())

    copy = torch.Tensor.copy_
    monkeypatch.setattr(torch.Tensor, "copy_", lambda t, src, non_blocking=False: (
        copies.append(non_blocking), copy(t, src))[1])  # fmt: skip
    rows = {k: torch.zeros_like(v) for k, v in host.items()}
    obs = {k: np.random.default_rng(0).random(v.shape) for k, v in host.items()}  # float64
    upload_obs(rows, obs, host)
    assert copies == [True] * len(rows)
    for k in rows:
        assert torch.equal(rows[k], torch.from_numpy(obs[k].astype(np.float32)))


def _benchmark():
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module("train_throughput")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_the_gpu_benchmark_without_cuda_says_so_and_writes_nothing(no_cuda, tmp_path, capsys):
    out = tmp_path / "cuda.json"
    result = _benchmark().main(["--device", "cuda", "--out", str(out)])
    assert "CUDA is not available" in result["skipped"]
    assert "CUDA is not available" in capsys.readouterr().out and not out.exists()


@pytest.mark.slow
def test_the_gpu_benchmark_compares_the_device_with_the_cpu_in_one_run(tmp_path):
    """The comparison's logic, with the CPU standing in for the GPU: both devices' calls at the
    same setting, AMP off and on, each against the CPU's best."""
    rows = _benchmark().device_comparison([(2, 8)], 64, 1, "cpu", tmp_path)["2x8"]
    assert sorted(rows) == ["transformer (amp) @ cpu", "transformer @ cpu"]
    assert max(r["vs_best_cpu"] for r in rows.values()) == 1.0
    assert all(r["env_steps"] == 64 and r["steps_per_s_wall"] > 0 for r in rows.values())
