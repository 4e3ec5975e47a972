"""agents/evaluation/heldout.py: windows stratified by file, the headline, its standard error."""

from __future__ import annotations

import dataclasses
import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.evaluation import heldout
from agents.evaluation.heldout import (
    HeldoutConfig,
    evaluate,
    heldout_dataset,
    reference,
    stratified_counts,
)


def test_doctests():
    assert doctest.testmod(heldout, verbose=False).failed == 0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 120), min_size=1, max_size=40), st.integers(0, 600),
       st.booleans())  # fmt: skip
def test_stratified_counts_allocate_every_draw(sizes, total, cap):
    if cap:
        total = min(total, sum(sizes))
    k = stratified_counts(sizes, total, cap=cap)
    assert k.shape == (len(sizes),) and k.sum() == total and (k >= 0).all()
    if total >= len(sizes):
        assert (k >= 1).all()  # every file represented
    if cap:
        assert (k <= np.array(sizes)).all()
    assert np.array_equal(k, stratified_counts(sizes, total, cap=cap))  # deterministic


def test_stratified_counts_are_proportional():
    assert stratified_counts([10, 20, 30], 12).tolist() == [2, 4, 6]
    assert stratified_counts([1, 1, 98], 10).tolist() == [1, 1, 8]  # the minimum comes first
    assert stratified_counts([5, 5], 3).tolist() == [2, 1]  # ties: the earlier file


def test_stratified_counts_name_bad_input():
    with pytest.raises(ValueError, match="size >= 1"):
        stratified_counts([3, 0], 2)
    with pytest.raises(ValueError, match="total"):
        stratified_counts([3], -1)
    with pytest.raises(ValueError, match="without replacement"):
        stratified_counts([1, 2], 4, cap=True)


@pytest.mark.parametrize("changes, field", [
    ({"eval_resamples": 1}, "eval_resamples"), ({"stratify": "yes"}, "stratify"),
])  # fmt: skip
def test_config_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        HeldoutConfig(**changes)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One long file (drum 0) and three short ones (drums 1, 2, 3): 4 bars each short file,
    so a uniform draw of windows nearly always misses some of them."""
    folder = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    for i, bars in enumerate((40, 4, 4, 4)):
        seq = (rng.random((16 * bars, 9)) < 0.1).astype(np.float32)
        seq[:, i] = 1.0  # the file's mark, in every step of its primers
        np.savez(folder / f"f{i}.npz", sequence=seq)
    return folder


def recorder(seen: set[int]):
    """A policy that notes which file each episode's primer comes from, and plays silence."""

    def act(obs):
        context = np.asarray(obs["context"]).reshape(len(obs["context"]), -1, 9)
        seen.update(int(np.argmax(c.sum(axis=0)[:4])) for c in context)
        return np.zeros((len(context), 9), np.int8)

    return act


def test_stratified_evaluation_plays_every_file(files):
    cfg = HeldoutConfig(eval_episodes=8, baseline_splits=1, eval_resamples=20)
    data = heldout_dataset(cfg, files)
    ref = reference(cfg, data)
    assert ref.files == 4 and ref.windows == 16
    seen: set[int] = set()
    out = evaluate(recorder(seen), cfg, cfg.env_kwargs(data), ref)
    assert seen == {0, 1, 2, 3}
    assert math.isfinite(out["headline_se"]) and out["headline_se"] >= 0
    seen_env: set[int] = set()
    plain = dataclasses.replace(cfg, stratify=False)
    evaluate(recorder(seen_env), plain, plain.env_kwargs(data), reference(plain, data))
    assert seen_env < {0, 1, 2, 3}  # 8 uniform draws of 43 windows miss a 1-window file


def test_evaluation_reports_a_standard_error_and_repeats(tmp_path):
    from agents.evaluation.rollout import loop_policy
    from dataset.synthetic import default_corpus

    for i, seq in enumerate(default_corpus()[:24]):
        np.savez(tmp_path / f"s{i:02d}.npz", sequence=seq)
    cfg = HeldoutConfig(eval_episodes=24, baseline_splits=2, eval_resamples=30)
    data = heldout_dataset(cfg, tmp_path)
    ref = reference(cfg, data)
    assert set(ref.headline_se) == set(ref.headline)
    assert ref.headline_se["ceiling"] > 0 and all(v >= 0 for v in ref.headline_se.values())
    loop = loop_policy(9, cfg.context_steps, cfg.steps_per_bar)
    one = evaluate(loop, cfg, cfg.env_kwargs(data), ref)
    assert 0 < one["headline_se"] < 0.2 and one["headline_draw_std"] == 0.0
    assert evaluate(loop, cfg, cfg.env_kwargs(data), ref) == one
    two = evaluate(loop, cfg, cfg.env_kwargs(data), ref, draws=2)
    assert math.isfinite(two["headline_se"]) and two["headline_draw_std"] >= 0
