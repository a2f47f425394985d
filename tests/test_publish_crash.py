"""Kill publishing at every step boundary, rerun, and count on the sandboxes: every reel ends
published exactly once per platform.

A kill is a `Killed` (BaseException) raised at a boundary: nothing in the code catches it, so
it unwinds like a dying process — uncommitted transactions are lost, the connection is cut
mid-request, and the next run starts from fresh clients and the database. Boundaries: before
and after every HTTP request of the flows (init, each chunk, status polls, publish), in the
middle of an upload body, and before and after every write of the post's row.

The trials are randomized from CRASH_SEED (printed on failure, so a failing trial can be
replayed), and the kill positions cycle through every boundary a clean run crosses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

import resources.instagram
import resources.tiktok
import resources.youtube
from resources.database import DatabaseResource
from resources.tiktok import tiktok_limits
from resources.youtube import CHUNK_UNIT
from sandbox.media import ffmpeg_exe
from sandbox.systems.youtube import channel_id_for
from waifugen_assets.app.sandbox_seeding import seed_sandbox_tokens
from waifugen_assets.core import schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.publishing import flows as publishing
from waifugen_assets.publishing.assets import PublishConfig, _platform_clients
from waifugen_assets.publishing.flows import PostJob, ensure_post, publish_post
from waifugen_assets.roster.assets import characters

CID = "lucia-marvento"
PLATFORMS = ("tiktok", "instagram", "youtube")
TRIALS = 100
SEED = int(os.environ.get("CRASH_SEED", "20261125"))
BIG = 10**6


class Killed(BaseException):
    """The process died here."""


class KillSwitch:
    """Counts boundaries; raises Killed at the `at`-th one of a run."""

    def __init__(self) -> None:
        self.count, self.at = 0, 0
        self.hit: Counter[str] = Counter()

    def arm(self, at: int) -> None:
        self.count, self.at = 0, at

    def boundary(self, name: str) -> None:
        self.count += 1
        if self.count == self.at:
            self.hit[name] += 1
            raise Killed(name)


def _kind(request: httpx.Request) -> str:
    path = request.url.path
    for marker in ("/init/", "/status/fetch/", "/media_publish", "/rupload/", "/media",
                   "/upload/youtube", "/video/"):
        if marker in path:
            return f"{request.method} {marker.strip('/')}"
    return f"{request.method} other"


@pytest.fixture
def switch(monkeypatch: pytest.MonkeyPatch) -> KillSwitch:
    ks = KillSwitch()
    original_set = publishing.Ledger.set

    def set_(self: publishing.Ledger, **values: object) -> None:
        ks.boundary("before db write")
        original_set(self, **values)
        ks.boundary("after db write")

    monkeypatch.setattr(publishing.Ledger, "set", set_)
    original_range = resources.tiktok.file_range

    def file_range(*args: object, **kwargs: object) -> Iterator[bytes]:
        for i, piece in enumerate(original_range(*args, **kwargs)):
            if i == 1:
                ks.boundary("mid-upload")
            yield piece

    for module in (resources.tiktok, resources.instagram, resources.youtube):
        monkeypatch.setattr(module, "file_range", file_range)
    return ks


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A real vertical H.264/AAC MP4 of ~1.5 MB: several YouTube chunks of 256 KiB."""
    out = tmp_path / "reel.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=540x960:r=30:d=4",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=4", "-c:v", "libx264",
         "-preset", "ultrafast", "-b:v", "3M", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", "-movflags", "+faststart", str(out)], check=True)
    assert out.stat().st_size > 3 * CHUNK_UNIT
    return out


