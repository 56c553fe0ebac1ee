"""OIDC ID token verification for the CA: the allow-list, discovery, JWKS, signatures.

sigstore clients decode the token they send without checking its signature
(sigstore-python's ``IdentityToken``), so every real check is here. In order:

1. The token is a compact JWS no larger than 64 KiB, parsed once: three
   strict base64url segments (RFC 7515 §2: the URL-safe alphabet, canonical,
   as PyJWT accepts them), a header and a payload that are JSON objects.
   ``alg`` must be one of :data:`ALLOWED_ALGORITHMS`: ``none`` and the HMAC
   family are refused by name (an HMAC "verified" with a public key as the
   secret is the classic forgery); ``crit`` header extensions are refused.
2. ``iss`` is read before verification, only to choose the issuer from the
   allow-list; an unlisted issuer is :class:`~tlog.errors.Forbidden`.
3. The issuer's keys: ``trusted_keys`` if given for that issuer (no HTTP),
   else its JWKS, found through OIDC discovery (the discovery document's
   ``issuer`` must equal ``iss`` exactly) or the configured ``jwks_url``.
4. The signature is checked with the key whose ``kid`` matches (every key of
   the right type when the token has no ``kid``) by PyJWT's algorithm
   implementation for ``alg``, with the key PyJWT built from the JWK (RSA keys
   under 2048 bits refused); then ``iss``, ``aud`` (the issuer's client id; a
   list containing it is fine) and the presence of ``sub``, ``exp`` and ``iat``.
5. Times, against the injected clock with ``leeway`` seconds of slack
   (:data:`DEFAULT_LEEWAY` unless configured): ``exp`` in the future, ``iat``
   not in the future, ``nbf`` (if any) reached.

Every failure of the token itself is :class:`~tlog.errors.Unauthorized` with
the reason in the message.

Why not ``jwt.decode``: it parses the token again on every call (three times
per request here) and checks the base64url alphabet one character at a time
in Python, and the key was rebuilt from its JWK for each token. Parsing once
and keeping each JWK's verifier with the cached key set brought a token check
from about 0.28 ms to 0.11 ms, most of which is now the ES256 signature check.

Key caching and rotation. A JWKS is cached per issuer for
``jwks_cache_seconds``. A ``kid`` that is not in the cached set triggers one
refresh, at most once per ``refresh_interval`` (10 s) per issuer, so a newly
rotated-in key works at once and a retired key stops working at the next
refresh, while a flood of made-up ``kid`` values cannot turn into a flood of
requests to the issuer.

Failing closed. If the issuer cannot be reached, answers with an error
status, or sends something that is not a usable discovery document or JWKS,
verification raises :class:`~tlog.errors.Unavailable` (503) naming the issuer.
The one exception is deliberate: while a cached JWKS is still within its
``jwks_cache_seconds``, tokens signed with a key in it keep verifying even if
the issuer is down (the keys were fetched from the issuer and are still
fresh); a token whose ``kid`` would need a refresh gets the 503. Once the
cache expires, nothing from that issuer verifies until a fetch succeeds. After
a failed fetch, further fetches for that issuer wait ``refresh_interval``
(requests in between get the same 503 at once instead of each waiting for
the HTTP timeout).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import jwt
import requests
from jwt import PyJWK, PyJWKSet
from jwt.algorithms import Algorithm

from tlog.ca.identity import Identity, identity_from_claims
from tlog.ca.issuers import IssuerConfig, IssuersConfig
from tlog.errors import Forbidden, Unauthorized, Unavailable
from tlog.json_text import lone_surrogate_at

ALLOWED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_TOKEN_BYTES: Final = 64 * 1024
MAX_DOCUMENT_BYTES: Final = 1024 * 1024
DEFAULT_REFRESH_INTERVAL: Final = 10.0
#: Seconds of clock skew allowed on ``exp``, ``iat`` and ``nbf``.
DEFAULT_LEEWAY: Final = 30.0
#: Claims every token must carry (non-null), as Fulcio requires.
REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat")
USER_AGENT: Final = "tlog-ca (OIDC token verifier)"

# Which JWK key type (and curve) can verify which algorithm. Checked before
# PyJWT sees the key, so an ES256 token can't be "verified" by a P-384 key.
_KEY_TYPES: Final[dict[str, tuple[str, frozenset[str] | None]]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
_BASE64URL: Final = re.compile(rb"[A-Za-z0-9_-]*")


class _Key:
    """One usable JWK of an issuer, and the verifier PyJWT builds from it per algorithm.

    Built once per fetched key set, so a request does not parse the JWK again.
    """

    __slots__ = ("_verifiers", "jwk", "kid")

    def __init__(self, jwk: dict[str, Any]) -> None:
        self.jwk = jwk
        self.kid: str | None = jwk.get("kid")
        self._verifiers: dict[str, tuple[Algorithm, Any]] = {}

    def fits(self, alg: str) -> bool:
        if self.jwk.get("alg") is not None and self.jwk["alg"] != alg:
            return False
        kty, curves = _KEY_TYPES[alg]
        return self.jwk.get("kty") == kty and (curves is None or self.jwk.get("crv") in curves)

    def verifies(self, alg: str, signing_input: bytes, signature: bytes, issuer_url: str) -> bool:
        """Whether ``signature`` over ``signing_input`` verifies for ``alg`` (which must fit the key)."""
        verifier = self._verifiers.get(alg)
        if verifier is None:
            # What PyJWS does for a PyJWK before each verification: bind the
            # key to the algorithm, check its curve and its length.
            try:
                bound = PyJWK(self.jwk, algorithm=alg)
                key = bound.Algorithm.prepare_key(bound.key)
                too_short = bound.Algorithm.check_key_length(key)
            except (jwt.PyJWTError, TypeError, ValueError) as exc:
                raise Unauthorized(f"issuer {issuer_url} signing key is unusable: {exc}") from None
            if too_short:
                raise Unauthorized(f"issuer {issuer_url} signing key is unusable: {too_short}")
            verifier = self._verifiers[alg] = (bound.Algorithm, key)
        algorithm, key = verifier
        return bool(algorithm.verify(signing_input, key, signature))


@dataclass(frozen=True)
class _Token:
    """A compact JWS taken apart; nothing in it is verified yet."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass
