"""Listen without a MIDI synth: a small drum kit synthesised in numpy, written as a WAV file.

Each of the 9 drum classes is one short sample made from sines and seeded noise (no sample
files, no external synthesiser), mixed at its step's time with a gain equal to the step's value
(a hit's velocity in ``[0, 1]``, binary hits play at full level), normalised to a peak of
-1 dBFS and written as 16-bit mono PCM with the standard library's :mod:`wave`, atomically.

The kit, in the 9-class order (kick, snare, closed hi-hat, open hi-hat, low / mid / high tom,
crash, ride):

| class | sound | length |
|---|---|---|
| kick | sine sweeping 120 -> 45 Hz, exponential decay | 0.35 s |
| snare | 190 Hz sine + noise, fast decay | 0.2 s |
| closed hi-hat | high-passed noise, very fast decay | 0.06 s |
| open hi-hat | high-passed noise, slower decay | 0.35 s |
| low, mid, high tom | sines at 95, 130, 170 Hz with a slight downward sweep | 0.3 s |
| crash | high-passed noise, long decay | 1.2 s |
| ride | high-passed noise + 520 Hz bell, medium decay | 0.6 s |

A sequence with more than 9 drums plays its extra columns with the closed hi-hat sound. The tempo
is 20-400 bpm (:func:`dataset.io.check_bpm`) and a take lasts at most :data:`MAX_WAV_SECONDS`,
checked before any audio buffer is allocated.

>>> import numpy as np
>>> audio = render_audio(np.eye(16, 9, dtype=np.float32), bpm=120)
>>> audio.dtype, audio.ndim
(dtype('int16'), 1)
"""

from __future__ import annotations

import io
import math
import os
import wave
from pathlib import Path

import numpy as np

from dataset.io import check_bpm

__all__ = ["SAMPLE_RATE", "MAX_WAV_SECONDS", "drum_kit", "render_audio", "save_wav"]

SAMPLE_RATE = 22_050
"""Samples per second of the rendered audio."""


def _envelope(n: int, rate: int, decay_s: float) -> np.ndarray:
    t = np.arange(n) / rate
    return np.exp(-t / decay_s)


def _highpass(x: np.ndarray) -> np.ndarray:
    """A first difference: a cheap high-pass that makes noise sound like metal."""
    return np.diff(x, prepend=0.0)


