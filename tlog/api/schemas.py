"""Wire format: Rekor v1 JSON shapes, built and parsed in this one place.

Rekor's conventions, byte for byte (what sigstore clients check): ``logID``,
``rootHash`` and proof ``hashes`` are lowercase hex; ``body`` and the SET are
standard base64 with padding; ``integratedTime`` is whole seconds; integers
are JSON numbers.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from flask import request

from tlog.errors import BadRequest, PayloadTooLarge
from tlog.json_text import lone_surrogate_at
from tlog.log import Inclusion, TransparencyLog

#: Deepest nesting of arrays and objects a request body may have. Real requests
#: need at most 7 (a proposed entry inside a search); the explicit limit keeps
#: hostile bodies from reaching Python's recursion limit in any later walk.
MAX_JSON_DEPTH = 32


def read_json() -> Any:
    """The request body parsed as JSON, or a 400 that says why not."""
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes ({limit // 1024} KiB)")
    data = request.get_data(cache=True)
    if limit is not None and request.content_length is None and len(data) >= limit:
        # A body without Content-Length (chunked) is cut off at the limit by
        # werkzeug without an error: refuse it rather than parse a prefix.
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes ({limit // 1024} KiB)")
    if not data:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8 encoded JSON") from None
    too_deep = f"request body JSON is nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays and objects are allowed"
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest(too_deep) from None
    except ValueError:  # int() refuses a number literal this long (CPython's int_max_str_digits)
        raise BadRequest(f"request body is not valid JSON: a number has more than {sys.get_int_max_str_digits()} digits") from None
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise BadRequest(too_deep)
    if (where := lone_surrogate_at(text, value)) is not None:
        raise BadRequest(
            f"request body is not valid JSON text: {where} escapes a lone UTF-16 surrogate "
            "(\\ud800-\\udfff without its pair), which is no Unicode character (RFC 7493 section 2.1)"
        )
    return value


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"request body is not valid JSON: {name} is not a JSON value")


def _deeper_than(value: Any, limit: int) -> bool:
    """True if ``value`` nests arrays and objects more than ``limit`` deep (iteratively)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def log_entry(tlog: TransparencyLog, inc: Inclusion) -> dict[str, Any]:
    """A Rekor ``LogEntry``: ``{uuid: LogEntryAnon}``.

    A dsse entry also carries Rekor's ``attestation: {"data": <base64 of the
    DSSE payload>}``, so a monitor can read its statement; entries without a
    stored payload (hashedrekord, dsse logged before payloads were kept) have
    no such member.

    The SET is the one stored at integration; only entries without one
    (logged before SETs were stored, or by ``tlog load`` without ``--sets``)
    are signed here, on every read. Any valid signature over the same payload
    is as good as another.
    """
    entry, head = inc.entry, inc.head
    uuid = tlog.entry_uuid(entry.leaf_hash)
    wire: dict[str, Any] = {
        uuid: {
            "body": base64.b64encode(entry.body).decode(),
            "integratedTime": entry.integrated_time,
            "logID": tlog.log_id_hex,
            "logIndex": tlog.index_offset + entry.log_index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": head.checkpoint,
                    "hashes": [h.hex() for h in inc.proof],
                    "logIndex": entry.log_index,
                    "rootHash": head.root_hash.hex(),
                    "treeSize": head.size,
                },
                "signedEntryTimestamp": base64.b64encode(
                    entry.signed_entry_timestamp or tlog.signed_entry_timestamp(entry)
                ).decode(),
            },
        }
    }
    if entry.attestation is not None:
        wire[uuid]["attestation"] = {"data": base64.b64encode(entry.attestation.data).decode()}
    return wire


def parse_int_arg(name: str, *, required: bool, default: int | None = None, minimum: int = 0) -> int:
    """A query parameter that must be a decimal integer ``>= minimum``."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"query parameter {name} is required")
        assert default is not None
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise BadRequest(f"query parameter {name}={raw!r} is not a non-negative integer")
    value = int(raw)
    if value < minimum or value >= 1 << 63:
        raise BadRequest(f"query parameter {name}={value} is out of range (minimum {minimum})")
    return value


def expect_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, not {json_type(value)}")
    return value


def expect_list(value: Any, what: str, *, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a JSON array, not {json_type(value)}")
    if len(value) > max_items:
        raise BadRequest(f"{what} has {len(value)} items; at most {max_items} are allowed")
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
