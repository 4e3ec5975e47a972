"""Do expressive policies keep a new drummer's dynamics when their velocities are anchored to the
primer? The pretrained expressive policies of a benchmark run, played as they are and with
``velocity_anchor`` chosen on validation files, against looping the primer.

Within one performance a drummer keeps the dynamics, so looping the primer reproduces them, and
an expressive policy sampled as it is plays the levels of the players it trained on
(:mod:`agents.evaluation.anchor`). For every seed of a ``drum-env benchmark --velocity-levels K``
run, this script takes the pretrained policy (``--agent ppo+pretrain``: its PPO fine-tuning).
It chooses the anchor's weight among ``--betas`` by the velocity headline on the pretraining's
validation files (training players only, never the held-out ones). It then scores the policy
at weight 0 and at the chosen weight on the held-out players: the headline on hits with its
standard error, and the velocity headline (:mod:`dataset.evaluation_velocity`). With
``--temperatures`` it also chooses a sampling temperature on validation, by the hits' headline,
and adds the row anchored at it. Looping the primer is scored on the same episodes. Writes
``<out>.json`` and ``<out>.md``.

Example (after the README's "Expressive drums: binary vs velocity agents" benchmark)::

    python benchmarks/velocity_anchor.py --data runs/groove-npz \\
        --heldout-players drummer8,drummer9 --work runs/bench-expressive --seeds 0,1,2 \\
        --out benchmarks/results/groove-expressive-players/velocity_anchor
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
    parser.add_argument("--velocity-levels", type=int, default=4)
    parser.add_argument("--agent", choices=("pretrained", "ppo+pretrain"), default="pretrained",
                        help="whose policies: the pretrained ones, or the benchmark's PPO "
                             "fine-tunings of them (--shaping)")  # fmt: skip
    parser.add_argument("--shaping", default="aligned", help="the shaping of the PPO runs")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--betas", default="0,0.5,1,2,3,4",
                        help="candidate anchor weights, chosen on validation")  # fmt: skip
    parser.add_argument("--temperatures", default="",
                        help="also choose a sampling temperature on validation (by the hits' "
                             "headline, unanchored) among these, e.g. 0.8,0.9,1.0, and add "
                             "the row anchored at it")  # fmt: skip
    parser.add_argument("--select-episodes", type=int, default=256,
                        help="validation episodes per candidate weight")  # fmt: skip
    parser.add_argument("--out", default=str(HERE / "results" / "velocity_anchor"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from agents.evaluation.heldout import HeldoutConfig, evaluate, heldout_dataset, reference
    from agents.evaluation.rollout import load_any_policy, loop_policy, policy_fn
    from agents.policies.policy import policy_velocity_bins
    from dataset.velocity import VelocityBins

    work = Path(args.work)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.agent == "pretrained":
        policies = {s: work / "pretrain" / f"seed{s}" / "run" / "policy.pt" for s in seeds}
    else:
        policies = {s: work / "runs" / args.shaping / "ppo+pretrain" / f"seed{s}" / "policy.pt"
                    for s in seeds}  # fmt: skip
    missing = [str(p) for p in policies.values() if not p.is_file()]
    if missing:
        parser.error(f"--work {args.work!r} lacks the {args.agent} policies: {', '.join(missing)}")
    betas = [float(b) for b in args.betas.split(",")]
    temps = [float(t) for t in args.temperatures.split(",") if t]
    players = tuple(p for p in args.heldout_players.split(",") if p)
    levels = args.velocity_levels
    config = HeldoutConfig(data=args.data, heldout_players=players, velocity_levels=levels)
    select = HeldoutConfig(data=args.data, heldout_players=players, velocity_levels=levels,
                           eval_episodes=args.select_episodes, eval_draws=1)  # fmt: skip
    held = heldout_dataset(config, work / "split" / "heldout")
    ref = reference(config, held)
    train = heldout_dataset(config, work / "split" / "train")
    # as the benchmark plays them: a policy at its own bins, loop-the-primer at the train split's
    train_bins = VelocityBins.from_data([np.asarray(s, np.float32) for s in train.sequences],
                                        levels)  # fmt: skip
    t0 = time.perf_counter()

    def scored(play, bins, label: str, seed: int, **extra) -> dict:
        s = evaluate(play, config, config.env_kwargs(held, bins), ref, config.eval_draws)
        row = {"play": label, "seed": seed, **extra, "headline": s["headline"],
               "headline_se": s["headline_se"], "velocity_headline": s["velocity_headline"],
               "oa_velocity": s["oa_velocity"], "oa_accent": s["oa_accent"]}  # fmt: skip
        print(json.dumps(row), flush=True)
        return row

    def choose_beta(policy, seed: int, t: float, vkw, vref) -> tuple[float, dict[str, float]]:
        """The candidate weight with the best validation velocity headline, and all of them."""
        chosen = {
            b: evaluate(policy_fn(policy, seed=seed, temperature=t, velocity_anchor=b),
                        select, vkw, vref)["velocity_headline"]
            for b in betas
        }  # fmt: skip
        return max(sorted(chosen), key=lambda b: chosen[b]), {str(b): v for b, v in chosen.items()}

    drums = int(np.asarray(held.sequences[0]).shape[1])
    loop = loop_policy(drums, config.context_steps, config.steps_per_bar, train_bins)
    rows = [scored(loop, train_bins, "loop the primer", -1)]
    for seed, path in policies.items():
        policy = load_any_policy(path)
        bins = policy_velocity_bins(policy)
        val = heldout_dataset(select, work / "pretrain" / f"seed{seed}" / "split" / "heldout")
        vref, vkw = reference(select, val), select.env_kwargs(val, bins)
        best, validation = choose_beta(policy, seed, 1.0, vkw, vref)
        for label, b in (("as it is", 0.0), ("anchored", best)):
            rows.append(scored(policy_fn(policy, seed=seed, velocity_anchor=b), bins, label, seed,
                               beta=b, temperature=1.0,
                               validation_velocity_headlines=validation))  # fmt: skip
        if temps:
            hits = {t: evaluate(policy_fn(policy, seed=seed, temperature=t), select, vkw,
                                vref)["headline"] for t in temps}  # fmt: skip
            t_best = max(sorted(hits), key=lambda t: hits[t])
            best, validation = choose_beta(policy, seed, t_best, vkw, vref)
            rows.append(scored(
                policy_fn(policy, seed=seed, temperature=t_best, velocity_anchor=best), bins,
                "anchored at T*", seed, beta=best, temperature=t_best,
                validation_headlines={str(t): v for t, v in hits.items()},
                validation_velocity_headlines=validation))  # fmt: skip

    summary = []
    for label in ("as it is", "anchored", "anchored at T*"):
        sel = [r for r in rows if r["play"] == label]
        if not sel:
            continue
        h = np.array([r["headline"] for r in sel])
        v = np.array([r["velocity_headline"] for r in sel])
        summary.append({
            "play": label, "seeds": len(sel), "betas": [r["beta"] for r in sel],
            "temperatures": [r["temperature"] for r in sel],
            "headline": float(h.mean()), "headline_seed_std": float(h.std()),
            "headline_se": float(np.mean([r["headline_se"] for r in sel])),
            "velocity_headline": float(v.mean()), "velocity_seed_std": float(v.std()),
            "velocity_seed_se": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
            "per_seed_velocity": v.tolist(), "per_seed_headline": h.tolist(),
        })  # fmt: skip
    loop_row = rows[0]
    result = {
        "command": "python benchmarks/velocity_anchor.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "wall_s": time.perf_counter() - t0, "ceiling": ref.headline["ceiling"],
        "velocity_ceiling": ref.velocity_headline["ceiling"] if ref.velocity_headline else None,
        "rows": rows, "summary": summary,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Held-out {', '.join(players)}; {config.eval_episodes} primers x {config.eval_draws} "
        f"draws; velocity levels {levels}; seeds {args.seeds}; the anchor's weight chosen on "
        f"validation files among {args.betas}.",
        "",
        "| player | headline (hits): mean (SE) | velocity headline: mean ± std over seeds "
        "(per seed) | weight | temperature |",
        "|---|---:|---:|---|---|",
        f"| loop the primer | {loop_row['headline']:.3f} (SE {loop_row['headline_se']:.3f}) | "
        f"{loop_row['velocity_headline']:.3f} | | |",
    ]
    for s in summary:
        per = ", ".join(f"{x:.3f}" for x in s["per_seed_velocity"])
        lines.append(
            f"| expressive {args.agent}, {s['play']} | {s['headline']:.3f} "
            f"(SE {s['headline_se']:.3f}) | {s['velocity_headline']:.3f} ± "
            f"{s['velocity_seed_std']:.3f} ({per}) | {', '.join(f'{b:g}' for b in s['betas'])} | "
            f"{', '.join(f'{t:g}' for t in s['temperatures'])} |"
        )
    lines += ["", f"Command: `{result['command']}`", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')} "
          f"({result['wall_s']:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
