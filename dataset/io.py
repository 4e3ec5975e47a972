"""Loading and validating drum sequences from ``.npz`` files.

A corpus is every ``*.npz`` file under a folder (recursively, sorted by relative path for
determinism), each holding one float32-compatible array ``[time_steps, num_drums]`` under a key
(``"sequence"`` by default), values in ``[0, 1]``. Files are always opened with
``np.load(path, allow_pickle=False)`` and never modified.

Bad input raises :class:`DataError` (a :class:`ValueError`) whose message names the file and what
is wrong, never a traceback from inside numpy or :mod:`zipfile`: a missing folder, a folder with
no ``.npz`` file, a missing key (the keys present are listed), an array that is not 2-D, has no
time steps or no drums, holds NaN or inf, values outside ``[0, 1]``, a non-numeric or object
dtype, a corrupt or truncated archive, and files that disagree on ``num_drums``. With
``on_error="skip"`` bad files are left out with one :mod:`warnings` warning that lists them all,
and an error is raised only if no file is left.

>>> seq = validate_sequence(np.array([[1, 0], [0, 1]]), "example")
>>> seq.dtype, seq.shape
(dtype('float32'), (2, 2))
"""

from __future__ import annotations

import contextlib
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
    "atomic_write",
    "DataError",
    "DataWarning",
    "LoadedCorpus",
    "validate_sequence",
    "check_num_drums",
    "find_npz_files",
    "load_npz_file",
    "load_npz_folder",
]

OnError = Literal["raise", "skip"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # local file header; empty archive
_NPY_MAGIC = b"\x93NUMPY"


class DataError(ValueError):
    """A drum-sequence file or array is unusable; the message names it and what is wrong."""


class DataWarning(UserWarning):
    """Some drum-sequence files were skipped (``on_error="skip"``); the message lists them."""


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
        already is one (no copy).

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
    return np.ascontiguousarray(a, dtype=np.float32)


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


def load_npz_file(path: str | Path, key: str = "sequence") -> np.ndarray:
    """Load and validate the sequence of one ``.npz`` file, with ``allow_pickle=False``.

    Args:
        path: the ``.npz`` file.
        key: name of the array in the archive.

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
            arr = _read_member(fh, path, key)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return validate_sequence(arr, f"{path} [{key!r}]")


def _read_member(fh: BinaryIO, path: Path, key: str) -> np.ndarray:
    """Array ``key`` of the open zip archive ``fh`` (named ``path``), or a DataError."""
    try:
        with np.load(fh, allow_pickle=False) as archive:
            keys = list(archive.files)
            if key not in keys:
                raise DataError(
                    f"{path}: missing key {key!r}; keys present: "
                    f"{', '.join(repr(k) for k in keys) if keys else 'none'}"
                )
            return archive[key]
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"{path}: array {key!r} is an object array (or pickled data), which is never "
                "loaded (allow_pickle=False); save a numeric array instead"
            ) from exc
        raise DataError(f"{path}: corrupt .npz archive ({exc})") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as exc:
        raise DataError(f"{path}: corrupt or truncated .npz archive ({exc})") from exc


def load_npz_folder(
    npz_dir: str | Path, on_error: OnError = "raise", key: str = "sequence"
) -> LoadedCorpus:
    """Load every ``*.npz`` file under a folder (recursively, sorted).

    Args:
        npz_dir: the folder.
        on_error: ``"raise"``: the first bad file raises :class:`DataError`. ``"skip"``: bad
            files are left out and listed, with their reasons, in one :class:`DataWarning`;
            files whose ``num_drums`` differs from the most common one (ties: the first file's)
            count as bad. A :class:`DataError` is raised only if no file is left.
        key: name of the array in each archive.

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
            seq = load_npz_file(path, key)
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
    path: str | Path, write: Callable[[BinaryIO], object], durable: bool = True
) -> Path:
    """Write a file whole or not at all: through a temporary file beside it, then a rename.

    ``write(file_object)`` fills a hidden temporary file in ``path``'s folder (created if
    missing; opened with ``"xb"``, so it gets the usual umask permissions); it is flushed and,
    with ``durable``, fsynced; :func:`os.replace` renames it over ``path`` (atomic on POSIX and
    Windows) and the folder is fsynced so the rename survives a power cut. If anything fails
    before the rename (an exception, a full disk, the process killed), ``path`` keeps its old
    content; on an exception the temporary file is removed. Every file drum-env writes (npz,
    MIDI, checkpoints, policies) goes through here.

    Args:
        path: the target file.
        write: callable that writes the content to a binary file object.
        durable: fsync the file and its folder (checkpoints); False skips the fsyncs.

    Returns:
        The target path.
    """
    path = Path(path)
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
