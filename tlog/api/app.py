"""Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify

from tlog.api import errors, rekor_v1, tiles
from tlog.api.state import Services
from tlog.config import Settings


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> Flask:
    """Build the app for ``settings``; tests call this directly, ``tlog serve`` once per worker."""
    settings = settings or Settings()
    app = Flask("tlog")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["tlog"] = Services.open(settings, migrate=migrate)
    errors.register(app)
    app.register_blueprint(rekor_v1.bp)
    app.register_blueprint(tiles.bp)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    logging.getLogger("tlog").setLevel(logging.INFO)
    return app
