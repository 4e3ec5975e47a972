"""Where pretraining spends its time, and samples/s of the DataLoader-fed loop against the table.

Two ways of feeding the same pretraining, in one run, on the same data, taking turns
``--repeats`` times (so that the load of a shared machine falls on both alike):

* ``loader`` (0.4's loop, mirrored here): batches from
  :func:`dataset.loader.get_complete_rl_dataloader` (per-item samples with every metric, then
  collated), each batch's conditioning targets computed per step
  (:func:`agents.training.pretrain.window_targets`), validation through a DataLoader too; the
  dataset's window tables, which it builds lazily in its first epoch, are built before the
  clock starts (setup), so its data time is that of every later epoch;
* ``table`` (:func:`agents.training.pretrain.pretrain` itself): batches gathered from a
  :class:`~agents.training.pretrain.WindowTable` by numpy fancy indexing, each window's target
  computed once.

Both run ``--steps`` optimiser steps of the given settings (by default the README's headline
recipe's pretraining: 64 wide, 2 layers, 4 heads, batches of 64 at 1e-3, dropout 0.1, windows of
64 steps on bar lines, phase offsets) with a validation every ``--steps // 2`` steps, and split
the wall time into data (building batches and their inputs), model (forward, backward, clipping,
the optimiser step), validation and setup (datasets, tables, the run folder). The two draw the
same batches in the same order from the same seed, so their losses must agree step for step
(the ``same losses`` column: the largest difference of the training and validation losses;
0 means bit for bit).

Then the model's own bound: one optimiser step on a fixed batch, in thread CPU seconds (which
other processes do not inflate), at ``--bound-batches`` batch sizes, taking turns step by step
between three policies with the same weights: the run's dropout with the policy's masks
(``fast``: :func:`agents.policies.dropout.fast_dropout`), the same rate with torch's dropout
modules (``torch``: the training pass of every run before fast dropout; the policy runs the
modules' own pass when its config's dropout is 0, and their rates are set to the run's), and
no dropout. Dropout's mask draws are part of the model's cost. If samples/s of the model alone
do not grow with the batch, larger batches cannot speed pretraining up on this CPU, whatever the
loss allows.

Time to the validation optimum: the headline recipe stops ``patience`` validations after its best
(README: best at 2,700 steps, stopped at 3,700 on seed 0, a validation every 100 steps), so each
path's wall time to there is projected from its measured seconds per step and per validation
(``--best-step``, ``--stop-step``, ``--val-every``); the steps themselves are the same for both
paths (same batches, same losses).

Run: ``python benchmarks/pretrain_throughput.py [--data TRAIN_DIR --val-data VAL_DIR]``
(default: the headline benchmark's pretraining split of seed 0 under
``runs/bench-players/pretrain/seed0/split`` when it is there, else the built-in corpus, 48
sequences training and the rest validating);
writes ``benchmarks/results/pretrain_throughput.json`` and ``.md``.
"""

# ruff: noqa: E402  (the thread limits must be set before numpy and torch are imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import dataclasses
import math
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.policies.policy import DrumPolicy
from agents.training.pretrain import (
    PretrainConfig,
    WindowTable,
    batch_inputs,
    next_step_loss,
    pretrain,
    validation_loss,
)
from agents.training.runs import write_json
from dataset.loader import get_complete_rl_dataloader, set_loader_epoch

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain_throughput.json"
HEADLINE_SPLIT = Path("runs/bench-players/pretrain/seed0/split")
PATHS = ("loader", "table")
PARTS = ("data", "model", "validation", "setup")


def _loader(folder: str | None, c: PretrainConfig, shuffle: bool) -> Any:
    return get_complete_rl_dataloader(
        folder, c.seq_len, c.steps_per_bar, c.bars_per_phrase, batch_size=c.batch_size,
        shuffle=shuffle, seed=c.seed, stride=c.steps_per_bar,
    )  # fmt: skip


