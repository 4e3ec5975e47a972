"""Where the custom PPO trainer spends its time: a phase-by-phase profile of ``train``.

Runs :func:`agents.training.ppo.train` as a user would (TensorBoard on, a checkpoint every 10
iterations, the final policy save; no progress bar), after an untimed warm-up call, and times
its phases through the trainer's public timing hook (``train(..., timer=...)``, whose phases are
:data:`agents.training.ppo.PHASES`), and the parts of the rollout and the update by wrapping
public methods of the env, the policy and torch (nothing is re-implemented; the overhead is two
clock reads per call):

* setup: ``train`` minus every phase below (env and model construction, the run folder);
* rollout: :func:`agents.training.ppo_steps.collect_rollout`, split into the policy forward
  (``forward_obs``), ``env.step`` (``DrumComposeVectorEnv.step``) and the rest (sampling,
  log-probabilities, the reward-term reads, storage writes);
* bootstrap value: ``forward_obs`` of the observation after the rollout;
* reward: ``assign_rewards``; GAE: ``compute_gae``;
* update: :func:`agents.training.ppo_steps.ppo_update`, split into forward, ``backward``,
  ``clip_grad_norm_``, ``Adam.step`` and the rest (minibatch gathers, the losses, reading the
  logged values);
* logging: the iteration's metrics, TensorBoard and the progress bar;
* checkpoint: ``checkpoint.pt`` and the final ``policy.pt``.

With one torch thread (the default, as in ``train_throughput.py``) every phase is measured in
the main thread's CPU time (``time.thread_time``), which other processes on a shared machine do
not inflate, so the table reads microseconds of work per env step; the wall time is recorded
beside it. ``--baseline DIR`` profiles the checkout in ``DIR`` too (e.g. the code before a
change, ``git archive <commit> | tar -x -C DIR``; one whose ``train`` takes ``timer``, 0.4 on)
in a subprocess, the two taking turns ``--repeats`` times (best of each), and puts its columns
first.

Run: ``python benchmarks/train_profile.py [--num-envs 16 64] [--policy-kind transformer mlp]
[--baseline DIR]`` (writes ``benchmarks/results/train_profile.json`` and ``.md``).
"""

# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import datetime
import functools
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "train_profile.json"
TASK = {"seq_len": 64, "prompt_bars": 1, "shaping": "hierarchical"}
"""The task of every profile (as ``train_throughput.py``'s), fixed so that checkouts with other
defaults profile the same work."""

PHASES: tuple[tuple[str, str | None], ...] = (
    ("setup", None),
    ("rollout", None),
    ("rollout: policy forward", "rollout"),
    ("rollout: env.step", "rollout"),
    ("rollout: other (sampling, reward terms, buffer)", "rollout"),
    ("bootstrap value", None),
    ("reward", None),
    ("GAE", None),
    ("update", None),
    ("update: forward", "update"),
    ("update: backward", "update"),
    ("update: clip_grad_norm_", "update"),
    ("update: Adam.step", "update"),
    ("update: other (gathers, losses)", "update"),
    ("logging", None),
    ("checkpoint", None),
)
"""Rows of the table: (name, parent phase or None)."""


