"""Every error leaves the server as Rekor's ``{"code": <status>, "message": <text>}``.

One place maps the library's :mod:`tlog.errors` taxonomy, werkzeug's HTTP
exceptions and anything unexpected to that shape. A traceback never reaches
a client: an unexpected exception is logged with the request's path and
answered with a generic 500.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from tlog.errors import Conflict, TlogError, TooManyRequests, Unavailable
from tlog.storage.db import storage_error_message

log = logging.getLogger(__name__)


def error_response(status: int, message: str) -> Response:
    resp = jsonify({"code": status, "message": message})
    resp.status_code = status
    return resp


def _tlog_error(exc: TlogError) -> Response:
    resp = error_response(exc.http_status, exc.message)
    if isinstance(exc, Conflict) and exc.uuid:
        resp.headers["Location"] = f"/api/v1/log/entries/{exc.uuid}"
        resp.headers["ETag"] = exc.uuid
    if isinstance(exc, (Unavailable, TooManyRequests)):
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if isinstance(exc, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return error_response(413, f"request body exceeds the limit of {limit} bytes ({limit // 1024} KiB)")
    message = exc.description or exc.name
    if status == 404:
        message = f"no such endpoint: {request.method} {request.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.path}"
    resp = error_response(status, message)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        resp.headers["Allow"] = ", ".join(exc.valid_methods)
    return resp


def _storage_error(exc: DBAPIError) -> Response:
    # Lost connection, database down, disk full, lock timeout: not the client's
    # fault and not permanent. Every write is one transaction, so nothing is
    # half-written; say so and ask for a retry. A full disk (SQLITE_FULL,
    # PostgreSQL's 53100) is named as such: it needs an operator, not patience.
    log.error("storage error on %s %s: %s", request.method, request.path, exc.orig)
    resp = error_response(503, storage_error_message(exc))
    resp.headers["Retry-After"] = "5"
    return resp


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal server error")


def register(app: Flask) -> None:
    app.register_error_handler(TlogError, _tlog_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DBAPIError, _storage_error)
    app.register_error_handler(Exception, _unexpected)
