"""Optuna's RDB storage for the tuner: open a URL, name its failures, never show a secret.

:func:`open_storage` opens any Optuna RDB URL (SQLite by default, PostgreSQL for workers on
several machines, with psycopg 3 or psycopg2 picked automatically); a URL that cannot be parsed,
a missing driver and an unreachable server each raise one clear error. Every message shows the
URL through :func:`shown_url`, which hides the password.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["shown_url", "db_reason", "open_storage"]


def shown_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: show it without any user info
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url


def db_reason(exc: Exception) -> str:
    """The first line of a database error (the driver's own message when there is one)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def open_storage(url: str, heartbeat_s: int | None = None, sqlite_dir: str | Path | None = None):
    """Open an Optuna RDB storage; bad or unreachable URLs raise with the URL named (masked).

    Args:
        url: the storage URL.
        heartbeat_s: seconds between trial heartbeats (``None``: none); a trial silent for
            twice as long is failed by the next worker.
        sqlite_dir: a folder to create first (the default SQLite file's).

    Raises:
        ValueError: the URL cannot be parsed, or its database driver is missing.
        ConnectionError: the database cannot be reached or opened.
    """
    import sqlalchemy.exc
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage
    from sqlalchemy.engine import make_url

    shown = shown_url(url)
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except sqlalchemy.exc.ArgumentError as exc:
        raise ValueError(
            f"storage {shown!r} is not a database URL ({exc}); give an Optuna RDB URL such as "
            "'sqlite:///runs/tune/study.db' or 'postgresql://user:password@host/db'"
        ) from None
    explicit = "+" in parsed.drivername  # e.g. postgresql+psycopg2://
    if backend == "postgresql" and not explicit:
        # SQLAlchemy's default driver for postgresql:// is psycopg2 (1.4, 2.0) or psycopg 3
        # (2.1): use whichever of the two is installed
        for module in ("psycopg", "psycopg2"):
            if importlib.util.find_spec(module) is not None:
                parsed = parsed.set(drivername=f"postgresql+{module}")
                url = parsed.render_as_string(hide_password=False)
                break
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 60}  # workers on one file wait for the lock
        if sqlite_dir is not None:
            Path(sqlite_dir).mkdir(parents=True, exist_ok=True)
    elif backend in ("postgresql", "mysql"):
        # long trials: re-check pooled connections; an unreachable host fails in seconds
        engine_kwargs["pool_pre_ping"] = True
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    heartbeat = heartbeat_s
    try:
        for attempt in range(3):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    return RDBStorage(
                        url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                        grace_period=None if heartbeat is None else 2 * heartbeat,
                    )  # fmt: skip
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
                # workers creating Optuna's tables in a fresh database at the same moment
                # collide (PostgreSQL: duplicate key in pg_type); the tables exist a moment later
                if attempt == 2:
                    raise ValueError(
                        f"cannot set up Optuna's tables in {shown!r}: {db_reason(exc)}"
                    ) from None
                time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")
    except ImportError as exc:
        cause = exc.__cause__ or exc
        hint = " (pip install 'drum-env[postgres]')" if backend == "postgresql" else ""
        if backend == "postgresql" and not explicit:
            cause = "neither psycopg (3) nor psycopg2 is installed"
        raise ValueError(f"storage {shown!r} needs a database driver: {cause}{hint}") from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise ValueError(f"storage {shown!r} is not a valid database URL: {exc}") from None
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        raise ConnectionError(
            f"cannot reach the Optuna storage {shown!r}: {db_reason(exc)}"
        ) from None
