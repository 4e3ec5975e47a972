"""MIDI <-> drum sequence conversion: General MIDI drum map and 16th-note quantisation.

A *sequence* is a float32 array ``(steps, drums)`` with values in ``[0, 1]``: a hit is a value
``> 0``, its value the MIDI velocity divided by 127 (or ``1.0`` for binary hits). The default
drums are the 9 classes of Magenta's reduced drum mapping, in the order of :data:`DRUM_NAMES`.

Pitch tables
------------
Every MIDI pitch listed for a class maps to that class; a note with any other pitch is dropped
(and counted in ``dropped_notes``). When writing MIDI, a class is written as its *first* pitch.

| class | ``"default"`` (note-seq ``drums_encoder_decoder``) | ``"roland"`` (GrooVAE training) |
|---|---|---|
| kick | 36, 35 | 36 |
| snare | 38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85 | 38, 37, 40 |
| hihat_closed | 42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22 | 42, 22, 44 |
| hihat_open | 46, 67, 72, 74, 79, 81, 26 | 46, 26 |
| tom_low | 45, 29, 41, 43, 61, 64, 84 | 43, 58 |
| tom_mid | 48, 47, 60, 63, 77, 86, 87 | 47, 45 |
| tom_high | 50, 30, 62, 76, 83 | 50, 48 |
| crash | 49, 52, 55, 57, 58 | 49, 52, 55, 57 |
| ride | 51, 53, 59, 82 | 51, 53, 59 |

Pitches 22, 26 and 58 are Roland TD-11 numbers in the Groove MIDI Dataset (22: closed hi-hat
edge, 26: open hi-hat edge, 58: tom 3 rim), not their General MIDI meanings.

Quantisation
------------
A step is ``1 / steps_per_bar`` of a 4/4 bar: its duration is one quarter note divided by
``steps_per_bar / 4`` (a 16th note when ``steps_per_bar=16``). The grid is laid in quarter
notes, so it follows the file's tempo map: each onset time (seconds) is converted to its
position in quarter notes through every tempo change, then to the nearest step (ties go to the
later step). Notes of one class that land on the same step keep the largest velocity. The
sequence ends at the first bar line after the last onset's step, with bar lines taken from the
file's time-signature map (default 4/4): a 3/4 file with ``steps_per_bar=16`` gives a length
that is a whole number of 12-step bars. Only instruments with ``is_drum=True`` (MIDI channel 10)
are read; a file with no drum instrument at all falls back to reading every instrument by pitch,
with a :class:`~dataset.io.DataWarning` (its notes may be a piano's, not drums). A format-2 MIDI
file (each track an independent pattern, with its own timeline) is refused: read as one
timeline, its patterns would be stacked on the same steps.

Time signatures: drum-env works with bars of one length, ``steps_per_bar`` steps.
:func:`midi_to_sequence` reads any meter on the 16th-note grid and reports the file's time
signatures; :func:`convert_folder` converts only the files whose every bar is ``steps_per_bar``
steps on that grid (4/4 and 2/2 at the default 16) and refuses the others (3/4, 7/8, ...) with
the reason, so a corpus never mixes bar lengths. Each ``.npz`` it writes records the grid
(``steps_per_bar``: steps in one bar; ``steps_per_quarter``; ``time_signature``), which
:func:`dataset.io.load_npz_file` checks against the ``steps_per_bar`` it is asked for.

Writing MIDI (:func:`sequence_to_midi`) uses a constant tempo and a 4/4 time signature, and ends
the file on the bar line after the sequence's last step (a text event :data:`END_MARKER` marks
it). Reading ignores that marker, so a round trip gives back the hits, with the length rounded
to the bar that holds the last hit.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pretty_midi

from dataset.drums import DRUM_NAMES  # re-exported: dataset.midi.DRUM_NAMES
from dataset.io import DataWarning, atomic_write, check_bpm

__all__ = [
    "DRUM_NAMES",
    "END_MARKER",
    "PITCH_TABLES",
    "ConversionReport",
    "MidiConversion",
    "convert_folder",
    "midi_to_sequence",
    "pitch_to_class",
    "sequence_to_midi",
    "sequence_to_pretty_midi",
]


PITCH_TABLES: dict[str, tuple[tuple[int, ...], ...]] = {
    "default": (
        (36, 35),
        (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85),
        (42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22),
        (46, 67, 72, 74, 79, 81, 26),
        (45, 29, 41, 43, 61, 64, 84),
        (48, 47, 60, 63, 77, 86, 87),
        (50, 30, 62, 76, 83),
        (49, 52, 55, 57, 58),
        (51, 53, 59, 82),
    ),
    "roland": (
        (36,),
        (38, 37, 40),
        (42, 22, 44),
        (46, 26),
        (43, 58),
        (47, 45),
        (50, 48),
        (49, 52, 55, 57),
        (51, 53, 59),
    ),
}
"""Pitch table name -> one tuple of MIDI pitches per drum class (order of :data:`DRUM_NAMES`).

