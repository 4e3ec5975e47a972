"""Env steps per second of DrumCompose-v0: single env, SyncVectorEnv vs native vector env.

Measures, on one CPU thread, with random actions sampled before timing:

* (a) ``single``: one ``gymnasium.make("DrumCompose-v0")`` (default arguments: seq_len 128,
  2 primer bars, the default ``aligned`` reward, the checker and order wrappers that
  ``make`` adds), stepped through whole episodes, resetting when one terminates, taking turns
  with ``gymnasium.make("CartPole-v1")`` stepped the same way (random actions sampled before
  timing, same number of steps): ``cartpole_ratio`` = CartPole steps/s / DrumCompose steps/s,
  both from the same run;
* (b) ``vector``: ``gymnasium.vector.SyncVectorEnv`` over ``N`` such envs against the native
  ``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")`` at ``N`` = 16, 256 and
  1024, in env steps per second (vector steps * N), autoresets included. Both read one shared
  in-memory dataset of the built-in corpus (the same windows as ``data=None``; without it each of
  the 1024 sync envs would rebuild the corpus). At N = 1024 the sync env runs fewer vector
  steps (one episode, or a part of one with ``--quick``) to bound the time; a part of an
  episode leaves out the costlier episode end and reset, which flatters Sync, so the quick
  ratios are conservative;
* (c) ``seq_len``: the single env at seq_len 64 and 1024 (1 primer bar) over whole episodes,
  resets included, on one corpus of long sequences (the built-in corpus concatenated, since
  its sequences are shorter than 1024 steps). ``cost = 1 / steps_per_s``; the ratio
  ``cost(1024) / cost(64)`` is 1 when a step's cost does not grow with the episode length.

Every measurement runs once untimed (warm-up: imports, caches; the env caches each reference
window's features, and every run resets with the same seed, so the timed runs see warm caches
as a long training run does), then ``--repeats`` timed runs, the compared paths (Sync and
native at one N; seq_len 64 and 1024) taking turns; the best is reported (all runs are in the
JSON). Timing: ``time.perf_counter``.

Targets (reported, not asserted): >= 30,000 steps/s single env; the single env at most 4x
slower than CartPole-v1 (``cartpole_ratio <= 4``); native >= 30x Sync at N = 256;
``cost(1024) / cost(64) <= 1.2``.

Run: ``python benchmarks/env_throughput.py [--quick]`` (writes
``benchmarks/results/env_throughput.json``; ``--quick`` runs in well under 30 s).
``--parts b --n 1024`` measures only the vector envs at N = 1024 (``--out`` elsewhere to keep
the full results). Comparing two versions of the env: run this file with each version's
checkout first on ``PYTHONPATH``, taking turns, on the same machine.
"""

# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
from __future__ import annotations

import os

# One core: set before numpy creates its thread pool.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import datetime
import functools
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from dataset.hierarchical import CompleteHierarchicalDrumDataset
from dataset.synthetic import default_corpus

ENV_ID = "DrumCompose-v0"
RESULTS = Path(__file__).resolve().parent / "results" / "env_throughput.json"
TARGET_SINGLE = 30_000.0
TARGET_CARTPOLE_RATIO = 4.0
TARGET_NATIVE_VS_SYNC = 30.0
TARGET_COST_RATIO = 1.2


def best_of(fns: dict[str, Callable[[], int]], repeats: int) -> dict[str, tuple[float, list]]:
    """Steps/s of each ``fn`` (which returns the steps it made): best run and all runs.

    Every ``fn`` runs once untimed (warm-up), then the ``fn`` take turns, run by run, so that a
    change in machine load hits the paths that are compared alike.
    """
    for fn in fns.values():
        fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            n = fn()
            runs[name].append(n / (time.perf_counter() - start))
    return {name: (max(r), r) for name, r in runs.items()}


def single_env_runner(env: gym.Env, steps: int, seed: int) -> Callable[[], int]:
    """Step ``env`` ``steps`` times with pre-sampled actions, resetting at episode ends.

    MultiBinary actions (DrumCompose) are int8 rows; Discrete ones (CartPole) Python ints.
    """
    rng = np.random.default_rng(seed)
    if isinstance(env.action_space, gym.spaces.Discrete):
        actions = rng.integers(env.action_space.n, size=steps).tolist()
    else:
        actions = (rng.random((steps, env.action_space.n)) < 0.3).astype(np.int8)

    def run() -> int:
        env.reset(seed=seed)
        step = env.step
        for a in actions:
            out = step(a)
            if out[2] or out[3]:
                env.reset()
        return steps

    return run


