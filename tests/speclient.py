"""A Rekor v1 client written for the tests from the specs, independent of ``tlog``.

It builds signed ``hashedrekord`` and ``dsse`` submissions with real keys and
checks every response the way a careful verifier would, using only
``cryptography``, ``hashlib`` and ``rfc8785``:

* the SET: ECDSA over RFC 8785 JSON of body, integratedTime, logID, logIndex;
* the inclusion proof: RFC 9162 §2.1.3.2, from the leaf hash of the exact body;
* the checkpoint: signed-note text, origin/size/root lines, the ECDSA signature
  line whose key hint is logID[:4], and its root equal to the proof's root.

Nothing here imports the server's code, so a bug there cannot hide itself.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from cryptography.x509.oid import NameOID


class VerificationError(AssertionError):
    pass


# --- RFC 6962 / 9162 -------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2, step by step."""
    if not 0 <= index < size:
        raise VerificationError(f"index {index} not below size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("proof too short")
    return r


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]) -> None:
    """RFC 9162 §2.1.4.2."""
    if size1 == size2:
        if proof or root1 != root2:
            raise VerificationError("equal sizes need an empty proof and equal roots")
        return
    if not 0 < size1 < size2:
        raise VerificationError(f"bad sizes {size1}, {size2}")
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        proof = [root1, *proof]
    if not proof:
        raise VerificationError("empty proof")
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise VerificationError("proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != root1 or sr != root2:
        raise VerificationError("consistency proof does not verify")


# --- keys and submissions --------------------------------------------------------------


@dataclass
class Identity:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_identity(email: str = "alice@example.com", *, uri: str | None = None) -> Identity:
    """A fresh P-256 key and a short-lived self-signed code-signing-shaped certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans: list[x509.GeneralName] = [x509.RFC822Name(email)]
    if uri:
        sans.append(x509.UniformResourceIdentifier(uri))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Identity(key, cert)


def hashedrekord(identity: Identity, artifact: bytes | None = None) -> tuple[dict[str, Any], bytes]:
    """A sigstore-python-shaped hashedrekord request and the artifact digest it signs."""
    artifact = os.urandom(32) if artifact is None else artifact
    digest = hashlib.sha256(artifact).digest()
    sig = identity.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return (
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "signature": {
                    "content": base64.b64encode(sig).decode(),
                    "publicKey": {"content": base64.b64encode(identity.cert_pem).decode()},
                },
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            },
        },
        digest,
    )


def csr_request(key: ec.EllipticCurvePrivateKey | None = None) -> dict[str, str]:
    """A Fulcio signingCert body as sigstore-python sends it: a CSR of a (fresh)
    P-256 key with an empty subject and CA:FALSE."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return {"certificateSigningRequest": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()}


def dsse(identity: Identity, statement: dict[str, Any]) -> dict[str, Any]:
    """A sigstore-python-shaped dsse request, explicit nulls included."""
    payload = json.dumps(statement).encode()
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(payload), payload)
    sig = identity.key.sign(pae, ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": ptype,
        "signatures": [{"sig": base64.b64encode(sig).decode()}],
    }
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": json.dumps(envelope),
                "verifiers": [base64.b64encode(identity.cert_pem).decode()],
            },
            "signatures": None,
            "envelopeHash": None,
            "payloadHash": None,
        },
    }


# --- response verification -------------------------------------------------------------


@dataclass(frozen=True)
class LogKey:
    """The log's ECDSA public key as fetched from /api/v1/log/publicKey, and its log ID."""

    public_key: ec.EllipticCurvePublicKey

    @classmethod
    def from_pem(cls, pem: bytes) -> LogKey:
        key = serialization.load_pem_public_key(pem)
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return cls(key)

    @property
    def log_id(self) -> bytes:
        der = self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(der).digest()


@dataclass(frozen=True)
class ParsedCheckpoint:
    origin: str
    size: int
    root: bytes
    text: str


def verify_checkpoint(checkpoint: str, key: LogKey, ed25519_key: ed25519.Ed25519PublicKey | None = None) -> ParsedCheckpoint:
    """Check a checkpoint note as sigstore-python does, plus the C2SP Ed25519 line if a key is given."""
    if checkpoint.count("\n\n") != 1 or not checkpoint.endswith("\n"):
        raise VerificationError("checkpoint must hold exactly one blank line and end with a newline")
    text, sigs = checkpoint.split("\n\n")
    text += "\n"
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise VerificationError("checkpoint text has fewer than 3 lines")
    origin, size, root_b64 = lines[0], lines[1], lines[2]
    if not size.isdigit() or str(int(size)) != size:
        raise VerificationError(f"bad size line {size!r}")
    root = base64.b64decode(root_b64, validate=True)
    if len(root) != 32:
        raise VerificationError("root is not 32 bytes")
    found_ecdsa = found_ed = False
    for line in sigs.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            raise VerificationError(f"bad signature line {line!r}")
        name, b64 = line[2:].split(" ")
        raw = base64.b64decode(b64, validate=True)
        hint, sig = raw[:4], raw[4:]
        if hint == key.log_id[:4]:
            key.public_key.verify(sig, text.encode(), ec.ECDSA(hashes.SHA256()))
            found_ecdsa = True
        elif ed25519_key is not None:
            pk = ed25519_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            if hint == hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4]:
                ed25519_key.verify(sig, text.encode())
                found_ed = True
    if not found_ecdsa:
        raise VerificationError("no checkpoint signature with the log's key hint")
    if ed25519_key is not None and not found_ed:
        raise VerificationError("no Ed25519 checkpoint signature")
    return ParsedCheckpoint(origin, int(size), root, text)


