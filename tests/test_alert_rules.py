"""Alerting with the real tools: Prometheus' config and rules (promtool check / test rules),
the rules against the design's names, and Alertmanager's config rendered by
deploy/render-alertmanager.sh (amtool check-config, routes) and run for real: a
prometheus-alertmanager on loopback delivers to the sandbox's Telegram (whose HTML parser
is Telegram's) and inhibits a family's warning while its critical fires.

promtool, amtool and prometheus-alertmanager are Debian's (`make tools`); a missing one is a
failure, never a skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ops_names import ALERTS, INHIBITIONS, METRICS, RUNBOOKS

from waifugen_assets.core.sandbox_world import SANDBOX_BOT_TOKEN

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER = ROOT / "deploy" / "alertmanager"
RENDER = ROOT / "deploy" / "render-alertmanager.sh"
RULES = PROMETHEUS / "rules.yml"
RULES_TEST = PROMETHEUS / "rules_test.yml"
TOKEN = "123456789:AAtest-token_for_alertmanager"
CHAT_ID = "-1001234567890"
# What the design fixes beyond the threshold: these alerts hold for exactly this long.
DESIGN_FOR = {"A2ECreditsRunningOut": "1h", "DMsHeldForReview": "2h", "DaemonHeartbeatStale": "5m"}


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, (f"{name} not found: install Debian's prometheus and prometheus-alertmanager "
                  "packages (`make tools`)")
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


# --- Prometheus -------------------------------------------------------------------------

def test_prometheus_config_and_rules_pass_promtool() -> None:
    promtool = tool("promtool")
    # check config also checks the rule files it names; scrape targets need not resolve.
    config = run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout + config.stderr
    checked = run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout + checked.stderr


def test_prometheus_scrapes_metrics_and_itself_and_alerts_alertmanager() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in config["scrape_configs"]}
    assert targets == {"prometheus": ["localhost:9090"], "waifugen": ["metrics:9464"]}
    assert config["global"]["scrape_interval"] == "15s"
    # The collector's own `job` label (the Dagster job) must survive the scrape.
    waifugen = next(j for j in config["scrape_configs"] if j["job_name"] == "waifugen")
    assert waifugen["honor_labels"] is True
    assert config["rule_files"] == ["rules.yml"]
    assert [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"]
            for t in sc["targets"]] == ["alertmanager:9093"]


def test_rule_unit_tests_pass() -> None:
    result = run(tool("promtool"), "test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    doc = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case["alert_rule_test"]:
            expected = check.get("exp_alerts") or []
            (firing if expected else quiet).add(check["alertname"])
            for alert in expected:  # labels and annotations spelled out, never left open
                assert alert["exp_labels"]["severity"] == ALERTS[check["alertname"]]
                assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
    assert firing == set(ALERTS), f"never tested firing: {sorted(set(ALERTS) - firing)}"
    assert quiet == set(ALERTS), f"never tested quiet: {sorted(set(ALERTS) - quiet)}"


def test_rules_are_the_design_alerts() -> None:
    found = rules()
    assert [r["alert"] for r in found if "alert" in r] == list(ALERTS)
    assert all("alert" in r for r in found), "a recording rule in rules.yml"
    for rule in found:
        name = rule["alert"]
        assert rule["labels"] == {"severity": ALERTS[name]}, name
        notes = rule["annotations"]
        assert set(notes) == {"summary", "description", "runbook_url"}, name
        assert "{{ $value" in notes["summary"] and "\n" not in notes["summary"], name
        assert notes["description"].strip(), name
        assert notes["runbook_url"] in {f"docs/runbooks/{f}" for f in RUNBOOKS}, name
        if name in DESIGN_FOR:
            assert rule.get("for") == DESIGN_FOR[name], name


def test_rules_use_only_the_design_metrics_and_their_labels() -> None:
    for rule in rules():
        expr, name = rule["expr"], rule["alert"]
        used = set(re.findall(r"\bwaifugen_[a-z0-9_]+", expr))
        unknown = sorted(used - set(METRICS))
        assert used and not unknown, f"{name}: metrics not in the design: {unknown}"
        labels = {label for metric in used for label in METRICS[metric]}
        for metric, matchers in re.findall(r"\b(waifugen_[a-z0-9_]+)\{([^}]*)\}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in METRICS[metric], f"{name}: {metric} has no label {label}"
        for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
            for label in filter(None, (s.strip() for s in clause.split(","))):
                assert label in labels, f"{name}: no metric of the rule has label {label}"
        texts = " ".join(rule["annotations"].values())
        for label in re.findall(r"\$labels\.(\w+)", texts):
            assert label in labels, f"{name}: annotation uses $labels.{label}, not a label here"


def test_the_collector_exports_the_design_metrics() -> None:
    from waifugen_assets.operations.metrics import FAMILIES

    assert {f.name: f.labels for f in FAMILIES} == METRICS


def test_runbooks_named_by_alerts_exist() -> None:
    present = {str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "runbooks").glob("*.md")}
    missing = sorted({r["annotations"]["runbook_url"] for r in rules()} - present)
    assert not missing, f"runbooks the alerts point at are missing: {missing}"


# Each mutant moves one threshold across its boundary (> <-> >=, < <-> <=) or one `for` by a
# minute; the unit tests must fail on every one, or they do not pin that edge down.
SWAP = {">=": ">", ">": ">=", "<=": "<", "<": "<="}


def _minutes(duration: str) -> int:
    number, unit = int(duration[:-1]), duration[-1]
    return number * {"m": 1, "h": 60, "d": 1440}[unit]


def mutants(rule: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    expr = rule["expr"]
    for match in re.finditer(r"[<>]=?", expr):
        if expr[:match.start()].count("{") > expr[:match.start()].count("}"):
            continue  # inside a label matcher
        op = match.group()
        yield (f"{op} -> {SWAP[op]} at {match.start()}",
               {**rule, "expr": expr[:match.start()] + SWAP[op] + expr[match.end():]})
    held = _minutes(rule["for"]) if "for" in rule else 0
    for delta in (-1, 1):
        if held + delta >= 0:
            yield f"for {held}m -> {held + delta}m", {**rule, "for": f"{held + delta}m"}


def test_rule_unit_tests_catch_every_threshold_and_for_change(tmp_path: Path) -> None:
    """One promtool run over a folder per variant: each rule alone with only its own checks,
    unchanged (must pass: the harness is sound) and every mutant (must fail)."""
    cases = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    files: dict[str, tuple[str, str]] = {}  # test file -> (alert, variant)
    for rule in rules():
        alert = rule["alert"]
        tests = []  # only this alert's checks: the others would pass whatever the mutant
        for case in cases["tests"]:
            checks = [c for c in case["alert_rule_test"] if c["alertname"] == alert]
            if checks:
                tests.append({**case, "alert_rule_test": checks})
        for label, variant in [("unchanged", rule), *mutants(rule)]:
            folder = tmp_path / f"v{len(files):03d}"
            folder.mkdir()
            (folder / "rules.yml").write_text(yaml.safe_dump(
                {"groups": [{"name": "variant", "rules": [variant]}]}, sort_keys=False))
            (folder / "rules_test.yml").write_text(yaml.safe_dump(
                {**cases, "rule_files": ["rules.yml"], "tests": tests}, sort_keys=False))
            files[str(folder / "rules_test.yml")] = (alert, label)
    # One stream: promtool writes the file headers to stdout and failures to stderr.
    result = subprocess.run([tool("promtool"), "test", "rules", *files], capture_output=False,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=300, check=False)
    outcome: dict[str, str] = {}
    current = ""
    for line in result.stdout.splitlines():
        if line.startswith("Unit Testing:"):
            current = line.split(":", 1)[1].strip()
        elif line.strip() in ("SUCCESS", "FAILED:") and current:
            outcome.setdefault(current, line.strip())
    assert set(outcome) == set(files), result.stdout[-3000:]
    broken = [files[f] for f, status in outcome.items()
              if files[f][1] == "unchanged" and status != "SUCCESS"]
    assert not broken, f"a rule alone fails its own checks: {broken}"
    survived = [files[f] for f, status in outcome.items()
                if files[f][1] != "unchanged" and status == "SUCCESS"]
    assert not survived, f"rules_test.yml does not notice: {survived}"
    assert len(files) > 2 * len(ALERTS)


# --- Alertmanager ----------------------------------------------------------------------

def render_env(**settings: str) -> dict[str, str]:
    """The render script's environment: PATH and the given settings only (never the
    developer's own TELEGRAM_*)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **settings}


