"""A character whose Instagram and YouTube accounts belong to one test, on the shared sandbox,
with posts seeded on the platforms (no upload) and in the app database: what the comment
tests drive (tests/test_comment_*.py).

Run as a program it is the crash tests' worker (`python tests/comment_world.py CONFIG_JSON`):
it imports everything once, then for each JSON line on stdin {"now", "kill_at"} forks a
child that runs one comment cycle as a fresh process (its own database connections and
clients) and kills itself with SIGKILL at the `kill_at`-th boundary (before and after every
Instagram and YouTube request, before and after every write of a comment, poll or reply row),
or runs to the end. The worker answers one JSON line per run: {"killed": boundary or null,
"boundaries": how many the run crossed}.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa

from resources.instagram import InstagramResource
from resources.ollama import OllamaResource
from resources.tiktok import TikTokResource
from resources.youtube import YouTubeResource
from sandbox.systems.youtube import channel_id_for
from waifugen_assets.app.sandbox_seeding import seed_sandbox_tokens
from waifugen_assets.comments import cycle as cycle_module
from waifugen_assets.comments import fetch as fetch_module
from waifugen_assets.comments.caps import Caps
from waifugen_assets.comments.cycle import CycleStats, comment_cycle
from waifugen_assets.comments.due import characters_to_read
from waifugen_assets.comments.fetch import FetchStats
from waifugen_assets.comments.poll import poll_comments
from waifugen_assets.comments.sources import COMMENT_PLATFORMS, CommentSource, comment_sources
from waifugen_assets.core import schema
from waifugen_assets.core.claims import Claims
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.publishing.social_clients import (
    SocialClients,
    build_clients,
    character_accounts,
)
from waifugen_assets.roster.assets import characters
from waifugen_assets.subscribers.cycle import character_info

CID = "lucia-marvento"  # Europe/Madrid; Instagram and YouTube accounts in the roster
BIG = 10**6
ROOT = Path(__file__).resolve().parents[1]


# --- the world ------------------------------------------------------------------------------

class World:
    """A character's (CID unless told) Instagram user and YouTube channel, this test's own
    (`suffix`)."""

    def __init__(self, resources: dict[str, Any], engine: sa.Engine, url: str,
                 suffix: str, cid: str = CID) -> None:
        self.engine, self.url, self.suffix, self.cid = engine, url, suffix, cid
        self.resources = resources
        self.http = httpx.Client(base_url=url, timeout=30)  # one connection for the setup
        account = f"{cid}{suffix}"
        token = f"IGAAsandbox{account.replace('-', '')}"
        self.ig_user = self.http.get("/instagram/_control/account",
                                 params={"access_token": token}).json()["ig_user_id"]
        self.channel = channel_id_for(f"1//sandbox-{account}")
        self.client_id = resources["youtube"].credentials()[0]
        self._slot = 0

    # sandbox control
    def audience(self, platform: str, **settings: object) -> None:
        account = self.ig_user if platform == "instagram" else self.channel
        self.http.post(f"/{platform}/_control/audience",
                   json={"account": account, **settings}).raise_for_status()

    def youtube_units(self, **config: object) -> None:
        self.http.post("/youtube/_control/config",
                   json={"client_id": self.client_id, **config}).raise_for_status()

    def post(self, platform: str, published_at: dt.datetime) -> tuple[int, str]:
        """A published post on the platform (seeded, no upload) and in the app database:
        (social_posts id, the platform's id)."""
        field = "ig_user_id" if platform == "instagram" else "channel"
        account = self.ig_user if platform == "instagram" else self.channel
        made = self.http.post(f"/{platform}/_control/seed_posts", json={
            field: account, "at": published_at.isoformat()})
        made.raise_for_status()
        body = made.json()  # Instagram: a list of media; YouTube: {"videos": [...]}
        remote = str((body if isinstance(body, list) else body["videos"])[0]["id"])
        self._slot += 1
        r, sp, pa = schema.reels, schema.social_posts, schema.platform_accounts
        with self.engine.begin() as conn:
            reel = conn.scalar(sa.insert(r).values(
                character_id=self.cid, date=dt.date(2026, 11, 20), slot=self._slot,
                scheduled_at=published_at, status="published",
                plan={"caption": "seeded"}).returning(r.c.id))
            account_id = conn.scalar(sa.select(pa.c.id).where(pa.c.character_id == self.cid,
                                                              pa.c.platform == platform))
            post = conn.scalar(sa.insert(sp).values(
                reel_id=reel, platform=platform, account_id=account_id, state="published",
                ai_disclosure=True, remote_post_id=remote, published_at=published_at,
                permalink=f"https://example.test/{platform}/{remote}").returning(sp.c.id))
        return int(post), remote

    def comment(self, platform: str, post: str, text: str, **extra: object) -> str:
        made = self.http.post(f"/{platform}/_control/comments",
                          json={"post": post, "text": text, **extra})
        made.raise_for_status()
        return str(made.json()["id"])

    def sandbox_comments(self, platform: str, post: str) -> list[dict[str, Any]]:
        return self.http.get(f"/{platform}/_control/comments",
                         params={"post": post}).json()

    def replies(self, platform: str) -> list[dict[str, Any]]:
        """Replies our account sent through the API, as the platform stored them."""
        key = "ig_user_id" if platform == "instagram" else "account"
        account = self.ig_user if platform == "instagram" else self.channel
        return self.http.get(f"/{platform}/_control/replies",
                         params={key: account}).json()

    def journal_posts(self, platform: str) -> list[dict[str, Any]]:
        """The POST requests the platform's sandbox has seen (its journal)."""
        entries = self.http.get("/_sandbox/journal", params={"system": platform}).json()
        return [e for e in entries if e.get("method") == "POST"]

    # one run, in this process
    def clients(self, youtube_daily_units: int | None = BIG) -> SocialClients:
        return world_clients(self.engine, self.resources["instagram"],
                             self.resources["youtube"], youtube_daily_units, self.cid)

    def cycle(self, now: dt.datetime, caps: Caps | None = None,
              writer: bool | Callable[[str, str], str | None] = True,
              youtube_daily_units: int | None = BIG) -> CycleStats:
        """One run as the asset does it (the sandbox's Ollama as the persona writer, unless
        `writer` is False or another function)."""
        clients = self.clients(youtube_daily_units)
        try:
            sources, problems = comment_sources(self.engine, clients)
            assert not problems, problems
            ollama = self.resources["ollama"]
            with Claims(self.engine) as claims:
                return comment_cycle(self.engine, character_info(self.engine, self.cid),
                                     sources,
                                     now, caps=caps or Caps(), claims=claims,
                                     writer=(ollama.chat_text if writer is True
                                             else writer or None))
        finally:
            clients.close()

    def rows(self, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(table).where(*where)).mappings()]

    def worker_config(self) -> dict[str, Any]:
        yt, ig = self.resources["youtube"], self.resources["instagram"]
        return {"db_url": self.engine.url.render_as_string(hide_password=False),
                "instagram": ig.base_url, "youtube": yt.base_url,
                "youtube_token": yt.token_url, "client_id": yt.client_id,
                "client_secret": yt.client_secret, "ollama": self.resources["ollama"].host}


