"""Rekor v1 REST API: ``/api/v1/log`` and ``/api/v1/index``.

Shapes follow sigstore/rekor's openapi.yaml; only the ``hashedrekord`` and
``dsse`` 0.0.1 kinds are accepted. Views parse, call the log, and serialise.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from tlog import entries
from tlog.api.schemas import (
    expect_list,
    expect_object,
    json_type,
    log_entry,
    parse_int_arg,
    read_json,
)
from tlog.api.state import services
from tlog.errors import BadRequest
from tlog.log import Inclusion
from tlog.merkle import hash_leaf
from tlog.shards import Shard

bp = Blueprint("rekor_v1", __name__, url_prefix="/api/v1")

_HASH_QUERY = re.compile(r"^(?:(sha256):)?([0-9a-fA-F]{64})$|^(?:(sha384):)?([0-9a-fA-F]{96})$|^(?:(sha512):)?([0-9a-fA-F]{128})$")


@bp.get("/log")
def get_log_info() -> Response:
    """The active shard's head; after a key rotation, the frozen shards' final heads too."""
    svc = services()
    body = _log_info(svc.shards.active)
    if svc.shards.frozen:
        body["inactiveShards"] = [_log_info(s) for s in svc.shards.frozen]
    return jsonify(body)


def _log_info(shard: Shard) -> dict[str, Any]:
    head = shard.log.latest_cosigned_head()
    return {
        "rootHash": head.root_hash.hex(),
        "signedTreeHead": head.checkpoint,
        "treeID": str(shard.log.info.tree_id),
        "treeSize": head.size,
    }


@bp.get("/log/publicKey")
def get_public_key() -> Response:
    shard = services().shards.by_tree_id(request.args.get("treeID"))
    return Response(shard.log.keys.public_key_pem, mimetype="application/x-pem-file")


@bp.get("/log/proof")
def get_consistency_proof() -> Response:
    """Consistency between two sizes of one shard (the active one unless ``treeID`` names another)."""
    shard = services().shards.by_tree_id(request.args.get("treeID"))
    last = parse_int_arg("lastSize", required=True, minimum=1)
    first = parse_int_arg("firstSize", required=False, default=1, minimum=1)
    if first > last:
        raise BadRequest(f"firstSize {first} must not be greater than lastSize {last}")
    proof, root = shard.log.consistency_with_root(size1=first, size2=last)
    return jsonify({"hashes": [h.hex() for h in proof], "rootHash": root.hex()})


@bp.post("/log/entries")
def create_entry() -> tuple[Response, int, dict[str, str]]:
    svc = services()
    canonical = entries.canonicalize(read_json(), max_attestation_bytes=svc.settings.max_attestation_bytes)
    integrated = svc.sequencer.submit(canonical, timeout=svc.settings.submit_timeout)
    body = log_entry(svc.log, Inclusion(integrated.entry, integrated.head, integrated.proof))
    uuid = next(iter(body))
    return jsonify(body), 201, {"Location": f"/api/v1/log/entries/{uuid}", "ETag": uuid}


@bp.get("/log/entries")
def get_entry_by_index() -> Response:
    """An entry by its global log index, from whichever shard holds it."""
    index = parse_int_arg("logIndex", required=True)
    shard, inc = services().shards.entry_by_index(index)
    return jsonify(log_entry(shard.log, inc))


@bp.get("/log/entries/<uuid>")
def get_entry_by_uuid(uuid: str) -> Response:
    shard, inc = services().shards.entry_by_uuid(uuid)
    return jsonify(log_entry(shard.log, inc))


@bp.post("/log/entries/retrieve")
@bp.post("/log/entries/retrieve/")
def search_log_query() -> Response:
    """Entries by UUID, log index or proposed entry; unknown ones are left out."""
    svc = services()
    query = expect_object(read_json(), "the search query")
    limit = svc.settings.max_batch_items
    unknown = set(query) - {"entryUUIDs", "logIndexes", "entries"}
    if unknown:
        raise BadRequest(f"unknown field(s) in search query: {', '.join(sorted(unknown))}")
    uuids = _optional_list(query, "entryUUIDs", limit)
    indexes = _optional_list(query, "logIndexes", limit)
    proposed = _optional_list(query, "entries", limit)
    if not (uuids or indexes or proposed):
        raise BadRequest("the search query needs at least one of entryUUIDs, logIndexes or entries")
    if len(uuids) + len(indexes) + len(proposed) > limit:
        raise BadRequest(f"the search query names more than {limit} items in total")

    leaf_hashes = []
    for i, u in enumerate(uuids):
        if not isinstance(u, str):
            raise BadRequest(f"entryUUIDs[{i}] must be a string, not {json_type(u)}")
        if len(u) > 80:  # refused before the message below would quote all of it
            raise BadRequest(f"entryUUIDs[{i}] is not an entry UUID: expected 64 or 80 hexadecimal digits, got {len(u)} characters")
    for i, p in enumerate(proposed):
        try:
            leaf_hashes.append(hash_leaf(entries.canonicalize(p).body))
        except BadRequest as exc:
            raise BadRequest(f"entries[{i}]: {exc.message}") from None
    for i, n in enumerate(indexes):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 1 << 63:
            raise BadRequest(f"logIndexes[{i}] must be an integer from 0 to 2^63-1, not {str(n)[:40]}")

    found = (
        svc.shards.entries_by_uuids(uuids)
        + svc.shards.entries_by_leaf_hashes(leaf_hashes)
        + svc.shards.entries(indexes)
    )
    return jsonify([log_entry(shard.log, inc) for shard, inc in found])


@bp.post("/index/retrieve")
def search_index() -> Response:
    """UUIDs of entries matching an artifact hash, a public key, an email or a URI identity."""
    svc = services()
    query = expect_object(read_json(), "the search query")
    unknown = set(query) - {"hash", "publicKey", "email", "identity", "operator"}
    if unknown:
        raise BadRequest(f"unknown field(s) in search query: {', '.join(sorted(unknown))}")
    operator = "or" if query.get("operator") is None else query["operator"]
    if operator not in ("and", "or"):
        raise BadRequest(f"operator must be 'and' or 'or', not {operator!r}")

    keys = _search_keys(query)
    if not keys:
        raise BadRequest("the search query needs at least one of hash, publicKey, email or identity")
    limit = svc.settings.max_search_results
    results = [set(svc.shards.search(k, limit=limit)) for k in keys]
    matched = set.intersection(*results) if operator == "and" else set.union(*results)
    return jsonify([uuid for _index, uuid in sorted(matched)[:limit]])


def _search_keys(query: dict[str, Any]) -> list[str]:
    keys = []
    if (h := query.get("hash")) is not None:
        if not isinstance(h, str) or not (m := _HASH_QUERY.match(h)):
            raise BadRequest("hash must be '<sha256|sha384|sha512>:<hex digest>' or a bare hex SHA-256/384/512 digest")
        algorithm = "sha256" if m.group(2) else "sha384" if m.group(4) else "sha512"
        keys.append(entries.search_key_for_hash(algorithm, (m.group(2) or m.group(4) or m.group(6)).lower()))
    if (pk := query.get("publicKey")) is not None:
        pk = expect_object(pk, "publicKey")
        fmt = pk.get("format")
        if fmt != "x509":
            raise BadRequest(f"publicKey.format {fmt!r} is not supported; supported: 'x509' (PEM or DER key or certificate)")
        if "url" in pk:
            raise BadRequest("publicKey.url is not supported: send the key itself in publicKey.content")
        content = pk.get("content")
        if not isinstance(content, str):
            raise BadRequest("publicKey.content must be a base64 string")
        try:
            raw = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("publicKey.content is not valid base64") from None
        keys.append(entries.search_key_for_public_key(raw))
    if (email := query.get("email")) is not None:
        if not isinstance(email, str) or "@" not in email or len(email) > 320 or not _storable(email):
            raise BadRequest("email must be an email address (at most 320 characters)")
        keys.append(entries.search_key_for_email(email))
    if (identity := query.get("identity")) is not None:
        if not isinstance(identity, str) or not identity or len(identity) > 1024 or not _storable(identity):
            raise BadRequest("identity must be a non-empty string (an email address or a URI, at most 1024 characters)")
        keys.append(
            entries.search_key_for_email(identity) if "@" in identity and "://" not in identity
            else entries.search_key_for_uri(identity)
        )
    return keys


def _storable(text: str) -> bool:
    """No NUL (PostgreSQL text cannot hold one) and no unpaired surrogate (not UTF-8 encodable):
    such a value cannot be in the index, and the database would refuse the query with an error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _optional_list(query: dict[str, Any], name: str, limit: int) -> list[Any]:
    value = query.get(name)
    return [] if value is None else expect_list(value, name, max_items=limit)

