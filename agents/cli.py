"""The ``drum-env`` command: convert, inspect, train, compose, benchmark and tune from the shell.

Every subcommand is a config dataclass (:data:`COMMANDS`) turned into a command line by
`tyro <https://brentyi.github.io/tyro/>`_ (CleanRL's CLI library): one option per field,
``--field-name``, its help the field's docstring, its default the config's; ``--flag`` /
``--no-flag`` for booleans. A setting has the same option in every command because it is the
same field (the task settings all come from :class:`~agents.task.TaskConfig`, the run settings
from :class:`~agents.task.RunConfig`). The config is then built with ``Config(**values)``, so
its own validation decides. Run ``drum-env SUBCOMMAND --help``.

What is written here by hand, and why (each is something tyro does not do, or does not do the
way the README documents):

* Dispatch on the first word: only the chosen command's config module is imported, so
  ``drum-env stats`` and ``drum-env --help`` do not load torch, SB3 or optuna (a tyro
  subcommand parser needs every config class). ``drum-env --help`` lists :data:`COMMANDS`.
* ``--config FILE.json`` (:func:`read_config_file`): any fields as a JSON object (a run's own
  ``config.json`` works); its values become the defaults tyro uses, options on the command
  line override them.
* Option values (:data:`REGISTRY`, tyro's own extension point): lists as ``a,b,c``, ``a b c``
  or JSON (the README's ``--seeds 0,1,2``); mappings (``--weights``, ``--extra``) as JSON or
  ``key=value,...``; ``--sections`` as JSON; ``none`` for an optional field's ``None``;
  ``--normalize`` / ``--no-normalize`` for the optional ``normalize``. Fields with a fixed set
  of names (:data:`CHOICES`) list them in the help and refuse others.
* ``benchmark --smoke`` / ``--quick`` start from
  :meth:`~agents.evaluation.benchmark.BenchmarkConfig.preset`; ``--tuned`` is the older
  spelling of ``--tuned-config``; the benchmark's ``command`` (the command line its report
  records) is filled in, not an option.
* Errors: a bad argument, a bad config value or a refused run folder print one line,
  ``drum-env SUBCOMMAND: error: ...``, and exit with status 2 (tyro's own message, without its
  frame and usage block); Ctrl-C exits with 130.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import re
import shlex
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from agents.commands import PROG
from agents.extras import EXTRAS, extra_for

__all__ = [
    "PROG",
    "CHOICES",
    "COMMANDS",
    "CONFIGS",
    "REGISTRY",
    "main",
    "parse_config",
    "config_class",
    "clean_doc",
    "read_config_file",
    "version",
]



# ----------------------------------------------------------------------------- commands


class Command(NamedTuple):
    """A subcommand: the config class that makes its options, a one-line help, positionals.

    What the command then does with its config is :data:`agents.commands.RUNNERS`'s.
    """

    module: str
    name: str
    help: str
    positional: tuple[str, ...] = ()


COMMANDS: dict[str, Command] = {
    "convert": Command("agents.commands", "ConvertConfig",
                       "convert a folder of MIDI drum files to .npz sequences",
                       ("midi_dir", "out_dir")),
    "stats": Command("agents.commands", "StatsConfig", "print a summary table of an .npz corpus",
                     ("data",)),
    "pretrain": Command("agents.training.pretrain", "PretrainConfig",
                        "supervised next-step pretraining of the policy"),
    "train": Command("agents.training.ppo", "PPOConfig",
                     "PPO with the custom policy on the native vector env"),
    "baseline": Command("agents.baselines.sb3", "BaselineConfig",
                        "Stable-Baselines3 PPO or A2C on the same env"),
    "generate": Command("agents.evaluation.generate", "GenerateConfig",
                        "compose with a policy: .mid, .npz and .png per take (.wav with --wav)",
                        ("policy",)),
    "benchmark": Command("agents.evaluation.benchmark", "BenchmarkConfig",
                         "reward shapings x agents, scored on held-out data"),
    "tune": Command("agents.tune", "TuneConfig",
                    "Optuna study over reward weights and PPO hyperparameters"),
    "report": Command("agents.evaluation.report", "ReportConfig",
                      "a listening page of a run or benchmark folder: scores, curves, takes",
                      ("folder",)),
}  # fmt: skip
"""Every subcommand: the module and class of its config, a one-line help, and the fields given
as positional arguments."""

CONFIGS: tuple[str, ...] = ("pretrain", "train", "baseline", "generate", "benchmark", "tune")
"""The subcommands that train, compose or evaluate (their configs take ``--config FILE.json``)."""

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
"""Allowed values of config fields, by field name: the ``(module, attribute)`` of the tuple
that holds them, imported only when that command's parser is built; the help lists them. tyro
refuses other values of a plain string field; the config checks a list field's elements and
``device`` (``cuda:N`` takes any index)."""

_ALIASES: dict[str, dict[str, str]] = {"benchmark": {"--tuned": "--tuned-config"}}
_SUPPRESSED: dict[str, tuple[str, ...]] = {"benchmark": ("command",)}
_BUDGETS = ("--smoke", "--quick")


def config_class(command: str) -> type:
    """The config dataclass of ``command`` (importing its module)."""
    spec = COMMANDS[command]
    return getattr(importlib.import_module(spec.module), spec.name)


# ----------------------------------------------------------------------------- help text

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


# ----------------------------------------------------------------------------- option values


def _is_none(text: str) -> bool:
    return text.strip().lower() == "none"


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _mapping(text: str) -> dict[str, Any]:
    """A JSON object or ``key=value,...`` (values read as JSON where they parse)."""
    if text.lstrip().startswith(("{", "[")):
        return _json(text)
    pairs = [p for p in text.split(",") if p.strip()]
    if not pairs or not all("=" in p for p in pairs):
        raise ValueError(f"expected a JSON object or key=value,... pairs, got {text!r}")
    return {k.strip(): _json_value(v.strip()) for k, v in (p.split("=", 1) for p in pairs)}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc}): {text!r}") from None


def _optional_bool(args: list[str]) -> bool | None:
    if not args:
        return True
    words = {"true": True, "false": False, "none": None}
    if args[0].lower() not in words:
        raise ValueError(f"expected true, false or none, got {args[0]!r}")
    return words[args[0].lower()]


def _items(tokens: Sequence[str], element: type) -> tuple[Any, ...]:
    """``a,b,c``, ``a b c`` or a JSON list, each item converted to ``element``."""
    items: list[Any] = []
    for token in tokens:
        if token.lstrip().startswith("["):
            loaded = _json(token)
            items += loaded if isinstance(loaded, list) else [loaded]
        else:
            items += [t.strip() for t in token.split(",") if t.strip()]
    if not items:
        raise ValueError("expected at least one value")
    words = {int: "integer", float: "number", str: "string"}
    out = []
    for item in items:
        try:
            out.append(element(item) if isinstance(item, str) else item)
        except ValueError:
            raise ValueError(f"expected {words[element]} values, got {item!r}") from None
    return tuple(out)


def _optional_parts(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _make_registry():  # -> tyro.constructors.ConstructorRegistry
    """The tyro rules of this project's option values (lists, mappings, JSON, ``none``)."""
    from tyro.constructors import (
        ConstructorRegistry,
        PrimitiveConstructorSpec,
        PrimitiveTypeInfo,
        StructConstructorSpec,
        StructTypeInfo,
    )

    registry = ConstructorRegistry()

    def spec(nargs, metavar, parse, is_instance, shown, choices=None):
        return PrimitiveConstructorSpec(
            nargs=nargs, metavar=metavar, instance_from_str=parse, is_instance=is_instance,
            str_from_instance=shown, choices=choices,
        )  # fmt: skip

    def value_spec(tp: Any):
        """The spec of a list, mapping or JSON type (None: tyro's own rules apply)."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (dict, Mapping) or tp in (dict, Mapping):
            return spec(1, "JSON|KEY=VALUE,...", lambda a: _mapping(a[0]),
                        lambda x: isinstance(x, Mapping), lambda x: [json.dumps(dict(x))])
        if origin is not tuple or len(args) != 2 or args[1] is not Ellipsis:
            return None
        element = args[0]
        if element in (int, float, str):
            name = {int: "INT", float: "FLOAT", str: "STR"}[element]
            return spec("*", f"{name},...", lambda a: _items(a, element),
                        lambda x: isinstance(x, tuple),
                        lambda x: [",".join(str(v) for v in x)])  # fmt: skip
        if typing.get_origin(element) is tuple and typing.get_args(element)[:1] == (str,):
            # (key, value) pairs, e.g. weights
            return spec(1, "JSON|KEY=VALUE,...", lambda a: _mapping(a[0]),
                        lambda x: isinstance(x, (tuple, Mapping)),
                        lambda x: [json.dumps(dict(x))])  # fmt: skip
        return spec(1, "JSON", lambda a: _json(a[0]), lambda x: isinstance(x, tuple),
                    lambda x: [json.dumps(x)])  # e.g. sections

    @registry.primitive_rule
    def optional_rule(info: PrimitiveTypeInfo):
        inner, optional = _optional_parts(info.type)
        if not optional:
            return value_spec(info.type)
        if inner is bool:  # --normalize; --normalize false|none (--no-normalize: _defaults)
            return spec((0, 1), "[true|false|none]", _optional_bool,
                        lambda x: x in (None, True, False), lambda x: [str(x).lower()])  # fmt: skip
        base = value_spec(inner)
        if base is None:
            base = ConstructorRegistry.get_primitive_spec(PrimitiveTypeInfo.make(inner, set()))
            if not isinstance(base, PrimitiveConstructorSpec):
                return None

        def parse(args: list[str]) -> Any:
            if len(args) == 1 and _is_none(args[0]):
                return None
            return base.instance_from_str(args)

        return spec(base.nargs, f"{base.metavar}|none", parse,
                    lambda x: x is None or base.is_instance(x),
                    lambda x: ["none"] if x is None else base.str_from_instance(x))  # fmt: skip

    building: list[bool] = []

    @registry.struct_rule
    def config_rule(info: StructTypeInfo):
        if building or _STATE.command is None or info.type is not _STATE.cls:
            return None
        building.append(True)
        try:
            base = ConstructorRegistry.get_struct_spec(info)
        finally:
            building.pop()
        if not isinstance(base, StructConstructorSpec):
            return base
        return StructConstructorSpec(
            instantiate=lambda **values: _Values(values),
            fields=tuple(_field(f, info.type) for f in base.fields),
        )

    return registry


class _Values(dict):
    """The field values tyro parsed, before the config is built (and validated) here."""


class _State:
    """The command being parsed, and the defaults its options start from.

    tyro asks the registry's struct rule for the config class's fields without saying which
    subcommand is parsed; the rule reads it here (set by :func:`_parse` around its one call).
    """

    command: str | None = None
    cls: type | None = None
    defaults: dict[str, Any] = {}


_STATE = _State()
REGISTRY: Any = None
"""tyro's ``ConstructorRegistry`` of this CLI (made on first use, with tyro)."""


