"""Verified OIDC claims → the certificate identity Fulcio would issue.

The mapping is Fulcio's, read from ``sigstore/fulcio``:

* ``email`` issuers (``pkg/identity/email``, ``pkg/oauthflow/oidc.go``): the
  SAN is the ``email`` claim as an rfc822Name, which requires
  ``email_verified`` to be true (JSON ``true`` or the strings ``"true"`` /
  ``"True"``, as Fulcio's ``stringAsBool`` accepts). With ``issuer_claim``
  set, the certificate issuer comes from that claim (sigstore's Dex).
* ``uri`` issuers (``pkg/identity/uri``): the SAN is ``sub`` as a URI, which
  must not be an e-mail address and must have the configured
  ``subject_domain``'s scheme and host (and, stricter than Fulcio, start with
  its path if it has one).
* ``github-workflow`` and ``gitlab-pipeline`` (``pkg/identity/ciprovider`` with
  the templates in ``config/identity/config.yaml``): the SAN and extensions
  ``.1.9``–``.1.23`` are built from claims, with the defaults ``url``
  (``https://github.com`` / ``https://gitlab.com``; a ``url`` claim wins, as
  in Fulcio) and ``environment`` (``""``). GitHub also gets the deprecated raw
  ``.1.2``–``.1.6``, which Fulcio still emits.

Every identity carries ``.1.1`` (issuer, raw bytes), ``.1.8`` (issuer, DER
UTF8String) and, when ``sub`` is present, ``.1.24`` (the raw token subject;
for ``uri`` issuers Fulcio puts the SAN there, which is the same string).
Extensions whose value is empty are left out, as Fulcio's
``Extensions.Render`` does, and the order is Render's: ``.1.1``,
``.1.2``–``.1.6``, ``.1.8``–``.1.24``.

Claim values are turned into text as Fulcio's ``mapValuesToString`` does
(integral numbers without a fraction, booleans as ``true``/``false``); unlike
Fulcio, null, list and object values are refused instead of being printed in
Go syntax. A missing claim is a :class:`~tlog.errors.BadRequest` naming it; an
unverified e-mail is :class:`~tlog.errors.Forbidden`.

This module is pure: no I/O, no clock, no signature checks (that is
:mod:`tlog.ca.oidc`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from tlog.ca.issuers import IssuerConfig
from tlog.errors import BadRequest, Forbidden

_ARC: Final = "1.3.6.1.4.1.57264.1."

#: Issuer (deprecated): raw UTF-8 bytes, not DER. ``sigstore verify identity`` reads this one.
OID_ISSUER: Final = _ARC + "1"
#: Deprecated GitHub-only extensions, raw UTF-8 bytes.
OID_GITHUB_WORKFLOW_TRIGGER: Final = _ARC + "2"
OID_GITHUB_WORKFLOW_SHA: Final = _ARC + "3"
OID_GITHUB_WORKFLOW_NAME: Final = _ARC + "4"
OID_GITHUB_WORKFLOW_REPOSITORY: Final = _ARC + "5"
OID_GITHUB_WORKFLOW_REF: Final = _ARC + "6"
#: From here on every value is a DER UTF8String.
OID_ISSUER_V2: Final = _ARC + "8"
OID_BUILD_SIGNER_URI: Final = _ARC + "9"
OID_BUILD_SIGNER_DIGEST: Final = _ARC + "10"
OID_RUNNER_ENVIRONMENT: Final = _ARC + "11"
OID_SOURCE_REPOSITORY_URI: Final = _ARC + "12"
OID_SOURCE_REPOSITORY_DIGEST: Final = _ARC + "13"
OID_SOURCE_REPOSITORY_REF: Final = _ARC + "14"
OID_SOURCE_REPOSITORY_IDENTIFIER: Final = _ARC + "15"
OID_SOURCE_REPOSITORY_OWNER_URI: Final = _ARC + "16"
OID_SOURCE_REPOSITORY_OWNER_IDENTIFIER: Final = _ARC + "17"
OID_BUILD_CONFIG_URI: Final = _ARC + "18"
OID_BUILD_CONFIG_DIGEST: Final = _ARC + "19"
OID_BUILD_TRIGGER: Final = _ARC + "20"
OID_RUN_INVOCATION_URI: Final = _ARC + "21"
OID_SOURCE_REPOSITORY_VISIBILITY_AT_SIGNING: Final = _ARC + "22"
OID_DEPLOYMENT_ENVIRONMENT: Final = _ARC + "23"
OID_TOKEN_SUBJECT: Final = _ARC + "24"

_UTF8STRING_TAG: Final = 0x0C


def der_utf8string(value: str) -> bytes:
    """DER encoding of an ASN.1 UTF8String: tag 0x0C, definite length, UTF-8 bytes.

    Lengths up to 127 use the one-byte short form; longer ones the long form
    ``0x80 | n`` followed by the length in ``n`` big-endian bytes, minimal as
    DER (X.690 §10.1) requires.
    """
    body = value.encode("utf-8")
    size = len(body)
    if size < 0x80:
        header = bytes([size])
    else:
        length = size.to_bytes((size.bit_length() + 7) // 8, "big")
        header = bytes([0x80 | len(length)]) + length
    return bytes([_UTF8STRING_TAG]) + header + body


def der_tlv(data: bytes) -> tuple[int, bytes] | None:
    """(tag, contents) of one DER TLV spanning all of ``data``; None if it does not.

    Only low tag numbers and definite lengths of up to four bytes: enough for
    the string types certificate extensions carry, and strict about the rest.
    """
    if len(data) < 2:
        return None
    tag, first = data[0], data[1]
    if tag & 0x1F == 0x1F:  # high-tag-number form: not a string type
        return None
    if first < 0x80:
        length, pos = first, 2
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(data) < 2 + n:
            return None
        length, pos = int.from_bytes(data[2 : 2 + n], "big"), 2 + n
    if pos + length != len(data):
        return None
    return tag, data[pos:]


def der_utf8string_value(raw: bytes) -> str | None:
    """The text of a DER UTF8String (tag 0x0C), or None if ``raw`` is not exactly one."""
    tlv = der_tlv(raw)
    if tlv is None or tlv[0] != _UTF8STRING_TAG:
        return None
    try:
        return tlv[1].decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class Identity:
    """What goes into the leaf certificate for one verified token.

    ``extensions`` holds ``(dotted OID, extnValue)`` pairs in certificate
    order, with the value bytes exactly as they go into the certificate's
    extnValue OCTET STRING. All of them are non-critical.
    """

    san_type: Literal["email", "uri"]
    san: str
    issuer: str
    extensions: tuple[tuple[str, bytes], ...]

    def extension(self, oid: str) -> bytes | None:
        """The extnValue for ``oid``, or None if this identity has none."""
        for ext_oid, value in self.extensions:
            if ext_oid == oid:
                return value
        return None


# A value source is either a claim name, a "{claim}/{claim}" template, or a
# function of the claim lookup (for GitLab's conditional ref template).
_Lookup = Callable[[str], str]
_Source = str | Callable[[_Lookup], str]


@dataclass(frozen=True)
class _CITemplate:
    """One ``ci-issuer-metadata`` entry of Fulcio's config.yaml, transcribed."""

    name: str
    defaults: Mapping[str, str]
    san: _Source
    raw: tuple[tuple[str, _Source], ...]  # deprecated .1.2-.1.6
    der: tuple[tuple[str, _Source], ...]  # .1.9-.1.23


