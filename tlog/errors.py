"""The error taxonomy shared by the log, the CA and the API layer.

Library code raises these; only ``tlog.api.errors`` turns them into HTTP
responses (Rekor's ``{"code": <status>, "message": <text>}`` shape) and only the
CLI turns them into exit codes. Each class carries the HTTP status it maps to and
a short stable ``category`` used as a metrics label.
"""

from __future__ import annotations


class TlogError(Exception):
    """Base class: every error the service reports to a client."""

    http_status: int = 500
    category: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(TlogError):
    """The request is malformed or fails validation (HTTP 400)."""

    http_status = 400
    category = "bad_request"


class Unauthorized(TlogError):
    """Missing or invalid credentials (HTTP 401)."""

    http_status = 401
    category = "unauthorized"


class Forbidden(TlogError):
    """Valid credentials that are not allowed to do this (HTTP 403)."""

    http_status = 403
    category = "forbidden"


class NotFound(TlogError):
    """The requested entry, tile or proof does not exist (HTTP 404)."""

    http_status = 404
    category = "not_found"


class Conflict(TlogError):
    """The entry is already in the log (HTTP 409).

    ``uuid`` and ``log_index`` name the existing entry so the API can answer
    with its location, as Rekor does.
    """

    http_status = 409
    category = "conflict"

    def __init__(self, message: str, *, uuid: str = "", log_index: int = -1) -> None:
        super().__init__(message)
        self.uuid = uuid
        self.log_index = log_index


class PayloadTooLarge(TlogError):
    """The request body exceeds the configured limit (HTTP 413)."""

    http_status = 413
    category = "too_large"


class UnprocessableEntity(TlogError):
    """Well-formed input whose content cannot be accepted (HTTP 422)."""

    http_status = 422
    category = "unprocessable"


class TooManyRequests(TlogError):
    """The client is over its rate limit (HTTP 429)."""

    http_status = 429
    category = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(TlogError):
    """Storage or an upstream dependency is down; try again later (HTTP 503)."""

    http_status = 503
    category = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Internal(TlogError):
    """A bug or an invariant violation on our side (HTTP 500)."""

    http_status = 500
    category = "internal"
