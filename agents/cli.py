"""The ``drum-env`` command: convert, inspect, train and benchmark from the shell.

Every subcommand is a thin layer over a library function; run ``drum-env SUBCOMMAND --help``.
Heavy imports (torch, SB3, optuna, matplotlib) happen inside the subcommands that need them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]


def _cmd_convert(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm import tqdm

    from dataset.midi import convert_folder

    midi_dir = Path(args.midi_dir)
    files = sorted(p for p in midi_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    with tqdm(total=len(files), unit="file", desc="convert", disable=args.quiet) as bar:
        report = convert_folder(
            midi_dir, args.out_dir, steps_per_bar=args.steps_per_bar,
            pitch_table=args.pitch_table, on_progress=lambda _path: bar.update(1),
        )  # fmt: skip
    console = Console(stderr=True)
    console.print(
        f"converted {len(report.converted)} file(s) to {args.out_dir}; "
        f"{len(report.failed)} failed; {report.dropped_notes} note(s) outside the pitch table"
    )
    for path, reason in report.failed:
        console.print(f"[yellow]skipped[/] {path}: {reason}")
    return 0 if report.converted else 1


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


def _cmd_stats(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dataset.hierarchical import CompleteHierarchicalDrumDataset

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
    )  # fmt: skip
    summary = ds.summary(bpm=args.bpm)
    Console().print(_summary_table(summary, title))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``drum-env`` (every subcommand)."""
    parser = argparse.ArgumentParser(
        prog="drum-env", description="Reinforcement learning on drum sequences."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert a folder of MIDI drum files to .npz sequences")
    p.add_argument("midi_dir", help="folder searched recursively for .mid / .midi files")
    p.add_argument("out_dir", help="folder to write .npz files to (mirrors the input tree)")
    p.add_argument("--steps-per-bar", type=int, default=16, help="grid resolution (16ths)")
    p.add_argument(
        "--pitch-table", choices=("default", "roland"), default="default",
        help="General MIDI pitch -> 9 drum classes mapping (see dataset/midi.py)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("stats", help="print a summary table of an .npz corpus")
    p.add_argument("data", nargs="?", default=None, help="npz folder (default: built-in corpus)")
    p.add_argument("--seq-len", type=int, default=512, help="window length for sample counts")
    p.add_argument("--steps-per-bar", type=int, default=16)
    p.add_argument("--bars-per-phrase", type=int, default=4)
    p.add_argument("--bpm", type=float, default=None, help="tempo, to report hours")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    p.set_defaults(func=_cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``drum-env`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:  # bad input: one clear line, no traceback
        print(f"drum-env {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
