"""Micro-benchmark of :mod:`dataset.metrics`: ``window_metrics`` and each metric, one thread.

Times every public metric and ``window_metrics`` on a batch of windows ``(batch, seq_len, 9)``
and on a single window ``(seq_len, 9)``, cut from the built-in synthetic corpus (a seeded random
corpus when that is missing). Each timing is the best of ``--repeats`` runs of ``--number``
calls, so that the load of a shared machine distorts it less.

With ``--baseline PATH`` (a copy of the single-file ``dataset/metrics.py`` of a revision before
it became a package, e.g. ``git show 34f9a25:dataset/metrics.py > /tmp/metrics_before.py``) the
same calls of that module are timed in turns with the current one, and every result is first
checked bit for bit equal. To compare with a later revision, run this script in a worktree of it.

Run: ``python benchmarks/metrics_profile.py [--baseline /tmp/metrics_before.py]``.
"""

# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import importlib.util
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dataset import metrics

FUNCTIONS = (
    "window_metrics",
    "hit_density",
    "bar_density",
    "fraction_dense_bars",
    "ioi_stats",
    "co_occurrence",
    "step_codes",
    "n_grams",
    "fast_patterns",
    "transitions",
    "syncopation",
    "metrical_syncopation",
    "pattern_entropy",
    "phrase_entropy",
    "phrase_structure",
    "section_metrics",
)


def windows(batch: int, seq_len: int, seed: int) -> np.ndarray:
    """(batch, seq_len, 9) float32 windows of the built-in corpus (or of random hits)."""
    rng = np.random.default_rng(seed)
    try:
        from dataset.synthetic import default_corpus

        seqs = [s for s in default_corpus() if len(s) >= seq_len]
    except ImportError:
        seqs = []
    if not seqs:
        return (rng.random((batch, seq_len, 9)) < 0.15).astype(np.float32)
    out = []
    for _ in range(batch):
        s = seqs[rng.integers(len(seqs))]
        start = rng.integers(0, len(s) - seq_len + 1)
        out.append(s[start : start + seq_len])
    return np.stack(out).astype(np.float32)


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("metrics_baseline", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_identical(a: Any, b: Any, where: str) -> None:
    """``a`` and ``b`` hold the same arrays, bit for bit (dtype, shape and bytes)."""
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        x, y = np.asarray(a), np.asarray(b)
        assert x.dtype == y.dtype and x.shape == y.shape, where
        assert x.tobytes() == y.tobytes(), f"{where} differs"


def best_time(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=10, help="calls per timed run")
    parser.add_argument("--baseline", type=Path, help="an earlier metrics.py to compare with")
    parser.add_argument("--only", nargs="*", default=None, help="names of the functions to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    batch = windows(args.batch, args.seq_len, args.seed)
    inputs = {f"({args.batch}, {args.seq_len}, 9)": batch, f"({args.seq_len}, 9)": batch[0]}
    modules = {"current": metrics}
    if args.baseline is not None:
        modules = {"baseline": load_module(args.baseline), "current": metrics}
    names = args.only or list(FUNCTIONS)

    header = f"{'function':22s}"
    for label in inputs:
        header += f" | {label:>16s} us" + ("   speed-up" if len(modules) > 1 else "")
    print(header)
    total_calls_per_s = {}
    for name in names:
        line = f"{name:22s}"
        for label, x in inputs.items():
            fns = {m: partial(getattr(mod, name), x) for m, mod in modules.items()}
            if len(modules) > 1:
                assert_identical(fns["baseline"](), fns["current"](), f"{name}{label}")
            for fn in fns.values():
                fn()  # warm
            times: dict[str, float] = {m: float("inf") for m in fns}
            for _ in range(args.repeats):  # in turns: a change of load hits both alike
                for m, fn in fns.items():
                    times[m] = min(times[m], best_time(fn, args.number))
            line += f" | {times['current'] * 1e6:19.1f}"
            if len(modules) > 1:
                line += f"   {times['baseline'] / times['current']:8.2f}x"
            if name == "window_metrics":
                total_calls_per_s[label] = {m: 1 / t for m, t in times.items()}
        print(line)
    if "window_metrics" in names:
        rate = total_calls_per_s[next(iter(inputs))]
        for m, r in rate.items():
            print(f"window_metrics, {m}: {r * args.batch:,.0f} windows/s batched")


if __name__ == "__main__":
    main()