The first pitch of each class is the one written by :func:`sequence_to_midi`.
"""

END_MARKER = "end"
"""Text of the MIDI text event :func:`sequence_to_midi` puts on the take's last bar line."""

_MIDI_SUFFIXES = (".mid", ".midi")
_WRITE_RESOLUTION = 480  # ticks per quarter note: a 16th is 120 ticks, a triplet 8th 160
_EPS = 1e-6  # tolerance (in quarter notes) for bar-line arithmetic on float positions


class MidiConversion(NamedTuple):
    """Result of :func:`midi_to_sequence`."""

    sequence: np.ndarray
    """float32 array (steps, drums), values in [0, 1]; drums = 9 for the built-in tables."""
    steps_per_bar: int
    """Steps per 4/4 bar: one step lasts a quarter note / (steps_per_bar / 4)."""
    tempo_bpm: float
    """The file's first tempo, quarter notes per minute (120 when the file sets none)."""
    time_signature: tuple[int, int]
    """(numerator, denominator) of the file's first time signature; (4, 4) when it sets none."""
    dropped_notes: int
    """Number of notes read whose pitch is not in the pitch table (not in the sequence)."""
    time_signatures: tuple[tuple[int, int], ...] = ()
    """Every time signature (numerator, denominator) in force within the sequence, in order;
    empty when the file sets none (4/4)."""
    warnings: tuple[str, ...] = ()
    """What the conversion warned about (e.g. no drum channel), also issued as
    :class:`~dataset.io.DataWarning`."""


class ConversionReport(NamedTuple):
    """Result of :func:`convert_folder`."""

    converted: list[Path]
    """The ``.npz`` files written, in the sorted order of their MIDI sources."""
    failed: list[tuple[Path, str]]
    """(MIDI file, reason) for every file that was skipped."""
    dropped_notes: int = 0
    """Total notes dropped over the converted files (pitch not in the table)."""
    warned: tuple[tuple[Path, str], ...] = ()
    """(MIDI file, warning) for every converted file the conversion warned about."""


def pitch_to_class(table: str = "default") -> dict[int, int]:
    """Map each MIDI pitch of a pitch table to its drum class index.

    Args:
        table: name of a table in :data:`PITCH_TABLES` (``"default"`` or ``"roland"``).

    Returns:
        dict from MIDI pitch (0-127) to class index (0 .. 8, order of :data:`DRUM_NAMES`).

    Raises:
        ValueError: ``table`` is not a known table name.

    Example:
        >>> pitch_to_class()[35], pitch_to_class("roland")[58]
        (0, 4)
    """
    classes = _table(table)
    return {pitch: cls for cls, pitches in enumerate(classes) for pitch in pitches}


