"""CompleteHierarchicalDrumDataset: windows, views, augmentation, sections, metrics."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from metric_tree import leaves

from dataset import metrics
from dataset.hierarchical import CompleteHierarchicalDrumDataset as DS
from dataset.io import DataError
from dataset.registry import BUILTIN_KEYS, register_metric, unregister_metric

ROOT = Path(__file__).resolve().parents[2]

# song metric -> the window metric (level, name) it equals over a full-length window
SONG_TO_WINDOW = {
    "avg_hits": ("step", "avg_hits"),
    "drum_density": ("step", "drum_density"),
    "max_hits": ("step", "max_hits"),
    "step_entropy": ("step", "step_entropy"),
    "phrase_entropy": ("phrase", "phrase_entropy"),
    "ngram_diversity": ("bar", "ngram_diversity"),
    "ioi_mean": ("step", "ioi_mean"),
    "co_occurrence": ("step", "co_occurrence"),
    "fraction_dense_bars": ("bar", "fraction_dense_bars"),
    "fraction_busy_bars": ("bar", "fraction_busy_bars"),
    "syncopation": ("bar", "syncopation"),
    "metrical_syncopation": ("bar", "metrical_syncopation"),
    "fast_patterns": ("step", "fast_patterns"),
    "fast_runs_per_bar": ("bar", "fast_runs_per_bar"),
    "bar_repetition": ("phrase", "bar_repetition"),
    "phrase_repetition": ("phrase", "phrase_repetition"),
    "fill_ratio": ("phrase", "fill_ratio"),
    "section_contrast": ("phrase", "section_contrast"),
    "ngram_diversity_ratio": ("bar", "ngram_diversity_ratio"),
    "swing": ("bar", "swing"),
    "polyrhythm": ("phrase", "polyrhythm"),
}


def corpus(lengths: list[int], drums: int = 3, p: float = 0.3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((n, drums)) < p).astype(np.float32) for n in lengths]


def write(folder: Path, seqs: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seqs):
        np.savez(folder / f"song{i:02d}.npz", sequence=s)
    return folder


def small(seqs: list[np.ndarray], **kw: object) -> DS:
    kw = {"seq_len": 16, "steps_per_bar": 4, "bars_per_phrase": 2, **kw}
    return DS(None, sequences=seqs, **kw)  # type: ignore[arg-type]


def assert_samples_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in ("step", "bar", "phrase"):
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x, y)
    la, lb = leaves(a["metrics"]), leaves(b["metrics"])
    assert list(la) == list(lb)
    for k in la:
        x, y = np.asarray(la[k]), np.asarray(lb[k])
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape, k
        np.testing.assert_array_equal(x, y, str(k))


# ----------------------------------------------------------------------------- indexing


def test_sample_counts_include_the_last_window() -> None:
    ds = small(corpus([20, 16, 5]))
    # 20 - 16 + 1 = 5 windows, one full-length, one short sequence of its own length
    assert len(ds) == 7
    assert ds.sample_indices.dtype == np.int64 and ds.sample_indices.shape == (7, 2)
    assert ds.sample_indices.tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4], [1, 0], [2, 0]]
    assert ds.phrase_len == 8


def test_stride() -> None:
    ds = small(corpus([25, 16, 3]), stride=3)
    # starts 0, 3, 6, 9 <= 25 - 16 = 9 (the last start included, as 3 divides 9)
    assert ds.sample_indices.tolist() == [[0, 0], [0, 3], [0, 6], [0, 9], [1, 0], [2, 0]]
    ds = small(corpus([25]), stride=4)
    assert ds.sample_indices[:, 1].tolist() == [0, 4, 8]


def test_window_contents_and_views() -> None:
    seqs = corpus([21, 10])
    ds = small(seqs, as_numpy=True)
    for i, (s, start) in enumerate(ds.sample_indices):
        expected = seqs[s][start : start + 16]
        np.testing.assert_array_equal(ds.window(i), expected)
        sample = ds[i]
        np.testing.assert_array_equal(sample["step"], expected)
        n = len(expected)
        # the seed's _aggregate: the mean of each complete bar / phrase, per drum
        bars = expected[: n // 4 * 4].reshape(n // 4, 4, 3).mean(axis=1)
        phrases = expected[: n // 8 * 8].reshape(n // 8, 8, 3).mean(axis=1)
        np.testing.assert_array_equal(sample["bar"], bars)
        np.testing.assert_array_equal(sample["phrase"], phrases)
    short = ds[len(ds) - 1]  # 10 steps: 2 complete bars (partial bar dropped), 1 phrase
    assert short["step"].shape == (10, 3)
    assert short["bar"].shape == (2, 3)
    assert short["phrase"].shape == (1, 3)


def test_bar_and_phrase_are_the_seeds_aggregate_hand_worked() -> None:
    # 8 steps of 2 drums, velocities; bars of 2 steps, phrases of 2 bars (4 steps).
    #   t   : 0    1    2    3    4    5    6    7
    #   d0  : 1    0    0.5  0.5  0    0    1    1
    #   d1  : 0    0    1    0    0    0.25 0    0
    seq = np.array(
        [[1, 0], [0, 0], [0.5, 1], [0.5, 0], [0, 0], [0, 0.25], [1, 0], [1, 0]], np.float32
    )
    ds = DS(None, 8, 2, 2, sequences=[seq], as_numpy=True)
    sample = ds[0]
    # bar means: (1+0)/2, (0+0)/2 | (.5+.5)/2, (1+0)/2 | 0, .125 | 1, 0
    np.testing.assert_array_equal(sample["bar"], [[0.5, 0], [0.5, 0.5], [0, 0.125], [1, 0]])
    # phrase means: (1+0+.5+.5)/4, (0+0+1+0)/4 | (0+0+1+1)/4, (0+.25+0+0)/4
    np.testing.assert_array_equal(sample["phrase"], [[0.5, 0.25], [0.5, 0.0625]])
    np.testing.assert_array_equal(ds._aggregate(seq, 4), [[0.5, 0.25], [0.5, 0.0625]])
    assert ds._aggregate(seq, 3).shape == (2, 2) and ds._aggregate(seq[:1], 2).shape == (0, 2)


def test_tensor_output_types_and_shapes() -> None:
    ds = small(corpus([20]))
    sample = ds[0]
    assert set(sample) == {"step", "bar", "phrase", "metrics"}
    for k in ("step", "bar", "phrase"):
        assert isinstance(sample[k], torch.Tensor) and sample[k].dtype == torch.float32
    assert sample["step"].shape == (16, 3)
    assert sample["bar"].shape == (4, 3)
    assert sample["phrase"].shape == (2, 3)
    m = sample["metrics"]
    assert list(m) == ["step", "bar", "phrase", "section", "song"]
    assert isinstance(m["section"], list) and len(m["section"]) == 1  # 16 steps: 2 phrases
    for k, v in leaves(m).items():
        assert isinstance(v, torch.Tensor) and v.dtype == torch.float32, k
        assert torch.isfinite(v).all(), k
    assert m["step"]["drum_density"].shape == (3,)
    assert m["step"]["transitions"].shape == (3, 3)
    assert m["bar"]["density"].shape == (4,)
    assert m["phrase"]["phrase_structure"].shape == (2, 2)
    assert m["song"]["ngram_diversity"].shape == ()
    assert m["section"][0]["drum_density"].shape == (3,)


def test_metric_keys_are_the_seeds_names_at_each_level() -> None:
    m = small(corpus([40]))[0]["metrics"]
    # the seed's names, where the seed gives them
    assert {"avg_hits", "drum_density", "max_hits", "dense_frac"} <= set(m["section"][0])
    assert {
        "avg_hits",
        "drum_density",
        "max_hits",
        "step_entropy",
        "phrase_entropy",
        "ngram_diversity",
    } <= set(m["song"])
    # the built-in keys of each level, then the registered metrics of the level, in order
    for level in ("step", "bar", "phrase", "song"):
        extra = [k for k, s in DS(None, 8, sequences=corpus([8])).metric_specs.items()
                 if level in s.levels]  # fmt: skip
        assert list(m[level]) == [*BUILTIN_KEYS[level], *extra], level
    assert list(m["section"][0]) == list(BUILTIN_KEYS["section"])


def test_negative_and_out_of_range_indices() -> None:
    ds = small(corpus([20]), as_numpy=True)
    np.testing.assert_array_equal(ds[-1]["step"], ds[len(ds) - 1]["step"])
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(IndexError):
        ds[-len(ds) - 1]
    with pytest.raises(TypeError):
        ds[1.5]  # type: ignore[index]


def test_corpus_is_read_only_and_samples_are_independent() -> None:
    seqs = corpus([20])
    ds = small(seqs)
    assert not ds.window(0).flags.writeable
    sample = ds[0]
    sample["step"][:] = 1.0
    np.testing.assert_array_equal(ds.window(0), seqs[0][:16])
    before = sample["bar"].clone()
    sample["phrase"][:] = 7.0
    assert torch.equal(sample["bar"], before)  # no view of "step" nor of "phrase"
    seqs[0][:] = 1.0  # the dataset holds its own copy
    assert ds.window(0).sum() < 16 * 3


def test_in_memory_and_folder_give_the_same_samples(tmp_path: Path) -> None:
    seqs = corpus([30, 12, 17])
    a = small(seqs, augment=True, seed=3)
    b = DS(write(tmp_path / "c", seqs), 16, 4, 2, augment=True, seed=3)
    assert [p.name for p in b.files] == ["song00.npz", "song01.npz", "song02.npz"]
    assert a.files == [] and a.names[1] == "sequences[1]"
    np.testing.assert_array_equal(a.sample_indices, b.sample_indices)
    for i in range(len(a)):
        assert_samples_equal(a[i], b[i])


def test_pickle_round_trip() -> None:
    ds = small(corpus([20, 9]), augment=True, seed=5)
    ds.set_epoch(2)
    clone = pickle.loads(pickle.dumps(ds))
    for i in range(len(ds)):
        assert_samples_equal(ds[i], clone[i])


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"seq_len": 0}, "seq_len"),
        ({"steps_per_bar": 0}, "steps_per_bar"),
        ({"bars_per_phrase": -1}, "bars_per_phrase"),
        ({"fast_threshold": 0}, "fast_threshold"),
        ({"stride": 0}, "stride"),
        ({"seed": -1}, "seed"),
        ({"seq_len": 1.5}, "seq_len"),
        ({"sections": [(0, 1, 2)]}, "sections"),
        ({"sections": [(5, 2)]}, "sections"),
    ],
)
def test_invalid_arguments_name_the_argument(kw: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        small(corpus([20]), **kw)


def test_source_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DS(None)
    with pytest.raises(ValueError, match="exactly one"):
        DS("somewhere", sequences=corpus([4]))
    with pytest.raises(DataError, match=r"sequences\[1\].*\[0, 1\]"):
        DS(None, sequences=[np.zeros((4, 3)), np.full((4, 3), 2.0)])
    with pytest.raises(DataError, match=r"sequences\[0\] has 3 drums, but sequences\[1\] has 2"):
        DS(None, sequences=[np.zeros((4, 3)), np.zeros((4, 2))])
    with pytest.raises(DataError, match="does not exist"):
        DS("/nonexistent/drum/folder")


def test_on_error_skip_is_passed_to_the_loader(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", corpus([20, 20]))
    np.savez(folder / "bad.npz", sequence=np.full((4, 3), np.nan))
    with pytest.raises(DataError):
        DS(folder, 16)
    with pytest.warns(UserWarning, match="bad.npz"):
        ds = DS(folder, 16, on_error="skip")
    assert len(ds.files) == 2


# ----------------------------------------------------------------------------- augmentation


def test_augmentation_is_a_seeded_roll() -> None:
    seqs = corpus([40, 11], seed=1)
    ds = small(seqs, augment=True, seed=7, as_numpy=True)
    shifts = set()
    for i in range(len(ds)):
        raw = ds.window(i)
        got = ds[i]["step"]
        shift = next(k for k in range(len(raw)) if np.array_equal(np.roll(raw, k, axis=0), got))
        shifts.add(shift)
        assert_samples_equal(ds[i], ds[i])  # repeats exactly
    assert len(shifts) > 3
    again = small(seqs, augment=True, seed=7, as_numpy=True)
    other_seed = small(seqs, augment=True, seed=8, as_numpy=True)
    for i in range(len(ds)):
        assert_samples_equal(ds[i], again[i])
    assert any(not np.array_equal(ds[i]["step"], other_seed[i]["step"]) for i in range(len(ds)))


def test_set_epoch_changes_and_restores_shifts() -> None:
    ds = small(corpus([60], seed=2), augment=True, as_numpy=True)
    first = [ds[i]["step"] for i in range(len(ds))]
    ds.set_epoch(1)
    second = [ds[i]["step"] for i in range(len(ds))]
    assert any(not np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    ds.set_epoch(0)
    for i, a in enumerate(first):
        np.testing.assert_array_equal(ds[i]["step"], a)
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)


def test_augmentation_is_independent_of_dataloader_workers(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", corpus([40, 30, 9], seed=4))
    ds = DS(folder, 16, 4, 2, augment=True, seed=11)
    ds.set_epoch(3)

    def run(workers: int) -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(
            ds, batch_size=4, shuffle=False, num_workers=workers, collate_fn=list
        )
        return [s["step"] for batch in loader for s in batch]

    serial, parallel = run(0), run(2)
    assert len(serial) == len(ds)
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- sections


def test_sections_are_clipped_to_the_window() -> None:
    seqs = corpus([40], seed=5)
    spans = [(-5, 6), (6, 10), (12, 1000), (100, 200)]
    ds = small(seqs, sections=spans, as_numpy=True)
    win = ds.window(3)
    m = ds.window_metrics(3)
    clipped = [(0, 6), (6, 10), (12, 16)]  # (100, 200) lies outside the window: dropped
    density = [metrics.hit_density(win[s:e]).avg_hits for s, e in clipped]
    entropy = [metrics.pattern_entropy(win[s:e]) for s, e in clipped]
    assert ds.section_spans(16) == clipped and len(m["section"]) == 3
    np.testing.assert_allclose([s["avg_hits"] for s in m["section"]], density, rtol=1e-12)
    np.testing.assert_allclose([s["step_entropy"] for s in m["section"]], entropy, rtol=1e-12)
    np.testing.assert_allclose(m["phrase"]["section_contrast"], np.std(density), rtol=1e-12)
    got = [float(s["avg_hits"]) for s in ds[3]["metrics"]["section"]]
    np.testing.assert_allclose(got, density, rtol=1e-6)


def test_default_sections_are_two_phrases() -> None:
    ds = small(corpus([40]), seq_len=40, as_numpy=True)  # phrase 8 steps: sections of 16
    m = ds.window_metrics(0)
    win = ds.window(0)
    expected = [metrics.hit_density(win[s:e]).avg_hits for s, e in [(0, 16), (16, 32), (32, 40)]]
    np.testing.assert_allclose([s["avg_hits"] for s in m["section"]], expected, rtol=1e-12)
    assert ds.section_spans(40) == [(0, 16), (16, 32), (32, 40)] and len(m["section"]) == 3


# ----------------------------------------------------------------------------- metrics

# A hand-worked window for the seed's metric methods: 2 drums, 8 steps, bars of 4 steps,
# phrases of 2 bars, fast_threshold 2.
#
#   t : 0 1 2 3 | 4 5 6 7
#   K : x . x . | x x x .     hits 0, 2, 4, 5, 6  (5)   IOIs 2, 2, 1, 1
#   S : x . . x | . x . x     hits 0, 3, 5, 7     (4)   IOIs 3, 2, 2
#   n : 2 0 1 1 | 1 2 1 1     drums per step, 9 hits; bars hold 4 and 5 hits
HAND = np.zeros((8, 2), np.float32)
HAND[[0, 2, 4, 5, 6], 0] = 1.0
HAND[[0, 3, 5, 7], 1] = 1.0


def hand_dataset(**kw: object) -> DS:
    kw = {"fast_threshold": 2, "as_numpy": True, **kw}
    return DS(None, 8, 4, 2, sequences=[HAND], **kw)  # type: ignore[arg-type]


def test_seed_metric_methods_hand_worked() -> None:
    ds = hand_dataset()
    d = ds._hit_density(HAND)
    assert (d.avg_hits, d.max_hits) == (9 / 8, 2.0)
    np.testing.assert_array_equal(d.drum_density, [5 / 8, 4 / 8])
    # more than one drum on t = 0 and t = 5: 2 of 8 steps
    assert ds._co_occurrence(HAND) == 0.25
    # consecutive steps: 2->3 K->S; 3->4 S->K; 4->5 K->K, K->S; 5->6 K->K, S->K; 6->7 K->S.
    # K row: K 2, S 3; S row: K 2, S 0.
    np.testing.assert_allclose(ds._transitions(HAND), [[0.4, 0.6], [1.0, 0.0]], atol=1e-15)
    # bars: 4 and 5 hits over 4 steps = 1.0 and 1.25 per step; default threshold D / 2 = 1,
    # "above": only the second bar.
    assert ds._fraction_dense_bars(HAND) == 0.5
    assert ds._fraction_dense_bars(HAND, threshold=0.9) == 1.0
    assert ds._fraction_dense_bars(HAND, threshold=1.25) == 0.0
    i = ds._ioi_stats(HAND)
    np.testing.assert_allclose(i.mean, [1.5, 7 / 3], atol=1e-15)
    np.testing.assert_allclose(i.var, [0.25, 2 / 9], atol=1e-15)
    # 2-grams, (K, S) of step t then of step t + 1: t = 2 and t = 6 are both (1,0,0,1).
    grams = ds._n_grams(HAND, 2)
    assert sum(grams.values()) == 7 and len(grams) == 6
    assert grams[(1, 0, 0, 1)] == 2 and grams[(1, 1, 0, 0)] == 1
    assert len(ds._n_grams(HAND)) == 5  # five 4-grams, all different
    assert ds._n_grams(HAND[:3]) == {}
    # IOIs <= 2: K 2, 2, 1, 1 and S 2, 2 -> 6 fast hits
    assert ds._fast_patterns(HAND) == 6.0
    assert hand_dataset(fast_threshold=1)._fast_patterns(HAND) == 2.0
    # hits not on a bar's first step: all but t = 0 (2 hits) and t = 4 (1 hit)
    assert ds._syncopation(HAND) == pytest.approx(6 / 9, abs=1e-15)
    np.testing.assert_array_equal(ds._phrase_structure(HAND), [[4.0, 5.0]])
    assert ds._phrase_structure(HAND[:7]).shape == (0, 2)  # short: no complete phrase


def test_section_and_song_metrics_hand_worked() -> None:
    ds = hand_dataset(sections=[(0, 4), (4, 8), (6, 20)])
    sec = ds._section_metrics(HAND)
    assert ds.section_spans(8) == [(0, 4), (4, 8), (6, 8)]  # clipped to the window
    np.testing.assert_array_equal(sec["avg_hits"], [1.0, 1.25, 1.0])
    np.testing.assert_array_equal(sec["drum_density"], [[0.5, 0.5], [0.75, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(sec["max_hits"], [2, 2, 1])
    # bars counted from each section's start; the third (2 steps) has no complete bar
    np.testing.assert_array_equal(sec["dense_frac"], [0.0, 1.0, 0.0])
    sample = ds[0]["metrics"]["section"]
    assert len(sample) == 3 and float(sample[1]["avg_hits"]) == 1.25
    np.testing.assert_array_equal(sample[1]["drum_density"], [0.75, 0.5])

    song = ds._song_metrics(HAND)
    assert (song["avg_hits"], song["max_hits"]) == (1.125, 2.0)
    np.testing.assert_array_equal(song["drum_density"], [0.625, 0.5])
    # step patterns: KS x2, silence x1, K x3, S x2 -> H = 2.5 - 0.375 log2 3 bits
    assert song["step_entropy"] == pytest.approx(2.5 - 0.375 * math.log2(3), abs=1e-12)
    assert song["phrase_entropy"] == song["step_entropy"]  # one phrase
    assert song["ngram_diversity"] == 5.0  # distinct 4-grams (a count)
    assert ds[0]["metrics"]["song"]["ngram_diversity"] == 5.0


def test_metric_methods_are_thin_calls_into_metrics() -> None:
    ds = small(corpus([20]), fast_threshold=2)
    x = ds.window(0)
    pairs = [
        (ds._hit_density(x), metrics.hit_density(x)),
        (ds._fraction_dense_bars(x), metrics.fraction_bars_above(x, 4)),
        (ds._fraction_dense_bars(x, 0.5), metrics.fraction_bars_above(x, 4, 0.5)),
        (ds._ioi_stats(x), metrics.ioi_stats(x)),
        (ds._co_occurrence(x), metrics.co_occurrence_fraction(x)),
        (ds._fast_patterns(x), metrics.fast_hits(x, 2)),
        (ds._transitions(x), metrics.step_transitions(x)),
        (ds._syncopation(x), metrics.syncopation(x, 4)),
        (ds._phrase_structure(x), metrics.phrase_hits_per_bar(x, 4, 2)),
        (ds._aggregate(x, 4), metrics.aggregate(x, 4)),
    ]
    for got, want in pairs:
        assert type(got) is type(want)
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    assert ds._n_grams(x) == metrics.n_gram_counter(x, 4)
    for got, want in [
        (ds._section_metrics(x), metrics.section_level_metrics(x, None, 4, 2)),
        (ds._song_metrics(x), metrics.song_level_metrics(x, 4, 2, 2)),
    ]:
        assert list(got) == list(want)
        for k in got:
            np.testing.assert_array_equal(got[k], want[k], k)
    cached = ds.sequence_metrics(0)
    assert cached is ds.sequence_metrics(0) and not cached["avg_hits"].flags.writeable
    want = metrics.song_level_metrics(ds.sequences[0], 4, 2, 2)
    assert list(cached) == list(want)


def test_metrics_are_level_and_song_metrics() -> None:
    ds = small(corpus([30], seed=6), fast_threshold=3)
    win = ds.window(5)
    want = {
        **metrics.level_metrics(win, 4, 2, None, 3),
        "song": metrics.song_level_metrics(ds.sequences[0], 4, 2, 3),
    }
    got = leaves(ds[5]["metrics"])
    assert list(got) == list(leaves(want))
    for k, v in leaves(want).items():
        np.testing.assert_array_equal(got[k].numpy(), np.asarray(v, np.float32), str(k))
    for k, v in leaves(ds.window_metrics(5)).items():
        np.testing.assert_array_equal(v, leaves(want)[k], str(k))


def test_song_metrics_equal_across_windows_of_a_file(tmp_path: Path) -> None:
    seqs = corpus([45, 33], seed=7)
    ds = DS(write(tmp_path / "c", seqs), 16, 4, 2, augment=True)
    for s, seq in enumerate(seqs):
        want = metrics.song_level_metrics(seq, 4, 2, 4)
        for i in np.flatnonzero(ds.sample_indices[:, 0] == s):
            got = ds[int(i)]["metrics"]["song"]
            assert list(got) == list(want)
            for k, v in want.items():
                np.testing.assert_array_equal(got[k].numpy(), np.asarray(v, np.float32), k)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 80), st.integers(1, 5)),
        elements=st.sampled_from([0.0, 0.0, 0.5, 1.0]),
    ),
    st.sampled_from([(4, 2), (3, 2), (16, 4)]),
)
def test_full_length_window_metrics_equal_song_metrics(
    seq: np.ndarray, grid: tuple[int, int]
) -> None:
    ds = DS(None, len(seq), grid[0], grid[1], sequences=[seq], as_numpy=True)
    assert len(ds) == 1
    m = ds.window_metrics(0)
    assert set(m["song"]) == set(SONG_TO_WINDOW) | {"length_steps", "length_bars", "drum_periods"}
    assert m["song"]["length_steps"] == len(seq)
    for song_key, (level, key) in SONG_TO_WINDOW.items():
        np.testing.assert_array_equal(m["song"][song_key], m[level][key], song_key)
        assert np.all(np.isfinite(m["song"][song_key]))


# ----------------------------------------------------------------------------- registry


def _hats_share(seq: np.ndarray, grid: object) -> float:
    """Unbatched: the share of the hits that are on the last drum."""
    h = np.asarray(seq) > 0
    return float(h[:, -1].sum() / h.sum()) if h.any() else 0.0


def _bar_count(seq: np.ndarray, grid: object) -> np.ndarray:
    """Batched: the number of complete bars."""
    return np.full(np.shape(seq)[:-2], np.shape(seq)[-2] // grid.steps_per_bar, np.float64)


@pytest.fixture()
def registered() -> object:
    register_metric("hats_share", _hats_share, levels=("step", "section", "song"))
    register_metric("bar_count", _bar_count, levels=("phrase",), batched=True)
    yield
    unregister_metric("hats_share")
    unregister_metric("bar_count")


def test_registered_metrics_appear_at_their_levels(registered: object) -> None:
    seqs = corpus([40, 9], seed=12)
    ds = small(seqs, sections=[(0, 5), (5, 16)])
    m = ds[3]["metrics"]
    win = ds.window(3)
    assert float(m["step"]["hats_share"]) == pytest.approx(_hats_share(win, None), abs=1e-7)
    assert "hats_share" not in m["bar"] and "hats_share" not in m["phrase"]
    for sec, (a, b) in zip(m["section"], [(0, 5), (5, 16)], strict=True):
        assert float(sec["hats_share"]) == pytest.approx(_hats_share(win[a:b], None), abs=1e-7)
    assert float(m["song"]["hats_share"]) == pytest.approx(_hats_share(seqs[0], None), abs=1e-7)
    assert float(m["phrase"]["bar_count"]) == 4.0 and "bar_count" not in m["song"]
    # batched and per-sequence metrics: a batch equals its samples
    ds.augment = True
    idx = list(range(len(ds)))
    for i, sample in zip(idx, ds.__getitems__(idx), strict=True):
        assert_samples_equal(sample, ds[i])


def test_dataset_keeps_the_registry_it_was_built_with() -> None:
    before = small(corpus([20]))
    register_metric("late", _hats_share, levels=("song",))
    try:
        after = small(corpus([20]))
        assert "late" not in before[0]["metrics"]["song"]
        assert "late" in after[0]["metrics"]["song"]
        clone = pickle.loads(pickle.dumps(after))  # workers get the same snapshot
        assert "late" in clone.metric_specs
    finally:
        unregister_metric("late")
    assert "late" in after[0]["metrics"]["song"] and "song/late" in after.summary()


def test_summary_includes_registered_song_metrics(registered: object) -> None:
    seqs = corpus([40, 24], seed=10)
    s = small(seqs).summary()
    assert s["song/hats_share"] == pytest.approx(np.mean([_hats_share(x, None) for x in seqs]))
    assert "song/swing" in s and "song/polyrhythm" in s


# ----------------------------------------------------------------------------- seed example


def test_the_seeds_example_usage_runs_verbatim(tmp_path: Path, monkeypatch) -> None:
    from dataset.synthetic import write_corpus

    write_corpus(tmp_path / "train", num_sequences=3, num_bars=(33, 36), seed=4)
    monkeypatch.chdir(tmp_path)
    code = """
