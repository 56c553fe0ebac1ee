"""Reading trust configs: bare TrustedRoot or ClientTrustConfig, and their keys."""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from verify_testlib import PRODUCTION_ROOT, STAGING_ROOT

from tlog.verify.trust import (
    TrustConfigError,
    hash_for_key_details,
    parse_time,
    parse_trust_root,
)


def test_production_root() -> None:
    root = parse_trust_root(json.loads(PRODUCTION_ROOT.read_bytes()))
    assert [t.host for t in root.tlogs] == ["rekor.sigstore.dev", "log2025-1.rekor.sigstore.dev"]
    rekor = root.tlogs[0]
    assert rekor.log_id == rekor.spki_hash  # Rekor v1: SHA-256 of the key
    assert rekor.log_id[:4].hex() == "c0d23d6a"
    assert root.tlog(rekor.log_id) is rekor
    assert root.tlog(b"\x00" * 32) is None
    assert root.tlogs[1].log_id[:4].hex() == "cf119915"  # Rekor v2: the C2SP note key ID
    assert len(root.certificate_authorities) == 2 and len(root.timestamp_authorities) == 1
    assert root.ctlog(root.ctlogs[1].log_id) is root.ctlogs[1]


def test_rsa_ct_key_in_staging() -> None:
    root = parse_trust_root(json.loads(STAGING_ROOT.read_bytes()))
    assert root.ctlogs[0].key_details == "PKCS1_RSA_PKCS1V5"
    assert root.ctlogs[0].hash_algorithm is not None


def test_client_trust_config_wrapper() -> None:
    inner = json.loads(PRODUCTION_ROOT.read_bytes())
    wrapped = {"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json", "trustedRoot": inner, "signingConfig": {}}
    assert parse_trust_root(wrapped) == parse_trust_root(inner)


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ([], "not a JSON object"),
        ({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}, "unknown trust config media type"),
        ({"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"}, "no trustedRoot"),
        ({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}, "not a TrustedRoot"),
        ({"tlogs": [{"publicKey": {"rawBytes": "AAAA", "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}]}, "SubjectPublicKeyInfo"),
        ({"tlogs": [{"publicKey": {"rawBytes": "!!", "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}]}, "base64"),
        ({"certificateAuthorities": [{"certChain": {"certificates": []}}]}, "no certificates"),
        ({"certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": "AAAA"}]}}]}, "not a DER X.509"),
    ],
)
def test_malformed(doc: object, error: str) -> None:
    with pytest.raises(TrustConfigError, match=error):
        parse_trust_root(doc)


def test_unknown_key_details_drop_that_key() -> None:
    """Like sigstore clients: a deprecated key type is left out, with a note."""
    doc = json.loads(PRODUCTION_ROOT.read_bytes())
    doc["tlogs"][0]["publicKey"]["keyDetails"] = "PKIX_ECDSA_P384_SHA_256"
    root = parse_trust_root(doc)
    assert [t.host for t in root.tlogs] == ["log2025-1.rekor.sigstore.dev"]
    assert root.ignored == ("tlogs[0] (PKIX_ECDSA_P384_SHA_256)",)
    with pytest.raises(TrustConfigError):
        hash_for_key_details("nope")


def test_times() -> None:
    utc = datetime.UTC
    assert parse_time("2022-12-31T23:59:59.999Z") == datetime.datetime(2022, 12, 31, 23, 59, 59, 999000, tzinfo=utc)
    assert parse_time("2025-01-01T01:00:00+01:00") == datetime.datetime(2025, 1, 1, tzinfo=utc)
    with pytest.raises(TrustConfigError, match="no time zone"):
        parse_time("2025-01-01T00:00:00")


def test_missing_log_id_defaults_to_the_key_hash() -> None:
    doc = json.loads(PRODUCTION_ROOT.read_bytes())
    del doc["tlogs"][0]["logId"]
    root = parse_trust_root(doc)
    assert base64.b64encode(root.tlogs[0].log_id).decode() == "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="
