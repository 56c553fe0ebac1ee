"""Property tests for the signed-note format (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tlog.note import MAX_SIGNATURES, Note, NoteError, NoteSignature

# Text lines: any Unicode except controls (Cc, includes \n) and surrogates (Cs).
line = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)
texts = st.lists(line, min_size=1, max_size=6).map(lambda lines: "\n".join(lines) + "\n")
# Key names: no whitespace (Z* categories and ASCII spaces are Cc/Zs), no '+'.
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="+\x85"),
    min_size=1,
    max_size=20,
).filter(lambda s: not any(c.isspace() for c in s))
signatures = st.builds(
    NoteSignature,
    name=names,
    key_id=st.binary(min_size=4, max_size=4),
    signature=st.binary(min_size=1, max_size=120),
)
notes = st.builds(
    Note, text=texts, signatures=st.lists(signatures, min_size=1, max_size=MAX_SIGNATURES // 10).map(tuple)
)


@given(notes)
def test_note_round_trip(note: Note) -> None:
    data = note.to_bytes()
    parsed = Note.parse(data)
    assert parsed == note
    assert parsed.to_bytes() == data


@given(signatures)
def test_signature_line_round_trip(sig: NoteSignature) -> None:
    line_ = sig.line()
    assert line_.endswith("\n")
    assert NoteSignature.from_line(line_[:-1]) == sig


@given(st.binary(max_size=400))
def test_parse_raises_only_note_error_on_bytes(data: bytes) -> None:
    try:
        Note.parse(data)
    except NoteError:
        pass


@given(st.text(max_size=400))
def test_parse_raises_only_note_error_on_text(data: str) -> None:
    try:
        Note.parse(data)
    except NoteError:
        pass


# Inputs assembled from note-shaped pieces reach the deeper parsing paths far
# more often than uniform random bytes do.
pieces = st.sampled_from(
    [
        "\n", "\n\n", "\u2014 ", "\u2014", " ", "+", "=", "/", "0", "-", "\r", "\t", "\xa0",
        "\x00", "\udcff", "example.com/log", "AQIDBAU=", "AQIDBA==", "AQIDBAV=", "AAAA", "Zm9v",
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    ]
)
noteish = st.lists(pieces, max_size=30).map("".join)


@given(noteish)
def test_parse_noteish_text_raises_only_note_error_and_round_trips(data: str) -> None:
    try:
        note = Note.parse(data)
    except NoteError:
        return
    # Anything accepted is canonical: it re-encodes to the exact input.
    assert note.to_bytes() == data.encode("utf-8")


@given(notes, st.data())
def test_single_byte_corruption_never_escapes_note_error(note: Note, data: st.DataObject) -> None:
    raw = bytearray(note.to_bytes())
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[index] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        Note.parse(bytes(raw))
    except NoteError:
        pass
