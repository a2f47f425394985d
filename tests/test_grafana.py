"""Grafana provisioning (deploy/grafana), checked without Grafana (not installable here):

- the data sources have the fixed uids the dashboards use, no secret in the file;
- the dashboards are valid JSON with `id: null`, fixed unique uids, unique panel ids, panels
  that do not overlap, and every panel, target and variable on a provisioned data source;
- every PromQL expression (Grafana's interval variables substituted) passes
  `promtool check rules` as a recording rule, and reads only metrics of the design table
  (tests/ops_names.py) by labels they have;
- every SQL query (Grafana's macros and variables substituted as Grafana does) is EXPLAINed
  and run on the marts built by dbt, as an analyst login, the role Grafana logs in with.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from analytics_content_world import build_world
from dbt_run import built_database
from ops_names import METRICS
from sqlalchemy.engine import make_url

from waifugen_assets.analytics.access import add_analyst

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml"
DASHBOARDS = {"operations": GRAFANA / "dashboards" / "operations.json",
              "business": GRAFANA / "dashboards" / "business.json"}

# Prometheus' own per-target series, and the labels it puts on every scraped series.
PROMETHEUS_OWN = frozenset({"up"})
TARGET_LABELS = frozenset({"job", "instance"})

# What Grafana puts in for its interval variables (any valid durations do for a syntax check).
PROM_VARIABLES = {"__rate_interval": "1m", "__interval": "30s", "__interval_ms": "30000",
                  "__range": "1d", "__range_s": "86400", "__range_ms": "86400000"}
# The seeded content world's local days (tests/analytics_content_world.py), as the time picker.
TIME_FROM, TIME_TO = "2026-02-20T00:00:00Z", "2026-03-27T23:59:59Z"

PROMQL_WORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left",
                          "group_right"})


# --- reading the files ----------------------------------------------------------------------

def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def provisioned() -> dict[str, str]:
    """uid -> type of every provisioned data source."""
    return {ds["uid"]: ds["type"] for ds in load_yaml(DATASOURCES)["datasources"]}


def dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads(path.read_text()) for name, path in DASHBOARDS.items()}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows too."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class Query:
    where: str  # "<dashboard> panel <id> <refId>" or "<dashboard> variable <name>"
    datasource: dict[str, str]
    text: str
    format: str  # time_series | table (SQL); "" for PromQL and variables
    legend: str = ""


def queries(name: str, board: dict[str, Any]) -> list[Query]:
    found = []
    for panel in panels(board):
        for target in panel.get("targets", []):
            text = target.get("expr") or target.get("rawSql") or ""
            found.append(Query(f"{name} panel {panel['id']} {target['refId']}",
                               target["datasource"], text, target.get("format", ""),
                               target.get("legendFormat", "")))
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            found.append(Query(f"{name} variable {var['name']}", var["datasource"],
                               var["query"], ""))
    return found


def all_queries(kind: str) -> list[Query]:
    types = provisioned()
    return [q for name, board in dashboards().items() for q in queries(name, board)
            if types[q.datasource["uid"]] == kind]


# --- PromQL ---------------------------------------------------------------------------------

def substitute_variables(text: str, variables: dict[str, str]) -> str:
    """`$name` and `${name}` replaced; an unknown one fails the test, naming it."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise AssertionError(f"unknown Grafana macro or variable ${name} in {text!r}")
        return variables[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, text)


def substitute_prom(expr: str) -> str:
    return substitute_variables(expr, PROM_VARIABLES)


def promtool_check(exprs: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """`promtool check rules` on one recording rule per expression (name -> expr)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (make tools)"
    rules = {"groups": [{"name": "grafana", "rules": [
        {"record": name, "expr": expr} for name, expr in exprs.items()]}]}
    path = tmp_path / f"grafana_{uuid.uuid4().hex[:8]}.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers left once strings, label matchers,
    ranges and grouping clauses are gone, that are not a call (function, aggregation)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        if text[match.end():].lstrip().startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_* clauses."""
    found = re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                       expr)
    return {name.strip() for group in found for name in group.split(",") if name.strip()}


def matcher_labels(expr: str) -> set[str]:
    """Labels named in selectors' {label op "value"} matchers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return {m for block in re.findall(r"\{([^}]*)\}", text)
            for m in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", block)}


# --- SQL ------------------------------------------------------------------------------------

def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def substitute_sql(text: str, variables: dict[str, str]) -> str:
    """Grafana's PostgreSQL macros and dashboard variables, expanded the way Grafana does."""
    text = re.sub(r"\$__timeFilter\(\s*([^)]+?)\s*\)",
                  lambda m: f"{m.group(1)} BETWEEN '{TIME_FROM}' AND '{TIME_TO}'", text)
    text = text.replace("$__timeFrom()", f"'{TIME_FROM}'").replace("$__timeTo()", f"'{TIME_TO}'")
    return substitute_variables(text, variables)


# --- provisioning ---------------------------------------------------------------------------