def render(out: Path, *command: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return run("sh", str(RENDER), str(ALERTMANAGER), str(out), *command,
               env=render_env(**settings))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "telegram_bot_token"
    path.write_text(TOKEN + "\n")  # a Docker secret file: trailing newline
    return path


def test_rendered_alertmanager_config_passes_amtool(tmp_path: Path, token_file: Path) -> None:
    out = tmp_path / "rendered"
    config_file = out / "alertmanager.yml"
    amtool = tool("amtool")
    # As the compose entrypoint runs it: render, then exec the command (here amtool).
    result = render(out, amtool, "check-config", str(config_file),
                    TELEGRAM_BOT_TOKEN_FILE=str(token_file), TELEGRAM_ALERT_CHAT_ID=CHAT_ID)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 templates" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600  # it holds the bot token
    assert sorted(p.name for p in out.iterdir()) == ["alertmanager.yml", "telegram.tmpl"]
    text = config_file.read_text(encoding="utf-8")
    assert "${" not in text
    config = yaml.safe_load(text)
    telegram = config["receivers"][0]["telegram_configs"][0]
    assert telegram["bot_token"] == TOKEN and telegram["chat_id"] == int(CHAT_ID)
    assert telegram["api_url"] == "https://api.telegram.org"
    assert telegram["parse_mode"] == "HTML" and telegram["send_resolved"] is True
    route = config["route"]
    assert route["receiver"] == "telegram" and route["group_by"] == ["alertname"]
    assert {r["receiver"] for r in route.get("routes", [])} <= {"telegram"}
    assert {(i["source_matchers"][0], i["target_matchers"][0], tuple(i["equal"]))
            for i in config["inhibit_rules"]} == {
        (f'alertname="{src}"', f'alertname="{dst}"', (label,)) for src, dst, label in INHIBITIONS}

    for alert, severity in ALERTS.items():
        routed = run(amtool, "config", "routes", "test", f"--config.file={config_file}",
                     f"alertname={alert}", f"severity={severity}")
        assert routed.returncode == 0 and routed.stdout.strip() == "telegram", routed.stdout


def test_amtool_rejects_the_unrendered_template() -> None:
    # Placeholders are not values (the API URL has no scheme, the chat id is not a number):
    # the template is never mistaken for a working config.
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER / "alertmanager.yml.tmpl"))
    assert result.returncode != 0


