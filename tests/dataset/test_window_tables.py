"""WindowTables: every window's level metrics from per-sequence tables, equal to level_metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from metric_tree import leaves

from dataset.metrics import WindowTables, aggregate, level_metrics
from dataset.metrics.levels import swing_metric
from dataset.registry import MetricGrid, MetricSpec, registered_metrics
from dataset.synthetic import default_corpus


def check_windows(
    seq: np.ndarray,
    length: int,
    stride: int = 1,
    spb: int = 16,
    bpp: int = 4,
    sections: list[tuple[int, int]] | None = None,
    fast: int = 4,
    specs: dict[str, MetricSpec] | None = None,
    starts: list[int] | None = None,
) -> None:
    """Each window's tables equal level_metrics of the window, cast to float32, bit for bit."""
    tables = WindowTables(seq, length, stride, spb, bpp, sections, fast, specs)
    all_starts = list(range(0, len(seq) - length + 1, stride))
    assert tables.num_windows == len(all_starts)
    for start in all_starts if starts is None else starts:
        window = seq[start : start + length]
        want = leaves(level_metrics(window, spb, bpp, sections, fast, specs))
        got = leaves(tables.level_metrics(start))
        assert list(got) == list(want)
        assert list(tables.layout.paths) == list(want)
        for key, value in want.items():
            expected = np.asarray(value, dtype=np.float32)
            assert got[key].dtype == np.float32 and got[key].shape == expected.shape, key
            np.testing.assert_array_equal(got[key], expected, err_msg=f"{key} at {start}")
        for size in {spb, spb * bpp}:
            np.testing.assert_array_equal(
                tables.unit_means(start, size), aggregate(window, size).astype(np.float32)
            )


def corpus(t: int, drums: int, p: float, seed: int, velocity: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hits = rng.random((t, drums)) < p
    values = rng.integers(1, 128, size=(t, drums)) / 127 if velocity else np.ones((t, drums))
    return (hits * values).astype(np.float32)


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    "seq",
    [
        np.zeros((70, 3), np.float32),  # silence
        np.ones((70, 3), np.float32),  # all hits: runs across every window border
        np.eye(70, 4, dtype=np.float32),  # one hit per drum
        corpus(70, 5, 0.5, seed=1),
        corpus(70, 9, 0.15, seed=2, velocity=True),  # velocities, as converted MIDI
    ],
    ids=["silence", "all_hits", "sparse", "dense", "velocities"],
)
@pytest.mark.parametrize("length", [1, 3, 5, 16, 40, 70])
def test_edge_cases_and_short_windows(seq: np.ndarray, length: int) -> None:
    check_windows(seq, length, spb=4, bpp=2, fast=3)


def test_real_looking_corpus_with_the_default_grid() -> None:
    seqs = default_corpus()[:3]
    for seq in seqs:
        check_windows(seq, 512, starts=list(range(0, len(seq) - 511, 37)))
    check_windows(seqs[0], len(seqs[0]))  # the whole song as one window


def test_stride_sections_and_thresholds() -> None:
    seq = corpus(120, 6, 0.4, seed=3)
    check_windows(seq, 50, stride=7, spb=6, bpp=3, fast=2)
    spans = [(-3, 10), (10, 10), (12, 30), (25, 80), (40, 200), (100, 120)]
    check_windows(seq, 50, stride=3, spb=4, bpp=2, sections=spans, fast=5)
    check_windows(seq, 50, spb=4, bpp=2, sections=[], fast=1)  # no section at all


@pytest.mark.parametrize("drums", [1, 2, 15])
def test_drum_counts(drums: int) -> None:
    check_windows(corpus(40, drums, 0.3, seed=drums), 24, spb=4, bpp=2)


