"""The ``drum-env`` command: convert, inspect, train, compose, benchmark and tune from the shell.

Every subcommand is a thin layer over a library function; run ``drum-env SUBCOMMAND --help``.

* ``convert``, ``stats``: the data tools, with their own few options.
* ``pretrain``, ``train``, ``baseline``, ``generate``, ``benchmark``, ``tune``: one option per
  field of the command's config dataclass (:data:`CONFIGS`), made by
  :func:`add_config_options`: ``--field-name``, its help the field's docstring, its default
  the config's. A setting has the same option in every command because it is the same field
  (the task settings all come from :class:`~agents.task.TaskConfig`). ``--config FILE.json``
  gives any fields as a JSON object; options on the command line override the file; the config
  is then built with ``Config(**values)``, so its own validation decides.

Option values: ``--flag`` / ``--no-flag`` for booleans; ``none`` for an optional field's
``None``; lists as ``a,b,c``, ``a b c`` or JSON; mappings (``--weights``, ``--extra``) as JSON
or ``key=value,...``; ``--sections`` as JSON. Allowed values (:data:`CHOICES`) are listed in the
help and enforced.

Errors: a bad argument, a bad config value or a refused run folder print one line,
``drum-env SUBCOMMAND: error: ...``, and exit with status 2 (no usage block, no traceback);
Ctrl-C exits with 130. Heavy imports (torch, SB3, optuna, matplotlib) happen only for the
subcommand that runs.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import importlib
import inspect
import json
import re
import shlex
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from agents.extras import EXTRAS, extra_for

__all__ = [
    "PROG",
    "CHOICES",
    "CONFIGS",
    "POSITIONAL",
    "SKIPPED",
    "ALIASES",
    "main",
    "build_parser",
    "parse_config",
    "add_config_options",
    "field_docs",
    "clean_doc",
    "read_config_file",
    "version",
]

PROG = "drum-env"
"""The command's name, as errors and ``--version`` print it."""

CHOICES: dict[str, tuple[str, str]] = {
    "shaping": ("drum_env.rewards", "SHAPINGS"),
    "reward_norm": ("agents.training.trainer_reward", "REWARD_NORMS"),
    "policy_kind": ("agents.policies.policy", "POLICY_KINDS"),
    "algo": ("agents.baselines.sb3", "ALGOS"),
    "device": ("agents.training.distributed", "DEVICES"),
    "shapings": ("agents.evaluation.benchmark", "SHAPING_NAMES"),
    "agents": ("agents.evaluation.benchmark", "AGENTS"),
    "weight_terms": ("drum_env.rewards", "TERMS"),
    "pruner": ("agents.tune", "PRUNERS"),
}
"""Allowed values of config fields, by field name: the ``(module, attribute)`` of the tuple (or
mapping) that holds them, imported only when a parser with that field is built. A list field
(``shapings``) checks each element. ``device`` is checked by
:func:`agents.distributed.check_device` (``cuda:N`` takes any index)."""


class _Config(NamedTuple):
    module: str
    name: str
    help: str


CONFIGS: dict[str, _Config] = {
    "pretrain": _Config("agents.training.pretrain", "PretrainConfig",
                        "supervised next-step pretraining of the policy"),
    "train": _Config("agents.training.ppo", "PPOConfig",
                     "PPO with the custom policy on the native vector env"),
    "baseline": _Config("agents.baselines.sb3", "BaselineConfig",
                        "Stable-Baselines3 PPO or A2C on the same env"),
    "generate": _Config("agents.evaluation.generate", "GenerateConfig",
                        "compose with a policy: .mid, .npz and .png per take"),
    "benchmark": _Config("agents.evaluation.benchmark", "BenchmarkConfig",
                         "reward shapings x agents, scored on held-out data"),
    "tune": _Config("agents.tune", "TuneConfig",
                    "Optuna study over reward weights and PPO hyperparameters"),
}  # fmt: skip
"""The subcommands made from a config dataclass: its module and class, and a one-line help."""

POSITIONAL: dict[str, tuple[str, ...]] = {"generate": ("policy",)}
"""Config fields given as positional arguments, per subcommand."""

SKIPPED: dict[str, tuple[str, ...]] = {"benchmark": ("command",)}
"""Config fields that are no option, per subcommand (the benchmark's ``command`` is the
shell-quoted command line, filled in by the CLI)."""

