"""drum_env.audio: hits sound where they are, loud as their velocity, on one fixed scale."""

import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from dataset.midi import midi_to_sequence
from drum_env import audio as audio_mod
from drum_env.audio import (
    DEBIAN_SOUNDFONT,
    KIT_GAIN,
    SAMPLE_RATE,
    SOUNDFONT_ENV,
    drum_kit,
    find_soundfont,
    fluidsynth_missing,
    render_audio,
    save_wav,
    to_int16,
)

GROOVE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "groove-midi"
NO_FLUIDSYNTH = fluidsynth_missing()
needs_fluidsynth = pytest.mark.skipif(
    NO_FLUIDSYNTH is not None,
    reason=f"FluidSynth path not testable here: {NO_FLUIDSYNTH} (scripts/setup_system.sh installs "
    "fluidsynth and fluid-soundfont-gm)",
)


def _groove_bar() -> tuple[np.ndarray, float]:
    """A dense real bar: the bar of a Groove file with the most velocity, and its tempo."""
    files = sorted(GROOVE.rglob("*.mid"))
    if not files:
        pytest.skip(f"needs the Groove MIDI subset at {GROOVE} (../shared/data), absent here")
    path = files[0]
    conv = midi_to_sequence(path)
    bars = conv.sequence[: len(conv.sequence) // 16 * 16].reshape(-1, 16, 9)
    return bars[int(np.argmax(bars.sum(axis=(1, 2))))], conv.tempo_bpm


def _energy(audio: np.ndarray, start_s: float, length_s: float) -> float:
    a = int(start_s * SAMPLE_RATE)
    return float(np.abs(audio[a : a + int(length_s * SAMPLE_RATE)].astype(np.float64)).mean())


def test_kit_is_seeded_and_one_sample_per_class():
    a, b = drum_kit(), drum_kit()
    assert len(a) == 9 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(np.isfinite(s).all() and 0.99 <= np.abs(s).max() <= 1.0 for s in a)


def test_hits_sound_at_their_step_and_silence_is_silent():
    seq = np.zeros((16, 9), dtype=np.float32)
    seq[8, 0] = 1.0  # one kick on beat 3 of a bar at 120 bpm: 1.0 s in
    audio = render_audio(seq, bpm=120, synth="kit")
    # one full-velocity hit plays at the fixed gain: its sample peaks at 1
    assert audio.dtype == np.int16 and np.abs(audio).max() == round(KIT_GAIN * 32767)
    assert _energy(audio, 0.0, 0.9) == 0.0 and _energy(audio, 1.0, 0.1) > 1000
    assert not render_audio(np.zeros((16, 9)), synth="kit").any()
    assert not render_audio(np.zeros((16, 9))).any()


def test_velocity_scales_loudness():
    seq = np.zeros((32, 9), dtype=np.float32)
    seq[0, 1], seq[16, 1] = 1.0, 0.25  # a loud and a soft snare, one bar apart
    audio = render_audio(seq, bpm=120, synth="kit")
    loud, soft = _energy(audio, 0.0, 0.15), _energy(audio, 2.0, 0.15)
    assert soft / loud == pytest.approx(0.25, rel=0.05)


def test_save_wav_writes_a_readable_file(tmp_path):
    seq = (np.random.default_rng(0).random((32, 9)) < 0.2).astype(np.float32)
    path = save_wav(seq, tmp_path / "take.wav", bpm=100)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
        assert w.getnframes() >= int(32 * 0.15 * SAMPLE_RATE)


@pytest.mark.parametrize("bad", [np.zeros(16), np.full((4, 9), 2.0), np.full((4, 9), np.nan)])
def test_bad_sequences_are_named(bad):
    with pytest.raises(ValueError, match="sequence"):
        render_audio(bad)


def test_kit_path_is_seeded_and_exact():
    """The kit's audio is its samples times velocity times the fixed gain, the same each call."""
    rng = np.random.default_rng(1)
    seq = np.where(rng.random((32, 9)) < 0.2, rng.uniform(0.1, 1.0, (32, 9)), 0.0)
    seq = seq.astype(np.float32)
    step = int(0.125 * SAMPLE_RATE)  # 16ths at 120 bpm: 2756.25 samples, floored per step
    kit = drum_kit()
    mix = np.zeros(32 * step + 32 + len(kit[7]))
    for t, d in zip(*np.nonzero(seq)):
        start = int(t * 0.125 * SAMPLE_RATE)
        mix[start : start + len(kit[d])] += float(seq[t, d]) * kit[d]
    audio = render_audio(seq, bpm=120, synth="kit")
    expected = np.clip(np.round(KIT_GAIN * mix[: len(audio)] * 32767), -32767, 32767)
    np.testing.assert_array_equal(audio, expected.astype(np.int16))
    np.testing.assert_array_equal(audio, render_audio(seq, bpm=120, synth="kit"))


@pytest.mark.data
@pytest.mark.parametrize("synth", ["kit", pytest.param("fluidsynth", marks=needs_fluidsynth)])
def test_takes_of_different_density_share_one_loudness_scale(synth):
    """No per-take normalisation: a lone soft hit stays soft, a dense real bar is louder and
    stays below full scale, and the loud hit sounds the same alone and within a sparse take."""
    bar, bpm = _groove_bar()
    dense = render_audio(bar, bpm=bpm, synth=synth)
    lone = np.zeros((16, 9), dtype=np.float32)
    lone[0, 1] = 0.3  # one soft snare
    soft = render_audio(lone, bpm=bpm, synth=synth)
    rms = [float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) for a in (dense, soft)]
    assert rms[0] > 4 * rms[1]
    assert np.abs(soft).max() < 0.25 * 32767  # normalised per take it would be near full scale
    assert np.abs(dense).max() < 32767  # a dense real bar does not clip
    loud = lone.copy()
    loud[0, 1] = 1.0
    later = loud.copy()
    later[8, [0, 1, 7, 8]] = 1.0  # kick, snare, crash and ride at once half a bar later: louder
    a, b = render_audio(loud, bpm=120, synth=synth), render_audio(later, bpm=120, synth=synth)
    assert np.abs(b).max() > np.abs(a).max()
    half = int(0.9 * SAMPLE_RATE)  # the snare alone, before the others
    np.testing.assert_array_equal(a[:half], b[:half])


