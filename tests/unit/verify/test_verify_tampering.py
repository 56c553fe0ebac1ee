"""Tampering with real bundles: each change is caught, at the step that owns it.

The production wheel bundle (Rekor v1: SET, checkpoint, hashedrekord 0.0.1)
and the staging Rekor v2 bundle (Ed25519 checkpoint, RFC 3161 timestamp,
hashedrekord 0.0.2) are edited one field at a time.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from verify_testlib import (
    PRODUCTION_ROOT,
    REAL,
    REKOR_V2,
    STAGING_ROOT,
    WHEEL,
    WHEEL_ARTIFACT,
    WHEEL_IDENTITY,
    WHEEL_ISSUER,
    RealCase,
    certificate_of,
    dump,
    failed,
    flip_b64,
    load,
    run_case,
)

from tlog.verify import Artifact, Status, load_trust_root
from tlog.verify.trust import TrustRoot

WHEEL_CASE = RealCase(WHEEL, PRODUCTION_ROOT, WHEEL_IDENTITY, WHEEL_ISSUER, frozenset())
V2_CASE = RealCase(REKOR_V2, STAGING_ROOT, "jku@goto.fi", "https://github.com/login/oauth", frozenset())


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["verificationMaterial"]["tlogEntries"][0]  # type: ignore[no-any-return]


def _proof(doc: dict[str, Any]) -> dict[str, Any]:
    return _entry(doc)["inclusionProof"]  # type: ignore[no-any-return]


def _set_checkpoint_line(doc: dict[str, Any], edit: Callable[[str], str]) -> None:
    cp = _proof(doc)["checkpoint"]
    text, _, sigs = cp["envelope"].rpartition("\n\n")
    cp["envelope"] = text + "\n\n" + edit(sigs)


def _flip_checkpoint_signature(sigs: str) -> str:
    name_part, b64 = sigs.rstrip("\n").rsplit(" ", 1)
    return f"{name_part} {flip_b64(b64)}\n"


def _wrong_hint(sigs: str) -> str:
    name_part, b64 = sigs.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 0xFF
    return f"{name_part} {base64.b64encode(bytes(raw)).decode()}\n"


def _other_cert(doc: dict[str, Any]) -> None:
    other = load(REAL / "production" / "Python-3.12.5.tgz.sigstore")
    doc["verificationMaterial"]["x509CertificateChain"] = other["verificationMaterial"]["x509CertificateChain"]


def _flip_cert_signature(doc: dict[str, Any]) -> None:
    chain = doc["verificationMaterial"]["x509CertificateChain"]["certificates"]
    chain[0]["rawBytes"] = flip_b64(chain[0]["rawBytes"])  # the last byte is in the CA's signature


def _reencode_body(doc: dict[str, Any]) -> None:
    body = json.loads(base64.b64decode(_entry(doc)["canonicalizedBody"]))
    _entry(doc)["canonicalizedBody"] = base64.b64encode(json.dumps(body, indent=1).encode()).decode()


def _body_with_other_digest(doc: dict[str, Any]) -> None:
    body = json.loads(base64.b64decode(_entry(doc)["canonicalizedBody"]))
    body["spec"]["data"]["hash"]["value"] = "00" * 32
    _entry(doc)["canonicalizedBody"] = base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def _set(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last: Any = int(path[-1]) if path[-1].isdigit() else path[-1]
        target[last] = value(target[last]) if callable(value) else value

    return edit


_E = ["verificationMaterial", "tlogEntries", "0"]

WHEEL_TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], set[str]]] = {
    "SET signature": (_set([*_E, "inclusionPromise", "signedEntryTimestamp"], flip_b64), {"set"}),
    "integratedTime": (_set([*_E, "integratedTime"], lambda v: str(int(v) + 1)), {"set"}),
    "logIndex": (_set([*_E, "logIndex"], lambda v: str(int(v) + 1)), {"set"}),
    "unknown logId": (_set([*_E, "logId", "keyId"], lambda v: base64.b64encode(b"\x01" * 32).decode()), {"log-entry"}),
    "proof hash": (_set([*_E, "inclusionProof", "hashes", "3"], flip_b64), {"inclusion"}),
    "proof index": (_set([*_E, "inclusionProof", "logIndex"], lambda v: str(int(v) - 1)), {"inclusion"}),
    "proof root": (_set([*_E, "inclusionProof", "rootHash"], flip_b64), {"inclusion", "checkpoint"}),
    "proof tree size": (_set([*_E, "inclusionProof", "treeSize"], lambda v: str(int(v) + 1)), {"inclusion", "checkpoint"}),
    "checkpoint signature": (lambda d: _set_checkpoint_line(d, _flip_checkpoint_signature), {"checkpoint"}),
    "checkpoint key hint": (lambda d: _set_checkpoint_line(d, _wrong_hint), {"checkpoint"}),
    "checkpoint text": (
        lambda d: _set([*_E, "inclusionProof", "checkpoint", "envelope"], lambda v: v.replace("\n75441653\n", "\n75441654\n", 1))(d),
        {"checkpoint"},
    ),
    "checkpoint removed": (lambda d: _proof(d).pop("checkpoint"), {"checkpoint"}),
    "inclusion proof removed": (lambda d: _entry(d).pop("inclusionProof"), {"inclusion"}),
    "body re-encoded": (_reencode_body, {"inclusion", "set"}),
    "certificate swapped": (_other_cert, {"certificate-chain", "identity", "signature", "entry-body"}),
    "certificate signature": (_flip_cert_signature, {"certificate-chain", "entry-body"}),
    "message signature": (
        _set(["messageSignature", "signature"], lambda v: load(REAL / "production" / "Python-3.12.5.tgz.sigstore")["messageSignature"]["signature"]),
        {"signature", "entry-body"},
    ),
    "message digest": (_set(["messageSignature", "messageDigest", "digest"], flip_b64), {"artifact", "signature", "entry-body"}),
    "media type": (_set(["mediaType"], "application/vnd.dev.sigstore.bundle+json;version=9.9"), {"bundle"}),
}


@pytest.mark.parametrize("what", sorted(WHEEL_TAMPERING))
def test_tampered_wheel_bundle(what: str) -> None:
    edit, expected = WHEEL_TAMPERING[what]
    doc = load(WHEEL)
    edit(doc)
    report = run_case(WHEEL_CASE, dump(doc))
    assert failed(report) == expected, report.render()


def test_body_recording_another_digest_is_a_body_mismatch() -> None:
    """A body edited to another digest also breaks the Merkle leaf and the SET,
    but the body check names the discrepancy itself."""
    doc = load(WHEEL)
    _body_with_other_digest(doc)
    report = run_case(WHEEL_CASE, dump(doc))
    assert failed(report) == {"inclusion", "set", "entry-body"}
    assert "digest" in report.get("entry-body").detail  # type: ignore[union-attr]


def test_other_digest() -> None:
    report = run_case(WHEEL_CASE, artifact=Artifact(digest=("sha256", b"\x00" * 32)))
    assert failed(report) == {"artifact"}


def test_tampered_artifact_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "rfc8785-0.1.2-py3-none-any.whl"
    data = bytearray(WHEEL_ARTIFACT.read_bytes())
    data[100] ^= 1
    copy.write_bytes(bytes(data))
    report = run_case(WHEEL_CASE, artifact=Artifact(path=copy))
    assert failed(report) == {"artifact"}
    assert "the bundle signed" in report.get("artifact").detail  # type: ignore[union-attr]


def _without(trust: TrustRoot, **fields: Any) -> TrustRoot:
    return dataclasses.replace(trust, **fields)


def test_trust_root_without_the_ca() -> None:
    trust = _without(load_trust_root(PRODUCTION_ROOT), certificate_authorities=())
    assert failed(run_case(WHEEL_CASE, trust=trust)) == {"certificate-chain"}


def test_trust_root_with_only_the_expired_ca() -> None:
    full = load_trust_root(PRODUCTION_ROOT)
    trust = _without(full, certificate_authorities=full.certificate_authorities[:1])
    report = run_case(WHEEL_CASE, trust=trust)
    assert failed(report) == {"certificate-chain"}
    assert "no certificate authority" in report.get("certificate-chain").detail  # type: ignore[union-attr]


def test_trust_root_without_ct_logs() -> None:
    trust = _without(load_trust_root(PRODUCTION_ROOT), ctlogs=())
    assert failed(run_case(WHEEL_CASE, trust=trust)) == {"sct"}


def test_trust_root_with_another_log_key_under_the_same_log_id() -> None:
    prod, staging = load_trust_root(PRODUCTION_ROOT), load_trust_root(STAGING_ROOT)
    impostor = dataclasses.replace(staging.tlogs[0], log_id=prod.tlogs[0].log_id)
    report = run_case(WHEEL_CASE, trust=_without(prod, tlogs=(impostor,)))
    assert failed(report) == {"checkpoint", "set"}


def test_certificate_outside_its_validity_at_the_signing_time() -> None:
    doc = load(WHEEL)
    _entry(doc)["integratedTime"] = str(int(_entry(doc)["integratedTime"]) + 3600)
    report = run_case(WHEEL_CASE, dump(doc))
    # The SET no longer verifies, so the shifted time is never trusted.
    assert failed(report) == {"set"}
    assert report.status("certificate-chain") is Status.SKIP


# --- Rekor v2 (staging): Ed25519 checkpoint, RFC 3161 timestamp ---------------------------


def _tsa(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["verificationMaterial"]["timestampVerificationData"]  # type: ignore[no-any-return]


V2_TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], set[str]]] = {
    "timestamp signature": (lambda d: _tsa(d)["rfc3161Timestamps"][0].update(signedTimestamp=flip_b64(_tsa(d)["rfc3161Timestamps"][0]["signedTimestamp"])), {"timestamp"}),
    "timestamp removed": (lambda d: _tsa(d).update(rfc3161Timestamps=[]), {"time"}),
    "timestamp duplicated": (lambda d: _tsa(d)["rfc3161Timestamps"].append(dict(_tsa(d)["rfc3161Timestamps"][0])), {"timestamp"}),
    "checkpoint signature": (lambda d: _set_checkpoint_line(d, _flip_checkpoint_signature), {"checkpoint"}),
    "checkpoint signer name": (lambda d: _set_checkpoint_line(d, lambda s: s.replace("log2025-alpha1.rekor", "log2025-alpha9.rekor")), {"checkpoint"}),
    "proof hash": (_set([*_E, "inclusionProof", "hashes", "0"], flip_b64), {"inclusion"}),
    "message signature": (_set(["messageSignature", "signature"], lambda v: load(WHEEL)["messageSignature"]["signature"]), {"timestamp", "signature", "entry-body"}),
    "an inclusion promise on a 0.0.2 entry": (
        lambda d: _entry(d).update(integratedTime="1749470258", inclusionPromise={"signedEntryTimestamp": "MEUCIQ=="}),
        {"set"},
    ),
}


@pytest.mark.parametrize("what", sorted(V2_TAMPERING))
def test_tampered_rekor_v2_bundle(what: str) -> None:
    edit, expected = V2_TAMPERING[what]
    doc = load(REKOR_V2)
    edit(doc)
    report = run_case(V2_CASE, dump(doc))
    assert failed(report) == expected, report.render()


def test_rekor_v2_without_timestamp_authorities() -> None:
    trust = _without(load_trust_root(STAGING_ROOT), timestamp_authorities=())
    report = run_case(V2_CASE, trust=trust)
    assert failed(report) == {"timestamp"}
    assert "no timestamp authorities" in report.get("timestamp").detail  # type: ignore[union-attr]


def test_rekor_v2_tsa_valid_for_excludes_the_time() -> None:
    trust = load_trust_root(STAGING_ROOT)
    tsa = trust.timestamp_authorities[0]
    shifted = dataclasses.replace(tsa, validity=dataclasses.replace(tsa.validity, start=tsa.validity.start.replace(year=2026)))  # type: ignore[union-attr]
    report = run_case(V2_CASE, trust=_without(trust, timestamp_authorities=(shifted,)))
    assert failed(report) == {"timestamp"}
    assert "outside" in report.get("timestamp").detail  # type: ignore[union-attr]


def test_rekor_v2_certificate_is_checked_at_the_tsa_time() -> None:
    report = run_case(V2_CASE)
    chain = report.get("certificate-chain")
    assert chain is not None and "2025-06-09T11:57:38Z" in chain.detail
    assert certificate_of(REKOR_V2).not_valid_before_utc.isoformat() < "2025-06-09T11:57:38"