from dataset import get_complete_rl_dataloader

npz_dir = "./train/"
dataloader = get_complete_rl_dataloader(npz_dir, seq_len=512, batch_size=2)

for batch in dataloader:
    print(batch["step"].shape)  # [batch, seq_len, num_drums]
    print(batch["metrics"][0]["song"]["ngram_diversity"])
    break
"""
    env: dict = {}
    exec(compile(code, "seed_example", "exec"), env)  # the seed's lines, as they are
    batch = next(iter(env["dataloader"]))
    assert batch["step"].shape == (2, 512, 9)
    assert batch["bar"].shape == (2, 32, 9)  # [batch, num_bars, num_drums]
    assert batch["phrase"].shape == (2, 8, 9)  # [batch, num_phrases, num_drums]
    song = batch["metrics"][0]["song"]
    assert song["ngram_diversity"].shape == () and float(song["ngram_diversity"]) >= 1
    assert float(song["ngram_diversity"]) == float(song["ngram_diversity"]).__round__()
    assert set(batch["metrics"][0]) == {"step", "bar", "phrase", "section", "song"}


# ----------------------------------------------------------------------------- batching


def test_getitems_equals_per_item() -> None:
    ds = small(corpus([40, 16, 9, 23, 3], seed=8), augment=True, seed=2)
    ds.set_epoch(4)
    rng = np.random.default_rng(0)
    indices = [int(i) for i in rng.integers(-len(ds), len(ds), size=50)] + [0, 0, len(ds) - 1]
    batch = ds.__getitems__(indices)
    assert len(batch) == len(indices)
    for i, sample in zip(indices, batch, strict=True):
        assert_samples_equal(sample, ds[i])
    assert ds.__getitems__([]) == []


def test_as_numpy_matches_tensors() -> None:
    seqs = corpus([30, 7], seed=9)
    t = small(seqs, augment=True)
    n = small(seqs, augment=True, as_numpy=True)
    for i in range(len(t)):
        a, b = t[i], n[i]
        assert isinstance(b["step"], np.ndarray) and b["step"].dtype == np.float32
        assert all(isinstance(v, np.ndarray) for v in leaves(b["metrics"]).values())
        assert_samples_equal(a, b)


def test_importing_the_dataset_does_not_import_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "import dataset, dataset.hierarchical, dataset.io\n"
        "from dataset.hierarchical import CompleteHierarchicalDrumDataset as D\n"
        "ds = D(None, 8, sequences=[np.ones((10, 2), np.float32)], as_numpy=True)\n"
        "ds[0]; ds.window(1); ds.window_metrics(2); ds.summary()\n"
        "import dataset.registry, dataset.metrics\n"
        "assert 'get_complete_rl_dataloader' in dir(dataset)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "from dataset import get_complete_rl_dataloader\n"
        "assert get_complete_rl_dataloader.__module__ == 'dataset.loader'\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_summary() -> None:
    seqs = corpus([40, 24], seed=10)
    ds = small(seqs)
    s = ds.summary()
    assert s["num_files"] == 0 and s["num_sequences"] == 2 and s["num_drums"] == 3
    assert s["total_steps"] == 64 and s["total_bars"] == 16
    assert s["num_samples"] == len(ds) == 25 + 9
    assert (s["min_length_steps"], s["mean_length_steps"], s["max_length_steps"]) == (24, 32, 40)
    assert "hours" not in s
    hits = sum((x > 0).sum(axis=0) for x in seqs)
    np.testing.assert_allclose(s["drum_density"], hits / 64)
    want = np.mean([metrics.song_metrics(x, 4, 2)["song/syncopation"] for x in seqs])
    assert s["song/syncopation"] == pytest.approx(want)
    # 4 steps per bar of 4 beats: 64 steps = 64 beats, at 120 bpm 32 seconds
    assert ds.summary(bpm=120)["hours"] == pytest.approx(32 / 3600)
    assert ds.summary(bpm=120, beats_per_bar=2)["hours"] == pytest.approx(16 / 3600)


def test_doctests() -> None:
    import doctest

    from dataset import hierarchical

    result = doctest.testmod(hierarchical, verbose=False)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- window tables
# dataset[i] reads a window that is not rolled from its sequence's WindowTables; a rolled one
# (augment=True) goes through level_metrics. Both must give the metric functions' numbers.


def reference_sample(ds: DS, i: int) -> dict:
    """Sample ``i`` from the metric functions themselves, as the class docstring defines it."""
    s, start = (int(v) for v in ds.sample_indices[i])
    window = ds.sequences[s][start : start + ds.seq_len]
    if ds.augment and len(window) > 1:
        shift = np.random.default_rng([ds.seed, ds.epoch, i]).integers(len(window))
        window = np.roll(window, int(shift), axis=0)
    spb, bpp, fast = ds.steps_per_bar, ds.bars_per_phrase, ds.fast_threshold
    sections = None if ds.sections is None else list(ds.sections)
    m = metrics.level_metrics(window, spb, bpp, sections, fast, ds.metric_specs)
    m["song"] = metrics.song_level_metrics(ds.sequences[s], spb, bpp, fast, ds.metric_specs)

    def f32(v: object) -> np.ndarray:
        return np.array(v, dtype=np.float32)

    return {
        "step": f32(window),
        "bar": f32(metrics.aggregate(window, spb)),
        "phrase": f32(metrics.aggregate(window, ds.phrase_len)),
        "metrics": {
            level: [{k: f32(v) for k, v in d.items()} for d in part]
            if level == "section"
            else {k: f32(v) for k, v in part.items()}
            for level, part in m.items()
        },
    }


def mixed_corpus(seed: int, drums: int = 4) -> list[np.ndarray]:
    """Random hits, velocities, silence, all hits, and sequences shorter than a window."""
    rng = np.random.default_rng(seed)
    velocity = (rng.random((70, drums)) < 0.3) * rng.integers(1, 128, (70, drums)) / 127
    return [
        *corpus([45, 7, 1], drums, p=0.35, seed=seed),
        velocity.astype(np.float32),
        np.zeros((30, drums), np.float32),
        np.ones((26, drums), np.float32),
    ]


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stride": 3, "fast_threshold": 2, "sections": [(0, 5), (3, 12), (12, 40)]},
        {"seq_len": 24, "steps_per_bar": 3, "bars_per_phrase": 3, "as_numpy": True},
    ],
)
def test_samples_equal_the_metric_functions(augment: bool, kw: dict) -> None:
    ds = small(mixed_corpus(seed=13), augment=augment, seed=4, **kw)
    ds.set_epoch(2)
    for i in range(len(ds)):
        assert_samples_equal(ds[i], reference_sample(ds, i))
    idx = list(range(len(ds)))[::-1]
    for i, sample in zip(idx, ds.__getitems__(idx), strict=True):
        assert_samples_equal(sample, reference_sample(ds, i))


def test_samples_of_a_real_looking_corpus_equal_the_metric_functions() -> None:
    from dataset.synthetic import default_corpus

    ds = DS(None, 512, sequences=default_corpus()[:6])
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(ds), size=25):
        assert_samples_equal(ds[int(i)], reference_sample(ds, int(i)))


def test_registered_metrics_through_the_tables(registered: object) -> None:
    ds = small(mixed_corpus(seed=14), sections=[(0, 5), (5, 16)])
    for i in range(0, len(ds), 3):
        assert_samples_equal(ds[i], reference_sample(ds, i))


def test_more_drums_than_the_tables_hold_fall_back() -> None:
    ds = small(corpus([20, 18], drums=16, seed=15))
    assert not metrics.WindowTables.supports(16, 16)
    for i in range(len(ds)):
        assert_samples_equal(ds[i], reference_sample(ds, i))
    assert ds.tables_nbytes == 0  # every window read, no table built


def test_tables_are_built_per_sequence_on_use_and_not_pickled() -> None:
    ds = small(corpus([40, 30, 9], seed=16))
    assert ds.tables_nbytes == 0
    ds[len(ds) - 1]  # the short sequence's only window
    alone = small(ds.sequences[2:])
    alone[0]
    assert ds.tables_nbytes == alone.tables_nbytes > 0  # that sequence's tables, no other
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.tables_nbytes == 0
    for i in range(len(ds)):
        assert_samples_equal(ds[i], clone[i])


def test_samples_do_not_share_memory_with_each_other_or_the_caches() -> None:
    ds = small(corpus([30], seed=17))
    a = ds[3]
    want = reference_sample(ds, 3)
    for v in leaves(a["metrics"]).values():
        v.add_(100.0)  # in place, every leaf
    for k in ("step", "bar", "phrase"):
        a[k].add_(100.0)
    assert_samples_equal(ds[3], want)
    assert_samples_equal(ds.__getitems__([3])[0], want)
