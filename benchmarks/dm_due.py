"""Due-step selection at 1,000,000 subscribers: `messaging.plan_due` against a full scan.

    python -m benchmarks.dm_due [--subscribers 1000000] [--days 730] [--opt-out 0.05]
                                [--vip 0.10] [--runs 5] [--server-url URL]
                                [--docs PATH] [--no-docs]

A fresh database (embedded pgserver in a temp dir, or CREATE DATABASE on `--server-url` /
TEST_DATABASE_URL), migrated to head, one character, the sequences of sequences.yaml synced
(`sync_sequences(load_sequences(...))`). Bulk load, one INSERT ... SELECT over generate_series
each (seeded `random()`, foreign-key triggers off while loading: the rows are consistent by
construction):

- subscribers: `subscribed_at` uniform over the last `--days` days, inserted in subscription
  order (ids follow time, as when they arrive through webhooks and polling); `--vip` of them
  VIP, `--opt-out` opted out at a random time since subscribing, 0.1% forgotten;
- dm_messages history: every reachable subscriber has one row (sent, or skipped for
  conditional steps) per step whose window (day .. day + expire_after_hours) closed before
  `now`; opted-out and forgotten ones for the steps due before they left. Open windows have
  no rows: that is what planning inserts.

Then VACUUM ANALYZE. Each measured run happens in a transaction that is rolled back (and the
table vacuumed, untimed), so runs see the same data; methods and cases are interleaved; the
figure is the median. Two cases:

- cold: nothing planned yet for the open windows (the first cycle after a pause): every
  intent of every open window is inserted;
- steady: the previous cycle ran 10 minutes earlier (plan_due at now - 10 min, untimed, same
  transaction): only those who came due since are inserted.

Methods: `plan_due` itself (per step: an index range scan over the subscribers who joined in
the step's window) and the full-scan baseline, which is the same INSERT ... SELECT without the
lower bound on `subscribed_at` (every reachable subscriber older than the step's day),
anti-joined (NOT EXISTS) against dm_messages: what planning costs without the expiry window.
It gives the same rows only because the history is complete; the harness checks that both
insert the same (subscriber, sequence, step, due_at) set. EXPLAIN (ANALYZE) of each statement
shows the access method on `subscribers`. Results: docs/benchmarks.md, "## DM due-step ...".
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

from benchmarks.report import DOCS, machine, write_section
from benchmarks.scratch_db import CHARACTER, database, server, server_version
from waifugen_assets.subscribers.cycle import plan_due, sync_sequences
from waifugen_assets.subscribers.sequences import (
    SUBSCRIBER_TIERS,
    Sequence,
    load_sequences,
    sequence_for,
)

HEADING = "## DM due-step selection: plan_due vs a full scan"
ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
STEADY_GAP = dt.timedelta(minutes=10)
TARGET_MS = 1000.0
CID = CHARACTER["id"]
CASES = ("cold", "steady")
METHODS = ("plan_due", "full_scan")
FORGOTTEN_SHARE = 0.001
INDEX = "ix_subscribers_reachable_since"

Planner = Callable[[sa.Connection, dt.datetime, Mapping[int, Sequence]], int]


# --- the data -----------------------------------------------------------------------------------

_SUBSCRIBERS = sa.text("""
    INSERT INTO subscribers (character_id, platform, external_id, tier, subscribed_at,
                             opted_out_at, forgotten_at, created_at, updated_at)
    SELECT :character_id, CASE WHEN r_platform < 0.6 THEN 'telegram' ELSE 'fanvue' END,
           'bench-' || row_number() OVER (ORDER BY sub),
           CASE WHEN r_tier < :vip THEN 'vip' ELSE 'standard' END, sub,
           CASE WHEN r_left < :opt_out THEN sub + (:now - sub) * r_when END,
           CASE WHEN r_left >= :opt_out AND r_left < :opt_out + :forgotten
                THEN sub + (:now - sub) * r_when END,
           sub, sub
    FROM (SELECT random() AS r_platform, random() AS r_tier, random() AS r_left,
                 random() AS r_when, :now - make_interval(days => :days) * random() AS sub
          FROM generate_series(1, :n)) AS g
    ORDER BY sub
