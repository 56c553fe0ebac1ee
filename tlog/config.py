"""Server settings: one frozen dataclass, documented field by field.

``tlog serve`` builds it from its options; tests build it directly. Nothing
reads the environment or touches the disk at import time.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path("tlog-data")


def default_origin() -> str:
    """``<hostname>/tlog``: a schemeless name without spaces, as C2SP recommends.

    Only used when the log is first created; set ``--origin`` to the public
    host name of the deployment instead.
    """
    host = socket.gethostname().strip().lower() or "localhost"
    return f"{host}/tlog"


@dataclass(frozen=True)
class Settings:
    #: Directory holding the SQLite database (by default) and the key files.
    data_dir: Path = DEFAULT_DATA_DIR
    #: SQLAlchemy URL; None means ``sqlite:///<data_dir>/tlog.db``.
    database_url: str | None = None
    #: Checkpoint origin of the entry log, used when the log is created.
    #: None means :func:`default_origin`.
    origin: str | None = None
    #: PEM file of the ECDSA P-256 log key; None means ``<data_dir>/log-ecdsa-p256.pem``
    #: (generated on first start).
    ecdsa_key: Path | None = None
    #: PEM file of the Ed25519 checkpoint key; None means ``<data_dir>/log-ed25519.pem``.
    ed25519_key: Path | None = None
    #: Largest accepted request body, in bytes.
    max_request_bytes: int = 128 * 1024
    #: Largest DSSE payload a dsse submission may carry, in bytes (decoded).
    #: The log keeps every payload as the entry's attestation, so a larger one
    #: is refused with 413 where Rekor (``--max_attestation_size``, same
    #: default) would log the entry without it. The request limit above
    #: applies first: with both defaults it is the one that bites.
    max_attestation_bytes: int = 100 * 1024
    #: Most items (UUIDs, indexes or entries) in one search or retrieve request.
    max_batch_items: int = 100
    #: Most results one index search returns.
    max_search_results: int = 1000
    #: Seconds a submission waits to be integrated before answering 503.
    submit_timeout: float = 30.0
    #: Under load, the least time (s) from one integration batch's start to the
    #: next: see :mod:`tlog.sequencer`. A lone submission never waits for it.
    batch_interval: float = 0.01
    #: Connection pool size per worker process.
    pool_size: int = 8
    #: Serve the entry log's APIs (Rekor v1 and tiles at the root).
    log: bool = True
    #: Serve the Fulcio-compatible CA (``/api/v2/...``) and its certificate log.
    ca: bool = True
    #: YAML file of allowed OIDC issuers (see README "Configuring issuers");
    #: None means the built-in list (GitHub Actions, GitLab.com, Google, sigstore.dev).
    oidc_issuers: Path | None = None
    #: Also run and trust the built-in development OIDC issuer (never in production).
    dev_oidc: bool = False
    #: The URL clients reach this server at; the dev issuer's ``iss`` is built from it.
    public_url: str = "http://127.0.0.1:3000"
    #: Organization name in the CA certificates created on first start.
    ca_organization: str = "tlog"
    #: File listing witnesses (``<url> <vkey>`` per line) whose cosignatures
    #: the log collects onto its checkpoints; None means no witnessing.
    witnesses: Path | None = None
    #: Rate limits per client address (``limits`` notation, e.g. "600/minute",
    #: several joined with ";"; None or "none" disables), for submissions
    #: (POST /api/v1/log/entries), signing (POST /api/v2/signingCert) and every
    #: other request; see README "Rate limits" and :mod:`tlog.api.ratelimit`.
    submission_rate_limit: str | None = "600/minute"
    signing_rate_limit: str | None = "300/minute"
    read_rate_limit: str | None = "3000/minute"
    #: Rate limit per signing identity (OIDC issuer + SAN), counted once the token verifies.
    identity_rate_limit: str | None = "300/minute"
    #: Client networks (CIDR) exempt from the per-address limits, not from the
    #: identity limit; loopback by default.
    rate_limit_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    #: ``limits`` storage URI for the counters: "memory://" counts per worker
    #: process; a shared store (e.g. "redis://host:6379") counts across all.
    rate_limit_storage: str = "memory://"
    #: "fixed-window" (one counter per key), "moving-window" or "sliding-window-counter".
    rate_limit_strategy: str = "fixed-window"
    #: Number of proxies in front whose X-Forwarded-For entries are trusted
    #: for the client address (werkzeug ProxyFix ``x_for``); 0 trusts none.
    trust_proxy_headers: int = 0
    #: Unix socket of this server's writer process (:mod:`tlog.writer`), set by
    #: ``tlog serve`` for its workers; None integrates in this process.
    writer_socket: str | None = None

    @property
    def resolved_database_url(self) -> str:
        from tlog.storage.db import sqlite_url

        return self.database_url or sqlite_url(self.data_dir)

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
