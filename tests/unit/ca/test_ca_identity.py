"""Claims → certificate identity, checked value by value against Fulcio's mapping.

The expected values are written out from ``sigstore/fulcio``'s
``config/identity/config.yaml`` templates, not computed with the code under
test; DER values are decoded with pyasn1 (an independent decoder), and a
certificate carrying the extensions is checked with sigstore-python's own
verification policies.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import char
from sigstore.verify import policy as sigstore_policy

from tlog.ca.identity import (
    OID_ISSUER,
    OID_ISSUER_V2,
    OID_TOKEN_SUBJECT,
    Identity,
    der_utf8string,
    identity_from_claims,
)
from tlog.ca.issuers import IssuerConfig
from tlog.errors import BadRequest, Forbidden

ARC = "1.3.6.1.4.1.57264.1."
GITHUB = IssuerConfig(url="https://token.actions.githubusercontent.com", type="github-workflow")
GITLAB = IssuerConfig(url="https://gitlab.com", type="gitlab-pipeline")
GOOGLE = IssuerConfig(url="https://accounts.google.com", type="email")
DEX = IssuerConfig(url="https://oauth2.sigstore.dev/auth", type="email", issuer_claim="$.federated_claims.connector_id")
URI = IssuerConfig(url="https://accounts.example.com", type="uri", subject_domain="https://ci.example.com")


def decode_utf8string(value: bytes) -> str:
    decoded, rest = der_decoder.decode(value, asn1Spec=char.UTF8String())
    assert rest == b""
    return str(decoded)


# -- der_utf8string -----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 256, 1000, 65535, 65536, 70000])
def test_der_utf8string_matches_pyasn1_at_length_boundaries(size: int) -> None:
    text = "a" * size
    encoded = der_utf8string(text)
    assert encoded == der_encoder.encode(char.UTF8String(text))
    assert decode_utf8string(encoded) == text


def test_der_utf8string_length_forms_byte_by_byte() -> None:
    assert der_utf8string("") == b"\x0c\x00"
    assert der_utf8string("hi") == b"\x0c\x02hi"
    assert der_utf8string("x" * 127)[:2] == b"\x0c\x7f"  # last short form
    assert der_utf8string("x" * 128)[:3] == b"\x0c\x81\x80"  # first long form
    assert der_utf8string("x" * 256)[:4] == b"\x0c\x82\x01\x00"
    # The length counts UTF-8 bytes, not characters.
    assert der_utf8string("é") == b"\x0c\x02\xc3\xa9"


@given(st.text())
def test_der_utf8string_round_trips_any_text(text: str) -> None:
    encoded = der_utf8string(text)
    assert encoded == der_encoder.encode(char.UTF8String(text))
    assert decode_utf8string(encoded) == text


# -- GitHub Actions -----------------------------------------------------------

# A GitHub Actions token's claims, shaped like GitHub's documented example
# (docs.github.com "About security hardening with OpenID Connect"); the
# numeric ids are strings there, as GitHub sends them.
GITHUB_CLAIMS: dict[str, Any] = {
    "iss": "https://token.actions.githubusercontent.com",
    "aud": "sigstore",
    "sub": "repo:octo-org/octo-repo:environment:prod",
    "jti": "example-id",
    "iat": 1632492967,
    "nbf": 1632492667,
    "exp": 1632493867,
    "environment": "prod",
    "ref": "refs/heads/main",
    "ref_type": "branch",
    "ref_protected": "true",
    "sha": "example-sha",
    "repository": "octo-org/octo-repo",
    "repository_id": "74",
    "repository_owner": "octo-org",
    "repository_owner_id": "65",
    "repository_visibility": "private",
    "actor": "octocat",
    "actor_id": "12",
    "workflow": "example-workflow",
    "workflow_ref": "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
    "workflow_sha": "example-sha",
    "job_workflow_ref": "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
    "job_workflow_sha": "example-job-sha",
    "event_name": "workflow_dispatch",
    "head_ref": "",
    "base_ref": "",
    "run_id": "example-run-id",
    "run_number": "10",
    "run_attempt": "2",
    "runner_environment": "github-hosted",
}

GITHUB_EXPECTED_RAW = {
    ARC + "1": "https://token.actions.githubusercontent.com",
    ARC + "2": "workflow_dispatch",  # event_name
    ARC + "3": "example-sha",  # sha
    ARC + "4": "example-workflow",  # workflow
    ARC + "5": "octo-org/octo-repo",  # repository
    ARC + "6": "refs/heads/main",  # ref
}
GITHUB_EXPECTED_DER = {
    ARC + "8": "https://token.actions.githubusercontent.com",
    ARC + "9": "https://github.com/octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
    ARC + "10": "example-job-sha",
    ARC + "11": "github-hosted",
    ARC + "12": "https://github.com/octo-org/octo-repo",
    ARC + "13": "example-sha",
    ARC + "14": "refs/heads/main",
    ARC + "15": "74",
    ARC + "16": "https://github.com/octo-org",
    ARC + "17": "65",
    ARC + "18": "https://github.com/octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
    ARC + "19": "example-sha",
    ARC + "20": "workflow_dispatch",
    ARC + "21": "https://github.com/octo-org/octo-repo/actions/runs/example-run-id/attempts/2",
    ARC + "22": "private",
    ARC + "23": "prod",
    ARC + "24": "repo:octo-org/octo-repo:environment:prod",
}


def test_github_identity_every_extension_value() -> None:
    identity = identity_from_claims(GITHUB_CLAIMS, GITHUB)
    assert identity.san_type == "uri"
    assert identity.san == "https://github.com/octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main"
    assert identity.issuer == GITHUB.url
    got = dict(identity.extensions)
    assert len(got) == len(identity.extensions), "an OID appears twice"
    assert set(got) == set(GITHUB_EXPECTED_RAW) | set(GITHUB_EXPECTED_DER)
    for oid, want in GITHUB_EXPECTED_RAW.items():
        assert got[oid] == want.encode(), oid  # raw bytes, not DER
    for oid, want in GITHUB_EXPECTED_DER.items():
        assert got[oid][0] == 0x0C, oid
        assert decode_utf8string(got[oid]) == want, oid


def test_github_extension_order_is_fulcios_render_order() -> None:
    identity = identity_from_claims(GITHUB_CLAIMS, GITHUB)
    assert [oid for oid, _ in identity.extensions] == [ARC + str(n) for n in [1, 2, 3, 4, 5, 6, *range(8, 25)]]


def test_github_without_environment_omits_deployment_environment() -> None:
    claims = {k: v for k, v in GITHUB_CLAIMS.items() if k != "environment"}
    claims["sub"] = "repo:octo-org/octo-repo:ref:refs/heads/main"
    identity = identity_from_claims(claims, GITHUB)
    assert identity.extension(ARC + "23") is None
    assert decode_utf8string(identity.extension(OID_TOKEN_SUBJECT) or b"") == claims["sub"]


def test_github_url_claim_overrides_default_as_in_fulcio() -> None:
    identity = identity_from_claims({**GITHUB_CLAIMS, "url": "https://ghe.example.com"}, GITHUB)
    assert identity.san.startswith("https://ghe.example.com/octo-org/octo-automation/")
    assert decode_utf8string(identity.extension(ARC + "12") or b"") == "https://ghe.example.com/octo-org/octo-repo"


def test_numeric_and_boolean_claims_are_stringified_like_fulcio() -> None:
    claims = {**GITHUB_CLAIMS, "repository_id": 74, "repository_owner_id": 65.0, "run_attempt": 2, "sha": True}
    got = dict(identity_from_claims(claims, GITHUB).extensions)
    assert decode_utf8string(got[ARC + "15"]) == "74"
    assert decode_utf8string(got[ARC + "17"]) == "65"  # integral float prints as an int
    assert decode_utf8string(got[ARC + "21"]).endswith("/attempts/2")
    assert got[ARC + "3"] == b"true"


@pytest.mark.parametrize("value", [None, ["a"], {"a": 1}, float("nan")])
def test_non_scalar_claim_values_are_refused(value: object) -> None:
    with pytest.raises(BadRequest, match="repository_id"):
        identity_from_claims({**GITHUB_CLAIMS, "repository_id": value}, GITHUB)


GITHUB_REQUIRED = [
    "event_name", "sha", "workflow", "repository", "ref", "job_workflow_ref", "job_workflow_sha",
    "runner_environment", "repository_id", "repository_owner", "repository_owner_id", "workflow_ref",
    "workflow_sha", "run_id", "run_attempt", "repository_visibility",
]  # fmt: skip


@pytest.mark.parametrize("claim", GITHUB_REQUIRED)
def test_github_missing_claim_is_named(claim: str) -> None:
    claims = {k: v for k, v in GITHUB_CLAIMS.items() if k != claim}
    with pytest.raises(BadRequest, match=f"'{claim}' claim") as info:
        identity_from_claims(claims, GITHUB)
    assert info.value.http_status == 400


def test_github_san_must_be_a_uri() -> None:
    with pytest.raises(BadRequest, match="SAN URI"):
        identity_from_claims({**GITHUB_CLAIMS, "job_workflow_ref": "has space/x.yml@refs/heads/main"}, GITHUB)
    with pytest.raises(BadRequest, match="SAN URI"):
        identity_from_claims({**GITHUB_CLAIMS, "job_workflow_ref": "ünicode/x.yml@refs/heads/main"}, GITHUB)


# -- GitLab -------------------------------------------------------------------

# Shaped like GitLab's documented ID token payload (docs.gitlab.com,
# "OpenID Connect (OIDC) Authentication Using ID Tokens").
GITLAB_CLAIMS: dict[str, Any] = {
    "iss": "https://gitlab.com",
    "aud": "sigstore",
    "sub": "project_path:mygroup/myproject:ref_type:branch:ref:main",
    "namespace_id": "72",
    "namespace_path": "mygroup",
    "project_id": "20",
    "project_path": "mygroup/myproject",
    "user_id": "1",
    "user_login": "sample-user",
    "pipeline_id": "574",
    "pipeline_source": "push",
    "job_id": "302",
    "ref": "main",
    "ref_type": "branch",
    "ref_path": "refs/heads/main",
    "ref_protected": "true",
    "runner_id": 1,
    "runner_environment": "gitlab-hosted",
    "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
    "project_visibility": "public",
    "ci_config_ref_uri": "gitlab.com/mygroup/myproject//.gitlab-ci.yml@refs/heads/main",
    "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
    "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
    "iat": 1681395193,
    "nbf": 1681395188,
    "exp": 1681398793,
}


def test_gitlab_identity_every_extension_value() -> None:
    identity = identity_from_claims(GITLAB_CLAIMS, GITLAB)
    assert identity.san == "https://gitlab.com/mygroup/myproject//.gitlab-ci.yml@refs/heads/main"
    got = dict(identity.extensions)
    assert got[OID_ISSUER] == b"https://gitlab.com"
    expected = {
        ARC + "8": "https://gitlab.com",
        ARC + "9": "https://gitlab.com/mygroup/myproject//.gitlab-ci.yml@refs/heads/main",
        ARC + "10": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        ARC + "11": "gitlab-hosted",
        ARC + "12": "https://gitlab.com/mygroup/myproject",
        ARC + "13": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        ARC + "14": "refs/heads/main",
        ARC + "15": "20",
        ARC + "16": "https://gitlab.com/mygroup",
        ARC + "17": "72",
        ARC + "18": "https://gitlab.com/mygroup/myproject//.gitlab-ci.yml@refs/heads/main",
        ARC + "19": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        ARC + "20": "push",
        ARC + "21": "https://gitlab.com/mygroup/myproject/-/jobs/302",
        ARC + "22": "public",
        ARC + "24": "project_path:mygroup/myproject:ref_type:branch:ref:main",
    }
    assert set(got) == {OID_ISSUER} | set(expected)  # no deprecated GitHub OIDs, no .1.23
    for oid, want in expected.items():
        assert decode_utf8string(got[oid]) == want, oid


def test_gitlab_tag_ref_and_environment() -> None:
    claims = {**GITLAB_CLAIMS, "ref": "v1.2.0", "ref_type": "tag", "environment": "production"}
    identity = identity_from_claims(claims, GITLAB)
    assert decode_utf8string(identity.extension(ARC + "14") or b"") == "refs/tags/v1.2.0"
    assert decode_utf8string(identity.extension(ARC + "23") or b"") == "production"


@pytest.mark.parametrize(
    "claim",
    ["ci_config_ref_uri", "ci_config_sha", "runner_environment", "project_path", "sha", "ref", "ref_type",
     "project_id", "namespace_path", "namespace_id", "pipeline_source", "job_id", "project_visibility"],
)  # fmt: skip
def test_gitlab_missing_claim_is_named(claim: str) -> None:
    claims = {k: v for k, v in GITLAB_CLAIMS.items() if k != claim}
    with pytest.raises(BadRequest, match=f"'{claim}' claim"):
        identity_from_claims(claims, GITLAB)


# -- email --------------------------------------------------------------------

EMAIL_CLAIMS: dict[str, Any] = {
    "iss": "https://accounts.google.com",
    "sub": "110169484474386276334",
    "aud": "sigstore",
    "email": "alice@example.com",
    "email_verified": True,
}


def test_email_identity() -> None:
    identity = identity_from_claims(EMAIL_CLAIMS, GOOGLE)
    assert (identity.san_type, identity.san, identity.issuer) == ("email", "alice@example.com", GOOGLE.url)
    assert identity.extensions == (
        (OID_ISSUER, b"https://accounts.google.com"),
        (OID_ISSUER_V2, b"\x0c\x1bhttps://accounts.google.com"),
        (OID_TOKEN_SUBJECT, b"\x0c\x15110169484474386276334"),
    )


@pytest.mark.parametrize("verified", ["true", "True"])
def test_email_verified_as_string_is_accepted_like_fulcio(verified: str) -> None:
    assert identity_from_claims({**EMAIL_CLAIMS, "email_verified": verified}, GOOGLE).san == "alice@example.com"


@pytest.mark.parametrize("verified", [False, "false", "False", "__missing__"])
def test_unverified_email_is_forbidden(verified: object) -> None:
    claims = {**EMAIL_CLAIMS, "email_verified": verified}
    if verified == "__missing__":
        del claims["email_verified"]
    with pytest.raises(Forbidden, match="email not verified") as info:
        identity_from_claims(claims, GOOGLE)
    assert info.value.http_status == 403


@pytest.mark.parametrize("verified", [1, "yes", None, [True]])
def test_email_verified_must_be_a_boolean(verified: object) -> None:
    with pytest.raises(BadRequest, match="email_verified"):
        identity_from_claims({**EMAIL_CLAIMS, "email_verified": verified}, GOOGLE)


def test_email_claim_required_and_validated() -> None:
    claims = {k: v for k, v in EMAIL_CLAIMS.items() if k != "email"}
    with pytest.raises(BadRequest, match="'email' claim"):
        identity_from_claims(claims, GOOGLE)
    for bad in ["not-an-email", "a@b", "a b@example.com", "ünï@example.com", "a@@example.com", 42]:
        with pytest.raises(BadRequest, match="email"):
            identity_from_claims({**EMAIL_CLAIMS, "email": bad}, GOOGLE)


def test_dex_issuer_claim_names_the_upstream_issuer() -> None:
    claims = {
        **EMAIL_CLAIMS,
        "iss": DEX.url,
        "federated_claims": {"connector_id": "https://github.com/login/oauth", "user_id": "1"},
    }
    identity = identity_from_claims(claims, DEX)
    assert identity.issuer == "https://github.com/login/oauth"
    assert identity.extension(OID_ISSUER) == b"https://github.com/login/oauth"
    with pytest.raises(BadRequest, match="federated_claims.connector_id"):
        identity_from_claims({**claims, "federated_claims": {}}, DEX)


def test_claims_from_another_issuer_are_refused() -> None:
    with pytest.raises(BadRequest, match="does not match"):
        identity_from_claims(EMAIL_CLAIMS, DEX)


# -- uri ----------------------------------------------------------------------


def test_uri_identity() -> None:
    claims = {"iss": URI.url, "sub": "https://ci.example.com/pipelines/42", "aud": "sigstore"}
    identity = identity_from_claims(claims, URI)
    assert (identity.san_type, identity.san) == ("uri", "https://ci.example.com/pipelines/42")
    assert decode_utf8string(identity.extension(OID_TOKEN_SUBJECT) or b"") == claims["sub"]


@pytest.mark.parametrize(
    "sub",
    [
        "http://ci.example.com/x",  # scheme differs
        "https://other.example.com/x",  # host differs
        "https://ci.example.com.evil.net/x",  # prefix trick
        "https://ci.example.com@evil.net/x",  # userinfo trick
        "alice@example.com",  # an e-mail, not a URI
        "",
        "not a uri",
    ],
)
def test_uri_subject_outside_the_subject_domain_is_refused(sub: str) -> None:
    with pytest.raises(BadRequest, match="sub"):
        identity_from_claims({"iss": URI.url, "sub": sub}, URI)


def test_uri_subject_domain_path_is_a_prefix_at_segment_boundary() -> None:
    issuer = IssuerConfig(url=URI.url, type="uri", subject_domain="https://ci.example.com/team-a")
    assert identity_from_claims({"iss": URI.url, "sub": "https://ci.example.com/team-a/job/1"}, issuer)
    with pytest.raises(BadRequest, match="must be under"):
        identity_from_claims({"iss": URI.url, "sub": "https://ci.example.com/team-ab/job/1"}, issuer)


# -- interop: sigstore-python's own policies read our extensions ---------------


def certificate_for(identity: Identity) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    san: x509.GeneralName = (
        x509.RFC822Name(identity.san) if identity.san_type == "email" else x509.UniformResourceIdentifier(identity.san)
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
    )
    for oid, value in identity.extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_sigstore_policies_accept_a_github_certificate() -> None:
    cert = certificate_for(identity_from_claims(GITHUB_CLAIMS, GITHUB))
    c = GITHUB_CLAIMS
    policies = [
        sigstore_policy.Identity(identity=GITHUB_EXPECTED_DER[ARC + "9"], issuer=GITHUB.url),
        sigstore_policy.GitHubWorkflowTrigger(c["event_name"]),
        sigstore_policy.GitHubWorkflowSHA(c["sha"]),
        sigstore_policy.GitHubWorkflowName(c["workflow"]),
        sigstore_policy.GitHubWorkflowRepository(c["repository"]),
        sigstore_policy.GitHubWorkflowRef(c["ref"]),
        sigstore_policy.OIDCIssuerV2(GITHUB.url),
        sigstore_policy.OIDCBuildSignerURI(GITHUB_EXPECTED_DER[ARC + "9"]),
        sigstore_policy.OIDCBuildSignerDigest(c["job_workflow_sha"]),
        sigstore_policy.OIDCRunnerEnvironment(c["runner_environment"]),
        sigstore_policy.OIDCSourceRepositoryURI("https://github.com/octo-org/octo-repo"),
        sigstore_policy.OIDCSourceRepositoryDigest(c["sha"]),
        sigstore_policy.OIDCSourceRepositoryRef(c["ref"]),
        sigstore_policy.OIDCSourceRepositoryIdentifier(c["repository_id"]),
        sigstore_policy.OIDCSourceRepositoryOwnerURI("https://github.com/octo-org"),
        sigstore_policy.OIDCSourceRepositoryOwnerIdentifier(c["repository_owner_id"]),
        sigstore_policy.OIDCBuildConfigURI(GITHUB_EXPECTED_DER[ARC + "18"]),
        sigstore_policy.OIDCBuildConfigDigest(c["workflow_sha"]),
        sigstore_policy.OIDCBuildTrigger(c["event_name"]),
        sigstore_policy.OIDCRunInvocationURI(GITHUB_EXPECTED_DER[ARC + "21"]),
        sigstore_policy.OIDCSourceRepositoryVisibility(c["repository_visibility"]),
    ]
    sigstore_policy.AllOf(policies).verify(cert)


def test_sigstore_identity_policy_accepts_an_email_certificate() -> None:
    cert = certificate_for(identity_from_claims(EMAIL_CLAIMS, GOOGLE))
    sigstore_policy.Identity(identity="alice@example.com", issuer=GOOGLE.url).verify(cert)
    sigstore_policy.OIDCIssuerV2(GOOGLE.url).verify(cert)