class _Timers:
    """Inclusive wall time per phase; a phase started inside another is attributed to it."""

    def __init__(self, clock: Any = time.perf_counter) -> None:
        self.clock = clock
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[str] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """The trainer's timing hook (``train(..., timer=timers.phase)``): time phase ``name``."""
        self.stack.append(name)
        start = self.clock()
        try:
            yield
        finally:
            self.total[name] += self.clock() - start
            self.calls[name] += 1
            self.stack.pop()

    def wrap(self, fn: Any, name: Any) -> Any:
        """``fn`` timed under ``name`` (a string, or a function of the enclosing phase)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            parent = self.stack[-1] if self.stack else None
            label = name(parent) if callable(name) else name
            if label is None:
                return fn(*args, **kwargs)
            self.stack.append(label)
            start = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[label] += self.clock() - start
                self.calls[label] += 1
                self.stack.pop()

        return timed


@contextlib.contextmanager
def _patched(timers: _Timers) -> Iterator[None]:
    """Wrap public methods the rollout and the update call (env, policy, torch); restore them.

    The phases themselves come from the trainer's timing hook (:meth:`_Timers.phase`); these
    wraps split the rollout and the update into their parts.
    """
    import torch

    import agents.policies.policy as policy_mod
    from drum_env.vector import DrumComposeVectorEnv

    def forward_label(parent: str | None) -> str | None:
        return {"rollout": "rollout: policy forward", "update": "update: forward"}.get(parent)

    def inside(phase: str, label: str) -> Any:
        return lambda parent: label if parent == phase else None

    targets: list[tuple[Any, str, Any]] = [
        (DrumComposeVectorEnv, "step", inside("rollout", "rollout: env.step")),
        (torch.Tensor, "backward", inside("update", "update: backward")),
        (torch.nn.utils, "clip_grad_norm_", inside("update", "update: clip_grad_norm_")),
        (torch.optim.Adam, "step", inside("update", "update: Adam.step")),
    ]  # fmt: skip
    for name in ("DrumPolicy", "MLPPolicy"):
        if hasattr(policy_mod, name):
            targets.append((getattr(policy_mod, name), "forward_obs", forward_label))
    saved = []
    for obj, name, label in targets:
        if hasattr(obj, name):
            original = obj.__dict__[name] if isinstance(obj, type) else getattr(obj, name)
            saved.append((obj, name, original))
            setattr(obj, name, timers.wrap(getattr(obj, name), label))
    try:
        yield
    finally:
        for obj, name, original in reversed(saved):
            setattr(obj, name, original)


def profile_once(num_envs: int, num_steps: int, iterations: int, policy_kind: str,
                 threads: int) -> dict:  # fmt: skip
    """Profile one ``train`` call of ``iterations`` iterations (after an untimed warm-up run)."""
    import torch

    torch.set_num_threads(threads)
    import agents.training.ppo as ppo

    def config(out: str, its: int) -> Any:
        kwargs = dict(num_envs=num_envs, num_steps=num_steps,
                      total_timesteps=num_envs * num_steps * its, device="cpu", seed=0, out=out,
                      progress=False, tensorboard=True, checkpoint_every=10, **TASK)  # fmt: skip
        if policy_kind != "transformer":
            kwargs["policy_kind"] = policy_kind
        return ppo.PPOConfig(**kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        ppo.train(config(f"{tmp}/warm", 2))  # imports, allocator, first-call costs
        # one thread: the main thread's CPU time, which other processes on a shared machine do
        # not inflate; more threads: wall time
        clock = time.thread_time if threads == 1 else time.perf_counter
        timers = _Timers(clock)
        with _patched(timers):
            start, start_clock = time.perf_counter(), clock()
            result = ppo.train(config(f"{tmp}/run", iterations), timer=timers.phase)
            wall, total = time.perf_counter() - start, clock() - start_clock
    t = dict(timers.total)
    for parent in ("rollout", "update"):
        children = sum(v for k, v in t.items() if k.startswith(parent + ": "))
        other = next(name for name, p in PHASES if p == parent and "other" in name)
        t[other] = max(t.get(parent, 0.0) - children, 0.0)
    top = sum(t.get(name, 0.0) for name, p in PHASES if p is None and name != "setup")
    t["setup"] = max(total - top, 0.0)
    steps = result.global_step
    return {"num_envs": num_envs, "num_steps": num_steps, "iterations": iterations,
            "policy_kind": policy_kind, "threads": threads, "env_steps": steps, "wall_s": wall,
            "clock": "thread CPU time" if threads == 1 else "wall", "clock_s": total,
            "steps_per_s": steps / total, "steps_per_s_wall": steps / wall,
            "phases_s": {name: t.get(name, 0.0) for name, _ in PHASES},
            "us_per_env_step": {name: 1e6 * t.get(name, 0.0) / steps
                                for name, _ in PHASES}}  # fmt: skip


def markdown(rows: list[dict], title: str = "") -> str:
    """One table: phases as rows, one column (microseconds per env step and share) per run."""
    head = "| phase | " + " | ".join(
        f"{r.get('label', '')} {r['policy_kind']} {r['num_envs']}x{r['num_steps']}".strip()
        for r in rows
    ) + " |"
    lines = [title, ""] if title else []
    lines += [head, "|---|" + "---:|" * len(rows)]
    for name, parent in PHASES:
        cells = []
        for r in rows:
            us = r["us_per_env_step"][name]
            share = 100 * r["phases_s"][name] / r["clock_s"]
            cells.append(f"{us:.1f} us ({share:.0f}%)")
        label = f"&nbsp;&nbsp;{name.split(': ', 1)[1]}" if parent else f"**{name}**"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| **env steps/s (whole call, by that clock)** | "
                 + " | ".join(f"{r['steps_per_s']:,.0f}" for r in rows) + " |")  # fmt: skip
    return "\n".join(lines)


def _profile_rows(args: argparse.Namespace, label: str) -> list[dict]:
    rows = []
    for kind in args.policy_kind:
        for n in args.num_envs:
            row = profile_once(n, args.num_steps, args.iterations, kind, args.threads)
            rows.append({**row, "label": label})
    return rows


def _baseline_rows(args: argparse.Namespace, folder: str, out: Path) -> list[dict]:
    """The same profile of the checkout in ``folder`` (Transformer only), in a subprocess."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--json-only",
           "--num-envs", *map(str, args.num_envs), "--num-steps", str(args.num_steps),
           "--iterations", str(args.iterations), "--policy-kind", "transformer",
           "--threads", str(args.threads), "--label", "before", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": folder}
    subprocess.run(cmd, check=True, env=env, cwd=folder)
    return json.loads(out.read_text())["runs"]


