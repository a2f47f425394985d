"""social_posts against the TikTok, Instagram and YouTube sandboxes over HTTP, real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from reconfigure import reconfigured

from sandbox.systems.youtube import channel_id_for
from waifugen_assets.app.sandbox_seeding import seed_sandbox_tokens
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.publishing.assets import social_posts
from waifugen_assets.rendering.assets import reels
from waifugen_assets.roster.assets import characters
from waifugen_assets.videos.assets import branded_videos, stored_videos

DAY = dt.date(2026, 11, 23)
CID = "lucia-marvento"
ASSETS = [characters, reel_plans, reels, stored_videos, branded_videos, social_posts]
CONFIG = {"ops": {"branded_videos": {"config": {"preset": "ultrafast", "crf": 35}},
                  "social_posts": {"config": {"only_due": False}}}}


@pytest.fixture(autouse=True)
def _on_day() -> None:
    """Every test runs as DAY begins in Madrid: its slots are still ahead, none is stale."""
    with clock.running_from(dt.datetime(2026, 11, 22, 23, 30, tzinfo=dt.UTC)):
        yield


@pytest.fixture
def suffix() -> str:
    return f"-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def world(pipeline_resources: dict, engine: sa.Engine, suffix: str):
    with dg.instance_for_test() as inst:
        assert dg.materialize([characters], resources=pipeline_resources, instance=inst).success
        inst.add_dynamic_partitions(characters_partitions.name, [CID])
        vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
        # Only this character publishes in these tests.
        pa = schema.platform_accounts
        with engine.begin() as conn:
            conn.execute(sa.delete(pa).where(pa.c.character_id != CID))
        assert len(seed_sandbox_tokens(vault, suffix)) == 3
        yield inst, vault


def _run(resources: dict, instance, selection=ASSETS[1:]) -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS, selection=selection, partition_key=partition_key(CID, DAY),
                          resources=resources, instance=instance, raise_on_error=False,
                          run_config={"ops": {k: v for k, v in CONFIG["ops"].items()
                                              if any(a.key.path[-1] == k for a in selection)}})


def _posts(engine: sa.Engine) -> list[dict]:
    sp = schema.social_posts
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(sp).order_by(sp.c.reel_id, sp.c.platform))
                .mappings()]


def _published(url: str, suffix: str, engine: sa.Engine) -> dict[str, list[dict]]:
    account = f"{CID}{suffix}"
    tiktok = httpx.get(f"{url}/tiktok/_control/published", params={"account": account}).json()
    ig_user = _ig_user(engine)
    ig = httpx.get(f"{url}/instagram/_control/published", params={"ig_user_id": ig_user}).json()
    yt = httpx.get(f"{url}/youtube/_control/published",
                   params={"account": channel_id_for(f"1//sandbox-{account}")}).json()
    def items(body: object) -> list:  # a list, or {"...": [...]}
        return body if isinstance(body, list) else next(
            v for v in body.values() if isinstance(v, list))
    return {"tiktok": items(tiktok), "instagram": items(ig), "youtube": items(yt)}


def _ig_user(engine: sa.Engine) -> str:
    pa = schema.platform_accounts
    with engine.connect() as conn:
        return conn.scalar(sa.select(pa.c.external_user_id).where(
            pa.c.character_id == CID, pa.c.platform == "instagram"))


def _branded(engine: sa.Engine) -> int:
    r = schema.reels
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).where(
            r.c.character_id == CID, r.c.status.in_(("branded", "published"))))


def test_publishes_every_reel_once_on_every_platform(pipeline_resources, world, engine,
                                                     sandbox, suffix) -> None:
    instance, vault = world
    result = _run(pipeline_resources, instance)
    assert result.success
    n = _branded(engine)
    posts = _posts(engine)
    assert n > 0 and len(posts) == 3 * n
    assert {p["state"] for p in posts} == {"published"}, [p["last_error"] for p in posts]
    assert all(p["ai_disclosure"] and p["remote_handle"] for p in posts)
    published = _published(sandbox.url, suffix, engine)
    assert {k: len(v) for k, v in published.items()} == {"tiktok": n, "instagram": n,
                                                         "youtube": n}
    assert all(p["is_aigc"] for p in published["tiktok"])
    assert all(p["has_ai_label"] for p in published["instagram"])
    assert all(p["containsSyntheticMedia"] for p in published["youtube"])
    (check,) = [e for e in result.get_asset_check_evaluations()
                if e.check_name == "ai_disclosure"]
    assert check.passed
    # YouTube's expired access token was refreshed once, before the first upload.
    assert vault.load(CID, "youtube").access_token.startswith("ya29.sandbox")

    again = _run(pipeline_resources, instance, selection=[social_posts])
    assert again.success
    assert {k: len(v) for k, v in _published(sandbox.url, suffix, engine).items()} == {
        "tiktok": n, "instagram": n, "youtube": n}


def test_one_failing_platform_leaves_the_others_published(pipeline_resources, world, engine,
                                                          sandbox, suffix) -> None:
    instance, _ = world
    sandbox.add_fault(system="youtube", route="/upload/youtube/v3/videos", method="POST",
                      action="status", status=400)
    assert _run(pipeline_resources, instance).success
    n = _branded(engine)
    by = {}
    for p in _posts(engine):
        by.setdefault(p["platform"], set()).add(p["state"])
    assert by == {"tiktok": {"published"}, "instagram": {"published"},
                  "youtube": {"failed_permanent"}}
    published = _published(sandbox.url, suffix, engine)
    assert (len(published["tiktok"]), len(published["instagram"]), len(published["youtube"])) \
        == (n, n, 0)


def test_spent_instagram_limit_defers(pipeline_resources, world, engine, sandbox,
                                      suffix) -> None:
    instance, _ = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    # The account exists once its token was looked up; spend its limit first.
    token = f"IGAAsandbox{CID.replace('-', '')}{suffix.replace('-', '')}"
    ig_user = httpx.get(f"{sandbox.url}/instagram/_control/account",
                        params={"access_token": token}).json()["ig_user_id"]
    httpx.post(f"{sandbox.url}/instagram/_control/quota",
               json={"ig_user_id": ig_user, "quota_usage": 50}).raise_for_status()
    assert _run(pipeline_resources, instance, selection=[social_posts]).success
    states = {(p["platform"], p["state"]) for p in _posts(engine)}
    assert ("instagram", "deferred") in states and not any(
        pl == "instagram" and s != "deferred" for pl, s in states)
    assert all(p["next_attempt_at"] for p in _posts(engine) if p["platform"] == "instagram")


def test_lost_answers_are_reconciled_exactly_once(pipeline_resources, world, engine,
                                                  sandbox, suffix) -> None:
    instance, _ = world
    sandbox.add_fault(system="tiktok", route="/v2/post/publish/video/init/", action="drop",
                      phase="after", times=1)
    sandbox.add_fault(system="instagram", route="*/media_publish", action="drop",
                      phase="after", times=1)
    assert _run(pipeline_resources, instance).success
    _run(pipeline_resources, instance, selection=[social_posts])  # settles anything left
    n = _branded(engine)
    assert {p["state"] for p in _posts(engine)} == {"published"}
    published = _published(sandbox.url, suffix, engine)
    assert {k: len(v) for k, v in published.items()} == {"tiktok": n, "instagram": n,
                                                         "youtube": n}


def test_expired_tiktok_token_is_refreshed_and_rotated(pipeline_resources, world, engine,
                                                       sandbox, suffix) -> None:
    instance, vault = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    httpx.post(f"{sandbox.url}/tiktok/_control/expire_token",
               json={"account": f"{CID}{suffix}"}).raise_for_status()
    assert _run(pipeline_resources, instance, selection=[social_posts]).success
    assert {p["state"] for p in _posts(engine) if p["platform"] == "tiktok"} == {"published"}
    tokens = vault.load(CID, "tiktok")
    assert tokens.refresh_token != f"rft.sandbox.{CID}{suffix}"


def test_posting_sensor_asks_once_per_partition_and_again_for_due_retries(
        pipeline_resources, world, engine, db_url) -> None:
    from resources.database import DatabaseResource
    from sensors.posting import posting_sensor

    instance, _ = world
    evening = dt.datetime(2026, 11, 23, 22, 30, tzinfo=dt.UTC)  # 23:30 in Madrid

    def tick() -> list[str]:
        context = dg.build_sensor_context(instance=instance,
                                          resources={"database": DatabaseResource(url=db_url)})
        with clock.running_from(evening):
            return [r.run_key for r in posting_sensor(context).run_requests]

    def key(*work: str) -> str:
        return f"post:{CID}|{DAY}:{','.join(work)}"

    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    r = schema.reels
    with engine.connect() as conn:
        ids = list(conn.execute(sa.select(r.c.id).where(r.c.status.in_(("branded", "published")))
                                .order_by(r.c.scheduled_at, r.c.id)).scalars())
    assert tick() == [key(*(f"{i}.0" for i in ids))]  # every slot of DAY has come: one run
    assert _run(pipeline_resources, instance, selection=[social_posts]).success
    assert tick() == []  # published everywhere
    sp = schema.social_posts
    with engine.begin() as conn:
        conn.execute(sa.update(sp).where(sp.c.reel_id == ids[0], sp.c.platform == "youtube")
                     .values(state="failed_retryable", published_at=None,
                             next_attempt_at=evening - dt.timedelta(minutes=1)))
    assert tick() == [key(f"{ids[0]}.3")]  # one attempt per platform so far
    with engine.begin() as conn:
        conn.execute(sa.update(sp).where(sp.c.reel_id == ids[0], sp.c.platform == "youtube")
                     .values(next_attempt_at=evening + dt.timedelta(hours=1)))
    assert tick() == [key(f"{ids[0]}.0")]  # not due yet: in flight, asked for once


def test_fault_storm_publishes_everything_exactly_once(pipeline_resources, world, engine,
                                                      sandbox, suffix) -> None:
    """A fifth of all platform requests fail: 5xx, 429 with Retry-After, timeouts (the answer
    comes after the client gave up, before or after the platform acted), connections dropped
    before or after the platform acted. Reruns finish the job; nothing is published twice and
    every Retry-After is honoured."""
    instance, _ = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    n = _branded(engine)
    _make_texts_unique(engine, suffix)
    timeout = 0.5
    resources = {**pipeline_resources,
                 **{name: reconfigured(pipeline_resources[name], timeout_seconds=timeout)
                    for name in ("tiktok", "instagram", "youtube")}}
    storm = [{"action": "status", "status": 503}, {"action": "rate_limit", "retry_after": 1},
             {"action": "drop"}, {"action": "drop", "phase": "after"},
             {"action": "delay", "delay": 3 * timeout},
             {"action": "delay", "delay": 3 * timeout, "phase": "after"}]
    for system in ("tiktok", "instagram", "youtube"):
        for spec in storm:
            sandbox.add_fault(system=system, route="*", probability=0.2 / len(storm), **spec)
    since = {s: len(sandbox.journal(s)) for s in ("tiktok", "instagram", "youtube")}
    runs = 0
    while runs < 25 and {p["state"] for p in _posts(engine)} != {"published"}:
        _run(resources, instance, selection=[social_posts])
        runs += 1
        sp = schema.social_posts  # what a later run may retry is due at once in this test
        with engine.begin() as conn:
            conn.execute(sa.update(sp).where(sp.c.state != "published")
                         .values(next_attempt_at=None))
    sandbox.clear_faults()
    posts = _posts(engine)
    assert {p["state"] for p in posts} == {"published"}, [
        (p["platform"], p["state"], p["last_error"]) for p in posts if p["state"] != "published"]
    assert {k: len(v) for k, v in _published(sandbox.url, suffix, engine).items()} == {
        "tiktok": n, "instagram": n, "youtube": n}
    entries = [e for s in ("tiktok", "instagram", "youtube")
               for e in sandbox.journal(s)[since[s]:]]
    fired = {e["fault"]["action"] for e in entries if e["fault"] is not None}
    assert {"status", "rate_limit", "drop", "delay"} <= fired, fired  # the storm hit the flows
    # Retry-After honoured: the same request is not sent again within the second it asked for.
    # (Creating calls only: their bodies and paths are this test's own, reads may be shared.)
    for i, e in enumerate(entries):
        if e["status"] != 429 or e["method"] not in ("POST", "PUT"):
            continue
        same = [later for later in entries[i + 1:]
                if (later["method"], later["path"], later["query"], later["body"])
                == (e["method"], e["path"], e["query"], e["body"])]
        if same:
            gap = (dt.datetime.fromisoformat(same[0]["time"])
                   - dt.datetime.fromisoformat(e["time"])).total_seconds()
            assert gap >= 0.99, (e["path"], gap)


def _make_texts_unique(engine: sa.Engine, suffix: str) -> None:
    """Other tests publish the same plans: give this test's posts titles of their own."""
    r = schema.reels
    with engine.begin() as conn:
        for reel_id, plan in conn.execute(sa.select(r.c.id, r.c.plan)).all():
            for texts in (plan.get("platforms") or {}).values():
                if texts.get("title"):  # same length: titles may be at their limit
                    texts["title"] = f"{suffix[1:]} {texts['title']}"[:len(texts["title"])]
                if texts.get("caption"):  # the disclosure label at its end stays
                    texts["caption"] = f"{suffix[1:]} {texts['caption']}"
            conn.execute(sa.update(r).where(r.c.id == reel_id).values(plan=plan))


