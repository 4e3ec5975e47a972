"""Run folders: one run per folder, owned by one process, its ``config.json``, no silent mixing.

Every command that writes a run (``pretrain``, ``train``, ``baseline``, ``generate``) holds a
:class:`RunLock` on its ``out`` folder for the run's whole life and claims the folder with
:func:`prepare_run_dir`:

* **one owner**: ``out/.lock`` is locked with ``fcntl.flock`` (exclusive, non-blocking) and holds
  the owner's pid, host, command line and start time. A second run on the same folder, from
  this machine or another one sharing the file system, is refused at once with a message that
  names the holder. The kernel drops the lock when the owner exits in any way (SIGKILL
  included); the ``.lock`` file a killed owner leaves behind is recognised as stale by its pid
  and taken over. A clean exit removes ``.lock`` (and ``out`` itself, when the lock created it
  and nothing else was written there). Under DDP only rank 0 takes the lock.
* a folder that does not exist, is empty, or holds only the ``config.json`` of a run that
  failed before writing anything else, is a new run;
* a folder that holds a previous run (any of :data:`RUN_FILES`) is refused, naming the folder,
  unless the run is resumed (``resume``: the command continues the run in it) or ``force`` is
  given, which deletes the previous run's files (only those of :data:`RUN_FILES`; other files
  are left alone) and starts afresh;
* ``config.json`` (the run's full config, plain JSON) is written atomically, so every run folder
  says how it was made.
* **no links followed**: ``.lock`` is opened with ``O_NOFOLLOW``; the run's files
  (``config.json``, checkpoints, ``policy.pt``, ``model.zip``) are written by
  :func:`dataset.io.atomic_write`, which refuses a target that is a symbolic link; a run folder
  whose ``.lock`` or any of :data:`RUN_FILES` is a link is refused, naming it (``force`` removes
  such links, never what they point to);

A command holds the lock around its whole body, e.g. ``with RunLock(config.out): return
_train(config)``; :func:`prepare_run_dir` inside it re-enters the same lock (a lock is
re-entrant within one process), and called without one it holds the lock while it claims.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp, RunLock(f"{tmp}/run") as lock:
...     lock.holder["pid"] == os.getpid()
True
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import shlex
import shutil
import socket
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from dataset.io import atomic_write

__all__ = [
    "LOCK_FILE",
    "RUN_FILES",
    "RunDirError",
    "RunLock",
    "RunLockWarning",
    "prepare_run_dir",
    "write_json",
]

LOCK_FILE = ".lock"
"""The lock file of a run folder (JSON: ``pid``, ``host``, ``command``, ``started``)."""

RUN_FILES: tuple[str, ...] = (
    "config.json", "checkpoint.pt", "policy.pt", "model.zip", "sb3_policy.json",
    "velocity_bins.json", "tb", "metrics.json", "result.json",
)  # fmt: skip
"""The files and folders a run writes in its ``out`` folder (what ``force`` removes)."""


class RunDirError(ValueError):
    """The ``out`` folder cannot be used for this run (the message says why and what to do)."""


class RunLockWarning(UserWarning):
    """A stale lock of a run that was killed was taken over (the message names it)."""


_HELD: dict[str, RunLock] = {}  # resolved folder -> the lock this process holds on it
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _command_line() -> str:
    """This process's command line, with credentials (URLs with a password) masked."""
    from agents.storage import shown_url

    argv = [shown_url(a) if ("@" in a or "://" in a or "=" in a) else a for a in sys.argv]
    return shlex.join(argv) if argv else "python"


