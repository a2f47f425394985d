"""Credential ages and validated rotation (waifugen_assets/operations/credentials.py) on the
test database, with the sandbox's A2E, Telegram and RunPod over HTTP and an injected clock."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import stat
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.fernet import Fernet

from waifugen_assets.app.cli_credentials import credentials as credentials_cli
from waifugen_assets.core import schema, tokens
from waifugen_assets.core.config import get_settings, load_settings, read_setting
from waifugen_assets.operations import credentials as creds

T0 = dt.datetime(2026, 9, 15, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
NOT_A_FILE = ("a2e_api_key: set A2E_API_KEY_FILE to the secret file the services read; a "
              "value in the environment cannot be replaced from here")


def a2e_key(label: str = "") -> str:
    return f"sk_sandbox_{label}{uuid.uuid4().hex[:12]}"


def rows(engine: sa.Engine) -> dict[str, dict[str, object]]:
    c = schema.credentials
    with engine.connect() as conn:
        found = conn.execute(sa.select(c).order_by(c.c.name)).mappings().all()
    return {r["name"]: {k: v for k, v in r.items() if k != "id"} for r in found}


def a2e_requests(sandbox_url: str, key: str) -> int:
    """Requests the sandbox's A2E counted for a key (its rate log): proves what was asked."""
    answer = httpx.get(f"{sandbox_url}/a2e/_control/state",
                       headers={"Authorization": f"Bearer {key}"}, timeout=10)
    answer.raise_for_status()
    return int(answer.json()["recent_requests"])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir()
    return tmp_path


@pytest.fixture
def env(home: Path, sandbox, db_url: str) -> dict[str, str]:
    """Sandbox mode against the test sandbox; A2E's key in a secret file; one Fernet key in
    the environment (no key file, so every first sight is the injected clock's)."""
    key_file = home / "secrets" / "a2e_api_key"
    key_file.write_text(a2e_key("old") + "\n")
    key_file.chmod(0o600)
    os.utime(key_file, (T0.timestamp(), T0.timestamp()))  # first sight = T0, whatever the date
    return {"WAIFUGEN_HOME": str(home / "state"), "WAIFUGEN_SANDBOX_URL": sandbox.url,
            "DATABASE_URL": db_url, "A2E_API_KEY_FILE": str(key_file),
            "WAIFUGEN_SECRET_KEY": Fernet.generate_key().decode()}


def settings_of(environ: Mapping[str, str]):
    return load_settings(environ)


def test_ages_and_states_at_74_75_89_90_days(engine: sa.Engine, env: dict[str, str]) -> None:
    env = {**env, "TELEGRAM_WEBHOOK_SECRET": "w" * 40}
    notes = creds.sync(engine, settings_of(env), T0, env)
    key_id = tokens.key_id(env["WAIFUGEN_SECRET_KEY"])
    assert {n.split(":")[0] for n in notes} >= {"a2e_api_key", "telegram_webhook_secret"}
    for days, state in ((0, "ok"), (74, "ok"), (75, "warning"), (89, "warning"),
                        (90, "expired"), (400, "expired")):
        found = {s.name: s for s in creds.status(engine, T0 + days * DAY)}
        assert set(found) == {"a2e_api_key", "telegram_webhook_secret", f"fernet:{key_id}"}
        for s in found.values():
            assert (s.age_days, s.state) == (days, state), s
            assert s.rotate_by == dt.date(2026, 12, 14)
    # A day is a whole day: a minute short of 75 days is still 74 and fine.
    almost = creds.status(engine, T0 + 75 * DAY - dt.timedelta(minutes=1))
    assert {(s.age_days, s.state) for s in almost} == {(74, "ok")}
    found = {s.name: s for s in creds.status(engine, T0)}
    assert found["a2e_api_key"].kind == "api_key"
    assert found[f"fernet:{key_id}"].kind == "fernet_key"
    assert found[f"fernet:{key_id}"].how_to_rotate == "waifugen tokens rekey"
    assert found["a2e_api_key"].how_to_rotate == "waifugen credentials rotate a2e_api_key"


