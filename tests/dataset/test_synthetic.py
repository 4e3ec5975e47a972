"""Tests for dataset/synthetic.py: the seeded procedural corpus."""

from __future__ import annotations

import doctest
import itertools
import random

import numpy as np
import pytest

from dataset import synthetic
from dataset.synthetic import (
    CRASH,
    HIHAT_CLOSED,
    HIHAT_OPEN,
    KICK,
    NUM_DRUMS,
    RIDE,
    SNARE,
    STYLES,
    TOM_HIGH,
    TOM_LOW,
    TOM_MID,
    SyntheticSequence,
    default_corpus,
    default_corpus_dir,
    ensure_default_corpus,
    generate_corpus,
    generate_sequence,
    write_corpus,
)

TOMS = [TOM_LOW, TOM_MID, TOM_HIGH]
TIMEKEEPING = [HIHAT_CLOSED, HIHAT_OPEN, RIDE]
# Snare steps (16th grid) that every non-fill bar of a style must hold.
BACKBEAT = {
    "rock": (4, 12),
    "funk": (4, 12),
    "hiphop": (4, 12),
    "shuffle": (4, 12),
    "breakbeat": (4, 12),
    "disco": (4, 12),
    "reggae": (8,),
    "halftime": (8,),
    "bossa": (),
}
SWING_STYLES = {"shuffle"}


def bars_of(seq: np.ndarray, steps_per_bar: int = 16) -> np.ndarray:
    return seq.reshape(-1, steps_per_bar, seq.shape[1])


def sample_bars(style: str, seeds=range(3), num_bars: int = 32) -> np.ndarray:
    """Bars (n, 16, 9) of several sequences, with their bar index in the sequence."""
    return np.stack(
        [bars_of(generate_sequence(style, num_bars, np.random.default_rng(s))) for s in seeds]
    )


# --- determinism ---------------------------------------------------------------------------


def test_corpus_same_seed_identical():
    a = generate_corpus(num_sequences=12, num_bars=(4, 8), seed=3)
    b = generate_corpus(num_sequences=12, num_bars=(4, 8), seed=3)
    assert [(x.name, x.style) for x in a] == [(x.name, x.style) for x in b]
    for x, y in zip(a, b, strict=True):
        assert x.sequence.tobytes() == y.sequence.tobytes()


def test_corpus_different_seed_differs():
    a = generate_corpus(num_sequences=6, num_bars=8, seed=0)
    b = generate_corpus(num_sequences=6, num_bars=8, seed=1)
    assert all(not np.array_equal(x.sequence, y.sequence) for x, y in zip(a, b, strict=True))


def test_corpus_prefix_independent_of_size():
    small = generate_corpus(num_sequences=4, num_bars=(4, 12), seed=5)
    large = generate_corpus(num_sequences=10, num_bars=(4, 12), seed=5)
    for x, y in zip(small, large[:4], strict=True):
        assert x.name == y.name
        assert np.array_equal(x.sequence, y.sequence)


def test_sequence_deterministic_and_rng_advances():
    a = generate_sequence("funk", 8, np.random.default_rng(11))
    b = generate_sequence("funk", 8, np.random.default_rng(11))
    assert np.array_equal(a, b)
    assert np.array_equal(generate_sequence("funk", 8, 11), a)  # an int seed works too
    rng = np.random.default_rng(11)
    first = generate_sequence("funk", 8, rng)
    second = generate_sequence("funk", 8, rng)
    assert not np.array_equal(first, second)


def test_global_random_state_untouched():
    np.random.seed(123)  # noqa: NPY002 (the legacy global state is what is checked)
    random.seed(123)
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002
    py_state = random.getstate()
    generate_corpus(num_sequences=len(STYLES), num_bars=4, seed=0)
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert random.getstate() == py_state


# --- shapes, dtypes, ranges ------------------------------------------------------------------


