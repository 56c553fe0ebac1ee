"""Every real bundle made by the public Sigstore instances verifies, or fails
at exactly the step its README row names (../shared/testdata/real/README.md)."""

from __future__ import annotations

import json

import pytest
from verify_testlib import (
    INVALID_STEPS,
    PRODUCTION_ROOT,
    REAL,
    STAGING_ROOT,
    RealCase,
    failed,
    readme_tables,
    real_cases,
    run_case,
)

from tlog.verify import Status, load_trust_root

CASES = real_cases()


def test_every_bundle_in_the_folder_has_a_readme_row() -> None:
    listed = {c.bundle for c in CASES}
    on_disk = {p for p in REAL.rglob("*") if p.name.endswith((".sigstore", ".sigstore.json"))}
    assert on_disk == listed
    assert set(readme_tables()["invalid"]) == set(INVALID_STEPS)


@pytest.mark.parametrize("case", [c for c in CASES if not c.fails], ids=lambda c: c.id)
def test_real_bundle_verifies(case: RealCase) -> None:
    report = run_case(case)
    assert report.ok, report.render()
    assert {s.name for s in report.steps if s.status is Status.SKIP} == case.skipped, report.render()
    for step in ("log-entry", "inclusion", "time", "certificate-chain", "sct", "certificate", "identity", "artifact", "signature", "entry-body"):
        assert report.passed(step), report.render()


@pytest.mark.parametrize("case", [c for c in CASES if c.fails], ids=lambda c: c.id)
def test_invalid_real_bundle_fails_at_its_step(case: RealCase) -> None:
    report = run_case(case)
    assert not report.ok
    assert failed(report) == case.fails, report.render()


def test_readme_rows_match_the_bundles() -> None:
    """The log entry column (index, entry type) agrees with what we verified."""
    tables = readme_tables()
    for case in CASES:
        if case.fails:
            continue
        row = tables[case.bundle.parent.name][case.bundle.name]
        report = run_case(case)
        assert f"index {report.facts['logIndex']}" in row[2]
        assert ("Rekor v2" in row[2]) == (report.facts["version"] == "0.0.2")


def test_the_cve_bundle_is_caught_only_by_the_body_check() -> None:
    case = next(c for c in CASES if "cve" in c.bundle.name)
    report = run_case(case)
    body = report.get("entry-body")
    assert body is not None and "CVE-2022-36056" in body.detail
    # Everything else about it is genuine: the entry is really in the log.
    for step in ("inclusion", "checkpoint", "set", "certificate-chain", "signature"):
        assert report.passed(step)


def test_no_signed_time_fails_at_time_under_either_root() -> None:
    """Under the staging root the (production) log is unknown first; under
    the production root the missing signed time is the only fault."""
    case = next(c for c in CASES if "no_signed_time" in c.bundle.name)
    assert failed(run_case(case, trust=load_trust_root(PRODUCTION_ROOT))) == {"time"}
    staging = run_case(case, trust=load_trust_root(STAGING_ROOT))
    assert "log-entry" in failed(staging) and staging.status("time") is Status.SKIP


def test_production_bundles_fail_against_the_staging_root() -> None:
    case = next(c for c in CASES if c.bundle.name == "bundle_v3_github.whl.sigstore")
    report = run_case(case, trust=load_trust_root(STAGING_ROOT))
    assert "log-entry" in failed(report)


def test_wrong_identity_or_issuer_fails_the_identity_step() -> None:
    case = next(c for c in CASES if c.bundle.name == "bundle_v3_github.whl.sigstore")
    assert failed(run_case(case, identity="https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main")) == {"identity"}
    assert failed(run_case(case, issuer="https://accounts.google.com")) == {"identity"}


def test_report_facts_and_json() -> None:
    case = next(c for c in CASES if c.bundle.name == "bundle_v3_github.whl.sigstore")
    doc = run_case(case).to_json()
    json.dumps(doc)
    assert doc["ok"] is True and doc["failed"] == []
    assert doc["facts"]["logIndex"] == 79605083
    assert doc["facts"]["integratedTime"] == 1710888076
    assert doc["facts"]["verifiedTimes"] == ["2024-03-19T22:41:16Z"]
    assert [s["step"] for s in doc["steps"]][:4] == ["bundle", "log-entry", "inclusion", "checkpoint"]


# --- sigstore-python as an independent cross-check ----------------------------------------


def _sigstore_verdict(case: RealCase) -> bool:
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier, policy
    from sigstore_models.common.v1 import HashAlgorithm

    try:
        bundle = Bundle.from_json(case.bundle.read_bytes())
        verifier = Verifier(trusted_root=TrustedRoot.from_file(str(case.trust_root)))
        artifact = case.artifact
        if artifact.path is not None:
            subject: bytes | Hashed = artifact.path.read_bytes()
        else:
            assert artifact.digest is not None
            subject = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=artifact.digest[1])
        verifier.verify_artifact(subject, bundle, policy.Identity(identity=case.identity, issuer=case.issuer))
    except Exception:  # noqa: BLE001 - any sigstore error is a rejection
        return False
    return True


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_same_verdict_as_sigstore_python(case: RealCase) -> None:
    ours = run_case(case).ok
    theirs = _sigstore_verdict(case)
    if case.bundle.name == "Python-3.12.5.tgz.sigstore":
        # A v0.1 bundle with an SET and a checkpoint-less proof: valid by the
        # bundle spec (and the README), but sigstore-python 4.5.1 insists on
        # a checkpoint for every bundle version ("entry must contain
        # inclusion proof, with checkpoint").
        assert ours and not theirs
    else:
        assert ours == theirs
