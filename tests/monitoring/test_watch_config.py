"""Watchlist configuration: rekor-monitor's ``monitoredValues`` YAML, parsed strictly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.watch import FULCIO_EXTENSION_NAMES, WatchConfigError, Watchlist

# The configuration example of rekor-monitor's README (structure and keys), with
# its run settings, which we accept and ignore.
REKOR_MONITOR_EXAMPLE = r"""
# Optional: Specify start and end log indices for searching
startIndex: 1000
endIndex: 2000

monitoredValues:
  certIdentities:
    - certSubject: user@domain\.com
    - certSubject: otheruser@domain\.com
      issuers:
        - https://accounts\.google\.com
        - https://github\.com/login
    - certSubject: https://github\.com/actions/starter-workflows/blob/main/\.github/workflows/lint\.yaml@.*
      issuers:
        - https://token\.actions\.githubusercontent\.com
  subjects:
    - subject@domain\.com
  fingerprints:
    - A0B1C2D3E4F5
  oidMatchers:
    fulcioExtensions:
      build-config-uri:
        - https://example.com/owner/repository/build-config.yml
    oidExtensions:
      - objectIdentifier: [1, 3, 6, 1, 4, 1, 57264, 1, 1]
        extensionValues:
          - https://github.com/login/oauth
    customExtensions:
      - objectIdentifier: 1.3.6.1.4.1.57264.1.9
        extensionValues:
          - https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@v1.4.0

