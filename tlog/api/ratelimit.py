"""Rate limits per client address and per signing identity (Flask-Limiter).

Every request except ``/healthz`` and ``/metrics`` falls in one of three
classes, each with its own per-address budget (:class:`~tlog.config.Settings`):

* ``submissions``: ``POST /api/v1/log/entries`` (signature check and a write);
* ``signing``: ``POST /api/v2/signingCert`` (token check, issuance, a write);
* ``reads``: everything else (proofs, entries, searches, tiles, checkpoints).

The client address is ``request.remote_addr`` (the socket peer, or with
``trust_proxy_headers`` N the N-th address from the right of
``X-Forwarded-For``, via werkzeug's ``ProxyFix``); IPv6 addresses count per
/64, the smallest block one host is normally given. Addresses in
``rate_limit_exempt`` (loopback by default: local health checks, benchmarks,
the operator's own tools) skip the per-address limits.

On the CA a second budget counts per identity (OIDC issuer + SAN) once the
token has verified: :func:`check_identity`, called from the view because the
key is known only then. It uses the same ``limits`` strategy and storage as
Flask-Limiter.

Counters live in ``rate_limit_storage``: ``memory://`` is per worker process
(so the effective limit is the configured one times the number of workers
that happen to serve a client), a shared store such as ``redis://host:6379``
makes the limits exact across workers and frontends. If a shared store stops
answering, each process falls back to its own in-memory counters and logs it.

A refused request gets 429 ``{"code": 429, "message": ...}`` with
``Retry-After`` (seconds) and is counted in ``tlog_rate_limited_total{scope}``;
limited responses carry ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset``.

This module does not import ``prometheus_client`` at import time: ``tlog
serve`` must set up multi-process metrics before the first import, and the CLI
imports this module to check its options.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limit, Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import STRATEGIES, RateLimiter
from werkzeug.middleware.proxy_fix import ProxyFix

from tlog.config import Settings
from tlog.errors import TooManyRequests

log = logging.getLogger(__name__)

EXTENSION = "tlog_ratelimit"
KEY_PREFIX = "tlog"
SUBMISSIONS, SIGNING, READS, IDENTITY = "submissions", "signing", "reads", "identity"
#: (method, URL rule) of the non-read classes; every other rule is a read.
CLASSES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/log/entries"): SUBMISSIONS,
    ("POST", "/api/v2/signingCert"): SIGNING,
}
EXEMPT_RULES = frozenset({"/healthz", "/metrics"})
#: Spellings of "no limit" accepted for any limit option.
DISABLED = frozenset({"", "0", "none", "off", "unlimited"})


# --- parsing and checking the settings (no Flask needed) ----------------------------------


def parse_limit(value: str | None) -> list[RateLimitItem]:
    """``"600/minute"`` (or several joined with ``;``) → limits; empty for "0"/"none"/None.

    Raises ValueError with a readable message for anything else.
    """
    if value is None or value.strip().lower() in DISABLED:
        return []
    try:
        items = parse_many(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a rate limit: use e.g. '600/minute', '10/second;300/hour', or 'none'") from None
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{value!r} is not a rate limit: amounts must be at least 1 (use 'none' to disable)")
    return items


def normalize_limit(value: str | None) -> str | None:
    """The option's value as stored in Settings: None when disabled, else the checked string."""
    return value.strip() if parse_limit(value) else None


def describe(item: RateLimitItem) -> str:
    """``3 per minute``, ``100 per 10 seconds``."""
    unit = item.GRANULARITY.name
    return f"{item.amount} per {unit}" if item.multiples == 1 else f"{item.amount} per {item.multiples} {unit}s"


