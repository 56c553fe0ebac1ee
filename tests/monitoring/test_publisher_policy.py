"""The trusted-publisher policy: parsing, names, identity matching, and the per-entry
inspection, on identities built by the CA's own claim mapping and certificates
issued by our real CA (no log, no network)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import monitor_testlib as lib
import pytest
import speclient
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.utils import (
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from monitor.client import RetrievedEntry
from monitor.intoto import NotAStatement, parse_statement
from monitor.publisher_watch import inspect, signer_identity
from monitor.publishers import (
    GITHUB_ISSUER,
    IDENTITY_OIDS,
    GitHubPublisher,
    GitLabPublisher,
    IdentityPublisher,
    PolicyError,
    PublisherPolicy,
    SignerIdentity,
    distribution_project,
    normalize_name,
)
from monitor.watch import decode_entry
from tlog.ca.certificate import CertificateAuthority
from tlog.ca.devoidc import DevIssuer
from tlog.ca.identity import der_utf8string_value, identity_from_claims
from tlog.ca.issuers import IssuerConfig, IssuersConfig
from tlog.ca.oidc import TokenVerifier
from tlog.ca.pki import CAKeys
from tlog.entries import canonicalize

DEV_URL = "http://127.0.0.1:1/oidc"
GITLAB_ISSUER = "https://gitlab.com"

POLICY = """\
packages:
  Sample_Project:
    - kind: github
      repository: octo-org/octo-repo
      workflow: release.yml
      environment: pypi
      repository_owner_id: 0123
  internal.tool:
    - kind: gitlab
      project: group/sub/tool
      workflow_filepath: ci/release.yml
    - kind: identity
      issuer: https://accounts.google.com
      identity: release@example.com
