"""How fast the trainer and the single env can get at all, and what it would buy: three limits.

Issue 14 set two targets that ``throughput.py`` reports as not met: the custom PPO at >= 5x SB3
PPO's env steps/s at equal settings, and the single env at most 4x slower than CartPole-v1.
This benchmark measures the floors under both, on one CPU thread, in one run:

* **update ceiling** (``--settings``, default 16 x 32, 64 x 32, 256 x 32 with 4 epochs x 4
  minibatches): :func:`agents.training.ppo.train` runs ``--iterations`` iterations as the user
  calls it (no TensorBoard), with its update (:func:`agents.training.ppo_steps.ppo_update`)
  timed per call through the trainer's timing hook (``train(..., timer=...)``, phase
  ``update``; thread CPU time). ``ceiling = batch_size / median update time`` is the env steps/s
  the trainer would reach if the env, the rollout and everything else cost nothing: the algorithm
  (same epochs, minibatches and losses) fixes it. Once **eager**, and once **compiled**
  (``train(compile=True)``: the update's model wrapped in ``torch.compile``). The first
  compiled update carries the compile, from cold (a fresh inductor cache, its FX graph and
  autograd caches off, as on a user's first run): ``compile_s = first update - median
  update``, and ``pays_after`` is the env steps a run needs before the compiled update's
  savings repay it. SB3 PPO at the same settings (``train_throughput.run_sb3``: its env steps
  per CPU second after the first iteration) in the same run gives ``ceiling_vs_sb3``: when it
  is under 5, no change outside the update can meet the 5x target with that policy.
* **SB3's env share**: SB3 PPO (:func:`agents.baselines.sb3.build_model`, ``learn``) at the first
  setting with ``DrumComposeEnv.step`` timed: the share of SB3's CPU time spent inside the env's
  step, and, by Amdahl's law, how much faster SB3 would train if the single env ran at the
  4x-CartPole target (the env's time scaled by ``target_ratio / measured ratio``).
* **single env split**: ``gymnasium.make("DrumCompose-v0")`` (defaults: seq_len 128, 2 primer
  bars, ``aligned``) stepped through whole episodes with pre-sampled actions, each step
  timed and classed by the largest unit it closes (from its ``info["reward_terms"]``): an open
  step (the step term alone), a bar end, a phrase end (with its bar), the episode end (with its
  bar, phrase, section, song and ``info["episode_metrics"]``); resets timed apart. CartPole-v1
  is stepped the same way, the two taking turns ``--repeats`` times (best total of each). Per
  class: steps per episode, microseconds per step, share of the episode; and the ratio to
  CartPole of the open steps alone: the floor of the 4x target if every unit end cost nothing.

Run: ``python benchmarks/speed_limits.py [--quick]`` (writes
``benchmarks/results/speed_limits.json`` and ``.md``).
"""

# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
from __future__ import annotations

