"""The README's headline recipe for one seed, timed stage by stage, and what bounds each stage.

Runs :func:`agents.evaluation.benchmark.run_benchmark` as the README's "Results" command does
(``drum-env benchmark --data runs/groove-npz --heldout-players drummer8 drummer9 --shapings
aligned --agents pretrained ppo+pretrain loop random --total-timesteps 262144 --eval-points 4
--kl-coef 0.1 --threads 1``), for one seed, in a fresh work folder, and times it by wrapping
public functions (nothing is re-implemented; a run with the wraps computes what one without them
does):

* **pretraining**: :func:`agents.training.pretrain.pretrain` (early-stopped on a validation tenth
  of the training files), split by its own ``timings`` into data, model (forward, backward,
  the optimiser step) and validation, with the steps taken and the best step;
* **PPO**: :func:`agents.training.ppo.train` less the evaluations its callback runs, split by the
  trainer's timing hook into its phases (:data:`agents.training.ppo.PHASES`: the rollout, with
  the policy's ``forward_obs`` and the vector env's ``step`` inside it; the update; the rest);
* **evaluation**: every call of the held-out evaluation (:func:`agents.evaluation.heldout.evaluate`:
  the pretrained, loop and random players and the PPO run's points), split into the scoring
  (:func:`dataset.evaluation.score_sets_resampled` and the velocity scores: features,
  overlapping areas, the bootstrap of the standard error) and the rest (the episodes played),
  and the takes written to hear (``play_takes``);
* **setup**: the rest of the call: the split, the reference players and the baselines of the
  held-out part, the reports.

``--quick`` scales the budgets down for a smoke test (PPO 4,096 env steps, pretraining at most
200 steps, 64 evaluation episodes, one draw, 20 bootstrap resamples, 2 baseline halvings);
``--total-timesteps``, ``--pretrain-steps`` and ``--eval-episodes`` set them by hand. With a
data folder that is not split by players (e.g. the built-in corpus written to a folder),
``--heldout-players ''`` holds out a quarter of the files instead.

Every stage is timed in wall seconds and in the process's CPU seconds: with one torch thread
(``--threads 1``, the default and the README's recipe) the CPU seconds are what the stage costs on
an idle core, whatever else the machine runs; with ``--threads 2`` the run uses both cores of a
2-core machine and its wall seconds, on an otherwise idle machine, are what a user waits.

Run: ``python benchmarks/recipe_time.py [--quick] [--data runs/groove-npz]`` (writes
``benchmarks/results/recipe_time.json`` and ``.md``, ``recipe_time_quick.*`` with ``--quick``;
the runs go under ``--work``, emptied first).
"""

# ruff: noqa: E402  (the thread limits must be set before numpy and torch are imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import functools
import json
import platform
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "recipe_time.json"
STAGES = ("setup", "pretraining", "PPO", "evaluation")
QUICK = {"total_timesteps": 4096, "pretrain_steps": 200, "eval_episodes": 64, "eval_draws": 1,
         "eval_resamples": 20, "baseline_splits": 2}


