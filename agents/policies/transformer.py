"""The DrumCompose Transformer policy: a small causal Transformer over the canvas.

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
returned. So a policy pretrained on whole windows (:mod:`agents.training.pretrain`) acts in the env
unchanged, as long as ``num_drums``, ``steps_per_bar``, ``bars_per_phrase`` and ``target_size``
agree (:meth:`PolicyConfig.from_env_config`).

The last token's attention (:func:`last_token_attention`) is the module's own computation
(the same projections on the same layout, the same ``scaled_dot_product_attention``) without
the module's argument checks and repacking copies: bitwise the same outputs and gradients,
tested against ``nn.MultiheadAttention``. Caching keys and values across env steps is not
possible: the window slides by one step each step, so every token's absolute position
embedding, and with it every key and value, changes.

## Dropout

With ``dropout > 0`` in training mode the layers run through :func:`encoder_layer_with_dropout`
and :func:`dropout_self_attention`: the layer's own modules and parameters (so state dicts are
the same), the attention weights computed as ``softmax(Q K^T / sqrt(d_head) + causal)``, and
every dropout (the attention weights', the feed-forward's, the two residuals') a
:func:`~agents.policies.dropout.fast_dropout`, whose masks cost a third of torch's or less
(torch's were a third of a pretraining step; the model's step is now 1.4x faster). Seeded
runs repeat, but draw other masks than torch's dropout did: runs with dropout differ from
those before it, within noise. In eval mode or with ``dropout = 0`` (PPO's default) the
module's own pass runs, as before, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from agents.policies.common import (
    PolicyOutput,
    VelocityBinsMixin,
    act_from_output,
    check_positive_int,
    config_from_env,
    evaluate_from_output,
    orthogonal,
    policy_head,
    shape_logits,
)
from agents.policies.distributions import MAX_JOINT_DRUMS, check_velocity_levels
from agents.policies.dropout import fast_dropout
from dataset.velocity import VelocityBins

if TYPE_CHECKING:
    from drum_env.core import DrumComposeConfig

__all__ = [
    "PolicyConfig",
    "DrumPolicy",
    "embedding_lookup",
    "last_token_attention",
    "dropout_self_attention",
    "encoder_layer_with_dropout",
]


_MIN_MAX_LEN = 1024


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
    """Dropout in the Transformer layers, in [0, 1) (in training, with the cheap masks of
    :mod:`agents.policies.dropout`). Keep 0 for PPO (log-probs of the rollout and
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
    joint_step: bool = False
    """Draw a step's drums together: the head gives a categorical over the ``2 ** D`` step
    patterns instead of an independent Bernoulli per drum (binary policies only, ``D <= 12``).
    Drummers' drums are not independent within a step (a hi-hat with the kick, a snare without
    the ride), and independent draws make patterns no drummer plays, so takes repeat less than
    real drumming does (README, "Where the gap to real drumming is"). The head starts at the
    independent Bernoulli distribution of ``init_hit_rate``. Opt-in; a saved config without it
    is an independent head's."""

    canvas_steps: int = 0
    """Read the canvas from its first step: the env's episode length (its ``seq_len``), or 0.

    Pretraining teaches the policy on whole windows, token ``i`` being step ``i`` of the window;
    the env's ``context`` shows the latest ``context_steps`` steps, zero-padded before the
    canvas's first step. With ``canvas_steps = N > 0`` the policy reads how many steps are
    written off the ``position`` observation (song progress times ``N``) and drops the padding,
    so that token ``i`` is canvas step ``i`` at position ``i``, as in pretraining. Played in an
    env whose ``context_steps`` is its ``seq_len`` (``--whole-canvas``), the policy then sees the
    whole primer and everything it played, and where it is in the song. 0 (the default, and
    a saved config without it): the context as the env gives it, padding read as silent steps.
    The env's ``seq_len`` must be ``N`` (:func:`~agents.policies.compat.check_policy_fits`)."""

    def __post_init__(self) -> None:
        if (isinstance(self.canvas_steps, bool)
                or not isinstance(self.canvas_steps, (int, np.integer)) or self.canvas_steps < 0):
            raise ValueError(
                f"canvas_steps must be an integer >= 0, got {self.canvas_steps!r}"
            )  # fmt: skip
        for name in (
            "num_drums", "context_steps", "steps_per_bar", "bars_per_phrase", "target_size",
            "d_model", "n_layers", "n_heads",
        ):  # fmt: skip
            check_positive_int(getattr(self, name), name)
        check_velocity_levels(self.velocity_levels)
        if not isinstance(self.joint_step, (bool, np.bool_)):
            raise ValueError(f"joint_step must be True or False, got {self.joint_step!r}")
        if self.joint_step and self.velocity_levels:
            raise ValueError(
                f"joint_step is for binary policies; this one has velocity_levels="
                f"{self.velocity_levels}"
            )
        if self.joint_step and self.num_drums > MAX_JOINT_DRUMS:
            raise ValueError(
                f"joint_step draws one of 2 ** num_drums patterns; num_drums={self.num_drums} is "
                f"above {MAX_JOINT_DRUMS}"
            )
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
        return config_from_env(cls, cfg, overrides)


def embedding_lookup(embedding: nn.Embedding, index: Tensor) -> Tensor:
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


def last_token_attention(attn: nn.MultiheadAttention, keys: Tensor) -> Tensor:
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


def dropout_self_attention(attn: nn.MultiheadAttention, x: Tensor, p: float,
                           last_only: bool = False) -> Tensor:  # fmt: skip
    """Causal self-attention with :func:`~agents.policies.dropout.fast_dropout` on its weights.

    The module's maths written out, with its own parameters (the packed input projection and
    ``out_proj``), as ``scaled_dot_product_attention``'s reference does it::

        A   = softmax(Q K^T / sqrt(E / H) + causal)   # (B, H, L, L), -inf above the diagonal
        out = out_proj(concat_heads(fast_dropout(A, p) @ V))

    With ``p = 0`` it equals ``attn(x, x, x, attn_mask=causal)`` to float rounding (other
    kernels, other sums), not bit for bit: the policy uses it only for dropout in training.

    Args:
        attn: a ``batch_first`` self-attention module with packed input projections.
        x: float tensor (B, L, E), the layer-normed tokens.
        p: drop rate of the attention weights, in [0, 1).
        last_only: only the last token's query (it sees every key: no mask).

    Returns:
        tensor (B, L, E), or (B, E) with ``last_only``.
    """
    b, length, e = x.shape
    heads, width = attn.num_heads, e // attn.num_heads
    w, bias = attn.in_proj_weight, attn.in_proj_bias
    # heads to the batch axis, contiguous (B * H, L, E / H): one copy, then bmm copies nothing
    if last_only:
        q = nn.functional.linear(x[:, -1:], w[:e], bias[:e]).view(b * heads, 1, width)
        kv = nn.functional.linear(x, w[e:], bias[e:]).view(b, length, 2, heads, width)
        k, v = kv.permute(2, 0, 3, 1, 4).reshape(2, b * heads, length, width).unbind(0)
        mask = torch.zeros(1, length, dtype=q.dtype, device=x.device)
    else:
        qkv = nn.functional.linear(x, w, bias).view(b, length, 3, heads, width)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).reshape(3, b * heads, length, width).unbind(0)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        mask = torch.zeros(length, length, dtype=q.dtype, device=x.device)
        mask = mask.masked_fill(causal, float("-inf"))
    scores = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=width**-0.5)  # (B * H, Lq, L)
    weights = fast_dropout(torch.softmax(scores, dim=-1), p)
    out = torch.bmm(weights, v).view(b, heads, -1, width).transpose(1, 2).reshape(b, -1, e)
    out = attn.out_proj(out)  # (B, Lq, E)
    return out[:, 0] if last_only else out


