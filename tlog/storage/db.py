"""Engine set-up for SQLite and PostgreSQL, the writer lock, and migrations.

The same code runs on both databases. What differs is confined here:

* **SQLite** runs in WAL mode with ``synchronous=FULL`` so that a committed
  entry survives a crash or power loss before its response is sent. Python's
  sqlite3 module is put in autocommit mode and transactions are begun by hand,
  so that a write transaction can start with ``BEGIN IMMEDIATE``: it takes the
  database's single write lock up front (waiting up to ``busy_timeout``) instead
  of failing later with "database is locked" when a read turns into a write.
* **PostgreSQL** serialises writers of one tree with a transaction-scoped
  advisory lock, which every frontend machine sharing the database respects.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

#: How long a SQLite writer waits for the write lock before giving up, in ms.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Advisory-lock namespace for tree writers on PostgreSQL ("tlog" in ASCII).
_PG_LOCK_NAMESPACE = 0x746C6F67


#: SQLite's primary result code "database or disk is full" (``sqlite3.SQLITE_FULL``):
#: the disk is full, or the database reached ``PRAGMA max_page_count``.
_SQLITE_FULL = 13
#: PostgreSQL's SQLSTATE ``disk_full`` ("could not extend file ...: No space left on device").
_PG_DISK_FULL = "53100"


def storage_is_full(exc: BaseException) -> bool:
    """True if ``exc`` (a SQLAlchemy error or a driver's own) says the database
    ran out of space, as opposed to being unreachable, locked or broken.

    Both are answered with 503; telling them apart only changes the message, so
    that a client (and the operator reading the logs) sees "full" rather than a
    vague "unavailable" when the disk filled up.
    """
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return bool(code & 0xFF == _SQLITE_FULL)  # the low byte is the primary code
    return getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def storage_error_message(exc: BaseException) -> str:
    """A one-line, client-safe description of a storage failure (no SQL, no paths)."""
    if storage_is_full(exc):
        return "the log's storage is full; retry later"
    return "the log's storage is unavailable; retry later"


def sqlite_url(data_dir: Path) -> str:
    """The default database: a SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / 'tlog.db').resolve()}"


#: PostgreSQL cancels any one statement that runs longer than this (ms), so a
#: pathological query answers 503 instead of holding a worker until gunicorn's
#: 60 s timeout kills it. Migrations lift it (see :func:`upgrade`).
PG_STATEMENT_TIMEOUT_MS = 10_000


def create_engine(url: str, *, pool_size: int = 8, statement_timeout_ms: int | None = None) -> Engine:
    """Create an engine with the settings tlog relies on for ``url``'s dialect.

    ``statement_timeout_ms`` (PostgreSQL only) defaults to :data:`PG_STATEMENT_TIMEOUT_MS`; 0 disables it.
    """
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database in (None, "", ":memory:"):
            raise ValueError("tlog needs a SQLite *file* (several connections share it)")
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            u,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        readers = _SQLiteReaders(u.database)
        _SQLITE_READERS[engine] = readers
        event.listen(engine, "engine_disposed", lambda _engine: readers.close_all())
        return engine
    if u.get_backend_name() == "postgresql":
        if u.get_driver_name() != "psycopg":
            raise ValueError("use the psycopg 3 driver: postgresql+psycopg://...")
        return sa.create_engine(
            u,
            pool_size=pool_size,
            max_overflow=pool_size,
            # No pre-ping (a round trip per checkout): a connection found dead
            # fails that one request with 503 and SQLAlchemy then invalidates
            # the whole pool, so service resumes by itself.
            pool_pre_ping=False,
            pool_recycle=3600,
            connect_args={
                "connect_timeout": 10,
                "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS if statement_timeout_ms is None else statement_timeout_ms}",
            },
        )
    raise ValueError(f"unsupported database URL {u.render_as_string(hide_password=True)!r}")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level; _sqlite_on_begin issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


#: Page cache of each thread's read connection, in KiB.
_READER_CACHE_KIB = 256


class _SQLiteReaders:
    """One read-only sqlite3 connection per thread, outside SQLAlchemy's pool.

    A proof by index is one statement of a handful of indexed point reads
    (~20 us on a 1M-entry log); checking a connection out of the pool and back
    in (with its reset) costs about as much again.
    Each thread of a server therefore keeps its own connection for
    :func:`tlog.storage.store.reading`, in autocommit mode and ``query_only``.
    All of them are closed when the engine is disposed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []

    def connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA query_only=ON")
            # A small page cache per thread: the OS page cache holds the hot
            # pages for all of them, and sixteen 2 MiB caches (the default)
            # would add 32 MiB to every worker.
            db.execute(f"PRAGMA cache_size=-{_READER_CACHE_KIB}")
            with self._lock:
                self._all.append(db)
            self._local.db = db
        return db

    def discard(self) -> None:
        """Drop this thread's connection after an error; the next read opens a new one."""
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            with self._lock:
                if db in self._all:
                    self._all.remove(db)
            db.close()

    def close_all(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
            self._local = threading.local()
        for db in conns:
            db.close()


_SQLITE_READERS: weakref.WeakKeyDictionary[Engine, _SQLiteReaders] = weakref.WeakKeyDictionary()


def sqlite_reader(engine: Engine) -> sqlite3.Connection:
    """This thread's read-only connection to ``engine``'s SQLite database."""
    return _SQLITE_READERS[engine].connection()


def discard_sqlite_reader(engine: Engine) -> None:
    _SQLITE_READERS[engine].discard()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("tlog_sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


@contextlib.contextmanager
def write_transaction(engine: Engine, tree: int) -> Iterator[Connection]:
    """A transaction that holds the single-writer lock of ``tree`` until commit.

    Only one writer at a time may extend a tree, whatever process or machine it
    runs on; this is what keeps indexes dense and the history linear.
    """
    if engine.dialect.name == "sqlite":
        # SQLite's own lock is taken by polling with sleeps of up to 100 ms,
        # which starves one of several competing processes (p99 latencies of
        # a second under load). A blocking flock() on a lock file queues the
        # writers in the kernel instead; BEGIN IMMEDIATE then finds the
        # database free. The file descriptor is opened per transaction, so the
        # lock also excludes other threads of this process.
        with _sqlite_writer_lock(engine), engine.connect() as conn:
            conn = conn.execution_options(tlog_sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, :tree)"), {"ns": _PG_LOCK_NAMESPACE, "tree": tree})
            yield conn


@contextlib.contextmanager
def _sqlite_writer_lock(engine: Engine) -> Iterator[None]:
    path = f"{engine.url.database}.write-lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("tlog") / "migrations"))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest revision, or to ``revision`` (idempotent, safe to race).

    On PostgreSQL an advisory lock keeps two frontends from migrating at once.
    """
    with _migrating(engine) as cfg:
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision``, e.g. to roll back a deployment.

    Only revisions that lose no history can be undone (0005: the stored SETs,
    which the log signs again on reads); the others refuse.
    """
    with _migrating(engine) as cfg:
        command.downgrade(cfg, revision)


@contextlib.contextmanager
def _migrating(engine: Engine) -> Iterator[Config]:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL statement_timeout = 0"))  # a migration may take its time
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, -1)"), {"ns": _PG_LOCK_NAMESPACE})
        yield _alembic_config(conn)


def schema_is_current(engine: Engine) -> bool:
    """True if the database is at the newest migration."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
        head = ScriptDirectory.from_config(_alembic_config(conn)).get_heads()
    return set(current) == set(head)
