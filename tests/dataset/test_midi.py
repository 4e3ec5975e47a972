"""Tests for dataset/midi.py: pitch tables, quantisation, round trips, folder conversion."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from dataset.midi import (
    DRUM_NAMES,
    PITCH_TABLES,
    ConversionReport,
    MidiConversion,
    convert_folder,
    midi_to_sequence,
    pitch_to_class,
    sequence_to_midi,
)

GROOVE_DIR = Path(__file__).resolve().parents[2].parent / "shared/data/groove-midi"
SIXTEENTH_AT_120 = 0.125  # seconds


def write_drums(
    path: Path,
    notes: list[tuple[int, float, int]],
    *,
    is_drum: bool = True,
    bpm: float = 120.0,
    time_signature: tuple[int, int] | None = None,
    extra_instrument: list[tuple[int, float, int]] | None = None,
) -> Path:
    """Write (pitch, start seconds, velocity) notes as one instrument, 1/16 long at 120 bpm."""
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=bpm)
    if time_signature is not None:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(*time_signature, 0.0))
    inst = pretty_midi.Instrument(program=0, is_drum=is_drum)
    for pitch, start, vel in notes:
        inst.notes.append(pretty_midi.Note(vel, pitch, start, start + 0.1))
    pm.instruments.append(inst)
    if extra_instrument is not None:
        other = pretty_midi.Instrument(program=33, is_drum=False)
        for pitch, start, vel in extra_instrument:
            other.notes.append(pretty_midi.Note(vel, pitch, start, start + 0.1))
        pm.instruments.append(other)
    pm.write(str(path))
    return path


# --------------------------------------------------------------------------- tables


def test_drum_names_and_table_shapes():
    assert DRUM_NAMES == (
        "kick",
        "snare",
        "hihat_closed",
        "hihat_open",
        "tom_low",
        "tom_mid",
        "tom_high",
        "crash",
        "ride",
    )
    assert set(PITCH_TABLES) == {"default", "roland"}
    for name, table in PITCH_TABLES.items():
        assert len(table) == len(DRUM_NAMES), name
        pitches = [p for cls in table for p in cls]
        assert len(pitches) == len(set(pitches)), f"{name} maps a pitch to two classes"
        assert len(pitch_to_class(name)) == len(pitches)
    # first pitch of each class: the General MIDI pitch written back
    assert [cls[0] for cls in PITCH_TABLES["default"]] == [36, 38, 42, 46, 45, 48, 50, 49, 51]
    assert [cls[0] for cls in PITCH_TABLES["roland"]] == [36, 38, 42, 46, 43, 47, 50, 49, 51]


def test_pitch_to_class_unknown_table():
    with pytest.raises(ValueError, match="pitch_table must be one of"):
        pitch_to_class("gm2")


TABLE_CASES = [
    (table, pitch, cls)
    for table, classes in PITCH_TABLES.items()
    for cls, pitches in enumerate(classes)
    for pitch in pitches
]


@pytest.mark.parametrize(
    ("table", "pitch", "cls"), TABLE_CASES, ids=[f"{t}-{p}" for t, p, _ in TABLE_CASES]
)
def test_each_pitch_maps_to_its_class(tmp_path, table, pitch, cls):
    assert pitch_to_class(table)[pitch] == cls
    path = write_drums(tmp_path / "one.mid", [(pitch, 2 * SIXTEENTH_AT_120, 100)])
    result = midi_to_sequence(path, pitch_table=table)
    expected = np.zeros((16, 9), dtype=np.float32)
    expected[2, cls] = 100 / 127
    np.testing.assert_allclose(result.sequence, expected, atol=1e-7)
    assert result.dropped_notes == 0


@pytest.mark.parametrize("table", sorted(PITCH_TABLES))
def test_unknown_pitches_dropped_and_counted(tmp_path, table):
    known = PITCH_TABLES[table][1][0]  # the snare
    notes = [(known, 0.0, 90), (20, 0.0, 90), (100, 0.125, 90), (127, 0.25, 90)]
    result = midi_to_sequence(write_drums(tmp_path / "x.mid", notes), pitch_table=table)
    assert result.dropped_notes == 3
    assert np.count_nonzero(result.sequence) == 1
    assert result.sequence[0, 1] > 0


def test_roland_table_differs_from_default(tmp_path):
    # 35 (acoustic bass drum) is a kick in the default table only; 58 is a crash by default
    # but a low tom (Roland TD-11 tom 3 rim) in the roland table.
    path = write_drums(tmp_path / "x.mid", [(35, 0.0, 64), (58, 0.125, 64)])
    default = midi_to_sequence(path)
    roland = midi_to_sequence(path, pitch_table="roland")
    assert default.dropped_notes == 0 and roland.dropped_notes == 1
    assert default.sequence[0, 0] > 0 and default.sequence[1, 7] > 0
    assert roland.sequence[0].sum() == 0 and roland.sequence[1, 4] > 0


# --------------------------------------------------------------------------- quantisation


def test_round_trip_hits_and_velocities(tmp_path):
    rng = np.random.default_rng(0)
    seq = np.where(rng.random((32, 9)) < 0.3, rng.uniform(0.05, 1.0, (32, 9)), 0.0)
    seq[31, 0] = 1.0  # a hit in the last bar so the length comes back whole
    seq = seq.astype(np.float32)
    path = tmp_path / "rt.mid"
    sequence_to_midi(seq, path, bpm=97.0)
    result = midi_to_sequence(path)
    assert isinstance(result, MidiConversion)
    assert result.sequence.dtype == np.float32
    assert result.sequence.shape == seq.shape
    np.testing.assert_array_equal(result.sequence > 0, seq > 0)
    assert np.max(np.abs(result.sequence - seq)) <= 1 / 127
    assert result.tempo_bpm == pytest.approx(97.0, rel=1e-5)
    assert result.time_signature == (4, 4)
    assert result.steps_per_bar == 16
    binary = midi_to_sequence(path, velocity=False).sequence
    np.testing.assert_array_equal(binary, (seq > 0).astype(np.float32))


@pytest.mark.parametrize(("steps_per_bar", "bpm"), [(12, 90.0), (32, 140.0), (8, 60.0)])
def test_round_trip_other_grids(tmp_path, steps_per_bar, bpm):
    seq = np.zeros((2 * steps_per_bar, 9), dtype=np.float32)
    seq[np.arange(0, 2 * steps_per_bar, 3), np.arange(0, 2 * steps_per_bar, 3) % 9] = 0.5
    seq[-1, 2] = 0.75
    path = tmp_path / "g.mid"
    sequence_to_midi(seq, path, bpm=bpm, steps_per_bar=steps_per_bar)
    result = midi_to_sequence(path, steps_per_bar=steps_per_bar)
    np.testing.assert_array_equal(result.sequence > 0, seq > 0)


def test_round_trip_trailing_silence_is_rounded_to_the_bar(tmp_path):
    seq = np.zeros((40, 9), dtype=np.float32)
    seq[17, 1] = 1.0  # last hit in bar 2: bars 3 (partial) is silence
    sequence_to_midi(seq, tmp_path / "t.mid")
    result = midi_to_sequence(tmp_path / "t.mid").sequence
    assert result.shape == (32, 9)
    np.testing.assert_array_equal(result, seq[:32])


@pytest.mark.parametrize(("steps", "steps_per_bar", "bpm", "bars"),
                         [(40, 16, 120.0, 3), (32, 16, 97.0, 2), (24, 12, 90.0, 2)])
def test_midi_file_ends_on_the_bar_line(tmp_path, steps, steps_per_bar, bpm, bars):
    """A take whose last note is early (or that is silent) still lasts its whole bars."""
    seq = np.zeros((steps, 9), dtype=np.float32)
    path = tmp_path / "t.mid"
    sequence_to_midi(seq, path, bpm=bpm, steps_per_bar=steps_per_bar)  # silence: whole bars
    pm = pretty_midi.PrettyMIDI(str(path))
    bar_s = 4 * 60.0 / pm.get_tempo_changes()[1][0]  # the stored tempo (whole microseconds)
    assert bar_s == pytest.approx(4 * 60.0 / bpm, rel=1e-5)
    assert pm.get_end_time() == pytest.approx(bars * bar_s, abs=1e-9)
    seq[1, 0] = 1.0  # one kick early in bar 1: its note ends long before the last bar line
    sequence_to_midi(seq, path, bpm=bpm, steps_per_bar=steps_per_bar)
    pm = pretty_midi.PrettyMIDI(str(path))
    assert pm.instruments[0].get_end_time() < bar_s
    assert pm.get_end_time() == pytest.approx(bars * bar_s, abs=1e-9)
    assert midi_to_sequence(path, steps_per_bar=steps_per_bar).sequence.shape[0] == steps_per_bar


def test_sequence_to_midi_writes_gm_drum_track(tmp_path):
    seq = np.zeros((16, 3), dtype=np.float32)
    seq[0, 0] = 0.001  # rounds to velocity 0: clipped up to 1
    seq[4, 1] = 1.0
    seq[8, 2] = 0.5  # 63.5 rounds to 64 (half to even)
    sequence_to_midi(seq, tmp_path / "d.mid", drum_names=["kick", "ride", "crash"])
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "d.mid"))
    assert len(pm.instruments) == 1
    inst = pm.instruments[0]
    assert inst.is_drum and inst.program == 0
    got = sorted((round(n.start / SIXTEENTH_AT_120), n.pitch, n.velocity) for n in inst.notes)
    assert got == [(0, 36, 1), (4, 51, 127), (8, 49, 64)]
    for note in inst.notes:
        assert note.end - note.start == pytest.approx(SIXTEENTH_AT_120, abs=1e-3)
    mid = mido.MidiFile(str(tmp_path / "d.mid"))
    channels = {m.channel for t in mid.tracks for m in t if m.type == "note_on"}
    assert channels == {9}  # channel 10, counted from 1
    assert not list(tmp_path.glob("*.tmp"))


def _tempo_change_file(path: Path, sixteenths: list[int]) -> Path:
    """120 bpm for the first two bars, then 60 bpm; drum notes on the given 16ths."""
    tpq = 480
    sixteenth_ticks = tpq // 4
    mid = mido.MidiFile(ticks_per_beat=tpq)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=8 * tpq))
    drums = mido.MidiTrack()
    events = []
    for i, step in enumerate(sixteenths):
        pitch = (36, 38, 42)[i % 3]
        events.append((step * sixteenth_ticks, "note_on", pitch, 100))
        events.append((step * sixteenth_ticks + sixteenth_ticks // 2, "note_off", pitch, 0))
    now = 0
    for tick, kind, pitch, vel in sorted(events, key=lambda e: (e[0], e[1] == "note_on")):
        drums.append(mido.Message(kind, channel=9, note=pitch, velocity=vel, time=tick - now))
        now = tick
    mid.tracks.extend([meta, drums])
    mid.save(str(path))
    return path


def test_tempo_change_respected(tmp_path):
    sixteenths = [0, 5, 31, 32, 37, 50, 63]
    path = _tempo_change_file(tmp_path / "tempo.mid", sixteenths)
    pm = pretty_midi.PrettyMIDI(str(path))
    np.testing.assert_allclose(pm.get_tempo_changes()[1], [120.0, 60.0])
    result = midi_to_sequence(path)
    assert result.tempo_bpm == pytest.approx(120.0)
    assert result.sequence.shape == (64, 9)
    steps, classes = np.nonzero(result.sequence)
    assert steps.tolist() == sixteenths
    assert classes.tolist() == [(0, 1, 2)[i % 3] for i in range(len(sixteenths))]
    # An 8th-note grid on the same file: every other 16th, rounding ties to the later step.
    eighths = np.nonzero(midi_to_sequence(path, steps_per_bar=8).sequence.any(axis=1))[0]
    assert eighths.tolist() == [0, 3, 16, 19, 25, 32]


def test_nearest_step_and_max_velocity(tmp_path):
    s = SIXTEENTH_AT_120
    notes = [
        (36, 4 * s + 0.4 * s, 40),  # late by 0.4 step -> step 4
        (35, 4 * s - 0.3 * s, 90),  # early kick (other pitch, same class) -> step 4, louder
        (38, 7 * s + 0.6 * s, 70),  # late by 0.6 step -> step 8
        (42, 10 * s + 0.5 * s, 50),  # exactly between -> later step 11
    ]
    seq = midi_to_sequence(write_drums(tmp_path / "h.mid", notes)).sequence
    assert seq.shape == (16, 9)
    assert np.count_nonzero(seq) == 3
    assert seq[4, 0] == pytest.approx(90 / 127)
    assert seq[8, 1] == pytest.approx(70 / 127)
    assert seq[11, 2] == pytest.approx(50 / 127)


@pytest.mark.parametrize(
    ("last_step", "expected_len"), [(0, 16), (15, 16), (16, 32), (47, 48), (48, 64)]
)
def test_length_rounded_up_to_whole_bars(tmp_path, last_step, expected_len):
    path = write_drums(tmp_path / "l.mid", [(36, last_step * SIXTEENTH_AT_120, 100)])
    assert midi_to_sequence(path).sequence.shape == (expected_len, 9)


def test_time_signature_sets_bar_length(tmp_path):
    s = SIXTEENTH_AT_120
    path = write_drums(
        tmp_path / "w.mid", [(36, 0.0, 100), (38, 13 * s, 100)], time_signature=(3, 4)
    )
    result = midi_to_sequence(path)
    assert result.time_signature == (3, 4)
    assert result.sequence.shape == (24, 9)  # two 12-step bars
    path = write_drums(tmp_path / "f.mid", [(36, 11 * s, 100)], time_signature=(5, 8))
    result = midi_to_sequence(path)
    assert result.time_signature == (5, 8)
    assert result.sequence.shape == (20, 9)  # two 10-step bars


def test_only_drum_instruments_read_with_fallback(tmp_path):
    drums = [(36, 0.0, 100)]
    bass = [(38, 0.125, 100), (40, 0.25, 100)]
    mixed = midi_to_sequence(write_drums(tmp_path / "m.mid", drums, extra_instrument=bass))
    assert np.count_nonzero(mixed.sequence) == 1 and mixed.dropped_notes == 0
    no_drums = midi_to_sequence(write_drums(tmp_path / "n.mid", bass, is_drum=False))
    assert np.nonzero(no_drums.sequence)[0].tolist() == [1, 2]


def test_empty_midi_gives_zero_steps(tmp_path):
    result = midi_to_sequence(write_drums(tmp_path / "e.mid", [(100, 0.0, 90)]))
    assert result.sequence.shape == (0, 9)
    assert result.dropped_notes == 1


def test_midi_to_sequence_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mid"):
        midi_to_sequence(tmp_path / "nope.mid")
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file at all")
    with pytest.raises(ValueError, match="bad.mid"):
        midi_to_sequence(bad)
    good = write_drums(tmp_path / "g.mid", [(36, 0.0, 100)])
    with pytest.raises(ValueError, match="steps_per_bar"):
        midi_to_sequence(good, steps_per_bar=0)
    with pytest.raises(ValueError, match="pitch_table"):
        midi_to_sequence(good, pitch_table="nope")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sequence": np.zeros(16)}, "sequence must be 2-D"),
        ({"sequence": np.full((4, 9), np.nan)}, "finite"),
        ({"sequence": np.full((4, 9), 1.5)}, r"in \[0, 1\]"),
        ({"sequence": np.full((4, 9), -0.1)}, r"in \[0, 1\]"),
        ({"sequence": np.zeros((4, 10))}, "10 drums"),
        ({"sequence": np.zeros((4, 2), dtype=object)}, "numeric"),
        ({"bpm": 0.0}, "bpm"),
        ({"bpm": float("inf")}, "bpm"),
        ({"steps_per_bar": 0}, "steps_per_bar"),
        ({"pitch_table": "gm"}, "pitch_table"),
        ({"drum_names": ["kick"]}, "drum_names has 1 names"),
        ({"drum_names": ["kick", "cowbell"]}, "unknown names"),
        ({"drum_names": ["kick", "kick"]}, "repeated"),
    ],
)
def test_sequence_to_midi_validation(tmp_path, kwargs, match):
    args = {"sequence": np.zeros((4, 2), dtype=np.float32), "path": tmp_path / "v.mid"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sequence_to_midi(**args)
    assert not (tmp_path / "v.mid").exists()


# --------------------------------------------------------------------------- folders


def test_convert_folder_mirrors_tree_and_reports_corrupt(tmp_path):
    src, out = tmp_path / "midi", tmp_path / "npz"
    (src / "a" / "b").mkdir(parents=True)
    write_drums(src / "top.mid", [(36, 0.0, 100), (38, 0.5, 80)])
    write_drums(src / "a" / "b" / "deep.midi", [(42, 0.25, 60)])
    write_drums(src / "a" / "silent.mid", [(100, 0.0, 60)])  # no note of the table
    (src / "a" / "corrupt.mid").write_bytes(np.random.default_rng(0).bytes(200))
    (src / "notes.txt").write_text("not midi")
    seen: list[Path] = []

    report = convert_folder(src, out, on_progress=seen.append)

    assert isinstance(report, ConversionReport)
    assert report.converted == [out / "a" / "b" / "deep.npz", out / "top.npz"]
    assert [(p.name, "corrupt.mid" in reason) for p, reason in report.failed] == [
        ("corrupt.mid", True),
        ("silent.mid", False),
    ]
    assert "no notes" in report.failed[1][1]
    assert report.dropped_notes == 0
    assert [p.name for p in seen] == ["deep.midi", "corrupt.mid", "silent.mid", "top.mid"]
    with np.load(out / "top.npz", allow_pickle=False) as data:
        assert {"sequence", "steps_per_bar", "tempo_bpm"} <= set(data.files)
        assert data["sequence"].dtype == np.float32 and data["sequence"].shape == (16, 9)
        assert int(data["steps_per_bar"]) == 16
        assert float(data["tempo_bpm"]) == pytest.approx(120.0)
        assert data["sequence"][0, 0] == pytest.approx(100 / 127)
        assert data["sequence"][4, 1] == pytest.approx(80 / 127)
    assert not list(out.rglob("*.tmp"))
    assert not (out / "a" / "corrupt.npz").exists()


def test_convert_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        convert_folder(tmp_path / "missing_dir", tmp_path / "out")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (empty / "readme.txt").write_text("no midi here")
    with pytest.raises(ValueError, match="empty_dir"):
        convert_folder(empty, tmp_path / "out")


# --------------------------------------------------------------------------- real data


@pytest.mark.data
def test_groove_midi_subset(tmp_path):
    if not GROOVE_DIR.is_dir():
        pytest.skip(f"Groove MIDI subset not found at {GROOVE_DIR}")
    files = sorted(GROOVE_DIR.rglob("*.mid"))[:5]
    assert files, f"no .mid files under {GROOVE_DIR}"
    src = tmp_path / "subset"
    for f in files:
        dest = src / f.relative_to(GROOVE_DIR)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(f)
    report = convert_folder(src, tmp_path / "out")
    assert report.failed == []
    assert len(report.converted) == len(files)
    used = np.zeros(9, dtype=bool)
    for npz in report.converted:
        with np.load(npz, allow_pickle=False) as data:
            seq = data["sequence"]
            assert 40 <= float(data["tempo_bpm"]) <= 250
        assert seq.dtype == np.float32 and seq.ndim == 2 and seq.shape[1] == 9
        assert seq.shape[0] > 0 and seq.shape[0] % 16 == 0
        assert np.all((seq >= 0) & (seq <= 1))
        assert np.count_nonzero(seq) > 0
        used |= (seq > 0).any(axis=0)
    assert used[[0, 1, 2]].all(), "kick, snare and closed hi-hat should all be played"
