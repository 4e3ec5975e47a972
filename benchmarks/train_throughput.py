"""Training throughput: the custom PPO (Transformer, MLP) vs SB3 PPO at equal settings, its scaling
with ``num_envs``, and the peak memory of a long run.

Same env (``DrumCompose-v0``, built-in corpus, seq_len 64, 1 primer bar, ``hierarchical``
shaping), same CPU, one torch/BLAS thread, every trainer through its public entry point:

* **equal settings** (``--settings``, default 16 envs x 32 steps,
  :class:`~agents.training.ppo.PPOConfig`'s defaults, 64 x 32 and 256 x 32):
  :func:`agents.training.ppo.train` with ``policy_kind="transformer"`` (AMP off, and on: bf16
  autocast) and ``"mlp"`` (SB3's
  policy: two 64-64 tanh MLPs over the flattened observation) against SB3 PPO as
  :func:`agents.baselines.sb3.train_baseline` builds it (:func:`agents.baselines.sb3.build_model`:
  ``MultiInputPolicy``, a ``DummyVecEnv`` of single envs, then ``learn``; without the
  baseline's evaluation episodes) with the same ``num_envs``,
  ``n_steps = num_steps``, the same 4 epochs and 4 minibatches (``batch_size = num_envs *
  num_steps / 4``). No TensorBoard. Each trainer is called once untimed first (imports,
  first-call costs), then for ``--steps`` env steps (at least 4 iterations), the trainers
  taking turns ``--repeats`` times; the best call counts. Two figures per call: **training**
  (after the first iteration to the end of the last update: what a long run sustains) and
  **whole call** (construction of the envs and the model included; SB3 builds one env per
  sub-env, about 60 ms each, which dominates its short calls at 64 envs).
* **scaling**: the custom trainer at ``num_envs`` in ``--scale-envs`` (32 steps each),
  timed by the phase timers of ``benchmarks/train_profile.py`` (the user's defaults otherwise:
  TensorBoard on, a checkpoint every 10 iterations), with the share of the PPO update.
* **memory**: the peak resident set size (``VmHWM``) of a subprocess that trains
  ``--rss-steps`` env steps with the MLP policy and the defaults otherwise (16 x 32,
  TensorBoard, a checkpoint every 10 iterations), and its RSS at 10 %, 50 % and 100 % of the
  run (how it grows).

Speeds are env steps per **CPU second** of this process (``time.process_time``; with one thread
that is the work the trainer does, which other processes on a shared machine do not inflate as
they inflate wall time); the wall-clock figure is recorded beside it. The issue's target is
custom >= 5x SB3; it is reported, not asserted.

Run: ``python benchmarks/train_throughput.py [--quick]`` (writes
``benchmarks/results/train_throughput.json``).

**GPU** (``--device cuda`` or ``cuda:N``, only this part): the custom trainer with the
Transformer, AMP off and on (float16 autocast with ``GradScaler``), at each of ``--settings``
(default 16, 256 and 1,024 envs x 32 steps, 4 minibatches: minibatches of up to 8,192 windows)
on the GPU and, in the same run at the same settings, on the CPU (one thread); env steps per
**wall** second (CPU time does not count a GPU's work), the GPU's speed-up over the CPU per
setting, and the best of each. Writes ``benchmarks/results/train_throughput_cuda.json``. Where
CUDA is absent it says so, writes nothing and exits 0.
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "train_throughput.json"
RESULTS_CUDA = HERE / "results" / "train_throughput_cuda.json"
TARGET_CUSTOM_VS_SB3 = 5.0
SEQ_LEN, SHAPING, EPOCHS, MINIBATCHES = 64, "hierarchical", 4, 4
TRAINERS = ("transformer", "transformer (amp)", "mlp", "sb3 ppo")
"""The trainers of the equal-settings part; ``transformer (amp)`` runs at the first setting only."""


class _Clock:
    """CPU and wall time at the start and after each iteration of a training call."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float, float]] = []  # (env steps, cpu s, wall s)

    def mark(self, env_steps: int) -> None:
        self.marks.append((env_steps, time.process_time(), time.perf_counter()))

    def result(self, env_steps: int) -> dict:
        """Whole call (first mark to now) and training: from the end of the first iteration to
        the first mark at ``env_steps`` (the last update; the final checkpoint excluded)."""
        self.mark(env_steps)
        (_, c0, w0), (s1, c1, w1) = self.marks[0], self.marks[1]
        _, c3, w3 = self.marks[-1]
        s2, c2, w2 = next(m for m in self.marks if m[0] == env_steps)
        return {"env_steps": env_steps, "cpu_s": c3 - c0, "wall_s": w3 - w0,
                "whole_steps_per_s": env_steps / (c3 - c0),
                "whole_steps_per_s_wall": env_steps / (w3 - w0),
                "steps_per_s": (s2 - s1) / (c2 - c1), "steps_per_s_wall": (s2 - s1) / (w2 - w1)}


