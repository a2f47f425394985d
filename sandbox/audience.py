"""The sandbox audience: what people do with the posts the sandbox platforms hold.

Deterministic: every number comes from `ctx.rng(...)` (the sandbox seed, the system and the
post or account) and the sandbox clock, never from real time or call order. The same seed,
post and clock give the same answer on every run and after restarts; nothing is stored but
what clients add (replies) and what tests add (control comments, settings).

Posts. Each post has a seeded curve: it reaches `scale` views (log-normal around the
platform's median) along a mixture of two saturating exponentials, fast (hours) then slow
(days): views(age) = scale * (a (1 - e^(-age/tau1)) + (1 - a) (1 - e^(-age/tau2))). Likes,
shares, saves and reach are fixed seeded fractions of the views, so every counter is a
lifetime total that never decreases as the clock moves on.

Comments (Instagram, YouTube). Each post gets a seeded number of top-level comments whose
arrival times follow the same curve; their classes are dealt from shuffled copies of a deck
of 20 (`audience_text.DECK`), so any 20 consecutive comments of a post hold every class:
question, compliment, neutral, other_language, spam (with links or "DM me"), hostile,
sexual, minors, own (a top-level comment by the account itself). Some comments get replies
from other commenters (class `reply`; the first compliment always gets seven, more than a
YouTube thread inlines, so a client must page the replies), and the post's first question
gets a reply by the account itself (class `own`): a creator answering from the app. A post's
comment counter is the number of comments and replies visible at that moment, simulated and
stored alike.

Accounts. Followers start at a seeded base and change by a seeded amount each day counted
from the account's creation in the sandbox: mostly gains that grow with the account's age,
on about one day in twelve a small loss (read noise and unfollows), the current day's change
spread over its hours. They do not depend on the posts.

`/_control/audience` of each platform stores per-account settings (`SETTINGS_RULES`), e.g.
`followers_base` to start an account at 9,990 followers.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox import audience_text as texts
from sandbox.clock import iso, parse_instant
from sandbox.state import SystemState

HOUR, DAY = 3600.0, 86400.0
RngFactory = Callable[..., random.Random]
# (index of the top-level comment, index of the reply under it or None) -> the comment id
CommentIds = Callable[[int, int | None], str]
MAX_TOP_LEVEL = 999  # Instagram's simulated ids have room for 3 digits
MAX_REPLIES = 8  # audience replies under one comment (plus possibly one own reply)


@dataclass(frozen=True)
class Profile:
    """How a platform's audience behaves (medians; each post and account draws around them)."""

    views_median: float
    likes: tuple[float, float]  # per view
    shares: tuple[float, float]
    saves: tuple[float, float]
    comments_per_view: tuple[float, float]  # TikTok: the counter without a comment list
    top_comments: tuple[int, int]  # simulated top-level comments per post (0: none)
    followers_base: tuple[int, int]
    followers_daily: float  # median daily gain of a new account
    following: tuple[int, int]


PROFILES = {
    "tiktok": Profile(6000, (0.05, 0.14), (0.004, 0.02), (0.003, 0.02), (0.002, 0.01),
                      (0, 0), (40, 900), 30.0, (10, 120)),
    "instagram": Profile(4000, (0.04, 0.12), (0.003, 0.015), (0.005, 0.03), (0.0, 0.0),
                         (20, 48), (60, 1200), 20.0, (20, 300)),
    "youtube": Profile(5000, (0.03, 0.09), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0),
                       (20, 40), (10, 600), 12.0, (0, 0)),
}

SETTINGS_DEFAULTS: dict[str, Any] = {
    "views_scale": 1.0, "comments_scale": 1.0, "followers_base": None,
    "followers_daily": None,
    "hidden_subscribers": False,  # YouTube: channels.list leaves subscriberCount out
    "reply_writes_per_hour": 60,  # Instagram: POST /{comment}/replies per account and hour
    "insights_delay": 0,  # Instagram: seconds after publishing with empty insights data
    "insights_min_views": 0,  # Instagram: fewer views -> error #10 "Not enough viewers"
    # Seconds of audience a post has when it goes out (counters only): `make run` reads its
    # posts seconds after publishing them, and shows a few hours' worth instead of zeros.
    "head_start": 0,
}


def _number(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= low
            and math.isfinite(v), f"a number >= {low:g}")