def midi_to_sequence(
    path: str | os.PathLike[str],
    steps_per_bar: int = 16,
    pitch_table: str = "default",
    velocity: bool = True,
) -> MidiConversion:
    """Read a MIDI file into a quantised drum sequence.

    Each drum note onset goes to the nearest step of a grid that follows the file's tempo map
    (see the module docstring for the exact grid and length rules).

    Args:
        path: the ``.mid`` / ``.midi`` file.
        steps_per_bar: steps per 4/4 bar (positive int); 16 gives a 16th-note grid.
        pitch_table: name of a table in :data:`PITCH_TABLES`.
        velocity: if True a hit's value is its MIDI velocity / 127; if False every hit is 1.0.

    Returns:
        :class:`MidiConversion` whose ``sequence`` is a float32 array (steps, 9), values in
        ``[0, 1]``; ``steps`` is a whole number of bars of the file's time signature, or 0 when
        the file holds no note of the pitch table.

    Warns:
        DataWarning: the file has no drum instrument (channel 10), so every instrument was read
            as drums by pitch.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: bad ``steps_per_bar`` or ``pitch_table``, the file cannot be parsed as
            MIDI, or it is a format-2 file (the message names the file).
    """
    path = Path(path)
    _check_steps_per_bar(steps_per_bar)
    lookup = pitch_to_class(pitch_table)
    num_drums = len(_table(pitch_table))
    if not path.is_file():
        raise FileNotFoundError(f"MIDI file not found: {path}")
    if _midi_format(path) == 2:
        raise ValueError(
            f"MIDI file {path} is format 2 (each track an independent pattern on its own "
            "timeline), which is not supported: read as one timeline its patterns would be "
            "stacked on the same steps; save each pattern as its own format-0 or format-1 file"
        )
    try:
        with warnings.catch_warnings():
            # pretty_midi warns about meta events on non-zero tracks, harmless here.
            warnings.simplefilter("ignore", RuntimeWarning)
            pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido/pretty_midi raise many types for corrupt files
        raise ValueError(f"cannot parse MIDI file {path}: {type(exc).__name__}: {exc}") from exc

    instruments = [inst for inst in pm.instruments if inst.is_drum]
    notes_warned: list[str] = []
    if not instruments and any(inst.notes for inst in pm.instruments):
        instruments = list(pm.instruments)
        programs = sorted({int(inst.program) for inst in instruments if inst.notes})
        notes_warned.append(
            f"MIDI file {path} has no drum track (MIDI channel 10): the notes of its other "
            f"instruments (General MIDI program(s) {programs}) were read as drums by pitch"
        )
        warnings.warn(notes_warned[-1], DataWarning, stacklevel=2)
    notes = [note for inst in instruments for note in inst.notes]
    pitches = np.array([n.pitch for n in notes], dtype=np.int64)
    starts = np.array([n.start for n in notes], dtype=np.float64)
    velocities = np.array([n.velocity for n in notes], dtype=np.float64)

    classes = np.array([lookup.get(int(p), -1) for p in pitches], dtype=np.int64)
    known = classes >= 0
    dropped = int(np.count_nonzero(~known))
    classes, starts, velocities = classes[known], starts[known], velocities[known]

    tempo_times, tempi = pm.get_tempo_changes()
    tempo_bpm = float(tempi[0]) if len(tempi) else 120.0
    signatures = pm.time_signature_changes
    first_sig = (signatures[0].numerator, signatures[0].denominator) if signatures else (4, 4)

    meters = tuple((ts.numerator, ts.denominator) for ts in signatures)
    if len(classes) == 0:
        sequence = np.zeros((0, num_drums), dtype=np.float32)
        return MidiConversion(sequence, steps_per_bar, tempo_bpm, first_sig, dropped, meters,
                              tuple(notes_warned))  # fmt: skip

    steps_per_quarter = steps_per_bar / 4.0
    quarters = _seconds_to_quarters(starts, tempo_times, tempi)
    steps = np.floor(quarters * steps_per_quarter + 0.5).astype(np.int64)
    steps = np.maximum(steps, 0)

    sig_quarters = _seconds_to_quarters(
        np.array([ts.time for ts in signatures], dtype=np.float64), tempo_times, tempi
    )
    bars = [
        (float(q), ts.numerator * 4.0 / ts.denominator)
        for q, ts in zip(sig_quarters, signatures, strict=True)
    ]
    end_quarter = _bar_end(int(steps.max()) / steps_per_quarter, bars)
    length = max(int(math.ceil(end_quarter * steps_per_quarter - _EPS)), int(steps.max()) + 1)

    values = velocities / 127.0 if velocity else np.ones_like(velocities)
    sequence = np.zeros((length, num_drums), dtype=np.float32)
    np.maximum.at(sequence, (steps, classes), values.astype(np.float32))
    in_force = sig_quarters * steps_per_quarter < length - _EPS  # starts within the sequence
    meters = tuple(m for m, keep in zip(meters, in_force, strict=True) if keep)
    return MidiConversion(sequence, steps_per_bar, tempo_bpm, first_sig, dropped, meters,
                          tuple(notes_warned))  # fmt: skip


