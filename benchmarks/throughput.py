"""All throughput benchmarks in one command: dataset, env and training; one JSON, one table.

Runs, each in its own process (so each sets its own thread limits and nothing is shared):

* ``benchmarks/dataset_throughput.py``: samples/s of the hierarchical dataset vs the seed's
  loop-based baseline (``--quick``: fewer samples and repeats);
* ``benchmarks/env_throughput.py``: env steps/s, single env, native vector env vs Sync, cost
  per step against the episode length (its own ``--quick``);
* ``benchmarks/train_throughput.py``: env steps/s of the custom PPO (Transformer with AMP off /
  on, MLP) vs SB3 PPO with the same envs, steps, epochs and minibatches, the custom PPO's
  throughput against ``num_envs`` (with the share of the update), and the peak RSS of a
  1M-step run (its own ``--quick``: 100k steps);
* ``benchmarks/speed_limits.py``: the floors under the two speed targets: the PPO update's
  ceiling against SB3 PPO (eager and ``torch.compile``), SB3's share of time in the single env,
  and the single env's episode by step kind against CartPole (its own ``--quick``).

Each writes its JSON to a temporary folder (the per-benchmark files under
``benchmarks/results`` are left as their own runs wrote them, unless ``--update-parts``); this
script collects them into ``benchmarks/results/throughput.json`` and writes the headline
numbers with their targets as ``benchmarks/results/throughput.md``.

Run: ``python benchmarks/throughput.py [--quick] [--only dataset env train limits]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = {
    "dataset": ("dataset_throughput.py", ["--samples", "512", "--repeats", "3", "--groove", ""]),
    "env": ("env_throughput.py", ["--quick"]),
    "train": ("train_throughput.py", ["--quick"]),
    "limits": ("speed_limits.py", ["--quick"]),
}
"""name -> (script, extra arguments with ``--quick``)."""


def run_part(name: str, quick: bool, out: Path) -> dict:
    script, quick_args = PARTS[name]
    cmd = [sys.executable, str(HERE / script), "--out", str(out), *(quick_args if quick else [])]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": f"exit code {proc.returncode}", "stderr": proc.stderr[-4000:],
                "command": " ".join(cmd), "wall_s": wall}  # fmt: skip
    data = json.loads(out.read_text())
    data["_command"] = " ".join(cmd[1:])
    data["_wall_s"] = wall
    return data


def _fmt(x: float | None, suffix: str = "") -> str:
    return "-" if x is None else f"{x:,.0f}{suffix}"


def _met(flag: bool | None) -> str:
    return "-" if flag is None else ("met" if flag else "**not met**")


def markdown(result: dict) -> str:
    """The headline numbers of every part with their targets."""
    parts = result["parts"]
    lines = [
        "# Throughput",
        "",
        f"Made by: `{result['command']}` on {result['date']} "
        f"({result['machine']}); one thread per benchmark.",
        "",
        "| benchmark | measure | value | target | status |",
        "|---|---|---:|---:|---|",
    ]
    tr = parts.get("train", {})
    for name, rows in (("dataset", _dataset_rows), ("env", _env_rows), ("train", _train_rows),
                       ("limits", _limit_rows)):  # fmt: skip
        part = parts.get(name, {})
        if "error" in part:
            lines.append(f"| {name} | failed: {part['error']} | - | - | - |")
        elif part:
            lines += rows(part)
    if tr and "error" not in tr:
        lines += ["", "train: env steps per CPU second of the training (after its first iteration; "
                  "`train_throughput.json` also has wall-clock and whole-call figures); every "
                  "trainer with the same envs, steps, epochs and minibatches; the update share "
                  "is the PPO update's part of the whole call."]  # fmt: skip
    lines += ["", f"Total: {result['wall_s']:.0f} s. Details: `throughput.json`."]
    return "\n".join(lines) + "\n"


def _dataset_rows(d: dict) -> list[str]:
    """The dataset part: samples/s, both speed-ups over the seed's loops, the Groove subset."""
    lines = []
    res, t = d.get("results", {}), d.get("targets", {})
    batched = next((v for k, v in res.items() if k.startswith("__getitems__ (")), {})
    lines.append(
        f"| dataset | samples/s, batched `__getitems__` (seq_len {d.get('seq_len')}) | "
        f"{_fmt(batched.get('samples_per_s'))} | {_fmt(t.get('samples_per_s'))} | "
        f"{_met(t.get('met_samples_per_s'))} |"
    )
    lines.append(
        f"| dataset | batched vs the seed's loops | {batched.get('vs_baseline', 0):.1f}x | "
        f"{t.get('vs_baseline', 0):.0f}x | {_met(t.get('met_vs_baseline'))} |"
    )
    single = res.get("__getitem__", {})
    if single:
        lines.append(
            f"| dataset | one item `__getitem__` vs the seed's loops | "
            f"{single.get('vs_baseline', 0):.1f}x | {t.get('single_vs_baseline', 0):.0f}x | "
            f"{_met(t.get('met_single_vs_baseline'))} |"
        )
    groove = d.get("groove", {})
    if groove.get("skipped"):
        lines.append(f"| dataset | Groove subset | skipped: {groove['skipped']} | - | - |")
    elif groove:
        rss = groove.get("rss_mib", {})
        lines.append(
            f"| dataset | Groove subset: RSS with song metrics -> with window tables (MiB); "
            f"one item vs the loops | {rss.get('song_metrics', 0):.0f} -> "
            f"{rss.get('window_tables', 0):.0f}; {groove.get('vs_baseline', 0):.1f}x | - | - |"
        )
    return lines


