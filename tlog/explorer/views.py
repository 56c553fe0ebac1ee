"""Explorer routes (all ``GET``, all server-rendered).

``/explorer/``                               entry log: latest checkpoint and its signatures, recent entries
``/explorer/search?q=...``                   search the entry log (digest, email, URI, index, UUID)
``/explorer/entry/<index>``                  one entry: body, signer certificate, inclusion proof, checkpoint
``/explorer/certificates/``, ``.../search``, ``.../entry/<index>``
                                             the same for the CA's certificate log (when the CA runs)

Errors are HTML pages with the right status (400 for a query that cannot be
understood, 404 for an unknown index). Responses carry a strict
Content-Security-Policy: the pages load only this blueprint's CSS and script.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from flask import Blueprint, Response, render_template, request, url_for
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from tlog import entries as entry_keys
from tlog.api.state import services
from tlog.checkpoint import add_signatures
from tlog.errors import BadRequest, NotFound, TlogError, TooManyRequests, Unavailable
from tlog.explorer import decode
from tlog.log import TransparencyLog
from tlog.note import NoteError
from tlog.storage import store
from tlog.storage.store import EntryRecord

log = logging.getLogger(__name__)

bp = Blueprint(
    "explorer",
    __name__,
    url_prefix="/explorer",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: How many of the newest entries the home page lists.
RECENT_ENTRIES = 25
#: Most search results shown (oldest first, as the index returns them).
MAX_RESULTS = 100
#: Longest query accepted (a URI identity is the longest sensible one).
MAX_QUERY_CHARS = 2048

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

_DIGEST_QUERY = re.compile(r"(?:(sha256|sha384|sha512):)?([0-9a-fA-F]+)", re.ASCII)
_DIGEST_LENGTHS = {64: "sha256", 96: "sha384", 128: "sha512"}


# --- which log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LogView:
    """One of the two logs as the templates see it."""

    key: str  # "entries" or "certificates"
    title: str
    log: TransparencyLog
    endpoint_prefix: str

    def url(self, page: str, **values: Any) -> str:
        return url_for(f"explorer.{self.endpoint_prefix}{page}", **values)


def _view(which: str) -> LogView:
    svc = services()
    if which == "entries":
        return LogView("entries", "Entry log", svc.log, "")
    if svc.ca is None:
        raise NotFound("this server does not run the signing CA, so it has no certificate log")
    return LogView("certificates", "Certificate log", svc.ca.log, "cert_")


def _render(template: str, view: LogView, status: int = 200, **context: Any) -> tuple[str, int]:
    svc = services()
    return (
        render_template(
            f"explorer/{template}",
            view=view,
            has_certificates=svc.ca is not None,
            **context,
        ),
        status,
    )


# --- routes ------------------------------------------------------------------------------


@bp.get("/")
def home() -> tuple[str, int]:
    return _home("entries")


@bp.get("/search")
def search() -> tuple[str, int]:
    return _search("entries")


@bp.get("/entry/<index>")
def entry(index: str) -> tuple[str, int]:
    return _entry("entries", index)


@bp.get("/certificates/")
def cert_home() -> tuple[str, int]:
    return _home("certificates")


@bp.get("/certificates/search")
def cert_search() -> tuple[str, int]:
    return _search("certificates")


@bp.get("/certificates/entry/<index>")
def cert_entry(index: str) -> tuple[str, int]:
    return _entry("certificates", index)


# --- pages -------------------------------------------------------------------------------


@dataclass
class Row:
    index: int
    kind: str
    identity: str
    time: str
    uuid: str


def _row(view: LogView, record: EntryRecord) -> Row:
    info = decode.describe_body(record.body, purpose=view.log.info.purpose)
    return Row(view.log.index_offset + record.log_index, info.kind, info.identity, decode.utc(record.integrated_time), view.log.entry_uuid(record.leaf_hash))


def _home(which: str) -> tuple[str, int]:
    view = _view(which)
    head = view.log.latest_cosigned_head()
    with view.log.engine.connect() as conn:
        records = store.get_entries_range(conn, view.log.tree, max(0, head.size - RECENT_ENTRIES), head.size)
    return _render(
        "home.html",
        view,
        head=head,
        head_time=decode.utc(head.timestamp / 1000),
        checkpoint=decode.describe_checkpoint(head.checkpoint, _known_keys(view.log)),
        recent=[_row(view, r) for r in reversed(records)],
        vkeys=view.log.vkeys,
        log_id=view.log.log_id_hex,
    )


@dataclass(frozen=True)
class Query:
    what: str  # shown to the user: "artifact digest sha256:…"
    keys: tuple[str, ...] = ()
    leaf_hash: bytes | None = None
    index: int | None = None


def parse_query(raw: str, tlog: TransparencyLog) -> Query:
    """Classify a search box query; :class:`BadRequest` says what is accepted."""
    q = raw.strip()
    if len(q) > MAX_QUERY_CHARS:
        raise BadRequest(f"the query is {len(q)} characters long; at most {MAX_QUERY_CHARS} are accepted")
    if q.isascii() and q.isdigit() and len(q) <= 19:
        return Query(f"log index {int(q)}", index=int(q))
    if m := _DIGEST_QUERY.fullmatch(q):
        algorithm, hex_digest = m.group(1), m.group(2).lower()
        if len(hex_digest) == 80 and algorithm is None:
            try:
                return Query(f"entry UUID {hex_digest}", leaf_hash=tlog.leaf_hash_from_uuid(hex_digest))
            except NotFound:
                return Query(f"entry UUID {hex_digest} (of another tree)")
        expected = _DIGEST_LENGTHS.get(len(hex_digest))
        if expected is None or (algorithm is not None and algorithm != expected):
            raise BadRequest(
                f"{len(hex_digest)} hex digits is not a SHA-256 (64), SHA-384 (96) or SHA-512 (128) digest"
                + (f" for {algorithm}" if algorithm else "")
            )
        key = entry_keys.search_key_for_hash(expected, hex_digest)
        # A bare SHA-256 may also be an entry's leaf hash (the short UUID form).
        leaf = bytes.fromhex(hex_digest) if expected == "sha256" and algorithm is None else None
        return Query(f"digest {key}", keys=(key,), leaf_hash=leaf)
    if "://" in q:
        if any(c.isspace() for c in q):
            raise BadRequest("a URI identity cannot contain spaces")
        return Query(f"identity URI {q}", keys=(entry_keys.search_key_for_uri(q),))
    if "@" in q:
        if any(c.isspace() for c in q) or q.startswith("@") or q.endswith("@"):
            raise BadRequest("that does not look like an email address")
        return Query(f"email {q.lower()}", keys=(entry_keys.search_key_for_email(q),))
    raise BadRequest(
        "the query was not understood: enter an artifact SHA-256 (64 hex digits, optionally 'sha256:'-prefixed), "
        "an email address, an identity URI (such as a GitHub workflow URL), a log index or an entry UUID"
    )


def _search(which: str) -> tuple[str, int]:
    view = _view(which)
    raw = request.args.get("q", "")
    if not raw.strip():
        return _render("search.html", view, q="", query=None, results=None, truncated=False)
    query = parse_query(raw, view.log)
    found: dict[int, EntryRecord] = {}
    truncated = False
    with view.log.engine.connect() as conn:
        head = store.latest_head(conn, view.log.tree)
        size = head.size if head is not None else 0
        indexes: list[int] = []
        for key in query.keys:
            hits = store.search(conn, view.log.tree, key, limit=MAX_RESULTS + 1)
            truncated |= len(hits) > MAX_RESULTS
            indexes += hits[:MAX_RESULTS]
        # A searched log index is global; this view reads the active shard.
        local_index = None if query.index is None else query.index - view.log.index_offset
        if local_index is not None and 0 <= local_index < size:
            indexes.append(local_index)
        for i in sorted(set(indexes)):
            if i < size and (rec := store.get_entry(conn, view.log.tree, i)) is not None:
                found[i] = rec
        if query.leaf_hash is not None:
            rec = store.get_entry_by_leaf_hash(conn, view.log.tree, query.leaf_hash)
            if rec is not None and rec.log_index < size:
                found[rec.log_index] = rec
    results = [_row(view, found[i]) for i in sorted(found)][:MAX_RESULTS]
    return _render("search.html", view, q=raw.strip(), query=query, results=results, truncated=truncated)


def _entry(which: str, index: str) -> tuple[str, int]:
    view = _view(which)
    if not (index.isascii() and index.isdigit()) or len(index) > 19:
        raise BadRequest(f"{index[:40]!r} is not a log index (a non-negative decimal number)")
    if which == "entries":
        # Global log index: the entry may be in a shard frozen by a key rotation.
        shard, inc = services().shards.entry_by_index(int(index))
        view = dataclasses.replace(view, log=shard.log)
    else:
        inc = view.log.entry_by_index(int(index))
    checkpoint = inc.head.checkpoint
    with view.log.engine.connect() as conn:
        lines = store.cosignature_lines(conn, view.log.tree, inc.head.size)
    if lines:
        try:
            checkpoint = add_signatures(checkpoint, "".join(line + "\n" for line in lines)).decode()
        except NoteError:
            log.warning("stored cosignatures of %s size %d do not parse", view.log.info.origin, inc.head.size)
    record = inc.entry
    info = decode.describe_body(record.body, purpose=view.log.info.purpose)
    keys = view.log.keys
    verify_data = {
        "origin": view.log.info.origin,
        "logIndex": record.log_index,
        "treeSize": inc.head.size,
        "body": base64.b64encode(record.body).decode(),
        "leafHash": record.leaf_hash.hex(),
        "proof": [h.hex() for h in inc.proof],
        "checkpoint": checkpoint,
        "ecdsaSpki": base64.b64encode(
            keys.ecdsa.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).decode(),
        "ed25519": base64.b64encode(
            keys.ed25519.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ).decode(),
    }
    return _render(
        "entry.html",
        view,
        record=record,
        global_index=view.log.index_offset + record.log_index,
        time=decode.utc(record.integrated_time),
        uuid=view.log.entry_uuid(record.leaf_hash),
        info=info,
        proof=[h.hex() for h in inc.proof],
        head=inc.head,
        checkpoint=decode.describe_checkpoint(checkpoint, _known_keys(view.log)),
        verify_data=verify_data,
        log_id=view.log.log_id_hex,
        public_key_pem=keys.public_key_pem.decode(),
    )


# --- signers the checkpoint labels can name ----------------------------------------------


def _known_keys(tlog: TransparencyLog) -> list[decode.KnownKey]:
    known = decode.log_known_keys(tlog.info.origin, tlog.keys.ecdsa.public_key(), tlog.keys.ed25519.public_key())
    path = services().settings.witnesses
    if path is not None:
        try:
            known += _witness_keys(Path(path), Path(path).stat().st_mtime_ns)
        except OSError:
            pass
    return known


@functools.lru_cache(maxsize=4)
def _witness_keys(path: Path, _mtime: int) -> list[decode.KnownKey]:
    from tlog.witnessing import WitnessConfigError, load_witnesses

    try:
        witnesses = load_witnesses(path)
    except (OSError, WitnessConfigError):
        return []
    return decode.witness_known_keys((w.url, w.verifier.name, w.verifier.key_id) for w in witnesses)


# --- errors and headers ------------------------------------------------------------------


def _error_page(status: int, title: str, message: str) -> Response:
    try:
        view: LogView | None = _view("certificates" if "/certificates" in request.path else "entries")
    except Exception:  # noqa: BLE001 - the error page must render whatever failed
        view = None
    body = render_template(
        "explorer/error.html",
        view=view,
        has_certificates=view is not None and services().ca is not None,
        q=request.args.get("q", "")[:MAX_QUERY_CHARS],
        status=status,
        title=title,
        message=message,
    )
    return Response(body, status=status, mimetype="text/html")


_TITLES = {400: "Bad request", 404: "Not found", 429: "Too many requests", 503: "Unavailable"}


@bp.errorhandler(TlogError)
def _tlog_error(exc: TlogError) -> Response:
    resp = _error_page(exc.http_status, _TITLES.get(exc.http_status, "Error"), exc.message)
    if isinstance(exc, (Unavailable, TooManyRequests)):
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return _error_page(status, exc.name, exc.description or exc.name)


@bp.errorhandler(DBAPIError)
def _storage_error(exc: DBAPIError) -> Response:
    log.error("storage error on %s %s: %s", request.method, request.path, exc.orig)
    resp = _error_page(503, "Unavailable", "the log's storage is unavailable; retry later")
    resp.headers["Retry-After"] = "5"
    return resp


@bp.after_request
def _security_headers(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "no-referrer"
    if resp.mimetype == "text/html":
        resp.headers["Cache-Control"] = "no-cache"
    return resp
