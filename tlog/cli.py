"""The ``tlog`` command: serve the log, manage its database, print its identity."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

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
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Worker processes. Default: one per core, at least 2.")
@click.option("--threads", type=click.IntRange(1, 1024), default=16, show_default=True, help="Threads per worker.")
@click.option("--origin", envvar="TLOG_ORIGIN", help="Checkpoint origin when the log is created. Default: '<hostname>/tlog'.")
@click.option("--ecdsa-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM ECDSA P-256 log key (default: generated in the data dir).")
@click.option("--ed25519-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM Ed25519 checkpoint key (default: generated in the data dir).")
@click.option("--max-request-bytes", type=click.IntRange(1024, 64 << 20), default=128 * 1024, show_default=True)
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
    serve_log: bool,
    ca: bool,
    oidc_issuers: Path | None,
    dev_oidc: bool,
    public_url: str | None,
    witnesses: Path | None,
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
        log=serve_log,
        ca=ca,
        oidc_issuers=oidc_issuers,
        dev_oidc=dev_oidc,
        witnesses=witnesses,
        public_url=(public_url or f"http://{'[' + host + ']' if ':' in host else host}:{port}").rstrip("/"),
    )
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
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


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
    config = client_trust_config(url, svc.log, svc.ca.keys, operator=operator, oidc_url=oidc_url)
    json.dump(config, sys.stdout, indent=2)
    sys.stdout.write("\n")
    svc.engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    main()