SETTINGS_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "views_scale": _number(0), "comments_scale": _number(0),
    "followers_base": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)
                                               and v >= 0), "an integer >= 0 or null"),
    "followers_daily": (lambda v: v is None or _number(0)[0](v), "a number >= 0 or null"),
    "hidden_subscribers": (lambda v: isinstance(v, bool), "true or false"),
    "reply_writes_per_hour": (lambda v: isinstance(v, int) and not isinstance(v, bool)
                              and v >= 1, "an integer >= 1"),
    "insights_delay": _number(0),
    "head_start": _number(0),
    "insights_min_views": (lambda v: isinstance(v, int) and not isinstance(v, bool)
                           and v >= 0, "an integer >= 0"),
}


def settings_of(state: SystemState, account: str) -> dict[str, Any]:
    """The audience settings of an account: its own over everyone's over the defaults."""
    return {**SETTINGS_DEFAULTS, **state.get("audience/*", {}),
            **state.get(f"audience/{account}", {})}


def apply_settings(state: SystemState, body: dict[str, Any]) -> dict[str, Any]:
    """Store a `/_control/audience` body (`account` optional: everyone); ValueError with the
    reason when a field is unknown or invalid. Returns the account's (or the defaults')
    effective settings."""
    account = body.get("account")
    if account is not None and (not isinstance(account, str) or not account):
        raise ValueError("account must be a non-empty string")
    unknown = sorted(set(body) - {*SETTINGS_RULES, "account"})
    if unknown:
        raise ValueError(f"unknown audience fields {unknown}; known: "
                         f"{sorted({*SETTINGS_RULES, 'account'})}")
    settings = {k: v for k, v in body.items() if k in SETTINGS_RULES}
    for name, value in settings.items():
        check, what = SETTINGS_RULES[name]
        if not check(value):
            raise ValueError(f"{name} must be {what}")
    key = f"audience/{account or '*'}"
    state.update(key, lambda s: {**s, **settings}, default={})
    return {"account": account, **settings_of(state, account or "*")}


def abbreviate(count: int) -> int:
    """A count rounded down to 3 significant digits, as YouTube shows subscribers."""
    if count < 1000:
        return count
    unit = 10 ** (len(str(count)) - 3)
    return count // unit * unit


@dataclass(frozen=True)
class Counters:
    """Lifetime totals of one post at one moment."""

    views: int
    likes: int
    comments: int
    shares: int
    saves: int
    reach: int


@dataclass(frozen=True)
class Curve:
    scale: float
    fast: float  # share of the audience that comes in the first hours
    tau_fast: float
    tau_slow: float
    likes: float
    shares: float
    saves: float
    reach: float
    comments: float

    def reached(self, age: float) -> float:
        """The share of the post's eventual audience that has seen it at `age` seconds."""
        if age <= 0:
            return 0.0
        return (self.fast * (1 - math.exp(-age / self.tau_fast))
                + (1 - self.fast) * (1 - math.exp(-age / self.tau_slow)))

    def delay(self, rng: random.Random) -> float:
        """When one member of the audience arrives, seconds after publishing."""
        tau = self.tau_fast if rng.random() < self.fast else self.tau_slow
        return rng.expovariate(1 / tau)


@dataclass(frozen=True)
class Slot:
    """A simulated comment before its words: the top-level comment's index, the reply's
    index under it (None for the comment itself), seconds after publishing, its class."""

    index: int
    reply: int | None
    delay: float
    kind: str


@dataclass(frozen=True)
class Owner:
    """The account a post belongs to, as its comments name an author."""

    author_id: str
    author_name: str


@dataclass(frozen=True)
class Comment:
    """A comment or reply: simulated (derived, never stored), or stored (`control` for a
    test's comment, `api` for a reply a client sent)."""

    id: str
    post: str
    parent: str | None
    text: str
    author_id: str
    author_name: str
    created: float
    kind: str
    hidden: bool = False
    likes: int = 0  # the likes it gathers in the end
    source: str = "simulated"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def like_count(self, now: float) -> int:
        if now <= self.created:
            return 0
        return int(self.likes * (1 - math.exp(-(now - self.created) / (6 * HOUR))))

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_record(record: dict[str, Any]) -> Comment:
        return Comment(**record)