outputIdentities: identities.txt
outputIdentitiesFormat: text
logInfoFile: logInfo.txt
identityMetadataFile: metadata.json
"""


def load(tmp_path: Path, text: str) -> Watchlist:
    path = tmp_path / "watch.yaml"
    path.write_text(text, encoding="utf-8")
    return Watchlist.load(path)


def config_error(tmp_path: Path, text: str, *fragments: str) -> str:
    with pytest.raises(WatchConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_rekor_monitor_readme_example_loads(tmp_path: Path) -> None:
    wl = load(tmp_path, REKOR_MONITOR_EXAMPLE)
    assert [r.name for r in wl.cert_identities] == ["certIdentities[0]", "certIdentities[1]", "certIdentities[2]"]
    assert len(wl.cert_identities[1].issuers) == 2
    assert [r.name for r in wl.subjects] == ["subjects[0]"]
    # Not a SHA-256 fingerprint: kept verbatim (it can never match here, but the file is valid).
    assert wl.fingerprints == {"A0B1C2D3E4F5": "fingerprints[0]"}
    assert wl.oid_matchers == {
        "1.3.6.1.4.1.57264.1.18": frozenset({"https://example.com/owner/repository/build-config.yml"}),
        "1.3.6.1.4.1.57264.1.1": frozenset({"https://github.com/login/oauth"}),
        "1.3.6.1.4.1.57264.1.9": frozenset(
            {"https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@v1.4.0"}
        ),
    }
    assert bool(wl) and len(wl) == 3 + 1 + 1 + 3


def test_bare_mapping_is_accepted(tmp_path: Path) -> None:
    wl = load(tmp_path, "certIdentities:\n  - certSubject: a@b\\.c\nsubjects: [x]\n")
    assert len(wl.cert_identities) == 1 and len(wl.subjects) == 1
    assert wl.cert_identities[0].issuers == ()


def test_mapping_input_and_json_like_data() -> None:
    wl = Watchlist.from_mapping({"monitoredValues": {"fingerprints": ["AB:" * 31 + "AB"]}})
    assert wl.fingerprints == {"ab" * 32: "fingerprints[0]"}
    # JSON-style data: OID arcs may be real integers (not booleans or negatives).
    wl = Watchlist.from_mapping(
        {"oidMatchers": {"oidExtensions": [{"objectIdentifier": [1, 3, 6, 1, 4, 1, 57264, 1, 12], "extensionValues": ["x"]}]}}
    )
    assert wl.oid_matchers == {"1.3.6.1.4.1.57264.1.12": frozenset({"x"})}
    for bad in ([1, True, 3], [1, -3]):
        with pytest.raises(WatchConfigError, match=r"objectIdentifier\[1\]"):
            Watchlist.from_mapping({"oidMatchers": {"oidExtensions": [{"objectIdentifier": bad, "extensionValues": ["x"]}]}})


def test_fingerprints_are_normalized(tmp_path: Path) -> None:
    fp = "0123456789ABCDEF" * 4
    wl = load(tmp_path, f"fingerprints: ['{fp}', '{':'.join(fp[i:i + 2] for i in range(0, 64, 2))}']\n")
    assert wl.fingerprints == {fp.lower(): "fingerprints[0]"}


def test_empty_watchlist(tmp_path: Path) -> None:
    empty = Watchlist.empty()
    assert not empty and len(empty) == 0
    assert empty.match(b'{"kind": "hashedrekord"}', 0) == []
    config_error(tmp_path, "monitoredValues:\n", "no values to monitor")
    config_error(tmp_path, "monitoredValues: {}\n", "no values to monitor")
    config_error(tmp_path, "monitoredValues:\n  certIdentities: []\n  subjects: []\n", "no values to monitor")
    config_error(tmp_path, "", "must be a mapping, not null")


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    config_error(tmp_path, "monitoredValues:\n  certIdentity: []\n", "monitoredValues.certIdentity", "unknown key")
    config_error(
        tmp_path,
        "monitoredValues:\n  certIdentities:\n    - certSubject: a\n      issuer: [b]\n",
        "monitoredValues.certIdentities[0].issuer",
        "unknown key",
    )
    config_error(
        tmp_path,
        "monitoredValues:\n  oidMatchers:\n    fulcioExtension: {}\n",
        "monitoredValues.oidMatchers.fulcioExtension",
    )
    config_error(
        tmp_path,
        "monitoredValues:\n  oidMatchers:\n    fulcioExtensions:\n      source-repo-uri: [x]\n",
        "monitoredValues.oidMatchers.fulcioExtensions.source-repo-uri",
        "source-repository-uri",
    )
    config_error(
        tmp_path,
        "monitoredValues:\n  oidMatchers:\n    customExtensions:\n      - objectIdentifier: 1.2.3\n        values: [x]\n",
        "customExtensions[0].values",
    )
    config_error(tmp_path, "monitoredValues:\n  subjects: [a]\nwatch: yes\n", "unknown top-level key", "'watch'")
    config_error(tmp_path, "monitoredValues:\n  subjects: [a]\nsubjects: [b]\n", "'subjects'")
    config_error(tmp_path, "startIndex: 3\n", "expected one of monitoredValues")


def test_wrong_types_are_rejected(tmp_path: Path) -> None:
    config_error(tmp_path, "- certSubject: a\n", "must be a mapping, not a list")
    config_error(tmp_path, "certIdentities:\n  certSubject: a\n", "certIdentities", "must be a list, not a mapping")
    config_error(tmp_path, "certIdentities:\n  - a@b\n", "certIdentities[0]", "must be a mapping, not a string")
    config_error(tmp_path, "certIdentities:\n  - issuers: [x]\n", "certIdentities[0]", "certSubject is required")
    config_error(tmp_path, "certIdentities:\n  - certSubject: [a]\n", "certIdentities[0].certSubject", "must be a string")
    config_error(tmp_path, "certIdentities:\n  - certSubject: ''\n", "certIdentities[0].certSubject", "must not be empty")
    config_error(tmp_path, "certIdentities:\n  - certSubject:\n", "certIdentities[0].certSubject", "not null")
    config_error(
        tmp_path, "certIdentities:\n  - certSubject: a\n    issuers: https://x\n", "certIdentities[0].issuers", "must be a list"
    )
    config_error(tmp_path, "certIdentities:\n  - certSubject: a\n    issuers: ['']\n", "issuers[0]", "must not be empty")
    config_error(tmp_path, "subjects: a\n", "subjects", "must be a list")
    config_error(tmp_path, "subjects: [{a: b}]\n", "subjects[0]", "must be a string")
    config_error(tmp_path, "fingerprints: {a: b}\n", "fingerprints", "must be a list")
    config_error(tmp_path, "oidMatchers: 1.2.3\n", "oidMatchers", "must be a mapping")
    config_error(
        tmp_path,
        "oidMatchers:\n  fulcioExtensions:\n    source-repository-uri: https://github.com/x\n",
        "fulcioExtensions.source-repository-uri",
        "must be a list",
    )
    config_error(
        tmp_path, "oidMatchers:\n  fulcioExtensions:\n    runner-environment: []\n", "runner-environment", "at least one value"
    )
    config_error(
        tmp_path,
        "oidMatchers:\n  oidExtensions:\n    - objectIdentifier: [1, 3, 6]\n",
        "oidExtensions[0]",
        "extensionValues is required",
    )
    config_error(
        tmp_path,
        "oidMatchers:\n  customExtensions:\n    - extensionValues: [x]\n",
        "customExtensions[0]",
        "objectIdentifier is required",
    )


@pytest.mark.parametrize(
    ("oid", "fragment"),
    [
        ("[1, 3, x]", "objectIdentifier[2]"),
        ("[1, -3]", "objectIdentifier[1]"),
        ("'1.3..6'", "not an object identifier"),
        ("'1'", "not an object identifier"),
        ("'3.1.4'", "not a valid object identifier"),
        ("'1.40'", "not a valid object identifier"),
        ("{a: 1}", "must be an OID"),
    ],
)
def test_invalid_oids_are_rejected(tmp_path: Path, oid: str, fragment: str) -> None:
    config_error(
        tmp_path,
        f"oidMatchers:\n  oidExtensions:\n    - objectIdentifier: {oid}\n      extensionValues: [v]\n",
        "oidMatchers.oidExtensions[0]",
        fragment,
    )


def test_oid_forms_and_merging(tmp_path: Path) -> None:
    wl = load(
        tmp_path,
        """
