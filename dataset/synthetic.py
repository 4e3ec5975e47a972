"""The built-in drum corpus: seeded, procedural grooves used when the user gives no data.

A *sequence* is a float32 array ``(steps, drums)`` with values in ``[0, 1]``: a hit is a value
``> 0`` and its value is the velocity (MIDI velocity / 127). The 9 drums are Magenta's reduced
drum classes, in the order of ``dataset.drums.DRUM_NAMES`` (:data:`KICK` = 0 ... :data:`RIDE` = 8).
A bar is 4/4, ``steps_per_bar`` steps long (16ths by default).

How a sequence is made
----------------------
Every style (:data:`STYLES`) is a table of one-bar patterns on a 16th-note grid, one set for
*verse* sections and one for *chorus* sections, written as strings in which ``X`` = 0.95,
``x`` = 0.8, ``o`` = 0.6, ``g`` = 0.3 (ghost note) and ``.`` = rest. Downbeats carry the
accents. A sequence is then built bar by bar:

1. **Sections.** Sections are ``bars_per_section`` bars long and alternate verse, chorus,
   verse, ... A verse rides the closed hi-hat; a chorus rides the ride cymbal or open hats, is
   played a little louder, and opens with a crash. Where a voice has several alternative
   patterns (kick variations, clave direction), one is drawn per section.
2. **Variations.** Each bar mutates the section's pattern at random: non-essential kicks and
   snares drop out, ghost snares and ghost kicks are added, a closed hi-hat on an off-beat opens.
   The kick on beat 1 and the style's backbeat snares are never dropped.
3. **Fills.** The last bar of every phrase of ``bars_per_phrase`` bars ends in a fill: its last
   1, 2 or 3 beats are replaced by a snare/tom run descending in pitch (snare, high, mid, low
   tom), in 8ths or 16ths with a crescendo, and kicks under some beats. Every fill bar has at
   least one tom hit; no other bar has any.
4. **Crashes.** The downbeat after a fill (the first bar of every phrase but the first) carries
   a crash, and so does the first bar of each chorus; a song starts with a crash half the time.
5. **Dynamics.** Each sequence draws a loudness scale in ``[0.85, 1]``; every velocity is scaled
   and jittered by Gaussian noise (sd 0.04), then clipped to ``[0.05, 1]`` so a hit stays a hit.

Swing
-----
``"shuffle"`` is written on the 16th grid with the off-beat 8th of each beat on its 4th 16th
(positions 0 and 3 of each beat: a dotted-8th/16th approximation of the triplet swing, which
sits at 2/3 of the beat). At resolutions that hold triplets (``steps_per_bar`` a multiple of
48) those off-beats move to the true triplet position; at 4 or 8 steps per bar they are
straightened onto the 8th-note off-beat.

Resolution
----------
``steps_per_bar`` must be 4, 8 or a positive multiple of 16. Patterns are always generated on
16 steps per bar with the same random draws, then resampled: for ``16 * k`` steps an event on
16th ``p`` goes to step ``k * p`` (so ``steps_per_bar=32`` uses only even steps); for 8 or 4
steps only the events on that coarser grid are kept (every other 16th, or every 4th), notes of
one drum landing on one step keeping the larger velocity. So, for every straight style,
``generate_sequence(..., steps_per_bar=32)[::2]`` equals the 16-step sequence drawn from the
same generator state.

Randomness
----------
Everything is drawn from the ``np.random.Generator`` passed in (or built from ``seed``), never
from the global ``np.random`` or ``random`` state. :func:`generate_corpus` gives sequence ``i``
its own generator spawned from ``np.random.SeedSequence(seed)``, so the first ``n`` sequences
of a corpus do not depend on ``num_sequences``.

The default corpus (:func:`default_corpus`, :func:`ensure_default_corpus`) is 64 sequences of
16 to 48 bars, seed 0, every style in turn. Its cache folder name carries a version
(``synthetic-v1-seed0``) that is bumped whenever the generator's output changes.

Example:
    >>> import numpy as np
    >>> seq = generate_sequence("funk", 8, np.random.default_rng(0))
    >>> seq.shape, seq.dtype
    ((128, 9), dtype('float32'))
    >>> bool(seq[::16, KICK].all())  # a kick on beat 1 of every bar
    True
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from dataset.io import atomic_write

__all__ = [
    "CORPUS_VERSION",
    "CRASH",
    "DEFAULT_CORPUS_KWARGS",
    "HIHAT_CLOSED",
    "HIHAT_OPEN",
    "KICK",
    "NUM_DRUMS",
    "RIDE",
    "SNARE",
    "STYLES",
    "SyntheticSequence",
    "TOM_HIGH",
    "TOM_LOW",
    "TOM_MID",
    "default_corpus",
    "default_corpus_dir",
    "ensure_default_corpus",
    "generate_corpus",
    "generate_sequence",
    "write_corpus",
]

# Drum class indices, in the order of dataset.drums.DRUM_NAMES.
KICK = 0
SNARE = 1
HIHAT_CLOSED = 2
HIHAT_OPEN = 3
TOM_LOW = 4
TOM_MID = 5
TOM_HIGH = 6
CRASH = 7
RIDE = 8
NUM_DRUMS = 9

CORPUS_VERSION = 1
"""Version of the generator's output; part of the default corpus' cache folder name."""

DEFAULT_CORPUS_KWARGS: Mapping[str, Any] = MappingProxyType(
    {
        "num_sequences": 64,
        "num_bars": (16, 48),
        "seed": 0,
        "steps_per_bar": 16,
        "bars_per_phrase": 4,
        "bars_per_section": 8,
    }
)
"""Arguments of :func:`generate_corpus` that make the default corpus."""

_GRID = 16  # patterns are written and generated on 16 steps per bar
_MARKER = ".complete.json"  # written last by ensure_default_corpus

_VELOCITY = {"X": 0.95, "x": 0.8, "o": 0.6, "g": 0.3, ".": 0.0}
_GHOST = 0.3
_GHOST_KICK = 0.6
_CRASH_VELOCITY = 0.9
_JITTER_SD = 0.04
_MIN_VELOCITY = 0.05
_VERSE_DYNAMICS = 0.93  # verses are played a little softer than choruses

_FILL_LENGTHS = np.array([4, 8, 12])  # 16ths replaced at the end of the bar: 1, 2 or 3 beats
_FILL_LENGTH_P = np.array([0.3, 0.5, 0.2])
_FILL_VOICES = np.array([SNARE, TOM_HIGH, TOM_MID, TOM_LOW])  # high to low
_FILL_DENSITY = 0.85  # probability that a grid position inside a fill is played
_FILL_SNARE_SWAP = 0.12  # probability that a tom note of a fill is played on the snare
_FILL_KICK = 0.5  # probability of a kick under each beat of a fill


@dataclass(frozen=True)
class _Style:
    """One style: pattern tables and mutation rates (all probabilities in [0, 1]).

    Pattern tables map a drum index to one or more alternative 16-character bar patterns.
    """

    verse: Mapping[int, tuple[str, ...]]
    """Patterns of verse sections (closed hi-hat)."""
    chorus: Mapping[int, tuple[str, ...]]
    """Patterns of chorus sections (ride or open hats)."""
    backbeat: tuple[int, ...]
    """16th positions of snare notes that are never dropped (outside fills)."""
    swing: bool = False
    """Off-beat 8ths sit on the 4th 16th of the beat (see the module docstring)."""
    drop: float = 0.05
    """Per note: a kick (not beat 1) or snare (not backbeat) of the pattern drops out."""
    ghost_snare: float = 0.03
    """Per free off-beat 16th: a ghost snare (velocity 0.3) is added."""
    ghost_kick: float = 0.15
    """Per bar: one extra kick is added on a free position."""
    open_hat: float = 0.2
    """Per bar: one closed hi-hat on an off-beat 8th is played open instead."""
    fill_sixteenths: float = 0.5
    """Per fill: the fill runs in 16ths (else 8ths); ignored for swing styles."""


_STYLE_TABLE: dict[str, _Style] = {
    "rock": _Style(
        verse={
            KICK: ("X.......X.x.....", "X.......X.....x.", "X.....x.X......."),
            SNARE: ("....X.......X...",),
            HIHAT_CLOSED: ("X.o.x.o.X.o.x.o.",),
        },
        chorus={
            KICK: ("X.......X.x.....", "X.x.....X.x....."),
            SNARE: ("....X.......X...",),
            RIDE: ("X.o.x.o.X.o.x.o.",),
        },
        backbeat=(4, 12),
        drop=0.05,
        ghost_snare=0.03,
        ghost_kick=0.15,
        open_hat=0.25,
        fill_sixteenths=0.5,
    ),
    "funk": _Style(
        verse={
            KICK: ("X.x.......x..x..", "X..x......X..x..", "X.....x...x....x"),
            SNARE: ("....X..g.g..X..g", "....X.g..g..X.g."),
            HIHAT_CLOSED: ("XoxoXoxoXoxoXoxo",),
        },
        chorus={
            KICK: ("X.x.......x..x..", "X..x......X..x.."),
            SNARE: ("....X..g.g..X..g",),
            HIHAT_CLOSED: ("X..oX..oX..oX..o",),
            HIHAT_OPEN: ("..x...x...x...x.",),
        },
        backbeat=(4, 12),
        drop=0.1,
        ghost_snare=0.12,
        ghost_kick=0.3,
        open_hat=0.3,
        fill_sixteenths=0.7,
    ),
    "hiphop": _Style(
        verse={
            KICK: ("X......x..X.....", "X.x.......X..x..", "X......xX.x....."),
            SNARE: ("....X.......X...",),
            HIHAT_CLOSED: ("x.o.x.o.x.o.x.o.", "x.oox.o.x.oox.o."),
        },
        chorus={
            KICK: ("X......x..X.....", "X.x.......X..x.."),
            SNARE: ("....X.......X...",),
            HIHAT_CLOSED: ("x...x...x...x...",),
            HIHAT_OPEN: ("..o...o...o...x.",),
        },
        backbeat=(4, 12),
        drop=0.08,
        ghost_snare=0.04,
        ghost_kick=0.2,
        open_hat=0.15,
        fill_sixteenths=0.4,
    ),
    "shuffle": _Style(
        verse={
            KICK: ("X.......X..x....", "X......xX.......", "X.......X......."),
            SNARE: ("....X..g....X..g", "....X.......X..g"),
            HIHAT_CLOSED: ("X..ox..oX..ox..o",),
        },
        chorus={
            KICK: ("X.......X..x....", "X.......X......."),
            SNARE: ("....X..g....X..g",),
            RIDE: ("X..ox..oX..ox..o",),
            HIHAT_CLOSED: ("....o.......o...",),  # hi-hat foot on 2 and 4
        },
        backbeat=(4, 12),
        swing=True,
        drop=0.06,
        ghost_snare=0.08,
        ghost_kick=0.15,
        open_hat=0.15,
    ),
    "bossa": _Style(
        verse={
            KICK: ("X..ox..oX..ox..o",),
            SNARE: ("o..o..o...o..o..", "..o..o..o..o..o."),  # cross-stick clave, 3-2 / 2-3
            HIHAT_CLOSED: ("x.o.x.o.x.o.x.o.",),
        },
        chorus={
            KICK: ("X..ox..oX..ox..o",),
            SNARE: ("o..o..o...o..o..", "..o..o..o..o..o."),
            RIDE: ("x.o.x.o.x.o.x.o.",),
        },
        backbeat=(),
        drop=0.02,
        ghost_snare=0.0,
        ghost_kick=0.0,
        open_hat=0.05,
        fill_sixteenths=0.3,
    ),
    "breakbeat": _Style(
        verse={
            KICK: ("X.x.......xx....", "X.x.......x.....", "X.x...x...x....."),
            SNARE: ("....X..o.o..X..o", "....X..o.o..X..."),
            HIHAT_CLOSED: ("X.x.x.x.X.x.x.x.",),
        },
        chorus={
            KICK: ("X.x.......xx....", "X.x.......x....."),
            SNARE: ("....X..o.o..X..o",),
            RIDE: ("X.x.X.x.X.x.X.x.",),
        },
        backbeat=(4, 12),
        drop=0.08,
        ghost_snare=0.06,
        ghost_kick=0.25,
        open_hat=0.2,
        fill_sixteenths=0.6,
    ),
    "disco": _Style(
        verse={
            KICK: ("X...x...X...x...",),
            SNARE: ("....X.......X...",),
            HIHAT_CLOSED: ("xoxoxoxoxoxoxoxo",),
        },
        chorus={
            KICK: ("X...x...X...x...",),
            SNARE: ("....X.......X...",),
            HIHAT_CLOSED: ("x...x...x...x...",),
            HIHAT_OPEN: ("..X...X...X...X.",),
        },
        backbeat=(4, 12),
        drop=0.02,
        ghost_snare=0.03,
        ghost_kick=0.05,
        open_hat=0.4,
        fill_sixteenths=0.6,
    ),
    "reggae": _Style(  # steppers: four on the floor, cross-stick on 3, off-beat hats
        verse={
            KICK: ("X...x...X...x...",),
            SNARE: ("........X.......", "........X.....g."),
            HIHAT_CLOSED: ("o.x.o.x.o.x.o.x.", "o.xoo.xoo.xoo.xo"),
        },
        chorus={
            KICK: ("X...x...X...x...",),
            SNARE: ("........X.......",),
            HIHAT_CLOSED: ("o...o...o...o...",),
            HIHAT_OPEN: ("..x...x...x...x.",),
        },
        backbeat=(8,),
        drop=0.03,
        ghost_snare=0.04,
        ghost_kick=0.05,
        open_hat=0.2,
        fill_sixteenths=0.4,
    ),
    "halftime": _Style(
        verse={
            KICK: ("X.....x.......x.", "X......x..x.....", "X.x...........x."),
            SNARE: ("........X.......", "........X.....g."),
            HIHAT_CLOSED: ("x.o.x.o.x.o.x.o.", "xoxoxoxoxoxoxoxo"),
        },
        chorus={
            KICK: ("X.....x.......x.", "X......x..x....."),
            SNARE: ("........X.......",),
            RIDE: ("X.o.x.o.X.o.x.o.",),
        },
        backbeat=(8,),
        drop=0.06,
        ghost_snare=0.05,
        ghost_kick=0.15,
        open_hat=0.15,
        fill_sixteenths=0.5,
    ),
}

STYLES: tuple[str, ...] = tuple(_STYLE_TABLE)
"""Names of the groove styles, in the order :func:`generate_corpus` cycles through them."""


def _parse_pattern(pattern: str) -> np.ndarray:
    """Turn a pattern string into velocities: float64 array (16,), values in [0, 1]."""
    if len(pattern) != _GRID or set(pattern) - set(_VELOCITY):
        raise ValueError(f"bad pattern {pattern!r}: need {_GRID} of {''.join(_VELOCITY)}")
    return np.array([_VELOCITY[c] for c in pattern])


def _parse_table(table: Mapping[int, tuple[str, ...]]) -> dict[int, np.ndarray]:
    """Parse a pattern table: drum -> float64 array (alternatives, 16)."""
    return {drum: np.stack([_parse_pattern(p) for p in alts]) for drum, alts in table.items()}


# Parsed once at import: style -> (verse table, chorus table).
_PARSED = {
    name: (_parse_table(style.verse), _parse_table(style.chorus))
    for name, style in _STYLE_TABLE.items()
}

_POS = np.arange(_GRID)
_STRAIGHT_GHOST = _POS % 2 == 1  # 16th "e" and "a" positions
_SWING_GHOST = _POS % 4 == 3  # swung off-beats
_STRAIGHT_OFFBEAT8 = _POS % 4 == 2  # the "and" of each beat
_SWING_GRID = (_POS % 4 == 0) | (_POS % 4 == 3)


class SyntheticSequence(NamedTuple):
    """One sequence of the synthetic corpus."""

    name: str
    """File stem, ``"<style>_<index:04d>"``, unique within a corpus."""
    style: str
    """One of :data:`STYLES`."""
    sequence: np.ndarray
    """float32 array (num_bars * steps_per_bar, 9), velocities in [0, 1], 0 = rest."""


def _check_int(value: object, name: str, minimum: int) -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name`` if invalid."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {number}")
    return number


def _check_steps_per_bar(steps_per_bar: object) -> int:
    """Validate ``steps_per_bar``: 4, 8 or a positive multiple of 16."""
    steps = _check_int(steps_per_bar, "steps_per_bar", 4)
    if steps not in (4, 8) and steps % _GRID != 0:
        raise ValueError(f"steps_per_bar must be 4, 8 or a positive multiple of 16, got {steps}")
    return steps


def _check_style(style: object) -> _Style:
    """Return the style's table, or raise ValueError listing :data:`STYLES`."""
    if not isinstance(style, str) or style not in _STYLE_TABLE:
        raise ValueError(f"style must be one of {', '.join(STYLES)}; got {style!r}")
    return _STYLE_TABLE[style]