@pytest.mark.parametrize("steps_per_bar", [4, 8, 16, 32, 48])
@pytest.mark.parametrize("style", STYLES)
def test_sequence_shape_dtype_range(style, steps_per_bar):
    seq = generate_sequence(style, 9, np.random.default_rng(0), steps_per_bar=steps_per_bar)
    assert seq.shape == (9 * steps_per_bar, NUM_DRUMS)
    assert seq.dtype == np.float32
    assert np.isfinite(seq).all()
    assert seq.min() >= 0.0 and seq.max() <= 1.0
    hits = seq[seq > 0]
    assert hits.size > 0 and hits.min() >= 0.05  # jitter never turns a hit into a rest


def test_corpus_lengths_styles_and_names():
    corpus = generate_corpus(num_sequences=2 * len(STYLES), num_bars=(3, 6), seed=2)
    assert all(isinstance(item, SyntheticSequence) for item in corpus)
    assert sorted({item.style for item in corpus}) == sorted(STYLES)
    assert len({item.name for item in corpus}) == len(corpus)
    bars = [item.sequence.shape[0] // 16 for item in corpus]
    assert all(item.sequence.shape[0] % 16 == 0 for item in corpus)
    assert min(bars) >= 3 and max(bars) <= 6
    assert len(set(bars)) > 1  # lengths are drawn, not fixed
    assert all(item.name.startswith(item.style) for item in corpus)


def test_corpus_styles_subset_and_fixed_length():
    corpus = generate_corpus(num_sequences=4, num_bars=5, styles=("bossa", "disco"), seed=0)
    assert [item.style for item in corpus] == ["bossa", "disco", "bossa", "disco"]
    assert all(item.sequence.shape == (80, NUM_DRUMS) for item in corpus)


# --- resolution --------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_resampling_matches_16th_grid(style):
    base = generate_sequence(style, 6, np.random.default_rng(4))
    fine = generate_sequence(style, 6, np.random.default_rng(4), steps_per_bar=32)
    assert np.array_equal(fine[::2], base)
    assert not fine[1::2].any()
    coarse = generate_sequence(style, 6, np.random.default_rng(4), steps_per_bar=8)
    if style not in SWING_STYLES:
        assert np.array_equal(coarse, base[::2])
    assert bars_of(coarse, 8)[:, 0, KICK].all()


def test_shuffle_uses_triplets_when_grid_allows():
    seq = generate_sequence("shuffle", 8, np.random.default_rng(0), steps_per_bar=48)
    beats = seq.reshape(-1, 12, NUM_DRUMS)  # 12 steps per beat
    hit_positions = set(np.nonzero(beats[..., HIHAT_CLOSED].any(axis=0))[0])
    assert 8 in hit_positions  # the swung off-beat at 2/3 of the beat
    assert hit_positions <= {0, 3, 6, 8, 9}  # straight 16ths only inside fills (none on hats)


# --- musical sanity ------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_kick_on_beat_one_and_timekeeping(style):
    bars = sample_bars(style)  # (seeds, 32, 16, 9)
    assert (bars[..., 0, KICK] > 0).mean() >= 0.95
    assert (bars[..., TIMEKEEPING] > 0).any(axis=(2, 3)).mean() >= 0.95
    plain = bars[:, np.arange(32) % 4 != 3]  # a fill may be all toms
    assert (plain[..., SNARE] > 0).any(axis=2).mean() >= 0.95


@pytest.mark.parametrize("style", STYLES)
def test_backbeat_in_bars_without_fill(style):
    bars = sample_bars(style)  # (seeds, 32, 16, 9)
    plain = bars[:, np.arange(32) % 4 != 3]
    for step in BACKBEAT[style]:
        assert (plain[:, :, step, SNARE] > 0).mean() >= 0.95, step


def test_funk_has_ghost_notes():
    bars = sample_bars("funk")
    snare = bars[..., SNARE]
    ghosts = (snare > 0) & (snare < 0.45)
    assert ghosts.sum(axis=-1).mean() >= 2.0  # several ghost snares per bar on average
    assert np.all(snare[..., 4][snare[..., 4] > 0] > 0.5)  # the backbeat is loud


@pytest.mark.parametrize("style", STYLES)
def test_fills_at_phrase_ends_then_crash(style):
    bars = sample_bars(style)  # (seeds, 32, 16, 9), 4 bars per phrase
    index = np.arange(32)
    tom_hits = (bars[..., TOMS] > 0).sum(axis=(2, 3))  # (seeds, 32)
    fill = index % 4 == 3
    assert (tom_hits[:, fill] >= 1).all()
    assert tom_hits[:, fill].mean() > tom_hits[:, ~fill].mean() + 1.0
    phrase_start = (index % 4 == 0) & (index > 0)
    assert (bars[:, phrase_start, 0, CRASH] > 0).all()
    assert (bars[:, phrase_start, 0, KICK] > 0).all()
    off_downbeat = bars[:, :, 1:, CRASH]
    assert not off_downbeat.any()


def test_bars_per_phrase_moves_fills():
    bars = bars_of(generate_sequence("rock", 24, np.random.default_rng(2), bars_per_phrase=8))
    toms = (bars[..., TOMS] > 0).any(axis=(1, 2))
    assert np.array_equal(np.nonzero(toms)[0], [7, 15, 23])
    assert (bars[[8, 16], 0, CRASH] > 0).all()


@pytest.mark.parametrize("style", STYLES)
def test_chorus_changes_the_cymbals(style):
    # bars 0-7 verse, 8-15 chorus, 16-23 verse, 24-31 chorus
    bars = sample_bars(style, seeds=range(4))
    chorus = (np.arange(32) // 8) % 2 == 1
    ride_or_open = (bars[..., [HIHAT_OPEN, RIDE]] > 0).sum(axis=(2, 3))
    closed = (bars[..., HIHAT_CLOSED] > 0).sum(axis=2)
    share = ride_or_open / np.maximum(ride_or_open + closed, 1)
    assert share[:, chorus].mean() > share[:, ~chorus].mean() + 0.15
    assert (bars[:, [8, 24], 0, CRASH] > 0).all()  # a chorus opens with a crash


def test_styles_differ_more_than_sequences_of_one_style():
    def feature(style, seed):
        bars = bars_of(generate_sequence(style, 16, np.random.default_rng(seed)))
        return (bars > 0).mean(axis=0).ravel()

    feats = {style: [feature(style, seed) for seed in range(4)] for style in STYLES}

    def mean_distance(xs, ys):
        return np.mean([np.linalg.norm(x - y) for x, y in itertools.product(xs, ys)])

    for style in STYLES:
        within = np.mean(
            [np.linalg.norm(x - y) for x, y in itertools.combinations(feats[style], 2)]
        )
        between = min(mean_distance(feats[style], feats[o]) for o in STYLES if o != style)
        assert within < between, style


# --- argument checking -----------------------------------------------------------------------

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: generate_sequence("polka", 4, RNG), "style"),
        (lambda: generate_sequence("rock", 0, RNG), "num_bars"),
        (lambda: generate_sequence("rock", 2.5, RNG), "num_bars"),
        (lambda: generate_sequence("rock", True, RNG), "num_bars"),
        (lambda: generate_sequence("rock", 4, RNG, steps_per_bar=12), "steps_per_bar"),
        (lambda: generate_sequence("rock", 4, RNG, steps_per_bar=0), "steps_per_bar"),
        (lambda: generate_sequence("rock", 4, RNG, steps_per_bar=24), "steps_per_bar"),
        (lambda: generate_sequence("rock", 4, RNG, bars_per_phrase=0), "bars_per_phrase"),
        (lambda: generate_sequence("rock", 4, RNG, bars_per_section=0), "bars_per_section"),
        (lambda: generate_corpus(num_sequences=0), "num_sequences"),
        (lambda: generate_corpus(num_bars=(8, 4)), "num_bars"),
        (lambda: generate_corpus(num_bars=(0, 4)), "num_bars"),
        (lambda: generate_corpus(num_bars=(1, 2, 3)), "num_bars"),
        (lambda: generate_corpus(seed=-1), "seed"),
        (lambda: generate_corpus(steps_per_bar=10), "steps_per_bar"),
        (lambda: generate_corpus(bars_per_phrase=-2), "bars_per_phrase"),
        (lambda: generate_corpus(styles=()), "styles"),
        (lambda: generate_corpus(styles="rock"), "styles"),
        (lambda: generate_corpus(styles=("rock", "polka")), "style"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_unknown_style_lists_styles():
    with pytest.raises(ValueError) as info:
        generate_sequence("polka", 4, RNG)
    assert all(style in str(info.value) for style in STYLES)


def test_bad_rng_type():
    with pytest.raises(TypeError, match="rng"):
        generate_sequence("rock", 4, "seed")  # type: ignore[arg-type]


# --- files and the default corpus -------------------------------------------------------------


def test_write_corpus_round_trip(tmp_path):
    out = tmp_path / "new" / "corpus"
    kwargs = dict(num_sequences=5, num_bars=(2, 4), seed=9)
    paths = write_corpus(out, **kwargs)
    corpus = generate_corpus(**kwargs)
    assert paths == sorted(paths)
    assert sorted(paths) == sorted(out / c.style / f"{c.name}.npz" for c in corpus)
    for item in corpus:
        with np.load(out / item.style / f"{item.name}.npz", allow_pickle=False) as data:
            assert list(data.keys()) == ["sequence"]
            loaded = data["sequence"]
        assert loaded.dtype == np.float32
        assert np.array_equal(loaded, item.sequence)
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix != ".npz"]


def test_default_corpus_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DRUM_ENV_CACHE", str(tmp_path / "cache"))
    assert default_corpus_dir() == tmp_path / "cache" / "synthetic-v1-seed0"
    monkeypatch.delenv("DRUM_ENV_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_corpus_dir() == tmp_path / "home" / ".cache" / "drum-env" / "synthetic-v1-seed0"


def test_ensure_default_corpus_idempotent_and_repairs(monkeypatch, tmp_path):
    monkeypatch.setenv("DRUM_ENV_CACHE", str(tmp_path))
    folder = ensure_default_corpus()
    assert folder == default_corpus_dir()
    files = sorted(folder.rglob("*.npz"))
    assert len(files) == 64
    assert {p.parent.name for p in files} == set(STYLES)
    stamps = {p: p.stat().st_mtime_ns for p in files}

    assert ensure_default_corpus() == folder  # complete: nothing is rewritten
    assert {p: p.stat().st_mtime_ns for p in files} == stamps

    # An interrupted write (no marker, a file missing) is written again.
    (folder / ".complete.json").unlink()
    files[0].unlink()
    ensure_default_corpus()
    assert sorted(folder.rglob("*.npz")) == files

    # A file deleted after completion is noticed too.
    files[1].unlink()
    ensure_default_corpus()
    assert files[1].is_file()

    # The files hold the in-memory default corpus.
    memory = default_corpus()
    by_name = {item.name: item.sequence for item in generate_corpus(num_sequences=64)}
    assert len(memory) == 64
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            assert np.array_equal(data["sequence"], by_name[path.stem])


def test_default_corpus_is_valid():
    # its speed is measured in benchmarks/, never asserted here (it failed under load)
    corpus = default_corpus()
    assert len(corpus) == 64
    assert all(seq.dtype == np.float32 and seq.shape[1] == NUM_DRUMS for seq in corpus)
    assert all(16 * 16 <= seq.shape[0] <= 48 * 16 for seq in corpus)


def test_doctests():
    result = doctest.testmod(synthetic, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
