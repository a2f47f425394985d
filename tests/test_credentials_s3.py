"""S3 / R2 credential rotation against moto's S3 server with IAM authentication on: the new
key pair is proven with HeadBucket before either secret file changes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa
from moto.core.authorization import enable_iam_authentication

from waifugen_assets.core import schema
from waifugen_assets.core.config import load_settings, read_setting
from waifugen_assets.operations import credentials as creds
from waifugen_assets.operations.credential_checks import Refused, check_s3

REGION = "us-east-1"
NOW = creds.dt.datetime(2026, 12, 5, 9, 0, tzinfo=creds.dt.UTC)



def _admin(endpoint: str, service: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="admin", aws_secret_access_key="admin-secret")


@pytest.fixture
def account(moto_endpoint: str) -> dict[str, str]:
    """A bucket and an IAM user allowed to use it, with two access keys (old and new), made
    before IAM authentication is switched on."""
    user, bucket = f"reels-{uuid.uuid4().hex[:8]}", f"reels-{uuid.uuid4().hex[:12]}"
    iam = _admin(moto_endpoint, "iam")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="reels", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    old = iam.create_access_key(UserName=user)["AccessKey"]
    new = iam.create_access_key(UserName=user)["AccessKey"]
    _admin(moto_endpoint, "s3").create_bucket(Bucket=bucket)
    return {"bucket": bucket, "old_id": old["AccessKeyId"], "old": old["SecretAccessKey"],
            "new_id": new["AccessKeyId"], "new": new["SecretAccessKey"]}


@pytest.fixture
def env(tmp_path: Path, moto_endpoint: str, account: dict[str, str],
        db_url: str) -> dict[str, str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "s3_key_id").write_text(account["old_id"])
    (secrets / "s3_secret").write_text(account["old"])
    return {"WAIFUGEN_HOME": str(tmp_path / "state"), "DATABASE_URL": db_url,
            "S3_BUCKET": account["bucket"], "S3_ENDPOINT_URL": moto_endpoint,
            "S3_REGION": REGION, "S3_ACCESS_KEY_ID_FILE": str(secrets / "s3_key_id"),
            "S3_SECRET_ACCESS_KEY_FILE": str(secrets / "s3_secret")}


@pytest.fixture
def iam_on() -> Iterator[None]:
    with enable_iam_authentication():
        yield


def _files(env: dict[str, str]) -> tuple[str, str]:
    return (Path(env["S3_ACCESS_KEY_ID_FILE"]).read_text(),
            Path(env["S3_SECRET_ACCESS_KEY_FILE"]).read_text())


def test_a_new_key_pair_is_proven_then_both_files_are_replaced(
        engine: sa.Engine, env: dict[str, str], account: dict[str, str], iam_on: None) -> None:
    creds.sync(engine, load_settings(env), NOW, env)
    done = creds.rotate(engine, load_settings(env), "s3_secret_access_key", account["new"],
                        now=NOW, environ=env, pair_value=account["new_id"])
    assert done.note == f"S3 accepted it (HeadBucket {account['bucket']})"
    assert read_setting("S3_ACCESS_KEY_ID", env) == account["new_id"]
    assert read_setting("S3_SECRET_ACCESS_KEY", env) == account["new"]
    c = schema.credentials
    with engine.connect() as conn:
        row = conn.execute(sa.select(c).where(c.c.name == "s3_secret_access_key")).one()
    assert row.kind == "s3_secret" and row.validated_at == NOW and row.rotated_at == NOW
    assert row.fingerprint == creds.fingerprint(account["new"])


def test_a_wrong_secret_or_bucket_is_refused_and_nothing_changes(
        engine: sa.Engine, env: dict[str, str], account: dict[str, str], iam_on: None) -> None:
    before = _files(env)
    wrong = "W" * 40
    with pytest.raises(creds.RotationRefused) as refused:
        creds.rotate(engine, load_settings(env), "s3_secret_access_key", wrong, now=NOW,
                     environ=env, pair_value=account["new_id"])
    assert str(refused.value) == ("s3_secret_access_key: not accepted, nothing was changed: "
                                  f"S3 HeadBucket {account['bucket']}: HTTP 403 Forbidden")
    assert _files(env) == before
    missing = {**env, "S3_BUCKET": f"gone-{uuid.uuid4().hex[:8]}"}
    with pytest.raises(Refused, match=r"HeadBucket gone-[0-9a-f]+: HTTP 404"):
        check_s3(account["new"], load_settings(missing), account["new_id"])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.credentials)
                            ).scalar_one() == 0


def test_a_new_key_id_needs_its_own_file(engine: sa.Engine, env: dict[str, str],
                                         account: dict[str, str], iam_on: None) -> None:
    no_id_file = {k: v for k, v in env.items() if k != "S3_ACCESS_KEY_ID_FILE"}
    no_id_file["S3_ACCESS_KEY_ID"] = account["old_id"]
    with pytest.raises(creds.RotationRefused, match=r"^s3_secret_access_key: set "
                       r"S3_ACCESS_KEY_ID_FILE to the secret file the services read"):
        creds.rotate(engine, load_settings(no_id_file), "s3_secret_access_key",
                     account["new"], now=NOW, environ=no_id_file,
                     pair_value=account["new_id"])
    # Without a new key id, the secret is checked with the configured one: the old user's
    # key id with the new key's secret does not sign.
    with pytest.raises(creds.RotationRefused, match="HTTP 403"):
        creds.rotate(engine, load_settings(env), "s3_secret_access_key", account["new"],
                     now=NOW, environ=env)
    assert _files(env) == (account["old_id"], account["old"])