def _env_rows(e: dict) -> list[str]:
    """The env part: single env (and vs CartPole), native vs Sync, cost against seq_len."""
    lines = []
    t = e.get("targets", {})
    lines.append(
        f"| env | steps/s, single env | {_fmt(e.get('single_env', {}).get('steps_per_s'))} |"
        f" {_fmt(t.get('single_env_steps_per_s'))} | {_met(t.get('met_single_env'))} |"
    )
    cartpole = e.get("single_env", {}).get("cartpole_ratio")
    if cartpole is not None:
        lines.append(
            f"| env | single env vs CartPole-v1 through `gymnasium.make` (times slower) | "
            f"{cartpole:.1f}x | <= {t.get('cartpole_ratio', 0):.0f}x | "
            f"{_met(t.get('met_cartpole_ratio'))} |"
        )
    for n, row in e.get("vector", {}).items():
        target = f"{t.get('native_vs_sync_at_256', 0):.0f}x" if n == "256" else "-"
        status = _met(t.get("met_native_vs_sync")) if n == "256" else "-"
        lines.append(
            f"| env | native vector env, N = {n}: steps/s (vs Sync) | "
            f"{_fmt(row.get('native_env_steps_per_s'))} ({row.get('native_vs_sync', 0):.0f}x)"
            f" | {target} | {status} |"
        )
    ratio = e.get("seq_len_cost", {}).get("cost_ratio_1024_vs_64")
    if ratio is not None:
        lines.append(
            f"| env | cost per step, seq_len 1024 / 64 | {ratio:.2f} | <= "
            f"{t.get('cost_ratio_1024_vs_64', 0):.1f} | {_met(t.get('met_cost_ratio'))} |"
        )
    return lines


def _limit_rows(lim: dict) -> list[str]:
    """The speed limits: the update's ceiling vs SB3, compile, the single env's floor."""
    lines = []
    for setting, rows in lim.get("ceilings", {}).items():
        envs, steps = setting.split("x")
        cells = [f"{rows[k]['eager']['ceiling_steps_per_s']:,.0f} "
                 f"({rows[k]['eager']['ceiling_vs_sb3']:.2f}x)" for k in ("transformer", "mlp")]
        lines.append(
            f"| limits | the update's ceiling (all else free), Transformer / MLP, {envs} envs x "
            f"{steps} steps: env steps/s (vs SB3 PPO, whole) | {' / '.join(cells)} | - | - |"
        )
        c = rows["transformer"]["compiled"]
        pays = c.get("pays_after_env_steps")
        lines.append(
            f"| limits | `--compile`, Transformer, {envs} x {steps}: update speed-up (compile s; "
            f"pays after env steps) | {c['speedup']:.2f}x ({c['compile_s']:.1f} s; "
            f"{'never' if pays is None else f'{pays:,.0f}'}) | - | - |"
        )
    g, share = lim.get("single", {}), lim.get("sb3_env_share", {})
    if g:
        ends = 1.0 - g["kinds"]["open"]["share"] - g["kinds"]["reset"]["share"]
        lines.append(
            f"| limits | single env: open steps alone vs CartPole (unit ends' share of the "
            f"episode) | {g['open_step_cartpole_ratio']:.1f}x ({ends:.0%}) | - | - |"
        )
    if share:
        lines.append(
            f"| limits | SB3 PPO's time in the single env's step (SB3's speed-up with the env "
            f"at 4x CartPole) | {share['env_share']:.0%} ({share['speedup_at_target']:.2f}x) | - "
            "| - |"
        )
    return lines


