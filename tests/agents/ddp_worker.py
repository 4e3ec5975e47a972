"""Run a tiny PPO training under torchrun; each rank writes its final weights to OUT/rank{r}.pt.

Usage (from the repository root)::

    python -m torch.distributed.run --standalone --nproc_per_node=2 \
        tests/agents/ddp_worker.py OUT [--stop-at K] [--resume] [--velocity-levels K] [--compile]
        [--disc-coef C]

``--stop-at K`` stops after iteration K (the callback returns False, a checkpoint is written);
``--resume`` continues from ``OUT/checkpoint.pt``; ``--disc-coef C`` adds the learned reward.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents.training.ppo import PPOConfig, train  # noqa: E402


def tiny_config(out: str, resume: bool = False, velocity_levels: int = 0,
                compile: bool = False, disc_coef: float = 0.0) -> PPOConfig:
    """The config the DDP test runs on every rank."""
    return PPOConfig(
        num_envs=2, num_steps=16, total_timesteps=2 * 2 * 16 * 4, seq_len=32, d_model=16,
        n_layers=1, n_heads=2, device="cpu", out=out, checkpoint_every=100, resume=resume,
        progress=False, tensorboard=False, seed=5, learn_weights=True,
        velocity_levels=velocity_levels, compile=compile, disc_coef=disc_coef,
    )  # fmt: skip


def main() -> int:
    """Train, then save this rank's weights."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--stop-at", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--velocity-levels", type=int, default=0)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--disc-coef", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))

    def callback(metrics: dict[str, float]) -> bool:
        return not (args.stop_at and metrics["iteration"] >= args.stop_at)

    config = tiny_config(args.out, args.resume, args.velocity_levels, args.compile,
                         args.disc_coef)
    result = train(config, callback=callback)
    state = {k: v.detach().cpu().clone() for k, v in result.policy.state_dict().items()}
    Path(args.out).mkdir(parents=True, exist_ok=True)  # another node's out holds nothing yet
    torch.save(
        {"model": state, "global_step": result.global_step, "iterations": result.iterations},
        Path(args.out) / f"rank{rank}.pt",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
