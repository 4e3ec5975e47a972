"""Loading and validation of .npz drum sequences: every bad-input case gets a clear DataError."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dataset.io import (
    DataError,
    DataWarning,
    LoadedCorpus,
    check_num_drums,
    load_npz_file,
    load_npz_folder,
    validate_sequence,
)


def save(path: Path, **arrays: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def good(steps: int = 8, drums: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((steps, drums)) < 0.3).astype(np.float32)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- good input


def test_loads_recursively_sorted_and_as_float32(tmp_path: Path) -> None:
    save(tmp_path / "b.npz", sequence=good(5, seed=1))
    save(tmp_path / "a" / "z.npz", sequence=good(7, seed=2).astype(bool))
    save(tmp_path / "a" / "c.npz", sequence=good(6, seed=3).astype(np.int64))
    (tmp_path / "notes.txt").write_text("not data")
    corpus = load_npz_folder(tmp_path)
    assert isinstance(corpus, LoadedCorpus)
    rel = [p.relative_to(tmp_path).as_posix() for p in corpus.files]
    assert rel == ["a/c.npz", "a/z.npz", "b.npz"]
    assert [len(s) for s in corpus.sequences] == [6, 7, 5]
    for s in corpus.sequences:
        assert s.dtype == np.float32 and s.flags.c_contiguous
    np.testing.assert_array_equal(corpus.sequences[2], good(5, seed=1))


def test_velocities_in_unit_interval_are_kept(tmp_path: Path) -> None:
    seq = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float64)
    save(tmp_path / "v.npz", sequence=seq)
    np.testing.assert_array_equal(load_npz_folder(tmp_path).sequences[0], seq.astype(np.float32))


def test_custom_key(tmp_path: Path) -> None:
    save(tmp_path / "k.npz", drums=good())
    assert len(load_npz_folder(tmp_path, key="drums").sequences) == 1


def test_files_are_never_modified(tmp_path: Path) -> None:
    save(tmp_path / "ok.npz", sequence=good())
    save(tmp_path / "nan.npz", sequence=np.full((3, 3), np.nan))
    (tmp_path / "junk.npz").write_bytes(os.urandom(64))
    before = snapshot(tmp_path)
    with pytest.warns(DataWarning):
        load_npz_folder(tmp_path, on_error="skip")
    with pytest.raises(DataError):
        load_npz_folder(tmp_path)
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- folder errors


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="does not exist") as err:
        load_npz_folder(missing)
    assert str(missing) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_folder_is_a_file(tmp_path: Path) -> None:
    f = save(tmp_path / "x.npz", sequence=good())
    with pytest.raises(DataError, match="not a folder"):
        load_npz_folder(f)


def test_no_npz_files(tmp_path: Path) -> None:
    (tmp_path / "a.npy").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="no .npz files") as err:
        load_npz_folder(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_unknown_on_error(tmp_path: Path) -> None:
    save(tmp_path / "x.npz", sequence=good())
    with pytest.raises(ValueError, match="on_error"):
        load_npz_folder(tmp_path, on_error="ignore")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- file errors

BAD_ARRAYS = {
    "rank1": (np.zeros(8, np.float32), "2-D"),
    "rank3": (np.zeros((2, 8, 3), np.float32), "2-D"),
    "rank0": (np.float32(0.5), "2-D"),
    "zero_length": (np.zeros((0, 9), np.float32), "zero length"),
    "zero_drums": (np.zeros((9, 0), np.float32), "no drums"),
    "nan": (np.array([[0, np.nan], [1, 0]], np.float32), "NaN"),
    "inf": (np.array([[0, np.inf], [1, 0]], np.float64), "inf"),
    "above_one": (np.array([[0, 2.0]], np.float32), r"\[0, 1\]"),
    "negative": (np.array([[-0.1, 0]], np.float32), r"\[0, 1\]"),
    "midi_velocity": (np.array([[0, 127]], np.int64), r"\[0, 1\]"),
    "strings": (np.array([["a", "b"]]), "not numeric"),
    "complex": (np.zeros((2, 2), np.complex64), "not numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_bad_array_in_file(tmp_path: Path, case: str) -> None:
    arr, message = BAD_ARRAYS[case]
    path = save(tmp_path / f"{case}.npz", sequence=arr)
    with pytest.raises(DataError, match=message) as err:
        load_npz_folder(tmp_path)
    assert str(path) in str(err.value)


def test_missing_key_lists_keys_present(tmp_path: Path) -> None:
    path = save(tmp_path / "m.npz", seq=good(), tempo=np.array(120.0))
    with pytest.raises(DataError, match="missing key 'sequence'") as err:
        load_npz_folder(tmp_path)
    msg = str(err.value)
    assert str(path) in msg and "'seq'" in msg and "'tempo'" in msg


def test_missing_key_in_empty_archive(tmp_path: Path) -> None:
    np.savez(tmp_path / "empty_archive.npz")
    with pytest.raises(DataError, match="keys present: none"):
        load_npz_folder(tmp_path)


def test_object_array(tmp_path: Path) -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1, 0], [1]
    path = save(tmp_path / "obj.npz", sequence=ragged)
    with pytest.raises(DataError, match="object array") as err:
        load_npz_folder(tmp_path)
    assert str(path) in str(err.value)
    assert "allow_pickle=False" in str(err.value)


def _corrupt_files(tmp_path: Path) -> dict[str, Path]:
    ok = save(tmp_path / "src" / "ok.npz", sequence=good(64))
    data = ok.read_bytes()
    out = tmp_path / "bad"
    out.mkdir()
    files = {
        "random": out / "random.npz",
        "truncated": out / "truncated.npz",
        "empty": out / "empty.npz",
        "zip_magic_then_garbage": out / "zipmagic.npz",
        "npy": out / "npy.npz",
        "crc": out / "crc.npz",
    }
    files["random"].write_bytes(np.random.default_rng(0).bytes(300))
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["zip_magic_then_garbage"].write_bytes(b"PK\x03\x04" + bytes(100))
    with files["npy"].open("wb") as fh:
        np.save(fh, good())
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside the member's data: caught by the CRC check
    files["crc"].write_bytes(bytes(flipped))
    return files


@pytest.mark.parametrize(
    "case", ["random", "truncated", "empty", "zip_magic_then_garbage", "npy", "crc"]
)
def test_corrupt_file(tmp_path: Path, case: str) -> None:
    path = _corrupt_files(tmp_path)[case]
    with pytest.raises(DataError) as err:
        load_npz_file(path)
    msg = str(err.value)
    assert str(path) in msg
    assert any(w in msg for w in ("corrupt", "empty", "not a zip", "not an .npz")), msg


def test_num_drums_disagree_names_both_files(tmp_path: Path) -> None:
    a = save(tmp_path / "a.npz", sequence=good(8, 9))
    b = save(tmp_path / "b.npz", sequence=good(8, 7))
    with pytest.raises(DataError, match="disagree on num_drums") as err:
        load_npz_folder(tmp_path)
    msg = str(err.value)
    assert str(a) in msg and str(b) in msg and "9" in msg and "7" in msg


def test_check_num_drums_in_memory() -> None:
    assert check_num_drums(["x", "y"], [good(3, 2), good(4, 2)]) == 2
    with pytest.raises(DataError, match="x has 2 drums, but y has 3"):
        check_num_drums(["x", "y"], [good(3, 2), good(4, 3)])


# ----------------------------------------------------------------------------- skip mode


def test_skip_warns_once_listing_every_bad_file(tmp_path: Path) -> None:
    save(tmp_path / "good1.npz", sequence=good(8, 9))
    save(tmp_path / "good2.npz", sequence=good(9, 9))
    save(tmp_path / "good3.npz", sequence=good(10, 9))
    save(tmp_path / "fewer_drums.npz", sequence=good(8, 4))
    save(tmp_path / "nan.npz", sequence=np.full((4, 9), np.nan, np.float32))
    save(tmp_path / "nokey.npz", other=good())
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus = load_npz_folder(tmp_path, on_error="skip")
    assert len(caught) == 1
    assert issubclass(caught[0].category, DataWarning)
    msg = str(caught[0].message)
    for name, reason in [
        ("fewer_drums.npz", "num_drums"),
        ("nan.npz", "NaN"),
        ("nokey.npz", "missing key"),
        ("junk.npz", "not a zip"),
    ]:
        line = next(x for x in msg.splitlines() if name in x)
        assert reason in line
    assert "4 of 7" in msg
    assert [p.name for p in corpus.files] == ["good1.npz", "good2.npz", "good3.npz"]


def test_skip_without_bad_files_is_silent(tmp_path: Path) -> None:
    save(tmp_path / "a.npz", sequence=good())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_npz_folder(tmp_path, on_error="skip").files) == 1


def test_skip_raises_when_nothing_is_left(tmp_path: Path) -> None:
    save(tmp_path / "nan.npz", sequence=np.full((4, 9), np.nan, np.float32))
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no usable .npz file") as err:
        load_npz_folder(tmp_path, on_error="skip")
    assert "nan.npz" in str(err.value) and "junk.npz" in str(err.value)


# ----------------------------------------------------------------------------- property tests


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        elements=st.floats(0, 1, width=32),
    )
)
def test_valid_arrays_round_trip(arr: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.npz"
        np.savez(path, sequence=arr)
        np.testing.assert_array_equal(load_npz_file(path), arr)


@st.composite
def invalid_arrays(draw: st.DrawFn) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=10))
    arr = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
    bad = draw(
        st.one_of(
            st.just(np.nan),
            st.just(np.inf),
            st.just(-np.inf),
            st.floats(min_value=1, exclude_min=True, allow_infinity=False),
            st.floats(max_value=0, exclude_max=True, allow_infinity=False),
        )
    )
    flat = arr.reshape(-1)
    flat[draw(st.integers(0, flat.size - 1))] = bad
    return arr


@settings(max_examples=60, deadline=None)
@given(invalid_arrays())
def test_invalid_values_always_raise_data_error(arr: np.ndarray) -> None:
    with pytest.raises(DataError, match="NaN|inf|\\[0, 1\\]"):
        validate_sequence(arr, "generated")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bad.npz"
        np.savez(path, sequence=arr)
        with pytest.raises(DataError) as err:
            load_npz_file(path)
        assert str(path) in str(err.value)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4).filter(
            lambda s: len(s) != 2 or 0 in s
        ),
        elements=st.just(0.0),
    )
)
def test_bad_shapes_always_raise_data_error(arr: np.ndarray) -> None:
    with pytest.raises(DataError, match="2-D|zero length|no drums"):
        validate_sequence(arr, "generated")


def test_validate_sequence_does_not_copy_good_float32() -> None:
    arr = good()
    assert validate_sequence(arr) is arr
