"""What `make run`, `make dev` and the CLI start around a run, and stop afterwards.

Sandbox mode: the embedded PostgreSQL and the sandbox server process (each shared by every
process on the same WAIFUGEN_HOME and stopped by the last one out; the sandbox is not started
when WAIFUGEN_SANDBOX_URL points at a running one) and a Dagster home under WAIFUGEN_HOME.
Production: nothing is started; DATABASE_URL and DAGSTER_HOME must be given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import sqlalchemy as sa

from resources.database import check_connection, resolve_database_url
from waifugen_assets.app.processes import home_sandbox
from waifugen_assets.core import clock, migrate
from waifugen_assets.core.config import ConfigError, Settings, get_settings, project_root
from waifugen_assets.core.embedded_pg import advisory_lock, stop_embedded
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.roster.assets import enabled_character_ids, partition_changes

log = logging.getLogger(__name__)
SANDBOX_SEED = 20261125  # fixed so every `make run` sees the same simulated world
SANDBOX_INSTANCE_TEMPLATE = project_root() / "deploy" / "dagster.sandbox.yaml"
# The CLI prints its own summary, one line per failure; step-by-step logs (and the
# tracebacks of failed steps) stay in the instance for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class Stack:
    settings: Settings
    database_url: str
    sandbox_url: str | None


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME, created with the sandbox instance config in sandbox mode."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    if not settings.is_sandbox:
        raise ConfigError("DAGSTER_HOME is not set (production needs the instance of "
                          "deploy/dagster.yaml)")
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # whole or not at all: a second process may read it right now
        partial = home / f".dagster.yaml.{os.getpid()}"
        shutil.copyfile(SANDBOX_INSTANCE_TEMPLATE, partial)
        os.replace(partial, config)
    os.environ["DAGSTER_HOME"] = str(home)
    _init_instance_storage(home)
    return home


def _init_instance_storage(home: Path) -> None:
    """Create the sandbox instance's SQLite storages once, one process at a time: two first
    starts creating them together fail with "table ... already exists"."""
    import fcntl

    done = home / ".storage-ready"
    if done.exists():
        return
    with open(home / ".storage.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if done.exists():
            return
        with dg.DagsterInstance.get() as instance:  # each storage creates its tables on use
            instance.get_runs(limit=1)
            instance.get_latest_materialization_event(dg.AssetKey("daily_status"))
            instance.all_instigator_state()
        done.touch()


@contextlib.contextmanager
def local_stack(sandbox_port: int | None = None) -> Iterator[Stack]:
    """Start what the current mode needs; stop what was started on exit.

    A DATABASE_URL is checked first (a bad one stops here, nothing started or written), then
    the home's sandbox (`processes.home_sandbox`: `sandbox_port` None = the home's port) and
    the embedded PostgreSQL, which this process lets go of on exit: it stops unless another
    live process still uses it."""
    settings = get_settings()
    database_url = None
    if settings.database_url:
        database_url = resolve_database_url(settings)
        check_connection(database_url)
    # The code location loads the dbt manifest; a checkout whose dbt files changed since
    # `make setup` is parsed again here (seconds, no database) instead of failing to load.
    from waifugen_assets.analytics.project import ensure_manifest

    ensure_manifest()
    with contextlib.ExitStack() as stack:
        sandbox_url = None
        if settings.is_sandbox:
            if os.environ.get("WAIFUGEN_SANDBOX_URL"):
                sandbox_url = settings.sandbox_url
            else:
                sandbox_url = stack.enter_context(
                    home_sandbox(settings.home, SANDBOX_SEED, sandbox_port))
                os.environ["WAIFUGEN_SANDBOX_URL"] = sandbox_url
                stack.callback(os.environ.pop, "WAIFUGEN_SANDBOX_URL", None)
                stack.callback(get_settings.cache_clear)
                get_settings.cache_clear()
                settings = get_settings()
        if database_url is None:
            stack.callback(stop_embedded, settings.home)  # also after a failed start
            database_url = resolve_database_url(settings)
        ensure_dagster_home(settings)
        yield Stack(settings, database_url, sandbox_url)


PID_TAG = "waifugen/pid"


def reap_dead_cli_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the runs of CLI processes that died (SIGKILL, crash, power loss) and free their
    concurrency slots: otherwise the next run waits forever for a pool slot they still hold.
    Their work is resumed from the app database by the next run."""
    reaped = []
    alive_states = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.NOT_STARTED]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=alive_states,
                                                       tags={"waifugen/trigger": "cli"})):
        pid = run.tags.get(PID_TAG, "")
        if pid.isdigit() and psutil.pid_exists(int(pid)):
            continue
        instance.report_run_failed(run, f"the waifugen process {pid or '?'} running it died")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


