"""Samples per second of the hierarchical dataset, against the seed written the obvious way.

Measures, in one run on the same data and the same sample indices, on one CPU thread:

* ``__getitem__``: ``CompleteHierarchicalDrumDataset[i]`` one sample at a time, every metric;
* ``__getitems__``: batches of ``--batch-size`` indices (what the DataLoader calls);
* ``dataloader``: ``get_complete_rl_dataloader``-style iteration (``__getitems__`` + collate,
  ``num_workers=0``);
* ``seed baseline``: :class:`benchmarks.seed_baseline.SeedBaselineDataset`, one sample at a
  time (Python loops, ``collections.Counter``).

Song metrics are cached per file by both implementations and warmed before timing, and so are
the dataset's window tables (built once per file, see
:class:`dataset.metrics.WindowTables`), so the figures are the per-window cost. Each path runs
once untimed, then the paths take turns for ``--repeats`` timed runs and each one's best is
reported (all runs are in the JSON). Before timing, the baseline's samples are checked equal
to the dataset's (float32 tolerance), so both compute the same thing.

Then, in a fresh process, the Groove MIDI subset (``--groove``, converted to ``.npz`` in a
temporary folder unless ``--groove-npz`` names converted files): the dataset's resident memory
before and after its window tables are built, the time to build them, and its single-item
throughput there against the baseline's. That part is skipped, with the reason in the JSON,
where the MIDI folder is absent (``--groove ''`` skips it too).

Run: ``python benchmarks/dataset_throughput.py`` (writes
``benchmarks/results/dataset_throughput.json``).
"""

# ruff: noqa: E402  (the thread limits must be set before numpy and torch are imported)
from __future__ import annotations

import os

# One core: set before numpy / torch create their thread pools.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import multiprocessing
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dataset.hierarchical import CompleteHierarchicalDrumDataset
from dataset.loader import collate_drum_batch

try:
    from benchmarks.seed_baseline import SeedBaselineDataset
except ModuleNotFoundError:  # run as a script: benchmarks/ is sys.path[0]
    from seed_baseline import SeedBaselineDataset  # type: ignore[no-redef]

RESULTS = Path(__file__).resolve().parent / "results" / "dataset_throughput.json"
GROOVE = Path("/work/shared/data/groove-midi")
TARGET_RATIO = 20.0
"""Batched ``__getitems__`` against the baseline."""
TARGET_SAMPLES_PER_S = 5000.0
"""Batched ``__getitems__``."""
TARGET_SINGLE_RATIO = 50.0
"""Single-item ``__getitem__`` against the baseline."""


def load_corpus(num_drums: int, seed: int) -> tuple[list[np.ndarray], str]:
    """The built-in synthetic corpus if present, else a seeded random one (9 drums)."""
    try:
        from dataset.synthetic import default_corpus
    except ImportError:
        rng = np.random.default_rng(seed)
        lengths = rng.integers(16 * 16, 16 * 48, size=64)
        seqs = [(rng.random((n, num_drums)) < 0.15).astype(np.float32) for n in lengths]
        return seqs, f"seeded random corpus (64 sequences, p(hit)=0.15, seed {seed})"
    return default_corpus(), "built-in synthetic corpus (dataset.synthetic.default_corpus)"


def interleaved_rates(fns: dict[str, Callable[[], int]], repeats: int) -> dict[str, list[float]]:
    """Samples/s of ``repeats`` timed runs of each ``fn`` (which returns the samples it made).

    Every path runs once untimed first (the first pass over the data is slower), then the
    paths take turns, run by run, so that a change in machine load hits them all alike.
    """
    for fn in fns.values():
        fn()
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            n = fn()
            rates[name].append(n / (time.perf_counter() - start))
    return rates


def _leaves(m: dict) -> dict[tuple, torch.Tensor]:
    """The nested metrics dict as ``{(level, [section,] name): tensor}``."""
    out = {}
    for level, part in m.items():
        items = enumerate(part) if level == "section" else [(None, part)]
        for i, d in items:
            out.update({(level, i, k): v for k, v in d.items()})
    return out


