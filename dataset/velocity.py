"""Velocity bins: how the expressive env turns a velocity in ``[0, 1]`` into a class and back.

With ``velocity_levels = K > 0`` a drum's action is a class in ``0 .. K``: 0 is no hit, class
``k >= 1`` is a hit in velocity bin ``k``. The bins are chosen from the data, equal-count:

* **edges** ``e_1 < ... < e_{K-1}`` are the ``j / K`` quantiles (``j = 1 .. K-1``, numpy's
  default linear interpolation) of the values of every hit (value ``> 0``) in the data; a hit of
  value ``v`` is in bin ``k = 1 + #{j : e_j <= v}``, so bin 1 is ``(0, e_1)``, bin ``k`` is
  ``[e_{k-1}, e_k)`` and bin ``K`` is ``[e_{K-1}, 1]``;
* **levels** ``l_1 .. l_K``: the value a class plays at, the median of the data's hits in that
  bin; an empty bin (edges that coincide, as when the data has fewer distinct velocities than
  ``K``) plays at the middle of its interval.

Data without a single hit, or whose hits all have one value, get the uniform bins: edges
``j / K`` and levels ``(k - 1/2) / K`` (with ``K = 1``: one bin, level 1 for binary data).

Numpy only (no torch): the env and the dataset use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["VelocityBins", "MAX_VELOCITY_LEVELS"]

MAX_VELOCITY_LEVELS = 127
"""At most one class per MIDI velocity."""


@dataclass(frozen=True, eq=False)
class VelocityBins:
    """``K`` velocity bins, as the module docstring defines them.

    ``edges``: float64 ``(K-1,)``, non-decreasing in ``(0, 1]``; ``levels``: float32 ``(K,)`` in
    ``(0, 1]``.
    """

    edges: np.ndarray
    levels: np.ndarray

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.float64).reshape(-1)
        levels = np.asarray(self.levels, dtype=np.float32).reshape(-1)
        k = len(levels)
        if not 1 <= k <= MAX_VELOCITY_LEVELS:
            raise ValueError(f"velocity bins: need 1 to {MAX_VELOCITY_LEVELS} levels, got {k}")
        if len(edges) != k - 1:
            raise ValueError(f"velocity bins: {k} levels need {k - 1} edges, got {len(edges)}")
        if not (np.isfinite(edges).all() and np.isfinite(levels).all()):
            raise ValueError("velocity bins: edges and levels must be finite")
        if ((edges <= 0) | (edges > 1)).any() or (np.diff(edges) < 0).any():
            raise ValueError(f"velocity bins: edges must be non-decreasing in (0, 1], got {edges}")
        if ((levels <= 0) | (levels > 1)).any():
            raise ValueError(f"velocity bins: levels must be in (0, 1], got {levels}")
        edges.setflags(write=False)
        levels.setflags(write=False)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "levels", levels)

    @property
    def num_levels(self) -> int:
        """``K``: the number of hit classes (the action has ``K + 1`` classes per drum)."""
        return len(self.levels)

    @classmethod
    def uniform(cls, num_levels: int) -> VelocityBins:
        """Edges ``j / K``, levels ``(k - 1/2) / K`` (level 1 when ``K = 1``)."""
        k = _check_levels(num_levels)
        if k == 1:
            return cls(np.zeros(0), np.ones(1))
        return cls(np.arange(1, k) / k, (np.arange(1, k + 1) - 0.5) / k)

    @classmethod
    def from_data(cls, sequences: Iterable[np.ndarray], num_levels: int) -> VelocityBins:
        """Equal-count bins from the hits of ``sequences`` (arrays ``(steps, drums)``)."""
        k = _check_levels(num_levels)
        hits = [np.asarray(s, dtype=np.float64) for s in sequences]
        values = np.concatenate([h[h > 0] for h in hits]) if hits else np.zeros(0)
        values = np.clip(values, 0.0, 1.0)
        if values.size == 0 or values.min() == values.max():
            if k == 1 and values.size:
                return cls(np.zeros(0), np.array([values[0]]))
            return cls.uniform(k)
        edges = np.quantile(values, np.arange(1, k) / k) if k > 1 else np.zeros(0)
        edges = np.maximum.accumulate(np.clip(edges, np.nextafter(0.0, 1.0), 1.0))
        codes = 1 + np.searchsorted(edges, values, side="right")
        lows = np.concatenate([[0.0], edges])
        highs = np.concatenate([edges, [1.0]])
        levels = np.empty(k)
        for j in range(k):  # K <= 127 bins: a short loop over bins, not over hits
            inside = values[codes == j + 1]
            levels[j] = np.median(inside) if inside.size else 0.5 * (lows[j] + highs[j])
        return cls(edges, np.clip(levels, np.nextafter(0.0, 1.0), 1.0))

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Values in ``[0, 1]`` -> int64 classes of the same shape (0 where the value is 0)."""
        v = np.asarray(values)
        codes = 1 + np.searchsorted(self.edges, v, side="right")
        return np.where(v > 0, codes, 0).astype(np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Classes in ``0 .. K`` -> float32 values of the same shape (0 for class 0)."""
        c = np.asarray(codes, dtype=np.int64)
        table = np.concatenate([np.zeros(1, np.float32), self.levels])
        return table[c]

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """``decode(encode(values))``: each hit moved to its bin's level (float32)."""
        return self.decode(self.encode(values))

    def to_dict(self) -> dict[str, list[float]]:
        """Plain JSON data: ``{"edges": [...], "levels": [...]}``."""
        return {"edges": self.edges.tolist(), "levels": self.levels.tolist()}

    @classmethod
    def from_dict(cls, data: VelocityBins | Mapping[str, Any]) -> VelocityBins:
        """The inverse of :meth:`to_dict` (a :class:`VelocityBins` passes through)."""
        if isinstance(data, VelocityBins):
            return data
        if not isinstance(data, Mapping) or set(data) != {"edges", "levels"}:
            raise ValueError(
                "velocity_bins must be a VelocityBins or a dict with keys 'edges' and 'levels', "
                f"got {data!r}"
            )
        return cls(np.asarray(data["edges"], np.float64), np.asarray(data["levels"], np.float32))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, VelocityBins)
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.levels, other.levels)
        )

    def __hash__(self) -> int:
        return hash((self.edges.tobytes(), self.levels.tobytes()))

    def __repr__(self) -> str:
        edges = ", ".join(f"{e:.3f}" for e in self.edges)
        levels = ", ".join(f"{v:.3f}" for v in self.levels)
        return f"VelocityBins(edges=[{edges}], levels=[{levels}])"


def _check_levels(num_levels: Any) -> int:
    if (
        not isinstance(num_levels, (int, np.integer))
        or isinstance(num_levels, bool)
        or not 1 <= num_levels <= MAX_VELOCITY_LEVELS
    ):
        raise ValueError(
            f"velocity_levels must be an integer in [1, {MAX_VELOCITY_LEVELS}], got {num_levels!r}"
        )
    return int(num_levels)