def prepare(stack: Stack, defs: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    """Migrate, load the roster and sync partitions; returns the enabled character ids."""
    reap_dead_cli_runs(instance)
    migrate_serialized(stack.database_url)
    result = defs.resolve_job_def("roster").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET,
        tags={"waifugen/trigger": "cli", PID_TAG: str(os.getpid()), **roster_run_tags(defs)})
    if not result.success:
        raise RunFailed("roster", failure_messages(result))
    from resources.database import engine_for

    engine = engine_for(stack.database_url)
    with engine.connect() as conn:
        wanted = enabled_character_ids(conn)
    if stack.settings.is_sandbox:  # so `make run` publishes to the sandbox platforms
        from waifugen_assets.app.sandbox_seeding import seed_all_tokens

        seed_all_tokens(engine, stack.settings.secret_keys)
    sync_partitions(instance, wanted)
    return wanted


def migrate_serialized(url: str, revision: str = "head") -> None:
    """Alembic upgrade, one process at a time: two first starts would both find the schema
    missing and both create it."""
    from resources.database import engine_for

    with engine_for(url).connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        with advisory_lock(conn, "waifugen:migrate"):
            migrate.upgrade(url, revision)


def roster_run_tags(defs: dg.Definitions) -> dict[str, str]:
    """The roster sensor asks for one `roster` run per version of the file (run key
    `roster-<sha256>`, sensors/roster.py). Tagged with that key and the sensor's name, the
    CLI's run is that version's load, and the daemon of `make dev` does not load it again
    (Dagster skips a sensor's run key that a run already has: `fetch_existing_runs` in
    dagster/_daemon/sensor.py)."""
    from sensors.roster import roster_run_key

    return {"dagster/run_key": roster_run_key(defs.resources["roster"].fingerprint()),
            "dagster/sensor_name": "roster"}


def sync_partitions(instance: dg.DagsterInstance, wanted: list[str]) -> None:
    """The `characters` partitions equal to `wanted`. Another process starting at the same
    moment may add the same keys first: that is fine, as long as they end up there."""
    name = characters_partitions.name
    for _ in range(3):
        to_add, to_remove = partition_changes(wanted, instance.get_dynamic_partitions(name))
        try:
            if to_add:
                instance.add_dynamic_partitions(name, to_add)
            for key in to_remove:
                instance.delete_dynamic_partition(name, key)
            return
        except Exception as exc:  # a concurrent add of the same key: look again
            log.info("characters partitions changed meanwhile (%s); looking again",
                     type(exc).__name__)
    to_add, to_remove = partition_changes(wanted, instance.get_dynamic_partitions(name))
    if to_add or to_remove:
        raise ConfigError(f"could not bring the characters partitions in line with the roster "
                          f"(+{to_add} -{to_remove}); is the Dagster instance writable?")


class RunFailed(RuntimeError):
    def __init__(self, what: str, messages: list[str]):
        super().__init__(f"{what} failed: " + "; ".join(messages))
        self.what, self.messages = what, messages


def one_line(text: str, limit: int = 400) -> str:
    """A failure reason on one line: whitespace folded, long texts cut."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Why a run failed, one line per failed step or failed check, without tracebacks.

    A blocking check that fails also fails its step with Dagster's generic "Blocking check
    ... failed" error; the check's own words (its metadata) say more, so that line is kept
    instead of the step's."""
    messages, checks = [], {}
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if evaluation is not None and not evaluation.passed:
                checks[evaluation.check_name] = check_reason(evaluation)
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            err = event.step_failure_data.error
            while err is not None and err.cause is not None:  # the root, not the wrapper
                err = err.cause
            text = err.message.strip() if err else "unknown error"
            user = event.step_failure_data.user_failure_data
            if user and user.description:
                text = user.description
            blocking = next((name for name in checks if f"'{name}'" in text), None)
            if blocking is not None:
                text = checks.pop(blocking)
            messages.append(one_line(f"{event.step_key}: {text}"))
    messages.extend(one_line(text) for text in checks.values())
    return messages or ["run failed (see the Dagster UI for its logs)"]


def check_reason(evaluation: object) -> str:
    """`check budget: level block, spent 20 + projected 48 of limit 30` from a failed
    check's metadata (numbers and short texts only)."""
    name = getattr(evaluation, "check_name", "check")
    meta = getattr(evaluation, "metadata", {}) or {}
    parts = []
    for key, value in meta.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, int | float | str) and len(str(raw)) <= 40:
            parts.append(f"{key} {raw}")
    return f"check {name} failed" + (f": {', '.join(parts)}" if parts else "")


