"""The web explorer in headless Chromium (Debian's ``chromium``, driven by Playwright).

One real ``tlog serve --dev-oidc`` (SQLite) gets entries the way users make
them: sigstore-python signing with an email identity and a GitHub Actions
identity from our CA, a DSSE attestation, plus a hand-made certificate full
of markup. Then the browser looks at them: home, search (with and without
JavaScript), the decoded certificate, and the in-browser inclusion/signature
check, which must pass as served and fail once the page's data is tampered
with. Screenshots go to ``bench-results/screenshots/`` (git-ignored).

Playwright's own browser downloads are never used: the tests launch
``/usr/bin/chromium`` (``.ci/run`` installs it). Without it they skip, except
under CI (``CI=true``), where they fail instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ROOT, LiveServer
from test_explorer_views import XSS, hashedrekord_for, xss_identity

from tlog.config import Settings

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("TLOG_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "bench-results" / "screenshots"
GITHUB_SAN = "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"


def _need_browser() -> None:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[test]')"
    if problem is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {problem}")
        pytest.skip(problem)


def tlog_cli(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def sigstore(trust: Path, *args: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "sigstore", "--trust-config", str(trust), *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert res.returncode == 0, res.stderr


def bundle_entry(path: Path) -> tuple[int, str]:
    """(log index, kind) of the one tlog entry in a sigstore bundle."""
    entry = json.loads(path.read_text())["verificationMaterial"]["tlogEntries"][0]
    return int(entry["logIndex"]), entry["kindVersion"]["kind"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _need_browser()
    tmp = tmp_path_factory.mktemp("explorer")
    settings = Settings(data_dir=tmp / "data", origin="explorer.example/log")
    server = LiveServer(settings, extra_args=("--dev-oidc",)).start()
    try:
        trust = tmp / "trust.json"
        trust.write_text(tlog_cli("trust-config", "--url", server.url, "--data-dir", str(settings.data_dir)))

        def token(subject: str, kind: str = "email") -> str:
            return tlog_cli("dev-token", "--data-dir", str(settings.data_dir), "--subject", subject, "--type", kind).strip()

        email_artifact = tmp / "hello.txt"
        email_artifact.write_text("hello, explorer\n")
        sigstore(trust, "sign", "--identity-token", token("alice@example.com"), str(email_artifact))
        github_artifact = tmp / "release.tar.gz"
        github_artifact.write_bytes(b"\x1f\x8b release " * 20)
        sigstore(trust, "sign", "--identity-token", token("octo-org/octo-repo", "github"), str(github_artifact))
        attested = tmp / "pkg.whl"
        attested.write_bytes(b"PK fake wheel")
        predicate = tmp / "predicate.json"
        predicate.write_text(
            json.dumps(
                {
                    "buildDefinition": {"buildType": "https://example.com/build/v1", "externalParameters": {}},
                    "runDetails": {"builder": {"id": "https://example.com/ci"}},
                }
            )
        )
        sigstore(
            trust, "attest", "--identity-token", token("bob@example.com"),
            "--predicate-type", "https://slsa.dev/provenance/v1", "--predicate", str(predicate), str(attested),
        )  # fmt: skip
        key, cert = xss_identity()
        resp = requests.post(server.url + "/api/v1/log/entries", json=hashedrekord_for(key, cert)[0], timeout=30)
        assert resp.status_code == 201, resp.text
        xss_index = next(iter(resp.json().values()))["logIndex"]

        entries = {
            "email": bundle_entry(Path(str(email_artifact) + ".sigstore.json")),
            "github": bundle_entry(Path(str(github_artifact) + ".sigstore.json")),
            "dsse": bundle_entry(Path(str(attested) + ".sigstore.json")),
        }
        assert entries["email"][1] == entries["github"][1] == "hashedrekord" and entries["dsse"][1] == "dsse"
        witness = _cosign_latest(settings)
        yield {
            "url": server.url,
            "origin": settings.origin,
            "size": 4,
            "index": {k: v[0] for k, v in entries.items()} | {"xss": xss_index},
            "digest": {
                "email": hashlib.sha256(email_artifact.read_bytes()).hexdigest(),
                "github": hashlib.sha256(github_artifact.read_bytes()).hexdigest(),
            },
            "witness": witness,
        }
    finally:
        server.stop()


def _cosign_latest(settings: Settings) -> str:
    """A witness cosignature on the latest head, stored as the collector would store it."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tlog.api.state import Services
    from tlog.note import CosignatureV1Signer, Note, NoteSignature
    from tlog.storage import store

    svc = Services.open(settings, migrate=False)
    try:
        head = svc.log.latest_head()
        signer = CosignatureV1Signer("witness.example/w1", ed25519.Ed25519PrivateKey.generate())
        sig = NoteSignature(signer.name, signer.key_id, signer.sign(Note.parse(head.checkpoint).message))
        with svc.engine.begin() as conn:
            store.insert_cosignature(
                conn, svc.log.tree, head.size, f"{signer.name}+{signer.key_id.hex()}", sig.line().rstrip("\n"), int(time.time() * 1000)
            )
    finally:
        svc.engine.dispose()
    return signer.name