class Audience:
    """One platform's audience, from the system's seeded randomness (`ctx.rng`)."""

    def __init__(self, rng: RngFactory, platform: str) -> None:
        self.rng = rng
        self.platform = platform
        self.profile = PROFILES[platform]
        self._comments: OrderedDict[tuple[Any, ...], tuple[Comment, ...]] = OrderedDict()
        self._skeletons: OrderedDict[tuple[Any, ...], tuple[tuple[Slot, ...], list[float]]] = \
            OrderedDict()
        self._gains: dict[tuple[str, float], list[int]] = {}

    # --- posts ----------------------------------------------------------------------------

    def curve(self, post: str, settings: dict[str, Any]) -> Curve:
        rng, p = self.rng("audience-curve", post), self.profile
        scale = p.views_median * rng.lognormvariate(0, 0.9) * float(settings["views_scale"])
        return Curve(scale=scale, fast=rng.uniform(0.55, 0.85),
                     tau_fast=rng.uniform(2, 8) * HOUR, tau_slow=rng.uniform(2, 7) * DAY,
                     likes=rng.uniform(*p.likes), shares=rng.uniform(*p.shares),
                     saves=rng.uniform(*p.saves), reach=rng.uniform(0.55, 0.9),
                     comments=rng.uniform(*p.comments_per_view))

    def counters(self, post: str, published: float, now: float, settings: dict[str, Any],
                 comments: int | None = None) -> Counters:
        """The post's lifetime counters at `now`; `comments` is the number of visible
        comments where the platform lists them (else a seeded share of the views)."""
        curve = self.curve(post, settings)
        views = int(curve.scale * curve.reached(now - published
                                                + float(settings.get("head_start", 0))))
        return Counters(views=views, likes=int(views * curve.likes),
                        comments=int(views * curve.comments) if comments is None else comments,
                        shares=int(views * curve.shares), saves=int(views * curve.saves),
                        reach=int(views * curve.reach))

    # --- accounts -------------------------------------------------------------------------

    def followers(self, account: str, created: float, now: float,
                  settings: dict[str, Any]) -> int:
        """Followers of `account` at `now`: a base, then one seeded change per day since
        `created` (the current day's spread over its hours). Never below 0."""
        rng, p = self.rng("audience-followers", account), self.profile
        base = rng.randint(*p.followers_base)
        daily = p.followers_daily * rng.lognormvariate(0, 0.5)
        if settings.get("followers_base") is not None:
            base = int(settings["followers_base"])
        if settings.get("followers_daily") is not None:
            daily = float(settings["followers_daily"])
        days = (now - created) / DAY
        if days <= 0:
            return base
        whole = int(days)
        sums = self._gain_sums(account, daily, whole + 1)
        today = sums[whole + 1] - sums[whole]
        return max(0, base + sums[whole] + int(today * (days - whole)))

    def following(self, account: str) -> int:
        return self.rng("audience-following", account).randint(*self.profile.following)

    def _gain_sums(self, account: str, daily: float, days: int) -> list[int]:
        """Cumulative follower changes: element k is the total of days 0..k-1."""
        sums = self._gains.setdefault((account, daily), [0])
        while len(sums) <= days:
            k = len(sums) - 1
            rng = self.rng("audience-follower-day", account, k)
            if daily <= 0:
                change = 0
            elif rng.random() < 1 / 12:
                change = -rng.randint(1, max(1, int(daily * 0.3)))
            else:
                change = round(daily * (1 + min(k, 365) / 90) * rng.lognormvariate(0, 0.45))
            sums.append(sums[-1] + change)
        return sums

    # --- comments -------------------------------------------------------------------------

    def comments(self, post: str, published: float, owner: Owner, ids: CommentIds,
                 settings: dict[str, Any]) -> tuple[Comment, ...]:
        """Every simulated comment the post will ever get, oldest first (filter by
        `created` for the ones visible now)."""
        key = (post, published, owner, float(settings["comments_scale"]),
               float(settings["views_scale"]))
        cached = self._comments.get(key)
        if cached is None:
            slots, _ = self._skeleton(post, settings)
            first_spam = next((s.index for s in slots if s.kind == texts.SPAM), None)
            made = [self._detail(slot, post, published, owner, ids, slot.index == first_spam)
                    for slot in slots]
            cached = tuple(sorted(made, key=lambda c: (c.created, c.id)))
            self._comments[key] = cached
            if len(self._comments) > 4096:
                self._comments.popitem(last=False)
        return cached

    def comment_count(self, post: str, published: float, now: float,
                      settings: dict[str, Any]) -> int:
        """How many simulated comments and replies the post shows at `now` (cheap: from the
        skeleton alone, for the counters)."""
        _, delays = self._skeleton(post, settings)
        return bisect.bisect_right(delays, now - published)

    def _skeleton(self, post: str, settings: dict[str, Any]) -> tuple[tuple[Slot, ...],
                                                                        list[float]]:
        """The post's comments without their words: who answers whom, of which class, how
        long after publishing; all from one seeded stream. Also the sorted delays."""
        key = (post, float(settings["comments_scale"]), float(settings["views_scale"]))
        cached = self._skeletons.get(key)
        if cached is not None:
            return cached
        curve = self.curve(post, settings)
        rng = self.rng("audience-comments", post)
        low, high = self.profile.top_comments
        count = min(MAX_TOP_LEVEL, round(rng.randint(low, high)
                                         * float(settings["comments_scale"])))
        arrivals = sorted(curve.delay(rng) for _ in range(count))
        slots: list[Slot] = []
        decks: dict[int, list[str]] = {}
        answered = popular = False
        for index, delay in enumerate(arrivals):
            cycle, place = divmod(index, len(texts.DECK))
            if cycle not in decks:
                decks[cycle] = list(texts.DECK)
                self.rng("audience-deck", post, cycle).shuffle(decks[cycle])
            kind = decks[cycle][place]
            slots.append(Slot(index, None, delay, kind))
            if kind in (texts.SPAM, texts.OWN):
                continue  # nobody answers spam or the account's own comment
            # the first compliment gets a crowd (more replies than a YouTube thread
            # inlines), the first question the account's own answer
            crowd = not popular and kind == texts.COMPLIMENT
            popular = popular or crowd
            weights = (60, 22, 10, 4, 4) if kind == texts.QUESTION else (75, 15, 6, 2, 2)
            replies = 7 if crowd else rng.choices((0, 1, 2, 3, 7), weights=weights)[0]
            slots += [Slot(index, j, delay + rng.expovariate(1 / (3 * HOUR)), texts.REPLY)
                      for j in range(replies)]
            if not answered and kind == texts.QUESTION:
                answered = True
                slots.append(Slot(index, replies, delay + rng.uniform(0.5, 2) * HOUR,
                                  texts.OWN))
        cached = (tuple(slots), sorted(slot.delay for slot in slots))
        self._skeletons[key] = cached
        if len(self._skeletons) > 65536:
            self._skeletons.popitem(last=False)
        return cached

    def _detail(self, slot: Slot, post: str, published: float, owner: Owner,
                ids: CommentIds, first_spam: bool) -> Comment:
        """A skeleton slot with its words, author and likes."""
        rng = self.rng("audience-comment", post, slot.index, slot.reply)
        own = slot.kind == texts.OWN
        if own:
            author_id, name = owner.author_id, owner.author_name
        else:
            name = texts.commenter_name(rng)
            author_id = self.author_id(name)
        if slot.reply is None:
            words = texts.comment_text(rng, slot.kind)
            likes = {texts.COMPLIMENT: 40, texts.QUESTION: 15,
                     texts.OTHER_LANGUAGE: 20}.get(slot.kind, 4)
        else:
            words = rng.choice(texts.OWN_REPLIES) if own else texts.comment_text(rng,
                                                                                 texts.REPLY)
            likes = 10 if own else 3
        # Instagram's filter hides spam: the first of a post's always, later ones half the time
        hidden = (slot.kind == texts.SPAM and self.platform == "instagram"
                  and slot.reply is None and (first_spam or rng.random() < 0.5))
        return Comment(id=ids(slot.index, slot.reply), post=post,
                       parent=None if slot.reply is None else ids(slot.index, None),
                       text=words, author_id=author_id, author_name=name,
                       created=published + slot.delay, kind=slot.kind, hidden=hidden,
                       likes=rng.randint(0, likes))

    def author_id(self, name: str) -> str:
        """A commenter's platform id, derived from the name (the same person everywhere)."""
        rng = self.rng("audience-author", name)
        if self.platform == "youtube":
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            return "UC" + "".join(rng.choice(alphabet) for _ in range(22))
        return f"{rng.randrange(10**16, 10**17)}"


