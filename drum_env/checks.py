"""Checks of what users hand the DrumCompose envs: actions, reset options and saved states.

:class:`~drum_env.env.DrumComposeEnv`, :class:`~drum_env.vector.DrumComposeVectorEnv`, the
PettingZoo band and :class:`~drum_env.core.ComposeCore` share them, so an argument is checked
the same way, with the same message, wherever it is given. Each check names the argument (or
the saved entry) and what it allows, and changes nothing: a state is checked whole before any of
it is written (:func:`check_generator_state` / :func:`set_generator_state`,
:func:`check_state_array`), so a failed ``load_state_dict`` leaves the env as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from drum_env.rewards import RunningNormalizer

if TYPE_CHECKING:
    from drum_env.core import ReferenceData

__all__ = [
    "check_actions",
    "check_generator_state",
    "check_keys",
    "check_normalizer_state",
    "check_reset_options",
    "check_state_array",
    "check_state_header",
    "generator_state",
    "options_window",
    "set_generator_state",
]


# ---------------------------------------------------------------------------- saved states


def check_keys(state: Mapping[str, Any], required: Sequence[str], what: str) -> None:
    """Check that ``state`` has exactly the keys ``required``.

    Raises:
        ValueError: naming ``what`` and the missing or unknown keys.
    """
    missing = [k for k in required if k not in state]
    unknown = sorted(str(k) for k in state if k not in required)
    if missing or unknown:
        raise ValueError(f"{what} does not fit: missing key(s) {missing}, unknown key(s) {unknown}")


def check_state_header(state: Any, fmt: str, version: int, required: Sequence[str]) -> None:
    """Check a state dict's type, ``"format"``, ``"version"`` and keys.

    Args:
        state: the saved state.
        fmt: the expected ``"format"`` (the class that wrote it).
        version: the expected ``"version"``.
        required: the keys besides ``"format"`` and ``"version"``.

    Raises:
        ValueError: naming what differs.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"a {fmt} state must be a dict, got {type(state).__name__}")
    check_keys(state, ("format", "version", *required), f"{fmt} state")
    if state["format"] != fmt:
        raise ValueError(f"the state was written by {state['format']!r}, not by {fmt!r}")
    if state["version"] != version:
        raise ValueError(
            f"{fmt} state has format version {state['version']!r}, this env reads version {version}"
        )


def check_state_array(name: str, value: Any, like: np.ndarray) -> np.ndarray:
    """A saved array, checked against the buffer ``like`` it restores.

    Args:
        name: the buffer's name, for errors.
        value: the saved array (or anything ``np.asarray`` takes).
        like: the buffer: the saved array must have its shape and dtype.

    Returns:
        ``value`` as a numpy array.

    Raises:
        ValueError: naming the buffer and the shape or dtype that differs.
    """
    if isinstance(value, (Mapping, str)) or value is None:
        raise ValueError(f"state {name}: expected an array, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"state {name}: not an array ({exc})") from exc
    if arr.shape != like.shape or arr.dtype != like.dtype:
        raise ValueError(
            f"state {name} does not fit: saved {arr.dtype} {arr.shape}, the env's buffer is "
            f"{like.dtype} {like.shape}"
        )
    return arr


def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """A numpy Generator's bit-generator state as plain data (a copy).

    Returns:
        ``generator.bit_generator.state``: a dict of str, python int and (for some bit
        generators) numeric numpy arrays; ``"bit_generator"`` names the algorithm.
    """

    def copy(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, np.ndarray):
            return value.copy()
        if isinstance(value, np.generic):
            return value.item()
        return value

    return copy(generator.bit_generator.state)


def check_generator_state(name: str, state: Any, generator: np.random.Generator) -> dict[str, Any]:
    """Check a :func:`generator_state` against ``generator`` without changing it.

    Returns:
        The state, as ``set_generator_state`` takes it.

    Raises:
        ValueError: naming ``name`` when the state is not a dict, is for another bit
            generator, or the bit generator rejects it.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"state {name} must be a dict, got {type(state).__name__}")
    mine = type(generator.bit_generator)
    if state.get("bit_generator") != mine.__name__:
        raise ValueError(
            f"state {name} is for bit generator {state.get('bit_generator')!r}, the env uses "
            f"{mine.__name__!r}"
        )
    plain = dict(state)
    try:
        mine().state = plain  # a scratch bit generator: numpy validates the fields
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"state {name} is not a valid {mine.__name__} state ({exc})") from exc
    return plain


def check_normalizer_state(state: Any, normalizer: RunningNormalizer) -> None:
    """Check a :meth:`RunningNormalizer.state_dict` against ``normalizer`` without changing it.

    Raises:
        ValueError: the state is not a dict, misses a key or has another number of terms.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"state 'normalizer' must be a dict, got {type(state).__name__}")
    missing = [k for k in ("count", "mean", "m2") if k not in state]
    if missing:
        raise ValueError(f"state 'normalizer' is missing key(s) {missing}")
    try:
        RunningNormalizer(len(normalizer.count)).load_state_dict(state)  # a scratch copy
    except (TypeError, ValueError) as exc:
        raise ValueError(f"state 'normalizer' does not fit: {exc}") from exc