def _field(f: Any, cls: type) -> Any:
    """A tyro field spec of ``cls``: cleaned help, the command's defaults, markers."""
    import tyro
    from tyro.constructors import StructFieldSpec

    command = _STATE.command
    tp = f.type
    helptext = clean_doc((f.helptext() if callable(f.helptext) else f.helptext) or "")
    if f.name in CHOICES:
        module, attr = CHOICES[f.name]
        choices = tuple(getattr(importlib.import_module(module), attr))
        each = typing.get_origin(_optional_parts(tp)[0]) is tuple
        helptext += f" {'Each one of' if each else 'One of'}: {', '.join(choices)}."
        if tp is str and f.name != "device":
            tp = Literal[choices]  # type: ignore[valid-type]
    if f.name in COMMANDS[command].positional:
        tp = typing.Annotated[tp, tyro.conf.Positional, tyro.conf.arg(metavar=f.name.upper())]
    if f.name in _SUPPRESSED.get(command, ()):
        tp = typing.Annotated[tp, tyro.conf.Suppress]
    default = _STATE.defaults.get(f.name, f.default)
    return StructFieldSpec(name=f.name, type=tp, default=default, helptext=helptext)


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


class _CommandError(Exception):
    """A bad argument found before tyro runs (printed as one line, status 2)."""


