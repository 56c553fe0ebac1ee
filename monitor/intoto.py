"""In-toto Statements (``in-toto/attestation:spec/v1/statement.md``, and v0.1), as
far as a monitor needs them: the type, the predicate type and the subjects.

A DSSE entry in the log binds ``SHA-256(payload)``; the payload itself is the
statement, fetched separately (:mod:`monitor.publisher_watch`). v1 and v0.1
share the shape that matters here::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "sampleproject-1.0-py3-none-any.whl", "digest": {"sha256": "<hex>"}}],
     "predicateType": "https://docs.pypi.org/attestations/publish/v1", "predicate": {...}}

Parsing is strict about that shape (a payload that is not a statement raises
:class:`NotAStatement`) and ignores everything else, the predicate included.
Pure: bytes in, a frozen value out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["STATEMENT_TYPES", "NotAStatement", "Statement", "Subject", "parse_statement"]

STATEMENT_TYPES: Final = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
#: More subjects than any real statement names; a bound on the work a payload can ask for.
MAX_SUBJECTS: Final = 4096


class NotAStatement(ValueError):
    """The payload is not an in-toto Statement of a known version."""


@dataclass(frozen=True)
class Subject:
    """One artifact the statement is about: a name and its digests (algorithm -> hex)."""

    name: str
    digest: Mapping[str, str]


@dataclass(frozen=True)
class Statement:
    """The parts of a statement a monitor reads."""

    type: str
    predicate_type: str
    subjects: tuple[Subject, ...]


def parse_statement(payload: bytes) -> Statement:
    """Parse a DSSE payload as an in-toto Statement; raises :class:`NotAStatement`."""
    try:
        doc: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAStatement(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise NotAStatement("not a JSON object")
    kind = doc.get("_type")
    if kind not in STATEMENT_TYPES:
        raise NotAStatement(f"_type {kind!r} is not an in-toto Statement")
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str):
        raise NotAStatement("predicateType is not a string")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise NotAStatement("subject is not a non-empty list")
    if len(subjects) > MAX_SUBJECTS:
        raise NotAStatement(f"{len(subjects)} subjects; at most {MAX_SUBJECTS} are read")
    return Statement(kind, predicate_type, tuple(_subject(s, i) for i, s in enumerate(subjects)))


def _subject(value: Any, i: int) -> Subject:
    if not isinstance(value, dict):
        raise NotAStatement(f"subject[{i}] is not an object")
    name = value.get("name", "")
    digest = value.get("digest")
    if not isinstance(name, str):
        raise NotAStatement(f"subject[{i}].name is not a string")
    if not isinstance(digest, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in digest.items()):
        raise NotAStatement(f"subject[{i}].digest is not an object of strings")
    return Subject(name, dict(digest))
