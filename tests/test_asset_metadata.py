"""What the assets tell the Dagster UI: owners, tables and their columns, kinds, freshness and
code references on the definitions; plain numbers, row counts, Markdown reasons and links on
materializations; character and date on every check result. Materializations are real: the
test database, the sandbox over HTTP, ffmpeg."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from resources.fanvue import FanvueResource
from waifugen_assets.app.sandbox_seeding import seed_sandbox_tokens
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings, project_root
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.definitions import defs
from waifugen_assets.pipeline.catalog import cell, column_schema, link, md_table
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.publishing.assets import social_posts
from waifugen_assets.publishing.deadline import last_post_deadline
from waifugen_assets.rendering.assets import reels
from waifugen_assets.roster.assets import characters
from waifugen_assets.roster.model import load_roster
from waifugen_assets.subscribers.assets import DM_OUTCOMES, dm_messages, load_configured_sequences
from waifugen_assets.videos.assets import branded_videos, stored_videos

TABLES = {"characters": schema.characters, "reel_plans": schema.reels, "reels": schema.reels,
          "stored_videos": schema.videos, "branded_videos": schema.videos,
          "social_posts": schema.social_posts, "dm_messages": schema.dm_messages,
          "engagement_metrics": schema.engagement_snapshots,
          "comment_replies": schema.comment_replies,
          "character_phases": schema.character_phases}
OWNERS = {key: ["team:subscribers" if key in ("dm_messages", "comment_replies")
                 else "team:content"] for key in TABLES}
DAY = dt.date(2026, 11, 23)
CID = "lucia-marvento"  # Europe/Madrid
CONTENT = [characters, reel_plans, reels, stored_videos, branded_videos, social_posts]
CONFIG = {"ops": {"branded_videos": {"config": {"preset": "ultrafast", "crf": 35}},
                  "social_posts": {"config": {"only_due": False}}}}
# JSON metadata left on purpose: `tiktok_verified` is read by tests/test_publishing.py (its
# numbers are beside it as tiktok_*), `undisclosed_posts` is a list of ids beside its count.
JSON_ALLOWED = {"tiktok_verified", "undisclosed_posts"}


def _spec(key: str) -> dg.AssetSpec:
    (spec,) = defs.resolve_assets_def(key).specs
    return spec


# --- definitions --------------------------------------------------------------------------------

@pytest.mark.parametrize("key", sorted(TABLES))
def test_definitions_name_owner_table_columns_and_code(key: str) -> None:
    spec = _spec(key)
    table = TABLES[key]
    assert spec.owners == OWNERS[key]
    assert spec.metadata["dagster/table_name"] == f"public.{table.name}"
    columns = spec.metadata["dagster/column_schema"].schema.columns
    assert [c.name for c in columns] == [c.name for c in table.columns]
    for col, sa_col in zip(columns, table.columns, strict=True):
        assert col.type == sa_col.type.compile(dialect=postgresql.dialect()).lower()
        assert col.constraints.nullable == sa_col.nullable
    (ref,) = spec.metadata["dagster/code_references"].code_references
    source = Path(ref.file_path)
    assert source.parent.parent.name == "waifugen_assets" and source.name == "assets.py"
    lines = source.read_text().splitlines()[ref.line_number - 1:]
    assert lines[0].startswith("@dg.asset(")  # the decorator of this asset's function
    assert next(line for line in lines if line.startswith("def ")).startswith(f"def {key}(")


def test_column_schema_is_read_from_sqlalchemy() -> None:
    s = column_schema(schema.social_posts)
    by = {c.name: c for c in s.columns}
    assert by["id"].constraints.unique and "primary key" in by["id"].constraints.other
    assert "references reels.id" in by["reel_id"].constraints.other
    assert by["permalink"].constraints.nullable and not by["state"].constraints.nullable
    assert "default 'planned'" in by["state"].constraints.other
    assert by["published_at"].type == "timestamp with time zone"
    assert "unique (reel_id, platform)" in s.constraints.other
    assert any(c.startswith("check ck_social_posts_disclosed_before_sending:")
               for c in s.constraints.other)


def test_kinds_say_where_each_asset_lives() -> None:
    kinds = {key: _spec(key).kinds for key in TABLES}
    assert all("postgres" in k for k in kinds.values())
    assert {"local"} <= kinds["stored_videos"] and {"ffmpeg", "local"} <= kinds["branded_videos"]
    assert {"tiktok", "instagram", "youtube"} <= kinds["social_posts"]


def test_freshness_where_it_means_something() -> None:
    policy = _spec("social_posts").freshness_policy
    roster = load_roster(project_root() / "characters.yaml")
    deadline = last_post_deadline(roster.enabled(), dt.datetime.now(dt.UTC).date())
    assert deadline is not None
    assert isinstance(policy, type(dg.FreshnessPolicy.cron("0 0 * * *", dt.timedelta(hours=1))))
    assert (policy.deadline_cron, policy.timezone) == (deadline.cron, deadline.timezone)
    assert policy.lower_bound_delta == dt.timedelta(hours=1)
    # The shipped roster's evening ends in Los Angeles: its 19:30 slot is the last of the day.
    assert (deadline.character_id, deadline.last_slot) == ("skye-halloran", "19:30")
    assert policy.deadline_cron == "30 20 * * *" and policy.timezone == "America/Los_Angeles"
    # DMs: runs come only with work, so a time window would call a quiet hour late; a check
    # on each run says whether its messages went out within 30 minutes instead.
    assert _spec("dm_messages").freshness_policy is None
    checks = {c.name for c in defs.resolve_assets_def("dm_messages").check_specs}
    assert checks == {"dms_in_time"}
    assert all(_spec(k).freshness_policy is None for k in TABLES
               if k not in ("social_posts",))


def test_last_post_deadline_takes_the_latest_evening_in_absolute_time() -> None:
    roster = load_roster(project_root() / "characters.yaml")
    by_id = roster.by_id
    winter = dt.date(2026, 1, 15)
    # Tokyo 21:30 is 12:30 UTC; Madrid 22:00 is 21:00 UTC: Madrid ends later.
    d = last_post_deadline([by_id["mika-hoshizora"], by_id["lucia-marvento"]], winter)
    assert (d.character_id, d.cron, d.timezone) == ("lucia-marvento", "0 23 * * *",
                                                    "Europe/Madrid")
    # New York's 20:00 (01:00 UTC the next day) beats Madrid; its deadline is 21:00 local.
    d = last_post_deadline([by_id["lucia-marvento"], by_id["nova-castellane"]], winter)
    assert (d.character_id, d.cron) == ("nova-castellane", "0 21 * * *")
    # A 23:30 slot's deadline wraps past midnight.
    late = type(by_id["lucia-marvento"])(**{**by_id["lucia-marvento"].__dict__,
                                            "slots": ("09:00", "23:30")})
    assert last_post_deadline([late], winter).cron == "30 0 * * *"
    disabled = type(late)(**{**late.__dict__, "enabled": False})
    assert last_post_deadline([disabled], winter) is None


def _load_in_process(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = ("import json; from waifugen_assets.definitions import defs\n"
            "out = {}\n"
            "for k in ('stored_videos', 'branded_videos', 'social_posts'):\n"
            "    (s,) = defs.resolve_assets_def(k).specs\n"
            "    out[k] = {'kinds': sorted(s.kinds), 'fresh': s.freshness_policy is not None}\n"
            "print(json.dumps(out))")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_store_kind_and_deadline_follow_the_settings_at_load(tmp_path: Path) -> None:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
            "WAIFUGEN_HOME": str(tmp_path / "home")}
    # s3 without any S3 secret set: loading reads VIDEO_STORE only.
    proc = _load_in_process({**base, "VIDEO_STORE": "s3",
                             "WAIFUGEN_ROSTER": str(tmp_path / "missing.yaml")}, project_root())
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "s3" in out["stored_videos"]["kinds"] and "local" not in out["stored_videos"]["kinds"]
    assert "s3" in out["branded_videos"]["kinds"]
    assert out["social_posts"]["fresh"] is False  # no roster to take the last slot from

    bad = _load_in_process({**base, "VIDEO_STORE": "ftp"}, project_root())
    assert bad.returncode != 0
    assert "VIDEO_STORE='ftp': expected local or s3" in bad.stderr


def test_markdown_cells_are_one_line_escaped_and_redacted() -> None:
    from waifugen_assets.core.redaction import register_secret

    secret = f"sk_live_{uuid.uuid4().hex}"
    register_secret(secret)
    text = md_table(["a", "b"], [[cell(f"x|y\nz {secret}"), link("open", "https://e.test/a b")]])
    assert secret not in text.value
    assert "x\\|y z" in text.value and "[open](https://e.test/a%20b)" in text.value
    assert link("open", "javascript:alert(1)") == "open"
    assert md_table(["a"], []).value == "none"


# --- materializations and checks ------------------------------------------------------------

@pytest.fixture
def content_world(pipeline_resources: dict, engine: sa.Engine):
    """The roster loaded, only CID publishing (with sandbox tokens), as DAY begins in Madrid."""
    suffix = f"-{uuid.uuid4().hex[:8]}"
    with clock.running_from(dt.datetime(2026, 11, 22, 23, 30, tzinfo=dt.UTC)), \
            dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
        instance.add_dynamic_partitions(characters_partitions.name, [CID])
        pa = schema.platform_accounts
        with engine.begin() as conn:
            conn.execute(sa.delete(pa).where(pa.c.character_id != CID))
        seed_sandbox_tokens(TokenVault(engine, TokenCipher(get_settings().secret_keys)), suffix)
        yield instance


def _value(meta: dict, key: str) -> object:
    return meta[key].value


def _plain(meta: dict) -> None:
    """Numbers are numbers, not JSON: no JSON value but the two kept on purpose."""
    json_keys = {k for k, v in meta.items() if isinstance(v, dg.JsonMetadataValue)}
    assert json_keys <= JSON_ALLOWED, json_keys


def _count(engine: sa.Engine, query: sa.Select) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(query.subquery()))


def test_a_day_materialized_reports_numbers_rows_links_and_whose_checks(
        pipeline_resources: dict, content_world, engine: sa.Engine, sandbox) -> None:
    result = dg.materialize(CONTENT, selection=CONTENT[1:], partition_key=partition_key(CID, DAY),
                            resources=pipeline_resources, instance=content_world,
                            run_config=CONFIG)
    assert result.success
    meta = {k: result.asset_materializations_for_node(k)[0].metadata
            for k in ("reel_plans", "reels", "stored_videos", "branded_videos", "social_posts")}
    r, v, sp = schema.reels, schema.videos, schema.social_posts
    day = sa.and_(r.c.character_id == CID, r.c.date == DAY)
    rendered = r.c.status.in_(("generated", "stored", "branded", "published"))
    expected = {
        "reel_plans": (sa.select(r.c.id), sa.select(r.c.id).where(day)),
        "reels": (sa.select(r.c.id).where(rendered), sa.select(r.c.id).where(rendered, day)),
        "stored_videos": (sa.select(v.c.id).where(v.c.variant == "raw"),
                          sa.select(v.c.id).join(r, r.c.id == v.c.reel_id)
                          .where(v.c.variant == "raw", day)),
        "branded_videos": (sa.select(v.c.id).where(v.c.variant == "branded"),
                           sa.select(v.c.id).join(r, r.c.id == v.c.reel_id)
                           .where(v.c.variant == "branded", day)),
        "social_posts": (sa.select(sp.c.id),
                         sa.select(sp.c.id).join(r, r.c.id == sp.c.reel_id).where(day)),
    }
    for key, (rows, partition) in expected.items():
        m = meta[key]
        _plain(m)
        assert isinstance(m["dagster/row_count"], dg.IntMetadataValue), key
        assert _value(m, "dagster/row_count") == _count(engine, rows) > 0, key
        assert _value(m, "dagster/partition_row_count") == _count(engine, partition) > 0, key
    for key in ("reels", "stored_videos", "branded_videos", "social_posts"):
        assert isinstance(meta[key]["reasons"], dg.MarkdownMetadataValue), key

    # Every live post is linked, by the address the platform gave or TikTok's share URL.
    posts = meta["social_posts"]
    with engine.connect() as conn:
        live = conn.execute(sa.select(sp.c.platform, sp.c.permalink, sp.c.remote_post_id)
                            .where(sp.c.state == "published")).all()
    table = _value(posts, "posts")
    assert live and _value(posts, "live_posts") == len(live)
    for platform, permalink, post_id in live:
        if permalink:
            assert f"]({permalink})" in table, platform
        elif platform == "tiktok" and post_id:
            assert f"/video/{post_id})" in table
    assert table.count("[open](") == _value(posts, "live_links") > 0
    assert isinstance(posts["tiktok_public_ids"], dg.IntMetadataValue)
    assert "| tiktok | published |" in _value(posts, "states")

    # Each check says whose day it judged, with plain values.
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"budget", "made_in_time", "video_integrity", "ai_disclosure"}
    for name, e in evaluations.items():
        assert _value(e.metadata, "character") == CID, name
        assert _value(e.metadata, "date") == DAY.isoformat(), name
        assert e.description.startswith(f"{CID} {DAY.isoformat()}: "), name
        _plain(e.metadata)
        assert e.passed, (name, e.description)
    integrity = evaluations["video_integrity"].metadata
    assert _value(integrity, "verified") == _count(engine, expected["branded_videos"][1])
    assert isinstance(integrity["withdrawn"], dg.IntMetadataValue)
    disclosure = evaluations["ai_disclosure"].metadata
    assert _value(disclosure, "posts_checked") == len(live)
    assert _value(disclosure, "undisclosed") == 0
    assert isinstance(evaluations["budget"].metadata["spent"], dg.IntMetadataValue)


def test_missed_slots_are_counted_and_listed_by_reel(pipeline_resources: dict, engine: sa.Engine,
                                                    sandbox_server) -> None:
    with clock.running_from(dt.datetime.combine(DAY + dt.timedelta(days=2), dt.time(12),
                                                 dt.UTC)), dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
        instance.add_dynamic_partitions(characters_partitions.name, [CID])
        result = dg.materialize([characters, reel_plans, reels], selection=[reel_plans, reels],
                                partition_key=partition_key(CID, DAY),
                                resources=pipeline_resources, instance=instance)
    assert result.success
    r = schema.reels
    with engine.connect() as conn:
        missed = dict(conn.execute(sa.select(r.c.id, r.c.failure_reason).where(
            r.c.character_id == CID, r.c.date == DAY, r.c.status == "skipped")).all())
    assert missed
    (check,) = [e for e in result.get_asset_check_evaluations()
                if e.check_name == "made_in_time"]
    assert not check.passed and check.severity is dg.AssetCheckSeverity.WARN
    assert _value(check.metadata, "missed") == len(missed) == _value(check.metadata, "reels")
    assert check.description.startswith(
        f"{CID} {DAY}: {len(missed)} of {len(missed)} reel(s) missed their slot")
    table = _value(check.metadata, "reasons")
    assert all(f"| {reel_id} | {cell(reason)} |" in table for reel_id, reason in missed.items())
    meta = result.asset_materializations_for_node("reels")[0].metadata
    assert _value(meta, "skipped_missed_slot") == len(missed)
    assert _value(meta, "dagster/partition_row_count") == 0  # nothing rendered


def test_budget_history_tells_characters_apart(pipeline_resources: dict,
                                               sandbox_server) -> None:
    ids = ["mika-hoshizora", "lucia-marvento"]
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
        instance.add_dynamic_partitions(characters_partitions.name, ids)
        for cid in ids:
            assert dg.materialize([characters, reel_plans], selection=[reel_plans],
                                  partition_key=partition_key(cid, DAY),
                                  resources=pipeline_resources, instance=instance).success
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("reel_plans"), "budget"), limit=10)
    evaluations = [rec.event.dagster_event.event_specific_data for rec in history]
    assert [e.metadata["character"].value for e in evaluations] == ids[::-1]  # newest first
    assert {e.metadata["date"].value for e in evaluations} == {DAY.isoformat()}
    assert [e.description.split(":")[0] for e in evaluations] == [f"{c} {DAY}" for c in ids[::-1]]


# --- dm_messages ------------------------------------------------------------------------------

DM_CID = "mika-hoshizora"  # Asia/Tokyo; no tokens seeded here: no channel can send
NOON_TOKYO = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
DM_DAY = dt.date(2026, 11, 25)


def _dm_run(resources: dict, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize([dm_messages], partition_key=partition_key(DM_CID, DM_DAY),
                          resources=resources, instance=instance, run_config={"ops": {
                              "dm_messages": {"config": {"now": NOON_TOKYO.isoformat(),
                                                         "poll": False}}}})


def test_dm_runs_count_outcomes_and_say_when_messages_are_late(
        pipeline_resources: dict, engine: sa.Engine, sandbox_server) -> None:
    resources = {**pipeline_resources,
                 "fanvue": FanvueResource(base_url=f"{sandbox_server.url}/fanvue")}
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=resources, instance=instance).success
        instance.add_dynamic_partitions(characters_partitions.name, [DM_CID])
        first = _dm_run(resources, instance)
        (check,) = first.get_asset_check_evaluations()
        assert check.passed and _value(check.metadata, "late") == 0
        assert _value(check.metadata, "character") == DM_CID

        # Two fans two hours ago: one message could go then (it is late now, whatever the
        # run retries), one waits for quiet hours on purpose (not late).
        sequence_id = next(sid for sid, seq in load_configured_sequences(engine).items()
                           if seq.character in (None, DM_CID) and seq.tier == "standard")
        two_hours_ago = NOON_TOKYO - dt.timedelta(hours=2)
        s, dm = schema.subscribers, schema.dm_messages
        with engine.begin() as conn:
            fans = conn.execute(sa.insert(s).returning(s.c.id), [
                {"character_id": DM_CID, "platform": "fanvue", "external_id": f"fan-{n}",
                 "subscribed_at": two_hours_ago} for n in range(2)]).scalars().all()
            conn.execute(sa.insert(dm), [
                {"subscriber_id": fans[0], "sequence_id": sequence_id, "step": 0,
                 "state": "planned", "due_at": two_hours_ago, "error": None,
                 "not_before": None},
                {"subscriber_id": fans[1], "sequence_id": sequence_id, "step": 0,
                 "state": "planned", "due_at": two_hours_ago, "error": "quiet_hours",
                 "not_before": NOON_TOKYO + dt.timedelta(hours=3)}])
        second = _dm_run(resources, instance)
    meta = second.asset_materializations_for_node("dm_messages")[0].metadata
    _plain(meta)
    assert all(isinstance(meta[k], dg.IntMetadataValue) for k in DM_OUTCOMES)
    assert _value(meta, "waiting") == 1 and _value(meta, "sent") == 0
    assert "no fanvue channel configured" in _value(meta, "reasons")
    mine = sa.select(dm.c.id).join(s, s.c.id == dm.c.subscriber_id).where(
        s.c.character_id == DM_CID)
    tokyo = ZoneInfo("Asia/Tokyo")
    start = dt.datetime.combine(DM_DAY, dt.time(), tokyo)
    assert _value(meta, "dagster/row_count") == _count(engine, mine) >= 2
    assert _value(meta, "dagster/partition_row_count") == _count(engine, mine.where(
        dm.c.due_at >= start, dm.c.due_at < start + dt.timedelta(days=1))) >= 2

    (check,) = second.get_asset_check_evaluations()
    assert not check.passed and check.severity is dg.AssetCheckSeverity.WARN
    assert _value(check.metadata, "late") == 1
    assert _value(check.metadata, "oldest_late_minutes") == 120.0
    assert _value(check.metadata, "date") == DM_DAY.isoformat()
    assert check.description.startswith(f"{DM_CID} {DM_DAY}: 1 message(s) still unsent")
