"""The `tlog` command: help, info, db upgrade, key and origin checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tlog.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_commands_and_serve_options() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for cmd in ("serve", "info", "db"):
        assert cmd in out
    serve_help = CliRunner().invoke(main, ["serve", "--help"]).output
    for opt in ("--host", "--port", "--data-dir", "--database-url", "--workers", "--origin", "--debug", "--ecdsa-key"):
        assert opt in serve_help


def test_info_creates_keys_and_log_then_is_stable(tmp_path: Path, database_url: str) -> None:
    args = ["info", "--data-dir", str(tmp_path / "d"), "--database-url", database_url]
    first = run(*args)
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert info["treeSize"] == 0 and info["origin"].endswith("/tlog")
    assert info["checkpoint"].startswith(info["origin"] + "\n0\n")
    second = json.loads(run(*args).stdout)
    assert second["logID"] == info["logID"] and second["treeID"] == info["treeID"]


def test_db_upgrade_is_idempotent(tmp_path: Path, database_url: str) -> None:
    for _ in range(2):
        res = run("db", "upgrade", "--data-dir", str(tmp_path), "--database-url", database_url)
        assert res.returncode == 0, res.stderr
        assert "schema is current" in res.stdout


def test_origin_cannot_change_after_creation(tmp_path: Path) -> None:
    base = ["info", "--data-dir", str(tmp_path)]
    # `info` has no --origin; create through the app with one origin, then serve with another.
    from tlog.api.state import Services
    from tlog.config import Settings

    Services.open(Settings(data_dir=tmp_path, origin="one.example/log"), migrate=True).engine.dispose()
    res = run("serve", "--data-dir", str(tmp_path), "--origin", "two.example/log", "--port", "0")
    assert res.returncode != 0
    assert "one.example/log" in res.stderr and "does not match" in res.stderr
    assert json.loads(run(*base).stdout)["origin"] == "one.example/log"


@pytest.mark.parametrize("origin", ["has space", "plus+sign", ""])
def test_bad_origin_is_refused(tmp_path: Path, origin: str) -> None:
    res = run("serve", "--data-dir", str(tmp_path), "--origin", origin, "--port", "0")
    assert res.returncode != 0
    assert "origin" in res.stderr


def test_group_readable_key_is_refused(tmp_path: Path) -> None:
    assert run("info", "--data-dir", str(tmp_path)).returncode == 0
    key = tmp_path / "log-ecdsa-p256.pem"
    os.chmod(key, 0o640)
    res = run("info", "--data-dir", str(tmp_path))
    assert res.returncode != 0
    assert "chmod 600" in res.stderr


def test_named_key_file_must_exist(tmp_path: Path) -> None:
    res = run("serve", "--data-dir", str(tmp_path), "--ecdsa-key", str(tmp_path / "missing.pem"), "--port", "0")
    assert res.returncode != 0
    assert "missing.pem" in res.stderr
