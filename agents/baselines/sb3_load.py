"""Stable-Baselines3 ``model.zip`` files, read as data: loading a model never runs code from it.

SB3's own loader (``PPO.load``) unpickles the zip's ``data`` entry: the policy class, the spaces,
the schedules and the buffers are cloudpickles, base64-encoded under ``":serialized:"`` keys, so
a crafted ``model.zip`` runs whatever it holds the moment it is loaded. drum-env never calls it
on a file. :func:`load_sb3_zip` reads:

* the weights from ``policy.pth`` with ``torch.load(weights_only=True)`` (tensors only);
* the settings from JSON that cannot execute: the sidecar :data:`SIDECAR_FILE` beside the zip
  (``drum-env baseline`` writes it), or, for a run of drum-env 0.3 that has none, the run's
  ``config.json`` beside it and the zip's ``data`` entry parsed as plain JSON (``seed``,
  ``use_sde``, ``policy_kwargs``; a ``":serialized:"`` value is never decoded, only the
  readable copy SB3 writes beside it is looked at);

and builds the policy that ``drum-env baseline`` trains, SB3's ``MultiInputActorCriticPolicy``
over the observation and action spaces of that task (:class:`drum_env.core.DrumComposeConfig`),
then loads the weights into it strictly (every tensor, every shape). Like ``PPO.load``, it first
seeds the global generators with the model's seed (``set_random_seed``) and builds the policy
with the same draws, so a seeded ``drum-env generate`` plays bit for bit as before.

A zip that is not a ``drum-env baseline`` model (no sidecar and no drum-env ``config.json``
beside it, another policy class, custom policy arguments, SDE) is refused, with a message that
says why. A zip you trust (your own, from SB3 directly) can be converted once with
:func:`trust_sb3_zip`, which loads it with SB3 (running its code: only for a file you trust) and
writes the sidecar, after which :func:`load_sb3_zip` reads it as data.

Entries are bounded before they are read: ``data`` at most 16 MiB, ``policy.pth`` at most
:data:`dataset.io.MAX_ARRAY_BYTES`, and neither inflating more than
:data:`dataset.io.MAX_INFLATION` times.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from dataset.io import MAX_ARRAY_BYTES, MAX_INFLATION, atomic_write

__all__ = [
    "SIDECAR_FILE",
    "SIDECAR_FORMAT",
    "VELOCITY_BINS_FILE",
    "SB3Policy",
    "load_sb3_zip",
    "sb3_settings",
    "write_sidecar",
    "trust_sb3_zip",
]

SIDECAR_FILE = "sb3_policy.json"
"""Beside an SB3 ``model.zip``: the settings that rebuild its policy, as plain JSON
(:func:`sb3_settings`), written by :func:`agents.baselines.sb3.train_baseline` and
:func:`trust_sb3_zip`."""

SIDECAR_FORMAT = "drum-env/sb3-policy"
"""The ``format`` key of :data:`SIDECAR_FILE`."""
_SIDECAR_VERSION = 1

VELOCITY_BINS_FILE = "velocity_bins.json"
"""Beside an SB3 ``model.zip`` with velocity levels: the bins of its training envs
(``VelocityBins.to_dict()`` as JSON), written by :func:`agents.baselines.sb3.train_baseline`."""

_DATA_BYTES = 16 * 2**20
_ALGOS = ("ppo", "a2c")
_TASK_FIELDS = ("context_steps", "steps_per_bar", "bars_per_phrase", "velocity_levels")
_ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu")
# the policy arguments a baseline may set (as plain data); the optimiser's are not needed to play
_KWARGS = ("net_arch", "activation_fn", "ortho_init", "share_features_extractor",
           "normalize_images", "log_std_init")  # fmt: skip
_IGNORED_KWARGS = ("optimizer_class", "optimizer_kwargs")


class SB3Policy(NamedTuple):
    """A Stable-Baselines3 policy (``model.zip`` of ``drum-env baseline``) and the task it plays."""

    model: Any
    """The SB3 policy (``MultiInputActorCriticPolicy``: ``predict``, ``action_space``), or a
    whole ``PPO`` / ``A2C`` model."""
    config: Any
    """``context_steps``, ``steps_per_bar``, ``bars_per_phrase``, ``velocity_levels`` and
    ``num_drums`` of its task, ``target_size`` and ``position_size`` of its observation,
    ``velocity_bins`` (the bins of its training envs, from ``velocity_bins.json`` beside it;
    ``None`` without velocity levels), ``max_len`` (= ``context_steps``: an MLP reads exactly
    that many steps) and ``fixed_context = True``."""


def _refuse(path: Path, why: str) -> ValueError:
    return ValueError(
        f"{str(path)!r} cannot be loaded as data: {why}. drum-env never unpickles a model.zip "
        "(SB3's loader would run code stored in it). If you trust the file, convert it once: "
        "python -c \"from agents.baselines.sb3_load import trust_sb3_zip; "
        f"trust_sb3_zip('{path}')\" "
        f"(it writes {SIDECAR_FILE} beside it)"
    )


def _bad_zip(path: Path, why: str) -> ValueError:
    return ValueError(f"{str(path)!r} is not a Stable-Baselines3 model.zip ({why})")


def _read_entry(zf: zipfile.ZipFile, path: Path, name: str, limit: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _bad_zip(path, f"no {name!r} entry; entries: {sorted(zf.namelist())[:8]}") from None
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limit or (info.file_size > 2**20 and ratio > MAX_INFLATION):
        raise _bad_zip(
            path, f"its {name!r} entry inflates to {info.file_size:,} bytes from "
            f"{info.compress_size:,}: more than {limit:,} bytes or {MAX_INFLATION:g} times",
        )  # fmt: skip
    return zf.read(info)


def _read_zip(path: Path) -> tuple[dict[str, Any], bytes]:
    """The zip's ``data`` entry as plain JSON and the bytes of ``policy.pth``."""
    try:
        with zipfile.ZipFile(path) as zf:
            raw = _read_entry(zf, path, "data", _DATA_BYTES)
            weights = _read_entry(zf, path, "policy.pth", MAX_ARRAY_BYTES)
    except ValueError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise _bad_zip(path, f"{type(exc).__name__}: {exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))  # plain JSON: nothing in it is decoded further
    except (ValueError, RecursionError) as exc:
        raise _bad_zip(path, f"its 'data' entry is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _bad_zip(path, "its 'data' entry is not a JSON object")
    return data, weights


def _readable(value: Any) -> Any:
    """A JSON value as SB3 stored it: plain, or the readable copy beside a pickle (never it)."""
    if isinstance(value, dict) and ":serialized:" in value:
        return {k: v for k, v in value.items() if k not in (":serialized:", ":type:")}
    return value


def _activation_name(value: Any) -> str | None:
    """``"tanh"`` from ``nn.Tanh`` or from SB3's readable ``"<class '...Tanh'>"``."""
    text = getattr(value, "__name__", None) or str(value)
    name = text.rsplit(".", 1)[-1].strip("'>").lower()
    name = {"leakyrelu": "leaky_relu"}.get(name, name)
    return name if name in _ACTIVATIONS else None


def _policy_kwargs(raw: Any, where: str) -> dict[str, Any]:
    """The policy arguments of a baseline as plain JSON, or ValueError naming what is not."""
    kwargs = _readable(raw) if raw is not None else {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}: policy_kwargs is not a mapping")
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _IGNORED_KWARGS:
            continue
        if key not in _KWARGS:
            raise ValueError(f"{where}: policy_kwargs {key!r} is not one drum-env rebuilds")
        if key == "activation_fn":
            name = _activation_name(value)
            if name is None:
                raise ValueError(f"{where}: activation_fn {value!r} is not one of {_ACTIVATIONS}")
            value = name
        elif key == "net_arch" and not _is_net_arch(value):
            raise ValueError(f"{where}: net_arch {value!r} is not a list (or pi/vf lists) of ints")
        elif key in ("ortho_init", "share_features_extractor", "normalize_images"):
            if not isinstance(value, bool):
                raise ValueError(f"{where}: {key} must be a bool, got {value!r}")
        elif key == "log_std_init" and not isinstance(value, (int, float)):
            raise ValueError(f"{where}: log_std_init must be a number, got {value!r}")
        out[key] = value
    return out


def _is_net_arch(value: Any) -> bool:
    def ints(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(n, int) and 0 < n <= 2**16 for n in v)

    if isinstance(value, dict):
        return set(value) <= {"pi", "vf"} and all(ints(v) for v in value.values())
    return value is None or ints(value)


def _int(value: Any, where: str, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: {name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _check_settings(settings: Any, where: str) -> dict[str, Any]:
    """Validate a settings dict (a sidecar's content), every value plain and in range."""
    if not isinstance(settings, dict):
        raise ValueError(f"{where}: not a JSON object")
    if settings.get("format") != SIDECAR_FORMAT or settings.get("version") != _SIDECAR_VERSION:
        raise ValueError(
            f"{where}: not a {SIDECAR_FORMAT} file of version {_SIDECAR_VERSION} (format "
            f"{settings.get('format')!r}, version {settings.get('version')!r})"
        )
    if settings.get("algo") not in _ALGOS:
        raise ValueError(f"{where}: algo must be one of {_ALGOS}, got {settings.get('algo')!r}")
    seed = settings.get("seed")
    if seed is not None:
        _int(seed, where, "seed", 0, 2**32 - 1)
    for name in ("context_steps", "steps_per_bar", "bars_per_phrase"):
        _int(settings.get(name), where, name, 1, 2**16)
    _int(settings.get("num_drums"), where, "num_drums", 1, 1024)
    _int(settings.get("velocity_levels"), where, "velocity_levels", 0, 127)
    return {**settings, "policy_kwargs": _policy_kwargs(settings.get("policy_kwargs"), where)}


def _settings_from_run(path: Path, data: dict[str, Any], weights: dict[str, Any]
                       ) -> dict[str, Any]:  # fmt: skip
    """Settings of a drum-env 0.3 baseline: its ``config.json`` and the zip's plain JSON."""
    record = path.with_name("config.json")
    if not record.is_file():
        raise _refuse(path, f"neither {SIDECAR_FILE} nor a drum-env config.json is beside it")
    try:
        run = json.loads(record.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ValueError(f"{str(record)!r} (beside {str(path)!r}) is not JSON: {exc}") from None
    if not isinstance(run, dict) or run.get("algo") not in _ALGOS:
        raise _refuse(path, f"{str(record)!r} is not the config.json of drum-env baseline")
    if data.get("use_sde"):
        raise _refuse(path, "it uses state-dependent exploration (use_sde), which drum-env "
                      "baselines never do")  # fmt: skip
    policy_class = _readable(data.get("policy_class"))
    module = policy_class.get("__module__") if isinstance(policy_class, dict) else None
    if module != "stable_baselines3.common.policies":
        raise _refuse(path, f"its policy class comes from {module!r}, not SB3's own policies")
    try:
        kwargs = _policy_kwargs(data.get("policy_kwargs"), f"{str(path)!r}")
    except ValueError as exc:
        raise _refuse(path, str(exc)) from None
    levels = run.get("velocity_levels", 0)
    head = weights.get("action_net.weight")
    if head is None or head.dim() != 2 or head.shape[0] % (int(levels) + 1):
        raise _bad_zip(path, "its policy.pth has no action head of a drum-env baseline")
    seed = data.get("seed")
    settings = {
        "format": SIDECAR_FORMAT, "version": _SIDECAR_VERSION, "algo": run["algo"],
        "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "num_drums": int(head.shape[0]) // (int(levels) + 1), "policy_kwargs": kwargs,
        **{name: run.get(name, 0 if name == "velocity_levels" else None) for name in _TASK_FIELDS},
    }  # fmt: skip
    return _check_settings(settings, f"{str(record)!r}")


def _spaces(settings: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The observation and action spaces of the settings' task, and that task's config."""
    from drum_env.core import DrumComposeConfig

    spb = settings["steps_per_bar"]
    task = DrumComposeConfig(
        seq_len=2 * spb, steps_per_bar=spb, bars_per_phrase=settings["bars_per_phrase"],
        prompt_bars=1, context_steps=settings["context_steps"],
        num_drums=settings["num_drums"], velocity_levels=settings["velocity_levels"],
    )  # fmt: skip
    return task.observation_space(), task.action_space(), task


def _build_policy(settings: dict[str, Any], weights: dict[str, Any], path: Path) -> Any:
    """The baseline's SB3 policy, built as ``PPO.load`` builds it, with ``weights`` loaded."""
    import torch
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy
    from stable_baselines3.common.utils import set_random_seed

    observation_space, action_space, _ = _spaces(settings)
    kwargs = dict(settings["policy_kwargs"])
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = {
            "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU,
            "leaky_relu": torch.nn.LeakyReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU,
        }[kwargs["activation_fn"]]  # fmt: skip
    if settings["seed"] is not None:  # as PPO.load: seeded, then the policy's draws
        set_random_seed(settings["seed"])
    policy = MultiInputActorCriticPolicy(observation_space, action_space, lambda _: 0.0,
                                         use_sde=False, **kwargs)  # fmt: skip
    try:
        policy.load_state_dict(weights, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        detail = str(exc).replace("\n", " ").replace("\t", "")[:400]
        raise ValueError(
            f"{str(path)!r}: its policy.pth does not fit the policy of its settings "
            f"(num_drums={settings['num_drums']}, context_steps={settings['context_steps']}, "
            f"velocity_levels={settings['velocity_levels']}): {detail}"
        ) from None
    policy.set_training_mode(False)
    return policy


def _load_weights(raw: bytes, path: Path) -> dict[str, Any]:
    import torch

    try:
        weights = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for bytes that are not its archive
        raise _bad_zip(path, f"its policy.pth is not tensors: {type(exc).__name__}") from None
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise _bad_zip(path, "its policy.pth is not a dict of tensors")
    return weights


def _velocity_bins(path: Path, levels: int) -> Any:
    bins_file = path.with_name(VELOCITY_BINS_FILE)
    if not levels or not bins_file.is_file():
        return None
    from dataset.velocity import VelocityBins

    try:
        return VelocityBins.from_dict(json.loads(bins_file.read_text(encoding="utf-8")))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{str(bins_file)!r} holds no velocity bins: {exc}") from None


def load_sb3_zip(path: str | os.PathLike[str]) -> SB3Policy:
    """An SB3 ``model.zip`` of ``drum-env baseline``, read as data (see the module docstring).

    Seeds the global generators (python, numpy, torch) with the model's seed, as ``PPO.load``
    does; SB3's policy samples its actions from torch's global generator.

    Args:
        path: the ``model.zip``.

    Returns:
        SB3Policy: the policy (``predict``, ``action_space``) and its task.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is not an SB3 zip, is bounded out, or cannot be rebuilt without
            running code from it (the message says why and how to convert a trusted one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy {str(path)!r} does not exist")
    data, raw_weights = _read_zip(path)
    weights = _load_weights(raw_weights, path)
    sidecar = path.with_name(SIDECAR_FILE)
    if sidecar.is_file():
        try:
            settings = json.loads(sidecar.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise ValueError(f"{str(sidecar)!r} is not JSON: {exc}") from None
        settings = _check_settings(settings, f"{str(sidecar)!r}")
    else:
        settings = _settings_from_run(path, data, weights)
    policy = _build_policy(settings, weights, path)
    _, _, task = _spaces(settings)
    context = settings["context_steps"]
    config = SimpleNamespace(
        context_steps=context, steps_per_bar=settings["steps_per_bar"],
        bars_per_phrase=settings["bars_per_phrase"], max_len=context, fixed_context=True,
        velocity_levels=settings["velocity_levels"], num_drums=settings["num_drums"],
        target_size=task.target_size, position_size=task.position_size,
        velocity_bins=_velocity_bins(path, settings["velocity_levels"]),
    )  # fmt: skip
    return SB3Policy(policy, config)


def sb3_settings(model: Any, algo: str, *, steps_per_bar: int = 16,
                 bars_per_phrase: int = 4) -> dict[str, Any]:  # fmt: skip
    """The sidecar settings of an SB3 model in memory (what :data:`SIDECAR_FILE` holds).

    Args:
        model: a ``PPO`` or ``A2C`` on a DrumCompose env (``MultiInputPolicy``).
        algo: ``"ppo"`` or ``"a2c"``.
        steps_per_bar: steps in one bar of its task.
        bars_per_phrase: bars in one phrase of its task.

    Returns:
        The settings, plain JSON.

    Raises:
        ValueError: the model is not one drum-env rebuilds (its spaces are not a DrumCompose
            task's with this metre, or a policy argument is not plain data).
    """
    import numpy as np

    where = f"{type(model).__name__} model"
    action = model.action_space
    nvec = np.asarray(getattr(action, "nvec", [2]))
    levels = int(nvec.reshape(-1)[0]) - 1 if hasattr(action, "nvec") else 0
    num_drums = int(np.prod(action.shape))
    context = model.observation_space["context"].shape[0] // max(num_drums, 1)
    settings = {
        "format": SIDECAR_FORMAT, "version": _SIDECAR_VERSION, "algo": algo,
        "seed": model.seed, "context_steps": context, "steps_per_bar": steps_per_bar,
        "bars_per_phrase": bars_per_phrase, "velocity_levels": levels, "num_drums": num_drums,
        "policy_kwargs": _policy_kwargs(dict(model.policy_kwargs), where),
    }  # fmt: skip
    settings = _check_settings(settings, where)
    observation_space, action_space, _ = _spaces(settings)
    if model.observation_space != observation_space or model.action_space != action_space:
        raise ValueError(
            f"{where}: its spaces are not those of a DrumCompose task with steps_per_bar="
            f"{steps_per_bar}, bars_per_phrase={bars_per_phrase} ({model.observation_space}, "
            f"{model.action_space})"
        )
    return settings


def write_sidecar(zip_path: str | os.PathLike[str], settings: dict[str, Any]) -> Path:
    """Write :data:`SIDECAR_FILE` beside ``zip_path`` (atomically, never through a link)."""
    text = json.dumps(settings, indent=2) + "\n"
    target = Path(zip_path).with_name(SIDECAR_FILE)
    return atomic_write(target, lambda f: f.write(text.encode("utf-8")), durable=False)


def trust_sb3_zip(path: str | os.PathLike[str], algo: str = "ppo", *, steps_per_bar: int = 16,
                  bars_per_phrase: int = 4) -> Path:  # fmt: skip
    """Convert a ``model.zip`` you trust: load it with SB3 (which runs code stored in it!).

    For a zip made with SB3 directly on ``DrumCompose-v0`` (or by an older tool): loads it with
    ``PPO.load`` / ``A2C.load``, checks that it is a policy drum-env rebuilds, and writes
    :data:`SIDECAR_FILE` beside it, after which :func:`load_sb3_zip` reads it as data. Never
    call this on a file you did not make or do not trust.

    Args:
        path: the ``model.zip``.
        algo: ``"ppo"`` or ``"a2c"``: the algorithm that saved it.
        steps_per_bar: steps in one bar of the task it was trained on.
        bars_per_phrase: bars in one phrase of that task.

    Returns:
        The sidecar's path.
    """
    from stable_baselines3 import A2C, PPO

    if algo not in _ALGOS:
        raise ValueError(f"algo must be one of {_ALGOS}, got {algo!r}")
    model = {"ppo": PPO, "a2c": A2C}[algo].load(str(path), device="cpu")
    settings = sb3_settings(model, algo, steps_per_bar=steps_per_bar,
                            bars_per_phrase=bars_per_phrase)  # fmt: skip
    return write_sidecar(path, settings)
