"""The ClientTrustConfig that points unmodified Sigstore clients at a deployment.

``sigstore --trust-config FILE sign|attest|verify ...`` reads it. Its shape is
pinned by sigstore-python 4.5.1 (see ../shared/docs/sigstore-python-interop.md
§1): exact media types, no unknown keys, ``operator`` on every service,
RFC 3339 ``Z`` timestamps, intermediates listed in the CA chain, and every
``validFor.start`` in the past (a future start silently drops the key).
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from tlog.ca.pki import CAKeys
from tlog.keys import spki_der
from tlog.log import TransparencyLog
from tlog.shards import ShardedLog

CLIENT_TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
TRUSTED_ROOT = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG = "application/vnd.dev.sigstore.signingconfig.v0.2+json"

#: How far before a key's creation its validity window starts, to absorb clock skew.
_SKEW = datetime.timedelta(minutes=5)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _from_ms(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


def _tlog_instance(
    base_url: str, spki_der: bytes, log_id: bytes, start: datetime.datetime, end: datetime.datetime | None = None
) -> dict[str, Any]:
    valid_for = {"start": _rfc3339(start - _SKEW)}
    if end is not None:
        valid_for["end"] = _rfc3339(end + _SKEW)
    return {
        "baseUrl": base_url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": _b64(spki_der), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": valid_for},
        "logId": {"keyId": _b64(log_id)},
    }


def _subject(cert: x509.Certificate) -> dict[str, str]:
    def first(oid: x509.ObjectIdentifier, default: str) -> str:
        attrs = cert.subject.get_attributes_for_oid(oid)
        return str(attrs[0].value) if attrs else default

    return {"organization": first(NameOID.ORGANIZATION_NAME, "tlog"), "commonName": first(NameOID.COMMON_NAME, "tlog")}


def _shard_instance(base_url: str, log: TransparencyLog) -> dict[str, Any]:
    """A shard's key, valid from its creation until it was frozen (entries are never integrated later)."""
    frozen = log.info.frozen_at
    return _tlog_instance(
        base_url,
        spki_der(log.keys.ecdsa.public_key()),
        log.log_id,
        _from_ms(log.info.created_at),
        None if frozen is None else _from_ms(frozen),
    )


def trusted_root(base_url: str, shards: ShardedLog, ca: CAKeys, *, ct_url: str) -> dict[str, Any]:
    """Every shard's log key (oldest first), the CA chain and the CT key."""
    intermediate, root = ca.chain
    ca_start = max(intermediate.not_valid_before_utc, root.not_valid_before_utc)
    return {
        "mediaType": TRUSTED_ROOT,
        "tlogs": [_shard_instance(base_url, s.log) for s in shards.shards],
        "certificateAuthorities": [
            {
                "subject": _subject(intermediate),
                "uri": base_url,
                "certChain": {
                    "certificates": [
                        {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))} for c in (intermediate, root)
                    ]
                },
                "validFor": {"start": _rfc3339(ca_start)},
            }
        ],
        "ctlogs": [_tlog_instance(ct_url, ca.ct_public_key_der, ca.ct_log_id, ca_start)],
        "timestampAuthorities": [],
    }


def signing_config(base_url: str, *, operator: str, oidc_url: str | None) -> dict[str, Any]:
    def service(url: str) -> dict[str, Any]:
        return {"url": url, "majorApiVersion": 1, "operator": operator}

    return {
        "mediaType": SIGNING_CONFIG,
        "caUrls": [service(base_url)],
        "oidcUrls": [service(oidc_url)] if oidc_url else [],
        "rekorTlogUrls": [service(base_url)],
        "tsaUrls": [],
        "rekorTlogConfig": {"selector": "ANY"},
    }


def client_trust_config(
    base_url: str, shards: ShardedLog, ca: CAKeys, *, operator: str, oidc_url: str | None = None
) -> dict[str, Any]:
    """The whole ClientTrustConfig for a deployment reachable at ``base_url``.

    ``base_url`` must have no trailing slash and no path: sigstore-python
    appends ``/api/v1/log/entries`` to the log URL and replaces the CA URL's
    path with ``/api/v2/signingCert``.
    """
    base_url = base_url.rstrip("/")
    return {
        "mediaType": CLIENT_TRUST_CONFIG,
        "trustedRoot": trusted_root(base_url, shards, ca, ct_url=base_url + "/certificates"),
        "signingConfig": signing_config(base_url, operator=operator, oidc_url=oidc_url),
    }
