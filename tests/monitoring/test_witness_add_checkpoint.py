"""add-checkpoint (c2sp.org/tlog-witness): every status code, each with the exact
condition that triggers it, and the order in which the spec applies the rules.

These call ``process_add_checkpoint`` directly; test_witness_http.py repeats
the status codes over real HTTP.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from witness_testlib import NOW, FakeLog, body, ecdsa_log, fixed_clock

from monitor.witness import (
    MAX_BODY_SIZE,
    BadProof,
    BadRequest,
    BadSignature,
    Conflict,
    RequestTooLarge,
    UnknownLog,
    WitnessConfig,
    WitnessKey,
    WitnessState,
    load_or_create_key,
    parse_add_checkpoint,
    process_add_checkpoint,
    vkey,
)
from tlog.checkpoint import Checkpoint, open_checkpoint
from tlog.merkle import EMPTY_ROOT
from tlog.note import (
    CosignatureV1Verifier,
    Ed25519Signer,
    Note,
    NoteSignature,
    cosignature_timestamp,
    open_note,
    parse_signature_lines,
    sign_note,
    verifier_from_vkey,
)


@pytest.fixture
def log() -> FakeLog:
    return FakeLog("example.com/log")


@pytest.fixture
def key(tmp_path: Path) -> WitnessKey:
    return load_or_create_key(tmp_path / "state", name="witness.example/w1")


@pytest.fixture
def state(tmp_path: Path) -> WitnessState:
    return WitnessState.open(tmp_path / "state")


@pytest.fixture
def config(log: FakeLog) -> WitnessConfig:
    return WitnessConfig.from_vkeys([log.vkey])


@pytest.fixture
def add(config: WitnessConfig, state: WitnessState, key: WitnessKey):  # type: ignore[no-untyped-def]
    def add(data: bytes, clock: float = NOW) -> bytes:
        return process_add_checkpoint(data, config, state, key, fixed_clock(clock))

    return add


def cosign(add, log: FakeLog, old: int, size: int) -> bytes:  # type: ignore[no-untyped-def]
    return add(body(old, log.proof(old, size), log.checkpoint(size)))  # type: ignore[no-any-return]


# --- 200 ------------------------------------------------------------------


def test_first_checkpoint_with_old_zero_is_cosigned_and_verifies_with_printed_vkey(
    add, log: FakeLog, key: WitnessKey, state: WitnessState
) -> None:
    signed = log.checkpoint(5)
    reply = add(body(0, [], signed))

    # One "— <name> <base64>\n" line ...
    assert reply.startswith("— witness.example/w1 ".encode())
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    (sig,) = parse_signature_lines(reply)
    # ... verifying, with the vkey the witness prints, over the checkpoint.
    printed = vkey(key)
    verifier = verifier_from_vkey(printed)
    assert isinstance(verifier, CosignatureV1Verifier)
    assert printed.startswith("witness.example/w1+") and base64.b64decode(printed.split("+", 2)[2])[0] == 0x04
    note, verified = open_note(signed + reply, [verifier])
    assert verified == [sig]
    assert verifier.verify_timestamp(note.message, sig.signature) == NOW
    assert cosignature_timestamp(sig.signature) == NOW != 0

    stored = state.latest(log.origin)
    assert stored is not None
    assert (stored.size, stored.root_hash, stored.cosigned_at) == (5, log.root(5), NOW)


def test_growth_with_real_consistency_proofs(add, log: FakeLog, state: WitnessState, key: WitnessKey) -> None:
    sizes = [1, 2, 3, 4, 7, 8, 9, 16, 17, 100, 255, 256, 257, 1000]
    old = 0
    for size in sizes:
        reply = cosign(add, log, old, size)
        open_note(log.checkpoint(size) + reply, [key.verifier()])
        stored = state.latest(log.origin)
        assert stored is not None and stored.size == size
        old = size


def test_same_size_same_root_is_cosigned_again_with_a_fresh_timestamp(add, log: FakeLog, state: WitnessState) -> None:
    cosign(add, log, 0, 10)
    reply = add(body(10, [], log.checkpoint(10)), clock=NOW + 60)
    (sig,) = parse_signature_lines(reply)
    assert cosignature_timestamp(sig.signature) == NOW + 60
    stored = state.latest(log.origin)
    assert stored is not None and (stored.size, stored.cosigned_at) == (10, NOW + 60)


def test_empty_tree_checkpoint_is_cosigned_and_then_anything_follows_without_proof(add, log: FakeLog) -> None:
    cosign(add, log, 0, 0)
    cosign(add, log, 0, 7)  # the empty tree is consistent with every tree
    cosign(add, log, 7, 9)


def test_signs_the_reencoded_text_with_extension_lines(add, log: FakeLog, key: WitnessKey, state: WitnessState) -> None:
    signed = log.checkpoint(3, extensions=("Timestamp: 1700000000123456789",))
    reply = add(body(0, [], signed))
    note, _ = open_note(signed + reply, [key.verifier()])
    assert note.text.endswith("Timestamp: 1700000000123456789\n")
    stored = state.latest(log.origin)
    assert stored is not None
    assert Checkpoint.from_text(Note.parse(stored.note).text).extensions == ("Timestamp: 1700000000123456789",)


def test_several_log_keys_and_foreign_signatures(tmp_path: Path, state: WitnessState, key: WitnessKey) -> None:
    """Key rotation: either trusted key suffices; unknown signatures (other
    witnesses) are ignored and not kept in the stored note."""
    old_key = Ed25519Signer("example.com/log", Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
    new_key = Ed25519Signer("example.com/log", Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))
    stranger = Ed25519Signer("other.example/w", Ed25519PrivateKey.from_private_bytes(b"\x03" * 32))
    config = WitnessConfig().add_log("example.com/log", [old_key.verifier(), new_key.verifier()])
    log = FakeLog("example.com/log", signer=new_key)

    reply = process_add_checkpoint(
        body(0, [], log.checkpoint(4, signers=[stranger, new_key])), config, state, key, fixed_clock()
    )
    assert parse_signature_lines(reply)
    stored = state.latest("example.com/log")
    assert stored is not None
    names = [s.name for s in Note.parse(stored.note).signatures]
    assert names == ["example.com/log", "witness.example/w1"]
    # The stored note verifies with the log key and the witness key.
    open_checkpoint(stored.note, [new_key.verifier()])
    open_note(stored.note, [key.verifier()])

    process_add_checkpoint(
        body(4, log.proof(4, 6), log.checkpoint(6, signers=[old_key])), config, state, key, fixed_clock()
    )


def test_rekor_v1_style_log_pinned_with_an_ecdsa_vkey(state: WitnessState, key: WitnessKey) -> None:
    """The monitor pins ECDSA (0x02) vkeys per origin; the origin is not the key name."""
    log = ecdsa_log("rekor.example.com - 1193050959916656506", "rekor.example.com")
    assert verifier_from_vkey(log.vkey).vkey_material[0] == 0x02
    config = WitnessConfig.from_pinned({log.origin: [log.vkey]})
    reply = process_add_checkpoint(body(0, [], log.checkpoint(12)), config, state, key, fixed_clock())
    open_note(log.checkpoint(12) + reply, [key.verifier()])
    process_add_checkpoint(body(12, log.proof(12, 30), log.checkpoint(30)), config, state, key, fixed_clock())
    # The key name alone is not an origin the witness accepts.
    with pytest.raises(UnknownLog):
        process_add_checkpoint(
            body(0, [], FakeLog("rekor.example.com", signer=log.signer).checkpoint(1)), config, state, key, fixed_clock()
        )


# --- 404 ------------------------------------------------------------------


def test_404_unknown_origin(add) -> None:
    stranger = FakeLog("unknown.example/log")
    with pytest.raises(UnknownLog) as err:
        add(body(0, [], stranger.checkpoint(1)))
    assert err.value.http_status == 404


def test_404_origin_with_a_trusted_key_name_but_other_origin(add, log: FakeLog) -> None:
    # Same key, different origin line: the witness knows logs by origin.
    other = FakeLog("example.com/log2", key=log.key, signer=log.signer)
    with pytest.raises(UnknownLog):
        add(body(0, [], other.checkpoint(1)))


# --- 403 ------------------------------------------------------------------


def test_403_no_trusted_signature(add, log: FakeLog) -> None:
    impostor = FakeLog(log.origin, key=Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))
    with pytest.raises(BadSignature) as err:
        add(body(0, [], impostor.checkpoint(1)))
    assert err.value.http_status == 403


def test_403_known_key_signature_fails(add, log: FakeLog, state: WitnessState) -> None:
    note = Note.parse(log.checkpoint(3))
    good = note.signatures[0]
    bad = NoteSignature(good.name, good.key_id, bytes([good.signature[0] ^ 1]) + good.signature[1:])
    with pytest.raises(BadSignature) as err:
        add(body(0, [], Note(note.text, (bad,)).to_bytes()))
    assert err.value.http_status == 403
    # ... even alongside a valid signature from the same key (the note is malformed).
    with pytest.raises(BadSignature):
        add(body(0, [], Note(note.text, (good, bad)).to_bytes()))
    assert state.latest(log.origin) is None


def test_403_signed_text_changed(add, log: FakeLog) -> None:
    note = Note.parse(log.checkpoint(3))
    tampered = Note(log.checkpoint(4).decode().split("\n\n")[0] + "\n", note.signatures)
    with pytest.raises(BadSignature):
        add(body(0, [], tampered.to_bytes()))


# --- 400 ------------------------------------------------------------------


def test_400_old_larger_than_checkpoint_size(add, log: FakeLog) -> None:
    with pytest.raises(BadRequest) as err:
        add(body(6, [], log.checkpoint(5)))
    assert err.value.http_status == 400
    assert "old size 6 is larger than the checkpoint size 5" in str(err.value)


HASH = base64.b64encode(b"\x11" * 32)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"old 0\n", "no blank line"),
        (b"", "empty body"),
        (b"old 01\n\n{cp}", "leading zero"),
        (b"old 00\n\n{cp}", "zero with leading zero"),
        (b"old -1\n\n{cp}", "negative"),
        (b"old +1\n\n{cp}", "plus sign"),
        (b"old  1\n\n{cp}", "two spaces"),
        (b"old 1 \n\n{cp}", "trailing space"),
        (b"old\t1\n\n{cp}", "tab"),
        (b"Old 1\n\n{cp}", "capital O"),
        (b"old \n\n{cp}", "no digits"),
        (b"old 1_0\n\n{cp}", "underscore"),
        (b"old \xd9\xa1\n\n{cp}", "non-ASCII digit"),
        (b"old 9223372036854775808\n\n{cp}", "2^63"),
        (b"old 12345678901234567890123\n\n{cp}", "huge"),
        (b"\nold 0\n\n{cp}", "leading newline"),
        (b"old 0\r\n\r\n{cp}", "CRLF"),
        (b"old 1\n" + b"!" * 44 + b"\n\n{cp}", "proof line not base64"),
        (b"old 1\n" + base64.b64encode(b"\x11" * 31) + b"\n\n{cp}", "31-byte hash"),
        (b"old 1\n" + base64.b64encode(b"\x11" * 33) + b"\n\n{cp}", "33-byte hash"),
        (b"old 1\n" + HASH[:-2] + b"x=\n\n{cp}", "non-canonical trailing bits"),
        (b"old 1\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n\n{cp}", "URL-safe alphabet"),
        (b"old 1\n" + HASH.rstrip(b"=") + b"\n\n{cp}", "unpadded"),
        (b"old 1\n " + HASH + b"\n\n{cp}", "space before hash"),
        (b"old 1\n" + HASH + b"\n" * 3 + b"{cp}", "two blank lines"),
        (b"old 1\n" + (HASH + b"\n") * 64 + b"\n{cp}", "64 proof lines"),
        (b"old 0\n\nexample.com/log\n5\n", "note without signatures"),
        (b"old 0\n\n{cp}\x00", "NUL in note"),
        (b"old 0\n\n{cp_crlf}", "CRLF in note"),
        (b"old 0\n\n\xff{cp}", "note not UTF-8"),
    ],
)
def test_400_malformed_bodies(add, log: FakeLog, raw: bytes, why: str) -> None:
    cp = log.checkpoint(5)
    data = raw.replace(b"{cp}", cp).replace(b"{cp_crlf}", cp.replace(b"\n", b"\r\n"))
    with pytest.raises(BadRequest):
        add(data)


def test_400_signed_text_that_is_not_a_checkpoint(add, log: FakeLog) -> None:
    """A log-signed note whose text is not a checkpoint is malformed: 400."""
    for text in (f"{log.origin}\n05\n{base64.b64encode(b'1' * 32).decode()}\n", f"{log.origin}\n5\n"):
        signed = sign_note(text, [log.signer]).to_bytes()
        with pytest.raises(BadRequest, match="malformed checkpoint"):
            add(body(0, [], signed))


def test_63_proof_lines_are_parsed() -> None:
    cp = FakeLog().checkpoint(1)
    req = parse_add_checkpoint(b"old 1\n" + (HASH + b"\n") * 63 + b"\n" + cp)
    assert len(req.proof) == 63 and req.proof[0] == b"\x11" * 32


def test_old_size_at_the_limit_parses() -> None:
    req = parse_add_checkpoint(b"old 9223372036854775807\n\n" + FakeLog().checkpoint(1))
    assert req.old_size == (1 << 63) - 1


def test_413_body_over_the_cap(add, log: FakeLog) -> None:
    data = body(0, [], log.checkpoint(1))
    padded = data + b"x" * (MAX_BODY_SIZE + 1 - len(data))
    with pytest.raises(RequestTooLarge) as err:
        add(padded)
    assert err.value.http_status == 413


# --- 409 ------------------------------------------------------------------


def test_409_never_cosigned_and_old_not_zero(add, log: FakeLog) -> None:
    with pytest.raises(Conflict) as err:
        add(body(3, log.proof(3, 5), log.checkpoint(5)))
    assert err.value.size == 0 and err.value.http_status == 409


def test_409_old_differs_from_latest_cosigned_size(add, log: FakeLog, state: WitnessState) -> None:
    cosign(add, log, 0, 10)
    for old in (0, 7, 11):
        with pytest.raises(Conflict) as err:
            add(body(old, log.proof(old, 12), log.checkpoint(12)))
        assert err.value.size == 10
    stored = state.latest(log.origin)
    assert stored is not None and stored.size == 10


def test_409_learn_the_size_with_old_zero_then_succeed(add, log: FakeLog) -> None:
    cosign(add, log, 0, 10)
    with pytest.raises(Conflict) as err:
        add(body(0, [], log.checkpoint(20)))
    cosign(add, log, err.value.size, 20)


# --- 422 ------------------------------------------------------------------


def test_422_size_zero_checkpoint_with_wrong_root(add, log: FakeLog, key: WitnessKey) -> None:
    bad = sign_note(Checkpoint(log.origin, 0, b"\x00" * 32).to_text(), [log.signer]).to_bytes()
    with pytest.raises(BadProof) as err:
        add(body(0, [], bad))
    assert err.value.http_status == 422
    # The right root is accepted.
    good = sign_note(Checkpoint(log.origin, 0, EMPTY_ROOT).to_text(), [log.signer]).to_bytes()
    add(body(0, [], good))


def test_422_non_empty_proof_with_old_zero(add, log: FakeLog, state: WitnessState) -> None:
    with pytest.raises(BadProof):
        add(body(0, [b"\x22" * 32], log.checkpoint(5)))
    assert state.latest(log.origin) is None


def test_422_proof_does_not_verify(add, log: FakeLog, state: WitnessState) -> None:
    cosign(add, log, 0, 6)
    good = log.proof(6, 13)
    assert len(good) > 1
    cases = {
        "flipped bit": [bytes([good[0][0] ^ 1]) + good[0][1:], *good[1:]],
        "missing hash": good[:-1],
        "extra hash": [*good, b"\x33" * 32],
        "empty": [],
        "reversed": list(reversed(good)),
    }
    for why, proof in cases.items():
        with pytest.raises(BadProof):
            add(body(6, proof, log.checkpoint(13)))
        stored = state.latest(log.origin)
        assert stored is not None and stored.size == 6, why
    cosign(add, log, 6, 13)


def test_422_old_equals_size_but_roots_differ(add, log: FakeLog, state: WitnessState) -> None:
    cosign(add, log, 0, 8)
    other = log.fork(4, b"other")
    with pytest.raises(BadProof) as err:
        add(body(8, [], other.checkpoint(8)))
    assert "different root hash" in str(err.value)
    stored = state.latest(log.origin)
    assert stored is not None and stored.root_hash == log.root(8)


def test_422_old_equals_size_with_a_proof(add, log: FakeLog) -> None:
    cosign(add, log, 0, 8)
    with pytest.raises(BadProof):
        add(body(8, [b"\x44" * 32], log.checkpoint(8)))


def test_422_is_kept_as_evidence(add, log: FakeLog, state: WitnessState) -> None:
    cosign(add, log, 0, 8)
    bad = body(8, [], log.fork(2, b"evil").checkpoint(8))
    with pytest.raises(BadProof):
        add(bad)
    (evidence,) = state.evidence(log.origin)
    assert evidence.request == bad and "different root hash" in evidence.reason


# --- The order of the rules ----------------------------------------------


def test_order_404_before_403(add) -> None:
    unknown = Note.parse(FakeLog("unknown.example/log").checkpoint(1))
    sig = unknown.signatures[0]
    broken = Note(unknown.text, (NoteSignature(sig.name, sig.key_id, b"\x00" * 64),)).to_bytes()
    with pytest.raises(UnknownLog):
        add(body(0, [], broken))


def test_order_403_before_400(add, log: FakeLog) -> None:
    impostor = FakeLog(log.origin, key=Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))
    with pytest.raises(BadSignature):
        add(body(99, [], impostor.checkpoint(5)))  # old > size too


def test_order_400_before_409(add, log: FakeLog) -> None:
    cosign(add, log, 0, 3)
    with pytest.raises(BadRequest):
        add(body(9, [], log.checkpoint(5)))  # old > size, and old != 3


def test_order_409_before_422(add, log: FakeLog) -> None:
    cosign(add, log, 0, 3)
    bad_empty = sign_note(Checkpoint(log.origin, 0, b"\x00" * 32).to_text(), [log.signer]).to_bytes()
    with pytest.raises(Conflict):
        add(body(0, [], bad_empty))  # size-0 with the wrong root, and old != 3
    with pytest.raises(Conflict):
        add(body(0, [b"\x22" * 32], log.checkpoint(5)))  # proof with old 0, and old != 3
    with pytest.raises(Conflict):
        add(body(2, [b"\x22" * 32], log.checkpoint(5)))  # bad proof, and old != 3


# --- Nothing is cosigned with a zero timestamp ----------------------------


def test_zero_clock_refuses_and_stores_nothing(add, log: FakeLog, state: WitnessState) -> None:
    with pytest.raises(RuntimeError, match="clock"):
        add(body(0, [], log.checkpoint(2)), clock=0.5)
    assert state.latest(log.origin) is None


def test_cosignature_layout(add, log: FakeLog, key: WitnessKey) -> None:
    (sig,) = parse_signature_lines(add(body(0, [], log.checkpoint(2))))
    assert sig.key_id == key.key_id
    assert len(sig.signature) == 8 + 64
    assert struct.unpack(">Q", sig.signature[:8])[0] == NOW
