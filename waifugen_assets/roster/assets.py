"""The `characters` asset: the roster file, validated, upserted into the app database.

The whole file is validated before the first write, so a bad roster changes nothing. Rows are
never deleted (reels, posts and ledgers point at them): a character removed from the file is
disabled, and the roster sensor then drops its partitions.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
from dataclasses import dataclass, field

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.database import DatabaseResource
from resources.roster_file import RosterResource
from waifugen_assets.core import schema
from waifugen_assets.pipeline.catalog import CONTENT_TEAM, row_counts, table_metadata
from waifugen_assets.roster.model import Character, Roster, RosterError, load_roster

_COMPARED = ("name", "persona", "age", "timezone", "content_rating", "slots", "watermark",
             "a2e_avatar_id", "a2e_voice_id", "budget_share", "enabled")


@dataclass
class RosterSync:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.disabled)


def character_row(c: Character) -> dict[str, object]:
    return {
        "id": c.id,
        "name": c.name,
        "persona": c.persona,
        "age": c.age,
        "timezone": c.timezone,
        "content_rating": c.content_rating,
        "slots": list(c.slots),
        "watermark": c.watermark.as_dict() if c.watermark else None,
        "a2e_avatar_id": c.a2e_avatar_id,
        "a2e_voice_id": c.a2e_voice_id,
        "budget_share": c.budget_share,
        "enabled": c.enabled,
    }


def sync_roster(conn: sa.Connection, roster: Roster) -> RosterSync:
    """Upsert every character and its platform accounts; disable characters no longer listed."""
    result = RosterSync()
    t = schema.characters
    for c in roster.characters:
        row = character_row(c)
        stmt = insert(t).values(**row)
        changed = sa.or_(*(t.c[k].is_distinct_from(stmt.excluded[k]) for k in _COMPARED))
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.id],
            set_={**{k: stmt.excluded[k] for k in _COMPARED}, "updated_at": sa.func.now()},
            where=changed,
        ).returning(sa.literal_column("xmax = 0").label("inserted"))
        outcome = conn.execute(stmt).first()
        if outcome is None:
            result.unchanged.append(c.id)
        elif outcome.inserted:
            result.added.append(c.id)
        else:
            result.updated.append(c.id)
        _sync_accounts(conn, c)

    listed = [c.id for c in roster.characters]
    disabled = conn.execute(
        sa.update(t)
        .where(t.c.id.not_in(listed), t.c.enabled.is_(True))
        .values(enabled=False, updated_at=sa.func.now())
        .returning(t.c.id)
    ).scalars().all()
    result.disabled.extend(sorted(disabled))
    return result


def _sync_accounts(conn: sa.Connection, c: Character) -> None:
    pa = schema.platform_accounts
    for platform, account in c.platforms.items():
        stmt = insert(pa).values(character_id=c.id, platform=platform, account_ref=account.account)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[pa.c.character_id, pa.c.platform],
            set_={"account_ref": stmt.excluded.account_ref, "updated_at": sa.func.now()},
            where=pa.c.account_ref.is_distinct_from(stmt.excluded.account_ref),
        ))


def enabled_character_ids(conn: sa.Connection) -> list[str]:
    t = schema.characters
    return list(conn.execute(sa.select(t.c.id).where(t.c.enabled).order_by(t.c.id)).scalars())


def roster_failure(exc: RosterError) -> dg.Failure:
    lines = [str(issue) for issue in exc.issues]
    return dg.Failure(
        description=f"roster has {len(lines)} error(s); nothing was written:\n" + "\n".join(lines),
        metadata={"errors": dg.MetadataValue.text("\n".join(lines))},
        allow_retries=False,
    )


@dg.asset(
    group_name="roster",
    kinds={"yaml", "postgres"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.characters),
    description="The roster file validated and upserted into the characters table.",
)
def characters(database: DatabaseResource, roster: RosterResource) -> dg.MaterializeResult:
    try:
        loaded = load_roster(roster.file())
    except RosterError as exc:
        raise roster_failure(exc) from None
    with database.get_engine().begin() as conn:
        sync = sync_roster(conn, loaded)
        counts = row_counts(conn, sa.select(schema.characters.c.id))
    return dg.MaterializeResult(
        metadata={
            "characters": len(loaded.characters),
            "enabled": len(loaded.enabled()),
            # counts to plot, names to read
            "added_count": len(sync.added),
            "updated_count": len(sync.updated),
            "disabled_count": len(sync.disabled),
            "added": ", ".join(sync.added) or "-",
            "updated": ", ".join(sync.updated) or "-",
            "disabled": ", ".join(sync.disabled) or "-",
            "roster_sha256": loaded.sha256,
            **counts,
        }
    )


def partition_changes(wanted: list[str], existing: list[str]) -> tuple[list[str], list[str]]:
    """(to add, to remove) that make the `characters` dynamic partitions equal `wanted`."""
    return sorted(set(wanted) - set(existing)), sorted(set(existing) - set(wanted))
