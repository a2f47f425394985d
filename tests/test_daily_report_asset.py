"""daily_report through Dagster and `waifugen report`, on a database whose marts dbt built from
a small seeded world: the figures (computed here from the seed lists), the Markdown and the
chart in the metadata, one photo and one message in the sandbox chat however often it runs,
the report_delivered check, production without a bot token, and marts not built yet."""

from __future__ import annotations

import base64
import datetime as dt
import io
import random
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import create_database, drop_database
from cryptography.fernet import Fernet
from dbt_run import dbt_build, failure_text
from matplotlib.image import imread

from resources.database import DatabaseResource
from resources.telegram import TelegramResource
from waifugen_assets.app.cli import main
from waifugen_assets.app.cli_report import report
from waifugen_assets.core import schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.money.ledger import ledger_summary
from waifugen_assets.pipeline.partitions import LAUNCH_DATE, daily_partitions
from waifugen_assets.reporting.assets import REPORT_DELIVERED, daily_report
from waifugen_assets.reporting.report_data import GENERATED_STATUSES, read_history
from waifugen_assets.reporting.schedules import daily_report_schedule, report_request

D = dt.date(2026, 12, 1)
ZONES = {"aiko": "Asia/Tokyo", "lena": "Europe/Berlin", "mia": "America/Los_Angeles"}
NAMES = {"aiko": "Aiko <Star> & Co 🌸", "lena": "Lena", "mia": "Mia"}


def local(cid: str, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute),
                               tzinfo=ZoneInfo(ZONES[cid])).astimezone(dt.UTC)


# --- the world: plain lists, inserted as they are ----------------------------------------------

CHARACTERS = [{"id": cid, "name": NAMES[cid], "age": 22, "timezone": zone, "enabled": True}
              for cid, zone in ZONES.items()]
# (id, character, day, slot, status, projected credits)
REELS = [
    (1, "aiko", D, 0, "published", 40), (2, "aiko", D, 1, "branded", 40),
    (3, "aiko", D, 2, "failed", 40), (4, "lena", D, 0, "published", 50),
    (5, "lena", D, 1, "generated", 50), (6, "mia", D, 0, "planned", 30),
    (7, "aiko", D - dt.timedelta(days=1), 0, "published", 40),
    (8, "lena", D - dt.timedelta(days=1), 0, "published", 50),
    (9, "mia", D - dt.timedelta(days=13), 0, "published", 30),
    (10, "mia", D - dt.timedelta(days=14), 0, "published", 30),  # before the chart's days
]
# (reel, platform, state)
POSTS = [(1, "tiktok", "published"), (1, "instagram", "published"),
         (1, "youtube", "failed_permanent"), (2, "tiktok", "planned"),
         (4, "tiktok", "published"), (4, "youtube", "published"),
         (7, "instagram", "published"), (9, "youtube", "published"), (10, "tiktok", "published")]
# A2E task costs: (reel, credits); ledger day = the reel's day. reel 3 failed and was charged.
COSTS = [(1, 42), (2, 38), (3, 40), (4, 55), (5, 48), (7, 41), (8, 39), (9, 40), (10, 40)]
RUNPOD = [(2, 120)]  # seconds of the fallback worker: 6 cents at 0.05
BALANCE_BEFORE, TOP_UP = 10_000, 5_000
# (character, kind, cents, currency, local day, local hour)
REVENUE = [("aiko", "subscription", 999, "USD", D, 10), ("aiko", "tip", 500, "USD", D, 12),
           ("aiko", "refund", 200, "USD", D, 13), ("lena", "purchase", 1_500, "EUR", D, 15),
           ("mia", "renewal", 700, "USD", D - dt.timedelta(days=1), 20),
           # 15:30 UTC on D, but already the next day in Tokyo: not D's.
           ("aiko", "tip", 300, "USD", D + dt.timedelta(days=1), 0)]
SUBSCRIBED = [("aiko", D, 9), ("aiko", D, 11), ("lena", D - dt.timedelta(days=1), 9)]