def sequence_to_midi(
    sequence: np.ndarray,
    path: str | os.PathLike[str],
    bpm: float = 120.0,
    steps_per_bar: int = 16,
    pitch_table: str = "default",
    drum_names: Sequence[str] | None = None,
) -> None:
    """Write a drum sequence as a one-track General MIDI drum file.

    The file holds :func:`sequence_to_pretty_midi`'s MIDI (see there: one drum track on MIDI
    channel 10, constant tempo, 4/4, ending on the bar line after the last step, so
    ``pretty_midi.PrettyMIDI(path).get_end_time()`` is ``bars * 4 * 60 / bpm`` seconds even
    when the last note is earlier or the sequence is silent). The file is written atomically
    (temporary file in the same folder, then renamed).

    Args:
        sequence: float array (steps, drums), values in ``[0, 1]``, drums <= 9; a hit is > 0.
        path: output ``.mid`` file; its folder must exist.
        bpm: tempo in quarter notes per minute, from 20 to 400 (:func:`dataset.io.check_bpm`).
        steps_per_bar: steps per 4/4 bar; one step lasts 60 / bpm / (steps_per_bar / 4) seconds.
        pitch_table: name of a table in :data:`PITCH_TABLES`.
        drum_names: the class of each column, names from :data:`DRUM_NAMES` (no repeats), for a
            sequence holding a subset or a reordering of the classes; None means the first
            ``drums`` classes in order.

    Raises:
        ValueError: an argument is malformed (the message names it and says what is wrong).
    """
    pm = sequence_to_pretty_midi(sequence, bpm, steps_per_bar, pitch_table, drum_names)
    atomic_write(Path(path), pm.write)


