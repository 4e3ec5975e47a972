"""The DrumCompose policies: the kinds, a policy built or loaded, its file, its velocity bins.

The policies' public face, one module to import (as before they got rooms of their own); the
code lives by concept:

* :mod:`agents.policies.transformer`: :class:`DrumPolicy`, the causal Transformer (the model,
  why not a GRU, the heads, the observation mapping) and its :class:`PolicyConfig`;
* :mod:`agents.policies.mlp`: :class:`MLPPolicy`, SB3's PPO policy at equal size;
* :mod:`agents.policies.distributions`: :class:`ActionDist` and the Bernoulli / categorical
  kernels (velocity classes);
* :mod:`agents.policies.common`: what both policies share (:class:`PolicyOutput`, the heads,
  the velocity bins, :func:`obs_to_tensors`);
* here: :data:`POLICY_KINDS`, :func:`make_policy`, the policy file (:func:`save_policy`,
  :func:`load_policy`, :func:`policy_from_state`) and :func:`policy_velocity_bins`.

Checkpoints (:func:`save_policy`, :func:`load_policy`) hold ``{"format", "version", "kind",
"config", "state_dict"}`` with plain Python values and tensors only, loadable with
``torch.load(weights_only=True)``. An MLP's config records ``kind: "mlp"`` (so a PPO
checkpoint's ``policy_config`` names it too); a config without ``kind`` is a Transformer's.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from agents.policies.common import PolicyOutput, obs_to_tensors
from agents.policies.distributions import (
    ActionDist,
    action_dist,
    bernoulli_entropy,
    bernoulli_kl,
    bernoulli_log_prob,
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
)
from agents.policies.mlp import MLPPolicy, MLPPolicyConfig
from agents.policies.transformer import DrumPolicy, PolicyConfig
from dataset.io import atomic_write
from dataset.velocity import VelocityBins

if TYPE_CHECKING:
    from drum_env.core import DrumComposeConfig

__all__ = [
    "POLICY_KINDS", "make_policy", "save_policy", "load_policy", "policy_from_state",
    "policy_velocity_bins", "saved_policy_config",
    # the rooms' public names, re-exported (this module held them all before 0.4)
    "PolicyConfig", "DrumPolicy", "MLPPolicyConfig", "MLPPolicy", "PolicyOutput",
    "obs_to_tensors", "ActionDist", "action_dist", "bernoulli_log_prob", "bernoulli_entropy",
    "bernoulli_kl", "categorical_log_prob", "categorical_entropy", "categorical_kl",
]  # fmt: skip


_FORMAT = "drum-env/policy"
_VERSION = 1

POLICY_KINDS: tuple[str, ...] = ("transformer", "mlp")
"""The policy kinds: :class:`DrumPolicy` (``transformer``) and :class:`MLPPolicy` (``mlp``);
the values of :attr:`agents.training.ppo.PPOConfig.policy_kind`."""


def make_policy(kind: str, env_config: DrumComposeConfig, **overrides: Any
                ) -> DrumPolicy | MLPPolicy:  # fmt: skip
    """A fresh policy of ``kind`` sized for a DrumCompose task (draws from the global generator).

    With velocity classes it plays at the env config's ``velocity_bins``.

    Args:
        kind: one of :data:`POLICY_KINDS`.
        env_config: the env's :class:`~drum_env.core.DrumComposeConfig`.
        **overrides: fields of the kind's config (:class:`PolicyConfig` or
            :class:`MLPPolicyConfig`).

    Raises:
        ValueError: an unknown kind.
    """
    bins = getattr(env_config, "velocity_bins", None)
    if kind == "transformer":
        config = PolicyConfig.from_env_config(env_config, **overrides)
        return DrumPolicy(config, bins if config.velocity_levels else None)
    if kind == "mlp":
        mlp_config = MLPPolicyConfig.from_env_config(env_config, **overrides)
        return MLPPolicy(mlp_config, bins if mlp_config.velocity_levels else None)
    raise ValueError(f"policy kind must be one of {list(POLICY_KINDS)}, got {kind!r}")


def _mlp_from_state(raw: Mapping[str, Any], state_dict: Mapping[str, Tensor], path: str,
                    expected: Any = None) -> MLPPolicy:  # fmt: skip
    """An :class:`MLPPolicy` from a saved config dict (``kind: "mlp"``) and state dict.

    Raises:
        ValueError: an invalid config, another architecture than ``expected``, or tensors that
            do not fit (the message names ``path``).
    """
    if expected is not None and not isinstance(expected, MLPPolicyConfig):
        raise ValueError(
            f"{path!r} holds an mlp policy, but a {getattr(expected, 'kind', 'transformer')} "
            "policy is expected (pretrained policies are Transformers: policy_kind='transformer')"
        )
    names = {f.name for f in dataclasses.fields(MLPPolicyConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{path!r}: unknown MLPPolicyConfig field(s) {unknown} in its config")
    try:
        config = MLPPolicyConfig(**raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path!r}: invalid config: {exc}") from exc
    if expected is not None:
        diffs = [f"{f.name}: checkpoint has {getattr(config, f.name)}, expected "
                 f"{getattr(expected, f.name)}" for f in dataclasses.fields(MLPPolicyConfig)
                 if f.name != "init_hit_rate"
                 and getattr(config, f.name) != getattr(expected, f.name)]  # fmt: skip
        if diffs:
            raise ValueError(
                f"{path!r} holds a policy of another shape; differing config fields: "
                + "; ".join(diffs)
            )
    policy = MLPPolicy(config)
    try:
        policy.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path!r}: its tensors do not fit its config ({exc})") from exc
    return policy


# ----------------------------------------------------------------------------- checkpoints


def save_policy(path: str | Path, policy: DrumPolicy | MLPPolicy) -> Path:
    """Write a policy checkpoint atomically (temp file in the same folder, fsync, rename).

    The file records the policy's kind (``"kind"``: ``transformer`` or ``mlp``; an MLP's config
    also holds ``kind``), so :func:`load_policy` rebuilds the right class.

    Args:
        path: the file to write; its folder is created.
        policy: the policy (either kind); its tensors are saved on CPU.

    Returns:
        the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "kind": policy.kind,
        "config": asdict(policy.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()},
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


