"""Tests for agents/evaluation/alignment.py: the players, the returns, the default reward.

The property (``DESIGN.md``, "The reward's first property"): under the default shaping, on
held-out real data, the real continuation has the highest mean return among the reference
players and the players' returns rank like their evaluation scores (Spearman >= 0.8), with
unnormalised returns and with one normaliser warmed on the mix of players, then frozen. The
tests assert the ranking, not a number, and the negative control shows they can fail: under
``hierarchical`` (with its mode-seeking ``step`` term) the per-position mode beats real drumming.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.evaluation import alignment as al
from agents.evaluation.heldout import HeldoutConfig
from drum_env.rewards import DEFAULT_SHAPING, SHAPINGS, TERMS

GROOVE_DIR = Path(__file__).resolve().parents[3] / "shared/data/groove-midi"
SPB = 16


def _env_kwargs(shaping: str = "aligned-raw") -> dict:
    return HeldoutConfig(shaping=shaping).env_kwargs()


# --------------------------------------------------------------------------- pieces


def test_spearman_hand_worked():
    assert al.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert al.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one adjacent swap of 4: 1 - 6 * 2 / (4 * 15) = 0.8
    assert al.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties take the average rank; a constant side gives 0
    assert al.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(np.sqrt(3) / 2)
    assert al.spearman([1, 1, 1], [1, 2, 3]) == 0.0


def test_players_play_what_they_say():
    kw = _env_kwargs()
    real = al.play_episodes(al.real_continuation(), kw, 4, seed=3)
    np.testing.assert_array_equal(real.canvases, real.references)
    loop = al.play_episodes(al.loop_primer(), kw, 4, seed=3)
    np.testing.assert_array_equal(loop.references, real.references)  # same seed, same windows
    p = loop.prompt_steps
    for start in range(p, loop.canvases.shape[1], SPB):
        np.testing.assert_array_equal(loop.canvases[:, start : start + SPB], real.canvases[:, :SPB])
    mode = al.play_episodes(al.per_position_mode(), kw, 4, seed=3)
    bars = mode.canvases[:, p:].reshape(4, -1, SPB, mode.canvases.shape[-1])
    assert (bars == bars[:, :1]).all()  # one bar, repeated
    expected = real.references.reshape(4, -1, SPB, bars.shape[-1]).mean(axis=1) > 0.5
    np.testing.assert_array_equal(bars[:, 0], expected)
    quiet = al.play_episodes(al.silence(), kw, 4, seed=3)
    assert not quiet.canvases[:, p:].any()
    # raw terms: closed exactly where documented, 0 elsewhere
    step, variety = TERMS.index("step"), TERMS.index("variety")
    assert quiet.closed[:, :, step].all()
    ends = np.arange(p + 1, quiet.canvases.shape[1] + 1)
    np.testing.assert_array_equal(quiet.closed[0, :, variety], ends % SPB == 0)
    assert (quiet.raw[~quiet.closed] == 0.0).all()


def test_seeded_players_repeat():
    kw = _env_kwargs()
    for make in (al.density_random(), al.random_bars_with_variations(), al.loop_with_variations()):
        a = al.play_episodes(make, kw, 4, seed=5, train_rates=np.full(9, 0.2))
        b = al.play_episodes(make, kw, 4, seed=5, train_rates=np.full(9, 0.2))
        np.testing.assert_array_equal(a.canvases, b.canvases)


@pytest.mark.parametrize("shaping", ["aligned-raw", "hierarchical-raw"])
def test_unnormalised_returns_are_the_envs_returns(shaping):
    from agents.evaluation.rollout import rollout_episodes

    kw = _env_kwargs(shaping)
    eps = al.play_episodes(al.silence(), kw, 6, seed=9)
    env = rollout_episodes(lambda obs: np.zeros((len(obs["target"]), 9), np.int8), kw,
                           episodes=6, num_envs=6, seed=9)  # fmt: skip
    np.testing.assert_allclose(al.episode_returns(eps, SHAPINGS[shaping]), env.returns, atol=1e-9)


def test_frozen_normaliser_counts_every_closed_term_of_the_mix():
    kw = _env_kwargs()
    plays = [al.play_episodes(make, kw, 4, seed=1)
             for make in (al.real_continuation(), al.silence())]  # fmt: skip
    norm = al.warm_normalizer(plays)
    np.testing.assert_array_equal(norm.count, sum(ep.closed.sum(axis=(0, 1)) for ep in plays))
    closed = np.concatenate([ep.raw[ep.closed[..., 1]][:, 1] for ep in plays])  # the bar term
    assert norm.mean[1] == pytest.approx(closed.mean())
    # normalised returns are increasing in every raw term: real (all aligned terms 0) is first
    ret = [al.episode_returns(ep, SHAPINGS["aligned"], norm).mean() for ep in plays]
    assert ret[0] > ret[1]


# --------------------------------------------------------------------------- the property


def _assert_aligned(table: al.AlignmentTable, shaping: str) -> None:
    s = table.summaries[shaping]
    detail = f"\n{al.to_markdown(table)}"
    assert s.real_first, f"{shaping}: {s.best} outscores the real continuation{detail}"
    assert s.spearman_raw >= 0.8, f"{shaping}: unnormalised Spearman {s.spearman_raw}{detail}"
    assert s.spearman_norm >= 0.8, f"{shaping}: normalised Spearman {s.spearman_norm}{detail}"
    assert s.aligned()


def _assert_mode_beats_real(table: al.AlignmentTable, shaping: str) -> None:
    rows = {r.player: r for r in table.rows if r.shaping == shaping}
    assert rows["mode"].raw_return > rows["real"].raw_return
    assert not table.summaries[shaping].aligned()


def test_default_shaping_is_aligned_on_the_builtin_corpus():
    """The reference players without a pretrained policy, plus the probes; 32 episodes x 2."""
    table = al.alignment_table(
        [DEFAULT_SHAPING, "aligned-raw", "hierarchical"], HeldoutConfig(),
        probes=al.probe_players(), episodes=32, seeds=(12_345, 777),
    )  # fmt: skip
    assert DEFAULT_SHAPING == "aligned"
    _assert_aligned(table, DEFAULT_SHAPING)
    _assert_aligned(table, "aligned-raw")
    _assert_mode_beats_real(table, "hierarchical")  # the control: the test can fail
    md = al.to_markdown(table)
    assert "| real | 1.00 |" in md and "(loop-varied)" in md


def _pretrained(data: str | None, out: Path, steps: int) -> Path:
    from agents.training.pretrain import PretrainConfig, pretrain

    return pretrain(PretrainConfig(
        data=data, seq_len=64, context_steps=16, epochs=10_000, max_steps=steps, seed=0,
        amp=False, device="cpu", out=str(out), progress=False,
    )).policy_path  # fmt: skip


@pytest.mark.slow
def test_default_shaping_is_aligned_with_a_pretrained_policy(tmp_path):
    """The built-in corpus with every reference player: a policy pretrained for 300 steps
    (the benchmark's default) on the training split, sampled and thresholded."""
    from agents.evaluation.heldout import write_split

    config = HeldoutConfig()
    split = write_split(config, tmp_path)
    policy = _pretrained(str(split.train_dir), tmp_path / "pretrain", 300)
    table = al.alignment_table(
        [DEFAULT_SHAPING, "aligned-raw", "hierarchical"], config,
        players=al.reference_players(policy), probes=al.probe_players(), episodes=64,
        seeds=(12_345, 777), split=split,
    )  # fmt: skip
    _assert_aligned(table, DEFAULT_SHAPING)
    _assert_aligned(table, "aligned-raw")
    _assert_mode_beats_real(table, "hierarchical")


@pytest.fixture(scope="module")
def groove_npz(tmp_path_factory):
    if not (GROOVE_DIR / "info.csv").is_file():
        pytest.skip(f"Groove MIDI subset not found at {GROOVE_DIR} (info.csv and drummer folders)")
    from dataset.midi import convert_folder

    out = tmp_path_factory.mktemp("groove") / "npz"
    report = convert_folder(GROOVE_DIR, out)
    assert report.converted, "no Groove file converted"
    return out


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize(
    "split", [{"heldout_players": ("drummer8", "drummer9")}, {"split_csv": "info.csv"}],
    ids=["players-8-9-held-out", "info-csv-split"],
)  # fmt: skip
def test_default_shaping_is_aligned_on_groove(groove_npz, tmp_path, split):
    """Real drummers: hold out drummers 8 and 9 (never heard in training), or the CSV's test
    split; every reference player, with a policy pretrained for 1,000 steps on the rest."""
    from agents.evaluation.heldout import write_split

    if "split_csv" in split:
        split = {"split_csv": str(GROOVE_DIR / "info.csv")}
    config = HeldoutConfig(data=str(groove_npz), **split)
    parts = write_split(config, tmp_path)
    policy = _pretrained(str(parts.train_dir), tmp_path / "pretrain", 1_000)
    table = al.alignment_table(
        [DEFAULT_SHAPING, "aligned-raw", "hierarchical"], config,
        players=al.reference_players(policy), probes=al.probe_players(), episodes=64,
        seeds=(12_345, 777), split=parts,
    )  # fmt: skip
    _assert_aligned(table, DEFAULT_SHAPING)
    _assert_aligned(table, "aligned-raw")
    _assert_mode_beats_real(table, "hierarchical")
