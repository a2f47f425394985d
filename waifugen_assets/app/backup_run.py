"""The backup `waifugen run` leaves in sandbox mode: a set of the sandbox's databases (the app
database and the Dagster instance), then its restore drill, as the 6-hourly `backup` schedule
makes them in production. One line either way; a failure is the run's failure."""

from __future__ import annotations

import dagster as dg

from waifugen_assets.core.config import ConfigError, Settings
from waifugen_assets.operations.backup_store import StoreError
from waifugen_assets.operations.backup_verify import verify_set
from waifugen_assets.operations.backups import (
    BackupError,
    create_backup,
    dagster_source,
    load_config,
    one_line,
)
from waifugen_assets.operations.pg_tools import ToolError


def backup_after_run(settings: Settings, database_url: str,
                     instance: dg.DagsterInstance) -> tuple[bool, str]:
    """(ok, one line): the set made and whether its restore drill passed."""
    try:
        config = load_config(settings, database_url, dagster_source(instance))
        made = create_backup(config)
        failed = [f"{a.database}: {a.error}" for a in made.archives if a.error]
        if failed:
            return False, f"backup {made.set_id} failed: " + "; ".join(failed)
        set_id, checks = verify_set(config, made.set_id)
    except (BackupError, ConfigError, StoreError, ToolError) as exc:  # their own one line
        return False, f"backup failed: {exc}"
    except Exception as exc:  # tools, storage, database, disk: the run's one line, no traceback
        return False, f"backup failed: {type(exc).__name__}: {one_line(exc)}"
    bad = [f"{c.database}: {c.detail}" for c in checks if not c.ok]
    if bad:
        return False, f"backup {set_id} made but its restore drill failed: " + "; ".join(bad)
    return True, (f"backup {set_id}: {len(checks)} archive(s) in {config.backup_dir}, restore "
                  "drill passed (row counts, Alembic revision, sequences); `waifugen backup "
                  "verify` checks it again")
