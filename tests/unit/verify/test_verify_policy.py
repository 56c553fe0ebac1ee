"""C2SP tlog-policy files: parsing (strict, as the spec says) and quorums."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.checkpoint import Checkpoint
from tlog.note import CosignatureV1Signer, Ed25519Signer, Note, sign_note, vkey
from tlog.verify.policy import (
    PolicyError,
    QuorumError,
    check_cosignatures,
    parse_policy,
    require_quorum,
)


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


LOG = Ed25519Signer("example.com/log", _key(1))
WITNESSES = {f"{g}{i}": CosignatureV1Signer(f"witness.example/{g}{i}", _key(10 * (ord(g) - 87) + i), clock=lambda: 1_700_000_000) for g in "XY" for i in (1, 2, 3)}


def wvkey(name: str) -> str:
    return vkey(WITNESSES[name].verifier())


SPEC_EXAMPLE = f"""\
log {vkey(LOG.verifier())}

witness X1 {wvkey("X1")}
witness X2 {wvkey("X2")}
witness X3 {wvkey("X3")}
group X-witnesses 2 X1 X2 X3

witness Y1 {wvkey("Y1")}
witness Y2 {wvkey("Y2")}
witness Y3 {wvkey("Y3")}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def test_spec_example_parses() -> None:
    policy = parse_policy(SPEC_EXAMPLE)
    assert [v.name for v in policy.logs] == ["example.com/log"]
    assert set(policy.witnesses) == {"X1", "X2", "X3", "Y1", "Y2", "Y3"}
    assert policy.groups["X-witnesses"].threshold == 2
    assert policy.groups["Y-witnesses"].threshold == 1
    assert policy.groups["X-and-Y"].threshold == 2
    assert policy.quorum == "X-and-Y"
    assert policy.describe() == "2 of (2 of (X1, X2, X3), 1 of (Y1, Y2, Y3))"


@pytest.mark.parametrize(
    ("cosigned", "ok"),
    [
        ({"X1", "X2", "Y3"}, True),
        ({"X1", "X2", "X3", "Y1", "Y2", "Y3"}, True),
        ({"X1", "Y1", "Y2", "Y3"}, False),  # only one X
        ({"X1", "X3"}, False),  # no Y
        (set(), False),
    ],
)
def test_spec_example_quorum(cosigned: set[str], ok: bool) -> None:
    assert parse_policy(SPEC_EXAMPLE).satisfied(cosigned) is ok


def test_comments_whitespace_tabs_and_urls() -> None:
    policy = parse_policy(
        f"  # a comment\n\t\nlog\t{vkey(LOG.verifier())}  https://log.example/\n"
        f"witness  X1 {wvkey('X1')} https://w.example/\n   quorum X1   \n"
    )
    assert policy.log_urls == ("https://log.example/",)
    assert policy.witnesses["X1"].url == "https://w.example/"
    assert policy.satisfied({"X1"}) and not policy.satisfied(set())


