"""The per-process services a Flask app serves: engine, logs, sequencers, CA, settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Engine

from tlog.ca.certificate import CertificateAuthority
from tlog.ca.devoidc import DevIssuer, dev_issuer_url
from tlog.ca.issuers import IssuersConfig, default_issuers
from tlog.ca.oidc import TokenVerifier
from tlog.ca.pki import CAKeys
from tlog.config import Settings, default_origin
from tlog.errors import NotFound, Unavailable
from tlog.keys import LogKeys, read_private_key
from tlog.log import TransparencyLog
from tlog.rotation import CERTIFICATE_LOG_ED25519_FILE, CERTIFICATES
from tlog.sequencer import Sequencer
from tlog.shards import ENTRIES, ShardedLog
from tlog.storage import db, store
from tlog.writer import RemoteSequencer

log = logging.getLogger(__name__)



@dataclass
class CAServices:
    """The signing CA: keys, token checks, issuance, and the log of what it issued."""

    keys: CAKeys
    authority: CertificateAuthority
    issuers: IssuersConfig
    verifier: TokenVerifier
    log: TransparencyLog
    sequencer: Sequencer | RemoteSequencer
    dev_issuer: DevIssuer | None


@dataclass
class Services:
    settings: Settings
    engine: Engine
    #: The active shard of the entry log (the one that takes new entries).
    log: TransparencyLog
    #: Every shard of the entry log, for reads by global index and UUID.
    shards: ShardedLog
    sequencer: Sequencer | RemoteSequencer
    ca: CAServices | None

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool) -> Services:
        """Connect, migrate (if asked), load keys and open the logs.

        ``tlog serve`` migrates once in the master process and opens without
        migrating in each worker, which then only checks the schema version.
        """
        engine = db.create_engine(settings.resolved_database_url, pool_size=settings.pool_size)
        if migrate:
            db.upgrade(engine)
        elif not db.schema_is_current(engine):
            raise Unavailable("the database schema is not current; run `tlog db upgrade`")
        keys = LogKeys.load(settings.data_dir, ecdsa_path=settings.ecdsa_key, ed25519_path=settings.ed25519_key)
        origin = settings.origin
        if origin is None and not _tree_exists(engine, ENTRIES):
            origin = default_origin()
        tlog = TransparencyLog.open(engine, keys, purpose=ENTRIES, origin=origin)
        shards = ShardedLog.open(engine, tlog, settings.data_dir)
        ca = _open_ca(settings, engine, keys, tlog) if settings.ca else None
        return cls(settings, engine, tlog, shards, _sequencer(settings, tlog, ENTRIES), ca)


def _open_ca(settings: Settings, engine: Engine, keys: LogKeys, entries: TransparencyLog) -> CAServices:
    ca_keys = CAKeys.load_or_create(settings.data_dir, organization=settings.ca_organization)
    # The certificate log's checkpoints are signed with the CT key (the one the
    # trusted root lists under ctlogs) and the log's Ed25519 key -- the one it
    # had before any rotation of the entry log's keys (see tlog.rotation).
    pinned = settings.data_dir / CERTIFICATE_LOG_ED25519_FILE
    cert_ed25519 = read_private_key(pinned) if pinned.exists() else keys.ed25519
    cert_keys = LogKeys(ecdsa=ca_keys.ct_key, ed25519=cert_ed25519)  # type: ignore[arg-type]
    cert_origin = None if _tree_exists(engine, CERTIFICATES) else entries.info.origin + "/certificates"
    cert_log = TransparencyLog.open(engine, cert_keys, purpose=CERTIFICATES, origin=cert_origin)
    issuers = IssuersConfig.load(settings.oidc_issuers) if settings.oidc_issuers else default_issuers()
    dev = None
    trusted: dict[str, dict[str, object]] = {}
    if settings.dev_oidc:
        dev = DevIssuer.load_or_create(settings.data_dir, dev_issuer_url(settings.public_url))
        issuers = issuers.extended(dev.issuer_configs())
        trusted = dict(dev.trusted_keys())
        log.warning(
            "DEVELOPMENT OIDC ISSUER ENABLED at %s: anyone who can read %s can mint identities; never use in production",
            dev.email_issuer,
            settings.data_dir,
        )
    return CAServices(
        keys=ca_keys,
        authority=CertificateAuthority(ca_keys),
        issuers=issuers,
        verifier=TokenVerifier(issuers, trusted_keys=trusted or None),
        log=cert_log,
        sequencer=_sequencer(settings, cert_log, CERTIFICATES),
        dev_issuer=dev,
    )


def _sequencer(settings: Settings, tlog: TransparencyLog, purpose: str) -> Sequencer | RemoteSequencer:
    """This process's own sequencer, or the server's writer process (``tlog serve``, see tlog.writer)."""
    if settings.writer_socket is None:
        # Only the entry log serves SETs; the certificate log's would never be read.
        return Sequencer(tlog, batch_interval=settings.batch_interval, with_sets=purpose == ENTRIES)
    return RemoteSequencer(settings.writer_socket, purpose)


def _tree_exists(engine: Engine, purpose: str) -> bool:
    with engine.connect() as conn:
        return store.get_tree(conn, purpose=purpose) is not None


def services() -> Services:
    return current_app.extensions["tlog"]  # type: ignore[no-any-return]


def ca_services() -> CAServices:
    ca = services().ca
    if ca is None:
        raise NotFound("this server does not run the signing CA")
    return ca
