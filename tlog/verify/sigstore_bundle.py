"""Offline verification of a Sigstore bundle against a trusted root, step by
step, in the order sigstore clients check (sigstore-python's
``Verifier._verify_common_signing_cert`` then ``verify_artifact`` /
``verify_dsse``):

=====================  ======================================================
step                   what it establishes
=====================  ======================================================
``bundle``             a known media type (v0.1, v0.2, v0.3) and shape
``log-entry``          one entry, of a supported type, in a trusted log
``inclusion``          the body's leaf hash is in the tree the proof names
``checkpoint``         the log signed that tree (hint ``logId[:4]``)
``witnesses``          (with ``--policy``) the checkpoint's cosignature quorum
``set``                the log's signed entry timestamp (Rekor v1)
``timestamp``          RFC 3161 timestamps from a trusted TSA
``time``               at least one *verified* signing time
``certificate-chain``  the leaf chains to a trusted CA at every verified time
``sct``                the leaf's embedded SCT from a trusted CT log
``certificate``        the Sigstore leaf profile (digitalSignature, codeSigning)
``identity``           SAN and OIDC issuer are the expected ones
``artifact``           the artifact is what was signed
``signature``          the signature verifies with the leaf's key
``entry-body``         the log entry records these very materials
=====================  ======================================================

Checks that cannot run because an earlier one failed are reported as
skipped, so one fault gives one failed step.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from tlog.verify.artifact import (
    BUNDLE_HASHES,
    Artifact,
    check_dsse_artifact,
    check_dsse_signature,
    check_message_artifact,
    check_message_signature,
)
from tlog.verify.body import SUPPORTED, check_body, parse_body
from tlog.verify.bundle import Bundle, LogEntry, parse_bundle
from tlog.verify.certificate import (
    check_identity,
    check_leaf_profile,
    describe,
    san_values,
    verify_chain,
    verify_sct,
)
from tlog.verify.logentry import (
    VerifiedCheckpoint,
    verify_entry_checkpoint,
    verify_entry_inclusion,
    verify_set,
)
from tlog.verify.policy import Policy, require_quorum
from tlog.verify.report import Report, Status, StepFailed
from tlog.verify.timestamp import MAX_TIMESTAMPS, VerifiedTimestamp, verify_timestamp
from tlog.verify.trust import LogInstance, TrustRoot

__all__ = ["STEPS", "verify_bundle"]

STEPS: tuple[tuple[str, str], ...] = (
    ("bundle", "bundle"),
    ("log-entry", "log entry"),
    ("inclusion", "inclusion proof"),
    ("checkpoint", "checkpoint"),
    ("witnesses", "witness cosignatures"),
    ("set", "SET"),
    ("timestamp", "signed timestamp"),
    ("time", "signing time"),
    ("certificate-chain", "certificate chain"),
    ("sct", "SCT"),
    ("certificate", "signing certificate"),
    ("identity", "identity"),
    ("artifact", "artifact"),
    ("signature", "signature"),
    ("entry-body", "log entry body"),
)
TITLES = dict(STEPS)


def _iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _from_unix(seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


@dataclass
class _State:
    bundle: Bundle
    entry: LogEntry | None = None
    log: LogInstance | None = None
    checkpoint: VerifiedCheckpoint | None = None


class _Run:
    """One verification: the report plus helpers to run or skip a step."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def step(self, name: str):  # type: ignore[no-untyped-def]
        return self.report.step(name, TITLES[name])

    def skip(self, name: str, reason: str) -> None:
        self.report.skip(name, TITLES[name], reason)

    def fail(self, name: str, reason: str) -> None:
        self.report.fail(name, TITLES[name], reason)

    def ok(self, name: str) -> bool:
        return self.report.passed(name)

    def failed(self, *names: str) -> bool:
        return any(self.report.status(n) is Status.FAIL for n in names)


def verify_bundle(
    data: bytes | str,
    *,
    trust: TrustRoot,
    artifact: Artifact,
    identity: str | None,
    issuer: str | None,
    policy: Policy | None = None,
    subject: str = "bundle",
) -> Report:
    """Verify a bundle; never raises for a bad bundle, the report says why."""
    report = Report(kind="Sigstore bundle", subject=subject)
    run = _Run(report)

    bundle: Bundle | None = None
    with run.step("bundle") as out:
        bundle = parse_bundle(data)
        content = "DSSE envelope" if bundle.dsse else "message signature"
        out.ok(f"is a Sigstore bundle v{bundle.version} with a {content}", mediaType=bundle.media_type)
    if bundle is None:
        for name, _ in STEPS[1:]:
            if name != "witnesses" or policy is not None:
                run.skip(name, "not checked: the bundle could not be read")
        return report

    state = _State(bundle)
    _log_steps(run, state, trust, policy)
    times = _time_steps(run, state, trust)
    _certificate_steps(run, state, trust, times, identity, issuer)
    _content_steps(run, state, artifact)
    report.facts.update(_facts(state, times))
    return report


