"""Tests of past-one-machine training: the reward normaliser shared by DDP's ranks, two
local nodes through a c10d rendezvous, a resume with another world size."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ddp_run import ROOT, clean_env, torchrun
from test_ppo import assert_same_weights

from agents.training.checkpoint import load_checkpoint
from agents.training.distributed import Dist, share_normalizer
from agents.training.ppo import train
from drum_env.rewards import RunningNormalizer


def _moments(path: Path) -> dict[str, np.ndarray]:
    state = json.loads(path.read_text())
    return {k: np.asarray(state[k]) for k in ("count", "mean", "m2")}


def test_two_gloo_ranks_hold_the_moments_of_every_ranks_episodes(tmp_path):
    """Two ranks of 2 sub-envs each: both hold bitwise the same moments, and they are those of
    one process that played the 4 sub-envs (each rank's own episodes are not enough)."""
    torchrun(tmp_path / "ddp", "--envs", "2", script="ddp_moments.py", timeout=120)
    subprocess.run([sys.executable, str(ROOT / "tests" / "agents" / "ddp_moments.py"),
                    str(tmp_path / "one"), "--envs", "4"],
                   cwd=ROOT, env=clean_env(), check=True, timeout=120)  # fmt: skip
    r0, r1 = _moments(tmp_path / "ddp" / "rank0.json"), _moments(tmp_path / "ddp" / "rank1.json")
    one = _moments(tmp_path / "one" / "rank0.json")
    for key in r0:
        np.testing.assert_array_equal(r0[key], r1[key])
        # the same batches, their sums added in another order: equal to rounding
        np.testing.assert_allclose(r0[key], one[key], rtol=1e-12, atol=1e-12)
    assert (one["count"] > 0).sum() >= 5 and not np.allclose(one["mean"][one["count"] > 0], 0)


def test_share_normalizer_without_ddp_changes_nothing():
    """One process: no reduction is installed, the update is the plain one bit for bit."""
    rng = np.random.default_rng(0)
    shared, plain = RunningNormalizer(3), RunningNormalizer(3)
    share_normalizer(shared, Dist(0, 1, 0, False, False))
    assert shared.reduce is None
    for _ in range(3):
        x = rng.normal(size=(5, 3))
        for norm in (shared, plain):
            norm.update(np.full(3, 5.0), x.sum(0), np.square(x).sum(0))
    for a, b in zip(shared.moments, plain.moments):
        np.testing.assert_array_equal(a, b)


def test_a_reduce_folds_the_summed_batch_exactly():
    """The reduction sees the batch's (count, sum, sum of squares) and folds what it returns:
    a normaliser whose reduce adds a second rank's batch equals one fed both batches at once."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 3)), rng.normal(2.0, 3.0, size=(6, 3))
    other = np.stack([np.full(3, 6.0), b.sum(0), np.square(b).sum(0)])
    seen = []
    shared = RunningNormalizer(3)
    shared.reduce = lambda stats: seen.append(stats.copy()) or stats + other
    shared.update(np.full(3, 4.0), a.sum(0), np.square(a).sum(0))
    both = RunningNormalizer(3)
    both.update(np.full(3, 10.0), a.sum(0) + b.sum(0), np.square(a).sum(0) + np.square(b).sum(0))
    assert seen[0].shape == (3, 3) and seen[0].dtype == np.float64
    for x, y in zip(shared.moments, both.moments):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(both.mean, np.concatenate([a, b]).mean(0), rtol=1e-12)
    np.testing.assert_allclose(both.var, np.concatenate([a, b]).var(0), rtol=1e-9)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _two_nodes(outs: tuple[Path, Path], *extra: str, timeout: float = 240) -> None:
    """Two torchrun launchers ("nodes") of one process each, as the README's multi-node block
    runs them, through a c10d rendezvous on 127.0.0.1; assert that both exit 0.

    Each node has its own ``out`` (no shared file system). ``--local-addr`` gives each node
    its own address, as separate machines have: the c10d rendezvous orders ranks by it, so node
    0 is rank 0 (the one that writes) on every launch.
    """
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
             "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-id", "drum-test",
             "--rdzv-endpoint", f"127.0.0.1:{port}", "--node-rank", str(node),
             "--local-addr", f"127.0.0.{node + 1}",
             str(ROOT / "tests" / "agents" / "ddp_worker.py"), str(outs[node]), *extra],
            cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for node in (0, 1)
    ]
    logs = [p.communicate(timeout=timeout)[0] for p in procs]
    for node, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"node {node} exited {p.returncode}:\n{log[-3000:]}"


@pytest.mark.slow
def test_two_nodes_c10d_train_agree_share_the_normaliser_and_resume(tmp_path):
    """Two local "nodes" (torchrun --nnodes 2 --rdzv-backend c10d): both launchers exit 0, the
    ranks end with the same weights and the same reward moments, a run stopped at iteration 2
    resumes (node 1 has no checkpoint of its own) to the uninterrupted run's weights, and a
    resume with another world size is refused naming both sizes."""
    full = (tmp_path / "full0", tmp_path / "full1")
    _two_nodes(full)
    r0 = torch.load(full[0] / "rank0.pt", weights_only=True)
    r1 = torch.load(full[1] / "rank1.pt", weights_only=True)
    assert_same_weights(r0["model"], r1["model"])
    assert r0["iterations"] == 4 and not (full[1] / "checkpoint.pt").exists()
    state = load_checkpoint(full[0] / "checkpoint.pt")
    assert state["world_size"] == 2
    norms = [r["env"]["normalizer"] for r in state["ranks"]]
    assert sum(norms[0]["count"]) > 0
    for key in ("count", "mean", "m2"):
        assert norms[0][key] == norms[1][key], key

    split = (tmp_path / "split0", tmp_path / "split1")
    _two_nodes(split, "--stop-at", "2")
    assert load_checkpoint(split[0] / "checkpoint.pt")["iteration"] == 2
    _two_nodes(split, "--resume")
    s0 = torch.load(split[0] / "rank0.pt", weights_only=True)
    s1 = torch.load(split[1] / "rank1.pt", weights_only=True)
    assert s0["iterations"] == 4
    assert_same_weights(s0["model"], s1["model"])
    assert_same_weights(r0["model"], s0["model"])

    # one process resuming the 2-rank run: refused, one line naming both world sizes
    from ddp_worker import tiny_config

    with pytest.raises(ValueError, match="world size 2 .*world size 1") as err:
        train(tiny_config(str(split[0]), resume=True))
    assert "\n" not in str(err.value)