def _publish(resources: dict, instance, **config) -> dg.ExecuteInProcessResult:
    result = dg.materialize(ASSETS, selection=[social_posts], partition_key=partition_key(CID, DAY),
                            resources=resources, instance=instance, raise_on_error=False,
                            run_config={"ops": {"social_posts": {"config": {"only_due": False,
                                                                            **config}}}})
    assert result.success
    return result


def _alerts(url: str) -> list[str]:
    from resources.telegram import SANDBOX_ALERT_CHAT_ID

    sent = httpx.get(f"{url}/telegram/_control/sent", params={"chat_id": SANDBOX_ALERT_CHAT_ID})
    return [m["text"] for m in sent.json() if "text" in m]


def _tiktok_config(url: str, account: str, **config) -> None:
    httpx.post(f"{url}/tiktok/_control/config",
               json={"account": account, **config}).raise_for_status()


def test_tiktok_post_failed_after_acceptance_is_detected_on_a_later_run_and_alerted(
        pipeline_resources, world, engine, sandbox, suffix) -> None:
    instance, _ = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    account = f"{CID}{suffix}"
    # The operators' chat is shared by every test on this sandbox, and reel ids repeat from
    # database to database: only alerts sent from here on are this test's.
    earlier = len(_alerts(sandbox.url))
    # TikTok accepts the first init and ends it FAILED after a while: longer than this run
    # polls, so the run leaves it `processing`.
    _tiktok_config(sandbox.url, account, processing_polls=3)
    httpx.post(f"{sandbox.url}/tiktok/_control/next_posts",
               json={"account": account, "fail_reason": "spam_risk_text", "count": 1}
               ).raise_for_status()
    _publish(pipeline_resources, instance, status_polls=1)
    tiktok = [p for p in _posts(engine) if p["platform"] == "tiktok"]
    assert {p["state"] for p in tiktok} == {"failed_retryable"}
    assert all(p["remote_handle"] for p in tiktok)  # accepted: each has its publish_id
    for _ in range(3):
        _publish(pipeline_resources, instance, status_polls=1)
    by_state: dict[str, list[dict]] = {}
    for p in _posts(engine):
        if p["platform"] == "tiktok":
            by_state.setdefault(p["state"], []).append(p)
    (failed,) = by_state["failed_permanent"]
    assert "spam_risk_text" in failed["last_error"]
    assert len(by_state["published"]) == len(tiktok) - 1
    alerts = [a for a in _alerts(sandbox.url)[earlier:] if f"reel {failed['reel_id']} " in a]
    assert len(alerts) == 1 and "spam_risk_text" in alerts[0]
    _publish(pipeline_resources, instance)  # nothing new: the alert is not repeated
    assert len([a for a in _alerts(sandbox.url)[earlier:]
                if f"reel {failed['reel_id']} " in a]) == 1


