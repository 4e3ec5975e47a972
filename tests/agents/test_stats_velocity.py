"""``drum-env stats`` reports the corpus's dynamics: per-drum hit velocities and the velocity
song metrics (dataset.metrics' velocity section)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.cli import main
from dataset.metrics import velocity_stats


def test_stats_prints_the_velocity_of_each_drum(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    seqs = []
    for i, n in enumerate((48, 32)):
        hits = rng.random((n, 9)) < 0.4
        seq = (hits * rng.integers(1, 128, (n, 9)) / 127).astype(np.float32)
        seq[:, 8] = 0  # the ride never plays: 0
        seqs.append(seq)
        np.savez(tmp_path / f"take{i}.npz", sequence=seq)
    assert main(["stats", str(tmp_path), "--seq-len", "16", "--steps-per-bar", "4"]) == 0
    out = capsys.readouterr().out
    pooled = velocity_stats(np.concatenate(seqs))
    rows = {line.split()[1]: line for line in out.splitlines() if "velocity/" in line}
    assert f"{pooled.mean[0]:.3f} (spread {pooled.spread[0]:.3f})" in rows["velocity/kick"]
    assert "0.000 (spread 0.000)" in rows["velocity/ride"]
    assert "song/mean_dynamic_range" in out