@pytest.mark.parametrize(("settings", "complaint"), [
    ({"TELEGRAM_ALERT_CHAT_ID": CHAT_ID},
     "TELEGRAM_BOT_TOKEN is not set (nor TELEGRAM_BOT_TOKEN_FILE)"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN + "|x", "TELEGRAM_ALERT_CHAT_ID": CHAT_ID},
     "TELEGRAM_BOT_TOKEN is not a Telegram bot token (digits:letters)"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN + "\nchat_id: 1", "TELEGRAM_ALERT_CHAT_ID": CHAT_ID},
     "TELEGRAM_BOT_TOKEN has several lines, one value expected"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ALERT_CHAT_ID": "@operators"},
     "TELEGRAM_ALERT_CHAT_ID is not a numeric Telegram chat id"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN},
     "TELEGRAM_ALERT_CHAT_ID is not set (nor TELEGRAM_ALERT_CHAT_ID_FILE)"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ALERT_CHAT_ID": CHAT_ID,
      "TELEGRAM_API_URL": "https://x.example/'&y"}, "TELEGRAM_API_URL is not an http(s) URL"),
    ({"TELEGRAM_BOT_TOKEN_FILE": "/nonexistent/token", "TELEGRAM_ALERT_CHAT_ID": CHAT_ID},
     "TELEGRAM_BOT_TOKEN_FILE=/nonexistent/token: cannot read"),
])
def test_render_refuses_bad_settings(tmp_path: Path, settings: dict[str, str],
                                     complaint: str) -> None:
    out = tmp_path / "rendered"
    result = render(out, **settings)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [f"render-alertmanager: {complaint}"]
    assert TOKEN not in result.stderr
    assert not (out / "alertmanager.yml").exists()