def test_tiktok_public_ids_after_moderation_are_recorded_later(
        pipeline_resources, world, engine, sandbox, suffix) -> None:
    instance, _ = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    _tiktok_config(sandbox.url, f"{CID}{suffix}", moderation_polls=2)
    _publish(pipeline_resources, instance)
    tiktok = [p for p in _posts(engine) if p["platform"] == "tiktok"]
    assert {p["state"] for p in tiktok} == {"published"}
    assert {p["remote_post_id"] for p in tiktok} == {None}  # still in moderation
    result = _publish(pipeline_resources, instance)
    tiktok = [p for p in _posts(engine) if p["platform"] == "tiktok"]
    published = {str(p["post_id"]) for p in _published(sandbox.url, suffix, engine)["tiktok"]}
    assert {p["remote_post_id"] for p in tiktok} == published and None not in published
    (mat,) = result.asset_materializations_for_node("social_posts")
    assert mat.metadata["tiktok_verified"].value["public_ids"] == len(tiktok)


def test_quotas_are_counted_before_sending_and_defer_the_rest(
        pipeline_resources, world, engine, sandbox, suffix) -> None:
    instance, _ = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    n = _branded(engine)
    assert n > 2
    _publish(pipeline_resources, instance, tiktok_daily_posts=2, instagram_daily_publishes=1)
    states: dict[str, list[str]] = {}
    for p in _posts(engine):
        states.setdefault(p["platform"], []).append(p["state"])
    assert sorted(states["tiktok"]) == ["deferred"] * (n - 2) + ["published"] * 2
    assert sorted(states["instagram"]) == ["deferred"] * (n - 1) + ["published"]
    published = _published(sandbox.url, suffix, engine)
    assert (len(published["tiktok"]), len(published["instagram"])) == (2, 1)
    # Refused locally: TikTok never saw a third init.
    state = httpx.get(f"{sandbox.url}/tiktok/_control/state",
                      params={"account": f"{CID}{suffix}"}).json()
    assert state["inits_last_24h"] == 2
    q = schema.rate_limit_log
    with engine.connect() as conn:
        used = dict(conn.execute(sa.select(q.c.platform, sa.func.sum(q.c.units)).where(
            q.c.account_key.like("posts:%"), q.c.window_seconds == 86400)
            .group_by(q.c.platform)).all())
    assert used == {"tiktok": 2, "instagram": 1}
    assert all(p["next_attempt_at"] for p in _posts(engine) if p["state"] == "deferred")