@pytest.fixture(scope="module")
def browser(stack: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """A page in a fresh context that records console errors and dialogs."""

    def __init__(self, browser: Any, base: str, *, javascript: bool = True) -> None:
        self.context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1200, "height": 900})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, path: str) -> Any:
        resp = self.page.goto(self.base + path)
        assert resp is not None
        return resp

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def search(self, query: str) -> list[int]:
        self.page.fill("#q", query)
        with self.page.expect_navigation():
            self.page.press("#q", "Enter")
        return [int(t) for t in self.page.locator("a.entry-link").all_inner_texts()]

    def verify(self) -> tuple[str, list[str]]:
        self.page.click("#verify-button")
        self.page.wait_for_function("['ok', 'fail'].includes(document.getElementById('verify-outcome').dataset.status)")
        status = self.page.get_attribute("#verify-outcome", "data-status")
        return str(status), self.page.locator("#verify-steps li").all_inner_texts()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, stack: dict[str, Any]) -> Iterator[Page]:
    page = Page(browser, stack["url"])
    yield page
    page.close()
    # No CSP violation, script error or alert() anywhere.
    assert page.errors == [] and page.dialogs == []


def test_home_shows_checkpoint_witness_and_recent_entries(tab: Page, stack: dict[str, Any]) -> None:
    tab.goto("/explorer/")
    assert tab.page.inner_text("#tree-size") == str(stack["size"])
    assert tab.page.inner_text("#origin") == stack["origin"]
    checkpoint = tab.page.inner_text("#latest-checkpoint pre.checkpoint")
    assert checkpoint.startswith(f"{stack['origin']}\n{stack['size']}\n")
    assert f"\u2014 {stack['witness']} " in checkpoint
    witness_rows = tab.page.locator("#latest-checkpoint tr.sig-witness").all_inner_texts()
    assert len(witness_rows) == 1 and stack["witness"] in witness_rows[0] and "cosignature/v1" in witness_rows[0]
    assert tab.page.locator("#latest-checkpoint tr.sig-log").count() == 2
    rows = tab.page.locator("#recent-entries tbody tr").all_inner_texts()
    assert len(rows) == stack["size"]
    assert rows[0].startswith(str(stack["size"] - 1))  # newest first
    body = tab.page.inner_text("#recent-entries")
    assert "alice@example.com" in body and GITHUB_SAN in body and "bob@example.com" in body and "dsse" in body
    tab.shot("explorer-home")


