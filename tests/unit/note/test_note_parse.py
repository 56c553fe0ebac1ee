"""Signed-note format: round trips and one rejection test per strictness rule."""

from __future__ import annotations

import base64

import pytest

from tlog.note import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Note,
    NoteError,
    NoteSignature,
    parse_signature_lines,
)

KEY_ID = b"\x01\x02\x03\x04"
SIG = bytes(range(64))
B64 = base64.b64encode(KEY_ID + SIG).decode()
# Contains '-' and '_': the URL-safe alphabet, which notes must not use.
URLSAFE_B64 = base64.urlsafe_b64encode(KEY_ID + b"\xfb\xff" * 9).decode()
LINE = f"\u2014 example.com/log {B64}\n"
GOOD = "example.com/log\n1\nhash\n\n" + LINE


def test_parse_good_note() -> None:
    note = Note.parse(GOOD.encode())
    assert note.text == "example.com/log\n1\nhash\n"
    assert note.signatures == (NoteSignature("example.com/log", KEY_ID, SIG),)
    assert note.message == b"example.com/log\n1\nhash\n"
    assert note.to_bytes() == GOOD.encode()


def test_parse_accepts_str_and_bytes_alike() -> None:
    assert Note.parse(GOOD) == Note.parse(GOOD.encode())


def test_signature_line_rendering() -> None:
    sig = NoteSignature("example.com/log", KEY_ID, SIG)
    assert sig.line() == LINE
    assert sig.line().encode()[:4] == b"\xe2\x80\x94 "  # U+2014 in UTF-8, then a space


def test_text_may_contain_blank_lines_last_one_splits() -> None:
    data = "para one\n\npara two\n\n\n" + LINE
    note = Note.parse(data)
    assert note.text == "para one\n\npara two\n\n"
    assert note.to_bytes() == data.encode()


def test_text_may_contain_lines_that_look_like_signatures() -> None:
    data = "hello\n\n" + LINE + "\n" + LINE
    note = Note.parse(data)
    assert note.text == "hello\n\n" + LINE
    assert len(note.signatures) == 1


def test_multiple_signatures_kept_in_order() -> None:
    other = NoteSignature("witness.example/w1", b"\xff\xff\xff\xff", b"x" * 72)
    data = "t\n\n" + LINE + other.line()
    note = Note.parse(data)
    assert [s.name for s in note.signatures] == ["example.com/log", "witness.example/w1"]
    assert note.to_bytes() == data.encode()


def test_unicode_text_and_names_are_allowed() -> None:
    sig = NoteSignature("quasimodo.example/salvatore", KEY_ID, SIG)
    data = "ed è subito sera.\n\n" + sig.line()
    assert Note.parse(data.encode("utf-8")).text == "ed è subito sera.\n"


def test_at_least_16_and_up_to_the_cap_signatures_accepted() -> None:
    assert MAX_SIGNATURES >= 16
    lines = "".join(NoteSignature(f"w{i}.example", KEY_ID, SIG).line() for i in range(MAX_SIGNATURES))
    note = Note.parse("t\n\n" + lines)
    assert len(note.signatures) == MAX_SIGNATURES


def test_minimal_signature_of_one_byte_accepted() -> None:
    line = f"\u2014 k {base64.b64encode(KEY_ID + b'x').decode()}\n"
    assert Note.parse("t\n\n" + line).signatures[0].signature == b"x"


def test_with_signatures_dedupes_identical_lines() -> None:
    note = Note.parse(GOOD)
    other = NoteSignature("w.example", KEY_ID, b"s" * 72)
    merged = note.with_signatures([note.signatures[0], other, other])
    assert merged.signatures == (note.signatures[0], other)