def world_clients(engine: sa.Engine, instagram: InstagramResource, youtube: YouTubeResource,
                  youtube_daily_units: int | None = BIG, cid: str = CID) -> SocialClients:
    vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
    with engine.connect() as conn:
        accounts = character_accounts(conn, cid, COMMENT_PLATFORMS)
    return build_clients(engine, vault, cid, accounts, tiktok=TikTokResource(),
                         instagram=instagram, youtube=youtube,
                         youtube_daily_units=youtube_daily_units)


def poll(engine: sa.Engine, resources: dict[str, Any], now: dt.datetime,
         youtube_daily_units: int | None = BIG) -> FetchStats:
    """One comment_poll run's reads, in this process: every character with a read due."""
    with engine.connect() as conn:
        cids = characters_to_read(conn, now)
    return poll_comments(engine, cids, lambda cid: world_clients(
        engine, resources["instagram"], resources["youtube"], youtube_daily_units, cid), now)


def make_world(resources: dict[str, Any], engine: sa.Engine, url: str, suffix: str,
               quiet: bool = True) -> World:
    """The roster loaded, sandbox tokens for this test's accounts, their limits lifted;
    `quiet`: no simulated audience comments (the test adds its own). CID's world."""
    return make_worlds(resources, engine, url, suffix, (CID,), quiet)[CID]


def make_worlds(resources: dict[str, Any], engine: sa.Engine, url: str, suffix: str,
                cids: tuple[str, ...], quiet: bool = True) -> dict[str, World]:
    """As make_world, a World for each of the roster characters `cids` (every roster
    character has an Instagram and a YouTube account)."""
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=resources, instance=instance).success
    seed_sandbox_tokens(TokenVault(engine, TokenCipher(get_settings().secret_keys)), suffix)
    worlds = {}
    for cid in cids:
        world = worlds[cid] = World(resources, engine, url, suffix, cid)
        world.audience("instagram", reply_writes_per_hour=BIG,
                       **({"comments_scale": 0} if quiet else {}))
        if quiet:
            world.audience("youtube", comments_scale=0)
    worlds[cids[0]].youtube_units(units_per_day=BIG)  # one API project for all
    return worlds


