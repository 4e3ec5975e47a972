"""What each ``drum-env`` subcommand does with its config: run the library, print the result.

:mod:`agents.cli` turns a command line into the command's config (tyro, from the config
dataclasses); :data:`RUNNERS` maps each subcommand to the function that runs it and prints what
a user needs to see (a table of the result, the files written). The two data commands' configs
(:class:`ConvertConfig`, :class:`StatsConfig`) live here; every other command's config lives
beside the library function it configures.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agents.task import RunConfig, TaskConfig

__all__ = [
    "PROG",
    "ConvertConfig",
    "StatsConfig",
    "RUNNERS",
    "run_convert",
    "run_stats",
    "run_pretrain",
    "run_train",
    "run_baseline",
    "run_generate",
    "run_benchmark",
    "run_tune",
    "run_report",
]

PROG = "drum-env"
"""The command's name, as errors and ``--version`` print it."""


@dataclass(frozen=True)
class ConvertConfig:
    """Convert a folder of MIDI drum files to .npz sequences."""

    midi_dir: str
    """Folder searched recursively for .mid / .midi files."""
    out_dir: str
    """Folder to write .npz files to (mirrors the input tree)."""
    steps_per_bar: int = TaskConfig.steps_per_bar
    """Grid resolution: steps in one bar (16: 16th notes in 4/4)."""
    pitch_table: Literal["default", "roland"] = "default"
    """General MIDI pitch -> 9 drum classes mapping (see dataset/midi.py)."""
    progress: bool = RunConfig.progress
    """Show a progress bar."""


@dataclass(frozen=True)
class StatsConfig:
    """Print a summary table of an .npz corpus."""

    data: str | None = None
    """Folder of .npz sequences; ``None``: the built-in synthetic corpus."""
    seq_len: int = TaskConfig.seq_len
    """Window length (steps) for the sample counts: the task's (``TaskConfig.seq_len``)."""
    steps_per_bar: int = TaskConfig.steps_per_bar
    """Steps in one bar."""
    bars_per_phrase: int = TaskConfig.bars_per_phrase
    """Bars in one phrase."""
    bpm: float | None = None
    """Tempo, to report the corpus's duration in hours; ``None``: not shown."""
    on_error: Literal["raise", "skip"] = "raise"
    """An unreadable file stops the command (``raise``) or is skipped (``skip``)."""


