"""Rate limits per client address and per signing identity: 429 + Retry-After, nothing changed.

Each test builds its own app with tight limits ("3/minute") through the Flask
test client; client addresses are set with ``environ_base`` (documentation
ranges, nothing is sent anywhere). One test runs a real ``tlog serve`` with the
CLI options.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import speclient
from conftest import LiveServer
from flask import Flask
from limits.storage import MemoryStorage

from tlog.config import Settings

ENTRIES = "/api/v1/log/entries"
SIGNING_CERT = "/api/v2/signingCert"
PUBLIC_URL = "http://127.0.0.1:1"
NO_LIMITS = {
    "submission_rate_limit": None,
    "signing_rate_limit": None,
    "read_rate_limit": None,
    "identity_rate_limit": None,
}
MESSAGE = re.compile(r"^rate limit exceeded: (.+) per (client \((submissions|signing|reads)\)|identity); retry after (\d+) s$")


@pytest.fixture(autouse=True)
def _single_process_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """/metrics of an in-process app renders this process's registry (``tlog serve`` sets this)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Any]:
    apps: list[Flask] = []

    def make(**changes: Any) -> Flask:
        from tlog.api.app import create_app

        app = create_app(settings.replace(**{**NO_LIMITS, **changes}))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["tlog"].engine.dispose()


def submit(client: Any, addr: str = "192.0.2.1", body: dict[str, Any] | None = None, **kw: Any) -> Any:
    if body is None:
        body, _ = speclient.hashedrekord(speclient.make_identity())
    return client.post(ENTRIES, json=body, environ_base={"REMOTE_ADDR": addr}, **kw)


def tree_size(app: Flask) -> int:
    return app.extensions["tlog"].log.latest_head().size  # type: ignore[no-any-return]


def check_refusal(resp: Any, scope: str, limit: str) -> int:
    """A 429 in the API's error shape with an integer Retry-After; returns it."""
    assert resp.status_code == 429, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"code", "message"} and body["code"] == 429
    m = MESSAGE.match(body["message"])
    assert m, body["message"]
    assert m.group(1) == limit
    assert (m.group(3) or "identity") == scope
    retry = resp.headers["Retry-After"]
    assert retry.isdigit() and 1 <= int(retry) <= 60
    assert m.group(4) == retry
    return int(retry)


def sign(client: Any, token: str, addr: str = "192.0.2.1") -> Any:
    return client.post(SIGNING_CERT, json=speclient.csr_request(), headers={"Authorization": f"Bearer {token}"}, environ_base={"REMOTE_ADDR": addr})


