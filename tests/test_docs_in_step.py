"""The generated references and the runbooks are in step with the code.

Generated files (docs/reference, docs/diagrams) must equal what
`python -m waifugen_assets.app.docs_gen` makes now. The runbooks' commands, SQL and GraphQL
are run against the real parts: every `waifugen` / `dagster` command parses in its click tree,
every SQL block executes on the migrated schema, the GraphQL requests of stuck-run.md go to a
real dagster-webserver, and every alert of deploy/prometheus/rules.yml has its runbook.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from waifugen_assets.app import docs_gen
from waifugen_assets.core.config import project_root

ROOT = project_root()
RUNBOOKS = ROOT / "docs/runbooks"
OURS = ("README.md", "a2e-down.md", "stuck-run.md", "credits-depleted.md")
FENCE = re.compile(r"^[ \t]*```(\w+)\n(.*?)^[ \t]*```", re.M | re.S)  # list items indent


def _blocks(path: Path, language: str) -> list[str]:
    return [textwrap.dedent(body) for lang, body in FENCE.findall(path.read_text())
            if lang == language]


def _commands(path: Path) -> list[list[str]]:
    """Each command line of the file's sh blocks, split like a shell would."""
    out = []
    for block in _blocks(path, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(words)
    return out


# --- the generated files ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def generated() -> dict[str, tuple[str | None, str]]:
    return docs_gen.render(ROOT)


def test_every_generated_file_is_in_step(generated) -> None:
    stale = []
    for rel, (current, wanted) in generated.items():
        if current != wanted:
            diff = difflib.unified_diff((current or "").splitlines(), wanted.splitlines(),
                                        f"{rel} (committed)", f"{rel} (from the code)",
                                        lineterm="", n=1)
            stale.append("\n".join(list(diff)[:40]))
    assert not stale, ("not in step with the code; run `python -m waifugen_assets.app.docs_gen`"
                       " and commit the result:\n" + "\n\n".join(stale))


def test_the_er_diagram_names_every_table(generated) -> None:
    from waifugen_assets.core.schema import metadata

    text = generated["docs/diagrams/er.md"][1]
    missing = [t for t in metadata.tables if f"\n    {t} {{\n" not in text]
    assert not missing, f"tables missing from docs/diagrams/er.md: {missing}"
    for table in metadata.tables.values():  # one relationship per foreign key
        for fk in table.foreign_key_constraints:
            assert f" {table.name} : " in text and f"    {fk.referred_table.name} " in text


def test_the_architecture_diagram_names_every_asset_key(generated) -> None:
    from waifugen_assets.definitions import defs

    text = generated["docs/diagrams/architecture.md"][1]
    diagram = text.split(docs_gen.BEGIN, 1)[1].split("```", 2)[1]
    keys = [k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()]
    missing = [k for k in keys if f'["{k}"]' not in diagram and f'[("{k}")]' not in diagram]
    assert keys and not missing, f"asset keys missing from the diagram: {missing}"
    jobs = [j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")]
    assert all(f"| `{job}` |" in text for job in jobs)


def test_the_cli_reference_has_every_command(generated) -> None:
    from waifugen_assets.app.cli import main

    text = generated["docs/reference/cli.md"][1]
    for command, ctx in docs_gen._walk(main, click.Context(main, info_name="waifugen")):
        if command is not main:
            assert f"\n## {ctx.command_path}\n" in text, ctx.command_path


def test_the_webhook_reference_lists_the_apps_routes(generated) -> None:
    text = generated["docs/reference/webhooks.md"][1]
    for row in ("| POST | `/fanvue/{character}` |", "| POST | `/telegram/{character}` |",
                "| GET | `/healthz` |"):
        assert row in text


def test_check_names_a_stale_file_and_the_rewrite_fixes_it(tmp_path: Path) -> None:
    for rel in ("docs/diagrams/architecture.md", "deploy/prometheus/rules.yml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    runner = CliRunner()
    stale = runner.invoke(docs_gen.main, ["--root", str(tmp_path), "--check"])
    assert stale.exit_code == 1
    assert "docs/reference/cli.md" in stale.output
    assert "python -m waifugen_assets.app.docs_gen" in stale.output
    assert not (tmp_path / "docs/reference/cli.md").exists()  # --check writes nothing
    assert runner.invoke(docs_gen.main, ["--root", str(tmp_path)]).exit_code == 0
    fine = runner.invoke(docs_gen.main, ["--root", str(tmp_path), "--check"])
    assert fine.exit_code == 0, fine.output
    for rel in docs_gen.targets(tmp_path):
        assert (tmp_path / rel).read_text() == (ROOT / rel).read_text(), rel


def test_the_generator_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "waifugen_assets.app.docs_gen", "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "every generated file is in step with the code"


# --- the runbooks -----------------------------------------------------------------------------

def test_every_link_and_cited_file_exists() -> None:
    pages = [RUNBOOKS / name for name in OURS]
    pages += sorted((ROOT / "docs/reference").glob("*.md"))
    pages += sorted((ROOT / "docs/diagrams").glob("*.md"))
    broken = []
    for page in pages:
        text = page.read_text()
        anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                   for h in re.findall(r"^#+ (.+)$", text, re.M)}
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            file, _, anchor = target.partition("#")
            if re.match(r"[a-z]+:", file):
                continue
            if file and not (page.parent / file).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif not file and anchor not in anchors:
                broken.append(f"{page.relative_to(ROOT)}: #{anchor}")
        for cited in re.findall(r"`?((?:waifugen_assets|resources|sensors|deploy|docs)/"
                                r"[\w/.-]+\.(?:py|md|yml|yaml))", text):
            if not (ROOT / cited).exists() and not (RUNBOOKS / cited).exists():
                broken.append(f"{page.relative_to(ROOT)}: cites {cited}")
    assert not broken, "\n".join(broken)


def _resolve(program: str, group: click.Group, words: list[str]) -> None:
    """Parse `words` (after the program name) as the click tree would, without running it."""
    command: click.Command = group
    ctx = click.Context(group, info_name=program)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(ctx, words[0])
        assert sub is not None, f"no command {words[0]!r} under {ctx.command_path!r}"
        command, words = sub, words[1:]
        ctx = click.Context(command, info_name=command.name, parent=ctx)
    command.make_context(command.name or "", list(words), parent=ctx.parent)


def test_every_command_in_the_runbooks_exists() -> None:
    from dagster._cli import cli as dagster_cli

    from waifugen_assets.app.cli import main as waifugen_cli

    checked = 0
    for name in OURS:
        for words in _commands(RUNBOOKS / name):
            for program, tree in (("waifugen", waifugen_cli), ("dagster", dagster_cli)):
                if program in words:
                    try:
                        _resolve(program, tree, words[words.index(program) + 1:])
                    except (click.UsageError, AssertionError) as exc:
                        pytest.fail(f"{name}: `{shlex.join(words)}`: {exc}")
                    checked += 1
    assert checked >= 6


def test_every_sql_block_runs_on_the_schema(engine: sa.Engine) -> None:
    blocks = [(name, b) for name in OURS for b in _blocks(RUNBOOKS / name, "sql")]
    assert len(blocks) >= 10
    for name, block in blocks:
        # The example pid could be a live backend of this shared test server: ask for none.
        block = block.replace("pg_terminate_backend(12345)", "pg_terminate_backend(-1)")
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                conn.exec_driver_sql(block)
            except sa.exc.DBAPIError as exc:
                pytest.fail(f"{name}: this SQL does not run: {exc.orig}\n{block}")
            finally:
                tx.rollback()


def test_the_claim_query_finds_the_session_holding_a_row(engine: sa.Engine) -> None:
    from waifugen_assets.core.claims import Claims

    block = next(b for b in _blocks(RUNBOOKS / "stuck-run.md", "sql")
                 if "hashtextextended('waifugen:reel:123'" in b)
    with Claims(engine) as claims:
        assert claims.take("reel", 123)
        holder = claims._connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect() as conn:
            sessions, pids = [conn.exec_driver_sql(q).all() for q in block.split(";")
                              if q.strip()]
        assert holder in [row.pid for row in sessions]
        assert [row.pid for row in pids] == [holder]
    with engine.connect() as conn:
        assert conn.exec_driver_sql(block.split(";")[1]).all() == []  # released


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_stuck_run_graphql_requests_work_on_a_real_webserver(tmp_path: Path,
                                                                  monkeypatch) -> None:
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        run = create_run_for_test(instance, job_name="render",
                                  status=dg.DagsterRunStatus.STARTED,
                                  tags={"dagster/partition": "aiko-tanaka|2026-12-05"})
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "--empty-workspace",
         "-h", "127.0.0.1", "-p", str(port)], env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "webserver down"
            time.sleep(0.2)
        answers = []
        for words in _commands(RUNBOOKS / "stuck-run.md"):
            if words[0] != "curl":
                continue
            url = next(w for w in words if w.startswith("http"))
            assert url == "http://127.0.0.1:3000/graphql"
            body = words[words.index("-d") + 1].replace("RUN_ID", run.run_id)
            answer = httpx.post(f"http://127.0.0.1:{port}/graphql", content=body,
                                headers={"Content-Type": "application/json"}, timeout=30)
            assert answer.is_success and "errors" not in answer.json(), answer.text
            answers.append(answer.json()["data"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    listed, safe, forced, freed = answers
    assert [r["runId"] for r in listed["runsOrError"]["results"]] == [run.run_id]
    assert listed["runsOrError"]["results"][0]["tags"] == [
        {"key": "dagster/partition", "value": "aiko-tanaka|2026-12-05"}]
    # No process runs it: the polite request fails and leaves it CANCELING...
    assert safe["terminateRun"]["__typename"] == "TerminateRunFailure"
    # ...and the forced one marks it canceled.
    assert forced["terminateRun"]["run"] == {"runId": run.run_id, "status": "CANCELED"}
    assert freed == {"freeConcurrencySlotsForRun": True}


def test_every_alert_has_its_runbook() -> None:
    rules = ROOT / "deploy/prometheus/rules.yml"
    assert rules.exists(), "deploy/prometheus/rules.yml is missing"
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(rules.read_text())
    index = (RUNBOOKS / "README.md").read_text()
    alerts = [r for g in data["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 12
    for rule in alerts:
        name, url = rule["alert"], rule["annotations"]["runbook_url"]
        page = ROOT / url
        assert url.startswith("docs/runbooks/") and page.exists(), f"{name}: {url}"
        row = next((line for line in index.splitlines() if line.startswith(f"| `{name}` |")),
                   None)
        assert row is not None, f"{name} is not in docs/runbooks/README.md's table"
        if page.name == "README.md":
            anchor = re.search(r"\]\(#([a-z0-9-]+)\)", row)
            assert anchor and re.search(rf"^###? .*{name}", index, re.M), name
        else:
            assert f"]({page.name})" in row, f"{name}: the index links another page than {url}"
