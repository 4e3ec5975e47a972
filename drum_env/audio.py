"""Listen to a take: a WAV through FluidSynth and a General MIDI soundfont, or a numpy kit.

Two synthesisers, picked by ``synth=`` (:func:`render_audio`): ``"fluidsynth"`` plays the take's
MIDI (:func:`dataset.midi.sequence_to_pretty_midi`: drums on the General MIDI drum channel, the
take's velocities and tempo) through ``pretty_midi``'s FluidSynth binding with a General MIDI
soundfont (:func:`find_soundfont`: ``soundfont=``, the :data:`SOUNDFONT_ENV` variable, or
Debian's :data:`DEBIAN_SOUNDFONT`); ``"kit"`` mixes a small drum kit synthesised in numpy (no
sample files, no external synthesiser); ``"auto"``, the default, takes FluidSynth where it can
run (:func:`fluidsynth_missing` finds nothing missing) and the kit elsewhere.

Loudness: each synthesiser plays at one fixed gain (:data:`KIT_GAIN`, :data:`FLUIDSYNTH_GAIN`),
never normalised per take, so takes compare by ear: a dense bar is louder than a sparse one, a
soft take softer than a loud one. Both gains follow one rule: the loudest bar of the Groove MIDI
Dataset peaks at -3 dBFS; a sample that would pass full scale is clipped there
(:func:`to_int16`). The audio is 16-bit mono PCM, written with the standard library's
:mod:`wave`, atomically (:func:`save_wav`).

In the kit, each of the 9 drum classes is one short sample made from sines and seeded noise,
mixed at its step's time with a gain equal to the step's value (a hit's velocity in ``[0, 1]``,
binary hits play at full level). The kit, in the 9-class order (kick, snare, closed hi-hat, open
hi-hat, low / mid / high tom, crash, ride):

| class | sound | length |
|---|---|---|
| kick | sine sweeping 120 -> 45 Hz, exponential decay | 0.35 s |
| snare | 190 Hz sine + noise, fast decay | 0.2 s |
| closed hi-hat | high-passed noise, very fast decay | 0.06 s |
| open hi-hat | high-passed noise, slower decay | 0.35 s |
| low, mid, high tom | sines at 95, 130, 170 Hz with a slight downward sweep | 0.3 s |
| crash | high-passed noise, long decay | 1.2 s |
| ride | high-passed noise + 520 Hz bell, medium decay | 0.6 s |

A sequence with more than 9 drums plays its extra columns with the closed hi-hat sound (the kit
only). The tempo is 20-400 bpm (:func:`dataset.io.check_bpm`) and a take lasts at most
:data:`MAX_WAV_SECONDS`, checked before any audio buffer is allocated.

>>> import numpy as np
>>> audio = render_audio(np.eye(16, 9, dtype=np.float32), bpm=120, synth="kit")
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

from dataset.drums import DRUM_NAMES
from dataset.io import check_bpm

__all__ = [
    "SAMPLE_RATE",
    "MAX_WAV_SECONDS",
    "SYNTHS",
    "KIT_GAIN",
    "FLUIDSYNTH_GAIN",
    "SOUNDFONT_ENV",
    "DEBIAN_SOUNDFONT",
    "drum_kit",
    "find_soundfont",
    "fluidsynth_missing",
    "render_audio",
    "save_wav",
    "to_int16",
]

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

SYNTHS: tuple[str, ...] = ("auto", "fluidsynth", "kit")
"""The ``synth=`` choices of :func:`render_audio` and :func:`save_wav`."""

KIT_GAIN: float = 0.245
"""Fixed gain of the kit: the mix of hits (each hit a sample that peaks at its velocity) times
this is the audio in full scale (1 = 0 dBFS). Set by :func:`render_audio`'s rule: the loudest of
the 588 densest Groove bars (the 2 densest bars of each of its 324 files, with the bar before for
ring-out, at the file's tempo and velocities) mixes to a peak of 2.89, so it plays at -3 dBFS;
one full-velocity hit at -12 dBFS."""

FLUIDSYNTH_GAIN: float = 3.25
"""Fixed gain of FluidSynth: its output (at its own default ``synth.gain`` 0.2, in full scale)
times this is the audio in full scale. Set by the same rule as :data:`KIT_GAIN` with the
``fluid-soundfont-gm`` soundfont (FluidR3_GM): the loudest of those bars peaks at 0.216, so it
plays at -3 dBFS; a full-velocity kick at -11 dBFS. Another soundfont keeps this gain (louder or
softer as it is made) and the clip rule."""

SOUNDFONT_ENV: str = "DRUM_ENV_SOUNDFONT"
"""Environment variable naming a General MIDI ``.sf2`` soundfont for FluidSynth."""

DEBIAN_SOUNDFONT: str = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
"""Where Debian's and Ubuntu's ``fluid-soundfont-gm`` package installs its soundfont."""

_FLUID_SYNTH_GAIN = 0.2  # FluidSynth's own default: its int16 output keeps headroom
_FLUID_RATES = (8_000, 96_000)  # the sample rates FluidSynth renders at
_FLUID_TAIL_S = 1.0  # ring-out after the take's last step (pretty_midi renders 1 s after)


def find_soundfont(soundfont: str | os.PathLike[str] | None = None) -> Path | None:
    """The General MIDI soundfont FluidSynth would play, or ``None``.

    The first of ``soundfont``, the :data:`SOUNDFONT_ENV` variable and
    :data:`DEBIAN_SOUNDFONT` that is set. An explicit ``soundfont`` or variable is returned
    even when no file is there (the error then names it); the Debian path only when its file
    exists.
    """
    if soundfont is not None:
        return Path(soundfont)
    if os.environ.get(SOUNDFONT_ENV):
        return Path(os.environ[SOUNDFONT_ENV])
    return Path(DEBIAN_SOUNDFONT) if Path(DEBIAN_SOUNDFONT).is_file() else None


def fluidsynth_missing(
    soundfont: str | os.PathLike[str] | None = None, rate: int = SAMPLE_RATE
) -> str | None:
    """Why FluidSynth cannot render here, or ``None`` when it can.

    It needs the ``pyfluidsynth`` package (``pip install drum-env[report]``), the FluidSynth
    library (system package ``fluidsynth``), a soundfont (:func:`find_soundfont`: system package
    ``fluid-soundfont-gm``, or ``soundfont=`` / :data:`SOUNDFONT_ENV`) and a rate of 8-96 kHz.

    Returns:
        a sentence naming what is missing, or ``None``.
    """
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth: loads libfluidsynth on import)
    except ImportError as exc:
        return (
            f"FluidSynth is not available ({exc}): install the system package fluidsynth "
            "(libfluidsynth) and the Python package pyfluidsynth (pip install drum-env[report])"
        )
    except OSError as exc:  # the library is there but does not load
        return f"the FluidSynth library does not load ({exc})"
    path = find_soundfont(soundfont)
    if path is None:
        return (
            f"no General MIDI soundfont: none at {DEBIAN_SOUNDFONT} (system package "
            f"fluid-soundfont-gm), pass soundfont= or set {SOUNDFONT_ENV} to a .sf2 file"
        )
    if not path.is_file():
        return f"the soundfont {str(path)!r} is not a file"
    if not _FLUID_RATES[0] <= rate <= _FLUID_RATES[1]:
        return f"FluidSynth renders at 8000-96000 Hz, not rate={rate}"
    return None


def render_audio(
    sequence: np.ndarray, bpm: float = 120.0, steps_per_bar: int = 16, rate: int = SAMPLE_RATE,
    *, synth: str = "auto", soundfont: str | os.PathLike[str] | None = None,
) -> np.ndarray:  # fmt: skip
    """Mix a drum sequence into mono 16-bit audio at a fixed gain.

    Two synthesisers play the take, each at its one fixed gain (:data:`KIT_GAIN`,
    :data:`FLUIDSYNTH_GAIN`), never normalised per take, so two takes are on one loudness
    scale: a sparse take sounds quieter than a dense one, a soft one quieter than a loud one.
    Each gain is set by one rule: the loudest bar of the Groove MIDI Dataset (its recorded
    velocities and tempo) peaks at -3 dBFS. A sample that would still pass full scale is
    clipped to +-32767 (hard clip, never a rescale of the take).

    * ``"fluidsynth"``: :func:`dataset.midi.sequence_to_pretty_midi` (the take's velocities and
      tempo, drums on the General MIDI drum channel 10) played by
      ``pretty_midi.PrettyMIDI.fluidsynth`` with the soundfont of :func:`find_soundfont`;
      refused with the reason of :func:`fluidsynth_missing` when it cannot run, or for more
      than 9 drums.
    * ``"kit"``: the seeded numpy kit (:func:`drum_kit`), the same samples every call.
    * ``"auto"`` (default): FluidSynth where :func:`fluidsynth_missing` finds nothing missing
      and the take has at most 9 drums, else the kit.

    Args:
        sequence: float array (steps, drums), values in [0, 1]; a step's value is the hit's
            gain (its velocity), 0 is silence.
        bpm: tempo, quarter notes per minute, from 20 to 400.
        steps_per_bar: steps per 4/4 bar: a step lasts ``60 / bpm * 4 / steps_per_bar`` s.
        rate: samples per second.
        synth: ``"auto"``, ``"fluidsynth"`` or ``"kit"`` (:data:`SYNTHS`).
        soundfont: a ``.sf2`` file for FluidSynth; ``None``: :func:`find_soundfont`'s.

    Returns:
        int16 array (samples,): the take's steps and then the last hit's ring-out (the kit's
        longest sample, 1.2 s; FluidSynth 1 s); silence is all zeros. Divided by 32767 it is
        float audio in [-1, 1] at ``rate`` (what TensorBoard's ``add_audio`` takes), on the
        same fixed scale.

    Raises:
        ValueError: a sequence that is not (steps, drums) in [0, 1], a tempo outside 20-400
            bpm, audio longer than :data:`MAX_WAV_SECONDS`, an unknown ``synth``, or
            ``synth="fluidsynth"`` where FluidSynth cannot play (the message says what is
            missing).
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
    if synth not in SYNTHS:
        raise ValueError(f"synth must be one of {', '.join(map(repr, SYNTHS))}, got {synth!r}")
    step_s = 60.0 / bpm * 4.0 / steps_per_bar
    seconds = seq.shape[0] * step_s
    if seconds > MAX_WAV_SECONDS:
        raise ValueError(
            f"the audio would last {seconds:,.0f} s ({seq.shape[0]} steps at {bpm:g} bpm), more "
            f"than the limit of {MAX_WAV_SECONDS:,.0f} s: render fewer steps or a faster tempo"
        )
    use_fluid = synth == "fluidsynth"
    if synth != "kit":
        missing = fluidsynth_missing(soundfont, rate)
        if missing is None and seq.shape[1] > len(DRUM_NAMES):
            missing = f"FluidSynth plays the {len(DRUM_NAMES)} General MIDI drum classes here, "
            missing += f"not {seq.shape[1]} drums"
        if use_fluid and missing is not None:
            raise ValueError(f'synth="fluidsynth" cannot play: {missing} (synth="kit" can)')
        use_fluid = missing is None
    if use_fluid:
        mix = FLUIDSYNTH_GAIN * _fluidsynth_mix(seq, bpm, steps_per_bar, rate, soundfont)
    else:
        mix = KIT_GAIN * _kit_mix(seq, step_s, rate)
    return to_int16(mix)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Full-scale float audio (1 = 0 dBFS) as int16: times 32767, rounded, clipped to +-32767.

    The clip is the one safety rule of :func:`render_audio`: a sample past full scale is held
    there (never wrapped around, never the take rescaled).
    """
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32767), -32767, 32767).astype(
        np.int16
    )


def _kit_mix(seq: np.ndarray, step_s: float, rate: int) -> np.ndarray:
    """The kit's mix, float64 (a hit of velocity v peaks at v), then the longest sample's tail."""
    kit = drum_kit(rate)
    starts = (np.arange(seq.shape[0]) * step_s * rate).astype(np.int64)
    total = int(seq.shape[0] * step_s * rate) + max(len(s) for s in kit)
    mix = np.zeros(total)
    for d in range(seq.shape[1]):
        sample = kit[d] if d < len(kit) else kit[2]
        for t in np.flatnonzero(seq[:, d] > 0):
            mix[starts[t] : starts[t] + len(sample)] += seq[t, d] * sample
    return mix


def _fluidsynth_mix(
    seq: np.ndarray, bpm: float, steps_per_bar: int, rate: int,
    soundfont: str | os.PathLike[str] | None,
) -> np.ndarray:  # fmt: skip
    """FluidSynth's rendering, float64 in full scale: the take's steps, then 1 s of ring-out.

    At synth.gain 0.2, with a fresh synthesiser per take, so no take hears another's tail.
    """
    import fluidsynth

    from dataset.midi import sequence_to_pretty_midi

    total = int(seq.shape[0] * (60.0 / bpm * 4.0 / steps_per_bar) * rate) + int(
        _FLUID_TAIL_S * rate
    )
    pm = sequence_to_pretty_midi(seq.astype(np.float32), bpm, steps_per_bar)
    out = np.zeros(total)
    if not pm.instruments[0].notes:
        return out
    synth = fluidsynth.Synth(gain=_FLUID_SYNTH_GAIN, samplerate=float(rate))
    try:
        sfid = synth.sfload(str(find_soundfont(soundfont)))
        if sfid < 0:
            raise ValueError(f"FluidSynth cannot load the soundfont {find_soundfont(soundfont)}")
        # normalize=False: pretty_midi divides the int16 samples by 2**15, no per-take peak
        audio = pm.fluidsynth(fs=rate, synthesizer=synth, sfid=sfid, normalize=False)
    finally:
        synth.delete()
    n = min(total, len(audio))
    out[:n] = audio[:n]
    return out


def save_wav(
    sequence: np.ndarray, path: str | os.PathLike[str], bpm: float = 120.0,
    steps_per_bar: int = 16, rate: int = SAMPLE_RATE, *, synth: str = "auto",
    soundfont: str | os.PathLike[str] | None = None,
) -> Path:  # fmt: skip
    """Render ``sequence`` (:func:`render_audio`, same arguments) as a 16-bit mono WAV, atomically.

    Returns:
        The path written.
    """
    from dataset.io import atomic_write

    audio = render_audio(sequence, bpm, steps_per_bar, rate, synth=synth, soundfont=soundfont)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.astype("<i2").tobytes())
    data = buffer.getvalue()
    return atomic_write(path, lambda f: f.write(data), durable=False)