def render_message(tmp_path: Path, status: str, alerts: list[dict[str, Any]],
                   common_annotations: dict[str, str]) -> str:
    """The Telegram text Alertmanager would send for this group (html/template, as for
    parse_mode HTML), through amtool's renderer."""
    data = {"receiver": "telegram", "status": status, "externalURL": "http://alertmanager:9093",
            "alerts": alerts, "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
            "commonLabels": {k: v for k, v in alerts[0]["labels"].items()
                             if all(a["labels"].get(k) == v for a in alerts)},
            "commonAnnotations": common_annotations}
    data_file = tmp_path / f"data-{uuid.uuid4().hex[:6]}.json"
    data_file.write_text(json.dumps(data))
    result = run(tool("amtool"), "template", "render",
                 f"--template.glob={ALERTMANAGER / 'telegram.tmpl'}", "--template.type=html",
                 f"--template.data={data_file}",
                 '--template.text={{ template "waifugen.telegram.message" . }}')
    assert result.returncode == 0, result.stderr
    return result.stdout.rstrip("\n")  # amtool adds a newline


def group_alert(status: str, character: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": "CharacterSilent", "severity": "warning",
                                         "character": character},
            "annotations": {"summary": f"{character} has not posted for 16h 16m 0s"},
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": uuid.uuid4().hex[:16]}


def test_telegram_message_is_html_telegram_accepts(tmp_path: Path) -> None:
    from sandbox.systems.telegram_entities import parse

    nasty = "<b>Mia & \"Zoë\" 'x'</b>"  # label values are data, never markup
    alerts = [group_alert("resolved" if i == 1 else "firing", f"{nasty} {i}") for i in range(12)]
    notes = {"description": "Check the <pipeline> & the roster.",
             "runbook_url": "https://example.test/runbooks/README.md?a=1&b=2"}
    shown = parse(render_message(tmp_path, "firing", alerts, notes), "HTML")
    lines = shown.text.split("\n")
    assert lines[0] == "🔥 CharacterSilent firing [warning]: 11 firing, 1 resolved"
    assert lines[1] == f"• {nasty} 0 has not posted for 16h 16m 0s"
    assert lines[2] == f"✓ {nasty} 1 has not posted for 16h 16m 0s"
    assert lines[11:] == ["… 12 alerts in all", "", "Check the <pipeline> & the roster.", "Runbook"]
    assert {e["type"] for e in shown.entities} == {"bold", "italic", "text_link"}
    links = [e["url"] for e in shown.entities if e["type"] == "text_link"]
    assert links == [notes["runbook_url"]]
    assert len(shown.text.encode("utf-16-le")) // 2 <= 4096

    resolved = parse(render_message(tmp_path, "resolved", [group_alert("resolved", "aiko")],
                                    {"runbook_url": "docs/runbooks/README.md"}), "HTML")
    assert resolved.text == ("✅ CharacterSilent resolved [warning]\n"
                             "✓ aiko has not posted for 16h 16m 0s\n"
                             "Runbook: docs/runbooks/README.md")


# --- a real Alertmanager delivering to the sandbox's Telegram -----------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], log: Path, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}; alertmanager log:\n{tail}")
        time.sleep(0.1)


@pytest.fixture
def operators_chat(sandbox: Any) -> str:
    """A supergroup of the sandbox's alerts bot for this test alone (its own rate limit)."""
    chat_id = f"-100{uuid.uuid4().int % 10**10:010d}"
    httpx.post(f"{sandbox.url}/telegram/_control/chats",
               json={"chat_id": chat_id, "type": "supergroup"}, timeout=10).raise_for_status()
    return chat_id


