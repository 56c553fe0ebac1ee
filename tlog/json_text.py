"""Parsed JSON whose strings are Unicode text (I-JSON, RFC 7493 section 2.1).

JSON may escape half of a UTF-16 surrogate pair (``"\\udfff"``); ``json.loads``
keeps it as a str that has no UTF-8 encoding, which breaks whatever encodes it
later (a certificate extension, the database, canonical JSON). Where clients'
JSON is parsed (request bodies, token payloads), such strings are refused.
"""

from __future__ import annotations

import re
from typing import Any

# An escape in the surrogate range: the only way a lone surrogate gets into a
# parsed string (UTF-8 cannot encode one, so decoding raw text would have failed).
_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")

#: Longest path returned: a client's absurd member names are never echoed in full.
MAX_PATH_CHARS = 200


def lone_surrogate_at(text: str | bytes, value: Any) -> str | None:
    """Where ``value``, parsed from ``text``, holds a lone surrogate: a path such as
    ``spec.signature.content`` (or the object whose member name holds one); None
    if nowhere, at once if ``text`` escapes nothing in that range. ``json.loads``
    joins an escaped pair into one character; only a lone half stays."""
    if not (_ESCAPE_BYTES.search(text) if isinstance(text, bytes) else _ESCAPE.search(text)):
        return None
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        where = None
        if isinstance(node, dict):
            for key, child in node.items():
                if not _encodable(key):
                    where = f"a member name in {path or 'the top-level object'}"
                    break
                stack.append((child, f"{path}.{key}" if path else key))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(node))
        elif isinstance(node, str) and not _encodable(node):
            where = path or "the top-level string"
        if where is not None:
            return where if len(where) <= MAX_PATH_CHARS else where[:MAX_PATH_CHARS] + "..."
    return None


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