def verify_entry(
    response: dict[str, Any], key: LogKey, *, index_offset: int = 0
) -> tuple[str, dict[str, Any], ParsedCheckpoint]:
    """Verify a Rekor LogEntry ``{uuid: entry}``; returns (uuid, entry, checkpoint).

    ``index_offset`` is the global index of the shard's first entry: the
    entry's ``logIndex`` is global, its inclusion proof's is the shard's own.
    """
    if len(response) != 1:
        raise VerificationError("a LogEntry must have exactly one key")
    ((uuid, entry),) = response.items()
    body = base64.b64decode(entry["body"], validate=True)
    if entry["logID"] != key.log_id.hex():
        raise VerificationError("logID is not SHA-256 of the log key")
    if uuid[-64:] != leaf_hash(body).hex():
        raise VerificationError("UUID does not end with the leaf hash")
    # SET
    set_payload = rfc8785.dumps(
        {
            "body": entry["body"],
            "integratedTime": entry["integratedTime"],
            "logID": entry["logID"],
            "logIndex": entry["logIndex"],
        }
    )
    sig = base64.b64decode(entry["verification"]["signedEntryTimestamp"], validate=True)
    key.public_key.verify(sig, set_payload, ec.ECDSA(hashes.SHA256()))
    # Inclusion proof
    proof = entry["verification"]["inclusionProof"]
    if proof["logIndex"] + index_offset != entry["logIndex"]:
        raise VerificationError("proof index plus the shard's offset differs from the entry index")
    hashes_ = [bytes.fromhex(h) for h in proof["hashes"]]
    root = root_from_inclusion(proof["logIndex"], proof["treeSize"], leaf_hash(body), hashes_)
    if root.hex() != proof["rootHash"]:
        raise VerificationError("inclusion proof does not lead to rootHash")
    cp = verify_checkpoint(proof["checkpoint"], key)
    if cp.root != root or cp.size != proof["treeSize"]:
        raise VerificationError("checkpoint does not match the proof's tree")
    return uuid, entry, cp


# --- a submitting process, for concurrency tests ----------------------------------------


def submit_many(url: str, count: int, email: str, *, index_offset: int = 0) -> list[tuple[str, int, str, str]]:
    """Submit ``count`` fresh entries over HTTP and verify each response.

    Runs in a separate process. Returns ``(uuid, logIndex, body, checkpoint)``
    per acknowledged entry. ``index_offset``: see :func:`verify_entry`.
    """
    import requests

    session = requests.Session()
    key = LogKey.from_pem(session.get(url + "/api/v1/log/publicKey", timeout=30).content)
    identity = make_identity(email)
    out = []
    for _ in range(count):
        req, _digest = hashedrekord(identity)
        resp = session.post(url + "/api/v1/log/entries", json=req, timeout=60)
        if resp.status_code != 201:
            raise VerificationError(f"submission failed: {resp.status_code} {resp.text}")
        uuid, entry, _cp = verify_entry(resp.json(), key, index_offset=index_offset)
        out.append((uuid, entry["logIndex"], entry["body"], entry["verification"]["inclusionProof"]["checkpoint"]))
    return out


def root_of(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH over leaf hashes, iteratively (split at the largest power of two)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Pairwise reduction gives the same tree as the recursive definition: a lone
    # rightmost node is carried up unchanged.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def encode_tile_index(n: int) -> str:
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def fetch_all_entries(url: str, size: int) -> list[bytes]:
    """Every entry body of a tree of ``size``, through the C2SP entry bundles."""
    import requests

    bodies: list[bytes] = []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        path = encode_tile_index(n) + ("" if width == 256 else f".p/{width}")
        resp = requests.get(f"{url}/tile/entries/{path}", timeout=30)
        resp.raise_for_status()
        data, pos = resp.content, 0
        while pos < len(data):
            length = int.from_bytes(data[pos : pos + 2], "big")
            bodies.append(data[pos + 2 : pos + 2 + length])
            pos += 2 + length
    if len(bodies) != size:
        raise VerificationError(f"entry bundles hold {len(bodies)} entries, the tree {size}")
    return bodies
