"""The ``drum-env`` command: convert, inspect, train and benchmark from the shell.

Every subcommand is a thin layer over a library function; run ``drum-env SUBCOMMAND --help``.
Heavy imports (torch, SB3, optuna, matplotlib) happen inside the subcommands that need them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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


# ----------------------------------------------------------------------------- config plumbing


def _field_type(annotation: str, default: object):
    """The argparse type of a dataclass field, from its annotation string and default."""
    text = str(annotation).replace("None", "").replace("|", "").strip()
    if text.startswith(("dict", "tuple", "Mapping")) or isinstance(default, dict):
        return json.loads  # e.g. --weights '{"step": 0.5}'
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if text == name:
            return kind
    return type(default) if default is not None else str


def _add_config_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()):
    """One ``--field-name`` option per field of a config dataclass (defaults from the class)."""
    group = parser.add_argument_group(f"{cls.__name__} (defaults shown)")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        flag = "--" + f.name.replace("_", "-")
        kind = _field_type(f.type, default)
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=f"default: {default}")  # fmt: skip
        else:
            group.add_argument(flag, type=kind, default=None, metavar=f.name.upper(),
                               help=f"default: {default}")  # fmt: skip


def _config_from_args(cls: type, args: argparse.Namespace, base: dict | None = None):
    """Build ``cls`` from a JSON ``--config`` file (if any) overridden by the given options."""
    values = dict(base or {})
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config: no such file {str(path)!r}")
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config {str(path)!r} is not valid JSON: {exc}") from None
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(loaded) - names)
        if unknown:
            raise ValueError(
                f"--config {str(path)!r} has unknown key(s) {unknown}; valid keys: {sorted(names)}"
            )
        values.update(loaded)
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return cls(**values)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from agents.pretrain import PretrainConfig, pretrain

    result = pretrain(_config_from_args(PretrainConfig, args))
    _print_rows("pretraining", [
        ("policy", str(result.policy_path)), ("optimiser steps", str(result.steps)),
        ("final loss (BCE per drum)", f"{result.final_loss:.4f}"),
    ])  # fmt: skip
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from agents.ppo import PPOConfig, train

    result = train(_config_from_args(PPOConfig, args))
    _print_rows("PPO training", [
        ("policy", str(result.policy_path)), ("checkpoint", str(result.checkpoint_path)),
        ("env steps", str(result.global_step)), ("iterations", str(result.iterations)),
        ("mean episode return (last iterations)", f"{result.mean_episode_return:.3f}"),
        ("mean song term, raw (last iterations)", f"{result.mean_song_raw:.4f}"),
    ])  # fmt: skip
    return 0


def _cmd_baseline(args: argparse.Namespace) -> int:
    from agents.sb3 import BaselineConfig, train_baseline

    result = train_baseline(_config_from_args(BaselineConfig, args))
    _print_rows(f"Stable-Baselines3 {args.algo or 'ppo'}", [
        ("model", str(result.model_path)), ("env steps", str(result.global_step)),
        ("mean episode return (evaluation)", f"{result.mean_episode_return:.3f}"),
        ("mean song term, raw (evaluation)", f"{result.mean_song_raw:.4f}"),
    ])  # fmt: skip
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from agents.generate import generate

    env_kwargs = {"seq_len": args.seq_len, "prompt_bars": args.prompt_bars, "data": args.data,
                  "shaping": "hierarchical-raw"}  # returns on one fixed scale
    result = generate(args.checkpoint, args.out, num=args.num, env_kwargs=env_kwargs,
                      seed=args.seed, deterministic=args.deterministic)  # fmt: skip
    rows = [(f"take {i}", f"raw return {r:.3f}, song term {s:.4f}")
            for i, (r, s) in enumerate(zip(result.rollouts.returns, result.rollouts.song_raw))]
    rows.append(("files", f"{len(result.files)} in {args.out}"))
    _print_rows("generated", rows)
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from agents.benchmark import config_from_args, run_benchmark

    command = "drum-env benchmark " + " ".join(sys.argv[2:])
    print(run_benchmark(config_from_args(args, command=command)).md_path.read_text())
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from agents.tune import run_from_args

    return run_from_args(args)


def _print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``drum-env``.

    Args:
        command: the subcommand about to run; the config options of the training subcommands
            (which import torch) are only built for that one. ``None`` builds them all.
    """
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

    def wanted(name: str) -> bool:
        return command is None or command == name

    p = sub.add_parser("pretrain", help="supervised next-step pretraining of the policy")
    p.add_argument("--config", help="JSON file of PretrainConfig fields (options override it)")
    if wanted("pretrain"):
        from agents.pretrain import PretrainConfig

        _add_config_args(p, PretrainConfig)
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("train", help="PPO with the custom policy on the native vector env")
    p.add_argument("--config", help="JSON file of PPOConfig fields, e.g. from `drum-env tune`")
    if wanted("train"):
        from agents.ppo import PPOConfig

        _add_config_args(p, PPOConfig)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("baseline", help="Stable-Baselines3 PPO or A2C on the same env")
    p.add_argument("--config", help="JSON file of BaselineConfig fields")
    if wanted("baseline"):
        from agents.sb3 import BaselineConfig

        _add_config_args(p, BaselineConfig, skip=("extra",))
    p.set_defaults(func=_cmd_baseline)

    p = sub.add_parser("generate", help="compose with a policy: .mid, .npz and .png per take")
    p.add_argument("checkpoint", help="policy.pt (or a PPO checkpoint.pt)")
    p.add_argument("--out", required=True, help="folder to write the takes to")
    p.add_argument("--num", type=int, default=4, help="number of takes")
    p.add_argument("--data", default=None, help="npz folder of primers (default: built-in)")
    p.add_argument("--seq-len", type=int, default=64, help="steps per take, primer included")
    p.add_argument("--prompt-bars", type=int, default=1, help="bars of primer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="hit when p > 0.5")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("benchmark", help="reward shapings x agents, scored on held-out data")
    from agents.benchmark import add_arguments

    add_arguments(p)
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("tune", help="Optuna study over reward weights and PPO hyperparameters")
    from agents.tune import add_arguments as add_tune_arguments

    add_tune_arguments(p)  # brings its own --config
    p.set_defaults(func=_cmd_tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``drum-env`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:  # bad input: one clear line, no traceback
        print(f"drum-env {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