def vector_env_runner(env: gym.vector.VectorEnv, steps: int, seed: int) -> Callable[[], int]:
    """Step a vector env ``steps`` times (autoreset included); returns env steps."""
    shape = (steps, env.num_envs, env.single_action_space.n)
    actions = (np.random.default_rng(seed).random(shape) < 0.3).astype(np.int8)

    def run() -> int:
        env.reset(seed=seed)
        step = env.step
        for a in actions:
            step(a)
        return steps * env.num_envs

    return run


def long_corpus(min_len: int) -> list[np.ndarray]:
    """The built-in corpus concatenated, in order, into sequences of at least ``min_len``."""
    out, parts, length = [], [], 0
    for seq in default_corpus():
        parts.append(seq)
        length += len(seq)
        if length >= min_len:
            out.append(np.concatenate(parts))
            parts, length = [], 0
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps: well under 30 s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--parts", nargs="+", choices=["a", "b", "c"], default=["a", "b", "c"],
                        help="which measurements: (a) single env, (b) vector envs, (c) seq_len")
    parser.add_argument("--n", type=int, nargs="+", default=[16, 256, 1024],
                        help="numbers of sub-envs of (b)")  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    t_start = time.perf_counter()

    single = gym.make(ENV_ID)
    episode = single.unwrapped.config.episode_steps
    result_single = measure_single(single, quick, args) if "a" in args.parts else None
    vector_rows = measure_vector(single, quick, args) if "b" in args.parts else None
    cost_rows = measure_seq_len(quick, args) if "c" in args.parts else None
    result = {
        "benchmark": "env_throughput",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "repeats": args.repeats,
        "parts": args.parts,
        "threads": {"OMP_NUM_THREADS": 1},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "gymnasium": gym.__version__,
            "drum_env": drum_env.__version__,
            "drum_env_path": str(Path(drum_env.__file__).resolve().parent),
        },
        "corpus": "built-in synthetic corpus (dataset.synthetic.default_corpus); (c): the same "
        "concatenated into sequences of >= 2048 steps",
        "episode_steps": episode,
        "single_env": result_single,
        "vector": vector_rows,
        "seq_len_cost": cost_rows,
        "targets": targets(result_single, vector_rows, cost_rows),
        "wall_s": time.perf_counter() - t_start,
    }
    print(markdown_table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s)")
    return result


def measure_single(single: gym.Env, quick: bool, args: argparse.Namespace) -> dict:
    """(a): the single env with default arguments, taking turns with CartPole-v1."""
    episode = single.unwrapped.config.episode_steps
    single_steps = (4 if quick else 40) * episode
    cartpole = gym.make("CartPole-v1")
    timed = best_of(
        {
            "single": single_env_runner(single, single_steps, args.seed),
            "cartpole": single_env_runner(cartpole, single_steps, args.seed),
        },
        args.repeats,
    )
    (sps, runs), (cp_sps, cp_runs) = timed["single"], timed["cartpole"]
    cartpole.close()
    return {
        "steps_per_s": sps,
        "runs_steps_per_s": runs,
        "timed_steps": single_steps,
        "seq_len": single.unwrapped.config.seq_len,
        "shaping": single.unwrapped.config.shaping.name,
        "wrappers": str(single),
        "cartpole_steps_per_s": cp_sps,
        "cartpole_runs_steps_per_s": cp_runs,
        "cartpole_ratio": cp_sps / sps,
    }


def measure_vector(single: gym.Env, quick: bool, args: argparse.Namespace) -> dict:
    """(b): SyncVectorEnv vs the native vector env at each ``--n``, same data, same config."""
    cfg = single.unwrapped.config
    episode = cfg.episode_steps
    data = CompleteHierarchicalDrumDataset(
        None, cfg.seq_len, cfg.steps_per_bar, cfg.bars_per_phrase, stride=cfg.steps_per_bar,
        sequences=default_corpus(), as_numpy=True,
    )  # fmt: skip
    vector_rows = {}
    for n in args.n:
        native_steps = (episode + 1) if quick else 2 * (episode + 1)
        if n >= 1024:
            sync_steps = 4 if quick else episode + 1
        else:
            sync_steps = (episode + 1) // 8 if quick else 2 * (episode + 1)
        native = gym.make_vec(
            ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", data=data
        )
        sync = gym.vector.SyncVectorEnv(
            [functools.partial(gym.make, ENV_ID, data=data) for _ in range(n)]
        )
        timed = best_of(
            {
                "native": vector_env_runner(native, native_steps, args.seed),
                "sync": vector_env_runner(sync, sync_steps, args.seed),
            },
            args.repeats,
        )
        (n_sps, n_runs), (s_sps, s_runs) = timed["native"], timed["sync"]
        vector_rows[str(n)] = {
            "native_env_steps_per_s": n_sps,
            "native_runs": n_runs,
            "native_vector_steps": native_steps,
            "sync_env_steps_per_s": s_sps,
            "sync_runs": s_runs,
            "sync_vector_steps": sync_steps,
            "native_vs_sync": n_sps / s_sps,
        }
        native.close()
        sync.close()
    return vector_rows


