"""Distributed set-up for the trainers: DDP under ``torchrun``, device choice, reductions.

Under ``torchrun`` (which always sets ``WORLD_SIZE``) DDP runs even with one process, so the
nccl / gloo path can be checked on a single-GPU machine: ``nccl`` on CUDA, ``gloo`` on CPU.
Without ``torchrun`` every helper here is a no-op over a one-rank :class:`Dist`.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DEVICES",
    "Dist",
    "check_device",
    "setup_distributed",
    "teardown_distributed",
    "resolve_device",
    "all_reduce",
    "gather_to_main",
    "broadcast_from_main",
    "share_normalizer",
    "barrier",
]

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
"""The accepted ``device`` values (``cuda:N`` for any device index N)."""


class Dist(NamedTuple):
    """This process's place in a (possibly one-process) DDP run."""

    rank: int
    """Global rank (0 without DDP)."""
    world_size: int
    """Number of processes (1 without DDP)."""
    local_rank: int
    """Rank on this machine: the CUDA device index under DDP."""
    enabled: bool
    """Whether a process group is in use."""
    owns_group: bool
    """Whether :func:`setup_distributed` created the group (and must destroy it)."""

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0


def check_device(device: Any) -> None:
    """Raise ``ValueError`` unless ``device`` is one of :data:`DEVICES`."""
    ok = isinstance(device, str) and (
        device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())
    )
    if not ok:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def setup_distributed(device: str) -> Dist:
    """Join the process group when launched by ``torchrun``; a one-rank :class:`Dist` otherwise.

    Args:
        device: the run's ``device`` setting (``"cpu"`` forces gloo).
    """
    if "WORLD_SIZE" not in os.environ:
        return Dist(0, 1, 0, False, False)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, True, owns)


def teardown_distributed(d: Dist) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if d.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def resolve_device(device: str, d: Dist) -> torch.device:
    """The torch device of this rank: ``cuda:LOCAL_RANK`` under DDP on CUDA.

    Raises:
        ValueError: CUDA asked for but not available.
    """
    if device == "cpu":
        return torch.device("cpu")
    if device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        raise ValueError(f"device={device!r} but CUDA is not available (torch "
                         f"{torch.__version__}: {build}); use device 'cpu' or 'auto'")
    if d.enabled:
        return torch.device("cuda", d.local_rank)
    return torch.device(device if device != "auto" else "cuda")


def all_reduce(values: Tensor, d: Dist) -> Tensor:
    """Sum ``values`` over ranks, in place (a no-op without DDP); returns ``values``."""
    if d.enabled:
        import torch.distributed as dist

        dist.all_reduce(values)
    return values


def gather_to_main(obj: Any, d: Dist) -> list[Any] | None:
    """Every rank's ``obj`` as a list on rank 0 (``None`` on the others); ``[obj]`` without DDP."""
    if not d.enabled:
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * d.world_size if d.main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def broadcast_from_main(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; the other ranks' ``obj`` is ignored)."""
    if not d.enabled:
        return obj
    import torch.distributed as dist

    box = [obj if d.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def share_normalizer(normalizer: Any, d: Dist) -> None:
    """Make a :class:`~drum_env.rewards.RunningNormalizer` fold every rank's batches (under DDP).

    Sets its ``reduce`` to a sum over ranks of the batch's count, sum and sum of squares, so each
    ``update`` adds the episodes of all ranks (Chan et al.'s update of the combined batch) and
    every rank holds the same moments: the ranks scale rewards alike. Every rank must call
    ``update`` at the same point: the env's normaliser at the same env step (the trainer's
    sub-envs start together and their episodes all have one length), the ``"epoch"`` one at
    the end of each rollout. A no-op without DDP (a single process is unchanged bit for bit).
    """
    if not d.enabled:
        return
    # gloo sums float64 on the CPU; nccl needs the rank's CUDA device
    device = torch.device("cuda", d.local_rank) if _backend_is_nccl() else torch.device("cpu")

    def reduce(stats: np.ndarray) -> np.ndarray:
        summed = all_reduce(torch.from_numpy(np.array(stats, dtype=np.float64)).to(device), d)
        return summed.cpu().numpy()

    normalizer.reduce = reduce


def _backend_is_nccl() -> bool:
    import torch.distributed as dist

    return dist.get_backend() == "nccl"


def barrier(d: Dist) -> None:
    """Wait for every rank (a no-op without DDP)."""
    if d.enabled:
        import torch.distributed as dist

        dist.barrier()