def encoder_layer_with_dropout(layer: nn.TransformerEncoderLayer, x: Tensor,
                               last_only: bool = False) -> Tensor:  # fmt: skip
    """A pre-LN ``TransformerEncoderLayer``'s causal training pass, its dropouts fast ones.

    The layer's ``_sa_block`` and ``_ff_block`` with its own modules and rates::

        h   = x + fast_dropout(dropout_self_attention(norm1(x), self_attn.dropout), dropout1.p)
        out = h + fast_dropout(linear2(fast_dropout(act(linear1(norm2(h))), dropout.p)),
                               dropout2.p)

    Args:
        layer: a ``batch_first``, ``norm_first`` encoder layer.
        x: float tensor (B, L, E), the layer's input tokens.
        last_only: the last token's output alone (its query against every key).

    Returns:
        tensor (B, L, E), or (B, E) with ``last_only``.

    Raises:
        ValueError: for a post-LN layer (``norm_first=False``).
    """
    if not layer.norm_first:
        raise ValueError("encoder_layer_with_dropout computes a pre-LN layer (norm_first=True)")
    attended = dropout_self_attention(layer.self_attn, layer.norm1(x), layer.self_attn.dropout,
                                      last_only)  # fmt: skip
    h = (x[:, -1] if last_only else x) + fast_dropout(attended, layer.dropout1.p)
    hidden = layer.activation(layer.linear1(layer.norm2(h)))
    return h + fast_dropout(layer.linear2(fast_dropout(hidden, layer.dropout.p)), layer.dropout2.p)


