"""Does RL beat its start at the start's best temperature? The pretrained and the RL policies of a
benchmark run, each played at temperature 1 and at the temperature chosen on validation data.

A policy trained by likelihood often scores better sampled a little cooler than at temperature 1,
and RL that only sharpens the distribution is no better than a temperature. So for every seed of
a ``drum-env benchmark`` run with the ``pretrained`` and ``ppo+pretrain`` agents, this script
takes the two policies it saved, chooses each one's temperature on the pretraining's validation
files (training players only: :func:`agents.evaluation.temperature.choose_temperature`), and scores
both at temperature 1 and at the chosen one on the held-out players, with the headline's standard
error and the takes' intra-set diversity beside the real continuations'
(:func:`dataset.diversity.intra_set_diversity`). Writes ``<out>.json`` and ``<out>.md``.

Example (after the benchmark in the README's Results)::

    python benchmarks/temperature_table.py --data runs/groove-npz \\
        --heldout-players drummer8,drummer9 --work runs/bench-players --seeds 0,1,2 \\
        --out benchmarks/results/groove-players/temperature
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the benchmark's npz folder")
    parser.add_argument("--heldout-players", required=True, help="e.g. drummer8,drummer9")
    parser.add_argument("--work", required=True, help="the benchmark's --work folder")
    parser.add_argument("--shaping", default="aligned", help="the shaping of the RL runs")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--temperatures", default="0.6,0.7,0.8,0.9,1.0,1.1")
    parser.add_argument("--select-episodes", type=int, default=256,
                        help="validation episodes per candidate temperature")  # fmt: skip
    parser.add_argument("--diversity-episodes", type=int, default=256)
    parser.add_argument("--out", default=str(HERE / "results" / "temperature"))
    parser.add_argument("--whole-canvas", action="store_true",
                        help="envs show the whole canvas (a `benchmark --whole-canvas` run)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from agents.evaluation.heldout import HeldoutConfig, heldout_dataset, reference
    from agents.evaluation.rollout import load_any_policy
    from agents.evaluation.temperature import score_at_chosen_temperature

    work = Path(args.work)
    players = tuple(p for p in args.heldout_players.split(",") if p)
    config = HeldoutConfig(data=args.data, heldout_players=players, whole_canvas=args.whole_canvas)
    select = HeldoutConfig(data=args.data, heldout_players=players, whole_canvas=args.whole_canvas,
                           eval_episodes=args.select_episodes, eval_draws=1)  # fmt: skip
    held = heldout_dataset(config, work / "split" / "heldout")
    ref = reference(config, held)
    kwargs = config.env_kwargs(held)
    temps = [float(t) for t in args.temperatures.split(",")]
    t0 = time.perf_counter()

    rows = []
    real_diversity = None
    for seed in (int(s) for s in args.seeds.split(",")):
        val_dir = work / "pretrain" / f"seed{seed}" / "split" / "heldout"
        paths = {
            "pretrained": work / "pretrain" / f"seed{seed}" / "run" / "policy.pt",
            "ppo+pretrain": (work / "runs" / args.shaping / "ppo+pretrain" / f"seed{seed}"
                             / "policy.pt"),
        }
        for agent, path in paths.items():
            if not path.is_file():
                print(f"skip {agent} seed {seed}: no {path}", file=sys.stderr)
                continue
            policy = load_any_policy(path)
            scored, real_diversity = score_at_chosen_temperature(
                policy, config, select, val_dir, kwargs, ref, temps, seed=seed,
                diversity_episodes=args.diversity_episodes,
            )  # fmt: skip
            for row in scored:
                rows.append({"agent": agent, **row})
                print(json.dumps(rows[-1]), flush=True)

    summary = []
    for agent in ("pretrained", "ppo+pretrain"):
        for label in ("T=1", "T*"):
            sel = [r for r in rows if r["agent"] == agent and r["play"] == label]
            if not sel:
                continue
            h = np.array([r["headline"] for r in sel])
            summary.append({
                "agent": agent, "play": label, "seeds": len(sel),
                "headline": float(h.mean()), "headline_seed_std": float(h.std()),
                "headline_se": float(np.mean([r["headline_se"] for r in sel])),
                "temperatures": [r["temperature"] for r in sel],
                "diversity": float(np.mean([r["diversity"] for r in sel])),
            })  # fmt: skip
    ceiling = ref.headline["ceiling"]
    result = {
        "command": "python benchmarks/temperature_table.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "wall_s": time.perf_counter() - t0, "ceiling": ceiling,
        "real_diversity": real_diversity, "rows": rows, "summary": summary,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Pretrained vs RL, each at temperature 1 and at its validation-chosen temperature",
        "",
        f"Made by: `{result['command']}` ({result['wall_s']:.0f} s).",
        "",
        f"Ceiling (real vs real): {ceiling[0]:.3f} ± {ceiling[1]:.3f}. Intra-set diversity of the "
        f"real continuations: {real_diversity:.3f}." if real_diversity is not None else "",
        "",
        "| agent | played at | headline (mean ± std over seeds) | SE (mean) | temperatures | "
        "diversity of the takes |",
        "|---|---|---:|---:|---|---:|",
    ]
    for s in summary:
        temps_txt = ", ".join(f"{t:g}" for t in s["temperatures"])
        lines.append(
            f"| {s['agent']} | {s['play']} | {s['headline']:.3f} ± {s['headline_seed_std']:.3f} | "
            f"{s['headline_se']:.4f} | {temps_txt} | {s['diversity']:.3f} |"
        )
    lines += ["", "Data: Groove MIDI Dataset (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019; "
              "Google Magenta), CC BY 4.0.", ""]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