import os
import tempfile

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
# compiles from cold, as on a user's first run: a fresh inductor cache, no FX graph or autograd
# cache (read when torch is imported)
os.environ["TORCHINDUCTOR_CACHE_DIR"] = _CACHE = tempfile.mkdtemp(prefix="speed-limits-inductor-")
os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "0"
os.environ["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "0"

import argparse
import atexit
import contextlib
import datetime
import json
import platform
import shutil
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_throughput import EPOCHS, MINIBATCHES, SEQ_LEN, SHAPING, run_sb3, sb3_config

RESULTS = HERE / "results" / "speed_limits.json"
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
TARGET_VS_SB3 = 5.0
TARGET_CARTPOLE_RATIO = 4.0
KINDS = ("open", "bar end", "phrase end", "episode end", "reset")


# ----------------------------------------------------------------------------- update ceiling


def _update_timer(times: list[float]) -> Any:
    """The trainer's timing hook that records the thread CPU time of every update."""

    @contextlib.contextmanager
    def timer(phase: str) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            if phase == "update":
                times.append(time.thread_time() - start)

    return timer


def update_ceiling(kind: str, num_envs: int, num_steps: int, iterations: int,
                   compile_model: bool, out: Path) -> dict:  # fmt: skip
    """One ``train`` call; the update's time per call and the ceiling it sets."""
    from agents.training.ppo import PPOConfig, train

    torch.compiler.reset()  # every compiled run pays its own compile
    cfg = PPOConfig(
        seq_len=SEQ_LEN, prompt_bars=1, shaping=SHAPING, num_envs=num_envs, num_steps=num_steps,
        update_epochs=EPOCHS, num_minibatches=MINIBATCHES,
        total_timesteps=num_envs * num_steps * iterations, policy_kind=kind, device="cpu",
        seed=0, out=str(out), progress=False, tensorboard=False, checkpoint_every=10**6,
        compile=compile_model,
    )  # fmt: skip
    times: list[float] = []
    train(cfg, timer=_update_timer(times))
    median = statistics.median(times[1:])
    batch = num_envs * num_steps
    return {"update_s": times, "median_update_s": median, "first_update_s": times[0],
            "us_per_env_step": 1e6 * median / batch, "ceiling_steps_per_s": batch / median}


def ceilings(settings: list[tuple[int, int]], iterations: int, sb3_steps: int,
             tmp: Path) -> dict:  # fmt: skip
    """Eager and compiled update ceilings of both policies, and SB3 PPO, at every setting."""
    out: dict[str, dict] = {}
    for n, t in settings:
        key = f"{n}x{t}"
        budget = max(sb3_steps // (n * t), 4) * n * t
        run_sb3(n, t, 2 * n * t, tmp / f"sb3-warm-{key}")  # first-call costs, untimed
        sb3 = run_sb3(n, t, budget, tmp / f"sb3-{key}")
        rows: dict[str, Any] = {"sb3 ppo": sb3}
        for kind in ("transformer", "mlp"):
            update_ceiling(kind, n, t, 2, False, tmp / f"warm-{kind}-{key}")  # first-call costs
            eager = update_ceiling(kind, n, t, iterations, False, tmp / f"{kind}-{key}")
            comp = update_ceiling(kind, n, t, iterations, True, tmp / f"{kind}-{key}-c")
            for row in (eager, comp):
                row["ceiling_vs_sb3"] = row["ceiling_steps_per_s"] / sb3["steps_per_s"]
            saved = eager["median_update_s"] - comp["median_update_s"]
            comp["compile_s"] = comp["first_update_s"] - comp["median_update_s"]
            comp["speedup"] = eager["median_update_s"] / comp["median_update_s"]
            comp["pays_after_env_steps"] = (comp["compile_s"] / saved * n * t if saved > 0
                                            else None)  # fmt: skip
            rows[kind] = {"eager": eager, "compiled": comp}
        out[key] = rows
    return out


# ----------------------------------------------------------------------------- SB3 env share


def sb3_env_share(num_envs: int, num_steps: int, steps: int, tmp: Path) -> dict:
    """SB3 PPO's CPU time and the part of it inside ``DrumComposeEnv.step``."""
    from agents.baselines.sb3 import build_model
    from drum_env.env import DrumComposeEnv

    model, venv = build_model(sb3_config(num_envs, num_steps, steps, tmp / "share"))
    inside = [0.0]
    original = DrumComposeEnv.step

    def step(self: Any, action: Any) -> Any:
        start = time.thread_time()
        try:
            return original(self, action)
        finally:
            inside[0] += time.thread_time() - start

    DrumComposeEnv.step = step  # type: ignore[method-assign]
    try:
        start = time.thread_time()
        model.learn(steps)
        total = time.thread_time() - start
    finally:
        DrumComposeEnv.step = original  # type: ignore[method-assign]
        venv.close()
    return {"num_envs": num_envs, "num_steps": num_steps, "env_steps": int(model.num_timesteps),
            "cpu_s": total, "env_step_cpu_s": inside[0], "env_share": inside[0] / total}


# ----------------------------------------------------------------------------- single env split


def _close_kind(terms: dict[str, Any]) -> str:
    """The class of a step from its ``info["reward_terms"]``: the largest unit that closed."""
    if terms["song/closed"]:
        return "episode end"
    if terms["phrase/closed"]:
        return "phrase end"
    return "bar end" if terms["bar/closed"] else "open"


def single_split(episodes: int, repeats: int, seed: int) -> dict:
    """Per-class step times of the default single env, and CartPole's steps, taking turns."""
    import drum_env  # noqa: F401  (registers DrumCompose-v0)

    env = gym.make("DrumCompose-v0")
    steps = episodes * env.unwrapped.config.episode_steps
    rng = np.random.default_rng(seed)
    actions = (rng.random((steps, env.action_space.n)) < 0.3).astype(np.int8)
    cartpole = gym.make("CartPole-v1")
    cp_actions = rng.integers(2, size=steps).tolist()

    def drum() -> dict[str, list[float]]:
        times: dict[str, list[float]] = defaultdict(list)
        clock, step = time.perf_counter, env.step
        env.reset(seed=seed)
        for a in actions:
            start = clock()
            out = step(a)
            mid = clock()
            times[_close_kind(out[4]["reward_terms"])].append(mid - start)
            if out[2] or out[3]:
                env.reset()
                times["reset"].append(clock() - mid)
        return times

    def cart() -> float:
        cartpole.reset(seed=seed)
        step = cartpole.step
        start = time.perf_counter()
        for a in cp_actions:
            out = step(a)
            if out[2] or out[3]:
                cartpole.reset()
        return time.perf_counter() - start

    drum(), cart()  # warm-up: imports, the window feature cache
    best, best_cart = None, float("inf")
    for _ in range(repeats):
        times = drum()
        if best is None or sum(map(sum, times.values())) < sum(map(sum, best.values())):
            best = times
        best_cart = min(best_cart, cart())
    assert best is not None
    total = sum(map(sum, best.values()))
    cart_us = 1e6 * best_cart / steps
    n_episodes = len(best["episode end"])
    rows = {}
    for kind in KINDS:
        ts = best.get(kind, [])
        rows[kind] = {"per_episode": len(ts) / n_episodes,
                      "us_each": 1e6 * float(np.mean(ts)) if ts else 0.0,
                      "us_per_env_step": 1e6 * sum(ts) / steps, "share": sum(ts) / total}
    env.close()
    cartpole.close()
    us_step = 1e6 * total / steps
    return {"env_steps": steps, "episodes": n_episodes, "us_per_env_step": us_step,
            "cartpole_us_per_step": cart_us, "cartpole_ratio": us_step / cart_us,
            "open_step_cartpole_ratio": rows["open"]["us_each"] / cart_us, "kinds": rows}


# ----------------------------------------------------------------------------- report


def markdown(result: dict) -> str:
    lines = [
        "# Speed limits", "",
        f"Made by: `{result['command']}` on {result['date']} ({result['machine']['cpu_count']} "
        f"CPUs, torch {result['machine']['torch']}); one thread. See the script's docstring for "
        "the method.", "",
        "## The update's ceiling vs SB3 PPO", "",
        f"{EPOCHS} epochs x {MINIBATCHES} minibatches; ceiling = batch / median update time (env "
        "steps/s if everything but the update were free); SB3 PPO's env steps/s (training, "
        "after its first iteration) at the same setting in the same run.", "",
        "| setting | policy | update us / env step | ceiling env steps/s | ceiling vs SB3 | "
        "compiled: update speed-up | compile s | compile pays after (env steps) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for key, rows in result["ceilings"].items():
        for kind in ("transformer", "mlp"):
            e, c = rows[kind]["eager"], rows[kind]["compiled"]
            pays = c["pays_after_env_steps"]
            lines.append(
                f"| {key} | {kind} | {e['us_per_env_step']:.1f} | "
                f"{e['ceiling_steps_per_s']:,.0f} | {e['ceiling_vs_sb3']:.2f}x | "
                f"{c['speedup']:.2f}x ({c['ceiling_vs_sb3']:.2f}x SB3) | {c['compile_s']:.1f} | "
                f"{'never' if pays is None else f'{pays:,.0f}'} |"
            )
        lines.append(f"| {key} | SB3 PPO, whole trainer | | "
                     f"{rows['sb3 ppo']['steps_per_s']:,.0f} | 1.00x | | | |")  # fmt: skip
    s = result["sb3_env_share"]
    lines += [
        "", "## SB3 PPO's time in the single env", "",
        f"SB3 PPO, {s['num_envs']} envs x {s['num_steps']} steps, {s['env_steps']:,} env steps: "
        f"{100 * s['env_share']:.0f}% of its CPU time is inside `DrumComposeEnv.step`. With the "
        f"single env at {TARGET_CARTPOLE_RATIO:g}x CartPole (from "
        f"{result['single']['cartpole_ratio']:.1f}x), SB3 would train "
        f"{s['speedup_at_target']:.2f}x as fast.",
    ]
    g = result["single"]
    lines += [
        "", "## Where a single env's episode goes", "",
        f"`gymnasium.make(\"DrumCompose-v0\")` (defaults), {g['episodes']} episodes: "
        f"{g['us_per_env_step']:.1f} us per step against CartPole-v1's "
        f"{g['cartpole_us_per_step']:.2f} us ({g['cartpole_ratio']:.1f}x). The open steps "
        f"alone are {g['open_step_cartpole_ratio']:.1f}x CartPole.", "",
        "| step | per episode | us each | us per env step | share |",
        "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for kind, row in g["kinds"].items():
        lines.append(f"| {kind} | {row['per_episode']:.0f} | {row['us_each']:.1f} | "
                     f"{row['us_per_env_step']:.2f} | {100 * row['share']:.0f}% |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small setting, few episodes")
    parser.add_argument("--settings", nargs="+", default=None,
                        help="num_envs x num_steps (default 16x32 64x32 256x32)")  # fmt: skip
    parser.add_argument("--iterations", type=int, default=None,
                        help="iterations per train call (default 6; quick 3)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    quick = args.quick
    settings_arg = args.settings or (["16x32"] if quick else ["16x32", "64x32", "256x32"])
    settings = [tuple(int(x) for x in s.split("x")) for s in settings_arg]
    iterations = args.iterations or (3 if quick else 6)
    repeats = args.repeats or (1 if quick else 3)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    single = single_split(4 if quick else 100, repeats, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        ceiling = ceilings(settings, iterations, 2048 if quick else 16_384, Path(tmp))
        n, t = settings[0]
        share = sb3_env_share(n, t, (2 if quick else 8) * n * t, Path(tmp))
    # Amdahl: the env's part scaled to the target ratio, the rest unchanged
    scale = TARGET_CARTPOLE_RATIO / single["cartpole_ratio"]
    share["speedup_at_target"] = 1.0 / (1.0 - share["env_share"] * (1.0 - scale))
    used = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/speed_limits.py", *used]).replace(
        str(HERE.parent) + os.sep, ""
    )
    result = {
        "benchmark": "speed_limits", "command": command, "quick": quick,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "env": {"id": "DrumCompose-v0", "seq_len": SEQ_LEN, "prompt_bars": 1,
                "shaping": SHAPING},
        "ppo": {"update_epochs": EPOCHS, "num_minibatches": MINIBATCHES,
                "iterations": iterations},
        "targets": {"custom_vs_sb3": TARGET_VS_SB3, "cartpole_ratio": TARGET_CARTPOLE_RATIO},
        "ceilings": ceiling, "sb3_env_share": share, "single": single,
        "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    text = markdown(result)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(text)
    print(f"wrote {args.out} ({result['wall_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
