"""RFC 8785 (JCS) canonical JSON, fast for the documents the log signs.

The ``rfc8785`` package is the reference and handles every case, but it is
pure Python: ~60 us for one hashedrekord body, on every submission, plus
~20 us for every SET. For documents without floats, whose integers are in
JCS's exact range and whose keys are all in the Basic Multilingual Plane, the
standard library's C encoder (sorted keys, no spaces, no ASCII escaping)
produces exactly the JCS bytes:

* JCS sorts keys by UTF-16 code units, Python by code points; the two orders
  agree when no key needs a surrogate pair;
* both escape ``"``, ``\\`` and the control characters, with the short forms
  ``\\b \\f \\n \\r \\t`` and lowercase ``\\u00xx`` for the rest, and write
  every other character as itself;
* integers print the same, and ``true``, ``false``, ``null`` are spelled the
  same.

Anything else (a float, a huge integer, an astral-plane key, a lone
surrogate) goes to ``rfc8785``, which also raises where JCS has no answer.
tests/unit/test_canonical_json.py checks the equivalence with hypothesis.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

#: JCS numbers are IEEE doubles: integers beyond this lose precision, and rfc8785 refuses them.
_MAX_EXACT = 2**53 - 1

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False).encode


def dumps(value: Any) -> bytes:
    """The RFC 8785 canonical serialisation of ``value``, as UTF-8 bytes."""
    if _plain(value):
        try:
            return _encode(value).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: let the reference refuse it
            pass
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """True if the standard encoder is known to agree with JCS on ``value``."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or v is None or t is bool:
            continue
        if t is int:
            if -_MAX_EXACT <= v <= _MAX_EXACT:
                continue
            return False
        if t is dict:
            for k in v:
                if type(k) is not str or (not k.isascii() and max(map(ord, k)) > 0xFFFF):
                    return False
            stack.extend(v.values())
            continue
        if t is list:
            stack.extend(v)
            continue
        return False  # float, tuple, subclasses...: the reference decides
    return True
