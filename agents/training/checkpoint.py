"""Crash-safe checkpoint files and random-number-generator state as plain data.

Checkpoints are written by :func:`atomic_torch_save`: the object goes to a temporary file in the
target's folder, is flushed and ``fsync``-ed, then renamed over the target with
:func:`os.replace` (atomic on POSIX and Windows), and the folder is ``fsync``-ed so the rename
itself survives a power loss. A process killed at any moment therefore leaves either the old
checkpoint or the new one, never a truncated file under the checkpoint's name.

:func:`load_checkpoint` reads with ``torch.load(weights_only=True)`` (torch >= 2.6; see
CVE-2025-32434), so a checkpoint may hold only tensors, plain containers, numbers and strings.
The RNG helpers turn every generator's state into such data: torch states are ``uint8`` tensors,
numpy bit-generator states are nested dicts whose 128-bit integers (PCG64) are stored as decimal
strings, and Python's :mod:`random` state is a list of ints.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataset.io import atomic_write

__all__ = [
    "atomic_torch_save",
    "load_checkpoint",
    "arrays_to_tensors",
    "tensors_to_arrays",
    "TRAINING_FORMAT",
    "save_training_state",
    "rank_state",
    "restore_rank_state",
    "load_training_state",
    "numpy_rng_state",
    "set_numpy_rng_state",
    "capture_rng_state",
    "restore_rng_state",
]

_INT64 = 2**63

TRAINING_FORMAT = "drum-env/ppo-checkpoint"
"""The ``format`` key of a trainer checkpoint (:func:`save_training_state`)."""
_TRAINING_VERSION = 2  # 2: the env saves its own state; PPOConfig derives from TaskConfig


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically: the file is whole or untouched.

    Writes a temporary file beside ``path``, flushes and fsyncs it, renames it over ``path``
    (:func:`os.replace`) and fsyncs the folder. If anything fails before the rename (a pickling
    error, a full disk, the process being killed), ``path`` keeps its previous content; the
    temporary file is removed when the failure is an exception.

    Args:
        obj: what to save (tensors, plain containers, numbers, strings for
            :func:`load_checkpoint` to read it back).
        path: the target file; its folder is created if missing.

    Returns:
        The target path.
    """
    return atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`atomic_torch_save` with ``weights_only=True``.

    Args:
        path: the checkpoint file.
        map_location: passed to :func:`torch.load` (tensors land on the CPU by default).

    Returns:
        The saved dict.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: ``path`` is not a readable checkpoint: truncated, random bytes, not a dict,
            or holding objects that ``weights_only`` loading refuses (the message names it).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupt or not a torch checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(
            f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict"
        )
    return state


# ----------------------------------------------------------------------------- RNG state


