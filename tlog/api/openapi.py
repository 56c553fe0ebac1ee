"""The OpenAPI 3.0 description of this server: ``/api/v1/openapi.yaml`` and ``/api/v1/openapi.json``.

``openapi.yaml`` next to this module is the source of truth; it is served as
is, and parsed once and re-serialised for the JSON form. Both are loaded
lazily, on first request, and cached for the life of the process.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

import yaml
from flask import Blueprint, Response

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

#: The document changes only with a new release of the server.
CACHE_CONTROL = "public, max-age=3600"


@functools.cache
def document_text() -> str:
    """The YAML document exactly as shipped."""
    return (files("tlog.api") / "openapi.yaml").read_text(encoding="utf-8")


@functools.cache
def document() -> dict[str, Any]:
    """The parsed document (shared; do not mutate)."""
    doc = yaml.safe_load(document_text())
    if not isinstance(doc, dict):
        raise TypeError("tlog/api/openapi.yaml is not a YAML mapping")
    return doc


@functools.cache
def _document_json() -> str:
    return json.dumps(document(), ensure_ascii=False, indent=2) + "\n"


@bp.get("/openapi.yaml")
def openapi_yaml() -> Response:
    return Response(document_text(), mimetype="application/yaml", headers={"Cache-Control": CACHE_CONTROL})


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return Response(_document_json(), mimetype="application/json", headers={"Cache-Control": CACHE_CONTROL})