def run_custom(num_envs: int, num_steps: int, steps: int, kind: str, amp: bool,
               out: Path, device: str = "cpu") -> dict:  # fmt: skip
    """One :func:`agents.training.ppo.train` call, timed whole and after its first iteration."""
    from agents.training.ppo import PPOConfig, train

    cfg = PPOConfig(
        seq_len=SEQ_LEN, prompt_bars=1, shaping=SHAPING, num_envs=num_envs, num_steps=num_steps,
        update_epochs=EPOCHS, num_minibatches=MINIBATCHES, total_timesteps=steps,
        policy_kind=kind, amp=amp, device=device, seed=0, out=str(out), progress=False,
        tensorboard=False, checkpoint_every=10**6,
    )  # fmt: skip
    clock = _Clock()
    clock.mark(0)
    result = train(cfg, callback=lambda m: clock.mark(int(m["global_step"])))
    return clock.result(result.global_step)


def sb3_config(num_envs: int, num_steps: int, steps: int, out: Path) -> Any:
    """The SB3 PPO run of the equal settings: the task, epochs and minibatches of the custom
    PPO's, no evaluation, no TensorBoard."""
    from agents.baselines.sb3 import BaselineConfig

    return BaselineConfig(
        algo="ppo", seq_len=SEQ_LEN, prompt_bars=1, shaping=SHAPING, num_envs=num_envs,
        num_steps=num_steps, total_timesteps=steps, seed=0, eval_every=0, out=str(out),
        tensorboard=False,
        extra={"n_epochs": EPOCHS, "batch_size": num_envs * num_steps // MINIBATCHES},
    )  # fmt: skip


def run_sb3(num_envs: int, num_steps: int, steps: int, out: Path) -> dict:
    """SB3 PPO (:func:`agents.baselines.sb3.build_model`, ``learn``), same epochs and minibatches.

    ``build_model`` and ``learn`` are what :func:`agents.baselines.sb3.train_baseline` runs, without
    its evaluation episodes and the save; a callback marks the start of every rollout.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.baselines.sb3 import build_model

    cfg = sb3_config(num_envs, num_steps, steps, out)
    clock = _Clock()

    class Marks(BaseCallback):  # type: ignore[misc]
        def _on_rollout_start(self) -> None:
            if self.num_timesteps:  # after the first iteration
                clock.mark(self.num_timesteps)

        def _on_step(self) -> bool:
            return True

    clock.mark(0)
    model, venv = build_model(cfg)
    model.learn(steps, callback=Marks())
    venv.close()
    return clock.result(int(model.num_timesteps))


def equal_settings(settings: list[tuple[int, int]], steps: int, repeats: int, tmp: Path) -> dict:
    """Every trainer at every setting, taking turns; the best call of each."""
    runs: dict[str, dict[str, list[dict]]] = {}

    def call(name: str, n: int, t: int, budget: int, out: Path) -> dict:
        if name == "sb3 ppo":
            return run_sb3(n, t, budget, out)
        return run_custom(n, t, budget, name.split()[0], name.endswith("(amp)"), out)

    for i, (n, t) in enumerate(settings):
        key = f"{n}x{t}"
        names = [x for x in TRAINERS if i == 0 or x != "transformer (amp)"]
        runs[key] = {name: [] for name in names}
        budget = max(steps // (n * t), 4) * n * t
        for name in names:  # warm-up: imports and first-call costs, untimed
            call(name, n, t, 2 * n * t, tmp / f"warm-{key}-{name}")
        for r in range(repeats):
            for name in names:
                runs[key][name].append(call(name, n, t, budget, tmp / f"{key}-{name}-{r}"))
    out: dict[str, dict] = {}
    for key, by_name in runs.items():
        rows = {}
        for name, rs in by_name.items():
            best = max(rs, key=lambda x: x["steps_per_s"])
            rows[name] = {**best, "runs_steps_per_s": [x["steps_per_s"] for x in rs]}
        sb3 = rows["sb3 ppo"]
        for row in rows.values():
            for k in ("steps_per_s", "steps_per_s_wall", "whole_steps_per_s"):
                row[k.replace("steps_per_s", "vs_sb3")] = row[k] / sb3[k]
        out[key] = rows
    return out


def device_comparison(settings: list[tuple[int, int]], steps: int, repeats: int, device: str,
                      tmp: Path) -> dict:  # fmt: skip
    """The Transformer trainer, AMP off and on, on ``device`` and on the CPU at each setting.

    Taking turns ``repeats`` times after an untimed warm-up of each; the best call of each by
    env steps per wall second (``steps_per_s_wall``, from the end of the first iteration).
    """
    devices = dict.fromkeys((device, "cpu"))  # the CPU once when it stands in for the device
    runs = [(name, dev) for dev in devices for name in ("transformer", "transformer (amp)")]
    out: dict[str, dict] = {}
    for n, t in settings:
        key = f"{n}x{t}"
        budget = max(steps // (n * t), 4) * n * t
        calls: dict[str, list[dict]] = {f"{name} @ {dev}": [] for name, dev in runs}
        for name, dev in runs:  # warm-up: imports, CUDA context and kernels, untimed
            run_custom(n, t, 2 * n * t, "transformer", name.endswith("(amp)"),
                       tmp / f"warm-{key}-{name}-{dev}", dev)  # fmt: skip
        for r in range(repeats):
            for name, dev in runs:
                calls[f"{name} @ {dev}"].append(run_custom(
                    n, t, budget, "transformer", name.endswith("(amp)"),
                    tmp / f"{key}-{name}-{dev}-{r}", dev))  # fmt: skip
        rows = {k: max(rs, key=lambda x: x["steps_per_s_wall"]) for k, rs in calls.items()}
        cpu_best = max(r["steps_per_s_wall"] for k, r in rows.items() if k.endswith("@ cpu"))
        for row in rows.values():
            row["vs_best_cpu"] = row["steps_per_s_wall"] / cpu_best
        out[key] = rows
    return out


def main_device(args: argparse.Namespace) -> dict:
    """``--device cuda``: :func:`device_comparison`; says so and returns where CUDA is absent."""
    if not torch.cuda.is_available():
        reason = (f"CUDA is not available (torch {torch.__version__}"
                  f"{', built without CUDA' if torch.version.cuda is None else ''}): "
                  f"no --device {args.device} comparison; nothing written")  # fmt: skip
        print(reason)
        return {"benchmark": "train_throughput_cuda", "skipped": reason}
    steps = args.steps or (8192 if args.quick else 65_536)
    repeats = args.repeats or (1 if args.quick else 2)
    settings = [tuple(int(x) for x in s.split("x")) for s in args.settings or
                ["16x32", "256x32", "1024x32"]]  # fmt: skip
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = device_comparison(settings, steps, repeats, args.device, Path(tmp))
    best = {dev: max(row["steps_per_s_wall"] for rows in results.values()
                     for k, row in rows.items() if k.endswith(f"@ {dev}"))
            for dev in (args.device, "cpu")}  # fmt: skip
    result = {
        "benchmark": "train_throughput_cuda", "quick": args.quick,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device, "gpu": torch.cuda.get_device_name(torch.device(args.device)),
        "env_steps_per_call": steps, "repeats": repeats,
        "ppo": {"update_epochs": EPOCHS, "num_minibatches": MINIBATCHES},
        "clock": "env steps per wall-clock second, after the first iteration",
        "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": 1},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "cuda": torch.version.cuda},
        "results": results, "best_steps_per_s_wall": best,
        "best_gpu_vs_best_cpu": best[args.device] / best["cpu"],
        "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    lines = [f"Transformer PPO on {result['gpu']} vs the CPU (1 thread), env steps per wall "
             "second, best of each", "", "| setting | trainer @ device | env steps/s | vs best "
             "CPU |", "|---|---|---:|---:|"]  # fmt: skip
    for key, rows in results.items():
        lines += [f"| {key} | {k} | {r['steps_per_s_wall']:,.0f} | {r['vs_best_cpu']:.2f}x |"
                  for k, r in rows.items()]  # fmt: skip
    print("\n".join(lines) + f"\n\nbest: {result['best_gpu_vs_best_cpu']:.2f}x the CPU")
    out = args.out if args.out != RESULTS else RESULTS_CUDA
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out} ({result['wall_s']:.0f} s)")
    return result


def scaling(envs: list[int], num_steps: int, min_steps: int, kinds: list[str]) -> list[dict]:
    """Steps/s and the update's share at each ``num_envs`` (``train_profile.profile_once``)."""
    sys.path.insert(0, str(HERE))
    from train_profile import profile_once

    rows = []
    for kind in kinds:
        for n in envs:
            iterations = max(8, -(-min_steps // (n * num_steps)))
            r = profile_once(n, num_steps, iterations, kind, threads=1)
            rows.append({
                "policy_kind": kind, "num_envs": n, "num_steps": num_steps,
                "env_steps": r["env_steps"], "steps_per_s": r["steps_per_s"],
                "steps_per_s_wall": r["steps_per_s_wall"],
                "update_share": r["phases_s"]["update"] / r["clock_s"],
                "rollout_share": r["phases_s"]["rollout"] / r["clock_s"],
                "us_per_env_step": r["us_per_env_step"],
            })  # fmt: skip
    for kind in kinds:
        mine = [r for r in rows if r["policy_kind"] == kind]
        for prev, row in zip(mine, mine[1:]):
            row["speedup_vs_previous"] = row["steps_per_s"] / prev["steps_per_s"]
    return rows


_RSS_CHILD = """
import json, sys, time
import torch
torch.set_num_threads(1)
from agents.training.ppo import PPOConfig, train
cfg = PPOConfig(**json.loads(sys.argv[1]))

def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0

samples = []
def callback(m):
    samples.append((int(m["global_step"]), vm("VmRSS")))
cpu, wall = time.process_time(), time.perf_counter()
result = train(cfg, callback=callback)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps({"env_steps": result.global_step, "cpu_s": cpu, "wall_s": wall,
                  "peak_rss_bytes": vm("VmHWM"), "samples": samples}))
"""


def peak_rss(steps: int, kind: str, tmp: Path) -> dict:
    """Peak RSS of a subprocess training ``steps`` env steps with the defaults and ``kind``."""
    cfg = {"total_timesteps": steps, "policy_kind": kind, "device": "cpu", "seed": 0,
           "out": str(tmp / f"rss-{kind}"), "progress": False, "tensorboard": True,
           "checkpoint_every": 10, "seq_len": SEQ_LEN, "prompt_bars": 1,
           "shaping": SHAPING}  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, json.dumps(cfg)], cwd=HERE.parent,
                          env=env, capture_output=True, text=True, check=True)  # fmt: skip
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    samples = data.pop("samples")
    at = {}
    for frac in (0.1, 0.5, 1.0):
        step, rss = min(samples, key=lambda s: abs(s[0] - frac * data["env_steps"]))
        at[f"{int(frac * 100)}%"] = {"global_step": step, "rss_bytes": rss}
    return {"policy_kind": kind, "num_envs": 16, "num_steps": 32, **data, "rss_at": at,
            "steps_per_s": data["env_steps"] / data["cpu_s"]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="4,096 steps per trainer, one repeat, fewer scaling points, a "
                             "100k-step memory run")  # fmt: skip
    parser.add_argument("--steps", type=int, default=None, help="env steps per trainer call")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--settings", nargs="+", default=None,
                        help="num_envs x num_steps of the equal-settings part (default 16x32 "
                             "64x32 256x32; with --device cuda 16x32 256x32 1024x32)")  # fmt: skip
    parser.add_argument("--device", default="cpu",
                        help="cuda or cuda:N: only the GPU-vs-CPU comparison (see the module "
                             "docstring); exits 0 saying so where CUDA is absent")  # fmt: skip
    parser.add_argument("--scale-envs", type=int, nargs="+", default=None)
    parser.add_argument("--rss-steps", type=int, default=None,
                        help="env steps of the memory run (default 1,000,000; quick 100,000; "
                             "0 skips it)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.device != "cpu":
        return main_device(args)
    args.settings = args.settings or ["16x32", "64x32", "256x32"]
    steps = args.steps or (4096 if args.quick else 16_384)
    repeats = args.repeats or (1 if args.quick else 2)
    scale_envs = args.scale_envs or ([16, 64, 256] if args.quick else [4, 16, 64, 256, 1024])
    rss_steps = (100_000 if args.quick else 1_000_000) if args.rss_steps is None else args.rss_steps
    settings = [tuple(int(x) for x in s.split("x")) for s in args.settings]
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        equal = equal_settings(settings, steps, repeats, Path(tmp))
        scale = scaling(scale_envs, 32, 4 * steps, ["transformer", "mlp"])
        memory = peak_rss(rss_steps, "mlp", Path(tmp)) if rss_steps else None
    first = equal[args.settings[0]]
    best_custom = max(first["transformer"]["vs_sb3"], first["mlp"]["vs_sb3"])
    result = {
        "benchmark": "train_throughput",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "env_steps_per_trainer": steps,
        "repeats": repeats,
        "env": {"id": "DrumCompose-v0", "data": "built-in corpus", "seq_len": SEQ_LEN,
                "prompt_bars": 1, "shaping": SHAPING},
        "ppo": {"update_epochs": EPOCHS, "num_minibatches": MINIBATCHES},
        "clock": "env steps per CPU second of the process (time.process_time); *_wall: per "
                 "wall-clock second",
        "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": 1},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "results": equal,
        "scaling": scale,
        "memory": memory,
        "targets": {
            "custom_vs_sb3": TARGET_CUSTOM_VS_SB3,
            "met_custom_vs_sb3": best_custom >= TARGET_CUSTOM_VS_SB3,
            "met_transformer_vs_sb3": first["transformer"]["vs_sb3"] >= TARGET_CUSTOM_VS_SB3,
            "met_mlp_vs_sb3": first["mlp"]["vs_sb3"] >= TARGET_CUSTOM_VS_SB3,
        },
        "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    print(markdown_table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s)")
    return result


