"""The CA's OIDC issuer allow-list: a small YAML file, parsed strictly.

::

    # issuers.yaml
    issuers:
      - url: https://token.actions.githubusercontent.com   # the exact `iss`
        type: github-workflow       # email | github-workflow | gitlab-pipeline | uri
        client_id: sigstore         # expected audience (default: sigstore)
      - url: https://gitlab.com
        type: gitlab-pipeline
      - url: https://accounts.google.com
        type: email
      - url: https://oauth2.sigstore.dev/auth
        type: email
        issuer_claim: $.federated_claims.connector_id
      - url: https://accounts.example.com
        type: uri
        subject_domain: https://ci.example.com

Fields of an entry (anything else is an error, so a typo such as
``client-id`` is reported instead of silently ignored):

``url``
    The issuer exactly as it appears in the token's ``iss`` claim. ``https``,
    or ``http`` for loopback hosts only (local testing).
``type``
    How claims become a certificate identity (:mod:`tlog.ca.identity`); the
    names are Fulcio's (``email``, ``uri``, and its ``ci-provider`` templates
    ``github-workflow`` and ``gitlab-pipeline``).
``client_id``
    The audience the token must carry (default ``sigstore``).
``subject_domain``
    ``uri`` issuers only, and required there: the ``sub`` must be a URI on
    this scheme and host. As in Fulcio's config validation, the subject
    domain must share its scheme and its top two DNS labels with the issuer
    URL (proof that one party controls both).
``jwks_url``
    Optional: fetch the signing keys from here instead of through OIDC
    discovery (``<url>/.well-known/openid-configuration``).
``issuer_claim``
    ``email`` issuers only: a ``$.a.b`` path to a claim whose value is put in
    the certificate as the issuer instead of ``iss``. Fulcio uses this for
    sigstore's Dex federation (``$.federated_claims.connector_id``).

This module only reads configuration; every problem is a :class:`ConfigError`
naming the file, the entry and the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import yaml

from tlog.errors import TlogError

IssuerType = Literal["email", "github-workflow", "gitlab-pipeline", "uri"]
ISSUER_TYPES: Final[tuple[str, ...]] = ("email", "github-workflow", "gitlab-pipeline", "uri")
DEFAULT_CLIENT_ID: Final = "sigstore"

GITHUB_ACTIONS_ISSUER: Final = "https://token.actions.githubusercontent.com"
GITLAB_COM_ISSUER: Final = "https://gitlab.com"
GOOGLE_ISSUER: Final = "https://accounts.google.com"
SIGSTORE_DEX_ISSUER: Final = "https://oauth2.sigstore.dev/auth"

_FIELDS: Final = ("url", "type", "client_id", "subject_domain", "jwks_url", "issuer_claim")
_CLAIM_PATH = re.compile(r"^\$(\.[A-Za-z0-9_\-]+)+$")


class ConfigError(TlogError):
    """The issuer configuration is missing, unparsable or invalid."""

    category = "config"


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted OIDC issuer. See the module docstring for each field."""

    url: str
    type: IssuerType
    client_id: str = DEFAULT_CLIENT_ID
    subject_domain: str | None = None
    jwks_url: str | None = None
    issuer_claim: str | None = None

    def __post_init__(self) -> None:
        # The invariants every consumer relies on, whatever built the object;
        # the file loader checks more (URL schemes) with friendlier messages.
        if not isinstance(self.url, str) or not self.url:
            raise ConfigError("issuer url must be a non-empty string")
        if self.type not in ISSUER_TYPES:
            raise ConfigError(f"issuer {self.url}: type {self.type!r} is not one of {', '.join(ISSUER_TYPES)}")
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ConfigError(f"issuer {self.url}: client_id must be a non-empty string")
        if (self.type == "uri") != (self.subject_domain is not None):
            raise ConfigError(f"issuer {self.url}: subject_domain is required for, and only allowed with, type uri")
        if self.issuer_claim is not None:
            if self.type != "email":
                raise ConfigError(f"issuer {self.url}: issuer_claim is only allowed with type email")
            if not _CLAIM_PATH.match(self.issuer_claim):
                raise ConfigError(f"issuer {self.url}: issuer_claim must look like $.claim or $.claim.member")

    @property
    def discovery_url(self) -> str:
        """OpenID Connect Discovery 1.0 §4: ``<issuer>/.well-known/openid-configuration``."""
        return self.url.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True)