class _Parts:
    """Wall and process CPU seconds by part, keyed as ``PretrainResult.timings``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        for part in PARTS:
            self.timings[part] = self.timings[part + "_cpu"] = 0.0

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.timings[part] = self.timings.get(part, 0.0) + time.perf_counter() - wall
            cpu = time.process_time() - cpu
            self.timings[part + "_cpu"] = self.timings.get(part + "_cpu", 0.0) + cpu


def run_loader(c: PretrainConfig) -> dict[str, Any]:
    """0.4's DataLoader-fed pretraining loop (binary, CPU, no AMP), timed by part."""
    parts = _Parts()
    losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    device = torch.device("cpu")
    with parts("total"), torch.random.fork_rng(), c.torch_threads():
        with parts("setup"):
            torch.manual_seed(c.seed)
            loader = _loader(c.data, c, shuffle=True)
            val_loader = _loader(c.val_data, c, shuffle=False)
            for source in (loader, val_loader):  # the lazy metric tables: setup, not data
                n = len(source.dataset)
                for first in range(0, n, 256):
                    source.dataset.__getitems__(list(range(first, min(first + 256, n))))
            policy = DrumPolicy(c.policy_config_for(int(loader.dataset.num_drums)))
            policy.train()
            optimizer = torch.optim.AdamW(policy.parameters(), lr=c.learning_rate,
                                          weight_decay=c.weight_decay)  # fmt: skip
            offsets = torch.Generator().manual_seed(c.seed)
            total = min(c.epochs * len(loader), c.max_steps or math.inf)
        step = 0
        for epoch in range(c.epochs):
            set_loader_epoch(loader, epoch)
            batches = iter(loader)
            while step < total:
                with parts("data"):
                    batch = next(batches, None)
                    if batch is None:
                        break
                    hits, _, target = batch_inputs(batch, None, c, device)
                    mask = batch["mask"]
                    r = 0
                    if c.phase_offsets:
                        r = int(torch.randint(c.phrase_len, (1,), generator=offsets))
                        r = min(r, max(int(batch["lengths"].min()) - 2, 0))
                        hits, mask = hits[:, r:], mask[:, r:]
                with parts("model"):
                    loss, count = next_step_loss(policy, hits, mask, target, start_phase=r)
                    if int(count) == 0:
                        continue
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm)
                    optimizer.step()
                step += 1
                losses.append(float(loss.detach()))
                if step % c.log_every == 0:
                    with parts("validation"):
                        value = validation_loss(policy, val_loader, device, c)
                    val_losses.append((step, value))
            if step >= total:
                break
    return {"timings": parts.timings, "steps": step, "losses": losses,
            "val_losses": val_losses}  # fmt: skip


def run_table(c: PretrainConfig) -> dict[str, Any]:
    """:func:`agents.training.pretrain.pretrain` itself (the table), timed by part."""
    result = pretrain(c)
    timings = dict(result.timings)
    for clock in ("", "_cpu"):
        timings["setup" + clock] = timings["total" + clock] - sum(
            timings[k + clock] for k in ("data", "model", "validation")
        )
    return {"timings": timings, "steps": result.steps, "losses": list(result.losses),
            "val_losses": list(result.val_losses)}  # fmt: skip


def torch_dropout(policy: DrumPolicy, p: float) -> DrumPolicy:
    """Torch's dropout modules at rate ``p`` in a policy whose config has none (in place).

    With ``config.dropout = 0`` the policy trains through the modules' own pass; their rates set
    to ``p``, that pass is the one of every run before fast dropout (torch's ``bernoulli_``
    masks on the attention weights, the feed-forward and both residuals).
    """
    for layer in policy.trunk.layers:
        layer.dropout.p = layer.dropout1.p = layer.dropout2.p = p
        layer.self_attn.dropout = p
    return policy


def model_bound(c: PretrainConfig, batch_sizes: list[int], steps: int) -> list[dict[str, Any]]:
    """Thread-CPU seconds of one optimiser step on a fixed batch, by dropout and its masks."""
    data = _loader(c.data, c, shuffle=False).dataset
    table = WindowTable(data, c.steps_per_bar, c.bars_per_phrase)
    config = dataclasses.replace(c.policy_config_for(table.num_drums), dropout=0.0)
    variants = [("fast", c.dropout), ("torch", c.dropout)] if c.dropout > 0 else []
    variants.append(("none", 0.0))
    rows = []
    with torch.random.fork_rng(), c.torch_threads():
        for size in batch_sizes:
            idx = np.arange(size) % len(table)
            batch = table.batch(idx)
            hits = (batch["step"] > 0).float()
            models = []
            for masks, dropout in variants:
                torch.manual_seed(c.seed)  # the same weights for each
                policy = DrumPolicy(config if masks != "fast"
                                    else dataclasses.replace(config, dropout=dropout))
                if masks == "torch":
                    torch_dropout(policy, dropout)
                policy.train()
                optimizer = torch.optim.AdamW(policy.parameters(), lr=c.learning_rate)
                models.append((policy, optimizer, []))
            for i in range(steps + 1):
                for policy, optimizer, times in models:  # taking turns, step by step
                    t = time.thread_time()
                    loss, _ = next_step_loss(policy, hits, batch["mask"], batch["target"])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm)
                    optimizer.step()
                    if i:  # the first step warms up
                        times.append(time.thread_time() - t)
            for (masks, dropout), (_, _, times) in zip(variants, models, strict=True):
                per_step = statistics.median(times)
                rows.append({"dropout": dropout, "masks": masks, "batch_size": size,
                             "step_cpu_s": per_step,
                             "samples_per_cpu_s": size / per_step})  # fmt: skip
    return rows


