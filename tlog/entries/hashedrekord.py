"""``hashedrekord`` 0.0.1: a signature over an artifact digest.

Request ``spec`` (what sigstore-python's ``sign`` sends)::

    {"signature": {"content": <b64 signature>,
                   "publicKey": {"content": <b64 of a PEM certificate or public key>}},
     "data": {"hash": {"algorithm": "sha256"|"sha384"|"sha512", "value": <hex>}}}

The canonical spec has the same shape with canonical values: the signature
re-encoded as standard base64, the verifier as base64 of its canonical PEM
(see :mod:`tlog.entries.keys`), the digest in lowercase hex. That is what Rekor
stores (``pkg/types/hashedrekord/v0.0.1`` ``Canonicalize``) and what
sigstore-python rebuilds from a bundle and compares by model equality.
"""

from __future__ import annotations

from typing import Any

from tlog.entries import (
    MAX_BODY_SIZE,
    decode_base64,
    decode_hex,
    encode_base64,
    require_object,
    require_str,
    search_key_for_hash,
    show,
)
from tlog.entries import keys as _keys
from tlog.errors import BadRequest

# Signature and PEM base64 end up in the body; anything this long cannot fit.
_MAX_B64_CHARS = MAX_BODY_SIZE


def canonicalize_spec(spec: dict[Any, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate and verify a hashedrekord spec; return (canonical spec, search keys)."""
    # Cheap structural checks first, crypto last.
    signature = require_object(spec, "signature", "spec")
    sig_b64 = require_str(signature, "content", "spec.signature")
    public_key = require_object(signature, "publicKey", "spec.signature")
    pem_b64 = require_str(public_key, "content", "spec.signature.publicKey")

    data = require_object(spec, "data", "spec")
    if data.get("content") is not None:
        raise BadRequest(
            "spec.data.content: not supported; a hashedrekord entry carries only the "
            "artifact digest in spec.data.hash (hash the artifact client-side)"
        )
    digest_obj = require_object(data, "hash", "spec.data")
    algorithm = require_str(digest_obj, "algorithm", "spec.data.hash")
    if algorithm not in _keys.DIGESTS:
        raise BadRequest(
            f"spec.data.hash.algorithm: unsupported hash algorithm {show(algorithm)}; "
            f"supported: {', '.join(_keys.DIGESTS)}"
        )
    value = require_str(digest_obj, "value", "spec.data.hash")
    digest = decode_hex(value, _keys.DIGESTS[algorithm][1], "spec.data.hash.value")

    sig = decode_base64(sig_b64, "spec.signature.content", max_chars=_MAX_B64_CHARS)
    pem = decode_base64(pem_b64, "spec.signature.publicKey.content", max_chars=2 * _MAX_B64_CHARS)
    verifier = _keys.load_verifier(pem, "spec.signature.publicKey.content")

    if not _keys.verify_prehashed(verifier, sig, digest, algorithm):
        raise BadRequest(
            "signature verification failed: spec.signature.content is not a valid "
            f"signature over the {algorithm} digest spec.data.hash.value by the key in "
            "spec.signature.publicKey.content"
        )

    hex_digest = digest.hex()
    canonical = {
        "data": {"hash": {"algorithm": algorithm, "value": hex_digest}},
        "signature": {
            "content": encode_base64(sig),
            "publicKey": {"content": encode_base64(verifier.canonical_pem)},
        },
    }
    return canonical, [search_key_for_hash(algorithm, hex_digest), *verifier.search_keys()]
