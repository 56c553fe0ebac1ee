"""tlog-checkpoint note text: round trips and rejection per strictness rule."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tlog.checkpoint import MAX_TREE_SIZE, Checkpoint, CheckpointError
from tlog.note import NoteError

ROOT = hashlib.sha256(b"").digest()  # the empty tree's root
ROOT_B64 = base64.b64encode(ROOT).decode()
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_spec_example_parses() -> None:
    cp = Checkpoint.from_text(SPEC_TEXT)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.to_text() == SPEC_TEXT


def test_to_text_layout() -> None:
    cp = Checkpoint("example.com/log", 0, ROOT)
    assert cp.to_text() == f"example.com/log\n0\n{ROOT_B64}\n"


def test_extensions_round_trip() -> None:
    text = f"rekor.example - 123\n5\n{ROOT_B64}\nTimestamp: 1689177396617352539\nanother one\n"
    cp = Checkpoint.from_text(text)
    assert cp.extensions == ("Timestamp: 1689177396617352539", "another one")
    assert cp.to_text() == text


def test_origin_may_contain_spaces_and_unicode() -> None:
    # Rekor v1 origins contain spaces; clients MUST NOT assume the URL form.
    cp = Checkpoint.from_text(f"rekor.sigstore.dev - 2605736670972794746\n1\n{ROOT_B64}\n")
    assert cp.origin == "rekor.sigstore.dev - 2605736670972794746"
    assert Checkpoint.from_text(f"ü.example\n1\n{ROOT_B64}\n").origin == "ü.example"


def test_largest_size_accepted() -> None:
    cp = Checkpoint.from_text(f"o\n{MAX_TREE_SIZE}\n{ROOT_B64}\n")
    assert cp.size == 2**63 - 1


def test_checkpoint_error_is_a_note_error_and_value_error() -> None:
    assert issubclass(CheckpointError, NoteError)
    assert issubclass(CheckpointError, ValueError)


H31 = base64.b64encode(ROOT[:31]).decode()
H33 = base64.b64encode(ROOT + b"\x00").decode()
URLSAFE = base64.urlsafe_b64encode(b"\xfb" * 32).decode()  # has '-' and '_'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"o\n1\n{ROOT_B64}", "newline"),
        ("", "newline"),
        ("o\n1\n", "at least 3"),
        ("o\n", "at least 3"),
        (f"\n1\n{ROOT_B64}\n", "origin is empty"),
        (f"o\n01\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n00\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n+1\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n-1\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n 1\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n1 \n{ROOT_B64}\n", "leading zeros"),
        (f"o\n1_000\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n0x10\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n\u0661\n{ROOT_B64}\n", "leading zeros"),  # ARABIC-INDIC DIGIT ONE
        (f"o\n\uff11\n{ROOT_B64}\n", "leading zeros"),  # FULLWIDTH DIGIT ONE
        (f"o\n\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n{2**63}\n{ROOT_B64}\n", "exceeds"),
        (f"o\n{'9' * 5000}\n{ROOT_B64}\n", "exceeds"),
        (f"o\n1\n{H31}\n", "31 bytes"),
        (f"o\n1\n{H33}\n", "33 bytes"),
        ("o\n1\n\n", "0 bytes"),
        (f"o\n1\n{ROOT_B64.rstrip('=')}\n", "base64"),
        (f"o\n1\n{ROOT.hex()}\n", "bytes|base64"),
        (f"o\n1\n{URLSAFE}\n", "base64"),
        (f"o\n1\n{ROOT_B64[:-2]}V=\n", "canonical"),  # non-zero padding bits
        (f"o\n1\n {ROOT_B64}\n", "base64"),
        (f"o\n1\n{ROOT_B64}\n\n", "extension line is empty"),
        (f"o\n1\n{ROOT_B64}\next\n\n", "extension line is empty"),
        (f"o\n1\n{ROOT_B64}\r\n", "base64"),
        (f"o\r\n1\n{ROOT_B64}\n", "control character"),
        (f"o\t\n1\n{ROOT_B64}\n", "control character"),
        (f"o\n1\n{ROOT_B64}\nex\x00t\n", "control character"),
    ],
)
def test_from_text_rejects(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "a\nb"},
        {"origin": "a\rb"},
        {"size": -1},
        {"size": 2**63},
        {"size": True},
        {"size": 1.0},
        {"size": "1"},
        {"root_hash": ROOT[:31]},
        {"root_hash": ROOT + b"\x00"},
        {"root_hash": ROOT.hex()},
        {"extensions": ("",)},
        {"extensions": ("a\nb",)},
        {"extensions": ["list"]},
    ],
)
def test_constructor_rejects(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"origin": "o", "size": 1, "root_hash": ROOT, "extensions": ()}
    args.update(kwargs)
    with pytest.raises(CheckpointError):
        Checkpoint(**args)  # type: ignore[arg-type]


def test_from_text_rejects_non_str() -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.from_text(SPEC_TEXT.encode())  # type: ignore[arg-type]