@dataclass(frozen=True)
class PublishMode:
    """How `waifugen run` publishes: `now` posts every branded reel of the day at once (the
    sandbox default, so `make run` shows a whole day published), `due` only reels whose slot
    has come, as the posting sensor does (the production default); `post_late` posts stale
    slots too instead of recording them skipped."""

    when: str = "due"
    post_late: bool = False

    def run_config(self, sandbox: bool) -> dict:
        config: dict[str, object] = {"only_due": self.when != "now",
                                     "post_late": self.post_late}
        if sandbox:  # a whole roster's day is ~30 uploads; the sandbox project has the units
            from waifugen_assets.app.sandbox_seeding import SANDBOX_YOUTUBE_UNITS

            config["youtube_daily_units"] = SANDBOX_YOUTUBE_UNITS
        ops: dict[str, object] = {"social_posts": {"config": config}}
        if self.post_late:  # a day that will be posted late is rendered late too
            ops["reels"] = {"config": {"late": True}}
        return {**QUIET, "ops": ops}


@dataclass
class CharacterRun:
    character_id: str
    date: dt.date
    failures: list[str]


def run_day(defs: dg.Definitions, instance: dg.DagsterInstance, days: dict[str, dt.date],
            publish: PublishMode | None = None,
            after_publish: Callable[[str, dt.date], None] | None = None) -> list[CharacterRun]:
    """Per character (its own local day): its daily_content run, its engagement read-back,
    its comment replies, then its subscriber_dms run (`after_publish(character, day)` between
    the first two: the sandbox's audience comments there). Every character gets its runs
    whatever happened to the others; returns each character's failure reasons (empty when
    its runs succeeded)."""
    sandbox = get_settings().is_sandbox
    mode = publish or PublishMode()
    # In sandbox mode the day's posts are read at once (they went out seconds ago); in
    # production only readings that are due, as the hourly schedule does.
    engagement = {**QUIET, "ops": {"engagement_metrics": {"config": {
        "read_all_live": sandbox}}}}
    comments: dict[str, object] = {}
    if sandbox:  # the sandbox project's units, as for publishing
        from waifugen_assets.app.sandbox_seeding import SANDBOX_YOUTUBE_UNITS

        comments["youtube_daily_units"] = SANDBOX_YOUTUBE_UNITS
    steps = [(defs.resolve_job_def("daily_content"), mode.run_config(sandbox)),
             (defs.resolve_job_def("engagement"), engagement),
             (defs.resolve_job_def("comments"),
              {**QUIET, "ops": {"comment_replies": {"config": comments}}}),
             (defs.resolve_job_def("subscriber_dms"), QUIET)]
    results = []
    tags = {"waifugen/trigger": "cli", PID_TAG: str(os.getpid())}
    for cid, day in days.items():
        failures: list[str] = []
        for what, run_config in steps:
            try:
                result = _execute(what, partition_key(cid, day), instance, tags, run_config)
            except Exception as exc:  # a run that could not even start: this character only
                failures.append(one_line(f"{what.name}: {type(exc).__name__}: {exc}"))
                continue
            if not result.success:
                failures.extend(f"{what.name}: {m}" for m in failure_messages(result))
            if what.name == "daily_content" and after_publish is not None:
                try:
                    after_publish(cid, day)
                except Exception as exc:  # the sandbox's audience: never this run's failure
                    log.warning("after publishing %s %s: %s", cid, day, exc)
        results.append(CharacterRun(cid, day, failures))
    return results


def prepare_comments(engine: sa.Engine, characters: list[str],
                     sandbox_url: str | None) -> Callable[[str, dt.date], None] | None:
    """Replies switched on for the characters' accounts now, so comments on the posts this
    run publishes are answered (an account's first comment run would switch them on itself
    and leave what came before); in sandbox mode, the hook that has the sandbox audience
    comment under each character's posts once they are out."""
    from waifugen_assets.comments.fetch import switch_on_character

    for cid in characters:
        switch_on_character(engine, cid, clock.now())
    if not sandbox_url:
        return None
    from waifugen_assets.app.sandbox_seeding import comment_on_sandbox_posts

    def after_publish(cid: str, day: dt.date) -> None:
        comment_on_sandbox_posts(sandbox_url, engine, cid, day)

    return after_publish


def _execute(job: dg.JobDefinition, key: dg.MultiPartitionKey, instance: dg.DagsterInstance,
             tags: dict[str, str], run_config: dict) -> dg.ExecuteInProcessResult:
    """One in-process run. A run that could not even be created (another process writing
    the same instance's SQLite storage at that moment) is tried once more."""
    for attempt in range(2):
        try:
            return job.execute_in_process(partition_key=key, instance=instance,
                                          raise_on_error=False, tags=tags,
                                          run_config=run_config)
        except Exception as exc:
            if attempt:
                raise
            log.info("run of %s for %s not created (%s); trying once more", job.name, key,
                     type(exc).__name__)
    raise AssertionError("unreachable")
