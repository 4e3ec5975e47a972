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

## Velocity classes

With ``velocity_levels = K > 0`` (the env's ``MultiDiscrete([K + 1] * D)`` action: 0 is no hit,
class ``k`` a hit in velocity bin ``k``, :mod:`dataset.velocity`) the policy head gives
``D * (K + 1)`` logits, shaped ``(..., D, K + 1)``: an independent categorical per drum, whose
log-probability and entropy are summed over the drums. Its bias starts every drum at
``P(no hit) = 1 - init_hit_rate`` and ``init_hit_rate / K`` for each velocity class. The input
is unchanged: a token reads the step's values (velocities in ``[0, 1]``, as the env's
``context`` shows them). :class:`ActionDist` holds the maths of both heads (sampling, mode,
log-probability, entropy, KL), chosen by ``K`` (:func:`action_dist`); the trainer and the
rollouts use it through ``policy.action_dist``. With ``K = 0`` every number is what it was
before velocities existed (the same parameters, initial draws and kernels).

A policy with ``K > 0`` keeps the :class:`~dataset.velocity.VelocityBins` it plays at as two
buffers (``velocity_bin_edges`` float64, ``velocity_bin_levels`` float32) in its state dict, so
:func:`save_policy`, a PPO checkpoint's model state and ``load_state_dict`` all carry them;
:attr:`DrumPolicy.velocity_bins` (and :func:`policy_velocity_bins` for a file) gives them back
to build evaluation envs with the same bins (``velocity_bins=bins.to_dict()``). A policy built
without bins holds the uniform bins (``VelocityBins.uniform(K)``) until its state is loaded.

## Observation mapping

:meth:`DrumPolicy.forward_obs` takes a batch of DrumCompose observations: ``context`` (the last
``C`` canvas steps flattened step-major, ``C * D`` values) becomes ``C`` tokens; the phase of the
step to write comes from the ``position`` one-hots (``argmax`` of the step-in-bar block plus
``steps_per_bar *`` ``argmax`` of the bar-in-phrase block); only the last token's outputs are
returned. So a policy pretrained on whole windows (:mod:`agents.training.pretrain`) acts in the env
unchanged, as long as ``num_drums``, ``steps_per_bar``, ``bars_per_phrase`` and ``target_size``
agree (:meth:`PolicyConfig.from_env_config`).

The last token's attention (:func:`_last_token_attention`) is the module's own computation
(the same projections on the same layout, the same ``scaled_dot_product_attention``) without
the module's argument checks and repacking copies: bitwise the same outputs and gradients,
tested against ``nn.MultiheadAttention``. Caching keys and values across env steps is not
possible: the window slides by one step each step, so every token's absolute position
embedding, and with it every key and value, changes.

## The MLP policy

:class:`MLPPolicy` (``kind = "mlp"``) is the policy Stable-Baselines3's PPO builds for this
env: the observation flattened (``context``, ``position``, ``target``), two separate 64-64
tanh MLPs for the policy and the value, orthogonal initialisation. It has the interface the
trainer and the rollouts use (:meth:`~MLPPolicy.forward_obs`, :meth:`~MLPPolicy.act`,
:meth:`~MLPPolicy.evaluate_actions`, :meth:`~MLPPolicy.distribution`) and reads exactly its own
``context_steps``. :func:`make_policy` builds either kind from an env config.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent

from dataset.io import atomic_write
from dataset.velocity import MAX_VELOCITY_LEVELS, VelocityBins

if TYPE_CHECKING:
    from drum_env.core import DrumComposeConfig

__all__ = [
    "POLICY_KINDS",
    "PolicyConfig",
    "PolicyOutput",
    "DrumPolicy",
    "MLPPolicyConfig",
    "MLPPolicy",
    "make_policy",
    "ActionDist",
    "action_dist",
    "bernoulli_log_prob",
    "bernoulli_entropy",
    "bernoulli_kl",
    "categorical_log_prob",
    "categorical_entropy",
    "categorical_kl",
    "policy_velocity_bins",
    "obs_to_tensors",
    "save_policy",
    "load_policy",
    "policy_from_state",
]

