"""The ``tlog`` command: serve the log, manage its database, print its identity."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from tlog import __version__
from tlog.config import DEFAULT_DATA_DIR, Settings
from tlog.errors import TlogError

_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    envvar="TLOG_DATA_DIR",
    help="Directory for the SQLite database and the key files.",
)
_database_url = click.option(
    "--database-url",
    envvar="TLOG_DATABASE_URL",
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. Default: SQLite file in the data dir.",
)


def _settings(data_dir: Path, database_url: str | None, **kw: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, **kw)  # type: ignore[arg-type]


def _rate_limit(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # tlog.api.ratelimit imports no prometheus_client, which tlog.server must import first.
    from tlog.api.ratelimit import normalize_limit

    try:
        return normalize_limit(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _networks(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    from tlog.api.ratelimit import parse_networks

    try:
        return parse_networks(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _rate_limit_option(name: str, default: str | None, what: str) -> Any:
    return click.option(
        name, default=default, show_default=True, envvar="TLOG_" + name[2:].upper().replace("-", "_"),
        callback=_rate_limit, help=f"Per client address: {what} ('10/second;300/hour' for several; 'none' disables).",
    )  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tlog")
def main() -> None:
    """tlog: an RFC 6962 transparency log speaking the Rekor v1 API and C2SP tlog-tiles."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="TLOG_HOST", help="Address to listen on.")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(0, 65535), envvar="TLOG_PORT")
