"""Flask application factory."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, jsonify, request

from tlog import metrics
from tlog.api import errors, fulcio_v2, openapi, ratelimit, rekor_v1, tiles
from tlog.api.state import Services, ca_services, services
from tlog.ca import devoidc
from tlog.config import Settings
from tlog.explorer import views as explorer


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> Flask:
    """Build the app for ``settings``; tests call this directly, ``tlog serve`` once per worker."""
    settings = settings or Settings()
    app = Flask("tlog")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["tlog"] = Services.open(settings, migrate=migrate)
    if settings.log:
        app.extensions["tlog"].log.preload_upper_levels()  # this process serves the entry log's proofs
    errors.register(app)
    ratelimit.install(app, settings)
    app.register_blueprint(openapi.bp)
    if settings.log:
        app.register_blueprint(rekor_v1.bp)
        app.register_blueprint(tiles.make_blueprint("tiles", "", lambda: services().log))
        # A frozen shard keeps its tiles, under /shards/<tree ID hex>/ (its
        # final checkpoint never moves again, so its full tiles stay immutable).
        for shard in app.extensions["tlog"].shards.frozen:
            hex_id = shard.log.tree_id_hex
            app.register_blueprint(tiles.make_blueprint(f"tiles_{hex_id}", f"/shards/{hex_id}", lambda s=shard: s.log))
        app.register_blueprint(explorer.bp)
    svc = app.extensions["tlog"]
    if svc.ca is not None:
        app.register_blueprint(fulcio_v2.bp)
        app.register_blueprint(tiles.make_blueprint("certificate_tiles", "/certificates", lambda: ca_services().log))
        if svc.ca.dev_issuer is not None:
            app.register_blueprint(devoidc.flask_blueprint(svc.ca.dev_issuer))

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.before_request
    def _start_timer() -> None:
        g.tlog_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if (started := g.get("tlog_started")) is not None:
            metrics.HTTP_DURATION.labels(route).observe(time.perf_counter() - started)
        return response

    logging.getLogger("tlog").setLevel(logging.INFO)
    return app