def _with_line(line: str) -> str:
    return "text\n\n" + line


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # Overall shape.
        (GOOD.removesuffix("\n"), "newline"),
        ("example.com/log\n1\nhash\n" + LINE, "blank line"),
        ("no blank line at all", "blank line"),
        ("text\n\n", "no signature"),
        (GOOD + "\n", "no signature"),  # trailing blank line after the signatures
        ("", "blank line"),
        # Characters.
        (GOOD.replace("\n", "\r\n"), "carriage return"),
        (GOOD.replace("hash\n", "hash\r\n", 1), "carriage return"),
        (GOOD.replace("hash", "ha\tsh"), "control character"),
        (GOOD.replace("hash", "ha\x00sh"), "control character"),
        (GOOD.replace("hash", "ha\x1bsh"), "control character"),
        (GOOD.replace("hash", "ha\x0bsh"), "control character"),
        (GOOD.replace(B64, B64[:10] + "\x7f" + B64[10:]), "base64"),
        # Signature line prefix and fields.
        (_with_line(LINE.replace("\u2014", "-")), "em dash"),
        (_with_line(LINE.replace("\u2014 ", "\u2014")), "em dash"),
        (_with_line(LINE.replace("\u2014", "\u2013")), "em dash"),  # en dash
        (_with_line(f"\u2014  {B64}\n"), "key name is empty"),
        (_with_line(LINE.replace(" ", "  ", 1)), "not '\u2014 <name> <base64>'"),
        (_with_line(LINE.replace("example.com/log", "example.com log")), "not '\u2014 <name> <base64>'"),
        (_with_line(LINE.replace("example.com/log", "example.com+log")), "'+'"),
        (_with_line(LINE.replace("example.com/log", "example.com\u00a0log")), "whitespace"),
        (_with_line(LINE.replace("example.com/log", "example.com\u2003log")), "whitespace"),
        (_with_line(LINE.replace("\n", " \n")), "not '\u2014 <name> <base64>'"),
        (_with_line(LINE.replace(" ", "\u2003", 2)), "em dash"),
        # Base64.
        (_with_line(LINE.replace(B64, B64.rstrip("="))), "base64"),
        (_with_line(LINE.replace(B64, B64 + "=")), "base64"),
        (_with_line(f"\u2014 k {URLSAFE_B64}\n"), "base64"),
        (_with_line(LINE.replace(B64, "!!!!")), "base64"),
        (_with_line(LINE.replace(B64, "")), "too short"),
        (_with_line(f"\u2014 k {base64.b64encode(KEY_ID).decode()}\n"), "too short"),
        (_with_line(f"\u2014 k {base64.b64encode(b'abc').decode()}\n"), "too short"),
        (_with_line("\u2014 k AQIDBAV=\n"), "canonical"),  # non-zero padding bits
        (_with_line(LINE + "garbage\n"), "em dash"),
        (_with_line(LINE + LINE.removesuffix("\n")), "newline"),
    ],
)
def test_parse_rejects(data: str, message: str) -> None:
    with pytest.raises(NoteError, match=message.replace("+", r"\+")):
        Note.parse(data)


def test_parse_rejects_invalid_utf8() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        Note.parse(GOOD.encode().replace(b"hash", b"ha\xffsh"))


def test_parse_rejects_overlong_utf8() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        Note.parse(GOOD.encode().replace(b"hash", b"ha\xc0\xafsh"))


def test_parse_rejects_lone_surrogate_in_str() -> None:
    with pytest.raises(NoteError, match="surrogate"):
        Note.parse(GOOD.replace("hash", "ha\udc80sh"))


def _note_of_size(size: int) -> bytes:
    """A valid note whose encoding is exactly ``size`` bytes (one long text line)."""
    overhead = len(("\n\n" + LINE).encode())
    data = ("x" * (size - overhead) + "\n\n" + LINE).encode()
    assert len(data) == size
    return data


def test_parse_accepts_input_at_the_size_limit() -> None:
    assert len(Note.parse(_note_of_size(MAX_NOTE_SIZE)).text) == MAX_NOTE_SIZE - len(LINE.encode()) - 1


def test_parse_rejects_too_large_input() -> None:
    with pytest.raises(NoteError, match="limit"):
        Note.parse(_note_of_size(MAX_NOTE_SIZE + 1))


def test_parse_rejects_too_many_signatures() -> None:
    lines = LINE * (MAX_SIGNATURES + 1)
    with pytest.raises(NoteError, match="limit"):
        Note.parse("t\n\n" + lines)


def test_parse_rejects_non_bytes() -> None:
    with pytest.raises(NoteError):
        Note.parse(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["", "no newline", "a\rb\n", "tab\there\n", "nul\x00\n", "surrogate\udc80\n"],
)
def test_note_constructor_rejects_bad_text(text: str) -> None:
    with pytest.raises(NoteError):
        Note(text=text, signatures=(NoteSignature("k", KEY_ID, SIG),))


def test_note_without_signatures_cannot_be_encoded() -> None:
    with pytest.raises(NoteError, match="at least one signature"):
        Note(text="t\n").to_bytes()


def test_note_constructor_rejects_too_many_signatures() -> None:
    sig = NoteSignature("k", KEY_ID, SIG)
    with pytest.raises(NoteError, match="limit"):
        Note(text="t\n", signatures=(sig,) * (MAX_SIGNATURES + 1))


@pytest.mark.parametrize(
    ("name", "key_id", "signature"),
    [
        ("", KEY_ID, SIG),
        ("a b", KEY_ID, SIG),
        ("a+b", KEY_ID, SIG),
        ("a\nb", KEY_ID, SIG),
        ("a\u3000b", KEY_ID, SIG),
        ("k", b"\x01\x02\x03", SIG),
        ("k", b"\x01\x02\x03\x04\x05", SIG),
        ("k", KEY_ID, b""),
    ],
)
def test_signature_constructor_rejects(name: str, key_id: bytes, signature: bytes) -> None:
    with pytest.raises(NoteError):
        NoteSignature(name, key_id, signature)


def test_parse_signature_lines_block() -> None:
    other = NoteSignature("w.example", b"\xaa\xbb\xcc\xdd", b"z" * 72)
    sigs = parse_signature_lines((LINE + other.line()).encode())
    assert sigs == (NoteSignature("example.com/log", KEY_ID, SIG), other)


@pytest.mark.parametrize("block", ["", "\n", LINE.removesuffix("\n"), LINE + "\n", "junk\n"])
def test_parse_signature_lines_rejects(block: str) -> None:
    with pytest.raises(NoteError):
        parse_signature_lines(block)