def test_quorum_none_and_no_logs() -> None:
    policy = parse_policy("quorum none\n")
    assert policy.logs == () and policy.satisfied(set())
    assert policy.describe() == "no cosignatures"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no quorum line"),
        ("quorum none\nquorum none\n", "second quorum"),
        ("quorum X1\n", "not a witness or group defined above"),
        (f"quorum X1\nwitness X1 {wvkey('X1')}\n", "not a witness or group defined above"),
        (f"witness none {wvkey('X1')}\nquorum none\n", "reserved"),
        (f"witness X1 {wvkey('X1')}\nwitness X1 {wvkey('X2')}\nquorum X1\n", "already defined"),
        (f"witness X1 {wvkey('X1')}\nwitness X2 {wvkey('X1')}\nquorum X1\n", "duplicate witness key"),
        (f"log {vkey(LOG.verifier())}\nlog {vkey(LOG.verifier())}\nquorum none\n", "duplicate log key"),
        (f"witness X1 {wvkey('X1')}\ngroup g 2 X1\nquorum g\n", "threshold"),
        (f"witness X1 {wvkey('X1')}\ngroup g 0 X1\nquorum g\n", "threshold"),
        (f"witness X1 {wvkey('X1')}\ngroup g 01 X1\nquorum g\n", "threshold"),
        (f"witness X1 {wvkey('X1')}\ngroup g any X1 X1\nquorum g\n", "listed twice"),
        (f"witness X1 {wvkey('X1')}\ngroup g any X1 none\nquorum g\n", "not a witness or group"),
        (f"witness X1 {wvkey('X1')}\ngroup g any\nquorum g\n", "want 'group"),
        (f"witness X1 {wvkey('X1')}\ngroup g any g\nquorum g\n", "not a witness or group"),
        ("witness X1 not-a-vkey\nquorum X1\n", "line 1"),
        ("witnesses X1\nquorum none\n", "unknown keyword"),
        ("quorum none\r\n", "control character"),
        ("quorum none extra\n", "want 'quorum"),
    ],
)
def test_malformed_policies(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_same_key_under_two_signature_types_is_a_duplicate() -> None:
    """'Duplicate' means the same underlying public key, whatever the vkey."""
    same_key = Ed25519Signer("witness.example/X1", _key(11)).verifier()  # type 0x01, key of X1
    with pytest.raises(PolicyError, match="duplicate"):
        parse_policy(f"witness X1 {wvkey('X1')}\nwitness Z {vkey(same_key)}\nquorum X1\n")


def test_non_ascii_names_are_opaque_octets() -> None:
    policy = parse_policy(f"witness K {wvkey('X1')}\nwitness \u212a {wvkey('X2')}\ngroup g all K \u212a\nquorum g\n".encode())
    assert len(policy.witnesses) == 2


# --- cosignatures over a real note -------------------------------------------------------


def _checkpoint_note(*cosigners: str) -> Note:
    cp = Checkpoint(origin="example.com/log", size=5, root_hash=b"\x07" * 32)
    return sign_note(cp.to_text(), [LOG, *(WITNESSES[c] for c in cosigners)])


def test_cosignatures_meet_and_miss_the_quorum() -> None:
    policy = parse_policy(SPEC_EXAMPLE)
    check = check_cosignatures(_checkpoint_note("X1", "X3", "Y2"), policy)
    assert set(check.valid) == {"X1", "X3", "Y2"} and check.valid["X1"] == 1_700_000_000
    assert "meet the quorum" in require_quorum(_checkpoint_note("X1", "X3", "Y2"), policy)
    with pytest.raises(QuorumError, match=r"needs 2 of \(2 of \(X1, X2, X3\), 1 of \(Y1, Y2, Y3\)\); cosigned by X1 at 2023-11-14T22:13:20Z, Y2"):
        require_quorum(_checkpoint_note("X1", "Y2"), policy)


def test_a_bad_cosignature_from_a_known_witness_rejects() -> None:
    note = _checkpoint_note("X1", "X2", "Y1")
    sigs = list(note.signatures)
    bad = sigs[2]
    sigs[2] = type(bad)(name=bad.name, key_id=bad.key_id, signature=bad.signature[:-1] + bytes([bad.signature[-1] ^ 1]))
    tampered = Note(text=note.text, signatures=tuple(sigs))
    with pytest.raises(QuorumError, match="X2 does not verify"):
        require_quorum(tampered, parse_policy(SPEC_EXAMPLE))


def test_cosignatures_over_another_checkpoint_do_not_count() -> None:
    other = Checkpoint(origin="example.com/log", size=6, root_hash=b"\x08" * 32)
    foreign = sign_note(other.to_text(), [WITNESSES["X1"]]).signatures[0]
    note = _checkpoint_note()
    note = Note(text=note.text, signatures=(*note.signatures, foreign))
    policy = parse_policy(f"witness X1 {wvkey('X1')}\nquorum X1\n")
    with pytest.raises(QuorumError, match="does not verify"):
        require_quorum(note, policy)


def test_unknown_cosigners_are_ignored() -> None:
    policy = parse_policy(f"witness X1 {wvkey('X1')}\nquorum X1\n")
    assert "cosigned by X1" in require_quorum(_checkpoint_note("X1", "Y1", "Y2"), policy)