@pytest.fixture
def alertmanager(sandbox: Any, operators_chat: str, tmp_path: Path) -> Iterator[str]:
    """prometheus-alertmanager on loopback with the rendered config, sending to the sandbox;
    group_wait cut to 1s (30s in production) so a test does not wait half a minute."""
    binary = tool("prometheus-alertmanager")
    token_file = tmp_path / "token"
    token_file.write_text(SANDBOX_BOT_TOKEN + "\n")
    out = tmp_path / "rendered"
    rendered = render(out, TELEGRAM_BOT_TOKEN_FILE=str(token_file),
                      TELEGRAM_ALERT_CHAT_ID=operators_chat,
                      TELEGRAM_API_URL=f"{sandbox.url}/telegram/")
    assert rendered.returncode == 0, rendered.stderr
    config = yaml.safe_load((out / "alertmanager.yml").read_text(encoding="utf-8"))
    config["route"]["group_wait"] = "1s"
    (out / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [binary, f"--config.file={out / 'alertmanager.yml'}",
             f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address=", "--log.level=debug"],
            stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, f"alertmanager exited: {log.read_text()[-3000:]}"
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for("alertmanager to be ready", ready, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def alert(alertname: str, summary: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": alertname, "severity": ALERTS[alertname], **labels},
            "annotations": {"summary": summary, "description": f"What {alertname} means & why.",
                            "runbook_url": next(r["annotations"]["runbook_url"]
                                                for r in rules() if r["alert"] == alertname)}}


def test_alertmanager_sends_html_to_telegram_and_inhibits_warnings(
        alertmanager: str, sandbox: Any, operators_chat: str, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:8]
    # Label values with HTML's special characters: they must reach Telegram as text.
    a2e, runpod, fernet, s3 = (f"a2e<{uid}>", f"runpod&{uid}", f"fernet-{uid}", f"s3-{uid}")
    sources = [
        alert("BudgetExhausted", f"{a2e} budget exhausted: 100% of this month's limit committed",
              provider=a2e),
        alert("CredentialExpired", f"Credential {fernet} was rotated 91d 0h 0m 0s ago",
              name=fernet),
    ]
    targets = [
        alert("BudgetAt80Percent", f"{a2e} budget: 100% committed", provider=a2e),
        alert("BudgetAt80Percent", f"{runpod} budget: 85% committed", provider=runpod),
        alert("CredentialAging", f"Credential {fernet} was rotated 91d 0h 0m 0s ago", name=fernet),
        alert("CredentialAging", f"Credential {s3} was rotated 76d 0h 0m 0s ago", name=s3),
    ]
    log = tmp_path / "alertmanager.log"
    api = f"{alertmanager}/api/v2/alerts"

    def states() -> dict[tuple[str, str], str]:
        listed = httpx.get(api, timeout=5).raise_for_status().json()
        return {(a["labels"]["alertname"], a["labels"].get("provider") or a["labels"]["name"]):
                a["status"]["state"] for a in listed}

    # Sources first, so the inhibitor knows them before the warnings' groups flush.
    httpx.post(api, json=sources, timeout=5).raise_for_status()
    wait_for("the critical alerts", lambda: len(states()) == 2, log)
    httpx.post(api, json=targets, timeout=5).raise_for_status()
    expected = {("BudgetExhausted", a2e): "active", ("CredentialExpired", fernet): "active",
                ("BudgetAt80Percent", a2e): "suppressed", ("BudgetAt80Percent", runpod): "active",
                ("CredentialAging", fernet): "suppressed", ("CredentialAging", s3): "active"}
    wait_for(f"alert states {expected}", lambda: states() == expected, log)

    def messages() -> dict[str, dict[str, Any]]:
        sent = httpx.get(f"{sandbox.url}/telegram/_control/sent",
                         params={"chat_id": operators_chat}, timeout=5)
        found = {}
        for message in sent.raise_for_status().json():
            text = message.get("text") or ""
            if uid in text:
                found[text.split()[1]] = message  # "🔥 <alertname> firing ..."
        return found if len(found) == 4 else {}

    sent = wait_for("4 Telegram messages (one per alertname)", messages, log)
    assert set(sent) == {"BudgetExhausted", "CredentialExpired", "BudgetAt80Percent",
                         "CredentialAging"}
    exhausted = sent["BudgetExhausted"]
    assert exhausted["parse_mode"] == "HTML"
    assert exhausted["text"] == (
        "🔥 BudgetExhausted firing [critical]: 1 firing\n"
        f"• {a2e} budget exhausted: 100% of this month's limit committed\n\n"
        "What BudgetExhausted means & why.\n"
        "Runbook: docs/runbooks/credits-depleted.md"), json.dumps(exhausted, ensure_ascii=False)
    kinds = {e["type"] for e in exhausted["entities"]}
    assert {"bold", "code"} <= kinds
    # The inhibited warnings are left out of their groups' messages.
    budget, aging = sent["BudgetAt80Percent"]["text"], sent["CredentialAging"]["text"]
    assert runpod in budget and a2e not in budget
    assert s3 in aging and fernet not in aging
    assert SANDBOX_BOT_TOKEN not in log.read_text()