def summarise(runs: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    """Median (and range) over repeats of the parts and samples/s of one path, both clocks."""
    def stat(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    steps = runs[0]["steps"]
    validations = max(len(runs[0]["val_losses"]), 1)
    out: dict[str, Any] = {"steps": steps, "validations": len(runs[0]["val_losses"])}
    for clock in ("", "_cpu"):
        for part in (*PARTS, "total"):
            out[part + clock + "_s"] = stat([r["timings"][part + clock] for r in runs])
        train = [r["timings"]["data" + clock] + r["timings"]["model" + clock] for r in runs]
        out["samples_per" + clock + "_s"] = stat([steps * batch_size / t for t in train])
        out["s_per_step" + clock] = statistics.median(train) / steps
        per_validation = statistics.median(r["timings"]["validation" + clock] for r in runs)
        out["s_per_validation" + clock] = per_validation / validations
        out["data_share" + clock] = statistics.median(
            r["timings"]["data" + clock] / (r["timings"]["data" + clock]
                                            + r["timings"]["model" + clock]) for r in runs
        )  # fmt: skip
    return out


def markdown(result: dict[str, Any]) -> str:
    s, a = result["paths"], result["args"]
    lines = [
        f"# Pretraining throughput ({a['steps']} steps of batches of {a['batch_size']}, "
        f"{a['repeats']} repeats taking turns, one torch thread)",
        "",
        f"Data: {result['data']}. Machine: {result['machine']['processor'] or 'unknown'}, "
        f"{result['machine']['cpus']} CPUs, load average {result['machine']['load_before']} "
        "before the run (a shared machine: compare the paths in this run only). Seconds are "
        "the median (min-max) over the repeats; CPU seconds (the process's) are what a step "
        "costs on an idle core, wall seconds what this run waited.",
        "",
        "| path | clock | samples/s (data + model) | data s | model s | validation s | "
        "setup s | data share of a step | s per validation |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(d: dict[str, float], fmt: str = ".2f") -> str:
        return f"{d['median']:{fmt}} ({d['min']:{fmt}}-{d['max']:{fmt}})"

    for path in PATHS:
        p = s[path]
        for clock, label in (("_cpu", "CPU"), ("", "wall")):
            lines.append(
                f"| {path} | {label} | {cell(p['samples_per' + clock + '_s'], '.0f')} | "
                f"{cell(p['data' + clock + '_s'])} | {cell(p['model' + clock + '_s'])} | "
                f"{cell(p['validation' + clock + '_s'])} | {cell(p['setup' + clock + '_s'])} | "
                f"{p['data_share' + clock]:.1%} | {p['s_per_validation' + clock]:.2f} |"
            )
    for clock, label in (("_cpu", "CPU"), ("", "wall")):
        ratios = result["speedups" + clock]
        lines.append(
            f"\ntable / loader, samples/s by {label} seconds: "
            f"{result['speedup' + clock]:.2f}x (each repeat: "
            + ", ".join(f"{x:.2f}" for x in ratios) + ")."
        )
    lines += [
        "",
        f"Same losses: the largest difference is {result['same_losses']['max_abs_diff']:.3g} "
        f"over {result['same_losses']['compared']} training and validation losses (0: bit for "
        "bit).",
        "",
        "Time to the validation optimum, projected from the CPU seconds per step and per "
        f"validation above (best at step {a['best_step']}, stopped at {a['stop_step']}, a "
        f"validation every {a['val_every']} steps; the same steps for both paths):",
        "",
        "| path | to the best step | to the stop |",
        "|---|---:|---:|",
    ]
    for path in PATHS:
        t = result["to_optimum"][path]
        lines.append(f"| {path} | {t['best_s']:.0f} s | {t['stop_s']:.0f} s |")
    lines += [
        "",
        "The model's own step on a fixed batch (thread CPU s; the bound of the table path):",
        "",
        "| dropout | masks | batch | ms per step | samples per CPU s |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in result["model_bound"]:
        lines.append(f"| {row['dropout']} | {row['masks']} | {row['batch_size']} | "
                     f"{row['step_cpu_s'] * 1e3:.1f} | {row['samples_per_cpu_s']:.0f} |")
    step = {(r["masks"], r["batch_size"]): r["step_cpu_s"] for r in result["model_bound"]}
    gains = [f"{step['torch', b] / step['fast', b]:.2f}x at {b}"
             for b in a["bound_batches"] if ("fast", b) in step]  # fmt: skip
    if gains:
        lines.append(f"\nThe model's step with torch's dropout / with the fast masks: "
                     f"{', '.join(gains)}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="training windows' folder")
    parser.add_argument("--val-data", default=None, help="validation windows' folder")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=PretrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bound-batches", type=int, nargs="*", default=[64, 128, 256])
    parser.add_argument("--bound-steps", type=int, default=8)
    parser.add_argument("--best-step", type=int, default=2700)
    parser.add_argument("--stop-step", type=int, default=3700)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS), help="the JSON (the .md beside it)")
    args = parser.parse_args(argv)
    if args.data is None and (HEADLINE_SPLIT / "train").is_dir():
        args.data = str(HEADLINE_SPLIT / "train")
        args.val_data = args.val_data or str(HEADLINE_SPLIT / "heldout")
    if (args.data is None) != (args.val_data is None):
        parser.error("give --data and --val-data together (or neither)")
    data_label = args.data or "the built-in corpus (48 sequences train, the rest validate)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            from dataset.synthetic import default_corpus

            seqs = default_corpus()
            for part, rows in (("train", seqs[:48]), ("val", seqs[48:])):
                (Path(tmp) / part).mkdir()
                for i, seq in enumerate(rows):
                    np.savez(Path(tmp) / part / f"s{i}.npz", sequence=seq)
            args.data, args.val_data = str(Path(tmp) / "train"), str(Path(tmp) / "val")
        base = PretrainConfig(
            data=args.data, val_data=args.val_data,
            batch_size=args.batch_size, epochs=10_000, max_steps=args.steps,
            log_every=max(args.steps // 2, 1), seed=args.seed, threads=1, device="cpu",
            progress=False, force=True, out=str(Path(tmp) / "run"),
        )  # fmt: skip
        for repeat in range(args.repeats):
            for path in PATHS:
                run = run_loader(base) if path == "loader" else run_table(base)
                runs[path].append(run)
                print(f"repeat {repeat + 1} {path}: {run['timings']}", file=sys.stderr)
        bound = model_bound(base, args.bound_batches, args.bound_steps)
    old, new = runs["loader"][0], runs["table"][0]
    pairs = list(zip(old["losses"], new["losses"], strict=True))
    pairs += [(a[1], b[1]) for a, b in zip(old["val_losses"], new["val_losses"], strict=True)]
    paths = {p: summarise(runs[p], args.batch_size) for p in PATHS}
    def train_s(run: dict[str, Any], clock: str) -> float:
        return run["timings"]["data" + clock] + run["timings"]["model" + clock]

    speedups = {clock: [train_s(o, clock) / train_s(n, clock)
                        for o, n in zip(runs["loader"], runs["table"], strict=True)]
                for clock in ("", "_cpu")}  # fmt: skip
    validations = math.ceil(args.stop_step / args.val_every)
    result = {
        "args": vars(args),
        "data": data_label,
        "config": base.to_dict(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "torch": torch.__version__,
                    "python": platform.python_version(), "load_before": round(load, 2)},
        "paths": paths,
        "speedup": statistics.median(speedups[""]),
        "speedups": speedups[""],
        "speedup_cpu": statistics.median(speedups["_cpu"]),
        "speedups_cpu": speedups["_cpu"],
        "same_losses": {"compared": len(pairs),
                        "max_abs_diff": max((abs(a - b) for a, b in pairs), default=0.0)},
        "to_optimum": {
            p: {"best_s": args.best_step * paths[p]["s_per_step_cpu"]
                + (args.best_step // args.val_every) * paths[p]["s_per_validation_cpu"],
                "stop_s": args.stop_step * paths[p]["s_per_step_cpu"]
                + validations * paths[p]["s_per_validation_cpu"]}
            for p in PATHS
        },
        "model_bound": bound,
        "runs": {p: [{k: v for k, v in r.items() if k != "losses"} for r in runs[p]]
                 for p in PATHS},
    }  # fmt: skip
    text = markdown(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)  # the table beside it
    Path(args.out).with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return result


if __name__ == "__main__":
    main()
