"""The default drum set: the 9 classes of Magenta's reduced drum mapping, named once.

Every module that names drum columns takes the names from here: :mod:`dataset.midi` (its
pitch tables list the classes in this order), :mod:`dataset.synthetic` (its class indices) and
:mod:`drum_env.render` (row labels; the band's agent names). Importing it imports nothing.
"""

from __future__ import annotations

__all__ = ["DRUM_NAMES"]

DRUM_NAMES: tuple[str, ...] = (
    "kick", "snare", "hihat_closed", "hihat_open", "tom_low", "tom_mid", "tom_high",
    "crash", "ride",
)  # fmt: skip
"""Names of the 9 default drum classes, in column order of a sequence."""