def test_killed_at_every_boundary_publishes_each_reel_exactly_once(
        pipeline_resources: dict, engine: sa.Engine, sandbox, switch: KillSwitch,
        video: Path) -> None:
    rng = random.Random(SEED)
    suffix = f"-{uuid.uuid4().hex[:8]}"
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
    vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
    pa = schema.platform_accounts
    with engine.begin() as conn:
        conn.execute(sa.delete(pa).where(pa.c.character_id != CID))
    seed_sandbox_tokens(vault, suffix)
    _lift_sandbox_limits(sandbox.url, pipeline_resources, suffix, engine, vault)
    with engine.connect() as conn:
        accounts = {a["platform"]: dict(a) for a in conn.execute(
            sa.select(pa).where(pa.c.character_id == CID)).mappings()}

    def run(reel_id: int, title: str, order: list[str]) -> None:
        """One publishing run of one reel in a fresh 'process': new clients, DB state only."""
        config = PublishConfig(only_due=False, tiktok_daily_posts=BIG,
                               instagram_daily_publishes=BIG, youtube_daily_units=BIG * BIG,
                               poll_interval_seconds=0)
        for platform in order:
            flow, tokens = _platform_clients(
                CID, platform, vault, accounts[platform], pipeline_resources["tiktok"],
                pipeline_resources["instagram"], pipeline_resources["youtube"],
                DatabaseResource(url=str(engine.url.render_as_string(hide_password=False))),
                config)
            if platform == "tiktok":  # the sandbox's per-token limits are lifted too
                flow.client = pipeline_resources["tiktok"].get_client(
                    tokens, limits=tiktok_limits(inits=BIG, statuses=BIG))
            if platform == "youtube":
                flow.chunk_size = CHUNK_UNIT
            for http in vars(flow.client).values():  # API and upload clients alike
                if isinstance(http, httpx.Client):
                    http.event_hooks = {
                        "request": [lambda req: switch.boundary(f"before {_kind(req)}")],
                        "response": [
                            lambda resp: switch.boundary(f"after {_kind(resp.request)}")]}
            plan = {"platforms": {
                "tiktok": {"title": title}, "youtube": {"title": title, "description": title},
                "instagram": {"caption": f"{title} #AIgenerated"}}}
            job = PostJob(reel_id=reel_id, character_id=CID, platform=platform,
                          content_rating="general", plan=plan, video=video)
            post_id = ensure_post(engine, reel_id, platform, accounts[platform]["id"])
            publish_post(engine, job, post_id, flow, tokens, vault)

    def settle(reel_id: int, title: str) -> None:
        for _ in range(6):
            if _states(engine, reel_id) == {"published"}:
                return
            _due_now(engine, reel_id)
            run(reel_id, title, list(PLATFORMS))
        raise AssertionError(f"{title}: not published after reruns: {_posts(engine, reel_id)}")

    # A clean run: how many boundaries one publishing run of a reel crosses.
    reel, title = _reel(engine, 0, suffix)
    switch.arm(0)
    run(reel, title, list(PLATFORMS))
    boundaries = switch.count
    assert _states(engine, reel) == {"published"} and boundaries > 20, boundaries
    titles = [title]
    positions = [1 + i % boundaries for i in range(max(TRIALS, boundaries))]
    rng.shuffle(positions)
    for trial, at in enumerate(positions, start=1):
        reel, title = _reel(engine, trial, suffix)
        titles.append(title)
        order = rng.sample(PLATFORMS, k=3)
        context = f"CRASH_SEED={SEED} trial={trial} kill at boundary {at} order={order}"
        switch.arm(at)
        with contextlib.suppress(Killed):
            run(reel, title, order)
        if rng.random() < 0.25:  # killed again while recovering
            switch.arm(rng.randint(1, boundaries))
            try:
                _due_now(engine, reel)
                run(reel, title, rng.sample(PLATFORMS, k=3))
            except Killed:
                pass
        switch.arm(0)
        try:
            settle(reel, title)
        except AssertionError as exc:
            raise AssertionError(f"{context}: {exc}") from None

    published = _published_titles(sandbox.url, suffix, engine)
    for platform in PLATFORMS:
        counts = Counter(published[platform])
        assert {t: counts[t] for t in titles} == dict.fromkeys(titles, 1), (
            f"CRASH_SEED={SEED}: {platform} published a reel twice or never: "
            f"{ {t: c for t, c in counts.items() if c != 1 or t not in titles} }")
    kinds = set(switch.hit)
    for required in ("before POST init", "after POST init", "mid-upload", "after PUT video",
                     "before POST media_publish", "after POST media_publish",
                     "before PUT upload/youtube", "after PUT upload/youtube",
                     "before db write", "after db write"):
        assert required in kinds, (required, sorted(kinds), switch.hit)


