"""monitor.verify: checkpoint signatures with pinned keys, consistency, trust configs."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.verify import (
    BadSignature,
    Inconsistent,
    Pins,
    check_consistency,
    check_empty,
    check_entries_root,
    claimed_origin,
    open_checkpoint,
    pins_from_trust_config,
)
from tlog.checkpoint import Checkpoint, sign_checkpoint
from tlog.merkle import EMPTY_ROOT, consistency, hash_leaf, root_from_leaf_hashes
from tlog.note import ECDSASigner, Ed25519Signer, vkey

ECDSA = ec.derive_private_key(1234567, ec.SECP256R1())
ED25519 = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
SPKI = ECDSA.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def leaves(n: int, branch: bytes = b"main") -> list[bytes]:
    return [hash_leaf(branch + b"%d" % i) for i in range(n)]


def signed(size: int, *, origin: str = "example.com/log", name: str | None = None, branch: bytes = b"main",
           signers: list | None = None) -> bytes:  # type: ignore[type-arg]
    cp = Checkpoint(origin, size, root_from_leaf_hashes(leaves(size, branch)))
    return sign_checkpoint(cp, signers or [ECDSASigner(name or origin, ECDSA), Ed25519Signer(name or origin, ED25519)])


def proof(size1: int, size2: int, branch: bytes = b"main") -> list[bytes]:
    tree = leaves(size2, branch)
    nodes = consistency(size1=size1, size2=size2)
    hashes = []
    for n in nodes.ids:
        hashes.append(root_from_leaf_hashes(tree[n.begin : n.end]))
    return nodes.rehash(hashes)


class TestOpenCheckpoint:
    def test_vkey_pin(self) -> None:
        pins = Pins(vkeys=(vkey(Ed25519Signer("example.com/log", ED25519).verifier()),))
        got = open_checkpoint(signed(10), pins)
        assert got.origin == "example.com/log" and got.size == 10
        assert got.vkeys == pins.vkeys

    def test_bare_ecdsa_key_pins_under_the_signers_name(self) -> None:
        # Rekor v1 style: origin "<host> - <tree ID>", signer named after the host.
        raw = signed(3, origin="rekor.example - 42", name="rekor.example")
        got = open_checkpoint(raw, Pins(spkis=(SPKI,)))
        assert got.origin == "rekor.example - 42"
        (pinned,) = got.vkeys
        assert pinned.startswith("rekor.example+")
        # The learned vkey alone verifies the next checkpoint.
        assert open_checkpoint(signed(4, origin="rekor.example - 42", name="rekor.example"), Pins(vkeys=got.vkeys)).size == 4

    def test_other_key_is_bad_signature(self) -> None:
        other = ec.generate_private_key(ec.SECP256R1())
        raw = signed(5, signers=[ECDSASigner("example.com/log", other)])
        with pytest.raises(BadSignature, match="not signed by a pinned key") as info:
            open_checkpoint(raw, Pins(spkis=(SPKI,)))
        assert info.value.alert_type == "bad_signature"
        assert info.value.evidence["checkpoint"] == raw.decode()

    def test_failing_signature_of_a_pinned_key(self) -> None:
        raw = bytearray(signed(5))
        # Flip a bit inside the root hash line: the signatures no longer match the text.
        text_end = raw.index(b"\n\n")
        raw[text_end - 3] ^= 1
        raw_b = bytes(raw)
        with pytest.raises(BadSignature):
            open_checkpoint(raw_b, Pins(spkis=(SPKI,)))

    def test_not_a_note(self) -> None:
        with pytest.raises(BadSignature, match="signed note"):
            open_checkpoint(b"hello\n", Pins(spkis=(SPKI,)))
        with pytest.raises(BadSignature):
            claimed_origin(b"no blank line")
        assert claimed_origin(signed(1)) == "example.com/log"

    def test_signed_text_that_is_not_a_checkpoint(self) -> None:
        from tlog.note import sign_note

        raw = sign_note("example.com/log\nnot a size\n", [ECDSASigner("example.com/log", ECDSA)]).to_bytes()
        with pytest.raises(BadSignature, match="not a checkpoint"):
            open_checkpoint(raw, Pins(spkis=(SPKI,)))

    def test_no_pins_is_a_programming_error(self) -> None:
        with pytest.raises(ValueError):
            open_checkpoint(signed(1), Pins())


class TestConsistency:
    def vc(self, size: int, branch: bytes = b"main"):  # type: ignore[no-untyped-def]
        return open_checkpoint(signed(size, branch=branch), Pins(spkis=(SPKI,)))

    def test_good_proofs(self) -> None:
        for size1, size2 in [(1, 2), (3, 7), (4, 8), (5, 300), (256, 257), (100, 100)]:
            old = self.vc(size1)
            check_consistency(old_size=size1, old_root=old.root_hash, old_checkpoint=old.note,
                              new=self.vc(size2), proof=proof(size1, size2) if size1 != size2 else [])  # fmt: skip

    def test_fork_fails_with_both_checkpoints_as_evidence(self) -> None:
        old = self.vc(10)
        new = self.vc(20, branch=b"fork")
        with pytest.raises(Inconsistent) as info:
            check_consistency(old_size=10, old_root=old.root_hash, old_checkpoint=old.note, new=new,
                              proof=proof(10, 20, b"fork"))  # fmt: skip
        ev = info.value.evidence
        assert ev["check"] == "consistency_proof"
        assert ev["old_checkpoint"] == old.note and ev["new_checkpoint"] == new.note

    def test_rollback_and_same_size_other_root(self) -> None:
        old = self.vc(10)
        with pytest.raises(Inconsistent, match="rolled back") as info:
            check_consistency(old_size=10, old_root=old.root_hash, old_checkpoint=old.note, new=self.vc(9), proof=[])
        assert info.value.evidence["check"] == "rollback"
        with pytest.raises(Inconsistent, match="two different roots"):
            check_consistency(old_size=10, old_root=old.root_hash, old_checkpoint=old.note,
                              new=self.vc(10, b"fork"), proof=[])  # fmt: skip

    def test_truncated_proof(self) -> None:
        old = self.vc(5)
        with pytest.raises(Inconsistent, match="does not verify"):
            check_consistency(old_size=5, old_root=old.root_hash, old_checkpoint=old.note, new=self.vc(9),
                              proof=proof(5, 9)[:-1])  # fmt: skip

    def test_empty_tree_root(self) -> None:
        check_empty(self.vc(0))
        bogus = Checkpoint("example.com/log", 0, b"\x01" * 32)
        raw = sign_checkpoint(bogus, [ECDSASigner("example.com/log", ECDSA)])
        with pytest.raises(Inconsistent, match="empty tree"):
            check_empty(open_checkpoint(raw, Pins(spkis=(SPKI,))))
        assert EMPTY_ROOT == root_from_leaf_hashes([])

    def test_entries_root(self) -> None:
        new = self.vc(4)
        check_entries_root(new, new.root_hash, begin=0)
        with pytest.raises(Inconsistent) as info:
            check_entries_root(new, b"\x00" * 32, begin=2, bad_index=3)
        assert info.value.log_index == 3 and info.value.evidence["check"] == "entries"


def test_pins_from_a_client_trust_config() -> None:
    tlog = {"baseUrl": "https://log.example/", "publicKey": {"rawBytes": base64.b64encode(SPKI).decode()}}
    pins = pins_from_trust_config({"mediaType": "x", "trustedRoot": {"tlogs": [tlog]}})
    assert pins == {"https://log.example": Pins(spkis=(SPKI,))}
    assert pins_from_trust_config({"tlogs": [tlog]}) == pins  # a bare TrustedRoot
    with pytest.raises(ValueError, match="no tlogs"):
        pins_from_trust_config({"trustedRoot": {}})
    with pytest.raises(ValueError, match="tlogs\\[0\\]"):
        pins_from_trust_config({"tlogs": [{"baseUrl": "x"}]})


def test_pins_merge_and_validate() -> None:
    v = vkey(Ed25519Signer("example.com/log", ED25519).verifier())
    merged = Pins(vkeys=(v,)) | Pins(spkis=(SPKI,)) | Pins(vkeys=(v,))
    assert merged.vkeys == (v,) and merged.spkis == (SPKI,)
    with pytest.raises(ValueError):
        Pins(spkis=(b"not a key",))