def run_convert(args: ConvertConfig) -> int:
    """Convert a MIDI folder (``drum-env convert``); 0, or ``ValueError`` if none converts."""
    from rich.console import Console
    from tqdm import tqdm

    from dataset.midi import convert_folder

    midi_dir = Path(args.midi_dir)
    bars: list[Any] = []  # the progress bar, made once the folders have been checked

    def progress(_path: Path) -> None:
        if not bars:
            files = [p for p in midi_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi")]
            bars.append(tqdm(total=len(files), unit="file", desc="convert",
                             disable=not args.progress))  # fmt: skip
        bars[0].update(1)

    try:
        report = convert_folder(
            midi_dir, args.out_dir, steps_per_bar=args.steps_per_bar,
            pitch_table=args.pitch_table, on_progress=progress,
        )  # fmt: skip
    finally:
        for bar in bars:
            bar.close()
    if not report.converted:  # nothing usable: bad input, exit 2 with one line
        shown = "; ".join(f"{path}: {' '.join(str(reason).split())}"
                          for path, reason in report.failed[:3])  # fmt: skip
        more = f"; and {len(report.failed) - 3} more" if len(report.failed) > 3 else ""
        raise ValueError(
            f"none of the {len(report.failed)} MIDI file(s) under {midi_dir} could be "
            f"converted: {shown}{more}"
        )
    # soft_wrap: rich breaks no line itself, so a path stays whole in a log (a terminal still wraps)
    console = Console(stderr=True, soft_wrap=True)
    console.print(
        f"converted {len(report.converted)} file(s) to {args.out_dir}; "
        f"{len(report.failed)} failed; {report.dropped_notes} note(s) outside the pitch table"
    )
    for path, reason in report.failed:
        console.print(f"[yellow]skipped[/] {path}: {reason}", markup=True, highlight=False)
    for path, reason in report.warned:
        console.print(f"[yellow]warning[/] {path}: {reason}", markup=True, highlight=False)
    return 0


def _summary_table(summary: dict, title: str):  # -> rich.table.Table
    from rich.table import Table

    from dataset.midi import DRUM_NAMES

    table = Table(title=title)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key == "drum_density":
            names = DRUM_NAMES if len(value) == len(DRUM_NAMES) else range(len(value))
            for name, v in zip(names, value):
                table.add_row(f"density/{name}", f"{v:.3f}")
        elif isinstance(value, float):
            table.add_row(key, f"{value:.3f}")
        else:
            table.add_row(key, str(value))
    return table


def run_stats(args: StatsConfig) -> int:
    """Print the summary table of a corpus (``drum-env stats``)."""
    from rich.console import Console

    from dataset.hierarchical import CompleteHierarchicalDrumDataset
    from dataset.midi import DRUM_NAMES

    if args.bpm is not None:  # before any work: the tempo is bounded where it is read
        from dataset.io import check_bpm

        check_bpm(args.bpm, "--bpm")
    if args.data is None:
        from dataset.synthetic import ensure_default_corpus

        folder = ensure_default_corpus()
        title = f"built-in synthetic corpus ({folder})"
    else:
        folder = Path(args.data)
        title = str(folder)
    ds = CompleteHierarchicalDrumDataset(
        folder, seq_len=args.seq_len, steps_per_bar=args.steps_per_bar,
        bars_per_phrase=args.bars_per_phrase, on_error=args.on_error, as_numpy=True,
        velocity_metrics=True,
    )  # fmt: skip
    summary = ds.summary(bpm=args.bpm)
    # per-drum velocity rows: mean and spread of each drum's hit velocities (0 without hits)
    mean, spread = summary.pop("velocity_mean"), summary.pop("velocity_spread")
    table = _summary_table(summary, title)
    names = DRUM_NAMES if len(mean) == len(DRUM_NAMES) else range(len(mean))
    for name, m, s in zip(names, mean, spread):
        table.add_row(f"velocity/{name}", f"{m:.3f} (spread {s:.3f})")
    Console().print(table)
    return 0


def _print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def _return_rows(result: Any, when: str) -> list[tuple[str, str]]:
    """The mean episode return and raw song term of a training result, as table rows."""
    return [(f"mean episode return ({when})", f"{result.mean_episode_return:.3f}"),
            (f"mean song term, raw ({when})", f"{result.mean_song_raw:.4f}")]  # fmt: skip


def run_pretrain(config: Any) -> int:
    """Pretrain and print the result (``drum-env pretrain``)."""
    from agents.training.pretrain import pretrain

    result = pretrain(config)
    _print_rows("pretraining", [
        ("policy", str(result.policy_path)), ("optimiser steps", str(result.steps)),
        ("final loss (cross-entropy per drum over "
         + ("hit / rest)" if not config.velocity_levels else f"{config.velocity_levels + 1} "
            "classes)"), f"{result.final_loss:.4f}"),
    ])  # fmt: skip
    return 0


def run_train(config: Any) -> int:
    """Train with PPO and print the result (``drum-env train``)."""
    from agents.training.ppo import train

    result = train(config)
    rows = [("policy", str(result.policy_path)), ("checkpoint", str(result.checkpoint_path)),
            ("env steps", str(result.global_step)), ("iterations", str(result.iterations))]
    _print_rows("PPO training", rows + _return_rows(result, "last iterations"))
    return 0


def run_baseline(config: Any) -> int:
    """Train an SB3 baseline and print the result (``drum-env baseline``)."""
    from agents.baselines.sb3 import train_baseline

    result = train_baseline(config)
    rows = [("model", str(result.model_path)), ("env steps", str(result.global_step))]
    _print_rows(f"Stable-Baselines3 {config.algo}", rows + _return_rows(result, "evaluation"))
    return 0


def run_generate(config: Any) -> int:
    """Compose takes and print their returns (``drum-env generate``)."""
    from agents.evaluation.generate import generate

    result = generate(config)
    rows = [
        (f"take {i}", f"return {r:.3f}, song term {s:.4f}")
        for i, (r, s) in enumerate(zip(result.rollouts.returns, result.rollouts.song_raw))
    ]
    rows.append(("files", f"{len(result.files)} in {config.out}"))
    _print_rows(f"generated (returns under shaping {config.shaping})", rows)
    return 0


def run_benchmark(config: Any) -> int:
    """Run the benchmark and print its table (``drum-env benchmark``)."""
    from agents.evaluation.benchmark import run_benchmark

    result = run_benchmark(config)
    print(result.md_path.read_text(encoding="utf-8"))
    print(f"wrote {result.csv_path}, {result.md_path}, {result.png_path}, {result.json_path} "
          f"({result.ran} run(s), {result.wall_s:.0f} s)")  # fmt: skip
    return 0


def run_tune(config: Any) -> int:
    """Run an Optuna study and print its best trial (``drum-env tune``); 1 if stopped early."""
    from agents.tune import run_study

    result = run_study(config)
    print(f"study {config.study_name!r} in {result.storage}: {result.trials_run} trial(s) run "
          f"now; {result.complete} complete, {result.pruned} pruned, {result.failed} failed in "
          f"the study ({result.wall_s:.0f} s)")  # fmt: skip
    if result.best_trial is not None:
        print(f"best: trial {result.best_trial}, validation headline {result.best_value:.4f}, "
              f"{json.dumps(result.best_params)}")  # fmt: skip
        print(f"wrote {result.best_config_path}; train it with: {PROG} train --config "
              f"{result.best_config_path}")  # fmt: skip
    hidden = "***" in result.storage
    print(f"dashboard: optuna-dashboard '{result.storage}'"
          + (" (with the password in place of ***)" if hidden else ""))  # fmt: skip
    if result.stopped:
        print(f"{PROG} tune: stopped early: {result.stopped}", file=sys.stderr)
        return 1
    return 0


def run_report(config: Any) -> int:
    """Write a listening page and say where it is (``drum-env report``)."""
    from agents.evaluation.report import write_report

    result = write_report(config)
    print(f"wrote {result.page} ({result.primers} primer(s); the real continuation and "
          f"{len(result.agents)} agent(s): {', '.join(result.agents) or 'none'}); open "
          f"{result.page.resolve().as_uri()} in a browser")  # fmt: skip
    return 0


RUNNERS: dict[str, Callable[[Any], int]] = {
    "convert": run_convert, "stats": run_stats, "pretrain": run_pretrain, "train": run_train,
    "baseline": run_baseline, "generate": run_generate, "benchmark": run_benchmark,
    "tune": run_tune, "report": run_report,
}  # fmt: skip
"""The runner of each subcommand: its config -> the exit status."""