class CommentBook:
    """Comments of one platform's posts: the simulated ones merged with the stored ones
    (state `comments/<post>`, and `comment/<id>` -> post for finding a stored comment)."""

    def __init__(self, state: SystemState, audience: Audience) -> None:
        self.state = state
        self.audience = audience

    def stored(self, post: str) -> list[Comment]:
        return [Comment.from_record(r) for r in self.state.get(f"comments/{post}", [])]

    def add(self, comment: Comment) -> Comment:
        self.state.update(f"comments/{comment.post}", lambda c: [*c, comment.record()],
                          default=[])
        self.state.put(f"comment/{comment.id}", comment.post)
        return comment

    def count(self, post: str, published: float, now: float,
              settings: dict[str, Any]) -> int:
        """The post's comment counter at `now`: simulated and stored comments and replies."""
        return (self.audience.comment_count(post, published, now, settings)
                + sum(1 for c in self.state.get(f"comments/{post}", []) if c["created"] <= now))

    def post_of_stored(self, comment_id: str) -> str | None:
        return self.state.get(f"comment/{comment_id}")

    def visible(self, simulated: tuple[Comment, ...], post: str, now: float) -> list[Comment]:
        """Every comment and reply of the post that exists at `now`, oldest first."""
        mine = [c for c in simulated if c.created <= now]  # already in (created, id) order
        mine += [c for c in self.stored(post) if c.created <= now]  # in the order added
        # A stable sort: comments added at the same instant keep the order they were added.
        return sorted(mine, key=lambda c: c.created)

    def api_replies(self) -> list[Comment]:
        """Every reply a client sent through the API, in the order they were stored."""
        out = [Comment.from_record(r) for records in self.state.list_prefix("comments/").values()
               for r in records if r["source"] == "api"]
        return sorted(out, key=lambda c: (c.extra.get("seq", 0), c.id))