def parse_networks(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"127.0.0.0/8,::1"`` (or a tuple of such) → normalised networks; empty for "none"."""
    parts = value.split(",") if isinstance(value, str) else list(value or ())
    networks = []
    for part in (p.strip() for p in parts):
        if part.lower() in DISABLED:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network (CIDR)") from None
    return tuple(networks)


def _any_limit(settings: Settings) -> bool:
    return any(
        parse_limit(v)
        for v in (settings.submission_rate_limit, settings.signing_rate_limit, settings.read_rate_limit, settings.identity_rate_limit)
    )


def check_settings(settings: Settings) -> None:
    """Fail early (ValueError) on a bad limit, strategy or storage URI, before workers start."""
    for name in ("submission_rate_limit", "signing_rate_limit", "read_rate_limit", "identity_rate_limit"):
        try:
            parse_limit(getattr(settings, name))
        except ValueError as exc:
            raise ValueError(f"{name.replace('_', '-')}: {exc}") from None
    if settings.rate_limit_strategy not in STRATEGIES:
        raise ValueError(f"unknown rate limit strategy {settings.rate_limit_strategy!r}; one of {', '.join(sorted(STRATEGIES))}")
    try:
        parse_networks(settings.rate_limit_exempt)
    except ValueError as exc:
        raise ValueError(f"rate-limit-exempt: {exc}") from None
    if settings.trust_proxy_headers < 0:
        raise ValueError("trust-proxy-headers must be 0 or more")
    if not _any_limit(settings):
        return
    try:
        # Builds the client object only; a network store is not contacted here.
        STRATEGIES[settings.rate_limit_strategy](storage_from_string(settings.rate_limit_storage))
    except Exception as exc:  # noqa: BLE001 - ConfigurationError, a missing driver, NotImplementedError
        raise ValueError(f"rate limit storage {settings.rate_limit_storage!r}: {exc}") from None


# --- the request side ---------------------------------------------------------------------


def _client_ip() -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address() -> str:
    """The rate-limit key of the client: its address, IPv6 reduced to the /64."""
    ip = _client_ip()
    if ip is None:
        return request.remote_addr or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def request_class() -> str | None:
    """``submissions``, ``signing``, ``reads``, or None for exempt and unrouted requests."""
    rule = request.url_rule
    if rule is None or rule.rule in EXEMPT_RULES:
        return None
    return CLASSES.get((request.method, rule.rule), READS)


_counter: Any = None


def rate_limited_counter() -> Any:
    """``tlog_rate_limited_total{scope}``, created on first use (see the module docstring)."""
    global _counter
    if _counter is None:
        from prometheus_client import Counter

        _counter = Counter("tlog_rate_limited_total", "Requests refused with 429, by limit scope.", ["scope"])
    return _counter


def _retry_after(reset_at: float) -> int:
    return max(1, math.ceil(reset_at - time.time()))


@dataclass
class RateLimits:
    """What :func:`install` set up for one app."""

    limiter: Limiter
    identity_limits: list[RateLimitItem] = field(default_factory=list)

    @property
    def strategy(self) -> RateLimiter:
        # Flask-Limiter's strategy object: the in-memory fallback while the shared store is down.
        return self.limiter.limiter

    def hit_identity(self, issuer: str, san: str) -> None:
        if not self.identity_limits:
            return
        digest = hashlib.sha256(f"{issuer}\x00{san}".encode()).hexdigest()[:32]
        for item in self.identity_limits:
            try:
                allowed = self.strategy.hit(item, KEY_PREFIX, IDENTITY, digest)
                if allowed:
                    continue
                reset_at, remaining = self.strategy.get_window_stats(item, KEY_PREFIX, IDENTITY, digest)
            except Exception:  # the store is down: let the request through
                log.exception("rate limit storage failed; identity %s of %s not counted", san, issuer)
                return
            retry = _retry_after(reset_at)
            rate_limited_counter().labels(IDENTITY).inc()
            g.tlog_rate_limit_headers = _headers(item, remaining, reset_at)
            log.info("identity rate limit %s exceeded by %s (%s)", describe(item), san, issuer)
            raise TooManyRequests(f"rate limit exceeded: {describe(item)} per identity; retry after {retry} s", retry_after=retry)


def _headers(item: RateLimitItem, remaining: int, reset_at: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(item.amount),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(math.ceil(reset_at)),
    }


def check_identity(issuer: str, san: str) -> None:
    """Count one signing request for the verified identity; raise TooManyRequests over the limit."""
    limits: RateLimits | None = current_app.extensions.get(EXTENSION)
    if limits is not None:
        limits.hit_identity(issuer, san)


def install(app: Flask, settings: Settings) -> None:
    """Set up ProxyFix (if asked) and the limits of ``settings`` on ``app``."""
    if settings.trust_proxy_headers > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trust_proxy_headers)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = None
    if not _any_limit(settings):
        return

    def for_class(name: str) -> Any:
        return lambda: request_class() != name

    defaults = [
        Limit(value, scope=name, shared=True, exempt_when=for_class(name))
        for name, value in (
            (SUBMISSIONS, settings.submission_rate_limit),
            (SIGNING, settings.signing_rate_limit),
            (READS, settings.read_rate_limit),
        )
        if parse_limit(value)
    ]
    memory = settings.rate_limit_storage.startswith("memory://")
    limiter = Limiter(
        client_address,
        app=app,
        default_limits=defaults,  # type: ignore[arg-type]
        storage_uri=settings.rate_limit_storage,
        strategy=settings.rate_limit_strategy,
        key_prefix=KEY_PREFIX,
        # Our own headers below: the library's would put Retry-After on every response.
        headers_enabled=False,
        # A shared store that stops answering: per-process counters, not 500s.
        in_memory_fallback_enabled=not memory,
        swallow_errors=True,
    )
    exempt = [ipaddress.ip_network(n) for n in parse_networks(settings.rate_limit_exempt)]

    def exempt_request() -> bool:
        if request_class() is None:
            return True
        ip = _client_ip()
        return ip is not None and any(ip in net for net in exempt)

    limiter.request_filter(exempt_request)
    limits = RateLimits(limiter, parse_limit(settings.identity_rate_limit))
    app.extensions[EXTENSION] = limits
    for scope in (SUBMISSIONS, SIGNING, READS, IDENTITY):
        rate_limited_counter().labels(scope)  # every series exists from the start, at 0

    def refused(exc: RateLimitExceeded) -> Response:
        from tlog.api.errors import error_response

        scope = request_class() or READS
        current = limiter.current_limit
        item = current.limit if current is not None else exc.limit.limit
        try:
            reset_at, remaining = current.window if current is not None else (time.time() + item.get_expiry(), 0)
        except Exception:  # noqa: BLE001 - the store is down
            reset_at, remaining = time.time() + item.get_expiry(), 0
        retry = _retry_after(reset_at)
        rate_limited_counter().labels(scope).inc()
        g.tlog_rate_limit_headers = _headers(item, remaining, reset_at)
        resp = error_response(429, f"rate limit exceeded: {describe(item)} per client ({scope}); retry after {retry} s")
        resp.headers["Retry-After"] = str(retry)
        return resp

    app.register_error_handler(RateLimitExceeded, refused)

    @app.after_request
    def _rate_limit_headers(response: Response) -> Response:
        headers = g.pop("tlog_rate_limit_headers", None)
        if headers is None and (current := limiter.current_limit) is not None:
            try:
                reset_at, remaining = current.window
            except Exception:  # noqa: BLE001 - the store is down: no headers
                return response
            headers = _headers(current.limit, remaining, reset_at)
        if headers:
            response.headers.update(headers)
        return response
