"""The DrumCompose policy: a small causal Transformer over the canvas, conditioned on the target.

## Model

One token per drum step. Token ``i`` reads step ``i`` (its ``D`` hits) and predicts step ``i + 1``:

    x_i = W_in @ hits_i + pos[i] + step_emb[s_i] + bar_emb[b_i] + W_tgt @ target
    h   = LayerNorm(TransformerEncoder_causal(x))          # pre-LN, token i sees tokens <= i
    logits_i = W_pi @ h_i                                  # (D,) Bernoulli logits of step i + 1
    value_i  = MLP(stopgrad(h_i))                          # scalar

where ``s_i`` / ``b_i`` are the step-in-bar / bar-in-phrase of the step token ``i`` predicts
(``phase_i = s_i + steps_per_bar * b_i``), ``pos`` is a learned absolute position embedding over the
window (up to ``max(context_steps, 1024)`` tokens) and ``target`` is the song-feature vector of
the reference (:func:`drum_env.rewards.song_features`, the env's ``target`` observation),
projected and added to every token.

## Why a Transformer and not a GRU

* Pretraining is next-step prediction with teacher forcing: a causal Transformer computes the
  predictions for every step of a whole window in one parallel pass; a GRU must loop over the
  steps one after the other (a Python or cuDNN loop; on CPU it is the bottleneck).
* The env shows the policy a fixed window of the latest ``context_steps`` steps, not a running
  state. A Transformer reads that window as it is, with no hidden state to carry across PPO
  minibatches, episodes and autoresets; a GRU would either re-run the window step by step or
  need its state stored in the rollout buffer (and stale after each update).
* It is all matrix products and layer norms: ``torch.autocast`` (bf16 on CPU, fp16 on CUDA)
  speeds up every part of it.

## Heads

The policy head is a Linear to ``D`` logits, orthogonally initialised with gain 0.01 (CleanRL,
Andrychowicz et al. 2021: a near-uniform initial policy). The value head is a two-layer tanh MLP
(gains sqrt(2) and 1) on the *detached* trunk features: the value loss never moves the trunk, so
a pretrained trunk is not disturbed by the (initially large, noisy) value gradients of PPO, and
PPO's ``vf_coef`` does not trade value accuracy against the policy. The trunk learns from the
policy (and pretraining) loss only; the value head learns to read it.

## Observation mapping

:meth:`DrumPolicy.forward_obs` takes a batch of DrumCompose observations: ``context`` (the last
``C`` canvas steps flattened step-major, ``C * D`` values) becomes ``C`` tokens; the phase of the
step to write comes from the ``position`` one-hots (``argmax`` of the step-in-bar block plus
``steps_per_bar *`` ``argmax`` of the bar-in-phrase block); only the last token's outputs are
returned. So a policy pretrained on whole windows (:mod:`agents.pretrain`) acts in the env
unchanged, as long as ``num_drums``, ``steps_per_bar``, ``bars_per_phrase`` and ``target_size``
agree (:meth:`PolicyConfig.from_env_config`).

Checkpoints (:func:`save_policy`, :func:`load_policy`) hold ``{"format", "version", "config",
"state_dict"}`` with plain Python values and tensors only, loadable with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent

from dataset.io import atomic_write

if TYPE_CHECKING:
    from drum_env.core import DrumComposeConfig

__all__ = [
    "PolicyConfig",
    "PolicyOutput",
    "DrumPolicy",
    "obs_to_tensors",
    "save_policy",
    "load_policy",
]

_FORMAT = "drum-env/policy"
_VERSION = 1
_MIN_MAX_LEN = 1024


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class PolicyConfig:
    """Shape and regularisation of a :class:`DrumPolicy`. Validated on construction.

    Build it from an env with :meth:`from_env_config` so the sizes agree with the observations.
    """

    num_drums: int = 9
    """Drums per step ``D``: input features of a token and Bernoulli outputs per step."""
    context_steps: int = 16
    """Steps of the env's ``context`` observation ``C``; the position embedding covers
    ``max(context_steps, 1024)`` tokens (:attr:`max_len`)."""
    steps_per_bar: int = 16
    """Steps in one bar (16 = 16th notes in 4/4): size of the step-in-bar embedding."""
    bars_per_phrase: int = 4
    """Bars in one phrase: size of the bar-in-phrase embedding."""
    target_size: int = 20
    """Length ``K`` of the target-feature vector (the env's ``target`` observation)."""
    d_model: int = 32
    """Width of the Transformer; a multiple of ``n_heads``."""
    n_layers: int = 1
    """Transformer encoder layers."""
    n_heads: int = 2
    """Attention heads per layer."""
    dropout: float = 0.0
    """Dropout in the Transformer layers, in [0, 1). Keep 0 for PPO (log-probs of the rollout and
    of the update must agree)."""
    init_hit_rate: float = 0.1
    """Hit probability of every drum before training, in (0, 1): the policy head's bias starts at
    ``logit(init_hit_rate)``. Drummers hit each drum on about 1 step in 10 (the Groove subset's
    mean drum density is 0.13, the built-in corpus's 0.11); starting at 0.5 makes a fresh agent
    spend its first updates learning to play less. Pretrained weights replace it."""

    def __post_init__(self) -> None:
        for name in (
            "num_drums", "context_steps", "steps_per_bar", "bars_per_phrase", "target_size",
            "d_model", "n_layers", "n_heads",
        ):  # fmt: skip
            _check_positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be a multiple of n_heads={self.n_heads}, got d_model={self.d_model}"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.init_hit_rate, bool) or not 0.0 < float(self.init_hit_rate) < 1.0:
            raise ValueError(f"init_hit_rate must be in (0, 1), got {self.init_hit_rate!r}")

    @property
    def phrase_len(self) -> int:
        """Steps in one phrase: the number of distinct phases."""
        return self.steps_per_bar * self.bars_per_phrase

    @property
    def max_len(self) -> int:
        """Longest window (tokens) the position embedding covers."""
        return max(self.context_steps, _MIN_MAX_LEN)

    @property
    def position_size(self) -> int:
        """Length of the env's ``position`` observation this policy reads."""
        return self.steps_per_bar + self.bars_per_phrase + 2

    @classmethod
    def from_env_config(cls, cfg: DrumComposeConfig, **overrides: Any) -> PolicyConfig:
        """The config whose sizes match a DrumCompose task.

        Args:
            cfg: the env's :class:`~drum_env.core.DrumComposeConfig` (``env.unwrapped.config``).
            **overrides: any other field (``d_model``, ``n_layers``, ``n_heads``, ``dropout``,
                or a size to override).

        Returns:
            PolicyConfig with ``num_drums``, ``context_steps``, ``steps_per_bar``,
            ``bars_per_phrase`` and ``target_size`` taken from ``cfg``.

        Raises:
            TypeError: for an override that is not a field.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown PolicyConfig field(s) {unknown}; fields: {sorted(names)}")
        base = {
            "num_drums": cfg.num_drums,
            "context_steps": cfg.context_steps,
            "steps_per_bar": cfg.steps_per_bar,
            "bars_per_phrase": cfg.bars_per_phrase,
            "target_size": cfg.target_size,
        }
        return cls(**{**base, **overrides})


class PolicyOutput(NamedTuple):
    """Outputs of :class:`DrumPolicy`, float32."""

    logits: Tensor
    """Bernoulli logits of each drum of the predicted step: (B, L, D), or (B, D) from
    :meth:`DrumPolicy.forward_obs`."""
    value: Tensor
    """State value: (B, L), or (B,) from :meth:`DrumPolicy.forward_obs`."""


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class DrumPolicy(nn.Module):
    """Causal Transformer policy over drum steps with a per-drum Bernoulli head and a value head.

    See the module docstring for the model. Works on CPU and CUDA and under ``torch.autocast``
    (outputs are cast to float32). Initialisation draws from the global torch generator: call
    ``torch.manual_seed`` first for a reproducible model.

    Args:
        config: sizes and dropout.
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if not isinstance(config, PolicyConfig):
            raise TypeError(f"config must be a PolicyConfig, got {type(config).__name__}")
        self.config = config
        c, d = config, config.d_model
        self.input_proj = nn.Linear(c.num_drums, d)
        self.target_proj = nn.Linear(c.target_size, d)
        self.position_embedding = nn.Embedding(c.max_len, d)
        self.step_embedding = nn.Embedding(c.steps_per_bar, d)
        self.bar_embedding = nn.Embedding(c.bars_per_phrase, d)
        for emb in (self.position_embedding, self.step_embedding, self.bar_embedding):
            nn.init.normal_(emb.weight, std=0.02)  # GPT-2's scale; N(0, 1) would swamp the input
        layer = nn.TransformerEncoderLayer(
            d, c.n_heads, dim_feedforward=4 * d, dropout=c.dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.trunk = nn.TransformerEncoder(
            layer, c.n_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False
        )
        self.policy_head = _orthogonal(nn.Linear(d, c.num_drums), 0.01)
        rate = float(c.init_hit_rate)
        nn.init.constant_(self.policy_head.bias, float(np.log(rate / (1.0 - rate))))
        self.value_head = nn.Sequential(
            _orthogonal(nn.Linear(d, d), float(np.sqrt(2.0))),
            nn.Tanh(),
            _orthogonal(nn.Linear(d, 1), 1.0),
        )

    # ------------------------------------------------------------------------- model

    def _features(
        self, steps: Tensor, phase: Tensor, target: Tensor, last_only: bool = False
    ) -> Tensor:
        """Trunk features (B, L, d_model) of every token, or (B, d_model) of the last one.

        With ``last_only`` the final layer computes the last token alone (its query against
        every key): the same numbers as the full pass's last token, at a fraction of the cost
        when the policy acts and only the newest token matters.
        """
        c = self.config
        if steps.dim() != 3 or steps.shape[-1] != c.num_drums:
            raise ValueError(
                f"steps must have shape (B, L, num_drums={c.num_drums}), got {tuple(steps.shape)}"
            )
        b, length, _ = steps.shape
        if not 1 <= length <= c.max_len:
            raise ValueError(f"steps must have 1 to max_len={c.max_len} tokens, got {length}")
        if phase.shape != (b,):
            raise ValueError(f"phase must have shape (B,) = ({b},), got {tuple(phase.shape)}")
        if target.shape != (b, c.target_size):
            raise ValueError(
                f"target must have shape (B, target_size) = ({b}, {c.target_size}), "
                f"got {tuple(target.shape)}"
            )
        device = steps.device
        index = torch.arange(length, device=device)
        # phase of the step token i predicts: the last token's phase, (L - 1 - i) steps earlier
        back = length - 1 - index
        phases = torch.remainder(phase.to(device).long()[:, None] - back, c.phrase_len)
        x = (
            self.input_proj(steps.float())
            + self.position_embedding(index)
            + self.step_embedding(phases % c.steps_per_bar)
            + self.bar_embedding(phases // c.steps_per_bar)
            + self.target_proj(target.float())[:, None, :]
        )
        causal = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
        if not last_only:
            return self.trunk(x, mask=causal, is_causal=True)
        *lower, top = self.trunk.layers
        for layer in lower:
            x = layer(x, src_mask=causal, is_causal=True)
        keys = top.norm1(x)
        query = keys[:, -1:]
        attended = top.self_attn(query, keys, keys, need_weights=False)[0]
        h = x[:, -1:] + top.dropout1(attended)
        h = h + top._ff_block(top.norm2(h))
        return self.trunk.norm(h[:, 0])

    def _heads(self, h: Tensor) -> PolicyOutput:
        logits = self.policy_head(h).float()
        value = self.value_head(h.detach()).squeeze(-1).float()
        return PolicyOutput(logits, value)

    def forward(self, steps: Tensor, phase: Tensor, target: Tensor) -> PolicyOutput:
        """Predict every next step of a window, causally.

        Args:
            steps: float tensor (B, L, D), hits in {0, 1}; ``1 <= L <= config.max_len``.
                Token ``i`` reads step ``i`` and predicts step ``i + 1``; it sees tokens ``<= i``.
            phase: int tensor (B,): index within the phrase (``0 .. phrase_len - 1``) of the step
                the *last* token predicts; token ``i`` predicts phase
                ``(phase - (L - 1 - i)) mod phrase_len``.
            target: float tensor (B, K): target song features, values in [0, 1].

        Returns:
            PolicyOutput: logits float32 (B, L, D), value float32 (B, L).
        """
        return self._heads(self._features(steps, phase, target))

    def forward_obs(self, obs: Mapping[str, Tensor]) -> PolicyOutput:
        """Outputs for the step to write, from a batch of DrumCompose observations.

        Args:
            obs: ``{"context": (B, C * D), "position": (B, position_size), "target": (B, K)}``
                float tensors (see :func:`obs_to_tensors`); ``C`` need not equal
                ``config.context_steps`` but must be at most ``config.max_len``.

        Returns:
            PolicyOutput: logits float32 (B, D), value float32 (B,) of the last context token.
        """
        c = self.config
        context, position = obs["context"], obs["position"]
        if context.dim() != 2 or context.shape[-1] % c.num_drums:
            raise ValueError(
                f"obs['context'] must have shape (B, context_steps * num_drums) with "
                f"num_drums={c.num_drums}, got {tuple(context.shape)}"
            )
        if position.dim() != 2 or position.shape[-1] != c.position_size:
            raise ValueError(
                f"obs['position'] must have shape (B, {c.position_size}) (steps_per_bar + "
                f"bars_per_phrase + 2), got {tuple(position.shape)}"
            )
        steps = context.reshape(context.shape[0], -1, c.num_drums)
        spb, bpp = c.steps_per_bar, c.bars_per_phrase
        phase = position[:, :spb].argmax(-1) + spb * position[:, spb : spb + bpp].argmax(-1)
        return self._heads(self._features(steps, phase, obs["target"], last_only=True))

    # ------------------------------------------------------------------------- acting

    @staticmethod
    def distribution(logits: Tensor) -> Independent:
        """Independent Bernoulli per drum: ``log_prob`` and ``entropy`` sum over the last axis.

        Args:
            logits: tensor (..., D); cast to float32 (autocast may give bf16 / fp16).
        """
        return Independent(Bernoulli(logits=logits.float()), 1)

    def act(
        self,
        obs: Mapping[str, Tensor],
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Choose the next step's hits. Call under ``torch.no_grad()`` in rollouts.

        Args:
            obs: batch of observations, as in :meth:`forward_obs`.
            deterministic: hit exactly the drums with probability > 0.5.
            generator: torch generator for the Bernoulli draws (on the policy's device): a
                generator in the same state gives the same actions.

        Returns:
            actions float32 (B, D) of 0 / 1, log_prob float32 (B,), value float32 (B,).
        """
        out = self.forward_obs(obs)
        dist = self.distribution(out.logits)
        probs = dist.base_dist.probs
        if deterministic:
            actions = (probs > 0.5).float()
        else:
            actions = torch.bernoulli(probs.detach(), generator=generator)
        return actions, dist.log_prob(actions), out.value

    def evaluate_actions(
        self, obs: Mapping[str, Tensor], actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probability and entropy of given actions, and the value (PPO's update pass).

        Args:
            obs: batch of observations, as in :meth:`forward_obs`.
            actions: tensor (B, D) of 0 / 1 (any dtype).

        Returns:
            log_prob float32 (B,), entropy float32 (B,), value float32 (B,).
        """
        out = self.forward_obs(obs)
        dist = self.distribution(out.logits)
        return dist.log_prob(actions.to(out.logits)), dist.entropy(), out.value


def obs_to_tensors(obs: Mapping[str, np.ndarray], device: torch.device | str) -> dict[str, Tensor]:
    """Observations (numpy) -> float32 tensors on ``device``.

    Args:
        obs: a batched observation (``context`` (B, C * D), ...) as a vector env returns it, or a
            single env's observation (``context`` (C * D,), ...): a batch axis of 1 is added.
        device: target device.

    Returns:
        dict of float32 tensors with a leading batch axis, one per key of ``obs``.
    """
    single = np.ndim(obs["context"]) == 1
    out = {}
    for key, value in obs.items():
        t = torch.as_tensor(np.asarray(value), dtype=torch.float32, device=device)
        out[key] = t.unsqueeze(0) if single else t
    return out


# ----------------------------------------------------------------------------- checkpoints


def save_policy(path: str | Path, policy: DrumPolicy) -> Path:
    """Write a policy checkpoint atomically (temp file in the same folder, fsync, rename).

    Args:
        path: the file to write; its folder is created.
        policy: the policy; its tensors are saved on CPU.

    Returns:
        the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "config": asdict(policy.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()},
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


# The fields that shape the parameters. ``context_steps`` is not one: the policy reads any
# context length up to ``max_len``, so a policy pretrained on 32 steps of context acts on 16.
_ARCH_FIELDS = (
    "num_drums", "steps_per_bar", "bars_per_phrase", "target_size", "d_model", "n_layers",
    "n_heads",
)  # fmt: skip


def _shape_fields(state_dict: Mapping[str, Tensor]) -> dict[str, int]:
    """The config fields that the tensor shapes of a state dict reveal."""
    found: dict[str, int] = {}

    def shape(key: str) -> tuple[int, ...] | None:
        t = state_dict.get(key)
        return tuple(t.shape) if isinstance(t, Tensor) else None

    if (s := shape("input_proj.weight")) and len(s) == 2:
        found["d_model"], found["num_drums"] = s
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
    raw = payload["config"]
    names = {f.name for f in dataclasses.fields(PolicyConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{str(path)!r}: unknown PolicyConfig field(s) {unknown} in its config")
    try:
        config = PolicyConfig(**raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{str(path)!r}: invalid config: {exc}") from exc
    if expected is not None:
        diffs = [
            f"{name}: checkpoint has {getattr(config, name)}, expected {getattr(expected, name)}"
            for name in _ARCH_FIELDS
            if getattr(config, name) != getattr(expected, name)
        ]
        if diffs:
            raise ValueError(
                f"{str(path)!r} holds a policy of another shape; differing config fields: "
                + "; ".join(diffs)
            )
    state_dict = payload["state_dict"]
    policy = DrumPolicy(config)
    try:
        policy.load_state_dict(state_dict)
    except RuntimeError as exc:
        diffs = _describe_mismatch(config, state_dict)
        detail = "differing config fields: " + "; ".join(diffs) if diffs else str(exc)
        raise ValueError(f"{str(path)!r}: its tensors do not fit its config ({detail})") from exc
    if isinstance(map_location, (str, torch.device)):
        policy.to(map_location)
    return policy
