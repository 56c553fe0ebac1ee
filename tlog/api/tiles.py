"""C2SP tlog-tiles read API: ``/checkpoint``, ``/tile/<L>/<N>[.p/<W>]``, ``/tile/entries/<N>[.p/<W>]``.

Full tiles never change, so they are served with a year-long immutable cache
lifetime; partial tiles and the checkpoint are short-lived.
"""

from __future__ import annotations

import re

from collections.abc import Callable

from flask import Blueprint, Response

from tlog.errors import BadRequest
from tlog.log import TILE_WIDTH, TransparencyLog

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=5"

# N as 3-digit groups, all but the last prefixed with "x"; then an optional ".p/<W>".
_TILE_PATH = re.compile(r"^((?:x\d{3}/)*)(\d{3})(?:\.p/(\d{1,3}))?$")


def parse_tile_index(path: str) -> tuple[int, int]:
    """Parse ``x001/x234/067[.p/W]`` into ``(index, width)``, strictly canonical."""
    m = _TILE_PATH.match(path)
    if not m:
        raise BadRequest(f"malformed tile path {path!r}")
    groups = [g[1:] for g in m.group(1).split("/") if g] + [m.group(2)]
    if len(groups) > 1 and groups[0] == "000":
        raise BadRequest(f"malformed tile path {path!r}: leading zero group")
    index = int("".join(groups))
    width = TILE_WIDTH
    if m.group(3) is not None:
        w = m.group(3)
        if w.startswith("0") or not 1 <= int(w) < TILE_WIDTH:
            raise BadRequest(f"malformed tile path {path!r}: partial width must be 1-{TILE_WIDTH - 1}")
        width = int(w)
    return index, width


def make_blueprint(name: str, url_prefix: str, get_log: Callable[[], TransparencyLog]) -> Blueprint:
    """The tiles API of one tree (the entry log at ``/``, the certificate log under its prefix)."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix or None)

    @bp.get("/checkpoint")
    def checkpoint() -> Response:
        head = get_log().latest_cosigned_head()
        return Response(head.checkpoint, headers={"Cache-Control": SHORT, "Content-Type": "text/plain; charset=utf-8"})

    @bp.get("/tile/entries/<path:path>")
    def entry_bundle(path: str) -> Response:
        index, width = parse_tile_index(path)
        return _immutable_if_full(get_log().entry_bundle(index, width), width)

    @bp.get("/tile/<level>/<path:path>")
    def tile(level: str, path: str) -> Response:
        if not level.isascii() or not level.isdigit() or (level != "0" and level.startswith("0")) or int(level) > 63:
            raise BadRequest(f"malformed tile level {level!r}: expected 0-63")
        index, width = parse_tile_index(path)
        return _immutable_if_full(get_log().tile(int(level), index, width), width)

    return bp


def _immutable_if_full(data: bytes, width: int) -> Response:
    return Response(
        data,
        mimetype="application/octet-stream",
        headers={"Cache-Control": IMMUTABLE if width == TILE_WIDTH else SHORT},
    )
