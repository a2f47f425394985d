"""deploy/helm: values for Dagster's official Helm chart and the migrate Job, kept in step with
the docker-compose deployment (deploy/dagster.yaml, deploy/set-pools.sh) and docs/scale-out.md.

No Helm repository is reachable here, so the chart's own schema check (`helm template`) is not
run: the keys below are the chart's (helm/dagster/schema in Dagster's repository, 1.13).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
MIGRATE_JOB = ROOT / "deploy" / "helm" / "waifugen-migrate-job.yaml"


def inline_passwords(node: Any, path: str = "") -> Iterator[str]:
    """Paths of string values under a key that names a password (secrets go by reference)."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if "password" in str(key).lower() and isinstance(value, str):
                yield where
            yield from inline_passwords(value, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from inline_passwords(item, f"{path}[{i}]")


def camel_tag_limits(limits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """deploy/dagster.yaml's tag_concurrency_limits in the chart's spelling."""
    out = []
    for limit in limits:
        value = limit.get("value")
        if isinstance(value, dict):
            value = {"applyLimitPerUniqueValue": value["applyLimitPerUniqueValue"]}
        out.append({k: v for k, v in (("key", limit["key"]), ("value", value),
                                      ("limit", limit["limit"])) if v is not None})
    return out


def test_helm_values_for_the_dagster_chart() -> None:
    values = yaml.safe_load(HELM_VALUES.read_text())
    compose_instance = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())

    deployments = values["dagster-user-deployments"]
    assert deployments["enabled"] is True
    (code,) = deployments["deployments"]
    assert code["name"] == "waifugen"
    assert code["image"]["repository"].endswith("/waifugen") and code["image"]["tag"]
    args = code["codeServerArgs"]
    assert args[args.index("-m") + 1] == "waifugen_assets.definitions"
    assert args[args.index("-a") + 1] == "defs"
    assert code["port"] == 4000
    assert code["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert {"name": "waifugen-app"} in code["envSecrets"]
    assert code["env"]["WAIFUGEN_MODE"] == "production"

    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert {"name": "waifugen-app"} in launcher["config"]["k8sRunLauncher"]["envSecrets"]

    # The run queue mirrors deploy/dagster.yaml's concurrency.runs.
    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    assert coordinator["enabled"] is True
    assert coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    runs = compose_instance["concurrency"]["runs"]
    assert queued["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == camel_tag_limits(runs["tag_concurrency_limits"])
    assert queued["dequeueIntervalSeconds"] == \
        compose_instance["run_coordinator"]["config"]["dequeue_interval_seconds"]
    retries = compose_instance["run_retries"]
    assert daemon["runRetries"] == {
        "enabled": True, "maxRetries": retries["max_retries"],
        "retryOnAssetOrOpFailure": retries["retry_on_asset_or_op_failure"]}

    # Pools: the instance settings as deploy/dagster.yaml; the per-pool limits are set by
    # deploy/set-pools.sh in the migrate Job, as the compose migrate service does.
    pools = compose_instance["concurrency"]["pools"]
    assert values["concurrency"] == {"enabled": True, "pools": {
        "defaultLimit": pools["default_limit"], "granularity": pools["granularity"],
        "opGranularityRunBuffer": pools["op_granularity_run_buffer"]}}
    job = yaml.safe_load(MIGRATE_JOB.read_text())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][-1] == "waifugen db upgrade && deploy/set-pools.sh"
    assert container["image"] == f"{code['image']['repository']}:{code['image']['tag']}"
    assert {"secretRef": {"name": "waifugen-app"}} in container["envFrom"]
    pool_text = (ROOT / "deploy" / "set-pools.sh").read_text()
    block = pool_text.split('POOLS="', 1)[1].split('"', 1)[0]
    pool_limits = {line.split()[0]: int(line.split()[1]) for line in block.strip().splitlines()}
    for pool, limit in pool_limits.items():  # the comment in values.yaml stays true
        assert f"{pool} {limit}" in HELM_VALUES.read_text(), pool

    # External PostgreSQL; its password only from a Secret referenced by name.
    pg = values["postgresql"]
    assert pg["enabled"] is False
    assert pg["postgresqlHost"] and pg["postgresqlDatabase"] == "dagster"
    assert pg["postgresqlScheme"] == \
        compose_instance["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] == "waifugen-dagster-postgresql"
    assert "postgresqlPassword" not in HELM_VALUES.read_text()
    assert not list(inline_passwords(values)) and not list(inline_passwords(job))

    # The scale-out doc covers what changes and what stays.
    doc = (ROOT / "docs" / "scale-out.md").read_text().lower()
    for phrase in ("K8sRunLauncher", "set-pools.sh", "exactly-once", "sensor", "values.yaml",
                   "waifugen-migrate-job.yaml", "docker-compose", "what stays", "what changes"):
        assert phrase.lower() in doc, phrase