def _lift_sandbox_limits(url: str, resources: dict, suffix: str, engine: sa.Engine,
                         vault: TokenVault) -> None:
    """Hundreds of posts on one account in a minute: lift the sandboxes' caps for it."""
    account = f"{CID}{suffix}"
    httpx.post(f"{url}/tiktok/_control/config", json={
        "account": account, "daily_cap": BIG, "init_per_minute": BIG,
        "status_per_minute": BIG}).raise_for_status()
    token = f"IGAAsandbox{CID.replace('-', '')}{suffix.replace('-', '')}"
    ig_user = httpx.get(f"{url}/instagram/_control/account",
                        params={"access_token": token}).json()["ig_user_id"]
    httpx.post(f"{url}/instagram/_control/quota",
               json={"ig_user_id": ig_user, "quota_total": BIG}).raise_for_status()
    client_id = resources["youtube"].credentials()[0]
    httpx.post(f"{url}/youtube/_control/config", json={
        "client_id": client_id, "units_per_day": BIG * BIG, "inserts_per_day": BIG,
        "channel_uploads_per_day": BIG}).raise_for_status()


def _reel(engine: sa.Engine, n: int, suffix: str) -> tuple[int, str]:
    r = schema.reels
    title = f"crash trial {n} {suffix[1:]}"
    with engine.begin() as conn:
        reel_id = conn.scalar(sa.insert(r).values(
            character_id=CID, date=dt.date(2026, 1, 1) + dt.timedelta(days=n), slot=0,
            scheduled_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), status="branded",
            plan={"title": title}).returning(r.c.id))
    return int(reel_id), title


def _posts(engine: sa.Engine, reel_id: int) -> list[dict]:
    sp = schema.social_posts
    with engine.connect() as conn:
        return [dict(p) for p in conn.execute(
            sa.select(sp.c.platform, sp.c.state, sp.c.last_error)
            .where(sp.c.reel_id == reel_id)).mappings()]


def _states(engine: sa.Engine, reel_id: int) -> set[str]:
    posts = _posts(engine, reel_id)
    return {p["state"] for p in posts} if len(posts) == len(PLATFORMS) else {"missing"}


def _due_now(engine: sa.Engine, reel_id: int) -> None:
    """What a later run would retry is due at once here (the schedule is not under test)."""
    sp = schema.social_posts
    with engine.begin() as conn:
        conn.execute(sa.update(sp).where(sp.c.reel_id == reel_id)
                     .values(next_attempt_at=None))


def _published_titles(url: str, suffix: str, engine: sa.Engine) -> dict[str, list[str]]:
    account = f"{CID}{suffix}"
    pa = schema.platform_accounts
    with engine.connect() as conn:
        ig_user = conn.scalar(sa.select(pa.c.external_user_id).where(
            pa.c.character_id == CID, pa.c.platform == "instagram"))

    def items(body: object) -> list[dict]:
        return body if isinstance(body, list) else next(
            v for v in body.values() if isinstance(v, list))

    get: Callable[..., httpx.Response] = httpx.get
    tiktok = items(get(f"{url}/tiktok/_control/published", params={"account": account}).json())
    ig = items(get(f"{url}/instagram/_control/published", params={"ig_user_id": ig_user}).json())
    yt = items(get(f"{url}/youtube/_control/published",
                   params={"account": channel_id_for(f"1//sandbox-{account}")}).json())
    return {"tiktok": [p["title"] for p in tiktok],
            "instagram": [p["caption"].split("\n")[0].removesuffix(" #AIgenerated") for p in ig],
            "youtube": [p["title"] for p in yt]}