ALIASES: dict[str, dict[str, tuple[str, ...]]] = {"benchmark": {"tuned_config": ("--tuned",)}}
"""Further option strings of a field, per subcommand (kept from earlier versions)."""

_CONFIG_DEST = "_config_file"  # argparse dests of the CLI's own options: never a field name
_BUDGET_DEST = "_budget"


# ----------------------------------------------------------------------------- errors


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), status 2."""

    def error(self, message: str) -> typing.NoReturn:
        """Print ``PROG SUBCOMMAND: error: MESSAGE`` as one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def _one_line(text: object) -> str:
    return " ".join(str(text).split("\n")).strip()


# ----------------------------------------------------------------------------- docstrings

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`([^`]*)`")


def _role_text(match: re.Match) -> str:
    text = match.group(1)
    shown = re.match(r"^(.*?)\s*<[^>]*>$", text)  # :ref:`title <target>` -> title
    if shown:
        return shown.group(1)
    if text.startswith("~"):
        return text[1:].rsplit(".", 1)[-1]
    return text


def clean_doc(text: str) -> str:
    """A docstring as one plain line: whitespace collapsed, reStructuredText markup dropped.

    >>> clean_doc("The :class:`~agents.ppo.PPOConfig` of ``seq_len``   steps.")
    'The PPOConfig of seq_len steps.'
    """
    text = _ROLE.sub(_role_text, text)
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return " ".join(text.split())


@functools.cache
def _declared_docs(klass: type) -> dict[str, str]:
    """The docstrings (string literals right below the field) of the fields ``klass`` declares."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return {}
    node = next((n for n in ast.walk(ast.parse(source))
                 if isinstance(n, ast.ClassDef) and n.name == klass.__name__), None)  # fmt: skip
    if node is None:
        return {}
    docs = {}
    for stmt, after in zip(node.body, node.body[1:]):
        if (
            isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):  # fmt: skip
            docs[stmt.target.id] = after.value.value
    return docs


def _declaring(cls: type, name: str) -> list[type]:
    """The classes of ``cls.__mro__`` that declare field ``name``, most derived first."""
    return [k for k in cls.__mro__ if name in vars(k).get("__annotations__", {})]


def field_docs(cls: type) -> dict[str, str]:
    """Every field's docstring, cleaned (:func:`clean_doc`), inherited fields included.

    A field redeclared in a subclass takes the subclass's docstring (if it has one).

    Args:
        cls: a dataclass.

    Returns:
        field name -> one line of text ("" for a field without a docstring).
    """
    docs = {}
    for f in dataclasses.fields(cls):
        found = (_declared_docs(k).get(f.name) for k in _declaring(cls, f.name))
        docs[f.name] = clean_doc(next((d for d in found if d), ""))
    return docs


# ----------------------------------------------------------------------------- option types


def _choices_of(name: str) -> tuple[str, ...] | None:
    if name not in CHOICES:
        return None
    module, attr = CHOICES[name]
    return tuple(getattr(importlib.import_module(module), attr))


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _is_none(text: str) -> bool:
    return text.strip().lower() == "none"


def _scalar(kind: type, optional: bool, name: str) -> Callable[[str], Any]:
    """The argparse ``type`` of an int / float / str field (``none`` -> None when optional)."""
    words = {int: "an integer", float: "a number", str: "a string"}

    def parse(text: str) -> Any:
        if optional and _is_none(text):
            return None
        try:
            return kind(text)
        except ValueError:
            also = " or none" if optional else ""
            raise argparse.ArgumentTypeError(
                f"expected {words.get(kind, kind.__name__)}{also}, got {text!r}"
            ) from None

    parse.__name__ = name
    return parse


def _device(text: str) -> str:
    from agents.training.distributed import check_device

    try:
        check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _mapping(optional: bool) -> Callable[[str], Any]:
    """A JSON object or ``key=value,...`` (values read as JSON where they parse)."""

    def parse(text: str) -> Any:
        if optional and _is_none(text):
            return None
        if text.lstrip().startswith(("{", "[")):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
        pairs = [p for p in text.split(",") if p.strip()]
        if not pairs or not all("=" in p for p in pairs):
            raise argparse.ArgumentTypeError(
                f"expected a JSON object or key=value,... pairs, got {text!r}"
            )
        return {k.strip(): _json_value(v.strip()) for k, v in (p.split("=", 1) for p in pairs)}

    parse.__name__ = "mapping"
    return parse


def _json(optional: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if optional and _is_none(text):
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None

    parse.__name__ = "json"
    return parse


class _ListAction(argparse.Action):
    """A ``tuple[X, ...]`` field from ``a,b,c``, ``a b c`` or a JSON list (``none``: None)."""

    def __init__(self, option_strings, dest, element=str, optional=False, allowed=None,
                 **kwargs):  # fmt: skip
        self.element, self.optional, self.allowed = element, optional, allowed
        super().__init__(option_strings, dest, nargs="+", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if self.optional and len(values) == 1 and _is_none(values[0]):
            setattr(namespace, self.dest, None)
            return
        items: list[Any] = []
        for token in values:
            if token.lstrip().startswith("["):
                try:
                    loaded = json.loads(token)
                except ValueError as exc:
                    raise argparse.ArgumentError(
                        self, f"not a JSON list ({exc}): {token!r}"
                    ) from None
                items += loaded if isinstance(loaded, list) else [loaded]
            else:
                items += [t.strip() for t in token.split(",") if t.strip()]
        out = []
        for item in items:
            try:
                out.append(self.element(item) if isinstance(item, str) else item)
            except ValueError:
                raise argparse.ArgumentError(
                    self, f"expected {self.element.__name__} values, got {item!r}"
                ) from None
        if self.allowed is not None:
            bad = [v for v in out if v not in self.allowed]
            if bad:
                raise argparse.ArgumentError(
                    self, f"invalid choice(s) {bad} (choose from {', '.join(self.allowed)})"
                )
        setattr(namespace, self.dest, tuple(out))


def _shown_default(f: dataclasses.Field) -> str | None:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return None
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        if all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            return ",".join(str(v) for v in value)
        return json.dumps(value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return str(value)


def _help(doc: str, choices: Sequence[str] | None, default: str | None, each: bool) -> str:
    text = doc or "(undocumented)"
    if choices:
        text += f" {'Each one of' if each else 'One of'}: {', '.join(map(str, choices))}."
    if default is not None:
        text += f" (default: {default})"
    return text.replace("%", "%%")


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    positional: Sequence[str] = (),
    skip: Sequence[str] = (),
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Add one option per field of config dataclass ``cls`` (inherited fields included).

    ``--field-name`` (underscores become dashes), help the field's docstring, its allowed
    values (:data:`CHOICES`) and its default; grouped by the class that declares the field. The
    options default to ``argparse.SUPPRESS``: only the options given reach the namespace (under
    the field's name), so the config's own defaults and a ``--config`` file stay in force.

    Args:
        parser: the (sub)parser.
        cls: the config dataclass.
        positional: fields given as positional arguments instead (required).
        skip: fields that get no option.
        aliases: further option strings per field name.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    groups: dict[type, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        owner = _declaring(cls, f.name)[-1]  # group with the class that introduced the field
        if f.name in positional:
            group = parser
        elif owner not in groups:
            summary = clean_doc((owner.__doc__ or "").strip().split("\n\n")[0])
            group = groups[owner] = parser.add_argument_group(
                f"{owner.__name__} options", summary.replace("%", "%%")
            )
        else:
            group = groups[owner]
        kind, optional = _split_optional(hints[f.name])
        choices = _choices_of(f.name)
        origin = typing.get_origin(kind)
        shown = None if f.name in positional else _shown_default(f)
        help_ = _help(docs[f.name], choices, shown, each=origin is tuple)
        if f.name in positional:
            names: list[str] = [f.name]
            common: dict[str, Any] = {"help": help_, "metavar": f.name.upper()}
        else:
            flag = "--" + f.name.replace("_", "-")
            names = [flag, *(aliases or {}).get(f.name, ())]
            common = {"help": help_, "dest": f.name, "default": argparse.SUPPRESS}
        if kind is bool:
            group.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
            continue
        common.setdefault("metavar", f.name.upper())
        if origin is tuple:
            args = typing.get_args(kind)
            element = args[0] if args else str
            if len(args) == 2 and args[1] is Ellipsis and element in (int, float, str):
                group.add_argument(*names, action=_ListAction, element=element,
                                   optional=optional, allowed=choices, **common)  # fmt: skip
            elif typing.get_origin(element) is tuple and typing.get_args(element)[:1] == (str,):
                group.add_argument(*names, type=_mapping(optional), **common)  # (key, value)s
            else:
                group.add_argument(*names, type=_json(optional), **common)
        elif origin in (dict, Mapping) or kind in (dict, Mapping):
            group.add_argument(*names, type=_mapping(optional), **common)
        elif f.name == "device":
            group.add_argument(*names, type=_device, **common)
        elif kind in (int, float, str):
            group.add_argument(*names, type=_scalar(kind, optional, f.name), choices=choices,
                               **common)  # fmt: skip
        else:
            group.add_argument(*names, type=_json(optional), **common)


# ----------------------------------------------------------------------------- --config


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)  # fmt: skip


def read_config_file(path: str | Path, cls: type) -> dict[str, Any]:
    """The field values of a ``--config`` file: a UTF-8 JSON object of ``cls`` field names.

    Args:
        path: the file.
        cls: the config dataclass whose fields the keys must name.

    Returns:
        the object, as a dict.

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: unreadable, not UTF-8, not JSON, not an object, or unknown keys (the message
            names the file, and the keys).
    """
    shown = repr(str(path))
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"--config: no such file {shown}") from None
    except OSError as exc:
        raise ValueError(f"--config {shown} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"--config {shown} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--config {shown} is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValueError(
            f"--config {shown} must hold a JSON object of {cls.__name__} fields, "
            f"got {_json_kind(loaded)}"
        )
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(loaded) - set(names))
    if unknown:
        raise ValueError(
            f"--config {shown} has unknown key(s) {unknown} (not {cls.__name__} fields); "
            f"valid keys: {names}"
        )
    return loaded


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    return value


def _config_class(command: str) -> type:
    spec = CONFIGS[command]
    return getattr(importlib.import_module(spec.module), spec.name)


def _config_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The ``--config`` file's values overridden by the options given (lists as tuples)."""
    values: dict[str, Any] = {}
    path = getattr(args, _CONFIG_DEST, None)
    if path is not None:
        values.update(read_config_file(path, cls))
    names = [f.name for f in dataclasses.fields(cls)]
    values.update({n: getattr(args, n) for n in names if hasattr(args, n)})
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if typing.get_origin(_split_optional(hints[name])[0]) is tuple:
            values[name] = _as_tuples(value)
    return values


def _build(cls: type, build: Callable[..., Any], values: dict[str, Any]) -> Any:
    try:
        return build(**values)
    except TypeError as exc:  # a value of a wrong type that the config's checks did not catch
        raise ValueError(f"invalid {cls.__name__}: {exc}") from exc


def _make_config(args: argparse.Namespace) -> Any:
    cls = _config_class(args.command)
    values = _config_values(args, cls)
    if args.command == "benchmark":
        if "command" in {f.name for f in dataclasses.fields(cls)}:
            values["command"] = args._command_line
        budget = getattr(args, _BUDGET_DEST, None) or "default"
        return _build(cls, functools.partial(cls.preset, budget), values)
    return _build(cls, cls, values)


# ----------------------------------------------------------------------------- commands


def _cmd_convert(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm import tqdm

    from dataset.midi import convert_folder

    midi_dir = Path(args.midi_dir)
    bars: list[Any] = []  # the progress bar, made once the folders have been checked

    def progress(_path: Path) -> None:
        if not bars:
            files = [p for p in midi_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi")]
            bars.append(tqdm(total=len(files), unit="file", desc="convert", disable=args.quiet))
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
        shown = "; ".join(f"{path}: {_one_line(reason)}" for path, reason in report.failed[:3])
        more = f"; and {len(report.failed) - 3} more" if len(report.failed) > 3 else ""
        raise ValueError(
            f"none of the {len(report.failed)} MIDI file(s) under {midi_dir} could be "
            f"converted: {shown}{more}"
        )
    console = Console(stderr=True)
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


def _cmd_stats(args: argparse.Namespace) -> int:
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


def _run_pretrain(config: Any) -> int:
    from agents.training.pretrain import pretrain

    result = pretrain(config)
    _print_rows("pretraining", [
        ("policy", str(result.policy_path)), ("optimiser steps", str(result.steps)),
        ("final loss (cross-entropy per drum over "
         + ("hit / rest)" if not config.velocity_levels else f"{config.velocity_levels + 1} "
            "classes)"), f"{result.final_loss:.4f}"),
    ])  # fmt: skip
    return 0


def _run_train(config: Any) -> int:
    from agents.training.ppo import train

    result = train(config)
    _print_rows("PPO training", [
        ("policy", str(result.policy_path)), ("checkpoint", str(result.checkpoint_path)),
        ("env steps", str(result.global_step)), ("iterations", str(result.iterations)),
        ("mean episode return (last iterations)", f"{result.mean_episode_return:.3f}"),
        ("mean song term, raw (last iterations)", f"{result.mean_song_raw:.4f}"),
    ])  # fmt: skip
    return 0


def _run_baseline(config: Any) -> int:
    from agents.baselines.sb3 import train_baseline

    result = train_baseline(config)
    _print_rows(f"Stable-Baselines3 {config.algo}", [
        ("model", str(result.model_path)), ("env steps", str(result.global_step)),
        ("mean episode return (evaluation)", f"{result.mean_episode_return:.3f}"),
        ("mean song term, raw (evaluation)", f"{result.mean_song_raw:.4f}"),
    ])  # fmt: skip
    return 0


def _run_generate(config: Any) -> int:
    from agents.evaluation.generate import generate

    result = generate(config)
    rows = [
        (f"take {i}", f"return {r:.3f}, song term {s:.4f}")
        for i, (r, s) in enumerate(zip(result.rollouts.returns, result.rollouts.song_raw))
    ]
    rows.append(("files", f"{len(result.files)} in {config.out}"))
    _print_rows(f"generated (returns under shaping {config.shaping})", rows)
    return 0


def _run_benchmark(config: Any) -> int:
    from agents.evaluation.benchmark import run_benchmark

    result = run_benchmark(config)
    print(result.md_path.read_text(encoding="utf-8"))
    print(f"wrote {result.csv_path}, {result.md_path}, {result.png_path}, {result.json_path} "
          f"({result.ran} run(s), {result.wall_s:.0f} s)")  # fmt: skip
    return 0


def _run_tune(config: Any) -> int:
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


_RUN: dict[str, Callable[[Any], int]] = {
    "pretrain": _run_pretrain, "train": _run_train, "baseline": _run_baseline,
    "generate": _run_generate, "benchmark": _run_benchmark, "tune": _run_tune,
}  # fmt: skip


def _cmd_config(args: argparse.Namespace) -> int:
    return _RUN[args.command](_make_config(args))


# ----------------------------------------------------------------------------- the parser


def version() -> str:
    """The installed distribution's version (``drum_env.__version__`` when not installed)."""
    from importlib import metadata

    try:
        return metadata.version("drum-env")
    except metadata.PackageNotFoundError:
        from drum_env import __version__

        return __version__


def _add_data_commands(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a folder of MIDI drum files to .npz sequences",
        description="Convert a folder of MIDI drum files to .npz sequences.",
    )
    p.add_argument("midi_dir", help="folder searched recursively for .mid / .midi files")
    p.add_argument("out_dir", help="folder to write .npz files to (mirrors the input tree)")
    p.add_argument(
        "--steps-per-bar",
        type=int,
        default=16,
        help="grid resolution: steps in one bar (default: 16, 16th notes in 4/4)",
    )
    p.add_argument(
        "--pitch-table", choices=("default", "roland"), default="default",
        help="General MIDI pitch -> 9 drum classes mapping (see dataset/midi.py); one of: "
             "default, roland (default: default)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "stats",
        help="print a summary table of an .npz corpus",
        description="Print a summary table of an .npz corpus.",
    )
    p.add_argument("data", nargs="?", default=None, help="npz folder (default: built-in corpus)")
    p.add_argument(
        "--seq-len",
        type=int,
        default=512,
        help="window length (steps) for sample counts (default: 512)",
    )
    p.add_argument("--steps-per-bar", type=int, default=16, help="steps in one bar (default: 16)")
    p.add_argument("--bars-per-phrase", type=int, default=4, help="bars in one phrase (default: 4)")
    p.add_argument(
        "--bpm",
        type=float,
        default=None,
        help="tempo, to report the corpus's duration in hours (default: not shown)",
    )
    p.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="an unreadable file stops the command (raise) or is skipped (skip) (default: raise)",
    )
    p.set_defaults(func=_cmd_stats)


def _add_config_command(sub: Any, command: str, build_options: bool) -> None:
    spec = CONFIGS[command]
    p = sub.add_parser(
        command, help=spec.help,
        description=(
            f"{spec.help[0].upper()}{spec.help[1:]}. Every option is a field of "
            f"{spec.module}.{spec.name}; --config FILE.json gives any of them as a JSON "
            "object, and options on the command line override the file."
        ),
    )  # fmt: skip
    p.add_argument(
        "--config",
        dest=_CONFIG_DEST,
        metavar="FILE.json",
        help=f"JSON object of {spec.name} fields (the options given override it)",
    )
    if command == "benchmark":
        budget = p.add_mutually_exclusive_group()
        budget.add_argument("--smoke", dest=_BUDGET_DEST, action="store_const", const="smoke",
                            help="the smoke preset: one shaping, one seed, one PPO iteration; "
                                 "seconds (the test suite's run)")  # fmt: skip
        budget.add_argument(
            "--quick",
            dest=_BUDGET_DEST,
            action="store_const",
            const="quick",
            help="the quick preset: every default shaping and agent, 2 seeds, "
            "4,096 env steps per run; under 15 min on 2 CPU cores",
        )
    if build_options:
        add_config_options(
            p,
            _config_class(command),
            positional=POSITIONAL.get(command, ()),
            skip=SKIPPED.get(command, ()),
            aliases=ALIASES.get(command),
        )
    p.set_defaults(func=_cmd_config, _parser=p)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``drum-env``.

    Args:
        command: the subcommand about to run; the config options (whose classes import torch)
            are only built for that one. ``None`` builds them all.

    Returns:
        the parser; its errors print one line and exit with status 2.
    """
    parser = _Parser(prog=PROG, description="Reinforcement learning on drum sequences.",
                     allow_abbrev=False)  # fmt: skip
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        parser_class=functools.partial(_Parser, allow_abbrev=False),
    )
    _add_data_commands(sub)
    for name in CONFIGS:
        _add_config_command(sub, name, command is None or command == name)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    if extra:  # report it as the subcommand's error, not the top parser's
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "benchmark":
        rest = argv[argv.index("benchmark") + 1 :]
        args._command_line = f"{PROG} benchmark {shlex.join(rest)}".rstrip()
    return args


def parse_config(argv: Sequence[str]) -> Any:
    """The config a config subcommand's command line makes, without running it.

    Args:
        argv: e.g. ``["train", "--seq-len", "32"]``.

    Returns:
        the config dataclass (``PPOConfig``, ...), validated.

    Raises:
        SystemExit: a bad argument (status 2, one line on stderr).
        ValueError: the config refuses the values (or the ``--config`` file is bad).
    """
    argv = list(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    if command not in CONFIGS:
        raise ValueError(f"{command!r} is not a config subcommand; one of {list(CONFIGS)}")
    return _make_config(_parse(build_parser(command), argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``drum-env`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        the exit status: 0 done, 1 a command that did not succeed (a tuning worker stopped
        early), 2 a bad argument or input, no file converted, or out of memory (one line on
        stderr), 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    prog = f"{PROG} {command}" if command else PROG
    try:
        args = _parse(build_parser(command), argv)
        prog = f"{PROG} {args.command}"
        return int(args.func(args) or 0)
    except SystemExit as exc:  # argparse: --help, --version (0) or a bad argument (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except (ValueError, FileNotFoundError, ConnectionError) as exc:  # the user's input
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # sizes a user asked for (data, envs, model) beyond this machine
        detail = f" ({_one_line(exc)})" if str(exc) else ""
        print(f"{prog}: error: out of memory{detail}; ask for less (smaller data, fewer envs, a "
              "smaller model)", file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # an extra that is not installed
        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(f"{prog}: error: this command needs {top}, which is not installed: "
              f"pip install 'drum-env[{extra_for(command, top)}]'", file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    sys.exit(main())
