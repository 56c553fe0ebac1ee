"""A built-in development OIDC issuer, so the CA can be tried without Google or
GitHub. Off unless the server is started with it; never use it in production:
anyone who can read the data directory can mint identities.

Layout. The dev issuer has one signing key (ES256, P-256; kid = its RFC 7638
JWK thumbprint) and serves two OIDC issuers that share it, so each token type
maps through the ordinary issuer types of :mod:`tlog.ca.identity`:

=========================  ===============  ===============================================
issuer URL                 issuer type      routes (relative to the server root)
=========================  ===============  ===============================================
``<base>/oidc``            email            ``/oidc/.well-known/openid-configuration``,
                                            ``/oidc/jwks``
``<base>/oidc/github``     github-workflow  ``/oidc/github/.well-known/openid-configuration``,
                                            ``/oidc/github/jwks``
=========================  ===============  ===============================================

``<base>/oidc`` is what :func:`dev_issuer_url` returns and what is passed to
:meth:`DevIssuer.load_or_create` as ``issuer_url``; any URL works, the routes
follow its path. GitHub-type tokens carry realistic GitHub Actions claims, so
the certificate gets the same SAN (``https://github.com/<job_workflow_ref>``)
and extensions as a real GitHub Actions certificate, but with the dev
issuer's ``iss``, so they can never be mistaken for real ones by a verifier
that pins the issuer.

Files in the data directory: ``dev-oidc-key.pem`` (mode 0600, created on
first use through :mod:`tlog.keys`) and ``dev-oidc.json``
(``{"issuer": "<issuer_url>"}``), which lets the CLI mint tokens for the
running server's issuer later with :meth:`DevIssuer.load`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Blueprint, Response, jsonify
from jwt.algorithms import ECAlgorithm

from tlog.ca.issuers import DEFAULT_CLIENT_ID, IssuerConfig
from tlog.errors import TlogError
from tlog.keys import KeyFileError, load_or_create_ecdsa, read_private_key

DEV_KEY_FILE: Final = "dev-oidc-key.pem"
DEV_STATE_FILE: Final = "dev-oidc.json"
GITHUB_SUFFIX: Final = "/github"
ALGORITHM: Final = "ES256"

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_THUMBPRINT_MEMBERS: Final = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


class DevIssuerError(TlogError):
    """The dev issuer's files are missing or inconsistent."""

    category = "config"


def dev_issuer_url(base_url: str) -> str:
    """The dev email issuer URL for a server reachable at ``base_url``."""
    return base_url.rstrip("/") + "/oidc"


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint: base64url(SHA-256(required members, sorted, no spaces))."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise ValueError(f"no RFC 7638 thumbprint rule for kty {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class DevIssuer:
    """The development issuer: its URL, its key, and token minting."""

    issuer_url: str
    key: ec.EllipticCurvePrivateKey
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"dev issuer URL {self.issuer_url!r} must be an absolute http(s) URL")
        if self.issuer_url.endswith("/"):
            raise ValueError(f"dev issuer URL {self.issuer_url!r} must not end with '/'")
        if not isinstance(self.key.curve, ec.SECP256R1):
            raise ValueError("the dev issuer key must be ECDSA P-256")

    # -- construction -------------------------------------------------------

    @classmethod
    def load_or_create(cls, data_dir: Path, issuer_url: str) -> DevIssuer:
        """Load (or create) the key in ``data_dir`` and record ``issuer_url``."""
        issuer_url = issuer_url.rstrip("/")
        key = load_or_create_ecdsa(Path(data_dir) / DEV_KEY_FILE)
        dev = cls(issuer_url, key)
        state = Path(data_dir) / DEV_STATE_FILE
        # A name of our own: every gunicorn worker records the issuer at start-up.
        tmp = state.with_name(f"{state.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"issuer": issuer_url}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, state)
        return dev

    @classmethod
    def load(cls, data_dir: Path) -> DevIssuer:
        """The issuer a server started with ``data_dir`` serves (for the CLI)."""
        state = Path(data_dir) / DEV_STATE_FILE
        try:
            recorded = json.loads(state.read_text(encoding="utf-8"))
            issuer_url = recorded["issuer"]
        except FileNotFoundError:
            raise DevIssuerError(f"{state} does not exist; start the server with the dev OIDC issuer first") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise DevIssuerError(f"{state} is not a dev issuer record: {exc}") from None
        key = read_private_key(Path(data_dir) / DEV_KEY_FILE)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise KeyFileError(f"key file {Path(data_dir) / DEV_KEY_FILE} must hold an ECDSA P-256 key")
        if not isinstance(issuer_url, str):
            raise DevIssuerError(f"{state}: 'issuer' must be a string")
        return cls(issuer_url, key)

    # -- identities and keys ------------------------------------------------

    @property
    def email_issuer(self) -> str:
        return self.issuer_url

    @property
    def github_issuer(self) -> str:
        return self.issuer_url + GITHUB_SUFFIX

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
        return {**jwk, "kid": jwk_thumbprint(jwk), "use": "sig", "alg": ALGORITHM}

    @property
    def kid(self) -> str:
        return str(self.public_jwk["kid"])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def issuer_configs(self) -> list[IssuerConfig]:
        """Entries for the CA's allow-list (audience ``sigstore``)."""
        return [
            IssuerConfig(url=self.email_issuer, type="email"),
            IssuerConfig(url=self.github_issuer, type="github-workflow"),
        ]

    def trusted_keys(self) -> dict[str, dict[str, Any]]:
        """For ``TokenVerifier(trusted_keys=...)``: no HTTP round trip to ourselves."""
        return {self.email_issuer: self.jwks(), self.github_issuer: self.jwks()}

    def discovery_document(self, issuer: str | None = None) -> dict[str, Any]:
        """OIDC discovery for ``issuer`` (default: the email issuer)."""
        issuer = issuer or self.email_issuer
        if issuer == self.email_issuer:
            claims = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "email", "email_verified"]
        elif issuer == self.github_issuer:
            claims = ["iss", "aud", "exp", "iat", "nbf", "jti", *sorted(_github_claim_names())]
        else:
            raise ValueError(f"{issuer!r} is not served by this dev issuer")
        return {
            "issuer": issuer,
            "jwks_uri": issuer + "/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "scopes_supported": ["openid", "email"],
            "claims_supported": claims,
        }

    # -- minting ------------------------------------------------------------

    def mint(
        self,
        subject: str,
        *,
        type: Literal["email", "github"] = "email",  # noqa: A002 - the documented keyword
        audience: str = DEFAULT_CLIENT_ID,
        lifetime: int = 600,
        extra_claims: Mapping[str, Any] | None = None,
        issued_at: float | None = None,
    ) -> str:
        """A signed ID token.

        ``type="email"``: ``subject`` is the e-mail address (``sub`` and
        ``email``, ``email_verified: true``). ``type="github"``: ``subject``
        is a repository ``owner/name``; the claims are those of a GitHub
        Actions push to ``refs/heads/main`` (``extra_claims`` such as
        ``ref``, ``environment`` or ``event_name`` change them, and the
        derived ``sub`` and workflow refs follow ``ref``/``environment``).
        ``extra_claims`` are applied last and win.
        """
        if lifetime <= 0:
            raise ValueError("lifetime must be positive")
        now = int(self.clock() if issued_at is None else issued_at)
        extra = dict(extra_claims or {})
        if type == "email":
            if subject.count("@") != 1:
                raise ValueError(f"{subject!r} is not an e-mail address")
            claims: dict[str, Any] = {"iss": self.email_issuer, "sub": subject, "email": subject, "email_verified": True}
        elif type == "github":
            if not _REPOSITORY.match(subject):
                raise ValueError(f"{subject!r} is not a GitHub repository (owner/name)")
            claims = {"iss": self.github_issuer, **_github_claims(subject, extra, now)}
        else:
            raise ValueError(f"unknown token type {type!r}; expected 'email' or 'github'")
        claims.update({"aud": audience, "iat": now, "nbf": now, "exp": now + lifetime, "jti": str(uuid.uuid4())})
        claims.update(extra)
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": "JWT"})