def sequence_to_pretty_midi(
    sequence: np.ndarray,
    bpm: float = 120.0,
    steps_per_bar: int = 16,
    pitch_table: str = "default",
    drum_names: Sequence[str] | None = None,
) -> pretty_midi.PrettyMIDI:
    """A drum sequence as a :class:`pretty_midi.PrettyMIDI`: what :func:`sequence_to_midi` writes.

    One instrument, program 0 with ``is_drum=True`` (MIDI channel 10). Each hit becomes a note
    of its class's first pitch in the table, one step long, velocity ``round(value * 127)``
    clipped to ``[1, 127]``. Tempo is constant and the time signature 4/4. A text event
    :data:`END_MARKER` sits on the bar line after the sequence's last step
    (``ceil(steps / steps_per_bar)`` bars), so ``get_end_time()`` is ``bars * 4 * 60 / bpm``
    seconds: a file ends on its last bar line, not at its last note.

    Args:
        sequence: float array (steps, drums), values in ``[0, 1]``, drums <= 9; a hit is > 0.
        bpm: tempo in quarter notes per minute, from 20 to 400 (:func:`dataset.io.check_bpm`).
        steps_per_bar: steps per 4/4 bar; one step lasts 60 / bpm / (steps_per_bar / 4) seconds.
        pitch_table: name of a table in :data:`PITCH_TABLES`.
        drum_names: as for :func:`sequence_to_midi`.

    Returns:
        The MIDI, in memory (``.write(path)`` saves it, ``.fluidsynth()`` plays it).

    Raises:
        ValueError: an argument is malformed (the message names it and says what is wrong).
    """
    seq = _validate_sequence(sequence)
    _check_steps_per_bar(steps_per_bar)
    classes_pitches = _table(pitch_table)
    bpm = check_bpm(bpm)  # a tempo MIDI stores and reads back (20-400)
    num_drums = seq.shape[1]
    if num_drums > len(classes_pitches):
        raise ValueError(
            f"sequence has {num_drums} drums but pitch table {pitch_table!r} has "
            f"{len(classes_pitches)} classes"
        )
    column_class = _column_classes(drum_names, num_drums)

    step_seconds = 60.0 / float(bpm) / (steps_per_bar / 4.0)
    pm = pretty_midi.PrettyMIDI(resolution=_WRITE_RESOLUTION, initial_tempo=float(bpm))
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="Drums")
    step_idx, col_idx = np.nonzero(seq > 0)
    note_velocities = np.clip(np.rint(seq[step_idx, col_idx] * 127.0), 1, 127).astype(int)
    for step, col, vel in zip(
        step_idx.tolist(), col_idx.tolist(), note_velocities.tolist(), strict=True
    ):
        drums.notes.append(
            pretty_midi.Note(
                velocity=vel,
                pitch=classes_pitches[column_class[col]][0],
                start=step * step_seconds,
                end=(step + 1) * step_seconds,
            )
        )
    pm.instruments.append(drums)
    bars = -(-seq.shape[0] // steps_per_bar)  # the last bar, even when partly filled
    if bars:  # the file ends on its last bar line, not at its last note
        pm.text_events.append(pretty_midi.Text(END_MARKER, bars * steps_per_bar * step_seconds))
    return pm


def convert_folder(
    midi_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    steps_per_bar: int = 16,
    pitch_table: str = "default",
    on_progress: Callable[[Path], object] | None = None,
) -> ConversionReport:
    """Convert every MIDI file under a folder to a ``.npz`` sequence file.

    Finds ``*.mid`` and ``*.midi`` recursively (sorted by relative path, suffix case ignored),
    and writes ``out_dir/<relative folder>/<name>.npz`` holding ``sequence`` (float32 array
    (steps, 9), velocities in ``[0, 1]``), ``steps_per_bar`` (int: steps in one bar),
    ``steps_per_quarter`` (int or float: the grid), ``tempo_bpm`` (float, first tempo) and
    ``time_signature`` (int array (2,), first time signature). Each file is written
    atomically. A file that cannot be parsed, is format 2, holds no note of the pitch table, or
    has a time signature whose bar is not ``steps_per_bar`` steps on the grid (3/4, 7/8, ...;
    see the module docstring) or a first tempo outside 20-400 bpm (which the loader would
    refuse) is skipped and listed in ``failed`` with the reason; the others
    still convert. Files read without a drum channel are converted and listed in ``warned``.

    Args:
        midi_dir: folder searched recursively for MIDI files.
        out_dir: output folder (created if missing); mirrors the folder structure of midi_dir.
        steps_per_bar: steps per 4/4 bar, as in :func:`midi_to_sequence`.
        pitch_table: name of a table in :data:`PITCH_TABLES`.
        on_progress: called with each MIDI file's path after it is handled (e.g. to advance a
            progress bar).

    Returns:
        :class:`ConversionReport` with the written ``.npz`` paths, the failed MIDI files with
        their reasons, the total count of dropped notes (pitch not in the table), and the
        warnings.

    Raises:
        FileNotFoundError: ``midi_dir`` does not exist or is not a folder.
        ValueError: no MIDI file under ``midi_dir``, bad ``steps_per_bar`` / ``pitch_table``,
            or ``out_dir`` (or a file in it) cannot be written: a file where the folder should
            be, a read-only file system, a full disk (the message names the path).
    """
    midi_dir = Path(midi_dir)
    out_dir = Path(out_dir)
    _check_steps_per_bar(steps_per_bar)
    _table(pitch_table)
    if not midi_dir.is_dir():
        raise FileNotFoundError(f"MIDI folder not found: {midi_dir}")
    sources = sorted(
        (p for p in midi_dir.rglob("*") if p.suffix.lower() in _MIDI_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(midi_dir).as_posix(),
    )
    if not sources:
        raise ValueError(f"no .mid or .midi files found under {midi_dir}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"out_dir {out_dir} cannot be created: {exc.strerror or exc}") from None

    converted: list[Path] = []
    failed: list[tuple[Path, str]] = []
    warned: list[tuple[Path, str]] = []
    dropped_total = 0
    written_from: dict[Path, Path] = {}
    for source in sources:
        target = out_dir / source.relative_to(midi_dir).with_suffix(".npz")
        try:
            if target in written_from:
                raise ValueError(f"output {target} already written from {written_from[target]}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)  # reported in ``warned`` instead
                result = midi_to_sequence(
                    source, steps_per_bar=steps_per_bar, pitch_table=pitch_table
                )
            if result.sequence.shape[0] == 0:
                raise ValueError(f"no notes of pitch table {pitch_table!r} in {source}")
            _check_meters(source, result.time_signatures, steps_per_bar)
            check_bpm(result.tempo_bpm, f"MIDI file {source}: its tempo")
        except ValueError as exc:
            failed.append((source, str(exc)))
        else:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(
                    target,
                    lambda f, r=result: np.savez_compressed(  # type: ignore[misc]
                        f,
                        sequence=r.sequence,
                        steps_per_bar=np.int64(r.steps_per_bar),
                        steps_per_quarter=_grid_value(r.steps_per_bar / 4),
                        tempo_bpm=np.float64(r.tempo_bpm),
                        time_signature=np.array(r.time_signature, dtype=np.int64),
                    ),
                )
            except OSError as exc:
                raise ValueError(f"cannot write {target}: {exc.strerror or exc}") from None
            written_from[target] = source
            converted.append(target)
            warned += [(source, w) for w in result.warnings]
            dropped_total += result.dropped_notes
        if on_progress is not None:
            on_progress(source)
    return ConversionReport(converted, failed, dropped_total, tuple(warned))


# --------------------------------------------------------------------------- helpers


def _check_meters(source: Path, meters: Sequence[tuple[int, int]], steps_per_bar: int) -> None:
    """Refuse a file with a bar of another length than ``steps_per_bar`` steps on its grid."""
    for num, den in meters:
        bar = steps_per_bar * num / den
        if bar != steps_per_bar:
            raise ValueError(
                f"MIDI file {source} is in {num}/{den}: its bars are {bar:g} steps on this grid, "
                f"not steps_per_bar={steps_per_bar}, and drum-env works with bars of one length "
                "(only meters with 4/4-long bars, such as 4/4 and 2/2, are converted)"
            )


def _grid_value(value: float) -> np.ndarray:
    """An int64 scalar for a whole number, else float64 (the npz's ``steps_per_quarter``)."""
    return np.int64(value) if float(value).is_integer() else np.float64(value)


def _midi_format(path: Path) -> int | None:
    """The format (0, 1 or 2) in a Standard MIDI File's header; ``None`` if it has none."""
    with path.open("rb") as fh:
        head = fh.read(14)
    if len(head) < 14 or head[:4] != b"MThd":
        return None  # not a plain SMF: let the parser decide
    return int.from_bytes(head[8:10], "big")


def _table(name: str) -> tuple[tuple[int, ...], ...]:
    """Look up a pitch table by name, with an error listing the known names."""
    if not isinstance(name, str) or name not in PITCH_TABLES:
        raise ValueError(f"pitch_table must be one of {sorted(PITCH_TABLES)}, got {name!r}")
    return PITCH_TABLES[name]


def _check_steps_per_bar(steps_per_bar: int) -> None:
    """Raise ValueError unless steps_per_bar is a positive int."""
    if isinstance(steps_per_bar, bool) or not isinstance(steps_per_bar, (int, np.integer)):
        raise ValueError(f"steps_per_bar must be an int, got {type(steps_per_bar).__name__}")
    if steps_per_bar <= 0:
        raise ValueError(f"steps_per_bar must be > 0, got {steps_per_bar}")


def _validate_sequence(sequence: np.ndarray) -> np.ndarray:
    """Check a sequence argument and return it as a float64 array (steps, drums)."""
    arr = np.asarray(sequence)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"sequence must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"sequence must be 2-D (steps, drums), got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("sequence must be finite, found NaN or inf")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(
            f"sequence values must be in [0, 1], found range [{arr.min()}, {arr.max()}]"
        )
    return arr


def _column_classes(drum_names: Sequence[str] | None, num_drums: int) -> list[int]:
    """Class index (into DRUM_NAMES) of each sequence column."""
    if drum_names is None:
        return list(range(num_drums))
    if isinstance(drum_names, str):
        raise ValueError("drum_names must be a sequence of names, got a single string")
    names = list(drum_names)
    if len(names) != num_drums:
        raise ValueError(
            f"drum_names has {len(names)} names but the sequence has {num_drums} drums"
        )
    unknown = [n for n in names if n not in DRUM_NAMES]
    if unknown:
        raise ValueError(f"drum_names has unknown names {unknown}; allowed: {list(DRUM_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"drum_names has repeated names: {names}")
    return [DRUM_NAMES.index(n) for n in names]


def _seconds_to_quarters(
    times: np.ndarray, tempo_times: np.ndarray, tempi: np.ndarray
) -> np.ndarray:
    """Positions in quarter notes of times in seconds, following a piecewise-constant tempo map.

    Args:
        times: float64 array (n,), seconds.
        tempo_times: float64 array (k,), seconds at which each tempo starts (first is 0).
        tempi: float64 array (k,), quarter notes per minute.

    Returns:
        float64 array (n,), quarter notes since time 0.
    """
    if len(tempi) == 0:
        tempo_times, tempi = np.zeros(1), np.array([120.0])
    rates = tempi / 60.0  # quarter notes per second
    seg_start_quarter = np.concatenate([[0.0], np.cumsum(np.diff(tempo_times) * rates[:-1])])
    seg = np.clip(np.searchsorted(tempo_times, times, side="right") - 1, 0, None)
    return seg_start_quarter[seg] + (times - tempo_times[seg]) * rates[seg]


def _bar_end(position: float, bars: list[tuple[float, float]]) -> float:
    """First bar line strictly after ``position`` (all in quarter notes).

    Args:
        position: quarter notes since time 0.
        bars: (start, bar length) in quarter notes of each time signature, in time order;
            4/4 (length 4) applies before the first and when there is none.
    """
    segments = [(0.0, 4.0)] if not bars or bars[0][0] > _EPS else []
    segments += bars
    for i, (start, bar_len) in enumerate(segments):
        next_start = segments[i + 1][0] if i + 1 < len(segments) else math.inf
        if position >= next_start - _EPS:
            continue
        k = math.floor((position - start) / bar_len + _EPS) + 1
        return min(start + k * bar_len, next_start)
    raise AssertionError("unreachable: the last segment extends to infinity")