class IssuersConfig:
    """The allow-list: issuers in file order, at most one per ``url``."""

    issuers: tuple[IssuerConfig, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for issuer in self.issuers:
            if issuer.url in seen:
                raise ConfigError(f"issuer {issuer.url} is listed twice")
            seen.add(issuer.url)

    def find(self, iss: str) -> IssuerConfig | None:
        """The entry whose ``url`` equals ``iss`` exactly (no normalisation)."""
        for issuer in self.issuers:
            if issuer.url == iss:
                return issuer
        return None

    def extended(self, extra: Iterable[IssuerConfig]) -> IssuersConfig:
        """A new allow-list with ``extra`` appended (e.g. the dev issuer's entries)."""
        return IssuersConfig(self.issuers + tuple(extra))

    @classmethod
    def load(cls, path: Path | str) -> IssuersConfig:
        """Read and validate a YAML issuer file. Raises :class:`ConfigError`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: issuer configuration file does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read issuer configuration: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "issuer configuration") -> IssuersConfig:
        """Validate an already-parsed document (``{"issuers": [...]}``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping with an 'issuers' list at the top level")
        unknown = sorted(str(k) for k in data if k != "issuers")
        if unknown:
            raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; only 'issuers' is allowed")
        entries = data.get("issuers")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{source}: 'issuers' must be a non-empty list")
        issuers: list[IssuerConfig] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            issuer = _parse_entry(entry, f"{source}: issuers[{index}]")
            if issuer.url in seen:
                raise ConfigError(
                    f"{source}: issuers[{index}] ({issuer.url}): field 'url': duplicate of issuers[{seen[issuer.url]}]"
                )
            seen[issuer.url] = index
            issuers.append(issuer)
        return cls(tuple(issuers))


def default_issuers() -> IssuersConfig:
    """Public sigstore's main issuers, configured as Fulcio configures them."""
    return IssuersConfig(
        (
            IssuerConfig(url=GITHUB_ACTIONS_ISSUER, type="github-workflow"),
            IssuerConfig(url=GITLAB_COM_ISSUER, type="gitlab-pipeline"),
            IssuerConfig(url=GOOGLE_ISSUER, type="email"),
            IssuerConfig(
                url=SIGSTORE_DEX_ISSUER, type="email", issuer_claim="$.federated_claims.connector_id"
            ),
        )
    )


def _parse_entry(entry: Any, where: str) -> IssuerConfig:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with at least 'url' and 'type'")
    url_value = entry.get("url")
    if isinstance(url_value, str) and url_value:
        where = f"{where} ({url_value})"
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}")

    def text(name: str, *, required: bool) -> str | None:
        value = entry.get(name)
        if value is None:
            if required:
                raise ConfigError(f"{where}: field '{name}' is required")
            return None
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            raise ConfigError(f"{where}: field '{name}' must be a non-empty string without surrounding spaces")
        return value

    url = text("url", required=True)
    assert url is not None
    _check_url(url, where, "url")
    kind = text("type", required=True)
    if kind not in ISSUER_TYPES:
        raise ConfigError(f"{where}: field 'type': {kind!r} is not one of {', '.join(ISSUER_TYPES)}")
    client_id = text("client_id", required=False) or DEFAULT_CLIENT_ID
    jwks_url = text("jwks_url", required=False)
    if jwks_url is not None:
        _check_url(jwks_url, where, "jwks_url")
    subject_domain = text("subject_domain", required=False)
    if kind == "uri":
        if subject_domain is None:
            raise ConfigError(f"{where}: field 'subject_domain' is required for type uri")
        _check_subject_domain(subject_domain, url, where)
    elif subject_domain is not None:
        raise ConfigError(f"{where}: field 'subject_domain' is only allowed with type uri")
    issuer_claim = text("issuer_claim", required=False)
    if issuer_claim is not None:
        if kind != "email":
            raise ConfigError(f"{where}: field 'issuer_claim' is only allowed with type email")
        if not _CLAIM_PATH.match(issuer_claim):
            raise ConfigError(f"{where}: field 'issuer_claim': expected $.claim or $.claim.member, got {issuer_claim!r}")
    return IssuerConfig(
        url=url,
        type=kind,  # type: ignore[arg-type]
        client_id=client_id,
        subject_domain=subject_domain,
        jwks_url=jwks_url,
        issuer_claim=issuer_claim,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, where: str, name: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{where}: field '{name}': {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"{where}: field '{name}': {url!r} must be an absolute https:// URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigError(f"{where}: field '{name}': {url!r} must use https (http is only allowed for loopback hosts)")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ConfigError(f"{where}: field '{name}': {url!r} must not contain credentials, a query or a fragment")
    if any(c.isspace() for c in url) or not url.isascii():
        raise ConfigError(f"{where}: field '{name}': {url!r} must be ASCII without spaces")


def _check_subject_domain(domain: str, issuer_url: str, where: str) -> None:
    # Fulcio (pkg/config/config.go, isURISubjectAllowed): same scheme, and the
    # hostnames are equal or share their last two labels.
    parts = urlsplit(domain)
    issuer = urlsplit(issuer_url)
    if not parts.scheme or not parts.hostname:
        raise ConfigError(f"{where}: field 'subject_domain': {domain!r} must be an absolute URI such as https://ci.example.com")
    if parts.scheme != issuer.scheme:
        raise ConfigError(
            f"{where}: field 'subject_domain': scheme {parts.scheme!r} does not match the issuer's {issuer.scheme!r}"
        )
    sub_host, iss_host = parts.hostname, issuer.hostname or ""
    if sub_host == iss_host:
        return
    sub_labels, iss_labels = sub_host.split("."), iss_host.split(".")
    if len(sub_labels) < 2 or len(iss_labels) < 2 or sub_labels[-2:] != iss_labels[-2:]:
        raise ConfigError(
            f"{where}: field 'subject_domain': host {sub_host!r} must equal the issuer host {iss_host!r} "
            f"or share its top two domain labels (as Fulcio requires)"
        )