def reel_day(reel_id: int) -> tuple[str, dt.date]:
    _, cid, day, *_ = next(r for r in REELS if r[0] == reel_id)
    return cid, day


def ledger(provider: str, kind: str, credits: int, ref: str, day: dt.date, hour: int,
           reel_id: int | None = None) -> dict[str, Any]:
    """A credit_ledger row; a reel's costs carry its character."""
    return {"provider": provider, "kind": kind, "credits": credits, "external_ref": ref,
            "ledger_date": day, "reel_id": reel_id,
            "character_id": reel_day(reel_id)[0] if reel_id else None,
            "in_flight_credits": 0 if kind == "balance_snapshot" else None,
            "occurred_at": dt.datetime.combine(day, dt.time(hour, 50 if hour == 23 else 0),
                                               dt.UTC)}


def seed(engine: sa.Engine) -> None:
    s, one = schema, dt.timedelta(days=1)
    spend_d = sum(c for rid, c in COSTS if reel_day(rid)[1] == D)
    with engine.begin() as conn:
        conn.execute(sa.insert(s.characters), CHARACTERS)
        conn.execute(sa.insert(s.reels), [
            {"id": rid, "character_id": cid, "date": day, "slot": slot, "status": status,
             "projected_credits": proj, "scheduled_at": local(cid, day, 9 + slot)}
            for rid, cid, day, slot, status, proj in REELS])
        conn.execute(sa.insert(s.social_posts), [
            {"reel_id": rid, "platform": p, "state": state, "ai_disclosure": True,
             "remote_post_id": f"{p}-{rid}" if state == "published" else None,
             "published_at": (local(*reel_day(rid), 12) if state == "published" else None)}
            for rid, p, state in POSTS])
        conn.execute(sa.insert(s.credit_ledger), [
            ledger("a2e", "task_cost", credits, f"task-{rid}", reel_day(rid)[1], 12, rid)
            for rid, credits in COSTS] + [
            ledger("runpod", "task_cost", seconds, f"runpod-{rid}", reel_day(rid)[1], 12, rid)
            for rid, seconds in RUNPOD] + [
            ledger("a2e", "balance_snapshot", BALANCE_BEFORE, f"balance:{D - one}", D - one, 23),
            ledger("a2e", "top_up", TOP_UP, f"top_up:{D}", D, 23),
            ledger("a2e", "balance_snapshot", BALANCE_BEFORE - spend_d + TOP_UP, f"balance:{D}",
                   D, 23)])
        subs = conn.execute(sa.insert(s.subscribers).returning(s.subscribers.c.id), [
            {"character_id": cid, "platform": "fanvue", "external_id": f"fan-{i}",
             "subscribed_at": local(cid, day, hour)}
            for i, (cid, day, hour) in enumerate(SUBSCRIBED)]).scalars().all()
        assert len(subs) == len(SUBSCRIBED)
        conn.execute(sa.insert(s.revenue_events), [
            {"platform": "fanvue", "event_id": f"ev-{i}", "character_id": cid, "kind": kind,
             "amount_cents": cents, "currency": cur, "occurred_at": local(cid, day, hour, 30)}
            for i, (cid, kind, cents, cur, day, hour) in enumerate(REVENUE)])


# --- what the report must say, from the lists above --------------------------------------------

