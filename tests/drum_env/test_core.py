"""Tests for drum_env/core.py's state: every buffer is declared, saved and restored."""

from __future__ import annotations

import numpy as np
import pytest

from drum_env.base import DrumComposeArgs
from drum_env.core import ComposeCore

SMALL = {"seq_len": 64, "prompt_bars": 1}
EPISODE = 64 - 16

# The core's attributes that are neither state buffers nor constant tables, and why.
NOT_BUFFERS = {
    "config",  # the frozen task
    "data",  # the reference windows (the env's arguments)
    "num_envs",  # fixed at construction, checked by load_state_dict
    "normalizer",  # saved by the env that owns it (it may be shared)
    "_ref",  # the reference features: saved as "ref_features"
    "_feature_cache",  # recomputed deterministically on use
}


def make_core(num_envs: int = 3, shaping: str = "hierarchical", **kwargs) -> ComposeCore:
    kw = {**SMALL, **kwargs}
    config, data = DrumComposeArgs(
        seq_len=kw["seq_len"], prompt_bars=kw["prompt_bars"], shaping=shaping
    ).build()
    return ComposeCore(config, data, num_envs)


def run(core: ComposeCore, steps: int, seed: int = 0) -> None:
    """Reset every sub-env and write ``steps`` random steps, resetting ended episodes."""
    rng = np.random.default_rng(seed)
    n = len(core.data.windows)
    core.reset(np.arange(core.num_envs), rng.integers(n, size=core.num_envs))
    for _ in range(steps):
        result = core.step(rng.random((core.num_envs, core.config.num_drums)) < 0.3)
        ended = np.flatnonzero(result.terminated)
        core.reset(ended, rng.integers(n, size=len(ended)))


def test_every_attribute_is_declared():
    """A new buffer must be registered in STATE_BUFFERS (saved) or CONSTANT_TABLES (not)."""
    core = make_core()
    run(core, 5)
    declared = set(ComposeCore.STATE_BUFFERS) | set(ComposeCore.CONSTANT_TABLES)
    assert not set(ComposeCore.STATE_BUFFERS) & set(ComposeCore.CONSTANT_TABLES)
    undeclared = set(vars(core)) - declared - NOT_BUFFERS
    assert not undeclared, (
        f"ComposeCore attribute(s) {sorted(undeclared)} are neither in STATE_BUFFERS (saved by "
        "state_dict) nor in CONSTANT_TABLES: register them"
    )
    arrays = {k for k, v in vars(core).items() if isinstance(v, np.ndarray)}
    assert arrays - declared == set(), sorted(arrays - declared)
    for name in ComposeCore.STATE_BUFFERS:
        assert isinstance(getattr(core, name), np.ndarray), name
        assert getattr(core, name).shape[0] == core.num_envs, name  # batch axis first


def test_state_buffers_exist_before_the_first_reset():
    core = make_core()
    for name in ComposeCore.STATE_BUFFERS:
        assert isinstance(getattr(core, name), np.ndarray), name


def test_constant_tables_are_not_written():
    fresh, used = make_core(), make_core()
    run(used, 2 * (EPISODE + 1) + 7)
    for name in ComposeCore.CONSTANT_TABLES:
        a, b = getattr(fresh, name), getattr(used, name)
        if isinstance(a, list):
            assert len(a) == len(b), name
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_core_round_trip_continues_bitwise():
    a = make_core()
    run(a, 20, seed=1)
    b = make_core()
    b.load_state_dict(a.state_dict())
    b.normalizer.load_state_dict(a.normalizer.state_dict())
    for k, v in a.observe().items():
        np.testing.assert_array_equal(v, b.observe()[k], err_msg=k)
    rng = np.random.default_rng(2)
    for _ in range(EPISODE + 3):
        act = rng.random((3, 9)) < 0.3
        ra, rb = a.step(act), b.step(act)
        for x, y in zip(ra, rb):
            np.testing.assert_array_equal(x, y)
        ended = np.flatnonzero(ra.terminated)
        windows = rng.integers(len(a.data.windows), size=len(ended))
        a.reset(ended, windows)
        b.reset(ended, windows)
        for k, v in a.observe().items():
            np.testing.assert_array_equal(v, b.observe()[k], err_msg=k)


def test_state_is_a_copy():
    core = make_core()
    run(core, 3)
    state = core.state_dict()
    canvas = state["buffers"]["canvas"].copy()
    run(core, 10, seed=5)
    np.testing.assert_array_equal(state["buffers"]["canvas"], canvas)


