"""Settings: modes, *_FILE secrets, production fails by name, secrets never printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from waifugen_assets.core import redaction
from waifugen_assets.core.config import SETTINGS, ConfigError, Mode, load_settings


def test_sandbox_needs_nothing(tmp_path: Path) -> None:
    s = load_settings({"WAIFUGEN_HOME": str(tmp_path)})
    assert s.mode is Mode.SANDBOX
    assert s.database_url is None
    assert s.ollama_host == "http://127.0.0.1:8765/ollama"
    assert s.home == tmp_path.resolve()
    # a sandbox encryption key is created once and reused
    assert load_settings({"WAIFUGEN_HOME": str(tmp_path)}).secret_keys == s.secret_keys


def test_production_names_every_missing_setting() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"WAIFUGEN_MODE": "production", "OLLAMA_HOST": "http://127.0.0.1:1"})
    message = str(err.value)
    assert "DATABASE_URL" in message and "WAIFUGEN_SECRET_KEY" in message
    assert "OLLAMA_HOST" not in message


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ConfigError, match="WAIFUGEN_MODE='staging'"):
        load_settings({"WAIFUGEN_MODE": "staging"})


def test_file_secrets_are_read_and_redacted(tmp_path: Path) -> None:
    secret_file = tmp_path / "db_url"
    secret_file.write_text("postgresql://app:s3cr3t-pass-123@db:5432/waifugen\n")
    s = load_settings({
        "WAIFUGEN_MODE": "production",
        "DATABASE_URL_FILE": str(secret_file),
        "OLLAMA_HOST": "http://127.0.0.1:11434",
        "WAIFUGEN_SECRET_KEY": "k" * 44,
        "A2E_API_KEY": "sk_live_0123456789",
    })
    assert s.database_url == "postgresql://app:s3cr3t-pass-123@db:5432/waifugen"
    assert "s3cr3t-pass-123" not in redaction.redact(f"connecting to {s.database_url}")
    assert "s3cr3t" not in str(s.public_view())
    assert "k" * 44 not in str(s.public_view()) and "k" * 44 not in repr(s)
    assert "sk_live_0123456789" not in str(s.public_view())
    assert "sk_live_0123456789" not in repr(s)


def test_unreadable_secret_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DATABASE_URL_FILE=.*cannot read"):
        load_settings({"DATABASE_URL_FILE": str(tmp_path / "nope")})


@pytest.mark.parametrize(("name", "value"), [("A2E_MONTHLY_CREDITS", "-5"),
                                             ("A2E_MONTHLY_CREDITS", "lots"),
                                             ("HTTP_TIMEOUT_SECONDS", "0")])
def test_bad_numbers_name_the_setting(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({"WAIFUGEN_HOME": str(tmp_path), name: value})


def test_config_command_masks_secrets(tmp_path: Path) -> None:
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path),
           "DATABASE_URL": "postgresql://app:hunter2-hunter2@127.0.0.1/x"}
    out = subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", "config"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "DATABASE_URL" in out and "hunter2" not in out


def test_production_cli_fails_at_start_with_the_name(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "OLLAMA_HOST")}
    env.update(WAIFUGEN_MODE="production", WAIFUGEN_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", "status"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "DATABASE_URL" in proc.stderr and "Traceback" not in proc.stderr


def test_readme_documents_every_setting(project_dir: Path) -> None:
    readme = (project_dir / "README.md").read_text()
    table = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.M))
    assert {s.name for s in SETTINGS} <= table


def test_redaction_masks_credential_shapes() -> None:
    line = ("GET https://x/y?access_token=abc123def456&a=1 Authorization: Bearer sk_live_abcdef "
            "https://api.telegram.org/bot123456:AAE-xyz_123/sendMessage")
    cleaned = redaction.redact(line)
    assert "abc123def456" not in cleaned and "sk_live_abcdef" not in cleaned
    assert "AAE-xyz_123" not in cleaned and "a=1" in cleaned


@pytest.mark.parametrize(("raw", "expected"), [
    ("postgresql://app:p%40ss%3Aw@db:5432/waifugen",
     "postgresql+psycopg2://app:p%40ss%3Aw@db:5432/waifugen"),
    ("postgres://app@db/waifugen", "postgresql+psycopg2://app@db/waifugen"),
    (" postgresql+psycopg2://app:x@db/w?sslmode=require\n",
     "postgresql+psycopg2://app:x@db/w?sslmode=require"),
])
def test_database_urls_that_work_keep_their_parts(raw: str, expected: str) -> None:
    from resources.database import checked_database_url

    assert checked_database_url(raw) == expected


@pytest.mark.parametrize(("raw", "message"), [
    ("db.example:5432", "is not a database URL"),
    ("sqlite:///waifugen.db", "is a sqlite URL"),
    ("postgresql+asyncpg://app:hunter2-hunter2@db/w", "driver asyncpg"),
])
def test_database_urls_that_cannot_work_name_the_setting(raw: str, message: str) -> None:
    from resources.database import checked_database_url

    with pytest.raises(ConfigError, match="DATABASE_URL") as err:
        checked_database_url(raw)
    assert message in str(err.value) and "hunter2" not in str(err.value)
