"""Backups on the real test PostgreSQL with pgserver's PostgreSQL 16 tools: a set made,
verified by a restore into a scratch database and restored into a fresh one; corrupt archives
refused before anything is restored; the Dagster database in both shapes (SQLite in the
sandbox, PostgreSQL in production); the `backups` asset and its schedule."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from backup_world import (
    NOW,
    NOWHERE,
    databases_like,
    make_config,
    postgres_instance,
    rows,
    run_something,
    seed,
    sequence_next,
    sqlite_instance,
)
from conftest import create_database, database_url, drop_database

from resources.database import DatabaseResource
from waifugen_assets.core import schema
from waifugen_assets.core.config import load_settings, project_root
from waifugen_assets.operations.backup_manifest import read_manifest
from waifugen_assets.operations.backup_restore import restore_set, target_relations
from waifugen_assets.operations.backup_verify import ChecksumMismatch, verify_set
from waifugen_assets.operations.backups import (
    BackupError,
    DagsterSource,
    create_backup,
    dagster_source,
    list_sets,
    load_set,
)

pytestmark = pytest.mark.integration
# Tests that look for scratch databases of their set (`wg_verify_<set id>_...`) make sets of
# times no other test uses: tests run in parallel on one server.
ROUND_TRIP = dt.datetime(2026, 11, 20, 6, 0, 1, tzinfo=dt.UTC)


@pytest.fixture
def fresh_name(pg_server_url: str):
    """A database name nobody uses yet, dropped afterwards."""
    name = f"wg_restore_{uuid.uuid4().hex[:10]}"
    yield name
    drop_database(pg_server_url, name)


def test_round_trip_create_verify_restore(db_url: str, engine: sa.Engine, tmp_path: Path,
                                          pg_server_url: str, fresh_name: str) -> None:
    seed(engine)
    config = make_config(db_url, tmp_path)
    made = create_backup(config, now=ROUND_TRIP, engine=engine)

    assert made.set_id == "20261120T060001Z" and made.ok
    app = made.archive("app")
    assert app is not None and app.alembic_revision == "0014_operations"
    assert app.server_version.startswith("16.")
    assert app.facts["tables"]["public.credentials"] == 5
    assert app.facts["tables"]["public.backups"] == 2  # app + globals, as running
    assert app.facts["sequences"]["public.credentials_id_seq"] == 7
    assert app.facts["sequences"]["public.alerts_id_seq"] == 4242
    path = Path(app.location)
    assert path == tmp_path / "backups" / made.set_id / "app.dump"
    assert path.stat().st_size == app.bytes and oct(path.stat().st_mode)[-3:] == "600"
    roles = made.archive("globals")
    assert roles is not None and "waifugen_analyst" in roles.facts["roles"]
    # The catalog's rows, also beside the archives (for when the app database is lost).
    assert read_manifest(config, made.set_id) == made

    verified, checks = verify_set(config, engine=engine)  # default: the newest set
    assert verified == made.set_id
    assert [(c.database, c.ok) for c in checks] == [("app", True), ("globals", True)]
    assert not databases_like(pg_server_url, f"wg_verify_{made.set_id.lower()}")  # dropped
    recorded = load_set(engine, made.set_id).archive("app")
    assert recorded.verified_at is not None and recorded.verify_result["ok"] is True
    assert recorded.verify_result["differences"] == []

    target = database_url(pg_server_url, fresh_name)
    report = restore_set(config, made.set_id, target, "app", engine=engine)
    assert report.created and report.differences == []
    assert rows(target, schema.credentials) == rows(db_url, schema.credentials)
    # Sequences carry on where the source's do.
    assert sequence_next(target, "credentials_id_seq") == 8
    assert sequence_next(target, "alerts_id_seq") == sequence_next(db_url, "alerts_id_seq")

    # The target is no longer empty: a second restore is refused, unless forced.
    with pytest.raises(BackupError, match=r"is not empty \(\d+ relations\): refused"):
        restore_set(config, made.set_id, target, "app", engine=engine)
    forced = restore_set(config, made.set_id, target, "app", force=True, engine=engine)
    assert forced.differences == []

    # A table the backup does not have (a later migration's): forcing would leave a mix of
    # old and new, so it is refused and the target is left as it was.
    target_engine = sa.create_engine(target)
    try:
        with target_engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE later_feature (id int)"))
        before = rows(target, schema.credentials)
        with pytest.raises(BackupError, match=(
                r"has 1 table\(s\) the backup does not \(public\.later_feature\): restoring "
                r"over it would leave a mix; .*; nothing was changed$")):
            restore_set(config, made.set_id, target, "app", force=True, engine=engine)
        assert rows(target, schema.credentials) == before
        with target_engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT to_regclass('later_feature')")) is not None
    finally:
        target_engine.dispose()


@pytest.mark.parametrize("damage", ["truncated", "one byte altered"])
def test_a_damaged_archive_is_refused_before_anything_is_restored(
        damage: str, db_url: str, engine: sa.Engine, tmp_path: Path, pg_server_url: str,
        fresh_name: str) -> None:
    config = make_config(db_url, tmp_path)
    now = ROUND_TRIP + dt.timedelta(seconds=1 if damage == "truncated" else 2)
    made = create_backup(config, now=now, engine=engine)
    app = made.archive("app")
    path = Path(app.location)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:])

    # The scratch server is one nobody listens on: had verify tried to restore, it would
    # have failed connecting; it fails on the checksum instead, before any of that.
    _, checks = verify_set(config, made.set_id, scratch_url=NOWHERE, engine=engine)
    failed = {c.database: c for c in checks}["app"]
    assert not failed.ok and failed.result["stage"] == "checksum"
    assert failed.detail.startswith(f"archive {app.location}: sha256 ")
    assert app.sha256 in failed.detail and "refused, nothing was restored" in failed.detail
    assert "\n" not in failed.detail
    assert not databases_like(pg_server_url, f"wg_verify_{made.set_id.lower()}")
    row = load_set(engine, made.set_id).archive("app")
    assert row.verify_result["ok"] is False and row.verify_result["stage"] == "checksum"

    target = database_url(pg_server_url, fresh_name)
    with pytest.raises(ChecksumMismatch, match="does not match the recorded sha256"):
        restore_set(config, made.set_id, target, "app", engine=engine)
    assert target_relations(target) is None  # the target was not even created


def test_sandbox_dagster_sqlite_storage_round_trip(db_url: str, engine: sa.Engine,
                                                   tmp_path: Path) -> None:
    with sqlite_instance(tmp_path / "dagster_home") as instance:
        run_id = run_something(instance)
        source = dagster_source(instance)
    assert source.kind == "sqlite" and source.base_dir == tmp_path / "dagster_home"
    config = make_config(db_url, tmp_path, dagster=source, include_globals=False)
    made = create_backup(config, now=NOW, engine=engine)
    dagster = made.archive("dagster")
    assert made.ok and dagster.location.endswith("dagster.sqlite.tar.gz")
    assert dagster.server_version.startswith("SQLite ")
    assert dagster.facts["tables"]["history/runs.db:runs"] == 1
    assert f"history/runs/{run_id}.db" in dagster.facts["files"]

    _, checks = verify_set(config, made.set_id, engine=engine)
    assert all(c.ok for c in checks), [c.detail for c in checks]

    restored_home = tmp_path / "restored_home"
    report = restore_set(config, made.set_id, str(restored_home), "dagster", engine=engine)
    assert report.differences == []
    (restored_home / "dagster.yaml").write_text((tmp_path / "dagster_home" / "dagster.yaml")
                                                .read_text())
    with dg.DagsterInstance.from_config(str(restored_home)) as restored:
        assert restored.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        assert restored.get_latest_materialization_event(dg.AssetKey("tiny")) is not None
    with pytest.raises(BackupError, match=r"already holds .* SQLite files: refused"):
        restore_set(config, made.set_id, str(restored_home), "dagster", engine=engine)


def test_production_dagster_postgres_storage_round_trip(
        db_url: str, engine: sa.Engine, tmp_path: Path, pg_server_url: str,
        fresh_name: str) -> None:
    dagster_db = f"wg_dagster_{uuid.uuid4().hex[:10]}"
    dagster_url = create_database(pg_server_url, dagster_db)
    try:
        with postgres_instance(tmp_path / "dagster_home", dagster_url) as instance:
            run_id = run_something(instance)
            source = dagster_source(instance)
        assert source.kind == "postgres"
        assert sa.engine.make_url(source.url).database == dagster_db
        config = make_config(db_url, tmp_path, dagster=source)
        made = create_backup(config, now=NOW, engine=engine)
        dagster = made.archive("dagster")
        assert made.ok and dagster.location.endswith("dagster.dump")
        assert dagster.facts["tables"]["public.runs"] == 1
        assert dagster.alembic_revision  # Dagster's own storage schema is Alembic's too

        _, checks = verify_set(config, made.set_id, engine=engine)
        assert [(c.database, c.ok) for c in checks] == [
            ("app", True), ("dagster", True), ("globals", True)]

        target = database_url(pg_server_url, fresh_name)
        assert restore_set(config, made.set_id, target, "dagster",
                           engine=engine).differences == []
        with postgres_instance(tmp_path / "restored_home", target) as restored:
            assert restored.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    finally:
        drop_database(pg_server_url, dagster_db)


def test_unknown_set_and_existing_set(db_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    config = make_config(db_url, tmp_path)
    with pytest.raises(BackupError, match=r"^no finished backup set yet"):
        verify_set(config, engine=engine)
    with pytest.raises(BackupError, match=r"^no backup set 2020 \(`waifugen backup list`"):
        verify_set(config, "2020", engine=engine)
    create_backup(config, now=NOW, engine=engine)
    with pytest.raises(BackupError, match=r"^backup set 20261205T060007Z already exists$"):
        create_backup(config, now=NOW, engine=engine)
    assert [s.set_id for s in list_sets(engine)] == ["20261205T060007Z"]


def test_a_failed_dump_is_recorded_and_leaves_no_file(db_url: str, engine: sa.Engine,
                                                      tmp_path: Path) -> None:
    missing = tmp_path / "no-dagster-here"
    missing.mkdir()
    config = make_config(db_url, tmp_path, dagster=DagsterSource(base_dir=missing))
    made = create_backup(config, now=NOW, engine=engine)
    failed = made.archive("dagster")
    assert not made.ok and failed.state == "failed"
    assert failed.error == f"dagster: no Dagster SQLite storage (*.db) under {missing}"
    assert made.archive("app").state == "done"
    assert sorted(p.name for p in (tmp_path / "backups" / made.set_id).iterdir()) == [
        "app.dump", "globals.sql", "manifest.json"]


def test_an_interrupted_archive_is_closed_by_the_next_backup(db_url: str, engine: sa.Engine,
                                                             tmp_path: Path) -> None:
    config = make_config(db_url, tmp_path, include_globals=False)
    partial = config.backup_dir / "old" / "app.dump.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half a dump")
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.backups).values(
            set_id="old", database="app", state="running", location=str(partial)[:-8],
            started_at=NOW - dt.timedelta(days=2)))
    assert create_backup(config, now=NOW, engine=engine).ok
    old = load_set(engine, "old").archive("app")
    assert old.state == "failed" and old.error.startswith("interrupted")
    assert not partial.exists()


def test_backups_asset_makes_a_set_drills_it_and_prunes(db_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from waifugen_assets.core.config import get_settings
    from waifugen_assets.operations.assets import backups
    from waifugen_assets.operations.jobs import backup_job
    from waifugen_assets.operations.schedules import backup_schedule

    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    get_settings.cache_clear()  # BACKUP_DIR is a setting: read with this test's environment
    try:
        with sqlite_instance(tmp_path / "dagster_home") as instance:
            result = dg.materialize([backups], instance=instance,
                                    resources={"database": DatabaseResource(url=db_url)})
    finally:
        get_settings.cache_clear()  # the next test reads its own environment
    assert result.success
    meta = result.asset_materializations_for_node("backups")[0].metadata
    set_id = meta["set_id"].value
    assert meta["restore_drill"].value.startswith("app: ok")  # first set: the drill is due
    assert meta["sets_kept"].value == 1 and meta["sets_pruned"].value == 0
    assert (tmp_path / "backups" / set_id / "dagster.sqlite.tar.gz").is_file()
    assert backup_job.name == "backup" and backup_schedule.job_name == "backup"
    assert backup_schedule.cron_schedule == "0 */6 * * *"
    assert backup_schedule.execution_timezone == "UTC"


def test_a_new_server_gets_the_roles_first_then_the_databases(
        db_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    """The runbook's order on a replacement server: the roles archive, then the app archive
    (whose GRANTs to waifugen_analyst need the role)."""
    from waifugen_assets.core.embedded_pg import embedded_server_url, stop_embedded

    seed(engine)
    config = make_config(db_url, tmp_path)
    made = create_backup(config, now=NOW, engine=engine)
    # Beside the test server: pgserver runs PostgreSQL as its own user when started as
    # root, and pytest's temporary directories are private to their owner.
    home = project_root() / ".waifugen" / f"test-backup-{uuid.uuid4().hex[:8]}"
    try:
        server = embedded_server_url(home)
        before = databases_like(server, "")
        roles = restore_set(config, made.set_id, server, "globals", engine=engine)
        assert roles.note.endswith("role(s) existed already: not created again, their "
                                   "attributes set as archived")
        check = sa.create_engine(server, poolclass=sa.NullPool)
        with check.connect() as conn:
            assert conn.execute(sa.text(
                "SELECT 1 FROM pg_roles WHERE rolname = 'waifugen_analyst'")).scalar() == 1
        check.dispose()
        target = database_url(server, "waifugen")
        report = restore_set(config, made.set_id, target, "app", engine=engine)
        assert report.created and report.differences == []
        assert rows(target, schema.credentials) == rows(db_url, schema.credentials)
        assert "waifugen" in set(databases_like(server, "")) - set(before)
    finally:
        stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)


def test_tools_get_the_password_in_the_environment_not_the_command_line() -> None:
    from waifugen_assets.operations.pg_tools import libpq

    uri, env = libpq("postgresql+psycopg2://app:s3cr%40t@db.internal:5433/waifugen?sslmode=require")
    assert uri == "postgresql://app@db.internal:5433/waifugen?sslmode=require"
    assert env == {"PGPASSWORD": "s3cr@t"}


def test_a_non_superuser_gets_the_roles_without_password_hashes(
        db_url: str, engine: sa.Engine, tmp_path: Path, pg_server_url: str) -> None:
    """pg_authid (the hashes) is for superusers: others dump the roles with
    --no-role-passwords, and say so in the facts."""
    role = f"wg_backup_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN IN ROLE pg_read_all_data"))
    try:
        as_role = sa.engine.make_url(db_url).set(username=role).render_as_string(
            hide_password=False)
        config = make_config(as_role, tmp_path)
        made = create_backup(config, now=NOW, engine=engine)  # rows written as the owner
        roles = made.archive("globals")
        assert made.ok and roles.facts["role_passwords"] is False and role in roles.facts["roles"]
        assert made.archive("app").facts["tables"]["public.backups"] == 2
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


@pytest.mark.parametrize("pg_bin_dir", ["/nonexistent/pg/bin", "/usr/bin"],
                         ids=["missing tools", "debian's 15 tools"])
def test_the_backup_after_a_run_fails_in_one_line(db_url: str, tmp_path: Path,
                                                   pg_bin_dir: str) -> None:
    """What `waifugen run` prints when its sandbox backup cannot be made: one line, never a
    traceback after the day's runs."""
    from waifugen_assets.app.backup_run import backup_after_run

    settings = load_settings({"WAIFUGEN_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url,
                              "BACKUP_DIR": str(tmp_path / "backups"),
                              "PG_BIN_DIR": pg_bin_dir})
    with sqlite_instance(tmp_path / "dagster_home") as instance:
        ok, line = backup_after_run(settings, db_url, instance)
    assert not ok and line.startswith("backup failed"), line
    assert "\n" not in line and "Traceback" not in line
