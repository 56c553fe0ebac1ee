"""tlog.canonical_json agrees byte for byte with the rfc8785 reference (or both refuse)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tlog import canonical_json

# Every code point, lone surrogates and astral characters included.
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | any_text | st.floats(allow_nan=False)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text, inner, max_size=5),
    max_leaves=30,
)


def outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(value)
    except Exception as exc:  # noqa: BLE001 - we compare whether both refuse, not how
        return "error", type(exc).__mro__[-2].__name__


@settings(max_examples=3000, deadline=None)
@given(documents)
def test_matches_the_reference(value: Any) -> None:
    ours, ref = outcome(canonical_json.dumps, value), outcome(rfc8785.dumps, value)
    assert ours[0] == ref[0], (value, ours, ref)
    if ref[0] == "ok":
        assert ours[1] == ref[1]


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2},  # code-point order differs from UTF-16 order
        {"a": "\x00\x1f\x7f\u2028\"\\\n\t\b\f\r"},
        {"n": 2**53 - 1, "m": -(2**53 - 1)},
        {"big": 2**53},
        {"f": 1.5, "g": 1e21, "h": -0.0},
        ["\ud800"],
        {"k": [True, False, None, {"z": {}, "a": []}]},
    ],
)
def test_edge_cases(value: Any) -> None:
    assert outcome(canonical_json.dumps, value) == outcome(rfc8785.dumps, value)


def test_fast_path_is_taken_for_log_documents() -> None:
    doc = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {"data": {"hash": {"algorithm": "sha256", "value": "ab" * 32}}}}
    assert canonical_json._plain(doc)
    assert canonical_json.dumps(doc) == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert not canonical_json._plain({"x": math.pi})