def expected() -> dict[str, Any]:
    day_reels = [r for r in REELS if r[2] == D]
    generated = {cid: sum(1 for r in day_reels if r[1] == cid and r[4] in GENERATED_STATUSES)
                 for cid in ZONES}
    ledger_spend = sum(c for rid, c in COSTS if reel_day(rid)[1] == D)
    reel_spend = sum(c for rid, c in COSTS if reel_day(rid)[1] == D)  # same reels here
    usd = [r for r in REVENUE if r[3] == "USD" and r[4] == D]
    gross = sum(c for _, k, c, *_ in usd if k != "refund")
    refunds = sum(c for _, k, c, *_ in usd if k == "refund")
    runpod_cents = sum(Decimal(s) * Decimal("0.05") for rid, s in RUNPOD if reel_day(rid)[1] == D)
    cost = ledger_spend + int(runpod_cents)  # one credit = 1 cent; whole cents here
    posts: dict[str, int] = {}
    for rid, platform, state in POSTS:
        if state == "published" and reel_day(rid)[1] == D:
            posts[platform] = posts.get(platform, 0) + 1
    return {"generated": generated, "credits_spent": ledger_spend,
            "reels_generated": sum(generated.values()),
            "credits_per_reel": Decimal(reel_spend) / sum(generated.values()),
            "net_usd": gross - refunds, "gross_usd": gross, "refunds_usd": refunds,
            "margin_usd": gross - refunds - cost, "cost": cost, "posts": posts,
            "runpod_cents": int(runpod_cents),
            "new_subscribers": sum(1 for _, day, _ in SUBSCRIBED if day == D)}


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_db(pg_server_url: str, template_db: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of its own with the world seeded and the report's marts built (once)."""
    name = f"wg_report_{uuid.uuid4().hex[:10]}"
    url = create_database(pg_server_url, name, template=template_db)
    engine = sa.create_engine(url)
    seed(engine)
    engine.dispose()
    # The whole project: a selection would also pick tests of models it does not build.
    proc = dbt_build(url, tmp_path_factory.mktemp("dbt"),
                     dbt_vars=get_settings().money.dbt_vars())
    assert proc.returncode == 0, failure_text(proc)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture
def built(built_db: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(built_db)
    yield engine
    with engine.begin() as conn:  # each test sends the report afresh
        conn.execute(sa.delete(schema.report_messages))
    engine.dispose()


@pytest.fixture
def chat(sandbox: Any) -> str:
    chat_id = str(-1_003_000_000_000 - random.randrange(10**9))
    httpx.post(f"{sandbox.url}/telegram/_control/chats",
               json={"chat_id": chat_id, "type": "supergroup", "started": True}
               ).raise_for_status()
    return chat_id


def sent(sandbox: Any, chat_id: str) -> list[str]:
    listing = httpx.get(f"{sandbox.url}/telegram/_control/sent",
                        params={"chat_id": chat_id}).json()
    return [m["kind"] for m in sorted(listing, key=lambda m: m["message_id"])]


def materialize(db_url: str, telegram: TelegramResource, send: bool = True,
                ) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [daily_report], partition_key=D.isoformat(), instance=instance,
            resources={"database": DatabaseResource(url=db_url), "telegram": telegram},
            run_config={"ops": {"daily_report": {"config": {"send": send}}}},
            raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (mat,) = result.asset_materializations_for_node("daily_report")
    return {k: v.value for k, v in mat.metadata.items()}


def check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == REPORT_DELIVERED
    return evaluation


# --- tests -------------------------------------------------------------------------------------

def test_report_materializes_sends_once_and_checks(built: sa.Engine, built_db: str,
                                                   sandbox: Any, chat: str) -> None:
    telegram = TelegramResource(base_url=f"{sandbox.url}/telegram", alert_chat_id=chat)
    result = materialize(built_db, telegram)
    assert result.success
    meta, want = metadata(result), expected()
    assert meta["credits_spent"] == want["credits_spent"] == 223
    assert meta["reels_generated"] == want["reels_generated"] == 4
    assert meta["posts_published"] == sum(want["posts"].values()) == 4
    assert meta["net_revenue_usd_cents"] == want["net_usd"] == 1_299
    assert meta["margin_usd_cents"] == want["margin_usd"] == 1_070
    assert (meta["photo_delivery"], meta["text_delivery"]) == ("sent", "sent")
    with built.connect() as conn:
        ledger = ledger_summary(conn, D)
    assert meta["budget_used_pct"] == ledger["budget_used_pct"]

    md = meta["report"]
    for line in [
        "## waifugen daily report: 2026-12-01",
        f"- Balance: {BALANCE_BEFORE - want['credits_spent'] + TOP_UP:,} credits",
        f"- Spent on 2026-12-01: {want['credits_spent']} credits",
        f"- Top-ups: {TOP_UP:,} credits",
        f"- Unexplained: {ledger['unexplained_credits']} credits",
        f"- RunPod fallback: USD 0.0{want['runpod_cents']}",
        f"- Generated: {want['reels_generated']} (all reels of the day: 1 planned, "
        "1 generated, 1 branded, 2 published, 1 failed)",
        f"- Cost per reel: {want['credits_per_reel']:.2f} credits = USD 0.56 (139.4% of the "
        "target 40 credits = USD 0.40)",
        "- Most used characters: Aiko \\<Star\\> \\& Co 🌸 2, Lena 2",
        "- Posts published: 4; most active platforms: TikTok 2, Instagram 1, YouTube 1",
        f"- USD: gross {want['gross_usd'] / 100:,.2f}, refunds {want['refunds_usd'] / 100:.2f}, "
        f"net {want['net_usd'] / 100:,.2f}",
        "- EUR: gross 15.00, refunds 0.00, net 15.00",
        f"- Costs: USD {want['cost'] / 100:.2f}; margin: **USD {want['margin_usd'] / 100:,.2f}**",
        f"- Subscribers: {want['new_subscribers']} new, 0 churned",
    ]:
        assert line in md.splitlines(), line
    image = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)",
                         meta["chart"])
    assert image is not None
    assert imread(io.BytesIO(base64.b64decode(image.group(1))), format="png").shape[0] > 0

    evaluation = check(result)
    assert evaluation.passed, evaluation.description
    assert sent(sandbox, chat) == ["photo", "text"]

    # Again (a retried run, the schedule and a backfill): nothing more reaches the chat.
    again = materialize(built_db, telegram)
    assert again.success and check(again).passed
    assert (metadata(again)["photo_delivery"], metadata(again)["text_delivery"]) == (
        "already_sent", "already_sent")
    assert sent(sandbox, chat) == ["photo", "text"]