def test_datasources_have_fixed_uids_and_no_secret() -> None:
    doc = load_yaml(DATASOURCES)
    assert doc["apiVersion"] == 1
    by_uid = {ds["uid"]: ds for ds in doc["datasources"]}
    assert set(by_uid) == {"prometheus", "marts"}
    assert len({ds["name"] for ds in doc["datasources"]}) == len(doc["datasources"])

    prom = by_uid["prometheus"]
    assert (prom["type"], prom["url"]) == ("prometheus", "http://prometheus:9090")

    marts = by_uid["marts"]
    assert marts["type"] == "grafana-postgresql-datasource"
    assert marts["user"] == "$GRAFANA_ANALYST_USER"
    assert marts["secureJsonData"] == {
        "password": "$__file{/run/secrets/grafana_analyst_password}"}
    assert marts["jsonData"]["database"] == "waifugen"
    assert marts["jsonData"]["postgresVersion"] == 1600
    assert marts["jsonData"]["sslmode"] in {"disable", "require", "verify-ca", "verify-full"}
    # The password only ever comes from the secret file: nowhere else in the file.
    assert "password" not in marts and "password" not in marts["jsonData"]
    assert DATASOURCES.read_text().count("password:") == 1


def test_dashboards_provider_reads_the_folder_from_files() -> None:
    doc = load_yaml(PROVIDERS)
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "waifugen"
    assert provider["allowUiUpdates"] is False  # the JSON in git stays the truth
    assert provider["options"]["path"].startswith("/")


# --- dashboards -----------------------------------------------------------------------------