def _take_option(argv: list[str], option: str) -> str | None:
    """Remove ``option VALUE`` / ``option=VALUE`` from ``argv``; its value (None if absent)."""
    for i, token in enumerate(argv):
        if token == "--":
            return None
        if token == option:
            if i + 1 >= len(argv):
                raise _CommandError(f"argument {option}: expected one argument")
            value = argv[i + 1]
            del argv[i : i + 2]
            return value
        if token.startswith(option + "="):
            del argv[i]
            return token[len(option) + 1 :]
    return None


def _defaults(command: str, cls: type, argv: list[str]) -> dict[str, Any]:
    """The defaults the options start from: a budget preset, then a ``--config`` file."""
    values: dict[str, Any] = {}
    if command == "benchmark":
        given = [b for b in _BUDGETS if b in argv]
        if len(given) > 1:
            raise _CommandError(f"argument {given[1]}: not allowed with argument {given[0]}")
        for b in given:
            argv.remove(b)
        if given:
            preset = cls.preset(given[0][2:])
            values.update({f.name: getattr(preset, f.name) for f in dataclasses.fields(cls)})
    hints = typing.get_type_hints(cls)
    path = _take_option(argv, "--config")
    if path is not None:
        for name, value in read_config_file(path, cls).items():
            if isinstance(value, Mapping) and typing.get_origin(
                _optional_parts(hints[name])[0]
            ) is tuple:  # (key, value) pairs, as the field holds them (weights)
                value = tuple(value.items())
            values[name] = _as_tuples(value)
    for old, new in _ALIASES.get(command, {}).items():
        argv[:] = [new if a == old else (new + a[len(old) :] if a.startswith(old + "=") else a)
                   for a in argv]  # fmt: skip
    for f in dataclasses.fields(cls):  # --no-normalize: the optional flag's False
        if _optional_parts(hints[f.name]) == (bool, True):
            flag = "--" + f.name.replace("_", "-")
            while "--no-" + flag[2:] in argv:
                i = argv.index("--no-" + flag[2:])
                argv[i : i + 1] = [flag, "false"]
    return values


