"""Test helper shared by the dataset tests: the nested metrics dict, flattened."""

from __future__ import annotations

from typing import Any


def leaves(m: dict) -> dict[tuple, Any]:
    """The nested metrics dict as ``{(level, [section,] name): value}``, in dict order."""
    out = {}
    for level, part in m.items():
        if level == "section":
            for i, section in enumerate(part):
                out.update({(level, i, k): v for k, v in section.items()})
        else:
            out.update({(level, k): v for k, v in part.items()})
    return out
