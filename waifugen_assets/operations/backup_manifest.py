"""Each set's catalog rows, also beside its archives as `manifest.json` (in BACKUP_DIR and,
when uploading, in the bucket): when the app database that holds the `backups` table is
itself lost, the archives can still be found, checked against their sha256 and restored
(`waifugen backup list|restore|fetch --manifest`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from waifugen_assets.operations import backup_store
from waifugen_assets.operations.backup_model import (
    Archive,
    BackupConfig,
    BackupError,
    BackupSet,
    one_line,
)

MANIFEST = "manifest.json"
_TIMES = ("started_at", "finished_at", "verified_at", "pruned_at")


def _dumps(backup_set: BackupSet) -> bytes:
    rows = [{k: (v.isoformat() if isinstance(v, dt.datetime) else v)
             for k, v in dataclasses.asdict(a).items()} for a in backup_set.archives]
    return json.dumps({"set_id": backup_set.set_id, "archives": rows}, indent=2).encode()


def _loads(data: bytes, where: str) -> BackupSet:
    try:
        raw: dict[str, Any] = json.loads(data)
        archives = [Archive(**{k: (dt.datetime.fromisoformat(v) if k in _TIMES and v else v)
                               for k, v in row.items()}) for row in raw["archives"]]
        return BackupSet(raw["set_id"], archives)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{where} is not a backup manifest ({exc})") from None


def write_manifest(config: BackupConfig, backup_set: BackupSet) -> str | None:
    """Write the manifest beside the archives (and upload it); the upload's error in one line,
    or None. The local copy is written whatever the bucket says."""
    data = _dumps(backup_set)
    with backup_store.write_archive(config.backup_dir / backup_set.set_id / MANIFEST) as out:
        out.write(data)
    if config.s3 is not None:
        try:
            backup_store.put_bytes(config.s3, config.s3.key(backup_set.set_id, MANIFEST), data)
        except Exception as exc:  # the same outage as an archive's upload: said, not fatal
            return one_line(exc)
    return None


def read_manifest(config: BackupConfig, set_id: str) -> BackupSet:
    """A set as its manifest describes it: BACKUP_DIR's copy, else the bucket's."""
    local = config.backup_dir / set_id / MANIFEST
    if local.is_file():
        return _loads(local.read_bytes(), str(local))
    places = str(config.backup_dir)
    if config.s3 is not None:
        key = config.s3.key(set_id, MANIFEST)
        data = backup_store.get_bytes(config.s3, key)
        if data is not None:
            return _loads(data, config.s3.url(key))
        places += f" or {config.s3.url(config.s3.key(set_id, ''))}"
    raise BackupError(f"no manifest of backup set {set_id} in {places}")


def manifest_set_ids(config: BackupConfig) -> list[str]:
    """Sets that have a manifest, locally or in the bucket, newest first."""
    found = {p.parent.name for p in config.backup_dir.glob(f"*/{MANIFEST}")}
    if config.s3 is not None:
        prefix = f"{config.s3.prefix}/" if config.s3.prefix else ""
        found |= {k[len(prefix):].split("/")[0] for k in backup_store.list_keys(config.s3, prefix)
                  if k.endswith(f"/{MANIFEST}") and k[len(prefix):].count("/") == 1}
    return sorted(found, reverse=True)


def delete_manifest(config: BackupConfig, set_id: str) -> None:
    backup_store.delete(str(config.backup_dir / set_id / MANIFEST), None)
    if config.s3 is not None:
        backup_store.delete(config.s3.url(config.s3.key(set_id, MANIFEST)), config.s3)
