"""Loading and validating drum sequences from ``.npz`` files.

A corpus is every ``*.npz`` file under a folder (recursively, sorted by relative path for
determinism), each holding one float32-compatible array ``[time_steps, num_drums]`` under a key
(``"sequence"`` by default), values in ``[0, 1]``. Files are always opened with
``np.load(path, allow_pickle=False)`` and never modified. A hit is any value ``> 0`` in every
dtype: a positive float64 too small for float32 (``1e-50``) is stored as float32's smallest
normal number, never as 0.

Before an array is read, its ``.npy`` header inside the zip archive is checked, so a file can
never make the loader allocate what it does not hold: the shape times the item size must match
the bytes the archive entry inflates to, be at most ``max_bytes`` (:data:`MAX_ARRAY_BYTES`,
256 MiB, by default: about 150 hours of 9 drums at 16th notes and 200 bpm in float32), and an
entry of more than 16 MiB must not inflate more than :data:`MAX_INFLATION` times (a
decompression bomb). A file that records the grid it was made on (``steps_per_bar``, and
``time_signature``, as ``drum-env convert`` writes them) is refused when its bars are not the
``steps_per_bar`` steps the loader is asked for. Every ``.npy`` entry of the archive is checked
so (not only the one read), and the small metadata entries (the grid, ``tempo_bpm``) may hold at
most 1 KiB. A recorded ``tempo_bpm`` must be a single finite number from :data:`MIN_BPM` to
:data:`MAX_BPM` (20-400 quarter notes per minute, :func:`check_bpm`).

Files are written by :func:`atomic_write`, which never writes through a symbolic link: a target
that is a link is refused (:class:`SymlinkError`, naming it), and the temporary file beside it is
created exclusively, so a link planted under its name is never followed either.

Bad input raises :class:`DataError` (a :class:`ValueError`) whose message names the file and what
is wrong, never a traceback from inside numpy or :mod:`zipfile`: a missing folder, a folder with
no ``.npz`` file, a missing key (the keys present are listed), an array that is not 2-D, has no
time steps or no drums, holds NaN or inf, values outside ``[0, 1]``, a non-numeric or object
dtype, a corrupt or truncated archive, an array header that claims more than the archive holds
or than ``max_bytes``, a decompression bomb, bars of another length than ``steps_per_bar``, and
files that disagree on ``num_drums``. With
``on_error="skip"`` bad files are left out with one :mod:`warnings` warning that lists them all,
and an error is raised only if no file is left.

>>> seq = validate_sequence(np.array([[1, 0], [0, 1]]), "example")
>>> seq.dtype, seq.shape
(dtype('float32'), (2, 2))
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

import numpy as np

__all__ = [
    "MAX_ARRAY_BYTES",
    "MAX_INFLATION",
    "MIN_BPM",
    "MAX_BPM",
    "check_bpm",
    "atomic_write",
    "refuse_symlink",
    "SymlinkError",
    "DataError",
    "DataWarning",
    "LoadedCorpus",
    "validate_sequence",
    "check_num_drums",
    "find_npz_files",
    "load_npz_file",
    "load_npz_folder",
    "read_npz_tempo",
]

OnError = Literal["raise", "skip"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # local file header; empty archive
_NPY_MAGIC = b"\x93NUMPY"

MAX_ARRAY_BYTES: int = 256 * 2**20
"""Default largest array (bytes, as its header declares it) a loader reads from an archive."""

MAX_INFLATION: float = 200.0
"""Largest ratio of inflated to compressed size for an archive entry of more than 16 MiB."""

MIN_BPM: float = 20.0
"""Slowest tempo drum-env reads or writes, quarter notes per minute."""

MAX_BPM: float = 400.0
"""Fastest tempo drum-env reads or writes, quarter notes per minute."""

_INFLATION_FLOOR = 16 * 2**20  # entries smaller than this may inflate as much as they like
_GRID_KEYS = ("steps_per_bar", "time_signature", "steps_per_quarter")  # small metadata arrays
_TEMPO_KEY = "tempo_bpm"
_META_KEYS = (*_GRID_KEYS, _TEMPO_KEY)
_META_BYTES = 1024  # the most a metadata entry may hold
_FLOAT32_TINY = np.finfo(np.float32).tiny


class DataError(ValueError):
    """A drum-sequence file or array is unusable; the message names it and what is wrong."""


class DataWarning(UserWarning):
    """Some drum-sequence files were skipped (``on_error="skip"``); the message lists them."""


class SymlinkError(ValueError):
    """A file drum-env would write is a symbolic link; it is never written through."""


def check_bpm(bpm: object, name: str = "bpm") -> float:
    """A tempo in quarter notes per minute, checked: a finite number in [20, 400].

    Args:
        bpm: the tempo.
        name: how to name it in the message (``"bpm"``, ``"file.npz: its tempo_bpm"``).

    Returns:
        ``bpm`` as a float.

    Raises:
        ValueError: ``bpm`` is not a number, or outside [:data:`MIN_BPM`, :data:`MAX_BPM`].
    """
    if isinstance(bpm, (bool, np.bool_)) or not isinstance(bpm, (int, float, np.number)):
        raise ValueError(f"{name} must be a tempo in quarter notes per minute, got {bpm!r}")
    value = float(bpm)
    if not (math.isfinite(value) and MIN_BPM <= value <= MAX_BPM):
        raise ValueError(
            f"{name} must be a tempo from {MIN_BPM:g} to {MAX_BPM:g} bpm (quarter notes per "
            f"minute), got {bpm!r}"
        )
    return value


class LoadedCorpus(NamedTuple):
    """Sequences loaded from a folder (see :func:`load_npz_folder`)."""

    files: list[Path]
    """Paths of the files that were loaded, sorted; ``files[i]`` holds ``sequences[i]``."""
    sequences: list[np.ndarray]
    """float32 arrays ``(time_steps, num_drums)``, values in [0, 1], one per file."""


def validate_sequence(arr: object, name: str = "sequence") -> np.ndarray:
    """Check one drum sequence and return it as a C-contiguous float32 array.

    Accepted: a numeric (bool, integer or floating) array of rank 2 ``(time_steps, num_drums)``
    with ``time_steps >= 1``, ``num_drums >= 1``, every value finite and in ``[0, 1]``.

    Args:
        arr: array-like ``(time_steps, num_drums)``.
        name: how to name the array in an error message (a file path, ``"sequences[3]"``).

    Returns:
        float32 array ``(time_steps, num_drums)``, values in [0, 1]; ``arr`` itself when it
        already is one (no copy). Hits are kept: a wider float ``> 0`` that float32 would round
        to 0 (or to a subnormal) becomes float32's smallest normal number.

    Raises:
        DataError: naming ``name`` and the problem.
    """
    a = np.asarray(arr) if not isinstance(arr, np.ndarray) else arr
    if a.dtype.hasobject or a.dtype.kind not in "biuf":
        raise DataError(
            f"{name}: dtype {a.dtype} is not numeric; expected float32 values in [0, 1] "
            "(bool and integer arrays are accepted too)"
        )
    if a.ndim != 2:
        raise DataError(
            f"{name}: expected a 2-D array [time_steps, num_drums], got {a.ndim}-D shape {a.shape}"
        )
    if a.shape[0] == 0:
        raise DataError(f"{name}: zero length (shape {a.shape}, no time steps)")
    if a.shape[1] == 0:
        raise DataError(f"{name}: no drums (shape {a.shape})")
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            bad = np.argwhere(~finite)
            n_nan = int(np.isnan(a).sum())
            step, drum = (int(v) for v in bad[0])
            raise DataError(
                f"{name}: {n_nan} NaN and {len(bad) - n_nan} inf values (first at step {step}, "
                f"drum {drum})"
            )
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > 1:
        raise DataError(
            f"{name}: values must lie in [0, 1] (hits, or velocities / 127), found min {lo} and "
            f"max {hi}"
        )
    out = np.ascontiguousarray(a, dtype=np.float32)
    if a.dtype.kind == "f" and a.dtype.itemsize > 4:  # a narrowing cast: keep every hit a hit
        lost = (a > 0) & (out < _FLOAT32_TINY)
        if lost.any():
            out[lost] = _FLOAT32_TINY
    return out


def check_num_drums(names: Sequence[str], sequences: Sequence[np.ndarray]) -> int:
    """Check that every sequence has the same number of drums.

    Args:
        names: one name per sequence, for the error message.
        sequences: arrays ``(time_steps, num_drums)``.

    Returns:
        The common ``num_drums``.

    Raises:
        DataError: naming the first sequence and the first one that disagrees with it, and both
            counts; or if ``sequences`` is empty.
    """
    if not sequences:
        raise DataError("no sequences given")
    first = sequences[0].shape[1]
    for name, seq in zip(names, sequences, strict=True):
        if seq.shape[1] != first:
            raise DataError(
                f"files disagree on num_drums: {names[0]} has {first} drums, but {name} has "
                f"{seq.shape[1]}"
            )
    return first


def find_npz_files(npz_dir: str | Path) -> list[Path]:
    """Every ``*.npz`` file under a folder, recursively, sorted by path relative to it.

    Args:
        npz_dir: the folder.

    Returns:
        list of file paths (non-empty).

    Raises:
        DataError: if the folder does not exist, is not a folder, or holds no ``.npz`` file.
    """
    root = Path(npz_dir)
    if not root.exists():
        raise DataError(f"{root}: folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected a folder of .npz files)")
    files = sorted(
        (p for p in root.rglob("*.npz") if p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise DataError(f"{root}: no .npz files found (searched recursively)")
    return files


def load_npz_file(
    path: str | Path,
    key: str = "sequence",
    *,
    steps_per_bar: int | None = None,
    max_bytes: int = MAX_ARRAY_BYTES,
) -> np.ndarray:
    """Load and validate the sequence of one ``.npz`` file, with ``allow_pickle=False``.

    Args:
        path: the ``.npz`` file.
        key: name of the array in the archive.
        steps_per_bar: the bar length (steps) the caller works with; a file that records
            another one (its ``steps_per_bar``, or a ``time_signature`` whose bar has another
            number of steps on its grid) is refused. ``None``: not checked.
        max_bytes: the largest array, in bytes, the file may declare (see the module docstring).

    Returns:
        float32 array ``(time_steps, num_drums)``, values in [0, 1].

    Raises:
        DataError: naming the file and the problem (see the module docstring).
    """
    path = Path(path)
    try:
        # Our own handle, closed on every path (np.load leaks it when the zip is corrupt).
        with path.open("rb") as fh:
            head = fh.read(8)
            if not head:
                raise DataError(f"{path}: empty file (0 bytes), not an .npz archive")
            if head.startswith(_NPY_MAGIC):
                raise DataError(
                    f"{path}: is a single .npy array, not an .npz archive; save it with "
                    f"np.savez(path, {key}=array)"
                )
            if not head.startswith(_ZIP_MAGIC):
                raise DataError(f"{path}: not a zip archive (corrupt, or not an .npz file)")
            fh.seek(0)
            arr, meta = _read_member(fh, path, key, max_bytes)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if _TEMPO_KEY in meta:
        _check_tempo(path, meta.pop(_TEMPO_KEY))
    if steps_per_bar is not None:
        _check_grid(path, meta, steps_per_bar)
    return validate_sequence(arr, f"{path} [{key!r}]")


def read_npz_tempo(path: str | Path) -> float | None:
    """The tempo an ``.npz`` records (``tempo_bpm``, as ``drum-env convert`` writes it), checked.

    Read as :func:`load_npz_file` reads: ``allow_pickle=False``, every array header checked
    before anything is allocated.

    Args:
        path: the ``.npz`` file.

    Returns:
        The tempo in quarter notes per minute, or ``None`` when the file records none.

    Raises:
        DataError: the file is not a readable archive, or its ``tempo_bpm`` is not one number
            from :data:`MIN_BPM` to :data:`MAX_BPM` (the message names the file).
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            if not fh.read(4).startswith(_ZIP_MAGIC):
                raise DataError(f"{path}: not a zip archive (corrupt, or not an .npz file)")
            fh.seek(0)
            try:
                with zipfile.ZipFile(fh) as zf:
                    if _member_name(zf, _TEMPO_KEY) is None:
                        return None
                    _check_header(zf, path, _TEMPO_KEY, _META_BYTES)
                fh.seek(0)
                with np.load(fh, allow_pickle=False) as archive:
                    value = archive[_TEMPO_KEY]
            except DataError:
                raise
            except (ValueError, zipfile.BadZipFile, zlib.error, EOFError, KeyError) as exc:
                raise DataError(f"{path}: corrupt .npz archive ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return _check_tempo(path, value)


def _check_tempo(path: Path, value: np.ndarray) -> float:
    """A recorded ``tempo_bpm``: one real number in the tempo range, or a DataError."""
    value = np.asarray(value)
    if value.size != 1 or value.dtype.kind not in "iuf":
        raise DataError(
            f"{path}: {_TEMPO_KEY!r} must be one number (quarter notes per minute), got "
            f"{value.dtype} shape {value.shape}"
        )
    try:
        return check_bpm(value.reshape(()).item(), f"{path}: its {_TEMPO_KEY!r}")
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _member_name(zf: zipfile.ZipFile, key: str) -> str | None:
    """The archive entry ``np.load`` reads for ``key`` (``key`` or ``key.npy``), if any."""
    names = set(zf.namelist())
    return key if key in names else f"{key}.npy" if f"{key}.npy" in names else None


def _check_header(zf: zipfile.ZipFile, path: Path, key: str, max_bytes: int) -> None:
    """Refuse entry ``key`` before ``np.load`` allocates it, if its header is absurd."""
    name = _member_name(zf, key)
    if name is None:
        return  # np.load names the missing key, with the keys present
    info = zf.getinfo(name)
    limit = f"the limit of {max_bytes:,} bytes"
    if info.file_size > max_bytes:
        raise DataError(
            f"{path}: array {key!r} inflates to {info.file_size:,} bytes, more than {limit}"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _INFLATION_FLOOR and ratio > MAX_INFLATION:
        raise DataError(
            f"{path}: array {key!r} inflates {ratio:.0f} times ({info.compress_size:,} -> "
            f"{info.file_size:,} bytes), more than {MAX_INFLATION:g}: refused as a "
            "decompression bomb"
        )
    with zf.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise DataError(
                    f"{path}: array {key!r} has .npy format version {version}, which is not "
                    "read here (save it with numpy's np.savez)"
                )
        except DataError:
            raise
        except ValueError as exc:
            raise DataError(f"{path}: array {key!r} has a corrupt .npy header ({exc})") from exc
        header_bytes = member.tell()
    if dtype.hasobject:
        return  # np.load refuses it (allow_pickle=False), with its own message
    count = math.prod(int(n) for n in shape)
    nbytes = count * dtype.itemsize
    if nbytes > max_bytes:
        raise DataError(
            f"{path}: array {key!r} claims shape {tuple(shape)} of {dtype} ({nbytes:,} bytes), "
            f"more than {limit}"
        )
    if header_bytes + nbytes != info.file_size:
        raise DataError(
            f"{path}: array {key!r} claims shape {tuple(shape)} of {dtype} ({nbytes:,} bytes), "
            f"but its archive entry holds {info.file_size - header_bytes:,} bytes of data "
            "(corrupt)"
        )


def _read_member(
    fh: BinaryIO, path: Path, key: str, max_bytes: int = MAX_ARRAY_BYTES
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Array ``key`` of the open zip archive ``fh`` (named ``path``) and its grid metadata.

    Every ``.npy`` entry's header is checked before anything is read (the metadata entries
    against :data:`_META_BYTES`, the others against ``max_bytes``), not only ``key``'s.

    Returns:
        ``(array, meta)``: ``meta`` holds whichever of ``steps_per_bar``, ``time_signature``,
        ``steps_per_quarter`` and ``tempo_bpm`` the archive records.

    Raises:
        DataError: naming the file and the problem.
    """
    try:
        with zipfile.ZipFile(fh) as zf:
            entries = {n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")}
            for name in sorted(entries | {key}):
                small = name in _META_KEYS and name != key
                _check_header(zf, path, name, _META_BYTES if small else max_bytes)
        fh.seek(0)
        with np.load(fh, allow_pickle=False) as archive:
            keys = list(archive.files)
            if key not in keys:
                raise DataError(
                    f"{path}: missing key {key!r}; keys present: "
                    f"{', '.join(repr(k) for k in keys) if keys else 'none'}"
                )
            meta = {k: archive[k] for k in _META_KEYS if k in keys and k != key}
            return archive[key], meta
    except DataError:
        raise
    except MemoryError as exc:
        raise DataError(f"{path}: array {key!r} does not fit in memory ({exc})") from None
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"{path}: array {key!r} is an object array (or pickled data), which is never "
                "loaded (allow_pickle=False); save a numeric array instead"
            ) from exc
        raise DataError(f"{path}: corrupt .npz archive ({exc})") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as exc:
        raise DataError(f"{path}: corrupt or truncated .npz archive ({exc})") from exc


def _grid_int(path: Path, grid: dict[str, np.ndarray], name: str, size: int,
              kinds: str = "iu") -> list[int | float]:  # fmt: skip
    value = np.asarray(grid[name])
    if (value.dtype.kind not in kinds or value.size != size or not np.isfinite(value).all()
            or (value <= 0).any()):  # fmt: skip
        want = "a positive integer" if size == 1 else f"{size} positive integers"
        raise DataError(f"{path}: {name!r} must be {want}, got {value.tolist()!r}")
    return [v.item() for v in value.ravel()]


def _check_grid(path: Path, grid: dict[str, np.ndarray], steps_per_bar: int) -> None:
    """Refuse a file whose recorded bars are not ``steps_per_bar`` steps long.

    Files of ``drum-env convert`` record ``steps_per_bar`` (steps in one of their bars),
    ``time_signature`` and ``steps_per_quarter``; older ones recorded ``steps_per_bar`` as the
    steps of a 4/4 bar of their grid, so their bar is ``steps_per_bar * num / den`` steps.
    """
    if not grid:
        return
    recorded = _grid_int(path, grid, "steps_per_bar", 1)[0] if "steps_per_bar" in grid else None
    num, den = _grid_int(path, grid, "time_signature", 2) if "time_signature" in grid else (4, 4)
    if "steps_per_quarter" in grid:
        per_quarter = _grid_int(path, grid, "steps_per_quarter", 1, kinds="iuf")[0]
        bar = recorded if recorded is not None else per_quarter * 4 * num / den
    else:
        bar = (recorded if recorded is not None else steps_per_bar) * num / den
    if bar != steps_per_bar:
        meter = f", time signature {num}/{den}" if "time_signature" in grid else ""
        raise DataError(
            f"{path}: its bars are {bar:g} steps long (as recorded in it{meter}), but "
            f"steps_per_bar={steps_per_bar} is asked for, which would cut them in the wrong "
            "places; load it with the steps_per_bar it was made for, or leave it out"
        )


def load_npz_folder(
    npz_dir: str | Path,
    on_error: OnError = "raise",
    key: str = "sequence",
    *,
    steps_per_bar: int | None = None,
    max_bytes: int = MAX_ARRAY_BYTES,
) -> LoadedCorpus:
    """Load every ``*.npz`` file under a folder (recursively, sorted).

    Args:
        npz_dir: the folder.
        on_error: ``"raise"``: the first bad file raises :class:`DataError`. ``"skip"``: bad
            files are left out and listed, with their reasons, in one :class:`DataWarning`;
            files whose ``num_drums`` differs from the most common one (ties: the first file's)
            count as bad. A :class:`DataError` is raised only if no file is left.
        key: name of the array in each archive.
        steps_per_bar: refuse files that record bars of another length (see
            :func:`load_npz_file`); ``None``: not checked.
        max_bytes: the largest array, in bytes, a file may declare.

    Returns:
        LoadedCorpus of the files loaded and their float32 sequences.

    Raises:
        DataError: see ``on_error``; also for a missing folder or one without ``.npz`` files.
        ValueError: for an unknown ``on_error``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    paths = find_npz_files(npz_dir)
    files: list[Path] = []
    sequences: list[np.ndarray] = []
    skipped: list[str] = []
    for path in paths:
        try:
            seq = load_npz_file(path, key, steps_per_bar=steps_per_bar, max_bytes=max_bytes)
        except DataError as exc:
            if on_error == "raise":
                raise
            skipped.append(str(exc))
            continue
        files.append(path)
        sequences.append(seq)
    if on_error == "raise":
        check_num_drums([str(f) for f in files], sequences)
    elif sequences:
        counts = Counter(s.shape[1] for s in sequences)
        best = max(counts.values())
        common = next(s.shape[1] for s in sequences if counts[s.shape[1]] == best)
        ref = next(f for f, s in zip(files, sequences, strict=True) if s.shape[1] == common)
        keep = [s.shape[1] == common for s in sequences]
        for f, s, k in zip(files, sequences, keep, strict=True):
            if not k:
                skipped.append(
                    f"{f}: files disagree on num_drums: has {s.shape[1]} drums, but {ref} "
                    f"(and {best - 1} more) has {common}"
                )
        files = [f for f, k in zip(files, keep, strict=True) if k]
        sequences = [s for s, k in zip(sequences, keep, strict=True) if k]
    if skipped:
        listing = "\n  ".join(skipped)
        if not sequences:
            raise DataError(
                f"{npz_dir}: no usable .npz file; all {len(paths)} are bad:\n  {listing}"
            )
        warnings.warn(
            f"skipped {len(skipped)} of {len(paths)} .npz files in {npz_dir}:\n  {listing}",
            DataWarning,
            stacklevel=2,
        )
    return LoadedCorpus(files, sequences)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], object], durable: bool = True
) -> Path:
    """Write a file whole or not at all: through a temporary file beside it, then a rename.

    ``write(file_object)`` fills a hidden temporary file in ``path``'s folder (created if
    missing; opened with ``"xb"``, so it gets the usual umask permissions); it is flushed and,
    with ``durable``, fsynced; :func:`os.replace` renames it over ``path`` (atomic on POSIX and
    Windows) and the folder is fsynced so the rename survives a power cut. If anything fails
    before the rename (an exception, a full disk, the process killed), ``path`` keeps its old
    content; on an exception the temporary file is removed. Every file drum-env writes (npz,
    MIDI, checkpoints, policies) goes through here. A ``path`` that is a symbolic link is
    refused (:func:`refuse_symlink`); the rename replaces a name, never what a link points to.

    Args:
        path: the target file.
        write: callable that writes the content to a binary file object.
        durable: fsync the file and its folder (checkpoints); False skips the fsyncs.

    Returns:
        The target path.

    Raises:
        SymlinkError: ``path`` is a symbolic link.
    """
    path = Path(path)
    refuse_symlink(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        try:
            fd = os.open(path.parent, os.O_RDONLY)
        except OSError:  # Windows cannot open folders
            return path
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
    return path


def refuse_symlink(path: str | Path, what: str = "file") -> None:
    """Raise :class:`SymlinkError` when ``path`` (its last component) is a symbolic link.

    drum-env never writes through a link: a link planted where a run writes (``out/.lock``,
    ``config.json``, a checkpoint, a take) could otherwise make it overwrite any file the user
    may write. Links among the folders above ``path`` are the user's own layout and are kept.

    Args:
        path: the file about to be written.
        what: how to name it in the message (``"lock file"``, ``"file"``).
    """
    path = Path(path)
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise SymlinkError(
            f"{what} {str(path)!r} is a symbolic link (to {target!r}); drum-env never writes "
            "through links: remove the link, or choose another path"
        )
