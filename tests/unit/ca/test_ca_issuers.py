"""The issuer allow-list file: what loads, and that every mistake is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlog.ca.issuers import ConfigError, IssuerConfig, IssuersConfig, default_issuers
from tlog.errors import TlogError

EXAMPLE = """\
issuers:
  - url: https://token.actions.githubusercontent.com   # the exact `iss`
    type: github-workflow
    client_id: sigstore
  - url: https://gitlab.com
    type: gitlab-pipeline
  - url: https://accounts.google.com
    type: email
  - url: https://accounts.example.com
    type: uri
    subject_domain: https://ci.example.com
  - url: http://127.0.0.1:8080/oidc
    type: email
    client_id: dev
    jwks_url: http://127.0.0.1:8080/oidc/jwks
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "issuers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_loads(tmp_path: Path) -> None:
    config = IssuersConfig.load(write(tmp_path, EXAMPLE))
    assert [i.url for i in config.issuers] == [
        "https://token.actions.githubusercontent.com",
        "https://gitlab.com",
        "https://accounts.google.com",
        "https://accounts.example.com",
        "http://127.0.0.1:8080/oidc",
    ]
    github = config.find("https://token.actions.githubusercontent.com")
    assert github == IssuerConfig(url="https://token.actions.githubusercontent.com", type="github-workflow")
    assert config.find("https://gitlab.com") is not None
    assert config.find("https://gitlab.com").client_id == "sigstore"  # type: ignore[union-attr]
    uri = config.find("https://accounts.example.com")
    assert uri is not None and uri.subject_domain == "https://ci.example.com"
    dev = config.find("http://127.0.0.1:8080/oidc")
    assert dev is not None and (dev.client_id, dev.jwks_url) == ("dev", "http://127.0.0.1:8080/oidc/jwks")


def test_find_is_exact() -> None:
    config = default_issuers()
    assert config.find("https://accounts.google.com/") is None
    assert config.find("https://ACCOUNTS.google.com") is None
    assert config.find("https://evil.example") is None


def test_default_issuers_are_fulcios() -> None:
    config = default_issuers()
    assert {(i.url, i.type, i.client_id) for i in config.issuers} == {
        ("https://token.actions.githubusercontent.com", "github-workflow", "sigstore"),
        ("https://gitlab.com", "gitlab-pipeline", "sigstore"),
        ("https://accounts.google.com", "email", "sigstore"),
        ("https://oauth2.sigstore.dev/auth", "email", "sigstore"),
    }
    dex = config.find("https://oauth2.sigstore.dev/auth")
    assert dex is not None and dex.issuer_claim == "$.federated_claims.connector_id"


def test_extended_appends_and_refuses_duplicates() -> None:
    extra = IssuerConfig(url="http://127.0.0.1:1/oidc", type="email")
    config = default_issuers().extended([extra])
    assert config.issuers[-1] == extra and config.find(extra.url) == extra
    with pytest.raises(ConfigError, match="listed twice"):
        config.extended([extra])