def test_long_runs_cut_by_the_window() -> None:
    # runs of 1 to 12 hits at every offset: fast runs cut at either end, or both
    seq = np.zeros((90, 2), np.float32)
    t = 0
    for run in range(1, 13):
        seq[t : t + run, 0] = 1
        seq[t + 1 : t + 1 + run // 2, 1] = 1
        t += run + 1
    for fast in (1, 2, 4, 7):
        check_windows(seq, 10, spb=4, bpp=2, fast=fast)


# ----------------------------------------------------------------------------- registered


def _last_drum_share(seq: np.ndarray, grid: MetricGrid) -> float:
    """Unbatched: the share of the hits that are on the last drum."""
    h = np.asarray(seq) > 0
    return float(h[:, -1].sum() / h.sum()) if h.any() else 0.0


def _bars(seq: np.ndarray, grid: MetricGrid) -> np.ndarray:
    """Batched, a vector: complete bars and drums."""
    shape = np.shape(seq)
    return np.broadcast_to(
        np.array([shape[-2] // grid.steps_per_bar, shape[-1]], np.float64), (*shape[:-2], 2)
    )


def test_registered_metrics_built_in_and_computed_per_window() -> None:
    specs = {
        **registered_metrics(),  # swing, polyrhythm, drum_periods: from the tables
        "share": MetricSpec("share", _last_drum_share, ("step", "phrase", "section")),
        "bars": MetricSpec("bars", _bars, ("bar", "section"), batched=True),
        "swing_too": MetricSpec("swing_too", swing_metric, ("step",), batched=True),
    }
    seq = corpus(80, 4, 0.35, seed=5)
    check_windows(seq, 48, stride=5, spb=8, bpp=2, specs=specs)
    check_windows(seq, 48, spb=8, bpp=2, sections=[(3, 20), (20, 48)], specs=specs)
    swing = corpus(96, 3, 0.0, seed=0)
    swing[3::4, 0] = 1  # hats on the swung 16th of every beat
    check_windows(swing, 64, stride=3, specs=registered_metrics())


# ----------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 90), st.integers(1, 6)),
        elements=st.sampled_from([0.0, 0.0, 0.0, 0.25, 1.0]),
    ),
    st.data(),
)
def test_random_sequences_and_settings(seq: np.ndarray, data: st.DataObject) -> None:
    length = data.draw(st.integers(1, len(seq)), label="length")
    stride = data.draw(st.integers(1, 4), label="stride")
    spb, bpp = data.draw(st.sampled_from([(1, 1), (2, 3), (3, 2), (4, 2), (16, 4)]), label="grid")
    fast = data.draw(st.integers(1, 5), label="fast_threshold")
    sections = data.draw(
        st.none()
        | st.lists(st.tuples(st.integers(-5, 60), st.integers(0, 40)), max_size=3).map(
            lambda xs: [(s, s + n) for s, n in xs]
        ),
        label="sections",
    )
    specs = data.draw(st.sampled_from([None, {}]), label="specs")
    check_windows(seq, length, stride, spb, bpp, sections, fast, specs)


# ----------------------------------------------------------------------------- interface


def test_fill_writes_every_value_and_rejects_other_starts() -> None:
    seq = corpus(60, 3, 0.3, seed=7)
    tables = WindowTables(seq, 20, 5, 4, 2, specs={})
    out = np.full(tables.layout.size, np.nan, np.float32)
    tables.fill(10, out)
    assert np.isfinite(out).all()
    for start in (-5, 3, 45):
        with pytest.raises(ValueError, match="no window starts"):
            tables.fill(start, out)
    assert tables.nbytes > 0 and tables.spans == [(0, 16), (16, 20)]


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"length": 0}, "length"),
        ({"length": 61}, "length"),
        ({"stride": 0}, "stride"),
        ({"steps_per_bar": 0}, "steps_per_bar"),
        ({"fast_threshold": 0}, "fast_threshold"),
    ],
)
def test_invalid_arguments(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WindowTables(corpus(60, 3, 0.3, seed=0), **{"length": 20, **kw})


def test_supported_sizes() -> None:
    assert WindowTables.supports(15, 65535) and not WindowTables.supports(16, 10)
    assert not WindowTables.supports(9, 65536) and not WindowTables.supports(9, 0)
    with pytest.raises(ValueError, match="drums"):
        WindowTables(np.zeros((10, 16), np.float32), 5)
    with pytest.raises(ValueError, match="steps, drums"):
        WindowTables(np.zeros((2, 10, 3), np.float32), 5)
