"""Step vector envs with fixed actions and write the env's reward normaliser to OUT/rank{r}.json.

Usage (from the repository root)::

    python -m torch.distributed.run --standalone --nproc_per_node=2 \
        tests/agents/ddp_moments.py OUT [--envs N]   # N sub-envs per rank, moments shared
    python tests/agents/ddp_moments.py OUT --envs 2N  # one process that plays every rank's envs

Sub-env ``g`` (global index: ``rank * N + i``) is seeded ``SEED + g`` and plays actions drawn
from its own generator seeded ``g``, so the one-process run sees every rank's episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents.training.distributed import (  # noqa: E402
    setup_distributed,
    share_normalizer,
    teardown_distributed,
)

SEED, SEQ_LEN, EPISODES = 11, 32, 3


def main() -> int:
    """Play ``EPISODES`` episodes of every sub-env, then save this rank's normaliser state."""
    import gymnasium as gym

    import drum_env  # noqa: F401  (registers DrumCompose-v0)

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--envs", type=int, default=2)
    args = parser.parse_args()
    d = setup_distributed("cpu")
    try:
        n = args.envs
        env = gym.make_vec("DrumCompose-v0", num_envs=n, vectorization_mode="vector_entry_point",
                           seq_len=SEQ_LEN, prompt_bars=1)  # fmt: skip
        venv = env.unwrapped
        share_normalizer(venv.normalizer, d)
        env.reset(seed=SEED + d.rank * n)
        gens = [np.random.default_rng(d.rank * n + i) for i in range(n)]
        shape = env.single_action_space.shape
        for _ in range(EPISODES * (SEQ_LEN + 1)):  # + 1: the autoreset step
            env.step(np.stack([g.integers(0, 2, size=shape, dtype=np.int8) for g in gens]))
        state = venv.normalizer.state_dict()
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / f"rank{d.rank}.json").write_text(json.dumps(state))
        env.close()
    finally:
        teardown_distributed(d)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
