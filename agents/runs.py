"""Run folders: one run per folder, its ``config.json``, and no silent mixing of runs.

Every command that trains (``pretrain``, ``train``, ``baseline``) writes into an ``out`` folder
that :func:`prepare_run_dir` claims first:

* a folder that does not exist, is empty, or holds only the ``config.json`` of a run that
  failed before writing anything else, is a new run;
* a folder that holds a previous run (any of :data:`RUN_FILES`) is refused, naming the folder,
  unless the run is resumed (``resume``: the command continues the run in it) or ``force`` is
  given, which deletes the previous run's files (only those of :data:`RUN_FILES`; other files
  are left alone) and starts afresh;
* ``config.json`` (the run's full config, plain JSON) is written atomically, so every run folder
  says how it was made.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dataset.io import atomic_write

__all__ = ["RUN_FILES", "RunDirError", "prepare_run_dir", "write_json"]

RUN_FILES: tuple[str, ...] = (
    "config.json", "checkpoint.pt", "policy.pt", "model.zip", "tb", "metrics.json",
    "result.json",
)  # fmt: skip
"""The files and folders a run writes in its ``out`` folder (what ``force`` removes)."""


class RunDirError(ValueError):
    """The ``out`` folder cannot be used for this run (the message says why and what to do)."""


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), durable=False)


def prepare_run_dir(
    out: str | Path, config: Mapping[str, Any], *, resume: bool = False, force: bool = False,
    resume_file: str = "checkpoint.pt",
) -> Path:  # fmt: skip
    """Claim ``out`` for a run and write its ``config.json``.

    Args:
        out: the run folder.
        config: the run's config as plain data (written to ``out/config.json``).
        resume: the run continues the one in ``out`` (``resume_file`` must exist there).
        force: delete a previous run's files in ``out`` and start afresh.
        resume_file: the file a resumable run leaves (its absence refuses ``resume``).

    Returns:
        ``out`` as a Path (created).

    Raises:
        RunDirError: ``out`` is a file or cannot be created, holds a previous run while neither
            ``resume`` nor ``force`` is given, or ``resume`` finds nothing to resume.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"out {str(path)!r} is a file, not a folder")
    previous = [name for name in RUN_FILES if (path / name).exists()] if path.is_dir() else []
    if previous == ["config.json"]:  # a run that failed before it wrote anything else
        previous = []
    if resume:
        if not (path / resume_file).is_file():
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
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / "config.json", dict(config))
    except OSError as exc:
        raise RunDirError(f"out {str(path)!r} cannot be written: {exc.strerror or exc}") from exc
    return path
