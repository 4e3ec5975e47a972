"""Where the native vector env's time goes: vector steps timed by what closes on them.

Steps ``gymnasium.make_vec("DrumCompose-v0", num_envs=N, vectorization_mode="vector_entry_point")``
(default arguments, the built-in corpus as :mod:`benchmarks.env_throughput` reads it) through
whole episodes, autoresets included, on one CPU thread, with random actions (hit rate 0.3)
sampled before timing, and reports:

* every vector step timed with ``time.perf_counter`` and labelled by what closes on it (from
  the config: an open step, a bar end, a bar and phrase end, the episode end with its section
  and song, the autoreset step that resets every sub-env): vector steps per episode, median
  microseconds per vector step, share of the episode's time;
* one more episode under ``cProfile``: the cumulative share of the parts of a step (the core's
  step and the features it computes, the observation, the resets, the action check);
  cProfile's overhead inflates the many small calls, so read these as rough shares.

The first ``--warmup`` episodes are not timed: the windows they draw get their reference
features cached, as in a long run (with 1,024 sub-envs, 8 episodes draw 8,192 windows of the
corpus's 1,717). Run: ``python benchmarks/env_profile.py [--n 1024] [--episodes 4]`` (about 10 s at
1,024 envs; writes ``benchmarks/results/env_profile.md``). To profile another version of the
env, run this file with its checkout first on ``PYTHONPATH``.
"""

# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import cProfile
import datetime
import pstats
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import drum_env
from dataset.hierarchical import CompleteHierarchicalDrumDataset
from dataset.synthetic import default_corpus

RESULTS = Path(__file__).resolve().parent / "results" / "env_profile.md"

# cProfile rows reported: label -> "file name ending:function name"
PARTS = {
    "vector env step, all of it": "vector.py:step",
    "core step (rewards, buffers)": "core.py:step",
    "song metrics (episode end)": "levels.py:song_metrics",
    "phrase features (phrase ends)": "rewards.py:phrase_features",
    "bar features (bar ends)": "rewards.py:bar_features",
    "variety features (bar ends)": "rewards.py:variety_features",
    "observation": "core.py:observe",
    "resets (windows, reference features)": "vector.py:_reset_envs",
    "action check": "checks.py:check_actions",
}


def step_kinds(config) -> list[str]:
    """What closes on each vector step of an episode, the autoreset step last."""
    spans = {end for _, end in config.section_spans}
    kinds = []
    for t in range(config.prompt_steps + 1, config.seq_len + 1):
        if t == config.seq_len:
            kinds.append("episode end (bar, phrase, section, song; episode metrics)")
        elif t % config.phrase_len == 0:
            kinds.append("bar and phrase end" + (", section end" if t in spans else ""))
        elif t % config.steps_per_bar == 0:
            kinds.append("bar end" + (", section end" if t in spans else ""))
        else:
            kinds.append("open step (the step term only)")
    return [*kinds, "autoreset (every sub-env resets)"]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="sub-envs")
    parser.add_argument("--episodes", type=int, default=4, help="timed episodes")
    parser.add_argument("--warmup", type=int, default=8, help="untimed episodes first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    single = gym.make("DrumCompose-v0")
    cfg = single.unwrapped.config
    data = CompleteHierarchicalDrumDataset(
        None, cfg.seq_len, cfg.steps_per_bar, cfg.bars_per_phrase, stride=cfg.steps_per_bar,
        sequences=default_corpus(), as_numpy=True,
    )  # fmt: skip
    env = gym.make_vec("DrumCompose-v0", num_envs=args.n,
                       vectorization_mode="vector_entry_point", data=data)  # fmt: skip
    kinds = step_kinds(cfg)
    rng = np.random.default_rng(args.seed)
    actions = (rng.random((len(kinds), args.n, cfg.num_drums)) < 0.3).astype(np.int8)
    env.reset(seed=args.seed)
    for _ in range(args.warmup):
        for a in actions:
            env.step(a)
    times: dict[str, list[float]] = {kind: [] for kind in dict.fromkeys(kinds)}
    for _ in range(args.episodes):
        for kind, a in zip(kinds, actions):
            start = time.perf_counter()
            env.step(a)
            times[kind].append(time.perf_counter() - start)
    total = sum(sum(v) for v in times.values())
    steps_per_s = args.episodes * len(kinds) * args.n / total

    profile = cProfile.Profile()
    profile.enable()
    for a in actions:
        env.step(a)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    profiled = sum(tt for (_, _, name), (_, _, tt, _, _) in stats.items())

    def cumulative(file_end: str, name: str) -> float:
        return sum(ct for (f, _, n), (_, _, _, ct, _) in stats.items()
                   if n == name and f.endswith(file_end))  # fmt: skip

    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"Native vector env, N = {args.n}, `{cfg.shaping.name}`, seq_len {cfg.seq_len} "
        f"({cfg.episode_steps} steps + the autoreset step an episode), {args.episodes} "
        f"episodes after {args.warmup} untimed, 1 thread ({date}, drum_env "
        f"{drum_env.__version__} from `{Path(drum_env.__file__).resolve().parent}`): "
        f"**{steps_per_s:,.0f} env steps/s**",
        "",
        "| vector step | per episode | us per vector step (median) | share of the time |",
        "|---|---:|---:|---:|",
    ]
    for kind, values in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        lines.append(
            f"| {kind} | {len(values) // args.episodes} | {1e6 * np.median(values):,.0f} | "
            f"{sum(values) / total:.1%} |"
        )
    lines += ["", "| part (cProfile, one episode, cumulative) | share |", "|---|---:|"]
    for label, where in PARTS.items():
        file_end, name = where.split(":")
        lines.append(f"| {label} | {cumulative(file_end, name) / profiled:.1%} |")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
