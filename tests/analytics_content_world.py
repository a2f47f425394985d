"""A seeded content world for the content marts (tests/test_marts_content.py) and
`waifugen slots suggest` (tests/test_slots_suggest.py): 35 local days of reels, posts,
engagement snapshots and daily gains for three characters in three time zones, plus the few
revenue events character_ranking needs. Every value is built here, in Python lists, so the
tests can compute what each mart must hold without SQL.

What it exercises, on purpose:
- aiko (Asia/Tokyo): 08:00 slots are 23:00 UTC the day before (UTC day != local day); 23:30
  slots published late cross local midnight (local hour 0, still the reel's day); reels
  planned for the day after the last one (posts still `planned`).
- mia (America/Los_Angeles, DST on 2026-03-08): 17:00 and 21:00 slots are the next UTC day;
  a local day with no reels, no posts and no gains at all.
- lena (Europe/Berlin): starts 3 days before the end: 5 published posts, never 3 in one
  local hour (not enough data to suggest an hour).
- post states published / failed_permanent / skipped / deferred / planned / in flight;
  snapshots at 1 h, 6 h, 24 h (some late at 30 h, some missing with one exactly at +72 h,
  outside the 24 h range), 3 d, 7 d (some late at 200 h, some not yet due); a metric the
  platform does not report (NULL); a post with 0 views.
- ties: aiko and mia gain exactly the same in the last 7 days (views and engagement tie);
  aiko and lena net the same revenue in the last 7 days.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from waifugen_assets.core import schema

FIRST = dt.date(2026, 2, 20)
LAST = dt.date(2026, 3, 26)  # the last local day with engagement (as_of of the ranking)
NOW = dt.datetime(2026, 3, 27, 6, 0, tzinfo=dt.UTC)  # no snapshot is taken after this
MIA_EMPTY_DAY = FIRST + dt.timedelta(days=12)
LENA_FIRST = LAST - dt.timedelta(days=3)
SNAPSHOT_HOURS = (1, 6, 24, 72, 168)
H = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Character:
    id: str
    timezone: str
    slots: tuple[str, ...]
    platforms: tuple[str, ...]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Reel:
    id: int
    character_id: str
    day: dt.date
    slot: int
    scheduled_at: dt.datetime
    status: str


@dataclass
class Post:
    id: int
    reel_id: int
    character_id: str
    day: dt.date
    platform: str
    state: str
    published_at: dt.datetime | None


@dataclass(frozen=True)
class Snapshot:
    post_id: int
    captured_at: dt.datetime
    views: int | None
    likes: int | None
    comments: int | None
    shares: int | None
    saves: int | None


@dataclass
class Gain:
    character_id: str
    day: dt.date
    platform: str
    posts_read: int
    views: int
    likes: int
    comments: int
    shares: int
    saves: int


@dataclass(frozen=True)
class Revenue:
    event_id: str
    character_id: str
    kind: str
    amount_cents: int
    currency: str
    occurred_at: dt.datetime


CHARACTERS = (
    Character("aiko", "Asia/Tokyo", ("08:00", "12:30", "19:00", "23:30"),
              ("tiktok", "instagram")),
    Character("mia", "America/Los_Angeles", ("09:00", "17:00", "21:00"),
              ("tiktok", "youtube", "instagram")),
    Character("lena", "Europe/Berlin", ("10:00", "20:00"), ("instagram",)),
)


@dataclass
class World:
    characters: tuple[Character, ...] = CHARACTERS
    reels: list[Reel] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    gains: list[Gain] = field(default_factory=list)
    revenue: list[Revenue] = field(default_factory=list)

    def character(self, character_id: str) -> Character:
        return next(c for c in self.characters if c.id == character_id)

    def seed(self, engine: sa.Engine) -> None:
        """Insert everything (SQLAlchemy Core, the app's own tables and constraints)."""
        with engine.begin() as conn:
            conn.execute(sa.insert(schema.characters), [
                {"id": c.id, "name": c.id.title(), "age": 24, "timezone": c.timezone,
                 "slots": list(c.slots)} for c in self.characters])
            conn.execute(sa.insert(schema.reels), [
                {"id": r.id, "character_id": r.character_id, "date": r.day, "slot": r.slot,
                 "scheduled_at": r.scheduled_at, "status": r.status} for r in self.reels])
            conn.execute(sa.insert(schema.social_posts), [
                {"id": p.id, "reel_id": p.reel_id, "platform": p.platform, "state": p.state,
                 "ai_disclosure": p.state not in ("planned", "deferred", "skipped"),
                 "published_at": p.published_at,
                 "remote_post_id": f"{p.platform}-{p.id}" if p.published_at else None}
                for p in self.posts])
            conn.execute(sa.insert(schema.engagement_snapshots), [
                {"post_id": s.post_id, "captured_at": s.captured_at, "views": s.views,
                 "likes": s.likes, "comments": s.comments, "shares": s.shares,
                 "saves": s.saves} for s in self.snapshots])
            conn.execute(sa.insert(schema.engagement_daily), [
                {"character_id": g.character_id, "date": g.day, "platform": g.platform,
                 "posts_read": g.posts_read, "views": g.views, "likes": g.likes,
                 "comments": g.comments, "shares": g.shares, "saves": g.saves}
                for g in self.gains])
            conn.execute(sa.insert(schema.revenue_events), [
                {"platform": "fanvue", "event_id": e.event_id, "character_id": e.character_id,
                 "kind": e.kind, "amount_cents": e.amount_cents, "currency": e.currency,
                 "occurred_at": e.occurred_at} for e in self.revenue])


def local_utc(day: dt.date, hhmm: str, zone: ZoneInfo) -> dt.datetime:
    """A local wall time of `day` in `zone`, as UTC."""
    local = dt.datetime.combine(day, dt.time.fromisoformat(hhmm), tzinfo=zone)
    return local.astimezone(dt.UTC)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _post_state(k: int) -> str:
    """A deterministic mix of outcomes over the post counter."""
    if k % 11 == 4:
        return "failed_permanent"
    if k % 13 == 6:
        return "skipped"
    if k % 17 == 8:
        return "deferred"
    if k % 29 == 10:
        return "failed_retryable"  # in flight: planned, neither failed nor not sent
    return "published"


def _snapshot_hours(k: int) -> list[float]:
    """The ages (hours after publication) a post is read at."""
    hours: list[float] = list(SNAPSHOT_HOURS)
    if k % 10 == 3:
        hours[2] = 30  # the 24 h reading came late
    if k % 10 == 7:
        hours.remove(24)  # no 24 h reading; the 72 h one is exactly at +3 d (outside)
    if k % 10 == 5:
        hours[-1] = 200  # the 7 d reading came late
    return hours


GROWTH = {1: 0.05, 6: 0.3, 24: 0.7, 30: 0.75, 72: 0.9, 168: 1.0, 200: 1.04}


def _snapshots(rng: random.Random, post: Post, k: int, boost: float) -> list[Snapshot]:
    assert post.published_at is not None
    base = int(rng.randint(200, 4000) * boost)
    if k % 31 == 12:
        base = 0  # nobody watched: engagement rates are NULL, not a division by zero
    like_div, comment_div, share_div = rng.randint(6, 15), rng.randint(30, 80), \
        rng.randint(40, 120)
    out = []
    for hours in _snapshot_hours(k):
        at = post.published_at + dt.timedelta(hours=hours)
        if at > NOW:
            break
        views = int(base * GROWTH[int(hours)])
        out.append(Snapshot(
            post.id, at, views, views // like_div, views // comment_div,
            None if k % 23 == 5 else views // share_div,  # a metric not reported
            views // 50))
    return out


def build_world() -> World:
    rng = random.Random(20260326)
    world = World()
    reel_id, post_id, k = 1000, 5000, 0
    for c in world.characters:
        zone = c.zone
        if c.id == "lena":
            days = _days(LENA_FIRST, LAST)
        elif c.id == "aiko":
            days = _days(FIRST, LAST + dt.timedelta(days=1))  # tomorrow already planned
        else:
            days = [d for d in _days(FIRST, LAST) if d != MIA_EMPTY_DAY]
        for day in days:
            for slot, hhmm in enumerate(c.slots):
                reel_id += 1
                scheduled = local_utc(day, hhmm, zone)
                ahead = day > LAST
                failed_render = not ahead and (reel_id % 19 == 0)
                status = ("planned" if ahead else "failed" if failed_render else "published")
                world.reels.append(Reel(reel_id, c.id, day, slot, scheduled, status))
                if failed_render:
                    continue  # no video: no posts
                for platform in c.platforms:
                    post_id += 1
                    k += 1
                    state = "planned" if ahead else _post_state(k)
                    if c.id == "lena":  # 5 published posts, at most 2 in any hour
                        state = ("deferred" if day == LAST else "failed_permanent"
                                 if (day, slot) == (LENA_FIRST, 0) else "published")
                    published_at = None
                    if state == "published":
                        delay = (k * 7) % 50  # minutes; 23:30 + 30 min or more: next day
                        if c.id == "lena":
                            delay = 65 if (day, slot) == (LAST - dt.timedelta(days=2), 1) \
                                else 5  # one post in the 21:00 hour
                        published_at = scheduled + dt.timedelta(minutes=delay)
                    post = Post(post_id, reel_id, c.id, day, platform, state, published_at)
                    world.posts.append(post)
                    if published_at is not None:
                        boost = 2.0 if slot == 0 else 1.0  # first slots do better
                        world.snapshots += _snapshots(rng, post, k, boost)
    _add_gains(world, rng)
    _add_revenue(world)
    return world


def _add_gains(world: World, rng: random.Random) -> None:
    tie_days = _days(LAST - dt.timedelta(days=6), LAST)
    for c in world.characters:
        first = LENA_FIRST if c.id == "lena" else FIRST
        for day in _days(first, LAST):
            if c.id == "mia" and day == MIA_EMPTY_DAY:
                continue  # nothing at all that day
            for i, platform in enumerate(c.platforms):
                if c.id in ("aiko", "mia") and day in tie_days:
                    # aiko and mia gain the same totals every day of the last week (views
                    # and interactions): their 7-day views and engagement rate tie.
                    total = 1500 + (day - tie_days[0]).days
                    split = {"aiko": (total - 500, 500), "mia": (total - 500, 300, 200)}
                    views = split[c.id][i]
                    likes, comments, shares = ((total // 10, total // 50, total // 100)
                                               if i == 0 else (0, 0, 0))
                else:
                    views = rng.randint(0, 9000) if (day.day + i) % 9 else 0
                    likes = views // rng.randint(5, 12)
                    comments = views // rng.randint(20, 60)
                    shares = views // rng.randint(30, 90)
                world.gains.append(Gain(c.id, day, platform, rng.randint(1, 20), views, likes,
                                        comments, shares, views // 40))


def _add_revenue(world: World) -> None:
    def at(day: dt.date, hhmm: str) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), tzinfo=dt.UTC)

    events = [
        # aiko: 16:00 UTC on 03-19 is 01:00 on 03-20 in Tokyo: inside the 7-day window
        # (03-20 .. 03-26) by its local day, outside by its UTC day.
        ("aiko", "tip", 3000, "USD", at(dt.date(2026, 3, 19), "16:00")),
        ("aiko", "refund", 500, "USD", at(dt.date(2026, 3, 22), "10:00")),
        ("aiko", "subscription", 4000, "USD", at(dt.date(2026, 3, 1), "10:00")),
        ("aiko", "tip", 9999, "EUR", at(dt.date(2026, 3, 23), "10:00")),  # not converted
        # lena nets what aiko nets in the last week: a tie.
        ("lena", "subscription", 2500, "USD", at(dt.date(2026, 3, 24), "12:00")),
        # mia: 03:00 UTC on 03-27 is 20:00 on 03-26 in Los Angeles.
        ("mia", "purchase", 1000, "USD", at(dt.date(2026, 3, 27), "03:00")),
        ("mia", "renewal", 1500, "USD", at(dt.date(2026, 3, 5), "18:00")),
        # Outside both windows (before as_of - 29).
        ("mia", "subscription", 7000, "USD", at(dt.date(2026, 2, 21), "18:00")),
    ]
    world.revenue = [Revenue(f"ev-{i}", cid, kind, amount, cur, when)
                     for i, (cid, kind, amount, cur, when) in enumerate(events)]


# --- what the marts must hold (computed from the lists above, without SQL) ----------------

def rnd(value: Fraction, places: int) -> Decimal:
    """PostgreSQL's numeric round(): half away from zero (every value here is >= 0)."""
    with localcontext() as ctx:
        ctx.prec = 60
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def rate(likes: int | None, comments: int | None, shares: int | None,
         views: int | None) -> Decimal | None:
    if not views:
        return None
    return rnd(Fraction((likes or 0) + (comments or 0) + (shares or 0), views), 4)


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def expected_platform_performance(world: World) -> dict[tuple, tuple]:
    """(day, character_id, platform) -> the mart's other columns."""
    posts = defaultdict(list)
    for p in world.posts:
        posts[(p.day, p.character_id, p.platform)].append(p.state)
    gains = {(g.day, g.character_id, g.platform): g for g in world.gains}
    out = {}
    for c in world.characters:
        activity = [(day, pl) for (day, cid, pl) in [*posts, *gains] if cid == c.id]
        platforms = {pl for _, pl in activity}
        for day in days_between(min(d for d, _ in activity), max(d for d, _ in activity)):
            for pl in platforms:
                states = posts.get((day, c.id, pl), [])
                g = gains.get((day, c.id, pl))
                v = (g.views, g.likes, g.comments, g.shares, g.saves) if g else (0,) * 5
                out[(day, c.id, pl)] = (
                    len(states), states.count("published"), states.count("failed_permanent"),
                    sum(s in ("skipped", "deferred", "planned") for s in states),
                    *v, rate(v[1], v[2], v[3], v[0]))
    return out


def expected_post_performance(world: World) -> dict[int, tuple]:
    snaps = defaultdict(list)
    for s in world.snapshots:
        snaps[s.post_id].append(s)
    out = {}
    for p in world.posts:
        if p.state != "published":
            continue
        assert p.published_at is not None
        readings = sorted(snaps[p.id], key=lambda s: s.captured_at)

        def first(lo: int, hi: int, p=p, readings=readings) -> tuple:
            s = next((s for s in readings
                      if p.published_at + lo * H <= s.captured_at < p.published_at + hi * H),
                     None)
            if s is None:
                return (None,) * 5
            return (s.views, s.likes, s.comments, s.shares,
                    rate(s.likes, s.comments, s.shares, s.views))

        zone = ZoneInfo(world.character(p.character_id).timezone)
        out[p.id] = (p.reel_id, p.character_id, p.platform, p.day, p.published_at,
                     p.published_at.astimezone(zone).hour, *first(24, 72), *first(168, 720))
    return out


def expected_best_posting_hours(world: World) -> dict[tuple, tuple]:
    hours: dict[tuple, list] = defaultdict(list)
    for (_rid, cid, pl, _day, _at, hour, views, *rest) in \
            expected_post_performance(world).values():
        if views is not None:
            hours[(cid, pl, hour)].append((views, rest[3]))  # rest[3]: engagement_rate_24h
    overall: dict[tuple, list[int]] = defaultdict(list)
    for (cid, pl, _hour), readings in hours.items():
        overall[(cid, pl)] += [v for v, _ in readings]
    out = {}
    for (cid, pl, hour), readings in hours.items():
        views = sorted(v for v, _ in readings)
        n, mid = len(views), len(views) // 2
        median = Fraction(views[mid]) if n % 2 else Fraction(views[mid - 1] + views[mid], 2)
        rates = [r for _, r in readings if r is not None]
        everyone = overall[(cid, pl)]
        lift = (rnd(Fraction(sum(views) * len(everyone), n * sum(everyone)), 2)
                if sum(everyone) else None)
        out[(cid, pl, hour)] = (
            n, rnd(Fraction(sum(views), n), 2), rnd(median, 2),
            rnd(sum(Fraction(r) for r in rates) / len(rates), 4) if rates else None,
            lift, n >= 3)
    return out


def dense_rank(values: dict[str, object]) -> dict[str, int]:
    """1 = the largest; equal values share a rank; None ranks after every value."""
    distinct = sorted({v for v in values.values() if v is not None}, reverse=True)
    rank = {v: i + 1 for i, v in enumerate(distinct)}
    return {k: rank[v] if v is not None else len(distinct) + 1 for k, v in values.items()}


def expected_character_ranking(world: World) -> dict[tuple, tuple]:
    perf = expected_platform_performance(world)
    net: dict[tuple, int] = defaultdict(int)  # (local day, character, currency) -> cents
    for e in world.revenue:
        day = e.occurred_at.astimezone(ZoneInfo(world.character(e.character_id).timezone))
        sign = -1 if e.kind == "refund" else 1
        net[(day.date(), e.character_id, e.currency)] += sign * e.amount_cents
    data_days = [day for (day, _c, _p), v in perf.items() if sum(v[4:8]) > 0]
    data_days += [day for (day, _c, _cur), cents in net.items() if cents != 0]
    as_of = max(data_days)
    out = {}
    for window in (7, 30):
        first = as_of - dt.timedelta(days=window - 1)
        totals = {}
        for c in world.characters:
            rows = [v for (day, cid, _p), v in perf.items() if cid == c.id
                    and first <= day <= as_of]
            views = sum(v[4] for v in rows)
            interactions = sum(v[5] + v[6] + v[7] for v in rows)
            cents = sum(amount for (day, cid, cur), amount in net.items()
                        if cid == c.id and cur == "USD" and first <= day <= as_of)
            totals[c.id] = (views, cents, rnd(Fraction(interactions, views), 4)
                            if views else None)
        ranks = [dense_rank({cid: t[i] for cid, t in totals.items()}) for i in range(3)]
        for cid, t in totals.items():
            out[(cid, window)] = (as_of, *t, *(r[cid] for r in ranks))
    return out