def _best(runs: list[list[dict]]) -> list[dict]:
    """Per column, the repeat with the most env steps per second."""
    return [max(col, key=lambda r: r["steps_per_s"]) for col in zip(*runs)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--num-steps", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--policy-kind", nargs="+", default=["transformer", "mlp"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", default=None,
                        help="also profile the checkout in this folder (before a change)")
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    before: list[list[dict]] = []
    after: list[list[dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # taking turns
            if args.baseline:
                before.append(_baseline_rows(args, args.baseline, Path(tmp) / f"b{r}.json"))
            after.append(_profile_rows(args, args.label))
    rows = (_best(before) if before else []) + _best(after)
    result = {
        "benchmark": "train_profile",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/train_profile.py " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv),
        "baseline": args.baseline,
        "pythonpath": os.environ.get("PYTHONPATH"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "runs": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.json_only:
        md = markdown(rows, _title(result, args))
        args.out.with_suffix(".md").write_text(md + "\n")
        print(md)
    return result


def _title(result: dict, args: argparse.Namespace) -> str:
    clock = "CPU time of the main thread" if args.threads == 1 else "wall time"
    return (
        "# Training profile\n\n"
        f"Made by: `{result['command']}` on {result['date']} ({result['machine']['cpu_count']} "
        f"CPUs, torch {result['machine']['torch']}); {args.threads} torch thread(s), {clock}, "
        f"{args.iterations} iterations of `num_envs x {args.num_steps}` env steps per run after "
        "a warm-up run, best of "
        f"{args.repeats}. Each cell: microseconds per env step (share of the call). "
        "TensorBoard on, a checkpoint every 10 iterations, 4 epochs x 4 minibatches, seq_len 64, "
        "1 primer bar, `hierarchical` shaping."
        + ("\n\n`before`: the checkout in `--baseline`." if args.baseline else "")
        + (f" Run with `PYTHONPATH={result['pythonpath']}`." if result["pythonpath"] else "")
    )


if __name__ == "__main__":
    main()
