"""Fulcio v2 REST API: ``/api/v2/signingCert``, ``/api/v2/trustBundle``, ``/api/v2/configuration``.

A certificate is handed out only after it is durably appended to the CA's
certificate log, so every certificate that exists is auditable.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from flask import Blueprint, Response, jsonify, request

from tlog.api.ratelimit import check_identity
from tlog.api.schemas import expect_object, read_json
from tlog.api.state import CAServices, ca_services, services
from tlog.ca.identity import Identity, identity_from_claims
from tlog.ca.request import bearer_token, key_from_csr, key_from_public_key_request
from tlog.entries import CanonicalEntry, indexable_search_keys, search_key_for_email, search_key_for_hash, search_key_for_uri
from tlog.errors import BadRequest

bp = Blueprint("fulcio_v2", __name__, url_prefix="/api/v2")


@bp.post("/signingCert")
def signing_cert() -> tuple[Response, int]:
    ca = ca_services()
    body = expect_object(read_json(), "the signing request")
    unknown = set(body) - {"credentials", "publicKeyRequest", "certificateSigningRequest"}
    if unknown:
        raise BadRequest(f"unknown field(s) in signing request: {', '.join(sorted(unknown))}")
    token = bearer_token(request.headers.get("Authorization"), body)
    claims, issuer = ca.verifier.verify(token)
    identity = identity_from_claims(claims, issuer)
    check_identity(identity.issuer, identity.san)

    csr, pkr = body.get("certificateSigningRequest"), body.get("publicKeyRequest")
    if csr is not None and pkr is not None:
        raise BadRequest("send either certificateSigningRequest or publicKeyRequest, not both")
    if csr is not None:
        public_key = key_from_csr(csr)
    elif pkr is not None:
        # Fulcio's challenge: the email for email identities, else the subject.
        challenge = claims.get("email") if issuer.type == "email" else claims.get("sub")
        public_key = key_from_public_key_request(pkr, str(challenge))
    else:
        raise BadRequest("the signing request needs certificateSigningRequest or publicKeyRequest")

    issued = ca.authority.issue(public_key, identity)
    _log_certificate(ca, issued.certificate.public_bytes(serialization.Encoding.DER), identity)
    # 200, as Fulcio's v2 API answers (only its legacy v1 API used 201).
    return jsonify({"signedCertificateEmbeddedSct": {"chain": {"certificates": list(issued.chain_pem)}}}), 200


def _log_certificate(ca: CAServices, der: bytes, identity: Identity) -> None:
    """Append the certificate to the certificate log and wait until it is durable."""
    keys = [search_key_for_hash("sha256", hashlib.sha256(der).hexdigest())]
    keys.append(search_key_for_email(identity.san) if identity.san_type == "email" else search_key_for_uri(identity.san))
    keys = indexable_search_keys(keys)  # a SAN of over 500 characters is logged, not indexed
    entry = CanonicalEntry(kind="x509", api_version="1", body=der, search_keys=tuple(sorted(set(keys))), attestation=None)
    ca.sequencer.submit(entry, timeout=services().settings.submit_timeout)


@bp.get("/trustBundle")
def trust_bundle() -> Response:
    return jsonify({"chains": [{"certificates": ca_services().authority.chain_pem}]})


@bp.get("/configuration")
def configuration() -> Response:
    ca = ca_services()
    issuers: list[dict[str, Any]] = [
        {
            "issuerUrl": i.url,
            "audience": i.client_id,
            "challengeClaim": "email" if i.type == "email" else "sub",
        }
        for i in ca.issuers.issuers
    ]
    return jsonify({"issuers": issuers})