def _train_rows(tr: dict) -> list[str]:
    """The training part: custom vs SB3 at equal settings, scaling with num_envs, peak RSS."""
    t = tr.get("targets", {})
    target = f"{t.get('custom_vs_sb3', 0):.0f}x SB3"
    ppo = tr.get("ppo", {})
    same = f"{ppo.get('update_epochs')} epochs x {ppo.get('num_minibatches')} minibatches"
    lines = []
    for setting, rows in tr.get("results", {}).items():
        envs, steps = setting.split("x")
        for name, row in rows.items():
            if name == "sb3 ppo":
                label, tgt, status = "SB3 PPO", "-", "-"
            else:
                label, tgt = f"custom PPO, {name}", target
                status = _met(row.get("vs_sb3", 0) >= t.get("custom_vs_sb3", math.inf))
            lines.append(
                f"| train | env steps/s, {label}, {envs} envs x {steps} steps, {same} "
                f"(vs SB3 PPO) | {_fmt(row.get('steps_per_s'))} ({row.get('vs_sb3', 0):.2f}x) | "
                f"{tgt} | {status} |"
            )
    for row in tr.get("scaling", []):
        up = row.get("speedup_vs_previous")
        up_text = "" if up is None else f", {up:.2f}x the previous"
        lines.append(
            f"| train | custom PPO, {row['policy_kind']}, {row['num_envs']} envs x "
            f"{row['num_steps']} steps: env steps/s (update share) | "
            f"{_fmt(row.get('steps_per_s'))} ({row.get('update_share', 0):.0%}{up_text}) | - | - |"
        )
    m = tr.get("memory")
    if m:
        mib = {k: v["rss_bytes"] / 2**20 for k, v in m["rss_at"].items()}
        lines.append(
            f"| train | peak RSS, {m['env_steps']:,}-step run, {m['policy_kind']}, "
            f"{m['num_envs']} envs x {m['num_steps']} steps (RSS at 10% / 100%) | "
            f"{m['peak_rss_bytes'] / 2**20:,.0f} MiB ({mib['10%']:,.0f} / {mib['100%']:,.0f} MiB)"
            " | - | - |"
        )
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every part's quick setting")
    parser.add_argument("--only", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of throughput.*")
    parser.add_argument("--update-parts", action="store_true",
                        help="also write each part's own JSON under --out")  # fmt: skip
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv
    start = time.perf_counter()
    parts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            print(f"running {name} ...", flush=True)
            target = (args.out / f"{PARTS[name][0][:-3]}.json" if args.update_parts
                      else Path(tmp) / f"{name}.json")  # fmt: skip
            target.parent.mkdir(parents=True, exist_ok=True)
            parts[name] = run_part(name, args.quick, target)
            part = parts[name]
            status = f" FAILED ({part['error']})" if "error" in part else ""
            print(f"  {name}: {part.get('_wall_s', part.get('wall_s', 0)):.0f} s{status}")
    result = {
        "benchmark": "throughput",
        "command": "python benchmarks/throughput.py " + " ".join(argv_used),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}",
        "quick": args.quick,
        "parts": parts,
        "wall_s": time.perf_counter() - start,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    (args.out / "throughput.md").write_text(md)
    print(md)
    failed = [n for n, p in parts.items() if "error" in p]
    if failed:
        for n in failed:
            print(f"{n} failed:\n{parts[n]['stderr']}", file=sys.stderr)
    return result


if __name__ == "__main__":
    sys.exit(1 if any("error" in p for p in main()["parts"].values()) else 0)
