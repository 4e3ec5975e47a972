"""Optuna's RDB storage for the tuner: open a URL, name its failures, never show a secret.

:func:`open_storage` opens any Optuna RDB URL (SQLite by default, PostgreSQL for workers on
several machines, with psycopg 3 or psycopg2 picked automatically); a URL that cannot be parsed,
a missing driver and an unreachable server each raise one clear error. Every message shows the
URL through :func:`shown_url`, which hides every credential it can find, whether the URL parses
or not, and :func:`db_reason` scrubs them from the database driver's own messages.
"""

from __future__ import annotations

import importlib.util
import re
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

__all__ = ["shown_url", "url_secrets", "scrub", "db_reason", "open_storage"]

MASK = "***"
"""What a hidden credential is shown as."""

_SECRET_KEY = r"[^=&;#?/]*(?:pass|pwd|secret|token|key|auth|cred|sslpassword)[^=&;#?/]*"
# ?password=..., &sslpassword=..., ;token=... (keys matched case-insensitively)
_QUERY_SECRET = re.compile(rf"([?&;]{_SECRET_KEY}=)([^&;#]*)", re.IGNORECASE)
# a scheme and its separator, typos included: "postgresql://", "postgresql//", "postgresql:/"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)(:/{0,3}|/{1,3})")


def _parses(url: str) -> bool:
    try:
        from sqlalchemy.engine import make_url

        make_url(url)
    except Exception:  # ArgumentError, ValueError (a bad port), ...
        return False
    return "://" in url


def shown_url(url: str) -> str:
    """``url`` with every credential hidden, for messages, logs and stored attributes.

    * a query value whose key names a secret (``password``, ``sslpassword``, ``token``, ...)
      becomes ``***``;
    * the user info (everything between the scheme and the last ``@``): a URL that parses keeps
      its user name (``user:***@host``); a string that does not parse (a typo such as
      ``postgresql//user:pw@host``) loses all of it (``***@host``);
    * a string that does not parse and has no ``@`` keeps only what precedes a ``:`` in its
      host part (``scheme://u:***/db``), as that part may be a password.

    Examples:
        >>> shown_url("postgresql://u:pw@db-host/x")
        'postgresql://u:***@db-host/x'
        >>> shown_url("postgresql://u@db-host:1/x?password=pw&sslmode=require")
        'postgresql://u@db-host:1/x?password=***&sslmode=require'
        >>> shown_url("postgresql//u:pw@db-host/x")
        'postgresql//***@db-host/x'
        >>> shown_url("sqlite:///runs/tune/study.db")
        'sqlite:///runs/tune/study.db'
    """
    text = str(url)
    parses = _parses(text)
    text = _QUERY_SECRET.sub(rf"\1{MASK}", text)
    match = _SCHEME.match(text)
    prefix, rest = (match.group(0), text[match.end() :]) if match else ("", text)
    if "@" in rest:
        at = rest.rfind("@")
        user, colon, _ = rest[:at].partition(":")
        shown_user = f"{user}:{MASK}" if parses and colon and "/" not in user else MASK
        if parses and not colon:
            shown_user = user
        return f"{prefix}{shown_user}{rest[at:]}"
    if not parses:
        host, slash, tail = rest.partition("/")
        name, colon, _ = host.partition(":")
        if colon:
            return f"{prefix}{name}:{MASK}{slash}{tail}"
    return text


def url_secrets(url: str) -> list[str]:
    """The secrets of ``url`` as they may appear in a message, longest first.

    The password (raw, percent-decoded and percent-encoded), the whole user info, and the values
    of secret query keys; at least 3 characters each (shorter strings would mask unrelated
    text).
    """
    text = str(url)
    found: set[str] = set()
    found.update(m.group(2) for m in _QUERY_SECRET.finditer(text))
    match = _SCHEME.match(text)
    rest = text[match.end() :] if match else text
    if "@" in rest:
        userinfo = rest[: rest.rfind("@")]
        found.add(userinfo.partition(":")[2] if ":" in userinfo else "")
        found.add(userinfo)
    elif not _parses(text):  # "scheme://u:pw/db": what follows the ":" may be a password
        found.add(rest.partition("/")[0].partition(":")[2])
    for value in list(found):
        found.update({unquote(value), unquote_plus(value), quote(value, safe=""),
                      quote_plus(value)})  # fmt: skip
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def scrub(message: str, url: str) -> str:
    """``message`` with every secret of ``url`` (see :func:`url_secrets`) replaced by ``***``."""
    for secret in url_secrets(url):
        message = message.replace(secret, MASK)
    return message


def db_reason(exc: Exception, url: str | None = None) -> str:
    """The first line of a database error (the driver's own message when there is one).

    The secrets of ``url`` (when given) are scrubbed from it.
    """
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    return reason if url is None else scrub(reason, url)


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
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        # the parser's message may quote a piece of the URL (a password taken for a port)
        why = ("its port is not a number" if "int()" in str(exc)
               else scrub(str(exc), url))  # fmt: skip
        raise ValueError(
            f"storage {shown!r} is not a database URL ({why}); give an Optuna RDB URL such as "
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
                        f"cannot set up Optuna's tables in {shown!r}: {db_reason(exc, url)}"
                    ) from None
                time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")
    except ImportError as exc:
        cause = exc.__cause__ or exc
        hint = " (pip install 'drum-env[postgres]')" if backend == "postgresql" else ""
        if backend == "postgresql" and not explicit:
            cause = "neither psycopg (3) nor psycopg2 is installed"
        raise ValueError(
            f"storage {shown!r} needs a database driver: {scrub(str(cause), url)}{hint}"
        ) from None
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise ValueError(
            f"storage {shown!r} is not a valid database URL: {scrub(str(exc), url)}"
        ) from None
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        raise ConnectionError(
            f"cannot reach the Optuna storage {shown!r}: {db_reason(exc, url)}"
        ) from None
