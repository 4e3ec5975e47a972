"""The data side of drum-env: metrics, the hierarchical dataset, MIDI and the built-in corpus.

No Gymnasium, no RL; importing it does not import torch (only :mod:`dataset.loader` does).
"""

from dataset.hierarchical import CompleteHierarchicalDrumDataset

__all__ = ["CompleteHierarchicalDrumDataset"]
