"""Training throughput: env steps per second of the custom PPO (AMP on / off) vs SB3 PPO.

Same env (``DrumCompose-v0``, built-in corpus, seq_len 64, 1 primer bar, ``hierarchical``
shaping), same CPU, same process, one torch thread; each trainer runs a fixed budget of env
steps (``--steps``, default 16,384; ``--quick`` 4,096) through its public entry point:

* ``custom (amp off)`` / ``custom (amp on)``: :func:`agents.ppo.train` with the default
  :class:`~agents.ppo.PPOConfig` (16 sub-envs of the native vector env, 64 steps per rollout,
  4 epochs of 4 minibatches, the Transformer policy), AMP = bf16 autocast on the CPU;
* ``sb3 ppo``: :func:`agents.sb3.train_baseline` (SB3 PPO, ``MultiInputPolicy`` MLP, a
  ``DummyVecEnv`` of 16 single envs, ``n_steps`` 64, SB3's defaults otherwise: 10 epochs,
  batch 256), no evaluation callback.

Reported per trainer: ``steps_per_s`` = env steps / wall time of the whole call (env and model
construction, rollouts, updates and the final save), best of ``--repeats`` runs taking turns,
and for the custom PPO also the median of its per-iteration ``charts/fps`` (rollout plus
update, without setup). The issue's target is custom >= 5x SB3; it is reported, not asserted.

Run: ``python benchmarks/train_throughput.py [--quick]`` (writes
``benchmarks/results/train_throughput.json``).
"""

# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"
TARGET_CUSTOM_VS_SB3 = 5.0
NUM_ENVS, NUM_STEPS, SEQ_LEN, SHAPING = 16, 64, 64, "hierarchical"


def run_custom(steps: int, amp: bool, out: Path) -> dict:
    from agents.ppo import PPOConfig, train

    cfg = PPOConfig(
        seq_len=SEQ_LEN, prompt_bars=1, shaping=SHAPING, num_envs=NUM_ENVS, num_steps=NUM_STEPS,
        total_timesteps=steps, amp=amp, device="cpu", seed=0, out=str(out), progress=False,
        tensorboard=False, checkpoint_every=10**6,
    )  # fmt: skip
    start = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - start
    fps = [h["charts/fps"] for h in result.history]
    return {"env_steps": result.global_step, "wall_s": wall,
            "steps_per_s": result.global_step / wall,
            "iteration_fps_median": float(np.median(fps))}  # fmt: skip


def run_sb3(steps: int, out: Path) -> dict:
    from agents.sb3 import BaselineConfig, train_baseline

    cfg = BaselineConfig(
        algo="ppo", seq_len=SEQ_LEN, prompt_bars=1, shaping=SHAPING, num_envs=NUM_ENVS,
        n_steps=NUM_STEPS, total_timesteps=steps, seed=0, eval_every=0, out=str(out),
        tensorboard=False,
    )  # fmt: skip
    start = time.perf_counter()
    result = train_baseline(cfg)
    wall = time.perf_counter() - start
    return {"env_steps": result.global_step, "wall_s": wall,
            "steps_per_s": result.global_step / wall}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,096 steps per trainer")
    parser.add_argument("--steps", type=int, default=None, help="env steps per trainer")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    steps = args.steps or (4096 if args.quick else 16_384)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    runs: dict[str, list[dict]] = {"custom (amp off)": [], "custom (amp on)": [], "sb3 ppo": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # the trainers take turns
            base = Path(tmp) / str(r)
            runs["custom (amp off)"].append(run_custom(steps, False, base / "off"))
            runs["custom (amp on)"].append(run_custom(steps, True, base / "on"))
            runs["sb3 ppo"].append(run_sb3(steps, base / "sb3"))
    rows = {}
    for name, rs in runs.items():
        best = max(rs, key=lambda x: x["steps_per_s"])
        rows[name] = {**best, "runs_steps_per_s": [x["steps_per_s"] for x in rs]}
    sb3 = rows["sb3 ppo"]["steps_per_s"]
    for row in rows.values():
        row["vs_sb3"] = row["steps_per_s"] / sb3
    best_custom = max(
        rows["custom (amp off)"]["steps_per_s"], rows["custom (amp on)"]["steps_per_s"]
    )
    result = {
        "benchmark": "train_throughput",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "env_steps_per_trainer": steps,
        "repeats": args.repeats,
        "env": {
            "id": "DrumCompose-v0",
            "data": "built-in corpus",
            "seq_len": SEQ_LEN,
            "prompt_bars": 1,
            "shaping": SHAPING,
            "num_envs": NUM_ENVS,
            "n_steps": NUM_STEPS,
        },  # fmt: skip
        "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": 1},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },  # fmt: skip
        "results": rows,
        "targets": {
            "custom_vs_sb3": TARGET_CUSTOM_VS_SB3,
            "met_custom_vs_sb3": best_custom / sb3 >= TARGET_CUSTOM_VS_SB3,
        },  # fmt: skip
        "wall_s": time.perf_counter() - t0,
    }
    print(markdown_table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s)")
    return result


def markdown_table(result: dict) -> str:
    lines = [
        f"Training throughput, {result['env_steps_per_trainer']:,} env steps per trainer, "
        f"1 thread, best of {result['repeats']}",
        "",
        "| trainer | env steps/s (whole call) | per-iteration fps (median) | vs SB3 PPO |",
        "|---|---:|---:|---:|",
    ]
    for name, row in result["results"].items():
        fps = row.get("iteration_fps_median")
        fps_text = "-" if fps is None else f"{fps:,.0f}"
        lines.append(f"| {name} | {row['steps_per_s']:,.0f} | {fps_text} | {row['vs_sb3']:.2f}x |")
    t = result["targets"]
    lines.append(f"\ntarget custom >= {t['custom_vs_sb3']:.0f}x SB3: "
                 f"{'met' if t['met_custom_vs_sb3'] else 'NOT met'}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