def _gitlab_ref(lookup: _Lookup) -> str:
    # refs/{{if eq .ref_type "branch"}}heads/{{ else }}tags/{{end}}{{ .ref }}
    kind = "heads/" if lookup("ref_type") == "branch" else "tags/"
    return "refs/" + kind + lookup("ref")


_GITHUB: Final = _CITemplate(
    name="github-workflow",
    defaults={"url": "https://github.com", "environment": ""},
    san="{url}/{job_workflow_ref}",
    raw=(
        (OID_GITHUB_WORKFLOW_TRIGGER, "event_name"),
        (OID_GITHUB_WORKFLOW_SHA, "sha"),
        (OID_GITHUB_WORKFLOW_NAME, "workflow"),
        (OID_GITHUB_WORKFLOW_REPOSITORY, "repository"),
        (OID_GITHUB_WORKFLOW_REF, "ref"),
    ),
    der=(
        (OID_BUILD_SIGNER_URI, "{url}/{job_workflow_ref}"),
        (OID_BUILD_SIGNER_DIGEST, "job_workflow_sha"),
        (OID_RUNNER_ENVIRONMENT, "runner_environment"),
        (OID_SOURCE_REPOSITORY_URI, "{url}/{repository}"),
        (OID_SOURCE_REPOSITORY_DIGEST, "sha"),
        (OID_SOURCE_REPOSITORY_REF, "ref"),
        (OID_SOURCE_REPOSITORY_IDENTIFIER, "repository_id"),
        (OID_SOURCE_REPOSITORY_OWNER_URI, "{url}/{repository_owner}"),
        (OID_SOURCE_REPOSITORY_OWNER_IDENTIFIER, "repository_owner_id"),
        (OID_BUILD_CONFIG_URI, "{url}/{workflow_ref}"),
        (OID_BUILD_CONFIG_DIGEST, "workflow_sha"),
        (OID_BUILD_TRIGGER, "event_name"),
        (OID_RUN_INVOCATION_URI, "{url}/{repository}/actions/runs/{run_id}/attempts/{run_attempt}"),
        (OID_SOURCE_REPOSITORY_VISIBILITY_AT_SIGNING, "repository_visibility"),
        (OID_DEPLOYMENT_ENVIRONMENT, "environment"),
    ),
)