def check_agreement(
    ds: CompleteHierarchicalDrumDataset, base: SeedBaselineDataset, indices: np.ndarray
) -> float:
    """Largest absolute difference between the two implementations over ``indices``."""
    worst = 0.0
    for i in indices:
        a, b = ds[int(i)], base[int(i)]
        for k in ("step", "bar", "phrase"):
            assert torch.equal(a[k], b[k]), k
        la, lb = _leaves(a["metrics"]), _leaves(b["metrics"])
        assert list(la) == list(lb), "metric keys differ"
        for k, v in la.items():
            assert v.shape == lb[k].shape, k
            diff = float((v - lb[k]).abs().max()) if v.numel() else 0.0
            if not diff <= 1e-5 * max(1.0, float(v.abs().max())):
                raise AssertionError(f"baseline disagrees on {k} at sample {i}: {diff}")
            worst = max(worst, diff)
    return worst


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmRSS``) or its peak (``VmHWM``), MiB (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def groove_part(
    midi_dir: str, npz_dir: str | None, seq_len: int, samples: int, baseline_samples: int,
    repeats: int, seed: int,
) -> dict:  # fmt: skip
    """Memory and single-item throughput on the Groove subset (run in a fresh process)."""
    from dataset.midi import convert_folder

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if npz_dir is None:
            start = time.perf_counter()
            report = convert_folder(midi_dir, tmp)
            convert = {"files": len(report.converted), "failed": len(report.failed),
                       "seconds": time.perf_counter() - start}  # fmt: skip
            npz_dir = tmp
        else:
            convert = {"reused": npz_dir}
        rss = {"start": _rss_mb()}
        ds = CompleteHierarchicalDrumDataset(npz_dir, seq_len)
        rss["dataset"] = _rss_mb()
        for i in range(len(ds.sequences)):
            ds.sequence_metrics(i)
        rss["song_metrics"] = _rss_mb()
        start = time.perf_counter()
        first = np.searchsorted(ds.sample_indices[:, 0], np.arange(len(ds.sequences)))
        for i in first:  # one window per file: builds every file's tables
            ds[int(i)]
        build_s = time.perf_counter() - start
        rss["window_tables"] = _rss_mb()
        table_bytes = ds.tables_nbytes
        base = SeedBaselineDataset(ds.sequences, seq_len)
        rng = np.random.default_rng(seed)
        indices = rng.integers(0, len(ds), size=samples)
        base_indices = indices[:baseline_samples]
        for s in {int(ds.sample_indices[i, 0]) for i in base_indices}:
            base.song_metrics(s)

        def per_item() -> int:
            for i in indices:
                ds[int(i)]
            return len(indices)

        def baseline() -> int:
            for i in base_indices:
                base[int(i)]
            return len(base_indices)

        rates = interleaved_rates({"__getitem__": per_item, "baseline": baseline}, repeats)
        rss["peak"] = _rss_mb("VmHWM")
    best = {k: max(v) for k, v in rates.items()}
    return {
        "midi_dir": midi_dir,
        "conversion": convert,
        "num_sequences": len(ds.sequences),
        "total_steps": int(ds.lengths.sum()),
        "num_samples_in_dataset": len(ds),
        "corpus_mib": sum(s.nbytes for s in ds.sequences) / 2**20,
        "window_tables_mib": table_bytes / 2**20,
        "window_tables_build_s": build_s,
        "rss_mib": rss,
        "rss_mib_tables_delta": rss["window_tables"] - rss["song_metrics"],
        "samples_per_s": best["__getitem__"],
        "baseline_samples_per_s": best["baseline"],
        "vs_baseline": best["__getitem__"] / best["baseline"],
        "runs_samples_per_s": rates,
    }


def run_groove(args: argparse.Namespace) -> dict:
    """:func:`groove_part` in a fresh process, or why it is skipped."""
    if not args.groove:
        return {"skipped": "--groove '' was given"}
    if args.groove_npz is None and not Path(args.groove).is_dir():
        return {"skipped": f"the Groove MIDI subset is not on this machine ({args.groove} is "
                           "not a folder): memory and Groove throughput not measured"}  # fmt: skip
    npz = None if args.groove_npz is None else str(args.groove_npz)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(
            groove_part,
            (str(args.groove), npz, args.seq_len, args.samples, args.baseline_samples,
             args.repeats, args.seed),
        )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--samples", type=int, default=2048, help="samples per timed run")
    parser.add_argument("--baseline-samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--augment", action="store_true", help="roll windows (both sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--groove", default=str(GROOVE), help="Groove MIDI folder ('' to skip the Groove part)"
    )
    parser.add_argument(
        "--groove-npz",
        type=Path,
        default=None,
        help="already converted .npz files of it (skips the conversion)",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    seqs, corpus_name = load_corpus(9, args.seed)
    ds = CompleteHierarchicalDrumDataset(
        None, args.seq_len, sequences=seqs, augment=args.augment, seed=args.seed
    )
    base = SeedBaselineDataset(seqs, args.seq_len, augment=args.augment, seed=args.seed)
    assert len(base) == len(ds)
    rng = np.random.default_rng(args.seed)
    indices = rng.integers(0, len(ds), size=args.samples)
    base_indices = indices[: args.baseline_samples]

    for i in range(len(ds.sequences)):  # song metrics and window tables: once per file, untimed
        ds.sequence_metrics(i)
        base.song_metrics(i)
        ds[int(np.searchsorted(ds.sample_indices[:, 0], i))]
    max_diff = check_agreement(ds, base, indices[:8])
    ds[0]  # warm imports

    def per_item() -> int:
        for i in indices:
            ds[int(i)]
        return len(indices)

    def batched() -> int:
        for s in range(0, len(indices), args.batch_size):
            ds.__getitems__(indices[s : s + args.batch_size].tolist())
        return len(indices)

    def loader() -> int:
        for s in range(0, len(indices), args.batch_size):
            collate_drum_batch(ds.__getitems__(indices[s : s + args.batch_size].tolist()))
        return len(indices)

    def baseline() -> int:
        for i in base_indices:
            base[int(i)]
        return len(base_indices)

    paths = {
        "__getitem__": per_item,
        f"__getitems__ (batch {args.batch_size})": batched,
        f"__getitems__ + collate (batch {args.batch_size})": loader,
        "seed baseline __getitem__": baseline,
    }
    rows = {
        name: {"samples_per_s": max(rates), "runs_samples_per_s": rates}
        for name, rates in interleaved_rates(paths, args.repeats).items()
    }
    base_rate = rows["seed baseline __getitem__"]["samples_per_s"]
    for row in rows.values():
        row["vs_baseline"] = row["samples_per_s"] / base_rate
    batched_rate = rows[f"__getitems__ (batch {args.batch_size})"]["samples_per_s"]
    single_ratio = rows["__getitem__"]["vs_baseline"]
    groove = run_groove(args)

    result = {
        "benchmark": "dataset_throughput",
        "corpus": corpus_name,
        "num_sequences": len(seqs),
        "num_drums": ds.num_drums,
        "num_samples_in_dataset": len(ds),
        "seq_len": args.seq_len,
        "augment": args.augment,
        "timed_samples": {"dataset": len(indices), "baseline": len(base_indices)},
        "repeats": args.repeats,
        "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": 1},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "baseline_max_abs_diff": max_diff,
        "results": rows,
        "targets": {
            "vs_baseline": TARGET_RATIO,
            "samples_per_s": TARGET_SAMPLES_PER_S,
            "met_vs_baseline": batched_rate / base_rate >= TARGET_RATIO,
            "met_samples_per_s": batched_rate >= TARGET_SAMPLES_PER_S,
            "single_vs_baseline": TARGET_SINGLE_RATIO,
            "met_single_vs_baseline": single_ratio >= TARGET_SINGLE_RATIO,
        },
        "groove": groove,
    }
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


def print_table(result: dict) -> None:
    title = (
        f"Dataset throughput, seq_len={result['seq_len']}, {result['num_drums']} drums, "
        f"1 thread ({result['corpus']})"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        for name, row in result["results"].items():
            print(f"  {name:40s} {row['samples_per_s']:10.0f} /s  x{row['vs_baseline']:.1f}")
    else:
        table = Table(title=title)
        table.add_column("path")
        table.add_column("samples/s", justify="right")
        table.add_column("vs baseline", justify="right")
        for name, row in result["results"].items():
            table.add_row(name, f"{row['samples_per_s']:,.0f}", f"{row['vs_baseline']:.1f}x")
        Console().print(table)
    t = result["targets"]

    def met(flag: bool) -> str:
        return "met" if flag else "NOT met"

    print(
        f"targets: __getitem__ >= {t['single_vs_baseline']:.0f}x baseline: "
        f"{met(t['met_single_vs_baseline'])}; batched >= {t['vs_baseline']:.0f}x baseline: "
        f"{met(t['met_vs_baseline'])}, >= {t['samples_per_s']:,.0f} samples/s: "
        f"{met(t['met_samples_per_s'])}"
    )
    g = result["groove"]
    if "skipped" in g:
        print(f"Groove: skipped: {g['skipped']}")
    else:
        r = g["rss_mib"]
        print(
            f"Groove ({g['num_sequences']} files, {g['total_steps']:,} steps, "
            f"{g['num_samples_in_dataset']:,} windows, corpus {g['corpus_mib']:.1f} MiB): "
            f"__getitem__ {g['samples_per_s']:,.0f}/s = {g['vs_baseline']:.1f}x baseline; "
            f"RSS {r['song_metrics']:.0f} MiB -> {r['window_tables']:.0f} MiB with the window "
            f"tables ({g['window_tables_mib']:.1f} MiB, built in "
            f"{g['window_tables_build_s']:.1f} s), peak {r['peak']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
