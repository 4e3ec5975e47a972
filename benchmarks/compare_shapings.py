"""Reward shapings x agents x seeds on held-out drums: ``shapings.{csv,md,png,json}``.

Thin command-line front of :mod:`agents.evaluation.benchmark` (the same as ``drum-env benchmark``);
see its docstring for what is trained, how it is evaluated and what is written.

Budgets:

* ``--smoke``: one shaping, PPO and SB3 PPO plus the random player, one seed, one PPO
  iteration; seconds (the test suite runs it);
* ``--quick``: every shaping and agent, 2 seeds, 4,096 env steps per run; under 15 minutes on
  2 CPU cores;
* default: every shaping and agent, 3 seeds, 16,384 env steps per run; about 30-40 minutes on
  2 CPU cores (the table in the README).

Examples::

    python benchmarks/compare_shapings.py --quick
    python benchmarks/compare_shapings.py --resume            # continue a killed run
    drum-env convert ../shared/data/groove-midi runs/groove-npz
    python benchmarks/compare_shapings.py --data runs/groove-npz \\
        --split-csv ../shared/data/groove-midi/info.csv --out benchmarks/results/groove
    python benchmarks/compare_shapings.py --data runs/groove-npz \\
        --heldout-players drummer8,drummer9 --out benchmarks/results/groove-players
"""

from __future__ import annotations

import sys

from agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