_GITLAB: Final = _CITemplate(
    name="gitlab-pipeline",
    defaults={"url": "https://gitlab.com", "environment": ""},
    san="https://{ci_config_ref_uri}",
    raw=(),
    der=(
        (OID_BUILD_SIGNER_URI, "https://{ci_config_ref_uri}"),
        (OID_BUILD_SIGNER_DIGEST, "ci_config_sha"),
        (OID_RUNNER_ENVIRONMENT, "runner_environment"),
        (OID_SOURCE_REPOSITORY_URI, "{url}/{project_path}"),
        (OID_SOURCE_REPOSITORY_DIGEST, "sha"),
        (OID_SOURCE_REPOSITORY_REF, _gitlab_ref),
        (OID_SOURCE_REPOSITORY_IDENTIFIER, "project_id"),
        (OID_SOURCE_REPOSITORY_OWNER_URI, "{url}/{namespace_path}"),
        (OID_SOURCE_REPOSITORY_OWNER_IDENTIFIER, "namespace_id"),
        (OID_BUILD_CONFIG_URI, "https://{ci_config_ref_uri}"),
        (OID_BUILD_CONFIG_DIGEST, "ci_config_sha"),
        (OID_BUILD_TRIGGER, "pipeline_source"),
        (OID_RUN_INVOCATION_URI, "{url}/{project_path}/-/jobs/{job_id}"),
        (OID_SOURCE_REPOSITORY_VISIBILITY_AT_SIGNING, "project_visibility"),
        (OID_DEPLOYMENT_ENVIRONMENT, "environment"),
    ),
)

_CI_TEMPLATES: Final = {"github-workflow": _GITHUB, "gitlab-pipeline": _GITLAB}
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
# Pragmatic RFC 5321 mailbox check. Like Fulcio's govalidator.IsEmail the
# domain needs a dot; unlike it, ASCII only, because an rfc822Name SAN is an
# IA5String and cryptography refuses non-ASCII ones.
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)


def identity_from_claims(claims: Mapping[str, Any], issuer: IssuerConfig) -> Identity:
    """Map the claims of a token already verified for ``issuer`` to an :class:`Identity`.

    Raises :class:`~tlog.errors.BadRequest` for missing or malformed claims
    (the message names the claim) and :class:`~tlog.errors.Forbidden` for an
    e-mail address the issuer has not verified.
    """
    if claims.get("iss") != issuer.url:
        raise BadRequest(f"token issuer {claims.get('iss')!r} does not match the configured issuer {issuer.url!r}")
    if issuer.type == "email":
        return _email_identity(claims, issuer)
    if issuer.type == "uri":
        return _uri_identity(claims, issuer)
    return _ci_identity(claims, issuer, _CI_TEMPLATES[issuer.type])


def _email_identity(claims: Mapping[str, Any], issuer: IssuerConfig) -> Identity:
    email = claims.get("email")
    if email is None or email == "":
        raise BadRequest("token is missing the 'email' claim, which email identities require")
    if not isinstance(email, str):
        raise BadRequest("token claim 'email' must be a string")
    # Fulcio's stringAsBool; compared by identity/str so that 1 is not True.
    verified = claims.get("email_verified", False)
    if not (verified is True or (isinstance(verified, str) and verified in ("true", "True"))):
        if not (verified is False or (isinstance(verified, str) and verified in ("false", "False"))):
            raise BadRequest("token claim 'email_verified' must be a boolean")
        raise Forbidden(f"email not verified: the token's email_verified claim is {verified!r}")
    if len(email) > 254 or not _EMAIL.match(email):
        raise BadRequest(f"token claim 'email' is not a valid ASCII e-mail address: {email!r}")
    cert_issuer = issuer.url if issuer.issuer_claim is None else _claim_at_path(claims, issuer.issuer_claim)
    return Identity("email", email, cert_issuer, _common_extensions(cert_issuer, (), (), _subject(claims)))


