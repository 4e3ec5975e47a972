"""drum_env.audio: the built-in kit renders hits where they are, loud as their velocity."""

import wave

import numpy as np
import pytest

from drum_env.audio import SAMPLE_RATE, drum_kit, render_audio, save_wav


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
    audio = render_audio(seq, bpm=120)
    assert audio.dtype == np.int16 and np.abs(audio).max() > 20000  # normalised to -1 dBFS
    assert _energy(audio, 0.0, 0.9) == 0.0 and _energy(audio, 1.0, 0.1) > 1000
    assert not render_audio(np.zeros((16, 9))).any()


def test_velocity_scales_loudness():
    seq = np.zeros((32, 9), dtype=np.float32)
    seq[0, 1], seq[16, 1] = 1.0, 0.25  # a loud and a soft snare, one bar apart
    audio = render_audio(seq, bpm=120)
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