def test_state_of_a_core_never_reset():
    core = make_core()
    state = core.state_dict()
    assert state["ref_features"] is None
    used = make_core()
    run(used, 4)
    used.load_state_dict(state)
    with pytest.raises(RuntimeError, match="reset"):
        used.observe()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.update(num_envs=2), "2 sub-envs"),
        (lambda s: s.update(version=99), "version 99"),
        (lambda s: s.update(format="Other"), "'Other'"),
        (lambda s: s.pop("buffers"), "missing key.*buffers"),
        (lambda s: s["buffers"].pop("_raw_hist"), "missing key.*_raw_hist"),
        (lambda s: s["buffers"].update(extra=np.zeros(3)), "unknown key.*extra"),
        (lambda s: s["buffers"].update(t=np.zeros(2, np.int64) + 16), "'t'.*\\(2,\\)"),
        (lambda s: s["buffers"].update(canvas=s["buffers"]["canvas"] * 1.0), "canvas.*float64"),
        (lambda s: s["buffers"].update(t=s["buffers"]["t"] + 100), "'t'.* must lie"),
        (lambda s: s["buffers"]["window_ids"].fill(-1), "window_ids"),
        (lambda s: s["task"].update(seq_len=48), "seq_len=48"),
        (lambda s: s["ref_features"]["section"].pop(), "section"),
        (lambda s: s["ref_features"].update(song=s["ref_features"]["song"][:, :3]), "song"),
        (lambda s: s["ref_features"].pop("bar"), "missing key.*bar"),
    ],
    ids=["num_envs", "version", "format", "no-buffers", "no-buffer", "extra", "shape",
         "dtype", "t-range", "window-range", "task", "sections", "ref-shape", "no-ref"],
)  # fmt: skip
def test_load_errors_name_the_buffer_and_change_nothing(edit, match):
    core = make_core()
    run(core, 4)
    state = core.state_dict()
    edit(state)
    target = make_core()
    run(target, 7, seed=3)
    before = target.state_dict()
    with pytest.raises(ValueError, match=match):
        target.load_state_dict(state)
    after = target.state_dict()
    for name in ComposeCore.STATE_BUFFERS:
        np.testing.assert_array_equal(before["buffers"][name], after["buffers"][name])
    np.testing.assert_array_equal(before["ref_features"]["song"], after["ref_features"]["song"])


# --------------------------------------------------------------------------- info for people


def _plain_leaves(value: object) -> list[object]:
    """Every leaf of nested dicts / lists that is not a plain float, int (bool) or str."""
    if isinstance(value, dict):
        return [bad for v in value.values() for bad in _plain_leaves(v)]
    if isinstance(value, list):
        return [bad for v in value for bad in _plain_leaves(v)]
    return [] if type(value) in (float, int, bool, str) else [value]


def test_info_dicts_for_people_hold_plain_python_numbers():
    """The single env's and the band's infos print as ``3.35``, not ``np.float64(3.35)``; the
    vector env's per-key arrays (Gymnasium's layout, for programs) stay arrays."""
    import gymnasium as gym

    import drum_env  # noqa: F401  (registers DrumCompose-v0)
    from dataset import metrics
    from drum_env import band

    env = gym.make("DrumCompose-v0", **SMALL)
    obs, info = env.reset(seed=3)
    infos = [info]
    rng = np.random.default_rng(0)
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step((rng.random(9) < 0.3).astype(np.int64))
        infos.append(info)
    episode = info["episode_metrics"]
    assert all(_plain_leaves(i) == [] for i in infos), [_plain_leaves(i) for i in infos]
    assert "np." not in repr(episode) and "array" not in repr(info)
    expected = metrics.song_metrics(env.unwrapped.canvas, 16, 4)  # the same numbers
    assert episode == {k: float(expected[k]) for k in episode}

    b = band.parallel_env(**SMALL)
    _, infos_b = b.reset(seed=3)
    assert _plain_leaves(infos_b) == []
    while b.agents:
        _, _, _, _, infos_b = b.step({a: int(rng.random() < 0.3) for a in b.agents})
        assert _plain_leaves(infos_b) == []
    assert "np." not in repr(infos_b)
    assert infos_b["kick"]["episode_metrics"]["song/avg_hits"] == pytest.approx(
        float(metrics.song_metrics(b.canvas, 16, 4)["song/avg_hits"]), abs=0)

    venv = gym.make_vec("DrumCompose-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        **SMALL)  # fmt: skip
    venv.reset(seed=3)
    for _ in range(EPISODE):
        *_, vinfo = venv.step(np.zeros((2, 9), dtype=np.int64))
    assert isinstance(vinfo["episode_metrics"]["song/avg_hits"], np.ndarray)


@pytest.mark.parametrize("ended", [[0, 1, 2, 3, 4], [1, 3]])
def test_episode_sums_are_the_dense_sums_bit_for_bit(ended):
    """The normaliser's sums skip the steps where a term cannot close: the same bits."""
    core = make_core(num_envs=5, shaping="hierarchical", seq_len=128, prompt_bars=1)
    rng = np.random.default_rng(4)
    core.reset(np.arange(5), rng.integers(len(core.data.windows), size=5))
    for _ in range(core.config.episode_steps):
        t = int(core.t[0])
        actions = rng.random((5, 9)) < 0.3
        actions[:2] = core.reference[:2, t]  # the real continuation: terms of -0.0
        core.step(actions)
    raw, closed = core._raw_hist[ended], core._closed_hist[ended]
    assert (raw == 0).any() and np.signbit(raw[closed & (raw == 0)]).any()
    dense = (closed.sum(axis=(0, 1)), raw.sum(axis=(0, 1)), np.square(raw).sum(axis=(0, 1)))
    for mine, expected in zip(core._episode_sums(np.array(ended)), dense):
        assert mine.dtype == expected.dtype
        assert mine.tobytes() == expected.tobytes()