def _description(command: str, cls: type) -> str:
    spec = COMMANDS[command]
    text = f"{spec.help[0].upper()}{spec.help[1:]}."
    if command in CONFIGS:
        text += (f" Every option is a field of {spec.module}.{spec.name}; --config FILE.json "
                 "gives any of them as a JSON object, and options on the command line override "
                 "the file.")  # fmt: skip
    if command == "benchmark":
        text += (" --smoke: the smoke preset (one shaping, one seed, one PPO iteration; "
                 "seconds); --quick: the quick preset (every default shaping and agent, 2 "
                 "seeds, 4,096 env steps per run; under 15 min on 2 CPU cores).")  # fmt: skip
    return text


def _tyro_message(text: str) -> str:
    """Put the error report of tyro on one line: its message, and the options it suggests."""
    lines = [line.strip().strip("│╭╮╰╯").strip() for line in text.splitlines()]
    lines = [line for line in lines if line][1:]  # the first line is the report's title
    sections: list[list[str]] = [[]]
    for line in lines:
        if set(line) <= set("-─━ "):
            sections.append([])
        else:
            sections[-1].append(line)
    body = [s for s in sections if s] or [["bad arguments"]]
    message = " ".join(body[0])
    for section in body[1:]:
        if section[0].startswith("Perhaps you meant"):
            flags = [line.split()[0] for line in section[1:] if line.startswith("-")]
            if flags:
                message += f" (perhaps you meant {', '.join(flags)})"
    return message