class _Stages:
    """Wall and process CPU seconds of nested stages, and the stages' return values.

    ``wall`` / ``cpu``: seconds per stage, inner stages included; ``nested_wall`` /
    ``nested_cpu``: ``(outer, inner)`` -> the seconds of ``inner`` run within ``outer``.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.nested_wall: dict[tuple[str, str], float] = defaultdict(float)
        self.nested_cpu: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[str] = []
        self.results: dict[str, list[Any]] = defaultdict(list)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``."""
        self.stack.append(name)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            self.stack.pop()
            self.wall[name] += wall
            self.cpu[name] += cpu
            self.calls[name] += 1
            for outer in set(self.stack):
                self.nested_wall[outer, name] += wall
                self.nested_cpu[outer, name] += cpu

    def phase(self, name: str) -> contextlib.AbstractContextManager[None]:
        """The trainer's timing hook (``train(..., timer=stages.phase)``): ``PPO: <phase>``."""
        return self.stage("PPO: " + name)

    def wrap(self, fn: Any, name: str, inside: str | None = None) -> Any:
        """``fn`` timed as stage ``name`` (only when called within stage ``inside``, if given)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if inside is not None and inside not in self.stack:
                return fn(*args, **kwargs)
            with self.stage(name):
                out = fn(*args, **kwargs)
            self.results[name].append(out)
            return out

        return timed


@contextlib.contextmanager
def _timed(stages: _Stages) -> Iterator[None]:
    """Wrap the stages' public functions (and the trainer's phases); restore them after."""
    import agents.evaluation.benchmark as bench
    import agents.training.ppo as ppo
    import agents.training.pretrain as pre
    import dataset.evaluation as scoring
    import dataset.evaluation_velocity as scoring_velocity
    from agents.policies.policy import DrumPolicy
    from drum_env.vector import DrumComposeVectorEnv

    train = ppo.train

    def timed_train(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timer", stages.phase)
        return train(*args, **kwargs)

    targets = [
        (pre, "pretrain", "pretraining", None),
        (ppo, "train", "PPO", None),
        (bench, "evaluate", "evaluation", None),
        (bench, "play_takes", "evaluation: takes to hear", None),
        (scoring, "score_sets_resampled", "evaluation: scoring", "evaluation"),
        (scoring_velocity, "score_velocity_sets", "evaluation: scoring", "evaluation"),
        (DrumComposeVectorEnv, "step", "PPO: rollout: env.step", "PPO: rollout"),
        (DrumPolicy, "forward_obs", "PPO: rollout: policy forward", "PPO: rollout"),
    ]
    saved = []
    for owner, name, label, inside in targets:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        saved.append((owner, name, original))
        fn = timed_train if (owner, name) == (ppo, "train") else getattr(owner, name)
        setattr(owner, name, stages.wrap(fn, label, inside))
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def _stage_seconds(total: dict[str, float], nested: dict[tuple[str, str], float],
                   whole: float) -> dict[str, float]:  # fmt: skip
    evaluation = ("evaluation", "evaluation: takes to hear")
    out = {
        "pretraining": total["pretraining"],
        # less the evaluations its callback runs: those count once, under evaluation
        "PPO": total["PPO"] - sum(nested["PPO", e] for e in evaluation),
        "evaluation": sum(total[e] for e in evaluation),
    }
    return {"setup": whole - sum(out.values()), **out}


def stage_table(stages: _Stages, wall: float, cpu: float) -> dict[str, Any]:
    """Seconds per stage (wall and CPU), what each one is made of, the pretraining's record."""
    inc = stages.wall
    out: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": cpu,
        "stages": _stage_seconds(stages.wall, stages.nested_wall, wall),
        "stages_cpu": _stage_seconds(stages.cpu, stages.nested_cpu, cpu),
    }
    runs = stages.results["pretraining"]
    pretrain_parts = {k: sum(r.timings.get(k, 0.0) for r in runs)
                      for k in ("data", "model", "validation")}  # fmt: skip
    pretrain_parts["other"] = inc["pretraining"] - sum(pretrain_parts.values())
    out["pretraining"] = {
        "parts_s": pretrain_parts,
        "steps": [r.steps for r in runs],
        "best_step": [r.best_step for r in runs],
        "best_val_loss": [r.best_val_loss for r in runs],
    }
    phases = {k[len("PPO: "):]: v for k, v in inc.items() if k.startswith("PPO: ")}
    out["PPO"] = {
        "phases_s": phases,
        "env_steps": [int(r.global_step) for r in stages.results["PPO"]],
    }
    steps = sum(out["PPO"]["env_steps"])
    out["PPO"]["env_steps_per_s"] = steps / out["stages"]["PPO"] if steps else 0.0
    scoring = inc["evaluation: scoring"]
    out["evaluation"] = {
        "calls": stages.calls["evaluation"],
        "parts_s": {
            "rollout and the rest": inc["evaluation"] - scoring,
            "scoring": scoring,
            "takes to hear": inc["evaluation: takes to hear"],
        },
    }
    return out


def _bound(parts: dict[str, float]) -> str:
    """The largest part and its share."""
    total = sum(v for v in parts.values() if v > 0)
    name = max(parts, key=lambda k: parts[k])
    return f"{name} ({parts[name] / total:.0%})" if total > 0 else "-"