def _uri_identity(claims: Mapping[str, Any], issuer: IssuerConfig) -> Identity:
    assert issuer.subject_domain is not None  # IssuerConfig guarantees it for type uri
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise BadRequest("token is missing the 'sub' claim, which uri identities require")
    if _EMAIL.match(sub):
        raise BadRequest("token claim 'sub' must be a URI, not an e-mail address")
    _check_san_uri(sub, "sub")
    got, want = urlsplit(sub), urlsplit(issuer.subject_domain)
    if got.scheme != want.scheme or got.hostname != want.hostname:
        raise BadRequest(
            f"token claim 'sub' ({sub!r}) must be a URI on {want.scheme}://{want.hostname}, "
            f"the subject domain configured for issuer {issuer.url}"
        )
    prefix = want.path.rstrip("/")
    if prefix and got.path != prefix and not got.path.startswith(prefix + "/"):
        raise BadRequest(f"token claim 'sub' ({sub!r}) must be under {issuer.subject_domain}")
    return Identity("uri", sub, issuer.url, _common_extensions(issuer.url, (), (), sub))


def _ci_identity(claims: Mapping[str, Any], issuer: IssuerConfig, template: _CITemplate) -> Identity:
    def lookup(name: str) -> str:
        if name in claims:
            return _claim_text(claims[name], name)
        if name in template.defaults:
            return template.defaults[name]
        raise BadRequest(f"token is missing the {name!r} claim, which {template.name} identities require")

    def render(source: _Source) -> str:
        if callable(source):
            return source(lookup)
        if "{" not in source:
            return lookup(source)
        return _PLACEHOLDER.sub(lambda m: lookup(m.group(1)), source)

    san = render(template.san)
    _check_san_uri(san, "SAN")
    raw = tuple((oid, render(source)) for oid, source in template.raw)
    der = tuple((oid, render(source)) for oid, source in template.der)
    return Identity("uri", san, issuer.url, _common_extensions(issuer.url, raw, der, _subject(claims)))


def _common_extensions(
    issuer: str,
    raw: tuple[tuple[str, str], ...],
    der: tuple[tuple[str, str], ...],
    subject: str,
) -> tuple[tuple[str, bytes], ...]:
    out: list[tuple[str, bytes]] = [(OID_ISSUER, issuer.encode("utf-8"))]
    out += [(oid, value.encode("utf-8")) for oid, value in raw if value]
    out.append((OID_ISSUER_V2, der_utf8string(issuer)))
    out += [(oid, der_utf8string(value)) for oid, value in der if value]
    if subject:
        out.append((OID_TOKEN_SUBJECT, der_utf8string(subject)))
    return tuple(out)


def _subject(claims: Mapping[str, Any]) -> str:
    sub = claims.get("sub", "")
    if not isinstance(sub, str):
        raise BadRequest("token claim 'sub' must be a string")
    return sub


def _claim_text(value: Any, name: str) -> str:
    """Fulcio's ``mapValuesToString`` for scalar claims."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        if value == math.trunc(value):
            return str(int(value))
        return format(Decimal(repr(value)), "f")  # Go's FormatFloat(v, 'f', -1, 64)
    raise BadRequest(f"token claim {name!r} must be a string, number or boolean")


def _claim_at_path(claims: Mapping[str, Any], path: str) -> str:
    value: Any = claims
    for member in path.split(".")[1:]:
        if not isinstance(value, Mapping) or member not in value:
            raise BadRequest(f"token is missing the {path!r} claim that names the upstream issuer")
        value = value[member]
    if not isinstance(value, str) or not value:
        raise BadRequest(f"token claim {path!r} must be a non-empty string")
    return value


def _check_san_uri(uri: str, what: str) -> None:
    # A SAN URI is an IA5String: refuse what cryptography cannot encode, and
    # anything that is not an absolute URI, before a certificate is built.
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise BadRequest(f"token claims give an invalid {what} URI: {uri!r}") from None
    if (
        not uri.isascii()
        or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in uri)
        or not parts.scheme
        or not parts.netloc
    ):
        raise BadRequest(f"token claims give an invalid {what} URI: {uri!r}")
