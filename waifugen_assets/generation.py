"""Generation stage: `reel_plans` (the day's slots become planned reels).

Idempotent: a reel is identified by (character, date, tier, slot) and a plan, once written, is
never rewritten by a re-materialization (later stages may already be working from it). A
second run of the same partition therefore writes nothing and reports the reels as existing.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.database import DatabaseResource
from resources.ollama import OllamaResource
from waifugen_assets import schema
from waifugen_assets.characters import characters
from waifugen_assets.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.planning import PlanRequest, plan_texts
from waifugen_assets.roster import local_slot_utc


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[characters],
    group_name="content",
    kinds={"ollama", "postgres"},
    pool="llm",
    description="The day's posting slots of one character as planned reels (script, caption, "
    "hashtags, title, AI disclosure), written by the LLM with a template fallback.",
)
def reel_plans(
    context: dg.AssetExecutionContext, database: DatabaseResource, ollama: OllamaResource
) -> dg.MaterializeResult:
    character_id, day = split_partition_key(context.partition_key)
    engine = database.get_engine()
    ch = schema.characters
    reels = schema.reels
    with engine.connect() as conn:
        row = conn.execute(sa.select(ch).where(ch.c.id == character_id)).mappings().first()
        existing = set(conn.execute(
            sa.select(reels.c.slot).where(
                reels.c.character_id == character_id, reels.c.date == day,
                reels.c.tier == "standard")
        ).scalars())
    if row is None:
        raise dg.Failure(f"character {character_id!r} is not in the characters table; "
                         "materialize `characters` first", allow_retries=False)
    if not row["enabled"]:
        context.log.info("character %s is disabled: nothing planned", character_id)
        return dg.MaterializeResult(metadata={"planned": 0, "existing": len(existing),
                                              "note": "character disabled"})

    zone = ZoneInfo(row["timezone"])
    writer = ollama.plan_writer()
    new_rows = []
    for slot, hhmm in enumerate(row["slots"]):
        if slot in existing:
            continue
        req = PlanRequest(character_id=character_id, character_name=row["name"],
                          persona=row["persona"], date=day, slot=slot, slot_time=hhmm)
        texts = plan_texts(req, writer)
        new_rows.append({
            "character_id": character_id, "date": day, "slot": slot, "tier": "standard",
            "content_rating": row["content_rating"],
            "scheduled_at": local_slot_utc(day, hhmm, zone),
            "plan": {**texts, "slot_time": hhmm}, "status": "planned",
        })

    inserted = 0
    if new_rows:
        with engine.begin() as conn:
            stmt = insert(reels).values(new_rows).on_conflict_do_nothing(
                index_elements=[reels.c.character_id, reels.c.date, reels.c.tier, reels.c.slot])
            inserted = len(conn.execute(stmt.returning(reels.c.id)).all())
    sources = [r["plan"]["source"] for r in new_rows]
    return dg.MaterializeResult(metadata={
        "planned": inserted,
        "existing": len(existing),
        "slots": len(row["slots"]),
        "llm_plans": sources.count("ollama"),
        "template_fallbacks": sources.count("template"),
    })