def rate_limited_total(text: str, scope: str) -> float:
    m = re.search(rf'^tlog_rate_limited_total\{{scope="{scope}"\}} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


# --- per client address -------------------------------------------------------------------


def test_submissions_over_the_limit_get_429_and_change_nothing(make_app: Any) -> None:
    app = make_app(submission_rate_limit="3/minute")
    client = app.test_client()
    metrics_before = rate_limited_total(client.get("/metrics").get_data(as_text=True), "submissions")
    for i in range(3):
        resp = submit(client)
        assert resp.status_code == 201, resp.get_json()
        assert resp.headers["X-RateLimit-Limit"] == "3"
        assert resp.headers["X-RateLimit-Remaining"] == str(2 - i)
        assert "Retry-After" not in resp.headers
    assert tree_size(app) == 3

    refused_body, _ = speclient.hashedrekord(speclient.make_identity())
    resp = submit(client, body=refused_body)
    check_refusal(resp, "submissions", "3 per minute")
    assert resp.headers["X-RateLimit-Limit"] == "3" and resp.headers["X-RateLimit-Remaining"] == "0"
    assert int(resp.headers["X-RateLimit-Reset"]) > 0
    # The refused request changed nothing: same tree, and the same entry is
    # new (201, not 409) when another client sends it.
    assert tree_size(app) == 3
    assert submit(client, "192.0.2.1", body=refused_body).status_code == 429
    assert submit(client, "192.0.2.2", body=refused_body).status_code == 201
    assert tree_size(app) == 4

    text = client.get("/metrics").get_data(as_text=True)
    assert rate_limited_total(text, "submissions") == metrics_before + 2
    assert 'tlog_http_requests_total{method="POST",route="/api/v1/log/entries",status="429"}' in text


def test_client_addresses_are_counted_apart(make_app: Any) -> None:
    client = make_app(submission_rate_limit="2/minute").test_client()
    for addr in ("198.51.100.7", "198.51.100.8"):
        assert [submit(client, addr).status_code for _ in range(3)] == [201, 201, 429], addr
    # IPv6 counts per /64: two addresses of one /64 share, the next /64 does not.
    assert submit(client, "2001:db8:0:1::1").status_code == 201
    assert submit(client, "2001:db8:0:1::ffff").status_code == 201
    assert submit(client, "2001:db8:0:1:8000::2").status_code == 429
    assert submit(client, "2001:db8:0:2::1").status_code == 201
    # An IPv4-mapped IPv6 address is the IPv4 client.
    assert submit(client, "::ffff:198.51.100.7").status_code == 429


def test_reads_are_limited_apart_from_writes(make_app: Any) -> None:
    app = make_app(submission_rate_limit="3/minute", read_rate_limit="2/minute")
    client = app.test_client()
    addr = {"REMOTE_ADDR": "203.0.113.5"}
    assert client.get("/api/v1/log", environ_base=addr).status_code == 200
    assert client.get("/api/v1/log/publicKey", environ_base=addr).status_code == 200
    # One budget for every read endpoint, POST searches included.
    check_refusal(client.get("/checkpoint", environ_base=addr), "reads", "2 per minute")
    resp = client.post("/api/v1/log/entries/retrieve", json={"logIndexes": [0]}, environ_base=addr)
    check_refusal(resp, "reads", "2 per minute")
    # Out of reads, the same client still submits; health and metrics are never limited.
    assert submit(client, "203.0.113.5").status_code == 201
    for _ in range(5):
        assert client.get("/healthz", environ_base=addr).status_code == 200
        resp = client.get("/metrics", environ_base=addr)
        assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers
    assert submit(client, "203.0.113.5").status_code == 201
    assert submit(client, "203.0.113.5").status_code == 201
    check_refusal(submit(client, "203.0.113.5"), "submissions", "3 per minute")
    # Another client's reads are untouched by both.
    assert client.get("/api/v1/log", environ_base={"REMOTE_ADDR": "203.0.113.6"}).status_code == 200
    # Unknown paths are 404 and not counted (no route, nothing to protect).
    assert client.get("/nope", environ_base={"REMOTE_ADDR": "203.0.113.6"}).status_code == 404


def test_the_defaults_limit_every_class(settings: Settings) -> None:
    from tlog.api.app import create_app
    from tlog.api.ratelimit import CLASSES

    defaults = Settings()
    assert (defaults.submission_rate_limit, defaults.signing_rate_limit, defaults.read_rate_limit) == ("600/minute", "300/minute", "3000/minute")
    assert defaults.identity_rate_limit == "300/minute" and defaults.rate_limit_storage == "memory://"
    app = create_app(settings.replace(dev_oidc=True, public_url=PUBLIC_URL))
    try:
        # The classified routes exist with these exact rules (a renamed route would silently become a read).
        rules = {(method, rule.rule) for rule in app.url_map.iter_rules() for method in rule.methods or ()}
        assert set(CLASSES) <= rules
        client = app.test_client()
        remote = {"REMOTE_ADDR": "192.0.2.1"}
        assert submit(client).headers["X-RateLimit-Limit"] == "600"
        assert client.get("/api/v1/log", environ_base=remote).headers["X-RateLimit-Limit"] == "3000"
        assert client.get("/api/v2/trustBundle", environ_base=remote).headers["X-RateLimit-Limit"] == "3000"
        token = app.extensions["tlog"].ca.dev_issuer.mint("defaults@example.com")
        resp = sign(client, token)
        assert resp.status_code == 200 and resp.headers["X-RateLimit-Limit"] == "300"
        # Loopback is exempt by default: local health checks, tools, benchmarks.
        for addr in ("127.0.0.1", "127.8.9.10", "::1"):
            resp = client.get("/api/v1/log", environ_base={"REMOTE_ADDR": addr})
            assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers
    finally:
        app.extensions["tlog"].engine.dispose()


@pytest.mark.parametrize("disabled", [None, "none", "0", "off"])
def test_disabled_limits_never_refuse(make_app: Any, disabled: str | None) -> None:
    app = make_app(submission_rate_limit=disabled, read_rate_limit=disabled)
    client = app.test_client()
    for _ in range(8):
        resp = client.get("/api/v1/log")
        assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers
    assert [submit(client).status_code for _ in range(5)] == [201] * 5


def test_one_class_disabled_leaves_the_others(make_app: Any) -> None:
    client = make_app(submission_rate_limit="none", read_rate_limit="1/minute").test_client()
    assert [submit(client).status_code for _ in range(4)] == [201] * 4
    assert client.get("/api/v1/log", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200
    assert client.get("/api/v1/log", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 429


def test_exempt_networks(make_app: Any) -> None:
    app = make_app(
        dev_oidc=True, public_url=PUBLIC_URL, submission_rate_limit="1/minute", identity_rate_limit="1/minute",
        rate_limit_exempt=("198.51.100.0/24", "2001:db8:1::/48"),
    )  # fmt: skip
    client = app.test_client()
    for addr in ("198.51.100.1", "198.51.100.254", "2001:db8:1:2::3", "::ffff:198.51.100.9"):
        assert [submit(client, addr).status_code for _ in range(3)] == [201] * 3, addr
    # Loopback is no longer exempt once the list is set.
    assert [submit(client, addr).status_code for addr in ("127.0.0.1", "127.0.0.1")] == [201, 429]
    assert [submit(client, "198.51.101.1").status_code for _ in range(2)] == [201, 429]
    # The identity limit applies whatever the address.
    dev = app.extensions["tlog"].ca.dev_issuer
    assert sign(client, dev.mint("exempt@example.com"), "198.51.100.1").status_code == 200
    check_refusal(sign(client, dev.mint("exempt@example.com"), "198.51.100.1"), "identity", "1 per minute")


# --- behind proxies -----------------------------------------------------------------------


def test_forwarded_for_is_ignored_unless_configured(make_app: Any) -> None:
    client = make_app(read_rate_limit="2/minute").test_client()
    codes = [
        client.get("/api/v1/log", headers={"X-Forwarded-For": f"198.51.100.{i}"}, environ_base={"REMOTE_ADDR": "192.0.2.50"}).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429], "a client picked its own address with X-Forwarded-For"


def test_trusted_proxy_forwards_the_client_address(make_app: Any) -> None:
    client = make_app(read_rate_limit="2/minute", trust_proxy_headers=1).test_client()
    proxy = {"REMOTE_ADDR": "192.0.2.200"}

    def get(xff: str, environ: dict[str, str] = proxy) -> int:
        return client.get("/api/v1/log", headers={"X-Forwarded-For": xff}, environ_base=environ).status_code  # type: ignore[no-any-return]

    assert [get("198.51.100.1") for _ in range(3)] == [200, 200, 429]
    # Another client behind the same proxy has its own budget ...
    assert get("198.51.100.2") == 200
    # ... and so does one behind another instance of the proxy.
    assert get("198.51.100.1", {"REMOTE_ADDR": "192.0.2.201"}) == 429
    # With one trusted proxy only the last (proxy-appended) address counts:
    # what the client put in front of it is ignored.
    assert get("203.0.113.99, 198.51.100.1") == 429
    assert get("203.0.113.98, 198.51.100.3") == 200


# --- per identity on the CA ---------------------------------------------------------------


def test_identity_limit_on_the_ca(make_app: Any) -> None:
    app = make_app(dev_oidc=True, public_url=PUBLIC_URL, identity_rate_limit="2/minute", signing_rate_limit="100/minute")
    client = app.test_client()
    ca = app.extensions["tlog"].ca
    alice, bob = ca.dev_issuer.mint("alice@example.com"), ca.dev_issuer.mint("bob@example.com")
    metrics_before = rate_limited_total(client.get("/metrics").get_data(as_text=True), "identity")

    assert sign(client, alice, "192.0.2.1").status_code == 200
    assert sign(client, alice, "192.0.2.2").status_code == 200
    logged = ca.log.latest_head().size
    # The identity's budget spans client addresses.
    resp = sign(client, alice, "192.0.2.3")
    check_refusal(resp, "identity", "2 per minute")
    assert resp.headers["X-RateLimit-Limit"] == "2" and resp.headers["X-RateLimit-Remaining"] == "0"
    # A fresh token for the same identity does not help; nothing was issued or logged.
    check_refusal(sign(client, ca.dev_issuer.mint("alice@example.com"), "192.0.2.1"), "identity", "2 per minute")
    assert ca.log.latest_head().size == logged
    # Another identity from the same address still gets certificates.
    assert sign(client, bob, "192.0.2.3").status_code == 200
    # Same subject from another issuer is another identity.
    assert sign(client, ca.dev_issuer.mint("octo/alice", type="github"), "192.0.2.3").status_code == 200
    # A token that does not verify is refused before it could count against anyone.
    resp = client.post(SIGNING_CERT, json=speclient.csr_request(), headers={"Authorization": "Bearer not.a.token"})
    assert resp.status_code == 401
    assert ca.log.latest_head().size == logged + 2

    text = client.get("/metrics").get_data(as_text=True)
    assert rate_limited_total(text, "identity") == metrics_before + 2


def test_signing_has_its_own_per_address_limit(make_app: Any) -> None:
    app = make_app(dev_oidc=True, public_url=PUBLIC_URL, signing_rate_limit="2/minute", submission_rate_limit="2/minute")
    client = app.test_client()
    dev = app.extensions["tlog"].ca.dev_issuer
    assert sign(client, dev.mint("a@example.com")).status_code == 200
    assert sign(client, dev.mint("b@example.com")).status_code == 200
    check_refusal(sign(client, dev.mint("c@example.com")), "signing", "2 per minute")
    assert sign(client, dev.mint("c@example.com"), "192.0.2.9").status_code == 200
    assert submit(client).status_code == 201  # the log's budget is separate


# --- the counter store --------------------------------------------------------------------


class BrokenStorage(MemoryStorage):
    """A store that is down: every call fails as a network store's would."""

    STORAGE_SCHEME = ["tlogtest-broken"]

    def incr(self, *a: Any, **kw: Any) -> int:
        raise ConnectionError("store down")

    def get(self, *a: Any, **kw: Any) -> int:
        raise ConnectionError("store down")

    def acquire_entry(self, *a: Any, **kw: Any) -> bool:
        raise ConnectionError("store down")

    def get_moving_window(self, *a: Any, **kw: Any) -> tuple[float, int]:
        raise ConnectionError("store down")

    def check(self) -> bool:
        return False


def test_a_dead_store_falls_back_to_per_process_counting(make_app: Any) -> None:
    app = make_app(
        dev_oidc=True, public_url=PUBLIC_URL, submission_rate_limit="2/minute", identity_rate_limit="1/minute",
        rate_limit_storage="tlogtest-broken://",
    )  # fmt: skip
    client = app.test_client()
    assert [submit(client).status_code for _ in range(3)] == [201, 201, 429]
    dev = app.extensions["tlog"].ca.dev_issuer
    assert sign(client, dev.mint("x@example.com")).status_code == 200
    check_refusal(sign(client, dev.mint("x@example.com")), "identity", "1 per minute")


class FlakyStorage(MemoryStorage):
    """A store that is down while ``down`` is set, and keeps its counts otherwise."""

    STORAGE_SCHEME = ["tlogtest-flaky"]
    down = True

    def incr(self, *a: Any, **kw: Any) -> int:
        if FlakyStorage.down:
            raise ConnectionError("store down")
        return super().incr(*a, **kw)


def test_the_shared_store_is_used_again_once_it_answers(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Down: per-process counts and 429s still apply; back: counting returns to the store."""
    from tlog.api import ratelimit

    monkeypatch.setattr(ratelimit, "STORE_RETRY_SECONDS", 0.3)
    monkeypatch.setattr(FlakyStorage, "down", True)
    app = make_app(read_rate_limit="3/minute", rate_limit_storage="tlogtest-flaky://")
    client = app.test_client()
    get = lambda addr: client.get("/api/v1/log", environ_base={"REMOTE_ADDR": addr}).status_code  # noqa: E731
    assert [get("192.0.2.1") for _ in range(4)] == [200, 200, 200, 429]  # counted in memory meanwhile
    store = app.extensions[ratelimit.EXTENSION].counters.primary.storage
    monkeypatch.setattr(FlakyStorage, "down", False)
    time.sleep(0.4)
    assert [get("192.0.2.2") for _ in range(4)] == [200, 200, 200, 429]
    assert any("192.0.2.2" in k for k in store.storage), "the store that came back was not used"
    assert not any("192.0.2.1" in k for k in store.storage)


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_the_memory_store_starts_no_threads_and_still_expires(monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    """One key per identity must not cost a thread per request (limits' own store starts one
    every 10 ms under load): counting starts none, and old keys still go away."""
    import threading

    from limits import parse

    from tlog.api import ratelimit

    monkeypatch.setattr(ratelimit.SweepingMemoryStorage, "SWEEP_SECONDS", 0.3)
    counters = ratelimit.Counters("memory://", strategy)
    store = counters.primary.storage
    assert isinstance(store, ratelimit.SweepingMemoryStorage)
    item = parse("2/second")
    started = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (started.append(self), real_start(self))[1])
    for i in range(300):
        time.sleep(0.001) if i % 50 == 0 else None
        assert counters.hit(item, "identity", f"id{i}")[0]
    assert counters.hit(item, "identity", "id0")[0] and not counters.hit(item, "identity", "id0")[0]
    assert started == []
    live = lambda: len(store.storage) + sum(1 for events in store.events.values() if events)  # noqa: E731
    assert live() >= 300
    time.sleep(2.2)  # every window is over (sliding-window-counter keeps two), and a sweep is due
    assert counters.hit(item, "identity", "fresh")[0]
    assert started == []
    assert live() <= 2, "expired keys were not swept"


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
def test_other_strategies(make_app: Any, strategy: str) -> None:
    client = make_app(read_rate_limit="2/minute", rate_limit_strategy=strategy).test_client()
    codes = [client.get("/api/v1/log", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_bad_settings_are_refused_before_serving() -> None:
    from tlog.api.ratelimit import check_settings

    for changes, text in [
        ({"read_rate_limit": "lots"}, "read-rate-limit"),
        ({"identity_rate_limit": "0/minute"}, "identity-rate-limit"),
        ({"rate_limit_strategy": "token-bucket"}, "strategy"),
        ({"rate_limit_storage": "nosuch://host"}, "storage"),
        ({"rate_limit_exempt": ("10.0.0.0/33",)}, "rate-limit-exempt"),
    ]:
        with pytest.raises(ValueError, match=text):
            check_settings(Settings().replace(**changes))
    check_settings(Settings().replace(rate_limit_storage="nosuch://host", **NO_LIMITS))  # unused store


# --- a real server ------------------------------------------------------------------------


def test_cli_options_on_a_live_server(settings: Settings) -> None:
    from tlog.ca.devoidc import DevIssuer

    server = LiveServer(
        settings,
        workers=1,  # memory:// counts per process: one worker makes the limits exact
        threads=4,
        extra_args=(
            "--dev-oidc", "--submission-rate-limit", "2/minute", "--read-rate-limit", "4/minute",
            "--identity-rate-limit", "1/minute", "--signing-rate-limit", "none", "--trust-proxy-headers", "1",
            "--rate-limit-exempt", "none",  # the test client is on loopback
        ),
    ).start()  # fmt: skip
    try:
        url = server.url
        codes = [requests.post(url + ENTRIES, json=speclient.hashedrekord(speclient.make_identity())[0], timeout=30).status_code for _ in range(3)]
        assert codes == [201, 201, 429]
        resp = requests.post(url + ENTRIES, json=speclient.hashedrekord(speclient.make_identity())[0], timeout=30)
        assert resp.status_code == 429 and resp.headers["Retry-After"].isdigit()
        assert resp.json()["message"].startswith("rate limit exceeded: 2 per minute per client (submissions); retry after ")
        # --trust-proxy-headers 1: the forwarded address is the client.
        forwarded = {"X-Forwarded-For": "198.51.100.20"}
        resp = requests.post(url + ENTRIES, json=speclient.hashedrekord(speclient.make_identity())[0], headers=forwarded, timeout=30)
        assert resp.status_code == 201, resp.text

        dev = DevIssuer.load(settings.data_dir)
        token = dev.mint("live@example.com")
        body = speclient.csr_request()
        assert requests.post(url + SIGNING_CERT, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
        resp = requests.post(url + SIGNING_CERT, json=speclient.csr_request(), headers={"Authorization": f"Bearer {token}", **forwarded}, timeout=30)
        assert resp.status_code == 429 and resp.json()["message"].startswith("rate limit exceeded: 1 per minute per identity")

        # Health checks are exempt from the 4/minute read limit.
        assert all(requests.get(url + "/healthz", timeout=10).status_code == 200 for _ in range(6))
        assert [requests.get(url + "/api/v1/log", timeout=10).status_code for _ in range(5)] == [200] * 4 + [429]
        text = requests.get(url + "/metrics", timeout=10).text
        assert rate_limited_total(text, "submissions") == 2
        assert rate_limited_total(text, "identity") == 1
        assert rate_limited_total(text, "reads") == 1
    finally:
        server.stop()


def test_cli_refuses_a_bad_limit(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from tlog.cli import main

    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path), "--read-rate-limit", "fast"])
    assert result.exit_code == 2 and "is not a rate limit" in result.output
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path), "--rate-limit-storage", "nosuch://x"])
    assert result.exit_code == 2 and "rate limit storage" in result.output
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path), "--rate-limit-exempt", "127.0.0.1,localhost"])
    assert result.exit_code == 2 and "'localhost' is not an IP address" in result.output