def test_discovery_url() -> None:
    assert (
        IssuerConfig(url="https://gitlab.com", type="gitlab-pipeline").discovery_url
        == "https://gitlab.com/.well-known/openid-configuration"
    )
    assert (
        IssuerConfig(url="https://issuer.example/", type="email").discovery_url
        == "https://issuer.example/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"expected a mapping with an 'issuers' list"),
        ("- url: x\n", r"expected a mapping"),
        ("issuers: []\n", r"'issuers' must be a non-empty list"),
        ("issuers:\n  - url: https://a.example\n    type: email\nextra: 1\n", r"unknown top-level key\(s\) extra"),
        ("issuers:\n  - just-a-string\n", r"issuers\[0\]: expected a mapping"),
        ("issuers:\n  - type: email\n", r"issuers\[0\]: field 'url' is required"),
        ("issuers:\n  - url: https://a.example\n", r"issuers\[0\] \(https://a.example\): field 'type' is required"),
        (
            "issuers:\n  - url: https://a.example\n    type: kubernetes\n",
            r"issuers\[0\] \(https://a.example\): field 'type': 'kubernetes' is not one of",
        ),
        (
            "issuers:\n  - url: https://a.example\n    type: email\n    client-id: x\n",
            r"issuers\[0\] \(https://a.example\): unknown field\(s\) client-id",
        ),
        ("issuers:\n  - url: https://a.example\n    type: email\n    client_id: ''\n", r"field 'client_id' must be"),
        ("issuers:\n  - url: https://a.example\n    type: email\n    client_id: 7\n", r"field 'client_id' must be"),
        ("issuers:\n  - url: 'https://a.example '\n    type: email\n", r"field 'url' must be"),
        ("issuers:\n  - url: a.example\n    type: email\n", r"field 'url': 'a.example' must be an absolute https"),
        ("issuers:\n  - url: ftp://a.example\n    type: email\n", r"field 'url'.*must be an absolute https"),
        (
            "issuers:\n  - url: http://a.example\n    type: email\n",
            r"field 'url'.*must use https \(http is only allowed for loopback hosts\)",
        ),
        ("issuers:\n  - url: https://a.example/?x=1\n    type: email\n", r"field 'url'.*must not contain"),
        ("issuers:\n  - url: https://u:p@a.example\n    type: email\n", r"field 'url'.*must not contain"),
        ("issuers:\n  - url: https://a.example:99999\n    type: email\n", r"field 'url'.*not a valid URL"),
        (
            "issuers:\n  - url: https://a.example\n    type: email\n    jwks_url: http://a.example/jwks\n",
            r"field 'jwks_url'.*must use https",
        ),
        ("issuers:\n  - url: https://a.example\n    type: uri\n", r"field 'subject_domain' is required for type uri"),
        (
            "issuers:\n  - url: https://a.example\n    type: email\n    subject_domain: https://a.example\n",
            r"field 'subject_domain' is only allowed with type uri",
        ),
        (
            # The brief's example: issuer.example and ci.example share only the TLD.
            "issuers:\n  - url: https://issuer.example/\n    type: uri\n    subject_domain: https://ci.example\n",
            r"field 'subject_domain': host 'ci.example' must equal the issuer host 'issuer.example'",
        ),
        (
            "issuers:\n  - url: https://accounts.example.com\n    type: uri\n    subject_domain: http://ci.example.com\n",
            r"field 'subject_domain': scheme 'http' does not match",
        ),
        (
            "issuers:\n  - url: https://accounts.example.com\n    type: uri\n    subject_domain: ci.example.com\n",
            r"field 'subject_domain'.*must be an absolute URI",
        ),
        (
            "issuers:\n  - url: https://a.example\n    type: github-workflow\n    issuer_claim: $.x\n",
            r"field 'issuer_claim' is only allowed with type email",
        ),
        (
            "issuers:\n  - url: https://a.example\n    type: email\n    issuer_claim: federated.connector\n",
            r"field 'issuer_claim': expected \$\.claim",
        ),
        (
            "issuers:\n  - url: https://a.example\n    type: email\n  - url: https://a.example\n    type: uri\n"
            "    subject_domain: https://a.example\n",
            r"issuers\[1\] \(https://a.example\): field 'url': duplicate of issuers\[0\]",
        ),
    ],
)
def test_invalid_files_are_refused_with_the_entry_and_field_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        IssuersConfig.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, TlogError)


def test_subject_domain_sharing_the_registrable_domain_is_accepted() -> None:
    config = IssuersConfig.from_dict(
        {
            "issuers": [
                {"url": "https://accounts.example.com", "type": "uri", "subject_domain": "https://users.example.com"},
                {"url": "https://ci.example.org", "type": "uri", "subject_domain": "https://ci.example.org/team"},
            ]
        }
    )
    assert len(config.issuers) == 2


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        IssuersConfig.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        IssuersConfig.load(write(tmp_path, "issuers: [unclosed\n"))
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read"):
        IssuersConfig.load(tmp_path / "binary.yaml")


def test_issuer_config_invariants_hold_without_the_loader() -> None:
    with pytest.raises(ConfigError, match="type"):
        IssuerConfig(url="https://a.example", type="kubernetes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="subject_domain"):
        IssuerConfig(url="https://a.example", type="uri")
    with pytest.raises(ConfigError, match="subject_domain"):
        IssuerConfig(url="https://a.example", type="email", subject_domain="https://a.example")
    with pytest.raises(ConfigError, match="client_id"):
        IssuerConfig(url="https://a.example", type="email", client_id="")
    with pytest.raises(ConfigError, match="url"):
        IssuerConfig(url="", type="email")