def test_dashboards_are_valid_with_fixed_unique_uids() -> None:
    # Every dashboard the provider loads is one these tests check.
    assert set((GRAFANA / "dashboards").iterdir()) == set(DASHBOARDS.values())
    boards = dashboards()
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids), uids
    assert len({b["title"] for b in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert board["id"] is None, name  # Grafana assigns ids; a fixed one clashes
        assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"]), (name, board["uid"])
        assert board["panels"], name


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_panel_ids_unique_and_panels_do_not_overlap(name: str) -> None:
    board = dashboards()[name]
    ids = [p["id"] for p in panels(board)]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids), ids
    cells: dict[tuple[int, int], int] = {}
    for panel in panels(board):
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, (panel["id"], g)
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                other = cells.setdefault((x, y), panel["id"])
                assert other == panel["id"], f"panels {other} and {panel['id']} overlap"


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_every_panel_target_and_variable_uses_a_provisioned_datasource(name: str) -> None:
    types = provisioned()
    board = dashboards()[name]

    def check(where: str, ds: dict[str, str]) -> None:
        assert ds.get("uid") in types, f"{where}: data source {ds} is not provisioned"
        assert ds.get("type") == types[ds["uid"]], f"{where}: type {ds} != provisioned"

    for panel in panels(board):
        where = f"{name} panel {panel['id']} ({panel['title']})"
        if panel["type"] == "row":
            assert "targets" not in panel, where
            continue
        check(where, panel["datasource"])
        assert panel["targets"], f"{where}: no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), where
        for target in panel["targets"]:
            check(f"{where} {target['refId']}", target["datasource"])
            assert target["datasource"] == panel["datasource"], where
            assert target.get("expr") or target.get("rawSql"), f"{where}: empty query"
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            check(f"{name} variable {var['name']}", var["datasource"])


# --- PromQL ---------------------------------------------------------------------------------

def test_every_promql_expression_passes_promtool(tmp_path: Path) -> None:
    prom = all_queries("prometheus")
    assert len(prom) >= 20
    exprs = {}
    for q in prom:
        record = "grafana:" + re.sub(r"\W+", "_", q.where)
        exprs[record] = substitute_prom(q.text)
    proc = promtool_check(exprs, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout, proc.stdout


def test_promtool_refuses_an_unsubstituted_or_broken_expression(tmp_path: Path) -> None:
    """The check above has teeth: what Grafana would expand, or a typo, fails promtool."""
    raw = "sum by (platform) (increase(waifugen_post_attempts_total[$__rate_interval]))"
    for expr in (raw, "sum by (job (waifugen_dagster_runs)"):
        proc = promtool_check({"grafana:bad": expr}, tmp_path)
        assert proc.returncode != 0, expr
    assert promtool_check({"grafana:good": substitute_prom(raw)}, tmp_path).returncode == 0


def test_every_metric_and_label_used_is_in_the_design_table() -> None:
    """Metric names from the design table only, selected and grouped by labels they carry,
    and legends naming only labels the result keeps (else the legend is blank)."""
    problems: list[str] = []
    for q in all_queries("prometheus"):
        expr = substitute_prom(q.text)
        names = metric_names(expr)
        assert names, f"{q.where}: selects no metric: {q.text}"
        unknown = names - set(METRICS) - PROMETHEUS_OWN
        if unknown:
            problems.append(f"{q.where}: unknown metrics {sorted(unknown)}")
            continue
        labels = set(TARGET_LABELS).union(*(METRICS.get(n, ()) for n in names))
        used = grouping_labels(expr) | matcher_labels(expr)
        if used - labels:
            problems.append(f"{q.where}: labels {sorted(used - labels)} not on {sorted(names)}")
        kept = grouping_labels(expr) if re.search(r"\bby\s*\(", expr) else labels
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", q.legend))
        if legend - kept:
            problems.append(f"{q.where}: legend {sorted(legend - kept)} not in the result")
    assert not problems, problems


def test_metric_name_and_label_extraction() -> None:
    expr = ('sum by (platform) (increase(waifugen_post_attempts_total{outcome!="x, y=z"}[1h] '
            "offset 5m)) / on (platform) group_left sum(foo:bar) > bool 1e3 and time() - baz")
    assert metric_names(expr) == {"waifugen_post_attempts_total", "foo:bar", "baz"}
    assert grouping_labels(expr) == {"platform"}
    assert matcher_labels(expr) == {"outcome"}
    assert matcher_labels('up{job="a",instance=~"b.*"}') == {"job", "instance"}


# --- SQL on the marts, as the analyst ----------------------------------------------------

ANALYST_PASSWORD = "grafana reads the marts only"


@pytest.fixture(scope="module")
def analyst_url(pg_server_url: str, template_db: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The marts built by dbt on the seeded content world, and the URL of an analyst login
    (the same kind of login the Grafana data source uses)."""
    work_dir = tmp_path_factory.mktemp("dbt_grafana")
    with built_database(pg_server_url, template_db, "grafana", build_world().seed,
                        work_dir) as url:
        admin = sa.create_engine(url)
        name = f"grafana_{uuid.uuid4().hex[:10]}"
        try:
            add_analyst(admin, name, ANALYST_PASSWORD)
            yield make_url(url).set(username=name, password=ANALYST_PASSWORD
                                    ).render_as_string(hide_password=False)
        finally:
            with admin.begin() as conn:  # roles belong to the server: leave none behind
                if conn.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"),
                               {"n": name}):
                    conn.execute(sa.text(f'DROP OWNED BY "{name}"'))
                    conn.execute(sa.text(f'DROP ROLE "{name}"'))
            admin.dispose()


@pytest.fixture(scope="module")
def analyst(analyst_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(analyst_url)
    yield engine
    engine.dispose()


def variable_values(board: dict[str, Any], analyst: sa.Engine) -> dict[str, str]:
    """Each dashboard variable as Grafana interpolates it into SQL: a query variable runs its
    query (here as the analyst) and, being multi-value, becomes a quoted list; a custom
    single-value one becomes its first option, bare."""
    values = {}
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            with analyst.connect() as conn:
                rows = conn.scalars(sa.text(substitute_sql(var["query"], {}))).all()
            assert rows, f"variable {var['name']}: its query returns nothing"
            values[var["name"]] = ",".join(sql_literal(str(r)) for r in rows)
        elif var["type"] == "custom":
            values[var["name"]] = var["query"].split(",")[0].strip()
        else:
            raise AssertionError(f"variable {var['name']}: type {var['type']} not handled")
    return values


@pytest.mark.integration
def test_every_sql_query_runs_on_the_marts_as_the_analyst(analyst: sa.Engine) -> None:
    board_of = dashboards()
    sql_queries = all_queries("grafana-postgresql-datasource")
    assert len(sql_queries) >= 8
    variables = {name: variable_values(board, analyst) for name, board in board_of.items()}
    for q in sql_queries:
        text = substitute_sql(q.text, variables[q.where.split()[0]])
        try:
            with analyst.connect() as conn:
                plan = conn.execute(sa.text(f"EXPLAIN {text}")).all()
                result = conn.execute(sa.text(text))
                columns, rows = list(result.keys()), result.all()
        except sa.exc.DBAPIError as exc:
            raise AssertionError(f"{q.where}: {str(exc.orig).splitlines()[0]}") from None
        assert plan, q.where
        assert rows, f"{q.where}: no rows on the seeded marts\n{text}"
        if q.format == "time_series":
            assert columns[0] == "time", f"{q.where}: the first column must be `time`"
            value_columns = [c for c in columns[1:] if c != "metric"]
            assert value_columns, q.where
            for row in rows:
                values = dict(zip(columns, row, strict=True))
                assert isinstance(values["time"], dt.datetime), (q.where, row)
                assert all(v is None or isinstance(v, int | float | Decimal)
                           for k, v in values.items() if k in value_columns), (q.where, row)


@pytest.mark.integration
def test_explain_as_the_analyst_checks_privileges(analyst: sa.Engine) -> None:
    """EXPLAIN is a real privilege check: the analyst cannot even plan a query on the app's
    own tables, so the check above proves the read-only role is enough for every panel."""
    with analyst.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as err:
        conn.execute(sa.text("EXPLAIN SELECT * FROM public.social_posts"))
    assert "permission denied" in str(err.value)