def test_expired_tiktok_upload_url_means_a_new_init(pipeline_resources, world, engine,
                                                    sandbox, suffix) -> None:
    instance, _ = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    n = _branded(engine)
    account = f"{CID}{suffix}"
    _tiktok_config(sandbox.url, account, upload_ttl=0)  # every upload URL is dead at once
    _publish(pipeline_resources, instance)
    tiktok = [p for p in _posts(engine) if p["platform"] == "tiktok"]
    assert {p["state"] for p in tiktok} == {"failed_retryable"}
    assert all("init again" in p["last_error"] for p in tiktok)
    # A minute later: n dead inits + n new ones are more than TikTok's 6 a minute per token,
    # so both budgets (the sandbox's and our rate-limit log) start afresh instead of a sleep.
    _tiktok_config(sandbox.url, account, upload_ttl=3600, reset_limits=True)
    sp, rl = schema.social_posts, schema.rate_limit_log
    with engine.begin() as conn:
        conn.execute(sa.update(sp).values(next_attempt_at=None))
        conn.execute(sa.delete(rl).where(rl.c.platform == "tiktok",
                                         rl.c.account_key.like("tiktok.init:%")))
    _publish(pipeline_resources, instance)
    assert {p["state"] for p in _posts(engine) if p["platform"] == "tiktok"} == {"published"}
    assert len(_published(sandbox.url, suffix, engine)["tiktok"]) == n
    posts = httpx.get(f"{sandbox.url}/tiktok/_control/posts", params={"account": account}).json()
    assert len(posts) == 2 * n  # the dead publishes were never published