def _github_claims(repository: str, extra: Mapping[str, Any], now: int) -> dict[str, Any]:
    owner = repository.split("/")[0]
    ref = str(extra.get("ref", "refs/heads/main"))
    environment = extra.get("environment")
    ref_type = "tag" if ref.startswith("refs/tags/") else "branch"
    # Stable, realistic-looking values: a commit SHA and numeric ids derived
    # from the names, so the same repository always gets the same ids.
    sha = hashlib.sha1(f"{repository}@{ref}".encode()).hexdigest()
    repo_id = str(int.from_bytes(hashlib.sha256(repository.encode()).digest()[:4], "big") % 10**9)
    owner_id = str(int.from_bytes(hashlib.sha256(owner.encode()).digest()[:4], "big") % 10**8)
    workflow_ref = f"{repository}/.github/workflows/release.yml@{ref}"
    claims: dict[str, Any] = {
        "sub": f"repo:{repository}:environment:{environment}" if environment else f"repo:{repository}:ref:{ref}",
        "ref": ref,
        "ref_type": ref_type,
        "ref_protected": "false",
        "sha": sha,
        "repository": repository,
        "repository_id": repo_id,
        "repository_owner": owner,
        "repository_owner_id": owner_id,
        "repository_visibility": "public",
        "actor": owner,
        "actor_id": owner_id,
        "workflow": "Release",
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": sha,
        "event_name": "push",
        "head_ref": "",
        "base_ref": "",
        "run_id": str(now),
        "run_number": "1",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
    }
    if environment:
        claims["environment"] = environment
    return claims


def _github_claim_names() -> set[str]:
    return set(_github_claims("o/r", {"environment": "e"}, 0))


def flask_blueprint(dev: DevIssuer) -> Blueprint:
    """Discovery and JWKS routes for both dev issuers, under the issuer URL's path.

    Register with ``app.register_blueprint(flask_blueprint(dev))``.
    """
    prefix = urlsplit(dev.issuer_url).path.rstrip("/")
    bp = Blueprint("dev_oidc", __name__, url_prefix=prefix or None)

    def json_response(document: dict[str, Any]) -> Response:
        response = jsonify(document)
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    for name, issuer, path in (("email", dev.email_issuer, ""), ("github", dev.github_issuer, GITHUB_SUFFIX)):

        def discovery(issuer: str = issuer) -> Response:
            return json_response(dev.discovery_document(issuer))

        def jwks() -> Response:
            return json_response(dev.jwks())

        bp.add_url_rule(f"{path}/.well-known/openid-configuration", f"{name}_discovery", discovery, methods=["GET"])
        bp.add_url_rule(f"{path}/jwks", f"{name}_jwks", jwks, methods=["GET"])
    return bp
