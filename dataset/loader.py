"""Batching drum samples: the collate function and the RL dataloader (imports torch).

:func:`get_complete_rl_dataloader` wraps a
:class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset` in a
:class:`torch.utils.data.DataLoader` that pads variable-length windows and marks the
padding, shuffles with a seeded generator, and shards with
:class:`~torch.utils.data.distributed.DistributedSampler` under DDP. torch is imported when this
module is imported; :mod:`dataset` itself never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Sampler
from torch.utils.data.distributed import DistributedSampler

from dataset.hierarchical import CompleteHierarchicalDrumDataset

__all__ = ["collate_drum_batch", "get_complete_rl_dataloader", "set_loader_epoch"]


def _pad(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-pad along the first axis.

    Returns:
        padded (B, n_max, ...), lengths int64 (B,), mask bool (B, n_max) True on real entries.
    """
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.int64)
    padded = pad_sequence(tensors, batch_first=True, padding_value=0.0)
    mask = torch.arange(padded.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    return padded, lengths, mask


def collate_drum_batch(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate dataset samples into one padded batch.

    Windows shorter than the longest of the batch (from sequences shorter than ``seq_len``) are
    padded with zeros at the end. Zero also means silence, so use the masks: they are True on
    real steps (bars, phrases) and False on padding.

    Args:
        samples: ``B >= 1`` dicts ``{"step", "bar", "phrase", "metrics"}`` of
            :class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset` (tensors or numpy
            arrays).

    Returns:
        dict with

        * ``"step"``: float32 ``(B, L_max, D)``, zero-padded;
        * ``"mask"``: bool ``(B, L_max)``, True on real steps;
        * ``"lengths"``: int64 ``(B,)``, window lengths in steps;
        * ``"bar"``: float32 ``(B, n_bars_max, D)`` (each bar's mean, the seed's
          ``_aggregate``), zero-padded, and ``"bar_mask"`` bool ``(B, n_bars_max)``;
        * ``"phrase"``: float32 ``(B, n_phrases_max, D)`` and ``"phrase_mask"`` bool
          ``(B, n_phrases_max)``;
        * ``"metrics"``: list of the ``B`` per-sample nested metric dicts
          (``{"step", "bar", "phrase", "section", "song"}``), as they are (their shapes may
          differ between samples, e.g. ``["bar"]["density"]`` has one value per bar).

    Raises:
        ValueError: if ``samples`` is empty.
    """
    if len(samples) == 0:
        raise ValueError("collate_drum_batch needs at least one sample")

    def tensors(key: str) -> list[torch.Tensor]:
        return [torch.as_tensor(s[key], dtype=torch.float32) for s in samples]

    step, lengths, mask = _pad(tensors("step"))
    bar, _, bar_mask = _pad(tensors("bar"))
    phrase, _, phrase_mask = _pad(tensors("phrase"))
    return {
        "step": step,
        "mask": mask,
        "lengths": lengths,
        "bar": bar,
        "bar_mask": bar_mask,
        "phrase": phrase,
        "phrase_mask": phrase_mask,
        "metrics": [s["metrics"] for s in samples],
    }


def get_complete_rl_dataloader(
    npz_dir: str | Path | None,
    seq_len: int = 512,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    batch_size: int = 16,
    shuffle: bool = True,
    augment: bool = False,
    num_workers: int = 0,
    *,
    sampler: Sampler[int] | None = None,
    seed: int = 0,
    distributed: bool = False,
    num_replicas: int | None = None,
    rank: int | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
    **dataset_kwargs: Any,
) -> DataLoader:
    """A DataLoader of padded batches of hierarchical drum samples.

    Sampling, in order of precedence:

    * ``sampler`` given: it is used as it is (``shuffle`` is then ignored);
    * ``distributed=True``, or a ``torch.distributed`` process group is initialised:
      ``DistributedSampler(dataset, num_replicas, rank, shuffle=shuffle, seed=seed,
      drop_last=drop_last)``; each of the ``num_replicas`` ranks gets a disjoint
      ``ceil(N / num_replicas)`` indices (padded by repetition unless ``drop_last``).
      ``num_replicas`` and ``rank`` default to the process group's;
    * otherwise a random permutation from a ``torch.Generator`` seeded with ``seed`` when
      ``shuffle``, else the dataset order.

    Each epoch: call :func:`set_loader_epoch` (it sets the sampler's epoch for
    ``DistributedSampler`` and the dataset's epoch for augmentation). Batches are fetched with
    the dataset's batched ``__getitems__`` and collated by :func:`collate_drum_batch`.

    Args:
        npz_dir: folder of ``.npz`` files; ``None``: the built-in synthetic corpus
            (:func:`dataset.synthetic.default_corpus`), unless ``sequences=`` is given.
        seq_len: window length, steps.
        steps_per_bar: steps in one bar.
        bars_per_phrase: bars in one phrase.
        batch_size: samples per batch.
        shuffle: shuffle the samples (every epoch a new order, from ``seed``).
        augment: roll each window by a seeded random shift (see the dataset).
        num_workers: DataLoader worker processes; the samples do not depend on it.
        sampler: a sampler of sample indices, overriding ``shuffle`` and ``distributed``.
        seed: seed of the shuffle, of the ``DistributedSampler`` and of the augmentation.
        distributed: shard with ``DistributedSampler``.
        num_replicas: number of DDP ranks (default: the process group's world size).
        rank: this process's rank (default: the process group's rank).
        drop_last: drop the last incomplete batch (and, when distributed, the tail that does
            not divide evenly among the ranks).
        pin_memory: passed to the DataLoader.
        **dataset_kwargs: further keywords of
            :class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset` (``sections``,
            ``fast_threshold``, ``stride``, ``on_error``, ``sequences``, ...).

    Returns:
        a DataLoader yielding the dicts of :func:`collate_drum_batch`; its ``.dataset`` is the
        :class:`~dataset.hierarchical.CompleteHierarchicalDrumDataset`.

    Raises:
        ValueError: for ``sampler`` together with ``distributed=True``, or invalid sizes.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if npz_dir is None and dataset_kwargs.get("sequences") is None:
        from dataset.synthetic import default_corpus

        dataset_kwargs["sequences"] = default_corpus()
    dataset = CompleteHierarchicalDrumDataset(
        npz_dir,
        seq_len,
        steps_per_bar,
        bars_per_phrase,
        augment=augment,
        seed=seed,
        **dataset_kwargs,
    )
    use_ddp = distributed or (
        torch.distributed.is_available() and torch.distributed.is_initialized()
    )
    generator = None
    if sampler is not None:
        if distributed:
            raise ValueError("give either sampler or distributed=True, not both")
        shuffle = False
    elif use_ddp:
        sampler = DistributedSampler(
            dataset,  # type: ignore[arg-type]  # a map-style dataset, not a subclass
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        shuffle = False
    elif shuffle:
        generator = torch.Generator()
        generator.manual_seed(seed)
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_drum_batch,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Start epoch ``epoch``: set it on the sampler (if it has ``set_epoch``) and the dataset.

    Call it before iterating ``loader`` each epoch, so that a ``DistributedSampler`` reshuffles
    and the dataset's augmentation draws new shifts, identically on every run.

    Args:
        loader: a DataLoader from :func:`get_complete_rl_dataloader`.
        epoch: non-negative epoch number.
    """
    for obj in (loader.sampler, loader.dataset):
        set_epoch = getattr(obj, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