def _prefix_groups(steps: Tensor, target: Tensor, written: Tensor, lengths: Tensor
                   ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Rows that are an earlier step of another row's canvas: one pass serves them all.

    Row ``r`` (its last ``n_r`` context tokens, its target) is served by a longer row ``q``
    when both hold the whole canvas (``1 <= written <= L``), their targets are equal and ``q``'s
    first ``n_r`` canvas steps are ``r``'s. Found exactly (by the bytes of the values), longest
    rows first; a row that matches none is its own.

    Returns:
        ``reps`` (R,): the rows whose passes are computed, longest first; ``rep_of`` (B,): for
        each row, the index into ``reps`` of the pass that serves it. Both int64 on CPU.
    """
    b, length, _ = steps.shape
    values = steps.detach().to("cpu", torch.float32).numpy()
    targets = target.detach().to("cpu", torch.float32).numpy()
    n = lengths.cpu().numpy()
    written_np = written.cpu().numpy()
    whole = (written_np >= 1) & (written_np <= length)
    present = np.unique(n)
    order = np.argsort(-n, kind="stable")
    reps: list[int] = []
    rep_of = np.empty(b, dtype=np.int64)
    seen: dict[tuple[bytes, bytes], int] = {}
    for r in order:
        canvas = values[r, length - n[r] :]
        key = (targets[r].tobytes(), canvas.tobytes())
        found = seen.get(key) if whole[r] else None
        if found is not None:
            rep_of[r] = found
            continue
        rep_of[r] = len(reps)
        reps.append(int(r))
        if whole[r]:  # every shorter prefix that some row of the batch might be
            for m in present[present <= n[r]]:
                seen.setdefault((key[0], canvas[:m].tobytes()), rep_of[r])
    return torch.as_tensor(reps, dtype=torch.int64), torch.as_tensor(rep_of)


class DrumPolicy(VelocityBinsMixin, nn.Module):
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
        self.policy_head = policy_head(d, c)
        self.value_head = nn.Sequential(
            orthogonal(nn.Linear(d, d), float(np.sqrt(2.0))),
            nn.Tanh(),
            orthogonal(nn.Linear(d, 1), 1.0),
        )
        self._register_velocity_bins(velocity_bins)

    # ------------------------------------------------------------------------- model

    def _features(
        self, steps: Tensor, phase: Tensor, target: Tensor, last_only: bool = False,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """Trunk features (B, L, d_model) of every token, or (B, d_model) of the last one.

        With ``last_only`` the final layer computes the last token alone (its query against
        every key): the same numbers as the full pass's last token, at a fraction of the cost
        when the policy acts and only the newest token matters. ``lengths`` (B,): the token
        whose phase is ``phase`` is token ``lengths - 1`` of each row (the tokens after it are
        padding that no earlier token sees); ``None``: the last token.
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
        back = (length if lengths is None else lengths.to(device).long()[:, None]) - 1 - index
        phases = torch.remainder(phase.to(device).long()[:, None] - back, c.phrase_len)
        x = (
            self.input_proj(steps.float())
            + self.position_embedding(index)
            + embedding_lookup(self.step_embedding, phases % c.steps_per_bar)
            + embedding_lookup(self.bar_embedding, phases // c.steps_per_bar)
            + self.target_proj(target.float())[:, None, :]
        )
        *lower, top = self.trunk.layers
        if self.training and c.dropout > 0:  # torch's masks cost a third of a step: fast ones
            for layer in lower:
                x = encoder_layer_with_dropout(layer, x)
            return self.trunk.norm(encoder_layer_with_dropout(top, x, last_only))
        if not last_only or lower:
            causal = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
        if not last_only:
            return self.trunk(x, mask=causal, is_causal=True)
        for layer in lower:
            x = layer(x, src_mask=causal, is_causal=True)
        # no dropout here (eval mode, or dropout 0): the layer's blocks with its public parts
        h = x[:, -1] + last_token_attention(top.self_attn, top.norm1(x))
        return self.trunk.norm(h + top.linear2(top.activation(top.linear1(top.norm2(h)))))

    def _heads(self, h: Tensor) -> PolicyOutput:
        logits = shape_logits(self.policy_head(h).float(), self.config)
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
        if c.canvas_steps:
            written = torch.round(position[:, -1].float() * c.canvas_steps).long()
            return self._heads(self._canvas_features(steps, written, phase, obs["target"]))
        return self._heads(self._features(steps, phase, obs["target"], last_only=True))

    def _canvas_features(self, steps: Tensor, written: Tensor, phase: Tensor, target: Tensor
                         ) -> Tensor:  # fmt: skip
        """Features (B, d_model) of the step to write, the context's padding dropped.

        Row ``b`` has ``written[b]`` canvas steps; its context's last ``n = min(written, L)``
        tokens are canvas steps (``n >= 1``: an empty canvas reads one silent step), at
        positions ``0 .. n - 1`` when the whole canvas fits (``written <= L``). Rows with one
        length (a rollout's lockstep envs) are one pass over their last ``n`` tokens. Rows of
        several lengths (an update's minibatch) are a causal pass over each *distinct* canvas:
        a row whose canvas and target are a prefix of a longer row's (an earlier step of the
        same episode) reads that row's pass at its own last token, which by causality is what
        its own pass computes, so a minibatch of ``M`` rows from ``S`` episodes costs ``S``
        passes rather than ``M``.
        """
        b, length, _ = steps.shape
        lengths = written.clamp(1, length)
        if bool((lengths == lengths[0]).all()):
            n = int(lengths[0])
            return self._features(steps[:, length - n :], phase, target, last_only=True)
        reps, rep_of = _prefix_groups(steps, target, written, lengths)
        n_reps = lengths[reps].to(steps.device)
        span = int(n_reps.max())
        # left-align each distinct canvas: token i of rep r is its context's step L - n_r + i
        index = (length - n_reps)[:, None] + torch.arange(span, device=steps.device)
        index = index.clamp(max=length - 1)
        packed = steps[reps.to(steps.device)].gather(
            1, index[..., None].expand(-1, -1, steps.shape[-1])
        )
        h = self._features(packed, phase[reps], target[reps], lengths=n_reps)
        return h[rep_of.to(steps.device), lengths.to(steps.device) - 1]

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
        return act_from_output(self.forward_obs(obs), self.action_dist, deterministic, generator)

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
        return evaluate_from_output(self.forward_obs(obs), self.action_dist, actions)