def _log_steps(run: _Run, state: _State, trust: TrustRoot, policy: Policy | None) -> None:
    bundle = state.bundle
    with run.step("log-entry") as out:
        if not bundle.entries:
            raise StepFailed("the bundle has no transparency log entry")
        if len(bundle.entries) != 1:
            raise StepFailed(f"expected exactly one transparency log entry, found {len(bundle.entries)}")
        entry = bundle.entries[0]
        if (entry.kind, entry.version) not in SUPPORTED:
            raise StepFailed(f"unsupported entry type {entry.kind} {entry.version}")
        parse_body(entry)
        state.entry = entry
        log = trust.tlog(entry.log_id)
        if log is None:
            raise StepFailed(f"log ID {entry.log_id.hex()[:16]}… is not a transparency log of the trust config")
        state.log = log
        rekor = "Rekor v2" if entry.version == "0.0.2" else "Rekor v1"
        out.ok(
            f"is {entry.kind} {entry.version} at index {entry.log_index} of {log.host} ({rekor}, log ID {entry.log_id[:4].hex()})",
            logIndex=entry.log_index,
            log=log.base_url,
        )
    entry, log = state.entry, state.log
    proof = entry.inclusion_proof if entry else None
    v01 = bundle.version == "0.1"

    if entry is None:
        run.skip("inclusion", "not checked: no usable log entry")
    elif proof is None:
        if v01:
            run.skip("inclusion", "absent (optional in bundle v0.1; the SET vouches for inclusion)")
        else:
            run.fail("inclusion", f"the entry has no inclusion proof (required in bundles from v0.2; this is v{bundle.version})")
    else:
        with run.step("inclusion") as out:
            verify_entry_inclusion(entry, proof)
            unsigned = "" if proof.checkpoint else " (its root is not signed: no checkpoint)"
            out.ok(f"verifies leaf {proof.log_index} of tree size {proof.tree_size}{unsigned}", treeSize=proof.tree_size)

    if entry is None:
        run.skip("checkpoint", "not checked: no usable log entry")
    elif proof is None:
        run.skip("checkpoint", "not checked: no inclusion proof")
    elif proof.checkpoint is None:
        if v01:
            run.skip("checkpoint", "absent (optional in bundle v0.1; the SET vouches for inclusion)")
        else:
            run.fail("checkpoint", f"the inclusion proof has no checkpoint (required in bundles from v0.2; this is v{bundle.version})")
    elif log is None:
        run.skip("checkpoint", "not checked: the log is not in the trust config")
    else:
        with run.step("checkpoint") as out:
            vc = verify_entry_checkpoint(proof.checkpoint, log, entry.log_id, proof)
            state.checkpoint = vc
            out.ok(
                f"signed by {vc.signer} ({vc.key_hint.hex()}): origin {vc.checkpoint.origin}, "
                f"tree size {vc.checkpoint.size}, root matches the proof",
                origin=vc.checkpoint.origin,
            )

    if policy is not None:
        if state.checkpoint is None:
            run.skip("witnesses", "not checked: no verified checkpoint")
        else:
            with run.step("witnesses") as out:
                try:
                    out.ok(require_quorum(state.checkpoint.note, policy))
                except ValueError as exc:
                    raise StepFailed(str(exc)) from exc

    if entry is None or log is None:
        run.skip("set", "not checked: no usable log entry")
    elif entry.signed_entry_timestamp is None:
        if v01:
            run.fail("set", "missing: a v0.1 bundle must carry an inclusion promise")
        else:
            run.skip("set", "absent (no inclusion promise in the bundle)")
    else:
        with run.step("set") as out:
            if entry.integrated_time is None:
                raise StepFailed("an inclusion promise without integratedTime")
            if entry.version != "0.0.1":
                raise StepFailed(f"an inclusion promise on a {entry.kind} {entry.version} entry; only 0.0.1 entries have one")
            verify_set(entry, log)
            out.ok(f"verifies: {log.host} integrated the entry at {_iso(_from_unix(entry.integrated_time))}")


