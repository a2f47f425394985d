"""The `backups` asset: a backup set of the app database, the Dagster database and the
server's roles (every 6 hours, the `backup` schedule), then the retention (grandfather-
father-son), and a restore drill of the new set when the last passing one is older than
DRILL_EVERY. Logic: backups.py, backup_verify.py, backup_retention.py."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg

from resources.database import DatabaseResource
from waifugen_assets.core import clock
from waifugen_assets.core.config import get_settings
from waifugen_assets.operations.backup_retention import prune
from waifugen_assets.operations.backup_verify import last_passing_verify, verify_set
from waifugen_assets.operations.backups import (
    BackupError,
    create_backup,
    dagster_source,
    load_config,
)

# The RestoreDrillStale alert fires after 8 days without a passing drill: drill at 6.
DRILL_EVERY = dt.timedelta(days=6)


@dg.asset(
    group_name="operations",
    kinds={"postgres"},
    description="A backup set: pg_dump -Fc of the app and the Dagster database (the sandbox's "
    "Dagster SQLite files via SQLite's backup API) and pg_dumpall --globals-only, each with "
    "its sha256, row counts and sequence values, to BACKUP_DIR and BACKUP_S3_URL. Then old "
    "sets pruned (grandfather-father-son) and, weekly, a restore drill into a scratch "
    "database. docs/runbooks/database-corruption.md",
)
def backups(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    config = load_config(get_settings(), database.resolved_url(), dagster_source(context.instance))
    try:
        made = create_backup(config)
    except BackupError as exc:
        raise dg.Failure(description=str(exc)) from None
    archives = {a.database: a for a in made.archives}
    failed = [a.error or f"{a.database}: {a.state}" for a in made.archives
              if a.state != "done" or a.error]
    if failed:
        raise dg.Failure(description=f"backup set {made.set_id}: " + "; ".join(failed))
    context.log.info(f"backup set {made.set_id}: " + ", ".join(
        f"{a.database} {a.bytes} bytes" for a in made.archives))
    metadata: dict[str, dg.RawMetadataValue] = {
        "set_id": made.set_id,
        **{f"{db}_bytes": a.bytes or 0 for db, a in archives.items()},
        **{f"{db}_sha256": a.sha256 or "" for db, a in archives.items()},
        "location": archives["app"].location,
    }
    last = last_passing_verify(config)
    if last is None or clock.now() - last >= DRILL_EVERY:
        _, checks = verify_set(config, made.set_id)
        metadata["restore_drill"] = "; ".join(f"{c.database}: {'ok' if c.ok else 'FAILED'} "
                                              f"({c.detail})" for c in checks)
        if not all(c.ok for c in checks):
            raise dg.Failure(description=f"restore drill of {made.set_id} failed: "
                             + metadata["restore_drill"])
    pruned = prune(config)
    metadata["sets_kept"] = len(pruned.kept)
    metadata["sets_pruned"] = len(pruned.pruned)
    for line in pruned.errors:
        context.log.warning(f"prune: {line}")
    return dg.MaterializeResult(metadata=metadata)