# --- control routes (shared by the platforms with comments) -----------------------------------

CONTROL_COMMENT_FIELDS = ("post", "text", "class", "parent", "author", "own", "hidden", "at")


def control_comment_request(body: dict[str, Any], now: float) -> dict[str, Any]:
    """A checked `POST /_control/comments` body: `post` and `text` required; `class`
    (default `custom`), `parent` (a top-level comment id: add a reply), `author` (a commenter
    name), `own` (written by the account itself), `hidden`, `at` (epoch or ISO 8601, default
    now). ValueError names what is wrong."""
    unknown = sorted(set(body) - set(CONTROL_COMMENT_FIELDS))
    if unknown:
        raise ValueError(f"unknown fields {unknown}; known: {list(CONTROL_COMMENT_FIELDS)}")
    post, words = body.get("post"), body.get("text")
    if not isinstance(post, str) or not post:
        raise ValueError("post (the post's id) is required")
    if not isinstance(words, str) or not words.strip():
        raise ValueError("text must be a non-empty string")
    for name in ("class", "parent", "author"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ValueError(f"{name} must be a string")
    for name in ("own", "hidden"):
        if not isinstance(body.get(name, False), bool):
            raise ValueError(f"{name} must be true or false")
    at = now if body.get("at") is None else parse_instant(body["at"], "at")
    return {"post": post, "text": words, "kind": body.get("class") or "custom",
            "parent": body.get("parent"), "author": body.get("author"),
            "own": bool(body.get("own")), "hidden": bool(body.get("hidden")), "at": at}


def comment_view(comment: Comment, now: float) -> dict[str, Any]:
    """A comment as the control routes show it (the class is the ground truth)."""
    return {"id": comment.id, "post": comment.post, "parent": comment.parent,
            "text": comment.text, "author_id": comment.author_id,
            "author_name": comment.author_name, "created": iso(comment.created),
            "class": comment.kind, "hidden": comment.hidden, "source": comment.source,
            "likes": comment.like_count(now), **comment.extra}


MAX_SEEDED = 10_000


def seed_request(body: dict[str, Any], now: float, account_field: str,
                 extra: tuple[str, ...]) -> dict[str, Any]:
    """A checked `POST /_control/seed_posts` body: `<account_field>` (required), `count`
    (1..10000, default 1), `at` (the first post's publish time, epoch or ISO 8601, default
    now), `spacing` (seconds between posts, default 0) and the platform's `extra` fields."""
    known = {account_field, "count", "at", "spacing", *extra}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValueError(f"unknown fields {unknown}; known: {sorted(known)}")
    account, count = body.get(account_field), body.get("count", 1)
    spacing = body.get("spacing", 0)
    if not isinstance(account, str) or not account:
        raise ValueError(f"{account_field} is required")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_SEEDED:
        raise ValueError(f"count must be an integer between 1 and {MAX_SEEDED}")
    if not SETTINGS_RULES["views_scale"][0](spacing):
        raise ValueError("spacing must be a number of seconds >= 0")
    at = now if body.get("at") is None else parse_instant(body["at"], "at")
    return {**{k: body[k] for k in extra if k in body}, "account": account, "count": count,
            "times": [at + i * float(spacing) for i in range(count)]}