# --- the crash worker -----------------------------------------------------------------------

class Worker:
    """The worker process, seen from the test: `run(now, kill_at)` -> its answer."""

    def __init__(self, world: World) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), json.dumps(world.worker_config())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.ask({"ready": True}) == {"ready": True}

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the crash worker died (exit {self.proc.wait()})")
        return json.loads(line)

    def run(self, now: dt.datetime, kill_at: int = 0) -> dict[str, Any]:
        return self.ask({"now": now.isoformat(), "kill_at": kill_at})

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _writer(config: dict[str, Any]) -> Callable[[str, str], str | None]:
    """The persona writer on the sandbox's Ollama, as OllamaResource.chat_text asks it, with
    one client made before the forks (its TLS context is the expensive part of a run)."""
    resource = OllamaResource(host=config["ollama"])
    client, model = resource.client(), resource.model_name()

    def write(system: str, user: str) -> str | None:
        answer = client.chat(model=model, messages=[{"role": "system", "content": system},
                                                    {"role": "user", "content": user}],
                             options={"temperature": 0.7, "seed": 0}, stream=False)
        return (answer.message.content or "").strip() or None

    return write


def _child(config: dict[str, Any], now: dt.datetime, kill_at: int, report: int,
           writer: Callable[[str, str], str | None]) -> None:
    """One comment cycle as a fresh process; SIGKILL at the `kill_at`-th boundary."""
    crossed = 0

    def boundary(name: str) -> None:
        nonlocal crossed
        crossed += 1
        if crossed == kill_at:
            os.write(report, json.dumps({"killed": name, "boundaries": crossed}).encode())
            os.kill(os.getpid(), signal.SIGKILL)

    def around(module: object, name: str) -> None:
        original: Callable[..., Any] = getattr(module, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            boundary(f"before db {name}")
            result = original(*args, **kwargs)
            boundary(f"after db {name}")
            return result

        setattr(module, name, wrapped)

    for module, name in ((cycle_module, "_set"), (cycle_module, "take_slot"),
                         (fetch_module, "store_comments"), (fetch_module, "_poll_row"),
                         (fetch_module, "switch_on")):
        around(module, name)
    engine = sa.create_engine(config["db_url"])
    instagram = InstagramResource(base_url=config["instagram"])
    youtube = YouTubeResource(base_url=config["youtube"], token_url=config["youtube_token"],
                              client_id=config["client_id"],
                              client_secret=config["client_secret"])
    clients = world_clients(engine, instagram, youtube)
    for client in (clients.instagram, clients.youtube):
        http = client._http  # type: ignore[union-attr]

        def kind(request: httpx.Request) -> str:
            post = request.method == "POST"
            return f"{request.method} {'reply' if post else 'read'} {request.url.host}"

        http.event_hooks = {
            "request": [lambda req, k=kind: boundary(f"before {k(req)}")],
            "response": [lambda resp, k=kind: boundary(f"after {k(resp.request)}")]}
    sources: dict[str, CommentSource]
    sources, problems = comment_sources(engine, clients)
    assert not problems, problems
    with Claims(engine) as claims:
        comment_cycle(engine, character_info(engine, CID), sources, now, writer=writer,
                      caps=Caps(BIG, BIG), claims=claims)
    os.write(report, json.dumps({"killed": None, "boundaries": crossed}).encode())


def _serve(config: dict[str, Any]) -> None:
    writer = _writer(config)
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("ready"):
            print(json.dumps({"ready": True, "threads": threading.active_count()}
                             if threading.active_count() > 1 else {"ready": True}),
                  flush=True)
            continue
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one run, then gone without cleanup, like a process ends
            os.close(read)
            code = 0
            try:
                _child(config, dt.datetime.fromisoformat(message["now"]),
                       int(message["kill_at"]), write, writer)
            except BaseException as exc:
                os.write(write, json.dumps({"error": repr(exc)}).encode())
                code = 1
            os._exit(code)
        os.close(write)
        started = time.monotonic()
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read) as answer:
            body = answer.read()
        reply = json.loads(body) if body else {"error": f"no answer (status {status})"}
        reply["seconds"] = round(time.monotonic() - started, 3)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
