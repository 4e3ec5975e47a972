"""Do the velocity terms rank real dynamics first? The alignment table of the expressive env.

Every player plays the **real hits** of each episode's reference continuation (so every hit
term is the same for all of them) and differs only in its velocity classes:

| player | classes of the real hits |
|---|---|
| ``real`` | the reference's own (``bins.encode`` of its velocities): the ceiling |
| ``shuffled`` | the reference's own, permuted among the window's hits (wrong places) |
| ``primer mean`` | each drum at the class of its primer mean (what a binary take plays) |
| ``data random`` | drawn from the data's class frequencies (right distribution, no structure) |
| ``middle`` | one middle class for every hit |
| ``loudest`` | class ``K`` for every hit |

For each player: the mean over episodes of the summed raw velocity terms
(``bar_velocity + phrase_velocity + song_velocity``, each in ``[-1, 0]`` per unit), and the
velocity headline of its takes against the references' **recorded** velocities
(:func:`dataset.evaluation.score_velocity_sets`, discriminative families from
:func:`dataset.evaluation.compare_velocity_to_baselines` on the same windows). The property a
user relies on: ``real`` has the highest return, and the returns rank the players like the
headline (Spearman).

Run: ``python benchmarks/velocity_alignment.py [--data FOLDER] [--velocity-levels 4]
[--episodes 128]`` (default: the built-in corpus; writes
``benchmarks/results/velocity_alignment.{json,md}``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import gymnasium as gym
import numpy as np

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from agents.evaluation.alignment import spearman
from dataset.evaluation import compare_velocity_to_baselines, score_velocity_sets
from drum_env.rewards import VELOCITY_TERMS

PLAYERS = ("real", "shuffled", "primer mean", "data random", "middle", "loudest")


def _classes(player: str, real: np.ndarray, values: np.ndarray, prompt: int, bins,
             class_rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """The player's classes (seq_len, drums) for one window; the real hits, other velocities."""
    hit = real > 0
    k = bins.num_levels
    if player == "real":
        return real
    if player == "shuffled":
        out = np.zeros_like(real)
        out[hit] = rng.permutation(real[hit])
        return out
    if player == "primer mean":
        primer = values[:prompt]
        on = primer > 0
        mean = np.where(on.any(0), (primer * on).sum(0) / np.maximum(on.sum(0), 1),
                        primer[on].mean() if on.any() else 1.0)  # fmt: skip
        return np.where(hit, bins.encode(mean)[None, :], 0)
    if player == "data random":
        draws = np.array([rng.choice(k, size=len(real), p=class_rates[d]) + 1
                          for d in range(real.shape[1])]).T  # fmt: skip
        return np.where(hit, draws, 0)
    if player == "middle":
        return np.where(hit, (k + 1) // 2, 0)
    return np.where(hit, k, 0)  # loudest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="folder of .npz drums (default: built in)")
    ap.add_argument("--velocity-levels", type=int, default=4)
    ap.add_argument("--episodes", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()

    env = gym.make("DrumCompose-v0", data=args.data, seq_len=args.seq_len, prompt_bars=1,
                   velocity_levels=args.velocity_levels, shaping="aligned-raw")  # fmt: skip
    u = env.unwrapped
    c = u.config
    bins, p = c.velocity_bins, c.prompt_steps
    data_classes = np.concatenate([bins.encode(v) for v in u.data.values])
    hits = data_classes[data_classes.any(axis=1)]
    class_rates = np.stack([np.bincount(np.maximum(hits[:, d] - 1, 0)[hits[:, d] > 0],
                                        minlength=bins.num_levels) + 1e-9
                            for d in range(c.num_drums)])  # fmt: skip
    class_rates /= class_rates.sum(axis=1, keepdims=True)

    rng = np.random.default_rng(args.seed)
    windows = rng.choice(len(u.data.windows), size=min(args.episodes, len(u.data.windows)),
                         replace=False)  # fmt: skip
    recorded = u.data.stack_values(windows, c.seq_len)
    base = compare_velocity_to_baselines(list(recorded[:, p:]), c.steps_per_bar, seed=args.seed)
    returns = {name: [] for name in PLAYERS}
    takes = {name: [] for name in PLAYERS}
    for w, values in zip(windows, recorded):
        env.reset(seed=args.seed, options={"window": int(w)})
        real = bins.encode(u.reference_values)
        for name in PLAYERS:
            classes = _classes(name, real, values, p, bins, class_rates, rng)
            env.reset(seed=args.seed, options={"window": int(w)})
            total = 0.0
            for t in range(p, c.seq_len):
                *_, info = env.step(classes[t])
                total += sum(info["reward_terms"][f"{k}/raw"] for k in VELOCITY_TERMS)
            returns[name].append(total)
            takes[name].append(u.take[p:])
    rows = []
    for name in PLAYERS:
        score = score_velocity_sets(takes[name], list(recorded[:, p:]), c.steps_per_bar)
        rows.append({"player": name, "velocity_return": float(np.mean(returns[name])),
                     "velocity_return_std": float(np.std(returns[name])),
                     "velocity_headline": base.headline(score)})  # fmt: skip
    rets = [r["velocity_return"] for r in rows]
    heads = [r["velocity_headline"] for r in rows]
    result = {
        "command": "python benchmarks/velocity_alignment.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "data": args.data or "built-in corpus", "episodes": len(windows),
        "velocity_bins": bins.to_dict(), "discriminative": list(base.discriminative),
        "ceiling": base.headline(base.real_vs_real), "rows": rows,
        "real_first": bool(np.argmax(rets) == 0 and rets[0] > max(rets[1:])),
        "spearman": spearman(rets, heads),
    }  # fmt: skip
    lines = [
        "# Velocity alignment: real hits, other dynamics", "",
        f"Made by: `{result['command']}` on {result['date']} ({result['machine']}).", "",
        f"Data: {result['data']}, {len(windows)} windows of {c.seq_len} steps (1 bar primer), "
        f"K = {bins.num_levels} bins: {bins!r}.", "",
        "| player | velocity return (sum of raw velocity terms) | velocity headline |",
        "|---|---:|---:|",
        *(f"| {r['player']} | {r['velocity_return']:.3f} ± {r['velocity_return_std']:.3f} | "
          f"{r['velocity_headline']:.3f} |" for r in rows),
        "",
        f"Real first: **{result['real_first']}**; Spearman(returns, headlines) = "
        f"**{result['spearman']:.2f}**; velocity ceiling (real vs real halves) "
        f"{result['ceiling']:.3f}; discriminative families: {', '.join(base.discriminative)}.",
    ]  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "velocity_alignment"
    if args.data is not None:
        stem += f"_{Path(args.data).name}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
