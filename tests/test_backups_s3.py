"""Backups uploaded to S3 / R2, against moto's real S3 server on 127.0.0.1: the settings that
configure it, the upload (with its sha256 as object metadata), verify downloading the archive
and refusing an altered object before any restore, and prune deleting objects."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from backup_world import NOWHERE, databases_like, make_config, seed

from waifugen_assets.core.config import load_settings
from waifugen_assets.operations.backup_manifest import manifest_set_ids, read_manifest
from waifugen_assets.operations.backup_retention import prune
from waifugen_assets.operations.backup_store import S3Target
from waifugen_assets.operations.backup_verify import verify_set
from waifugen_assets.operations.backups import create_backup, load_config

pytestmark = pytest.mark.integration

REGION = "us-east-1"
KEY_ID = "testing-key-id"
SECRET = "testing-secret-access-key-backups"



@pytest.fixture
def client(moto_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION,
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


@pytest.fixture
def bucket(client: Any) -> str:
    name = f"backups-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def keys(client: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_settings_configure_the_upload(moto_endpoint: str, tmp_path: Path, db_url: str) -> None:
    environ = {"WAIFUGEN_HOME": str(tmp_path), "BACKUP_S3_URL": "s3://vault/wg/backups/",
               "S3_ENDPOINT_URL": moto_endpoint, "S3_ACCESS_KEY_ID": KEY_ID,
               "S3_SECRET_ACCESS_KEY": SECRET, "WAIFUGEN_SECRET_KEY": ""}
    config = load_config(load_settings(environ), db_url, None, environ)
    assert config.s3 == S3Target("vault", "wg/backups", moto_endpoint, "auto", KEY_ID, SECRET)
    assert config.backup_dir == tmp_path.resolve() / "backups"  # the default: under the home
    assert SECRET not in repr(config)


def test_upload_verify_download_and_refuse_an_altered_object(
        db_url: str, engine: sa.Engine, tmp_path: Path, moto_endpoint: str, client: Any,
        bucket: str, pg_server_url: str) -> None:
    seed(engine)
    s3 = S3Target(bucket, "wg", moto_endpoint, REGION, KEY_ID, SECRET)
    config = make_config(db_url, tmp_path, s3=s3)
    made = create_backup(config, now=dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC), engine=engine)
    app = made.archive("app")
    assert made.ok and app.location == f"s3://{bucket}/wg/{made.set_id}/app.dump"
    assert keys(client, bucket) == [f"wg/{made.set_id}/{name}" for name in (
        "app.dump", "globals.sql", "manifest.json")]
    head = client.head_object(Bucket=bucket, Key=f"wg/{made.set_id}/app.dump")
    assert head["Metadata"]["sha256"] == app.sha256 and head["ContentLength"] == app.bytes
    assert not any(SECRET in (a.error or "") + a.location for a in made.archives)

    # The local copies go: verify must download what is in the bucket, and the manifest is
    # read from there.
    for name in ("app.dump", "globals.sql", "manifest.json"):
        (config.backup_dir / made.set_id / name).unlink()
    assert read_manifest(config, made.set_id) == made
    assert manifest_set_ids(config) == [made.set_id]
    _, checks = verify_set(config, made.set_id, engine=engine)
    assert [(c.database, c.ok) for c in checks] == [("app", True), ("globals", True)]
    assert not list(config.backup_dir.glob(".fetch-*"))  # downloads cleaned up

    body = client.get_object(Bucket=bucket, Key=f"wg/{made.set_id}/app.dump")["Body"].read()
    altered = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
    client.put_object(Bucket=bucket, Key=f"wg/{made.set_id}/app.dump", Body=altered)
    _, checks = verify_set(config, made.set_id, scratch_url=NOWHERE, engine=engine)
    app_check = checks[0]
    assert not app_check.ok and app_check.result["stage"] == "checksum"
    assert app_check.detail.startswith(f"archive {app.location}: sha256 ")
    assert app.sha256 in app_check.detail
    assert not databases_like(pg_server_url, f"wg_verify_{made.set_id.lower()}")


def test_prune_deletes_objects_and_local_copies(db_url: str, engine: sa.Engine, tmp_path: Path,
                                                moto_endpoint: str, client: Any,
                                                bucket: str) -> None:
    s3 = S3Target(bucket, "", moto_endpoint, REGION, KEY_ID, SECRET)
    config = make_config(db_url, tmp_path, s3=s3, include_globals=False)
    now = dt.datetime(2026, 12, 9, 19, 30, tzinfo=dt.UTC)
    # Every 3 hours back from 18:00: the 9th (Dec 8 18:00) is neither among the last 8, nor
    # the newest of its day (21:00 is), nor of its week (Dec 9 is the same ISO week).
    times = [dt.datetime(2026, 12, 9, 18, tzinfo=dt.UTC) - dt.timedelta(hours=3 * n)
             for n in range(9)]
    for t in reversed(times):
        create_backup(config, now=t, engine=engine)
    assert len(keys(client, bucket)) == 9 * 2  # an archive and a manifest each
    report = prune(config, now=now, engine=engine)
    assert report.pruned == ["20261208T180000Z"] and len(report.kept) == 8
    assert not [k for k in keys(client, bucket) if k.startswith("20261208T180000Z/")]
    assert len(keys(client, bucket)) == 8 * 2
    assert not (config.backup_dir / "20261208T180000Z").exists()
    assert (config.backup_dir / "20261208T210000Z" / "app.dump").exists()


def test_a_failed_upload_keeps_the_local_archive_and_says_so(
        db_url: str, engine: sa.Engine, tmp_path: Path, moto_endpoint: str) -> None:
    """An S3 outage must not cost the only good copy: the archive stays done where it was
    written, the set is not ok, and the error names the upload; it verifies from there."""
    s3 = S3Target(f"missing-{uuid.uuid4().hex[:8]}", "wg", moto_endpoint, REGION, KEY_ID, SECRET)
    config = make_config(db_url, tmp_path, s3=s3, include_globals=False)
    made = create_backup(config, now=dt.datetime(2026, 12, 5, 13, tzinfo=dt.UTC), engine=engine)
    app = made.archive("app")
    local = config.backup_dir / made.set_id / "app.dump"
    assert not made.ok and app.state == "done" and app.location == str(local)
    assert local.stat().st_size == app.bytes > 0
    assert app.error.startswith(f"app: not uploaded, kept at {local} only: upload to "
                                f"s3://{s3.bucket}/wg/{made.set_id}/app.dump failed: ")
    assert "NoSuchBucket" in app.error
    assert SECRET not in app.error and "\n" not in app.error
    _, checks = verify_set(config, made.set_id, engine=engine)
    assert [c.ok for c in checks] == [True], checks