# The fields that shape the parameters. ``context_steps`` is not one: the policy reads any
# context length up to ``max_len``, so a policy pretrained on 32 steps of context acts on 16.
_ARCH_FIELDS = (
    "num_drums", "steps_per_bar", "bars_per_phrase", "target_size", "d_model", "n_layers",
    "n_heads", "velocity_levels", "joint_step",
)  # fmt: skip


def _shape_fields(state_dict: Mapping[str, Tensor]) -> dict[str, int]:
    """The config fields that the tensor shapes of a state dict reveal."""
    found: dict[str, int] = {}

    def shape(key: str) -> tuple[int, ...] | None:
        t = state_dict.get(key)
        return tuple(t.shape) if isinstance(t, Tensor) else None

    if (s := shape("input_proj.weight")) and len(s) == 2:
        found["d_model"], found["num_drums"] = s
        if (h := shape("policy_head.weight")) and len(h) == 2 and h[0] % s[1] == 0:
            found["velocity_levels"] = h[0] // s[1] - 1
    if (s := shape("target_proj.weight")) and len(s) == 2:
        found["target_size"] = s[1]
    if (s := shape("step_embedding.weight")) and len(s) == 2:
        found["steps_per_bar"] = s[0]
    if (s := shape("bar_embedding.weight")) and len(s) == 2:
        found["bars_per_phrase"] = s[0]
    if (s := shape("position_embedding.weight")) and len(s) == 2:
        found["max_len"] = s[0]
    layers = {k.split(".")[2] for k in state_dict if k.startswith("trunk.layers.")}
    if layers:
        found["n_layers"] = len(layers)
    return found


def _describe_mismatch(config: PolicyConfig, state_dict: Mapping[str, Tensor]) -> list[str]:
    found = _shape_fields(state_dict)
    diffs = []
    for name, value in found.items():
        mine = getattr(config, name)
        if value != mine:
            field = "context_steps (position embedding max_len)" if name == "max_len" else name
            diffs.append(f"{field}: tensors have {value}, config has {mine}")
    return diffs


