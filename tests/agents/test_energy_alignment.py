"""benchmarks/energy_alignment.py's tables, recomputed from a JSON as a user reruns them.

What a reader of the README's local-alignment rows relies on: each criterion's Spearman per draw
is the rank correlation of that criterion with the headline over the family, and the blended
rows are ``return - c * energy`` for the weights asked for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from agents.evaluation.alignment import spearman

ROOT = Path(__file__).resolve().parents[2]


def _family(members: int = 9, draws: int = 3) -> list[dict]:
    """Rows whose headline is exactly ``return - 5 * energy``, neither part alone ranking it."""
    rng = np.random.default_rng(0)
    rows = []
    for m in range(members):
        energy = rng.uniform(0.02, 0.2, draws)
        ret = -1.5 + 0.3 * rng.standard_normal(draws)
        rows.append({"member": f"m{m}", "energy": energy.tolist(), "return": ret.tolist(),
                     "headline": (ret - 5 * energy).tolist()})  # fmt: skip
    return rows


def test_from_json_ranks_each_criterion_per_draw(tmp_path: Path):
    rows = _family()
    src = tmp_path / "earlier.json"
    src.write_text(json.dumps({"command": "python benchmarks/energy_alignment.py --x",
                               "wall_s": 12.0, "rows": rows, "spearman": {}}))  # fmt: skip
    out = tmp_path / "again"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "energy_alignment.py"),
                    "--from-json", str(src), "--blend-weights", "1,5", "--out", str(out)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)  # fmt: skip
    result = json.loads(out.with_suffix(".json").read_text())
    rho = result["spearman"]
    assert list(rho) == ["-energy", "aligned-raw return", "aligned-raw return - 1 * energy",
                         "aligned-raw return - 5 * energy"]  # fmt: skip
    heads = np.array([r["headline"] for r in rows])
    for k in range(3):
        energy = [-r["energy"][k] for r in rows]
        assert rho["-energy"][k] == spearman(energy, heads[:, k])
        assert rho["aligned-raw return"][k] == spearman([r["return"][k] for r in rows],
                                                        heads[:, k])  # fmt: skip
    # the blend with the headline's own weight ranks the family exactly; the parts alone do not
    assert rho["aligned-raw return - 5 * energy"] == [1.0, 1.0, 1.0]
    assert max(rho["-energy"]) < 1.0 and max(rho["aligned-raw return"]) < 1.0
    md = out.with_suffix(".md").read_text()
    assert "python benchmarks/energy_alignment.py --x" in md
    assert "| aligned-raw return - 5 * energy | 1.00, 1.00, 1.00 | 1.00 |" in md


def test_without_from_json_the_data_arguments_are_required(tmp_path: Path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "energy_alignment.py"),
                           "--out", str(tmp_path / "x")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert "--data, --heldout-players, --work, --pretrained" in done.stderr
