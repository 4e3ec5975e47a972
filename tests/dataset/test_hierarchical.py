"""CompleteHierarchicalDrumDataset: windows, views, augmentation, sections, metrics."""

from __future__ import annotations

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

from dataset import metrics
from dataset.hierarchical import CompleteHierarchicalDrumDataset as DS
from dataset.io import DataError

ROOT = Path(__file__).resolve().parents[2]

# song metric -> the window metric it equals over a full-length window (metrics.song_metrics)
SONG_TO_WINDOW = {
    "song/avg_hits": "step/avg_hits",
    "song/drum_density": "step/drum_density",
    "song/max_hits": "step/max_hits",
    "song/ioi_mean": "step/ioi_mean",
    "song/fraction_dense_bars": "bar/fraction_dense",
    "song/syncopation": "bar/syncopation",
    "song/metrical_syncopation": "bar/metrical_syncopation",
    "song/fast_runs_per_bar": "bar/fast_runs_per_bar",
    "song/bar_repetition": "phrase/bar_repetition",
    "song/phrase_repetition": "phrase/phrase_repetition",
    "song/fill_ratio": "phrase/fill_ratio",
    "song/section_contrast": "section/contrast",
    "song/step_entropy": "step/entropy",
    "song/phrase_entropy": "phrase/entropy",
    "song/ngram_diversity": "bar/ngram_diversity",
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
    assert list(a["metrics"]) == list(b["metrics"])
    for k in a["metrics"]:
        x, y = np.asarray(a["metrics"][k]), np.asarray(b["metrics"][k])
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape, k
        np.testing.assert_array_equal(x, y, k)


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
        np.testing.assert_array_equal(sample["bar"], expected[: n // 4 * 4].reshape(n // 4, 4, 3))
        np.testing.assert_array_equal(
            sample["phrase"], expected[: n // 8 * 8].reshape(n // 8, 8, 3)
        )
    short = ds[len(ds) - 1]  # 10 steps: 2 complete bars (partial bar dropped), 1 phrase
    assert short["step"].shape == (10, 3)
    assert short["bar"].shape == (2, 4, 3)
    assert short["phrase"].shape == (1, 8, 3)


def test_tensor_output_types_and_shapes() -> None:
    ds = small(corpus([20]))
    sample = ds[0]
    assert set(sample) == {"step", "bar", "phrase", "metrics"}
    for k in ("step", "bar", "phrase"):
        assert isinstance(sample[k], torch.Tensor) and sample[k].dtype == torch.float32
    assert sample["step"].shape == (16, 3)
    assert sample["bar"].shape == (4, 4, 3)
    assert sample["phrase"].shape == (2, 8, 3)
    for k, v in sample["metrics"].items():
        assert isinstance(v, torch.Tensor) and v.dtype == torch.float32, k
        assert torch.isfinite(v).all(), k
    assert sample["metrics"]["step/drum_density"].shape == (3,)
    assert sample["metrics"]["bar/density"].shape == (4,)


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
    assert not torch.equal(sample["bar"], sample["step"][:16].reshape(4, 4, 3))
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
    np.testing.assert_allclose(m["section/density"], density, rtol=1e-12)
    np.testing.assert_allclose(m["section/entropy"], entropy, rtol=1e-12)
    np.testing.assert_allclose(m["section/contrast"], np.std(density), rtol=1e-12)
    np.testing.assert_allclose(ds[3]["metrics"]["section/density"], density, rtol=1e-6)


def test_default_sections_are_two_phrases() -> None:
    ds = small(corpus([40]), seq_len=40, as_numpy=True)  # phrase 8 steps: sections of 16
    m = ds.window_metrics(0)
    win = ds.window(0)
    expected = [metrics.hit_density(win[s:e]).avg_hits for s, e in [(0, 16), (16, 32), (32, 40)]]
    np.testing.assert_allclose(m["section/density"], expected, rtol=1e-12)


# ----------------------------------------------------------------------------- metrics


def test_metric_methods_are_thin_calls_into_metrics() -> None:
    ds = small(corpus([20]), fast_threshold=2)
    x = ds.window(0)
    pairs = [
        (ds._hit_density(x), metrics.hit_density(x)),
        (ds._fraction_dense_bars(x), metrics.fraction_dense_bars(x, 4)),
        (ds._ioi_stats(x), metrics.ioi_stats(x)),
        (ds._co_occurrence(x), metrics.co_occurrence(x)),
        (ds._n_grams(x), metrics.n_grams(x, 4)),
        (ds._fast_patterns(x), metrics.fast_patterns(x, 2, 4)),
        (ds._transitions(x), metrics.transitions(x)),
        (ds._syncopation(x), metrics.syncopation(x, 4)),
        (ds._phrase_structure(x), metrics.phrase_structure(x, 4, 2)),
        (ds._section_metrics(x), metrics.section_metrics(x, None, 8)),
    ]
    for got, want in pairs:
        assert type(got) is type(want)
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    song = ds._song_metrics(0)
    want = metrics.song_metrics(ds.sequences[0], 4, 2, 2)
    assert song.keys() == want.keys()
    merged = ds._aggregate({"step/a": np.array(1.0)}, {"song/b": np.array(2.0)})
    assert merged == {"step/a": 1.0, "song/b": 2.0}


def test_metrics_are_window_and_song_metrics() -> None:
    ds = small(corpus([30], seed=6), fast_threshold=3)
    win = ds.window(5)
    want = {
        **metrics.window_metrics(win, 4, 2, None, 3),
        **metrics.song_metrics(ds.sequences[0], 4, 2, 3),
    }
    got = ds[5]["metrics"]
    assert list(got) == list(want)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k].numpy(), np.asarray(v, np.float32), k)
    for k, v in ds.window_metrics(5).items():
        np.testing.assert_array_equal(v, want[k], k)


def test_song_metrics_equal_across_windows_of_a_file(tmp_path: Path) -> None:
    seqs = corpus([45, 33], seed=7)
    ds = DS(write(tmp_path / "c", seqs), 16, 4, 2, augment=True)
    song_keys = [k for k in ds[0]["metrics"] if k.startswith("song/")]
    assert song_keys
    for s, seq in enumerate(seqs):
        want = metrics.song_metrics(seq, 4, 2, 4)
        assert sorted(song_keys) == sorted(want)
        for i in np.flatnonzero(ds.sample_indices[:, 0] == s):
            got = ds[int(i)]["metrics"]
            for k in song_keys:
                np.testing.assert_array_equal(got[k].numpy(), np.asarray(want[k], np.float32), k)


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
    assert set(k for k in m if k.startswith("song/")) <= set(SONG_TO_WINDOW) | {
        "song/length_steps",
        "song/length_bars",
    }
    assert m["song/length_steps"] == len(seq)
    for song_key, window_key in SONG_TO_WINDOW.items():
        np.testing.assert_array_equal(m[song_key], m[window_key], song_key)
        assert np.all(np.isfinite(m[song_key]))


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
        assert all(isinstance(v, np.ndarray) for v in b["metrics"].values())
        assert_samples_equal(a, b)


def test_importing_the_dataset_does_not_import_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "import dataset, dataset.hierarchical, dataset.io\n"
        "from dataset.hierarchical import CompleteHierarchicalDrumDataset as D\n"
        "ds = D(None, 8, sequences=[np.ones((10, 2), np.float32)], as_numpy=True)\n"
        "ds[0]; ds.window(1); ds.window_metrics(2); ds.summary()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
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