def markdown(result: dict[str, Any]) -> str:
    r, a = result["timing"], result["args"]
    stages = r["stages"]
    phases = r["PPO"]["phases_s"]
    ppo_parts = {
        "rollout: env.step": phases.get("rollout: env.step", 0.0),
        "rollout: policy forward": phases.get("rollout: policy forward", 0.0),
        "rollout: rest": phases.get("rollout", 0.0) - phases.get("rollout: env.step", 0.0)
        - phases.get("rollout: policy forward", 0.0),
        "update": phases.get("update", 0.0),
        "other phases": sum(v for k, v in phases.items()
                            if ":" not in k and k not in ("rollout", "update")),
    }  # fmt: skip
    ppo_parts["outside the phases"] = stages["PPO"] - sum(ppo_parts.values())
    pre = r["pretraining"]
    what = {
        "setup": "split, reference players, baselines, reports",
        "pretraining": f"steps {pre['steps']}, best {pre['best_step']}; bound: "
        + _bound({k: v for k, v in pre["parts_s"].items() if k != "total"}),
        "PPO": f"{sum(r['PPO']['env_steps']):,} env steps, "
        f"{r['PPO']['env_steps_per_s']:,.0f} env steps/s; bound: " + _bound(ppo_parts),
        "evaluation": f"{r['evaluation']['calls']} evaluations; bound: "
        + _bound(r["evaluation"]["parts_s"]),
    }
    lines = [
        f"# The headline recipe, one seed ({'quick' if a['quick'] else 'full'}), timed",
        "",
        f"Command: `{result['command']}`. Machine: {result['machine']['cpus']} CPUs, load "
        f"average {result['machine']['load_before']} before the run. Wall time "
        f"{r['wall_s']:.0f} s ({r['wall_s'] / 60:.1f} min), CPU time {r['cpu_s']:.0f} s "
        + (f"({r['cpu_s'] / 60:.1f} min; one torch thread: the wall time on an idle core)."
           if a.get("threads", 1) == 1 else
           f"({r['cpu_s'] / 60:.1f} min over {a['threads']} torch threads: the wall time is "
           "what a user waits on an idle machine)."),
        "",
        "| stage | wall s | CPU s | share (CPU) | what bounds it |",
        "|---|---:|---:|---:|---|",
    ]
    cpu = r["stages_cpu"]
    for stage in STAGES:
        lines.append(f"| {stage} | {stages[stage]:.1f} | {cpu[stage]:.1f} | "
                     f"{cpu[stage] / r['cpu_s']:.0%} | {what[stage]} |")  # fmt: skip
    lines += ["", "Parts (wall s):", "", "| part | wall s |", "|---|---:|"]
    for k, v in pre["parts_s"].items():
        if k != "total":
            lines.append(f"| pretraining: {k} | {v:.1f} |")
    for k, v in ppo_parts.items():
        lines.append(f"| PPO: {k} | {v:.1f} |")
    for k, v in r["evaluation"]["parts_s"].items():
        lines.append(f"| evaluation: {k} | {v:.1f} |")
    return "\n".join(lines) + "\n"


def save(result: dict[str, Any], json_path: Path) -> str:
    """Write the JSON and the markdown table beside it; the table."""
    from agents.training.runs import write_json

    table = markdown(result)
    json_path.with_suffix(".md").write_text(table, encoding="utf-8")
    write_json(json_path, result)
    return table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="runs/groove-npz")
    parser.add_argument("--heldout-players", nargs="*", default=["drummer8", "drummer9"],
                        help="'' (or none): hold out a quarter of the files instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="budgets scaled down: " + str(QUICK))
    parser.add_argument("--total-timesteps", type=int, default=None)
    parser.add_argument("--pretrain-steps", type=int, default=None)
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the run (the README's recipe: 1; 2 uses both "
                        "cores of a 2-core machine, and then wall seconds are what counts)")
    parser.add_argument("--device", default="auto",
                        help="where pretraining and PPO train: auto (default: CUDA where there is "
                        "one, else the CPU), cpu, cuda, cuda:N; SB3 and the evaluations stay on "
                        "the CPU")
    parser.add_argument("--work", default="runs/recipe-time")
    parser.add_argument("--out", default=None, help="the JSON (the .md beside it; default "
                        "benchmarks/results/recipe_time.json, recipe_time_quick.json with --quick)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.out is None:
        args.out = str(RESULTS.with_name("recipe_time_quick.json") if args.quick else RESULTS)

    from agents.evaluation.benchmark import BenchmarkConfig, run_benchmark

    budget: dict[str, Any] = {"total_timesteps": 262_144}
    if args.quick:
        budget.update(QUICK)
    for name in ("total_timesteps", "pretrain_steps", "eval_episodes"):
        if getattr(args, name) is not None:
            budget[name] = getattr(args, name)
    players = tuple(p for p in args.heldout_players if p) or None
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)  # a fresh run: nothing cached (the pretrained policy included)
    config = BenchmarkConfig(
        data=args.data, heldout_players=players, shapings=("aligned",),
        agents=("pretrained", "ppo+pretrain", "loop", "random"), seeds=(args.seed,),
        eval_points=4, kl_coef=0.1, threads=args.threads, device=args.device, work=str(work),
        out=str(work / "results"),
        progress=False, **budget,
    )  # fmt: skip
    stages = _Stages()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start, cpu = time.perf_counter(), time.process_time()
    with _timed(stages):
        bench = run_benchmark(config)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    timing = stage_table(stages, wall, cpu)
    final = [row for row in bench.rows if int(row["final"]) == 1]
    result = {
        "args": vars(args),
        "command": "python benchmarks/recipe_time.py " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv),
        "config": json.loads(json.dumps(config.result_fields(), default=str)),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_before": round(load, 2)},
        "timing": timing,
        "headline": {row["agent"]: row["headline"] for row in final},
    }  # fmt: skip
    json_path = Path(args.out)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    print(save(result, json_path))
    return result


if __name__ == "__main__":
    main()