""")

# One row per (subscriber, step) whose window closed before now, while they were reachable.
_HISTORY = sa.text("""
    INSERT INTO dm_messages (subscriber_id, sequence_id, step, state, due_at, sent_at,
                             created_at, updated_at)
    SELECT s.id, st.sequence_id, st.step,
           CASE WHEN st.step = 0 OR random() < 0.5 THEN 'sent' ELSE 'skipped' END,
           s.subscribed_at + make_interval(days => st.day),
           s.subscribed_at + make_interval(days => st.day, mins => 7),
           s.subscribed_at + make_interval(days => st.day),
           s.subscribed_at + make_interval(days => st.day, mins => 7)
    FROM subscribers s JOIN bench_steps st ON st.tier = s.tier
    WHERE s.subscribed_at + make_interval(days => st.day, hours => st.expire_hours) <= :now
      AND (COALESCE(s.opted_out_at, s.forgotten_at) IS NULL
           OR COALESCE(s.opted_out_at, s.forgotten_at)
              > s.subscribed_at + make_interval(days => st.day))
    ORDER BY s.id, st.step
""")


def load(engine: sa.Engine, sequences: Mapping[int, Sequence], *, subscribers: int, days: int,
         opt_out: float, vip: float, seed: float = 0.42) -> dict[str, Any]:
    """Bulk-load subscribers and the dm_messages history; VACUUM ANALYZE. Seconds and counts."""
    steps = [{"sequence_id": sid, "tier": seq.tier, "step": step.index, "day": step.day,
              "expire_hours": step.expire_after_hours}
             for sid, seq in sequences.items() for step in seq.steps]
    started = time.perf_counter()
    with engine.begin() as conn:
        # Foreign-key triggers off for the bulk load only, when we may (superuser): the rows
        # are consistent by construction. The measured statements run with every trigger on.
        if conn.scalar(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")):
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text("SELECT setseed(:seed)"), {"seed": seed})
        conn.execute(_SUBSCRIBERS, {"character_id": CID, "vip": vip, "opt_out": opt_out,
                                    "forgotten": FORGOTTEN_SHARE, "now": NOW, "days": days,
                                    "n": subscribers})
        loaded_subscribers = time.perf_counter()
        conn.execute(sa.text("CREATE TEMP TABLE bench_steps (sequence_id bigint, tier text, "
                             "step int, day int, expire_hours int) ON COMMIT DROP"))
        conn.execute(sa.text("INSERT INTO bench_steps VALUES (:sequence_id, :tier, :step, "
                             ":day, :expire_hours)"), steps)
        conn.execute(_HISTORY, {"now": NOW})
    loaded = time.perf_counter()
    with autocommit(engine) as conn:
        conn.execute(sa.text("VACUUM (ANALYZE) subscribers"))
        conn.execute(sa.text("VACUUM (ANALYZE) dm_messages"))
        counts = conn.execute(sa.text("""
            SELECT (SELECT count(*) FROM subscribers),
                   (SELECT count(*) FROM subscribers
                    WHERE opted_out_at IS NULL AND forgotten_at IS NULL),
                   (SELECT count(*) FROM subscribers WHERE tier = 'vip'),
                   (SELECT count(*) FROM dm_messages),
                   pg_database_size(current_database())""")).one()
    return {"subscribers": counts[0], "reachable": counts[1], "vip": counts[2],
            "history_rows": counts[3], "database_mb": round(counts[4] / 1e6),
            "load_subscribers_s": round(loaded_subscribers - started, 1),
            "load_history_s": round(loaded - loaded_subscribers, 1),
            "vacuum_analyze_s": round(time.perf_counter() - loaded, 1)}


@contextmanager
def autocommit(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


# --- the two ways to plan -----------------------------------------------------------------------

class _OnConnection:
    """Stands in for the engine plan_due is given: its `engine.begin()` block runs on one open
    connection, inside the harness's transaction, so the rows it inserts can be rolled back."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        yield self.conn