def _to_plain(value: Any) -> Any:
    """Bit-generator state -> ints that fit int64, strings for bigger ints, lists for arrays."""
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        v = int(value)
        return v if -_INT64 <= v < _INT64 else {"__int__": str(v)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value  # strings, floats


def _from_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"__int__"}:
            return int(value["__int__"])
        if set(value) == {"__ndarray__", "dtype"}:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        return {k: _from_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    return value


def numpy_rng_state(generator: np.random.Generator) -> dict[str, Any]:
    """A numpy Generator's bit-generator state as plain data (``weights_only``-loadable).

    Args:
        generator: any ``np.random.Generator`` (PCG64, MT19937, Philox, SFC64).

    Returns:
        dict: the ``bit_generator.state`` dict with integers beyond int64 as
        ``{"__int__": "<decimal>"}`` and arrays as ``{"__ndarray__": list, "dtype": str}``.
    """
    return _to_plain(generator.bit_generator.state)


def set_numpy_rng_state(generator: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Restore a state written by :func:`numpy_rng_state` into ``generator`` (in place).

    Raises:
        ValueError: the state belongs to another bit generator than ``generator``'s.
    """
    plain = _from_plain(state)
    mine = type(generator.bit_generator).__name__
    if plain.get("bit_generator") != mine:
        raise ValueError(
            f"numpy RNG state is for {plain.get('bit_generator')!r}, the generator uses {mine!r}"
        )
    generator.bit_generator.state = plain


def capture_rng_state(
    numpy_generators: Sequence[np.random.Generator] = (),
    torch_generators: Mapping[str, torch.Generator] | None = None,
    python_random: bool = True,
) -> dict[str, Any]:
    """Every RNG state a training process depends on, as plain data.

    Args:
        numpy_generators: generators to capture (e.g. a vector env's ``np_random_list``).
        torch_generators: named ``torch.Generator`` objects (e.g. action sampling, shuffling).
        python_random: also capture the global :mod:`random` state.

    Returns:
        dict with ``"torch"`` (global CPU state, uint8 tensor), ``"cuda"`` (one uint8 tensor
        per device, empty list without CUDA), ``"numpy"`` (list of :func:`numpy_rng_state`),
        ``"generators"`` (name -> uint8 tensor) and ``"python"`` (list, or None).
    """
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    py = None
    if python_random:
        version, internal, gauss = random.getstate()
        py = [version, list(internal), gauss]
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
        "numpy": [numpy_rng_state(g) for g in numpy_generators],
        "generators": {k: g.get_state() for k, g in (torch_generators or {}).items()},
        "python": py,
    }


def restore_rng_state(
    state: Mapping[str, Any],
    numpy_generators: Sequence[np.random.Generator] = (),
    torch_generators: Mapping[str, torch.Generator] | None = None,
) -> None:
    """Restore what :func:`capture_rng_state` captured into the given generators and globals.

    The CUDA states are restored only when the number of visible devices matches.

    Raises:
        ValueError: the numbers of numpy generators differ, or a named torch generator is
            missing from the state.
    """
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    saved = state.get("numpy") or []
    if len(saved) != len(numpy_generators):
        raise ValueError(
            f"RNG state holds {len(saved)} numpy generator(s), {len(numpy_generators)} given"
        )
    for g, s in zip(numpy_generators, saved):
        set_numpy_rng_state(g, s)
    gens = state.get("generators") or {}
    for name, g in (torch_generators or {}).items():
        if name not in gens:
            raise ValueError(f"RNG state has no torch generator {name!r} (has {sorted(gens)})")
        g.set_state(gens[name])
    if state.get("python") is not None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


# ----------------------------------------------------------------------------- trees


def arrays_to_tensors(tree: Any) -> Any:
    """A plain-data tree (an env's ``state_dict()``) with numpy arrays turned into tensors.

    numpy arrays become tensors (``weights_only``-loadable); integers beyond int64 (PCG64
    states) become ``{"__int__": "<decimal>"}``; tuples become lists; everything else is kept.
    :func:`tensors_to_arrays` inverts it.
    """
    if isinstance(tree, Mapping):
        return {k: arrays_to_tensors(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(tree).copy())
    if isinstance(tree, (list, tuple)):
        return [arrays_to_tensors(v) for v in tree]
    if isinstance(tree, (int, np.integer)) and not isinstance(tree, (bool, np.bool_)):
        v = int(tree)
        return v if -_INT64 <= v < _INT64 else {"__int__": str(v)}
    return tree


def tensors_to_arrays(tree: Any) -> Any:
    """Invert :func:`arrays_to_tensors`: tensors become numpy arrays, big ints ints again."""
    if isinstance(tree, Mapping):
        if set(tree) == {"__int__"}:
            return int(tree["__int__"])
        return {k: tensors_to_arrays(v) for k, v in tree.items()}
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu().numpy().copy()
    if isinstance(tree, list):
        return [tensors_to_arrays(v) for v in tree]
    return tree


# ----------------------------------------------------------------------------- trainer state


def save_training_state(
    path: str | os.PathLike[str], *, config: Mapping[str, Any], policy_config: Mapping[str, Any],
    world_size: int, iteration: int, global_step: int, modules: Mapping[str, Any],
    history: Sequence[Mapping[str, float]], ranks: Sequence[Any],
) -> Path:  # fmt: skip
    """Write a trainer checkpoint atomically (read back with :func:`load_training_state`).

    Args:
        path: ``out/checkpoint.pt``.
        config: the run's config (plain data).
        policy_config: the model's :class:`~agents.policies.policy.PolicyConfig` as a dict.
        world_size: DDP ranks of the run.
        iteration: iterations done.
        global_step: env steps done, all ranks.
        modules: name -> object with ``state_dict()`` (model, optimisers, scheduler, scaler).
        history: the per-iteration metrics so far.
        ranks: per rank, its own state (env state as tensors, episode sums, RNG states).

    Returns:
        The path.
    """
    state = {
        "format": TRAINING_FORMAT, "version": _TRAINING_VERSION, "config": dict(config),
        "policy_config": dict(policy_config), "seed": config.get("seed"),
        "world_size": int(world_size), "iteration": int(iteration),
        "global_step": int(global_step), "history": list(history), "ranks": list(ranks),
    }  # fmt: skip
    state.update({name: obj.state_dict() for name, obj in modules.items()})
    return atomic_torch_save(state, path)


def load_training_state(
    path: str | os.PathLike[str], *, config: Mapping[str, Any],
    policy_config: Mapping[str, Any], world_size: int, resumable: Sequence[str] = (),
    added: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Load a trainer checkpoint and check that it is this run's.

    A resume is honest: the checkpoint's config must equal ``config`` in every field except
    those in ``resumable``; the model's config and the number of DDP ranks must be equal; and
    ``total_timesteps`` (when resumable) may not end the run before the checkpoint's step.

    Args:
        path: the checkpoint.
        config: the resuming run's config (plain data).
        policy_config: the resuming run's model config as a dict.
        world_size: DDP ranks of the resuming run.
        resumable: config fields that may differ.
        added: config fields added since the checkpoint's format was set, with the value that
            behaves as the code before them did: a checkpoint without such a field counts as
            holding that value.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: no checkpoint.
        ValueError: not a trainer checkpoint of this version, or one of another run; the
            message names every differing field with both values.
    """
    state = load_checkpoint(path)
    where = f"checkpoint {str(path)!r}"
    if state.get("format") != TRAINING_FORMAT:
        raise ValueError(f"{where} is not a PPO checkpoint of drum-env")
    if state.get("version") != _TRAINING_VERSION:
        raise ValueError(
            f"{where} was written by another version of drum-env (checkpoint format "
            f"{state.get('version')}, this one reads {_TRAINING_VERSION}); start a new run"
        )
    # the config first: it names what the user changed (policy_kind, d_model, ...); the
    # model's shape only shows its consequences
    saved = {**(added or {}), **state["config"]}
    keys = sorted((set(saved) | set(config)) - set(resumable))
    diffs = [f"{k} (checkpoint {saved.get(k)!r}, now {config.get(k)!r})" for k in keys
             if saved.get(k) != config.get(k)]  # fmt: skip
    if diffs:
        raise ValueError(
            f"{where}: a resumed run keeps its config, but these differ: {', '.join(diffs)}; "
            f"only {', '.join(resumable)} may change on --resume"
        )
    saved = state["policy_config"]
    diffs = [f"{k} (checkpoint {saved.get(k)!r}, now {v!r})" for k, v in policy_config.items()
             if saved.get(k) != v]  # fmt: skip
    if diffs:
        raise ValueError(f"{where} holds a model of another shape; differing: {', '.join(diffs)}")
    if int(state["world_size"]) != world_size:
        raise ValueError(
            f"{where} was written with world size {state['world_size']} (DDP ranks), this run "
            f"has world size {world_size}: resume with {state['world_size']} processes in all "
            "(each rank's envs, episodes and RNGs are saved per rank)"
        )
    return state


def rank_state(venv: Any, observation: Mapping[str, np.ndarray], next_reset: np.ndarray,
               episodes: Any, normalizer: Any, generators: Mapping[str, torch.Generator],
               replay: Any = None) -> dict[str, Any]:  # fmt: skip
    """One rank's part of a trainer checkpoint, as checkpoint data (``ranks[rank]``).

    Args:
        venv: the rank's vector env (its own ``state_dict()``).
        observation: the observation the next iteration acts on (per key, ``(num_envs, ...)``).
        next_reset: bool (num_envs,): the sub-envs whose next step resets them.
        episodes: the running sums of the episodes in progress (``state_dict()``).
        normalizer: the rank's reward normaliser (``state_dict()``).
        generators: the rank's named torch generators (with every global RNG, see
            :func:`capture_rng_state`).
        replay: an object with ``replay_state()`` (the discriminator's per-rank replay), or
            None.

    Returns:
        ``env``, ``observation``, ``next_reset``, ``episode``, ``reward_normalizer``, with
        ``replay`` its ``discriminator`` (arrays as tensors) and ``rng``;
        :func:`restore_rank_state` reads it back.
    """
    local = {
        "env": venv.state_dict(), "observation": dict(observation), "next_reset": next_reset,
        "episode": episodes.state_dict(), "reward_normalizer": normalizer.state_dict(),
        **({"discriminator": replay.replay_state()} if replay is not None else {}),
    }  # fmt: skip
    local = arrays_to_tensors(local)
    local["rng"] = capture_rng_state((), generators)
    return local


def restore_rank_state(state: Mapping[str, Any], rank: int, modules: Mapping[str, Any],
                       venv: Any, episodes: Any, normalizer: Any,
                       generators: Mapping[str, torch.Generator], path: str | os.PathLike[str],
                       replay: Any = None) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Load a trainer checkpoint's modules and this rank's env, sums and RNGs.

    Args:
        state: the checkpoint (:func:`load_training_state`).
        rank: this rank (its part is ``state["ranks"][rank]``, from :func:`rank_state`).
        modules: name -> object with ``load_state_dict`` (model, optimisers, ...).
        venv: the rank's vector env.
        episodes: the running episode sums to restore.
        normalizer: the reward normaliser to restore.
        generators: the rank's named torch generators.
        path: the checkpoint's path (for the message).
        replay: an object with ``load_replay_state()`` (the discriminator), or None.

    Returns:
        The observation the next iteration acts on and the sub-envs that reset next.

    Raises:
        ValueError: the checkpoint lacks a part or does not fit the run.
    """
    try:
        for name, obj in modules.items():
            obj.load_state_dict(state[name])
        local = state["ranks"][rank]
        plain = tensors_to_arrays({k: v for k, v in local.items() if k != "rng"})
        venv.load_state_dict(plain["env"])
        episodes.load_state_dict(plain["episode"])
        normalizer.load_state_dict(plain["reward_normalizer"])
        if replay is not None:
            replay.load_replay_state(plain["discriminator"])
        restore_rng_state(local["rng"], (), generators)
    except (KeyError, IndexError, TypeError, RuntimeError) as exc:
        raise ValueError(
            f"checkpoint {str(path)!r} is incomplete or does not fit this run "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return dict(plain["observation"]), np.asarray(plain["next_reset"], dtype=bool)
