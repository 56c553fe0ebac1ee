"""The per-process services a Flask app serves: engine, log, sequencer, settings."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Engine

from tlog.config import Settings, default_origin
from tlog.errors import Unavailable
from tlog.keys import LogKeys
from tlog.log import TransparencyLog
from tlog.sequencer import Sequencer
from tlog.storage import db

#: Tree purpose of the Rekor-style entry log.
ENTRIES = "entries"


@dataclass
class Services:
    settings: Settings
    engine: Engine
    log: TransparencyLog
    sequencer: Sequencer

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool) -> Services:
        """Connect, migrate (if asked), load keys and open the log.

        ``tlog serve`` migrates once in the master process and opens without
        migrating in each worker, which then only checks the schema version.
        """
        engine = db.create_engine(settings.resolved_database_url, pool_size=settings.pool_size)
        if migrate:
            db.upgrade(engine)
        elif not db.schema_is_current(engine):
            raise Unavailable("the database schema is not current; run `tlog db upgrade`")
        keys = LogKeys.load(settings.data_dir, ecdsa_path=settings.ecdsa_key, ed25519_path=settings.ed25519_key)
        origin = settings.origin if settings.origin is not None else _origin_if_new(engine)
        tlog = TransparencyLog.open(engine, keys, purpose=ENTRIES, origin=origin)
        return cls(settings, engine, tlog, Sequencer(tlog))


def _origin_if_new(engine: Engine) -> str | None:
    """The default origin, but only for a log that does not exist yet."""
    from tlog.storage import store

    with engine.connect() as conn:
        return None if store.get_tree(conn, purpose=ENTRIES) else default_origin()


def services() -> Services:
    return current_app.extensions["tlog"]  # type: ignore[no-any-return]
