"""Property tests for checkpoints and notes (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    sign_checkpoint,
)
from tlog.note import (
    CosignatureV1Signer,
    Ed25519Signer,
    InvalidSignatureError,
    NoteError,
    open_note,
)

LOG = Ed25519Signer("example.com/log", Ed25519PrivateKey.from_private_bytes(b"\x31" * 32))
WITNESS = CosignatureV1Signer(
    "witness.example", Ed25519PrivateKey.from_private_bytes(b"\x32" * 32), clock=lambda: 1234
)

# A single line: any Unicode except controls (Cc, includes \n) and surrogates (Cs).
line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
)
sizes = st.integers(min_value=0, max_value=MAX_TREE_SIZE)
hashes_ = st.binary(min_size=32, max_size=32)
checkpoints = st.builds(
    Checkpoint,
    origin=line_text,
    size=sizes,
    root_hash=hashes_,
    extensions=st.lists(line_text, max_size=3).map(tuple),
)


@given(checkpoints)
def test_checkpoint_text_round_trip(cp: Checkpoint) -> None:
    text = cp.to_text()
    assert Checkpoint.from_text(text) == cp
    assert Checkpoint.from_text(text).to_text() == text


@given(checkpoints)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_signed_checkpoint_round_trip(cp: Checkpoint) -> None:
    data = sign_checkpoint(cp, [LOG, WITNESS])
    opened, note, verified = open_checkpoint(data, [LOG.verifier(), WITNESS.verifier()])
    assert opened == cp
    assert len(verified) == 2
    assert note.to_bytes() == data
    # Exactly one blank line: extension lines are non-empty (sigstore relies on this).
    assert data.decode("utf-8").count("\n\n") == 1


@given(checkpoints, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=50)
def test_any_text_change_breaks_the_signature(cp: Checkpoint, data: st.DataObject) -> None:
    signed = sign_checkpoint(cp, [LOG])
    text = cp.to_text()
    index = data.draw(st.integers(min_value=0, max_value=len(text) - 2), label="index")
    replacement = data.draw(line_text.filter(lambda s: s != text[index]), label="replacement")
    changed = text[:index] + replacement[0] + text[index + 1 :]
    if changed == text:
        return
    tampered = signed.replace(text.encode(), changed.encode(), 1)
    try:
        open_note(tampered, [LOG.verifier()])
    except InvalidSignatureError:
        return
    except NoteError:
        return  # the change made the note malformed
    raise AssertionError("tampered note verified")


@given(st.text(max_size=400))
def test_checkpoint_parse_raises_only_checkpoint_error(text: str) -> None:
    try:
        Checkpoint.from_text(text)
    except CheckpointError:
        pass


# Inputs built from note-ish pieces reach the deeper parsing paths far more
# often than uniform random bytes do.
pieces = st.sampled_from(
    [
        "\n", "\n\n", "\u2014 ", "\u2014", " ", "+", "=", "/", "0", "1", "01", "-", "\r",
        "\t", "example.com/log", "AQIDBAU=", "AQIDBA==", "AAAA", "Zm9v", "\xa0", "\x00",
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "\udcff",
    ]
)
noteish = st.lists(pieces, max_size=30).map("".join)


@given(noteish)
def test_checkpoint_paths_raise_only_note_errors(text: str) -> None:
    try:
        Checkpoint.from_text(text)
    except CheckpointError:
        pass
    try:
        open_checkpoint(text, [LOG.verifier()])
    except NoteError:
        pass


@given(st.binary(max_size=200))
def test_open_checkpoint_on_bytes_raises_only_note_error(data: bytes) -> None:
    try:
        open_checkpoint(data, [LOG.verifier(), WITNESS.verifier()])
    except NoteError:
        pass
