"""What each stage's asset definitions tell the Dagster UI, in Dagster's own conventions.

- Owners are teams (`team:content`, `team:subscribers`): no person's address is known here.
- `dagster/table_name` and `dagster/column_schema` come from the SQLAlchemy tables in
  core/schema.py, so the catalog can never drift from the migrations.
- Materializations report `dagster/row_count` (the asset's rows in its table) and, when
  partitioned, `dagster/partition_row_count` (the partition's rows), plain numbers the UI plots.
- Reasons and links are Markdown tables, every cell redacted (metadata is not a log line, so
  the log filter never sees it).
- Every check result names its character and day, in its metadata (plain `character` and
  `date` texts) and its description: a check's history mixes every partition of the asset.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping, Sequence

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from waifugen_assets.core.redaction import redact

CONTENT_TEAM = "team:content"
SUBSCRIBERS_TEAM = "team:subscribers"
ANALYTICS_TEAM = "team:analytics"
MAX_TABLE_ROWS = 100  # a Markdown table longer than this ends with a "... more" row
MAX_CELL = 300

_DIALECT = postgresql.dialect()


# --- definitions ------------------------------------------------------------------------------

def table_name(table: sa.Table) -> str:
    return f"{table.schema or 'public'}.{table.name}"


def column_schema(table: sa.Table) -> dg.TableSchema:
    """The table's columns and constraints as Dagster shows them, read from SQLAlchemy."""
    unique = {next(iter(c.columns)).name for c in table.constraints
              if isinstance(c, sa.UniqueConstraint | sa.PrimaryKeyConstraint)
              and len(c.columns) == 1}
    columns = []
    for col in table.columns:
        other = [f"references {fk.target_fullname}" for fk in col.foreign_keys]
        if col.primary_key:
            other.insert(0, "primary key")
        default = getattr(col.server_default, "arg", None)
        if default is not None:  # a literal ('planned') or an SQL expression (now())
            other.append(f"default {default.text if hasattr(default, 'text') else repr(default)}")
        columns.append(dg.TableColumn(
            name=col.name, type=col.type.compile(dialect=_DIALECT).lower(),
            description=col.comment,
            constraints=dg.TableColumnConstraints(nullable=bool(col.nullable),
                                                  unique=col.name in unique, other=other)))
    table_level = sorted(
        [f"unique ({', '.join(c.name for c in con.columns)})" for con in table.constraints
         if isinstance(con, sa.UniqueConstraint) and len(con.columns) > 1]
        + [f"check {con.name}: {con.sqltext}" for con in table.constraints
           if isinstance(con, sa.CheckConstraint)])
    return dg.TableSchema(columns=columns,
                          constraints=dg.TableConstraints(other=table_level))


def table_metadata(table: sa.Table) -> dict[str, object]:
    """Definition metadata of an asset whose rows live in `table`."""
    return {"dagster/table_name": table_name(table),
            "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(table))}


# --- materializations -------------------------------------------------------------------------

def _count(conn: sa.Connection, query: sa.Select) -> int:
    return int(conn.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)


def row_counts(conn: sa.Connection, asset_rows: sa.Select,
               partition_rows: sa.Select | None = None) -> dict[str, object]:
    """`dagster/row_count` (the asset's rows, every partition) and, for a partitioned asset,
    `dagster/partition_row_count`; each argument selects the rows it counts. (The keys of
    Dagster's TableMetadataSet, which the top-level `dagster` module does not export.)"""
    counts: dict[str, object] = {"dagster/row_count": _count(conn, asset_rows)}
    if partition_rows is not None:
        counts["dagster/partition_row_count"] = _count(conn, partition_rows)
    return counts


def cell(value: object) -> str:
    """One Markdown table cell: redacted, on one line, pipes escaped, cut to MAX_CELL."""
    text = " ".join(redact(str(value)).split()).replace("|", "\\|")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def link(text: str, url: str | None) -> str:
    """A Markdown link for an http(s) URL; just the text for anything else."""
    if not url or not url.startswith(("https://", "http://")):
        return cell(text)
    return f"[{cell(text)}]({redact(url).replace(' ', '%20').replace(')', '%29')})"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> dg.MetadataValue:
    """A Markdown table of pre-rendered cells (see `cell`, `link`); "none" when empty."""
    rows = list(rows)
    if not rows:
        return dg.MetadataValue.md("none")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows[:MAX_TABLE_ROWS]]
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(f"| … {len(rows) - MAX_TABLE_ROWS} more |" + " |" * (len(headers) - 1))
    return dg.MetadataValue.md("\n".join(lines))


def reasons_table(reasons: Mapping[object, object], key: str = "reel",
                  value: str = "reason") -> dg.MetadataValue:
    """`key | value` rows in the mapping's own order (the order things happened)."""
    return md_table([key, value], ([cell(k), cell(v)] for k, v in reasons.items()))


# --- checks -----------------------------------------------------------------------------------

def check_result(name: str, character_id: str, day: dt.date, *, passed: bool, summary: str,
                 severity: dg.AssetCheckSeverity,
                 metadata: Mapping[str, object] | None = None) -> dg.AssetCheckResult:
    """A check result that says whose day it judged: `character` and `date` in its metadata,
    both at the head of its description."""
    return dg.AssetCheckResult(
        check_name=name, passed=passed, severity=severity,
        description=redact(f"{character_id} {day.isoformat()}: {summary}"),
        metadata={"character": character_id, "date": day.isoformat(), **(metadata or {})})


# --- the code location ------------------------------------------------------------------------

def with_code_references(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Each asset linked to the file and line of its function (`dagster/code_references`).
    Dagster marks the helper beta; its warning on every load tells an operator nothing.
    Local paths only: linking them to a hosted repository (link_code_references_to_git)
    needs its URL and branch, and this checkout has no remote."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return list(dg.with_source_code_references(assets))