def test_search_finds_each_entry(tab: Page, stack: dict[str, Any]) -> None:
    tab.goto("/explorer/")
    idx = stack["index"]
    assert tab.search(stack["digest"]["email"]) == [idx["email"]]
    tab.shot("explorer-search-digest")
    assert tab.search("sha256:" + stack["digest"]["github"]) == [idx["github"]]
    assert tab.search("alice@example.com") == [idx["email"]]
    assert tab.search("bob@example.com") == [idx["dsse"]]
    assert tab.search(GITHUB_SAN) == [idx["github"]]
    tab.shot("explorer-search-identity")
    assert tab.search(str(idx["dsse"])) == [idx["dsse"]]
    tab.page.click("a.entry-link")
    assert tab.page.url.endswith(f"/explorer/entry/{idx['dsse']}")
    assert "dsse" in tab.page.inner_text("#entry-kind")
    # A query it cannot understand: a friendly page, status 400.
    tab.page.fill("#q", "what is this")
    with tab.page.expect_navigation() as nav:
        tab.page.press("#q", "Enter")
    assert nav.value.status == 400
    assert "not understood" in tab.page.inner_text("#error-message")
    assert [e for e in tab.errors if "status of 400" not in e] == []  # Chromium logs the 400 itself
    tab.errors.clear()


def test_entry_page_decodes_fulcio_extensions(tab: Page, stack: dict[str, Any]) -> None:
    tab.goto(f"/explorer/entry/{stack['index']['github']}")
    assert GITHUB_SAN in tab.page.inner_text("#entry-identity")
    row = tab.page.locator('tr[data-oid="1.3.6.1.4.1.57264.1.12"]')
    assert "Source Repository URI" in row.inner_text() and "https://github.com/octo-org/octo-repo" in row.inner_text()
    issuer = tab.page.locator('tr[data-oid="1.3.6.1.4.1.57264.1.8"]').inner_text()
    assert "Issuer (V2)" in issuer and stack["url"] + "/oidc/github" in issuer
    assert "github-hosted" in tab.page.locator('tr[data-oid="1.3.6.1.4.1.57264.1.11"]').inner_text()
    assert "CT Precertificate SCTs" in tab.page.inner_text("section.signer")
    tab.shot("explorer-entry-github")


@pytest.mark.parametrize("which", ["email", "github", "dsse"])
def test_verify_in_browser_succeeds(tab: Page, stack: dict[str, Any], which: str) -> None:
    tab.goto(f"/explorer/entry/{stack['index'][which]}")
    assert tab.page.is_visible("#verify-button")
    status, steps = tab.verify()
    assert status == "ok", steps
    text = "\n".join(steps)
    assert "\u2717" not in text
    assert "Inclusion proof" in text and "the checkpoint's root" in text
    assert "ECDSA P-256 checkpoint signature verifies" in text
    # Debian's Chromium has Ed25519 in WebCrypto: that line is checked too.
    assert "Ed25519 checkpoint signature verifies" in text
    assert "Verified" in tab.page.inner_text("#verify-outcome")
    if which == "github":
        tab.shot("explorer-verify-ok")


def test_verify_in_browser_fails_on_tampering(tab: Page, stack: dict[str, Any]) -> None:
    path = f"/explorer/entry/{stack['index']['email']}"
    tampers = {
        "proof": "d.proof[0] = d.proof[0].replace(/^./, c => c === '0' ? '1' : '0')",
        "body": "d.body = btoa(atob(d.body).replace('sha256', 'sha257'))",
        "root": "d.checkpoint = d.checkpoint.split('\\n').map((l, i) => i === 2 ? btoa('x'.repeat(32)) : l).join('\\n')",
        "signature": "d.checkpoint = d.checkpoint.replace(/^(\\u2014 \\S+ [A-Za-z0-9+/]{12})(.)/mg, (m, a, c) => a + (c === 'A' ? 'B' : 'A'))",
        "index": "d.logIndex = d.logIndex + 1",
        "key": "d.ecdsaSpki = d.ecdsaSpki.slice(0, 40) + (d.ecdsaSpki[40] === 'A' ? 'B' : 'A') + d.ecdsaSpki.slice(41)",
    }
    for name, change in tampers.items():
        tab.goto(path)
        tab.page.evaluate(
            "change => { const el = document.getElementById('verify-data'); const d = JSON.parse(el.textContent);"
            " (new Function('d', change))(d); el.textContent = JSON.stringify(d); }",
            change,
        )
        status, steps = tab.verify()
        assert status == "fail", (name, steps)
        assert any("\u2717" in s for s in steps), (name, steps)
        assert "FAILED" in tab.page.inner_text("#verify-outcome")
        if name == "proof":
            tab.shot("explorer-verify-tampered")


