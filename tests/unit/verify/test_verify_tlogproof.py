"""C2SP tlog-proof files: format, and verification against log keys (from a
policy or a trust config), a witness quorum and the leaf."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.checkpoint import Checkpoint, sign_checkpoint
from tlog.merkle import hash_leaf, inclusion, root_from_leaf_hashes
from tlog.note import CosignatureV1Signer, ECDSASigner, Ed25519Signer, NoteSigner, vkey
from tlog.verify import (
    Status,
    format_tlog_proof,
    parse_policy,
    parse_tlog_proof,
    parse_trust_root,
    verify_tlog_proof,
)
from tlog.verify.tlogproof import TlogProofError, is_tlog_proof

SPEC_EXAMPLE = """\
c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
"""


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


ORIGIN = "example.com/log"
LOG = Ed25519Signer(ORIGIN, _key(1))
LOG_ECDSA = ECDSASigner(ORIGIN, ec.derive_private_key(0x5EED, ec.SECP256R1()))
W1 = CosignatureV1Signer("witness.example/w1", _key(2), clock=lambda: 1_700_000_000)
W2 = CosignatureV1Signer("witness.example/w2", _key(3), clock=lambda: 1_700_000_000)
ENTRIES = [b"entry %d" % i for i in range(13)]
LEAVES = [hash_leaf(e) for e in ENTRIES]


def make_proof(index: int, signers: list[NoteSigner], *, size: int = len(ENTRIES), extra: bytes | None = None) -> bytes:
    nodes = inclusion(index, size)
    hashes = nodes.rehash([root_from_leaf_hashes(LEAVES[n.begin : n.end]) for n in nodes.ids])
    cp = Checkpoint(origin=ORIGIN, size=size, root_hash=root_from_leaf_hashes(LEAVES[:size]))
    return format_tlog_proof(index, hashes, sign_checkpoint(cp, signers), extra=extra)


def policy(*lines: str) -> str:
    return "\n".join(lines) + "\n"


LOG_LINE = f"log {vkey(LOG.verifier())}"
ONE_OF_ONE = policy(LOG_LINE, f"witness w1 {vkey(W1.verifier())}", "quorum w1")
TWO_OF_TWO = policy(LOG_LINE, f"witness w1 {vkey(W1.verifier())}", f"witness w2 {vkey(W2.verifier())}", "group both all w1 w2", "quorum both")


def run(data: bytes, index: int = 5, *, text: str | None = ONE_OF_ONE, trust=None, leaf=None):  # type: ignore[no-untyped-def]
    return verify_tlog_proof(
        data,
        leaf_hash=LEAVES[index] if leaf is None else leaf,
        leaf_source="test",
        trust=trust,
        policy=parse_policy(text) if text is not None else None,
    )


def failed(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {s.name for s in report.failed}


def test_spec_example_parses() -> None:
    proof = parse_tlog_proof(SPEC_EXAMPLE)
    assert proof.index == 73894
    assert len(proof.hashes) == 5
    assert proof.extra is not None and proof.extra.startswith(b"age-v1.2.1-darwin-arm64")
    assert proof.checkpoint.startswith("example.com/fancylog\n109482\n")
    assert is_tlog_proof(SPEC_EXAMPLE.encode())


def test_format_round_trips() -> None:
    data = make_proof(5, [LOG, W1], extra=b"\x00\xffextra")
    proof = parse_tlog_proof(data)
    assert format_tlog_proof(proof.index, proof.hashes, proof.checkpoint, proof.extra) == data
    no_hashes = make_proof(0, [LOG], size=1)
    assert b"index 0\n\n" in no_hashes and parse_tlog_proof(no_hashes).hashes == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("c2sp.org/tlog-proof@v2\nindex 1\n\nx\n", "first line"),
        ("c2sp.org/tlog-proof@v1\nindex 01\n\nx\n", "index"),
        ("c2sp.org/tlog-proof@v1\nindex -1\n\nx\n", "index"),
        ("c2sp.org/tlog-proof@v1\n\nx\n", "no index line"),
        ("c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx\n", "3 bytes"),
        ("c2sp.org/tlog-proof@v1\nindex 1\nnot base64!\n\nx\n", "not valid base64"),
        ("c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx\n", "extra"),
        ("c2sp.org/tlog-proof@v1\nindex 1\n", "no blank line"),
    ],
)
def test_malformed_proofs(text: str, message: str) -> None:
    with pytest.raises(TlogProofError, match=message):
        parse_tlog_proof(text)


def test_one_of_one_quorum_passes() -> None:
    report = run(make_proof(5, [LOG, W1]))
    assert report.ok, report.render()
    assert [s.name for s in report.steps] == ["proof", "leaf", "checkpoint", "witnesses", "inclusion"]
    assert "cosigned by w1 at 2023-11-14T22:13:20Z" in report.get("witnesses").detail  # type: ignore[union-attr]


def test_two_of_two_quorum_fails_with_one_cosignature() -> None:
    report = run(make_proof(5, [LOG, W1]), text=TWO_OF_TWO)
    assert failed(report) == {"witnesses"}
    assert run(make_proof(5, [LOG, W1, W2]), text=TWO_OF_TWO).ok


def test_every_index_and_size() -> None:
    for size in (1, 2, 3, 8, 13):
        for index in range(size):
            assert run(make_proof(index, [LOG, W1], size=size), index).ok


def test_wrong_leaf_fails_inclusion() -> None:
    assert failed(run(make_proof(5, [LOG, W1]), leaf=LEAVES[6])) == {"inclusion"}


def test_tampered_proof_hash_fails_inclusion() -> None:
    lines = make_proof(5, [LOG, W1]).decode().split("\n")
    raw = bytearray(base64.b64decode(lines[2]))
    raw[0] ^= 1
    lines[2] = base64.b64encode(bytes(raw)).decode()
    assert failed(run("\n".join(lines).encode())) == {"inclusion"}


def test_wrong_index_fails_inclusion() -> None:
    data = make_proof(5, [LOG, W1]).replace(b"index 5\n", b"index 4\n")
    assert failed(run(data)) == {"inclusion"}


def test_checkpoint_by_an_unknown_log() -> None:
    other = Ed25519Signer(ORIGIN, _key(9))
    report = run(make_proof(5, [other, W1]))
    assert failed(report) == {"checkpoint"}
    assert report.status("inclusion") is Status.SKIP


def test_bad_log_signature() -> None:
    data = bytearray(make_proof(5, [LOG, W1]))
    text = data.decode()
    line = next(x for x in text.split("\n") if x.startswith("\u2014 " + ORIGIN))
    name, b64 = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    tampered = text.replace(line, f"{name} {base64.b64encode(bytes(raw)).decode()}")
    report = run(tampered.encode())
    assert failed(report) == {"checkpoint"}
    assert "does not verify" in report.get("checkpoint").detail  # type: ignore[union-attr]


def test_no_policy_skips_witnesses_but_needs_a_log_key() -> None:
    trust = parse_trust_root(_trust_doc())
    report = run(make_proof(5, [LOG_ECDSA]), text=None, trust=trust)
    assert report.ok, report.render()
    assert report.status("witnesses") is Status.SKIP


def _trust_doc() -> dict:  # type: ignore[type-arg]
    spki = LOG_ECDSA.verifier().public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {
                "baseUrl": "https://log.example",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": base64.b64encode(spki).decode(), "keyDetails": "PKIX_ECDSA_P256_SHA_256"},
                "logId": {"keyId": base64.b64encode(hashlib.sha256(spki).digest()).decode()},
            }
        ],
        "certificateAuthorities": [],
        "ctlogs": [],
    }


def test_trust_config_log_key_with_a_policy_without_logs() -> None:
    """The log key comes from the trust config (ECDSA, like our Rekor v1 key),
    the witnesses from the policy."""
    trust = parse_trust_root({"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json", "trustedRoot": _trust_doc()})
    text = policy(f"witness w1 {vkey(W1.verifier())}", "quorum w1")
    report = run(make_proof(5, [LOG_ECDSA, W1]), text=text, trust=trust)
    assert report.ok, report.render()
    assert failed(run(make_proof(5, [LOG_ECDSA]), text=text, trust=trust)) == {"witnesses"}


def test_quorum_none() -> None:
    assert run(make_proof(5, [LOG]), text=policy(LOG_LINE, "quorum none")).ok


def test_unreadable_proof() -> None:
    report = run(b"c2sp.org/tlog-proof@v1\nindex x\n\n")
    assert failed(report) == {"proof"}
    assert all(s.status is Status.SKIP for s in report.steps[1:])
