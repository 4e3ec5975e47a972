"""How far can ranking the pretrained policy's own takes go on held-out players? Best-of-n.

For every seed of a ``drum-env benchmark`` run (its ``--work`` folder: ``pretrain/seed<k>/run``'s
policy and the pretraining's own split), this script plays ``n`` takes of each held-out
evaluation primer at temperature 1 and at the temperature chosen on the pretraining's validation
files (:func:`agents.evaluation.temperature.choose_temperature`), keeps the take that each
selector ranks first among the first ``n`` (``--n``: 1, 2, 4, 8 by default), and scores the
kept takes with the held-out headline and its standard error (:mod:`agents.evaluation.best_of_n`).
The
selectors are what the fine-tuners climb: the ``aligned-raw`` return, the return plus
``--energy-coef`` x the energy witness fit on the pretraining's *training* windows
(``agents.training.preference``'s ranking with ``energy_coef``), and the witness alone. The
return compares a take with its primer's real continuation, which a policy never sees when it
plays: only the witness alone ranks as a judge of new primers could. ``n = 1`` is the policy's own
play (draw 0 is the evaluation's). ``--match-set`` adds two rows at the largest ``n``: the set of
takes whose feature densities overlap most with the training windows' (what a judge fit on
training data knows), and the one that matches the held-out references (an oracle: how good
a set the takes hold; :func:`agents.evaluation.best_of_n.match_set`, starting from the return +
witness's choice). ``--policy`` plays another policy of the work folder instead (e.g. a
fine-tuned one). Writes ``<out>.json`` and ``<out>.md``.

Example (after the whole-canvas benchmark in the README's Results)::

    python benchmarks/best_of_n.py --data runs/groove-npz --heldout-players drummer8,drummer9 \\
        --work runs/bench-wc --seeds 0,1,2 --whole-canvas --n 1,2,4,8,16 --match-set \\
        --out benchmarks/results/groove-players-wc/best_of_n
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
MATCH_TRAIN = "set matched to the training windows"
MATCH_ORACLE = "set matched to the held-out references (an oracle)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the benchmark's npz folder")
    parser.add_argument("--heldout-players", required=True, help="e.g. drummer8,drummer9")
    parser.add_argument("--work", required=True, help="the benchmark's --work folder")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--whole-canvas", action="store_true",
                        help="envs show the whole canvas (a `benchmark --whole-canvas` run)")
    parser.add_argument("--policy", default="pretrain/seed{seed}/run/policy.pt",
                        help="the policy to play, under --work ({seed} is the seed)")
    parser.add_argument("--n", default="1,2,4,8",
                        help="the numbers of takes to keep the best of (1 is the policy's play)")
    parser.add_argument("--energy-coef", type=float, default=10.0,
                        help="the witness's weight in the second selector")
    parser.add_argument("--match-set", action="store_true",
                        help="also choose, among the largest n's takes, the set that matches the "
                             "training windows and the one that matches the held-out references "
                             "(an oracle): agents.evaluation.best_of_n.match_set")  # fmt: skip
    parser.add_argument("--temperatures", default="0.6,0.7,0.8,0.9,1.0,1.1")
    parser.add_argument("--select-episodes", type=int, default=256,
                        help="validation episodes per candidate temperature")  # fmt: skip
    parser.add_argument("--out", default=str(HERE / "results" / "best_of_n"))
    args = parser.parse_args(argv)

    import gymnasium as gym
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import drum_env  # noqa: F401
    from agents.evaluation.best_of_n import best_of, match_set, play_n, score_kept, take_scores
    from agents.evaluation.heldout import HeldoutConfig, heldout_dataset, reference
    from agents.evaluation.rollout import load_any_policy
    from agents.evaluation.temperature import choose_temperature
    from agents.training.discriminator import EnergyWitness, real_windows
    from dataset.evaluation import feature_matrix

    work = Path(args.work)
    players = tuple(p for p in args.heldout_players.split(",") if p)
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:  # everything this needs, before any work
        for path in (work / "split" / "heldout", work / "pretrain" / f"seed{seed}" / "split" /
                     "train", work / args.policy.format(seed=seed)):  # fmt: skip
            if not path.exists():
                parser.error(f"--work {work}: no {path} (run `drum-env benchmark` with the "
                             f"'pretrained' agent and --seeds including {seed} first)")  # fmt: skip
    config = HeldoutConfig(data=args.data, heldout_players=players, whole_canvas=args.whole_canvas)
    select = HeldoutConfig(data=args.data, heldout_players=players, whole_canvas=args.whole_canvas,
                           eval_episodes=args.select_episodes, eval_draws=1)  # fmt: skip
    held = heldout_dataset(config, work / "split" / "heldout")
    ref = reference(config, held)
    kwargs = config.env_kwargs(held, shaping="aligned-raw")
    temps = [float(t) for t in args.temperatures.split(",")]
    ns = sorted({int(n) for n in args.n.split(",")} | {1})
    witness_name = f"{args.energy_coef:g} x energy"
    selectors = ("return", witness_name, f"return + {witness_name}")
    t0 = time.perf_counter()

    rows = []
    for seed in seeds:
        root = work / "pretrain" / f"seed{seed}"
        policy = load_any_policy(work / args.policy.format(seed=seed))
        choice = choose_temperature(policy, select, root / "split" / "heldout", temps, seed=seed)
        train = heldout_dataset(config, root / "split" / "train")
        train_env = gym.make_vec("DrumCompose-v0", num_envs=1,
                                 vectorization_mode="vector_entry_point",
                                 **config.env_kwargs(train))  # fmt: skip
        venv = train_env.unwrapped
        c = venv.config
        real = list(real_windows(venv, c.seq_len, venv.prompt_steps, seed))
        witness = EnergyWitness(real, c.steps_per_bar, c.bars_per_phrase, coef=args.energy_coef,
                                replay=1, seed=seed)  # fmt: skip
        train_features, names, real_raw = feature_matrix(real, c.steps_per_bar, c.bars_per_phrase)
        families = [name.split("/", 1)[0] for name in names]
        disc = [f for f in ref.baselines.discriminative if f in families]
        weights = np.array([1.0 / (len(disc) * families.count(f)) if f in disc else 0.0
                            for f in families])  # the headline's weights  # fmt: skip
        train_env.close()
        for label, t in dict.fromkeys((("T=1", 1.0), ("T*", choice.temperature))):
            draws = play_n(policy, config, kwargs, max(ns), temperature=t, seed=seed)
            returns, both = take_scores(draws), take_scores(draws, witness)
            for name, scores in zip(selectors, (returns, both - returns, both)):
                for n in ns:
                    headline, se = score_kept(draws, best_of(scores, n), config, ref)
                    rows.append({"seed": seed, "play": label, "temperature": t,
                                 "selector": name, "n": n, "headline": headline,
                                 "headline_se": se})  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
            if args.match_set:  # the largest n's takes, from the return + witness's choice
                top, p = max(ns), draws[0].prompt_steps
                flat = [s[p:] > 0 for d in draws[:top] for s in d.sequences]
                cand, _, _ = feature_matrix(flat, c.steps_per_bar, c.bars_per_phrase,
                                            real=real_raw)  # fmt: skip
                refs, _, _ = feature_matrix(list(draws[0].references[:, p:] > 0),
                                            c.steps_per_bar, c.bars_per_phrase,
                                            real=real_raw)  # fmt: skip
                for name, target in ((MATCH_TRAIN, train_features), (MATCH_ORACLE, refs)):
                    kept, _ = match_set(cand.reshape(top, -1, cand.shape[1]), target, weights,
                                        best_of(both, top), seed=seed)  # fmt: skip
                    headline, se = score_kept(draws, kept, config, ref)
                    rows.append({"seed": seed, "play": label, "temperature": t,
                                 "selector": name, "n": top, "headline": headline,
                                 "headline_se": se})  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)

    summary = []
    all_selectors = [*selectors, *((MATCH_TRAIN, MATCH_ORACLE) if args.match_set else ())]
    for label in ("T=1", "T*"):
        for name in all_selectors:
            for n in ns:
                sel = [r for r in rows if (r["play"], r["selector"], r["n"]) == (label, name, n)]
                if not sel:
                    continue
                h = np.array([r["headline"] for r in sel])
                gain = h - np.array([r["headline"] for r in rows
                                     if (r["play"], r["selector"], r["n"]) == (label, "return", 1)])
                summary.append({
                    "play": label, "selector": name, "n": n, "seeds": len(sel),
                    "headline": float(h.mean()),
                    "headline_se": float(np.sqrt(np.sum([r["headline_se"] ** 2 for r in sel]))
                                         / len(sel)),
                    "gain": float(gain.mean()), "per_seed_gain": [float(g) for g in gain],
                })  # fmt: skip
    ceiling = ref.headline["ceiling"]
    result = {
        "command": "python benchmarks/best_of_n.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "wall_s": time.perf_counter() - t0, "ceiling": ceiling, "episodes": config.eval_episodes,
        "rows": rows, "summary": summary,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Best-of-n: the policy's own takes ranked by the fine-tuners' scores, on held-out "
        "players",
        "",
        f"Made by: `{result['command']}` ({result['wall_s']:.0f} s). {config.eval_episodes} "
        f"held-out primers, n takes each; seeds {', '.join(map(str, seeds))}.",
        "",
        f"Ceiling (real vs real): {ceiling[0]:.3f} ± {ceiling[1]:.3f}.",
        "",
        "| played at | kept by | " + " | ".join(f"n = {n}" for n in ns)
        + f" | gain at n = {max(ns)} (per seed) |",
        "|---|---|" + "---:|" * len(ns) + "---|",
    ]
    for label in ("T=1", "T*"):
        for name in all_selectors:
            cells = {s["n"]: s for s in summary if (s["play"], s["selector"]) == (label, name)}
            if not cells:
                continue
            top = cells[max(cells)]
            per_seed = ", ".join(f"{g:+.3f}" for g in top["per_seed_gain"])
            lines.append(
                f"| {label} | {name} | "
                + " | ".join(f"{cells[n]['headline']:.3f} (SE {cells[n]['headline_se']:.3f})"
                             if n in cells else "" for n in ns)
                + f" | {top['gain']:+.3f} ({per_seed}) |"
            )
    lines += ["", "Headline: mean over seeds; SE: of that mean (the seeds' bootstrap errors). "
              "n = 1 is the policy's own play.", "",
              "Data: Groove MIDI Dataset (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019; "
              "Google Magenta), CC BY 4.0.", ""]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