def _parse(command: str, argv: list[str]) -> tuple[type, dict[str, Any]]:
    """Parse ``argv`` (after the command) with tyro: the config class and the field values."""
    global REGISTRY
    import tyro

    if REGISTRY is None:
        REGISTRY = _make_registry()
    cls = config_class(command)
    argv = list(argv)
    defaults = _defaults(command, cls, argv)
    _STATE.command, _STATE.cls, _STATE.defaults = command, cls, defaults
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            values = tyro.cli(cls, args=argv, prog=f"{PROG} {command}",
                              description=_description(command, cls), registry=REGISTRY)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise _CommandError(_tyro_message(err.getvalue())) from None
        raise
    finally:
        _STATE.command, _STATE.cls, _STATE.defaults = None, None, {}
    return cls, dict(values)


def _build(command: str, cls: type, values: dict[str, Any], argv: Sequence[str]) -> Any:
    if command == "benchmark" and values.get("command") is None:
        values["command"] = f"{PROG} benchmark {shlex.join(argv)}".rstrip()
    try:
        return cls(**values)
    except TypeError as exc:  # a value of a wrong type that the config's checks did not catch
        raise ValueError(f"invalid {cls.__name__}: {exc}") from exc


def parse_config(argv: Sequence[str]) -> Any:
    """The config a subcommand's command line makes, without running it.

    Args:
        argv: e.g. ``["train", "--seq-len", "32"]``.

    Returns:
        the config dataclass (``PPOConfig``, ...), validated.

    Raises:
        SystemExit: ``--help`` (status 0).
        ValueError: a bad argument, or the config refuses the values (or the ``--config``
            file is bad).
    """
    argv = list(argv)
    if not argv or argv[0] not in COMMANDS:
        raise ValueError(f"{argv[:1]!r} is not a subcommand; one of {list(COMMANDS)}")
    try:
        cls, values = _parse(argv[0], argv[1:])
    except _CommandError as exc:
        raise ValueError(str(exc)) from None
    return _build(argv[0], cls, values, argv[1:])


# ----------------------------------------------------------------------------- main


def version() -> str:
    """The installed distribution's version (``drum_env.__version__`` when not installed)."""
    from importlib import metadata

    try:
        return metadata.version("drum-env")
    except metadata.PackageNotFoundError:
        from drum_env import __version__

        return __version__


def _one_line(text: object) -> str:
    return " ".join(str(text).split("\n")).strip()


def _top_help() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {spec.help}" for name, spec in COMMANDS.items())
    return (f"usage: {PROG} [-h] [--version] COMMAND ...\n\n"
            "Reinforcement learning on drum sequences.\n\n"
            f"commands:\n{rows}\n\n"
            f"Run '{PROG} COMMAND --help' for a command's options.\n")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``drum-env`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        the exit status: 0 done, 1 a command that did not succeed (a tuning worker stopped
        early), 2 a bad argument or input, no file converted, or out of memory (one line on
        stderr), 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    prog = PROG
    try:
        if command in ("-h", "--help"):
            print(_top_help(), end="")
            return 0
        if command == "--version":
            print(f"{PROG} {version()}")
            return 0
        if command not in COMMANDS:
            shown = f"invalid choice: {command!r}" if command else "the following arguments " \
                "are required"  # fmt: skip
            raise _CommandError(f"argument COMMAND: {shown} (choose from "
                                f"{', '.join(COMMANDS)})")  # fmt: skip
        prog = f"{PROG} {command}"
        cls, values = _parse(command, argv[1:])
        from agents.commands import RUNNERS

        return int(RUNNERS[command](_build(command, cls, values, argv[1:])) or 0)
    except SystemExit as exc:  # tyro: --help (0)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except (_CommandError, ValueError, FileNotFoundError, ConnectionError) as exc:  # user input
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
