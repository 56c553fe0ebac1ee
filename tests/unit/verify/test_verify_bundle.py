"""Parsing Sigstore bundles: media types, field spellings, shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from verify_testlib import REAL, REKOR_V2, WHEEL, load

from tlog.verify.bundle import MEDIA_TYPES, BundleError, parse_bundle


def test_every_media_type_spelling_in_the_test_data_is_known() -> None:
    seen = {json.loads(p.read_bytes())["mediaType"] for p in REAL.rglob("*.sigstore*")}
    assert seen - set(MEDIA_TYPES) == {"this is completely wrong"}


def test_v02_bundle() -> None:
    bundle = parse_bundle(WHEEL.read_bytes())
    assert bundle.version == "0.2" and bundle.extra_certificates == ()
    (entry,) = bundle.entries
    assert (entry.kind, entry.version, entry.log_index, entry.integrated_time) == ("hashedrekord", "0.0.1", 79605083, 1710888076)
    assert entry.inclusion_proof is not None and entry.inclusion_proof.log_index == 75441652
    assert bundle.message_signature is not None and bundle.message_signature.digest_algorithm == "SHA2_256"


def test_rekor_v2_bundle_has_a_timestamp_and_no_promise() -> None:
    bundle = parse_bundle(REKOR_V2.read_bytes())
    assert len(bundle.timestamps) == 1
    assert bundle.entries[0].signed_entry_timestamp is None and bundle.entries[0].integrated_time is None


def _snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {"".join("_" + c.lower() if c.isupper() else c for c in k): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def test_snake_case_and_json_numbers() -> None:
    doc = _snake(load(WHEEL))
    entry = doc["verification_material"]["tlog_entries"][0]
    entry["log_index"] = int(entry["log_index"])
    entry["integrated_time"] = int(entry["integrated_time"])
    bundle = parse_bundle(json.dumps(doc))
    assert bundle.entries[0].log_index == 79605083


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle.v0.4+json"), "unknown bundle media type"),
        (lambda d: d["verificationMaterial"].pop("x509CertificateChain"), "needs verificationMaterial.x509CertificateChain"),
        (lambda d: d["verificationMaterial"].update(x509CertificateChain={"certificates": []}), "no certificates"),
        (lambda d: d["verificationMaterial"]["x509CertificateChain"]["certificates"][0].update(rawBytes="AAAA"), "not a DER X.509"),
        (lambda d: d.update(dsseEnvelope={"payload": "", "payloadType": "x", "signatures": [{"sig": ""}]}), "exactly one of"),
        (lambda d: d.pop("messageSignature"), "exactly one of"),
        (lambda d: d["verificationMaterial"]["tlogEntries"][0].update(logIndex="-1"), "logIndex is not an unsigned integer"),
        (lambda d: d["verificationMaterial"]["tlogEntries"][0].update(logIndex=True), "not an integer"),
        (lambda d: d["verificationMaterial"]["tlogEntries"][0].pop("canonicalizedBody"), "canonicalizedBody is missing"),
        (lambda d: d["verificationMaterial"]["tlogEntries"][0].pop("kindVersion"), "kindVersion is missing"),
        (lambda d: d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"].update(hashes=["%%"]), "not valid base64"),
        (lambda d: d["verificationMaterial"].update(publicKey={"hint": "x"}) or d["verificationMaterial"].pop("x509CertificateChain"), "public key"),
    ],
)
def test_malformed(edit, error: str) -> None:  # type: ignore[no-untyped-def]
    doc = load(WHEEL)
    edit(doc)
    with pytest.raises(BundleError, match=error):
        parse_bundle(json.dumps(doc))


def test_v03_needs_a_certificate() -> None:
    doc = load(REKOR_V2)
    doc["verificationMaterial"].pop("certificate")
    with pytest.raises(BundleError, match="v0.3 bundle needs verificationMaterial.certificate"):
        parse_bundle(json.dumps(doc))


def test_not_json() -> None:
    with pytest.raises(BundleError, match="not JSON"):
        parse_bundle(b"\x00")
    with pytest.raises(BundleError, match="not a JSON object"):
        parse_bundle(b"[]")
