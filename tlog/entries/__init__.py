"""Rekor v1 proposed entries -> verified, canonical log bodies.

A client POSTs a *proposed entry* (``{"kind", "apiVersion", "spec"}``) to
``/api/v1/log/entries``. :func:`canonicalize` validates it field by field,
verifies its signature(s), and returns the RFC 8785 body that becomes the
Merkle leaf data, plus the search-index keys for it. The body shapes follow
sigstore/rekor ``pkg/types/{hashedrekord,dsse}/v0.0.1`` byte for byte, because
sigstore-python rebuilds the body from its bundle and compares.

Supported kinds: ``hashedrekord`` 0.0.1 (:mod:`tlog.entries.hashedrekord`) and
``dsse`` 0.0.1 (:mod:`tlog.entries.dsse`). Every validation failure raises
:class:`tlog.errors.BadRequest` whose message starts with the JSON path of the
offending field; no other exception escapes for any JSON-like input, except
:class:`tlog.errors.PayloadTooLarge` for a DSSE payload over the caller's
``max_attestation_bytes``.

A ``dsse`` body holds only hashes of the envelope and its payload, so the
payload itself (the in-toto statement a monitor reads) travels beside the body
as the entry's *attestation*, to be stored with it in the same transaction.

Search keys are plain strings in these namespaces:

* ``<alg>:<lowercase hex>``: an artifact digest (``sha256:…``), a DSSE
  payload/envelope hash, or an in-toto subject digest;
* ``pubkey:sha256:<hex>``: SHA-256 of a verifier's canonical PEM (certificate
  or SubjectPublicKeyInfo, whichever was submitted);
* ``email:<lowercased address>`` and ``uri:<uri>``: certificate SAN identities.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from tlog import canonical_json
from tlog.errors import BadRequest, PayloadTooLarge

__all__ = [
    "MAX_BODY_SIZE",
    "CanonicalEntry",
    "canonicalize",
    "indexable_search_keys",
    "search_key_for_email",
    "search_key_for_hash",
    "search_key_for_public_key",
    "search_key_for_uri",
]

#: A canonical body must fit one C2SP tlog-tiles entry-bundle record, whose
#: length prefix is a big-endian uint16.
MAX_BODY_SIZE = 65535

#: kind -> supported apiVersions, in the order listed in error messages.
SUPPORTED_KINDS: dict[str, tuple[str, ...]] = {
    "hashedrekord": ("0.0.1",),
    "dsse": ("0.0.1",),
}


@dataclass(frozen=True)
class CanonicalEntry:
    """A verified entry, ready to be appended to the log.

    ``body`` is the exact leaf data (RFC 8785 JSON, at most
    :data:`MAX_BODY_SIZE` bytes); ``search_keys`` is sorted and free of
    duplicates; ``attestation`` is the decoded DSSE payload and
    ``payload_type`` the envelope's ``payloadType`` for ``dsse`` entries, both
    ``None`` otherwise.
    """

    kind: str
    api_version: str
    body: bytes
    search_keys: tuple[str, ...]
    attestation: bytes | None
    payload_type: str | None = None

    def __post_init__(self) -> None:
        # The sequencer stores the two together; one without the other is a bug.
        if (self.attestation is None) != (self.payload_type is None):
            raise ValueError("an attestation needs its payload type, and a payload type its attestation")


def canonicalize(proposed: object, *, max_attestation_bytes: int | None = None) -> CanonicalEntry:
    """Validate and verify a parsed proposed entry and return its canonical form.

    ``proposed`` is the request JSON as parsed by :func:`json.loads` (any
    combination of dict/list/str/int/float/bool/None is accepted as input).
    ``max_attestation_bytes`` caps a dsse entry's decoded payload; None (a
    lookup, the bulk loader) accepts any size.

    Raises :class:`tlog.errors.BadRequest` naming the JSON path and the problem,
    or :class:`tlog.errors.PayloadTooLarge` for a payload over the cap: the
    entry is refused rather than logged without its payload, so that every
    dsse entry in the log has an attestation a monitor can read.
    """
    if not isinstance(proposed, dict):
        raise BadRequest(f"proposed entry: expected a JSON object, got {json_type(proposed)}")
    kind = require_str(proposed, "kind", "")
    api_version = require_str(proposed, "apiVersion", "")
    versions = SUPPORTED_KINDS.get(kind)
    if versions is None:
        supported = ", ".join(f"{k} {v}" for k, vs in SUPPORTED_KINDS.items() for v in vs)
        raise BadRequest(f"unsupported kind {show(kind)}; supported: {supported}")
    if api_version not in versions:
        raise BadRequest(
            f"unsupported apiVersion {show(api_version)} for kind {show(kind)}; "
            f"supported: {', '.join(versions)}"
        )
    spec = require_object(proposed, "spec", "")

    # Imported here, not at the top: the kind modules import the field helpers
    # below from this package, and a lazy import keeps that one-way at load time.
    from tlog.entries import dsse, hashedrekord

    attestation: bytes | None = None
    payload_type: str | None = None
    if kind == "hashedrekord":
        canonical_spec, keys = hashedrekord.canonicalize_spec(spec)
    else:
        canonical_spec, keys, payload_type, attestation = dsse.canonicalize_spec(spec)
        if max_attestation_bytes is not None and len(attestation) > max_attestation_bytes:
            raise PayloadTooLarge(
                f"spec.proposedContent.envelope.payload: the DSSE payload is {len(attestation)} bytes; "
                f"this log stores attestations of at most {max_attestation_bytes} bytes"
            )

    keys = indexable_search_keys(keys)
    body = canonical_json.dumps({"apiVersion": api_version, "kind": kind, "spec": canonical_spec})
    if len(body) > MAX_BODY_SIZE:
        raise BadRequest(
            f"canonical entry body is {len(body)} bytes; the limit is {MAX_BODY_SIZE} bytes"
        )
    return CanonicalEntry(
        kind=kind,
        api_version=api_version,
        body=body,
        search_keys=tuple(sorted(set(keys))),
        attestation=attestation,
        payload_type=payload_type,
    )


# --------------------------------------------------------------------------
# Search-key helpers (shared by the indexer and the search API)
# --------------------------------------------------------------------------

#: Digest lengths (hex characters) of the algorithms whose length we know.
_HEX_LENGTHS = {"sha1": 40, "sha256": 64, "sha384": 96, "sha512": 128}
_ALGORITHM_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_HEX_RE = re.compile(r"[0-9a-f]+")
_ANY_CASE_HEX_RE = re.compile(r"[0-9a-fA-F]*")


#: The search index's key column is VARCHAR(512).
MAX_SEARCH_KEY_CHARS = 512


def indexable_search_keys(keys: list[str]) -> list[str]:
    """The keys the index can hold: at most :data:`MAX_SEARCH_KEY_CHARS`
    characters, no NUL (PostgreSQL text cannot hold one) and UTF-8 encodable.

    Others are left out, not refused: such an entry (a certificate SAN of 600
    characters, an in-toto subject with a 1000-digit digest) is valid, just not
    searchable by that key. Storing the key would fail the whole integration
    batch on PostgreSQL, and with it every other submission in the batch.
    """
    out = []
    for key in keys:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            continue
        if len(key) <= MAX_SEARCH_KEY_CHARS and "\x00" not in key:
            out.append(key)
    return out


def search_key_for_hash(algorithm: str, hex_digest: str) -> str:
    """Return ``<alg>:<lowercase hex>``, the index key of an artifact digest.

    Known algorithms (sha1, sha256, sha384, sha512) must have a digest of their
    exact length; other algorithm names (in-toto digest sets allow them) need
    only be short tokens of ``[a-z0-9_.-]`` with a hex value.
    """
    if not isinstance(algorithm, str) or not isinstance(hex_digest, str):
        raise BadRequest("hash: algorithm and value must be strings")
    alg = algorithm.lower()
    value = hex_digest.lower()
    if not _ALGORITHM_RE.fullmatch(alg):
        raise BadRequest(f"hash: unsupported algorithm name {show(algorithm)}")
    if not _HEX_RE.fullmatch(value) or len(value) > 1024:
        raise BadRequest(f"hash: value for {alg} is not a hex string")
    want = _HEX_LENGTHS.get(alg)
    if want is not None and len(value) != want:
        raise BadRequest(f"hash: {alg} value must be {want} hex characters, got {len(value)}")
    return f"{alg}:{value}"


def search_key_for_public_key(pem_or_der: bytes) -> str:
    """Return ``pubkey:sha256:<hex>`` for a PEM/DER certificate or public key.

    The input is canonicalised exactly as :func:`canonicalize` does for a
    verifier, so a key submitted in any accepted encoding is found. No key-type
    policy is applied here: a search for an unsupported key just finds nothing.
    """
    from tlog.entries import keys

    return keys.public_key_search_key(keys.canonical_pem_any(pem_or_der, "publicKey"))


def search_key_for_email(address: str) -> str:
    """Return ``email:<lowercased address>``."""
    if not isinstance(address, str) or not address or "@" not in address:
        raise BadRequest("email: expected an e-mail address")
    return "email:" + address.lower()


def search_key_for_uri(uri: str) -> str:
    """Return ``uri:<uri>`` (URIs are compared exactly, not case-folded)."""
    if not isinstance(uri, str) or not uri:
        raise BadRequest("uri: expected a non-empty URI")
    return "uri:" + uri


# --------------------------------------------------------------------------
# Field helpers shared by the kind modules. ``path`` is the dotted JSON path
# of the *container*; "" is the top level.
# --------------------------------------------------------------------------


def json_type(value: object) -> str:
    """Name ``value``'s JSON type for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def show(text: str, limit: int = 64) -> str:
    """Quote client text for an error message: truncated and ASCII-only.

    Lone surrogates (possible after JSON ``\\ud800`` escapes) would otherwise
    break whoever encodes the message later.
    """
    cut = text[:limit].encode("ascii", "backslashreplace").decode("ascii")
    return f"'{cut}{'...' if len(text) > limit else ''}'"


