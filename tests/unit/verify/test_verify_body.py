"""The log entry body must record the bundle's own materials (CVE-2022-36056),
for each entry type: hashedrekord 0.0.1, dsse 0.0.1, hashedrekord 0.0.2
(message signatures and DSSE envelopes)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from verify_testlib import REKOR_V2, WHEEL, certificate_of

from tlog.verify.body import BodyMismatch, check_body, key_details_of
from tlog.verify.bundle import Bundle, DsseEnvelope, LogEntry, MessageSignature

CERT = certificate_of(WHEEL)
OTHER_CERT = certificate_of(REKOR_V2)
SIG = b"\x30\x06\x02\x01\x01\x02\x01\x01"
DIGEST = hashlib.sha256(b"artifact").digest()
ENVELOPE = DsseEnvelope(payload=b'{"_type":"https://in-toto.io/Statement/v1"}', payload_type="application/vnd.in-toto+json", signatures=(SIG,))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def pem_b64(cert: Any = CERT) -> str:
    return b64(cert.public_bytes(serialization.Encoding.PEM))


def bundle(*, dsse: bool = False, cert: Any = CERT) -> Bundle:
    return Bundle(
        media_type="application/vnd.dev.sigstore.bundle.v0.3+json",
        version="0.3",
        certificate=cert,
        extra_certificates=(),
        entries=(),
        timestamps=(),
        message_signature=None if dsse else MessageSignature("SHA2_256", DIGEST, SIG),
        dsse=ENVELOPE if dsse else None,
    )


def entry(body: dict[str, Any]) -> LogEntry:
    return LogEntry(
        log_index=1, log_id=b"\x00" * 32, kind=body["kind"], version=body["apiVersion"],
        integrated_time=None, signed_entry_timestamp=None, inclusion_proof=None,
        body=json.dumps(body).encode(),
    )  # fmt: skip


def hashedrekord_v001(**changes: Any) -> dict[str, Any]:
    spec = {
        "data": {"hash": {"algorithm": "sha256", "value": changes.get("digest", DIGEST).hex()}},
        "signature": {"content": b64(changes.get("sig", SIG)), "publicKey": {"content": pem_b64(changes.get("cert", CERT))}},
    }
    return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": spec}


def dsse_v001(**changes: Any) -> dict[str, Any]:
    payload = changes.get("payload", ENVELOPE.payload)
    spec = {
        "envelopeHash": {"algorithm": "sha256", "value": "00" * 32},
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
        "signatures": changes.get("signatures", [{"signature": b64(SIG), "verifier": pem_b64(changes.get("cert", CERT))}]),
    }
    return {"apiVersion": "0.0.1", "kind": "dsse", "spec": spec}


def hashedrekord_v002(digest: bytes, **changes: Any) -> dict[str, Any]:
    cert = changes.get("cert", CERT)
    return {
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": {
            "hashedRekordV002": {
                "data": {"algorithm": changes.get("algorithm", "SHA2_256"), "digest": b64(digest)},
                "signature": {
                    "content": b64(changes.get("sig", SIG)),
                    "verifier": {"keyDetails": key_details_of(cert), "x509Certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))}},
                },
            }
        },
    }


def test_hashedrekord_v001_matches() -> None:
    assert "records this signature" in check_body(entry(hashedrekord_v001()), bundle(), ("sha256", DIGEST))


@pytest.mark.parametrize(
    ("changes", "what"),
    [
        ({"sig": b"\x30\x00"}, "signature"),
        ({"cert": OTHER_CERT}, "certificate"),
        ({"digest": b"\x01" * 32}, "digest"),
    ],
)
def test_hashedrekord_v001_mismatch(changes: dict[str, Any], what: str) -> None:
    with pytest.raises(BodyMismatch, match=f"another {what}"):
        check_body(entry(hashedrekord_v001(**changes)), bundle(), ("sha256", DIGEST))


def test_pretty_printed_body_is_compared_by_value() -> None:
    pretty = entry(hashedrekord_v001())
    pretty = dataclasses.replace(pretty, body=json.dumps(json.loads(pretty.body), indent=4).encode())
    check_body(pretty, bundle(), ("sha256", DIGEST))


def test_kind_must_agree_with_the_bundle() -> None:
    body = hashedrekord_v001()
    mislabelled = dataclasses.replace(entry(body), kind="dsse")
    with pytest.raises(BodyMismatch, match="the bundle says dsse"):
        check_body(mislabelled, bundle(), ("sha256", DIGEST))
    with pytest.raises(BodyMismatch, match="needs a bundle with a messageSignature"):
        check_body(entry(body), bundle(dsse=True), None)


def test_dsse_v001() -> None:
    assert "payload hash" in check_body(entry(dsse_v001()), bundle(dsse=True), None)
    with pytest.raises(BodyMismatch, match="another payload"):
        check_body(entry(dsse_v001(payload=b"{}")), bundle(dsse=True), None)
    with pytest.raises(BodyMismatch, match="another certificate"):
        check_body(entry(dsse_v001(cert=OTHER_CERT)), bundle(dsse=True), None)
    with pytest.raises(BodyMismatch, match="another signatures"):
        check_body(entry(dsse_v001(signatures=[])), bundle(dsse=True), None)


def test_hashedrekord_v002_message_signature() -> None:
    check_body(entry(hashedrekord_v002(DIGEST)), bundle(), ("sha256", DIGEST))
    with pytest.raises(BodyMismatch, match="another digest"):
        check_body(entry(hashedrekord_v002(DIGEST, algorithm="SHA2_384")), bundle(), ("sha256", DIGEST))
    with pytest.raises(BodyMismatch, match="another certificate"):
        check_body(entry(hashedrekord_v002(DIGEST, cert=OTHER_CERT)), bundle(), ("sha256", DIGEST))


def test_hashedrekord_v002_dsse_records_the_pae_digest() -> None:
    """Rekor v2 logs a DSSE envelope as hashedrekord over SHA-256(PAE)."""
    pae = b"DSSEv1 28 application/vnd.in-toto+json 43 " + ENVELOPE.payload
    assert ENVELOPE.pae() == pae
    assert "DSSE" in check_body(entry(hashedrekord_v002(hashlib.sha256(pae).digest())), bundle(dsse=True), None)
    with pytest.raises(BodyMismatch, match="another digest"):
        check_body(entry(hashedrekord_v002(hashlib.sha256(ENVELOPE.payload).digest())), bundle(dsse=True), None)


def test_malformed_bodies() -> None:
    with pytest.raises(BodyMismatch, match="not JSON"):
        check_body(dataclasses.replace(entry(hashedrekord_v001()), body=b"{"), bundle(), ("sha256", DIGEST))
    body = hashedrekord_v001()
    del body["spec"]["signature"]
    with pytest.raises(BodyMismatch, match="no signature.content"):
        check_body(entry(body), bundle(), ("sha256", DIGEST))