def test_sync_is_idempotent_and_keeps_fingerprints_not_values(
        engine: sa.Engine, env: dict[str, str]) -> None:
    settings = settings_of(env)
    value = settings.env["A2E_API_KEY"]
    creds.sync(engine, settings, T0, env)
    first = rows(engine)
    assert creds.sync(engine, settings, T0 + 3 * DAY, env) == []
    assert creds.sync(engine, settings_of(env), T0 + 4 * DAY, env) == []
    assert rows(engine) == first
    a2e = first["a2e_api_key"]
    assert a2e["fingerprint"] == creds.fingerprint(value) and len(str(a2e["fingerprint"])) == 12
    assert all(value not in str(v) for r in first.values() for v in r.values())
    assert a2e["rotated_at"] is None and a2e["validated_at"] is None


def test_first_sight_of_a_secret_file_counts_from_its_mtime(engine: sa.Engine,
                                                           env: dict[str, str]) -> None:
    written = T0 - 10 * DAY
    os.utime(env["A2E_API_KEY_FILE"], (written.timestamp(), written.timestamp()))
    notes = creds.sync(engine, settings_of(env), T0, env)
    assert "a2e_api_key: first seen, in use since 2026-09-05 09:00 UTC" in notes
    a2e = {s.name: s for s in creds.status(engine, T0)}["a2e_api_key"]
    assert a2e.created_at == written and a2e.age_days == 10