_FORMAT = "drum-env/policy"
_VERSION = 1
_MIN_MAX_LEN = 1024

POLICY_KINDS: tuple[str, ...] = ("transformer", "mlp")
"""The policy kinds: :class:`DrumPolicy` (``transformer``) and :class:`MLPPolicy` (``mlp``);
the values of :attr:`agents.training.ppo.PPOConfig.policy_kind`."""


def _config_from_env(cls: type, cfg: DrumComposeConfig, overrides: Mapping[str, Any]) -> Any:
    """A policy config of ``cls`` sized for a DrumCompose task, with ``overrides`` on top.

    Raises:
        TypeError: for an override that is not a field of ``cls`` (the message lists them).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown {cls.__name__} field(s) {unknown}; fields: {sorted(names)}")
    base = {
        "num_drums": cfg.num_drums,
        "context_steps": cfg.context_steps,
        "steps_per_bar": cfg.steps_per_bar,
        "bars_per_phrase": cfg.bars_per_phrase,
        "target_size": cfg.target_size,
        "velocity_levels": int(getattr(cfg, "velocity_levels", 0)),
    }
    return cls(**{**base, **overrides})


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_velocity_levels(value: Any) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not 0 <= value <= MAX_VELOCITY_LEVELS):  # fmt: skip
        raise ValueError(
            f"velocity_levels must be an integer in [0, {MAX_VELOCITY_LEVELS}] (0: binary hits), "
            f"got {value!r}"
        )


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
    velocity_levels: int = 0
    """Velocity classes ``K`` of the action, in ``[0, 127]``: 0 plays binary hits (a Bernoulli
    per drum: the env's ``MultiBinary`` action); ``K > 0`` a categorical per drum over ``K + 1``
    classes (0 no hit, ``k`` velocity bin ``k``: the env with ``velocity_levels=K``). A saved
    config without it is a binary policy's."""

    def __post_init__(self) -> None:
        for name in (
            "num_drums", "context_steps", "steps_per_bar", "bars_per_phrase", "target_size",
            "d_model", "n_layers", "n_heads",
        ):  # fmt: skip
            _check_positive_int(getattr(self, name), name)
        _check_velocity_levels(self.velocity_levels)
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
            ``bars_per_phrase``, ``target_size`` and ``velocity_levels`` taken from ``cfg``.

        Raises:
            TypeError: for an override that is not a field.
        """
        return _config_from_env(cls, cfg, overrides)


class PolicyOutput(NamedTuple):
    """Outputs of :class:`DrumPolicy`, float32."""

    logits: Tensor
    """Logits of each drum of the predicted step: Bernoulli logits (B, L, D), or (B, D) from
    :meth:`DrumPolicy.forward_obs`; with ``velocity_levels = K > 0`` categorical logits with a
    trailing class axis, (B, L, D, K + 1) or (B, D, K + 1)."""
    value: Tensor
    """State value: (B, L), or (B,) from :meth:`DrumPolicy.forward_obs`."""


def bernoulli_log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    """Log-probability of ``actions`` under independent Bernoullis, summed over the last axis.

    Bitwise what ``DrumPolicy.distribution(logits).log_prob(actions)`` returns (the same
    kernel, ``-binary_cross_entropy_with_logits``), without building distribution objects or
    validating their arguments (which costs more than the maths at PPO's batch sizes).

    Args:
        logits: float32 tensor (..., D).
        actions: float32 tensor (..., D) of 0 / 1.

    Returns:
        float32 tensor (...).
    """
    return -nn.functional.binary_cross_entropy_with_logits(logits, actions,
                                                           reduction="none").sum(-1)  # fmt: skip


def bernoulli_entropy(logits: Tensor) -> Tensor:
    """Entropy of independent Bernoullis given by logits, summed over the last axis.

    Bitwise ``DrumPolicy.distribution(logits).entropy()``.

    Args:
        logits: float32 tensor (..., D).

    Returns:
        float32 tensor (...), >= 0.
    """
    probs = torch.sigmoid(logits)
    return nn.functional.binary_cross_entropy_with_logits(logits, probs,
                                                          reduction="none").sum(-1)  # fmt: skip


def bernoulli_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """``KL(p || q)`` of independent Bernoullis given by logits, summed over the last axis.

    ``sum_d p_d (log p_d - log q_d) + (1 - p_d) (log(1 - p_d) - log(1 - q_d))``, computed with
    ``logsigmoid`` for stability, in float32.

    Args:
        logits_p: tensor (..., D).
        logits_q: tensor (..., D).

    Returns:
        float32 tensor (...), >= 0.
    """
    lp, lq = logits_p.float(), logits_q.float()
    p = torch.sigmoid(lp)
    f = nn.functional.logsigmoid
    kl = p * (f(lp) - f(lq)) + (1.0 - p) * (f(-lp) - f(-lq))
    return kl.sum(-1)


def categorical_log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    """Log-probability of class ``actions`` under a categorical per drum, summed over the drums.

    Args:
        logits: float tensor (..., D, C).
        actions: integer tensor (..., D) of classes in ``0 .. C - 1`` (any dtype holding them).

    Returns:
        float32 tensor (...).
    """
    log_p = nn.functional.log_softmax(logits.float(), -1)
    return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1).sum(-1)


def categorical_entropy(logits: Tensor) -> Tensor:
    """Entropy of a categorical per drum given by logits, summed over the drums.

    Args:
        logits: float tensor (..., D, C).

    Returns:
        float32 tensor (...), >= 0.
    """
    log_p = nn.functional.log_softmax(logits.float(), -1)
    return -(log_p.exp() * log_p).sum((-2, -1))


def categorical_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """``KL(p || q)`` of a categorical per drum given by logits, summed over the drums.

    ``sum_d sum_c p_dc (log p_dc - log q_dc)``, from ``log_softmax``, in float32.

    Args:
        logits_p: tensor (..., D, C).
        logits_q: tensor (..., D, C).

    Returns:
        float32 tensor (...), >= 0.
    """
    log_p = nn.functional.log_softmax(logits_p.float(), -1)
    log_q = nn.functional.log_softmax(logits_q.float(), -1)
    return (log_p.exp() * (log_p - log_q)).sum((-2, -1))


@dataclass(frozen=True)
class ActionDist:
    """The action distribution of a policy head: the maths of acting, chosen by ``K``.

    ``velocity_levels = 0``: an independent Bernoulli per drum over logits (..., D), actions
    float32 0 / 1 (the :func:`bernoulli_log_prob` kernels). ``K > 0``: an independent
    categorical per drum over logits (..., D, K + 1), actions int64 classes ``0 .. K``. Every
    log-probability, entropy and KL is summed over the drums, in float32. Get one with
    :func:`action_dist` or ``policy.action_dist``.
    """

    velocity_levels: int = 0
    """``K``: 0 for the binary head, else the number of velocity classes of a hit."""

    @property
    def action_dtype(self) -> torch.dtype:
        """The dtype of the actions: float32 (binary) or int64 (classes)."""
        return torch.int64 if self.velocity_levels else torch.float32

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw an action per drum (no gradient): (..., D) of :attr:`action_dtype`."""
        logits = logits.detach().float()
        if not self.velocity_levels:
            return torch.bernoulli(torch.sigmoid(logits), generator=generator)
        probs = torch.softmax(logits, -1)
        draws = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        return draws.view(probs.shape[:-1])

    def mode(self, logits: Tensor) -> Tensor:
        """The most likely action per drum: hit where ``p > 0.5``, or the argmax class."""
        logits = logits.detach().float()
        if not self.velocity_levels:
            return (torch.sigmoid(logits) > 0.5).float()
        return logits.argmax(-1)

    def log_prob(self, logits: Tensor, actions: Tensor) -> Tensor:
        """``log pi(actions)`` summed over the drums: float32 (...)."""
        logits = logits.float()
        if not self.velocity_levels:
            return bernoulli_log_prob(logits, actions.to(logits))
        return categorical_log_prob(logits, actions)

    def entropy(self, logits: Tensor) -> Tensor:
        """Entropy summed over the drums: float32 (...)."""
        logits = logits.float()
        return categorical_entropy(logits) if self.velocity_levels else bernoulli_entropy(logits)

    def kl(self, logits_p: Tensor, logits_q: Tensor) -> Tensor:
        """``KL(p || q)`` summed over the drums: float32 (...), >= 0."""
        if not self.velocity_levels:
            return bernoulli_kl(logits_p, logits_q)
        return categorical_kl(logits_p, logits_q)

    def distribution(self, logits: Tensor) -> Distribution:
        """The torch distribution (``Independent`` over the drums) the methods above compute."""
        if not self.velocity_levels:
            return Independent(Bernoulli(logits=logits.float()), 1)
        return Independent(Categorical(logits=logits.float()), 1)


def action_dist(velocity_levels: int = 0) -> ActionDist:
    """The :class:`ActionDist` of a head with ``velocity_levels`` classes (0: binary).

    Raises:
        ValueError: ``velocity_levels`` is not an integer in ``[0, 127]``.
    """
    _check_velocity_levels(velocity_levels)
    return ActionDist(int(velocity_levels))


class _DistributionOf:
    """``policy.distribution(logits)``: the policy's own head's distribution.

    Called on the class (``DrumPolicy.distribution(logits)``), the binary head's, as always.
    """

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return ActionDist(0).distribution
        return obj.action_dist.distribution


def _policy_head(width: int, config: Any) -> nn.Linear:
    """The policy head: ``D`` Bernoulli logits, or ``D * (K + 1)`` categorical logits.

    Orthogonal weights of gain 0.01; the bias starts every drum at ``init_hit_rate``
    (``logit(rate)``; with ``K`` classes, ``log(1 - rate)`` for no hit and ``log(rate / K)`` for
    each velocity class, so the softmax gives exactly those probabilities).
    """
    k, drums, rate = config.velocity_levels, config.num_drums, float(config.init_hit_rate)
    head = _orthogonal(nn.Linear(width, drums * (k + 1) if k else drums), 0.01)
    with torch.no_grad():
        if not k:
            nn.init.constant_(head.bias, float(np.log(rate / (1.0 - rate))))
        else:
            per_drum = torch.tensor([np.log(1.0 - rate)] + [np.log(rate / k)] * k)
            head.bias.copy_(per_drum.repeat(drums))
    return head


def _shape_logits(logits: Tensor, config: Any) -> Tensor:
    """The head's output as logits: (..., D) unchanged, or (..., D * (K + 1)) -> (..., D, K + 1)."""
    k = config.velocity_levels
    return logits.unflatten(-1, (config.num_drums, k + 1)) if k else logits


class _VelocityBinsMixin:
    """The velocity bins a policy plays at, kept as buffers (see the module docstring)."""

    config: Any
    velocity_bin_edges: Tensor
    velocity_bin_levels: Tensor

    def _register_velocity_bins(self, bins: VelocityBins | Mapping[str, Any] | None) -> None:
        k = self.config.velocity_levels
        if not k:
            if bins is not None:
                raise ValueError(
                    "velocity_bins were given but velocity_levels=0 (a binary policy has no bins)"
                )
            return
        bins = VelocityBins.uniform(k) if bins is None else VelocityBins.from_dict(bins)
        if bins.num_levels != k:
            raise ValueError(
                f"velocity_bins have {bins.num_levels} levels but velocity_levels={k}"
            )
        self.register_buffer("velocity_bin_edges", torch.from_numpy(bins.edges.copy()))
        self.register_buffer("velocity_bin_levels", torch.from_numpy(bins.levels.copy()))

    @property
    def action_dist(self) -> ActionDist:
        """The :class:`ActionDist` of this policy's head."""
        return ActionDist(self.config.velocity_levels)

    @property
    def velocity_bins(self) -> VelocityBins | None:
        """The :class:`~dataset.velocity.VelocityBins` the policy plays at.

        ``None`` when ``velocity_levels = 0``; build evaluation envs with ``velocity_bins=``
        these.
        """
        if not self.config.velocity_levels:
            return None
        return VelocityBins(
            self.velocity_bin_edges.detach().cpu().numpy().astype(np.float64),
            self.velocity_bin_levels.detach().cpu().numpy().astype(np.float32),
        )

    distribution = _DistributionOf()
    """``distribution(logits)``: the head's torch distribution, independent over the drums
    (``log_prob`` and ``entropy`` sum over them): a Bernoulli per drum for logits (..., D), or a
    categorical per drum for (..., D, K + 1) when ``velocity_levels > 0``; cast to float32
    (autocast may give bf16 / fp16). On the class (``DrumPolicy.distribution``) the binary
    head's."""


def _lookup(embedding: nn.Embedding, index: Tensor) -> Tensor:
    """``embedding(index)`` as an ``index_select``: the same rows, and the same gradient faster.

    On CPU the backward of ``index_select`` (``index_add`` in index order) is bitwise the
    embedding's and several times faster; elsewhere this is the embedding itself (its
    deterministic CUDA backward is what exact resume relies on).

    Args:
        embedding: the table (no padding index, no max norm).
        index: int tensor (...).

    Returns:
        tensor (..., embedding_dim).
    """
    if index.device.type != "cpu":
        return embedding(index)
    rows = embedding.weight.index_select(0, index.reshape(-1))
    return rows.view(*index.shape, embedding.embedding_dim)


def _last_token_attention(attn: nn.MultiheadAttention, keys: Tensor) -> Tensor:
    """The last token's query against every key: ``attn(keys[:, -1:], keys, keys)[0][:, 0]``.

    Bitwise the module's output and gradients (the same projections on the same
    sequence-major layout, the same ``scaled_dot_product_attention`` call) without its
    argument checks and the copies that repack keys and values, which cost more than the
    maths at this model size. No attention dropout (the caller uses the module then).

    Args:
        attn: a ``batch_first`` self-attention module with packed input projections.
        keys: float tensor (B, L, E), the layer-normed tokens.

    Returns:
        tensor (B, E).
    """
    b, length, e = keys.shape
    heads = attn.num_heads
    w, bias = attn.in_proj_weight, attn.in_proj_bias
    seq_major = keys.transpose(0, 1)  # (L, B, E), as the module projects them
    q = nn.functional.linear(seq_major[-1:], w[:e], bias[:e]).view(b, heads, 1, e // heads)
    kv = nn.functional.linear(seq_major, w[e:], bias[e:]).view(length, b, 2, heads, e // heads)
    k, v = (t.permute(1, 2, 0, 3) for t in kv.unbind(2))  # (B, H, L, E / H); one backward
    out = nn.functional.scaled_dot_product_attention(q, k, v).reshape(b, e)
    return attn.out_proj(out)


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class DrumPolicy(_VelocityBinsMixin, nn.Module):
    """Causal Transformer policy over drum steps with a per-drum Bernoulli head and a value head.

    See the module docstring for the model. Works on CPU and CUDA and under ``torch.autocast``
    (outputs are cast to float32). Initialisation draws from the global torch generator: call
    ``torch.manual_seed`` first for a reproducible model. With ``config.velocity_levels > 0``
    the head is a categorical per drum (see "Velocity classes" in the module docstring).

    Args:
        config: sizes and dropout.
        velocity_bins: the bins the policy plays at when ``config.velocity_levels > 0`` (a
            :class:`~dataset.velocity.VelocityBins` or its ``to_dict()``; ``None``: uniform
            bins); must be ``None`` for a binary policy. No draws from any generator.
    """

    kind = "transformer"
    """The policy kind (:data:`POLICY_KINDS`) that :func:`save_policy` records."""

    def __init__(self, config: PolicyConfig,
                 velocity_bins: VelocityBins | Mapping[str, Any] | None = None) -> None:
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
        self.policy_head = _policy_head(d, c)
        self.value_head = nn.Sequential(
            _orthogonal(nn.Linear(d, d), float(np.sqrt(2.0))),
            nn.Tanh(),
            _orthogonal(nn.Linear(d, 1), 1.0),
        )
        self._register_velocity_bins(velocity_bins)

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
            + _lookup(self.step_embedding, phases % c.steps_per_bar)
            + _lookup(self.bar_embedding, phases // c.steps_per_bar)
            + self.target_proj(target.float())[:, None, :]
        )
        *lower, top = self.trunk.layers
        if not last_only or lower:
            causal = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
        if not last_only:
            return self.trunk(x, mask=causal, is_causal=True)
        for layer in lower:
            x = layer(x, src_mask=causal, is_causal=True)
        keys = top.norm1(x)
        if self.training and top.self_attn.dropout > 0:  # attention dropout: the module's draws
            attended = top.self_attn(keys[:, -1:], keys, keys, need_weights=False)[0][:, 0]
        else:
            attended = _last_token_attention(top.self_attn, keys)
        h = x[:, -1] + top.dropout1(attended)
        h = h + top._ff_block(top.norm2(h))
        return self.trunk.norm(h)

    def _heads(self, h: Tensor) -> PolicyOutput:
        logits = _shape_logits(self.policy_head(h).float(), self.config)
        value = self.value_head(h.detach()).squeeze(-1).float()
        return PolicyOutput(logits, value)

    def forward(self, steps: Tensor, phase: Tensor, target: Tensor) -> PolicyOutput:
        """Predict every next step of a window, causally.

        Args:
            steps: float tensor (B, L, D), hits in {0, 1} (or velocities in [0, 1]);
                ``1 <= L <= config.max_len``.
                Token ``i`` reads step ``i`` and predicts step ``i + 1``; it sees tokens ``<= i``.
            phase: int tensor (B,): index within the phrase (``0 .. phrase_len - 1``) of the step
                the *last* token predicts; token ``i`` predicts phase
                ``(phase - (L - 1 - i)) mod phrase_len``.
            target: float tensor (B, K): target song features, values in [0, 1].

        Returns:
            PolicyOutput: logits float32 (B, L, D) (with velocity classes (B, L, D, K + 1)),
            value float32 (B, L).
        """
        return self._heads(self._features(steps, phase, target))

    def forward_obs(self, obs: Mapping[str, Tensor]) -> PolicyOutput:
        """Outputs for the step to write, from a batch of DrumCompose observations.

        Args:
            obs: ``{"context": (B, C * D), "position": (B, position_size), "target": (B, K)}``
                float tensors (see :func:`obs_to_tensors`); ``C`` need not equal
                ``config.context_steps`` but must be at most ``config.max_len``.

        Returns:
            PolicyOutput: logits float32 (B, D) (with velocity classes (B, D, K + 1)), value
            float32 (B,) of the last context token.
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

    def act(
        self,
        obs: Mapping[str, Tensor],
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Choose the next step's hits. Call under ``torch.no_grad()`` in rollouts.

        Args:
            obs: batch of observations, as in :meth:`forward_obs`.
            deterministic: hit exactly the drums with probability > 0.5 (with velocity
                classes: play each drum's most likely class).
            generator: torch generator for the draws (on the policy's device): a generator in
                the same state gives the same actions.

        Returns:
            actions (B, D): float32 0 / 1, or int64 classes ``0 .. K`` when
            ``velocity_levels = K > 0``; log_prob float32 (B,); value float32 (B,).
        """
        return _act(self.forward_obs(obs), self.action_dist, deterministic, generator)

    def evaluate_actions(
        self, obs: Mapping[str, Tensor], actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probability and entropy of given actions, and the value (PPO's update pass).

        Args:
            obs: batch of observations, as in :meth:`forward_obs`.
            actions: tensor (B, D) of 0 / 1 (any dtype), or of integer classes ``0 .. K`` when
                ``velocity_levels = K > 0``.

        Returns:
            log_prob float32 (B,), entropy float32 (B,), value float32 (B,).
        """
        return _evaluate(self.forward_obs(obs), self.action_dist, actions)


def _act(out: PolicyOutput, dist: ActionDist, deterministic: bool,
         generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``act`` of either policy kind from its outputs (see :meth:`DrumPolicy.act`)."""
    logits = out.logits.float()
    actions = dist.mode(logits) if deterministic else dist.sample(logits, generator)
    return actions, dist.log_prob(logits, actions), out.value


def _evaluate(out: PolicyOutput, dist: ActionDist, actions: Tensor
              ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``evaluate_actions`` of either policy kind (see :meth:`DrumPolicy.evaluate_actions`)."""
    logits = out.logits.float()
    return dist.log_prob(logits, actions), dist.entropy(logits), out.value


@dataclass(frozen=True)
class MLPPolicyConfig:
    """Shape of an :class:`MLPPolicy`. Validated on construction.

    Build it from an env with :meth:`from_env_config` so the sizes agree with the observations.
    """

    num_drums: int = 9
    """Drums per step ``D``: Bernoulli outputs per step."""
    context_steps: int = 16
    """Steps of the env's ``context`` observation ``C``; the MLP reads exactly ``C * D`` values
    (unlike the Transformer, it cannot read another context length)."""
    steps_per_bar: int = 16
    """Steps in one bar (the ``position`` observation's step-in-bar block)."""
    bars_per_phrase: int = 4
    """Bars in one phrase (the ``position`` observation's bar-in-phrase block)."""
    target_size: int = 20
    """Length ``K`` of the target-feature vector (the env's ``target`` observation)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the hidden tanh layers of each of the two MLPs (policy, value); SB3's PPO
    default is ``(64, 64)``."""
    init_hit_rate: float = 0.1
    """Hit probability of every drum before training, in (0, 1) (as
    :attr:`PolicyConfig.init_hit_rate`)."""
    kind: str = "mlp"
    """Always ``"mlp"``: recorded with the config, so a saved config names its policy kind."""
    velocity_levels: int = 0
    """Velocity classes ``K`` of the action (as :attr:`PolicyConfig.velocity_levels`): 0 binary
    hits, ``K > 0`` a categorical per drum over ``K + 1`` classes."""

    def __post_init__(self) -> None:
        for name in ("num_drums", "context_steps", "steps_per_bar", "bars_per_phrase",
                     "target_size"):  # fmt: skip
            _check_positive_int(getattr(self, name), name)
        sizes = self.hidden_sizes
        if isinstance(sizes, (list, tuple)):
            object.__setattr__(self, "hidden_sizes", tuple(sizes))  # a loaded list
        if not isinstance(sizes, (list, tuple)) or not sizes:
            raise ValueError(f"hidden_sizes must be a non-empty tuple of ints >= 1, got {sizes!r}")
        for size in sizes:
            _check_positive_int(size, "hidden_sizes")
        if isinstance(self.init_hit_rate, bool) or not 0.0 < float(self.init_hit_rate) < 1.0:
            raise ValueError(f"init_hit_rate must be in (0, 1), got {self.init_hit_rate!r}")
        if self.kind != "mlp":
            raise ValueError(f"kind of an MLPPolicyConfig must be 'mlp', got {self.kind!r}")
        _check_velocity_levels(self.velocity_levels)

    @property
    def position_size(self) -> int:
        """Length of the env's ``position`` observation this policy reads."""
        return self.steps_per_bar + self.bars_per_phrase + 2

    @property
    def obs_size(self) -> int:
        """Inputs of the MLPs: ``context_steps * num_drums + position_size + target_size``."""
        return self.context_steps * self.num_drums + self.position_size + self.target_size

    @property
    def max_len(self) -> int:
        """Longest context (steps) the policy reads: ``context_steps`` exactly."""
        return self.context_steps

    @classmethod
    def from_env_config(cls, cfg: DrumComposeConfig, **overrides: Any) -> MLPPolicyConfig:
        """The config whose sizes match a DrumCompose task, as :meth:`PolicyConfig.from_env_config`.

        Args:
            cfg: the env's :class:`~drum_env.core.DrumComposeConfig`.
            **overrides: any other field (``hidden_sizes``, ``init_hit_rate``).

        Raises:
            TypeError: for an override that is not a field.
        """
        return _config_from_env(cls, cfg, overrides)


def _mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [_orthogonal(nn.Linear(a, b), float(np.sqrt(2.0))), nn.Tanh()]
    return nn.Sequential(*layers)


class MLPPolicy(_VelocityBinsMixin, nn.Module):
    """An MLP actor-critic of the size and kind SB3's PPO uses, over the flattened observation.

    ``x = concat(context, position, target)`` (``obs_size`` values); two separate tanh MLPs
    (``hidden_sizes``, SB3's ``net_arch=dict(pi=[64, 64], vf=[64, 64])``), orthogonally
    initialised with gain sqrt(2); a policy head to ``D`` Bernoulli logits (gain 0.01, bias
    ``logit(init_hit_rate)`` as in :class:`DrumPolicy`) and a value head (gain 1). The same
    interface as :class:`DrumPolicy` where the trainer and the rollouts use it:
    :meth:`forward_obs`, :meth:`act`, :meth:`evaluate_actions`, :meth:`distribution`.
    Initialisation draws from the global torch generator. With ``config.velocity_levels > 0``
    the head is a categorical per drum, as :class:`DrumPolicy`'s.

    Args:
        config: sizes.
        velocity_bins: as for :class:`DrumPolicy`.
    """

    kind = "mlp"
    """The policy kind (:data:`POLICY_KINDS`) that :func:`save_policy` records."""

    def __init__(self, config: MLPPolicyConfig,
                 velocity_bins: VelocityBins | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not isinstance(config, MLPPolicyConfig):
            raise TypeError(f"config must be an MLPPolicyConfig, got {type(config).__name__}")
        self.config = config
        sizes = (config.obs_size, *config.hidden_sizes)
        self.policy_net = _mlp(sizes)
        self.value_net = _mlp(sizes)
        self.policy_head = _policy_head(sizes[-1], config)
        self.value_head = _orthogonal(nn.Linear(sizes[-1], 1), 1.0)
        self._register_velocity_bins(velocity_bins)

    def forward(self, x: Tensor) -> PolicyOutput:
        """Outputs from flattened observations.

        Args:
            x: float tensor (B, obs_size): ``concat(context, position, target)``.

        Returns:
            PolicyOutput: logits float32 (B, D) (with velocity classes (B, D, K + 1)), value
            float32 (B,).
        """
        logits = _shape_logits(self.policy_head(self.policy_net(x)).float(), self.config)
        value = self.value_head(self.value_net(x)).squeeze(-1).float()
        return PolicyOutput(logits, value)

    def forward_obs(self, obs: Mapping[str, Tensor]) -> PolicyOutput:
        """Outputs for the step to write, from a batch of DrumCompose observations.

        Args:
            obs: ``{"context": (B, C * D), "position": (B, position_size), "target": (B, K)}``
                float tensors (:func:`obs_to_tensors`), with ``C = config.context_steps``.

        Returns:
            PolicyOutput: logits float32 (B, D), value float32 (B,).

        Raises:
            ValueError: an observation of another size (the message names the key).
        """
        c = self.config
        sizes = {"context": c.context_steps * c.num_drums, "position": c.position_size,
                 "target": c.target_size}  # fmt: skip
        for key, size in sizes.items():
            t = obs[key]
            if t.dim() != 2 or t.shape[-1] != size:
                raise ValueError(
                    f"obs[{key!r}] must have shape (B, {size}) for this MLP policy (context_steps="
                    f"{c.context_steps}, num_drums={c.num_drums}), got {tuple(t.shape)}"
                )
        x = torch.cat([obs["context"], obs["position"], obs["target"]], -1).float()
        return self(x)

    def act(
        self,
        obs: Mapping[str, Tensor],
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Choose the next step's hits (see :meth:`DrumPolicy.act`).

        Returns:
            actions (B, D) (float32 0 / 1, or int64 classes), log_prob float32 (B,), value
            float32 (B,).
        """
        return _act(self.forward_obs(obs), self.action_dist, deterministic, generator)

    def evaluate_actions(
        self, obs: Mapping[str, Tensor], actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probability, entropy and value (see :meth:`DrumPolicy.evaluate_actions`).

        Returns:
            log_prob float32 (B,), entropy float32 (B,), value float32 (B,).
        """
        return _evaluate(self.forward_obs(obs), self.action_dist, actions)


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
    "n_heads", "velocity_levels",
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