def update_dominates(scale: list[dict], kind: str) -> int | None:
    """The smallest ``num_envs`` from which the update takes at least half of the time."""
    return next((r["num_envs"] for r in scale if r["policy_kind"] == kind
                 and r["update_share"] >= 0.5), None)  # fmt: skip


def markdown_table(result: dict) -> str:
    """The three parts as Markdown tables."""
    lines = [
        f"Training throughput, env steps per CPU second (wall in brackets), 1 thread, "
        f"{result['env_steps_per_trainer']:,} env steps per call, best of {result['repeats']}; "
        f"{result['ppo']['update_epochs']} epochs x {result['ppo']['num_minibatches']} "
        "minibatches for every trainer",
        "",
        "| setting | trainer | env steps/s, training | vs SB3 PPO | env steps/s, whole call "
        "| vs SB3 PPO |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, rows in result["results"].items():
        for name, row in rows.items():
            label = "custom, " + name if name != "sb3 ppo" else "SB3 PPO"
            lines.append(f"| {key} | {label} | {row['steps_per_s']:,.0f} "
                         f"({row['steps_per_s_wall']:,.0f}) | {row['vs_sb3']:.2f}x | "
                         f"{row['whole_steps_per_s']:,.0f} | "
                         f"{row['whole_vs_sb3']:.2f}x |")  # fmt: skip
    lines += ["", "| num_envs x 32 | policy | env steps/s | vs previous | update share |",
              "|---:|---|---:|---:|---:|"]  # fmt: skip
    for r in result["scaling"]:
        up = r.get("speedup_vs_previous")
        up_text = "-" if up is None else f"{up:.2f}x"
        lines.append(f"| {r['num_envs']} | {r['policy_kind']} | {r['steps_per_s']:,.0f} | "
                     f"{up_text} | {r['update_share']:.0%} |")  # fmt: skip
    m = result.get("memory")
    if m:
        at = ", ".join(f"{k}: {v['rss_bytes'] / 2**20:,.0f} MiB" for k, v in m["rss_at"].items())
        lines += ["", f"Peak RSS of a {m['env_steps']:,}-step run ({m['policy_kind']}, "
                      f"{m['num_envs']} x {m['num_steps']}, TensorBoard, checkpoints): "
                      f"{m['peak_rss_bytes'] / 2**20:,.0f} MiB (RSS {at}); "
                      f"{m['steps_per_s']:,.0f} env steps/s, {m['wall_s']:.0f} s wall"]  # fmt: skip
    t = result["targets"]
    lines.append(f"\ntarget custom >= {t['custom_vs_sb3']:.0f}x SB3 at "
                 f"{next(iter(result['results']))}: transformer "
                 f"{'met' if t['met_transformer_vs_sb3'] else 'NOT met'}, mlp "
                 f"{'met' if t['met_mlp_vs_sb3'] else 'NOT met'}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
