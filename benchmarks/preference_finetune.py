"""Does preference fine-tuning (online DPO) beat its start at the start's best temperature?

For every seed of a ``drum-env benchmark`` run (its ``--work`` folder: the pretrained policy of
``pretrain/seed<k>/run`` and the pretraining's own split), this script fine-tunes the pretrained
policy by online DPO (:func:`agents.training.preference.finetune`: pairs of its own takes of
one training primer, the best and the worst by the ``aligned-raw`` return) on the pretraining's
training files, then plays the start and the result each at temperature 1 and at the
temperature chosen on the pretraining's validation files (training players only:
:func:`agents.evaluation.temperature.choose_temperature`), and scores them on the held-out
players with the headline's standard error and the takes' intra-set diversity beside the real
continuations'. Along the run it scores the policy on the held-out players every
``--eval-every`` rounds (temperature 1, one draw: the curve, for reading only, never for
choosing). The fine-tuned policies are saved under
``<work>/preference/<name of --out>/seed<k>/policy.pt`` (``drum-env generate --policy`` plays
them). Writes ``<out>.json`` and ``<out>.md``.

Example (after the whole-canvas benchmark in the README's Results)::

    python benchmarks/preference_finetune.py --data runs/groove-npz \\
        --heldout-players drummer8,drummer9 --work runs/bench-wc --seeds 0,1,2 --whole-canvas \\
        --out benchmarks/results/groove-players-wc/preference
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
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--whole-canvas", action="store_true",
                        help="envs show the whole canvas (a `benchmark --whole-canvas` run)")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--primers", type=int, default=128)
    parser.add_argument("--takes", type=int, default=4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--energy-coef", type=float, default=0.0,
                        help="rank takes by return + this x the energy witness (0: the return)")
    parser.add_argument("--eval-every", type=int, default=4,
                        help="rounds between the held-out curve's points (0: none)")
    parser.add_argument("--temperatures", default="0.6,0.7,0.8,0.9,1.0,1.1")
    parser.add_argument("--select-episodes", type=int, default=256,
                        help="validation episodes per candidate temperature")  # fmt: skip
    parser.add_argument("--diversity-episodes", type=int, default=256)
    parser.add_argument("--out", default=str(HERE / "results" / "preference"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from agents.evaluation.heldout import HeldoutConfig, evaluate, heldout_dataset, reference
    from agents.evaluation.rollout import load_any_policy, policy_fn
    from agents.evaluation.temperature import score_at_chosen_temperature
    from agents.policies.policy import save_policy
    from agents.training.preference import PreferenceConfig, finetune

    work = Path(args.work)
    players = tuple(p for p in args.heldout_players.split(",") if p)
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:  # everything this needs, before any work
        for path in (work / "split" / "heldout", work / "pretrain" / f"seed{seed}" / "split" /
                     "train", work / "pretrain" / f"seed{seed}" / "run" / "policy.pt"):  # fmt: skip
            if not path.exists():
                parser.error(f"--work {work}: no {path} (run `drum-env benchmark` with the "
                             f"'pretrained' agent and --seeds including {seed} first)")  # fmt: skip
    config = HeldoutConfig(data=args.data, heldout_players=players, whole_canvas=args.whole_canvas)
    select = HeldoutConfig(data=args.data, heldout_players=players, whole_canvas=args.whole_canvas,
                           eval_episodes=args.select_episodes, eval_draws=1)  # fmt: skip
    curve_cfg = HeldoutConfig(data=args.data, heldout_players=players,
                              whole_canvas=args.whole_canvas, eval_draws=1)  # fmt: skip
    held = heldout_dataset(config, work / "split" / "heldout")
    ref = reference(config, held)
    kwargs = config.env_kwargs(held)
    temps = [float(t) for t in args.temperatures.split(",")]
    t0 = time.perf_counter()

    rows, curves, histories = [], {}, {}
    real_diversity = None

    def score(policy, agent: str, seed: int, val_dir: Path) -> None:
        nonlocal real_diversity
        scored, real_diversity = score_at_chosen_temperature(
            policy, config, select, val_dir, kwargs, ref, temps, seed=seed,
            diversity_episodes=args.diversity_episodes,
        )  # fmt: skip
        for row in scored:
            rows.append({"agent": agent, **row})
            print(json.dumps(rows[-1]), flush=True)

    pref = PreferenceConfig(rounds=args.rounds, primers=args.primers, takes=args.takes,
                            beta=args.beta, learning_rate=args.learning_rate, epochs=args.epochs,
                            energy_coef=args.energy_coef)  # fmt: skip
    for seed in seeds:
        root = work / "pretrain" / f"seed{seed}"
        val_dir = root / "split" / "heldout"
        policy = load_any_policy(root / "run" / "policy.pt")
        score(policy, "pretrained", seed, val_dir)
        train_data = heldout_dataset(config, root / "split" / "train")
        curve = []

        def on_round(r: int, p, seed: int = seed, curve: list = curve) -> None:
            if args.eval_every and r % args.eval_every == 0:
                s = evaluate(policy_fn(p, seed=seed), curve_cfg, kwargs, ref, 1)
                curve.append({"round": r, "headline": s["headline"]})
                print(json.dumps({"seed": seed, **curve[-1]}), flush=True)

        start_curve = evaluate(policy_fn(policy, seed=seed), curve_cfg, kwargs, ref, 1)
        curve.append({"round": 0, "headline": start_curve["headline"]})
        history = finetune(policy, config.env_kwargs(train_data),
                           PreferenceConfig(**{**pref.__dict__, "seed": seed}), on_round)
        curves[seed], histories[seed] = curve, history
        save_policy(work / "preference" / Path(args.out).name / f"seed{seed}" / "policy.pt", policy)
        score(policy, "dpo", seed, val_dir)

    summary = []
    for agent in ("pretrained", "dpo"):
        for label in ("T=1", "T*"):
            sel = [r for r in rows if r["agent"] == agent and r["play"] == label]
            h = np.array([r["headline"] for r in sel])
            summary.append({
                "agent": agent, "play": label, "seeds": len(sel),
                "headline": float(h.mean()), "headline_seed_std": float(h.std()),
                "headline_se": float(np.sqrt(np.sum([r["headline_se"] ** 2 for r in sel]))
                                     / len(sel)),
                "temperatures": [r["temperature"] for r in sel],
                "per_seed": [float(x) for x in h],
                "diversity": float(np.mean([r["diversity"] for r in sel])),
            })  # fmt: skip
    ceiling = ref.headline["ceiling"]
    result = {
        "command": "python benchmarks/preference_finetune.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "preference": pref.__dict__, "wall_s": time.perf_counter() - t0, "ceiling": ceiling,
        "real_diversity": real_diversity, "rows": rows, "summary": summary,
        "curves": {str(k): v for k, v in curves.items()},
        "histories": {str(k): v for k, v in histories.items()},
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Preference fine-tuning (online DPO) vs its start, each at temperature 1 and at its "
        "validation-chosen temperature",
        "",
        f"Made by: `{result['command']}` ({result['wall_s']:.0f} s). DPO: "
        + ", ".join(f"{k} {v}" for k, v in pref.__dict__.items() if k != "seed") + ".",
        "",
        f"Ceiling (real vs real): {ceiling[0]:.3f} ± {ceiling[1]:.3f}. Intra-set diversity of the "
        f"real continuations: {real_diversity:.3f}.",
        "",
        "| agent | played at | headline (mean ± std over seeds) | SE | per seed | temperatures | "
        "diversity of the takes |",
        "|---|---|---:|---:|---|---|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['agent']} | {s['play']} | {s['headline']:.3f} ± {s['headline_seed_std']:.3f} | "
            f"{s['headline_se']:.4f} | {', '.join(f'{x:.3f}' for x in s['per_seed'])} | "
            f"{', '.join(f'{t:g}' for t in s['temperatures'])} | {s['diversity']:.3f} |"
        )
    lines += ["", "Held-out curve along the run (temperature 1, one draw; round 0 is the start):",
              "", "| seed | " + " | ".join(f"round {c['round']}" for c in curves[seeds[0]]) + " |",
              "|---|" + "---:|" * len(curves[seeds[0]])]  # fmt: skip
    for seed in seeds:
        lines.append(f"| {seed} | " + " | ".join(f"{c['headline']:.3f}" for c in curves[seed])
                     + " |")  # fmt: skip
    lines += ["", "Data: Groove MIDI Dataset (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019; "
              "Google Magenta), CC BY 4.0.", ""]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
