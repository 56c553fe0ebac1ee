"""Rate limits per client address and per signing identity (``limits``).

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
the per-address budgets.

Counters live in ``rate_limit_storage``: ``memory://`` is per worker process
(so the effective limit is the configured one times the number of workers
that happen to serve a client), a shared store such as ``redis://host:6379``
makes the limits exact across workers and frontends. If a shared store stops
answering, each process falls back to its own in-memory counters and logs it,
and tries the store again every few seconds.

The counting, windows and stores are the ``limits`` library's; this module
only decides which budget a request spends, in one ``before_request`` hook.
Flask-Limiter, which wraps the same library, cost 60-100 µs per request for
exempt clients and ~220 µs for counted ones (measured with the Flask test
client; a trivial request is ~210 µs), against ~10 µs here.

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
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, storage_from_string
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


def client_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None) -> str:
    """The rate-limit key of the client (``ip``, parsed here if not given): its address, IPv6 reduced to the /64."""
    ip = ip or _client_ip()
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


#: Seconds between attempts to use a shared store again after it failed.
STORE_RETRY_SECONDS = 5.0


class SweepingMemoryStorage(MemoryStorage):
    """``limits``' memory store, expiring old keys inline every few seconds.

    The library's store starts a new timer thread 10 ms after the last one
    ended whenever a counter moves, and each run walks every key. With one key
    per signing identity (new identities all day) that measured ~0.14 ms per
    request in thread starts alone, and the walk grows with the keys: 60,000
    keys (a minute at 1,000 identities/s) walked 100 times a second. Counters
    are already checked for expiry when read, so a sweep every
    ``SWEEP_SECONDS`` only bounds memory. Overrides the store's private
    scheduling hook; tests/integration/test_rate_limits.py checks it is used.
    """

    SWEEP_SECONDS = 5.0

    def __init__(self, uri: str | None = None, **options: Any) -> None:
        super().__init__(uri, **options)
        self._next_sweep = time.monotonic() + self.SWEEP_SECONDS

    def _MemoryStorage__schedule_expiry(self) -> None:  # the name the parent's calls mangle to
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def _storage(uri: str) -> Any:
    return SweepingMemoryStorage() if uri == "memory://" else storage_from_string(uri)


class Counters:
    """The configured ``limits`` strategy and store, with per-process memory
    counters standing in while a shared store is down."""

    def __init__(self, storage_uri: str, strategy: str) -> None:
        self.primary: RateLimiter = STRATEGIES[strategy](_storage(storage_uri))
        memory = storage_uri.startswith("memory://")
        self.fallback: RateLimiter | None = None if memory else STRATEGIES[strategy](SweepingMemoryStorage())
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    def _current(self) -> RateLimiter:
        failed_at = self._failed_at
        if failed_at is None or self.fallback is None:
            return self.primary
        if time.monotonic() - failed_at < STORE_RETRY_SECONDS:
            return self.fallback
        with self._lock:
            self._failed_at = None  # try the store again; the next failure sets it anew
        return self.primary

    def hit(self, item: RateLimitItem, scope: str, key: str) -> tuple[bool, float, int] | None:
        """Count one request: (allowed, window reset time, remaining), or None if no store answers."""
        for _ in range(2):
            strategy = self._current()
            try:
                allowed = strategy.hit(item, KEY_PREFIX, scope, key)
                reset_at, remaining = strategy.get_window_stats(item, KEY_PREFIX, scope, key)
                return allowed, reset_at, remaining
            except Exception:  # noqa: BLE001 - a network store's errors are many
                if strategy is self.fallback or self.fallback is None:
                    log.exception("rate limit counters failed; request not counted")
                    return None
                with self._lock:
                    if self._failed_at is None:
                        log.exception("rate limit storage failed; counting per process for %.0f s", STORE_RETRY_SECONDS)
                    self._failed_at = time.monotonic()
        return None


@dataclass
class RateLimits:
    """What :func:`install` set up for one app."""

    counters: Counters
    per_class: dict[str, list[RateLimitItem]]
    exempt: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    identity_limits: list[RateLimitItem] = field(default_factory=list)

    def check_request(self) -> None:
        """``before_request``: spend the request's class budget; TooManyRequests when over it."""
        scope = request_class()
        items = self.per_class.get(scope) if scope is not None else None
        if not items:
            return
        ip = _client_ip()
        if ip is not None and any(ip in net for net in self.exempt):
            return
        key = client_address(ip)
        least: tuple[int, dict[str, str]] | None = None
        for item in items:
            counted = self.counters.hit(item, scope, key)  # type: ignore[arg-type]
            if counted is None:
                return  # no store answers: let the request through
            allowed, reset_at, remaining = counted
            headers = _headers(item, remaining, reset_at)
            if not allowed:
                g.tlog_rate_limit_headers = headers
                self._refuse(f"{describe(item)} per client ({scope})", scope, reset_at)  # type: ignore[arg-type]
            if least is None or remaining < least[0]:
                least = (remaining, headers)
        if least is not None:
            g.tlog_rate_limit_headers = least[1]

    def hit_identity(self, issuer: str, san: str) -> None:
        if not self.identity_limits:
            return
        digest = hashlib.sha256(f"{issuer}\x00{san}".encode()).hexdigest()[:32]
        for item in self.identity_limits:
            counted = self.counters.hit(item, IDENTITY, digest)
            if counted is None:
                log.warning("identity %s of %s not counted: no rate limit store answers", san, issuer)
                return
            allowed, reset_at, remaining = counted
            if not allowed:
                g.tlog_rate_limit_headers = _headers(item, remaining, reset_at)
                log.info("identity rate limit %s exceeded by %s (%s)", describe(item), san, issuer)
                self._refuse(f"{describe(item)} per identity", IDENTITY, reset_at)

    @staticmethod
    def _refuse(what: str, scope: str, reset_at: float) -> None:
        retry = _retry_after(reset_at)
        rate_limited_counter().labels(scope).inc()
        raise TooManyRequests(f"rate limit exceeded: {what}; retry after {retry} s", retry_after=retry)


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
    per_class = {
        name: parse_limit(value)
        for name, value in (
            (SUBMISSIONS, settings.submission_rate_limit),
            (SIGNING, settings.signing_rate_limit),
            (READS, settings.read_rate_limit),
        )
    }
    limits = RateLimits(
        Counters(settings.rate_limit_storage, settings.rate_limit_strategy),
        per_class={k: v for k, v in per_class.items() if v},
        exempt=[ipaddress.ip_network(n) for n in parse_networks(settings.rate_limit_exempt)],
        identity_limits=parse_limit(settings.identity_rate_limit),
    )
    app.extensions[EXTENSION] = limits
    for scope in (SUBMISSIONS, SIGNING, READS, IDENTITY):
        rate_limited_counter().labels(scope)  # every series exists from the start, at 0
    app.before_request(limits.check_request)

    @app.after_request
    def _rate_limit_headers(response: Response) -> Response:
        headers = g.pop("tlog_rate_limit_headers", None)
        if headers:
            response.headers.update(headers)
        return response
