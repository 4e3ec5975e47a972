"""dataset.registry: registering metrics, listing them, computing them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dataset import metrics
from dataset.registry import (
    BUILTIN_KEYS,
    LEVELS,
    MetricGrid,
    MetricSpec,
    compute_metrics,
    register_metric,
    registered_metrics,
    unregister_metric,
)


def _open_hihat(seq: np.ndarray, grid: MetricGrid) -> float:
    """Share of steps with drum 3 (the open hi-hat of the 9-class set), one sequence."""
    h = np.asarray(seq) > 0
    return float(h[:, 3].mean()) if len(h) and h.shape[1] > 3 else 0.0


@pytest.fixture()
def clean():
    """Remove whatever a test registers; put back the built-ins it removes."""
    before = registered_metrics()
    yield
    for name in list(registered_metrics()):
        if name not in before:
            unregister_metric(name)
    for name, spec in before.items():
        register_metric(name, spec.fn, levels=spec.levels, batched=spec.batched, replace=True)


def test_builtins_are_registered():
    specs = registered_metrics()
    assert specs["swing"].levels == ("bar", "song") and specs["swing"].batched
    assert specs["polyrhythm"].levels == ("phrase", "song")
    assert specs["drum_periods"].levels == ("song",)
    assert list(registered_metrics("section")) == []
    assert set(BUILTIN_KEYS) == set(LEVELS)


def test_register_call_and_decorator(clean):
    assert register_metric("open_hats", _open_hihat, levels=("step", "song")) is _open_hihat

    @register_metric("first_hit", levels="bar", batched=True)
    def first_hit(seq, grid):
        return (np.asarray(seq) > 0)[..., :1, :].any(axis=(-1, -2)).astype(float)

    assert first_hit(np.ones((2, 4, 3)), MetricGrid()).tolist() == [1.0, 1.0]
    specs = registered_metrics()
    assert list(specs)[-2:] == ["open_hats", "first_hit"]
    assert specs["open_hats"] == MetricSpec("open_hats", _open_hihat, ("step", "song"), False)
    assert list(registered_metrics("bar")) == ["swing", "first_hit"]
    assert "open_hats" in registered_metrics("song") and "open_hats" not in registered_metrics(
        "bar"
    )
    removed = unregister_metric("open_hats")
    assert removed.fn is _open_hihat and "open_hats" not in registered_metrics()


def test_levels_are_put_in_the_seeds_order(clean):
    register_metric("x", _open_hihat, levels=["song", "step", "section"])
    assert registered_metrics()["x"].levels == ("step", "section", "song")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"name": ""}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "_private"}, "name"),
        ({"name": 3}, "name"),
        ({"levels": ()}, "levels"),
        ({"levels": ("beat",)}, "levels"),
        ({"levels": ("bar", "bar")}, "levels"),
        ({"name": "avg_hits", "levels": ("step",)}, "built-in"),
        ({"name": "dense_frac", "levels": ("section",)}, "built-in"),
        ({"name": "swing"}, "registered already"),
    ],
)
def test_bad_registrations_raise(clean, kw, match):
    args = {"name": "ok", "levels": ("song",), **kw}
    with pytest.raises(ValueError, match=match):
        register_metric(args.pop("name"), _open_hihat, **args)


def test_name_of_another_level_and_replace(clean):
    # "avg_hits" is built in at step / section / song, not at bar
    register_metric("avg_hits", _open_hihat, levels=("bar",))
    register_metric("swing", _open_hihat, levels=("song",), replace=True)
    assert registered_metrics()["swing"].fn is _open_hihat
    with pytest.raises(TypeError, match="callable"):
        register_metric("nope", 3)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="nope"):
        unregister_metric("nope")


def test_compute_metrics(clean):
    register_metric("open_hats", _open_hihat, levels=("section",))
    seq = np.zeros((8, 9))
    seq[::2, 3] = 1
    got = compute_metrics(seq, MetricGrid(4, 2))
    assert list(got) == list(registered_metrics())
    assert got["open_hats"] == 0.5 and got["open_hats"].dtype == np.float64
    assert got["swing"] == metrics.swing(seq, 4)
    assert list(compute_metrics(seq, level="section")) == ["open_hats"]
    assert list(compute_metrics(seq, names=["polyrhythm"])) == ["polyrhythm"]
    with pytest.raises(KeyError, match="missing"):
        compute_metrics(seq, names=["missing"])
    only = {"o": MetricSpec("o", _open_hihat, ("step",))}
    assert list(compute_metrics(seq, specs=only)) == ["o"]
    assert compute_metrics(seq, specs=only, level="song") == {}
    # a batch: per-sequence metrics are looped, batched ones called once
    stack = np.stack([seq, np.zeros_like(seq), seq])
    batch = compute_metrics(stack, MetricGrid(4, 2))
    assert batch["open_hats"].tolist() == [0.5, 0.0, 0.5]
    np.testing.assert_array_equal(batch["drum_periods"][0], metrics.drum_periods(seq, 4))
    assert compute_metrics(stack[:0])["open_hats"].shape == (0,)
    assert compute_metrics(stack[:0])["drum_periods"].shape == (0, 9)


def test_bad_metric_values_are_caught(clean):
    register_metric("nan", lambda s, g: np.nan, levels=("song",))
    register_metric("unbatched", lambda s, g: 1.0, levels=("song",), batched=True)
    with pytest.raises(ValueError, match="'nan'.*finite"):
        compute_metrics(np.zeros((4, 2)), names=["nan"])
    with pytest.raises(ValueError, match="'unbatched'.*batch shape"):
        compute_metrics(np.zeros((3, 4, 2)), names=["unbatched"])
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(np.zeros(4))


@settings(max_examples=40, deadline=None)
@given(
    stack=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(0, 40), st.integers(1, 9)),
        elements=st.sampled_from([0.0, 0.5, 1.0]),
    ),
    spb=st.sampled_from([4, 8, 16, 24]),
)
def test_builtins_batched_equal_per_sequence(stack, spb):
    grid = MetricGrid(spb, 2)
    batch = compute_metrics(stack, grid)
    for i in range(len(stack)):
        single = compute_metrics(stack[i], grid)
        for name, value in single.items():
            np.testing.assert_array_equal(batch[name][i], value, err_msg=name)
            assert np.all(np.isfinite(value))


def test_doctests(clean):
    import doctest

    from dataset import registry

    result = doctest.testmod(registry, verbose=False)
    assert result.attempted > 0 and result.failed == 0
    assert "kick_share" not in registered_metrics()