def test_instagram_pulls_the_public_url(pipeline_resources, world, engine, sandbox, suffix,
                                        tmp_path) -> None:
    import functools
    import http.server
    import threading

    from resources.video_store import VideoStoreResource

    instance, _ = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    store = pipeline_resources["video_store"]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=store.local_root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        v = schema.videos
        with engine.begin() as conn:  # what the store would say with this public base
            conn.execute(sa.update(v).where(v.c.variant == "branded").values(
                public_url=sa.func.concat(base + "/", v.c.storage_key)))
        resources = {**pipeline_resources, "video_store": VideoStoreResource(
            local_root=store.local_root, public_base_url=base, work_dir=store.work_dir,
            sandbox_url=store.sandbox_url)}
        _publish(resources, instance, instagram_resumable=False)
    finally:
        server.shutdown()
    n = _branded(engine)
    assert {p["state"] for p in _posts(engine) if p["platform"] == "instagram"} == {"published"}
    published = _published(sandbox.url, suffix, engine)["instagram"]
    assert len(published) == n
    assert all(p["has_ai_label"] for p in published)


def test_an_expired_instagram_container_is_replaced_and_published_once(
        pipeline_resources, world, engine, sandbox, suffix) -> None:
    instance, _ = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    n = _branded(engine)
    ig_user = httpx.get(f"{sandbox.url}/instagram/_control/account", params={
        "access_token": f"IGAAsandbox{CID.replace('-', '')}{suffix.replace('-', '')}"}
    ).json()["ig_user_id"]
    # The containers take longer to process than this run waits: left `processing`.
    httpx.post(f"{sandbox.url}/instagram/_control/next_containers", json={
        "outcome": "slow", "polls": 50, "count": n, "ig_user_id": ig_user}).raise_for_status()
    _publish(pipeline_resources, instance, status_polls=2)
    ig = [p for p in _posts(engine) if p["platform"] == "instagram"]
    assert {p["state"] for p in ig} == {"failed_retryable"}
    first = {p["remote_state"]["container_id"] for p in ig}
    for container in first:  # a day later the containers have expired unpublished
        httpx.post(f"{sandbox.url}/instagram/_control/age",
                   json={"container_id": container, "seconds": 25 * 3600}).raise_for_status()
    sp = schema.social_posts
    with engine.begin() as conn:
        conn.execute(sa.update(sp).values(next_attempt_at=None))
    _publish(pipeline_resources, instance)
    ig = [p for p in _posts(engine) if p["platform"] == "instagram"]
    assert {p["state"] for p in ig} == {"published"}
    assert not first & {p["remote_state"].get("container_id") for p in ig}  # new containers
    assert len(_published(sandbox.url, suffix, engine)["instagram"]) == n


def test_an_account_marked_for_reauth_is_tried_and_back_once_the_platform_accepts_it(
        pipeline_resources, world, engine, sandbox, suffix) -> None:
    """A 401 that was the platform's own hiccup must not park an account for good: the token
    is still tried, and the first post the platform takes brings the account back."""
    instance, vault = world
    assert _run(pipeline_resources, instance, selection=ASSETS[1:5]).success
    assert vault.mark_needs_reauth(CID, "tiktok")
    _publish(pipeline_resources, instance)
    pa = schema.platform_accounts
    with engine.connect() as conn:
        status = dict(conn.execute(sa.select(pa.c.platform, pa.c.status).where(
            pa.c.character_id == CID, pa.c.platform.in_(schema.SOCIAL_PLATFORMS))).all())
    assert status == {"tiktok": "active", "instagram": "active", "youtube": "active"}
    assert {p["state"] for p in _posts(engine) if p["platform"] == "tiktok"} == {"published"}
    assert len(_published(sandbox.url, suffix, engine)["tiktok"]) == _branded(engine)