monitoredValues:
  oidMatchers:
    oidExtensions:
      - objectIdentifier: [1, 3, 6, 1, 4, 1, 57264, 1, 12]
        extensionValues: [https://github.com/a/b]
      - oid: 1.3.6.1.4.1.57264.1.15
        extensionValues: [0123, yes]
    fulcioExtensions:
      source-repository-uri: [https://github.com/c/d]
      issuer: [https://token.actions.githubusercontent.com]
    customExtensions:
      - objectIdentifier: 1.3.6.1.4.1.57264.1.12
        extensionValues: [https://github.com/e/f]
""",
    )
    assert wl.oid_matchers["1.3.6.1.4.1.57264.1.12"] == {
        "https://github.com/a/b",
        "https://github.com/c/d",
        "https://github.com/e/f",
    }
    # YAML 1.1 would read these as 83 and True; they stay the text written, as in yaml.v3.
    assert wl.oid_matchers["1.3.6.1.4.1.57264.1.15"] == {"0123", "yes"}
    # The named issuer matcher covers both issuer extensions.
    assert wl.oid_matchers["1.3.6.1.4.1.57264.1.1"] == wl.oid_matchers["1.3.6.1.4.1.57264.1.8"]
    config_error(
        tmp_path,
        "oidMatchers:\n  oidExtensions:\n    - oid: 1.2.3\n      objectIdentifier: 1.2.3\n      extensionValues: [x]\n",
        "not both",
    )


def test_legacy_list_form_of_oid_matchers(tmp_path: Path) -> None:
    wl = load(
        tmp_path,
        "oidMatchers:\n  - objectIdentifier: [1, 3, 6, 1, 4, 1, 57264, 1, 9]\n    extensionValues: [https://x/y]\n",
    )
    assert wl.oid_matchers == {"1.3.6.1.4.1.57264.1.9": frozenset({"https://x/y"})}


def test_every_fulcio_extension_name_is_accepted(tmp_path: Path) -> None:
    body = "".join(f"    {name}: [v-{name}]\n" for name in FULCIO_EXTENSION_NAMES)
    wl = load(tmp_path, "oidMatchers:\n  fulcioExtensions:\n" + body)
    assert len(wl.oid_matchers) == len(FULCIO_EXTENSION_NAMES) + 1  # issuer -> .1.1 and .1.8


def test_bad_regexes_are_rejected(tmp_path: Path) -> None:
    config_error(tmp_path, "subjects: ['a(b']\n", "subjects[0]", "invalid regular expression", "'a(b'")
    config_error(
        tmp_path,
        "certIdentities:\n  - certSubject: ok\n    issuers: [ok, '*bad']\n",
        "certIdentities[0].issuers[1]",
        "invalid regular expression",
    )
    # RE2 syntax Python's re lacks is an error, never a silently different pattern.
    config_error(tmp_path, "subjects: ['\\pL+']\n", "subjects[0]", "invalid regular expression")
    config_error(tmp_path, "subjects: ['[[:nope:]]']\n", "unknown POSIX class")
    config_error(tmp_path, "subjects: ['[[:^alpha:]]']\n", "negated POSIX class")


def test_re2_syntax_is_translated(tmp_path: Path) -> None:
    wl = load(
        tmp_path,
        r"""
subjects:
  - '^a\.b\z'
  - '\Qhttps://x.y/?q=1\E$'
  - '^(?<user>[[:alpha:]]+)@(?P<host>[[:alnum:].-]+)$'
  - '^[]x]+$'
""",
    )
    p = [rule.pattern for rule in wl.subjects]
    assert p[0].search("a.b") and not p[0].search("a.b\n") and not p[0].search("axb")
    assert p[1].search("see https://x.y/?q=1") and not p[1].search("https://xxy/?q=1")
    m = p[2].search("alice@example.com")
    assert m and m.group("user") == "alice" and m.group("host") == "example.com"
    assert not p[2].search("al1ce@example.com")
    assert p[3].search("]x]") and not p[3].search("y")


def test_regexes_search_like_rekor_monitor(tmp_path: Path) -> None:
    # Go's regexp.MatchString is unanchored; so are we.
    wl = load(tmp_path, "subjects: ['alice@example\\.com', '^bob@example\\.com$']\n")
    assert isinstance(wl.subjects[0].pattern, re.Pattern)
    assert wl.subjects[0].pattern.search("malice@example.com.evil")
    assert not wl.subjects[1].pattern.search("bob@example.com.evil")


def test_yaml_and_file_problems(tmp_path: Path) -> None:
    config_error(tmp_path, "subjects: [a\n", "invalid YAML")
    config_error(tmp_path, "subjects: [a]\nsubjects: [b]\n", "duplicate key 'subjects'")
    config_error(tmp_path, "certIdentities:\n  - certSubject: a\n    certSubject: b\n", "duplicate key 'certSubject'")
    with pytest.raises(WatchConfigError, match="cannot read watchlist"):
        Watchlist.load(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"subjects: ['caf\xe9']\n")
    with pytest.raises(WatchConfigError, match="not UTF-8"):
        Watchlist.load(tmp_path / "latin1.yaml")
    # Tags that would build Python objects are refused (safe loading).
    config_error(tmp_path, "subjects: !!python/object/apply:os.getcwd []\n", "invalid YAML")
    assert issubclass(WatchConfigError, ValueError)
