"""``tlog-monitor``: audit transparency logs, alert, and (with ``--listen``) serve
metrics, the witness and the gossip.

::

    tlog-monitor --log URL [--log URL ...] --state-dir DIR [--once] [--interval SECONDS]
                 [--watch FILE] [--publisher-policy FILE] [--alerts FILE] [--webhook URL]
                 [--listen HOST:PORT] [--peer URL ...] [--trust-config FILE]
                 [--log-key URL=VKEY ...] [--progress/--no-progress]
    tlog-monitor vkey --state-dir DIR

The group runs the monitor when no subcommand is given (``invoke_without_command``),
so both forms above work. Exit statuses of ``--once``: see :mod:`monitor.daemon`
(0 verified, 1 verification failed, 3 could not audit; 2 is a usage error).
"""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import requests
from requests.adapters import HTTPAdapter

from monitor.alerts import AlertSink
from monitor.client import MODES, USER_AGENT, LogClient
from monitor.daemon import LogTarget, MonitorContext, run
from monitor.state import StateError, StateStore
from monitor.verify import Pins, pins_from_trust_config
from tlog.note import NoteError

__all__ = ["main"]

log = logging.getLogger("monitor")


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--log", "logs", multiple=True, metavar="URL", help="Log to audit (repeatable). Default: the trust config's tlogs.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help="Directory of the monitor's state (required).")
@click.option("--once", is_flag=True, help="One pass over every log, then exit 0 (verified), 1 (verification failed) or 3 (could not audit).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True, help="Seconds between passes.")
@click.option("--watch", "watch_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Watchlist YAML: alert when these identities appear.")
@click.option("--publisher-policy", "publisher_policy", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Trusted-publisher policy YAML: alert when a package's distribution is signed by anyone else.")
@click.option("--alerts", "alerts_path", default="-", show_default=True, help="File to append JSON-line alerts to ('-' for stdout).")
@click.option("--webhook", metavar="URL", help="Also POST every alert as JSON to this URL.")
@click.option("--listen", metavar="HOST:PORT", help="Serve /metrics, the witness and the gossip on this address.")
@click.option("--peer", "peers", multiple=True, metavar="URL", help="Monitor to gossip checkpoints with (repeatable).")
@click.option("--trust-config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Sigstore ClientTrustConfig or TrustedRoot JSON pinning the logs' keys.")
@click.option("--log-key", "log_keys", multiple=True, metavar="URL=VKEY", help="Pin a C2SP vkey for a log (repeatable).")
@click.option("--api", "mode", type=click.Choice(MODES), default="auto", show_default=True, help="Log API: C2SP tiles, Rekor v1, or detect.")
@click.option("--unreachable-threshold", type=click.IntRange(min=1), default=3, show_default=True, help="Failed attempts in a row before an 'unreachable' alert.")
@click.option("--retry-delay", type=click.FloatRange(min=0.0), default=1.0, show_default=True, help="First retry delay (seconds) for an unreachable log; doubles per attempt.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="HTTP timeout per request, in seconds.")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True, help="Entry requests in flight per log.")
@click.option("--progress/--no-progress", default=None, help="Progress bars on stderr while catching up. Default: when stderr is a terminal.")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v: info, -vv: debug).")
@click.pass_context
def main(click_ctx: click.Context, **options: Any) -> None:
    """Audit transparency logs: verify signed checkpoints, consistency and every entry."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(options["verbose"], logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if click_ctx.invoked_subcommand is not None:
        return
    if options["state_dir"] is None:
        raise click.UsageError("--state-dir is required")
    ctx = _build_context(options)
    if options["listen"] and not options["once"]:
        host, port = _parse_listen(options["listen"])
        from monitor.http import serve

        serve(ctx, host=host, port=port, blueprints=_blueprints)
        return
    if options["listen"]:
        log.warning("--listen is ignored with --once")
    _stop_on_signals(ctx)
    try:
        status = run(ctx, once=options["once"])
    finally:
        ctx.close()
    click_ctx.exit(status)


@main.command()
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def vkey(state_dir: Path) -> None:
    """Print the witness's verifier key (created in the state directory on first use)."""
    witness = _optional_module("monitor.witness")
    if witness is None or not hasattr(witness, "load_or_create_key"):
        raise click.ClickException("the witness (monitor.witness) is not available in this installation")
    key = witness.load_or_create_key(state_dir)
    click.echo(witness.vkey(key))


# --- building the context -------------------------------------------------------------------


def _build_context(options: dict[str, Any]) -> MonitorContext:
    trusted = _load_trust_config(options["trust_config"])
    logs = [u.rstrip("/") for u in options["logs"]] or sorted(trusted)
    if not logs:
        raise click.UsageError("give at least one --log URL (or a --trust-config listing tlogs)")
    pinned = _parse_log_keys(options["log_keys"])
    for url in pinned:
        if url not in logs:
            raise click.UsageError(f"--log-key names {url}, which is not a --log")
    try:
        store = StateStore(options["state_dir"])
    except (StateError, OSError) as exc:
        raise click.ClickException(f"cannot open the state in {options['state_dir']}: {exc}") from None

    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(pool_connections=len(logs), pool_maxsize=max(10, options["parallel"]))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    targets = []
    for url in logs:
        pins = pinned.get(url, Pins())
        if trusted:
            if url in trusted:
                pins = pins | trusted[url]
            else:
                log.warning("%s is not in the trust config; accepting any of its tlog keys", url)
                for p in trusted.values():
                    pins = pins | p
        client = LogClient(url, session, options["timeout"], mode=options["mode"], parallel=options["parallel"])
        targets.append(LogTarget(client, pins or None))

    alerts = AlertSink(options["alerts_path"], options["webhook"])
    ctx = MonitorContext(
        store=store,
        alerts=alerts,
        targets=targets,
        watcher=_load_watcher(options["watch_file"]),
        checks=_load_checks(options["publisher_policy"]),
        progress=_progress(options["progress"]),
        state_dir=options["state_dir"],
        peers=[p.rstrip("/") for p in options["peers"]],
        interval=options["interval"],
        unreachable_threshold=options["unreachable_threshold"],
        retry_delay=options["retry_delay"],
    )
    alerts.listeners.append(ctx.metrics.on_alert)
    if ctx.peers:
        gossip = _optional_module("monitor.gossip")
        if gossip is None or not hasattr(gossip, "install"):
            raise click.ClickException("--peer needs the gossip (monitor.gossip), which is not available")
        ctx.extensions["gossip_blueprint"] = gossip.install(ctx)
    return ctx


def _load_trust_config(path: Path | None) -> dict[str, Pins]:
    if path is None:
        return {}
    try:
        return pins_from_trust_config(json.loads(path.read_text()))
    except (OSError, ValueError, AttributeError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--trust-config") from None


def _parse_log_keys(values: tuple[str, ...]) -> dict[str, Pins]:
    out: dict[str, Pins] = {}
    for value in values:
        url, sep, key = value.rpartition("=")
        if not sep or not url or not key:
            raise click.BadParameter(f"{value!r} is not URL=VKEY", param_hint="--log-key")
        try:
            pins = Pins(vkeys=(key,))
        except NoteError as exc:
            raise click.BadParameter(f"{key!r}: {exc}", param_hint="--log-key") from None
        url = url.rstrip("/")
        out[url] = out.get(url, Pins()) | pins
    return out


def _load_watcher(path: Path | None) -> Any:
    if path is None:
        return None
    watch = _optional_module("monitor.watch")
    if watch is None or not hasattr(watch, "Watchlist"):
        raise click.ClickException("--watch needs the watcher (monitor.watch), which is not available")
    try:
        return watch.Watchlist.load(path)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--watch") from None


def _load_checks(policy: Path | None) -> list[Any]:
    if policy is None:
        return []
    watch = _optional_module("monitor.publisher_watch")
    if watch is None or not hasattr(watch, "PublisherWatch"):
        raise click.ClickException("--publisher-policy needs monitor.publisher_watch, which is not available")
    try:
        return [watch.PublisherWatch.load(policy)]
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--publisher-policy") from None


def _progress(wanted: bool | None) -> Any:
    if wanted is None:
        wanted = sys.stderr.isatty()
    if not wanted:
        return None
    from monitor.progress import progress_bars

    return progress_bars()


def _blueprints(ctx: MonitorContext) -> list[Any]:
    """The witness and gossip blueprints, built in the serving process."""
    bps = []
    witness = _optional_module("monitor.witness")
    if witness is None:
        log.warning("monitor.witness is not available: serving without the witness")
    elif hasattr(witness, "make_blueprint"):
        bps.append(witness.make_blueprint(ctx))
    else:
        bps.append(_witness_blueprint(witness, ctx))
    if ctx.extensions.get("gossip_blueprint") is not None:
        bps.append(ctx.extensions["gossip_blueprint"])
    return bps


def _witness_blueprint(witness: ModuleType, ctx: MonitorContext) -> Any:
    """The witness cosigns the logs this monitor pinned, and more as it pins them."""
    assert ctx.state_dir is not None
    config = witness.WitnessConfig.from_pinned({s.origin: s.vkeys for s in ctx.store.all() if s.vkeys})
    ctx.on_verified.append(lambda _ctx, state: config.add_log(state.origin, state.vkeys) if state.vkeys else None)
    key = witness.load_or_create_key(ctx.state_dir)
    state = witness.WitnessState.open(ctx.state_dir)
    ctx.extensions["witness"] = (config, state, key)
    return witness.witness_blueprint(config, state, key)


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT", param_hint="--listen")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _stop_on_signals(ctx: MonitorContext) -> None:
    def stop(signum: int, _frame: Any) -> None:
        log.warning("signal %d: stopping after the current request", signum)
        ctx.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


if __name__ == "__main__":  # pragma: no cover
    main()