def set_generator_state(generator: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Restore a state checked by :func:`check_generator_state` into ``generator`` in place."""
    generator.bit_generator.state = dict(state)


# ------------------------------------------------------------------- actions, reset options


def check_actions(
    actions: Any, shape: tuple[int, ...], space: spaces.Space, velocity_levels: int = 0
) -> np.ndarray:
    """Validate actions against the action space.

    Returns a bool array of ``shape`` (binary env), or int64 classes in ``0 .. K`` with
    ``K = velocity_levels > 0``.

    Raises:
        ValueError: naming the expected space when the shape is wrong or a value is not allowed.
    """
    a = np.asarray(actions)
    if a.shape != shape:
        raise ValueError(f"action must have shape {shape} for {space}, got shape {a.shape}")
    if velocity_levels:
        top = int(velocity_levels)
        if a.dtype == np.bool_:
            return a.astype(np.int64)
        if a.dtype.kind not in "uif":
            raise ValueError(f"action values must be integers in [0, {top}] for {space}, "
                             f"got dtype {a.dtype}")  # fmt: skip
        whole = a.dtype.kind != "f" or bool((np.isfinite(a) & (a == np.round(a))).all())
        classes = a.astype(np.int64) if whole and a.dtype.kind == "f" else a
        if (
            not whole
            or int(classes.min(initial=0)) < 0
            or int(classes.max(initial=0)) > top
        ):
            raise ValueError(f"action values must be integers in [0, {top}] for {space}, "
                             f"got {a!r}")  # fmt: skip
        return classes.astype(np.int64, copy=False)
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "uif":
        raise ValueError(f"action values must be 0 or 1 for {space}, got dtype {a.dtype}")
    hits = a == 1
    # every value is 0 or 1 when the nonzero values are exactly the ones (NaN is nonzero)
    if np.count_nonzero(a) != np.count_nonzero(hits):
        raise ValueError(f"action values must be 0 or 1 for {space}, got {a!r}")
    return hits


def check_reset_options(options: Any) -> Mapping[str, Any] | None:
    """Check ``reset(options=...)``: ``None``, or a dict with ``"window"`` or ``"sequence"``.

    Each given index must be an integer (numpy's too; not a bool, a float or a string); the
    range and unknown keys are checked when the window is chosen.

    Args:
        options: what ``reset`` was given.

    Returns:
        ``options`` itself.

    Raises:
        ValueError: ``options`` is not a mapping, gives both keys, or an index that is not an
            integer (the message names the option).
    """
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise ValueError(
            "options must be a dict such as {'window': 3} or {'sequence': 0}, got "
            f"{type(options).__name__} {options!r}"
        )
    if "window" in options and "sequence" in options:
        raise ValueError("options: give 'window' or 'sequence', not both")
    for key in ("window", "sequence"):
        value = options.get(key, 0)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"options[{key!r}] must be an integer index, got {value!r}")
    return options


def options_window(
    options: Mapping[str, Any] | None, data: ReferenceData, rng: np.random.Generator
) -> int:
    """The window of a reset, drawn from ``rng`` unless ``options`` chooses it.

    ``options["window"]`` picks a window, ``options["sequence"]`` a random window of that
    sequence; without options, a random window.

    Raises:
        ValueError: unknown option keys, or a window / sequence out of range.
    """
    if options is None:  # every autoreset of a vector env: one draw per sub-env, nothing to check
        return int(rng.integers(len(data.windows)))
    options = dict(check_reset_options(options) or {})
    unknown = sorted(set(options) - {"window", "sequence"})
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; known: ['window', 'sequence']")
    n = len(data.windows)
    if "window" in options:
        w = int(options["window"])
        if not 0 <= w < n:
            raise ValueError(f"options['window'] must be in [0, {n - 1}], got {w}")
        return w
    if "sequence" in options:
        s = int(options["sequence"])
        choices = np.flatnonzero(data.windows[:, 0] == s)
        if len(choices) == 0:
            raise ValueError(
                f"options['sequence']={s} has no window of the episode length "
                f"(sequences: 0..{len(data.hits) - 1})"
            )
        return int(choices[rng.integers(len(choices))])
    return int(rng.integers(n))