def by_plan_due(conn: sa.Connection, now: dt.datetime, sequences: Mapping[int, Sequence]) -> int:
    return plan_due(cast(sa.Engine, _OnConnection(conn)), CID, now, sequences)


# plan_due's statement without the lower bound, so already-handled steps are excluded by looking
# them up in dm_messages instead of by the window.
_FULL_SCAN = sa.text("""
    INSERT INTO dm_messages (subscriber_id, sequence_id, step, state, due_at)
    SELECT s.id, :sequence_id, :step, 'planned', s.subscribed_at + make_interval(days => :day)
    FROM subscribers s
    WHERE s.character_id = :character_id AND s.tier = :tier
      AND s.opted_out_at IS NULL AND s.forgotten_at IS NULL
      AND s.subscribed_at <= :newest
      AND NOT EXISTS (SELECT 1 FROM dm_messages m WHERE m.subscriber_id = s.id
                      AND m.sequence_id = :sequence_id AND m.step = :step)
    ON CONFLICT (subscriber_id, sequence_id, step) DO NOTHING
""")


def by_full_scan(conn: sa.Connection, now: dt.datetime,
                 sequences: Mapping[int, Sequence]) -> int:
    """The baseline: the same steps, each over every subscriber older than its day."""
    by_key = {seq.key: sid for sid, seq in sequences.items()}
    planned = 0
    for tier in SUBSCRIBER_TIERS:
        seq = sequence_for(sequences.values(), CID, tier)
        if seq is None:
            continue
        for step in seq.steps:
            planned += conn.execute(_FULL_SCAN, {
                "sequence_id": by_key[seq.key], "step": step.index, "day": step.day,
                "character_id": CID, "tier": tier,
                "newest": now - dt.timedelta(days=step.day)}).rowcount
    return planned


PLANNERS: dict[str, Planner] = {"plan_due": by_plan_due, "full_scan": by_full_scan}


# --- measuring ----------------------------------------------------------------------------------

def _inserted_digest(conn: sa.Connection, after_id: int) -> tuple[int, str]:
    rows = conn.execute(sa.text(
        "SELECT subscriber_id, sequence_id, step, due_at FROM dm_messages WHERE id > :after "
        "ORDER BY subscriber_id, sequence_id, step"), {"after": after_id}).all()
    digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()[:16]
    return len(rows), digest


def measure_once(engine: sa.Engine, method: str, case: str,
                 sequences: Mapping[int, Sequence]) -> dict[str, Any]:
    """One timed planning pass in a transaction that is rolled back; the table vacuumed after."""
    with engine.connect() as conn, conn.begin() as tx:
        if case == "steady":
            by_plan_due(conn, NOW - STEADY_GAP, sequences)
        after_id = conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM dm_messages"))
        started = time.perf_counter()
        planned = PLANNERS[method](conn, NOW, sequences)
        seconds = time.perf_counter() - started
        rows, digest = _inserted_digest(conn, after_id)
        tx.rollback()
    with autocommit(engine) as conn:  # the rolled-back rows must not slow the next run
        conn.execute(sa.text("VACUUM dm_messages"))
    return {"ms": seconds * 1000, "planned": planned, "rows": rows, "digest": digest}