def measure_seq_len(quick: bool, args: argparse.Namespace) -> dict:
    """(c): the single env's cost per step at seq_len 64 and 1024, whole episodes."""
    corpus = long_corpus(2048)
    runners, cost_rows = {}, {}
    for seq_len in (64, 1024):
        ds = CompleteHierarchicalDrumDataset(
            None, seq_len, 16, 4, stride=16, sequences=corpus, as_numpy=True
        )
        env = gym.make(ENV_ID, data=ds, seq_len=seq_len, prompt_bars=1)
        ep = env.unwrapped.config.episode_steps
        episodes = max(1, (2 if quick else 20) * 1008 // ep)  # about the same steps for both
        runners[str(seq_len)] = single_env_runner(env, episodes * ep, args.seed)
        cost_rows[str(seq_len)] = {"timed_steps": episodes * ep, "episodes": episodes}
    for key, (sps, runs) in best_of(runners, args.repeats).items():
        cost_rows[key].update(steps_per_s=sps, runs_steps_per_s=runs, us_per_step=1e6 / sps)
    cost_rows["cost_ratio_1024_vs_64"] = (
        cost_rows["64"]["steps_per_s"] / cost_rows["1024"]["steps_per_s"]
    )
    return cost_rows


def targets(single: dict | None, vector: dict | None, cost: dict | None) -> dict:
    """The targets and, for the parts measured, whether they are met."""
    out: dict = {
        "single_env_steps_per_s": TARGET_SINGLE,
        "cartpole_ratio": TARGET_CARTPOLE_RATIO,
        "native_vs_sync_at_256": TARGET_NATIVE_VS_SYNC,
        "cost_ratio_1024_vs_64": TARGET_COST_RATIO,
    }
    if single is not None:
        out["met_single_env"] = single["steps_per_s"] >= TARGET_SINGLE
        out["met_cartpole_ratio"] = single["cartpole_ratio"] <= TARGET_CARTPOLE_RATIO
    if vector is not None and "256" in vector:
        out["met_native_vs_sync"] = vector["256"]["native_vs_sync"] >= TARGET_NATIVE_VS_SYNC
    if cost is not None:
        out["met_cost_ratio"] = cost["cost_ratio_1024_vs_64"] <= TARGET_COST_RATIO
    return out


def markdown_table(result: dict) -> str:
    """The results as a Markdown table, one row per measurement (of the parts measured)."""
    t = result["targets"]

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    lines = [
        f"DrumCompose-v0 throughput ({result['date']}, {result['machine']['processor']}, "
        f"{result['machine']['cpu_count']} CPUs, 1 thread, numpy {result['machine']['numpy']}"
        f"{', quick' if result['quick'] else ''}); best of {result['repeats']}",
        "",
        "| measurement | value | target | met |",
        "|---|---:|---:|:-:|",
    ]
    s = result["single_env"]
    if s is not None:
        lines += [
            f"| (a) single env, seq_len {s['seq_len']}, `{s['shaping']}` | "
            f"{s['steps_per_s']:,.0f} steps/s | >= {t['single_env_steps_per_s']:,.0f} | "
            f"{met(t['met_single_env'])} |",
            f"| (a) CartPole-v1 {s['cartpole_steps_per_s']:,.0f} steps/s vs single env | "
            f"{s['cartpole_ratio']:.2f}x | <= {t['cartpole_ratio']:.0f}x | "
            f"{met(t['met_cartpole_ratio'])} |",
        ]
    for n, row in (result["vector"] or {}).items():
        target = f">= {t['native_vs_sync_at_256']:.0f}x" if n == "256" else ""
        ok = met(t["met_native_vs_sync"]) if n == "256" else ""
        lines.append(
            f"| (b) N={n}: native {row['native_env_steps_per_s']:,.0f} vs Sync "
            f"{row['sync_env_steps_per_s']:,.0f} env-steps/s | {row['native_vs_sync']:.1f}x | "
            f"{target} | {ok} |"
        )
    c = result["seq_len_cost"]
    if c is not None:
        for seq_len in ("64", "1024"):
            lines.append(
                f"| (c) single env, seq_len {seq_len}, whole episodes | "
                f"{c[seq_len]['steps_per_s']:,.0f} steps/s "
                f"({c[seq_len]['us_per_step']:.1f} us/step) | | |"
            )
        lines.append(
            f"| (c) cost(1024) / cost(64) | {c['cost_ratio_1024_vs_64']:.2f} | "
            f"<= {t['cost_ratio_1024_vs_64']} | {met(t['met_cost_ratio'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