def test_a_value_changed_by_hand_is_noted_and_restarts_the_age(
        engine: sa.Engine, env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    creds.sync(engine, settings_of(env), T0, env)
    old_fp = rows(engine)["a2e_api_key"]["fingerprint"]
    new = a2e_key("hand")
    Path(env["A2E_API_KEY_FILE"]).write_text(new)
    later = T0 + 80 * DAY  # the file's mtime (real time) may be later: age counts from `later`
    os.utime(env["A2E_API_KEY_FILE"], (later.timestamp(), later.timestamp()))
    assert creds.status(engine, later)[0].state == "warning"
    with caplog.at_level(logging.INFO):
        notes = creds.sync(engine, settings_of(env), later, env)
    expected = (f"a2e_api_key: changed outside `waifugen credentials rotate` (fingerprint "
                f"{old_fp} -> {creds.fingerprint(new)}): its age counts from "
                "2026-12-04 09:00 UTC")
    assert notes == [expected]
    assert any(expected in r.getMessage() for r in caplog.records)
    row = rows(engine)["a2e_api_key"]
    assert row["created_at"] == T0 and row["rotated_at"] == later
    assert row["fingerprint"] == creds.fingerprint(new) and row["validated_at"] is None
    assert {(s.name, s.age_days, s.state) for s in creds.status(engine, later)
            if s.name == "a2e_api_key"} == {("a2e_api_key", 0, "ok")}
    assert creds.sync(engine, settings_of(env), later + DAY, env) == []


def test_fernet_keys_are_rows_by_key_id_and_retired_keys_go(engine: sa.Engine,
                                                            env: dict[str, str]) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    creds.sync(engine, settings_of({**env, "WAIFUGEN_SECRET_KEY": old}), T0, env)
    both = {**env, "WAIFUGEN_SECRET_KEY": f"{new},{old}"}
    notes = creds.sync(engine, settings_of(both), T0 + 80 * DAY, both)
    assert notes == [f"fernet:{tokens.key_id(new)}: first seen, in use since "
                     "2026-12-04 09:00 UTC"]
    ages = {s.name: (s.age_days, s.state) for s in creds.status(engine, T0 + 80 * DAY)}
    assert ages[f"fernet:{tokens.key_id(old)}"] == (80, "warning")
    assert ages[f"fernet:{tokens.key_id(new)}"] == (0, "ok")
    assert rows(engine)[f"fernet:{tokens.key_id(new)}"]["key_id"] == tokens.key_id(new)
    # After `waifugen tokens rekey` the old key is dropped: its row stops aging.
    only_new = {**env, "WAIFUGEN_SECRET_KEY": new}
    assert creds.sync(engine, settings_of(only_new), T0 + 81 * DAY, only_new) == [
        f"fernet:{tokens.key_id(old)}: no longer configured (retired after rekey): row "
        "removed"]
    assert [n for n in rows(engine) if n.startswith("fernet:")] == [
        f"fernet:{tokens.key_id(new)}"]


def test_the_sandbox_fernet_key_counts_from_its_file(engine: sa.Engine, env: dict[str, str],
                                                     home: Path) -> None:
    sandbox_env = {k: v for k, v in env.items() if k != "WAIFUGEN_SECRET_KEY"}
    settings = settings_of(sandbox_env)  # creates WAIFUGEN_HOME/sandbox-secret.key
    written = T0 - 5 * DAY
    key_file = home / "state" / "sandbox-secret.key"
    os.utime(key_file, (written.timestamp(), written.timestamp()))
    creds.sync(engine, settings, T0, sandbox_env)
    name = f"fernet:{tokens.key_id(settings.secret_keys[0])}"
    assert {s.name: s.age_days for s in creds.status(engine, T0)}[name] == 5


def test_rotate_validates_with_a2e_then_writes_the_file_and_the_row(
        engine: sa.Engine, env: dict[str, str], sandbox) -> None:
    creds.sync(engine, settings_of(env), T0, env)
    new = a2e_key("new")
    now = T0 + 81 * DAY
    done = creds.rotate(engine, settings_of(env), "a2e_api_key", new + "\n", now=now,
                        environ=env)
    assert done.note == "A2E accepted it (balance 100000 coins)"
    assert a2e_requests(sandbox.url, new) == 1  # one cheap read, nothing else
    path = Path(env["A2E_API_KEY_FILE"])
    assert done.path == path and path.read_text() == new + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_setting("A2E_API_KEY", env) == new  # what the services read at start
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp left
    row = rows(engine)["a2e_api_key"]
    assert row["created_at"] == T0
    assert row["rotated_at"] == now and row["validated_at"] == now
    assert row["last_used_at"] == now and row["fingerprint"] == creds.fingerprint(new)
    assert done.fingerprint == creds.fingerprint(new)
    assert "restart the services" in done.next_step
    s = {s.name: s for s in creds.status(engine, now)}["a2e_api_key"]
    assert (s.age_days, s.state) == (0, "ok")
    # The next process reads the new value: nothing to note.
    assert creds.sync(engine, settings_of(env), now + DAY, env) == []


def test_a_refused_key_changes_nothing(engine: sa.Engine, env: dict[str, str],
                                       sandbox) -> None:
    creds.sync(engine, settings_of(env), T0, env)
    path = Path(env["A2E_API_KEY_FILE"])
    before_bytes, before_stat, before_rows = path.read_bytes(), path.stat(), rows(engine)
    bad = f"sk_live_{uuid.uuid4().hex}"
    with pytest.raises(creds.RotationRefused) as refused:
        creds.rotate(engine, settings_of(env), "a2e_api_key", bad, now=T0 + DAY, environ=env)
    message = str(refused.value)
    assert message == ("a2e_api_key: not accepted, nothing was changed: a2e: GET "
                       "/a2e/api/v1/user/remainingCoins: HTTP 401 (auth): code 401: "
                       "Unauthorized: invalid API token")
    assert bad not in message
    assert path.read_bytes() == before_bytes
    assert path.stat().st_mtime_ns == before_stat.st_mtime_ns
    assert path.stat().st_ino == before_stat.st_ino
    assert rows(engine) == before_rows
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_rotation_needs_the_secret_file(engine: sa.Engine, env: dict[str, str],
                                        sandbox) -> None:
    in_env = {k: v for k, v in env.items() if k != "A2E_API_KEY_FILE"}
    in_env["A2E_API_KEY"] = a2e_key("env")
    new = a2e_key("new")
    with pytest.raises(creds.RotationRefused, match="^" + re.escape(NOT_A_FILE) + "$"):
        creds.rotate(engine, settings_of(in_env), "a2e_api_key", new, now=T0, environ=in_env)
    both = {**env, "A2E_API_KEY": a2e_key("env")}
    with pytest.raises(creds.RotationRefused, match="A2E_API_KEY is set in the environment "
                       "too, and wins over A2E_API_KEY_FILE"):
        creds.rotate(engine, settings_of(both), "a2e_api_key", new, now=T0, environ=both)
    assert a2e_requests(sandbox.url, new) == 0  # refused before asking A2E anything
    assert rows(engine) == {}


def test_other_refusals_name_the_credential(engine: sa.Engine, env: dict[str, str]) -> None:
    settings = settings_of(env)
    current = settings.env["A2E_API_KEY"]
    cases = {
        "fernet:abc": "fernet:abc: Fernet keys are not replaced in place: add a new key in "
                      "front of WAIFUGEN_SECRET_KEY, run `waifugen tokens rekey`, then drop "
                      "the old key",
        "nope": "unknown credential 'nope': one of a2e_api_key, ",
    }
    for name, message in cases.items():
        with pytest.raises(creds.RotationRefused) as refused:
            creds.rotate(engine, settings, name, a2e_key(), now=T0, environ=env)
        assert str(refused.value).startswith(message)
    with pytest.raises(creds.RotationRefused, match="value in use already"):
        creds.rotate(engine, settings, "a2e_api_key", current, now=T0, environ=env)
    with pytest.raises(creds.RotationRefused, match="a2e_api_key: the new value is empty"):
        creds.rotate(engine, settings, "a2e_api_key", " \n", now=T0, environ=env)
    with pytest.raises(creds.RotationRefused, match="spaces, line breaks"):
        creds.rotate(engine, settings, "a2e_api_key", "sk_sandbox a b", now=T0, environ=env)


def _secret_file(env: dict[str, str], setting: str, value: str) -> dict[str, str]:
    path = Path(env["A2E_API_KEY_FILE"]).parent / setting.lower()
    path.write_text(value)
    return {**env, f"{setting}_FILE": str(path)}


def test_telegram_bot_token_is_checked_with_getme(engine: sa.Engine, env: dict[str, str]
                                                  ) -> None:
    from waifugen_assets.core.sandbox_world import SANDBOX_BOT_TOKEN, sandbox_bot_token

    env = _secret_file(env, "TELEGRAM_BOT_TOKEN", SANDBOX_BOT_TOKEN)
    new = sandbox_bot_token("credential-check")
    done = creds.rotate(engine, settings_of(env), "telegram_bot_token", new, now=T0,
                        environ=env)
    assert done.note == "Telegram accepted it (bot @credential_check_bot)"
    assert read_setting("TELEGRAM_BOT_TOKEN", env) == new
    bad = "7000000001:AAnot_a_sandbox_token_at_all_0000"
    with pytest.raises(creds.RotationRefused) as refused:
        creds.rotate(engine, settings_of(env), "telegram_bot_token", bad, now=T0, environ=env)
    assert str(refused.value) == ("telegram_bot_token: not accepted, nothing was changed: "
                                  "telegram: GET /telegram/bot***/getMe: HTTP 401 (auth): "
                                  "Unauthorized")
    assert read_setting("TELEGRAM_BOT_TOKEN", env) == new


def test_runpod_key_is_checked_with_the_endpoint_health(engine: sa.Engine,
                                                        env: dict[str, str]) -> None:
    env = _secret_file(env, "RUNPOD_API_KEY", "rpa_sandbox_old")
    done = creds.rotate(engine, settings_of(env), "runpod_api_key", "rpa_sandbox_rotated",
                        now=T0, environ=env)
    assert done.note == "RunPod accepted it (endpoint waifugen-fallback health)"
    with pytest.raises(creds.RotationRefused, match=r"^runpod_api_key: not accepted, nothing "
                       r"was changed: runpod: GET /runpod/v2/waifugen-fallback/health: HTTP "
                       r"401 \(auth\)"):
        creds.rotate(engine, settings_of(env), "runpod_api_key", "rpa_live_wrongkey",
                     now=T0, environ=env)
    assert read_setting("RUNPOD_API_KEY", env) == "rpa_sandbox_rotated"


def test_format_only_secrets_are_stored_without_a_validation_time(
        engine: sa.Engine, env: dict[str, str]) -> None:
    env = _secret_file(env, "TELEGRAM_WEBHOOK_SECRET", "x" * 40)
    with pytest.raises(creds.RotationRefused, match="32 to 256 of A-Z a-z 0-9 _ -"):
        creds.rotate(engine, settings_of(env), "telegram_webhook_secret", "short",
                     now=T0, environ=env)
    new = "N3w_" + uuid.uuid4().hex + uuid.uuid4().hex
    done = creds.rotate(engine, settings_of(env), "telegram_webhook_secret", new, now=T0,
                        environ=env)
    assert done.note == "format checked only (a shared secret we choose)"
    assert "setWebhook" in done.next_step
    row = rows(engine)["telegram_webhook_secret"]
    assert row["rotated_at"] == T0 and row["validated_at"] is None
    assert row["kind"] == "webhook_secret"


def test_report_line_names_what_is_due(engine: sa.Engine, env: dict[str, str]) -> None:
    with engine.connect() as conn:
        assert creds.report_line(conn, T0) is None
    creds.sync(engine, settings_of(env), T0, env)
    key_id = tokens.key_id(env["WAIFUGEN_SECRET_KEY"])
    with engine.begin() as conn:  # the Fernet key arrived earlier than the A2E key
        conn.execute(sa.update(schema.credentials)
                     .where(schema.credentials.c.name == f"fernet:{key_id}")
                     .values(created_at=T0 - 14 * DAY))
    with engine.connect() as conn:
        assert creds.report_line(conn, T0 + 60 * DAY) is None
        assert creds.report_line(conn, T0 + 81 * DAY) == (
            f"credentials: fernet:{key_id} 95 days old (expired on 2026-11-30); "
            "a2e_api_key 81 days old (rotate by 2026-12-14)")
        assert creds.report_line(conn, T0 + 70 * DAY) == (
            f"credentials: fernet:{key_id} 84 days old (rotate by 2026-11-30)")


def test_cli_never_shows_the_value(engine: sa.Engine, env: dict[str, str], sandbox,
                                   monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    old = read_setting("A2E_API_KEY", env)
    new, bad = a2e_key("cli"), f"sk_live_{uuid.uuid4().hex}"
    source = Path(env["A2E_API_KEY_FILE"]).parent.parent / "candidate"
    source.write_text(a2e_key("file"))
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None):
        get_settings.cache_clear()  # each command is a process of its own in real use
        return runner.invoke(credentials_cli, list(args), input=stdin)

    try:
        with caplog.at_level(logging.DEBUG):
            refused = run("rotate", "a2e_api_key", stdin=bad)
            done = run("rotate", "a2e_api_key", stdin=new + "\n")
            shown = run("status")
            from_file = run("rotate", "a2e_api_key", "--from-file", str(source))
    finally:
        get_settings.cache_clear()
    assert refused.exit_code == 1, refused.output
    assert refused.output.startswith("error: a2e_api_key: not accepted, nothing was "
                                     "changed: a2e: GET /a2e/api/v1/user/remainingCoins: "
                                     "HTTP 401")
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[0] == (
        "a2e_api_key: A2E accepted it (balance 100000 coins); written to "
        f"{env['A2E_API_KEY_FILE']} (fingerprint {creds.fingerprint(new)})")
    assert shown.exit_code == 0, shown.output
    assert "a2e_api_key" in shown.output and "fernet keys: add a new key" in shown.output
    assert from_file.exit_code == 0, from_file.output
    assert read_setting("A2E_API_KEY", env) == source.read_text()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "credential a2e_api_key rotated" in logged
    everything = "\n".join([refused.output, done.output, shown.output, from_file.output,
                            logged, str(rows(engine))])
    for value in (old, new, bad, source.read_text()):
        assert value and value not in everything


def test_cli_status_lists_states_and_forget_drops_unused_ones(
        engine: sa.Engine, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    env = _secret_file(env, "RUNPOD_API_KEY", "rpa_sandbox_status")
    # The CLI runs on the real clock: first seen 100 days before it (or T0, if earlier).
    creds.sync(engine, settings_of(env), dt.datetime.now(dt.UTC) - 100 * DAY, env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    def run(*args: str):
        get_settings.cache_clear()
        return runner.invoke(credentials_cli, list(args))

    try:
        shown = run("status")
        refused = run("forget", "runpod_api_key")
        monkeypatch.delenv("RUNPOD_API_KEY_FILE")
        forgotten = run("forget", "runpod_api_key")
        again = run("forget", "runpod_api_key")
        after = run("status")
    finally:
        get_settings.cache_clear()
    lines = shown.output.splitlines()
    assert shown.exit_code == 0, shown.output
    header = next(i for i, line in enumerate(lines) if line.startswith("name "))
    assert lines[header].split() == ["name", "kind", "age", "last", "used", "state", "rotate",
                                     "by", "fingerprint"]
    table = {line.split()[0]: line.split() for line in lines[header + 1:] if line.strip()
             and not line.startswith(("fernet keys:", "others:", "  "))}
    key_id = tokens.key_id(env["WAIFUGEN_SECRET_KEY"])
    assert set(table) == {"a2e_api_key", "runpod_api_key", f"fernet:{key_id}"}
    assert table["a2e_api_key"][1] == "api_key" and table["a2e_api_key"][5] == "expired"
    assert table["a2e_api_key"][-1] == rows(engine)["a2e_api_key"]["fingerprint"]
    checked = [line.split(maxsplit=1) for line in lines if line.startswith("  ")]
    assert checked == [["a2e_api_key", "A2E GET /api/v1/user/remainingCoins"],
                       ["runpod_api_key", "RunPod GET /v2/<RUNPOD_ENDPOINT_ID>/health"]]
    assert refused.exit_code == 1
    assert refused.output == ("error: runpod_api_key is still configured here: unset it "
                              "first (the next status would record it again)\n")
    assert forgotten.exit_code == 0 and forgotten.output == "forgot runpod_api_key\n"
    assert again.exit_code == 1 and "no credential named 'runpod_api_key'" in again.output
    assert "runpod_api_key" not in after.output.split("others:")[0]


def test_the_new_file_keeps_the_old_ones_group_access_never_world(
        engine: sa.Engine, env: dict[str, str], sandbox) -> None:
    """Services may read a secret through its group (0640 root:waifugen): a rotation keeps
    that, and never keeps world bits."""
    path = Path(env["A2E_API_KEY_FILE"])
    for before, after in ((0o640, 0o640), (0o644, 0o640), (0o400, 0o600)):
        path.chmod(before)
        creds.rotate(engine, settings_of(env), "a2e_api_key", a2e_key(), now=T0, environ=env)
        assert stat.S_IMODE(path.stat().st_mode) == after, oct(before)
        env_now = settings_of(env)
        assert env_now.env["A2E_API_KEY"] == path.read_text().strip()


def test_an_owner_that_cannot_be_kept_or_a_failed_write_changes_nothing(
        engine: sa.Engine, env: dict[str, str], sandbox, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    creds.sync(engine, settings_of(env), T0, env)
    path = Path(env["A2E_API_KEY_FILE"])
    os.chown(path, 65534, 65534)  # the services' user (nobody), not this process's
    before_bytes, before_rows = path.read_bytes(), rows(engine)

    def refuse(*_: object) -> None:  # what the kernel answers a user who is not root
        raise PermissionError(1, "Operation not permitted")

    with monkeypatch.context() as m:
        m.setattr(creds.os, "chown", refuse)
        with pytest.raises(creds.RotationRefused) as refused:
            creds.rotate(engine, settings_of(env), "a2e_api_key", a2e_key(), now=T0 + DAY,
                         environ=env)
    assert str(refused.value) == (
        f"{path}: cannot keep its owner (uid 65534) on the new file (Operation not "
        "permitted): the services might not read it; run this as root or as the file's "
        "owner; nothing was changed")

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device", str(path))

    with monkeypatch.context() as m:
        m.setattr(creds.os, "replace", full)
        with pytest.raises(creds.RotationRefused) as refused:
            creds.rotate(engine, settings_of(env), "a2e_api_key", a2e_key(), now=T0 + DAY,
                         environ=env)
    assert str(refused.value) == (f"a2e_api_key: cannot write {path}: No space left on "
                                  "device; nothing was changed")
    assert path.read_bytes() == before_bytes and rows(engine) == before_rows
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp left
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


def test_an_s3_endpoint_without_a_scheme_is_refused_in_one_line(
        engine: sa.Engine, env: dict[str, str], home: Path) -> None:
    secret_file = home / "secrets" / "s3_secret_access_key"
    secret_file.write_text("old-secret-0123456789\n")
    s3_env = {**env, "S3_SECRET_ACCESS_KEY_FILE": str(secret_file), "S3_BUCKET": "videos",
              "S3_ACCESS_KEY_ID": "AKIAEXAMPLE", "S3_ENDPOINT_URL": "r2.example.com"}
    with pytest.raises(creds.RotationRefused) as refused:
        creds.rotate(engine, settings_of(s3_env), "s3_secret_access_key",
                     "new-secret-0123456789", now=T0, environ=s3_env)
    assert str(refused.value).startswith(
        "s3_secret_access_key: not accepted, nothing was changed: "
        "S3_ENDPOINT_URL=r2.example.com: Invalid endpoint")
    assert secret_file.read_text() == "old-secret-0123456789\n"