class _IssuerKeys:
    """The JWKS cache of one issuer. ``lock`` serialises fetches only."""

    keys: tuple[_Key, ...] = ()
    fetched_at: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class TokenVerifier:
    """Verifies ID tokens from the issuers in ``issuers``.

    ``trusted_keys`` maps an issuer URL (which must also be in ``issuers``) to
    its JWKS, as a dict or a :class:`jwt.PyJWKSet`; those issuers are never
    contacted over HTTP. Thread-safe; one instance serves the whole process.
    """

    def __init__(
        self,
        issuers: IssuersConfig,
        *,
        http_timeout: float = 5.0,
        jwks_cache_seconds: float = 300,
        leeway: float = DEFAULT_LEEWAY,
        clock: Callable[[], float] = time.time,
        trusted_keys: Mapping[str, PyJWKSet | Mapping[str, Any]] | None = None,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        session: requests.Session | None = None,
    ) -> None:
        self._issuers = issuers
        self._timeout = http_timeout
        self._cache_seconds = jwks_cache_seconds
        self._leeway = leeway
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._session = session or requests.Session()
        self._session.headers.setdefault("User-Agent", USER_AGENT)
        self._trusted: dict[str, tuple[_Key, ...]] = {}
        for url, jwks in (trusted_keys or {}).items():
            if issuers.find(url) is None:
                raise ValueError(f"trusted_keys names issuer {url!r}, which is not in the issuer allow-list")
            if isinstance(jwks, PyJWKSet):
                # PyJWKSet has no public view of the JWK dicts; keys are
                # re-bound to the token's alg on first use (see _Key).
                jwks = {"keys": [dict(k._jwk_data) for k in jwks.keys]}
            try:
                self._trusted[url] = _usable_keys(jwks, url)
            except Unavailable as exc:
                raise ValueError(f"trusted_keys for {url!r}: {exc.message}") from None
        self._cache: dict[str, _IssuerKeys] = {}
        self._cache_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP session (connection pool)."""
        self._session.close()

    # -- public API ---------------------------------------------------------

    def verify(self, token: str) -> tuple[dict[str, Any], IssuerConfig]:
        """Verify ``token``; return its claims and the issuer entry it matched.

        Raises :class:`Unauthorized` (bad token), :class:`Forbidden` (issuer
        not allowed) or :class:`Unavailable` (issuer keys unobtainable).
        """
        parsed = _parse(token)
        alg = parsed.header["alg"]
        iss = parsed.claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise Unauthorized("malformed token: the iss claim is missing or not a string")
        issuer = self._issuers.find(iss)
        if issuer is None:
            raise Forbidden(f"issuer {iss} is not allowed")
        kid = parsed.header.get("kid")
        keys = self._keys_for(issuer, kid)
        candidates = [k for k in keys if k.fits(alg)]
        if not candidates:
            raise Unauthorized(
                f"signing key {kid!r} of issuer {iss} cannot verify algorithm {alg}"
                if kid is not None
                else f"issuer {iss} has no key for algorithm {alg}"
            )
        # Several candidates only for a token without kid: any one may have signed it.
        if not any(k.verifies(alg, parsed.signing_input, parsed.signature, issuer.url) for k in candidates):
            raise Unauthorized("token signature invalid")
        _check_claims(parsed.claims, issuer)
        self._check_times(parsed.claims)
        return parsed.claims, issuer

    def identity(self, token: str) -> Identity:
        """:meth:`verify`, then map the claims with :func:`identity_from_claims`."""
        claims, issuer = self.verify(token)
        return identity_from_claims(claims, issuer)

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()

        def number(name: str) -> float:
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Unauthorized(f"malformed token: the {name} claim is not a number")
            return float(value)

        if now >= number("exp") + self._leeway:
            raise Unauthorized("token expired")
        if number("iat") > now + self._leeway:
            raise Unauthorized("token not yet valid: issued in the future (iat)")
        if "nbf" in claims and number("nbf") > now + self._leeway:
            raise Unauthorized("token not yet valid (nbf)")

    # -- keys ---------------------------------------------------------------

    def _keys_for(self, issuer: IssuerConfig, kid: str | None) -> tuple[_Key, ...]:
        trusted = self._trusted.get(issuer.url)
        if trusted is not None:
            found = _select(trusted, kid)
            if not found:
                raise Unauthorized(f"unknown signing key id {kid!r} for issuer {issuer.url}")
            return found
        state = self._state(issuer.url)
        if not self._fresh(state):
            with state.lock:
                if not self._fresh(state):  # another thread may have refreshed meanwhile
                    self._refresh(issuer, state)
        found = _select(state.keys, kid)
        if not found and kid is not None:
            with state.lock:
                found = _select(state.keys, kid)
                # A recent failure re-raises its 503 (we cannot tell whether
                # the key exists); a recent success means the kid is unknown.
                if not found and (self._may_fetch(state) or state.last_error is not None):
                    self._refresh(issuer, state)
                    found = _select(state.keys, kid)
        if not found:
            raise Unauthorized(f"unknown signing key id {kid!r} for issuer {issuer.url}")
        return found

    def _state(self, url: str) -> _IssuerKeys:
        with self._cache_lock:
            return self._cache.setdefault(url, _IssuerKeys())

    def _fresh(self, state: _IssuerKeys) -> bool:
        return state.fetched_at is not None and self._clock() - state.fetched_at < self._cache_seconds

    def _may_fetch(self, state: _IssuerKeys) -> bool:
        return state.last_attempt is None or self._clock() - state.last_attempt >= self._refresh_interval

    def _refresh(self, issuer: IssuerConfig, state: _IssuerKeys) -> None:
        """Fetch the issuer's JWKS into ``state``; :class:`Unavailable` on failure.

        Called with ``state.lock`` held.
        """
        retry = max(1, int(self._refresh_interval))
        if not self._may_fetch(state) and state.last_error is not None:
            raise Unavailable(state.last_error, retry_after=retry)
        state.last_attempt = self._clock()
        try:
            keys = self._fetch_jwks(issuer)
        except Unavailable as exc:
            state.last_error = exc.message
            raise Unavailable(exc.message, retry_after=retry) from None
        state.keys, state.fetched_at, state.last_error = keys, self._clock(), None

    def _fetch_jwks(self, issuer: IssuerConfig) -> tuple[_Key, ...]:
        jwks_url = issuer.jwks_url
        if jwks_url is None:
            discovery = self._get_json(issuer.discovery_url, issuer, "discovery document")
            if discovery.get("issuer") != issuer.url:
                raise Unavailable(
                    f"OIDC issuer {issuer.url}: discovery document names issuer "
                    f"{discovery.get('issuer')!r}, not {issuer.url!r}; refusing its keys"
                )
            jwks_url = discovery.get("jwks_uri")
            if not isinstance(jwks_url, str) or not _acceptable_key_url(jwks_url, issuer.url):
                raise Unavailable(f"OIDC issuer {issuer.url}: discovery document has no usable jwks_uri ({jwks_url!r})")
        return _usable_keys(self._get_json(jwks_url, issuer, "JWKS"), issuer.url)

    def _get_json(self, url: str, issuer: IssuerConfig, what: str) -> dict[str, Any]:
        def down(reason: str) -> Unavailable:
            return Unavailable(f"OIDC issuer {issuer.url} is unavailable: {what} at {url}: {reason}")

        try:
            with self._session.get(
                url, timeout=self._timeout, stream=True, headers={"Accept": "application/json"}
            ) as response:
                if response.status_code != 200:
                    raise down(f"HTTP {response.status_code}")
                body = b""
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise down(f"larger than {MAX_DOCUMENT_BYTES} bytes")
        except requests.RequestException as exc:
            raise down(type(exc).__name__) from None
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise down("not JSON") from None
        if not isinstance(document, dict):
            raise down("not a JSON object")
        return document


def _acceptable_key_url(url: str, issuer_url: str) -> bool:
    # Keys must come over TLS, unless the issuer itself is plain http (a
    # loopback development issuer); then the same scheme is fine.
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and urlsplit(issuer_url).scheme == "http")


def _usable_keys(jwks: Mapping[str, Any], issuer_url: str) -> tuple[_Key, ...]:
    """The signature-verification keys of a JWKS; :class:`Unavailable` if none.

    Keys marked for encryption, symmetric keys and keys PyJWT cannot load are
    skipped (RFC 7517 §5: unknown keys are ignored, not fatal).
    """
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        raise Unavailable(f"OIDC issuer {issuer_url}: JWKS has no 'keys' list")
    usable: list[_Key] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid", ""), str):
            continue
        if entry.get("alg") is not None and entry.get("alg") not in ALLOWED_ALGORITHMS:
            continue
        try:
            PyJWK(entry)
        except jwt.PyJWTError:
            continue
        usable.append(_Key(dict(entry)))
    if not usable:
        raise Unavailable(f"OIDC issuer {issuer_url}: JWKS has no usable signing keys")
    return tuple(usable)


def _select(keys: tuple[_Key, ...], kid: str | None) -> tuple[_Key, ...]:
    if kid is None:
        return keys
    return tuple(k for k in keys if k.kid == kid)


def _segment(data: bytes, name: str) -> bytes:
    """One base64url segment of a compact JWS, decoded strictly.

    The URL-safe alphabet only, the canonical encoding of what it decodes to
    (no stray trailing bits), and at most the padding PyJWT tolerates (up to
    two ``=`` on a length that is a multiple of four).
    """
    stripped = data.rstrip(b"=")
    padding = len(data) - len(stripped)
    if padding > 2 or (padding and len(data) % 4) or len(stripped) % 4 == 1 or not _BASE64URL.fullmatch(stripped):
        raise Unauthorized(f"malformed token: the {name} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise Unauthorized(f"malformed token: the {name} is not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != stripped:
        raise Unauthorized(f"malformed token: the {name} is not canonical base64url")
    return raw


def _json_object(raw: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise Unauthorized(f"malformed token: the {name} is not JSON") from None
    if not isinstance(value, dict):
        raise Unauthorized(f"malformed token: the {name} is not a JSON object")
    # Every claim a certificate carries comes from here: none may hold a string
    # with no UTF-8 encoding.
    if (where := lone_surrogate_at(raw, value)) is not None:
        raise Unauthorized(
            f"malformed token: in the {name}, {where} escapes a lone UTF-16 surrogate, which is no Unicode character"
        )
    return value


def _parse(token: str) -> _Token:
    """Take a compact JWS apart and check its header; nothing is verified yet."""
    if not isinstance(token, str) or not token:
        raise Unauthorized("malformed token: empty")
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized(f"malformed token: longer than {MAX_TOKEN_BYTES} bytes")
    if token.count(".") != 2:
        raise Unauthorized("malformed token: not a compact JWS (header.payload.signature)")
    if not token.isascii():
        raise Unauthorized("malformed token: not base64url")
    raw = token.encode("ascii")
    signing_input, _, signature = raw.rpartition(b".")
    header_part, _, payload_part = signing_input.partition(b".")
    header = _json_object(_segment(header_part, "header"), "header")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise Unauthorized("malformed token: the header has no alg")
    if alg.lower() == "none":
        raise Unauthorized("algorithm none not allowed")
    if alg.upper().startswith("HS"):
        raise Unauthorized(f"HMAC algorithms are not allowed (token uses {alg})")
    if alg not in ALLOWED_ALGORITHMS:
        raise Unauthorized(f"algorithm {alg} not allowed; allowed: {', '.join(sorted(ALLOWED_ALGORITHMS))}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Unauthorized("malformed token: kid is not a string")
    # RFC 7515 §4.1.11: extensions we do not implement must make us refuse;
    # we implement none (an unencoded payload, b64=false, least of all).
    if "crit" in header or header.get("b64", True) is not True:
        raise Unauthorized("malformed token: critical header extensions (crit, b64) are not supported")
    claims = _json_object(_segment(payload_part, "payload"), "payload")
    return _Token(header, claims, signing_input, _segment(signature, "signature"))


def _check_claims(claims: Mapping[str, Any], issuer: IssuerConfig) -> None:
    """What ``jwt.decode`` checked after the signature: required claims, ``iss``, ``aud``, claim types."""
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise Unauthorized(f"token is missing the {name!r} claim")
    if claims["iss"] != issuer.url:
        raise Unauthorized(f"wrong issuer: the token is not from {issuer.url}")
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    if audiences is None or not all(isinstance(a, str) for a in audiences):
        raise Unauthorized("malformed token: the aud claim is not a string or a list of strings")
    if issuer.client_id not in audiences:
        raise Unauthorized(f"wrong audience: the token is not for {issuer.client_id!r}")
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise Unauthorized(f"malformed token: the {name} claim is not a string")