@_data_dir
@_database_url
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Worker processes. Default: two per core.")
@click.option("--threads", type=click.IntRange(1, 1024), default=16, show_default=True, help="Threads per worker.")
@click.option("--origin", envvar="TLOG_ORIGIN", help="Checkpoint origin when the log is created. Default: '<hostname>/tlog'.")
@click.option("--ecdsa-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM ECDSA P-256 log key (default: generated in the data dir).")
@click.option("--ed25519-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM Ed25519 checkpoint key (default: generated in the data dir).")
@click.option("--max-request-bytes", type=click.IntRange(1024, 64 << 20), default=128 * 1024, show_default=True)
@click.option(
    "--max-attestation-bytes", type=click.IntRange(1, 64 << 20), default=Settings.max_attestation_bytes, show_default=True,
    help="Largest DSSE payload a dsse entry may carry (refused with 413 above it; the log keeps every payload).",
)  # fmt: skip
@click.option("--log/--no-log", "serve_log", default=True, show_default=True, help="Serve the entry log (Rekor v1 API and tiles).")
@click.option("--ca/--no-ca", default=True, show_default=True, help="Serve the Fulcio-compatible signing CA and its certificate log.")
@click.option(
    "--oidc-issuers",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="TLOG_OIDC_ISSUERS",
    help="YAML file of allowed OIDC issuers. Default: GitHub Actions, GitLab.com, Google, sigstore.dev.",
)
@click.option("--dev-oidc", is_flag=True, help="Also run and trust a development OIDC issuer at <public-url>/oidc. Never in production.")
@click.option("--public-url", envvar="TLOG_PUBLIC_URL", help="URL clients reach this server at. Default: http://<host>:<port>.")
@click.option(
    "--witnesses",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="TLOG_WITNESSES",
    help="File of '<url> <vkey>' lines: witnesses whose cosignatures to collect onto checkpoints.",
)
@_rate_limit_option("--submission-rate-limit", Settings.submission_rate_limit, "POST /api/v1/log/entries")
@_rate_limit_option("--signing-rate-limit", Settings.signing_rate_limit, "POST /api/v2/signingCert")
@_rate_limit_option("--read-rate-limit", Settings.read_rate_limit, "every other request (/healthz and /metrics are exempt)")
@click.option(
    "--identity-rate-limit", default=Settings.identity_rate_limit, show_default=True, envvar="TLOG_IDENTITY_RATE_LIMIT",
    callback=_rate_limit, help="Per signing identity (OIDC issuer + SAN) on the CA, after the token verifies ('none' disables).",
)  # fmt: skip
@click.option(
    "--rate-limit-exempt", default=",".join(Settings.rate_limit_exempt), show_default=True, envvar="TLOG_RATE_LIMIT_EXEMPT",
    metavar="CIDRS", callback=_networks, help="Client networks, comma-separated, exempt from the per-address limits ('none' exempts nobody).",
)  # fmt: skip
@click.option(
    "--rate-limit-storage", default=Settings.rate_limit_storage, show_default=True, envvar="TLOG_RATE_LIMIT_STORAGE",
    help="Counter store (limits URI). memory:// counts per worker process; use a shared store (redis://host:6379) to count across workers and frontends.",
)  # fmt: skip
@click.option(
    "--rate-limit-strategy", type=click.Choice(["fixed-window", "moving-window", "sliding-window-counter"]),
    default=Settings.rate_limit_strategy, show_default=True, envvar="TLOG_RATE_LIMIT_STRATEGY",
)  # fmt: skip
@click.option(
    "--trust-proxy-headers", type=click.IntRange(min=0), default=0, show_default=True, envvar="TLOG_TRUST_PROXY_HEADERS", metavar="N",
    help="Behind N proxies: take the client address from X-Forwarded-For (the N-th from the right). Larger than the real number of proxies lets clients pick their address.",
)  # fmt: skip
@click.option(
    "--batch-interval-ms", type=click.FloatRange(0, 1000), default=Settings.batch_interval * 1000, show_default=True,
    help="Under load, start an integration batch at most this often, so one commit and one signed checkpoint serve more entries (0: as soon as the last one ends).",
)  # fmt: skip
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@click.option("--debug", is_flag=True, help="Run Flask's single-process development server instead of gunicorn.")
def serve(
    host: str,
    port: int,
    data_dir: Path,
    database_url: str | None,
    workers: int | None,
    threads: int,
    origin: str | None,
    ecdsa_key: Path | None,
    ed25519_key: Path | None,
    max_request_bytes: int,
    max_attestation_bytes: int,
    serve_log: bool,
    ca: bool,
    oidc_issuers: Path | None,
    dev_oidc: bool,
    public_url: str | None,
    witnesses: Path | None,
    submission_rate_limit: str | None,
    signing_rate_limit: str | None,
    read_rate_limit: str | None,
    identity_rate_limit: str | None,
    rate_limit_exempt: tuple[str, ...],
    rate_limit_storage: str,
    rate_limit_strategy: str,
    trust_proxy_headers: int,
    batch_interval_ms: float,
    access_log: bool,
    debug: bool,
) -> None:
    """Serve the log (Rekor v1 API, tiles, checkpoints) and the CA (Fulcio v2 API) with gunicorn.

    --no-log or --no-ca deploy either on its own; both share the database.
    """
    if not serve_log and not ca:
        raise click.UsageError("--no-log and --no-ca together would serve nothing")
    settings = _settings(
        data_dir,
        database_url,
        origin=origin,
        ecdsa_key=ecdsa_key,
        ed25519_key=ed25519_key,
        max_request_bytes=max_request_bytes,
        max_attestation_bytes=max_attestation_bytes,
        log=serve_log,
        ca=ca,
        oidc_issuers=oidc_issuers,
        dev_oidc=dev_oidc,
        witnesses=witnesses,
        submission_rate_limit=submission_rate_limit,
        signing_rate_limit=signing_rate_limit,
        read_rate_limit=read_rate_limit,
        identity_rate_limit=identity_rate_limit,
        rate_limit_exempt=rate_limit_exempt,
        rate_limit_storage=rate_limit_storage,
        rate_limit_strategy=rate_limit_strategy,
        trust_proxy_headers=trust_proxy_headers,
        batch_interval=batch_interval_ms / 1000,
        public_url=(public_url or f"http://{'[' + host + ']' if ':' in host else host}:{port}").rstrip("/"),
    )
    from tlog.api.ratelimit import check_settings

    try:
        check_settings(settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        if debug:
            from tlog.api.app import create_app
            from tlog.server import start_witness_collector

            start_witness_collector(settings)
            create_app(settings).run(host=host, port=port, debug=True, use_reloader=False, threaded=True)
        else:
            from tlog.server import default_workers, serve as run

            run(settings, host=host, port=port, workers=workers or default_workers(), threads=threads, access_log=access_log)
    except TlogError as exc:
        raise click.ClickException(exc.message) from None


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@_data_dir
@_database_url
def db_upgrade(data_dir: Path, database_url: str | None) -> None:
    """Create or upgrade the schema to the newest migration."""
    from tlog.storage import db as storage_db

    engine = storage_db.create_engine(_settings(data_dir, database_url).resolved_database_url)
    storage_db.upgrade(engine)
    click.echo("schema is current")


@main.command()
@_data_dir
@_database_url
def info(data_dir: Path, database_url: str | None) -> None:
    """Print the log's identity and latest checkpoint as JSON."""
    from tlog.api.state import Services

    try:
        svc = Services.open(_settings(data_dir, database_url), migrate=True)
    except TlogError as exc:
        raise click.ClickException(exc.message) from None
    head = svc.log.latest_head()
    json.dump(
        {
            "origin": svc.log.info.origin,
            "treeID": str(svc.log.info.tree_id),
            "logID": svc.log.log_id_hex,
            "treeSize": head.size,
            "rootHash": head.root_hash.hex(),
            "publicKey": svc.log.keys.public_key_pem.decode(),
            "vkeys": svc.log.vkeys,
            "checkpoint": head.checkpoint,
            "indexOffset": svc.log.index_offset,
            "inactiveShards": [
                {
                    "origin": s.log.info.origin,
                    "treeID": str(s.log.info.tree_id),
                    "logID": s.log.log_id_hex,
                    "treeSize": s.size,
                    "indexOffset": s.offset,
                }
                for s in svc.shards.frozen
            ],
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


@main.command()
@_data_dir
@_database_url
@click.option("--origin", help="Checkpoint origin of the new shard (must differ from every earlier one). "
              "Omit to finish an interrupted rotation.")
def rotate(data_dir: Path, database_url: str | None, origin: str | None) -> None:
    """Rotate the entry log's keys: freeze the active shard, start a new one.

    The frozen shard stays readable under its old keys (kept in
    DATA_DIR/shards/<tree ID>/) and its entries keep their log indexes; the
    new shard, with new keys generated 0600 and the new origin, continues the
    global log index after it. Restart every `tlog serve` on this log
    afterwards (until then they answer 503 to submissions), copy the new key
    files to every frontend's data directory, and publish the new trust
    config (`tlog trust-config`), which lists every shard's key.
    """
    from tlog.rotation import rotate as do_rotate
    from tlog.storage import db as storage_db

    settings = _settings(data_dir, database_url)
    engine = storage_db.create_engine(settings.resolved_database_url)
    try:
        storage_db.upgrade(engine)
        done = do_rotate(engine, data_dir, origin=origin)
    except TlogError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()
    click.echo(
        f"frozen: {done.frozen.origin} (treeID {done.frozen.tree_id}, {done.frozen_size} entries)\n"
        f"active: {done.active.origin} (treeID {done.active.tree_id}, logID {done.active.log_id.hex()})\n"
        "restart every server on this log; then publish the new trust config (tlog trust-config)"
    )


@main.command("dev-token")
@_data_dir
@click.option("--subject", required=True, help="Email address (type email) or GitHub repository owner/name (type github).")
@click.option("--type", "kind", type=click.Choice(["email", "github"]), default="email", show_default=True)
@click.option("--audience", default="sigstore", show_default=True)
@click.option("--lifetime", type=click.IntRange(1, 86400), default=600, show_default=True, help="Seconds.")
def dev_token(data_dir: Path, subject: str, kind: str, audience: str, lifetime: int) -> None:
    """Print an identity token from the development OIDC issuer of a server started with --dev-oidc."""
    from tlog.ca.devoidc import DevIssuer

    try:
        dev = DevIssuer.load(data_dir)
        click.echo(dev.mint(subject, type=kind, audience=audience, lifetime=lifetime))  # type: ignore[arg-type]
    except TlogError as exc:
        raise click.ClickException(exc.message) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("trust-config")
@click.option("--url", required=True, help="Public base URL of the deployment (no path, no trailing slash).")
@_data_dir
@_database_url
@click.option("--operator", default="tlog", show_default=True, help="Operator name for the signing config's services.")
@click.option("--oidc-url", help="OIDC issuer for interactive sign-in, listed in the signing config.")
def trust_config(data_dir: Path, database_url: str | None, url: str, operator: str, oidc_url: str | None) -> None:
    """Print the ClientTrustConfig JSON for `sigstore --trust-config FILE ...`."""
    from tlog.api.state import Services
    from tlog.trustconfig import client_trust_config

    try:
        svc = Services.open(_settings(data_dir, database_url), migrate=True)
    except TlogError as exc:
        raise click.ClickException(exc.message) from None
    if svc.ca is None:  # pragma: no cover - Settings() enables the CA
        raise click.ClickException("the CA is disabled")
    config = client_trust_config(url, svc.shards, svc.ca.keys, operator=operator, oidc_url=oidc_url)
    json.dump(config, sys.stdout, indent=2)
    sys.stdout.write("\n")
    svc.engine.dispose()


@main.command()
@_data_dir
@_database_url
@click.option("--count", type=click.IntRange(1), help="Entries to add (required for synthetic; with FILE, at most this many).")
@click.option("--batch", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True, help="Entries per transaction and signed checkpoint.")
@click.option("--source", default="synthetic", show_default=True, help="'synthetic' (fresh signed hashedrekord entries) or a JSON-lines FILE of proposed entries.")
@click.option("--jobs", type=click.IntRange(1, 256), default=None, help="Worker processes that build and verify entries. Default: one per core.")
@click.option("--origin", envvar="TLOG_ORIGIN", help="Checkpoint origin if the log is created. Default: '<hostname>/tlog'.")
@click.option("--ecdsa-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM ECDSA P-256 log key (default: in the data dir).")
@click.option("--ed25519-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM Ed25519 checkpoint key (default: in the data dir).")
@click.option(
    "--sets/--no-sets",
    default=False,
    show_default=True,
    help="Sign and store each entry's SET as a submission's is (about a quarter slower); without, reads sign one each time.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
def load(
    data_dir: Path,
    database_url: str | None,
    count: int | None,
    batch: int,
    source: str,
    jobs: int | None,
    origin: str | None,
    ecdsa_key: Path | None,
    ed25519_key: Path | None,
    sets: bool,
    progress: bool,
) -> None:
    """Bulk-append entries through the server's integration path (one transaction and checkpoint per batch).

    Safe next to a running server: batches take the same writer lock as its sequencer.
    """
    from tlog import bulk

    if source == "synthetic" and count is None:
        raise click.UsageError("--count is required with --source synthetic")
    path = None if source == "synthetic" else Path(source)
    if path is not None and not path.is_file():
        raise click.UsageError(f"--source: {source} is neither 'synthetic' nor a readable file")
    processes = jobs or bulk.default_processes()
    try:
        tlog = bulk.open_log(data_dir, database_url, origin=origin, ecdsa_key=ecdsa_key, ed25519_key=ed25519_key)
        before = tlog.latest_head().size
        batches = (
            bulk.synthetic_batches(count, batch, processes=processes)  # type: ignore[arg-type]
            if path is None
            else bulk.file_batches(path, batch, processes=processes, limit=count)
        )
        result = bulk.load(tlog, batches, total=count, progress=progress, with_sets=sets)
    except TlogError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(
        f"added {result.added:,} entries ({result.duplicates:,} already present) in {result.batches:,} batches, "
        f"{result.seconds:.1f} s ({result.rate:,.0f} entries/s); tree size {before:,} -> {result.size:,}, "
        f"root {result.root_hash.hex()}"
    )
    tlog.engine.dispose()


from tlog.verify.command import verify_command  # noqa: E402 - after the group it joins

main.add_command(verify_command)


if __name__ == "__main__":  # pragma: no cover
    main()
