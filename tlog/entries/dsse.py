"""``dsse`` 0.0.1: a DSSE envelope (in practice an in-toto attestation).

Request ``spec`` (what sigstore-python's ``attest`` sends, nulls included)::

    {"proposedContent": {"envelope": "<envelope JSON, as a string>",
                         "verifiers": ["<b64 of a PEM certificate or key>", ...]},
     "signatures": null, "envelopeHash": null, "payloadHash": null}

The last three are computed by the log; a request may omit them or send null
(or an empty ``signatures`` list) but never values, as in Rekor.

Canonical spec (sigstore/rekor ``pkg/types/dsse/v0.0.1`` ``Canonicalize``; the
envelope itself and ``proposedContent`` are not stored)::

    {"envelopeHash": {"algorithm": "sha256", "value": hex(SHA-256(envelope string as sent))},
     "payloadHash":  {"algorithm": "sha256", "value": hex(SHA-256(decoded payload))},
     "signatures":   [{"signature": <b64 sig>, "verifier": <b64 of canonical PEM>}, ...]}

``signatures`` holds one item per distinct envelope signature, sorted by the
base64 signature string, each with the verifier that verified it (the last
one in ``verifiers`` order, as Rekor's map does). The stored verifier is the
base64 of its *canonical* PEM, as in Rekor; for sigstore-python, which sends
base64 of cryptography's PEM, that is byte-identical to ``verifiers[i]``, and
it is exactly what sigstore-python re-derives from the bundle certificate.

The decoded payload and its ``payloadType`` are returned beside the canonical
spec: the log keeps them as the entry's attestation (Rekor v1's
``attestation.data``). A ``payloadType`` holding NUL is refused, because a
PostgreSQL text column cannot store it and the failure would take the whole
integration batch with it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tlog.entries import (
    MAX_BODY_SIZE,
    decode_base64,
    encode_base64,
    json_type,
    require_list,
    require_object,
    require_str,
    search_key_for_hash,
)
from tlog.entries import keys as _keys
from tlog.errors import BadRequest

MAX_SIGNATURES = 16
MAX_VERIFIERS = 16
#: In-toto subject digests indexed per entry, at most.
MAX_SUBJECT_KEYS = 1024

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

_ENVELOPE = "spec.proposedContent.envelope"
_VERIFIERS = "spec.proposedContent.verifiers"
_SERVER_FIELDS = ("signatures", "envelopeHash", "payloadHash")


def canonicalize_spec(spec: dict[Any, Any]) -> tuple[dict[str, Any], list[str], str, bytes]:
    """Validate and verify a dsse spec; return (canonical spec, search keys, payloadType, payload)."""
    proposed = require_object(spec, "proposedContent", "spec")
    for name in _SERVER_FIELDS:
        value = spec.get(name)
        if value is not None and value != []:
            raise BadRequest(
                f"spec.{name}: must be null or absent in a request; the log computes it"
            )

    envelope_text = require_str(proposed, "envelope", "spec.proposedContent")
    envelope_bytes = _utf8(envelope_text, _ENVELOPE)
    payload_type_text, payload, signatures = _parse_envelope(envelope_text)
    payload_type = payload_type_text.encode("utf-8")  # _parse_envelope checked it encodes

    verifier_texts = require_list(proposed, "verifiers", "spec.proposedContent")
    if not verifier_texts:
        raise BadRequest(f"{_VERIFIERS}: at least one verifier is required")
    if len(verifier_texts) > MAX_VERIFIERS:
        raise BadRequest(
            f"{_VERIFIERS}: {len(verifier_texts)} verifiers; at most {MAX_VERIFIERS} are accepted"
        )
    verifiers = []
    for i, text in enumerate(verifier_texts):
        path = f"{_VERIFIERS}[{i}]"
        if not isinstance(text, str):
            raise BadRequest(f"{path}: expected a string, got {json_type(text)}")
        pem = decode_base64(text, path, max_chars=2 * MAX_BODY_SIZE)
        verifiers.append(_keys.load_verifier(pem, path))

    pae = b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type, len(payload), payload)

    # One item per distinct signature, like Rekor's map keyed by signature.
    verified: dict[str, _keys.Verifier] = {}
    for i, sig in enumerate(signatures):
        sig_b64 = encode_base64(sig)
        if sig_b64 in verified:
            continue
        # Reversed: when several verifiers accept, Rekor records the last one.
        match = next((v for v in reversed(verifiers) if _keys.verify_message(v, sig, pae)), None)
        if match is None:
            raise BadRequest(
                f"signature verification failed: {_ENVELOPE}.signatures[{i}] is not "
                f"verified by any key in {_VERIFIERS}"
            )
        verified[sig_b64] = match

    payload_hex = hashlib.sha256(payload).hexdigest()
    envelope_hex = hashlib.sha256(envelope_bytes).hexdigest()
    canonical = {
        "envelopeHash": {"algorithm": "sha256", "value": envelope_hex},
        "payloadHash": {"algorithm": "sha256", "value": payload_hex},
        "signatures": [
            {"signature": sig_b64, "verifier": encode_base64(verified[sig_b64].canonical_pem)}
            for sig_b64 in sorted(verified)
        ],
    }

    search_keys = [
        search_key_for_hash("sha256", payload_hex),
        search_key_for_hash("sha256", envelope_hex),
    ]
    for verifier in verified.values():
        search_keys.extend(verifier.search_keys())
    if payload_type == IN_TOTO_PAYLOAD_TYPE.encode():
        search_keys.extend(in_toto_subject_keys(payload))
    return canonical, search_keys, payload_type_text, payload


def in_toto_subject_keys(payload: bytes) -> list[str]:
    """``<alg>:<hex>`` for every subject digest of an in-toto Statement.

    Best effort: anything that is not a well-formed statement, or a digest that
    is not a plausible ``alg: hex`` pair, is skipped without error.
    """
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError):
        return []
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list):
        return []
    keys: list[str] = []
    for subject in subjects:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(digests, dict):
            continue
        for algorithm, value in digests.items():
            try:
                keys.append(search_key_for_hash(algorithm, value))
            except BadRequest:
                continue
            if len(keys) >= MAX_SUBJECT_KEYS:
                return keys
    return keys


def _parse_envelope(text: str) -> tuple[str, bytes, list[bytes]]:
    """Return (payloadType, decoded payload, decoded signatures)."""
    if not text:
        raise BadRequest(f"{_ENVELOPE}: empty")
    try:
        envelope = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequest(f"{_ENVELOPE}: not valid JSON") from None
    if not isinstance(envelope, dict):
        raise BadRequest(f"{_ENVELOPE}: expected a JSON object, got {json_type(envelope)}")

    payload = decode_base64(require_str(envelope, "payload", _ENVELOPE), f"{_ENVELOPE}.payload")
    payload_type = require_str(envelope, "payloadType", _ENVELOPE)
    _utf8(payload_type, f"{_ENVELOPE}.payloadType")
    if "\x00" in payload_type:
        raise BadRequest(f"{_ENVELOPE}.payloadType: contains NUL, which the log cannot store")

    items = require_list(envelope, "signatures", _ENVELOPE)
    if not items:
        raise BadRequest(f"{_ENVELOPE}.signatures: at least one signature is required")
    if len(items) > MAX_SIGNATURES:
        raise BadRequest(
            f"{_ENVELOPE}.signatures: {len(items)} signatures; "
            f"at most {MAX_SIGNATURES} are accepted"
        )
    signatures = []
    for i, item in enumerate(items):
        path = f"{_ENVELOPE}.signatures[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{path}: expected an object, got {json_type(item)}")
        keyid = item.get("keyid")
        if keyid is not None and not isinstance(keyid, str):
            raise BadRequest(f"{path}.keyid: expected a string, got {json_type(keyid)}")
        signatures.append(decode_base64(require_str(item, "sig", path), f"{path}.sig"))
    return payload_type, payload, signatures


def _utf8(text: str, path: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON \uD800-style escape
        raise BadRequest(f"{path}: not valid Unicode text (lone surrogate)") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
