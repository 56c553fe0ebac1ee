"""Trusted-publisher watch: report Python distributions signed by anyone but their
trusted publisher, as soon as the signature is in the log.

For each batch of entries the audit hashes (:func:`monitor.audit.audit_log`),
:meth:`PublisherWatch.check_batch`:

1. picks the ``dsse`` entries (the body decoder is :func:`monitor.watch.decode_entry`);
2. fetches their Rekor API form, which carries the DSSE payload as
   ``attestation.data``, 100 indexes per ``POST /api/v1/log/entries/retrieve``;
   other entries cost no request;
3. checks that the API served the body the tree holds and that
   ``SHA-256(payload)`` is the body's ``payloadHash``, because only then is the
   statement the one that was signed and logged. A payload that does not hash
   right is ``attestation_mismatch`` (the log serves another statement than it
   logged: evidence against the log); no payload is ``attestation_missing``
   (the log keeps every dsse payload it accepts, so one it cannot serve was
   lost, or was logged before payloads were kept);
4. parses the payload as an in-toto Statement (:mod:`monitor.intoto`); other
   payload types are not about distributions and are skipped;
5. for each subject whose name is a wheel or sdist of a project in the
   :class:`~monitor.publishers.PublisherPolicy`, compares each signer's
   certificate identity (:class:`monitor.watch.VerifierInfo`) with the
   project's trusted publishers; matching none is ``unexpected_publisher``.

Findings are returned, not emitted: the audit writes them as alerts only after
the tree they came from verified (same as watchlist matches). An unreachable
log propagates :class:`~monitor.client.LogUnreachable`, so the pass is retried
and no entry goes unchecked. Steps 3-5 are the pure function :func:`inspect`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from monitor.client import LogClient, ProtocolError, RetrievedEntry
from monitor.intoto import NotAStatement, parse_statement
from monitor.publishers import (
    IDENTITY_OIDS,
    PublisherPolicy,
    SignerIdentity,
    distribution_project,
)
from monitor.watch import EntryBody, VerifierInfo, decode_entry

__all__ = [
    "ATTESTATION_MISMATCH",
    "ATTESTATION_MISSING",
    "UNEXPECTED_PUBLISHER",
    "Finding",
    "PublisherWatch",
    "inspect",
    "signer_identity",
]

log = logging.getLogger(__name__)

UNEXPECTED_PUBLISHER: Final = "unexpected_publisher"
ATTESTATION_MISMATCH: Final = "attestation_mismatch"
ATTESTATION_MISSING: Final = "attestation_missing"
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Finding:
    """One alert's worth: ``type``, the entry's index, a message and the evidence."""

    type: str
    log_index: int
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_alert(self) -> dict[str, Any]:
        """The alert fields (the audit adds ``log`` and ``origin``)."""
        return {"type": self.type, "log_index": self.log_index, "message": self.message, "evidence": self.evidence}


def signer_identity(verifier: str | bytes) -> SignerIdentity:
    """The identity a dsse verifier (base64 PEM certificate or key) states.

    Never raises: a verifier that cannot be read is an identity of kind
    ``unreadable``, which no publisher matches.
    """
    try:
        info = VerifierInfo.parse(verifier, need_cert_details=True)
    except Exception:  # noqa: BLE001 - a log may hold anything; it is reported, not trusted
        info = None
    if info is None:
        return SignerIdentity(kind="unreadable")
    if info.kind != "certificate":
        return SignerIdentity(kind=info.kind, fingerprint=info.public_key_sha256)
    extensions = {name: text for name, oid in IDENTITY_OIDS.items() if (text := info.extension_text(oid))}
    return SignerIdentity("certificate", info.sans, info.issuer, extensions, info.certificate_sha256)


def inspect(
    policy: PublisherPolicy,
    *,
    origin: str,
    entry: EntryBody,
    served: RetrievedEntry,
    leaf_hash: bytes,
    identity_of: Callable[[str | bytes], SignerIdentity] = signer_identity,
) -> list[Finding]:
    """Steps 3-5 of the module docstring for one dsse ``entry`` (the verified body,
    decoded) and what the Rekor API ``served`` for its index; ``leaf_hash`` is the
    entry's RFC 6962 leaf hash."""
    index = served.log_index
    where = {"origin": origin, "log_index": index, "uuid": served.uuid}

    # (3) The payload must be the one the log bound into the entry.
    if not served.uuid.lower().endswith(leaf_hash.hex()):
        return [_mismatch(where, "the Rekor API serves another entry (UUID) at this index than the verified tree holds")]
    payload_hash = _payload_hash(entry)
    where["payload_hash"] = payload_hash
    if payload_hash is None:
        return [_mismatch(where, "the entry has no sha256 payloadHash to check its attestation against")]
    if served.attestation is None:
        return [
            Finding(
                ATTESTATION_MISSING,
                index,
                f"log entry {index} (dsse) is served without its attestation; the payload with "
                f"SHA-256 {payload_hash} cannot be read",
                where,
            )
        ]
    try:
        payload = base64.b64decode(served.attestation, validate=True)
    except (binascii.Error, ValueError):
        return [_mismatch(where, "the attestation data is not base64")]
    actual = hashlib.sha256(payload).hexdigest()
    if actual != payload_hash:
        where["attestation_sha256"] = actual
        return [_mismatch(where, f"the attestation hashes to {actual}, the entry's payloadHash is {payload_hash}")]

    # (4) An in-toto statement, or nothing to check.
    try:
        statement = parse_statement(payload)
    except NotAStatement as exc:
        log.debug("log entry %d: payload is not an in-toto statement (%s)", index, exc)
        return []

    # (5) Every distribution subject of a watched project, against every signer.
    findings = []
    signers = [identity_of(v) for v in entry.verifiers] or [SignerIdentity(kind="none")]
    for subject in statement.subjects:
        project = distribution_project(subject.name)
        publishers = policy.publishers_for(project) if project is not None else None
        if not publishers:
            continue
        for signer in signers:
            reasons = [p.mismatch(signer) for p in publishers]
            if any(r is None for r in reasons):
                log.debug("log entry %d: %s signed by its trusted publisher", index, subject.name)
                continue
            findings.append(
                Finding(
                    UNEXPECTED_PUBLISHER,
                    index,
                    f"{subject.name} in log entry {index} of {origin} is signed by {_who(signer)}, "
                    f"not by a trusted publisher of {project!r}",
                    {
                        **where,
                        "package": project,
                        "distribution": subject.name,
                        "subject_digest": dict(subject.digest),
                        "predicate_type": statement.predicate_type,
                        "signer": _signer_evidence(signer),
                        "expected_publishers": [p.describe() for p in publishers],
                        "mismatches": reasons,
                    },
                )
            )
    return findings