def _pid_alive(pid: Any) -> bool | None:
    """Whether process ``pid`` of this host runs (``None``: unknown)."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return None
    return True


def _describe(holder: Mapping[str, Any]) -> str:
    if not holder:
        return "an unknown process (its lock file is empty)"
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    text = f"pid {pid} on {host}"
    if holder.get("started"):
        text += f" since {holder['started']}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


class RunLock:
    """An exclusive lock on a run folder, held for the life of a run (a context manager).

    Entering creates ``out`` if needed and locks ``out/.lock`` (``fcntl.flock``, exclusive,
    non-blocking), writing the holder's pid, host, command line and start time into it; leaving
    (on any exit: return, exception, Ctrl-C) unlocks and removes the file, and removes ``out``
    when the lock created it and it is still empty. A process that dies holding it (SIGKILL, a
    power cut) loses the lock with its file descriptors; its ``.lock`` file is then stale and the
    next run takes it over with a :class:`RunLockWarning` naming the dead pid. Re-entrant within
    one process: a nested ``RunLock`` on a folder this process already holds does nothing.

    Args:
        out: the run folder.
        enabled: ``False`` makes the lock a no-op (DDP ranks other than 0).

    Raises:
        RunDirError: on entering, ``out`` is a file or cannot be created or written, or another
            live process holds the lock (the message names it: pid, host, since, command).
    """

    def __init__(self, out: str | os.PathLike[str], *, enabled: bool = True) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self.enabled = bool(enabled)
        self.holder: dict[str, Any] = {}
        """What this lock wrote into the lock file (empty until acquired)."""
        self.stale: dict[str, Any] | None = None
        """The holder info of a stale lock this lock took over, if any."""
        self._fd: int | None = None
        self._created = False
        self._outer: RunLock | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now (or re-enters one this process holds)."""
        return self._fd is not None or self._outer is not None

    def _key(self) -> str:
        return os.path.realpath(self.out)

    def acquire(self) -> RunLock:
        """Take the lock (see the class docstring); returns ``self``."""
        if not self.enabled or self.held:
            return self
        shown = repr(str(self.out))
        if self.out.exists() and not self.out.is_dir():
            raise RunDirError(f"out {shown} is a file, not a folder")
        outer = _HELD.get(self._key())
        if outer is not None:
            self._outer = outer
            return self
        try:
            self._created = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"out {shown} cannot be created: {exc.strerror or exc}") from None
        for _ in range(20):  # retried only while a finishing holder removes the file
            try:  # O_NOFOLLOW: a link planted as .lock is never followed (nor truncated through)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
            except OSError as exc:
                self._remove_created()
                if exc.errno == errno.ELOOP or self.path.is_symlink():
                    raise RunDirError(self._link_message()) from None
                raise RunDirError(f"out {shown} cannot be written: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirError(
                        f"out {shown}: cannot lock {LOCK_FILE}: {exc.strerror or exc}"
                    ) from None
                raise RunDirError(self._busy_message(holder)) from None
            try:  # lstat: a link swapped in since the open is not the file locked
                same = os.path.samestat(os.fstat(fd), os.lstat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a file its holder had just removed: lock the new one
        else:
            raise RunDirError(f"out {shown}: its {LOCK_FILE} keeps changing; try again")
        previous = _read_holder(fd)
        if previous:
            self.stale = previous
            ended = (previous.get("host") == socket.gethostname()
                     and _pid_alive(previous.get("pid")) is False)  # fmt: skip
            warnings.warn(
                f"out {shown}: taking over the stale lock of {_describe(previous)}, which "
                f"{'is no longer running' if ended else 'no longer holds it'} (killed?)",
                RunLockWarning,
                stacklevel=3,
            )
        self.holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": _command_line(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(self.holder) + "\n").encode("utf-8"), 0)
        except OSError as exc:
            os.close(fd)
            raise RunDirError(f"out {shown} cannot be written: {exc.strerror or exc}") from None
        self._fd = fd
        _HELD[self._key()] = self
        return self

    def _link_message(self) -> str:
        try:
            target = os.readlink(self.path)
        except OSError:
            target = "?"
        return (
            f"out {str(self.out)!r}: its lock file {LOCK_FILE} is a symbolic link (to "
            f"{target!r}); drum-env never follows it (it would overwrite the target): remove "
            f"the link {str(self.path)!r} and run again"
        )

    def _busy_message(self, holder: Mapping[str, Any]) -> str:
        text = f"out {str(self.out)!r} is in use by another run: {_describe(holder)}"
        if holder.get("host") == socket.gethostname() and _pid_alive(holder.get("pid")) is False:
            text += (
                "; that process has ended but a child of it still holds the lock: wait for it "
                "to exit"
            )
        else:
            text += "; wait for it to finish, or choose another --out"
        return text

    def release(self) -> None:
        """Unlock and remove the lock file (and ``out``, if the lock created it and it is empty)."""
        if self._outer is not None:
            self._outer = None
            return
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD.pop(self._key(), None)
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # before unlocking: a waiting run then locks a fresh file
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self._remove_created()

    def _remove_created(self) -> None:
        if self._created:
            with contextlib.suppress(OSError):
                self.out.rmdir()  # only when empty
            self._created = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder info of an open lock file (empty if none or unreadable)."""
    try:
        raw = os.pread(fd, 4096, 0)
        value = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {"pid": "?", "host": "?", "command": "(unreadable lock file)"}
    return value if isinstance(value, dict) else {}


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), durable=False)


def prepare_run_dir(
    out: str | Path, config: Mapping[str, Any], *, resume: bool = False, force: bool = False,
    resume_file: str = "checkpoint.pt",
) -> Path:  # fmt: skip
    """Claim ``out`` for a run and write its ``config.json``, under the folder's :class:`RunLock`.

    The caller should hold ``RunLock(out)`` for the run's whole life (this function re-enters
    it); without one, the lock is held only while the folder is claimed.

    Args:
        out: the run folder.
        config: the run's config as plain data (written to ``out/config.json``).
        resume: the run continues the one in ``out`` (``resume_file`` must exist there).
        force: delete a previous run's files in ``out`` and start afresh.
        resume_file: the file a resumable run leaves (its absence refuses ``resume``).

    Returns:
        ``out`` as a Path (created).

    Raises:
        RunDirError: ``out`` is a file or cannot be created, is locked by another run, holds a
            previous run while neither ``resume`` nor ``force`` is given, or ``resume`` finds
            nothing to resume.
    """
    path = Path(out)
    with RunLock(path):
        return _claim(path, config, resume, force, resume_file)


def _claim(path: Path, config: Mapping[str, Any], resume: bool, force: bool, resume_file: str
           ) -> Path:  # fmt: skip
    # lexists: a dangling link is a previous file too (force removes the link, never its target)
    previous = [name for name in RUN_FILES if os.path.lexists(path / name)] if path.is_dir() else []
    linked = [name for name in previous if (path / name).is_symlink()]
    if linked and not force:
        shown = ", ".join(f"{name} (to {os.readlink(path / name)!r})" for name in linked)
        raise RunDirError(
            f"out {str(path)!r}: symbolic link(s) where the run writes: {shown}; drum-env never "
            "writes through links: remove them, or pass --force to remove them"
        )
    if previous == ["config.json"] and not linked:  # a run that failed before writing more
        previous = []
    if resume:
        target = path / resume_file
        if target.exists() and not target.is_file():
            raise RunDirError(
                f"out {str(path)!r}: its {resume_file} is a folder (or another non-file), not a "
                f"checkpoint to resume; move it away, or drop --resume to start a new run"
            )
        if not target.is_file():
            raise RunDirError(
                f"out {str(path)!r} has no {resume_file} to resume; drop --resume to start a "
                "new run"
            )
    elif previous:
        if not force:
            raise RunDirError(
                f"out {str(path)!r} already holds a run ({', '.join(previous)}); pass --resume "
                "to continue it, --force to replace it, or choose another --out"
            )
        for name in previous:
            target = path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()  # a link goes, what it points to stays
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / "config.json", dict(config))
    except OSError as exc:
        raise RunDirError(f"out {str(path)!r} cannot be written: {exc.strerror or exc}") from exc
    return path
