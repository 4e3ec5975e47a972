"""Whether a policy and a task agree: one check for every path that plays a policy in an env.

``drum-env generate`` (before it plays), :func:`agents.evaluation.rollout.policy_fn` given the env
it will play in (the Python path of the README), and every action function of ``policy_fn`` (on the
observations it is given) refuse a policy whose task is not the env's, with a message that names
the field and both values, instead of playing it at the wrong sizes or velocities:

* the metre (``steps_per_bar``, ``bars_per_phrase``) and the number of drums;
* the velocity classes (``velocity_levels``) and, with ``K > 0``, the velocity bins: a policy's
  class ``k`` plays at the level it learned only in an env built with its bins
  (``velocity_bins=agents.policies.policy.policy_velocity_bins(policy)``);
* the episode length (``seq_len``) of a policy that reads the canvas from its first step
  (``canvas_steps``);
* the observation layout: ``context`` of ``context_steps * num_drums`` values (exactly the
  policy's context for an MLP or an SB3 policy, at most its ``max_len`` steps for the
  Transformer), ``position`` and ``target`` of the policy's sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["check_policy_fits", "check_observation"]

_TASK_HINT = "leave {name} unset to use the policy's"
"""The hint of ``drum-env generate`` (its task fields default to the policy's)."""


def _exact_context(policy_config: Any) -> bool:
    """An MLP (or SB3) policy reads exactly its ``context_steps``; the Transformer up to max_len."""
    return bool(getattr(policy_config, "fixed_context", False)
                or getattr(policy_config, "kind", None) == "mlp")  # fmt: skip


def check_policy_fits(policy_config: Any, task: Any, source: str, *, policy_bins: Any = None,
                      hint: str = _TASK_HINT) -> None:  # fmt: skip
    """Raise ``ValueError`` when ``task`` does not fit the policy (naming the field).

    Args:
        policy_config: the policy's config (``policy.config``: a ``PolicyConfig``,
            ``MLPPolicyConfig`` or an :class:`~agents.evaluation.rollout.SB3Policy`'s).
        task: anything with ``steps_per_bar``, ``bars_per_phrase``, ``velocity_levels`` and
            ``context_steps`` (a :class:`~agents.evaluation.generate.GenerateConfig`, an env's
            :class:`~drum_env.core.DrumComposeConfig`); ``num_drums``, ``target_size``,
            ``position_size`` and ``velocity_bins`` are compared too where ``task`` has them.
        source: how to name the policy (its file).
        policy_bins: the policy's velocity bins (``policy_velocity_bins(policy)``), compared with
            ``task.velocity_bins`` when both are given.
        hint: what to do, with ``{name}`` for the field (``drum-env generate``'s by default).

    Raises:
        ValueError: the first field that differs, with both values.
    """
    names = ("num_drums", "steps_per_bar", "bars_per_phrase", "velocity_levels", "target_size",
             "position_size")  # fmt: skip
    for name in names:
        mine, theirs = getattr(task, name, None), getattr(policy_config, name, None)
        if name == "velocity_levels":
            theirs = theirs or 0
        if mine is None or theirs is None:
            continue
        if mine != theirs:
            raise ValueError(
                f"{name}={mine} does not fit policy {source!r}, which plays {name}={theirs}; "
                + hint.format(name=name)
            )
    canvas = getattr(policy_config, "canvas_steps", 0)
    seq_len = getattr(task, "seq_len", None)
    if canvas and seq_len is not None and seq_len != canvas:
        raise ValueError(
            f"seq_len={seq_len} does not fit policy {source!r}, which reads a canvas of "
            f"{canvas} steps from its first (canvas_steps={canvas}); use seq_len={canvas}"
        )
    context = getattr(task, "shown_steps", task.context_steps)  # a TaskConfig's whole_canvas
    if _exact_context(policy_config) and context != policy_config.max_len:
        raise ValueError(
            f"context_steps={context} does not fit policy {source!r}, which reads exactly "
            f"{policy_config.max_len} steps; " + hint.format(name="context_steps")
        )
    if context > policy_config.max_len:
        raise ValueError(
            f"context_steps={context} exceeds what policy {source!r} reads (at most "
            f"{policy_config.max_len} steps)"
        )
    bins = getattr(task, "velocity_bins", None)
    if bins is not None and policy_bins is not None and bins != policy_bins:
        raise ValueError(
            f"velocity_bins of the env ({bins!r}) are not those policy {source!r} learned "
            f"({policy_bins!r}): its classes would play at other velocities; build the env "
            "with velocity_bins=agents.policies.policy.policy_velocity_bins(policy)"
        )


def check_observation(policy_config: Any, obs: Mapping[str, Any], source: str = "the policy"
                      ) -> None:  # fmt: skip
    """Raise ``ValueError`` when a batched observation is not laid out as the policy reads it.

    Args:
        policy_config: the policy's config (see :func:`check_policy_fits`).
        obs: a batched observation (``context``, ``position``, ``target``, batch axis first).
        source: how to name the policy.
    """
    drums = getattr(policy_config, "num_drums", None)
    widths = {k: int(np.shape(v)[-1]) for k, v in obs.items() if np.ndim(v) >= 1}
    context = widths.get("context")
    if drums and context is not None:
        steps = context // drums
        exact = _exact_context(policy_config)
        if context % drums or steps < 1 or steps > policy_config.max_len or (
                exact and steps != policy_config.max_len):  # fmt: skip
            reads = (f"exactly {policy_config.max_len}" if exact
                     else f"1 to {policy_config.max_len}")  # fmt: skip
            raise ValueError(
                f"observation 'context' has {context} values, but {source} reads {reads} "
                f"steps of num_drums={drums}: the env's drums or context_steps do not fit it"
            )
    for key, name in (("position", "position_size"), ("target", "target_size")):
        want = getattr(policy_config, name, None)
        if want is not None and key in widths and widths[key] != want:
            raise ValueError(
                f"observation {key!r} has {widths[key]} values, but {source} reads {want} "
                f"({name}): the env's metre, drums or velocity levels do not fit it"
            )
