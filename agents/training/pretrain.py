"""Pretraining the DrumCompose policy: next-step prediction on drum windows, teacher forced.

One optimiser step, in one linear pass (:func:`pretrain`):

1. a batch of windows (windows start on bar lines: ``stride = steps_per_bar``), gathered from
   a :class:`WindowTable` by numpy fancy indexing, ``step`` (B, L, D) velocities -> hits in
   {0, 1}; the batches are the ones :func:`dataset.loader.get_complete_rl_dataloader` would
   give (same windows, same seeded order, same padding), without its per-item Python;
2. the conditioning target of each window, as the env computes its ``target`` observation:
   ``clip(song_features(hits of the whole unpadded window), 0, 1)`` (:func:`window_targets`),
   computed once per window when the table is built;
3. with ``phase_offsets``, a random prefix of ``r`` in ``[0, phrase_len)`` steps is dropped (the
   same for the whole batch), so that the first token of the fed window sits at any phase, as the
   first step of the env's context window does; without it, position ``p`` would always come with
   phase ``p mod phrase_len`` and the model could read the metre from the position embedding,
   which means nothing in the env;
4. the model reads steps ``0 .. L - 2`` and predicts steps ``1 .. L - 1``; the loss is the binary
   cross-entropy per drum, averaged over the drums and the predicted steps that are real
   (``mask[:, 1:]``): padding never counts (:func:`next_step_loss`);
5. backward under ``torch.autocast`` (bf16 on CPU, fp16 with ``GradScaler`` on CUDA), gradient
   norm clipped to ``max_grad_norm``, AdamW step.

Velocity classes (``velocity_levels = K > 0``): the bins are
``VelocityBins.from_data(<the training sequences>, K)`` (``data`` only, never ``val_data``), the
bins the env builds from the same data; the target of token ``i`` is the class
``bins.encode(values)`` of each drum at step ``i + 1`` and the loss is the cross-entropy over the
``K + 1`` classes per drum, averaged as above (:func:`next_step_loss` with ``classes``). The
model reads the steps as the env's ``context`` shows them (:func:`shown_values`): the window's
first ``prompt_bars`` bars (the primer's place in an env window) with the data's own values, the
later steps with each hit moved to its bin's level (``bins.quantize``), as the env shows composed
hits; the conditioning target adds the window's velocity features computed on those same
values, as the env's ``target`` does. The saved policy carries the bins
(:attr:`~agents.policies.policy.DrumPolicy.velocity_bins`). With ``K = 0`` nothing changes: hits in,
binary cross-entropy out.

Phase convention: the env's ``position`` observation counts steps from the start of its window
(which starts on a bar line), so window position ``i`` has phase ``i mod phrase_len``; the same
convention holds here.

Randomness: the model initialisation and dropout draw from the torch generator seeded with
``seed`` (inside :func:`torch.random.fork_rng`, so the caller's global state is left as it was),
the windows are shuffled by their own generator seeded with ``seed``, drawn as a shuffling
``DataLoader`` draws from it (:func:`loader_order`), the phase offsets come from a third
generator seeded with ``seed``. The same config on the same machine gives the same weights.
The batches are those of the DataLoader-fed loop of 0.4, in the same order; with ``dropout = 0``
so are the weights, while with dropout the masks are
:func:`~agents.policies.dropout.fast_dropout`'s (since issue 25), other draws than torch's
dropout of 0.4, so a seeded run's losses differ from 0.4's (within noise).

Throughput: the model's forward and backward bound a step (``benchmarks/pretrain_throughput.py``:
on 2 CPU cores, with the defaults, the data took 22% of a step through the DataLoader and takes
under 1% from the table; torch's dropout masks were about a third of the model's time, the
policy's cheaper masks (:mod:`agents.policies.dropout`) cut the model's step by about 30%).

The policy is saved with ``dropout = 0`` in its config: dropout is a pretraining regulariser, and
PPO needs a deterministic forward pass (its rollout and update log-probs must agree). The weights
do not depend on it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from agents.policies.distributions import pattern_index
from agents.policies.policy import DrumPolicy, PolicyConfig, save_policy
from agents.task import (
    RunConfig,
    TaskConfig,
    TrackConfig,
    check_bool,
    check_int,
    check_number,
    check_path,
)
from agents.training.runs import RunLock, prepare_run_dir
from dataset.velocity import VelocityBins

__all__ = [
    "PretrainConfig",
    "PretrainResult",
    "pretrain",
    "window_targets",
    "shown_values",
    "next_step_loss",
    "autocast_dtype",
    "WindowTable",
    "loader_order",
    "validation_loss",
    "batch_inputs",
]


@dataclass(frozen=True)
class PretrainConfig(TrackConfig, RunConfig, TaskConfig):
    """Everything that defines a pretraining run. Validated on construction.

    The task settings come from :class:`~agents.task.TaskConfig` (pretraining reads ``data``,
    ``seq_len``, ``steps_per_bar``, ``bars_per_phrase``, ``prompt_bars``, ``context_steps`` and
    ``velocity_levels``; the reward settings are accepted so that ``pretrain`` and ``train`` take
    the same flags, and unused). The run settings come from :class:`~agents.task.RunConfig`, the
    experiment's name and W&B tracking from :class:`~agents.task.TrackConfig`: ``out`` (by
    default a new ``runs/DrumCompose-v0__pretrain__{seed}__{unix_time}``) holds
    ``config.json``, ``policy.pt`` and ``tb/``; ``seed`` seeds the
    initialisation, dropout, shuffling and phase offsets; ``threads`` and ``device`` are the
    torch threads and device of the run; ``amp`` autocasts to bf16 on CPU, fp16 with a
    ``GradScaler`` on CUDA; ``resume`` is not used (a pretraining run starts afresh).
    Use the env's ``seq_len``: the target features then describe windows of the same length.
    """

    DEFAULT_EXP_NAME: ClassVar[str] = "pretrain"
    UNUSED_RUN_SETTINGS: ClassVar[tuple[str, ...]] = ("resume",)

    batch_size: int = 64
    """Windows per optimiser step."""
    epochs: int = 2
    """Passes over the windows."""
    learning_rate: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay, >= 0."""
    d_model: int = 64
    """Transformer width (see :class:`~agents.policies.policy.PolicyConfig`). The defaults (64
    wide, 2 layers, 4 heads, batches of 64 at a learning rate of 1e-3) are the best start measured
    on 2 CPU cores (README, "Results"): on the Groove split they reach a validation loss of 0.172
    in about 2,700 steps (early-stopped), where 0.3's policy (32 wide, one layer, batches of 32
    at 3e-4) was still falling at its 10,000-step cap; they are
    :class:`~agents.training.ppo.PPOConfig`'s defaults too, so ``train --pretrained`` takes a
    default pretrained policy as it is."""
    n_layers: int = 2
    """Transformer layers."""
    n_heads: int = 4
    """Attention heads."""
    dropout: float = 0.1
    """Dropout during pretraining, in [0, 1); the saved policy has dropout 0."""
    joint_step: bool = False
    """Draw a step's drums together: a head over the ``2 ** D`` step patterns
    (:attr:`~agents.policies.policy.PolicyConfig.joint_step`; binary policies). ``train
    --pretrained`` keeps the pretrained policy's head. Opt-in."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (> 0)."""
    log_every: int = 50
    """Optimiser steps between TensorBoard points (means over those steps)."""
    max_steps: int | None = None
    """Stop after this many optimiser steps (``None``: run all epochs)."""
    phase_offsets: bool = True
    """Drop a random prefix of ``0 .. phrase_len - 1`` steps per batch so that window positions
    and phases are not tied together (see the module docstring)."""
    val_data: str | None = None
    """Folder of validation sequences: every ``log_every`` steps the mean loss over its windows
    is measured, the best policy so far is the one saved, and ``patience`` stops a run that no
    longer improves; ``None``: no validation, the last policy is saved."""
    patience: int | None = None
    """Validations without a new best validation loss after which training stops (needs
    ``val_data``); ``None``: run ``epochs`` / ``max_steps``."""

    def __post_init__(self) -> None:
        self._check_task()
        self._check_track()
        self._check_run()
        for name in ("batch_size", "epochs", "log_every", "d_model", "n_layers", "n_heads"):
            check_int(name, getattr(self, name), 1)
        check_int("max_steps", self.max_steps, 1, optional=True)
        check_path(self, "val_data")
        check_int("patience", self.patience, 1, optional=True)
        if self.patience is not None and self.val_data is None:
            raise ValueError("patience needs val_data (a folder of validation sequences)")
        check_number("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_number("max_grad_norm", self.max_grad_norm, 0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_bool("phase_offsets", self.phase_offsets)
        max_len = self.policy_config_for(9).max_len  # validates d_model, n_heads, dropout, ...
        if self.seq_len - 1 > max_len:
            raise ValueError(
                f"seq_len must be at most {max_len + 1} (the position embedding covers "
                f"max(context_steps, 1024) = {max_len} tokens), got {self.seq_len}"
            )

    @property
    def phrase_len(self) -> int:
        """Steps in one phrase."""
        return self.steps_per_bar * self.bars_per_phrase

    def policy_config_for(self, num_drums: int) -> PolicyConfig:
        """The config of the policy trained on data with ``num_drums`` drums (with this dropout).

        Its ``target_size`` is ``len(SONG_FEATURE_NAMES) + num_drums`` (plus the velocity
        features with ``velocity_levels > 0``), as the env's.
        """
        from drum_env.rewards import SONG_FEATURE_NAMES, velocity_feature_size

        size = len(SONG_FEATURE_NAMES) + num_drums
        if self.velocity_levels:
            size += velocity_feature_size(num_drums)
        return PolicyConfig(
            num_drums=num_drums,
            context_steps=self.shown_steps,
            steps_per_bar=self.steps_per_bar,
            bars_per_phrase=self.bars_per_phrase,
            target_size=size,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            dropout=self.dropout,
            velocity_levels=self.velocity_levels,
            joint_step=self.joint_step,
            canvas_steps=self.canvas_steps,
        )


class PretrainResult(NamedTuple):
    """What :func:`pretrain` produced."""

    policy_path: Path
    """The saved policy (``out/policy.pt``)."""
    final_loss: float
    """Mean loss over the last ``min(log_every, steps)`` optimiser steps."""
    losses: list[float]
    """Loss of every optimiser step, in order (length ``steps``)."""
    steps: int
    """Optimiser steps taken."""
    val_losses: list[tuple[int, float]] = []
    """``(step, validation loss)`` at every validation (empty without ``val_data``)."""
    best_val_loss: float = math.nan
    """The lowest validation loss: that of the saved policy (NaN without ``val_data``)."""
    best_step: int = 0
    """The optimiser step of the saved policy (``steps`` without ``val_data``)."""
    timings: dict[str, float] = {}
    """Wall seconds of the run by part: ``data`` (gathering batches and their inputs),
    ``model`` (forward, backward, clipping, optimiser step), ``validation``, ``total`` (the
    whole call, the table and the saving included); the same with ``_cpu`` appended: the
    process's CPU seconds (``time.process_time``), which other processes do not inflate."""


def autocast_dtype(device_type: str) -> torch.dtype:
    """The autocast dtype used on a device type: float16 on CUDA, bfloat16 elsewhere."""
    return torch.float16 if device_type == "cuda" else torch.bfloat16


def shown_values(step: Tensor, bins: VelocityBins, prompt_steps: int) -> Tensor:
    """The windows' values as the expressive env's ``context`` shows them.

    The first ``prompt_steps`` steps (the primer's place in an env window) keep the data's
    values; every later hit is moved to its velocity bin's level (``bins.quantize``), as the
    env shows the hits the agent composes (and as its reference values are after the primer).

    Args:
        step: float tensor (B, L, D) of values in [0, 1] (zero padding stays 0).
        bins: the velocity bins.
        prompt_steps: steps of primer at the start of each window.

    Returns:
        float32 tensor (B, L, D) on ``step``'s device.
    """
    values = step.detach().float().cpu().numpy().copy()
    values[:, prompt_steps:] = bins.quantize(values[:, prompt_steps:])
    return torch.from_numpy(values).to(step.device)


def window_targets(
    step: Tensor, lengths: Tensor, steps_per_bar: int, bars_per_phrase: int,
    shown: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """The conditioning target of each window, as the env's ``target`` observation.

    Args:
        step: float tensor (B, L, D): windows, zero-padded at the end; a hit is a value > 0.
        lengths: int tensor (B,): real steps of each window.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        shown: with velocity classes, the windows' values as the env shows them
            (:func:`shown_values`): their velocity features are appended, as the expressive
            env's target does; ``None``: the binary env's target.

    Returns:
        float32 tensor (B, K) on CPU, ``K = 11 + D``: ``clip(song_features(window), 0, 1)`` of each
        unpadded window (computed in one batch per distinct length), followed with ``shown`` by
        ``clip(velocity_features(shown window), 0, 1)`` (``3 * D + 1`` more).
    """
    from drum_env.rewards import song_features, velocity_features

    hits = step.detach().cpu().numpy() > 0
    values = None if shown is None else shown.detach().float().cpu().numpy()
    lens = lengths.cpu().numpy()
    out = None
    for length in np.unique(lens):
        rows = np.flatnonzero(lens == length)
        feats = song_features(hits[rows, :length], steps_per_bar, bars_per_phrase)
        if values is not None:
            dynamics = velocity_features(values[rows, :length], steps_per_bar)
            feats = np.concatenate([feats, dynamics], axis=-1)
        if out is None:
            out = np.zeros((len(lens), feats.shape[-1]), dtype=np.float32)
        out[rows] = np.clip(feats, 0.0, 1.0)
    return torch.from_numpy(out)


def next_step_loss(
    policy: DrumPolicy, hits: Tensor, mask: Tensor, target: Tensor, start_phase: int = 0,
    classes: Tensor | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Teacher-forced next-step cross-entropy over whole windows, padding masked out.

    Token ``i`` reads step ``i`` and predicts step ``i + 1``, whose phase is
    ``(start_phase + i + 1) mod phrase_len``. A binary policy predicts the hits of ``hits``
    (binary cross-entropy per drum); a policy with ``velocity_levels = K > 0`` predicts
    ``classes`` (cross-entropy over the ``K + 1`` classes per drum); a joint step head
    (``joint_step``) predicts the step's pattern (cross-entropy over the ``2 ** D`` patterns,
    divided by ``D``: per drum, comparable with the independent head's).

    Args:
        policy: the model.
        hits: float tensor (B, L, D), ``L >= 2``, zero-padded at the end: the model's input,
            0 / 1 hits (with velocity classes: the values the env shows, :func:`shown_values`);
            for a binary policy also the target.
        mask: bool tensor (B, L): True on real steps.
        target: float tensor (B, K): conditioning.
        start_phase: phase of step 0 of the windows (0 for windows that start on a phrase
            phase of 0, as the loader's windows do).
        classes: int tensor (B, L, D) of classes ``0 .. K`` (``bins.encode`` of the values):
            the targets when the policy has velocity classes; ``None`` for a binary policy.

    Returns:
        loss: float32 scalar, the mean cross-entropy per drum over the real predicted steps (0
        if none);
        count: int64 scalar, the number of real predicted steps (the loss's weight).

    Raises:
        ValueError: fewer than 2 steps, or ``classes`` given to a binary policy / missing for a
            policy with velocity classes.
    """
    length = hits.shape[1]
    if length < 2:
        raise ValueError(f"windows need at least 2 steps to predict one, got {length}")
    levels = policy.config.velocity_levels
    if (classes is None) != (levels == 0):
        raise ValueError(
            f"classes must be given exactly when the policy has velocity classes (its "
            f"velocity_levels={levels}, classes {'missing' if classes is None else 'given'})"
        )
    phrase_len = policy.config.phrase_len
    last = (start_phase + length - 1) % phrase_len  # phase of step L - 1, predicted by token L - 2
    phase = torch.full((hits.shape[0],), last, dtype=torch.long)
    out = policy(hits[:, :-1], phase.to(hits.device), target)
    if getattr(policy.config, "joint_step", False):  # one pattern per step, over the drums
        index = pattern_index(hits[:, 1:])
        per_step = F.cross_entropy(out.logits.float().flatten(0, 1), index.flatten(),
                                   reduction="none").view(index.shape)  # fmt: skip
        bce = (per_step / hits.shape[-1]).unsqueeze(-1)  # per drum, as the independent head's
    elif classes is None:
        bce = F.binary_cross_entropy_with_logits(out.logits, hits[:, 1:].float(),
                                                 reduction="none")  # fmt: skip
    else:
        logits = out.logits.float()  # (B, L - 1, D, K + 1)
        bce = F.cross_entropy(logits.reshape(-1, levels + 1), classes[:, 1:].reshape(-1).long(),
                              reduction="none").view(logits.shape[:-1])  # fmt: skip
    valid = mask[:, 1:].to(bce.dtype)
    count = valid.sum()
    loss = (bce.mean(-1) * valid).sum() / count.clamp(min=1.0)
    return loss, count.long()


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Pretrain a :class:`~agents.policies.policy.DrumPolicy` by next-step prediction and save it.

    Args:
        config: the run.

    Returns:
        PretrainResult; the policy is at ``Path(config.out) / "policy.pt"``.
    """
    if config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    else:
        devices = []
    with (
        torch.random.fork_rng(devices=devices),
        RunLock(config.out),  # out/ is this run's
        config.torch_threads(),
    ):
        torch.manual_seed(config.seed)
        return _pretrain(config, device)


def _log(writer: Any, bar: Any, window: list[tuple[float, float]], step: int) -> None:
    """TensorBoard points (means over ``window``, (loss, grad_norm) pairs) at ``step``."""
    loss = float(np.mean([w[0] for w in window]))
    writer.add_scalar("pretrain/loss", loss, step)
    writer.add_scalar("pretrain/grad_norm", float(np.mean([w[1] for w in window])), step)
    bar.set_postfix(loss=f"{loss:.4f}")
    window.clear()


class WindowTable:
    """Every window of a dataset in one table: batches by numpy fancy indexing, no per-item Python.

    Holds the corpus once, each sequence followed by ``seq_len`` zero steps (the padding a short
    window reads), each window's start in it and its length, and the conditioning target of
    every window (:func:`window_targets`, computed once, in chunks; with ``bins``, on the values
    as the env shows them). A batch of windows ``idx`` is then one gather: the same ``step``,
    ``mask``, ``lengths`` (padded to the batch's longest window) as
    :func:`dataset.loader.collate_drum_batch` gives for the same samples, and their targets.
    Memory: the corpus plus ``seq_len`` steps per sequence, and ``8 + 8 + 4 * K`` bytes per
    window.

    Args:
        dataset: a :class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset` without
            augmentation (its ``sequences``, ``sample_indices`` and ``seq_len`` are read).
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        bins: the velocity bins (targets with the velocity features of the shown values), or
            ``None`` for binary targets.
        prompt_steps: steps of primer at the start of each window (with ``bins``).
        chunk: windows per chunk when the targets are computed.
    """

    def __init__(self, dataset: Any, steps_per_bar: int, bars_per_phrase: int,
                 bins: VelocityBins | None = None, prompt_steps: int = 0,
                 chunk: int = 1024) -> None:  # fmt: skip
        if getattr(dataset, "augment", False):
            raise ValueError("WindowTable needs a dataset without augmentation")
        length = int(dataset.seq_len)
        seqs = dataset.sequences
        drums = int(dataset.num_drums)
        offsets = np.zeros(len(seqs), dtype=np.int64)
        pieces: list[np.ndarray] = []
        pos = 0
        for i, seq in enumerate(seqs):
            offsets[i] = pos
            pieces += [np.asarray(seq, dtype=np.float32), np.zeros((length, drums), np.float32)]
            pos += len(seq) + length
        self.values = np.concatenate(pieces)
        """float32 (steps, D): the corpus, ``seq_len`` zero steps after each sequence."""
        seq_idx, start = dataset.sample_indices[:, 0], dataset.sample_indices[:, 1]
        self.starts = offsets[seq_idx] + start
        """int64 (N,): where each window starts in :attr:`values`."""
        self.lengths = np.minimum(length, np.asarray(dataset.lengths)[seq_idx]).astype(np.int64)
        """int64 (N,): real steps of each window."""
        self.num_drums = drums
        self.bins = bins
        self.prompt_steps = int(prompt_steps)
        parts = []
        for first in range(0, len(self), chunk):
            idx = np.arange(first, min(first + chunk, len(self)))
            step, lengths = self._gather(idx)
            shown = None if bins is None else shown_values(step, bins, self.prompt_steps)
            parts.append(window_targets(step, lengths, steps_per_bar, bars_per_phrase,
                                        shown).numpy())  # fmt: skip
        self.targets = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        """float32 (N, K): the conditioning target of each window."""

    def __len__(self) -> int:
        """Number of windows ``N``."""
        return len(self.starts)

    def _gather(self, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        lengths = self.lengths[idx]
        steps = np.arange(int(lengths.max()) if len(idx) else 0)
        step = self.values[self.starts[idx, None] + steps]  # (B, L, D): padding reads zeros
        return torch.from_numpy(step), torch.from_numpy(lengths)

    def batch(self, idx: np.ndarray) -> dict[str, Tensor]:
        """The windows ``idx`` as one padded batch.

        Returns:
            ``{"step": float32 (B, L, D), "mask": bool (B, L), "lengths": int64 (B,),
            "target": float32 (B, K)}``, ``L`` the longest of the windows.
        """
        idx = np.asarray(idx, dtype=np.int64)
        step, lengths = self._gather(idx)
        mask = torch.arange(step.shape[1])[None, :] < lengths[:, None]
        return {"step": step, "mask": mask, "lengths": lengths,
                "target": torch.from_numpy(self.targets[idx])}  # fmt: skip

    def batches(self, batch_size: int, order: np.ndarray | None = None) -> Iterator[dict]:
        """Batches of ``batch_size`` windows in ``order`` (default: the dataset's order)."""
        order = np.arange(len(self)) if order is None else order
        for first in range(0, len(order), batch_size):
            yield self.batch(order[first : first + batch_size])


def loader_order(n: int, generator: torch.Generator) -> np.ndarray:
    """One epoch's order of ``n`` samples, drawn as a shuffling DataLoader draws it.

    ``DataLoader(shuffle=True, generator=generator)`` (``num_workers=0``) draws a base seed from
    ``generator`` when its iterator is made, then ``torch.randperm(n, generator=generator)``,
    and one more permutation when the epoch runs out: the same draws here give the same windows
    in the same order, epoch after epoch, for a generator that nothing else draws from.
    """
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # the iterator's base seed
    order = torch.randperm(n, generator=generator).numpy()
    # the sampler's tail, drawn when an epoch runs out (RandomSampler: num_samples % n of a
    # second permutation); nothing else draws from this generator, so drawing it now is the same
    torch.randperm(n, generator=generator)
    return order


def validation_loss(policy: DrumPolicy, loader: Any, device: torch.device,
                    config: PretrainConfig) -> float:  # fmt: skip
    """Mean next-step loss per predicted step over every window of ``loader`` (no offsets).

    ``loader``: a :class:`WindowTable` (batches of ``config.batch_size`` windows in their
    order) or a DataLoader of :func:`dataset.loader.get_complete_rl_dataloader`. Runs in eval
    mode without gradients and restores the policy's training mode.
    """
    training = policy.training
    policy.eval()
    total = count = 0.0
    source = loader.batches(config.batch_size) if isinstance(loader, WindowTable) else loader
    with torch.no_grad():
        for batch in source:
            hits, classes, target = batch_inputs(batch, policy.velocity_bins, config, device)
            loss, n = next_step_loss(policy, hits, batch["mask"].to(device), target,
                                     classes=classes)  # fmt: skip
            total += float(loss) * int(n)
            count += int(n)
    policy.train(training)
    return total / count if count else math.nan


def batch_inputs(batch: dict[str, Any], bins: VelocityBins | None, config: PretrainConfig,
                  device: torch.device, non_blocking: bool = False
                  ) -> tuple[Tensor, Tensor | None, Tensor]:  # fmt: skip
    """A batch's model input, class targets and conditioning target, on ``device``.

    Binary (``bins`` None): hits in {0, 1}, no classes, the song-feature target. With velocity
    bins: the values as the env shows them (:func:`shown_values`), their classes
    ``bins.encode(values)`` (int64) and the target with the velocity features. A batch of a
    :class:`WindowTable` brings its ``target``; one of a DataLoader has it computed here.
    """
    step, lengths = batch["step"], batch["lengths"]
    shown = None if bins is None else shown_values(step, bins, config.prompt_steps)
    target = batch.get("target")
    if target is None:
        target = window_targets(step, lengths, config.steps_per_bar, config.bars_per_phrase,
                                shown)  # fmt: skip
    target = target.to(device, non_blocking=non_blocking)
    if bins is None:
        return (step.to(device, non_blocking=non_blocking) > 0).float(), None, target
    assert shown is not None
    classes = torch.from_numpy(bins.encode(step.detach().cpu().numpy()))
    return shown.to(device), classes.to(device), target


def _dataset(folder: str | None, c: PretrainConfig) -> Any:
    """The windows of ``folder`` (``None``: the built-in corpus), starting on bar lines."""
    from dataset.loader import get_complete_rl_dataloader

    return get_complete_rl_dataloader(
        folder, c.seq_len, c.steps_per_bar, c.bars_per_phrase, batch_size=c.batch_size,
        shuffle=False, seed=c.seed, stride=c.steps_per_bar,
    ).dataset  # fmt: skip


def _now() -> tuple[float, float]:
    """Wall and process CPU clocks."""
    return time.perf_counter(), time.process_time()


def _spend(timings: dict[str, float], part: str, since: tuple[float, float]
           ) -> tuple[float, float]:  # fmt: skip
    """Add the wall and CPU seconds since ``since`` to ``part``; the clocks now."""
    now = _now()
    timings[part] = timings.get(part, 0.0) + now[0] - since[0]
    timings[part + "_cpu"] = timings.get(part + "_cpu", 0.0) + now[1] - since[1]
    return now


def _pretrain(config: PretrainConfig, device: torch.device) -> PretrainResult:
    from tqdm import tqdm

    started = _now()
    c = config
    data = _dataset(c.data, c)
    num_drums = int(data.num_drums)
    val_data = None
    if c.val_data is not None:
        val_data = _dataset(c.val_data, c)
        if int(val_data.num_drums) != num_drums:
            raise ValueError(
                f"val_data {c.val_data!r} has {val_data.num_drums} drums, data "
                f"{c.data!r} has {num_drums}"
            )
    policy_config = c.policy_config_for(num_drums)
    bins = None  # the env's bins: from the training data's hits (never the validation data's)
    if c.velocity_levels:
        bins = VelocityBins.from_data(data.sequences, c.velocity_levels)
    table = WindowTable(data, c.steps_per_bar, c.bars_per_phrase, bins, c.prompt_steps)
    val_table = None
    if val_data is not None:
        val_table = WindowTable(val_data, c.steps_per_bar, c.bars_per_phrase, bins,
                                c.prompt_steps)  # fmt: skip
    policy = DrumPolicy(policy_config, bins).to(device)
    policy.train()
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay
    )
    amp = c.amp and device.type in ("cpu", "cuda")
    amp_dtype = autocast_dtype(device.type)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    offsets = torch.Generator().manual_seed(c.seed)
    shuffle = torch.Generator().manual_seed(c.seed)  # the window order's own (loader_order)
    pin = device.type == "cuda"

    out = prepare_run_dir(c.out, c.to_dict(), force=c.force)
    from torch.utils.tensorboard import SummaryWriter  # heavy: only when training

    from agents.training.run_logs import finish_tracking, start_tracking

    tracking = start_tracking(c)  # before the writer: W&B syncs it
    writer = SummaryWriter(str(out / "tb"))
    writer.add_text("pretrain/config", json.dumps(asdict(c), default=str))
    total = c.epochs * math.ceil(len(table) / c.batch_size)
    if c.max_steps is not None:
        total = min(total, c.max_steps)
    losses: list[float] = []
    window: list[tuple[float, float]] = []
    step = 0
    val_losses: list[tuple[int, float]] = []
    best = {"loss": math.inf, "step": 0, "state": None}
    timings = {f"{k}{c}": 0.0 for k in ("data", "model", "validation") for c in ("", "_cpu")}

    def validate() -> bool:
        """Measure the validation loss; keep the best weights; whether to stop (patience)."""
        t = _now()
        # the draw a DataLoader without a generator makes from the global generator (the
        # dropout's) for each pass: seeded runs stay those of the DataLoader-fed loop
        torch.empty((), dtype=torch.int64).random_()
        value = validation_loss(policy, val_table, device, c)
        _spend(timings, "validation", t)
        val_losses.append((step, value))
        writer.add_scalar("pretrain/val_loss", value, step)
        if value < best["loss"]:
            best.update(loss=value, step=step,
                        state={k: v.detach().clone() for k, v in policy.state_dict().items()})
        stale = sum(1 for s_, _ in val_losses if s_ > best["step"])
        return c.patience is not None and stale >= c.patience
    try:
        with tqdm(total=total, desc="pretrain", unit="step", disable=not c.progress) as bar:
            for _epoch in range(c.epochs):
                order = loader_order(len(table), shuffle)
                for first in range(0, len(order), c.batch_size):
                    if step >= total:
                        break
                    t = _now()
                    batch = table.batch(order[first : first + c.batch_size])
                    if pin:
                        batch = {k: v.pin_memory() for k, v in batch.items()}
                    lengths = batch["lengths"]
                    # pinned batch -> device, asynchronously; hits and crop on the device
                    hits, classes, target = batch_inputs(batch, bins, c, device,
                                                          non_blocking=True)  # fmt: skip
                    mask = batch["mask"].to(device, non_blocking=True)
                    r = 0
                    if c.phase_offsets:
                        r = int(torch.randint(c.phrase_len, (1,), generator=offsets))
                        r = min(r, max(int(lengths.min()) - 2, 0))  # keep >= 2 steps per window
                        hits, mask = hits[:, r:], mask[:, r:]
                        classes = None if classes is None else classes[:, r:]
                    t_model = _spend(timings, "data", t)
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                        loss, count = next_step_loss(policy, hits, mask, target, start_phase=r,
                                                     classes=classes)  # fmt: skip
                    if int(count) == 0:
                        continue
                    value = float(loss.detach())
                    if not math.isfinite(value) and not scaler.is_enabled():
                        raise FloatingPointError(
                            f"pretraining loss is {value} at step {step + 1}: lower lr, or "
                            "set amp=False"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    _spend(timings, "model", t_model)
                    step += 1
                    losses.append(value)
                    window.append((value, float(grad_norm)))
                    bar.update(1)
                    if step % c.log_every == 0:
                        _log(writer, bar, window, step)
                        if val_table is not None and validate():
                            total = step  # converged: no new best for `patience` validations
                if step >= total:
                    break
            if window:
                _log(writer, bar, window, step)
            if val_table is not None and (not val_losses or val_losses[-1][0] != step):
                validate()
    finally:
        writer.close()
        finish_tracking(tracking)
    final = DrumPolicy(dataclasses.replace(policy_config, dropout=0.0), bins)
    final.load_state_dict(best["state"] if best["state"] is not None else policy.state_dict())
    path = save_policy(out / "policy.pt", final)
    tail = losses[-min(c.log_every, len(losses)) :] if losses else [math.nan]
    best_loss = best["loss"] if val_losses else math.nan
    _spend(timings, "total", started)
    return PretrainResult(path, float(np.mean(tail)), losses, step, val_losses,
                          float(best_loss), int(best["step"]) if val_losses else step, timings)