def explain(engine: sa.Engine, method: str, sequences: Mapping[int, Sequence],
            ) -> dict[str, Any]:
    """The statements a method runs (cold case), each EXPLAIN ANALYZEd and rolled back: how
    `subscribers` (and dm_messages) are read, and one statement's plan as text."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append((statement, parameters))

    with engine.connect() as conn:
        with conn.begin() as tx:
            sa.event.listen(conn, "before_cursor_execute", capture)
            PLANNERS[method](conn, NOW, sequences)
            sa.event.remove(conn, "before_cursor_execute", capture)
            tx.rollback()
        access: list[str] = []
        text_plan = ""
        for index, (statement, parameters) in enumerate(statements):
            with conn.begin() as tx:
                plan = conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar()
                access.append(_access(plan[0]["Plan"]))
                tx.rollback()
            if index == 1:  # standard tier, day 3: a typical step
                with conn.begin() as tx:
                    text_plan = "\n".join(r[0] for r in conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + statement,
                        parameters))
                    tx.rollback()
    return {"statements": len(statements), "access": access, "plan": text_plan}


def _nodes(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _access(plan: Mapping[str, Any]) -> str:
    """How each table is read, e.g. 'subscribers: Index Scan (ix_subscribers_reachable_since)'."""
    parts = []
    for node in _nodes(plan):
        table = node.get("Relation Name")
        if table and node["Node Type"] not in ("ModifyTable",):
            index = f" ({node['Index Name']})" if node.get("Index Name") else ""
            parts.append(f"{table}: {node['Node Type']}{index}")
        elif node["Node Type"] == "Bitmap Index Scan":
            parts.append(f"bitmap on {node['Index Name']}")
    return "; ".join(parts)


def run(server_url: str | None, *, subscribers: int, days: int, opt_out: float, vip: float,
        runs: int) -> dict[str, Any]:
    before = machine()
    with server(server_url) as (admin_url, where), database(admin_url, "bench_due") as url:
        engine = sa.create_engine(url)
        try:
            sequences = sync_sequences(engine, load_sequences(ROOT / "sequences.yaml"))
            data = load(engine, sequences, subscribers=subscribers, days=days,
                        opt_out=opt_out, vip=vip)
            samples: dict[tuple[str, str], list[dict[str, Any]]] = {
                (c, m): [] for c in CASES for m in METHODS}
            for _ in range(runs):
                for case in CASES:
                    for method in METHODS:
                        samples[(case, method)].append(
                            measure_once(engine, method, case, sequences))
            plans = {m: explain(engine, m, sequences) for m in METHODS}
            version = server_version(engine)
        finally:
            engine.dispose()
    rows = []
    for case in CASES:
        ours = statistics.median(s["ms"] for s in samples[(case, "plan_due")])
        for method in METHODS:
            got = samples[(case, method)]
            median = statistics.median(s["ms"] for s in got)
            rows.append({
                "case": case, "method": method, "median_ms": round(median, 1),
                "runs_ms": [round(s["ms"], 1) for s in got],
                "planned": got[0]["planned"], "rows": got[0]["rows"],
                "digest": got[0]["digest"],
                "stable": len({(s["rows"], s["digest"]) for s in got}) == 1,
                "ratio_to_plan_due": round(median / ours, 1) if ours else None})
    same = {case: len({(r["rows"], r["digest"]) for r in rows if r["case"] == case}) == 1
            and all(r["stable"] for r in rows if r["case"] == case) for case in CASES}
    ours_ms = {r["case"]: r["median_ms"] for r in rows if r["method"] == "plan_due"}
    result = {
        "benchmark": "dm_due", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": before, "postgres": version, "server": where, "now": NOW.isoformat(),
        "params": {"subscribers": subscribers, "days": days, "opt_out": opt_out, "vip": vip,
                   "runs": runs},
        "data": data, "rows": rows, "same_result": same, "plans": plans,
        "load_before": before["load_1m"], "load_after": round(os.getloadavg()[0], 2),
        "target_ms": TARGET_MS,
    }
    result["index_used"] = all(INDEX in a for a in plans["plan_due"]["access"])
    result["under_target"] = all(ms < TARGET_MS for ms in ours_ms.values())
    result["passed"] = all(same.values()) and result["under_target"]
    return result


# --- the report ---------------------------------------------------------------------------------

def _summary(access: list[str]) -> str:
    counted: dict[str, int] = {}
    for a in access:
        counted[a] = counted.get(a, 0) + 1
    return "; ".join(f"{a} (x{n})" if n > 1 else a for a, n in counted.items())


def render(r: dict[str, Any]) -> str:
    m, d, p = r["machine"], r["data"], r["params"]
    word = "PASS" if r["under_target"] else "FAIL"
    lines = [
        HEADING,
        "",
        f"Measured {r['date']} on {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, "
        f"Python {m['python']}, PostgreSQL {r['postgres']} ({r['server']}). "
        f"`python -m benchmarks.dm_due` ({p['subscribers']:,} subscribers, {p['runs']} runs "
        "per case and method, interleaved; times are medians).",
        "",
        f"Data: {d['subscribers']:,} subscribers of one character, `subscribed_at` uniform over "
        f"{p['days']} days before `now` ({r['now']}), ids in subscription order; "
        f"{p['vip']:.0%} VIP ({d['vip']:,}), {p['opt_out']:.0%} opted out and "
        f"{FORGOTTEN_SHARE:.1%} forgotten ({d['reachable']:,} reachable). History: "
        f"{d['history_rows']:,} dm_messages rows, one per step whose window closed before now "
        "(sent, or skipped for conditional steps); open windows have none. Sequences: "
        "sequences.yaml (steps on days 0, 3, 7, 14 per tier, 72 h expiry). Loaded with "
        f"generate_series in {d['load_subscribers_s']} s + {d['load_history_s']} s, "
        f"VACUUM ANALYZE {d['vacuum_analyze_s']} s; database {d['database_mb']:,} MB.",
        "",
        "Each run is one planning pass for the character (8 statements: 2 tiers x 4 steps) in "
        "a transaction that is rolled back, then an untimed VACUUM. *cold*: nothing planned "
        "yet for the open windows (first cycle after a pause), so every due intent is "
        "inserted; *steady*: the previous cycle ran 10 minutes earlier (plan_due, untimed, "
        "same transaction). *plan_due*: `messaging.plan_due` itself, per step an index range "
        "scan over the subscribers who joined inside the step's window. *full_scan* (the "
        "baseline): the same INSERT ... SELECT without the lower bound on `subscribed_at`, "
        "i.e. every reachable subscriber older than the step's day, anti-joined (NOT EXISTS) "
        "against dm_messages to leave out steps already handled. Both insert the same rows "
        "(checked: same (subscriber, sequence, step, due_at) set).",
        "",
        "| case | method | median | ratio to plan_due | intents inserted | same rows "
        "| runs (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['case']} | {row['method']} | {row['median_ms']:.1f} ms | "
            f"{row['ratio_to_plan_due']:.1f} | {row['rows']:,} | {r['same_result'][row['case']]} "
            f"| {', '.join(f'{ms:.0f}' for ms in row['runs_ms'])} |")
    ours = {row["case"]: row["median_ms"] for row in r["rows"] if row["method"] == "plan_due"}
    lines += [
        "",
        f"Target: plan_due under {r['target_ms']:.0f} ms at this size: cold "
        f"{ours['cold']:.1f} ms, steady {ours['steady']:.1f} ms: {word}.",
        "",
        "Access methods (EXPLAIN ANALYZE of each statement, cold case):",
        "",
    ]
    for method in METHODS:
        lines.append(f"- {method}: {_summary(r['plans'][method]['access'])}")
    for method in METHODS:
        lines += ["", f"{method}, standard tier, day-3 step (EXPLAIN ANALYZE, costs and "
                      "timing off):", "", "```", r["plans"][method]["plan"], "```"]
    lines += ["", f"Load average (1 min) {r['load_before']} before, {r['load_after']} after; "
                  "the machine is shared, so single runs vary.", ""]
    return "\n".join(lines)


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("a share between 0 and 1, e.g. 0.05")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730,
                        help="subscribed_at is spread over this many days before now")
    parser.add_argument("--opt-out", type=_share, default=0.05)
    parser.add_argument("--vip", type=_share, default=0.10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-url", help="a PostgreSQL server to CREATE DATABASE on "
                        "(default: TEST_DATABASE_URL, else an embedded one in a temp dir)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the benchmarks page to update")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.subscribers < 1 or args.days < 30:
        parser.error("need --runs >= 1, --subscribers >= 1 and --days >= 30")
    result = run(args.server_url, subscribers=args.subscribers, days=args.days,
                 opt_out=args.opt_out, vip=args.vip, runs=args.runs)
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_section(render(result), "## DM due-step", docs=args.docs)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