def test_the_chart_history_comes_from_the_app_tables(built: sa.Engine) -> None:
    with built.connect() as conn:
        history = read_history(conn, D, 20_000)
    days = [D - dt.timedelta(days=13 - i) for i in range(14)]
    assert list(history.days) == days
    assert list(history.reels_generated) == [
        sum(1 for r in REELS if r[2] == day and r[4] in GENERATED_STATUSES) for day in days]
    assert list(history.credits_spent) == [
        sum(c for rid, c in COSTS if reel_day(rid)[1] == day) for day in days]
    for platform in ("tiktok", "instagram", "youtube"):
        assert list(history.posts_published[platform]) == [
            sum(1 for rid, p, st in POSTS
                if p == platform and st == "published" and reel_day(rid)[1] == day)
            for day in days]
    # November has 30 days, December 31.
    assert list(history.daily_budget) == [20_000 / (30 if d.month == 11 else 31)
                                          for d in days]


def test_failed_part_warns_and_a_rerun_completes(built: sa.Engine, built_db: str,
                                                 sandbox: Any, chat: str) -> None:
    telegram = TelegramResource(base_url=f"{sandbox.url}/telegram", alert_chat_id=chat)
    sandbox.add_fault(system="telegram", route="/bot*/sendMessage", action="status",
                      status=400, times=1)
    first = materialize(built_db, telegram)
    assert first.success  # a failed send is the check's business, not the run's
    evaluation = check(first)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description.startswith("2026-12-01: text failed:")
    assert sent(sandbox, chat) == ["photo"]
    second = materialize(built_db, telegram)
    assert check(second).passed
    assert sent(sandbox, chat) == ["photo", "text"]