"""


# --- the policy file ----------------------------------------------------------------------


def test_policy_example_parses() -> None:
    policy = PublisherPolicy.from_yaml(POLICY, source="p.yaml")
    assert set(policy.packages) == {"sample-project", "internal-tool"}
    (github,) = policy.publishers_for("SAMPLE.project") or ()
    # Scalars are the text written: an id with a leading zero is not the number 123.
    assert github == GitHubPublisher("octo-org/octo-repo", "release.yml", "pypi", "0123")
    assert github.issuer == GITHUB_ISSUER
    assert policy.publishers_for("internal_tool") == (
        GitLabPublisher("group/sub/tool", "ci/release.yml"),
        IdentityPublisher("https://accounts.google.com", "release@example.com"),
    )
    assert policy.publishers_for("other") is None


def test_policy_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    assert len(PublisherPolicy.load(path)) == 2
    path.write_bytes(b"packages:\n  \xff: []\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        PublisherPolicy.load(path)
    with pytest.raises(PolicyError, match="cannot read"):
        PublisherPolicy.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "p.yaml: the policy is empty"),
        ("packages: [", "p.yaml: invalid YAML"),
        ("pkgs: {}\n", "p.yaml:1: pkgs: unknown top-level key"),
        ("packages:\n", "p.yaml:1: packages: must be a mapping, not null"),
        ("packages: {}\n", "p.yaml:1: packages: must name at least one package"),
        ("packages:\n  a: []\n", "p.yaml:2: packages.a: must list at least one publisher"),
        ("packages:\n  a:\n    kind: github\n", "p.yaml:3: packages.a: must be a list of publishers, not a mapping"),
        ("packages:\n  -bad-:\n    - {kind: identity, issuer: https://i, identity: x}\n", "p.yaml:2: packages.-bad-: '-bad-' is not a valid project name"),
        (
            "packages:\n  A_b: [{kind: identity, issuer: https://i, identity: x}]\n  a.B: [{kind: identity, issuer: https://i, identity: x}]\n",
            "p.yaml:3: packages.a.B: 'a.B' and 'A_b' (line 2) are the same project 'a-b'",
        ),
        ("packages:\n  a: [{kind: identity, issuer: https://i, identity: x}]\n  a: []\n", "p.yaml:3: packages: duplicate key 'a' (first on line 2)"),
        ("packages:\n  a:\n    - repository: o/r\n", "p.yaml:3: packages.a[0]: 'kind' is required"),
        ("packages:\n  a:\n    - kind: jenkins\n", "p.yaml:3: packages.a[0].kind: unknown kind 'jenkins'"),
        ("packages:\n  a:\n    - kind: github\n      repository: o/r\n", "p.yaml:3: packages.a[0]: kind 'github' needs 'workflow'"),
        ("packages:\n  a:\n    - kind: github\n      repository: o/r\n      workflow: r.yml\n      branch: main\n", "p.yaml:6: packages.a[0].branch: unknown field for kind 'github'"),
        ("packages:\n  a:\n    - kind: github\n      repository: o\n      workflow: r.yml\n", "p.yaml:4: packages.a[0].repository: 'o' is not a GitHub repository"),
        ("packages:\n  a:\n    - kind: github\n      repository: o/r\n      workflow: .github/workflows/r.yml\n", "p.yaml:5: packages.a[0].workflow: '.github/workflows/r.yml' must be the workflow's file name only"),
        ("packages:\n  a:\n    - kind: github\n      repository: o/r\n      workflow: release\n", "p.yaml:5: packages.a[0].workflow: 'release' must end in .yml or .yaml"),
        ("packages:\n  a:\n    - kind: github\n      repository: o/r\n      workflow: r.yml\n      repository_owner_id: octo\n", "p.yaml:6: packages.a[0].repository_owner_id: 'octo' is not a numeric id"),
        ("packages:\n  a:\n    - kind: github\n      repository: o/r\n      workflow: r.yml\n      environment:\n", "p.yaml:6: packages.a[0].environment: must be a string, not null"),
        ("packages:\n  a:\n    - kind: github\n      repository: o/r\n      workflow: r.yml\n      environment: ''\n", "p.yaml:6: packages.a[0].environment: must not be empty"),
        ("packages:\n  a:\n    - kind: gitlab\n      project: group\n      workflow_filepath: .gitlab-ci.yml\n", "p.yaml:4: packages.a[0].project: 'group' is not a GitLab project path"),
        ("packages:\n  a:\n    - kind: gitlab\n      project: g/p\n      workflow_filepath: /ci.yml\n", "p.yaml:5: packages.a[0].workflow_filepath: '/ci.yml' must be a path relative"),
        ("packages:\n  a:\n    - kind: identity\n      issuer: accounts.google.com\n      identity: x\n", "p.yaml:4: packages.a[0].issuer: 'accounts.google.com' is not an http(s) URL"),
        ("packages:\n  a:\n    - kind: identity\n      issuer: https://i\n      identity: [x]\n", "p.yaml:5: packages.a[0].identity: must be a string, not a list"),
    ],
)
def test_policy_errors_name_line_and_field(text: str, error: str) -> None:
    with pytest.raises(PolicyError) as info:
        PublisherPolicy.from_yaml(text, source="p.yaml")
    assert str(info.value).startswith(error), str(info.value)


def test_the_cli_refuses_a_bad_policy(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("packages:\n  a:\n    - kind: github\n      repository: o/r\n      workflow: release\n")
    args = ("--log", "http://127.0.0.1:1", "--state-dir", str(tmp_path / "s"), "--once", "--publisher-policy", str(bad))
    status, alerts, stderr = lib.run_monitor(*args)
    assert (status, alerts) == (2, []) and f"{bad}:5: packages.a[0].workflow: 'release' must end in .yml" in stderr, stderr


# --- names and distribution files ---------------------------------------------------------

project_names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?", fullmatch=True)
versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}((a|b|rc)[0-9]{1,2})?(\.post[0-9])?", fullmatch=True)


@given(project_names)
def test_normalize_name_is_pep_503(name: str) -> None:
    assert normalize_name(name) == canonicalize_name(name)
    assert normalize_name(normalize_name(name)) == normalize_name(name)


@given(project_names, versions, st.booleans(), st.sampled_from(["py3-none-any", "cp312-cp312-manylinux_2_17_x86_64"]))
def test_wheel_names_parse_like_packaging(name: str, version: str, build: bool, tags: str) -> None:
    # Wheel names escape every run of separators as "_" (the binary distribution format spec).
    escaped = "_".join(filter(None, name.replace("-", "_").replace(".", "_").split("_")))
    filename = f"{escaped}-{version}{'-1' if build else ''}-{tags}.whl"
    assert distribution_project(filename) == parse_wheel_filename(filename)[0] == normalize_name(name)
    assert distribution_project("dist/" + filename) == normalize_name(name)


@given(project_names, versions, st.sampled_from([".tar.gz", ".zip"]))
def test_sdist_names_parse_like_packaging(name: str, version: str, suffix: str) -> None:
    filename = f"{name}-{version}{suffix}"
    assert distribution_project(filename) == canonicalize_name(parse_sdist_filename(filename)[0])


@pytest.mark.parametrize(
    "filename",
    [
        "README.md",
        "sampleproject.whl",
        "sampleproject-1.0.whl",  # too few parts
        "a-1-2-3-4-5-6.whl",  # too many
        "sampleproject-1.0--none-any.whl",  # an empty part
        "sampleproject.tar.gz",  # no version
        "sampleproject-.tar.gz",
        "-1.0.tar.gz",
        "sampleproject-1.0.tar.bz2",
        "image.sigstore.json",
    ],
)
def test_other_names_are_not_distributions(filename: str) -> None:
    assert distribution_project(filename) is None


def test_distribution_examples() -> None:
    assert distribution_project("Sample.Project-2.0.0-py3-none-any.WHL") == "sample-project"
    assert distribution_project("legacy-name-with-dashes-1.0.tar.gz") == "legacy-name-with-dashes"


# --- identities built by the CA's claim mapping ---------------------------------------------


def github_claims(repository: str, workflow: str, ref: str, **extra: str) -> dict[str, Any]:
    """GitHub Actions claims, as the real token carries them (the ones Fulcio reads)."""
    owner = repository.split("/")[0]
    workflow_ref = f"{repository}/.github/workflows/{workflow}@{ref}"
    return {
        "iss": GITHUB_ISSUER,
        "sub": f"repo:{repository}:ref:{ref}",
        "repository": repository,
        "repository_id": "1296269",
        "repository_owner": owner,
        "repository_owner_id": "583231",
        "repository_visibility": "public",
        "ref": ref,
        "sha": "c0ffee" * 6 + "c0ff",
        "workflow_ref": workflow_ref,
        "workflow_sha": "c0ffee" * 6 + "c0ff",
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": "c0ffee" * 6 + "c0ff",
        "event_name": "release",
        "run_id": "42",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "workflow": "Release",
        **extra,
    }


def gitlab_claims(project: str, filepath: str, ref: str, **extra: str) -> dict[str, Any]:
    namespace = project.rsplit("/", 1)[0]
    return {
        "iss": GITLAB_ISSUER,
        "sub": f"project_path:{project}:ref_type:branch:ref:{ref}",
        "project_path": project,
        "project_id": "7",
        "namespace_path": namespace,
        "namespace_id": "3",
        "ref": ref,
        "ref_type": "branch",
        "sha": "ab" * 20,
        "ci_config_ref_uri": f"gitlab.com/{project}//{filepath}@refs/heads/{ref}",
        "ci_config_sha": "ab" * 20,
        "pipeline_source": "push",
        "job_id": "99",
        "project_visibility": "public",
        "runner_environment": "gitlab-hosted",
        **extra,
    }


def signer_from_claims(claims: dict[str, Any], issuer_type: str) -> SignerIdentity:
    """What the monitor reads from a certificate the CA would issue for these claims."""
    identity = identity_from_claims(claims, IssuerConfig(url=claims["iss"], type=issuer_type))  # type: ignore[arg-type]
    by_oid = {oid: value for oid, value in identity.extensions}
    texts = {name: der_utf8string_value(by_oid[oid]) for name, oid in IDENTITY_OIDS.items() if oid in by_oid}
    return SignerIdentity("certificate", (identity.san,), identity.issuer, {k: v for k, v in texts.items() if v})


owners = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,12}", fullmatch=True)
repos = st.from_regex(r"[A-Za-z0-9_.-]{1,16}", fullmatch=True).filter(lambda r: r not in (".", ".."))
workflows = st.from_regex(r"[A-Za-z0-9_-]{1,12}\.ya?ml", fullmatch=True)
refs = st.one_of(
    st.from_regex(r"refs/heads/[a-z0-9][a-z0-9/_-]{0,15}", fullmatch=True),
    st.from_regex(r"refs/tags/v[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(owners, repos, workflows, refs, st.sampled_from(["pypi", "release", ""]))
def test_github_publisher_matches_its_own_runs_only(owner: str, repo: str, workflow: str, ref: str, env: str) -> None:
    repository = f"{owner}/{repo}"
    extra = {"environment": env} if env else {}
    me = signer_from_claims(github_claims(repository, workflow, ref, **extra), "github-workflow")
    publisher = GitHubPublisher(repository, workflow, env or None, "583231")
    assert publisher.mismatch(me) is None
    # GitHub names are case-insensitive; so is the policy's repository.
    assert replace(publisher, repository=repository.swapcase()).mismatch(me) is None

    other_workflow = "x" + workflow
    assert publisher.mismatch(signer_from_claims(github_claims(repository, other_workflow, ref, **extra), "github-workflow"))
    assert publisher.mismatch(signer_from_claims(github_claims(f"{owner}x/{repo}", workflow, ref, **extra), "github-workflow"))
    assert publisher.mismatch(signer_from_claims(github_claims(f"{owner}/{repo}-x", workflow, ref, **extra), "github-workflow"))
    assert replace(publisher, issuer="https://token.actions.githubusercontent.com.evil").mismatch(me)
    assert replace(publisher, repository_owner_id="1").mismatch(me)  # the owner was renamed and the name re-registered
    assert replace(publisher, environment="other").mismatch(me)


def test_github_workflow_is_compared_whole() -> None:
    publisher = GitHubPublisher("octo/repo", "release.yml")
    for workflow in ("release.yml.yml", "xrelease.yml", "Release.yml"):
        signer = signer_from_claims(github_claims("octo/repo", workflow, "refs/heads/main"), "github-workflow")
        assert "build config" in (publisher.mismatch(signer) or ""), workflow
    # The suffix must be the certificate's own ref or commit, not any text after an "@".
    signer = signer_from_claims(github_claims("octo/repo", "release.yml", "refs/heads/main"), "github-workflow")
    forged = replace(signer, extensions={**signer.extensions, "build_config_uri": "https://github.com/octo/repo/.github/workflows/release.yml@evil"})
    assert GitHubPublisher("octo/repo", "release.yml").mismatch(forged)


def test_github_reusable_workflow_is_judged_by_the_calling_workflow() -> None:
    # pypi-attestations (and so PyPI for PEP 740) reads the Build Config URI: the
    # workflow the run started from, not the reusable one it called (the SAN).
    claims = github_claims(
        "octo/repo", "release.yml", "refs/heads/main",
        job_workflow_ref="shared-org/actions/.github/workflows/publish.yml@refs/heads/main",
    )  # fmt: skip
    signer = signer_from_claims(claims, "github-workflow")
    assert signer.sans == ("https://github.com/shared-org/actions/.github/workflows/publish.yml@refs/heads/main",)
    assert GitHubPublisher("octo/repo", "release.yml").mismatch(signer) is None
    assert GitHubPublisher("shared-org/actions", "publish.yml").mismatch(signer)


def test_gitlab_publisher() -> None:
    me = signer_from_claims(gitlab_claims("group/sub/tool", "ci/release.yml", "main", environment="prod"), "gitlab-pipeline")
    assert GitLabPublisher("group/sub/tool", "ci/release.yml").mismatch(me) is None
    assert GitLabPublisher("Group/Sub/Tool", "ci/release.yml", "PROD").mismatch(me) is None
    assert GitLabPublisher("group/sub/tool", "ci/release.yml", "staging").mismatch(me)
    assert GitLabPublisher("group/sub/tool", ".gitlab-ci.yml").mismatch(me)
    assert GitLabPublisher("group/sub", "tool//ci/release.yml").mismatch(me)
    assert GitLabPublisher("group/sub/tool", "ci/release.yml", issuer="https://gitlab.example.com").mismatch(me)
    # A GitHub run of a same-named repository is not the GitLab project.
    github = signer_from_claims(github_claims("group/tool", "release.yml", "refs/heads/main"), "github-workflow")
    assert GitLabPublisher("group/tool", "release.yml").mismatch(github)


def test_identity_publisher_pins_issuer_and_exact_san() -> None:
    me = SignerIdentity("certificate", ("release@example.com",), "https://accounts.google.com")
    assert IdentityPublisher("https://accounts.google.com", "release@example.com").mismatch(me) is None
    assert IdentityPublisher("https://github.com/login/oauth", "release@example.com").mismatch(me)
    assert IdentityPublisher("https://accounts.google.com", "release@example.co").mismatch(me)
    assert IdentityPublisher("https://accounts.google.com", "elease@example.com").mismatch(me)
    assert IdentityPublisher("https://accounts.google.com", "release@example.com").mismatch(SignerIdentity("public_key"))


# --- certificates from our CA, and the per-entry inspection -----------------------------------


class CA:
    """Our real CA, issuing leaves for tokens from the dev issuer (in process)."""

    def __init__(self, tmp: Path) -> None:
        self.dev = DevIssuer.load_or_create(tmp, DEV_URL)
        self.verifier = TokenVerifier(IssuersConfig(tuple(self.dev.issuer_configs())), trusted_keys=self.dev.trusted_keys())
        self.ca = CertificateAuthority(CAKeys.load_or_create(tmp))

    def identity(self, subject: str, *, type: str = "email", **claims: Any) -> speclient.Identity:
        token = self.dev.mint(subject, type=type, extra_claims=claims or None)  # type: ignore[arg-type]
        key = ec.generate_private_key(ec.SECP256R1())
        return speclient.Identity(key, self.ca.issue(key.public_key(), self.verifier.identity(token)).certificate)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def trusted(ca: CA) -> speclient.Identity:
    return ca.identity("octo-org/octo-repo", type="github", environment="pypi")


TRUSTED = GitHubPublisher("octo-org/octo-repo", "release.yml", "pypi", issuer=DEV_URL + "/github")
POLICY_OBJ = PublisherPolicy({"sampleproject": (TRUSTED,), "other": (IdentityPublisher(DEV_URL, "bob@example.com"),)})
WHEEL = "sampleproject-1.0-py3-none-any.whl"


def statement(*names: str, version: str = "v1") -> dict[str, Any]:
    return {
        "_type": f"https://in-toto.io/Statement/{version}",
        "subject": [{"name": n, "digest": {"sha256": hashlib.sha256(n.encode()).hexdigest()}} for n in names],
        "predicateType": "https://docs.pypi.org/attestations/publish/v1",
        "predicate": None,
    }


def logged(identity: speclient.Identity, stmt: dict[str, Any], *, attestation: bytes | str | None = None, uuid: str | None = None):  # type: ignore[no-untyped-def]
    """Inspect a dsse entry as our log canonicalises it, served with ``attestation``
    (default: the exact payload the client signed)."""
    request = speclient.dsse(identity, stmt)
    body = canonicalize(request).body
    payload = base64.b64decode(json.loads(request["spec"]["proposedContent"]["envelope"])["payload"])
    leaf = hashlib.sha256(b"\x00" + body).digest()
    if attestation is None:
        attestation = payload
    data = base64.b64encode(attestation).decode() if isinstance(attestation, bytes) else attestation
    served = RetrievedEntry(uuid or ("0" * 16 + leaf.hex()), 7, body, None if data == "" else data)
    return inspect(POLICY_OBJ, origin="log.test/x", entry=decode_entry(body), served=served, leaf_hash=leaf)


def test_signer_identity_of_our_certificates(ca: CA, trusted: speclient.Identity) -> None:
    signer = signer_identity(base64.b64encode(trusted.cert_pem).decode())
    assert signer.kind == "certificate" and signer.issuer == DEV_URL + "/github"
    assert signer.extensions["source_repository_uri"] == "https://github.com/octo-org/octo-repo"
    assert signer.extensions["deployment_environment"] == "pypi"
    assert TRUSTED.mismatch(signer) is None
    email = signer_identity(base64.b64encode(ca.identity("bob@example.com").cert_pem).decode())
    assert (email.sans, email.issuer) == (("bob@example.com",), DEV_URL)
    assert signer_identity("not base64!").kind == "unreadable"


def test_the_trusted_publisher_raises_nothing(trusted: speclient.Identity) -> None:
    assert logged(trusted, statement(WHEEL, "sampleproject-1.0.tar.gz")) == []
    assert logged(trusted, statement(WHEEL, version="v0.1")) == []


def test_an_impostor_is_reported_with_evidence(ca: CA) -> None:
    impostor = ca.identity("evil-org/octo-repo", type="github", environment="pypi")
    (finding,) = logged(impostor, statement("dist/" + WHEEL))
    alert = finding.to_alert()
    assert alert["type"] == "unexpected_publisher" and alert["log_index"] == 7
    ev = alert["evidence"]
    assert ev["origin"] == "log.test/x" and ev["log_index"] == 7 and ev["uuid"].startswith("0" * 16)
    assert ev["package"] == "sampleproject" and ev["distribution"] == "dist/" + WHEEL
    assert ev["subject_digest"] == {"sha256": hashlib.sha256(("dist/" + WHEEL).encode()).hexdigest()}
    assert ev["signer"]["identity"] == "https://github.com/evil-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    assert ev["signer"]["issuer"] == DEV_URL + "/github"
    assert ev["signer"]["extensions"]["source_repository_uri"] == "https://github.com/evil-org/octo-repo"
    assert ev["expected_publishers"] == [
        {"kind": "github", "repository": "octo-org/octo-repo", "workflow": "release.yml", "environment": "pypi", "issuer": DEV_URL + "/github"}
    ]
    assert "source repository" in ev["mismatches"][0]
    assert "evil-org" in alert["message"] and WHEEL in alert["message"]


def test_each_watched_distribution_subject_is_reported(ca: CA) -> None:
    mallory = ca.identity("mallory@example.com")
    findings = logged(mallory, statement(WHEEL, "other-2.0.tar.gz", "unwatched-1.0.tar.gz", "notes.txt"))
    assert sorted(f.evidence["package"] for f in findings) == ["other", "sampleproject"]
    assert {f.evidence["signer"]["identity"] for f in findings} == {"mallory@example.com"}
    # bob is other's publisher, not sampleproject's.
    bob = ca.identity("bob@example.com")
    assert [f.evidence["package"] for f in logged(bob, statement(WHEEL, "other-2.0.tar.gz"))] == ["sampleproject"]


def test_a_bare_key_is_never_a_publisher() -> None:
    (finding,) = logged(speclient.make_identity("x@example.com"), statement(WHEEL))
    # A self-signed certificate carries no issuer, so it is no publisher either.
    assert finding.type == "unexpected_publisher" and finding.evidence["signer"]["issuer"] is None


def test_the_attestation_must_be_the_logged_payload(ca: CA, trusted: speclient.Identity) -> None:
    other = json.dumps(statement("sampleproject-6.6-py3-none-any.whl")).encode()
    (finding,) = logged(trusted, statement(WHEEL), attestation=other)
    assert finding.type == "attestation_mismatch"
    assert finding.evidence["attestation_sha256"] == hashlib.sha256(other).hexdigest()
    assert finding.evidence["payload_hash"] != finding.evidence["attestation_sha256"]

    (finding,) = logged(trusted, statement(WHEEL), attestation="not base64!")
    assert finding.type == "attestation_mismatch" and "not base64" in finding.message

    (finding,) = logged(trusted, statement(WHEEL), uuid="0" * 80)
    assert finding.type == "attestation_mismatch" and "UUID" in finding.message

    (finding,) = logged(trusted, statement(WHEEL), attestation="")
    assert finding.type == "attestation_missing" and finding.evidence["payload_hash"]


def test_payloads_that_are_not_statements_are_skipped(ca: CA) -> None:
    mallory = ca.identity("mallory@example.com")
    assert logged(mallory, {"_type": "https://example.com/other", "subject": [{"name": WHEEL, "digest": {}}]}) == []
    assert logged(mallory, statement("sampleproject-1.0.txt")) == []


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"_type": "https://in-toto.io/Statement/v2", "subject": [], "predicateType": "x"}',
        b'{"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "x"}',
        b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": 1, "digest": {}}], "predicateType": "x"}',
        b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a", "digest": {"sha256": 1}}], "predicateType": "x"}',
        b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a", "digest": {}}]}',
    ],
)
def test_statement_rejections(payload: bytes) -> None:
    with pytest.raises(NotAStatement):
        parse_statement(payload)


@given(st.binary(max_size=200))
def test_statement_parser_never_raises_anything_else(payload: bytes) -> None:
    try:
        parse_statement(payload)
    except NotAStatement:
        pass


@given(st.text(max_size=40), st.sampled_from(["", ".whl", ".tar.gz", ".zip", "-1.0.tar.gz", "-1-py3-none-any.whl"]))
def test_distribution_project_is_total(name: str, suffix: str) -> None:
    result = distribution_project(name + suffix)
    assert result is None or result == normalize_name(result)
