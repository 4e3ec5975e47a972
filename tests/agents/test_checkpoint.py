"""Tests of agents/training/checkpoint.py: atomic writes, safe loading, RNG state round trips."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.training.checkpoint import (
    atomic_torch_save,
    capture_rng_state,
    load_checkpoint,
    numpy_rng_state,
    restore_rng_state,
    set_numpy_rng_state,
)

ROOT = Path(__file__).resolve().parents[2]


def test_round_trip(tmp_path):
    obj = {"w": torch.arange(5.0), "step": 3, "name": "x", "nested": {"a": [1, 2.5, None]}}
    path = atomic_torch_save(obj, tmp_path / "sub" / "ckpt.pt")
    assert path == tmp_path / "sub" / "ckpt.pt"
    back = load_checkpoint(path)
    assert torch.equal(back["w"], obj["w"])
    assert back["step"] == 3 and back["name"] == "x" and back["nested"] == {"a": [1, 2.5, None]}
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temporary file left


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "not_a_dict"])
def test_corrupt_file_names_it(tmp_path, kind):
    path = tmp_path / "bad.pt"
    if kind == "not_a_dict":
        torch.save([1, 2, 3], path)
    else:
        atomic_torch_save({"w": torch.randn(1000)}, path)
        data = path.read_bytes()
        if kind == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif kind == "random":
            path.write_bytes(np.random.default_rng(0).bytes(len(data)))
        else:
            path.write_bytes(b"")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(path)


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": np.random.default_rng(0)}, path)  # an arbitrary Python object
    with pytest.raises(ValueError, match="evil.pt"):
        load_checkpoint(path)


def test_failed_save_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"w": torch.ones(3)}, path)

    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


@pytest.mark.slow
def test_sigkill_during_writes_never_corrupts(tmp_path):
    """A writer killed at an arbitrary moment leaves a loadable checkpoint under the name."""
    path = tmp_path / "ckpt.pt"
    script = textwrap.dedent(
        f"""
        import sys, torch
        from agents.training.checkpoint import atomic_torch_save
        big = torch.zeros(4_000_000)
        i = 0
        while True:
            atomic_torch_save({{"i": i, "w": big + i}}, {str(path)!r})
            if i == 0:
                print("ready", flush=True)
            i += 1
        """
    )
    for delay in (0.05, 0.2, 0.45):
        proc = subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        state = load_checkpoint(path)
        assert torch.equal(state["w"], torch.full((4_000_000,), float(state["i"])))


def test_numpy_state_round_trip_with_big_ints(tmp_path):
    rng = np.random.default_rng(12345)
    rng.random(7)
    rng.integers(0, 10, size=3, dtype=np.uint32)  # sets has_uint32 on some versions
    plain = numpy_rng_state(rng)
    path = atomic_torch_save({"rng": plain}, tmp_path / "r.pt")
    loaded = load_checkpoint(path)["rng"]
    expected = rng.random(5)
    fresh = np.random.default_rng(0)
    set_numpy_rng_state(fresh, loaded)
    np.testing.assert_array_equal(fresh.random(5), expected)


def test_numpy_state_mt19937(tmp_path):
    rng = np.random.Generator(np.random.MT19937(3))
    rng.random(11)
    path = atomic_torch_save({"rng": numpy_rng_state(rng)}, tmp_path / "r.pt")
    expected = rng.random(4)
    other = np.random.Generator(np.random.MT19937(99))
    set_numpy_rng_state(other, load_checkpoint(path)["rng"])
    np.testing.assert_array_equal(other.random(4), expected)
    with pytest.raises(ValueError, match="MT19937"):
        set_numpy_rng_state(np.random.default_rng(0), load_checkpoint(path)["rng"])


def test_capture_restore_every_rng(tmp_path):
    gens = [np.random.default_rng(s) for s in (1, 2)]
    tgen = torch.Generator().manual_seed(5)
    torch.manual_seed(7)
    random.seed(8)
    state = capture_rng_state(gens, {"act": tgen})
    path = atomic_torch_save({"rng": state}, tmp_path / "rng.pt")

    def draw():
        return (
            [g.random(3).tolist() for g in gens],
            torch.rand(3, generator=tgen).tolist(),
            torch.rand(3).tolist(),
            random.random(),
        )

    expected = draw()
    draw()  # move every generator on
    restore_rng_state(load_checkpoint(path)["rng"], gens, {"act": tgen})
    assert draw() == expected

    with pytest.raises(ValueError, match="numpy generator"):
        restore_rng_state(state, gens[:1], {"act": tgen})
    with pytest.raises(ValueError, match="shuffle"):
        restore_rng_state(state, gens, {"shuffle": tgen})
