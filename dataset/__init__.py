"""The data side of drum-env: metrics, the hierarchical dataset, MIDI and the built-in corpus.

No Gymnasium, no RL; importing it does not import torch. The dataloader names
(:func:`~dataset.loader.get_complete_rl_dataloader`, :func:`~dataset.loader.collate_drum_batch`,
:func:`~dataset.loader.set_loader_epoch`) are imported from :mod:`dataset.loader`, and torch
with them, the first time they are asked for: ``from dataset import get_complete_rl_dataloader``
works as in the seed's example.
"""

from __future__ import annotations

import importlib
from typing import Any

from dataset.hierarchical import CompleteHierarchicalDrumDataset
from dataset.registry import register_metric, registered_metrics

__all__ = [
    "CompleteHierarchicalDrumDataset",
    "get_complete_rl_dataloader",
    "collate_drum_batch",
    "set_loader_epoch",
    "register_metric",
    "registered_metrics",
]

_LAZY = {
    "get_complete_rl_dataloader": "dataset.loader",
    "collate_drum_batch": "dataset.loader",
    "set_loader_epoch": "dataset.loader",
}


def __getattr__(name: str) -> Any:
    """Import the dataloader names (and torch) on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