def load_policy(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    *,
    expected: PolicyConfig | None = None,
) -> DrumPolicy:
    """Read a checkpoint written by :func:`save_policy` (``torch.load(weights_only=True)``).

    Args:
        path: the checkpoint file.
        map_location: device of the loaded policy.
        expected: if given, the checkpoint's architecture (every field but ``dropout`` and
            ``context_steps``) must
            equal it, e.g. ``PolicyConfig.from_env_config(env_config, d_model=...)``.

    Returns:
        the policy, on ``map_location``, in training mode.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ValueError: the file is not a readable policy checkpoint, or its tensors or its config
            do not match (the message names the file and the differing config fields).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except (
        OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile,
        KeyError, AttributeError, TypeError, IndexError, UnicodeDecodeError,
    ) as exc:  # fmt: skip
        # torch reports a damaged archive as any of these (a truncated zip: OSError EINVAL)
        raise ValueError(f"{str(path)!r} is not a readable policy checkpoint: {exc}") from exc
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("config"), dict)
        or not isinstance(payload.get("state_dict"), dict)
    ):
        raise ValueError(
            f"{str(path)!r} is not a policy checkpoint (expected a dict with 'config' and "
            "'state_dict', as save_policy writes)"
        )
    policy = policy_from_state(payload["config"], payload["state_dict"], path, expected=expected)
    if isinstance(map_location, (str, torch.device)):
        policy.to(map_location)
    return policy


def policy_from_state(
    raw_config: Any, state_dict: Any, source: str | Path, *, expected: PolicyConfig | None = None
) -> DrumPolicy:
    """A :class:`DrumPolicy` built from a saved config dict and state dict, or a named error.

    Building draws from the global torch generator; the state dict then replaces every
    parameter.

    Args:
        raw_config: the saved :class:`PolicyConfig` fields (a dict).
        state_dict: the saved tensors (a dict).
        source: the file they came from, for the messages.
        expected: if given, the architecture must equal it (see :func:`load_policy`).

    Returns:
        the policy (CPU, training mode).

    Raises:
        ValueError: the config is not a dict of valid ``PolicyConfig`` fields, the state is not
            a dict, the architecture differs from ``expected``, or the tensors do not fit (the
            message names ``source`` and what is wrong).
    """
    path = str(source)
    if not isinstance(raw_config, dict):
        raise ValueError(
            f"{path!r}: its policy config is {type(raw_config).__name__}, not a dict of "
            "PolicyConfig fields"
        )
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path!r}: its model state is {type(state_dict).__name__}, not a dict")
    raw = raw_config
    if raw.get("kind", "transformer") == "mlp":  # an MLPPolicy's config records its kind
        return _mlp_from_state(raw, state_dict, path, expected)
    names = {f.name for f in dataclasses.fields(PolicyConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{path!r}: unknown PolicyConfig field(s) {unknown} in its config")
    missing = sorted(
        f.name for f in dataclasses.fields(PolicyConfig)
        if f.name not in raw and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )  # fmt: skip
    if missing:
        raise ValueError(f"{path!r}: its policy config lacks field(s) {missing}")
    try:
        config = PolicyConfig(**raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path!r}: invalid config: {exc}") from exc
    if expected is not None:
        diffs = [
            f"{name}: checkpoint has {getattr(config, name)}, expected {getattr(expected, name)}"
            for name in _ARCH_FIELDS
            if getattr(config, name) != getattr(expected, name)
        ]
        if diffs:
            raise ValueError(
                f"{path!r} holds a policy of another shape; differing config fields: "
                + "; ".join(diffs)
            )
    policy = DrumPolicy(config)
    try:
        policy.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as exc:
        diffs = _describe_mismatch(config, state_dict)
        detail = "differing config fields: " + "; ".join(diffs) if diffs else str(exc)
        raise ValueError(f"{path!r}: its tensors do not fit its config ({detail})") from exc
    return policy


def saved_policy_config(path: str | Path) -> dict[str, Any]:
    """The config a ``policy.pt`` (or a PPO ``checkpoint.pt``) records, as a dict.

    The policy is not built (the file is read with ``weights_only=True``): no torch random
    numbers are drawn.

    Raises:
        FileNotFoundError: a file that does not exist.
        ValueError: a file that is neither a policy file nor a PPO checkpoint (named).
    """
    from agents.training.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    config = payload.get("config") if "state_dict" in payload else payload.get("policy_config")
    if not isinstance(config, dict):
        raise ValueError(f"{str(path)!r} is neither a policy file nor a PPO checkpoint")
    return dict(config)


def policy_velocity_bins(policy: Any) -> VelocityBins | None:
    """The velocity bins a policy plays at: ``None`` for a binary policy.

    Build an evaluation env that plays the policy's classes at the levels it learned with
    ``velocity_bins=policy_velocity_bins(policy)`` (or its ``to_dict()``).

    Args:
        policy: a policy (or anything with a ``velocity_bins`` attribute, such as the
            :class:`~agents.evaluation.rollout.SB3Policy` config), or a file: a ``policy.pt`` of
            :func:`save_policy` or a PPO ``checkpoint.pt`` (read with ``weights_only=True``;
            no module is built).

    Returns:
        the :class:`~dataset.velocity.VelocityBins`, or ``None`` when ``velocity_levels = 0``.

    Raises:
        FileNotFoundError: a file that does not exist.
        ValueError: a file that is not a policy or PPO checkpoint, or whose bins are invalid
            (the message names it).
    """
    if not isinstance(policy, (str, Path)):
        found = getattr(policy, "velocity_bins", None)
        if found is None and hasattr(policy, "config"):
            found = getattr(policy.config, "velocity_bins", None)
        return None if found is None else VelocityBins.from_dict(found)
    from agents.training.checkpoint import load_checkpoint

    payload = load_checkpoint(policy)
    config = payload.get("config") if "state_dict" in payload else payload.get("policy_config")
    state = payload.get("state_dict", payload.get("model"))
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise ValueError(f"{str(policy)!r} is neither a policy file nor a PPO checkpoint")
    if not config.get("velocity_levels", 0):
        return None
    try:
        return VelocityBins(state["velocity_bin_edges"].double().numpy(),
                            state["velocity_bin_levels"].float().numpy())  # fmt: skip
    except (KeyError, AttributeError, ValueError) as exc:
        raise ValueError(f"{str(policy)!r}: no valid velocity bins in its state ({exc})") from exc