def join(path: str, key: str) -> str:
    """``join("spec", "data")`` -> ``"spec.data"``; ``join("", "spec")`` -> ``"spec"``."""
    return f"{path}.{key}" if path else key


def require(container: dict[Any, Any], key: str, path: str) -> object:
    """Return ``container[key]``; a missing key or an explicit null is an error."""
    value = container.get(key)
    if value is None:
        raise BadRequest(f"{join(path, key)}: missing")
    return value


def require_object(container: dict[Any, Any], key: str, path: str) -> dict[Any, Any]:
    """Return ``container[key]``, which must be a JSON object."""
    value = require(container, key, path)
    if not isinstance(value, dict):
        raise BadRequest(f"{join(path, key)}: expected an object, got {json_type(value)}")
    return value


def require_str(container: dict[Any, Any], key: str, path: str) -> str:
    """Return ``container[key]``, which must be a JSON string (may be empty)."""
    value = require(container, key, path)
    if not isinstance(value, str):
        raise BadRequest(f"{join(path, key)}: expected a string, got {json_type(value)}")
    return value


def require_list(container: dict[Any, Any], key: str, path: str) -> list[Any]:
    """Return ``container[key]``, which must be a JSON array."""
    value = require(container, key, path)
    if not isinstance(value, list):
        raise BadRequest(f"{join(path, key)}: expected an array, got {json_type(value)}")
    return value


def decode_base64(text: str, path: str, *, max_chars: int | None = None) -> bytes:
    """Strictly decode standard, padded base64; an empty value is an error.

    ``max_chars`` rejects absurdly long values before doing any work.
    """
    if not text:
        raise BadRequest(f"{path}: empty")
    if max_chars is not None and len(text) > max_chars:
        raise BadRequest(
            f"{path}: too large ({len(text)} characters; a canonical entry body "
            f"is limited to {MAX_BODY_SIZE} bytes)"
        )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{path}: not valid base64") from None


def encode_base64(data: bytes) -> str:
    """Standard base64 with padding, as a str."""
    return base64.b64encode(data).decode("ascii")


def decode_hex(text: str, nbytes: int, path: str) -> bytes:
    """Decode exactly ``2 * nbytes`` hex digits (either case)."""
    if len(text) != 2 * nbytes:
        raise BadRequest(f"{path}: expected {2 * nbytes} hex characters, got {len(text)}")
    if not _ANY_CASE_HEX_RE.fullmatch(text):
        raise BadRequest(f"{path}: not a hex string")
    return bytes.fromhex(text)