def test_the_gain_clips_past_full_scale_never_wraps():
    """The one safety rule: samples past full scale are held at +-32767."""
    clipped = to_int16(np.array([2.0, -2.0, 0.5, -0.25]))
    np.testing.assert_array_equal(clipped, np.array([32767, -32767, 16384, -8192], np.int16))
    every = np.ones((16, 9), dtype=np.float32)  # every drum on every step: far past full scale
    audio = render_audio(every, bpm=400, synth="kit")
    assert audio.max() == 32767 and audio.min() == -32767


@needs_fluidsynth
def test_fluidsynth_plays_hits_where_the_take_has_them():
    seq = np.zeros((32, 9), dtype=np.float32)
    seq[8, 0] = 1.0  # a kick 1.0 s in, a snare 3.0 s in (120 bpm)
    seq[24, 1] = 0.8
    audio = render_audio(seq, bpm=120, synth="fluidsynth")
    assert audio.dtype == np.int16 and len(audio) == int(4.0 * SAMPLE_RATE) + SAMPLE_RATE
    assert _energy(audio, 0.0, 0.99) == 0.0  # silence before the first hit
    assert _energy(audio, 1.0, 0.1) > 300 and _energy(audio, 3.0, 0.1) > 300
    assert _energy(audio, 2.5, 0.4) < 0.05 * _energy(audio, 1.0, 0.1)  # the kick has decayed
    # not the kit: another synthesiser, and "auto" picks it where it can run
    assert not np.array_equal(audio[: len(audio)], render_audio(seq, bpm=120, synth="kit")[
        : len(audio)])
    np.testing.assert_array_equal(render_audio(seq, bpm=120), audio)
    soft = seq * 0.5
    assert np.abs(render_audio(soft, bpm=120, synth="fluidsynth")).max() < np.abs(audio).max()


def test_fluidsynth_refused_with_what_is_missing(monkeypatch, tmp_path):
    seq = np.eye(16, 9, dtype=np.float32)
    missing = tmp_path / "none.sf2"
    monkeypatch.setenv(SOUNDFONT_ENV, str(missing))
    assert find_soundfont() == missing and find_soundfont("x.sf2") == Path("x.sf2")
    if NO_FLUIDSYNTH is None:  # pyfluidsynth and the library are here: the soundfont is missing
        with pytest.raises(ValueError, match="none.sf2.*not a file"):
            render_audio(seq, synth="fluidsynth")
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # as if pyfluidsynth were absent
    with pytest.raises(ValueError, match="pyfluidsynth"):
        render_audio(seq, synth="fluidsynth")
    # "auto" falls back to the kit, sample for sample
    np.testing.assert_array_equal(render_audio(seq), render_audio(seq, synth="kit"))
    monkeypatch.delenv(SOUNDFONT_ENV)
    assert find_soundfont() == (Path(DEBIAN_SOUNDFONT) if Path(DEBIAN_SOUNDFONT).is_file()
                                else None)  # fmt: skip
    with pytest.raises(ValueError, match="synth must be one of"):
        render_audio(seq, synth="piano")
    assert audio_mod.SYNTHS == ("auto", "fluidsynth", "kit")