def test_pages_work_without_javascript(browser: Any, stack: dict[str, Any]) -> None:
    page = Page(browser, stack["url"], javascript=False)
    try:
        page.goto("/explorer/")
        assert page.page.inner_text("#tree-size") == str(stack["size"])
        assert page.search("alice@example.com") == [stack["index"]["email"]]
        assert page.search(GITHUB_SAN) == [stack["index"]["github"]]
        page.page.click("a.entry-link")
        assert page.page.url.endswith(f"/explorer/entry/{stack['index']['github']}")
        assert "Source Repository URI" in page.page.inner_text("section.signer")
        assert not page.page.is_visible("#verify-button")  # nothing to click without JavaScript
        assert "needs JavaScript" in page.page.inner_text("#verify")
        page.shot("explorer-entry-nojs")
    finally:
        page.close()


def test_markup_in_certificates_is_shown_not_run(tab: Page, stack: dict[str, Any]) -> None:
    tab.goto(f"/explorer/entry/{stack['index']['xss']}")
    assert XSS in tab.page.inner_text('tr[data-oid="1.3.6.1.4.1.57264.1.12"]')
    assert XSS in tab.page.inner_text('tr[data-oid="1.3.6.1.4.1.57264.1.1"]')
    assert tab.page.locator("section.signer script, section.signer img").count() == 0
    status, _ = tab.verify()
    assert status == "ok"
    tab.goto("/explorer/search?q=xss@example.com")
    assert tab.page.locator("a.entry-link").all_inner_texts() == [str(stack["index"]["xss"])]
    # The `tab` fixture asserts afterwards that no alert() ran and no CSP violation happened.


def test_certificate_log_pages(tab: Page, stack: dict[str, Any]) -> None:
    tab.goto("/explorer/certificates/")
    rows = tab.page.locator("#recent-entries tbody tr").all_inner_texts()
    assert len(rows) >= 3 and any(GITHUB_SAN in r for r in rows)
    ids = tab.search(GITHUB_SAN)
    assert len(ids) == 1
    tab.page.click("a.entry-link")
    assert "/explorer/certificates/entry/" in tab.page.url
    assert "x509" in tab.page.inner_text("#entry-kind")
    assert "Source Repository URI" in tab.page.inner_text("section.signer")
    status, steps = tab.verify()
    assert status == "ok", steps
    tab.shot("explorer-certificate-entry")


def test_verify_data_matches_the_rekor_api(stack: dict[str, Any]) -> None:
    """The page embeds the same body and proof the Rekor API serves for the entry."""
    import re

    index = stack["index"]["github"]
    page = requests.get(f"{stack['url']}/explorer/entry/{index}", timeout=30).text
    data = json.loads(re.search(r'id="verify-data">(.*?)</script>', page, re.DOTALL).group(1))  # type: ignore[union-attr]
    api = next(iter(requests.get(f"{stack['url']}/api/v1/log/entries", params={"logIndex": index}, timeout=30).json().values()))
    assert data["body"] == api["body"]
    assert data["proof"] == api["verification"]["inclusionProof"]["hashes"]
    assert base64.b64decode(data["body"])