class PublisherWatch:
    """The monitor's check of dsse entries against a :class:`PublisherPolicy` (module docstring).

    An entry check for :func:`monitor.audit.audit_log`: ``check_batch(client,
    origin, start, bodies)`` for each batch of verified-to-be-hashed entries.
    """

    def __init__(self, policy: PublisherPolicy) -> None:
        self.policy = policy
        # One certificate signs many entries (a release signs every file).
        self._identity = functools.lru_cache(maxsize=_CACHE_SIZE)(signer_identity)

    @classmethod
    def load(cls, path: str | Path) -> PublisherWatch:
        """Read the policy file; raises :class:`~monitor.publishers.PolicyError`."""
        return cls(PublisherPolicy.load(path))

    def __repr__(self) -> str:
        return f"PublisherWatch({self.policy.source!r}: {len(self.policy)} packages)"

    def check_batch(self, client: LogClient, origin: str, start: int, bodies: Sequence[bytes]) -> list[Finding]:
        """Findings for the entries ``bodies`` at indexes ``start, start + 1, ...``."""
        dsse: dict[int, EntryBody] = {}
        for i, body in enumerate(bodies, start):
            if b'"dsse"' not in body:  # cheap: most entries are not dsse
                continue
            try:
                entry = decode_entry(body)
            except Exception:  # the tree holds it; judging bodies is not this check's job
                log.debug("log entry %d: undecodable body", i, exc_info=True)
                continue
            if entry.kind == "dsse":
                dsse[i] = entry
        if not dsse:
            return []
        served = client.retrieve(list(dsse))
        findings: list[Finding] = []
        for i, entry in dsse.items():
            if i not in served:
                raise ProtocolError(f"entries/retrieve left out entry {i}, which the verified tree holds")
            if served[i].body != bodies[i - start]:
                findings.append(
                    _mismatch(
                        {"origin": origin, "log_index": i, "uuid": served[i].uuid},
                        "the Rekor API serves another body at this index than the verified tree holds",
                    )
                )
                continue
            leaf = hashlib.sha256(b"\x00" + bodies[i - start]).digest()
            findings.extend(
                inspect(self.policy, origin=origin, entry=entry, served=served[i], leaf_hash=leaf, identity_of=self._identity)
            )
        return findings


def _payload_hash(entry: EntryBody) -> str | None:
    value = entry.spec.get("payloadHash")
    if not isinstance(value, dict) or value.get("algorithm") != "sha256":
        return None
    digest = value.get("value")
    return digest.lower() if isinstance(digest, str) and len(digest) == 64 else None


def _mismatch(where: dict[str, Any], reason: str) -> Finding:
    index = where["log_index"]
    return Finding(
        ATTESTATION_MISMATCH,
        index,
        f"log entry {index} (dsse): {reason}",
        {**where, "reason": reason},
    )


def _who(signer: SignerIdentity) -> str:
    if signer.kind != "certificate":
        return {"public_key": "a bare public key", "none": "no verifier"}.get(signer.kind, "an unreadable verifier")
    identity = ", ".join(signer.sans) or "a certificate without SAN"
    return f"{identity} (issuer {signer.issuer})" if signer.issuer else identity


def _signer_evidence(signer: SignerIdentity) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": signer.kind}
    if signer.kind == "certificate":
        out["identity"] = signer.sans[0] if len(signer.sans) == 1 else list(signer.sans)
        out["issuer"] = signer.issuer
        out["extensions"] = dict(signer.extensions)
    if signer.fingerprint is not None:
        out["sha256"] = signer.fingerprint
    return out
