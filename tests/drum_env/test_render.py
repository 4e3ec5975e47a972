"""Tests for drum_env/render.py: text grid, piano-roll array and PNG."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from drum_env.render import (
    ACCENT_VELOCITY,
    DEFAULT_DRUM_NAMES,
    default_drum_names,
    drum_editor_order,
    piano_roll_figure,
    render_ansi,
    render_rgb,
    save_piano_roll_png,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def random_sequence(steps: int = 64, drums: int = 9, seed: int = 0, density: float = 0.3):
    rng = np.random.default_rng(seed)
    hits = rng.random((steps, drums)) < density
    vel = rng.uniform(0.05, 1.0, size=(steps, drums))
    return (hits * vel).astype(np.float32)


def grid_rows(text: str, num_drums: int) -> list[str]:
    """The drum rows of an ansi grid (after the header)."""
    return text.splitlines()[1 : 1 + num_drums]


def step_chars(row: str) -> str:
    """The step characters of a grid row, bar lines and name removed."""
    return row[row.index("|") :].replace("|", "")


# --------------------------------------------------------------------------- names


def test_default_drum_names():
    assert default_drum_names(9) == DEFAULT_DRUM_NAMES
    assert DEFAULT_DRUM_NAMES[0] == "kick" and DEFAULT_DRUM_NAMES[-1] == "ride"
    assert default_drum_names(4) == ("drum0", "drum1", "drum2", "drum3")
    with pytest.raises(ValueError, match="num_drums"):
        default_drum_names(0)


# --------------------------------------------------------------------------- ansi


def test_ansi_hand_worked_example():
    seq = np.zeros((8, 2), dtype=np.float32)
    seq[[0, 5], 0] = 0.5
    seq[[2, 6], 1] = 1.0
    text = render_ansi(seq, 4, prompt_steps=4, drum_names=["kick", "snare"], position=6)
    expected = [
        "  bar |1   |2   |",
        " kick |o---|.x..|",
        "snare |--O-|..X.|",
        "              ^ step 6/8",
    ]
    assert text == "\n".join(expected) + "\n"


def test_ansi_rows_and_newline():
    seq = random_sequence(48, 9)
    text = render_ansi(seq)
    lines = text.splitlines()
    assert text.endswith("\n")
    assert len(lines) == 1 + 9  # header + drums, no cursor
    assert lines[0].lstrip().startswith("bar")
    for name, row in zip(DEFAULT_DRUM_NAMES, lines[1:], strict=True):
        assert row.lstrip().startswith(name + " ")
    # Every line has the grid in the same columns.
    bar_cols = {i for i, c in enumerate(lines[1]) if c == "|"}
    for line in lines:
        assert {i for i, c in enumerate(line) if c == "|"} == bar_cols
    assert len(render_ansi(seq, position=10).splitlines()) == 1 + 9 + 1


def test_ansi_default_names_other_drum_counts():
    rows = grid_rows(render_ansi(random_sequence(16, 3)), 3)
    assert [r.split()[0] for r in rows] == ["drum0", "drum1", "drum2"]


@pytest.mark.parametrize("steps, spb, prompt", [(64, 16, 16), (50, 16, 0), (30, 4, 30), (7, 3, 5)])
def test_ansi_hit_counts_and_chars(steps, spb, prompt):
    seq = random_sequence(steps, 5, seed=steps)
    rows = grid_rows(render_ansi(seq, spb, prompt_steps=prompt), 5)
    for d, row in enumerate(rows):
        chars = step_chars(row)
        assert len(chars) == steps
        primer, composed = chars[:prompt], chars[prompt:]
        assert set(primer) <= set("-oO")
        assert set(composed) <= set(".xX")
        hits = seq[:, d] > 0
        accents = seq[:, d] >= ACCENT_VELOCITY
        n_hits = sum(c in "oOxX" for c in chars)
        assert n_hits == int(hits.sum())
        assert sum(c in "OX" for c in chars) == int(accents.sum())
        # Position by position, not only in total.
        assert np.array_equal(np.array([c in "oOxX" for c in chars]), hits)


def test_ansi_bar_lines_at_bar_boundaries():
    steps, spb = 40, 8  # 5 bars
    seq = random_sequence(steps, 2)
    row = grid_rows(render_ansi(seq, spb), 2)[0]
    start = row.index("|")
    # '|' before step 0, then after every spb steps (each bar takes spb + 1 columns).
    expected = [start + k * (spb + 1) for k in range(steps // spb + 1)]
    assert [i for i, c in enumerate(row) if c == "|"] == expected
    header = render_ansi(seq, spb).splitlines()[0]
    labels = header[start:].split("|")[1:-1]
    assert [lab.strip() for lab in labels] == ["1", "2", "3", "4", "5"]


def test_ansi_partial_last_bar():
    seq = random_sequence(20, 2)
    row = grid_rows(render_ansi(seq, 16), 2)[0]
    bars = row[row.index("|") :].split("|")[1:-1]
    assert [len(b) for b in bars] == [16, 4]


def test_ansi_cursor_column():
    seq = np.zeros((32, 2), dtype=np.float32)
    for position in (0, 5, 16, 31, 32):
        lines = render_ansi(seq, 16, position=position).splitlines()
        row, cursor = lines[1], lines[-1]
        col = cursor.index("^")
        first = row.index("|") + 1
        # The column of step t skips one '|' per completed bar before it.
        assert col == first + position + position // 16
        assert cursor.endswith(f"step {position}/32")


def test_ansi_max_steps_shows_the_tail_from_a_bar_line():
    seq = random_sequence(100, 3)
    text = render_ansi(seq, 16, max_steps=40)
    rows = grid_rows(text, 3)
    # last 40 steps start at step 60, widened back to the bar line at 48: bars 4..7.
    assert [lab.strip() for lab in text.splitlines()[0].split("|")[1:-1]] == ["4", "5", "6", "7"]
    for d, row in enumerate(rows):
        chars = step_chars(row)
        assert len(chars) == 100 - 48
        assert np.array_equal(np.array([c in "oOxX" for c in chars]), seq[48:, d] > 0)
    assert render_ansi(seq, 16, max_steps=1000) == render_ansi(seq, 16)
    cursor = render_ansi(seq, 16, max_steps=40, position=10).splitlines()[-1]
    assert "<" in cursor and "step 10/100" in cursor


def test_ansi_empty_and_binary():
    empty = render_ansi(np.zeros((0, 2), dtype=np.float32), position=0)
    assert empty.endswith("\n") and len(empty.splitlines()) == 4
    ones = np.ones((4, 1), dtype=np.float32)
    assert step_chars(grid_rows(render_ansi(ones, 4, prompt_steps=2), 1)[0]) == "OOXX"


def test_ansi_accepts_bool_and_lists():
    seq = [[True, False], [False, True]]
    a = render_ansi(seq, 2)
    b = render_ansi(np.array(seq, dtype=np.float32), 2)
    assert a == b


# --------------------------------------------------------------------------- rgb


def test_rgb_shape_dtype_and_determinism():
    seq = random_sequence(64, 9)
    img = render_rgb(seq, prompt_steps=16, position=40)
    assert img.dtype == np.uint8
    assert img.shape == (9 * 8, 64 * 4, 3)
    assert img.flags.c_contiguous
    again = render_rgb(seq.copy(), prompt_steps=16, position=40)
    assert np.array_equal(img, again)
    assert render_rgb(seq, cell=(3, 2)).shape == (27, 128, 3)
    assert render_rgb(seq, cell=(1, 1)).shape == (9, 64, 3)


def luminance(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def cell_pixel(img, drum, step, cell=(8, 4)):
    """A pixel inside the cell (away from the gap column and row)."""
    return img[drum * cell[0] + cell[0] // 2, step * cell[1] + cell[1] // 2]


def test_rgb_backgrounds_primer_composed_future():
    seq = np.zeros((64, 3), dtype=np.float32)
    img = render_rgb(seq, steps_per_bar=16, prompt_steps=16, position=40)
    primer = cell_pixel(img, 1, 3)
    composed = cell_pixel(img, 1, 20)
    future = cell_pixel(img, 1, 50)
    assert not np.array_equal(primer, composed)
    assert not np.array_equal(composed, future)
    assert not np.array_equal(primer, future)
    assert luminance(future) < luminance(composed)  # not yet composed: darker
    # Uniform within each region (bar lines aside).
    assert np.array_equal(cell_pixel(img, 0, 10), primer)
    assert np.array_equal(cell_pixel(img, 2, 39), composed)
    assert np.array_equal(cell_pixel(img, 2, 40), future)
    # Without a cursor every non-primer step is "composed".
    no_cursor = render_rgb(seq, prompt_steps=16)
    assert np.array_equal(cell_pixel(no_cursor, 1, 50), composed)


def test_rgb_hits_brighter_than_rests_and_velocity_ordered():
    steps = 32
    seq = np.zeros((steps, 2), dtype=np.float32)
    seq[[2, 20], 0] = 0.01  # softest possible hit, primer and composed
    seq[[3, 21], 0] = 0.5
    seq[[4, 22], 0] = 1.0
    img = render_rgb(seq, prompt_steps=16)
    for rest_step, steps_hit in ((10, (2, 3, 4)), (28, (20, 21, 22))):
        rest = luminance(cell_pixel(img, 0, rest_step))
        lum = [luminance(cell_pixel(img, 0, s)) for s in steps_hit]
        assert min(lum) > rest
        assert lum[0] < lum[1] < lum[2]
    # The hit colour differs between primer and composed.
    assert not np.array_equal(cell_pixel(img, 0, 4), cell_pixel(img, 0, 22))


def test_rgb_hit_mask_matches_sequence():
    seq = random_sequence(48, 9, seed=3)
    img = render_rgb(seq, prompt_steps=16, position=30)
    zero = render_rgb(np.zeros_like(seq), prompt_steps=16, position=30)
    # Sampling one inner pixel per cell recovers exactly the hits.
    inner = img[4::8, 2::4]
    inner_zero = zero[4::8, 2::4]
    assert inner.shape[:2] == (9, 48)
    changed = np.any(inner != inner_zero, axis=-1)
    assert np.array_equal(changed, seq.T > 0)


def test_rgb_bar_lines():
    seq = np.zeros((48, 2), dtype=np.float32)
    img = render_rgb(seq, steps_per_bar=16, cell=(8, 4))
    first_cols = img[4, ::4]  # left pixel column of every step, one row
    line = np.all(first_cols == first_cols[16], axis=-1)
    assert np.flatnonzero(line).tolist() == [16, 32]
    assert not np.array_equal(img[4, 16 * 4], img[4, 16 * 4 + 1])
    # A bar line never hides a hit, even with one-pixel cells.
    seq[16, 0] = 1.0
    tiny = render_rgb(seq, steps_per_bar=16, cell=(1, 1))
    tiny_rest = render_rgb(np.zeros_like(seq), steps_per_bar=16, cell=(1, 1))
    assert luminance(tiny[0, 16]) > luminance(tiny_rest[0, 16])


def test_rgb_is_fast():
    seq = random_sequence(512, 9)
    render_rgb(seq, prompt_steps=64, position=300)
    best = np.inf
    for _ in range(20):
        t0 = time.perf_counter()
        render_rgb(seq, prompt_steps=64, position=300)
        best = min(best, time.perf_counter() - t0)
    # Target < 1 ms; the bound is loose so a loaded CI machine does not flake.
    assert best < 0.01


# --------------------------------------------------------------------------- png


def test_png_written_and_readable(tmp_path):
    seq = random_sequence(64, 9)
    out = save_piano_roll_png(seq, tmp_path / "sub" / "roll.png", prompt_steps=16, title="t")
    assert out == tmp_path / "sub" / "roll.png"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 100
    # Only the PNG is left behind: the temporary file was moved into place.
    assert [p.name for p in out.parent.iterdir()] == ["roll.png"]


def test_png_overwrites_and_accepts_str_path(tmp_path):
    path = tmp_path / "roll.png"
    path.write_bytes(b"old")
    out = save_piano_roll_png(random_sequence(16, 3), str(path), drum_names=["a", "b", "c"])
    assert out == path
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_png_missing_matplotlib_names_the_package(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        save_piano_roll_png(random_sequence(16, 3), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_import_does_not_import_matplotlib():
    import subprocess

    code = (
        "import sys, drum_env.render; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# --------------------------------------------------------------------------- pictures

EDITOR_ROWS = ["hihat_closed", "hihat_open", "crash", "ride", "tom_high", "tom_mid", "tom_low",
               "snare", "kick"]  # fmt: skip


@pytest.mark.parametrize(
    "names, rows",
    [
        (DEFAULT_DRUM_NAMES, EDITOR_ROWS),
        (["kick", "cowbell", "snare"], ["cowbell", "snare", "kick"]),  # custom class on top
        (["drum0", "drum1", "drum2"], ["drum0", "drum1", "drum2"]),  # all custom: column order
        (["Bass Drum", "Low Tom", "High-Tom", "Hi-Hat Open", "Pedal Hi-Hat", "Crash 1", "custom",
          "floortom", "SideStick", "rimshot"],
         ["custom", "SideStick", "Pedal Hi-Hat", "Hi-Hat Open", "Crash 1", "High-Tom", "Low Tom",
          "floortom", "rimshot", "Bass Drum"]),
    ],
)  # fmt: skip
def test_drum_editor_order_from_the_names(names, rows):
    order = drum_editor_order(names)
    assert sorted(order) == list(range(len(names)))
    assert [names[i] for i in order] == rows


def test_rgb_rows_put_the_kick_at_the_bottom():
    seq = np.zeros((16, 9), dtype=np.float32)
    seq[0, DEFAULT_DRUM_NAMES.index("kick")] = 1.0
    seq[1, DEFAULT_DRUM_NAMES.index("hihat_closed")] = 1.0
    plain = render_rgb(seq)
    img = render_rgb(seq, rows=drum_editor_order(DEFAULT_DRUM_NAMES))
    rest = render_rgb(np.zeros_like(seq))
    changed = np.any(img[4::8, 2::4] != rest[4::8, 2::4], axis=-1)  # (rows, steps)
    assert np.flatnonzero(changed[:, 0]).tolist() == [8]  # the kick: bottom row
    assert np.flatnonzero(changed[:, 1]).tolist() == [0]  # the closed hi-hat: top row
    assert np.array_equal(plain, render_rgb(seq, rows=range(9)))  # default: column order
    with pytest.raises(ValueError, match="rows"):
        render_rgb(seq, rows=[0] * 9)


def test_composed_hits_are_shaded_by_velocity():
    seq = np.zeros((32, 2), dtype=np.float32)
    seq[[2, 20], 0] = 0.2  # a soft hit in the primer and in the composed part
    seq[[3, 21], 0] = 0.9  # a loud one
    seq[[4, 22], 0] = 0.9
    fig = piano_roll_figure(seq, prompt_steps=16, drum_names=["snare", "ride"])
    image = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_array_equal(image, render_rgb(seq, prompt_steps=16, rows=[1, 0]))
    for soft, loud, same in ((2, 3, 4), (20, 21, 22)):  # primer, composed
        s, ld, sm = (cell_pixel(image, 1, t) for t in (soft, loud, same))  # the snare: row 1
        assert not np.array_equal(s, ld) and luminance(s) < luminance(ld)
        assert np.array_equal(ld, sm)  # the shade is the velocity, nothing else


def test_figure_title_names_the_bars_and_tempo():
    seq = random_sequence(64, 9)
    fig = piano_roll_figure(seq, prompt_steps=16, title="take 0", bpm=97.34)
    assert fig.axes[0].get_title() == "take 0: 4 bars at 97.3 bpm, primer 1 bar"
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == EDITOR_ROWS  # top to bottom
    assert piano_roll_figure(seq[:40]).axes[0].get_title() == "3 bars"
    two = piano_roll_figure(seq, prompt_steps=32, bpm=120)
    assert two.axes[0].get_title() == "4 bars at 120 bpm, primer 2 bars"


def test_figure_shows_the_real_continuation_below():
    import matplotlib.pyplot as plt

    take, real = random_sequence(64, 9, seed=1), random_sequence(64, 9, seed=2)
    real[:16] = take[:16]
    fig = piano_roll_figure(take, prompt_steps=16, reference=real, bpm=100)
    top, bottom = fig.axes[:2]
    assert bottom.get_title() == "real continuation"
    assert top.get_position().y0 > bottom.get_position().y0
    order = drum_editor_order(DEFAULT_DRUM_NAMES)
    np.testing.assert_array_equal(np.asarray(bottom.images[0].get_array()),
                                  render_rgb(real, prompt_steps=16, rows=order))  # fmt: skip
    assert plt.get_fignums() == []  # built without pyplot: nothing left open
    with pytest.raises(ValueError, match="reference"):
        piano_roll_figure(take, reference=real[:, :3])


def test_png_with_tempo_and_reference(tmp_path):
    seq = random_sequence(64, 9)
    alone = save_piano_roll_png(seq, tmp_path / "a.png", prompt_steps=16, bpm=100)
    both = save_piano_roll_png(seq, tmp_path / "b.png", prompt_steps=16, bpm=100, reference=seq)
    import matplotlib.image as mpimg

    assert mpimg.imread(both).shape[0] > 1.5 * mpimg.imread(alone).shape[0]


# --------------------------------------------------------------------------- validation

BAD_SEQUENCES = [
    (np.zeros(8, dtype=np.float32), "2-D"),
    (np.zeros((2, 3, 4), dtype=np.float32), "2-D"),
    (np.zeros((8, 0), dtype=np.float32), "at least one drum"),
    (np.full((4, 2), np.nan, dtype=np.float32), "finite"),
    (np.full((4, 2), np.inf, dtype=np.float32), "finite"),
    (np.full((4, 2), 1.5, dtype=np.float32), r"\[0, 1\]"),
    (np.full((4, 2), -0.1, dtype=np.float32), r"\[0, 1\]"),
    (np.array([["a", "b"]]), "numeric"),
]


@pytest.mark.parametrize("seq, match", BAD_SEQUENCES)
def test_bad_sequence(seq, match, tmp_path):
    with pytest.raises(ValueError, match="sequence") as info:
        render_ansi(seq)
    assert info.match(match)
    with pytest.raises(ValueError, match=match):
        render_rgb(seq)
    with pytest.raises(ValueError, match=match):
        save_piano_roll_png(seq, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps_per_bar": 0}, "steps_per_bar"),
        ({"steps_per_bar": 2.5}, "steps_per_bar"),
        ({"prompt_steps": -1}, "prompt_steps"),
        ({"prompt_steps": 17}, "prompt_steps"),
        ({"position": 17}, "position"),
        ({"position": -1}, "position"),
        ({"position": True}, "position"),
    ],
)
def test_bad_common_arguments(kwargs, match):
    seq = random_sequence(16, 3)
    with pytest.raises(ValueError, match=match):
        render_ansi(seq, **kwargs)
    with pytest.raises(ValueError, match=match):
        render_rgb(seq, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"drum_names": ["a", "b"]}, "drum_names"),
        ({"drum_names": "abc"}, "drum_names"),
        ({"drum_names": ["a", "b", 3]}, "drum_names"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_bad_ansi_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        render_ansi(random_sequence(16, 3), **kwargs)


@pytest.mark.parametrize("cell", [(0, 4), (8, -1), (8,), "ab", (8.5, 4)])
def test_bad_cell(cell):
    with pytest.raises(ValueError, match="cell"):
        render_rgb(random_sequence(16, 3), cell=cell)


def test_png_bad_arguments(tmp_path):
    seq = random_sequence(16, 3)
    with pytest.raises(ValueError, match="prompt_steps"):
        save_piano_roll_png(seq, tmp_path / "a.png", prompt_steps=99)
    with pytest.raises(ValueError, match="drum_names"):
        save_piano_roll_png(seq, tmp_path / "a.png", drum_names=["a"])
    assert list(tmp_path.iterdir()) == []