def drum_kit(rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """The 9 samples of the kit (float64, peak about 1), seeded: the same every call.

    Args:
        rate: samples per second.

    Returns:
        list of 9 float64 arrays, one per drum class.
    """
    rng = np.random.default_rng(0)

    def length(seconds: float) -> tuple[int, np.ndarray]:
        n = int(seconds * rate)
        return n, np.arange(n) / rate

    n, t = length(0.35)
    freq = 45.0 + 75.0 * np.exp(-t / 0.04)
    kick = np.sin(2 * math.pi * np.cumsum(freq) / rate) * _envelope(n, rate, 0.12)
    n, t = length(0.2)
    snare = (0.5 * np.sin(2 * math.pi * 190.0 * t) + 0.8 * rng.standard_normal(n)) * _envelope(
        n, rate, 0.05
    )
    n, _ = length(0.06)
    hat_closed = _highpass(rng.standard_normal(n)) * _envelope(n, rate, 0.012)
    n, _ = length(0.35)
    hat_open = _highpass(rng.standard_normal(n)) * _envelope(n, rate, 0.12)
    toms = []
    for base in (95.0, 130.0, 170.0):
        n, t = length(0.3)
        f = base * (1.0 + 0.3 * np.exp(-t / 0.05))
        toms.append(np.sin(2 * math.pi * np.cumsum(f) / rate) * _envelope(n, rate, 0.1))
    n, _ = length(1.2)
    crash = _highpass(rng.standard_normal(n)) * _envelope(n, rate, 0.45)
    n, t = length(0.6)
    ride = (0.6 * _highpass(rng.standard_normal(n)) + 0.4 * np.sin(2 * math.pi * 520.0 * t)) * (
        _envelope(n, rate, 0.25)
    )
    kit = [kick, snare, hat_closed, hat_open, *toms, crash, ride]
    return [s / max(np.abs(s).max(), 1e-9) for s in kit]


MAX_WAV_SECONDS: float = 1800.0
"""Longest audio :func:`render_audio` renders (30 minutes: a 320 MB mix buffer at
:data:`SAMPLE_RATE`)."""


def render_audio(
    sequence: np.ndarray, bpm: float = 120.0, steps_per_bar: int = 16, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Mix a drum sequence into mono 16-bit audio.

    Args:
        sequence: float array (steps, drums), values in [0, 1]; a step's value is the hit's
            gain (its velocity), 0 is silence.
        bpm: tempo, quarter notes per minute, from 20 to 400.
        steps_per_bar: steps per 4/4 bar: a step lasts ``60 / bpm * 4 / steps_per_bar`` s.
        rate: samples per second.

    Returns:
        int16 array (samples,): the mix, peak-normalised to -1 dBFS (silence stays 0), with the
        last hit's tail included.

    Raises:
        ValueError: a sequence that is not (steps, drums) in [0, 1], a tempo outside 20-400
            bpm, or audio longer than :data:`MAX_WAV_SECONDS`.
    """
    seq = np.asarray(sequence, dtype=np.float64)
    bad = seq.ndim != 2 or not np.isfinite(seq).all()
    if bad or (seq.size and (seq.min() < 0 or seq.max() > 1)):
        raise ValueError(
            f"sequence must be a finite (steps, drums) array in [0, 1], got shape {seq.shape}"
        )
    bpm = check_bpm(bpm)
    if not isinstance(steps_per_bar, int) or steps_per_bar < 1:
        raise ValueError(f"steps_per_bar must be an integer >= 1, got {steps_per_bar!r}")
    whole = isinstance(rate, (int, np.integer)) and not isinstance(rate, bool)
    if not whole or not 1 <= rate <= 192_000:
        raise ValueError(f"rate must be an integer sample rate in [1, 192000], got {rate!r}")
    step_s = 60.0 / bpm * 4.0 / steps_per_bar
    seconds = seq.shape[0] * step_s
    if seconds > MAX_WAV_SECONDS:
        raise ValueError(
            f"the audio would last {seconds:,.0f} s ({seq.shape[0]} steps at {bpm:g} bpm), more "
            f"than the limit of {MAX_WAV_SECONDS:,.0f} s: render fewer steps or a faster tempo"
        )
    kit = drum_kit(rate)
    starts = (np.arange(seq.shape[0]) * step_s * rate).astype(np.int64)
    total = int(seq.shape[0] * step_s * rate) + max(len(s) for s in kit)
    mix = np.zeros(total)
    for d in range(seq.shape[1]):
        sample = kit[d] if d < len(kit) else kit[2]
        for t in np.flatnonzero(seq[:, d] > 0):
            mix[starts[t] : starts[t] + len(sample)] += seq[t, d] * sample
    peak = np.abs(mix).max()
    if peak > 0:
        mix *= 10 ** (-1 / 20) / peak
    return np.round(mix * 32767).astype(np.int16)


def save_wav(
    sequence: np.ndarray, path: str | os.PathLike[str], bpm: float = 120.0,
    steps_per_bar: int = 16, rate: int = SAMPLE_RATE,
) -> Path:  # fmt: skip
    """Render ``sequence`` (:func:`render_audio`) and write it as a 16-bit mono WAV, atomically.

    Returns:
        The path written.
    """
    from dataset.io import atomic_write

    audio = render_audio(sequence, bpm, steps_per_bar, rate)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.astype("<i2").tobytes())
    data = buffer.getvalue()
    return atomic_write(path, lambda f: f.write(data), durable=False)
