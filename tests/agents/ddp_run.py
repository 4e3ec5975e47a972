"""Run ``tests/agents/ddp_worker.py`` under torchrun with two local ranks (the DDP tests' helper).

Imported by the test modules of this folder (``from ddp_run import torchrun``); pytest puts the
folder on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def torchrun(out: Path, *extra: str, timeout: float = 180, script: str = "ddp_worker.py") -> None:
    """Train the worker's tiny config on 2 CPU ranks into ``out``; assert that it succeeded.

    ``extra`` are the worker's flags (``--stop-at K``, ``--resume``, ``--velocity-levels K``,
    ``--compile``, ``--disc-coef C``). ``script`` is another worker of this folder (e.g.
    ``ddp_moments.py``). The inherited distributed variables are dropped so that torchrun's
    ``--standalone`` rendezvous is the only one.
    """
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "tests" / "agents" / script), str(out), *extra],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def clean_env() -> dict[str, str]:
    """This process's environment, one thread, without inherited distributed variables."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env