def _section_pattern(table: Mapping[int, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Draw one alternative per drum: float64 array (16, 9), velocities in [0, 1]."""
    bar = np.zeros((_GRID, NUM_DRUMS))
    for drum, alternatives in table.items():
        bar[:, drum] = alternatives[rng.integers(len(alternatives))]
    return bar


def _mutate(bar: np.ndarray, style: _Style, rng: np.random.Generator) -> None:
    """Apply one bar's random variations in place; bar: float64 array (16, 9)."""
    u = rng.random((5, _GRID))  # drop kick, drop snare, ghost snare, ghost kick, open hat
    coins = rng.random(2)  # ghost kick?, open hat?

    kick, snare = bar[:, KICK], bar[:, SNARE]
    kick_anchor = _POS == 0
    snare_anchor = np.isin(_POS, style.backbeat)
    kick[(kick > 0) & ~kick_anchor & (u[0] < style.drop)] = 0.0
    snare[(snare > 0) & ~snare_anchor & (u[1] < style.drop)] = 0.0

    ghost_grid = _SWING_GHOST if style.swing else _STRAIGHT_GHOST
    free = (snare == 0) & (kick == 0)
    snare[free & ghost_grid & (u[2] < style.ghost_snare)] = _GHOST

    if coins[0] < style.ghost_kick:
        grid = _SWING_GRID if style.swing else np.ones(_GRID, dtype=bool)
        candidates = (kick == 0) & (snare == 0) & grid & ~kick_anchor
        if candidates.any():
            kick[np.argmax(np.where(candidates, u[3], -1.0))] = _GHOST_KICK

    if coins[1] < style.open_hat:
        offbeat = _SWING_GHOST if style.swing else _STRAIGHT_OFFBEAT8
        candidates = offbeat & (bar[:, HIHAT_CLOSED] > 0)
        if candidates.any():
            step = np.argmax(np.where(candidates, u[4], -1.0))
            bar[step, HIHAT_OPEN] = bar[step, HIHAT_CLOSED]
            bar[step, HIHAT_CLOSED] = 0.0


def _fill(bar: np.ndarray, style: _Style, rng: np.random.Generator) -> None:
    """Replace the end of a bar by a snare/tom fill, in place; bar: float64 array (16, 9)."""
    length = int(rng.choice(_FILL_LENGTHS, p=_FILL_LENGTH_P))
    start = _GRID - length
    sixteenths = rng.random() < style.fill_sixteenths
    bar[start:] = 0.0

    if style.swing:
        grid = _POS[start:][_SWING_GRID[start:]]
    elif sixteenths:
        grid = _POS[start:]
    else:
        grid = _POS[start::2]
    played = rng.random(grid.size) < _FILL_DENSITY
    played[0] = played[-1] = True  # a fill is heard from its first step to its last
    steps = grid[played]
    n = steps.size

    # Walk down from the snare or the high tom to the low tom over the fill; the last note is
    # on a tom whatever is drawn (n >= 2, so its index is at least 2 from a start of 0 or 1).
    first = int(rng.integers(2))
    voice_index = first + (np.arange(n) * (len(_FILL_VOICES) - first)) // n
    voices = _FILL_VOICES[voice_index]
    swap = rng.random(n) < _FILL_SNARE_SWAP
    swap[-1] = False
    voices = np.where(swap, SNARE, voices)
    bar[steps, voices] = np.linspace(0.65, 0.95, n)  # crescendo into the next downbeat

    beats = _POS[start::4]
    bar[beats[rng.random(beats.size) < _FILL_KICK], KICK] = 0.7


def _crash(bar: np.ndarray) -> None:
    """Put a crash on the downbeat in place (the cymbal replaces the time keeping there)."""
    bar[0, [HIHAT_CLOSED, HIHAT_OPEN, RIDE]] = 0.0
    bar[0, CRASH] = _CRASH_VELOCITY
    bar[0, KICK] = max(bar[0, KICK], _VELOCITY["X"])


def _resample(grid16: np.ndarray, steps_per_bar: int, swing: bool) -> np.ndarray:
    """Resample bars from 16 steps to ``steps_per_bar`` (see the module docstring).

    Args:
        grid16: float array (num_bars, 16, drums), velocities in [0, 1].
        steps_per_bar: 4, 8 or a multiple of 16.
        swing: whether positions 3 of each beat are swung off-beats.

    Returns:
        float array (num_bars, steps_per_bar, drums).
    """
    if steps_per_bar == _GRID:
        return grid16
    source = _POS
    if steps_per_bar % _GRID == 0:
        dest = source * (steps_per_bar // _GRID)
        if swing and steps_per_bar % 48 == 0:  # 12 * k steps per beat: true triplets
            beat = steps_per_bar // 4
            swung = source % 4 == 3
            dest[swung] = (source[swung] // 4) * beat + 2 * beat // 3
        keep = np.ones(_GRID, dtype=bool)
    else:
        factor = _GRID // steps_per_bar
        position = source - (swing & (source % 4 == 3))  # straighten swung off-beats
        keep = position % factor == 0
        dest = position // factor
    out = np.zeros((grid16.shape[0], steps_per_bar, grid16.shape[2]), dtype=grid16.dtype)
    for src, dst in zip(source[keep], dest[keep], strict=True):
        np.maximum(out[:, dst], grid16[:, src], out=out[:, dst])
    return out


def generate_sequence(
    style: str,
    num_bars: int,
    rng: np.random.Generator | int,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    bars_per_section: int = 8,
) -> np.ndarray:
    """Generate one groove of ``num_bars`` bars of 4/4 in one style.

    Sections of ``bars_per_section`` bars alternate verse and chorus; the last bar of every
    phrase of ``bars_per_phrase`` bars ends in a tom fill and the next downbeat has a crash (see
    the module docstring for every rule). The random draws do not depend on ``steps_per_bar``.

    Args:
        style: one of :data:`STYLES`.
        num_bars: length in bars, >= 1.
        rng: the generator every random draw comes from (advanced in place), or an int seed
            for ``np.random.default_rng``.
        steps_per_bar: steps per 4/4 bar: 4, 8 or a positive multiple of 16 (16 = 16th notes).
        bars_per_phrase: bars per phrase, >= 1; the last bar of each phrase has a fill.
        bars_per_section: bars per section, >= 1; sections alternate verse and chorus.

    Returns:
        float32 array (num_bars * steps_per_bar, 9), velocities in [0, 1], 0 = rest; drums in
        the order :data:`KICK` ... :data:`RIDE`.

    Raises:
        ValueError: unknown ``style`` (the message lists :data:`STYLES`) or an invalid
            ``num_bars``, ``steps_per_bar``, ``bars_per_phrase`` or ``bars_per_section``.
        TypeError: ``rng`` is neither a ``np.random.Generator`` nor an int.

    Example:
        >>> seq = generate_sequence("rock", 4, np.random.default_rng(1), steps_per_bar=8)
        >>> seq.shape
        (32, 9)
    """
    spec = _check_style(style)
    num_bars = _check_int(num_bars, "num_bars", 1)
    steps_per_bar = _check_steps_per_bar(steps_per_bar)
    bars_per_phrase = _check_int(bars_per_phrase, "bars_per_phrase", 1)
    bars_per_section = _check_int(bars_per_section, "bars_per_section", 1)
    if not isinstance(rng, np.random.Generator):
        if isinstance(rng, bool) or not isinstance(rng, int | np.integer):
            raise TypeError(f"rng must be a numpy.random.Generator or an int seed, got {rng!r}")
        rng = np.random.default_rng(rng)

    verse_table, chorus_table = _PARSED[style]
    grid = np.zeros((num_bars, _GRID, NUM_DRUMS))
    dynamics = np.empty(num_bars)
    loudness = rng.uniform(0.85, 1.0)
    pattern = np.zeros((_GRID, NUM_DRUMS))
    for b in range(num_bars):
        section, bar_in_section = divmod(b, bars_per_section)
        chorus = section % 2 == 1
        if bar_in_section == 0:
            pattern = _section_pattern(chorus_table if chorus else verse_table, rng)
        bar = grid[b]
        bar[:] = pattern
        _mutate(bar, spec, rng)
        if b % bars_per_phrase == bars_per_phrase - 1:
            _fill(bar, spec, rng)
        start_crash = b == 0 and rng.random() < 0.5
        if start_crash or (b > 0 and b % bars_per_phrase == 0) or (chorus and bar_in_section == 0):
            _crash(bar)
        dynamics[b] = loudness * (1.0 if chorus else _VERSE_DYNAMICS)

    noise = rng.normal(0.0, _JITTER_SD, size=grid.shape)
    jittered = np.clip(grid * dynamics[:, None, None] + noise, _MIN_VELOCITY, 1.0)
    grid = np.where(grid > 0, jittered, 0.0)
    grid = _resample(grid, steps_per_bar, spec.swing)
    return grid.reshape(num_bars * steps_per_bar, NUM_DRUMS).astype(np.float32)


def _check_bar_range(num_bars: object) -> tuple[int, int]:
    """Validate ``num_bars`` of :func:`generate_corpus`: an int or an inclusive (lo, hi)."""
    if isinstance(num_bars, tuple | list):
        if len(num_bars) != 2:
            raise ValueError(f"num_bars must be an int or a (min, max) pair, got {num_bars!r}")
        lo = _check_int(num_bars[0], "num_bars", 1)
        hi = _check_int(num_bars[1], "num_bars", 1)
        if lo > hi:
            raise ValueError(f"num_bars must be (min, max) with min <= max, got {num_bars!r}")
        return lo, hi
    n = _check_int(num_bars, "num_bars", 1)
    return n, n


def generate_corpus(
    num_sequences: int = 64,
    num_bars: tuple[int, int] | int = (16, 48),
    seed: int = 0,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    styles: Sequence[str] = STYLES,
    bars_per_section: int = 8,
) -> list[SyntheticSequence]:
    """Generate a corpus of grooves, every style in turn.

    Sequence ``i`` has style ``styles[i % len(styles)]``, name ``f"{style}_{i:04d}"`` and its own
    generator, ``np.random.default_rng(np.random.SeedSequence(seed).spawn(num_sequences)[i])``,
    from which its length is drawn first (uniformly over whole bars), then its notes. The same
    arguments give a bitwise identical corpus, and the first ``n`` sequences do not depend on
    ``num_sequences``.

    Args:
        num_sequences: number of sequences, >= 1.
        num_bars: length in bars, an inclusive ``(min, max)`` range (>= 1) or one int.
        seed: non-negative int seed of the whole corpus.
        steps_per_bar: steps per 4/4 bar: 4, 8 or a positive multiple of 16.
        bars_per_phrase: bars per phrase, >= 1 (fills end every phrase).
        styles: styles to cycle through, each one of :data:`STYLES`; at least one.
        bars_per_section: bars per section, >= 1 (verse and chorus alternate).

    Returns:
        ``num_sequences`` :class:`SyntheticSequence`, each ``sequence`` a float32 array
        (bars * steps_per_bar, 9) with velocities in [0, 1].

    Raises:
        ValueError: an argument is out of range; the message names it.

    Examples:
        >>> corpus = generate_corpus(num_sequences=3, num_bars=(2, 4), seed=7)
        >>> [(item.name, item.sequence.shape[0] % 16) for item in corpus]
        [('rock_0000', 0), ('funk_0001', 0), ('hiphop_0002', 0)]
    """
    num_sequences = _check_int(num_sequences, "num_sequences", 1)
    lo, hi = _check_bar_range(num_bars)
    seed = _check_int(seed, "seed", 0)
    steps_per_bar = _check_steps_per_bar(steps_per_bar)
    bars_per_phrase = _check_int(bars_per_phrase, "bars_per_phrase", 1)
    bars_per_section = _check_int(bars_per_section, "bars_per_section", 1)
    if isinstance(styles, str) or len(styles) == 0:
        raise ValueError(f"styles must be a non-empty sequence of names from {STYLES}")
    for style in styles:
        _check_style(style)

    corpus = []
    children = np.random.SeedSequence(seed).spawn(num_sequences)
    for i, child in enumerate(children):
        rng = np.random.default_rng(child)
        style = styles[i % len(styles)]
        bars = int(rng.integers(lo, hi + 1))
        sequence = generate_sequence(
            style, bars, rng, steps_per_bar, bars_per_phrase, bars_per_section
        )
        corpus.append(SyntheticSequence(f"{style}_{i:04d}", style, sequence))
    return corpus


def write_corpus(
    out_dir: str | os.PathLike[str],
    *,
    num_sequences: int = 64,
    num_bars: tuple[int, int] | int = (16, 48),
    seed: int = 0,
    steps_per_bar: int = 16,
    bars_per_phrase: int = 4,
    styles: Sequence[str] = STYLES,
    bars_per_section: int = 8,
) -> list[Path]:
    """Generate a corpus (:func:`generate_corpus`) and write it as ``.npz`` files.

    Each sequence goes to ``<out_dir>/<style>/<name>.npz`` (array ``sequence``, written with
    ``np.savez_compressed``) through a temporary file and ``os.replace``, so a reader never sees
    a half-written file. Folders are created; existing files of the same names are replaced and
    other files are left alone.

    Args:
        out_dir: destination folder.
        num_sequences: see :func:`generate_corpus`.
        num_bars: see :func:`generate_corpus`.
        seed: see :func:`generate_corpus`.
        steps_per_bar: see :func:`generate_corpus`.
        bars_per_phrase: see :func:`generate_corpus`.
        styles: see :func:`generate_corpus`.
        bars_per_section: see :func:`generate_corpus`.

    Returns:
        The written paths, sorted.

    Raises:
        ValueError: an argument is out of range; the message names it.
    """
    corpus = generate_corpus(
        num_sequences=num_sequences,
        num_bars=num_bars,
        seed=seed,
        steps_per_bar=steps_per_bar,
        bars_per_phrase=bars_per_phrase,
        styles=styles,
        bars_per_section=bars_per_section,
    )
    root = Path(out_dir)
    paths = []
    for item in corpus:
        folder = root / item.style
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{item.name}.npz"
        sequence = item.sequence
        atomic_write(path, lambda fh, s=sequence: np.savez_compressed(fh, sequence=s))  # type: ignore[misc]
        paths.append(path)
    return sorted(paths)


def default_corpus_dir() -> Path:
    """Folder of the cached default corpus.

    ``$DRUM_ENV_CACHE/synthetic-v1-seed0`` when the environment variable ``DRUM_ENV_CACHE`` is
    set and not empty, else ``~/.cache/drum-env/synthetic-v1-seed0`` (the version follows
    :data:`CORPUS_VERSION`, the seed the default corpus' seed). Nothing is created.

    Returns:
        The folder's path (it may not exist yet).
    """
    cache = os.environ.get("DRUM_ENV_CACHE")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache" / "drum-env"
    return base / f"synthetic-v{CORPUS_VERSION}-seed{DEFAULT_CORPUS_KWARGS['seed']}"


def _marker_ok(folder: Path) -> bool:
    """Whether ``folder`` holds a complete corpus: its marker and every file it lists."""
    try:
        listed = json.loads((folder / _MARKER).read_text(encoding="utf-8"))["files"]
        return all((folder / name).is_file() for name in listed)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_default_corpus() -> Path:
    """Write the default corpus to :func:`default_corpus_dir` unless it is already complete.

    A marker file (``.complete.json``, listing the files) is written last, so a corpus whose
    writing was interrupted is written again. Concurrent callers are safe: every file is
    replaced atomically with the same content.

    Returns:
        The corpus folder, holding ``<style>/<name>.npz`` files.

    Raises:
        OSError: the folder cannot be written.
    """
    folder = default_corpus_dir()
    if _marker_ok(folder):
        return folder
    paths = write_corpus(folder, **DEFAULT_CORPUS_KWARGS)
    record = {
        "version": CORPUS_VERSION,
        "kwargs": dict(DEFAULT_CORPUS_KWARGS),
        "files": [p.relative_to(folder).as_posix() for p in paths],
    }
    text = json.dumps(record, indent=1).encode("utf-8")
    atomic_write(folder / _MARKER, lambda fh: fh.write(text))
    return folder


def default_corpus() -> list[np.ndarray]:
    """Generate the default corpus in memory (no disk), the same as the cached files.

    Returns:
        64 float32 arrays (bars * 16, 9), velocities in [0, 1], in corpus order.
    """
    return [item.sequence for item in generate_corpus(**DEFAULT_CORPUS_KWARGS)]