def _time_steps(run: _Run, state: _State, trust: TrustRoot) -> list[tuple[str, datetime.datetime]]:
    bundle, entry = state.bundle, state.entry
    verified: list[VerifiedTimestamp] = []
    if bundle.timestamps:
        with run.step("timestamp") as out:
            if len(bundle.timestamps) > MAX_TIMESTAMPS:
                raise StepFailed(f"{len(bundle.timestamps)} timestamps, more than {MAX_TIMESTAMPS}")
            if len(set(bundle.timestamps)) != len(bundle.timestamps):
                raise StepFailed("the same timestamp appears twice")
            for i, raw in enumerate(bundle.timestamps):
                try:
                    verified.append(verify_timestamp(raw, bundle.signature, trust.timestamp_authorities))
                except ValueError as exc:
                    raise StepFailed(f"timestamp {i + 1} of {len(bundle.timestamps)}: {exc}") from exc
            out.ok("verifies: " + ", ".join(f"{v.authority} at {_iso(v.time)}" for v in verified))

    times: list[tuple[str, datetime.datetime]] = []
    if run.ok("set") and entry is not None and entry.integrated_time is not None:
        times.append(("integratedTime, vouched for by the SET", _from_unix(entry.integrated_time)))
    if run.ok("timestamp"):
        times += [(f"RFC 3161 timestamp from {v.authority}", v.time) for v in verified]
    if times:
        with run.step("time") as out:
            out.ok(", ".join(f"{_iso(t)} ({source})" for source, t in times))
    elif run.failed("log-entry", "set", "timestamp"):
        run.skip("time", "not established: its sources failed above")
    else:
        run.fail("time", "no verified signing time: neither an inclusion promise (SET) nor a signed timestamp")
    return times


def _certificate_steps(
    run: _Run,
    state: _State,
    trust: TrustRoot,
    times: Sequence[tuple[str, datetime.datetime]],
    identity: str | None,
    issuer: str | None,
) -> None:
    cert = state.bundle.certificate
    chain = None
    if not times:
        run.skip("certificate-chain", "not checked: no verified signing time")
    else:
        with run.step("certificate-chain") as out:
            for _, when in times:
                chain = verify_chain(cert, trust, when)
            assert chain is not None
            path = " -> ".join(describe(c) for c in chain[1:])
            at = ", ".join(_iso(t) for _, t in times)
            out.ok(f"verifies: issued by {path} (trusted), valid at {at}")
    if chain is None:
        run.skip("sct", "not checked: no verified certificate chain")
    else:
        with run.step("sct") as out:
            sct = verify_sct(cert, chain, trust)
            out.ok(f"verifies: logged by {sct.log.host} ({sct.log.log_id[:4].hex()}) at {_iso(sct.timestamp)}")
    with run.step("certificate") as out:
        check_leaf_profile(cert)
        out.ok(
            f"is a code-signing leaf (digitalSignature, codeSigning), valid "
            f"{_iso(cert.not_valid_before_utc)} to {_iso(cert.not_valid_after_utc)}"
        )
    if identity is None or issuer is None:
        run.skip("identity", "not checked: no --cert-identity/--cert-oidc-issuer given")
    else:
        with run.step("identity") as out:
            oid = check_identity(cert, identity, issuer)
            out.ok(f"is {identity}, issuer {issuer} ({oid})")


def _content_steps(run: _Run, state: _State, artifact: Artifact) -> None:
    bundle, entry = state.bundle, state.entry
    signed: tuple[str, bytes] | None = None
    if bundle.message_signature is not None:
        message = bundle.message_signature
        if message.digest is not None and message.digest_algorithm in BUNDLE_HASHES:
            signed = (BUNDLE_HASHES[message.digest_algorithm], message.digest)
        with run.step("artifact") as out:
            detail, signed = check_message_artifact(bundle, artifact)
            out.ok(detail)
        if signed is None:
            run.skip("signature", "not checked: unknown digest")
        else:
            with run.step("signature") as out:
                check_message_signature(bundle, signed)
                out.ok(f"verifies over {signed[0]}:{signed[1].hex()[:16]}… with the certificate's key")
    else:
        with run.step("artifact") as out:
            out.ok(check_dsse_artifact(bundle, artifact))
        with run.step("signature") as out:
            check_dsse_signature(bundle)
            out.ok("verifies over the DSSE envelope with the certificate's key")
    if entry is None:
        run.skip("entry-body", "not checked: no usable log entry")
    else:
        with run.step("entry-body") as out:
            try:
                out.ok(check_body(entry, bundle, signed))
            except ValueError as exc:
                raise StepFailed(f"{exc} (CVE-2022-36056)") from exc


def _facts(state: _State, times: Sequence[tuple[str, datetime.datetime]]) -> dict[str, object]:
    bundle, entry = state.bundle, state.entry
    facts: dict[str, object] = {
        "bundleVersion": bundle.version,
        "certificateIdentities": san_values(bundle.certificate),
        "verifiedTimes": [_iso(t) for _, t in times],
    }
    if entry is not None:
        facts.update(kind=entry.kind, version=entry.version, logIndex=entry.log_index, logId=entry.log_id.hex())
        if entry.integrated_time is not None:
            facts["integratedTime"] = entry.integrated_time
    if state.log is not None:
        facts["log"] = state.log.base_url
    return facts
