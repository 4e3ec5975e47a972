"""Where does a policy lose to real drumming? Each evaluation family's overlap, and how often
the takes repeat themselves, for a few policies at a few sampling temperatures.

The headline (README, "Evaluation, independent of the reward") is the mean overlapping area
(OA) over the discriminative families, so a policy's gap to the real-vs-real ceiling is the sum
of its families' gaps. This script scores each ``NAME=policy.pt`` at each temperature on the
held-out players (:func:`agents.evaluation.heldout.evaluate`, one draw) and prints every
family's OA beside the headline and its standard error. Next to them it puts the statistic
behind the weakest family in the README's runs, ``ngram_diversity``: the share of a take's
4-step windows (4-grams of step patterns) that are distinct,
``dataset.metrics.n_grams(take, 4).diversity``, whose mean and spread over the takes are
compared with the real continuations of the same primers (0: one pattern looped; 1: no
4-gram ever repeats). Writes ``<out>.json`` and ``<out>.md``.

Example (after the benchmark in the README's Results)::

    python benchmarks/family_gap.py --data runs/groove-npz --heldout-players drummer8,drummer9 \\
        --work runs/bench-players --temperatures 1.0,0.8 \\
        --policy pretrained=runs/bench-players/pretrain/seed0/run/policy.pt \\
        --policy ppo+pretrain=runs/bench-players/runs/aligned/ppo+pretrain/seed0/policy.pt \\
        --out benchmarks/results/groove-players/family_gap
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


def policy_arg(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--policy must be NAME=PATH, got {value!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"--policy {name}: no file {path!r}")
    return name, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the benchmark's npz folder")
    parser.add_argument("--heldout-players", required=True, help="e.g. drummer8,drummer9")
    parser.add_argument("--work", required=True, help="the benchmark's --work folder")
    parser.add_argument("--policy", type=policy_arg, action="append", required=True,
                        help="NAME=PATH of a saved policy (policy.pt); repeat for more")
    parser.add_argument("--temperatures", default="1.0,0.8")
    parser.add_argument("--episodes", type=int, default=512, help="held-out episodes (one draw)")
    parser.add_argument("--ngram-episodes", type=int, default=256,
                        help="episodes for the 4-gram statistics")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the policies")
    parser.add_argument("--whole-canvas", action="store_true",
                        help="envs show the whole canvas (policies of `--whole-canvas` runs)")
    parser.add_argument("--out", default=str(HERE / "results" / "family_gap"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from agents.evaluation.heldout import HeldoutConfig, evaluate, heldout_dataset, reference
    from agents.evaluation.rollout import load_any_policy, policy_fn, rollout_episodes
    from dataset.metrics import n_grams

    players = tuple(p for p in args.heldout_players.split(",") if p)
    config = HeldoutConfig(data=args.data, heldout_players=players, eval_episodes=args.episodes,
                           eval_draws=1, whole_canvas=args.whole_canvas)  # fmt: skip
    held = heldout_dataset(config, Path(args.work) / "split" / "heldout")
    ref = reference(config, held)
    kwargs = config.env_kwargs(held)
    temps = [float(t) for t in args.temperatures.split(",")]
    fams = [f for f in ref.baselines.discriminative]
    t0 = time.perf_counter()

    def spread(values: np.ndarray) -> dict[str, float]:
        return {"mean": float(values.mean()), "std": float(values.std())}

    rows, real = [], None
    for name, path in args.policy:
        policy = load_any_policy(path)
        for temp in temps:
            play = policy_fn(policy, seed=args.seed, temperature=temp)
            score = evaluate(play, config, kwargs, ref, draws=1)
            r = rollout_episodes(policy_fn(policy, seed=args.seed, temperature=temp), kwargs,
                                 episodes=args.ngram_episodes, num_envs=16,
                                 seed=config.eval_seed)  # fmt: skip
            p = r.prompt_steps
            takes, refs = r.sequences[:, p:] > 0, r.references[:, p:] > 0
            if real is None:
                real = spread(n_grams(refs, 4).diversity)
            row = {"policy": name, "path": path, "temperature": temp,
                   "headline": score["headline"], "headline_se": score["headline_se"],
                   "families": {f: score[f"oa_{f}"] for f in fams},
                   "ngram_diversity": spread(n_grams(takes, 4).diversity)}  # fmt: skip
            rows.append(row)
            print(f"{name} T={temp}: headline {row['headline']:.3f}, 4-gram diversity "
                  f"{row['ngram_diversity']['mean']:.3f} (real {real['mean']:.3f})",
                  file=sys.stderr, flush=True)  # fmt: skip

    ceiling = ref.headline["ceiling"]
    result = {
        "command": "python benchmarks/family_gap.py " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv),  # fmt: skip
        "machine": platform.platform(), "wall_s": time.perf_counter() - t0,
        "ceiling": {"mean": ceiling[0], "std": ceiling[1]},
        "real_ngram_diversity": real, "families": fams, "rows": rows,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    short = {f: f[:8] for f in fams}
    head = ["policy", "T", "headline (SE)", "4-gram diversity", *short.values()]
    lines = [f"Made by: `{result['command']}`", "",
             f"Ceiling (real vs real): {ceiling[0]:.3f}; the real continuations' 4-gram "
             f"diversity: {real['mean']:.3f} ± {real['std']:.3f} (mean ± std over takes).", "",
             "| " + " | ".join(head) + " |",
             "|" + "---|" * 2 + "---:|" * (len(head) - 2)]  # fmt: skip
    for row in rows:
        ngd = row["ngram_diversity"]
        cells = [row["policy"], f"{row['temperature']:g}",
                 f"{row['headline']:.3f} ({row['headline_se']:.3f})",
                 f"{ngd['mean']:.3f} ± {ngd['std']:.3f}",
                 *(f"{row['families'][f]:.3f}" for f in fams)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