def test_send_false_and_production_without_a_bot(built: sa.Engine, built_db: str,
                                                 sandbox: Any, chat: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    telegram = TelegramResource(base_url=f"{sandbox.url}/telegram", alert_chat_id=chat)
    quiet = materialize(built_db, telegram, send=False)
    assert quiet.success and check(quiet).passed
    assert "send: false" in metadata(quiet)["delivery"]

    for name, value in {"WAIFUGEN_MODE": "production", "DATABASE_URL": built_db,
                        "OLLAMA_HOST": "http://127.0.0.1:9", "A2E_API_KEY": "sk_test_x",
                        "WAIFUGEN_SECRET_KEY": Fernet.generate_key().decode()}.items():
        monkeypatch.setenv(name, value)
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ALERT_CHAT_ID"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        unconfigured = materialize(built_db, TelegramResource())
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert unconfigured.success
    evaluation = check(unconfigured)
    assert evaluation.passed
    assert "not sent: Telegram is not configured" in evaluation.description
    assert "Telegram is not configured" in metadata(unconfigured)["delivery"]
    assert sent(sandbox, chat) == []
    with built.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.report_messages)) == 0


def test_missing_marts_name_what_to_run(db_url: str, sandbox: Any, chat: str) -> None:
    telegram = TelegramResource(base_url=f"{sandbox.url}/telegram", alert_chat_id=chat)
    result = materialize(db_url, telegram)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    text = str(failure.step_failure_data.user_failure_data.description)
    assert "analytics.daily_revenue_summary, analytics.cost_per_reel, " \
           "analytics.platform_performance" in text
    assert "build the marts first" in text
    assert sent(sandbox, chat) == []


def test_cli_prints_and_sends_once(built: sa.Engine, built_db: str, sandbox: Any, chat: str,
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", built_db)
    monkeypatch.setenv("TELEGRAM_API_URL", f"{sandbox.url}/telegram")
    monkeypatch.setenv("TELEGRAM_ALERT_CHAT_ID", chat)
    monkeypatch.setenv("WAIFUGEN_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        shown = runner.invoke(report, ["--date", D.isoformat()])
        assert shown.exit_code == 0, shown.output
        assert shown.output.startswith("## waifugen daily report: 2026-12-01\n")
        assert sent(sandbox, chat) == []
        first = runner.invoke(report, ["--date", D.isoformat(), "--send"])
        assert first.exit_code == 0, first.output
        assert re.search(r"^photo: sent: sent as message \d+$", first.output, re.M)
        assert re.search(r"^text: sent: sent as message \d+$", first.output, re.M)
        again = runner.invoke(report, ["--date", D.isoformat(), "--send"])
        assert again.exit_code == 0, again.output
        assert re.search(r"^photo: already_sent: sent before, as message \d+$",
                         again.output, re.M)
        assert sent(sandbox, chat) == ["photo", "text"]
        usage = runner.invoke(report, ["--date", D.isoformat(), "--resend-unknown"])
        assert usage.exit_code == 1 and "--resend-unknown needs --send" in usage.output
        # A malformed token: one line naming the setting, never the token, nothing sent.
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "not-a-token-secret-part")
        get_settings.cache_clear()
        bad = runner.invoke(main, ["report", "--date", D.isoformat(), "--send"])
        assert bad.exit_code == 1
        assert bad.output.strip().splitlines()[-1] == (
            "error: TELEGRAM_BOT_TOKEN: a Telegram bot token looks like <bot id>:<secret>")
        assert "not-a-token-secret-part" not in bad.output
        assert sent(sandbox, chat) == ["photo", "text"]
    finally:
        get_settings.cache_clear()


def test_schedule_asks_for_the_utc_day_before_once() -> None:
    at = dt.datetime(2026, 12, 5, 0, 10, tzinfo=dt.UTC)
    context = dg.build_schedule_context(scheduled_execution_time=at)
    (request,) = daily_report_schedule(context)
    assert (request.partition_key, request.run_key) == ("2026-12-04", "report:2026-12-04")
    assert daily_partitions.has_partition_key(request.partition_key)
    # Evaluated late (the daemon was down), it still asks for the day before its tick.
    late = report_request(dt.datetime(2026, 12, 5, 23, 59, tzinfo=dt.UTC))
    assert [r.partition_key for r in late] == ["2026-12-04"]
    assert report_request(dt.datetime.combine(LAUNCH_DATE, dt.time(0, 10), dt.UTC)) == []
